"""The grader: runs the reader's function on every case, judges each gradient,
names the known mistakes of the exercise's catalogue, and writes the report."""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from backprop._checks import shape_str
from backprop.exercises.cases import (
    FACTOR_HINTS,
    LAYERS,
    Case,
    autograd,
    dtype_label,
    ones_variants,
    randn,
)
from backprop.exercises.catalogues import CATALOGUES, Catalogue
from backprop.exercises.catalogues.parts import Point, Sizes
from backprop.exercises.diagnoses import (
    Verdict,
    article,
    case_list,
    judge,
    merge_same,
)
from backprop.exercises.patterns import Grading, evaluate, explain, hints
from backprop.exercises.report import ExerciseNotDone, Report, show
from backprop.exercises.runner import (
    clone_args,
    describe_error,
    run,
    unpack,
    where,
)

__all__ = [
    "check_backward",
    "check_forward",
    "check_gradient",
    "exercise",
    "exercise_forward",
    "exercise_gradient",
]


# ----------------------------------------------------------------------------------
# Grading: every case, then what the cases say together
# ----------------------------------------------------------------------------------


def _grade(
    title: str,
    what: str,
    cases: list[Case],
    candidate: Callable[..., object],
    bare: bool,
    checked: str,
    timeout: float,
    catalogue: Catalogue | None = None,
    exercise: str = "",
    skip: frozenset[str] = frozenset(),
) -> Report:
    if not callable(candidate):
        return Report(
            title,
            False,
            f"✗ {title}: expected a function, got {article(type(candidate).__name__)} "
            "(pass the function itself, without calling it).",
        )
    mistakes = catalogue.mistakes if catalogue is not None else ()
    knowns = [
        [evaluate(m, case, bare, exercise, number) for m in mistakes]
        for number, case in enumerate(cases, start=1)
    ]
    verdicts: list[dict[str, Verdict]] = []
    answers: list[tuple[object, ...]] = []
    case_lines: list[str] = []
    for number, case in enumerate(cases, start=1):
        args = clone_args(case.args)
        outcome = run(functools.partial(candidate, *args), timeout)
        at = f"case {number} ({case.label})"
        if outcome.timed_out:
            return Report(
                title,
                False,
                f"✗ {title}: stopped on {at}: your function took longer than "
                f"{timeout:g} s (an endless loop, or a Python loop over far too many "
                "elements?).",
                cases=case_lines,
            )
        if isinstance(outcome.error, NotImplementedError):
            hint = str(outcome.error).strip()
            return Report(
                title,
                False,
                f"✗ {title}: not written yet" + (f" ({hint})." if hint else "."),
                unsolved=True,
            )
        if outcome.error is not None:
            return Report(
                title,
                False,
                f"✗ {title}: your function raised {describe_error(outcome.error)}"
                f"{where(outcome.error)}, on {at}.",
                cases=case_lines,
            )
        noun = "value" if case.kind == "value" else "gradient"
        unpacked = unpack(outcome.value, case.grads, bare, what, noun)
        if isinstance(unpacked, str):
            return Report(title, False, f"✗ {title}: {unpacked}", cases=case_lines)
        found = {
            name: judge(name, got, want, case, skip)
            for name, got, want in zip(case.grads, unpacked, case.expected, strict=True)
        }
        verdicts.append(found)
        answers.append(unpacked)
        wrong = [name for name, verdict in found.items() if not verdict.ok]
        mark = "✗" if wrong else "✓"
        suffix = f": {', '.join(wrong)} wrong" if wrong else ""
        case_lines.append(f"{mark} case {number}: {case.label}{suffix}")

    grads = cases[0].grads
    wrong_grads = [n for n in grads if any(not v[n].ok for v in verdicts)]
    if not wrong_grads:
        return Report(title, True, f"✓ {title}: {checked}", cases=case_lines)

    grading = Grading(cases, answers, verdicts, catalogue, knowns, skip)
    problems = []
    for message, numbers in merge_same(explain(grading)):
        if len(cases) == 1:
            problems.append(message)
            continue
        at = "every case" if len(numbers) == len(cases) else case_list(numbers)
        problems.append(f"{message} [{at}]")
    problems += hints(grading)
    verb = "is" if len(wrong_grads) == 1 else "are"
    headline = f"✗ {title}: {', '.join(wrong_grads)} {verb} wrong."
    return Report(
        title, False, headline, problems, case_lines if len(cases) > 1 else []
    )


