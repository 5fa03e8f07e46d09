"""scripts/render_site.py: what a render covers, on small projects made here.

The plan is checked against what was changed in each case; the command is checked
with a stand-in ``quarto`` that records how it was called.
"""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import render_site
import yaml

from site_sources import ROOT

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

VERSION = "1.7.34"
POST = "posts/01-first/index.qmd"
SOURCES = {
    "_quarto.yml": (
        "project:\n  type: website\n  pre-render: scripts/before.py\n"
        "  post-render: scripts/after.py\n"
    ),
    "index.qmd": "---\ntitle: Home\nlisting: {contents: posts}\n---\n",
    "about.qmd": "---\ntitle: About\n---\n",
    "styles.css": "body { color: black; }\n",
    POST: "---\ntitle: First\n---\n\nText.\n\n{{< include _explorer.qmd >}}\n"
    "\n```{python}\nprint(1)\n```\n",
    "posts/01-first/_explorer.qmd": "An explorer.\n",
    # A page with code only in a file it includes.
    "posts/02-second/index.qmd": (
        "---\ntitle: Second\n---\n\n{{< include _cells.qmd >}}\n"
    ),
    "posts/02-second/_cells.qmd": "```{python}\nprint(2)\n```\n",
    "posts/03-third/index.qmd": "---\ntitle: Third\n---\n",
    "posts/04-fourth/index.qmd": "---\ntitle: Fourth\n---\n\n```{python}\n4\n```\n",
    "src/library.py": "ANSWER = 42\n",
    # The post-render step, which leaves a mark.
    "scripts/after.py": "from pathlib import Path\nPath('_site/after.txt').touch()\n",
    "tests/test_site.py": "def test(): pass\n",
    ".gitignore": "/_site/\n/.cache/\n_freeze/\n",
    "_freeze/posts/01-first/index/execute-results/html.json": "{}\n",
    "_freeze/posts/02-second/index/execute-results/html.json": "{}\n",
    "_freeze/posts/04-fourth/index/execute-results/html.json": "{}\n",
}
# The pages with cells to execute.
WITH_CODE = [POST, "posts/02-second/index.qmd", "posts/04-fourth/index.qmd"]


def write(project: Path, name: str, text: str) -> None:
    path = project / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def build_outputs(project: Path) -> None:
    """The pages a render of the project would leave in _site/."""
    for name in SOURCES:
        if render_site.is_page(name):
            write(project, f"_site/{Path(name).with_suffix('.html')}", "<html></html>")


@pytest.fixture
def project(tmp_path):
    """A rendered project, as git shows it, with the record of that render."""
    for name, text in SOURCES.items():
        write(tmp_path, name, text)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    build_outputs(tmp_path)
    render_site.write_record(tmp_path, render_site.input_digests(tmp_path), VERSION)
    return tmp_path


def plan(project: Path, version: str = VERSION) -> render_site.Plan:
    return render_site.plan_render(project, render_site.input_digests(project), version)


def append(project: Path, name: str, text: str = "More.\n") -> None:
    with (project / name).open("a", encoding="utf-8") as file:
        file.write(text)


def test_nothing_changed_means_nothing_to_render(project):
    assert plan(project).nothing


def test_without_a_record_every_page_is_rendered(project):
    (project / render_site.RECORD).unlink()
    result = plan(project)
    assert result.full and "no record" in result.reason


def test_an_unreadable_record_means_a_full_render(project):
    (project / render_site.RECORD).write_text("{not json", encoding="utf-8")
    assert plan(project).full


def test_an_edited_post_is_rendered_alone(project):
    append(project, POST)
    result = plan(project)
    assert not result.full and result.pages == [POST]


def test_an_edited_include_renders_the_page_that_includes_it(project):
    append(project, "posts/01-first/_explorer.qmd")
    result = plan(project)
    assert not result.full and result.pages == [POST]


def test_editing_the_home_page_renders_it(project):
    append(project, "index.qmd")
    assert plan(project).pages == ["index.qmd"]


