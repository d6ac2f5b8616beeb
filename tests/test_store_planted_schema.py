"""The local store against schema objects planted in its index, and against another program's write lock.

Someone who can write a team's cache folder can add an index (an expression or a partial one), a CHECK
constraint or a generated column to the index's tables: SQLite evaluates them inside every write of ours,
where our authorizer sees only our own statement. Any such object we did not make is planted, and the index
is set aside with one warning, as a planted view or trigger is. And a program holding the index's write lock
(a database browser's open transaction) delays ``invalidate``, ``clear`` or a large result's write by a
bounded wait, then they warn and return, never raising an internal timeout into the notebook.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import _KERNEL, ROOT, run_kernel, write_locked

SECRET = {"NOTEBOOK_MEMO_SECRET": "team secret"}

DEFINE = """
from notebook_memo import memo

@memo
def f(x):
    return x * 2
"""

CALL = "OUT['v'] = [f(x) for x in ARGS]; OUT['info'] = list(f.cache_info()[:2])"

# The smallest integer's abs() overflows: a write evaluating it fails ("integer overflow"). Rows already in the
# table (stored before the plant) take the harmless branch, so the planter's own CREATE succeeds.
OVERFLOW = "abs(length(key) * 0 - 9223372036854775807 - 1)"


def _rebuilt_table(con: sqlite3.Connection, name: str, extra: str) -> None:
    """Rebuild a table under its own name with ``extra`` added to its columns, its indexes and triggers as they
    were (triggers of other tables still name it: the rename leaves them as they are)."""
    ((table,),) = con.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", [name]).fetchall()
    others = [sql for (sql,) in con.execute("SELECT sql FROM sqlite_master WHERE tbl_name = ? AND type IN "
                                            "('index', 'trigger') AND sql IS NOT NULL", [name]).fetchall()]
    con.execute("PRAGMA legacy_alter_table = ON")
    con.execute("BEGIN IMMEDIATE")
    con.execute(f"ALTER TABLE {name} RENAME TO {name}_before")
    con.execute(table[:table.rindex(")")] + ", " + extra + ")")
    con.execute(f"INSERT INTO {name} SELECT * FROM {name}_before")
    con.execute(f"DROP TABLE {name}_before")  # with its indexes and triggers, made again on the new table
    for sql in others:
        con.execute(sql)
    con.execute("COMMIT")


def _plant(cache_dir: Path, plant: str) -> None:
    now = time.time()
    con = sqlite3.connect(str(cache_dir / "cache.db"), isolation_level=None)
    try:
        if plant == "expression_index":
            con.execute(f"CREATE INDEX planted ON Cache(CASE WHEN store_time < {now} THEN 0 ELSE {OVERFLOW} END)")
        elif plant == "partial_index":
            con.execute(f"CREATE INDEX planted ON Cache(key) WHERE store_time < {now} OR {OVERFLOW}")
        elif plant == "index_on_settings":
            # The count is 1 now: the next record stored makes it 2.
            con.execute(f"CREATE INDEX planted ON Settings(CASE WHEN key = 'count' AND value > 1 THEN {OVERFLOW} "
                        "ELSE 0 END)")
        elif plant == "slow_expression_index":  # deterministic, so allowed in an index: 40 MB made per row written
            con.execute("CREATE INDEX planted ON Cache(length(hex(zeroblob(20000000 + length(key) * 0))))")
        elif plant == "check_in_a_rebuilt_table":
            _rebuilt_table(con, "Cache", f"CHECK (store_time < {now} OR {OVERFLOW})")
        elif plant == "check_in_a_rebuilt_settings_table":
            _rebuilt_table(con, "Settings", f"CHECK (key <> 'count' OR value < 2 OR {OVERFLOW})")
        elif plant == "generated_column":
            con.execute(f"ALTER TABLE Cache ADD COLUMN planted INTEGER GENERATED ALWAYS AS ({OVERFLOW}) VIRTUAL")
        else:
            raise AssertionError(plant)
    finally:
        con.close()


PLANTS = ["expression_index", "partial_index", "index_on_settings", "slow_expression_index",
          "check_in_a_rebuilt_table", "check_in_a_rebuilt_settings_table", "generated_column"]


@pytest.mark.parametrize("plant", PLANTS)
def test_an_index_constraint_or_column_planted_in_a_shared_index_is_set_aside_and_storing_goes_on(
        plant: str, cache_dir: Path) -> None:
    first = run_kernel([DEFINE, "ARGS = [1]", CALL], cache_dir, seed=1, env=SECRET)
    assert first["v"] == [2] and first["info"] == [0, 1]
    _plant(cache_dir, plant)
    # Before, the planted expression ran inside every write: each later kernel computed, stored nothing, and
    # warned that the directory was not writable; the index was never set aside.
    second = run_kernel([DEFINE, "ARGS = [1, 2]", CALL], cache_dir, seed=2, env=SECRET)
    assert second["v"] == [2, 4]
    moved = [w for w in second["_warnings"] if "moved to" in w]
    assert len(moved) == 1 and ("did not make" in moved[0] or "not as notebook_memo made it" in moved[0]), moved
    assert not [w for w in second["_warnings"] if "not being stored" in w], second["_warnings"]
    assert len(list(cache_dir.glob("cache.db.damaged-*"))) == 1
    third = run_kernel([DEFINE, "ARGS = [1, 2]", CALL], cache_dir, seed=3, env=SECRET)
    assert third["v"] == [2, 4] and third["info"] == [2, 0], third
    assert not third["_warnings"]


def test_an_index_planted_while_the_kernel_has_the_index_open_is_set_aside_at_the_next_write(
        cache_dir: Path) -> None:
    planted = (f"import sqlite3, time; c = sqlite3.connect(r'{cache_dir / 'cache.db'}', isolation_level=None); "
               f"c.execute('CREATE INDEX planted ON Cache(CASE WHEN store_time < ' + repr(time.time()) + "
               f"' THEN 0 ELSE {OVERFLOW} END)'); c.close()")
    cells = [DEFINE, "OUT['before'] = f(1)",
             "from notebook_memo.stores.local import open_stores\n[s.settle() for s in open_stores()]",
             f"exec({planted!r})",
             "OUT['v'] = [f(2), f(3)]\n[s.settle() for s in open_stores()]",
             "OUT['again'] = [f(2), f(3)]; OUT['info'] = list(f.cache_info()[:2])"]
    out = run_kernel(cells, cache_dir, seed=1, env=SECRET)
    assert out["before"] == 2 and out["v"] == out["again"] == [4, 6]
    assert out["info"] == [2, 3], out  # f(2) and f(3) stored in the fresh index, and served from it
    assert len([w for w in out["_warnings"] if "moved to" in w]) == 1, out["_warnings"]
    assert not [w for w in out["_warnings"] if "not being stored" in w], out["_warnings"]


def test_the_whole_payload_file_index_an_earlier_version_made_is_ours_and_made_partial(cache_dir: Path) -> None:
    run_kernel([DEFINE, "ARGS = [1]", CALL], cache_dir, seed=1)
    con = sqlite3.connect(str(cache_dir / "cache.db"), isolation_level=None)
    con.execute("DROP INDEX Cache_filename")
    con.execute("CREATE INDEX IF NOT EXISTS Cache_filename ON Cache(filename)")
    con.close()
    second = run_kernel([DEFINE, "ARGS = [1, 2]", CALL], cache_dir, seed=2)
    assert second["v"] == [2, 4] and second["info"] == [1, 1] and not second["_warnings"], second
    assert not list(cache_dir.glob("cache.db.damaged-*"))
    con = sqlite3.connect(str(cache_dir / "cache.db"))
    ((sql,),) = con.execute("SELECT sql FROM sqlite_master WHERE name = 'Cache_filename'").fetchall()
    con.close()
    assert sql.endswith("WHERE filename IS NOT NULL")


def test_a_table_of_someone_else_s_beside_ours_is_left_alone(cache_dir: Path) -> None:
    """A table no statement of ours reads or writes (with its own index) runs nothing inside them: kept."""
    run_kernel([DEFINE, "ARGS = [1]", CALL], cache_dir, seed=1)
    con = sqlite3.connect(str(cache_dir / "cache.db"), isolation_level=None)
    con.execute("CREATE TABLE notes (n)")
    con.execute("CREATE INDEX notes_n ON notes(abs(n))")
    con.close()
    second = run_kernel([DEFINE, "ARGS = [1, 2]", CALL], cache_dir, seed=2)
    assert second["v"] == [2, 4] and second["info"] == [1, 1] and not second["_warnings"], second
    assert not list(cache_dir.glob("cache.db.damaged-*"))


# -- another program holding the index's write lock ----------------------------------------------------------

LOCKED_DEFINE = """
import warnings
from notebook_memo import memo, StorageWarning

