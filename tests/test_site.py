"""The site's sources, checked without Quarto: configuration, front matter, links.

What Quarto itself would do with them is checked by ``test_render.py`` where the
``quarto`` CLI is installed.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
import yaml

from site_sources import (
    POSTS_DIR,
    ROOT,
    body,
    cross_references,
    front_matter,
    labels_defined,
    local_links,
    post_paths,
    python_cells,
    reference_anchors,
    reference_pages,
    site_pages,
)

POSTS = post_paths()
POST_IDS = [p.parent.name for p in POSTS]
PAGES = site_pages()


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def quarto_config() -> dict:
    return load_yaml(ROOT / "_quarto.yml")


def test_quarto_config_is_a_website(quarto_config):
    project = quarto_config["project"]
    assert project["type"] == "website"
    website = quarto_config["website"]
    for key in ("title", "description", "site-url", "repo-url"):
        assert website.get(key), f"website.{key} is missing from _quarto.yml"
    assert website.get("search") is not False
    assert quarto_config["execute"]["freeze"] == "auto"
    html = quarto_config["format"]["html"]
    assert set(html["theme"]) == {"light", "dark"}, (
        "the site offers a light and a dark theme"
    )
    assert html["code-copy"] is True


def test_pre_render_check_exists(quarto_config):
    scripts = quarto_config["project"].get("pre-render") or []
    for script in [scripts] if isinstance(scripts, str) else scripts:
        assert (ROOT / script.split()[-1]).is_file(), (
            f"pre-render script {script} is missing"
        )


def navbar_items(quarto_config):
    navbar = quarto_config["website"]["navbar"]
    return [item for side in ("left", "right") for item in navbar.get(side, [])]


def test_navbar_links_exist(quarto_config):
    items = navbar_items(quarto_config)
    hrefs = [
        item["href"] for item in items if isinstance(item, dict) and "href" in item
    ]
    assert "about.qmd" in hrefs, "the navbar links to the About page"
    assert any(h.startswith("https://github.com/") for h in hrefs), (
        "the navbar links to the source repository"
    )
    for href in hrefs:
        if href == "index.xml":
            # The RSS feed: written by the listing in index.qmd, which must ask for it.
            assert front_matter(ROOT / "index.qmd")["listing"].get("feed")
        elif not re.match(r"https?://", href):
            page = (ROOT / href).resolve()
            assert page.exists() or page in reference_pages(), (
                f"navbar links to {href}, which does not exist"
            )


# Readers arrive from the course's lesson 13 with its notebook open: the page that
# follows it cell by cell is one click away from the navbar, the home page's first
# paragraph (above the list of posts) and the README.
LESSON_PAGE = "lesson-13.qmd"


def test_the_lesson_page_is_linked_from_the_navbar_home_page_and_readme(quarto_config):
    assert (ROOT / LESSON_PAGE).is_file()
    hrefs = [item.get("href") for item in navbar_items(quarto_config)]
    assert LESSON_PAGE in hrefs, "the navbar links to the lesson's page"
    first_paragraph = body(ROOT / "index.qmd").strip().split("\n\n")[0]
    assert LESSON_PAGE in local_links(first_paragraph), (
        "the home page's first paragraph links to the lesson's page"
    )
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert LESSON_PAGE in local_links(readme), "README.md links to the lesson's page"


def test_navbar_icons_have_accessible_names(quarto_config):
    for item in navbar_items(quarto_config):
        if isinstance(item, dict) and "icon" in item and "text" not in item:
            assert item.get("aria-label"), (
                f"navbar icon {item['icon']} needs an aria-label"
            )


def test_listing_shows_every_post_in_series_order_with_a_feed():
    listing = front_matter(ROOT / "index.qmd")["listing"]
    assert listing["contents"] in ("posts", "posts/*/index.qmd", ["posts"])
    # The page is drawn by the series template (reading order, checked in the rendered
    # page by test_render.py); the feed keeps the newest post first.
    template = ROOT / listing["template"]
    assert template.is_file(), f"the listing template {template} is missing"
    assert listing["sort"] == "date desc"
    assert listing.get("feed") not in (None, False)


def test_post_folders_are_numbered_in_series_order():
    numbers = [int(post.parent.name.split("-", 1)[0]) for post in POSTS]
    assert numbers == list(range(1, len(POSTS) + 1)), (
        f"post folders must be numbered 01, 02, ... without gaps: {numbers}"
    )
    for post in POSTS:
        part = [c for c in front_matter(post)["categories"] if c.startswith("part ")]
        assert part in (["part 1"], ["part 2"]), (
            f"{post.parent.name}: one part category"
        )


def test_post_metadata_shared_options():
    meta = load_yaml(POSTS_DIR / "_metadata.yml")
    assert meta.get("author"), "posts/_metadata.yml sets the author"
    assert meta.get("jupyter") == "python3"
    assert meta["execute"]["freeze"] == "auto"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_page_has_title_and_description(page):
    meta = front_matter(page)
    assert isinstance(meta.get("title"), str) and meta["title"].strip()
    description = meta.get("description")
    assert isinstance(description, str) and description.strip(), (
        f"{page} needs a description"
    )


@pytest.mark.parametrize("post", POSTS, ids=POST_IDS)
def test_post_front_matter(post):
    meta = front_matter(post)
    assert isinstance(meta.get("date"), dt.date) or re.fullmatch(
        r"\d{4}-\d{2}-\d{2}", str(meta.get("date"))
    ), f"{post.parent.name}: date must be ISO (YYYY-MM-DD), got {meta.get('date')!r}"
    description = meta["description"].strip()
    assert description.endswith((".", "?")) and len(description) < 300
    assert len(re.findall(r"[.?!](\s|$)", description)) == 1, (
        f"{post.parent.name}: description is one sentence"
    )
    categories = meta.get("categories")
    assert (
        isinstance(categories, list)
        and categories
        and all(isinstance(c, str) for c in categories)
    )
    image = meta.get("image")
    assert image, f"{post.parent.name}: needs an image for the listing"
    assert (post.parent / image).is_file(), (
        f"{post.parent.name}: image {image} does not exist"
    )
    assert meta.get("image-alt"), f"{post.parent.name}: the image needs image-alt text"


@pytest.mark.parametrize("post", POSTS, ids=POST_IDS)
def test_post_figures_have_captions_and_alt_text(post):
    figures = [
        c
        for c in python_cells(post)
        if str(c.options.get("label", "")).startswith("fig-")
    ]
    assert figures, f"{post.parent.name} has no figure (a cell with #| label: fig-...)"
    for cell in figures:
        label = cell.options["label"]
        assert cell.options.get("fig-cap"), (
            f"{post.parent.name}: {label} needs #| fig-cap"
        )
        assert cell.options.get("fig-alt"), (
            f"{post.parent.name}: {label} needs #| fig-alt"
        )


@pytest.mark.parametrize("post", POSTS, ids=POST_IDS)
def test_post_cross_references_resolve(post):
    missing = cross_references(post) - labels_defined(post)
    assert not missing, (
        f"{post.parent.name} refers to undefined labels: {sorted(missing)}"
    )


@pytest.mark.parametrize("post", POSTS, ids=POST_IDS)
def test_post_has_numbered_equations(post):
    assert any(label.startswith("eq-") for label in labels_defined(post)), (
        f"{post.parent.name} derives its result in numbered equations "
        "($$ ... $$ {#eq-...})"
    )


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_relative_links_exist(page):
    # The API reference's pages are generated at render time: a link to one must
    # name a page that quartodoc's configuration lists, and an object on it.
    generated = reference_pages()
    anchors = reference_anchors()
    for target in local_links(body(page), keep_anchors=True):
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve()
        assert resolved.exists() or resolved in generated, (
            f"{page.relative_to(ROOT)} links to {target}, which does not exist"
        )
        if anchor and resolved in anchors:
            assert anchor in anchors[resolved], (
                f"{page.relative_to(ROOT)} links to {target}, but that reference page "
                f"has no #{anchor}; its objects: {sorted(anchors[resolved])}"
            )


def links_to(post: Path, other: Path) -> bool:
    for target in local_links(body(post)):
        resolved = (post.parent / target).resolve()
        if resolved in (other.resolve(), other.parent.resolve()):
            return True
    return False


@pytest.mark.parametrize("index", range(len(POSTS)), ids=POST_IDS)
def test_posts_link_to_previous_and_next(index):
    post = POSTS[index]
    if index > 0:
        assert links_to(post, POSTS[index - 1]), (
            f"{post.parent.name} links to the previous post"
        )
    if index < len(POSTS) - 1:
        assert links_to(post, POSTS[index + 1]), (
            f"{post.parent.name} links to the next post"
        )


def test_post_dates_are_distinct():
    dates = [str(front_matter(p)["date"]) for p in POSTS]
    assert len(set(dates)) == len(dates), (
        "each post has its own date, so the series has one order"
    )


def test_readme_lists_every_post():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for post in POSTS:
        entry = f"[{front_matter(post)['title']}](posts/{post.parent.name}/index.qmd)"
        assert entry in readme, f"README.md does not list {post.parent.name} as {entry}"


@pytest.mark.parametrize("post", POSTS, ids=POST_IDS)
def test_display_maths_is_balanced_and_labels_are_unique(post):
    prose = re.sub(r"^```.*?^```\s*$", "", body(post), flags=re.S | re.M)
    assert prose.count("$$") % 2 == 0, (
        f"{post.parent.name} has an unclosed $$ display block"
    )
    labels = re.findall(r"\{#((?:eq|fig|tbl|sec)-[\w-]+)", prose) + [
        c.options["label"]
        for c in python_cells(post)
        if isinstance(c.options.get("label"), str)
    ]
    duplicates = {label for label in labels if labels.count(label) > 1}
    assert not duplicates, (
        f"{post.parent.name} defines these labels twice: {sorted(duplicates)}"
    )


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_fenced_divs_are_balanced(page):
    prose = re.sub(r"^```.*?^```\s*$", "", body(page), flags=re.S | re.M)
    depth = 0
    for number, line in enumerate(prose.splitlines(), start=1):
        if re.match(r"^:::+\s*\{", line) or re.match(r"^:::+\s*[\w.-]+\s*$", line):
            depth += 1
        elif re.match(r"^:::+\s*$", line):
            depth -= 1
            assert depth >= 0, (
                f"{page.relative_to(ROOT)}: a ::: closes nothing (prose line {number})"
            )
    assert depth == 0, f"{page.relative_to(ROOT)}: a ::: div (callout) is never closed"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_links_to_sections_land_on_a_label(page):
    for target, anchor in re.findall(
        r"\]\((?!https?:)([^)#\s]*)#([\w-]+)\)", body(page)
    ):
        linked = (page.parent / target).resolve() if target else page
        if linked.suffix == ".qmd" and anchor.startswith(
            ("sec-", "eq-", "fig-", "tbl-")
        ):
            assert anchor in labels_defined(linked), (
                f"{page.relative_to(ROOT)} links to #{anchor} in "
                f"{target or 'itself'}, which has no such label"
            )


# Equations are referred to only through @eq- cross-references, which Quarto numbers;
# a number typed by hand ("eq. (3)", "equation 2", "Eqs. 4 and 5") goes stale as soon
# as an equation is added.
HAND_NUMBERED_EQUATION = re.compile(
    r"\beqs?(?:\.\s*|\s+)\(?\d"  # eq. 3, eq. (3), eqs. (3) and (5), eq 3, Eq.(3)
    r"|\bequations?\s*\(?\d",  # equation 2, equation (2), equations 3 and 4
    re.IGNORECASE,
)
CODE_BLOCK = re.compile(r"^```.*?^```\s*$", re.S | re.M)
EQUATION_LABEL = re.compile(r"\$\$[ \t]*\{#(eq-[\w-]+)\}")
PAGE_IDS = [str(p.relative_to(ROOT)) for p in PAGES]


@pytest.mark.parametrize(
    ("text", "hand_numbered"),
    [
        ("as in eq. (3), the sum", True),
        ("the sum (eq. 2)", True),
        ("# eqs. (3) and (5)", True),
        ("Eq.(4) says", True),
        ("see equation 2", True),
        ("equations (3) and (4)", True),
        ("as @eq-forward says", False),
        ("torch.eq(x, 0).sum()", False),
        ("the equation above, y = 2x", False),
        ("a sequence 3 long, equal to 2", False),
    ],
)
def test_hand_numbered_equation_pattern(text, hand_numbered):
    assert bool(HAND_NUMBERED_EQUATION.search(text)) == hand_numbered


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_every_equation_label_is_cited(page):
    uncited = set(EQUATION_LABEL.findall(body(page))) - cross_references(page)
    assert not uncited, (
        f"{page.relative_to(ROOT)} numbers these equations but never cites them "
        f"with @eq-...: {sorted(uncited)} (cite each in the prose, or drop the label)"
    )


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_no_hand_written_equation_numbers(page):
    # Front matter, prose, captions, code and comments alike: a number typed by hand is
    # wrong wherever it sits.
    text = page.read_text(encoding="utf-8")
    found = [
        f"line {text.count(chr(10), 0, m.start()) + 1}: {m.group()!r}"
        for m in HAND_NUMBERED_EQUATION.finditer(text)
    ]
    assert not found, (
        f"{page.relative_to(ROOT)} numbers equations by hand "
        f"(refer to them as @eq-name): {found}"
    )


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_no_cross_references_in_code(page):
    # Quarto resolves @eq-/@fig- in prose (and in `#|` cell options such as fig-cap,
    # which are Markdown); in code and its comments they show literally.
    found = [
        f"{ref!r} in a code block starting {block.group().splitlines()[0]!r}"
        for block in CODE_BLOCK.finditer(body(page))
        for line in block.group().splitlines()
        if not line.lstrip().startswith("#|")
        for ref in re.findall(r"@(?:eq|fig|tbl|sec)-[\w-]+", line)
    ]
    assert not found, (
        f"{page.relative_to(ROOT)} has cross-references inside code, where they show "
        f"literally (write the words instead): {found}"
    )


# The derivative, ∂, the backward pass and the upstream gradient are defined in post 2
# ("Derivatives and the chain rule"); post 1 comes before it and must not lean on them.
BEFORE_DERIVATIVES = POSTS_DIR / "01-log-rules" / "index.qmd"
DERIVATIVE_WORDS = re.compile(
    r"\\partial|∂|\bderivatives?\b|upstream|backward pass|_backward\b|\.backward\("
    r"|grad_out|\.grad\b|exercise(_gradient)?\(|check_(backward|gradient)\("
)


def test_post_1_uses_nothing_post_2_defines():
    found = [
        f"line {number}: {line.strip()[:70]!r}"
        for number, line in enumerate(
            BEFORE_DERIVATIVES.read_text(encoding="utf-8").splitlines(), start=1
        )
        if DERIVATIVE_WORDS.search(line)
    ]
    assert not found, (
        "post 1 uses derivatives, the backward pass or the upstream gradient before "
        f"post 2 defines them (move it to post 2 or later): {found}"
    )


# The four names of one gradient (maths, fast.ai's .g, grad_x, autograd's .grad) are
# tabled once, on the notation page; a post links there instead of a table of its own.
TABLE = re.compile(r"(?:^\|.*\n?)+", re.MULTILINE)


def names_a_gradient_four_ways(table: str) -> bool:
    return all(
        re.search(pattern, table)
        for pattern in (r"\\partial L", r"`\w+\.g`", r"`grad_\w+`", r"`\w+\.grad`")
    )


def test_the_names_of_a_gradient_are_tabled_only_on_the_notation_page():
    tabled = [
        page.relative_to(ROOT).as_posix()
        for page in PAGES
        if any(
            names_a_gradient_four_ways(t.group()) for t in TABLE.finditer(body(page))
        )
    ]
    assert tabled == ["notation.qmd"], (
        "the table of a gradient's names (∂L/∂X, .g, grad_x, .grad) belongs on "
        f"notation.qmd only (#sec-four-names); found in {tabled}"
    )


def test_softmax_explorer_numbers_logits_as_the_post_does():
    # Post 7 writes the logits z_1 ... z_C; its explorer's sliders must say the same.
    explorer = POSTS_DIR / "07-softmax-cross-entropy" / "_explorer.qmd"
    labels = re.findall(r'label: "logit z(\w)"', explorer.read_text(encoding="utf-8"))
    assert labels == list("₁₂₃₄"), (
        f"the explorer labels its logits z{', z'.join(labels)}; the post writes "
        "z₁ … z₄ (classes numbered from 1)"
    )
