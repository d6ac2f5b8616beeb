"""Preconditions and the shortcuts taken for speed (np.random read in place, defaults, cached metadata,
the environment): none of them serves a stale result.

A failing test is a false hit (a cached answer served after something it depends on changed), a
notebook that goes on differently with the cache than without it, or a switch that is not obeyed.
"""

from __future__ import annotations

import json
import os
import random
import textwrap
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import notebook_memo
from notebook_memo import MemoWarning, _config, memo
from notebook_memo.stores import local as _store
from tests.conftest import Counter, Shell, run_kernel


@pytest.fixture(autouse=True)
def _keep_global_generators() -> Any:
    """Each test leaves np.random and random as it found them."""
    np_state, py_state = np.random.get_state(), random.getstate()
    yield
    np.random.set_state(np_state)
    random.setstate(py_state)


class _Events:
    """Two events a body waits on; never part of a key."""

    def __init__(self) -> None:
        self.reached, self.go = threading.Event(), threading.Event()

    def __memo_key__(self) -> str:
        return "events"


# -- 1. np.random read in place: the words, pos and has_gauss == 0 of the state read last --------------------

def test_restoring_a_checkpoint_that_holds_a_cached_gaussian_is_not_served_the_entry_without_it(
        counter: Counter) -> None:
    """(W, has_gauss=1, g) and (W, has_gauss=0) share their 2500 raw bytes; only the first draws g next."""
    @memo
    def noise(c: Counter) -> float:
        c()
        return float(np.random.standard_normal())

    np.random.seed(0)
    np.random.standard_normal()  # an odd number of normals: a Gaussian is cached
    checkpoint = np.random.get_state()
    assert checkpoint[3] == 1
    np.random.standard_normal()  # uses the cached one: the same words, none cached
    without = np.random.get_state()
    assert without[1].tobytes() == checkpoint[1].tobytes() and without[2] == checkpoint[2] and without[3] == 0
    first = noise(counter)  # stored for (W, no Gaussian)
    np.random.set_state(without)
    assert noise(counter) == first and counter.n == 1  # a hit; the state read last is (W, 0)
    np.random.set_state(checkpoint)  # rerunning from the checkpoint
    assert noise(counter) == checkpoint[4], "served the entry of the state without the cached Gaussian"


def test_a_body_that_leaves_a_cached_gaussian_on_the_same_words_leaves_it_after_a_hit(counter: Counter) -> None:
    @memo
    def prepare(c: Counter) -> int:
        c()
        state = np.random.get_state()
        np.random.set_state((*state[:3], 1, 0.5))  # the same words, a Gaussian cached
        return 1

    np.random.seed(0)
    prepare(counter)
    plain_next = float(np.random.standard_normal())
    assert plain_next == 0.5
    np.random.seed(0)
    prepare(counter)
    assert counter.n == 1
    assert float(np.random.standard_normal()) == plain_next, "the hit did not leave np.random as the body did"


def test_np_random_with_another_bit_generator_is_still_followed(counter: Counter) -> None:
    """np.random.set_bit_generator (numpy >= 1.25): the legacy functions draw from a PCG64."""
    @memo
    def draw(c: Counter) -> float:
        c()
        return float(np.random.rand())

    original = np.random.get_bit_generator()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            np.random.set_bit_generator(np.random.PCG64(0))
            draw(counter)
            np.random.set_bit_generator(np.random.PCG64(1))
            expected = float(np.random.RandomState(np.random.PCG64(1)).random_sample())
            assert draw(counter) == expected, "served the draw of another state"
    finally:
        np.random.set_bit_generator(original)


# -- 1. a body that draws and leaves the generator in the state it found --------------------------------------

def _peek_numpy() -> float:
    state = np.random.get_state()
    x = float(np.random.rand())
    np.random.set_state(state)
    return x


def _peek_random() -> float:
    state = random.getstate()
    x = random.random()
    random.setstate(state)
    return x


