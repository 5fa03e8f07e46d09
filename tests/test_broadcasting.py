"""unbroadcast against autograd of expand, finite differences, and
torch.broadcast_shapes."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from backprop.broadcasting import broadcast_shape, unbroadcast
from oracles import autograd_grads, finite_difference_grad
from strategies import (
    broadcast_pairs,
    dtypes,
    illegal_broadcast_pairs,
    layouts,
    make_tensor,
    seeds,
    tolerance,
)


def _text(shape: tuple[int, ...]) -> str:
    """How error messages print a shape: (2, 3), (4,), ()."""
    return str(tuple(shape))


@settings(max_examples=80, deadline=None)
@given(
    pair=broadcast_pairs(),
    dtype=dtypes,
    layout=layouts,
    seed=seeds,
    as_size=st.booleans(),
)
def test_unbroadcast_matches_autograd_of_expand(pair, dtype, layout, seed, as_size):
    full, small_shape = pair
    small = make_tensor(small_shape, dtype, seed=seed)
    grad = make_tensor(full, dtype, layout, seed=seed + 1)
    (expected,) = autograd_grads(lambda s: s.expand(full), [small], grad)
    shape = torch.Size(small_shape) if as_size else small_shape
    got = unbroadcast(grad, shape)
    assert got.shape == small.shape
    assert got.dtype == dtype
    torch.testing.assert_close(got, expected, **tolerance(dtype))


@settings(max_examples=40, deadline=None)
@given(pair=broadcast_pairs(max_dims=3), seed=seeds)
def test_unbroadcast_matches_autograd_of_adding_zeros(pair, seed):
    full, small_shape = pair
    small = make_tensor(small_shape, seed=seed)
    grad = make_tensor(full, seed=seed + 1)
    (expected,) = autograd_grads(
        lambda s: s + torch.zeros(full, dtype=s.dtype), [small], grad
    )
    torch.testing.assert_close(
        unbroadcast(grad, small_shape), expected, **tolerance(torch.float64)
    )


@settings(max_examples=30, deadline=None)
@given(pair=broadcast_pairs(max_dims=3), seed=seeds)
def test_unbroadcast_matches_finite_differences(pair, seed):
    full, small_shape = pair
    small = make_tensor(small_shape, seed=seed)
    grad = make_tensor(full, seed=seed + 1)
    expected = finite_difference_grad(lambda s: (s.expand(full) * grad).sum(), small)
    torch.testing.assert_close(
        unbroadcast(grad, small_shape), expected, rtol=1e-6, atol=1e-6
    )


def test_unbroadcast_bias_is_sum_over_batch():
    grad = make_tensor((7, 3), seed=1)
    torch.testing.assert_close(unbroadcast(grad, (3,)), grad.sum(0), rtol=0, atol=0)
    torch.testing.assert_close(
        unbroadcast(grad, (1, 3)), grad.sum(0, keepdim=True), rtol=0, atol=0
    )


def test_unbroadcast_from_size_one_to_size_zero_gives_zeros():
    # Broadcasting (1,) to (0,) uses the element zero times: its gradient is 0.
    got = unbroadcast(torch.zeros(4, 0, dtype=torch.float64), (1,))
    torch.testing.assert_close(got, torch.zeros(1, dtype=torch.float64))


@settings(max_examples=60, deadline=None)
@given(pair=illegal_broadcast_pairs())
def test_unbroadcast_rejects_shapes_that_do_not_broadcast(pair):
    full, small_shape = pair
    with pytest.raises(RuntimeError):
        torch.zeros(small_shape).expand(full)  # the oracle agrees the pair is illegal
    grad = torch.zeros(full, dtype=torch.float64)
    with pytest.raises(ValueError, match="does not broadcast") as info:
        unbroadcast(grad, small_shape)
    assert _text(small_shape) in str(info.value) and _text(full) in str(info.value)


def test_unbroadcast_error_names_both_shapes():
    with pytest.raises(
        ValueError, match=r"shape \(4,\) does not broadcast to grad's shape \(2, 3\)"
    ):
        unbroadcast(torch.zeros(2, 3), (4,))
    with pytest.raises(
        ValueError,
        match=r"shape \(1, 2, 3\) does not broadcast to grad's shape \(2, 3\)",
    ):
        unbroadcast(torch.zeros(2, 3), (1, 2, 3))


def test_unbroadcast_rejects_bad_arguments():
    with pytest.raises(ValueError, match="grad must be a floating-point tensor"):
        unbroadcast(torch.zeros(2, 3, dtype=torch.int64), (3,))
    with pytest.raises(ValueError, match="shape must be a shape"):
        unbroadcast(torch.zeros(2, 3), torch.zeros(3))
    with pytest.raises(ValueError, match="shape must hold non-negative ints"):
        unbroadcast(torch.zeros(2, 3), (-1,))


@settings(max_examples=60, deadline=None)
@given(pair=broadcast_pairs(), swap=st.booleans())
def test_broadcast_shape_matches_torch(pair, swap):
    a, b = pair if not swap else pair[::-1]
    assert broadcast_shape(a, b) == tuple(torch.broadcast_shapes(a, b))


@settings(max_examples=40, deadline=None)
@given(pair=illegal_broadcast_pairs())
def test_broadcast_shape_rejects_what_torch_rejects(pair):
    full, small = pair
    try:
        torch.broadcast_shapes(full, small)
    except RuntimeError:
        with pytest.raises(ValueError, match="do not broadcast"):
            broadcast_shape(full, small)
    else:
        # A longer small shape can still broadcast with full (to a bigger shape).
        assert broadcast_shape(full, small) == tuple(
            torch.broadcast_shapes(full, small)
        )


def test_broadcast_shape_error_names_both_shapes():
    with pytest.raises(
        ValueError, match=r"shapes \(3, 1\) and \(2, 4\) do not broadcast"
    ):
        broadcast_shape((3, 1), (2, 4))
