"""SQLite reads through a global connection whose answers depend on more than the rows of its files.

A function, aggregate, window function or collation registered on the connection in Python (``create_function``...)
runs the notebook's code inside the query, which no key holds and SQLite cannot list: the result is read fresh on
every call, with a warning, whether it was registered before the run or by the body. A connection with none keeps
hitting.

A body that changes such a connection and leaves it so (attaches a database, sets a pragma, makes a temporary table,
leaves a transaction open, closes it) is not stored, with a warning: a hit would not change it again, and later code
may rely on it.

SQL in the code's texts that reads SQLite's clock (``datetime('now')``, ``CURRENT_TIMESTAMP``, ``julianday()``), draws
its random values (``random()``, ``randomblob(n)``) or reads what a connection last did (``last_insert_rowid()``)
makes a result that goes stale or is random, as the clock and ``os.urandom`` do in Python: cached, with one warning.
"""

from __future__ import annotations

import sqlite3
import warnings
from pathlib import Path

import pytest

from notebook_memo import MemoWarning
from tests.conftest import RUNS_SETUP, Shell, run_kernel

_READ = """
import sqlite3
C = sqlite3.connect("d.db")

@memo
def read(query):
    ran("read")
    return C.execute(query).fetchall()
"""


def _database(folder: Path) -> None:
    """Make ``folder``/d.db with a table t of the values 1 and 2."""
    connection = sqlite3.connect(folder / "d.db")
    connection.execute("create table t(x)")
    connection.execute("insert into t values (1), (2)")
    connection.commit()
    connection.close()


def _calls(shell: Shell, cells: list[str]) -> tuple[list[object], list[warnings.WarningMessage]]:
    """Run ``cells``, returning what each returned and the warnings they gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = [shell.run(cell) for cell in cells]
    return results, caught


_AGGREGATE = """
class Total:
    def __init__(self): self.total = 0
    def step(self, x): self.total += x * K
    def finalize(self): return self.total
"""
_WINDOW = """
class Running:
    def __init__(self): self.total = 0
    def step(self, x): self.total += x * K
    def inverse(self, x): self.total -= x * K
    def value(self): return self.total
    def finalize(self): return self.total
"""


@pytest.mark.parametrize(("register", "query", "first", "second"), [
    ("K = 10\nC.create_function('score', 1, lambda x: x * K)", "select sum(score(x)) from t", [(30,)], [(-300,)]),
    (_AGGREGATE + "K = 1\nC.create_aggregate('total', 1, Total)", "select total(x) from t", [(3,)], [(-30,)]),
    (_WINDOW + "K = 1\nC.create_window_function('running', 1, Running)",
     "select running(x) over (order by x) from t", [(1,), (3,)], [(-10,), (-30,)]),
    ("K = 1\nC.create_collation('by_k', lambda a, b: K * ((a > b) - (a < b)))",
     "select x from t order by cast(x as text) collate by_k", [(1,), (2,)], [(2,), (1,)]),
    ("K = 10\nC.create_function('lower', 1, lambda x: x * K)", "select sum(lower(x)) from t", [(30,)], [(-300,)]),
], ids=["function", "aggregate", "window", "collation", "over-a-builtin"])
def test_a_global_connection_with_python_code_registered_on_it_is_read_fresh(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, register: str, query: str,
        first: list[object], second: list[object]) -> None:
    """What the registered code reads (``K``) changes between two calls: the second computes anew, with a warning
    that the result is not stored."""
    monkeypatch.chdir(tmp_path)
    _database(tmp_path)
    shell.run(RUNS_SETUP)
    shell.run(_READ)
    shell.run(register)
    shell.run(f"QUERY = {query!r}")
    (got_first, _, got_second), caught = _calls(shell, ["read(QUERY)", "K = -10 * K", "read(QUERY)"])
    assert (got_first, got_second) == (first, second)
    assert shell.run("RUNS['read']") == 2
    assert any(issubclass(w.category, MemoWarning) and "registered" in str(w.message) for w in caught)


def test_a_function_registered_anew_under_its_name_is_run_anew(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _database(tmp_path)
    shell.run(RUNS_SETUP)
    shell.run(_READ)
    shell.run("C.create_function('score', 1, lambda x: x * 10)")
    (first, _, second), _ = _calls(shell, ["read('select sum(score(x)) from t')",
                                           "C.create_function('score', 1, lambda x: x * 1000)",
                                           "read('select sum(score(x)) from t')"])
    assert (first, second) == ([(30,)], [(3000,)])


def test_a_function_the_body_registers_on_a_global_connection_is_read_fresh(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Registered by the body itself, it stays on the connection: a later call (a hit in another kernel) would
    find it there with whatever code the notebook gave it since."""
    monkeypatch.chdir(tmp_path)
    _database(tmp_path)
    shell.run(RUNS_SETUP)
    shell.run(_READ)
    shell.run("""
    K = 10
    @memo
    def scored():
        ran("scored")
        C.create_function('score', 1, lambda x: x * K)
        return C.execute('select sum(score(x)) from t').fetchall()
    """)
    (first, _, second), caught = _calls(shell, ["scored()", "K = 100", "scored()"])
    assert (first, second) == ([(30,)], [(300,)])
    assert any(issubclass(w.category, MemoWarning) and "registered" in str(w.message) for w in caught)


