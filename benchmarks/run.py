"""Benchmarks: issue 15's per-call measures beside their floors, then notebook_memo beside other caches.

    .venv/bin/pip install -e ".[bench]"
    .venv/bin/python benchmarks/run.py                       # full sizes: 256 MiB arrays, 100,000 entries
    .venv/bin/python benchmarks/run.py --quick               # small sizes, for a smoke run
    .venv/bin/python benchmarks/run.py --only small hashing  # some cases (--help lists them)
    .venv/bin/python benchmarks/readme_table.py              # README's performance table from results.json

Every measure is printed beside its floor (the least work the operation needs, measured in the
same process, the contenders taking turns), with the ratio; a closing summary lists each measure
with its goal, and every figure goes to benchmarks/results.json. No figure here is an assertion.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import notebook_memo
from benchmarks._report import RESULTS, goals, merged, print_summary, table
from benchmarks._timing import best_of, interleaved, round_robin
from benchmarks.per_call import CASES as PER_CALL
from notebook_memo import memo
from notebook_memo.hashing import content_hash


def fresh_dir(root: Path, name: str) -> Path:
    path = root / name
    shutil.rmtree(path, ignore_errors=True)
    return path


# -- comparisons beside other caches ---------------------------------------------------------


def hash_compare(quick: bool) -> None:
    import joblib
    import pandas as pd

    n = (32 if quick else 256) * 2**20 // 8
    array = np.random.default_rng(0).random(n)
    rows = [
        ("notebook_memo content_hash", best_of(lambda: content_hash(array), repeat=5)),
        ("numpy in-memory copy (array.copy())", best_of(lambda: array.copy(), repeat=5)),
        ("joblib.hash", best_of(lambda: joblib.hash(array), repeat=2)),
    ]
    table(f"hash a {array.nbytes >> 20} MB float64 array", rows, "numpy in-memory copy (array.copy())")
    frame_rows = 100_000 if quick else 1_000_000
    df = pd.DataFrame(np.random.default_rng(1).random((frame_rows, 10)), columns=[f"c{i}" for i in range(10)])
    rows = [
        ("notebook_memo content_hash", best_of(lambda: content_hash(df), repeat=5)),
        ("DataFrame.copy()", best_of(lambda: df.copy(), repeat=5)),
        ("pandas.util.hash_pandas_object", best_of(lambda: pd.util.hash_pandas_object(df), repeat=3)),
        ("joblib.hash", best_of(lambda: joblib.hash(df), repeat=2)),
    ]
    table(f"hash a {frame_rows:,}-row x 10-column DataFrame", rows, "DataFrame.copy()")


def big_values(root: Path, quick: bool) -> None:
    import diskcache
    from joblib import Memory

    n = (32 if quick else 256) * 2**20 // 8
    array = np.random.default_rng(2).random(n)
    label = f"{array.nbytes >> 20} MB array"

    class Holder:
        """Gives the big array to the function without making it part of the key."""

        def __init__(self, value: np.ndarray) -> None:
            self.value = value

        def __memo_key__(self) -> str:
            return "the benchmark array"

    holder = Holder(array)

    # The argument is a small tag, so the figure is the cost of storing and loading the result.
    def produce(tag: int) -> np.ndarray:
        return holder.value

    stores: list[tuple[str, float]] = []
    loads: list[tuple[str, float]] = []

    nm = memo(cache_dir=fresh_dir(root, "nm_big"))(produce)
    nm_mmap = memo(cache_dir=fresh_dir(root, "nm_big_mmap"), mmap=True)(produce)
    dc = diskcache.Cache(str(fresh_dir(root, "dc_big"))).memoize()(produce)
    jl = Memory(str(fresh_dir(root, "jl_big")), verbose=0).cache(produce)
    jl_mmap = Memory(str(fresh_dir(root, "jl_big_mmap")), verbose=0, mmap_mode="r").cache(produce)
    # Each contender writes a new file each round (np.save too: overwriting a file still in the
    # page cache would flatter it).
    writers: dict[str, Callable[[int], Any]] = {
        "np.save (a new file)": lambda t: np.save(root / f"ref_{t}.npy", array),
        "notebook_memo": nm, "diskcache memoize": dc, "joblib.Memory": jl,
    }
    stores.extend(interleaved(writers).items())
    npy = root / "ref_1.npy"
    loads.append(("np.load", best_of(lambda: np.load(npy), repeat=3)))
    raw = root / "ref.raw"
    with open(raw, "wb") as f:
        f.write(b"\0" * 128)  # the data at the same offset as in the .npy file
        f.write(memoryview(array).cast("B"))
    buf = np.empty_like(array)

    def read_raw() -> None:
        with open(raw, "rb") as f:
            f.seek(128)
            f.readinto(memoryview(buf).cast("B"))

    loads.append(("raw file readinto preallocated buffer", best_of(read_raw, repeat=3)))
    loads.append(("in-memory copy", best_of(lambda: array.copy(), repeat=3)))
    for name, fn in [("notebook_memo", nm), ("diskcache memoize", dc), ("joblib.Memory", jl)]:
        loads.append((name, best_of(lambda fn=fn: fn(1), repeat=3)))
    nm_mmap(1)
    jl_mmap(1)
    loads.append(("notebook_memo mmap=True", best_of(lambda: nm_mmap(1), repeat=5)))
    loads.append(("joblib.Memory mmap_mode='r'", best_of(lambda: jl_mmap(1), repeat=5)))
    table(f"store a {label} (a miss: pickling and writing)", stores, "np.save (a new file)")
    table(f"load a {label} (a hit)", loads, "np.load")


def frames(root: Path, quick: bool) -> None:
    import pandas as pd
    from joblib import Memory

    rows_n = 100_000 if quick else 1_000_000
    rng = np.random.default_rng(4)
    df = pd.DataFrame({f"f{i}": rng.random(rows_n) for i in range(8)})
    df["label"] = rng.integers(0, 10, rows_n)
    df["when"] = pd.date_range("2020-01-01", periods=rows_n, freq="s")

    class Holder:
        """Gives the frame to the function without making it part of the key."""

        def __init__(self, value: pd.DataFrame) -> None:
            self.value = value

        def __memo_key__(self) -> str:
            return "the benchmark frame"

    holder = Holder(df)

    def produce(tag: int) -> pd.DataFrame:
        return holder.value

    nm = memo(cache_dir=fresh_dir(root, "nm_frame"))(produce)
    jl = Memory(str(fresh_dir(root, "jl_frame")), verbose=0).cache(produce)
    writers: dict[str, Callable[[int], Any]] = {
        "DataFrame.to_pickle (a new file)": lambda t: df.to_pickle(root / f"frame_{t}.pkl"),
        "notebook_memo": nm, "joblib.Memory": jl,
    }
    best = interleaved(writers)
    label = f"{rows_n:,}-row x 10-column DataFrame ({df.memory_usage().sum() >> 20} MB)"
    table(f"store a {label}", list(best.items()), "DataFrame.to_pickle (a new file)")
    loads = [
        ("pandas.read_pickle", best_of(lambda: pd.read_pickle(root / "frame_1.pkl"), repeat=3)),
        ("notebook_memo", best_of(lambda: nm(1), repeat=3)),
        ("joblib.Memory", best_of(lambda: jl(1), repeat=3)),
    ]
    table(f"load a {label}", loads, "pandas.read_pickle")


DEPENDENT = """
SCALE = 3
OFFSET = (1, 2, 3)
NAMES = ("a", "b", "c")

