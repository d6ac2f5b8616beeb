"""Large caches: notices, summaries, clean-ups and batches read many rows at once and stay exact and safe.

A cache of 20,000 entries is built once (by a batch function in another process) and copied for
each test; the tests check what users see in it: the stale-version notice, ``info``,
``cache_info``, ``clear_stale`` and batches, with forged and foreign rows planted among the many.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from notebook_memo import StaleEntriesWarning, StorageWarning, configure, memo
from notebook_memo._inventory import delete_results
from tests.conftest import ROOT, Seen, Shell, settled

FILLER = 20_000
MODE_PICKLE = 4  # diskcache's own row mode for pickled values

_BUILD = """
import sys
from notebook_memo import configure, memo
configure(cache_dir=sys.argv[1], verbose=0)

@memo.batch("xs", batch_size=4096, progress=False)
def filler(xs):
    return [x * 3 for x in xs]

filler(list(range(int(sys.argv[2]))))
"""

_TARGET = """
import json, sys, time, warnings
sys.path.insert(0, sys.argv[1])
from notebook_memo import memo
import target_module

target = memo(target_module.target)
first, count, wait = (int(a) for a in sys.argv[2:5])
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for i in range(first, first + count):
        target(i)
    deadline = time.monotonic() + 60  # a notice about many entries comes from a thread once it has counted them
    while wait and time.monotonic() < deadline and not any("cached entr" in str(w.message) for w in caught):
        time.sleep(0.02)
print("NOTICES" + json.dumps([str(w.message) for w in caught if w.category.__name__ == "StaleEntriesWarning"]))
"""


class _Trap:
    """Unpickling this creates a file: stands in for code planted in the cache."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def _env(cache_dir: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "NOTEBOOK_MEMO_DIR": str(cache_dir)}


@pytest.fixture(scope="module")
def filler_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache directory holding FILLER entries of a batch function ``__main__.filler``."""
    directory = tmp_path_factory.mktemp("filler") / "cache"
    subprocess.run([sys.executable, "-c", _BUILD, str(directory), str(FILLER)], check=True, env=_env(directory),
                   timeout=600)
    return directory


@pytest.fixture
def large(filler_cache: Path, cache_dir: Path) -> Path:
    """This test's cache directory, holding a copy of the FILLER entries."""
    shutil.copytree(filler_cache, cache_dir)
    return cache_dir


def _target(cache_dir: Path, source: str, first: int, count: int, wait: bool) -> list[str]:
    """Run ``target`` (defined by ``source``) on ``count`` arguments in a fresh process; return its stale notices."""
    folder = cache_dir.parent / "src"
    folder.mkdir(exist_ok=True)
    (folder / "target_module.py").write_text(textwrap.dedent(source))
    out = subprocess.run([sys.executable, "-c", _TARGET, str(folder), str(first), str(count), str(int(wait))],
                         capture_output=True, text=True, env=_env(cache_dir), timeout=600)
    lines = [line for line in out.stdout.splitlines() if line.startswith("NOTICES")]
    assert lines, out.stderr
    return json.loads(lines[0][len("NOTICES"):])  # type: ignore[no-any-return]


def _rows(cache_dir: Path, tag: str | None = None) -> list[tuple[Any, ...]]:
    settled()
    with sqlite3.connect(str(cache_dir / "cache.db")) as db:
        return db.execute("SELECT rowid, key, value FROM Cache WHERE mode = 16" + (" AND tag = ?" if tag else ""),
                          (tag,) if tag else ()).fetchall()


def test_first_miss_after_an_edit_notices_the_many_older_entries(large: Path) -> None:
    assert _target(large, "def target(x):\n    return x + 1\n", 0, 300, wait=False) == []
    notices = _target(large, "def target(x):\n    return x + 2\n", 1000, 1, wait=True)
    assert len(notices) == 1, notices
    assert notices[0].startswith("target: 300 cached entries") and "1 other version" in notices[0]


def test_first_miss_after_an_edit_notices_a_few_older_entries_at_once(large: Path) -> None:
    _target(large, "def target(x):\n    return x + 1\n", 0, 3, wait=False)
    notices = _target(large, "def target(x):\n    return x + 2\n", 1000, 1, wait=False)
    assert len(notices) == 1 and notices[0].startswith("target: 3 cached entries"), notices


