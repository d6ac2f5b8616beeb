"""Dependencies that are not code, fifth round: declared files and folders (``files=``, ``memo.depends_on_file``)
and glob patterns that another process changes while the body runs, after the body read them; a folder listed with
its files' sizes or times where a file grows or is touched while the body runs; environment variables read
through ``os.environ.setdefault``, ``__getitem__`` and ``__contains__``; clock reads through ``pd.Period.now``, a
``functools.partial`` of ``datetime.now`` and the text "now" or "today" given to NumPy or pandas; files torch
maps in C++ (``torch.from_file``, the storages' ``from_file``); files and programs named on the command line of a
process the body starts; a library loaded with ctypes that is rebuilt between kernels.

Each test fails with a result served for content the body never saw (a stale hit), or with no warning where the
library cannot tell.
"""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.conftest import RUNS_SETUP, Shell, run_kernel

# -- dependencies changed while the body runs ------------------------------------------------------------------

# What another process does while the body runs: a tool that reads the data (which Python's open does not see),
# then a pipeline step that changes it. It is run by the body itself, so the change falls inside the run with no
# timing assumed; the path goes through the environment, not the command line.
_CHANGE_DURING = """
import glob, os, subprocess, warnings
from notebook_memo import memo

class Runs(list):
    def __memo_key__(self):
        return "runs"

RUNS = Runs()

def tool(script, path):
    RUNS.append(1)
    return subprocess.run(["sh", "-c", script], env={**os.environ, "T": path}, capture_output=True, text=True).stdout
"""


def _two_calls(shell: Shell, body: str) -> tuple[object, object, list[str]]:
    """Define ``f`` with ``body`` after the shared prelude, call it twice; return both results and the warnings."""
    shell.run(_CHANGE_DURING + textwrap.dedent(body) + textwrap.dedent("""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            first = f()
        second = f()
        found = [str(w.message) for w in caught]
    """))
    return shell["first"], shell["second"], shell["found"]


@pytest.mark.parametrize("declare", ["files", "depends_on_file"])
def test_a_declared_file_changed_by_another_process_while_the_body_runs_is_not_served(
        shell: Shell, tmp_path: Path, declare: str) -> None:
    data = tmp_path / "decl.bin"
    data.write_text("AAAA")
    head = f"@memo(files=[{str(data)!r}])\ndef f():\n    p = {str(data)!r}\n" if declare == "files" else \
        f"@memo\ndef f():\n    p = memo.depends_on_file({str(data)!r})\n"
    first, second, found = _two_calls(shell, head + "    return tool('cat \"$T\"; printf BBBB > \"$T\"', p)\n")
    assert (first, second) == ("AAAA", "BBBB")
    assert any("changed while it ran" in message for message in found), found


@pytest.mark.parametrize("declare", ["files", "depends_on_file"])
def test_a_declared_folder_given_a_file_by_another_process_while_the_body_runs_is_not_served(
        shell: Shell, tmp_path: Path, declare: str) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    head = f"@memo(files=[{str(folder)!r}])\ndef f():\n    p = {str(folder)!r}\n" if declare == "files" else \
        f"@memo\ndef f():\n    p = memo.depends_on_file({str(folder)!r})\n"
    first, second, found = _two_calls(shell, head + "    return tool('ls \"$T\"; printf b > \"$T/b.txt\"', p)\n")
    assert (first, second) == ("a.txt\n", "a.txt\nb.txt\n")
    assert any("changed while it ran" in message for message in found), found


def test_a_declared_file_removed_by_another_process_while_the_body_runs_is_not_served(
        shell: Shell, tmp_path: Path) -> None:
    data = tmp_path / "decl.bin"
    data.write_text("AAAA")
    first, second, found = _two_calls(shell, f"""
        @memo(files=[{str(data)!r}])
        def f():
            return tool('cat "$T" 2>/dev/null; rm -f "$T"', {str(data)!r})
    """)
    assert (first, second) == ("AAAA", "")
    assert any("while it ran" in message for message in found), found


def test_a_declared_file_made_by_another_process_while_the_body_runs_is_not_served(
        shell: Shell, tmp_path: Path) -> None:
    data = tmp_path / "decl.bin"
    first, second, found = _two_calls(shell, f"""
        @memo
        def f():
            p = memo.depends_on_file({str(data)!r})
            return tool('cat "$T" 2>/dev/null; printf NEW > "$T"', p)
    """)
    assert (first, second) == ("", "NEW")
    assert any("while it ran" in message for message in found), found


@pytest.mark.parametrize("declared", [False, True])
def test_a_glob_pattern_matched_anew_while_the_body_runs_is_not_served(
        shell: Shell, tmp_path: Path, declared: bool) -> None:
    for part in ("s1", "s2"):  # both there: the pattern tests a name in each, which lists neither
        (tmp_path / "data" / part).mkdir(parents=True)
    (tmp_path / "data" / "s1" / "x.csv").write_text("1")
    pattern = str(tmp_path / "data" / "*" / "x.csv")
    first, second, found = _two_calls(shell, f"""
        @memo{f"(files=[{pattern!r}])" if declared else ""}
        def f():
            n = len(glob.glob({pattern!r}))
            tool('printf 2 > "$T/s2/x.csv"', {str(tmp_path / "data")!r})
            return n
    """)
    assert (first, second) == (1, 2)
    assert any("while it ran" in message for message in found), found


