"""No hangs, no poisoned waiters: leases timed on the waiter's clock, recursion, cancellation, fork."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import diskcache
import pytest

from notebook_memo import RecursiveCall, memo
from tests.conftest import ROOT, Counter, fork_checking, worker_env, worker_script

SCRIPT = """
@memo(ignore=["seconds", "spin"])
def slow(k, seconds=0.0, spin=False):
    log.write(f"start {k} {os.getpid()}\\n")
    if spin:
        # Pure Python with a huge switch interval: the renewal thread cannot run meanwhile,
        # as with an extension that holds the GIL.
        sys.setswitchinterval(1000)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if spin == "keep-alive":
                for _ in range(20000):
                    pass
                memo.keep_alive()
                continue
            # Spins of 3 s (three lease times), each ended by a look at the log (reading it lets the renewal
            # thread run once): until the other process took the lease over, however late a busy machine started it.
            chunk = time.monotonic() + 3
            while time.monotonic() < chunk:
                pass
            if log.started(k) > 1:
                break
        sys.setswitchinterval(0.005)
    else:
        time.sleep(seconds)
    log.write(f"done {k} {os.getpid()}\\n")
    return {"k": k}


@memo(ignore=["seconds"])
async def aslow(k, seconds=0.0):
    log.write(f"astart {k} {os.getpid()}\\n")
    await asyncio.sleep(seconds)
    return {"k": k}


@memo(ttl=60)
def fresh(k):
    log.write(f"fresh {k} {os.getpid()}\\n")
    return {"k": k, "pid": os.getpid()}


mode = sys.argv[1]
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    if mode == "slow":
        result = slow(int(sys.argv[3]), seconds=float(sys.argv[4]), spin=(sys.argv[5] if len(sys.argv) > 5 else False))
    elif mode == "slow-closed":  # its stores are closed while the body runs (as a test's teardown may)
        import threading

        from notebook_memo.stores.local import close_stores, open_stores

        def started():
            if not os.path.exists(sys.argv[2]):
                return False
            with open(sys.argv[2]) as fh:
                return f"start {sys.argv[3]}" in fh.read()

        def close_when_started():
            while not started():
                time.sleep(0.01)
            close_stores([store.directory for store in open_stores()])
            log.write("closed\\n")

        threading.Thread(target=close_when_started, daemon=True).start()
        result = slow(int(sys.argv[3]), seconds=float(sys.argv[4]))
    elif mode == "aslow":
        result = asyncio.run(aslow(int(sys.argv[3]), seconds=float(sys.argv[4])))
    elif mode == "ahead":
        real = time.time
        time.time = lambda: real() + 3600  # this machine's clock is an hour ahead
        result = fresh(1)
    elif mode == "fresh":
        result = fresh(1)
# The bodies log their process id: said once, and not what these tests are about.
print("RESULT" + json.dumps({"result": result, "warnings": [str(w.message) for w in caught
                                                            if "reads its process id" not in str(w.message)]}))
