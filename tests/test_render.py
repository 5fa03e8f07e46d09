"""Render the whole site with the real Quarto CLI and check what it produced.

Quarto is not a Python package that pip can always install, so this module is
skipped, saying why, where ``quarto`` is not on PATH. Where it is, the site is
rendered into a temporary copy of the project (the working tree is left alone).
"""

from __future__ import annotations

import re

import pytest

from rendered_site import NO_QUARTO, QUARTO
from site_sources import labels_defined, post_paths, python_cells

pytestmark = [
    pytest.mark.quarto,
    pytest.mark.slow,
    pytest.mark.skipif(QUARTO is None, reason=NO_QUARTO),
]

POSTS = post_paths()


def test_render_succeeds(rendered_site):
    _, result = rendered_site
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"quarto render failed:\n{log[-5000:]}"
    assert not re.search(r"^\s*ERROR", log, re.M), (
        f"quarto render reported an error:\n{log[-5000:]}"
    )
    unresolved = re.findall(r"Unable to resolve crossref @[\w-]+", log)
    assert not unresolved, f"quarto could not resolve cross-references: {unresolved}"


def test_site_pages_exist(rendered_site):
    site, _ = rendered_site
    for page in ("index.html", "about.html", "index.xml"):
        assert (site / page).is_file(), f"_site/{page} was not produced"


def test_listing_links_every_post(rendered_site):
    site, _ = rendered_site
    listing = (site / "index.html").read_text(encoding="utf-8")
    for post in POSTS:
        assert f"posts/{post.parent.name}/index.html" in listing, (
            f"the listing does not link {post.parent.name}"
        )


@pytest.mark.parametrize("post", POSTS, ids=[p.parent.name for p in POSTS])
def test_post_page(rendered_site, post):
    site, _ = rendered_site
    page = site / "posts" / post.parent.name / "index.html"
    assert page.is_file(), f"{page} was not produced"
    text = page.read_text(encoding="utf-8")
    assert (
        "cell-output-error" not in text
        and "Traceback (most recent call last)" not in text
    )
    assert "cell-output-stderr" not in text, f"{post.parent.name} shows stderr output"
    assert 'name="description"' in text, (
        f"{post.parent.name} has no <meta name=description>"
    )
    for cell in python_cells(post):
        label = cell.options.get("label")
        if not (isinstance(label, str) and label.startswith("fig-")):
            continue
        figure = re.search(rf'id="{re.escape(label)}".*?(<img[^>]*>)', text, re.S)
        assert figure, f"{post.parent.name}: figure {label} has no image in the page"
        img = figure.group(1)
        src = re.search(r'src="([^"]+)"', img).group(1)
        if not src.startswith("data:"):
            assert (page.parent / src).is_file(), (
                f"{post.parent.name}: {label} image {src} is missing"
            )
        assert re.search(r'alt="[^"]+"', img), (
            f"{post.parent.name}: figure {label} has no alt text"
        )
    for label in (lbl for lbl in labels_defined(post) if lbl.startswith("eq-")):
        assert f'id="{label}"' in text, (
            f"{post.parent.name}: equation {label} is not numbered in the page"
        )
    assert (page.parent / "index.ipynb").is_file(), (
        f"{post.parent.name} does not offer its notebook"
    )
