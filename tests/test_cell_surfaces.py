"""%%memo cells as a review found them: what a cell reads through its imports, magics and class bodies; what
it leaves unbound; how its value shows; and functions it defines, after a restart and after an edit."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest

from notebook_memo import StorageWarning
from tests.conftest import Counter, Shell, run_kernel

HITS = """
from notebook_memo import _cells
OUT["cell hits"] = sum(c.hits for c in _cells._cells.values())
"""


def test_a_user_module_the_cell_imports_is_keyed_by_its_code(cache_dir: Path) -> None:
    module = cache_dir.parent / "cell_helpers.py"
    cells = ["%load_ext notebook_memo", f"import sys; sys.path.insert(0, {str(cache_dir.parent)!r})", """%%memo
from cell_helpers import f
import cell_helpers
y = (f(1), cell_helpers.f(2))
""", "OUT['y'] = y", HITS]
    module.write_text("def f(x):\n    return x + 1\n")
    assert run_kernel(cells, cache_dir, seed=1)["y"] == [2, 3]
    module.write_text("def f(x):\n    return x + 1000\n")
    second = run_kernel(cells, cache_dir, seed=2)
    assert (second["y"], second["cell hits"]) == ([1001, 1002], 0)
    assert run_kernel(cells, cache_dir, seed=3)["cell hits"] == 1  # unchanged since: a hit


@pytest.mark.parametrize("code", [
    "files = !echo $w",  # a shell command reading w
    "%time files = [w]",  # a line magic running code
    "files = [eval('w')]",
    "files = [globals()['w']]",
    "files = [get_ipython().user_ns['w']]",
    "import sys\nfiles = [sys.modules['__main__'].w]",
    "import inspect\nfiles = [inspect.currentframe().f_globals['w']]",
    "import builtins\nfiles = [builtins.eval('w')]",
    "g = globals\nfiles = [g()['w']]",
])
def test_a_cell_that_reads_through_a_magic_or_eval_runs_each_time_and_says_so(shell: Shell, cache_dir: Path,
                                                                               code: str) -> None:
    shell.run("%load_ext notebook_memo")
    shell.run("w = 'a'")
    with pytest.warns(StorageWarning, match="not cached, so the cell runs each time"):
        shell.run("%%memo\n" + code)
    shell.run("w = 'b'")
    shell.run("%%memo\n" + code)
    assert shell["files"] == ["b"]


def test_a_cell_whose_inputs_are_listed_may_use_a_magic(shell: Shell, cache_dir: Path) -> None:
    shell.run("%load_ext notebook_memo")
    shell.run("w = 'a'")
    with warnings.catch_warnings():
        warnings.simplefilter("error", StorageWarning)
        shell.run("%%memo --inputs w\nfiles = !echo $w")
        shell.run("%%memo --inputs w\nfiles = !echo $w")
    assert shell["files"] == ["a"]


def test_a_method_defined_in_a_cell_reads_the_global_not_the_class_attribute(shell: Shell, cache_dir: Path) -> None:
    shell.run("%load_ext notebook_memo")
    cell = """%%memo
class C:
    scale = 2
    def f(self, x):
        return x * scale
y = C().f(3)
"""
    shell.run("scale = 10")
    shell.run(cell)
    shell.run("scale = 1000")
    shell.run(cell)
    assert shell["y"] == 3000


def test_names_the_cell_binds_and_then_deletes_are_unbound_after_a_hit(shell: Shell, cache_dir: Path) -> None:
    shell.run("%load_ext notebook_memo")
    cell = """%%memo
tmp = [1, 2]
total = sum(tmp)
del tmp
try:
    1 / 0
except ZeroDivisionError as e:
    message = str(e)
"""
    shell.run(cell)
    shell.run("tmp = 'mine'; e = 2.718")
    shell.run(cell)
    assert shell["total"] == 3
    assert "tmp" not in shell.ip.user_ns and "e" not in shell.ip.user_ns  # as a run leaves them


def test_a_cell_ending_with_a_semicolon_shows_no_value(shell: Shell, cache_dir: Path) -> None:
    shell.run("%load_ext notebook_memo")
    for _ in range(2):  # a run, then a hit
        assert shell.run("%%memo\nz = 5\nz;") is None
        assert shell.run("%%memo\nz = 6\nz") == 6


def test_a_ttl_given_after_the_entry_was_stored_applies_to_it(shell: Shell, cache_dir: Path, counter: Counter,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from notebook_memo import _serialize

    shell.run("%load_ext notebook_memo")
    shell.ip.user_ns["counter"] = counter
    shell.run("%%memo\ncounter()\nn = 1")
    shell.run("%%memo\ncounter()\nn = 1")
    assert counter.n == 1
    real = time.time
    monkeypatch.setattr(_serialize, "time", type("Later", (), {"time": staticmethod(lambda: real() + 3600)}))
    shell.run("%%memo --ttl 10m\ncounter()\nn = 1")  # the entry is an hour old
    assert counter.n == 2


def test_functions_a_restored_cell_defined_are_keyed_and_shown_by_their_source(cache_dir: Path) -> None:
    cells = ["%load_ext notebook_memo", """%%memo
