"""@memo as a notebook user meets it: hits, misses, types, exceptions, TTL, async, controls."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from notebook_memo import MemoWarning, StorageWarning, UnhashableArgument, _config, configure, memo
from tests.conftest import Counter, Shell, run_kernel

# -- keys ---------------------------------------------------------------------------------


def test_repeated_call_is_served_from_disk(counter: Counter) -> None:
    @memo
    def f(x: int) -> int:
        counter()
        return x * 2

    assert f(21) == 42
    assert f(21) == 42
    assert counter.n == 1
    assert f.cache_info().hits == 1


def test_positional_keyword_and_default_spellings_share_one_key(counter: Counter) -> None:
    @memo
    def f(a: int, b: int = 2) -> int:
        counter()
        return a + b

    assert f(1, 2) == f(1, b=2) == f(a=1, b=2) == f(1) == f(b=2, a=1) == 3
    assert counter.n == 1


@pytest.mark.parametrize(
    "a, b",
    [(1, 1.0), (1, True), ((1, 2), [1, 2]), ("1", 1), (np.arange(3), np.arange(3.0)), (0.0, -0.0)],
    ids=["int-float", "int-bool", "tuple-list", "str-int", "dtype", "signed-zero"],
)
def test_values_equal_in_python_but_different_in_type_are_different_keys(counter: Counter, a: Any, b: Any) -> None:
    @memo
    def f(x: Any) -> str:
        counter()
        return type(x).__name__

    f(a)
    f(b)
    assert counter.n == 2


def test_variadic_and_keyword_only_arguments(counter: Counter) -> None:
    @memo
    def f(*args: int, scale: int = 1, **extra: int) -> int:
        counter()
        return sum(args) * scale + sum(extra.values())

    assert f(1, 2, scale=2, p=1, q=2) == 9
    assert f(1, 2, p=1, q=2, scale=2) == 9
    assert counter.n == 1
    assert f(2, 1, scale=2, p=1, q=2) == 9
    assert counter.n == 2
    assert f(1, 2, scale=2, q=2, p=1) == 9  # the body can see the order of **extra
    assert counter.n == 3


def test_ignored_arguments_are_left_out_of_the_key(counter: Counter) -> None:
    @memo(ignore=["verbose"])
    def f(x: int, verbose: bool = False) -> int:
        counter()
        return x

    f(1, verbose=True)
    f(1, verbose=False)
    assert counter.n == 1


def test_ignore_naming_no_parameter_is_an_error() -> None:
    with pytest.raises(ValueError, match="names no parameter"):
        memo(ignore=["nope"])(lambda x: x)


def test_version_salt_separates_results(counter: Counter) -> None:
    def body(x: int) -> int:
        counter()
        return x

    memo(version=1)(body)(5)
    memo(version=1)(body)(5)
    memo(version=2)(body)(5)
    assert counter.n == 2


def test_objects_created_and_dropped_never_see_each_others_results() -> None:
    class Item:
        def __init__(self, value: int) -> None:
            self.value = value

    @memo
    def describe(item: Item) -> int:
        return item.value

    for i in range(200):
        assert describe(Item(i)) == i  # ids are reused after each Item dies


def test_mutating_an_argument_in_place_is_a_miss(counter: Counter) -> None:
    @memo
    def total(values: list[int]) -> int:
        counter()
        return sum(values)

    data = [1, 2]
    assert total(data) == 3
    data.append(3)
    assert total(data) == 6
    assert counter.n == 2


def test_unhashable_argument_names_the_argument_and_remedies() -> None:
    @memo
    def f(handle: Any) -> int:
        return 1

    with open(__file__) as handle, pytest.raises(UnhashableArgument) as info:
        f(handle)
    assert "argument 'handle'" in str(info.value)
    assert "ignore=" in str(info.value)


def test_dataframe_arguments_key_by_content(counter: Counter) -> None:
    @memo
    def mean(df: pd.DataFrame) -> float:
        counter()
        return float(df["a"].mean())

    mean(pd.DataFrame({"a": [1.0, 2.0]}))
    mean(pd.DataFrame({"a": [1.0, 2.0]}))
    mean(pd.DataFrame({"a": [1.0, 2.0]}, index=[5, 6]))
    assert counter.n == 2


# -- values -------------------------------------------------------------------------------


@dataclasses.dataclass
class Prediction:
    label: str
    score: float


@pytest.mark.parametrize(
    "value",
    [
        (1, "a"),
        [1, (2, 3)],
        {"k": {1, 2}},
        None,
        Prediction("cat", 0.9),
        np.arange(6, dtype=np.float32).reshape(2, 3),
        pd.DataFrame({"x": [1, 2]}, index=pd.Index(["a", "b"], name="id")),
        np.array([1, 2], dtype=">i4"),
    ],
    ids=["tuple", "list", "dict-set", "none", "dataclass", "array", "frame", "big-endian"],
)
def test_hit_returns_same_type_and_equal_value(value: Any, counter: Counter) -> None:
    @memo
    def f() -> Any:
        counter()
        return value

    first = f()
    second = f()
    assert counter.n == 1
    assert type(second) is type(first)
    if isinstance(value, np.ndarray):
        assert second.dtype == value.dtype and np.array_equal(second, value)
    elif isinstance(value, pd.DataFrame):
        pd.testing.assert_frame_equal(second, value)
    else:
        assert second == value


def test_none_is_stored_like_any_result(counter: Counter) -> None:
    @memo
    def f() -> None:
        counter()

    f()
    f()
    assert counter.n == 1


def test_every_hit_is_a_fresh_object() -> None:
    @memo
    def f() -> dict[str, list[int]]:
        return {"a": [1, 2]}

    f()
    got = f()
    got["a"].append(99)
    assert f() == {"a": [1, 2]}
    arr_fn = memo(lambda: np.zeros(3))
    arr_fn()
    a = arr_fn()
    a[0] = 5
    assert arr_fn()[0] == 0


def test_wrapper_keeps_name_doc_and_signature() -> None:
    @memo
    def embed(texts: list[str], model: str = "small") -> list[int]:
        """Embed texts."""
        return [len(t) for t in texts]

    assert embed.__name__ == "embed"
    assert embed.__doc__ == "Embed texts."
    assert str(inspect.signature(embed)) == str(inspect.signature(embed.__wrapped__))


# -- exceptions ---------------------------------------------------------------------------


def test_exceptions_propagate_unchanged_and_are_never_stored(counter: Counter) -> None:
    class Boom(Exception):
        pass

    @memo
    def f(x: int) -> int:
        counter()
        if counter.n == 1:
            raise Boom("first call fails")
        return x

    with pytest.raises(Boom, match="first call fails") as info:
        f(1)
    assert any(entry.name == "f" for entry in info.traceback)  # the body's own frame is there
    assert f(1) == 1
    assert counter.n == 2
    assert f.cache_info().entries == 1


# -- TTL ----------------------------------------------------------------------------------


def test_entries_past_their_ttl_are_not_served(counter: Counter) -> None:
    @memo(ttl=0.3)
    def f() -> int:
        counter()
        return counter.n

    assert f() == 1
    assert f() == 1
    time.sleep(0.4)
    assert not f.is_cached()
    assert f() == 2


def test_a_ttl_given_later_applies_to_entries_stored_without_one(counter: Counter,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from notebook_memo import _serialize

    def body() -> int:
        counter()
        return counter.n

    body.__qualname__ = "aged"
    assert memo(body)() == 1
    real = time.time
    monkeypatch.setattr(_serialize, "time", type("Later", (), {"time": staticmethod(lambda: real() + 3600)}))
    assert memo(ttl="10m")(body)() == 2  # the entry is an hour old


@pytest.mark.parametrize("ttl, seconds", [("90s", 90), ("6h", 21600), ("7d", 604800), ("1h30m", 5400), (12, 12)])
def test_ttl_spellings(ttl: Any, seconds: float) -> None:
    from notebook_memo._config import parse_ttl

    assert parse_ttl(ttl) == seconds


def test_bad_ttl_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="cannot read the TTL"):
        memo(ttl="soon")


def test_expired_entries_are_reclaimed(counter: Counter) -> None:
    @memo(ttl=0.05)
    def f() -> int:
        return 1

    f()
    store = f._store()
    assert len(f.entries()) == 1
    time.sleep(0.1)
    # Entries stay visible to explain() for a grace period, then diskcache reclaims them.
    assert store.writer.expire(now=time.time() + 3600 + 1) == 1
    assert f.entries() == []


# -- async --------------------------------------------------------------------------------


def test_async_results_are_cached_not_the_coroutine(counter: Counter) -> None:
    @memo
    async def fetch(url: str) -> dict[str, str]:
        counter()
        await asyncio.sleep(0)
        return {"url": url}

    assert inspect.iscoroutinefunction(fetch) or asyncio.iscoroutinefunction(fetch.__wrapped__)
    assert asyncio.run(fetch("a")) == {"url": "a"}
    assert asyncio.run(fetch("a")) == {"url": "a"}
    assert counter.n == 1


def test_concurrent_awaits_of_one_key_run_the_body_once(counter: Counter) -> None:
    @memo
    async def slow(x: int) -> list[int]:
        counter()
        await asyncio.sleep(0.05)
        return [x]

    async def main() -> list[list[int]]:
        return await asyncio.gather(*(slow(7) for _ in range(10)), slow(8))

    results = asyncio.run(main())
    assert results == [[7]] * 10 + [[8]]
    assert counter.n == 2
    assert len({id(r) for r in results}) == 11  # each caller gets its own object


def test_async_exception_reaches_every_waiter_and_is_not_stored(counter: Counter) -> None:
    @memo
    async def bad(x: int) -> int:
        counter()
        await asyncio.sleep(0.01)
        raise KeyError(x)

    async def main() -> list[Any]:
        return await asyncio.gather(bad(1), bad(1), return_exceptions=True)

    results = asyncio.run(main())
    assert all(isinstance(r, KeyError) for r in results)
    assert counter.n == 1
    assert not bad.is_cached(1)


def test_top_level_await_in_ipython(shell: Shell) -> None:
    shell.run(
        """
        import asyncio
        from notebook_memo import memo
        runs = []
        class Runs(list):
            def __memo_key__(self): return 'runs'
        runs = Runs()
        @memo
        async def fetch(x):
            runs.append(x)
            await asyncio.sleep(0)
            return x * 10
        """
    )
    shell.run("a = await fetch(4)")
    shell.run("b = await fetch(4)")
    assert shell["a"] == shell["b"] == 40
    assert shell["runs"] == [4]


# -- controls -----------------------------------------------------------------------------


def test_refresh_uncached_is_cached_invalidate_clear(counter: Counter) -> None:
    @memo
    def f(x: int) -> int:
        counter()
        return x + counter.n

    assert not f.is_cached(1)
    assert f(1) == 2
    assert f.is_cached(1)
    assert f.refresh(1) == 3
    assert f(1) == 3
    assert f.uncached(1) == 4
    assert f(1) == 3
    assert f.invalidate(1) is True
    assert f.invalidate(1) is False
    assert f(1) == 5
    f(2)
    assert f.clear() == 2
    assert not f.is_cached(1) and not f.is_cached(2)


def test_cache_info_counts_hits_misses_entries_bytes_and_time_saved() -> None:
    @memo
    def f(x: int) -> bytes:
        time.sleep(0.02)
        return b"x" * 1000

    f(1)
    f(1)
    f(1)
    f(2)
    info = f.cache_info()
    assert (info.hits, info.misses, info.entries) == (2, 2, 2)
    assert info.bytes >= 2000
    assert info.saved_seconds >= 0.04


def test_disabled_and_refreshing_blocks(counter: Counter) -> None:
    @memo
    def f() -> int:
        counter()
        return counter.n

    f()
    with memo.disabled():
        assert f() == 2
    assert f() == 1
    with memo.refreshing():
        assert f() == 3
    assert f() == 3


def test_environment_variable_disables_caching(counter: Counter, monkeypatch: pytest.MonkeyPatch) -> None:
    @memo
    def f() -> int:
        counter()
        return 1

    monkeypatch.setenv("NOTEBOOK_MEMO_DISABLE", "1")
    f()
    f()
    assert counter.n == 2
    assert f.cache_info().entries == 0


def test_skip_if_returns_but_does_not_store(counter: Counter) -> None:
    @memo(skip_if=lambda r: r is None or r.get("status") != 200)
    def call_api(x: int) -> dict[str, int]:
        counter()
        return {"status": 500 if counter.n == 1 else 200}

    assert call_api(1) == {"status": 500}
    assert call_api(1) == {"status": 200}
    assert call_api(1) == {"status": 200}
    assert counter.n == 2


def test_cache_dir_argument_then_configure_then_environment(tmp_path: Path, cache_dir: Path) -> None:
    explicit = tmp_path / "explicit"
    configured = tmp_path / "configured"

    @memo(cache_dir=explicit)
    def a() -> int:
        return 1

    @memo
    def b() -> int:
        return 2

    a()
    b()
    assert explicit.is_dir() and cache_dir.is_dir()
    configure(cache_dir=str(configured))
    b()
    assert configured.is_dir()


def test_generator_functions_are_refused() -> None:
    def gen() -> Any:
        yield 1

    with pytest.raises(TypeError, match="generator"):
        memo(gen)


# -- notebook functions and restarts -------------------------------------------------------

DEFINE = """
from notebook_memo import memo
from dataclasses import dataclass

