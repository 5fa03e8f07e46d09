"""The patterns: what the cases say together about a wrong answer, tried in order.

Once every case is judged (`diagnoses.judge`), the wrong gradients are explained
by the first pattern that fits, in the order of `PATTERNS`; a gradient a pattern
explains is not offered to the ones after it. Patterns that explain the whole
answer by one slip come first, then the exercise's own catalogue, then what sets
the failing cases apart (a mask, a stride, extreme values), then each gradient's
general diagnosis. An exercise opts out of a pattern by naming it in its
``skip`` (`cases.Layer.skip`, `catalogues.Catalogue.skip`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import Tensor

from backprop._checks import shape_str
from backprop.exercises.cases import Case
from backprop.exercises.catalogues import Catalogue, Mistake
from backprop.exercises.diagnoses import (
    RECOGNISE,
    Verdict,
    close,
    factor_names,
    factor_text,
    general,
)
from backprop.exercises.runner import clone_args, describe_error, unpack

__all__ = [
    "JUDGE_ORDER",
    "PATTERNS",
    "Grading",
    "Known",
    "evaluate",
    "explain",
    "hints",
]

Finding = tuple[str, str, list[int]]  # (gradient, message, case numbers)


# ----------------------------------------------------------------------------------
# The catalogue's mistakes on each case
# ----------------------------------------------------------------------------------


@dataclass
class Known:
    """One catalogue mistake on one case: its gradients, and which of them differ
    from the right ones (a mistake can be harmless in a case)."""

    values: tuple[object, ...]
    telling: tuple[bool, ...]


def _differs(value: object, want: Tensor) -> bool:
    if not isinstance(value, Tensor):
        return True
    value = value.detach().to(want.dtype)
    if value.shape != want.shape:
        return True
    if close(value, want, RECOGNISE[want.dtype]):
        return False
    # All zeros says nothing about the mistake: any empty answer would match it.
    return bool(value.abs().nan_to_num(1.0).max().item() > 0)


def evaluate(
    mistake: Mistake, case: Case, bare: bool, exercise: str, number: int
) -> Known:
    """The mistake's answer on one case (an error if it does not fit the case)."""
    args = clone_args(case.args)
    if mistake.needs_right:
        right = case.expected[0] if bare else tuple(case.expected)
        args = (right, *args)
    problem = ""
    try:
        result = mistake.answer(*args)
    except Exception as error:
        problem = f"raised {describe_error(error)}"
    else:
        unpacked = unpack(result, case.grads, bare, "its answer")
        if isinstance(unpacked, str):
            problem = unpacked
    if problem:
        raise ValueError(
            f"the catalogue of {exercise!r} does not fit this exercise: its mistake "
            f"{mistake.name!r} {problem} on case {number} ({case.label}); is it the "
            "catalogue of another exercise?"
        )
    assert not isinstance(unpacked, str)
    telling = tuple(
        _differs(value, want)
        for value, want in zip(unpacked, case.expected, strict=True)
    )
    return Known(unpacked, telling)


def _matches(mistake: Mistake, known: Known, got: object, at: int, case: Case) -> bool:
    """Is ``got``, the candidate's gradient number ``at``, this mistake's?"""
    if not isinstance(got, Tensor) or not got.is_floating_point():
        return False
    want = case.expected[at]
    if mistake.matches is not None and at == 0:
        try:
            return bool(mistake.matches(got.detach(), *clone_args(case.args)))
        except Exception:  # a shape the predicate cannot read: not this mistake
            return False
    value = known.values[at]
    if not isinstance(value, Tensor):
        return False
    return close(
        got.detach().to(want.dtype), value.to(want.dtype), RECOGNISE[want.dtype]
    )


# ----------------------------------------------------------------------------------
# What the patterns see
# ----------------------------------------------------------------------------------


@dataclass
class Grading:
    """Every case's answer and verdicts, and which wrong gradients are explained."""

    cases: list[Case]
    answers: list[tuple[object, ...]]
    verdicts: list[dict[str, Verdict]]
    catalogue: Catalogue | None = None
    knowns: list[list[Known]] = field(default_factory=list)
    skip: frozenset[str] = frozenset()
    explained: set[str] = field(default_factory=set)
    # Whether a general diagnosis described a gradient (then the hints apply).
    described: bool = False

    @property
    def grads(self) -> tuple[str, ...]:
        return self.cases[0].grads

    def wrong_on(self, name: str) -> list[int]:
        """The numbers (from 1) of the cases where ``name`` is wrong."""
        return [n for n, v in enumerate(self.verdicts, start=1) if not v[name].ok]

    def unexplained(self) -> list[str]:
        return [n for n in self.grads if n not in self.explained and self.wrong_on(n)]


