"""Texts a frame's ``query``/``eval`` evaluates against the caller's names, reached through a name that is not the
frame's own global: a local bound to a global frame (``df = DF``, ``df = STORE.frames.main``), an attribute chain
(``STORE.box.q``, ``STORE.frames.main.query``), and a method called through its class with the instance first
(``Box.q(BOX, text)``). A text made at run time warns in an ``@memo`` function and leaves a ``%%memo`` cell unstored;
a written-out text is keyed quietly. Guards: a KDTree reached by the same routes, queried with points, stays cached
and quiet, and so does one a local builds itself.
"""

from __future__ import annotations

import warnings

import pytest

from notebook_memo import MemoWarning
from tests.conftest import RUNS_SETUP, Shell
from tests.test_text_routes_round9 import FRAMES, MADE

# A frame, or a method of the user's passing its text on to one, reached by a route that is not the frame's own
# global, given a text made at run time: the function kept its first answer after T changed, and said nothing.
UNSEEN = {
    "a local bound to a global frame": "    df = DF\n    return len(df.query(make()))",
    "a local bound to a frame in a chain": "    df = STORE.frames.main\n    return len(df.query(make()))",
    "a local bound to an object of the user's": "    box = BOX\n    return len(box.q(make()))",
    "a method through an attribute chain": "    return len(STORE.box.q(make()))",
    "a frame's query through an attribute chain": "    return len(STORE.frames.main.query(make()))",
    "a frame's eval through a local alias": "    df = DF\n    return int(df.eval(make()).sum())",
    "a local alias read by a nested function": "    df = DF\n    return (lambda: len(df.query(make())))()",
}


@pytest.mark.parametrize("how", sorted(UNSEEN))
def test_a_memo_function_passing_a_made_text_through_an_alias_or_chain_warns(shell: Shell, how: str) -> None:
    shell.run(FRAMES + MADE + f"@memo\ndef rows():\n{UNSEEN[how]}")
    with pytest.warns(MemoWarning, match=r"'rows: \.query\(\.\.\.\)' cannot be hashed \(it evaluates a text computed"):
        assert shell.run("rows()") == 3


# In a cell, a local is a notebook variable and was already followed; an attribute chain was not.
CHAINS = {
    "a method through an attribute chain": ("STORE.box.q", "len(STORE.box.q(make()))"),
    "a frame's query through an attribute chain": ("STORE.frames.main.query", "len(STORE.frames.main.query(make()))"),
}


@pytest.mark.parametrize("how", sorted(CHAINS))
def test_a_cell_passing_a_made_text_through_an_attribute_chain_runs_each_time(shell: Shell, how: str) -> None:
    spelled, call = CHAINS[how]
    shell.run("%load_ext notebook_memo\n" + FRAMES + RUNS_SETUP + MADE)
    cell = f"%%memo\nran('cell')\nn = {call}"
    with pytest.warns(MemoWarning, match=rf"it passes {spelled.replace('.', '[.]')}\(\.\.\.\) a text computed at run"):
        shell.run(cell)
    shell.run("T = 3")
    shell.run(cell)
    assert (shell["n"], shell["RUNS"]) == (1, {"cell": 2})


def test_a_written_out_text_through_an_alias_or_chain_is_keyed_quietly(shell: Shell) -> None:
    """Guard: the same routes with the text written out read T, keyed without a warning."""
    shell.run(FRAMES + "@memo\ndef rows():\n    df = DF\n    box = STORE.box\n"
              "    return len(df.query('a > @T')) + len(box.q('a > @T')) + len(STORE.frames.main.query('a > @T'))")
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        assert shell.run("rows() + rows()") == 18
        shell.run("T = 3")
        assert shell.run("rows()") == 3
    assert shell.run("rows.misses") == 2


TREES = """
import numpy as np
from sklearn.neighbors import KDTree
PTS = np.arange(20.0).reshape(10, 2)
TREE = KDTree(PTS)
NEAR = types.SimpleNamespace(tree=TREE)
def pts():
    return PTS[:2]
"""


def test_a_tree_chosen_by_a_conditional_between_globals_stays_quiet(shell: Shell) -> None:
    """Guard: a local bound by a conditional (``TREE if FLAG else DF``) is no alias of the global loaded last: the
    tree it holds, queried with points, warns nothing, and the function stays cached."""
    shell.run(FRAMES + TREES + "FLAG = True\n@memo\ndef near():\n    tree = TREE if FLAG else DF\n"
              "    return tree.query(pts(), k=1)[1].tolist()")
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        assert shell.run("near() == near() == [[0], [1]]")
    assert shell.run("near.misses") == 1


def test_a_tree_reached_through_an_alias_or_chain_stays_quiet_and_cached(shell: Shell) -> None:
    """Guard: a KDTree bound to a local from a global, or reached through an attribute chain, queried with points
    made at run time, evaluates no text: nothing warns (a local alias given a local's points warned before), and the
    function and the cell stay cached; nor does a tree a local builds, given part of a global array."""
    shell.run("%load_ext notebook_memo\n" + FRAMES + RUNS_SETUP + TREES)
    shell.run("@memo\ndef near():\n    tree = TREE\n    points = pts()\n    built = KDTree(PTS)\n"
              "    return (tree.query(pts(), k=1)[1].tolist() + tree.query(points, k=1)[1].tolist()\n"
              "            + NEAR.tree.query(pts(), k=1)[1].tolist() + built.query(PTS[:2], k=1)[1].tolist())")
    cell = "%%memo\nran('cell')\nj = NEAR.tree.query(pts(), k=1)[1].tolist()"
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        assert shell.run("near() == near() == [[0], [1]] * 4")
        shell.run(cell)
        shell.run("T = 3")
        shell.run(cell)
    assert (shell.run("near.misses"), shell["j"], shell["RUNS"]) == (1, [[0], [1]], {"cell": 1})


