"""A small GPT from the series' modules.

Every piece is a `backprop.modules.Module` with a hand-written backward that
fills ``.g`` (fast.ai's convention); the new ones are the GELU, the residual
connection, the transformer block that wires them up, the model, and a loss
over every position of a sequence; `backprop.optim.AdamW` trains it::

    gpt = TinyGPT(vocab=10, max_len=16, d_model=32, n_heads=4, d_ff=128, n_layers=2)
    model = Model([gpt], TokenCrossEntropy())
    loss = model(tokens, targets)  # tokens, targets: (N, T) integers
    model.backward()  # fills .g on every parameter
    optimiser = AdamW(model.named_parameters(), lr=1e-3)
    optimiser.step()

Nothing here uses ``torch.autograd``.
"""

from __future__ import annotations

import math

import torch

from backprop._checks import (
    grad_of,
    require_float,
    require_index,
    require_ndim,
    require_positive_int,
    set_grad,
    shape_str,
)
from backprop.activations import _gelu_inner, gelu, gelu_backward
from backprop.functional import cross_entropy, cross_entropy_backward, lin, lin_backward
from backprop.modules import (
    Embedding,
    LayerNorm,
    Lin,
    Module,
    MultiHeadAttention,
    Sequential,
    _intermediates,
)

__all__ = [
    "GELU",
    "Residual",
    "TinyGPT",
    "TokenCrossEntropy",
    "TransformerBlock",
]


class GELU(Module):
    r"""The GELU activation $x \, \Phi(x)$, elementwise: `backprop.functional.gelu`.

    Parameters
    ----------
    approximate : {"tanh", "none"}, default "tanh"
        The tanh approximation (GPT-2's) or the exact erf form, as
        ``torch.nn.GELU(approximate=...)``.
    intermediates : {"recompute", "keep"}, default "recompute"
        Whether the backward computes $\tanh u$ (or $\operatorname{erf}$) again
        from the input, or reads it as the forward kept it (``saved``, the
        input's shape). The gradients are the same.

    Raises
    ------
    ValueError
        If ``approximate`` or ``intermediates`` is neither of its values.

    Examples
    --------
    >>> act = GELU()
    >>> x = torch.tensor([-1.0, 0.0, 1.0])
    >>> out = act(x)
    >>> out.g = torch.ones(3)
    >>> act.backward()
    >>> x.g
    tensor([-0.0830,  0.5000,  1.0830])
    """

    def __init__(
        self, approximate: str = "tanh", *, intermediates: str = "recompute"
    ) -> None:
        gelu(torch.zeros(1), approximate)  # checks the value now, not at the forward
        self.approximate = approximate
        self.intermediates = _intermediates(intermediates)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        if self.intermediates == "recompute":
            return gelu(inp, self.approximate)
        require_float("inp", inp)
        self.saved = _gelu_inner(inp, self.approximate)
        return 0.5 * inp * (1 + self.saved)

    def bwd(self, out: torch.Tensor, inp: torch.Tensor) -> None:
        inner = self.saved if self.intermediates == "keep" else None
        set_grad(inp, gelu_backward(grad_of(out), inp, self.approximate, inner=inner))

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Residual(Module):
    r"""A residual connection around a block: ``x + block(x)``.

    ``x`` is used twice, by the identity path and by the block, so its gradient
    is the sum of the two (a copy forward is a sum backward):

    $$\frac{\partial L}{\partial x} = \frac{\partial L}{\partial y}
    + \frac{\partial L}{\partial \mathrm{block}(x)} \,
    \frac{\partial\, \mathrm{block}(x)}{\partial x}.$$

    The first term reaches ``x`` unchanged, whatever the block does.

    Parameters
    ----------
    block : Module
        A module from ``(..., d)`` to the same shape.

    Raises
    ------
    ValueError
        If ``block`` is not a `Module`; in the forward, if its output's shape
        differs from its input's.

    Examples
    --------
    >>> res = Residual(Lin(2, 2, generator=torch.Generator().manual_seed(0)))
    >>> res.block.w = torch.zeros(2, 2)  # a block whose output ignores x
    >>> x = torch.ones(3, 2)
    >>> out = res(x)
    >>> out.g = torch.ones(3, 2)
    >>> res.backward()
    >>> x.g[0]  # the identity path alone
    tensor([1., 1.])
    """

    def __init__(self, block: Module) -> None:
        if not isinstance(block, Module):
            raise ValueError(f"block must be a Module, got {type(block).__name__}")
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.block(x)
        if branch.shape != x.shape:
            raise ValueError(
                f"the block maps x of shape {shape_str(x)} to shape "
                f"{shape_str(branch)}; a residual connection adds the two, so they "
                "must have the same shape"
            )
        return x + branch

    def bwd(self, out: torch.Tensor, x: torch.Tensor) -> None:
        grad_out = grad_of(out)
        set_grad(self.block.out, grad_out)  # the sum's backward copies out.g ...
        self.block.backward()  # ... the block turns one copy into its x.g ...
        set_grad(x, grad_of(x) + grad_out)  # ... and the identity path adds the other


