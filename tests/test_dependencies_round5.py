"""Dependencies that are not code, fifth round: declared files and folders (``files=``, ``memo.depends_on_file``)
and glob patterns that another process changes while the body runs, after the body read them; a folder listed with
its files' sizes or times where a file grows or is touched while the body runs.

Each test fails with a result served for content the body never saw (a stale hit), or with no warning where the
library cannot tell.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.conftest import Shell

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
