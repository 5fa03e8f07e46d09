"""Keeping the forward's intermediates or computing them again: the same gradients.

Layer norm's statistics, attention's softmax and the GELU's tanh (or erf) can be
kept by the forward (``intermediates="keep"``) or computed again by the backward
(``"recompute"``, the functional convention). Both are checked against autograd
through torch's own functions (``F.layer_norm``, ``F.gelu``, a softmax attention)
over many shapes, and against each other on whole models.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from backprop.activations import _gelu_inner
from backprop.attention import _attention_probs, attention_backward, causal_mask
from backprop.functional import gelu_backward, layernorm_backward
from backprop.modules import LayerNorm, Model, MultiHeadAttention
from backprop.normalization import _layernorm_keeping_stats
from backprop.transformer import GELU, TinyGPT, TokenCrossEntropy, TransformerBlock
from oracles import autograd_grads
from strategies import dtypes, layouts, make_mask, make_tensor, seeds, shapes, tolerance

f64 = torch.float64
STRATEGIES = ("recompute", "keep")


# ------------------------------------------------------------ the functional forms


@settings(max_examples=40, deadline=None)
@given(
    shape=shapes(min_dims=1, max_dims=4, max_side=5),
    dtype=dtypes,
    layout=layouts,
    seed=seeds,
)
def test_layernorm_backward_from_kept_statistics_matches_autograd(
    shape, dtype, layout, seed
):
    x = make_tensor(shape, dtype, layout, seed=seed, scale=3.0) + 1
    gamma = make_tensor(shape[-1:], dtype, seed=seed + 1)
    beta = make_tensor(shape[-1:], dtype, seed=seed + 2)
    grad_out = make_tensor(shape, dtype, seed=seed + 3)
    out, stats = _layernorm_keeping_stats(x, gamma, beta, 1e-5)
    # The oracle in float64: torch's float32 layer norm rounds x - mean to a
    # nonzero number where a vector has one feature.
    x64, gamma64, beta64 = (t.double() for t in (x, gamma, beta))
    want_out = F.layer_norm(x64, shape[-1:], gamma64, beta64, 1e-5)
    torch.testing.assert_close(out, want_out.to(dtype), **tolerance(dtype))
    want = autograd_grads(
        lambda x, g, b: F.layer_norm(x, shape[-1:], g, b, 1e-5),
        [x64, gamma64, beta64],
        grad_out.double(),
    )
    got = layernorm_backward(grad_out, x, gamma, beta, stats=stats)
    for g, w in zip(got, want, strict=True):
        # Against float64, float32's rounding grows with the gradient's size.
        rtol, atol = tolerance(dtype).values()
        atol *= max(1.0, w.abs().max().item())
        torch.testing.assert_close(g, w.to(dtype), rtol=rtol, atol=atol)


@settings(max_examples=40, deadline=None)
@given(
    shape=shapes(min_dims=0, max_dims=3),
    dtype=dtypes,
    layout=layouts,
    approximate=st.sampled_from(["tanh", "none"]),
    seed=seeds,
    scale=st.sampled_from([1.0, 4.0, 30.0]),
)
def test_gelu_backward_from_the_kept_inner_value_matches_autograd(
    shape, dtype, layout, approximate, seed, scale
):
    x = make_tensor(shape, dtype, layout, seed=seed, scale=scale)
    grad_out = make_tensor(shape, dtype, seed=seed + 1)
    inner = _gelu_inner(x, approximate)
    torch.testing.assert_close(
        0.5 * x * (1 + inner), F.gelu(x, approximate=approximate), **tolerance(dtype)
    )
    (want,) = autograd_grads(
        lambda t: F.gelu(t, approximate=approximate), [x], grad_out
    )
    got = gelu_backward(grad_out, x, approximate, inner=inner)
    torch.testing.assert_close(got, want, **tolerance(dtype))
    assert torch.isfinite(got).all()


def _softmax_attention(q, k, v, mask):
    """Attention from torch's softmax, independent of the library's."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


