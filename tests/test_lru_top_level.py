"""A notebook's ``functools.lru_cache`` loader filled at the notebook's top level before a memoized call uses it.

The common shape: ``@lru_cache def load_table(): return pd.read_csv(...)``, then ``df = load_table(); df.head()``
to look at the data, then ``@memo`` functions whose bodies call ``load_table()``. In IPython what such a loader
reads at the top level is seen from the import of notebook_memo on (in the cell that defines it, in a later cell,
in a pool's threads), so those calls are stored and hit after a restart, and a changed file still makes them run
again. What was filled where its reads were not seen (before the import, or in a plain script before the first
memoized call) is still refused, with a warning that says what to do.

Each test fails with the result left uncached (a false miss in every kernel) or with a stale result served.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, RUNS_SETUP, Shell, run_kernel

LOADER = """
    import functools

    @functools.lru_cache
    def load(name):
        with open(name) as f:
            return f.read()
"""

SHOW = """
    @memo
    def show(name):
        ran(name)
        return "<" + load(name) + ">"
"""


@pytest.fixture
def notebook(shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shell]:
    """The shell, in tmp_path, with notebook_memo loaded as a notebook's import loads it (the test process imported
    it before any shell ran: ``%load_ext`` does what that import does in a kernel)."""
    monkeypatch.chdir(tmp_path)
    shell.run("%load_ext notebook_memo")
    yield shell
    shell.run("%unload_ext notebook_memo")


def _warned(shell: Shell, source: str) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shell.run(source)
    return [str(w.message) for w in caught if "cache_clear()" in str(w.message)]


def _outcome(out: dict[str, object]) -> tuple[object, list[object], list[object]]:
    """The value, the memoized function's [hits, misses] and its lru_cache warnings from a kernel's OUT."""
    warned = [w for w in out["_warnings"] if "lru_cache" in str(w)]  # type: ignore[attr-defined]
    return out["value"], out["info"], warned  # type: ignore[return-value]


# -- in one kernel ------------------------------------------------------------------------------------------------


def test_a_loader_filled_at_top_level_in_a_later_cell_is_stored(notebook: Shell, tmp_path: Path) -> None:
    (tmp_path / "d.txt").write_text("D1")
    notebook.run(RUNS_SETUP)
    notebook.run(LOADER)
    notebook.run("df = load('d.txt')")  # a look at the data, at the top level
    notebook.run(SHOW)
    assert _warned(notebook, "first = show('d.txt')") == []
    assert _warned(notebook, "again = show('d.txt')") == []
    assert (notebook["first"], notebook["again"], notebook["RUNS"]) == ("<D1>", "<D1>", {"d.txt": 1})


def test_a_loader_defined_and_filled_in_one_cell_is_stored(notebook: Shell, tmp_path: Path) -> None:
    (tmp_path / "d.txt").write_text("D1")
    notebook.run(RUNS_SETUP)
    notebook.run(LOADER + "\n    df = load('d.txt')\n")
    notebook.run(SHOW)
    assert _warned(notebook, "first = show('d.txt')") == []
    notebook.run("show('d.txt')")
    assert notebook["RUNS"] == {"d.txt": 1}


def test_a_loader_reading_in_a_pool_defined_and_filled_in_one_cell_is_stored(notebook: Shell, tmp_path: Path) -> None:
    (tmp_path / "d.txt").write_text("D1")
    notebook.run(RUNS_SETUP)
    notebook.run("""
        import concurrent.futures
        import functools

        @functools.lru_cache
        def load(name):
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                return pool.submit(lambda: open(name).read()).result()

        df = load('d.txt')
    """)
    notebook.run(SHOW)
    assert _warned(notebook, "first = show('d.txt')") == []
    (tmp_path / "d.txt").write_text("D2, changed")
    notebook.run("load.cache_clear()")
    assert _warned(notebook, "second = show('d.txt')") == []
    assert (notebook["first"], notebook["second"]) == ("<D1>", "<D2, changed>")


def test_a_loader_cell_run_again_in_a_kernel_naming_cells_by_their_text_is_stored(notebook: Shell, tmp_path: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch
                                                                                 ) -> None:
    # ipykernel names a cell's file by its text: the cell run again makes a new loader whose code equals the old's.
    from ipykernel.compiler import XCachingCompiler

    monkeypatch.setattr(notebook.ip, "compile", XCachingCompiler())
    (tmp_path / "d.txt").write_text("D1")
    notebook.run(RUNS_SETUP)
    cell = LOADER + "\n    df = load('d.txt')\n"
    notebook.run(cell)
    notebook.run(SHOW)
    assert _warned(notebook, "first = show('d.txt')") == []
    notebook.run("load")  # shown: the output history keeps the old loader alive
    (tmp_path / "d.txt").write_text("D2, changed")
    notebook.run(cell)  # the data changed: the loader's cell is run again
    assert _warned(notebook, "second = show('d.txt')") == []
    notebook.run("show('d.txt')")
    assert (notebook["first"], notebook["second"], notebook["RUNS"]) == ("<D1>", "<D2, changed>", {"d.txt": 2})


def test_a_file_changed_after_the_top_level_fill_is_still_refused(notebook: Shell, tmp_path: Path) -> None:
    # The README: a function whose file changed since it read it leaves the result uncached, with a warning to call
    # its cache_clear(); it serves the old content, and that is not stored under the new file.
    (tmp_path / "d.txt").write_text("D1")
    notebook.run(RUNS_SETUP)
    notebook.run(LOADER)
    notebook.run("df = load('d.txt')")
    notebook.run(SHOW)
    (tmp_path / "d.txt").write_text("D2, changed")
    found = _warned(notebook, "stale = show('d.txt')")
    assert notebook["stale"] == "<D1>" and found and "has changed since" in found[0] and "cache_clear()" in found[0]
    notebook.run("load.cache_clear()")
    assert _warned(notebook, "fresh = show('d.txt')") == []
    notebook.run("show('d.txt')")
    assert notebook["fresh"] == "<D2, changed>" and notebook["RUNS"] == {"d.txt": 2}


def test_an_aliased_loader_filled_at_top_level_in_a_later_cell_is_stored(notebook: Shell, tmp_path: Path) -> None:
    # lru_cache(_read) under another name: its frames do not name it, but the cell after the one that made it
    # finds it empty in the notebook's namespace and watches it from there.
    (tmp_path / "d.txt").write_text("D1")
    notebook.run(RUNS_SETUP)
    notebook.run("""
        import functools

        def _read(name):
            with open(name) as f:
                return f.read()

        load = functools.lru_cache(_read)
    """)
    notebook.run("df = load('d.txt')")
    notebook.run(SHOW)
    assert _warned(notebook, "show('d.txt')") == []


def test_an_aliased_loader_filled_in_the_cell_that_made_it_is_refused(notebook: Shell, tmp_path: Path) -> None:
    # Nothing names it while that cell fills it, so what it read was not seen: refused, and the warning says how
    # to have it seen.
    (tmp_path / "d.txt").write_text("D1")
    notebook.run(RUNS_SETUP)
    notebook.run("""
        import functools

        def _read(name):
            with open(name) as f:
                return f.read()

        load = functools.lru_cache(_read)
        df = load('d.txt')
    """)
    notebook.run(SHOW)
    found = _warned(notebook, "show('d.txt')")
    assert found and "cell of its own" in found[0] and "cache_clear()" in found[0], found


# -- across kernels -----------------------------------------------------------------------------------------------

# The probe's notebook: the import, the loader and the look at the data in one cell.
ONE_CELL = """
    from notebook_memo import memo
    import functools

    @functools.lru_cache(maxsize=None)
    def load_table(name="data.csv"):
        with open(name) as f:
            return [line.split(",") for line in f.read().split()]

    df = load_table()
    df[:2]
