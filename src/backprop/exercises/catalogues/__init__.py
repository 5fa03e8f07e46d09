"""The catalogues: for each exercise, the typical wrong answers and what they mean.

A `Mistake` is a wrong answer a reader is likely to write, as a function with the
exercise's own signature (the candidate's), with a name ("the direct path of x is
missing") and a one-line hint that points back at the post's section. When a
reader's answer equals a mistake's answer on every case, on every gradient the
mistake gets wrong, the report names the mistake instead of describing the
difference in general terms.

A layer's catalogue is `CATALOGUES[name]` for `check_backward(name, ...)`. A post's
own exercise (`check_gradient` / `exercise_gradient`, or `check_forward` /
`exercise_forward` for a value, whose catalogue has ``kind="value"``) names its
catalogue with ``catalogue="<exercise>"``, the name of its ``exercise-<name>``
cell, and the catalogue holds an `Example`: the post's forward (for a value, the
reference) and inputs, on which the tests feed every mistake to the grader.
"""

from backprop.exercises.catalogues.layers import LAYER_CATALOGUES
from backprop.exercises.catalogues.parts import Catalogue, Example, Mistake
from backprop.exercises.catalogues.post15 import POST15_CATALOGUES
from backprop.exercises.catalogues.posts import POST_CATALOGUES

__all__ = ["CATALOGUES", "Catalogue", "Example", "Mistake"]

CATALOGUES: dict[str, Catalogue] = {
    **LAYER_CATALOGUES,
    **POST_CATALOGUES,
    **POST15_CATALOGUES,
}
"""Every exercise's typical mistakes: a layer's under its `check_backward` name, a
post's own exercise under the name of its ``exercise-<name>`` cell."""
