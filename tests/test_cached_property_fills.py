"""A ``functools.cached_property`` value a run fills and then changes in place (a list it returns, appended to;
a dict given an item; an array written into) is a change in place of its object, not a fill: the result is
not stored, and says so, for an argument, a watched global, module data a %%memo cell changes and a
memo.batch argument, in one process and across restarts with another hash seed. A value filled and left as
filled is still no change: stored and hit."""

from __future__ import annotations

import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from notebook_memo import MemoWarning
from tests.conftest import Shell, run_kernel

MODEL = """
import functools
from notebook_memo import memo
class Model:
    def __init__(self, name):
        self.name = name
    @functools.cached_property
    def history(self):  # filled empty on first read; the body appends to it
        return []
"""


def _memo_warnings(shell: Shell, source: str) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shell.run(source)
    return [str(w.message) for w in caught if issubclass(w.category, MemoWarning)]


# -- an argument ----------------------------------------------------------------------------------------------

def test_an_argument_s_cached_list_filled_then_appended_to_is_not_stored(shell: Shell) -> None:
    shell.run(MODEL + """
@memo
def step(m, lr):
    m.history.append(lr)
    return list(m.history)
m = Model("m")
""")
    said = _memo_warnings(shell, "first = step(m, 0.1)")
    assert any("changed its argument 'm' in place" in w for w in said), said
    shell.run("second = step(m, 0.1)")
    assert (shell["first"], shell["second"], shell["m"].history) == ([0.1], [0.1, 0.1], [0.1, 0.1])  # as plain
    assert shell["step"].hits == 0 and shell["step"].entries() == []


def test_an_argument_s_cached_list_filled_then_appended_to_runs_again_after_a_restart(cache_dir: Path) -> None:
    cells = [MODEL, """
@memo
def step(m, lr):
    m.history.append(lr)
    return len(m.history)
m = Model("m")
OUT["result"] = step(m, 0.1)
OUT["history"] = m.history
OUT["hits"] = step.hits
"""]
    first, second = run_kernel(cells, cache_dir, seed=1), run_kernel(cells, cache_dir, seed=2)
    assert (first["result"], first["history"]) == (second["result"], second["history"]) == (1, [0.1])
    assert second["hits"] == 0  # a hit would have left m.history empty
    assert any("changed its argument 'm' in place" in w for w in second["_warnings"]), second["_warnings"]


def test_an_argument_s_cached_dict_filled_then_given_an_item_is_not_stored(shell: Shell) -> None:
    shell.run("""
import functools
from notebook_memo import memo
class Run:
    def __init__(self, name):
        self.name = name
    @functools.cached_property
    def metrics(self):
        return {}
@memo
def evaluate(r):
    r.metrics["loss"] = 0.5
    return len(r.metrics)
r = Run("a")
""")
    said = _memo_warnings(shell, "evaluate(r)")
    assert any("changed its argument 'r' in place" in w for w in said), said
    assert shell["evaluate"].entries() == []


def test_an_argument_s_cached_array_filled_then_written_into_is_not_stored(shell: Shell) -> None:
    shell.run("""
import functools
import numpy as np
from notebook_memo import memo
class Grid:
    def __init__(self, n):
        self.n = n
    @functools.cached_property
    def cells(self):
        return np.zeros(self.n)
@memo
def mark(g, i):
    g.cells[i] = 1.0
    return float(g.cells.sum())
g = Grid(3)
""")
    said = _memo_warnings(shell, "first = mark(g, 0)")
    assert any("changed its argument 'g' in place" in w for w in said), said
    shell.run("second = mark(g, 1)")
    assert (shell["first"], shell["second"], shell["g"].cells.tolist()) == (1.0, 2.0, [1.0, 1.0, 0.0])
    assert shell["mark"].entries() == []


def test_an_argument_s_cached_list_filled_and_left_as_filled_is_stored_and_hit(shell: Shell) -> None:
    shell.run(MODEL + """
@memo
def count(m):
    return len(m.history)  # fills it, changes nothing
m = Model("m")
""")
    assert _memo_warnings(shell, "first = count(m)") == []
    shell.run("second = count(m)")  # as the run left m
    shell.run("del m.__dict__['history']")  # as in a restarted kernel
    shell.run("third = count(m)")
    assert (shell["first"], shell["second"], shell["third"]) == (0, 0, 0)
    assert (shell["count"].hits, shell["count"].misses) == (2, 1)


def test_an_argument_s_cached_list_refilled_with_another_value_is_not_stored(shell: Shell) -> None:
    shell.run(MODEL + """
@memo
def reset(m):
    m.history  # filled empty...
    m.history = ["start"]  # ... then set to something else
    return 1
m = Model("m")
""")
    said = _memo_warnings(shell, "reset(m)")
    assert any("changed its argument 'm' in place" in w for w in said), said
    assert shell["reset"].entries() == []


def test_a_batch_whose_argument_s_cached_list_is_filled_then_appended_to_is_not_stored(shell: Shell) -> None:
    shell.run(MODEL + """
@memo.batch("xs")
def scaled(m, xs):
    m.history.append(len(xs))
    return [x * 2 for x in xs]
m = Model("m")
""")
    said = _memo_warnings(shell, "first = scaled(m, [1, 2])")
    assert any("changed its argument 'm' in place" in w for w in said), said
    shell.run("second = scaled(m, [1, 2])")
    assert (shell["first"], shell["second"], shell["m"].history) == ([2, 4], [2, 4], [2, 2])


