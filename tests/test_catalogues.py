"""The catalogues of typical mistakes: every mistake of every exercise is named.

Parametrised by reading the catalogues, so that a new mistake or a new exercise is
covered without a new test. A mistake is fed to the grader as a reader's answer:
for a layer through `check_backward`, for a post's own exercise through
`check_gradient` on the catalogue's `Example` (the post's forward and inputs).
The right answers come from autograd (and `torch.func.jvp`), never from the
catalogue.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from backprop import functional as fn
from backprop.exercises import LAYERS, check_backward, check_forward, check_gradient
from backprop.exercises.cases import autograd
from backprop.exercises.catalogues import CATALOGUES, Catalogue, Mistake

ROOT = Path(__file__).resolve().parent.parent
F = torch.nn.functional

MISTAKES = [
    pytest.param(name, index, id=f"{name}-{index}")
    for name, catalogue in CATALOGUES.items()
    for index in range(len(catalogue.mistakes))
]


def text(report: object) -> str:
    return " ".join(str(report).split())


def _right(name: str):
    """The right answer of an exercise, as a function of the candidate's arguments."""
    catalogue = CATALOGUES[name]
    if name in LAYERS:
        if name == "lin_out_in":

            def lin_out_in(grad_out, x, w, b):
                grad_x, grad_w, grad_b = fn.lin_backward(grad_out, x, w.T, b)
                return grad_x, grad_w.T, grad_b

            return lin_out_in
        return getattr(fn, f"{name}_backward")
    example = catalogue.example()
    if catalogue.kind == "value":
        # The reference itself; tests/test_exercises.py checks it against a
        # cross-entropy computed with Python's math at every point.
        return example.forward
    if example.along is not None:

        def jvp(*args):
            # Forward mode through double backward (the JVP is the derivative of
            # the VJP, a linear function of u, along v): an oracle of its own.
            first, *rest = args[:-1]
            x = first.clone().requires_grad_()
            out = example.forward(x, *rest)
            u = torch.zeros_like(out, requires_grad=True)
            (vjp,) = torch.autograd.grad(out, x, u, create_graph=True)
            return torch.autograd.grad(vjp, u, args[-1])[0]

        return jvp

    def gradients(*args):
        out = example.forward(*example.inputs)
        grad_out = None if out.ndim == 0 else args[0]
        inputs = args if grad_out is None else args[1:]
        found = autograd(example.forward, inputs, grad_out)
        return found[0] if len(found) == 1 else tuple(found)

    return gradients


def _as_candidate(name: str, mistake: Mistake):
    if not mistake.needs_right:
        return mistake.answer
    right = _right(name)
    return lambda *args: mistake.answer(right(*args), *args)


def grade(name: str, candidate):
    """The report on ``candidate`` as the exercise's grader call makes it."""
    if name in LAYERS:
        return check_backward(name, candidate)
    example = CATALOGUES[name].example()
    if CATALOGUES[name].kind == "value":
        return check_forward(
            example.forward,
            candidate,
            example.inputs,
            names=example.names,
            catalogue=name,
        )
    return check_gradient(
        example.forward,
        candidate,
        example.inputs,
        names=example.names,
        along=example.along,
        catalogue=name,
    )


@pytest.mark.parametrize(("name", "index"), MISTAKES)
def test_every_mistake_is_wrong_and_named(name, index):
    mistake = CATALOGUES[name].mistakes[index]
    report = grade(name, _as_candidate(name, mistake))
    # The mistake is a mistake: it differs from autograd's answer on the cases.
    assert not report.ok, f"{name}: {mistake.name!r} is a right answer"
    assert mistake.name in text(report), str(report)
    assert mistake.hint.split(";")[0] in text(report)
    assert all(len(line) <= 88 for line in str(report).splitlines())


def _perturbed(value):
    """A wrong answer outside any catalogue: every entry of the first gradient
    moved by a different amount (no factor, no spot)."""
    first = value[0] if isinstance(value, tuple) else value
    ramp = torch.arange(1, first.numel() + 1).reshape(first.shape).to(first)
    first = first + 0.37 * ramp
    return (first, *value[1:]) if isinstance(value, tuple) else first


@pytest.mark.parametrize("name", sorted(CATALOGUES))
def test_a_mistake_outside_the_catalogue_gets_no_catalogue_name(name):
    right = _right(name)
    report = grade(name, lambda *args: _perturbed(right(*args)))
    assert not report.ok
    for mistake in CATALOGUES[name].mistakes:
        assert mistake.name not in text(report), str(report)
    assert "does not match" in text(report)


@pytest.mark.parametrize("name", sorted(CATALOGUES))
def test_the_right_answer_is_ok_with_the_catalogue(name):
    assert grade(name, _right(name)).ok


