"""batchnorm and layernorm, forward and fused backward, against torch, autograd and
finite differences."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from backprop.normalization import (
    batchnorm,
    batchnorm_backward,
    layernorm,
    layernorm_backward,
)
from oracles import autograd_grads, finite_difference_grads
from strategies import (
    batch_shapes,
    dtypes,
    layouts,
    make_tensor,
    seeds,
    shapes,
    tolerance,
)

# (n, c), (n, c, L) or (n, c, h, w); batch size 1 is allowed when there is a spatial
# extent.
batchnorm_shapes = shapes(min_dims=2, max_dims=4, max_side=5)


def _values_per_channel(shape):
    return shape[0] * int(torch.tensor(shape[2:], dtype=torch.int64).prod())


def _batchnorm_inputs(shape, dtype, layout, seed):
    c = shape[1]
    x = make_tensor(shape, dtype, layout, seed=seed)
    gamma = make_tensor((c,), dtype, "strided", seed=seed + 1)
    beta = make_tensor((c,), dtype, "contiguous", seed=seed + 2)
    grad_out = make_tensor(shape, dtype, layout, seed=seed + 3)
    return x, gamma, beta, grad_out


def _layernorm_inputs(shape, dtype, layout, seed):
    d = shape[-1]
    x = make_tensor(shape, dtype, layout, seed=seed)
    gamma = make_tensor((d,), dtype, "strided", seed=seed + 1)
    beta = make_tensor((d,), dtype, "contiguous", seed=seed + 2)
    grad_out = make_tensor(shape, dtype, layout, seed=seed + 3)
    return x, gamma, beta, grad_out


def _torch_batchnorm(x, gamma, beta, eps=1e-5):
    return F.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)


def _torch_layernorm(x, gamma, beta, eps=1e-5):
    return F.layer_norm(x, (x.shape[-1],), gamma, beta, eps=eps)


def _exact_grads(forward, inputs, grad_out):
    """autograd's gradients for ``inputs`` computed in float64, cast back to their
    dtype.

    For float32 inputs this is the exact gradient of those very inputs, rounded once:
    a stricter oracle than float32 autograd, whose own rounding is amplified by 1/sigma
    (with one feature, layer_norm's float32 autograd gives grad_gamma near 1e-5
    where the exact value is 0).
    """
    grads = autograd_grads(forward, [t.double() for t in inputs], grad_out.double())
    return tuple(g.to(grad_out.dtype) for g in grads)


def _rounding_amplification(x, gamma, grad_out, sigma):
    """How far a normalisation's gradient can move when its inputs are rounded.

    grad_x is a difference of terms of size |gamma| |g| / sigma, and may be far
    smaller than they are (exactly 0 when only two values are normalised); x_hat =
    (x - mu) / sigma carries x's rounding, relative to |x|, divided by sigma. The
    absolute tolerance grows with both factors (about 1 for well-spread inputs).
    """
    min_sigma = sigma.min().item()
    spread = max(1.0, x.abs().max().item() / min_sigma)
    terms = max(1.0, (grad_out.abs().max() * gamma.abs().max()).item() / min_sigma)
    return spread * terms


def _assert_grads_close(got, expected, dtype, amplification=1.0):
    tol = tolerance(dtype)
    tol = dict(rtol=tol["rtol"], atol=tol["atol"] * amplification)
    for name, g, e in zip(
        ("grad_x", "grad_gamma", "grad_beta"), got, expected, strict=True
    ):
        assert g.shape == e.shape and g.dtype == dtype, name
        torch.testing.assert_close(g, e, **tol, msg=lambda m, name=name: f"{name}: {m}")


# -----------------------------------------------------------------------------
# batchnorm


@settings(max_examples=60, deadline=None)
@given(shape=batchnorm_shapes, dtype=dtypes, layout=layouts, seed=seeds)
def test_batchnorm_matches_torch(shape, dtype, layout, seed):
    assume(_values_per_channel(shape) >= 2)
    x, gamma, beta, _ = _batchnorm_inputs(shape, dtype, layout, seed)
    out = batchnorm(x, gamma, beta)
    assert out.shape == x.shape and out.dtype == dtype
    torch.testing.assert_close(
        out, _torch_batchnorm(x, gamma, beta), **tolerance(dtype)
    )


@settings(max_examples=80, deadline=None)
@given(shape=batchnorm_shapes, dtype=dtypes, layout=layouts, seed=seeds)
def test_batchnorm_backward_matches_autograd(shape, dtype, layout, seed):
    assume(_values_per_channel(shape) >= 2)
    x, gamma, beta, grad_out = _batchnorm_inputs(shape, dtype, layout, seed)
    expected = _exact_grads(_torch_batchnorm, [x, gamma, beta], grad_out)
    axes = (0, *range(2, x.ndim))
    sigma = (x.double().var(dim=axes, unbiased=False) + 1e-5).sqrt()
    amplification = _rounding_amplification(x, gamma, grad_out, sigma)
    _assert_grads_close(
        batchnorm_backward(grad_out, x, gamma, beta), expected, dtype, amplification
    )


@settings(max_examples=15, deadline=None)
@given(shape=shapes(min_dims=2, max_dims=3, max_side=3), seed=seeds)
def test_batchnorm_backward_matches_finite_differences(shape, seed):
    assume(_values_per_channel(shape) >= 2)
    x, gamma, beta, grad_out = _batchnorm_inputs(
        shape, torch.float64, "contiguous", seed
    )
    grad_x, grad_gamma, grad_beta = batchnorm_backward(grad_out, x, gamma, beta)
    fd = dict(rtol=1e-5, atol=1e-6)
    expected = finite_difference_grads(batchnorm, (x, gamma, beta), grad_out)
    for got, fd_grad in zip((grad_x, grad_gamma, grad_beta), expected, strict=True):
        torch.testing.assert_close(got, fd_grad, **fd)


def _rounding_scale(gamma, grad_out, sigma, dims, m):
    """How large the terms summed in these properties can be, for a relative tolerance.

    grad_x = gamma / sigma * (g - mean(g) - x_hat * mean(g * x_hat)) has terms up to
    |gamma| / sigma * max|g| * (2 + m) (since |x_hat| <= sqrt(m)); a sum of m of them
    rounds at that scale times m. grad_x itself may be far smaller (exactly 0 for m =
    2).
    """
    return gamma.abs() / sigma * grad_out.abs().amax(dim=dims) * (2 + m) * m


@settings(max_examples=40, deadline=None)
@given(shape=batchnorm_shapes, layout=layouts, seed=seeds)
def test_batchnorm_input_gradient_sums_to_zero_and_is_orthogonal_to_x_hat(
    shape, layout, seed
):
    # Per channel: shifting every value by the same amount, or (with eps = 0) scaling
    # them about their mean, leaves the output unchanged, so the gradient has no
    # component along the all-ones direction nor along x_hat.
    m = _values_per_channel(shape)
    assume(m >= 2)
    x, gamma, beta, grad_out = _batchnorm_inputs(shape, torch.float64, layout, seed)
    axes = (0, *range(2, x.ndim))
    grad_x, _, _ = batchnorm_backward(grad_out, x, gamma, beta, eps=0.0)
    centered = x - x.mean(dim=axes, keepdim=True)
    sigma = centered.pow(2).mean(dim=axes, keepdim=True).sqrt()
    x_hat = centered / sigma
    scale = _rounding_scale(gamma, grad_out, sigma.reshape(-1), axes, m)
    zeros = torch.zeros_like(gamma)
    torch.testing.assert_close(grad_x.sum(dim=axes) / scale, zeros, rtol=0, atol=1e-13)
    torch.testing.assert_close(
        (grad_x * x_hat).sum(dim=axes) / scale, zeros, rtol=0, atol=1e-13
    )
    # With eps > 0 the sum is still zero, but x_hat no longer has unit variance, so
    # sum(grad_x * x_hat) = gamma / sigma * sum(g * x_hat) * eps / (var + eps), not 0.
    eps = 1e-2
    grad_x, _, _ = batchnorm_backward(grad_out, x, gamma, beta, eps=eps)
    var = sigma.reshape(-1) ** 2
    sigma_eps = (var + eps).sqrt()
    x_hat = centered / sigma_eps.reshape(sigma.shape)
    expected = gamma / sigma_eps * (grad_out * x_hat).sum(dim=axes) * eps / (var + eps)
    torch.testing.assert_close(grad_x.sum(dim=axes) / scale, zeros, rtol=0, atol=1e-13)
    torch.testing.assert_close(
        (grad_x * x_hat).sum(dim=axes) / scale, expected / scale, rtol=0, atol=1e-13
    )


def test_batchnorm_is_stable_under_a_large_offset():
    # The variance is the mean of squared deviations from the mean (two passes). The
    # one-pass formula mean(x^2) - mean(x)^2 subtracts two numbers near 1e16 and loses
    # every digit of a variance near 1.
    x = torch.randn(
        64, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    gamma, beta = (
        torch.ones(3, dtype=torch.float64),
        torch.zeros(3, dtype=torch.float64),
    )
    shifted = x + 1e8
    torch.testing.assert_close(
        batchnorm(shifted, gamma, beta), batchnorm(x, gamma, beta), rtol=0, atol=1e-6
    )
    one_pass_var = (shifted**2).mean(0) - shifted.mean(0) ** 2
    assert (one_pass_var - x.var(0, unbiased=False)).abs().max() > 1e-2


# -----------------------------------------------------------------------------
# layernorm


@settings(max_examples=60, deadline=None)
@given(
    batch=batch_shapes(), d=st.integers(1, 6), dtype=dtypes, layout=layouts, seed=seeds
)
def test_layernorm_matches_torch(batch, d, dtype, layout, seed):
    x, gamma, beta, _ = _layernorm_inputs((*batch, d), dtype, layout, seed)
    out = layernorm(x, gamma, beta)
    assert out.shape == x.shape and out.dtype == dtype
    torch.testing.assert_close(
        out, _torch_layernorm(x, gamma, beta), **tolerance(dtype)
    )


@settings(max_examples=80, deadline=None)
@given(
    batch=batch_shapes(), d=st.integers(1, 6), dtype=dtypes, layout=layouts, seed=seeds
)
def test_layernorm_backward_matches_autograd(batch, d, dtype, layout, seed):
    x, gamma, beta, grad_out = _layernorm_inputs((*batch, d), dtype, layout, seed)
    expected = _exact_grads(_torch_layernorm, [x, gamma, beta], grad_out)
    sigma = (x.double().var(dim=-1, unbiased=False) + 1e-5).sqrt()
    amplification = _rounding_amplification(x, gamma, grad_out, sigma)
    _assert_grads_close(
        layernorm_backward(grad_out, x, gamma, beta), expected, dtype, amplification
    )


@settings(max_examples=15, deadline=None)
@given(batch=batch_shapes(max_dims=2), d=st.integers(1, 4), seed=seeds)
def test_layernorm_backward_matches_finite_differences(batch, d, seed):
    x, gamma, beta, grad_out = _layernorm_inputs(
        (*batch, d), torch.float64, "contiguous", seed
    )
    grad_x, grad_gamma, grad_beta = layernorm_backward(grad_out, x, gamma, beta)
    fd = dict(rtol=1e-5, atol=1e-6)
    expected = finite_difference_grads(layernorm, (x, gamma, beta), grad_out)
    for got, fd_grad in zip((grad_x, grad_gamma, grad_beta), expected, strict=True):
        torch.testing.assert_close(got, fd_grad, **fd)


@settings(max_examples=40, deadline=None)
@given(batch=batch_shapes(), d=st.integers(2, 6), layout=layouts, seed=seeds)
def test_layernorm_input_gradient_sums_to_zero_over_the_last_dim(
    batch, d, layout, seed
):
    x, gamma, beta, grad_out = _layernorm_inputs(
        (*batch, d), torch.float64, layout, seed
    )
    grad_x, _, _ = layernorm_backward(grad_out, x, gamma, beta)
    sigma = (x.var(dim=-1, unbiased=False) + 1e-5).sqrt()
    # The terms of grad_x scale with dL/dx_hat = grad_out * gamma (here gamma is inside
    # the mean).
    scale = _rounding_scale(torch.ones(()), grad_out * gamma, sigma, -1, d)
    torch.testing.assert_close(
        grad_x.sum(dim=-1) / scale,
        torch.zeros(batch, dtype=x.dtype),
        rtol=0,
        atol=1e-13,
    )


def test_layernorm_of_one_feature_is_beta_with_zero_input_gradient():
    x, gamma, beta = (
        torch.randn(4, 1, dtype=torch.float64),
        torch.tensor([2.0], dtype=torch.float64),
        torch.tensor([0.5], dtype=torch.float64),
    )
    torch.testing.assert_close(
        layernorm(x, gamma, beta), torch.full((4, 1), 0.5, dtype=torch.float64)
    )
    grad_x, _, _ = layernorm_backward(
        torch.randn(4, 1, dtype=torch.float64), x, gamma, beta
    )
    assert torch.equal(grad_x, torch.zeros_like(x))


# ----------------------------------------------------------------------------- bad
# input


def test_wrong_gamma_or_beta_shape():
    x = torch.randn(4, 3)
    with pytest.raises(
        ValueError,
        match=(
            r"gamma must have shape \(3,\) \(one per channel of x, whose shape is \(4, "
            r"3\)\), got shape \(4,\)"
        ),
    ):
        batchnorm(x, torch.ones(4), torch.zeros(3))
    with pytest.raises(
        ValueError, match=r"beta must have shape \(3,\).*\(4, 3\).*got shape \(1, 3\)"
    ):
        batchnorm_backward(torch.ones(4, 3), x, torch.ones(3), torch.zeros(1, 3))
    with pytest.raises(
        ValueError,
        match=(
            r"gamma must have shape \(3,\) \(one per feature.*\(4, 3\)\), got shape "
            r"\(4,\)"
        ),
    ):
        layernorm(x, torch.ones(4), torch.zeros(3))
    with pytest.raises(
        ValueError, match=r"beta must have shape \(3,\).*got shape \(\)"
    ):
        layernorm_backward(torch.ones(4, 3), x, torch.ones(3), torch.tensor(0.0))


def test_batchnorm_needs_two_values_per_channel_and_two_dims():
    with pytest.raises(ValueError, match=r"more than one value per channel.*\(1, 3\)"):
        batchnorm(torch.randn(1, 3), torch.ones(3), torch.zeros(3))
    with pytest.raises(
        ValueError, match=r"more than one value per channel.*\(1, 3, 1, 1\)"
    ):
        batchnorm_backward(
            torch.randn(1, 3, 1, 1),
            torch.randn(1, 3, 1, 1),
            torch.ones(3),
            torch.zeros(3),
        )
    with pytest.raises(
        ValueError, match=r"x must have at least 2 dimension\(s\), got shape \(3,\)"
    ):
        batchnorm(torch.randn(3), torch.ones(3), torch.zeros(3))


def test_grad_out_dtype_eps_and_float_checks():
    x = torch.randn(4, 3)
    with pytest.raises(
        ValueError, match=r"grad_out must have shape \(4, 3\).*got shape \(3, 4\)"
    ):
        batchnorm_backward(torch.ones(3, 4), x, torch.ones(3), torch.zeros(3))
    with pytest.raises(
        ValueError, match=r"grad_out must have shape \(4, 3\).*got shape \(4, 1\)"
    ):
        layernorm_backward(torch.ones(4, 1), x, torch.ones(3), torch.zeros(3))
    with pytest.raises(
        ValueError, match=r"gamma has dtype torch.float64 but x has dtype torch.float32"
    ):
        layernorm(x, torch.ones(3, dtype=torch.float64), torch.zeros(3))
    with pytest.raises(ValueError, match=r"x must be a floating-point tensor"):
        batchnorm(torch.ones(4, 3, dtype=torch.int64), torch.ones(3), torch.zeros(3))
    with pytest.raises(ValueError, match=r"eps must be >= 0, got -1"):
        layernorm(x, torch.ones(3), torch.zeros(3), eps=-1.0)
