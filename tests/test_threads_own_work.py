"""Work of ours done in a thread that runs no body, while another thread's body runs.

Such a thread is taken to work for the running bodies (a pool they started), so what it reads is taken for
their reads. The library's own work there is not theirs: a memoized function's ``explain``, ``is_cached``,
``clear``, ``cache_info``..., the ``%memo`` line commands and the command line, called in-process, read and
delete the store's files, and must neither keep the body's result from being stored nor make its next call
miss. Each test meets its threads at events: the order of what they do is fixed, never timed.
"""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from notebook_memo import memo
from notebook_memo._cli import main as cli_main
from tests.conftest import RUNS_SETUP, Counter, Shell, rewrite_keeping_stat, settled


class _Gate:
    """Events two threads meet at; keyed as a constant (it is not what a body computes from)."""

    def __init__(self) -> None:
        self.entered, self.go = threading.Event(), threading.Event()

    def __memo_key__(self) -> str:
        return "gate"


def _beside_a_running_body(counter: Counter, neighbour: Callable[[], Any],
                           cache_dir: Path | None = None) -> Callable[[], Any]:
    """Run ``neighbour`` in a thread of its own while a memoized body runs in another (its results in
    ``cache_dir``, else the default folder); return what gives the body's call again (from a third thread, as
    the first ran in one) and its report."""
    gate = _Gate()

    @memo(cache_dir=None if cache_dir is None else str(cache_dir))
    def slow(x: int, gate: _Gate, counter: Counter) -> int:
        counter()
        gate.entered.set()
        assert gate.go.wait(60)
        return x * 2

    results: list[int] = []
    failed: list[BaseException] = []

    def run_neighbour() -> None:
        try:
            neighbour()
        except BaseException as exc:  # said in the test's thread
            failed.append(exc)

    body = threading.Thread(target=lambda: results.append(slow(3, gate, counter)))
    body.start()
    assert gate.entered.wait(60)
    other = threading.Thread(target=run_neighbour)
    other.start()
    other.join()
    gate.go.set()
    body.join()
    assert not failed, failed
    assert results == [6] and counter.n == 1

    def again() -> Any:
        found: list[int] = []
        thread = threading.Thread(target=lambda: found.append(slow(3, gate, counter)))
        thread.start()
        thread.join()
        assert found == [6]
        return slow.explain_last()

    return again


def _elsewhere(tmp_path: Path) -> Any:
    """A memoized function whose results live in a cache folder of their own, with one entry stored."""

    @memo(cache_dir=str(tmp_path / "elsewhere"))
    def other(x: int) -> int:
        return x + 1

    other(1)
    return other


@pytest.mark.parametrize("work", ["clear", "explain", "is_cached", "cache_info", "entries", "invalidate",
                                  "clear_stale", "current_code"])
def test_another_threads_work_on_a_memoized_function_is_not_what_a_running_body_reads(
        tmp_path: Path, counter: Counter, work: str) -> None:
    """A thread that runs no body calls a method of a memoized function whose store is another folder, then
    stores there: the store's index it opened and read is not the body's read, nor what changed under it."""
    other = _elsewhere(tmp_path)

    def neighbour() -> None:
        getattr(other, work)(*([1] if work in ("explain", "is_cached", "invalidate") else []))
        other(2)
        settled()  # the index's files change now, while the body runs

    again = _beside_a_running_body(counter, neighbour)
    report = again()
    assert counter.n == 1, report


@pytest.mark.parametrize("work", ["explain", "is_cached", "invalidate", "explain_last"])
def test_another_threads_work_on_a_batch_is_not_what_a_running_body_reads(
        tmp_path: Path, counter: Counter, work: str) -> None:
    """The same for a ``memo.batch`` function's methods."""

    @memo.batch("xs", cache_dir=str(tmp_path / "elsewhere"))
    def other(xs: list[int]) -> list[int]:
        return [x + 1 for x in xs]

    other([1, 2])

    def neighbour() -> None:
        getattr(other, work)(*([] if work == "explain_last" else [[1, 2]]))
        other([3])
        settled()

    again = _beside_a_running_body(counter, neighbour)
    report = again()
    assert counter.n == 1, report


def _stored_in_the_default_folder() -> Any:
    """A memoized function of the default cache folder, with one entry stored."""

    @memo
    def other(x: int) -> int:
        return x + 1

    other(1)
    return other


