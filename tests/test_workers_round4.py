"""Workers, leases and threads, round four: a worker running another version of a module function than
its sender, a lease held by a killed child not yet reaped, and file reads of threads a body did not start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from notebook_memo import MemoWarning, memo
from notebook_memo.stores._leases import _HOST, holder_is_gone
from tests.conftest import ROOT, Counter
from tests.test_leases import _env, _run, _script, _wait_for

EDITED_MODULE = """
import concurrent.futures, importlib, multiprocessing, sys
sys.path.insert(0, {folder!r})
from notebook_memo import memo

SOURCE = "def plain(x):\\n    return x + {{n}}\\n\\ndef plainb(xs):\\n    return [x + {{n}} for x in xs]\\n"

if __name__ == "__main__":
    with open({module!r}, "w") as fh:
        fh.write(SOURCE.format(n=1))
    importlib.invalidate_caches()
    import edited_tasks
    g = memo(edited_tasks.plain)
    b = memo.batch("xs")(edited_tasks.plainb)
    with open({module!r}, "w") as fh:  # edited on disk, not reloaded here: this process runs x + 1
        fh.write(SOURCE.format(n=100))
    {send}
    print("worker", *sent)
    print("here", g(5), b([5, 6]), g.last_hit)
"""

SPAWN_POOL = """with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        sent = [pool.submit(g, 5).result(), pool.submit(b, [5, 6]).result()]"""

LOKY = """from joblib import Parallel, delayed
    sent = Parallel(n_jobs=2, backend="loky")([delayed(g)(5), delayed(b)([5, 6])])"""


def _run_script(tmp_path: Path, text: str) -> list[str]:
    script = tmp_path / "notebook.py"
    script.write_text(text)
    env = {**os.environ, "NOTEBOOK_MEMO_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_a_worker_running_an_edited_module_function_stores_nothing_under_the_sender_s_key(tmp_path: Path) -> None:
    """The module's file changed after the notebook wrapped its function: a spawned worker imports the new code,
    so its results are its own code's, never served to the notebook, which still runs the old code."""
    lines = _run_script(tmp_path, EDITED_MODULE.format(folder=str(tmp_path), module=str(tmp_path / "edited_tasks.py"),
                                                       send=SPAWN_POOL))
    assert lines == ["worker 105 [105, 106]", "here 6 [6, 7] False"]


def test_a_loky_worker_running_an_edited_module_function_stores_nothing_under_the_sender_s_key(
        tmp_path: Path) -> None:
    lines = _run_script(tmp_path, EDITED_MODULE.format(folder=str(tmp_path), module=str(tmp_path / "edited_tasks.py"),
                                                       send=LOKY))
    assert lines == ["worker 105 [105, 106]", "here 6 [6, 7] False"]


def _process_state(pid: int) -> str:
    """Return the state letter /proc gives a process (R, S, T, Z, ...)."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]


def test_a_killed_local_holder_not_yet_reaped_is_taken_over_at_once(tmp_path: Path, cache_dir: Path) -> None:
    """A holder killed while its parent (here, this test) has not yet reaped it is a zombie: it no longer exists
    as a process, though signalling its pid still succeeds."""
    script, log = _script(tmp_path), tmp_path / "log.txt"
    env = _env(cache_dir, NOTEBOOK_MEMO_LEASE="3600")  # only the dead-process rule can free it in time
    holder = subprocess.Popen([sys.executable, str(script), "slow", str(log), "8", "300"], env=env)
    try:
        _wait_for(log, "start 8")
        holder.send_signal(signal.SIGKILL)
        while _process_state(holder.pid) != "Z":
            os.sched_yield()
        waiter = _run(script, "slow", str(log), "8", "0", env=env)
        assert _process_state(holder.pid) == "Z"  # not reaped all along
    finally:
        holder.kill()
        holder.wait()
    assert waiter["result"] == {"k": 8}
    assert log.read_text().count("done 8") == 1


def test_a_stopped_or_running_local_holder_is_not_gone() -> None:
    """A holder stopped (SIGSTOP) or running exists: only a lease time frees its lease."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        assert not holder_is_gone(f"{child.pid}@{_HOST}/token#0")
        child.send_signal(signal.SIGSTOP)
        while _process_state(child.pid) != "T":
            os.sched_yield()
        assert not holder_is_gone(f"{child.pid}@{_HOST}/token#0")
        child.kill()
        while _process_state(child.pid) != "Z":
            os.sched_yield()
        assert holder_is_gone(f"{child.pid}@{_HOST}/token#0")
    finally:
        child.kill()
        child.wait()


