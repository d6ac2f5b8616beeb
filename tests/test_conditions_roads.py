"""Preconditions: roads to a stale result that the first tests did not walk.

Each test is a false hit found by review: a cached answer served after something it depends on
changed. Restarts are real processes (other PYTHONHASHSEED); files and databases are real.
"""

from __future__ import annotations

import importlib
import linecache
import os
import random
import secrets
import sqlite3
import tempfile
import traceback
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from notebook_memo import MemoWarning, memo
from tests.conftest import Counter, run_kernel

# numpy is not loaded in a fresh kernel: the body is the first to import it.
_SAMPLE = """
from notebook_memo import MemoWarning, memo

@memo
def sample():
    import numpy as np
    return float(np.random.random())
"""


def test_a_generator_first_loaded_by_the_body_is_keyed_in_the_same_kernel(cache_dir: Path) -> None:
    out = run_kernel([_SAMPLE, """
    import sys
    OUT["loaded_before"] = "numpy" in sys.modules
    first = sample()
    import numpy as np
    np.random.seed(1)
    OUT["seeded"] = sample()
    OUT["expected"] = float(np.random.RandomState(1).random_sample())
    OUT["after"] = float(np.random.random())
    OUT["expected_after"] = float(np.random.RandomState(1).random_sample(2)[1])
    """], cache_dir)
    assert out["loaded_before"] is False
    assert out["seeded"] == out["expected"]
    assert out["after"] == out["expected_after"]  # the user's seed is not overwritten by a stale state


def test_a_generator_first_loaded_by_the_body_is_keyed_after_a_restart(cache_dir: Path) -> None:
    first = run_kernel([_SAMPLE, "OUT['first'] = sample()"], cache_dir, seed=1)
    out = run_kernel([_SAMPLE, """
    import numpy as np
    np.random.seed(1)
    OUT["seeded"] = sample()
    OUT["expected"] = float(np.random.RandomState(1).random_sample())
    """], cache_dir, seed=2)
    assert out["seeded"] == out["expected"]
    again = run_kernel([_SAMPLE, "OUT['first'] = sample()"], cache_dir, seed=3)
    assert again["first"] == first["first"]  # a kernel that has not loaded numpy is served the first run


def test_torch_first_loaded_by_the_body_is_keyed(cache_dir: Path) -> None:
    importlib.import_module("torch")
    out = run_kernel(["""
    import sys
    from notebook_memo import memo

    @memo
    def sample():
        import torch
        return float(torch.rand(1))
    """, """
    OUT["loaded_before"] = "torch" in sys.modules
    sample()
    import torch
    torch.manual_seed(1)
    OUT["seeded"] = sample()
    OUT["expected"] = float(torch.rand(1, generator=torch.Generator().manual_seed(1)))
    """], cache_dir)
    assert out["loaded_before"] is False
    assert out["seeded"] == out["expected"]


# -- SQLite ---------------------------------------------------------------------------------------------------

def _database(path: Path, wal: bool = False) -> sqlite3.Connection:
    writer = sqlite3.connect(path)
    if wal:
        writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("create table t(x)")
    writer.execute("insert into t values (1)")
    writer.commit()
    return writer


def test_rows_committed_into_a_wal_file_are_a_miss(tmp_path: Path, counter: Counter) -> None:
    db = tmp_path / "data.db"
    writer = _database(db, wal=True)  # stays open: its commits sit in data.db-wal, data.db is untouched

    @memo
    def total() -> int:
        counter()
        con = sqlite3.connect(db)
        try:
            return int(con.execute("select sum(x) from t").fetchone()[0])
        finally:
            con.close()

    assert total() == total() == 1
    assert counter.n == 1
    writer.execute("insert into t values (100)")
    writer.commit()
    assert total() == 101
    writer.close()


def test_a_wal_database_the_body_opens_alone_is_cached(tmp_path: Path, counter: Counter) -> None:
    _database(tmp_path / "data.db", wal=True).close()

    @memo
    def total() -> int:
        counter()
        con = sqlite3.connect(tmp_path / "data.db")
        try:
            return int(con.execute("select sum(x) from t").fetchone()[0])
        finally:
            con.close()

    assert total() == total() == 1
    assert counter.n == 1