# ----------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------


def check_backward(
    name: str, candidate: Callable[..., object], *, seed: int = 0, timeout: float = 10.0
) -> Report:
    """Check a hand-written backward against autograd and say what is wrong with it.

    The candidate has exactly the signature of the library's ``<name>_backward``
    (``backprop.functional``) and returns what it returns: the upstream gradient
    first, then the forward's inputs; the gradients of the inputs in their order,
    a single gradient bare (not in a tuple). Losses (``mse``, ``cross_entropy``)
    take only the forward's inputs. It is called with positional arguments only,
    and with copies, so changing an input in place does no harm.

    A wrong answer that makes one of the layer's typical mistakes (its catalogue,
    ``backprop.exercises.catalogues.CATALOGUES[name]``) on every case is named,
    with a hint pointing back at the post that derives the layer; any other is
    described in general terms (transposed, a factor, not summed, which entries).

    | name | candidate |
    |---|---|
    | lin | `(grad_out, x, w, b) -> (grad_x, grad_w, grad_b)`, w (n_in, n_out) |
    | lin_out_in | the same, `(grad_x, grad_weight, grad_bias)`, weight (n_out, n_in) |
    | relu | `(grad_out, x) -> grad_x` |
    | gelu | `(grad_out, x, approximate) -> grad_x`, approximate "tanh" or "none" |
    | mse | `(pred, target) -> grad_pred` (of the mean over all values) |
    | logsumexp | `(grad_out, x) -> grad_x`, over the last dimension; grad_out (N,) |
    | softmax | `(grad_out, x) -> grad_x`, over the last dimension |
    | log_softmax | `(grad_out, x) -> grad_x`, over the last dimension |
    | cross_entropy | `(logits, target) -> grad_logits` (of the mean over the batch) |
    | embedding | `(grad_out, idx, table) -> grad_table` |
    | batchnorm | `(grad_out, x, gamma, beta) -> (grad_x, grad_gamma, grad_beta)` |
    | layernorm | `(grad_out, x, gamma, beta) -> (grad_x, grad_gamma, grad_beta)` |
    | conv2d | `(grad_out, x, w, b, stride, padding) -> (grad_x, grad_w, grad_b)` |
    | attention | `(grad_out, q, k, v[, mask]) -> (grad_q, grad_k, grad_v)` |

    Parameters
    ----------
    name : str
        One of the names above (``LAYERS`` holds them).
    candidate : callable
        The backward to check.
    seed : int, optional
        Seeds the random cases (the global random state is left alone).
    timeout : float, optional
        Seconds one call of the candidate may take before it is stopped.

    Returns
    -------
    Report
        ``.ok`` is True when every gradient matches autograd's on every case;
        otherwise the report says what is wrong, naming each gradient.

    Raises
    ------
    ValueError
        If ``name`` is not one of the names above. A wrong candidate never raises:
        its mistakes, exceptions included, are in the report.

    Examples
    --------
    >>> from backprop.exercises import check_backward
    >>> def lin_backward(grad_out, x, w, b):
    ...     return grad_out @ w.T, x.T @ grad_out, grad_out.mean(0)
    >>> report = check_backward("lin", lin_backward)
    >>> report.ok
    False
    >>> "average over the batch instead of summing" in str(report)
    True
    """
    if name not in LAYERS:
        known = ", ".join(LAYERS)
        raise ValueError(f"no exercise for {name!r}; the names are: {known}")
    layer = LAYERS[name]
    cases = layer.make_cases(torch.Generator().manual_seed(seed))
    checked = (
        f"{', '.join(layer.grads)} match{'es' if layer.bare else ''} autograd on "
        f"{len(cases)} cases ({layer.coverage})."
    )
    what = layer.signature.split("(")[0]
    catalogue = CATALOGUES.get(name)
    skip = layer.skip | (catalogue.skip if catalogue is not None else frozenset())
    return _grade(
        name,
        what,
        cases,
        candidate,
        layer.bare,
        checked,
        timeout,
        catalogue,
        name,
        skip,
    )


