"""``info`` at scale reads a facts table kept with the records, and says the same as a scan of every record.

Each write adds the record's facts (function, notebook, code version, size, compute time) in its
own transaction; a trigger deletes them with the row, whoever deletes it. A summary checks that
the table holds one row per record and reads each function's name from a verified record; when
the table is short, long or lies, it scans the records as before (and rebuilds the table).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from notebook_memo import memo
from notebook_memo._inventory import FunctionSummary, Inventory
from notebook_memo.stores import local as _store
from notebook_memo.stores.local import get_store
from tests.conftest import Shell, run_kernel, settled


def _inventory(cache_dir: Path) -> Inventory:
    return Inventory(get_store(str(cache_dir), 2**40))


def _shown(rows: list[FunctionSummary]) -> list[tuple[object, ...]]:
    return [(r.name, r.fid, r.kind, r.entries, r.versions, r.bytes, r.last_stored, round(r.compute_seconds, 6),
             r.notebook) for r in rows]


def _both(cache_dir: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    inventory = _inventory(cache_dir)
    summed = inventory.store.summaries()
    assert summed is not None, "the facts table should hold one row per record here"
    fast = inventory._from_facts(summed)
    assert fast is not None
    return _shown(fast), _shown(inventory._scanned())


def _db(cache_dir: Path) -> sqlite3.Connection:
    settled()  # the results computed so far are in the index, as other processes soon see them
    return sqlite3.connect(str(cache_dir / "cache.db"), timeout=30)


@pytest.mark.filterwarnings("ignore::notebook_memo.StaleEntriesWarning")
def test_the_summary_says_what_a_scan_says(shell: Shell, cache_dir: Path, tmp_path: Path) -> None:
    shell.run(textwrap.dedent("""
    import numpy as np
    from notebook_memo import memo

    @memo
    def square(x):
        return x * x

    @memo
    def noisy(n):
        return np.random.rand(n).sum()  # draws from the global generator: a random-state marker too

    @memo.batch("items")
    def doubled(items):
        return [2 * i for i in items]
    """))
    for i in range(30):
        shell.run(f"square({i})")
    shell.run("np.random.seed(1); noisy(3); noisy(4)")
    shell.run("doubled(list(range(25)))")
    shell.run("big = memo(lambda n: np.zeros(n))(100_000)")  # a payload file
    shell.run(textwrap.dedent("""
    @memo
    def square(x):
        return x * x + 0  # a second code version beside the first
    """))
    for i in range(5):
        shell.run(f"square({i})")
    shell.run("square.invalidate(1)")
    run_kernel(["from notebook_memo import memo\n@memo\ndef other(x):\n    return -x\nfor i in range(7): other(i)"],
               cache_dir)
    fast, scanned = _both(cache_dir)
    assert fast == scanned
    names = {row[0] for row in fast}
    assert {"__main__.square", "__main__.noisy", "__main__.doubled", "__main__.other"} <= names
    assert next(row for row in fast if row[0] == "__main__.square")[4] == 2  # versions


@pytest.mark.parametrize("returning", ["upsert returns the row ids", "SQLite before 3.35: ids read after"])
def test_each_commit_adds_one_fact_per_record_however_the_row_ids_are_learned(
        cache_dir: Path, returning: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    if returning.startswith("SQLite"):
        monkeypatch.setattr(_store, "_RETURNING", "")

    @memo(ignore=["box"])
    def value(x: int, box: list[int]) -> object:
        return np.zeros(100_000) + box[0] if x < 0 else x * box[0]  # x < 0: a payload file

    for x in range(20):
        value(x, [1])  # quick results: several to one commit
    value(-1, [1])
    value(-2, [1])
    settled()
    value.refresh(3, [2])  # a row written again in place
    value.refresh(-1, [2])  # ... and one with a payload file
    for x in range(20, 25):
        value(x, [1])
    fast, scanned = _both(cache_dir)
    assert fast == scanned and fast[0][3] == 27  # one fact for each record, from the facts table
    con = _db(cache_dir)
    facts = con.execute("SELECT count(*), count(DISTINCT id) FROM NbmRecordFacts").fetchone()
    rows = con.execute("SELECT count(*) FROM Cache WHERE rowid IN (SELECT id FROM NbmRecordFacts)").fetchone()[0]
    con.close()
    assert facts == (27, 27) and rows == 27  # each names its own row


@pytest.mark.parametrize("how", ["raw delete", "clear", "prune", "evict"])
def test_the_facts_go_with_their_rows_whoever_deletes_them(cache_dir: Path, how: str) -> None:
    @memo
    def cube(x: int) -> int:
        return x ** 3

    for i in range(40):
        cube(i)
    store = cube._store()
    if how == "raw delete":
        con = _db(cache_dir)
        with con:
            con.execute("DELETE FROM Cache WHERE rowid IN (SELECT rowid FROM Cache WHERE typeof(value) = 'blob' "
                        "ORDER BY rowid LIMIT 15)")
        con.close()
    elif how == "clear":
        cube.clear()
    elif how == "prune":
        _inventory(cache_dir).prune_keep_latest()
        for i in range(3):
            cube(i)
    else:
        store.evict_to(store.stored_bytes() // 2)
    fast, scanned = _both(cache_dir)
    assert fast == scanned


def test_an_index_without_facts_is_scanned_once_and_then_summarised(cache_dir: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    @memo
    def neg(x: int) -> int:
        return -x

    for i in range(20):
        neg(i)
    con = _db(cache_dir)
    with con:
        con.execute("DELETE FROM NbmRecordFacts")  # as an older version left it: records and no facts
    con.close()
    reads: list[str] = []
    listed = _store.listed_record

    def counted(row: str, *args: object) -> object:
        reads.append(row)
        return listed(row, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(_store, "listed_record", counted)
    inventory = _inventory(cache_dir)
    first = _shown(inventory.functions())
    assert len(reads) == 20  # scanned: every record read and checked
    reads.clear()
    assert _shown(inventory.functions()) == first
    assert len(reads) == 1  # summarised: one record read, for the function's name


@pytest.mark.parametrize("lie", ["another owner", "a row too many", "a name planted in a marker"])
def test_facts_that_do_not_match_the_records_are_not_believed(cache_dir: Path, lie: str) -> None:
    @memo
    def half(x: int) -> float:
        return x / 2

    for i in range(10):
        half(i)
    truth = _shown(_inventory(cache_dir)._scanned())
    con = _db(cache_dir)
    with con:
        if lie == "another owner":
            con.execute("UPDATE NbmRecordFacts SET fid = 'planted'")
        elif lie == "a row too many":
            con.execute("INSERT INTO NbmRecordFacts VALUES (999999, 'x', 'planted', NULL, 'c', 1, 1.0, 1.0, 0)")
        else:
            con.execute("UPDATE NbmRecordFacts SET marker = 1 WHERE key = (SELECT min(key) FROM NbmRecordFacts)")
            con.execute("UPDATE NbmRecordFacts SET marker = 0, fid = 'planted' "
                        "WHERE key = (SELECT min(key) FROM NbmRecordFacts)")
    con.close()
    assert _shown(_inventory(cache_dir).functions()) == truth


def test_cli_info_at_scale_reads_no_more_records_than_functions(cache_dir: Path, tmp_path: Path) -> None:
    fill = memo.batch("items", batch_size=512, progress=False)(lambda items: [i + 1 for i in items])
    fill(list(range(3000)))
    out = subprocess.run(
        [sys.executable, "-c", "import sys\nfrom notebook_memo import _cli\n"
         "from notebook_memo.stores import local as _store\nseen = []\n"
         "real = _store.listed_record\n_store.listed_record = lambda *a: seen.append(1) or real(*a)\n"
         "_cli.main(['info', '--dir', sys.argv[1]])\nprint('READ', len(seen))", str(cache_dir)],
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "3000" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "READ 1"


def test_many_processes_writing_leave_one_fact_per_record(cache_dir: Path, tmp_path: Path) -> None:
    script = tmp_path / "w.py"
    script.write_text(textwrap.dedent("""
    import sys
    from notebook_memo import memo

    @memo
    def tripled(x):
        return 3 * x

    for i in range(int(sys.argv[1]), 200, 3):
        tripled(i)
    """))
    env = {"NOTEBOOK_MEMO_DIR": str(cache_dir), "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    procs = [subprocess.Popen([sys.executable, str(script), str(k)], env={**os.environ, **env}) for k in range(3)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    fast, scanned = _both(cache_dir)
    assert fast == scanned and fast[0][3] == 200


def test_records_of_two_secrets_are_summarised_as_a_scan_counts_them(cache_dir: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    @memo
    def twice(x: int) -> int:
        return 2 * x

    monkeypatch.setenv("NOTEBOOK_MEMO_SECRET", "one")
    for i in range(6):
        twice(i)
    monkeypatch.setenv("NOTEBOOK_MEMO_SECRET", "two")
    for i in range(4):
        twice(i)
    fast, scanned = _both(cache_dir)
    assert fast == scanned and fast[0][3] == 10


@pytest.mark.filterwarnings("ignore::notebook_memo.StaleEntriesWarning")
def test_magic_info_counts_stale_entries_from_the_facts_as_a_scan_would(shell: Shell, cache_dir: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    shell.run(textwrap.dedent("""
    from notebook_memo import memo

    @memo
    def area(r):
        return 3 * r * r
    """))
    for r in range(12):
        shell.run(f"area({r})")
    shell.run(textwrap.dedent("""
    @memo
    def area(r):
        return 3.14 * r * r  # changed: the 12 results above are stale now
    """))
    for r in range(3):
        shell.run(f"area({r})")
    inventory = _inventory(cache_dir)
    from_facts = inventory.code_counts()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_store.Store, "code_counts", lambda self: None)  # as an index without facts
        scanned = inventory.code_counts()
    assert from_facts == scanned
    assert sorted(next(iter(scanned.values())).values()) == [3, 12]
    reads: list[str] = []
    listed = _store.listed_record
    monkeypatch.setattr(_store, "listed_record", lambda row, *a: reads.append(row) or listed(row, *a))
    table = shell.run("from notebook_memo._magics import info\ninfo()")
    assert [row.entries for row in table.rows] == [15] and list(table.stale.values()) == [12]
    assert len(reads) == 1  # the function's name; counts and stale counts come from the facts


def test_clearing_a_named_cell_reads_only_that_cells_records(shell: Shell, cache_dir: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    shell.run("%load_ext notebook_memo")
    fill = memo.batch("items", progress=False)(lambda items: [i * 2 for i in items])
    fill(list(range(500)))  # others' records in the same directory
    shell.run("%%memo versions\nv = 1")
    shell.run("%%memo versions\nv = 2")
    reads: list[str] = []
    listed = _store.listed_record
    monkeypatch.setattr(_store, "listed_record", lambda row, *a: reads.append(row) or listed(row, *a))
    shell.run("%memo clear --stale")
    shell.run("from notebook_memo._cells import cells\n_c = [c for c in cells() if c.label == 'versions'][0]")
    assert len(shell["_c"].entries()) == 1
    assert len(reads) <= 2 * 2  # the cell's two records, read by clear_stale and by entries(): not the 500


OLD_FACTS = (  # the facts table of the version before, keyed by each record row's key
    "CREATE TABLE NbmFacts (key TEXT PRIMARY KEY, fid TEXT, notebook TEXT, code TEXT, size INTEGER, "
    "duration REAL, created REAL, marker INTEGER) WITHOUT ROWID",
    "CREATE TRIGGER NbmFacts_gone AFTER DELETE ON Cache BEGIN DELETE FROM NbmFacts WHERE key = OLD.key; END",
    "DROP TRIGGER NbmRecordFacts_gone",
    "DROP TABLE NbmRecordFacts",
)


def test_an_index_with_the_first_facts_table_gets_the_new_one_and_says_the_same(cache_dir: Path) -> None:
    worker = textwrap.dedent("""
    import json, sys
    from notebook_memo import memo
    from notebook_memo._inventory import Inventory
    from notebook_memo.stores.local import get_store
    neg = memo(lambda x: -x)
    [neg(i) for i in range(int(sys.argv[1]))]
    neg.clear() if sys.argv[2] == "clear" else None
    inventory = Inventory(get_store(sys.argv[3], 2**40))
    print(json.dumps([[r.entries, r.versions, r.bytes] for r in inventory.functions()]))
    """)
    env = {**os.environ, "NOTEBOOK_MEMO_DIR": str(cache_dir), "PYTHONPATH": str(Path(__file__).parent.parent)}

    def run(n: int, then: str = "") -> str:
        return subprocess.run([sys.executable, "-c", worker, str(n), then, str(cache_dir)], env=env, check=True,
                              capture_output=True, text=True, timeout=120).stdout

    first = run(30)
    con = sqlite3.connect(str(cache_dir / "cache.db"), timeout=30)
    with con:
        for statement in OLD_FACTS:
            con.execute(statement)
        con.execute("INSERT INTO NbmFacts SELECT key, 'x', NULL, 'c', 1, 1.0, 1.0, 0 FROM Cache WHERE mode = 16")
    con.close()
    assert run(30) == first  # opened by this version: the old table goes, the new one is filled again
    con = sqlite3.connect(str(cache_dir / "cache.db"), timeout=30)
    tables = {name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE name LIKE 'Nbm%'")}
    assert tables == {"NbmRecordFacts", "NbmRecordFacts_gone"}
    assert con.execute("SELECT count(*) FROM NbmRecordFacts").fetchone()[0] == 30
    con.close()
    assert run(30, "clear") == "[]\n"  # deleted rows take their facts with them (the new trigger)
    con = sqlite3.connect(str(cache_dir / "cache.db"), timeout=30)
    assert con.execute("SELECT count(*) FROM NbmRecordFacts").fetchone()[0] == 0
    con.close()
