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

# pip_install_project SPEC: `pip install -e SPEC` (e.g. ".[test]"), skipped when this
# .venv already had SPEC installed from the same pyproject.toml; pip takes seconds to
# find that nothing is to be done. Remove .venv/.installed-* to install again.
pip_install_project() {
  local stamp want
  stamp=".venv/.installed-$(printf '%s' "$1" | tr -c 'a-zA-Z0-9' '_')"
  want="$(python -c 'import hashlib; print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest())')"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  pip_install -e "$1" || return
  echo "$want" >"$stamp"
}
