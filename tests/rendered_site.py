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
)


def render_copy(destination: Path) -> tuple[Path, subprocess.CompletedProcess]:
    """Copy the project to ``destination`` and render it there; the working tree is left
    alone."""
    project = destination / "project"
    shutil.copytree(ROOT, project, ignore=IGNORED)
    env = dict(os.environ, QUARTO_PYTHON=sys.executable)
    result = subprocess.run(
        [QUARTO, "render", str(project)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    return project / "_site", result
