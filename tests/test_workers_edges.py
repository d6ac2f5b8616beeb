"""Edges of work done away from the notebook's own thread: workers that run other code than their sender,
batch items of other kinds, interrupts while a lease or a write transaction is taken, and a batch body
that needs its own items."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from notebook_memo import memo
from tests.conftest import ROOT, Seen, run_kernel

WORKER_RUNS_OTHER_HELPERS = """
import multiprocessing, sys
from concurrent.futures import ProcessPoolExecutor
sys.path.insert(0, {folder!r})
from notebook_memo import memo
import helpers_module

@memo(cache_dir={cache!r})
def scaled(x):
    return helpers_module.{call}

def patched(x):
    return x * 100

class Patched:
    def times(self, x):
        return x * 100

if __name__ == "__main__":
    {patch}
    context = multiprocessing.get_context({method!r})
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        print("worker", pool.submit(scaled, 1).result())
    print("parent", scaled(1), scaled.uncached(1))
"""

HELPERS_MODULE = """
def helper(x):
    return x * 1


class Scale:
    def times(self, x):
        return x * 1
"""


def _run_script(tmp_path: Path, text: str) -> list[str]:
    script = tmp_path / "notebook.py"
    script.write_text(text)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def _patched_helper(tmp_path: Path, method: str, call: str, patch: str) -> list[str]:
    (tmp_path / "helpers_module.py").write_text(HELPERS_MODULE)
    return _run_script(tmp_path, WORKER_RUNS_OTHER_HELPERS.format(
        folder=str(tmp_path), cache=str(tmp_path / "cache"), method=method, call=call, patch=patch))


def test_a_spawned_worker_running_the_module_s_own_helper_keys_by_its_own(tmp_path: Path) -> None:
    """The notebook replaced a user module's helper; a spawned worker imports the original: the worker's
    result (1) is stored under its own key, never under the one the notebook's x100 helper reads."""
    lines = _patched_helper(tmp_path, "spawn", "helper(x)", "helpers_module.helper = patched")
    assert lines == ["worker 1", "parent 100 100"]


def test_a_forkserver_worker_running_the_module_s_own_method_keys_by_its_own(tmp_path: Path) -> None:
    """The same with a class of the module replaced (its method is the code that differs)."""
    lines = _patched_helper(tmp_path, "forkserver", "Scale().times(x)", "helpers_module.Scale = Patched")
    assert lines == ["worker 1", "parent 100 100"]