@dataclass(frozen=True)
class Pattern:
    name: str  # what an exercise's skip names
    explain: Callable[[Grading], list[Finding]]
    summary: str  # one line, for CONTRIBUTING and the docs


def _all_cases(g: Grading, names: list[str]) -> list[int]:
    return sorted({n for name in names for n in g.wrong_on(name)})


# ----------------------------------------------------------------------------------
# The catalogue
# ----------------------------------------------------------------------------------


def _fits(g: Grading, index: int, mistake: Mistake) -> list[str] | None:
    """The gradients the mistake explains, if the answer makes it on every case."""
    affected = [
        at for at in range(len(g.grads)) if any(k[index].telling[at] for k in g.knowns)
    ]
    names = [g.grads[at] for at in affected if g.grads[at] not in g.explained]
    if not names:
        return None
    fits = all(
        _matches(mistake, known[index], answer[at], at, case)
        or (found[g.grads[at]].ok and not known[index].telling[at])
        for at in affected
        for case, known, answer, found in zip(
            g.cases, g.knowns, g.answers, g.verdicts, strict=True
        )
    )
    return names if fits else None


def _mistake_message(g: Grading, mistake: Mistake, names: list[str]) -> Finding:
    """'grad_x: <the mistake>: <hint>.', with the shape when it is wrong too."""
    numbers = _all_cases(g, names)
    case, first = g.cases[numbers[0] - 1], g.answers[numbers[0] - 1]
    at = case.grads.index(names[0])
    got, want = first[at], case.expected[at]
    of = case.of.get(names[0], names[0].removeprefix("grad_"))
    if len(names) == 1 and isinstance(got, Tensor) and got.shape != want.shape:
        head = (
            f"{names[0]} has shape {shape_str(got)} instead of {shape_str(want)}, "
            f"{of}'s shape"
        )
    else:
        head = ", ".join(names)
    return ("", f"{head}: {mistake.name}: {mistake.hint}.", numbers)


def _catalogue(g: Grading, whole: bool) -> list[Finding]:
    if g.catalogue is None:
        return []
    out = []
    for index, mistake in enumerate(g.catalogue.mistakes):
        wrong = set(g.unexplained())
        if not wrong:
            break
        names = _fits(g, index, mistake)
        if names is None or (whole and not wrong <= set(names)):
            continue
        out.append(_mistake_message(g, mistake, names))
        g.explained.update(names)
        if whole:
            break
    return out


def whole_mistake(g: Grading) -> list[Finding]:
    return _catalogue(g, whole=True)


def mistakes(g: Grading) -> list[Finding]:
    return _catalogue(g, whole=False)


# ----------------------------------------------------------------------------------
# Swapped outputs
# ----------------------------------------------------------------------------------


def _holds(got: object, want: Tensor) -> bool:
    if not isinstance(got, Tensor) or not got.is_floating_point():
        return False
    got = got.detach().to(want.dtype)
    return got.shape == want.shape and close(got, want, RECOGNISE[want.dtype])


def swapped(g: Grading) -> list[Finding]:
    """A returned gradient that is, on every case, another input's right gradient."""
    wrong = g.unexplained()
    holds: dict[str, str] = {}
    for i, name in enumerate(g.grads):
        if name not in wrong:
            continue
        for j, other in enumerate(g.grads):
            if j == i:
                continue
            same = all(
                _holds(answer[i], case.expected[j])
                for case, answer in zip(g.cases, g.answers, strict=True)
            )
            telling = any(
                not _holds(case.expected[j], case.expected[i])
                and bool(case.expected[j].abs().max() > 0)
                for case in g.cases
            )
            if same and telling:
                holds[name] = other
                break
    if not holds:
        return []
    out = []
    order = f"({', '.join(g.grads)})"
    done: set[str] = set()
    for start in holds:
        if start in done:
            continue
        chain = [start]
        while holds.get(chain[-1]) in holds and holds[chain[-1]] not in chain:
            chain.append(holds[chain[-1]])
        cycle = holds.get(chain[-1]) == start
        done.update(chain)
        said = ", ".join(f"{a} holds {holds[a]}'s" for a in chain)
        if cycle and len(chain) == 2:
            a, b = chain
            message = (
                f"{a} and {b} are swapped: each holds the other's right gradient. "
                f"Return them in the order of the inputs, {order}."
            )
        elif cycle:
            message = (
                f"the gradients are returned in the wrong order: {said}. Return them "
                f"in the order of the inputs, {order}."
            )
        else:
            a = chain[0]
            of_a, of_b = a.removeprefix("grad_"), holds[a].removeprefix("grad_")
            message = (
                f"{said} right gradient, not its own: is it computed from {of_b}'s "
                f"terms where {of_a}'s belong (a line copied from the other input)?"
            )
        out.append(("", message, _all_cases(g, chain)))
        g.explained.update(chain)
    return out


