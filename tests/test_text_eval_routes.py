"""Texts a frame's ``query``/``eval`` evaluates against the caller's names, reached by routes the call's spelling
does not show: a frame's bound query under another attribute name (``mod.QUERY``, ``BOX.q``), the method taken
from the class (``pd.DataFrame.query(DF, text)``, ``type(DF).query``, ``DF.query.__func__``), or a
``functools.partial`` holding it. A constant text's ``@names`` are keyed (in ``@memo`` functions and ``%%memo``
cells, after a restart too); where the text is not shown the function warns, and a cell runs unstored.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from notebook_memo import MemoWarning
from tests.conftest import RUNS_SETUP, Shell, run_kernel

FRAMES = """
import functools
import types
import numpy as np
import pandas as pd
from sklearn.neighbors import KDTree
from notebook_memo import memo
DF = pd.DataFrame({'a': [1, 2, 3, 4]})
MOD = types.SimpleNamespace(QUERY=DF.query, EVAL=DF.eval)
class Box:
    def __init__(self):
        self.q = DF.query
BOX = Box()
T = 1
"""

# How the body reaches a frame's query or eval with a constant text reading @T; 3 for T = 1, 1 for T = 3.
CALLS = {
    "another attribute name": 'len(MOD.QUERY("a > @T"))',
    "an instance's attribute": 'len(BOX.q("a > @T"))',
    "eval under another name": 'int(MOD.EVAL("a > @T").sum())',
    "the class's method": 'len(pd.DataFrame.query(DF, "a > @T"))',
    "the class's eval": 'int(pd.DataFrame.eval(DF, "a > @T").sum())',
    "type(...)'s method": 'len(type(DF).query(DF, "a > @T"))',
    "__func__": 'len(DF.query.__func__(DF, "a > @T"))',
    "a partial": 'len(functools.partial(DF.query, "a > @T")())',
    "a keyword": 'len(MOD.QUERY(expr="a > @T"))',
}


@pytest.mark.parametrize("how", sorted(CALLS))
def test_a_memo_function_reading_a_name_through_a_query_by_another_route_recomputes(shell: Shell, how: str) -> None:
    shell.run(FRAMES + f"@memo\ndef rows():\n    return {CALLS[how]}")
    assert shell.run("rows()") == 3
    shell.run("T = 3")
    assert shell.run("rows()") == 1
    assert shell.run("rows.misses") == 2


@pytest.mark.parametrize("how", sorted(CALLS))
def test_a_cell_reading_a_name_through_a_query_by_another_route_runs_again(shell: Shell, how: str) -> None:
    shell.run("%load_ext notebook_memo\n" + FRAMES + RUNS_SETUP)
    cell = f"%%memo\nran('cell')\nn = {CALLS[how]}"
    shell.run(cell)
    shell.run("T = 3")
    shell.run(cell)
    assert (shell["n"], shell["RUNS"]) == (1, {"cell": 2})


RESTARTED = ["another attribute name", "the class's method"]


def test_a_query_by_another_route_recomputes_after_a_restart(cache_dir: Path) -> None:
    # One function per route, all in the same kernels (a kernel's start is most of such a test's time).
    body = "".join(f"@memo\ndef rows_{n}():\n    return {CALLS[how]}\nOUT[{how!r}] = (rows_{n}(), rows_{n}.misses)\n"
                   for n, how in enumerate(RESTARTED))
    first = run_kernel([FRAMES, body], cache_dir, seed=1)
    assert {how: first[how][0] for how in RESTARTED} == dict.fromkeys(RESTARTED, 3)
    same = run_kernel([FRAMES, body], cache_dir, seed=2)
    assert {how: tuple(same[how]) for how in RESTARTED} == dict.fromkeys(RESTARTED, (3, 0))  # T unchanged: hits
    again = run_kernel([FRAMES, "T = 3", body], cache_dir, seed=3)
    assert {how: tuple(again[how]) for how in RESTARTED} == dict.fromkeys(RESTARTED, (1, 1))


def test_a_text_with_no_at_names_passed_around_stays_quiet_and_cached(shell: Shell) -> None:
    """Guard: a text naming no @variable reads nothing of the caller's; nothing is added, nothing warns."""
    shell.run("%load_ext notebook_memo\n" + FRAMES + RUNS_SETUP)
    shell.run('@memo\ndef rows():\n    return len(MOD.QUERY("a > 1"))')
    cell = "%%memo\nran('cell')\nn = len(MOD.QUERY('a > 1'))"
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        assert shell.run("rows() + rows()") == 6
        shell.run(cell)
        shell.run(cell)
    assert (shell.run("rows.misses"), shell["RUNS"]) == (1, {"cell": 1})


