"""Sizes and times of listed files, read where the code looked into before did not reach: a ``%%memo`` cell's own
code (and the helpers, functions and classes of the notebook it uses), and the code of an argument's class, of a
function passed as an argument, or of a user object an argument holds.

Each test picks the newest (or biggest) file of a folder, then makes another file the newest without adding or
removing one: a stale name served fails it.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from notebook_memo import _cells, memo
from tests.conftest import Counter, Shell, run_kernel


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """A folder of two checkpoints, b.ckpt the newer and the bigger."""
    folder = tmp_path / "runs"
    folder.mkdir()
    for i, name in enumerate(("a.ckpt", "b.ckpt")):
        (folder / name).write_text(name * (i + 1))
        os.utime(folder / name, (1000 + i, 1000 + i))
    return folder


def make_a_newest(runs: Path) -> None:
    """Make a.ckpt the newest and the biggest; the folder keeps its names."""
    (runs / "a.ckpt").write_text("a" * 40)
    os.utime(runs / "a.ckpt", (5000, 5000))


# -- a %%memo cell ---------------------------------------------------------------------------------------------

NEWEST_CELL = """%%memo
import os
newest = max(os.listdir(folder), key=lambda n: os.path.getmtime(os.path.join(folder, n)))
"""

# Helpers defined in an earlier, plain cell, which the %%memo cell calls.
HELPERS = """
import os
def latest(folder):
    return max(os.listdir(folder), key=lambda n: os.stat(os.path.join(folder, n)).st_size)
class Runs:
    def __init__(self, folder):
        self.folder = folder
    def latest(self):
        return max(os.listdir(self.folder), key=lambda n: os.path.getmtime(os.path.join(self.folder, n)))
held = Runs(folder)
"""

CELLS = {
    "own code": NEWEST_CELL,
    "helper function": "%%memo\nnewest = latest(folder)\n",
    "class of the notebook": "%%memo\nnewest = Runs(folder).latest()\n",
    "object of the notebook": "%%memo\nnewest = held.latest()\n",
}


@pytest.mark.parametrize("reader", list(CELLS))
def test_a_cell_reading_times_of_the_files_it_lists_runs_again_when_another_is_newest(
        shell: Shell, runs: Path, reader: str) -> None:
    shell.run("%load_ext notebook_memo")
    shell.run(f"folder = {str(runs)!r}")
    shell.run(HELPERS)
    shell.run(CELLS[reader])
    shell.run(CELLS[reader])
    cell = _cells.cells()[-1]
    assert shell["newest"] == "b.ckpt" and (cell.hits, cell.misses) == (1, 1)
    make_a_newest(runs)
    shell.run(CELLS[reader])
    assert shell["newest"] == "a.ckpt" and cell.misses == 2


def test_a_cell_importing_the_module_whose_class_reads_times_runs_again_when_another_is_newest(
        shell: Shell, runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        request: pytest.FixtureRequest) -> None:
    name = "ckutils_" + re.sub(r"\W", "_", request.node.name)
    (tmp_path / f"{name}.py").write_text(HELPERS.replace("held = Runs(folder)", ""))
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    request.addfinalizer(lambda: sys.modules.pop(name, None))  # the cell imports it
    shell.run("%load_ext notebook_memo")
    shell.run(f"folder = {str(runs)!r}")
    cell_text = f"%%memo\nimport {name}\nnewest = {name}.Runs(folder).latest()\n"
    shell.run(cell_text)
    shell.run(cell_text)
    cell = _cells.cells()[-1]
    assert shell["newest"] == "b.ckpt" and (cell.hits, cell.misses) == (1, 1)
    make_a_newest(runs)
    shell.run(cell_text)
    assert shell["newest"] == "a.ckpt" and cell.misses == 2


def test_a_cell_reading_only_names_still_hits_after_a_file_is_touched(shell: Shell, runs: Path) -> None:
    shell.run("%load_ext notebook_memo")
    shell.run(f"folder = {str(runs)!r}")
    cell_text = "%%memo\nimport os\nnames = sorted(os.listdir(folder))\n"
    shell.run(cell_text)
    make_a_newest(runs)
    shell.run(cell_text)
    cell = _cells.cells()[-1]
    assert shell["names"] == ["a.ckpt", "b.ckpt"] and (cell.hits, cell.misses) == (1, 1)


def test_a_cell_reading_times_runs_again_after_a_restart_when_another_is_newest(cache_dir: Path, runs: Path) -> None:
    cells = ["%load_ext notebook_memo", f"folder = {str(runs)!r}", NEWEST_CELL, "OUT['newest'] = newest"]
    assert run_kernel(cells, cache_dir, seed=1)["newest"] == "b.ckpt"
    make_a_newest(runs)
    assert run_kernel(cells, cache_dir, seed=2)["newest"] == "a.ckpt"


# -- a function's argument -------------------------------------------------------------------------------------


class Runs:
    """A folder of checkpoints, keyed by its path; its method reads their times."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def __memo_key__(self) -> str:
        return self.folder

    def latest(self) -> str:
        return max(os.listdir(self.folder), key=lambda n: os.path.getmtime(os.path.join(self.folder, n)))


