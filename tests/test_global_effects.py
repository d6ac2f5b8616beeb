"""A body or cell that changes, in place, a global it reads through code (``log.append`` in a helper):
a hit must not leave that global as no run leaves it. ``@memo`` does not store such a result and says so;
``%%memo`` restores the global with the cell's other outputs."""

from __future__ import annotations

import warnings

import pytest

from notebook_memo import MemoWarning
from tests.conftest import Counter, Shell

DEFINE = """
from notebook_memo import memo
LOG = []
RESULTS = {}
class Registry:
    seen = []
def record(key, value):
    RESULTS[key] = value
"""


def _calls(shell: Shell, source: str) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shell.run(source)
    return [str(w.message) for w in caught if issubclass(w.category, MemoWarning)]


def test_a_body_that_appends_to_a_global_is_not_cached_and_says_so(shell: Shell, cache_dir: object,
                                                                   counter: Counter) -> None:
    shell.ip.user_ns["counter"] = counter
    shell.run(DEFINE + """
@memo
def double(x):
    counter()
    LOG.append(x)
    return 2 * x
""")
    said = _calls(shell, "first = double(1)")
    assert any("changed the global 'LOG' in place" in text for text in said), said
    shell.run("LOG.clear()")  # as in a restarted kernel: the state the first call began from
    shell.run("second = double(1)")
    assert shell["LOG"] == [1]  # what the plain call leaves
    assert (shell["first"], shell["second"], counter.n) == (2, 2, 2)


@pytest.mark.parametrize("body", [
    "record(x, 2 * x)",  # a global of a helper the body calls
    "Registry.seen.append(x)",  # data of a class the body reads
])
def test_a_global_changed_through_a_helper_or_a_class_is_not_cached(shell: Shell, cache_dir: object,
                                                                     body: str) -> None:
    shell.run(DEFINE + f"""
@memo
def work(x):
    {body}
    return x
""")
    said = _calls(shell, "work(3)")
    assert any("in place" in text and "not cached" in text for text in said), said
    shell.run("RESULTS.clear(); Registry.seen.clear()")
    shell.run("work(3)")
    assert shell["RESULTS"] == ({3: 6} if body.startswith("record") else {})
    assert shell["Registry"].seen == ([] if body.startswith("record") else [3])


def test_a_body_that_only_reads_globals_still_hits_without_a_warning(shell: Shell, cache_dir: object,
                                                                    counter: Counter) -> None:
    shell.ip.user_ns["counter"] = counter
    shell.run(DEFINE + """
TABLE = {"a": [1, 2]}
@memo
def total(key):
    counter()
    return sum(TABLE[key]) + len(LOG)
""")
    assert _calls(shell, "total('a'); total('a')") == []
    assert counter.n == 1


def test_a_cached_cell_restores_a_global_its_helper_changed(shell: Shell, cache_dir: object) -> None:
    shell.run("%load_ext notebook_memo")
    shell.run("""
log = []
def add(x):
    log.append(x)
    return x
""")
    cell = "%%memo\ny = add(1)\n"
    shell.run(cell)
    assert shell["log"] == [1]
    shell.run("log.clear()")  # as in a restarted kernel
    shell.run(cell)
    assert shell["log"] == [1]  # what running the cell leaves
    shell.run(cell)  # a new state: the cell runs again
    assert shell["log"] == [1, 1]
    shell.run("held = log; log.clear()")
    shell.run(cell)
    assert shell["held"] is shell["log"] and shell["log"] == [1]


def test_a_global_that_fills_a_cached_property_when_read_is_still_cached(shell: Shell, cache_dir: object) -> None:
    shell.run(DEFINE + """
import functools
class Config:
    def __init__(self):
        self.n = 3
    @functools.cached_property
    def square(self):
        return self.n ** 2
CONFIG = Config()
@memo
def shifted(x):
    return x + CONFIG.square
""")
    assert _calls(shell, "first = shifted(1)") == []
    assert shell["first"] == 10 and len(shell["shifted"].entries()) == 1


def test_a_global_generator_drawn_from_twice_is_still_cached(shell: Shell, cache_dir: object) -> None:
    shell.run(DEFINE + """
import numpy as np
rng = np.random.default_rng(0)
start = rng.bit_generator.state
@memo
def draw():
    return rng.normal() + rng.uniform()
""")
    assert _calls(shell, "first = draw()") == []
    shell.run("rng.bit_generator.state = start")  # as in a restarted kernel
    shell.run("second = draw()")
    assert shell["first"] == shell["second"] and shell["draw"].hits == 1


