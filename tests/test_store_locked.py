"""A kernel opening the cache while another program holds the index's write lock.

A database browser, a `sqlite3` shell or a process stopped in the middle of a write transaction keeps
SQLite's write lock on `cache.db`. In WAL mode readers do not need it, so a fresh kernel must still
serve what is stored, and compute (without storing) what is not, instead of waiting on the lock.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_kernel, write_locked

DEFINE = """
import notebook_memo
from notebook_memo import memo


@memo
def double(x):
    return x * 2
"""


def test_a_fresh_kernel_serves_stored_results_while_another_program_holds_the_write_lock(cache_dir: Path) -> None:
    call = "OUT['v'] = double(3); OUT['info'] = list(double.cache_info()[:2])"
    first = run_kernel([DEFINE, call], cache_dir, seed=1)
    assert first["v"] == 6 and first["info"] == [0, 1]
    with write_locked(cache_dir):
        # Before, diskcache's opening wrote each of its settings back to the index, every statement
        # retried for 60 s while the lock was held: the kernel waited for minutes (here: past run_kernel's limit).
        second = run_kernel([DEFINE, call], cache_dir, seed=2)
    assert second["v"] == 6 and second["info"] == [1, 0]


def test_a_miss_while_another_program_holds_the_write_lock_is_computed_and_stored_later(cache_dir: Path) -> None:
    run_kernel([DEFINE, "OUT['v'] = double(3)"], cache_dir, seed=1)
    with write_locked(cache_dir):
        # Before, the lease on the new key waited a minute for the lock, and the kernel's exit a minute more
        # for each of its bookkeeping statements.
        second = run_kernel([DEFINE, "OUT['v'] = double(5); OUT['info'] = list(double.cache_info()[:2])"],
                            cache_dir, seed=2)
    assert second["v"] == 10 and second["info"] == [0, 1]
    # Once the lock is free, a new kernel computes it again (the first could not store it) and stores it.
    third = run_kernel([DEFINE, "OUT['v'] = double(5); OUT['again'] = double(5); "
                                "OUT['info'] = list(double.cache_info()[:2])"], cache_dir, seed=3)
    assert third["v"] == third["again"] == 10 and third["info"] == [1, 1]
