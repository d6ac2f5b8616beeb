"""What the code a body reaches is followed into, and how a folder variant is found on a hit.

Sizes and times read by the methods of a user's callable object (a functor, a ``torch.nn.Module`` subclass) held
in a global, a closure, a notebook's namespace or an argument: each test picks the newest file of a folder, then
makes another file the newest without adding or removing one, so a stale name served fails it. And the entries
of a body reading a relative path, stored per working folder: a hit finds its folder's entry in one index read,
and never on knowledge gone stale.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from notebook_memo import _cells, memo
from notebook_memo.stores.local import Store
from tests.conftest import Counter, Shell, run_kernel, worker_env


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """A folder of two checkpoints, b.ckpt the newer."""
    folder = tmp_path / "runs"
    folder.mkdir()
    for i, name in enumerate(("a.ckpt", "b.ckpt")):
        (folder / name).write_text(name)
        os.utime(folder / name, (1000 + i, 1000 + i))
    return folder


def make_a_newest(runs: Path) -> None:
    """Make a.ckpt the newest; the folder keeps its names and sizes."""
    os.utime(runs / "a.ckpt", (5000, 5000))


# -- a user's callable object ----------------------------------------------------------------------------------


class Picker:
    """A functor: calling it picks the newest file of its folder by the files' times."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def __memo_key__(self) -> str:
        return self.folder

    def __call__(self) -> str:
        return self.latest()

    def latest(self) -> str:
        return max(os.listdir(self.folder), key=lambda n: os.path.getmtime(os.path.join(self.folder, n)))


class PickerModule(torch.nn.Module):
    """A torch module (callable through the library's ``Module.__call__``) whose method reads the files' times."""

    def __init__(self, folder: str) -> None:
        super().__init__()
        self.folder = folder

    def __memo_key__(self) -> str:
        return self.folder

    def forward(self) -> str:
        return self.latest()

    def latest(self) -> str:
        return max(os.listdir(self.folder), key=lambda n: os.path.getmtime(os.path.join(self.folder, n)))


class Lister:
    """A functor whose code lists names only: touching a file changes nothing it returns."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def __memo_key__(self) -> str:
        return self.folder

    def __call__(self) -> list[str]:
        return sorted(os.listdir(self.folder))


@pytest.mark.parametrize("made", [Picker, PickerModule])
@pytest.mark.parametrize("called", ["its method", "itself"])
def test_times_read_by_a_callable_object_the_body_holds_are_checked(runs: Path, counter: Counter, made: type,
                                                                    called: str) -> None:
    picker = made(str(runs))

    @memo
    def newest(tag: str) -> str:
        counter()
        return str(picker.latest() if called == "its method" else picker())

    assert newest("x") == "b.ckpt" and newest("x") == "b.ckpt" and counter.n == 1
    make_a_newest(runs)
    assert newest("x") == "a.ckpt" and counter.n == 2


def newest_in(folder: str) -> str:
    """A helper picking the newest file by the files' times."""
    return max(os.listdir(folder), key=lambda n: os.path.getmtime(os.path.join(folder, n)))


class Settings:
    """Plain settings that hold a reader function among their data."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.reader: Any = None  # set by the notebook

    def __memo_key__(self) -> str:
        return self.folder


def test_times_read_by_a_function_held_in_an_object_s_attribute_are_checked(runs: Path, counter: Counter) -> None:
    settings = Settings(str(runs))
    settings.reader = newest_in

    @memo
    def newest(tag: str) -> str:
        counter()
        return str(settings.reader(settings.folder))

    assert newest("x") == "b.ckpt" and newest("x") == "b.ckpt" and counter.n == 1
    make_a_newest(runs)
    assert newest("x") == "a.ckpt" and counter.n == 2


@pytest.mark.parametrize("made", [Picker, PickerModule])
def test_times_read_by_a_callable_object_passed_as_an_argument_are_checked(runs: Path, counter: Counter,
                                                                          made: type) -> None:
    @memo
    def newest(found: Any) -> str:
        counter()
        return str(found())

    assert newest(made(str(runs))) == "b.ckpt" and newest(made(str(runs))) == "b.ckpt" and counter.n == 1
    make_a_newest(runs)
    assert newest(made(str(runs))) == "a.ckpt" and counter.n == 2


def test_a_callable_object_reading_only_names_still_hits_after_a_file_is_touched(runs: Path,
                                                                                   counter: Counter) -> None:
    lister = Lister(str(runs))

    @memo
    def names(tag: str) -> list[str]:
        counter()
        return list(lister())

    assert names("x") == ["a.ckpt", "b.ckpt"]
    make_a_newest(runs)
    assert names("x") == ["a.ckpt", "b.ckpt"] and counter.n == 1


NOTEBOOK_PICKER = """
import os
class Picker:
    def __init__(self, folder):
        self.folder = folder
    def __call__(self):
        return self.latest()
    def latest(self):
        return max(os.listdir(self.folder), key=lambda n: os.path.getmtime(os.path.join(self.folder, n)))
