"""Memoized bodies running beside other tasks and threads of the same process.

What another task or thread does while a body runs (rebinding a global, a helper or a class attribute
the body reads; drawing from a global random generator) must never end up stored under the key of the
call: such a run is returned and not stored, with a warning. Each test runs a notebook in a fresh
kernel process, then another kernel (another hash seed) that would be served a wrong entry.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from notebook_memo import memo
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


def test_a_global_rebound_while_a_body_that_reads_a_list_runs_is_not_stored(cache_dir: Path) -> None:
    define = GATE + """
SCALE = 1
TABLE = [1, 2]  # mutable data read: its code state is made anew on each call

@memo
def f(x):
    GATE.entered.set()
    GATE.go.wait()
    return x * SCALE + len(TABLE)
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
    assert first["raced"] == 302
    assert _warnings_about(first, "SCALE"), first["_warnings"]
    alone = run_kernel([define, "GATE.go.set()\nOUT['r'] = f(3)"], cache_dir, seed=2)
    assert alone["r"] == 5


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


# -- global random generators drawn from by another task or thread while the body runs ----------------------

DRAWING = """
import asyncio, random, threading
from notebook_memo import memo

class Gate:
    def __init__(self, parties):
        self.barrier = threading.Barrier(parties)
    def __memo_key__(self):
        return "gate"

async def body(x):
    await asyncio.sleep(0)  # every task's body has started (its run recorded) before any draws
    a = random.random()
    await asyncio.sleep(0)
    return [x, a, random.random()]

def thread_body(x):
    GATE.barrier.wait()  # both runs recorded before either draws
    a = random.random()
    GATE.barrier.wait()
    return [x, a, random.random()]

f = memo(body)
g = memo(thread_body)
GATE = Gate(1)
"""

# What f(2) and g(2) give, and the generator's next number, after random.seed(0): uncached, then in this kernel.
ALONE = """
OUT["plain"], OUT["cached"] = [], []
for run in (lambda: asyncio.run(body(2)), lambda: thread_body(2), lambda: asyncio.run(f(2)), lambda: g(2)):
    random.seed(0)
    OUT["plain" if len(OUT["plain"]) < 2 else "cached"].append([run(), random.random()])
"""


def _drawn_alone(cache_dir: Path) -> dict[str, object]:
    return run_kernel([DRAWING, ALONE], cache_dir, seed=2)


def test_draws_of_two_tasks_that_interleave_are_not_charged_to_either(cache_dir: Path) -> None:
    race = """
async def main():
    return await asyncio.gather(f(1), f(2))
random.seed(0)
OUT["both"] = asyncio.run(main())
"""
    first = run_kernel([DRAWING, race], cache_dir, seed=1)
    assert _warnings_about(first, "another task"), first["_warnings"]
    alone = _drawn_alone(cache_dir)
    assert alone["cached"] == alone["plain"]


def test_a_plain_task_drawing_while_the_body_awaits_is_not_charged_to_it(cache_dir: Path) -> None:
    race = """
async def other():
    await asyncio.sleep(0)
    return random.random()

async def main():
    return await asyncio.gather(f(2), other())
random.seed(0)
OUT["both"] = asyncio.run(main())
"""
    first = run_kernel([DRAWING, race], cache_dir, seed=1)
    assert _warnings_about(first, "another task"), first["_warnings"]
    alone = _drawn_alone(cache_dir)
    assert alone["cached"] == alone["plain"]


def test_draws_of_two_threads_whose_runs_overlap_are_not_charged_to_either(cache_dir: Path) -> None:
    race = """
from concurrent.futures import ThreadPoolExecutor
GATE = Gate(2)
random.seed(0)
with ThreadPoolExecutor(2) as pool:
    OUT["both"] = list(pool.map(g, [1, 2]))
GATE = Gate(1)
"""
    first = run_kernel([DRAWING, race], cache_dir, seed=1)
    assert _warnings_about(first, "another thread"), first["_warnings"]
    alone = _drawn_alone(cache_dir)
    assert alone["cached"] == alone["plain"]


def test_a_body_drawing_alone_across_awaits_is_stored_and_served_after_a_restart(cache_dir: Path) -> None:
    first = run_kernel([DRAWING, ALONE, "OUT['misses'] = f.cache_info().misses + g.cache_info().misses"],
                       cache_dir, seed=1)
    assert first["cached"] == first["plain"] and first["misses"] == 2 and first["_warnings"] == []
    second = run_kernel([DRAWING, ALONE, "OUT['misses'] = f.cache_info().misses + g.cache_info().misses"],
                        cache_dir, seed=2)
    assert second["cached"] == second["plain"] and second["misses"] == 0 and second["_warnings"] == []


# -- the body of a memoized coroutine, stepped while it is recorded, behaves as awaited directly ------------

def test_a_cancelled_call_cancels_its_body() -> None:
    seen: list[str] = []

    @memo
    async def slow(x: int) -> int:
        try:
            await asyncio.Event().wait()  # never set: only cancellation ends it
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        return x

    async def main() -> None:
        task = asyncio.create_task(slow(1))
        for _ in range(3):  # the body reaches its wait
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert seen == ["cancelled"] and slow.cache_info().currsize == 0


def test_a_body_that_catches_its_cancellation_returns_its_value() -> None:
    @memo
    async def stubborn(x: int) -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return f"stopped {x}"  # what asyncio.wait_for's callers get back when a body swallows it
        return "never"

    async def main() -> str:
        task = asyncio.create_task(stubborn(1))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        task.cancel()
        return await task

    assert asyncio.run(main()) == "stopped 1"


def test_a_body_sees_exceptions_of_what_it_awaits_and_its_own_pass_through() -> None:
    @memo
    async def failing(x: int) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(future.set_exception, KeyError(x))
        try:
            await future
        except KeyError as exc:
            raise ValueError(f"from {exc.args[0]}") from exc
        return x

    with pytest.raises(ValueError, match="from 3"):
        asyncio.run(failing(3))


def test_a_body_drawing_across_awaits_returns_what_it_drew_and_keeps_it() -> None:
    @memo
    async def drawing(x: int) -> list[float]:
        draws = []
        for _ in range(x):
            await asyncio.sleep(0)
            draws.append(random.random())
        return draws

    random.seed(5)
    expected = [random.random() for _ in range(3)]
    random.seed(5)
    assert asyncio.run(drawing(3)) == expected
    random.seed(5)
    assert asyncio.run(drawing(3)) == expected and drawing.cache_info().hits == 1
