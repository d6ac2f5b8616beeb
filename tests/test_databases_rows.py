"""SQLite databases read through a global handle, compared by their rows (``_databases``): what else a query reads.

A row's implicit rowid (also where a column takes the name ``rowid``) and the header's values a query reads
(``PRAGMA user_version``, ``application_id``) are part of what is compared, so another process changing one alone
makes the call recompute after a restart, as do NULL made '', 0 made 0.0 and a text made a blob; ``sqlite_sequence``
and a WITHOUT ROWID table are covered, and a table whose columns take every name of its rowid is compared byte for
byte. A file replaced by another holding the same still hits, and so does a diskcache store the first kernel made
(diskcache replaces its settings rows, with new rowids, every time it opens).

A diskcache item set with ``expire=`` is served by ``get`` only while the clock is before its ``expire_time``, and
its row stays as it was when it expires: the run's condition holds only until the clock reaches it, in the same
kernel and after a restart, while an item expiring an hour later leaves the store hitting. A store past the digest
limit is compared by its files' signatures, the clock still counting. A large value diskcache keeps in a file of its
own, changed in place or replaced under its name, and an attached database another process changed, recompute.

A connection with a temporary table or view, or in a transaction, reads what no file holds: read fresh, with a
warning. Its row and text factories shape what it returns: keyed, and never applied to the library's own queries.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from notebook_memo import MemoWarning
from tests.conftest import RUNS_SETUP, Shell, run_kernel


def _expire_time(folder: Path, key: str) -> float:
    """Return the expire_time diskcache wrote for ``key`` in ``folder``/dc (read without writing anything)."""
    uri = f"file:{folder / 'dc' / 'cache.db'}?mode=ro"
    connection = sqlite3.connect(uri, uri=True)
    try:
        row = connection.execute("select expire_time from Cache where key = ?", (key,)).fetchone()
    finally:
        connection.close()
    return float(row[0])


def _open_store(folder: Path) -> None:
    """Make the store ``folder``/dc in another process, as an earlier session of the notebook did."""
    subprocess.run([sys.executable, "-c", f"import diskcache; diskcache.Cache({str(folder / 'dc')!r}).close()"],
                   check=True)


def _until_past(moment: float) -> None:
    while time.time() <= moment + 0.05:
        time.sleep(0.05)


# -- a diskcache item that expires ---------------------------------------------------------------------------------

_TOKEN = """
import diskcache
CACHE = diskcache.Cache("dc")

@memo
def token():
    ran("token")
    return CACHE.get("token", "EXPIRED")
"""
_CALL = 'OUT["v"] = token(); OUT["runs"] = dict(RUNS)'


def test_a_diskcache_item_recomputes_after_a_restart_once_it_expired(cache_dir: Path) -> None:
    folder = cache_dir.parent
    _open_store(folder)
    first = run_kernel([RUNS_SETUP, _TOKEN, 'CACHE.set("token", "abc", expire=2)', _CALL], cache_dir, seed=1)
    assert (first["v"], first["runs"]) == ("abc", {"token": 1})
    _until_past(_expire_time(folder, "token"))
    later = run_kernel([RUNS_SETUP, _TOKEN, _CALL], cache_dir, seed=2)
    assert (later["v"], later["runs"]) == ("EXPIRED", {"token": 1})
    again = run_kernel([RUNS_SETUP, _TOKEN, _CALL], cache_dir, seed=3)  # expired before that run: it holds now
    assert (again["v"], again["runs"]) == ("EXPIRED", {}), again["_warnings"]


def test_a_diskcache_the_first_kernel_made_with_an_item_expiring_later_hits_after_a_restart(cache_dir: Path) -> None:
    """Guard: diskcache replaces its settings rows as it opens (new rowids, another order the first time), and an
    item that expires in an hour leaves the result good until then."""
    first = run_kernel([RUNS_SETUP, _TOKEN, 'CACHE.set("token", "abc", expire=3600)', _CALL], cache_dir, seed=1)
    assert (first["v"], first["runs"]) == ("abc", {"token": 1})
    for seed in (2, 3):
        again = run_kernel([RUNS_SETUP, _TOKEN, _CALL], cache_dir, seed=seed)
        assert (again["v"], again["runs"]) == ("abc", {}), again["_warnings"]


def test_a_diskcache_item_recomputes_in_the_same_kernel_once_it_expired(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _open_store(tmp_path)
    shell.run(RUNS_SETUP)
    shell.run(_TOKEN)
    shell.run('import time; CACHE.set("token", "abc", expire=2); SET_AT = time.time()')
    assert shell.run("token()") == "abc"
    assert shell.run("token()") == "abc"
    assert shell.run("RUNS['token']") == 1
    _until_past(shell.run("SET_AT") + 2)  # no read of the store here: what diskcache wrote, it wrote before
    assert shell.run("token()") == "EXPIRED"
    assert shell.run("RUNS['token']") == 2


# -- what else a query reads: the rowid, the header ------------------------------------------------------------

_WAL_CELLS = [RUNS_SETUP, """
import sqlite3
C = sqlite3.connect("w.db")

