"""Every post runs top to bottom in a fresh Jupyter kernel, cleanly and quickly, and
so does every other page with Python cells (``site_sources.pages_with_code``).

The ``.qmd`` is read with jupytext's ``Rmd`` reader, which understands Quarto's
```` ```{python} ```` cells (jupytext's ``qmd`` reader would need Quarto itself), and
executed with nbclient in the post's own folder. Readers see every output, so a
cell that raises, writes to stderr or emits a warning fails the test.

Cells with ``#| eval: false`` are skipped, as Quarto skips them: an exercise's stub
(``#| label: exercise-<name>``) is one, and its worked solution
(``#| label: solution-<name>``) runs in its place. After the post has run, each
stub is run in the same kernel, as written, and must stop with ``ExerciseNotDone``
(so an exercise cannot be pre-solved), and each solution's last expression must
be a grader report that is ok. CONTRIBUTING.md ("Exercises") describes the cells.
"""

from __future__ import annotations

import ast
import base64
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import jupytext
import nbformat
import psutil
import pytest
import render_site
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from site_sources import ROOT, page_name, pages_with_code, post_paths

# Each post must run in seconds on a CPU. The bound is on the kernel's processor time
# (all its threads, on up to 2 cores), not on the clock, so that a machine busy with
# other work does not fail it; scripts/bench_render.py reports the clock time.
POST_TIME_BUDGET_S = 60
POST_CPU_BUDGET_S = 2 * POST_TIME_BUDGET_S
CELL_TIMEOUT_S = 120

POSTS = post_paths()
# Posts, and the other pages whose cells run as a post's do.
PAGES_WITH_CODE = pages_with_code()

OPTION_LINE = re.compile(r"^#\|\s*([\w-]+)\s*:\s*(.*?)\s*$")


def post_notebook(path) -> nbformat.NotebookNode:
    nb = jupytext.reads(path.read_text(encoding="utf-8"), fmt="Rmd")
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


def cell_options(cell) -> dict[str, str]:
    """The ``#| key: value`` lines at the top of a code cell, quotes removed."""
    options = {}
    for line in cell.source.splitlines():
        match = OPTION_LINE.match(line)
        if not match:
            break
        options[match.group(1)] = match.group(2).strip("\"'")
    return options


def is_skipped(cell) -> bool:
    return cell.cell_type == "code" and cell_options(cell).get("eval") == "false"


def code_cells(nb):
    return [(i, cell) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]


def describe(cell, number: int) -> str:
    first_line = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
    return f"code cell {number} (starting {first_line!r})"


@dataclass
class Exercise:
    name: str
    stub: nbformat.NotebookNode | None = None
    solution: nbformat.NotebookNode | None = None
    problems: list[str] = field(default_factory=list)


