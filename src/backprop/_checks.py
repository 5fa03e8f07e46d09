"""Input checks shared by every layer.

Each check runs before any arithmetic and raises a ``ValueError`` that names the
argument and the shape or value at fault, so that a mistake never turns into a
silent broadcast or an error from deep inside torch.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import SupportsIndex

import torch


def shape_str(shape: Sequence[int] | torch.Tensor) -> str:
    """``(5, 4)`` for a shape or a tensor; ``()`` for a scalar."""
    if isinstance(shape, torch.Tensor):
        shape = shape.shape
    dims = tuple(int(d) for d in shape)
    return "(" + ", ".join(map(str, dims)) + ("," if len(dims) == 1 else "") + ")"


def require_tensor(name: str, value: object) -> torch.Tensor:
    """``value`` itself, once it is known to be a tensor; ``TypeError`` otherwise."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def require_float(name: str, t: object) -> torch.Tensor:
    """A floating-point tensor (float16/32/64, bfloat16)."""
    t = require_tensor(name, t)
    if not t.is_floating_point():
        raise ValueError(
            f"{name} must be a floating-point tensor, got dtype {t.dtype}; "
            f"convert it first, e.g. {name}.float()"
        )
    return t


def require_index(name: str, t: object) -> torch.Tensor:
    """An integer tensor of indices (int32 or int64)."""
    t = require_tensor(name, t)
    if t.dtype not in (torch.int64, torch.int32):
        raise ValueError(
            f"{name} must hold integer indices (int64 or int32), got dtype {t.dtype}"
        )
    return t


def require_same_dtype(**tensors: torch.Tensor | None) -> None:
    """All the given (non-None) tensors share one dtype and one device."""
    named = [(n, t) for n, t in tensors.items() if t is not None]
    if not named:
        return
    first_name, first = named[0]
    for name, t in named[1:]:
        if t.dtype != first.dtype:
            raise ValueError(
                f"{name} has dtype {t.dtype} but {first_name} has dtype {first.dtype}; "
                "they must match"
            )
        if t.device != first.device:
            raise ValueError(
                f"{name} is on {t.device} but {first_name} is on {first.device}; "
                "they must be on the same device"
            )


def require_ndim(
    name: str, t: torch.Tensor, ndim: int | None = None, *, min_ndim: int | None = None
) -> None:
    """Exactly ``ndim`` dimensions, or at least ``min_ndim``."""
    if ndim is not None and t.ndim != ndim:
        raise ValueError(
            f"{name} must have {ndim} dimension(s), got shape {shape_str(t)}"
        )
    if min_ndim is not None and t.ndim < min_ndim:
        raise ValueError(
            f"{name} must have at least {min_ndim} dimension(s), got shape "
            f"{shape_str(t)}"
        )


def require_same_shape(
    name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor
) -> None:
    """Identical shapes: no broadcasting allowed (e.g. a prediction and its target)."""
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} has shape {shape_str(a)} but {name_b} has shape {shape_str(b)}; "
            "they must be equal (no broadcasting here: it would silently pair every "
            f"{name_a} with every {name_b})"
        )


def normalize_dim(name: str, dim: int, t: torch.Tensor) -> int:
    """A dimension index for ``t`` in ``[0, t.ndim)``, negative indices allowed."""
    dim = require_int("dim", dim)
    if not -max(t.ndim, 1) <= dim < max(t.ndim, 1):
        raise ValueError(
            f"dim={dim} is out of range for {name} of shape {shape_str(t)}"
        )
    return dim % max(t.ndim, 1)


def require_same_device(**tensors: torch.Tensor | None) -> None:
    """All the given (non-None) tensors live on one device (dtypes may differ)."""
    named = [(n, t) for n, t in tensors.items() if t is not None]
    if not named:
        return
    first_name, first = named[0]
    for name, t in named[1:]:
        if t.device != first.device:
            raise ValueError(
                f"{name} is on {t.device} but {first_name} is on {first.device}; "
                "they must be on the same device"
            )


def require_shape(
    name: str, t: torch.Tensor, shape: Sequence[int], why: str = ""
) -> None:
    """Exactly ``shape``; ``why`` (e.g. "one per channel of x") ends the message."""
    if tuple(t.shape) != tuple(shape):
        reason = f" ({why})" if why else ""
        raise ValueError(
            f"{name} must have shape {shape_str(shape)}{reason}, got shape "
            f"{shape_str(t)}"
        )


def as_int(value: object) -> int | None:
    """``value`` as a Python int if it is an integer, None otherwise.

    An integer is anything ``operator.index`` accepts (an int, a ``numpy.int64``,
    a one-element integer tensor) except a bool: ``True`` would pass for 1, a
    kernel of size 1, which is a slip rather than an intent.
    """
    if isinstance(value, bool) or not isinstance(value, SupportsIndex):
        return None
    if isinstance(value, torch.Tensor) and value.dtype == torch.bool:
        return None
    try:
        return operator.index(value)
    except TypeError:  # numpy.bool_, or a tensor that is not one integer
        return None


def require_int(name: str, value: object, minimum: int | None = None) -> int:
    """``value`` as a Python int, once it is an integer (see `as_int`), at least
    ``minimum``; a ``ValueError`` naming ``name`` and the value otherwise."""
    number = as_int(value)
    if number is None or (minimum is not None and number < minimum):
        kind = {1: "a positive int", 0: "a non-negative int", None: "an int"}.get(
            minimum, f"an int of at least {minimum}"
        )
        got = f"{value!r} (a bool)" if isinstance(value, bool) else repr(value)
        raise ValueError(f"{name} must be {kind}, got {got}")
    return number


def require_int_pair(name: str, value: object, minimum: int) -> tuple[int, int]:
    """An int, or a pair of ints, as (vertical, horizontal) Python ints, each at
    least ``minimum`` (a size, stride or padding of a convolution)."""
    pair = (value, value) if as_int(value) is not None else value
    numbers = (
        [as_int(v) for v in pair]
        if isinstance(pair, tuple | list) and len(pair) == 2
        else [None]
    )
    if None in numbers:
        got = f"{value!r} (a bool)" if isinstance(value, bool) else repr(value)
        raise ValueError(f"{name} must be an int or a pair of ints, got {got}")
    first, second = numbers
    assert first is not None and second is not None
    if min(first, second) < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}")
    return first, second


def require_positive_int(name: str, value: object) -> int:
    """A positive integer as a Python int (numpy's integers too; not a bool)."""
    return require_int(name, value, minimum=1)


# The gradient of a tensor lives in a `.g` attribute (fast.ai's convention), which
# torch.Tensor does not declare; the modules read and write it through these two
# functions only, so the type checker is told about it once.
def grad_of(t: torch.Tensor) -> torch.Tensor:
    """``t.g``, the gradient a later layer stored on the output ``t``.

    Raises
    ------
    RuntimeError
        If ``t`` has no ``.g``: the backward pass has not reached it.
    """
    g: torch.Tensor | None = getattr(t, "g", None)
    if g is None:
        raise RuntimeError(
            f"the output (shape {shape_str(t)}) has no gradient .g: set out.g, the "
            "gradient of the loss with respect to it, before backward() (the next "
            "layer's backward() or the loss's sets it)"
        )
    return g


def set_grad(t: torch.Tensor, g: torch.Tensor | None) -> None:
    """Store ``g`` as ``t.g`` (None clears it)."""
    t.g = g  # type: ignore[attr-defined]
