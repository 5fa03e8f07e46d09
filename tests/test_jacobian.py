"""Tests for backprop.jacobian: explicit Jacobians, vector–Jacobian products, sizes.

Oracles: ``torch.autograd.functional.jacobian`` in float64, closed forms (the
derivative of an elementwise function, the block structure of ``X @ W``) and
hand-written backwards of small functions defined here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from backprop.jacobian import jacobian, jacobian_size, vjp
from strategies import dtypes, layouts, make_tensor, seeds, shapes, tolerance

# Finite differences with eps=1e-6 in float64 are good to about 1e-9 here.
FD_TOL = dict(rtol=1e-6, atol=1e-7)


def autograd_jacobian(
    f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor
) -> torch.Tensor:
    """The oracle: autograd's Jacobian of ``f`` at a float64 copy of ``x``."""
    return torch.autograd.functional.jacobian(f, x.detach().to(torch.float64).clone())


@dataclass
class Case:
    """A small function ``f``, its hand-written backward at ``x``, and the point ``x``.

    ``f`` casts its fixed parameters to ``x``'s dtype, so the same ``f`` serves the
    float64 finite differences and a float32 ``x``.
    """

    name: str
    x: torch.Tensor
    f: Callable[[torch.Tensor], torch.Tensor]
    backward: Callable[[torch.Tensor], torch.Tensor]


def _elementwise(x: torch.Tensor) -> Case:
    def f(x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x) * x

    def backward(g: torch.Tensor) -> torch.Tensor:
        t = torch.tanh(x)
        return g * (t + x * (1 - t * t))

    return Case("tanh(x) * x", x, f, backward)


@st.composite
def cases(draw) -> Case:
    kind = draw(st.sampled_from(["elementwise", "x @ W", "W @ x", "softmax"]))
    dtype, layout, seed = draw(dtypes), draw(layouts), draw(seeds)
    if kind == "elementwise":
        return _elementwise(
            make_tensor(
                draw(shapes(min_dims=0, max_dims=3, max_side=4)), dtype, layout, seed
            )
        )
    if kind == "x @ W":
        # x of shape (..., k) on the left of W of shape (k, m).
        x = make_tensor(
            draw(shapes(min_dims=1, max_dims=3, max_side=4)), dtype, layout, seed
        )
        w = make_tensor(
            (x.shape[-1], draw(st.integers(1, 4))), torch.float64, seed=seed + 1
        )
        return Case(kind, x, lambda x: x @ w.to(x.dtype), lambda g: g @ w.to(x.dtype).T)
    if kind == "W @ x":
        # x of shape (n,) or (..., n, k) on the right of W of shape (m, n).
        x_shape = draw(shapes(min_dims=1, max_dims=3, max_side=4))
        x = make_tensor(x_shape, dtype, layout, seed)
        n = x_shape[0] if len(x_shape) == 1 else x_shape[-2]
        w = make_tensor((draw(st.integers(1, 4)), n), torch.float64, seed=seed + 1)
        return Case(kind, x, lambda x: w.to(x.dtype) @ x, lambda g: w.to(x.dtype).T @ g)
    x = make_tensor(
        draw(shapes(min_dims=1, max_dims=3, max_side=4)), dtype, layout, seed
    )
    dim = draw(st.integers(-x.ndim, x.ndim - 1))

    def softmax_backward(g: torch.Tensor) -> torch.Tensor:
        s = torch.softmax(x, dim)
        return s * (g - (g * s).sum(dim, keepdim=True))

    return Case(
        f"softmax(dim={dim})", x, lambda x: torch.softmax(x, dim), softmax_backward
    )


@settings(max_examples=40, deadline=None)
@given(case=cases())
def test_finite_difference_jacobian_matches_autograd(case: Case) -> None:
    jac = jacobian(case.f, case.x)
    expected = autograd_jacobian(case.f, case.x)
    assert jac.dtype == torch.float64
    assert jac.shape == case.f(case.x).shape + case.x.shape
    torch.testing.assert_close(jac, expected, **FD_TOL)


@settings(max_examples=40, deadline=None)
@given(case=cases())
def test_jacobian_from_backward_matches_finite_differences(case: Case) -> None:
    from_backward = jacobian(case.f, case.x, backward=case.backward)
    assert from_backward.dtype == case.x.dtype
    assert from_backward.shape == case.f(case.x).shape + case.x.shape
    tol = tolerance(case.x.dtype) if case.x.dtype != torch.float64 else FD_TOL
    torch.testing.assert_close(
        from_backward.to(torch.float64), jacobian(case.f, case.x), **tol
    )