"""


def _script(tmp_path: Path) -> Path:
    return worker_script(tmp_path / "script.py", SCRIPT)


_env = worker_env


def _run(script: Path, *args: str, env: dict[str, str], timeout: float = 60) -> dict[str, Any]:
    out = subprocess.run([sys.executable, str(script), *args], env=env, capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT"))
    return json.loads(line[len("RESULT"):])  # type: ignore[no-any-return]


def _wait_for(path: Path, text: str) -> None:
    deadline = time.monotonic() + 60
    while not (path.exists() and text in path.read_text()):
        assert time.monotonic() < deadline, f"{text!r} never appeared in {path}"
        time.sleep(0.02)


# -- a lease row, whoever wrote it, blocks for at most the lease time ------------------------------

@pytest.mark.parametrize("expire", [None, 10 * 365 * 86400.0], ids=["no-expiry", "far-future-expiry"])
def test_a_planted_lease_blocks_a_caller_for_at_most_the_lease_time(
        cache_dir: Path, counter: Counter, monkeypatch: pytest.MonkeyPatch, expire: float | None) -> None:
    monkeypatch.setenv("NOTEBOOK_MEMO_LEASE", "1")

    @memo
    def f(x: int, c: Counter = counter) -> int:
        c()
        return x * 2

    key = f.make_call((3,), {}).key
    cache_dir.mkdir(mode=0o700, exist_ok=True)
    f(0)  # creates the store
    with diskcache.Cache(str(cache_dir)) as raw:  # someone else, or a clock far ahead of ours
        raw.set(f"lock:{key}", "4242@elsewhere/abc#0", expire=expire)
    outcome: list[int] = []
    thread = threading.Thread(target=lambda: outcome.append(f(3)), daemon=True)
    thread.start()
    thread.join(30)
    assert outcome == [6], "the caller was still blocked by a lease nobody renews"
    assert counter.n == 2


def test_a_quick_function_waits_for_a_key_someone_else_holds_and_computes_it_under_its_own_lease(
        cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from notebook_memo import _memo

    monkeypatch.setenv("NOTEBOOK_MEMO_LEASE", "1")
    monkeypatch.setattr(_memo, "QUICK_BODY", 60.0)  # each body is quick however busy the machine is

    class Held(list):  # type: ignore[type-arg]
        """Whether each run held its key's lease; never part of a key."""

        def __memo_key__(self) -> str:
            return "held"

    held_while_running = Held()

    @memo
    def f(x: int, seen: Held = held_while_running) -> int:
        seen.append(f"lock:{f.make_call((x,), {}).key}" in f._store()._leases.held)
        return x * 2

    f(0), f(1)  # quick: its next miss looks for someone else's lease in the same read as the record
    key = f.make_call((3,), {}).key
    with diskcache.Cache(str(cache_dir)) as raw:  # someone else computes f(3), and never renews
        raw.set(f"lock:{key}", "4242@elsewhere/abc#0")
    held_while_running.clear()
    assert f(3) == 6  # waited for the lease time, took the lease over, then ran
    assert held_while_running == [True]
    assert f(4) == 8 and held_while_running == [True, False]  # no one else's lease: quick, without one


@pytest.mark.parametrize(("mode", "ready"), [("slow", "start 7"), ("slow-closed", "closed")],
                         ids=["open", "closed while running"])
def test_a_lease_that_is_renewed_is_not_taken_over(tmp_path: Path, cache_dir: Path, mode: str, ready: str) -> None:
    """Also after the holder's store was closed while the body ran: closing lets its background thread go
    only once no body is left to renew a lease for."""
    script, log = _script(tmp_path), tmp_path / "log.txt"
    env = _env(cache_dir, NOTEBOOK_MEMO_LEASE="1")
    holder = subprocess.Popen([sys.executable, str(script), mode, str(log), "7", "4"], env=env,
                              stdout=subprocess.PIPE, text=True)
    _wait_for(log, ready)
    waiter = _run(script, "slow", str(log), "7", "0", env=env)
    out, _ = holder.communicate(timeout=60)
    assert waiter["result"] == {"k": 7}
    assert log.read_text().count("start 7") == 1  # alive and renewing: nobody computed it twice
    assert json.loads(out.split("RESULT", 1)[1])["warnings"] == []


def test_a_dead_local_holder_is_taken_over_at_once(tmp_path: Path, cache_dir: Path) -> None:
    script, log = _script(tmp_path), tmp_path / "log.txt"
    env = _env(cache_dir, NOTEBOOK_MEMO_LEASE="3600")  # only the dead-process rule can free it in time
    holder = subprocess.Popen([sys.executable, str(script), "slow", str(log), "8", "300"], env=env)
    _wait_for(log, "start 8")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    waiter = _run(script, "slow", str(log), "8", "0", env=env)
    assert waiter["result"] == {"k": 8}
    assert log.read_text().count("done 8") == 1


def test_a_ttl_entry_stored_by_a_clock_ahead_is_not_served(tmp_path: Path, cache_dir: Path) -> None:
    script, log = _script(tmp_path), tmp_path / "log.txt"
    env = _env(cache_dir)
    ahead = _run(script, "ahead", str(log), env=env)
    later = _run(script, "fresh", str(log), env=env)
    assert later["result"]["pid"] != ahead["result"]["pid"]  # recomputed: its age could not be told
    assert log.read_text().count("fresh 1") == 2


# -- recursion ------------------------------------------------------------------------------------

def test_a_call_that_needs_its_own_result_raises_at_once() -> None:
    @memo
    def loop(x: int) -> int:
        return loop(x) + 1

    @memo
    def fine(n: int) -> int:
        return 1 if n <= 1 else n * fine(n - 1)

    with pytest.raises(RecursiveCall, match="same arguments"):
        loop(1)
    assert fine(5) == 120  # recursion with other arguments is plain recursion
    assert not loop.is_cached(1)


