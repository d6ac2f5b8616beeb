"""How the benchmarks time things: contenders taking turns, busy machines, fresh processes, SQL counts."""

from __future__ import annotations

import contextlib
import gc
import os
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def best_of(fn: Callable[[], Any], repeat: int = 5, number: int = 1) -> float:
    """Return the best mean seconds per call over ``repeat`` rounds of ``number`` calls."""
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return min(times)


def rotations(names: list[str], rounds: int) -> Iterator[list[str]]:
    """Yield the contenders' order for each round, rotated by one each time."""
    for turn in range(rounds):
        k = turn % len(names)
        yield names[k:] + names[:k]


def interleaved(writers: Mapping[str, Callable[[int], Any]], rounds: int = 6) -> dict[str, float]:
    """Best time of each writer when they take turns, in a rotating order, after a sync.

    Disk writeback makes write times drift and the first write after a sync slower: taking
    turns in a rotating order gives every contender the same conditions.
    """
    best = {name: float("inf") for name in writers}
    for tag, order in enumerate(rotations(list(writers), rounds), start=1):
        for name in order:
            os.sync()
            start = time.perf_counter()
            writers[name](tag)
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def round_robin(calls: Mapping[str, Callable[[], Any]], number: int, rounds: int,
                finish: Mapping[str, Callable[[], Any]] | None = None,
                setup: Mapping[str, Callable[[], Any]] | None = None) -> dict[str, float]:
    """Best mean seconds per call of each contender when they take turns, in a rotating order.

    Like ``interleaved`` for calls too short to time one at a time (and with no disk sync): each
    turn runs ``number`` calls, so every contender meets the same drift in clock and cache state.
    ``finish``: per contender, what must still be done before its turn counts as over (work a
    background thread of its own was left: done inside its time, not in the next contender's).
    ``setup``: per contender, what to do before each of its turns, untimed (switch a directory, sync
    the disk, make a new value).
    """
    best = {name: float("inf") for name in calls}
    finish, setup = finish or {}, setup or {}
    for order in rotations(list(calls), rounds):
        gc.collect()
        for name in order:
            fn = calls[name]
            if name in setup:
                setup[name]()
            start = time.perf_counter()
            for _ in range(number):
                fn()
            if name in finish:
                finish[name]()
            best[name] = min(best[name], (time.perf_counter() - start) / number)
    return best


def settle_ours(flush: bool = False) -> None:
    """Commit the results notebook_memo's stores left to their background threads (quick misses); with
    ``flush``, also the access times and hit counts they would write within a few seconds."""
    from notebook_memo.stores.local import _settle_all, open_stores

    _settle_all()
    if flush:
        for store in open_stores():
            store.flush()


def wall_and_cpu(calls: Mapping[str, Callable[[], Any]], rounds: int) -> dict[str, tuple[float, float]]:
    """Median wall and CPU seconds (``time.process_time``: every thread of this process) per call, in turns."""
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in calls}
    for order in rotations(list(calls), rounds):
        for name in order:
            gc.collect()
            wall, cpu = time.perf_counter(), time.process_time()
            calls[name]()
            samples[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {name: (statistics.median(w for w, _ in got), statistics.median(c for _, c in got))
            for name, got in samples.items()}


@contextlib.contextmanager
def busy_machine(hogs: int | None = None) -> Iterator[int]:
    """Keep every core busy with a spinning subprocess each while the block runs; yield how many."""
    count = hogs or os.cpu_count() or 1
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        time.sleep(0.2)  # let them reach the scheduler
        yield count
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


def child_env() -> dict[str, str]:
    """Return the environment for a benchmark subprocess: this checkout's package first."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def run_child(args: list[str], timeout: float = 600) -> tuple[float, str]:
    """Run a subprocess to its end; return its wall seconds (start-up included) and its stdout."""
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, env=child_env(), timeout=timeout)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])} ... failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def reported_seconds(args: list[str]) -> float:
    """Run a subprocess that prints the seconds it measured itself as its last line; return them."""
    return float(run_child(args)[1].split()[-1])


def median_in_turns(runs: Mapping[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Median of ``rounds`` results of each runner (seconds it returns), the runners taking turns."""
    got: dict[str, list[float]] = {name: [] for name in runs}
    for order in rotations(list(runs), rounds):
        for name in order:
            got[name].append(runs[name]())
    return {name: statistics.median(values) for name, values in got.items()}


class SqlCounter:
    """Count the SQL statements every SQLite connection of this process runs while it is active.

    The connections already open are found through the garbage collector (the store keeps its own,
    per thread), new ones through ``sqlite3.connect``. Statements run by triggers are not counted.

    Each connection gets one trace callback, once, and keeps it (idle when no counter is active):
    clearing or replacing a callback while another thread's statement is calling it deadlocks (the
    caller holds the GIL and waits for the connection; the statement holds the connection and waits
    for the GIL).
    """

    active: SqlCounter | None = None
    _traced: dict[int, sqlite3.Connection] = {}  # held, so an id is never reused by another connection

    def __init__(self) -> None:
        self.statements = 0  # run by the thread that entered the counter
        self.begins = 0
        self.elsewhere = 0  # run by other threads meanwhile (a store's background writes)
        self.thread = threading.get_ident()
        self._connect: Callable[..., sqlite3.Connection] = sqlite3.connect

    @staticmethod
    def _dispatch(sql: str) -> None:
        counter = SqlCounter.active
        if counter is None or sql.startswith("--"):
            return  # idle, or a trigger's body (reported as part of the statement that fired it)
        if threading.get_ident() != counter.thread:
            counter.elsewhere += 1
            return
        counter.statements += 1
        if sql.lstrip()[:5].upper() == "BEGIN":
            counter.begins += 1

    @classmethod
    def _trace(cls, con: sqlite3.Connection) -> None:
        if id(con) in cls._traced:
            return
        with contextlib.suppress(sqlite3.Error):  # closed, or owned by another thread
            con.set_trace_callback(cls._dispatch)
            cls._traced[id(con)] = con

    def __enter__(self) -> SqlCounter:
        for obj in gc.get_objects():
            if isinstance(obj, sqlite3.Connection):
                self._trace(obj)
        original = self._connect

        def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
            con = original(*args, **kwargs)
            self._trace(con)
            return con

        sqlite3.connect = connect  # type: ignore[assignment]
        SqlCounter.active = self
        return self

    def __exit__(self, *exc: object) -> None:
        SqlCounter.active = None
        sqlite3.connect = self._connect  # type: ignore[assignment]


def count_sql(fn: Callable[[], Any], calls: int) -> tuple[float, float, float]:
    """Return the SQL statements and BEGINs per call of ``fn`` on the calling thread, and the statements
    other threads ran meanwhile per call (mean over ``calls`` calls)."""
    settle_ours()  # what earlier calls left to a background thread is not counted against this one
    with SqlCounter() as counter:
        for _ in range(calls):
            fn()
        settle_ours()  # what the background thread would commit of these calls, counted here
    return counter.statements / calls, counter.begins / calls, counter.elsewhere / calls