@pytest.mark.parametrize("name", ["styles.css", "_quarto.yml"])
def test_a_shared_input_means_a_full_render(project, name):
    append(project, name, "\n")
    result = plan(project)
    assert result.full and name in result.reason


def test_tests_are_not_inputs_of_the_site(project):
    append(project, "tests/test_site.py")
    assert plan(project).nothing


def test_what_a_render_never_reads_is_not_an_input(project):
    write(project, "README.md", "# The project\n")
    render_site.write_record(project, render_site.input_digests(project), VERSION)
    append(project, "README.md")
    assert plan(project).nothing


def scripts_a_render_runs() -> set[str]:
    """The pre- and post-render steps of _quarto.yml, with the scripts/ modules they
    import, and those modules' own imports."""
    config = yaml.safe_load((ROOT / "_quarto.yml").read_text(encoding="utf-8"))
    pending = [*config["project"]["pre-render"], config["project"]["post-render"]]
    found: set[str] = set()
    while pending:
        name = pending.pop()
        if name in found:
            continue
        found.add(name)
        text = (ROOT / name).read_text(encoding="utf-8")
        for module in re.findall(r"^\s*(?:from|import) (\w+)", text, re.M):
            if (ROOT / "scripts" / f"{module}.py").is_file():
                pending.append(f"scripts/{module}.py")
    return found


def test_files_left_out_of_the_inputs_are_not_read_by_a_render():
    steps = scripts_a_render_runs()
    assert "scripts/notebooks.py" in steps  # imported by the post-render step
    for name in steps:
        assert not name.startswith(render_site.NOT_INPUTS), f"a render runs {name}"
    pages = [
        name for name in render_site.git_files(ROOT) or [] if name.endswith(".qmd")
    ]
    assert pages
    for included, pages_including in render_site.includes(ROOT, pages).items():
        assert not included.startswith(render_site.NOT_INPUTS), (
            f"{sorted(pages_including)} include {included}"
        )


def test_ignored_files_are_not_inputs(project):
    write(project, "_site/extra.html", "<html></html>")
    write(project, ".cache/figures/x.png", "png")
    assert plan(project).nothing


@pytest.mark.parametrize(
    "change",
    [
        lambda project: write(project, "posts/05-fifth/index.qmd", "---\n---\n"),
        lambda project: (project / "posts/04-fourth/index.qmd").unlink(),
        lambda project: write(project, "notes.txt", "a new file, not ignored\n"),
    ],
    ids=["page added", "page removed", "file added"],
)
def test_an_added_or_removed_file_means_a_full_render(project, change):
    change(project)
    result = plan(project)
    assert result.full and "added or removed" in result.reason


def test_a_page_missing_from_the_site_means_a_full_render(project):
    (project / "_site/about.html").unlink()
    result = plan(project)
    assert result.full and "about.qmd" in result.reason


def test_a_changed_freeze_means_a_full_render(project):
    append(project, "_freeze/posts/01-first/index/execute-results/html.json", " ")
    assert plan(project).full


def test_quarto_s_copy_of_the_frozen_pages_libraries_is_not_an_input(project):
    # A plain `quarto render` writes it; the site it renders is the same.
    write(project, "_freeze/site_libs/clipboard/clipboard.min.js", "/* library */\n")
    assert plan(project).nothing


def test_another_quarto_means_a_full_render(project):
    result = plan(project, version="1.10.18")
    assert result.full and "1.10.18" in result.reason


def test_many_changed_pages_are_rendered_together(project):
    pages = [name for name in SOURCES if render_site.is_page(name)]
    assert len(pages) > render_site.MOST_PAGES_ONE_BY_ONE
    for name in pages:
        append(project, name)
    assert plan(project).full


def test_outside_a_git_checkout_every_render_is_full(tmp_path):
    for name, text in SOURCES.items():
        write(tmp_path, name, text)
    assert render_site.input_digests(tmp_path) is None
    assert plan(tmp_path).full


def test_which_sources_are_pages():
    assert render_site.is_page("index.qmd")
    assert render_site.is_page("posts/02-chain-rule/index.qmd")
    assert not render_site.is_page("posts/02-chain-rule/_explorer.qmd")
    assert not render_site.is_page("reference/linear.qmd")
    assert not render_site.is_page("README.md")
    assert not render_site.is_page("_includes/a11y.qmd")


