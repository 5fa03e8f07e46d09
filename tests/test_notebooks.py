"""Each post's downloadable notebook (scripts/notebooks.py), built and run here."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import types
from pathlib import Path

import nbformat
import notebooks
import pytest
import yaml
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from site_sources import (
    ROOT,
    labels_defined,
    post_paths,
    python_cells,
    reference_pages,
)

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
    # PyPI's "backprop" is another project: only this library's own module counts.
    assert "import backprop.exercises\n" in first_code.source
    assert f"REQUIREMENT = {SITE.requirement!r}" in first_code.source


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))[
        "project"
    ]


def repo_url() -> str:
    config = yaml.safe_load((ROOT / "_quarto.yml").read_text(encoding="utf-8"))
    return config["website"]["repo-url"]


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_library_is_pinned_to_the_commit_the_pages_are_built_from():
    if not (ROOT / ".git").exists():
        pytest.skip("the project is not a git checkout here")
    commit = git("rev-parse", "HEAD", cwd=ROOT)
    assert re.fullmatch(r"[0-9a-f]{40}", commit)
    assert SITE.requirement == f"{pyproject()['name']} @ git+{repo_url()}@{commit}"


def project_copy(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name in ("_quarto.yml", "pyproject.toml"):
        shutil.copy(ROOT / name, folder / name)
    return folder


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_outside_a_git_checkout_the_library_is_pinned_to_its_release(tmp_path):
    release = f"{pyproject()['name']} @ git+{repo_url()}@v{pyproject()['version']}"
    bare = project_copy(tmp_path / "no-git")
    assert notebooks.Site.from_project(bare).requirement == release
    unborn = project_copy(tmp_path / "no-commit")
    git("init", "-q", cwd=unborn)
    assert notebooks.Site.from_project(unborn).requirement == release
    # A copy inside another project's repository is not that repository's commit.
    outer = tmp_path / "outer"
    outer.mkdir()
    git("init", "-q", cwd=outer)
    git("commit", "-q", "--allow-empty", "-m", "x", cwd=outer)
    inner = project_copy(outer / "inner")
    assert notebooks.Site.from_project(inner).requirement == release
    git("add", ".", cwd=inner)
    git("commit", "-q", "-m", "the project", cwd=inner)
    assert notebooks.Site.from_project(inner).requirement == release
    own = project_copy(tmp_path / "own")
    git("init", "-q", cwd=own)
    git("add", ".", cwd=own)
    git("commit", "-q", "-m", "the project", cwd=own)
    commit = git("rev-parse", "HEAD", cwd=own)
    assert notebooks.Site.from_project(own).requirement.endswith(f"@{commit}")


@pytest.fixture
def backprop_modules():
    """The library's modules as imported here, put back after the test."""
    saved = {n: m for n, m in sys.modules.items() if n.split(".")[0] == "backprop"}
    yield
    for name in [n for n in sys.modules if n.split(".")[0] == "backprop"]:
        del sys.modules[name]
    sys.modules.update(saved)


def test_install_cell_installs_only_when_the_library_is_missing(
    monkeypatch, backprop_modules
):
    calls = []
    monkeypatch.setattr("subprocess.run", lambda args, **kw: calls.append(args))
    code = notebooks.INSTALL_CELL.format(requirement=SITE.requirement)
    exec(code, {})  # the library is installed here: nothing to do
    assert calls == []
    # Another package named backprop, without this library's modules.
    other = types.ModuleType("backprop")
    other.__path__ = []
    monkeypatch.setitem(sys.modules, "backprop", other)
    monkeypatch.setitem(sys.modules, "backprop.exercises", None)
    exec(code, {})
    assert len(calls) == 1
    assert calls[0][1:] == ["-m", "pip", "install", "-q", SITE.requirement]
    # The failed import's leftovers are gone, so the next import finds what pip put.
    assert "backprop" not in sys.modules and "backprop.exercises" not in sys.modules


@pytest.mark.parametrize("post", POSTS, ids=[p.parent.name for p in POSTS])
def test_solutions_open_collapsed_in_jupyter_and_colab(post):
    nb = notebooks.notebook_for(post, SITE)
    nbformat.validate(nb)
    solutions = [
        c
        for c in nb.cells
        if any(t.startswith("solution-") for t in c.metadata.get("tags", []))
    ]
    assert len(solutions) == len(
        [
            c
            for c in python_cells(post)
            if str(c.options.get("label", "")).startswith("solution-")
        ]
    )
    for cell in nb.cells:
        hidden = cell in solutions
        # JupyterLab, Notebook 7 and VS Code fold the code; Colab shows the title
        # line and a "Show code" button.
        assert cell.metadata.get("jupyter", {}).get("source_hidden", False) is hidden
        assert (cell.metadata.get("cellView") == "form") is hidden
        if hidden:
            first = cell.source.splitlines()[0]
            assert re.fullmatch(r"# ?@title \S.*", first), first
            compile(cell.source, "solution", "exec")


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