def triple(x):
    return x * 3
""", """%%memo
y = triple(2)
""", """
import inspect
OUT["source"] = inspect.getsource(triple)
""", HITS]
    run_kernel(cells, cache_dir, seed=1)
    second = run_kernel(cells, cache_dir, seed=2)
    assert second["cell hits"] == 2  # the cell using the restored function hits too
    assert second["source"] == "def triple(x):\n    return x * 3\n"


def test_an_lru_cache_function_the_cell_defines_comes_back_as_defined(shell: Shell, cache_dir: Path) -> None:
    shell.run("%load_ext notebook_memo")
    first = "%%memo\nimport functools\n@functools.lru_cache\ndef f(x):\n    return x + 1\ny = f(1)\n"
    shell.run(first)
    shell.run(first.replace("x + 1", "x + 100"))  # edited
    shell.run(first)  # and back: a hit
    assert (shell["y"], shell["f"](1)) == (2, 2)


def test_an_lru_cache_function_the_cell_defines_comes_back_after_a_restart(cache_dir: Path) -> None:
    cells = ["%load_ext notebook_memo", "%%memo\nimport functools\n@functools.cache\ndef f(x):\n    return x + 1\n",
             "OUT['f'] = f(1); OUT['size'] = f.cache_parameters()['maxsize']", HITS]
    run_kernel(cells, cache_dir, seed=1)
    second = run_kernel(cells, cache_dir, seed=2)
    assert (second["f"], second["size"], second["cell hits"]) == (2, None, 1)
    assert not any("could not be used" in w for w in second["_warnings"])


def test_an_environment_variable_named_by_a_global_in_a_cell_is_keyed(shell: Shell, cache_dir: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # It was left out of the key with a warning; a name held in a global text is keyed as that variable now.
    shell.run("%load_ext notebook_memo")
    shell.run("import os; key = 'NBM_CELL_MODE'")
    shell.run("class _Runs(dict):\n    def __memo_key__(self): return 'runs'\nRUNS = _Runs()")
    cell = "%%memo mode\nRUNS['n'] = RUNS.get('n', 0) + 1\nv = os.environ.get(key)"
    monkeypatch.setenv("NBM_CELL_MODE", "a")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: it is keyed
        shell.run(cell)
    monkeypatch.setenv("NBM_OTHER", "x")  # another variable: a hit
    shell.run(cell)
    assert shell["RUNS"]["n"] == 1 and shell["v"] == "a"
    monkeypatch.setenv("NBM_CELL_MODE", "b")
    shell.run(cell)
    assert shell["RUNS"]["n"] == 2 and shell["v"] == "b"


def test_outputs_that_hold_inputs_the_run_left_alone_hold_the_notebook_s_objects(shell: Shell,
                                                                                cache_dir: Path) -> None:
    shell.run("%load_ext notebook_memo")
    cell = "%%memo\nb = a\nparams = {'cfg': cfg, 'n': len(a)}\n"
    shell.run("a = [1, 2]; cfg = {'lr': 0.1}")
    shell.run(cell)
    shell.run("a = [1, 2]; cfg = {'lr': 0.1}")  # other objects of the same content: a hit
    shell.run(cell)
    assert shell["b"] is shell["a"] and shell["params"]["cfg"] is shell["cfg"]
    shell.run("b.append(99)")
    assert shell["a"] == [1, 2, 99]  # as after a run


def test_outputs_hold_the_notebook_s_objects_after_a_restart(cache_dir: Path) -> None:
    cells = ["%load_ext notebook_memo", "clf = {'fitted': False}", """%%memo
pipeline = [('scale', 2), ('clf', clf)]
""", "pipeline[1][1]['fitted'] = True", "OUT['clf'] = clf", HITS]
    run_kernel(cells, cache_dir, seed=1)
    second = run_kernel(cells, cache_dir, seed=2)
    assert (second["clf"], second["cell hits"]) == ({"fitted": True}, 1)


def test_a_function_the_cell_defines_is_one_object_inside_objects_and_defaults(shell: Shell,
                                                                              cache_dir: Path) -> None:
    shell.run("%load_ext notebook_memo")
    cell = """%%memo
import types
def f(x):
    return x * K
class Holder:
    pass
holder = Holder()
holder.cb = f
h = types.SimpleNamespace(cb=f)
def g(x, fn=f, *, other=f):
    return fn(x) + other(x)
"""
    shell.run("K = 1")
    shell.run(cell)
    shell.run("K = 1")
    shell.run(cell)  # a hit
    shell.run("K = 10")  # they read the notebook's K, as after a run
    f = shell["f"]
    assert shell["holder"].cb is f and shell["h"].cb is f and shell["g"].__defaults__[0] is f
    assert (shell.run("holder.cb(1)"), shell.run("h.cb(1)"), shell.run("g(1)")) == (10, 10, 20)


def test_a_cell_that_sets_environment_variables_runs_each_time_and_keeps_no_value(cache_dir: Path) -> None:
    cells = ["%load_ext notebook_memo", """%%memo