class Experiment:
    """Holds its runs in an attribute; its own code names no function that reads times."""

    def __init__(self, folder: str) -> None:
        self.runs = Runs(folder)

    def __memo_key__(self) -> str:
        return self.runs.folder

    def newest(self) -> str:
        return self.runs.latest()


def biggest(folder: str) -> str:
    return max(os.listdir(folder), key=lambda n: os.stat(os.path.join(folder, n)).st_size)


@pytest.mark.parametrize("by_keyword", [False, True])
def test_times_read_by_the_method_of_an_arguments_class_are_checked(runs: Path, counter: Counter,
                                                                    by_keyword: bool) -> None:
    @memo
    def newest(found: Any) -> str:
        counter()
        return str(found.latest())

    def call() -> str:
        return newest(found=Runs(str(runs))) if by_keyword else newest(Runs(str(runs)))

    assert call() == "b.ckpt" and call() == "b.ckpt" and counter.n == 1
    make_a_newest(runs)
    assert call() == "a.ckpt" and counter.n == 2


@pytest.mark.parametrize("given", ["in a list", "in a dict", "held by an argument", "a function", "a bound method"])
def test_times_read_by_code_an_argument_holds_or_is_are_checked(runs: Path, counter: Counter, given: str) -> None:
    @memo
    def newest(found: Any, folder: str) -> str:
        counter()
        if given == "in a list":
            return str(found[0].latest())
        if given == "in a dict":
            return str(found["runs"].latest())
        if given == "held by an argument":
            return str(found.runs.latest())
        if given == "a bound method":
            return str(found())
        return str(found(folder))

    def argument() -> Any:
        return {"in a list": [Runs(str(runs))], "in a dict": {"runs": Runs(str(runs))},
                "held by an argument": Experiment(str(runs)), "a function": biggest,
                "a bound method": Experiment(str(runs)).newest}[given]

    assert newest(argument(), str(runs)) == "b.ckpt" and newest(argument(), str(runs)) == "b.ckpt" and counter.n == 1
    make_a_newest(runs)
    assert newest(argument(), str(runs)) == "a.ckpt" and counter.n == 2


def test_times_read_by_a_method_of_the_memoized_methods_own_class_are_checked(runs: Path, counter: Counter) -> None:
    class Folder:
        def __init__(self, folder: str) -> None:
            self.folder = folder

        def __memo_key__(self) -> str:
            return self.folder

        def latest(self) -> str:
            return max(os.listdir(self.folder), key=lambda n: os.path.getmtime(os.path.join(self.folder, n)))

        @memo
        def newest(self) -> str:
            counter()
            return self.latest()

    assert Folder(str(runs)).newest() == "b.ckpt" and Folder(str(runs)).newest() == "b.ckpt" and counter.n == 1
    make_a_newest(runs)
    assert Folder(str(runs)).newest() == "a.ckpt" and counter.n == 2


def test_an_argument_whose_class_reads_only_names_still_hits_after_a_file_is_touched(
        runs: Path, counter: Counter) -> None:
    class Names:
        def __init__(self, folder: str) -> None:
            self.folder = folder

        def __memo_key__(self) -> str:
            return self.folder

        def listed(self) -> list[str]:
            return sorted(os.listdir(self.folder))

    @memo
    def names(found: Any) -> list[str]:
        counter()
        return list(found.listed())

    assert names(Names(str(runs))) == ["a.ckpt", "b.ckpt"]
    make_a_newest(runs)
    assert names(Names(str(runs))) == ["a.ckpt", "b.ckpt"] and counter.n == 1


def test_times_read_by_the_method_of_a_batch_items_class_are_checked(runs: Path, counter: Counter) -> None:
    @memo.batch("found")
    def newest(found: list[Any]) -> list[str]:
        counter()
        return [str(item.latest()) for item in found]

    assert newest([Runs(str(runs))]) == ["b.ckpt"] and newest([Runs(str(runs))]) == ["b.ckpt"] and counter.n == 1
    make_a_newest(runs)
    assert newest([Runs(str(runs))]) == ["a.ckpt"] and counter.n == 2


def test_times_read_by_the_method_of_an_async_functions_argument_are_checked(runs: Path, counter: Counter) -> None:
    @memo
    async def newest(found: Any) -> str:
        counter()
        return str(found.latest())

    assert asyncio.run(newest(Runs(str(runs)))) == "b.ckpt" and asyncio.run(newest(Runs(str(runs)))) == "b.ckpt"
    make_a_newest(runs)
    assert asyncio.run(newest(Runs(str(runs)))) == "a.ckpt" and counter.n == 2
