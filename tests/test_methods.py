"""Methods: persistent @memo keyed by the object's content, and per-object caches."""

from __future__ import annotations

import asyncio
import copy
import pickle
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from notebook_memo import memo
from notebook_memo.hashing import content_hash
from tests.conftest import Counter, run_kernel

# -- persistent methods ---------------------------------------------------------------------


class Model:
    calls = Counter()

    def __init__(self, weights: list[float]) -> None:
        self.weights = weights

    @memo
    def predict(self, x: float) -> float:
        Model.calls()
        return sum(w * x for w in self.weights)


@pytest.fixture(autouse=True)
def fresh_counter() -> None:
    Model.calls.n = 0


def test_equal_objects_share_results() -> None:
    assert Model([1.0, 2.0]).predict(2.0) == 6.0
    assert Model([1.0, 2.0]).predict(2.0) == 6.0
    assert Model.calls.n == 1


def test_changed_attributes_miss() -> None:
    m = Model([1.0])
    m.predict(1.0)
    m.weights.append(5.0)
    assert m.predict(1.0) == 6.0
    assert Model.calls.n == 2


def test_objects_created_and_destroyed_in_a_loop_get_their_own_results() -> None:
    # The bug this guards against: a key on repr(self) (which embeds id(self)) served a new
    # object the result of a dead one that happened to have the same id.
    class Report:
        def __init__(self, n: int) -> None:
            self.n = n

        def __repr__(self) -> str:
            return object.__repr__(self)

        @memo
        def total(self) -> int:
            return self.n * 10

    for i in range(300):
        report = Report(i)
        assert report.total() == i * 10
        del report


def test_memo_key_replaces_hashing_the_whole_object() -> None:
    class Big:
        runs = Counter()

        def __init__(self, path: str) -> None:
            self.path = path
            self.session = threading.Lock()  # unhashable state, left out by __memo_key__

        def __memo_key__(self) -> str:
            return self.path

        @memo
        def load(self, k: int) -> str:
            Big.runs()
            return f"{self.path}:{k}"

    assert Big("w.bin").load(1) == "w.bin:1"
    assert Big("w.bin").load(1) == "w.bin:1"
    assert Big("v.bin").load(1) == "v.bin:1"
    assert Big.runs.n == 2


def test_ignore_self_shares_results_across_instances() -> None:
    class Service:
        runs = Counter()

        def __init__(self, token: str) -> None:
            self.token = token

        @memo(ignore=["self"])
        def lookup(self, key: str) -> str:
            Service.runs()
            return key.upper()

    assert Service("a").lookup("x") == Service("b").lookup("x") == "X"
    assert Service.runs.n == 1


def test_bound_controls_work_on_the_instance() -> None:
    m = Model([2.0])
    m.predict(3.0)
    assert m.predict.is_cached(3.0)
    assert m.predict.refresh(3.0) == 6.0
    assert Model.calls.n == 2
    assert m.predict.invalidate(3.0)
    assert not m.predict.is_cached(3.0)


@pytest.mark.parametrize("order", ["classmethod-outside", "classmethod-inside"])
def test_classmethods_in_either_stacking_order(order: str) -> None:
    runs = Counter()
    if order == "classmethod-outside":

        class A:
            scale = 2

            @classmethod
            @memo
            def build(cls, x: int) -> int:
                runs()
                return x * cls.scale
    else:

        class A:  # type: ignore[no-redef]
            scale = 2

            @memo  # type: ignore[misc]
            @classmethod
            def build(cls, x: int) -> int:
                runs()
                return x * cls.scale

    assert A.build(3) == 6
    assert A.build(3) == 6
    assert runs.n == 1


@pytest.mark.parametrize("order", ["staticmethod-outside", "staticmethod-inside"])
def test_staticmethods_in_either_stacking_order(order: str) -> None:
    runs = Counter()
    if order == "staticmethod-outside":

        class A:
            @staticmethod
            @memo
            def add(x: int, y: int) -> int:
                runs()
                return x + y
    else:

        class A:  # type: ignore[no-redef]
            @memo  # type: ignore[misc]
            @staticmethod
            def add(x: int, y: int) -> int:
                runs()
                return x + y

    assert A.add(1, 2) == A().add(1, 2) == 3
    assert runs.n == 1


def test_classmethod_is_keyed_by_class_code_not_identity() -> None:
    def make(scale: int) -> type:
        class Scaled:
            factor = scale

            @classmethod
            def run(cls, x: int) -> int:
                return x * cls.factor

        return Scaled

    assert content_hash(make(2)) == content_hash(make(2))
    assert content_hash(make(2)) != content_hash(make(3))


