"""The diskcache-backed store: records, their files, eviction, leases.

One ``Store`` per cache directory. Records live in one diskcache ``Cache`` through a
``Disk`` subclass: small payloads inside the SQLite row, large ones in a file of their
own that diskcache names, tracks and deletes. Two handles share the directory: reads go
through one with no eviction bookkeeping (a hit is a single SELECT), writes through one
that culls least-recently-used entries past the size limit. Access times for that LRU
order are written in batches by a background thread, off the hit path.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sqlite3
import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import diskcache
from diskcache.core import UNKNOWN

from ._config import TOUCH_FLUSH_INTERVAL, resolve_lease
from ._serialize import (
    CorruptRecord,
    Header,
    Payload,
    decode_header,
    encode_header,
    load_file,
    load_inline,
    write_payload,
)

__all__ = ()

MODE_RECORD = 16  # a diskcache row mode of ours: the value column holds a record header
_DB_NAME = "cache.db"
_MARKER = "NOTEBOOK_MEMO_CACHE"
_REVALIDATE = 0.25
_HOT_ENTRIES = 1024
_CULL_MARKER = "stats:cull"


@dataclass
class StoredRecord:
    """A record as read from the index: its header, and where its payload is."""

    key: str
    header: Header
    inline: memoryview
    path: str | None

    def load(self, secret: bytes | None, use_mmap: bool = False) -> Any:
        """Verify and unpickle the stored value; raises CorruptRecord or OSError."""
        if self.header.inline:
            return load_inline(self.header, self.inline, secret)
        if self.path is None:
            raise CorruptRecord("record has neither an inline payload nor a file")
        return load_file(self.header, self.path, secret, use_mmap)


@dataclass
class _NewRecord:
    header_bytes: bytes | None  # None: built once the file is written and its checksum known
    payload: Payload
    inline: bool
    make_header: Any = None


class _RecordDisk(diskcache.Disk):
    """diskcache serialization for our records: header in the row, payload inline or in a file."""

    def store(self, value: Any, read: bool, key: Any = UNKNOWN) -> tuple[int, int, str | None, Any]:
        if not isinstance(value, _NewRecord):
            return super().store(value, read, key=key)  # type: ignore[no-any-return]
        if value.inline:
            assert value.header_bytes is not None
            return 0, MODE_RECORD, None, sqlite3.Binary(value.header_bytes)
        filename, full_path = self.filename(key, value)
        os.makedirs(os.path.dirname(full_path), exist_ok=True)
        try:
            with open(full_path, "xb") as f:
                size, checksum = write_payload(f, value.payload)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(full_path)
            raise
        header = value.header_bytes if value.header_bytes is not None else value.make_header(checksum)
        return size, MODE_RECORD, filename, sqlite3.Binary(header)

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        if mode != MODE_RECORD:
            return super().fetch(mode, filename, value, read)
        try:
            header, inline = decode_header(value)
        except CorruptRecord:
            return _Corrupt()
        path = os.path.join(self._directory, filename) if filename else None
        return StoredRecord("", header, inline, path)


class _Corrupt:
    """A row whose header could not be parsed."""


class Store:
    """All records of one cache directory."""

    def __init__(self, directory: str, size_limit: int) -> None:
        self.directory = directory
        self.size_limit = size_limit
        self._lock = threading.RLock()
        self._reader: diskcache.Cache | None = None
        self._writer: diskcache.Cache | None = None
        self._ident: tuple[int, int] | None = None
        self._pending_touch: set[str] = set()
        self._held_leases: dict[str, str] = {}
        self._flusher: threading.Thread | None = None
        self._stop = threading.Event()
        self._checked = 0.0
        self._hot: dict[str, tuple[float, StoredRecord]] = {}
        self._pending_hits: dict[str, int] = {}  # function id -> hits not yet written
        self._last_hit: dict[str, float] = {}

    # -- opening, and reopening when the directory was removed ------------------------------
    def _open(self) -> None:
        self._hot = {}
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        self._write_marker()
        self._close_handles()
        common: dict[str, Any] = {"disk": _RecordDisk, "statistics": 0, "tag_index": 1}
        # cull_limit=1: past the size limit each write evicts one least-recently-used entry;
        # diskcache's default (10 per write, 10 per cull() round) would drop far more than
        # needed when entries are large.
        self._writer = diskcache.Cache(self.directory, eviction_policy="least-recently-used",
                                       size_limit=self.size_limit, cull_limit=1, **common)
        self._reader = diskcache.Cache(self.directory, eviction_policy="none", cull_limit=0, **common)
        st = os.stat(os.path.join(self.directory, _DB_NAME))
        self._ident = (st.st_dev, st.st_ino)

    def _close_handles(self) -> None:
        for handle in (self._reader, self._writer):
            if handle is not None:
                with contextlib.suppress(Exception):
                    handle.close()
        self._reader = self._writer = None

    def _handles(self) -> tuple[diskcache.Cache, diskcache.Cache]:
        self._checked = time.monotonic()
        try:
            st = os.stat(os.path.join(self.directory, _DB_NAME))
            current: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except OSError:
            current = None
        if current is None or current != self._ident or self._reader is None:
            with self._lock:
                if current is None or current != self._ident or self._reader is None:
                    self._open()
        assert self._reader is not None and self._writer is not None
        return self._reader, self._writer

    @property
    def reader(self) -> diskcache.Cache:
        # Reads re-check that the directory is still the one opened at most every
        # REVALIDATE seconds: a stat per hit would cost more than the lookup itself.
        reader = self._reader
        if reader is None or time.monotonic() - self._checked > _REVALIDATE:
            return self._handles()[0]
        return reader

    @property
    def writer(self) -> diskcache.Cache:
        return self._handles()[1]

    # -- records ---------------------------------------------------------------------------
    def get(self, key: str) -> StoredRecord | None:
        """Return the record under ``key``, or None; a damaged header raises CorruptRecord.

        A record read from the index is reused for up to REVALIDATE seconds: repeated hits
        on one key skip SQLite. Our own writes and deletes drop it at once; another
        process's delete or overwrite of the same key is seen within that window.
        """
        now = time.monotonic()
        hot = self._hot.get(key)
        if hot is not None and now - hot[0] < _REVALIDATE:
            self._touch_later(key)
            return hot[1]
        record = self.reader.get(key)
        if record is None:
            self._hot.pop(key, None)
            return None
        if isinstance(record, _Corrupt):
            raise CorruptRecord("the record header is damaged")
        if not isinstance(record, StoredRecord):
            return None
        record.key = key
        self._touch_later(key)
        if len(self._hot) >= _HOT_ENTRIES:
            self._hot.clear()
        self._hot[key] = (now, record)
        return record

    def forget(self, key: str | None = None) -> None:
        """Drop reused records: one key's, or all of them."""
        if key is None:
            self._hot.clear()
        else:
            self._hot.pop(key, None)

    def put(self, key: str, payload: Payload, meta: dict[str, Any], created: float,
            expires: float | None, duration: float, keep_until: float | None, tag: str,
            secret: bytes | None, inline_limit: int) -> int:
        """Write a record; return the payload size. ``keep_until`` bounds its life in the index."""
        inline = payload.nbytes < inline_limit
        if inline or secret:
            record = _NewRecord(encode_header(payload, meta, created, expires, duration, inline, secret),
                                payload, inline)
        else:  # the checksum is computed while the file is written
            record = _NewRecord(None, payload, False, lambda checksum: encode_header(
                payload, meta, created, expires, duration, False, None, checksum))
        writer = self.writer
        if self._pending_touch:
            self.flush()  # diskcache culls inside set(): recent hits must be recorded first
        self.forget(key)
        expire = None if keep_until is None else max(keep_until - time.time(), 0.001)
        writer.set(key, record, expire=expire, tag=tag)
        self.forget(key)
        self._enforce_limit(writer)
        return payload.nbytes

    def _enforce_limit(self, writer: diskcache.Cache) -> None:
        """Evict least recently used entries, one at a time, until the directory fits its limit."""
        volume = writer.volume()
        if volume > self.size_limit:
            self.forget()
        while volume > self.size_limit:
            writer.set(_CULL_MARKER, 0)  # every set() runs one cull round (cull_limit entries)
            now = writer.volume()
            if now >= volume:
                break  # nothing left to evict
            volume = now

    def delete(self, key: str) -> bool:
        self.forget(key)
        return bool(self.writer.delete(key))

    def evict(self, tag: str) -> int:
        """Delete every record with ``tag``; return how many."""
        self.forget()
        return int(self.writer.evict(tag))

    def records(self) -> Iterator[StoredRecord]:
        """Yield every readable record (management commands, not the hit path)."""
        reader = self.reader
        for key in list(reader.iterkeys()):
            if not isinstance(key, str) or key.startswith(("lock:", "stats:")):
                continue
            with contextlib.suppress(Exception):
                record = reader.get(key)
                if isinstance(record, StoredRecord):
                    record.key = key
                    yield record

    def volume(self) -> int:
        return int(self.reader.volume())

    def expire(self) -> int:
        """Reclaim expired records now; return how many."""
        self.forget()
        return int(self.writer.expire())

    def repair(self) -> list[str]:
        """Remove files no row refers to and rows whose file is gone; return the warnings."""
        import warnings

        self.forget()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self.writer.check(fix=True)
        self._write_marker()  # check() deletes every file the index does not know
        return [str(w.message) for w in caught]

    def _write_marker(self) -> None:
        marker = os.path.join(self.directory, _MARKER)
        if not os.path.exists(marker):
            with open(marker, "w") as f:
                f.write("notebook_memo cache directory: safe to delete as a whole.\n")

    # -- LRU access times, written in batches ------------------------------------------------
    def _touch_later(self, key: str) -> None:
        self._pending_touch.add(key)
        if self._flusher is None:
            self._start_flusher()

    def _start_flusher(self) -> None:
        with self._lock:
            if self._flusher is not None:
                return
            self._flusher = threading.Thread(target=_flush_loop, args=(weakref.ref(self),),
                                             name="notebook_memo-flush", daemon=True)
            self._flusher.start()

    def count_hit(self, tag: str) -> None:
        """Count a hit of function ``tag``; written with the next batch of access times."""
        self._pending_hits[tag] = self._pending_hits.get(tag, 0) + 1
        self._last_hit[tag] = time.time()

    def hit_stats(self, tag: str) -> tuple[int, float]:
        """Return (hits, last hit time) of function ``tag`` across all processes."""
        reader = self.reader
        return int(reader.get(f"stats:hits:{tag}", 0)), float(reader.get(f"stats:used:{tag}", 0.0))

    def flush(self) -> None:
        """Write pending access times and hit counts, and renew held leases."""
        if self._held_leases:
            self._renew_leases()
        if not self._pending_touch and not self._pending_hits:
            return
        keys, self._pending_touch = self._pending_touch, set()
        hits, self._pending_hits = self._pending_hits, {}
        used, self._last_hit = self._last_hit, {}
        with contextlib.suppress(Exception):
            writer = self.writer
            with writer.transact():
                for key in keys:
                    writer.get(key)  # the LRU policy records the access time
                for tag, count in hits.items():
                    writer.incr(f"stats:hits:{tag}", count)
                    writer.set(f"stats:used:{tag}", used.get(tag, time.time()))

    # -- leases: one process computes a key, others wait -----------------------------------
    def try_lease(self, key: str) -> bool:
        """Take the lease on ``key`` for this process; False if someone else holds it."""
        if self._pending_touch:
            self.flush()  # add() may cull: recent hits must be recorded first
        lock_key = "lock:" + key
        owner = f"{os.getpid()}:{uuid.uuid4().hex}"
        if self.writer.add(lock_key, owner, expire=resolve_lease()):
            self._held_leases[lock_key] = owner
            if self._flusher is None:
                self._start_flusher()
            return True
        return False

    def release_lease(self, key: str) -> None:
        lock_key = "lock:" + key
        owner = self._held_leases.pop(lock_key, None)
        if owner is None:
            return
        with contextlib.suppress(Exception):
            writer = self.writer
            with writer.transact():
                if writer.get(lock_key) == owner:
                    writer.delete(lock_key)

    def _renew_leases(self) -> None:
        with contextlib.suppress(Exception):
            writer = self.writer
            for lock_key, owner in list(self._held_leases.items()):
                with writer.transact():
                    # Extend only a lease that is still ours: if it was released meanwhile, or
                    # lapsed and another process took it, recreating it would block everyone.
                    if self._held_leases.get(lock_key) == owner and writer.get(lock_key) == owner:
                        writer.touch(lock_key, expire=resolve_lease())

    def close(self) -> None:
        self._stop.set()
        self.flush()
        self._close_handles()


def _flush_loop(ref: weakref.ReferenceType[Store]) -> None:
    interval = min(TOUCH_FLUSH_INTERVAL, resolve_lease() / 3)
    while True:
        store = ref()
        if store is None or store._stop.is_set():
            return
        try:
            store.flush()
        finally:
            del store
        time.sleep(interval)


_stores: dict[str, Store] = {}
_stores_lock = threading.Lock()


def get_store(directory: str, size_limit: int) -> Store:
    """Return the one Store of ``directory`` in this process."""
    store = _stores.get(directory)
    if store is None:
        with _stores_lock:
            store = _stores.get(directory)
            if store is None:
                store = Store(directory, size_limit)
                _stores[directory] = store
    if store.size_limit != size_limit:  # configure(size_limit=...) after the store was opened
        store.size_limit = size_limit
        if store._writer is not None:
            store._writer.reset("size_limit", size_limit)
    return store


def is_cache_directory(directory: str) -> bool:
    """Return True when ``directory`` holds a notebook_memo cache."""
    return os.path.exists(os.path.join(directory, _MARKER))


@atexit.register
def _flush_all() -> None:
    for store in list(_stores.values()):
        with contextlib.suppress(Exception):
            store.flush()