@memo
def small(x):
    return x * 2

@memo
def big(x):
    return bytes(200_000) + bytes([x])
"""

# Far beyond the bounded wait (5 s, twice at most): reaching it means a call waited diskcache's minute.
LOCKED_KERNEL_S = 45


def _kernel(cells: list[str], cache_dir: Path, seed: int) -> dict[str, Any]:
    """Run notebook cells in a fresh process, as ``run_kernel``, failing once it passes LOCKED_KERNEL_S."""
    env = {**os.environ, "PYTHONHASHSEED": str(seed), "NOTEBOOK_MEMO_DIR": str(cache_dir),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    try:
        proc = subprocess.run([sys.executable, "-c", _KERNEL, json.dumps(cells)], capture_output=True, text=True,
                              env=env, timeout=LOCKED_KERNEL_S, cwd=str(cache_dir.parent))
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the kernel still waited after {LOCKED_KERNEL_S} s: {exc.stderr!r}") from None
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[len("RESULT"):])  # type: ignore[no-any-return]
    raise AssertionError(f"kernel process failed:\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")


def _stored(cache_dir: Path) -> None:
    out = _kernel([LOCKED_DEFINE, "OUT['v'] = [small(0), len(big(0))]"], cache_dir, seed=1)
    assert out["v"] == [0, 200_001] and not out["_warnings"], out


def test_invalidate_while_another_program_holds_the_write_lock_warns_and_returns_false(cache_dir: Path) -> None:
    _stored(cache_dir)
    with write_locked(cache_dir):
        # Before, diskcache's Timeout reached the notebook after a minute (here: past the kernel's limit).
        out = _kernel([LOCKED_DEFINE, "OUT['gone'] = small.invalidate(0)"], cache_dir, seed=2)
    assert out["gone"] is False
    assert len(out["_warnings"]) == 1 and "write lock" in out["_warnings"][0], out["_warnings"]
    # Nothing was deleted; once the lock is free it is.
    again = _kernel([LOCKED_DEFINE, "OUT['gone'] = small.invalidate(0); OUT['info'] = list(small.cache_info()[:3])"],
                    cache_dir, seed=3)
    assert again["gone"] is True and again["info"] == [0, 0, 0] and not again["_warnings"], again


def test_clear_while_another_program_holds_the_write_lock_warns_and_deletes_nothing(cache_dir: Path) -> None:
    _stored(cache_dir)
    with write_locked(cache_dir):
        out = _kernel([LOCKED_DEFINE, "OUT['n'] = [big.clear(), small.cache_clear()]"], cache_dir, seed=2)
    assert out["n"] == [0, 0]
    assert out["_warnings"] and all("write lock" in w for w in out["_warnings"]), out["_warnings"]
    again = _kernel([LOCKED_DEFINE, "OUT['n'] = [big.clear(), small.clear()]"], cache_dir, seed=3)
    assert again["n"] == [1, 1] and not again["_warnings"], again


def test_a_large_result_while_another_program_holds_the_write_lock_is_returned_unstored(cache_dir: Path) -> None:
    _stored(cache_dir)
    with write_locked(cache_dir):
        # A quick result first (the background thread commits it), then a large one written by the caller's thread:
        # before, the large one waited for the first's commit and then for its own, a minute each.
        out = _kernel([LOCKED_DEFINE, "OUT['v'] = [small(1), len(big(1)), small(0), len(big(0))]"], cache_dir, seed=2)
    assert out["v"] == [2, 200_001, 0, 200_001]
    assert len(out["_warnings"]) == 1 and "not being stored" in out["_warnings"][0], out["_warnings"]
    assert "write lock" in out["_warnings"][0]
    again = _kernel([LOCKED_DEFINE, "OUT['v'] = len(big(1)); OUT['info'] = list(big.cache_info()[:3])"],
                    cache_dir, seed=3)
    assert again["v"] == 200_001 and again["info"] == [0, 1, 2], again  # computed again, and stored now
