"""Quick results committed in groups (issue 15): the miss of a quick function leaves its write to the
store's background thread, which commits many at once. What this must never change: a result computed
here is found here at once, by a forked child, after exit, and by a worker pool's parent; a clean-up
right after a miss leaves nothing behind; trouble in a late commit is a warning, never a failed call.
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from notebook_memo import StorageWarning, memo
from tests.conftest import Counter, settled, worker_env

RUNS = Counter()  # the runs of ``square`` in this process (a forked worker counts its own)


@memo
def square(x: int) -> int:
    RUNS()
    return x * x


def _rows(cache_dir: Path) -> set[str]:
    """The record rows in the index, read with a connection of our own (as another process reads it)."""
    with sqlite3.connect(str(cache_dir / "cache.db"), timeout=30) as db:
        return {key for (key,) in db.execute("SELECT key FROM Cache WHERE mode = 16")}


def _quick_function(counter: Counter) -> Any:
    """Return a memoized ``x + 1`` counting its runs, known as quick here (its first run, which takes the
    lease and is written at once, is made and not counted)."""

    @memo
    def f(x: int) -> int:
        counter()
        return x + 1

    f(-1)
    counter.n = 0
    return f


def test_a_quick_result_reaches_the_index_by_itself(cache_dir: Path, counter: Counter) -> None:
    f = _quick_function(counter)
    assert f(1) == 2
    key = f.make_call((1,), {}).key
    deadline = time.monotonic() + 60  # a bound on a hung thread, not a timing assertion
    while key not in _rows(cache_dir):
        assert time.monotonic() < deadline, "the background thread never committed the quick result"
        time.sleep(0.01)


def test_a_read_of_a_queued_result_here_is_a_hit(cache_dir: Path, counter: Counter) -> None:
    f = _quick_function(counter)
    f._store().stop_background()  # nothing commits behind the test's back
    assert [f(1), f(2), f(1), f(2)] == [2, 3, 2, 3]
    assert counter.n == 2
    assert f.is_cached(1) and f.is_cached(2)


def test_a_process_that_exits_leaves_every_quick_result_in_the_index(cache_dir: Path) -> None:
    script = "from notebook_memo import memo\nf = memo(lambda x: x * 3)\nprint(sum(f(i) for i in range(300)))"
    subprocess.run([sys.executable, "-c", script], env=worker_env(cache_dir), check=True, timeout=120)
    assert len(_rows(cache_dir)) == 300


def test_a_forked_child_finds_the_quick_results_its_parent_computed_just_before(cache_dir: Path,
                                                                                 counter: Counter) -> None:
    f = _quick_function(counter)
    f._store().stop_background()
    assert f(1) == 2 and counter.n == 1  # queued: no thread of the parent will commit it now

    def child() -> None:
        os._exit(0 if f(1) == 2 and counter.n == 1 else 3)  # 3: the child computed it again

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(120)
    assert process.exitcode == 0


def test_a_worker_pool_s_results_are_in_the_index_when_the_pool_returns_them(cache_dir: Path) -> None:
    RUNS.n = 0
    with multiprocessing.get_context("fork").Pool(2) as pool:
        assert pool.map(square, range(40), chunksize=1) == [x * x for x in range(40)]
        pool.terminate()  # as leaving the with-block does: no exit handler of the workers runs
    assert RUNS.n == 0  # the workers computed them
    assert [square(x) for x in range(40)] == [x * x for x in range(40)]
    assert RUNS.n == 0  # every one a hit: no worker left a result for a commit that never came


def test_clear_right_after_a_quick_miss_leaves_nothing_behind(cache_dir: Path, counter: Counter) -> None:
    f = _quick_function(counter)
    assert f(1) == 2
    f.clear()
    settled()
    assert _rows(cache_dir) == set()  # no queued write lands after the clear
    assert f(1) == 2 and counter.n == 2


def test_trouble_in_a_late_commit_is_one_warning_and_the_result_stands(cache_dir: Path, counter: Counter,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from notebook_memo.stores.local import Store

    f = _quick_function(counter)
    f._store().stop_background()
    settled()  # what other tests' stores still hold is not this test's

    def failing(self: Store, writer: object, items: object, queued: bool = False) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    commit = Store._commit
    monkeypatch.setattr(Store, "_commit", failing)
    assert f(1) == 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        f._store().settle()
    assert [w.category for w in caught] == [StorageWarning], [str(w.message) for w in caught]
    assert "disk I/O error" in str(caught[0].message)
    monkeypatch.setattr(Store, "_commit", commit)
    assert f._store()._queued == {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert f(1) == 2
    assert counter.n == 2  # not stored, so computed again: never a wrong or missing answer


def test_a_forked_child_writes_its_quick_results_before_returning_them(cache_dir: Path, counter: Counter) -> None:
    f = _quick_function(counter)
    pid = os.fork()
    if pid == 0:  # the child ends as forked workers often do: os._exit, no exit handlers
        try:
            f(2), f(3), f(4)  # the first takes the lease (nothing known of the body here), the others are quick
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    assert {f.make_call((x,), {}).key for x in (2, 3, 4)} <= _rows(cache_dir)


def _queues_here(_: int) -> bool:
    from notebook_memo.stores.local import _may_queue

    return _may_queue()


@pytest.mark.parametrize("backend", ["loky", "multiprocessing"])
def test_joblib_workers_write_each_result_before_returning_it(backend: str) -> None:
    from joblib import Parallel, delayed

    assert _queues_here(0)  # this process (a kernel, a script) may leave quick results to its thread
    assert Parallel(n_jobs=2, backend=backend)(delayed(_queues_here)(i) for i in range(4)) == [False] * 4


@pytest.mark.parametrize("value", [0, 2**70, -1.5, "é" * 50, b"\x00ab", True, None, 2 - 3j])
def test_a_plain_result_is_pickled_to_the_bytes_the_general_pickler_makes(value: object,
                                                                         cache_dir: Path) -> None:
    import io

    from notebook_memo import _serialize

    stream = io.BytesIO()
    general = _serialize._Pickler(stream, protocol=5, buffer_callback=lambda _: False)
    general.by_value = frozenset()
    general.dump(value)
    payload = _serialize.dumps(value)
    assert payload.pickle == stream.getvalue() and payload.buffers == []
    assert payload.to_bytes() == payload.pickle and payload.nbytes == len(payload.pickle)

    @memo
    def same(x: int) -> object:
        return value

    assert [same(1), same(1)] == [value, value]


class _Held:
    """Something a test's body looks at that is no part of its key."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __memo_key__(self) -> str:
        return "held"


