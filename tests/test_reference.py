"""The API reference: quartodoc's configuration covers the library, and it builds.

Checked without Quarto. Public means: in the module's ``__all__`` where it has one,
else every function and class defined in the module whose name does not start
with ``_``. ``backprop.functional`` re-exports each layer's forward and backward
from the module that defines it, so a name of, say, ``backprop.linear`` counts as
documented when ``functional.<name>`` (the same object) is listed.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import reference_links
import yaml

import backprop
from site_sources import ROOT, post_paths, reference_anchors, reference_pages

QUARTO_CONFIG = yaml.safe_load((ROOT / "_quarto.yml").read_text(encoding="utf-8"))
CONFIG = reference_links.quartodoc_config(ROOT)
LAYOUT = reference_links.reference_layout(ROOT)
LISTED = [name for page in LAYOUT for name in page.objects]
PAGE_OF = {name: page for page in LAYOUT for name in page.objects}
MODULES = sorted(
    info.name
    for info in pkgutil.iter_modules(backprop.__path__)
    if not info.name.startswith("_")
)


def module(name: str) -> ModuleType:
    return importlib.import_module(f"backprop.{name}")


def public_names(mod: ModuleType) -> set[str]:
    if hasattr(mod, "__all__"):
        return set(mod.__all__)
    return {
        name
        for name, obj in vars(mod).items()
        if not name.startswith("_")
        and (inspect.isfunction(obj) or inspect.isclass(obj))
        and obj.__module__ == mod.__name__
    }


def resolve(listed: str) -> object:
    module_name, _, name = listed.partition(".")
    return getattr(module(module_name), name)


def test_config_documents_this_package_in_reference():
    assert CONFIG["package"] == "backprop"
    assert CONFIG["dir"] == "reference"
    assert CONFIG.get("parser", "numpy") == "numpy", "the docstrings are numpydoc"
    navbar = QUARTO_CONFIG["website"]["navbar"]
    items = [item for side in ("left", "right") for item in navbar.get(side, [])]
    library = [i for i in items if isinstance(i, dict) and i.get("text") == "Library"]
    assert library and library[0]["href"] == "reference/index.qmd"
    pre_render = QUARTO_CONFIG["project"]["pre-render"]
    assert pre_render[0] == "scripts/check_render_env.py", "the set-up check runs first"
    assert "scripts/build_reference.py" in pre_render, "the render builds the reference"


def test_the_layout_is_kept_out_of_quartos_configuration():
    # Quarto parses every key of _quarto.yml again for each page it renders; the
    # reference's layout, hundreds of lines, lives in a file Quarto does not read.
    assert "quartodoc" not in QUARTO_CONFIG, (
        f"_quarto.yml has a quartodoc: section; it belongs in "
        f"{reference_links.CONFIG_FILE} alone"
    )


def test_reference_output_is_not_tracked():
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "/reference/" in ignored and "/objects.json" in ignored


@pytest.mark.parametrize("listed", LISTED)
def test_listed_name_is_public_and_exists(listed):
    module_name, _, name = listed.partition(".")
    assert module_name in MODULES, f"{listed}: backprop.{module_name} is no module"
    mod = module(module_name)
    assert hasattr(mod, name), (
        f"{listed} is listed but backprop.{listed} does not exist"
    )
    assert name in public_names(mod), f"{listed} is listed but is not public"


def test_nothing_is_listed_twice():
    assert len(LISTED) == len(set(LISTED))
    routines = {n: resolve(n) for n in LISTED if callable(resolve(n))}
    objects = list(routines.values())
    doubles = [n for n, obj in routines.items() if objects.count(obj) > 1]
    assert not doubles, f"one object listed under two names: {doubles}"


@pytest.mark.parametrize("module_name", MODULES)
def test_every_public_name_is_listed(module_name):
    mod, functional = module(module_name), module("functional")
    missing = []
    for name in sorted(public_names(mod)):
        reexported = name in public_names(functional) and getattr(
            functional, name
        ) is getattr(mod, name)
        if f"{module_name}.{name}" not in LISTED and not (
            reexported and f"functional.{name}" in LISTED
        ):
            missing.append(name)
    assert not missing, (
        f"backprop.{module_name} has public names the reference does not list: "
        f"{missing}; add them to the quartodoc section of {reference_links.CONFIG_FILE}"
    )


@pytest.mark.parametrize("listed", LISTED)
def test_listed_function_has_a_numpydoc_docstring(listed):
    obj = resolve(listed)
    if not inspect.isfunction(obj):
        return
    doc = inspect.getdoc(obj) or ""
    assert doc, f"{listed} has no docstring"
    parameters = [p for p in inspect.signature(obj).parameters if p != "self"]
    if parameters:
        assert "Parameters\n----------" in doc, f"{listed}: no Parameters section"
        for parameter in parameters:
            # `x : type`, or one of several names sharing a line: `x, w, b : type`.
            entry = rf"^[\w*, ]*\b{parameter}\b[\w*, ]*(?: : .*)?$"
            assert re.search(entry, doc, re.M), (
                f"{listed}: parameter {parameter} is not documented"
            )
    returns = inspect.signature(obj).return_annotation
    if returns not in ("None", None, inspect.Signature.empty):
        assert "Returns\n-------" in doc, f"{listed}: no Returns section"


@pytest.fixture(scope="module")
def built_reference(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """The render's pre-render step on a copy of quartodoc's configuration alone,
    elsewhere: the build needs nothing from _quarto.yml."""
    directory = tmp_path_factory.mktemp("reference-build")
    config = reference_links.CONFIG_FILE
    shutil.copy(ROOT / config, directory / config)
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_reference.py"), str(directory)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return directory, result


def test_quartodoc_build_succeeds(built_reference):
    _, result = built_reference
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr


def test_build_without_its_configuration_says_which_file_is_missing(tmp_path):
    # A project with a _quarto.yml but no quartodoc configuration of its own.
    (tmp_path / "_quarto.yml").write_text("project:\n  type: website\n")
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_reference.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert str(tmp_path / reference_links.CONFIG_FILE) in result.stderr
    assert "Traceback" not in result.stderr, result.stderr


def test_every_section_is_one_titled_page():
    paths = [page.path for page in LAYOUT]
    assert len(paths) == len(set(paths)), f"two sections write one page: {paths}"
    assert "index" not in paths, "the index is quartodoc's own page"
    for page in LAYOUT:
        assert page.title and page.objects, page


@pytest.mark.parametrize("listed", LISTED)
def test_build_puts_each_object_on_its_page(built_reference, listed):
    directory, _ = built_reference
    page = PAGE_OF[listed]
    path = directory / CONFIG["dir"] / f"{page.path}.qmd"
    assert path.is_file(), f"quartodoc wrote no page {path.name} for {listed}"
    text = path.read_text(encoding="utf-8")
    # A section of its topic page, under the page's title.
    assert re.search(rf"^## .*\{{ #backprop\.{re.escape(listed)} \}}$", text, re.M), (
        f"{path.name} has no level-2 heading with the anchor #backprop.{listed}"
    )
    summary = (inspect.getdoc(resolve(listed)) or "").splitlines()
    if summary and not isinstance(resolve(listed), str | float | list | dict):
        assert summary[0] in text, f"{path.name} lacks {listed}'s summary line"
    index = (directory / CONFIG["dir"] / "index.qmd").read_text(encoding="utf-8")
    assert f"({page.path}.qmd#backprop.{listed})" in index, f"the index omits {listed}"


@pytest.mark.parametrize("page", LAYOUT, ids=[page.path for page in LAYOUT])
def test_each_page_has_its_title_and_introduction(built_reference, page):
    directory, _ = built_reference
    text = (directory / CONFIG["dir"] / f"{page.path}.qmd").read_text(encoding="utf-8")
    front, _, body = text.partition("\n---\n")
    assert text.startswith("---\n"), f"{page.path}.qmd has no front matter"
    assert yaml.safe_load(front.removeprefix("---\n"))["title"] == page.title
    before_first_object = body.split("\n## ", 1)[0]
    for paragraph in page.intro:
        assert paragraph in before_first_object, f"{page.path}.qmd lacks its intro"
    anchors = re.findall(r"^#+ .*\{ #backprop\.([\w.]+) \}$", text, re.M)
    top_level = [a for a in anchors if a.count(".") == 1]
    assert top_level == list(page.objects), "the page holds its objects, in order"


def test_index_is_titled_by_its_front_matter(built_reference):
    directory, _ = built_reference
    text = (directory / CONFIG["dir"] / "index.qmd").read_text(encoding="utf-8")
    assert text.startswith("---\n"), "Quarto would title the page 'index'"
    assert yaml.safe_load(text.split("---\n")[1])["title"] == CONFIG["title"]
    assert not re.search(r"^# ", text, re.M), "the title twice"


def test_a_second_build_leaves_the_pages_as_they_are(built_reference):
    directory, _ = built_reference
    pages = sorted((directory / CONFIG["dir"]).glob("*.qmd"))
    before = {p: p.read_text(encoding="utf-8") for p in pages}
    script = str(ROOT / "scripts" / "build_reference.py")
    subprocess.run([sys.executable, script, str(directory)], check=True, timeout=300)
    assert {p: p.read_text(encoding="utf-8") for p in pages} == before


def test_site_sources_expect_exactly_the_built_pages(built_reference):
    directory, _ = built_reference
    built = {p.relative_to(directory) for p in (directory / "reference").glob("*.qmd")}
    expected = {p.relative_to(ROOT) for p in reference_pages()}
    assert built == expected


@pytest.mark.skipif(shutil.which("pandoc") is None, reason="pandoc is not on PATH")
def test_built_pages_maths_and_tables_parse(built_reference):
    from test_markdown import visible_text

    directory, _ = built_reference
    for page in sorted((directory / "reference").glob("*.qmd")):
        text = visible_text(page)
        assert "$" not in text, f"{page.name}: a $ that did not become maths"
        rows = re.findall(r"^\s*\|.*\|\s*$", text, re.M)
        assert not rows, f"{page.name}: a table that did not parse: {rows[:2]}"


def test_a_short_name_listed_twice_means_the_first_listed():
    objects = reference_links.documented_objects()
    twice = {
        short
        for short in {name.rsplit(".", 1)[-1] for name in LISTED}
        if sum(name.rsplit(".", 1)[-1] == short for name in LISTED) > 1
    }
    assert "mse" in twice
    for short in twice:
        first = next(name for name in LISTED if name.rsplit(".", 1)[-1] == short)
        assert objects[short] == first, f"{short} -> {objects[short]}, not {first}"


def test_reference_links_helper_finds_first_mentions():
    post = next(p for p in post_paths() if p.parent.name.startswith("03-"))
    mentions = {m.name: m for m in reference_links.first_mentions(post)}
    assert "functional.lin_backward" in mentions
    link = mentions["functional.lin_backward"].link
    target = "../../reference/linear.qmd#backprop.functional.lin_backward"
    assert link == f"[`lin_backward`]({target})"
    anchors = reference_anchors()
    for post in post_paths():
        for m in reference_links.first_mentions(post):
            path, _, anchor = m.link.split("(")[1].rstrip(")").partition("#")
            target = (post.parent / path).resolve()
            assert anchor in anchors.get(target, ()), (
                f"{post.parent.name}: {m.link} leads nowhere"
            )


def test_a_build_is_skipped_only_while_nothing_it_reads_changed(built_reference):
    directory, _ = built_reference
    script = [sys.executable, str(ROOT / "scripts" / "build_reference.py")]
    index = directory / CONFIG["dir"] / "index.qmd"
    index.write_text(index.read_text(encoding="utf-8") + "\nEdited.\n")
    skipped = subprocess.run(
        [*script, str(directory)], capture_output=True, text=True, timeout=300
    )
    assert skipped.returncode == 0 and "up to date" in skipped.stdout
    assert "Edited." in index.read_text(encoding="utf-8"), "the pages were left alone"
    # What the last build read, as the stamp has it, is not what it would read now.
    stamp = directory / ".cache" / "reference-inputs.txt"
    stamp.write_text("the digest of another library", encoding="utf-8")
    rebuilt = subprocess.run([*script, str(directory)], check=True, timeout=300)
    assert rebuilt.returncode == 0
    assert "Edited." not in index.read_text(encoding="utf-8"), "built again"
