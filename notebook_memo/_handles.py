"""Open handles held as data: a file object, an SQLite connection, a zip archive, a NumPy npz, a diskcache store.

A handle cannot be hashed (its content is not a value), and what a body reads through one is read from files
with no audit event naming them: the handle was opened before the body ran. Left out of the key, such a global
served the old result once its file changed. Where the files are known, a run records them as reads (checked on
a hit, as a file the body opens is); where they are not (a buffer in memory, a handle that may write, one held
inside another object), its result is not stored.

An SQLite connection runs Python code of the notebook's inside its queries where a function, aggregate, window
function or collation was registered on it: SQLite names them, but what they compute is in no key
(``registered_code``).
"""

from __future__ import annotations

import functools
import io
import os
import sys
import types
from typing import Any

__all__ = ()

_NOT_KNOWN: tuple[str, ...] = ()


def handle_files(value: Any) -> tuple[str, ...] | None:
    """Return the absolute paths of the files read through ``value`` if it is an open handle (``()`` when they
    cannot be told), or None when it is no open handle. Never imports a library."""
    if isinstance(value, io.IOBase):
        return _file_object(value)
    cls = type(value)
    module = cls.__module__.partition(".")[0]
    if module == "sqlite3":
        sqlite3 = sys.modules.get("sqlite3")
        if sqlite3 is not None and isinstance(value, sqlite3.Connection):
            return _connection(value)
    elif module == "zipfile":
        zipfile = sys.modules.get("zipfile")
        if zipfile is not None and isinstance(value, zipfile.ZipFile):
            return _archive(value)
    elif module == "numpy":
        if any(base.__name__ == "NpzFile" for base in cls.__mro__):
            archive = getattr(value, "zip", None)
            return _NOT_KNOWN if archive is None else _archive(archive)
    elif module == "diskcache":
        return _diskcache(value)
    return None


def handle_settings(value: Any) -> tuple[tuple[str, Any], ...]:
    """Return the settings of an open handle that shape what is read through it, by name, to key with its files:
    an ``sqlite3`` connection's row and text factories, the pragmas that change what its queries answer, the names
    of the code set on it (registered_code), so that code set after a result was stored makes a miss, and sqlite3's
    converters and adapters (``register_converter``, ``register_adapter``: which a connection opened with
    ``detect_types`` applies to what it reads cannot be read back from it, so all of them)."""
    if is_connection(value):
        sqlite3 = sys.modules["sqlite3"]
        return (("row_factory", value.row_factory), ("text_factory", value.text_factory),
                ("pragmas", _answering_pragmas(value)), ("code", registered_code(value)),
                ("converters", dict(sqlite3.converters)), ("adapters", dict(sqlite3.adapters)))
    return ()


def is_connection(value: Any) -> bool:
    """Return True when ``value`` is an ``sqlite3`` connection. Never imports sqlite3."""
    sqlite3 = sys.modules.get("sqlite3")
    return sqlite3 is not None and isinstance(value, sqlite3.Connection)


# A connection's functions and collations beyond SQLite's own (those it was built with included: fts5's bm25 is
# listed as no built-in), as pragma_function_list and pragma_collation_list give them
_FUNCTIONS = "SELECT name, type, narg, flags FROM pragma_function_list WHERE builtin = 0"
_COLLATIONS = "SELECT name FROM pragma_collation_list"
# SQLite registers its own LIKE anew, as a function it was not built with, for PRAGMA case_sensitive_like = on, and
# leaves it so when it is set off again: which way it is set cannot be read back
LIKE = "like() registered anew, as PRAGMA case_sensitive_like does (which way it is set cannot be read back)"
# SQLite's own collations, and texts compared under each (less, equal): registered anew under one of their names,
# a collation is listed under that name, and told only by answering otherwise than a new connection's
_OWN_COLLATIONS = ("BINARY", "NOCASE", "RTRIM")
_PAIRS = (("a", "B"), ("a", "A"), ("B", "a"), ("a ", "a"), ("", "a"), ("b", "a"), ("e", "\u00e9"), ("10", "9"))
_COLLATING = "SELECT " + ", ".join(
    f"'{x}' {op} '{y}' COLLATE {name}"
    for name in _OWN_COLLATIONS for x, y in _PAIRS for op in ("<", "="))
_PREPARED = "SELECT 1"  # what an authorizer is asked about (SQLITE_SELECT) as any statement is prepared


