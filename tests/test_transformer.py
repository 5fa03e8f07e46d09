"""GELU, Residual, TransformerBlock, TinyGPT and TokenCrossEntropy against
PyTorch: forwards against torch.nn, every .g against autograd."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from backprop.exercises import check_gradient
from backprop.exercises.catalogues import CATALOGUES
from backprop.functional import embedding_backward, gelu, gelu_backward, layernorm
from backprop.modules import LayerNorm, Lin, Model, Sequential
from backprop.optim import AdamW
from backprop.transformer import (
    GELU,
    Residual,
    TinyGPT,
    TokenCrossEntropy,
    TransformerBlock,
)
from oracles import autograd_grads
from strategies import dtypes, layouts, make_tensor, seeds, shapes, tolerance

f64 = torch.float64
APPROXIMATE = st.sampled_from(["tanh", "none"])


# ------------------------------------------------------------------------ gelu


@settings(max_examples=40, deadline=None)
@given(
    shape=shapes(min_dims=0, max_dims=3),
    dtype=dtypes,
    layout=layouts,
    approximate=APPROXIMATE,
    seed=seeds,
    scale=st.sampled_from([1.0, 4.0, 30.0]),
)
def test_gelu_forward_and_backward_match_torch(
    shape, dtype, layout, approximate, seed, scale
):
    x = make_tensor(shape, dtype, layout, seed=seed, scale=scale)
    grad_out = make_tensor(shape, dtype, seed=seed + 1)
    expected = F.gelu(x, approximate=approximate)
    torch.testing.assert_close(gelu(x, approximate), expected, **tolerance(dtype))
    (want,) = autograd_grads(
        lambda t: F.gelu(t, approximate=approximate), [x], grad_out
    )
    got = gelu_backward(grad_out, x, approximate)
    torch.testing.assert_close(got, want, **tolerance(dtype))
    assert torch.isfinite(got).all()


def test_gelu_module_fills_inp_g():
    x = make_tensor((3, 4), f64, seed=1)
    act = GELU("none")
    out = act(x)
    out.g = make_tensor((3, 4), f64, seed=2)
    act.backward()
    (want,) = autograd_grads(lambda t: F.gelu(t), [x], out.g)
    torch.testing.assert_close(x.g, want, **tolerance(f64))


def test_gelu_rejects_an_unknown_approximation():
    with pytest.raises(ValueError, match="approximate must be 'tanh' or 'none'"):
        GELU("erf")
    with pytest.raises(ValueError, match="shape"):
        gelu_backward(torch.ones(2), torch.ones(3))


# -------------------------------------------------------------------- residual


def _randomise(params, seed, scale=0.5):
    """Random values in every parameter (in place): a lost term or path shows."""
    for i, p in enumerate(params):
        p.copy_(make_tensor(tuple(p.shape), p.dtype, seed=seed + i, scale=scale))


@settings(max_examples=25, deadline=None)
@given(
    batch=shapes(min_dims=1, max_dims=2, max_side=4),
    d=st.integers(1, 5),
    layout=layouts,
    seed=seeds,
)
def test_residual_adds_the_two_paths(batch, d, layout, seed):
    gen = torch.Generator().manual_seed(seed)
    block = Sequential(LayerNorm(d, dtype=f64), Lin(d, d, generator=gen, dtype=f64))
    _randomise(block.parameters(), seed)
    res = Residual(block)
    x = make_tensor((*batch, d), f64, layout, seed=seed)
    out = res(x)
    out.g = make_tensor(tuple(out.shape), f64, seed=seed + 7)
    res.backward()

    def forward(x, gamma, beta, w, b):
        return x + (layernorm(x, gamma, beta) @ w + b)

    want = autograd_grads(forward, [x, *block.parameters()], out.g)
    for got, expected in zip(
        [x.g, *(p.g for p in block.parameters())], want, strict=True
    ):
        torch.testing.assert_close(got, expected, **tolerance(f64))


def test_residual_rejects_a_block_that_changes_the_shape():
    res = Residual(Lin(3, 2))
    with pytest.raises(ValueError, match=r"shape \(4, 3\) to shape \(4, 2\)"):
        res(torch.randn(4, 3))
    with pytest.raises(ValueError, match="block must be a Module"):
        Residual(torch.nn.Linear(2, 2))  # type: ignore[arg-type]


# ------------------------------------------------- the same model from torch.nn


class TorchBlock(torch.nn.Module):
    """A pre-norm block of torch.nn layers, holding a TransformerBlock's weights."""

    def __init__(self, block: TransformerBlock, approximate: str) -> None:
        super().__init__()
        named = block.named_parameters()
        d_model, d_ff = named["up.w"].shape
        attention = block.attention
        dtype = named["up.w"].dtype
        self.causal = attention.causal
        self.ln1 = torch.nn.LayerNorm(d_model, dtype=dtype)
        self.attn = torch.nn.MultiheadAttention(
            d_model, attention.n_heads, batch_first=True, dtype=dtype
        )
        self.ln2 = torch.nn.LayerNorm(d_model, dtype=dtype)
        self.up = torch.nn.Linear(d_model, d_ff, dtype=dtype)
        self.gelu = torch.nn.GELU(approximate=approximate)
        self.down = torch.nn.Linear(d_ff, d_model, dtype=dtype)
        with torch.no_grad():
            self.ln1.weight.copy_(named["ln1.gamma"])
            self.ln1.bias.copy_(named["ln1.beta"])
            self.attn.in_proj_weight.copy_(
                torch.cat([named[f"attention.w_{n}"].T for n in "qkv"])
            )
            self.attn.in_proj_bias.copy_(
                torch.cat([named[f"attention.b_{n}"] for n in "qkv"])
            )
            self.attn.out_proj.weight.copy_(named["attention.w_o"].T)
            self.attn.out_proj.bias.copy_(named["attention.b_o"])
            self.ln2.weight.copy_(named["ln2.gamma"])
            self.ln2.bias.copy_(named["ln2.beta"])
            self.up.weight.copy_(named["up.w"].T)
            self.up.bias.copy_(named["up.b"])
            self.down.weight.copy_(named["down.w"].T)
            self.down.bias.copy_(named["down.b"])

    def grads(self) -> dict[str, torch.Tensor]:
        """The gradients autograd left, under TransformerBlock's names and layout."""
        d = self.ln1.weight.shape[0]
        w_in, b_in = self.attn.in_proj_weight.grad, self.attn.in_proj_bias.grad
        named = {"ln1.gamma": self.ln1.weight.grad, "ln1.beta": self.ln1.bias.grad}
        for i, n in enumerate("qkv"):
            named[f"attention.w_{n}"] = w_in[i * d : (i + 1) * d].T
            named[f"attention.b_{n}"] = b_in[i * d : (i + 1) * d]
        named["attention.w_o"] = self.attn.out_proj.weight.grad.T
        named["attention.b_o"] = self.attn.out_proj.bias.grad
        named["ln2.gamma"], named["ln2.beta"] = self.ln2.weight.grad, self.ln2.bias.grad
        named["up.w"], named["up.b"] = self.up.weight.grad.T, self.up.bias.grad
        named["down.w"] = self.down.weight.grad.T
        named["down.b"] = self.down.bias.grad
        return named

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        mask = (
            torch.ones(length, length, dtype=torch.bool).triu(1)
            if self.causal
            else None
        )
        a = self.ln1(x)
        x = x + self.attn(a, a, a, attn_mask=mask, need_weights=False)[0]
        return x + self.down(self.gelu(self.up(self.ln2(x))))


