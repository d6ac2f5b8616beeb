"""Compute-once across machines: real processes, each with a local directory of its own, one remote.

Processes stand in for machines; the remote is a shared directory, or moto's S3-protocol server on
127.0.0.1 standing in for S3 (see tests/test_remote.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter as Tally
from pathlib import Path

import pytest

from notebook_memo import _config
from tests.conftest import worker_env, worker_script
from tests.test_remote import dir_remote, s3_remote, s3_server  # noqa: F401 (fixtures)

_SHARED = """
from notebook_memo import memo
import random

@memo
def work(i, pause):
    log.write(f"{i}\\n")
    time.sleep(pause)
    return i * i

order = list(range(20))
random.Random(int(sys.argv[3])).shuffle(order)
print(json.dumps([work(i, 0.3) for i in order]))
"""


def _env(tmp_path: Path, name: str, remote: str, **extra: str) -> dict[str, str]:
    return worker_env(tmp_path / name, **{_config.ENV_REMOTE: remote, **extra})


@pytest.mark.parametrize("kind", ["directory", "s3"])
def test_four_machines_compute_each_of_twenty_keys_exactly_once(kind: str, tmp_path: Path,
                                                                request: pytest.FixtureRequest) -> None:
    remote = str(request.getfixturevalue("dir_remote" if kind == "directory" else "s3_remote"))
    script = worker_script(tmp_path / "work.py", _SHARED)
    log = tmp_path / "log"
    procs = [subprocess.Popen([sys.executable, str(script), "x", str(log), str(n)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=_env(tmp_path, f"machine{n}", remote))
             for n in range(4)]
    outputs = [p.communicate(timeout=180) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err
        assert sorted(json.loads(out)) == sorted(i * i for i in range(20))
    computed = Tally(log.read_text().split())
    assert sorted(computed) == sorted(str(i) for i in range(20))
    assert set(computed.values()) == {1}, computed


def test_a_killed_lease_holder_is_taken_over_within_the_lease_time(tmp_path: Path, dir_remote: str) -> None:  # noqa: F811
    body = """
    @memo
    def slow(pause):
        log.write(f"start {os.getpid()}\\n")
        time.sleep(pause)
        log.write(f"done {os.getpid()}\\n")
        return "result"

    print(slow(float(sys.argv[3])))
    """
    script = worker_script(tmp_path / "slow.py", body)
    log = tmp_path / "log"
    holder = subprocess.Popen([sys.executable, str(script), "x", str(log), "600"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              env=_env(tmp_path, "a", dir_remote, NOTEBOOK_MEMO_LEASE="1.5"))
    try:
        for _ in range(600):
            if log.exists() and "start" in log.read_text():
                break
            time.sleep(0.05)
        else:
            pytest.fail("the holder never started its body")
        # The pause in the key differs from the holder's: the waiter must ask for the same key.
        waiter = subprocess.Popen([sys.executable, str(script), "x", str(log), "600"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True,
                                  env=_env(tmp_path, "b", dir_remote, NOTEBOOK_MEMO_LEASE="1.5"))
        time.sleep(1.0)
        assert waiter.poll() is None  # waiting for the holder, not computing
        assert log.read_text().count("start") == 1
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
        # The waiter takes the lease over and computes; its body sleeps 600 s, so it is stopped once started.
        for _ in range(600):
            if log.read_text().count("start") == 2:
                break
            time.sleep(0.05)
        else:
            pytest.fail("no one took the killed holder's lease over")
        starts = [line.split()[1] for line in log.read_text().splitlines() if line.startswith("start")]
        assert starts == [str(holder.pid), str(waiter.pid)]
    finally:
        for p in (holder, locals().get("waiter")):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(timeout=30)


def test_a_shared_directory_serves_other_processes_without_recomputing(tmp_path: Path, dir_remote: str) -> None:  # noqa: F811
    body = """
    @memo
    def f(i):
        log.write(f"{i}\\n")
        return np.full(10_000, i)

    print(sum(int(f(i)[0]) for i in range(10)))
    """
    script = worker_script(tmp_path / "f.py", body)
    log = tmp_path / "log"
    for n in range(3):
        out = subprocess.run([sys.executable, str(script), "x", str(log)], capture_output=True, text=True,
                             env=_env(tmp_path, f"m{n}", dir_remote), timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["45"]
    assert sorted(log.read_text().split(), key=int) == [str(i) for i in range(10)]
