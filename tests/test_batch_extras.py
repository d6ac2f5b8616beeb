"""memo.batch keys and warns as @memo does beyond code and arguments: torch's modes and settings a call
runs under, a global it cannot hash, a clock read without ttl=; and async per-instance caches
(memo.per_instance, memo.cached_property) awaited from several event loops at once, or by a caller
that is cancelled while others wait."""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch

from notebook_memo import MemoWarning, memo
from tests.conftest import Counter, Shell

# -- torch's modes and settings ----------------------------------------------------------------------------

_CONTEXTS: dict[str, Callable[[], Any]] = {
    "autocast": lambda: torch.autocast("cpu", dtype=torch.bfloat16),
    "no_grad": torch.no_grad,
    "inference_mode": torch.inference_mode,
}


def _described(values: list[torch.Tensor]) -> list[tuple[Any, ...]]:
    return [(v.dtype, v.requires_grad, v.tolist()) for v in values]


@pytest.mark.filterwarnings("ignore:.*autograd graph")
@pytest.mark.parametrize("context", sorted(_CONTEXTS))
def test_a_batch_under_another_torch_context_is_computed_again(context: str, counter: Counter) -> None:
    w = torch.nn.Parameter(torch.full((1, 1), 1.001))

    def body(xs: list[int]) -> list[torch.Tensor]:
        counter()
        return [(torch.tensor([[float(x)]]) @ w)[0] for x in xs]

    embed = memo.batch("xs", progress=False)(body)
    with _CONTEXTS[context]():
        under = embed([3, 7])
        assert _described(under) == _described(body([3, 7]))
    assert counter.n == 2
    outside = embed([3, 7])
    assert counter.n == 3, "served what was computed under the context"
    assert _described(outside) == _described(body([3, 7]))
    with _CONTEXTS[context]():
        assert _described(embed([3, 7])) == _described(under)
    assert counter.n == 4  # the body again for the comparison above, and no more: each context's entries are served


def test_a_batch_of_tensors_counts_the_default_dtype_though_its_body_never_names_torch(counter: Counter) -> None:
    @memo.batch("xs", progress=False)
    def halves(xs: list[Any]) -> list[Any]:  # an int tensor divided: the default dtype
        counter()
        return [x / 2 for x in xs]

    xs = [torch.arange(3), torch.arange(4)]
    assert [t.dtype for t in halves(xs)] == [torch.float32] * 2
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        assert [t.dtype for t in halves(xs)] == [torch.float64] * 2
    finally:
        torch.set_default_dtype(previous)
    assert [t.dtype for t in halves(xs)] == [torch.float32] * 2
    assert counter.n == 2


def test_a_batch_says_which_torch_mode_changed(counter: Counter) -> None:
    @memo.batch("xs", progress=False)
    def grown(xs: list[torch.Tensor]) -> list[torch.Tensor]:
        counter()
        return [x * 2 for x in xs]

    xs = [torch.ones(2, requires_grad=True)]
    grown(xs)
    with torch.no_grad():
        grown(xs)
    assert counter.n == 2
    assert "torch's modes changed" in str(grown.explain_last())


# -- warnings @memo gives ----------------------------------------------------------------------------------

_KNOB = """
import time, warnings
from notebook_memo import memo

class Knob:
    def __init__(self): self.level = 1
    def __reduce_ex__(self, protocol): raise TypeError("no")
KNOB = Knob()
"""


def _warned(shell: Shell, source: str) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shell.run(source)
    return [str(w.message) for w in caught if issubclass(w.category, MemoWarning)]


def test_a_batch_warns_once_of_a_global_it_cannot_hash_as_memo_does(shell: Shell) -> None:
    shell.run(_KNOB)
    shell.run("def body(xs): return [x * KNOB.level for x in xs]")
    said = _warned(shell, "memo(body)([1])")
    assert len(said) == 1 and "'KNOB' cannot be hashed" in said[0]
    shell.run("def body(xs): return [x * KNOB.level for x in xs]")  # the same name again: warned once
    assert _warned(shell, "scaled = memo.batch('xs', progress=False)(body); scaled([1, 2])") == []
    shell.run("def scaled_up(xs): return [x * KNOB.level for x in xs]")
    batch = _warned(shell, "scaled_up = memo.batch('xs', progress=False)(scaled_up); scaled_up([1, 2])")
    assert [m.replace("scaled_up", "body") for m in batch] == said
    assert _warned(shell, "scaled_up([3])") == []
    assert "not part of the key (cannot be hashed): KNOB" in str(shell.run("scaled_up.explain([1, 2])"))


