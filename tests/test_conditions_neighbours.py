"""Preconditions (files read, random state, environment, clock): neighbours of the cases in test_conditions.

Each test asserts the behaviour a user should get; a failing test is a stale result served, a
crash, or a call that misses although nothing it depends on changed.
"""

from __future__ import annotations

import asyncio
import glob
import io
import json
import mmap
import os
import pickle
import random
import shutil
import sqlite3
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from notebook_memo import MemoWarning, _conditions, _random_state, memo
from tests.conftest import Counter, Shell, rewrite_keeping_stat, run_kernel, sessions_with_and_without_cache


class MyRandom(random.Random):
    """A user subclass of random.Random (importable, so its instances hash like any object)."""


# -- readers the tested ones do not cover -----------------------------------------------------------------------

def _npy_bytes(values: list[int]) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.array(values, dtype=np.int64))
    return buf.getvalue()


def _read_fileio(p: str) -> Any:
    with io.FileIO(p) as f:
        return f.read()


def _read_mmap(p: str) -> Any:
    with open(p, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        return bytes(m)


def _read_fromfile(p: str) -> Any:
    return np.fromfile(p, dtype=np.uint8).tobytes()


def _read_np_mmap(p: str) -> Any:
    arr = np.load(p, mmap_mode="r")
    out = np.asarray(arr).tolist()
    del arr
    return out


def _read_pickle(p: str) -> Any:
    return pd.read_pickle(p)


def _read_json(p: str) -> Any:
    with open(p) as f:
        return json.load(f)


def _read_copyfile(p: str) -> Any:
    with tempfile.TemporaryDirectory() as d:
        dst = os.path.join(d, "copy")
        shutil.copyfile(p, dst)
        return Path(dst).read_bytes()


def _read_bytes(p: str) -> Any:
    return Path(p).read_bytes()


def _read_unbuffered(p: str) -> Any:
    with open(p, "rb", buffering=0) as f:
        return f.read()


# reader -> (first content, same-length other content)
READERS: dict[str, tuple[Callable[[str], Any], bytes, bytes]] = {
    "io.FileIO": (_read_fileio, b"aaaa", b"bbbb"),
    "mmap": (_read_mmap, b"aaaa", b"bbbb"),
    "np.fromfile": (_read_fromfile, b"aaaa", b"bbbb"),
    "np.load(mmap_mode)": (_read_np_mmap, _npy_bytes([1, 2]), _npy_bytes([3, 4])),
    "pd.read_pickle": (_read_pickle, pickle.dumps(11), pickle.dumps(12)),
    "json.load": (_read_json, b'{"v": 1}', b'{"v": 2}'),
    "shutil.copyfile": (_read_copyfile, b"aaaa", b"bbbb"),
    "Path.read_bytes": (_read_bytes, b"aaaa", b"bbbb"),
    "open(buffering=0)": (_read_unbuffered, b"aaaa", b"bbbb"),
}


@pytest.mark.parametrize("reader", sorted(READERS))
def test_other_readers_are_recorded(reader: str, tmp_path: Path, counter: Counter) -> None:
    read, first, second = READERS[reader]
    path = tmp_path / "in.bin"
    path.write_bytes(first)

    @memo
    def f(p: str) -> Any:
        counter()
        return read(p)

    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        a = f(str(path))
        assert f(str(path)) == a and counter.n == 1
    rewrite_keeping_stat(path, second)
    b = f(str(path))
    assert b != a and b == read(str(path)) and counter.n == 2


def test_a_symlink_retargeted_to_another_file_is_a_miss(tmp_path: Path, counter: Counter) -> None:
    (tmp_path / "a.txt").write_text("one")
    (tmp_path / "b.txt").write_text("two")
    link = tmp_path / "current.txt"
    link.symlink_to(tmp_path / "a.txt")

    @memo
    def f(p: str) -> str:
        counter()
        return Path(p).read_text()

    assert f(str(link)) == "one" and f(str(link)) == "one" and counter.n == 1
    new = tmp_path / "new-link"
    new.symlink_to(tmp_path / "b.txt")
    os.replace(new, link)
    assert f(str(link)) == "two" and counter.n == 2


def test_a_relative_read_after_chdir_inside_the_body_is_cached_and_checked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counter: Counter) -> None:
    (tmp_path / "sub").mkdir()
    data = tmp_path / "sub" / "in.txt"
    data.write_text("one")
    monkeypatch.chdir(tmp_path)

    @memo
    def f() -> str:
        counter()
        here = os.getcwd()
        os.chdir("sub")
        try:
            return Path("in.txt").read_text()
        finally:
            os.chdir(here)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert f() == "one"
        assert f() == "one"
    assert counter.n == 1, [str(w.message) for w in caught]
    rewrite_keeping_stat(data, b"two")
    assert f() == "two" and counter.n == 2


def test_a_file_read_by_a_nested_helper_computed_inside_the_outer_is_the_outer_dependency(
        tmp_path: Path, counter: Counter) -> None:
    path = tmp_path / "in.txt"
    path.write_text("1")

    @memo
    def inner(p: str) -> int:
        return int(Path(p).read_text())

    @memo
    def outer(p: str) -> int:
        counter()
        return inner(p) * 10

    assert outer(str(path)) == 10 and outer(str(path)) == 10 and counter.n == 1
    rewrite_keeping_stat(path, b"2")
    assert outer(str(path)) == 20 and counter.n == 2
    assert inner(str(path)) == 2