def test_a_batch_that_only_fills_its_argument_s_cached_list_is_stored_and_hit(shell: Shell) -> None:
    shell.run(MODEL + """
@memo.batch("xs")
def scaled(m, xs):
    return [x * 2 + len(m.history) for x in xs]
m = Model("m")
""")
    assert _memo_warnings(shell, "first = scaled(m, [1, 2])") == []
    shell.run("del m.__dict__['history']\nsecond = scaled(m, [1, 2])")  # as in a restarted kernel
    assert shell["first"] == shell["second"] == [2, 4]
    assert shell["scaled"].hits == 2


def test_a_batch_whose_later_chunk_appends_to_the_list_an_earlier_chunk_filled_stores_only_the_earlier(
        shell: Shell) -> None:
    shell.run(MODEL + """
@memo.batch("xs", batch_size=1, progress=False)
def scaled(m, xs):
    if xs[0] > 1:
        m.history.append(xs[0])  # the second chunk changes what the first filled
    return [x * 2 + len(m.history) for x in xs]
m = Model("m")
""")
    said = _memo_warnings(shell, "first = scaled(m, [1, 2])")
    assert any("changed its argument 'm' in place" in w for w in said), said
    assert (shell["first"], shell["m"].history) == ([2, 5], [2])
    shell.run("del m.__dict__['history']\nsecond = scaled(m, [1, 2])")  # as in a restarted kernel
    assert (shell["second"], shell["m"].history, shell["scaled"].hits) == ([2, 5], [2], 1)  # item 1 only


def test_a_batch_whose_chunks_only_fill_its_argument_s_cached_list_stores_every_item(shell: Shell) -> None:
    shell.run(MODEL + """
@memo.batch("xs", batch_size=1, progress=False)
def scaled(m, xs):
    return [x * 2 + len(m.history) for x in xs]
m = Model("m")
""")
    assert _memo_warnings(shell, "first = scaled(m, [1, 2, 3])") == []
    shell.run("del m.__dict__['history']\nsecond = scaled(m, [1, 2, 3])")
    assert shell["first"] == shell["second"] == [2, 4, 6]
    assert shell["scaled"].hits == 3


# -- a watched global -----------------------------------------------------------------------------------------

REGISTRY = """
import functools
from notebook_memo import memo
class Registry(dict):  # a dict: watched data (a plain object is not: README)
    @functools.cached_property
    def entries(self):
        return []
REG = Registry()
"""


def test_a_global_s_cached_list_filled_then_appended_to_runs_again_after_a_restart(cache_dir: Path) -> None:
    cells = [REGISTRY, """
@memo
def register(x):
    REG.entries.append(x)
    return x * 2
OUT["result"] = register(3)
OUT["entries"] = REG.entries
OUT["hits"] = register.hits
"""]
    first, second = run_kernel(cells, cache_dir, seed=1), run_kernel(cells, cache_dir, seed=2)
    assert (first["result"], first["entries"]) == (second["result"], second["entries"]) == (6, [3])
    assert second["hits"] == 0  # a hit would have left REG.entries empty
    assert any("changed the global 'REG' in place" in w for w in second["_warnings"]), second["_warnings"]


def test_a_global_s_cached_list_filled_and_left_as_filled_is_stored_and_hit(shell: Shell) -> None:
    shell.run(REGISTRY + """
@memo
def size(x):
    return x + len(REG.entries)
""")
    assert _memo_warnings(shell, "first = size(1)") == []
    shell.run("del REG.__dict__['entries']\nsecond = size(1)")  # as in a restarted kernel
    assert (shell["first"], shell["second"], shell["size"].hits) == (1, 1, 1)


# -- module data a %%memo cell changes through a helper --------------------------------------------------------

@pytest.fixture
def entries_module(tmp_path: Path) -> Iterator[None]:
    folder = tmp_path / "modules"
    folder.mkdir()
    (folder / "cp_entries.py").write_text(textwrap.dedent('''
        import functools
        class Registry(dict):  # watched data
            @functools.cached_property
            def entries(self):
                return []
        REGISTRY = Registry()
        def add(name):
            REGISTRY.entries.append(name)
            return len(REGISTRY.entries)
    '''))
    sys.path.insert(0, str(folder))
    yield
    sys.path.remove(str(folder))
    sys.modules.pop("cp_entries", None)


def test_a_cell_that_fills_then_appends_to_module_data_s_cached_list_is_not_stored_and_says_which(
        shell: Shell, entries_module: None) -> None:
    shell.run("%load_ext notebook_memo\nimport cp_entries")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shell.run("%%memo\nx = cp_entries.add('a')")
    said = [str(w.message) for w in caught]
    assert any("changed 'cp_entries.REGISTRY' in place" in w for w in said), said  # the data, not its module
    shell.run("del cp_entries.REGISTRY.__dict__['entries']")  # as in a restarted kernel
    shell.run("%%memo\nx = cp_entries.add('a')")
    assert (shell["cp_entries"].REGISTRY.entries, shell["x"]) == (["a"], 1)  # the cell ran again


def test_an_async_body_that_fills_then_appends_to_its_argument_s_cached_list_is_not_stored(shell: Shell) -> None:
    shell.run(MODEL + """
import asyncio
@memo
async def step(m, lr):
    m.history.append(lr)
    return list(m.history)
m = Model("m")
""")
    said = _memo_warnings(shell, "first = asyncio.run(step(m, 0.1))")
    assert any("changed its argument 'm' in place" in w for w in said), said
    shell.run("second = asyncio.run(step(m, 0.1))")
    assert (shell["first"], shell["second"], shell["step"].entries()) == ([0.1], [0.1, 0.1], [])