def test_a_batch_warns_once_of_a_clock_read_without_ttl_as_memo_does(shell: Shell) -> None:
    shell.run(_KNOB)
    shell.run("def stamped(xs): return [(x, int(time.time())) for x in xs]")
    said = _warned(shell, "memo(stamped)([1])")
    assert len(said) == 1 and "reads the clock" in said[0] and "Pass ttl=" in said[0]
    shell.run("def stamps(xs): return [(x, int(time.time())) for x in xs]")
    batch = _warned(shell, "stamps = memo.batch('xs', progress=False)(stamps); stamps([1, 2])")
    assert [m.replace("stamps", "stamped") for m in batch] == said
    assert _warned(shell, "stamps([3])") == []
    for items in ("[1, 2]", "[1, 4]"):  # as the warning says: explain() lists where it reads the clock
        assert "it reads the clock (stamps: time.time)" in str(shell.run(f"stamps.explain({items})"))
    shell.run("def timed(xs): return [(x, int(time.time())) for x in xs]")
    assert _warned(shell, "timed = memo.batch('xs', progress=False, ttl='1h')(timed); timed([1])") == []


def test_a_batch_warns_of_a_clock_read_in_the_code_of_another_argument_s_class(shell: Shell) -> None:
    shell.run(_KNOB + """
class Stamper:
    def __memo_key__(self): return "stamper"
    def now(self): return int(time.time())
""")
    shell.run("def stamped(xs, by): return [(x, by.now()) for x in xs]")
    said = _warned(shell, "memo(stamped)([1], Stamper())")
    assert len(said) == 1 and "reads the clock" in said[0]
    shell.run("def stamps(xs, by): return [(x, by.now()) for x in xs]")
    batch = _warned(shell, "stamps = memo.batch('xs', progress=False)(stamps); stamps([1, 2], Stamper())")
    assert len(batch) == 1 and "reads the clock" in batch[0] and "Pass ttl=" in batch[0]


# -- async per-instance caches across event loops ----------------------------------------------------------


class _Report:
    """An object whose async cached method and property run until ``release`` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()  # a body began
        self.runs = 0

    async def _work(self, value: Any) -> Any:
        self.runs += 1
        self.entered.set()
        while not self.release.is_set():
            await asyncio.sleep(0.001)
        return value

    @memo.per_instance
    async def rows(self, year: int) -> list[int]:
        return await self._work([year] * 3)  # type: ignore[no-any-return]

    @memo.cached_property
    async def summary(self) -> str:
        return await self._work("sum")  # type: ignore[no-any-return]


_GETTERS: dict[str, Callable[[_Report], Any]] = {
    "per_instance": lambda report: report.rows(2025),
    "cached_property": lambda report: report.summary,
}


@pytest.mark.parametrize("kind", sorted(_GETTERS))
def test_an_async_per_object_cache_awaited_from_two_loops_at_once_gives_both_the_value(kind: str) -> None:
    report, get = _Report(), _GETTERS[kind]
    expected = asyncio.run(_plain(get, _Report()))
    got: dict[str, Any] = {}

    def first() -> None:
        got["first"] = _outcome(lambda: asyncio.run(get(report)))

    async def second_waits() -> Any:
        task = asyncio.ensure_future(get(report))
        for _ in range(3):  # the task runs to its first wait: the other loop's call in progress
            await asyncio.sleep(0)
        report.release.set()
        return await task

    thread = threading.Thread(target=first)
    thread.start()
    assert report.entered.wait(60)
    got["second"] = _outcome(lambda: asyncio.run(second_waits()))
    thread.join(60)
    assert got == {"first": expected, "second": expected}
    assert asyncio.run(_plain(get, report)) == expected and report.runs <= 2  # then served


@pytest.mark.parametrize("kind", sorted(_GETTERS))
def test_an_async_per_object_cache_whose_computing_caller_is_cancelled_serves_the_one_waiting(kind: str) -> None:
    report, get = _Report(), _GETTERS[kind]

    async def main() -> Any:
        computing = asyncio.ensure_future(get(report))
        while not report.entered.is_set():
            await asyncio.sleep(0)
        waiting = asyncio.ensure_future(get(report))
        for _ in range(3):
            await asyncio.sleep(0)  # it waits on the call in progress
        computing.cancel()
        report.release.set()
        return await _settled(waiting)

    expected = asyncio.run(_plain(get, _Report()))
    assert asyncio.run(main()) == expected
    assert asyncio.run(_plain(get, report)) == expected and report.runs == 2  # the waiter took over, then served


async def _plain(get: Callable[[_Report], Any], report: _Report) -> Any:
    report.release.set()
    return await get(report)


async def _settled(task: asyncio.Future[Any]) -> Any:
    try:
        return await task
    except BaseException as exc:  # the test compares what the caller got
        return f"{type(exc).__name__}: {exc}"


def _outcome(run: Callable[[], Any]) -> Any:
    try:
        return run()
    except BaseException as exc:  # the test compares what the caller got
        return f"{type(exc).__name__}: {exc}"