# The command, with a stand-in quarto that logs how it was called and can be made to
# fail. Run in a copy of the project (see render_site.render_in_copies), it renders
# what it is given (a folder, or every page), logs the real pages among them (not
# the stand-ins), keeps results for each, and writes each page into the copy's site,
# saying which copy made it, with two entries in the site's search index.
FAKE_QUARTO = """#!{python}
import json, pathlib, sys
args = sys.argv[1:]
if args == ["--version"]:
    print({version!r})
    sys.exit(0)
here = pathlib.Path.cwd().resolve()
failures = pathlib.Path({failures!r})
if here.name == "copy-1" and failures.is_file():
    kind, count = failures.read_text(encoding="utf-8").split()
    if int(count) > 0:
        failures.write_text(f"{{kind}} {{int(count) - 1}}", encoding="utf-8")
        with open({log!r}, "a", encoding="utf-8") as log:
            log.write("render in a copy: a kernel failed to start\\n")
        sys.stderr.write({kernel_failures!r}[kind])
        sys.exit(1)
call = " ".join(args)
if here != pathlib.Path({project!r}).resolve():
    import yaml
    target = pathlib.Path(args[1]) if len(args) > 1 else here
    found = [target] if target.is_file() else target.rglob("*.qmd")
    pages = sorted(
        path.relative_to(here).as_posix()
        for path in found
        if not any(part.startswith(("_", ".")) for part in path.relative_to(here).parts)
    )
    real = [
        page for page in pages
        if "stands in for the real one" not in (here / page).read_text()
    ]
    config = yaml.safe_load((here / "_quarto.yml").read_text(encoding="utf-8"))
    steps = sorted({{"pre-render", "post-render"}} & set(config["project"]))
    call = f"render in a copy: {{' '.join(real)}}"
    if steps:
        call += f" with {{steps}}"
    docs = []
    for page in pages:
        html = pathlib.Path(page).with_suffix(".html").as_posix()
        (here / "_site" / html).parent.mkdir(parents=True, exist_ok=True)
        (here / "_site" / html).write_text(f"{{page}} made in {{here.name}}")
        docs += [
            {{"href": html, "made in": here.name}},
            {{"href": html + "#part", "made in": here.name}},
        ]
        if page in real and len(args) > 1:
            results = here / "_freeze" / pathlib.Path(page).with_suffix("")
            results = results / "execute-results"
            results.mkdir(parents=True, exist_ok=True)
            (results / "html.json").write_text(json.dumps({{"made in": here.name}}))
    if len(args) == 1:  # a render of every page: which pages list which
        listing = here / ".quarto" / "listing" / "listing-cache.json"
        listing.parent.mkdir(parents=True, exist_ok=True)
        listing.write_text(json.dumps({{"made in": here.name}}))
    docs = docs[::-1]
    index = here / "_site" / "search.json"
    if len(args) > 1 and index.is_file():  # a render of some pages updates the index
        docs = [
            next((new for new in docs if new["href"] == doc["href"]), doc)
            for doc in json.loads(index.read_text())
        ]
    index.write_text(json.dumps(docs, indent=2))
with open({log!r}, "a", encoding="utf-8") as log:
    log.write(call + "\\n")
sys.stderr.write({messages!r})
sys.exit({status})
"""
# What a render prints, as Quarto and the kernel write it (colours included), with
# the two harmless warnings render_site drops, one that only a copy's render drops,
# and one of another kind.
RENDER_MESSAGES = (
    "Starting python3 kernel...[IPKernelApp] WARNING | Kernel is running over TCP "
    "without encryption. All communication is sent in plain text.\n"
    "Done\n"
    "\033[33mWARN: OJS block count mismatch. Line number reporting is likely to be "
    "wrong\033[39m\n"
    "\033[33mWARN: Unable to resolve link target: reference/index.qmd\033[39m\n"
    "\033[33mWARN: Unknown meta key 'titel'\033[39m\n"
    "Output created: _site/index.html\n"
)