def check_gradient(
    forward: Callable[..., Tensor],
    candidate: Callable[..., object],
    inputs: Sequence[Tensor],
    *,
    names: Sequence[str] | None = None,
    seed: int = 0,
    timeout: float = 10.0,
    catalogue: str | None = None,
    along: Tensor | None = None,
) -> Report:
    """Check hand-written gradients of any function of tensors against autograd.

    The convention is ``backprop.functional``'s. When ``forward(*inputs)`` is a
    scalar (a loss), the candidate is called as ``candidate(*inputs)`` and returns
    the gradient of that scalar. Otherwise it is called as
    ``candidate(grad_out, *inputs)``, with a random ``grad_out`` of the output's
    shape, and returns the gradient of ``sum(forward(*inputs) * grad_out)``. Either
    way it returns one gradient per floating-point input, in order (integer inputs,
    such as indices, have none), bare when there is only one.

    With ``along``, a direction for the first input, the check is in forward mode:
    the candidate is called as ``candidate(*inputs, along)`` and returns the
    Jacobian-vector product, how fast ``forward(*inputs)`` moves as the first input
    moves along ``along`` (the others held still), a tensor of the output's shape;
    the right answer is ``torch.func.jvp``'s.

    ``catalogue`` names the exercise whose typical mistakes the report may name
    (``backprop.exercises.catalogues.CATALOGUES``; a post's exercise is named as
    its ``exercise-<name>`` cell): an answer that makes one of them gets its name
    and a hint pointing back at the post. The candidate is then also checked at
    the catalogue's other points, made from ``inputs``: other shapes and values
    for the same ``forward`` (those the forward cannot take are left out).

    Parameters
    ----------
    forward : callable
        ``forward(*inputs) -> Tensor``, written with torch operations (autograd
        differentiates it to get the right answer).
    candidate : callable
        The hand-written gradient, as above.
    inputs : sequence of Tensor
        The point at which to check; the candidate receives copies.
    names : sequence of str, optional
        A name per input, used in the report as ``grad_<name>``; default ``x``
        for one input, else ``x0``, ``x1``, ...
    seed : int, optional
        Seeds ``grad_out`` (the global random state is left alone).
    timeout : float, optional
        Seconds the candidate may take before it is stopped.
    catalogue : str, optional
        The exercise whose known mistakes to recognise, e.g. ``"skip"``.
    along : Tensor, optional
        A direction for the first input, of its shape: check a Jacobian-vector
        product instead of gradients.

    Returns
    -------
    Report
        As for `check_backward`.

    Raises
    ------
    ValueError
        If ``inputs`` holds something other than tensors, ``names`` has the wrong
        length, no input is floating-point, ``forward`` does not return a tensor,
        ``along`` does not have the first input's shape, or ``catalogue`` is
        unknown or does not fit the exercise. A wrong candidate never raises.

    Examples
    --------
    >>> import torch
    >>> from backprop.exercises import check_gradient
    >>> def logsumexp(x):
    ...     return x.exp().sum().log()
    >>> def logsumexp_grad(x):
    ...     return x.exp() / x.exp().sum()
    >>> x = torch.randn(5, dtype=torch.float64)
    >>> check_gradient(logsumexp, logsumexp_grad, [x]).ok
    True

    A Jacobian-vector product, and a known mistake named from the catalogue:

    >>> def tanh_layer(x, w):
    ...     return torch.tanh(x @ w)
    >>> def jvp_without_slope(x, w, u):
    ...     return u @ w
    >>> x, w, u = torch.randn(3, 4), torch.randn(4, 2), torch.randn(3, 4)
    >>> report = check_gradient(
    ...     tanh_layer, jvp_without_slope, [x, w], along=u, catalogue="jvp"
    ... )
    >>> "tanh's slope is missing" in str(report)
    True
    """
    inputs, names = _named_inputs(inputs, names)
    known = _catalogue(catalogue, "gradient")
    grads = tuple(
        f"grad_{n}" for n, t in zip(names, inputs, strict=True) if t.is_floating_point()
    )
    if not grads:
        raise ValueError(
            "no input is a floating-point tensor, so nothing has a gradient"
        )
    with torch.no_grad():
        out = forward(*[t.clone() for t in inputs])
    if not isinstance(out, Tensor):
        raise ValueError(f"forward returned a {type(out).__name__}, not a tensor")
    if along is not None:
        _check_along(inputs, along, names)
    title = getattr(forward, "__name__", "the function")
    if title == "<lambda>":
        title = "the function"
    gen = torch.Generator().manual_seed(seed)
    points = [Point(inputs, along)]
    if known is not None and known.more is not None:
        points += _fitting(forward, known.more(points[0], gen), along is not None)
    cases = [
        _gradient_case(forward, point, names, grads, gen, known) for point in points
    ]
    if along is not None:
        call = "jvp(*inputs, along)"
        checked = f"the JVP matches torch.func.jvp at {cases[0].label}"
    else:
        call = "backward(*inputs)" if out.ndim == 0 else "backward(grad_out, *inputs)"
        verb = "matches" if len(grads) == 1 else "match"
        checked = f"{', '.join(grads)} {verb} autograd at {cases[0].label}"
    if len(cases) > 1:
        checked += f", and at {len(cases) - 1} more points (other shapes and values)"
    return _grade(
        title,
        call,
        cases,
        candidate,
        len(cases[0].grads) == 1,
        checked + ".",
        timeout,
        known,
        catalogue or "",
        known.skip if known is not None else frozenset(),
    )


