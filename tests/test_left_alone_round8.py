"""Left alone, round eight.

A seeding function (or state reader) taken by name before the first memoized call ran (``from random import seed``)
is seen as the module's own, so a body that seeds before it draws hits after a restart, and one that reads the state
through it depends on that state. A global diskcache store or SQLite connection nobody changed hits after a restart
(compared by its rows), and one another process wrote to recomputes. ``explain_last`` and ``%memo explain`` right
after a call or cell that computed say so, and whether its result is stored. The ``query`` of a global that is no
data frame (a scikit-learn ``KDTree``) reads no text: no warning, and a cell is cached; a DataFrame's still counts.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from notebook_memo import MemoWarning
from tests.conftest import RUNS_SETUP, Shell, run_kernel

SEEDED_BEFORE = {
    "random": ("from random import seed\nimport random", "seed(0); return random.random()"),
    "numpy": ("from numpy.random import seed\nimport numpy as np", "seed(0); return float(np.random.random())"),
}


@pytest.mark.parametrize("library", sorted(SEEDED_BEFORE))
def test_a_seeder_taken_by_name_before_the_first_call_hits_after_a_restart(cache_dir: Path, library: str) -> None:
    imports, body = SEEDED_BEFORE[library]
    cells = [imports, RUNS_SETUP, f"""
@memo
def f():
    ran('f')
    {body}
OUT['v'] = f()
OUT['runs'] = dict(RUNS)
"""]
    first, second, third = (run_kernel(cells, cache_dir, seed=s) for s in (1, 2, 3))
    assert first["runs"] == {"f": 1}
    assert second["runs"] == {} and third["runs"] == {}
    assert first["v"] == second["v"] == third["v"]
    assert not second["_warnings"]


def test_an_unseeded_draw_through_a_name_taken_before_still_recomputes(cache_dir: Path) -> None:
    """Guard: ``from random import random as rnd`` drawn unseeded depends on the state it found; every new
    kernel's state is new, so every one computes its own number."""
    cells = ["from random import random as rnd", RUNS_SETUP, """
@memo
def f():
    ran('f')
    return rnd()
OUT['v'] = f()
OUT['runs'] = dict(RUNS)
"""]
    runs = [run_kernel(cells, cache_dir, seed=s) for s in (1, 2)]
    assert [r["runs"] for r in runs] == [{"f": 1}, {"f": 1}]
    assert runs[0]["v"] != runs[1]["v"]


def test_a_state_reader_taken_by_name_before_the_first_call_keys_the_state(cache_dir: Path) -> None:
    """``from random import getstate`` bound first, then a body that copies the global state into a generator of
    its own: it depends on that state, so a kernel whose state differs computes again (never the old number)."""
    cells = ["from random import getstate\nimport random", RUNS_SETUP, """
@memo
def f():
    ran('f')
    r = random.Random()
    r.setstate(getstate())
    return r.random()
OUT['v'] = f()
OUT['runs'] = dict(RUNS)
OUT['own'] = random.random()
"""]
    runs = [run_kernel(cells, cache_dir, seed=s) for s in (1, 2)]
    assert [r["runs"] for r in runs] == [{"f": 1}, {"f": 1}]
    assert runs[0]["v"] != runs[1]["v"]


def test_a_cell_seeding_through_a_name_taken_before_hits_after_a_restart(cache_dir: Path) -> None:
    """The same in a ``%%memo`` cell: ``seed`` bound in the first cell, before anything was memoized."""
    cells = ["from random import seed\nimport random", RUNS_SETUP, "%load_ext notebook_memo", """
%%memo
ran('cell')
seed(1)
v = random.random()
""", "OUT['v'] = v; OUT['runs'] = dict(RUNS)"]
    first, second = (run_kernel(cells, cache_dir, seed=s) for s in (1, 2))
    assert first["runs"] == {"cell": 1} and second["runs"] == {}
    assert first["v"] == second["v"]


# -- a global diskcache or SQLite connection after a restart ---------------------------------------------------

