"""Keys of arguments that share objects inside containers: ``f(a, [a])`` is not ``f(a, [a.copy()])``, nor is
``f(arr, [arr[:2]])`` the call with a copied slice, whatever holds the shared object (a list, a dict, a tuple, a
dataclass, an attribute, ``**kwargs``, a set), for @memo, per_instance, batch and %%memo cells; equal but distinct
values, and shared immutable ones, still hit after a restart under another hash seed."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from notebook_memo import memo
from tests.conftest import Counter, Shell, run_kernel


def grown(x: list[int], y: list[int]) -> int:
    """Return len(y) while x holds one more item: more than len(y) where y is x; x is left as it was."""
    x.append(1)
    n = len(y)
    x.pop()
    return n


@dataclasses.dataclass
class Box:
    item: list[int]


class Holder:
    def __init__(self, item: list[int]) -> None:
        self.item = item


class Member:
    """Hashable by identity, so a set can hold it; mutable, so the body can tell it from a copy."""

    def __init__(self, item: list[int]) -> None:
        self.item = item


# (name, the container holding y, how the body reaches y in it)
_HOLDERS: list[tuple[str, Callable[[list[int]], Any], Callable[[Any], list[int]]]] = [
    ("list", lambda y: [y], lambda c: c[0]),
    ("dict value", lambda y: {"k": y}, lambda c: c["k"]),
    ("tuple of a list", lambda y: ([y],), lambda c: c[0][0]),
    ("dataclass field", lambda y: Box(y), lambda c: c.item),
    ("attribute", lambda y: Holder(y), lambda c: c.item),
    ("set member's attribute", lambda y: {Member(y)}, lambda c: next(iter(c)).item),
]


@pytest.mark.parametrize(("name", "hold", "reach"), _HOLDERS, ids=[h[0] for h in _HOLDERS])
def test_an_argument_held_inside_another_argument_is_not_its_copy(
        name: str, hold: Callable[[list[int]], Any], reach: Callable[[Any], list[int]], counter: Counter) -> None:
    @memo
    def f(x: list[int], holder: Any) -> int:
        counter()
        return grown(x, reach(holder))

    a = [0]
    assert f(a, hold(a)) == 2
    b = [0]
    assert f(b, hold(b.copy())) == 1  # the same contents, no longer one list: a false hit returned 2
    assert counter.n == 2
    c = [0]
    assert f(c, hold(c)) == 2  # shared again: a hit of the first call
    assert counter.n == 2


def test_a_keyword_argument_s_list_holding_another_argument_is_not_its_copy(counter: Counter) -> None:
    @memo
    def f(x: list[int], **kw: Any) -> int:
        counter()
        return grown(x, kw["k"][0])

    a = [0]
    assert f(a, k=[a]) == 2
    b = [0]
    assert f(b, k=[b.copy()]) == 1
    assert counter.n == 2


def test_two_arguments_holding_one_list_are_not_two_holding_copies(counter: Counter) -> None:
    @memo
    def f(xs: list[list[int]], d: dict[str, list[int]]) -> int:
        counter()
        return grown(xs[0], d["k"])

    a = [0]
    assert f([a], {"k": a}) == 2
    b = [0]
    assert f([b], {"k": list(b)}) == 1
    assert counter.n == 2


def test_identity_inside_a_container_is_keyed(counter: Counter) -> None:
    @memo
    def f(x: list[int], xs: list[list[int]]) -> bool:
        counter()
        return xs[0] is x

    a = [0]
    assert f(a, [a]) is True
    assert f(a, [list(a)]) is False
    assert counter.n == 2


def test_a_view_of_an_array_argument_inside_a_list_is_not_its_copy(counter: Counter) -> None:
    @memo
    def f(arr: np.ndarray, views: list[np.ndarray]) -> float:
        counter()
        arr[0] += 10
        total = float(views[0].sum())
        arr[0] -= 10
        return total

    a = np.zeros(4)
    assert f(a, [a[:2]]) == 10.0
    b = np.zeros(4)
    assert f(b, [b[:2].copy()]) == 0.0
    assert counter.n == 2
    c = np.zeros(4)
    assert f(c, [c[2:]]) == 0.0  # a view sharing no byte with what the body writes: another call again
    assert counter.n == 3


def test_two_items_of_one_list_that_are_one_list_are_keyed(counter: Counter) -> None:
    @memo
    def f(xs: list[list[int]]) -> int:
        counter()
        return grown(xs[0], xs[1])

    a = [0]
    assert f([a, a]) == 2
    b = [0]
    assert f([b, b.copy()]) == 1
    assert counter.n == 2


def test_an_object_in_a_set_and_in_a_list_of_one_argument_is_keyed(counter: Counter) -> None:
    @memo
    def f(pair: tuple[list[Member], set[Member]]) -> bool:
        counter()
        return pair[0][0] is next(iter(pair[1]))

    m = Member([0])
    assert f(([m], {m})) is True
    assert f(([m], {Member([0])})) is False
    assert counter.n == 2


def test_a_per_instance_method_keys_sharing_inside_its_arguments(counter: Counter) -> None:
    class Model:
        @memo.per_instance
        def f(self, x: list[int], xs: list[list[int]]) -> int:
            counter()
            return grown(x, xs[0])

    model = Model()
    a = [0]
    assert model.f(a, [a]) == 2
    b = [0]
    assert model.f(b, [b.copy()]) == 1
    assert counter.n == 2


def test_a_batch_keys_sharing_inside_its_other_arguments(counter: Counter) -> None:
    @memo.batch("items")
    def f(items: list[int], x: list[int], xs: list[list[int]]) -> list[int]:
        counter()
        return [i + grown(x, xs[0]) for i in items]

    a = [0]
    assert f([10], a, [a]) == [12]
    b = [0]
    assert f([10], b, [b.copy()]) == [11]
    assert counter.n == 2


def test_a_cell_keys_sharing_inside_its_inputs(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo")
    cell = "%%memo grow\na.append(3)\nn = len(b[0])\na.pop()"
    shell.run("a = [1, 2]\nb = [list(a)]")
    shell.run(cell)
    assert shell["n"] == 2
    shell.run("a = [1, 2]\nb = [a]")  # the same contents, b's item now a itself
    shell.run(cell)
    assert shell["n"] == 3
    explained = str(shell.run("%memo explain grow"))
    assert "which inputs share objects or memory changed" in explained, explained


_RESTARTED = ["""
from notebook_memo import memo

