"""The notebook's ``functools.lru_cache`` functions serving memoized calls from their caches.

A call served from such a function's cache opens no file: what it read when it filled that entry must still become
the call's condition, wherever the body reached the function (a global, an argument, a method of a notebook class,
a registry dict, a ``%%memo`` cell), however many wrappers share its code, and whichever thread did the reading.
Fills made at the notebook's top level after the function was first met are seen too, and a function whose code
cannot read files (``fib``) is trusted wherever it was filled.

Each test fails with a stale result served, or with a pure or seen function's result refused.
"""

from __future__ import annotations

import gc
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RUNS_SETUP, Shell, run_kernel

LOADER = """
    import functools

    @functools.lru_cache
    def load(name):
        with open(name) as f:
            return f.read()
"""


def _stale_after_change(shell: Shell, tmp_path: Path, setup: str, call: str, clear: str) -> tuple[str, str]:
    """Fill the helper (reading b.txt) inside a memoized run, let a second memoized call (another ``tag``) be served
    from its cache, change the file, empty the helper's cache and make the second call again: return what it gave
    before and after."""
    (tmp_path / "b.txt").write_text("B1")
    shell.run(RUNS_SETUP)
    shell.run(setup)
    shell.run(f"first = {call.format(tag=1)}")
    shell.run(f"before = {call.format(tag=2)}")  # served from the helper's cache: opens no file
    (tmp_path / "b.txt").write_text("B2, changed")
    shell.run(clear)
    shell.run(f"after = {call.format(tag=2)}")
    return shell["before"], shell["after"]


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


# -- where the body reaches the helper ---------------------------------------------------------------------------


def test_a_memo_cell_served_by_an_lru_helper_takes_its_reads(shell: Shell, here: Path) -> None:
    (here / "p.txt").write_text("a,1\nb,2\n")
    shell.run("%load_ext notebook_memo")
    shell.run("""
        import functools

        @functools.lru_cache
        def table():
            with open("p.txt") as f:
                return dict(line.split(",") for line in f.read().split())
    """)
    shell.run("%%memo\nfirst = table()['a']")
    shell.run("%%memo\nsecond = table()['b']")  # served from the helper's cache: opens no file
    (here / "p.txt").write_text("a,1\nb,200\n")
    shell.run("table.cache_clear()")
    shell.run("%%memo\nsecond = table()['b']")
    assert (shell["first"], shell["second"]) == ("1", "200")


def test_an_lru_helper_passed_as_an_argument_is_watched(shell: Shell, here: Path) -> None:
    before, after = _stale_after_change(shell, here, LOADER + """
    @memo
    def apply(loader, tag):
        return loader("b.txt") + "!"
    """, "apply(load, {tag})", "load.cache_clear()")
    assert (before, after) == ("B1!", "B2, changed!")


def test_an_lru_method_of_a_notebook_class_reached_through_an_argument_is_watched(shell: Shell, here: Path) -> None:
    before, after = _stale_after_change(shell, here, """
    import functools

    class Source:
        @functools.lru_cache
        def text(self, name):
            with open(name) as f:
                return f.read()

    @memo
    def read(source, tag):
        return source.text("b.txt")

    SOURCE = Source()
    """, "read(SOURCE, {tag})", "Source.text.cache_clear()")
    assert (before, after) == ("B1", "B2, changed")


def test_an_lru_method_of_a_global_instance_is_watched(shell: Shell, here: Path) -> None:
    before, after = _stale_after_change(shell, here, """
    import functools

    class Repo:
        @functools.lru_cache
        def load(self, name):
            with open(name) as f:
                return f.read()

    REPO = Repo()

    @memo
    def via_method(tag):
        return REPO.load("b.txt")
    """, "via_method({tag})", "Repo.load.cache_clear()")
    assert (before, after) == ("B1", "B2, changed")