def test_objects_that_change_as_they_are_read_still_cache_their_readers(shell: Shell, cache_dir: object) -> None:
    shell.run(DEFINE + """
class Lazy:
    def __init__(self):
        self._cache = None
    def table(self):
        if self._cache is None:
            self._cache = {"a": 1}
        return self._cache
LAZY = Lazy()
@memo
def look(key):
    return LAZY.table()[key]
""")
    assert _calls(shell, "look('a')") == []
    assert len(shell["look"].entries()) == 1


def test_data_a_function_read_is_not_kept_alive_by_it(shell: Shell, cache_dir: object) -> None:
    import gc
    import weakref

    shell.run(DEFINE + """
import numpy as np
BIG = np.arange(1000.0)
@memo
def total():
    return float(BIG.sum())
total()
""")
    watch = weakref.ref(shell["BIG"])
    shell.run("del BIG")
    gc.collect()
    assert watch() is None


def test_a_body_that_binds_a_global_anew_is_not_cached_and_says_so(shell: Shell, cache_dir: object) -> None:
    shell.run(DEFINE + """
N = 0
@memo
def bump(k):
    global N
    N += 1
    return k
""")
    said = _calls(shell, "bump(1)")
    assert any("binds the global 'N' anew" in text for text in said), said
    shell.run("N = 0")  # as in a restarted kernel
    shell.run("bump(1)")
    assert shell["N"] == 1


def test_is_cached_agrees_with_a_ttl_given_later(counter: Counter, monkeypatch: pytest.MonkeyPatch,
                                                 cache_dir: object) -> None:
    import time

    from notebook_memo import _serialize, memo

    def body() -> int:
        counter()
        return 1

    body.__qualname__ = "aged_is_cached"
    memo(body)()
    real = time.time
    monkeypatch.setattr(_serialize, "time", type("Later", (), {"time": staticmethod(lambda: real() + 3600)}))
    assert memo(body).is_cached() and not memo(ttl="10m")(body).is_cached()


# -- memo.batch: a chunk's body is held to the same rule -------------------------------------------------

@pytest.mark.parametrize("body", [
    "LOG.extend(texts)",  # a global the body reads, changed in place
    "record(len(texts), texts[0])",  # ... through a helper
    "global TOTAL; TOTAL = TOTAL + len(texts)",  # a global bound anew
    "texts[0]['seen'] = True",  # an item changed in place
    "options.append(len(texts))",  # another argument changed in place
])
def test_a_batch_body_that_changes_state_a_hit_could_not_is_not_cached(shell: Shell, cache_dir: object,
                                                                       counter: Counter, body: str) -> None:
    shell.ip.user_ns["counter"] = counter
    shell.run(DEFINE + f"""
TOTAL = 0
@memo.batch("texts", progress=False)
def sizes(texts, options):
    counter()
    result = [len(t) for t in texts]
    {body}
    return result
""")
    said = _calls(shell, "first = sizes([{'a': 1}, {'b': 2, 'c': 3}], [])")
    assert any("in place" in text or "anew" in text for text in said), said
    shell.run("second = sizes([{'a': 1}, {'b': 2, 'c': 3}], [])")
    assert (shell["first"], shell["second"], counter.n) == ([1, 2], [1, 2], 2)


def test_a_batch_body_that_only_reads_globals_still_hits_without_a_warning(shell: Shell, cache_dir: object,
                                                                          counter: Counter) -> None:
    shell.ip.user_ns["counter"] = counter
    shell.run(DEFINE + """
LOG.append(10)
@memo.batch("xs", progress=False)
def scaled(xs, factors):
    counter()
    return [(x['x'] if isinstance(x, dict) else x) * LOG[0] * len(factors) for x in xs]
""")
    said = _calls(shell, "first = scaled([{'x': 1}, 2], [1]); second = scaled([{'x': 1}, 2, 3], [1])")
    assert said == []
    assert counter.n == 2 and shell["second"][1:] == [20, 30]
    shell.run("third = scaled([{'x': 1}, 2, 3], [1])")
    assert counter.n == 2
