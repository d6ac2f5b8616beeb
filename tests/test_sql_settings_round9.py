"""What a global SQLite connection is set to between two calls of a body that queries it.

A function or collation registered after a result was stored (one overriding SQLite's own ``upper`` or ``NOCASE``
included), an authorizer installed, or ``PRAGMA case_sensitive_like`` set (which registers LIKE anew) changes what
the same query returns from the same rows: the next call computes anew, and since Python code now runs inside the
queries, or the pragma cannot be read back, its result is not stored, with a warning. A pragma that changes what
queries answer and can be read back (``reverse_unordered_selects``, ``foreign_keys``, ``full_column_names``) is
keyed: the next call, a function's or a cell's, computes anew and is stored, as it is once sqlite3's converters or
adapters are registered anew. A text factory is keyed by its code and what that reads. A connection whose settings
do not change, or change only in how it waits and caches, keeps hitting.
"""

from __future__ import annotations

import sqlite3
import warnings
from pathlib import Path

import pytest

from notebook_memo import MemoWarning
from tests.conftest import RUNS_SETUP, Shell

_READ = """
import sqlite3
C = sqlite3.connect("d.db")

@memo
def read(query):
    ran("read")
    cursor = C.execute(query)
    return [d[0] for d in cursor.description], cursor.fetchall()
"""


def _database(folder: Path) -> None:
    """Make ``folder``/d.db with a table t of the names 'b', 'a' and 'A', and a parent and child table."""
    connection = sqlite3.connect(folder / "d.db")
    connection.execute("create table t(name)")
    connection.execute("insert into t values ('b'), ('a'), ('A')")
    connection.execute("create table p(id integer primary key)")
    connection.execute("create table c(pid references p(id))")
    connection.commit()
    connection.close()


