"""Batch normalisation and layer normalisation, forward and fused backward.

Both normalise ``x`` with a mean and a (biased) variance taken over some axes, then
scale and shift it:

    mu    = mean(x)                       over the normalised axes
    var   = mean((x - mu)^2)              biased: divide by m, the number of values
    sigma = sqrt(var + eps)
    x_hat = (x - mu) / sigma
    y     = gamma * x_hat + beta

Batch norm averages over the batch (one mu, sigma per channel); layer norm averages
over the features of each example (one mu, sigma per example).

The backward. With ``grad_x_hat = dL/dx_hat`` (= grad_out * gamma) and means taken
over the same m values the forward averaged,

    dL/dx = (1 / sigma) * (grad_x_hat - mean(grad_x_hat)
                           - x_hat * mean(grad_x_hat * x_hat))

Why three terms: ``x`` reaches ``x_hat`` directly (grad_x_hat / sigma), through
``mu`` (every value shifts the mean: -mean(grad_x_hat) / sigma) and through ``var``
(every value moves sigma: -x_hat * mean(grad_x_hat * x_hat) / sigma). The formula
holds exactly with eps > 0. Two consequences the tests check: dL/dx sums to zero
over the normalised axes (shifting all of them by the same amount changes
nothing), and, for eps = 0, it is orthogonal to x_hat (scaling them changes
nothing).

Following the functional convention, a backward receives only the forward's
inputs, so it recomputes mu, sigma and x_hat (``_normalize``) rather than caching.
``layernorm_backward`` also accepts the statistics the forward computed
(``stats=(mu, 1 / sigma)``, as `backprop.modules.LayerNorm` keeps them with
``intermediates="keep"``): then only x_hat, an elementwise step, is computed again.
"""

from __future__ import annotations

import torch
from torch import Tensor

from backprop._checks import (
    require_float,
    require_ndim,
    require_same_dtype,
    require_shape,
    shape_str,
)

__all__ = ["batchnorm", "batchnorm_backward", "layernorm", "layernorm_backward"]


def _normalize(x: Tensor, dims: tuple[int, ...], eps: float) -> tuple[Tensor, Tensor]:
    """(x_hat, 1/sigma) with statistics over ``dims``, kept as size 1 in 1/sigma."""
    x_hat, _, inv_sigma = _normalize_with_mean(x, dims, eps)
    return x_hat, inv_sigma


def _normalize_with_mean(
    x: Tensor, dims: tuple[int, ...], eps: float
) -> tuple[Tensor, Tensor, Tensor]:
    """(x_hat, mu, 1/sigma): `_normalize`, and the mean it subtracted."""
    mean = x.mean(dim=dims, keepdim=True)
    centered = x - mean
    var = (centered * centered).mean(
        dim=dims, keepdim=True
    )  # biased, as in training mode
    inv_sigma = torch.rsqrt(var + eps)
    return centered * inv_sigma, mean, inv_sigma


def _check_eps(eps: float) -> None:
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps}")


def _check_grad_out(grad_out: Tensor, x: Tensor) -> None:
    """A normalisation's output has x's shape, so its upstream gradient must too."""
    require_float("grad_out", grad_out)
    require_same_dtype(x=x, grad_out=grad_out)
    require_shape(
        "grad_out", grad_out, x.shape, "the output's shape, which is x's shape"
    )


# ----------------------------------------------------------------------------------
# Batch normalisation (training mode: statistics of the current batch)
# ----------------------------------------------------------------------------------