class Runs(list):
    def __memo_key__(self):
        return "runs"  # what the bodies note is not what they compute

RUNS = Runs()

@memo
def together(x, xs):
    RUNS.append("together")
    return [len(y) for y in xs] + [len(x)]

@memo
def pair(x, y):
    RUNS.append("pair")
    return x + y

class Member:
    def __init__(self, item):
        self.item = item

    def __hash__(self):
        return hash(str(len(self.item)))  # follows the hash seed: so does the set's order

@memo
def members(x, y, ms):
    RUNS.append("members")
    return sorted(len(m.item) + (m.item is x) + 2 * (m.item is y) for m in ms)

shared = [1, 2]
# A set whose order follows the hash seed: its members are numbered by their digests, not by that order.
group = {Member([0] * n) for n in range(8)}
chosen, other = (next(m for m in group if len(m.item) == n).item for n in (5, 2))
OUT["values"] = [together(shared, [shared, [3]]), together([1, 2], [[1, 2], [3]]),
                 pair([1, 2], [1, 2]), pair("ab" * 3, "ab" * 3), pair((1, "ab" * 3), (1, "ab" * 3)),
                 members(chosen, other, group)]
OUT["runs"] = list(RUNS)
"""]


def test_sharing_and_equal_distinct_values_hit_after_a_restart_under_another_hash_seed(cache_dir: Path) -> None:
    first = run_kernel(_RESTARTED, cache_dir, seed=1)
    second = run_kernel(_RESTARTED, cache_dir, seed=2)
    # The shared call and the unshared one with equal contents are two calls; each hits after the restart.
    assert first["runs"] == ["together", "together", "pair", "pair", "pair", "members"]
    assert second["runs"] == [], second["_warnings"]
    assert second["values"] == first["values"]


def test_a_batch_item_that_is_or_holds_another_argument_is_not_its_copy(counter: Counter) -> None:
    @memo.batch("items")
    def f(items: list[Any], x: list[int]) -> list[int]:
        counter()
        return [grown(x, item if type(item) is list else item["k"]) for item in items]

    a = [0]
    assert f([a, {"k": a}], a) == [2, 2]
    b = [0]
    assert f([b.copy(), {"k": b.copy()}], b) == [1, 1]  # equal items, no longer x itself: a false hit gave 2
    assert counter.n == 2
    c = [0]
    assert f([{"k": c}, [0]], c) == [2, 1]  # each item as before: hits, the shared one and the copy
    assert counter.n == 2


def test_a_batch_item_over_another_argument_s_memory_is_not_its_copy(counter: Counter) -> None:
    @memo.batch("rows")
    def f(rows: list[np.ndarray], table: np.ndarray) -> list[float]:
        counter()
        out = []
        for row in rows:
            table += 1
            out.append(float(row.sum()))
            table -= 1
        return out

    t = np.zeros((2, 2))
    assert f([t[0]], t) == [2.0]
    u = np.zeros((2, 2))
    assert f([u[0].copy()], u) == [0.0]
    assert counter.n == 2


def test_sharing_among_arguments_and_tuple_items_keeps_the_bytes_it_was_keyed_by() -> None:
    from notebook_memo.hashing import aliasing_parts, content_hash, things_met

    y, d, arr = [[0]], {"k": [1]}, np.arange(6.0)
    for values in ([y, y], [1, d, 2, d], [(1, y), y], [(y, y)], [d, (y, y)], [arr, arr[:2]], [(arr, arr[2:])]):
        walks: dict[int, Any] = {}
        things_met.walks = walks
        try:
            for value in values:
                content_hash(value)
        finally:
            things_met.walks = None
        # What the arguments and the items of tuple arguments share was keyed without walks: the same bytes now.
        assert aliasing_parts(values, walks) == aliasing_parts(values) != [], values
