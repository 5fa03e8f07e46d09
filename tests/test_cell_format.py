"""The posts' Python cells are formatted like the library (ruff, pyproject.toml).

``python scripts/format_cells.py`` reformats them; this checks that nothing is
left to do (tests/test_layout.py checks that every line fits the code column).
"""

from __future__ import annotations

import format_cells
import pytest

from site_sources import ROOT, page_name, pages_with_code

# The posts, and every other page with Python cells.
PAGES = pages_with_code()


@pytest.mark.parametrize("post", PAGES, ids=[page_name(p) for p in PAGES])
def test_cells_are_formatted(post):
    results = format_cells.format_post(post, write=False)
    unparsable = [f"line {r.line}: {r.error}" for r in results if r.error]
    assert not unparsable, f"ruff cannot parse these cells: {unparsable}"
    changed = [r.line for r in results if r.changed]
    assert not changed, (
        f"{page_name(post)}: the cells at lines {changed} are not formatted; "
        f"run: python scripts/format_cells.py {post.relative_to(ROOT)}"
    )


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