# ----------------------------------------------------------------------------------
# One slip that every gradient inherits
# ----------------------------------------------------------------------------------

_RATIO_KEYS = ("factor", "sign", "single")


def same_slip(g: Grading) -> list[Finding]:
    """Every wrong gradient off by the same sign or factor, on every case."""
    wrong = g.unexplained()
    # A slip where every gradient starts leaves none of them right: when one is
    # right (attention's grad_v without the 1/√d), the others' slips are their own.
    if len(wrong) < 2 or len(wrong) != len(g.grads):
        return []
    numbers = g.wrong_on(wrong[0])
    if any(g.wrong_on(name) != numbers for name in wrong):
        return []
    ratios = []
    for number in numbers:
        found = [g.verdicts[number - 1][name] for name in wrong]
        if any(v.key not in _RATIO_KEYS for v in found):
            return []
        first = found[0].ratio
        if any(abs(v.ratio - first) > 1e-6 * abs(first) for v in found):
            return []
        ratios.append((g.cases[number - 1], first))
    names = ", ".join(wrong)
    if all(abs(r + 1) <= 1e-6 for _, r in ratios):
        message = (
            f"{names} all have the wrong sign, exactly minus the right answers: one "
            "slip that every gradient inherits, such as a difference in the wrong "
            "order (t - v for v - t) or a stray minus at the first step back from "
            "the loss."
        )
    else:
        options = [factor_names(r, case) for case, r in ratios]
        common = [e for e in options[0] if all(e in other for other in options[1:])]
        same = all(abs(r - ratios[0][1]) <= 1e-6 * abs(ratios[0][1]) for _, r in ratios)
        if not common and not same:
            return []
        expression = common[0] if common else ""
        factor = factor_text(expression, ratios[0][1], [c for c, _ in ratios])
        message = (
            f"{names} are all {factor} the right answers, the same factor for each: "
            "a factor in the gradient they all start from (the first step back from "
            "the loss) is the likely slip."
        )
    g.explained.update(wrong)
    return [("", message, numbers)]


# ----------------------------------------------------------------------------------
# What sets the failing cases apart
# ----------------------------------------------------------------------------------

CONDITIONS = {
    "mask": (
        "right on every case without a mask and wrong on every masked one: the mask "
        "is lost on the way back. A masked score is -inf, so its probability is "
        "exactly 0 and it gets no gradient: recompute P with the mask in the "
        "backward (not applied to the gradient only, not filled with 0 instead of "
        "-inf, and not inverted: True means a query may attend to that key)"
    ),
    "stride": (
        "right at stride 1 and wrong at every stride of 2: window (i, j) starts at "
        "row stride * i and column stride * j, in the backward as in the forward"
    ),
    "padding": (
        "right without padding and wrong with it: the padding is a constant, not an "
        "input, so take the gradient of the padded image and cut its border off, "
        "grad_x_bar[:, :, p:p + H, p:p + W]"
    ),
    "dilation": (
        "right at dilation 1 and wrong with a dilation: the kernel's taps lie "
        "dilation apart, in the backward as in the forward"
    ),
}


def _condition(trait: str) -> Callable[[Grading], list[Finding]]:
    def explain(g: Grading) -> list[Finding]:
        having = [n for n, c in enumerate(g.cases, start=1) if trait in c.traits]
        if not having or len(having) == len(g.cases):
            return []
        names = [n for n in g.unexplained() if g.wrong_on(n) == having]
        if not names:
            return []
        g.explained.update(names)
        return [("", f"{', '.join(names)}: {CONDITIONS[trait]}.", having)]

    return explain


def extreme(g: Grading) -> list[Finding]:
    """Right on the ordinary cases, wrong only where the values are extreme."""
    ordinary = [n for n, c in enumerate(g.cases, 1) if "extreme" not in c.traits]
    if len(ordinary) == len(g.cases):
        return []
    names = [n for n in g.unexplained() if not set(g.wrong_on(n)) & set(ordinary)]
    if not names:
        return []
    numbers = _all_cases(g, names)
    found = [g.verdicts[n - 1][name] for n in numbers for name in names]
    broken = all(v.key == "nonfinite" for v in found if not v.ok)
    what = "nan or inf" if broken else "wrong"
    noted = [n for n in numbers if g.cases[n - 1].note]
    note = g.cases[noted[0] - 1].note if noted else ""
    if note and len(numbers) > 1:
        note = f"on case {noted[0]}, {note}"
    g.explained.update(names)
    message = (
        f"{', '.join(names)}: right on the ordinary cases, but {what} where the values "
        "are extreme: the formula is right on paper and not computed stably"
    )
    return [
        ("", message + (f". {note[0].upper()}{note[1:]}." if note else "."), numbers)
    ]


