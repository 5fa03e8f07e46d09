"""logsumexp, softmax and log-softmax, computed stably, and their backwards.

Along a dimension ``dim`` of ``x``::

    logsumexp(x) = log(sum_j exp(x_j))
    softmax(x)_i = exp(x_i) / sum_j exp(x_j)
    log_softmax(x)_i = x_i - logsumexp(x)

The naive formulas overflow: ``exp(1e4)`` is ``inf`` even in float64 (float64
overflows above about 709, float32 above about 88), and then ``inf / inf`` is
``nan``. The fix is to subtract the maximum ``m`` first, which changes nothing
mathematically::

    logsumexp(x) = m + log(sum_j exp(x_j - m))
    softmax(x)_i = exp(x_i - m) / sum_j exp(x_j - m)

Now every exponent is at most 0, so nothing overflows, and the largest term is
``exp(0) = 1``, so the sum is at least 1 and its log is safe.

Backwards, with ``s = softmax(x)`` and upstream gradient ``g``::

    d logsumexp / dx_i = s_i                       -> g[..., None] * s
    d softmax_i / dx_j = s_i (delta_ij - s_j)      -> s * (g - sum_j g_j s_j)
    d log_softmax_i / dx_j = delta_ij - s_j        -> g - s * sum_i g_i

Each backward is a vector-Jacobian product written without building the
Jacobian: the sums run along ``dim`` (with ``keepdim=True`` so they broadcast
back).
"""

from __future__ import annotations

import torch

from backprop._checks import (
    normalize_dim,
    require_float,
    require_ndim,
    require_same_dtype,
    shape_str,
)

__all__ = [
    "log_softmax",
    "log_softmax_backward",
    "logsumexp",
    "logsumexp_backward",
    "softmax",
    "softmax_backward",
]


def _check_x_dim(x: torch.Tensor, dim: int) -> int:
    """Validate ``x`` and return ``dim`` as a non-negative index."""
    require_float("x", x)
    require_ndim("x", x, min_ndim=1)
    dim = normalize_dim("x", dim, x)
    if x.shape[dim] == 0:
        raise ValueError(
            f"x has shape {shape_str(x)}: dimension dim={dim} is empty, nothing to "
            "normalise over"
        )
    return dim


def _check_grad_out(
    grad_out: torch.Tensor, x: torch.Tensor, expected: tuple[int, ...]
) -> None:
    require_float("grad_out", grad_out)
    require_same_dtype(x=x, grad_out=grad_out)
    if grad_out.shape != expected:
        raise ValueError(
            f"grad_out has shape {shape_str(grad_out)} but it must have the forward's "
            "output "
            f"shape {shape_str(expected)} (x has shape {shape_str(x)})"
        )


def _stable_shift(x: torch.Tensor, dim: int) -> torch.Tensor:
    """The max along ``dim`` (kept as size 1), or 0 where that max is infinite.

    A row of all ``-inf`` (say, a fully masked row) has max ``-inf``, and
    ``-inf - (-inf)`` is ``nan``; shifting that row by 0 instead gives
    ``exp(-inf) = 0``, so logsumexp is ``log(0) = -inf``, as it should be. A row
    containing ``+inf`` likewise shifts by 0 so logsumexp is ``+inf``.
    """
    m = x.amax(dim=dim, keepdim=True)
    return torch.where(torch.isfinite(m), m, torch.zeros_like(m))