@pytest.mark.parametrize("line", ["info", "clear other", "explain other", "clear --stale"])
def test_memo_line_commands_in_another_thread_are_not_what_a_running_body_reads(
        shell: Shell, tmp_path: Path, counter: Counter, line: str) -> None:
    """``%memo`` run from a thread that runs no body (the notebook's main thread is never taken to work for
    one), while a body whose results live in another folder runs: the default folder's index it reads is ours."""
    shell.run("%load_ext notebook_memo")
    other = _stored_in_the_default_folder()
    shell.ip.user_ns["other"] = other

    def neighbour() -> None:
        shell.ip.run_line_magic("memo", line)
        other(2)
        settled()

    again = _beside_a_running_body(counter, neighbour, tmp_path / "body")
    report = again()
    assert counter.n == 1, report


@pytest.mark.parametrize("argv", [["info"], ["clear", "--function", "other"], ["prune", "--keep-latest"],
                                  ["prune", "--max-size", "1GB"]])
def test_the_command_line_called_in_another_thread_is_not_what_a_running_body_reads(
        tmp_path: Path, counter: Counter, argv: list[str]) -> None:
    """The command line's functions, called in-process from a thread that runs no body, on the default folder
    while a body whose results live in another folder runs."""
    other = _stored_in_the_default_folder()

    def neighbour() -> None:
        assert cli_main(argv) == 0
        other(2)
        settled()

    again = _beside_a_running_body(counter, neighbour, tmp_path / "body")
    report = again()
    assert counter.n == 1, report


def test_a_memo_cell_run_in_another_thread_is_not_what_a_running_body_reads(
        shell: Shell, tmp_path: Path, counter: Counter) -> None:
    """A ``%%memo`` cell run from a thread that runs no body: its lookup and store in the default folder are
    ours, and what the cell itself reads is its own (recorded for it, not for the body another thread runs)."""
    shell.run("%load_ext notebook_memo")
    data = tmp_path / "data.txt"
    data.write_text("1")
    shell.ip.user_ns["path"] = str(data)

    def neighbour() -> None:
        for _ in range(2):  # run, then restored
            result = shell.ip.run_cell("%%memo\nwith open(path) as f:\n    z = int(f.read()) + 1")
            assert result.success
        settled()
        data.write_text("2")  # the cell's input, not the body's

    again = _beside_a_running_body(counter, neighbour, tmp_path / "body")
    report = again()
    assert counter.n == 1, report
    assert shell["z"] == 2


def test_a_pool_made_before_the_body_and_handed_its_reads_has_them_recorded(tmp_path: Path, counter: Counter) -> None:
    """The other side of the rule: a thread of a pool made (and started) before the body, which the body hands a
    read, works for it; that read is the body's, so a change of the file is a miss, never a stale hit."""
    from concurrent.futures import ThreadPoolExecutor

    data = tmp_path / "data.txt"
    data.write_text("1")
    class Pool(ThreadPoolExecutor):
        def __memo_key__(self) -> str:
            return "pool"  # keyed as a constant: not what the body computes from

    with Pool(1) as pool:
        pool.submit(int, "0").result()  # its thread runs before any body begins

        @memo
        def load(path: str, counter: Counter) -> int:
            counter()
            return pool.submit(lambda: int(Path(path).read_text())).result()

        assert load(str(data), counter) == 1 and load(str(data), counter) == 1 and counter.n == 1
        rewrite_keeping_stat(data, "7")
        assert load(str(data), counter) == 7 and counter.n == 2


class _LoopGate:
    """asyncio events a coroutine body and another task of its loop meet at; keyed as a constant."""

    def __init__(self) -> None:
        self.entered, self.go = asyncio.Event(), asyncio.Event()

    def __memo_key__(self) -> str:
        return "loop gate"


