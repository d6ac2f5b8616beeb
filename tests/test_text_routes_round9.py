"""Texts a frame's ``query``/``eval`` evaluates against the caller's names, reached by routes the calling code
does not spell: a method of the user's own class passing its text on (``BOX.q(text)``, ``self.q(text)``, one
defined in a module of the user's), deeper attribute chains (``STORE.frames.main.query``, ``STORE.mod.QUERY``), a
bound query, a partial or a lambda kept in a container (``OPS["big"]()``), and a method evaluating a text it makes
itself (``OWN.rows()``). A written-out text's ``@names`` are keyed wherever it is passed, and so are those of a text a
global holds, where pandas looks them up; a text made at run time (``make()``, ``CFG.text``, an f-string) warns in an
``@memo`` function and leaves a ``%%memo`` cell unstored. Guards: a text without ``@``, values passed as arguments,
a written-out text inside a method, and a KDTree's query (through a method of the user's, or on a local) stay cached
and quiet.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from notebook_memo import MemoWarning
from tests.conftest import RUNS_SETUP, Shell

FRAMES = """
import functools
import types
import pandas as pd
from notebook_memo import memo
DF = pd.DataFrame({'a': [1, 2, 3, 4]})
class Box:
    def __init__(self, df):
        self.df = df
    def q(self, text):
        return self.df.query(text)
BOX = Box(DF)
STORE = types.SimpleNamespace(frames=types.SimpleNamespace(main=DF), mod=types.SimpleNamespace(QUERY=DF.query),
                              box=BOX)
OPS = {"big": functools.partial(DF.query, "a > @T"), "lam": lambda: DF.query("a > @T")}
HOLD = {"q": DF.query, "box": BOX}
TEXT = "a > @T"
T = 1
"""

# Routes that already keyed @T when the text is written out in the call (3 rows for T = 1, 1 for T = 3).
WRITTEN = {
    "a method of the user's class": 'len(BOX.q("a > @T"))',
    "the method by keyword": 'len(BOX.q(text="a > @T"))',
    "an attribute chain": 'len(STORE.frames.main.query("a > @T"))',
    "a method through a chain": 'len(STORE.box.q("a > @T"))',
    "getattr": 'len(getattr(DF, "query")("a > @T"))',
    "a partial in a dict": 'len(OPS["big"]())',
    "a lambda in a dict": 'len(OPS["lam"]())',
}

# The same routes, the text held by a global and passed whole: its @T was keyed by none of them.
HELD = {
    "a method of the user's class": "len(BOX.q(TEXT))",
    "the method by keyword": "len(BOX.q(text=TEXT))",
    "a frame's query under another name, through a chain": "len(STORE.mod.QUERY(TEXT))",
    "a method through a chain": "len(STORE.box.q(TEXT))",
    "a bound query in a dict": 'len(HOLD["q"](TEXT))',
    "a method of an object in a dict": 'len(HOLD["box"].q(TEXT))',
}


def _recomputes(shell: Shell, call: str) -> None:
    shell.run(FRAMES + f"@memo\ndef rows():\n    return {call}")
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        assert shell.run("rows() + rows()") == 6
        shell.run("T = 3")
        assert shell.run("rows()") == 1
    assert shell.run("rows.misses") == 2


def _runs_again(shell: Shell, call: str) -> None:
    shell.run("%load_ext notebook_memo\n" + FRAMES + RUNS_SETUP)
    cell = f"%%memo\nran('cell')\nn = {call}"
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        shell.run(cell)
        shell.run(cell)
        assert shell["RUNS"] == {"cell": 1}
        shell.run("T = 3")
        shell.run(cell)
    assert (shell["n"], shell["RUNS"]) == (1, {"cell": 2})


@pytest.mark.parametrize("how", sorted(WRITTEN))
def test_a_memo_function_passing_a_written_out_text_by_another_route_recomputes(shell: Shell, how: str) -> None:
    _recomputes(shell, WRITTEN[how])


@pytest.mark.parametrize("how", sorted(WRITTEN))
def test_a_cell_passing_a_written_out_text_by_another_route_runs_again(shell: Shell, how: str) -> None:
    _runs_again(shell, WRITTEN[how])


@pytest.mark.parametrize("how", sorted(HELD))
def test_a_memo_function_passing_a_global_text_by_another_route_recomputes(shell: Shell, how: str) -> None:
    _recomputes(shell, HELD[how])


UNSPELLED = ["a frame's query under another name, through a chain", "a method through a chain",
             "a bound query in a dict", "a method of an object in a dict"]


@pytest.mark.parametrize("how", UNSPELLED)
def test_a_cell_passing_a_global_text_by_a_route_it_does_not_spell_runs_again(shell: Shell, how: str) -> None:
    _runs_again(shell, HELD[how])


@pytest.mark.parametrize("how", sorted(set(HELD) - set(UNSPELLED)))
def test_a_cell_passing_a_global_text_to_a_method_passing_it_on_runs_each_time(shell: Shell, how: str) -> None:
    """As for a frame's query under another name (MOD.QUERY(TEXT)): a cell runs unstored, and says so."""
    shell.run("%load_ext notebook_memo\n" + FRAMES + RUNS_SETUP)
    cell = f"%%memo\nran('cell')\nn = {HELD[how]}"
    with pytest.warns(MemoWarning, match=r"it passes BOX\.q\(\.\.\.\) a text computed at run time"):
        shell.run(cell)
    shell.run("T = 3")
    shell.run(cell)
    assert (shell["n"], shell["RUNS"]) == (1, {"cell": 2})