def logsumexp(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    r"""$\log \sum_j e^{x_j}$ along ``dim``, computed stably.

    The maximum $m$ is subtracted first, $m + \log \sum_j e^{x_j - m}$, so no
    exponential overflows.

    Parameters
    ----------
    x : torch.Tensor
        Floating-point tensor with at least one dimension.
    dim : int, default -1
        The dimension to normalise over; negative counts from the end.

    Returns
    -------
    torch.Tensor
        ``x``'s shape without ``dim``.

    Raises
    ------
    ValueError
        If ``x`` is not a floating-point tensor with at least one dimension, or
        ``dim`` is out of range or empty.

    Examples
    --------
    >>> logsumexp(torch.tensor([1000.0, 1000.0], dtype=torch.float64))
    tensor(1000.6931, dtype=torch.float64)
    """
    dim = _check_x_dim(x, dim)
    m = _stable_shift(x, dim)
    return m.squeeze(dim) + (x - m).exp().sum(dim).log()


def logsumexp_backward(
    grad_out: torch.Tensor, x: torch.Tensor, dim: int = -1
) -> torch.Tensor:
    r"""The gradient of `logsumexp` with respect to ``x``.

    $\partial \operatorname{logsumexp}(x) / \partial x_i = \operatorname{softmax}(x)_i$,
    so the result is ``grad_out.unsqueeze(dim) * softmax(x, dim)``.

    Parameters
    ----------
    grad_out : torch.Tensor
        $\partial L / \partial \operatorname{logsumexp}(x)$: ``x``'s shape without
        ``dim``.
    x : torch.Tensor
        The forward's input.
    dim : int, default -1
        The dimension to normalise over; negative counts from the end.

    Returns
    -------
    torch.Tensor
        $\partial L / \partial x$, ``x``'s shape.

    Raises
    ------
    ValueError
        If ``x`` is not a floating-point tensor with at least one dimension,
        ``dim`` is out of range or empty, or ``grad_out`` has the wrong shape or
        dtype.

    Examples
    --------
    >>> logsumexp_backward(torch.tensor(1.0), torch.zeros(4))
    tensor([0.2500, 0.2500, 0.2500, 0.2500])
    """
    dim = _check_x_dim(x, dim)
    _check_grad_out(grad_out, x, x.shape[:dim] + x.shape[dim + 1 :])
    return grad_out.unsqueeze(dim) * softmax(x, dim)


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    r"""$\operatorname{softmax}(x)_i = e^{x_i} / \sum_j e^{x_j}$ along ``dim``, stably.

    A row of all ``-inf`` gives ``0 / 0 = nan``, as ``torch.softmax`` does: it
    has no meaningful distribution.

    Parameters
    ----------
    x : torch.Tensor
        Floating-point tensor with at least one dimension.
    dim : int, default -1
        The dimension to normalise over; negative counts from the end.

    Returns
    -------
    torch.Tensor
        ``x``'s shape; non-negative and summing to 1 along ``dim``.

    Raises
    ------
    ValueError
        If ``x`` is not a floating-point tensor with at least one dimension, or
        ``dim`` is out of range or empty.

    Examples
    --------
    >>> softmax(torch.tensor([0.0, 0.0, 1000.0]))
    tensor([0., 0., 1.])
    """
    dim = _check_x_dim(x, dim)
    e = (x - _stable_shift(x, dim)).exp()
    return e / e.sum(dim, keepdim=True)


def softmax_backward(
    grad_out: torch.Tensor, x: torch.Tensor, dim: int = -1
) -> torch.Tensor:
    r"""The gradient of `softmax` with respect to ``x``.

    From the Jacobian $\partial s_i / \partial x_j = s_i (\delta_{ij} - s_j)$, with
    $s = \operatorname{softmax}(x)$ and $g$ = ``grad_out``:

    $$
    \frac{\partial L}{\partial x_j} = \sum_i g_i s_i (\delta_{ij} - s_j)
    = s_j \Big(g_j - \sum_i g_i s_i\Big).
    $$

    Parameters
    ----------
    grad_out : torch.Tensor
        $\partial L / \partial s$, ``x``'s shape.
    x : torch.Tensor
        The forward's input.
    dim : int, default -1
        The dimension to normalise over; negative counts from the end.

    Returns
    -------
    torch.Tensor
        $\partial L / \partial x$, ``x``'s shape.

    Raises
    ------
    ValueError
        If ``x`` is not a floating-point tensor with at least one dimension,
        ``dim`` is out of range or empty, or ``grad_out`` has the wrong shape or
        dtype.

    Examples
    --------
    A constant upstream gradient moves nothing: softmax ignores a shift.

    >>> softmax_backward(torch.ones(3), torch.tensor([1.0, 2.0, 3.0]))
    tensor([0., 0., 0.])
    """
    dim = _check_x_dim(x, dim)
    _check_grad_out(grad_out, x, x.shape)
    s = softmax(x, dim)
    return s * (grad_out - (grad_out * s).sum(dim, keepdim=True))


def log_softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    r"""$\log \operatorname{softmax}(x) = x - \operatorname{logsumexp}(x)$, stably.

    Computed this way it never takes the log of a tiny softmax value, so it stays
    accurate where ``softmax(x).log()`` would round to $\log 0 = -\infty$.

    Parameters
    ----------
    x : torch.Tensor
        Floating-point tensor with at least one dimension.
    dim : int, default -1
        The dimension to normalise over; negative counts from the end.

    Returns
    -------
    torch.Tensor
        ``x``'s shape.

    Raises
    ------
    ValueError
        If ``x`` is not a floating-point tensor with at least one dimension, or
        ``dim`` is out of range or empty.

    Examples
    --------
    >>> log_softmax(torch.tensor([0.0, 200.0]))
    tensor([-200.,    0.])
    """
    dim = _check_x_dim(x, dim)
    # (x - m) - log(sum(exp(x - m))) rather than x - (m + log(...)): adding m
    # back to the log first and then subtracting it from x would round twice
    # at the scale of m (about 1e-3 in float32 when m is 1e4).
    shifted = x - _stable_shift(x, dim)
    return shifted - shifted.exp().sum(dim, keepdim=True).log()


def log_softmax_backward(
    grad_out: torch.Tensor, x: torch.Tensor, dim: int = -1
) -> torch.Tensor:
    r"""The gradient of `log_softmax` with respect to ``x``.

    From the Jacobian $\partial \log s_i / \partial x_j = \delta_{ij} - s_j$:
    $\partial L / \partial x_j = g_j - s_j \sum_i g_i$.

    Parameters
    ----------
    grad_out : torch.Tensor
        $\partial L / \partial \log s$, ``x``'s shape.
    x : torch.Tensor
        The forward's input.
    dim : int, default -1
        The dimension to normalise over; negative counts from the end.

    Returns
    -------
    torch.Tensor
        $\partial L / \partial x$, ``x``'s shape.

    Raises
    ------
    ValueError
        If ``x`` is not a floating-point tensor with at least one dimension,
        ``dim`` is out of range or empty, or ``grad_out`` has the wrong shape or
        dtype.

    Examples
    --------
    >>> log_softmax_backward(torch.tensor([1.0, 0.0]), torch.zeros(2))
    tensor([ 0.5000, -0.5000])
    """
    dim = _check_x_dim(x, dim)
    _check_grad_out(grad_out, x, x.shape)
    return grad_out - softmax(x, dim) * grad_out.sum(dim, keepdim=True)
