"""Explicit Jacobians, for small examples, and why backprop never builds them.

For ``y = f(x)`` with ``x`` of shape ``(n1, ..., nk)`` and ``y`` of shape
``(m1, ..., ml)``, the Jacobian is the tensor of every partial derivative::

    J[i1..il, j1..jk] = d y[i1..il] / d x[j1..jk]        shape  y.shape + x.shape

Between two matrices it is a 4-D tensor. For ``Y = X @ W`` (``X`` of shape
``(n, k)``, ``W`` of shape ``(k, m)``), ``Y[i, a] = sum_b X[i, b] W[b, a]``, so::

    J[i, a, k, b] = d Y[i, a] / d X[k, b] = delta(i, k) * W[b, a]

block-diagonal in the rows: row ``i`` of ``Y`` depends only on row ``i`` of ``X``.

A backward pass never forms ``J``. Given the upstream gradient ``g = dL/dy`` it
returns the vector–Jacobian product directly::

    dL/dx[j...] = sum_i g[i...] * J[i..., j...]

:func:`vjp` computes that sum the expensive way, from the explicit ``J``, so a
post can show both agree; :func:`jacobian_size` shows why the explicit way is
out of the question for a real layer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch

from backprop._checks import (
    as_int,
    require_float,
    require_same_dtype,
    require_tensor,
    shape_str,
)

__all__ = ["JacobianSize", "jacobian", "jacobian_size", "vjp"]


def jacobian(
    f: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    backward: Callable[[torch.Tensor], torch.Tensor] | None = None,
    eps: float = 1e-6,
) -> torch.Tensor:
    r"""The Jacobian of ``f`` at ``x``, built entry by entry.

    $J_{ij} = \partial f(x)_i / \partial x_j$, with $i$ running over the
    output's elements and $j$ over the input's, so $J$ has shape
    ``f(x).shape + x.shape``. Two ways to fill it:

    - ``backward=None``: central finite differences, one input element at a time,
      $J_{\cdot j} = \big(f(x + \epsilon e_j) - f(x - \epsilon e_j)\big) / 2\epsilon$.
      ``x`` is converted to float64 first and the result is float64: in float32 the
      difference of two nearly equal outputs keeps only a few correct digits. ``f``
      must therefore accept a float64 ``x`` (tensors it closes over, such as a
      weight matrix, should be float64 too).
    - ``backward`` given: pulling back the one-hot output direction $e_i$ gives
      row $i$, $J_{i \cdot} = \mathrm{backward}(e_i)$. ``f`` is evaluated once, at
      ``x`` as given, only for the output's shape; the result has ``x``'s dtype
      and device.

    This costs one call per input element (or per output element): it is for
    teaching examples with a few dozen entries, not for real layers.

    Parameters
    ----------
    f : callable
        ``f(x) -> torch.Tensor``, a floating tensor whose shape does not depend on
        small changes of ``x``.
    x : torch.Tensor
        Floating-point point at which to differentiate.
    backward : callable or None, default None
        Maps an upstream gradient of shape ``f(x).shape`` to the gradient for
        ``x`` (usually a hand-written backward with the forward's other inputs
        fixed).
    eps : float, default 1e-6
        Finite-difference step, positive.

    Returns
    -------
    torch.Tensor
        Shape ``f(x).shape + x.shape``.

    Raises
    ------
    ValueError
        If ``eps`` is not positive, ``f`` changes its output's shape, or
        ``backward`` returns a gradient of the wrong shape or dtype.

    Examples
    --------
    For $f(x) = 3x$ on three elements, $J = 3I$:

    >>> jacobian(lambda x: 3 * x, torch.ones(3), backward=lambda g: 3 * g)
    tensor([[3., 0., 0.],
            [0., 3., 0.],
            [0., 0., 3.]])
    >>> by_differences = jacobian(lambda x: 3 * x, torch.ones(3))
    >>> torch.allclose(by_differences, 3 * torch.eye(3, dtype=torch.float64))
    True
    """
    require_float("x", x)
    if backward is None:
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps}")
        return _jacobian_by_finite_differences(f, x, eps)
    return _jacobian_by_backward(f, x, backward)


def _jacobian_by_finite_differences(
    f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, eps: float
) -> torch.Tensor:
    x64 = x.to(torch.float64).contiguous()
    out = _output_of("f(x)", f(x64))
    # One row per output element, one column per input element; reshaped at the end.
    jac = torch.empty(out.numel(), x64.numel(), dtype=torch.float64, device=x64.device)
    for j in range(x64.numel()):
        # Fresh copies each time, so an f that returns (a view of) its input is safe.
        x_plus, x_minus = x64.clone(), x64.clone()
        x_plus.view(-1)[j] += eps
        x_minus.view(-1)[j] -= eps
        out_plus = _output_of("f(x + eps)", f(x_plus), like=out)
        out_minus = _output_of("f(x - eps)", f(x_minus), like=out)
        jac[:, j] = (out_plus.to(torch.float64) - out_minus.to(torch.float64)).reshape(
            -1
        ) / (2 * eps)
    return jac.reshape(out.shape + x.shape)


def _jacobian_by_backward(
    f: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    backward: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    out = _output_of("f(x)", f(x))
    jac = torch.empty(out.numel(), x.numel(), dtype=x.dtype, device=x.device)
    for i in range(out.numel()):
        one_hot = torch.zeros(out.numel(), dtype=out.dtype, device=out.device)
        one_hot[i] = 1
        grad_x = backward(one_hot.reshape(out.shape))
        require_tensor("backward(e_i)", grad_x)
        if grad_x.shape != x.shape:
            raise ValueError(
                f"backward(e_i) returned a gradient of shape {shape_str(grad_x)} "
                f"but x has shape {shape_str(x)}; they must be equal"
            )
        require_same_dtype(x=x, **{"backward(e_i)": grad_x})
        jac[i] = grad_x.reshape(-1)
    return jac.reshape(out.shape + x.shape)


def _output_of(
    name: str, out: object, like: torch.Tensor | None = None
) -> torch.Tensor:
    """``f``'s output: a floating tensor, of the same shape every time."""
    out = require_float(name, out)
    if like is not None and out.shape != like.shape:
        raise ValueError(
            f"{name} has shape {shape_str(out)} but f(x) has shape {shape_str(like)}; "
            "f must keep its output shape when x changes slightly"
        )
    return out


