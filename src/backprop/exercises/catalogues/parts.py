"""A catalogue's parts: a typical mistake, the post's exercise it belongs to, and
the catalogue that holds them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = ["Catalogue", "Example", "Mistake", "Point"]


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
class Point:
    """Where a post's exercise is checked: its inputs (and direction, for a JVP),
    and what sets them apart from the post's own, for the report."""

    inputs: list[Tensor]
    along: Tensor | None = None
    label: str = ""  # e.g. "logits hundreds apart"
    note: str = ""  # said when the answer is nan or inf there
    traits: frozenset[str] = field(default_factory=frozenset)


Sizes = dict[str, tuple[float, str]]


@dataclass(frozen=True)
class Catalogue:
    """The typical mistakes of one exercise, and where the exercise is.

    A post's exercise is checked at the inputs the post passes and at the points
    ``more(point, gen)`` makes from them: other shapes (so that a transpose or a
    wrong axis cannot hide), other values, for the same forward. They keep what the
    post's forward holds fixed (post 6's target has 4 rows: so does every x).
    ``sizes(inputs)`` names the sizes a constant factor may be made of ("N": the
    batch size); ``skip`` names the patterns the exercise opts out of
    (`backprop.exercises.patterns.PATTERNS`). ``kind`` is what the exercise
    grades: "gradient" (`check_gradient`), or "value" (`check_forward`, a
    forward's value with no derivative in it).
    """

    post: str
    mistakes: tuple[Mistake, ...]
    example: Callable[[], Example] | None = None  # post exercises only
    more: Callable[[Point, torch.Generator], list[Point]] | None = None
    sizes: Callable[[list[Tensor]], Sizes] | None = None
    skip: frozenset[str] = frozenset()
    kind: str = "gradient"
