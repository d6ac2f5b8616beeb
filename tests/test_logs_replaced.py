"""The index's log and wal-index (``cache.db-wal``, ``cache.db-shm``) replaced or removed under a running kernel.

A kernel's connections keep the log and wal-index they opened for as long as they stay open; SQLite finds both by
name only when it opens them. So files moved aside or removed while ``cache.db`` stays leave that kernel alone with
its old ones: it never sees other kernels' commits, and a checkpoint of its old log would bring their deleted rows
back for everyone.

- The library never moves aside a log and wal-index another process uses (a team folder made private while a
  kernel runs there): it tightens their mode where they are the user's own, else leaves the folder unused for now.
- A kernel whose wal-index or log was removed or moved by hand notices it (the background thread, within seconds),
  serves nothing more from them, writes nothing through them, and never checkpoints them into the index.

Each test runs real kernels (processes driven over stdin and stdout) and waits for what they report, never for time.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from notebook_memo import _config
from tests.conftest import ROOT

_DRIVER = """
import os, sys, warnings
warnings.simplefilter("always")
os.umask(int(sys.argv[1], 8))
from notebook_memo import memo

@memo
def f(x):
    return x * 10

caught = []
warnings.showwarning = lambda message, *rest, **kw: caught.append(str(message))
for line in sys.stdin:
    command = line.strip()
    if command == "call":
        misses = f.cache_info().misses
        value = f(1)
        print("RAN" if f.cache_info().misses > misses else "HIT", value, flush=True)
    elif command == "clear":
        print("CLEARED", f.clear(), flush=True)
    elif command == "warnings":
        print("WARNINGS", repr(caught), flush=True)
    else:
        break
"""

_DEADLINE = 60.0  # seconds a kernel is given to notice what happened to its files (it takes about 2)


class _Kernel:
    """A running notebook kernel with a memoized ``f``: ``ask`` sends one command and returns its answer."""

    def __init__(self, cache: Path, seed: int, umask: int = 0o022, secret: str | None = None) -> None:
        env = {**os.environ, "PYTHONHASHSEED": str(seed), _config.ENV_DIR: str(cache),
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        if secret is not None:
            env[_config.ENV_SECRET] = secret
        self.process = subprocess.Popen([sys.executable, "-c", textwrap.dedent(_DRIVER), f"{umask:o}"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def ask(self, command: str) -> str:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline().strip()
        assert answer, f"the kernel ended (exit status {self.process.wait(60)})"
        return answer

    def until_ran(self) -> str:
        """Call ``f(1)`` until the kernel computes it (it has noticed its files changed); return its answers."""
        answers = []
        deadline = time.monotonic() + _DEADLINE
        while time.monotonic() < deadline:
            answers.append(self.ask("call"))
            if answers[-1].startswith("RAN"):
                break
            time.sleep(0.2)
        return answers[-1] if answers[-1].startswith("RAN") else f"never ran again: {answers[:3]}..."

    def quit(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("quit\n")
        self.process.stdin.close()
        assert self.process.wait(120) == 0


@pytest.fixture
def kernels() -> Iterator[list[_Kernel]]:
    started: list[_Kernel] = []
    yield started
    for kernel in started:
        if kernel.process.poll() is None:
            kernel.process.kill()
            kernel.process.wait(60)


def _rows(cache: Path) -> int:
    """Return how many records the index holds, as a process that opens it fresh finds it."""
    code = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
            "print(c.execute('SELECT count(*) FROM Cache WHERE mode = 16').fetchone()[0])")
    done = subprocess.run([sys.executable, "-c", code, str(cache / "cache.db")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def _checkpoint_elsewhere(cache: Path) -> None:
    """Copy the log into the index from another process, as a kernel's background thread does once it is quiet."""
    with sqlite3.connect(cache / "cache.db", isolation_level=None) as con:
        deadline = time.monotonic() + _DEADLINE
        while True:  # the kernel's background thread may be checkpointing or writing at that moment
            busy, log, copied = con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if (busy == 0 and log == copied) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert busy == 0 and log == copied
    con.close()


def _delete_rows_elsewhere(cache: Path) -> None:
    """Delete every record from another process, through plain SQL (as a second kernel's ``clear`` would)."""
    with sqlite3.connect(cache / "cache.db", isolation_level=None) as con:
        assert con.execute("DELETE FROM Cache WHERE mode = 16").rowcount == 1
    con.close()


# -- the library sets a team folder's logs aside while a kernel uses them ----------------------------------------