import os
os.environ["NBM_CELL_TOKEN"] = "sk-" + "SECRET123"
os.environ.pop("NBM_CELL_DROP", None)
ready = True
""", "OUT['token'] = os.environ.get('NBM_CELL_TOKEN'); OUT['drop'] = os.environ.get('NBM_CELL_DROP')", HITS]
    first = run_kernel(cells, cache_dir, seed=1, env={"NBM_CELL_DROP": "1"})
    second = run_kernel(cells, cache_dir, seed=2, env={"NBM_CELL_DROP": "1"})
    assert (second["token"], second["drop"], second["cell hits"]) == ("sk-SECRET123", None, 0)  # as a run leaves it
    assert any("environment variable" in w for w in first["_warnings"])
    assert not any(b"SECRET123" in path.read_bytes() for path in cache_dir.rglob("*") if path.is_file())


def test_a_cell_reading_an_earlier_output_by_number_is_keyed_by_that_output(shell: Shell, cache_dir: Path,
                                                                           counter: Counter) -> None:
    shell.ip.user_ns["counter"] = counter
    shell.run("%load_ext notebook_memo")
    number = shell.ip.execution_count
    shell.run("[1, 2, 3]")
    cell = f"%%memo\ncounter()\ny = sum(Out[{number}])\n"
    shell.run(cell)
    shell.run("'another output'")  # the history grows
    shell.run(cell)
    assert (shell["y"], counter.n) == (6, 1)


def test_logging_to_the_notebook_s_stream_is_replayed_on_a_hit(shell: Shell, cache_dir: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    shell.run("%load_ext notebook_memo")
    shell.run("""
import logging, sys
log = logging.getLogger("nbm_cell_test")
log.propagate = False
log.setLevel(logging.INFO)
handler = logging.StreamHandler(sys.stdout)
handler.setFormatter(logging.Formatter("LOG %(message)s"))
log.addHandler(handler)
""")
    cell = "%%memo\nlog.info('loaded 1000 rows')\nrows = 1000\n"
    for _ in range(2):  # a run, then a hit
        capsys.readouterr()
        shell.run(cell)
        assert "LOG loaded 1000 rows" in capsys.readouterr().out
    assert shell["handler"].stream is sys.stdout


def test_a_hit_leaves_the_notebook_s_own_objects_as_they_are(shell: Shell, cache_dir: Path) -> None:
    shell.run("%load_ext notebook_memo")
    shell.run("""
import types
def helper(x):
    return x + 1
ops = [helper]
ns = types.SimpleNamespace(fn=helper)
class Node:
    def __init__(self, nxt):
        self.nxt = nxt
    def __memo_key__(self):
        return "node"
head = None
for _ in range(1000):
    head = Node(head)
""")
    cell = "%%memo\npipeline = {'ops': ops, 'ns': ns}\nchain = [head]\n"
    shell.run(cell)
    shell.run(cell)  # a hit
    assert shell["ops"][0] is shell["helper"] and shell["ns"].fn is shell["helper"]
    assert shell["pipeline"]["ops"] is shell["ops"] and shell["chain"][0] is shell["head"]
    shell.run("ops.remove(helper)")


def test_an_output_holding_an_input_two_names_share_is_never_bound_to_the_other_name(shell: Shell,
                                                                                    cache_dir: Path) -> None:
    shell.run("%load_ext notebook_memo")
    shell.run("a = [1, 2]; c = a")
    cell = "%%memo\nb = [a, len(c)]\n"
    shell.run(cell)
    shell.run("c = [1, 2]")  # the same content, now apart from a: a hit
    shell.run(cell)
    assert shell["b"][0] is not shell["c"]
    shell.run("c.append(3)")
    assert shell["b"] == [[1, 2], 2]


@pytest.mark.parametrize("code", [
    "%config InlineBackend.figure_format = 'retina'\ny = x + 1",
    "def make(a, b=2):\n    return dict(locals())\ny = make(x)['a'] + 1",
    "y = eval('1 + 1', {'__builtins__': {}}, {}) + x - 1",
    "class M:\n    def eval(self):\n        return self\ny = x + 1\nM().eval()",
])
def test_cells_that_read_only_what_they_show_are_cached(shell: Shell, cache_dir: Path, code: str) -> None:
    shell.run("%load_ext notebook_memo")
    shell.run("x = 1")
    with warnings.catch_warnings():
        warnings.simplefilter("error", StorageWarning)
        shell.run("%%memo\n" + code)
        shell.run("%%memo\n" + code)
    assert shell["y"] == 2 and sum(c.hits for c in __import__("notebook_memo")._cells._cells.values()) == 1
