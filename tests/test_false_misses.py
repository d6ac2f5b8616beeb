"""Calls that must hit, and bodies that must not be warned about, under the stricter keys.

A body that fills a class attribute on first use, a class that has a method calling ``hash()`` the body
never calls, a ``__hash__`` written as a lambda or through a helper, a helper that looks at its caller's
frame only for its name, a function calling IPython's ``get_ipython()``: each is stored, hits after a
restart under another hash seed, and says nothing. What the stricter keys were for still holds: another
thread rebinding what the body reads is refused (tests/test_concurrent_runs.py), seed-dependent code the
body calls still keys the seed.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_kernel
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