"""
MEANS = """
    @memo
    def group_sum(g):
        return sum(float(v) for k, v in load_table() if k == g)
"""
CALL = "OUT['value'] = group_sum('a'); OUT['info'] = list(group_sum.cache_info()[:2])"


def test_a_loader_filled_in_the_cell_that_defines_it_hits_after_a_restart(cache_dir: Path) -> None:
    data = cache_dir.parent / "data.csv"  # run_kernel runs in tmp_path
    data.write_text("a,1\nb,2\na,3\n")
    cells = [ONE_CELL, MEANS, CALL]
    assert _outcome(run_kernel(cells, cache_dir, seed=1)) == (4.0, [0, 1], [])
    assert _outcome(run_kernel(cells, cache_dir, seed=2)) == (4.0, [1, 0], [])
    data.write_text("a,10\nb,2\na,3\n")
    assert _outcome(run_kernel(cells, cache_dir, seed=3)) == (13.0, [0, 1], [])


def test_a_loader_filled_in_a_later_cell_hits_after_a_restart(cache_dir: Path) -> None:
    data = cache_dir.parent / "data.csv"
    data.write_text("a,1\nb,2\n")
    define = ONE_CELL.split("    df = load_table()")[0]
    cells = [define, "df = load_table()\ndf[:2]", MEANS, CALL]
    assert _outcome(run_kernel(cells, cache_dir, seed=1)) == (1.0, [0, 1], [])
    assert _outcome(run_kernel(cells, cache_dir, seed=2)) == (1.0, [1, 0], [])
    data.write_text("a,5\nb,2\n")
    assert _outcome(run_kernel(cells, cache_dir, seed=3)) == (5.0, [0, 1], [])


def test_a_loader_of_a_user_module_filled_at_top_level_hits_after_a_restart(cache_dir: Path) -> None:
    # Its frames run in the module's namespace, where its name is the wrapper: found there at its first read.
    (cache_dir.parent / "loaders.py").write_text(textwrap.dedent(LOADER))
    data = cache_dir.parent / "d.txt"
    data.write_text("D1")
    cells = [RUNS_SETUP, "from loaders import load\ndf = load('d.txt')", SHOW,
             "OUT['value'] = show('d.txt'); OUT['info'] = list(show.cache_info()[:2])"]
    assert _outcome(run_kernel(cells, cache_dir, seed=1)) == ("<D1>", [0, 1], [])
    assert _outcome(run_kernel(cells, cache_dir, seed=2)) == ("<D1>", [1, 0], [])
    data.write_text("D2, changed")
    assert _outcome(run_kernel(cells, cache_dir, seed=3)) == ("<D2, changed>", [0, 1], [])


def test_a_loader_filled_before_the_import_is_still_refused(cache_dir: Path) -> None:
    data = cache_dir.parent / "data.csv"
    data.write_text("a,1\nb,2\n")
    fill_first = ONE_CELL.replace("from notebook_memo import memo", "")
    value, info, warned = _outcome(run_kernel([fill_first, "from notebook_memo import memo", MEANS, CALL],
                                              cache_dir, seed=1))
    assert (value, info) == (1.0, [0, 1]) and warned and "load_table.cache_clear()" in str(warned[0]), warned
    data.write_text("a,5\nb,2\n")
    assert _outcome(run_kernel([ONE_CELL, MEANS, CALL], cache_dir, seed=2))[0] == 5.0


SCRIPT = """
import functools, sys, warnings
warnings.simplefilter("always")
from notebook_memo import memo