def test_editing_another_method_of_the_class_is_a_miss(shell: Any) -> None:
    shell.run(
        """
        from notebook_memo import memo
        class _Runs(dict):
            def __memo_key__(self): return 'runs'
        RUNS = _Runs()
        class Pipeline:
            def __init__(self, k): self.k = k
            def prep(self, x): return x + self.k
            @memo
            def run(self, x):
                RUNS['n'] = RUNS.get('n', 0) + 1
                return self.prep(x) * 2
        """
    )
    shell.run("Pipeline(1).run(1)")
    shell.run("Pipeline(1).run(1)")
    assert shell["RUNS"]["n"] == 1
    shell.run("def prep(self, x): return x - self.k\nPipeline.prep = prep")
    shell.run("v = Pipeline(1).run(1)")
    assert shell["RUNS"]["n"] == 2 and shell["v"] == 0


def test_persistent_method_hits_after_a_restart(cache_dir: Path) -> None:
    cells = [
        "from notebook_memo import memo\n"
        "class Model:\n"
        "    def __init__(self, w): self.w = w\n"
        "    @memo\n"
        "    def predict(self, xs):\n"
        "        OUT['runs'] = OUT.get('runs', 0) + 1 if isinstance(OUT, dict) else 0\n"
        "        return [x * self.w for x in xs]\n",
        "REAL = OUT\nclass _O(dict):\n    def __memo_key__(self): return 'o'\nOUT = _O()",
        "p = Model(3).predict([1, 2])\nREAL['runs'] = OUT.get('runs', 0)\nREAL['p'] = p",
    ]
    assert run_kernel(cells, cache_dir, seed=1) == {"runs": 1, "p": [3, 6], "_warnings": []}
    assert run_kernel(cells, cache_dir, seed=2)["runs"] == 0


def test_caches_bookkeeping_does_not_leak_into_the_content_of_self() -> None:
    class Both:
        def __init__(self, v: int) -> None:
            self.v = v

        @memo.per_instance
        def double(self) -> int:
            return self.v * 2

        @memo.cached_property
        def triple(self) -> int:
            return self.v * 3

    a, b = Both(1), Both(1)
    before = content_hash(a)
    a.double()
    _ = a.triple
    assert content_hash(a) == before == content_hash(b)


# -- per-instance caches --------------------------------------------------------------------


class Report:
    def __init__(self, name: str) -> None:
        self.name = name
        self.runs = 0

    @memo.per_instance
    def rows(self, year: int, region: str = "all") -> list[str]:
        self.runs += 1
        return [f"{self.name}-{year}-{region}"]

    @memo.per_instance(ttl=0.2)
    def fresh(self) -> float:
        self.runs += 1
        return time.monotonic()

    @memo.cached_property
    def summary(self) -> str:
        self.runs += 1
        return self.name.upper()

    @memo.per_instance
    def fails(self) -> None:
        self.runs += 1
        raise RuntimeError("nope")

    @memo.per_instance
    def nothing(self) -> None:
        self.runs += 1


def test_per_instance_caches_by_argument_content() -> None:
    r = Report("q")
    assert r.rows(2024) == r.rows(2024, "all") == r.rows(year=2024) == ["q-2024-all"]
    assert r.runs == 1
    r.rows(2025)
    assert r.runs == 2


def test_per_instance_results_are_not_shared_between_objects() -> None:
    a, b = Report("a"), Report("b")
    assert a.rows(1) == ["a-1-all"]
    assert b.rows(1) == ["b-1-all"]
    assert a.runs == b.runs == 1


def test_per_instance_cache_dies_with_the_object_even_when_ids_are_reused() -> None:
    for i in range(300):
        r = Report(str(i))
        assert r.rows(1) == [f"{i}-1-all"]
        del r


def test_per_instance_exceptions_are_not_stored_and_none_is() -> None:
    r = Report("x")
    for _ in range(2):
        with pytest.raises(RuntimeError):
            r.fails()
    assert r.runs == 2
    r.nothing()
    r.nothing()
    assert r.runs == 3


def test_per_instance_ttl() -> None:
    r = Report("x")
    first = r.fresh()
    assert r.fresh() == first
    time.sleep(0.25)
    assert r.fresh() != first


def test_clear_and_reset() -> None:
    r = Report("x")
    r.rows(1)
    r.rows.clear()
    r.rows(1)
    assert r.runs == 2
    _ = r.summary
    _ = r.summary
    assert r.runs == 3
    del r.summary
    _ = r.summary
    assert r.runs == 4
    memo.reset(r)
    r.rows(1)
    _ = r.summary
    assert r.runs == 6


def test_cached_property_computes_once_and_can_be_assigned() -> None:
    r = Report("abc")
    assert r.summary == "ABC" and r.summary == "ABC"
    assert r.runs == 1
    r.summary = "manual"
    assert r.summary == "manual"