def test_a_declared_folder_the_body_writes_into_is_still_served(shell: Shell, tmp_path: Path) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    first, second, found = _two_calls(shell, f"""
        @memo(files=[{str(folder)!r}])
        def f():
            RUNS.append(1)
            with open(os.path.join({str(folder)!r}, "out.txt"), "w") as fh:
                fh.write("made by the body")
            return 1
    """)
    assert (first, second, len(shell["RUNS"])) == (1, 1, 1), found


# -- sizes read while a file grows --------------------------------------------------------------------------------

@pytest.mark.parametrize("read, change", [
    ("sum(os.path.getsize(os.path.join(d, name)) for name in os.listdir(d))", 'printf yyyyy >> "$T/a.bin"'),
    ("max(entry.stat().st_mtime_ns for entry in os.scandir(d))", 'touch -d "2001-01-01" "$T/a.bin"'),
], ids=["size", "time"])
def test_a_folder_listed_with_sizes_where_a_file_changes_while_the_body_runs_is_not_served(
        shell: Shell, tmp_path: Path, read: str, change: str) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"x" * 10)
    first, second, found = _two_calls(shell, f"""
        @memo
        def f():
            d = {str(folder)!r}
            n = {read}
            tool({change!r}, d)
            return n
    """)
    assert first != second
    assert any("while it ran" in message for message in found), found


# -- environment variables read through os.environ's other methods ------------------------------------------------

_ENV_READS = {
    "setdefault": 'os.environ.setdefault("MEMO_R5_TAG", "default")',
    "getitem": 'os.environ.__getitem__("MEMO_R5_TAG")',
    "contains": 'str(os.environ.__contains__("MEMO_R5_TAG")) + os.environ.get("MEMO_R5_OTHER", "")',
}


@pytest.mark.parametrize("read", ["setdefault", "getitem"])
def test_a_variable_read_through_an_environ_method_is_keyed_across_kernels(cache_dir: Path, read: str) -> None:
    cells = [RUNS_SETUP, f"""
        import os

        @memo
        def tag():
            ran("tag")
            return "tag=" + {_ENV_READS[read]}

        OUT["value"] = tag()
        OUT["runs"] = RUNS
    """]
    assert run_kernel(cells, cache_dir, seed=1, env={"MEMO_R5_TAG": "alpha"})["value"] == "tag=alpha"
    assert run_kernel(cells, cache_dir, seed=2, env={"MEMO_R5_TAG": "beta"})["value"] == "tag=beta"
    assert run_kernel(cells, cache_dir, seed=3, env={"MEMO_R5_TAG": "beta"})["runs"] == {}  # the same: a hit


