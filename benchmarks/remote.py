"""Benchmarks of the remote (second) cache tier: each measure beside a raw request of the same client.

    .venv/bin/python benchmarks/remote.py           # full sizes (a 256 MiB array), a few minutes at most
    .venv/bin/python benchmarks/remote.py --quick   # small sizes (an 8 MiB array), for a smoke run
    .venv/bin/python benchmarks/remote.py --readme  # and rewrite README.md's table between the remote-table markers

"S3" here is moto's threaded S3-protocol server, started in this process on 127.0.0.1: it stands in for S3
(and MinIO, R2). No request leaves the machine, and the server's own Python shares the process (and its
GIL) with the client, so absolute times are the stand-in's, not a cloud's; the ratios compare
notebook_memo with the same client (obstore, through the tier's own ``CloudObjects``) making the raw
requests against the same server, in the same process, the contenders taking turns.

What is measured:

1. Remote hits of small values (dicts of four ints, kept inline in their manifests): a "teammate" computes
   and publishes 122 of them; then one kernel's local cache directory, which holds none, calls the
   memoized function on a key it never held on each call (a loop over the teammate's results), so the
   local tier misses, the entry is fetched from the remote, verified, loaded, and its local copy queued.
   Floor: one raw GET of a manifest. The requests one remote hit makes are counted (every method of the
   tier's ``objects`` wrapped). Reported beside it: a kernel's first remote hit (a directory whose index
   was opened but never read: its connection's first statements and its background thread's start fall
   in the call), and opening a new local directory, timed on its own.
2. A float64 array of 256 MiB (``--quick``: 8 MiB). Remote store: ``RemoteTier.publish`` of its payload
   (from ``notebook_memo._serialize.dumps``), which is what a miss adds to the local-only miss: checksum,
   blob (create-only, after a HEAD), manifest; floor: one raw ``objects.put`` of the same bytes (obstore's
   default, a multipart upload above its 5 MiB chunk), a raw create-only single PUT shown beside it.
   Each round stores a new value (one element changed), and the objects are deleted between turns.
   Remote load: a hit on a local directory that does not hold the entry (fetch manifest and blob, verify
   them, give the caller a writable array of its own); floor: one raw GET of the blob. The local copy is
   written on a thread of its own after the caller has its value, and every turn, the floor's included,
   starts once the copy of the turn before is written.
3. A local hit of a small value with the remote configured vs with none configured (the same function and
   directory, ``configure(remote=...)`` switched outside the timing); the requests it makes are counted.
   The background threads of the directories used for the remote hits are stopped before it.

No figure here is an assertion.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._report import human, quick_or_readme, ratio_row
from benchmarks._timing import round_robin, settle_ours
from benchmarks.readme_table import replaced
from notebook_memo import _config, configure, memo
from notebook_memo._serialize import dumps
from notebook_memo.stores import remote as _remote
from notebook_memo.stores.local import get_store

ROWS: list[tuple[str, str, float, float, str, bool]] = []
COUNTS: list[tuple[str, str, str, bool]] = []  # measure, requests, goal, met
NOTES: list[str] = []
MiB = 1 << 20
README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- remote-table:start -->", "<!-- remote-table:end -->"
STAND_IN = "moto's S3-protocol server on 127.0.0.1, in this process (a stand-in for S3)"
METHODS = ("get", "get_tagged", "exists", "create", "put", "replace", "delete", "list")


class Held:
    """An argument keyed by a name, so a hit is timed without hashing the value it carries."""

    def __init__(self, value: Any, name: str) -> None:
        self.value, self.name = value, name

    def __memo_key__(self) -> str:
        return self.name


class Runs:
    """Counts a body's runs without being part of its key (a closure's list would be: its value changes)."""

    def __init__(self) -> None:
        self.n = 0

    def __memo_key__(self) -> str:
        return "runs"


class Requests:
    """Count the requests a remote tier's object store makes (each method of ``tier.objects`` wrapped)."""

    def __init__(self, tier: _remote.RemoteTier) -> None:
        self.counts = dict.fromkeys(METHODS, 0)
        objects = tier.objects
        for name in METHODS:
            setattr(objects, name, self._counted(name, getattr(objects, name)))

    def _counted(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.counts[name] += 1
            return method(*args, **kwargs)

        return counted

    def reset(self) -> None:
        self.counts = dict.fromkeys(METHODS, 0)

    def total(self) -> int:
        return sum(self.counts.values())

    def described(self) -> str:
        made = ", ".join(f"{name} {n}" for name, n in self.counts.items() if n)
        return f"{self.total()}" + (f" ({made})" if made else "")


def row(measure: str, floor_label: str, floor: float, ours: float, goal: str, most: float) -> None:
    """Print one measure's ratio line and keep it for the summary (``most``: the goal as a ratio)."""
    ratio_row(ROWS, measure, floor_label, floor, ours, goal, most)


def count_row(measure: str, requests: Requests, goal: str, most: int) -> None:
    met = requests.total() <= most
    COUNTS.append((measure, requests.described(), goal, met))
    print(f"  requests: {measure}: {requests.described()} (goal {goal}: {'met' if met else 'not met'})")


def note(line: str) -> None:
    NOTES.append(line)
    print(f"  {line}")


@contextlib.contextmanager
def s3_stand_in() -> Iterator[str]:
    """Start moto's threaded S3 server on 127.0.0.1 with the standard AWS variables pointing at it; yield a bucket."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        os.environ.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test",
                           "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
                           "AWS_REGION": "us-east-1"})
        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
        yield bucket
    finally:
        server.stop()


class Machines:
    """Local cache directories, each a 'machine' of its own, created and opened before they are used."""

    def __init__(self, root: Path, name: str) -> None:
        self.root, self.name, self.made = root, name, 0

    def new(self, open_index: bool = True) -> str:
        self.made += 1
        directory = str(self.root / f"{self.name}-{self.made}")
        if open_index:
            _ = get_store(_config.resolve_dir(directory), _config.resolve_size_limit()).reader
        return directory

    def retire(self) -> None:
        """Stop the background thread each directory's store started: not left to disturb later timings."""
        for made in range(1, self.made + 1):
            directory = _config.resolve_dir(str(self.root / f"{self.name}-{made}"))
            if os.path.isdir(directory):
                get_store(directory, _config.resolve_size_limit()).stop_background()

    def ready(self, count: int) -> Iterator[str]:
        """Yield ``count`` directories whose index was opened before the first is yielded."""
        return iter([self.new() for _ in range(count)])


def manifests(tier: _remote.RemoteTier) -> set[str]:
    return {name for name, _, _ in tier.objects.list("m/")}


def small_remote_hit(tier: _remote.RemoteTier, url: str, requests: Requests, root: Path, quick: bool) -> None:
    rounds = 8 if quick else 60
    ran = Runs()

    @memo
    def small(x: int, runs: Runs) -> dict[str, int]:
        runs.n += 1
        return {"a": x, "b": x + 1, "c": x + 2, "d": x + 3}

    count = 2 * rounds + 2
    configure(remote=url, cache_dir=str(root / "writer"))
    before = manifests(tier)
    for x in range(count):
        small(x, ran)  # computed by a teammate and published
    settle_ours()
    published = sorted(manifests(tier) - before)
    assert len(published) == count, "each miss must have published one entry"
    manifest = published[0]
    size = len(tier.objects.get(manifest) or b"")
    print(f"\nremote hits of small values (dicts of 4 ints, manifests of {size} B): one kernel's cache directory, "
          "a key it never held on each call (a loop over results a teammate computed)")

    keys = iter(range(count))
    machines = Machines(root, "small")
    configure(cache_dir=machines.new())
    small(next(keys), ran)  # the kernel's first remote hit (measured on its own below)
    best = round_robin({"GET": lambda: tier.objects.get(manifest), "ours": lambda: small(next(keys), ran)},
                       number=1, rounds=rounds)
    row("remote hit, small value", "one raw GET of its manifest", best["GET"], best["ours"], "<= 1.5x", 1.5)
    requests.reset()
    x = next(keys)
    assert small(x, ran) == {"a": x, "b": x + 1, "c": x + 2, "d": x + 3}
    count_row("remote hit, small value", requests, "<= 3", 3)
    assert ran.n == count, "the benchmark's calls must be remote hits"

    # A kernel's first remote hit: a directory whose index was opened, but whose connection has run no
    # statement yet and whose background thread the call starts.
    ready = machines.ready(rounds // 3 + 1)
    first = round_robin({"GET": lambda: tier.objects.get(manifest), "first": lambda: small(0, ran)},
                        number=1, rounds=rounds // 3, setup={"first": lambda: configure(cache_dir=next(ready))})
    note(f"a kernel's first remote hit (a directory opened, nothing read from it yet): {human(first['first'])}; "
         f"{first['first'] / first['GET']:.2f}x one raw GET of its manifest ({human(first['GET'])})")
    assert ran.n == count

    # What a truly new machine adds: a directory never opened, its index created by the call.
    times = round_robin({"open": lambda: get_store(_config.resolve_dir(machines.new(open_index=False)),
                                                   _config.resolve_size_limit()).reader,
                         "hit": lambda: small(1, ran)}, number=1, rounds=max(rounds // 3, 3),
                        setup={"hit": lambda: configure(cache_dir=machines.new(open_index=False))})
    opened, cold = times["open"], times["hit"]
    note(f"local directory open (a new directory's SQLite index, not in the hits above): {human(opened)}; "
         f"a remote hit on a directory never opened, open included: {human(cold)}")
    assert ran.n == count
    machines.retire()

    # 3. The same function and directory, now a local hit: with the remote configured, and with none.
    configure(cache_dir=str(root / "writer"))
    number = 100 if quick else 300
    print(f"\nlocal hit of the same small value ({number} calls a turn): remote configured vs none")
    best = round_robin({"none": lambda: small(1, ran), "remote": lambda: small(1, ran)}, number=number,
                       rounds=5 if quick else 30,
                       setup={"none": lambda: configure(remote=None), "remote": lambda: configure(remote=url)})
    row("local hit, small value, remote configured", "the same, no remote", best["none"], best["remote"],
        "<= 1.05x", 1.05)
    configure(remote=url)
    requests.reset()
    for _ in range(number):
        small(1, ran)
    settle_ours(flush=True)
    count_row(f"local hit, small value, remote configured ({number} calls)", requests, "0", 0)
    assert ran.n == count


def big_array(tier: _remote.RemoteTier, url: str, requests: Requests, root: Path, quick: bool) -> None:
    n = (8 if quick else 256) * MiB
    rounds = 3 if quick else 6
    array = np.random.default_rng(0).random(n // 8)
    label = f"{n >> 20} MiB float64 array"
    print(f"\nremote store and load of a {label}")

    # Store: publish (what a miss adds to the local-only miss) vs raw writes of the same bytes.
    made: dict[str, Any] = {}
    written: list[str] = []

    def fresh(tag: str) -> Callable[[], None]:
        def setup() -> None:
            for name in written:
                tier.objects.delete(name)
            written.clear()
            array[0] = time.perf_counter_ns()  # a new value: a new blob, not one stored already
            made["payload"] = dumps(array)
            made["data"] = made["payload"].to_bytes()
            made["blob"] = f"b/{made['payload'].checksum().hex()}"
            made["name"] = f"raw/{tag}-{uuid.uuid4().hex}"
            made["row"] = uuid.uuid4().hex
            os.sync()
        return setup

    def publish() -> None:
        payload, row_key = made["payload"], made["row"]
        assert tier.publish(row_key, payload, {}, time.time(), None, 1.0, None)
        written.extend([made["blob"], _remote.manifest_name(row_key)])

    def raw(write: Callable[[str, Any], Any]) -> Callable[[], None]:
        def call() -> None:
            write(made["name"], made["data"])
            written.append(made["name"])
        return call

    best = round_robin({"put": raw(tier.objects.put), "create": raw(tier.objects.create), "ours": publish},
                       number=1, rounds=rounds,
                       setup={"put": fresh("put"), "create": fresh("create"), "ours": fresh("ours")})
    row(f"remote store, {label}", "one raw objects.put", best["put"], best["ours"], "<= 1.2x", 1.2)
    note(f"raw create-only single PUT of the same bytes (objects.create): {human(best['create'])}; "
         f"store / that = {best['ours'] / best['create']:.2f}x")
    fresh("count")()
    requests.reset()
    publish()
    count_row(f"remote store, {label}", requests, "<= 3", 3)
    fresh("done")()

    # Load: a remote hit on a directory without the entry vs a raw GET of its blob.
    ran = Runs()

    @memo
    def make(held: Held, runs: Runs) -> np.ndarray:
        runs.n += 1
        return held.value  # type: ignore[no-any-return]

    held = Held(array, f"array {n}")
    configure(cache_dir=str(root / "big-writer"))
    before = manifests(tier)
    make(held, ran)
    settle_ours()
    assert len(manifests(tier) - before) == 1, "the miss must have published one entry"
    blob = f"b/{dumps(array).checksum().hex()}"
    assert tier.objects.exists(blob)
    machines = Machines(root, "big")
    used: list[str] = []

    def settled() -> None:
        for directory in used:  # the local copy a turn before made on its thread: done before any turn starts
            get_store(directory, _config.resolve_size_limit()).wait_arrivals()
        os.sync()

    def next_machine() -> None:
        settled()
        for directory in used:  # not left to fill the disk
            shutil.rmtree(directory, ignore_errors=True)
        used.clear()
        used.append(machines.new())
        configure(cache_dir=used[-1])
        os.sync()

    best = round_robin({"GET": lambda: tier.objects.get(blob), "ours": lambda: make(held, ran)}, number=1,
                       rounds=2 * rounds, setup={"GET": settled, "ours": next_machine})
    row(f"remote load, {label}", "one raw GET of its blob", best["GET"], best["ours"], "<= 1.2x", 1.2)
    next_machine()
    requests.reset()
    got = make(held, ran)
    assert got.shape == array.shape and got[0] == array[0]
    count_row(f"remote load, {label}", requests, "<= 3", 3)
    assert ran.n == 1, "the benchmark's loads must be remote hits"
    machines.retire()
    for directory in used:
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    args = quick_or_readme(__doc__)
    import moto
    import obstore

    machine = (f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, obstore {obstore.__version__}, "
               f"moto {moto.__version__}")
    print(machine)
    print(f"remote: {STAND_IN}")
    root = Path(tempfile.mkdtemp(prefix="nbm-remote-bench-"))
    start = time.perf_counter()
    try:
        configure(verbose=False)
        with s3_stand_in() as bucket:
            url = f"s3://{bucket}/cache"
            configure(remote=url)
            tier = _remote.remote_tier(url, read_only=False)
            assert tier is not None
            requests = Requests(tier)
            small_remote_hit(tier, url, requests, root, args.quick)
            big_array(tier, url, requests, root, args.quick)
            settle_ours(flush=True)
    finally:
        configure(remote=None, cache_dir=None)
        shutil.rmtree(root, ignore_errors=True)
    width = max(len(r[0]) for r in ROWS)
    print(f"\nsummary (remote tier), {time.perf_counter() - start:.0f} s: ratio = notebook_memo / floor, same run; "
          f"remote: {STAND_IN}")
    print(f"  {'measure':<{width}}  {'floor':<28} {'floor':>10} {'ours':>10} {'ratio':>7}  {'goal':<9} met")
    for measure, floor_label, floor, ours, goal, met in ROWS:
        print(f"  {measure:<{width}}  {floor_label:<28} {human(floor):>10} {human(ours):>10} {ours / floor:>6.2f}x  "
              f"{goal:<9} {'yes' if met else 'no'}")
    for measure, made, goal, met in COUNTS:
        print(f"  requests: {measure}: {made} (goal {goal}: {'met' if met else 'not met'})")
    for line in NOTES:
        print(f"  {line}")
    if args.readme:
        text = README.read_text()
        if text.count(START) != 1 or text.count(END) != 1:
            print(f"README.md has no {START} ... {END} pair: its table was not rewritten (add the markers "
                  "where the table belongs, then run --readme again)")
            return
        lines = ["| measure | floor | notebook_memo | x floor | goal |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {measure} | {floor_label}: {human(floor)} | {human(ours)} | {ours / floor:.2f}x | {goal} "
                  f"({'met' if met else 'not yet'}) |" for measure, floor_label, floor, ours, goal, met in ROWS]
        lines += [f"| requests: {measure} | | {made} | | {goal} ({'met' if met else 'not yet'}) |"
                  for measure, made, goal, met in COUNTS]
        lines += ["", f"Measured by `benchmarks/remote.py` ({machine}) against {STAND_IN}, "
                      f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; each floor a raw request of the same "
                      "client in the same process, the contenders taking turns."]
        README.write_text(replaced(text, "\n".join(lines), START, END))
        print(f"rewrote the table between the remote-table markers in {README}")


if __name__ == "__main__":
    main()