def _last_call(source: str) -> str | None:
    """The name of the function the cell's last statement calls, if it is a call."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return None
    last = body[-1] if body else None
    if isinstance(last, ast.Expr) and isinstance(last.value, ast.Call):
        function = last.value.func
        if isinstance(function, ast.Name):
            return function.id
    return None


def exercise_cells(nb) -> list[Exercise]:
    """The post's exercises, in order, each with its stub and solution cell.

    ``problems`` lists what breaks the contract of CONTRIBUTING.md ("Exercises"):
    a stub that would run on the page, that does not raise NotImplementedError or
    does not end with the grader call; a solution that is missing, comes before
    its stub, is not folded under "Solution" or does not end with a report.
    """
    exercises: dict[str, Exercise] = {}
    order: dict[str, tuple[int, int]] = {}
    for index, cell in code_cells(nb):
        label = cell_options(cell).get("label", "")
        kind, _, name = label.partition("-")
        if kind not in ("exercise", "solution") or not name:
            continue
        exercise = exercises.setdefault(name, Exercise(name))
        if getattr(exercise, "stub" if kind == "exercise" else "solution") is not None:
            exercise.problems.append(f"two cells are labelled {label}")
        setattr(exercise, "stub" if kind == "exercise" else "solution", cell)
        order.setdefault(name, (-1, -1))
        stub_at, solution_at = order[name]
        order[name] = (index, solution_at) if kind == "exercise" else (stub_at, index)

    for name, exercise in exercises.items():
        stub, solution = exercise.stub, exercise.solution
        if stub is None:
            exercise.problems.append(f"solution-{name} has no exercise-{name} stub")
            continue
        options = cell_options(stub)
        if options.get("eval") != "false":
            exercise.problems.append(f"exercise-{name} lacks `#| eval: false`")
        if "raise NotImplementedError(" not in stub.source:
            exercise.problems.append(
                f"exercise-{name} does not raise NotImplementedError"
            )
        if _last_call(stub.source) not in _CHECKS:
            exercise.problems.append(
                f"exercise-{name} does not end with exercise(...), "
                "exercise_gradient(...) or exercise_forward(...)"
            )
        if solution is None:
            exercise.problems.append(f"exercise-{name} has no solution-{name} cell")
            continue
        options = cell_options(solution)
        if order[name][1] < order[name][0]:
            exercise.problems.append(f"solution-{name} comes before its stub")
        if (
            options.get("code-fold") != "true"
            or options.get("code-summary") != "Solution"
        ):
            exercise.problems.append(
                f"solution-{name} needs `#| code-fold: true` and "
                '`#| code-summary: "Solution"`'
            )
        if options.get("eval") == "false":
            exercise.problems.append(f"solution-{name} must run (no `#| eval: false`)")
        if _last_call(solution.source) not in _CHECKS.values():
            exercise.problems.append(
                f"solution-{name} does not end with check_backward(...), "
                "check_gradient(...) or check_forward(...)"
            )
        elif (
            _last_call(stub.source) in _CHECKS
            and _last_call(solution.source) != _CHECKS[str(_last_call(stub.source))]
        ):
            exercise.problems.append(
                f"solution-{name} ends with {_last_call(solution.source)}(...) but its "
                f"stub with {_last_call(stub.source)}(...): the solution makes the "
                f"stub's check, {_CHECKS[str(_last_call(stub.source))]}(...)"
            )
    return list(exercises.values())


# What a stub's last line calls, and the check its solution ends with.
_CHECKS = {
    "exercise": "check_backward",
    "exercise_gradient": "check_gradient",
    "exercise_forward": "check_forward",
}


@dataclass
class Execution:
    """What running a post, then its stubs, in one kernel gave."""

    nb: nbformat.NotebookNode
    error: str | None = None
    elapsed: float = 0.0
    cpu_seconds: float = 0.0
    exercise_failures: list[str] = field(default_factory=list)


_EXECUTED: dict[Path, Execution] = {}

_PROBE = """\
from backprop.exercises import Report as _Report
_shown = Out.get({count})
assert isinstance(_shown, _Report), (
    "its last expression is a " + type(_shown).__name__ + ", not a grader report")
