"""Arrays and frames hashed at their floor: strided views streamed without a copy, text columns exactly."""

from __future__ import annotations

import subprocess
import sys
import threading
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from notebook_memo import UnhashableArgument
from notebook_memo.hashing import content_hash
from tests.conftest import Shell

MiB = 1 << 20


def h(value: object) -> bytes:
    return content_hash(value)


def _big(n: int, dtype: str = "float64") -> np.ndarray:
    return np.arange(n).astype(dtype)


# -- strided arrays: the C-order bytes, streamed ----------------------------------------------

_BASE = _big(3 * MiB)  # 24 MiB: several chunks of any small buffer
_WIDE = _big(6 * MiB).reshape(3, 2 * MiB)  # a row of 16 MiB: bigger than the buffer itself

STRIDED = {
    "every other": _BASE[::2],
    "every third, an odd count": _BASE[1::3],
    "reversed": _BASE[::-1],
    "reversed by two": _BASE[-2::-2],
    "Fortran order 2-d": np.asfortranarray(_BASE.reshape(1536, 2048)),
    "transposed 3-d": _BASE.reshape(64, 96, 512).transpose(2, 0, 1),
    "a column block": _BASE.reshape(2048, 1536)[:, 7:900],
    "rows wider than the buffer": _WIDE[:, ::2],
    "reversed rows wider than the buffer": _WIDE[::-1, ::-3],
    "small": np.arange(100.0)[::2],
    "uint8 with an odd length": np.arange(5 * MiB + 3, dtype=np.uint8)[::2],
    "3-byte strings": np.array([b"abc", b"de", b"f"] * MiB, dtype="S3")[::2],
    "complex": (_BASE[: MiB] + 1j)[::2],
    "bool": (_BASE % 3 == 0)[::2],
    "datetime64": _BASE.astype("datetime64[s]")[::5],
    "structured": np.zeros(MiB, dtype=[("a", "<i4"), ("b", "<f8")])[::3],
}


@pytest.mark.parametrize("name", list(STRIDED))
def test_strided_view_digest_equals_its_contiguous_copy(name: str) -> None:
    view = STRIDED[name]
    assert not view.flags.c_contiguous
    assert h(view) == h(np.ascontiguousarray(view))


@pytest.mark.parametrize("where", [0, "middle", -1])
def test_one_changed_element_of_a_strided_view_changes_its_digest(where: int | str) -> None:
    base = _big(3 * MiB)
    view = base[::2]
    before = h(view)
    index = view.shape[0] // 2 if where == "middle" else where
    view[index] += 1
    assert h(view) != before
    assert h(view) == h(np.ascontiguousarray(view))


def test_a_strided_view_is_not_its_base_or_another_stride() -> None:
    base = _big(MiB)
    assert h(base[::2]) != h(base[1::2])
    assert h(base[::2]) != h(base[::-2])
    assert h(np.asfortranarray(base.reshape(512, 2048))) != h(base.reshape(512, 2048).T)


def test_hashing_a_strided_view_makes_no_full_copy() -> None:
    view = _big(8 * MiB)[::2]  # 32 MiB of values
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        h(view)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MiB, f"hashing a 32 MiB view allocated {peak / MiB:.1f} MiB"


def test_broadcast_views_keep_their_own_form() -> None:
    row = _big(4096)[::2]  # itself strided
    wide = np.broadcast_to(row, (300, row.shape[0]))
    assert h(wide) == h(np.broadcast_to(np.ascontiguousarray(row), (300, row.shape[0])))
    assert h(wide) != h(np.ascontiguousarray(wide))
    assert h(wide) != h(np.broadcast_to(row, (301, row.shape[0])))


def test_strided_object_arrays_are_hashed_by_their_items() -> None:
    items = np.array([1, "a", None, 2.5, (1, 2), "b"] * 1000, dtype=object)
    assert h(items[::2]) == h(np.ascontiguousarray(items[::2]))
    assert h(items[::2]) != h(items[1::2])


# -- text columns: lengths and utf-8, exactly -------------------------------------------------

N = 200_000
WORDS = [f"w{i % 977}-{i}" for i in range(N)]


def frame(strings: list[object], dtype: object = None) -> pd.DataFrame:
    n = len(strings)
    return pd.DataFrame({
        "x": np.arange(n, dtype=np.float64),
        "s": pd.Series(strings, dtype=dtype),
        "c": pd.Categorical(np.array(["red", "green", "blue"])[np.arange(n) % 3]),
    })