@memo
def read(query):
    ran("read")
    return C.execute(query).fetchall()
""", 'OUT["v"] = read(QUERY); OUT["runs"] = dict(RUNS)']


def _database(folder: Path, *statements: str) -> None:
    """Make ``folder``/w.db in WAL mode with ``statements`` run in it, by another process."""
    script = ("import sqlite3, sys\nc = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
              "c.execute('pragma journal_mode=wal')\nfor s in sys.argv[2:]: c.execute(s)\nc.close()")
    subprocess.run([sys.executable, "-c", script, str(folder / "w.db"), *statements], check=True)


def _read_in_kernels(cache_dir: Path, query: str, change: tuple[str, ...]) -> list[dict[str, object]]:
    """Run ``query`` in two kernels, let another process run ``change``, then run it in a third; return all three."""
    cells = [*_WAL_CELLS[:2], f"QUERY = {query!r}", _WAL_CELLS[2]]
    out = [run_kernel(cells, cache_dir, seed=seed) for seed in (1, 2)]
    _database(cache_dir.parent, *change)
    return [*out, run_kernel(cells, cache_dir, seed=3)]


@pytest.mark.parametrize(("create", "query", "change"), [
    (("create table t(name text)", "insert into t values ('a'), ('b')"), "select rowid, name from t",
     ("update t set rowid = rowid + 100",)),
    (("create table t(rowid text, name text)", "insert into t values ('x', 'a')"), "select _rowid_, name from t",
     ("update t set _rowid_ = 7",)),
    (("create table t(name text)",), "pragma user_version", ("pragma user_version = 7",)),
    (("create table t(name text)",), "pragma application_id", ("pragma application_id = 1234",)),
    (("create table t(id integer primary key autoincrement, name text)", "insert into t(name) values ('a')"),
     "select seq from sqlite_sequence", ("insert into t(name) values ('b')", "delete from t where name = 'b'")),
    (("create table t(k text primary key, v) without rowid", "insert into t values ('a', 1)"), "select * from t",
     ("update t set v = 2",)),
    (("create table t(v)", "insert into t values (NULL)"), "select v from t", ("update t set v = ''",)),
    (("create table t(v)", "insert into t values (0)"), "select v from t", ("update t set v = 0.0",)),
    (("create table t(v)", "insert into t values ('a')"), "select v from t", ("update t set v = cast('a' as blob)",)),
], ids=["rowid", "rowid-named-column", "user_version", "application_id", "sqlite_sequence", "without-rowid",
        "null-to-empty", "int-to-real", "text-to-blob"])
def test_a_global_sqlite_connection_recomputes_when_what_a_query_reads_changes(
        cache_dir: Path, create: tuple[str, ...], query: str, change: tuple[str, ...]) -> None:
    _database(cache_dir.parent, *create)
    first, second, third = _read_in_kernels(cache_dir, query, change)
    assert (first["runs"], second["runs"]) == ({"read": 1}, {}), second["_warnings"]
    assert third["runs"] == {"read": 1}
    assert repr(third["v"]) != repr(first["v"])  # 0.0 == 0, but not as text


def test_a_database_replaced_by_another_with_the_same_rows_and_header_still_hits(cache_dir: Path) -> None:
    """Guard: another file (a copy made anew) holding what the first held is the same to every query."""
    folder = cache_dir.parent
    made = ("create table t(name text)", "insert into t values ('a'), ('b')", "pragma user_version = 3")
    _database(folder, *made)
    cells = [*_WAL_CELLS[:2], "QUERY = 'select rowid, name from t'", _WAL_CELLS[2]]
    assert run_kernel(cells, cache_dir, seed=1)["runs"] == {"read": 1}
    for name in ("w.db", "w.db-wal", "w.db-shm"):
        (folder / name).unlink(missing_ok=True)
    _database(folder, *made)
    again = run_kernel(cells, cache_dir, seed=2)
    assert again["runs"] == {}, again["_warnings"]


# -- neighbours: values in files of their own, attached databases, the connection's own state, a large database ---

_BIG = """
import diskcache
CACHE = diskcache.Cache("dc")