# A method of the user's passing its text on, called through its class with a global instance first: keyed like
# BOX.q(text). The method's own warning (a text its caller passes it) is its caller's to give.
THROUGH_CLASS = {
    "the text written out": "len(Box.q(BOX, 'a > @T'))",
    "the text by keyword": "len(Box.q(BOX, text='a > @T'))",
    "a subclass's instance, through the subclass": "len(Sub.q(SUB, 'a > @T'))",
}
SUB = "class Sub(Box):\n    pass\nSUB = Sub(DF)\n"


@pytest.mark.parametrize("how", sorted(THROUGH_CLASS))
def test_a_memo_function_calling_a_method_through_its_class_keys_a_written_text_quietly(shell: Shell,
                                                                                        how: str) -> None:
    shell.run(FRAMES + SUB + f"@memo\ndef rows():\n    return {THROUGH_CLASS[how]}")
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        assert shell.run("rows() + rows()") == 6
        shell.run("T = 3")
        assert shell.run("rows()") == 1
    assert shell.run("rows.misses") == 2


def test_a_cell_calling_a_method_through_its_class_keys_a_written_text_quietly(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo\n" + FRAMES + RUNS_SETUP)
    cell = "%%memo\nran('cell')\nn = len(Box.q(BOX, 'a > @T'))"
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        shell.run(cell)
        shell.run(cell)
        assert shell["RUNS"] == {"cell": 1}
        shell.run("T = 3")
        shell.run(cell)
    assert (shell["n"], shell["RUNS"]) == (1, {"cell": 2})


def test_a_memo_function_calling_a_method_through_its_class_with_a_made_text_warns(shell: Shell) -> None:
    shell.run(FRAMES + MADE + "@memo\ndef rows():\n    return len(Box.q(BOX, make()))")
    with pytest.warns(MemoWarning, match=r"'rows: BOX, \.\.\.' cannot be hashed \(it passes BOX to Box\.q\(\), taken "
                                         r"from its class"):
        assert shell.run("rows()") == 3


def test_a_cell_calling_a_method_through_its_class_with_a_made_text_runs_each_time(shell: Shell) -> None:
    """The cell took the instance for the text, and kept its first answer after T changed (a false hit)."""
    shell.run("%load_ext notebook_memo\n" + FRAMES + RUNS_SETUP + MADE)
    cell = "%%memo\nran('cell')\nn = len(Box.q(BOX, make()))"
    with pytest.warns(MemoWarning, match=r"it passes Box\.q\(\.\.\.\) a text computed at run time"):
        shell.run(cell)
    shell.run("T = 3")
    shell.run(cell)
    assert (shell["n"], shell["RUNS"]) == (1, {"cell": 2})


# Guard: the class reached by a route no caller's analysis follows (an instance made in the code), beside the
# class route, in the function itself or in a helper it calls, before or after: the method's own warning stays.
OTHER_ROUTE = {
    "in the function": "len(Box.q(BOX, 'a > @T')) + len(Box(DF).q(make()))",
    "in a helper called after": "len(Box.q(BOX, 'a > @T')) + helper()",
    "in a helper called before": "helper() + len(Box.q(BOX, 'a > @T'))",
}


@pytest.mark.parametrize("how", sorted(OTHER_ROUTE))
def test_a_class_also_reached_by_another_route_still_warns_for_its_method(shell: Shell, how: str) -> None:
    shell.run(FRAMES + MADE + "def helper():\n    return len(Box(DF).q(make()))\n"
              f"@memo\ndef rows():\n    return {OTHER_ROUTE[how]}")
    with pytest.warns(MemoWarning, match=r"'Box\.q: \.query\(\.\.\.\)' cannot be hashed \(it evaluates a text"):
        assert shell.run("rows()") == 6


# pandas.eval reached by a name other than pd or pandas: it reads every name of its text, not only its @names.
EVERY_NAME = {
    "through an attribute chain": "    return int(STORE.pd.eval('4 - T'))",
    "through a local alias of the module": "    p = pd\n    return int(p.eval('4 - T'))",
}


@pytest.mark.parametrize("how", sorted(EVERY_NAME))
def test_pandas_eval_under_another_spelling_keys_every_name_of_its_text(shell: Shell, how: str) -> None:
    shell.run(FRAMES + f"STORE.pd = pd\n@memo\ndef total():\n{EVERY_NAME[how]}")
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        assert shell.run("total() + total()") == 6
        shell.run("T = 3")
        assert shell.run("total()") == 1
    assert shell.run("total.misses") == 2


def test_a_frames_eval_through_an_alias_keys_only_its_at_names(shell: Shell) -> None:
    """Guard: a frame's eval, reached through a local alias, reads its @names only: a notebook variable named like a
    column (a) is not keyed, and binding it keeps the hit."""
    shell.run(FRAMES + "@memo\ndef total():\n    df = DF\n    return int(df.eval('a + @T').sum())")
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        assert shell.run("total() + total()") == 28
        shell.run("a = 5")
        assert shell.run("total()") == 14
        shell.run("T = 3")
        assert shell.run("total()") == 22
    assert shell.run("total.misses") == 2