def registered_code(connection: Any) -> list[str] | None:
    """Return the names of the code set on an ``sqlite3`` connection that runs inside its queries: the functions,
    aggregates, window functions and collations registered on it (``create_function``, ``create_aggregate``,
    ``create_window_function``, ``create_collation``, or a loaded extension's), its own collations registered anew,
    and an authorizer (``set_authorizer``), sorted; None where they cannot be listed (a SQLite without
    pragma_function_list).

    Their code cannot be known (no API returns it): a query calling one answers what it computes now. A function
    registered anew under a name SQLite was built with is listed as no built-in; a collation registered anew under
    its own name (NOCASE) is not listed apart, and is told by comparing texts with it as a new connection does."""
    own = _sqlite_own()
    if own is None:
        return None
    authorizer = ["an authorizer"] if _has_authorizer(connection) else []
    try:
        cursor = connection.cursor()
        cursor.row_factory = None  # the user's factories shape the user's rows, not ours
        # texts as the connection's text_factory makes them (bytes, or the user's class): made str again
        functions = {tuple(map(_text, row)) for row in cursor.execute(_FUNCTIONS).fetchall()}
        collations = {_text(row[0]) for row in cursor.execute(_COLLATIONS).fetchall()}
        compared = cursor.execute(_COLLATING).fetchone()
    except Exception:  # closed, or another thread's (nothing is read through it here either), or refused by it
        return authorizer
    names = {LIKE if row[0] == "like" else f"{row[0]}()" for row in functions - own[0]} | \
        {f"collation {name}" for name in collations - own[1]} | \
        {f"collation {name}" for name, mine, theirs in zip(_OWN_COLLATIONS, _by_collation(compared), own[2])
         if mine != theirs}
    return sorted(names) + authorizer


def _has_authorizer(connection: Any) -> bool:
    """Return True when Python code runs as ``connection`` prepares a statement: an authorizer is set on it.

    Its statement is prepared alone (called as ``connection(sql)``: not run, so no trace callback runs, and not kept
    in its cache) while a profile function watches for Python code called from here. Where another profile function
    is in place (``%prun``), or this Python prepares no statement alone, it is not told, and False is returned."""
    if not callable(connection) or sys.getprofile() is not None:
        return False
    here = sys._getframe()
    called: list[bool] = []

    def watch(frame: types.FrameType, event: str, arg: Any) -> None:
        if event == "call" and frame.f_back is here:
            called.append(True)

    sys.setprofile(watch)
    try:
        connection(_PREPARED)
    except Exception:  # closed, another thread's, or refused by the authorizer (which then ran)
        pass
    finally:
        sys.setprofile(None)
    return bool(called)