class TorchGPT(torch.nn.Module):
    """TinyGPT built from torch.nn, with a TinyGPT's weights."""

    def __init__(self, gpt: TinyGPT, approximate: str) -> None:
        super().__init__()
        vocab, d_model = gpt.tok.table.shape
        dtype = gpt.tok.table.dtype
        self.tok = torch.nn.Embedding(vocab, d_model, dtype=dtype)
        self.pos = torch.nn.Embedding(gpt.pos.table.shape[0], d_model, dtype=dtype)
        self.blocks = torch.nn.ModuleList(
            TorchBlock(block, approximate) for block in gpt.blocks.layers
        )
        self.ln_f = torch.nn.LayerNorm(d_model, dtype=dtype)
        self.head = torch.nn.Linear(d_model, vocab, bias=False, dtype=dtype)
        with torch.no_grad():
            self.tok.weight.copy_(gpt.tok.table)
            self.pos.weight.copy_(gpt.pos.table)
            self.ln_f.weight.copy_(gpt.ln_f.gamma)
            self.ln_f.bias.copy_(gpt.ln_f.beta)
            if gpt.head is None:
                self.head.weight = self.tok.weight  # tied: one Parameter, two uses
            else:
                self.head.weight.copy_(gpt.head.w.T)
        self.tied = gpt.head is None

    def grads(self) -> dict[str, torch.Tensor]:
        named = {"tok.table": self.tok.weight.grad, "pos.table": self.pos.weight.grad}
        for i, block in enumerate(self.blocks):
            for name, g in block.grads().items():
                named[f"blocks.{i}.{name}"] = g
        named["ln_f.gamma"], named["ln_f.beta"] = (
            self.ln_f.weight.grad,
            self.ln_f.bias.grad,
        )
        if not self.tied:
            named["head.w"] = self.head.weight.grad.T
        return named

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.tok(tokens) + self.pos(torch.arange(tokens.shape[1]))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


