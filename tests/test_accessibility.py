"""Accessibility of the rendered site: axe-core in headless Chromium, light and dark
themes.

Needs the quarto CLI (to render), Chromium, and the ``a11y`` extra (playwright and
axe-playwright-python; ``./scripts/test.sh`` installs it when quarto is on PATH).
Each missing piece skips the tests, saying which. Chromium is launched with
every host name unresolvable but loopback, so nothing is fetched from outside.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import importlib.util
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from rendered_site import NO_QUARTO, QUARTO
from site_sources import ROOT, post_paths, reference_pages, top_level_pages

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HAVE_A11Y_EXTRA = all(
    importlib.util.find_spec(m) for m in ("playwright", "axe_playwright_python")
)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not HAVE_A11Y_EXTRA, reason="install the a11y extra: pip install -e '.[a11y]'"
    ),
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no chromium on PATH (Debian: apt-get install chromium)",
    ),
]
CHROMIUM_ARGS = [
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PAGES = [
    *(p.with_suffix(".html").name for p in top_level_pages()),
    *(f"posts/{p.parent.name}/index.html" for p in post_paths()),
    # The API reference, generated at render time: every page of it.
    *sorted(
        p.relative_to(ROOT).with_suffix(".html").as_posix() for p in reference_pages()
    ),
]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def show_explorers(page) -> None:
    """Scroll through the page so its explorers load, and wait until they are drawn.

    The explorers' runtime loads when one comes near the screen; axe must see them.
    """
    if not page.locator(".explorer").count():
        return
    page.evaluate(
        """async () => {
          for (let y = 0; y < document.body.scrollHeight; y += window.innerHeight) {
            window.scrollTo(0, y);
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
        }"""
    )
    page.wait_for_function(
        """() => [...document.querySelectorAll(".explorer")].every(
             (block) => block.querySelector("[role=status]")?.textContent.trim())""",
        timeout=20_000,
    )
    page.evaluate("window.scrollTo(0, 0)")


def axe_violations(browser, url: str, *, dark: bool = False) -> list[str]:
    """One line per axe violation on the page at ``url``: rule, impact, where."""
    from axe_playwright_python.sync_playwright import Axe

    page = browser.new_page()
    try:
        page.goto(url, wait_until="load")
        if dark:
            toggle = page.locator(".quarto-color-scheme-toggle").first
            assert toggle.count(), f"{url} has no light/dark toggle"
            toggle.click()
        page.wait_for_timeout(300)  # the search box and the toggle's restyling settle
        show_explorers(page)
        response = Axe().run(page).response
    finally:
        page.close()
    return [
        f"{v['id']} ({v.get('impact')}): {v['help']} — at "
        f"{', '.join(str(n['target']) for n in v['nodes'][:3])}"
        for v in response["violations"]
    ]


def test_the_check_finds_a_known_violation(browser, tmp_path):
    # The oracle works: an image without alt text and an unnamed button are reported.
    (tmp_path / "bad.html").write_text(
        '<!doctype html><html lang="en"><head><title>t</title></head><body><main>'
        '<h1>t</h1><img src="x.png"><button></button></main></body></html>'
    )
    (tmp_path / "good.html").write_text(
        '<!doctype html><html lang="en"><head><title>t</title></head><body><main>'
        '<h1>t</h1><img src="x.png" alt="a plot"><button>Go</button>'
        "</main></body></html>"
    )
    with serve(tmp_path) as base:
        rules = {line.split()[0] for line in axe_violations(browser, base + "bad.html")}
        assert {"image-alt", "button-name"} <= rules
        assert axe_violations(browser, base + "good.html") == []


@pytest.fixture(scope="module")
def site_url(rendered_site) -> Iterator[str]:
    site, result = rendered_site
    assert result.returncode == 0, "the site did not render; see test_render.py"
    with serve(site) as url:
        yield url


@pytest.mark.quarto
@pytest.mark.skipif(QUARTO is None, reason=NO_QUARTO)
@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
@pytest.mark.parametrize("page", PAGES)
def test_page_has_no_axe_violations(browser, site_url, page, dark):
    violations = axe_violations(browser, site_url + page, dark=dark)
    assert not violations, f"{page} ({'dark' if dark else 'light'}):\n" + "\n".join(
        violations
    )


# Every inline code element (not a code block): where it sits, and the WCAG contrast
# of its text against the colours actually behind it (its own background, else the
# nearest ancestor's, translucent layers blended over the page's).
INLINE_CODE = """() => {
  const rgba = (css) => {
    const m = css.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const v = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return [v[0], v[1], v[2], v.length > 3 ? v[3] : 1];
  };
  const over = (top, below) => below.map((c, i) => c * (1 - top[3]) + top[i] * top[3]);
  const behind = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor);
      if (c && c[3] > 0) {
        layers.push(c);
        if (c[3] >= 1) break;
      }
    }
    let colour = [255, 255, 255];
    for (const c of layers.reverse()) colour = over(c, colour);
    return colour;
  };
  const luminance = (rgb) => {
    const [r, g, b] = rgb.map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const places = [
    ["heading", "h1, h2, h3, h4, h5, h6"],
    ["callout title", ".callout-header, .callout-title-container"],
    ["table", "td, th"],
    ["caption", "figcaption, caption"],
    ["link", "a"],
    ["table of contents", "nav#TOC"],
    ["listing", ".series-list, .quarto-listing"],
  ];
  return [...document.querySelectorAll("code")]
    .filter((code) => !code.closest("pre, .sourceCode") && code.getClientRects().length)
    .map((code) => {
      const bg = behind(code);
      const ink = over(rgba(getComputedStyle(code).color), bg);
      const [hi, lo] = [luminance(ink), luminance(bg)].sort((a, b) => b - a);
      const where = places.filter(([, sel]) => code.closest(sel)).map(([name]) => name);
      return {
        where: where.length ? where : ["body"],
        text: code.textContent.slice(0, 40),
        ratio: (hi + 0.05) / (lo + 0.05),
      };
    });
}"""


@pytest.mark.quarto
@pytest.mark.skipif(QUARTO is None, reason=NO_QUARTO)
@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_inline_code_is_readable_wherever_it_sits(browser, site_url, dark):
    # Quarto colours inline code differently in prose, headings, callout titles and
    # tables, and differently from one release to the next (1.10 drew code in
    # headings and callout titles white on near-white in the dark theme). Measured
    # here on every page, so that a place axe skips (hidden, or in a region it
    # samples once) is measured too.
    measured: set[str] = set()
    unreadable = []
    for page in PAGES:
        # A new page each time: the theme chosen with the toggle is remembered.
        tab = browser.new_page()
        try:
            tab.goto(site_url + page, wait_until="load")
            if dark:
                tab.locator(".quarto-color-scheme-toggle").first.click()
            tab.wait_for_timeout(100)
            found = tab.evaluate(INLINE_CODE)
        finally:
            tab.close()
        for code in found:
            measured.update(code["where"])
            if code["ratio"] < 4.5:
                unreadable.append(
                    f"{page}: `{code['text']}` in {', '.join(code['where'])}: "
                    f"{code['ratio']:.2f}:1"
                )
    # The places where Quarto's colours for code differ are all on the site.
    assert {"body", "heading", "callout title", "table", "link"} <= measured, measured
    assert not unreadable, "inline code below 4.5:1:\n" + "\n".join(unreadable[:20])


# What sticks out of the viewport and is not inside a block that scrolls or clips.
STICKING_OUT = """() => {
  const width = document.documentElement.clientWidth;
  const scrolls = (el) => {
    for (let p = el.parentElement; p; p = p.parentElement) {
      if (/(auto|scroll|hidden)/.test(getComputedStyle(p).overflowX)) return true;
    }
    return false;
  };
  return [...document.querySelectorAll("body *")]
    .filter((el) => el.getBoundingClientRect().right > width + 1 && !scrolls(el))
    .slice(0, 3)
    .map((el) => `${el.tagName.toLowerCase()}.${el.className} "${
      (el.textContent || "").trim().slice(0, 40)}"`);
}"""


@pytest.mark.quarto
@pytest.mark.skipif(QUARTO is None, reason=NO_QUARTO)
@pytest.mark.parametrize("page", PAGES)
def test_nothing_widens_the_page_on_a_phone(browser, site_url, page):
    # A wide table, equation or code line scrolls inside its own block instead.
    tab = browser.new_page(viewport={"width": 390, "height": 844})
    try:
        tab.goto(site_url + page, wait_until="load")
        show_explorers(tab)
        overflow = tab.evaluate(
            "() => document.documentElement.scrollWidth"
            " - document.documentElement.clientWidth"
        )
        culprits = tab.evaluate(STICKING_OUT) if overflow > 0 else []
        # What scrolls at this width only must still take keyboard focus.
        from axe_playwright_python.sync_playwright import Axe

        options = {"runOnly": ["scrollable-region-focusable"]}
        unreachable = Axe().run(tab, options=options).response["violations"]
    finally:
        tab.close()
    assert overflow <= 0, f"{page} is {overflow} px wider than the phone: {culprits}"
    assert not unreachable, f"{page}: scrolls without keyboard access: " + ", ".join(
        str(node["target"]) for v in unreachable for node in v["nodes"]
    )


@pytest.mark.quarto
@pytest.mark.skipif(QUARTO is None, reason=NO_QUARTO)
def test_a_link_to_an_anchor_lands_below_the_navbar(browser, site_url):
    # The posts link to objects on the reference's topic pages, far down the page.
    tab = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        anchor = "backprop.functional.lin_backward"
        tab.goto(f"{site_url}reference/linear.html#{anchor}", wait_until="load")
        tab.wait_for_timeout(300)
        navbar_bottom = tab.evaluate(
            "() => document.querySelector('#quarto-header')"
            ".getBoundingClientRect().bottom"
        )
        heading_top = tab.evaluate(
            f"() => document.getElementById('{anchor}')"
            ".querySelector('h2').getBoundingClientRect().top"
        )
        scrolled = tab.evaluate("() => window.scrollY")
        clipped = tab.evaluate(
            """() => [...document.querySelectorAll("nav#TOC a")]
                 .filter((a) => a.scrollWidth > a.clientWidth + 1)
                 .map((a) => a.textContent)"""
        )
    finally:
        tab.close()
    assert scrolled > 0, "the page did not scroll to the anchor"
    assert heading_top >= navbar_bottom, (
        f"the heading's top ({heading_top:.0f} px) is under the navbar "
        f"({navbar_bottom:.0f} px)"
    )
    assert not clipped, f"table-of-contents entries cut off: {clipped}"


@pytest.mark.quarto
@pytest.mark.skipif(QUARTO is None, reason=NO_QUARTO)
def test_a_folded_aside_opens_from_the_keyboard(browser, site_url):
    # Posts 9 and 13 fold their detours into collapsible callouts; a reader without a
    # mouse reaches the header with Tab and opens it with Enter, then Space closes it.
    tab = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        tab.goto(f"{site_url}posts/09-normalization-layers/index.html")
        tab.wait_for_load_state("load")
        header = tab.locator('.callout-header[data-bs-toggle="collapse"]').first
        name = header.evaluate(
            "(h) => [h.getAttribute('role'), h.tabIndex, h.textContent.trim()]"
        )
        body = tab.locator(header.get_attribute("data-bs-target")).first
        hidden_before = not body.is_visible()
        header.focus()
        tab.keyboard.press("Enter")
        tab.wait_for_timeout(600)  # Bootstrap's collapse animates
        shown = body.is_visible()
        expanded = header.get_attribute("aria-expanded")
        tab.keyboard.press(" ")
        tab.wait_for_timeout(600)
        hidden_after = not body.is_visible()
    finally:
        tab.close()
    role, tab_index, title = name
    assert role == "button" and tab_index == 0 and title, name
    assert hidden_before, "the aside is open before it is asked to"
    assert shown and expanded == "true", "Enter did not open the aside"
    assert hidden_after, "Space did not close the aside"
