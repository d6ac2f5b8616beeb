"""Async callers that wait on another task's computation of the same key get what a hit would give them
(their own object, their generators advanced, the global random state checked, the body run when nothing was
stored); memo.batch gives each repeated item its own object and stores the items that pickle when one does not;
a body reading a relative path keeps one entry per working folder."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from notebook_memo import memo
from tests.conftest import Counter, Shell, worker_env


class Gate:
    """Holds a body until the second caller waits on it; outside every key (``__memo_key__``)."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def hold(self) -> None:
        self.entered.set()
        await self.release.wait()

    def __memo_key__(self) -> str:
        return "gate"


async def _first_then_waiter(first: Callable[[], Awaitable[Any]], second: Callable[[], Awaitable[Any]],
                             gate: Gate) -> tuple[Any, Any]:
    """Run ``first`` until its body holds at the gate, start ``second`` (it waits on the first's computation),
    then let the body go on; return both callers' results."""
    a = asyncio.ensure_future(first())
    await gate.entered.wait()
    b = asyncio.ensure_future(second())
    for _ in range(20):  # let the second caller reach its wait on the first's computation
        await asyncio.sleep(0)
    assert not b.done()
    gate.release.set()
    return await a, await b


# -- async waiters ----------------------------------------------------------------------------------------------


def _zero_frame(df: pd.DataFrame) -> None:
    df.iloc[:, 0] = 0.0


@pytest.mark.parametrize(("make", "change"), [
    (lambda: np.arange(4, dtype=np.float64), lambda a: a.fill(0.0)),
    (lambda: pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]}), _zero_frame),
], ids=["ndarray", "DataFrame"])
def test_an_async_waiter_does_not_see_the_first_callers_change_in_place(make: Callable[[], Any],
                                                                         change: Callable[..., None],
                                                                         counter: Counter) -> None:
    @memo
    async def load(n: int, gate: Gate) -> Any:
        counter()
        await gate.hold()
        return make()

    async def main() -> tuple[Any, Any]:
        gate = Gate()

        async def first() -> Any:
            r = await load(4, gate)
            change(r)  # this caller changes its own object
            return r

        return await _first_then_waiter(first, lambda: load(4, gate), gate)

    _, waited = asyncio.run(main())
    assert np.asarray(waited).ravel().tolist() == [0.0, 1.0, 2.0, 3.0]
    assert counter.n == 1  # the waiter was served the stored entry


def test_an_async_waiters_generator_argument_is_advanced_as_by_a_hit(counter: Counter) -> None:
    @memo(ignore=["gate"])
    async def sample(rng: np.random.Generator, n: int, gate: Gate) -> Any:
        counter()
        await gate.hold()
        return rng.normal(size=n)

    async def main() -> tuple[Any, Any]:
        gate = Gate()

        async def caller() -> float:
            rng = np.random.default_rng(0)
            await sample(rng, 2, gate)
            return float(rng.normal())

        return await _first_then_waiter(caller, caller, gate)

    first, waited = asyncio.run(main())
    rng = np.random.default_rng(0)
    rng.normal(size=2)
    assert first == waited == float(rng.normal())
    assert counter.n == 1


def test_an_async_waiter_in_another_global_random_state_runs_the_body(counter: Counter) -> None:
    @memo
    async def draw(n: int, gate: Gate) -> list[float]:
        counter()
        await gate.hold()
        return [random.random() for _ in range(n)]

    async def main() -> tuple[Any, Any]:
        gate = Gate()
        random.seed(0)
        return await _first_then_waiter(lambda: draw(2, gate), lambda: draw(2, gate), gate)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first, waited = asyncio.run(main())
    random.seed(0)
    plain = [[random.random() for _ in range(2)] for _ in range(2)]
    assert [first, waited] == plain  # the waiter drew where the first caller left the generator
    assert counter.n == 2


LOG: list[str] = []


def test_an_async_waiter_runs_a_body_whose_result_was_not_stored(counter: Counter) -> None:
    @memo
    async def record(event: str, gate: Gate) -> list[int]:
        counter()
        await gate.hold()
        LOG.append(event)  # changes a global in place: returned, not stored
        return [len(LOG)]

    LOG.clear()

    async def main() -> tuple[Any, Any]:
        gate = Gate()  # released once the waiter waits: its own run then goes straight through
        return await _first_then_waiter(lambda: record("click", gate), lambda: record("click", gate), gate)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first, waited = asyncio.run(main())
    assert (first, waited, LOG) == ([1], [2], ["click", "click"])
    assert counter.n == 2