@st.composite
def gpt_configs(draw):
    n_heads = draw(st.integers(1, 3))
    return dict(
        n=draw(st.integers(1, 3)),
        length=draw(st.integers(1, 5)),
        vocab=draw(st.integers(2, 7)),
        n_heads=n_heads,
        d_model=n_heads * draw(st.integers(1, 3)),
        d_ff=draw(st.integers(1, 9)),
        n_layers=draw(st.integers(1, 2)),
        causal=draw(st.booleans()),
        tie_weights=draw(st.booleans()),
        approximate=draw(APPROXIMATE),
        seed=draw(seeds),
    )


# A small model for the examples below; each changes what it is about.
SMALL_GPT = dict(
    n=2,
    length=5,
    vocab=6,
    n_heads=2,
    d_model=8,
    d_ff=12,
    n_layers=2,
    causal=True,
    tie_weights=False,
    approximate="tanh",
    seed=4,
)


def _random_gpt(config, dtype=f64):
    gpt = TinyGPT(
        config["vocab"],
        config["length"] + 2,
        config["d_model"],
        config["n_heads"],
        config["d_ff"],
        config["n_layers"],
        causal=config["causal"],
        tie_weights=config["tie_weights"],
        approximate=config["approximate"],
        generator=torch.Generator().manual_seed(config["seed"]),
        dtype=dtype,
    )
    _randomise(gpt.parameters(), config["seed"])
    return gpt


def _tokens(config, seed_offset=0):
    gen = torch.Generator().manual_seed(config["seed"] + seed_offset)
    shape = (config["n"], config["length"])
    return torch.randint(config["vocab"], shape, generator=gen)


@settings(max_examples=40, deadline=None)
@given(config=gpt_configs())
def test_tiny_gpt_matches_torch_nn_logits_and_gradients(config):
    gpt = _random_gpt(config)
    tokens, targets = _tokens(config), _tokens(config, 1)
    model = Model([gpt], TokenCrossEntropy())
    loss = model(tokens, targets)
    model.backward()

    theirs = TorchGPT(gpt, config["approximate"])
    logits = theirs(tokens)
    torch.testing.assert_close(gpt.out, logits.detach(), **tolerance(f64))
    their_loss = F.cross_entropy(
        logits.reshape(-1, config["vocab"]), targets.reshape(-1)
    )
    torch.testing.assert_close(loss, their_loss.detach(), **tolerance(f64))
    their_loss.backward()
    ours = gpt.named_parameters()
    want = theirs.grads()
    assert ours.keys() == want.keys()
    for name, p in ours.items():
        torch.testing.assert_close(p.g, want[name], **tolerance(f64), msg=name)


@settings(max_examples=25, deadline=None)
@given(config=gpt_configs(), layout=layouts)
def test_transformer_block_gradients_match_autograd(config, layout):
    gen = torch.Generator().manual_seed(config["seed"])
    block = TransformerBlock(
        config["d_model"],
        config["n_heads"],
        config["d_ff"],
        causal=config["causal"],
        approximate=config["approximate"],
        generator=gen,
        dtype=f64,
    )
    _randomise(block.parameters(), config["seed"])
    shape = (config["n"], config["length"], config["d_model"])
    x = make_tensor(shape, f64, layout, seed=config["seed"])
    out = block(x)
    out.g = make_tensor(shape, f64, seed=config["seed"] + 3)
    block.backward()

    theirs = TorchBlock(block, config["approximate"])
    x_leaf = x.clone().requires_grad_(True)
    their_out = theirs(x_leaf)
    torch.testing.assert_close(out, their_out.detach(), **tolerance(f64))
    their_out.backward(out.g)
    torch.testing.assert_close(x.g, x_leaf.grad, **tolerance(f64))
    want = theirs.grads()
    for name, p in block.named_parameters().items():
        torch.testing.assert_close(p.g, want[name], **tolerance(f64), msg=name)


