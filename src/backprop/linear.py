"""The linear layer ``x @ w + b`` and its backward.

Shapes: ``x`` is ``(..., n_in)`` (any number of leading batch dimensions,
including none), ``w`` is ``(n_in, n_out)``, ``b`` is ``(n_out,)`` or None, and
the output is ``(..., n_out)``.

Backward, for ``out = x @ w + b`` and an upstream gradient ``g = dL/d out``:

```
grad_x = g @ w^T                                         (..., n_in)
grad_w = sum over batch of x^T @ g                       (n_in, n_out)
grad_b = sum over batch of g = unbroadcast(g, b.shape)   (n_out,)
```

``grad_w`` sums over every leading dimension because the same ``w`` is used
for every row of ``x``; flattening the leading dimensions into one turns that
sum into a single matrix product. ``b`` was broadcast over the batch in the
forward pass, so its backward is the sum that undoes the broadcast.
"""

from __future__ import annotations

import math

import torch

from backprop._checks import require_float, require_ndim, require_same_dtype, shape_str
from backprop.broadcasting import unbroadcast

__all__ = ["lin", "lin_backward"]


def _check_lin_inputs(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> None:
    require_float("x", x)
    require_float("w", w)
    if b is not None:
        require_float("b", b)
    require_same_dtype(x=x, w=w, b=b)
    require_ndim("w", w, 2)
    require_ndim("x", x, min_ndim=1)
    n_in, n_out = w.shape
    if x.shape[-1] != n_in:
        raise ValueError(
            f"x has {x.shape[-1]} features (shape {shape_str(x)}) but w has {n_in} "
            "rows "
            f"(shape {shape_str(w)}); x's last dimension must equal w's first"
        )
    if b is not None and b.shape != (n_out,):
        raise ValueError(
            f"b has shape {shape_str(b)} but w has shape {shape_str(w)}, "
            f"so b must have shape ({n_out},): one bias per output"
        )


def lin(
    x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None
) -> torch.Tensor:
    r"""The linear layer, $y = x W + b$.

    Parameters
    ----------
    x : torch.Tensor
        Inputs, shape ``(..., n_in)``: any number of leading batch dimensions,
        including none.
    w : torch.Tensor
        Weights, shape ``(n_in, n_out)``.
    b : torch.Tensor or None
        Bias, shape ``(n_out,)``, broadcast over every leading dimension; None for
        no bias.

    Returns
    -------
    torch.Tensor
        ``x @ w + b``, shape ``(..., n_out)``.

    Raises
    ------
    ValueError
        If ``x``'s last dimension is not ``w``'s first, ``b`` is not ``(n_out,)``,
        or the tensors are not floating-point tensors of one dtype.

    Examples
    --------
    >>> x, w, b = torch.ones(4, 3), torch.ones(3, 2), torch.zeros(2)
    >>> lin(x, w, b).shape
    torch.Size([4, 2])
    """
    _check_lin_inputs(x, w, b)
    out = x @ w
    if b is not None:
        out = out + b  # b broadcasts over every leading dimension
    return out


def lin_backward(
    grad_out: torch.Tensor,
    x: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor | None = None,
    *,
    need_grad_x: bool = True,
) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
    r"""The gradients of `lin` with respect to ``x``, ``w`` and ``b``.

    With $G = \partial L / \partial y$ and the batch dimensions flattened into
    rows:

    $$
    \frac{\partial L}{\partial x} = G W^\top, \qquad
    \frac{\partial L}{\partial W} = x^\top G, \qquad
    \frac{\partial L}{\partial b} = \sum_{\text{rows}} G .
    $$

    ``w`` is used by every row, so its gradient sums over the rows (the matrix
    product does that); ``b`` was broadcast over them, so its gradient is the
    sum that undoes the broadcast (`unbroadcast`).

    Parameters
    ----------
    grad_out : torch.Tensor
        $\partial L / \partial y$, the output's shape ``(..., n_out)``.
    x, w, b : torch.Tensor
        The forward's inputs (``b`` may be None).
    need_grad_x : bool, default True
        False when ``x`` is data (a first layer's images): ``grad_x`` is then None
        and its matrix product is skipped, as autograd skips it for a tensor that
        does not require a gradient.

    Returns
    -------
    grad_x : torch.Tensor or None
        Shape ``(..., n_in)``; None when ``need_grad_x`` is False.
    grad_w : torch.Tensor
        Shape ``(n_in, n_out)``.
    grad_b : torch.Tensor or None
        Shape ``(n_out,)``; None when ``b`` is None.

    Raises
    ------
    ValueError
        If ``grad_out`` does not have the output's shape, or the inputs are invalid
        for `lin`.

    Examples
    --------
    >>> x, w, b = torch.ones(4, 3), torch.ones(3, 2), torch.zeros(2)
    >>> grad_x, grad_w, grad_b = lin_backward(torch.ones(4, 2), x, w, b)
    >>> grad_x.shape, grad_w.shape, grad_b
    (torch.Size([4, 3]), torch.Size([3, 2]), tensor([4., 4.]))
    """
    _check_lin_inputs(x, w, b)
    require_float("grad_out", grad_out)
    require_same_dtype(x=x, grad_out=grad_out)
    n_in, n_out = w.shape
    expected = (*x.shape[:-1], n_out)
    if grad_out.shape != expected:
        raise ValueError(
            f"grad_out has shape {shape_str(grad_out)} but lin(x, w) with x of shape "
            f"{shape_str(x)} and w of shape {shape_str(w)} has shape "
            f"{shape_str(expected)}"
        )

    grad_x = grad_out @ w.T if need_grad_x else None
    # Flatten the leading dimensions into one batch dimension of `rows` rows;
    # then x^T @ grad_out sums the per-row outer products in one go.
    rows = math.prod(x.shape[:-1])
    grad_w = x.reshape(rows, n_in).T @ grad_out.reshape(rows, n_out)
    grad_b = None if b is None else unbroadcast(grad_out, b.shape)
    return grad_x, grad_w, grad_b
