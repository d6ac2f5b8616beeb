"""Links, third round: os.path.samefile keyed by the files the paths name (device and inode). Real shells, real
links and hard links, real processes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import RUNS_SETUP, Shell, run_kernel

# -- samefile: which file each path names ---------------------------------------------------------------------

SAMEFILE_READERS = {"os_path": "os.path.samefile(A, B)"}


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