class TransformerBlock(Sequential):
    r"""A pre-norm transformer block on ``(N, T, d_model)``.

    Two residual connections, each with a layer norm at the start of its branch
    (pre-norm, as GPT-2)::

        x = x + MultiHeadAttention(LayerNorm(x))
        x = x + Lin(GELU(Lin(LayerNorm(x))))      d_model -> d_ff -> d_model

    Parameters
    ----------
    d_model : int
        Features per position; a multiple of ``n_heads``.
    n_heads : int
        Attention heads.
    d_ff : int
        Hidden features of the feed-forward branch.
    causal : bool, default True
        Whether position $i$ attends to positions $0..i$ only.
    approximate : {"tanh", "none"}, default "tanh"
        The GELU's form.
    generator : torch.Generator or None, optional
        For the initial weights: attention as `MultiHeadAttention`, the
        feed-forward layers as `Lin`, the last of each branch scaled down by
        ``residual_scale``.
    dtype : torch.dtype, default torch.float32
        Of the parameters.
    residual_scale : float, default 1.0
        Factor on the initial weights of the layer that ends each branch (GPT-2
        uses $1/\sqrt{2 n_{\text{layers}}}$, so the residual stream's variance
        does not grow with depth).
    intermediates : {"recompute", "keep"}, default "recompute"
        For the two layer norms, the attention and the GELU: whether their
        backwards compute again what the forward computed along the way (the
        statistics, the softmax, the tanh) or read it as the forward kept it,
        which takes more memory. The gradients are the same.

    Attributes
    ----------
    attn, mlp : Residual
        The two residual connections; ``attn.block`` is
        ``Sequential(ln1, attention)`` and ``mlp.block`` is
        ``Sequential(ln2, up, gelu, down)``.
    ln1, attention, ln2, up, gelu, down : Module
        The layers inside them: `LayerNorm`, `MultiHeadAttention`, `LayerNorm`,
        `Lin` ``(d_model, d_ff)``, `GELU`, `Lin` ``(d_ff, d_model)``; the
        parameters are named after them (``ln1.gamma``, ``attention.w_q``,
        ``up.w``).

    Raises
    ------
    ValueError
        If a size is not a positive int, ``d_model`` is not a multiple of
        ``n_heads``, or ``intermediates`` is neither value.

    Examples
    --------
    >>> block = TransformerBlock(8, 2, 16, generator=torch.Generator().manual_seed(0))
    >>> x = torch.randn(3, 5, 8)
    >>> out = block(x)
    >>> out.g = torch.ones_like(out)
    >>> block.backward()
    >>> x.g.shape, len(block.parameters())
    (torch.Size([3, 5, 8]), 16)
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        *,
        causal: bool = True,
        approximate: str = "tanh",
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        residual_scale: float = 1.0,
        intermediates: str = "recompute",
    ) -> None:
        require_positive_int("d_ff", d_ff)
        kept = _intermediates(intermediates)  # for every layer that can keep
        attention = MultiHeadAttention(
            d_model,
            n_heads,
            causal=causal,
            dtype=dtype,
            generator=generator,
            intermediates=kept,
        )
        attention.w_o = attention.w_o * residual_scale
        up = Lin(d_model, d_ff, generator=generator, dtype=dtype)
        down = Lin(d_ff, d_model, generator=generator, dtype=dtype)
        down.w = down.w * residual_scale
        # Assigned in the order of the forward: the parameters are named (and
        # listed) by these attributes, "ln1.gamma", "attention.w_q", "up.w", ...
        self.ln1 = LayerNorm(d_model, dtype=dtype, intermediates=kept)
        self.attention = attention
        self.ln2 = LayerNorm(d_model, dtype=dtype, intermediates=kept)
        self.up = up
        self.gelu = GELU(approximate, intermediates=kept)
        self.down = down
        self.attn = Residual(Sequential(self.ln1, attention))
        self.mlp = Residual(Sequential(self.ln2, up, self.gelu, down))
        super().__init__(self.attn, self.mlp)

    def extra_repr(self) -> str:
        d_model, d_ff = self.up.w.shape
        n_heads, causal = self.attention.n_heads, self.attention.causal
        return f"{d_model}, {n_heads}, {d_ff}, causal={causal}"


class TinyGPT(Module):
    r"""A GPT-style language model: tokens ``(N, T)`` to logits ``(N, T, vocab)``.

    ::

        x = tok.table[tokens] + pos.table[0..T-1]       (N, T, d_model)
        x = block(x), n_layers times                    (N, T, d_model)
        h = LayerNorm(x)                                (N, T, d_model)
        logits = h @ w_head                             (N, T, vocab)

    With ``tie_weights=True`` there is no separate ``w_head``: the output
    projection is the token embedding's table, transposed
    ($\text{logits} = h\, E^\top$), so $E$ is used twice and its gradient is the
    sum of both uses, the lookup's scatter-add and the projection's
    $(\partial L/\partial \text{logits})^\top h$.

    Parameters
    ----------
    vocab : int
        Number of distinct tokens.
    max_len : int
        Longest sequence, the rows of the position embedding.
    d_model, n_heads, d_ff, n_layers : int
        Width, heads, feed-forward width and number of `TransformerBlock`.
    causal : bool, default True
        Whether position $i$ sees positions $0..i$ only (a language model).
    tie_weights : bool, default False
        Share the token embedding with the output projection.
    approximate : {"tanh", "none"}, default "tanh"
        The GELU's form.
    intermediates : {"recompute", "keep"}, default "recompute"
        For every layer norm, attention and GELU, as in `TransformerBlock`:
        backwards that compute again what the forward computed along the way,
        or read it as the forward kept it (more memory, less work).
    generator : torch.Generator or None, optional
        For the initial weights: embeddings $\mathcal N(0, 0.02^2)$ as GPT-2, the
        head $\mathcal N(0, 1/d_{\text{model}})$, the blocks as `TransformerBlock`
        with ``residual_scale`` $= 1/\sqrt{2 n_{\text{layers}}}$.
    dtype : torch.dtype, default torch.float32
        Of the parameters.

    Attributes
    ----------
    tok, pos : Embedding
        Token and position embeddings, ``(vocab, d_model)`` and
        ``(max_len, d_model)``.
    blocks : Sequential
        The `TransformerBlock` layers.
    ln_f : LayerNorm
        The final layer norm.
    head : Lin or None
        The output projection ``(d_model, vocab)``, no bias; None when tied.

    Raises
    ------
    ValueError
        If a size is not a positive int or ``intermediates`` is neither value;
        in the forward, if ``tokens`` is not a
        2-D integer tensor with values below ``vocab`` and at most ``max_len``
        positions.

    Examples
    --------
    >>> gen = torch.Generator().manual_seed(0)
    >>> gpt = TinyGPT(5, 8, 12, 3, 24, 2, tie_weights=True, generator=gen)
    >>> tokens = torch.tensor([[0, 1, 2], [4, 3, 2]])
    >>> logits = gpt(tokens)
    >>> logits.shape
    torch.Size([2, 3, 5])
    >>> logits.g = torch.randn(2, 3, 5)
    >>> gpt.backward()
    >>> gpt.tok.table.g.shape, len(gpt.parameters())
    (torch.Size([5, 12]), 36)
    >>> list(gpt.named_parameters())[:4]  # the tied table is listed once
    ['tok.table', 'pos.table', 'blocks.0.ln1.gamma', 'blocks.0.ln1.beta']
    """

    input_needs_grad = False  # the input is integer tokens

    def __init__(
        self,
        vocab: int,
        max_len: int,
        d_model: int,
        n_heads: int,
        d_ff: int,
        n_layers: int,
        *,
        causal: bool = True,
        tie_weights: bool = False,
        approximate: str = "tanh",
        intermediates: str = "recompute",
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.intermediates = _intermediates(intermediates)
        require_positive_int("vocab", vocab)
        require_positive_int("max_len", max_len)
        require_positive_int("n_layers", n_layers)
        self.tok = Embedding(vocab, d_model, generator=generator, dtype=dtype)
        self.pos = Embedding(max_len, d_model, generator=generator, dtype=dtype)
        self.tok.table *= 0.02
        self.pos.table *= 0.02
        self.blocks = Sequential(
            *(
                TransformerBlock(
                    d_model,
                    n_heads,
                    d_ff,
                    causal=causal,
                    approximate=approximate,
                    generator=generator,
                    dtype=dtype,
                    residual_scale=1 / math.sqrt(2 * n_layers),
                    intermediates=intermediates,
                )
                for _ in range(n_layers)
            )
        )
        self.ln_f = LayerNorm(d_model, dtype=dtype, intermediates=intermediates)
        self.tie_weights = bool(tie_weights)
        self.head: Lin | None = None
        if not self.tie_weights:
            self.head = Lin(
                d_model, vocab, bias=False, generator=generator, dtype=dtype
            )
            self.head.w *= math.sqrt(0.5)  # Lin's N(0, 2 / d_model), halved

    def _w_head(self) -> torch.Tensor:
        return self.tok.table.T if self.head is None else self.head.w

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        require_index("tokens", tokens)
        require_ndim("tokens", tokens, 2)
        length, max_len = tokens.shape[1], self.pos.table.shape[0]
        if length > max_len:
            raise ValueError(
                f"tokens has {length} positions (shape {shape_str(tokens)}) but the "
                f"position embedding has max_len={max_len} rows"
            )
        positions = torch.arange(length, device=tokens.device)
        # The sum broadcasts (T, d_model) over the batch.
        x = self.tok(tokens) + self.pos(positions)
        h = self.ln_f(self.blocks(x))
        return lin(h, self._w_head())

    def bwd(self, out: torch.Tensor, tokens: torch.Tensor) -> None:
        h = self.ln_f.out
        grad_h, grad_w_head, _ = lin_backward(grad_of(out), h, self._w_head())
        assert grad_h is not None  # lin_backward computes it unless told not to
        set_grad(h, grad_h)
        self.ln_f.backward()
        self.blocks.backward()
        grad_x = grad_of(self.blocks.args[0])
        set_grad(self.tok.out, grad_x)
        self.tok.backward()
        # The position embedding was broadcast over the batch: sum its gradient there.
        set_grad(self.pos.out, grad_x.sum(0))
        self.pos.backward()
        if self.head is None:
            # The table's second use: add the projection's gradient, transposed.
            set_grad(self.tok.table, grad_of(self.tok.table) + grad_w_head.T)
        else:
            set_grad(self.head.w, grad_w_head)

    def extra_repr(self) -> str:
        vocab, d_model = self.tok.table.shape
        return (
            f"vocab={vocab}, max_len={self.pos.table.shape[0]}, "
            f"d_model={d_model}, n_layers={len(self.blocks.layers)}, "
            f"tie_weights={self.tie_weights}"
        )


class TokenCrossEntropy(Module):
    r"""Mean cross-entropy over every position of a sequence, a loss.

    ``TokenCrossEntropy()(logits, targets)`` with ``logits`` ``(N, T, vocab)``
    and integer ``targets`` ``(N, T)``: the rows are flattened to
    ``(N * T, vocab)`` and handed to `backprop.functional.cross_entropy`.
    Positions whose target is ``ignore_index`` count for nothing, as with
    ``torch.nn.functional.cross_entropy(..., ignore_index=...)``: the mean runs
    over the others, and their logits get zero gradient.

    Parameters
    ----------
    ignore_index : int, default -1
        The target value of positions to leave out.

    Raises
    ------
    ValueError
        In the forward, if the shapes do not match, or every target is ignored.

    Examples
    --------
    >>> loss_fn = TokenCrossEntropy()
    >>> logits = torch.zeros(1, 3, 4)
    >>> round(loss_fn(logits, torch.tensor([[-1, 2, 0]])).item(), 4)  # log 4
    1.3863
    >>> loss_fn.backward()
    >>> logits.g[0, 0]  # an ignored position
    tensor([0., 0., 0., 0.])
    """

    def __init__(self, ignore_index: int = -1) -> None:
        self.ignore_index = ignore_index

    def _rows(
        self, logits: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        require_ndim("logits", logits, 3)
        require_index("targets", targets)
        if targets.shape != logits.shape[:2]:
            raise ValueError(
                f"targets has shape {shape_str(targets)} but logits has shape "
                f"{shape_str(logits)}: targets must be (N, T), one class per position"
            )
        keep = (targets != self.ignore_index).reshape(-1)
        if not keep.any():
            raise ValueError(
                f"every target is ignore_index={self.ignore_index}: nothing to average"
            )
        flat = logits.reshape(-1, logits.shape[-1])
        return flat[keep], targets.reshape(-1)[keep], keep

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        rows, kept_targets, _ = self._rows(logits, targets)
        return cross_entropy(rows, kept_targets)

    def bwd(
        self, out: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor
    ) -> None:
        rows, kept_targets, keep = self._rows(logits, targets)
        grad = torch.zeros(
            keep.shape[0], logits.shape[-1], dtype=logits.dtype, device=logits.device
        )
        grad[keep] = cross_entropy_backward(rows, kept_targets)
        set_grad(logits, grad.reshape(logits.shape))

    def extra_repr(self) -> str:
        return f"ignore_index={self.ignore_index}"
