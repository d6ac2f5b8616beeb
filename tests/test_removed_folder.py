"""A kernel whose current folder was removed (a temporary folder the notebook ran in): memoized calls and
cached cells still compute, store and hit when what they read is named by absolute paths."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_kernel


def _cells(data: Path) -> list[str]:
    return [
        f"""
import os, shutil, tempfile
from notebook_memo import memo
DATA = {str(data)!r}
@memo
def f(x):
    with open(DATA) as fh:
        return fh.read() + str(x)
gone = tempfile.mkdtemp(dir={str(data.parent)!r})
os.chdir(gone)
shutil.rmtree(gone)
""",
        "%load_ext notebook_memo",
        "OUT['f'] = f(1)\nOUT['f again'] = f(1)\nOUT['info'] = f.cache_info()[:3]",
        f"%%memo read\nwith open({str(data)!r}) as fh:\n    y = fh.read() * 2",
        "OUT['y'] = y",
    ]


def test_a_removed_current_folder_does_not_break_calls_or_cells(tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("v")
    cache = tmp_path / "cache"
    first = run_kernel(_cells(data), cache, seed=1)
    assert (first["f"], first["f again"], first["y"]) == ("v1", "v1", "vv")
    assert first["info"] == [1, 1, 1]  # one hit, one miss, one entry: stored although the folder is gone
    again = run_kernel(_cells(data), cache, seed=2)  # a restart, in another removed folder: hits
    assert again["info"][:2] == [2, 0] and again["y"] == "vv"
    data.write_text("w")
    changed = run_kernel(_cells(data), cache, seed=3)
    assert (changed["f"], changed["y"]) == ("w1", "ww")
