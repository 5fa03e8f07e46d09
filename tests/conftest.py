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


# scripts/test.sh runs the tests side by side (pytest-xdist, `--dist loadgroup`). Each
# worker builds its own session and module fixtures, so the tests that share an
# expensive one go to the same worker, which builds it once: the rendered site, the API
# reference, and a post's execution (its two slow tests read one run of the post).
_SHARED_SET_UP = {"rendered_site": "rendered-site", "built_reference": "reference"}


def pytest_itemcollected(item):
    # Before xdist reads the groups (in pytest_collection_modifyitems).
    group = next(
        (g for name, g in _SHARED_SET_UP.items() if name in item.fixturenames), None
    )
    post = getattr(getattr(item, "callspec", None), "params", {}).get("post")
    if group is None and item.module.__name__ == "test_posts" and post is not None:
        group = f"post-{Path(post).parent.name}"
    if group is not None:
        item.add_marker(pytest.mark.xdist_group(group))


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