def test_an_async_call_that_awaits_itself_raises_at_once() -> None:
    @memo
    async def loop(x: int) -> int:
        return await loop(x) + 1

    async def main() -> None:
        with pytest.raises(RecursiveCall):
            await asyncio.wait_for(loop(1), 30)

    asyncio.run(main())


def test_a_per_instance_method_that_needs_its_own_result_raises() -> None:
    class Model:
        @memo.per_instance
        def score(self, x: int) -> int:
            return self.score(x)

    with pytest.raises(RecursiveCall):
        Model().score(1)


# -- async cancellation ---------------------------------------------------------------------------

def test_cancelling_one_async_caller_does_not_cancel_the_others(counter: Counter) -> None:
    @memo
    async def embed(x: int, c: Counter = counter) -> list[int]:
        c()
        await asyncio.sleep(0.3)
        return [x]

    async def main() -> list[Any]:
        first = asyncio.ensure_future(asyncio.wait_for(embed(1), 0.05))
        await asyncio.sleep(0)
        others = [asyncio.ensure_future(embed(1)) for _ in range(3)]
        return await asyncio.gather(first, *others, return_exceptions=True)

    results = asyncio.run(main())
    assert isinstance(results[0], asyncio.TimeoutError)
    assert results[1:] == [[1], [1], [1]]
    assert counter.n == 2  # the cancelled run, then one waiter took over
    assert results[1] is not results[2]


def test_async_waiters_on_a_key_computed_by_another_process_get_their_own_objects(
        tmp_path: Path, cache_dir: Path) -> None:
    script, log = _script(tmp_path), tmp_path / "log.txt"
    env = _env(cache_dir)
    holder = subprocess.Popen([sys.executable, str(script), "aslow", str(log), "5", "1.5"], env=env)
    _wait_for(log, "astart 5")
    aslow = _script_namespace(script, log)["aslow"]

    async def main() -> list[Any]:
        return await asyncio.gather(*[aslow(5) for _ in range(3)])

    results = asyncio.run(main())
    holder.wait(60)
    assert results == [{"k": 5}] * 3
    assert len({id(r) for r in results}) == 3  # each caller its own object
    assert log.read_text().count("astart 5") == 1


def _script_namespace(script: Path, log: Path) -> dict[str, Any]:
    """The subprocess's functions, defined in this process under the same keys."""
    source = script.read_text().split("mode = sys.argv[1]")[0]
    namespace: dict[str, Any] = {"__name__": "__main__"}
    argv = sys.argv
    sys.argv = ["script", "none", str(log)]
    try:
        exec(compile(source, str(script), "exec", dont_inherit=True), namespace)
    finally:
        sys.argv = argv
    return namespace


# -- a body that starves the renewal thread ---------------------------------------------------------

def _hold_then_wait(tmp_path: Path, cache_dir: Path, key: str, spin: str) -> tuple[Path, dict[str, Any]]:
    """One process spins holding the GIL (1 s leases) while another calls the same key: for 4 s keeping its lease
    alive, or else until the other has taken the lease over."""
    script, log = _script(tmp_path), tmp_path / "log.txt"
    env = _env(cache_dir, NOTEBOOK_MEMO_LEASE="1")
    seconds = "4" if spin == "keep-alive" else "120"  # "gil" spins until the other process has taken over
    holder = subprocess.Popen([sys.executable, str(script), "slow", str(log), key, seconds, spin], env=env,
                              stdout=subprocess.PIPE, text=True)
    _wait_for(log, f"start {key}")
    _run(script, "slow", str(log), key, "0", env=env)
    out, _ = holder.communicate(timeout=60)
    return log, json.loads(out.split("RESULT", 1)[1])


def test_a_lease_lost_while_the_body_holds_the_gil_is_reported(tmp_path: Path, cache_dir: Path) -> None:
    _, report = _hold_then_wait(tmp_path, cache_dir, "6", "gil")
    assert any("took over" in w and "keep_alive" in w for w in report["warnings"]), report["warnings"]


