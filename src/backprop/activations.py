"""Activation functions and their backwards."""

from __future__ import annotations

import math

import torch

from backprop._checks import require_float, require_same_dtype, shape_str

__all__ = ["gelu", "gelu_backward", "relu", "relu_backward"]


def relu(x: torch.Tensor) -> torch.Tensor:
    r"""The rectified linear unit, $\max(x, 0)$, elementwise.

    Parameters
    ----------
    x : torch.Tensor
        Floating-point tensor of any shape.

    Returns
    -------
    torch.Tensor
        ``x`` where it is positive, else 0; the shape of ``x``.

    Raises
    ------
    ValueError
        If ``x`` is not floating-point.

    Examples
    --------
    >>> relu(torch.tensor([-1.0, 0.0, 2.0]))
    tensor([0., 0., 2.])
    """
    require_float("x", x)
    # Not x.clamp(min=0): autograd gives clamp a gradient of 1 at exactly 0, whereas
    # `where` gives 0 there, the same convention as relu_backward and torch.relu.
    return torch.where(x > 0, x, 0.0)


def relu_backward(grad_out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    r"""The gradient of `relu`: ``grad_out`` where $x > 0$, else 0.

    $\partial \operatorname{relu}(x) / \partial x$ is 1 for $x > 0$ and 0 for
    $x < 0$. At exactly $x = 0$ relu has no derivative (a kink); we use 0 there,
    the same choice as ``torch.relu``'s autograd. Any value in $[0, 1]$ is a valid
    subgradient, and it rarely matters, since exact zeros are rare in practice.

    Parameters
    ----------
    grad_out : torch.Tensor
        $\partial L / \partial \operatorname{relu}(x)$, the shape of ``x``.
    x : torch.Tensor
        The forward's input.

    Returns
    -------
    torch.Tensor
        $\partial L / \partial x$, the shape of ``x``.

    Raises
    ------
    ValueError
        If the shapes differ, or a tensor is not floating-point, or the dtypes differ.

    Examples
    --------
    >>> relu_backward(torch.ones(3), torch.tensor([-1.0, 0.0, 2.0]))
    tensor([0., 0., 1.])
    """
    require_float("grad_out", grad_out)
    require_float("x", x)
    require_same_dtype(grad_out=grad_out, x=x)
    if grad_out.shape != x.shape:
        raise ValueError(
            f"grad_out has shape {shape_str(grad_out)} but x has shape {shape_str(x)}; "
            "relu is elementwise, so its output, and the gradient of it, has x's shape"
        )
    return torch.where(x > 0, grad_out, 0.0)


_GELU_KINDS = ("tanh", "none")
_TANH_C = math.sqrt(2 / math.pi)  # the tanh approximation's constant
_TANH_A = 0.044715


def _check_approximate(approximate: str) -> None:
    if approximate not in _GELU_KINDS:
        raise ValueError(
            f"approximate must be 'tanh' or 'none' (torch.nn.GELU's values), "
            f"got {approximate!r}"
        )


def gelu(x: torch.Tensor, approximate: str = "tanh") -> torch.Tensor:
    r"""The Gaussian error linear unit, $x \, \Phi(x)$, elementwise.

    $\Phi$ is the standard normal distribution function. ``approximate="none"``
    computes it exactly, $\Phi(x) = \tfrac12 (1 + \operatorname{erf}(x / \sqrt2))$;
    ``approximate="tanh"`` (GPT-2's choice) uses

    $$\operatorname{gelu}(x) \approx \tfrac12 x \left(1 + \tanh u\right), \qquad
    u = \sqrt{2/\pi} \, (x + 0.044715 \, x^3).$$

    Equal to ``torch.nn.GELU(approximate=...)`` with the same argument.

    Parameters
    ----------
    x : torch.Tensor
        Floating-point tensor of any shape.
    approximate : {"tanh", "none"}, default "tanh"
        The tanh approximation, or the exact erf form.

    Returns
    -------
    torch.Tensor
        The shape of ``x``.

    Raises
    ------
    ValueError
        If ``x`` is not floating-point or ``approximate`` is neither value.

    Examples
    --------
    >>> gelu(torch.tensor([-3.0, 0.0, 3.0]), approximate="none")
    tensor([-0.0040,  0.0000,  2.9960])
    """
    require_float("x", x)
    _check_approximate(approximate)
    # Out of place, so that autograd can differentiate it as the reference.
    return 0.5 * x * (1 + _gelu_inner(x, approximate))


def _gelu_inner(x: torch.Tensor, approximate: str) -> torch.Tensor:
    """The s of gelu(x) = x (1 + s) / 2: erf(x / sqrt 2), or tanh u for the tanh form.

    What a GELU that keeps its intermediates saves for `gelu_backward` (``inner=``).
    """
    if approximate == "none":
        return torch.erf(x / math.sqrt(2))
    return torch.tanh(_TANH_C * (x + _TANH_A * x**3))


def gelu_backward(
    grad_out: torch.Tensor,
    x: torch.Tensor,
    approximate: str = "tanh",
    *,
    inner: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""The gradient of `gelu`: ``grad_out`` times its local derivative.

    By the product rule, $\frac{d}{dx} x \Phi(x) = \Phi(x) + x \, \varphi(x)$, with
    $\varphi(x) = e^{-x^2/2} / \sqrt{2\pi}$ the normal density (the exact form).
    For the tanh form, with $t = \tanh u$ and $\tanh' = 1 - \tanh^2$,

    $$\frac{d}{dx} \operatorname{gelu}(x) = \tfrac12 (1 + t)
    + \tfrac12 x \, (1 - t^2) \sqrt{2/\pi} \, (1 + 3 \cdot 0.044715 \, x^2).$$

    Parameters
    ----------
    grad_out : torch.Tensor
        $\partial L / \partial \operatorname{gelu}(x)$, the shape of ``x``.
    x : torch.Tensor
        The forward's input.
    approximate : {"tanh", "none"}, default "tanh"
        As in the forward.
    inner : torch.Tensor or None, default None
        What the forward computed inside the GELU, when it was kept:
        $\tanh u$ for the tanh form, $\operatorname{erf}(x / \sqrt2)$ for the
        exact one (``gelu(x) = x (1 + inner) / 2``). None computes it again from
        ``x``; either way the result is the same.

    Returns
    -------
    torch.Tensor
        $\partial L / \partial x$, the shape of ``x``.

    Raises
    ------
    ValueError
        If the shapes or dtypes differ, a tensor is not floating-point, or
        ``approximate`` is neither value, or ``inner`` does not have ``x``'s shape.

    Examples
    --------
    >>> gelu_backward(torch.ones(1), torch.zeros(1))  # slope 1/2 at 0
    tensor([0.5000])
    """
    require_float("grad_out", grad_out)
    require_float("x", x)
    require_same_dtype(grad_out=grad_out, x=x)
    _check_approximate(approximate)
    if grad_out.shape != x.shape:
        raise ValueError(
            f"grad_out has shape {shape_str(grad_out)} but x has shape {shape_str(x)}; "
            "gelu is elementwise, so its output, and the gradient of it, has x's shape"
        )
    if inner is not None and inner.shape != x.shape:
        raise ValueError(
            f"inner has shape {shape_str(inner)} but x has shape {shape_str(x)}; "
            "it is what the forward computed for each entry of x"
        )
    if approximate == "none":
        erf = torch.erf(x / math.sqrt(2)) if inner is None else inner
        cdf = 0.5 * (1 + erf)
        density = torch.exp(-0.5 * x**2) / math.sqrt(2 * math.pi)
        return grad_out * (cdf + x * density)
    # The same formula, arranged so that each line is one pass over the tensor
    # (the backward runs on the largest activations of a transformer).
    x_squared = x * x
    t = (
        torch.tanh(x * (_TANH_C + _TANH_C * _TANH_A * x_squared))
        if inner is None
        else inner
    )
    du_dx = x_squared.mul_(3 * _TANH_C * _TANH_A).add_(_TANH_C)  # reuses x_squared
    slope = (1 - t * t).mul_(du_dx).mul_(x).add_(t).add_(1).mul_(0.5)
    return slope.mul_(grad_out)