def printed_by(python: Path, code: str) -> str:
    """What ``code`` prints, run by the interpreter ``python``."""
    return subprocess.run(
        [python, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def fresh_environment(venv: Path) -> Path:
    """The Python of a new virtual environment at ``venv``, with pip and nothing else
    (no system site-packages); the test is skipped where there is none to be had."""
    made = subprocess.run(
        [sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True
    )
    python = venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    if made.returncode == 0:
        pip = subprocess.run([python, "-m", "pip", "--version"], capture_output=True)
        if pip.returncode == 0:
            return python
    pytest.skip(f"python -m venv makes no environment with pip here: {made.stderr}")


def library_wheel(folder: Path) -> Path:
    """A wheel of the library as it is in this checkout (its files copied first, so
    that building leaves the checkout alone)."""
    source = folder / "checkout"
    source.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "src",
        source / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
    )
    isolation = (
        []
        if importlib.util.find_spec("setuptools") is None
        else ["--no-build-isolation"]
    )
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            *isolation,
            "-w",
            str(folder / "dist"),
            str(source),
        ],
        capture_output=True,
        text=True,
    )
    wheels = list((folder / "dist").glob("*.whl"))
    if built.returncode != 0 or len(wheels) != 1:
        pytest.skip(f"cannot build a wheel of the library here: {built.stderr[-500:]}")
    return wheels[0]


def borrowed_dependencies(folder: Path) -> Path:
    """This environment's packages but the library, for a fresh environment to
    import: installing torch afresh takes minutes here, and the library is what is
    under test."""
    folder.mkdir()
    for site_packages in {
        sysconfig.get_paths()["purelib"],
        sysconfig.get_paths()["platlib"],
    }:
        for entry in Path(site_packages).iterdir():
            leave_out = (
                entry.name.startswith(("backprop", "__editable__"))
                or entry.suffix == ".pth"
            )
            if not leave_out and not (folder / entry.name).exists():
                (folder / entry.name).symlink_to(entry)
    return folder


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_install_cell_installs_the_library_into_a_fresh_environment(
    tmp_path, monkeypatch
):
    """The notebook as downloaded, in a new virtual environment without the library
    (but with another package called backprop): its first cell installs the library,
    from a wheel of this checkout instead of the repository, and Run all stops at the
    first exercise with the grader's sentence."""
    venv = tmp_path / "venv"
    python = fresh_environment(venv)
    wheel = library_wheel(tmp_path / "build")
    # PyPI's backprop, as far as an import can tell: a package without our modules.
    other = tmp_path / "other" / "backprop"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text('"""Another project\'s package."""\n')
    site_packages = printed_by(
        python, "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    )
    (Path(site_packages) / "borrowed.pth").write_text(
        f"{other.parent}\n{borrowed_dependencies(tmp_path / 'borrowed')}\n"
    )
    kernel = tmp_path / "jupyter" / "kernels" / "fresh"
    kernel.mkdir(parents=True)
    (kernel / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [
                    str(python),
                    "-m",
                    "ipykernel_launcher",
                    "-f",
                    "{connection_file}",
                ],
                "display_name": "fresh",
                "language": "python",
            }
        )
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))

    site = dataclasses.replace(
        SITE, requirement=f"{pyproject()['name']} @ {wheel.as_uri()}"
    )
    # The first post with an exercise, and its first stub.
    nb, stub = next(
        (nb, cell)
        for nb in (notebooks.notebook_for(post, site) for post in POSTS)
        for cell in nb.cells
        if any(tag.startswith("exercise-") for tag in cell.metadata.get("tags", []))
    )
    head = nbformat.v4.new_notebook(
        cells=nb.cells[: nb.cells.index(stub) + 1], metadata=nb.metadata
    )
    workdir = tmp_path / "work"
    workdir.mkdir()
    client = NotebookClient(
        head,
        timeout=240,
        kernel_name="fresh",
        resources={"metadata": {"path": str(workdir)}},
    )
    with pytest.raises(CellExecutionError):
        client.execute()

    errors = [
        (i, o)
        for i, c in enumerate(head.cells)
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.output_type == "error"
    ]
    assert [i for i, _ in errors] == [len(head.cells) - 1], f"stopped early: {errors}"
    error = errors[0][1]
    assert error.ename == "ExerciseNotDone" and "is waiting for you" in error.evalue
    assert len(error.traceback) <= 4, "a sentence, not a traceback"
    installed = printed_by(python, "import backprop.exercises as e; print(e.__file__)")
    assert Path(installed).is_relative_to(venv), installed
    assert list(workdir.iterdir()) == [], "the notebook wrote files"