def test_joblib_workers_running_a_module_s_helper_the_notebook_replaced_key_by_their_own(tmp_path: Path) -> None:
    """The notebook's helper has the module helper's very code but reads the notebook's K (100), the one a
    loky worker imports reads the module's (1): the workers' results are not the notebook's."""
    (tmp_path / "helpers_module.py").write_text("K = 1\n\n\ndef helper(x):\n    return x * K\n")
    out = run_kernel([
        f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from joblib import Parallel, delayed
        from notebook_memo import memo
        import helpers_module
        K = 100
        """,
        """
        def helper(x):
            return x * K

        helpers_module.helper = helper

        @memo
        def scaled(x):
            return helpers_module.helper(x)
        """,
        """
        OUT["workers"] = Parallel(n_jobs=2, backend="loky")(delayed(scaled)(x) for x in [1, 2])
        OUT["here"] = [scaled(x) for x in [1, 2]]
        """,
    ], tmp_path / "cache", env={"PYTHONPATH": str(tmp_path)})
    assert out["workers"] == [1, 2]
    assert out["here"] == [100, 200]


# -- memo.batch: what the body is given besides each item's value -----------------------------------------------

def test_a_series_batch_is_not_answered_by_an_array_of_the_same_items() -> None:
    """A Series yields Python ints to the body, an int64 array numpy ints (which wrap): its items key apart."""

    @memo.batch("xs", progress=False)
    def powers(xs: Any) -> list[int]:
        return [int(x ** 25) for x in xs]

    array, series = np.array([10, 11]), pd.Series([10, 11])
    assert powers(array) == powers.__wrapped__(array)
    assert powers(series) == powers.__wrapped__(series) == [10 ** 25, 11 ** 25]


def test_the_categories_of_a_categorical_batch_are_keyed() -> None:
    seen = Seen()

    @memo.batch("labels", progress=False)
    def encode(labels: pd.Series) -> list[int]:
        seen.extend(labels)
        return list(labels.cat.codes)

    two = pd.Series(["cat", "dog"], dtype=pd.CategoricalDtype(["cat", "dog"]))
    three = pd.Series(["cat", "dog"], dtype=pd.CategoricalDtype(["ant", "cat", "dog"]))
    ordered = pd.Series(["cat", "dog"], dtype=pd.CategoricalDtype(["cat", "dog"], ordered=True))
    assert encode(two) == [0, 1]
    assert encode(three) == [1, 2]
    assert encode(ordered) == [0, 1]
    assert len(seen) == 6  # each computed: the order of categories is keyed too
    assert encode(pd.Series(["cat", "dog"], dtype=pd.CategoricalDtype(["cat", "dog"]))) == [0, 1]
    assert len(seen) == 6  # the same again: every item from the cache


def test_a_frame_batch_keys_its_column_dtypes() -> None:
    """A row of an int and a float column is a float row, as is one of two float columns: the body sees either."""

    @memo.batch("rows", progress=False)
    def kinds(rows: pd.DataFrame) -> list[str]:
        return [str(rows.dtypes["a"])] * len(rows)

    ints = pd.DataFrame({"a": [1, 2], "b": [0.5, 1.5]})
    floats = pd.DataFrame({"a": [1.0, 2.0], "b": [0.5, 1.5]})
    assert kinds(ints) == ["int64", "int64"]
    assert kinds(floats) == ["float64", "float64"]


def test_a_tuple_batch_is_not_answered_by_a_list_and_the_same_list_hits() -> None:
    seen = Seen()

    @memo.batch("xs", progress=False)
    def containers(xs: Any) -> list[str]:
        seen.extend(xs)
        return [type(xs).__name__] * len(xs)

    assert containers([1, 2]) == ["list", "list"]
    assert containers((1, 2)) == ["tuple", "tuple"]
    assert containers([1, 2]) == ["list", "list"]
    assert list(seen) == [1, 2, 1, 2]


# -- an interrupt (Ctrl-C) while a lease is being taken -----------------------------------------------------

LEASE_INTERRUPTED = """
import os, signal, sqlite3, sys, time
from notebook_memo import configure, memo
from notebook_memo.stores import local, remote
from notebook_memo.stores.local import open_stores

MODE, CACHE = sys.argv[1], sys.argv[2]
if MODE == "remote":
    configure(remote=sys.argv[3])

@memo(cache_dir=CACHE)
def slow(x):
    time.sleep(0.05)
    return x * 2

@memo(cache_dir=CACHE)
def fast(x):
    return x * 2

@memo.batch("xs", cache_dir=CACHE, progress=False)
def doubles(xs):
    return [2 * x for x in xs]

def interrupting(owner, name):
    original = getattr(owner, name)
    def step(self, *args):
        setattr(owner, name, original)
        result = original(self, *args)
        signal.raise_signal(signal.SIGINT)  # the user presses interrupt just after this step
        return result
    setattr(owner, name, step)

if MODE == "quick":
    fast(0)  # a quick body: its next miss runs without the lease, noting the run for the background thread
    interrupting(local.Store, "run_started")
elif MODE == "remote":
    interrupting(remote.RemoteTier, "try_leases")
else:
    interrupting(local.Store, "_start_flusher")
call = {"lease": lambda: slow(1), "remote": lambda: slow(1), "batch": lambda: doubles([1, 2]),
        "quick": lambda: fast(1)}[MODE]
try:
    call()
except KeyboardInterrupt:
    print("interrupted")
time.sleep(0.5)  # the background thread leases a run without one once it goes past QUICK_BODY
store, = open_stores()
with sqlite3.connect(os.path.join(CACHE, "cache.db")) as con:
    rows = con.execute("SELECT count(*) FROM Cache WHERE key LIKE 'lock:%'").fetchone()[0]
print("held", store.holds_leases(), "rows", rows)
if not store.holds_leases():
    print("again", call())
"""


@pytest.mark.parametrize("mode", ["lease", "batch", "quick", "remote"])
def test_an_interrupt_just_after_a_lease_is_taken_gives_it_back(tmp_path: Path, mode: str) -> None:
    """Ctrl-C once the lease row is written but before the caller knows it holds it: the lease goes back at
    once, rather than being renewed by our own background thread for as long as the kernel lives (every
    later call of the key, here and in other kernels, would wait on it for ever)."""
    script = tmp_path / "interrupted.py"
    script.write_text(LEASE_INTERRUPTED)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "NOTEBOOK_MEMO_LEASE": "3"}
    done = subprocess.run([sys.executable, str(script), mode, str(tmp_path / "cache"),
                           (tmp_path / "team").as_uri()], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    again = "[2, 4]" if mode == "batch" else "2"
    assert done.stdout.splitlines() == ["interrupted", "held False rows 0", f"again {again}"]


# -- a batch body that needs its own items -------------------------------------------------------------------

BATCH_NEEDS_ITSELF = """
import asyncio, sys, time
from notebook_memo import RecursiveCall, memo

CACHE = sys.argv[1]

@memo.batch("ns", cache_dir=CACHE, progress=False)
def direct(ns):
    return [n if n < 2 else direct([n, 0])[0] for n in ns]  # a bug: the item it is computing, among others

@memo(cache_dir=CACHE)
def helper(n):
    return through_helper([n])[0]

@memo.batch("ns", cache_dir=CACHE, progress=False)
def through_helper(ns):
    return [helper(n) for n in ns]

@memo.batch("ns", cache_dir=CACHE, progress=False)
async def in_a_task(ns):
    return [n if n < 2 else (await in_a_task([n]))[0] for n in ns]

@memo.batch("ns", cache_dir=CACHE, progress=False, batch_size=1)
def smaller(ns):
    return [n if n < 2 else smaller([n - 1])[0] + 1 for n in ns]  # other items: fine

for name, call in [("direct", lambda: direct([1, 5])), ("through a helper", lambda: through_helper([5])),
                   ("in a task", lambda: asyncio.run(in_a_task([5]))), ("smaller", lambda: smaller([4, 6]))]:
    try:
        print(name, call())
    except RecursiveCall as exc:
        print(name, "RecursiveCall", "ns" in str(exc))
"""


def test_a_batch_body_that_needs_an_item_it_is_computing_raises_recursive_call(tmp_path: Path) -> None:
    """As @memo does, rather than wait for ever on the lease its own process holds and renews."""
    script = tmp_path / "recursive.py"
    script.write_text(BATCH_NEEDS_ITSELF)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "NOTEBOOK_MEMO_LEASE": "3"}
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "cache")], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["direct RecursiveCall True", "through a helper RecursiveCall True",
                                        "in a task RecursiveCall True", "smaller [4, 6]"]


# -- an interrupt just after a write transaction began ---------------------------------------------------------

INTERRUPTED_AFTER_BEGIN = """
import os, sqlite3, sys, time
from notebook_memo import memo

_connect = sqlite3.connect
begins = [0, 0]  # BEGIN IMMEDIATE seen, and the one to interrupt just after it returns


class Interrupting(sqlite3.Connection):
    def execute(self, sql, *args):
        cursor = super().execute(sql, *args)
        if sql.startswith("BEGIN IMMEDIATE"):
            begins[0] += 1
            if begins[0] == begins[1]:
                raise KeyboardInterrupt  # as Ctrl-C would, just after SQLite began the transaction
        return cursor


sqlite3.connect = lambda *args, **kwargs: _connect(*args, **{**kwargs, "factory": Interrupting})


def lock_is_free(cache):
    con = _connect(os.path.join(cache, "cache.db"), timeout=0, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        con.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        con.close()


for which in range(1, 7):  # a first miss: three to make the index ours, the lease, the result, the lease back
    cache = os.path.join(sys.argv[1], str(which))

    @memo(cache_dir=cache)
    def slow(x):
        time.sleep(0.02)
        return x * 2

    begins[:] = [0, which]
    try:
        slow(1)
        print(which, "not interrupted")
    except KeyboardInterrupt:
        pass
    begins[1] = 0
    if not lock_is_free(cache):
        print(which, "the write lock is still held")
        continue  # every write would wait on it
    print(which, (slow(1), slow(1), slow.last_hit), lock_is_free(cache))
"""


def test_an_interrupt_just_after_a_write_transaction_began_leaves_the_index_free(tmp_path: Path) -> None:
    """Ctrl-C just after BEGIN IMMEDIATE returned, before the code that ends the transaction took over (in
    diskcache's writes, the lease rows' and the index's own set-up): the transaction is rolled back at once,
    where it held the index's write lock, against every other kernel, until this process ended."""
    script = tmp_path / "interrupted.py"
    script.write_text(INTERRUPTED_AFTER_BEGIN)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "NOTEBOOK_MEMO_LEASE": "3"}
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"{which} (2, 2, True) True" for which in range(1, 7)]
