"""Whose ``query``/``eval`` a call reaches: a text that pandas evaluates reads the notebook's ``@names``.

A call counts as evaluating its text unless the method is known not to: a notebook class deriving from a
DataFrame (overriding ``query``), a class or object holding a frame's bound ``query``, a global bound to one
(``QUERY = DF.query``), ``getattr(DF, "query")`` and ``operator.methodcaller("query", ...)`` all read the
``@names`` of their text, which are keyed (in ``@memo`` functions and ``%%memo`` cells alike, after a restart
too); a computed text warns, naming the function that passes it. A scikit-learn tree's ``query``, also reached
through a class of the notebook, stays quiet.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from notebook_memo import MemoWarning
from tests.conftest import RUNS_SETUP, Shell, run_kernel

FRAMES = """
import operator
from operator import methodcaller
import numpy as np
import pandas as pd
from sklearn.neighbors import KDTree
from notebook_memo import memo
DF = pd.DataFrame({'a': [1, 2, 3, 4]})
class Frame(pd.DataFrame):
    @property
    def _constructor(self):
        return Frame
    def query(self, expr, **kw):
        return super().query(expr, **kw)
class EFrame(pd.DataFrame):  # apart: DataFrame.query calls self.eval, whose override would take a frame level
    def eval(self, expr, **kw):
        return super().eval(expr, **kw)
FR = Frame(DF)
EFR = EFrame(DF)
class Tools:
    query = DF.query
class Holder(KDTree):  # a tree whose own query the object shadows with a frame's
    pass
HOLDER = Holder(np.zeros((2, 2)))
HOLDER.query = DF.query
QUERY = DF.query
EVAL = DF.eval
T = 1
"""

# How the body reaches a frame's query with a constant text reading @T; each gives 3 rows for T = 1, 1 for T = 3.
CALLS = {
    "subclass": 'len(FR.query("a > @T"))',
    "subclass eval": 'int(EFR.eval("a > @T").sum())',
    "class attribute": 'len(Tools.query("a > @T"))',
    "instance attribute": 'len(HOLDER.query("a > @T"))',
    "alias": 'len(QUERY("a > @T"))',
    "getattr": 'len(getattr(DF, "query")("a > @T"))',
    "methodcaller": 'len(operator.methodcaller("query", "a > @T")(DF))',
    "methodcaller by name": 'len(methodcaller("query", "a > @T")(DF))',
    "alias of eval": 'int(EVAL("a > @T").sum())',
}


@pytest.mark.parametrize("how", sorted(CALLS))
def test_a_memo_function_reading_a_name_through_a_frames_query_recomputes_when_it_changes(
        shell: Shell, how: str) -> None:
    shell.run(FRAMES + f"@memo\ndef rows():\n    return {CALLS[how]}")
    assert shell.run("rows()") == 3
    shell.run("T = 3")
    assert shell.run("rows()") == 1
    assert shell.run("rows.misses") == 2


RESTARTED = ["subclass", "class attribute", "alias", "getattr"]


def test_a_memo_function_reading_a_name_through_a_frames_query_recomputes_after_a_restart(cache_dir: Path) -> None:
    # One function per route, all in the same two kernels (a kernel's start is most of such a test's time).
    body = "".join(f"@memo\ndef rows_{n}():\n    return {CALLS[how]}\nOUT['{how}'] = (rows_{n}(), rows_{n}.misses)\n"
                   for n, how in enumerate(RESTARTED))
    first = run_kernel([FRAMES, body], cache_dir, seed=1)
    assert {how: first[how][0] for how in RESTARTED} == dict.fromkeys(RESTARTED, 3)
    again = run_kernel([FRAMES, "T = 3", body], cache_dir, seed=2)
    assert {how: tuple(again[how]) for how in RESTARTED} == dict.fromkeys(RESTARTED, (1, 1))


@pytest.mark.parametrize("how", sorted(CALLS))
def test_a_cell_reading_a_name_through_a_frames_query_runs_again_when_it_changes(shell: Shell, how: str) -> None:
    shell.run("%load_ext notebook_memo\n" + FRAMES + RUNS_SETUP)
    cell = f"%%memo\nran('cell')\nn = {CALLS[how]}"
    shell.run(cell)
    shell.run(cell)
    assert (shell["n"], shell["RUNS"]) == (3, {"cell": 1})
    shell.run("T = 3")
    shell.run(cell)
    assert (shell["n"], shell["RUNS"]) == (1, {"cell": 2})


@pytest.mark.parametrize("receiver", ["DF", "df"])
def test_a_computed_text_warning_names_the_function_passing_it(shell: Shell, receiver: str) -> None:
    shell.run(FRAMES + f"@memo\ndef rows(text):\n    df = DF\n    return len({receiver}.query(text))")
    with pytest.warns(MemoWarning, match=r"'rows: \.query\(\.\.\.\)' cannot be hashed"):
        assert shell.run("rows('a > @T')") == 3


COMPUTED = {
    "subclass": "FR.query(text)",
    "class attribute": "Tools.query(text)",
    "alias": "QUERY(text)",
    "getattr": 'getattr(DF, "query")(text)',
}


@pytest.mark.parametrize("how", sorted(COMPUTED))
def test_a_memo_function_passing_a_frames_query_a_computed_text_warns(shell: Shell, how: str) -> None:
    shell.run(FRAMES + f"@memo\ndef rows(text):\n    return len({COMPUTED[how]})")
    with pytest.warns(MemoWarning, match="text computed at run time"):
        assert shell.run("rows('a > @T')") == 3


@pytest.mark.parametrize("how", sorted(COMPUTED))
def test_a_cell_passing_a_frames_query_a_computed_text_runs_each_time(shell: Shell, how: str) -> None:
    shell.run("%load_ext notebook_memo\n" + FRAMES + RUNS_SETUP)
    cell = f"%%memo\nran('cell')\ntext = 'a > @T'\nn = len({COMPUTED[how]})"
    with pytest.warns(MemoWarning, match="a text computed at run time"):
        shell.run(cell)
    shell.run("T = 3")
    shell.run(cell)
    assert (shell["n"], shell["RUNS"]) == (1, {"cell": 2})


TREES = {
    "a subclass": "class MyTree(KDTree):\n    pass\nTREE = MyTree(np.arange(20.0).reshape(10, 2))",
    "a class attribute": "TREE0 = KDTree(np.arange(20.0).reshape(10, 2))\nclass TREE:\n    query = TREE0.query",
}


@pytest.mark.parametrize("tree", sorted(TREES))
def test_a_trees_query_reached_through_a_notebook_class_stays_quiet(shell: Shell, tree: str) -> None:
    """Guard: a scikit-learn tree's query evaluates no text, whoever holds it."""
    shell.run("%load_ext notebook_memo\n" + FRAMES + RUNS_SETUP + TREES[tree])
    shell.run("@memo\ndef near(pts):\n    return TREE.query(pts, k=2)[1].tolist()")
    cell = "%%memo\nran('cell')\npts = np.arange(20.0).reshape(10, 2)[:2]\nj = TREE.query(pts, k=1)[1]"
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        assert shell.run("near(np.arange(4.0).reshape(2, 2))") == [[0, 1], [1, 0]]
        shell.run(cell)


