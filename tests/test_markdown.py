"""Every page's Markdown parses as intended: Pandoc (which Quarto runs) turns each page
into HTML,
and the HTML is checked for maths that did not become maths and tables that did not
become tables.

Needs ``pandoc`` on PATH (Debian: ``apt-get install pandoc``); skipped, saying so,
without it.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from site_sources import ROOT, site_pages

PANDOC = shutil.which("pandoc")
pytestmark = pytest.mark.skipif(
    PANDOC is None, reason="pandoc is not on PATH (Debian: apt-get install pandoc)"
)
PAGES = site_pages()


def visible_text(page) -> str:
    """The page's HTML as Pandoc renders it, without code and with every maths span
    replaced by MATH."""
    result = subprocess.run(
        [PANDOC, "--from", "markdown", "--to", "html", "--mathjax", str(page)],
        capture_output=True,
        text=True,
        check=True,
    )
    html = re.sub(r"<pre.*?</pre>|<code>.*?</code>", "", result.stdout, flags=re.S)
    html = re.sub(
        r'<span class="math (?:inline|display)">.*?</span>', "MATH", html, flags=re.S
    )
    return re.sub(r"<[^>]+>", "", html)


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_maths_and_tables_parse(page):
    text = visible_text(page)
    stray = [
        text[max(0, m.start() - 50) : m.start() + 50] for m in re.finditer(r"\$", text)
    ]
    assert not stray, (
        f"{page.relative_to(ROOT)}: a $ that is not maths (unbalanced or mis-spaced "
        f"$...$): {stray[:3]}"
    )
    rows = re.findall(r"^\s*\|.*\|\s*$", text, re.M)
    assert not rows, f"{page.relative_to(ROOT)}: a table that did not parse: {rows[:2]}"
    for label in re.finditer(r"\{#eq-[\w-]+\}", text):
        assert text[: label.start()].rstrip().endswith("MATH"), (
            f"{page.relative_to(ROOT)}: {label.group()} does not follow a $$ display "
            "block"
        )