def test_logs_of_a_folder_made_private_are_not_moved_from_under_a_kernel_using_them(tmp_path: Path,
                                                                                  kernels: list[_Kernel]) -> None:
    cache = tmp_path / "team"
    cache.mkdir(mode=0o770)
    first = _Kernel(cache, seed=1, umask=0o007, secret="team")  # a team folder
    kernels.append(first)
    assert [first.ask("call") for _ in range(3)] == ["RAN 10", "HIT 10", "HIT 10"]
    for name in os.listdir(cache):  # as the team makes them, group-writable
        os.chmod(cache / name, 0o660)
    assert first.ask("call") == "HIT 10"
    cache.chmod(0o700)  # the owner makes the folder and its index private while the kernel runs
    (cache / "cache.db").chmod(0o600)
    second = _Kernel(cache, seed=2, secret="team")
    kernels.append(second)
    assert second.ask("call") == "HIT 10"  # the same index and log: the first kernel's entry
    assert second.ask("clear") == "CLEARED 1"
    assert first.ask("call") == "RAN 10"  # the second kernel's clear is seen
    assert second.ask("call") == "HIT 10"  # and what the first stored since
    assert not list(cache.glob("cache.db.untrusted-*"))
    assert not any(os.stat(cache / f"cache.db{suffix}").st_mode & (stat.S_IWGRP | stat.S_IWOTH)
                   for suffix in ("-wal", "-shm"))
    first.quit()
    second.quit()
    assert _rows(cache) == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user (chown) needs root; CI runs as root")
def test_logs_of_another_user_in_use_keep_the_folder_unused_until_let_go(tmp_path: Path,
                                                                         kernels: list[_Kernel]) -> None:
    cache = tmp_path / "team"
    cache.mkdir(mode=0o770)
    first = _Kernel(cache, seed=6, umask=0o007, secret="team")
    kernels.append(first)
    assert [first.ask("call") for _ in range(2)] == ["RAN 10", "HIT 10"]
    for suffix in ("-wal", "-shm"):  # a teammate's kernel made them, and still uses them
        os.chown(cache / f"cache.db{suffix}", 1234, 1234)
    cache.chmod(0o700)
    (cache / "cache.db").chmod(0o600)
    second = _Kernel(cache, seed=7, secret="team")
    kernels.append(second)
    assert second.ask("call") == "RAN 10" and second.ask("call") == "RAN 10"  # the folder unused for now
    warned = second.ask("warnings")
    assert warned.count("fuser") == 1, warned
    assert not list(cache.glob("cache.db.untrusted-*"))  # left where they are
    assert first.ask("call") == "HIT 10"
    first.quit()  # its last connection copies the log into the index and removes both as it closes
    assert second.ask("call") == "HIT 10"  # used again: the first kernel's entry
    second.quit()


# -- removed or moved by hand while a kernel runs ---------------------------------------------------------------


@pytest.mark.parametrize("removed", ["-shm", "-shm -wal"])
def test_a_kernel_whose_wal_index_or_log_was_removed_never_serves_a_row_deleted_since(
        tmp_path: Path, kernels: list[_Kernel], removed: str) -> None:
    cache = tmp_path / "cache"
    kernel = _Kernel(cache, seed=3)
    kernels.append(kernel)
    assert [kernel.ask("call") for _ in range(3)] == ["RAN 10", "HIT 10", "HIT 10"]
    _checkpoint_elsewhere(cache)
    for suffix in removed.split():
        os.remove(cache / f"cache.db{suffix}")
    _delete_rows_elsewhere(cache)
    assert kernel.until_ran() == "RAN 10"
    assert kernel.ask("call") == "RAN 10"  # nothing stored through the old files
    warned = kernel.ask("warnings")
    assert warned.count("removed or replaced") == 1 and "Restart the kernel" in warned, warned
    kernel.quit()
    assert _rows(cache) == 0  # nothing of its old log was checkpointed into the index


def test_a_kernel_whose_wal_index_and_log_were_moved_aside_never_serves_a_row_deleted_since(
        tmp_path: Path, kernels: list[_Kernel]) -> None:
    cache = tmp_path / "cache"
    kernel = _Kernel(cache, seed=4)
    kernels.append(kernel)
    assert [kernel.ask("call") for _ in range(3)] == ["RAN 10", "HIT 10", "HIT 10"]
    _checkpoint_elsewhere(cache)
    (tmp_path / "aside").mkdir()
    for suffix in ("-wal", "-shm"):
        os.rename(cache / f"cache.db{suffix}", tmp_path / "aside" / f"cache.db{suffix}")
    _delete_rows_elsewhere(cache)
    assert kernel.until_ran() == "RAN 10"
    kernel.quit()
    assert _rows(cache) == 0


def test_a_kernel_whose_log_alone_was_removed_never_serves_a_row_deleted_since(tmp_path: Path,
                                                                             kernels: list[_Kernel]) -> None:
    cache = tmp_path / "cache"
    kernel = _Kernel(cache, seed=5)
    kernels.append(kernel)
    assert [kernel.ask("call") for _ in range(3)] == ["RAN 10", "HIT 10", "HIT 10"]
    _checkpoint_elsewhere(cache)
    os.remove(cache / "cache.db-wal")
    _delete_rows_elsewhere(cache)  # through the kernel's wal-index, into a new log
    assert kernel.until_ran() == "RAN 10"
    kernel.quit()
