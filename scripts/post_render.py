"""Quarto's post-render step: finish the pages and write each post's notebook.

- Quarto's HTML template loads a polyfill script from a third-party CDN whenever a
  page uses MathJax; every browser the site supports has what it polyfills, so
  the tag is removed and no page asks a host other than MathJax's for anything.
- Nothing in a page's head holds up its first paint but the light theme's CSS: the
  scripts are deferred (Quarto's own code waits for DOMContentLoaded, which deferred
  scripts precede), the dark theme's stylesheets start disabled (Quarto's colour
  scheme toggle enables them, the same way it disables them), and the icon font's
  CSS loads without blocking.
- The icon font (Bootstrap Icons, 176 KB, 2,000 icons) is cut down to the few icons
  the site's pages and scripts name, with its stylesheet.
- The theme's stylesheets (Bootstrap's, about 500 KB each, light and dark) keep only
  the rules whose classes and ids some page or script of the site names: the light
  one holds up every page's first paint, and most of Bootstrap is never used here.
  The originals are kept in ``.cache/css/``, so that a render of some pages cuts them
  down again for the pages as they are then.
- The figures, drawn in a handful of flat colours on a white card, are stored as
  256-colour PNGs: a third of the bytes, the same picture. Quarto copies the
  originals into the site on every render, so each result is kept in
  ``.cache/figures/`` under the original's hash and a re-render reuses it; a first
  render compresses them on all cores.
- The figures are drawn for a sharp picture on a 2x screen in the 800 px column
  (about 1,600 px wide); a phone or a 1x screen needs half of that. Each figure
  also gets a copy 800 px wide, the page offers both (``srcset``) so the browser
  takes the smaller where it is enough, and figures load lazily (the first one of a
  post is below its first screen), with their width and height kept so that
  nothing moves when they arrive.
- The navbar's menu button loses the ``role="menu"`` the template gives it (a button
  that opens a menu is a button).
- The explorers' runtime (Quarto's OJS, about 200 KB compressed) loads when an
  explorer comes near the screen, not with the page: a reader who never scrolls to
  one does not pay for it.
- A page without a ``<meta name="description">`` (the API reference's) gets one from
  its first paragraph, for search engines and link previews.
- Each post's notebook is built from its source (scripts/notebooks.py) rather than
  by a second Quarto format, so every post executes once per render.
- Next to each post's *Download the notebook* link goes an *Open in Colab* link to
  the same notebook on the branch the site is published from, made like it (same
  list, same styles). The address needs the post's folder, which Quarto's
  ``other-links`` cannot put in a link shared by every post.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import sys
from concurrent.futures import ProcessPoolExecutor
from html import escape, unescape
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent))

from notebooks import ROOT, Site, write_notebooks

if TYPE_CHECKING:
    from PIL import Image

POLYFILL = re.compile(r'[ \t]*<script src="https://[^"]*polyfill[^"]*"></script>\n?')


HEAD = re.compile(r"<head>.*?</head>", re.S)
CLASSIC_SCRIPT = re.compile(
    r"<script (?![^>]*\b(?:defer|async|type=\"module\"))([^>]*\bsrc=)"
)
ALTERNATE_SHEET = re.compile(
    r'<link (?=[^>]*class="[^"]*quarto-color-alternate)([^>]*)rel="stylesheet"'
)
ICON_SHEET = re.compile(
    r'(?<!<noscript>)<link href="([^"]*bootstrap-icons\.css)" rel="stylesheet">'
)
# The colour-scheme toggle of Quarto's template switches sheets through this rel.
TOGGLE_MARKER = "'disabled-stylesheet'"


def unblock_head(html: str) -> str:
    """The page with its head's scripts deferred and its dark-theme CSS disabled."""
    match = HEAD.search(html)
    if not match:
        return html
    head = CLASSIC_SCRIPT.sub(r"<script defer \1", match.group())
    if TOGGLE_MARKER in html:
        head = ALTERNATE_SHEET.sub(r'<link \1rel="disabled-stylesheet"', head)
    head = ICON_SHEET.sub(
        r"""<link href="\1" rel="stylesheet" media="print" onload="this.media='all'">"""
        r"""<noscript><link href="\1" rel="stylesheet"></noscript>""",
        head,
    )
    return html[: match.start()] + head + html[match.end() :]


MENU_ROLE = re.compile(r'(<button class="navbar-toggler"[^>]*?) role="menu"')