def test_a_memoized_method_passing_a_text_to_its_own_query_wrapper_recomputes(shell: Shell) -> None:
    shell.run(FRAMES + "class Rows(Box):\n    @memo\n    def rows(self):\n        return len(self.q('a > @T'))\n"
              "ROWS = Rows(DF)")
    assert shell.run("ROWS.rows() + ROWS.rows()") == 6
    shell.run("T = 3")
    assert shell.run("ROWS.rows()") == 1


def test_a_text_without_at_names_and_values_passed_as_arguments_stay_cached_and_quiet(shell: Shell) -> None:
    """Guard: a global text naming no @variable, and a body passing its values as arguments, read nothing of the
    caller's names: nothing is added, nothing warns, and changing an unrelated global keeps the hits."""
    shell.run("%load_ext notebook_memo\n" + FRAMES + RUNS_SETUP + "PLAIN = 'a > 1'\nMAIL = 'me@host'")
    shell.run("@memo\ndef rows(limit):\n    return len(BOX.q(PLAIN)) + len(DF.query('a > @limit')) + len(MAIL)")
    cell = "%%memo\nran('cell')\nn = len(HOLD['q'](PLAIN)) + len(STORE.mod.QUERY(PLAIN)) + len(MAIL)"
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        assert shell.run("rows(2) + rows(2)") == 2 * (3 + 2 + 7)
        shell.run(cell)
        shell.run("T = 3")
        assert shell.run("rows(2)") == 12
        shell.run(cell)
    assert (shell.run("rows.misses"), shell["n"], shell["RUNS"]) == (1, 3 + 3 + 7, {"cell": 1})


# A method of the user's class passing its text on, given a text the call does not show: the function warns, the
# cell runs each time (the method's own warning stayed inside the digest of its class, which keys the instance).
FORWARDED = {
    "a text made by a call": "len(BOX.q(make()))",
    "an f-string of a name": 'len(BOX.q(f"a > @{NAME}"))',
    "a text made by keyword": "len(BOX.q(text=make()))",
}
MADE = "\nNAME = 'T'\ndef make():\n    return 'a > @' + NAME\n"


@pytest.mark.parametrize("how", sorted(FORWARDED))
def test_a_memo_function_passing_a_computed_text_to_a_method_passing_it_on_warns(shell: Shell, how: str) -> None:
    shell.run(FRAMES + MADE + f"@memo\ndef rows():\n    return {FORWARDED[how]}")
    with pytest.warns(MemoWarning, match=r"'rows: \.query\(\.\.\.\)' cannot be hashed \(it evaluates a text computed"):
        assert shell.run("rows()") == 3


@pytest.mark.parametrize("how", sorted(FORWARDED))
def test_a_cell_passing_a_computed_text_to_a_method_passing_it_on_runs_each_time(shell: Shell, how: str) -> None:
    shell.run("%load_ext notebook_memo\n" + FRAMES + RUNS_SETUP + MADE)
    cell = f"%%memo\nran('cell')\nn = {FORWARDED[how]}"
    with pytest.warns(MemoWarning, match="a text computed at run time"):
        shell.run(cell)
    shell.run("T = 3")
    shell.run(cell)
    assert (shell["n"], shell["RUNS"]) == (1, {"cell": 2})