def test_an_lru_helper_in_a_global_registry_is_watched(shell: Shell, here: Path) -> None:
    before, after = _stale_after_change(shell, here, LOADER + """
    LOADERS = {"text": load}

    @memo
    def via_registry(tag):
        return LOADERS["text"]("b.txt")
    """, "via_registry({tag})", "load.cache_clear()")
    assert (before, after) == ("B1", "B2, changed")


def test_an_lru_helper_argument_filled_before_the_import_is_not_stored_across_a_restart(cache_dir: Path) -> None:
    data = cache_dir.parent / "data.txt"  # run_kernel runs in tmp_path
    data.write_text("OLD")
    cells = [LOADER + "\n    load('data.txt')\n", """
        from notebook_memo import memo

        @memo
        def report(loader, name):
            return "value=" + loader(name)
    """, "OUT['value'] = report(load, 'data.txt')"]
    first = run_kernel(cells, cache_dir, seed=1)
    assert first["value"] == "value=OLD" and any("load" in w for w in first["_warnings"]), first["_warnings"]
    data.write_text("NEW")
    assert run_kernel(cells, cache_dir, seed=2)["value"] == "value=NEW"


# -- which wrapper, which thread ---------------------------------------------------------------------------------


def test_two_lru_wrappers_of_one_function_code_are_both_watched(shell: Shell, here: Path) -> None:
    before, after = _stale_after_change(shell, here, """
    import functools

    def make_loader():
        @functools.lru_cache
        def load(name):
            with open(name) as f:
                return f.read()
        return load

    load1 = make_loader()
    load2 = make_loader()

    @memo
    def fill(tag):
        return load1("b.txt") + str(load2 is not None)

    @memo
    def served(tag):
        return load1("b.txt")
    """, "served({tag}) if {tag} == 2 else fill({tag})", "load1.cache_clear(); load2.cache_clear()")
    assert (before, after) == ("B1", "B2, changed")


def test_an_lru_helper_reading_in_a_thread_pool_is_watched(shell: Shell, here: Path) -> None:
    before, after = _stale_after_change(shell, here, """
    import concurrent.futures
    import functools
    import pathlib

    def read(name):
        return pathlib.Path(name).read_text()

    @functools.lru_cache
    def load_all(names):
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            return "".join(pool.map(read, names))

    @memo
    def fill(tag):
        return load_all(("b.txt",))

    @memo
    def served(tag):
        return "value=" + load_all(("b.txt",))
    """, "served({tag}) if {tag} == 2 else fill({tag})", "load_all.cache_clear()")
    assert (before, after) == ("value=B1", "value=B2, changed")


# -- fills at the top level --------------------------------------------------------------------------------------