def test_what_a_background_commit_opens_is_not_read_by_a_body_running_meanwhile(tmp_path: Path,
                                                                                 counter: Counter) -> None:
    other = memo(cache_dir=str(tmp_path / "other"))(lambda x: x)
    other(-1)  # known as quick: its next result is queued
    other(1)
    store = _Held(other._store())
    data = tmp_path / "data.txt"
    data.write_text("5")

    @memo(cache_dir=str(tmp_path / "mine"))
    def body(path: str) -> int:
        counter()
        deadline = time.monotonic() + 60  # a bound on a hung thread, not a timing assertion
        while store.value._queued:  # the other store's background thread commits while this body runs
            assert time.monotonic() < deadline
            time.sleep(0.005)
        return int(Path(path).read_text())

    assert body(str(data)) == 5
    (record,) = [r for r in body.entries() if "pre" in r.header.meta()]
    assert [os.path.basename(f[0]) for f in record.header.meta()["pre"]["files"]] == ["data.txt"]
    assert body(str(data)) == 5 and counter.n == 1


def _payload_files(cache_dir: Path) -> list[Path]:
    return [path for path in cache_dir.rglob("*.val")]


@pytest.mark.parametrize("how", ["refreshed", "expired and recomputed quickly"])
def test_a_small_result_replacing_one_kept_in_a_file_deletes_the_file(cache_dir: Path, how: str) -> None:
    """The batch upsert leaves a row that names a payload file to a second statement, which reads the file's
    name first: the file is deleted once the small result replaces the row, and the small result is served."""
    import numpy as np

    @memo(ignore=["big"], ttl=0.2 if how != "refreshed" else None)
    def g(x: int, big: bool) -> Any:
        return np.arange(300_000, dtype=np.float64) if big else x

    assert len(g(1, big=True)) == 300_000
    [old] = _payload_files(cache_dir)
    if how == "refreshed":
        with memo.refreshing():
            assert g(1, big=False) == 1
    else:
        for x in range(3):
            g(100 + x, big=False)  # its last runs were quick: the next miss is left to the background thread
        time.sleep(0.3)  # past the TTL (expired rows stay in the index a while, for explain)
        assert g(1, big=False) == 1
        settled()
    assert not old.exists(), "the payload file of the replaced row was left behind"
    with sqlite3.connect(str(cache_dir / "cache.db"), timeout=30) as db:
        assert db.execute("SELECT count(*) FROM Cache WHERE filename IS NOT NULL").fetchone()[0] == 0
    g._store().forget()
    assert g(1, big=True) == 1, "the replacing small result is served (big is not in the key)"


