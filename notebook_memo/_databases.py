"""What an SQLite database holds, as SQLite reads it: the rows of its tables, whatever pages they lie in.

A database read through a handle opened before the body ran (a global ``sqlite3`` connection, a diskcache store)
changes its bytes without changing what it holds: opening a diskcache store rewrites its settings rows, and the
last connection to close moves the write-ahead log into the database file. Compared byte for byte, such a database
looked changed after every restart; compared by its rows, it is changed only when a row is.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse

import xxhash

__all__ = ()

_WAL_MODE = 2  # the file format's read and write versions (bytes 18 and 19 of the header) in WAL mode
_BUSY_SECONDS = 1.0  # a writer holding its lock longer: taken as changed (a miss), never waited for


# What a query reads besides rows: the header's values an application sets (user_version, application_id), the
# counter of its schema changes, and the text encoding (hex() of a text shows it). Page size and counts are layout.
_HEADER_PRAGMAS = ("user_version", "application_id", "schema_version", "encoding")
_ROWID_NAMES = ("_rowid_", "rowid", "oid")  # a table's implicit rowid, by whichever name no column of it takes
# diskcache's own settings table: it replaces every row as it opens (new rowids, another order) and reads them by key
_DISKCACHE_SETTINGS = "CREATE TABLE Settings ( key TEXT NOT NULL UNIQUE, value)"
_EXPIRES = "expire_time"  # a column whose rows readers take as gone once the clock passes it (diskcache's)

Window = tuple[float | None, float | None]
"""The clock times (``time.time()``) between which no row's expire_time lies: from (inclusive), until (exclusive)."""


def database_digest(path: str) -> str:
    """Return a digest of the schema, the header's values and the rows of the SQLite database at ``path`` (with its
    write-ahead log); raise OSError where it cannot be read without changing its files."""
    return _read(path, None)[0]


def database_state(path: str, at: float) -> tuple[str, Window]:
    """Return the digest of the database at ``path`` (see database_digest) and the window of clock times around
    ``at`` (a ``time.time()``) in which no row of a table with an ``expire_time`` column (a diskcache store) expires:
    what its readers see is the same at any time in it, and may differ outside it."""
    return _read(path, at)


def expiry_window(path: str, at: float) -> Window:
    """Return the window of database_state alone, reading no more rows than its indexes lead to."""
    return _read(path, at, rows=False)[1]


def _read(path: str, at: float | None, rows: bool = True) -> tuple[str, Window]:
    """Read the database at ``path`` (its rows unless ``rows`` is False), and its expiry window around ``at`` where
    given (else ``(None, None)``).

    Read through a read-only connection, which writes nothing (where the log's index, ``-shm``, is there). A
    database in WAL mode whose ``-wal`` file is not there (its last connection closed, moving its log into it; or a
    connection opened but not used yet) is read as an immutable file, for SQLite would otherwise make that file and
    leave it behind; one that a writer makes meanwhile makes the read fail (a miss), never a digest of half a change.
    """
    with open(path, "rb") as fh:
        header = fh.read(100)
        then = os.fstat(fh.fileno())
    if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
        raise OSError(f"{path} is not an SQLite database")
    closed = header[18] == _WAL_MODE and not os.path.exists(path + "-wal")
    if header[18] == _WAL_MODE and not closed and not os.path.exists(path + "-shm"):
        raise OSError(f"{path} has a log and no index (left by a crash): SQLite would make one")
    options = "mode=ro&immutable=1" if closed else "mode=ro"
    try:
        connection = sqlite3.connect(f"file:{urllib.parse.quote(os.path.abspath(path))}?{options}", uri=True,
                                     timeout=_BUSY_SECONDS, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise OSError(f"{path} cannot be opened: {exc}") from None
    try:
        h = xxhash.xxh3_128()
        connection.execute("BEGIN")  # one snapshot for the schema and every table
        for pragma in _HEADER_PRAGMAS:
            h.update(repr((pragma, connection.execute(f"PRAGMA {pragma}").fetchone())).encode())
        schema = connection.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")
        tables = []
        for row in schema.fetchall():
            h.update(repr(row).encode("utf-8", "surrogatepass"))
            if row[0] == "table":
                tables.append((row[1], row[3]))
        since: float | None = None
        until: float | None = None
        for table, sql in tables:
            h.update(b"\x00table\x00" + table.encode("utf-8", "surrogatepass"))
            quoted = '"' + table.replace('"', '""') + '"'  # a name it listed itself
            if isinstance(sql, str) and " ".join(sql.split()) == _DISKCACHE_SETTINGS:
                found = connection.execute(f"SELECT key, value FROM {quoted} ORDER BY key")
            else:
                columns = {str(column[1]).lower() for column in connection.execute(f"PRAGMA table_xinfo({quoted})")}
                if at is not None and _EXPIRES in columns:
                    since, until = _expiry_window(connection, quoted, at, since, until)
                if not rows:
                    continue
                found = _rows(connection, path, table, quoted, columns)
            for item in found:
                h.update(repr(item).encode("utf-8", "surrogatepass"))
        now = os.stat(path)
        if closed and (os.path.exists(path + "-wal") or (now.st_mtime_ns, now.st_size) != (then.st_mtime_ns,
                                                                                            then.st_size)):
            raise OSError(f"{path} was opened by another connection while it was read")
        return h.hexdigest(), (since, until)
    except sqlite3.Error as exc:
        raise OSError(f"{path} cannot be read: {exc}") from None
    finally:
        connection.close()


def _rows(connection: sqlite3.Connection, path: str, table: str, quoted: str, columns: set[str]) -> sqlite3.Cursor:
    """Return the rows of a table with its rowid first (a query reads it; an UPDATE can change it alone), in its
    order; a WITHOUT ROWID table's rows as they are, in its primary key's order."""
    alias = next((name for name in _ROWID_NAMES if name not in columns), None)
    if alias is None:  # every name of its rowid is a column's: no query reads it, but it orders SELECT *
        raise OSError(f"{path}: the rowid of table {table} cannot be read (a column takes each of its names)")
    try:
        return connection.execute(f"SELECT {alias}, * FROM {quoted} ORDER BY {alias}")
    except sqlite3.OperationalError as exc:
        if "no such column" not in str(exc):
            raise
        return connection.execute(f"SELECT * FROM {quoted}")  # WITHOUT ROWID: no rowid to read


def _expiry_window(connection: sqlite3.Connection, quoted: str, at: float, since: float | None,
                   until: float | None) -> Window:
    """Narrow ``(since, until)`` to the expire_times of a table's rows nearest ``at``: the last one at or before it,
    the first one after it (readers such as diskcache's ``get`` keep a row while ``expire_time > time.time()``)."""
    numeric = f"typeof({_EXPIRES}) IN ('integer', 'real')"  # a NULL never expires; a text never compares below
    (last,), = connection.execute(f"SELECT max({_EXPIRES}) FROM {quoted} WHERE {numeric} AND {_EXPIRES} <= ?", (at,))
    (first,), = connection.execute(f"SELECT min({_EXPIRES}) FROM {quoted} WHERE {numeric} AND {_EXPIRES} > ?", (at,))
    if last is not None and (since is None or last > since):
        since = float(last)
    if first is not None and (until is None or first < until):
        until = float(first)
    return since, until
