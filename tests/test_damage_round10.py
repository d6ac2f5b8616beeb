"""Damage met while work is under way, damaged rows explained, and refused cache folders named for what they are.

An index set aside as damaged while a long body runs in another thread; explain() asked about a
row that holds another key's record; a FIFO or socket given to the command line as the cache folder.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import warnings
from pathlib import Path

import pytest

from notebook_memo import StorageWarning, _cli, memo
from notebook_memo.stores.local import MODE_RECORD
from tests.conftest import Counter, settled


def test_an_index_set_aside_during_a_long_run_reports_no_takeover(cache_dir: Path, counter: Counter) -> None:
    # The lease of the run was taken in the index set aside: the fresh index never held it, and no other
    # process took the computation over.
    started, go_on = threading.Event(), threading.Event()

    @memo
    def slow(x: int) -> int:
        counter()
        started.set()
        go_on.wait(30)
        return x * 2

    @memo
    def other(x: int) -> int:
        return x

    other(0)
    store = other._store()
    results: list[int] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        thread = threading.Thread(target=lambda: results.append(slow(21)))
        thread.start()
        try:
            assert started.wait(30)
            assert store.holds_leases()
            store._set_aside(sqlite3.DatabaseError("database disk image is malformed"), store._ident)
            assert other(1) == 1  # the fresh index is opened
        finally:
            go_on.set()
            thread.join(30)
    assert results == [42] and counter.n == 1
    messages = [str(w.message) for w in caught if issubclass(w.category, StorageWarning)]
    assert not [m for m in messages if "took over" in m], messages
    assert slow(21) == 42 and counter.n == 1  # stored in the fresh index


def test_an_index_set_aside_during_a_long_batch_reports_no_takeover(cache_dir: Path, counter: Counter) -> None:
    started, go_on = threading.Event(), threading.Event()

    @memo.batch("xs", progress=False)
    def doubled(xs: list[int]) -> list[int]:
        counter()
        started.set()
        go_on.wait(30)
        return [x * 2 for x in xs]

    @memo
    def other(x: int) -> int:
        return x

    other(0)
    store = other._store()
    results: list[list[int]] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        thread = threading.Thread(target=lambda: results.append(doubled([1, 2, 3])))
        thread.start()
        try:
            assert started.wait(30)
            assert store.holds_leases()
            store._set_aside(sqlite3.DatabaseError("database disk image is malformed"), store._ident)
            assert other(1) == 1
        finally:
            go_on.set()
            thread.join(30)
    assert results == [[2, 4, 6]] and counter.n == 1
    messages = [str(w.message) for w in caught if issubclass(w.category, StorageWarning)]
    assert not [m for m in messages if "took over" in m], messages
    assert doubled([1, 2, 3]) == [2, 4, 6] and counter.n == 1


def _refused_line(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert _cli.main(list(args)) == 2
    out = capsys.readouterr()
    assert out.out == "", out.out
    [line] = out.err.strip().splitlines()
    return line


def test_a_named_pipe_given_as_the_cache_folder_is_called_one(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    line = _refused_line(capsys, "clear", "--dir", str(pipe))
    assert "is a named pipe, not a cache directory" in line, line
    assert pipe.is_fifo()


def test_a_socket_given_as_the_cache_folder_is_called_one(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(path))
        line = _refused_line(capsys, "info", "--dir", str(path))
    assert "is a socket, not a cache directory" in line, line


def test_a_plain_file_given_as_the_cache_folder_is_still_called_a_file(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("mine")
    line = _refused_line(capsys, "prune", "--dir", str(path), "--keep-latest")
    assert "is a file, not a cache directory" in line, line
    assert path.read_text() == "mine"


def _db(cache_dir: Path) -> sqlite3.Connection:
    settled()  # quick results are in the index, as another process sees them
    return sqlite3.connect(str(cache_dir / "cache.db"), isolation_level=None)


def test_explain_of_an_entry_whose_row_holds_another_keys_record_says_so(cache_dir: Path, counter: Counter) -> None:
    @memo
    def f(x: int) -> int:
        counter()
        return x * 7

    assert (f(1), f(2)) == (7, 14)
    with _db(cache_dir) as db:
        (k1, v1), (k2, v2) = db.execute("SELECT key, value FROM Cache WHERE mode = ? ORDER BY rowid",
                                        (MODE_RECORD,)).fetchall()
        db.execute("UPDATE Cache SET value = ? WHERE key = ?", (v2, k1))
        db.execute("UPDATE Cache SET value = ? WHERE key = ?", (v1, k2))
    report = f.explain(1)
    assert not report.hit and "cannot be used" in report.summary and "another key" in report.summary, report.summary
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        assert (f(1), f(2)) == (7, 14)
    assert counter.n == 4
