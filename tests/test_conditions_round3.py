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
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from notebook_memo import memo
from tests.conftest import RUNS_SETUP, Counter, Shell

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


# -- outputs that are no regular file written: links and folders ---------------------------------------------

def _symlink(out: Path) -> str:
    os.symlink("model.bin", out / "latest")
    return "latest"


def _symlink_to(out: Path) -> str:
    (out / "latest").symlink_to("model.bin")
    return "latest"


def _link(out: Path) -> str:
    os.link(out / "model.bin", out / "hard.bin")
    return "hard.bin"


def _hardlink_to(out: Path) -> str:
    (out / "hard.bin").hardlink_to(out / "model.bin")
    return "hard.bin"


def _makedirs(out: Path) -> str:
    os.makedirs(out / "made" / "sub")
    return "made"


def _mkdir(out: Path) -> str:
    os.mkdir(out / "made")
    return "made"


def _path_mkdir(out: Path) -> str:
    (out / "made" / "sub").mkdir(parents=True)
    return "made"


def _replace(out: Path) -> str:
    (out / "part.tmp").write_text("weights")
    os.replace(out / "part.tmp", out / "final.bin")
    return "final.bin"


MAKERS = {"os.symlink": _symlink, "Path.symlink_to": _symlink_to, "os.link": _link, "Path.hardlink_to": _hardlink_to,
          "os.makedirs": _makedirs, "os.mkdir": _mkdir, "Path.mkdir(parents=True)": _path_mkdir,
          "os.replace into place": _replace}


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


@pytest.mark.parametrize("maker", sorted(MAKERS))
def test_a_link_or_folder_the_run_made_and_that_is_gone_makes_it_run_again(maker: str, tmp_path: Path,
                                                                           counter: Counter) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.bin").write_text("weights")
    make = MAKERS[maker]

    @memo
    def publish(folder: str) -> str:
        counter()
        return make(Path(folder))

    made = out / publish(str(out))
    assert counter.n == 1 and os.path.lexists(made)
    _remove(made)
    assert publish(str(out)) == made.name and counter.n == 2 and os.path.lexists(made)
    assert publish(str(out)) == made.name and counter.n == 2  # as the run left it: served


def test_a_link_the_run_made_that_points_elsewhere_now_makes_it_run_again(tmp_path: Path, counter: Counter) -> None:
    out = tmp_path / "out"
    out.mkdir()
    for name in ("v1.bin", "v2.bin"):
        (out / name).write_text(name)

    @memo
    def publish(folder: str) -> str:
        counter()
        link = Path(folder) / "latest"
        if not os.path.lexists(link):
            link.symlink_to("v1.bin")
        return "ok"

    assert publish(str(out)) == "ok" and publish(str(out)) == "ok" and counter.n == 1
    (out / "latest").unlink()
    (out / "latest").symlink_to("v2.bin")
    assert publish(str(out)) == "ok" and counter.n == 2


def test_a_file_read_through_a_link_the_run_made_is_still_read(tmp_path: Path, counter: Counter) -> None:
    """The link is the output, not what it points to: a read through it is a read of the target."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.bin").write_text("one")

    @memo
    def through_link(folder: str) -> str:
        counter()
        link = Path(folder) / "latest"
        if not os.path.lexists(link):
            link.symlink_to(Path(folder) / "model.bin")  # by its absolute path
        return link.read_text()

    assert through_link(str(out)) == "one" and through_link(str(out)) == "one" and counter.n == 1
    (out / "model.bin").write_text("two")
    assert through_link(str(out)) == "two" and counter.n == 2


def test_a_folder_made_already_and_then_listed_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       counter: Counter) -> None:
    """``os.makedirs(exist_ok=True)`` of a folder that exists makes nothing: what the body lists there is its input."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("1")

    @memo
    def names() -> list[str]:
        counter()
        os.makedirs("data", exist_ok=True)
        return sorted(os.listdir("data"))

    assert names() == ["a.csv"] and names() == ["a.csv"] and counter.n == 1
    (tmp_path / "data" / "b.csv").write_text("2")
    assert names() == ["a.csv", "b.csv"] and counter.n == 2


def test_a_file_written_through_a_link_that_was_there_is_checked_as_a_file(tmp_path: Path, counter: Counter) -> None:
    """A link the run did not make is only the way to the file it wrote: that file is the output."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "v3.csv").write_text("old")
    (out / "latest.csv").symlink_to("v3.csv")

    @memo
    def export(folder: str) -> str:
        counter()
        (Path(folder) / "latest.csv").write_text("new")
        return "ok"

    assert export(str(out)) == "ok" and export(str(out)) == "ok" and counter.n == 1
    (out / "v3.csv").write_text("changed")
    assert export(str(out)) == "ok" and counter.n == 2 and (out / "v3.csv").read_text() == "new"


def test_a_cell_runs_again_when_the_link_and_folder_it_made_are_gone(shell: Shell, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.bin").write_text("weights")
    shell.run("%load_ext notebook_memo")
    shell.run(RUNS_SETUP)
    shell.run(f"OUT = {str(out)!r}")
    cell = """%%memo
    import os
    ran("publish")
    os.makedirs(os.path.join(OUT, "made", "sub"))
    os.symlink("model.bin", os.path.join(OUT, "latest"))
    done = True
    """
    shell.run(cell)
    shutil.rmtree(out / "made")
    (out / "latest").unlink()
    shell.run(cell)
    assert shell["RUNS"]["publish"] == 2
    assert (out / "made" / "sub").is_dir() and os.readlink(out / "latest") == "model.bin"
    shell.run(cell)
    assert shell["RUNS"]["publish"] == 2  # as the run left them: served
