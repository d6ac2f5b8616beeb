"""What per-object caches and lru_cache helpers cost and keep: a large ``memo.per_instance`` result stays out of
``vars(obj)`` (the walk for a value holding its object looks through it in bulk, and where it cannot tell keeps
the side table), while one that holds its object deep inside still lets it die; a ``memo.per_instance`` call
whose body fills a ``functools.cached_property`` of its argument is stored and hit, as @memo's is; a miss whose
body calls an lru_cache helper holding many entries does not walk them where its code cannot use a loader handed
to it; and a miss hashes each argument once."""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import warnings
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from notebook_memo import MemoWarning, _lru_helpers, memo, register_hasher


class Table:
    """Its __eq__ is built from vars(): the caches must not show there."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Table) and vars(self) == vars(other)

    __hash__ = None  # type: ignore[assignment]

    @memo.per_instance
    def records(self) -> list[dict[str, Any]]:
        return [{"i": i, "tags": [i]} for i in range(self.n)]

    @memo.per_instance
    def records_then_self(self) -> list[Any]:
        # deep inside many tracked objects, one refers back to the object
        return [{"i": i, "tags": [i]} for i in range(self.n)] + [{"owner": [self]}]

    @memo.cached_property
    def nested(self) -> list[Any]:
        return [[[i], {"k": (i, [i])}] for i in range(self.n)]


def test_a_large_cached_result_leaves_vars_of_its_object_alone() -> None:
    for n in (100, 20_000, 60_000):
        t = Table(n)
        assert len(t.records()) == n and len(t.nested) == n
        assert list(vars(t)) == ["n"], n
        assert t == Table(n)
        assert json.dumps(vars(t)) == f'{{"n": {n}}}'
        assert t.records() is t.records()  # still cached


def test_a_large_cached_result_holding_its_object_deep_inside_still_lets_it_die() -> None:
    t = Table(20_000)
    assert t.records_then_self()[-1]["owner"][0] is t
    gone = weakref.ref(t)
    del t
    gc.collect()
    assert gone() is None


class Walker:
    def __init__(self, n: int) -> None:
        self.n = n

    @memo.per_instance
    def steps(self) -> Any:
        def walk() -> Any:
            yield from range(self.n)

        return walk()  # a generator: its frame holds self through its closure

    @memo.per_instance
    def hooks(self) -> list[Any]:
        return [{"i": i} for i in range(20_000)] + [self.__repr__]  # a bound method, past 20,000 objects


def test_a_cached_generator_or_bound_method_that_holds_its_object_lets_it_die() -> None:
    for method in ("steps", "hooks"):
        w = Walker(3)
        getattr(w, method)()
        gone = weakref.ref(w)
        del w
        gc.collect()
        assert gone() is None, method


class Shape:
    def __init__(self, r: float) -> None:
        self.r = r

    @functools.cached_property
    def area(self) -> float:
        return 3.0 * self.r**2

    @functools.cached_property
    def history(self) -> list[float]:
        return []


class Costs:
    def __init__(self) -> None:
        self.runs = 0

    @memo.per_instance
    def cost(self, shape: Shape) -> float:
        self.runs += 1
        return shape.area * 10

    @memo.per_instance
    async def acost(self, shape: Shape) -> float:
        self.runs += 1
        return shape.area * 10

    @memo.per_instance
    def logged(self, shape: Shape) -> float:
        self.runs += 1
        shape.history.append(shape.r)  # fills the property, then changes what it filled
        return shape.r


def test_per_instance_filling_a_functools_cached_property_of_its_argument_is_stored_and_hit() -> None:
    costs = Costs()
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        assert [costs.cost(Shape(2)) for _ in range(3)] == [120.0] * 3
        assert costs.runs == 1
        assert [asyncio.run(costs.acost(Shape(3))) for _ in range(3)] == [270.0] * 3
        assert costs.runs == 2


def test_per_instance_changing_what_it_filled_into_its_argument_is_still_not_stored() -> None:
    costs = Costs()
    with pytest.warns(MemoWarning, match="changed its argument 'shape' in place"):
        costs.logged(Shape(2))
    shape = Shape(2)
    assert costs.logged(shape) == 2 and shape.history == [2]  # not served: the body ran and appended
    assert costs.runs == 2


class Draws:
    @memo.per_instance
    def draw(self, rng: Any) -> float:
        return float(rng.random())


def test_per_instance_drawing_from_a_generator_argument_says_how_to_cache_it_not_to_copy_it() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Draws().draw(np.random.default_rng(0))
    said = [str(w.message) for w in caught if issubclass(w.category, MemoWarning)]
    assert len(said) == 1 and "drew from the random generator in its argument 'rng'" in said[0], said
    assert "Change a copy" not in said[0] and "@memo" in said[0]


def _counting_walks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the cache keys of lru_cache functions looked through for handed-down loaders, one number per walk."""
    walks: list[int] = []
    walk = _lru_helpers._loaders_among

    def counted(keys: list[Any], found: dict[int, Any]) -> None:
        walks.append(len(keys))
        walk(keys, found)

    monkeypatch.setattr(_lru_helpers, "_loaders_among", counted)
    return walks


