"""Integrity and security of the store: nothing is unpickled, opened or deleted unless it is ours and verified.

Every test damages or plants real bytes in a real cache directory (SQLite rows, payload files,
symlinks, FIFOs, permissions) and checks that the user gets the right value, that no code ran and
that no file outside the store's own was touched.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import sqlite3
import stat
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from notebook_memo import StorageWarning, configure, memo
from notebook_memo.stores.local import close_stores
from tests.conftest import ROOT, Counter, resealed, settled

MODE_PICKLE = 4  # diskcache's own row mode for pickled values


class _Trap:
    """Unpickling this creates a file: stands in for code planted in the cache."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def _db(cache_dir: Path) -> sqlite3.Connection:
    settled()  # the results computed so far are in the index, as other processes soon see them
    return sqlite3.connect(str(cache_dir / "cache.db"), isolation_level=None)


def _entry_rows(cache_dir: Path) -> list[tuple[Any, ...]]:
    with _db(cache_dir) as db:
        return db.execute("SELECT rowid, key, filename, value FROM Cache WHERE key NOT LIKE 'lock:%' "
                          "AND key NOT LIKE 'stats:%' ORDER BY rowid").fetchall()


def _quiet_call(fn: Any, *args: Any) -> tuple[Any, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = fn(*args)
    return value, [str(w.message) for w in caught if issubclass(w.category, StorageWarning)]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "notebook_memo", *args], capture_output=True, text=True,
                          env=env, timeout=120)


# -- rows in diskcache's own formats are never unpickled ------------------------------------------


@pytest.mark.parametrize("secret", [None, "team secret"])
def test_a_row_in_diskcache_pickle_mode_is_never_unpickled(tmp_path: Path, cache_dir: Path, counter: Counter,
                                                          secret: str | None) -> None:
    if secret:
        configure(secret=secret)
    trap = tmp_path / "pwned"

    @memo
    def f(x: int) -> int:
        counter()
        return x + 1

    assert f(1) == 2
    [(_, key, _, _)] = _entry_rows(cache_dir)
    with _db(cache_dir) as db:
        db.execute("UPDATE Cache SET mode = ?, value = ? WHERE key = ?",
                   (MODE_PICKLE, pickle.dumps(_Trap(str(trap))), key))
    f._store().forget()
    value, caught = _quiet_call(f, 1)  # a plain hit
    assert value == 2 and not trap.exists()
    assert any("not written by notebook_memo" in m for m in caught), caught
    assert f(5) == 6 and not trap.exists()  # a miss
    assert counter.n == 3


def test_a_pickled_key_is_never_unpickled_by_any_command(tmp_path: Path, cache_dir: Path) -> None:
    trap = tmp_path / "pwned"

    @memo
    def f(x: int) -> int:
        return x + 1

    f(1)
    planted = pickle.dumps(_Trap(str(trap)))
    with _db(cache_dir) as db:
        db.execute("INSERT INTO Cache (key, raw, store_time, expire_time, access_time, access_count, tag, size, "
                   "mode, filename, value) VALUES (?, 0, 0, NULL, 0, 0, NULL, 0, ?, NULL, ?)",
                   (planted, MODE_PICKLE, planted))
    assert f(1) == 2 and f(2) == 3
    assert f.cache_info().entries == 2
    for args in (["info"], ["prune", "--older-than", "1h"], ["prune", "--keep-latest"],
                 ["prune", "--max-size", "1GB"], ["clear"]):
        out = _cli(*args, "--dir", str(cache_dir))
        assert out.returncode == 0, (args, out.stderr)
        assert not trap.exists(), args
    f.clear()
    assert not trap.exists()


# -- a record belongs to its key -------------------------------------------------------------------


