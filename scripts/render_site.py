"""Render the site, or only the pages that changed since the last render.

    python scripts/render_site.py           # what changed (everything, the first time)
    python scripts/render_site.py --full    # every page, every post executed again
    python scripts/render_site.py PATH ...  # passed on to `quarto render` as they are

``quarto render`` renders every page on every run, so a render with nothing changed
takes as long as one after every page changed (about 45 s here), although ``freeze``
spares the cells. This keeps, in ``.cache/render-inputs.json``, the SHA-256 of each
input of the last render that covered every change, and compares:

- nothing changed and every page is in ``_site/``: nothing to do;
- only the sources of a few pages changed (a post, the home page, about, notation,
  or a file a page includes):
  ``quarto render`` each of them. Quarto adds the home page (its listing and feed)
  and updates the search index and sitemap; the pre- and post-render steps run as in
  a full render. A changed post executes, as ``freeze: auto`` would have it anyway.
- anything else (configuration, styles, scripts, the library, a page added or
  removed, ``_freeze/``, another Quarto): a full render.

Inputs are the files git shows (tracked, or untracked and not ignored), except those
in ``NOT_INPUTS``, which a render never reads, plus ``_freeze/``. Outside a git
checkout every render is a full one.

``freeze: auto`` re-executes a page only when its own source changed, so a full
render alone would keep the outputs of the old library on every page. Before a full
render this finds every page whose results may be out of date: every page with code
when anything its cells can read changed (the library, a script, the configuration;
not a style sheet or a page's prose), else the pages whose sources changed or that
have no results yet. The full render then happens in copies of the project, at
once: as many copies as there are processors each execute and render their share of
those pages, and one more renders every other page (taking the results of pages
with code from ``_freeze/``) and runs the pre-render step. In each copy a stand-in
(the page's front matter and a paragraph) takes the place of each page it does not
render, so that links to it resolve and listings read it as in the project, at
little cost. The project's site is then made of the copies' pages, with the search
index listing the real pages (not the stand-ins), the executed pages' results are
moved into ``_freeze/``, and the post-render step runs on the whole site: every page
rendered once, as ``quarto render`` would have rendered it. Pages go to the copies
by the length of their sources, largest first, so that the copies finish together;
a copy whose kernel could not start because a kernel starting in another copy took
its port renders again. With one processor, or outside a git checkout, the pages'
results are removed instead, and one ``quarto render`` executes and renders every
page.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECORD = Path(".cache/render-inputs.json")
# Never read by a render (the tests, CI, the repository's documents, the tools run by
# hand and this script): a change here leaves the site as it is.
NOT_INPUTS = (
    "tests/",
    ".ci/",
    ".github/",
    "README.md",
    "CONTRIBUTING.md",
    ".pre-commit-config.yaml",
    "package.json",
    "scripts/test.sh",
    "scripts/bench_render.py",
    "scripts/format_cells.py",
    "scripts/render_site.py",
)
# More changed pages than this: one full render is quicker than one render each.
MOST_PAGES_ONE_BY_ONE = 3
# Files no cell reads: a change to these alone leaves every page's results as they are.
PRESENTATION_ONLY = (".css", ".scss", ".html", ".js", ".svg", ".png")
# A page with code: a Python cell in its source or in a file it includes.
CODE_CELL = re.compile(r"^```+\s*\{python\b", re.M)


# What Quarto and Jupyter print while rendering this site that is not a fault of the
# site, each with why; run_quarto drops exactly these from the render log, and
# tests/test_render.py fails on any other warning in it.
HARMLESS_WARNINGS = (
    # Quarto numbers a page's OJS cells by the ```{ojs} lines of the page's own file
    # (execute/ojs/annotate-source.ts), so it warns once for each OJS cell that comes
    # from an included file: every explorer's cells are in an _explorer.qmd. Only the
    # line numbers of an OJS syntax error's message would be off; the cells render
    # whole (tests/test_render.py checks each explorer's page).
    re.compile(
        r"(?:\x1b\[[0-9;]*m)?WARN: OJS block count mismatch\. "
        r"Line number reporting is likely to be wrong(?:\x1b\[[0-9;]*m)?\n?"
    ),
    # ipykernel 7 on the TCP transport Quarto's kernels use: the kernel listens on
    # 127.0.0.1 only, for the render's own process, and runs the posts' cells.
    re.compile(
        r"\[IPKernelApp\] WARNING \| Kernel is running over TCP without encryption\."
        r"[^\n]*\n?"
    ),
)


def drop_harmless_warnings(
    text: str, warnings: tuple[re.Pattern[str], ...] = HARMLESS_WARNINGS
) -> str:
    """``text`` without the lines of ``warnings``."""
    for warning in warnings:
        text = warning.sub("", text)
    return text


def run_quarto(command: list[str]) -> int:
    """Run ``command`` in the project, passing its messages on as they come, without
    the harmless warnings; return its exit status."""
    with subprocess.Popen(
        command, cwd=ROOT, stderr=subprocess.PIPE, encoding="utf-8", errors="replace"
    ) as process:
        assert process.stderr is not None
        for line in process.stderr:
            sys.stderr.write(drop_harmless_warnings(line))
            sys.stderr.flush()
    return process.returncode


# Quarto's message as a page's kernel starts ("Starting python3 kernel...Done").
KERNEL_STARTING = re.compile(r"^Starting \S+ kernel\.\.\.")
# How many times a copy renders when its kernels cannot start for a taken port.
KERNEL_START_ATTEMPTS = 3
# A kernel that could not start because another process took a port it was given in
# the meantime: jupyter_client picks free ports, then the kernel binds them, so two
# kernels starting at once can be given the same one. Starting again succeeds.
PORT_TAKEN = re.compile(r"ZMQError: Address already in use")


def run_copy_render(
    command: list[str], copy: Path, prefix: str, lock: threading.Lock
) -> tuple[int, list[str]]:
    """Run ``command`` in a copy of the project rendering beside others, passing its
    messages on as whole lines after ``prefix``. Return its exit status with the
    messages of a kernel that did not start, held back until it has: the caller says
    what they mean."""
    warnings = HARMLESS_WARNINGS
    with subprocess.Popen(
        command,
        cwd=copy,
        stdout=subprocess.DEVNULL,  # the pages it wrote
        stderr=subprocess.PIPE,
        encoding="utf-8",
        errors="replace",
    ) as process:
        assert process.stderr is not None
        pending, held = "", []
        for line in process.stderr:
            # A line cut by a dropped warning ("Starting python3 kernel...") waits
            # for its end, so that the copies' lines do not run into each other.
            pending += drop_harmless_warnings(line, warnings)
            if not pending.endswith("\n"):
                continue
            if held or KERNEL_STARTING.match(pending):
                held.append(pending)
                if pending.rstrip().endswith("Done"):
                    write_lines(prefix, held, lock)
                    held = []
            else:
                write_lines(prefix, [pending], lock)
            pending = ""
        if pending and held:
            held.append(pending + "\n")
        elif pending:
            write_lines(prefix, [pending + "\n"], lock)
    return process.returncode, held


def write_lines(prefix: str, lines: list[str], lock: threading.Lock) -> None:
    """Write ``lines`` to standard error, each after ``prefix``, one writer at a
    time."""
    with lock:
        sys.stderr.write("".join(prefix + line for line in lines))
        sys.stderr.flush()


@dataclass
class Plan:
    """What to render: every page, these pages, or nothing; and, before a full
    render, the pages to execute again."""

    full: bool
    pages: list[str] = field(default_factory=list)
    reason: str = ""
    execute: list[str] = field(default_factory=list)

    @property
    def nothing(self) -> bool:
        return not self.full and not self.pages


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def git_files(project: Path) -> list[str] | None:
    """The files git shows in ``project``, or None outside a git checkout."""
    if shutil.which("git") is None:
        return None
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=project,
        capture_output=True,
    )
    if listed.returncode != 0:
        return None
    return sorted(set(filter(None, listed.stdout.decode().split("\0"))))


def input_digests(project: Path) -> dict[str, str] | None:
    """Each input's path and SHA-256, or None when the inputs cannot be listed."""
    files = git_files(project)
    if files is None:
        return None
    names = [name for name in files if not name.startswith(NOT_INPUTS)]
    freeze = project / "_freeze"
    if freeze.is_dir():
        # Not _freeze/site_libs/: Quarto's own copy of the libraries of the pages it
        # took from _freeze/, which a plain `quarto render` writes and a render in
        # copies does not (its pages bring their libraries to the site themselves).
        names += sorted(
            path.relative_to(project).as_posix()
            for path in freeze.rglob("*")
            if path.is_file() and "site_libs" not in path.relative_to(freeze).parts[:1]
        )
    # A file git lists may be deleted in the working tree and not yet staged.
    return {
        name: file_digest(project / name)
        for name in names
        if (project / name).is_file()
    }