def h1(x):
    return x * SCALE

def h2(x):
    return h1(x) + OFFSET[0]

def h3(x):
    return h2(x) - len(NAMES)

class Scaler:
    factor = 2
    def apply(self, x):
        return h3(x) * self.factor

def with_deps(a, b="x"):
    return Scaler().apply(a) + len(b)

def without_deps(a, b="x"):
    return a + len(b)

class Registry:
    known = {"k": 1}

class Model(Registry):
    def __init__(self, w):
        self.w = w
    def predict(self, x):
        return h3(x) * self.w

def use_object(obj, a):
    return obj.apply(a) if hasattr(obj, "apply") else obj.predict(a)
"""


def dependency_cost(root: Path, quick: bool) -> None:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(DEPENDENT, "<notebook cell>", "exec"), namespace)
    plain = memo(cache_dir=fresh_dir(root, "nm_plain"))(namespace["without_deps"])
    deps = memo(cache_dir=fresh_dir(root, "nm_deps"))(namespace["with_deps"])
    objects = memo(cache_dir=fresh_dir(root, "nm_objects"))(namespace["use_object"])
    scaler, model = namespace["Scaler"](), namespace["Model"](2)
    plain(1, "abc")
    deps(1, "abc")
    objects(scaler, 1)
    objects(model, 1)
    number = 300 if quick else 3000
    rows = [
        ("hit, no dependencies", best_of(lambda: plain(1, "abc"), number=number)),
        ("hit, 4 helpers + class + 3 constants", best_of(lambda: deps(1, "abc"), number=number)),
        ("hit, an object argument (its class's methods reach 3 helpers)",
         best_of(lambda: objects(scaler, 1), number=number)),
        ("hit, an object argument whose base class holds a dict",
         best_of(lambda: objects(model, 1), number=number)),
        ("code state check alone, no dependencies", best_of(plain.code_state, number=number)),
        ("code state check alone, with dependencies", best_of(deps.code_state, number=number)),
    ]
    table("per-hit cost of dependency tracking", rows, rows[0][0])


def floor_table(case: str, rows: list[tuple[str, float, float, int, float | None]]) -> None:
    """Print each row beside its own floor: (name, seconds, floor seconds, files, seconds of the no-file twin)."""
    print(f"\n{case}  (ratio = time / its floor; per file = (time - same hit reading no files) / files)")
    print(f"  {'':<46} {'time':>9} {'floor':>9}  {'ratio':>6}  {'per file':>9}")
    for name, seconds, floor, files, twin in rows:
        per_file = f"{(seconds - twin) / files * 1e6:>6.3f} us" if files and twin is not None else f"{'':>9}"
        print(f"  {name:<46} {seconds * 1e6:>6.2f} us {floor * 1e6:>6.2f} us  {seconds / floor:>5.2f}x  {per_file}")
    RESULTS[case] = {name: {"seconds": seconds, "floor": floor} for name, seconds, floor, _, _ in rows}


def conditions_cost(root: Path, quick: bool) -> None:
    """Per-hit cost of preconditions: re-checking the data files a body read, and global random state."""
    from notebook_memo._config import RACY_SECONDS

    counts = (1, 10, 100)
    data = fresh_dir(root, "cond_data")
    data.mkdir()
    paths = [str(data / f"part_{i:03d}.csv") for i in range(max(counts))]
    an_hour_ago = time.time() - 3600
    for path in paths:
        Path(path).write_text("a,b\n1,2\n" * 50)
        os.utime(path, (an_hour_ago, an_hour_ago))
    # A hit trusts a file's stat only if the file was settled (last written, by mtime or ctime,
    # over RACY_SECONDS before) when the entry was recorded. os.utime sets the mtime back but
    # stamps the ctime now, so wait that long before recording: the hits measured are then one
    # os.stat per file, never a re-digest.
    time.sleep(RACY_SECONDS + 0.2)

    directory = fresh_dir(root, "nm_conditions")

    def work(a: int, b: str = "x") -> int:
        return a + len(b)

    def load(paths: list[str]) -> int:
        return sum(len(open(p).read()) for p in paths)

    def count(paths: list[str]) -> int:  # the same argument as load, no file read: the key's own cost
        return len(paths)

    def draw(n: int) -> float:
        return float(np.random.random(n).sum())

    plain = memo(cache_dir=directory)(work)
    loads = memo(cache_dir=directory)(load)
    counts_only = memo(cache_dir=directory)(count)
    draws = memo(cache_dir=directory)(draw)
    plain(1, "abc")
    loads([])
    for n in counts:
        loads(paths[:n])
        counts_only(paths[:n])
    np.random.seed(0)
    draws(3)

    def stats(n: int) -> Callable[[], None]:
        chosen = paths[:n]

        def run() -> None:
            for path in chosen:
                os.stat(path)

        return run

    def reseeded(fn: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            np.random.seed(0)
            fn()

        return run

    calls: dict[str, Callable[[], Any]] = {"plain hit": lambda: plain(1, "abc")}
    for n in counts:
        calls[f"os.stat x {n}"] = stats(n)
    calls["load([]) hit"] = lambda: loads([])
    for n in counts:
        calls[f"count(paths[:{n}]) hit"] = lambda c=paths[:n]: counts_only(c)
        calls[f"load(paths[:{n}]) hit"] = lambda c=paths[:n]: loads(c)
    calls["np.random.seed(0)"] = lambda: np.random.seed(0)
    calls["np.random.seed(0) + plain hit"] = reseeded(lambda: plain(1, "abc"))
    calls["np.random.seed(0) + draw hit"] = reseeded(lambda: draws(3))
    # What the random-state precondition does on a hit, piece by piece (private helpers).
    from notebook_memo import _random_state as states

    np.random.seed(0)
    state_after_draw = states.encode(states.global_states(["numpy"])["numpy"][1])
    calls["np.random.get_state()"] = np.random.get_state
    calls["global_states(['numpy'])"] = lambda: states.global_states(["numpy"])
    calls["set_global_states(state after)"] = lambda: states.set_global_states({"numpy": state_after_draw})
    hits_before = loads.hits, draws.hits
    number, rounds = (40, 4) if quick else (200, 15)
    best = round_robin(calls, number, rounds)
    assert loads.hits - hits_before[0] == (1 + len(counts)) * number * rounds, "a load call missed"
    assert draws.hits - hits_before[1] == number * rounds, "a draw call missed (the random state did not match)"

    table("the floors: os.stat of N files, a plain hit", [(name, best[name]) for name in
          ["plain hit", *(f"os.stat x {n}" for n in counts)]], "plain hit")
    plain_hit = best["plain hit"]
    rows: list[tuple[str, float, float, int, float | None]] = [
        ("hit reading no files: load([])", best["load([]) hit"], plain_hit, 0, None),
    ]
    for n in counts:
        floor = best[f"os.stat x {n}"] + plain_hit
        rows.append((f"same argument, no files: count(paths[:{n}])", best[f"count(paths[:{n}]) hit"], plain_hit, 0,
                     None))
        label = f"hit, {n} recorded file{'s' if n > 1 else ''}: load(paths[:{n}])"
        rows.append((label, best[f"load(paths[:{n}]) hit"], floor, n, best[f"count(paths[:{n}]) hit"]))
    floor_table("per-hit cost of recorded data files (floor = N x os.stat + plain hit)", rows)
    added = {n: best[f"load(paths[:{n}]) hit"] - best[f"count(paths[:{n}]) hit"] for n in counts}
    marginal = (added[counts[-1]] - added[counts[-2]]) / (counts[-1] - counts[-2])
    print(f"  each further file: {marginal * 1e6:.2f} us (os.stat alone: {best['os.stat x 100'] / 100 * 1e6:.2f} us); "
          f"fixed cost of an entry with file conditions: {(added[counts[0]] - marginal * counts[0]) * 1e6:.2f} us")
    RESULTS["per-hit cost of recorded data files"] = {"per further file": marginal,
                                                      "fixed": added[counts[0]] - marginal * counts[0]}
    seeded_plain = best["np.random.seed(0) + plain hit"]
    table("per-hit cost of drawing from np.random (each call after np.random.seed(0))", [
        ("np.random.seed(0) alone", best["np.random.seed(0)"]),
        ("np.random.seed(0) + plain hit", seeded_plain),
        ("np.random.seed(0) + hit of a body that draws", best["np.random.seed(0) + draw hit"]),
        ("  in it: np.random.get_state()", best["np.random.get_state()"]),
        ("  in it: global_states (get_state, digest)", best["global_states(['numpy'])"]),
        ("  in it: set_global_states (restore)", best["set_global_states(state after)"]),
    ], "np.random.seed(0) + plain hit")
    drawn = best["np.random.seed(0) + draw hit"] - seeded_plain
    print(f"  added by the random-state precondition: {drawn * 1e6:.2f} us per hit")


class BigModel:
    """A model-like object: a few large weight arrays and some configuration."""

    def __init__(self, megabytes: int) -> None:
        per_layer = megabytes * 2**20 // 8 // 4
        rng = np.random.default_rng(3)
        self.layers = [rng.random(per_layer) for _ in range(4)]
        self.config = {"name": "big", "layers": 4}

    @memo
    def predict(self, x: int) -> int:
        return x + 1


class KeyedModel(BigModel):
    def __memo_key__(self) -> tuple[str, int]:
        return ("big", 1)

    @memo
    def predict(self, x: int) -> int:
        return x + 1


def method_on_big_object(root: Path, quick: bool) -> None:
    notebook_memo.configure(cache_dir=str(fresh_dir(root, "nm_methods")))
    megabytes = 32 if quick else 200
    hashed, keyed = BigModel(megabytes), KeyedModel(megabytes)
    hashed.predict(1)
    keyed.predict(1)
    rows = [
        (f"hit, self hashed by content ({megabytes} MB)", best_of(lambda: hashed.predict(1), repeat=5)),
        ("hit, self identified by __memo_key__", best_of(lambda: keyed.predict(1), repeat=5, number=200)),
        ("in-memory copy of the weights", best_of(lambda: [a.copy() for a in hashed.layers], repeat=5)),
    ]
    table(f"method on a {megabytes} MB object", rows, rows[-1][0])
    notebook_memo.configure(cache_dir=None)


def cell_restore(root: Path, quick: bool) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    notebook_memo.configure(cache_dir=str(fresh_dir(root, "nm_cells")))
    megabytes = 32 if quick else 256
    ip = InteractiveShell.instance()
    ip.run_cell("%load_ext notebook_memo")
    ip.run_cell(f"import numpy as np\nn = {megabytes} * 2**20 // 8 // 2")
    cell = ("%%memo big_cell --quiet\nembeddings = np.random.default_rng(0).random(n)\n"
            "scores = np.random.default_rng(1).random(n)")
    ip.run_cell(cell)
    reference = np.concatenate([ip.user_ns["embeddings"], ip.user_ns["scores"]])
    npy = root / "cell_ref.npy"
    np.save(npy, reference)

    def restore() -> None:
        result = ip.run_cell(cell)
        assert result.error_in_exec is None

    rows = [
        (f"%%memo hit restoring {megabytes} MB of variables", best_of(restore, repeat=3)),
        (f"np.load of the same {megabytes} MB", best_of(lambda: np.load(npy), repeat=3)),
    ]
    table("cell magic restore", rows, rows[1][0])
    notebook_memo.configure(cache_dir=None)


COMPARISONS: dict[str, Callable[[Path, bool], None]] = {
    "hash-compare": lambda root, quick: hash_compare(quick),
    "big": big_values,
    "frames": frames,
    "deps": dependency_cost,
    "conditions": conditions_cost,
    "methods": method_on_big_object,
    "cells": cell_restore,
}


def main() -> None:
    cases = {**PER_CALL, **COMPARISONS}
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--only", nargs="*", choices=list(cases), metavar="CASE",
                        help=f"run only these cases: {', '.join(cases)}")
    parser.add_argument("--json", help="where to write the figures (default: benchmarks/results.json, or "
                        "results-quick.json with --quick); rows of cases not run are kept from the file")
    args = parser.parse_args()
    header = (f"notebook_memo {notebook_memo.__version__} | Python {platform.python_version()} | "
              f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start | numpy {np.__version__}"
              f"{' | --quick sizes' if args.quick else ''}")
    print(header)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="nm_bench_", ignore_cleanup_errors=True) as tmp:
        root = Path(tmp)
        for name, case in cases.items():
            if args.only and name not in args.only:
                continue
            case(root, args.quick)
    print_summary()
    RESULTS["run"] = {"header": header, "quick": args.quick, "seconds": time.perf_counter() - started,
                      "goals": goals()}
    out = Path(args.json or Path(__file__).with_name("results-quick.json" if args.quick else "results.json"))
    previous = json.loads(out.read_text()) if out.exists() else {}
    out.write_text(json.dumps(merged(previous, args.quick), indent=2) + "\n")
    print(f"\nwrote {out} ({time.perf_counter() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