OJS_RUNTIME = re.compile(
    r'<script type="module" src="([^"]*quarto-ojs-runtime(?:\.min)?\.js)"></script>\n?'
)
OJS_START = re.compile(
    r'<script type="module">\n((?:(?!</script>).)*?'
    r"window\._ojs\.runtime\.interpretFromScriptTags\(\);\n)</script>",
    re.S,
)
OJS_LOADER = """<script type="module">
// The explorers' runtime loads when one comes near the screen.
const startExplorers = async () => {{
  await import("{runtime}");
{start}}};
const explorerObserver = new IntersectionObserver((entries) => {{
  if (entries.some((entry) => entry.isIntersecting)) {{
    explorerObserver.disconnect();
    startExplorers();
  }}
}}, {{ rootMargin: "600px" }});
// A cell may have no box of its own (one that only imports): watch its block too.
document.querySelectorAll(".explorer, [id^=ojs-cell-]").forEach((element) => {{
  explorerObserver.observe(element);
}});
</script>"""


def load_explorers_on_approach(html: str) -> str:
    """The page with its OJS runtime imported when an OJS cell nears the screen."""
    runtime = OJS_RUNTIME.search(html)
    start = OJS_START.search(html)
    if not (runtime and start):
        return html
    body = "".join(f"  {line}\n" for line in start.group(1).splitlines())
    loader = OJS_LOADER.format(runtime=runtime.group(1), start=body)
    html = html[: start.start()] + loader + html[start.end() :]
    return OJS_RUNTIME.sub("", html, count=1)


META_DESCRIPTION = re.compile(r'<meta name="description"')
FIRST_PARAGRAPH = re.compile(r"<main\b.*?<p\b[^>]*>(.*?)</p>", re.S)


def describe_page(html: str) -> str:
    """The page with a meta description from its first paragraph, if it had none."""
    if META_DESCRIPTION.search(html):
        return html
    paragraph = FIRST_PARAGRAPH.search(html)
    if not paragraph:
        return html
    text = " ".join(unescape(re.sub(r"<[^>]+>", "", paragraph.group(1))).split())
    if not text:
        return html
    if len(text) > 160:
        text = text[:157].rsplit(" ", 1)[0] + "…"
    meta = f'<meta name="description" content="{escape(text, quote=True)}">'
    return html.replace("</title>", f"</title>\n{meta}", 1)


def finish_pages(site: Path) -> int:
    """Apply the steps above to every page under ``site``; the pages changed."""
    changed = 0
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        finished = MENU_ROLE.sub(r"\1", unblock_head(POLYFILL.sub("", text)))
        finished = describe_page(load_explorers_on_approach(finished))
        if finished != text:
            page.write_text(finished, encoding="utf-8")
            changed += 1
    return changed


ICON_RULE = re.compile(
    r'\.bi-([a-z0-9-]+)::before\s*\{\s*content:\s*"\\([0-9a-f]+)";\s*\}\s*'
)
ICON_NAME = re.compile(r"\bbi-([a-z0-9]+(?:-[a-z0-9]+)*)")


def subset_icons(site: Path) -> set[str]:
    """Keep only the icons that a page or script of ``site`` names; their names."""
    css_path = next(site.glob("site_libs/bootstrap/bootstrap-icons.css"), None)
    if css_path is None:
        return set()
    css = css_path.read_text(encoding="utf-8")
    codepoints = dict(ICON_RULE.findall(css))
    used: set[str] = set()
    for path in [*site.rglob("*.html"), *site.rglob("*.js")]:
        used |= set(
            ICON_NAME.findall(path.read_text(encoding="utf-8", errors="ignore"))
        )
    used &= set(codepoints)
    kept_rules = "".join(
        f'.bi-{name}::before {{ content: "\\{codepoints[name]}"; }}\n'
        for name in sorted(used)
    )
    css_path.write_text(ICON_RULE.sub("", css) + kept_rules, encoding="utf-8")

    from fontTools import subset  # matplotlib's dependency, so always installed

    logging.getLogger("fontTools").setLevel(logging.ERROR)  # notes on the font's tables

    for font_path in css_path.parent.glob("bootstrap-icons.woff*"):
        options = subset.Options()
        options.flavor = font_path.suffix.lstrip(".")
        font = subset.load_font(str(font_path), options)
        subsetter = subset.Subsetter(options)
        subsetter.populate(unicodes=[int(codepoints[name], 16) for name in used])
        subsetter.subset(font)
        subset.save_font(font, str(font_path), options)
        font.close()
    return used


SOURCE_MAP = re.compile(r"\n?//# sourceMappingURL=(\S+)\s*$")


