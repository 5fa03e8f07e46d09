"""Quarto's pre-render step: write the API reference (reference/) from the docstrings.

Runs ``quartodoc build`` with its configuration, ``_quartodoc.yml``, in the Python
Quarto uses (``QUARTO_PYTHON``), so the reference documents the library that the
posts import. quartodoc writes each topic page as a run of objects; this then gives
each page its section's title and description, so that the page has a title and
says what it covers. Without quartodoc it says which command to run.

    python scripts/build_reference.py [PROJECT]   # PROJECT: where _quartodoc.yml is
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reference_links import ReferencePage

ROOT = Path(__file__).resolve().parent.parent
SETUP = "./scripts/render.sh   (or: pip install -e '.[notebook]')"


def front_matter(title: str, **options: object) -> str:
    # JSON strings and numbers are valid YAML scalars, whatever the title holds.
    lines = [
        f"{key}: {json.dumps(value)}"
        for key, value in (("title", title), *options.items())
    ]
    return "---\n" + "\n".join(lines) + "\n---\n\n"


def page_header(page: ReferencePage) -> str:
    """Front matter naming the page, and the paragraphs that open it."""
    intro = "".join(f"{paragraph}\n\n" for paragraph in page.intro)
    return front_matter(page.title, **{"toc-depth": 2}) + intro


def add_headers(root: Path) -> None:
    # Imported here, not at the top: main's quartodoc check must run on a bare
    # Python, which lacks the yaml that reference_links reads the configuration with.
    from reference_links import quartodoc_config, reference_layout

    config = quartodoc_config(root)
    directory = root / config.get("dir", "reference")
    for page in reference_layout(root):
        path = directory / f"{page.path}.qmd"
        text = path.read_text(encoding="utf-8")
        if not text.startswith("---\n"):
            path.write_text(page_header(page) + text, encoding="utf-8")
    # quartodoc opens the index with a "# Title" line; Quarto would title the page
    # "index". The title goes into the front matter instead.
    index = directory / "index.qmd"
    first, _, rest = index.read_text(encoding="utf-8").partition("\n")
    if first.startswith("# "):
        title = config.get("title", "Reference")
        index.write_text(front_matter(title) + rest.lstrip("\n"), encoding="utf-8")


def main(root: Path) -> int:
    if importlib.util.find_spec("quartodoc") is None:
        print(
            f"The API reference cannot be built: the Python at {sys.executable} "
            f"lacks quartodoc.\nSet it up with:\n  {SETUP}",
            file=sys.stderr,
        )
        return 1
    # quartodoc needs yaml, so reference_links can be imported from here on.
    from reference_links import CONFIG_FILE

    config = root / CONFIG_FILE
    if not config.is_file():
        print(
            f"The API reference cannot be built: {config} is missing (quartodoc's "
            "configuration, the reference's layout).",
            file=sys.stderr,
        )
        return 1
    build = [sys.executable, "-m", "quartodoc", "build", "--config", str(config)]
    returncode = subprocess.run(build, cwd=root, check=False).returncode
    if returncode == 0:
        add_headers(root)
    return returncode


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT))