def test_copies_and_pickles_start_with_empty_caches() -> None:
    r = Report("x")
    r.rows(1)
    _ = r.summary
    for clone in (copy.copy(r), copy.deepcopy(r), pickle.loads(pickle.dumps(r))):
        clone.runs = 0
        clone.rows(1)
        _ = clone.summary
        assert clone.runs == 2
    r.rows(1)
    assert r.runs == 2  # the original kept its own


def test_slots_classes_use_a_weak_side_table() -> None:
    class Slotted:
        __slots__ = ("__weakref__", "runs", "v")

        def __init__(self, v: int) -> None:
            self.v, self.runs = v, 0

        @memo.per_instance
        def square(self) -> int:
            self.runs += 1
            return self.v * self.v

        @memo.cached_property
        def cube(self) -> int:
            self.runs += 1
            return self.v**3

    s = Slotted(3)
    assert s.square() == s.square() == 9
    assert s.cube == s.cube == 27
    assert s.runs == 2
    for i in range(200):
        assert Slotted(i).square() == i * i


def test_slots_without_weakref_is_a_clear_error() -> None:
    class Tight:
        __slots__ = ("v",)

        def __init__(self) -> None:
            self.v = 1

        @memo.per_instance
        def get(self) -> int:
            return self.v

    with pytest.raises(TypeError, match="__weakref__"):
        Tight().get()


def test_threads_compute_once() -> None:
    class Slow:
        def __init__(self) -> None:
            self.runs = 0

        @memo.per_instance
        def value(self, k: int) -> int:
            self.runs += 1
            time.sleep(0.05)
            return k

        @memo.cached_property
        def prop(self) -> int:
            self.runs += 1
            time.sleep(0.05)
            return 1

    s = Slow()
    threads = [threading.Thread(target=lambda: (s.value(1), s.prop)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert s.runs == 2


class AsyncReport:
    def __init__(self) -> None:
        self.runs = 0

    @memo.per_instance
    async def rows(self, year: int) -> list[int]:
        self.runs += 1
        await asyncio.sleep(0.02)
        return [year]

    @memo.cached_property
    async def summary(self) -> dict[str, int]:
        self.runs += 1
        await asyncio.sleep(0.02)
        return {"total": 3}

    @memo.cached_property
    async def broken(self) -> int:
        self.runs += 1
        await asyncio.sleep(0)
        raise ValueError("broken")


def test_async_property_is_awaited_once_under_concurrent_awaits() -> None:
    r = AsyncReport()

    async def main() -> list[Any]:
        first = await asyncio.gather(*(r.summary for _ in range(10)))
        later = await r.summary
        return [*first, later]

    results = asyncio.run(main())
    assert all(v == {"total": 3} for v in results)
    assert r.runs == 1


def test_async_per_instance_method_caches_the_value_not_the_coroutine() -> None:
    r = AsyncReport()

    async def main() -> list[Any]:
        together = await asyncio.gather(r.rows(1), r.rows(1), r.rows(2))
        return [*together, await r.rows(1)]

    assert asyncio.run(main()) == [[1], [1], [2], [1]]
    assert r.runs == 2


def test_async_property_exception_is_not_stored() -> None:
    r = AsyncReport()

    async def main() -> None:
        for _ in range(2):
            with pytest.raises(ValueError):
                await r.broken

    asyncio.run(main())
    assert r.runs == 2


def test_large_object_hash_uses_buffers_in_place() -> None:
    class Weights:
        def __init__(self) -> None:
            self.layers = [np.ones((256, 256)) for _ in range(4)]

    assert content_hash(Weights()) == content_hash(Weights())


def test_class_level_data_changed_in_place_is_a_miss() -> None:
    class Config:
        weights = [1, 2]

        @memo
        def total(self) -> int:
            return sum(self.weights)

        @memo
        def doubled(self) -> int:
            return self.total() * 2

    c = Config()
    assert c.total() == 3 and c.doubled() == 6
    Config.weights.append(3)
    assert c.total() == 6 and c.doubled() == 12


def test_an_async_cached_method_or_property_is_a_coroutine_on_a_hit_too() -> None:
    r = AsyncReport()
    assert asyncio.run(r.rows(1)) == [1]
    assert asyncio.run(r.rows(1)) == [1]  # a hit: asyncio.run takes only coroutines
    assert asyncio.run(r.summary) == {"total": 3}
    assert asyncio.run(r.summary) == {"total": 3}

    async def tasks() -> list[Any]:
        return list(await asyncio.gather(asyncio.create_task(r.rows(1)), asyncio.create_task(r.rows(5))))

    assert asyncio.run(tasks()) == [[1], [5]]
    assert r.runs == 3