@pytest.mark.parametrize("dtype", [None, object, "str"])
@pytest.mark.parametrize("where", [0, N // 2, N - 1])
def test_any_changed_string_changes_the_frame_digest(dtype: object, where: int) -> None:
    words = list(WORDS)
    before = h(frame(words, dtype))
    assert h(frame(list(WORDS), dtype)) == before
    words[where] = words[where][:-1] + "#"
    assert h(frame(words, dtype)) != before


@pytest.mark.parametrize(
    "a, b",
    [
        (["ab", "c"], ["a", "bc"]),
        (["a\0b", "c"], ["a", "b\0c"]),
        (["a\0", "b"], ["a", "\0b"]),
        (["a", "\0"], ["a\0", ""]),
        (["", "\0"], ["\0", ""]),
        (["\0", "\0"], ["\0\0", ""]),
        (["\ud800x", "y"], ["\ud800", "xy"]),
        (["\ud83d\ude00", ""], ["\U0001f600", ""]),
        (["\ud83d", "\ude00"], ["\ud83d\ude00", ""]),
        (["é", "e"], ["e\u0301", "e"]),
        (["a", None, "b"], ["a", float("nan"), "b"]),
        (["a", None, "b"], ["a", "None", "b"]),
        (["a", None, "b"], [None, "a", "b"]),
        (["a", None, "b"], ["a", "", "b"]),
        (["1", "2"], [1, "2"]),
        (["a", 1.5], ["a", 2.5]),
        (["a", 0.0], ["a", -0.0]),
        (["a", 1.0], ["a", 1]),
        (["a", 1.0], ["a", True]),
        (["a", None, "b"], ["a", "b", None]),
        (["a", (1, 2)], ["a", [1, 2]]),
        (["a", "b"], [b"a", "b"]),
        (["a", "b"], [np.str_("a"), "b"]),
    ],
)
def test_close_text_columns_have_distinct_digests(a: list[object], b: list[object]) -> None:
    assert h(pd.Index(a, dtype=object)) != h(pd.Index(b, dtype=object))
    assert h(pd.Series(a, dtype=object)) != h(pd.Series(b, dtype=object))
    assert h(pd.Index(a, dtype=object)) == h(pd.Index(list(a), dtype=object))


class Label(str):
    """A str subclass: its own type, so not the plain string it spells."""


def test_a_str_subclass_in_a_column_is_not_the_plain_string() -> None:
    plain = pd.Series(["a", "b"] * 1000, dtype=object)
    labelled = pd.Series([Label("a"), "b"] * 1000, dtype=object)
    assert h(plain) != h(labelled)


@pytest.mark.parametrize("dtype", [object, "str"])
def test_missing_values_mixed_into_text_are_hashed_in_place(dtype: object) -> None:
    words: list[object] = list(WORDS)
    words[3] = None
    words[N - 2] = float("nan")
    base = h(frame(words, dtype))
    assert h(frame(list(words), dtype)) == base
    moved = list(words)
    moved[3], moved[4] = moved[4], moved[3]
    assert h(frame(moved, dtype)) != base
    edited = list(words)
    edited[10] = "other"
    assert h(frame(edited, dtype)) != base


def test_an_unhashable_item_among_strings_is_named_by_its_position() -> None:
    column = pd.Series(["a"] * 5000 + [threading.Lock()] + ["b"], dtype=object)
    with pytest.raises(UnhashableArgument, match=r"\[5000\]"):
        h(column)


def test_lone_surrogates_in_a_column_are_hashed_exactly() -> None:
    words = ["name\udcff", "plain", "\ud800", "x"] * 1000
    assert h(pd.Series(words)) == h(pd.Series(list(words)))
    other = list(words)
    other[-2] = "\ud801"
    assert h(pd.Series(words)) != h(pd.Series(other))


def test_categorical_and_plain_columns_are_distinct() -> None:
    values = ["red", "green", "blue"] * 1000
    assert h(pd.Series(values, dtype="category")) != h(pd.Series(values))
    assert h(pd.Series(values, dtype="category")) != h(pd.Series(values, dtype=object))
    reordered = pd.Series(pd.Categorical(values, categories=["red", "green", "blue"]))
    assert h(pd.Series(values, dtype="category")) != h(reordered)
    ordered = pd.Series(pd.Categorical(values, ordered=True))
    assert h(pd.Series(values, dtype="category")) != h(ordered)
    index = pd.CategoricalIndex(values)
    assert h(index) == h(pd.CategoricalIndex(list(values)))
    assert h(index) != h(pd.Index(values))


_SEED_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np, pandas as pd
from notebook_memo import UnhashableArgument
from notebook_memo.hashing import content_hash
n = 5000
words = [f"w{i}-é-\\udcff" if i % 7 else None for i in range(n)]
words[5] = float("nan")
df = pd.DataFrame({"x": np.arange(n) * 0.5, "o": pd.Series(words, dtype=object),
                   "s": pd.Series([f"s{i}" if i % 5 else None for i in range(n)], dtype="str"),
                   "c": pd.Categorical([("a", "b", "c")[i % 3] for i in range(n)]),
                   "v": np.arange(2 * n)[::2]})
print(content_hash(df).hex())
"""


def test_frame_digest_is_stable_across_processes_and_hash_seeds() -> None:
    root = str(Path(__file__).resolve().parent.parent)
    digests = set()
    for seed in ("0", "1", "4242"):
        out = subprocess.run([sys.executable, "-c", _SEED_SCRIPT, root], capture_output=True, text=True,
                             env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"}, check=True)
        digests.add(out.stdout.strip())
    assert len(digests) == 1


# -- a global frame read by a memoized function ----------------------------------------------

_GLOBAL_SETUP = """
import numpy as np, pandas as pd
from notebook_memo import memo
class _Runs(dict):
    def __memo_key__(self): return 'runs'
RUNS = _Runs()
FRAME = pd.DataFrame({"a": np.arange(50_000), "s": [f"w{i}" for i in range(50_000)]})
@memo
def summary(k):
    RUNS['n'] = RUNS.get('n', 0) + 1
    return (int(FRAME["a"].sum()), FRAME["s"].iloc[0], FRAME.shape[1], k)
"""


@pytest.mark.parametrize(
    "edit",
    [
        "FRAME.loc[0, 'a'] = 5",
        "FRAME.iloc[0, 0] = 7",
        "FRAME['s'].values[0] = 'x'",
        "FRAME.iloc[0, 1] = 'y'",
        "FRAME['new'] = 1",
        "FRAME.loc[1, 's'] = None",
    ],
)
def test_editing_a_global_frame_in_place_recomputes(shell: Shell, edit: str) -> None:
    shell.run(_GLOBAL_SETUP)
    first = shell.run("summary(1)")
    shell.run("summary(1)")
    assert shell["RUNS"]["n"] == 1
    shell.run(edit)
    after = shell.run("summary(1)")
    assert shell["RUNS"]["n"] == 2
    assert after != first or edit == "FRAME.loc[1, 's'] = None"
    shell.run("summary(1)")
    assert shell["RUNS"]["n"] == 2


_SHARED_SETUP = """
import numpy as np, pandas as pd
from notebook_memo import memo
class _Runs(dict):
    def __memo_key__(self): return 'runs'
RUNS = _Runs()
class Big:
    def __init__(self, data): self.data = data
    def __memo_key__(self):
        RUNS['hashed'] = RUNS.get('hashed', 0) + 1
        return self.data
BIG = Big([1, 2, 3])
FRAME = pd.DataFrame({"a": np.arange(1000), "s": [f"w{i}" for i in range(1000)]})
def first():
    return BIG.data[0], FRAME["s"].iloc[0]
def last():
    return BIG.data[-1], FRAME["s"].iloc[-1]
@memo
def ends(k):
    RUNS['n'] = RUNS.get('n', 0) + 1
    return first(), last(), len(BIG.data), len(FRAME), k
"""


def test_a_global_read_by_helpers_too_is_hashed_once_per_call(shell: Shell) -> None:
    shell.run(_SHARED_SETUP)
    shell.run("ends(1)")
    shell.run("RUNS['hashed'] = 0")
    shell.run("ends(1)")
    assert shell["RUNS"]["n"] == 1
    assert shell["RUNS"]["hashed"] == 1


@pytest.mark.parametrize("edit", ["BIG.data[-1] = 9", "FRAME.iloc[-1, 1] = 'changed'", "FRAME.loc[0, 's'] = 'x'"])
def test_an_edit_of_a_global_read_by_helpers_too_recomputes(shell: Shell, edit: str) -> None:
    shell.run(_SHARED_SETUP)
    first = shell.run("ends(1)")
    shell.run(edit)
    after = shell.run("ends(1)")
    assert shell["RUNS"]["n"] == 2
    assert after != first
