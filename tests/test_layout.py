"""What keeps every page inside its column, checked in the sources (no Quarto needed).

The site's code column fits ``CODE_COLUMN`` characters (``styles.css`` sets the code
font size for it), so no line of a post's cells may be longer; the lines the cells
print are checked when the posts run (``test_posts.py``). Figures take their width
from ``backprop.plots``; each post executes once per render.
"""

from __future__ import annotations

import re

import pytest
import yaml

from site_sources import ROOT, page_name, pages_with_code, python_cells

CODE_COLUMN = 88
# The posts, and every other page with Python cells.
PAGES = pages_with_code()
PAGE_IDS = [page_name(p) for p in PAGES]


@pytest.mark.parametrize("post", PAGES, ids=PAGE_IDS)
def test_code_lines_fit_the_column(post):
    long_lines = [
        f"  {len(line)} chars: {line.strip()[:60]}…"
        for cell in python_cells(post)
        for line in cell.source.splitlines()
        # Quarto hides `#|` option lines from the page.
        if len(line) > CODE_COLUMN and not line.startswith("#|")
    ]
    assert not long_lines, (
        f"{page_name(post)}: code lines longer than {CODE_COLUMN} characters run "
        "out of the column:\n" + "\n".join(long_lines)
    )


@pytest.mark.parametrize("post", PAGES, ids=PAGE_IDS)
def test_figures_take_their_size_from_the_shared_style(post):
    for cell in python_cells(post):
        code = "\n".join(
            line
            for line in cell.source.splitlines()
            if not line.lstrip().startswith("#")
        )
        assert "figsize" not in code, (
            f"{page_name(post)}: a figure sets figsize; use backprop.plots.subplots("
            "height=...), whose width fits the column"
        )
        assert not re.search(r"\bplt\.(subplots|figure)\(", code), (
            f"{page_name(post)}: draw with backprop.plots.subplots, not plt directly"
        )


def test_posts_execute_once_per_render():
    # A second Quarto format (ipynb) would execute every post again; the notebook is
    # built from the source by the post-render step instead.
    meta = yaml.safe_load(
        (ROOT / "posts" / "_metadata.yml").read_text(encoding="utf-8")
    )
    formats = meta.get("format", {})
    assert set(formats) == {"html"}, (
        f"posts render to one format only, not {set(formats)}"
    )
    links = formats["html"].get("other-links", [])
    assert any(link.get("href") == "index.ipynb" for link in links), (
        "every post links to its notebook"
    )
    project = yaml.safe_load((ROOT / "_quarto.yml").read_text(encoding="utf-8"))[
        "project"
    ]
    post_render = project.get("post-render")
    steps = post_render if isinstance(post_render, list) else [post_render]
    assert "scripts/post_render.py" in steps


def test_the_code_font_size_is_set_for_the_column():
    css = (ROOT / "styles.css").read_text(encoding="utf-8")
    assert re.search(r"div\.sourceCode pre[^{]*\{[^}]*font-size", css, re.S)
    assert re.search(r"img\.figure-img\s*\{[^}]*max-width:\s*100%", css, re.S)