@settings(max_examples=40, deadline=None)
@given(
    batch=shapes(min_dims=0, max_dims=2, max_side=3),
    lq=st.integers(1, 5),
    lk=st.integers(1, 5),
    d=st.integers(1, 4),
    dv=st.integers(1, 4),
    masked=st.sampled_from([None, "causal", "random"]),
    dtype=dtypes,
    layout=layouts,
    seed=seeds,
)
def test_attention_backward_from_the_kept_softmax_matches_autograd(
    batch, lq, lk, d, dv, masked, dtype, layout, seed
):
    q = make_tensor((*batch, lq, d), dtype, layout, seed=seed)
    k = make_tensor((*batch, lk, d), dtype, layout, seed=seed + 1)
    v = make_tensor((*batch, lk, dv), dtype, layout, seed=seed + 2)
    grad_out = make_tensor((*batch, lq, dv), dtype, seed=seed + 3)
    mask = None
    if masked == "causal":
        mask = causal_mask(lq, lk) | (torch.arange(lk) == 0)  # a key for every query
    elif masked == "random":
        mask = make_mask((*batch, lq, lk), seed=seed + 4)
        mask[..., 0] = True
    probs = _attention_probs(q, k, mask)
    want = autograd_grads(_softmax_attention, [q, k, v, mask], grad_out)
    got = attention_backward(grad_out, q, k, v, mask, probs=probs)
    for g, w in zip(got, want[:3], strict=True):
        torch.testing.assert_close(g, w, **tolerance(dtype))


def test_kept_intermediates_of_the_wrong_shape_are_errors():
    x, gamma = torch.randn(2, 3, 4), torch.ones(4)
    bad_stats = (torch.zeros(2, 3), torch.ones(2, 3, 1))
    with pytest.raises(
        ValueError, match=r"stats' the mean must have shape \(2, 3, 1\)"
    ):
        layernorm_backward(torch.ones(2, 3, 4), x, gamma, gamma, stats=bad_stats)
    with pytest.raises(ValueError, match=r"inner has shape \(3,\) but x has shape"):
        gelu_backward(torch.ones(2, 3), torch.ones(2, 3), inner=torch.ones(3))
    q = torch.randn(2, 5, 4)
    with pytest.raises(ValueError, match=r"probs must have shape \(2, 5, 5\)"):
        attention_backward(torch.ones(2, 5, 4), q, q, q, probs=torch.ones(2, 5, 4))


@pytest.mark.parametrize(
    "make",
    [
        lambda s: LayerNorm(3, intermediates=s),
        lambda s: GELU(intermediates=s),
        lambda s: MultiHeadAttention(4, 2, intermediates=s),
        lambda s: TransformerBlock(4, 2, 8, intermediates=s),
        lambda s: TinyGPT(5, 4, 4, 2, 8, 1, intermediates=s),
    ],
)
def test_an_unknown_strategy_is_an_error(make):
    with pytest.raises(
        ValueError, match="intermediates must be 'recompute' or 'keep', got 'cache'"
    ):
        make("cache")


# ------------------------------------------------------------------- the modules


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 3),
    length=st.integers(1, 5),
    n_heads=st.integers(1, 3),
    head_size=st.integers(1, 3),
    causal=st.booleans(),
    layout=layouts,
    seed=seeds,
)
def test_attention_module_keeps_or_recomputes_with_the_same_gradients(
    n, length, n_heads, head_size, causal, layout, seed
):
    d_model = n_heads * head_size
    x = make_tensor((n, length, d_model), f64, layout, seed=seed)
    grad_out = make_tensor((n, length, d_model), f64, seed=seed + 1)
    found = {}
    for strategy in STRATEGIES:
        gen = torch.Generator().manual_seed(seed)
        mha = MultiHeadAttention(
            d_model, n_heads, causal=causal, dtype=f64, generator=gen,
            intermediates=strategy,
        )  # fmt: skip
        mha.b_q.normal_(generator=gen)
        mha.b_v.normal_(generator=gen)
        x_in = x.clone()
        out = mha(x_in)
        out.g = grad_out
        mha.backward()
        found[strategy] = [x_in.g, *(p.g for p in mha.parameters())]
        params = mha.parameters()

    def forward(x, w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o):
        def heads(t):
            return t.reshape(n, length, n_heads, head_size).transpose(1, 2)

        q, k, v = heads(x @ w_q + b_q), heads(x @ w_k + b_k), heads(x @ w_v + b_v)
        mask = causal_mask(length) if causal else None
        merged = _softmax_attention(q, k, v, mask).transpose(1, 2)
        return merged.reshape(n, length, d_model) @ w_o + b_o

    want = autograd_grads(forward, [x, *params], grad_out)
    for strategy in STRATEGIES:
        for got, expected in zip(found[strategy], want, strict=True):
            torch.testing.assert_close(got, expected, **tolerance(f64))


