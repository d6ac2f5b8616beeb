"""A hit served from memory is served only while the index is as it was read (issue 15).

A record read once is kept in memory with the index's ``data_version`` at the time; a later hit
asks SQLite for that version (one PRAGMA) instead of the row. Any commit by another connection
(another process, another thread of ours, a raw sqlite3 client) changes it, so what others
deleted or overwrote is never served, however soon after. The settings a call reads are
compared with the last ones on every call: a variable or ``configure`` change applies at once.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sqlite3
import struct
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from notebook_memo import _config, configure, memo
from notebook_memo.hashing import content_hash, leaf_digests
from notebook_memo.stores import _walmark
from notebook_memo.stores import local as _store
from notebook_memo.stores.local import close_stores
from tests.conftest import Counter, Shell, fork_checking, run_kernel, settled

# The old reuse window let a record read less than this long ago be served without asking the index;
# made as long as each test here, so a shortcut of that kind would fail them.
LONG = 3600.0


def _db(cache_dir: Path) -> sqlite3.Connection:
    settled()  # the results computed so far are in the index, as other processes soon see them
    return sqlite3.connect(str(cache_dir / "cache.db"), timeout=30)


def test_a_row_deleted_by_a_raw_client_is_not_served_from_memory(cache_dir: Path, counter: Counter,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_store, "_REVALIDATE", LONG)

    @memo
    def double(x: int) -> int:
        counter()
        return 2 * x

    assert double(4) == 8 and double(4) == 8 and counter.n == 1  # the second is a hit, from memory
    con = _db(cache_dir)
    with con:
        con.execute("DELETE FROM Cache WHERE typeof(value) = 'blob'")
    con.close()
    assert double(4) == 8 and counter.n == 2  # gone from the index: computed again


def test_a_row_overwritten_by_another_kernel_is_read_again_at_once(shell: Shell, cache_dir: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_store, "_REVALIDATE", LONG)
    define = textwrap.dedent("""
    import os
    from notebook_memo import memo

    @memo
    def who(x):
        return (x, os.getpid())  # who computed it: not part of the key
    """)
    shell.run(define)
    mine = shell.run("who(3)")
    assert shell.run("who(3)") == mine  # a hit, kept in memory now
    out = run_kernel([define, "with memo.refreshing():\n    OUT['v'] = list(who(3))"], cache_dir)
    theirs = tuple(out["v"])
    assert theirs != mine
    assert shell.run("who(3)") == theirs


def test_a_write_by_another_thread_is_seen_by_the_next_hit(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_store, "_REVALIDATE", LONG)
    factor = [1]

    class Factor:
        def __memo_key__(self) -> str:
            return "factor"  # the same key whatever the factor: only a refresh changes the entry

    @memo
    def times(x: int, f: Factor) -> int:
        return x * factor[0]

    one = Factor()
    assert times(2, one) == 2 and times(2, one) == 2
    factor[0] = 7

    def refresh() -> None:
        times.refresh(2, one)

    worker = threading.Thread(target=refresh)
    worker.start()
    worker.join()
    assert times(2, one) == 14


def test_a_hit_of_a_row_read_before_asks_the_index_one_pragma(cache_dir: Path) -> None:
    @memo
    def inc(x: int) -> int:
        return x + 1

    inc(1)
    settled()
    inc._store().stop_background()  # its hit counts and access times, committed now and then, would move the header
    inc(1)  # read: a row read with no look at the index's data_version, which the run's lease moved since
    inc(1)  # looked at: what was read before that is read again, and is now known to be current
    seen: list[str] = []
    store = inc._store()
    con, _ = store._connection()
    con.set_trace_callback(seen.append)
    try:
        assert inc(1) == 2
    finally:
        con.set_trace_callback(None)
    assert seen == ([] if _walmark._libc is not None else ["PRAGMA data_version"])


_OTHER_KERNEL = """
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute(sys.argv[2], tuple(sys.argv[3:]))
con.close()  # the last connection to the index: SQLite removes its -wal and -shm files
"""


def _other_process(db: Path, sql: str, *params: str) -> None:
    subprocess.run([sys.executable, "-c", _OTHER_KERNEL, str(db), sql, *params], check=True, timeout=60)


def test_a_row_deleted_after_the_index_files_were_made_anew_is_not_served_from_memory(
        cache_dir: Path, counter: Counter) -> None:
    """The last connection to an index removes its shared-memory file and the next one makes a new one: records
    kept in memory from before are served only while the index, as it is now, says nothing changed."""
    @memo
    def double(x: int) -> int:
        counter()
        return 2 * x

    assert double(4) == 8 and double(4) == 8 and double(4) == 8
    store = double._store()
    db, shm = cache_dir / "cache.db", cache_dir / "cache.db-shm"
    before = os.stat(shm).st_ino
    store.stop_background()  # its thread closes its connections as it ends
    store.close_thread_connections()
    gc.collect()  # no connection of ours left open (a thread's may wait for the collector)
    _other_process(db, "UPDATE Cache SET access_time = access_time WHERE 0")  # another kernel comes and goes
    assert not shm.exists() or os.stat(shm).st_ino != before  # its close removed the file
    runs = counter.n
    assert double(4) == 8 and double(4) == 8 and counter.n == runs  # read again through a new connection
    _other_process(db, "DELETE FROM Cache WHERE key = ?", double.make_call((4,), {}).key)
    assert double(4) == 8 and counter.n == runs + 1  # deleted before this call: computed again


_LOCK_HOLDER = """
import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDWR)
answer = fcntl.fcntl(fd, fcntl.F_GETLK, struct.pack("=hhxxxxqqixxxx", fcntl.F_WRLCK, 0, 128, 1, 0))
kind, _, _, _, pid = struct.unpack("=hhxxxxqqixxxx", answer)
print(pid if kind != fcntl.F_UNLCK else 0)
"""


def _dms_holder(shm: Path) -> int:
    """The process another process sees holding the lock SQLite keeps on a wal-index while it uses it (0: none)."""
    done = subprocess.run([sys.executable, "-c", _LOCK_HOLDER, str(shm)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def _read_four_times() -> Any:
    """Return a memoized ``inc`` whose result for 1 was stored and read back (the index and its files open)."""
    @memo
    def inc(x: int) -> int:
        return x + 1

    for _ in range(4):
        inc(1)
    return inc


def _descriptors_of(path: Path) -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}").startswith(str(path))
    return count


@pytest.mark.skipif(sys.platform != "linux" or struct.calcsize("P") != 8, reason="64-bit Linux locks")
def test_closing_and_using_a_store_again_never_drops_the_locks_sqlite_holds_on_the_index(cache_dir: Path) -> None:
    """Closing any descriptor of a file drops every POSIX lock the process holds on it: a descriptor of the
    index's shared memory closed while a connection of ours used it would let other processes see it unused and
    rebuild it under that connection (a SIGBUS here) and fail commits ("locking protocol"). Closing and using a
    store again, with another thread's connection open all along, leaves SQLite's lock in place."""
    @memo
    def inc(x: int) -> int:
        return x + 1

    for _ in range(4):
        inc(1)
    store = inc._store()
    shm = cache_dir / "cache.db-shm"
    reading, finished = threading.Event(), threading.Event()

    def reader() -> None:  # a thread of ours whose connection stays open
        inc(1)
        inc(1)
        reading.set()
        finished.wait(60)

    worker = threading.Thread(target=reader)
    worker.start()
    try:
        assert reading.wait(60)
        assert _dms_holder(shm) == os.getpid()
        held = _descriptors_of(shm)
        for _ in range(200):
            store.close()
            inc(1)
            inc(1)
        assert _dms_holder(shm) == os.getpid()
        assert _descriptors_of(shm) <= held + 1
    finally:
        finished.set()
        worker.join(60)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="reads the open files from /proc (Linux)")
def test_the_index_files_no_connection_uses_are_let_go(cache_dir: Path) -> None:
    inc = _read_four_times()
    assert _descriptors_of(cache_dir) > 0
    close_stores([inc._store().directory])
    gc.collect()  # the connections of threads that ended go with a collection
    assert _descriptors_of(cache_dir) == 0


# -- the wal-index header, read without SQL (see stores/_walmark.py) ---------------------------------------

_linux_views = pytest.mark.skipif(_walmark._libc is None, reason="the header is read through a mapping on Linux only")


def _statements_of_hits(f: Any, *args: Any) -> list[str]:
    seen: list[str] = []
    con, _ = f._store()._connection()
    con.set_trace_callback(seen.append)
    try:
        for _ in range(3):
            f(*args)
    finally:
        con.set_trace_callback(None)
    return seen


def _warm(f: Any, *args: Any) -> None:
    """Call ``f`` until its rows are read from memory, and hold off the store's own commits from then on."""
    for _ in range(4):
        f(*args)
    settled()
    f._store().stop_background()  # its hit counts and access times would move the header now and then
    for _ in range(2):
        f(*args)