def test_a_database_opened_by_uri_is_a_data_file(tmp_path: Path, counter: Counter) -> None:
    db = tmp_path / "my data.db"
    _database(db).close()

    @memo
    def total() -> int:
        counter()
        con = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
        try:
            return int(con.execute("select sum(x) from t").fetchone()[0])
        finally:
            con.close()

    assert total() == total() == 1
    assert counter.n == 1
    writer = sqlite3.connect(db)
    writer.execute("insert into t values (100)")
    writer.commit()
    writer.close()
    assert total() == 101


# -- who reads: source lines for a traceback, or data ------------------------------------------------------------

@pytest.mark.parametrize("module", ["corpus_tokenize", "fast_linecache"])
def test_a_user_module_named_like_a_source_reader_reads_data(module: str, tmp_path: Path, counter: Counter,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / f"{module}.py").write_text("def load(path):\n    with open(path) as f:\n        return f.read()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    load = importlib.import_module(module).load
    data = tmp_path / "corpus.txt"
    data.write_text("a b c")

    @memo
    def count(path: str) -> int:
        counter()
        return len(load(path).split())

    assert count(str(data)) == count(str(data)) == 3
    assert counter.n == 1
    data.write_text("a b c d e f g")
    assert count(str(data)) == 7


def test_linecache_reading_a_data_file_is_a_read(tmp_path: Path, counter: Counter) -> None:
    data = tmp_path / "lines.txt"
    data.write_text("one\ntwo\n")

    @memo
    def first_line(path: str) -> str:
        counter()
        linecache.checkcache(path)
        return linecache.getline(path, 1)

    assert first_line(str(data)) == first_line(str(data)) == "one\n"
    assert counter.n == 1
    data.write_text("three\ntwo\n")
    assert first_line(str(data)) == "three\n"


def test_a_traceback_reading_source_lines_is_not_a_read(tmp_path: Path, counter: Counter,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "failing_helper.py").write_text("def fail():\n    raise ValueError('no')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    fail = importlib.import_module("failing_helper").fail

    @memo
    def described() -> str:
        counter()
        try:
            fail()
        except ValueError:
            return traceback.format_exc().splitlines()[-2].strip()
        return ""

    assert described() == described() == "raise ValueError('no')"
    assert counter.n == 1
    assert "failing_helper" not in str(described.explain())


# -- generator objects: what a restart must leave as the body would ----------------------------------------------

_SPAWNERS = {
    "generator": "G = np.random.default_rng(0)\n@memo\ndef draw(): return float(G.spawn(1)[0].random())",
    "seed sequence": "SS = np.random.SeedSequence(0)\n@memo\ndef draw(): return float(np.random.default_rng("
                     "SS.spawn(1)[0]).random())",
    "argument": "H = np.random.default_rng(0)\n@memo\ndef f(g): return float(g.spawn(1)[0].random())\n"
                "def draw(): return f(H)",
    "bit generator": "BG = np.random.PCG64(0)\n@memo\ndef draw(): return float(np.random.Generator(BG).random())",
}


@pytest.mark.parametrize("holder", list(_SPAWNERS))
def test_a_generator_object_is_left_as_the_body_leaves_it_across_restarts(holder: str, cache_dir: Path) -> None:
    cells = ["import numpy as np\nfrom notebook_memo import memo\n" + _SPAWNERS[holder],
             "OUT['draws'] = [draw() for _ in range(3)]"]
    plain = run_kernel(cells, cache_dir, seed=1, env={"NOTEBOOK_MEMO_DISABLE": "1"})
    first = run_kernel(cells, cache_dir, seed=2)
    second = run_kernel(cells, cache_dir, seed=3)
    assert len(set(plain["draws"])) == 3
    assert first["draws"] == plain["draws"] == second["draws"]


# -- files the body writes --------------------------------------------------------------------------------------

def test_a_file_appended_to_and_read_back_is_not_cached(tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    log.write_text("")

    @memo
    def run_number() -> int:
        with open(log, "a") as f:  # the lines earlier runs appended are part of what it reads back
            f.write("run\n")
        with open(log) as f:
            return len(f.readlines())

    with pytest.warns(MemoWarning, match="runs.log"):
        assert [run_number() for _ in range(3)] == [1, 2, 3]


def test_a_file_only_appended_to_is_no_dependency(tmp_path: Path, counter: Counter) -> None:
    log = tmp_path / "runs.log"
    log.write_text("")

    @memo
    def noted() -> int:
        counter()
        with open(log, "a") as f:
            f.write("run\n")
        return 1

    assert noted() == noted() == 1
    assert counter.n == 1


# -- reads that cannot be located -------------------------------------------------------------------------------

def _read_through_dir_fd(folder: str, name: str) -> str:
    fd = os.open(folder, os.O_RDONLY)
    try:
        with open(name, opener=lambda p, flags: os.open(p, flags, dir_fd=fd)) as f:
            return f.read()
    finally:
        os.close(fd)


def _list_through_fwalk(folder: str, name: str) -> str:
    return ",".join(sorted(f for _, _, files, _ in os.fwalk(folder) for f in files))


def _list_through_scandir_fd(folder: str, name: str) -> str:
    fd = os.open(folder, os.O_RDONLY)
    try:
        return ",".join(sorted(entry.name for entry in os.scandir(fd)))
    finally:
        os.close(fd)


@pytest.mark.parametrize("reader", [_read_through_dir_fd, _list_through_fwalk, _list_through_scandir_fd])
def test_a_read_through_a_folder_descriptor_is_not_cached(reader: Callable[[str, str], str],
                                                          tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "x.txt").write_text("one")

    @memo
    def load(folder: str, name: str) -> str:
        return reader(folder, name)

    with pytest.warns(MemoWarning, match="descriptor"):
        first = load(str(data), "x.txt")
    (data / "x.txt").write_text("two!")
    (data / "y.txt").write_text("new")
    assert load(str(data), "x.txt") == reader(str(data), "x.txt") != first


def test_a_temporary_folder_the_body_removes_is_still_cached(counter: Counter) -> None:
    @memo
    def scratch() -> int:
        counter()
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, "a", "b"))
            Path(d, "a", "b", "f").write_text("x")
        return 1

    assert scratch() == scratch() == 1
    assert counter.n == 1


# -- a cache directory that holds the data ----------------------------------------------------------------------

def test_data_beside_the_cache_index_is_data(tmp_path: Path, counter: Counter) -> None:
    (tmp_path / "data").mkdir()
    data = tmp_path / "data" / "x.csv"
    data.write_text("one")

    @memo(cache_dir=str(tmp_path))  # the project folder as the cache folder
    def load(path: str) -> str:
        counter()
        return Path(path).read_text()

    assert load(str(data)) == load(str(data)) == "one"
    assert counter.n == 1
    data.write_text("two!")
    assert load(str(data)) == "two!"


def test_listing_the_folder_that_holds_the_cache_ignores_the_cache_files(tmp_path: Path, counter: Counter) -> None:
    (tmp_path / "a.csv").write_text("1")

    @memo(cache_dir=str(tmp_path))
    def names() -> list[str]:
        counter()
        return sorted(p.name for p in tmp_path.glob("*.csv"))

    assert names() == ["a.csv"]
    assert names() == names() == ["a.csv"]
    assert counter.n == 1
    (tmp_path / "b.csv").write_text("2")
    assert names() == ["a.csv", "b.csv"]


# -- randomness from the operating system -----------------------------------------------------------------------

_UNSEEDED: dict[str, Callable[[], object]] = {
    "default_rng": lambda: float(np.random.default_rng().random()),
    "SeedSequence": lambda: int(np.random.SeedSequence().generate_state(1)[0]),
    "random.Random": lambda: random.Random().random(),
    "uuid4": lambda: str(uuid.uuid4()),
    "secrets": lambda: secrets.token_hex(4),
    "os.urandom": lambda: os.urandom(4).hex(),
}


@pytest.mark.parametrize("source", list(_UNSEEDED))
def test_randomness_from_the_operating_system_warns(source: str) -> None:
    draw = _UNSEEDED[source]

    @memo
    def unseeded() -> object:
        return draw()

    with pytest.warns(MemoWarning, match="entropy"):
        unseeded()


def test_a_library_using_entropy_for_itself_does_not_warn(tmp_path: Path) -> None:
    @memo
    def scratch() -> int:
        with tempfile.NamedTemporaryFile(dir=tmp_path):  # a random name, not a random result
            return 1

    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        assert scratch() == 1


def test_a_library_seeding_itself_on_import_does_not_warn(cache_dir: Path) -> None:
    out = run_kernel([_SAMPLE, "OUT['first'] = sample()"], cache_dir)
    assert not [w for w in out["_warnings"] if "entropy" in w]


def test_the_running_notebook_file_is_still_not_data(tmp_path: Path, counter: Counter,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    notebook = tmp_path / "analysis.ipynb"
    notebook.write_text("{}")
    monkeypatch.setenv("JPY_SESSION_NAME", str(notebook))

    @memo
    def size() -> int:
        counter()
        return len(notebook.read_text()) * 0  # reads the notebook, as a front end's helper may

    assert size() == 0
    notebook.write_text('{"cells": []}')  # saving the notebook changes nothing the result depends on
    assert size() == 0
    assert counter.n == 1


def test_a_write_through_a_folder_descriptor_is_still_cached(tmp_path: Path, counter: Counter) -> None:
    @memo
    def save(folder: str) -> int:
        counter()
        fd = os.open(folder, os.O_RDONLY)
        try:
            with open("out.txt", "w", opener=lambda p, flags: os.open(p, flags, dir_fd=fd)) as f:
                f.write("x")
        finally:
            os.close(fd)
        return 1

    assert save(str(tmp_path)) == save(str(tmp_path)) == 1
    assert counter.n == 1


def test_data_in_folders_named_like_payload_folders_beside_the_index_is_data(tmp_path: Path,
                                                                             counter: Counter) -> None:
    (tmp_path / "01").mkdir()
    (tmp_path / "02").mkdir()
    sales = tmp_path / "01" / "sales.csv"
    sales.write_text("1")

    @memo(cache_dir=str(tmp_path))  # a project folder of monthly folders as the cache folder
    def total() -> int:
        counter()
        return sum(int(x) for x in sales.read_text().split(","))

    @memo(cache_dir=str(tmp_path))
    def months() -> list[str]:
        counter()
        return sorted(n for n in os.listdir(tmp_path) if n.isdigit())

    assert (total(), months()) == (1, ["01", "02"])
    sales.write_text("1,2,3")
    (tmp_path / "03").mkdir()
    assert (total(), months()) == (6, ["01", "02", "03"])


def test_a_walk_of_the_folder_holding_the_cache_hits_while_other_results_are_stored(tmp_path: Path,
                                                                                     counter: Counter) -> None:
    (tmp_path / "a.csv").write_text("1")

    @memo(cache_dir=str(tmp_path))
    def tables() -> list[str]:
        counter()
        return sorted(f for _, _, files in os.walk(tmp_path) for f in files if f.endswith(".csv"))

    @memo(cache_dir=str(tmp_path))
    def big(n: int) -> bytes:
        return bytes(40_000) + bytes([n])  # a payload file of its own

    assert tables() == ["a.csv"]
    for n in range(40):  # some land in payload folders made before: their listings change
        big(n)
        assert tables() == ["a.csv"]
    assert counter.n == 1


def test_removing_a_folder_by_a_relative_path_leaves_the_body_cached(tmp_path: Path, counter: Counter,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    monkeypatch.chdir(tmp_path)

    @memo(cache_dir=str(tmp_path / "cache"))
    def build() -> int:
        counter()
        os.makedirs("out", exist_ok=True)
        Path("out", "x.txt").write_text("x")
        shutil.rmtree("out")
        return 42

    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        assert build() == build() == 42
    assert counter.n == 1


def test_a_dir_fd_of_none_passed_on_is_an_ordinary_open(tmp_path: Path, counter: Counter,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "x.txt").write_text("42")
    monkeypatch.chdir(tmp_path)

    def read(path: str, dir_fd: int | None = None) -> str:
        fd = os.open(path, os.O_RDONLY, dir_fd=dir_fd)
        with os.fdopen(fd) as f:
            return f.read()

    @memo(cache_dir=str(tmp_path / "cache"))
    def read_forwarded() -> str:
        counter()
        return read("x.txt")  # relative, as a helper forwarding an optional dir_fd is given

    assert read_forwarded() == read_forwarded() == "42"
    assert counter.n == 1


def test_recording_a_call_passing_dir_fd_keeps_no_frame_alive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gc
    import weakref

    (tmp_path / "x.txt").write_text("42")
    monkeypatch.chdir(tmp_path)

    def read(path: str, dir_fd: int | None = None) -> str:
        with os.fdopen(os.open(path, os.O_RDONLY, dir_fd=dir_fd)) as f:
            return f.read()

    def make() -> Any:
        @memo(cache_dir=str(tmp_path / "cache"))
        def read_once() -> str:
            return read("x.txt")
        read_once()
        return weakref.ref(read_once)

    watch = make()
    gc.collect()
    assert watch() is None  # no frame of the call (and so no memoized function) is held by the recorder's caches