def test_a_record_copied_under_another_key_is_refused(cache_dir: Path, counter: Counter) -> None:
    @memo
    def f(x: int) -> str:
        counter()
        return f"value of {x}"

    f(1), f(2)
    (_, _, _, value1), (_, key2, _, _) = _entry_rows(cache_dir)
    with _db(cache_dir) as db:
        db.execute("UPDATE Cache SET value = ? WHERE key = ?", (value1, key2))
    f._store().forget()
    value, caught = _quiet_call(f, 2)
    assert value == "value of 2" and counter.n == 3
    assert caught and "another" in caught[0], caught
    assert f(1) == "value of 1" and counter.n == 3  # the original is untouched


def test_a_row_pointing_at_another_entrys_file_is_refused(cache_dir: Path, counter: Counter) -> None:
    @memo
    def f(x: int) -> np.ndarray:
        counter()
        return np.full(100_000, x)

    f(1), f(2)
    (_, _, file1, _), (_, key2, file2, _) = _entry_rows(cache_dir)
    assert file1 and file2
    with _db(cache_dir) as db:
        db.execute("UPDATE Cache SET filename = ? WHERE key = ?", (file1, key2))  # a damaged index page
    f._store().forget()
    value, caught = _quiet_call(f, 2)
    assert (value == 2).all() and counter.n == 3 and caught
    assert (f(1) == 1).all() and counter.n == 3  # the other entry and its file survive
    assert (cache_dir / file1).exists()


def test_a_flipped_bit_in_the_metadata_is_detected(cache_dir: Path, counter: Counter) -> None:
    @memo
    def f() -> int:
        counter()
        return 7

    f()
    [(_, key, _, blob)] = _entry_rows(cache_dir)
    damaged = bytearray(blob)
    at = bytes(blob).index(b'"duration"')
    damaged[at + 1] ^= 0x01  # inside the JSON metadata
    with _db(cache_dir) as db:
        db.execute("UPDATE Cache SET value = ? WHERE key = ?", (bytes(damaged), key))
    f._store().forget()
    value, caught = _quiet_call(f)
    assert value == 7 and counter.n == 2 and caught


# -- files a row points to -------------------------------------------------------------------------


def _plant_filename(cache_dir: Path, filename: str) -> None:
    rows = _entry_rows(cache_dir)
    with _db(cache_dir) as db:
        for _, key, current, _ in rows:
            if current:
                db.execute("UPDATE Cache SET filename = ? WHERE key = ?", (filename, key))


@pytest.fixture
def file_entry(cache_dir: Path, counter: Counter) -> Any:
    @memo
    def f(x: int) -> np.ndarray:
        counter()
        return np.full(100_000, x)

    f(1)
    return f


@pytest.mark.parametrize("how", ["absolute", "dotdot"])
def test_a_row_pointing_outside_the_cache_is_never_read_or_deleted(tmp_path: Path, cache_dir: Path,
                                                                   file_entry: Any, how: str) -> None:
    victim = tmp_path / "precious.txt"
    victim.write_text("the user's own work")
    target = str(victim) if how == "absolute" else os.path.relpath(victim, cache_dir)
    _plant_filename(cache_dir, target)
    file_entry._store().forget()
    value, caught = _quiet_call(file_entry, 1)
    assert (value == 1).all() and caught
    file_entry.clear()
    for args in (["prune", "--older-than", "1s"], ["prune", "--max-size", "1"], ["clear"]):
        _plant_filename(cache_dir, target)
        assert _cli(*args, "--dir", str(cache_dir)).returncode == 0
    assert victim.read_text() == "the user's own work"


def test_a_symlinked_payload_is_refused_and_its_target_kept(tmp_path: Path, cache_dir: Path,
                                                            file_entry: Any) -> None:
    [(_, _, filename, _)] = [r for r in _entry_rows(cache_dir) if r[2]]
    victim = tmp_path / "precious.bin"
    shutil.copy(cache_dir / filename, victim)  # the same bytes: only the link itself is wrong
    os.remove(cache_dir / filename)
    os.symlink(victim, cache_dir / filename)
    file_entry._store().forget()
    value, caught = _quiet_call(file_entry, 1)
    assert (value == 1).all() and caught and file_entry.cache_info().misses == 2
    file_entry.clear()
    assert victim.exists()


