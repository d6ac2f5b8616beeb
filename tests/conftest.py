"""Shared fixtures: a real IPython shell, a fresh cache directory, restarted 'kernels'."""

from __future__ import annotations

import faulthandler
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

import notebook_memo
from notebook_memo import _cells, _config
from notebook_memo.stores.local import close_stores, open_stores

ROOT = Path(__file__).resolve().parent.parent
# Seconds a cell of a notebook run by a real kernel may take before it is interrupted: well under the
# tests' own limit, so that a stuck cell fails with the stack it was stuck in rather than with the timeout.
CELL_TIMEOUT = 120
_IN_MEMORY_HISTORY = Config({"HistoryManager": {"enabled": False}})


# The suite runs under the open-file limit many machines set by default, whatever this one allows: a test that
# leaves files open (a store it never closed) fails here, soon, rather than near the end on a machine with less.
FILE_LIMIT = 1024
# A run that goes on past this has hung (it takes about 10 minutes on 2 cores, two workers): every thread's stack is
# printed and the run ends, where otherwise only CI's own time limit would end it, silently.
HUNG_AFTER_S = float(os.environ.get("NOTEBOOK_MEMO_TEST_HUNG_AFTER_S", 45 * 60))


def pytest_configure(config: pytest.Config) -> None:
    try:
        import resource
    except ImportError:  # not on POSIX
        pass
    else:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY or soft > FILE_LIMIT:
            resource.setrlimit(resource.RLIMIT_NOFILE, (FILE_LIMIT, hard))
    _Watchdog.start()


class _Watchdog:
    """faulthandler's one timer, set for the whole run: it prints every stack and ends the run when it fires."""

    terminal: Any = None
    deadline = 0.0

    @classmethod
    def start(cls) -> None:
        # Capture is suspended while plugins are configured: descriptor 2 is the terminal's (or CI's log).
        cls.terminal = os.fdopen(os.dup(2), "w")
        cls.deadline = time.monotonic() + HUNG_AFTER_S
        cls.arm()

    @classmethod
    def arm(cls) -> None:
        if cls.terminal is not None:
            faulthandler.dump_traceback_later(max(cls.deadline - time.monotonic(), 1.0), exit=True, file=cls.terminal)

    @classmethod
    def stop(cls) -> None:
        faulthandler.cancel_dump_traceback_later()
        if cls.terminal is not None:
            cls.terminal.close()
            cls.terminal = None


@pytest.hookimpl(trylast=True)
def pytest_exception_interact() -> None:
    """pytest's own faulthandler plugin cancels the watchdog at every failure (it is the same timer): armed again."""
    _Watchdog.arm()


def pytest_unconfigure(config: pytest.Config) -> None:
    _Watchdog.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the tests marked ``gpu`` where torch sees no CUDA device, saying so."""
    marked = [item for item in items if item.get_closest_marker("gpu")]
    if not marked:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device: torch.cuda.is_available() is False here")
    for item in marked:
        item.add_marker(skip)


def _join_the_test_s_threads(before: set[threading.Thread]) -> None:
    """Fail a test that leaves a thread of its own running (one whose target the tests define): left behind,
    such a thread goes on calling memoized functions in the next tests, under their settings."""
    left = [t for t in threading.enumerate() if t not in before and t.is_alive() and
            getattr(getattr(t, "_target", None), "__module__", "").startswith(("test_", "tests.", "conftest"))]
    for thread in left:
        thread.join(30)
    running = [thread.name for thread in left if thread.is_alive()]
    if running:
        pytest.fail(f"the test left threads of its own running: {running}; stop them before it ends", pytrace=False)


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own cache directory and default settings."""
    directory = tmp_path / "cache"
    monkeypatch.setenv(_config.ENV_DIR, str(directory))
    for name in (_config.ENV_DISABLE, _config.ENV_SECRET, _config.ENV_SIZE_LIMIT, _config.ENV_REMOTE,
                 _config.ENV_REMOTE_READ_ONLY):
        monkeypatch.delenv(name, raising=False)
    saved = _config.Settings(**vars(_config.settings))
    _config._warned.clear()
    opened_before = {store.directory for store in open_stores()}
    threads_before = set(threading.enumerate())
    yield directory
    _join_the_test_s_threads(threads_before)
    _config.settings.__dict__.update(vars(saved))
    # The suite opens a few thousand cache directories in one process: each test lets its own go, or
    # their index files would pass the open-file limit (and their threads pile up) before the end.
    close_stores([store.directory for store in open_stores() if store.directory not in opened_before])