def _fitting(
    forward: Callable[..., Tensor], points: list[Point], jvp: bool
) -> list[Point]:
    """The points the forward takes: a catalogue's points are made from the post's
    inputs, and inputs of another kind (a user's own) may not fit them."""
    out = []
    for point in points:
        if jvp != (point.along is not None):
            continue
        try:
            with torch.no_grad():
                result = forward(*[t.clone() for t in point.inputs])
        except Exception:
            continue
        if isinstance(result, Tensor) and bool(torch.isfinite(result).all()):
            out.append(point)
    return out


def _default_sizes(inputs: list[Tensor], names: Sequence[str]) -> Sizes:
    """n, the first input's entries, and N, its rows when it has rows: the same
    names on points of any shape (a vector's length is its n)."""
    sizes: Sizes = {}
    if inputs[0].ndim >= 2 and inputs[0].shape[0] > 1:
        sizes["N"] = (inputs[0].shape[0], f"the first dimension of {names[0]}")
    if inputs[0].numel() > 1:
        sizes["n"] = (inputs[0].numel(), f"the number of entries of {names[0]}")
    return sizes


def _gradient_case(
    forward: Callable[..., Tensor],
    point: Point,
    names: Sequence[str],
    grads: tuple[str, ...],
    gen: torch.Generator,
    known: Catalogue | None,
) -> Case:
    """One case of `check_gradient`: the right gradients (or JVP) at one point."""
    inputs = point.inputs
    label = ", ".join(f"{n} {shape_str(t)}" for n, t in zip(names, inputs, strict=True))
    floating = next(t for t in inputs if t.is_floating_point())
    label = f"{label}, {dtype_label(floating.dtype)}"
    if point.label:
        label += f", {point.label}"
    hints: dict[str, str] = {}
    if known is not None and known.sizes is not None:
        sizes = known.sizes(inputs)
        hints = FACTOR_HINTS  # the catalogue's sizes mean what the hints say
    else:
        sizes = _default_sizes(inputs, names)
    if point.along is not None:
        case = _jvp_case(forward, inputs, point.along, label, sizes)
        return dataclasses.replace(case, note=point.note, traits=point.traits)
    with torch.no_grad():
        out = forward(*[t.clone() for t in inputs])
    grad_out = None if out.ndim == 0 else randn(gen, *out.shape, dtype=out.dtype)
    variants = (
        [] if grad_out is None else ones_variants(forward, inputs, grad_out, grads)
    )
    return Case(
        label=label,
        args=tuple(inputs) if grad_out is None else (grad_out, *inputs),
        expected=tuple(autograd(forward, inputs, grad_out)),
        grads=grads,
        sizes=sizes,
        variants=variants,
        note=point.note,
        traits=point.traits,
        factor_hints=hints,
    )


