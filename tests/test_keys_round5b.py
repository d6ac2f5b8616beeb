"""Keys: arrays and tensors over one memory that do not overlap, a ctypes function pointer kept as a global,
the clock rule's "now"/"today" text, and a body's own os.environ.setdefault."""

from __future__ import annotations

import ctypes
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import RUNS_SETUP, Counter, Shell, run_kernel

from notebook_memo import MemoWarning, memo

_SPLIT_CELLS = [
    """
import numpy as np
from notebook_memo import memo

@memo
def split(n):
    X = np.arange(n, dtype=float)
    return X[: n // 2], X[n // 2:]

@memo
def fit(a, b):
    return float(a.sum() - b.sum())

@memo
def fit_pair(pair):
    return float(pair[0].sum() - pair[1].sum())

for run in (1, 2):  # the same cell run twice: the second run's views come from the cache
    a, b = split(10)
    fit(a, b)
    fit_pair([a, b])
OUT["fit"] = fit.cache_info().hits
OUT["fit_pair"] = fit_pair.cache_info().hits
"""
]


def test_disjoint_views_returned_together_hit_after_a_restart(cache_dir: Path) -> None:
    first = run_kernel(_SPLIT_CELLS, cache_dir, seed=1)
    second = run_kernel(_SPLIT_CELLS, cache_dir, seed=2)
    assert (first["fit"], first["fit_pair"]) == (1, 1)  # the rerun, over unpickled copies, hits
    assert (second["fit"], second["fit_pair"]) == (2, 2)


def test_views_over_one_memory_are_keyed_by_overlap_only(counter: Counter) -> None:
    @memo
    def f(*arrays: Any) -> float:
        counter()
        return float(sum(a.sum() for a in arrays))

    @memo
    def g(arrays: list[Any]) -> float:
        counter()
        return float(sum(a.sum() for a in arrays))

    x = np.arange(12.0)
    for call in (f, lambda *a: g(list(a))):
        before = counter.n
        call(x[:6], x[6:])
        call(x[:6].copy(), x[6:].copy())  # disjoint: nothing a write through one shows in the other
        call(x[::2], x[1::2])  # interleaved, never the same byte
        call(x[::2].copy(), x[1::2].copy())
        assert counter.n == before + 2
        call(x[:6], x[5:11])  # overlapping: a write through one changes the other
        assert counter.n == before + 3
        call(x[:6].copy(), x[5:11].copy())
        assert counter.n == before + 4


def _overlaps_of_the_last(arrays: list[Any]) -> list[bool]:
    """Which of the arrays the last one shares a byte with: what a write through it would change."""
    return [bool(np.shares_memory(arrays[-1], a)) for a in arrays[:-1]]


def test_a_view_overlapping_a_later_one_but_not_the_first_is_keyed(counter: Counter) -> None:
    @memo
    def f(arrays: list[Any]) -> list[bool]:
        counter()
        return _overlaps_of_the_last(arrays)

    x, y, z = np.arange(6.0), np.arange(6.0), np.arange(6.0)
    assert f([x[:2], x[2:4], x[3:4]]) == [False, True]  # the last overlaps the second only
    assert f([y[:2], y[2:4].copy(), y[3:4]]) == [False, False]
    assert f([z[:2], z[2:4], z[1:2]]) == [True, False]
    assert counter.n == 3


def test_strides_of_the_view_met_first_are_keyed(counter: Counter) -> None:
    @memo
    def f(a: Any, b: Any) -> list[bool]:
        counter()
        return [bool(np.shares_memory(a[i:i + 1], b)) for i in range(len(a))]

    assert f(np.ones(6)[:3], np.ones(6)[2:3]) == [False, False, False]  # two memories
    ones, other = np.ones(6), np.ones(6)
    assert f(ones[:3], ones[2:3]) == [False, False, True]  # b[0] is a[2]
    assert f(other[::2], other[2:3]) == [False, True, False]  # b[0] is a[1]: the same offset, other steps
    assert f([other[::2]][0], other[2:3]) == [False, True, False]
    assert counter.n == 3


