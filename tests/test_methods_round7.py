"""Per-object caches and the state a run leaves: a ``memo.cached_property`` assigned (or an assigned one deleted)
inside a ``@memo`` body, a ``memo.batch`` chunk or a ``%%memo`` cell is a change a hit could not make again, so
the run is not stored (its own getter's fill still is); a ``memo.per_instance`` call whose body changes its
argument in place is not cached; and the caches of an object stay out of ``vars(obj)``, so ``__eq__``,
``__hash__``, ``json.dumps`` and frames built from it see the user's attributes only."""

from __future__ import annotations

import copy
import gc
import json
import pickle
import types
import warnings
import weakref
from pathlib import Path
from typing import Any

import pandas as pd

from notebook_memo import MemoWarning, memo
from tests.conftest import Shell, run_kernel

REPORT = """
from notebook_memo import memo
class Report:
    def __init__(self, rows):
        self.rows = rows
    @memo.cached_property
    def summary(self):
        return "not computed yet"
"""


def _twice(cells: list[str], cache_dir: Path) -> tuple[dict, dict]:
    """Run ``cells`` in two kernels, one after the other, with different hash seeds and one cache."""
    return run_kernel(cells, cache_dir, seed=1), run_kernel(cells, cache_dir, seed=2)


def _assigned_warnings(run: dict) -> list[str]:
    return [w for w in run["_warnings"] if "Report.summary" in w and "memo.cached_property" in w]


# -- 1. a memo.cached_property assigned inside a run ------------------------------------------------------

def test_a_method_that_assigns_a_cached_property_of_self_is_not_stored(cache_dir: Path) -> None:
    cells = [REPORT, """
class Ledger(Report):
    @memo
    def compute(self):
        self.summary = f"total={sum(self.rows)}"
        return len(self.rows)
r = Ledger([1, 2, 3])
OUT["n"] = r.compute()
OUT["summary"] = r.summary
OUT["hits"] = Ledger.compute.hits
"""]
    for run in _twice(cells, cache_dir):
        assert (run["n"], run["summary"], run["hits"]) == (3, "total=6", 0), run
        assert len(_assigned_warnings(run)) == 1, run["_warnings"]


def test_a_function_and_a_batch_that_assign_a_cached_property_of_an_argument_are_not_stored(
        cache_dir: Path) -> None:
    cells = [REPORT, """
@memo
def annotate(r):
    r.summary = f"total={sum(r.rows)}"
    return len(r.rows)
@memo.batch("reports", progress=False)
def annotate_all(reports):
    for r in reports:
        r.summary = f"total={sum(r.rows)}"
    return [len(r.rows) for r in reports]
r = Report([1, 2, 3])
q = Report([4, 5])
OUT["annotate"] = [annotate(r), r.summary, annotate.hits]
OUT["batch"] = [annotate_all([q]), q.summary, annotate_all.hits]
"""]
    for run in _twice(cells, cache_dir):
        assert run["annotate"] == [3, "total=6", 0], run
        assert run["batch"] == [[2], "total=9", 0], run
        assert _assigned_warnings(run), run["_warnings"]


def test_a_cell_that_assigns_a_cached_property_of_an_input_is_not_stored(cache_dir: Path) -> None:
    cells = ["%load_ext notebook_memo", REPORT + "r = Report([1, 2, 3])\n",
             "%%memo\nr.summary = f'total={sum(r.rows)}'\nn = len(r.rows)",
             "OUT['state'] = [n, r.summary]"]
    for run in _twice(cells, cache_dir):
        assert run["state"] == [3, "total=6"], run
        assert _assigned_warnings(run), run["_warnings"]


def test_deleting_an_assigned_cached_property_inside_a_run_is_not_stored(cache_dir: Path) -> None:
    # The notebook assigned it; the body drops it, so that it reads its getter's value again: a hit would not.
    cells = [REPORT, """
@memo
def forget(r):
    del r.summary
    return len(r.rows)
r = Report([1, 2, 3])
r.summary = "set by the notebook"
OUT["state"] = [forget(r), r.summary, forget.hits]
"""]
    for run in _twice(cells, cache_dir):
        assert run["state"] == [3, "not computed yet", 0], run
        assert _assigned_warnings(run), run["_warnings"]


