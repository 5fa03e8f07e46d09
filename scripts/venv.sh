# Sourced by render.sh and test.sh: create (once) and activate .venv with Python >= 3.11.
PYTHON="${PYTHON:-python3}"
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "No $PYTHON on PATH: install Python 3.11 or newer (or set PYTHON=/path/to/python3.11)." >&2
  exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "Python 3.11 or newer is needed; $PYTHON is $("$PYTHON" --version 2>&1). Set PYTHON=/path/to/python3.11." >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate

pip_install() {
  python -m pip install --quiet --disable-pip-version-check "$@"
}
