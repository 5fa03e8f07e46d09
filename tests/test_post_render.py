"""Quarto's post-render step (scripts/post_render.py), on pages and files made here."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import nbformat
import notebooks
import numpy as np
import post_render
import pytest
import yaml

from site_sources import ROOT, front_matter, post_paths

POSTS = post_paths()
SITE = notebooks.Site.from_project()

HEAD = """<html><head>
<script src="site_libs/quarto-nav/quarto-nav.js"></script>
<script src="site_libs/quarto-html/quarto.js" type="module"></script>
<script async src="already-async.js"></script>
<script id="quarto-search-options" type="application/json">{"a": 1}</script>
<link href="site_libs/bootstrap/bootstrap-icons.css" rel="stylesheet">
<link href="light.css" rel="stylesheet" class="quarto-color-scheme" id="qb">
<link href="dark.css" rel="stylesheet" class="quarto-color-alternate" id="qd">
  <script src="https://cdnjs.cloudflare.com/polyfill/v3/polyfill.min.js?features=es6"></script>
  <script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml-full.js"></script>
</head><body>
<button class="navbar-toggler" type="button" role="menu" aria-label="Toggle">x</button>
<script src="body-script.js"></script>
<script>link.rel = 'disabled-stylesheet';</script>
</body></html>"""


def test_head_scripts_are_deferred_and_the_dark_theme_waits(tmp_path):
    page = tmp_path / "index.html"
    page.write_text(HEAD, encoding="utf-8")
    assert post_render.finish_pages(tmp_path) == 1
    html = page.read_text(encoding="utf-8")
    head, body = html.split("</head>")
    assert "polyfill" not in html
    assert '<script defer src="site_libs/quarto-nav/quarto-nav.js">' in head
    assert '<script defer src="https://cdn.jsdelivr.net/npm/mathjax' in head
    assert '<script src="site_libs/quarto-html/quarto.js" type="module">' in head
    assert "<script async src=" in head and "defer async" not in head
    assert '<script id="quarto-search-options" type="application/json">' in head
    assert 'href="dark.css" rel="disabled-stylesheet"' in head
    assert 'href="light.css" rel="stylesheet"' in head
    assert 'media="print" onload="this.media=\'all\'"' in head
    # The body is left as it is, but for the menu button's role.
    assert '<script src="body-script.js">' in body
    assert 'role="menu"' not in body and 'class="navbar-toggler"' in body
    # A second run changes nothing.
    assert post_render.finish_pages(tmp_path) == 0


def test_the_dark_theme_stays_enabled_without_the_toggle_that_enables_it(tmp_path):
    page = tmp_path / "index.html"
    page.write_text(HEAD.replace("'disabled-stylesheet'", "'other'"), encoding="utf-8")
    post_render.finish_pages(tmp_path)
    assert 'href="dark.css" rel="stylesheet"' in page.read_text(encoding="utf-8")


def _icon_font(path, codepoints):
    from fontTools.fontBuilder import FontBuilder
    from fontTools.pens.ttGlyphPen import TTGlyphPen

    names = [".notdef"] + [f"icon{cp:x}" for cp in codepoints]
    builder = FontBuilder(1000, isTTF=True)
    builder.setupGlyphOrder(names)
    builder.setupCharacterMap({cp: f"icon{cp:x}" for cp in codepoints})
    glyphs = {}
    for name in names:
        pen = TTGlyphPen(None)
        pen.moveTo((0, 0))
        pen.lineTo((500, 0))
        pen.lineTo((500, 500))
        pen.closePath()
        glyphs[name] = pen.glyph()
    builder.setupGlyf(glyphs)
    builder.setupHorizontalMetrics({n: (600, 0) for n in names})
    builder.setupHorizontalHeader(ascent=800, descent=-200)
    builder.setupNameTable({"familyName": "icons", "styleName": "Regular"})
    builder.setupOS2()
    builder.setupPost()
    builder.font.flavor = "woff"
    builder.save(str(path))


def test_the_icon_font_keeps_only_the_icons_in_use(tmp_path):
    from fontTools.ttLib import TTFont

    folder = tmp_path / "site_libs" / "bootstrap"
    folder.mkdir(parents=True)
    icons = {"github": 0xF3ED, "rss": 0xF522, "alarm": 0xF102, "clipboard": 0xF290}
    _icon_font(folder / "bootstrap-icons.woff", icons.values())
    css = (
        '@font-face { font-family: "bootstrap-icons"; }\n.bi::before { display: x; }\n'
    )
    css += "".join(
        f'.bi-{n}::before {{ content: "\\{cp:x}"; }}\n' for n, cp in icons.items()
    )
    (folder / "bootstrap-icons.css").write_text(css, encoding="utf-8")
    (tmp_path / "index.html").write_text(
        '<i class="bi bi-github"></i><i class="bi-rss">'
    )
    (tmp_path / "search.js").write_text('const icon = "bi-clipboard";')

    assert post_render.subset_icons(tmp_path) == {"github", "rss", "clipboard"}
    kept = (folder / "bootstrap-icons.css").read_text(encoding="utf-8")
    assert "@font-face" in kept and ".bi::before" in kept
    assert ".bi-github::before" in kept and ".bi-alarm::before" not in kept
    cmap = TTFont(str(folder / "bootstrap-icons.woff")).getBestCmap()
    assert set(cmap) == {icons["github"], icons["rss"], icons["clipboard"]}


def save_figure(site: Path) -> Path:
    from backprop import plots

    fig, ax = plots.subplots(height=3)
    x = np.linspace(0, 6, 200)
    ax.plot(x, np.sin(x), label="sin")
    ax.imshow(np.outer(np.sin(x[:40]), np.cos(x[:40])), extent=(0, 2, -1, 0))
    ax.legend()
    folder = site / "posts" / "p" / "index_files" / "figure-html"
    folder.mkdir(parents=True)
    path = folder / "fig-a-output-1.png"
    fig.savefig(path, dpi=150)
    return path


def test_figures_are_stored_with_a_palette_and_look_the_same(tmp_path):
    from PIL import Image

    path = save_figure(tmp_path / "site")
    before = np.asarray(Image.open(path).convert("RGB"), dtype=float)
    size_before = path.stat().st_size

    assert post_render.compress_figures(tmp_path / "site", tmp_path / "cache") > 0
    after_image = Image.open(path)
    after = np.asarray(after_image.convert("RGB"), dtype=float)
    assert after_image.mode == "P" and path.stat().st_size < size_before / 2
    assert after.shape == before.shape
    assert np.abs(after - before).mean() < 1.0  # out of 255, on average


def test_a_rerender_reuses_the_compressed_figures(tmp_path, monkeypatch):
    from PIL import Image

    site, cache = tmp_path / "site", tmp_path / "cache"
    path = save_figure(site)
    original = path.read_bytes()
    (cache / "stale.png").parent.mkdir()
    (cache / "stale.png").write_bytes(b"a figure no page has any more")
    post_render.compress_figures(site, cache)
    compressed = path.read_bytes()
    assert not (cache / "stale.png").exists(), "the cache keeps only what is used"

    # Quarto copies the original in again; nothing is quantized a second time.
    path.write_bytes(original)

    def refuse(*args, **kwargs):
        raise AssertionError("quantized again instead of taken from the cache")

    monkeypatch.setattr(Image.Image, "quantize", refuse)
    post_render.compress_figures(site, cache)
    assert path.read_bytes() == compressed


def test_a_render_of_other_pages_leaves_compressed_figures_as_they_are(
    tmp_path, monkeypatch
):
    from PIL import Image

    site, cache = tmp_path / "site", tmp_path / "cache"
    path = save_figure(site)
    original = path.read_bytes()
    post_render.compress_figures(site, cache)
    compressed = path.read_bytes()
    small = post_render.small_figure(path).read_bytes()

    def refuse(*args, **kwargs):
        raise AssertionError("a compressed figure was quantized again")

    # A render of another page leaves this page's figure compressed in the site.
    monkeypatch.setattr(Image.Image, "quantize", refuse)
    post_render.compress_figures(site, cache)
    assert path.read_bytes() == compressed
    assert post_render.small_figure(path).read_bytes() == small
    # The cache still holds the result for the original, which a render of every
    # page copies in again.
    path.write_bytes(original)
    post_render.compress_figures(site, cache)
    assert path.read_bytes() == compressed


def test_figures_offer_a_smaller_copy_and_load_lazily(tmp_path):
    from PIL import Image

    site = tmp_path / "site"
    path = save_figure(site)
    page = path.parents[2] / "index.html"
    tag = '<img src="index_files/figure-html/{}" alt="a sine" width="{}" height="{}" '
    page.write_text(
        "<main>"
        + tag.format(path.name, 524, 224)
        + 'class="figure-img"><img src="other.png" alt="not a figure"></main>',
        encoding="utf-8",
    )
    before = np.asarray(Image.open(path).convert("RGB"), dtype=float)
    post_render.compress_figures(site, tmp_path / "cache")
    assert post_render.responsive_figures(site) == 1

    small = path.with_name(path.stem + "-800w.png")
    with Image.open(small) as image:
        assert image.width == post_render.SMALL_FIGURE_WIDTH
        height, width = before.shape[:2]
        assert abs(image.height / image.width - height / width) < 0.01
        shrunk = np.asarray(image.convert("RGB").resize(before.shape[1::-1]), float)
    assert np.abs(shrunk - before).mean() < 8  # the same picture, less sharp
    assert small.stat().st_size < path.stat().st_size
    html = page.read_text(encoding="utf-8")
    figure = html.split("<img")[1]
    assert 'loading="lazy"' in figure and 'width="524" height="224"' in figure
    assert (
        f'srcset="index_files/figure-html/{small.name} 800w, '
        f'index_files/figure-html/{path.name} {before.shape[1]}w"'
    ) in figure
    assert "loading" not in html.split("<img")[2], "only figures are changed"
    # A second run (a re-render) changes nothing more; the cache keeps the copy.
    post_render.compress_figures(site, tmp_path / "cache")
    assert post_render.responsive_figures(site) == 0
    assert len(list((tmp_path / "cache").glob("*-800w.png"))) == 1


def test_figures_compressed_on_several_cores_are_those_of_pils_serial_path(
    tmp_path, monkeypatch
):
    from backprop import plots

    site = tmp_path / "site"
    originals = {}
    for n, height in enumerate((2.0, 3.0, 4.0)):
        fig, ax = plots.subplots(height=height)
        x = np.linspace(0, 6, 200)
        ax.plot(x, np.sin((n + 1) * x), label=f"sin {n + 1}x")
        ax.legend()
        folder = site / "posts" / f"p{n}" / "index_files" / "figure-html"
        folder.mkdir(parents=True)
        path = folder / "fig-a-output-1.png"
        fig.savefig(path, dpi=150 + 50 * n)
        plots.plt.close(fig)
        originals[path] = path.read_bytes()
    # The last figure again in another post: compressed once, copied to both.
    twin = site / "posts" / "p3" / "index_files" / "figure-html" / "fig-a-output-1.png"
    twin.parent.mkdir(parents=True)
    originals[twin] = originals[path]
    twin.write_bytes(originals[twin])
    monkeypatch.setattr(post_render.os, "cpu_count", lambda: 2)  # a pool, anywhere
    post_render.compress_figures(site, tmp_path / "cache")

    for path, original in originals.items():
        assert path.read_bytes() == post_render.quantized_png(original)
        small = post_render.small_figure(path)
        expected = post_render.scaled_png(original, post_render.SMALL_FIGURE_WIDTH)
        assert expected is not None and len(expected) < len(path.read_bytes())
        assert small.read_bytes() == expected


def test_a_figure_no_wider_than_the_column_has_no_smaller_copy(tmp_path):
    from PIL import Image

    folder = tmp_path / "p" / "index_files" / "figure-html"
    folder.mkdir(parents=True)
    Image.new("RGB", (900, 300), "white").save(folder / "fig-b-output-1.png")
    (tmp_path / "p" / "index.html").write_text(
        '<img src="index_files/figure-html/fig-b-output-1.png" class="figure-img">'
    )
    post_render.compress_figures(tmp_path, tmp_path / "cache")
    post_render.responsive_figures(tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["fig-b-output-1.png"]
    html = (tmp_path / "p" / "index.html").read_text()
    assert 'loading="lazy"' in html and "srcset" not in html


@pytest.mark.parametrize("html", ["<p>no head here</p>", "<html><head></head></html>"])
def test_pages_without_anything_to_change_are_left_alone(tmp_path, html):
    (tmp_path / "a.html").write_text(html)
    assert post_render.finish_pages(tmp_path) == 0


EXPLORER_PAGE = """<html><head><title>t</title>
<script type="module" src="../../site_libs/quarto-ojs/quarto-ojs-runtime.js"></script>
</head><body><main><p>An explorer &amp; its <code>cells</code>.</p>
<div id="ojs-cell-1"></div>
<script type="ojs-module-contents">e30=</script>
<script type="module">
window._ojs.paths.docToRoot = "../..";
window._ojs.runtime.interpretFromScriptTags();
</script>
</main></body></html>"""


def test_the_explorers_runtime_loads_when_an_explorer_comes_near(tmp_path):
    page = tmp_path / "index.html"
    page.write_text(EXPLORER_PAGE, encoding="utf-8")
    post_render.finish_pages(tmp_path)
    html = page.read_text(encoding="utf-8")
    assert 'src="../../site_libs/quarto-ojs/quarto-ojs-runtime.js"' not in html
    loader = html.split('<script type="module">')[1].split("</script>")[0]
    assert 'await import("../../site_libs/quarto-ojs/quarto-ojs-runtime.js")' in loader
    # The page's own start-up lines run after the import, in their order.
    assert loader.index("import(") < loader.index('docToRoot = "../.."')
    assert loader.index("docToRoot") < loader.index("interpretFromScriptTags()")
    assert "IntersectionObserver" in loader and ".explorer, [id^=ojs-cell-]" in loader
    assert post_render.finish_pages(tmp_path) == 0  # once is enough


def test_a_page_without_a_description_gets_its_first_paragraph(tmp_path):
    page = tmp_path / "index.html"
    page.write_text(EXPLORER_PAGE, encoding="utf-8")
    post_render.finish_pages(tmp_path)
    assert (
        '<meta name="description" content="An explorer &amp; its cells.">'
        in page.read_text(encoding="utf-8")
    )
    described = EXPLORER_PAGE.replace(
        "</title>", '</title><meta name="description" content="own">'
    )
    assert post_render.describe_page(described) == described
    long = EXPLORER_PAGE.replace("An explorer", "word " * 60)
    content = post_render.describe_page(long).split('content="')[1].split('"')[0]
    assert len(content) <= 160 and content.endswith("…")


def test_source_maps_that_are_not_there_are_not_named(tmp_path):
    folder = tmp_path / "site_libs" / "lib"
    folder.mkdir(parents=True)
    (folder / "a.js").write_text("f();\n//# sourceMappingURL=a.js.map")
    (folder / "b.js").write_text("g();\n//# sourceMappingURL=b.js.map")
    (folder / "b.js.map").write_text("{}")
    assert post_render.drop_missing_source_maps(tmp_path) == 1
    assert "sourceMappingURL" not in (folder / "a.js").read_text()
    assert "sourceMappingURL=b.js.map" in (folder / "b.js").read_text()


# What Quarto 1.7 to 1.10 write for posts/_metadata.yml's other-links: the item in
# the margin beside the table of contents, or in the title block.
TOC_LINKS = """<html><head><title>t</title></head><body>
<nav id="TOC" role="doc-toc"><h2 id="toc-title">On this page</h2><ul><li>
<a href="#one" id="toc-one" class="nav-link active">One</a></li></ul>
<div class="quarto-other-links"><h2>Other Links</h2><ul><li><a href="index.ipynb">\
<i class="bi bi-journal-code"></i>Download the notebook</a></li></ul></div></nav>
<main><p>Text.</p></main></body></html>"""
TITLE_BLOCK_LINKS = """<html><body><div class="quarto-other-links-target">\
<div class="quarto-other-links"><div class="quarto-title-meta-heading">Other Links</div>
<div class="quarto-title-meta-contents"><a href="index.ipynb" rel="noopener">
<i class="bi bi-journal-code"></i>Download the notebook</a></div></div></div>
</body></html>"""


def expected_colab_url(slug: str) -> str:
    """Colab's address for a GitHub notebook, spelled out from _quarto.yml's repo-url
    and the branch the publish workflow pushes the site to."""
    config = yaml.safe_load((ROOT / "_quarto.yml").read_text(encoding="utf-8"))
    owner_repo = config["website"]["repo-url"].removeprefix("https://github.com/")
    workflow = (ROOT / ".github" / "workflows" / "publish.yml").read_text()
    branch = re.search(
        r"quarto-actions/publish@\S+\n\s+with:\n\s+target: (\S+)", workflow
    )
    assert branch, "the publish workflow names its target"
    return (
        f"https://colab.research.google.com/github/{owner_repo}/blob/"
        f"{branch.group(1)}/posts/{slug}/index.ipynb"
    )


def post_page(site: Path, slug: str, html: str) -> Path:
    page = site / "posts" / slug / "index.html"
    page.parent.mkdir(parents=True)
    page.write_text(html, encoding="utf-8")
    return page


def colab_link(html: str) -> re.Match:
    link = re.search(r'<a href="(https://colab[^"]*)"[^>]*>(.*?)</a>', html, re.S)
    assert link, "no Colab link"
    return link


@pytest.mark.parametrize("html", [TOC_LINKS, TITLE_BLOCK_LINKS], ids=["toc", "title"])
def test_each_post_links_its_notebook_in_colab_beside_the_download(tmp_path, html):
    slug = POSTS[0].parent.name
    page = post_page(tmp_path, slug, html)
    assert post_render.link_colab(tmp_path, SITE) == 1
    linked = page.read_text(encoding="utf-8")
    link = colab_link(linked)
    assert link.group(1) == expected_colab_url(slug)
    # An item of the same kind as the download link's, right after it.
    item = re.search(r'(<(li|div)\b[^>]*>)\s*<a [^>]*href="index\.ipynb"', linked)
    after_download = rf"Download the notebook</a>\s*</{item.group(2)}>"
    assert re.search(after_download + re.escape(item.group(1) + link.group(0)), linked)
    # Named by its text; the icon is decoration.
    assert re.fullmatch(
        r'<i class="bi bi-[\w-]+" aria-hidden="true"></i>Open in Colab', link.group(2)
    )
    assert post_render.link_colab(tmp_path, SITE) == 0, "a second run adds nothing"
    assert linked.count("colab.research.google.com") == 1


def test_the_colab_link_opens_the_notebook_published_for_the_same_post(tmp_path):
    # The site as published: the gh-pages branch holds _site's files at its root.
    site = tmp_path / "_site"
    for post in POSTS:
        post_page(site, post.parent.name, TOC_LINKS)
    notebooks.write_notebooks(site)
    post_render.link_colab(site, SITE)
    prefix = expected_colab_url("SLUG").split("posts/SLUG/")[0]
    for post in POSTS:
        page = site / "posts" / post.parent.name / "index.html"
        url = colab_link(page.read_text(encoding="utf-8")).group(1)
        assert url.startswith(prefix)
        published = site / url.removeprefix(prefix)
        assert published.parent == page.parent and published.is_file()
        title = nbformat.read(published, as_version=4).cells[0].source.splitlines()[0]
        assert title == f"# {front_matter(post)['title']}"


def test_a_post_page_without_its_notebook_link_stops_the_render(tmp_path):
    post_page(tmp_path, POSTS[0].parent.name, TOC_LINKS.replace("index.ipynb", "x.py"))
    with pytest.raises(SystemExit, match="Download the notebook"):
        post_render.link_colab(tmp_path, SITE)


def test_colab_opens_notebooks_from_github_only():
    elsewhere = dataclasses.replace(SITE, repository="https://gitlab.com/a/b")
    with pytest.raises(ValueError, match="GitHub"):
        elsewhere.colab_url(POSTS[0])


THEME = (
    ":root{--bs-blue:#2780e3}"
    ".btn{color:red}.btn-unused{color:blue}"
    ".nav .active,.carousel-item{margin:0}"
    ".form-control:not(.is-invalid){border:0}"
    "@media (min-width:576px){.container{width:540px}.display-1{font-size:5rem}}"
    "@media print{.d-print-none{display:none}}"
    '@font-face{font-family:"x";src:url("x.woff") format("woff")}'
    "@keyframes spin{to{transform:rotate(1turn)}}"
    '.bi-a::before{content:"}{"}'
)


def test_the_theme_keeps_the_rules_a_page_or_script_can_match(tmp_path):
    page = '<div class="btn nav active container form-control bi-a">x</div>'
    names = set(post_render.NAME.findall(page + "el.classList.add('spin')"))
    purged = post_render.purge_css(THEME, names)
    # Written out by hand: what no page or script names goes, the rest stays whole.
    assert purged == (
        ":root{--bs-blue:#2780e3}"
        ".btn{color:red}"
        ".nav .active,.carousel-item{margin:0}"
        ".form-control:not(.is-invalid){border:0}"
        "@media (min-width:576px){.container{width:540px}}"
        '@font-face{font-family:"x";src:url("x.woff") format("woff")}'
        "@keyframes spin{to{transform:rotate(1turn)}}"
        '.bi-a::before{content:"}{"}'
    )
    everything = set(post_render.NAME.findall(THEME))
    assert post_render.purge_css(THEME, everything) == THEME


def test_the_theme_is_cut_down_again_from_its_original(tmp_path):
    site, cache = tmp_path / "site", tmp_path / "cache"
    sheet = site / "site_libs" / "bootstrap" / "bootstrap-1234.min.css"
    sheet.parent.mkdir(parents=True)
    sheet.write_text(THEME, encoding="utf-8")
    (site / "index.html").write_text('<p class="btn">x</p>', encoding="utf-8")
    assert post_render.purge_theme_css(site, cache) > 0
    assert ".btn{" in sheet.read_text() and ".display-1" not in sheet.read_text()
    # A render of one page that now uses a rule cut before: it is there again.
    (site / "index.html").write_text('<p class="btn display-1">x</p>', encoding="utf-8")
    post_render.purge_theme_css(site, cache)
    assert ".display-1{font-size:5rem}" in sheet.read_text()
