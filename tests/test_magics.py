"""%%memo and %memo in a real IPython shell."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError

from notebook_memo._cell_analysis import analyse
from notebook_memo._cells import cells
from tests.conftest import Shell, run_kernel


@pytest.fixture
def ip(shell: Shell) -> Shell:
    shell.run("%load_ext notebook_memo")
    shell.run("class _Runs(dict):\n    def __memo_key__(self): return 'runs'\nRUNS = _Runs()")
    return shell


CELL = """%%memo preds
RUNS['n'] = RUNS.get('n', 0) + 1
preds = [x * weight for x in data]
score = sum(preds)
print(f"score {score}")
score
"""


def runs(ip: Shell) -> int:
    return int(ip["RUNS"].get("n", 0))


def test_second_run_restores_variables_without_running(ip: Shell, capsys: pytest.CaptureFixture[str]) -> None:
    ip.run("data = [1, 2, 3]\nweight = 2")
    first = ip.run(CELL)
    ip.run("del preds, score")
    second = ip.run(CELL)
    assert runs(ip) == 1
    assert first == second == 12
    assert ip["preds"] == [2, 4, 6] and ip["score"] == 12
    out = capsys.readouterr().out
    assert out.count("score 12") == 2  # printed once live, once replayed
    assert "restored preds, score from the cache" in out


def test_changing_an_input_is_a_miss(ip: Shell) -> None:
    ip.run("data = [1, 2, 3]\nweight = 2")
    ip.run(CELL)
    ip.run("weight = 3")
    assert ip.run(CELL) == 18
    assert runs(ip) == 2
    ip.run("weight = 2")
    assert ip.run(CELL) == 12
    assert runs(ip) == 2  # the first result is still there


def test_changing_the_cells_code_is_a_miss_but_comments_are_not(ip: Shell) -> None:
    ip.run("data = [1, 2, 3]\nweight = 2")
    ip.run(CELL)
    ip.run(CELL.replace("score = sum(preds)", "score = sum(preds)  # total"))
    assert runs(ip) == 1
    assert ip.run(CELL.replace("sum(preds)", "max(preds)")) == 6
    assert runs(ip) == 2


def test_input_mutated_in_place_is_restored(ip: Shell) -> None:
    ip.run("items = [1]")
    cell = "%%memo grow\nRUNS['n'] = RUNS.get('n', 0) + 1\nitems.append(2)\ntotal = len(items)"
    ip.run(cell)
    assert ip["items"] == [1, 2]
    ip.run("items = [1]")
    ip.run(cell)
    assert runs(ip) == 1
    assert ip["items"] == [1, 2] and ip["total"] == 2


def test_deleted_names_are_deleted_on_a_hit(ip: Shell) -> None:
    ip.run("scratch = 5\nkeep = 1")
    cell = "%%memo tidy\nRUNS['n'] = RUNS.get('n', 0) + 1\nresult = scratch * 2\ndel scratch"
    ip.run(cell)
    assert "scratch" not in ip.ip.user_ns
    ip.run("scratch = 5")
    ip.run(cell)
    assert runs(ip) == 1
    assert "scratch" not in ip.ip.user_ns and ip["result"] == 10


def test_functions_and_classes_defined_in_the_cell_are_restored(ip: Shell) -> None:
    cell = "%%memo defs\nRUNS['n'] = RUNS.get('n', 0) + 1\nimport math\ndef area(r):\n    return math.pi * r * r\n" \
           "class Shape:\n    sides = 3\nvalue = area(1)"
    ip.run(cell)
    ip.run("del area, Shape, value, math")
    ip.run(cell)
    assert runs(ip) == 1
    assert ip.run("area(2) > 12 and Shape.sides == 3 and math.pi > 3")


@pytest.fixture
def published(ip: Shell) -> Iterator[list[Any]]:
    """Everything the shell publishes for display while the test runs."""
    seen: list[Any] = []
    original = ip.ip.display_pub.publish

    def spy(data: Any, metadata: Any = None, *args: Any, **kwargs: Any) -> Any:
        seen.append(data)
        return original(data, metadata, *args, **kwargs)

    ip.ip.display_pub.publish = spy
    yield seen
    ip.ip.display_pub.publish = original


def test_display_outputs_are_replayed_in_order(ip: Shell, published: list[Any]) -> None:
    cell = ("%%memo show\nfrom IPython.display import display, HTML\nRUNS['n'] = RUNS.get('n', 0) + 1\n"
            "display(HTML('<b>one</b>'))\ndisplay({'a': 1}, raw=False)\ndisplay(HTML('<i>two</i>'))")
    ip.run(cell)
    first = list(published)
    published.clear()
    ip.run(cell)
    assert runs(ip) == 1
    assert [d.get("text/html") for d in published] == [d.get("text/html") for d in first]
    assert published[0]["text/html"] == "<b>one</b>" and published[-1]["text/html"] == "<i>two</i>"


def test_matplotlib_figures_are_stored_and_shown_again(ip: Shell, published: list[Any]) -> None:
    # As %matplotlib inline does, also where an earlier cell of the process imported pyplot under another backend:
    # the inline backend, and the shell's formatter that sends a figure as a PNG.
    ip.run("import matplotlib\nmatplotlib.use('module://matplotlib_inline.backend_inline')\n"
           "from matplotlib_inline.backend_inline import configure_inline_support\n"
           "configure_inline_support(get_ipython(), 'module://matplotlib_inline.backend_inline')")
    cell = ("%%memo plot\nimport matplotlib.pyplot as plt\nRUNS['n'] = RUNS.get('n', 0) + 1\n"
            "plt.plot([1, 3, 2])\nplt.show()")
    ip.run(cell)
    ip.run(cell)
    assert runs(ip) == 1
    images = [d for d in published if "image/png" in d]
    assert len(images) == 2 and images[0]["image/png"] == images[1]["image/png"]


def test_a_cell_that_raises_stores_nothing(ip: Shell) -> None:
    cell = "%%memo flaky\nRUNS['n'] = RUNS.get('n', 0) + 1\nif RUNS['n'] == 1:\n    raise ValueError('boom')\nok = True"
    result = ip.run_raw(cell)
    assert isinstance(result.error_in_exec, ValueError)
    ip.run(cell)
    ip.run(cell)
    assert runs(ip) == 2 and ip["ok"] is True


def test_top_level_await_in_a_cell(ip: Shell) -> None:
    cell = ("%%memo fetched\nimport asyncio\nRUNS['n'] = RUNS.get('n', 0) + 1\nawait asyncio.sleep(0)\n"
            "value = 41 + 1\nawait asyncio.sleep(0) or value")
    assert ip.run(cell) == 42
    assert ip.run(cell) == 42
    assert runs(ip) == 1 and ip["value"] == 42


def test_refresh_reruns_and_overwrites(ip: Shell) -> None:
    ip.run("%%memo r\nRUNS['n'] = RUNS.get('n', 0) + 1\nv = RUNS['n']")
    ip.run("%%memo r --refresh\nRUNS['n'] = RUNS.get('n', 0) + 1\nv = RUNS['n']")
    ip.run("%%memo r\nRUNS['n'] = RUNS.get('n', 0) + 1\nv = RUNS['n']")
    assert runs(ip) == 2 and ip["v"] == 2


def test_unnamed_cells_are_named_by_their_content(ip: Shell) -> None:
    ip.run("%%memo\nRUNS['n'] = RUNS.get('n', 0) + 1\nz = 1")
    ip.run("%%memo\nRUNS['n'] = RUNS.get('n', 0) + 1\nz = 1")
    assert runs(ip) == 1


def test_inputs_and_outputs_override_detection(ip: Shell) -> None:
    ip.run("a = 1\nb = 100")
    cell = "%%memo pick --inputs a --outputs keep\nRUNS['n'] = RUNS.get('n', 0) + 1\nkeep = a + b\ntemp = 5"
    ip.run(cell)
    ip.run("del keep, temp\nb = 200")  # b is not an input now: still a hit
    ip.run(cell)
    assert runs(ip) == 1 and ip["keep"] == 101 and "temp" not in ip.ip.user_ns


def test_unhashable_input_suggests_inputs(ip: Shell) -> None:
    ip.run("import threading\nlock = threading.Lock()")
    result = ip.run_raw("%%memo locked\nwith lock:\n    x = 1")
    assert "--inputs" in str(result.error_in_exec)


def test_ttl_option(ip: Shell) -> None:
    import time

    cell = "%%memo brief --ttl 0.2s\nRUNS['n'] = RUNS.get('n', 0) + 1"
    ip.run(cell)
    ip.run(cell)
    time.sleep(0.3)
    ip.run(cell)
    assert runs(ip) == 2


def test_functions_used_by_a_cell_are_part_of_its_key(ip: Shell) -> None:
    ip.run("def scale(v):\n    return v * 2")
    cell = "%%memo scaled\nRUNS['n'] = RUNS.get('n', 0) + 1\nout = scale(4)"
    ip.run(cell)
    ip.run("def scale(v):\n    # same code, a comment\n    return v * 2")
    ip.run(cell)
    assert runs(ip) == 1
    ip.run("def scale(v):\n    return v * 3")
    ip.run(cell)
    assert runs(ip) == 2 and ip["out"] == 12


def test_line_magic_info_clear_explain_off_on_dir(ip: Shell, tmp_path: Path) -> None:
    ip.run("w = 1")
    ip.run("%%memo named\nRUNS['n'] = RUNS.get('n', 0) + 1\ny = w + 1")
    ip.run("w = 2")
    ip.run("%%memo named\nRUNS['n'] = RUNS.get('n', 0) + 1\ny = w + 1")
    assert "input 'w' differs" in str(ip.run("%memo explain named"))
    table = ip.run("%memo info")
    assert "cell:named" in repr(table) and "<table>" in table._repr_html_()
    ip.run("%memo off")
    ip.run("%%memo named\nRUNS['n'] = RUNS.get('n', 0) + 1\ny = w + 1")
    assert runs(ip) == 3
    ip.run("%memo on")
    ip.run("%%memo named\nRUNS['n'] = RUNS.get('n', 0) + 1\ny = w + 1")
    assert runs(ip) == 3
    ip.run("%memo clear named")
    ip.run("%%memo named\nRUNS['n'] = RUNS.get('n', 0) + 1\ny = w + 1")
    assert runs(ip) == 4
    ip.run(f"%memo dir {tmp_path / 'elsewhere'}")
    ip.run("%%memo named\nRUNS['n'] = RUNS.get('n', 0) + 1\ny = w + 1")
    assert runs(ip) == 5 and (tmp_path / "elsewhere").is_dir()


def test_clear_stale_removes_older_versions_of_named_cells(ip: Shell) -> None:
    ip.run("%%memo versions\nv = 1")
    ip.run("%%memo versions\nv = 2")
    ip.run("%memo clear --stale")
    ip.run("%%memo versions\nv = 1")  # its entry was stale, so this runs again
    assert ip["v"] == 1


def test_unknown_command_is_a_usage_error(ip: Shell) -> None:
    result = ip.run_raw("%memo frobnicate")
    assert result.error_in_exec is not None and "unknown command" in str(result.error_in_exec)


def test_unload_extension_removes_the_magics(ip: Shell) -> None:
    ip.run("%reload_ext notebook_memo")
    assert sum("notebook_memo" in type(t).__module__ for t in ip.ip.input_transformers_post) == 1
    ip.run("%unload_ext notebook_memo")
    assert "memo" not in ip.ip.magics_manager.magics["cell"]
    assert not any("notebook_memo" in type(t).__module__ for t in ip.ip.input_transformers_post)


@pytest.mark.parametrize(
    "source, inputs, binds",
    [
        ("y = x + 1", ["x"], ["y"]),
        ("x = 1\ny = x", [], ["x", "y"]),
        ("x += 1", ["x"], ["x"]),
        ("total = [a * b for a in items]", ["items", "b"], ["total"]),
        ("f = lambda q: q + offset", ["offset"], ["f"]),
        ("def g(p):\n    return p + bias\nr = g(1)", ["bias"], ["g", "r"]),
        ("s = f'{name}!'", ["name"], ["s"]),
        ("if (n := len(xs)) > 2:\n    big = n", ["xs"], ["big", "n"]),
        ("for i, v in enumerate(vals):\n    acc = v", ["vals"], ["acc", "i", "v"]),
        ("with open(path) as fh:\n    text = fh.read()", ["path"], ["fh", "text"]),
        ("import numpy as np\nfrom os import path as p\narr = np.zeros(3)", [], ["arr", "np", "p"]),
        ("class K:\n    a = base\n    b = a", ["base"], ["K"]),
        ("def bump():\n    global counter\n    counter += 1", ["counter"], ["bump"]),
    ],
)
def test_input_and_output_detection(source: str, inputs: list[str], binds: list[str]) -> None:
    analysis = analyse(ast.parse(source))
    builtins = {"len", "enumerate", "open"}
    assert [n for n in analysis.inputs if n not in builtins] == inputs
    assert [n for n in analysis.binds if n not in {"counter"}] == binds


def test_cells_hit_after_a_kernel_restart(cache_dir: Path) -> None:
    cells = [
        "%load_ext notebook_memo",
        "class _R(dict):\n    def __memo_key__(self): return 'r'\nRUNS = _R()\ndata = list(range(10))",
        "%%memo restart\nRUNS['n'] = RUNS.get('n', 0) + 1\nsquares = {x: x * x for x in data}",
        "OUT['runs'] = RUNS.get('n', 0)\nOUT['squares'] = squares[9]",
    ]
    assert run_kernel(cells, cache_dir, seed=1)["runs"] == 1
    second = run_kernel(cells, cache_dir, seed=2)
    assert second["runs"] == 0 and second["squares"] == 81


def test_restored_functions_read_the_live_notebook_globals(ip: Shell) -> None:
    ip.run("SCALE = 2")
    cell = "%%memo defs_globals\nRUNS['n'] = RUNS.get('n', 0) + 1\ndef times(v):\n    return v * SCALE"
    ip.run(cell)
    ip.run("del times")
    ip.run(cell)
    assert runs(ip) == 1
    ip.run("SCALE = 5")
    assert ip.run("times(2)") == 10  # not the SCALE frozen when the cell first ran


def test_functions_stored_in_containers_read_the_live_notebook_globals(ip: Shell) -> None:
    ip.run("K = 2")
    cell = ("%%memo defs_in_containers\nRUNS['n'] = RUNS.get('n', 0) + 1\n"
            "def scale(v):\n    return v * K\n"
            "ops = {'scale': scale, 'lam': lambda v: v + K, 'nested': [(scale,)]}\n"
            "pipeline = [ops['lam'], scale]\nfrozen = (frozenset([scale]),)\nby_key = {scale: 1}")
    ip.run(cell)
    ip.run("del scale, ops, pipeline, frozen, by_key")
    ip.run(cell)
    assert runs(ip) == 1
    ip.run("K = 10")
    assert ip.run("ops['scale'](1), ops['lam'](1), ops['nested'][0][0](1), pipeline[0](1)") == (10, 11, 10, 11)
    # One function stays one object wherever the cell put it.
    assert ip.run("ops['scale'] is scale is ops['nested'][0][0] is pipeline[1]") is True
    assert ip.run("next(iter(frozen[0])) is scale and next(iter(by_key)) is scale and by_key[scale] == 1") is True


def test_a_value_that_cannot_be_restored_faithfully_makes_the_cell_run(
        ip: Shell, tmp_path: Path, recwarn: pytest.WarningsRecorder) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("first line\nsecond line\n")
    cell = (f"%%memo open_handle\nRUNS['n'] = RUNS.get('n', 0) + 1\nhandle = open({str(path)!r})\n"
            "first = handle.readline()")
    ip.run(cell)
    ip.run(cell)
    assert runs(ip) == 2  # never served from the cache
    assert type(ip["handle"]).__name__ == "TextIOWrapper"  # the real file, not a snapshot of another type
    ip["handle"].close()
    notes = [str(w.message) for w in recwarn]
    assert any("'handle'" in n and "open file" in n for n in notes), notes


# -- found by review: memoized definitions, paths that may not bind, history, patterns -------


def test_memoized_definitions_restored_from_a_cell_read_the_live_globals(ip: Shell) -> None:
    ip.run("from notebook_memo import memo\nG = 2")
    cell = ("%%memo memo_defs\nRUNS['n'] = RUNS.get('n', 0) + 1\n"
            "@memo\ndef sq(v):\n    return v * v * G\n"
            "class Box:\n    def __init__(self, n):\n        self.n = n\n"
            "    @memo\n    def total(self, x):\n        return (self.n + x) * G\n"
            "    @memo.per_instance\n    def each(self, x):\n        return x * G\n"
            "    @property\n    def doubled(self):\n        return self.n * G\n"
            "    @functools.cached_property\n    def tripled(self):\n        return self.n * 3 * G\n"
            "    @staticmethod\n    def unit():\n        return G")
    ip.run("import functools")
    ip.run(cell)
    ip.run("del sq, Box")
    ip.run(cell)
    assert runs(ip) == 1
    ip.run("G = 10")
    ip.run("b = Box(1)\nvalues = [sq(3), b.total(3), b.each(3), b.doubled, b.tripled, Box.unit()]")
    assert ip["values"] == [90, 40, 30, 10, 30, 10]


@pytest.mark.parametrize("binding", [
    "if flag:\n    x = 1",
    "for _ in range(3 if flag else 0):\n    x = 1",
    "while flag:\n    x = 1\n    break",
    "try:\n    assert flag\n    x = 1\nexcept AssertionError:\n    pass",
    "match flag:\n    case True:\n        x = 1",
], ids=["if", "for", "while", "try", "match"])
def test_a_name_bound_on_some_paths_only_is_read_from_the_notebook_otherwise(ip: Shell, binding: str) -> None:
    ip.run("flag = False\nx = 5")
    cell = f"%%memo paths\nRUNS['n'] = RUNS.get('n', 0) + 1\n{binding}\ny = x + 1"
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


def test_a_name_the_cached_run_left_alone_is_not_overwritten(ip: Shell) -> None:
    ip.run("flag = False\nx = 5")
    cell = "%%memo left_alone\nRUNS['n'] = RUNS.get('n', 0) + 1\nif flag:\n    x = 1\nz = 2"
    ip.run(cell)
    ip.run("x = 7")
    ip.run(cell)
    assert ip["x"] == 7
    ip.run("if_none = None")
    cell2 = "%%memo same_object\nRUNS['n'] = RUNS.get('n', 0) + 1\nif flag is False:\n    if_none = None"
    ip.run(cell2)
    ip.run("if_none = 3")
    ip.run(cell2)  # the cached run may have set it to the object it already was: cannot tell, runs
    assert ip["if_none"] is None


def test_either_branch_of_a_try_binding_the_name_counts_as_binding_it(ip: Shell) -> None:
    analysis = analyse(ast.parse("try:\n    import lzma as comp\nexcept ImportError:\n    comp = None\nc = comp"))
    assert "comp" not in analysis.inputs and "comp" not in analysis.maybe_inputs


@pytest.mark.parametrize("reader", ["y = _ * 2", "y = Out[{n}] * 2", "y = _{n} * 2"], ids=["_", "Out", "_N"])
def test_ipython_history_variables_are_inputs(ip: Shell, reader: str) -> None:
    result = ip.ip.run_cell("10", store_history=True)
    n = result.execution_count
    cell = f"%%memo history\nRUNS['n'] = RUNS.get('n', 0) + 1\n{reader.format(n=n)}"
    ip.ip.run_cell(cell, store_history=True)
    assert ip["y"] == 20
    ip.ip.run_cell("20", store_history=True)
    if "{n}" in reader:
        ip.run(f"Out[{n}] = 20\n_{n} = 20")
    ip.ip.run_cell(cell, store_history=True)
    assert ip["y"] == 40


@pytest.mark.parametrize("cell", [
    "match p:\n    case [first, *rest]:\n        pass\ntotal = first + sum(rest)",
    "match d:\n    case {'a': first, **rest}:\n        pass\ntotal = first + len(rest)",
    "squares = [last := v * v for v in p]\ntotal = last",
], ids=["sequence", "mapping", "walrus-in-comprehension"])
def test_names_bound_by_patterns_and_comprehension_walrus_hit_on_rerun(ip: Shell, cell: str) -> None:
    ip.run("p = [1, 2]\nd = {'a': 1, 'b': 2}")
    source = f"%%memo patterns\nRUNS['n'] = RUNS.get('n', 0) + 1\n{cell}"
    for _ in range(3):
        ip.run(source)
    assert runs(ip) == 1


def test_a_loop_variable_read_after_the_loop_hits_once_the_inputs_are_back(ip: Shell) -> None:
    cell = ("%%memo loop_var\nRUNS['n'] = RUNS.get('n', 0) + 1\n"
            "for epoch in range(N):\n    loss = epoch * 2\nfinal = loss")
    ip.run("N = 3")
    ip.run(cell)
    ip.run("N = 4")
    ip.run(cell)
    ip.run(cell)
    ip.run("del loss, epoch")  # as after a restart
    ip.run(cell)
    assert (runs(ip), ip["final"]) == (2, 6)


def test_a_name_read_inside_the_loop_that_may_bind_it_is_checked(ip: Shell) -> None:
    ip.run("data = [0, 7]\nx = 5")
    cell = ("%%memo loop_read\nRUNS['n'] = RUNS.get('n', 0) + 1\nseen = []\n"
            "for v in data:\n    if v:\n        x = v\n    seen.append(x)")
    ip.run(cell)
    assert ip["seen"] == [5, 7]
    ip.run("x = 100")
    ip.run(cell)  # the first pass read the notebook's x: another value, another answer
    assert ip["seen"] == [100, 7] and runs(ip) == 2


def test_an_unhashable_value_a_path_may_leave_makes_the_cell_run_and_says_so(ip: Shell) -> None:
    ip.run("import threading\nflag = False\nlock = threading.Lock()")
    cell = "%%memo unverifiable\nRUNS['n'] = RUNS.get('n', 0) + 1\nif flag:\n    lock = None\ny = 1"
    with pytest.warns(UserWarning, match="'lock' on some paths only"):
        ip.run(cell)
    ip.run(cell)
    assert runs(ip) == 2


# -- behaving like IPython's own magics: help, usage errors, tracebacks, bookkeeping names ---------


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def shown(capsys: pytest.CaptureFixture[str]) -> str:
    """Everything the shell printed, without colours."""
    captured = capsys.readouterr()
    return _ANSI.sub("", captured.out + captured.err)


_OPTIONS = ["--ttl", "--refresh", "--inputs", "--outputs", "--quiet"]
_SUBCOMMANDS = ["info", "clear [NAME]", "clear --stale", "off", "on", "dir [PATH]", "explain NAME"]


def test_question_mark_shows_every_option_and_subcommand(ip: Shell, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    ip.run("%memo?")
    text = shown(capsys)
    for word in [*_OPTIONS, *_SUBCOMMANDS, "%memo", "NAME", "run the cell and overwrite the entry"]:
        assert word in text, word


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_cell_help_prints_the_options_and_does_not_run_the_cell(
        ip: Shell, capsys: pytest.CaptureFixture[str], flag: str) -> None:
    capsys.readouterr()
    result = ip.run_raw(f"%%memo {flag}\nRUNS['n'] = RUNS.get('n', 0) + 1\nhelped = True")
    text = shown(capsys)
    assert result.success, text
    assert runs(ip) == 0 and "helped" not in ip.ip.user_ns
    assert "Traceback" not in text
    for word in [*_OPTIONS, *_SUBCOMMANDS]:
        assert word in text, word


def test_line_help_prints_the_options(ip: Shell, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    ip.run("%memo --help")
    text = shown(capsys)
    assert "--ttl" in text and "explain NAME" in text


def _cell_ttl(label: str) -> float | None:
    [cell] = [c for c in cells() if c.label == label]
    return cell.ttl


@pytest.mark.parametrize("ttl, seconds", [("3600", 3600.0), ("6h", 21600.0), ("90", 90.0)])
def test_ttl_option_reads_seconds_and_units(ip: Shell, ttl: str, seconds: float) -> None:
    ip.run(f"%%memo ttl_{ttl} --ttl {ttl}\nRUNS['n'] = RUNS.get('n', 0) + 1")
    assert _cell_ttl(f"ttl_{ttl}") == seconds and runs(ip) == 1


def test_a_bad_ttl_is_a_one_line_usage_error(ip: Shell, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    result = ip.run_raw("%%memo --ttl soon\nRUNS['n'] = RUNS.get('n', 0) + 1")
    text = shown(capsys)
    assert isinstance(result.error_in_exec, UsageError), text
    assert "soon" in text and "Traceback" not in text
    assert runs(ip) == 0


@pytest.mark.parametrize("line, unexpected", [
    ("info extra", "extra"), ("off now", "now"), ("on now", "now"), ("clear a b", "b"),
    ("clear --stale x", "x"), ("explain f g", "g"), ("dir a b", "b"), ("info --bogus", "--bogus"),
    ("clear --bogus", "--bogus"), ("off --force", "--force"),
])
def test_extra_words_after_a_subcommand_are_a_usage_error(ip: Shell, line: str, unexpected: str) -> None:
    result = ip.run_raw(f"%memo {line}")
    assert isinstance(result.error_in_exec, UsageError), line
    assert repr(unexpected) in str(result.error_in_exec) or unexpected in str(result.error_in_exec)
    ip.run("%%memo still_on\nRUNS['n'] = RUNS.get('n', 0) + 1")
    ip.run("%%memo still_on\nRUNS['n'] = RUNS.get('n', 0) + 1")
    assert runs(ip) == 1  # nothing ran: caching is still on


def test_an_unknown_cell_flag_is_a_usage_error(ip: Shell) -> None:
    result = ip.run_raw("%%memo --bogus\nRUNS['n'] = RUNS.get('n', 0) + 1")
    assert isinstance(result.error_in_exec, UsageError) and "--bogus" in str(result.error_in_exec)
    assert runs(ip) == 0


def test_a_syntax_error_in_a_cell_is_reported_as_in_an_ordinary_cell(
        ip: Shell, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    result = ip.run_raw("%%memo broken\ny = 1\nx = 1 +* 2\n")
    text = shown(capsys)
    assert isinstance(result.error_before_exec or result.error_in_exec, SyntaxError), text
    assert f"Cell In[{result.execution_count}], line 3" in text, text
    assert "x = 1 +* 2" in text and "^" in text
    assert "notebook_memo" not in text and "Traceback" not in text, text
    assert "y" not in ip.ip.user_ns


def test_an_unclosed_bracket_in_a_cell_is_reported_as_in_an_ordinary_cell(
        ip: Shell, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    result = ip.run_raw("%%memo\nx = (1,\n")
    text = shown(capsys)
    assert f"Cell In[{result.execution_count}], line 2" in text and "x = (1," in text, text
    assert "notebook_memo" not in text, text


def test_an_error_raised_in_a_cell_points_into_the_cell(ip: Shell, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    result = ip.run_raw("%%memo raising\ny = 1\ndef f():\n    raise ValueError('boom')\nf()\n")
    text = shown(capsys)
    assert isinstance(result.error_in_exec, ValueError)
    n = result.execution_count
    assert f"Cell In[{n}], line 5" in text and f"Cell In[{n}], line 4" in text, text
    assert "raise ValueError('boom')" in text and "ValueError: boom" in text
    assert "notebook_memo" not in text and "_cells.py" not in text and "_cell_exec.py" not in text, text


def test_the_restore_note_and_the_namespace_leave_out_shell_bookkeeping(
        ip: Shell, capsys: pytest.CaptureFixture[str]) -> None:
    cell = ("%%memo warns\nimport warnings\nRUNS['n'] = RUNS.get('n', 0) + 1\n"
            "warnings.warn('careful')\nvalue = 3\nvalue")
    with pytest.warns(UserWarning, match="careful"):
        ip.run(cell)
    assert "__warningregistry__" in ip.ip.user_ns  # the shell's bookkeeping, not the cell's output
    ip.run("del value")  # IPython drops __warningregistry__ itself as the next cell starts
    capsys.readouterr()
    ip.run(cell)
    note = [line for line in shown(capsys).splitlines() if line.startswith("[notebook_memo] restored")]
    assert runs(ip) == 1 and note == [note[0]]
    assert "value" in note[0] and "__warningregistry__" not in note[0], note
    assert "__warningregistry__" not in ip.ip.user_ns
    [entry] = [m for m in _entries() if m.get("label") == "warns"]
    assert entry["outputs"] == ["value", "warnings"]


def _entries() -> list[dict[str, Any]]:
    from notebook_memo import _config
    from notebook_memo.stores.local import get_store

    store = get_store(_config.resolve_dir(None), _config.resolve_size_limit())
    return [r.header.meta() for r in store.records()]


def test_the_not_stored_warning_names_every_variable_that_cannot_be_stored(
        ip: Shell, recwarn: pytest.WarningsRecorder) -> None:
    cell = ("%%memo unstorable\nimport threading\nRUNS['n'] = RUNS.get('n', 0) + 1\n"
            "numbers = (i for i in range(3))\nguard = threading.Lock()\nplain = [1, 2]")
    ip.run(cell)
    ip.run(cell)
    assert runs(ip) == 2
    notes = [str(w.message) for w in recwarn if "unstorable" in str(w.message)]
    assert notes and "'numbers'" in notes[0] and "'guard'" in notes[0] and "'plain'" not in notes[0], notes



def test_a_storage_error_while_looking_a_cell_up_runs_it_and_keeps_its_entry(ip: Shell,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3
    import warnings

    from notebook_memo import StorageWarning
    from notebook_memo.stores.local import Store

    ip.run("data = [1, 2, 3]\nweight = 2")
    ip.run(CELL)
    assert runs(ip) == 1
    real = {name: getattr(Store, name) for name in ("get", "delete", "put")}
    deleted: list[str] = []

    def locked(self: Store, key: str, *args: Any, **kwargs: Any) -> Any:
        raise sqlite3.OperationalError("database is locked")  # another kernel held the write lock too long

    monkeypatch.setattr(Store, "get", locked)
    monkeypatch.setattr(Store, "delete", lambda self, key: deleted.append(key) or True)
    monkeypatch.setattr(Store, "put", lambda self, *args, **kwargs: 0)  # nor can this run be stored
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ip.run(CELL)
    assert runs(ip) == 2 and deleted == []  # run, and the entry, which may be fine, is left alone
    said = [str(w.message) for w in caught if issubclass(w.category, StorageWarning)]
    assert said and "cannot read the cache" in said[0], said
    for name, method in real.items():
        monkeypatch.setattr(Store, name, method)
    ip.run(CELL)
    assert runs(ip) == 2  # the lock is gone: restored from the entry the first run stored