@pytest.mark.parametrize("how", ["open", "to_thread", "run_in_executor"])
def test_an_async_body_reading_a_file_is_checked(how: str, tmp_path: Path, counter: Counter) -> None:
    path = tmp_path / "in.txt"
    path.write_text("1")

    @memo
    async def load(p: str) -> int:
        counter()
        await asyncio.sleep(0)
        if how == "open":
            return int(Path(p).read_text())
        if how == "to_thread":
            return int(await asyncio.to_thread(Path(p).read_text))
        return int(await asyncio.get_running_loop().run_in_executor(None, Path(p).read_text))

    assert asyncio.run(load(str(path))) == 1
    assert asyncio.run(load(str(path))) == 1 and counter.n == 1
    rewrite_keeping_stat(path, b"2")
    assert asyncio.run(load(str(path))) == 2 and counter.n == 2


def test_temporary_files_the_body_writes_reads_and_deletes_do_not_block_caching(
        tmp_path: Path, counter: Counter) -> None:
    path = tmp_path / "in.txt"
    path.write_text("3")

    @memo
    def f(p: str) -> int:
        counter()
        value = int(Path(p).read_text())
        with tempfile.NamedTemporaryFile("w+") as t:
            t.write(str(value))
            t.flush()
            t.seek(0)
            value += int(t.read())
        fd, name = tempfile.mkstemp()
        os.write(fd, b"1")
        os.close(fd)
        value += int(Path(name).read_text())
        os.remove(name)
        with tempfile.TemporaryDirectory() as d:
            Path(d, "x").write_text("1")
            value += sum(int(Path(d, n).read_text()) for n in os.listdir(d))
        return value

    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        assert f(str(path)) == 8
        assert f(str(path)) == 8 and counter.n == 1
    rewrite_keeping_stat(path, b"4")
    assert f(str(path)) == 10 and counter.n == 2


def test_a_recursive_glob_of_the_notebook_folder_holding_the_cache_hits_and_sees_new_files(
        tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch, counter: Counter) -> None:
    assert cache_dir.parent == tmp_path  # the cache lives inside the folder the body walks
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "a").mkdir(parents=True)
    (tmp_path / "data" / "a" / "x.txt").write_text("1")
    (tmp_path / "top.txt").write_text("2")

    @memo
    def total() -> int:
        counter()
        return sum(int(Path(p).read_text()) for p in sorted(glob.glob("**/*.txt", recursive=True)))

    assert total() == 3
    assert total() == 3 and total() == 3 and counter.n == 1
    (tmp_path / "data" / "a" / "b").mkdir()
    (tmp_path / "data" / "a" / "b" / "y.txt").write_text("4")
    assert total() == 7 and counter.n == 2
    assert total() == 7 and counter.n == 2


@pytest.mark.parametrize("lister", ["os.listdir()", "os.scandir()", "glob('*.csv')"])
def test_listing_the_current_folder_without_naming_it_is_recorded(
        lister: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counter: Counter) -> None:
    monkeypatch.chdir(tmp_path)
    Path("a.csv").write_text("1")
    ways = {
        "os.listdir()": lambda: sorted(n for n in os.listdir() if n.endswith(".csv")),
        "os.scandir()": lambda: sorted(e.name for e in os.scandir() if e.name.endswith(".csv")),
        "glob('*.csv')": lambda: sorted(glob.glob("*.csv")),
    }
    way = ways[lister]

    @memo
    def names() -> list[str]:
        counter()
        return way()  # type: ignore[no-any-return]

    assert names() == ["a.csv"] and names() == ["a.csv"] and counter.n == 1
    Path("b.csv").write_text("2")
    assert names() == ["a.csv", "b.csv"], "a new file in the current folder was not seen"
    assert counter.n == 2


def test_a_removed_directory_is_a_miss(tmp_path: Path, counter: Counter) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a").write_text("")

    @memo
    def names(d: str) -> list[str]:
        counter()
        return sorted(os.listdir(d))

    assert names(str(data)) == ["a"] and names(str(data)) == ["a"] and counter.n == 1
    shutil.rmtree(data)
    with pytest.raises(FileNotFoundError):
        names(str(data))
    assert counter.n == 2


def test_a_declared_glob_matching_nothing_at_first_sees_a_file_appear(tmp_path: Path, counter: Counter) -> None:
    (tmp_path / "in").mkdir()

    @memo(files=[str(tmp_path / "in" / "*.csv")])
    def f() -> int:
        counter()
        return counter.n

    assert f() == 1 and f() == 1
    (tmp_path / "in" / "a.csv").write_text("x")
    assert f() == 2
    assert f() == 2 and counter.n == 2