def test_keep_alive_from_the_body_keeps_the_lease(tmp_path: Path, cache_dir: Path) -> None:
    log, report = _hold_then_wait(tmp_path, cache_dir, "9", "keep-alive")
    assert log.read_text().count("start 9") == 1
    assert not report["warnings"]


# -- fork -------------------------------------------------------------------------------------------

class _FileLog:
    """Appends lines to a file from any process; not part of any key."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __memo_key__(self) -> str:
        return "log"

    def write(self, text: str) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, text.encode())
        os.close(fd)


def _wait_child(pid: int, seconds: float) -> int | None:
    """Return the child's exit status, or None (after killing it) when it hangs."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def test_a_forked_child_never_uses_its_parents_connections(cache_dir: Path) -> None:
    """SQLite's locks are not inherited: a child writing through its parent's connection could corrupt the index."""
    from notebook_memo.stores import local as _store

    @memo
    def f(x: int) -> int:
        return x + 1

    assert f(1) == 2 and f(1) == 2  # the parent has read and written through this thread's connections
    store = f._store()
    parents = (store._connection()[0], _store.connection(store.directory))
    def own_connections() -> bool:
        served = f(1) == 2 and f(2) == 3
        mine = (f._store()._connection()[0], _store.connection(store.directory))
        return served and all(a is not b for a, b in zip(mine, parents))

    assert _wait_child(fork_checking(own_connections), 60) == 0


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform != "linux", reason="forks through libc")
def test_a_child_forked_without_pythons_fork_hooks_still_opens_connections_of_its_own(cache_dir: Path) -> None:
    """A C extension's fork runs none of Python's at-fork hooks: whether a connection is this process's is asked
    of the process itself (its id), never of a value only those hooks would update."""
    import ctypes

    from notebook_memo.stores import local as _store

    @memo
    def f(x: int) -> int:
        return x + 1

    assert f(1) == 2 and f(1) == 2 and f(1) == 2
    store = f._store()
    store.stop_background()  # no thread of the parent's inside SQLite when the fork happens
    parents = (store._connection()[0], _store.connection(store.directory))
    def own_connections() -> bool:
        mine = (store._connection()[0], _store.connection(store.directory))
        return all(a is not b for a, b in zip(mine, parents))

    pid = fork_checking(own_connections, ctypes.CDLL(None, use_errno=True).fork)
    assert pid > 0
    assert _wait_child(pid, 60) == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks")
def test_forks_while_another_thread_keeps_closing_the_store_never_leave_a_child_waiting(cache_dir: Path) -> None:
    """Nothing a store closes or reopens holds a lock outside the fork gate: a child forked at any moment of it
    uses the cache at once (a lock the mark of the log header held, taken by a child, hung 2% of them)."""
    @memo
    def f(x: int) -> int:
        return x + 1

    assert f(1) == 2 and f(1) == 2
    store = f._store()
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            f(1)
            store.close()

    worker = threading.Thread(target=churn, daemon=True)
    worker.start()
    failed = []
    try:
        for _ in range(150):  # the hang it guards against took 2% of children: 150 find it 95 times in 100
            status = _wait_child(fork_checking(lambda: f(1) == 2 and f(1) == 2), 20)
            if status != 0:
                failed.append(status)
                break  # one is enough (a hung child costs the whole wait)
    finally:
        stop.set()
        worker.join(10)
    assert not failed, failed


def test_forked_children_use_the_cache_while_parent_threads_are_inside_it() -> None:
    @memo
    def square(x: int) -> list[int]:
        return [x * x] * 50

    stop = threading.Event()

    def hammer(offset: int) -> None:
        i = 0
        while not stop.is_set():
            square(offset + i % 200)  # misses (two write transactions) and hits, all the time
            square.invalidate(offset + (i * 7) % 200)
            i += 1

    threads = [threading.Thread(target=hammer, args=(k * 1000,), daemon=True) for k in range(3)]
    for t in threads:
        t.start()
    statuses = []
    try:
        for n in range(40):
            time.sleep(0.005 * (n % 5))
            # The child: the cache must just work.
            pid = fork_checking(lambda n=n: square(10**6 + n) == [(10**6 + n) ** 2] * 50 == square(10**6 + n))
            statuses.append(_wait_child(pid, 30))
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert statuses == [0] * 40, f"children that hung (None) or failed: {statuses}"



