"""Issue 15's measures: each beside its floor, measured in the same run, contenders taking turns."""

from __future__ import annotations

import functools
import itertools
import os
import pickle
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import floors
from benchmarks._report import RESULTS, human, record, table
from benchmarks._timing import (
    busy_machine,
    count_sql,
    median_in_turns,
    reported_seconds,
    round_robin,
    run_child,
    settle_ours,
    wall_and_cpu,
)
from notebook_memo import memo
from notebook_memo.hashing import content_hash

DB_NAME = "cache.db"  # the index file in a cache directory


def fresh_dir(root: Path, name: str) -> Path:
    path = root / name
    shutil.rmtree(path, ignore_errors=True)
    return path


def mib(nbytes: int) -> str:
    return f"{nbytes >> 20} MiB"


def work(a: int, b: str = "x") -> int:
    return a + len(b)


def sweep(fn: Callable[..., int], keys: int) -> Callable[[], None]:
    """Return a run calling ``fn(k, "abc")`` for each of ``keys`` keys in turn: a different key each call."""
    def run() -> None:
        for k in range(keys):
            fn(k, "abc")
    return run


# -- small hits and misses ----------------------------------------------------------------------------------


def small(root: Path, quick: bool) -> None:
    """Small hits (a different key each call, and the same key again) and small misses."""
    import diskcache
    from joblib import Memory

    # 3,000 keys in every mode: more than the store keeps in memory (1,024 records), so each hit reads the index.
    keys = 3000
    rounds = 3 if quick else 5
    nm = memo(cache_dir=fresh_dir(root, "nm_small"))(work)
    dc = diskcache.Cache(str(fresh_dir(root, "dc_small"))).memoize()(work)
    # The floor reads as our store's reader does: no access-time write per get.
    floor_cache = diskcache.Cache(str(fresh_dir(root, "floor_small")), eviction_policy="none")

    def floor_hit(a: int, b: str = "x") -> int:
        return pickle.loads(floor_cache.get(floors.call_key((a, b), {})))  # type: ignore[no-any-return]

    def floor_miss(a: int, b: str = "x") -> int:
        key = floors.call_key((a, b), {})
        if floor_cache.get(key) is None:
            result = work(a, b)
            floor_cache.set(key, pickle.dumps(result, protocol=5))
            return result
        return pickle.loads(floor_cache.get(key))  # type: ignore[no-any-return]

    contenders: dict[str, Callable[..., int]] = {
        "floor": floor_hit,
        "notebook_memo @memo": nm,
        "diskcache Cache.memoize": dc,
        "joblib.Memory.cache": Memory(str(fresh_dir(root, "jl_small")), verbose=0).cache(work),
        "functools.lru_cache (memory only)": functools.lru_cache(maxsize=None)(work),
    }
    for k in range(keys):
        floor_miss(k, "abc")
        for name, fn in contenders.items():
            if name != "floor":
                fn(k, "abc")

    fresh = itertools.count(10**6)  # beyond the keys stored above: every call a miss

    def missing(fn: Callable[..., int]) -> Callable[[], int]:
        return lambda: fn(next(fresh), "abc")

    misses = {"floor": missing(floor_miss), "notebook_memo @memo": missing(nm),
              "diskcache Cache.memoize": missing(dc)}
    other = round_robin({name: sweep(fn, keys) for name, fn in contenders.items()}, 1, rounds)
    same = round_robin({name: functools.partial(fn, 1, "abc") for name, fn in contenders.items()}, keys, rounds)
    # Our quick misses leave their commit to a background thread: each turn ends with it done.
    # More turns than the hits take: a turn of misses is short, and meets a checkpoint or another process's
    # burst now and then (its best of five varied by a third from run to run).
    missed = round_robin(misses, 30 if quick else 100, 4 * rounds, finish={"notebook_memo @memo": settle_ours})
    # Counted last: a counted connection keeps a (then idle) trace callback, a Python call per statement.
    hit_sql = count_sql(sweep(nm, keys), 1)  # the rows were read before, but the index may have changed since
    settle_ours(flush=True)  # the access times that sweep renewed: written now, not during the next count
    # Its background thread writes hit counts every 2 s: held off here, so that the count below is what
    # its label says (a sweep with no commit since the rows were read), however the turns fall.
    nm._store().stop_background()
    sweep(nm, keys)()  # the rows read again after that write
    hit_sql_again = count_sql(sweep(nm, keys), 1)  # a cell run again, no other write in between
    for fn in misses.values():
        for _ in range(3):
            fn()  # the first write after many hits also writes their access times: not a miss's own cost
    sql = {name: count_sql(fn, 20) for name, fn in misses.items()}

    table(f"small hit, a different key each call ({keys:,} stored keys in turn)",
          [(name, seconds / keys) for name, seconds in other.items()], "floor")
    record("hit_other_key", other["floor"] / keys, other["notebook_memo @memo"] / keys,
           other["diskcache Cache.memoize"] / keys,
           note=f"SQL statements per hit: {hit_sql[0] / keys:.2f} on the first sweep counted, "
           f"{hit_sql_again[0] / keys:.2f} on the next (a row read before, and no commit since: "
           f"the wal-index header, read without SQL), and {hit_sql[2] / keys:.2f} on a background thread")
    table("small hit, the same key again (special case: the key was just read)", list(same.items()), "floor")
    record("hit_same_key", same["floor"], same["notebook_memo @memo"], same["diskcache Cache.memoize"])
    table("small miss, tiny body (store a new result)", list(missed.items()), "floor")
    ours, floor_sql, dc_sql = sql["notebook_memo @memo"], sql["floor"], sql["diskcache Cache.memoize"]
    note = (f"SQL statements per miss: {ours[0]:.0f} in {ours[1]:.2f} BEGINs, and {ours[2]:.1f} on a background "
            f"thread; floor {floor_sql[0]:.0f} in {floor_sql[1]:.2f}, diskcache memoize {dc_sql[0]:.0f} in "
            f"{dc_sql[1]:.2f}")
    record("miss", missed["floor"], missed["notebook_memo @memo"], missed["diskcache Cache.memoize"], note=note)


