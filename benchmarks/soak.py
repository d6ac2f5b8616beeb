"""Soak test: processes share one cache while faults are injected; nothing wrong may come back.

    .venv/bin/python benchmarks/soak.py --seconds 60 --workers 4 [--modes plain mmap index]

Workers call memoized functions over a small key space (small and multi-megabyte values, a
``memo.batch`` function over 30 items at a time, a slow function that takes leases, a method,
a ``cached_property`` and an async function) and check every value they get. Meanwhile
this process kills workers with SIGKILL, flips bytes in stored files and rows, truncates
payload files and deletes the whole cache directory. Each mode runs in turn:

- ``plain``: the faults above;
- ``mmap``: the same, with the large values memory-mapped (``mmap=True``); damaged payload files
  are new files put over the old ones (a change in place shows through maps already served);
- ``index``: mostly damage to the SQLite index itself: random bytes over whole pages of
  ``cache.db`` (now and then its first page, so it is no longer a database), and rows
  pointed at other entries' rows and files.

Prints, per mode, calls, faults injected, wrong values served and errors surfaced to
callers; exits 1 unless the last two are 0 in every mode.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

WORKER = """
import asyncio, json, os, random, sys, time, warnings
sys.path.insert(0, {root!r})
import numpy as np
from notebook_memo import memo
warnings.simplefilter("ignore")
report, seconds, seed, use_mmap = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "mmap"

@memo
def small(k):
    return {{"k": k, "items": list(range(k % 50))}}

@memo(mmap=use_mmap)
def large(k):
    return np.full((k % 4 + 1) * 2**18, float(k))

@memo.batch("ks", progress=False)
def squares(ks):
    return [{{"k": k, "square": k * k}} for k in ks]

@memo
def slow(k):
    time.sleep(0.015)  # past the quick threshold: computed under a lease, which a SIGKILL may leave behind
    return ("slow", k)

class Model:
    def __init__(self, w):
        self.w = w

    @memo
    def predict(self, x):
        return self.w * x + 1

    @memo.cached_property
    def norm(self):
        return abs(self.w) + 0.5

@memo
async def fetched(k):
    return [k, "fetched"]

rng = random.Random(seed)
counts = {{"calls": 0, "wrong": 0, "errors": 0}}
end = time.monotonic() + seconds
last = 0.0
while time.monotonic() < end:
    k = rng.randrange(40)
    try:
        draw = rng.random()
        if draw < 0.35:
            ok = small(k) == {{"k": k, "items": list(range(k % 50))}}
        elif draw < 0.5:
            ks = rng.sample(range(400), 30)  # items of one call: most cached, some damaged, some new
            ok = squares(ks) == [{{"k": k, "square": k * k}} for k in ks]
        elif draw < 0.56:
            ok = slow(k) == ("slow", k)
        elif draw < 0.62:
            model = Model(k)
            ok = model.predict(3) == 3 * k + 1 and model.norm == k + 0.5
        elif draw < 0.65:
            ok = asyncio.run(fetched(k)) == [k, "fetched"]
        else:
            value = large(k)
            ok = value.shape == ((k % 4 + 1) * 2**18,) and bool((value == float(k)).all())
        counts["calls"] += 1
        counts["wrong"] += not ok
    except Exception as exc:
        counts["errors"] += 1
        print(repr(exc), file=sys.stderr)
    if time.monotonic() - last > 0.2:
        with open(report + ".tmp", "w") as f:
            json.dump(counts, f)
        os.replace(report + ".tmp", report)
        last = time.monotonic()
with open(report + ".tmp", "w") as f:
    json.dump(counts, f)
