"""Memoized bodies running beside other tasks and threads of the same process.

What another task or thread does while a body runs (rebinding a global, a helper or a class attribute
the body reads; drawing from a global random generator) must never end up stored under the key of the
call: such a run is returned and not stored, with a warning. Each test runs a notebook in a fresh
kernel process, then another kernel (another hash seed) that would be served a wrong entry.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_kernel

# Events a body and its neighbour meet at: the order of what they do is fixed, never timed. The gate
# keys as a constant (it is not what the body computes from).
GATE = """
import asyncio, random, threading, warnings
from notebook_memo import memo

class Gate:
    def __init__(self):
        self.entered, self.go = threading.Event(), threading.Event()
        self.barrier = threading.Barrier(2)
    def __memo_key__(self):
        return "gate"

GATE = Gate()
"""

ASYNC_GATE = """
class AsyncGate:
    def __init__(self):
        self.entered, self.go = asyncio.Event(), asyncio.Event()
    def __memo_key__(self):
        return "gate"
"""


def _warnings_about(out: dict[str, object], word: str) -> list[str]:
    return [w for w in out["_warnings"] if "MemoWarning" in w and word in w]  # type: ignore[attr-defined]


# -- a global, a helper or a class attribute rebound while the body runs ----------------------------------

def test_a_global_rebound_by_another_task_while_the_body_awaits_is_not_stored(cache_dir: Path) -> None:
    define = GATE + ASYNC_GATE + """
SCALE = 1

@memo
async def f(x):
    GATE.entered.set()
    await GATE.go.wait()
    return x * SCALE
"""
    race = """
async def bump():
    global SCALE
    await GATE.entered.wait()
    SCALE = 100
    GATE.go.set()

async def main():
    globals()["GATE"] = AsyncGate()
    return (await asyncio.gather(f(3), bump()))[0]

OUT["raced"] = asyncio.run(main())
"""
    first = run_kernel([define, race], cache_dir, seed=1)
    assert first["raced"] == 300  # what the body made, with the value it read
    assert _warnings_about(first, "SCALE"), first["_warnings"]
    alone = run_kernel([define, "GATE = AsyncGate(); GATE.go.set()\nOUT['r'] = asyncio.run(f(3))"], cache_dir, seed=2)
    assert alone["r"] == 3


def test_a_global_rebound_by_another_thread_while_the_body_runs_is_not_stored(cache_dir: Path) -> None:
    define = GATE + """
SCALE = 1

@memo
def f(x):
    GATE.entered.set()
    GATE.go.wait()
    return x * SCALE
"""
    race = """
found = []
t = threading.Thread(target=lambda: found.append(f(3)))
t.start()
GATE.entered.wait()
SCALE = 100
GATE.go.set()
t.join()
OUT["raced"] = found[0]
"""
    first = run_kernel([define, race], cache_dir, seed=1)
    assert first["raced"] == 300
    assert _warnings_about(first, "SCALE"), first["_warnings"]
    alone = run_kernel([define, "GATE.go.set()\nOUT['r'] = f(3)"], cache_dir, seed=2)
    assert alone["r"] == 3


def test_a_helper_redefined_by_another_thread_while_the_body_runs_is_not_stored(cache_dir: Path) -> None:
    define = GATE + """
def helper(x):
    return x

@memo
def f(x):
    GATE.entered.set()
    GATE.go.wait()
    return helper(x)
"""
    race = """
found = []
t = threading.Thread(target=lambda: found.append(f(3)))
t.start()
GATE.entered.wait()
def helper(x):
    return x * 100
GATE.go.set()
t.join()
OUT["raced"] = found[0]
"""
    first = run_kernel([define, race], cache_dir, seed=1)
    assert first["raced"] == 300
    assert _warnings_about(first, "helper"), first["_warnings"]
    alone = run_kernel([define, "GATE.go.set()\nOUT['r'] = f(3)"], cache_dir, seed=2)
    assert alone["r"] == 3


def test_a_class_attribute_rebound_by_another_task_while_the_body_awaits_is_not_stored(cache_dir: Path) -> None:
    define = GATE + ASYNC_GATE + """
class Settings:
    scale = 1

@memo
async def f(x):
    GATE.entered.set()
    await GATE.go.wait()
    return x * Settings.scale
"""
    race = """
async def bump():
    await GATE.entered.wait()
    Settings.scale = 100
    GATE.go.set()

async def main():
    globals()["GATE"] = AsyncGate()
    return (await asyncio.gather(f(3), bump()))[0]