# -- a cache of many entries: hits, batches, first misses, info ------------------------------------------------


def double_all(items: list[int]) -> list[int]:
    return [2 * i for i in items]


@functools.cache
def filled(root: Path, entries: int) -> Path:
    """Return a cache directory holding ``entries`` entries (built once per run, through ``memo.batch``)."""
    directory = fresh_dir(root, f"nm_entries_{entries}")
    fill = memo.batch("items", batch_size=4096, progress=False, cache_dir=directory)(double_all)
    start = time.perf_counter()
    fill(list(range(entries)))
    seconds = time.perf_counter() - start
    print(f"  (built {entries:,} entries with memo.batch in {seconds:.1f} s)")
    RESULTS.setdefault("build a cache with memo.batch (seconds)", {})[f"{entries:,} entries"] = seconds
    return directory


def stored_keys(directory: Path, limit: int, newest: bool = False) -> list[str]:
    """Return index keys of ``limit`` record rows, the oldest (or newest) first."""
    con = floors.read_only(str(directory / DB_NAME))
    try:
        order = "DESC" if newest else "ASC"
        return [k for (k,) in con.execute(f"SELECT key FROM Cache WHERE typeof(value) = 'blob' "
                                          f"ORDER BY rowid {order} LIMIT ?", (limit,))]
    finally:
        con.close()


