"""memo.batch keys as @memo does beyond code and arguments: torch's modes and settings a call runs under."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from notebook_memo import memo
from tests.conftest import Counter

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