FIFO_SCRIPT = """
import os, sys, sqlite3, warnings
sys.path.insert(0, {root!r})
import numpy as np
from notebook_memo import memo
warnings.simplefilter("ignore")
@memo
def f(x):
    return np.full(100_000, x)
f(1)
db = sqlite3.connect(os.path.join({cache!r}, "cache.db"), isolation_level=None)
[(filename,)] = db.execute("SELECT filename FROM Cache WHERE filename IS NOT NULL").fetchall()
path = os.path.join({cache!r}, filename)
os.remove(path)
os.mkfifo(path)
f._store().forget()
ok = bool((f(1) == 1).all())
f.clear()
print("DONE", ok, os.path.exists(path))
"""


def test_a_fifo_in_place_of_a_payload_never_blocks(tmp_path: Path, cache_dir: Path) -> None:
    script = tmp_path / "fifo.py"
    script.write_text(FIFO_SCRIPT.format(root=str(ROOT), cache=str(cache_dir)))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "NOTEBOOK_MEMO_DIR": str(cache_dir)})
    assert out.returncode == 0, out.stderr
    assert "DONE True True" in out.stdout  # computed, and the FIFO (not ours) was not deleted


def test_prune_never_deletes_a_users_files_in_the_cache_directory(tmp_path: Path) -> None:
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    (folder / "sub").mkdir()
    (folder / "sub" / "data.csv").write_text("a,b\n1,2\n")
    configure(cache_dir=str(folder))

    @memo
    def f(x: int) -> bytes:
        return bytes(200_000)

    f(1)
    old = os.path.getmtime(folder / "notes.txt") - 3600
    for path in (folder / "notes.txt", folder / "sub" / "data.csv"):
        os.utime(path, (old, old))
    for args in (["prune", "--older-than", "1s"], ["prune", "--keep-latest"], ["prune", "--max-size", "1"],
                 ["clear"]):
        assert _cli(*args, "--dir", str(folder)).returncode == 0
    assert (folder / "notes.txt").read_text() == "mine"
    assert (folder / "sub" / "data.csv").read_text() == "a,b\n1,2\n"


# -- memory-mapped payloads ------------------------------------------------------------------------


def test_a_damaged_mapped_payload_is_refused(cache_dir: Path, counter: Counter) -> None:
    @memo(mmap=True)
    def f() -> np.ndarray:
        counter()
        return np.arange(500_000, dtype=np.float64)

    f()
    [(_, _, filename, _)] = [r for r in _entry_rows(cache_dir) if r[2]]
    with open(cache_dir / filename, "r+b") as handle:
        handle.seek(-100, os.SEEK_END)
        handle.write(b"\x7f")
    f._store().forget()
    value, caught = _quiet_call(f)
    assert np.array_equal(value, np.arange(500_000, dtype=np.float64)) and counter.n == 2 and caught