def test_misses_served_by_an_lru_helper_with_many_entries_look_through_its_keys_once(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    walks = _counting_walks(monkeypatch)

    @functools.lru_cache(maxsize=100_000)  # bounded: its keys in a dict too, the newest last
    def pair(a: int, b: int) -> int:
        return a * 31 + b

    for i in range(100):
        for j in range(500):
            pair(i, j)

    @memo
    def score(k: int) -> int:
        return pair(k % 100, k % 500) + k

    assert [score(k) for k in range(20)] == [pair(k % 100, k % 500) + k for k in range(20)]
    assert sum(walks) == 50_000  # once, on the first miss; the later misses find nothing new
    walks.clear()
    pair(1000, 1), pair(1000, 2)
    assert score(20) == pair(20, 20) + 20 and sum(walks) == 2  # only the entries added since


def test_a_loader_handed_after_the_keys_were_looked_through_is_still_found(tmp_path: Path) -> None:
    data = tmp_path / "d.txt"
    data.write_text("old")

    @functools.lru_cache
    def raw(path: str) -> str:
        return Path(path).read_text()

    @functools.lru_cache
    def parsed(loader: Any, path: str) -> str:
        return loader(path).upper()

    def plain(path: str) -> str:
        return "plain"

    parsed(plain, str(data))
    assert raw not in _lru_helpers.inner_helpers(parsed)
    parsed(raw, str(data))  # after the first walk: only this entry is new
    assert raw in _lru_helpers.inner_helpers(parsed)
    parsed.cache_clear()
    parsed(plain, str(data))  # cleared, then refilled as long as before: walked again, raw gone
    assert raw not in _lru_helpers.inner_helpers(parsed)
    parsed(raw, str(data))
    assert raw in _lru_helpers.inner_helpers(parsed)


def test_a_loader_whose_only_entry_a_bounded_cache_dropped_is_no_longer_found(tmp_path: Path) -> None:
    @functools.lru_cache
    def raw(path: str) -> str:
        return path

    @functools.lru_cache(maxsize=2)
    def parsed(loader: Any, path: str) -> str:
        return loader(path).upper()

    parsed(raw, "a"), parsed(str, "b")
    assert raw in _lru_helpers.inner_helpers(parsed)
    parsed(str, "c")  # raw's entry evicted: the newest key seen is still there, one key is new, the count is not
    assert raw not in _lru_helpers.inner_helpers(parsed)


class Big:
    """Hashed through a registered hasher that counts how often it is asked (in HASHED: the class is keyed too)."""

    def __init__(self, data: list[float]) -> None:
        self.data = data


HASHED: list[Big] = []


def _big_key(big: Big) -> Any:
    HASHED.append(big)
    return big.data


register_hasher(Big, _big_key)


class Uses:
    def __init__(self) -> None:
        self.runs = 0

    @memo.per_instance
    def total(self, big: Big, k: int) -> float:
        self.runs += 1
        return sum(big.data) + k

    @memo.per_instance
    def same(self, x: list[int], y: list[int], **rest: Any) -> tuple[bool, ...]:
        self.runs += 1
        return (x is y, *(v is x for v in rest.values()))


def test_a_per_instance_miss_hashes_each_argument_once_for_its_key_and_once_after_the_call() -> None:
    uses, big = Uses(), Big([1.0, 2.0])
    HASHED.clear()
    assert uses.total(big, 1) == 4.0 and len(HASHED) == 2  # the key (also what it was before), then the check
    assert uses.total(Big([1.0, 2.0]), 1) == 4.0 and uses.runs == 1 and len(HASHED) == 3  # a hit: the key only


def test_per_instance_keys_which_arguments_are_one_object() -> None:
    uses, a = Uses(), [1, 2]
    assert uses.same(a, a) == (True,)
    assert uses.same(a, [1, 2]) == (False,)
    assert uses.same([1, 2], [1, 2], z=[1, 2]) == (False, False)
    b = [1, 2]
    assert uses.same(b, [1, 2], z=b) == (False, True)
    assert uses.same(a, a) == (True,) and uses.runs == 4