def many(root: Path, quick: bool) -> None:
    """Hits and memo.batch against a cache of 100,000 entries, beside diskcache at the same size."""
    import diskcache

    entries = 10_000 if quick else 100_000
    keys = 3000  # more than the store keeps in memory, as in small()
    rounds = 3 if quick else 5
    directory = filled(root, entries)
    nm = memo(cache_dir=directory)(work)
    for k in range(keys):
        nm(k, "abc")
    con = floors.read_only(str(directory / DB_NAME))
    rows = stored_keys(directory, keys, newest=True)[::-1]  # the rows nm just wrote, read in the same order
    pickled = pickle.dumps(work(0, "abc"), protocol=5)
    # The floor reads those rows through diskcache's Cache.get on the same index, as the small hit's floor
    # does on its own cache; the bare SELECT beside it shows what diskcache adds.
    same_index = diskcache.Cache(str(directory), eviction_policy="none", disk=floors.RowsAsStored)

    def floor_hit() -> None:
        for k in range(keys):
            floors.call_key((k, "abc"), {})
            same_index.get(rows[k])
            pickle.loads(pickled)

    def bare_select() -> None:
        for k in range(keys):
            floors.call_key((k, "abc"), {})
            floors.row_by_key(con, rows[k])
            pickle.loads(pickled)

    dc_cache = diskcache.Cache(str(fresh_dir(root, f"dc_entries_{entries}")))
    with dc_cache.transact():
        for i in range(entries):
            dc_cache.set(("fill", i), 2 * i)
    dc = dc_cache.memoize()(work)
    for k in range(keys):
        dc(k, "abc")

    best = round_robin({"floor": floor_hit, "notebook_memo @memo": sweep(nm, keys),
                        "diskcache Cache.memoize": sweep(dc, keys),
                        "the floor with a bare SELECT for Cache.get": bare_select}, 1, rounds)
    spread = [(name, seconds / keys) for name, seconds in best.items()]
    table(f"hit at {entries:,} entries, a different key each call", spread, "floor")
    record("hit_many", best["floor"] / keys, best["notebook_memo @memo"] / keys,
           best["diskcache Cache.memoize"] / keys, n=f"{entries:,}")

    items = list(range(entries))
    fill = memo.batch("items", batch_size=4096, progress=False, cache_dir=directory)(double_all)
    batch_rows = stored_keys(directory, entries)
    pickled = pickle.dumps(2 * entries, protocol=5)
    # The floor reads through a plain sqlite3 connection, as a script would; notebook_memo's own keeps as many
    # pages as diskcache's connections keep, so the same read through such a connection is shown too.
    pages = diskcache.DEFAULT_SETTINGS["sqlite_cache_size"]
    cached = floors.read_only(str(directory / DB_NAME), pages=pages)
    cached_name = f"the floor, keeping {pages:,} pages as diskcache's connections do"
    best = round_robin({"floor": lambda: floors.rows_in(con, batch_rows, pickled),
                        "notebook_memo memo.batch": lambda: fill(items),
                        cached_name: lambda: floors.rows_in(cached, batch_rows, pickled)}, 1, 5)
    cached.close()
    per_item = [(name, seconds / entries) for name, seconds in best.items()]
    table(f"memo.batch of {entries:,} items, all cached (time per item)", per_item, "floor")
    ours, cached_floor = best["notebook_memo memo.batch"], best[cached_name]
    record("batch_many", best["floor"] / entries, ours / entries, n=f"{entries:,}",
           note=f"the floor keeping as many pages as ours: {human(cached_floor / entries)}, "
                f"{ours / cached_floor:.2f}x of it")
    con.close()
    same_index.close()


FIRST_MISS = """
import sys, time
from notebook_memo import memo

@memo(cache_dir=sys.argv[1])
def first_call(x):
    return x + 1

start = time.perf_counter()
first_call(int(sys.argv[2]))
print(time.perf_counter() - start)
"""