def _peek_torch() -> float:
    import torch

    state = torch.get_rng_state()
    x = float(torch.rand(1))
    torch.set_rng_state(state)
    return x


def _seed_numpy(n: int) -> None:
    np.random.seed(n)


def _seed_random(n: int) -> None:
    random.seed(n)


def _seed_torch(n: int) -> None:
    import torch

    torch.manual_seed(n)


PEEKS: dict[str, tuple[Callable[[], float], Callable[[int], None]]] = {
    "numpy": (_peek_numpy, _seed_numpy),
    "random": (_peek_random, _seed_random),
    "torch": (_peek_torch, _seed_torch),
}


@pytest.mark.parametrize("generator", sorted(PEEKS))
def test_a_body_that_draws_and_puts_the_state_back_is_keyed_by_that_state(generator: str, counter: Counter) -> None:
    """A common 'do not disturb the global generator' pattern: the result is the next draw of the state found."""
    peek, seed = PEEKS[generator]

    @memo
    def sample(c: Counter) -> float:
        c()
        return peek()

    seed(0)
    at_0 = sample(counter)
    seed(1)
    expected = peek()
    assert at_0 != expected
    assert sample(counter) == expected, f"served the draw of seed 0 for seed 1 ({generator})"


def test_a_body_that_draws_then_reseeds_to_the_state_it_found_is_keyed_by_it(counter: Counter) -> None:
    @memo
    def draw_then_reset(c: Counter) -> float:
        c()
        x = float(np.random.rand())
        np.random.seed(0)
        return x

    np.random.seed(0)
    draw_then_reset(counter)
    np.random.seed(5)
    expected = float(np.random.rand())
    np.random.seed(5)
    assert draw_then_reset(counter) == expected, "served the draw of seed 0 for seed 5"


def test_draw_seed_draw_ending_in_the_state_it_found_is_keyed_by_it(counter: Counter) -> None:
    @memo
    def draw_seed_draw(c: Counter) -> list[float]:
        c()
        first = float(np.random.rand())
        np.random.seed(0)
        return [first, float(np.random.rand())]

    np.random.seed(0)
    np.random.rand()  # the state after seed(0) and one draw: what the body leaves
    draw_seed_draw(counter)
    np.random.seed(7)
    expected = [float(np.random.rand()), float(np.random.RandomState(0).rand())]
    np.random.seed(7)
    assert draw_seed_draw(counter) == expected, "its first draw was not keyed"


def test_a_seed_imported_by_name_before_any_memoized_call_is_still_correct(shell: Shell) -> None:
    """``from numpy.random import seed`` in a fresh kernel holds the unwrapped function: at worst a miss."""
    shell.run("""
    import numpy as np
    from numpy.random import seed
    from notebook_memo import memo

    class Runs(list):
        def __memo_key__(self): return "runs"

    runs = Runs()

    @memo
    def f():
        runs.append(1)
        seed(3)
        return float(np.random.rand())

    np.random.seed(0)
    a = f()
    np.random.seed(1)
    b = f()
    after = float(np.random.rand())
    """)
    expected = float(np.random.RandomState(3).rand())
    assert shell["a"] == shell["b"] == expected
    rs = np.random.RandomState(3)
    rs.rand()
    assert shell["after"] == float(rs.rand())


def test_seeding_from_os_entropy_inside_the_body_is_not_silently_frozen(counter: Counter) -> None:
    """``np.random.seed()`` with no argument: uncached, every call differs; cached, one value forever."""
    @memo
    def fresh(c: Counter) -> float:
        c()
        np.random.seed()
        return float(np.random.rand())

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fresh(counter)
        fresh(counter)
    warned = [w for w in caught if issubclass(w.category, MemoWarning)]
    assert counter.n == 2 or warned, "a result drawn from OS entropy is cached with no warning"


