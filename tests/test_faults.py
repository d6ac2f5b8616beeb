"""Damage and faults lose nothing that can be kept: a damaged index, load errors, a full disk, prune
racing with writers or killed half-way, the exit hook, and the size limit."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import diskcache
import numpy as np
import pytest

from notebook_memo import StorageWarning, configure, memo
from notebook_memo._inventory import Inventory
from notebook_memo.stores import local
from notebook_memo.stores.local import connection
from tests.conftest import ROOT, Counter, settled


def _env(cache_dir: Path) -> dict[str, str]:
    return {**os.environ, "NOTEBOOK_MEMO_DIR": str(cache_dir), "PYTHONPATH": str(ROOT)}


def _run(script: str, cache_dir: Path, *args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120,
                         env=_env(cache_dir))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _storage_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, StorageWarning)]


def _records_in(db: Path) -> int:
    """Count the records of an index file, read (never written) with the log beside it."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(con.execute("SELECT count(*) FROM Cache WHERE typeof(value) = 'blob'").fetchone()[0])
    finally:
        con.close()


def _set_aside_indexes(cache_dir: Path) -> list[Path]:
    """The index files set aside in a cache directory (without their logs)."""
    return sorted(p for p in cache_dir.glob("cache.db.damaged-*") if not p.name.endswith(("-wal", "-shm")))


# -- a damaged index is set aside ------------------------------------------------------------------

KERNEL = """
import json, sys, warnings
import numpy as np
from notebook_memo import memo
warnings.simplefilter("always")
class _Runs:
    n = 0
    def __memo_key__(self): return "runs"
runs = _Runs()
@memo
def f(k):
    runs.n += 1
    return {"k": k, "pad": "x" * 3000}
with warnings.catch_warnings(record=True) as caught:
    values = [f(k)["k"] for k in range(int(sys.argv[1]))] + [f(k)["k"] for k in range(int(sys.argv[1]))]
print(json.dumps({"values": values, "runs": runs.n,
                  "warnings": [str(w.message) for w in caught if w.category.__name__ == "StorageWarning"]}))
"""


@pytest.mark.parametrize("damage", ["not-a-database", "bad-pages"])
def test_a_damaged_index_is_set_aside_once_and_caching_works_again(cache_dir: Path, damage: str) -> None:
    first = _run(KERNEL, cache_dir, "40")
    assert first["runs"] == 40
    db = cache_dir / "cache.db"
    with open(db, "r+b") as handle:
        if damage == "not-a-database":
            handle.write(b"this is not SQLite" * 10)
        else:  # every page after the first (the schema stays readable)
            size = db.stat().st_size
            rng = random.Random(3)
            for offset in range(4096, size, 4096):
                handle.seek(offset)
                handle.write(bytes(rng.randrange(256) for _ in range(4096)))
    second = _run(KERNEL, cache_dir, "40")
    assert second["values"] == list(range(40)) * 2
    assert second["runs"] == 40  # recomputed once, then served from the fresh index
    assert len(second["warnings"]) == 1 and "moved to" in second["warnings"][0], second["warnings"]
    assert list(cache_dir.glob("cache.db.damaged-*"))
    third = _run(KERNEL, cache_dir, "40")
    assert third["runs"] == 0 and third["warnings"] == []


