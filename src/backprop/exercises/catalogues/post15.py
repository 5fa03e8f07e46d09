"""The typical mistakes of post 15's sequence: the transformer's backward, piece by
piece (steps 3 to 6; step 1 is `gelu`'s catalogue, step 2 ``residual-layernorm``).

Steps 3, 4 and 6 write a module's backward in fast.ai's style: read ``out.g``, call
the parts' ``backward()``, set ``.g``. The post grades them through an adapter that
builds the modules around the grader's tensors and returns the ``.g`` they end
with; each mistake here is the same adapter around a wrong wiring, the way a reader
would write it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from backprop.embedding import embedding_backward
from backprop.exercises.catalogues.parts import Catalogue, Example, Mistake
from backprop.linear import lin_backward
from backprop.modules import LayerNorm, Module, MultiHeadAttention
from backprop.normalization import layernorm_backward
from backprop.transformer import TinyGPT, TransformerBlock

__all__ = ["POST15_CATALOGUES"]

f64 = torch.float64
_HEADS, _D_MODEL, _D_FF = 2, 6, 10


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(gen: torch.Generator, *shape: int) -> Tensor:
    return torch.randn(*shape, generator=gen, dtype=f64)


def _grads(*tensors: Tensor) -> tuple[object, ...]:
    return tuple(getattr(t, "g", None) for t in tensors)


# --- step 3: the attention sub-layer ----------------------------------------------

_STEP3 = "see 'Step 3: the attention sub-layer' in post 15"
_SUM_COPIES = "see 'The residual stream's backward' in post 15"

_ATTENTION_NAMES = ["x", "gamma", "beta", "w_q", "b_q", "w_k", "b_k", "w_v", "b_v"]
_ATTENTION_NAMES += ["w_o", "b_o"]


def attention_modules(*params: Tensor) -> tuple[LayerNorm, MultiHeadAttention]:
    """A `LayerNorm` and a causal `MultiHeadAttention` holding exactly ``params``:
    gamma, beta, then w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o."""
    gamma = params[0]
    d_model = gamma.shape[0]
    ln = LayerNorm(d_model, dtype=gamma.dtype)
    attention = MultiHeadAttention(
        d_model, _HEADS, causal=True, dtype=gamma.dtype, generator=_gen(0)
    )
    ln.gamma, ln.beta = params[0], params[1]
    for name, p in zip(("w_q", "b_q", "w_k", "b_k", "w_v", "b_v", "w_o", "b_o"),
                       params[2:], strict=True):  # fmt: skip
        setattr(attention, name, p)
    return ln, attention


def _attention_sublayer(x: Tensor, *params: Tensor) -> Tensor:
    ln, attention = attention_modules(*params)
    return x + attention(ln(x))


def _attention_example() -> Example:
    gen = _gen(31)
    d = _D_MODEL
    inputs = [_randn(gen, 2, 4, d) * 2 + 1, 1 + 0.5 * _randn(gen, d), _randn(gen, d)]
    for _ in range(4):  # each projection: a weight and a bias
        inputs += [_randn(gen, d, d) / d**0.5, 0.5 * _randn(gen, d)]
    return Example(_attention_sublayer, inputs, list(_ATTENTION_NAMES))


Wiring = Callable[..., None]


def _through_attention(wiring: Wiring) -> Callable[..., tuple[object, ...]]:
    def backward(grad_out: Tensor, x: Tensor, *params: Tensor) -> tuple[object, ...]:
        ln, attention = attention_modules(*params)
        out = x + attention(ln(x))
        out.g = grad_out  # type: ignore[attr-defined]
        wiring(ln, attention, out, x)
        return _grads(x, *ln.parameters(), *attention.parameters())

    return backward


def _g(t: Tensor) -> Tensor:
    g: Tensor = t.g  # type: ignore[attr-defined]
    return g


def _set(t: Tensor, g: Tensor) -> None:
    t.g = g  # type: ignore[attr-defined]


def attention_sublayer_right(
    ln: Module, attention: Module, out: Tensor, x: Tensor
) -> None:
    """The right wiring of step 3, for the mistakes of the steps after it."""
    _set(attention.out, _g(out))
    attention.backward()
    ln.backward()
    _set(x, _g(x) + _g(out))


def _no_identity(ln: Module, attention: Module, out: Tensor, x: Tensor) -> None:
    _set(attention.out, _g(out))
    attention.backward()
    ln.backward()


def _identity_overwrites(ln: Module, attention: Module, out: Tensor, x: Tensor) -> None:
    _no_identity(ln, attention, out, x)
    _set(x, _g(out))


def _norm_from_out_g(ln: Module, attention: Module, out: Tensor, x: Tensor) -> None:
    _set(attention.out, _g(out))
    attention.backward()
    _set(ln.out, _g(out))
    ln.backward()
    _set(x, _g(x) + _g(out))


def _identity_through_norm(
    ln: Module, attention: Module, out: Tensor, x: Tensor
) -> None:
    _set(attention.out, _g(out))
    attention.backward()
    _set(ln.out, _g(ln.out) + _g(out))
    ln.backward()


def _halves(ln: Module, attention: Module, out: Tensor, x: Tensor) -> None:
    _set(attention.out, _g(out) / 2)
    attention.backward()
    ln.backward()
    _set(x, _g(x) + _g(out) / 2)


_ATTENTION_SUBLAYER = Catalogue(
    "post 15",
    (
        Mistake(
            "the identity path is missing: x.g is the layer norm's gradient alone",
            "x is used twice, by the branch and by the sum, so add out.g to what "
            f"ln.backward() left in x.g; {_SUM_COPIES}",
            _through_attention(_no_identity),
        ),
        Mistake(
            "x.g = out.g overwrites the branch's gradient instead of adding to it",
            "ln.backward() has already set x.g: add the identity path's out.g to "
            f"it; {_STEP3}",
            _through_attention(_identity_overwrites),
        ),
        Mistake(
            "the layer norm's backward starts from out.g, not from attention's "
            "input gradient",
            "attention.backward() sets ln.out.g (attention's input is ln's output): "
            f"leave it for ln.backward(); {_STEP3}",
            _through_attention(_norm_from_out_g),
        ),
        Mistake(
            "the identity path goes through the layer norm (as if post-norm)",
            "in a pre-norm block the layer norm is on the branch only: out.g reaches "
            f"x directly, x.g = ln's gradient + out.g; {_SUM_COPIES}",
            _through_attention(_identity_through_norm),
        ),
        Mistake(
            "out.g is split in half between the branch and the identity path",
            "a sum passes its whole upstream gradient to each of its terms: both "
            f"get out.g; {_SUM_COPIES}",
            _through_attention(_halves),
        ),
    ),
    _attention_example,
)


# --- step 4: the whole block ------------------------------------------------------

_STEP4 = "see 'Step 4: the whole block' in post 15"
_BLOCK_NAMES = ["x"] + [
    name.replace(".", "_")
    for name in TransformerBlock(2, 1, 2, generator=_gen(0)).named_parameters()
]


def block_holding(*params: Tensor) -> TransformerBlock:
    """A causal `TransformerBlock` (2 heads, tanh GELU) holding exactly ``params``,
    in the order of its ``named_parameters()``."""
    d_model, d_ff = params[12].shape  # up.w
    block = TransformerBlock(
        d_model, _HEADS, d_ff, dtype=params[0].dtype, generator=_gen(0)
    )
    for name, p in zip(block.named_parameters(), params, strict=True):
        owner, attribute = name.split(".")  # e.g. "attention.w_q"
        setattr(getattr(block, owner), attribute, p)
    return block


def _transformer_block(x: Tensor, *params: Tensor) -> Tensor:
    return block_holding(*params)(x)


def _block_example() -> Example:
    gen = _gen(41)
    block = TransformerBlock(_D_MODEL, _HEADS, _D_FF, dtype=f64, generator=gen)
    params = [p + 0.3 * _randn(gen, *p.shape) for p in block.parameters()]
    x = _randn(gen, 2, 4, _D_MODEL) * 2 + 1
    return Example(_transformer_block, [x, *params], list(_BLOCK_NAMES))


def _through_block(wiring: Wiring) -> Callable[..., tuple[object, ...]]:
    def backward(grad_out: Tensor, x: Tensor, *params: Tensor) -> tuple[object, ...]:
        block = block_holding(*params)
        out = block(x)
        out.g = grad_out  # type: ignore[attr-defined]
        wiring(block, out, x)
        return _grads(x, *block.parameters())

    return backward


def _mlp_branch(block: TransformerBlock, out: Tensor, skip_gelu: bool = False) -> None:
    """The MLP branch's backward, from out.g to mid.g (the branch's part only)."""
    _set(block.down.out, _g(out))
    block.down.backward()
    if skip_gelu:
        _set(block.up.out, _g(block.gelu.out))
    else:
        block.gelu.backward()
    block.up.backward()
    block.ln2.backward()


def _block_wiring(
    *, identity: bool = True, late: bool = False, from_out: bool = False,
    skip_gelu: bool = False, parallel: bool = False,
) -> Wiring:  # fmt: skip
    def wiring(block: TransformerBlock, out: Tensor, x: Tensor) -> None:
        mid = block.attn.out
        _mlp_branch(block, out, skip_gelu)
        branch = _g(mid)
        if identity and not late:
            _set(mid, _g(mid) + _g(out))
        start = out if from_out or parallel else mid
        attention_sublayer_right(block.ln1, block.attention, start, x)
        if parallel:
            _set(x, _g(x) + branch)
        if late:
            _set(x, _g(x) + _g(out))

    return wiring


_BLOCK = Catalogue(
    "post 15",
    (
        Mistake(
            "the MLP's identity path is missing: mid.g is the MLP branch's alone",
            "mid is used twice, by the MLP branch and by the sum: add out.g to what "
            f"ln2.backward() left in mid.g; {_STEP4}",
            _through_block(_block_wiring(identity=False)),
        ),
        Mistake(
            "out.g is added to x.g at the end, skipping the attention sub-layer",
            "out.g reaches x through mid, and mid also feeds the attention "
            f"sub-layer's branch: add out.g to mid.g before that sub-layer; {_STEP4}",
            _through_block(_block_wiring(late=True)),
        ),
        Mistake(
            "the attention sub-layer starts from out.g instead of mid.g",
            "the attention sub-layer's output is mid, and the gradient there is the "
            f"MLP branch's plus out.g; {_STEP4}",
            _through_block(_block_wiring(from_out=True)),
        ),
        Mistake(
            "the GELU is skipped on the way back",
            "between up and down sits the GELU: gelu.backward() multiplies by its "
            "slope before up.backward(); see 'The GELU' in post 15",
            _through_block(_block_wiring(skip_gelu=True)),
        ),
        Mistake(
            "the MLP's gradient goes to x, as if the two branches were side by side",
            "the MLP reads mid = x + attention(ln1(x)), not x: its gradient reaches "
            f"x through the attention sub-layer; {_STEP4}",
            _through_block(_block_wiring(parallel=True)),
        ),
    ),
    _block_example,
)


# --- step 5: the tied head --------------------------------------------------------

_STEP5 = "see 'Step 5: the tied head' in post 15"


def _tied_head(table: Tensor, pos: Tensor, tokens: Tensor) -> Tensor:
    x_out = F.layer_norm(table[tokens] + pos, table.shape[1:])
    return x_out @ table.T


def _tied_head_example() -> Example:
    gen = _gen(51)
    tokens = torch.tensor([[0, 3, 3, 1], [6, 0, 2, 3], [5, 5, 4, 0]])
    inputs = [_randn(gen, 7, 5), 0.5 * _randn(gen, 4, 5), tokens]
    return Example(_tied_head, inputs, ["table", "pos", "tokens"])


def _tied_parts(
    g: Tensor, table: Tensor, pos: Tensor, tokens: Tensor, *, norm: bool = True
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """grad_x, the lookup's scatter-add, the projection's product and x."""
    d = table.shape[1]
    ones, zeros = torch.ones(d, dtype=table.dtype), torch.zeros(d, dtype=table.dtype)
    x = table[tokens] + pos
    x_out = F.layer_norm(x, (d,))
    grad_x_out, grad_w, _ = lin_backward(g, x_out, table.T)
    assert grad_x_out is not None
    grad_x = layernorm_backward(grad_x_out, x, ones, zeros)[0] if norm else grad_x_out
    return grad_x, embedding_backward(grad_x, tokens, table), grad_w.T, x


def _tied_with(how: str) -> Callable[..., object]:
    def answer(g: Tensor, table: Tensor, pos: Tensor, tokens: Tensor) -> object:
        grad_x, lookup, projection, x = _tied_parts(
            g, table, pos, tokens, norm=how != "no norm"
        )
        grad_pos = grad_x.sum(0)
        if how == "lookup only":
            return lookup, grad_pos
        if how == "projection only":
            return projection, grad_pos
        if how == "pos not summed":
            return lookup + projection, grad_x
        if how == "pos averaged":
            return lookup + projection, grad_x.mean(0)
        if how == "x, not x_out":
            g_rows = g.reshape(-1, g.shape[-1])
            return lookup + g_rows.T @ x.reshape(-1, x.shape[-1]), grad_pos
        return lookup + projection, grad_pos  # "no norm": grad_x is grad_x_out

    return answer


_TIED_HEAD = Catalogue(
    "post 15",
    (
        Mistake(
            "the table's gradient is the lookup's scatter-add alone",
            "the table is used twice, by the lookup and by the projection x_out "
            f"tableᵀ: add the projection's gradient, grad_logitsᵀ x_out; {_STEP5}",
            _tied_with("lookup only"),
        ),
        Mistake(
            "the table's gradient is the projection's product alone",
            "the table is used twice: add the lookup's scatter-add of grad_x at the "
            f"tokens; {_STEP5}",
            _tied_with("projection only"),
        ),
        Mistake(
            "the position table's gradient is not summed over the batch",
            "one row of pos serves every sequence (a broadcast): sum grad_x over "
            f"the batch; {_STEP5}",
            _tied_with("pos not summed"),
        ),
        Mistake(
            "the position table's gradient is averaged over the batch, not summed",
            "each sequence's use of pos adds its gradient: sum over the batch, "
            f"grad_x.sum(0); {_STEP5}",
            _tied_with("pos averaged"),
        ),
        Mistake(
            "the projection's product uses x, before the layer norm, not x_out",
            "the projection multiplies x_out = LN(x) by tableᵀ, so its gradient is "
            f"grad_logitsᵀ x_out; {_STEP5}",
            _tied_with("x, not x_out"),
        ),
        Mistake(
            "the layer norm is skipped on the way back to the lookup",
            "grad_logits @ table is the gradient at x_out; layer norm's backward "
            f"turns it into the gradient at x; {_STEP5}",
            _tied_with("no norm"),
        ),
    ),
    _tied_head_example,
)


# --- step 6: the model from the pieces --------------------------------------------

_STEP6 = "see 'Step 6: the model from your pieces' in post 15"
_GPT = {"vocab": 7, "max_len": 6, "d_model": _D_MODEL, "d_ff": _D_FF}


def gpt_holding(table: Tensor, pos: Tensor, gamma: Tensor, beta: Tensor) -> TinyGPT:
    """A tied `TinyGPT` (1 block, seeded weights) holding the given embeddings and
    final layer norm."""
    gen = _gen(61)
    c = _GPT
    gpt = TinyGPT(
        c["vocab"], c["max_len"], c["d_model"], _HEADS, c["d_ff"], 1,
        tie_weights=True, generator=gen, dtype=table.dtype,
    )  # fmt: skip
    for p in gpt.parameters():
        p.add_(0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    gpt.tok.table, gpt.pos.table = table, pos
    gpt.ln_f.gamma, gpt.ln_f.beta = gamma, beta
    return gpt


def _gpt_logits(
    table: Tensor, pos: Tensor, gamma: Tensor, beta: Tensor, tokens: Tensor
) -> Tensor:
    return gpt_holding(table, pos, gamma, beta)(tokens)


def _gpt_example() -> Example:
    gen = _gen(62)
    c = _GPT
    tokens = torch.tensor([[0, 3, 3, 1, 6], [6, 0, 2, 3, 3], [5, 5, 4, 0, 1]])
    inputs = [
        _randn(gen, c["vocab"], c["d_model"]),
        0.5 * _randn(gen, c["max_len"], c["d_model"]),
        1 + 0.5 * _randn(gen, c["d_model"]),
        0.5 * _randn(gen, c["d_model"]),
        tokens,
    ]
    return Example(_gpt_logits, inputs, ["table", "pos", "gamma_f", "beta_f", "tokens"])


def _through_gpt(wiring: Wiring) -> Callable[..., tuple[object, ...]]:
    def backward(
        grad_out: Tensor,
        table: Tensor,
        pos: Tensor,
        gamma: Tensor,
        beta: Tensor,
        tokens: Tensor,
    ) -> tuple[object, ...]:
        gpt = gpt_holding(table, pos, gamma, beta)
        out = gpt(tokens)
        out.g = grad_out  # type: ignore[attr-defined]
        wiring(gpt, out, tokens)
        return _grads(table, pos, gamma, beta)

    return backward


def _gpt_wiring(how: str) -> Wiring:
    def wiring(gpt: TinyGPT, out: Tensor, tokens: Tensor) -> None:
        table, x_out = gpt.tok.table, gpt.ln_f.out
        head_input = gpt.blocks.out if how == "x, not x_out" else x_out
        _, grad_w, _ = lin_backward(_g(out), head_input, table.T)
        grad_at_x_out = lin_backward(_g(out), x_out, table.T)[0]
        assert grad_at_x_out is not None
        _set(x_out, grad_at_x_out)
        gpt.ln_f.backward()
        gpt.blocks.backward()
        stream = gpt.blocks.out if how == "blocks' output" else gpt.blocks.args[0]
        grad_x = _g(stream)
        lookup = embedding_backward(grad_x, tokens, table)
        table_grad = {"lookup only": lookup, "projection only": grad_w.T}
        _set(table, table_grad.get(how, lookup + grad_w.T))
        per_position = grad_x.mean(0) if how == "pos averaged" else grad_x.sum(0)
        if how == "T rows":
            _set(gpt.pos.table, per_position)
        else:
            positions = torch.arange(tokens.shape[1])
            _set(
                gpt.pos.table,
                embedding_backward(per_position, positions, gpt.pos.table),
            )

    return wiring


_MODEL_BACKWARD = Catalogue(
    "post 15",
    (
        Mistake(
            "the table's gradient is the lookup's scatter-add alone",
            "with tied weights the table is also the head: add the projection's "
            f"gradient, grad_logitsᵀ x_out; {_STEP6}",
            _through_gpt(_gpt_wiring("lookup only")),
        ),
        Mistake(
            "the table's gradient is the projection's product alone",
            "the table is also the token lookup: add the scatter-add of the "
            f"gradient at the embeddings; {_STEP6}",
            _through_gpt(_gpt_wiring("projection only")),
        ),
        Mistake(
            "the position table's gradient is averaged over the batch, not summed",
            "each sequence's use of a position row adds its gradient: sum over the "
            f"batch; {_STEP6}",
            _through_gpt(_gpt_wiring("pos averaged")),
        ),
        Mistake(
            "the position table's gradient has T rows, not max_len",
            "the table has a row for every position up to max_len; rows past T were "
            f"not used and get zeros (embedding_backward does it); {_STEP6}",
            _through_gpt(_gpt_wiring("T rows")),
        ),
        Mistake(
            "the head's product uses the blocks' output, not x_out",
            "the head multiplies x_out = ln_f(x) by tableᵀ: its gradient is "
            f"grad_logitsᵀ x_out; {_STEP6}",
            _through_gpt(_gpt_wiring("x, not x_out")),
        ),
        Mistake(
            "the embeddings get the gradient at the blocks' output, not at their input",
            "the embeddings feed the first block: read the gradient the blocks' "
            f"backward left on their input, gpt.blocks.args[0].g; {_STEP6}",
            _through_gpt(_gpt_wiring("blocks' output")),
        ),
    ),
    _gpt_example,
)


POST15_CATALOGUES: dict[str, Catalogue] = {
    "attention-sublayer": _ATTENTION_SUBLAYER,
    "block": _BLOCK,
    "tied-head": _TIED_HEAD,
    "model-backward": _MODEL_BACKWARD,
}
