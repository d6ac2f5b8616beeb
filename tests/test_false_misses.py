"""Calls that must hit, and bodies that must not be warned about, under the stricter keys.

A body that fills a class attribute on first use, a class that has a method calling ``hash()`` the body
never calls, a ``__hash__`` written as a lambda or through a helper, a helper that looks at its caller's
frame only for its name, a function calling IPython's ``get_ipython()``: each is stored, hits after a
restart under another hash seed, and says nothing. What the stricter keys were for still holds: another
thread rebinding what the body reads is refused (tests/test_concurrent_runs.py), seed-dependent code the
body calls still keys the seed.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from tests.conftest import Shell, run_kernel
from tests.test_concurrent_runs import GATE


def _memo_warnings(out: dict[str, object]) -> list[str]:
    return [w for w in out["_warnings"] if "MemoWarning" in w]  # type: ignore[attr-defined]


# -- a class attribute the body's own code sets on first use ---------------------------------------------

LAZY_CLASS_ATTRIBUTE = """
from notebook_memo import memo

class Model:
    _instance = None

def load():
    return {"w": 2}

class Registry:
    _inst = None
    @classmethod
    def get(cls):
        if cls._inst is None:
            cls._inst = {"w": 3}
        return cls._inst

class Loader:
    cached = None

def fill():
    setattr(Loader, "cached", {"w": 5})

@memo
def lazy(x):
    if Model._instance is None:
        Model._instance = load()
    return Model._instance["w"] * x

@memo
def through_classmethod(x):
    return Registry.get()["w"] * x

@memo
def through_setattr(x):
    if Loader.cached is None:
        fill()
    return Loader.cached["w"] * x

OUT["r"] = [lazy(2), through_classmethod(2), through_setattr(2)]
OUT["hits"] = [f.cache_info().hits for f in (lazy, through_classmethod, through_setattr)]
"""


def test_a_class_attribute_the_body_sets_on_first_use_is_stored_without_a_warning(cache_dir: Path) -> None:
    first = run_kernel([LAZY_CLASS_ATTRIBUTE], cache_dir, seed=1)
    assert first["r"] == [4, 6, 10]
    assert _memo_warnings(first) == []
    # A restart starts from the same empty attribute, as the stored run did: it is served.
    again = run_kernel([LAZY_CLASS_ATTRIBUTE], cache_dir, seed=2)
    assert again["r"] == [4, 6, 10]
    assert again["hits"] == [1, 1, 1]
    assert _memo_warnings(again) == []


def test_an_attribute_the_body_never_sets_rebound_by_another_thread_is_still_refused(cache_dir: Path) -> None:
    # The body sets Model._instance itself (its doing, exempt); Model.K only another thread sets.
    define = GATE + """
class Model:
    _instance = None
    K = 1

@memo
def f(x):
    if Model._instance is None:
        Model._instance = {"w": 2}
    GATE.entered.set()
    GATE.go.wait()
    return x * Model.K * Model._instance["w"]
"""
    race = """
found = []
t = threading.Thread(target=lambda: found.append(f(3)))
t.start()
GATE.entered.wait()
Model.K = 100
GATE.go.set()
t.join()
OUT["raced"] = found[0]
"""
    first = run_kernel([define, race], cache_dir, seed=1)
    assert first["raced"] == 600
    assert [w for w in _memo_warnings(first) if "'Model.K'" in w], first["_warnings"]
    alone = run_kernel([define, "GATE.go.set()\nOUT['r'] = f(3)"], cache_dir, seed=2)
    assert alone["r"] == 6


# -- a frame looked at for its code or line only -----------------------------------------------------------

FRAME_NAMERS = """
import inspect, sys
from notebook_memo import memo
class _Runs(dict):
    def __memo_key__(self): return 'runs'
RUNS = _Runs()
SCALE = 2

def caller_name():
    return sys._getframe(1).f_code.co_name

def log_step(msg):
    frame = inspect.currentframe().f_back
    return f"[{frame.f_code.co_name}:{frame.f_lineno}] {msg}"

@memo
def logged(x):
    RUNS["logged"] = RUNS.get("logged", 0) + 1
    return log_step("start"), x * SCALE

