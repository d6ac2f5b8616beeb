"""Preconditions, third round: a data file of the user's own package read through its loader
(``pkgutil.get_data``, ``loader.get_data``); sizes and times read by a helper reached through a module's
attribute or a class's method; outputs that are no regular file written (links, folders).

Each test fails with a stale result served or a hit that leaves the files as they were not left by the run.
"""

from __future__ import annotations

import functools
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


# -- sizes and times read by a helper reached through a module or a class ---------------------------------------

CKUTILS = '''
import os


def latest(folder):
    return max(os.listdir(folder), key=lambda n: os.path.getmtime(os.path.join(folder, n)))
'''


class Runs:
    """A folder of checkpoints; its method reads their times."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def latest(self) -> str:
        return max(os.listdir(self.folder), key=lambda n: os.path.getmtime(os.path.join(self.folder, n)))


class SizedRuns(Runs):
    """Inherits ``latest``; its own method calls it."""

    def newest_name(self) -> str:
        return self.latest().upper()


class StaticRuns:
    """The same read in a static method."""

    @staticmethod
    def biggest(folder: str) -> str:
        return max(os.listdir(folder), key=lambda n: os.stat(os.path.join(folder, n)).st_size)


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """A folder of two checkpoints, b.ckpt the newer and the bigger."""
    folder = tmp_path / "runs"
    folder.mkdir()
    for i, name in enumerate(("a.ckpt", "b.ckpt")):
        (folder / name).write_text(name * (i + 1))
        os.utime(folder / name, (1000 + i, 1000 + i))
    return folder


@pytest.fixture
def ckutils(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A module of the user's with a helper that reads modification times."""
    name = "ckutils_" + re.sub(r"\W", "_", request.node.name)
    (tmp_path / f"{name}.py").write_text(CKUTILS)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    yield importlib.import_module(name)
    del sys.modules[name]


def test_times_read_by_a_helper_reached_through_a_user_module_are_checked(ckutils: Any, runs: Path,
                                                                          counter: Counter) -> None:
    @memo
    def newest(folder: str) -> str:
        counter()
        return str(ckutils.latest(folder))

    assert newest(str(runs)) == "b.ckpt" and newest(str(runs)) == "b.ckpt" and counter.n == 1
    os.utime(runs / "a.ckpt", (5000, 5000))
    assert newest(str(runs)) == "a.ckpt" and counter.n == 2


@pytest.mark.parametrize("use", ["method", "inherited method", "static method", "object held", "partial"])
def test_times_read_by_a_user_class_method_are_checked(use: str, runs: Path, counter: Counter) -> None:
    held = Runs(str(runs))
    biggest = functools.partial(StaticRuns.biggest, str(runs))

    @memo
    def newest(folder: str) -> str:
        counter()
        if use == "method":
            return Runs(folder).latest()
        if use == "inherited method":
            return SizedRuns(folder).newest_name().lower()
        if use == "object held":
            return held.latest()
        if use == "partial":
            return biggest()
        return StaticRuns.biggest(folder)

    assert newest(str(runs)) == "b.ckpt" and newest(str(runs)) == "b.ckpt" and counter.n == 1
    (runs / "a.ckpt").write_text("a" * 40)
    os.utime(runs / "a.ckpt", (5000, 5000))
    assert newest(str(runs)) == "a.ckpt" and counter.n == 2
