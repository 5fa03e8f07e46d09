"""Every post runs top to bottom in a fresh Jupyter kernel, cleanly and quickly.

The ``.qmd`` is read with jupytext's ``Rmd`` reader, which understands Quarto's
```` ```{python} ```` cells (jupytext's ``qmd`` reader would need Quarto itself), and
executed with nbclient in the post's own folder. Readers see every output, so a
cell that raises, writes to stderr or emits a warning fails the test.
"""

from __future__ import annotations

import time

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from site_sources import post_paths

# Each post must run in seconds on a CPU; this bound leaves room for a slow CI machine.
POST_TIME_BUDGET_S = 60
CELL_TIMEOUT_S = 120

POSTS = post_paths()


def post_notebook(path) -> nbformat.NotebookNode:
    nb = jupytext.reads(path.read_text(encoding="utf-8"), fmt="Rmd")
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


def code_cells(nb):
    return [(i, cell) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]


def describe(cell, number: int) -> str:
    first_line = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
    return f"code cell {number} (starting {first_line!r})"


def test_there_are_posts():
    assert POSTS, "no posts found under posts/*/index.qmd"


@pytest.mark.slow
@pytest.mark.timeout(POST_TIME_BUDGET_S * 3)
@pytest.mark.parametrize("post", POSTS, ids=[p.parent.name for p in POSTS])
def test_post_executes_cleanly(post):
    nb = post_notebook(post)
    cells = code_cells(nb)
    assert cells, f"{post.parent.name} has no Python cells"
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(post.parent)}},
    )
    started = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as error:
        failing = next(
            (
                (number, cell)
                for number, (_, cell) in enumerate(cells, start=1)
                if any(o.get("output_type") == "error" for o in cell.get("outputs", []))
            ),
            None,
        )
        where = describe(failing[1], failing[0]) if failing else "a code cell"
        pytest.fail(f"{post.parent.name}: {where} raised:\n{error}", pytrace=False)
    elapsed = time.perf_counter() - started

    problems = []
    for number, (_, cell) in enumerate(cells, start=1):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                problems.append(
                    f"{describe(cell, number)} wrote to "
                    f"stderr:\n{output.get('text', '')}"
                )
            text = (
                output.get("text", "") if output.get("output_type") == "stream" else ""
            )
            if "Warning" in text:
                problems.append(f"{describe(cell, number)} printed a warning:\n{text}")
    assert not problems, f"{post.parent.name}:\n" + "\n\n".join(problems)
    assert elapsed < POST_TIME_BUDGET_S, (
        f"{post.parent.name} took {elapsed:.1f} s to execute; posts must run in "
        "seconds "
        f"(budget {POST_TIME_BUDGET_S} s)"
    )
