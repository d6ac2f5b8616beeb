"""Dependencies that are not code: data files the body reads, global random state, the
environment and the clock. Real files, real shells, restarted processes."""

from __future__ import annotations

import ctypes
import os
import random
import sqlite3
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from notebook_memo import MemoWarning, memo
from tests.conftest import Counter, Shell, rewrite_keeping_stat, run_kernel, sessions_with_and_without_cache


def _recorded_files(fn: Any) -> list[str]:
    (record,) = [r for r in fn.entries() if "pre" in r.header.meta()]
    return sorted(os.path.basename(f[0]) for f in record.header.meta()["pre"].get("files", []))


class _Seen(list):  # type: ignore[type-arg]
    """What a body saw, never part of a key."""

    def __memo_key__(self) -> str:
        return "seen"


# -- files read by the body -----------------------------------------------------------------------------------

LOAD_CELLS = [
    """
    import pandas as pd
    from notebook_memo import memo

    @memo
    def load(path):
        return pd.read_csv(path)
    """,
    """
    OUT["total"] = int(load("data.csv").x.sum())
    OUT["misses"] = load.cache_info().misses
    """,
]


def test_a_rewritten_csv_is_a_miss_across_restarts(cache_dir: Path) -> None:
    data = cache_dir.parent / "data.csv"
    data.write_text("x\n1\n2\n")
    assert run_kernel(LOAD_CELLS, cache_dir, seed=1) == {"total": 3, "misses": 1, "_warnings": []}
    assert run_kernel(LOAD_CELLS, cache_dir, seed=2) == {"total": 3, "misses": 0, "_warnings": []}
    data.write_text("x\n1\n2\n3\n")  # re-exported: same path, new rows
    assert run_kernel(LOAD_CELLS, cache_dir, seed=3) == {"total": 6, "misses": 1, "_warnings": []}
    assert run_kernel(LOAD_CELLS, cache_dir, seed=4) == {"total": 6, "misses": 0, "_warnings": []}


def _read_open(p: str) -> str:
    with open(p) as f:
        return f.read()


def _read_os(p: str) -> str:
    fd = os.open(p, os.O_RDONLY)
    try:
        return os.read(fd, 1000).decode()
    finally:
        os.close(fd)


def _read_path(p: str) -> str:
    return Path(p).read_text()


def _read_numpy(p: str) -> str:
    return "".join(np.loadtxt(p, dtype=str, ndmin=1).tolist())


def _read_pandas(p: str) -> str:
    return "".join(pd.read_csv(p, header=None, dtype=str)[0].tolist())


READERS = {"open": _read_open, "os.open": _read_os, "pathlib": _read_path, "numpy": _read_numpy,
           "pandas": _read_pandas}


@pytest.mark.parametrize("reader", sorted(READERS))
def test_a_file_changed_in_place_is_a_miss_even_with_its_size_and_time_kept(
        reader: str, tmp_path: Path, counter: Counter) -> None:
    path = tmp_path / "in.txt"
    path.write_text("aaaa\n")
    read = READERS[reader]

    @memo
    def f(p: str) -> str:
        counter()
        return read(p).strip()

    assert f(str(path)) == "aaaa"
    assert f(str(path)) == "aaaa" and counter.n == 1
    rewrite_keeping_stat(path, "bbbb\n")
    assert f(str(path)) == "bbbb" and counter.n == 2
    assert f(str(path)) == "bbbb" and counter.n == 2


def test_a_sqlite_database_the_body_queries_is_a_data_file(tmp_path: Path, counter: Counter) -> None:
    db = str(tmp_path / "rows.db")
    with sqlite3.connect(db) as con:
        con.execute("create table t (v integer)")
        con.execute("insert into t values (1)")
    con.close()

    @memo
    def total(path: str) -> int:
        counter()
        with sqlite3.connect(path) as con:
            value = int(con.execute("select sum(v) from t").fetchone()[0])
        con.close()
        return value

    assert total(db) == 1 and total(db) == 1 and counter.n == 1
    with sqlite3.connect(db) as con:
        con.execute("insert into t values (2)")
    con.close()
    assert total(db) == 3 and counter.n == 2