def drop_missing_source_maps(site: Path) -> int:
    """Remove the source-map comment of scripts whose map is not in ``site``."""
    dropped = 0
    for script in site.glob("site_libs/**/*.js"):
        text = script.read_text(encoding="utf-8", errors="surrogateescape")
        found = SOURCE_MAP.search(text)
        if found and not (script.parent / found.group(1)).is_file():
            script.write_text(text[: found.start()] + "\n", errors="surrogateescape")
            dropped += 1
    return dropped


# Quarto's other-links item for the notebook: <li><a href="index.ipynb">…</a></li> in
# the table of contents' margin, <div class="…">…</div> in the title block.
DOWNLOAD_ITEM = re.compile(
    r'(<(li|div)\b[^>]*>)\s*<a\b[^>]*\bhref="index\.ipynb"[^>]*>.*?</a>\s*</\2>', re.S
)
COLAB_TEXT = "Open in Colab"
COLAB_ICON = "play-circle"


def colab_item(opening_tag: str, closing_tag: str, url: str) -> str:
    """An other-links item that opens ``url`` (a notebook in Colab)."""
    return (
        f'{opening_tag}<a href="{escape(url, quote=True)}" rel="external">'
        f'<i class="bi bi-{COLAB_ICON}" aria-hidden="true"></i>{COLAB_TEXT}</a>'
        f"{closing_tag}"
    )


def link_colab(site_dir: Path, site: Site) -> int:
    """Put an *Open in Colab* link after each post page's notebook link; the pages
    changed. A post page without a notebook link is an error: the link is expected
    from ``posts/_metadata.yml``."""
    changed = 0
    for page in sorted(site_dir.glob("posts/*/index.html")):
        html = page.read_text(encoding="utf-8")
        url = site.colab_url(page.with_suffix(".qmd"))
        if escape(url, quote=True) in html:
            continue  # linked by an earlier run
        item = DOWNLOAD_ITEM.search(html)
        if item is None:
            raise SystemExit(
                f"{page}: no 'Download the notebook' link (href=\"index.ipynb\") "
                "to put the Colab link next to"
            )
        closing = f"</{item.group(2)}>"
        html = (
            html[: item.end()]
            + colab_item(item.group(1), closing, url)
            + html[item.end() :]
        )
        page.write_text(html, encoding="utf-8")
        changed += 1
    return changed


FIGURE_CACHE = ROOT / ".cache" / "figures"
CSS_CACHE = ROOT / ".cache" / "css"

# A name a page or script may give an element as a class or an id.
NAME = re.compile(r"[A-Za-z_][\w-]*")
SELECTOR_NAME = re.compile(r"[.#](-?[A-Za-z_][\w-]*)")
# Parts of a selector that match where the names in them are absent, or are
# alternatives: a selector with these is kept whatever they name.
OPEN_ENDED = re.compile(r":(?:is|where|has|matches|-webkit-any|-moz-any)\(|\\")
NEGATION = re.compile(r":not\([^()]*\)")
# At-rules holding rules, which are cut down inside; other at-rules stay whole.
GROUPING = ("@media", "@supports", "@layer", "@container", "@document")