def test_a_cached_property_filled_by_its_getter_inside_a_run_is_still_stored(cache_dir: Path) -> None:
    cells = [REPORT, """
class Totals(Report):
    @memo.cached_property
    def total(self):
        return sum(self.rows)
@memo
def describe(r):
    return f"{len(r.rows)} rows, total {r.total}"
r = Totals([1, 2, 3])
OUT["state"] = [describe(r), r.total, describe.hits]
"""]
    first, second = _twice(cells, cache_dir)
    assert first["state"] == ["3 rows, total 6", 6, 0], first
    assert second["state"] == ["3 rows, total 6", 6, 1], second
    assert not [w for w in first["_warnings"] + second["_warnings"] if "MemoWarning" in w]


# -- 2. a memo.per_instance body that changes its argument in place ---------------------------------------

SCORER = """
import pandas as pd
from notebook_memo import memo
class Scorer:
    def __init__(self, w):
        self.w = w
    @memo.per_instance
    def add_score(self, df):
        df["score"] = df["x"] * self.w
        return len(df)
    @memo.per_instance
    def total(self, df, label="x"):
        return int(df[label].sum()) * self.w
s = Scorer(2)
"""


def test_a_per_instance_method_that_changes_its_argument_is_not_cached(shell: Shell) -> None:
    shell.run(SCORER)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shell.run("""
a = pd.DataFrame({"x": [1, 2]})
b = pd.DataFrame({"x": [1, 2]})
got = [s.add_score(a), s.add_score(b)]
""")
    assert shell["got"] == [2, 2]
    assert list(shell["a"].columns) == list(shell["b"].columns) == ["x", "score"]
    said = [str(w.message) for w in caught if issubclass(w.category, MemoWarning)]
    assert len(said) == 1 and "add_score changed its argument 'df' in place" in said[0], said


def test_a_per_instance_method_that_changes_an_argument_given_by_name_or_a_list_is_not_cached(
        shell: Shell) -> None:
    shell.run("""
from notebook_memo import memo
class Collector:
    @memo.per_instance
    def gather(self, n, into=None):
        into.extend(range(n))
        return n
c = Collector()
first, second = [], []
got = [c.gather(2, into=first), c.gather(2, into=second)]
""")
    assert shell["got"] == [2, 2]
    assert shell["first"] == shell["second"] == [0, 1]


def test_a_per_instance_method_that_leaves_its_arguments_as_they_were_is_still_cached(shell: Shell) -> None:
    shell.run(SCORER)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shell.run("""
calls = []
class Counting(Scorer):
    @memo.per_instance
    def total(self, df, label="x"):
        calls.append(label)
        return int(df[label].sum()) * self.w
t = Counting(2)
frame = lambda: pd.DataFrame({"x": [1, 2]})
got = [t.total(frame()), t.total(frame(), "x"), t.total(frame(), label="x")]
""")
    assert shell["got"] == [6, 6, 6]
    assert shell["calls"] == ["x"]
    assert not [w for w in caught if issubclass(w.category, MemoWarning)]


def test_an_async_per_instance_method_that_changes_its_argument_is_not_cached(shell: Shell) -> None:
    shell.run("""
import asyncio
from notebook_memo import memo
class Loader:
    @memo.per_instance
    async def load(self, into):
        into.append(1)
        return len(into)
l = Loader()
first, second = [], []
async def both():
    return [await l.load(first), await l.load(second)]
got = asyncio.run(both())
""")
    assert shell["got"] == [1, 1]
    assert shell["first"] == shell["second"] == [1]


# -- 3. the caches stay out of vars(obj) -------------------------------------------------------------------