def test_info_counts_every_entry_of_a_large_cache(large: Path) -> None:
    _target(large, "def target(x):\n    return x + 1\n", 0, 2, wait=False)
    _target(large, "def target(x):\n    return x + 2\n", 0, 1, wait=False)
    out = subprocess.run([sys.executable, "-m", "notebook_memo", "info", "--dir", str(large)], capture_output=True,
                         text=True, env=_env(large), timeout=600)
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line.split() for line in out.stdout.splitlines()
             if line.startswith(("__main__", "target"))}
    assert lines["__main__.filler"][1:3] == [str(FILLER), "1"]
    assert lines["target_module.target"][1:3] == ["3", "2"]
    assert f"{FILLER + 3} entries" in out.stdout


def test_cache_info_and_clear_stale_of_one_function_among_many(large: Path, shell: Shell) -> None:
    shell.run("from notebook_memo import memo\n@memo\ndef big(x):\n    return bytes(100_000) + b'1'")
    shell.run("big(1), big(2)")
    shell.run("@memo\ndef big(x):\n    return bytes(100_000) + b'2'")
    with pytest.warns(StaleEntriesWarning, match="big: 2 cached entries"):
        shell.run("big(1)")
    big = shell["big"]
    assert big.cache_info().entries == 3 and len(big.entries()) == 3
    assert big.clear_stale() == 2
    assert big.cache_info().entries == 1 and big.is_cached(1) and not big.is_cached(2)
    files = [p for p in large.rglob("*.val")]
    assert len(files) == 1, files  # the payload files of the deleted entries went with them
    assert len(_rows(large)) == FILLER + 1


@pytest.mark.parametrize("secret", [None, "team secret"])
def test_a_batch_over_many_cached_items_refuses_rows_planted_among_them(tmp_path: Path, cache_dir: Path,
                                                                        secret: str | None) -> None:
    if secret:
        configure(secret=secret)
    computed = Seen()

    @memo.batch("xs", batch_size=4096, progress=False)
    def double(xs: list[int]) -> list[int]:
        computed.extend(xs)
        return [x * 2 for x in xs]

    items = list(range(FILLER))
    assert double(items) == [x * 2 for x in items]
    rows = _rows(cache_dir, double.function_id)
    assert len(rows) == FILLER
    trap = tmp_path / "pwned"
    (_, copied_key, _), (_, foreign_key, _), (_, flipped_key, flipped) = rows[100], rows[5000], rows[12345]
    flipped = bytearray(flipped)
    flipped[flipped.index(b'"duration":') + 12] ^= 1  # a digit of the stored compute time
    settled()
    with sqlite3.connect(str(cache_dir / "cache.db"), isolation_level=None) as db:
        db.execute("UPDATE Cache SET value = ? WHERE key = ?", (rows[200][2], copied_key))  # another item's record
        db.execute("UPDATE Cache SET mode = ?, value = ? WHERE key = ?",
                   (MODE_PICKLE, pickle.dumps(_Trap(str(trap))), foreign_key))
        db.execute("UPDATE Cache SET value = ? WHERE key = ?", (bytes(flipped), flipped_key))
    double._store().forget()
    computed.clear()
    with pytest.warns(StorageWarning) as caught:
        assert double(items) == [x * 2 for x in items]
    assert len(computed) == 3 and not trap.exists()
    assert len({str(w.message) for w in caught}) == 3, [str(w.message) for w in caught]  # one per refused row
    computed.clear()
    assert double(items) == [x * 2 for x in items] and computed == []  # the three were stored again
    assert double.cache_info().entries == FILLER


def test_a_bulk_delete_keeps_an_entry_rewritten_since_it_was_listed(large: Path) -> None:
    @memo
    def f(x: int) -> int:
        return x

    f(1), f(2)
    listed = f.entries()
    assert len(listed) == 2
    f.refresh(1)  # stored again after the listing: a new record under the same key
    assert delete_results(f._store(), listed) == 1
    assert f.is_cached(1) and not f.is_cached(2)


def test_items_stored_with_different_result_types_keep_their_own_in_one_call() -> None:
    np = pytest.importorskip("numpy")

    @memo.batch("xs", progress=False)
    def scaled(xs: list[int]) -> Any:
        return np.array([x * 1.5 for x in xs], dtype=np.float32 if xs[0] < 2 else np.float64)

    scaled([0, 1]), scaled([2, 3])  # two descriptions on disk: float32 items and float64 items
    both = scaled([2, 3, 0, 1])
    assert scaled.cache_info().hits == 4
    assert both.dtype == np.float64 and both.tolist() == [3.0, 4.5, 0.0, 1.5]
    assert scaled([0, 1]).dtype == np.float32 and scaled([3]).dtype == np.float64