@dataclass
class Result:
    name: str
    scores: dict

@memo
def analyse(words, weights={"a": 1}):
    OUT.setdefault("runs", 0)
    OUT["runs"] += 1
    return Result("r", {w: len(w) * weights.get(w, 1) for w in sorted(words)})
"""


class _OutCounter(dict):  # type: ignore[type-arg]
    pass


def test_notebook_function_hits_in_the_same_shell(shell: Shell) -> None:
    shell.ip.user_ns["OUT"] = _Out()
    shell.run(DEFINE)
    shell.run("r1 = analyse({'x', 'yy'})")
    shell.run("r2 = analyse({'yy', 'x'})")
    assert shell["OUT"]["runs"] == 1
    assert shell["r1"] == shell["r2"]


class _Out(dict):  # type: ignore[type-arg]
    def __memo_key__(self) -> str:
        return "out"


def test_restart_with_another_hash_seed_is_a_hit_and_returns_the_users_class(cache_dir: Path) -> None:
    cells = [
        "class _Out(dict):\n    def __memo_key__(self): return 'out'\nOUT.clear()\nOUT_REAL = OUT\nOUT = _Out()",
        DEFINE,
        "r = analyse({'alpha', 'beta', 'gamma'}, weights={'beta': 2, 'alpha': 3})\n"
        "OUT_REAL['runs'] = OUT.get('runs', 0)\n"
        "OUT_REAL['is_result'] = isinstance(r, Result) and type(r) is Result\n"
        "OUT_REAL['scores'] = r.scores",
    ]
    first = run_kernel(cells, cache_dir, seed=1)
    second = run_kernel(cells, cache_dir, seed=2)
    third = run_kernel(cells, cache_dir, seed=3)
    assert first["runs"] == 1
    assert second["runs"] == 0 and third["runs"] == 0
    assert second["is_result"] is True  # an instance of the class this kernel defined
    assert first["scores"] == second["scores"] == {"alpha": 15, "beta": 8, "gamma": 5}


def test_restart_after_a_comment_edit_is_a_hit_and_after_a_body_edit_a_miss(cache_dir: Path) -> None:
    setup = "class _Out(dict):\n    def __memo_key__(self): return 'out'\nREAL = OUT\nOUT = _Out()"
    body = "from notebook_memo import memo\n@memo\ndef f(x):\n    OUT['n'] = OUT.get('n', 0) + 1\n    return x * 2\n"
    call = "v = f(21)\nREAL['n'] = OUT.get('n', 0)\nREAL['v'] = v"
    assert run_kernel([setup, body, call], cache_dir)["n"] == 1
    commented = body.replace("    return x * 2", "    # explain the doubling\n    return x * 2  # doubled")
    assert run_kernel([setup, commented, call], cache_dir, seed=7)["n"] == 0
    edited = body.replace("x * 2", "x * 3")
    out = run_kernel([setup, edited, call], cache_dir, seed=8)
    assert out["n"] == 1 and out["v"] == 63


# -- degraded storage ----------------------------------------------------------------------


def test_corrupt_entry_is_recomputed_with_a_warning(counter: Counter, cache_dir: Path) -> None:
    @memo
    def f() -> np.ndarray:
        counter()
        return np.arange(100_000.0)

    f()
    [record] = f.entries()
    assert record.path is not None
    with open(record.path, "r+b") as handle:
        handle.seek(-5000, os.SEEK_END)
        handle.write(b"\xff")
    with pytest.warns(StorageWarning, match="damaged"):
        value = f()
    assert counter.n == 2
    assert np.array_equal(value, np.arange(100_000.0))
    assert f() is not None and counter.n == 2  # overwritten: a hit again


def test_value_that_no_longer_unpickles_is_a_miss(shell: Shell) -> None:
    shell.ip.user_ns["OUT"] = _Out()
    with pytest.warns(MemoWarning, match=r"globals\(\)"):  # said once: Box is not a tracked dependency
        shell.run(
            """
            from notebook_memo import memo
            class Box:
                def __init__(self, v): self.v = v
            @memo
            def make(v):
                OUT['n'] = OUT.get('n', 0) + 1
                return globals()['Box'](v)  # reached by name at run time: not a tracked dependency
            make(1)
            """
        )
    # The stored value's __main__.Box now names a class its state no longer fits: defined otherwise, so it is
    # computed again, silently (an edit, not damage).
    shell.run("class Box:\n    __slots__ = ('w',)\n    def __init__(self, v): self.w = v")
    with warnings.catch_warnings():
        warnings.simplefilter("error", StorageWarning)
        shell.run("make(1)")
    assert shell["OUT"]["n"] == 2
    assert shell["make"](1).w == 1  # stored again, from the class the notebook has now


def test_unwritable_cache_location_still_returns_results(tmp_path: Path, counter: Counter) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache directory should be")

    @memo(cache_dir=blocker / "cache")
    def f(x: int) -> int:
        counter()
        return x + 1

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert f(1) == 2
        assert f(1) == 2
    storage = [w for w in caught if issubclass(w.category, StorageWarning)]
    assert len(storage) == 1  # one warning, not one per call
    assert counter.n == 2


def test_cache_directory_deleted_while_running_is_recreated(cache_dir: Path, counter: Counter) -> None:
    import shutil

    @memo
    def f(x: int) -> int:
        counter()
        return x

    f(1)
    shutil.rmtree(cache_dir)
    # The store's background thread re-checks the directory every TOUCH_FLUSH_INTERVAL seconds (a hit
    # itself makes no system call): the call after that recomputes, into a new directory.
    time.sleep(_config.TOUCH_FLUSH_INTERVAL + 1.0)
    assert f(1) == 1
    assert counter.n == 2
    assert f(1) == 1 and counter.n == 2
    assert cache_dir.is_dir()


# -- a body that changes its arguments in place -------------------------------------------------------


def test_a_body_that_changes_an_argument_in_place_is_not_cached_and_says_so(counter: Counter) -> None:
    # A hit would return the result without the change the plain call makes (a model trained by the step,
    # a frame given a column): later code would see another state.
    import torch

    @memo
    def train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor) -> float:
        counter()
        opt.zero_grad()
        loss = model(x).pow(2).mean()
        loss.backward()
        opt.step()
        return float(loss.detach())

    @memo
    def add_column(df: pd.DataFrame) -> int:
        counter()
        df["y"] = df["x"] * 2
        return len(df)

    runs = []
    for attempt in range(2):
        model = torch.nn.Linear(2, 1)
        model.load_state_dict({"weight": torch.ones(1, 2), "bias": torch.zeros(1)})
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            train_step(model, opt, torch.ones(3, 2))
        said = [str(w.message) for w in caught if "changed its argument 'model' in place" in str(w.message)]
        assert len(said) == (1 if attempt == 0 else 0)  # once
        runs.append(model.weight.detach().tolist())
    assert counter.n == 2 and runs[0] == runs[1] != [[1.0, 1.0]]  # trained both times
    for _ in range(2):
        frame = pd.DataFrame({"x": [1, 2]})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert add_column(frame) == 2
        assert list(frame.columns) == ["x", "y"]
    assert counter.n == 4


def test_a_body_that_only_reads_its_arguments_still_hits(counter: Counter) -> None:
    import torch

    @memo
    def predict(model: torch.nn.Module, x: torch.Tensor, rows: list[int], table: pd.DataFrame) -> float:
        counter()
        with torch.no_grad():
            return float(model(x).sum()) + sum(rows) + float(table["x"].sum())

    torch.manual_seed(0)
    model, x, rows, table = torch.nn.Linear(2, 1), torch.ones(3, 2), [1, 2], pd.DataFrame({"x": [1.0]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning about a change
        first = predict(model, x, rows, table)
        assert predict(model, x, rows, table) == first
    assert counter.n == 1


def test_an_async_body_that_changes_an_argument_is_not_cached(counter: Counter) -> None:
    @memo
    async def append(items: list[int]) -> int:
        counter()
        items.append(1)
        return len(items)

    with pytest.warns(MemoWarning, match="changed its argument 'items'"):
        items = [0]
        assert asyncio.run(append(items)) == 2
    items = [0]
    assert asyncio.run(append(items)) == 2
    assert items == [0, 1] and counter.n == 2