def is_page(name: str) -> bool:
    """A page Quarto renders from this source (`project: render: ["*.qmd"]`);
    reference/ is written by the pre-render step, from the library."""
    path = Path(name)
    return (
        path.suffix == ".qmd"
        and not name.startswith("reference/")
        and not any(part.startswith(("_", ".")) for part in path.parts)
    )


INCLUDE = re.compile(r"\{\{<\s*include\s+(\S+)\s*>\}\}")


def includes(project: Path, pages: list[str]) -> dict[str, set[str]]:
    """Each file that a page pulls in with `{{< include >}}`: the pages that do."""
    included_by: dict[str, set[str]] = {}
    for page in pages:
        text = (project / page).read_text(encoding="utf-8")
        for target in INCLUDE.findall(text):
            name = os.path.normpath(Path(page).parent / target)
            included_by.setdefault(Path(name).as_posix(), set()).add(page)
    return included_by


def output_page(project: Path, source: str) -> Path:
    return project / "_site" / Path(source).with_suffix(".html")


def frozen_results(page: str) -> Path:
    """Where Quarto keeps ``page``'s executed results (``freeze``), in the project."""
    return Path("_freeze") / Path(page).with_suffix("")


def pages_with_code(
    project: Path, pages: list[str], included_by: dict[str, set[str]]
) -> list[str]:
    """The pages among ``pages`` that have cells to execute, in their sources or in
    the files they include (``included_by``, as `includes` gives it)."""
    with_code = {
        page
        for page in pages
        if CODE_CELL.search((project / page).read_text(encoding="utf-8"))
    }
    for name, including in included_by.items():
        path = project / name
        if path.is_file() and CODE_CELL.search(path.read_text(encoding="utf-8")):
            with_code |= including
    return sorted(with_code)


