"""Activation functions and their backwards."""

from __future__ import annotations

import torch

from backprop._checks import require_float, require_same_dtype, shape_str

__all__ = ["relu", "relu_backward"]


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
