"""The floors: the least work each measured operation needs, written as plainly as it can be done.

A floor does what the operation must (read the row, verify, unpickle; hash every byte in a
canonical form) and nothing else, so ``time / floor`` is what the library adds.
"""

from __future__ import annotations

import pickle
import sqlite3
from typing import Any

import diskcache
import numpy as np
import xxhash

digest = xxhash.xxh3_128_digest


def raw(array: np.ndarray) -> memoryview:
    """Return an array's bytes as a buffer (a view when it is contiguous; any dtype, datetimes included)."""
    return np.ascontiguousarray(array).reshape(-1).view(np.uint8).data


def call_key(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    """A call's key at its floor: its arguments pickled, then one xxh3."""
    return digest(pickle.dumps((args, kwargs), protocol=5))


def str_list(values: list[str]) -> bytes:
    """Hash a list of ``str``: their lengths, then their utf-8 in one buffer (canonical: lengths split it)."""
    h = xxhash.xxh3_128()
    h.update(raw(np.fromiter(map(len, values), np.int64, len(values))))
    h.update("".join(values).encode("utf-8", "surrogatepass"))
    return h.digest()


def array_dict(values: dict[str, np.ndarray]) -> bytes:
    """Hash a dict of arrays: each key's utf-8, length-prefixed, and each array's buffer, in one stream."""
    h = xxhash.xxh3_128()
    for key, array in values.items():
        name = key.encode()
        h.update(len(name).to_bytes(8, "little"))
        h.update(name)
        h.update(raw(array))
    return h.digest()


def strided(view: np.ndarray, chunk_bytes: int = 1 << 18) -> bytes:
    """Hash a 1-d strided view by gathering it chunk by chunk into one reused contiguous buffer."""
    h = xxhash.xxh3_128()
    step = max(1, chunk_bytes // view.itemsize)
    buffer = np.empty(step, view.dtype)
    for start in range(0, len(view), step):
        part = view[start:start + step]
        out = buffer[:len(part)]
        np.copyto(out, part)
        h.update(raw(out))
    return h.digest()


def frame(df: Any) -> bytes:
    """Hash a DataFrame: numeric columns' buffers, categoricals' codes and categories, strings' lengths + utf-8."""
    import pandas as pd

    h = xxhash.xxh3_128()
    for name, column in df.items():
        h.update(str(name).encode())
        if isinstance(column.dtype, pd.CategoricalDtype):
            h.update(raw(column.cat.codes.to_numpy()))
            h.update(str_list([str(c) for c in column.cat.categories]))
        elif column.dtype.kind in "biufcmM":
            h.update(raw(column.to_numpy()))
        else:
            h.update(str_list(column.to_numpy(dtype=object).tolist()))
    return h.digest()


class RowsAsStored(diskcache.Disk):
    """A diskcache ``Disk`` that hands a row's value back as stored, whatever wrote it (floors only read)."""

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        return value


def rows_in(con: sqlite3.Connection, keys: list[str], pickled: bytes, chunk: int = 4096) -> int:
    """Read ``keys``'s rows from an index with one ``SELECT ... IN (...)`` per chunk; verify and unpickle each.

    Verify is one xxh3 over the row's value; unpickling loads ``pickled`` (a result as it would be
    pickled), since the row's own format is the library's to choose. Returns the rows read.
    """
    found = 0
    for start in range(0, len(keys), chunk):
        part = keys[start:start + chunk]
        sql = f"SELECT key, value FROM Cache WHERE key IN ({','.join('?' * len(part))})"
        for _key, value in con.execute(sql, part):
            digest(value)
            pickle.loads(pickled)
            found += 1
    return found


def row_by_key(con: sqlite3.Connection, key: str) -> bytes:
    """Read one row's value by key (the lookup a hit needs at its floor)."""
    return con.execute("SELECT value FROM Cache WHERE key = ? AND raw = 1", (key,)).fetchone()[0]  # type: ignore[no-any-return]


def read_only(db: str, pages: int | None = None) -> sqlite3.Connection:
    """Open an index for reading only (the floors never write a cache they measure).

    ``pages``: how many pages its cache keeps (SQLite's default otherwise, about 2 MB).
    """
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    if pages is not None:
        con.execute(f"PRAGMA cache_size = {pages}")
    return con
