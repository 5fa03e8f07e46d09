"""attention and attention_backward against scaled_dot_product_attention, autograd and
finite differences."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from backprop.attention import attention, attention_backward, causal_mask
from oracles import autograd_grads, finite_difference_grads
from strategies import (
    attention_inputs,
    attention_mask_kinds,
    attention_shapes,
    dtypes,
    layouts,
    make_tensor,
    seeds,
    tolerance,
)


def _sdpa(mask):
    return lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


@settings(max_examples=60, deadline=None)
@given(
    shapes=attention_shapes(),
    dtype=dtypes,
    layout=layouts,
    mask_kind=attention_mask_kinds,
    seed=seeds,
)
def test_attention_matches_sdpa(shapes, dtype, layout, mask_kind, seed):
    q, k, v, mask, _ = attention_inputs(shapes, dtype, layout, mask_kind, seed)
    out = attention(q, k, v, mask)
    assert out.shape == (*shapes["q"][:-1], shapes["v"][-1]) and out.dtype == dtype
    torch.testing.assert_close(out, _sdpa(mask)(q, k, v), **tolerance(dtype))


@settings(max_examples=80, deadline=None)
@given(
    shapes=attention_shapes(),
    dtype=dtypes,
    layout=layouts,
    mask_kind=attention_mask_kinds,
    seed=seeds,
)
def test_attention_backward_matches_autograd(shapes, dtype, layout, mask_kind, seed):
    q, k, v, mask, grad_out = attention_inputs(shapes, dtype, layout, mask_kind, seed)
    expected = autograd_grads(_sdpa(mask), [q, k, v], grad_out)
    got = attention_backward(grad_out, q, k, v, mask)
    assert len(got) == 3
    for name, g, e, t in zip(
        ("grad_q", "grad_k", "grad_v"), got, expected, (q, k, v), strict=True
    ):
        assert g.shape == t.shape and g.dtype == dtype, name
        torch.testing.assert_close(
            g, e, **tolerance(dtype), msg=lambda m, name=name: f"{name}: {m}"
        )


@settings(max_examples=15, deadline=None)
@given(shapes=attention_shapes(), mask_kind=attention_mask_kinds, seed=seeds)
def test_attention_backward_matches_finite_differences(shapes, mask_kind, seed):
    q, k, v, mask, grad_out = attention_inputs(
        shapes, torch.float64, "contiguous", mask_kind, seed
    )
    grad_q, grad_k, grad_v = attention_backward(grad_out, q, k, v, mask)
    fd = dict(rtol=1e-6, atol=1e-6)
    expected = finite_difference_grads(
        lambda q_, k_, v_: attention(q_, k_, v_, mask), (q, k, v), grad_out
    )
    for got, fd_grad in zip((grad_q, grad_k, grad_v), expected, strict=True):
        torch.testing.assert_close(got, fd_grad, **fd)


@settings(max_examples=30, deadline=None)
@given(
    lq=st.integers(1, 6),
    lk=st.integers(1, 6),
    d=st.integers(1, 4),
    dtype=dtypes,
    seed=seeds,
)
def test_causal_mask_matches_is_causal(lq, lk, d, dtype, seed):
    mask = causal_mask(lq, lk)
    assert mask.dtype == torch.bool and mask.shape == (lq, lk)
    for i in range(lq):
        for j in range(lk):
            assert mask[i, j] == (j <= i)
    q, k, v = (
        make_tensor((2, length, d), dtype, seed=seed + n)
        for n, length in enumerate((lq, lk, lk))
    )
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(attention(q, k, v, mask), expected, **tolerance(dtype))
    assert torch.equal(causal_mask(lq), causal_mask(lq, lq))


def test_keys_no_query_may_see_get_zero_gradient():
    # With a causal mask the last key is visible only to the last query; give that
    # query no upstream gradient and nothing may reach the last key or value.
    gen = torch.Generator().manual_seed(0)
    q, k, v = (
        torch.randn(2, 4, 3, generator=gen, dtype=torch.float64) for _ in range(3)
    )
    grad_out = torch.randn(2, 4, 3, generator=gen, dtype=torch.float64)
    grad_out[:, -1] = 0
    _, grad_k, grad_v = attention_backward(grad_out, q, k, v, causal_mask(4))
    assert torch.equal(grad_k[:, -1], torch.zeros_like(grad_k[:, -1]))
    assert torch.equal(grad_v[:, -1], torch.zeros_like(grad_v[:, -1]))
    assert grad_k[:, :-1].abs().min() > 0 and grad_v[:, :-1].abs().min() > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_attention_is_stable_for_large_scores(dtype):
    # Scores of magnitude ~1e4: exp overflows without the max-subtraction inside
    # softmax.
    gen = torch.Generator().manual_seed(1)
    q, k, v = (
        torch.randn(2, 5, 4, generator=gen, dtype=torch.float64).to(dtype)
        for _ in range(3)
    )
    q = q * 1e4
    out = attention(q, k, v)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(
        out, F.scaled_dot_product_attention(q, k, v), **tolerance(dtype)
    )
    naive = torch.exp(q @ k.transpose(-2, -1) / 2)
    assert not torch.isfinite(naive / naive.sum(-1, keepdim=True)).all()
    grads = attention_backward(torch.ones_like(out), q, k, v)
    assert all(torch.isfinite(g).all() for g in grads)


# ----------------------------------------------------------------------------- bad
# input


def test_q_and_k_last_dim_mismatch():
    with pytest.raises(
        ValueError,
        match=(
            r"q and k must have the same last dimension d.*q of shape \(2, 3, 4\) and "
            r"k of shape \(2, 5, 3\)"
        ),
    ):
        attention(torch.randn(2, 3, 4), torch.randn(2, 5, 3), torch.randn(2, 5, 2))


def test_k_and_v_lengths_and_leading_dims():
    with pytest.raises(
        ValueError,
        match=(
            r"k and v must have the same number of positions.*k of shape \(5, 4\) and "
            r"v of shape \(6, 2\)"
        ),
    ):
        attention(torch.randn(3, 4), torch.randn(5, 4), torch.randn(6, 2))
    with pytest.raises(
        ValueError,
        match=r"equal leading dimensions.*q \(2, 3, 4\), k \(1, 5, 4\), v \(1, 5, 2\)",
    ):
        attention(torch.randn(2, 3, 4), torch.randn(1, 5, 4), torch.randn(1, 5, 2))
    with pytest.raises(
        ValueError, match=r"v must have at least 2 dimension\(s\), got shape \(5,\)"
    ):
        attention(torch.randn(3, 4), torch.randn(5, 4), torch.randn(5))


def test_mask_of_non_broadcastable_shape():
    q, k, v = torch.randn(2, 3, 4), torch.randn(2, 5, 4), torch.randn(2, 5, 2)
    with pytest.raises(
        ValueError,
        match=(
            r"mask of shape \(3, 4\) does not broadcast to the scores' shape \(2, 3, "
            r"5\)"
        ),
    ):
        attention(q, k, v, torch.ones(3, 4, dtype=torch.bool))
    with pytest.raises(
        ValueError,
        match=(
            r"mask of shape \(1, 2, 3, 5\) does not broadcast to the scores' shape "
            r"\(2, 3, 5\)"
        ),
    ):
        attention_backward(
            torch.randn(2, 3, 2), q, k, v, torch.ones(1, 2, 3, 5, dtype=torch.bool)
        )


def test_mask_of_non_bool_dtype():
    q, k, v = torch.randn(3, 4), torch.randn(5, 4), torch.randn(5, 2)
    with pytest.raises(
        ValueError,
        match=r"mask must be a boolean tensor.*dtype torch.float32 and shape \(3, 5\)",
    ):
        attention(q, k, v, torch.ones(3, 5))
    with pytest.raises(
        ValueError,
        match=r"mask must be a boolean tensor.*dtype torch.int64 and shape \(5,\)",
    ):
        attention(q, k, v, torch.ones(5, dtype=torch.int64))


def test_fully_masked_row_is_refused():
    q, k, v = torch.randn(2, 3, 4), torch.randn(2, 5, 4), torch.randn(2, 5, 2)
    mask = torch.ones(2, 3, 5, dtype=torch.bool)
    mask[1, 2] = False
    with pytest.raises(
        ValueError,
        match=(
            r"mask of shape \(2, 3, 5\) allows no key for the query at position \(1, "
            r"2\)"
        ),
    ):
        attention(q, k, v, mask)
    with pytest.raises(
        ValueError, match=r"allows no key for the query at position \(1, 2\)"
    ):
        attention_backward(torch.randn(2, 3, 2), q, k, v, mask)


def test_grad_out_shape_and_causal_mask_arguments():
    q, k, v = torch.randn(3, 4), torch.randn(5, 4), torch.randn(5, 2)
    with pytest.raises(
        ValueError, match=r"grad_out must have shape \(3, 2\).*got shape \(3, 4\)"
    ):
        attention_backward(torch.randn(3, 4), q, k, v)
    with pytest.raises(ValueError, match=r"lk must be a positive int, got 0"):
        causal_mask(3, 0)