def _warm_double(counter: Counter) -> Any:
    """Return a memoized ``double`` (counted) whose row for 1 is read from memory, the store's commits held off."""
    @memo
    def double(x: int) -> int:
        counter()
        return 2 * x

    _warm(double, 1)
    return double


def _views_of(shm: Path) -> int:
    """Our own one-page mappings of the wal-index (SQLite maps it in regions of 32 KiB)."""
    count = 0
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and fields[5].strip() in (str(shm), f"{shm} (deleted)") and int(fields[2], 16) == 0:
                start, end = (int(part, 16) for part in fields[0].split("-"))
                count += end - start < 32768
    return count


@_linux_views
def test_a_hit_after_a_commit_by_another_process_asks_the_index_again_and_then_runs_no_sql(
        cache_dir: Path, counter: Counter) -> None:
    @memo
    def double(x: int) -> int:
        counter()
        return 2 * x

    _warm(double, 4)
    assert _statements_of_hits(double, 4) == []  # read before, the header as it was: no statement at all
    _other_process(cache_dir / "cache.db", "UPDATE Cache SET access_time = access_time + 1")  # a commit
    seen = _statements_of_hits(double, 4)
    assert seen[0] == "PRAGMA data_version" and any(s.startswith("SELECT") for s in seen), seen  # read again
    assert _statements_of_hits(double, 4) == []
    _other_process(cache_dir / "cache.db", "DELETE FROM Cache WHERE key = ?", double.make_call((4,), {}).key)
    runs = counter.n
    assert double(4) == 8 and counter.n == runs + 1