def _batchnorm_axes(x: Tensor) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The axes averaged over (all but the channel axis 1), and gamma's broadcast shape.

    (n, c) -> axes (0,), gamma viewed as (1, c);
    (n, c, h, w) -> axes (0, 2, 3), gamma viewed as (1, c, 1, 1).
    """
    axes = (0, *range(2, x.ndim))
    param_shape = (1, x.shape[1], *([1] * (x.ndim - 2)))
    return axes, param_shape


def _check_batchnorm_inputs(x: Tensor, gamma: Tensor, beta: Tensor, eps: float) -> None:
    require_float("x", x)
    require_float("gamma", gamma)
    require_float("beta", beta)
    require_ndim("x", x, min_ndim=2)
    require_same_dtype(x=x, gamma=gamma, beta=beta)
    channels = x.shape[1]
    why = f"one per channel of x, whose shape is {shape_str(x)}"
    require_shape("gamma", gamma, (channels,), why)
    require_shape("beta", beta, (channels,), why)
    _check_eps(eps)
    values_per_channel = x.numel() // max(channels, 1)
    if values_per_channel < 2:
        # One value per channel: x_hat is always 0 and the output is beta, whatever x
        # is.
        raise ValueError(
            "batchnorm needs more than one value per channel to compute batch "
            "statistics, "
            f"got x of shape {shape_str(x)}"
        )


def batchnorm(x: Tensor, gamma: Tensor, beta: Tensor, eps: float = 1e-5) -> Tensor:
    r"""Batch normalisation in training mode (this batch's statistics, no running ones).

    Per channel, the mean $\mu$ and the biased variance $\sigma^2$ are taken over
    every axis but the channel axis (``n``, or ``n, h, w``):

    $$
    y = \gamma \, \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta .
    $$

    Matches ``torch.nn.functional.batch_norm(x, None, None, gamma, beta,
    training=True)``.

    Parameters
    ----------
    x : torch.Tensor
        Shape ``(n, c)`` or ``(n, c, *spatial)``, e.g. ``(n, c, h, w)``; more than
        one value per channel.
    gamma, beta : torch.Tensor
        Scale and shift, shape ``(c,)``.
    eps : float, default 1e-5
        Added to the variance, $\epsilon \ge 0$.

    Returns
    -------
    torch.Tensor
        ``x``'s shape.

    Raises
    ------
    ValueError
        If ``gamma`` or ``beta`` is not ``(c,)``, a channel has a single value,
        ``eps`` is negative, or the tensors are not floating-point of one dtype.

    Examples
    --------
    >>> x = torch.tensor([[1.0], [3.0]])
    >>> batchnorm(x, torch.ones(1), torch.zeros(1), eps=0.0)
    tensor([[-1.],
            [ 1.]])
    """
    _check_batchnorm_inputs(x, gamma, beta, eps)
    axes, param_shape = _batchnorm_axes(x)
    x_hat, _ = _normalize(x, axes, eps)
    return gamma.reshape(param_shape) * x_hat + beta.reshape(param_shape)


def batchnorm_backward(
    grad_out: Tensor, x: Tensor, gamma: Tensor, beta: Tensor, eps: float = 1e-5
) -> tuple[Tensor, Tensor, Tensor]:
    r"""The gradients of `batchnorm` with respect to ``x``, ``gamma`` and ``beta``.

    With $g$ = ``grad_out``, $\hat x = (x - \mu) / \sigma$ and every sum and mean
    over the axes the forward averaged ($m$ values per channel):

    $$
    \frac{\partial L}{\partial \beta} = \sum g, \qquad
    \frac{\partial L}{\partial \gamma} = \sum g \hat x, \qquad
    \frac{\partial L}{\partial x} = \frac{\gamma}{\sigma}
      \Big(g - \overline{g} - \hat x \, \overline{g \hat x}\Big).
    $$

    Parameters
    ----------
    grad_out : torch.Tensor
        $\partial L / \partial y$, ``x``'s shape.
    x, gamma, beta : torch.Tensor
        The forward's inputs.
    eps : float, default 1e-5
        The forward's $\epsilon$.

    Returns
    -------
    grad_x : torch.Tensor
        ``x``'s shape.
    grad_gamma, grad_beta : torch.Tensor
        Shape ``(c,)``.

    Raises
    ------
    ValueError
        If ``grad_out`` does not have ``x``'s shape and dtype, or the inputs are
        invalid for `batchnorm`.

    Examples
    --------
    >>> x = torch.tensor([[1.0], [3.0]])
    >>> grads = batchnorm_backward(torch.ones(2, 1), x, torch.ones(1), torch.zeros(1))
    >>> [g.tolist() for g in grads]
    [[[0.0], [0.0]], [0.0], [2.0]]
    """
    _check_batchnorm_inputs(x, gamma, beta, eps)
    _check_grad_out(grad_out, x)
    axes, param_shape = _batchnorm_axes(x)
    x_hat, inv_sigma = _normalize(x, axes, eps)

    # gamma and beta were broadcast over n (and h, w): their gradients sum over those
    # axes.
    g_xhat = grad_out * x_hat
    grad_beta = grad_out.sum(dim=axes)
    grad_gamma = g_xhat.sum(dim=axes)
    mean_g = grad_out.mean(dim=axes, keepdim=True)
    mean_g_xhat = g_xhat.mean(dim=axes, keepdim=True)
    grad_x = (
        gamma.reshape(param_shape)
        * inv_sigma
        * (grad_out - mean_g - x_hat * mean_g_xhat)
    )
    return grad_x, grad_gamma, grad_beta


# ----------------------------------------------------------------------------------
# Layer normalisation (statistics over the last dimension of each example)
# ----------------------------------------------------------------------------------


def _check_layernorm_inputs(x: Tensor, gamma: Tensor, beta: Tensor, eps: float) -> None:
    require_float("x", x)
    require_float("gamma", gamma)
    require_float("beta", beta)
    require_ndim("x", x, min_ndim=1)
    require_same_dtype(x=x, gamma=gamma, beta=beta)
    why = f"one per feature in the last dimension of x, whose shape is {shape_str(x)}"
    require_shape("gamma", gamma, (x.shape[-1],), why)
    require_shape("beta", beta, (x.shape[-1],), why)
    _check_eps(eps)


def layernorm(x: Tensor, gamma: Tensor, beta: Tensor, eps: float = 1e-5) -> Tensor:
    r"""Layer normalisation over the last dimension.

    Each vector ``x[..., :]`` is normalised with its own mean $\mu$ and biased
    variance $\sigma^2$ over its ``d`` features:
    $y = \gamma \, (x - \mu) / \sqrt{\sigma^2 + \epsilon} + \beta$.
    Matches ``torch.nn.functional.layer_norm(x, (d,), gamma, beta, eps)``.

    Parameters
    ----------
    x : torch.Tensor
        Shape ``(..., d)``, any number of leading dimensions.
    gamma, beta : torch.Tensor
        Scale and shift, shape ``(d,)``.
    eps : float, default 1e-5
        Added to the variance, $\epsilon \ge 0$.

    Returns
    -------
    torch.Tensor
        ``x``'s shape.

    Raises
    ------
    ValueError
        If ``gamma`` or ``beta`` is not ``(d,)``, ``eps`` is negative, or the
        tensors are not floating-point of one dtype.

    Examples
    --------
    >>> layernorm(torch.tensor([[1.0, 3.0]]), torch.ones(2), torch.zeros(2), eps=0.0)
    tensor([[-1.,  1.]])
    """
    _check_layernorm_inputs(x, gamma, beta, eps)
    x_hat, _ = _normalize(x, (-1,), eps)
    return gamma * x_hat + beta


def _layernorm_keeping_stats(
    x: Tensor, gamma: Tensor, beta: Tensor, eps: float
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """`layernorm`, and the statistics ``(mu, 1/sigma)`` for ``stats=``."""
    _check_layernorm_inputs(x, gamma, beta, eps)
    x_hat, mean, inv_sigma = _normalize_with_mean(x, (-1,), eps)
    return gamma * x_hat + beta, (mean, inv_sigma)


def layernorm_backward(
    grad_out: Tensor,
    x: Tensor,
    gamma: Tensor,
    beta: Tensor,
    eps: float = 1e-5,
    *,
    stats: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""The gradients of `layernorm` with respect to ``x``, ``gamma`` and ``beta``.

    With $g$ = ``grad_out``, $\hat g = g \gamma$ (that is,
    $\partial L / \partial \hat x$, ``grad_x_hat``) and means over the last dimension:

    $$
    \frac{\partial L}{\partial x} = \frac{1}{\sigma}
      \Big(\hat g - \overline{\hat g} - \hat x \, \overline{\hat g \hat x}\Big);
    $$

    $\partial L / \partial \beta$ and $\partial L / \partial \gamma$ sum $g$ and
    $g \hat x$ over every leading dimension. Unlike batch norm, $\gamma$ varies
    along the averaged axis, so it stays inside the means (as $\hat g$).

    Parameters
    ----------
    grad_out : torch.Tensor
        $\partial L / \partial y$, ``x``'s shape.
    x, gamma, beta : torch.Tensor
        The forward's inputs.
    eps : float, default 1e-5
        The forward's $\epsilon$.
    stats : (Tensor, Tensor) or None, default None
        The forward's statistics, when they were kept: the mean $\mu$ and
        $1 / \sqrt{\sigma^2 + \epsilon}$ of each vector, shape ``(..., 1)``.
        None computes them again from ``x``; either way the result is the same.

    Returns
    -------
    grad_x : torch.Tensor
        ``x``'s shape.
    grad_gamma, grad_beta : torch.Tensor
        Shape ``(d,)``.

    Raises
    ------
    ValueError
        If ``grad_out`` does not have ``x``'s shape and dtype, the inputs are
        invalid for `layernorm`, or ``stats`` are not two tensors of shape
        ``(..., 1)``.

    Examples
    --------
    >>> x = torch.tensor([[1.0, 3.0]])
    >>> gamma, beta = torch.ones(2), torch.zeros(2)
    >>> grads = layernorm_backward(torch.ones(1, 2), x, gamma, beta, eps=0.0)
    >>> [g.tolist() for g in grads]
    [[[0.0, 0.0]], [-1.0, 1.0], [1.0, 1.0]]
    """
    _check_layernorm_inputs(x, gamma, beta, eps)
    _check_grad_out(grad_out, x)
    if stats is None:
        x_hat, inv_sigma = _normalize(x, (-1,), eps)
    else:
        per_vector = (*x.shape[:-1], 1)
        for name, t in zip(("the mean", "1 / sigma"), stats, strict=True):
            require_shape(f"stats' {name}", t, per_vector, "one per vector of x")
        mean, inv_sigma = stats
        x_hat = (x - mean) * inv_sigma

    # gamma and beta were broadcast over every leading dimension: their gradients sum
    # over them.
    features = x.shape[-1]
    grad_beta = grad_out.reshape(-1, features).sum(dim=0)
    grad_gamma = (grad_out * x_hat).reshape(-1, features).sum(dim=0)
    grad_x_hat = grad_out * gamma
    through_mean = grad_x_hat.mean(dim=-1, keepdim=True)
    through_variance = x_hat * (grad_x_hat * x_hat).mean(dim=-1, keepdim=True)
    grad_x = inv_sigma * (grad_x_hat - through_mean - through_variance)
    return grad_x, grad_gamma, grad_beta