_DISKCACHE_CELLS = [RUNS_SETUP, """
import diskcache
CACHE = diskcache.Cache("dc")

@memo
def look(k):
    ran("look")
    return CACHE.get(k)

OUT["v"] = look("k")
OUT["runs"] = dict(RUNS)
"""]


def _set_in_another_process(folder: Path, value: str) -> None:
    import subprocess
    import sys

    writer = f"import diskcache; diskcache.Cache({str(folder / 'dc')!r})['k'] = {value!r}"
    subprocess.run([sys.executable, "-c", writer], check=True)


def test_a_global_diskcache_nobody_changed_hits_after_a_restart(cache_dir: Path) -> None:
    folder = cache_dir.parent
    _set_in_another_process(folder, "AAAA")
    first, second, third = (run_kernel(_DISKCACHE_CELLS, cache_dir, seed=s) for s in (1, 2, 3))
    assert first["runs"] == {"look": 1}
    assert (second["runs"], third["runs"]) == ({}, {}), second["_warnings"]
    assert first["v"] == second["v"] == third["v"] == "AAAA"


def test_a_global_diskcache_another_process_set_recomputes_after_a_restart(cache_dir: Path) -> None:
    """Guard: the same value set again, or another one, is a change (a set makes a new row)."""
    folder = cache_dir.parent
    _set_in_another_process(folder, "AAAA")
    assert run_kernel(_DISKCACHE_CELLS, cache_dir, seed=1)["runs"] == {"look": 1}
    _set_in_another_process(folder, "BBBB")
    changed = run_kernel(_DISKCACHE_CELLS, cache_dir, seed=2)
    assert (changed["v"], changed["runs"]) == ("BBBB", {"look": 1})
    assert run_kernel(_DISKCACHE_CELLS, cache_dir, seed=3)["runs"] == {}
    _set_in_another_process(folder, "BBBB")
    assert run_kernel(_DISKCACHE_CELLS, cache_dir, seed=4)["runs"] == {"look": 1}


_SQLITE_WAL_CELLS = [RUNS_SETUP, """
import sqlite3
C = sqlite3.connect("w.db")

@memo
def row():
    ran("row")
    return C.execute("select v from t").fetchall()[0][0]

OUT["v"] = row()
OUT["runs"] = dict(RUNS)
"""]


def test_a_global_sqlite_connection_in_wal_mode_hits_after_a_restart_and_sees_a_change(cache_dir: Path) -> None:
    import sqlite3

    path = cache_dir.parent / "w.db"
    with sqlite3.connect(path) as connection:
        connection.execute("pragma journal_mode=wal")
        connection.execute("create table t(v)")
        connection.execute("insert into t values ('AAAA')")
    connection.close()
    first, second = (run_kernel(_SQLITE_WAL_CELLS, cache_dir, seed=s) for s in (1, 2))
    assert (first["runs"], second["runs"]) == ({"row": 1}, {}), second["_warnings"]
    with sqlite3.connect(path) as connection:
        connection.execute("update t set v = 'BBBB'")
    connection.close()
    changed = run_kernel(_SQLITE_WAL_CELLS, cache_dir, seed=3)
    assert (changed["v"], changed["runs"]) == ("BBBB", {"row": 1})


# -- explaining a call right after it computed -------------------------------------------------------------------


