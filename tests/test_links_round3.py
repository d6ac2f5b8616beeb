"""Links, third round: os.path.samefile and Path.samefile keyed by the files the paths name (device and inode),
Path.is_symlink watched, and a link read at a place the run itself made, wrote or removed (the "update latest"
pattern, shutil.move across file systems) stored without a warning, and fileinput over named files or
sys.stdin.isatty() not taken for reads of the standard input. Real shells, real links and hard links, real
processes."""

from __future__ import annotations

import os
import shutil
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RUNS_SETUP, Shell, run_kernel

# -- samefile: which file each path names ---------------------------------------------------------------------

SAMEFILE_READERS = {"os_path": "os.path.samefile(A, B)", "pathlib": "pathlib.Path(A).samefile(B)"}


@pytest.mark.parametrize("reader", sorted(SAMEFILE_READERS))
def test_samefile_after_a_hard_link_is_replaced_by_a_copy_after_a_restart(tmp_path: Path, cache_dir: Path,
                                                                          reader: str) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("x")
    os.link(a, b)  # b names a's file: the real paths differ, the file is one
    cells = [RUNS_SETUP, f"""
        import os, pathlib
        A, B = {str(a)!r}, {str(b)!r}

        @memo
        def same():
            ran("same")
            return {SAMEFILE_READERS[reader]}

        OUT["same"] = same()
        OUT["runs"] = RUNS.get("same", 0)
    """]
    first = run_kernel(cells, cache_dir, seed=1)
    again = run_kernel(cells, cache_dir, seed=2)
    assert (first["same"], first["runs"]) == (True, 1)
    assert (again["same"], again["runs"]) == (True, 0)  # unchanged: served after a restart
    b.unlink()
    shutil.copyfile(a, b)  # the same bytes, another file
    after = run_kernel(cells, cache_dir, seed=3)
    assert (after["same"], after["runs"]) == (False, 1)


@pytest.mark.parametrize("reader", sorted(SAMEFILE_READERS))
def test_samefile_after_a_copy_is_replaced_by_a_hard_link(shell: Shell, tmp_path: Path, reader: str) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("x")
    shutil.copyfile(a, b)
    shell.run(f"""
        import os, pathlib
        from notebook_memo import memo
        A, B = {str(a)!r}, {str(b)!r}

        @memo
        def same():
            return {SAMEFILE_READERS[reader]}

        first = same()
        report = str(same.explain())
    """)
    assert shell["first"] is False
    b.unlink()
    os.link(a, b)
    shell.run("after = same()\nwhy = str(same.explain())")
    assert shell["after"] is True


