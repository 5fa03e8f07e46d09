"""Each post's downloadable notebook (scripts/notebooks.py), built and run here."""

from __future__ import annotations

import re

import nbformat
import notebooks
import pytest
from nbclient import NotebookClient

from site_sources import ROOT, labels_defined, post_paths, reference_pages

POSTS = post_paths()
SITE = notebooks.Site.from_project()


def markdown_of(nb) -> str:
    return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


@pytest.mark.parametrize("post", POSTS, ids=[p.parent.name for p in POSTS])
def test_notebook_reads_as_text_and_links_to_the_site(post):
    nb = notebooks.notebook_for(post, SITE)
    nbformat.validate(nb)
    text = markdown_of(nb)
    assert not re.search(r"\]\((?!https?:)[^)]*\.qmd", text), (
        "a link still points at a .qmd"
    )
    assert not re.search(r"(?<![\w@])@(eq|fig|sec|tbl)-", text), "a raw cross-reference"
    assert ":::" not in text and "{{<" not in text and "{#" not in text
    for target in re.findall(r"\]\((https?://[^)\s]+)\)", text):
        if target.startswith(SITE.url):
            page = target[len(SITE.url) :].split("#")[0]
            source = ROOT / (page + "index.qmd" if page.endswith("/") else page)
            source = source.with_suffix(".qmd")
            # The API reference's pages are generated at render time (quartodoc).
            assert source.is_file() or source in reference_pages(), (
                f"{target} is not a page of the site"
            )
    equations = sorted(lbl for lbl in labels_defined(post) if lbl.startswith("eq-"))
    tags = [int(n) for n in re.findall(r"\\tag\{(\d+)\}", text)]
    assert tags == list(range(1, len(equations) + 1)), (
        "equations numbered 1, 2, … in order"
    )


@pytest.mark.parametrize("post", POSTS, ids=[p.parent.name for p in POSTS])
def test_notebook_installs_the_library_first(post):
    nb = notebooks.notebook_for(post, SITE)
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert 'find_spec("backprop") is None' in first_code.source
    assert SITE.requirement in first_code.source
    assert "import backprop" not in first_code.source


def test_install_cell_installs_only_when_the_library_is_missing(monkeypatch):
    calls = []
    monkeypatch.setattr("subprocess.run", lambda args, **kw: calls.append(args))
    code = notebooks.INSTALL_CELL.format(requirement=SITE.requirement)
    exec(code, {})  # backprop is installed here: nothing to do
    assert calls == []
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    exec(code, {})
    assert (
        calls
        and calls[0][-1] == SITE.requirement
        and calls[0][1:4] == ["-m", "pip", "install"]
    )


def test_the_requirement_names_this_distribution():
    import tomllib

    name = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"]
    assert SITE.requirement.startswith(f"{name} @ git+https://")


def test_write_notebooks_writes_one_per_post(tmp_path):
    written = notebooks.write_notebooks(tmp_path)
    assert sorted(p.parent.name for p in written) == [p.parent.name for p in POSTS]
    for path in written:
        nbformat.validate(nbformat.read(path, as_version=4))


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("post", POSTS, ids=[p.parent.name for p in POSTS])
def test_notebook_runs_as_downloaded(post, tmp_path):
    # The notebook runs from a folder of its own: it needs nothing from the repository.
    nb = notebooks.notebook_for(post, SITE)
    exercises = [
        c for c in nb.cells if "exercise-" in " ".join(c.metadata.get("tags", []))
    ]
    # Run all stops at the first unsolved exercise: run up to it, then check it stops.
    cut = nb.cells.index(exercises[0]) if exercises else len(nb.cells)
    head = nbformat.v4.new_notebook(cells=nb.cells[:cut], metadata=nb.metadata)
    NotebookClient(
        head,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    assert list(tmp_path.iterdir()) == [], "the notebook wrote files"