def test_a_mapped_payload_is_verified_once_per_file(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from notebook_memo import _serialize

    checked: list[int] = []
    original = _serialize.verify_file

    def counting(*args: Any, **kwargs: Any) -> Any:
        checked.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(_serialize, "verify_file", counting)

    @memo(mmap=True)
    def f() -> np.ndarray:
        return np.arange(500_000, dtype=np.float64)

    f()
    for _ in range(5):
        f._store().forget()
        assert f()[-1] == 499_999
    assert len(checked) == 1


MAPPED_PAYLOAD = """
import os, sys, sqlite3, warnings
sys.path.insert(0, {root!r})
warnings.simplefilter("ignore")
import numpy as np
from notebook_memo import _serialize, memo

@memo(mmap=True)
def f():
    return np.arange({n}, dtype=np.float64)

f()
db = sqlite3.connect(os.path.join({cache!r}, "cache.db"), isolation_level=None)
[(filename,)] = db.execute("SELECT filename FROM Cache WHERE filename IS NOT NULL").fetchall()
path = os.path.join({cache!r}, filename)
"""


def _mapped_payload_then(script: str, n: int, tmp_path: Path, cache_dir: Path) -> subprocess.CompletedProcess[str]:
    """Run, in a new process, a function storing an n-element array for mmap=True, then ``script`` (``path``: its
    payload file)."""
    program = tmp_path / "mapped.py"
    program.write_text(MAPPED_PAYLOAD.format(root=str(ROOT), cache=str(cache_dir), n=n) + script)
    return subprocess.run([sys.executable, str(program)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "NOTEBOOK_MEMO_DIR": str(cache_dir)})


SHORT_MAP = """
with open(path, "r+b") as handle:
    handle.truncate(1_000_000)
f._store().forget()
value = f()
print("DONE", float(value.sum()) == float(np.arange(500_000).sum()))
"""


def test_a_mapped_payload_shorter_than_its_header_is_refused_before_mapping(tmp_path: Path,
                                                                            cache_dir: Path) -> None:
    out = _mapped_payload_then(SHORT_MAP, 500_000, tmp_path, cache_dir)
    assert out.returncode == 0, out.stderr  # no SIGBUS
    assert "DONE True" in out.stdout


# -- secrets ---------------------------------------------------------------------------------------


def test_secrets_equal_in_their_first_64_bytes_are_not_interchangeable(counter: Counter) -> None:
    @memo
    def f() -> int:
        counter()
        return 1

    configure(secret="x" * 64 + "A")
    f()
    configure(secret="x" * 64 + "B")
    f()
    assert counter.n == 2


def test_an_empty_secret_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="empty"):
        configure(secret="")

    @memo
    def f() -> int:
        return 1

    monkeypatch.setenv("NOTEBOOK_MEMO_SECRET", "")
    with pytest.raises(ValueError, match="NOTEBOOK_MEMO_SECRET"):
        f()


def test_kernels_with_different_secrets_keep_each_others_entries(counter: Counter) -> None:
    @memo
    def f(x: int) -> int:
        counter()
        return x * 10

    for secret in ("alice", "bob", None, "alice", "bob", None):
        configure(secret=secret)
        value, caught = _quiet_call(f, 1)
        assert value == 10 and caught == []
    assert counter.n == 3  # each computed once, then each read its own entry back


# -- who may write to the cache directory ---------------------------------------------------------


@pytest.mark.parametrize("how", ["world-writable", "group-writable", "symlink"])
def test_a_directory_others_can_write_is_not_read_without_a_secret(tmp_path: Path, cache_dir: Path,
                                                                   counter: Counter, how: str) -> None:
    shared = tmp_path / "shared"
    configure(cache_dir=str(shared))

    @memo
    def f() -> int:
        counter()
        return 5

    f()
    shared.chmod(0o777 if how != "group-writable" else 0o770)
    if how == "symlink":
        link = tmp_path / "link"
        os.symlink(shared, link)
        configure(cache_dir=str(link))
    f._store().forget()
    trap = tmp_path / "pwned"
    [(_, key, _, _)] = _entry_rows(shared)
    with _db(shared) as db:  # anyone can now plant a row in the directory
        db.execute("UPDATE Cache SET mode = ?, value = ? WHERE key = ?",
                   (MODE_PICKLE, pickle.dumps(_Trap(str(trap))), key))
    value, caught = _quiet_call(f)
    assert value == 5 and counter.n == 2 and not trap.exists()
    assert caught and "chmod" in caught[0] and "secret" in caught[0], caught