def _named_inputs(
    inputs: Sequence[Tensor], names: Sequence[str] | None
) -> tuple[list[Tensor], Sequence[str]]:
    """The inputs as a list, each a tensor, and a name for each."""
    inputs = list(inputs)
    for position, value in enumerate(inputs):
        if not isinstance(value, Tensor):
            raise ValueError(
                f"inputs[{position}] is a {type(value).__name__}; every input must "
                "be a tensor"
            )
    if names is None:
        names = ["x"] if len(inputs) == 1 else [f"x{i}" for i in range(len(inputs))]
    if len(names) != len(inputs):
        raise ValueError(
            f"{len(names)} names for {len(inputs)} inputs: give one per input"
        )
    return inputs, names


_CHECKERS = {"gradient": "check_gradient", "value": "check_forward"}


def _catalogue(name: str | None, kind: str) -> Catalogue | None:
    if name is None:
        return None
    if name not in CATALOGUES:
        known = ", ".join(CATALOGUES)
        raise ValueError(f"no catalogue {name!r}; the catalogues are: {known}")
    found = CATALOGUES[name]
    if found.kind != kind:
        raise ValueError(
            f"the catalogue {name!r} is for an exercise that grades a {found.kind}: "
            f"check it with {_CHECKERS[found.kind]}"
        )
    return found


def _check_along(inputs: list[Tensor], along: Tensor, names: Sequence[str]) -> None:
    if not isinstance(along, Tensor) or along.shape != inputs[0].shape:
        got = shape_str(along) if isinstance(along, Tensor) else type(along).__name__
        raise ValueError(
            f"along must be a direction for {names[0]}, of its shape "
            f"{shape_str(inputs[0])}; got {got}"
        )


def _jvp_case(
    forward: Callable[..., Tensor],
    inputs: list[Tensor],
    along: Tensor,
    label: str,
    sizes: Sizes,
) -> Case:
    """The case of a forward-mode check: the JVP along ``along`` for the first input."""
    first, rest = inputs[0], [t.detach().clone() for t in inputs[1:]]
    with warnings.catch_warnings():
        # torch compiles its forward-mode rules with torch.jit.script the first time,
        # which warns that torch.jit.script is deprecated: torch's business, not ours.
        warnings.filterwarnings(
            "ignore", message=".*torch.jit.script.* is deprecated", category=Warning
        )
        jvp = torch.func.jvp(
            lambda x: forward(x, *rest), (first.detach().clone(),), (along.detach(),)
        )
    expected = jvp[1]
    return Case(
        label=f"{label}, along {shape_str(along)}",
        args=(*inputs, along),
        expected=(expected.detach(),),
        grads=("jvp",),
        sizes=sizes,
        of={"jvp": "the output"},
        kind="JVP",
    )


