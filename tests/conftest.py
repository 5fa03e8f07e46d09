"""Stop with the command to run, not a traceback, when test dependencies are missing."""

import importlib.util
import os
import sys
from pathlib import Path

import pytest

# scripts/ is not a package: the tests import its modules by name.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

_NEEDED = [
    "hypothesis",
    "jupytext",
    "nbclient",
    "nbformat",
    "ipykernel",
    "yaml",
    "torch",
    "backprop",
    "quartodoc",
]


def pytest_configure(config):
    missing = [name for name in _NEEDED if importlib.util.find_spec(name) is None]
    if missing:
        pytest.exit(
            "missing test dependencies: " + ", ".join(missing) + "\n"
            "Run the README's test command:  ./scripts/test.sh\n"
            "(or, in an environment of your own:  pip install -e '.[test]')",
            returncode=4,
        )


@pytest.fixture(scope="session")
def rendered_site(tmp_path_factory):
    """``(site_dir, completed_process)`` of one ``quarto render`` of a copy of the
    project."""
    from rendered_site import QUARTO, render_copy

    if QUARTO is None:
        pytest.skip("the quarto CLI is not on PATH")
    return render_copy(tmp_path_factory.mktemp("site"))


def _register_hypothesis_profiles():
    from hypothesis import settings

    # CI draws the same examples every run, so a red CI is reproducible; locally each
    # run explores new ones.
    settings.register_profile("ci", derandomize=True, print_blob=True)
    if os.environ.get("CI"):
        settings.load_profile("ci")


if importlib.util.find_spec("hypothesis") is not None:
    _register_hypothesis_profiles()
