"""A ``memo.cached_property`` or ``memo.per_instance`` value lives on its object but is no part of the object's
content, so a value filled before the object changed (peeked, then the object's data replaced) is stale for the
object's key. A @memo body, an async body, a ``memo.batch`` chunk or a ``%%memo`` cell that reads such a value,
held since before its run began, is not stored (saying so once): a fresh object with that key, in this kernel or a
restarted one, would be served the stale answer. Values the run fills itself are stored as before."""

from __future__ import annotations

import warnings
from pathlib import Path

from notebook_memo import MemoWarning, StorageWarning
from tests.conftest import Shell, run_kernel

SURVEY = """
from notebook_memo import memo
class Survey:
    def __init__(self, answers):
        self.answers = answers
    @memo.cached_property
    def mean(self):
        return sum(self.answers) / len(self.answers)
    @memo.per_instance
    def scaled(self, k):
        return sum(self.answers) * k
@memo
def report(s):
    return f"mean {s.mean:.2f}"
@memo
def total(s):
    return s.scaled(10)
"""


def _said(shell: Shell, source: str) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shell.run(source)
    return [str(w.message) for w in caught if issubclass(w.category, (MemoWarning, StorageWarning))]


def test_a_cached_property_filled_before_its_object_changed_is_not_served_to_a_fresh_object(shell: Shell) -> None:
    shell.run(SURVEY)
    said = _said(shell, """
s = Survey([1, 1, 1, 1])
s.mean
s.answers = [1, 2, 3, 4]  # its mean stays 1.0: what the body reads
stale = report(s)
""")
    shell.run("fresh = report(Survey([1, 2, 3, 4]))")
    assert (shell["stale"], shell["fresh"]) == ("mean 1.00", "mean 2.50")  # as the functions compute them
    assert any("Survey.mean" in w and "not cached" in w for w in said), said


def test_a_per_instance_result_made_before_its_object_changed_is_not_served_to_a_fresh_object(shell: Shell) -> None:
    shell.run(SURVEY)
    said = _said(shell, "s = Survey([1, 1])\ns.scaled(10)\ns.answers = [5, 5]\nstale = total(s)")
    shell.run("fresh = total(Survey([5, 5]))")
    assert (shell["stale"], shell["fresh"]) == (20, 100)
    assert any("Survey.scaled" in w and "not cached" in w for w in said), said


def test_stale_instance_caches_are_not_served_after_a_restart(cache_dir: Path) -> None:
    stale = [SURVEY, """
s = Survey([1, 1, 1, 1])
s.mean
s.answers = [1, 2, 3, 4]
t = Survey([1, 1])
t.scaled(10)
t.answers = [5, 5]
OUT["results"] = [report(s), total(t)]
"""]
    fresh = [SURVEY, """
OUT["results"] = [report(Survey([1, 2, 3, 4])), total(Survey([5, 5]))]
OUT["runs"] = [report.misses, total.misses]
"""]
    first, second, third = (run_kernel(stale, cache_dir, seed=1), run_kernel(fresh, cache_dir, seed=2),
                            run_kernel(fresh, cache_dir, seed=3))
    assert first["results"] == ["mean 1.00", 20]
    assert second["results"] == third["results"] == ["mean 2.50", 100]
    assert (second["runs"], third["runs"]) == ([1, 1], [0, 0])  # the fresh objects' runs are stored and hit


def test_a_memo_cell_reading_a_stale_cached_property_is_not_restored_for_a_fresh_object(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo\n" + SURVEY)
    shell.run("t = Survey([5, 5])\nt.mean\nt.answers = [1, 3]")
    said = _said(shell, "%%memo cellq\nm = t.mean")
    assert shell["m"] == 5.0 and any("Survey.mean" in w for w in said), said
    shell.run("t = Survey([1, 3])")
    shell.run("%%memo cellq\nm = t.mean")
    assert shell["m"] == 2.0


def test_a_stale_cell_is_not_restored_in_a_restarted_kernel(cache_dir: Path) -> None:
    cell = "%%memo cellq\nm = t.mean\nOUT['m'] = m"
    peeked = "t = Survey([5, 5])\nt.mean\nt.answers = [1, 3]"
    stale = run_kernel(["%load_ext notebook_memo", SURVEY, peeked, cell], cache_dir, seed=1)
    fresh = run_kernel(["%load_ext notebook_memo", SURVEY, "t = Survey([1, 3])", cell], cache_dir, seed=2)
    assert (stale["m"], fresh["m"]) == (5.0, 2.0)


def test_an_async_body_reading_a_stale_cached_property_is_not_stored(shell: Shell) -> None:
    shell.run(SURVEY.replace("def report(s)", "async def report(s)"))
    shell.run("import asyncio\ns = Survey([1, 1, 1, 1])\ns.mean\ns.answers = [1, 2, 3, 4]")
    said = _said(shell, "stale = asyncio.run(report(s))")
    shell.run("fresh = asyncio.run(report(Survey([1, 2, 3, 4])))")
    assert (shell["stale"], shell["fresh"]) == ("mean 1.00", "mean 2.50")
    assert any("Survey.mean" in w for w in said), said


def test_a_batch_chunk_reading_a_stale_per_instance_result_is_not_stored(shell: Shell) -> None:
    shell.run(SURVEY + """
@memo.batch("surveys")
def totals(surveys):
    return [s.scaled(10) for s in surveys]
""")
    said = _said(shell, "s = Survey([1, 1])\ns.scaled(10)\ns.answers = [5, 5]\nstale = totals([s])")
    shell.run("fresh = totals([Survey([5, 5])])")
    assert (shell["stale"], shell["fresh"]) == ([20], [100])
    assert any("Survey.scaled" in w for w in said), said


def test_a_cached_property_set_by_hand_before_the_call_is_not_stored(shell: Shell) -> None:
    shell.run(SURVEY)
    shell.run("s = Survey([1, 2, 3, 4])\ns.mean = 7.0\nset_by_hand = report(s)")
    shell.run("fresh = report(Survey([1, 2, 3, 4]))")
    assert (shell["set_by_hand"], shell["fresh"]) == ("mean 7.00", "mean 2.50")


def test_values_the_run_fills_itself_are_stored_and_hit(shell: Shell) -> None:
    shell.run(SURVEY)
    said = _said(shell, """
s = Survey([1, 2, 3, 4])
first = report(s), total(s)
second = report(s), total(s)     # hits, though s now holds both values: the run filled them
again = report(Survey([1, 2, 3, 4])), total(Survey([1, 2, 3, 4]))
""")
    assert shell["first"] == shell["second"] == shell["again"] == ("mean 2.50", 100)
    assert (shell["report"].misses, shell["total"].misses) == (1, 1) and said == []


def test_a_stale_value_dropped_before_the_call_is_stored(shell: Shell) -> None:
    shell.run(SURVEY)
    said = _said(shell, """
s = Survey([1, 1, 1, 1])
s.mean
s.scaled(10)
s.answers = [1, 2, 3, 4]
del s.mean           # as the warning advises
s.scaled.clear()
dropped = report(s), total(s)
""")
    shell.run("fresh = report(Survey([1, 2, 3, 4])), total(Survey([1, 2, 3, 4]))")
    assert shell["dropped"] == shell["fresh"] == ("mean 2.50", 100)
    assert (shell["report"].misses, shell["total"].misses) == (1, 1) and said == []