def test_a_method_passing_its_text_on_to_pandas_eval_reads_every_name_of_a_global_text(shell: Shell) -> None:
    """pandas.eval reads every name of its text, not only @names: through the user's method, T is keyed."""
    shell.run(FRAMES + "class Calc:\n    def ev(self, expr):\n        return pd.eval(expr)\n"
              "CALC = Calc()\nSUM = '4 - T'")
    shell.run("@memo\ndef total():\n    return int(CALC.ev(SUM))")
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        assert shell.run("total() + total()") == 6
        shell.run("T = 3")
        assert shell.run("total()") == 1
    assert shell.run("total.misses") == 2


def test_a_method_passing_its_argument_to_a_trees_query_stays_quiet_and_cached(shell: Shell) -> None:
    """Guard: a method of the user's passing its argument to a KDTree's query evaluates no text: a computed
    argument warns nothing, and the function and the cell stay cached."""
    shell.run("%load_ext notebook_memo\n" + FRAMES + RUNS_SETUP + "import numpy as np\n"
              "from sklearn.neighbors import KDTree\n"
              "class Near:\n    def __init__(self):\n        self.tree = KDTree(np.arange(20.0).reshape(10, 2))\n"
              "    def query(self, pts):\n        return self.tree.query(pts, k=1)[1]\nNEAR = Near()")
    shell.run("@memo\ndef near(n):\n    return NEAR.query(np.arange(2.0 * n).reshape(n, 2)).tolist()")
    cell = "%%memo\nran('cell')\nj = NEAR.query(np.arange(4.0).reshape(2, 2))"
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        assert shell.run("near(2) == near(2) == [[0], [1]]")
        shell.run(cell)
        shell.run(cell)
    assert (shell.run("near.misses"), shell["RUNS"]) == (1, {"cell": 1})


# A frame's query given a text made from a global (an attribute, an item, a call's result): computed, so the
# function warns; the direct route was quiet and kept the first answer.
MADE_FROM = {
    "a call's result": "len(DF.query(make()))",
    "an attribute": "len(DF.query(CFG.text))",
    "an item": "len(DF.query(TEXTS[0]))",
}


@pytest.mark.parametrize("how", sorted(MADE_FROM))
def test_a_memo_function_passing_a_frames_query_a_text_made_from_a_global_warns(shell: Shell, how: str) -> None:
    shell.run(FRAMES + MADE + "CFG = types.SimpleNamespace(text='a > @T')\nTEXTS = ['a > @T']\n"
              f"@memo\ndef rows():\n    return {MADE_FROM[how]}")
    with pytest.warns(MemoWarning, match=r"'rows: \.query\(\.\.\.\)' cannot be hashed \(it evaluates a text computed"):
        assert shell.run("rows()") == 3


def test_a_method_of_a_global_text_passed_to_a_frames_query_keys_its_names(shell: Shell) -> None:
    """Guard: a text made by a method of a global text (TEXT.strip()) is still read for its names, quietly."""
    shell.run(FRAMES + "@memo\ndef rows():\n    return len(DF.query(TEXT.strip()))")
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        assert shell.run("rows() + rows()") == 6
        shell.run("T = 3")
        assert shell.run("rows()") == 1
    assert shell.run("rows.misses") == 2


def test_a_local_receivers_query_given_part_of_a_global_array_stays_quiet(shell: Shell) -> None:
    """Guard: a tree held by a local, queried with a slice of a global array, is presumed to evaluate no text (as with
    the whole array): nothing warns, and the function stays cached."""
    shell.run(FRAMES + "import numpy as np\nfrom sklearn.neighbors import KDTree\n"
              "PTS = np.arange(20.0).reshape(10, 2)\n"
              "@memo\ndef near():\n    tree = KDTree(PTS)\n    return tree.query(PTS[:2], k=1)[1].tolist()")
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        assert shell.run("near() == near() == [[0], [1]]")
    assert shell.run("near.misses") == 1