@pytest.mark.parametrize("tie_weights", [False, True])
def test_tiny_gpt_float64_gradients_match_its_own_forward_under_autograd(tie_weights):
    # A second oracle: autograd differentiating our own forward code (the functional
    # layers are torch operations), on a batch of 1 and T = 1.
    for n, length in ((1, 1), (2, 6)):
        config = dict(
            SMALL_GPT,
            n=n,
            length=length,
            vocab=7,
            d_model=6,
            d_ff=10,
            tie_weights=tie_weights,
            seed=3,
        )
        gpt = _random_gpt(config)
        tokens, targets = _tokens(config), _tokens(config, 1)
        params = gpt.parameters()
        loss_fn = TokenCrossEntropy()
        for p in params:
            p.requires_grad_(True)
        want = torch.autograd.grad(loss_fn(gpt(tokens), targets), params)
        for p in params:
            p.requires_grad_(False)
        model = Model([gpt], loss_fn)
        model(tokens, targets)
        model.backward()
        for p, expected in zip(params, want, strict=True):
            torch.testing.assert_close(p.g, expected, **tolerance(f64))


def test_tied_table_gradient_is_the_sum_of_both_uses():
    config = dict(
        SMALL_GPT,
        length=4,
        vocab=5,
        n_heads=1,
        d_model=4,
        d_ff=6,
        n_layers=1,
        tie_weights=True,
        seed=11,
    )
    gpt = _random_gpt(config)
    tokens = _tokens(config)
    logits = gpt(tokens)
    logits.g = make_tensor(tuple(logits.shape), f64, seed=5)
    gpt.backward()
    # The projection's use alone: h^T G, transposed to the table's shape.
    h = gpt.ln_f.out
    projection_use = (logits.g.reshape(-1, 5).T @ h.reshape(-1, 4)).reshape(5, 4)
    # The lookup's use: the scatter-add of the gradient reaching the embeddings.
    lookup_use = embedding_backward(gpt.blocks.args[0].g, tokens, gpt.tok.table)
    torch.testing.assert_close(gpt.tok.table.g, lookup_use + projection_use)
    assert projection_use.abs().max() > 1e-3


def test_tiny_gpt_rejects_bad_tokens():
    gpt = TinyGPT(4, 3, 4, 2, 8, 1)
    with pytest.raises(ValueError, match="max_len=3"):
        gpt(torch.zeros(1, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="tokens"):
        gpt(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="contains 4"):
        gpt(torch.tensor([[0, 4]]))


def test_tiny_gpt_float32_matches_float64_closely():
    config = dict(SMALL_GPT)
    gpt64, gpt32 = _random_gpt(config), _random_gpt(config, torch.float32)
    tokens = _tokens(config)
    torch.testing.assert_close(
        gpt32(tokens).double(), gpt64(tokens), rtol=1e-4, atol=1e-5
    )


# ------------------------------------------------------------------------ loss


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 3),
    length=st.integers(1, 5),
    vocab=st.integers(1, 5),
    seed=seeds,
    layout=layouts,
)
def test_token_cross_entropy_matches_torch_with_ignore_index(
    n, length, vocab, seed, layout
):
    logits = make_tensor((n, length, vocab), f64, layout, seed=seed, scale=3.0)
    gen = torch.Generator().manual_seed(seed)
    targets = torch.randint(vocab, (n, length), generator=gen)
    targets[torch.rand(n, length, generator=gen) < 0.3] = -1
    targets[0, 0] = 0  # at least one position counts
    loss_fn = TokenCrossEntropy()
    loss = loss_fn(logits, targets)
    loss_fn.backward()

    def theirs(z):
        return F.cross_entropy(
            z.reshape(-1, vocab), targets.reshape(-1), ignore_index=-1
        )

    torch.testing.assert_close(loss, theirs(logits), **tolerance(f64))
    (want,) = autograd_grads(theirs, [logits])
    torch.testing.assert_close(logits.g, want, **tolerance(f64))


def test_token_cross_entropy_errors():
    loss_fn = TokenCrossEntropy()
    with pytest.raises(ValueError, match="targets must be"):
        loss_fn(torch.zeros(2, 3, 4), torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="every target is ignore_index"):
        loss_fn(torch.zeros(1, 2, 4), torch.full((1, 2), -1))


