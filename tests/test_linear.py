"""lin and lin_backward against torch, autograd and finite differences."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from backprop.linear import lin, lin_backward
from oracles import autograd_grads, finite_difference_grads, torch_lin
from strategies import (
    batch_shapes,
    dtypes,
    layouts,
    make_tensor,
    seeds,
    small_dims,
    tolerance,
)


def _inputs(batch, n_in, n_out, dtype, x_layout, w_layout, with_bias, seed):
    x = make_tensor((*batch, n_in), dtype, x_layout, seed=seed)
    w = make_tensor((n_in, n_out), dtype, w_layout, seed=seed + 1)
    b = make_tensor((n_out,), dtype, "strided", seed=seed + 2) if with_bias else None
    grad_out = make_tensor((*batch, n_out), dtype, x_layout, seed=seed + 3)
    return x, w, b, grad_out


# The hypothesis arguments shared by the forward and backward tests.
LIN_CASES = dict(
    batch=batch_shapes(),
    n_in=small_dims,
    n_out=small_dims,
    dtype=dtypes,
    x_layout=layouts,
    w_layout=layouts,
    with_bias=st.booleans(),
    seed=seeds,
)


@settings(max_examples=60, deadline=None)
@given(**LIN_CASES)
def test_lin_matches_torch(
    batch, n_in, n_out, dtype, x_layout, w_layout, with_bias, seed
):
    x, w, b, _ = _inputs(batch, n_in, n_out, dtype, x_layout, w_layout, with_bias, seed)
    out = lin(x, w, b)
    assert out.shape == (*batch, n_out)
    torch.testing.assert_close(out, torch_lin(x, w, b), **tolerance(dtype))


@settings(max_examples=80, deadline=None)
@given(**LIN_CASES)
def test_lin_backward_matches_autograd(
    batch, n_in, n_out, dtype, x_layout, w_layout, with_bias, seed
):
    x, w, b, grad_out = _inputs(
        batch, n_in, n_out, dtype, x_layout, w_layout, with_bias, seed
    )
    expected = autograd_grads(torch_lin, [x, w, b], grad_out)
    got = lin_backward(grad_out, x, w, b)
    assert len(got) == 3
    for name, g, e, t in zip(
        ("grad_x", "grad_w", "grad_b"), got, expected, (x, w, b), strict=True
    ):
        if t is None:
            assert g is None, f"{name} must be None when b is None"
            continue
        assert g.shape == t.shape, name
        assert g.dtype == dtype, name
        torch.testing.assert_close(
            g, e, **tolerance(dtype), msg=lambda m, name=name: f"{name}: {m}"
        )


@settings(max_examples=25, deadline=None)
@given(batch=batch_shapes(max_dims=2), n_in=small_dims, n_out=small_dims, seed=seeds)
def test_lin_backward_matches_finite_differences(batch, n_in, n_out, seed):
    x, w, b, grad_out = _inputs(
        batch, n_in, n_out, torch.float64, "contiguous", "contiguous", True, seed
    )
    grad_x, grad_w, grad_b = lin_backward(grad_out, x, w, b)
    fd = dict(rtol=1e-6, atol=1e-6)
    expected = finite_difference_grads(lin, (x, w, b), grad_out)
    for got, fd_grad in zip((grad_x, grad_w, grad_b), expected, strict=True):
        torch.testing.assert_close(got, fd_grad, **fd)


def test_lin_backward_bias_gradient_sums_over_every_leading_dim():
    x, w, b, grad_out = _inputs(
        (2, 3), 4, 5, torch.float64, "contiguous", "contiguous", True, seed=7
    )
    _, _, grad_b = lin_backward(grad_out, x, w, b)
    torch.testing.assert_close(grad_b, grad_out.sum(dim=(0, 1)))


def test_lin_without_batch_dims_is_a_vector_matrix_product():
    x, w, b, grad_out = _inputs(
        (), 3, 2, torch.float64, "contiguous", "contiguous", True, seed=3
    )
    grad_x, grad_w, grad_b = lin_backward(grad_out, x, w, b)
    torch.testing.assert_close(
        grad_w, torch.outer(x, grad_out)
    )  # one row: an outer product
    torch.testing.assert_close(grad_b, grad_out)
    torch.testing.assert_close(grad_x, w @ grad_out)


# --- bad input
# ---------------------------------------------------------------------------


def test_features_mismatch_names_both_shapes():
    x, w = torch.zeros(3, 5), torch.zeros(4, 2)
    message = r"x has 5 features \(shape \(3, 5\)\) but w has 4 rows \(shape \(4, 2\)\)"
    with pytest.raises(ValueError, match=message):
        lin(x, w)
    with pytest.raises(ValueError, match=message):
        lin_backward(torch.zeros(3, 2), x, w)


def test_bias_of_wrong_shape_names_the_shapes():
    x, w = torch.zeros(3, 4), torch.zeros(4, 2)
    for bad in (torch.zeros(3), torch.zeros(1, 2), torch.zeros(2, 1)):
        with pytest.raises(
            ValueError,
            match=(
                r"b has shape \(.*\) but w has shape \(4, 2\), so b must have shape "
                r"\(2,\)"
            ),
        ):
            lin(x, w, bad)
        with pytest.raises(ValueError, match=r"b has shape"):
            lin_backward(torch.zeros(3, 2), x, w, bad)


def test_wrong_grad_out_shape_names_the_shapes():
    x, w, b = torch.zeros(3, 4), torch.zeros(4, 2), torch.zeros(2)
    for bad in (
        torch.zeros(3, 4),
        torch.zeros(2),
        torch.zeros(1, 3, 2),
        torch.zeros(3, 1),
    ):
        with pytest.raises(
            ValueError,
            match=(
                r"grad_out has shape \(.*\) but lin\(x, w\) with x of shape \(3, 4\) "
                r"and w of shape \(4, 2\) has shape \(3, 2\)"
            ),
        ):
            lin_backward(bad, x, w, b)


def test_mismatched_dtypes_are_rejected():
    x, w = (
        torch.zeros(3, 4, dtype=torch.float32),
        torch.zeros(4, 2, dtype=torch.float64),
    )
    with pytest.raises(
        ValueError, match=r"w has dtype torch.float64 but x has dtype torch.float32"
    ):
        lin(x, w)
    with pytest.raises(
        ValueError, match=r"b has dtype torch.float64 but x has dtype torch.float32"
    ):
        lin(x, w.float(), torch.zeros(2, dtype=torch.float64))
    with pytest.raises(
        ValueError,
        match=r"grad_out has dtype torch.float64 but x has dtype torch.float32",
    ):
        lin_backward(torch.zeros(3, 2, dtype=torch.float64), x, w.float())


def test_integer_inputs_and_non_matrix_weights_are_rejected():
    with pytest.raises(ValueError, match="x must be a floating-point tensor"):
        lin(torch.zeros(3, 4, dtype=torch.int64), torch.zeros(4, 2))
    with pytest.raises(
        ValueError, match=r"w must have 2 dimension\(s\), got shape \(4,\)"
    ):
        lin(torch.zeros(3, 4), torch.zeros(4))
    with pytest.raises(
        ValueError, match=r"x must have at least 1 dimension\(s\), got shape \(\)"
    ):
        lin(torch.zeros(()), torch.zeros(1, 2))


@settings(max_examples=30, deadline=None)
@given(**LIN_CASES)
def test_lin_backward_without_grad_x_gives_the_same_parameter_gradients(
    batch, n_in, n_out, dtype, x_layout, w_layout, with_bias, seed
):
    x, w, b, grad_out = _inputs(
        batch, n_in, n_out, dtype, x_layout, w_layout, with_bias, seed
    )
    _, expected_w, expected_b = autograd_grads(torch_lin, [x, w, b], grad_out)
    grad_x, grad_w, grad_b = lin_backward(grad_out, x, w, b, need_grad_x=False)
    assert grad_x is None
    torch.testing.assert_close(grad_w, expected_w, **tolerance(dtype))
    if with_bias:
        torch.testing.assert_close(grad_b, expected_b, **tolerance(dtype))
    else:
        assert grad_b is None