@pytest.mark.parametrize("how", ["environment", "skip_if"])
def test_an_async_waiter_gets_its_own_object_when_nothing_was_stored(how: str, counter: Counter,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTEBOOK_MEMO_TEST_STAGE", raising=False)

    @memo(skip_if=(lambda r: True) if how == "skip_if" else None)
    async def setup(n: int, gate: Gate) -> dict[str, list[str]]:
        counter()
        await gate.hold()
        if how == "environment":
            os.environ["NOTEBOOK_MEMO_TEST_STAGE"] = "ready"  # leaves the environment changed: not stored
        return {"rows": []}

    async def main() -> tuple[Any, Any]:
        gate = Gate()

        async def first() -> dict[str, list[str]]:
            r = await setup(1, gate)
            r["rows"].append("mine")
            return r

        return await _first_then_waiter(first, lambda: setup(1, gate), gate)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first, waited = asyncio.run(main())
    assert first is not waited
    assert waited == {"rows": []}
    assert counter.n == 2


# -- memo.batch: repeated items ---------------------------------------------------------------------------------


@pytest.mark.parametrize("container", [list, tuple])
def test_a_repeated_batch_item_gets_its_own_object_on_a_miss_and_on_a_hit(container: type, counter: Counter) -> None:
    @memo.batch("xs", progress=False)
    def rows(xs: list[str]) -> Any:
        counter()
        return container({"id": x, "tags": []} for x in xs)

    for _ in range(2):  # a miss, then a hit
        r = rows(["a", "b", "a", "a"])
        assert type(r) is container
        r[0]["tags"].append("first")
        assert list(r) == [{"id": "a", "tags": ["first"]}, {"id": "b", "tags": []}, {"id": "a", "tags": []},
                           {"id": "a", "tags": []}]
        assert r[2] is not r[3]
    assert counter.n == 1
    assert list(rows(["a"])) == [{"id": "a", "tags": []}]  # what was stored is what the body returned


def test_a_repeated_item_of_an_async_batch_gets_its_own_object(counter: Counter) -> None:
    @memo.batch("xs", progress=False)
    async def rows(xs: list[str]) -> list[dict[str, Any]]:
        counter()
        return [{"id": x} for x in xs]

    for _ in range(2):
        first, again = asyncio.run(rows(["a", "a"]))
        assert first == again and first is not again
    assert counter.n == 1


def test_a_repeated_object_array_item_of_a_batch_gets_its_own_object() -> None:
    @memo.batch("xs", progress=False)
    def boxes(xs: list[int]) -> Any:
        out = np.empty(len(xs), dtype=object)
        out[:] = [[x] for x in xs]
        return out

    for _ in range(2):
        r = boxes([1, 1])
        assert r[0] == r[1] == [1] and r[0] is not r[1]


# -- memo.batch: an item whose result cannot be pickled -----------------------------------------------------------


def test_a_batch_item_that_cannot_be_pickled_leaves_the_others_stored() -> None:
    import threading

    class Calls(list):  # type: ignore[type-arg]
        def __memo_key__(self) -> str:
            return "calls"

    calls = Calls()

    @memo.batch("xs", progress=False)
    def handles(xs: list[str], log: Calls = calls) -> list[Any]:
        log.append(list(xs))
        return [threading.Lock() if x == "lock" else x.upper() for x in xs]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = handles(["a", "b", "lock"])
        again = handles(["a", "b", "lock"])
        assert handles(["a", "b"]) == ["A", "B"]
    assert first[:2] == again[:2] == ["A", "B"]
    assert list(calls) == [["a", "b", "lock"], ["lock"]]
    messages = [str(w.message) for w in caught]
    assert not any("not being stored" in m for m in messages), messages  # the directory is fine
    pickled = [m for m in messages if "cannot be pickled" in m]
    assert len(pickled) == 1 and "item 2 of 'xs'" in pickled[0] and "lock" in pickled[0], messages


def test_an_async_batch_chunk_of_one_unpicklable_item_leaves_the_other_chunks_stored() -> None:
    import threading

    class Calls(list):  # type: ignore[type-arg]
        def __memo_key__(self) -> str:
            return "calls"

    calls = Calls()

    @memo.batch("xs", batch_size=1, progress=False)
    async def handles(xs: list[str], log: Calls = calls) -> list[Any]:
        log.extend(xs)
        return [threading.Lock() if x == "lock" else x.upper() for x in xs]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            asyncio.run(handles(["lock", "a"]))
    assert list(calls) == ["lock", "a", "lock"]
    assert not any("not being stored" in str(w.message) for w in caught)


# -- a body reading paths relative to the current folder ----------------------------------------------------------


def _folders(tmp_path: Path, **contents: str) -> dict[str, Path]:
    """Make one folder per name, each with its own data.txt."""
    made = {}
    for name, text in contents.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / "data.txt").write_text(text)
        made[name] = folder
    return made