@functools.lru_cache
def load(name):
    with open(name) as f:
        return f.read()

df = load("d.txt")

@memo
def show(name):
    return "<" + load(name) + ">"

with warnings.catch_warnings(record=True) as caught:
    print(show("d.txt"), [str(w.message) for w in caught if "lru_cache" in str(w.message)])
"""


def test_a_plain_script_still_refuses_a_loader_filled_before_its_first_memoized_call(tmp_path: Path) -> None:
    # No IPython: nothing watches the script's top level before a memoized call meets the loader.
    (tmp_path / "d.txt").write_text("D1")
    (tmp_path / "script.py").write_text(SCRIPT)
    proc = subprocess.run([sys.executable, "script.py"], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "NOTEBOOK_MEMO_DIR": str(tmp_path / "cache"),
                               "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("<D1> ['show: its result is not cached: it calls load"), proc.stdout


def test_a_loader_lacking_its_wrapped_attribute_still_reads(notebook: Shell, tmp_path: Path) -> None:
    # Its name is looked up at every read at the top level, inside the audit hook, where an error fails the open().
    (tmp_path / "d.txt").write_text("D1")
    notebook.run(LOADER + "\n    del load.__wrapped__\n    df = load('d.txt')\n")
    assert notebook["df"] == "D1"