def test_a_child_forked_while_a_thread_opens_the_index_opens_it_too(cache_dir: Path) -> None:
    # A connection opens its file and runs its first statements under a lock of the process (and a lock on
    # the directory, among kernels): a child forked while another thread held it waited for it forever.
    from notebook_memo.stores import local

    @memo
    def f(x: int) -> int:
        return x + 1

    assert f(1) == 2
    store = f._store()
    store.settle()
    inside, leave = threading.Event(), threading.Event()

    def opening() -> None:
        with local._opening, local._directory_lock(store.directory, exclusive=False):
            inside.set()
            leave.wait(60)

    thread = threading.Thread(target=opening, daemon=True)
    thread.start()
    assert inside.wait(10)
    try:
        # The child's connections are its own: it opens new ones, for a hit and a miss.
        status = _wait_child(fork_checking(lambda: f(1) == 2 and f(5) == 6 and f(5) == 6), 30)
    finally:
        leave.set()
        thread.join(10)
    assert status == 0, f"the child hung (None) or failed: {status}"

def test_forked_children_use_the_cache_while_the_background_thread_checkpoints() -> None:
    from notebook_memo.stores.local import open_stores

    @memo
    def cube(x: int) -> int:
        return x**3

    cube(0)
    stop = threading.Event()

    def checkpoints() -> None:  # as the store's background thread does after writes, here without a pause
        while not stop.is_set():
            for store in open_stores():
                store._wrote_at = time.time()
                store.checkpoint()

    thread = threading.Thread(target=checkpoints, daemon=True)
    thread.start()
    statuses = []
    try:
        for n in range(60):
            cube(n)  # something to copy from the log
            # The child: SQLite must not be left locked by the parent's checkpoint.
            pid = fork_checking(lambda n=n: cube(10**6 + n) == (10**6 + n) ** 3)
            statuses.append(_wait_child(pid, 20))
    finally:
        stop.set()
        thread.join(30)
    assert statuses == [0] * 60, f"children that hung (None) or failed: {statuses}"


def test_a_forked_child_renews_the_leases_it_takes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTEBOOK_MEMO_LEASE", "1")
    log = _FileLog(tmp_path / "log.txt")

    @memo
    def work(x: int, out: _FileLog = log) -> int:
        out.write(f"start {os.getpid()}\n")
        time.sleep(4 if os.getpid() != parent else 0)
        return x + 1

    parent = os.getpid()
    work(0)  # the parent has used the cache (and started its background thread) before forking
    pid = fork_checking(lambda: work(1) == 2)
    _wait_for(tmp_path / "log.txt", f"start {pid}")
    assert work(1) == 2
    assert _wait_child(pid, 60) == 0
    assert (tmp_path / "log.txt").read_text().count("start") == 2  # work(0) here, work(1) in the child only


FORK_DURING_BATCH = """
import os, sys, threading, time
sys.path.insert(0, {root!r})
from notebook_memo import memo


class Slow:
    def __init__(self, v): self.v = v
    def __reduce__(self):
        time.sleep(0.2)  # slow to pickle: the chunk's store takes a while
        return (Slow, (self.v,))


@memo.batch("xs", batch_size=10, progress=False)
def objects(xs):
    return [Slow(x) for x in xs]


@memo
def f(x):
    return x


f(-1)  # a hit later: access times are pending when the chunk is stored
f(-1)
batch = threading.Thread(target=objects, args=(list(range(10)),))
batch.start()
time.sleep(0.5)
single = threading.Thread(target=f, args=(1,))
single.start()
time.sleep(0.2)
pid = os.fork()
if pid == 0:
    os._exit(0 if f(2) == 2 else 3)
_, status = os.waitpid(pid, 0)
batch.join()
single.join()
print("DONE", os.waitstatus_to_exitcode(status), len(objects(list(range(10)))))
"""


def test_a_fork_while_a_batch_stores_a_chunk_neither_stalls_nor_loses_writes(tmp_path: Path, cache_dir: Path) -> None:
    script = tmp_path / "fork_batch.py"
    script.write_text(FORK_DURING_BATCH.format(root=str(ROOT)))
    # A stall shows as SQLite's 60 s busy timeout; the work itself takes about 2 s.
    out = subprocess.run([sys.executable, str(script)], env=_env(cache_dir), capture_output=True, text=True,
                         timeout=45)
    assert out.returncode == 0, out.stderr
    assert "DONE 0 10" in out.stdout