def css_blocks(css: str) -> list[tuple[str, str | None]]:
    """The top-level statements of ``css``: (prelude, block) for a rule or an
    at-rule with a block, (statement, None) for one ending in a semicolon."""
    blocks: list[tuple[str, str | None]] = []
    start = i = 0
    depth = 0
    quote = ""
    opened = 0
    while i < len(css):
        char = css[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = ""
        elif css.startswith("/*", i):
            i = css.index("*/", i + 2) + 1
        elif char in "\"'":
            quote = char
        elif char == "{":
            if depth == 0:
                opened = i
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                blocks.append((css[start:opened], css[opened + 1 : i]))
                start = i + 1
        elif char == ";" and depth == 0:
            blocks.append((css[start : i + 1], None))
            start = i + 1
        i += 1
    if css[start:].strip():
        blocks.append((css[start:], None))
    return blocks


def split_selectors(prelude: str) -> list[str]:
    """The selectors of a rule's prelude (split at commas outside brackets)."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(prelude):
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(prelude[start:i])
            start = i + 1
    parts.append(prelude[start:])
    return parts


def selector_used(selector: str, names: set[str]) -> bool:
    """Whether ``selector`` may match an element of the site: every class and id it
    requires is a name the site uses."""
    if OPEN_ENDED.search(selector):
        return True
    required = SELECTOR_NAME.findall(NEGATION.sub("", selector))
    return all(name in names for name in required)


def purge_css(css: str, names: set[str]) -> str:
    """``css`` without the rules none of whose selectors the site can match."""
    kept = []
    for prelude, block in css_blocks(css):
        if block is None:
            kept.append(prelude)
        elif prelude.lstrip().startswith(GROUPING):
            inner = purge_css(block, names)
            if inner.strip():
                kept.append(f"{prelude}{{{inner}}}")
        elif prelude.lstrip().startswith("@") or any(
            selector_used(selector, names) for selector in split_selectors(prelude)
        ):
            kept.append(f"{prelude}{{{block}}}")
    return "".join(kept)


def names_in_use(site: Path) -> set[str]:
    """Every word of every page and script of ``site`` (more than the classes and
    ids they use, never fewer: a script may name a class in a string)."""
    names: set[str] = set()
    for path in [*site.rglob("*.html"), *site.rglob("*.js"), *site.rglob("*.mjs")]:
        names.update(NAME.findall(path.read_text(encoding="utf-8", errors="replace")))
    return names


def purge_theme_css(site: Path, cache: Path = CSS_CACHE) -> int:
    """Cut the theme's stylesheets down to the rules the site may use; bytes
    saved. Each original is kept in ``cache``, with what it was cut down to: a
    stylesheet found as it was left is cut down again from its original."""
    names = names_in_use(site)
    saved = 0
    for path in sorted(site.glob("site_libs/bootstrap/bootstrap*.min.css")):
        text = path.read_text(encoding="utf-8")
        original_path, purged_path = cache / path.name, cache / f"{path.name}.purged"
        if purged_path.is_file() and purged_path.read_text(encoding="utf-8") == text:
            text = original_path.read_text(encoding="utf-8")
        purged = purge_css(text, names)
        cache.mkdir(parents=True, exist_ok=True)
        original_path.write_text(text, encoding="utf-8")
        purged_path.write_text(purged, encoding="utf-8")
        path.write_text(purged, encoding="utf-8")
        saved += len(text.encode()) - len(purged.encode())
    return saved


# The width of the smaller copy of each figure: the text column's, in CSS pixels.
SMALL_FIGURE_WIDTH = 800


def small_figure(path: Path) -> Path:
    """Where the smaller copy of the figure at ``path`` goes."""
    return path.with_name(f"{path.stem}-{SMALL_FIGURE_WIDTH}w.png")


def compress_figures(site: Path, cache: Path = FIGURE_CACHE) -> int:
    """Re-save each figure PNG under ``site`` with a 256-colour palette, and write its
    smaller copy (where the figure is wider than that); bytes saved.

    ``cache`` keeps each result under the hash of the original it came from, and
    names that original's hash after the result's own hash (``.alias``): a render of
    some pages leaves the other pages' figures compressed already, and those are
    known again without being compressed a second time. What no figure of ``site``
    uses any more is dropped.
    """
    saved = 0
    used = set()
    small_suffix = f"-{SMALL_FIGURE_WIDTH}w.png"
    figures = {}  # path -> the original's digest
    to_compress = {}  # digest -> the original, for figures not in the cache
    for path in site.rglob("figure-html/*.png"):
        if path.name.endswith(small_suffix):
            continue
        original = path.read_bytes()
        digest = hashlib.sha256(original).hexdigest()
        alias = cache / f"{digest}.alias"
        if alias.is_file():  # compressed by an earlier run: its original's hash
            digest = alias.read_text(encoding="utf-8")
        figures[path] = digest
        if not (cache / f"{digest}.png").is_file():
            to_compress[digest] = original
    results = compress_all(list(to_compress.values()))
    for digest, (compressed, small_png) in zip(to_compress, results, strict=True):
        cache.mkdir(parents=True, exist_ok=True)
        (cache / f"{digest}.png").write_bytes(compressed)
        if small_png is not None and len(small_png) < len(compressed):
            (cache / f"{digest}{small_suffix}").write_bytes(small_png)
    for path, digest in figures.items():
        original_size = path.stat().st_size
        cached = cache / f"{digest}.png"
        small = cache / f"{digest}{small_suffix}"
        compressed = cached.read_bytes()
        path.write_bytes(compressed)
        alias = cache / f"{hashlib.sha256(compressed).hexdigest()}.alias"
        alias.write_text(digest, encoding="utf-8")
        used |= {cached, alias}
        if small.is_file():
            small_figure(path).write_bytes(small.read_bytes())
            used.add(small)
        saved += original_size - cached.stat().st_size
    for stale in (set(cache.glob("*.png")) | set(cache.glob("*.alias"))) - used:
        stale.unlink()
    return saved


def compress_all(pngs: list[bytes]) -> list[tuple[bytes, bytes | None]]:
    """`compressed_pngs` of each of ``pngs``, in order; on all cores when there are
    several.

    Quantizing and compressing a figure takes a quarter of a second of one core,
    and a first render has a few dozen of them.
    """
    workers = min(len(pngs), os.cpu_count() or 1)
    if workers < 2:
        return [compressed_pngs(png) for png in pngs]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(compressed_pngs, pngs))


def compressed_pngs(png: bytes) -> tuple[bytes, bytes | None]:
    """``(quantized_png(png), scaled_png(png, SMALL_FIGURE_WIDTH))``, decoding
    ``png`` once."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        image.load()
        return _quantized(image, png), _scaled(image, SMALL_FIGURE_WIDTH)


def quantized_png(png: bytes) -> bytes:
    """``png`` with a 256-colour palette, or as it was if that is no smaller."""
    from PIL import Image  # matplotlib's dependency

    with Image.open(io.BytesIO(png)) as image:
        image.load()
        return _quantized(image, png)


def _quantized(image: Image.Image, png: bytes) -> bytes:
    """`quantized_png` of ``png``, already decoded as ``image``."""
    from PIL import Image

    info = {"dpi": image.info["dpi"]} if "dpi" in image.info else {}
    # Figures are opaque (a white card), so alpha carries nothing.
    flat = image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
    buffer = io.BytesIO()
    flat.save(buffer, format="PNG", optimize=True, **info)
    # Already small: keep nothing worse than the original.
    return buffer.getvalue() if buffer.tell() < len(png) else png


def scaled_png(png: bytes, width: int) -> bytes | None:
    """``png`` scaled down to ``width`` pixels, or None if it is not wider than that
    by a fifth (a copy would save little).

    Each pixel is the mean of the pixels it covers (a sharper filter rings around
    the lines and letters, and those extra shades cost more bytes than the smaller
    size saves); 64 colours hold a figure's few flat colours and the shades of its
    anti-aliased edges.
    """
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        return _scaled(image, width)


def _scaled(image: Image.Image, width: int) -> bytes | None:
    """`scaled_png` of a figure already opened as ``image``."""
    from PIL import Image

    if image.width < width * 1.2:
        return None
    height = round(image.height * width / image.width)
    scaled = image.convert("RGB").resize((width, height), Image.Resampling.BOX)
    buffer = io.BytesIO()
    scaled.quantize(64, method=Image.Quantize.MEDIANCUT).save(
        buffer, format="PNG", optimize=True
    )
    return buffer.getvalue()


FIGURE_IMG = re.compile(
    r'<img src="([^"]+\.png)"([^>]*\bclass="[^"]*\bfigure-img\b[^>]*)>'
)


def offer_small_figure(match: re.Match[str], folder: Path) -> str:
    """The figure's ``<img>`` (``match``, in a page in ``folder``) loading lazily, with
    its smaller copy offered where there is one."""
    src, rest = match.groups()
    if "srcset=" in rest or "loading=" in rest:
        return match.group()
    extra = ' loading="lazy" decoding="async"'
    figure = folder / src
    small = small_figure(figure)
    if small.is_file() and figure.is_file():
        from PIL import Image

        with Image.open(figure) as image:
            full_width = image.width
        small_src = src[: -len(figure.name)] + small.name
        extra += (
            f' srcset="{small_src} {SMALL_FIGURE_WIDTH}w, {src} {full_width}w"'
            f' sizes="(max-width: {SMALL_FIGURE_WIDTH}px) 100vw,'
            f' {SMALL_FIGURE_WIDTH}px"'
        )
    return f'<img src="{src}"{rest}{extra}>'


def responsive_figures(site: Path) -> int:
    """Offer each figure's smaller copy (next to it, see ``compress_figures``) where
    there is one, and load figures lazily; the pages changed."""
    changed = 0
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        finished = FIGURE_IMG.sub(
            lambda match, folder=page.parent: offer_small_figure(match, folder), text
        )
        if finished != text:
            page.write_text(finished, encoding="utf-8")
            changed += 1
    return changed


def main() -> None:
    site = ROOT / os.environ.get("QUARTO_PROJECT_OUTPUT_DIR", "_site")
    project = Site.from_project()
    finish_pages(site)
    link_colab(site, project)
    subset_icons(site)  # after every step that names an icon
    purge_theme_css(site)  # after every step that writes into a page
    drop_missing_source_maps(site)
    compress_figures(site)
    responsive_figures(site)
    write_notebooks(site, site=project)


if __name__ == "__main__":
    main()
