"""Render the site, or only the pages that changed since the last render.

    python scripts/render_site.py           # what changed (everything, the first time)
    python scripts/render_site.py --full    # every page
    python scripts/render_site.py PATH ...  # passed on to `quarto render` as they are

``quarto render`` renders every page on every run, so a render with nothing changed
takes as long as one after every page changed (about 30 s here), although ``freeze``
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
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
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


def drop_harmless_warnings(text: str) -> str:
    """``text`` without the lines of HARMLESS_WARNINGS."""
    for warning in HARMLESS_WARNINGS:
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


@dataclass
class Plan:
    """What to render: every page, these pages, or nothing."""

    full: bool
    pages: list[str] = field(default_factory=list)
    reason: str = ""

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
        names += sorted(
            path.relative_to(project).as_posix()
            for path in freeze.rglob("*")
            if path.is_file()
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


def plan_render(
    project: Path, current: dict[str, str] | None, quarto_version: str
) -> Plan:
    """What has to be rendered for ``_site/`` to match the inputs ``current``."""
    if current is None:
        return Plan(full=True, reason="the inputs cannot be listed (no git checkout)")
    record_path = project / RECORD
    if not record_path.is_file():
        return Plan(full=True, reason="no record of an earlier render")
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        previous = dict(record["inputs"])
        previous_version = str(record["quarto"])
    except (ValueError, KeyError, TypeError):
        return Plan(full=True, reason=f"{RECORD} is unreadable")
    if previous_version != quarto_version:
        return Plan(
            full=True,
            reason=f"Quarto {quarto_version}, not {previous_version} as last time",
        )
    added_or_removed = sorted(set(current) ^ set(previous))
    if added_or_removed:
        return Plan(full=True, reason=f"{added_or_removed[0]} was added or removed")
    missing = sorted(
        name
        for name in current
        if is_page(name) and not output_page(project, name).is_file()
    )
    if missing:
        return Plan(full=True, reason=f"{missing[0]} has no page in _site/")
    changed = sorted(name for name in current if current[name] != previous[name])
    if not changed:
        return Plan(full=False)
    included_by = includes(project, [name for name in current if is_page(name)])
    pages: set[str] = set()
    for name in changed:
        if is_page(name):
            pages.add(name)
        elif name in included_by:
            pages |= included_by[name]
        else:
            return Plan(full=True, reason=f"{name} changed")
    if len(pages) > MOST_PAGES_ONE_BY_ONE:
        return Plan(full=True, reason=f"{len(pages)} pages changed")
    return Plan(full=False, pages=sorted(pages))


def write_record(project: Path, inputs: dict[str, str], quarto_version: str) -> None:
    path = project / RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"quarto": quarto_version, "inputs": inputs}
    path.write_text(json.dumps(record, indent=1, sort_keys=True), encoding="utf-8")


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
    plan = (
        Plan(full=True, reason="--full")
        if full
        else plan_render(ROOT, input_digests(ROOT), version)
    )
    if plan.nothing:
        print(
            "Nothing changed since the last render: _site/ is up to date "
            "(--full renders every page)."
        )
        return 0
    if plan.full:
        print(f"Rendering every page ({plan.reason}).", flush=True)
        commands = [[quarto, "render"]]
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
