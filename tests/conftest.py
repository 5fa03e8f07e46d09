"""Stop with the command to run, not a traceback, when test dependencies are missing."""

import importlib.util

import pytest

_NEEDED = ["hypothesis", "jupytext", "nbclient", "nbformat", "ipykernel", "yaml", "torch", "backprop"]


def pytest_configure(config):
    missing = [name for name in _NEEDED if importlib.util.find_spec(name) is None]
    if missing:
        pytest.exit(
            "missing test dependencies: " + ", ".join(missing) + "\n"
            "Run the README's test command:  ./scripts/test.sh\n"
            "(or, in an environment of your own:  pip install -e '.[test]')",
            returncode=4,
        )
