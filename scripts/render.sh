#!/usr/bin/env bash
# Set up .venv with what the site needs and render the site into _site/.
# Quarto comes from PyPI (the 'site' extra) only when no `quarto` is on PATH.
# With no arguments it renders only what changed since the last render
# (scripts/render_site.py); --full renders every page; other arguments go to
# `quarto render` as they are (e.g. a single post's path).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh

if command -v quarto >/dev/null 2>&1; then
  pip_install_project ".[notebook]"
elif ! pip_install_project ".[site]"; then
  echo "Quarto could not be installed from PyPI (its package downloads Quarto while it builds)." >&2
  echo "Install Quarto from https://quarto.org/docs/get-started/ and run this script again." >&2
  exit 1
fi
# Quarto runs the cells with this Python's kernel.
export QUARTO_PYTHON="$PWD/.venv/bin/python"
python scripts/render_site.py "$@"
echo "The site is in _site/ (open _site/index.html, or run: quarto preview)"
