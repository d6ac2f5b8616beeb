"""Reliability: many processes, killed writers, corruption, tampering, size limits, full disks."""

from __future__ import annotations

import gc
import json
import os
import random
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import notebook_memo
from notebook_memo import StorageWarning, configure, memo
from notebook_memo._serialize import Payload
from tests.conftest import ROOT, Counter, settled, worker_env, worker_script

WORKER = """

@memo(ignore=["seconds"])
def work(k, seconds=0.3):
    log.write(f"start {k} {os.getpid()}\\n")
    time.sleep(seconds)
    log.write(f"done {k} {os.getpid()}\\n")
    return {"key": k, "square": k * k}

@memo
def big(k, megabytes=16):
    return np.full(megabytes * 2**20 // 8, float(k))

mode = sys.argv[1]
if mode == "keys":
    keys = json.loads(sys.argv[3])
    print(json.dumps([work(k) for k in keys]))
elif mode == "hang":
    work(99, seconds=120)
elif mode == "take-over":
    print(json.dumps(work(99, seconds=0)))
elif mode == "big":
    for k in range(int(sys.argv[3])):
        big(k)
elif mode == "check":
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wrong = sum(not bool((big(k) == float(k)).all()) or big(k).shape != (2 * 2**20,)
                    for k in range(int(sys.argv[3])))
    print(json.dumps({"wrong": wrong, "hits": big.cache_info().hits,
                      "storage_warnings": [str(w.message) for w in caught if "Storage" in w.category.__name__]}))
"""


def _worker(tmp_path: Path) -> Path:
    return worker_script(tmp_path / "worker.py", WORKER)


_env = worker_env


def test_processes_compute_each_key_once(tmp_path: Path, cache_dir: Path) -> None:
    script, log = _worker(tmp_path), tmp_path / "log.txt"
    rng = random.Random(7)
    orders = [rng.sample(range(6), 6) for _ in range(8)]
    procs = [subprocess.Popen([sys.executable, str(script), "keys", str(log), json.dumps(order)],
                              stdout=subprocess.PIPE, text=True, env=_env(cache_dir)) for order in orders]
    outputs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    done = [line.split()[1] for line in log.read_text().splitlines() if line.startswith("done")]
    assert sorted(done) == [str(k) for k in range(6)]  # each body ran exactly once
    for order, results in zip(orders, outputs):
        assert results == [{"key": k, "square": k * k} for k in order]


def test_threads_compute_once(counter: Counter) -> None:
    @memo
    def slow(k: int) -> int:
        counter()
        time.sleep(0.2)
        return k * 2

    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(slow(5))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [10] * 8 and counter.n == 1


class _Gate(threading.Event):
    def __memo_key__(self) -> str:
        return "gate"


def test_different_keys_do_not_wait_for_each_other(counter: Counter) -> None:
    gate = _Gate()

    @memo
    def blocked(k: int) -> int:
        if k == 1:
            gate.wait(30)
        return k

    t = threading.Thread(target=blocked, args=(1,))
    t.start()
    assert blocked(2) == 2  # returns while key 1 is still computing
    gate.set()
    t.join()


def test_a_waiter_takes_over_when_the_computing_process_dies(tmp_path: Path, cache_dir: Path) -> None:
    script, log = _worker(tmp_path), tmp_path / "log.txt"
    env = _env(cache_dir, NOTEBOOK_MEMO_LEASE="1")
    hanging = subprocess.Popen([sys.executable, str(script), "hang", str(log)], env=env)
    deadline = time.monotonic() + 60
    while not (log.exists() and "start 99" in log.read_text()):
        assert time.monotonic() < deadline, "the first process never started computing"
        time.sleep(0.05)
    hanging.send_signal(signal.SIGKILL)
    hanging.wait()
    out = subprocess.run([sys.executable, str(script), "take-over", str(log)], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"key": 99, "square": 9801}
    assert log.read_text().count("done 99") == 1


