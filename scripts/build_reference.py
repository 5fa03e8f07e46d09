"""Quarto's pre-render step: write the API reference (reference/) from the docstrings.

Runs ``quartodoc build`` with its configuration, ``_quartodoc.yml``, in the Python
Quarto uses (``QUARTO_PYTHON``), so the reference documents the library that the
posts import. quartodoc writes each topic page as a run of objects; this then gives
each page its section's title and description, so that the page has a title and
says what it covers. Without quartodoc it says which command to run.

A render of one edited post runs this too: when nothing the reference is written
from changed since the last build (the library's source, the configuration, these
scripts, quartodoc's version; kept in ``.cache/reference-inputs.txt``) and every page
is there, it leaves the pages as they are instead of loading the library again.

    python scripts/build_reference.py [PROJECT]   # PROJECT: where _quartodoc.yml is
"""

from __future__ import annotations

import hashlib
import importlib.metadata
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
# The digest of what the reference was last built from, in the project.
STAMP = Path(".cache/reference-inputs.txt")


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


def inputs_digest(root: Path, config: Path) -> str:
    """SHA-256 of what the reference is written from: the library's source (where
    this Python imports it from), the configuration, these scripts, and quartodoc's
    version."""
    spec = importlib.util.find_spec("backprop")
    package = [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    sources = sorted(path for folder in package for path in folder.rglob("*.py"))
    scripts = Path(__file__).resolve().parent
    files = [config, scripts / "build_reference.py", scripts / "reference_links.py"]
    digest = hashlib.sha256(importlib.metadata.version("quartodoc").encode())
    for path in [*files, *sources]:
        digest.update(f"\0{path.name}\0".encode() + path.read_bytes())
    return digest.hexdigest()


def pages_are_there(root: Path) -> bool:
    from reference_links import quartodoc_config, reference_layout

    directory = root / quartodoc_config(root).get("dir", "reference")
    names = ["index", *(page.path for page in reference_layout(root))]
    paths = [directory / f"{name}.qmd" for name in names]
    return all(
        path.is_file() and path.read_text().startswith("---\n") for path in paths
    )


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
    digest = inputs_digest(root, config)
    stamp = root / STAMP
    if stamp.is_file() and stamp.read_text() == digest and pages_are_there(root):
        print("The API reference is up to date (nothing it is written from changed).")
        return 0
    build = [sys.executable, "-m", "quartodoc", "build", "--config", str(config)]
    returncode = subprocess.run(build, cwd=root, check=False).returncode
    if returncode == 0:
        add_headers(root)
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(digest)
    return returncode


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT))
