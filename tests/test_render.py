"""Render the whole site with the real Quarto CLI and check what it produced.

Quarto is not a Python package that pip can always install, so this module is
skipped, saying why, where ``quarto`` is not on PATH. Where it is, the site is
rendered into a temporary copy of the project (the working tree is left alone).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from render_site import EXECUTION, LOG_LINE, generated_pages

from rendered_site import NO_QUARTO, QUARTO
from site_sources import (
    front_matter,
    labels_defined,
    post_paths,
    python_cells,
    top_level_pages,
)

pytestmark = [
    pytest.mark.quarto,
    pytest.mark.slow,
    pytest.mark.skipif(QUARTO is None, reason=NO_QUARTO),
]

POSTS = post_paths()
ROOT = Path(__file__).resolve().parents[1]


def test_render_succeeds(rendered_site):
    _, result = rendered_site
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"quarto render failed:\n{log[-5000:]}"
    assert not re.search(LOG_LINE + r"\s*ERROR", log, re.M), (
        f"quarto render reported an error:\n{log[-5000:]}"
    )
    unresolved = re.findall(r"Unable to resolve crossref @[\w-]+", log)
    assert not unresolved, f"quarto could not resolve cross-references: {unresolved}"


# A warning as Quarto (WARN:), pandoc ([WARNING]), Jupyter (WARNING |) or Python
# (UserWarning: ...) print it.
WARNING = re.compile(r"^.*(?:\bWARN(?:ING)?\b|\b\w+Warning:).*$", re.M)


def test_the_render_log_has_no_warning(rendered_site):
    # scripts/render_site.py drops the few that are not the site's fault, each
    # explained in its HARMLESS_WARNINGS; any other is a new one to fix (or explain).
    _, result = rendered_site
    warnings = WARNING.findall(result.stdout + result.stderr)
    assert not warnings, "the render log has warnings:\n" + "\n".join(
        sorted(set(warnings))[:20]
    )


def test_site_pages_exist(rendered_site):
    site, _ = rendered_site
    pages = [p.with_suffix(".html").name for p in top_level_pages()]
    for page in (*pages, "index.xml"):
        assert (site / page).is_file(), f"_site/{page} was not produced"


def assert_listing_in_series_order(site: Path) -> None:
    listing = (site / "index.html").read_text(encoding="utf-8")
    linked = re.findall(
        r'class="series-link[^"]*" href="[./]*posts/([\w-]+)/index\.html"', listing
    )
    assert linked == [post.parent.name for post in POSTS], (
        f"the listing's order: {linked}"
    )
    first = re.search(r'<span class="series-number">1\.</span>\s*([^<]+)<', listing)
    assert first and first.group(1).strip() == front_matter(POSTS[0])["title"]
    headings = re.findall(
        r'<h2[^>]*class="[^"]*series-part-title[^"]*"[^>]*>([^<]+)<', listing
    )
    assert [h.split(":")[0] for h in headings] == ["Part 1", "Part 2"]
    feed = (site / "index.xml").read_text(encoding="utf-8")
    assert feed.count("<pubDate>") >= len(POSTS), (
        "the RSS feed carries every post's date"
    )


def test_listing_shows_the_series_in_reading_order(rendered_site):
    site, _ = rendered_site
    assert_listing_in_series_order(site)


# Hosts a page may load from: its own, and MathJax's CDN.
ALLOWED_HOSTS = {"cdn.jsdelivr.net"}
COLUMN_PX = 800


def _pages(site):
    return sorted(p for p in site.rglob("*.html") if "site_libs" not in p.parts)


def test_no_page_requests_a_third_party_host(rendered_site):
    site, _ = rendered_site
    problems = []
    for page in _pages(site):
        text = page.read_text(encoding="utf-8")
        # What the browser fetches by itself: scripts, stylesheets, images, fonts.
        tags = re.findall(r"<(?:script|link|img|source|iframe)\b[^>]*>", text)
        for tag in tags:
            if re.search(r'\brel="(?:[^"]*\s)?(?:canonical|alternate)\b', tag):
                continue  # links for crawlers and feed readers, not requests
            for url in re.findall(r'\b(?:src|href)="(https?:)?//([^/"]+)', tag):
                host = url[1]
                if host not in ALLOWED_HOSTS:
                    problems.append(f"{page.relative_to(site)}: {tag[:120]}")
        if "@import url(" in text:
            problems.append(f"{page.relative_to(site)}: inline @import")
    for css in site.rglob("*.css"):
        for host in re.findall(
            r"@import url\([\"']?https?://([^/\"')]+)", css.read_text()
        ):
            problems.append(f"{css.relative_to(site)} imports from {host}")
    assert not problems, "third-party requests:\n" + "\n".join(problems[:20])


def test_the_site_has_a_favicon(rendered_site):
    site, _ = rendered_site
    for page in (
        site / "index.html",
        site / "posts" / POSTS[0].parent.name / "index.html",
    ):
        icon = re.search(
            r'<link href="([^"]+)" rel="icon"', page.read_text(encoding="utf-8")
        )
        assert icon, f"{page.name} names no favicon"
        assert (page.parent / icon.group(1)).is_file()


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
        width = re.search(r'width="(\d+)', img)
        assert width is None or int(width.group(1)) <= COLUMN_PX, (
            f"{post.parent.name}: figure {label} is {width.group(1)} px wide, "
            "wider than the column"
        )
    for label in (lbl for lbl in labels_defined(post) if lbl.startswith("eq-")):
        assert f'id="{label}"' in text, (
            f"{post.parent.name}: equation {label} is not numbered in the page"
        )
    assert (page.parent / "index.ipynb").is_file(), (
        f"{post.parent.name} does not offer its notebook"
    )
    assert 'href="index.ipynb"' in text, (
        f"{post.parent.name} does not link its notebook"
    )


def test_every_post_executes_once(rendered_site):
    _, result = rendered_site
    log = result.stdout + result.stderr
    executions = len(EXECUTION.findall(log))
    assert executions == len(POSTS), f"{executions} executions for {len(POSTS)} posts"


def test_nothing_in_a_head_blocks_the_first_paint_but_the_light_theme(rendered_site):
    site, _ = rendered_site
    for page in _pages(site):
        head = page.read_text(encoding="utf-8").split("</head>")[0]
        for script in re.findall(r"<script\b[^>]*\bsrc=[^>]*>", head):
            assert re.search(r"\b(defer|async)\b|type=\"module\"", script), (
                f"{page.relative_to(site)}: {script} blocks rendering"
            )
        for sheet in re.findall(r"<link\b[^>]*quarto-color-alternate[^>]*>", head):
            assert 'rel="disabled-stylesheet"' in sheet, (
                f"{page.relative_to(site)}: the dark theme's {sheet} blocks rendering"
            )
    icons = site / "site_libs" / "bootstrap" / "bootstrap-icons.woff"
    assert icons.stat().st_size < 20_000, "the icon font holds only the icons in use"


EXPLORER_POSTS = [
    "02-chain-rule",
    "04-bias-broadcasting",
    "07-softmax-cross-entropy",
    "08-gradient-checking",
    "11-convolutions",
    "12-attention",
    "14-your-own-autograd",
]


@pytest.mark.parametrize("slug", EXPLORER_POSTS)
def test_explorer_pages_carry_ojs_cells(rendered_site, slug):
    site, _ = rendered_site
    text = (site / "posts" / slug / "index.html").read_text(encoding="utf-8")
    assert 'class="explorer"' in text, f"{slug}: the explorer's block is missing"
    assert re.search(r'id="ojs-cell-\d+"', text), f"{slug}: no OJS cells"
    assert '<script type="ojs-module-contents">' in text, f"{slug}: no OJS module"
    assert "quarto-ojs-runtime.js" in text, f"{slug}: no OJS runtime"
    # The modules the cells load are copied next to the site.
    for name in re.findall(r"assets/explorers/([\w-]+\.js)", text):
        assert (site / "assets" / "explorers" / name).is_file(), f"{slug}: {name}"


def test_explorer_modules_are_in_the_site(rendered_site):
    site, _ = rendered_site
    sources = sorted(p.name for p in (ROOT / "assets" / "explorers").glob("*.js"))
    copied = sorted(p.name for p in (site / "assets" / "explorers").glob("*.js"))
    assert copied == sources, f"_site/assets/explorers holds {copied}, not {sources}"


def comparable(path: Path, site: Path) -> bytes | object:
    """What of a site's file must be the same from one render to the next: all of
    it, but for the cell ids of a notebook (new on every render) and, in the sitemap,
    the dates of the pages the pre-render step writes anew (dated as written)."""
    if path.suffix == ".ipynb":
        notebook = json.loads(path.read_text(encoding="utf-8"))
        for cell in notebook["cells"]:
            cell.pop("id", None)
        return notebook
    if path.relative_to(site).as_posix() == "sitemap.xml":
        written = {
            Path(page).with_suffix(".html").as_posix() for page in generated_pages(ROOT)
        }
        text = path.read_text(encoding="utf-8")
        for page in written:
            text = re.sub(
                rf"(<loc>[^<]*/{re.escape(page)}</loc>\s*<lastmod>)[^<]*", r"\1", text
            )
        return text
    return path.read_bytes()


def test_the_site_is_the_one_a_plain_quarto_render_makes(rendered_site, tmp_path):
    """The render in copies (scripts/render_site.py: posts executed side by side,
    stand-ins for the pages a copy does not render) leaves the site that one
    `quarto render` of the same results leaves, file for file, byte for byte."""
    site, _ = rendered_site
    project = tmp_path / "project"
    shutil.copytree(site.parent, project, symlinks=True)
    plain = subprocess.run(
        [QUARTO, "render"],
        cwd=project,
        capture_output=True,
        text=True,
        env=dict(os.environ, QUARTO_PYTHON=sys.executable),
        timeout=1800,
    )
    assert plain.returncode == 0, plain.stderr[-3000:]
    assert "Executing '" not in plain.stdout + plain.stderr, "it took every result"
    ours = sorted(p.relative_to(site) for p in site.rglob("*") if p.is_file())
    theirs_site = project / "_site"
    theirs = sorted(
        p.relative_to(theirs_site) for p in theirs_site.rglob("*") if p.is_file()
    )
    assert ours == theirs, (
        f"only in ours: {sorted(set(ours) - set(theirs))[:10]}; "
        f"only in the plain render's: {sorted(set(theirs) - set(ours))[:10]}"
    )
    differ = [
        name.as_posix()
        for name in ours
        if comparable(site / name, site) != comparable(theirs_site / name, theirs_site)
    ]
    assert not differ, f"these differ from a plain render's: {differ[:20]}"


def test_a_re_render_covers_what_changed_and_nothing_else(rendered_site, tmp_path):
    """./scripts/render.sh renders nothing when nothing changed, and only the edited
    post (with the home page's listing) when one post changed; the site stays whole."""
    from rendered_site import render

    site, _ = rendered_site
    project = tmp_path / "project"
    shutil.copytree(site.parent, project, symlinks=True)
    site = project / "_site"
    pages = {page: page.stat().st_mtime_ns for page in _pages(site)}

    unchanged = render(project)
    assert unchanged.returncode == 0, unchanged.stderr[-3000:]
    assert "up to date" in unchanged.stdout
    assert {page: page.stat().st_mtime_ns for page in _pages(site)} == pages

    post = POSTS[0].relative_to(ROOT)
    sentence = "This sentence was added after the first render."
    with (project / post).open("a", encoding="utf-8") as source:
        source.write(f"\n{sentence}\n")
    edited = render(project)
    log = edited.stdout + edited.stderr
    assert edited.returncode == 0, log[-3000:]
    assert len(EXECUTION.findall(log)) == 1, "one post executes"
    page = site / post.with_suffix(".html")
    assert sentence in page.read_text(encoding="utf-8")
    rendered_again = {
        path.relative_to(site).as_posix()
        for path, mtime in pages.items()
        if path.stat().st_mtime_ns != mtime
    }
    assert rendered_again <= {post.with_suffix(".html").as_posix(), "index.html"}, (
        f"pages rendered again although they did not change: {sorted(rendered_again)}"
    )
    # The project-wide files still cover every page, and the edited one as it is now.
    assert_listing_in_series_order(site)
    search = json.loads((site / "search.json").read_text(encoding="utf-8"))
    indexed = {entry["href"].split("#")[0] for entry in search}
    assert indexed == {page.relative_to(site).as_posix() for page in pages}
    assert any(sentence in entry["text"] for entry in search)
    assert sentence in (site / "index.xml").read_text(encoding="utf-8")
    head = page.read_text(encoding="utf-8").split("</head>")[0]
    assert "polyfill" not in head, "the post-render step ran on the edited page"
    assert (page.parent / "index.ipynb").is_file()

    again = render(project)
    assert again.returncode == 0 and "up to date" in again.stdout


@pytest.mark.parametrize("post", POSTS, ids=[p.parent.name for p in POSTS])
def test_post_page_opens_its_notebook_in_colab(rendered_site, post):
    import notebooks

    site, _ = rendered_site
    page = site / "posts" / post.parent.name / "index.html"
    text = page.read_text(encoding="utf-8")
    links = re.findall(r'<a href="(https://colab\.research\.google\.com/[^"]+)"', text)
    assert len(links) == 1, f"{post.parent.name}: {len(links)} Colab links"
    # Colab opens the gh-pages branch, which holds _site as rendered here.
    address = re.fullmatch(
        r"https://colab\.research\.google\.com/github/[^/]+/[^/]+/blob/gh-pages/(.+)",
        links[0],
    )
    assert address and (site / address.group(1)) == page.parent / "index.ipynb"
    assert links[0] == notebooks.Site.from_project(site.parent).colab_url(post)
    # Right after the download link, in an item of its own, named by its text.
    assert re.search(
        r'href="index\.ipynb"[^>]*>(?:(?!</a>).)*</a>\s*</(li|div)>\s*<\1\b[^>]*>\s*'
        r'<a href="https://colab[^"]*"[^>]*><i class="bi bi-([\w-]+)" '
        r'aria-hidden="true"></i>Open in Colab</a>',
        text,
        re.S,
    ), f"{post.parent.name}: the Colab link is not beside the download link"
    icons = (site / "site_libs" / "bootstrap" / "bootstrap-icons.css").read_text()
    icon = re.search(
        r'<i class="bi bi-([\w-]+)" aria-hidden="true"></i>Open in Colab', text
    )
    assert f".bi-{icon.group(1)}::before" in icons, "the icon font lacks the Colab icon"