@memo
def big():
    ran("big")
    return len(CACHE.get("big") or b""), (CACHE.get("big") or b"")[:1]
"""


def _value_file(folder: Path) -> Path:
    (found,) = [path for path in (folder / "dc").rglob("*.val")]
    return found


@pytest.mark.parametrize("how", ["in place", "replaced"])
def test_a_large_diskcache_value_kept_in_a_file_of_its_own_changed_under_its_name_recomputes(
        cache_dir: Path, how: str) -> None:
    folder = cache_dir.parent
    _open_store(folder)
    cells = [RUNS_SETUP, _BIG, 'OUT["v"] = big(); OUT["runs"] = dict(RUNS)']
    first = run_kernel([*cells[:2], 'CACHE.set("big", b"a" * 100_000)', cells[2]], cache_dir, seed=1)
    assert first["runs"] == {"big": 1}
    assert run_kernel(cells, cache_dir, seed=2)["runs"] == {}
    value = _value_file(folder)
    if how == "in place":
        with open(value, "r+b") as fh:
            fh.write(b"b")
    else:
        other = value.with_name("other")
        other.write_bytes(b"c" * 100_000)
        other.replace(value)
    changed = run_kernel(cells, cache_dir, seed=3)
    assert changed["runs"] == {"big": 1}
    assert changed["v"] != first["v"]


def test_an_attached_database_another_process_changed_recomputes(cache_dir: Path) -> None:
    folder = cache_dir.parent
    _database(folder, "create table t(v)")
    other = sqlite3.connect(folder / "o.db")
    other.execute("create table u(v)")
    other.execute("insert into u values ('AAAA')")
    other.commit()
    other.close()
    cells = [*_WAL_CELLS[:2], "C.execute(\"attach 'o.db' as o\"); QUERY = 'select v from o.u'", _WAL_CELLS[2]]
    assert [run_kernel(cells, cache_dir, seed=s)["runs"] for s in (1, 2)] == [{"read": 1}, {}]
    other = sqlite3.connect(folder / "o.db")
    other.execute("update u set v = 'BBBB'")
    other.commit()
    other.close()
    changed = run_kernel(cells, cache_dir, seed=3)
    assert (changed["v"], changed["runs"]) == ([["BBBB"]], {"read": 1})


@pytest.mark.parametrize("state", ["temp table", "open transaction"])
def test_a_global_connection_that_sees_what_no_file_holds_is_read_fresh(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state: str) -> None:
    monkeypatch.chdir(tmp_path)
    _database(tmp_path, "create table t(v)", "insert into t values (1)")
    shell.run(RUNS_SETUP)
    shell.run(_WAL_CELLS[1])
    table = "temp.x" if state == "temp table" else "t"
    if state == "temp table":
        shell.run("C.execute('create temp table x(v)'); C.execute('insert into x values (1)'); C.commit()")
    shell.run(f"QUERY = 'select v from {table}'")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert shell.run("read(QUERY)") == [(1,)]
        # uncommitted, only C sees it; a temporary table's row, committed, is still in no file
        shell.run(f"C.execute('insert into {table} values (2)')" + ("; C.commit()" if state == "temp table" else ""))
        assert shell.run("read(QUERY)") == [(1,), (2,)]
    assert any(issubclass(w.category, MemoWarning) for w in caught)


def test_a_diskcache_past_the_digest_limit_still_recomputes_once_an_item_expired(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Compared by its files' signatures, not its rows (reading it would take too long): the clock still counts."""
    from notebook_memo import _conditions

    monkeypatch.setattr(_conditions, "FILE_DIGEST_LIMIT", 1024)
    monkeypatch.chdir(tmp_path)
    _open_store(tmp_path)
    shell.run(RUNS_SETUP)
    shell.run(_TOKEN)
    shell.run('import time; CACHE.set("token", "abc", expire=2); SET_AT = time.time()')
    assert shell.run("token()") == "abc"
    assert shell.run("token()") == "abc"
    assert shell.run("RUNS['token']") == 1
    _until_past(shell.run("SET_AT") + 2)  # no read of the store here: what diskcache wrote, it wrote before
    assert shell.run("token()") == "EXPIRED"
    assert shell.run("RUNS['token']") == 2
    subprocess.run([sys.executable, "-c", "import diskcache; diskcache.Cache('dc')['token'] = 'new'"], check=True)
    assert shell.run("token()") == "new"