def _in_a_loop_thread(coroutine: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run ``coroutine()`` in an event loop of a thread of its own (not the main thread); return its value."""
    box: list[Any] = []
    thread = threading.Thread(target=lambda: box.append(asyncio.run(coroutine())))
    thread.start()
    thread.join()
    assert box
    return box[0]


def test_another_task_of_a_coroutine_bodys_loop_is_not_what_the_body_reads(tmp_path: Path, counter: Counter) -> None:
    """A coroutine body running in a loop outside the main thread, while another task of that loop (made before
    it, working for no body) reads a file and removes it, and looks up a memoized function in another folder:
    neither is the body's, whose result is stored and served."""
    other = _elsewhere(tmp_path)
    scratch = tmp_path / "scratch.txt"

    @memo
    async def slow(x: int, gate: _LoopGate, counter: Counter) -> int:
        counter()
        gate.entered.set()
        await gate.go.wait()
        return x * 2

    async def neighbour(gate: _LoopGate) -> None:
        await gate.entered.wait()
        scratch.write_text("1")
        assert scratch.read_text() == "1"
        scratch.unlink()
        assert other.is_cached(1)
        other(2)
        settled()
        gate.go.set()

    async def both() -> int:
        gate = _LoopGate()
        side = asyncio.get_running_loop().create_task(neighbour(gate))
        value = await slow(3, gate, counter)
        await side
        return int(value)

    async def alone() -> int:
        return int(await slow(3, _LoopGate(), counter))  # served: the gate is not waited at

    assert _in_a_loop_thread(both) == 6 and counter.n == 1
    assert _in_a_loop_thread(alone) == 6 and counter.n == 1, slow.explain_last()


def test_a_coroutine_bodys_executor_reads_are_its_reads(tmp_path: Path, counter: Counter) -> None:
    """A coroutine body in a loop outside the main thread hands a read to the loop's executor: that thread works
    for it, so a change of the file is a miss."""
    data = tmp_path / "data.txt"
    data.write_text("1")

    @memo
    async def load(path: str, counter: Counter) -> int:
        counter()
        text = await asyncio.get_running_loop().run_in_executor(None, Path(path).read_text)
        return int(text)

    async def call() -> int:
        return int(await load(str(data), counter))

    assert _in_a_loop_thread(call) == 1 and _in_a_loop_thread(call) == 1 and counter.n == 1
    rewrite_keeping_stat(data, "7")
    assert _in_a_loop_thread(call) == 7 and counter.n == 2


def test_another_threads_work_on_a_memoized_function_is_not_what_a_top_level_loader_reads(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No body runs, but a notebook's ``functools.lru_cache`` loader fills at the top level, its reads noted
    from any thread (a pool's) so that a body it later serves is stored. A memoized function's ``is_cached``,
    called from another thread meanwhile, opens its store's index: that is not the loader's read (which would
    leave what the loader read unknown, and the body it serves refused)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d.txt").write_text("D1")
    shell.run("%load_ext notebook_memo")
    shell.run(RUNS_SETUP)
    other = _elsewhere(tmp_path)
    gate = _Gate()
    shell.ip.user_ns["gate"] = gate
    shell.run("""
        import functools

        @functools.lru_cache
        def load(name):
            gate.entered.set()
            assert gate.go.wait(60)
            with open(name) as f:
                return f.read()
    """)

    def neighbour() -> None:
        assert gate.entered.wait(60)
        try:
            other.is_cached(1)
        finally:
            gate.go.set()

    thread = threading.Thread(target=neighbour)
    thread.start()
    try:
        shell.run("df = load('d.txt')")  # a look at the data, at the top level
    finally:
        gate.go.set()
        thread.join()
    shell.run("""
        @memo
        def show(name):
            ran(name)
            return "<" + load(name) + ">"
    """)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shell.run("first = show('d.txt')")
        shell.run("again = show('d.txt')")
    assert [str(w.message) for w in caught if "lru_cache" in str(w.message)] == []
    assert (shell["first"], shell["again"], shell["RUNS"]) == ("<D1>", "<D1>", {"d.txt": 1})


def test_keep_alive_called_from_another_thread_is_not_what_a_running_body_reads(
        tmp_path: Path, counter: Counter) -> None:
    """``memo.keep_alive()`` from a thread that runs no body, while two bodies run whose results live in two
    folders: renewing the leases of the one's folder (its index, opened there) is not the other's read."""
    gate, beside = _Gate(), Counter()

    @memo(cache_dir=str(tmp_path / "elsewhere"))
    def computing(x: int, gate: _Gate, beside: Counter) -> int:
        beside()
        gate.entered.set()
        assert gate.go.wait(60)
        return x + 1

    def neighbour() -> None:
        thread = threading.Thread(target=computing, args=(1, gate, beside))
        thread.start()
        try:
            assert gate.entered.wait(60)
            memo.keep_alive()
        finally:
            gate.go.set()
            thread.join()
        settled()  # its result is in its folder's index now, while the first body runs

    again = _beside_a_running_body(counter, neighbour)
    report = again()
    assert counter.n == 1 and beside.n == 1, report