os.replace(report + ".tmp", report)
"""


def _damage_page(cache: Path, rng: random.Random, faults: dict[str, int]) -> None:
    db = cache / "cache.db"
    try:
        with open(db, "r+b") as f:
            pages = os.fstat(f.fileno()).st_size // 4096
            if pages < 1:
                return
            page = 0 if rng.random() < 0.15 else rng.randrange(pages)
            f.seek(page * 4096)
            f.write(bytes(rng.randrange(256) for _ in range(4096)))
            faults["damaged_index_pages"] += 1
    except OSError:
        pass


def _swap_rows(cache: Path, rng: random.Random, faults: dict[str, int]) -> None:
    """Point one entry's row at another entry's record or payload file, as a damaged page might."""
    try:
        with sqlite3.connect(str(cache / "cache.db"), timeout=5) as db:
            rows = db.execute("SELECT rowid, filename, value FROM Cache WHERE mode = 16 "
                              "ORDER BY random() LIMIT 2").fetchall()
            if len(rows) == 2:
                (a, _, _), (_, file_b, value_b) = rows
                column, value = ("filename", file_b) if file_b and rng.random() < 0.5 else ("value", value_b)
                db.execute(f"UPDATE Cache SET {column} = ? WHERE rowid = ?", (value, a))
                faults["swapped_rows"] += 1
    except sqlite3.Error:
        pass


def _flip_row(cache: Path, rng: random.Random, faults: dict[str, int]) -> None:
    try:
        with sqlite3.connect(str(cache / "cache.db"), timeout=5) as db:
            row = db.execute("SELECT rowid, value FROM Cache WHERE mode = 16 "
                             "ORDER BY random() LIMIT 1").fetchone()
            if row and row[1]:
                blob = bytearray(row[1])
                blob[rng.randrange(len(blob))] ^= 0x55
                db.execute("UPDATE Cache SET value = ? WHERE rowid = ?", (bytes(blob), row[0]))
                faults["flipped_bytes"] += 1
    except sqlite3.Error:
        pass


def _damage_file(cache: Path, rng: random.Random, faults: dict[str, int], truncate: bool,
                 replace: bool = False) -> None:
    """Flip a byte in, or truncate, a payload file: in place, or (``replace``) as a new file put over it."""
    files = list(cache.rglob("*.val"))
    if not files:
        return
    target = rng.choice(files)
    try:
        data = bytearray(target.read_bytes()) if replace else None
        with open(target, "r+b") if data is None else open(f"{target}.swap", "wb") as f:
            if data is not None:
                f.write(data)
            size = os.fstat(f.fileno()).st_size
            if truncate:
                f.truncate(size // 2)
                faults["truncations"] += 1
            else:
                f.seek(rng.randrange(max(size, 1)))
                f.write(bytes([rng.randrange(256)]))
                faults["flipped_bytes"] += 1
        if data is not None:
            os.replace(f"{target}.swap", target)
    except OSError:
        pass


def soak(mode: str, seconds: float, workers: int, rng: random.Random) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="nm_soak_"))
    cache = work / "cache"
    script = work / "worker.py"
    script.write_text(WORKER.format(root=str(ROOT)))
    env = {**os.environ, "NOTEBOOK_MEMO_DIR": str(cache), "NOTEBOOK_MEMO_LEASE": "2"}
    faults = {"kills": 0, "flipped_bytes": 0, "truncations": 0, "directory_deletions": 0,
              "damaged_index_pages": 0, "swapped_rows": 0}
    reports: list[Path] = []
    procs: list[subprocess.Popen[bytes]] = []
    errors_log = work / "errors.txt"

    def spawn(remaining: float) -> None:
        report = work / f"report_{len(reports)}.json"
        reports.append(report)
        with open(errors_log, "ab") as err:
            procs.append(subprocess.Popen([sys.executable, str(script), str(report), str(remaining),
                                           str(rng.randrange(10**6)), mode], env=env, stderr=err))

    choices = ["kill", "flip", "truncate", "delete", "flip"]
    if mode == "index":
        choices = ["kill", "page", "page", "swap", "swap", "row", "flip"]
    end = time.monotonic() + seconds
    for _ in range(workers):
        spawn(seconds)
    while time.monotonic() < end:
        time.sleep(rng.uniform(0.2, 1.0))
        fault = rng.choice(choices)
        if fault == "kill":
            alive = [p for p in procs if p.poll() is None]
            if alive:
                rng.choice(alive).send_signal(signal.SIGKILL)
                faults["kills"] += 1
                spawn(max(end - time.monotonic(), 0.5))
        elif fault == "page":
            _damage_page(cache, rng, faults)
        elif fault == "swap":
            _swap_rows(cache, rng, faults)
        elif fault == "row":
            _flip_row(cache, rng, faults)
        elif fault in ("flip", "truncate"):
            if rng.random() < 0.7:
                # A file mapped by a worker shows bytes changed in place at once, also in an array
                # served (verified) before the change, as np.load(mmap_mode="r") would; the README says
                # so. In mmap mode, damaged files therefore arrive as new files put over the old ones.
                _damage_file(cache, rng, faults, fault == "truncate", replace=mode == "mmap")
            else:
                _flip_row(cache, rng, faults)
        elif fault == "delete" and rng.random() < 0.3:
            shutil.rmtree(cache, ignore_errors=True)
            faults["directory_deletions"] += 1
    for p in procs:
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
    totals = {"calls": 0, "wrong": 0, "errors": 0}
    for report in reports:
        if report.exists():
            for key, value in json.loads(report.read_text()).items():
                totals[key] += value
    result: dict[str, object] = {
        "mode": mode, "calls": totals["calls"], "faults_injected": {k: v for k, v in faults.items() if v},
        "wrong_values_served": totals["wrong"], "errors_surfaced_to_callers": totals["errors"],
        "worker_processes": len(reports)}
    if totals["errors"]:
        print(errors_log.read_text()[-2000:], file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30, help="per mode")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--modes", nargs="*", default=["plain", "mmap", "index"], choices=["plain", "mmap", "index"])
    args = parser.parse_args()
    rng = random.Random(args.seed)
    results = [soak(mode, args.seconds, args.workers, rng) for mode in args.modes]
    print(json.dumps(results, indent=2))
    print(f"{'mode':<6} {'calls':>7} {'faults':>7} {'wrong':>6} {'errors':>7}")
    for r in results:
        faults = sum(r["faults_injected"].values())  # type: ignore[attr-defined]
        print(f"{r['mode']:<6} {r['calls']:>7} {faults:>7} {r['wrong_values_served']:>6} "
              f"{r['errors_surfaced_to_callers']:>7}")
    return 0 if all(r["wrong_values_served"] == 0 and r["errors_surfaced_to_callers"] == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