def _warned(shell: Shell, call: str) -> tuple[object, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shell.run(f"_value = {call}")
    return shell["_value"], [str(w.message) for w in caught if "lru_cache" in str(w.message)]


def test_a_pure_lru_helper_filled_at_top_level_is_trusted(shell: Shell) -> None:
    shell.run(RUNS_SETUP)
    shell.run("""
        import functools
        import math

        def halve(n):
            return math.floor(n / 2)

        @functools.lru_cache
        def fib(n):
            return n if n < 2 else fib(n - 1) + fib(n - 2) + halve(0)

        @memo
        def f(n):
            ran("f")
            return fib(n) + 1
    """)
    shell.run("fib(25)")
    assert _warned(shell, "f(25)") == (75026, [])
    assert _warned(shell, "f(25)") == (75026, [])
    assert shell["RUNS"] == {"f": 1}


def test_an_lru_helper_reaching_a_reader_filled_at_top_level_is_not_trusted(shell: Shell, here: Path) -> None:
    (here / "n.txt").write_text("7")
    shell.run(RUNS_SETUP)
    shell.run("""
        import functools

        def number(name):
            return int(open(name).read())

        def _scaled(name):
            return number(name) * 2

        # filled in the cell that makes it, under a name its frames do not run under: its read is not seen
        scaled = functools.lru_cache(_scaled)
        scaled('n.txt')

        @memo
        def f(name):
            return scaled(name) + 1
    """)
    value, found = _warned(shell, "f('n.txt')")
    assert value == 15 and found


def test_a_top_level_call_of_a_watched_lru_helper_is_seen(shell: Shell, here: Path) -> None:
    (here / "p.txt").write_text("a,1\nb,2\n")
    (here / "other.txt").write_text("x,9\n")
    shell.run(RUNS_SETUP)
    shell.run("""
        import functools

        @functools.lru_cache
        def table(name):
            with open(name) as f:
                return dict(line.split(",") for line in f.read().split())

        @memo
        def price(k):
            ran(k)
            return table("p.txt")[k]
    """)
    shell.run("price('a')")  # fills table inside a memoized run: watched from here on
    shell.run("table('other.txt')")  # a look at another file at the top level
    assert _warned(shell, "price('b')") == ("2", [])
    assert _warned(shell, "price('b')") == ("2", [])
    assert shell["RUNS"] == {"a": 1, "b": 1}
    (here / "other.txt").write_text("x,10\n")
    (here / "p.txt").write_text("a,1\nb,200\n")
    shell.run("table.cache_clear()")
    assert _warned(shell, "price('b')") == ("200", [])


IN_A_POOL = "concurrent.futures.ThreadPoolExecutor(1).submit(lambda: open(name).read()).result()"


@pytest.mark.parametrize("reader", ["open(name).read()", IN_A_POOL])
def test_what_a_watched_lru_helper_reads_at_top_level_is_a_condition(shell: Shell, here: Path, reader: str) -> None:
    (here / "p.txt").write_text("P")
    (here / "q.txt").write_text("Q1")
    shell.run(RUNS_SETUP)
    shell.run(f"""
        import concurrent.futures
        import functools

        @functools.lru_cache
        def load(name):
            return {reader}

        @memo
        def show(name):
            return "<" + load(name) + ">"
    """)
    shell.run("show('p.txt')")  # watched from here on
    shell.run("load('q.txt')")  # filled at the top level: its read is seen
    assert _warned(shell, "show('q.txt')") == ("<Q1>", [])
    (here / "q.txt").write_text("Q2, changed")
    shell.run("load.cache_clear()")
    assert _warned(shell, "show('q.txt')") == ("<Q2, changed>", [])


def test_a_top_level_fill_after_a_restart_served_only_hits_is_seen(cache_dir: Path) -> None:
    (cache_dir.parent / "p.txt").write_text("P")  # run_kernel runs in tmp_path
    (cache_dir.parent / "q.txt").write_text("Q1")
    cells = [LOADER, """
        from notebook_memo import memo

        @memo
        def show(name):
            return "<" + load(name) + ">"
    """, "OUT['p'] = show('p.txt')"]
    run_kernel(cells, cache_dir, seed=1)
    # show('p.txt') is a hit here: no body ran before load's top-level fill
    second = run_kernel([*cells, "load('q.txt'); OUT['q'] = show('q.txt')"], cache_dir, seed=2)
    assert second["q"] == "<Q1>" and not any("load" in w for w in second["_warnings"]), second["_warnings"]
    (cache_dir.parent / "q.txt").write_text("Q2, changed")
    assert run_kernel([*cells, "OUT['q'] = show('q.txt')"], cache_dir, seed=3)["q"] == "<Q2, changed>"


def test_other_threads_frames_are_read_with_the_garbage_collector_held_off(monkeypatch: pytest.MonkeyPatch) -> None:
    # sys._current_frames() makes frame objects while it holds the lock on the list of threads; a collection set
    # off there that frees a threading.local takes that lock again, and the thread waited on itself for ever (a
    # pool's thread reading a file while a body ran). So the collector is off for the call, and back on after.
    from notebook_memo import _lru_helpers

    seen: list[bool] = []
    real = sys._current_frames

    def recording() -> dict[int, Any]:
        seen.append(gc.isenabled())
        return real()

    monkeypatch.setattr(sys, "_current_frames", recording)
    assert gc.isenabled()
    frames = _lru_helpers.frames_of_threads()
    assert seen == [False] and gc.isenabled() and threading.get_ident() in frames
