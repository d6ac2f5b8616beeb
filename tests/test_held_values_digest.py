"""A ``memo.cached_property`` or ``memo.per_instance`` value filled inside a memoized run carries the digest of its
object as the fill read it: a later run served that value while the object still has that digest (``score(m, x)``
over several ``x`` reading ``m.norm``, or ``report(t)`` then ``spread(t)``) is stored, in this kernel and after a
restart. A value whose object changed since its fill, one whose fill read a file, and one filled outside any run
(whose object was not hashed then) still keep the run from being stored."""

from __future__ import annotations

import warnings
from pathlib import Path

from notebook_memo import MemoWarning, StorageWarning
from tests.conftest import RUNS_SETUP, Shell, run_kernel

MODEL = """
from notebook_memo import memo
class Model:
    def __init__(self, w):
        self.w = w
    @memo.cached_property
    def norm(self):
        return sum(x * x for x in self.w) ** 0.5
    @memo.per_instance
    def scaled(self, k):
        return sum(self.w) * k
@memo
def score(m, x):
    return m.norm * x
@memo
def spread(m):
    return max(m.w) - m.norm
@memo
def total(m, x):
    return m.scaled(10) + x
"""


def _said(shell: Shell, source: str) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shell.run(source)
    return [str(w.message) for w in caught if issubclass(w.category, (MemoWarning, StorageWarning))]


def test_a_cached_property_filled_by_an_earlier_run_on_the_same_object_is_stored(shell: Shell) -> None:
    shell.run(MODEL)
    said = _said(shell, """
m = Model([3, 4])
first = [score(m, x) for x in range(1, 5)]
second = [score(m, x) for x in range(1, 5)]
""")
    assert shell["first"] == shell["second"] == [5.0, 10.0, 15.0, 20.0]
    assert shell["score"].misses == 4 and said == [], said


def test_another_function_reading_a_value_an_earlier_run_filled_is_stored(shell: Shell) -> None:
    shell.run(MODEL)
    said = _said(shell, "t = Model([3, 4])\na = score(t, 2), spread(t)\nb = score(t, 2), spread(t)")
    assert shell["a"] == shell["b"] == (10.0, -1.0)
    assert (shell["score"].misses, shell["spread"].misses) == (1, 1) and said == [], said


def test_a_per_instance_result_filled_by_an_earlier_run_is_stored(shell: Shell) -> None:
    shell.run(MODEL)
    said = _said(shell, "m = Model([1, 2])\na = [total(m, x) for x in range(3)]\nb = [total(m, x) for x in range(3)]")
    assert shell["a"] == shell["b"] == [30, 31, 32]
    assert shell["total"].misses == 3 and said == [], said


def test_values_filled_by_earlier_runs_are_hits_after_a_restart(cache_dir: Path) -> None:
    cells = [MODEL, """
m = Model([3, 4])
OUT["scores"] = [score(m, x) for x in range(1, 5)] + [spread(m)] + [total(m, x) for x in range(2)]
OUT["runs"] = [score.misses, spread.misses, total.misses]
"""]
    first, second = run_kernel(cells, cache_dir, seed=1), run_kernel(cells, cache_dir, seed=2)
    assert first["scores"] == second["scores"] == [5.0, 10.0, 15.0, 20.0, -1.0, 70, 71]
    assert (first["runs"], second["runs"]) == ([4, 1, 2], [0, 0, 0])


def test_a_value_filled_by_a_run_before_its_object_changed_is_still_not_stored(shell: Shell) -> None:
    shell.run(MODEL)
    said = _said(shell, """
m = Model([3, 4])
score(m, 1)
m.w = [6, 8]          # m.norm stays 5.0: what the next body reads
stale = spread(m)
""")
    shell.run("fresh = spread(Model([6, 8]))")
    assert (shell["stale"], shell["fresh"]) == (3.0, -2.0)
    assert any("Model.norm" in w and "not cached" in w for w in said), said


def test_a_value_filled_while_the_body_had_changed_its_object_is_not_stored(shell: Shell) -> None:
    shell.run(MODEL + """
@memo
def peek(m):
    m.w.append(12)  # changed, filled, changed back: the value is of the list as changed
    n = m.norm
    m.w.pop()
    return n
""")
    said = _said(shell, "m = Model([3, 4])\npeeked = peek(m)\nstale = spread(m)")
    shell.run("fresh = spread(Model([3, 4]))")
    assert (shell["peeked"], shell["stale"], shell["fresh"]) == (13.0, -9.0, -1.0)
    assert any("Model.norm" in w for w in said), said


def test_a_value_whose_fill_read_a_file_is_not_stored_by_another_run(shell: Shell, tmp_path: Path) -> None:
    data = tmp_path / "w.txt"
    data.write_text("3 4")
    shell.run(f"""
from notebook_memo import memo
class Loaded:
    def __init__(self, path):
        self.path = path
    @memo.cached_property
    def text(self):
        with open(self.path) as f:
            return f.read()
@memo
def first(o):
    return o.text
@memo
def second(o):
    return o.text.upper()
o = Loaded({str(data)!r})
first(o)
""")
    data.write_text("5 6")
    said = _said(shell, "stale = second(o)")  # o.text is the file as it was: not stored under o's key
    shell.run(f"fresh = second(Loaded({str(data)!r}))")
    assert (shell["stale"], shell["fresh"]) == ("3 4", "5 6")
    assert any("Loaded.text" in w for w in said), said


def test_a_memo_cell_reading_a_value_a_run_filled_is_restored(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo\n" + RUNS_SETUP + MODEL)
    shell.run("t = Model([3, 4])\nscore(t, 1)")
    said = _said(shell, "%%memo cellk\nran('cell')\nn = t.norm * 2")
    shell.run("n = None")
    shell.run("%%memo cellk\nran('cell')\nn = t.norm * 2")
    assert shell["n"] == 10.0 and shell["RUNS"] == {"cell": 1} and said == [], said


def test_a_value_whose_fill_drew_a_random_number_is_not_stored_by_another_run(shell: Shell) -> None:
    shell.run("""
import random
from notebook_memo import memo
class Noisy:
    def __init__(self, n):
        self.n = n
    @memo.cached_property
    def jitter(self):
        return self.n + random.random()
@memo
def drawn(o):
    return o.jitter
@memo
def doubled(o):
    return o.jitter * 2
o = Noisy(1)
drawn(o)
""")
    said = _said(shell, "doubled(o)")  # a fresh Noisy(1) draws anew: no key of o holds this draw
    assert any("Noisy.jitter" in w for w in said), said
    assert shell["doubled"].cache_info().entries == 0
