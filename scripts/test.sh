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
# One worker per processor (pytest-xdist); tests that share an expensive set-up (a post's
# execution, the rendered site, the API reference) go to one worker (tests/conftest.py).
# PYTEST_WORKERS=0 runs them one after the other, in this process.
python -m pytest -n "${PYTEST_WORKERS:-auto}" --dist loadgroup "$@"
