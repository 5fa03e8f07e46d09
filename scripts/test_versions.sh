#!/usr/bin/env bash
# Run the library's tests and the posts with the oldest versions pyproject.toml allows
# and with the newest, on the Pythons readers use. Not part of CI: each environment is
# a few GB (older torch, and any torch outside Python 3.11 here, comes as a CUDA build).
#
#   ./scripts/test_versions.sh                  # the three sets below, one after another
#   ./scripts/test_versions.sh oldest           # one set; extra arguments go to pytest:
#   ./scripts/test_versions.sh 3.13 tests/test_posts.py -k 12-attention
#
# The sets:
#   oldest  Python 3.11, every floor of `dependencies` and of the `test` extra pinned
#           (`numpy>=1.26` becomes `numpy==1.26.*`, `pytest>=8` becomes `pytest==8.0.*`);
#           pyparsing<3.3 (see floor_pins); whatever else is needed, pip resolves.
#   3.12    Python 3.12 (Colab's), the newest releases pyproject.toml allows.
#   3.13    Python 3.13, the same.
#
# Each set has its own virtual environment in $VERSIONS_DIR (by default
# ~/.cache/backprop-from-scratch/versions), outside the project, kept between runs.
# The Pythons are found on PATH (python3.11, ...) or under pyenv; set PYTHON3_11,
# PYTHON3_12 or PYTHON3_13 to a path to choose one.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSIONS_DIR="${VERSIONS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/backprop-from-scratch/versions}"

# find_python 3.12: prints a Python 3.12 that runs, or fails saying how to give one.
find_python() {
  local version=$1 variable="PYTHON${1//./_}" candidate
  local pyenv_root
  pyenv_root="$(pyenv root 2>/dev/null || true)"
  for candidate in ${!variable:-} "python$version" "$pyenv_root"/versions/"$version".*/bin/python"$version"; do
    if "$candidate" -c "import sys; sys.exit('%d.%d' % sys.version_info[:2] != '$version')" \
      >/dev/null 2>&1; then
      printf '%s\n' "$candidate"
      return 0
    fi
  done
  echo "No Python $version found: install it, or set $variable=/path/to/python$version." >&2
  return 1
}

# floor_pins: each `name>=X.Y` of dependencies and of the test extra as `name==X.Y.*`
# (the newest patch release of the floor), `name>=X.Y.Z` as `name==X.Y.Z`.
floor_pins() {
  "$1" - <<'EOF'
import re
import tomllib

with open("pyproject.toml", "rb") as file:
    project = tomllib.load(file)["project"]
for spec in project["dependencies"] + project["optional-dependencies"]["test"]:
    match = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9]+(?:\.[0-9]+)*)\s*(,.*)?", spec)
    if match:
        name, floor = match.group(1), match.group(2).split(".")
        print(f"{name}=={'.'.join(floor)}" if len(floor) > 2 else
              f"{name}=={'.'.join((floor + ['0'])[:2])}.*")
EOF
  # Not floors of ours, but what the oldest releases need to pass the tests, which turn
  # every warning into an error: matplotlib 3.8 calls pyparsing's camelCase names, which
  # pyparsing 3.3 deprecates with a warning (hidden in a notebook).
  echo "pyparsing<3.3"
}

run_set() {
  local name=$1 python env
  shift
  case "$name" in
    oldest) python="$(find_python 3.11)" ;;
    3.12 | 3.13) python="$(find_python "$name")" ;;
    *)
      echo "Unknown set $name: oldest, 3.12 or 3.13." >&2
      return 2
      ;;
  esac
  env="$VERSIONS_DIR/$name"
  echo "== $name: $env"
  local pip=("$env/bin/python" -m pip install --quiet --disable-pip-version-check)
  if [ ! -x "$env/bin/python" ]; then
    "$python" -m venv "$env"
    # The setuptools pyproject.toml builds with: tests/test_notebooks.py builds the
    # library's wheel with the environment's own (Python 3.11's venv has an older one).
    "${pip[@]}" --upgrade "setuptools>=68"
  fi
  if [ "$name" = oldest ]; then
    floor_pins "$env/bin/python" >"$env/floors.txt"
    echo "pinned: $(tr '\n' ' ' <"$env/floors.txt")"
    "${pip[@]}" -c "$env/floors.txt" -e ".[test]"
  else
    "${pip[@]}" --upgrade --upgrade-strategy eager -e ".[test]"
  fi
  "$env/bin/python" - <<'EOF'
import sys
from importlib.metadata import version

names = ["torch", "numpy", "matplotlib", "scikit-learn", "scipy", "pytest", "hypothesis",
         "jupytext", "nbclient", "ipykernel", "quartodoc", "griffe"]
print("Python", sys.version.split()[0] + ",", ", ".join(f"{n} {version(n)}" for n in names))
EOF
  # -p no:cacheprovider: these runs leave no .pytest_cache behind.
  "$env/bin/python" -m pytest -m "not quarto" -x -q -p no:cacheprovider "$@"
}

if [ $# -gt 0 ] && [[ "$1" =~ ^(oldest|3\.12|3\.13)$ ]]; then
  set_name=$1
  shift
  run_set "$set_name" "$@"
else
  for set_name in oldest 3.12 3.13; do
    run_set "$set_name" "$@"
  done
fi
