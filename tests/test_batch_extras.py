"""memo.batch keys and warns as @memo does beyond code and arguments: torch's modes and settings a call
runs under, a global it cannot hash, a clock read without ttl=."""

from __future__ import annotations

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