def test_a_variable_tested_through_environ_contains_is_keyed_in_one_kernel(
        shell: Shell, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEMO_R5_TAG", raising=False)
    shell.run(f"""
        import os
        from notebook_memo import memo

        @memo
        def flag():
            return {_ENV_READS["contains"]}

        first = flag()
        os.environ["MEMO_R5_TAG"] = "on"
        second = flag()
        del os.environ["MEMO_R5_TAG"]
    """)
    assert (shell["first"], shell["second"]) == ("False", "True")


def test_a_variable_environ_setdefault_sets_is_set_again_by_the_next_call(
        shell: Shell, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEMO_R5_TAG", raising=False)
    shell.run(f"""
        import os
        from notebook_memo import memo

        @memo
        def tag():
            return {_ENV_READS["setdefault"]}

        first = tag()
        del os.environ["MEMO_R5_TAG"]
        second = tag()
        after = os.environ.pop("MEMO_R5_TAG", None)
    """)
    assert (shell["first"], shell["second"], shell["after"]) == ("default", "default", "default")

# -- clock reads that a cached result goes stale with -------------------------------------------------------------

@pytest.mark.parametrize("read", [
    'str(pd.Period.now("s"))',
    'NOW().isoformat()',  # a global functools.partial of datetime.now
    'str(pd.date_range(end="now", periods=1, freq="s")[0])',
    'str(np.array(["now"], dtype="datetime64[s]")[0])',
    'str(pd.Series(["today"]).astype("datetime64[ns]")[0])',
], ids=["period", "partial", "date_range", "array", "series"])
def test_a_clock_read_by_another_route_warns_that_the_result_will_not_change(shell: Shell, read: str) -> None:
    shell.run(f"""
        import datetime, functools, warnings
        import numpy as np
        import pandas as pd
        from notebook_memo import memo

        NOW = functools.partial(datetime.datetime.now, datetime.timezone.utc)

        @memo
        def stamp():
            return {read}

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            stamp()
        found = [str(w.message) for w in caught]
    """)
    assert any("reads the clock" in message and "ttl=" in message for message in shell["found"]), shell["found"]


# -- files read in C++ with no audit event ------------------------------------------------------------------------

@pytest.mark.parametrize("read", [
    "int(torch.from_file(path, size=4, dtype=torch.int64).sum())",
    "sum(torch.UntypedStorage.from_file(path, False, 32).tolist())",
    "int(torch.LongStorage.from_file(path, False, 4).tolist()[0])",
], ids=["from_file", "untyped_storage", "typed_storage"])
def test_a_file_torch_maps_changed_since_is_read_again(shell: Shell, tmp_path: Path, read: str) -> None:
    data = tmp_path / "raw.bin"
    data.write_bytes((1).to_bytes(8, "little") * 4)
    shell.run(f"""
        import warnings
        import torch
        from notebook_memo import memo

        @memo
        def total(path):
            return {read}

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TypedStorage is deprecated
            first = total({str(data)!r})
    """)
    data.write_bytes((2).to_bytes(8, "little") * 4)  # the same size
    shell.run(f"""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            second = total({str(data)!r})
    """)
    assert shell["first"] != shell["second"]


# -- files named on the command line of a process the body starts -------------------------------------------------

# The children get an environment of their own: what they inherit is checked otherwise (and the kernels differ in
# PYTHONHASHSEED).
_SPAWNING = [RUNS_SETUP, """
    import os, subprocess
    ENV = {"PATH": os.environ["PATH"]}

    @memo
    def run_tool():
        ran("tool")
        return subprocess.run(["./tool.sh"], capture_output=True, text=True, env=ENV).stdout.strip()

    @memo
    def cat_data():
        ran("cat")
        return subprocess.run(["cat", "data.txt"], capture_output=True, text=True, env=ENV).stdout.strip()

    @memo
    def shell_line():
        ran("shell")
        return subprocess.run("wc -c < data.txt", shell=True, capture_output=True, text=True, env=ENV).stdout.strip()

    OUT["values"] = [run_tool(), cat_data(), shell_line()]
    OUT["runs"] = RUNS
"""]


def test_a_program_and_a_file_named_on_a_child_s_command_line_changed_before_a_restart_run_again(
        cache_dir: Path) -> None:
    folder = cache_dir.parent  # where run_kernel's kernels run
    tool, data = folder / "tool.sh", folder / "data.txt"
    tool.write_text("#!/bin/sh\necho v1\n")
    tool.chmod(0o755)
    data.write_text("d1\n")
    assert run_kernel(_SPAWNING, cache_dir, seed=1)["values"] == ["v1", "d1", "3"]
    tool.write_text("#!/bin/sh\necho v2\n")
    data.write_text("d22\n")
    assert run_kernel(_SPAWNING, cache_dir, seed=2)["values"] == ["v2", "d22", "4"]
    assert run_kernel(_SPAWNING, cache_dir, seed=3)["runs"] == {}  # unchanged since: hits


def test_a_file_a_child_writes_that_is_named_on_its_command_line_is_its_output(shell: Shell, tmp_path: Path) -> None:
    source, made = tmp_path / "in.txt", tmp_path / "out.txt"
    source.write_text("one")
    made.write_text("from an earlier run")
    shell.run(f"""
        import subprocess, warnings
        from notebook_memo import memo

        class Runs(list):
            def __memo_key__(self):
                return "runs"

        RUNS = Runs()

        @memo
        def copy():
            RUNS.append(1)
            subprocess.run(["cp", {str(source)!r}, {str(made)!r}], check=True)
            return "copied"

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            copy(); copy()
        found = [str(w.message) for w in caught]
    """)
    assert len(shell["RUNS"]) == 1, shell["found"]  # stored, then a hit: the copy is no input
    source.write_text("two")
    shell.run("copy()")
    assert len(shell["RUNS"]) == 2 and made.read_text() == "two"


# -- a compiled library loaded with ctypes ------------------------------------------------------------------------

def _build(folder: Path, answer: int) -> Path:
    """Compile a shared library whose ``k(x)`` returns ``x + answer``."""
    source = folder / "k.c"
    source.write_text(f"int k(int x) {{ return x + {answer}; }}\n")
    library = folder / "libk.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    return library


def test_a_ctypes_library_rebuilt_before_a_restart_is_called_again(cache_dir: Path, tmp_path: Path) -> None:
    library = _build(tmp_path, 1)
    cells = [RUNS_SETUP, f"""
        import ctypes
        LIB = ctypes.CDLL({str(library)!r})

        @memo
        def compute(x):
            ran("compute")
            return LIB.k(x)

        OUT["value"] = compute(3)
        OUT["runs"] = RUNS
    """]
    assert run_kernel(cells, cache_dir, seed=1)["value"] == 4
    assert run_kernel(cells, cache_dir, seed=2)["runs"] == {}  # the same library: a hit
    _build(tmp_path, 10)
    assert run_kernel(cells, cache_dir, seed=3)["value"] == 13