def _by_collation(row: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """Return a row of _COLLATING as one tuple of answers per collation of _OWN_COLLATIONS."""
    size = len(_PAIRS) * 2
    return [tuple(row[i:i + size]) for i in range(0, len(row), size)]


# The settings of a connection (not of its files) a body may change and leave changed: what later queries through it
# answer or do (reverse_unordered_selects, foreign_keys; the first of them, _ANSWERING, keyed with the connection),
# or how it waits and stores (busy_timeout, temp_store)
_ANSWERING = ("foreign_keys", "recursive_triggers", "query_only", "reverse_unordered_selects", "defer_foreign_keys",
              "ignore_check_constraints", "trusted_schema", "legacy_alter_table", "count_changes", "full_column_names",
              "short_column_names")
_PRAGMAS = (*_ANSWERING, "automatic_index", "cell_size_check", "busy_timeout", "cache_size", "temp_store",
            "synchronous", "secure_delete", "cache_spill", "journal_size_limit", "locking_mode")


def connection_settings(connection: Any) -> tuple[tuple[str, Any], ...] | None:
    """Return what a body may change on an ``sqlite3`` connection that outlives its run, each under how a change of
    it is said (``{}``: the connection): the databases attached, its temporary tables, views and triggers, its
    pragmas, whether a transaction is open, its factories and isolation level; None where it cannot be read (closed,
    or another thread's)."""
    try:
        cursor = connection.cursor()
        cursor.row_factory = None
        # its factories first: a text_factory set anew changes how the texts below come back
        return (("sets the row_factory of {}", connection.row_factory),
                ("sets the text_factory of {}", connection.text_factory),
                ("sets the isolation_level of {}", connection.isolation_level),
                ("begins or ends a transaction on {}", connection.in_transaction),
                ("attaches or detaches a database on {}",
                 tuple(map(tuple, cursor.execute("PRAGMA database_list").fetchall()))),
                ("makes or drops a temporary table, view or trigger on {}",
                 tuple(map(tuple, cursor.execute("SELECT type, name, sql FROM temp.sqlite_master").fetchall()))),
                *zip([f"sets PRAGMA {name} on {{}}" for name in _available_pragmas()],
                     cursor.execute(_pragmas_query()).fetchone()))
    except Exception:  # closed, or another thread's
        return None


@functools.lru_cache(maxsize=1)
def _available_pragmas() -> tuple[str, ...]:
    """Return those of _PRAGMAS this SQLite reads as tables (one built without deprecated ones lacks them)."""
    import sqlite3  # only asked about a connection, so loaded

    connection = sqlite3.connect(":memory:")
    try:
        found = []
        for name in _PRAGMAS:
            try:
                connection.execute(f"SELECT * FROM pragma_{name}").fetchall()
            except sqlite3.Error:
                continue
            found.append(name)
        return tuple(found)
    finally:
        connection.close()


def _answering_pragmas(connection: Any) -> tuple[Any, ...] | None:
    """Return the values of the pragmas of _ANSWERING this SQLite has on ``connection``; None where they cannot
    be read (closed, another thread's, or refused by its authorizer)."""
    try:
        cursor = connection.cursor()
        cursor.row_factory = None
        return tuple(cursor.execute(_pragmas_query(True)).fetchone())
    except Exception:
        return None


@functools.lru_cache(maxsize=2)
def _pragmas_query(answering: bool = False) -> str:
    """Return one query reading every available pragma of _PRAGMAS (of _ANSWERING alone where ``answering``): one
    row, a column each."""
    names = [name for name in _available_pragmas() if not answering or name in _ANSWERING]
    return "SELECT " + ", ".join([f"(SELECT * FROM pragma_{name})" for name in names] or ["1"])


def _text(value: Any) -> Any:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else \
        str(value) if isinstance(value, str) else value


@functools.lru_cache(maxsize=1)
def _sqlite_own() -> tuple[set[tuple[Any, ...]], set[str], list[tuple[Any, ...]]] | None:
    """Return the functions (as _FUNCTIONS lists them) and collations a new connection has, and how its own
    collations compare texts (as _by_collation gives _COLLATING's answers); None where SQLite cannot list them."""
    import sqlite3  # only asked about a connection, so loaded

    connection = sqlite3.connect(":memory:")
    try:
        collations = {row[0] for row in connection.execute(_COLLATIONS).fetchall()}
        compared = _by_collation(connection.execute(_COLLATING).fetchone())
        return set(connection.execute(_FUNCTIONS).fetchall()), collations, compared
    except sqlite3.Error:
        return None
    finally:
        connection.close()


def _file_object(value: io.IOBase) -> tuple[str, ...] | None:
    try:
        if value.closed or not value.readable():
            return None  # nothing is read through it (a log written to): left out as before
        writable = value.writable()
    except (ValueError, OSError):
        return None
    name = getattr(value, "name", None)
    if writable or not isinstance(name, (str, bytes, os.PathLike)):
        return _NOT_KNOWN  # what it reads may be what the body wrote; or a buffer in memory, a descriptor
    path = os.fsdecode(name)
    if path.startswith("<") or not os.path.isfile(path):  # <stdin>, a pipe, a device
        return _NOT_KNOWN
    return (os.path.abspath(path),)


def _connection(value: Any) -> tuple[str, ...]:
    try:
        # In a transaction it reads rows of its own not yet committed to any file, or a snapshot older than them
        if value.in_transaction:
            return _NOT_KNOWN
        cursor = value.cursor()
        cursor.row_factory = None  # the user's factories shape the user's rows, not ours (a file name as bytes)
        files = [os.fsdecode(row[0]) for row in cursor.execute(
            "SELECT CAST(file AS BLOB) FROM pragma_database_list WHERE name != 'temp'").fetchall()]
        # a temporary table (view, trigger) is the connection's alone, in no file it names
        temporary = cursor.execute("SELECT 1 FROM temp.sqlite_master LIMIT 1").fetchone()
    except Exception:  # closed, or made in another thread
        return _NOT_KNOWN
    if temporary is not None:
        return _NOT_KNOWN
    if not files or not all(files):
        return _NOT_KNOWN  # an in-memory database
    return tuple(path for file in files for path in _database(file))


def _database(path: str) -> tuple[str, str]:
    # In WAL mode what was committed lies in the -wal file until a checkpoint moves it into the database.
    absolute = os.path.abspath(path)
    return absolute, absolute + "-wal"


def _archive(value: Any) -> tuple[str, ...]:
    name = getattr(value, "filename", None)
    if getattr(value, "mode", None) != "r" or not isinstance(name, (str, os.PathLike)):
        return _NOT_KNOWN  # opened on a file object, or for writing
    return (os.path.abspath(os.fsdecode(name)),)


def _diskcache(value: Any) -> tuple[str, ...] | None:
    diskcache = sys.modules.get("diskcache")
    if diskcache is None:
        return None
    if isinstance(value, (diskcache.Index, diskcache.Deque)):
        value = value.cache
    if isinstance(value, diskcache.FanoutCache):
        shards = getattr(value, "_shards", None)
        if not shards:
            return _NOT_KNOWN
        return tuple(path for shard in shards for path in _database(os.path.join(shard.directory, "cache.db")))
    if isinstance(value, diskcache.Cache):
        # Its keys and small values are in cache.db; a large value is a file named in it, new for each value.
        return _database(os.path.join(value.directory, "cache.db"))
    return None