def test_a_body_that_raises_after_reading_stores_nothing(tmp_path: Path, counter: Counter) -> None:
    path = tmp_path / "in.txt"
    path.write_text("1")

    @memo
    def f(p: str) -> int:
        counter()
        value = int(Path(p).read_text())
        if counter.n == 1:
            raise ValueError("first run fails")
        return value

    with pytest.raises(ValueError):
        f(str(path))
    assert f.entries() == [] and not f.is_cached(str(path))
    assert f(str(path)) == 1 and f(str(path)) == 1 and counter.n == 2
    assert _conditions._running == [] and _conditions._active.get() == ()


def test_an_optional_file_that_is_missing_is_cached_and_its_appearance_is_a_miss(
        tmp_path: Path, counter: Counter) -> None:
    path = tmp_path / "override.json"

    @memo
    def settings(p: str) -> dict[str, int]:
        counter()
        try:
            with open(p) as f:
                return json.load(f)  # type: ignore[no-any-return]
        except FileNotFoundError:
            return {"n": 0}

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert settings(str(path)) == {"n": 0}
        assert settings(str(path)) == {"n": 0}
    assert counter.n == 1, [str(w.message) for w in caught]
    path.write_text('{"n": 1}')
    assert settings(str(path)) == {"n": 1} and counter.n == 2


def test_a_file_checked_with_exists_and_declared_then_created_is_a_miss(tmp_path: Path, counter: Counter) -> None:
    # os.path.exists raises no audit event (README: declare such files); declared, absence is checked.
    path = tmp_path / "override.txt"

    @memo
    def value(p: str) -> str:
        counter()
        return Path(p).read_text() if os.path.exists(memo.depends_on_file(p)) else "default"

    assert value(str(path)) == "default"
    path.write_text("override")
    assert value(str(path)) == "override", "served the result computed while the file did not exist"


def test_a_file_opened_read_write_but_only_read_is_a_dependency(tmp_path: Path, counter: Counter) -> None:
    path = tmp_path / "in.txt"
    path.write_text("1")

    @memo
    def f(p: str) -> int:
        counter()
        with open(p, "r+") as fh:  # opened for update, but only read
            return int(fh.read())

    assert f(str(path)) == 1
    rewrite_keeping_stat(path, b"2")
    assert f(str(path)) == 2, "served the result of the old content"


def test_a_read_only_sqlite_query_is_cached_and_checked(tmp_path: Path, counter: Counter) -> None:
    db = tmp_path / "data.db"
    with sqlite3.connect(db) as con:
        con.execute("create table t (v int)")
        con.execute("insert into t values (1)")
    con.close()

    @memo
    def total(p: str) -> int:
        counter()
        con = sqlite3.connect(p)
        try:
            return int(con.execute("select sum(v) from t").fetchone()[0])
        finally:
            con.close()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert total(str(db)) == 1
        assert total(str(db)) == 1
    assert counter.n == 1, [str(w.message) for w in caught]
    with sqlite3.connect(db) as con:
        con.execute("insert into t values (2)")
    con.close()
    assert total(str(db)) == 3 and counter.n == 2


def test_writing_outputs_into_a_listed_folder_that_already_has_them_does_not_block_caching(
        tmp_path: Path, counter: Counter) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("1")

    @memo
    def summarise(d: str) -> int:
        counter()
        total = sum(int(Path(p).read_text()) for p in sorted(glob.glob(os.path.join(d, "*.csv"))))
        os.makedirs(os.path.join(d, "out"), exist_ok=True)
        Path(d, "out", "summary.txt").write_text(str(total))
        return total

    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        assert summarise(str(data)) == 1  # creates data/out: changes the listing, not cached
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert summarise(str(data)) == 1  # data/out exists: nothing it read changes now
        assert summarise(str(data)) == 1
    assert counter.n == 2, [str(w.message) for w in caught]


def test_many_calls_leave_no_recorder_behind(tmp_path: Path, counter: Counter) -> None:
    path = tmp_path / "in.txt"
    path.write_text("1")

    @memo
    def f(p: str, i: int) -> int:
        counter()
        return int(Path(p).read_text()) + i

    for i in range(30):
        assert f(str(path), i % 3) == 1 + i % 3
    assert counter.n == 3 and f.cache_info().hits == 27
    assert _conditions._running == [] and _conditions._active.get() == ()
    assert len(f.entries()) == 3


FILES_CELLS = [
    """
    import os
    from notebook_memo import memo

    @memo
    def total(folder):
        names = {n for n in os.listdir(folder)}   # read in the order of a set of strings
        total = 0
        for n in names:
            with open(os.path.join(folder, n)) as f:
                total += int(f.read())
        return total
    """,
    """
    OUT["total"] = total("data")
    OUT["misses"] = total.cache_info().misses
    """,
]


def test_file_conditions_do_not_depend_on_the_hash_seed(cache_dir: Path) -> None:
    data = cache_dir.parent / "data"
    data.mkdir()
    for i in range(8):
        (data / f"f{i}.txt").write_text(str(i))
    assert run_kernel(FILES_CELLS, cache_dir, seed=1) == {"total": 28, "misses": 1, "_warnings": []}
    assert run_kernel(FILES_CELLS, cache_dir, seed=2) == {"total": 28, "misses": 0, "_warnings": []}
    (data / "f3.txt").write_text("9")
    assert run_kernel(FILES_CELLS, cache_dir, seed=3) == {"total": 34, "misses": 1, "_warnings": []}