def test_explain_last_after_a_computed_call_says_it_was_computed_and_stored(shell: Shell, tmp_path: Path) -> None:
    data = tmp_path / "x.txt"
    data.write_text("AAAA")
    shell.run(f"""
    %load_ext notebook_memo
    from notebook_memo import memo

    @memo
    def double(x):
        return x * 2

    @memo
    def head():
        with open({str(data)!r}) as fh:
            return fh.read()

    double(1)
    double(2)
    head()
    """)
    report = str(shell.run("double.explain_last()"))
    assert "computed now" in report and "stored" in report and "argument 'x' differs" in report, report
    assert "nothing is cached" not in report, report
    magic = str(shell.run("%memo explain double"))
    assert "computed now" in magic and "argument 'x' differs" in magic, magic
    data.write_text("BBBBB")
    assert shell.run("head()") == "BBBBB"
    report = str(shell.run("head.explain_last()"))
    assert "computed now" in report and "stored" in report and "x.txt changed" in report, report
    # Guards: a hit says so; a result that was not stored says that, not that it was stored.
    assert str(shell.run("double(2) and double.explain_last()")).startswith("double: HIT"), "a hit"
    shell.run("double(3)\ndouble.clear()")
    report = str(shell.run("double.explain_last()"))
    assert "not stored" in report and "and stored" not in report, report


def test_explain_after_a_cell_computed_again_says_it_was_computed_and_stored(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo\nA = 2")
    shell.run("%%memo twice\nB = A * 2")
    shell.run("A = 3")
    shell.run("%%memo twice\nB = A * 2")
    report = str(shell.run("%memo explain twice"))
    assert "computed now" in report and "stored" in report and "input 'A' differs" in report, report
    shell.run("%%memo twice\nB = A * 2")
    assert str(shell.run("%memo explain twice")).startswith("cell:twice: HIT")


# -- .query(...) of what is not a pandas DataFrame -----------------------------------------------------------------

TREES = """
import warnings
import numpy as np
import pandas as pd
from sklearn.neighbors import BallTree, KDTree
from notebook_memo import memo, MemoWarning
X = np.arange(20.0).reshape(10, 2)
T = KDTree(X)
B = BallTree(X)
DF = pd.DataFrame({'value': range(10)})
limit = 5
"""


@pytest.mark.parametrize("tree", ["T", "B"])
def test_a_memo_function_querying_a_global_tree_with_its_argument_is_keyed_without_a_warning(
        shell: Shell, tree: str) -> None:
    shell.run(TREES + f"""
@memo
def near(pts):
    return {tree}.query(pts, k=2)[1].tolist()
""")
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        assert shell.run("near(X[:2])") == [[0, 1], [1, 0]]
    assert "not part of the key" not in str(shell.run("near.explain_last()"))
    assert shell.run("near(X[:2]) and near.cache_info().hits") == 1


def test_a_memo_function_querying_a_global_dataframe_with_a_computed_text_still_warns(shell: Shell) -> None:
    """Guard: pandas' DataFrame.query reads the @names of a text the code does not show."""
    shell.run(TREES + "@memo\ndef count(text):\n    return len(DF.query(text))")
    with pytest.warns(MemoWarning, match=r"\.query\(\.\.\.\)"):
        assert shell.run("count('value > @limit')") == 4


def test_a_cell_querying_a_tree_with_a_variable_is_cached(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo\n" + TREES + RUNS_SETUP)
    cell = "%%memo trees\nran('cell')\npts = X[:3]\nd, i = T.query(pts, k=2)\nj = B.query(pts, k=1)[1]"
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        shell.run(cell)
        shell.run(cell)
    assert shell["RUNS"] == {"cell": 1}


@pytest.mark.parametrize("cell", [
    "%%memo frames\nran('cell')\ntext = 'value > @limit'\nn = len(DF.query(text))",
    # T names a tree in the notebook now, but the cell binds it to a DataFrame before querying it
    "%%memo frames\nran('cell')\ntext = 'value > @limit'\nT = DF\nn = len(T.query(text))",
])
def test_a_cell_querying_a_dataframe_with_a_computed_text_still_runs_each_time(shell: Shell, cell: str) -> None:
    """Guard: the cell reads ``limit`` through the text, which no key holds."""
    shell.run("%load_ext notebook_memo\n" + TREES + RUNS_SETUP)
    with pytest.warns(MemoWarning, match=r"\.query\(\.\.\.\) a text computed at run time"):
        shell.run(cell)
    shell.run("limit = 2")
    shell.run(cell)
    assert shell["n"] == 7 and shell["RUNS"] == {"cell": 2}
