"""Quarto's post-render step: finish the pages and write each post's notebook.

- Quarto's HTML template loads a polyfill script from a third-party CDN whenever a
  page uses MathJax; every browser the site supports has what it polyfills, so
  the tag is removed and no page asks a host other than MathJax's for anything.
- Each post's notebook is built from its source (scripts/notebooks.py) rather than
  by a second Quarto format, so every post executes once per render.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from notebooks import ROOT, write_notebooks

POLYFILL = re.compile(r'[ \t]*<script src="https://[^"]*polyfill[^"]*"></script>\n?')


def strip_polyfill(site: Path) -> int:
    """Remove the polyfill script from every page under ``site``; the pages changed."""
    changed = 0
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        stripped = POLYFILL.sub("", text)
        if stripped != text:
            page.write_text(stripped, encoding="utf-8")
            changed += 1
    return changed


def main() -> None:
    site = ROOT / os.environ.get("QUARTO_PROJECT_OUTPUT_DIR", "_site")
    strip_polyfill(site)
    write_notebooks(site)


if __name__ == "__main__":
    main()