# -- random generators ----------------------------------------------------------------------------------------

SEEDING_CELLS = [
    """
    import random
    import numpy as np
    from notebook_memo import memo

    @memo
    def train(n):
        np.random.seed(42)
        random.seed(42)
        return np.random.rand(n).tolist() + [random.random()]
    """,
    """
    OUT["v"] = train(3)
    OUT["after"] = [float(np.random.rand()), random.random()]
    OUT["misses"] = train.cache_info().misses
    """,
]


def test_a_body_that_seeds_the_global_generator_itself_hits_after_a_restart(cache_dir: Path) -> None:
    plain, first, second = sessions_with_and_without_cache(SEEDING_CELLS, cache_dir)
    assert first["v"] == plain["v"] == second["v"]
    assert first["after"] == plain["after"] == second["after"]
    assert second["misses"] == 0, "its result does not depend on the state before it reseeds, yet every " \
        "fresh kernel (a state from OS entropy) misses"


INTERLEAVED_CELLS = [
    """
    import random
    import numpy as np
    from notebook_memo import memo
    np.random.seed(0)
    random.seed(0)

    @memo
    def f(n):
        return np.random.rand(n).tolist()

    @memo
    def g(n):
        return [random.random() for _ in range(n)] + np.random.rand(1).tolist()

    @memo
    def inner(n):
        return np.random.rand(n).tolist()

    @memo
    def outer(n):
        return [random.random()] + inner(n) + np.random.rand(1).tolist()
    """,
    """
    OUT["seq"] = [f(2), g(2), f(2), outer(1), g(1), inner(1), f(3), outer(1)]
    OUT["tail"] = [float(np.random.rand()), random.random()]
    OUT["misses"] = sum(h.cache_info().misses for h in (f, g, inner, outer))
    """,
]


def test_interleaved_and_nested_drawing_functions_match_an_uncached_session_across_restarts(
        cache_dir: Path) -> None:
    plain, first, second = sessions_with_and_without_cache(INTERLEAVED_CELLS, cache_dir)
    assert first["seq"] == plain["seq"] == second["seq"]
    assert first["tail"] == plain["tail"] == second["tail"]
    assert first["misses"] > 0 and second["misses"] == 0
    assert first["_warnings"] == second["_warnings"] == []


def _draw_all(gens: Any) -> list[float]:
    items = gens.values() if isinstance(gens, dict) else gens
    return [float(g.random()) for g in items]


@pytest.mark.parametrize("container", ["list", "dict", "subclass"])
def test_generators_inside_containers_are_left_advanced(container: str, counter: Counter) -> None:
    def make() -> Any:
        if container == "list":
            return [np.random.default_rng(1), random.Random(2)]
        if container == "dict":
            return {"b": np.random.default_rng(1), "a": random.Random(2)}
        return [MyRandom(3)]

    @memo
    def sample(gens: Any) -> list[float]:
        counter()
        return _draw_all(gens) + _draw_all(gens)

    def session(call: Callable[[Any], Any]) -> tuple[Any, list[float]]:
        gens = make()
        return call(gens), _draw_all(gens)

    plain = session(sample.uncached)
    first = session(sample)
    second = session(sample)
    assert plain == first == second
    assert counter.n == 2


def test_one_generator_twice_in_a_list_is_not_two_generators(counter: Counter) -> None:
    @memo
    def sample(gens: list[Any]) -> list[float]:
        counter()
        return [float(g.random()) for g in gens]

    g = np.random.default_rng(0)
    shared = sample([g, g])
    assert shared[0] != shared[1]
    g1, g2 = np.random.default_rng(0), np.random.default_rng(0)
    expected = sample.uncached([np.random.default_rng(0), np.random.default_rng(0)])
    assert expected[0] == expected[1]
    assert sample([g1, g2]) == expected, "served the result of one generator passed twice"
    assert float(g1.random()) == float(g2.random())


def test_invalidate_of_a_drawing_function_leaves_no_other_state_entry_to_resurface(counter: Counter) -> None:
    @memo
    def draw() -> list[float]:
        counter()
        return [float(np.random.rand()), float(counter.n)]

    np.random.seed(0)
    draw()
    np.random.seed(1)
    draw()
    np.random.seed(0)
    assert draw.invalidate()
    np.random.seed(1)
    assert not draw.is_cached()
    np.random.seed(0)
    draw()  # computed again, stored again
    np.random.seed(1)
    assert not draw.is_cached(), "an entry stored before invalidate() is served again"
    assert draw()[1] == 4.0


def test_is_cached_explain_and_refresh_of_a_drawing_function(counter: Counter) -> None:
    @memo
    def draw(n: int) -> list[float]:
        counter()
        return np.random.rand(n).tolist()  # type: ignore[no-any-return]

    np.random.seed(0)
    plain = draw.uncached(2)
    plain_after = float(np.random.rand())
    np.random.seed(0)
    assert not draw.is_cached(2)
    assert draw(2) == plain
    np.random.seed(0)
    state = _random_state.global_states(["numpy"])["numpy"][0]
    assert draw.is_cached(2) and "HIT" in str(draw.explain(2))
    assert _random_state.global_states(["numpy"])["numpy"][0] == state  # asking changes nothing
    assert draw.refresh(2) == plain and counter.n == 3  # uncached, first call, refresh
    assert float(np.random.rand()) == plain_after
    np.random.seed(0)
    assert draw(2) == plain and counter.n == 3
    assert float(np.random.rand()) == plain_after
    np.random.seed(7)
    assert not draw.is_cached(2) and "MISS" in str(draw.explain(2))


