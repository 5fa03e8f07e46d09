"""Time the site's render: cold, then again with nothing changed.

    . .venv/bin/activate && python scripts/bench_render.py

Renders a copy of the committed files (the working tree is left alone) with the
``quarto`` on PATH and this Python's kernel, and prints the two wall-clock times,
how many posts executed each time, and the targets they are held to. A timing is
not a test: it depends on the machine, so this is run by hand, not by pytest.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLD_TARGET_S = 150
WARM_TARGET_S = 15


def copy_committed_files(destination: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)


def render(project: Path) -> tuple[float, int]:
    """Seconds taken by ``quarto render``, and how many documents it executed."""
    env = dict(os.environ, QUARTO_PYTHON=sys.executable)
    started = time.perf_counter()
    result = subprocess.run(
        ["quarto", "render"], cwd=project, capture_output=True, text=True, env=env
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"quarto render failed:\n{result.stderr[-3000:]}")
    executions = len(re.findall(r"^Executing '", result.stdout + result.stderr, re.M))
    return elapsed, executions


def main() -> None:
    if shutil.which("quarto") is None:
        sys.exit("quarto is not on PATH (https://quarto.org/docs/get-started/)")
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder) / "site"
        copy_committed_files(project)
        cold, cold_runs = render(project)
        warm, warm_runs = render(project)
    print(f"cold render:      {cold:6.1f} s, {cold_runs} posts executed")
    print(f"  target: at most {COLD_TARGET_S} s, each post executed once")
    print(f"nothing changed:  {warm:6.1f} s, {warm_runs} posts executed")
    print(f"  target: at most {WARM_TARGET_S} s, no post executed (freeze)")


if __name__ == "__main__":
    main()
