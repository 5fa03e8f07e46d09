"""A catalogue's parts: a typical mistake, the post's exercise it belongs to, and
the catalogue that holds them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

__all__ = ["Catalogue", "Example", "Mistake"]


@dataclass(frozen=True)
class Mistake:
    """A typical wrong answer to one exercise.

    ``answer`` takes what the reader's function takes and returns what it
    returns, with the mistake made. ``matches(got, *args)``, for a mistake whose
    answer is not unique (which write wins at a repeated index), says whether the
    first gradient ``got`` is this mistake. With ``needs_right``, ``answer`` gets
    the right answer (as the candidate returns it) before the arguments: for a
    forward that holds constants the catalogue cannot see, such as a post's target.
    """

    name: str
    hint: str
    answer: Callable[..., object]
    matches: Callable[..., bool] | None = None
    needs_right: bool = False


@dataclass(frozen=True)
class Example:
    """A post's exercise as the post sets it: the forward, the inputs, their names."""

    forward: Callable[..., Tensor]
    inputs: list[Tensor]
    names: list[str]
    along: Tensor | None = None


@dataclass(frozen=True)
class Catalogue:
    """The typical mistakes of one exercise, and where the exercise is."""

    post: str
    mistakes: tuple[Mistake, ...]
    example: Callable[[], Example] | None = None  # post exercises only