def test_an_async_function_drawing_from_the_global_generator_matches_an_uncached_run(counter: Counter) -> None:
    @memo
    async def noisy(n: int) -> list[float]:
        counter()
        await asyncio.sleep(0)
        return [*np.random.rand(n).tolist(), random.random()]

    async def session() -> list[Any]:
        np.random.seed(0)
        random.seed(0)
        return [await noisy(2), await noisy(2), float(np.random.rand()), random.random()]

    with memo.disabled():
        plain = asyncio.run(session())
    assert asyncio.run(session()) == plain == asyncio.run(session())
    assert counter.n == 2 + 2


GENERATOR_CELL_CELLS = [
    """
    import numpy as np
    from notebook_memo import memo
    rng = np.random.default_rng(0)
    """,
    "%load_ext notebook_memo",
    """
    %%memo
    x = rng.random(2).tolist()
    """,
    """
    OUT["x"] = x
    OUT["after"] = rng.random(2).tolist()
    """,
]


def test_a_memo_cell_drawing_from_a_generator_object_leaves_it_advanced(cache_dir: Path) -> None:
    plain, first, second = sessions_with_and_without_cache(GENERATOR_CELL_CELLS, cache_dir)
    assert first["x"] == plain["x"] == second["x"]
    assert first["after"] == plain["after"] == second["after"], "the cell's hit left rng where it was"


# -- environment variables ------------------------------------------------------------------------------------

def _env_case(shell: Shell, monkeypatch: pytest.MonkeyPatch, body: str, name: str = "NBM_REVIEW_URL",
              setup: str = "") -> tuple[bool, list[str]]:
    """Define ``f`` returning ``body``; change the variable; return (it was a miss, memo warnings)."""
    monkeypatch.setenv(name, "one")
    shell.run(f"""
    import os
    from notebook_memo import memo

    class _Runs(list):
        def __memo_key__(self): return "runs"

    RUNS = _Runs()
    {setup.replace(chr(10), chr(10) + "    ")}

    @memo
    def f():
        RUNS.append(1)
        return {body}
    """)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = shell.run("f()")
        monkeypatch.setenv(name, "two")
        second = shell.run("f()")
    missed = len(shell["RUNS"]) == 2
    assert not missed or first != second
    return missed, [str(w.message) for w in caught if issubclass(w.category, Warning)]