# -- reads of threads a body did not start ----------------------------------------------------------

class _Events:
    """Two events a body waits on; never part of a key."""

    def __init__(self) -> None:
        self.reached, self.go = threading.Event(), threading.Event()

    def __memo_key__(self) -> str:
        return "events"


def _while_a_pool_thread_runs(body: Callable[[], int], meanwhile: Callable[[], None], events: _Events) -> int:
    """Run ``body`` in a ThreadPoolExecutor thread; this (the main) thread runs ``meanwhile`` while it waits."""
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(body)
        assert events.reached.wait(30)
        try:
            meanwhile()
        finally:
            events.go.set()
        return future.result(30)


def test_a_file_the_main_thread_reads_while_a_body_runs_in_a_pool_thread_is_not_the_body_s(
        tmp_path: Path, counter: Counter) -> None:
    other = tmp_path / "other.txt"
    other.write_text("v1")
    events = _Events()

    @memo
    def work(c: Counter, ev: _Events, x: int) -> int:
        c()
        ev.reached.set()
        assert ev.go.wait(30)
        return 2 * x

    assert _while_a_pool_thread_runs(lambda: work(counter, events, 21), other.read_text, events) == 42
    assert work(counter, events, 21) == 42 and counter.n == 1
    other.write_text("v2 changed")
    assert work(counter, events, 21) == 42 and counter.n == 1


def test_a_log_the_main_thread_reads_while_a_body_in_a_pool_thread_appends_to_it_leaves_it_cached(
        tmp_path: Path, counter: Counter) -> None:
    log = tmp_path / "log.txt"
    log.write_text("")
    events = _Events()

    @memo
    def work(c: Counter, ev: _Events, x: int) -> int:
        c()
        with open(log, "a") as fh:
            fh.write(f"work {x}\n")
        ev.reached.set()
        assert ev.go.wait(30)
        return 2 * x

    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        assert _while_a_pool_thread_runs(lambda: work(counter, events, 21), log.read_text, events) == 42
    assert work(counter, events, 21) == 42 and counter.n == 1


def test_a_file_read_by_a_thread_of_a_thread_a_pool_thread_s_body_starts_is_its_dependency(
        tmp_path: Path, counter: Counter) -> None:
    data = tmp_path / "data.txt"
    data.write_text("one")

    @memo
    def load(c: Counter, path: str) -> str:
        c()
        out: list[str] = []

        def nested() -> None:
            inner = threading.Thread(target=lambda: out.append(Path(path).read_text()))
            inner.start()
            inner.join(30)

        with ThreadPoolExecutor(1) as pool:
            pool.submit(nested).result(30)
        return out[0]

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(load, counter, str(data)).result(30) == "one"
        assert pool.submit(load, counter, str(data)).result(30) == "one" and counter.n == 1
        data.write_text("three")
        assert pool.submit(load, counter, str(data)).result(30) == "three" and counter.n == 2


def test_an_input_the_main_thread_rewrites_while_a_body_in_a_pool_thread_waits_is_read_as_an_input(
        tmp_path: Path, counter: Counter) -> None:
    """Not the body's write: what the file holds when the body reads it is its input, and a later change misses."""
    data = tmp_path / "data.txt"
    data.write_text("old")
    events = _Events()

    @memo
    def load(c: Counter, ev: _Events) -> str:
        c()
        ev.reached.set()
        assert ev.go.wait(30)
        return data.read_text()

    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(load, counter, events)
        assert events.reached.wait(30)
        data.write_text("A")
        events.go.set()
        assert future.result(30) == "A"
    assert load(counter, events) == "A" and counter.n == 1
    data.write_text("B")
    assert load(counter, events) == "B" and counter.n == 2
