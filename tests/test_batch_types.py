"""memo.batch results keep their exact type (dtypes, categories, names, index) on partial and full hits."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from notebook_memo import memo
from tests.conftest import Seen, run_kernel

SIGNS = {-1: "neg", 0: "zero", 1: "pos"}
VALUES = pd.Series([-2, 0, 3, -1, 5, 0], index=["a", "b", "c", "d", "e", "f"], name="x")
SUBSET = [1, 3]  # computed first, so the whole call is a partial hit


def _sign_categories(s: pd.Series, ordered: bool) -> pd.Series:
    labels = [SIGNS[int(np.sign(v))] for v in s]
    cats = pd.Categorical(labels, categories=["neg", "zero", "pos", "unused"], ordered=ordered)
    return pd.Series(cats, index=s.index, name="sign")


SERIES_CASES: dict[str, Callable[[pd.Series], pd.Series]] = {
    "categorical_ordered": lambda s: _sign_categories(s, ordered=True),
    "categorical_unordered": lambda s: _sign_categories(s, ordered=False),
    "categorical_int_categories": lambda s: s.astype(pd.CategoricalDtype([5, 3, 0, -1, -2, 99])).rename(7),
    "Int64_with_NA": lambda s: s.where(s != 0).astype("Int64").rename("n"),
    "string_with_NA": lambda s: s.map(lambda v: None if v == 0 else f"v{v}").astype("string"),
    "tz_datetime": lambda s: pd.to_datetime(s, unit="D").dt.tz_localize("Europe/Paris").rename("when"),
    "boolean_with_NA": lambda s: (s > 0).astype("boolean").mask(s == 0),
    "float": lambda s: (s / 2).rename("half"),
    "int32": lambda s: (s * 3).astype("int32"),
    "object": lambda s: s.map(lambda v: (int(v), str(v))).rename(("a", 1)),
    "period": lambda s: s.map(lambda v: pd.Period("2020-01", freq="M") + int(v)),
    "interval": lambda s: pd.Series(pd.arrays.IntervalArray.from_arrays(s, s + 1), index=s.index, name="iv"),
}


def _assert_same_series(result: Any, expected: pd.Series) -> None:
    assert isinstance(result, pd.Series)
    assert result.dtype == expected.dtype and str(result.dtype) == str(expected.dtype)
    if isinstance(expected.dtype, pd.CategoricalDtype):
        assert list(result.dtype.categories) == list(expected.dtype.categories)
        assert result.dtype.categories.dtype == expected.dtype.categories.dtype
        assert result.dtype.ordered == expected.dtype.ordered
    assert result.name == expected.name
    assert result.index.equals(expected.index) and result.index.dtype == expected.index.dtype
    assert result.equals(expected)


@pytest.mark.parametrize("case", sorted(SERIES_CASES))
def test_series_results_keep_their_type_on_partial_and_full_hits(case: str) -> None:
    body = SERIES_CASES[case]
    seen = Seen()

    @memo.batch("s", progress=False)
    def f(s: pd.Series) -> pd.Series:
        seen.append(list(s))
        return body(s)

    expected = body(VALUES)
    f(VALUES.iloc[SUBSET])
    _assert_same_series(f(VALUES), expected)  # partial hit
    _assert_same_series(f(VALUES), expected)  # full hit
    _assert_same_series(f(VALUES.iloc[SUBSET]), body(VALUES.iloc[SUBSET]))
    assert len(seen) == 2


def test_categorical_full_hit_from_a_list_input_keeps_categories_and_name() -> None:
    @memo.batch("xs", progress=False)
    def f(xs: list[int]) -> pd.Series:
        return _sign_categories(pd.Series(xs), ordered=True)

    expected = f([3, -1, 0])
    again = f([3, -1, 0])
    _assert_same_series(again, expected)


def test_cached_labels_outside_a_new_chunks_categories_are_never_lost() -> None:
    @memo.batch("xs", progress=False)
    def f(xs: list[str]) -> pd.Series:
        return pd.Series(pd.Categorical(xs), name="c")  # categories inferred from each chunk

    f(["a", "b"])
    out = f(["a", "c", "b"])
    assert out.astype(object).tolist() == ["a", "c", "b"]
    assert out.name == "c"


def _rows(ids: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({
        "z_cat": pd.Categorical([SIGNS[int(np.sign(v))] for v in ids], categories=["neg", "zero", "pos", "x"],
                                ordered=True),
        "n": pd.array([None if v == 0 else int(v) for v in ids], dtype="Int64"),
        "s": pd.array([None if v == 0 else f"v{v}" for v in ids], dtype="string"),
        "t": pd.to_datetime(list(ids), unit="D").tz_localize("Europe/Paris"),
        "b": pd.array([None if v == 0 else v > 0 for v in ids], dtype="boolean"),
        "f": np.asarray(ids, dtype=np.float32),
        "o": [(int(v),) for v in ids],
    }, index=ids.index)


def _assert_same_frame(result: Any, expected: pd.DataFrame) -> None:
    assert isinstance(result, pd.DataFrame)
    assert list(result.columns) == list(expected.columns)
    assert result.dtypes.equals(expected.dtypes)
    assert result.index.equals(expected.index)
    assert result.equals(expected)


def test_dataframe_rows_keep_extension_dtypes_on_partial_and_full_hits() -> None:
    seen = Seen()

    @memo.batch("ids", progress=False)
    def f(ids: pd.Series) -> pd.DataFrame:
        seen.append(list(ids))
        return _rows(ids)

    expected = _rows(VALUES)
    f(VALUES.iloc[SUBSET])
    _assert_same_frame(f(VALUES), expected)
    _assert_same_frame(f(VALUES), expected)
    assert len(seen) == 2


ARRAY_CASES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "float32": lambda a: (a / 2).astype(np.float32),
    "int16": lambda a: (a * 3).astype(np.int16),
    "2d_items": lambda a: np.stack([np.full((2, 3), v, dtype=np.float64) for v in a]),
    "fixed_width_str": lambda a: np.array([f"v{v}" for v in a], dtype="<U8"),
    "object_ints": lambda a: np.array([int(v) for v in a], dtype=object),
    "structured": lambda a: np.array([(int(v), float(v) / 2) for v in a], dtype=[("i", "<i2"), ("f", "<f4")]),
}


@pytest.mark.parametrize("case", sorted(ARRAY_CASES))
def test_numpy_results_keep_dtype_and_item_shape_on_partial_and_full_hits(case: str) -> None:
    body = ARRAY_CASES[case]

    @memo.batch("xs", progress=False)
    def f(xs: np.ndarray) -> np.ndarray:
        return body(xs)

    values = VALUES.to_numpy()
    expected = body(values)
    f(values[SUBSET])
    for out in (f(values), f(values)):
        assert isinstance(out, np.ndarray)
        assert out.dtype == expected.dtype and out.shape == expected.shape
        assert np.array_equal(out, expected)


@pytest.mark.parametrize("container", [list, tuple])
def test_lists_and_tuples_keep_their_items_exactly(container: type) -> None:
    def body(xs: Any) -> Any:
        return container(np.float32(x) if x > 0 else None for x in xs)

    f = memo.batch("xs", progress=False)(body)
    values = container(VALUES.tolist())
    expected = body(values)
    f(container(values[i] for i in SUBSET))
    for out in (f(values), f(values)):
        assert type(out) is container and out == expected
        assert [type(x) for x in out] == [type(x) for x in expected]


def test_entries_without_a_type_description_are_a_miss(monkeypatch: pytest.MonkeyPatch) -> None:
    from notebook_memo import _containers

    seen = Seen()

    @memo.batch("s", progress=False)
    def f(s: pd.Series) -> pd.Series:
        seen.append(list(s))
        return _sign_categories(s, ordered=True)

    with monkeypatch.context() as patched:  # entries as stored before types were described
        patched.setattr(_containers, "type_meta", lambda kind, description: {"container": kind})
        f(VALUES)
    _assert_same_series(f(VALUES), _sign_categories(VALUES, ordered=True))
    assert len(seen) == 2


def test_full_hit_in_a_fresh_process_rebuilds_the_categorical_series(tmp_path: Path, cache_dir: Path) -> None:
    (tmp_path / "labels_mod.py").write_text(textwrap.dedent("""
        import pandas as pd
        from notebook_memo import memo

        class Seen(list):
            def __memo_key__(self):
                return "seen"

        SEEN = Seen()

        @memo.batch("s", progress=False)
        def label(s):
            SEEN.extend(s.tolist())
            cats = pd.Categorical(["hi" if v > 2 else "lo" for v in s], categories=["lo", "mid", "hi"], ordered=True)
            return pd.Series(cats, index=s.index, name="level")
    """))
    cells = [
        "import sys, pandas as pd\nsys.path.insert(0, '.')\nimport labels_mod",
        "r = labels_mod.label(pd.Series([1, 5, 3], index=[10, 20, 30], name='v'))\n"
        "OUT['seen'] = list(labels_mod.SEEN)\nOUT['values'] = r.astype(object).tolist()\n"
        "OUT['categories'] = list(r.dtype.categories)\nOUT['ordered'] = bool(r.dtype.ordered)\n"
        "OUT['dtype'] = str(r.dtype)\nOUT['name'] = r.name\nOUT['index'] = r.index.tolist()",
    ]
    first = run_kernel(cells, cache_dir, seed=1)
    second = run_kernel(cells, cache_dir, seed=2)
    assert first["seen"] == [1, 5, 3] and second["seen"] == []
    for out in (first, second):
        assert out["values"] == ["lo", "hi", "hi"]
        assert out["categories"] == ["lo", "mid", "hi"] and out["ordered"] is True
        assert out["dtype"] == "category" and out["name"] == "level" and out["index"] == [10, 20, 30]


def test_categories_too_many_to_describe_still_return_every_value_and_the_name() -> None:
    categories = [f"c{i}" for i in range(5000)]  # past the size kept in each item's metadata

    @memo.batch("xs", progress=False)
    def f(xs: list[int]) -> pd.Series:
        return pd.Series(pd.Categorical([f"c{x}" for x in xs], categories=categories), name="big")

    f([1, 2])
    out = f([1, 2])
    assert out.astype(object).tolist() == ["c1", "c2"] and out.name == "big"


@pytest.mark.parametrize("named", [False, True])
def test_items_read_together_each_keep_the_description_they_were_stored_with(named: bool) -> None:
    """A call that reads items stored by different calls (two descriptions, interleaved) types each
    item as stored, also when a parameter has the description's own name (the metadata then names
    it twice) and a keyword's name holds its quotes."""

    def plain(xs: list[int], dtype: str = "float32") -> pd.Series:
        return pd.Series(np.array(xs, dtype=dtype), name="v")

    def with_names(xs: list[int], dtype: str = "float32", result_type: str = "", **extra: Any) -> pd.Series:
        return plain(xs, dtype)

    f = memo.batch("xs", progress=False, ignore=["dtype"])(with_names if named else plain)
    same = {"result_type": "r", 'k"result_type":': 1} if named else {}
    assert f([1, 2], dtype="float32", **same).dtype == np.float32
    assert f([3, 4], dtype="int64", **same).dtype == np.int64
    for order in ([3, 1, 4, 2], [1, 3, 2, 4]):
        out = f(order, **same)  # all served; a float32 item and an int64 one make float64
        assert f.explain_last().summary.startswith("4 of 4")
        assert out.dtype == np.float64 and out.tolist() == order
    assert f([3, 4], **same).dtype == np.int64 and f([1, 2], **same).dtype == np.float32
