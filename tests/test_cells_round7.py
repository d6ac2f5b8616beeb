"""The notebook surfaces, round 7: ``eval`` and ``pandas.eval`` reached under another spelling
(``bi.eval``, ``__builtins__.eval``, ``ev = eval``, ``import pandas as pds``, ``from pandas import eval as
peval``) are known for what they are, in a ``%%memo`` cell and in a ``@memo`` function, so a changed
variable their text reads is never served a stale answer; a hit loads the submodules its cell's ``import a.b.c``
loaded, or runs the cell where one cannot be imported; and ``_``/``Out[n]`` after a hit is the object the restored
name holds (the live input restored in place, the function pointed at the notebook), as after a run."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from tests.conftest import Shell, run_kernel

RUNS = """
class _Runs(dict):
    def __memo_key__(self): return 'runs'
RUNS = _Runs()
def ran(name):
    RUNS[name] = RUNS.get(name, 0) + 1
"""

# -- eval under other spellings --------------------------------------------------------------------


@pytest.mark.parametrize("prelude, body", [
    ("", "y = __builtins__.eval('x * 2')"),
    ("", "import builtins as bi\ny = bi.eval('x * 2')"),
    ("import builtins as bi", "y = bi.eval('x * 2')"),
    ("ev = eval", "y = ev('x * 2')"),
    ("from builtins import eval as ev2", "y = ev2('x * 2')"),
    ("import builtins as bi", "bi.exec('y = x * 2')"),
    ("g = globals", "y = g()['x'] * 2"),
    ("import pandas as pds", "y = int(pds.eval('x * 2'))"),
    ("", "import pandas as pds\ny = int(pds.eval('x * 2'))"),
    ("from pandas import eval as peval", "y = int(peval('x * 2'))"),
    ("", "from pandas import eval as peval\ny = int(peval('x * 2'))"),
])
def test_a_cell_reading_through_eval_under_another_name_is_not_served_stale(shell: Shell, prelude: str,
                                                                           body: str) -> None:
    shell.run(f"%load_ext notebook_memo\n{prelude}\nx = 1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shell.run("%%memo\n" + body)
        assert shell["y"] == 2
        shell.run("x = 5")
        shell.run("%%memo\n" + body)
    assert shell["y"] == 10


def test_pandas_eval_under_another_name_keys_the_names_of_its_text(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo\nimport pandas as pds\nx = 1\n" + RUNS)
    cell = "%%memo\nran('a')\ny = int(pds.eval('x * 2'))"
    shell.run(cell)
    shell.run(cell)
    assert shell["RUNS"] == {"a": 1} and shell["y"] == 2  # known for what it reads, so stored: a hit
    shell.run("x = 5")
    shell.run(cell)
    assert shell["RUNS"] == {"a": 2} and shell["y"] == 10


@pytest.mark.parametrize("prelude, call", [
    ("import builtins as bi", "bi.eval('x * 2')"),
    ("ev = eval", "ev('x * 2')"),
    ("g = globals", "g()['x'] * 2"),
    ("import pandas as pds", "int(pds.eval('x * 2'))"),
    ("from pandas import eval as peval", "int(peval('x * 2'))"),
])
def test_a_memo_function_reading_through_eval_under_another_name_warns(shell: Shell, prelude: str,
                                                                     call: str) -> None:
    shell.run(f"from notebook_memo import memo\n{prelude}\nx = 1\n@memo\ndef f():\n    return {call}")
    with pytest.warns(UserWarning, match=r"(eval|globals).*not known"):
        shell.run("y = f()")
    assert shell["y"] == 2


# -- submodules a cell imports -----------------------------------------------------------------------


def test_a_hit_in_a_restarted_kernel_loads_the_submodules_the_cell_imports(cache_dir: Path) -> None:
    cells = ["%load_ext notebook_memo", RUNS + "OUT['RUNS'] = RUNS",
             "%%memo\nran('a')\nimport xml.dom.minidom\nimport logging.handlers, urllib.request as ur\n"
             "n = xml.dom.minidom.parseString('<a>1</a>').documentElement.tagName",
             "OUT['tag'] = xml.dom.minidom.parseString('<b/>').documentElement.tagName\n"
             "OUT['handler'] = logging.handlers.RotatingFileHandler.__name__\nOUT['ur'] = ur.__name__"]
    first, second = run_kernel(cells, cache_dir, seed=1), run_kernel(cells, cache_dir, seed=2)
    assert first["RUNS"] == {"a": 1} and second["RUNS"] == {}  # the restarted kernel's cell is a hit
    assert second["tag"] == "b" and second["handler"] == "RotatingFileHandler"
    assert second["ur"] == "urllib.request"


BROKEN_FINDER = """
import importlib.abc, importlib.util, sys
class _Broken(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name == 'xml.dom.minidom' else None
    def exec_module(self, module):
        raise ImportError('xml.dom.minidom is broken here')
saved = sys.modules.pop('xml.dom.minidom')
del xml.dom.minidom
sys.meta_path.insert(0, _Broken())
"""


def test_a_hit_whose_submodule_no_longer_imports_runs_the_cell(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo\n" + RUNS)
    cell = "%%memo\nran('a')\nimport xml.dom.minidom\nn = xml.dom.minidom.parseString('<a/>').documentElement.tagName"
    shell.run(cell)
    # Found but failing to import now, as a submodule broken or missing in another environment.
    shell.run("del n\n" + BROKEN_FINDER)
    try:
        result = shell.run_raw(cell)
    finally:
        shell.run("sys.meta_path.pop(0)\nsys.modules['xml.dom.minidom'] = saved\nimport xml.dom\n"
                  "xml.dom.minidom = saved")
    assert shell["RUNS"] == {"a": 2}  # not restored without the submodule: the cell ran, and failed as it does
    assert isinstance(result.error_in_exec, ImportError)


# -- the last expression's value on a hit ------------------------------------------------------------


def test_out_is_the_object_the_restored_name_holds_after_a_restart(cache_dir: Path) -> None:
    cells = ["%load_ext notebook_memo", RUNS + "OUT['RUNS'] = RUNS", "K = 1\nitems = [1, 2]",
             "%%memo a\nran('a')\nitems.append(3)\nitems",
             "OUT['items'] = _ is items",
             "%%memo b\nran('b')\ndef scale(x):\n    return x * K\nscale",
             "K = 10\nOUT['scale'] = [scale(1), _(1), _ is scale]",
             "%%memo c\nran('c')\nitems.append(4)\nrows = {'r': [1]}\n(items, rows, scale)",
             "OUT['both'] = [_[0] is items, _[1] is rows, _[2] is scale, _[2](1)]"]
    first, second = run_kernel(cells, cache_dir, seed=1), run_kernel(cells, cache_dir, seed=2)
    assert first["RUNS"] == {"a": 1, "b": 1, "c": 1} and second["RUNS"] == {}  # hits after the restart
    assert first["items"] is True and second["items"] is True
    assert first["scale"] == second["scale"] == [10, 10, True]
    assert first["both"] == second["both"] == [True, True, True, 10]


def test_out_n_of_a_hit_is_the_live_object_restored_in_place(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo\n" + RUNS + "K = 1\nitems = [1, 2]")
    cell = "%%memo\nran('a')\nitems.append(3)\ndef scale(x):\n    return x * K\n(items, scale)"
    shell.run(cell)
    shell.run("items = [1, 2]\ndel scale")
    shell.run(cell)
    count = shell.ip.execution_count - 1
    shell.run(f"K = 10\nsame = [Out[{count}][0] is items, _[1] is scale, Out[{count}][1](1)]")
    assert shell["RUNS"] == {"a": 1} and shell["same"] == [True, True, 10]