_TORN_COMMIT = """
import mmap, os, signal, sqlite3, sys
db, key = sys.argv[1], sys.argv[2]
con = sqlite3.connect(db, isolation_level=None)
con.execute("SELECT count(*) FROM Cache").fetchall()
with open(db + "-shm", "r+b") as shm:
    memory = mmap.mmap(shm.fileno(), 4096)
    first = memory[:48]
    assert con.execute("DELETE FROM Cache WHERE key = ?", (key,)).rowcount == 1
    memory[:48] = first  # as a kill between SQLite's two copies of the header leaves them
    os.kill(os.getpid(), signal.SIGKILL)
"""


@_linux_views
def test_a_commit_whose_writer_died_between_the_two_copies_of_the_header_is_seen(cache_dir: Path,
                                                                                 counter: Counter) -> None:
    """SQLite writes the header's second copy, then its first: a writer killed (kill -9, the OOM killer) between
    them leaves a commit every SQLite reader sees (the copies differ, so it rebuilds the header from the log)
    while the first copy reads as before."""
    @memo
    def double(x: int) -> int:
        counter()
        return 2 * x

    _warm(double, 4)
    assert _statements_of_hits(double, 4) == []
    done = subprocess.run([sys.executable, "-c", _TORN_COMMIT, str(cache_dir / "cache.db"),
                           double.make_call((4,), {}).key], capture_output=True, text=True, timeout=60)
    assert done.returncode == -9, done.stderr
    runs = counter.n
    assert double(4) == 8 and counter.n == runs + 1  # deleted by that commit: computed again
    _statements_of_hits(double, 4)  # the header settled again (SQLite rebuilt it): one look at the index
    assert _statements_of_hits(double, 4) == [] and counter.n == runs + 1  # then from memory again