def test_a_trees_query_under_another_name_stays_quiet_and_cached(shell: Shell) -> None:
    """Guard: a tree's query, under another attribute name, keys no text and warns nothing."""
    shell.run("%load_ext notebook_memo\n" + FRAMES + RUNS_SETUP +
              "TOOLS = types.SimpleNamespace(near=KDTree(np.arange(20.0).reshape(10, 2)).query)")
    shell.run("@memo\ndef near(pts):\n    return TOOLS.near(pts, k=2)[1].tolist()")
    cell = "%%memo\nran('cell')\nj = TOOLS.near(np.arange(4.0).reshape(2, 2), k=1)[1]"
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        assert shell.run("near(np.arange(4.0).reshape(2, 2)) and near(np.arange(4.0).reshape(2, 2)) and "
                         "near.cache_info().hits") == 1
        shell.run(cell)
        shell.run(cell)
    assert shell["RUNS"] == {"cell": 1}


# A functools.partial holding a frame's query or pandas.eval, made in another cell: its text is read where it is
# called, which the calling code does not show. Each gives 3 for T = 1, 1 for T = 3.
PARTIALS = {
    "a frame's query": ('PQ = functools.partial(DF.query, "a > @T")', "len(PQ())"),
    "the class's query": ('PQ = functools.partial(pd.DataFrame.query, DF, "a > @T")', "len(PQ())"),
    "pandas.eval": ('PQ = functools.partial(pd.eval, "4 - T")', "int(PQ())"),
    "a class's attribute": ('class PQ:\n    big = functools.partial(DF.query, "a > @T")', "len(PQ.big())"),
}


@pytest.mark.parametrize("how", sorted(PARTIALS))
def test_a_memo_function_calling_a_partial_of_a_frames_query_warns(shell: Shell, how: str) -> None:
    made, call = PARTIALS[how]
    shell.run(FRAMES + made + f"\n@memo\ndef rows():\n    return {call}")
    with pytest.warns(MemoWarning, match=r"rows: 'PQ[.\w]*' cannot be hashed \(it is a functools.partial of"):
        assert shell.run("rows()") == 3


@pytest.mark.parametrize("how", sorted(PARTIALS))
def test_a_cell_calling_a_partial_of_a_frames_query_runs_each_time(shell: Shell, how: str) -> None:
    made, call = PARTIALS[how]
    shell.run("%load_ext notebook_memo\n" + FRAMES + RUNS_SETUP + made)
    cell = f"%%memo\nran('cell')\nn = {call}"
    with pytest.warns(MemoWarning, match=r"it reads PQ[.\w]*, a functools.partial of"):
        shell.run(cell)
    shell.run("T = 3")
    shell.run(cell)
    assert (shell["n"], shell["RUNS"]) == (1, {"cell": 2})


def test_a_partial_of_a_trees_query_stays_quiet_and_cached(shell: Shell) -> None:
    """Guard: a partial of a tree's query evaluates no text."""
    shell.run("%load_ext notebook_memo\n" + FRAMES + RUNS_SETUP +
              "NEAR = functools.partial(KDTree(np.arange(20.0).reshape(10, 2)).query, k=1)")
    shell.run("@memo\ndef near(pts):\n    return NEAR(pts)[1].tolist()")
    cell = "%%memo\nran('cell')\nj = NEAR(np.arange(4.0).reshape(2, 2))[1]"
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        assert shell.run("near(np.arange(4.0).reshape(2, 2)) and near(np.arange(4.0).reshape(2, 2)) and "
                         "near.cache_info().hits") == 1
        shell.run(cell)
        shell.run(cell)
    assert shell["RUNS"] == {"cell": 1}


