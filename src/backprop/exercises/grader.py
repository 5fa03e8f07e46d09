"""The grader: runs the reader's function on every case, judges each gradient,
names the known mistakes of the exercise's catalogue, and writes the report."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from backprop._checks import shape_str
from backprop.exercises.cases import (
    LAYERS,
    Case,
    autograd,
    dtype_label,
    ones_variants,
    randn,
)
from backprop.exercises.catalogues import CATALOGUES, Catalogue, Mistake
from backprop.exercises.diagnoses import (
    RECOGNISE,
    Verdict,
    case_list,
    close,
    factor_groups,
    judge,
    merge_same,
    patterns,
)
from backprop.exercises.report import ExerciseNotDone, Report, show
from backprop.exercises.runner import (
    clone_args,
    describe_error,
    run,
    unpack,
    where,
)

__all__ = ["check_backward", "check_gradient", "exercise", "exercise_gradient"]


# ----------------------------------------------------------------------------------
# The catalogue's mistakes on each case
# ----------------------------------------------------------------------------------


@dataclass
class _Known:
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


def _evaluate(
    mistake: Mistake, case: Case, bare: bool, exercise: str, number: int
) -> _Known:
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
    return _Known(unpacked, telling)


def _matches(mistake: Mistake, known: _Known, got: object, at: int, case: Case) -> bool:
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


def _named(
    catalogue: Catalogue | None,
    cases: list[Case],
    knowns: list[list[_Known]],
    answers: list[tuple[object, ...]],
    verdicts: list[dict[str, Verdict]],
) -> list[tuple[Mistake, list[str], list[int]]]:
    """The mistakes the answer makes: each with the gradients it explains and the
    cases where they are wrong.

    A mistake is named when, on every gradient it gets wrong somewhere, the answer
    equals the mistake's on every case (or is right where the mistake is harmless).
    """
    if catalogue is None:
        return []
    grads = cases[0].grads
    claimed: set[str] = set()
    out = []
    for index, mistake in enumerate(catalogue.mistakes):
        affected = [
            at for at in range(len(grads)) if any(k[index].telling[at] for k in knowns)
        ]
        if not affected or all(grads[at] in claimed for at in affected):
            continue
        fits = all(
            _matches(mistake, known[index], answer[at], at, case)
            or (found[grads[at]].ok and not known[index].telling[at])
            for at in affected
            for case, known, answer, found in zip(
                cases, knowns, answers, verdicts, strict=True
            )
        )
        if not fits:
            continue
        names = [grads[at] for at in affected if grads[at] not in claimed]
        claimed.update(names)
        numbers = [
            number
            for number, found in enumerate(verdicts, start=1)
            if any(not found[name].ok for name in names)
        ]
        out.append((mistake, names, numbers))
    return out


def _mistake_message(
    mistake: Mistake, names: list[str], first: tuple[object, ...], case: Case
) -> str:
    """'grad_x: <the mistake>: <hint>.', with the shape when it is wrong too."""
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
    return f"{head}: {mistake.name}: {mistake.hint}."


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
) -> Report:
    if not callable(candidate):
        return Report(
            title,
            False,
            f"✗ {title}: expected a function, got a {type(candidate).__name__} "
            "(pass the function itself, without calling it).",
        )
    mistakes = catalogue.mistakes if catalogue is not None else ()
    knowns = [
        [_evaluate(m, case, bare, exercise, number) for m in mistakes]
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
        unpacked = unpack(outcome.value, case.grads, bare, what)
        if isinstance(unpacked, str):
            return Report(title, False, f"✗ {title}: {unpacked}", cases=case_lines)
        found = {
            name: judge(name, got, want, case)
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

    named = _named(catalogue, cases, knowns, answers, verdicts)
    claimed = {name for _, names, _ in named for name in names}
    found_by_grad: list[tuple[str, str, list[int]]] = []  # (name, message, cases)
    for mistake, names, numbers in named:
        first = answers[numbers[0] - 1]
        message = _mistake_message(mistake, names, first, cases[numbers[0] - 1])
        found_by_grad.append(("", message, numbers))
    for name in wrong_grads:
        if name in claimed:
            continue
        found_by_grad += _general(name, cases, verdicts)
    problems = []
    for message, numbers in merge_same(found_by_grad):
        if len(cases) == 1:
            problems.append(message)
            continue
        at = "every case" if len(numbers) == len(cases) else case_list(numbers)
        problems.append(f"{message} [{at}]")
    # A named mistake or a spot explains which cases fail; the patterns would offer
    # a second, wrong explanation (a single lookup is "a batch of 1").
    explained = all(
        name in claimed
        or all(v[name].ok or v[name].key.startswith("spot:") for v in verdicts)
        for name in wrong_grads
    )
    if not explained:
        problems += patterns(cases, verdicts)
    verb = "is" if len(wrong_grads) == 1 else "are"
    headline = f"✗ {title}: {', '.join(wrong_grads)} {verb} wrong."
    return Report(
        title, False, headline, problems, case_lines if len(cases) > 1 else []
    )


def _general(
    name: str, cases: list[Case], verdicts: list[dict[str, Verdict]]
) -> list[tuple[str, str, list[int]]]:
    """The general diagnoses of one gradient, one message per kind of mistake.

    When some cases can only be described in general terms ("does not match") and
    others look like a constant factor or the sign, that is a coincidence of those
    cases: the description that fits every case is given instead.
    """
    keys = {found[name].key for found in verdicts if not found[name].ok}
    coincidence = "mismatch" in keys
    seen: dict[str, tuple[str, list[int]]] = {}
    factors = []
    for number, (case, found) in enumerate(zip(cases, verdicts, strict=True), start=1):
        verdict = found[name]
        if verdict.ok:
            continue
        if verdict.key in ("factor", "sign") and coincidence:
            seen.setdefault("mismatch", (verdict.general, []))[1].append(number)
        elif verdict.key == "factor":
            factors.append((number, case, verdict))
        else:
            seen.setdefault(verdict.key, (verdict.message, []))[1].append(number)
    if "mismatch" in seen and len(seen["mismatch"][1]) > 1:
        # Its counts, rows and ratio are those of one case; the others differ.
        message, numbers = seen["mismatch"]
        seen["mismatch"] = (
            f"{message} (The numbers are case {numbers[0]}'s.)",
            numbers,
        )
    groups = list(seen.values()) + (factor_groups(name, factors) if factors else [])
    return [(name, message, numbers) for message, numbers in groups]


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
    | lin_out_in | the same, w (n_out, n_in) as `nn.Linear`: out = x @ w.T + b |
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
    return _grade(
        name, what, cases, candidate, layer.bare, checked, timeout, catalogue, name
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
    and a hint pointing back at the post.

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
    known = _catalogue(catalogue)
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
    title = getattr(forward, "__name__", "the function")
    if title == "<lambda>":
        title = "the function"
    label = ", ".join(f"{n} {shape_str(t)}" for n, t in zip(names, inputs, strict=True))
    label = f"{label}, {dtype_label(inputs[0].dtype)}"
    sizes: dict[str, tuple[float, str]] = {}
    if inputs[0].ndim >= 1 and inputs[0].shape[0] > 1:
        sizes["N"] = (inputs[0].shape[0], f"the first dimension of {names[0]}")
    if inputs[0].numel() > 1 and inputs[0].ndim > 1:
        sizes["n"] = (inputs[0].numel(), f"the number of entries of {names[0]}")
    if along is not None:
        case = _jvp_case(forward, inputs, along, names, label, sizes)
        call, grads = "jvp(*inputs, along)", case.grads
        checked = f"the JVP matches torch.func.jvp at {label}, along {names[0]}."
    else:
        gen = torch.Generator().manual_seed(seed)
        grad_out = None if out.ndim == 0 else randn(gen, *out.shape, dtype=out.dtype)
        variants = (
            [] if grad_out is None else ones_variants(forward, inputs, grad_out, grads)
        )
        case = Case(
            label=label,
            args=tuple(inputs) if grad_out is None else (grad_out, *inputs),
            expected=tuple(autograd(forward, inputs, grad_out)),
            grads=grads,
            sizes=sizes,
            variants=variants,
        )
        call = (
            "backward(*inputs)" if grad_out is None else "backward(grad_out, *inputs)"
        )
        checked = (
            f"{', '.join(grads)} match{'es' if len(grads) == 1 else ''} autograd at "
            f"{label}."
        )
    return _grade(
        title,
        call,
        [case],
        candidate,
        len(grads) == 1,
        checked,
        timeout,
        known,
        catalogue or "",
    )


def _catalogue(name: str | None) -> Catalogue | None:
    if name is None:
        return None
    if name not in CATALOGUES:
        known = ", ".join(CATALOGUES)
        raise ValueError(f"no catalogue {name!r}; the catalogues are: {known}")
    return CATALOGUES[name]


def _jvp_case(
    forward: Callable[..., Tensor],
    inputs: list[Tensor],
    along: Tensor,
    names: Sequence[str],
    label: str,
    sizes: dict[str, tuple[float, str]],
) -> Case:
    """The case of a forward-mode check: the JVP along ``along`` for the first input."""
    if not isinstance(along, Tensor) or along.shape != inputs[0].shape:
        got = shape_str(along) if isinstance(along, Tensor) else type(along).__name__
        raise ValueError(
            f"along must be a direction for {names[0]}, of its shape "
            f"{shape_str(inputs[0])}; got {got}"
        )
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


def _finish(report: Report, display: bool) -> None:
    if display:
        show(report)
    if not report.ok:
        raise ExerciseNotDone(report)
