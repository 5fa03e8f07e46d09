"""relu and relu_backward against torch.relu, autograd and finite differences."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings

from backprop.activations import relu, relu_backward
from oracles import autograd_grads, finite_difference_grad
from strategies import dtypes, layouts, make_tensor, seeds, shapes, tolerance


def _with_exact_zeros(x: torch.Tensor, seed: int) -> torch.Tensor:
    """``x`` (a view, kept non-contiguous if it was) with about a third of it set to
    exactly 0."""
    gen = torch.Generator().manual_seed(seed)
    mask = torch.rand(x.shape, generator=gen) < 1 / 3
    x[mask] = 0
    return x


@settings(max_examples=60, deadline=None)
@given(shape=shapes(min_dims=0), dtype=dtypes, layout=layouts, seed=seeds)
def test_relu_matches_torch(shape, dtype, layout, seed):
    x = _with_exact_zeros(make_tensor(shape, dtype, layout, seed), seed)
    torch.testing.assert_close(relu(x), torch.relu(x), rtol=0, atol=0)


@settings(max_examples=80, deadline=None)
@given(shape=shapes(min_dims=0), dtype=dtypes, layout=layouts, seed=seeds)
def test_relu_backward_matches_autograd_including_exact_zeros(
    shape, dtype, layout, seed
):
    x = _with_exact_zeros(make_tensor(shape, dtype, layout, seed), seed)
    grad_out = make_tensor(shape, dtype, layout, seed + 1)
    (expected,) = autograd_grads(torch.relu, [x], grad_out)
    got = relu_backward(grad_out, x)
    assert got.shape == x.shape and got.dtype == dtype
    torch.testing.assert_close(got, expected, **tolerance(dtype))


def test_relu_gradient_at_exactly_zero_is_zero_like_autograd():
    x = torch.zeros(5, dtype=torch.float64)
    grad_out = torch.ones(5, dtype=torch.float64)
    (expected,) = autograd_grads(torch.relu, [x], grad_out)
    torch.testing.assert_close(
        expected, torch.zeros(5, dtype=torch.float64)
    )  # the oracle's convention
    torch.testing.assert_close(relu_backward(grad_out, x), expected, rtol=0, atol=0)


def test_relu_forward_and_backward_agree_at_exactly_zero():
    # Autograd through our own forward must give what our backward gives, kink included:
    # a forward written as clamp(min=0) would give autograd a gradient of 1 at 0.
    x = torch.tensor([-1.0, 0.0, 0.0, 2.0], dtype=torch.float64)
    grad_out = torch.ones_like(x)
    (through_our_forward,) = autograd_grads(relu, [x], grad_out)
    torch.testing.assert_close(
        relu_backward(grad_out, x), through_our_forward, rtol=0, atol=0
    )


@settings(max_examples=30, deadline=None)
@given(shape=shapes(min_dims=1, max_dims=3, max_side=4), seed=seeds)
def test_relu_backward_matches_finite_differences(shape, seed):
    x = make_tensor(shape, seed=seed)
    x = x + 0.1 * torch.sign(
        x
    )  # keep away from the kink at 0, where differences straddle it
    grad_out = make_tensor(shape, seed=seed + 1)
    expected = finite_difference_grad(lambda x_: (relu(x_) * grad_out).sum(), x)
    torch.testing.assert_close(
        relu_backward(grad_out, x), expected, rtol=1e-6, atol=1e-6
    )


def test_relu_backward_rejects_wrong_grad_out_shape():
    with pytest.raises(
        ValueError, match=r"grad_out has shape \(3, 1\) but x has shape \(3,\)"
    ):
        relu_backward(torch.zeros(3, 1), torch.zeros(3))


def test_relu_rejects_integers_and_mismatched_dtypes():
    with pytest.raises(ValueError, match="x must be a floating-point tensor"):
        relu(torch.zeros(3, dtype=torch.int64))
    with pytest.raises(
        ValueError,
        match=r"x has dtype torch.float64 but grad_out has dtype torch.float32",
    ):
        relu_backward(
            torch.zeros(3, dtype=torch.float32), torch.zeros(3, dtype=torch.float64)
        )