def test_a_trees_query_held_by_a_notebook_class_is_cached(shell: Shell) -> None:
    """Guard: a class holding a tree's bound query keys no text, and a cell calling it is stored."""
    shell.run("%load_ext notebook_memo\n" + FRAMES + RUNS_SETUP + TREES["a class attribute"])
    shell.run("@memo\ndef near(pts):\n    return TREE.query(pts, k=2)[1].tolist()")
    cell = "%%memo\nran('cell')\npts = np.arange(20.0).reshape(10, 2)[:2]\nj = TREE.query(pts, k=1)[1]"
    assert shell.run("near(np.arange(4.0).reshape(2, 2)) and near(np.arange(4.0).reshape(2, 2)) and "
                     "near.cache_info().hits") == 1
    shell.run(cell)
    shell.run(cell)
    assert shell["RUNS"] == {"cell": 1}


def test_a_global_holding_a_trees_query_stays_quiet_and_cached(shell: Shell) -> None:
    """Guard: a name bound to a tree's query evaluates no text, unlike one bound to a frame's."""
    shell.run("%load_ext notebook_memo\n" + FRAMES + RUNS_SETUP + "NEAR = KDTree(np.arange(20.0).reshape(10, 2)).query")
    shell.run("@memo\ndef near(pts):\n    return NEAR(pts, k=2)[1].tolist()")
    cell = "%%memo\nran('cell')\npts = np.arange(20.0).reshape(10, 2)[:2]\nj = NEAR(pts, k=1)[1]"
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        assert shell.run("near(np.arange(4.0).reshape(2, 2)) and near(np.arange(4.0).reshape(2, 2)) and "
                         "near.cache_info().hits") == 1
        shell.run(cell)
        shell.run(cell)
    assert shell["RUNS"] == {"cell": 1}


def test_a_memo_function_binding_a_frames_query_to_a_local_name_warns(shell: Shell) -> None:
    """Which text the name is called with is not followed: left out with a warning, as a computed text is."""
    shell.run(FRAMES + "@memo\ndef rows():\n    q = DF.query\n    return len(q('a > @T'))")
    with pytest.warns(MemoWarning, match=r"'rows: \.query\(\.\.\.\)' cannot be hashed"):
        assert shell.run("rows()") == 3


def test_a_cell_binding_a_frames_query_to_a_name_runs_each_time(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo\n" + FRAMES + RUNS_SETUP)
    cell = "%%memo\nran('cell')\nq = DF.query\nn = len(q('a > @T'))"
    with pytest.warns(MemoWarning, match="binds DF.query to a name"):
        shell.run(cell)
    shell.run("T = 3")
    shell.run(cell)
    assert (shell["n"], shell["RUNS"]) == (1, {"cell": 2})


def test_a_trees_query_bound_to_a_local_name_stays_quiet(shell: Shell) -> None:
    """Guard: a tree's query under a local name evaluates no text."""
    shell.run("%load_ext notebook_memo\n" + FRAMES + RUNS_SETUP + "TREE = KDTree(np.arange(20.0).reshape(10, 2))")
    shell.run("@memo\ndef near(pts):\n    nn = TREE.query\n    return nn(pts, k=2)[1].tolist()")
    cell = "%%memo\nran('cell')\nnn = TREE.query\nj = nn(np.arange(4.0).reshape(2, 2), k=1)[1]"
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        assert shell.run("near(np.arange(4.0).reshape(2, 2))") == [[0, 1], [1, 0]]
        shell.run(cell)
        shell.run(cell)
    assert shell["RUNS"] == {"cell": 1}