# What Quarto prints when a page's kernel cannot start, as it comes: the kernel's
# traceback, Quarto's message, and its warning as it stops the render.
KERNEL_FAILURES = {
    kind: "Starting python3 kernel...Traceback (most recent call last):\n"
    '  File "ipykernel/kernelapp.py", line 373, in init_sockets\n'
    f"{error}\n"
    "Kernel died before replying to kernel_info\n"
    "\033[33mWARN: Error encountered when rendering files\033[39m\n"
    for kind, error in {
        "port": "zmq.error.ZMQError: Address already in use "
        "(addr='tcp://127.0.0.1:43301')",
        "other": "ModuleNotFoundError: No module named 'ipykernel'",
    }.items()
}


@pytest.fixture
def fake_quarto(project, tmp_path_factory, monkeypatch):
    """Install a stand-in quarto, on one processor unless a test says otherwise;
    return a function giving the calls made so far (and setting the exit status of
    the next ones)."""
    bin_dir = tmp_path_factory.mktemp("bin")
    log = bin_dir / "calls.log"
    log.touch()
    executable = bin_dir / "quarto"

    def install(status: int = 0) -> None:
        executable.write_text(
            FAKE_QUARTO.format(
                python=sys.executable,
                version=VERSION,
                project=str(project),
                log=str(log),
                status=status,
                messages=RENDER_MESSAGES,
                failures=str(bin_dir / "kernel-failures"),
                kernel_failures=KERNEL_FAILURES,
            ),
            encoding="utf-8",
        )
        executable.chmod(executable.stat().st_mode | stat.S_IEXEC)

    install()
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path(shutil.which('git')).parent}")
    monkeypatch.setattr(render_site, "ROOT", project)
    monkeypatch.setattr(render_site, "processors", lambda: 1)

    def calls(status: int | None = None, kernel_failures: str = "") -> list[str]:
        """The calls so far; ``status``: the next ones' exit status;
        ``kernel_failures`` ("port 2"): the first copy's next renders fail so, as a
        kernel cannot start."""
        if status is not None:
            install(status)
        if kernel_failures:
            (bin_dir / "kernel-failures").write_text(kernel_failures, encoding="utf-8")
        return log.read_text(encoding="utf-8").splitlines()

    return calls


def test_the_command_renders_nothing_when_nothing_changed(project, fake_quarto, capsys):
    assert render_site.main([]) == 0
    assert fake_quarto() == []
    assert "up to date" in capsys.readouterr().out


def test_the_command_renders_the_edited_post_then_records_it(project, fake_quarto):
    append(project, POST)
    assert render_site.main([]) == 0
    assert fake_quarto() == [f"render {POST}"]
    assert render_site.main([]) == 0
    assert fake_quarto() == [f"render {POST}"], "rendered again with nothing changed"


def test_a_failed_render_is_not_recorded(project, fake_quarto):
    append(project, "styles.css")
    fake_quarto(status=1)
    assert render_site.main([]) == 1
    fake_quarto(status=0)
    assert render_site.main([]) == 0
    assert fake_quarto() == ["render", "render"]


def test_full_renders_every_page(project, fake_quarto):
    assert render_site.main(["--full"]) == 0
    assert fake_quarto() == ["render"]


def test_other_arguments_go_to_quarto_and_leave_the_record(project, fake_quarto):
    append(project, POST)
    assert render_site.main([POST, "--to", "html"]) == 0
    assert render_site.main([]) == 0
    assert fake_quarto() == [f"render {POST} --to html", f"render {POST}"]


def test_the_render_log_keeps_all_but_the_harmless_warnings(
    project, fake_quarto, capfd
):
    for argv in (["--full"], [POST]):
        assert render_site.main(argv) == 0
        log = capfd.readouterr().err
        assert "Starting python3 kernel...Done\n" in log
        assert "Output created: _site/index.html" in log
        assert "without encryption" not in log
        assert "OJS block count mismatch" not in log
        # A warning of another kind is passed on as it came.
        assert "\x1b[33mWARN: Unknown meta key 'titel'\x1b[39m\n" in log


# Which pages a full render executes again first.


