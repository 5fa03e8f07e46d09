#!/usr/bin/env bash
# Set up .venv with what the tests need, check lint, formatting and types, and run
# the tests. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh

if command -v quarto >/dev/null 2>&1; then
  # With Quarto the site is rendered and checked too, accessibility included.
  pip_install_project ".[test,a11y]"
else
  pip_install_project ".[test]"
fi
# The `test` extra installs ruff and mypy; their settings are in pyproject.toml.
echo "ruff check, ruff format --check, mypy:"
python -m ruff check --quiet .
python -m ruff format --check --quiet .
python -m mypy
python -m pytest "$@"