def test_a_file_the_body_found_missing_must_stay_missing(tmp_path: Path, counter: Counter) -> None:
    path = tmp_path / "override.txt"

    @memo
    def setting(p: str) -> str:
        counter()
        try:
            return Path(p).read_text()
        except FileNotFoundError:
            return "default"

    assert setting(str(path)) == "default" and setting(str(path)) == "default" and counter.n == 1
    path.write_text("custom")
    assert setting(str(path)) == "custom" and counter.n == 2


def test_a_touched_file_with_the_same_content_is_a_hit(tmp_path: Path, counter: Counter) -> None:
    path = tmp_path / "in.txt"
    path.write_text("same")

    @memo
    def f(p: str) -> str:
        counter()
        return Path(p).read_text()

    f(str(path))
    os.utime(path, ns=(time.time_ns() + 5 * 10**9, time.time_ns() + 5 * 10**9))
    path.write_text("same")  # rewritten with the same bytes: new mtime, ctime and maybe inode
    assert f(str(path)) == "same" and counter.n == 1


def test_a_replaced_or_removed_file_is_a_miss(tmp_path: Path, counter: Counter) -> None:
    path = tmp_path / "in.txt"
    path.write_text("one")

    @memo
    def f(p: str) -> str:
        counter()
        return Path(p).read_text()

    f(str(path))
    other = tmp_path / "new.txt"
    other.write_text("two")
    os.replace(other, path)
    assert f(str(path)) == "two" and counter.n == 2
    path.unlink()
    with pytest.raises(FileNotFoundError):
        f(str(path))
    assert counter.n == 3


def test_explain_names_the_file_and_what_changed(tmp_path: Path) -> None:
    path = tmp_path / "table.csv"
    path.write_text("x\n1\n")

    @memo
    def load(p: str) -> int:
        return len(Path(p).read_text())

    load(str(path))
    assert "HIT" in str(load.explain(str(path)))
    path.write_text("x\n1\n2\n")
    text = str(load.explain(str(path)))
    assert "MISS" in text and "table.csv" in text and "changed" in text and "4 -> 6 bytes" in text
    path.unlink()
    text = str(load.explain(str(path)))
    assert "MISS" in text and "table.csv" in text and "is gone" in text


def test_a_relative_path_is_the_file_in_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              counter: Counter) -> None:
    for name, text in (("a", "first"), ("b", "second")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "in.txt").write_text(text)

    @memo
    def f(p: str) -> str:
        counter()
        return Path(p).read_text()

    monkeypatch.chdir(tmp_path / "a")
    assert f("in.txt") == "first"
    monkeypatch.chdir(tmp_path / "b")
    assert f("in.txt") == "second" and counter.n == 2


GLOB_CELLS = [
    """
    import glob
    from notebook_memo import memo

    @memo
    def total(pattern):
        return sum(int(open(p).read()) for p in sorted(glob.glob(pattern)))
    """,
    """
    OUT["total"] = total("data/*.txt")
    OUT["misses"] = total.cache_info().misses
    OUT["why"] = str(total.explain("data/*.txt"))
    """,
]


def test_a_new_file_in_a_listed_directory_is_a_miss_across_restarts(cache_dir: Path) -> None:
    data = cache_dir.parent / "data"
    data.mkdir()
    (data / "a.txt").write_text("1")
    (data / "b.txt").write_text("2")
    assert run_kernel(GLOB_CELLS, cache_dir, seed=1)["total"] == 3
    assert run_kernel(GLOB_CELLS, cache_dir, seed=2)["misses"] == 0
    (data / "c.txt").write_text("4")
    out = run_kernel(GLOB_CELLS, cache_dir, seed=3)
    assert (out["total"], out["misses"]) == (7, 1)
    (data / "d.txt").write_text("8")
    out = run_kernel([*GLOB_CELLS[:1], 'OUT["why"] = str(total.explain("data/*.txt"))'], cache_dir, seed=4)
    assert "data" in out["why"] and "d.txt" in out["why"]