def test_runs_starting_while_the_background_thread_looks_at_them_leave_it_running(cache_dir: Path) -> None:
    """A quick miss notes its run without the store's lock; the background thread's look for runs gone past
    the quick limit must not be broken by one noted meanwhile (a dict changed while iterated killed the
    thread: no more commits, checkpoints or late leases). Another thread's note is made here at each line
    the look runs, through a trace function, which is where a thread switch could fall."""
    from notebook_memo.stores import local

    @memo
    def f(x: int) -> int:
        return x

    f(0)
    store = f._store()
    start = time.monotonic() - 60  # long past the quick limit: each is due for a lease
    store._running.update({"k1": [start, False], "k2": [start, False]})
    noted = iter(range(3))

    def trace(frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename == local.__file__ and event == "line":
            number = next(noted, None)
            if number is not None:
                store._running[f"other{number}"] = [time.monotonic(), False]  # a run noted by another thread
        return trace

    sys.settrace(trace)
    try:
        store.lease_long_runs(time.monotonic())
    finally:
        sys.settrace(None)
    assert store._running["k1"][1] and store._running["k2"][1], "the runs past the quick limit got no lease"
    store.release_leases(["k1", "k2"])
    for key in list(store._running):
        store.run_finished(key)


def _note_while(running: Callable[[Any], bool], into: dict[str, Any], value: Any, times: int = 3) -> Any:
    """A trace function that, at each line run in the store's module where ``running(frame)``, adds a key to
    ``into`` (``times`` at most): what another thread holding ``into`` from before a swap could add there."""
    from notebook_memo.stores import local

    noted = iter(range(times))

    def trace(frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename == local.__file__ and event == "line" and running(frame):
            number = next(noted, None)
            if number is not None:
                into[f"late{number}"] = value
        return trace

    return trace


@pytest.mark.parametrize("pending", ["_pending_touch", "_pending_hits"])
def test_hits_counted_into_the_dicts_the_flush_took_leave_it_running(cache_dir: Path, pending: str) -> None:
    """The flush takes the pending access times and hit counts (a swap), then writes them: a hit that read the
    old dict before the swap adds to it after. Such late additions must not break the flush's loops."""

    @memo
    def f(x: int) -> int:
        return x

    for x in range(3):
        f(x)
    settled()
    store = f._store()
    store.flush()
    for x in range(3):
        f(x)  # hits: their access times and counts are pending
    before = getattr(store, pending)
    assert before, f"no {pending} to write"
    if pending == "_pending_touch":  # while the access times are written
        trace = _note_while(lambda frame: frame.f_code.co_name in ("_renew_access_times", "<listcomp>"), before, 0)
    else:  # while the counts are written, once taken
        trace = _note_while(lambda frame: frame.f_code.co_name == "flush" and "hits" in frame.f_locals, before, 1,
                            times=10)
    sys.settrace(trace)
    try:
        store.flush()
    finally:
        sys.settrace(None)
    assert not store._pending_touch and not store._pending_hits


def test_a_step_of_the_background_thread_that_fails_leaves_it_running(cache_dir: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever one of its steps meets, the background thread goes on: it alone commits quick results
    while the kernel is idle, checkpoints the log and takes the leases of runs that turn out slow."""
    f = _quick_function(Counter())
    store = f._store()
    failures = []

    def failing_flush() -> None:
        failures.append(1)
        raise RuntimeError("a step that fails")

    monkeypatch.setattr(store, "flush", failing_flush)
    deadline = time.monotonic() + 60  # a bound on a hung thread, not a timing assertion
    while not failures:
        assert time.monotonic() < deadline, "the background thread never flushed"
        time.sleep(0.05)
    assert f(7) == 8
    key = f.make_call((7,), {}).key
    while key not in _rows(cache_dir):
        assert store._flusher is not None and store._flusher.is_alive(), "the background thread stopped"
        assert time.monotonic() < deadline, "the background thread never committed the quick result"
        time.sleep(0.01)


@pytest.mark.parametrize("how", ["refreshed", "expired and recomputed", "deleted in a transaction"])
def test_a_result_kept_in_a_file_replaced_or_deleted_leaves_no_file_behind(cache_dir: Path, how: str) -> None:
    """diskcache removes a replaced or deleted row's file as its statement ends, which inside a transaction of
    ours is before the commit: the row was still there for the check that no row names the file, and the
    file stayed forever (a refreshed 1 GB result left 1 GB behind at each refresh)."""
    import numpy as np

    @memo(ttl=0.2 if how == "expired and recomputed" else None)
    def g(x: int) -> Any:
        return np.full(300_000, x, dtype=np.float64)

    g(1)
    [old] = _payload_files(cache_dir)
    if how == "refreshed":
        with memo.refreshing():
            g(1)
    elif how == "expired and recomputed":
        time.sleep(0.3)  # past the TTL (expired rows stay in the index a while, for explain)
        g(1)
    else:
        store = g._store()
        with store.transaction():
            assert store.delete(g.make_call((1,), {}).key)
    assert not old.exists(), "the replaced or deleted row's payload file was left behind"
    with sqlite3.connect(str(cache_dir / "cache.db"), timeout=30) as db:
        named = {name for (name,) in db.execute("SELECT filename FROM Cache WHERE filename IS NOT NULL")}
    assert {str(path.relative_to(cache_dir)) for path in _payload_files(cache_dir)} == named
    assert how == "deleted in a transaction" or g(1)[0] == 1


_SETTLE_INSIDE_A_TRANSACTION = """
import sys, threading, time
import numpy as np
from notebook_memo import configure, memo

configure(cache_dir=sys.argv[1])

@memo
def quick(i):
    return i + 1

@memo
def other(i):
    return np.full(100_000, i)  # kept in a payload file: written at once, after the queue (put -> settle)

quick(-1)
other(-1)
store = quick._store()
with store.transaction():  # what memo.batch does around a chunk's writes
    done = threading.Thread(target=quick, args=(1,))
    done.start()
    done.join()  # another thread's quick miss: queued
    while not store._settle_lock.locked():
        time.sleep(0.001)  # the background thread begins to commit the queue (after 20 ms without a miss)
    other(1)  # the chunk's next write commits the queue first
print(quick(1), other(1)[0], quick.misses, other.misses)
"""


def test_the_queue_is_committed_by_a_thread_inside_a_transaction_while_the_background_thread_commits_it(
        tmp_path: Path) -> None:
    """The background thread holds the queue's lock while it waits for the write lock; a thread inside a
    transaction of ours holds that write lock and, at its next write, commits the queue first: it must not
    wait for the background thread (each waited for the other, forever)."""
    out = subprocess.run([sys.executable, "-c", _SETTLE_INSIDE_A_TRANSACTION, str(tmp_path / "cache")],
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["2", "1", "2", "2"], out.stdout + out.stderr
