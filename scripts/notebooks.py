"""Each post as a Jupyter notebook that runs as downloaded.

Quarto's own ``ipynb`` format would execute every post a second time; this builds
the notebook from the ``.qmd`` source instead, once per render, as Quarto's
post-render step (``scripts/post_render.py``). The notebook

- starts with a cell that installs the library when ``backprop.exercises`` is not
  importable (an unrelated package on PyPI is also called ``backprop``), at the
  commit the page was built from,
- links to the published pages instead of the repository's ``.qmd`` files,
- reads its cross-references as text: ``@eq-x`` becomes "Equation 2", and the
  equation carries ``\\tag{2}``; ``@fig-x`` becomes "Figure 1", captioned below
  the cell that draws it,
- runs the exercise stubs (the page shows them without running them), so "Run
  all" stops at the first unsolved exercise, and marks each worked solution, whose
  cell opens collapsed in Jupyter and in Colab.

The cells carry no outputs: the reader runs them. The site publishes each notebook
beside its page, and the repository's published branch holds it too, which is where
Colab opens it from (``Site.colab_url``).
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent

FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.S)
PYTHON_CELL = re.compile(r"^```\{python\}[^\n]*\n(.*?)^```[ \t]*$\n?", re.S | re.M)
CELL_OPTION = re.compile(r"^#\|\s*([\w-]+)\s*:\s*(.*)$")
EQ_LABEL = re.compile(r"\$\$[ \t]*\{#(eq-[\w-]+)\}")
CROSS_REF = re.compile(r"(?<![\w@])@((?:fig|eq|tbl|sec)-[\w-]*\w)")
QMD_LINK = re.compile(r"\]\((?!https?:|mailto:|#)([^)\s#]+\.qmd)(#[\w.-]+)?\)")
SHORTCODE_LINE = re.compile(r"^\{\{<.*>\}\}[ \t]*\n?", re.M)
HEADING_ATTRIBUTES = re.compile(r"^(#+ .*?)\s*\{[^}]*\}[ \t]*$", re.M)
SECTION_HEADING = re.compile(r"^#+ (.*?)\s*\{#(sec-[\w-]+)[^}]*\}[ \t]*$", re.M)
CALLOUT_OPEN = re.compile(r"^:::+ *\{\.callout-(\w+)[^}]*\}[ \t]*$")
DIV_FENCE = re.compile(r"^:::+")
LOCAL_ANCHOR = re.compile(r"\]\((#[\w-]+)\)")

INSTALL_CELL = """\
# Install the library this notebook imports, unless it is installed already, at the
# version this page was built from. (Another package on PyPI is called backprop too:
# look for this library's own module.)
import importlib
import subprocess
import sys

REQUIREMENT = {requirement!r}
try:
    import backprop.exercises
except ImportError:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", REQUIREMENT], check=True
    )
    # Forget what the failed import left, so that the next one finds the library.
    for name in [name for name in sys.modules if name.split(".")[0] == "backprop"]:
        del sys.modules[name]
    importlib.invalidate_caches()"""

# The branch .github/workflows/publish.yml publishes the rendered site to (Quarto's
# `gh-pages` target), so each notebook is also at <branch>:posts/NN-slug/index.ipynb.
PUBLISHED_BRANCH = "gh-pages"
COLAB = "https://colab.research.google.com/github"
# Colab shows a code cell whose first line is a title as that title and a "Show
# code" button when the cell's metadata asks for its form view.
SOLUTION_TITLE = "# @title Solution"
COLLAPSED = {"jupyter": {"source_hidden": True}, "cellView": "form"}


def notebook_path(post: Path) -> PurePosixPath:
    """Where the notebook of ``posts/NN-slug/index.qmd`` is, from the site's root."""
    return PurePosixPath("posts", post.parent.name, "index.ipynb")