@pytest.mark.parametrize("order", ["inner_seeds_first", "outer_draws_first"])
def test_nested_functions_where_the_inner_one_seeds_match_an_uncached_session(order: str, counter: Counter) -> None:
    @memo
    def inner(c: Counter) -> float:
        c()
        np.random.seed(0)
        return float(np.random.rand())

    @memo
    def outer(c: Counter) -> list[float]:
        c()
        if order == "outer_draws_first":
            first = float(np.random.rand())
            return [first, inner(c), float(np.random.rand())]
        return [inner(c), float(np.random.rand())]

    def session(start: int, cached: bool) -> list[Any]:
        np.random.seed(start)
        if cached:
            return [outer(counter), float(np.random.rand())]
        with notebook_memo.memo.disabled():
            return [outer(counter), float(np.random.rand())]

    plain = [session(1, False), session(2, False)]
    assert [session(1, True), session(2, True)] == plain
    assert [session(1, True), session(2, True)] == plain


def test_a_seed_in_another_thread_does_not_free_a_running_body_from_its_state(counter: Counter) -> None:
    """The main thread seeds while a background body waits, before it draws (no timing: events)."""
    events = _Events()

    @memo
    def background(c: Counter, ev: _Events) -> float:
        c()
        ev.reached.set()
        ev.go.wait(30)
        return float(np.random.rand())

    results: dict[str, float] = {}
    np.random.seed(1)
    worker = threading.Thread(target=lambda: results.setdefault("bg", background(counter, events)))
    worker.start()
    assert events.reached.wait(30)
    np.random.seed(123)  # the notebook seeds for something else
    events.go.set()
    worker.join(30)
    assert results["bg"] == float(np.random.RandomState(123).rand())
    np.random.seed(2)
    expected = float(np.random.rand())
    np.random.seed(2)
    assert background(counter, events) == expected, "the body was taken to seed before drawing"


# -- 2. the memoized function's own defaults ------------------------------------------------------------------

def test_reassigned_defaults_of_the_memoized_function_are_not_served_the_old_result(counter: Counter) -> None:
    @memo
    def scaled(c: Counter, factor: int = 1) -> int:
        c()
        return 10 * factor

    assert scaled(counter) == 10
    scaled.__wrapped__.__defaults__ = (5,)
    assert scaled.__wrapped__(counter) == 50
    assert scaled(counter) == 50, "the body runs with the new default, the key holds the old one"


def test_reassigned_keyword_defaults_of_the_memoized_function_are_not_served_the_old_result(
        counter: Counter) -> None:
    @memo
    def scaled(c: Counter, *, factor: int = 1) -> int:
        c()
        return 10 * factor

    assert scaled(counter) == 10
    scaled.__wrapped__.__kwdefaults__ = {"factor": 7}
    assert scaled(counter) == 70


def test_keyword_defaults_changed_in_place_are_not_served_the_old_result(counter: Counter) -> None:
    @memo
    def scaled(c: Counter, *, factor: int = 1) -> int:
        c()
        return 10 * factor

    assert scaled(counter) == 10
    scaled.__wrapped__.__kwdefaults__["factor"] = 9
    assert scaled(counter) == 90


def test_a_mutable_default_changed_in_place_and_a_helper_default_are_in_the_key(counter: Counter) -> None:
    def helper(a: int = 1) -> int:
        return a

    @memo
    def f(c: Counter, items: list[int] = [1]) -> list[int]:  # noqa: B006
        c()
        return [*items, helper()]

    assert f(counter) == [1, 1]
    f.__wrapped__.__defaults__[0].append(2)
    assert f(counter) == [1, 2, 1]
    helper.__defaults__ = (3,)
    assert f(counter) == [1, 2, 3]
    assert counter.n == 3


# -- 3. a run that read no files does no file work ------------------------------------------------------------

