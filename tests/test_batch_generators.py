"""memo.batch and the state its items are computed under: a chunk that draws from a random generator the
body reaches through a global is returned, not stored (its items' results depend on which items share the
chunk, and a hit would leave the generator where it was); Decimal items are keyed by the decimal context."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

from notebook_memo import MemoWarning, memo
from tests.conftest import Shell


def test_a_generator_held_by_a_global_is_not_stored(shell: Shell) -> None:
    shell.run("""
        import numpy as np
        from notebook_memo import memo
        seen = []
        RNG = np.random.default_rng(0)

        @memo.batch("xs", progress=False)
        def noisy(xs):
            seen.append(list(xs))
            return [x + RNG.random() for x in xs]
    """)
    with pytest.warns(MemoWarning, match="RNG"):
        first = shell.run("noisy([1, 2])")
    after_first = shell.run("RNG.random()")
    shell.run("RNG = np.random.default_rng(0)")
    second = shell.run("noisy([1, 2])")
    assert second == first  # the same draws: computed again from the same state
    assert shell.run("RNG.random()") == after_first  # ... and the generator moved on as the plain code moves it
    assert shell["seen"] == [[1, 2], [1, 2]]


RNGS = {"a": np.random.default_rng(1)}


@memo.batch("xs", progress=False)
def _from_a_dict(xs: list[int]) -> list[float]:
    return [x + RNGS["a"].random() for x in xs]


def test_a_generator_inside_a_global_container_is_not_stored() -> None:
    RNGS["a"] = np.random.default_rng(1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = _from_a_dict([1, 2])
    assert any(issubclass(w.category, MemoWarning) for w in caught), [str(w.message) for w in caught]
    RNGS["a"] = np.random.default_rng(1)
    assert _from_a_dict([1, 2]) == first
    assert _from_a_dict.cache_info().hits == 0


SEEDED = np.random.default_rng(5)


@memo.batch("xs", progress=False)
def _reads_without_drawing(xs: list[int]) -> list[int]:
    return [x + SEEDED.bit_generator.state["state"]["state"] % 7 for x in xs]


def test_a_global_generator_only_read_is_stored() -> None:
    first = _reads_without_drawing([1, 2])
    assert _reads_without_drawing([1, 2]) == first
    assert _reads_without_drawing.cache_info().hits == 2


@memo.batch("xs", progress=False)
def _thirds(xs: list[Any]) -> list[Any]:
    return [x / 3 for x in xs]


def test_decimal_items_are_keyed_by_the_decimal_context() -> None:
    import decimal

    ctx = decimal.getcontext()
    saved = ctx.prec
    try:
        ctx.prec = 28
        assert _thirds([decimal.Decimal(1)]) == [decimal.Decimal(1) / 3]
        ctx.prec = 5
        assert _thirds([decimal.Decimal(1)]) == [decimal.Decimal("0.33333")]
    finally:
        ctx.prec = saved
