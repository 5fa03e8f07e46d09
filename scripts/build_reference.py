"""Quarto's pre-render step: write the API reference (reference/) from the docstrings.

Runs ``quartodoc build`` with the ``quartodoc:`` section of ``_quarto.yml``, in the
Python Quarto uses (``QUARTO_PYTHON``), so the reference documents the library that
the posts import. Without quartodoc it says which command to run.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETUP = "./scripts/render.sh   (or: pip install -e '.[notebook]')"

if importlib.util.find_spec("quartodoc") is None:
    print(
        f"The API reference cannot be built: the Python at {sys.executable} "
        f"lacks quartodoc.\nSet it up with:\n  {SETUP}",
        file=sys.stderr,
    )
    sys.exit(1)

config = str(ROOT / "_quarto.yml")
build = [sys.executable, "-m", "quartodoc", "build", "--config", config]
sys.exit(subprocess.run(build, cwd=ROOT, check=False).returncode)
