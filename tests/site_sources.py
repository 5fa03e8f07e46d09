"""Reading the site's sources without Quarto: posts, front matter, cells, links."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import reference_links
import yaml

ROOT = Path(__file__).resolve().parent.parent
POSTS_DIR = ROOT / "posts"

FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.S)
# ```{python} cells, with their `#| key: value` options.
PYTHON_CELL = re.compile(r"^```\{python\}[^\n]*\n(.*?)^```\s*$", re.S | re.M)
CELL_OPTION = re.compile(r"^#\|\s*([\w-]+)\s*:\s*(.*)$", re.M)
# Markdown links and images whose target is a relative path (not a URL, not an anchor).
LOCAL_LINK = re.compile(
    r"!?\[[^\]]*\]\((?!https?:|mailto:|#)([^)\s]+)(?:\s+\"[^\"]*\")?\)"
)
CROSS_REF = re.compile(r"(?<![\w@])@((?:fig|eq|tbl|sec)-[\w-]*\w)")
EQ_LABEL = re.compile(r"\$\$[ \t]*\{#(eq-[\w-]+)\}")
DIV_LABEL = re.compile(r"\{#((?:fig|tbl|sec)-[\w-]+)[\s}]")
HEADING_LABEL = re.compile(r"^#+ .*\{#(sec-[\w-]+)\}", re.M)


def front_matter(path: Path) -> dict:
    match = FRONT_MATTER.match(path.read_text(encoding="utf-8"))
    if not match:
        raise ValueError(f"{path} has no YAML front matter")
    return yaml.safe_load(match.group(1)) or {}


def body(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    match = FRONT_MATTER.match(text)
    return text[match.end() :] if match else text


@dataclass
class Cell:
    source: str
    options: dict = field(default_factory=dict)


def python_cells(path: Path) -> list[Cell]:
    cells = []
    for match in PYTHON_CELL.finditer(body(path)):
        source = match.group(1)
        options = {}
        for key, value in CELL_OPTION.findall(source):
            options[key] = yaml.safe_load(value) if value.strip() else None
        cells.append(Cell(source, options))
    return cells


def local_links(text: str, keep_anchors: bool = False) -> list[str]:
    """Relative link targets, without any #anchor unless ``keep_anchors``."""
    targets = []
    for target in LOCAL_LINK.findall(text):
        if not keep_anchors:
            target = target.split("#", 1)[0]
        if target:
            targets.append(target)
    return targets


def labels_defined(path: Path) -> set[str]:
    text = body(path)
    labels = (
        set(EQ_LABEL.findall(text))
        | set(DIV_LABEL.findall(text))
        | set(HEADING_LABEL.findall(text))
    )
    for cell in python_cells(path):
        label = cell.options.get("label")
        if isinstance(label, str):
            labels.add(label)
    return labels


def cross_references(path: Path) -> set[str]:
    # Code cells may contain decorators and e-mail-like strings: look at prose only.
    prose = PYTHON_CELL.sub("", body(path))
    prose = re.sub(r"^```.*?^```\s*$", "", prose, flags=re.S | re.M)
    return set(CROSS_REF.findall(prose))


def reference_pages() -> set[Path]:
    """The pages ``quartodoc build`` writes (reference/ is generated, not in git).

    One per topic in the ``quartodoc:`` section of ``_quartodoc.yml``
    (``reference/linear.qmd``), and the index.
    """
    return {reference_directory() / "index.qmd", *reference_anchors()}


def reference_anchors() -> dict[Path, set[str]]:
    """Each topic page of the reference -> the anchors of the objects on it."""
    directory = reference_directory()
    return {
        directory / f"{page.path}.qmd": {f"backprop.{name}" for name in page.objects}
        for page in reference_links.reference_layout(ROOT)
    }


def reference_directory() -> Path:
    return ROOT / reference_links.quartodoc_config(ROOT).get("dir", "reference")


def top_level_pages() -> list[Path]:
    """The pages outside posts/: the home page, About, Notation, the lesson's guide."""
    return sorted(ROOT.glob("*.qmd"))


def site_pages() -> list[Path]:
    """Every page written by hand: the top-level ones, then the posts in order."""
    return [*top_level_pages(), *post_paths()]


def pages_with_code() -> list[Path]:
    """The pages whose Python cells run when the site renders: every post, then each
    top-level page with a cell (executed like a post, by ``test_posts.py``)."""
    return [*post_paths(), *(page for page in top_level_pages() if python_cells(page))]


def page_name(page: Path) -> str:
    """A post by its folder (``06-backprop-from-scratch``), another page by its path
    (``lesson-13.qmd``): the names tests give pages."""
    if page.parent.parent == POSTS_DIR:
        return page.parent.name
    return page.relative_to(ROOT).as_posix()


def post_paths() -> list[Path]:
    """Every post, oldest first (the reading order of the series)."""
    posts = list(POSTS_DIR.glob("*/index.qmd"))
    return sorted(
        posts, key=lambda p: (str(front_matter(p).get("date")), p.parent.name)
    )