def check_forward(
    forward: Callable[..., Tensor],
    candidate: Callable[..., object],
    inputs: Sequence[Tensor],
    *,
    names: Sequence[str] | None = None,
    output: str = "out",
    seed: int = 0,
    timeout: float = 10.0,
    catalogue: str | None = None,
) -> Report:
    """Check a hand-written forward, a value with no derivative in it, against a
    reference function.

    The candidate is called as ``candidate(*inputs)``, with copies, and returns one
    tensor; the right answer is ``forward(*inputs)``, where ``forward`` is a
    function you trust (``F.cross_entropy`` for a cross-entropy written by hand).
    The report judges the value as `check_gradient` judges a gradient: the
    shape, nan or inf where the right answer is finite (with what the point's
    values mean), a constant factor or the sign, which entries differ.

    ``catalogue`` names the exercise whose typical mistakes the report may name
    (a catalogue of kind "value", ``backprop.exercises.catalogues.CATALOGUES``; a
    post's exercise is named as its ``exercise-<name>`` cell). The candidate is
    then also checked at the catalogue's other points, made from ``inputs``:
    other shapes, and values where a formula that is right on paper overflows.

    Parameters
    ----------
    forward : callable
        ``forward(*inputs) -> Tensor``, the reference.
    candidate : callable
        The hand-written function, with the reference's signature.
    inputs : sequence of Tensor
        The point at which to check; integer tensors (class indices) are fine.
    names : sequence of str, optional
        A name per input, for the report; default ``x``, or ``x0``, ``x1``, ...
    output : str, optional
        The name of the value in the report, e.g. ``"loss"``.
    seed : int, optional
        Seeds the catalogue's other points (the global random state is left
        alone).
    timeout : float, optional
        Seconds the candidate may take before it is stopped.
    catalogue : str, optional
        The exercise whose known mistakes to recognise, e.g. ``"cross-entropy"``.

    Returns
    -------
    Report
        ``.ok`` is True when the value matches the reference's at every point,
        to the precision of its dtype; otherwise the report says what is wrong.

    Raises
    ------
    ValueError
        If ``inputs`` holds something other than tensors, ``names`` has the wrong
        length, ``forward`` does not return a tensor, or ``catalogue`` is unknown
        or grades a gradient. A wrong candidate never raises.

    Examples
    --------
    >>> import torch
    >>> from backprop.exercises import check_forward
    >>> def logsumexp(x):  # the reference
    ...     return torch.logsumexp(x, dim=0)
    >>> def my_logsumexp(x):
    ...     top = x.max()
    ...     return top + (x - top).exp().sum().log()
    >>> x = torch.tensor([1000.0, 999.0, -5.0], dtype=torch.float64)
    >>> check_forward(logsumexp, my_logsumexp, [x]).ok
    True
    >>> report = check_forward(logsumexp, lambda x: x.exp().sum().log(), [x])
    >>> "nan or inf" in str(report)
    True
    """
    inputs, names = _named_inputs(inputs, names)
    known = _catalogue(catalogue, "value")
    with torch.no_grad():
        out = forward(*[t.clone() for t in inputs])
    if not isinstance(out, Tensor):
        raise ValueError(f"forward returned a {type(out).__name__}, not a tensor")
    reference = getattr(forward, "__name__", "the reference")
    if reference == "<lambda>":
        reference = "the reference"
    gen = torch.Generator().manual_seed(seed)
    points = [Point(inputs)]
    if known is not None and known.more is not None:
        points += _fitting(forward, known.more(points[0], gen), False)
    cases = [
        _value_case(forward, point, names, output, reference, known) for point in points
    ]
    checked = f"{output} matches {reference} at {cases[0].label}"
    if len(cases) > 1:
        checked += f", and at {len(cases) - 1} more points (other shapes and values)"
    return _grade(
        reference,
        "your function",
        cases,
        candidate,
        True,
        checked + ".",
        timeout,
        known,
        catalogue or "",
        known.skip if known is not None else frozenset(),
    )


def _value_case(
    forward: Callable[..., Tensor],
    point: Point,
    names: Sequence[str],
    output: str,
    reference: str,
    known: Catalogue | None,
) -> Case:
    """One case of `check_forward`: the reference's value at one point."""
    inputs = point.inputs
    with torch.no_grad():
        expected = forward(*[t.clone() for t in inputs]).detach()
    label = ", ".join(f"{n} {shape_str(t)}" for n, t in zip(names, inputs, strict=True))
    label = f"{label}, {dtype_label(expected.dtype)}"
    if point.label:
        label += f", {point.label}"
    hints: dict[str, str] = {}
    if known is not None and known.sizes is not None:
        sizes = known.sizes(inputs)
        hints = FACTOR_HINTS
    else:
        sizes = _default_sizes(inputs, names)
    first = inputs[0]
    return Case(
        label=label,
        args=tuple(inputs),
        expected=(expected,),
        grads=(output,),
        batch=first.shape[0] if first.ndim >= 2 else None,
        sizes=sizes,
        note=point.note,
        traits=point.traits,
        factor_hints=hints,
        of={output: "the output"},
        kind="value",
        reference=reference,
    )


