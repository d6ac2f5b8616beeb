"""What a hit leaves bound when an output looks at another object live: dict views, mapping proxies and
memoryviews of a cell's inputs (or of its other outputs) stay views of them, in a %%memo cell and in an
@memo result; a view a hit cannot give back as itself is not stored. Also the notebook functions a cell
puts in other containers read the live notebook after a hit, and the note a hit prints stays out of a
``%%capture`` around it. One notebook runs in real Jupyter kernels (nbclient) for all three."""

from __future__ import annotations

import array
import collections
import os
import types
import warnings
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from notebook_memo import _cells, _config, memo
from notebook_memo._errors import StorageWarning
from tests.conftest import ROOT, Shell, run_kernel, sessions_with_and_without_cache

HITS = """
from notebook_memo import _cells
OUT["cell hits"] = sum(c.hits for c in _cells._cells.values())
"""


def _hits() -> int:
    return sum(cell.hits for cell in _cells._cells.values())


# -- views of a cell's inputs ------------------------------------------------------------------


def test_dict_views_and_a_mapping_proxy_of_an_input_see_its_later_changes_after_a_hit(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo")
    shell.run("import types, collections\nd = {'a': 1}\nod = collections.OrderedDict(a=1)")
    cell = ("%%memo views\nks = d.keys()\nvs = d.values()\nits = d.items()\nmp = types.MappingProxyType(d)\n"
            "oks = od.keys()\n")
    shell.run(cell)
    shell.run(cell)  # a hit
    assert _hits() == 1
    shell.run("d['b'] = 2\nod['b'] = 2")
    assert sorted(shell["ks"]) == ["a", "b"]
    assert sorted(shell["vs"]) == [1, 2]
    assert sorted(shell["its"]) == [("a", 1), ("b", 2)]
    assert dict(shell["mp"]) == {"a": 1, "b": 2}
    assert list(shell["oks"]) == ["a", "b"]
    assert type(shell["oks"]) is type(collections.OrderedDict().keys())
    assert type(shell["mp"]) is types.MappingProxyType


def test_a_memoryview_of_an_input_stays_a_view_of_the_live_buffer_after_a_hit(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo")
    shell.run("import array\nbuf = bytearray(b'abcd')\nnums = array.array('i', [1, 2, 3])")
    cell = "%%memo\nmv = memoryview(buf)\nro = memoryview(buf).toreadonly()\nnv = memoryview(nums)\n"
    shell.run(cell)
    shell.run(cell)  # a hit
    assert _hits() == 1
    shell.run("buf[0] = ord('z')\nnums[0] = 9")
    mv, ro, nv = shell["mv"], shell["ro"], shell["nv"]
    assert (type(mv), type(ro), type(nv)) == (memoryview, memoryview, memoryview)
    assert (bytes(mv), mv.readonly) == (b"zbcd", False)
    assert (bytes(ro), ro.readonly) == (b"zbcd", True)
    assert (nv.format, nv.shape, nv.tolist()) == ("i", (3,), [9, 2, 3])
    mv[1] = ord("y")  # writes reach the notebook's buffer, as after the run
    assert shell["buf"] == bytearray(b"zycd")


def test_a_cast_memoryview_of_a_buffer_the_cell_made_keeps_its_format_and_its_buffer(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo")
    cell = "%%memo\nraw = bytearray(8)\nwords = memoryview(raw).cast('I', [2])\n"
    shell.run(cell)
    shell.run(cell)  # a hit
    assert _hits() == 1
    words, raw = shell["words"], shell["raw"]
    assert (type(words), words.format, words.shape) == (memoryview, "I", (2,))
    words[1] = 7
    assert words.obj is raw and raw != bytearray(8)


def test_a_memoryview_of_part_of_a_buffer_is_not_stored_and_the_cell_runs(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo")
    shell.run("buf = bytearray(b'abcd')\nruns = []")
    cell = "%%memo\nruns.append(1)\ntail = memoryview(buf)[1:]\n"
    with pytest.warns(StorageWarning, match="memoryview"):
        shell.run(cell)
    shell.run(cell)
    assert len(shell["runs"]) == 2
    assert type(shell["tail"]) is memoryview and bytes(shell["tail"]) == b"bcd"


def test_a_weak_proxy_is_not_stored_as_a_copy_of_what_it_points_to(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo")
    shell.run("import weakref\nclass Box: pass\nbox = Box()\nruns = []")
    cell = "%%memo\nruns.append(1)\np = weakref.proxy(box)\n"
    with pytest.warns(StorageWarning, match="weak"):
        shell.run(cell)
    shell.run(cell)
    assert len(shell["runs"]) == 2
    shell.run("box.y = 2")
    assert shell["p"].y == 2


def test_the_attributes_of_an_input_bound_by_vars_are_not_stored_as_a_copy(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo")
    shell.run("class Box: pass\nbox = Box()\nbox.x = 1\nruns = []")
    cell = "%%memo\nruns.append(1)\nattrs = vars(box)\n"
    with pytest.warns(StorageWarning, match="'attrs' is part of 'box'"):
        shell.run(cell)
    shell.run(cell)
    assert len(shell["runs"]) == 2
    assert shell["attrs"] is shell["box"].__dict__


def test_a_view_of_an_input_the_cell_changes_is_restored_with_it(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo")
    shell.run("d = {'a': 1}")
    cell = "%%memo\nd['b'] = 2\nks = d.keys()\n"
    shell.run(cell)
    shell.run("d = {'a': 1}")
    shell.run(cell)  # a hit
    assert _hits() == 1
    shell.run("d['c'] = 3")
    assert sorted(shell["ks"]) == ["a", "b", "c"]


def test_views_of_inputs_see_later_changes_after_a_restart(cache_dir: Path) -> None:
    cells = [
        "%load_ext notebook_memo",
        "import types\nd = {'a': 1}\nbuf = bytearray(b'abc')",
        "%%memo views\nks = d.keys()\nits = d.items()\nmp = types.MappingProxyType(d)\nmv = memoryview(buf)\n",
        "d['b'] = 2; buf[0] = ord('z')",
        "OUT['ks'] = sorted(ks); OUT['its'] = sorted(its); OUT['mp'] = dict(mp)\n"
        "OUT['mv'] = [type(mv).__name__, bytes(mv).decode(), mv.readonly]",
        HITS,
    ]
    plain, first, second = sessions_with_and_without_cache(cells, cache_dir)
    assert second["cell hits"] == 1
    for out in (plain, first, second):
        assert (out["ks"], out["its"], out["mp"]) == (["a", "b"], [["a", 1], ["b", 2]], {"a": 1, "b": 2})
        assert out["mv"] == ["memoryview", "zbc", False]


# -- @memo results -----------------------------------------------------------------------------


def test_a_memo_result_that_is_a_memoryview_comes_back_as_one() -> None:
    @memo
    def view() -> memoryview:
        return memoryview(bytearray(b"abc"))

    @memo
    def numbers() -> memoryview:
        return memoryview(array.array("d", [1.5, 2.5])).toreadonly()

    view(), numbers()
    again, nums = view(), numbers()  # hits
    assert view.cache_info().hits == 1 and numbers.cache_info().hits == 1
    assert (type(again), bytes(again), again.readonly) == (memoryview, b"abc", False)
    assert (type(nums), nums.format, nums.tolist(), nums.readonly) == (memoryview, "d", [1.5, 2.5], True)


def test_a_memo_result_holding_a_dict_view_holds_a_view_of_its_own_dict() -> None:
    @memo
    def table() -> tuple[dict[str, int], types.MappingProxyType[str, int], object]:
        d = {"a": 1}
        return d, types.MappingProxyType(d), d.keys()

    table()
    d, mp, ks = table()  # a hit
    d["b"] = 2
    assert dict(mp) == {"a": 1, "b": 2} and sorted(ks) == ["a", "b"]


def test_a_memo_result_that_is_a_memoryview_comes_back_as_one_after_a_restart(cache_dir: Path) -> None:
    cells = ["""
from notebook_memo import _cells, memo
@memo
def view():
    return memoryview(bytearray(b'abc'))
r = view()
OUT['r'] = [type(r).__name__, bytes(r).decode(), r.readonly, view.cache_info().hits]
"""]
    first = run_kernel(cells, cache_dir, seed=1)
    second = run_kernel(cells, cache_dir, seed=2)
    assert first["r"] == ["memoryview", "abc", False, 0]
    assert second["r"] == ["memoryview", "abc", False, 1]


def test_a_memo_result_that_is_part_of_a_buffer_is_returned_but_not_cached() -> None:
    @memo
    def tail() -> memoryview:
        return memoryview(bytearray(b"abc"))[1:]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = tail()
        second = tail()
    assert bytes(first) == bytes(second) == b"bc" and type(second) is memoryview
    assert tail.cache_info().misses == 2
    assert any(w.category is StorageWarning and "memoryview of part of a buffer" in str(w.message) for w in caught)


# -- functions a cell defines, held in other containers ---------------------------------------

CONTAINERS = """%%memo defs
import collections, types
def f():
    return SCALE
class Plain:
    pass
class Registry(dict):
    pass
reg = Registry(k=f)
ud = collections.UserDict(k=f)
dd = collections.defaultdict(f)
od = collections.OrderedDict(k=f)
dq = collections.deque([f], maxlen=3)
ch = collections.ChainMap({'k': f})
bm = types.MethodType(lambda self: SCALE, Plain())
bf = types.MethodType(f, 1)
"""
READ_CONTAINERS = """OUT['calls'] = [f(), dd['x'], od['k'](), dq[0](), ch['k'](), bm(), bf.__func__(), reg['k'](),
                ud['k']()]
OUT['same'] = [dd.default_factory is f, od['k'] is f, dq[0] is f, ch['k'] is f, bf.__func__ is f, reg['k'] is f,
               ud['k'] is f]
OUT['kept'] = [dq.maxlen, type(od).__name__, type(bm.__self__).__name__]"""


def test_functions_in_other_containers_read_the_live_notebook_after_a_hit(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo")
    shell.run("SCALE = 1")
    shell.run(CONTAINERS)
    shell.run(CONTAINERS)  # a hit
    assert _hits() == 1
    shell.run("SCALE = 2")
    shell.run("OUT = {}\n" + READ_CONTAINERS)
    assert shell["OUT"]["calls"] == [2] * 9
    assert shell["OUT"]["same"] == [True] * 7
    assert shell["OUT"]["kept"] == [3, "OrderedDict", "Plain"]


def test_functions_in_other_containers_read_the_live_notebook_after_a_restart(cache_dir: Path) -> None:
    cells = ["%load_ext notebook_memo", "SCALE = 1", CONTAINERS, "SCALE = 2", READ_CONTAINERS, HITS]
    plain, first, second = sessions_with_and_without_cache(cells, cache_dir)
    assert second["cell hits"] == 1
    for out in (plain, first, second):
        assert out["calls"] == [2] * 9
        assert out["same"] == [True] * 7
        assert out["kept"] == [3, "OrderedDict", "Plain"]


# -- the note a hit prints ---------------------------------------------------------------------

CAPTURED = "%%capture cap\n%%memo m5\nprint('hello5')\na5 = 5\n"


def test_a_capture_around_a_hit_holds_the_cell_s_output_only(shell: Shell, capsys: pytest.CaptureFixture[str]) -> None:
    shell.run("%load_ext notebook_memo")
    shell.run(CAPTURED)
    shell.run(CAPTURED)  # a hit
    assert _hits() == 1
    assert shell["cap"].stdout == "hello5\n"
    assert "[notebook_memo]" not in capsys.readouterr().out
    shell.run("%%memo m5\nprint('hello5')\na5 = 5\n")  # a hit not captured still says where it came from
    assert "[notebook_memo] restored a5 from the cache" in capsys.readouterr().out


def test_a_hit_run_with_its_output_redirected_to_memory_keeps_the_note_out(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo")
    shell.run("%%memo m6\nprint('hello6')\na6 = 6\n")
    shell.run("import contextlib, io\nbuf = io.StringIO()\nwith contextlib.redirect_stdout(buf):\n"
              "    get_ipython().run_cell(\"%%memo m6\\nprint('hello6')\\na6 = 6\\n\")\n")
    assert _hits() == 1
    assert shell["buf"].getvalue() == "hello6\n"


def test_a_capture_around_a_hit_after_a_restart_holds_the_cell_s_output_only(cache_dir: Path) -> None:
    cells = ["%load_ext notebook_memo", CAPTURED, "OUT['cap'] = cap.stdout", HITS]
    first = run_kernel(cells, cache_dir, seed=2)
    second = run_kernel(cells, cache_dir, seed=3)
    assert (first["cap"], second["cap"], second["cell hits"]) == ("hello5\n", "hello5\n", 1)


# -- a real notebook ---------------------------------------------------------------------------


def test_a_notebook_restarted_sees_its_live_inputs_and_globals_through_restored_outputs(
        tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cells = [
        "%load_ext notebook_memo",
        "SCALE = 1\nd = {'a': 1}\nbuf = bytearray(b'abc')",
        "%%capture cap\n%%memo defs\nimport collections\ndef f(): return SCALE\n"
        "registry = collections.OrderedDict(f=f)\nks = d.keys()\nmv = memoryview(buf)\nprint('made')",
        "SCALE = 2; d['b'] = 2; buf[0] = ord('z')",
        "print(registry['f'](), registry['f'] is f, sorted(ks), type(mv).__name__, bytes(mv), repr(cap.stdout))",
        "from notebook_memo import _cells\nprint(sum(c.hits for c in _cells._cells.values()))",
    ]
    monkeypatch.setenv(_config.ENV_DIR, str(cache_dir))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    last = []
    for seed in ("1", "2"):  # the second run is a restarted kernel, with another hash seed
        monkeypatch.setenv("PYTHONHASHSEED", seed)
        notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
        NotebookClient(notebook, timeout=120, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
        last.append(["".join(o.get("text", "") for o in cell.outputs) for cell in notebook.cells[-2:]])
    assert last[0] == ["2 True ['a', 'b'] memoryview b'zbc' 'made\\n'\n", "0\n"]
    assert last[1] == [last[0][0], "1\n"]