assert _shown.ok, "its report is not ok:\\n" + str(_shown)
"""


def _run_extra(client, nb, source: str) -> CellExecutionError | None:
    cell = nbformat.v4.new_code_cell(source)
    nb.cells.append(cell)
    try:
        client.execute_cell(cell, len(nb.cells) - 1)
    except CellExecutionError as error:
        return error
    return None


def _check_exercises(client, nb, exercises: list[Exercise]) -> list[str]:
    failures = []
    for exercise in exercises:
        if exercise.stub is None or exercise.solution is None:
            continue  # reported by test_exercise_cells_follow_the_contract
        counts = [
            o.get("execution_count")
            for o in exercise.solution.get("outputs", [])
            if o.get("output_type") == "execute_result"
        ]
        if not counts:
            failures.append(f"solution-{exercise.name} shows no report (no result)")
        else:
            error = _run_extra(client, nb, _PROBE.format(count=counts[0]))
            if error is not None:
                failures.append(f"solution-{exercise.name}: {error.evalue}")
        error = _run_extra(client, nb, exercise.stub.source)
        if error is None:
            failures.append(
                f"exercise-{exercise.name}, run as written, is solved: the stub must "
                "stop with ExerciseNotDone"
            )
        elif error.ename != "ExerciseNotDone":
            failures.append(
                f"exercise-{exercise.name} stopped with {error.ename}: {error.evalue} "
                "instead of ExerciseNotDone"
            )
    return failures


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def execute_post(post: Path) -> Execution:
    """Run a post (skipping eval: false cells), then its stubs; once per session."""
    if post in _EXECUTED:
        return _EXECUTED[post]
    nb = post_notebook(post)
    exercises = exercise_cells(nb)
    nb.cells = [cell for cell in nb.cells if not is_skipped(cell)]
    execution = Execution(nb)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(post.parent)}},
    )
    with client.setup_kernel():
        kernel = psutil.Process(client.km.provisioner.process.pid)
        started = time.perf_counter()
        cpu_started = _cpu_seconds(kernel)
        try:
            for index, cell in enumerate(list(nb.cells)):
                client.execute_cell(cell, index)
        except CellExecutionError as error:
            execution.error = str(error)
        execution.elapsed = time.perf_counter() - started
        execution.cpu_seconds = _cpu_seconds(kernel) - cpu_started
        if execution.error is None:
            execution.exercise_failures = _check_exercises(client, nb, exercises)
    _EXECUTED[post] = execution
    return execution


def test_there_are_posts():
    assert POSTS, "no posts found under posts/*/index.qmd"


def test_every_page_the_render_executes_is_executed_here():
    # scripts/render_site.py decides, from the sources, which pages have cells to run
    # when the site renders: each of them must run here too, post or not.
    rendered = render_site.every_page_with_code(ROOT, render_site.qmd_files(ROOT))
    tested = [page.relative_to(ROOT).as_posix() for page in PAGES_WITH_CODE]
    assert sorted(tested) == rendered, (
        "the pages the render executes and the pages test_post_executes_cleanly "
        f"runs differ: {sorted(set(rendered) ^ set(tested))}"
    )


@pytest.mark.slow
@pytest.mark.timeout(POST_TIME_BUDGET_S * 3)
@pytest.mark.parametrize(
    "post", PAGES_WITH_CODE, ids=[page_name(p) for p in PAGES_WITH_CODE]
)
def test_post_executes_cleanly(post):
    name = page_name(post)
    execution = execute_post(post)
    nb = execution.nb
    cells = code_cells(nb)
    assert cells, f"{name} has no Python cells"
    if execution.error is not None:
        failing = next(
            (
                (number, cell)
                for number, (_, cell) in enumerate(cells, start=1)
                if any(o.get("output_type") == "error" for o in cell.get("outputs", []))
            ),
            None,
        )
        where = describe(failing[1], failing[0]) if failing else "a code cell"
        pytest.fail(f"{name}: {where} raised:\n{execution.error}", pytrace=False)

    problems = []
    for number, (_, cell) in enumerate(cells, start=1):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                problems.append(
                    f"{describe(cell, number)} wrote to stderr:\n"
                    f"{output.get('text', '')}"
                )
            text = (
                output.get("text", "") if output.get("output_type") == "stream" else ""
            )
            if "Warning" in text:
                problems.append(f"{describe(cell, number)} printed a warning:\n{text}")
            problems += _lines_too_wide(output, describe(cell, number))
            problems += _figure_too_wide(output, describe(cell, number))
    assert not problems, f"{name}:\n" + "\n\n".join(problems)
    assert execution.cpu_seconds < POST_CPU_BUDGET_S, (
        f"{name} took {execution.cpu_seconds:.1f} s of processor time "
        f"({execution.elapsed:.1f} s on the clock); posts must run in seconds "
        f"(budget {POST_CPU_BUDGET_S} s of processor time: {POST_TIME_BUDGET_S} s "
        "on 2 cores)"
    )


# What a cell prints lands in a <pre> as wide as the code column (tests/test_layout.py).
OUTPUT_COLUMN = 88


# A figure may be no wider than the column: FIGURE_WIDTH at the style's dpi, plus what
# a tight bounding box adds for a label that sticks out (up to the column's 800 px).
FIGURE_MAX_PX = 800


def _figure_too_wide(output, where: str) -> list[str]:
    png = output.get("data", {}).get("image/png")
    if not png:
        return []
    width = int.from_bytes(base64.b64decode(png)[16:20], "big")  # the PNG's IHDR
    if width <= FIGURE_MAX_PX:
        return []
    return [
        f"{where} draws a figure {width} px wide, wider than the column "
        f"({FIGURE_MAX_PX} px): a label sticks out; shorten it or give it room"
    ]


def _lines_too_wide(output, where: str) -> list[str]:
    if output.get("output_type") == "stream":
        text = output.get("text", "")
    elif output.get("output_type") in ("execute_result", "display_data"):
        data = output.get("data", {})
        # Markdown and HTML outputs become tables that wrap; plain text does not.
        if "text/markdown" in data or "text/html" in data or "image/png" in data:
            return []
        text = data.get("text/plain", "")
    else:
        return []
    return [
        f"{where} printed a line of {len(line)} characters (at most {OUTPUT_COLUMN} "
        f"fit the column): {line[:60]!r}…"
        for line in text.splitlines()
        if len(line) > OUTPUT_COLUMN
    ]


# Post 1 comes before post 2 defines the derivative: its exercises grade a value
# (exercise_forward / check_forward), never a gradient. Every post has at least one.
BEFORE_DERIVATIVES = {"01-log-rules"}


@pytest.mark.parametrize("post", POSTS, ids=[p.parent.name for p in POSTS])
def test_every_post_has_an_exercise(post):
    exercises = exercise_cells(post_notebook(post))
    assert exercises, (
        f"{post.parent.name} has no exercise: add a stub and a solution "
        "(CONTRIBUTING.md, Exercises)"
    )
    if post.parent.name in BEFORE_DERIVATIVES:
        graded = {
            _last_call(cell.source)
            for exercise in exercises
            for cell in (exercise.stub, exercise.solution)
            if cell is not None
        }
        assert graded <= {"exercise_forward", "check_forward"}, (
            f"{post.parent.name} comes before derivatives are defined (post 2): its "
            f"exercises grade a value (exercise_forward, check_forward), not {graded}"
        )


@pytest.mark.parametrize("post", POSTS, ids=[p.parent.name for p in POSTS])
def test_exercise_cells_follow_the_contract(post):
    problems = [
        p for exercise in exercise_cells(post_notebook(post)) for p in exercise.problems
    ]
    assert not problems, f"{post.parent.name}:\n" + "\n".join(problems)


@pytest.mark.slow
@pytest.mark.timeout(POST_TIME_BUDGET_S * 3)
@pytest.mark.parametrize("post", POSTS, ids=[p.parent.name for p in POSTS])
def test_exercise_stubs_are_unsolved_and_solutions_are_ok(post):
    execution = execute_post(post)
    if execution.error is not None:
        pytest.skip("the post itself fails: see test_post_executes_cleanly")
    assert not execution.exercise_failures, f"{post.parent.name}:\n" + "\n".join(
        execution.exercise_failures
    )


# ----------------------------------------------------------------------------------
# The checks above, on a small post written here, so they are seen to fail
# ----------------------------------------------------------------------------------

_SETUP = """\
```{python}
import torch
from backprop.exercises import check_backward, exercise
```
"""

_STUB = """\
```{python}
#| label: exercise-relu
#| eval: false
def my_relu_backward(grad_out, x):
    raise NotImplementedError("hint: the slope is 1 where x > 0")

exercise("relu", my_relu_backward)
```
"""

_SOLUTION = """\
```{python}
#| label: solution-relu
#| code-fold: true
#| code-summary: "Solution"
def my_relu_backward(grad_out, x):
    return grad_out * (x > 0)

check_backward("relu", my_relu_backward)
```
"""


def _write_post(folder: Path, *cells: str) -> Path:
    path = folder / "index.qmd"
    path.write_text('---\ntitle: "t"\n---\n\n' + "\n".join(cells), encoding="utf-8")
    return path


def test_exercise_cells_are_parsed_and_checked():
    nb = jupytext.reads(
        '---\ntitle: "t"\n---\n\n' + _SETUP + _STUB + _SOLUTION, fmt="Rmd"
    )
    (relu,) = exercise_cells(nb)
    assert relu.name == "relu" and relu.problems == []
    assert is_skipped(relu.stub) and not is_skipped(relu.solution)
    assert cell_options(relu.solution)["code-summary"] == "Solution"

    unfolded = _SOLUTION.replace("#| code-fold: true\n", "")
    reversed_cells = _SETUP + _SOLUTION.replace("check_backward(", "print(") + _STUB
    nb = jupytext.reads(reversed_cells, fmt="Rmd")
    problems = exercise_cells(nb)[0].problems
    assert any("comes before its stub" in p for p in problems)
    assert any("does not end with check_backward" in p for p in problems)
    nb = jupytext.reads(
        _SETUP + _STUB.replace("#| eval: false\n", "") + unfolded, fmt="Rmd"
    )
    problems = exercise_cells(nb)[0].problems
    assert any("lacks `#| eval: false`" in p for p in problems)
    assert any("code-fold: true" in p for p in problems)
    assert exercise_cells(jupytext.reads(_SETUP, fmt="Rmd")) == []
    # A stub graded one way and a solution checked another.
    mismatched = _SOLUTION.replace(
        'check_backward("relu", ', "check_forward(torch.relu, "
    )
    nb = jupytext.reads(_SETUP + _STUB + mismatched, fmt="Rmd")
    problems = exercise_cells(nb)[0].problems
    assert any(
        "the solution makes the stub's check, check_backward" in p for p in problems
    )


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_pre_solved_stub_and_a_wrong_solution_are_caught(tmp_path):
    (tmp_path / "good").mkdir()
    execution = execute_post(_write_post(tmp_path / "good", _SETUP, _STUB, _SOLUTION))
    assert execution.error is None and execution.exercise_failures == []

    (tmp_path / "bad").mkdir()
    solved_stub = re.sub(
        r"raise NotImplementedError\(.*\)", "return grad_out * (x > 0)", _STUB
    )
    wrong_solution = _SOLUTION.replace("grad_out * (x > 0)", "grad_out * (x >= 0)")
    bad = _write_post(tmp_path / "bad", _SETUP, solved_stub, wrong_solution)
    failures = execute_post(bad).exercise_failures
    assert any("solution-relu: its report is not ok" in f for f in failures), failures
    assert any("exercise-relu, run as written, is solved" in f for f in failures), (
        failures
    )