def test_two_indexes_set_aside_in_the_same_second_are_both_kept(cache_dir: Path, counter: Counter,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # A set-aside index is named by the second and the process: a second one within that second (a
    # kernel whose fresh index is damaged again at once) must not replace the first, nor leave the
    # first's log beside it, where SQLite would replay that log into the second.
    monkeypatch.setattr(time, "strftime", lambda *args: "20261206-120000")

    @memo
    def f(k: int) -> int:
        counter()
        return k

    store = f._store()
    for round_ in range(2):
        f(round_)
        store.settle()  # the record committed to this index, not left for the next
        assert (cache_dir / "cache.db-wal").exists()
        store._set_aside(sqlite3.DatabaseError(f"damaged, round {round_}"), store._ident)
    mains = _set_aside_indexes(cache_dir)
    assert len(mains) == 2, mains
    for main in mains:  # each log beside the index it came with: its first record is that round's
        assert _records_in(main) == 1, main
    assert f(5) == 5 and counter.n == 3  # and caching goes on in a fresh index


def test_a_thread_reopening_the_index_while_it_is_set_aside_opens_the_fresh_one(
        cache_dir: Path, counter: Counter, monkeypatch: pytest.MonkeyPatch) -> None:
    # The damaged index's three files move one by one. Another thread of the kernel (the background
    # one, or a thread running a memoized call) that reopened the index meanwhile had the damaged one
    # open with its log moved from under it, and left it as the store's: reads then failed.
    @memo
    def f(k: int) -> int:
        counter()
        return k

    store = f._store()
    f(0)
    store.settle()
    others: list[threading.Thread] = []
    replace = os.replace

    def replace_while_another_thread_reads(source: str, target: str) -> None:
        if not others:  # before the first file moves, another thread reads (and waits while it must)
            others.append(threading.Thread(target=lambda: store.reader))
            others[0].start()
            others[0].join(0.5)
        replace(source, target)

    monkeypatch.setattr(os, "replace", replace_while_another_thread_reads)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store._set_aside(sqlite3.DatabaseError("damaged"), store._ident)
        others[0].join()
        assert f(1) == 1 and f(1) == 1 and counter.n == 2  # computed once, then read from the fresh index
        store.settle()
    assert [str(w.message) for w in caught if "damaged" not in str(w.message)] == []
    assert _records_in(cache_dir / "cache.db") == 1  # f(1), in the fresh index


def test_a_connection_opened_as_the_index_is_set_aside_reads_the_fresh_index(cache_dir: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # SQLite opens the log and its shared memory by name at a connection's first statement, not when it
    # connects. A connection to the damaged index made just before another program set it aside (a kernel
    # whose lock on the directory lapsed, or a file system without such locks) then read the fresh
    # index's log beside the damaged index's file: a disk I/O error, or pages of the other index.
    @memo
    def f(k: int) -> int:
        return k

    store = f._store()
    for k in range(5):
        f(k)
    store.settle()
    store.close_thread_connections()  # the next statement of this thread opens its connection anew
    connect, set_aside = sqlite3.connect, []

    def connect_then_set_aside(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        con = connect(*args, **kwargs)
        if not set_aside and threading.current_thread() is threading.main_thread():
            # Before this connection's first statement, another program moves the index and begins a fresh one.
            set_aside.append(True)
            for suffix in ("", "-wal", "-shm"):
                if (cache_dir / f"cache.db{suffix}").exists():  # the log is gone when every connection closed
                    os.replace(cache_dir / f"cache.db{suffix}", cache_dir / f"cache.db.damaged-elsewhere{suffix}")
            fresh = diskcache.Cache(str(cache_dir))
            fresh.set("a", b"1")
            fresh.set("b", b"2")
            fresh.close()
        return con

    monkeypatch.setattr(sqlite3, "connect", connect_then_set_aside)
    con = connection(store.directory)
    assert set_aside
    assert con.execute("SELECT count(*) FROM Cache WHERE typeof(value) = 'blob'").fetchone()[0] == 2


def _stored(counter: Counter, count: int, pad: int) -> tuple[Any, Any]:
    """Return a memoized function counting its runs, and its store, with ``count`` records committed (each
    with ``pad`` bytes of text)."""

    @memo
    def f(k: int) -> dict[str, Any]:
        counter()
        return {"k": k, "pad": "x" * pad}

    for k in range(count):
        f(k)
    store = f._store()
    store.settle()
    return f, store


def test_a_kernel_opening_the_index_while_another_moves_it_aside_waits_for_the_moves(
        cache_dir: Path, counter: Counter, monkeypatch: pytest.MonkeyPatch) -> None:
    # The three files move one by one. A kernel that opened the index between the moves made a fresh
    # cache.db beside the damaged one's log (SQLite deleted that log, or read it as the fresh index's),
    # and the moves then took the fresh index's log away: its tables were gone, the set-aside copy
    # unreadable. Here this kernel stops after its first move, as a preempted process would.
    f, store = _stored(counter, 30, pad=100)
    replace, others = os.replace, []

    def replace_then_let_another_kernel_open(source: str, target: str) -> None:
        replace(source, target)
        if not others:  # cache.db is moved; its log and shared memory are not yet
            others.append(subprocess.Popen([sys.executable, "-c", KERNEL, "5"], stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True, env=_env(cache_dir)))
            with contextlib.suppress(subprocess.TimeoutExpired):
                others[0].wait(5)  # it opens the index now, or waits for the moves to end

    monkeypatch.setattr(os, "replace", replace_then_let_another_kernel_open)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StorageWarning)
        store._set_aside(sqlite3.DatabaseError("damaged"), store._ident)
    monkeypatch.setattr(os, "replace", replace)
    out, err = others[0].communicate(timeout=120)
    assert others[0].returncode == 0, err
    other = json.loads(out.strip().splitlines()[-1])
    assert other["runs"] == 5 and other["warnings"] == [], other
    moved = _set_aside_indexes(cache_dir)
    assert len(moved) == 1, moved
    # Each read with the log beside it: its own.
    assert (_records_in(moved[0]), _records_in(cache_dir / "cache.db")) == (30, 5)
    assert f(3)["k"] == 3 and counter.n == 31  # this kernel goes on in the fresh index


def test_a_write_through_handles_older_than_a_set_aside_leaves_the_fresh_index(
        cache_dir: Path, counter: Counter, monkeypatch: pytest.MonkeyPatch) -> None:
    # A write takes the store's handles, then commits. Another thread may meet the damage in between, set
    # the index aside and begin a fresh one: the write then meets the damage on its older handles, and
    # must set aside the file it met it in (gone already), not the fresh index that now has the name.
    @memo
    def f(k: int) -> int:
        counter()
        return k

    f(0)
    store = f._store()
    store.settle()
    store.stop_background()  # the commits here are the test's own
    older = store.writer  # this thread's connection on it: the index file as it was
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StorageWarning)
        store._set_aside(sqlite3.DatabaseError("met by another thread first"), store._ident)
    f(1)
    store.settle()  # the fresh index, with f(1)
    fresh = (cache_dir / "cache.db").stat().st_ino
    write = store._write_records

    def damaged_on_older_handles(writer: Any, items: Any, queued: bool = False) -> None:
        if writer is older:
            raise sqlite3.DatabaseError("database disk image is malformed")
        write(writer, items, queued)

    monkeypatch.setattr(store, "_write_records", damaged_on_older_handles)
    f(2)  # its record is made and queued: committed below, through the older handles
    store._commit(older, list(store._queued.items()))
    store._queued.clear()
    monkeypatch.undo()
    assert (cache_dir / "cache.db").stat().st_ino == fresh
    assert len(_set_aside_indexes(cache_dir)) == 1
    assert _records_in(cache_dir / "cache.db") == 2  # f(1), and f(2) written there instead
    assert counter.n == 3

def _damage_pages(db: Path, first: int, last: int | None = None) -> None:
    """Overwrite pages ``first`` (1-based) to ``last`` (default: the end) of an index file with random bytes."""
    size, page = db.stat().st_size, 4096
    rng = random.Random(3)
    with open(db, "r+b") as handle:
        for offset in range((first - 1) * page, size if last is None else last * page, page):
            handle.seek(offset)
            handle.write(bytes(rng.randrange(256) for _ in range(page)))


def test_damage_met_after_another_kernel_set_the_index_aside_leaves_its_fresh_index(
        cache_dir: Path, counter: Counter, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two kernels on one damaged index: the other meets the damage first, sets the index aside and
    # begins a fresh one. This kernel, still on the damaged file (it looks at the path every few
    # seconds), meets the damage next: it must reopen the fresh index, not set that one aside too.
    f, store = _stored(counter, 300, pad=3000)
    store.checkpoint(at_exit=True)  # every record in the index file itself
    store.stop_background()
    monkeypatch.setattr(local, "_REVALIDATE", 3600.0)  # this kernel does not look at the path meanwhile
    monkeypatch.setattr(local, "_BACKGROUND_CHECK", 3600.0)
    store.close_thread_connections()
    assert f(0)["k"] == 0 and counter.n == 300  # a connection of this kernel on the file, about to be damaged
    _damage_pages(cache_dir / "cache.db", 2)
    other = _run(KERNEL, cache_dir, "5")  # the other kernel: sets it aside, and stores 5 records in a fresh index
    assert other["runs"] == 5 and any("moved to" in w for w in other["warnings"]), other
    fresh = (cache_dir / "cache.db").stat().st_ino
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert f(150)["k"] == 150  # read from the damaged file: the damage is met here too
        store.settle()
    assert (cache_dir / "cache.db").stat().st_ino == fresh
    assert len(_set_aside_indexes(cache_dir)) == 1
    assert f(150)["k"] == 150 and counter.n == 301  # stored in the fresh index, beside the other kernel's
    assert _records_in(cache_dir / "cache.db") == 6
    assert not [w for w in _storage_warnings(caught) if "cannot" in w or "not being stored" in w], \
        _storage_warnings(caught)


def test_damage_only_writes_meet_is_set_aside_and_caching_resumes(cache_dir: Path) -> None:
    # Reads by key never touch the index of access times; every write does. With that index damaged,
    # every hit still read, and every result was computed but never stored, for the whole session.
    assert _run(KERNEL, cache_dir, "40")["runs"] == 40
    db = cache_dir / "cache.db"
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        root = con.execute("SELECT rootpage FROM sqlite_master WHERE name = 'Cache_access_time'").fetchone()[0]
    finally:
        con.close()
    _damage_pages(db, root, root)
    second = _run(KERNEL, cache_dir, "80")
    assert second["values"] == list(range(80)) * 2
    assert any("moved to" in w for w in second["warnings"]), second["warnings"]
    third = _run(KERNEL, cache_dir, "80")
    assert third["runs"] == 0 and third["warnings"] == [], third


SHRUNK = """
import json, os, shutil, sys, warnings
from notebook_memo import memo
warnings.simplefilter("always")
class _Runs(list):
    def __memo_key__(self): return "runs"  # what the bodies count is not what they depend on
runs = _Runs()
@memo
def f(k):
    runs.append(k)
    return {"k": k, "pad": "x" * 3000}
@memo.batch("ks", progress=False)
def g(ks):
    runs.extend(ks)
    return [{"k": k, "pad": "y" * 3000} for k in ks]
how, first_reader = sys.argv[1], sys.argv[2]
n = 1500
db = os.path.join(os.environ["NOTEBOOK_MEMO_DIR"], "cache.db")
if how == "fill":  # a kernel that stored them, and exited (its index whole in its file)
    [f(k) for k in range(n // 10)]
    shutil.copyfile(db, db + ".backup")  # a copy of the index while it was small
    print(json.dumps({"first": [f(k)["k"] for k in range(n)] + [d["k"] for d in g(list(range(n)))]}))
    sys.exit()
import sqlite3
sqlite3.connect(db, isolation_level=None).execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()  # all in the file
with warnings.catch_warnings(record=True) as caught:
    f._store().stop_background()  # this kernel writes nothing before the cut
    first = [f(k)["k"] for k in range(n)] + [d["k"] for d in g(list(range(n)))]  # read through its connections
    size, log, before = os.path.getsize(db), os.path.getsize(db + "-wal"), len(runs)
    if how == "restored":  # another program puts the old copy back, over the same file
        shutil.copyfile(db + ".backup", db)
    else:  # or cuts it short
        with open(db, "r+b") as handle:
            handle.truncate(size // int(how))
    if first_reader == "batch":
        again = [d["k"] for d in g(list(range(n)))] + [f(k)["k"] for k in range(n)]
    else:
        again = [f(k)["k"] for k in reversed(range(n))][::-1] + [d["k"] for d in g(list(range(n)))]
print(json.dumps({"first": first, "again": again, "runs": len(runs), "size": size, "log": log, "before": before}))
"""


@pytest.mark.parametrize("first_reader", ["batch", "single"])
@pytest.mark.parametrize("how", ["3", "10", "restored"])
def test_an_index_cut_short_under_a_running_kernel_is_recomputed_never_a_crash(cache_dir: Path, how: str,
                                                                               first_reader: str) -> None:
    """An index file made shorter under a running kernel (cut, or an older copy put back) is read as
    missing or damaged rows, never past its end: a read through a memory map there is a SIGBUS, which
    kills the kernel. Whichever path reads first, a batch's or a single call's."""
    assert _run(SHRUNK, cache_dir, "fill", "")["first"] == list(range(1500)) * 2
    out = _run(SHRUNK, cache_dir, how, first_reader)
    assert out["size"] > 3_000_000 > out["log"] * 10  # the rows were in the file cut, not in the log
    assert out["first"] == list(range(1500)) * 2 and out["before"] == 0  # all served
    assert out["again"] == list(range(1500)) * 2
    assert out["runs"] <= 3000  # some rows may survive the cut; none is served wrong


# -- trouble loading a valid entry is not damage ---------------------------------------------------


@pytest.mark.parametrize("error", [MemoryError("no memory"), OSError(errno.EACCES, "Permission denied"),
                                   OSError(errno.EMFILE, "Too many open files")])
def test_an_error_while_loading_a_valid_entry_keeps_it(counter: Counter, monkeypatch: pytest.MonkeyPatch,
                                                       error: BaseException) -> None:
    from notebook_memo import _serialize

    @memo
    def f() -> np.ndarray:
        counter()
        return np.arange(100_000)

    f()
    real = _serialize.open_payload

    def failing(*args: Any) -> Any:
        raise error

    monkeypatch.setattr(_serialize, "open_payload", failing)
    f._store().forget()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert f()[-1] == 99_999 and f()[-1] == 99_999
    assert counter.n == 3
    assert len(_storage_warnings(caught)) == 1 and "kept" in _storage_warnings(caught)[0]
    monkeypatch.setattr(_serialize, "open_payload", real)
    assert f.is_cached() and f()[-1] == 99_999 and counter.n == 3


NO_FILES = """
import json, os, resource, sys, warnings
import numpy as np
from notebook_memo import memo
warnings.simplefilter("always")
class _Runs:
    n = 0
    def __memo_key__(self): return "runs"
runs = _Runs()
@memo
def f():
    runs.n += 1
    return np.arange(100_000)
f(); f()
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
held = []
try:
    while True:
        held.append(os.open(os.devnull, os.O_RDONLY))
except OSError:
    pass
with warnings.catch_warnings(record=True) as caught:
    ok = int(f()[-1]) == 99_999
for fd in held:
    os.close(fd)
print(json.dumps({"ok": ok, "runs": runs.n, "cached": f.is_cached(), "again": int(f()[-1]), "after": runs.n,
                  "warnings": [str(w.message) for w in caught if w.category.__name__ == "StorageWarning"]}))
"""


def test_running_out_of_file_descriptors_keeps_the_entry(cache_dir: Path) -> None:
    out = _run(NO_FILES, cache_dir)
    assert out["ok"] and out["runs"] == 2 and out["cached"] and out["after"] == 2
    assert out["warnings"] and "kept" in out["warnings"][0]


# -- a full disk leaks nothing ---------------------------------------------------------------------

FULL_DISK = """
import json, resource, signal, sys, threading, warnings
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
import numpy as np
from notebook_memo import memo
warnings.simplefilter("ignore")
@memo
def big(k):
    return np.full(3 * 2**20, float(k))  # 24 MB: checksummed on a second thread while written
big(-1)
before = threading.active_count()
resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
values_ok = all(float(big(k)[0]) == k for k in range(30))
print(json.dumps({"ok": values_ok, "before": before, "after": threading.active_count()}))
"""


def test_a_full_disk_does_not_leak_a_thread_per_call(cache_dir: Path) -> None:
    out = _run(FULL_DISK, cache_dir)
    assert out["ok"] and out["after"] <= out["before"] + 1, out


# -- prune racing with writers, prune killed -------------------------------------------------------


def test_prune_never_deletes_an_entry_written_after_it_listed_it(counter: Counter) -> None:
    @memo
    def f(x: int) -> int:
        counter()
        return x

    f(1)
    inventory = Inventory(f._store())
    [(listed, _)] = inventory.records()
    f.refresh(1)  # another kernel overwrites the entry while prune is deciding
    assert inventory.store.delete_record(listed) is False
    assert f.is_cached(1)


def test_repair_keeps_young_unreferenced_files_and_reclaims_old_ones(cache_dir: Path) -> None:
    @memo
    def f() -> bytes:
        return bytes(200_000)

    f()
    store = f._store()
    young = cache_dir / "ab" / "cd" / ("e" * 28 + ".val")  # a writer's file, not yet in the index
    old = cache_dir / "ab" / "ce" / ("f" * 28 + ".val")
    for path in (young, old):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    store.repair()
    assert young.exists() and not old.exists()
    assert f.is_cached()


PRUNE_TARGET = """
import sys, warnings
from notebook_memo import memo
warnings.simplefilter("ignore")
@memo
def f(k):
    return bytes([k % 256]) * (70_000 if k % 2 else 100)
for k in range(int(sys.argv[1])):
    f(k)
print("{}")
"""


def test_a_prune_killed_half_way_leaves_a_usable_marked_cache(cache_dir: Path) -> None:
    rng = random.Random(5)
    for _ in range(3):
        _run(PRUNE_TARGET, cache_dir, "150")
        proc = subprocess.Popen([sys.executable, "-m", "notebook_memo", "prune", "--dir", str(cache_dir),
                                 "--older-than", "0s"], env=_env(cache_dir), stdout=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, 0.8))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert (cache_dir / "NOTEBOOK_MEMO_CACHE").exists()
        info = subprocess.run([sys.executable, "-m", "notebook_memo", "info", "--dir", str(cache_dir)],
                              capture_output=True, text=True, env=_env(cache_dir), timeout=120)
        assert info.returncode == 0, info.stderr
    check = """
import json, warnings
from notebook_memo import memo
warnings.simplefilter("always")
@memo
def f(k):
    return bytes([k % 256]) * (70_000 if k % 2 else 100)
with warnings.catch_warnings(record=True) as caught:
    ok = all(f(k) == bytes([k % 256]) * (70_000 if k % 2 else 100) for k in range(150))
print(json.dumps({"ok": ok, "warnings": [str(w.message) for w in caught if "Storage" in w.category.__name__]}))
"""
    out = _run(check, cache_dir)
    assert out["ok"] and out["warnings"] == []


# -- the exit hook ---------------------------------------------------------------------------------

DELETE_AT_EXIT = """
import shutil, sys
from notebook_memo import memo
@memo
def f():
    return 1
f(); f(); f()  # hits: access times wait for the background flush
shutil.rmtree(sys.argv[1])
print("{}")
"""


def test_the_exit_hook_never_recreates_a_deleted_cache_directory(cache_dir: Path) -> None:
    _run(DELETE_AT_EXIT, cache_dir, str(cache_dir))
    assert not cache_dir.exists()


# -- the size limit --------------------------------------------------------------------------------


def _record_bytes(cache_dir: Path) -> int:
    """The index database and every payload file on disk: what the limit promises to bound."""
    settled()
    with sqlite3.connect(str(cache_dir / "cache.db")) as db:
        # Until the log is copied back the file keeps its older, larger size. The store's background
        # thread checkpoints too, and a checkpoint asked while it does answers "busy" at once: ask again.
        for _ in range(500):
            busy = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            if not busy:
                break
            time.sleep(0.01)
        assert not busy, "the log could not be checkpointed"
    files = [p for p in cache_dir.rglob("*.val")]
    return (cache_dir / "cache.db").stat().st_size + sum(p.stat().st_size for p in files)


def test_the_size_limit_holds_when_the_least_recently_used_entries_are_small(cache_dir: Path) -> None:
    configure(size_limit=600_000)

    @memo
    def small(k: int) -> bytes:
        return bytes([k % 256]) * 500  # inside the index

    @memo
    def big(k: int) -> bytes:
        return bytes([k % 256]) * 200_000  # in a file of its own

    for k in range(800):
        small(k)
    for k in range(30):
        big(k)
    assert _record_bytes(cache_dir) <= 600_000
    assert big.is_cached(29) and not small.is_cached(0)


def test_prune_max_size_reaches_the_size_asked(cache_dir: Path) -> None:
    @memo
    def small(k: int) -> bytes:
        return bytes([k % 256]) * 1000

    for k in range(2000):
        small(k)
    out = subprocess.run([sys.executable, "-m", "notebook_memo", "prune", "--dir", str(cache_dir), "--max-size",
                          "500KB"], capture_output=True, text=True, env=_env(cache_dir), timeout=120)
    assert out.returncode == 0, out.stderr
    assert _record_bytes(cache_dir) <= 500_000


def test_a_result_larger_than_the_limit_is_returned_not_stored(counter: Counter) -> None:
    configure(size_limit=1_000_000)

    @memo
    def f(n: int) -> bytes:
        counter()
        return bytes(n)

    for k in range(5):
        f(100_000 + k)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert len(f(5_000_000)) == 5_000_000
        assert len(f(5_000_000)) == 5_000_000
    assert len(_storage_warnings(caught)) == 1 and "size limit" in _storage_warnings(caught)[0]
    assert counter.n == 7 and all(f.is_cached(100_000 + k) for k in range(5))


def _replace_index_with_a_folder(cache_dir: Path) -> None:
    """The cache directory deleted and made again by someone else, with a folder where the index was:
    opening the index now fails inside SQLite (not with an OSError). Moved away in one step rather than
    deleted file by file: a background write of the run landing meanwhile would leave rmtree a folder
    that is not empty."""
    gone = cache_dir.with_name(f"{cache_dir.name}-gone")
    while gone.exists():
        gone = gone.with_name(gone.name + "-again")
    cache_dir.rename(gone)
    (cache_dir / "cache.db").mkdir(parents=True)


@pytest.mark.parametrize("kind", ["call", "batch"])
def test_giving_a_lease_back_after_the_index_went_away_never_reaches_the_caller(cache_dir: Path,
                                                                                 kind: str) -> None:
    if kind == "batch":
        @memo.batch("xs", progress=False)
        def compute(xs: list[int]) -> list[int]:
            _replace_index_with_a_folder(cache_dir)
            return [x * 2 for x in xs]

        call: Any = lambda: compute([1, 2, 3])  # noqa: E731
        expected: Any = [2, 4, 6]
    else:
        @memo
        def compute(x: int) -> int:  # its first run takes the lease: nothing is known of its speed yet
            _replace_index_with_a_folder(cache_dir)
            return x * 2

        call, expected = (lambda: compute(21)), 42
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        assert call() == expected  # computed and returned; the lease went with the directory