@settings(max_examples=40, deadline=None)
@given(case=cases(), seed=seeds)
def test_vjp_equals_backward(case: Case, seed: int) -> None:
    grad_out = make_tensor(tuple(case.f(case.x).shape), case.x.dtype, seed=seed)
    from_jacobian = vjp(jacobian(case.f, case.x, backward=case.backward), grad_out)
    torch.testing.assert_close(
        from_jacobian, case.backward(grad_out), **tolerance(case.x.dtype)
    )
    # The finite-difference Jacobian (float64) pulls back to the same gradient.
    tol = tolerance(case.x.dtype) if case.x.dtype != torch.float64 else FD_TOL
    torch.testing.assert_close(
        vjp(jacobian(case.f, case.x), grad_out.to(torch.float64)),
        case.backward(grad_out).to(torch.float64),
        **tol,
    )


@settings(max_examples=40, deadline=None)
@given(
    shape=shapes(min_dims=0, max_dims=3, max_side=4),
    dtype=dtypes,
    layout=layouts,
    seed=seeds,
)
def test_elementwise_jacobian_is_diagonal(shape, dtype, layout, seed) -> None:
    case = _elementwise(make_tensor(shape, dtype, layout, seed))
    n = case.x.numel()
    for jac in (
        jacobian(case.f, case.x),
        jacobian(case.f, case.x, backward=case.backward),
    ):
        square = jac.reshape(n, n)
        off_diagonal = square - torch.diag(torch.diagonal(square))
        # Nudging x[j] cannot move y[i] for i != j: exactly zero, not merely small.
        assert torch.count_nonzero(off_diagonal) == 0
        t = torch.tanh(case.x.to(square.dtype))
        derivative = (t + case.x.to(square.dtype) * (1 - t * t)).reshape(-1)
        tol = FD_TOL if square.dtype == torch.float64 else tolerance(square.dtype)
        torch.testing.assert_close(torch.diagonal(square), derivative, **tol)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 4),
    k=st.integers(1, 4),
    m=st.integers(1, 4),
    layout=layouts,
    seed=seeds,
)
def test_matmul_jacobian_block_structure(n, k, m, layout, seed) -> None:
    """``Y = X @ W``: ``dY[i, a] / dX[c, b] = delta(i, c) W[b, a]`` and ``dY[i, a] /
    dW[c, d] = X[i, c] delta(a, d)``."""
    x = make_tensor((n, k), torch.float64, layout, seed)
    w = make_tensor((k, m), torch.float64, layout, seed + 1)

    # Y[i, a] = sum_b X[i, b] W[b, a], so only row i of X reaches row i of Y.
    expected_x = torch.einsum("ic,ba->iacb", torch.eye(n, dtype=torch.float64), w)
    # ... and only column a of W reaches column a of Y.
    expected_w = torch.einsum("ic,ad->iacd", x, torch.eye(m, dtype=torch.float64))

    torch.testing.assert_close(
        autograd_jacobian(lambda x_: x_ @ w, x), expected_x, rtol=1e-12, atol=1e-12
    )
    torch.testing.assert_close(
        autograd_jacobian(lambda w_: x @ w_, w), expected_w, rtol=1e-12, atol=1e-12
    )
    torch.testing.assert_close(jacobian(lambda x_: x_ @ w, x), expected_x, **FD_TOL)
    torch.testing.assert_close(jacobian(lambda w_: x @ w_, w), expected_w, **FD_TOL)
    by_backward = jacobian(lambda x_: x_ @ w, x, backward=lambda g: g @ w.T)
    torch.testing.assert_close(by_backward, expected_x, rtol=1e-12, atol=1e-12)
    # The blocks off the diagonal are exactly zero.
    for i in range(n):
        for c in range(n):
            if i != c:
                assert torch.count_nonzero(by_backward[i, :, c, :]) == 0


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_jacobian_with_functional_backwards(dtype: torch.dtype) -> None:
    """The library's own backwards build the same Jacobians as finite differences."""
    F = pytest.importorskip("backprop.functional")
    x = make_tensor((3, 4), dtype, "transposed", seed=1)
    w = make_tensor((4, 2), dtype, seed=2)
    b = make_tensor((2,), dtype, seed=3)
    examples = [
        (lambda x_: F.relu(x_), lambda g: F.relu_backward(g, x)),
        (lambda x_: F.softmax(x_, 0), lambda g: F.softmax_backward(g, x, 0)),
        (
            lambda x_: F.lin(x_, w.to(x_.dtype), b.to(x_.dtype)),
            lambda g: F.lin_backward(g, x, w, b)[0],
        ),
    ]
    for f, backward in examples:
        tol = FD_TOL if dtype == torch.float64 else tolerance(dtype)
        torch.testing.assert_close(
            jacobian(f, x, backward=backward).to(torch.float64),
            jacobian(f, x),
            **tol,
        )