# ------------------------------------------------------------ the post's exercise
# Its typical mistakes are in the grader's catalogue, "residual-layernorm", and
# tests/test_catalogues.py feeds each of them to the grader.


def residual_layernorm_backward(grad_out, x, gamma, beta):
    """The post's solution: the identity path plus layer norm's backward."""
    mean = x.mean(-1, keepdim=True)
    inv_std = 1 / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + 1e-5)
    x_hat = (x - mean) * inv_std
    g_hat = grad_out * gamma
    grad_ln = inv_std * (
        g_hat
        - g_hat.mean(-1, keepdim=True)
        - x_hat * (g_hat * x_hat).mean(-1, keepdim=True)
    )
    rows = tuple(range(x.ndim - 1))
    return grad_out + grad_ln, (grad_out * x_hat).sum(rows), grad_out.sum(rows)


def test_exercise_solution_passes_the_grader():
    example = CATALOGUES["residual-layernorm"].example()
    report = check_gradient(
        example.forward,
        residual_layernorm_backward,
        example.inputs,
        names=example.names,
        catalogue="residual-layernorm",
    )
    assert report.ok, str(report)


def test_layer_norm_reference_is_torchs():
    # The catalogue's forward is torch's layer norm; the post's is the library's.
    example = CATALOGUES["residual-layernorm"].example()
    x, gamma, beta = example.inputs
    torch.testing.assert_close(
        example.forward(x, gamma, beta), x + layernorm(x, gamma, beta)
    )
    assert math.isclose(1e-5, torch.nn.LayerNorm(5).eps)


def test_tiny_gpt_takes_non_contiguous_tokens():
    config = dict(
        SMALL_GPT,
        n=3,
        length=4,
        d_model=4,
        d_ff=5,
        n_layers=1,
        causal=False,
        tie_weights=True,
        approximate="none",
        seed=8,
    )
    gpt = _random_gpt(config)
    base = torch.randint(6, (4, 3), generator=torch.Generator().manual_seed(1))
    tokens = base.T  # (3, 4), not contiguous
    assert not tokens.is_contiguous()
    grad = make_tensor((3, 4, 6), f64, seed=2)
    results = []
    for t in (tokens, tokens.contiguous()):
        logits = gpt(t)
        logits.g = grad
        gpt.backward()
        results.append((logits.clone(), [p.g.clone() for p in gpt.parameters()]))
    torch.testing.assert_close(results[0][0], results[1][0], **tolerance(f64))
    for a, b in zip(results[0][1], results[1][1], strict=True):
        torch.testing.assert_close(a, b, **tolerance(f64))


def test_training_with_our_gradients_follows_autograds_run():
    # AdamW on our .g and on autograd's gradients, from the same weights and data:
    # the same parameters after every step, to float64 rounding. Except the key
    # bias b_k: its gradient is zero (a softmax ignores a constant added to a row of
    # scores), both backwards return rounding noise of about 1e-17, and Adam divides
    # that noise by itself plus eps, so b_k moves by up to lr * 1e-17 / eps per step,
    # differently in each run. b_k changes no output, so the losses stay equal.
    config = dict(SMALL_GPT, n=4, seed=9)
    ours, theirs = _random_gpt(config), _random_gpt(config)
    model = Model([ours], TokenCrossEntropy())
    opt_ours = AdamW(ours.parameters(), lr=1e-2)
    opt_theirs = AdamW(theirs.parameters(), lr=1e-2)
    for step in range(5):
        tokens, targets = _tokens(config, 10 + step), _tokens(config, 20 + step)
        model(tokens, targets)
        model.backward()
        params = theirs.parameters()
        for p in params:
            p.requires_grad_(True)
        loss = TokenCrossEntropy()(theirs(tokens), targets)
        grads = torch.autograd.grad(loss, params)
        for p, g in zip(params, grads, strict=True):
            p.requires_grad_(False)
            p.g = g
        opt_ours.step()
        opt_theirs.step()
        theirs_named = theirs.named_parameters()
        for name, a in ours.named_parameters().items():
            b = theirs_named[name]
            if name.endswith("attention.b_k"):
                assert (a - b).abs().max() < (step + 1) * 1e-2 * 1e-16 / 1e-8
            else:
                torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, msg=name)
        torch.testing.assert_close(ours(tokens), theirs(tokens), rtol=1e-12, atol=1e-12)