@memo
def named(x):
    RUNS["named"] = RUNS.get("named", 0) + 1
    return caller_name(), x * SCALE
"""


@pytest.mark.parametrize("call", ["logged(1)", "named(1)"])
def test_a_helper_that_reads_only_its_callers_code_name_is_keyed_without_a_warning(shell: Shell, call: str) -> None:
    shell.run(FRAME_NAMERS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        first = shell.run(call)
        assert shell.run(call) == first
    assert sum(shell["RUNS"].values()) == 1
    shell.run("SCALE = 3")  # what it reads by name is still keyed
    assert shell.run(call)[1] == 3
    assert sum(shell["RUNS"].values()) == 2


def test_a_cell_calling_a_helper_that_reads_its_callers_code_name_is_cached(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo")
    shell.run(FRAME_NAMERS)
    cell = "%%memo logged_cell\nRUNS['cell'] = RUNS.get('cell', 0) + 1\nline = log_step('go')\nz = SCALE * 2\n"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        shell.run(cell)
        shell.run(cell)
    assert shell["RUNS"]["cell"] == 1
    assert shell["z"] == 4


@pytest.mark.parametrize("read", ["inspect.getargvalues(sys._getframe(2)).locals.get('SCALE', 1)",
                                  "sys._getframe(1).f_globals['SCALE']"],
                         ids=["getargvalues", "f_globals"])
def test_a_helper_that_reads_its_callers_namespace_through_a_frame_is_still_reported(shell: Shell,
                                                                                     read: str) -> None:
    shell.run(FRAME_NAMERS)
    shell.run(f"def peek():\n    return {read}\n@memo\ndef f(x):\n    return peek() * x")
    with pytest.warns(UserWarning, match=r"cannot be hashed.*reaches a namespace through"):
        shell.run("f(1)")


def test_a_cell_that_looks_at_its_own_frames_code_is_cached_and_one_reading_its_locals_is_not(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo")
    shell.run(FRAME_NAMERS)
    cell = "%%memo own_frame\nRUNS['own'] = RUNS.get('own', 0) + 1\nwhere = sys._getframe().f_code.co_filename\n"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        shell.run(cell)
        shell.run(cell)
    assert shell["RUNS"]["own"] == 1
    with pytest.warns(UserWarning, match=r"through \.f_locals"):
        shell.run("%%memo peeking\nw = sys._getframe().f_locals['SCALE']\n")


# -- names IPython binds for every cell: get_ipython, exit, quit, display ---------------------------------

IPYTHON_NAMES = """
from notebook_memo import memo
class _Runs(dict):
    def __memo_key__(self): return 'runs'
RUNS = _Runs()

@memo
def ipy(x):
    RUNS["ipy"] = RUNS.get("ipy", 0) + 1
    return x + (get_ipython() is not None) + (quit is not None) + (exit is not None) + (display is not None)
"""


def test_a_function_calling_get_ipython_is_keyed_without_a_warning(shell: Shell) -> None:
    shell.run(IPYTHON_NAMES)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert shell.run("ipy(1)") == 5
        assert shell.run("ipy(1)") == 5
    assert shell["RUNS"]["ipy"] == 1
    # The notebook's own get_ipython is code like any other: keyed, and its edit is a miss.
    shell.run("def get_ipython():\n    return None")
    assert shell.run("ipy(1)") == 4
    assert shell["RUNS"]["ipy"] == 2


def test_a_function_calling_get_ipython_hits_after_a_restart(cache_dir: Path) -> None:
    cells = [IPYTHON_NAMES, "OUT['r'] = ipy(1)\nOUT['runs'] = RUNS.get('ipy', 0)"]
    first = run_kernel(cells, cache_dir, seed=1)
    again = run_kernel(cells, cache_dir, seed=2)
    assert (first["r"], first["runs"], again["r"], again["runs"]) == (5, 1, 5, 0)
    assert _memo_warnings(first) == _memo_warnings(again) == []


# -- a class's __hash__, whatever its code is named -----------------------------------------------------

HASH_ROLES = """
import attrs
from notebook_memo import memo