# ----------------------------------------------------------------------------------
# Every exercise of the series has a catalogue
# ----------------------------------------------------------------------------------

STUB = re.compile(
    r"```\{python\}\n#\| label: exercise-(?P<label>[\w-]+)\n(?P<source>.*?)```", re.S
)


def exercise_stubs() -> list[tuple[str, str, str]]:
    found = []
    for post in sorted((ROOT / "posts").glob("*/index.qmd")):
        for match in STUB.finditer(post.read_text(encoding="utf-8")):
            found.append((post.parent.name, match["label"], match["source"]))
    return found


def catalogue_of(source: str) -> str | None:
    """The catalogue the stub's grader call names."""
    call = source.strip().rsplit("\n\n", 1)[-1]
    if call.startswith("exercise("):
        layer = re.match(r'exercise\(\s*"(\w+)"', call)
        return layer[1] if layer else None
    named = re.search(r'catalogue="([\w-]+)"', call)
    return named[1] if named else None


def test_the_stubs_are_found():
    assert len(exercise_stubs()) >= 24


@pytest.mark.parametrize(
    ("post", "label", "source"),
    [pytest.param(*stub, id=f"{stub[0]}-{stub[1]}") for stub in exercise_stubs()],
)
def test_every_exercise_has_a_catalogue_of_three_mistakes(post, label, source):
    name = catalogue_of(source)
    assert name is not None, (
        f"{post}: exercise-{label} names no catalogue: pass "
        f'catalogue="{label}" to exercise_gradient'
    )
    assert name in CATALOGUES, f"{post}: exercise-{label}: no catalogue {name!r}"
    catalogue: Catalogue = CATALOGUES[name]
    assert len(catalogue.mistakes) >= 3, f"{name}: {len(catalogue.mistakes)} mistakes"
    if name not in LAYERS:
        assert name == label, "a post's exercise names its catalogue after its cell"
        assert catalogue.post == f"post {int(post[:2])}"


@pytest.mark.parametrize("name", sorted(CATALOGUES))
def test_mistake_names_are_distinct_and_hints_point_at_a_post(name):
    mistakes = CATALOGUES[name].mistakes
    assert len({m.name for m in mistakes}) == len(mistakes)
    for mistake in mistakes:
        assert "post " in mistake.hint or name in ("mse", "relu"), mistake.hint
        assert "\n" not in mistake.hint and not mistake.hint.endswith(".")


def test_a_catalogue_that_does_not_fit_is_an_error():
    example = CATALOGUES["skip"].example()
    with pytest.raises(ValueError, match="catalogue of 'gram' does not fit"):
        check_gradient(
            example.forward,
            lambda x, w, t: (x, w, t),
            example.inputs,
            names=example.names,
            catalogue="gram",
        )
    with pytest.raises(ValueError, match="grades a value: check it with check_forward"):
        check_gradient(
            example.forward,
            lambda x, w, t: (x, w, t),
            example.inputs,
            catalogue="cross-entropy",
        )
    with pytest.raises(ValueError, match="grades a gradient: check it with check_grad"):
        check_forward(
            example.forward, lambda x, w, t: x, example.inputs, catalogue="skip"
        )
    with pytest.raises(ValueError, match="no catalogue 'skipp'"):
        check_gradient(
            example.forward,
            lambda x, w, t: (x, w, t),
            example.inputs,
            catalogue="skipp",
        )


# ----------------------------------------------------------------------------------
# The two misdiagnoses, and what is said of a mistake in no catalogue
# ----------------------------------------------------------------------------------


def test_the_jvp_is_graded_itself_and_forgetting_tanh_slope_is_named():
    example = CATALOGUES["jvp"].example()
    report = check_gradient(
        example.forward,
        lambda x, w, v: v @ w,
        example.inputs,
        names=example.names,
        along=example.along,
        catalogue="jvp",
    )
    words = text(report)
    assert "tanh's slope is missing" in words
    assert "constant factor" not in words and "×" not in words
    assert "jvp: " in words  # the (N, n_out) JVP itself, not a gradient of t


def test_a_jvp_mistake_in_no_catalogue_says_where_it_is_wrong():
    example = CATALOGUES["jvp"].example()
    report = check_gradient(
        example.forward,
        lambda x, w, v: 2 * (1 - torch.tanh(x @ w) ** 2) * (v @ w),
        example.inputs,
        along=example.along,
    )
    assert "jvp is right up to a constant factor: it is ×2" in text(report)
    wrong_shape = check_gradient(
        example.forward,
        lambda x, w, v: ((1 - torch.tanh(x @ w) ** 2) * (v @ w)).T,
        example.inputs,
        along=example.along,
    )
    assert "the output's shape" in text(wrong_shape)