def test_disjoint_tensor_views_are_not_aliased(counter: Counter) -> None:
    import torch

    @memo
    def f(a: Any, b: Any) -> float:
        counter()
        return float((a - b).sum())

    t = torch.arange(8.0)
    f(t[:4], t[4:])
    f(t[:4].clone(), t[4:].clone())
    assert counter.n == 1
    f(t[:4], t[3:7])
    f(t[:4].clone(), t[3:7].clone())
    assert counter.n == 3


# -- a ctypes function pointer kept as a global ------------------------------------------------------------------

def _build_scale(folder: Path, factor: int) -> Path:
    """Compile a shared library whose ``scale(x)`` returns ``x * factor``."""
    source = folder / "scale.c"
    source.write_text(f"int scale(int x) {{ return x * {factor}; }}\nint other(int x) {{ return -x; }}\n")
    library = folder / "libscale.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    return library


def test_a_function_pointer_of_a_rebuilt_library_is_called_again(cache_dir: Path, tmp_path: Path) -> None:
    library = _build_scale(tmp_path, 2)
    cells = [f"""
        import ctypes
        from notebook_memo import memo
        _lib = ctypes.CDLL({str(library)!r})
        scale = _lib.scale  # the notebook keeps only the functions it needs
        scale.restype = ctypes.c_int
        scale.argtypes = [ctypes.c_int]
        negate = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(("other", _lib))  # made from a prototype

        @memo
        def scaled(x):
            return scale(x)

        @memo
        def negated(x):
            return negate(x)

        OUT["values"] = [scaled(10), negated(10)]
        OUT["hits"] = [scaled.cache_info().hits, negated.cache_info().hits]
    """]
    first = run_kernel(cells, cache_dir, seed=1)
    assert first["values"] == [20, -10]
    assert not [w for w in first["_warnings"] if "left out" in w], first["_warnings"]
    assert run_kernel(cells, cache_dir, seed=2)["hits"] == [1, 1]  # the same library: hits
    _build_scale(tmp_path, 3)
    assert run_kernel(cells, cache_dir, seed=3)["values"] == [30, -10]


def test_function_pointers_are_keyed_by_name_and_signature(counter: Counter, tmp_path: Path) -> None:
    lib = ctypes.CDLL(str(_build_scale(tmp_path, 2)))
    scale, other = lib.scale, lib.other
    held = {"fn": scale}

    @memo
    def call(x: int) -> Any:
        counter()
        return held["fn"](x)

    assert call(5) == 10
    held["fn"] = other
    assert call(5) == -5  # another function of the same library
    scale.restype = ctypes.c_char  # another signature: the same machine code answers otherwise
    held["fn"] = scale
    assert call(5) == b"\n"
    assert counter.n == 3


def test_a_python_callback_is_still_left_out(counter: Counter) -> None:
    hook = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(lambda x: x + 1)  # Python code, not a library's

    @memo
    def call(x: int) -> int:
        counter()
        return int(hook(x))

    with pytest.warns(MemoWarning, match="left out"):
        call(1)


# -- "now" and "today" as labels, not as dates -------------------------------------------------------------------

_CLOCK_SETUP = """
    import warnings
    import numpy as np
    import pandas as pd
    from notebook_memo import memo

    df = pd.DataFrame({"status": ["now", "later", "now"], "today": [1, 2, 3]})
    DAY = "datetime64[D]"
"""


@pytest.mark.parametrize("body, warns", [
    ('int(np.sum(df["status"] == "now"))', False),  # a category label
    ('int(pd.to_numeric(df["today"]).sum())', False),  # a column's name
    ('int((df["status"] == "Today").sum()) + int(np.mean(df["today"]))', False),
    ('str(np.array(["now"], dtype="M8[s]")[0])', True),
    ('str(pd.Series(["today"]).astype("<M8[ns]")[0])', True),
    ('str(np.array(["today"], dtype=DAY)[0])', True),  # the dtype held by a global
    ('str(pd.DatetimeIndex(["now"])[0])', True),
    ('str(np.array(["now"]).astype(np.datetime64)[0])', True),
], ids=["label", "column", "both", "M8", "astype", "global-dtype", "index", "datetime64-type"])
def test_now_as_text_warns_only_where_it_can_become_a_date(shell: Shell, body: str, warns: bool) -> None:
    shell.run(_CLOCK_SETUP + f"""
    @memo
    def f(df):
        return {body}

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        f(df)
    found = [str(w.message) for w in caught if "reads the clock" in str(w.message)]
    """)
    assert bool(shell["found"]) is warns, shell["found"]


