"""Broadcasting, and its backward: ``unbroadcast``.

Broadcasting lines two shapes up on the right and stretches every dimension of
size 1 (or missing, on the left) to match the other shape::

    (3, 1)  with  (4,)   ->  (3, 4)
    (2, 3, 4) with (3, 1) -> (2, 3, 4)

In the forward pass a small tensor is *copied* along the stretched dimensions,
so each of its elements is used many times. In the backward pass the
gradients of all those copies add up (the multivariable chain rule sums over
every path from an input to the loss). So the backward of broadcasting is a
sum over the dimensions broadcasting added or stretched: that is ``unbroadcast``.

The classic case is a bias: ``x @ w + b`` with ``x @ w`` of shape ``(n, n_out)``
and ``b`` of shape ``(n_out,)`` uses ``b`` once per row, so
``grad_b = grad_out.sum(0) = unbroadcast(grad_out, b.shape)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from backprop._checks import as_int, require_float, shape_str

__all__ = ["broadcast_shape", "unbroadcast"]


def _as_shape(name: str, shape: Sequence[int] | torch.Size) -> tuple[int, ...]:
    """A shape as a tuple of non-negative ints (a tuple, list or ``torch.Size``)."""
    if isinstance(shape, torch.Tensor) or not isinstance(shape, Sequence):
        raise ValueError(
            f"{name} must be a shape (a tuple of ints or a torch.Size), "
            f"got {type(shape).__name__}"
        )
    dims = tuple(shape)
    # numpy's integers are ints, bools are not; each becomes a Python int.
    sizes = tuple(n for n in map(as_int, dims) if n is not None and n >= 0)
    if len(sizes) != len(dims):
        raise ValueError(f"{name} must hold non-negative ints, got {dims!r}")
    return sizes


def broadcast_shape(
    a: Sequence[int] | torch.Size, b: Sequence[int] | torch.Size
) -> tuple[int, ...]:
    """The shape that ``a`` and ``b`` broadcast to, like ``torch.broadcast_shapes``.

    Line the shapes up on the right; missing leading dimensions count as 1.
    Each pair of sizes must be equal, or one of them 1 (the result takes the
    other).

    Parameters
    ----------
    a, b : sequence of int or torch.Size
        The two shapes.

    Returns
    -------
    tuple of int
        The broadcast shape.

    Raises
    ------
    ValueError
        Naming both shapes, if they do not broadcast.

    Examples
    --------
    >>> broadcast_shape((3, 1), (4,))
    (3, 4)
    >>> broadcast_shape((2, 3, 4), (3, 1))
    (2, 3, 4)
    """
    a, b = _as_shape("a", a), _as_shape("b", b)
    ndim = max(len(a), len(b))
    padded_a = (1,) * (ndim - len(a)) + a
    padded_b = (1,) * (ndim - len(b)) + b
    result = []
    for size_a, size_b in zip(padded_a, padded_b, strict=True):
        if size_a != size_b and size_a != 1 and size_b != 1:
            raise ValueError(
                f"shapes {shape_str(a)} and {shape_str(b)} do not broadcast: "
                f"sizes {size_a} and {size_b} differ and neither is 1"
            )
        result.append(size_b if size_a == 1 else size_a)
    return tuple(result)


def unbroadcast(grad: torch.Tensor, shape: Sequence[int] | torch.Size) -> torch.Tensor:
    r"""The backward of broadcasting: sum ``grad`` back down to ``shape``.

    If ``small`` of shape ``shape`` was broadcast to ``full = grad.shape`` in the
    forward pass, each element of ``small`` was used once per copy, so its
    gradient is the sum over the copies:
    ``grad_small = unbroadcast(grad_full, small.shape)``.

    - dimensions broadcasting *added* on the left are summed away;
    - dimensions that are 1 in ``shape`` but larger in ``grad`` were *stretched*,
      so they are summed with ``keepdim=True`` (they stay, as size 1).

    For a bias $b$ added to every row of an $(n, m)$ output,
    $\partial L / \partial b_j = \sum_i G_{ij}$.

    Parameters
    ----------
    grad : torch.Tensor
        The gradient of the broadcast (full-size) tensor.
    shape : sequence of int or torch.Size
        The shape before broadcasting; it must broadcast to ``grad.shape``.

    Returns
    -------
    torch.Tensor
        The gradient of the small tensor, exactly ``shape``. When nothing needs
        summing it is ``grad`` itself (no copy).

    Raises
    ------
    ValueError
        Naming both shapes, if ``shape`` does not broadcast to ``grad.shape``.

    Examples
    --------
    >>> unbroadcast(torch.ones(2, 3, 4), (3, 1))
    tensor([[8.],
            [8.],
            [8.]])
    """
    grad = require_float("grad", grad)
    shape = _as_shape("shape", shape)
    full = tuple(grad.shape)
    # "shape broadcasts to full": no more dimensions, and each right-aligned
    # size is either equal to full's or 1.
    aligned = full[len(full) - len(shape) :] if len(shape) <= len(full) else None
    if aligned is None or any(
        s != f and s != 1 for s, f in zip(shape, aligned, strict=True)
    ):
        raise ValueError(
            f"shape {shape_str(shape)} does not broadcast to grad's shape "
            f"{shape_str(full)}, "
            "so grad cannot be its gradient"
        )

    added = len(full) - len(shape)
    if added > 0:
        # Careful: sum(dim=()) would sum over everything, hence the guard.
        grad = grad.sum(dim=tuple(range(added)))
    stretched = tuple(
        i
        for i, (s, f) in enumerate(zip(shape, aligned, strict=True))
        if s == 1 and f != 1
    )
    if stretched:
        grad = grad.sum(dim=stretched, keepdim=True)
    return grad
