"""mse and cross_entropy, and their gradients, against torch, autograd, finite
differences and closed forms; stability at magnitude 1e4; bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from backprop.losses import cross_entropy, cross_entropy_backward, mse, mse_backward
from oracles import autograd_grads, finite_difference_grad
from strategies import (
    DTYPES,
    dims,
    dtypes,
    layouts,
    make_tensor,
    seeds,
    shapes,
    tolerance,
)

index_dtypes = st.sampled_from([torch.int64, torch.int32])


def _targets(
    n: int, c: int, seed: int, dtype: torch.dtype = torch.int64
) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, c, (n,), generator=gen).to(dtype)


# --- mse
# ---------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(shape=shapes(min_dims=0), dtype=dtypes, layout=layouts, seed=seeds)
def test_mse_and_its_gradient_match_torch(shape, dtype, layout, seed):
    pred = make_tensor(shape, dtype, layout, seed)
    target = make_tensor(shape, dtype, "contiguous", seed + 1)
    loss = mse(pred, target)
    assert loss.shape == () and loss.dtype == dtype
    torch.testing.assert_close(loss, F.mse_loss(pred, target), **tolerance(dtype))
    expected_pred, expected_target = autograd_grads(F.mse_loss, [pred, target])
    got = mse_backward(pred, target)
    assert got.shape == pred.shape
    torch.testing.assert_close(got, expected_pred, **tolerance(dtype))
    # The target's gradient (should anyone want it) is the negative: no second function
    # needed.
    torch.testing.assert_close(-got, expected_target, **tolerance(dtype))


@settings(max_examples=25, deadline=None)
@given(shape=shapes(min_dims=1, max_dims=3, max_side=4), seed=seeds)
def test_mse_backward_matches_finite_differences(shape, seed):
    pred, target = make_tensor(shape, seed=seed), make_tensor(shape, seed=seed + 1)
    expected = finite_difference_grad(lambda p: mse(p, target), pred)
    torch.testing.assert_close(
        mse_backward(pred, target), expected, rtol=1e-6, atol=1e-6
    )


def test_mse_column_against_vector_is_an_error_naming_shapes_and_the_fix():
    pred, target = torch.zeros(5, 1), torch.zeros(5)
    message = (
        r"pred has shape \(5, 1\) but target has shape \(5,\).*"
        r"broadcast to shape \(5, 5\).*pred\.squeeze\(-1\) or target\.unsqueeze\(-1\)"
    )
    with pytest.raises(ValueError, match=message):
        mse(pred, target)
    with pytest.raises(ValueError, match=message):
        mse_backward(pred, target)
    # The other way round gets the mirrored advice.
    with pytest.raises(
        ValueError, match=r"target\.squeeze\(-1\) or pred\.unsqueeze\(-1\)"
    ):
        mse(torch.zeros(5), torch.zeros(5, 1))
    # Shapes that do not even broadcast are still named.
    with pytest.raises(
        ValueError, match=r"pred has shape \(3,\) but target has shape \(4,\)"
    ):
        mse(torch.zeros(3), torch.zeros(4))


def test_mse_rejects_mismatched_dtypes_integers_and_empty_tensors():
    with pytest.raises(
        ValueError,
        match=r"target has dtype torch.float64 but pred has dtype torch.float32",
    ):
        mse(torch.zeros(3), torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="target must be a floating-point tensor"):
        mse(torch.zeros(3), torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"pred has shape \(0,\)"):
        mse(torch.zeros(0), torch.zeros(0))


# --- cross-entropy
# -----------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    n=dims, c=dims, dtype=dtypes, layout=layouts, index_dtype=index_dtypes, seed=seeds
)
def test_cross_entropy_matches_torch(n, c, dtype, layout, index_dtype, seed):
    logits = make_tensor((n, c), dtype, layout, seed, scale=3.0)
    target = _targets(n, c, seed, index_dtype)
    loss = cross_entropy(logits, target)
    assert loss.shape == () and loss.dtype == dtype
    torch.testing.assert_close(
        loss, F.cross_entropy(logits, target.long()), **tolerance(dtype)
    )


@settings(max_examples=80, deadline=None)
@given(
    n=dims, c=dims, dtype=dtypes, layout=layouts, index_dtype=index_dtypes, seed=seeds
)
def test_cross_entropy_backward_matches_autograd_and_closed_form(
    n, c, dtype, layout, index_dtype, seed
):
    logits = make_tensor((n, c), dtype, layout, seed, scale=3.0)
    target = _targets(n, c, seed, index_dtype)
    (expected,) = autograd_grads(lambda z: F.cross_entropy(z, target.long()), [logits])
    got = cross_entropy_backward(logits, target)
    assert got.shape == logits.shape and got.dtype == dtype
    torch.testing.assert_close(got, expected, **tolerance(dtype))
    closed_form = (torch.softmax(logits, 1) - F.one_hot(target.long(), c).to(dtype)) / n
    torch.testing.assert_close(got, closed_form, **tolerance(dtype))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 4), c=st.integers(1, 4), seed=seeds)
def test_cross_entropy_backward_matches_finite_differences(n, c, seed):
    logits = make_tensor((n, c), seed=seed)
    target = _targets(n, c, seed)
    expected = finite_difference_grad(lambda z: cross_entropy(z, target), logits)
    torch.testing.assert_close(
        cross_entropy_backward(logits, target), expected, rtol=1e-6, atol=1e-6
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_stable_at_magnitude_1e4(dtype):
    logits = make_tensor((6, 5), dtype, seed=11, scale=1e4)
    target = _targets(6, 5, seed=12)
    with torch.no_grad():
        naive = (
            -(logits.exp() / logits.exp().sum(1, keepdim=True))
            .log()[torch.arange(6), target]
            .mean()
        )
    assert not torch.isfinite(naive)  # exp overflows: inf / inf = nan

    loss = cross_entropy(logits, target)
    assert torch.isfinite(loss)
    torch.testing.assert_close(
        loss, F.cross_entropy(logits, target), **tolerance(dtype)
    )
    (expected,) = autograd_grads(lambda z: F.cross_entropy(z, target), [logits])
    grad = cross_entropy_backward(logits, target)
    assert torch.isfinite(grad).all()
    torch.testing.assert_close(grad, expected, **tolerance(dtype))


def test_cross_entropy_target_out_of_range_names_value_and_position():
    logits = torch.zeros(4, 3)
    too_big = torch.tensor([0, 2, 3, 1])
    with pytest.raises(
        ValueError,
        match=(
            r"target\[2\] = 3 is not a class index: logits has shape \(4, 3\), so "
            r"targets must be in \[0, 3\)"
        ),
    ):
        cross_entropy(logits, too_big)
    with pytest.raises(ValueError, match=r"target\[2\] = 3"):
        cross_entropy_backward(logits, too_big)
    negative = torch.tensor([0, 1, 2, -1])
    with pytest.raises(ValueError, match=r"target\[3\] = -1 is not a class index"):
        cross_entropy(logits, negative)
    with pytest.raises(ValueError, match=r"target\[3\] = -1"):
        cross_entropy_backward(logits, negative)


def test_cross_entropy_rejects_float_targets_and_integer_logits():
    with pytest.raises(
        ValueError, match=r"target must hold integer indices .* got dtype torch.float32"
    ):
        cross_entropy(torch.zeros(2, 3), torch.tensor([0.0, 1.0]))
    with pytest.raises(
        ValueError,
        match=r"logits must be a floating-point tensor, got dtype torch.int64",
    ):
        cross_entropy(torch.zeros(2, 3, dtype=torch.int64), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="target must hold integer indices"):
        cross_entropy_backward(torch.zeros(2, 3), torch.tensor([0.0, 1.0]))


def test_cross_entropy_rejects_bad_shapes():
    with pytest.raises(
        ValueError, match=r"target has shape \(3,\) but logits has shape \(2, 3\)"
    ):
        cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1, 2]))
    with pytest.raises(
        ValueError, match=r"target must have 1 dimension\(s\), got shape \(2, 1\)"
    ):
        cross_entropy(torch.zeros(2, 3), torch.tensor([[0], [1]]))
    with pytest.raises(
        ValueError, match=r"logits must have 2 dimension\(s\), got shape \(3,\)"
    ):
        cross_entropy(torch.zeros(3), torch.tensor([0]))
    with pytest.raises(
        ValueError, match=r"logits has shape \(0, 3\): a batch of 0 rows"
    ):
        cross_entropy(torch.zeros(0, 3), torch.zeros(0, dtype=torch.int64))