_EMPTY_LOG = "sqlite3.connect(db, isolation_level=None).execute('PRAGMA wal_checkpoint(TRUNCATE)').fetchall()"
# What a checkpoint killed between the header's two copies leaves: copy 1 differs (here, one byte of its salt).
_TORN = "fd = os.open(db + '-shm', os.O_RDWR); m = mmap.mmap(fd, 4096); m[48 + 32] = (m[48 + 32] + 1) & 255"
_RECOVER = "sqlite3.connect(db).execute('SELECT count(*) FROM Cache').fetchone()"  # SQLite rebuilds the header


def _in_other_process(db: Path, *code: str) -> None:
    for step in code:
        subprocess.run([sys.executable, "-c", f"import mmap, os, sqlite3, sys\ndb = sys.argv[1]\n{step}", str(db)],
                       check=True, timeout=60)


@_linux_views
def test_a_header_sqlite_rebuilt_from_an_empty_log_is_never_kept(cache_dir: Path, counter: Counter) -> None:
    """SQLite's recovery rebuilds the header from the log: from an empty one, always the same bytes (change counter
    0), whatever the index holds. Kept, such a header would read as before after the index had changed and been
    recovered again, and a row deleted in between would be served from memory."""
    double = _warm_double(counter)
    store, db = double._store(), cache_dir / "cache.db"
    _in_other_process(db, _EMPTY_LOG, _TORN, _RECOVER)
    for _ in range(3):
        assert double(1) == 2
    assert _statements_of_hits(double, 1) == ["PRAGMA data_version"] * 3  # nothing kept to compare with
    _other_process(db, "DELETE FROM Cache WHERE key = ?", double.make_call((1,), {}).key)
    assert store.get("a key never stored") is None  # a read on this connection, past the delete
    _in_other_process(db, _EMPTY_LOG, _TORN, _RECOVER)  # the same header bytes as after the first recovery
    runs = counter.n
    assert double(1) == 2 and counter.n == runs + 1  # deleted: computed again


_CLIENT = "con = sqlite3.connect(sys.argv[1], isolation_level=None)\nfor line in sys.stdin:\n" \
          "    print(con.execute(line).fetchall(), flush=True)\n"