def first_miss(root: Path, quick: bool) -> None:
    """The first miss of a function in a fresh process, against caches of 1,000 and 100,000 entries."""
    small_n, large_n = 1_000, (10_000 if quick else 100_000)
    script = root / "first_miss.py"
    script.write_text(FIRST_MISS)
    arguments = itertools.count(time.time_ns())  # a new argument each run: every first call a miss
    directories = {f"{n:,} entries": filled(root, n) for n in (small_n, large_n)}

    def runner(directory: Path) -> Callable[[], float]:
        return lambda: reported_seconds([sys.executable, str(script), str(directory), str(next(arguments))])

    runs = {name: runner(directory) for name, directory in directories.items()}
    got = median_in_turns(runs, 3)
    table("first miss of a function in a fresh process (median, measured inside the process)",
          list(got.items()), f"{small_n:,} entries")
    record("first_miss", got[f"{small_n:,} entries"], got[f"{large_n:,} entries"], n=f"{large_n:,}",
           m=f"{small_n:,}")


SCAN = """
import sqlite3, sys, xxhash
con = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
rows = 0
for key, value in con.execute("SELECT key, value FROM Cache"):
    if isinstance(value, bytes):
        xxhash.xxh3_128_digest(value)
    rows += 1
print(rows)
"""


def info(root: Path, quick: bool) -> None:
    """``python -m notebook_memo info`` at 100,000 entries beside a process that scans the index once."""
    entries = 10_000 if quick else 100_000
    directory = filled(root, entries)
    runs = {
        "floor: a process scanning the index": lambda: run_child([sys.executable, "-c", SCAN,
                                                                  str(directory / DB_NAME)])[0],
        "python -m notebook_memo info": lambda: run_child([sys.executable, "-m", "notebook_memo", "info",
                                                            "--dir", str(directory)])[0],
    }
    got = median_in_turns(runs, 3)
    table(f"python -m notebook_memo info, {entries:,} entries (median wall, start-up included)",
          list(got.items()), "floor: a process scanning the index")
    ours = got["python -m notebook_memo info"]
    record("info", got["floor: a process scanning the index"], ours, n=f"{entries:,}",
           note=f"goal also: under 3 s at 100,000 entries; {human(ours)} here")


# -- hashing -----------------------------------------------------------------------------------------------


def _frame(rows: int, seed: int = 5) -> Any:
    """A frame with numeric, ``str`` and categorical columns."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "x": rng.random(rows),
        "n": rng.integers(0, 1000, rows),
        "name": pd.Series([f"customer-{i % 7919}-{i}" for i in range(rows)], dtype="str"),
        "color": pd.Categorical(rng.choice(["red", "green", "blue", "amber"], rows)),
    })


def hashing(root: Path, quick: bool) -> None:
    """content_hash of containers of many small items, strided arrays and frames beside their floors."""
    rounds = 3 if quick else 5
    strs = [f"token {i}" for i in range(10_000 if quick else 100_000)]
    arrays = {f"layer{i}": np.random.default_rng(i).random(1000) for i in range(1_000 if quick else 10_000)}
    base = np.random.default_rng(7).random((32 if quick else 256) * 2**20 // 8)
    view = base[::2]
    frame = _frame(100_000 if quick else 1_000_000)
    cases: list[tuple[str, str, str, Any, Callable[[Any], bytes]]] = [
        ("hash_strs", f"{len(strs):,}", "a list of short str", strs, floors.str_list),
        ("hash_arrays", f"{len(arrays):,}", "a dict of float64[1000] arrays", arrays, floors.array_dict),
        ("hash_strided", mib(base.nbytes), "a strided view a[::2]", view, floors.strided),
        ("hash_frame", f"{len(frame):,}", "a frame with str and categorical columns", frame, floors.frame),
    ]
    for goal, size, label, value, floor in cases:
        best = round_robin({"floor": functools.partial(floor, value),
                            "notebook_memo content_hash": functools.partial(content_hash, value)}, 1, rounds)
        table(f"hash {label} ({size})", list(best.items()), "floor")
        record(goal, best["floor"], best["notebook_memo content_hash"], n=size)


# -- loading on a busy machine -----------------------------------------------------------------------------


class Holder:
    """Gives a big value to a memoized function without making it part of the key."""

    def __init__(self, value: Any, name: str) -> None:
        self.value = value
        self.name = name

    def __memo_key__(self) -> str:
        return self.name


def load_busy(root: Path, quick: bool) -> None:
    """A hit loading a 256 MiB array while every core is busy, beside np.load: wall and CPU time."""
    array = np.random.default_rng(2).random((32 if quick else 256) * 2**20 // 8)
    holder = Holder(array, "the load benchmark array")

    def produce(tag: int) -> np.ndarray:
        return holder.value  # type: ignore[no-any-return]

    nm = memo(cache_dir=fresh_dir(root, "nm_load"))(produce)
    nm(1)
    npy = root / "load_ref.npy"
    np.save(npy, array)
    del holder.value, array
    with busy_machine() as hogs:
        got = wall_and_cpu({"np.load": lambda: np.load(npy), "notebook_memo hit": lambda: nm(1)},
                           3 if quick else 21)  # medians of many: the hogs make single loads vary 2x
    size = mib(os.path.getsize(npy))
    print(f"\nload a {size} array with {hogs} CPU-bound processes running (median; ratio = time / np.load)")
    for name, (wall, cpu) in got.items():
        print(f"  {name:<28} wall {human(wall):>10} {wall / got['np.load'][0]:>6.2f}x   "
              f"CPU {human(cpu):>10} {cpu / got['np.load'][1]:>6.2f}x")
    record("load_wall", got["np.load"][0], got["notebook_memo hit"][0], n=size)
    record("load_cpu", got["np.load"][1], got["notebook_memo hit"][1], n=size)


# -- a global frame read by the body -----------------------------------------------------------------------

GLOBAL_READER = """
def over(threshold):
    return int((FRAME["x"] > threshold).sum())
