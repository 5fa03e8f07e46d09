"""The Examples in the library's docstrings run and print what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import matplotlib
import pytest

import backprop

MODULES = sorted(info.name for info in pkgutil.iter_modules(backprop.__path__))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    matplotlib.use("Agg")  # plots' examples draw figures; no window
    mod = importlib.import_module(f"backprop.{name}")
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} example(s) in backprop.{name} fail"
