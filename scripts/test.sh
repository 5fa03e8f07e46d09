#!/usr/bin/env bash
# Set up .venv with what the tests need and run them. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh

if command -v quarto >/dev/null 2>&1; then
  # With Quarto the site is rendered and checked too, accessibility included.
  pip_install -e ".[test,a11y]"
else
  pip_install -e ".[test]"
fi
python -m pytest "$@"
