"""Links, third round: os.path.samefile and Path.samefile keyed by the files the paths name (device and inode),
Path.is_symlink watched. Real shells, real links and hard links, real processes."""

from __future__ import annotations

import os
import shutil
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