def every_page_with_code(project: Path, names: list[str]) -> list[str]:
    """The pages among ``names`` that have cells to execute."""
    pages = [name for name in names if is_page(name)]
    return pages_with_code(project, pages, includes(project, pages))


def cells_may_read(name: str) -> bool:
    """Whether a change to ``name``, neither a page nor a file a page includes, can
    change what a page's cells compute."""
    return not name.startswith("_freeze/") and not name.endswith(PRESENTATION_ONLY)


def render_and_execute_all(project: Path, names: list[str], reason: str) -> Plan:
    """A full render, every page with code among ``names`` executed before it."""
    return Plan(full=True, reason=reason, execute=every_page_with_code(project, names))


def plan_render(
    project: Path, current: dict[str, str] | None, quarto_version: str
) -> Plan:
    """What has to be rendered for ``_site/`` to match the inputs ``current``."""
    if current is None:
        reason = "the inputs cannot be listed (no git checkout)"
        return render_and_execute_all(project, qmd_files(project), reason)
    # Without a usable record of the last render, no page's results can be trusted.
    record_path = project / RECORD
    if not record_path.is_file():
        reason = "no record of an earlier render"
        return render_and_execute_all(project, sorted(current), reason)
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        previous = dict(record["inputs"])
        previous_version = str(record["quarto"])
    except (ValueError, KeyError, TypeError):
        reason = f"{RECORD} is unreadable"
        return render_and_execute_all(project, sorted(current), reason)
    if previous_version != quarto_version:
        reason = f"Quarto {quarto_version}, not {previous_version} as last time"
        return render_and_execute_all(project, sorted(current), reason)
    added_or_removed = sorted(set(current) ^ set(previous))
    changed = sorted(
        name for name in current if name in previous and current[name] != previous[name]
    )
    missing = sorted(
        name
        for name in current
        if is_page(name) and not output_page(project, name).is_file()
    )
    if not (added_or_removed or changed or missing):
        return Plan(full=False)
    all_pages = [name for name in current if is_page(name)]
    included_by = includes(project, all_pages)
    pages: set[str] = set()
    shared: list[str] = []
    for name in [*added_or_removed, *changed]:
        if is_page(name):
            if name in current:
                pages.add(name)
        elif name in included_by:
            pages |= included_by[name]
        else:
            shared.append(name)
    if added_or_removed:
        reason = f"{added_or_removed[0]} was added or removed"
    elif missing:
        reason = f"{missing[0]} has no page in _site/"
    elif shared:
        reason = f"{shared[0]} changed"
    elif len(pages) > MOST_PAGES_ONE_BY_ONE:
        reason = f"{len(pages)} pages changed"
    else:
        return Plan(full=False, pages=sorted(pages))
    # Before the full render: the pages whose results cannot be trusted.
    with_code = pages_with_code(project, sorted(all_pages), included_by)
    if any(cells_may_read(name) for name in shared):
        execute = with_code
    else:
        execute = [
            page
            for page in with_code
            if page in pages
            or not (project / frozen_results(page) / "execute-results").is_dir()
        ]
    return Plan(full=True, reason=reason, execute=execute)