def test_a_directory_owned_by_someone_else_is_not_read_without_a_secret(tmp_path: Path, counter: Counter,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    foreign = tmp_path / "foreign"
    configure(cache_dir=str(foreign))

    @memo
    def f() -> int:
        counter()
        return 5

    f()
    if os.geteuid() == 0:
        for root, dirs, files in os.walk(foreign):
            for name in dirs + files:
                os.chown(os.path.join(root, name), 65534, 65534)
        os.chown(foreign, 65534, 65534)
    else:  # without root, become someone else instead of giving the directory away
        monkeypatch.setattr(os, "geteuid", lambda: os.stat(foreign).st_uid + 1)
    f._store().forget()
    value, caught = _quiet_call(f)
    assert value == 5 and counter.n == 2
    assert caught and "owned by" in caught[0], caught


def test_the_cache_directory_check_is_quiet_for_a_private_directory(counter: Counter, cache_dir: Path) -> None:
    @memo
    def f() -> int:
        counter()
        return 5

    f()
    f._store().forget()
    value, caught = _quiet_call(f)
    assert value == 5 and counter.n == 1 and caught == []
    assert stat.S_IMODE(cache_dir.stat().st_mode) == 0o700


def test_the_readme_says_what_is_guaranteed() -> None:
    readme = (ROOT / "README.md").read_text()
    for phrase in ("group or others", "verified once", "belongs to its key"):
        assert phrase in readme, phrase


def test_planted_counter_rows_and_settings_neither_run_code_nor_stop_caching(tmp_path: Path, cache_dir: Path,
                                                                            counter: Counter) -> None:
    trap = tmp_path / "pwned"

    @memo
    def f(x: int) -> int:
        counter()
        return x + 1

    f(1)
    planted = pickle.dumps(_Trap(str(trap)))
    with _db(cache_dir) as db:
        for key in (f"stats:hits:{f.function_id}", f"stats:used:{f.function_id}"):
            db.execute("DELETE FROM Cache WHERE key = ?", (key,))
            db.execute("INSERT INTO Cache (key, raw, store_time, expire_time, access_time, access_count, tag, "
                       "size, mode, filename, value) VALUES (?, 1, 0, NULL, 0, 0, NULL, 0, ?, NULL, ?)",
                       (key, MODE_PICKLE, planted))
        db.execute("INSERT OR REPLACE INTO Settings VALUES ('disk_min_file_size', 0)")
        db.execute("INSERT OR REPLACE INTO Settings VALUES ('disk_surprise', 1)")
    out = _cli("info", "--dir", str(cache_dir))
    assert out.returncode == 0, out.stderr
    f._store()._close_handles()  # the next call reopens the index with the planted settings
    f._store().forget()
    value, caught = _quiet_call(f, 2)
    assert value == 3 and caught == [] and f(2) == 3 and counter.n == 2
    assert f.cache_info().entries == 2 and not trap.exists()


# -- metadata a writer without the secret made unreadable --------------------------------------------------


def _spoil_metadata(cache_dir: Path, how: str) -> None:
    """Rewrite every record's metadata as ``how`` says, checks made valid again."""
    from notebook_memo._serialize import _HEADER

    def spoil(data: bytearray) -> None:
        fields = _HEADER.unpack_from(data)
        start, n = _HEADER.size + fields[9], fields[8]
        if how == "not UTF-8":
            data[start + 2] = 0xFF
        else:  # JSON, not an object
            data[start:start + n] = b"[" + b" " * (n - 2) + b"]"

    settled()
    with sqlite3.connect(str(cache_dir / "cache.db"), isolation_level=None) as db:
        for key, value in db.execute("SELECT key, value FROM Cache WHERE mode = 16").fetchall():
            db.execute("UPDATE Cache SET value = ? WHERE key = ?", (resealed(value, spoil), key))


@pytest.mark.parametrize("how", ["not UTF-8", "a list"])
def test_unreadable_metadata_breaks_no_listing_explain_or_cleanup(cache_dir: Path, how: str) -> None:
    @memo
    def f(x: int) -> int:
        return x * 2

    assert [f(1), f(2)] == [2, 4]
    _spoil_metadata(cache_dir, how)
    f._store().forget()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert [f(1), f(2)] == [2, 4]
        f.cache_info()
        f.explain(1)
        f.entries()
        f.clear_stale()
        out = subprocess.run([sys.executable, "-m", "notebook_memo", "info"], capture_output=True, text=True,
                             timeout=60, env={**os.environ, "NOTEBOOK_MEMO_DIR": str(cache_dir),
                                              "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("how", ["not UTF-8", "a list"])
def test_an_entry_with_preconditions_whose_metadata_is_unreadable_is_never_served(cache_dir: Path, tmp_path: Path,
                                                                                  counter: Counter, how: str) -> None:
    data = tmp_path / "data.txt"
    data.write_text("one")

    @memo
    def f() -> str:
        counter()
        return data.read_text()

    assert f() == "one"
    data.write_text("two")  # its precondition no longer holds: were it served unchecked, "one" would come back
    _spoil_metadata(cache_dir, how)
    f._store().forget()
    report = f.explain()
    assert not report.hit and "cannot be used" in report.summary
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert f() == "two"
    assert counter.n == 2


def test_an_index_whose_settings_ask_for_a_memory_map_is_still_read_without_one(cache_dir: Path) -> None:
    """diskcache applies its Settings table to each connection it opens: an older index (or an older
    copy of this one put back) asks for a 64 MiB map there, and a file cut under a map kills the kernel."""
    import threading

    from notebook_memo.stores.local import connection

    @memo
    def f(x: int) -> int:
        return x

    f(1)
    settled()
    with sqlite3.connect(str(cache_dir / "cache.db"), isolation_level=None) as db:
        db.execute("UPDATE Settings SET value = ? WHERE key = 'sqlite_mmap_size'", (1 << 26,))
    store = f._store()
    sizes: list[int] = []

    def look() -> None:  # a thread's first use opens its own connections, reading the Settings table
        assert f(1) == 1
        for con in (store._writer._con, store._reader._con, connection(store.directory)):
            sizes.extend(row[0] for row in con.execute("PRAGMA mmap_size"))

    thread = threading.Thread(target=look)
    thread.start()
    thread.join()
    assert sizes == [0, 0, 0]


# -- rows planted in the index's Settings table, and names planted beside it (found by a review) ---------

SETTINGS_KERNEL = """
import os, sys, threading, warnings
sys.path.insert(0, {root!r})
warnings.simplefilter("ignore")
import numpy as np
from notebook_memo import memo

class _Runs(list):
    def __memo_key__(self): return "runs"

runs = _Runs()

@memo
def f(x):
    runs.append(x)
    return np.full(50_000, x)  # a payload file of its own

values = [int(f(int(x))[0]) for x in sys.argv[1:]]
store = f._store()
maps = []

def read_maps():  # a new thread's connections: diskcache applies the table's rows to each
    reader, writer = store._handles()
    maps.extend(int(h._con.execute("PRAGMA mmap_size").fetchone()[0]) for h in (reader, writer))

thread = threading.Thread(target=read_maps)
thread.start()
thread.join()
print("RESULT", values, len(runs), maps, f.cache_info().entries)
"""


def _settings_kernel(cache_dir: Path, tmp_path: Path, *xs: int) -> str:
    script = tmp_path / "settings_kernel.py"
    script.write_text(SETTINGS_KERNEL.format(root=str(ROOT)))
    env = {**os.environ, "NOTEBOOK_MEMO_DIR": str(cache_dir), "NOTEBOOK_MEMO_SECRET": "team"}
    out = subprocess.run([sys.executable, str(script), *map(str, xs)], capture_output=True, text=True, timeout=90,
                         env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    return next(line for line in out.stdout.splitlines() if line.startswith("RESULT"))


@pytest.mark.parametrize("key, value", [
    ("sqlite_MMAP_SIZE", 67108864),  # pragma names are case-blind: the old clamp missed it
    ("sqlite_locking_mode", "EXCLUSIVE"),  # every other connection waited forever
    ("sqlite_journal_mode", "delete"),
    ("sqlite_query_only", 1),
    ("disk__directory", "OUTSIDE"),  # payload files written into another folder
    ("eviction_policy", "none"),
])
def test_a_row_planted_in_the_settings_table_changes_nothing(key: str, value: Any, cache_dir: Path,
                                                            tmp_path: Path) -> None:
    outside = tmp_path / "users_folder"
    outside.mkdir()
    (outside / "thesis.txt").write_text("mine\n")
    assert _settings_kernel(cache_dir, tmp_path, 1, 2, 1) == "RESULT [1, 2, 1] 2 [0, 0] 2"
    with _db(cache_dir) as db:
        planted = str(outside) if value == "OUTSIDE" else value
        db.execute("INSERT OR REPLACE INTO Settings VALUES (?, ?)", (key, planted))
    # Both entries hit, a third is stored and hits, the index is never mapped, nothing is written outside.
    assert _settings_kernel(cache_dir, tmp_path, 1, 2, 3, 3) == "RESULT [1, 2, 3, 3] 1 [0, 0] 3"
    assert sorted(p.name for p in outside.rglob("*")) == ["thesis.txt"]


@pytest.mark.parametrize("statistic", [1e15, -1e15, "x"])
def test_a_size_statistic_that_cannot_be_true_is_counted_again_not_believed(
        statistic: Any, cache_dir: Path, counter: Counter) -> None:
    configure(size_limit=3_000_000)

    @memo
    def f(x: int) -> np.ndarray:
        counter()
        return np.full(100_000, x, dtype=np.float64)  # 800 kB: a payload file

    for x in range(2):
        f(x)
    with _db(cache_dir) as db:
        db.execute("UPDATE Settings SET value = ? WHERE key = 'size'", (statistic,))
    f._store().forget()
    for x in range(6):  # over the limit by half: the oldest go, not every entry, and the limit holds
        f(x)
    assert counter.n == 6
    assert f.cache_info().entries >= 2
    assert f._store().stored_bytes() <= 3_000_000
    with _db(cache_dir) as db:
        (size,) = db.execute("SELECT value FROM Settings WHERE key = 'size'").fetchone()
        (counted,) = db.execute("SELECT SUM(size) FROM Cache").fetchone()
    assert size == counted


def test_an_index_that_is_a_link_to_a_database_of_the_user_s_is_never_opened(
        cache_dir: Path, tmp_path: Path, counter: Counter) -> None:
    users = tmp_path / "app.db"
    with sqlite3.connect(str(users)) as db:
        db.execute("CREATE TABLE notes (text)")
        db.execute("INSERT INTO notes VALUES ('mine')")
    before = users.read_bytes()

    @memo
    def f(x: int) -> int:
        counter()
        return x + 1

    assert f(1) == 2
    settled()
    for name in ("cache.db", "cache.db-wal", "cache.db-shm"):
        with contextlib.suppress(FileNotFoundError):
            (cache_dir / name).unlink()
    (cache_dir / "cache.db").symlink_to(users)
    close_stores([str(cache_dir)])  # a new kernel
    with pytest.warns(StorageWarning, match="link or not a plain file.*moved to"):
        assert f(1) == 2 and f(1) == 2
    assert counter.n == 2
    assert users.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("app")) == ["app.db"]
    assert not (cache_dir / "cache.db").is_symlink()


def test_a_link_planted_as_the_marker_creates_nothing_where_it_points(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    target = tmp_path / "elsewhere.txt"
    (cache / "NOTEBOOK_MEMO_CACHE").symlink_to(target)  # dangling
    configure(cache_dir=str(cache))

    @memo
    def f(x: int) -> int:
        return x + 1

    assert f(1) == 2 and f(1) == 2
    assert not target.exists()


@pytest.mark.parametrize("kind", ["text", "sqlite"])
def test_a_folder_holding_someone_else_s_cache_db_is_refused_and_left_as_it_is(kind: str, tmp_path: Path) -> None:
    from notebook_memo import ConfigurationError

    folder = tmp_path / "project"
    folder.mkdir()
    if kind == "text":
        (folder / "cache.db").write_text("my notes\n")
    else:
        with sqlite3.connect(str(folder / "cache.db")) as db:
            db.execute("CREATE TABLE runs (n)")
    before = (folder / "cache.db").read_bytes()
    configure(cache_dir=str(folder))

    @memo
    def f(x: int) -> int:
        return x + 1

    with pytest.raises(ConfigurationError, match="did not make"):
        f(1)
    assert sorted(p.name for p in folder.iterdir()) == ["cache.db"]
    assert (folder / "cache.db").read_bytes() == before


CUT_WHILE_VERIFIED = """
check = _serialize._PayloadCheck.__init__

def cut_once(self, *args):  # another program cuts the file short once its check has begun
    check(self, *args)
    inner = self.update
    def update(data):
        inner(data)
        if os.path.getsize(path) > 4096:
            os.truncate(path, 4096)
    self.update = update

_serialize._PayloadCheck.__init__ = cut_once
f._store().forget()
value = f()
print("DONE", float(value[-1]) == 1_999_999.0)
"""


def test_a_mapped_payload_cut_short_while_it_is_verified_is_refused_not_a_crash(tmp_path: Path,
                                                                                cache_dir: Path) -> None:
    out = _mapped_payload_then(CUT_WHILE_VERIFIED, 2_000_000, tmp_path, cache_dir)
    assert out.returncode == 0, out.stderr[-2000:]  # -7: SIGBUS
    assert "DONE True" in out.stdout


def test_a_lost_marker_is_made_again_beside_an_index_of_ours(tmp_path: Path) -> None:
    # Only an index without our table counts as someone else's: ours, with its marker deleted, is used.
    assert _settings_kernel(tmp_path / "c", tmp_path, 1) == "RESULT [1] 1 [0, 0] 1"
    (tmp_path / "c" / "NOTEBOOK_MEMO_CACHE").unlink()
    assert _settings_kernel(tmp_path / "c", tmp_path, 1) == "RESULT [1] 0 [0, 0] 1"
    assert (tmp_path / "c" / "NOTEBOOK_MEMO_CACHE").is_file()


@pytest.mark.parametrize("suffix", ["-wal", "-shm"])
def test_a_link_planted_as_the_index_s_log_is_moved_aside_and_caching_goes_on(
        suffix: str, cache_dir: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious\n")
    assert _settings_kernel(cache_dir, tmp_path, 1) == "RESULT [1] 1 [0, 0] 1"
    with contextlib.suppress(FileNotFoundError):
        (cache_dir / f"cache.db{suffix}").unlink()
    (cache_dir / f"cache.db{suffix}").symlink_to(victim)
    _settings_kernel(cache_dir, tmp_path, 2)
    assert _settings_kernel(cache_dir, tmp_path, 2) == "RESULT [2] 0 [0, 0] 1"  # caching works again
    assert victim.read_bytes() == b"precious\n"


@pytest.mark.parametrize("key, value", [(b"sqlite_x", 1), ("disk_directory", "/")])
def test_a_settings_row_diskcache_itself_trips_on_is_damage_set_aside(
        key: Any, value: Any, cache_dir: Path, tmp_path: Path) -> None:
    assert _settings_kernel(cache_dir, tmp_path, 1) == "RESULT [1] 1 [0, 0] 1"
    with _db(cache_dir) as db:
        db.execute("INSERT INTO Settings VALUES (?, ?)", (key, value))
    _settings_kernel(cache_dir, tmp_path, 1)  # set aside: computed again
    assert _settings_kernel(cache_dir, tmp_path, 1) == "RESULT [1] 0 [0, 0] 1"
    assert any(p.name.startswith("cache.db.damaged-") for p in cache_dir.iterdir())