class Point:
    """A class whose equality, hash and export are built from ``vars(self)``."""

    fills: list[str] = []

    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash(tuple(sorted(vars(self).items())))

    @memo.cached_property
    def norm(self) -> float:
        Point.fills.append("norm")
        return float((self.x ** 2 + self.y ** 2) ** 0.5)

    @memo.per_instance
    def dist(self, ox: int, oy: int) -> float:
        Point.fills.append("dist")
        return float(((self.x - ox) ** 2 + (self.y - oy) ** 2) ** 0.5)


class Node:
    """A class whose cached values hold the object itself (a child with a back-reference, a bound method)."""

    def __init__(self, name: str) -> None:
        self.name = name

    @memo.cached_property
    def child(self) -> Any:
        return types.SimpleNamespace(parent=self)

    @memo.per_instance
    def greeter(self, greeting: str) -> Any:
        return lambda: f"{greeting}, {self.name}"


class Slotted:
    __slots__ = ("__weakref__", "x")

    def __init__(self, x: int) -> None:
        self.x = x

    @memo.per_instance
    def double(self) -> int:
        return self.x * 2


class SlottedWithDict:
    """``__dict__`` but no ``__weakref__``: its caches can live nowhere else."""

    __slots__ = ("__dict__",)

    def __init__(self, x: int) -> None:
        self.x = x

    @memo.cached_property
    def double(self) -> int:
        return self.x * 2


def test_cached_values_do_not_show_in_vars_of_the_object() -> None:
    a, b = Point(3, 4), Point(3, 4)
    seen = {a}
    assert (a.norm, a.dist(0, 0)) == (5.0, 5.0)
    assert vars(a) == {"x": 3, "y": 4}
    assert a in seen and a == b and hash(a) == hash(b)
    assert json.dumps(vars(a)) == '{"x": 3, "y": 4}'
    assert list(pd.DataFrame([vars(a), vars(b)]).columns) == ["x", "y"]
    Point.fills.clear()
    assert (a.norm, a.dist(0, 0)) == (5.0, 5.0) and Point.fills == []  # still cached


def test_copies_and_pickles_start_with_empty_caches_and_compute_their_own_values() -> None:
    a = Point(3, 4)
    assert a.norm == 5.0 and a.dist(0, 0) == 5.0
    for copied in (copy.copy(a), copy.deepcopy(a), pickle.loads(pickle.dumps(a))):
        copied.x = 6
        copied.y = 8
        assert (copied.norm, copied.dist(0, 0)) == (10.0, 10.0)
    assert (a.norm, a.dist(0, 0)) == (5.0, 5.0)


def test_an_object_whose_cached_values_hold_it_still_dies_with_them() -> None:
    node = Node("n")
    assert node.child.parent is node and node.greeter("hi")() == "hi, n"
    gone = weakref.ref(node)
    del node
    gc.collect()
    assert gone() is None


def test_an_object_dies_with_its_caches_and_a_new_one_at_its_address_starts_empty() -> None:
    for i in range(300):
        p = Point(i, 0)
        gone = weakref.ref(p)
        assert (p.norm, p.dist(0, 0)) == (float(i), float(i))
        del p
        assert gone() is None  # no cycle through a side table: freed at once


def test_objects_with_slots_keep_their_caches_where_they_can() -> None:
    s = Slotted(2)
    assert s.double() == s.double() == 4
    w = SlottedWithDict(3)
    assert w.double == 6
    w.x = 5
    del w.double
    assert w.double == 10


def test_a_copy_of_an_object_whose_cached_value_holds_it_gets_its_own_value() -> None:
    node = Node("n")
    assert node.child.parent is node
    for copied in (copy.copy(node), copy.deepcopy(node), pickle.loads(pickle.dumps(node, protocol=4))):
        copied.name = "copy"
        assert copied.child.parent is copied and copied.greeter("hi")() == "hi, copy"
    assert node.child.parent is node and node.greeter("hi")() == "hi, n"