@settings(max_examples=60, deadline=None)
@given(
    out_shape=shapes(min_dims=0, max_dims=4, max_side=100),
    in_shape=shapes(min_dims=0, max_dims=4, max_side=100),
    dtype=st.sampled_from(
        [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int64]
    ),
)
def test_jacobian_size_closed_form(out_shape, in_shape, dtype) -> None:
    entries = 1
    for d in (*out_shape, *in_shape):
        entries *= d
    size = jacobian_size(out_shape, in_shape, dtype)
    assert size == (entries, entries * torch.empty((), dtype=dtype).element_size())
    assert size.entries == entries
    assert jacobian_size(torch.Size(out_shape), torch.Size(in_shape), dtype) == size


def test_jacobian_size_of_a_real_layer() -> None:
    # Batch 64 through a 4096 -> 4096 layer: (64, 4096) output w.r.t. (64, 4096) input.
    entries, nbytes = jacobian_size((64, 4096), (64, 4096))
    assert entries == 64 * 4096 * 64 * 4096 == 2**36
    assert nbytes == 4 * 2**36  # 256 GiB in float32
    assert (
        jacobian_size((64, 4096), (4096, 4096), torch.float64).bytes == 8 * 64 * 4096**3
    )


def test_jacobian_small_example_matches_closed_form() -> None:
    """A hand-checked 2-D example: ``f(x) = (x0 * x1, x0 + 2 x1)`` at ``(3, 5)``."""
    x = torch.tensor([3.0, 5.0], dtype=torch.float64)
    f = lambda x: torch.stack([x[0] * x[1], x[0] + 2 * x[1]])  # noqa: E731
    expected = torch.tensor([[5.0, 3.0], [1.0, 2.0]], dtype=torch.float64)
    torch.testing.assert_close(jacobian(f, x), expected, **FD_TOL)
    grad_out = torch.tensor([1.0, -1.0], dtype=torch.float64)
    torch.testing.assert_close(
        vjp(expected, grad_out), torch.tensor([4.0, 1.0], dtype=torch.float64)
    )


# --- bad input -----------------------------------------------------------------------


def test_vjp_rejects_mismatched_shapes() -> None:
    jac = torch.zeros(3, 2, 4)
    with pytest.raises(
        ValueError, match=r"grad_out has shape \(2, 3\) but jac has shape \(3, 2, 4\)"
    ):
        vjp(jac, torch.zeros(2, 3))
    with pytest.raises(
        ValueError,
        match=r"grad_out has shape \(3, 2, 4, 1\) but jac has shape \(3, 2, 4\)",
    ):
        vjp(jac, torch.zeros(3, 2, 4, 1))


def test_vjp_rejects_mismatched_dtypes() -> None:
    with pytest.raises(
        ValueError,
        match=r"grad_out has dtype torch.float32 but jac has dtype torch.float64",
    ):
        vjp(torch.zeros(3, 2, dtype=torch.float64), torch.zeros(3))


def test_jacobian_rejects_backward_of_wrong_shape() -> None:
    x = torch.zeros(2, 3)
    with pytest.raises(
        ValueError,
        match=(
            r"backward\(e_i\) returned a gradient of shape \(3, 2\) but x has shape "
            r"\(2, 3\)"
        ),
    ):
        jacobian(lambda x: x * 2, x, backward=lambda g: g.T * 2)


def test_jacobian_rejects_backward_of_wrong_dtype() -> None:
    x = torch.zeros(2, 3)
    with pytest.raises(
        ValueError,
        match=r"backward\(e_i\) has dtype torch.float64 but x has dtype torch.float32",
    ):
        jacobian(lambda x: x * 2, x, backward=lambda g: (g * 2).double())


def test_jacobian_rejects_integer_input_and_output() -> None:
    with pytest.raises(
        ValueError, match=r"x must be a floating-point tensor, got dtype torch.int64"
    ):
        jacobian(lambda x: x * 2, torch.arange(3))
    with pytest.raises(ValueError, match=r"f\(x\) must be a floating-point tensor"):
        jacobian(lambda x: (x > 0).long(), torch.zeros(3))


def test_jacobian_rejects_bad_eps() -> None:
    with pytest.raises(ValueError, match=r"eps must be positive, got 0"):
        jacobian(torch.tanh, torch.zeros(3), eps=0)


def test_jacobian_size_rejects_bad_shapes() -> None:
    with pytest.raises(
        ValueError,
        match=r"out_shape must hold non-negative integer sizes, got \(64, -1\)",
    ):
        jacobian_size((64, -1), (3,))
    with pytest.raises(ValueError, match=r"in_shape must be a sequence of sizes"):
        jacobian_size((3,), 4096)  # type: ignore[arg-type]


def test_jacobian_size_is_exact_for_huge_shapes() -> None:
    # Python integers: no float rounding, no int64 overflow.
    shape = (10**6, 10**6, 10**6)
    assert jacobian_size(shape, shape, torch.float64).entries == 10**36
    assert math.prod(shape) ** 2 * 8 == jacobian_size(shape, shape, torch.float64).bytes