def test_killed_writers_never_leave_an_entry_that_is_served_half_written(tmp_path: Path, cache_dir: Path) -> None:
    script, log = _worker(tmp_path), tmp_path / "log.txt"
    rng = random.Random(11)
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, str(script), "big", str(log), "6"], env=_env(cache_dir))
        time.sleep(rng.uniform(0.3, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    checked = subprocess.run([sys.executable, str(script), "check", str(log), "6"], env=_env(cache_dir),
                             capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stderr
    report = json.loads(checked.stdout)
    assert report["wrong"] == 0 and report["storage_warnings"] == []  # nothing damaged was ever served
    assert report["hits"] >= 6  # each value was read back from the cache at least once
    from notebook_memo.stores.local import Store

    store = Store(str(cache_dir), 2**40)
    store.repair(started=time.time() + 120)  # as a prune run two minutes from now: the leftovers are old
    files = {str(p) for p in cache_dir.rglob("*.val")}
    referenced = {r.path for r in store.records() if r.path}
    assert files == referenced  # leftovers of killed writes were reclaimed
    store.close()


# -- corruption ---------------------------------------------------------------------------------


def _db(cache_dir: Path) -> sqlite3.Connection:
    settled()  # the results computed so far are in the index, as other processes soon see them
    return sqlite3.connect(str(cache_dir / "cache.db"))


def test_a_flipped_byte_in_an_inline_value_is_detected(counter: Counter, cache_dir: Path) -> None:
    @memo
    def small() -> dict[str, int]:
        counter()
        return {"answer": 42}

    small()
    with _db(cache_dir) as db:
        key, blob = db.execute("SELECT key, value FROM Cache WHERE key NOT LIKE 'lock:%'").fetchone()
        damaged = bytearray(blob)
        damaged[-3] ^= 0xFF
        db.execute("UPDATE Cache SET value = ? WHERE key = ?", (bytes(damaged), key))
    with pytest.warns(StorageWarning, match="damaged"):
        assert small() == {"answer": 42}
    assert counter.n == 2
    assert small() == {"answer": 42} and counter.n == 2


def test_a_truncated_payload_file_is_detected(counter: Counter) -> None:
    @memo
    def array() -> np.ndarray:
        counter()
        return np.arange(200_000)

    array()
    [record] = array.entries()
    assert record.path is not None
    with open(record.path, "r+b") as handle:
        handle.truncate(1000)
    with pytest.warns(StorageWarning):
        assert np.array_equal(array(), np.arange(200_000))
    assert counter.n == 2


def test_a_flipped_byte_in_a_large_payload_is_detected(counter: Counter) -> None:
    # Large payloads are checksummed on a second thread while they are written, and chunk by chunk as they are read.
    @memo
    def large() -> np.ndarray:
        counter()
        return np.arange(3 * 2**20, dtype=np.float64)  # 24 MB

    assert large()[-1] == 3 * 2**20 - 1
    assert large()[-1] == 3 * 2**20 - 1 and counter.n == 1  # the pipelined checksum verifies
    [record] = large.entries()
    assert record.path is not None
    with open(record.path, "r+b") as handle:
        handle.seek(20 * 2**20)
        handle.write(b"\x7f")
    time.sleep(0.3)  # past the window in which an index record is reused
    with pytest.warns(StorageWarning, match="damaged"):
        value = large()
    assert counter.n == 2 and np.array_equal(value, np.arange(3 * 2**20, dtype=np.float64))


# -- tampering ----------------------------------------------------------------------------------


class _Trap:
    """Unpickling this creates a file: stands in for a malicious payload."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def _plant(fn: Any, args: tuple[Any, ...], value: Any, secret: bytes | None) -> None:
    """Write ``value`` where fn(*args) would look, as someone with write access but another secret could.

    The attacker knows the row's name and the victim's key id (both are public in the index) and
    writes a well-formed record signed with ``secret`` (or unsigned) straight into SQLite.
    """
    import pickle

    from notebook_memo._serialize import Signer, encode_header, signer_for
    from notebook_memo.stores.local import MODE_RECORD, Store

    call = fn.make_call(args, {})
    store = fn._store()
    store.writer  # noqa: B018 (the victim's index exists)
    victim = Store.signer()
    row = Store.row_key(call.key, victim)
    payload = Payload(pickle.dumps(value, protocol=5), [])
    meta = fn._meta(call, 0.0, time.time(), payload.nbytes)
    forger = None
    if secret is not None:
        forger = Signer(signer_for(secret).key, victim.keyid if victim else bytes(8))
    record = encode_header(row, None, payload, meta, time.time(), None, 0.0, True, forger)
    settled()
    with sqlite3.connect(os.path.join(store.directory, "cache.db"), isolation_level=None) as db:
        db.execute("DELETE FROM Cache WHERE key = ?", (row,))
        db.execute("INSERT INTO Cache (key, raw, store_time, expire_time, access_time, access_count, tag, size, "
                   "mode, filename, value) VALUES (?, 1, 0, NULL, 0, 0, NULL, 0, ?, NULL, ?)",
                   (row, MODE_RECORD, record))
    store.forget()


def test_signed_values_round_trip(counter: Counter) -> None:
    configure(secret="team secret")

    @memo
    def f(x: int) -> int:
        counter()
        return x + 1

    assert f(1) == f(1) == 2 and counter.n == 1


def test_an_unsigned_or_forged_value_is_never_unpickled(tmp_path: Path, counter: Counter) -> None:
    trap = tmp_path / "pwned"

    @memo
    def f(x: int) -> int:
        counter()
        return x + 1

    configure(secret="team secret")
    _plant(f, (1,), _Trap(str(trap)), secret=None)  # written without the secret
    with pytest.warns(StorageWarning, match="not signed"):
        assert f(1) == 2
    assert not trap.exists()
    _plant(f, (2,), _Trap(str(trap)), secret=b"another secret")  # signed with the wrong secret
    with pytest.warns(StorageWarning, match="signature mismatch"):
        assert f(2) == 3
    assert not trap.exists() and counter.n == 2


def test_modified_signed_payload_with_a_recomputed_checksum_is_rejected(counter: Counter, cache_dir: Path) -> None:
    import xxhash

    from notebook_memo._serialize import _HEADER

    configure(secret="s3cret")

    @memo
    def f() -> str:
        counter()
        return "genuine"

    f()
    with _db(cache_dir) as db:
        key, blob = db.execute("SELECT key, value FROM Cache WHERE key NOT LIKE 'lock:%'").fetchone()
        forged = bytearray(blob.replace(b"genuine", b"forgery"))
        fields = list(_HEADER.unpack_from(forged))
        pickle_len, meta_len, names = fields[6], fields[8], fields[9] + fields[10]
        payload = bytes(forged[_HEADER.size + names + meta_len:])[:pickle_len]
        fields[12] = xxhash.xxh3_128_digest(payload)  # an attacker can recompute a plain checksum
        forged[: _HEADER.size] = _HEADER.pack(*fields)
        db.execute("UPDATE Cache SET value = ? WHERE key = ?", (bytes(forged), key))
    with pytest.warns(StorageWarning, match="signature mismatch"):
        assert f() == "genuine"
    assert counter.n == 2


def test_cache_directory_is_readable_by_its_owner_only(cache_dir: Path) -> None:
    @memo
    def f() -> int:
        return 1

    f()
    assert stat.S_IMODE(cache_dir.stat().st_mode) == 0o700


# -- limits and a full disk ----------------------------------------------------------------------


def test_size_limit_evicts_least_recently_used_entries(counter: Counter) -> None:
    configure(size_limit=1_400_000)

    @memo
    def blob(k: int) -> bytes:
        counter()
        return bytes([k]) * 300_000

    for k in range(3):
        blob(k)
    blob(0)  # a hit: entry 0 is now the most recently used
    for k in range(3, 6):
        blob(k)
    assert blob.is_cached(0)
    assert not blob.is_cached(1)
    before = counter.n
    assert blob(1) == bytes([1]) * 300_000  # an evicted entry is simply a miss
    assert counter.n == before + 1


FULL_DISK = """
import json, resource, signal, sys, warnings
sys.path.insert(0, {root!r})
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
import numpy as np
from notebook_memo import memo
warnings.simplefilter("always")
class _Runs:
    n = 0
    def __memo_key__(self): return "runs"
runs = _Runs()
@memo
def big(k):
    runs.n += 1
    return np.full(2**20, float(k))  # 8 MB
out = {{}}
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
big(0)
resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, hard))  # files cannot grow past 1 MB: a full disk
with warnings.catch_warnings(record=True) as caught:
    out["values_ok"] = bool((big(1) == 1.0).all() and (big(2) == 2.0).all())
    out["warnings"] = [str(w.message) for w in caught if "StorageWarning" in w.category.__name__]
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space freed
big(3)
out["resumed"] = big.is_cached(3)
out["runs"] = runs.n
print(json.dumps(out))
"""


def test_a_full_disk_returns_results_with_one_warning_and_caching_resumes(tmp_path: Path,
                                                                          cache_dir: Path) -> None:
    script = tmp_path / "full.py"
    script.write_text(FULL_DISK.format(root=str(ROOT)))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=_env(cache_dir),
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["values_ok"] is True
    assert len(out["warnings"]) == 1 and "not being stored" in out["warnings"][0]
    assert out["resumed"] is True
    assert out["runs"] == 4


READ_ONLY = """
import json, os, sys, warnings
sys.path.insert(0, {root!r})
from notebook_memo import memo
import notebook_memo.stores.local, sqlite3, diskcache, linecache
if os.geteuid() == 0:
    os.setgid(65534); os.setuid(65534)  # root ignores permissions: become nobody (after imports)
warnings.simplefilter("always")
@memo
def f(x):
    return x * 3
with warnings.catch_warnings(record=True) as caught:
    values = [f(2), f(2)]
print(json.dumps({{"values": values, "warnings": len([w for w in caught
                                              if w.category.__name__ == "StorageWarning"])}}))
"""


def test_a_directory_we_cannot_write_still_returns_results(tmp_path: Path, cache_dir: Path) -> None:
    @memo
    def prime() -> int:
        return 1

    prime()  # the cache exists, owned by this user, 0700
    if os.geteuid() != 0:
        cache_dir.chmod(0o500)
    script = tmp_path / "ro.py"
    script.write_text(READ_ONLY.format(root=str(ROOT)))
    script.chmod(0o755)
    tmp_path.chmod(0o755)
    try:
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                              env=_env(cache_dir), timeout=120, cwd="/")
    finally:
        cache_dir.chmod(0o700)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"values": [6, 6], "warnings": 1}


def test_the_docs_explain_the_pickle_risk() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "Pickles run code when loaded" in readme and "NOTEBOOK_MEMO_SECRET" in readme
    assert "secret" in (notebook_memo.configure.__doc__ or "")




def _files_open_under(folder: Path) -> list[str]:
    """The files this process holds open below ``folder`` (Linux: read from /proc)."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder) + os.sep):
            held.append(target)
    return held


def _flush_threads() -> int:
    return sum(t.name == "notebook_memo-flush" and t.is_alive() for t in threading.enumerate())


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="reads the open files from /proc (Linux)")
def test_closed_stores_hold_no_files_and_no_threads(tmp_path: Path) -> None:
    """A process that used many cache directories (a test suite, a long kernel) can let them go: closing a
    directory's store ends its background thread and closes its handles on the index at once; those of
    threads that ended go with the next garbage collection, as every SQLite connection a thread leaves."""
    from concurrent.futures import ThreadPoolExecutor

    from notebook_memo.stores.local import close_stores, open_stores

    @memo
    def f(x: int) -> int:
        return x + 1

    threads_before = _flush_threads()
    quiet, busy = [tmp_path / f"quiet{i}" for i in range(3)], [tmp_path / f"busy{i}" for i in range(2)]
    for folder in quiet + busy:
        configure(cache_dir=str(folder))
        assert [f(1), f(1)] == [2, 2]
        f.invalidate(1)  # a write through this thread's own connection
        assert f(1) == 2
        if folder in busy:
            with ThreadPoolExecutor(2) as pool:  # other threads' connections
                assert list(pool.map(f, [1, 2, 3])) == [2, 3, 4]
    settled()
    assert {Path(held).parent for held in _files_open_under(tmp_path)} == set(quiet + busy)
    assert _flush_threads() == threads_before + len(quiet + busy)

    close_stores([str(folder) for folder in quiet])
    assert {Path(held).parent for held in _files_open_under(tmp_path)} == set(busy)
    assert _flush_threads() == threads_before + len(busy)
    close_stores([str(folder) for folder in busy])
    gc.collect()
    assert _files_open_under(tmp_path) == []
    assert _flush_threads() == threads_before
    assert not {str(folder) for folder in quiet + busy} & {store.directory for store in open_stores()}

    hits = f.hits
    assert [f(5), f(5)] == [6, 6] and f.hits == hits + 1  # the directory's store opens again when used
    store = f._store()
    assert not store.closed and store in open_stores()  # a fresh one, registered: flushed at exit, reset on fork
    close_stores([store.directory])
    gc.collect()
    assert _files_open_under(tmp_path) == []