def write_record(project: Path, inputs: dict[str, str], quarto_version: str) -> None:
    path = project / RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"quarto": quarto_version, "inputs": inputs}
    path.write_text(json.dumps(record, indent=1, sort_keys=True), encoding="utf-8")


def processors() -> int:
    """How many processors this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def qmd_files(project: Path) -> list[str]:
    """Every .qmd file under ``project``, for a project git cannot list."""
    paths = project.rglob("*.qmd")
    return sorted(path.relative_to(project).as_posix() for path in paths)


# Put before each line a copy's render prints, to tell the copies apart in the log.
COPY_PREFIX = "[copy {}] "
# The start of a line of the log, printed by a copy or by the render of the project.
LOG_LINE = r"^(?:\[copy \d+\] )?"
# A page's execution, in the log.
EXECUTION = re.compile(LOG_LINE + "Executing '", re.M)


def source_sizes(project: Path, pages: list[str]) -> dict[str, int]:
    """The length of each page's source with the files it includes: the measure of
    its work that sharing the pages out goes by (a longer post has more to run)."""
    sizes = {page: len((project / page).read_text(encoding="utf-8")) for page in pages}
    for name, including in includes(project, pages).items():
        path = project / name
        if path.is_file():
            for page in including:
                sizes[page] += len(path.read_text(encoding="utf-8"))
    return sizes


def share_out(pages: list[str], shares: int, sizes: dict[str, int]) -> list[list[str]]:
    """``pages`` in ``shares`` lists of about equal total size, the largest page
    first to the smallest share; each list in the order of the names."""
    lists: list[list[str]] = [[] for _ in range(shares)]
    totals = [0] * shares
    for page in sorted(pages, key=lambda page: (-sizes[page], page)):
        smallest = totals.index(min(totals))
        lists[smallest].append(page)
        totals[smallest] += sizes[page]
    return [sorted(share) for share in lists]


def generated_pages(project: Path) -> list[str]:
    """The pages the pre-render step writes (the API reference, from
    ``_quartodoc.yml``): Quarto renders them, git does not list them."""
    if not (project / "_quartodoc.yml").is_file():
        return []
    from reference_links import quartodoc_config, reference_layout

    directory = quartodoc_config(project).get("dir", "reference")
    names = ["index", *(page.path for page in reference_layout(project))]
    return sorted({f"{directory}/{name}.qmd" for name in names})


def quarto_pages(project: Path, names: list[str]) -> list[str]:
    """Every page a full render renders (``names``: the inputs), in its order:
    by path, as Quarto's glob lists them."""
    return sorted(
        {name for name in names if is_page(name)} | set(generated_pages(project))
    )


# What a page stands in for another page with in a copy: its front matter, which a
# listing, a link and the sitemap read, and a paragraph, so that it is indexed.
STUB_BODY = "\nThis page stands in for the real one, rendered elsewhere.\n"


def stub_text(text: str) -> str:
    """A stand-in for a page with source ``text``: its front matter and one
    paragraph, without its cells (nothing to execute) and its prose."""
    if text.startswith("---\n"):
        end = text.find("\n---\n", 4)
        if end != -1:
            return text[: end + 5] + STUB_BODY
    return "---\ntitle: stub\n---\n" + STUB_BODY