def test_a_cell_reading_a_global_connection_with_a_registered_function_is_run_each_time(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _database(tmp_path)
    shell.run("%load_ext notebook_memo")
    shell.run("import sqlite3\nC = sqlite3.connect('d.db')\nK = 10\nC.create_function('score', 1, lambda x: x * K)")
    shell.run("def total():\n    return C.execute('select sum(score(x)) from t').fetchone()[0]")
    cell = "%%memo\ny = total()"
    _, caught = _calls(shell, [cell, "K = 100", cell])
    assert shell.run("y") == 300
    assert any(issubclass(w.category, MemoWarning) and "registered" in str(w.message) for w in caught)


def test_a_batch_reading_a_global_connection_with_a_registered_function_is_computed_each_time(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _database(tmp_path)
    shell.run(RUNS_SETUP)
    shell.run("""
    import sqlite3
    C = sqlite3.connect("d.db")
    K = 10
    C.create_function('score', 1, lambda x: x * K)

    @memo.batch("xs", progress=False)
    def scores(xs):
        return [C.execute('select score(?)', (x,)).fetchone()[0] for x in xs]
    """)
    (first, _, second), caught = _calls(shell, ["scores([1, 2])", "K = 100", "scores([1, 2])"])
    assert (first, second) == ([10, 20], [100, 200])
    assert any(issubclass(w.category, MemoWarning) and "registered" in str(w.message) for w in caught)


def test_a_global_connection_with_nothing_registered_still_hits(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Guard: SQLite's own functions (and those it was built with, such as fts5's) are no code of the notebook's."""
    monkeypatch.chdir(tmp_path)
    _database(tmp_path)
    shell.run(RUNS_SETUP)
    shell.run(_READ)
    query = "select sum(abs(x)), lower('A') from t order by 1 collate nocase"
    (first, second), caught = _calls(shell, [f"read({query!r})", f"read({query!r})"])
    assert first == second == [(3, "a")]
    assert shell.run("RUNS['read']") == 1
    assert not [w for w in caught if issubclass(w.category, MemoWarning)]


@pytest.mark.parametrize(("change", "undo"), [
    ("C.execute(\"attach 'o.db' as o\")", "C.execute('detach o')"),
    ("C.execute('pragma foreign_keys = on')", "C.execute('pragma foreign_keys = off')"),
    ("C.execute('pragma case_sensitive_like = on')", "C.execute('pragma case_sensitive_like = off')"),
    ("C.execute('create temp table scratch(v)')", "C.execute('drop table temp.scratch')"),
    ("C.execute('insert into t values (3)')", "C.rollback()"),
    ("C.row_factory = lambda cursor, row: row[0]", "C.row_factory = None"),
], ids=["attach", "pragma", "case-sensitive-like", "temporary-table", "open-transaction", "row-factory"])
def test_a_body_that_changes_a_global_connection_and_leaves_it_so_runs_again(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str, undo: str) -> None:
    """The notebook undoes the change between two calls: the second call makes it again, as the body does."""
    monkeypatch.chdir(tmp_path)
    _database(tmp_path)
    shell.run(RUNS_SETUP)
    shell.run(f"""
    import sqlite3
    C = sqlite3.connect("d.db")

    @memo
    def prepare():
        ran("prepare")
        {change}
        return C.execute('select count(*) from t').fetchall()
    """)
    snapshot = ("(C.execute('pragma database_list').fetchall()[2:], C.execute('pragma foreign_keys').fetchone(), "
                "C.execute(\"select 'a' like 'A'\").fetchone(), C.in_transaction, C.row_factory is None, "
                "C.execute('select count(*) from temp.sqlite_master').fetchone())")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shell.run("prepare()")
        changed = shell.run(snapshot)
        shell.run(undo)
        shell.run("prepare()")
        again = shell.run(snapshot)
    assert shell.run("RUNS['prepare']") == 2
    assert again == changed
    assert any(issubclass(w.category, MemoWarning) and "'C'" in str(w.message) for w in caught)


def test_a_body_that_closes_a_global_connection_is_not_stored(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _database(tmp_path)
    shell.run(RUNS_SETUP)
    shell.run("""
    import sqlite3
    C = sqlite3.connect("d.db")

    @memo
    def last():
        ran("last")
        rows = C.execute('select count(*) from t').fetchall()
        C.close()
        return rows
    """)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        shell.run("last()")
        shell.run("C = sqlite3.connect('d.db')")
        shell.run("last()")
    assert shell.run("RUNS['last']") == 2
    with pytest.raises(AssertionError, match="ProgrammingError"):
        shell.run("C.execute('select 1')")  # closed by the second run too, as the body does


def test_a_body_that_only_reads_a_global_connection_still_hits(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Guard: reading runs no pragma that sets anything, nor leaves a transaction open."""
    monkeypatch.chdir(tmp_path)
    _database(tmp_path)
    shell.run(RUNS_SETUP)
    shell.run(_READ)
    shell.run("C.execute(\"attach 'o.db' as o\"); C.execute('pragma foreign_keys = on')")
    (first, second, third), caught = _calls(shell, ["read('pragma foreign_keys')", "read('select count(*) from t')",
                                                    "read('select count(*) from t')"])
    assert (first, second, third) == ([(1,)], [(2,)], [(2,)])
    assert shell.run("RUNS['read']") == 2
    assert not [w for w in caught if issubclass(w.category, MemoWarning)]


def test_a_cell_whose_helper_attaches_a_database_on_a_global_connection_runs_each_time(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _database(tmp_path)
    shell.run("%load_ext notebook_memo")
    shell.run("import sqlite3\nC = sqlite3.connect('d.db')")
    shell.run("def prepare():\n    C.execute(\"attach 'o.db' as o\")\n    return 1")
    cell = "%%memo\ny = prepare()"
    attached = "[row[1] for row in C.execute('pragma database_list')]"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shell.run(cell)
        shell.run("C.execute('detach o')")
        shell.run(cell)
    assert shell.run(attached) == ["main", "temp", "o"]
    assert any(issubclass(w.category, MemoWarning) and "'C'" in str(w.message) for w in caught)


def _warnings_of(shell: Shell, definition: str, call: str) -> list[str]:
    """Define and call a memoized function; return the texts of the MemoWarnings given."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shell.run(definition)
        shell.run(call)
    return [str(w.message) for w in caught if issubclass(w.category, MemoWarning)]


@pytest.mark.parametrize("query", ["select datetime('now')", "SELECT CURRENT_TIMESTAMP", "select current_date",
                                   "select julianday('now') - julianday(x) from t", "select julianday()",
                                   "select strftime('%s', 'now')", "select strftime('%Y')",
                                   "select unixepoch('NOW', '-1 day')",
                                   "f'select {COLUMN} from t where julianday(x) < julianday(\\'now\\')'"])
def test_sql_reading_sqlite_s_clock_warns_as_the_clock_does(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, query: str) -> None:
    monkeypatch.chdir(tmp_path)
    _database(tmp_path)
    shell.run(RUNS_SETUP)
    said = _warnings_of(shell, f"""
    import sqlite3
    C = sqlite3.connect("d.db")

    COLUMN = "x"

    @memo
    def stamp():
        return C.execute({query if query.startswith("f'") else repr(query)}).fetchall()
    """, "stamp()")
    assert any("reads the clock" in text and "ttl=" in text and "in SQL" in text for text in said), said
    assert "in SQL" in str(shell.run("stamp.explain()"))


@pytest.mark.parametrize(("query", "said"), [
    ("select random()", "random values (random("), ("select hex(randomblob(8))", "random values (randomblob("),
    ("select last_insert_rowid()", "what a connection last did (last_insert_rowid())"),
    ("select changes(), total_changes()", "what a connection last did (changes())"),
])
def test_sql_drawing_sqlite_s_random_values_or_reading_its_last_changes_warns(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, query: str, said: str) -> None:
    monkeypatch.chdir(tmp_path)
    _database(tmp_path)
    shell.run(RUNS_SETUP)
    texts = _warnings_of(shell, f"""
    import sqlite3
    C = sqlite3.connect("d.db")

    @memo
    def drawn():
        return C.execute({query!r}).fetchall()
    """, "drawn()")
    assert any(said in text for text in texts), texts


def test_a_cell_whose_own_sql_draws_random_values_warns(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _database(tmp_path)
    shell.run("%load_ext notebook_memo")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shell.run("%%memo\nimport sqlite3\ny = sqlite3.connect('d.db').execute('select random()').fetchone()")
    assert any("random values" in str(w.message) for w in caught)


def test_sql_naming_no_clock_nor_random_function_does_not_warn(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Guard: a date given, 'now' as a value, and random() in a text that is no SQL (a docstring) read nothing."""
    monkeypatch.chdir(tmp_path)
    _database(tmp_path)
    shell.run(RUNS_SETUP)
    said = _warnings_of(shell, """
    import sqlite3
    C = sqlite3.connect("d.db")

    @memo
    def plain():
        "Rows, not random() ones."
        C.execute("select date('2020-01-01'), strftime('%Y', '2020-01-01'), datetime(x, 'unixepoch') from t")
        return C.execute("select x from t where 'now' != 'today' order by x").fetchall()
    """, "plain()")
    assert said == []


def test_plain_selects_through_a_global_connection_still_hit_after_a_restart(cache_dir: Path) -> None:
    """Guard: the settings read around a run, and the functions listed, leave a plain reader stored; a kernel that
    sets a pragma before the call hits as well."""
    _database(cache_dir.parent)
    cells = [RUNS_SETUP, _READ, "C.execute('pragma foreign_keys = on')",
             'OUT["v"] = read("select sum(x), date(\'2020-01-01\') from t"); OUT["runs"] = dict(RUNS)']
    first = run_kernel(cells, cache_dir, seed=1)
    assert (first["v"], first["runs"]) == ([[3, "2020-01-01"]], {"read": 1}), first["_warnings"]
    again = run_kernel(cells, cache_dir, seed=2)
    assert (again["v"], again["runs"]) == ([[3, "2020-01-01"]], {}), again["_warnings"]