@pytest.mark.parametrize(("setting", "expected"), [
    ("C.row_factory = lambda cursor, row: row[0]", ["a"]),
    ("def by_name(cursor, row):\n    return {d[0]: v for d, v in zip(cursor.description, row)}\n"
     "C.row_factory = by_name", [{"v": "a"}]),
    ("C.text_factory = bytes", [(b"a",)]),
])
def test_a_global_connection_s_row_and_text_factories_are_keyed(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str, expected: list[object]) -> None:
    """What a query returns through the connection depends on them: set between two calls, the second recomputes;
    and the library's own look at the connection is not shaped by them."""
    monkeypatch.chdir(tmp_path)
    _database(tmp_path, "create table t(v)", "insert into t values ('a')")
    shell.run(RUNS_SETUP)
    shell.run(_WAL_CELLS[1])
    shell.run("QUERY = 'select v from t'")
    assert shell.run("read(QUERY)") == [("a",)]
    shell.run(setting)
    assert shell.run("read(QUERY)") == expected
    assert shell.run("RUNS['read']") == 2
    shell.run("read(QUERY)")
    assert shell.run("RUNS['read']") == 2  # set as it was: a hit


def test_a_global_connection_with_a_temporary_view_is_read_fresh(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A temporary view is the connection's too: defined anew, it reads other rows from the same files."""
    monkeypatch.chdir(tmp_path)
    _database(tmp_path, "create table t(v)", "insert into t values (1)")
    shell.run(RUNS_SETUP)
    shell.run(_WAL_CELLS[1])
    shell.run("C.execute('create temp view w as select v from t'); QUERY = 'select * from w'")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        assert shell.run("read(QUERY)") == [(1,)]
        shell.run("C.execute('drop view w'); C.execute('create temp view w as select v * 10 from t')")
        assert shell.run("read(QUERY)") == [(10,)]


def test_a_global_connection_given_sqlite3_row_as_its_factory_after_a_call_recomputes(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _database(tmp_path, "create table t(v)", "insert into t values ('a')")
    shell.run(RUNS_SETUP)
    shell.run(_WAL_CELLS[1])
    assert shell.run("read('select v from t')") == [("a",)]
    shell.run("C.row_factory = sqlite3.Row")
    with warnings.catch_warnings(record=True):  # a Row cannot be pickled: not stored, with a warning
        warnings.simplefilter("always")
        got = shell.run("read('select v from t')")
    assert type(got[0]) is sqlite3.Row and got[0]["v"] == "a"
    assert shell.run("RUNS['read']") == 2


def test_a_table_whose_columns_take_every_name_of_its_rowid_is_compared_byte_for_byte(cache_dir: Path) -> None:
    """Its rowid cannot be read by name, yet orders its rows: the database falls back to its bytes, and a change
    is seen."""
    folder = cache_dir.parent
    _database(folder, "create table t(rowid, _rowid_, oid, v)", "insert into t values (1, 2, 3, 'a')")
    cells = [*_WAL_CELLS[:2], "QUERY = 'select v from t'", _WAL_CELLS[2]]
    assert run_kernel(cells, cache_dir, seed=1)["runs"] == {"read": 1}
    _database(folder, "update t set v = 'b'")
    changed = run_kernel(cells, cache_dir, seed=2)
    assert (changed["v"], changed["runs"]) == ([["b"]], {"read": 1})