def _quick_reset(ip: InteractiveShell) -> None:
    """``ip.reset(new_session=True)`` without the full garbage collection its display hook runs: with torch,
    pandas and dask loaded, a worker of the suite holds some 300,000 objects, and that collection, twice
    per test, was the largest part of the shell tests' time. The young generations are still collected,
    which is where a test's own cycles are."""
    import gc

    full = gc.collect
    gc.collect = lambda generation=1: full(min(generation, 1))  # type: ignore[assignment]
    try:
        ip.reset(new_session=True)
    finally:
        gc.collect = full  # type: ignore[assignment]


class Shell:
    """A real IPython InteractiveShell that fails the test when a cell raises."""

    def __init__(self) -> None:
        # The history of the tests' cells is kept in memory (In, _i... work as in a notebook), not written to the
        # user's history database, which the suite's workers and kernels would otherwise all write at once.
        self.ip = InteractiveShell.instance(config=_IN_MEMORY_HISTORY)
        _quick_reset(self.ip)
        _cells._cells.clear()  # a new session: the cells an earlier test ran are not this one's

    def run(self, source: str) -> Any:
        result = self.ip.run_cell(textwrap.dedent(source), store_history=True)
        if result.error_before_exec or result.error_in_exec:
            raise AssertionError(f"cell failed: {result.error_before_exec or result.error_in_exec!r}")
        return result.result

    def run_raw(self, source: str) -> Any:
        return self.ip.run_cell(textwrap.dedent(source), store_history=True)

    def __getitem__(self, name: str) -> Any:
        return self.ip.user_ns[name]


@pytest.fixture
def shell() -> Iterator[Shell]:
    s = Shell()
    yield s
    _quick_reset(s.ip)


_KERNEL = """
import json, sys, warnings
from IPython.core.interactiveshell import InteractiveShell
warnings.simplefilter("always")
ip = InteractiveShell.instance()
out = {}
ip.user_ns["OUT"] = out
with warnings.catch_warnings(record=True) as caught:
    for cell in json.loads(sys.argv[1]):
        result = ip.run_cell(cell)
        if result.error_in_exec or result.error_before_exec:
            print(json.dumps({"error": repr(result.error_in_exec or result.error_before_exec)}))
            sys.exit(1)
out["_warnings"] = [f"{w.category.__name__}: {w.message}" for w in caught]
print("RESULT" + json.dumps(out, default=repr))
"""