def make_copy(
    project: Path,
    files: list[str],
    destination: Path,
    stubs: list[str],
    pre_render: bool,
) -> None:
    """Copy ``files`` of ``project`` to ``destination``, a stand-in for each page of
    ``stubs`` instead of it (dated as its source is, since the sitemap dates a page
    so), without the post-render step (run once, on the whole site) and, unless
    ``pre_render``, without the pre-render step (which builds the reference)."""
    for name in files:
        if name not in stubs:
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(project / name, target)
    for name in stubs:
        source, target = project / name, destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        text = source.read_text(encoding="utf-8") if source.is_file() else ""
        target.write_text(stub_text(text), encoding="utf-8")
        if source.is_file():
            shutil.copystat(source, target)
    without_steps(destination, pre_render)


def without_steps(copy: Path, pre_render: bool) -> None:
    """Take the post-render step (and, unless ``pre_render``, the pre-render step)
    out of the configuration of ``copy``."""
    import yaml  # installed with the site's requirements, as Quarto's kernel needs it

    config_path = copy / "_quarto.yml"
    config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    options = config.setdefault("project", {})
    options.pop("post-render", None)
    if not pre_render:
        options.pop("pre-render", None)
    config_path.write_text(
        yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8"
    )


def listing_pages(project: Path, pages: list[str]) -> list[str]:
    """The pages among ``pages`` that list others (a ``listing:`` in their front
    matter)."""
    import yaml

    listing = []
    for page in pages:
        path = project / page
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        if text.startswith("---\n") and "\n---\n" in text[3:]:
            front = yaml.safe_load(text[4 : text.index("\n---\n", 3)])
            if isinstance(front, dict) and "listing" in front:
                listing.append(page)
    return listing


def post_render_steps(project: Path) -> list[list[str]]:
    """The commands of the project's post-render step, as Quarto runs them."""
    import yaml

    config = yaml.safe_load((project / "_quarto.yml").read_text(encoding="utf-8"))
    steps = (config or {}).get("project", {}).get("post-render") or []
    if isinstance(steps, str):
        steps = [steps]
    return [
        [sys.executable, step] if step.endswith(".py") else step.split()
        for step in steps
    ]


SITE = Path("_site")


def page_output(page: str) -> Path:
    """``page``'s HTML, relative to the site."""
    return Path(page).with_suffix(".html")


def search_docs(site: Path) -> list[dict[str, object]]:
    path = site / "search.json"
    if not path.is_file():
        return []
    docs: list[dict[str, object]] = json.loads(path.read_text(encoding="utf-8"))
    return docs


def write_search_docs(site: Path, docs: list[dict[str, object]]) -> None:
    # As Quarto writes it: JSON.stringify(docs, undefined, 2).
    text = json.dumps(docs, indent=2, ensure_ascii=False)
    (site / "search.json").write_text(text, encoding="utf-8")


def doc_page(doc: dict[str, object]) -> str:
    return str(doc["href"]).partition("#")[0]


def replace_search_docs(
    docs: list[dict[str, object]], replacements: dict[str, list[dict[str, object]]]
) -> list[dict[str, object]]:
    """``docs`` with the entries of each page in ``replacements`` (by its HTML's
    path) replaced by those given, where the page's first entry was."""
    result: list[dict[str, object]] = []
    for doc in docs:
        page = doc_page(doc)
        if page not in replacements:
            result.append(doc)
        elif all(doc_page(earlier) != page for earlier in result):
            result += replacements[page]
    return result


def page_paths(page: str, alone: bool) -> list[Path]:
    """What a render writes for ``page`` in the site: its folder when it is the
    only page there (a post), else its HTML and its ``_files``."""
    html = page_output(page)
    if alone and html.parent != Path("."):
        return [html.parent]
    return [html, html.parent / f"{html.stem}_files"]


def replace_path(source: Path, target: Path) -> None:
    if target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()
    if source.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(source, target)


def merge_tree(source: Path, target: Path) -> None:
    """Copy into ``target`` each file of ``source`` it lacks."""
    for path in source.rglob("*"):
        if path.is_file():
            destination = target / path.relative_to(source)
            if not destination.exists():
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, destination)


def render_target(pages: list[str]) -> str:
    """The folder holding ``pages`` (Quarto renders one file or one folder)."""
    return Path(os.path.commonpath([Path(page).parent for page in pages])).as_posix()


