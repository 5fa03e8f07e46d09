"""The posts' Python cells are formatted like the library (ruff, pyproject.toml).

``python scripts/format_cells.py`` reformats them; this checks that nothing is
left to do, and that no line of a cell is wider than the site's code column.
"""

from __future__ import annotations

import sys

import pytest

from site_sources import ROOT, post_paths, python_cells

sys.path.insert(0, str(ROOT / "scripts"))
import format_cells  # scripts/ is not a package: imported by path

POSTS = post_paths()
COLUMN = 88


@pytest.mark.parametrize("post", POSTS, ids=[p.parent.name for p in POSTS])
def test_cells_are_formatted(post):
    results = format_cells.format_post(post, write=False)
    unparsable = [f"line {r.line}: {r.error}" for r in results if r.error]
    assert not unparsable, f"ruff cannot parse these cells: {unparsable}"
    changed = [r.line for r in results if r.changed]
    assert not changed, (
        f"{post.parent.name}: the cells at lines {changed} are not formatted; "
        f"run: python scripts/format_cells.py {post.relative_to(ROOT)}"
    )


@pytest.mark.parametrize("post", POSTS, ids=[p.parent.name for p in POSTS])
def test_cell_lines_fit_the_column(post):
    wide = [
        line
        for cell in python_cells(post)
        for line in cell.source.splitlines()
        # Quarto hides `#|` option lines (captions, alt text) from the page.
        if len(line) > COLUMN and not line.startswith("#|")
    ]
    assert not wide, f"{post.parent.name}: cell lines over {COLUMN} columns: {wide[:3]}"


def test_formatter_keeps_options_on_top_and_formats_code(tmp_path):
    post = tmp_path / "index.qmd"
    post.write_text(
        "Prose with `x=1`.\n\n```{python}\n#| label: fig-a\n#| echo: false\n"
        "x=[1,2 ,3]\nprint( x )\n```\n\nMore prose.\n",
        encoding="utf-8",
    )
    assert [r.changed for r in format_cells.format_post(post, write=False)] == [True]
    format_cells.format_post(post, write=True)
    assert post.read_text(encoding="utf-8") == (
        "Prose with `x=1`.\n\n```{python}\n#| label: fig-a\n#| echo: false\n"
        "x = [1, 2, 3]\nprint(x)\n```\n\nMore prose.\n"
    )
    assert [r.changed for r in format_cells.format_post(post, write=False)] == [False]