def run_kernel(cells: list[str], cache_dir: Path, seed: int = 0, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run notebook cells in a fresh Python process (a restarted kernel); return its OUT dict."""
    environment = {**os.environ, "PYTHONHASHSEED": str(seed), _config.ENV_DIR: str(cache_dir), **(env or {})}
    environment["PYTHONPATH"] = os.pathsep.join([str(ROOT), environment.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", _KERNEL, json.dumps([textwrap.dedent(c) for c in cells])],
        capture_output=True, text=True, env=environment, timeout=120, cwd=str(cache_dir.parent),
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[len("RESULT"):])  # type: ignore[no-any-return]
    raise AssertionError(f"kernel process failed:\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")


@contextmanager
def write_locked(cache_dir: Path) -> Iterator[None]:
    """Hold the index's write lock, as a database browser with an open write transaction does."""
    con = sqlite3.connect(cache_dir / "cache.db", isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        yield
        con.execute("ROLLBACK")
    finally:
        con.close()


def rewrite_keeping_stat(path: Path, data: str | bytes) -> None:
    """Rewrite a file in place with other content of the same size, and put its times back."""
    st = path.stat()
    raw = data.encode() if isinstance(data, str) else data
    assert len(raw) == st.st_size
    path.write_bytes(raw)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


# The first cell of a kernel that runs several cases in turn: ``_begin(case)`` gives the case its own ``OUT``
# (``OUT[case]`` in the kernel's result) and starts counting its cells' hits and keeping its warnings; ``_end()``
# puts them in its ``OUT`` ("cell hits", "_warnings") and unbinds every name the case bound, so that the cases after
# it meet none of its objects, as in a kernel of their own.
SEPARATE_CASES = """
import warnings as _warnings
from notebook_memo import _cells as _memo_cells
_ALL = OUT
def _hits():
    return sum(c.hits for c in _memo_cells._cells.values())
def _begin(case):
    global OUT, _names, _hits_before, _catching, _caught
    OUT = _ALL[case] = {}
    _names = set(globals())
    _hits_before = _hits()
    _catching = _warnings.catch_warnings(record=True)
    _caught = _catching.__enter__()
    _warnings.simplefilter("always")
def _end():
    OUT["cell hits"] = _hits() - _hits_before
    OUT["_warnings"] = [f"{w.category.__name__}: {w.message}" for w in _caught]
    _catching.__exit__(None, None, None)
    for name in set(globals()) - _names:
        if not name.startswith("_"):
            del globals()[name]
"""


def separate_cases(cases: dict[str, list[str]]) -> list[str]:
    """One kernel's cells running each case's cells in turn, each case apart from the others (SEPARATE_CASES)."""
    cells = [SEPARATE_CASES]
    for case, case_cells in cases.items():
        cells += [f"_begin({case!r})", *case_cells, "_end()"]
    return cells


def sessions_with_and_without_cache(cells: list[str], cache_dir: Path) -> tuple[dict[str, Any], ...]:
    """Run a notebook in three fresh kernels: without the cache, then twice with it (other hash seeds)."""
    plain = run_kernel(cells, cache_dir, seed=1, env={_config.ENV_DISABLE: "1"})
    return plain, run_kernel(cells, cache_dir, seed=2), run_kernel(cells, cache_dir, seed=3)


WORKER_PRELUDE = """
import asyncio, json, os, sys, time, warnings
sys.path.insert(0, {root!r})
import numpy as np
from notebook_memo import memo

LOG = sys.argv[{log_arg}]


class _Log:
    \"\"\"Appends lines to the file LOG from any process; never part of a cache key.\"\"\"
    def __memo_key__(self): return "log"
    def write(self, text):
        fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, text.encode())
        os.close(fd)
    def started(self, k):
        \"\"\"How many calls of key ``k`` have started so far, in any process.\"\"\"
        try:
            with open(LOG) as fh:
                return fh.read().count(f"start {{k}} ")
        except OSError:
            return 0


log = _Log()
"""


# A kernel's first cell: ``ran(name)`` counts body runs in ``RUNS``, which no key holds.
RUNS_SETUP = """
from notebook_memo import memo
class _Runs(dict):
    def __memo_key__(self): return 'runs'
RUNS = _Runs()
def ran(name):
    RUNS[name] = RUNS.get(name, 0) + 1
"""


def worker_script(path: Path, body: str, log_arg: int = 2) -> Path:
    """Write a worker program: the shared prelude (imports, a cross-process ``log``) and ``body``."""
    path.write_text(WORKER_PRELUDE.format(root=str(ROOT), log_arg=log_arg) + textwrap.dedent(body))
    return path


def worker_env(cache_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a worker process using ``cache_dir``."""
    return {**os.environ, _config.ENV_DIR: str(cache_dir), "PYTHONPATH": str(ROOT), **extra}


class Counter:
    """Counts body executions without becoming part of any cache key."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> None:
        self.n += 1

    def __memo_key__(self) -> str:
        return "counter"


@pytest.fixture
def counter() -> Counter:
    return Counter()


class Seen(list):  # type: ignore[type-arg]
    """Records what a body received, outside every cache key (a list the body changes is judged by its key)."""

    def __memo_key__(self) -> str:
        return "seen"


def fork_checking(check: Callable[[], bool], fork: Callable[[], int] = os.fork) -> int:
    """Fork; the child runs ``check`` and exits 0 when it holds, 3 when not, 1 when it raised. Return the pid."""
    pid = fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if check() else 3
        finally:
            os._exit(code)
    return pid


def settled() -> None:
    """Commit the quick results this process's stores left to their background threads, as a read of one
    of them or exit would: a test that then opens the index with a connection of its own sees them all."""
    from notebook_memo.stores.local import _settle_all

    _settle_all()


def no_memo_warnings() -> warnings.catch_warnings:  # type: ignore[type-arg]
    ctx = warnings.catch_warnings()
    return ctx


__all__ = ["Counter", "Shell", "notebook_memo", "rewrite_keeping_stat", "run_kernel", "sessions_with_and_without_cache",
           "settled", "worker_env", "worker_script"]


def resealed(value: bytes, change: Any) -> bytes:
    """Return a record changed by ``change`` (on its bytes) with its header check made valid again, as
    a writer of an unsigned directory can (those checks hold no secret)."""
    import xxhash

    from notebook_memo._serialize import _CHECKED_AT, _HEADER

    data = bytearray(value)
    change(data)
    fields = _HEADER.unpack_from(data)
    end = _HEADER.size + fields[9] + fields[8]  # key and metadata lengths
    data[_CHECKED_AT:_CHECKED_AT + 16] = xxhash.xxh3_128_digest(bytes(data[:_CHECKED_AT]) + bytes(64)
                                                                 + bytes(data[_HEADER.size:end]))
    return bytes(data)