def render_copy(
    quarto: str, command: list[str], copy: Path, prefix: str, lock: threading.Lock
) -> int:
    """Run ``command`` in ``copy``, rendering again (up to KERNEL_START_ATTEMPTS
    times) when a kernel could not start for a port taken meanwhile."""
    for attempt in range(1, KERNEL_START_ATTEMPTS + 1):
        status, unstarted = run_copy_render(command, copy, prefix, lock)
        if status == 0 or not unstarted:
            return status
        if not PORT_TAKEN.search("".join(unstarted)):
            write_lines(prefix, unstarted, lock)
            return status
        # Its render stopped there; again, it takes the results of the pages it
        # has executed (--use-freezer: a render of a folder executes its pages
        # otherwise) and goes on from that page.
        if "--use-freezer" not in command:
            command = [*command, "--use-freezer"]
        note = (
            "A kernel could not start: another one starting at the same "
            "moment took a port it was given."
        )
        if attempt < KERNEL_START_ATTEMPTS:
            note += " Rendering this copy's pages again."
        write_lines(prefix, [note + "\n"], lock)
    return status


def render_in_copies(
    quarto: str, pages: list[str], inputs: list[str] | None, all_pages: list[str]
) -> int | None:
    """Render every page, executing ``pages`` again, in copies of the project that
    render at once; return an exit status, or None where there are no copies to
    make (one processor, no git checkout): then the old results of ``pages`` are
    removed, and the render of the project that follows executes them.

    The pages to execute are shared out among as many copies as there are
    processors, each rendering its share; another copy renders every other page,
    and runs the pre-render step. In each, a stand-in takes the place of each page
    it does not render (its front matter and a paragraph): the links to it resolve,
    the listing reads it, and it costs little to render. Then the project's site is
    made of their pages, the results of the pages executed (``_freeze/``) are moved
    into the project, the search index lists the real pages, and the post-render
    step runs on the whole site, as a render of every page would leave it."""
    workers = min(processors(), len(pages))
    if workers < 2 or inputs is None:
        for page in pages:
            shutil.rmtree(ROOT / frozen_results(page), ignore_errors=True)
        return None
    files = [name for name in inputs if not name.startswith("_freeze/")]
    shares = share_out(pages, workers, source_sizes(ROOT, pages))
    print(
        f"Executing {len(pages)} pages, {workers} at a time, each copy of the "
        f"project rendering its share; copy {workers + 1} renders the other pages:",
        flush=True,
    )
    started = time.perf_counter()
    lock = threading.Lock()
    with tempfile.TemporaryDirectory(prefix="render-site-") as scratch:
        copies = [Path(scratch) / f"copy-{index + 1}" for index in range(workers + 1)]

        def render_share(index: int) -> int:
            prefix = COPY_PREFIX.format(index + 1)
            if index == workers:  # every page but those executed, as they stand
                executed = tuple(
                    f"{frozen_results(page).as_posix()}/" for page in pages
                )
                kept = [name for name in inputs if not name.startswith(executed)]
                make_copy(ROOT, kept, copies[index], pages, pre_render=True)
                return render_copy(
                    quarto, [quarto, "render"], copies[index], prefix, lock
                )
            share = shares[index]
            stubs = [page for page in all_pages if page not in share]
            make_copy(ROOT, files, copies[index], stubs, pre_render=False)
            # With a folder named, Quarto executes its pages (a copy has no results
            # yet) and renders them as part of the whole site; the stand-ins with them
            # cost little.
            target = str(copies[index] / render_target(share))
            return render_copy(
                quarto, [quarto, "render", target], copies[index], prefix, lock
            )

        with ThreadPoolExecutor(workers + 1) as pool:
            statuses = list(pool.map(render_share, range(workers + 1)))
        for index, status in enumerate(statuses):
            if status != 0:
                what = (
                    ", ".join(shares[index]) if index < workers else "the other pages"
                )
                print(
                    f"Rendering {what} failed "
                    f"(the messages of [copy {index + 1}] above say why).",
                    file=sys.stderr,
                )
                return status
        for copy, share in zip(copies, shares, strict=False):
            for page in share:
                if not (copy / frozen_results(page) / "execute-results").is_dir():
                    print(f"Quarto kept no results for {page}.", file=sys.stderr)
                    return 1
        whole = copies[workers]
        folders = [Path(page).parent for page in all_pages]
        replacements: dict[str, list[dict[str, object]]] = {}
        for copy, share in zip(copies, shares, strict=False):
            docs = search_docs(copy / SITE)
            for page in share:
                target = ROOT / frozen_results(page)
                shutil.rmtree(target, ignore_errors=True)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(copy / frozen_results(page), target)
                for name in page_paths(page, folders.count(Path(page).parent) == 1):
                    replace_path(copy / SITE / name, whole / SITE / name)
                html = page_output(page).as_posix()
                replacements[html] = [doc for doc in docs if doc_page(doc) == html]
            # What the executed pages use besides: libraries, the files they load.
            merge_tree(copy / SITE, whole / SITE)
        # A listing's feed holds the contents of the pages it lists: rendered again
        # now that the real pages are there, it takes theirs.
        without_steps(whole, pre_render=False)
        for page in listing_pages(ROOT, all_pages):
            prefix = COPY_PREFIX.format(workers + 1)
            command = [quarto, "render", str(whole / page)]
            status, _ = run_copy_render(command, whole, prefix, lock)
            if status != 0:
                print(f"Rendering {page} again failed.", file=sys.stderr)
                return status
        site = ROOT / SITE
        shutil.rmtree(site, ignore_errors=True)
        shutil.move(whole / SITE, site)
        # What Quarto keeps between renders, as a render of every page leaves it:
        # no index of the pages' sources (read again when needed), and which pages
        # list which (a later render of one post renders its listing with it).
        state = ROOT / ".quarto"
        shutil.rmtree(state / "idx", ignore_errors=True)
        replace_path(whole / ".quarto" / "listing", state / "listing")
        write_search_docs(site, replace_search_docs(search_docs(site), replacements))
        # What the pre-render step wrote, as a render of the project leaves it.
        for folder in sorted({Path(page).parts[0] for page in generated_pages(ROOT)}):
            replace_path(whole / folder, ROOT / folder)
    seconds = time.perf_counter() - started
    print(
        f"Rendered every page, {len(pages)} executed, in {seconds:.0f} s.", flush=True
    )
    for command in post_render_steps(ROOT):
        env = dict(os.environ, QUARTO_PROJECT_OUTPUT_DIR=str(SITE))
        env["QUARTO_PROJECT_RENDER_ALL"] = "1"
        returncode = subprocess.run(command, cwd=ROOT, env=env, check=False).returncode
        if returncode != 0:
            return returncode
    return 0