def test_the_pages_with_code_are_those_with_a_python_cell_or_an_include_with_one(
    project,
):
    names = sorted(render_site.input_digests(project))
    assert render_site.every_page_with_code(project, names) == WITH_CODE


@pytest.mark.parametrize(
    "change",
    [
        lambda project: (project / render_site.RECORD).unlink(),
        lambda project: append(project, "src/library.py", "ANSWER = 43\n"),
        lambda project: append(project, "_quarto.yml", "execute:\n  echo: false\n"),
        lambda project: write(project, "src/new_module.py", "\n"),
        lambda project: (project / "src/library.py").unlink(),
    ],
    ids=["no record", "library", "configuration", "module added", "module removed"],
)
def test_when_the_cells_may_compute_otherwise_every_page_with_code_executes(
    project, change
):
    change(project)
    result = plan(project)
    assert result.full and result.execute == WITH_CODE


def test_another_quarto_executes_every_page_with_code(project):
    assert plan(project, version="1.10.18").execute == WITH_CODE


def test_outside_a_git_checkout_every_page_with_code_executes(tmp_path):
    for name, text in SOURCES.items():
        write(tmp_path, name, text)
    assert plan(tmp_path).execute == WITH_CODE


@pytest.mark.parametrize(
    "name", ["styles.css", "theme.scss", "_includes/a11y.html", "assets/explorer.js"]
)
def test_a_style_or_script_of_the_pages_executes_nothing(project, name):
    write(project, name, "/* one */\n")
    render_site.write_record(project, render_site.input_digests(project), VERSION)
    append(project, name, "/* two */\n")
    result = plan(project)
    assert result.full and result.execute == []


def test_a_changed_freeze_executes_nothing(project):
    append(project, "_freeze/posts/01-first/index/execute-results/html.json", " ")
    assert plan(project).execute == []


def test_a_page_without_results_executes_in_a_full_render(project):
    shutil.rmtree(project / "_freeze/posts/04-fourth")
    append(project, "styles.css")
    assert plan(project).execute == ["posts/04-fourth/index.qmd"]


def test_many_changed_pages_execute_those_with_code(project):
    pages = [name for name in SOURCES if render_site.is_page(name)]
    for name in pages:
        append(project, name)
    result = plan(project)
    assert result.full and result.execute == WITH_CODE
    render_site.write_record(project, render_site.input_digests(project), VERSION)
    for name in ("index.qmd", "about.qmd", "posts/03-third/index.qmd"):
        append(project, name)
    append(project, "posts/02-second/_cells.qmd", "```{python}\nprint(3)\n```\n")
    result = plan(project)
    assert result.full and result.execute == ["posts/02-second/index.qmd"]


# The command: the pages executed in copies, then one render of every page.


@pytest.fixture
def library_changed_on_two_processors(project, fake_quarto, monkeypatch):
    """The library changed since the last render, on a machine with two processors:
    a render executes every page with code in two copies first."""
    monkeypatch.setattr(render_site, "processors", lambda: 2)
    append(project, "src/library.py", "ANSWER = 43\n")


def frozen(project: Path, page: str) -> str:
    results = project / render_site.frozen_results(page) / "execute-results"
    return (results / "html.json").read_text(encoding="utf-8")


# The pages without code, which the copy rendering the other pages renders.
WITHOUT_CODE = ["about.qmd", "index.qmd", "posts/03-third/index.qmd"]
OTHER_PAGES = "render in a copy: " + " ".join(WITHOUT_CODE) + " with ['pre-render']"


