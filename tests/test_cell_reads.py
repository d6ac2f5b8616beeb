"""What a ``%%memo`` cell (and a memoized function) reads: names its code shows only as text
(``df.query("x > @limit")``), names bound on some paths only, class bodies, star imports,
annotations, reads of the whole notebook namespace, history entries; and the cell options that
name inputs and outputs. Each in a real shell; restarts in real processes."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
from IPython.core.error import UsageError

from notebook_memo import MemoWarning
from tests.conftest import Shell, run_kernel


@pytest.fixture
def ip(shell: Shell) -> Shell:
    shell.run("%load_ext notebook_memo")
    shell.run("class _Runs(dict):\n    def __memo_key__(self): return 'runs'\nRUNS = _Runs()")
    return shell


def runs(ip: Shell) -> int:
    return int(ip["RUNS"].get("n", 0))


COUNT = "RUNS['n'] = RUNS.get('n', 0) + 1\n"


# -- texts evaluated in the caller's scope: df.query("x > @limit"), pd.eval("a + b") ------------


@pytest.mark.parametrize("reader", [
    "n = len(df.query('value > @threshold'))",
    "n = int(df.eval('value > @threshold').sum())",
    "n = int(pd.eval('df.value > threshold').sum())",
    "n = len(df.query(expr=f'value > @threshold and {column} >= 0'))",
    "def count(frame):\n    return len(frame.query('value > @threshold'))\nn = count(df)",
], ids=["query", "DataFrame.eval", "pd.eval", "f-string", "in-a-function"])
def test_a_name_a_query_text_reads_is_an_input_of_the_cell(ip: Shell, reader: str) -> None:
    ip.run("import pandas as pd\ndf = pd.DataFrame({'value': range(10)})\nthreshold = 5\ncolumn = 'value'")
    cell = f"%%memo query\n{COUNT}{reader}"
    ip.run(cell)
    ip.run(cell)
    assert (ip["n"], runs(ip)) == (4, 1)
    ip.run("threshold = 2")
    ip.run(cell)
    assert (ip["n"], runs(ip)) == (7, 2)


def test_a_quoted_at_sign_or_a_column_is_not_read(ip: Shell) -> None:
    ip.run("import pandas as pd\ndf = pd.DataFrame({'mail': ['a@b', 'c'], 'value': [1, 2]})\nb = 1\nvalue = 0")
    cell = f"%%memo quoted\n{COUNT}n = len(df.query('mail == \"a@b\" and value > 0'))"
    ip.run(cell)
    ip.run("b = 2\nvalue = 5")  # neither is read: the @ is quoted, value is a column
    ip.run(cell)
    assert (ip["n"], runs(ip)) == (1, 1)


def test_a_query_text_computed_at_run_time_makes_the_cell_run_each_time(ip: Shell) -> None:
    ip.run("import pandas as pd\ndf = pd.DataFrame({'value': range(10)})\nthreshold = 5\n"
           "condition = 'value > @threshold'")
    cell = f"%%memo computed\n{COUNT}n = len(df.query(condition))"
    with pytest.warns(MemoWarning, match=r"\.query\(\.\.\.\) a text computed at run time"):
        ip.run(cell)
    ip.run("threshold = 2")
    ip.run(cell)
    assert (ip["n"], runs(ip)) == (7, 2)


def test_a_query_of_something_that_is_not_a_text_is_cached(ip: Shell) -> None:
    ip.run("class Session:\n    def query(self, model):\n        return [model.__name__]\n"
           "    def __memo_key__(self): return 'session'\nclass User: pass\nsession = Session()")
    cell = f"%%memo orm\n{COUNT}rows = session.query(User)"
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        ip.run(cell)
        ip.run(cell)
    assert (ip["rows"], runs(ip)) == (["User"], 1)


@pytest.mark.parametrize("body", [
    "return len(frame.query('value > @threshold'))",
    "return len(frame.query(f'value > @threshold and {column} >= 0'))",
    "return int(pd.eval('frame.value > threshold').sum())",
    "return len(frame.query(CONDITION))",
], ids=["query", "f-string", "pd.eval", "a-global-text"])
def test_a_name_a_query_text_reads_is_part_of_a_functions_key(ip: Shell, body: str) -> None:
    ip.run("import pandas as pd\nfrom notebook_memo import memo\ndf = pd.DataFrame({'value': range(10)})\n"
           "threshold = 5\ncolumn = 'value'\nCONDITION = 'value > @threshold'")
    ip.run(f"@memo\ndef count_above(frame):\n    {body}")
    assert ip.run("count_above(df)") == 4
    ip.run("threshold = 2")
    assert ip.run("count_above(df)") == 7


def test_a_local_a_query_text_names_is_not_a_global(ip: Shell) -> None:
    ip.run("import pandas as pd\nfrom notebook_memo import memo\ndf = pd.DataFrame({'value': range(10)})\nlimit = 5")
    ip.run(f"@memo\ndef count_above(frame, limit):\n    {COUNT}    return len(frame.query('value > @limit'))")
    assert ip.run("count_above(df, 5)") == 4
    ip.run("limit = 1")  # the global of that name: not what the text reads
    assert ip.run("count_above(df, 5)") == 4
    assert runs(ip) == 1


def test_a_function_evaluating_a_computed_text_warns(ip: Shell) -> None:
    ip.run("import pandas as pd\nfrom notebook_memo import memo\ndf = pd.DataFrame({'value': range(10)})")
    ip.run("@memo\ndef select(frame, text):\n    return len(frame.query(text))")
    with pytest.warns(MemoWarning, match=r"select: .*\.query\(\.\.\.\).* computed at run time"):
        ip.run("select(df, 'value > 3')")


# -- names bound on some paths only --------------------------------------------------------------


@pytest.mark.parametrize("binding", [
    "ok = flag and (x := 1)",
    "ok = not flag or (x := 1)",
    "label = (x := 1) if flag else 'none'",
    "label = 'none' if not flag else (x := 1)",
    "ok = flag > 0 < (x := 1)",
    "import contextlib\nwith contextlib.suppress(KeyError):\n    x = table['one' if flag else 'missing']",
    "import contextlib\nwith contextlib.suppress(KeyError), "
    "contextlib.nullcontext(table['one' if flag else 'missing']) as x:\n    pass",
], ids=["and", "or", "if-expression", "else-expression", "comparison-chain", "with-body", "second-with-item"])
def test_a_name_an_expression_or_a_with_may_leave_unbound_is_read_from_the_notebook(ip: Shell, binding: str) -> None:
    ip.run("flag = False\nx = 5\ntable = {'one': 1}")
    cell = f"%%memo paths\n{COUNT}{binding}\ny = x + 1"
    ip.run(cell)
    assert ip["y"] == 6
    ip.run("x = 100")
    ip.run(cell)
    assert (ip["y"], ip["x"], runs(ip)) == (101, 100, 2)
    ip.run(cell)
    assert runs(ip) == 2
    ip.run("flag = True")
    ip.run(cell)
    assert (ip["y"], ip["x"]) == (2, 1)


def test_a_with_body_that_binds_hits_again_once_the_inputs_are_back(ip: Shell) -> None:
    ip.run("base = 3")
    cell = (f"%%memo read\n{COUNT}import contextlib\n"
            "with contextlib.nullcontext(base) as b:\n    doubled = b * 2\nsize = doubled + 1")
    ip.run(cell)
    ip.run(cell)
    ip.run("base = 4")
    ip.run(cell)
    ip.run("base = 3")
    ip.run(cell)  # the names its last run bound, the entry of base 3 left as it was: a hit
    ip.run("del doubled, b, size, contextlib")  # as after a restart
    ip.run(cell)
    assert (ip["size"], runs(ip)) == (7, 2)


# -- annotations ---------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    "total: float\ndoubled = total * 2",
    "class Totals:\n    total: float\n    doubled = total * 2\ndoubled = Totals.doubled",
], ids=["cell", "class-body"])
def test_an_annotation_without_a_value_binds_nothing(ip: Shell, body: str) -> None:
    ip.run("total = 1.0")
    cell = f"%%memo annotated\n{COUNT}{body}"
    ip.run(cell)
    ip.run("total = 5.0")
    ip.run(cell)
    assert (ip["doubled"], ip["total"], runs(ip)) == (10.0, 5.0, 2)


# -- class bodies --------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    "class C:\n    factor = factor * 2\nresult = C.factor",
    "class C:\n    if True:\n        factor = factor * 2\nresult = C.factor",
    "class C:\n    for _ in range(1):\n        factor = factor * 2\nresult = C.factor",
], ids=["read-then-bound", "in-a-branch", "in-a-loop"])
def test_a_class_body_reading_a_global_it_binds_afterwards_keys_the_global(ip: Shell, body: str) -> None:
    ip.run("factor = 1")
    cell = f"%%memo class_body\n{COUNT}{body}"
    ip.run(cell)
    ip.run("factor = 5")
    ip.run(cell)
    assert (ip["result"], runs(ip)) == (10, 2)


def test_a_class_body_reading_a_global_it_binds_keys_it_across_a_restart(cache_dir: Path) -> None:
    cell = "%%memo class_restart\nclass C:\n    factor = factor * 2\nresult = C.factor"
    out = "OUT['result'] = result"
    assert run_kernel(["%load_ext notebook_memo", "factor = 1", cell, out], cache_dir, seed=1)["result"] == 2
    assert run_kernel(["%load_ext notebook_memo", "factor = 5", cell, out], cache_dir, seed=2)["result"] == 10


# -- star imports --------------------------------------------------------------------------------


def test_a_star_import_of_a_user_module_keys_the_module(cache_dir: Path) -> None:
    folder = cache_dir.parent
    cell = "%%memo star\nfrom helpers_star import *\ny = SCALE * 3\nz = scaled(1)"
    cells = ["%load_ext notebook_memo", f"import sys\nsys.path.insert(0, {str(folder)!r})", cell,
             "OUT['y'], OUT['z'] = y, z"]
    for scale in (2, 50):
        (folder / "helpers_star.py").write_text(f"SCALE = {scale}\ndef scaled(x):\n    return x * SCALE\n")
        assert run_kernel(cells, cache_dir, seed=scale)["y"] == scale * 3
    (folder / "helpers_star.py").write_text("SCALE = 50\ndef scaled(x):\n    return -x * SCALE\n")
    assert run_kernel(cells, cache_dir, seed=3)["z"] == -50


# -- reads of the whole notebook namespace -------------------------------------------------------


@pytest.mark.parametrize("reader", [
    "y = {k: v for k, v in vars().items() if k == 'LR'}['LR'] * 2",
    "y = len([n for n in dir() if n.startswith('LR')]) * 2.0",
    "y = eval('LR * 2', None)",
    "y = eval('LR * 2', None, {})",
    "import sys\ny = sys.modules[__name__].LR * 2",
    "import sys\ny = sys.modules.get('__main__').LR * 2",
], ids=["vars()", "dir()", "eval-None", "eval-None-locals", "sys.modules[__name__]", "sys.modules.get"])
def test_a_cell_reading_the_notebook_namespace_runs_each_time_and_says_so(ip: Shell, reader: str) -> None:
    ip.run("LR = 0.25")
    cell = f"%%memo dynamic\n{COUNT}{reader}"
    with pytest.warns(MemoWarning, match="reads the notebook through"):
        ip.run(cell)
    ip.run("LR = 2.0\nLR_B = 1")
    ip.run(cell)
    assert (ip["y"], runs(ip)) == (4.0, 2)


def test_vars_and_dir_of_an_object_and_eval_given_a_namespace_are_cached(ip: Shell) -> None:
    ip.run("import types\nobj = types.SimpleNamespace(a=1)")
    cell = f"%%memo explicit\n{COUNT}names = dir(obj)\nstate = vars(obj)\nv = eval('a + 1', {{'a': 1}})"
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        ip.run(cell)
        ip.run(cell)
    assert (ip["v"], runs(ip)) == (2, 1)


@pytest.mark.parametrize("body", [
    "return x * sys.modules['__main__'].K",
    "return x * sys.modules[__name__].K",
    "return x * sys.modules.get('__main__').K",
    "main = sys.modules['__main__']\n    return x * main.K",
], ids=["__main__", "__name__", "get", "through-a-local"])
def test_a_function_reading_the_notebook_through_sys_modules_keys_what_it_reads(ip: Shell, body: str) -> None:
    ip.run("from notebook_memo import memo\nK = 1")
    ip.run(f"@memo\ndef scaled(x):\n    import sys\n    {body}")
    assert ip.run("scaled(2)") == 2
    ip.run("K = 10")
    assert ip.run("scaled(2)") == 20


def test_a_modules_function_reading_its_own_module_through_sys_modules_keys_it(
        ip: Shell, tmp_path: Path) -> None:
    (tmp_path / "own_module.py").write_text(
        "import sys\nfrom notebook_memo import memo\nK = 1\n\n@memo\ndef scaled(x):\n"
        "    return x * sys.modules[__name__].K\n")
    ip.run(f"import sys\nsys.path.insert(0, {str(tmp_path)!r})\nimport own_module")
    try:
        assert ip.run("own_module.scaled(2)") == 2
        ip.run("own_module.K = 10")
        assert ip.run("own_module.scaled(2)") == 20
    finally:
        ip.run(f"sys.path.remove({str(tmp_path)!r})\ndel sys.modules['own_module']")


def test_a_function_taking_a_module_from_sys_modules_by_a_computed_name_warns(ip: Shell) -> None:
    ip.run("from notebook_memo import memo\nK = 1")
    ip.run("@memo\ndef scaled(x, module):\n    import sys\n    return x * sys.modules[module].K")
    with pytest.warns(MemoWarning, match="scaled: .* a name computed at run time"):
        assert ip.run("scaled(2, '__main__')") == 2


def test_a_functions_annotations_in_a_cell_are_inputs_and_evaluated_as_in_any_cell(ip: Shell) -> None:
    cell = (f"%%memo annotations\n{COUNT}import typing\ndef scale(x: Unit, *rest: Unit, k: Unit = 1) -> Unit:\n"
            "    return x\nhints = typing.get_type_hints(scale)")
    ip.run("class Meters(float): pass\nclass Feet(float): pass\nUnit = Meters")
    ip.run(cell)
    assert ip["scale"].__annotations__["x"] is ip["Meters"]  # not the text 'Unit', as in a plain cell
    ip.run("Unit = Feet")
    ip.run(cell)
    assert ip["hints"] == dict.fromkeys(["x", "rest", "k", "return"], ip["Feet"])
    assert runs(ip) == 2


def test_a_future_import_of_an_earlier_cell_holds_in_a_memo_cell(ip: Shell) -> None:
    ip.run("from __future__ import annotations")
    ip.run("Unit = int")
    ip.run(f"%%memo postponed\n{COUNT}def scale(x: Unit) -> Unit:\n    return x")
    assert ip["scale"].__annotations__ == {"x": "Unit", "return": "Unit"}


# -- what cannot be hashed -----------------------------------------------------------------------


@pytest.mark.parametrize("helper", [
    "def query():\n    with lock:\n        return 42",
    "def query(guard=lock):\n    with guard:\n        return 42",
], ids=["global", "default"])
def test_a_helper_reading_a_value_that_cannot_be_hashed_leaves_it_out_with_a_warning(ip: Shell, helper: str) -> None:
    ip.run(f"import threading\nlock = threading.Lock()\n{helper}")
    cell = f"%%memo via_helper\n{COUNT}v = query()"
    with pytest.warns(MemoWarning, match="left out of the cache key") as caught:
        ip.run(cell)
    assert "lock" in str(caught[0].message) and "NoneType" not in str(caught[0].message)
    ip.run(cell)
    assert (ip["v"], runs(ip)) == (42, 1)


def test_a_cell_input_that_cannot_be_hashed_is_refused_naming_its_type_and_the_cell_option(ip: Shell) -> None:
    ip.run("import threading\nlock = threading.Lock()")
    result = ip.run_raw("%%memo locked\nwith lock:\n    w = 1")
    message = str(result.error_in_exec)
    assert "'lock' (a _thread.lock)" in message and "--inputs" in message and "ignore=" not in message


def test_a_cell_importing_a_module_by_a_computed_name_warns_and_runs(ip: Shell) -> None:
    ip.run("LR = 0.25")
    cell = f"%%memo computed_module\n{COUNT}import sys\nname = '__main__'\ny = sys.modules[name].LR * 2"
    with pytest.warns(MemoWarning, match="reads the notebook through"):
        ip.run(cell)
    ip.run("LR = 2.0")
    ip.run(cell)
    assert (ip["y"], runs(ip)) == (4.0, 2)


# -- history entries -----------------------------------------------------------------------------


@pytest.mark.parametrize("history", ["In", "_ih"])
def test_an_input_history_entry_counts_by_that_entry_alone(ip: Shell, history: str) -> None:
    n = ip.run_raw("a = 41 + 1").execution_count
    cell = f"%%memo source\n{COUNT}src = {history}[{n}]"
    for _ in range(3):
        ip.run(cell)  # each run adds an entry to the history: not to what the cell reads
    assert (ip["src"], runs(ip)) == ("a = 41 + 1", 1)
    ip.run(f"{history}[{n}] = 'b = 1'")
    ip.run(cell)
    assert (ip["src"], runs(ip)) == ("b = 1", 2)


# -- --inputs and --outputs naming what is not there ---------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_inputs_naming_an_undefined_name_is_a_one_line_usage_error(
        ip: Shell, capsys: pytest.CaptureFixture[str]) -> None:
    ip.run("x = 1")
    capsys.readouterr()
    result = ip.run_raw(f"%%memo --inputs x,nothere\n{COUNT}y = x")
    captured = capsys.readouterr()
    text = _ANSI.sub("", captured.out + captured.err)
    assert isinstance(result.error_in_exec, UsageError), text
    assert "'nothere'" in text and "Traceback" not in text
    assert runs(ip) == 0


def test_outputs_naming_a_name_the_cell_did_not_bind_keeps_the_run_and_stores_nothing(ip: Shell) -> None:
    ip.run("x = 1")
    cell = f"%%memo --outputs y,zz\n{COUNT}y = x + 100"
    with pytest.warns(MemoWarning, match="--outputs names 'zz', which the cell did not bind"):
        ip.run(cell)
    ip.run(cell)
    assert (ip["y"], runs(ip)) == (101, 2)
