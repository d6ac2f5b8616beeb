"""Preconditions, third round: a data file of the user's own package read through its loader
(``pkgutil.get_data``, ``loader.get_data``); sizes and times read by a helper reached through a module's
attribute or a class's method; outputs that are no regular file written (links, folders).

Each test fails with a stale result served or a hit that leaves the files as they were not left by the run.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import py_compile
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from notebook_memo import memo
from tests.conftest import Counter

# -- a package's data read through its loader -----------------------------------------------------------------


@pytest.fixture
def user_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[str]:
    """A package of the user's, importable by a name of its own, holding ``config.json``."""
    name = "userpkg_" + re.sub(r"\W", "_", request.node.name)
    package = tmp_path / "src" / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "config.json").write_text(json.dumps({"lr": 1}))
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    importlib.invalidate_caches()
    importlib.import_module(name)
    yield name
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]


def _by_pkgutil(name: str) -> Any:
    return pkgutil.get_data(name, "config.json")


def _by_loader(name: str) -> Any:
    module = sys.modules[name]
    return module.__spec__.loader.get_data(os.path.join(os.path.dirname(module.__file__), "config.json"))


# The loader's module is found by a name given at run time, which the key cannot follow: said, and beside the point.
RUN_TIME_IMPORT = "ignore:.*imports a module by a name computed at run time:notebook_memo.MemoWarning"


@pytest.mark.filterwarnings(RUN_TIME_IMPORT)
@pytest.mark.parametrize("read", [_by_pkgutil, _by_loader], ids=["pkgutil.get_data", "loader.get_data"])
def test_a_package_data_file_read_through_its_loader_is_a_dependency(
        read: Any, user_package: str, tmp_path: Path, counter: Counter) -> None:
    config = tmp_path / "src" / user_package / "config.json"

    @memo
    def settings(name: str) -> Any:
        counter()
        return json.loads(read(name))

    assert settings(user_package) == {"lr": 1} and settings(user_package) == {"lr": 1} and counter.n == 1
    config.write_text(json.dumps({"lr": 22}))
    assert settings(user_package) == {"lr": 22} and counter.n == 2


@pytest.mark.filterwarnings(RUN_TIME_IMPORT)
def test_importing_a_module_inside_the_body_is_not_a_data_read(
        user_package: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counter: Counter) -> None:
    """The import system reads a module's source, or its bytecode from __pycache__, through the same loader:
    code, not data (its first import inside the body makes no dependency on the module's files)."""
    folder = tmp_path / "src" / user_package
    (folder / "compiled.py").write_text("VALUE = 3\n")
    (folder / "fresh.py").write_text("VALUE = 4\n")
    py_compile.compile(str(folder / "compiled.py"), doraise=True)
    monkeypatch.setattr(sys, "dont_write_bytecode", False)  # the import writes fresh's bytecode as it runs

    @memo
    def value(name: str) -> int:
        counter()
        return int(importlib.import_module(name + ".compiled").VALUE + importlib.import_module(name + ".fresh").VALUE)

    assert value(user_package) == 7 and value(user_package) == 7 and counter.n == 1