def test_an_outer_body_whose_only_file_is_an_inner_hit_keeps_it(tmp_path: Path, counter: Counter) -> None:
    data = tmp_path / "data.txt"
    data.write_text("one")

    @memo
    def inner(c: Counter, path: str) -> str:
        c()
        return Path(path).read_text()

    @memo
    def outer(c: Counter, path: str) -> str:
        c()
        return inner(c, path) + "!"

    assert inner(counter, str(data)) == "one"
    assert outer(counter, str(data)) == "one!"  # inner served inside it: inherited conditions only
    data.write_text("three")
    assert outer(counter, str(data)) == "three!"


def test_a_file_read_by_a_thread_the_body_starts_is_its_dependency(tmp_path: Path, counter: Counter) -> None:
    data = tmp_path / "data.txt"
    data.write_text("one")

    @memo
    def load(c: Counter, path: str) -> str:
        c()
        out: list[str] = []
        worker = threading.Thread(target=lambda: out.append(Path(path).read_text()))
        worker.start()
        worker.join()
        return out[0]

    assert load(counter, str(data)) == "one"
    data.write_text("three")
    assert load(counter, str(data)) == "three"


# -- 4. parsed metadata kept on the header; records reused from the hot cache ---------------------------------

def test_no_caller_changes_the_parsed_metadata_of_a_record(tmp_path: Path, counter: Counter) -> None:
    data = tmp_path / "data.txt"
    data.write_text("one")

    @memo
    def load(c: Counter, path: str) -> str:
        c()
        return Path(path).read_text() + str(np.random.rand())

    @memo
    def outer(c: Counter, path: str) -> str:
        return load(c, path)

    np.random.seed(0)
    load(counter, str(data))
    np.random.seed(0)
    outer(counter, str(data))
    np.random.seed(0)
    load(counter, str(data))
    load.explain(counter, str(data))
    load.cache_info()
    load.is_cached(counter, str(data))
    load.clear_stale()
    np.random.seed(0)
    outer(counter, str(data))
    store = load._store()
    records = [record for _, record in store._hot.values()] + load.entries() + outer.entries()
    assert records
    for record in records:
        if record.header.parsed is not None:
            assert record.header.parsed == json.loads(bytes(record.header.meta_raw))


def test_an_entry_overwritten_by_another_kernel_after_its_file_changed_is_not_served_from_the_hot_cache(
        shell: Shell, cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_store, "_REVALIDATE", 3600.0)  # the reuse window, made as long as the test
    data = tmp_path / "data.txt"
    data.write_text("one")
    define = textwrap.dedent(f"""
    from pathlib import Path
    from notebook_memo import memo

    @memo
    def load():
        return Path({str(data)!r}).read_text()
    """)
    shell.run(define)
    assert shell.run("load()") == "one"
    assert shell.run("load()") == "one"  # the record is hot now
    out = run_kernel([define, f"Path({str(data)!r}).write_text('three')\nOUT['v'] = load()"], cache_dir)
    assert out["v"] == "three"
    assert shell.run("load()") == "three"


# -- 5. environment variables read from os.environ._data ------------------------------------------------------