"""


def global_frame(root: Path, quick: bool) -> None:
    """A hit of a function whose body reads a global 1M-row frame with a str column, beside hashing it."""
    frame = _frame(100_000 if quick else 1_000_000, seed=6)
    namespace: dict[str, Any] = {"__name__": "__main__", "FRAME": frame}
    exec(compile(GLOBAL_READER, "<notebook cell>", "exec"), namespace)
    nm = memo(cache_dir=fresh_dir(root, "nm_global"))(namespace["over"])
    nm(0.5)
    best = round_robin({"floor: hash the frame": functools.partial(floors.frame, frame),
                        "content_hash of the frame": functools.partial(content_hash, frame),
                        "notebook_memo hit": functools.partial(nm, 0.5)}, 1, 3 if quick else 5)
    table(f"hit of a function reading a global {len(frame):,}-row frame", list(best.items()),
          "floor: hash the frame")
    record("global_frame_hit", best["floor: hash the frame"], best["notebook_memo hit"], n=f"{len(frame):,}")


# -- import ------------------------------------------------------------------------------------------------

IMPORT = "import time, numpy, pandas; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


def import_time(root: Path, quick: bool) -> None:
    """``import notebook_memo`` with numpy and pandas already imported, beside ``import joblib``."""
    import compileall

    import notebook_memo

    # As pip leaves an installed package (and joblib here): compiled. A source checkout run with
    # PYTHONDONTWRITEBYTECODE would otherwise compile every module again in each process.
    compileall.compile_dir(str(Path(notebook_memo.__file__).parent), quiet=1)
    runs = {f"import {m}": functools.partial(reported_seconds, [sys.executable, "-c", IMPORT.format(module=m)])
            for m in ("joblib", "notebook_memo")}
    got = median_in_turns(runs, 5 if quick else 15)
    table("import with numpy and pandas already imported (median of fresh processes)", list(got.items()),
          "import joblib")
    record("import", got["import joblib"], got["import notebook_memo"])


CASES: dict[str, Callable[[Path, bool], None]] = {
    "small": small,
    "many": many,
    "hashing": hashing,
    "load": load_busy,
    "first-miss": first_miss,
    "global": global_frame,
    "info": info,
    "import": import_time,
}