picker = Picker(folder)
"""


@pytest.mark.parametrize("cell_text", ["%%memo\nnewest = picker.latest()\n", "%%memo\nnewest = picker()\n"])
def test_a_cell_using_a_callable_object_of_the_notebook_runs_again_when_another_is_newest(
        shell: Shell, runs: Path, cell_text: str) -> None:
    shell.run("%load_ext notebook_memo")
    shell.run(f"folder = {str(runs)!r}")
    shell.run(NOTEBOOK_PICKER)
    shell.run(cell_text)
    shell.run(cell_text)
    cell = _cells.cells()[-1]
    assert shell["newest"] == "b.ckpt" and (cell.hits, cell.misses) == (1, 1)
    make_a_newest(runs)
    shell.run(cell_text)
    assert shell["newest"] == "a.ckpt" and cell.misses == 2


def test_a_function_using_a_callable_object_runs_again_after_a_restart_when_another_is_newest(
        cache_dir: Path, runs: Path) -> None:
    cells = ["%load_ext notebook_memo", f"folder = {str(runs)!r}", NOTEBOOK_PICKER,
             "from notebook_memo import memo\n@memo\ndef newest(tag):\n    return picker.latest()\n",
             "OUT['newest'] = newest('x')"]
    assert run_kernel(cells, cache_dir, seed=1)["newest"] == "b.ckpt"
    make_a_newest(runs)
    assert run_kernel(cells, cache_dir, seed=2)["newest"] == "a.ckpt"


# -- a hit of a folder variant ---------------------------------------------------------------------------------


def _folders(tmp_path: Path, **contents: str) -> dict[str, Path]:
    """Make one folder per name, each with its own data.txt."""
    made = {}
    for name, text in contents.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / "data.txt").write_text(text)
        made[name] = folder
    return made


class _Lookups:
    """Counts the index lookups of the store (``Store.get``) while it is installed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.n = 0
        original = Store.get

        def counted(store: Store, *args: Any, **kwargs: Any) -> Any:
            self.n += 1
            return original(store, *args, **kwargs)

        monkeypatch.setattr(Store, "get", counted)


def _load_counting(counter: Counter) -> Any:
    @memo
    def load(name: str) -> str:
        counter()
        with open(name, encoding="utf-8") as fh:
            return fh.read()

    return load


def test_a_hit_of_a_body_reading_a_relative_path_reads_the_index_once(
        tmp_path: Path, counter: Counter, monkeypatch: pytest.MonkeyPatch) -> None:
    folders = _folders(tmp_path, A="from A", B="from B")
    load = _load_counting(counter)
    for where in "ABAB":  # stored, then each folder's entry found through the marker once
        monkeypatch.chdir(folders[where])
        assert load("data.txt") == f"from {where}"
    lookups = _Lookups(monkeypatch)
    for where in "ABAB":
        monkeypatch.chdir(folders[where])
        before = lookups.n
        assert load("data.txt") == f"from {where}" and load.last_hit
        assert lookups.n - before == 1, f"a hit in {where} read the index {lookups.n - before} times"
    assert counter.n == 2


def test_a_folder_entry_found_in_one_lookup_is_still_checked_and_still_the_markers(
        tmp_path: Path, counter: Counter, monkeypatch: pytest.MonkeyPatch) -> None:
    folders = _folders(tmp_path, A="from A", B="from B", C="from C")
    load = _load_counting(counter)
    for where in "ABAB":
        monkeypatch.chdir(folders[where])
        load("data.txt")
    # A file its run read changed: the entry found in one lookup is not served.
    (folders["A"] / "data.txt").write_text("from A, changed")
    monkeypatch.chdir(folders["A"])
    assert load("data.txt") == "from A, changed" and not load.last_hit and counter.n == 3
    monkeypatch.chdir(folders["B"])
    assert load("data.txt") == "from B" and load.last_hit
    # Another folder has its own entry, none yet.
    monkeypatch.chdir(folders["C"])
    assert load("data.txt") == "from C" and not load.last_hit and counter.n == 4
    # Invalidated here: no folder's entry is served again.
    monkeypatch.chdir(folders["B"])
    load.invalidate("data.txt")
    assert load("data.txt") == "from B" and not load.last_hit and counter.n == 5


_REMOVE_MARKER = """
import sys
from notebook_memo.stores.local import get_store
assert get_store(sys.argv[1], 2**30).delete(sys.argv[2])
"""


def test_a_folder_entry_is_not_served_after_another_process_removed_its_marker(
        tmp_path: Path, cache_dir: Path, counter: Counter, monkeypatch: pytest.MonkeyPatch) -> None:
    # What an invalidate that could not name every folder's entry leaves (another machine's, through the
    # remote): the entries, without the marker that stands for them. This process knew where the entry was.
    folders = _folders(tmp_path, A="from A")
    load = _load_counting(counter)
    monkeypatch.chdir(folders["A"])
    for _ in range(3):
        assert load("data.txt") == "from A"
    assert counter.n == 1 and load.last_call is not None
    subprocess.run([sys.executable, "-c", _REMOVE_MARKER, str(cache_dir), load.last_call.key],
                   env=worker_env(cache_dir), check=True, timeout=120)
    assert load("data.txt") == "from A" and not load.last_hit and counter.n == 2


def test_objects_holding_each_other_are_looked_into_once(runs: Path, counter: Counter) -> None:
    """Two functors holding each other under a name the body uses, neither reading times: the look into what
    they run ends (it went round them for ever), and a touched file is still a hit."""
    first, second = Lister(str(runs)), Lister(str(runs))
    first.reader = second  # type: ignore[attr-defined]
    second.reader = first  # type: ignore[attr-defined]

    @memo
    def names(tag: str) -> list[str]:
        counter()
        return list(first.reader())

    assert names("x") == ["a.ckpt", "b.ckpt"] and names("x") == ["a.ckpt", "b.ckpt"] and counter.n == 1
    make_a_newest(runs)
    assert names("x") == ["a.ckpt", "b.ckpt"] and counter.n == 1