# ----------------------------------------------------------------------------------
# Each gradient on its own, then the hints
# ----------------------------------------------------------------------------------


def each_gradient(g: Grading) -> list[Finding]:
    out = []
    for name in g.unexplained():
        out += general(name, g.cases, g.verdicts)
        spots_only = all(
            v[name].ok or v[name].key.startswith("spot:") for v in g.verdicts
        )
        g.described = g.described or not spots_only
        g.explained.add(name)
    return out


PATTERNS: tuple[Pattern, ...] = (
    Pattern(
        "whole mistake",
        whole_mistake,
        "a mistake of the exercise's catalogue that explains every wrong gradient",
    ),
    Pattern(
        "swapped",
        swapped,
        "swapped outputs: a returned gradient equals another input's right one",
    ),
    Pattern(
        "same slip",
        same_slip,
        "every wrong gradient off by the same sign or the same factor: one slip "
        "upstream",
    ),
    Pattern(
        "mistakes",
        mistakes,
        "the catalogue's mistakes that explain some of the gradients",
    ),
    Pattern("mask", _condition("mask"), "right without a mask, wrong with every one"),
    Pattern("stride", _condition("stride"), "right at stride 1, wrong at stride 2"),
    Pattern("padding", _condition("padding"), "right without padding, wrong with it"),
    Pattern("dilation", _condition("dilation"), "right at dilation 1 only"),
    Pattern(
        "extreme values",
        extreme,
        "right on the ordinary cases, nan or wrong on the cases with extreme values "
        "(rows near 800, rows of very different scales, entries hundreds apart)",
    ),
    Pattern(
        "each gradient",
        each_gradient,
        "each remaining gradient's own diagnosis, across the cases",
    ),
)
"""The patterns, in the order they are tried."""

JUDGE_ORDER = (
    "the shape: a known wrong answer, permuted axes (transposed), a size-1 axis too "
    "many or too few (keepdim), not summed over broadcast axes, reshaped, broadcast",
    "nan or inf where the right answer is finite, with what the case's values mean",
    "the values: a known wrong answer, transposed or permuted on equal sizes, a "
    "transpose reshaped, a constant factor or the sign (named by the case's sizes: "
    "1/N, 1/C, 1/√d, N·T, ...; for one element only when several cases agree), a "
    "factor that changes from row to row or column to column, wrong only at known "
    "spots, beyond float64's precision, and what does not match",
)
"""What `diagnoses.judge` tries on each case, in order (the last pattern uses it)."""


def explain(g: Grading) -> list[Finding]:
    """Every finding, pattern by pattern, each explaining what is left."""
    out: list[Finding] = []
    for pattern in PATTERNS:
        if pattern.name in g.skip and pattern.name != "each gradient":
            continue
        if not g.unexplained():
            break
        out += pattern.explain(g)
    return out


def hints(g: Grading) -> list[str]:
    """What the cases say together: right only for a batch of 1, or on square
    shapes. Said only after a general description, never beside a named mistake or
    a spot, which explain which cases fail."""
    if not g.described:
        return []
    cases, verdicts = g.cases, g.verdicts
    right = [all(v.ok for v in found.values()) for found in verdicts]
    out = []
    ones = [r for case, r in zip(cases, right, strict=True) if case.batch == 1]
    larger = [
        r
        for case, r in zip(cases, right, strict=True)
        if case.batch is not None and case.batch > 1
    ]
    if "batch of 1" not in g.skip and ones and all(ones) and larger and not any(larger):
        out.append(
            "Right for a batch of 1 but not for larger batches: with one example, "
            "summing over the batch, averaging over it and leaving it out all agree, "
            "so look at how your answer treats the batch."
        )
    square = [r for case, r in zip(cases, right, strict=True) if case.square]
    other = [r for case, r in zip(cases, right, strict=True) if case.square is False]
    if "square" not in g.skip and square and all(square) and other and not any(other):
        out.append(
            "Right only on square shapes: a transpose, or a size taken from the wrong "
            "dimension, goes unnoticed when the dimensions are equal. Check each "
            "shape against the derivation."
        )
    return out
