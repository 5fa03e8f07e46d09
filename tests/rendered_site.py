"""Rendering the site with the real Quarto CLI, once per test session, into a temporary
copy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from site_sources import ROOT

QUARTO = shutil.which("quarto")
NO_QUARTO = (
    "the quarto CLI is not on PATH; install Quarto (https://quarto.org) "
    "or the 'site' extra to run this test"
)
IGNORED = shutil.ignore_patterns(
    ".git",
    ".venv",
    "venv",
    "_site",
    "_freeze",
    ".quarto",
    ".pytest_cache",
    ".hypothesis",
    "__pycache__",
    "*.egg-info",
    # The record of the working tree's last render, not of this copy's.
    "render-inputs.json",
)


def render(project: Path, *args: str) -> subprocess.CompletedProcess:
    """Render ``project`` as ./scripts/render.sh does, with this Python's kernel."""
    env = dict(os.environ, QUARTO_PYTHON=sys.executable)
    return subprocess.run(
        [sys.executable, str(project / "scripts" / "render_site.py"), *args],
        cwd=project,
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )


def render_copy(destination: Path) -> tuple[Path, subprocess.CompletedProcess]:
    """Copy the project to ``destination`` and render it there; the working tree is left
    alone. The copy is a git checkout without commits, so that scripts/render_site.py
    can tell later renders what changed."""
    project = destination / "project"
    shutil.copytree(ROOT, project, ignore=IGNORED)
    if shutil.which("git"):
        subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    return project / "_site", render(project)
