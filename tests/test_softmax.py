"""logsumexp, softmax, log_softmax and their backwards against torch, autograd, finite
differences and closed forms; stability at magnitude 1e4; masked (-inf) rows."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from backprop.softmax import (
    log_softmax,
    log_softmax_backward,
    logsumexp,
    logsumexp_backward,
    softmax,
    softmax_backward,
)
from oracles import autograd_grads, finite_difference_grad
from strategies import (
    DTYPES,
    dtypes,
    layouts,
    make_tensor,
    seeds,
    shapes_and_dims,
    tolerance,
)

# name -> (ours, backward, torch's forward as oracle, does the forward reduce dim?)
FAMILY = {
    "logsumexp": (logsumexp, logsumexp_backward, torch.logsumexp, True),
    "softmax": (softmax, softmax_backward, torch.softmax, False),
    "log_softmax": (log_softmax, log_softmax_backward, torch.log_softmax, False),
}
names = st.sampled_from(sorted(FAMILY))


def _grad_out_shape(shape: tuple[int, ...], dim: int, reduces: bool) -> tuple[int, ...]:
    if not reduces:
        return shape
    dim %= len(shape)
    return shape[:dim] + shape[dim + 1 :]


@settings(max_examples=60, deadline=None)
@given(
    name=names, shape_dim=shapes_and_dims(), dtype=dtypes, layout=layouts, seed=seeds
)
def test_forward_matches_torch(name, shape_dim, dtype, layout, seed):
    ours, _, oracle, reduces = FAMILY[name]
    shape, dim = shape_dim
    x = make_tensor(shape, dtype, layout, seed, scale=3.0)
    got = ours(x, dim)
    assert got.shape == _grad_out_shape(shape, dim, reduces) and got.dtype == dtype
    torch.testing.assert_close(got, oracle(x, dim), **tolerance(dtype))


@settings(max_examples=80, deadline=None)
@given(
    name=names, shape_dim=shapes_and_dims(), dtype=dtypes, layout=layouts, seed=seeds
)
def test_backward_matches_autograd(name, shape_dim, dtype, layout, seed):
    _, backward, oracle, reduces = FAMILY[name]
    shape, dim = shape_dim
    x = make_tensor(shape, dtype, layout, seed, scale=3.0)
    grad_out = make_tensor(
        _grad_out_shape(shape, dim, reduces), dtype, layout, seed + 1
    )
    (expected,) = autograd_grads(lambda x_: oracle(x_, dim), [x], grad_out)
    got = backward(grad_out, x, dim)
    assert got.shape == x.shape and got.dtype == dtype
    torch.testing.assert_close(got, expected, **tolerance(dtype))


@settings(max_examples=30, deadline=None)
@given(name=names, shape_dim=shapes_and_dims(max_dims=3, max_side=4), seed=seeds)
def test_backward_matches_finite_differences(name, shape_dim, seed):
    ours, backward, _, reduces = FAMILY[name]
    shape, dim = shape_dim
    x = make_tensor(shape, seed=seed)
    grad_out = make_tensor(_grad_out_shape(shape, dim, reduces), seed=seed + 1)
    expected = finite_difference_grad(lambda x_: (ours(x_, dim) * grad_out).sum(), x)
    torch.testing.assert_close(
        backward(grad_out, x, dim), expected, rtol=1e-6, atol=1e-6
    )


# --- closed forms
# ------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(shape_dim=shapes_and_dims(), dtype=dtypes, layout=layouts, seed=seeds)
def test_closed_forms(shape_dim, dtype, layout, seed):
    shape, dim = shape_dim
    x = make_tensor(shape, dtype, layout, seed, scale=3.0)
    tol = tolerance(dtype)
    # d logsumexp / dx = softmax
    ones = torch.ones(_grad_out_shape(shape, dim, True), dtype=dtype)
    torch.testing.assert_close(
        logsumexp_backward(ones, x, dim), torch.softmax(x, dim), **tol
    )
    # log_softmax = x - logsumexp (kept as a size-1 dimension)
    torch.testing.assert_close(
        log_softmax(x, dim), x - torch.logsumexp(x, dim, keepdim=True), **tol
    )
    # softmax is a distribution along dim
    s = softmax(x, dim)
    assert (s >= 0).all()
    torch.testing.assert_close(s.sum(dim), torch.ones_like(s.sum(dim)), **tol)
    # softmax's gradient for an upstream gradient constant along dim is 0 (the sum is
    # always 1)
    const = torch.ones_like(x)
    torch.testing.assert_close(
        softmax_backward(const, x, dim), torch.zeros_like(x), **tol
    )


# --- stability
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_stable_at_magnitude_1e4_where_the_naive_formula_overflows(dtype):
    x = make_tensor((4, 6), dtype, seed=5, scale=1e4)
    assert x.abs().max() > 1e4  # really that large

    with torch.no_grad():
        naive_logsumexp = x.exp().sum(-1).log()
        naive_softmax = x.exp() / x.exp().sum(-1, keepdim=True)
    assert torch.isinf(naive_logsumexp).any()
    assert torch.isnan(naive_softmax).any()
    # Even a stable softmax followed by log underflows: tiny probabilities round to 0.
    assert torch.isinf(torch.softmax(x, -1).log()).any()

    tol = tolerance(dtype)
    for ours, oracle in (
        (logsumexp, torch.logsumexp),
        (softmax, torch.softmax),
        (log_softmax, torch.log_softmax),
    ):
        for dim in (-1, 0):
            got = ours(x, dim)
            assert torch.isfinite(got).all(), ours.__name__
            torch.testing.assert_close(got, oracle(x, dim), **tol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_backwards_stable_at_magnitude_1e4(dtype):
    x = make_tensor((3, 5), dtype, seed=6, scale=1e4)
    for _, backward, oracle, reduces in FAMILY.values():
        grad_out = make_tensor(_grad_out_shape((3, 5), 1, reduces), dtype, seed=7)
        (expected,) = autograd_grads(lambda x_, f=oracle: f(x_, 1), [x], grad_out)
        got = backward(grad_out, x, 1)
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, expected, **tolerance(dtype))


# --- masked rows (-inf)
# ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_rows_with_minus_infinity_behave_like_torch(dtype):
    inf = math.inf
    x = torch.tensor(
        [[-inf, 1.0, 2.0, -inf], [-inf, -inf, -inf, -inf], [0.5, -inf, -1.0, 3.0]],
        dtype=dtype,
    )
    for ours, oracle in (
        (logsumexp, torch.logsumexp),
        (softmax, torch.softmax),
        (log_softmax, torch.log_softmax),
    ):
        torch.testing.assert_close(
            ours(x, -1), oracle(x, -1), equal_nan=True, **tolerance(dtype)
        )
    # A fully masked row: logsumexp is log(0) = -inf (not nan).
    assert logsumexp(x, -1)[1] == -inf
    # Partially masked rows are finite, with probability 0 where masked.
    assert torch.isfinite(softmax(x, -1)[[0, 2]]).all()
    assert (softmax(x, -1)[x == -inf].nan_to_num(nan=0.0) == 0).all()
    # And their gradients match autograd (only the partially masked rows: the full one
    # is nan).
    partial = x[[0, 2]]
    for _, backward, oracle, reduces in FAMILY.values():
        grad_out = make_tensor(_grad_out_shape((2, 4), -1, reduces), dtype, seed=3)
        (expected,) = autograd_grads(
            lambda x_, f=oracle: f(x_, -1), [partial], grad_out
        )
        torch.testing.assert_close(
            backward(grad_out, partial, -1), expected, **tolerance(dtype)
        )


# --- bad input
# ---------------------------------------------------------------------------


def test_wrong_grad_out_shape_names_the_shapes():
    x = torch.zeros(3, 4)
    with pytest.raises(
        ValueError,
        match=(
            r"grad_out has shape \(3, 4\) but it must have the forward's output shape "
            r"\(3,\) \(x has shape \(3, 4\)\)"
        ),
    ):
        logsumexp_backward(torch.zeros(3, 4), x)
    with pytest.raises(
        ValueError, match=r"grad_out has shape \(4,\) but .* shape \(3,\)"
    ):
        logsumexp_backward(torch.zeros(4), x, dim=-1)
    for backward in (softmax_backward, log_softmax_backward):
        with pytest.raises(
            ValueError, match=r"grad_out has shape \(3,\) but .* shape \(3, 4\)"
        ):
            backward(torch.zeros(3), x)


def test_bad_dim_dtype_and_empty_dimension_are_rejected():
    x = torch.zeros(3, 4)
    for forward in (logsumexp, softmax, log_softmax):
        with pytest.raises(
            ValueError, match=r"dim=2 is out of range for x of shape \(3, 4\)"
        ):
            forward(x, 2)
        with pytest.raises(ValueError, match="x must be a floating-point tensor"):
            forward(torch.zeros(3, 4, dtype=torch.int64))
        with pytest.raises(
            ValueError, match=r"x has shape \(3, 0\): dimension dim=1 is empty"
        ):
            forward(torch.zeros(3, 0))
        with pytest.raises(
            ValueError, match=r"x must have at least 1 dimension\(s\), got shape \(\)"
        ):
            forward(torch.zeros(()))
    with pytest.raises(
        ValueError,
        match=r"grad_out has dtype torch.float64 but x has dtype torch.float32",
    ):
        softmax_backward(torch.zeros(3, 4, dtype=torch.float64), x)