def _twice(shell: Shell, query: str, between: str,
           before: str = "") -> tuple[object, object, list[warnings.WarningMessage]]:
    """Run ``before`` on the connection C, call read(query), run ``between``, call it again; return both results
    and the warnings given."""
    shell.run(RUNS_SETUP)
    shell.run(_READ)
    shell.run(before)
    shell.run(f"QUERY = {query!r}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = shell.run("read(QUERY)")
        shell.run(between)
        second = shell.run("read(QUERY)")
    return first, second, caught


def _fresh(shell: Shell, query: str) -> object:
    """Return what the query returns now through C, outside any memoized call."""
    return shell.run(f"(lambda cursor: ([d[0] for d in cursor.description], cursor.fetchall()))(C.execute({query!r}))")


@pytest.mark.parametrize(("query", "between"), [
    ("select upper(name) from t", "C.create_function('upper', 1, lambda s: s + '!')"),
    ("select name from t order by name collate nocase, rowid",
     "C.create_collation('nocase', lambda a, b: (b > a) - (b < a))"),
    ("select name from t", "C.set_authorizer(lambda action, table, column, *rest: sqlite3.SQLITE_IGNORE "
                           "if (action, table, column) == (sqlite3.SQLITE_READ, 't', 'name') else sqlite3.SQLITE_OK)"),
], ids=["function-over-builtin", "collation-over-builtin", "authorizer"])
def test_code_set_on_a_global_connection_after_a_call_is_run_anew_and_not_stored(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, query: str, between: str) -> None:
    monkeypatch.chdir(tmp_path)
    _database(tmp_path)
    first, second, caught = _twice(shell, query, between)
    assert second == _fresh(shell, query) != first
    assert any(issubclass(w.category, MemoWarning) and "'C'" in str(w.message) for w in caught)
    shell.run("read(QUERY)")
    assert shell.run("RUNS['read']") == 3  # not stored: its code is in no key


def test_a_builtin_collation_overridden_before_the_first_call_is_run_each_time(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite lists an overridden NOCASE under its own name: the code registered on it still runs in the query."""
    monkeypatch.chdir(tmp_path)
    _database(tmp_path)
    before = "SIGN = 1\nC.create_collation('nocase', lambda a, b: SIGN * ((a > b) - (a < b)))"
    query = "select name from t order by name collate nocase, rowid"
    first, second, caught = _twice(shell, query, "SIGN = -1", before)
    assert second == _fresh(shell, query) != first
    assert any(issubclass(w.category, MemoWarning) and "'C'" in str(w.message) for w in caught)


@pytest.mark.parametrize(("query", "between"), [
    ("select name from t", "C.execute('pragma reverse_unordered_selects = on')"),
    ("pragma foreign_keys", "C.execute('pragma foreign_keys = on')"),
    ("select * from t join t as u using (name)", "C.execute('pragma full_column_names = on'); "
                                                "C.execute('pragma short_column_names = off')"),
], ids=["reverse-unordered-selects", "foreign-keys", "full-column-names"])
def test_a_pragma_set_on_a_global_connection_after_a_call_recomputes(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, query: str, between: str) -> None:
    """The pragma is read back and keyed: the new answer is stored, and hits while the pragma stays set."""
    monkeypatch.chdir(tmp_path)
    _database(tmp_path)
    first, second, _ = _twice(shell, query, between)
    assert second == _fresh(shell, query) != first
    assert shell.run("read(QUERY)") == second
    assert shell.run("RUNS['read']") == 2


def test_case_sensitive_like_set_after_a_call_is_run_each_time_with_a_warning(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite cannot say which way PRAGMA case_sensitive_like is set, once set: read fresh, saying so."""
    monkeypatch.chdir(tmp_path)
    _database(tmp_path)
    query = "select count(*) from t where name like 'a%'"
    first, second, caught = _twice(shell, query, "C.execute('pragma case_sensitive_like = on')")
    assert second == _fresh(shell, query) != first
    shell.run("read(QUERY)")
    assert shell.run("RUNS['read']") == 3
    assert any(issubclass(w.category, MemoWarning) and "case_sensitive_like" in str(w.message) for w in caught)


def test_a_cell_reading_a_global_connection_recomputes_once_a_pragma_is_set(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _database(tmp_path)
    shell.run("%load_ext notebook_memo")
    shell.run("import sqlite3\nC = sqlite3.connect('d.db')")
    shell.run("def all_names():\n    return [row[0] for row in C.execute('select name from t')]")
    cell = "%%memo\nnames = all_names()"
    shell.run(cell)
    shell.run("C.execute('pragma reverse_unordered_selects = on')")
    shell.run(cell)
    assert shell.run("names") == ["A", "a", "b"]


def test_a_text_factory_whose_code_reads_a_global_changed_after_a_call_recomputes(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _database(tmp_path)
    before = "SUFFIX = '?'\ndef texts(b):\n    return b.decode() + SUFFIX"
    first, second, _ = _twice(shell, "select name from t", "C.text_factory = texts", before)
    assert second == _fresh(shell, "select name from t") != first
    shell.run("SUFFIX = '!'")
    assert shell.run("read(QUERY)") == _fresh(shell, "select name from t")


def test_a_global_connection_whose_settings_stay_as_they_were_still_hits(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Guard: settings that change nothing a query answers (busy_timeout, cache_size), set between calls, and a
    pragma set and set back, leave the call hitting, with no warning."""
    monkeypatch.chdir(tmp_path)
    _database(tmp_path)
    between = ("C.execute('pragma busy_timeout = 2000'); C.execute('pragma cache_size = -4000'); "
               "C.execute('pragma reverse_unordered_selects = on'); "
               "C.execute('pragma reverse_unordered_selects = off')")
    first, second, caught = _twice(shell, "select upper(name) from t order by name collate nocase", between)
    assert first == second
    assert shell.run("RUNS['read']") == 1
    assert not [w for w in caught if issubclass(w.category, MemoWarning)]


@pytest.mark.parametrize(("query", "between"), [
    ("select v from p2", "sqlite3.register_converter('point', lambda b: ('second', b))"),
    ("select typeof(?)", "sqlite3.register_adapter(Point, lambda point: 1.5)"),
], ids=["converter", "adapter"])
def test_a_converter_or_adapter_registered_anew_after_a_call_recomputes(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, query: str, between: str) -> None:
    """sqlite3's converters shape what a connection opened with ``detect_types`` reads, its adapters what a query is
    given: registered anew between two calls, the second computes anew."""
    monkeypatch.chdir(tmp_path)
    connection = sqlite3.connect(tmp_path / "d.db")
    connection.execute("create table p2(v point)")
    connection.execute("insert into p2 values ('1;2')")
    connection.commit()
    connection.close()
    shell.run(RUNS_SETUP)
    shell.run("""
    import sqlite3
    class Point:
        pass
    sqlite3.register_converter('point', lambda b: ('first', b))
    sqlite3.register_adapter(Point, lambda point: 'text')
    C = sqlite3.connect('d.db', detect_types=sqlite3.PARSE_DECLTYPES)

    @memo
    def read(query):
        ran("read")
        return C.execute(query, (Point(),) if '?' in query else ()).fetchall()
    """)
    shell.run(f"QUERY = {query!r}")
    first = shell.run("read(QUERY)")
    shell.run(between)
    second = shell.run("read(QUERY)")
    assert second == shell.run("C.execute(QUERY, (Point(),) if '?' in QUERY else ()).fetchall()") != first
    assert shell.run("read(QUERY)") == second
    assert shell.run("RUNS['read']") == 2
