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

from backprop._checks import normalize_dim, require_float, require_ndim, require_same_dtype, shape_str


def _check_x_dim(x: torch.Tensor, dim: int) -> int:
    """Validate ``x`` and return ``dim`` as a non-negative index."""
    require_float("x", x)
    require_ndim("x", x, min_ndim=1)
    dim = normalize_dim("x", dim, x)
    if x.shape[dim] == 0:
        raise ValueError(f"x has shape {shape_str(x)}: dimension dim={dim} is empty, nothing to normalise over")
    return dim


def _check_grad_out(grad_out: torch.Tensor, x: torch.Tensor, expected: tuple[int, ...]) -> None:
    require_float("grad_out", grad_out)
    require_same_dtype(x=x, grad_out=grad_out)
    if grad_out.shape != expected:
        raise ValueError(
            f"grad_out has shape {shape_str(grad_out)} but it must have the forward's output "
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
    """``log(sum(exp(x), dim))``, stably; ``dim`` is reduced (removed from the shape)."""
    dim = _check_x_dim(x, dim)
    m = _stable_shift(x, dim)
    return m.squeeze(dim) + (x - m).exp().sum(dim).log()


def logsumexp_backward(grad_out: torch.Tensor, x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Gradient of ``logsumexp(x, dim)``: ``grad_out.unsqueeze(dim) * softmax(x, dim)``.

    ``grad_out`` has ``x``'s shape without ``dim``; the result has ``x``'s shape.
    """
    dim = _check_x_dim(x, dim)
    _check_grad_out(grad_out, x, x.shape[:dim] + x.shape[dim + 1 :])
    return grad_out.unsqueeze(dim) * softmax(x, dim)


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``exp(x) / sum(exp(x), dim)``, stably; same shape as ``x``, sums to 1 along ``dim``.

    A row of all ``-inf`` gives ``0 / 0 = nan``, as ``torch.softmax`` does: it
    has no meaningful distribution.
    """
    dim = _check_x_dim(x, dim)
    e = (x - _stable_shift(x, dim)).exp()
    return e / e.sum(dim, keepdim=True)


def softmax_backward(grad_out: torch.Tensor, x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Gradient of ``softmax(x, dim)``: ``s * (g - sum(g * s, dim, keepdim))`` with ``s = softmax(x)``.

    From the Jacobian ``ds_i/dx_j = s_i (delta_ij - s_j)``:
    ``grad_x_j = sum_i g_i s_i (delta_ij - s_j) = s_j g_j - s_j sum_i g_i s_i``.
    ``grad_out`` and the result have ``x``'s shape.
    """
    dim = _check_x_dim(x, dim)
    _check_grad_out(grad_out, x, x.shape)
    s = softmax(x, dim)
    return s * (grad_out - (grad_out * s).sum(dim, keepdim=True))


def log_softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``x - logsumexp(x, dim)`` (broadcast back along ``dim``), stably; same shape as ``x``.

    Computed this way it never takes the log of a tiny softmax value, so it stays
    accurate where ``softmax(x).log()`` would round to ``log(0) = -inf``.
    """
    dim = _check_x_dim(x, dim)
    # (x - m) - log(sum(exp(x - m))) rather than x - (m + log(...)): adding m
    # back to the log first and then subtracting it from x would round twice
    # at the scale of m (about 1e-3 in float32 when m is 1e4).
    shifted = x - _stable_shift(x, dim)
    return shifted - shifted.exp().sum(dim, keepdim=True).log()


def log_softmax_backward(grad_out: torch.Tensor, x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Gradient of ``log_softmax(x, dim)``: ``g - softmax(x) * sum(g, dim, keepdim)``.

    From the Jacobian ``d log_softmax_i / dx_j = delta_ij - s_j``:
    ``grad_x_j = g_j - s_j sum_i g_i``. ``grad_out`` and the result have ``x``'s shape.
    """
    dim = _check_x_dim(x, dim)
    _check_grad_out(grad_out, x, x.shape)
    return grad_out - softmax(x, dim) * grad_out.sum(dim, keepdim=True)
