"""Quarto's pre-render step: check that the Python side of the site is set up.

Quarto runs the posts' cells in the ``python3`` Jupyter kernel of the Python it
finds (``QUARTO_PYTHON``, else ``python3`` on PATH). Without the library and the
kernel there, the render would fail on the first cell with a long traceback; this
says instead which command to run.
"""

import importlib.util
import sys

SETUP = (
    "./scripts/render.sh   "
    "(or, in an environment of your own: pip install -e '.[notebook]')"
)

problems = []
if sys.version_info < (3, 11):  # noqa: UP036 (it checks the Python Quarto found)
    problems.append(
        f"Python 3.11 or newer is needed; Quarto found Python {sys.version.split()[0]} "
        f"at {sys.executable}"
    )
missing = [
    name
    for name in ("backprop", "torch", "ipykernel", "jupyter_client", "yaml")
    if importlib.util.find_spec(name) is None
]
if missing:
    problems.append(f"the Python at {sys.executable} lacks: {', '.join(missing)}")

if problems:
    print("The site cannot be rendered yet:", *problems, sep="\n  ", file=sys.stderr)
    print(f"Set it up with:\n  {SETUP}", file=sys.stderr)
    sys.exit(1)