def test_a_zero_d_gradient_is_never_a_constant_factor():
    # Post 5's old exercise: the JVP seen through a scalar t, without tanh's slope.
    gen = torch.Generator().manual_seed(5)
    x, w, v = (
        torch.randn(s, dtype=torch.float64, generator=gen)
        for s in [(3, 4), (4, 2), (3, 4)]
    )

    def moved_layer(t):
        return torch.tanh((x + t * v) @ w)

    report = check_gradient(
        moved_layer,
        lambda grad_out, t: (grad_out * (v @ w)).sum(),
        [torch.tensor(0.0, dtype=torch.float64)],
        names=["t"],
    )
    words = text(report)
    assert not report.ok and "grad_t does not match" in words
    assert "constant factor" not in words and "sign" not in words


def test_embedding_bug_9_is_repeated_indices_only():
    # Post 13, bug 9: with a tensor of indices, += keeps one write per row.
    def embedding_backward_buggy(grad_out, idx, table):
        grad_table = torch.zeros_like(table)
        grad_table[idx] += grad_out
        return grad_table

    words = text(check_backward("embedding", embedding_backward_buggy))
    assert "wrong only on rows looked up more than once" in words
    assert "grad[idx] += g assigns too" in words
    assert "batch of 1" not in words and "square" not in words


def test_a_mistake_in_no_catalogue_at_repeated_rows_is_described_not_named():
    # Averaging the lookups of a repeated row: wrong only there, but no assignment.
    def averaged(grad_out, idx, table):
        flat = idx.reshape(-1)
        rows = grad_out.reshape(-1, table.shape[1])
        total = torch.zeros_like(table).index_add_(0, flat, rows)
        counts = torch.bincount(flat, minlength=table.shape[0]).clamp_min(1)
        return total / counts[:, None].to(table.dtype)

    words = text(check_backward("embedding", averaged))
    assert "wrong only on rows looked up more than once" in words
    assert "assigns too" not in words and "batch of 1" not in words


def test_the_general_description_says_which_rows_and_the_ratio():
    def backward(grad_out, x, w, b):
        grad_w = x.T @ grad_out
        grad_w[0] *= 3  # one row three times too large
        return grad_out @ w.T, grad_w, grad_out.sum(0)

    words = text(check_backward("lin", backward))
    assert "grad_w does not match" in words and "only in rows 0 of" in words
    assert "on those entries it is ×3 the right answer" in words


def test_a_factor_that_fits_only_some_cases_is_not_claimed():
    # Right up to ×2 on the batch of 1 (by coincidence), wrong in general elsewhere.
    def backward(grad_out, x, w, b):
        grad_x, grad_w, grad_b = fn.lin_backward(grad_out, x, w, b)
        if x.shape[0] == 1:
            return grad_x, grad_w, 2 * grad_b
        return grad_x, grad_w, grad_b + torch.arange(grad_b.numel()).to(grad_b)

    words = text(check_backward("lin", backward))
    assert "constant factor" not in words and "does not match" in words


def _heading_words(line: str) -> str:
    return re.sub(r"[`$\\]", "", line.lstrip("#").split("{#")[0]).strip()


@pytest.mark.parametrize("name", sorted(CATALOGUES))
def test_the_sections_the_hints_quote_exist(name):
    # A hint says "see '<section>' in post N": the post must have that heading.
    for hint in [m.hint for m in CATALOGUES[name].mistakes]:
        for title, number in re.findall(r"(?:see|and) '(.+?)' in post (\d+)", hint):
            (post,) = (ROOT / "posts").glob(f"{int(number):02d}-*/index.qmd")
            headings = {
                _heading_words(line)
                for line in post.read_text(encoding="utf-8").splitlines()
                if line.startswith("#")
            }
            assert _heading_words(title) in headings, f"{title!r} in {post.parent.name}"


@pytest.mark.parametrize(
    "name",
    [
        "layernorm",
        "batchnorm-eval",
        "conv2d",
        "attention",
        "self-attention",
        "bag-of-words",
        "tanh",
        "divide",
        "cross-entropy",
        "weight-tying",
    ],
)
def test_the_catalogues_that_had_gaps_hold_six_mistakes(name):
    # Every one of them is graded as wrong and named by the test above.
    assert len(CATALOGUES[name].mistakes) >= 6


def test_every_post_exercise_is_checked_at_several_points():
    for name in CATALOGUES:
        if name in LAYERS:
            continue
        report = grade(name, _right(name))
        assert report.ok and "more points (other shapes and values)" in text(report), (
            name
        )
