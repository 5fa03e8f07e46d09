"""embedding and embedding_backward against torch, autograd, finite differences and
closed forms."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from backprop.embedding import embedding, embedding_backward
from oracles import autograd_grads, finite_difference_grad
from strategies import (
    dtypes,
    layouts,
    make_index,
    make_tensor,
    seeds,
    shapes,
    tolerance,
)

idx_shapes = shapes(min_dims=0, max_dims=3, max_side=5)
table_sizes = st.integers(min_value=1, max_value=6)


def _inputs(
    idx_shape, num, dim, dtype, idx_layout, table_layout, seed, idx_dtype=torch.int64
):
    idx = make_index(idx_shape, num, idx_layout, seed=seed).to(idx_dtype)
    table = make_tensor((num, dim), dtype, table_layout, seed=seed + 1)
    grad_out = make_tensor((*idx_shape, dim), dtype, table_layout, seed=seed + 2)
    return idx, table, grad_out


# The hypothesis arguments shared by the forward and backward tests.
EMBEDDING_CASES = dict(
    idx_shape=idx_shapes,
    num=table_sizes,
    dim=table_sizes,
    dtype=dtypes,
    idx_layout=layouts,
    table_layout=layouts,
    idx_dtype=st.sampled_from([torch.int64, torch.int32]),
    seed=seeds,
)


@settings(max_examples=60, deadline=None)
@given(**EMBEDDING_CASES)
def test_embedding_matches_torch_and_one_hot(
    idx_shape, num, dim, dtype, idx_layout, table_layout, idx_dtype, seed
):
    idx, table, _ = _inputs(
        idx_shape, num, dim, dtype, idx_layout, table_layout, seed, idx_dtype
    )
    out = embedding(idx, table)
    assert out.shape == (*idx_shape, dim)
    torch.testing.assert_close(
        out, torch.nn.functional.embedding(idx.long(), table), rtol=0, atol=0
    )
    # The docstring's claim: an embedding is one_hot(idx) @ table.
    one_hot = torch.nn.functional.one_hot(idx.long(), num).to(dtype)
    torch.testing.assert_close(out, one_hot @ table, **tolerance(dtype))


@settings(max_examples=80, deadline=None)
@given(**EMBEDDING_CASES)
def test_embedding_backward_matches_autograd(
    idx_shape, num, dim, dtype, idx_layout, table_layout, idx_dtype, seed
):
    idx, table, grad_out = _inputs(
        idx_shape, num, dim, dtype, idx_layout, table_layout, seed, idx_dtype
    )
    _, expected = autograd_grads(
        lambda i, t: torch.nn.functional.embedding(i.long(), t), [idx, table], grad_out
    )
    got = embedding_backward(grad_out, idx, table)
    assert got.shape == table.shape and got.dtype == dtype
    torch.testing.assert_close(got, expected, **tolerance(dtype))


@settings(max_examples=60, deadline=None)
@given(
    idx_shape=shapes(min_dims=1, max_dims=3, max_side=6),
    num=table_sizes,
    dim=table_sizes,
    seed=seeds,
)
def test_repeated_indices_accumulate(idx_shape, num, dim, seed):
    # With the same upstream vector u at every position, row r of the gradient is
    # count(r) * u: every lookup of r adds u once.
    idx = make_index(idx_shape, num, seed=seed)
    table = make_tensor((num, dim), seed=seed + 1)
    u = make_tensor((dim,), seed=seed + 2)
    grad_out = u.expand(*idx_shape, dim)
    counts = torch.bincount(idx.reshape(-1), minlength=num).to(table.dtype)
    torch.testing.assert_close(
        embedding_backward(grad_out, idx, table),
        counts[:, None] * u,
        **tolerance(table.dtype),
    )


def test_repeated_index_sums_where_assignment_keeps_one():
    table = torch.zeros(4, 2, dtype=torch.float64)
    idx = torch.tensor([2, 2, 2, 0])
    grad_out = torch.tensor(
        [[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [5.0, 50.0]], dtype=torch.float64
    )
    expected = torch.tensor(
        [[5.0, 50.0], [0.0, 0.0], [6.0, 60.0], [0.0, 0.0]], dtype=torch.float64
    )
    torch.testing.assert_close(
        embedding_backward(grad_out, idx, table), expected, rtol=0, atol=0
    )
    # The '=' bug keeps one of the three gradients of row 2, so the check above can
    # fail.
    assigned = torch.zeros_like(table)
    assigned[idx] = grad_out
    assert not torch.equal(assigned, expected)


@settings(max_examples=20, deadline=None)
@given(
    idx_shape=shapes(min_dims=0, max_dims=2, max_side=4),
    num=table_sizes,
    dim=st.integers(1, 3),
    seed=seeds,
)
def test_embedding_backward_matches_finite_differences(idx_shape, num, dim, seed):
    idx, table, grad_out = _inputs(
        idx_shape, num, dim, torch.float64, "contiguous", "contiguous", seed
    )
    expected = finite_difference_grad(
        lambda t: (embedding(idx, t) * grad_out).sum(), table
    )
    torch.testing.assert_close(
        embedding_backward(grad_out, idx, table), expected, rtol=1e-6, atol=1e-6
    )


# ----------------------------------------------------------------------------- bad
# input


def test_index_out_of_range_names_value_and_position():
    table = torch.zeros(5, 3)
    with pytest.raises(
        ValueError, match=r"idx contains 7 at position \(1, 0\).*\(5, 3\).*\[0, 4\]"
    ):
        embedding(torch.tensor([[0, 1], [7, 2]]), table)
    with pytest.raises(ValueError, match=r"idx contains 5 at position \(2,\)"):
        embedding_backward(torch.zeros(3, 3), torch.tensor([0, 4, 5]), table)


def test_negative_index_is_refused():
    with pytest.raises(
        ValueError, match=r"idx contains -1 at position \(0,\).*\[0, 4\]"
    ):
        embedding(torch.tensor([-1, 2]), torch.zeros(5, 3))


def test_float_index_is_refused():
    with pytest.raises(
        ValueError, match=r"idx must hold integer indices.*torch.float32"
    ):
        embedding(torch.tensor([0.0, 1.0]), torch.zeros(5, 3))


def test_table_must_be_2d_float():
    with pytest.raises(
        ValueError, match=r"table must have 2 dimension\(s\), got shape \(5,\)"
    ):
        embedding(torch.tensor([0]), torch.zeros(5))
    with pytest.raises(ValueError, match=r"table must be a floating-point tensor"):
        embedding(torch.tensor([0]), torch.zeros(5, 3, dtype=torch.int64))


def test_grad_out_shape_and_dtype_are_checked():
    idx, table = torch.tensor([[0, 1, 2]]), torch.zeros(5, 3)
    with pytest.raises(
        ValueError, match=r"grad_out must have shape \(1, 3, 3\).*got shape \(3, 3\)"
    ):
        embedding_backward(torch.zeros(3, 3), idx, table)
    with pytest.raises(
        ValueError,
        match=r"grad_out has dtype torch.float64 but table has dtype torch.float32",
    ):
        embedding_backward(torch.zeros(1, 3, 3, dtype=torch.float64), idx, table)