def test_a_store_closed_while_other_threads_use_it_serves_them_all(tmp_path: Path, counter: Counter) -> None:
    """Closing is safe beside calls in flight on the same store: none fails, none computes again."""

    @memo
    def f(x: int) -> int:
        counter()
        return x * 2

    configure(cache_dir=str(tmp_path / "shared"))
    assert [f(x) for x in range(20)] == [2 * x for x in range(20)]
    settled()
    store = f._store()
    done = threading.Event()
    failures: list[BaseException] = []
    served = [0]

    def calls() -> None:
        try:
            while not done.is_set():
                assert [f(x) for x in range(20)] == [2 * x for x in range(20)]
                served[0] += 1
        except BaseException as exc:
            failures.append(exc)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        callers = [threading.Thread(target=calls) for _ in range(2)]
        try:
            for caller in callers:
                caller.start()
            for _ in range(300):
                store.close()  # the same store each time: the callers go on using it (get_store still returns it)
        finally:  # callers left running would go on calling into the next tests
            done.set()
            for caller in callers:
                caller.join()
    assert failures == []
    assert [str(w.message) for w in caught] == []
    assert counter.n == 20 and served[0] >= 1


def test_a_store_closed_while_its_background_thread_is_being_started_does_not_fail(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A close on one thread while another starts the store's background thread: the close used to find the
    thread already named but not yet started, and joining it raised RuntimeError in the closing caller."""

    @memo
    def f(x: int) -> int:
        return x * 2

    configure(cache_dir=str(tmp_path / "shared"))
    assert f(1) == 2
    settled()
    store = f._store()
    store.close()
    for _ in range(600):  # its background thread ends once it has nothing left to do (within a second or so)
        if store._flusher is None:
            break
        time.sleep(0.05)
    assert store._flusher is None
    failures: list[BaseException] = []
    start = threading.Thread.start

    def start_with_a_close_beside(thread: threading.Thread) -> None:
        if thread.name == "notebook_memo-flush":
            def closing() -> None:
                try:
                    store.close()
                except BaseException as exc:
                    failures.append(exc)
            closer = threading.Thread(target=closing)
            start(closer)
            closer.join()
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", start_with_a_close_beside)
    assert f(1) == 2  # a hit: its access time, left for the background thread to write, starts that thread
    monkeypatch.undo()
    settled()
    assert failures == []
    assert f(1) == 2 and f(2) == 4


def test_a_hung_run_of_this_suite_ends_with_every_stack_even_after_a_failure(tmp_path: Path) -> None:
    """The suite's own watchdog (tests/conftest.py): pytest's faulthandler plugin cancels the same timer at
    each failure, which is when a run is likeliest to hang next; it must print the stacks and end the run."""
    (tmp_path / "conftest.py").write_text(
        "from tests.conftest import pytest_configure, pytest_exception_interact, pytest_unconfigure\n")
    (tmp_path / "test_hang.py").write_text(
        "import time\n\ndef test_fails():\n    assert False\n\ndef test_hangs():\n    time.sleep(30)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NOTEBOOK_MEMO_TEST_HUNG_AFTER_S": "3"}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout", "0",
                          "-o", "addopts=", str(tmp_path)], cwd=str(tmp_path), env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode != 0
    assert "most recent call first" in run.stderr
    assert "in test_hangs" in run.stderr
    assert "1 failed" not in run.stdout  # ended by the watchdog, not after the sleep with the session's summary


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks")
def test_a_closed_store_used_again_is_started_over_in_a_forked_child(tmp_path: Path) -> None:
    """A child must never close the connections it inherits (SQLite's locks are the parent's): a store
    closed and then used again through a reference someone kept is reset in the child as any other."""
    from notebook_memo.stores.local import close_stores

    @memo
    def f(x: int) -> int:
        return x + 1

    configure(cache_dir=str(tmp_path / "c"))
    assert f(1) == 2
    store = f._store()
    close_stores([store.directory])
    assert store.hit_stats("x") == (0, 0.0)  # used again: its reader has a connection once more
    assert store._reader is not None
    pid = os.fork()
    if pid == 0:
        os._exit(0 if store._reader is None else 1)  # started over: the parent's handles were set aside
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