@pytest.mark.parametrize("how", ["open", "a process"])
def test_a_body_reading_a_relative_path_keeps_an_entry_per_folder(how: str, tmp_path: Path, counter: Counter,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    folders = _folders(tmp_path, A="from A", B="from B", C="from C")

    @memo
    def load(name: str) -> str:
        counter()
        if how == "a process":  # started in the current folder: what it reads is not seen
            return subprocess.run(["cat", name], capture_output=True, text=True, check=True).stdout
        with open(name, encoding="utf-8") as fh:
            return fh.read()

    for step, where in enumerate("ABAB"):
        monkeypatch.chdir(folders[where])
        assert load("data.txt") == f"from {where}"
        assert load.last_hit is (step >= 2)
    assert counter.n == 2
    if how == "open":  # each folder's entry still checks the files its run read (a process's reads are not seen)
        (folders["A"] / "data.txt").write_text("from A, changed")
        monkeypatch.chdir(folders["A"])
        assert load("data.txt") == "from A, changed" and not load.last_hit
        monkeypatch.chdir(folders["B"])
        assert load("data.txt") == "from B" and load.last_hit
    monkeypatch.chdir(folders["C"])
    report = load.explain("data.txt")
    assert not report.hit and any(f"current folder ({folders['C']})" in reason for reason in report.reasons), report
    assert load("data.txt") == "from C" and not load.last_hit


def test_a_relative_read_and_a_global_random_draw_key_by_both(tmp_path: Path, counter: Counter,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    folders = _folders(tmp_path, A="a", B="b")

    @memo
    def noisy(name: str) -> tuple[str, float]:
        counter()
        with open(name, encoding="utf-8") as fh:
            return fh.read(), random.random()

    random.seed(0)
    draws = [random.random(), random.random()]
    for where in "ABAB":
        monkeypatch.chdir(folders[where])
        random.seed(0)
        assert noisy("data.txt") == (where.lower(), draws[0])
        assert random.random() == draws[1]  # a hit leaves the generator where the body left it
    assert counter.n == 2
    random.seed(5)  # another state: computed again
    noisy("data.txt")
    assert counter.n == 3


_CWD_SCRIPT = """
import sys
from notebook_memo import memo

@memo
def load(name):
    with open(name, encoding="utf-8") as fh:
        return fh.read()

print(load("data.txt"), load.last_hit)
"""


def test_processes_in_two_folders_each_keep_their_entry(tmp_path: Path, cache_dir: Path) -> None:
    folders = _folders(tmp_path, A="from A", B="from B")
    script = tmp_path / "load.py"
    script.write_text(_CWD_SCRIPT)
    seen = []
    for seed, where in enumerate("ABAB"):
        env = worker_env(cache_dir, PYTHONHASHSEED=str(seed))
        out = subprocess.run([sys.executable, str(script)], cwd=folders[where], env=env, capture_output=True,
                             text=True, timeout=120, check=True)
        seen.append(out.stdout.strip())
    assert seen == ["from A False", "from B False", "from A True", "from B True"]


def test_a_memo_cell_reading_a_relative_path_keeps_an_entry_per_folder(shell: Shell, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    folders = _folders(tmp_path, A="from A", B="from B")
    shell.run("%load_ext notebook_memo")
    shell.run("class _Runs(dict):\n    def __memo_key__(self): return 'runs'\nRUNS = _Runs()")
    cell = """
        %%memo
        RUNS['n'] = RUNS.get('n', 0) + 1
        text = open("data.txt", encoding="utf-8").read()
        """
    for where in "ABAB":
        monkeypatch.chdir(folders[where])
        shell.run(cell)
        assert shell["text"] == f"from {where}"
    assert shell["RUNS"]["n"] == 2
