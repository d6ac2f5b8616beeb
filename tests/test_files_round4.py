"""Files and the standard input, fourth round: data files and folders kept under ``/dev/shm`` (a tmpfs, not a
device); a Python file read as data through ``tokenize.open``; reads hidden by an in-memory cache
(``linecache.getline``, a helper wrapped in ``functools.lru_cache``); the standard input read through
``open(0)``, ``os.read(0, n)`` and ``/dev/stdin``.

Each test fails with a stale result served (in the same kernel or after a restart) or a read of the standard
input that gives no warning.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RUNS_SETUP, Shell, run_kernel

# -- data under /dev/shm ---------------------------------------------------------------------------------------


@pytest.fixture
def shm() -> Iterator[Path]:
    """A folder of the test's own in /dev/shm, the tmpfs where data is kept for speed."""
    folder = Path(tempfile.mkdtemp(prefix="memo_test_", dir="/dev/shm"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_a_data_file_in_dev_shm_changed_before_a_restart_is_read_again(shm: Path, cache_dir: Path) -> None:
    data = shm / "data.txt"
    cells = [RUNS_SETUP, f"""
        @memo
        def load():
            ran("load")
            with open({str(data)!r}) as f:
                return f.read()
        OUT["value"] = load()
        OUT["runs"] = RUNS
    """]
    data.write_text("one")
    assert run_kernel(cells, cache_dir, seed=1)["value"] == "one"
    data.write_text("two")
    second = run_kernel(cells, cache_dir, seed=2)
    assert second["value"] == "two"
    assert run_kernel(cells, cache_dir, seed=3)["runs"] == {}  # unchanged since: a hit


def test_a_folder_in_dev_shm_listed_by_a_body_is_listed_again_after_a_file_is_added(shell: Shell, shm: Path) -> None:
    (shm / "0.bin").write_text("a")
    shell.run(f"""
        import glob, os
        from notebook_memo import memo

        @memo
        def shards():
            return sorted(os.listdir({str(shm)!r}))

        @memo
        def matched():
            return sorted(glob.glob({str(shm)!r} + "/*.bin"))

        first = shards(), matched()
    """)
    (shm / "1.bin").write_text("b")
    shell.run("second = shards(), matched()")
    assert shell["first"] == (["0.bin"], [f"{shm}/0.bin"])
    assert shell["second"] == (["0.bin", "1.bin"], [f"{shm}/0.bin", f"{shm}/1.bin"])


def test_a_file_in_dev_shm_that_is_missing_and_then_made_is_read_again(shell: Shell, shm: Path) -> None:
    shell.run(f"""
        from notebook_memo import memo

        @memo
        def settings():
            try:
                with open({str(shm / "settings.txt")!r}) as f:
                    return f.read()
            except FileNotFoundError:
                return "defaults"

        first = settings()
    """)
    (shm / "settings.txt").write_text("mine")
    shell.run("second = settings()")
    assert (shell["first"], shell["second"]) == ("defaults", "mine")


def test_devices_are_still_no_data(shell: Shell) -> None:
    shell.run("""
        from notebook_memo import memo

        @memo
        def nothing():
            with open("/dev/null") as f:
                return f.read() + "x"

        nothing()
        info = nothing.cache_info()
    """)
    assert shell["info"].hits == 0
    shell.run("nothing(); info = nothing.cache_info()")
    assert shell["info"].hits == 1


# -- a Python file read as data --------------------------------------------------------------------------------

TOKENIZE_CELLS = [RUNS_SETUP, """
    import tokenize

    @memo
    def count_lines(path):
        ran("count_lines")
        with tokenize.open(path) as f:
            return len(f.read().splitlines())

    OUT["lines"] = count_lines("script_under_study.py")
    OUT["runs"] = RUNS
"""]


def test_a_python_file_read_through_tokenize_open_is_data_after_a_restart(tmp_path: Path, cache_dir: Path) -> None:
    script = tmp_path / "script_under_study.py"  # run_kernel runs in tmp_path
    script.write_text("x = 1\n")
    assert run_kernel(TOKENIZE_CELLS, cache_dir, seed=1)["lines"] == 1
    script.write_text("x = 1\ny = 2\nz = 3\n")
    assert run_kernel(TOKENIZE_CELLS, cache_dir, seed=2)["lines"] == 3
    assert run_kernel(TOKENIZE_CELLS, cache_dir, seed=3)["runs"] == {}


def test_python_files_read_by_the_users_code_through_source_readers_are_data(shell: Shell, tmp_path: Path) -> None:
    script = tmp_path / "study.py"
    script.write_text("x = 1\n")
    shell.run(f"""
        import linecache, tokenize
        from notebook_memo import memo

        @memo
        def first_line():
            linecache.checkcache({str(script)!r})
            return linecache.getline({str(script)!r}, 1)

        @memo
        def tokens():
            with tokenize.open({str(script)!r}) as f:
                return [t.string for t in tokenize.generate_tokens(f.readline) if t.string.strip()]

        before = first_line(), tokens()
    """)
    script.write_text("y = 22\n")
    shell.run("after = first_line(), tokens()")
    assert shell["before"] == ("x = 1\n", ["x", "=", "1"])
    assert shell["after"] == ("y = 22\n", ["y", "=", "22"])


def test_source_shown_by_inspect_in_a_body_reads_no_data(shell: Shell, tmp_path: Path) -> None:
    module = tmp_path / "shown_module.py"
    module.write_text("def fail():\n    raise ValueError('shown')\n")
    shell.run(f"""
        import importlib, inspect, sys
        sys.path.insert(0, {str(tmp_path)!r})
        from notebook_memo import memo

        @memo
        def shown(name):
            return inspect.getsource(importlib.import_module(name).fail).count("raise ValueError")

        shown("shown_module")
        with open({str(module)!r}, "a") as f:  # a comment added below: code read for display is no data
            f.write("# a note\\n")
        shown("shown_module")
        info = shown.cache_info()
        sys.path.remove({str(tmp_path)!r})
    """)
    assert shell["info"].hits == 1


# -- the standard input by other routes ------------------------------------------------------------------------

STDIN_ROUTES = {
    "open0": "open(0).read()",
    "open0_binary": "open(0, 'rb').read().decode()",
    "os_read": "os.read(0, 100).decode()",
    "os_read_fileno": "os.read(sys.stdin.fileno(), 100).decode()",
    "fdopen": "os.fdopen(0).read()",
    "dev_stdin": "open('/dev/stdin').read()",
    "dev_fd_0": "open('/dev/fd/0').read()",
    "name_at_run_time": "open(NAMES['stdin']).read()",  # no constant names it: seen as it is opened
}


@pytest.mark.parametrize("route", sorted(STDIN_ROUTES))
def test_reading_the_standard_input_by_a_file_descriptor_or_dev_stdin_warns(tmp_path: Path, cache_dir: Path,
                                                                             route: str) -> None:
    script = tmp_path / "ask.py"
    script.write_text(f"""
import os, sys, warnings
from notebook_memo import memo
NAMES = {{"stdin": "/dev/" + "stdin"}}

@memo
def ask():
    return {STDIN_ROUTES[route]}.strip()

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    answer = ask()
print("ANSWER", answer, "|".join(str(w.message) for w in caught))
""")
    env = {**os.environ, "NOTEBOOK_MEMO_DIR": str(cache_dir), "PYTHONPATH": str(Path(__file__).parent.parent)}
    out = subprocess.run([sys.executable, str(script)], input="typed\n", capture_output=True, text=True, env=env,
                         timeout=120, check=True).stdout
    assert "ANSWER typed" in out and "standard input" in out, out


# -- reads hidden by an in-memory cache ------------------------------------------------------------------------

LINECACHE_CELLS = [RUNS_SETUP, """
    import linecache, sys

    @memo
    def line(n):
        ran(f"line {n}")
        return linecache.getline("notes.txt", n).strip()
"""]


def test_lines_served_from_linecache_memory_keep_their_file_as_a_condition(tmp_path: Path, cache_dir: Path) -> None:
    notes = tmp_path / "notes.txt"  # run_kernel runs in tmp_path
    notes.write_text("one\ntwo\n")
    first = run_kernel([*LINECACHE_CELLS, "OUT['lines'] = [line(1), line(2)]"], cache_dir, seed=1)
    assert first["lines"] == ["one", "two"]  # line(2)'s run found the lines in linecache's memory
    notes.write_text("ONE\nTWO\n")
    second = run_kernel([*LINECACHE_CELLS, "OUT['lines'] = [line(2), line(1)]"], cache_dir, seed=2)
    assert second["lines"] == ["TWO", "ONE"]


def test_stale_lines_served_by_linecache_are_not_cached(tmp_path: Path, cache_dir: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("version one\n")
    first = run_kernel([*LINECACHE_CELLS, """
        OUT["before"] = line(1)
        with open("notes.txt", "w") as f:
            f.write("version two, longer\\n")
        OUT["after"] = line(1)  # run again (the file changed); linecache still holds the old line
    """], cache_dir, seed=1)
    assert (first["before"], first["after"]) == ("version one", "version one")
    assert any("linecache" in w for w in first["_warnings"]), first["_warnings"]
    second = run_kernel([*LINECACHE_CELLS, "OUT['line'] = line(1)"], cache_dir, seed=2)
    assert second["line"] == "version two, longer"


LRU_CELLS = [RUNS_SETUP, """
    import functools

    @functools.lru_cache(maxsize=None)
    def table():
        with open("prices.csv") as f:
            return dict(line.split(",") for line in f.read().split())

    @memo
    def price(item):
        ran(item)
        return table()[item]
"""]


def test_a_file_read_by_an_lru_cached_helper_is_a_condition_of_the_calls_it_serves(tmp_path: Path,
                                                                                   cache_dir: Path) -> None:
    prices = tmp_path / "prices.csv"  # run_kernel runs in tmp_path
    prices.write_text("a,1\nb,2\n")
    first = run_kernel([*LRU_CELLS, "OUT['prices'] = [price('a'), price('b')]"], cache_dir, seed=1)
    assert first["prices"] == ["1", "2"]  # price('b') found the table in the helper's cache: it opened no file
    prices.write_text("a,10\nb,20\n")
    second = run_kernel([*LRU_CELLS, "OUT['prices'] = [price('b'), price('a')]"], cache_dir, seed=2)
    assert second["prices"] == ["20", "10"]
    third = run_kernel([*LRU_CELLS, "OUT['prices'] = [price('b'), price('a')]; OUT['runs'] = RUNS"], cache_dir, seed=3)
    assert (third["prices"], third["runs"]) == (["20", "10"], {})


def test_an_lru_cached_helper_filled_outside_a_memoized_run_is_not_trusted(shell: Shell, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "prices.csv").write_text("a,1\nb,2\n")
    shell.run(LRU_CELLS[0])
    shell.run(LRU_CELLS[1])
    shell.run("""
        import warnings

        def _table():
            with open("prices.csv") as f:
                return dict(line.split(",") for line in f.read().split())

        # filled in the cell that makes it, under a name its frames do not run under: what it read is not seen
        table = functools.lru_cache(maxsize=None)(_table)
        table()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            first = price("a")
        found = [str(w.message) for w in caught if "table" in str(w.message)]
    """)
    assert shell["first"] == "1" and shell["found"], shell["found"]
    (tmp_path / "prices.csv").write_text("a,10\nb,20\n")
    shell.run("table.cache_clear(); second = price('a')")
    assert shell["second"] == "10"


def test_a_file_an_lru_cached_helper_read_before_it_changed_is_not_served_anew(shell: Shell, tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "prices.csv").write_text("a,1\nb,2\n")
    shell.run(LRU_CELLS[0])
    shell.run(LRU_CELLS[1])
    shell.run("first = price('a')")
    (tmp_path / "prices.csv").write_text("a,10\nb,20\n")
    shell.run("second = price('b')")  # served by the helper from the old file: not to be kept for later
    shell.run("table.cache_clear(); third = price('b')")
    assert (shell["first"], shell["second"], shell["third"]) == ("1", "2", "20")