@pytest.mark.parametrize("approximate", ["tanh", "none"])
def test_gelu_and_layernorm_modules_keep_what_they_say(approximate):
    x = make_tensor((3, 5), f64, seed=1, scale=3.0)
    grad_out = make_tensor((3, 5), f64, seed=2)
    (want_gelu,) = autograd_grads(
        lambda t: F.gelu(t, approximate=approximate), [x], grad_out
    )
    want_norm = autograd_grads(
        lambda t: F.layer_norm(t, (5,)), [x], grad_out
    )  # gamma = 1, beta = 0, as the module starts
    for strategy in STRATEGIES:
        act, norm = (
            GELU(approximate, intermediates=strategy),
            LayerNorm(5, dtype=f64, intermediates=strategy),
        )
        for layer, want in ((act, want_gelu), (norm, want_norm[0])):
            x_in = x.clone()
            out = layer(x_in)
            out.g = grad_out
            layer.backward()
            torch.testing.assert_close(x_in.g, want, **tolerance(f64))
            assert hasattr(layer, "saved") == (strategy == "keep")


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
        approximate=draw(st.sampled_from(["tanh", "none"])),
        seed=draw(seeds),
    )


def _gpt(config, strategy, dtype=f64):
    gen = torch.Generator().manual_seed(config["seed"])
    gpt = TinyGPT(
        config["vocab"],
        config["length"],
        config["d_model"],
        config["n_heads"],
        config["d_ff"],
        config["n_layers"],
        causal=config["causal"],
        tie_weights=config["tie_weights"],
        approximate=config["approximate"],
        intermediates=strategy,
        generator=gen,
        dtype=dtype,
    )
    for p in gpt.parameters():  # away from the initial values: every term shows
        p.add_(torch.randn(p.shape, generator=gen, dtype=dtype) * 0.3)
    return gpt


@settings(max_examples=25, deadline=None)
@given(config=gpt_configs())
def test_tiny_gpt_keep_and_recompute_match_autograd(config):
    gen = torch.Generator().manual_seed(config["seed"] + 1)
    shape = (config["n"], config["length"])
    tokens = torch.randint(config["vocab"], shape, generator=gen)
    targets = torch.randint(config["vocab"], shape, generator=gen)
    # Autograd through the recompute model's forward, the plain functional layers.
    reference = _gpt(config, "recompute")
    params = reference.parameters()
    for p in params:
        p.requires_grad_(True)
    want = torch.autograd.grad(TokenCrossEntropy()(reference(tokens), targets), params)
    for p in params:
        p.requires_grad_(False)
    for strategy in STRATEGIES:
        gpt = _gpt(config, strategy)
        model = Model([gpt], TokenCrossEntropy())
        model(tokens, targets)
        model.backward()
        for p, expected in zip(gpt.parameters(), want, strict=True):
            torch.testing.assert_close(p.g, expected, **tolerance(f64))


def test_a_kept_model_computes_the_logits_of_the_recomputing_one():
    config = dict(
        n=4, length=6, vocab=7, n_heads=2, d_model=8, d_ff=16, n_layers=2,
        causal=True, tie_weights=True, approximate="tanh", seed=9,
    )  # fmt: skip
    tokens = torch.randint(7, (4, 6), generator=torch.Generator().manual_seed(0))
    logits = {s: _gpt(config, s, torch.float32)(tokens) for s in STRATEGIES}
    torch.testing.assert_close(logits["keep"], logits["recompute"], rtol=0, atol=1e-6)