@_linux_views
def test_a_header_of_the_log_begun_after_such_a_rebuild_is_never_kept(cache_dir: Path, counter: Counter) -> None:
    """A rebuild from an empty log leaves the salts 0, and a writer that has restarted a log before keeps them when
    it begins the next: its commits make headers that depend on the bytes it writes, not on what the index holds.
    The same first commit after two such rebuilds, around a delete, made the same settled header."""
    double = _warm_double(counter)
    store, db = double._store(), cache_dir / "cache.db"
    _in_other_process(db, "c = sqlite3.connect(db, isolation_level=None); c.execute('CREATE TABLE side (v)'); "
                          "c.execute('INSERT INTO side VALUES (1)')")
    clients = []

    def restarted_writer() -> Any:  # another kernel's connection, which has restarted the log once
        client = subprocess.Popen([sys.executable, "-c", "import sqlite3, sys\n" + _CLIENT, str(db)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        clients.append(client)
        ask(client, "PRAGMA wal_checkpoint(TRUNCATE)")
        return client

    def ask(client: Any, sql: str) -> str:
        client.stdin.write(sql + "\n")
        client.stdin.flush()
        return str(client.stdout.readline())

    try:
        first = restarted_writer()
        _in_other_process(db, _EMPTY_LOG, _TORN, _RECOVER)
        ask(first, "UPDATE side SET v = 2")
        for _ in range(3):
            assert double(1) == 2
        assert _statements_of_hits(double, 1) == ["PRAGMA data_version"] * 3  # salts 0: nothing kept
        _other_process(db, "DELETE FROM Cache WHERE key = ?", double.make_call((1,), {}).key)
        _other_process(db, "UPDATE side SET v = 1")
        assert store.get("a key never stored") is None  # a read on this connection, past the delete
        second = restarted_writer()
        _in_other_process(db, _EMPTY_LOG, _TORN, _RECOVER)
        ask(second, "UPDATE side SET v = 2")  # the same frame, into a log with the same salts
        runs = counter.n
        assert double(1) == 2 and counter.n == runs + 1  # deleted: computed again
    finally:
        for client in clients:
            assert client.stdin is not None
            client.stdin.close()
            client.wait(60)


@_linux_views
def test_no_view_is_made_while_the_process_maps_another_wal_index_of_the_directory(
        cache_dir: Path, counter: Counter) -> None:
    """A connection kept on an index set aside (or replaced) shows a second wal-index of the directory: which one
    is the new connection's cannot be told from the names alone, so no view is made, and every hit asks SQLite."""
    @memo
    def double(x: int) -> int:
        counter()
        return 2 * x

    double(4)
    close_stores([double._store().directory])
    aside = sqlite3.connect(str(cache_dir / "cache.db.damaged-20260101-1"), isolation_level=None)
    try:
        aside.execute("PRAGMA journal_mode=WAL")
        aside.execute("CREATE TABLE IF NOT EXISTS t (a)")
        aside.execute("SELECT * FROM t").fetchall()  # its wal-index is mapped now
        for _ in range(3):
            double(4)
        assert double._store()._connection()[1].view is None
        assert _statements_of_hits(double, 4) == ["PRAGMA data_version"] * 3
        _other_process(cache_dir / "cache.db", "DELETE FROM Cache WHERE key = ?", double.make_call((4,), {}).key)
        runs = counter.n
        assert double(4) == 8 and counter.n == runs + 1
    finally:
        aside.close()
    store = double._store()
    con = store._connection()[0]
    index = os.path.join(store.directory, "cache.db")
    assert _walmark.header_view(con, index, store._ident) is not None  # the only one again
    assert _walmark.header_view(con, index, (0, 0)) is None  # not the index file the store opened


@_linux_views
def test_a_view_of_the_header_is_let_go_when_nothing_holds_it(cache_dir: Path) -> None:
    inc = _read_four_times()
    shm = cache_dir / "cache.db-shm"
    assert _views_of(shm) == 1
    for _ in range(50):
        inc._store().close()
        for _ in range(3):
            inc(1)
    gc.collect()
    assert _views_of(shm) == 1  # one for this thread's connection, not one per connection it had
    close_stores([inc._store().directory])
    gc.collect()
    assert _views_of(shm) == 0


def test_a_hit_asked_inside_a_transaction_pairs_no_header_with_its_snapshots_version(
        cache_dir: Path, counter: Counter) -> None:
    """Inside a transaction on the connection, data_version is its snapshot's, older than the header read just
    before: kept as a pair, the header would go on matching after the transaction ends, and a row deleted
    meanwhile would be served from memory for good."""
    @memo
    def double(x: int) -> int:
        counter()
        return 2 * x

    for _ in range(4):
        double(1)
        double(2)
    con, _ = double._store()._connection()
    con.execute("BEGIN")
    con.execute("SELECT count(*) FROM Cache").fetchone()  # the snapshot starts here
    _other_process(cache_dir / "cache.db", "DELETE FROM Cache WHERE key = ?", double.make_call((1,), {}).key)
    assert double(2) == 4  # a hit inside the snapshot
    con.execute("ROLLBACK")
    runs = counter.n
    assert double(1) == 2 and counter.n == runs + 1  # deleted before the snapshot ended: computed again


def test_rows_read_inside_a_transaction_rolled_back_are_not_served_from_memory(cache_dir: Path,
                                                                              counter: Counter) -> None:
    double = _warm_double(counter)  # and no commit of the store's own from here on
    store = double._store()
    assert store._hot and store._hot_version[0] is store._connection()[1]  # reads now go to memory
    with pytest.raises(RuntimeError), store.transaction():
        assert double(5) == 10 and double(5) == 10 and counter.n == 2  # written, then read back, inside
        raise RuntimeError("the transaction is rolled back")
    settled()
    assert double(5) == 10 and counter.n == 3  # nothing of it was committed: computed again


@_linux_views
def test_a_forked_child_reads_its_own_connections_header(cache_dir: Path, counter: Counter) -> None:
    """The child inherits the parent's view and records in memory; its own connection makes its own, and what
    another process deletes after the fork is computed again in the child."""
    @memo
    def double(x: int) -> int:
        counter()
        return 2 * x

    _warm(double, 4)
    assert _statements_of_hits(double, 4) == []  # the parent's hits, from memory
    key = double.make_call((4,), {}).key
    go, went = os.pipe()
    ready, readied = os.pipe()

    def in_the_child() -> bool:
        os.close(went)
        os.close(ready)
        runs = counter.n
        served = double(4) == 8 and double(4) == 8 and counter.n == runs
        os.write(readied, b"x")
        os.read(go, 1)  # the row is deleted now
        return served and double(4) == 8 and counter.n == runs + 1

    pid = fork_checking(in_the_child)
    os.close(go)
    os.close(readied)
    try:
        assert os.read(ready, 1) == b"x"  # the child has read through its own connection
        _other_process(cache_dir / "cache.db", "DELETE FROM Cache WHERE key = ?", key)
    finally:
        os.write(went, b"x")
        os.close(went)
        os.close(ready)
        _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    _other_process(cache_dir / "cache.db", "DELETE FROM Cache WHERE key = ?", key)  # the child wrote it again
    runs = counter.n
    assert double(4) == 8 and counter.n == runs + 1  # and in the parent


@_linux_views
@pytest.mark.parametrize("how", ["a link pointed elsewhere", "the directory renamed and another put in its place"])
def test_a_connection_opened_while_the_directory_led_to_another_index_gets_no_view_of_its_index(
        tmp_path: Path, counter: Counter, how: str) -> None:
    """A thread opens its connection while the cache directory's path leads to another index, and the path leads
    back before its first hit: the view must be of the index the connection reads, not the one the path leads
    to now (whose header does not move when rows of the other are deleted)."""
    first, second, link = tmp_path / "first", tmp_path / "second", tmp_path / "cache"
    first.mkdir()
    second.mkdir()
    if how.startswith("a link"):
        link.symlink_to(first)
    subprocess.run([sys.executable, "-c", "import sys; from notebook_memo.stores.local import get_store; "
                    "get_store(sys.argv[1], 2**30).writer", str(second)], check=True, timeout=60)
    configure(cache_dir=str(link if how.startswith("a link") else first))

    @memo
    def double(x: int) -> int:
        counter()
        return 2 * x

    _warm(double, 1)  # this thread's connection, and its view, are of the first index
    store = double._store()

    def point(to: Path) -> None:
        if how.startswith("a link"):
            link.with_suffix(".new").symlink_to(to)
            os.replace(link.with_suffix(".new"), link)
        elif to == second:  # the first index moves aside (its connections go on reading it), the second comes
            first.rename(tmp_path / "aside")
            second.rename(first)
        else:
            first.rename(second)
            (tmp_path / "aside").rename(first)

    steps: list[Any] = []
    answers: list[Any] = []

    def worker() -> None:  # one thread, driven step by step (a pool's)
        while (step := steps.pop(0) if steps else threading.Event().wait(0.01)) is not None:
            if callable(step):
                answers.append(step())

    def run(step: Any) -> Any:
        steps.append(step)
        while not answers:
            threading.Event().wait(0.01)
        return answers.pop()

    def hits() -> int:
        before = counter.n
        for _ in range(3):
            double(7)
        return counter.n - before

    def opened() -> None:
        with store.transaction():  # what a memo.batch chunk does first: the thread's connection opens
            pass

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        point(second)
        run(opened)
        point(first)
        # Computed once, into the index the connection reads: through a link, the store's own (each connection
        # opens the index in the folder the link named when the store opened: its view is of that index); in a
        # directory replaced by another, the second, whose header is not the one the path leads to now (no view).
        read = first if how.startswith("a link") else second
        assert run(hits) == 1
        view = run(lambda: store._connection()[1].view)
        assert (view is None) is (read == second)
        _other_process(read / "cache.db", "DELETE FROM Cache WHERE key = ?", double.make_call((7,), {}).key)
        assert run(hits) == 1  # deleted there: computed again
        assert (run(lambda: store._connection()[1].view) is None) is (read == second)
    finally:
        steps.append(None)
        thread.join(60)


def test_every_statement_the_library_runs_is_run_to_its_end() -> None:
    """A statement left unfinished keeps a read of an older index open on its connection (in a traceback IPython
    keeps, a comprehension's cursor stays alive): a hit would pair its old data_version with the header as it is
    now. Every statement's result is fetched where it is run, or not kept at all. A user's database read by its rows
    (_databases.py) is read through a connection of its own, closed as the read ends, its rows streamed."""
    import ast

    import notebook_memo

    unfinished = []
    for path in Path(notebook_memo.__file__).parent.rglob("*.py"):
        if path.name == "_databases.py":
            continue
        tree = ast.parse(path.read_text())
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("execute", "executemany")):
                continue
            if ast.unparse(node.func.value).endswith("kc"):
                continue  # a Jupyter kernel client's execute, not SQL
            parent = parents[node]
            if isinstance(parent, ast.Expr) or (isinstance(parent, ast.Attribute) and parent.attr == "rowcount") or (
                    isinstance(parent, ast.Attribute) and parent.attr in ("fetchone", "fetchall")
                    and isinstance(parents[parent], ast.Call)):
                continue
            unfinished.append(f"{path.name}:{node.lineno}")
    assert unfinished == []


# -- the settings a call reads ----------------------------------------------------------------------------


def test_variables_and_configure_changed_between_calls_apply_to_the_next_call(
        cache_dir: Path, tmp_path: Path, counter: Counter, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    @memo
    def square(x: int) -> int:
        counter()
        return x * x

    assert square(3) == 9 and square(3) == 9 and counter.n == 1
    monkeypatch.setenv(_config.ENV_DISABLE, "1")
    assert square(3) == 9 and counter.n == 2  # caching off: the body runs
    monkeypatch.delenv(_config.ENV_DISABLE)
    assert square(3) == 9 and counter.n == 2
    monkeypatch.setenv(_config.ENV_SECRET, "s3cret")
    assert square(3) == 9 and counter.n == 3  # the unsigned entry is not this secret's
    assert square(3) == 9 and counter.n == 3
    monkeypatch.delenv(_config.ENV_SECRET)
    monkeypatch.setenv(_config.ENV_DIR, str(tmp_path / "elsewhere"))
    assert square(3) == 9 and counter.n == 4  # another directory
    assert (tmp_path / "elsewhere" / "cache.db").exists()
    monkeypatch.setenv(_config.ENV_VERBOSE, "1")
    capsys.readouterr()
    assert square(3) == 9 and counter.n == 4
    assert "from cache" in capsys.readouterr().out
    monkeypatch.delenv(_config.ENV_VERBOSE)
    configure(cache_dir=str(tmp_path / "configured"))
    assert square(3) == 9 and counter.n == 5
    _config.settings.__dict__["disabled"] = True  # however a setting is changed (a fixture restores them so)
    assert square(3) == 9 and counter.n == 6


# -- keys of plain arguments ------------------------------------------------------------------------------

PLAIN = [0, 1, -1, 255, 256, -129, 2**70, True, False, None, 0.0, -0.0, 1.5, float("nan"), float("inf"), 1 + 2j,
         "", "abc", "é\u2603", "\ud800"]


def test_plain_arguments_get_the_digests_of_content_hash() -> None:
    bound = [(f"p{i}", value) for i, value in enumerate(PLAIN)]
    assert leaf_digests(bound) == {name: content_hash(value) for name, value in bound}
    assert len(set(leaf_digests(bound).values())) == len(PLAIN)  # True is not 1, -0.0 is not 0.0


@pytest.mark.parametrize("other", [b"x", (1,), [1], {"a": 1}, type("S", (str,), {})("abc")])
def test_a_value_that_is_not_a_plain_leaf_takes_the_general_path(other: object) -> None:
    assert leaf_digests([("a", 1), ("b", other)]) is None
