"""Activation functions and their backwards."""

from __future__ import annotations

import torch

from backprop._checks import require_float, require_same_dtype, shape_str


def relu(x: torch.Tensor) -> torch.Tensor:
    """``relu(x) = max(x, 0)``, elementwise."""
    require_float("x", x)
    # Not x.clamp(min=0): autograd gives clamp a gradient of 1 at exactly 0, whereas
    # `where` gives 0 there, the same convention as relu_backward and torch.relu.
    return torch.where(x > 0, x, 0.0)


def relu_backward(grad_out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Gradient of ``relu`` with respect to ``x``: ``grad_out`` where ``x > 0``, else 0.

    ``d relu(x) / dx`` is 1 for ``x > 0`` and 0 for ``x < 0``. At exactly
    ``x = 0`` relu has no derivative (a kink); we use 0 there, the same choice
    as ``torch.relu``'s autograd. Any value in [0, 1] is a valid subgradient,
    and it rarely matters, since exact zeros are rare in practice.

    Shapes: ``grad_out`` and ``x`` are the same shape, and so is the result.
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
