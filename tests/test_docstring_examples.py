"""The Examples in the library's docstrings run and print what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import matplotlib
import pytest

import backprop

# Every module, a package's modules included (backprop.exercises.grader): doctest
# runs the examples of what a module defines, not of what it imports.
MODULES = sorted(
    info.name.removeprefix("backprop.")
    for info in pkgutil.walk_packages(backprop.__path__, "backprop.")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    matplotlib.use("Agg")  # plots' examples draw figures; no window
    mod = importlib.import_module(f"backprop.{name}")
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} example(s) in backprop.{name} fail"