def test_the_pages_execute_in_copies_at_once_as_another_renders_the_rest(
    project, fake_quarto, library_changed_on_two_processors, capfd
):
    write(project, "_site/posts/05-removed/index.html", "a page no longer made")
    assert render_site.main([]) == 0
    calls = fake_quarto()
    # Copy 3 renders the listing again last, once the executed pages are there.
    assert len(calls) == 4 and OTHER_PAGES in calls, calls
    assert calls[-1] == "render in a copy: index.qmd"
    shared_out = []
    for call in calls[:-1]:
        if call != OTHER_PAGES:
            assert call.startswith("render in a copy: ") and "with" not in call, (
                f"a copy renders its pre- or post-render step: {call}"
            )
            shared_out += call.removeprefix("render in a copy: ").split()
    assert sorted(shared_out) == WITH_CODE, "each page executes once"
    made_in = {json.loads(frozen(project, page))["made in"] for page in WITH_CODE}
    assert made_in == {"copy-1", "copy-2"}
    site = project / "_site"
    for page in WITH_CODE:
        made = json.loads(frozen(project, page))["made in"]
        html = site / Path(page).with_suffix(".html")
        assert html.read_text() == f"{page} made in {made}", "the copy's page is kept"
    for page in WITHOUT_CODE:
        html = site / Path(page).with_suffix(".html")
        assert html.read_text() == f"{page} made in copy-3"
    assert not (site / "posts/05-removed").exists(), "the site starts afresh"
    assert (site / "after.txt").is_file(), "the post-render step ran on the site"
    listings = project / ".quarto" / "listing" / "listing-cache.json"
    assert json.loads(listings.read_text()) == {"made in": "copy-3"}, (
        "a render of one post knows which listing to render with it"
    )
    # The search index: in the order of the render of every page (copy 3's), each
    # executed page's entries from the copy that rendered it.
    docs = json.loads((site / "search.json").read_text())
    every = sorted(WITH_CODE + WITHOUT_CODE)[::-1]
    html = [str(Path(page).with_suffix(".html")) for page in every]
    assert [doc["href"] for doc in docs] == [
        href for page in html for href in (page + "#part", page)
    ]
    for doc in docs:
        page = str(Path(doc["href"].partition("#")[0]).with_suffix(".qmd"))
        expected = json.loads(frozen(project, page)) if page in WITH_CODE else {}
        assert doc["made in"] == expected.get("made in", "copy-3")
    log = capfd.readouterr().err
    # Each copy's lines are whole and say which copy printed them.
    for copy in ("[copy 1] ", "[copy 2] ", "[copy 3] "):
        assert f"{copy}Starting python3 kernel...Done\n" in log
        assert f"{copy}\x1b[33mWARN: Unknown meta key 'titel'\x1b[39m\n" in log
    assert render_site.main([]) == 0
    assert len(fake_quarto()) == 4, "rendered again with nothing changed"


def test_a_stand_in_keeps_the_front_matter_of_the_page():
    text = "---\ntitle: First\ndate: 2026-01-01\n---\n\nText.\n\n```{python}\n1\n```\n"
    stub = render_site.stub_text(text)
    assert stub.startswith("---\ntitle: First\ndate: 2026-01-01\n---\n")
    assert "```" not in stub and "Text." not in stub
    assert stub.strip().endswith(".")


def test_the_search_index_is_written_as_quarto_writes_it(tmp_path):
    # Two entries of a search index as Quarto 1.10.18 wrote them (escapes, a
    # non-ASCII character, crumbs and all).
    text = (
        '[\n  {\n    "objectID": "posts/04-bias-broadcasting/index.html",\n'
        '    "href": "posts/04-bias-broadcasting/index.html",\n'
        '    "title": "The bias gradient",\n    "section": "",\n'
        '    "text": "Shapes \\"(N, 1)\\" \u2212 (N,)\\nsum over the batch",\n'
        '    "crumbs": [\n      "Posts"\n    ]\n  },\n  {\n'
        '    "objectID": "about.html",\n    "href": "about.html",\n'
        '    "title": "About",\n    "section": "",\n    "text": "\u00e9t\u00e9"\n'
        "  }\n]"
    )
    (tmp_path / "search.json").write_text(text, encoding="utf-8")
    render_site.write_search_docs(tmp_path, render_site.search_docs(tmp_path))
    assert (tmp_path / "search.json").read_text(encoding="utf-8") == text


def test_on_one_processor_the_full_render_executes_the_pages_itself(
    project, fake_quarto
):
    append(project, "src/library.py", "ANSWER = 43\n")
    assert render_site.main([]) == 0
    assert fake_quarto() == ["render"]
    for page in WITH_CODE:
        assert not (project / render_site.frozen_results(page)).exists(), (
            f"{page}'s old results were left for the render to take"
        )


