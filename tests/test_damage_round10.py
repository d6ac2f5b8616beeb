"""Damage met while work is under way, index columns no record vouches for, and refused cache folders.

An index set aside as damaged while a long body runs in another thread; the tag column (which
function a row is filed under, what clear() and cache_info() go by) damaged under a plain call's,
a batch item's and a cell's entry, with a guard that every kind of entry still hits when read afresh;
explain() asked about a row that holds another key's record; records exchanged between a batch
item's row and a plain call's, between two cells' rows, and between the rows of two secrets; a FIFO,
a socket or a link to nothing given to the command line as the cache folder.
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
from notebook_memo.stores.local import MODE_RECORD, close_stores
from tests.conftest import Counter, Shell, settled


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


def _retag(cache_dir: Path, tag: str | None, keys: list[str] | None = None) -> list[str]:
    """Set the tag column of the entry rows (``keys``, else all of them) to ``tag``; return the keys changed."""
    with _db(cache_dir) as db:
        rows = [k for (k,) in db.execute("SELECT key FROM Cache WHERE key NOT LIKE 'lock:%' AND key NOT LIKE "
                                          "'stats:%' AND mode = ? ORDER BY rowid", (MODE_RECORD,))]
        rows = rows if keys is None else [k for k in rows if k in keys]
        for key in rows:
            db.execute("UPDATE Cache SET tag = ? WHERE key = ?", (tag, key))
    return rows


def _storage_messages(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, StorageWarning)]


@pytest.mark.parametrize("tag", [None, "another function's id"])
def test_an_entry_filed_under_another_tag_is_not_served_after_clear(cache_dir: Path, counter: Counter,
                                                                     tag: str | None) -> None:
    @memo
    def f(x: int) -> int:
        counter()
        return x + 100

    assert f(1) == 101
    assert _retag(cache_dir, tag)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        f.clear()  # the user wants it computed again
        assert f(1) == 101
    assert counter.n == 2, "an entry clear() did not see was served"
    assert any("damaged" in m for m in _storage_messages(caught)), _storage_messages(caught)
    assert f.cache_info().entries == 1  # the fresh entry is filed under f again
    f.clear()
    assert f(1) == 101 and counter.n == 3


def test_a_batch_item_filed_under_another_tag_is_recomputed(cache_dir: Path, counter: Counter) -> None:
    @memo.batch("xs", progress=False)
    def g(xs: list[int]) -> list[int]:
        counter()
        return [x * 3 for x in xs]

    assert g([1, 2, 3]) == [3, 6, 9]
    keys = _retag(cache_dir, None)
    _retag(cache_dir, g._fid, keys[1:])  # one item's row damaged
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert g([1, 2, 3]) == [3, 6, 9]
    assert counter.n == 2 and caught
    assert g.cache_info().entries == 3


def test_a_cells_entry_filed_under_another_tag_is_recomputed(shell: Shell, cache_dir: Path,
                                                             counter: Counter) -> None:
    shell.run("%load_ext notebook_memo")
    shell.ip.user_ns["counter"] = counter
    shell.run("a = 2")
    cell = "%%memo\ncounter()\nx = a * 10\ny = a * 20"
    shell.run(cell)
    assert _retag(cache_dir, None)
    shell.run("del x, y")
    with pytest.warns(StorageWarning, match="under another function"):
        shell.run(cell)
    assert (shell["x"], shell["y"]) == (20, 40) and counter.n == 2
    shell.run("del x, y")
    shell.run(cell)  # stored again, filed under the cell
    assert (shell["x"], shell["y"]) == (20, 40) and counter.n == 2


def test_entries_of_every_kind_still_hit_when_read_afresh(cache_dir: Path, counter: Counter) -> None:
    # Guard: each kind of write files its row under the function its record names, so a store that
    # verifies every row afresh (a new process) serves them all.
    import random

    import numpy as np

    @memo
    def plain(x: int) -> int:
        counter()
        return x

    @memo(ttl=3600)
    def lasting(x: int) -> int:
        counter()
        return x

    @memo
    def large(x: int) -> np.ndarray:
        counter()
        return np.full(50_000, x)

    @memo
    def drawn(x: int) -> float:
        counter()
        return x + random.random()

    @memo.batch("xs", progress=False)
    def items(xs: list[int]) -> list[int]:
        counter()
        return [x + 1 for x in xs]

    @memo.batch("xs", progress=False, ttl=3600)
    def lasting_items(xs: list[int]) -> list[int]:
        counter()
        return [x + 2 for x in xs]

    class Box:
        def __init__(self, n: int) -> None:
            self.n = n

        def __memo_key__(self) -> int:
            return self.n

        @memo
        def doubled(self) -> int:
            counter()
            return self.n * 2

    def every() -> list[object]:
        random.seed(5)  # the same state: the same entry of drawn
        return [plain(1), lasting(1), int(large(3)[0]), drawn(1), items([1, 2]), lasting_items([1, 2]),
                Box(4).doubled()]

    first = every()
    runs = counter.n
    close_stores([str(cache_dir)])  # read afresh: no record is known from before
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert every() == first
    assert counter.n == runs, "an entry of one of these kinds was refused"
    assert not _storage_messages(caught), _storage_messages(caught)


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


def test_a_link_to_nothing_given_as_the_cache_folder_is_called_one(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    link = tmp_path / "cache"
    link.symlink_to(tmp_path / "moved away")
    line = _refused_line(capsys, "info", "--dir", str(link))
    assert "is a link to" in line and "moved away" in line and "which does not exist" in line, line
    assert "run a memoized function first" not in line, line
    assert link.is_symlink() and not (tmp_path / "moved away").exists()


# -- records put in each other's rows, across kinds of entries ----------------------------------------------


def _swap_values(cache_dir: Path, first: str, second: str) -> None:
    """Exchange the value columns (the records) of two rows, as a damaged index page might."""
    with _db(cache_dir) as db:
        [a] = db.execute("SELECT value FROM Cache WHERE key = ?", (first,)).fetchone()
        [b] = db.execute("SELECT value FROM Cache WHERE key = ?", (second,)).fetchone()
        db.execute("UPDATE Cache SET value = ? WHERE key = ?", (b, first))
        db.execute("UPDATE Cache SET value = ? WHERE key = ?", (a, second))


def _record_rows(cache_dir: Path) -> list[str]:
    with _db(cache_dir) as db:
        return [k for (k,) in db.execute("SELECT key FROM Cache WHERE mode = ? ORDER BY rowid", (MODE_RECORD,))]


def test_a_batch_items_record_and_a_plain_calls_exchanged_are_both_recomputed(cache_dir: Path,
                                                                               counter: Counter) -> None:
    # Equal-shaped small values, stored inline: only the key each record names tells them apart.
    @memo.batch("xs", progress=False)
    def items(xs: list[int]) -> list[int]:
        counter()
        return [x + 1 for x in xs]

    @memo
    def plain(x: int) -> int:
        counter()
        return x + 2

    assert items([1, 2]) == [2, 3] and plain(1) == 3
    rows = _record_rows(cache_dir)
    _swap_values(cache_dir, rows[0], rows[-1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert items([1, 2]) == [2, 3] and plain(1) == 3
    assert counter.n == 4 and len(_storage_messages(caught)) == 2, _storage_messages(caught)
    assert items([1, 2]) == [2, 3] and plain(1) == 3 and counter.n == 4  # both replaced


def test_two_cells_records_exchanged_are_both_run_again(shell: Shell, cache_dir: Path, counter: Counter) -> None:
    shell.run("%load_ext notebook_memo")
    shell.ip.user_ns["counter"] = counter
    shell.run("a = 1")
    first, second = "%%memo\ncounter()\nx = a + 1\ny = a + 2", "%%memo\ncounter()\np = a + 10\nq = a + 20"
    shell.run(first)
    shell.run(second)
    _swap_values(cache_dir, *_record_rows(cache_dir))
    shell.run("del x, y, p, q")
    with pytest.warns(StorageWarning, match="another key"):
        shell.run(first)
        shell.run(second)
    assert (shell["x"], shell["y"], shell["p"], shell["q"]) == (2, 3, 11, 21) and counter.n == 4


def test_a_record_of_another_secret_in_this_secrets_row_is_recomputed(cache_dir: Path, counter: Counter) -> None:
    from notebook_memo import configure

    @memo
    def f(x: int) -> int:
        counter()
        return x + 100

    configure(secret="first team")
    assert f(1) == 101
    configure(secret="second team")
    assert f(1) == 101
    mine, theirs = _record_rows(cache_dir)[::-1]
    _swap_values(cache_dir, mine, theirs)
    with pytest.warns(StorageWarning, match="secret this process does not have"):
        assert f(1) == 101
    assert f(1) == 101 and counter.n == 3