def vjp(jac: torch.Tensor, grad_out: torch.Tensor) -> torch.Tensor:
    r"""The vector–Jacobian product from an explicit Jacobian: ``grad_out`` pulled back.

    $$
    \frac{\partial L}{\partial x_j} = \sum_i \frac{\partial L}{\partial y_i} J_{ij},
    $$

    i.e. ``torch.tensordot(grad_out, jac, dims=grad_out.ndim)``. It equals what a
    backward computes from ``grad_out`` without ever forming ``jac``.

    Parameters
    ----------
    jac : torch.Tensor
        Shape ``out_shape + in_shape``.
    grad_out : torch.Tensor
        $\partial L / \partial y$, shape ``out_shape``, ``jac``'s dtype.

    Returns
    -------
    torch.Tensor
        $\partial L / \partial x$, shape ``in_shape``.

    Raises
    ------
    ValueError
        If ``jac``'s leading dimensions are not ``grad_out``'s shape, or the
        dtypes differ.

    Examples
    --------
    >>> vjp(torch.eye(2) * 3, torch.tensor([1.0, 2.0]))
    tensor([3., 6.])
    """
    require_float("jac", jac)
    require_float("grad_out", grad_out)
    out_ndim = grad_out.ndim
    if jac.ndim < out_ndim or jac.shape[:out_ndim] != grad_out.shape:
        raise ValueError(
            f"grad_out has shape {shape_str(grad_out)} but jac has shape "
            f"{shape_str(jac)}; "
            "jac's leading dimensions must equal grad_out's shape (jac is out_shape + "
            "in_shape)"
        )
    require_same_dtype(jac=jac, grad_out=grad_out)
    return torch.tensordot(grad_out, jac, dims=out_ndim)


class JacobianSize(NamedTuple):
    """How big an explicit Jacobian would be, as returned by `jacobian_size`.

    Attributes
    ----------
    entries : int
        Number of entries.
    bytes : int
        Bytes they take in the given dtype.
    """

    entries: int
    bytes: int


def jacobian_size(
    out_shape: Sequence[int],
    in_shape: Sequence[int],
    dtype: torch.dtype = torch.float32,
) -> JacobianSize:
    r"""How big the Jacobian of an ``out_shape`` output w.r.t. an ``in_shape`` input is.

    ``entries = prod(out_shape) * prod(in_shape)`` and
    ``bytes = entries * element size``. For a 4096 → 4096 linear layer on a batch
    of 64, the Jacobian of the ``(64, 4096)`` output with respect to the
    ``(64, 4096)`` input has $64 \cdot 4096 \cdot 64 \cdot 4096 \approx 6.9 \times
    10^{10}$ entries: 275 GB in float32, while the gradient a backward returns has
    the input's 262,144 entries.

    Parameters
    ----------
    out_shape, in_shape : sequence of int
        The output's and the input's shapes.
    dtype : torch.dtype, default torch.float32
        The element type, for the bytes.

    Returns
    -------
    JacobianSize
        ``(entries, bytes)``, as Python ints (no overflow).

    Raises
    ------
    ValueError
        If a shape is not a sequence of non-negative ints, or ``dtype`` is not a
        ``torch.dtype``.

    Examples
    --------
    >>> jacobian_size((64, 4096), (64, 4096))
    JacobianSize(entries=68719476736, bytes=274877906944)
    """
    out_dims = _shape_of("out_shape", out_shape)
    in_dims = _shape_of("in_shape", in_shape)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"dtype must be a torch.dtype, got {dtype!r}")
    # Python integers: no overflow however large the product gets.
    entries = math.prod(out_dims) * math.prod(in_dims)
    return JacobianSize(entries=entries, bytes=entries * dtype.itemsize)


def _shape_of(name: str, shape: Sequence[int]) -> tuple[int, ...]:
    """A shape as a tuple of non-negative Python ints (a ``torch.Size`` is fine)."""
    if isinstance(shape, (int, torch.Tensor)) or not isinstance(shape, Sequence):
        raise ValueError(
            f"{name} must be a sequence of sizes such as (64, 4096), got {shape!r}"
        )
    dims = tuple(shape)
    # numpy's integers are ints, bools are not; each becomes a Python int.
    sizes = tuple(n for n in map(as_int, dims) if n is not None and n >= 0)
    if len(sizes) != len(dims):
        raise ValueError(f"{name} must hold non-negative integer sizes, got {dims!r}")
    return sizes