# A text not written out in the call (TEXT = 'a > @T' in another cell, or an argument), by the same routes.
NAMED = {
    "another attribute name": "len(MOD.QUERY(TEXT))",
    "an instance's attribute": "len(BOX.q(TEXT))",
}
UNBOUND = {
    "the class's method": "len(pd.DataFrame.query(DF, TEXT))",
    "type(...)'s method": "len(type(DF).query(DF, TEXT))",
    "the class's eval, by keyword": "int(pd.DataFrame.eval(DF, expr=TEXT).sum())",
}
TEXT = "\nTEXT = 'a > @T'"


@pytest.mark.parametrize("how", sorted(NAMED))
def test_a_memo_function_passing_a_global_text_to_a_query_under_another_name_recomputes(
        shell: Shell, how: str) -> None:
    shell.run(FRAMES + TEXT + f"\n@memo\ndef rows():\n    return {NAMED[how]}")
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        assert shell.run("rows()") == 3
        shell.run("T = 3")
        assert shell.run("rows()") == 1


@pytest.mark.parametrize("how", sorted(NAMED))
def test_a_memo_function_passing_a_computed_text_to_a_query_under_another_name_warns(
        shell: Shell, how: str) -> None:
    shell.run(FRAMES + f"\n@memo\ndef rows(TEXT):\n    return {NAMED[how]}")
    with pytest.warns(MemoWarning, match="text computed at run time"):
        assert shell.run("rows('a > @T')") == 3


@pytest.mark.parametrize("how", sorted(UNBOUND))
def test_a_memo_function_passing_a_text_after_the_frame_to_the_classs_query_warns(shell: Shell, how: str) -> None:
    shell.run(FRAMES + TEXT + f"\n@memo\ndef rows():\n    return {UNBOUND[how]}")
    with pytest.warns(MemoWarning, match=r"rows: 'rows: DF, \.\.\.' cannot be hashed \(it passes DF, a data frame"):
        assert shell.run("rows()") == 3


@pytest.mark.parametrize("how", sorted({**NAMED, **UNBOUND}))
def test_a_cell_passing_a_global_text_to_a_query_by_another_route_runs_each_time(shell: Shell, how: str) -> None:
    shell.run("%load_ext notebook_memo\n" + FRAMES + RUNS_SETUP + TEXT)
    cell = f"%%memo\nran('cell')\nn = {({**NAMED, **UNBOUND})[how]}"
    with pytest.warns(MemoWarning, match="a text computed at run time"):
        shell.run(cell)
    shell.run("T = 3")
    shell.run(cell)
    assert (shell["n"], shell["RUNS"]) == (1, {"cell": 2})


def test_a_frame_passed_alone_to_a_method_named_eval_stays_quiet(shell: Shell) -> None:
    """Guard: one frame as the only argument (``scorer.eval(DF)``) is no text, and no text follows it."""
    shell.run(FRAMES + "class Scorer:\n    def eval(self, df):\n        return len(df)\n"
              "@memo\ndef rows():\n    scorer = Scorer()\n    return scorer.eval(DF)")
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        assert shell.run("rows() + rows()") == 8


def test_pandas_eval_under_another_attribute_name_reads_every_name_of_its_text(shell: Shell) -> None:
    """pandas.eval held as EV.ev reads every name of its text, not only @names: T is keyed."""
    shell.run("%load_ext notebook_memo\n" + FRAMES + RUNS_SETUP + "EV = types.SimpleNamespace(ev=pd.eval)")
    shell.run('@memo\ndef total():\n    return int(EV.ev("4 - T"))')
    cell = "%%memo\nran('cell')\nn = int(EV.ev('4 - T'))"
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        assert shell.run("total()") == 3
        shell.run(cell)
        shell.run("T = 3")
        assert shell.run("total()") == 1
        shell.run(cell)
    assert (shell["n"], shell["RUNS"]) == (1, {"cell": 2})
