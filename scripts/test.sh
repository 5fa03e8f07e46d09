#!/usr/bin/env bash
# Set up .venv with what the tests need and run them. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh

pip_install -e ".[test]"
python -m pytest "$@"