OUT["raced"] = asyncio.run(main())
"""
    first = run_kernel([define, race], cache_dir, seed=1)
    assert first["raced"] == 300
    assert _warnings_about(first, "Settings"), first["_warnings"]
    alone = run_kernel([define, "GATE = AsyncGate(); GATE.go.set()\nOUT['r'] = asyncio.run(f(3))"], cache_dir, seed=2)
    assert alone["r"] == 3


def test_a_global_rebound_by_another_thread_while_a_batch_chunk_runs_is_not_stored(cache_dir: Path) -> None:
    define = GATE + """
SCALE = 1

@memo.batch("xs", progress=False)
def f(xs):
    GATE.entered.set()
    GATE.go.wait()
    return [x * SCALE for x in xs]
"""
    race = """
found = []
t = threading.Thread(target=lambda: found.append(f([1, 2])))
t.start()
GATE.entered.wait()
SCALE = 100
GATE.go.set()
t.join()
OUT["raced"] = found[0]
"""
    first = run_kernel([define, race], cache_dir, seed=1)
    assert first["raced"] == [100, 200]
    assert _warnings_about(first, "SCALE"), first["_warnings"]
    alone = run_kernel([define, "GATE.go.set()\nOUT['r'] = f([1, 2])"], cache_dir, seed=2)
    assert alone["r"] == [1, 2]


def test_a_global_rebound_by_another_task_while_an_async_batch_chunk_awaits_is_not_stored(cache_dir: Path) -> None:
    define = GATE + ASYNC_GATE + """
SCALE = 1

@memo.batch("xs", progress=False)
async def f(xs):
    GATE.entered.set()
    await GATE.go.wait()
    return [x * SCALE for x in xs]
"""
    race = """
async def bump():
    global SCALE
    await GATE.entered.wait()
    SCALE = 100
    GATE.go.set()

async def main():
    globals()["GATE"] = AsyncGate()
    return (await asyncio.gather(f([1, 2]), bump()))[0]

OUT["raced"] = asyncio.run(main())
"""
    first = run_kernel([define, race], cache_dir, seed=1)
    assert first["raced"] == [100, 200]
    assert _warnings_about(first, "SCALE"), first["_warnings"]
    alone = run_kernel([define, "GATE = AsyncGate(); GATE.go.set()\nOUT['r'] = asyncio.run(f([1, 2]))"],
                       cache_dir, seed=2)
    assert alone["r"] == [1, 2]


def test_a_body_alone_is_stored_and_served_after_a_restart(cache_dir: Path) -> None:
    cells = [GATE + ASYNC_GATE + """
SCALE = 1

@memo
async def f(x):
    await asyncio.sleep(0)
    return x * SCALE

@memo
def g(x):
    return x * SCALE
""", "OUT['r'] = [asyncio.run(f(3)), g(3)]; OUT['misses'] = f.cache_info().misses + g.cache_info().misses"]
    assert run_kernel(cells, cache_dir, seed=1) == {"r": [3, 3], "misses": 2, "_warnings": []}
    assert run_kernel(cells, cache_dir, seed=2) == {"r": [3, 3], "misses": 0, "_warnings": []}


def test_a_helper_that_binds_a_global_on_first_use_is_still_stored(cache_dir: Path) -> None:
    cells = [GATE + """
_table = None

def table():
    global _table
    if _table is None:
        _table = {"a": 1}
    return _table

@memo
def f(x):
    return len(table()) + x
""", "OUT['r'] = f(3); OUT['misses'] = f.cache_info().misses"]
    assert run_kernel(cells, cache_dir, seed=1) == {"r": 4, "misses": 1, "_warnings": []}
    assert run_kernel(cells, cache_dir, seed=2) == {"r": 4, "misses": 0, "_warnings": []}


def test_a_global_rebound_after_the_key_is_made_and_before_the_body_starts_is_not_stored(cache_dir: Path) -> None:
    define = GATE + """
SCALE = 1

class Keyed:
    '''Holds the call between its key and its body: keying it waits for another thread.'''
    def __init__(self):
        self.keyed, self.go, self.hold = threading.Event(), threading.Event(), False
    def __memo_key__(self):
        if self.hold:
            self.keyed.set()
            self.go.wait()
        return "keyed"

WAIT = Keyed()

@memo
def f(x):
    scale = SCALE  # read, and keyed, before WAIT
    return x * scale if WAIT else 0
"""
    race = """
WAIT.hold = True
found = []
t = threading.Thread(target=lambda: found.append(f(3)))
t.start()
WAIT.keyed.wait()
SCALE = 100
WAIT.go.set()
t.join()
OUT["raced"] = found[0]
"""
    first = run_kernel([define, race], cache_dir, seed=1)
    assert first["raced"] == 300
    assert _warnings_about(first, "SCALE"), first["_warnings"]
    alone = run_kernel([define, "OUT['r'] = f(3)"], cache_dir, seed=2)
    assert alone["r"] == 3
