"""attention_backward with non-square shapes, and its block-wise version against it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import backprop.attention as attention_module
from backprop.attention import (
    attention_backward,
    attention_backward_blockwise,
    causal_mask,
)
from oracles import assert_matches, autograd_grads
from strategies import (
    attention_inputs,
    attention_mask_kinds,
    attention_shapes,
    dtypes,
    layouts,
    seeds,
    tolerance,
)


@pytest.mark.parametrize(
    ("lead", "lq", "lk", "d", "dv"),
    [((), 3, 5, 2, 4), ((2,), 5, 2, 4, 3), ((2, 3), 1, 4, 3, 1), ((1,), 4, 1, 1, 2)],
)
@pytest.mark.parametrize("mask_kind", ["none", "causal"])
def test_attention_backward_with_lq_not_lk_and_d_not_dv(lead, lq, lk, d, dv, mask_kind):
    # Every size differs from the others, so a transposed gradient has the wrong shape
    # or the wrong values.
    shapes = dict(q=(*lead, lq, d), k=(*lead, lk, d), v=(*lead, lk, dv))
    shapes["scores"] = shapes["mask"] = (lq, lk)
    q, k, v, mask, grad_out = attention_inputs(
        shapes, torch.float64, "contiguous", mask_kind, 1
    )

    def sdpa(q_, k_, v_):
        return F.scaled_dot_product_attention(q_, k_, v_, attn_mask=mask)

    expected = autograd_grads(sdpa, [q, k, v], grad_out)
    for got, e in zip(
        attention_backward(grad_out, q, k, v, mask), expected, strict=True
    ):
        assert_matches(got, e)


@settings(max_examples=80, deadline=None)
@given(
    shapes=attention_shapes(),
    dtype=dtypes,
    layout=layouts,
    mask_kind=attention_mask_kinds,
    block_size=st.integers(1, 6),
    seed=seeds,
)
def test_blockwise_backward_equals_the_full_one(
    shapes, dtype, layout, mask_kind, block_size, seed
):
    q, k, v, mask, grad_out = attention_inputs(shapes, dtype, layout, mask_kind, seed)
    full = attention_backward(grad_out, q, k, v, mask)
    blocks = attention_backward_blockwise(
        grad_out, q, k, v, mask, block_size=block_size
    )
    for name, got, expected in zip(
        ("grad_q", "grad_k", "grad_v"), blocks, full, strict=True
    ):
        assert got.shape == expected.shape and got.dtype == dtype, name
        torch.testing.assert_close(got, expected, **tolerance(dtype))


@settings(max_examples=20, deadline=None)
@given(shapes=attention_shapes(), mask_kind=attention_mask_kinds, seed=seeds)
def test_blockwise_backward_matches_autograd(shapes, mask_kind, seed):
    q, k, v, mask, grad_out = attention_inputs(
        shapes, torch.float64, "contiguous", mask_kind, seed
    )

    def sdpa(q_, k_, v_):
        return F.scaled_dot_product_attention(q_, k_, v_, attn_mask=mask)

    expected = autograd_grads(sdpa, [q, k, v], grad_out)
    got = attention_backward_blockwise(grad_out, q, k, v, mask, block_size=2)
    for g, e in zip(got, expected, strict=True):
        assert_matches(g, e)


def test_blockwise_backward_never_builds_a_full_row_of_scores(monkeypatch):
    widths = []
    real = attention_module._masked_scores

    def recording(q, k, mask):
        scores = real(q, k, mask)
        widths.append(scores.shape[-1])
        return scores

    monkeypatch.setattr(attention_module, "_masked_scores", recording)
    q, k = torch.randn(2, 6, 3), torch.randn(2, 10, 3)
    v, g = torch.randn(2, 10, 4), torch.randn(2, 6, 4)
    attention_backward_blockwise(g, q, k, v, causal_mask(6, 10), block_size=4)
    assert widths and max(widths) <= 4, widths
    assert sorted(set(widths)) == [2, 4]  # blocks of 4, 4 and the last 2 keys


def test_blockwise_block_size_must_be_positive():
    q, g = torch.randn(3, 2), torch.randn(3, 2)
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match=r"block_size must be a positive int, got"):
            attention_backward_blockwise(g, q, q, q, block_size=bad)
    with pytest.raises(ValueError, match=r"grad_out must have shape \(3, 2\)"):
        attention_backward_blockwise(torch.randn(3, 3), q, q, q)
