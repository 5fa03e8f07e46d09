"""Time the site's render: cold, with nothing changed, and after one post is edited.

    . .venv/bin/activate && python scripts/bench_render.py

Renders a copy of the committed files (the working tree is left alone) with the
``quarto`` on PATH and this Python's kernel, the way ``./scripts/render.sh`` does
(``scripts/render_site.py``, without the pip step), and prints the wall-clock times,
how many posts executed each time, and the targets they are held to. For comparison
it also times a plain ``quarto render`` with nothing changed, which renders every
page again. Beside each wall-clock time goes the processor time the render used (its
processes, added up): on a machine others are using too, the wall-clock times
stretch with their load, the processor times much less. A timing is not a test: it
depends on the machine, so this is run by hand, not by pytest.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from render_site import EXECUTION

ROOT = Path(__file__).resolve().parent.parent
COLD_TARGET_S = 110
WARM_TARGET_S = 15
EDITED_TARGET_S = 15
EDITED_POST = "posts/01-log-rules/index.qmd"


def copy_committed_files(destination: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)


def processor_seconds() -> float:
    """Processor time (user and system) of the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], project: Path) -> tuple[float, float, int]:
    """Seconds ``command`` took in ``project``, the processor seconds it used, and
    how many posts it executed."""
    env = dict(os.environ, QUARTO_PYTHON=sys.executable)
    started, processor = time.perf_counter(), processor_seconds()
    result = subprocess.run(
        command, cwd=project, capture_output=True, text=True, env=env
    )
    elapsed = time.perf_counter() - started
    used = processor_seconds() - processor
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    executions = len(EXECUTION.findall(result.stdout + result.stderr))
    return elapsed, used, executions


def main() -> None:
    if shutil.which("quarto") is None:
        sys.exit("quarto is not on PATH (https://quarto.org/docs/get-started/)")
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder) / "site"
        copy_committed_files(project)
        # A checkout, as a reader's clone is: render_site.py asks git for the inputs.
        subprocess.run(["git", "init", "-q"], cwd=project, check=True)
        render_site = [sys.executable, "scripts/render_site.py"]
        rows = [("cold render", *timed(render_site, project))]
        rows.append(("nothing changed", *timed(render_site, project)))
        rows.append(("  plain quarto render", *timed(["quarto", "render"], project)))
        with (project / EDITED_POST).open("a", encoding="utf-8") as post:
            post.write("\nOne more sentence.\n")
        rows.append(("one post edited", *timed(render_site, project)))
    for name, seconds, used, executions in rows:
        print(
            f"{name + ':':24} {seconds:6.1f} s ({used:5.1f} s of processor time), "
            f"{executions} posts executed"
        )
    print(f"targets: cold at most {COLD_TARGET_S} s, each post executed once;")
    print(f"         nothing changed at most {WARM_TARGET_S} s, no post executed;")
    print(f"         one post edited at most {EDITED_TARGET_S} s, that post executed")
    # What else ran: on an idle machine the load stays below the processors' count.
    print(
        f"{os.cpu_count()} processors; load average over the last 5 minutes: "
        f"{os.getloadavg()[1]:.1f}"
    )


if __name__ == "__main__":
    main()
