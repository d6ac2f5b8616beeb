"""memo.batch across processes: each missing item is computed once, and a dead process's items are taken over."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import worker_env, worker_script

SCRIPT = """
@memo.batch("items", batch_size=4, progress=False, ignore=["hang_on"])
def square(items, hang_on=-1):
    for item in items:
        log.write(f"compute {item} {os.getpid()}\\n")
        if item == hang_on:
            time.sleep(600)
    time.sleep(0.05 * len(items))
    return [item * item for item in items]


hang_on = int(sys.argv[3]) if len(sys.argv) > 3 else -1
items = json.loads(sys.argv[2])
print("RESULT" + json.dumps(square(items) if hang_on < 0 else square(items, hang_on)))
"""


def _script(tmp_path: Path) -> Path:
    return worker_script(tmp_path / "batch_script.py", SCRIPT, log_arg=1)


_env = worker_env


def _result(proc: subprocess.Popen[str]) -> list[int]:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return json.loads(out.split("RESULT", 1)[1])  # type: ignore[no-any-return]


def _computed(log: Path) -> list[int]:
    return sorted(int(line.split()[1]) for line in log.read_text().splitlines())


def test_kernels_running_the_same_batch_compute_each_item_once(tmp_path: Path, cache_dir: Path) -> None:
    script, log = _script(tmp_path), tmp_path / "log.txt"
    items = list(range(40))
    orders = [items, items[::-1], items[10:] + items[:10]]
    procs = [subprocess.Popen([sys.executable, str(script), str(log), json.dumps(order)], env=_env(cache_dir),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for order in orders]
    results = [_result(p) for p in procs]
    for order, result in zip(orders, results):
        assert result == [i * i for i in order]
    assert _computed(log) == items  # every item once, across the three kernels


def test_items_of_a_killed_kernel_are_taken_over(tmp_path: Path, cache_dir: Path) -> None:
    script, log = _script(tmp_path), tmp_path / "log.txt"
    env = _env(cache_dir, NOTEBOOK_MEMO_LEASE="2")
    hanging = subprocess.Popen([sys.executable, str(script), str(log), json.dumps(list(range(8))), "5"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (log.exists() and "compute 5 " in log.read_text()):
        assert time.monotonic() < deadline, "the first kernel never reached item 5"
        time.sleep(0.02)
    hanging.send_signal(signal.SIGKILL)
    hanging.communicate()
    survivor = subprocess.Popen([sys.executable, str(script), str(log), json.dumps(list(range(8)))], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert _result(survivor) == [i * i for i in range(8)]
    # Items 0-3 were stored by the killed kernel; 4-7 (its unfinished chunk) are computed by the survivor.
    lines = log.read_text().splitlines()
    assert sorted(int(x.split()[1]) for x in lines if x.endswith(f" {survivor.pid}")) == [4, 5, 6, 7]