def test_a_variable_read_by_a_helper_in_a_user_module_is_in_the_key(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "nbm_review_envmod.py").write_text(
        "import os\n\ndef endpoint():\n    return os.environ.get('NBM_REVIEW_URL', 'none')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "nbm_review_envmod", raising=False)
    try:
        missed, _ = _env_case(shell, monkeypatch, "nbm_review_envmod.endpoint() + endpoint()",
                              setup="import nbm_review_envmod\nfrom nbm_review_envmod import endpoint")
        assert missed
    finally:
        sys.modules.pop("nbm_review_envmod", None)


@pytest.mark.parametrize("holder", ["argument", "global_object"])
def test_a_variable_read_by_a_method_of_an_object_is_in_the_key(
        holder: str, shell: Shell, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBM_REVIEW_URL", "one")
    shell.run("""
    import os
    from notebook_memo import memo

    class _Runs(list):
        def __memo_key__(self): return "runs"

    RUNS = _Runs()

    class Config:
        def url(self):
            return os.environ.get("NBM_REVIEW_URL", "none")

    CONFIG = Config()

    @memo
    def from_argument(cfg):
        RUNS.append(1)
        return cfg.url()

    @memo
    def from_global():
        RUNS.append(1)
        return CONFIG.url()
    """)
    call = "from_argument(Config())" if holder == "argument" else "from_global()"
    assert shell.run(call) == "one"
    monkeypatch.setenv("NBM_REVIEW_URL", "two")
    assert shell.run(call) == "two", "served the value of the variable as it was"


def test_a_variable_unset_then_set_is_a_miss(shell: Shell, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NBM_REVIEW_OPT", raising=False)
    shell.run("""
    import os
    from notebook_memo import memo

    @memo
    def opt():
        return os.environ.get("NBM_REVIEW_OPT")
    """)
    assert shell.run("opt()") is None
    monkeypatch.setenv("NBM_REVIEW_OPT", "")
    assert shell.run("opt()") == ""
    monkeypatch.setenv("NBM_REVIEW_OPT", "x")
    assert shell.run("opt()") == "x"
    monkeypatch.delenv("NBM_REVIEW_OPT")
    assert shell.run("opt()") is None


ENV_INDIRECT = {
    "name_in_a_global_constant": ("os.environ.get(NAME)", 'NAME = "NBM_REVIEW_URL"'),
    "whole_environment": ('{k: v for k, v in os.environ.items() if k.startswith("NBM_REVIEW")}', ""),
    "copy_of_the_environment": ('dict(os.environ).get("NBM_REVIEW_URL")', ""),
}


@pytest.mark.parametrize("form", sorted(ENV_INDIRECT))
def test_a_variable_read_indirectly_is_keyed_or_warned(form: str, shell: Shell,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    body, setup = ENV_INDIRECT[form]
    missed, caught = _env_case(shell, monkeypatch, body, setup=setup)
    assert missed or any("environ" in w for w in caught), f"a stale value, silently: {caught}"


def test_a_variable_read_after_a_local_import_is_keyed_or_warned(shell: Shell,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBM_REVIEW_URL", "one")
    shell.run("""
    from notebook_memo import memo

    @memo
    def url():
        import os
        return os.environ.get("NBM_REVIEW_URL")
    """)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shell.run("url()")
    monkeypatch.setenv("NBM_REVIEW_URL", "two")
    value = shell.run("url()")
    assert value == "two" or any("environ" in str(w.message) for w in caught), "a stale value, silently"


# -- the clock ------------------------------------------------------------------------------------------------

CLOCK_INDIRECT = {
    "method_of_a_global_class": ("Stamp.now_text()", ""),
    "method_of_a_global_object": ("STAMP.text()", ""),
    "method_of_an_argument": ("stamp.text()", ""),
    "local_import": ("local()", ""),
    "strftime": ('time.strftime("%Y-%m-%d")', ""),
}


@pytest.mark.parametrize("form", sorted(CLOCK_INDIRECT))
def test_a_clock_read_indirectly_warns(form: str, shell: Shell) -> None:
    body, _ = CLOCK_INDIRECT[form]
    shell.run(f"""
    import datetime
    import time
    from notebook_memo import memo

    class Stamp:
        @classmethod
        def now_text(cls):
            return str(datetime.datetime.now())

        def text(self):
            return str(datetime.datetime.now())

    STAMP = Stamp()

    def local():
        from datetime import datetime as dt
        return str(dt.now())

    @memo
    def report(stamp):
        return {body}
    """)
    with pytest.warns(MemoWarning, match="ttl="):
        shell.run("report(Stamp())")


def test_timing_split_between_the_body_and_a_helper_does_not_warn(shell: Shell) -> None:
    shell.run("""
    import time
    from notebook_memo import memo

    def elapsed(t0):
        return time.time() - t0

    @memo
    def timed(n):
        t0 = time.time()
        total = sum(range(n))
        return total if elapsed(t0) >= 0 else -1
    """)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        assert shell.run("timed(5)") == 10


# -- more neighbours ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["default", "closure", "class_attribute"])
def test_a_generator_reached_through_a_default_a_closure_or_a_class_attribute_is_left_advanced(
        where: str, counter: Counter) -> None:
    def session(cached: bool) -> list[Any]:
        rng0 = np.random.default_rng(4)

        class Sampler:
            RNG = rng0

            def draw(self, n: int) -> list[float]:
                return self.RNG.random(n).tolist()  # type: ignore[no-any-return]

        if where == "default":
            def sample(n: int, rng: Any = rng0) -> list[float]:
                counter()
                return rng.random(n).tolist()  # type: ignore[no-any-return]
        elif where == "closure":
            def sample(n: int) -> list[float]:
                counter()
                return rng0.random(n).tolist()  # type: ignore[no-any-return]
        else:
            def sample(n: int, sampler: Any = None) -> list[float]:
                counter()
                return sampler.draw(n)  # type: ignore[no-any-return]

        fn = memo(sample)
        call = fn if cached else fn.uncached
        args = (2,) if where != "class_attribute" else (2, Sampler())
        return [call(*args), call(*args), float(rng0.random())]

    plain = session(False)
    assert plain[0] != plain[1]
    assert session(True) == plain == session(True)
    assert counter.n == 2 + 2


def test_an_unreadable_data_file_does_not_break_the_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         counter: Counter) -> None:
    """A file the body could stat but not read (a PermissionError it handled; here injected, as root reads all)."""
    secret = tmp_path / "secret.txt"
    secret.write_text("x")
    real_digest = _conditions.file_digest

    def digest(path: str) -> str:
        if os.path.basename(path) == "secret.txt":
            raise PermissionError(13, "Permission denied", path)
        return real_digest(path)

    monkeypatch.setattr(_conditions, "file_digest", digest)

    @memo
    def f(p: str) -> str:
        counter()
        try:
            with open(p) as fh:
                fh.close()
                raise PermissionError(13, "Permission denied", p)  # what a non-root user gets
        except PermissionError:
            return "fallback"

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MemoWarning)
        assert f(str(secret)) == "fallback"




def test_a_memo_cell_reading_an_environment_variable_runs_again_when_it_changes(
        shell: Shell, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBM_REVIEW_CELL", "one")
    shell.run("%load_ext notebook_memo")
    shell.run("import os")
    cell = '%%memo\nvalue = os.environ.get("NBM_REVIEW_CELL", "none")'
    shell.run(cell)
    assert shell["value"] == "one"
    monkeypatch.setenv("NBM_REVIEW_CELL", "two")
    shell.run(cell)
    assert shell["value"] == "two", "the cell was restored with the old value of the variable"


def test_a_memo_cell_reading_the_clock_warns(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo")
    shell.run("import datetime")
    with pytest.warns(MemoWarning, match="ttl"):
        shell.run("%%memo\nstamp = str(datetime.datetime.now())")


LAZY_NUMPY_CELLS = [
    """
    import sys
    from notebook_memo import memo

    @memo
    def simulate(n):
        import numpy as np   # the first import of numpy in this kernel
        np.random.seed(1)
        return np.random.rand(n).tolist()
    """,
    """
    OUT["loaded_before"] = "numpy" in sys.modules
    OUT["v"] = simulate(2)
    import numpy as np
    OUT["after"] = np.random.rand(2).tolist()
    """,
]


def test_a_global_generator_first_loaded_inside_the_body_is_left_as_the_body_left_it(cache_dir: Path) -> None:
    plain, first, second = sessions_with_and_without_cache(LAZY_NUMPY_CELLS, cache_dir)
    assert plain["loaded_before"] is False
    assert first["v"] == plain["v"] == second["v"]
    assert first["after"] == plain["after"] == second["after"], "after a hit np.random is not where the body left it"


class _Gate:
    """An asyncio.Event shared with a body, never part of a key."""

    def __init__(self) -> None:
        self.event: asyncio.Event | None = None

    def __memo_key__(self) -> str:
        return "gate"


def test_files_read_by_an_unrelated_task_while_an_async_body_awaits_are_not_its_dependencies(
        tmp_path: Path, counter: Counter) -> None:
    data = tmp_path / "in.txt"
    data.write_text("1")
    status = tmp_path / "status.log"  # polled by another task, rewritten all the time
    status.write_text("a")
    gate = _Gate()

    @memo
    async def load(p: str) -> int:
        counter()
        assert gate.event is not None
        await gate.event.wait()  # the other task runs meanwhile
        return int(Path(p).read_text())

    async def poll() -> None:
        assert gate.event is not None
        status.read_text()
        gate.event.set()

    async def round_trip() -> int:
        gate.event = asyncio.Event()
        value, _ = await asyncio.gather(load(str(data)), poll())
        return value

    assert asyncio.run(round_trip()) == 1
    status.write_text("bb")
    gate.event = asyncio.Event()
    gate.event.set()
    assert asyncio.run(load(str(data))) == 1
    assert counter.n == 1, "status.log, read by another task, became a dependency of load"


# -- folders that were missing when listed, and the import system's own listings ---------------------------------

def test_a_folder_missing_when_listed_is_a_precondition_not_a_refusal(tmp_path: Path, counter: Counter) -> None:
    inbox = tmp_path / "inbox"

    @memo
    def pending() -> list[str]:
        counter()
        try:
            return sorted(os.listdir(inbox))
        except FileNotFoundError:
            return []

    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        assert pending() == [] and pending() == []
    assert counter.n == 1  # cached: still missing, still the same answer
    inbox.mkdir()
    (inbox / "a.txt").write_text("a")
    assert pending() == ["a.txt"] and counter.n == 2  # it exists now: recomputed


def test_package_metadata_lookups_are_the_import_system_not_data(counter: Counter) -> None:
    import importlib.metadata

    @memo
    def installed() -> int:
        counter()
        return len(list(importlib.metadata.distributions()))

    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        first = installed()
        assert installed() == first
    assert counter.n == 1


@pytest.mark.parametrize("setup, body", [
    ("from os import environ as env", "env['NBM_REVIEW_URL']"),
    ("from os import getenv as ge", "ge('NBM_REVIEW_URL')"),
    ("ENV = os.environ", "ENV['NBM_REVIEW_URL']"),
    ("ENV = os.environ", "ENV.get('NBM_REVIEW_URL')"),
])
def test_a_variable_read_through_another_name_for_the_environment_is_in_the_key(
        shell: Shell, monkeypatch: pytest.MonkeyPatch, setup: str, body: str) -> None:
    missed, _ = _env_case(shell, monkeypatch, body, setup=setup)
    assert missed


def test_a_cell_reading_a_variable_through_another_name_for_the_environment_runs_when_it_changes(
        shell: Shell, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBM_REVIEW_MODE", "a")
    shell.run("%load_ext notebook_memo\nfrom os import environ as env")
    cell = "%%memo mode\nmode = env['NBM_REVIEW_MODE']"
    shell.run(cell)
    monkeypatch.setenv("NBM_REVIEW_MODE", "b")
    shell.run(cell)
    assert shell["mode"] == "b"


# -- glob patterns whose last parts are literal, and paths with environment variables in them -------------

@pytest.mark.parametrize("pattern, root", [("data/*/x.csv", None), ("*/x.csv", "data"),
                                           ("data/s*/x.csv", None), ("data/**/x.csv", None)])
def test_a_glob_with_a_literal_last_part_sees_a_new_match_in_a_folder_that_was_there(
        pattern: str, root: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counter: Counter) -> None:
    # glob lists "data" and then only tests each data/<folder>/x.csv: no listing of s2 to see x.csv appear.
    monkeypatch.chdir(tmp_path)
    for folder in ("s1", "s2"):
        Path("data", folder).mkdir(parents=True)
    Path("data/s1/x.csv").write_text("1")

    @memo
    def found() -> list[str]:
        counter()
        return sorted(glob.glob(pattern, root_dir=root, recursive=True))

    first = found()
    assert found() == first and counter.n == 1
    Path("data/s2/x.csv").write_text("2")
    assert found() == sorted(glob.glob(pattern, root_dir=root, recursive=True)) != first
    assert counter.n == 2
    assert f"the files matching {os.path.join(root or '', pattern)} are others now" in str(found.explain_last())


def test_a_body_globbing_what_it_writes_is_not_stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      counter: Counter) -> None:
    monkeypatch.chdir(tmp_path)
    Path("out/a").mkdir(parents=True)

    @memo
    def step() -> int:
        counter()
        n = len(glob.glob("out/*/part.txt"))
        Path("out/a/part.txt").write_text("x")
        return n

    with pytest.warns(MemoWarning, match="matches the pattern"):
        assert step() == 0
    assert step() == 1 and counter.n == 2  # as a plain call: it sees what the first one wrote


def test_a_path_with_an_environment_variable_expanded_in_it_keys_the_variable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counter: Counter) -> None:
    monkeypatch.chdir(tmp_path)
    Path("a_split.txt").write_text("A")
    Path("b_split.txt").write_text("BB")
    monkeypatch.setenv("NBM_REVIEW_SPLIT", "a")

    @memo
    def read() -> str:
        counter()
        return Path(os.path.expandvars("${NBM_REVIEW_SPLIT}_split.txt")).read_text()

    assert read() == "A" and read() == "A" and counter.n == 1
    monkeypatch.setenv("NBM_REVIEW_SPLIT", "b")
    assert read() == "BB" and counter.n == 2


def test_the_decimal_context_is_in_the_key_of_code_using_decimal(counter: Counter) -> None:
    import decimal

    @memo
    def third() -> str:
        counter()
        return str(decimal.Decimal(1) / decimal.Decimal(3))

    with decimal.localcontext() as context:
        context.prec = 28
        long = third()
        assert third() == long and counter.n == 1
        context.prec = 5
        assert third() == "0.33333" and counter.n == 2
        assert "the settings of decimal changed (prec=28" in str(third.explain_last())


def test_a_glob_pattern_s_hidden_matches_and_a_root_with_wildcard_characters_are_seen(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counter: Counter) -> None:
    monkeypatch.chdir(tmp_path)
    for folder in ("data/.a", "data/.b", "run[1]/a", "run[1]/b", "run1/a"):
        Path(folder).mkdir(parents=True)
    Path("data/.a/x.csv").write_text("1")
    Path("run[1]/a/x.csv").write_text("1")

    @memo
    def found() -> list[str]:
        counter()
        return sorted(glob.glob("data/*/x.csv", include_hidden=True)) + sorted(glob.glob("*/x.csv", root_dir="run[1]"))

    first = found()
    assert found() == first and counter.n == 1
    Path("data/.b/x.csv").write_text("2")
    assert found() != first and counter.n == 2
    second = found()
    Path("run[1]/b/x.csv").write_text("2")  # not run1/b: the root is a name, not a pattern
    assert found() != second and counter.n == 3


def test_a_pattern_whose_parts_after_a_wildcard_are_all_wildcards_is_covered_by_listings(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from notebook_memo import _conditions

    monkeypatch.chdir(tmp_path)
    Path("data/a").mkdir(parents=True)
    Path("data/a/x.csv").write_text("1")
    recorder = _conditions.Recorder()
    with _conditions.recording(recorder, ()):
        glob.glob("data/**/*.csv", recursive=True)  # listed folder by folder: no pattern to check on a hit
        glob.glob("data/*/x.csv")
    assert list(recorder.patterns) == ["data/*/x.csv"]


@pytest.mark.parametrize("body", ['os.path.expandvars("${NBM_REVIEW_ROOT}/" + NAME)',
                                  'os.path.expandvars("${NBM_REVIEW_ROOT}/%s" % NAME)',
                                  'os.environ["NBM_REVIEW_" + NAME]'])
def test_a_constant_that_only_starts_a_computed_text_is_not_taken_for_the_whole(
        body: str, shell: Shell, monkeypatch: pytest.MonkeyPatch) -> None:
    # NAME holds the variable's name (NBM_REVIEW_SPLIT, or ${NBM_REVIEW_SPLIT}): read at run time, so not keyed,
    # and said so; keyed as the constant alone, a change of it was served stale with no warning.
    monkeypatch.setenv("NBM_REVIEW_ROOT", "/data")
    monkeypatch.setenv("NBM_REVIEW_SPLIT", "train")
    name = "SPLIT" if body.startswith("os.environ") else "${NBM_REVIEW_SPLIT}.csv"
    missed, said = _env_case(shell, monkeypatch, body, name="NBM_REVIEW_SPLIT", setup=f"NAME = {name!r}")
    assert missed or any("computed at run time" in w for w in said), said