def test_explain_says_which_file_a_samefile_path_names_now(shell: Shell, tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("x")
    os.link(a, b)
    shell.run(f"""
        import os
        from notebook_memo import memo

        @memo
        def same():
            return os.path.samefile({str(a)!r}, {str(b)!r})

        same()
    """)
    b.unlink()
    shutil.copyfile(a, b)
    shell.run("why = str(same.explain())")
    assert "MISS" in shell["why"] and f"{b} names another file now" in shell["why"], shell["why"]


# -- pathlib's own readers --------------------------------------------------------------------------------------

def test_path_samefile_follows_a_retargeted_link(shell: Shell, tmp_path: Path) -> None:
    for name in ("v1", "v2"):
        (tmp_path / name).mkdir()
    link = tmp_path / "current"
    link.symlink_to(tmp_path / "v1")
    shell.run(f"""
        from pathlib import Path
        from notebook_memo import memo

        @memo
        def is_current(version):
            return Path({str(link)!r}).samefile({str(tmp_path)!r} + "/" + version)

        first = is_current("v1")
    """)
    assert shell["first"] is True
    link.unlink()
    link.symlink_to(tmp_path / "v2")
    shell.run("after = is_current('v1')")
    assert shell["after"] is False


def test_path_is_symlink_sees_a_link_made_since(shell: Shell, tmp_path: Path) -> None:
    (tmp_path / "target").write_text("x")
    shell.run(f"""
        from pathlib import Path
        from notebook_memo import memo

        @memo
        def has_link():
            return Path({str(tmp_path / "lnk")!r}).is_symlink()

        first = has_link()
        again = has_link()
    """)
    assert (shell["first"], shell["again"]) == (False, False)
    assert shell["has_link"].cache_info().hits == 1
    (tmp_path / "lnk").symlink_to(tmp_path / "target")
    shell.run("after = has_link()")
    assert shell["after"] is True


def test_path_is_symlink_sees_a_link_replaced_by_a_file(shell: Shell, tmp_path: Path) -> None:
    (tmp_path / "target").write_text("x")
    (tmp_path / "lnk").symlink_to(tmp_path / "target")
    shell.run(f"""
        from pathlib import Path
        from notebook_memo import memo

        @memo
        def has_link():
            return Path({str(tmp_path / "lnk")!r}).is_symlink()

        first = has_link()
    """)
    (tmp_path / "lnk").unlink()
    (tmp_path / "lnk").write_text("x")
    shell.run("after = has_link()")
    assert (shell["first"], shell["after"]) == (True, False)


# -- a link read where the run itself makes, writes or removes ------------------------------------------------

LATEST = {
    "os": """
        if os.path.islink(LATEST):
            os.unlink(LATEST)
        os.symlink(path, LATEST)
    """,
    "pathlib": """
        latest = pathlib.Path(LATEST)
        if latest.is_symlink():
            latest.unlink()
        latest.symlink_to(path)
    """,
}


@pytest.mark.parametrize("how", sorted(LATEST))
def test_pointing_latest_at_a_new_checkpoint_is_stored_and_checked(shell: Shell, tmp_path: Path, how: str) -> None:
    shell.run(_latest_cell(tmp_path, textwrap.indent(textwrap.dedent(LATEST[how]).strip("\n"), "    ")))
    assert shell["found"] == []
    assert shell["RUNS"] == [1, 2]  # each step's first call is stored, and its second served
    assert os.readlink(tmp_path / "latest") == str(tmp_path / "ckpt_2.bin")
    # The link the run made is its output: pointed elsewhere, a hit would not point it back, so the body runs.
    os.unlink(tmp_path / "latest")
    os.symlink(tmp_path / "ckpt_1.bin", tmp_path / "latest")
    shell.run("save_checkpoint(2)")
    assert shell["RUNS"] == [1, 2, 2]
    assert os.readlink(tmp_path / "latest") == str(tmp_path / "ckpt_2.bin")


def _latest_cell(tmp_path: Path, body: str) -> str:
    return f"""
import os, pathlib, warnings
from notebook_memo import memo
FOLDER = {str(tmp_path)!r}
LATEST = FOLDER + "/latest"

class Runs(list):
    def __memo_key__(self):
        return "runs"

RUNS = Runs()

@memo
def save_checkpoint(step):
    RUNS.append(step)
    path = f"{{FOLDER}}/ckpt_{{step}}.bin"
    with open(path, "wb") as fh:
        fh.write(bytes([step]) * 10)
{body}
    return path

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for step in (1, 1, 2, 2):
        save_checkpoint(step)
found = [str(w.message) for w in caught]
"""


@pytest.fixture
def other_file_system(tmp_path: Path) -> Iterator[Path]:
    """A folder on another file system than ``tmp_path`` where the machine has one (/dev/shm, a tmpfs): shutil.move
    into it copies and removes instead of renaming."""
    shm = Path("/dev/shm")
    folder = Path(tempfile.mkdtemp(dir=shm if shm.is_dir() and os.access(shm, os.W_OK) else tmp_path))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_a_file_moved_to_another_file_system_is_stored(shell: Shell, tmp_path: Path,
                                                       other_file_system: Path) -> None:
    # Across file systems shutil.move asks os.path.islink(source), copies, then removes the source.
    shell.run(f"""
        import json, os, shutil, tempfile, warnings
        from notebook_memo import memo

        class Runs(list):
            def __memo_key__(self):
                return "runs"

        RUNS = Runs()

        @memo
        def export(n):
            RUNS.append(n)
            fd, tmp = tempfile.mkstemp(suffix=".json", dir={str(tmp_path)!r})
            with os.fdopen(fd, "w") as fh:
                json.dump({{"n": n}}, fh)
            shutil.move(tmp, {str(other_file_system)!r} + f"/result_{{n}}.json")
            return n

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            export(3)
            export(3)
        found = [str(w.message) for w in caught]
    """)
    assert shell["found"] == []
    assert shell["RUNS"] == [3]


def test_a_link_checked_then_removed_by_the_run_is_stored(shell: Shell, tmp_path: Path) -> None:
    # What shutil.move does across file systems, on any machine: islink(source), copy, remove the source.
    shell.run(f"""
        import os, shutil, warnings
        from notebook_memo import memo

        class Runs(list):
            def __memo_key__(self):
                return "runs"

        RUNS = Runs()
        FOLDER = {str(tmp_path)!r}

        @memo
        def publish(n):
            RUNS.append(n)
            source = f"{{FOLDER}}/draft_{{n}}.txt"
            with open(source, "w") as fh:
                fh.write(str(n))
            if not os.path.islink(source):
                shutil.copyfile(source, f"{{FOLDER}}/final_{{n}}.txt")
            os.remove(source)
            return n

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            publish(1)
            publish(1)
        found = [str(w.message) for w in caught]
    """)
    assert shell["found"] == []
    assert shell["RUNS"] == [1]


def test_a_link_retargeted_by_another_process_while_the_run_lasts_is_not_stored(shell: Shell,
                                                                                 tmp_path: Path) -> None:
    # Not the run's own doing (no write of its names it): a change while it ran still leaves the result unstored.
    for name in ("v1", "v2"):
        (tmp_path / name).mkdir()
    link = tmp_path / "current"
    link.symlink_to(tmp_path / "v1")
    shell.run(f"""
        import os, subprocess, sys, warnings
        from notebook_memo import memo
        LINK = {str(link)!r}

        class Runs(list):
            def __memo_key__(self):
                return "runs"

        RUNS = Runs()

        @memo
        def where(to):
            RUNS.append(to)
            found = os.readlink(LINK)
            subprocess.run([sys.executable, "-c", "import os, sys; os.unlink(sys.argv[1]); os.symlink(sys.argv[2], "
                            "sys.argv[1])", LINK, to], check=True)
            return found

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            where({str(tmp_path / "v2")!r})
            where({str(tmp_path / "v2")!r})
        found = [str(w.message) for w in caught]
    """)
    assert len(shell["RUNS"]) == 2
    assert any("changed while it ran" in message for message in shell["found"]), shell["found"]


# -- the standard input ---------------------------------------------------------------------------------------

NOT_STDIN = {
    "fileinput_files": "sum(1 for _ in fileinput.input(files=NAMES))",
    "fileinput_positional": "sum(1 for _ in fileinput.input(NAMES))",
    "fileinput_literal": "sum(1 for _ in fileinput.input([A, B]))",
    "isatty": "(sys.stdin is not None and sys.stdin.isatty(), 1)[1]",
    "fileno_encoding": "(sys.stdin.encoding, sys.stdin.fileno() if NEVER else 1)[1]",
}


@pytest.mark.parametrize("code", sorted(NOT_STDIN))
def test_code_that_does_not_read_the_standard_input_does_not_warn(shell: Shell, tmp_path: Path, code: str) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("a\n")
    b.write_text("b\n")
    shell.run(f"""
        import fileinput, sys, warnings
        from notebook_memo import memo
        A, B = {str(a)!r}, {str(b)!r}
        NAMES = (A, B)
        NEVER = False

        @memo
        def count():
            return {NOT_STDIN[code]}

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = count()
            count()
        found = [str(w.message) for w in caught]
    """)
    assert shell["found"] == []
    assert shell["count"].cache_info().hits == 1


STILL_STDIN = {
    "fileinput_dash": "list(fileinput.input('-')) if NEVER else 1",
    "fileinput_dash_among": "list(fileinput.input(files=[A, '-'])) if NEVER else 1",
    "fileinput_none": "list(fileinput.input(files=None)) if NEVER else 1",
    "fileinput_bound": "(lambda reader: list(reader()) if NEVER else 1)(fileinput.input)",
    "stdin_iterated": "[line for line in sys.stdin] if NEVER else 1",
    "stdin_buffer": "sys.stdin.buffer.read() if NEVER else 1",
}


@pytest.mark.parametrize("code", sorted(STILL_STDIN))
def test_code_that_may_read_the_standard_input_still_warns(shell: Shell, tmp_path: Path, code: str) -> None:
    shell.run(f"""
        import fileinput, sys, warnings
        from notebook_memo import memo
        A = {str(tmp_path / "a.txt")!r}
        NEVER = False

        @memo
        def count():
            return {STILL_STDIN[code]}

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            count()
        found = [str(w.message) for w in caught if "standard input" in str(w.message)]
    """)
    assert shell["found"]


def test_a_cell_reading_named_files_through_fileinput_does_not_warn(shell: Shell, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a\nb\n")
    shell.run("%load_ext notebook_memo\nimport fileinput, sys")  # an earlier cell's imports: the cell's globals
    cell = f"""%%memo
interactive = sys.stdin is not None and sys.stdin.isatty()
with fileinput.input(files=[{str(tmp_path / "a.txt")!r}]) as lines:
    count = sum(1 for _ in lines)
"""
    shell.run(f"import warnings\nwith warnings.catch_warnings(record=True) as caught:\n"
              f"    warnings.simplefilter('always')\n    get_ipython().run_cell({cell!r})\n"
              "found = [str(w.message) for w in caught if 'standard input' in str(w.message)]")
    assert shell["count"] == 2
    assert shell["found"] == []