def exercise(
    name: str,
    candidate: Callable[..., object],
    *,
    seed: int = 0,
    timeout: float = 10.0,
    show: bool = True,
) -> None:
    """Grade an exercise: show the report, and raise until the answer is right.

    What a stub cell ends with. It runs `check_backward`, displays the
    report (as Markdown in a notebook, as text elsewhere), and raises
    `ExerciseNotDone` unless the candidate is right, so that running a
    notebook from the top stops at the first unsolved exercise.

    Parameters
    ----------
    name : str
        The layer, as for `check_backward`.
    candidate : callable
        The reader's backward.
    seed : int, optional
        Seeds the random cases, as for `check_backward`.
    timeout : float, optional
        Seconds one call of the candidate may take before it is stopped.
    show : bool, optional
        Display the report (default True).

    Raises
    ------
    ExerciseNotDone
        While the candidate raises ``NotImplementedError`` or is wrong.

    Examples
    --------
    >>> from backprop.exercises import exercise
    >>> from backprop.functional import relu_backward
    >>> exercise("relu", relu_backward, show=False)  # right: no exception
    """
    report = check_backward(name, candidate, seed=seed, timeout=timeout)
    _finish(report, show)


def exercise_gradient(
    forward: Callable[..., Tensor],
    candidate: Callable[..., object],
    inputs: Sequence[Tensor],
    *,
    names: Sequence[str] | None = None,
    seed: int = 0,
    timeout: float = 10.0,
    show: bool = True,
    catalogue: str | None = None,
    along: Tensor | None = None,
) -> None:
    """Like `exercise`, for `check_gradient`'s exercises.

    Parameters
    ----------
    forward : callable
        ``forward(*inputs) -> Tensor``, as for `check_gradient`.
    candidate : callable
        The reader's gradient, as for `check_gradient`.
    inputs : sequence of Tensor
        The point at which to check.
    names : sequence of str, optional
        A name per input, for the report.
    seed : int, optional
        Seeds ``grad_out``.
    timeout : float, optional
        Seconds the candidate may take before it is stopped.
    show : bool, optional
        Display the report (default True).
    catalogue : str, optional
        The exercise whose known mistakes to name, as for `check_gradient`.
    along : Tensor, optional
        A direction for the first input: check a Jacobian-vector product, as for
        `check_gradient`.

    Raises
    ------
    ExerciseNotDone
        While the candidate raises ``NotImplementedError`` or is wrong.

    Examples
    --------
    >>> import torch
    >>> from backprop.exercises import exercise_gradient
    >>> x = torch.randn(3, dtype=torch.float64)
    >>> exercise_gradient(lambda x: (x * x).sum(), lambda x: 2 * x, [x], show=False)
    """
    report = check_gradient(
        forward,
        candidate,
        inputs,
        names=names,
        seed=seed,
        timeout=timeout,
        catalogue=catalogue,
        along=along,
    )
    _finish(report, show)


def exercise_forward(
    forward: Callable[..., Tensor],
    candidate: Callable[..., object],
    inputs: Sequence[Tensor],
    *,
    names: Sequence[str] | None = None,
    output: str = "out",
    seed: int = 0,
    timeout: float = 10.0,
    show: bool = True,
    catalogue: str | None = None,
) -> None:
    """Like `exercise`, for `check_forward`'s exercises (a value, no derivative).

    Parameters
    ----------
    forward : callable
        The reference, ``forward(*inputs) -> Tensor``, as for `check_forward`.
    candidate : callable
        The reader's function, with the reference's signature.
    inputs : sequence of Tensor
        The point at which to check.
    names : sequence of str, optional
        A name per input, for the report.
    output : str, optional
        The name of the value in the report.
    seed : int, optional
        Seeds the catalogue's other points.
    timeout : float, optional
        Seconds the candidate may take before it is stopped.
    show : bool, optional
        Display the report (default True).
    catalogue : str, optional
        The exercise whose known mistakes to name, as for `check_forward`.

    Raises
    ------
    ExerciseNotDone
        While the candidate raises ``NotImplementedError`` or is wrong.

    Examples
    --------
    >>> import torch
    >>> from backprop.exercises import exercise_forward
    >>> x = torch.randn(4, 3, dtype=torch.float64)
    >>> exercise_forward(
    ...     torch.square, lambda x: x * x, [x], output="square", show=False
    ... )
    """
    report = check_forward(
        forward,
        candidate,
        inputs,
        names=names,
        output=output,
        seed=seed,
        timeout=timeout,
        catalogue=catalogue,
    )
    _finish(report, show)


def _finish(report: Report, display: bool) -> None:
    if display:
        show(report)
    if not report.ok:
        raise ExerciseNotDone(report)
