"""Exercises: a grader that runs your backward pass and says, in words, what is wrong.

`check_backward` takes the name of a layer and a hand-written backward with
exactly the signature of the library's ``<name>_backward`` (see
`backprop.functional`), runs it on a few small random cases chosen to expose
mistakes (a batch of 1 and a larger batch, non-square shapes so that a transpose
cannot hide, float64 and float32, repeated indices, a mask, stride and padding,
values where an unstable softmax overflows), and compares every gradient it returns
with ``torch.autograd``'s.

A wrong answer never raises: a gradient of the wrong shape, the wrong number of
gradients, ``None``, an exception from the candidate or a candidate that runs far
too long all end up in the `Report`. When a gradient is wrong the report
compares it with the right answer and says what kind of wrong it is: transposed,
off by a constant factor (named by the sizes it is made of), off by its sign, not
summed over the batch, an axis of size 1 too many, swapped with another gradient,
right except where a mask, a stride, padding or extreme values come in, wrong only
on rows looked up more than once, right only for a batch of 1 or on square shapes,
or close but beyond float64's precision (``patterns`` tries these in order).

`check_gradient` does the same for any function of tensors, and `check_forward`
for a value with no derivative in it (a cross-entropy computed by hand, against
``F.cross_entropy``, at inputs where a naive formula overflows). `exercise`,
`exercise_gradient` and `exercise_forward` are what a post's exercise cells call:
they show the report and raise `ExerciseNotDone` until the answer is right,
so that "Run all" in a notebook stops at the first unsolved exercise.

Each exercise has a catalogue of typical wrong answers
(``backprop.exercises.catalogues``): when an answer makes one of them on every case,
the report names it, with a hint pointing back at the post's section. A layer's
catalogue goes with its name; a post's own exercise passes
``catalogue="<exercise>"`` to `check_gradient` / `exercise_gradient`.

The package is split along its seams: ``cases`` (one family of cases per layer),
``catalogues`` (the typical mistakes of each exercise), ``diagnoses`` (what kind
of wrong a gradient is on one case), ``patterns`` (what the cases say together),
``runner`` (time limits, exceptions), ``report`` and ``grader`` (the functions
below). Adding an exercise means adding one case family
(or, for a post's own exercise, its ``Example``) and one catalogue.

Like `backprop.gradcheck`, this package is an oracle, so it calls
``torch.autograd``; the layers themselves never do.
"""

from backprop.exercises.cases import LAYERS
from backprop.exercises.grader import (
    check_backward,
    check_forward,
    check_gradient,
    exercise,
    exercise_forward,
    exercise_gradient,
)
from backprop.exercises.report import ExerciseNotDone, Report

__all__ = [
    "LAYERS",
    "ExerciseNotDone",
    "Report",
    "check_backward",
    "check_forward",
    "check_gradient",
    "exercise",
    "exercise_forward",
    "exercise_gradient",
]