@pytest.mark.parametrize("lister", ["listdir", "scandir", "iterdir", "walk", "pathglob"])
def test_each_way_of_listing_a_directory_is_recorded(lister: str, tmp_path: Path, counter: Counter) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a").write_text("")
    ways = {
        "listdir": lambda d: sorted(os.listdir(d)),
        "scandir": lambda d: sorted(e.name for e in os.scandir(d)),
        "iterdir": lambda d: sorted(p.name for p in Path(d).iterdir()),
        "walk": lambda d: sorted(n for _, _, names in os.walk(d) for n in names),
        "pathglob": lambda d: sorted(p.name for p in Path(d).glob("*")),
    }
    way = ways[lister]

    @memo
    def names(d: str) -> list[str]:
        counter()
        return way(d)  # type: ignore[no-any-return]

    assert names(str(data)) == ["a"]
    assert names(str(data)) == ["a"] and counter.n == 1
    (data / "b").write_text("")
    assert names(str(data)) == ["a", "b"] and counter.n == 2


def test_files_that_are_not_data_are_not_recorded(tmp_path: Path, cache_dir: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("1")
    module = tmp_path / "lazy_helper_mod.py"
    module.write_text("VALUE = 2\n")

    @memo
    def f(p: str) -> int:
        import importlib.util

        spec = importlib.util.spec_from_file_location("lazy_helper_mod", module)
        assert spec is not None and spec.loader is not None
        lazy_helper_mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(lazy_helper_mod)  # loaded by location, which no fingerprint follows: data
        with open(np.__file__) as lib:  # an installed package's file
            lib.read(10)
        with open(os.__file__) as std:  # the standard library
            std.read(10)
        for name in os.listdir(cache_dir):  # the cache directory itself
            if os.path.isfile(os.path.join(cache_dir, name)):
                open(os.path.join(cache_dir, name), "rb").close()
        out = tmp_path / "out.txt"
        out.write_text("written")  # a write is not a read
        assert out.read_text() == "written"  # reading back what it wrote is not a dependency either
        return int(Path(p).read_text()) + lazy_helper_mod.VALUE

    assert f(str(data)) == 3
    assert _recorded_files(f) == ["data.txt", "lazy_helper_mod.py"]
    assert f.is_cached(str(data))
    # What it wrote is its output, not an input: checked to be as the run left it, since a hit would not
    # write it again.
    (tmp_path / "out.txt").write_text("changed by someone else")
    assert not f.is_cached(str(data))


def test_a_body_that_changes_a_file_it_read_is_not_cached(tmp_path: Path, counter: Counter) -> None:
    path = tmp_path / "count.txt"
    path.write_text("0")

    @memo
    def bump(p: str) -> int:
        counter()
        n = int(Path(p).read_text())
        Path(p).write_text(str(n + 1))
        return n

    with pytest.warns(MemoWarning, match="count.txt"):
        assert bump(str(path)) == 0
    assert bump(str(path)) == 1 and counter.n == 2


def _libc_read(path: str) -> bytes:
    """Read a file the way a C++ reader does: no Python open, so no audit event."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.open.restype = ctypes.c_int
    fd = libc.open(path.encode(), 0)
    assert fd >= 0
    buf = ctypes.create_string_buffer(1000)
    n = libc.read(fd, buf, 1000)
    libc.close(fd)
    return buf.raw[:n]


def test_files_read_in_threads_the_body_starts_are_recorded(tmp_path: Path, counter: Counter) -> None:
    from concurrent.futures import ThreadPoolExecutor

    paths = []
    for i in range(4):
        paths.append(tmp_path / f"part{i}.txt")
        paths[-1].write_text(str(i))

    @memo
    def total(names: list[str]) -> int:
        counter()
        with ThreadPoolExecutor(2) as pool:
            return sum(pool.map(lambda p: int(Path(p).read_text()), names))

    names = [str(p) for p in paths]
    assert total(names) == 6 and total(names) == 6 and counter.n == 1
    rewrite_keeping_stat(paths[3], "7")
    assert total(names) == 10 and counter.n == 2


def test_declared_files_cover_readers_that_bypass_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         counter: Counter) -> None:
    monkeypatch.chdir(tmp_path)
    Path("data").mkdir()
    Path("data/a.bin").write_bytes(b"1")

    @memo(files=["data/*.bin"])
    def total() -> int:
        counter()
        return sum(int(_libc_read(str(p))) for p in sorted(Path("data").glob("*.bin")))

    assert total() == 1 and total() == 1 and counter.n == 1
    Path("data/a.bin").write_bytes(b"5")
    assert total() == 5 and counter.n == 2
    Path("data/b.bin").write_bytes(b"2")
    assert total() == 7 and counter.n == 3


def test_depends_on_file_inside_the_body(tmp_path: Path, counter: Counter) -> None:
    dataset = tmp_path / "dataset"
    (dataset / "part=1").mkdir(parents=True)
    (dataset / "part=1" / "x.bin").write_bytes(b"3")
    single = tmp_path / "single.bin"
    single.write_bytes(b"4")

    @memo
    def total() -> int:
        counter()
        parts = [int(_libc_read(str(p))) for p in sorted(memo.depends_on_file(dataset).rglob("*.bin"))]
        return sum(parts) + int(_libc_read(str(memo.depends_on_file(single))))

    assert total() == 7 and total() == 7 and counter.n == 1
    single.write_bytes(b"5")
    assert total() == 8 and counter.n == 2
    (dataset / "part=2").mkdir()
    (dataset / "part=2" / "y.bin").write_bytes(b"1")
    assert total() == 9 and counter.n == 3
    (dataset / "part=2" / "y.bin").write_bytes(b"2")
    assert total() == 10 and counter.n == 4
    assert memo.depends_on_file("outside/any/body") == "outside/any/body"  # outside a body: no effect


def test_a_memoized_helper_that_hits_passes_its_files_to_the_caller(tmp_path: Path, counter: Counter) -> None:
    path = tmp_path / "in.txt"
    path.write_text("1")

    @memo
    def inner(p: str) -> int:
        return int(Path(p).read_text())

    inner(str(path))  # cached before the outer function first runs: inside it, a hit

    @memo
    def outer(p: str) -> int:
        counter()
        return inner(p) * 10

    assert outer(str(path)) == 10
    path.write_text("2")
    assert outer(str(path)) == 20 and counter.n == 2


def test_a_batch_function_reading_a_file_recomputes_its_items_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "scale.txt"
    path.write_text("2")
    seen = _Seen()

    @memo.batch("items", progress=False)
    def scaled(items: list[int], p: str) -> list[int]:
        seen.append(list(items))
        factor = int(Path(p).read_text())
        return [i * factor for i in items]

    assert scaled([1, 2], str(path)) == [2, 4]
    assert scaled([1, 2, 3], str(path)) == [2, 4, 6]
    assert seen == [[1, 2], [3]]
    rewrite_keeping_stat(path, "5")
    assert scaled([1, 2, 3], str(path)) == [5, 10, 15]
    assert seen[-1] == [1, 2, 3]


def test_a_batch_function_drawing_from_the_global_generator_is_not_cached() -> None:
    @memo.batch("items", progress=False)
    def noisy(items: list[int]) -> list[float]:
        return [i + float(np.random.rand()) for i in items]

    np.random.seed(0)
    with pytest.warns(MemoWarning, match="chunk"):
        first = noisy([1, 2])
    np.random.seed(0)
    assert noisy.uncached([1, 2]) == first
    assert not noisy.is_cached([1, 2])


def test_a_cell_that_reads_a_file_runs_again_when_the_file_changes(shell: Shell, tmp_path: Path) -> None:
    shell.run("%load_ext notebook_memo")
    path = tmp_path / "in.txt"
    path.write_text("1")
    shell.run(f"class _Runs(list):\n    def __memo_key__(self): return 'runs'\nRUNS = _Runs()\nPATH = {str(path)!r}")
    cell = "%%memo\nRUNS.append(1)\nvalue = int(open(PATH).read())"
    shell.run(cell)
    shell.run(cell)
    assert shell["value"] == 1 and len(shell["RUNS"]) == 1
    rewrite_keeping_stat(path, "2")
    shell.run(cell)
    assert shell["value"] == 2 and len(shell["RUNS"]) == 2


# -- global random state --------------------------------------------------------------------------------------

RANDOM_CELLS = [
    """
    import random
    import numpy as np
    from notebook_memo import memo
    np.random.seed(0)
    random.seed(0)

    @memo
    def noisy(n):
        return [float(v) for v in np.random.rand(n)] + [random.random()]
    """,
    """
    OUT["a"] = noisy(3)
    OUT["b"] = noisy(3)   # the same arguments, a later state: its own numbers
    OUT["after"] = [float(np.random.rand()), random.random()]
    """,
    """
    %load_ext notebook_memo
    """,
    """
    %%memo
    draw = [float(np.random.rand()), random.random()]
    """,
    """
    OUT["cell"] = draw
    OUT["last"] = [float(np.random.rand()), random.random()]
    OUT["misses"] = noisy.cache_info().misses
    """,
]


def test_a_seeded_notebook_prints_the_same_numbers_with_and_without_the_cache(cache_dir: Path) -> None:
    plain, first, second = sessions_with_and_without_cache(RANDOM_CELLS, cache_dir)
    assert plain["a"] != plain["b"]
    for name in ("a", "b", "after", "cell", "last"):
        assert first[name] == plain[name] == second[name], name
    assert first["misses"] == 2 and second["misses"] == 0
    assert first["_warnings"] == second["_warnings"] == []


def test_each_random_state_keeps_its_own_entry(counter: Counter) -> None:
    @memo
    def draw() -> float:
        counter()
        return float(np.random.rand())

    np.random.seed(0)
    zero = draw()
    np.random.seed(1)
    one = draw()
    np.random.seed(0)
    assert draw() == zero
    np.random.seed(1)
    assert draw() == one
    assert counter.n == 2
    assert draw.cache_info().entries == 2  # the record pointing to them is not an entry
    assert "random state" in str(draw.explain()).lower() and "MISS" in str(draw.explain())
    np.random.seed(0)
    assert "HIT" in str(draw.explain())
    assert draw.invalidate() and not draw.is_cached()
    assert draw() == zero and counter.n == 3


def test_torch_default_generator_is_a_precondition_and_is_advanced() -> None:
    import torch

    @memo
    def noise(n: int) -> list[float]:
        return torch.rand(n).tolist()  # type: ignore[no-any-return]

    def run(cached: bool) -> tuple[list[float], list[float], float]:
        torch.manual_seed(0)
        a = noise(2) if cached else noise.uncached(2)
        b = noise(2) if cached else noise.uncached(2)
        return a, b, float(torch.rand(1))

    plain = run(False)
    assert run(True) == plain == run(True)
    assert noise.cache_info().misses == 2


@pytest.mark.parametrize("kind", ["generator", "random_state", "random"])
def test_an_explicit_generator_argument_is_left_advanced(kind: str, counter: Counter) -> None:
    make = {
        "generator": lambda: np.random.default_rng(7),
        "random_state": lambda: np.random.RandomState(7),
        "random": lambda: random.Random(7),
    }[kind]
    draw = {"generator": lambda g: float(g.random()), "random_state": lambda g: float(g.rand()),
            "random": lambda g: g.random()}[kind]

    @memo
    def sample(rng: Any) -> list[float]:
        counter()
        return [draw(rng), draw(rng)]

    plain_rng = make()
    plain = [sample.uncached(plain_rng), draw(plain_rng)]
    first_rng = make()
    first = [sample(first_rng), draw(first_rng)]
    second_rng = make()
    second = [sample(second_rng), draw(second_rng)]
    assert plain == first == second
    assert counter.n == 2  # the plain run and the first cached one


def test_a_generator_held_by_a_global_or_an_object_is_left_advanced(shell: Shell) -> None:
    shell.run("""
    import numpy as np
    from notebook_memo import memo

    class _Runs(list):
        def __memo_key__(self): return "runs"

    RUNS = _Runs()
    rng = np.random.default_rng(3)

    @memo
    def from_global(n):
        RUNS.append(1)
        return rng.random(n).tolist()

    class Sampler:
        def __init__(self, seed):
            self.rng = np.random.default_rng(seed)

        @memo
        def sample(self, n):
            RUNS.append(1)
            return self.rng.random(n).tolist()

    def session(call):
        global rng
        rng = np.random.default_rng(3)
        sampler = Sampler(5)
        return [call(from_global, 2), call(from_global, 2), float(rng.random()),
                call(sampler.sample, 2), float(sampler.rng.random())]
    """)
    plain = shell.run("session(lambda f, n: f.uncached(n))")
    first = shell.run("session(lambda f, n: f(n))")
    second = shell.run("session(lambda f, n: f(n))")
    assert plain == first == second
    assert plain[0] != plain[1]
    assert len(shell["RUNS"]) == 3 + 3  # the plain session, then the first cached one


# -- environment variables ------------------------------------------------------------------------------------

ENV_FORMS = {
    "subscript": 'os.environ["NBM_TEST_SETTING"]',
    "get": 'os.environ.get("NBM_TEST_SETTING", "default")',
    "getenv": 'os.getenv("NBM_TEST_SETTING")',
    "imported": 'environ.get("NBM_TEST_SETTING") or getenv("NBM_TEST_SETTING")',
    "contains": '"NBM_TEST_SETTING" in os.environ',
    "helper": "helper()",
}


@pytest.mark.parametrize("form", sorted(ENV_FORMS))
def test_an_environment_variable_the_code_reads_is_in_the_key(form: str, shell: Shell,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBM_TEST_SETTING", "one")
    shell.run(f"""
    import os
    from os import environ, getenv
    from notebook_memo import memo

    class _Runs(list):
        def __memo_key__(self): return "runs"

    RUNS = _Runs()

    def helper():
        return os.environ["NBM_TEST_SETTING"]

    @memo
    def setting():
        RUNS.append(1)
        return {ENV_FORMS[form]}
    """)
    first = shell.run("setting()")
    monkeypatch.setenv("NBM_UNRELATED", "x")
    assert shell.run("setting()") == first and len(shell["RUNS"]) == 1
    monkeypatch.delenv("NBM_TEST_SETTING") if form == "contains" else monkeypatch.setenv("NBM_TEST_SETTING", "two")
    assert shell.run("setting()") != first and len(shell["RUNS"]) == 2
    monkeypatch.setenv("NBM_TEST_SETTING", "one")
    assert shell.run("setting()") == first and len(shell["RUNS"]) == 2


def test_an_environment_variable_changed_between_sessions_is_a_miss(cache_dir: Path) -> None:
    cells = ["""
    import os
    from notebook_memo import memo

    @memo
    def endpoint():
        return os.environ.get("NBM_ENDPOINT", "none")
    """, """
    OUT["value"] = endpoint()
    OUT["misses"] = endpoint.cache_info().misses
    """]
    assert run_kernel(cells, cache_dir, seed=1, env={"NBM_ENDPOINT": "a"})["value"] == "a"
    assert run_kernel(cells, cache_dir, seed=2, env={"NBM_ENDPOINT": "a"})["misses"] == 0
    assert run_kernel(cells, cache_dir, seed=3, env={"NBM_ENDPOINT": "b"}) == \
        {"value": "b", "misses": 1, "_warnings": []}


def test_explain_names_a_changed_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBM_TEST_SETTING", "one")

    @memo
    def setting() -> str:
        return os.environ["NBM_TEST_SETTING"]

    setting()
    monkeypatch.setenv("NBM_TEST_SETTING", "two")
    text = str(setting.explain())
    assert "MISS" in text and "environment variable NBM_TEST_SETTING" in text


# -- the clock ------------------------------------------------------------------------------------------------

CLOCK_FORMS = {
    "stamp": "str(datetime.datetime.now())",
    "today": "str(date.today())",
    "imported": "str(dt.utcnow())",
    "epoch": "now()",
    "helper": "helper()",
    "pandas": "str(pd.Timestamp.now())",
}


@pytest.mark.parametrize("form", sorted(CLOCK_FORMS))
def test_reading_the_clock_warns_once_and_is_explained(form: str, shell: Shell) -> None:
    shell.run(f"""
    import datetime
    from datetime import date
    from datetime import datetime as dt
    from time import time as now
    import pandas as pd
    from notebook_memo import memo

    def helper():
        return str(datetime.datetime.now())

    @memo
    def report():
        return {CLOCK_FORMS[form]}
    """)
    with pytest.warns(MemoWarning, match="ttl="):
        shell.run("report()")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        shell.run("report()")
    assert "clock" in str(shell.run("report.explain()"))
    shell.run("""
    @memo(ttl="1h")
    def report_with_ttl():
        return helper()
    """)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        shell.run("report_with_ttl()")


def test_timing_code_and_library_clocks_do_not_warn() -> None:
    from tqdm import tqdm

    @memo
    def timed(n: int) -> int:
        t0 = time.time()
        total = sum(i for i in tqdm(range(n), disable=False, mininterval=0))
        elapsed = time.time() - t0
        start = time.perf_counter()
        _ = time.perf_counter() - start
        return total if elapsed >= 0 else -1

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert timed(5) == 10