# A method of the user's class evaluating a text it makes itself from the object's state: the caller shows no text.
OWN = ("class Own:\n    def __init__(self):\n        self.text = 'a > @T'\n"
       "    def rows(self):\n        return len(DF.query(self.text))\nOWN = Own()\n")


def test_a_memo_function_calling_a_method_that_evaluates_a_text_it_makes_warns(shell: Shell) -> None:
    shell.run(FRAMES + OWN + "@memo\ndef rows():\n    return OWN.rows()")
    with pytest.warns(MemoWarning, match=r"'rows: OWN\.rows\(\)' cannot be hashed \(it calls OWN\.rows\(\), which "
                                         r"evaluates a text it makes at run time"):
        assert shell.run("rows()") == 3


def test_a_cell_calling_a_method_that_evaluates_a_text_it_makes_runs_each_time(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo\n" + FRAMES + RUNS_SETUP + OWN)
    cell = "%%memo\nran('cell')\nn = OWN.rows()"
    with pytest.warns(MemoWarning, match=r"it calls OWN\.rows\(\), which evaluates a text it makes at run time"):
        shell.run(cell)
    shell.run("T = 3")
    shell.run(cell)
    assert (shell["n"], shell["RUNS"]) == (1, {"cell": 2})


def test_methods_writing_their_text_out_or_querying_a_tree_stay_quiet_and_cached(shell: Shell) -> None:
    """Guard: a method whose text is written out keys its names with its class, and one querying a KDTree with
    points from the object's state evaluates no text: nothing warns, and both stay cached until T changes."""
    shell.run("%load_ext notebook_memo\n" + FRAMES + RUNS_SETUP + "import numpy as np\n"
              "from sklearn.neighbors import KDTree\n"
              "class Near:\n    def __init__(self):\n        self.tree = KDTree(np.arange(20.0).reshape(10, 2))\n"
              "        self.pts = np.arange(4.0).reshape(2, 2)\n"
              "    def near(self):\n        return int(self.tree.query(self.pts, k=1)[1].sum())\n"
              "    def big(self):\n        return len(DF.query('a > @T'))\nNEAR = Near()")
    shell.run("@memo\ndef both():\n    return NEAR.near() + NEAR.big()")
    cell = "%%memo\nran('cell')\nn = NEAR.near() + NEAR.big()"
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        assert shell.run("both() + both()") == 8
        shell.run(cell)
        shell.run(cell)
        assert shell["RUNS"] == {"cell": 1}
        shell.run("T = 3")
        assert shell.run("both()") == 2
        shell.run(cell)
    assert (shell.run("both.misses"), shell["n"], shell["RUNS"]) == (2, 2, {"cell": 2})


def _module_box(shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    (tmp_path / f"{name}.py").write_text(
        "T = 1\nclass Box:\n    def __init__(self, df):\n        self.df = df\n"
        "    def q(self, text):\n        return self.df.query(text)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    shell.run(FRAMES + RUNS_SETUP + f"import {name} as boxes\nMBOX = boxes.Box(DF)\ndel T\n")


def test_a_method_of_a_module_passing_its_text_on_keys_the_modules_names(shell: Shell, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """pandas looks up a text's @names in the frame that calls query: for a method defined in a module of the
    user's, that module's globals, not the notebook's. Changing the module's T recomputes."""
    _module_box(shell, tmp_path, monkeypatch, "boxes_round9")
    shell.run("@memo\ndef rows():\n    return len(MBOX.q('a > @T'))")
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        assert shell.run("rows() + rows()") == 6
        shell.run("boxes.T = 3")
        assert shell.run("rows()") == 1
    assert shell.run("rows.misses") == 2


def test_a_cell_passing_a_text_to_a_method_of_a_module_runs_each_time(shell: Shell, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The names are the module's, which a cell's inputs (the notebook's names) do not hold: it runs unstored."""
    shell.run("%load_ext notebook_memo")
    _module_box(shell, tmp_path, monkeypatch, "boxes_round9_cell")
    cell = "%%memo\nran('cell')\nn = len(MBOX.q('a > @T'))"
    with pytest.warns(MemoWarning, match=r"MBOX\.q\(\.\.\.\) a text whose names are read from the globals of "
                                         r"boxes_round9_cell"):
        shell.run(cell)
    shell.run("boxes.T = 3")
    shell.run(cell)
    assert (shell["n"], shell["RUNS"]) == (1, {"cell": 2})
