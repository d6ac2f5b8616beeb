"""The local store's opening, and cache folders that move under it (round 9).

- A ``cache_dir`` that is a link pointed elsewhere while the store opens (between its marker and its index) or
  while it runs, before its check notices: the marker, the index every connection opens (each thread's) and the
  payload files stay in the one folder the store opened, so no folder is left with an index but no marker, no
  payload file is written beside an index that does not name it, and a user's own database the link names now
  is never opened, let alone written.
- A cache folder replaced by a file, a FIFO or a dangling link while a kernel holds it: the next calls warn once
  and compute, nothing is read through the old (deleted) index, and nothing is created.
- A cache moved (its link pointed elsewhere, or its folder removed) while a body holds its lease: no warning
  that another process took the computation over.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from notebook_memo import configure, memo
from notebook_memo.stores import local
from tests.conftest import Counter


def _payloads(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*.val")}


def _named(folder: Path) -> set[str]:
    """The payload files the rows of the index in ``folder`` name."""
    with sqlite3.connect(f"file:{folder / 'cache.db'}?mode=ro", uri=True) as con:
        return {name for (name,) in con.execute("SELECT filename FROM Cache WHERE filename IS NOT NULL")}


def _point(link: Path, target: Path) -> None:
    """``ln -sfn target link``."""
    link.unlink()
    link.symlink_to(target)


@contextlib.contextmanager
def _unnoticed(store: local.Store) -> Iterator[None]:
    """Hold off the store's checks of its directory (the background thread's every few seconds, a read's own): on a
    busy machine one could see the link moved before the step a test means to run while the store has not. The
    background thread is stopped first: a check of its already under way could still see the move."""
    store.stop_background(wait=60)
    with pytest.MonkeyPatch.context() as held:
        held.setattr(local.Store, "revalidate", lambda self: None)
        held.setattr(local, "_REVALIDATE", float("inf"))
        held.setattr(local, "_BACKGROUND_CHECK", float("inf"))
        yield


def _folders(tmp_path: Path) -> tuple[Path, Path, Path]:
    a, b, link = tmp_path / "A", tmp_path / "B", tmp_path / "cache"
    a.mkdir()
    b.mkdir()
    link.symlink_to(a)
    configure(cache_dir=str(link))
    return a, b, link


def _big() -> memo:
    @memo
    def big(n: int, counter: Counter) -> np.ndarray:
        counter()
        return np.arange(n)

    return big


def test_a_cache_link_moved_while_the_store_opens_keeps_its_marker_and_index_in_one_folder(
        tmp_path: Path, counter: Counter, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, link = _folders(tmp_path)
    big = _big()
    wrote = local.Store._write_marker

    def moved_meanwhile(self: local.Store) -> None:
        wrote(self)
        if link.resolve() == a:
            _point(link, b)  # after the marker, before the index is made

    monkeypatch.setattr(local.Store, "_write_marker", moved_meanwhile)
    store = big._store()  # type: ignore[attr-defined]
    assert store.reader is not None  # opens
    assert (a / "NOTEBOOK_MEMO_CACHE").exists() and (a / "cache.db").exists()
    assert sorted(p.name for p in b.iterdir()) == []  # nothing made in the folder the link names now
    store.revalidate()  # the store's check: the link names another folder
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert big(100_000, counter)[-1] == 99_999
        assert big(100_000, counter)[-1] == 99_999
    assert [str(w.message) for w in caught] == [] and counter.n == 1
    assert (b / "NOTEBOOK_MEMO_CACHE").exists() and _named(b) == _payloads(b) != set()


def test_a_thread_connecting_after_the_link_moved_to_another_cache_writes_beside_the_index_it_uses(
        tmp_path: Path, counter: Counter) -> None:
    a, b, link = _folders(tmp_path)
    big = _big()
    _point(link, b)
    big(50_000, counter)  # B: a cache folder of its own, with an entry
    _point(link, a)
    big._store().revalidate()  # type: ignore[attr-defined]
    big(100_000, counter)
    got: list[object] = []

    def worker() -> None:  # a thread with no connection of its own yet
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got.append(big(300_000, counter)[-1])
        got.append([str(w.message) for w in caught])

    with _unnoticed(big._store()):  # type: ignore[attr-defined]
        _point(link, b)  # the store has not looked yet: it uses A's index
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
    assert got == [299_999, []] and counter.n == 3
    for folder in (a, b):  # each payload file beside the index whose row names it
        assert _named(folder) == _payloads(folder)
    assert len(_payloads(a)) == 2 and len(_payloads(b)) == 1


def test_entries_on_both_sides_of_a_cache_link_moved_back_and_forth_are_hits(tmp_path: Path,
                                                                            counter: Counter) -> None:
    a, b, link = _folders(tmp_path)
    big = _big()
    big(100_000, counter)
    _point(link, b)
    big._store().revalidate()  # type: ignore[attr-defined]
    big(200_000, counter)
    for target, n in ((a, 100_000), (b, 200_000), (a, 100_000)):
        _point(link, target)
        big._store().revalidate()  # type: ignore[attr-defined]
        assert big(n, counter)[-1] == n - 1
    assert counter.n == 2


@pytest.mark.parametrize("replaced_by", ["a file", "a FIFO", "a dangling link"])
def test_a_cache_folder_replaced_while_a_kernel_holds_it_warns_once_and_computes(
        tmp_path: Path, counter: Counter, replaced_by: str) -> None:
    cache = tmp_path / "cache"
    configure(cache_dir=str(cache))
    big = _big()
    big(100_000, counter)  # a payload file, and its row in the index the store holds open
    shutil.rmtree(cache)
    if replaced_by == "a file":
        cache.write_text("notes\n")
    elif replaced_by == "a FIFO":
        os.mkfifo(cache)
    else:
        cache.symlink_to(tmp_path / "elsewhere")
    big._store().revalidate()  # type: ignore[attr-defined]  # the store's check
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            assert big(100_000, counter)[-1] == 99_999
    assert counter.n == 4
    assert len(caught) == 1 and "cannot read the cache" in str(caught[0].message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


def test_a_cache_folder_removed_while_a_kernel_holds_it_is_made_again_and_hits(tmp_path: Path,
                                                                               counter: Counter) -> None:
    cache = tmp_path / "cache"
    configure(cache_dir=str(cache))
    big = _big()
    big(100_000, counter)
    shutil.rmtree(cache)
    big._store().revalidate()  # type: ignore[attr-defined]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            assert big(100_000, counter)[-1] == 99_999
    assert [str(w.message) for w in caught] == [] and counter.n == 2
    assert (cache / "NOTEBOOK_MEMO_CACHE").exists() and _named(cache) == _payloads(cache) != set()


@pytest.mark.parametrize("moved", ["the link pointed elsewhere", "the folder removed"])
def test_a_cache_moved_while_a_long_body_runs_gives_no_warning_that_another_process_took_it_over(
        tmp_path: Path, counter: Counter, moved: str) -> None:
    a, b, link = _folders(tmp_path)
    if moved == "the folder removed":
        configure(cache_dir=str(a))  # no link: the store makes the folder again

    @memo
    def slow(n: int, counter: Counter) -> int:
        counter()
        if n == 2:
            store = slow._store()  # type: ignore[attr-defined]
            store.lease_long_runs(time.monotonic() + 1.0)  # as the background thread does for a run this long
            assert store.holds_leases()
            if moved == "the folder removed":
                shutil.rmtree(a)
            else:
                _point(link, b)
            store.revalidate()  # the store's check: the next use opens the index the link names now
        return n

    slow(1, counter)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert slow(2, counter) == 2
    assert [str(w.message) for w in caught] == []
    assert slow(2, counter) == 2 and counter.n == 2  # stored where the cache is now


def test_a_thread_connecting_after_the_link_moved_to_a_user_s_diskcache_leaves_it_as_it_is(
        tmp_path: Path, counter: Counter) -> None:
    import diskcache

    from notebook_memo import ConfigurationError

    _, b, link = _folders(tmp_path)
    with diskcache.Cache(str(b)) as theirs:  # the user's own diskcache, in a folder of theirs
        theirs.set("k", "v")
    before = {path.name: path.read_bytes() for path in b.iterdir()}
    big = _big()
    big(100_000, counter)
    got: list[object] = []

    def worker() -> None:  # a thread with no connection of its own yet: a miss, then a write
        got.append(big(300_000, counter)[-1])

    with _unnoticed(big._store()):  # type: ignore[attr-defined]
        _point(link, b)  # the store has not looked yet
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
    assert got == [299_999] and {path.name: path.read_bytes() for path in b.iterdir()} == before
    big._store().revalidate()  # type: ignore[attr-defined]
    with pytest.raises(ConfigurationError, match="did not make"):  # refused, as when given as cache_dir
        big(300_000, counter)
    assert {path.name: path.read_bytes() for path in b.iterdir()} == before


def test_every_connection_of_the_store_has_its_settings_the_opening_thread_s_and_a_later_thread_s() -> None:
    # The store opens each connection itself (never creating the index after its opening): each must still get the
    # per-connection settings diskcache would apply, whatever the index's Settings table says (no memory map; the
    # log's checkpoints left to the background thread, not done by a commit past SQLite's default 1,000 pages).
    import threading

    from notebook_memo.stores import local

    @memo
    def one(x: int) -> int:
        return x

    assert one(1) == 1
    store = one._store()  # type: ignore[attr-defined]
    seen: list[tuple[int, int]] = []

    def look() -> None:
        for handle in (store.reader, store.writer):
            con = handle._con
            seen.append((con.execute("PRAGMA wal_autocheckpoint").fetchone()[0],
                         con.execute("PRAGMA mmap_size").fetchone()[0]))

    look()  # the opening thread's
    thread = threading.Thread(target=look)  # a thread's first connections
    thread.start()
    thread.join()
    assert seen == [(local._WAL_BACKSTOP, 0)] * 4, seen


def test_a_folder_removed_under_a_long_body_and_made_again_with_its_old_file_number_gives_no_takeover_warning(
        tmp_path: Path, counter: Counter, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file system may give the new index the number (inode) the removed one had: the store, which saw the old
    file gone, still knows the index is another one, so the lease taken in the old one is no takeover."""
    a = tmp_path / "a"
    configure(cache_dir=str(a))
    index = str(a / "cache.db")
    real_ident = local._walfiles.file_ident

    @memo
    def slow(n: int, counter: Counter) -> int:
        counter()
        if n == 2:
            store = slow._store()  # type: ignore[attr-defined]
            store.lease_long_runs(time.monotonic() + 1.0)
            assert store.holds_leases()
            shutil.rmtree(a)
            store.revalidate()
        return n

    slow(1, counter)
    old = real_ident(index)
    assert old is not None

    def reused(path: str) -> tuple[int, int] | None:  # any index made at that path has the old one's number
        found = real_ident(path)
        return old if found is not None and path == index else found

    monkeypatch.setattr(local._walfiles, "file_ident", reused)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert slow(2, counter) == 2
    assert [str(w.message) for w in caught] == []
    assert slow(2, counter) == 2 and counter.n == 2