class L:
    def __init__(self, x): self.x = x
    def __eq__(self, o): return self.x == o.x
    __hash__ = lambda self: hash(self.x)

def _combine(*parts):
    return hash(parts)

class H:
    def __init__(self, x): self.x = x
    def __eq__(self, o): return self.x == o.x
    def __hash__(self): return _combine(self.x, "H")

@attrs.frozen
class A:
    x: str

def _mix(*parts):
    return hash(parts)

class M:
    def __init__(self, x): self.x = x
    def __eq__(self, o): return self.x == o.x
    def __hash__(self): return _mix(self.x)

@memo
def count(o):
    return len({o, o})

@memo
def mixed(o):
    return _mix(o.x) % 1000  # the body calls the helper __hash__ uses: the seed is its input

@memo
def made(s):
    return len({M(s)})  # the class named in the body: its __hash__ still does not key the seed

@memo
def both(s):
    return len({M(s)}) + _mix(s) % 1000  # the helper reached through __hash__ first, then by the body

OUT["r"] = [count(L("a")), count(H("a")), count(A("a")), mixed(M("a")), made("a"), both("a")]
OUT["live"] = _mix("a") % 1000
OUT["hits"] = [count.cache_info().hits, mixed.cache_info().hits, made.cache_info().hits, both.cache_info().hits]
"""


def test_a_hash_method_of_any_name_or_through_a_helper_does_not_key_the_hash_seed(cache_dir: Path) -> None:
    first = run_kernel([HASH_ROLES], cache_dir, seed=1)
    other = run_kernel([HASH_ROLES], cache_dir, seed=2)
    assert first["live"] != other["live"]  # the two seeds do hash it differently
    for out in (first, other):
        assert out["r"] == [1, 1, 1, out["live"], 1, 1 + out["live"]]
    # The lambda, the helper reached only from __hash__, attrs' generated __hash__: served under another seed;
    # a body that calls the helper itself is not.
    assert other["hits"] == [3, 0, 1, 0]
    assert _memo_warnings(other) == []


# -- a method of an argument's class that calls hash(), which the body never calls ----------------------

ARGUMENT_METHODS = """
import dataclasses
from notebook_memo import memo

class User:
    def __init__(self, name, age): self.name, self.age = name, age
    def shard(self): return hash(self.name) % 1000  # the seed is its input
    def __repr__(self): return f"User({self.name})"

class Tagged:
    def __init__(self, name): self.name = name
    def __str__(self): return f"{self.name}-{hash(self.name) % 1000}"  # called by str(), never by name

@memo
def age_next_year(u):
    return u.age + 1

@memo
def shard_of(u):
    return u.shard()

@memo
def shown(t):
    return str(t)

@memo.batch("users", progress=False)
def ages(users):
    return [u.age for u in users]

@memo.batch("users", progress=False)
def shards(users):
    return [u.shard() for u in users]

OUT["why"] = str(shard_of.explain(User("ann", 30)))
OUT["r"] = [age_next_year(User("ann", 30)), shard_of(User("ann", 30)), shown(Tagged("ann")),
            ages([User("ann", 30)]), shards([User("ann", 30)])]
OUT["live"] = [hash("ann") % 1000]
OUT["hits"] = [f.cache_info().hits for f in (age_next_year, shard_of, shown, ages, shards)]
"""


def test_a_method_of_an_arguments_class_the_body_never_calls_does_not_key_the_hash_seed(cache_dir: Path) -> None:
    first = run_kernel([ARGUMENT_METHODS], cache_dir, seed=1)
    other = run_kernel([ARGUMENT_METHODS], cache_dir, seed=2)
    live = other["live"][0]
    assert first["live"] != other["live"]
    assert other["r"] == [31, live, f"ann-{live}", [30], [live]]
    # Served under another seed where the body only reads u.age; not where it calls u.shard() or str(t).
    assert other["hits"][:3] == [1, 0, 0]
    assert other["hits"][3] > 0 and other["hits"][4] == 0  # batches alike
    assert "hash seed" in other["why"], other["why"]  # what the miss differs in is named
    assert _memo_warnings(other) == []