def built_from(root: Path = ROOT) -> str | None:
    """The commit checked out at ``root``, or None when ``root`` is no git checkout
    of its own (a copy without history, an unborn branch, no git)."""
    if shutil.which("git") is None:
        return None
    found = subprocess.run(
        ["git", "rev-parse", "--show-toplevel", "HEAD"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = found.stdout.split()
    if found.returncode != 0 or len(lines) != 2:
        return None
    top, commit = lines
    if Path(top).resolve() != root.resolve():
        return None  # a folder inside some other repository
    return commit if re.fullmatch(r"[0-9a-f]{40}", commit) else None


@dataclass(frozen=True)
class Site:
    """Where the published pages live and where the library installs from."""

    url: str
    repository: str
    requirement: str

    @classmethod
    def from_project(cls, root: Path = ROOT) -> Site:
        """The site ``_quarto.yml`` names; the library pinned to the commit checked
        out at ``root``, or, outside a git checkout, to the release tag of its
        version (``v`` and ``pyproject.toml``'s version)."""
        config = yaml.safe_load((root / "_quarto.yml").read_text(encoding="utf-8"))
        website = config["website"]
        project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
        name, version = project["project"]["name"], project["project"]["version"]
        repo_url = website["repo-url"].rstrip("/")
        return cls(
            url=website["site-url"].rstrip("/") + "/",
            repository=repo_url,
            requirement=f"{name} @ git+{repo_url}@{built_from(root) or f'v{version}'}",
        )

    def colab_url(self, post: Path) -> str:
        """The address that opens the post's notebook, as published, in Colab."""
        match = re.fullmatch(
            r"https://github\.com/([^/]+/[^/]+?)(?:\.git)?", self.repository
        )
        if not match:
            raise ValueError(
                f"Colab opens notebooks from GitHub; repo-url is {self.repository}"
            )
        return f"{COLAB}/{match.group(1)}/blob/{PUBLISHED_BRANCH}/{notebook_path(post)}"


def _split(text: str) -> list[tuple[str, str]]:
    """The document as ("markdown", text) and ("python", source) pieces, in order."""
    pieces, start = [], 0
    for match in PYTHON_CELL.finditer(text):
        pieces.append(("markdown", text[start : match.start()]))
        pieces.append(("python", match.group(1)))
        start = match.end()
    pieces.append(("markdown", text[start:]))
    return [
        (kind, chunk) for kind, chunk in pieces if kind == "python" or chunk.strip()
    ]


def _options(source: str) -> tuple[dict, str]:
    """A cell's ``#|`` options and the code without them."""
    options, code = {}, []
    for line in source.splitlines():
        match = CELL_OPTION.match(line)
        if match and not code:
            value = match.group(2)
            options[match.group(1)] = yaml.safe_load(value) if value.strip() else None
        else:
            code.append(line)
    return options, "\n".join(code).strip("\n")


def _page_url(site: Site, post_dir: Path, target: str, anchor: str | None) -> str:
    """The published address of a ``.qmd`` link made from the post's folder."""
    root = post_dir.parent.parent  # posts/NN-slug/ sits two levels below the project
    resolved = (post_dir / target).resolve().relative_to(root.resolve())
    page = resolved.with_suffix(".html").as_posix()
    if page.endswith("/index.html"):
        page = page[: -len("index.html")]
    return site.url + page + (anchor or "")


def _unfence_callouts(body: str) -> str:
    """Callout boxes as a bold title line; the ``:::`` fences go.

    Code cells hold no ``:::`` lines, so the whole body can be read line by line.
    """
    lines, out, in_callout = body.splitlines(), [], ""
    for line in lines:
        opening = CALLOUT_OPEN.match(line)
        if opening:
            in_callout = opening.group(1).capitalize()
            continue
        if DIV_FENCE.match(line):
            in_callout = ""
            continue
        if in_callout and line.startswith("#"):
            line = f"**{in_callout}: {line.lstrip('#').strip()}**"
            in_callout = ""
        out.append(line)
    return "\n".join(out) + "\n"


def notebook_for(post: Path, site: Site) -> nbformat.NotebookNode:
    """The notebook for the post at ``post`` (``posts/NN-slug/index.qmd``)."""
    text = post.read_text(encoding="utf-8")
    match = FRONT_MATTER.match(text)
    meta = yaml.safe_load(match.group(1)) if match else {}
    body = text[match.end() :] if match else text

    equations = {label: n for n, label in enumerate(EQ_LABEL.findall(body), start=1)}
    sections = {label: title for title, label in SECTION_HEADING.findall(body)}
    pieces = _split(_unfence_callouts(body))
    figures: dict[str, tuple[int, str]] = {}
    for kind, chunk in pieces:
        if kind == "python":
            options, _ = _options(chunk)
            label = options.get("label")
            if isinstance(label, str) and label.startswith("fig-"):
                figures[label] = (len(figures) + 1, str(options.get("fig-cap", "")))
    page = _page_url(site, post.parent, "index.qmd", None)

    def reference(ref: re.Match) -> str:
        label = ref.group(1)
        if label in equations:
            return f"Equation {equations[label]}"
        if label in figures:
            return f"Figure {figures[label][0]}"
        if label in sections:
            return f'the section "{sections[label]}"'
        raise ValueError(f"{post}: cannot resolve the cross-reference @{label}")

    def markdown(chunk: str) -> str:
        chunk = EQ_LABEL.sub(lambda m: f"\\tag{{{equations[m.group(1)]}}} $$", chunk)
        chunk = QMD_LINK.sub(
            lambda m: f"]({_page_url(site, post.parent, m.group(1), m.group(2))})",
            chunk,
        )
        chunk = LOCAL_ANCHOR.sub(lambda m: f"]({page}{m.group(1)})", chunk)
        chunk = CROSS_REF.sub(reference, chunk)
        chunk = SHORTCODE_LINE.sub("", chunk)
        chunk = HEADING_ATTRIBUTES.sub(r"\1", chunk)
        return chunk.strip("\n")

    cells = [
        nbformat.v4.new_markdown_cell(
            f"# {meta.get('title', post.parent.name)}\n\n"
            f"{meta.get('description', '')}\n\n"
            f"This is the notebook of [the post on the site]({page}); "
            "run it top to bottom."
        ),
        nbformat.v4.new_code_cell(INSTALL_CELL.format(requirement=site.requirement)),
    ]
    for kind, chunk in pieces:
        if kind == "markdown":
            text_md = markdown(chunk)
            if text_md:
                cells.append(nbformat.v4.new_markdown_cell(text_md))
            continue
        options, code = _options(chunk)
        label = options.get("label")
        label = label if isinstance(label, str) else ""
        if label.startswith("solution-"):
            cells.append(
                nbformat.v4.new_markdown_cell(
                    "**Solution.** Try the exercise above first: the next cell is a "
                    "worked answer, and running it replaces yours."
                )
            )
        elif options.get("eval") is False and not label.startswith("exercise-"):
            continue  # shown on the page as an example, never run
        cell = nbformat.v4.new_code_cell(code)
        if label.startswith("solution-"):
            cell.source = f"{SOLUTION_TITLE}\n{code}"
            cell.metadata.update(copy.deepcopy(COLLAPSED))
        if label:
            cell.metadata["tags"] = [label]
        cells.append(cell)
        if label in figures:
            number, caption = figures[label]
            cells.append(nbformat.v4.new_markdown_cell(f"*Figure {number}: {caption}*"))

    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    notebook.metadata["language_info"] = {"name": "python"}
    return notebook


def write_notebooks(
    output_dir: Path, root: Path = ROOT, site: Site | None = None
) -> list[Path]:
    """Write ``posts/NN-slug/index.ipynb`` under ``output_dir`` for every post."""
    site = site or Site.from_project(root)
    written = []
    for post in sorted((root / "posts").glob("*/index.qmd")):
        target = output_dir / notebook_path(post)
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook_for(post, site), target)
        written.append(target)
    return written