def test_when_a_copy_fails_nothing_is_rendered_or_recorded(
    project, fake_quarto, library_changed_on_two_processors
):
    before = {page: frozen(project, page) for page in WITH_CODE}
    fake_quarto(status=3)
    assert render_site.main([]) == 3
    assert all(call.startswith("render in a copy") for call in fake_quarto())
    assert {page: frozen(project, page) for page in WITH_CODE} == before
    fake_quarto(status=0)
    assert render_site.main([]) == 0
    assert len(fake_quarto()) == 3 + 4, "the failed render was not recorded"
    assert plan(project).nothing


def test_full_executes_every_page_with_code(project, fake_quarto, monkeypatch):
    monkeypatch.setattr(render_site, "processors", lambda: 8)
    assert render_site.main(["--full"]) == 0
    calls = fake_quarto()
    # One copy per page, at most, and one more, which renders the listing again.
    assert len(calls) == len(WITH_CODE) + 2
    assert OTHER_PAGES in calls


def test_the_pages_are_shared_out_by_size_into_lists_of_about_equal_total():
    sizes = {"a": 9, "b": 7, "c": 6, "d": 5, "e": 4, "f": 1}
    shares = render_site.share_out(sorted(sizes), 2, sizes)
    assert sorted(page for share in shares for page in share) == sorted(sizes)
    assert all(share == sorted(share) for share in shares)
    totals = sorted(sum(sizes[page] for page in share) for share in shares)
    # By hand, each page from the largest on to the share with less so far: a, d, f
    # (15) and b, c, e (17). Alternating by name would give 19 against 13.
    assert totals == [15, 17]


def test_a_page_s_size_counts_the_files_it_includes(project):
    sizes = render_site.source_sizes(project, WITH_CODE)
    page, cells = (
        project / "posts/02-second/index.qmd",
        project / "posts/02-second/_cells.qmd",
    )
    assert sizes["posts/02-second/index.qmd"] == len(page.read_text()) + len(
        cells.read_text()
    )


def test_a_kernel_given_a_port_taken_meanwhile_starts_again(
    project, fake_quarto, library_changed_on_two_processors, capfd
):
    fake_quarto(kernel_failures=f"port {render_site.KERNEL_START_ATTEMPTS - 1}")
    assert render_site.main([]) == 0
    calls = fake_quarto()
    failed = render_site.KERNEL_START_ATTEMPTS - 1
    assert calls.count("render in a copy: a kernel failed to start") == failed
    assert len(calls) == failed + 4
    for page in WITH_CODE:
        assert json.loads(frozen(project, page))["made in"].startswith("copy-")
    log = capfd.readouterr().err
    assert log.count("[copy 1] A kernel could not start") == failed
    # The failed starts' messages are not passed on: they were Jupyter's, not the
    # site's, and the render went on.
    assert "Traceback" not in log and "Error encountered" not in log


def test_a_kernel_that_keeps_failing_for_a_taken_port_stops_the_render(
    project, fake_quarto, library_changed_on_two_processors, capfd
):
    fake_quarto(kernel_failures=f"port {render_site.KERNEL_START_ATTEMPTS}")
    assert render_site.main([]) == 1
    assert "render" not in fake_quarto()
    log = capfd.readouterr().err
    assert log.count("[copy 1] A kernel could not start") == (
        render_site.KERNEL_START_ATTEMPTS
    )
    assert "Rendering posts/" in log and "failed" in log


def test_a_kernel_that_fails_otherwise_stops_the_render_with_its_messages(
    project, fake_quarto, library_changed_on_two_processors, capfd
):
    fake_quarto(kernel_failures="other 1")
    assert render_site.main([]) == 1
    assert fake_quarto().count("render in a copy: a kernel failed to start") == 1
    log = capfd.readouterr().err
    assert "[copy 1] ModuleNotFoundError: No module named 'ipykernel'\n" in log
    assert "[copy 1] Starting python3 kernel...Traceback" in log
    assert "A kernel could not start" not in log
