"""Runs every docstring example in the package, so the examples in the docs stay true."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from types import ModuleType

import pytest

# The app modules build their Faust app and settings at import time; their examples live elsewhere.
NOT_IMPORTED = {"shopstream.streams.app", "shopstream.cli.__main__", "shopstream.bench.faust_noop"}
# Mapped from separate folders (pyproject.toml), so each package is walked on its own.
PACKAGES = ("shopstream.cli", "shopstream.config", "shopstream.contracts", "shopstream.client", "shopstream.models",
            "shopstream.models.evaluation", "shopstream.streams", "shopstream.producers", "shopstream.bench")


def _modules() -> list[str]:
    names = set(PACKAGES)
    for package in PACKAGES:
        path = importlib.import_module(package).__path__
        names.update(info.name for info in pkgutil.iter_modules(path, f"{package}."))
    return sorted(names - NOT_IMPORTED)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name: str) -> None:
    module: ModuleType = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