def test_the_cache_variables_follow_os_environ(shell: Shell, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(_config.ENV_DISABLE, "0")  # restored after the test whatever the cells do
    shell.run("""
    from notebook_memo import memo

    class Runs(list):
        def __memo_key__(self): return "runs"

    runs = Runs()

    @memo
    def f():
        runs.append(1)
        return 1
    """)
    shell.run("f(); f()")
    assert len(shell["runs"]) == 1
    shell.run("%env NOTEBOOK_MEMO_DISABLE=1")
    shell.run("f(); f()")
    assert len(shell["runs"]) == 3, "%env NOTEBOOK_MEMO_DISABLE=1 did not disable caching"
    shell.run("import os\ndel os.environ['NOTEBOOK_MEMO_DISABLE']")
    shell.run("f()")
    assert len(shell["runs"]) == 3
    other = tmp_path / "other-cache"
    shell.run(f"os.environ['NOTEBOOK_MEMO_DIR'] = {str(other)!r}")
    shell.run("f(); f()")
    assert len(shell["runs"]) == 4, "NOTEBOOK_MEMO_DIR changed at run time did not switch the directory"
    assert other.exists()
    monkeypatch.setenv(_config.ENV_DISABLE, "yes")
    shell.run("f()")
    assert len(shell["runs"]) == 5
    os.putenv(_config.ENV_DISABLE, "0")  # not seen by os.environ either: still disabled, consistently
    assert _config.environ(_config.ENV_DISABLE) == os.environ.get(_config.ENV_DISABLE) == "yes"
    assert _config.disabled_by_env()


def test_a_replaced_os_environ_is_obeyed(monkeypatch: pytest.MonkeyPatch, counter: Counter) -> None:
    """``mock.patch.object(os, "environ", {...})`` / ``monkeypatch.setattr``: os.environ.get sees it."""
    @memo
    def f(c: Counter) -> int:
        c()
        return 1

    f(counter)
    monkeypatch.setattr(os, "environ", {**os.environ, _config.ENV_DISABLE: "1"})
    f(counter)
    assert counter.n == 2, "NOTEBOOK_MEMO_DISABLE in the os.environ the process now has is ignored"


# -- 6. generators met while keying a call --------------------------------------------------------------------

class _Holder:
    def __init__(self, rng: Any) -> None:
        self.rng = rng

    def __memo_key__(self) -> Any:
        return self.rng


class _Registered:
    def __init__(self, rng: Any) -> None:
        self.rng = rng


notebook_memo.register_hasher(_Registered, lambda r: ("registered", r.rng))


@pytest.mark.parametrize("holder", [_Holder, _Registered])
def test_a_generator_inside_a_memo_key_or_a_registered_hasher_is_left_advanced(holder: type,
                                                                                counter: Counter) -> None:
    @memo
    def sample(c: Counter, h: Any) -> list[float]:
        c()
        return h.rng.random(2).tolist()  # type: ignore[no-any-return]

    def session(cached: bool) -> list[Any]:
        h = holder(np.random.default_rng(1))
        call = sample if cached else sample.uncached
        return [call(counter, h), call(counter, h), float(h.rng.random())]

    plain = session(False)
    assert session(True) == plain == session(True)
    assert counter.n == 2 + 2


SHARED_RNG = np.random.default_rng(0)


@pytest.mark.parametrize("first", ["other", "same"])
def test_a_generator_held_by_a_global_and_passed_as_the_argument_is_one_stream(first: str, counter: Counter) -> None:
    @memo
    def both(c: Counter, rng: Any) -> list[float]:
        c()
        return [float(rng.random()), float(SHARED_RNG.random())]

    start = np.random.default_rng(0).bit_generator.state

    def call(which: str, cached: bool) -> list[Any]:
        SHARED_RNG.bit_generator.state = start
        rng = SHARED_RNG if which == "same" else np.random.default_rng(0)
        result = (both if cached else both.uncached)(counter, rng)
        return [result, float(SHARED_RNG.random())]

    second = "same" if first == "other" else "other"
    plain = [call(first, False), call(second, False)]
    assert [call(first, True), call(second, True)] == plain
    assert [call(first, True), call(second, True)] == plain


def test_threads_keying_calls_with_shared_and_distinct_generators_concurrently(counter: Counter) -> None:
    @memo
    def pair(c: Counter, gens: list[Any]) -> list[float]:
        c()
        return [float(g.random()) for g in gens]

    barrier = threading.Barrier(8)
    results: dict[int, list[float]] = {}

    def worker(i: int) -> None:
        if i % 2:
            gens = [np.random.default_rng(0), np.random.default_rng(0)]
        else:
            g = np.random.default_rng(0)
            gens = [g, g]
        barrier.wait(30)
        results[i] = pair(counter, gens)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    distinct = pair.uncached(counter, [np.random.default_rng(0), np.random.default_rng(0)])
    g = np.random.default_rng(0)
    shared = pair.uncached(counter, [g, g])
    for i, result in results.items():
        assert result == (distinct if i % 2 else shared), i
    assert len(results) == 8