def quarto_version(quarto: str) -> str:
    return subprocess.run(
        [quarto, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()


def main(argv: list[str]) -> int:
    if argv in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    quarto = shutil.which("quarto")
    if quarto is None:
        print(
            "quarto is not on PATH (https://quarto.org/docs/get-started/)",
            file=sys.stderr,
        )
        return 1
    full = argv == ["--full"]
    if argv and not full:
        # The caller chose what to render; the record keeps describing the last
        # render that covered every change, so the next plain run catches up.
        return run_quarto([quarto, "render", *argv])
    version = quarto_version(quarto)
    inputs = input_digests(ROOT)
    if full:
        names = sorted(inputs) if inputs is not None else qmd_files(ROOT)
        plan = render_and_execute_all(ROOT, names, "--full")
    else:
        plan = plan_render(ROOT, inputs, version)
    if plan.nothing:
        print(
            "Nothing changed since the last render: _site/ is up to date "
            "(--full renders every page)."
        )
        return 0
    if plan.full:
        print(f"Rendering every page ({plan.reason}).", flush=True)
        commands = [[quarto, "render"]]
        if plan.execute:
            names = sorted(inputs) if inputs is not None else qmd_files(ROOT)
            returncode = render_in_copies(
                quarto,
                plan.execute,
                None if inputs is None else sorted(inputs),
                quarto_pages(ROOT, names),
            )
            if returncode is not None:
                if returncode != 0:
                    return returncode
                commands = []
    else:
        print(f"Rendering what changed: {', '.join(plan.pages)}.", flush=True)
        commands = [[quarto, "render", page] for page in plan.pages]
    for command in commands:
        returncode = run_quarto(command)
        if returncode != 0:
            return returncode
    inputs = input_digests(ROOT)
    if inputs is not None:
        write_record(ROOT, inputs, version)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