def test_a_cell_comparing_with_the_label_now_does_not_warn(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo")
    shell.run(_CLOCK_SETUP + """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        get_ipython().run_cell_magic("memo", "", 'urgent = int(np.sum(df["status"] == "now"))')
    found = [str(w.message) for w in caught if "clock" in str(w.message)]
    """)
    assert shell["urgent"] == 2 and shell["found"] == []


# -- a body's own os.environ.setdefault ---------------------------------------------------------------------------

_SETDEFAULT_CELLS = ["""
    import os
    from notebook_memo import memo

    @memo
    def train(n):
        os.environ.setdefault("MEMO_R5B_THREADS", "4")
        return n * 2

    OUT["values"] = [train(10), train(11)]
    OUT["hits_before"] = train.cache_info().hits
    OUT["again"] = train(11)
    OUT["hits"] = train.cache_info().hits
    OUT["set"] = os.environ.get("MEMO_R5B_THREADS")
"""]


def test_a_setdefault_that_sets_nothing_is_stored(cache_dir: Path) -> None:
    first = run_kernel(_SETDEFAULT_CELLS, cache_dir, seed=1)
    assert first["set"] == "4" and first["values"] == [20, 22]
    assert (first["hits_before"], first["hits"]) == (0, 1), first  # train(11) found the variable set: stored
    assert any("MEMO_R5B_THREADS" in w for w in first["_warnings"])  # the run that set it says so
    second = run_kernel(_SETDEFAULT_CELLS, cache_dir, seed=2)
    # Unset in the new kernel: train(10) sets it again (not served the entry made where it was set)...
    assert second["hits_before"] == 1 and second["hits"] == 2, second  # ...then train(11) hits, twice


def test_a_cell_whose_setdefault_sets_nothing_is_stored(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo")
    shell.run(RUNS_SETUP + "import os\nos.environ.pop('MEMO_R5B_CELL', None)")
    cell = "%%memo\nos.environ.setdefault('MEMO_R5B_CELL', '4')\nran('cell')\nthreads = 4"
    try:
        for _ in range(3):
            shell.run(cell)
        assert shell["threads"] == 4
        assert shell["RUNS"] == {"cell": 2}  # the run that set it, one stored run that found it set, a hit
    finally:
        shell.run("os.environ.pop('MEMO_R5B_CELL', None)")


def test_a_setdefault_with_a_folder_change_is_never_stored(counter: Counter, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MEMO_R5B_MOVED", raising=False)
    (tmp_path / "sub").mkdir()

    @memo
    def moved(n: int) -> int:
        counter()
        os.environ.setdefault("MEMO_R5B_MOVED", "1")
        os.chdir(tmp_path / "sub")  # the current folder is no part of its key: a later run finds it moved
        return n

    with pytest.warns(MemoWarning):
        moved(1)
    moved(2)
    moved(2)
    assert counter.n == 3


def test_a_batch_whose_setdefault_sets_nothing_is_stored(counter: Counter, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEMO_R5B_BATCH", raising=False)

    @memo.batch("ns")
    def train(ns: list[int]) -> list[int]:
        counter()
        os.environ.setdefault("MEMO_R5B_BATCH", "4")
        return [n * 2 for n in ns]

    with pytest.warns(MemoWarning, match="MEMO_R5B_BATCH"):
        assert train([1, 2]) == [2, 4]
    assert train([3]) == [6]
    assert train([3]) == [6]  # the chunk that found it set was stored
    assert counter.n == 2
