"""Format the posts' Python cells with ruff, in the project's style (pyproject.toml).

    python scripts/format_cells.py                 # rewrite every post's cells
    python scripts/format_cells.py --check         # change nothing; exit 1 if any
                                                   # cell would change, naming it
    python scripts/format_cells.py posts/03-*/index.qmd   # only these posts

Each ```{python} cell is formatted on its own with ``ruff format``; its ``#|``
option lines stay at the top, as Quarto requires, and the prose is left alone.
A cell ruff cannot parse is reported and left as it is.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CELL = re.compile(r"^(```\{python\}[^\n]*\n)(.*?)(^```[ \t]*$)", re.S | re.M)
OPTION = re.compile(r"^#\|")


@dataclass(frozen=True)
class CellResult:
    post: Path
    line: int  # of the cell's opening fence, 1-based
    changed: bool
    error: str | None = None


def ruff_command() -> list[str]:
    """``ruff`` from the environment running this script, else from PATH."""
    local = Path(sys.executable).with_name("ruff")
    found = str(local) if local.is_file() else shutil.which("ruff")
    if found is None:
        sys.exit("ruff is not installed: pip install -e '.[test]'")
    return [found]


def format_code(code: str) -> str:
    """``code`` formatted by ruff with the project's configuration."""
    result = subprocess.run(
        [*ruff_command(), "format", "--stdin-filename", "cell.py", "-"],
        input=code,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if result.returncode != 0:
        raise ValueError(result.stderr.strip() or "ruff could not format the cell")
    return result.stdout


def split_options(source: str) -> tuple[str, str]:
    """The cell's leading ``#|`` option lines, and the code after them."""
    lines = source.splitlines(keepends=True)
    count = 0
    while count < len(lines) and OPTION.match(lines[count]):
        count += 1
    return "".join(lines[:count]), "".join(lines[count:])


def format_post(post: Path, *, write: bool) -> list[CellResult]:
    """Format every Python cell of ``post``; write the file back if ``write``."""
    text = post.read_text(encoding="utf-8")
    results: list[CellResult] = []

    def replace(match: re.Match[str]) -> str:
        opening, source, closing = match.groups()
        line = text.count("\n", 0, match.start()) + 1
        options, code = split_options(source)
        if not code.strip():
            results.append(CellResult(post, line, changed=False))
            return match.group(0)
        try:
            formatted = format_code(code)
        except ValueError as error:
            results.append(CellResult(post, line, changed=False, error=str(error)))
            return match.group(0)
        new_source = options + formatted
        results.append(CellResult(post, line, changed=new_source != source))
        return opening + new_source + closing

    new_text = CELL.sub(replace, text)
    if write and new_text != text:
        post.write_text(new_text, encoding="utf-8")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("posts", nargs="*", type=Path, help="default: every post")
    parser.add_argument(
        "--check", action="store_true", help="report cells that would change"
    )
    args = parser.parse_args(argv)
    posts = args.posts or sorted(ROOT.glob("posts/*/index.qmd"))

    changed = errors = total = 0
    for post in posts:
        for cell in format_post(post, write=not args.check):
            total += 1
            where = f"{post}:{cell.line}"
            if cell.error is not None:
                errors += 1
                print(f"{where}: ruff cannot parse this cell: {cell.error}")
            elif cell.changed:
                changed += 1
                verb = "would be reformatted" if args.check else "reformatted"
                print(f"{where}: cell {verb}")
    verb = "would change" if args.check else "changed"
    print(f"{total} cells in {len(posts)} posts: {changed} {verb}, {errors} unparsable")
    return 1 if errors or (args.check and changed) else 0


if __name__ == "__main__":
    sys.exit(main())
