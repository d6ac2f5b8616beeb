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
import ctypes
import errno
import functools
import itertools
import math
import os
import re
import shutil
import sqlite3
import stat
import sys
import threading
import time
import urllib.parse
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import diskcache
from diskcache.core import UNKNOWN

from .._config import (
    EXPIRY_GRACE,
    INLINE_LIMIT,
    QUICK_BODY,
    TOUCH_FLUSH_INTERVAL,
    CallSettings,
    own_thread,
    resolve_lease,
    resolve_secret,
    warn_once,
)
from .._errors import ConfigurationError, StorageWarning
from .._serialize import (
    CorruptRecord,
    ForeignRecord,
    Header,
    Payload,
    PlainRecord,
    Signer,
    create_payload_file,
    decode_header,
    encode_header,
    load_file,
    load_inline,
    loads,
    plausible,
    read_plain,
    real_directory,
    signer_for,
    store_file_path,
    writable_copy,
    write_payload,
)
from . import _walfiles
from ._base import Fetched, SecondTier
from ._leases import LOCK_PREFIX, RENEWED, Leases, Watch, at_fork_in_child, gate, immediate, marks, slices
from ._objects import others_could_write
from ._walmark import HeaderView, header_view, settled
from .remote import replacing, second_tier

try:
    import fcntl
except ImportError:  # not on Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ()

MODE_RECORD = 16  # a diskcache row mode of ours: the value column holds a record header
_DB_NAME = "cache.db"
_MARKER = "NOTEBOOK_MEMO_CACHE"
_REVALIDATE = 0.25  # without the background thread, a read re-checks the directory when its last check is this old
_BACKGROUND_CHECK = 3 * TOUCH_FLUSH_INTERVAL  # a read checks itself when the background thread has not for this long
_HOT_ENTRIES = 4096
_SEEN_ENTRIES, _SEEN_LARGEST = 4096, 2048  # at most 8 MiB of row bytes kept to recognise verified records
_ORPHAN_GRACE = 60.0  # repair keeps unreferenced payload files this young: a writer may be about to index them
_EVICT_BATCH = 16
_SCAN_CHUNK = 1000  # rows per query of a scan
_DELETE_CHUNK = 500  # records per transaction of a bulk delete
# A bulk read rewrites a row's access time (for LRU eviction) only when it is older than this: rewriting
# every row read costs more than reading it.
_TOUCH_RESOLUTION = 60.0
_VOLUME_EVERY = 1.0
# The log is checkpointed by the background thread after our writes (``checkpoint``); SQLite does it on a
# commit only past this many pages (32 MiB): a write of ours never pays for the disk sync of a checkpoint.
_WAL_BACKSTOP = 8192
_CHECKPOINT_EVERY = 0.25  # seconds between the background thread's checkpoints (when this process wrote)
_LATE_LEASE_POLL = 0.02  # how often the background thread looks for runs without a lease gone past QUICK_BODY
# Quick results wait for the background thread's commit, up to this many: then the put that adds the last
# commits them all itself (a loop of misses commits once per this many, whatever the background thread does).
_QUEUE_MOST = 256
# The background thread commits the queue once no quick result was added for _QUEUE_QUIET seconds, or its
# oldest has waited _QUEUE_OLDEST: another process finds a quick result within about that.
_QUEUE_QUIET, _QUEUE_OLDEST = 0.02, 0.25
_ARRIVE_LATER = 4 << 20  # a remote payload this large is served from memory while its local copy is made
_NOW: Any = object()  # put()'s signer not given: the configured secret's, as of the call
# What cache.db is, with the log and wal-index SQLite keeps beside it, and a rollback journal: our index is in WAL
# mode and makes none, but SQLite rolls a hot one it finds back into the index before it looks at the log.
_INDEX_FILES = ("", "-wal", "-shm", "-journal")
_NO_VERSION = (None, 0, None)  # Store._hot_version before any read: no connection, version or header


@dataclass(slots=True)
class StoredRecord:
    """A record as read from the index: its verified header, and where its payload is."""

    key: str  # the index row's key
    header: Header
    inline: memoryview
    filename: str | None
    directory: str
    signer: Signer | None = None
    verified: bool = False  # the header's checksum or signature was checked by this process
    plain_inline_verified: bool = False  # an inline pickle without buffers whose checksum was checked
    # A remote entry's payload, verified in memory (immutable bytes of its own) while its local copy is made:
    # loads give values of their own memory.
    held: Payload | None = None
    # Copies of the held payload's buffers made as it arrived: the first load takes them (a list: ``pop`` hands
    # them to one caller only), later ones copy.
    spare: list[list[Any]] | None = None

    @property
    def path(self) -> str | None:
        return os.path.join(self.directory, self.filename) if self.filename else None

    def load(self, use_mmap: bool = False) -> Any:
        """Verify and unpickle the stored value; raises CorruptRecord or OSError.

        A record whose header this process could not verify (a listing's record signed with another
        secret, or unsigned while a secret is set: anyone can make its checks) is refused unread: its
        payload checks would vouch only for what its header says.
        """
        if not self.verified:
            raise ForeignRecord("the record was not verified by this process (signed with another secret, or not "
                                "signed while a secret is set): it is never unpickled")
        held = self.held
        if held is not None:
            try:
                buffers = self.spare.pop() if self.spare else None
            except IndexError:  # another thread took them meanwhile
                buffers = None
            return loads(held.pickle, buffers if buffers is not None else [writable_copy(b) for b in held.buffers])
        header = self.header
        if header.inline:
            if self.plain_inline_verified:
                return loads(self.inline)  # these very bytes (the record is immutable) were verified before
            value = load_inline(header, self.inline, self.signer)
            self.plain_inline_verified = not header.buffer_lens and not header.signed
            return value
        if not self.filename:
            raise CorruptRecord("record has neither an inline payload nor a file")
        return load_file(self.header, self.directory, self.signer, use_mmap)


@dataclass
class _NewRecord:
    key: str
    payload: Payload
    inline: bool
    make_header: Callable[[str | None, bytes | None], bytes]  # (file name, payload checksum) -> header


@dataclass(slots=True)
class _Queued:
    """A quick result's record, its header made, waiting for the background thread's next commit."""

    record: _NewRecord
    expire: float | None  # seconds to live in the index, from when it was put
    tag: str
    facts: tuple[Any, ...]
    nbytes: int


class _Foreign:
    """A row this store did not write: diskcache's pickle or file modes, or a pickled key."""


class _Corrupt:
    """A row of ours whose header could not be parsed."""


_FOREIGN = _Foreign()

# A hit's one statement: the columns of the row under a raw (text) key. Expiry is checked in Python.
_SELECT_RECORD = "SELECT mode, filename, value, expire_time, access_time, tag FROM Cache WHERE key = ? AND raw = 1"
# A miss's statement: the record's row, and the key's lease row (someone computes it) in the same read.
_SELECT_RECORD_AND_LEASE = ("SELECT mode, filename, value, expire_time, access_time, tag, 0 FROM Cache WHERE key = ? "
                            "AND raw = 1 UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, NULL, 1 FROM Cache WHERE "
                            "key = ? AND raw = 1")
# Changes when another connection (another process, or another thread of ours) commits to the index.
_DATA_VERSION = "PRAGMA data_version"


def _verified_record(row: str, mode: int, filename: str | None, value: Any, directory: str,
                     signer: Signer | None, tag: Any) -> StoredRecord:
    """Return the record an index row holds once its header is verified against ``row`` and the row's ``tag``;
    raise otherwise.

    Rows in diskcache's own modes (pickles, files, plain numbers) are refused unread.
    """
    if mode != MODE_RECORD or not isinstance(value, bytes):
        raise ForeignRecord("the index row was not written by notebook_memo (a diskcache pickle or file "
                            "row): it is never unpickled")
    header, inline = decode_header(value)
    header.verify(row, filename, signer)
    if not _filed_as_written(header.meta_raw, tag, header.meta):
        raise CorruptRecord(_MISFILED)
    return StoredRecord(row, header, inline, filename, directory, signer, True)


_MISFILED = ("the index files this record under another function than the one that stored it, so clearing that "
             "function would not remove it: the index is damaged")


def _filed_as_written(meta_raw: bytes | memoryview, tag: Any, meta: Callable[[], dict[str, Any]]) -> bool:
    """Return whether an index row's ``tag`` (the function its entries are found and cleared by) is the function
    id its record's verified metadata names, as every write tags a row (``meta``: that metadata, parsed).

    The tag column is no part of any record: damaged, it would hide an entry from its function's ``clear``
    while a hit still served it. The id is looked for as the metadata's own encoder writes it (a few hundred
    nanoseconds), and the metadata parsed only when it is not found so."""
    if type(tag) is not str:
        return False
    if tag.isascii() and tag.isalnum() and b'"fid":"%s"' % tag.encode() in bytes(meta_raw):
        return True
    return str(meta().get("fid", "")) == tag



class _RecordDisk(diskcache.Disk):
    """diskcache serialization restricted to our records: nothing is pickled, nothing foreign unpickled.

    Keys are raw strings; values are our records, or plain ints, floats and short strings (leases,
    counters). A row in any other form, written by anyone, is returned as ``_Foreign`` without
    reading it; a payload file is deleted only if it has the store's name pattern and location, is
    a regular file, and no row refers to it any more.
    """

    def __init__(self, directory: str, min_file_size: int = 2**15, **_: Any) -> None:
        # Other disk_* settings someone wrote into the index's Settings table are ignored.
        super().__init__(directory, min_file_size=min_file_size)
        self._held = threading.local()  # .names: files to remove once this thread's transaction of ours ends

    def put(self, key: Any) -> tuple[Any, bool]:
        if type(key) is not str:
            raise TypeError(f"notebook_memo keys are strings, not {type(key).__qualname__}")
        return key, True

    def get(self, key: Any, raw: bool) -> Any:
        if not raw or type(key) is not str:
            return _FOREIGN  # a pickled or binary key: never unpickled
        return key

    def store(self, value: Any, read: bool, key: Any = UNKNOWN) -> tuple[int, int, str | None, Any]:
        if isinstance(value, _NewRecord):
            if value.inline:
                return 0, MODE_RECORD, None, sqlite3.Binary(value.make_header(None, None))
            filename, _ = self.filename(key, value)
            with create_payload_file(self._directory, filename) as f:  # only into real folders of the cache
                try:
                    size, checksum = write_payload(f, value.payload)
                except BaseException:
                    full_path = store_file_path(self._directory, filename)
                    if full_path is not None:
                        with contextlib.suppress(OSError):
                            os.remove(full_path)
                    raise
            return size, MODE_RECORD, filename, sqlite3.Binary(value.make_header(filename, checksum))
        if type(value) in (int, float) or (type(value) is str and len(value) < self.min_file_size):
            return super().store(value, read, key=key)  # type: ignore[no-any-return]
        raise TypeError(f"the store writes its own records only, not {type(value).__qualname__}")

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        if mode == MODE_RECORD:
            try:
                header, inline = decode_header(value)
            except CorruptRecord:
                return _Corrupt()
            return StoredRecord("", header, inline, filename, self._directory)
        if mode == diskcache.core.MODE_RAW and filename is None:
            return super().fetch(mode, filename, value, read)
        return _FOREIGN  # diskcache's pickle, text or binary file modes: not ours

    def remove(self, file_path: str) -> None:
        held = getattr(self._held, "names", None)
        if held is not None:
            held.append(file_path)  # inside a transaction of ours: looked at once it committed (``removals_after``)
            return
        full = store_file_path(self._directory, file_path or "")
        if full is None or self._referenced(file_path):
            return
        with contextlib.suppress(OSError):
            if stat.S_ISREG(os.lstat(full).st_mode):
                os.remove(full)
                folder = os.path.dirname(full)
                os.rmdir(folder)
                os.rmdir(os.path.dirname(folder))

    @contextlib.contextmanager
    def removals_after(self) -> Iterator[None]:
        """Inside the block (around a transaction of ours), files to remove are removed once it ends.

        diskcache removes a replaced or deleted row's file as its own statement ends, which inside a
        transaction of ours is before the commit: the row is still there for every other connection,
        ``remove`` finds it named, and the file would stay forever. Nested blocks leave it to the outermost.
        """
        if getattr(self._held, "names", None) is not None:
            yield
            return
        held: list[str] = []
        self._held.names = held
        try:
            yield
        finally:
            self._held.names = None
            for name in held:
                self.remove(name)  # after a rollback, the rows still name them: kept

    def _referenced(self, file_path: str) -> bool:
        """Return True when a row still names ``file_path`` (or when that cannot be told)."""
        try:
            return connection(self._directory).execute(
                "SELECT 1 FROM Cache WHERE filename = ? LIMIT 1", (file_path,)).fetchone() is not None
        except (OSError, sqlite3.Error):
            return True


def listed_record(row: str, filename: str | None, value: Any, directory: str,
                  signer: Signer | None) -> StoredRecord | None:
    """Return the record of a row a scan listed when its header is intact and names that row; None if not.

    A record signed with a secret this process does not have cannot be checked, and with a secret an
    unsigned one vouches for nothing (anyone can make its check): either comes back with ``verified``
    False (it may be counted, never loaded). One forged under our own key id, or damaged, is None.
    """
    if not isinstance(value, bytes):
        return None
    try:
        header, inline = decode_header(value)
    except CorruptRecord:
        return None
    if header.key != row or header.filename != (filename or ""):
        return None
    checkable = not header.signed or (signer is not None and signer.keyid == header.keyid)
    if checkable and not header.intact(signer if header.signed else None):
        return None
    ours = checkable and header.signed == (signer is not None)
    if not ours and not plausible(header):
        return None  # its numbers or metadata were planted: listed, they would break what counts them
    return StoredRecord(row, header, inline, filename, directory, signer, ours)


def _check_of(value: Any) -> bytes | None:
    """Return the header check of a record row's value, or None when it is no record."""
    try:
        return decode_header(value)[0].check if isinstance(value, bytes) else None
    except CorruptRecord:
        return None


def _write_transaction(con: sqlite3.Connection) -> immediate:
    """Run statements on ``con`` in one write transaction (left by no interrupt: see ``immediate``)."""
    return immediate(con, _schema_still_ours)


_connections = threading.local()
# Held while a connection of this process opens an index file and runs its first statements (when SQLite opens
# the log and shared memory beside it, by name), and while a damaged index's files are moved: a connection
# made to the damaged file must not open the fresh index's shared memory (SQLite would start it over, under
# the connections using it). Nothing waits on another lock while holding it.
_opening = threading.RLock()
_MOVE_WAIT = 2.0  # seconds a set-aside waits for other kernels opening the index before it moves the files
# How long a lease, or the writes a process makes as it ends, wait for the index's write lock (ms): our own
# kernels hold it for moments; past this it is another program's (a database browser's open transaction), and
# a miss computes without the lease (at worst twice, never wrong), an ending kernel leaves its last access times.
_SHORT_WAIT_MS = 5000
_BACKGROUND_WAIT_MS = 60000  # what our background threads wait for it (diskcache's own wait)
_OPEN_WAIT = 20.0  # seconds an opening waits for the lock a set-aside holds on the folder (held for moments)
_CONTESTED_FOR = 60.0  # seconds after such a wait ran out during which openings do not wait again
_contested: dict[str, float] = {}  # folders whose lock was held past _OPEN_WAIT -> until when openings do not wait
_locked_directories: set[int] = set()  # descriptors _directory_lock holds: a forked child closes its copies
# Index folders whose write lock a write of ours waited _SHORT_WAIT_MS for in vain -> until when (monotonic) writes
# there try it without waiting: a loop of misses, or of invalidate calls, waits once, not once per call. A write
# that gets the lock ends it.
_write_lock_held: dict[str, float] = {}


def _lately_held(directory: str) -> bool:
    """Return whether a notebook's thread is to try the write lock in ``directory`` without waiting: a write of ours
    waited _SHORT_WAIT_MS for it in vain lately (see _write_lock_held). Our background threads always wait."""
    return not getattr(own_thread, "ours", False) and _write_lock_held.get(directory, 0.0) > time.monotonic()


def _note_lock(directory: str, held: bool, free: bool) -> None:
    """Note what a wait for the write lock in ``directory`` found (``held``: as _lately_held said before it): given up
    after a whole wait, the lock counts as held for _CONTESTED_FOR; got, as free again. Our background threads' waits
    say nothing of it."""
    if getattr(own_thread, "ours", False):
        return
    if free:
        if held:
            _write_lock_held.pop(directory, None)
    elif not held:
        _write_lock_held[directory] = time.monotonic() + _CONTESTED_FOR


def lock_held_error(waited: bool) -> sqlite3.OperationalError:
    """Return the error of a write given up because another program holds the index's write lock."""
    how = (f"for {_SHORT_WAIT_MS // 1000} s" if waited
           else f"(for over {_SHORT_WAIT_MS // 1000} s within the last {_CONTESTED_FOR:.0f} s)")
    return sqlite3.OperationalError(f"another program held the cache index's write lock {how}: end its open "
                                    "transaction (a database browser, a sqlite3 shell) to let this write through")


@contextlib.contextmanager
def _directory_lock(directory: str, exclusive: bool) -> Iterator[None]:
    """Hold a lock on the cache directory itself among kernels: shared while one opens the index file and runs
    its first statements, exclusive while one moves a damaged index's files (as ``_opening`` within one).

    A kernel opening the index between the moves would make a fresh ``cache.db`` beside the damaged one's log
    (SQLite deletes that log, or reads it as the fresh index's), and the moves would then take the fresh
    index's log away. The exclusive side waits ``_MOVE_WAIT`` at most, then moves anyway; where the file
    system has no such locks, nothing is held. The shared side waits _OPEN_WAIT at most, then opens anyway."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        _locked_directories.add(fd)
    except OSError:
        fd = -1
    try:
        if fd >= 0 and fcntl is not None:
            with contextlib.suppress(OSError):
                # Neither side waits for ever: anyone who can read the folder can lock it, and a lock held for
                # ever (by another user's process, say) must not hang every kernel opening the index. A kernel
                # moving files holds it for moments; one held past _OPEN_WAIT is taken as held by no kernel of
                # ours, and for a while after, opening does not wait for it.
                now = time.monotonic()
                patient = not exclusive and _contested.get(directory, 0.0) < now
                deadline = now + (_MOVE_WAIT if exclusive else _OPEN_WAIT if patient else 0.0)
                while True:
                    try:
                        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() > deadline:
                            if patient:
                                _contested[directory] = time.monotonic() + _CONTESTED_FOR
                                warn_once(f"folder-lock:{directory}", f"a lock on the cache folder {directory} was "
                                          f"held by another process for {_OPEN_WAIT:.0f} s: the index is opened "
                                          "without waiting for it (this process waits again in a minute). If no "
                                          "kernel of yours is stuck there, find what holds it (fuser, lsof)",
                                          StorageWarning)
                            break
                        time.sleep(0.001)
        yield
    finally:
        if fd >= 0:
            if fcntl is not None:
                with contextlib.suppress(OSError):
                    fcntl.flock(fd, fcntl.LOCK_UN)  # first: a child forked before the close holds no lock
            _locked_directories.discard(fd)
            os.close(fd)


class _Index(diskcache.Cache):  # type: ignore[misc]
    """diskcache's ``Cache``, whose settings are ours alone, whatever the index's Settings table says.

    diskcache applies each ``sqlite_`` and ``disk_`` row of that table to every connection it opens and to
    its disk (a PRAGMA, an attribute), and takes every other row over what it was given. Anyone who could
    write the file could plant a row there: a memory map of the index (a SIGBUS once the file is cut
    short), an exclusive locking mode (every other connection waits forever), payload files in another
    folder. So a row naming a setting of ours gets our value, and any other row is ignored. The size
    statistic, which the volume adds up, is checked against what can be on the disk (``volume``).
    """

    def __init__(self, directory: str, **settings: Any) -> None:
        # Before diskcache's own __init__, which reads the table and resets each row it found.
        self._own = {**diskcache.core.DEFAULT_SETTINGS,
                     **{k: v for k, v in settings.items() if k not in ("disk", "timeout")}}
        self._size_counted = False
        self._disk_total: int | None = None
        self._found: _Found | None = _Found()  # while diskcache's opening runs: see _sql_retry
        # Every connection of these handles, each thread's, opens the index in the folder the store opened (see
        # Store._open), not the one a link names by the time a thread first connects.
        self._folder = real_directory(directory)
        try:
            super().__init__(directory, **settings)
        finally:
            self._found = None

    @property
    def _sql_retry(self) -> Callable[..., sqlite3.Cursor]:
        """diskcache's statement runner, which retries a locked index for 60 s; while its opening runs, one that
        first leaves out the writes that would change nothing.

        That opening writes each of its settings back to the Settings table and creates its tables, indexes and
        triggers "if not exists", every statement waiting up to a minute for the write lock: a kernel opening
        the cache while another program held that lock (a database browser's open transaction) waited for
        many minutes, though a WAL index can be read meanwhile. So a row or a schema object already as it would
        be written is not written again, and an index set up before is opened without a write. A setting row of
        ours holding another value is written back only if the lock is free at once: our handles take our own
        values whatever the table says (``reset``), so the row is only kept in line for other readers.
        """
        retry: Callable[..., sqlite3.Cursor] = diskcache.Cache._sql_retry.fget(self)
        found = self.__dict__.get("_found")
        if found is None:
            return retry
        return functools.partial(found.run, self, retry)

    def reset(self, key: str, value: Any = diskcache.core.ENOVAL, update: bool = True) -> Any:
        own = self._own
        if key in own:
            value = own[key]  # written by diskcache from the table (or asked for): ours
        elif key not in diskcache.core.METADATA:
            return value  # not a setting of ours: applied to nothing
        return super().reset(key, value, update)

    def _transact(self, retry: bool = False, filename: str | None = None) -> _Transaction:
        """diskcache's write transaction (every set, delete, eviction and ``transact``), run only once the index
        is found to hold no schema object that is not ours (``_planted_objects``): one planted since would run
        inside it."""
        return _Transaction(self, super()._transact(retry, filename))

    def configure(self, key: str, value: Any) -> Any:
        """Change one of our settings (``size_limit`` after ``configure``)."""
        self._own[key] = value
        return self.reset(key, value)

    @property
    def disk_total(self) -> int:
        """The size of the file system holding the index, read once: no statistic of ours can exceed it."""
        if self._disk_total is None:
            self._disk_total = _disk_bytes(self._directory)
        return self._disk_total

    def volume(self) -> int:
        """Return the index's pages and the payload files' bytes (the size statistic, when it can be true)."""
        ((page_count,),) = self._sql("PRAGMA page_count").fetchall()
        size = self.reset("size")
        if not isinstance(size, int) or not 0 <= size <= self.disk_total:
            size = self.count_size()  # planted or damaged: counted from the rows, and written back
        return int(self._page_size * page_count + size)

    def count_size_once(self) -> None:
        """Count the payload files' bytes from the rows, once for these handles: before the first eviction,
        which a statistic planted too high would make take every entry (a plausible wrong one included)."""
        if not self._size_counted:
            self._size_counted = True
            self.count_size()

    def count_size(self) -> int:
        """Count the payload files' bytes from the rows that eviction can take, write it back, and return it.

        diskcache's triggers add every row's ``size``, a planted row's too: one beyond the disk would make
        every write evict every entry (and never itself), a negative one would turn the limit off. Only
        our records with a payload file and a size the disk can hold are counted, which are the rows
        eviction takes, so evicting can always bring the count under the limit.
        """
        counted = ("SELECT COALESCE(SUM(size), 0) FROM Cache WHERE mode = ? AND raw = 1 AND filename IS NOT NULL "
                   "AND size BETWEEN 0 AND ?")
        bounds = (MODE_RECORD, self.disk_total)
        # One statement, one scan: a write committed meanwhile is counted too.
        with contextlib.suppress(sqlite3.Error):
            written = self._sql(f"UPDATE Settings SET value = ({counted}) WHERE key = 'size' RETURNING value",
                                bounds).fetchall()
            if written and isinstance(written[0][0], int):
                return written[0][0]
        ((size,),) = self._sql(counted, bounds).fetchall()  # no row to write it in
        return int(size)

    @property
    def _con(self) -> sqlite3.Connection:
        """This thread's connection (diskcache's); a new one notes which index file it opened, in ``opened``:
        the path's (device, inode) just before and after it opened, when they agree (else None)."""
        local = self._local
        con = getattr(local, "con", None)
        if con is not None and getattr(local, "pid", None) == os.getpid():
            return con
        folder = self._folder
        path = os.path.join(folder, _DB_NAME)
        _refuse_opening(folder)
        with _opening, _directory_lock(folder, exclusive=False):
            before = _walfiles.file_ident(path)
            if getattr(local, "pid", None) != os.getpid():
                self.close()  # as diskcache does after a fork
                local.pid = os.getpid()
            if self.__dict__.get("_found") is None:  # opened before: this thread's connection never creates it
                local.con = _connect_existing(path, self._timeout)
            else:  # the store's opening: the index is made (if new) beside the marker it just wrote
                local.con = sqlite3.connect(path, timeout=self._timeout, isolation_level=None)
            # The per-connection settings (pragmas) diskcache applies to a connection it opens itself, from the
            # Settings table: ours, whatever the table says (``reset``). Its opening ends with a connection of its
            # own timeout, opened here too, which writes with them (the log's checkpoints are the background thread's).
            for key, value in self._own.items():
                if key.startswith("sqlite_"):
                    self.reset(key, value, update=False)
            con = diskcache.Cache._con.fget(self)  # its first statement reads the Settings table
            con.set_authorizer(_only_our_statements)
        local.opened = (con, before if before is not None and _walfiles.file_ident(path) == before else None)
        return con


# diskcache's opening statements that write, as it words them, with what each writes (see _Index._sql_retry).
_CREATE_IF_NOT_EXISTS = re.compile(r"CREATE (?:UNIQUE )?(?:TABLE|INDEX|TRIGGER) IF NOT EXISTS (\w+)")
_SET_SETTING = "INSERT OR REPLACE INTO Settings VALUES (?, ?)"
_ADD_SETTING = "INSERT OR IGNORE INTO Settings VALUES (?, ?)"
_UPDATE_SETTING = "UPDATE Settings SET value = ? WHERE key = ?"


class _Found:
    """What an index held when a handle began opening it: its Settings rows and its schema's names (read once)."""

    __slots__ = ("names", "settings")

    def __init__(self) -> None:
        self.settings: dict[str, Any] | None = None  # None: not read yet
        self.names: set[str] = set()

    def run(self, index: _Index, retry: Callable[..., sqlite3.Cursor], statement: str,
            *args: Any) -> sqlite3.Cursor:
        """Run one of diskcache's opening statements through ``retry``, unless it would write nothing new."""
        if self.settings is None:
            self.settings = {}
            with contextlib.suppress(sqlite3.OperationalError):  # no table yet: a new index
                self.settings = dict(retry("SELECT key, value FROM Settings").fetchall())
                self.names = {name for (name,) in retry("SELECT name FROM sqlite_master").fetchall()}
        settings = self.settings
        created = _CREATE_IF_NOT_EXISTS.match(statement)
        if created is not None:
            if created.group(1) in self.names:
                return index._sql("SELECT 1 WHERE 0")
            self.names.add(created.group(1))
            return retry(statement, *args)
        if statement in (_SET_SETTING, _ADD_SETTING, _UPDATE_SETTING):
            key, value = args[0] if statement != _UPDATE_SETTING else args[0][::-1]
            if key in settings and (statement == _ADD_SETTING or settings[key] == value):
                return index._sql("SELECT 1 WHERE 0")  # as it would be written
            if key in settings and key in index._own:
                try:  # another value of a setting of ours: kept in line when the lock is free, else left
                    cursor = index._sql(statement, *args)
                except sqlite3.OperationalError:
                    return index._sql("SELECT 1 WHERE 0")
            else:
                cursor = retry(statement, *args)  # a row the index lacks: needed, as diskcache waits for it
            settings[key] = value
            return cursor
        return retry(statement, *args)


class _Transaction:
    """diskcache's write transaction, entered so that an interrupt (Ctrl-C) cannot leave it open.

    diskcache begins it before its ``try``, and a generator's ``__enter__`` can be interrupted after the
    generator yielded: either way nothing would end it, and the index's write lock would be held against every
    other kernel until the process ends. A class (see ``immediate``): once ``__enter__`` returned, ``__exit__`` runs.
    """

    __slots__ = ("index", "inner")

    def __init__(self, index: _Index, inner: Any) -> None:
        self.index = index
        self.inner = inner  # diskcache's context manager (a generator's)

    def __enter__(self) -> tuple[Any, Any]:
        index, inner = self.index, self.inner
        con = index._con
        ours = index._txn_id != threading.get_ident()  # else the caller's transaction (``transact()``) goes on
        directory = index._directory
        # Our background threads (committing queued results, keeping copies) wait as long as diskcache does: no
        # notebook waits for them, and under heavy writing by kernels of ours a result is better late than lost.
        background = getattr(own_thread, "ours", False)
        held = ours and _lately_held(directory)
        if ours:
            # diskcache's BEGIN waits the handle's timeout (_SHORT_WAIT_MS), then raises its Timeout; while the
            # lock was lately held that long, not at all.
            wait = (id(con), _BACKGROUND_WAIT_MS if background else 0 if held else _SHORT_WAIT_MS)  # id: no reference
            if getattr(index._local, "wait", None) != wait:
                con.execute(f"PRAGMA busy_timeout = {wait[1]}")
                index._local.wait = wait
        try:
            entered = inner.__enter__()
        except BaseException as exc:
            inner.gen.close()  # suspended where it yielded: diskcache rolls back and forgets the transaction itself
            if ours:
                if index._txn_id == threading.get_ident():
                    index._txn_id = None  # interrupted just after BEGIN: noted as begun, never to be ended
                if con.in_transaction:
                    con.execute("ROLLBACK")
            if isinstance(exc, diskcache.Timeout):
                # Another program's open transaction (ours hold the lock for moments): the caller warns and goes
                # on, where diskcache's Timeout would reach the notebook.
                _note_lock(directory, held, free=False)
                raise lock_held_error(not held) from None
            raise
        _note_lock(directory, held, free=True)
        try:
            _schema_still_ours(con)
        except BaseException as exc:
            inner.__exit__(type(exc), exc, exc.__traceback__)  # diskcache rolls back
            raise
        return entered  # type: ignore[no-any-return]

    def __exit__(self, *exc: Any) -> bool:
        return bool(self.inner.__exit__(*exc))


def _made_by_us(index: str) -> bool:
    """Return True when ``index`` is a database holding our own table, read without changing it or its folder
    (SQLite's immutable mode: no lock, no log, no shared-memory file)."""
    try:
        # Never through a link, and never waiting on a FIFO or device: only a plain file is read.
        fd = os.open(index, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode) or os.pread(fd, 16, 0) != b"SQLite format 3\x00":
            return False
        # SQLite opens by name: where the system names the descriptor itself, the file checked is the one read.
        by_fd = f"/proc/self/fd/{fd}"
        path = by_fd if os.path.exists(by_fd) else os.path.abspath(index)
        con = sqlite3.connect(f"file:{urllib.parse.quote(path)}?immutable=1", uri=True)
        try:
            return con.execute("SELECT 1 FROM sqlite_master WHERE name = 'NbmRecordFacts'").fetchone() is not None
        finally:
            con.close()
    except (OSError, sqlite3.Error):
        return False
    finally:
        os.close(fd)


def _plain_file_or_none(path: str) -> bool:
    """Return True when nothing is at ``path``, or a plain file (not a link to one)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return True


def _disk_bytes(directory: str) -> int:
    """Return the size of the file system holding ``directory`` (what no statistic of ours can exceed)."""
    try:
        return shutil.disk_usage(directory).total
    except OSError:
        return 1 << 62


def _writer_file(writer: diskcache.Cache) -> tuple[int, int] | None:
    """Return the (device, inode) of the index file the calling thread's connection of ``writer`` opened, if known."""
    local = writer._local
    opened = getattr(local, "opened", None)
    return opened[1] if opened is not None and opened[0] is getattr(local, "con", None) else None


def _connection_file(directory: str, con: sqlite3.Connection) -> tuple[int, int] | None:
    """Return the (device, inode) of the index file ``con``, this thread's ``connection``, opened."""
    held = _connections.__dict__.get("by_dir", {}).get(directory)
    return held[1] if held is not None and held[2] is con else None


def _connect_existing(path: str, timeout: float, **options: Any) -> sqlite3.Connection:
    """Connect to the index file at ``path`` only if it is there: SQLite creates a missing file, and a cache folder's
    link pointed elsewhere (or the index removed) between a look and the connection would leave an empty index,
    made without its folder's marker, in the folder it names now. Only a store's opening creates the index."""
    return sqlite3.connect(f"file:{urllib.parse.quote(path)}?mode=rw", uri=True, timeout=timeout,
                           isolation_level=None, **options)


def connection(directory: str) -> sqlite3.Connection:
    """Return this thread's own SQLite connection to a directory's index (scans and checks, not writes)."""
    lost = _lost_logs.get(directory)
    if lost is not None:
        raise LogsNotUsable(errno.ESTALE, lost, directory)
    cache: dict[str, tuple[int, tuple[int, int], sqlite3.Connection]] = _connections.__dict__.setdefault("by_dir", {})
    folder = real_directory(directory)  # the folder the directory's store opened (see Store._open)
    path = os.path.join(folder, _DB_NAME)
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):  # a link planted under the index's name: what it names is not opened
        raise sqlite3.OperationalError(f"{path} is a link or not a plain file")
    ident = (st.st_dev, st.st_ino)
    held = cache.get(directory)
    if held is not None and held[0] == os.getpid() and held[1] == ident:
        return held[2]
    _refuse_opening(folder)
    for _attempt in range(3):
        with _opening, _directory_lock(folder, exclusive=False):
            con = _connect_existing(path, 60, check_same_thread=False)
            try:
                failed = _first_statements(con)
            except BaseException:
                con.close()
                raise
        # SQLite opens the log and its shared memory by name at the first statement (it reads the schema): the
        # index set aside since the connection opened its file (by another kernel), they would be the fresh
        # index's beside the damaged one's file. So the name must still be the file's once they ran; if not,
        # open again.
        opened = _walfiles.file_ident(path)
        if opened == ident and failed is None:
            cache[directory] = (os.getpid(), ident, con)
            return con
        con.close()
        if opened == ident and failed is not None:
            raise failed  # the file is the one opened: its own error
        if opened is None:
            raise FileNotFoundError(errno.ENOENT, "the cache index was moved while it was opened", path)
        ident = opened
    raise sqlite3.OperationalError(f"the cache index {path} was replaced each time it was opened")


def _first_statements(con: sqlite3.Connection) -> sqlite3.Error | None:
    """Set up a connection of ours, reading the index once; return the SQLite error it met, if any."""
    try:
        # As diskcache's own connections: in WAL mode a commit need not wait for the disk (a crash may
        # lose the last commits, never consistency); leases and access times are written here. Nor does a
        # commit here checkpoint the log (SQLite's default, past 1,000 pages): the background thread does.
        con.execute("PRAGMA synchronous = NORMAL")
        con.execute(f"PRAGMA wal_autocheckpoint = {_WAL_BACKSTOP}")
        # Never through a memory map (see _open_handles); as many pages kept as diskcache's connections keep.
        con.execute("PRAGMA mmap_size = 0")
        # Functions with side effects are not called from the schema (a view or trigger planted there).
        con.execute("PRAGMA trusted_schema = OFF")
        con.execute(f"PRAGMA cache_size = {diskcache.DEFAULT_SETTINGS['sqlite_cache_size']}")
        con.execute("PRAGMA schema_version").fetchone()
        con.set_authorizer(_only_our_statements)
    except sqlite3.Error as exc:
        return exc
    return None


def _renew_access_times(con: sqlite3.Connection, rows: dict[str, int]) -> float:
    """Set the access time of these rows to now (the LRU order), a few hundred per statement; return now.

    ``rows``: each row's key and its row id as read (0 where not known). The row ids only decide
    which keys share a statement: rows near each other in the table share its pages, and each
    statement rewrites every page it touches (grouped by key, 100,000 rows took five times as long).

    ``rows`` is copied first, in one step: a hit that took the pending dict before it was swapped out
    may still add to it, and a dict that changes while a loop walks it stops the loop with an error.
    """
    rows = dict(rows)
    unknown = [key for key, rowid in rows.items() if not rowid]
    if unknown:
        for part in slices(unknown):
            rows.update(con.execute(f"SELECT key, rowid FROM Cache WHERE key IN ({marks(len(part))}) AND raw = 1",
                                    part).fetchall())
    now = time.time()
    for part in slices(sorted(rows, key=rows.__getitem__)):
        con.execute(f"UPDATE Cache SET access_time = ? WHERE key IN ({marks(len(part))})", [now, *part])
    return now


def _index_payload_files(con: sqlite3.Connection) -> None:
    """Index the rows that name a payload file: a delete tells at once whether a file is still used.

    Partial (inline records, most of them, name none): a write of one adds no entry to it. An
    index made whole by an earlier version is made partial once.
    """
    found = con.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'Cache_filename'").fetchone()
    if found is not None and "WHERE" in (found[0] or ""):
        return
    with _write_transaction(con):
        con.execute("DROP INDEX IF EXISTS Cache_filename")
        con.execute("CREATE INDEX Cache_filename ON Cache(filename) WHERE filename IS NOT NULL")


# What ``info`` sums per function, one row per record, written with the record and deleted with its row (by
# the trigger, whoever deletes it): a summary reads this table, not every record. Unverified, so it is only
# counted and shown; nothing is loaded, opened or deleted on its word. Keyed by the record row's rowid, so
# new facts go at the table's end: keyed by the row's key (a hash), every record written would dirty a page
# of its own in a commit. The first version of the table (NbmFacts, keyed so) is dropped.
_FACTS_SCHEMA = (
    "DROP TRIGGER IF EXISTS NbmFacts_gone",
    "DROP TABLE IF EXISTS NbmFacts",
    "CREATE TABLE IF NOT EXISTS NbmRecordFacts (id INTEGER PRIMARY KEY, key TEXT, fid TEXT, notebook TEXT, "
    "code TEXT, size INTEGER, duration REAL, created REAL, marker INTEGER)",
    "CREATE TRIGGER IF NOT EXISTS NbmRecordFacts_gone AFTER DELETE ON Cache BEGIN "
    "DELETE FROM NbmRecordFacts WHERE id = OLD.rowid; END",
)
# Records held in their rows, written as diskcache's ``set`` leaves them (its triggers keep the count and
# size), many per statement: SQLite is entered once for all, and a background thread that writes them lets
# go of the GIL once, not once per row.
_INLINE_ROW = "(?, 1, ?, ?, ?, 0, ?, 0, ?, NULL, ?)"
_UPSERT_INLINE = (
    "INSERT INTO Cache (key, raw, store_time, expire_time, access_time, access_count, tag, size, mode, filename, "
    "value) VALUES {rows} ON CONFLICT (key, raw) DO UPDATE SET store_time = excluded.store_time, "
    "expire_time = excluded.expire_time, access_time = excluded.access_time, access_count = 0, tag = excluded.tag, "
    "size = 0, mode = excluded.mode, filename = NULL, value = excluded.value")
# The upsert tells each row's id (SQLite 3.35 and later; before, they are read after it).
_RETURNING = " RETURNING key, rowid" if sqlite3.sqlite_version_info >= (3, 35) else ""
# ... and, with this, leaves a row that names a payload file as it was (such a row returns no id).
_UNLESS_FILE = " WHERE filename IS NULL"
_FACT_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?)"
_FACTS = "INSERT OR REPLACE INTO NbmRecordFacts VALUES {rows}"
_ROWS_PER_STATEMENT = 256  # 7 to 9 parameters each: far below SQLite's limit on one statement's
# Rows of the index that are no record: leases, and hit counters (``flush``).
_NOT_RECORDS = (("lock:", "lock;"), ("stats:", "stats;"))


def _upsert_inline(count: int, unless_file: bool = False) -> str:
    """Return the upsert of ``count`` records held in their rows (``unless_file``: leaving rows that name a file)."""
    return _UPSERT_INLINE.format(rows=",".join([_INLINE_ROW] * count)) + (_UNLESS_FILE if unless_file else "") \
        + _RETURNING


def _flat(rows: Iterable[tuple[Any, ...]]) -> list[Any]:
    """Return the parameters of a statement that writes ``rows``: their values, one after another."""
    return list(itertools.chain.from_iterable(rows))


def _inside_transaction(writer: diskcache.Cache) -> bool:
    """Return whether the calling thread holds ``writer``'s write transaction (a caller's ``transaction``)."""
    return getattr(writer, "_txn_id", None) == threading.get_ident()


# diskcache's triggers keep the payload files' total size in Settings ("size"), one UPDATE for each row
# written, changed or deleted. A record held in its row has size 0 (most records), and so has every row
# that is no record: for them that UPDATE adds 0, and it made up a third of a quick result's commit. The
# same triggers, made to skip it (diskcache creates its own only where none of the name exists).
_SIZE_TRIGGERS = (
    ("Settings_size_insert", "AFTER INSERT ON Cache FOR EACH ROW WHEN NEW.size <> 0 BEGIN "
                             "UPDATE Settings SET value = value + NEW.size WHERE key = 'size'; END"),
    ("Settings_size_update", "AFTER UPDATE ON Cache FOR EACH ROW WHEN coalesce(NEW.size, 0) <> coalesce(OLD.size, 0) "
                             "BEGIN UPDATE Settings SET value = value + coalesce(NEW.size, 0) - coalesce(OLD.size, 0) "
                             "WHERE key = 'size'; END"),
    ("Settings_size_delete", "AFTER DELETE ON Cache FOR EACH ROW WHEN OLD.size <> 0 BEGIN "
                             "UPDATE Settings SET value = value - OLD.size WHERE key = 'size'; END"),
)


def _quiet_size_triggers(con: sqlite3.Connection) -> None:
    """Give an index the size triggers that skip rows of size 0 (once: an index that has them is left as it is)."""
    def done() -> bool:
        found = dict(con.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name IN (?, ?, ?)",
                                 [name for name, _ in _SIZE_TRIGGERS]).fetchall())
        return all(_normal_sql(found.get(name) or "") == _normal_sql(f"CREATE TRIGGER {name} {body}")
                   for name, body in _SIZE_TRIGGERS)

    if done():
        return
    with _write_transaction(con):
        if done():
            return  # another process replaced them while this one waited for the write lock
        for name, body in _SIZE_TRIGGERS:
            con.execute(f"DROP TRIGGER IF EXISTS {name}")
            con.execute(f"CREATE TRIGGER {name} {body}")


def _normal_sql(sql: str) -> str:
    return " ".join(sql.split())


def _diskcache_trigger(name: str, body: str) -> str:
    return f"CREATE TRIGGER {name} AFTER {body}; END"


# Every trigger an index of ours may hold, by name, with each text it may have: diskcache's own (and its first size
# triggers, which _quiet_size_triggers replaces), ours, and the facts trigger of an earlier version. An index
# holding any other trigger, or any view, is not ours alone: they would run inside our statements.
_OUR_TRIGGERS: dict[str, set[str]] = {
    "Settings_count_insert": {_diskcache_trigger("Settings_count_insert", "INSERT ON Cache FOR EACH ROW BEGIN "
                                                 'UPDATE Settings SET value = value + 1 WHERE key = "count"')},
    "Settings_count_delete": {_diskcache_trigger("Settings_count_delete", "DELETE ON Cache FOR EACH ROW BEGIN "
                                                 'UPDATE Settings SET value = value - 1 WHERE key = "count"')},
    "Settings_size_insert": {_diskcache_trigger("Settings_size_insert", "INSERT ON Cache FOR EACH ROW BEGIN "
                                                'UPDATE Settings SET value = value + NEW.size WHERE key = "size"')},
    "Settings_size_update": {_diskcache_trigger("Settings_size_update", "UPDATE ON Cache FOR EACH ROW BEGIN "
                                                "UPDATE Settings SET value = value + NEW.size - OLD.size "
                                                'WHERE key = "size"')},
    "Settings_size_delete": {_diskcache_trigger("Settings_size_delete", "DELETE ON Cache FOR EACH ROW BEGIN "
                                                'UPDATE Settings SET value = value - OLD.size WHERE key = "size"')},
    "NbmRecordFacts_gone": {_normal_sql(_FACTS_SCHEMA[-1].replace(" IF NOT EXISTS", ""))},
    "NbmFacts_gone": {"CREATE TRIGGER NbmFacts_gone AFTER DELETE ON Cache BEGIN "
                      "DELETE FROM NbmFacts WHERE key = OLD.key; END"},
}
for _name, _body in _SIZE_TRIGGERS:
    _OUR_TRIGGERS[_name].add(_normal_sql(f"CREATE TRIGGER {_name} {_body}"))
# What an earlier version of ours wrote (26e2cd1): accepted, and replaced by the triggers above when opened.
_OUR_TRIGGERS["Settings_size_update"].add(_normal_sql(
    "CREATE TRIGGER Settings_size_update AFTER UPDATE ON Cache FOR EACH ROW WHEN NEW.size IS NOT OLD.size BEGIN "
    "UPDATE Settings SET value = value + NEW.size - OLD.size WHERE key = 'size'; END"))


# Every table and index an index of ours may hold on the tables our statements use, by name, with each text it may
# have: diskcache's (its eviction policies' indexes included) and ours, earlier versions' too (the whole
# Cache_filename index and the first facts table, both replaced when opened). SQLite evaluates an index's
# expressions and WHERE clause, a CHECK constraint and a generated column inside the statement that writes the
# row, where our authorizer sees only our own statement's steps: any other text, or any other index on these
# tables, is not ours alone.
_OUR_TABLES_AND_INDEXES: dict[str, set[str]] = {
    "Settings": {"CREATE TABLE Settings ( key TEXT NOT NULL UNIQUE, value)"},
    "Cache": {"CREATE TABLE Cache ( rowid INTEGER PRIMARY KEY, key BLOB, raw INTEGER, store_time REAL, "
              "expire_time REAL, access_time REAL, access_count INTEGER DEFAULT 0, tag BLOB, size INTEGER DEFAULT 0, "
              "mode INTEGER DEFAULT 0, filename TEXT, value BLOB)"},
    "Cache_key_raw": {"CREATE UNIQUE INDEX Cache_key_raw ON Cache(key, raw)"},
    "Cache_expire_time": {"CREATE INDEX Cache_expire_time ON Cache (expire_time)"},
    "Cache_store_time": {"CREATE INDEX Cache_store_time ON Cache (store_time)"},
    "Cache_access_time": {"CREATE INDEX Cache_access_time ON Cache (access_time)"},
    "Cache_access_count": {"CREATE INDEX Cache_access_count ON Cache (access_count)"},
    "Cache_tag_rowid": {"CREATE INDEX Cache_tag_rowid ON Cache(tag, rowid)"},
    "Cache_filename": {"CREATE INDEX Cache_filename ON Cache(filename) WHERE filename IS NOT NULL",
                       "CREATE INDEX Cache_filename ON Cache(filename)"},
    "NbmRecordFacts": {_normal_sql(_FACTS_SCHEMA[2].replace(" IF NOT EXISTS", ""))},
    "NbmFacts": {"CREATE TABLE NbmFacts (key TEXT PRIMARY KEY, fid TEXT, notebook TEXT, code TEXT, size INTEGER, "
                 "duration REAL, created REAL, marker INTEGER) WITHOUT ROWID"},
}
# The tables our statements and triggers read or write (SQLite's names are alike in any case): another table, and
# its indexes, run nothing inside them (ANALYZE's statistics, a table of the user's), and are left alone.
_OUR_TABLE_NAMES = frozenset({"cache", "settings", "nbmrecordfacts", "nbmfacts"})

# By connection (its id: connections take no weak reference), the schema version last found to hold only our
# objects: a write looks again when it moved. A reused id with the same version skips one look at most; every
# index file opened is looked at whole first (``Store._open``).
_schema_checked: dict[int, int] = {}


def _schema_still_ours(con: sqlite3.Connection) -> None:
    """Inside a write transaction (no one changes the schema meanwhile): raise DatabaseError when an object not
    ours (see ``_planted_objects``) was added since ``con`` last looked, before a statement of ours could run it."""
    ((version,),) = con.execute("PRAGMA schema_version").fetchall()
    if _schema_checked.get(id(con)) != version:
        _planted_objects(con)
        if len(_schema_checked) > 4096:
            _schema_checked.clear()
        _schema_checked[id(con)] = version


def _planted_objects(con: sqlite3.Connection) -> None:
    """Raise DatabaseError when the index holds a view, a trigger that is not one of ours, or a table or index on
    the tables we use that is not as diskcache or we make it (an index, CHECK or generated column planted there);
    the schema is read, never run."""
    for kind, name, table, sql in con.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall():
        if kind == "trigger":
            known = _OUR_TRIGGERS
        elif kind == "view":
            known = {}
        elif not isinstance(table, str) or table.lower() not in _OUR_TABLE_NAMES:
            continue
        elif kind == "index" and sql is None and str(name).startswith("sqlite_autoindex_"):
            continue  # SQLite's own, for a UNIQUE or PRIMARY KEY of its table, whose text is checked
        else:
            known = _OUR_TABLES_AND_INDEXES
        if not isinstance(sql, str) or _normal_sql(sql) not in known.get(name, ()):
            if kind == "table":
                raise sqlite3.DatabaseError(f"its table {name!r} is not as notebook_memo made it (a constraint or "
                                            "column was added), which would run inside its writes")
            if kind == "index":
                raise sqlite3.DatabaseError(f"it holds an index notebook_memo did not make ({name!r}), whose "
                                            "expressions would run inside its writes")
            raise sqlite3.DatabaseError(f"it holds a {kind} notebook_memo did not make ({name!r}), which would run "
                                        "inside its statements")


# What the triggers of ours (by name) do inside a statement, as SQLite's authorizer reports it: read these
# tables, change the counts in Settings, delete facts, call coalesce. A view or trigger planted after a
# connection looked (reads run no check of the schema; writes do, see _schema_still_ours) reports its steps
# under its own name, or does something else under ours (a view is a SELECT, a loop a recursive query).
_TRIGGER_TABLES = frozenset({"Cache", "Settings", "NbmRecordFacts", "NbmFacts"})
_TRIGGER_STEPS = frozenset({(sqlite3.SQLITE_UPDATE, "Settings", "value"), (sqlite3.SQLITE_FUNCTION, None, "coalesce"),
                            (sqlite3.SQLITE_DELETE, "NbmRecordFacts", None), (sqlite3.SQLITE_DELETE, "NbmFacts", None)})


def _only_our_statements(action: int, first: str | None, second: str | None, _db: str | None,
                         within: str | None) -> int:
    """SQLite's authorizer for our connections, asked as each statement is prepared (again after any change of
    the schema): a step of our own SQL, or of one of our triggers, is allowed; any other is refused, and
    the statement fails with an error (the index is then set aside) before it runs."""
    if within is None or (within == RENEWED and action == sqlite3.SQLITE_SELECT):
        return sqlite3.SQLITE_OK  # our statement's own step (or its common table's, in renew_leases)
    if within in _OUR_TRIGGERS and ((action == sqlite3.SQLITE_READ and first in _TRIGGER_TABLES)
                                    or (action, first, second) in _TRIGGER_STEPS):
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def _keep_facts(con: sqlite3.Connection) -> None:
    """Create the facts table and its trigger in an index that has none."""
    if con.execute("SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = 'NbmRecordFacts_gone'").fetchone():
        return
    with _write_transaction(con):
        for statement in _FACTS_SCHEMA:
            con.execute(statement)


def facts_of(row: str, meta: dict[str, Any], size: int, duration: float, created: float) -> tuple[Any, ...]:
    """Return the facts row of a record: the parts of its metadata and header that ``info`` sums."""
    return (row, meta.get("fid"), meta.get("notebook"), meta.get("code"), meta.get("size", size),
            meta.get("duration", duration), created, int("variants" in meta))


def directory_trouble(directory: str) -> str | None:
    """Return why others could have written into ``directory``, its index, or the index's log or wal-index
    (SQLite replays a log it finds into the index), or None when only we can."""
    checked = []
    for path in (directory, os.path.join(directory, _DB_NAME)):
        with contextlib.suppress(OSError):
            checked.append((path, os.stat(path)))
    return others_could_write(checked) or _log_trouble(directory)


def _log_trouble(directory: str) -> str | None:
    """Return why others could have written ``cache.db-wal``, ``cache.db-shm`` or ``cache.db-journal`` in
    ``directory``, or None."""
    checked = []
    for suffix in _INDEX_FILES[1:]:
        path = os.path.join(directory, _DB_NAME + suffix)
        with contextlib.suppress(OSError):
            checked.append((path, os.lstat(path)))
    return others_could_write(checked)


class UntrustedFolder(OSError):
    """The index is not opened: others could have written the folder or its files, and no secret is set."""


class LogsNotUsable(OSError):
    """The index is not used: its log and wal-index are others' and in use, or were replaced under this process."""


def untrusted_message(directory: str, trouble: str) -> str:
    """Return the warning for a cache folder others could have written, used without a secret."""
    return (f"{trouble}: a stored value is a pickle, which can run code when loaded, so without a secret nothing "
            "is loaded from or stored in this cache; results are computed instead. Fix it with "
            f"`chmod go-w {directory}` (and `chown` it to yourself), or set a secret shared by everyone who "
            "writes there (NOTEBOOK_MEMO_SECRET or configure(secret=...)).")


def unusable_message(directory: str, exc: OSError) -> str:
    """Return why a cache folder that cannot be opened is not used (``exc``: what opening it raised)."""
    if isinstance(exc, (UntrustedFolder, LogsNotUsable)):
        return exc.strerror or str(exc)
    return (f"cannot read the cache in {directory} ({type(exc).__name__}: {exc}); nothing is loaded from or stored "
            "in it, and nothing in it is listed or deleted. Give the cache a folder it can create and write "
            "(configure(cache_dir=...) or NOTEBOOK_MEMO_DIR).")


_SUPER_JOURNAL_MAGIC = bytes.fromhex("d9d505f920a163d7")  # what ends a rollback journal's super-journal record


def _foreign_journal(path: str) -> str | None:
    """Return why the rollback journal at ``path`` is not one of ours, or None (absent, or ours and plain).

    SQLite rolls a hot journal back into the index (even one in WAL mode) when a connection first reads it, and
    then deletes the super-journal its trailer names: any file the user may delete. Our index runs in WAL mode and
    never over several databases, so a journal naming a super-journal is never ours, whoever owns it."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return f"{path} is a link or not a plain file"
    trouble = others_could_write([(path, info)])
    if trouble is not None:
        return trouble
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        size = os.fstat(fd).st_size
        tail = os.pread(fd, 16, size - 16) if size >= 16 else b""
    finally:
        os.close(fd)
    if tail[8:] == _SUPER_JOURNAL_MAGIC and int.from_bytes(tail[:4], "big"):
        return f"{path} names another file for SQLite to delete (a super-journal), which no journal of ours does"
    return None


def _aside_name(directory: str, why: str) -> str:
    """Return the name index files set aside for ``why`` ("damaged", "untrusted") take, their suffixes added: by the
    second and the process, numbered when taken (another set aside within the second), never over an earlier one,
    whose log SQLite would otherwise replay into the index."""
    named = aside = os.path.join(directory, f"{_DB_NAME}.{why}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    number = 1
    while any(os.path.lexists(aside + suffix) for suffix in _INDEX_FILES):
        number += 1
        aside = f"{named}-{number}"
    return aside


def _set_aside_foreign_journal(directory: str) -> None:
    """Move a rollback journal that is not ours (see ``_foreign_journal``) aside unread, with one warning; raise
    UntrustedFolder when it cannot be moved: the index is then not opened, and results are computed."""
    path = os.path.join(directory, _DB_NAME + "-journal")
    why = _foreign_journal(path)
    if why is None:
        return
    aside = _aside_name(directory, "untrusted") + "-journal"
    try:
        os.rename(path, aside)  # the name, not what a link names
    except FileNotFoundError:
        return  # another kernel moved it first
    except OSError as exc:
        raise UntrustedFolder(errno.EACCES, f"{why}, and it could not be moved aside ({exc}): the cache index is "
                              f"not opened, and results are computed. Remove {path}", directory) from None
    warn_once(f"untrusted-journal:{directory}", f"{why}, so it was not rolled back into the cache index: it was "
              f"moved to {aside}. Delete it when you no longer need it.", StorageWarning)


def _refuse_opening(directory: str) -> None:
    """Raise UntrustedFolder when, without a secret, others could have written the folder or the index's files.

    Checked before every new SQLite connection: opening one replays the log it finds (another user's frames)
    into the index and may checkpoint them there, where they would look like ours once the folder is mended.
    With a secret the index is opened (a team folder): a record is loaded only once its signature verifies.
    A rollback journal that is not ours is moved out of the way first, secret or not (see ``_foreign_journal``)."""
    _set_aside_foreign_journal(directory)
    trouble = directory_trouble(directory)
    if trouble is not None and resolve_secret() is None:
        raise UntrustedFolder(errno.EACCES, untrusted_message(directory, trouble), directory)


_abandoned: list[Any] = []  # connections inherited through fork(): never used, never closed
# Folders whose log and wal-index this process holds were removed or replaced under it -> why nothing is used there
# (see Store._lose_logs), and the connections to them kept open, unused, until the process ends.
_lost_logs: dict[str, str] = {}
_LOGS_CONFIRM = 0.05  # seconds before files seen replaced are looked at again (see Store.revalidate)
_kept_open: list[sqlite3.Connection] = []


def _keep_open(con: sqlite3.Connection) -> None:
    """Keep ``con`` open, unused, until the process ends: the last connection of a process to an index to close
    copies its log into the index (a checkpoint Python's sqlite3 cannot turn off), and that log is no longer the
    index's. The reference added here is never given back, so not even the interpreter's shutdown frees it."""
    _kept_open.append(con)
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(con))
_F = TypeVar("_F", bound=Callable[..., Any])


def _gated(method: _F) -> _F:
    """Run a store operation inside the fork gate (no fork happens while a thread is in SQLite)."""

    @functools.wraps(method)
    def gated(*args: Any, **kwargs: Any) -> Any:
        with gate:
            return method(*args, **kwargs)

    return gated  # type: ignore[return-value]


def _settled(method: _F) -> _F:
    """As ``_gated``, after the queued quick results are committed: what the method reads or deletes includes them."""

    @functools.wraps(method)
    def settled(self: Store, *args: Any, **kwargs: Any) -> Any:
        with gate:
            self.settle()
            return method(self, *args, **kwargs)

    return settled  # type: ignore[return-value]


def _mending(method: _F) -> _F:
    """Run an upkeep operation (a listing, a deletion, a count); damage it meets in the index is set aside as a
    call's is (one warning, a fresh index), and the operation runs again on the fresh index.

    Upkeep reads and deletes over the whole index, so it meets damage a call by key may never touch."""

    @functools.wraps(method)
    def mending(self: Store, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            if not self._damage_met(exc):
                raise
        return method(self, *args, **kwargs)

    return mending  # type: ignore[return-value]


def _may_queue() -> bool:
    """Return whether this process may leave quick results to its background thread: not a worker.

    A forked child, or a process started by ``multiprocessing`` (a pool's worker, Dask's, loky's),
    may end without running ``atexit`` (``os._exit``, ``Pool.terminate``): it writes each result
    before returning it. A kernel or a script runs ``atexit``, which commits what is queued.
    """
    if _forked:
        return False
    mp = sys.modules.get("multiprocessing")
    if mp is None:
        return True  # not started by multiprocessing (which a process it starts imports first)
    known = _main_process[0]
    if known is None:  # once: what a process is does not change while it runs (a fork sets _forked)
        known = _main_process[0] = mp.parent_process() is None and mp.current_process().name == "MainProcess"
    return known


def _upsert_number(con: sqlite3.Connection, key: str, value: float, update: str, now: float) -> None:
    """Write a counter row as diskcache stores numbers (raw), in one statement; rows of other types stay."""
    con.execute("INSERT INTO Cache (key, raw, store_time, expire_time, access_time, access_count, tag, size, mode, "
                "filename, value) VALUES (?, 1, ?, NULL, ?, 0, NULL, 0, ?, NULL, ?) ON CONFLICT(key, raw) DO UPDATE "
                f"SET value = {update} WHERE typeof(value) IN ('integer', 'real') AND mode = ?",
                (key, now, now, diskcache.core.MODE_RAW, value, diskcache.core.MODE_RAW))


def _is_damaged_database(exc: BaseException, directory: str) -> bool:
    """Return True when ``exc`` says the index in ``directory`` is damaged, or holds what we did not make."""
    # OperationalError (locked, read-only, I/O) is a subclass of DatabaseError and is not damage.
    if type(exc) is not sqlite3.DatabaseError:
        return False
    if "not authorized" in str(exc) or "prohibited" in str(exc):
        # Refused by our authorizer: a planted view or trigger, or an exception in the authorizer itself, which
        # SQLite takes for a refusal (Ctrl-C landing there). Only the first is damage: the schema says which.
        try:
            _planted_objects(connection(directory))
        except sqlite3.OperationalError:
            return False  # locked, or the file gone: no sign of damage
        except sqlite3.DatabaseError:
            return True
        except OSError:
            return False
        return False
    return True


class Store:
    """All records of one cache directory."""

    def __init__(self, directory: str, size_limit: int) -> None:
        self.directory = directory
        self.size_limit = size_limit
        self._lock = threading.RLock()
        self._reader: diskcache.Cache | None = None
        self._writer: diskcache.Cache | None = None
        self._ident: tuple[int, int] | None = None
        self._trouble: str | None = None
        self._pending_touch: dict[str, int] = {}  # rows whose access time is due, and their row ids (0: unknown)
        self._leases = Leases(_schema_still_ours)
        self._flusher: threading.Thread | None = None
        self._stop = threading.Event()
        self._running: dict[str, list[Any]] = {}  # keys computed without a lease: [started, lease taken since]
        # The second tier: where each lease of ours there was taken, the publishes a transaction holds back
        # (this thread's), and rows deleted here by the user that the remote could not forget (read-only).
        self._remote_leases: dict[str, tuple[SecondTier, str]] = {}  # key -> the tier and row it is leased as
        # Rows of large remote entries whose local copy a thread of ours is making: the record served meanwhile,
        # and a lock the copy is made under; a caller's write or delete of the row first takes that lock and
        # moves the row's generation on, which cancels a copy not yet made.
        self._arriving: dict[str, tuple[StoredRecord, threading.Lock]] = {}
        self._generations: dict[str, int] = {}
        self._deferred = threading.local()
        self._tombstones: set[str] = set()
        self._ran = 0.0  # when the last of them finished
        self._wake = threading.Event()  # wakes a dozing background thread when a run without a lease starts
        self._dozing = False
        self._checked = 0.0
        self._recheck = False  # the background thread saw the index replaced or removed
        # The (device, inode) of the log and wal-index this process's connections hold (see _walfiles.replaced);
        # once they are no longer the files their paths name, why nothing is loaded or stored here any more.
        self._logs: dict[str, tuple[int, int] | None] = {}
        self._lost_logs: str | None = None
        # Rows read through ``get`` and their records, while the connection's data_version stays as it was.
        self._hot: dict[str, tuple[tuple[Any, ...], StoredRecord]] = {}
        # The connection (its token) whose data_version they were read at, that version, and the wal-index header
        # read just before it (None: unknown): while the header reads the same, so does the version (see _walmark).
        self._hot_version: tuple[_Token | None, int, bytes | None] = _NO_VERSION
        self._thread = threading.local()  # this thread's connection, and the token that names it
        # Records verified here, with the row bytes and tag they came from: a later read of the same bytes
        # (a cell run again) skips decoding and verifying them again.
        self._seen: dict[str, tuple[bytes, StoredRecord, Any]] = {}
        self._pending_hits: dict[str, int] = {}  # function id -> hits not yet written
        # The size limit is checked when this process has written its headroom since the volume was
        # last measured, or that was _VOLUME_EVERY seconds ago: not with a volume query per write.
        self._written, self._headroom, self._measured = 0, 0, 0.0
        self._limit_due = False  # a write inside a caller's transaction found the limit due: kept to once it ends
        self._wrote_at = 0.0  # when this process last wrote a record (wall clock, as access times are)
        # Quick results whose commit is left to the background thread (``put(later=True)``), by row.
        self._queued: dict[str, _Queued] = {}
        self._queue_lock = threading.Lock()  # replacing or removing a queued entry
        self._queue_started = self._queue_touched = 0.0  # when the queue got its first and its last entry
        self._settle_lock = threading.Lock()  # one commit of the queue at a time
        self._checkpointed = 0.0  # when the background thread last checkpointed the log after our writes
        self.closed = False  # close() ran: a holder of this store asks get_store for the directory's again
        _every_store.add(self)

    # -- opening, and reopening when the directory was removed ------------------------------
    @property
    def _folder(self) -> str:
        """The real folder the store last opened (see ``_open``): its marker, index, log and payload files."""
        return real_directory(self.directory)

    def _open(self, moved: bool = False) -> None:
        """Open the index (again); ``moved``: the index file opened before was seen gone or replaced, so this is
        another index even where the new file's (device, inode) is the old one's (a number freed and reused)."""
        self._hot, self._hot_version = {}, _NO_VERSION
        # First: an opening that fails (the folder replaced by a file, a FIFO or a dangling link) leaves no handle on
        # the index opened before, which the calls that follow would go on reading and writing, removed as it is.
        self._close_handles()
        held = self._ident  # the index opened before, if any
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        # A cache_dir that is a link is resolved once, here: the marker, the index every connection of the store
        # opens (each thread's, the background thread's) and the payload files are all in the folder it names
        # now, whatever it names by the time each is made or opened. A link pointed elsewhere since (the cache
        # moved to another disk) is noticed by the store's checks (``_index_ident``), which open it again.
        folder = real_directory(self.directory, again=True)
        if not self._plain_index():
            # A link (to a database of the user's, say) or something else under the index's name or its log's:
            # SQLite would open and change what it names (and a FIFO would block the open for ever). In a cache
            # folder (its marker says so) the names are moved aside, and a fresh index started: before the
            # marker is looked for, which reads the index. In a folder of someone else's, nothing is touched.
            if not os.path.lexists(os.path.join(folder, _MARKER)):
                raise ConfigurationError(
                    f"the folder {self.directory} holds a {_DB_NAME} that is a link or not a plain file, and no "
                    f"{_MARKER} file says it is a cache folder, so it is not used or changed. Give the cache a new "
                    "or empty folder (configure(cache_dir=...) or NOTEBOOK_MEMO_DIR).")
            with gate, self._lock:
                self._move_aside(OSError("it is a link or not a plain file"), unless=self._plain_index)
        self._write_marker()
        self._trouble = None
        log_trouble = _log_trouble(folder)
        if log_trouble is not None and directory_trouble(folder) == log_trouble:
            # The folder and the index are ours alone, so no one else can plant files here now: a log or
            # wal-index someone else could write (left from when the folder was shared) is set aside unread,
            # never replayed into the index. Its frames are lost: what they held is recomputed when needed.
            with gate, self._lock:
                self._move_aside(OSError(log_trouble), suffixes=_INDEX_FILES[1:], unless=self._logs_ours)
        self._trouble = directory_trouble(folder)
        _refuse_opening(folder)  # nothing is opened, so no log is replayed: the caller warns and computes
        index = os.path.join(folder, _DB_NAME)
        opening = _walfiles.file_ident(index)
        try:
            if opening is not None:  # before diskcache's handles, whose first statements write the index
                _planted_objects(connection(self.directory))
            self._open_handles()
        except sqlite3.DatabaseError as exc:
            if not _is_damaged_database(exc, self.directory):
                raise
            self._set_aside(exc, opening or _walfiles.file_ident(index))
            self._open_handles()
        ident = _walfiles.file_ident(index)
        if ident is None:  # removed the moment it was made: the caller warns and computes
            raise FileNotFoundError(errno.ENOENT, "the cache index was removed as it was opened", index)
        self._ident = ident
        if held is not None and (moved or self._ident != held):
            self._leases.forget()  # taken in the index used before: a run that holds one stores its result here
        self._logs = _walfiles.named_now(folder, _DB_NAME)  # those this thread's connection just opened
        self._trouble = directory_trouble(folder)  # our own log and wal-index exist now
        for bring_up_to_date in (_index_payload_files, _keep_facts, _quiet_size_triggers):
            with contextlib.suppress(sqlite3.Error):
                bring_up_to_date(connection(self.directory))

    def _open_handles(self) -> None:
        # No memory map of the index (diskcache maps 64 MiB): a page read through a map past the end of a
        # file another program cut short or replaced with an older copy is a SIGBUS, which kills the
        # kernel; read calls see the short file, and SQLite reports the damage.
        common: dict[str, Any] = {"disk": _RecordDisk, "statistics": 0, "tag_index": 1, "cull_limit": 0,
                                  "size_limit": self.size_limit, "disk_min_file_size": 2**15,
                                  "sqlite_wal_autocheckpoint": _WAL_BACKSTOP, "sqlite_mmap_size": 0,
                                  "sqlite_trusted_schema": 0,
                                  # Our kernels hold the write lock for moments: one held past this is another
                                  # program's, and a write (a miss's, invalidate's) gives up with a warning
                                  # (see _Transaction) rather than holding the notebook for diskcache's minute.
                                  "timeout": _SHORT_WAIT_MS / 1000}
        # Eviction is ours (_enforce_limit): diskcache's own cull compares the database's page
        # count, which does not shrink when small rows go. The writer's LRU policy records access
        # times (written in batches); the reader's hit is a single SELECT.
        try:
            self._writer = _Index(self.directory, eviction_policy="least-recently-used", **common)
            self._reader = _Index(self.directory, eviction_policy="none", **common)
        except (TypeError, ValueError) as exc:  # rows diskcache trips on before we see them (a key of bytes)
            raise sqlite3.DatabaseError(f"its Settings table is not one of ours ({exc})") from None

    def _set_aside(self, exc: BaseException, damaged: tuple[int, int] | None) -> None:
        """Move a damaged index out of the way (with one warning saying where) so a fresh one can start.

        ``damaged``: the (device, inode) of the index file the damage was met in: the one the failing connection
        opened (None when not known). Only that file is moved: another thread or kernel that met the damage
        first may have set it aside and begun a fresh index, which is left alone (this store reopens it).
        Under the store's lock, as every reopening: a thread that reopened the index between the moves of
        its three files would open the damaged index with its log moved from under it. The leases this process
        took in the damaged index are forgotten with it (``_drop_index``)."""
        with gate, self._lock:  # a fork waits for it (the child would hold the locks of the moves)
            if damaged is None or _walfiles.file_ident(os.path.join(self._folder, _DB_NAME)) != damaged:
                if self._ident is None or self._ident == damaged:
                    self._drop_index()  # the store's handles are on the damaged file: the next use reopens
                else:
                    self.close_thread_connections()  # the store moved on already; this thread's may not have
                return
            self._close_handles()
            self._move_aside(exc)
            self._drop_index()

    def _drop_index(self) -> None:
        """Let go of the index the store opened: its handles, and the leases taken in it. A run that holds one
        stores its result in the index opened next, where its lease never was: its end is no takeover."""
        self._close_handles()
        self._ident = None
        self._leases.forget()

    def _damage_met(self, exc: sqlite3.DatabaseError) -> bool:
        """Set the index aside when ``exc``, met by this thread's own connection (``connection``) or the store's
        handles, says it is damaged; return whether it did. Inside a caller's transaction its end does."""
        if not _is_damaged_database(exc, self.directory) or (self._writer is not None
                                                              and _inside_transaction(self._writer)):
            return False
        held = _connections.__dict__.get("by_dir", {}).get(self.directory)
        self._set_aside(exc, held[1] if held is not None else self._ident)
        return True

    def _plain_index(self) -> bool:
        return all(_plain_file_or_none(os.path.join(self._folder, _DB_NAME + suffix)) for suffix in _INDEX_FILES)

    def _logs_ours(self) -> bool:
        return _log_trouble(self._folder) is None

    def _move_aside(self, exc: BaseException, unless: Callable[[], bool] | None = None,
                    suffixes: tuple[str, ...] = _INDEX_FILES) -> None:
        """Rename the index and its log out of the way (links as links: what they point to is not touched);
        ``unless``: asked again once no other kernel can open the index, which another may have mended.
        ``suffixes``: only these of its files (the log and wal-index alone: ``-wal``, ``-shm``)."""
        logs_only = suffixes != _INDEX_FILES
        folder = self._folder
        aside = _aside_name(folder, "untrusted" if logs_only else "damaged")
        # No connection of this process, nor of another kernel, opens the index between the moves.
        with _opening, _directory_lock(folder, exclusive=True):
            if unless is not None and unless():
                return  # another kernel moved it aside first and began a fresh index
            # Files a running process uses stay: it would go on with them alone, never seeing another's commits,
            # and its checkpoints would copy its old pages over theirs. No process opens them anew meanwhile (the
            # folder's lock), so one that uses them holds SQLite's lock on the wal-index already.
            if logs_only and _walfiles.in_use(folder, _DB_NAME, opened_here=self._ident is not None):
                self._keep_logs_in_use(exc, suffixes)
                return
            for suffix in suffixes:
                with contextlib.suppress(FileNotFoundError):
                    os.replace(os.path.join(folder, _DB_NAME + suffix), aside + suffix)
        if logs_only:
            warn_once(f"untrusted-log:{self.directory}", f"{exc}, so its frames were not read into the cache "
                      f"index: the index's log, wal-index and journal there were moved to {aside}-wal (-shm, "
                      "-journal). Entries written since the index was last checkpointed are recomputed "
                      "when needed; delete the moved files when you no longer need them.", StorageWarning)
            return
        warn_once(f"damaged-index:{self.directory}", f"the cache index {os.path.join(folder, _DB_NAME)} "
                  f"is damaged ({exc}); it was moved to {aside} and a fresh index started. Entries stored "
                  "before are recomputed when needed; delete the moved file when you no longer need it.",
                  StorageWarning)

    def _keep_logs_in_use(self, exc: BaseException, suffixes: tuple[str, ...]) -> None:
        """Where a running process uses the log and wal-index others could write (``exc``: why), tighten their mode
        when they are the user's own (others can write them no more than the index the user made private); else
        raise LogsNotUsable, and nothing is loaded or stored here until that process lets them go."""
        paths = [os.path.join(self._folder, _DB_NAME + suffix) for suffix in suffixes]
        found = []
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                found.append((path, os.lstat(path)))
        if all(info.st_uid == os.geteuid() and stat.S_ISREG(info.st_mode) for _, info in found):
            # By name: the folder is this user's alone (see _open), so no one else can put another file there.
            for path, info in found:
                os.chmod(path, stat.S_IMODE(info.st_mode) & ~(stat.S_IWGRP | stat.S_IWOTH))
            return
        shm = os.path.join(self._folder, _DB_NAME + "-shm")
        raise LogsNotUsable(errno.EBUSY, f"{exc}, and a running process uses the cache index's log and wal-index "
                            f"there, so they cannot be set aside: nothing is loaded from or stored in {self.directory} "
                            "until that process ends (results are computed instead). End the kernels using this "
                            f"cache (`fuser {shm}` lists them); the files are then set aside and a fresh log begun.",
                            self.directory)

    def _close_handles(self) -> None:
        self.close_thread_connections()
        self._reader = self._writer = None

    def close_thread_connections(self) -> None:
        """Close the calling thread's connections to the index (those of diskcache's handles, and its own).

        Python's SQLite connection refers to itself (its statement cache): one a thread leaves open stays,
        with its files, until the garbage collector runs. So a thread of ours closes its own before it ends.
        Once the log and wal-index they hold were replaced (``_lose_logs``), they are kept open instead, unused."""
        lost = self._lost_logs is not None
        for handle in (self._reader, self._writer):
            if handle is not None:
                con = getattr(handle._local, "con", None) if lost else None
                if con is not None and getattr(handle._local, "pid", None) == os.getpid():
                    _keep_open(con)
                    del handle._local.con  # diskcache's close() then finds none
                with contextlib.suppress(Exception):
                    handle.close()  # the calling thread's connection only
        held = _connections.__dict__.get("by_dir", {}).pop(self.directory, None)
        if held is not None:
            if lost and held[0] == os.getpid():
                _keep_open(held[2])
            else:
                with contextlib.suppress(sqlite3.Error):
                    held[2].close()
        self._thread.__dict__.pop("named", None)  # its token, and the token's view of the wal-index header

    def _index_ident(self) -> tuple[int, int] | None:
        return _walfiles.file_ident(os.path.join(self.directory, _DB_NAME))

    def _handles(self) -> tuple[diskcache.Cache, diskcache.Cache]:
        self._checked = time.monotonic()
        self._recheck = False
        if self._lost_logs is not None:  # after clearing _recheck: _lose_logs sets it after _lost_logs
            self._recheck = True  # every use comes here, and is refused
            with self._lock:
                self.close_thread_connections()  # kept open, unused (see _lose_logs)
            raise LogsNotUsable(errno.ESTALE, self._lost_logs, self.directory)
        current = self._index_ident()
        if current is None or current != self._ident or self._reader is None:
            with self._lock:
                current = self._index_ident()  # another thread may have reopened while we waited
                if current is None or current != self._ident or self._reader is None:
                    # Seen gone or another file: a new index, whatever number its file is given when made.
                    self._open(moved=self._ident is not None and current != self._ident)
        elif self._flusher is None and self._logs_replaced():  # else the background thread looks (revalidate)
            return self._handles()  # refused
        else:
            self._trouble = directory_trouble(self.directory)  # permissions can change while a kernel runs
            if self._trouble is not None and resolve_secret() is None:
                with self._lock:  # this thread's connections are closed, and nothing opened again (it raises)
                    self._open()
        assert self._reader is not None and self._writer is not None
        return self._reader, self._writer

    def _due(self, now: float) -> bool:
        """Return whether a read must first check that the directory is still the one opened, and who may write it.

        While the background thread runs it checks every few seconds (``revalidate``), so a hit makes
        no system call; without it, a read checks when the last check is REVALIDATE seconds old.
        """
        return self._recheck or now - self._checked > (_REVALIDATE if self._flusher is None else _BACKGROUND_CHECK)

    def revalidate(self) -> None:
        """Check the directory off the hit path (the background thread): replaced, removed, or writable by others."""
        if self._reader is None or self._recheck:
            return
        if self._index_ident() != self._ident:
            self._recheck = True  # the next read reopens
            return
        if self._logs_replaced():
            return
        self._trouble = directory_trouble(self.directory)
        if self._trouble is not None and resolve_secret() is None:
            self._recheck = True  # the next read closes this thread's index, and opens nothing
        self._checked = time.monotonic()

    def _logs_replaced(self) -> bool:
        """Return whether the log or wal-index this process holds were removed or replaced (then ``_lose_logs``)."""
        gone = _walfiles.replaced(self._folder, _DB_NAME, self._logs)
        if gone:
            # Asked again a moment later: the last connection of this process to close (another thread's, as this
            # one looked) may be deleting them, which it does by name just before it lets them go.
            time.sleep(_LOGS_CONFIRM)
            gone = _walfiles.replaced(self._folder, _DB_NAME, self._logs)
        if gone:
            self._lose_logs(gone)
        return bool(gone)

    def _lose_logs(self, gone: list[str]) -> None:
        """Stop using this directory's index for the rest of the process: the log or wal-index its connections hold
        (``gone``) are no longer the files their paths name (removed or moved by hand), so they would never see
        another process's commits, and what they read or write is no longer the index's.

        A process's connections to one index share one wal-index, those it opens later too, so none can be used
        again until all are closed; and the last to close would copy its old log into the index (bringing back
        rows deleted since). So each thread's are kept open, unused, as it meets this (the background thread's
        now), and every use is refused with one warning: results are computed, and nothing is stored here."""
        names = " and ".join(os.path.basename(path) for path in gone)
        self._lost_logs = _lost_logs[self.directory] = (
            f"the cache index's {names} in {self.directory} was removed or replaced while this process had it "
            "open, so this process cannot see what other kernels store or delete there any more: nothing is loaded "
            "from or stored in that cache until the process restarts (results are computed instead). Restart the "
            "kernel, and remove a cache's files only while no kernel uses it")
        self._hot, self._hot_version = {}, _NO_VERSION
        self._recheck = True  # after _lost_logs: see _handles
        with gate, self._lock:
            self.close_thread_connections()

    @property
    def reader(self) -> diskcache.Cache:
        reader = self._reader
        if reader is None or self._due(time.monotonic()):
            return self._handles()[0]
        return reader

    @property
    def writer(self) -> diskcache.Cache:
        writer = self._writer
        if writer is None or self._reader is None or self._due(time.monotonic()):
            return self._handles()[1]
        return writer

    def _exists(self) -> bool:
        return os.path.exists(os.path.join(self.directory, _DB_NAME))

    # -- trust -----------------------------------------------------------------------------
    @staticmethod
    def signer(current: CallSettings | None = None) -> Signer | None:
        """Return the signer of the configured secret (as ``current`` settings say, when given), or None."""
        secret = resolve_secret() if current is None else current.secret
        return signer_for(secret) if secret is not None else None

    @staticmethod
    def row_key(key: str, signer: Signer | None) -> str:
        """Return the index key of ``key``: each secret (or none) has keys of its own, so kernels with
        different secrets sharing a directory never overwrite or delete each other's entries."""
        return key if signer is None else f"{key}~{signer.keyid.hex()}"

    def _usable(self, signer: Signer | None) -> bool:
        """Open the index when due (or set a damaged one aside); return False (after warning once) when values
        must not be loaded from or stored in this directory under ``signer``."""
        if self._reader is None or self._due(time.monotonic()):
            try:
                self._handles()
            except UntrustedFolder:
                if signer is None:  # nothing was opened: the warning is the refusal's
                    return not self._refuses(signer)
                raise  # the secret was unset while the call ran: its storage trouble
        return self._trouble is None or not self._refuses(signer)

    def refusal(self) -> OSError | None:
        """Check the directory now (upkeep and explain, never the hit path); return what keeps its index from being
        used, or None: an UntrustedFolder (others could write it, and no secret is set) or another OSError from
        opening it (a file by its name, a folder it may not create). Warns nothing; ``_scan_refused`` does."""
        with gate:
            try:
                self._handles()
            except OSError as exc:
                return exc
        return None

    def _scan_refused(self) -> bool:
        """Return True, after the warning a call gives (once per directory), when a listing, count or deletion
        must find nothing here (see ``refusal``): upkeep in a folder a call cannot use does not raise either."""
        exc = self.refusal()
        if exc is None:
            return False
        cause = "untrusted" if isinstance(exc, UntrustedFolder) else "storage"
        warn_once(f"{cause}:{self.directory}", unusable_message(self.directory, exc), StorageWarning)
        return True

    def _refuses(self, signer: Signer | None) -> bool:
        """Return True (after warning once) when values must not be loaded from this directory."""
        if self._trouble is None or signer is not None:
            return False
        warn_once(f"untrusted:{self.directory}", untrusted_message(self.directory, self._trouble), StorageWarning)
        return True

    # -- records ---------------------------------------------------------------------------
    def get(self, key: str, current: CallSettings | None = None, probe: bool = False,
            second: bool = True, serving: bool = False,
            beside: tuple[str, StoredRecord] | None = None) -> StoredRecord | None:
        """Return the verified record under ``key``, or None; raises CorruptRecord for a row it refuses.

        Records read here are kept in memory (``_hot``) while SQLite's ``data_version`` of this
        thread's connection says no other connection committed since: one PRAGMA instead of the
        SELECT. Our own writes and deletes drop them (they begin a new dict: a read that was under way
        fills the old one). Otherwise one SELECT, and nothing else, on the store's own
        connection (diskcache's ``get`` would add its key and value codecs around the same statement).
        ``current``: the calling function's settings, when it read them already. ``probe``: the
        same SELECT also tells whether a lease on ``key`` exists, for the ``leased`` that follows.
        ``second``: on a miss here, look in the remote tier when one is configured (its entry is
        copied here first, then read as any other). ``serving``: the caller loads the value next (a large
        remote entry's copy for it is then made while it is received; lookups that load nothing make none).
        ``beside``: a key and the record this process read (or wrote, ``written``) under it: the answer is None
        (and the remote is not asked) unless that record is still the one there, known in the same lookup: from
        memory (kept since, with no write of ours or commit of another connection in between), else from its
        row read first, holding the very bytes that record was verified from (a commit of the access times our
        hits renewed, or another kernel's of other rows, leaves it so): a caller that knew where to look from
        that record then looks the long way.
        """
        signer = self.signer(current)
        row = self.row_key(key, signer)
        other = kept_record = None
        if beside is not None:
            other, kept_record = self.row_key(beside[0], signer), beside[1]
        if row in self._queued or (other is not None and other in self._queued):
            self.settle()
        with gate:
            if not self._usable(signer):
                return None
            try:
                # On the writer's connection: its page cache stays valid across our own writes (a miss
                # writes, and the next lookup need not read again what the write just touched).
                try:
                    con, token = self._connection()
                except sqlite3.OperationalError:
                    if self._index_ident() == self._ident:
                        raise
                    # This thread's first connection found no index, or another one, where the store opened its
                    # own (removed, or a cache folder's link pointed elsewhere) before the background check saw
                    # it: it looks now, as the next call would, rather than failing this one.
                    self._recheck = True
                    if not self._usable(signer):
                        return None
                    con, token = self._connection()
                # What this read learns goes into the records dict as it is now: a write or another
                # connection's commit meanwhile replaces that dict, and then it is forgotten.
                hot_records = self._hot
                hot = hot_records.get(row)
                known = self._hot_version
                if hot is not None or known[0] is not token or other is not None:
                    # Reused only while no other connection committed since the dict was begun. A row not
                    # kept needs no such check (the SELECT below reads it as it is now), once this
                    # connection has begun the dict its reads go to. The wal-index header, read as it was
                    # just before the version was, says the version is as it was too, without SQL.
                    view = token.view
                    head = view.read() if view is not None else None
                    if head is None or known[0] is not token or known[2] != head:
                        version = con.execute(_DATA_VERSION).fetchone()[0]
                        if known[0] is not token or known[1] != version:
                            self._hot = hot_records = {}  # another connection committed: what was read may differ
                            hot = None
                        # Inside a transaction the version is its snapshot's, which may be older than the header
                        # read: no header to compare then. (Outside one, every statement on this connection runs to
                        # its end, so each starts a read of the index as it is now.)
                        # Nor one that stands for no single state of the index (see _walmark.settled): copies that
                        # differ (a writer died between them), a header SQLite rebuilt from the log, or one of the
                        # log begun after such a rebuild.
                        self._hot_version = (token, version,
                                             None if con.in_transaction or head is None or not settled(head) else head)
                        if not token.looked:  # this connection has the wal-index mapped now
                            token.looked = True
                            # Of the index file this connection opened, when that is the one the store opened.
                            token.view = header_view(con, os.path.join(self._folder, _DB_NAME),
                                                     token.index if token.index == self._ident else None)
                if other is not None:
                    kept = hot_records.get(other)
                    if kept is not None and kept[1] is kept_record:
                        beside_row = kept[0]
                    else:
                        beside_row = con.execute(_SELECT_RECORD, (other,)).fetchone()
                        if beside_row is None or kept_record is None or \
                                not self._verified_as(other, beside_row, kept_record, signer):
                            return None
                        if len(hot_records) >= _HOT_ENTRIES:
                            hot_records.clear()
                        hot_records[other] = (beside_row, kept_record)  # the next hit knows it from memory
                if hot is not None:
                    found = hot[0]
                elif probe:
                    found, leased = None, False
                    for answer in con.execute(_SELECT_RECORD_AND_LEASE, (row, LOCK_PREFIX + key)).fetchall():
                        if answer[6]:
                            leased = True
                        else:
                            found = answer
                    if found is None:
                        self._thread.probed = (key, leased)
                else:
                    found = con.execute(_SELECT_RECORD, (row,)).fetchone()
            except sqlite3.DatabaseError as exc:
                if _is_damaged_database(exc, self.directory):
                    self._set_aside(exc, token.index)  # the file this connection opened
                    return None
                raise
        wall = time.time()
        if other is not None:
            if found is None or (beside_row[3] is not None and beside_row[3] <= wall):
                return None
            if self._stale_use(beside_row[4], wall):  # it is used as much as if it were read
                self._touch_later(other)
        if found is None or (found[3] is not None and found[3] <= wall):
            # None, or past the life the index gives it (diskcache's expire_time): the remote may have it.
            return self._from_remote(key, row, signer, serving) if second else None
        used = found[4]
        if hot is not None:
            record = hot[1]
        else:
            mode, filename, value, tag = found[0], found[1], found[2], found[5]
            seen = self._seen.get(row)
            if seen is not None and seen[0] == value and seen[1].filename == filename and \
                    seen[1].signer == signer and mode == MODE_RECORD and seen[2] == tag:
                record = seen[1]  # the very bytes verified before for this row, filed alike: the same answer
            else:
                record = _verified_record(row, mode, filename, value, self.directory, signer, tag)
                if len(value) <= _SEEN_LARGEST:
                    if len(self._seen) >= _SEEN_ENTRIES:
                        self._seen.clear()
                    self._seen[row] = (value, record, tag)
            if len(hot_records) >= _HOT_ENTRIES:
                hot_records.clear()
            hot_records[row] = (found, record)
        if self._stale_use(used, wall):
            self._touch_later(row)
        return record

    def _verified_as(self, row: str, found: tuple[Any, ...], record: StoredRecord, signer: Signer | None) -> bool:
        """Return whether the index row ``found`` (as ``_SELECT_RECORD`` reads ``row``) holds the very bytes
        ``record`` was verified from, under ``signer``: the record is still the one stored there."""
        seen = self._seen.get(row)
        return seen is not None and seen[1] is record and found[0] == MODE_RECORD and seen[0] == found[2] and \
            seen[1].filename == found[1] and seen[1].signer == signer and seen[2] == found[5]

    def written(self, key: str) -> StoredRecord | None:
        """Return the record under ``key`` as this process's last ``put`` left it: made from its bytes while it
        waits for the background thread (no commit forced, nothing read), else read (``get``, here only). A
        later read of the same bytes returns this very record, which ``get``'s ``beside`` can then recognise."""
        signer = self.signer()
        row = self.row_key(key, signer)
        item = self._queued.get(row)
        if item is None or not item.record.inline:
            return self.get(key, second=False)
        value = item.record.make_header(None, None)  # what its row will hold (see _write_records)
        record = _verified_record(row, MODE_RECORD, None, value, self.directory, signer, item.tag)
        if len(value) <= _SEEN_LARGEST:
            if len(self._seen) >= _SEEN_ENTRIES:
                self._seen.clear()
            self._seen[row] = (value, record, item.tag)
        return record

    def _from_remote(self, key: str, row: str, signer: Signer | None, serving: bool) -> StoredRecord | None:
        """Copy the remote tier's verified entry for ``row`` into this directory and return it; None if none."""
        if row in self._tombstones:
            return None  # the user deleted it here: the remote's copy is not brought back
        arriving = self._arriving.get(row)
        if arriving is not None:
            return arriving[0]
        tier = second_tier()
        if tier is None:
            return None
        fetched = tier.fetch(row, signer, serving)
        if fetched is None:
            return None
        tier.looked(row)
        header = fetched.header
        if header.expired():
            return None
        # Served from the verified bytes in memory (immutable, ours), whatever happens to its local copy. A small
        # entry's copy is left to the background thread's next commit, as a quick result's; a large one's is
        # made meanwhile on a thread of its own (from those bytes, never from the caller's value), unless it
        # could never fit the size limit: then every call reads it from the remote.
        record = StoredRecord(row, header, memoryview(b""), None, self.directory, signer, True, held=fetched.payload,
                              spare=None if fetched.copies is None else [fetched.copies])
        fetched = Fetched(header, fetched.payload)  # the copies are the caller's alone: the local copy's thread
        # does not keep them alive after the caller dropped its value
        if header.inline or fetched.payload.nbytes < _ARRIVE_LATER:
            try:
                self._keep(key, fetched, signer, later=header.inline)
            except Exception as exc:
                self._not_kept(exc)
            return record
        if fetched.payload.nbytes <= self.size_limit:
            lock = threading.Lock()
            generation = self._generations.get(row, 0)
            thread = threading.Thread(target=self._arrive, args=(key, row, fetched, signer, lock, generation),
                                      name="notebook_memo import")
            self._arriving[row] = (record, lock)
            try:
                thread.start()
            except RuntimeError:  # no thread can start (the interpreter is ending): served, not kept
                self._arriving.pop(row, None)
        return record

    def _arrive(self, key: str, row: str, fetched: Fetched, signer: Signer | None, lock: threading.Lock,
                generation: int) -> None:
        own_thread.ours = True
        try:
            with lock:
                if self._generations.get(row, 0) == generation:  # not deleted or written since it was served
                    self._keep(key, fetched, signer)
        except Exception as exc:
            self._not_kept(exc)
        finally:
            entry = self._arriving.get(row)
            if entry is not None and entry[1] is lock:
                del self._arriving[row]

    def _not_kept(self, exc: BaseException) -> None:
        warn_once(f"storage:{self.directory}", f"a result from the remote tier could not be stored in "
                  f"{self.directory} ({type(exc).__name__}: {exc}); it is served, and read from the remote "
                  "again next time", StorageWarning)

    def _claim(self, row: str) -> None:
        """A caller writes or deletes ``row``: a local copy of a remote entry not yet made for it is not made."""
        entry = self._arriving.get(row)
        if entry is None:
            return
        with entry[1]:  # a copy being made is finished first: the caller's write or delete then comes after it
            self._generations[row] = self._generations.get(row, 0) + 1
            if self._arriving.get(row) is entry:
                del self._arriving[row]

    def wait_arrivals(self, timeout: float | None = None) -> None:
        """Wait until the local copies of remote entries being made are made (tests, exit)."""
        for thread in [t for t in threading.enumerate() if t.name == "notebook_memo import"]:
            thread.join(timeout)

    def _imported(self, key: str, fetched: Fetched, signer: Signer | None,
                  current: CallSettings | None = None) -> StoredRecord | None:
        """Store a verified remote entry here and return it as read back; None when it is past its TTL."""
        if not self._keep(key, fetched, signer):
            return None
        return self.get(key, current, second=False)

    def _keep(self, key: str, fetched: Fetched, signer: Signer | None, later: bool = False) -> bool:
        """Store a verified remote entry here, signed as it was verified (``signer``: the secret then); False
        when it is past its TTL or the secret changed since. ``later``: as ``put``'s."""
        header = fetched.header
        if header.expired():
            return False
        if self.signer() != signer:
            return False  # verified under another secret: not this secret's entry to keep
        meta = header.meta()
        expires = header.expires or None
        self.put(key, fetched.payload, meta, header.created, expires, header.duration,
                 expires + EXPIRY_GRACE if expires else None, str(meta.get("fid", "")), INLINE_LIMIT, later,
                 publish=False, signer=signer)
        return True

    def _connection(self) -> tuple[sqlite3.Connection, _Token]:
        """Return this thread's connection to the index (the writer's) and a token naming it.

        The token (made for each connection this thread gets) says whose data_version ``_hot`` was
        read at, and holds the connection's view of the wal-index header; holding it rather than the
        connection leaves the connection to close with its thread. Every statement run on it outside a
        transaction runs to its end (a cursor used once): one left unfinished would keep a read of an older
        index open, and ``get`` would pair the version it reads with a newer header.
        """
        writer = self._writer
        assert writer is not None
        local = writer._local  # type: ignore[attr-defined]
        con = getattr(local, "con", None)
        if con is None or getattr(local, "pid", None) != os.getpid():
            con = writer._con  # type: ignore[attr-defined]
        mine = self._thread
        named = getattr(mine, "named", None)
        if named is None or named[0] is not con:
            opened = getattr(local, "opened", None)
            named = mine.named = (con, _Token(opened[1] if opened is not None and opened[0] is con else None))
        return con, named[1]

    def _stale_use(self, used: Any, now: float) -> bool:
        """Return whether a row's access time must be renewed for the LRU order.

        Eviction happens on a write, so what it needs is which rows were used since this process's
        last write (all of them, however often) and, among the rest, times to the minute: each
        renewal rewrites a row, and a cell run again would rewrite every row it reads.
        """
        return not isinstance(used, (int, float)) or used <= self._wrote_at or used < now - _TOUCH_RESOLUTION

    def forget(self, key: str | None = None) -> None:
        """Drop reused records: one key's, or all of them (and re-check the directory on the next access)."""
        if key is None:
            self._hot = {}
            self._checked = 0.0
        else:
            self._hot.pop(self.row_key(key, self.signer()), None)

    def put(self, key: str, payload: Payload, meta: dict[str, Any], created: float,
            expires: float | None, duration: float, keep_until: float | None, tag: str,
            inline_limit: int, later: bool = False, publish: bool = True, signer: Any = _NOW) -> int:
        """Write a record here (see ``_put_here``); ``publish``: then in the remote tier, when one is configured
        and writable, outside the fork gate (inside a ``transaction``, once it commits). ``signer``: sign
        with this one (a remote entry's copy, under the secret that verified it), not the configured one."""
        if self._arriving and publish:  # a caller's write (an import publishes nothing)
            self._claim(self.row_key(key, self.signer()))
        size = self._put_here(key, payload, meta, created, expires, duration, keep_until, tag, inline_limit, later,
                              signer)
        tier = second_tier() if publish and size else None
        if tier is None:
            return size
        replace = replacing.get()
        signer = self.signer()
        row = self.row_key(key, signer)
        if tier.read_only:
            if replace:  # a refresh the remote keeps the old value of: not brought back from it here
                self._tombstones.add(row)
            return size
        item = (row, payload, meta, created, expires, duration, signer, replace)
        pending = getattr(self._deferred, "items", None)
        if pending is not None:
            pending.append((tier, item))
        elif not tier.publish(*item) and replace:
            self._tombstones.add(row)
        return size

    @_gated
    def _put_here(self, key: str, payload: Payload, meta: dict[str, Any], created: float,
                  expires: float | None, duration: float, keep_until: float | None, tag: str,
                  inline_limit: int, later: bool = False, signer: Any = _NOW) -> int:
        """Write a record; return the payload size. ``keep_until`` bounds its life in the index.

        ``later``: a quick result (a body that ran under QUICK_BODY) with a payload that fits in its
        row may be committed by the background thread, with the others queued meanwhile, within
        milliseconds rather than in a transaction of its own. Its header is made here. Every read
        of this store commits the queue first when it concerns a queued row (``settle``), and so do
        exit and fork: in this process it reads as if written at once.
        """
        if signer is _NOW:
            signer = self.signer()
        row = self.row_key(key, signer)
        size = payload.nbytes
        inline = size < inline_limit
        if not self._usable(signer):
            return 0
        writer = self.writer
        expire = None if keep_until is None else max(keep_until - time.time(), 0.001)
        facts = facts_of(row, meta, size, duration, created)
        if later and inline and _may_queue():
            # The header now: an error is this call's, under this call's secret.
            header = encode_header(row, None, payload, meta, created, expires, duration, True, signer)
            item = _Queued(_NewRecord(row, payload, True, lambda _name, _check: header), expire, tag, facts, size)
            now = time.monotonic()
            with self._queue_lock:
                if not self._queued:
                    self._queue_started = now
                self._queued[row] = item
                self._queue_touched = now
            self._hot.pop(row, None)
            if len(self._queued) >= _QUEUE_MOST:
                self.settle()
            elif self._flusher is None:
                self._start_flusher()
            elif self._dozing:
                self._dozing = False
                self._wake.set()
        else:
            def make_header(filename: str | None, checksum: bytes | None) -> bytes:
                return encode_header(row, filename, payload, meta, created, expires, duration, inline, signer,
                                     checksum)

            self.settle()  # in order: a queued record of this row must not land after this one
            self._commit(writer, [(row, _Queued(_NewRecord(row, payload, inline, make_header), expire, tag, facts,
                                                size))])
        return size

    def _commit(self, writer: diskcache.Cache, items: list[tuple[str, _Queued]], queued: bool = False) -> None:
        """Write records in one transaction, with the access times of recent hits; then keep to the size limit.

        Damage the write meets is set aside as a read's is (a read may still find the pages it needs
        intact, in another process's log), and the records go to the index the directory holds then (a
        fresh one, or the one another kernel began). Inside a caller's transaction, its end sets it aside
        (``transaction``). ``queued``: the items are the queue's, as ``settle`` took it (see ``_write_records``).
        """
        try:
            self._write_records(writer, items, queued)
        except sqlite3.DatabaseError as exc:
            if not _is_damaged_database(exc, self.directory) or _inside_transaction(writer):
                raise
            self._set_aside(exc, _writer_file(writer))
            self._write_records(self.writer, items, queued)

    def _write_records(self, writer: diskcache.Cache, items: list[tuple[str, _Queued]], queued: bool = False) -> None:
        """``_commit``'s writing.

        Records held in their row are written by one statement for all (an upsert, as diskcache's
        ``set`` would leave the row); those with a payload file go through ``set``, which writes it.
        A payload file a row named before is deleted after the commit, if no row names it then.
        ``queued``: only the items still in the queue once the write lock is held are written (a thread
        inside a transaction of its own may have taken and written them meanwhile: see ``settle``).
        """
        self._hot = {}
        now = time.time()
        replaced: list[str] = []
        with writer.disk.removals_after(), writer.transact():
            if queued:
                items = [(row, item) for row, item in items if self._queued.get(row) is item]
            inline = [(row, now, None if item.expire is None else now + item.expire, now, item.tag, MODE_RECORD,
                       item.record.make_header(None, None)) for row, item in items if item.record.inline]
            con = writer._con
            if self._pending_touch:
                # Recent hits decide what is least recently used: written with these records, through
                # the writer's own connection (this may run inside a caller's write transaction, a
                # batch chunk, which any other connection of ours would wait on).
                touched, self._pending_touch = self._pending_touch, {}
                _renew_access_times(con, touched)
            ids: dict[str, int] = {}
            for part in slices(inline, _ROWS_PER_STATEMENT):
                if _RETURNING:
                    # Rows that name no payload file (almost always: most are new) are written without first
                    # reading what they held; a row that names one is left as it was, and returns no id.
                    ids.update(con.execute(_upsert_inline(len(part), unless_file=True), _flat(part)).fetchall())
                    part = [entry for entry in part if entry[0] not in ids]
                    if not part:
                        continue
                # Its file, deleted after the commit (if no row names it then), and then the row replaced.
                replaced += [name for (name,) in con.execute(
                    f"SELECT filename FROM Cache WHERE key IN ({marks(len(part))}) AND raw = 1 "
                    "AND filename IS NOT NULL", [entry[0] for entry in part]).fetchall()]
                ids.update(con.execute(_upsert_inline(len(part)), _flat(part)).fetchall())  # (key, rowid) of each
            for row, item in items:
                if not item.record.inline:
                    writer.set(row, item.record, expire=item.expire, tag=item.tag)
            with contextlib.suppress(sqlite3.OperationalError):  # an index made where the table could not be
                for group in slices(items, _ROWS_PER_STATEMENT):
                    unknown = [row for row, _ in group if row not in ids]
                    if unknown:
                        ids.update(con.execute(f"SELECT key, rowid FROM Cache WHERE key IN ({marks(len(unknown))}) "
                                               "AND raw = 1", unknown).fetchall())
                    facts = [(ids[row], *item.facts) for row, item in group if row in ids]
                    con.execute(_FACTS.format(rows=",".join([_FACT_ROW] * len(facts))), _flat(facts))
        self._hot = {}
        for name in replaced:
            writer.disk.remove(name)
        self._wrote_at = now
        if self._flusher is None:
            self._start_flusher()  # it checkpoints what this process writes
        # The payloads, and about what each row adds to the index.
        self._written += sum(item.nbytes + len(row) + 1024 for row, item in items)
        if self._written >= self._headroom or time.monotonic() - self._measured > _VOLUME_EVERY:
            if _inside_transaction(writer):
                # Inside a caller's transaction (a batch chunk's) a deleted row frees no page until the commit
                # (the index vacuums then): the volume would not move, and every row would be evicted, the
                # chunk's own last. The limit is kept to once the transaction has ended (``transaction``).
                self._limit_due = True
            else:
                self._enforce_limit(writer)

    def settle(self) -> None:
        """Commit the queued quick results now, in one transaction (storage trouble: one warning, results kept out).

        A thread inside a transaction of ours holds the write lock, for which the background thread may be
        waiting with the queue's lock held: such a thread takes the queue out and writes it within its
        own transaction, without that lock (the background thread then writes only what is still queued).
        """
        if not self._queued:
            return  # the common case, on every store operation: no lock taken
        writer = self._writer
        if writer is not None and _inside_transaction(writer):
            with self._queue_lock:
                items = list(self._queued.items())
                self._queued = {}
            self._commit_queue(writer, items, queued=False)
            return
        with gate, self._settle_lock:
            items = list(self._queued.items())
            if not items:
                return
            try:
                self._commit_queue(self.writer, items)
            finally:
                with self._queue_lock:
                    for row, item in items:
                        if self._queued.get(row) is item:
                            del self._queued[row]

    def _commit_queue(self, writer: diskcache.Cache, items: list[tuple[str, _Queued]], queued: bool = True) -> None:
        """``settle``'s commit; ``queued``: of the items, those still in the queue then (see ``_write_records``)."""
        try:
            self._commit(writer, items, queued)
        except Exception as exc:
            warn_once(f"storage:{self.directory}", f"results are not being stored in {self.directory} "
                      f"({type(exc).__name__}: {exc}); they are computed and returned as usual, and caching "
                      "resumes once the directory is writable again", StorageWarning)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes into one commit, inside the fork gate (no fork while we hold the write lock).

        What the writes publish to the remote tier waits for the commit, then goes in parallel:
        no request is made while the write lock is held."""
        self.settle()
        outermost = getattr(self._deferred, "items", None) is None
        if outermost:
            self._deferred.items = []
        writer = self.writer
        try:
            try:
                with gate, writer.disk.removals_after(), writer.transact():
                    yield
            except BaseException as exc:
                self._hot = {}  # rolled back: what was read inside may be gone (neither header nor version moved)
                if outermost and _is_damaged_database(exc, self.directory):
                    self._set_aside(exc, _writer_file(writer))
                raise
            held = self._deferred.items if outermost else []
        finally:
            if outermost:
                self._deferred.items = None
        if outermost and self._limit_due:
            self._limit_due = False
            try:
                with gate:
                    self._enforce_limit(self.writer)
            except Exception as exc:  # the writes are committed: trouble here is the limit's alone
                warn_once(f"limit:{self.directory}", f"the cache in {self.directory} could not be kept to its size "
                          f"limit ({type(exc).__name__}: {exc}); it is tried again at the next writes", StorageWarning)
        by_tier: dict[int, tuple[SecondTier, list[Any]]] = {}
        for tier, item in held:
            by_tier.setdefault(id(tier), (tier, []))[1].append(item)
        for tier, items in by_tier.values():
            tier.publish_many(items)

    @_settled
    @_mending
    def stored_bytes(self) -> int:
        """Return the bytes the limit counts: the index database and the payload files."""
        self.writer.count_size_once()  # a statistic planted too low would hide what is there
        return int(self.writer.volume())

    @_settled
    def evict_to(self, limit: int) -> int:
        """Evict least recently used entries until the directory holds at most ``limit`` bytes; return how many."""
        self.writer.count_size_once()
        return self._enforce_limit(self.writer, limit)

    def _enforce_limit(self, writer: diskcache.Cache, limit: int | None = None) -> int:
        """Evict least recently used entries, one at a time, until the directory fits; return how many.

        Deleting a small row does not always free a database page at once, so this goes on until
        the volume fits or no entry is left, rather than stopping when one delete did not help.
        """
        limit = self.size_limit if limit is None else limit
        evicted = 0
        tried: set[str] = set()
        if writer.volume() > limit:
            # Counted again before each eviction, not only the first: a row planted since the last count (its
            # size added by diskcache's trigger) would otherwise take every entry. Work after a write.
            writer.count_size()
        while (volume := writer.volume()) > limit:
            # Read on the writer's own connection: inside a transaction of ours (a batch chunk's) the rows it
            # deleted are gone there, not yet on any other connection, which would offer them again forever.
            # Each row is tried once.
            rows = [row for (row,) in writer._con.execute(
                "SELECT key FROM Cache WHERE mode = ? AND raw = 1 ORDER BY access_time LIMIT ?",
                (MODE_RECORD, _EVICT_BATCH + len(tried))).fetchall() if row not in tried]
            if not rows:
                break
            for row in rows:
                tried.add(row)
                self._hot = {}
                evicted += bool(writer.delete(row))
                if writer.volume() <= limit:
                    break
        if not evicted and limit == self.size_limit:
            # What this process may write before the volume is measured again; others' writes are
            # seen when it is, at least every _VOLUME_EVERY seconds.
            self._written, self._headroom, self._measured = 0, limit - volume, time.monotonic()
        return evicted

    @_settled
    def delete(self, key: str, everywhere: bool = False) -> bool:
        """Delete this process's entry for ``key``; ``everywhere`` (the user's wish): in the remote tier too."""
        self._hot = {}
        row = self.row_key(key, self.signer())
        self._claim(row)
        writer = self.writer
        try:
            deleted = bool(writer.delete(row))
        except sqlite3.DatabaseError as exc:
            if not _is_damaged_database(exc, self.directory) or _inside_transaction(writer):
                raise
            self._set_aside(exc, _writer_file(writer))  # with the entry in it: never served from it again
            deleted = bool(self.writer.delete(row))
        if everywhere:
            deleted = self._forget_remotely([row]) or deleted
        return deleted

    def _forget_remotely(self, rows: list[str]) -> bool:
        """Delete ``rows`` from the remote tier; those it keeps (read-only) are not brought back here from it
        in this process. Return whether any was deleted there."""
        tier = second_tier()
        if tier is None or not rows:
            return False
        deleted = False
        for row in rows:
            if not tier.read_only and tier.delete(row):
                deleted = True
            else:
                self._tombstones.add(row)
        return deleted

    @_settled
    def discard(self, record_key: str) -> bool:
        """Delete an index row that was refused (its payload file goes only if no other row names it)."""
        self._hot = {}
        with contextlib.suppress(Exception):
            return bool(self.writer.delete(record_key))
        return False

    @_settled
    def delete_record(self, record: StoredRecord) -> bool:
        """Delete ``record`` if its row still holds it: an entry written since it was listed stays."""
        return bool(self.delete_records([record]))

    def records(self, tag: str | None = None, lacking: bytes | None = None) -> Iterator[StoredRecord]:
        """Yield every record of ours whose header is intact (management commands, not the hit path).

        ``tag`` keeps the rows the index tags so (a function's id: ``save`` tags each record with
        it), through the index on that column; ``lacking`` keeps the rows whose stored bytes do
        not hold these bytes. Both only narrow what is read: what is yielded is checked as always.
        Rows are read a chunk per query, so records may be deleted while this runs. Rows in any
        other form are skipped unread. Records signed with a secret this process does not have
        cannot be checked; they are yielded with ``verified`` False. Local copies of remote entries
        being made are made first: a listing (to clear, say) includes them.
        """
        if not self._exists():
            return
        if self._arriving:
            self.wait_arrivals()
        self.settle()
        signer = self.signer()
        where = "mode = ? AND raw = 1 AND typeof(key) = 'text'"
        params: list[Any] = [MODE_RECORD]
        if tag is not None:
            where, params = f"tag = ? AND {where}", [tag, *params]
        if lacking:
            where, params = f"{where} AND instr(value, ?) = 0", [*params, sqlite3.Binary(lacking)]
        query = f"SELECT rowid, key, filename, value FROM Cache WHERE {where} AND rowid > ? ORDER BY rowid LIMIT ?"
        after = -(2**63)
        while True:
            with gate:
                if self._scan_refused():  # opens, or sets a damaged index aside; each chunk: a folder may change
                    return
                try:
                    rows = connection(self.directory).execute(query, (*params, after, _SCAN_CHUNK)).fetchall()
                except sqlite3.DatabaseError as exc:
                    if not self._damage_met(exc):
                        raise
                    return  # the fresh index holds none of these rows
            for _, key, filename, value in rows:
                record = listed_record(key, filename, value, self.directory, signer)
                if record is not None:
                    yield record
            if len(rows) < _SCAN_CHUNK:
                return
            after = rows[-1][0]

    @_settled
    @_mending
    def tagged(self, tag: str, limit: int) -> int:
        """Return how many index rows carry ``tag``, counting no further than ``limit`` (the tag index alone)."""
        if not self._exists() or self._scan_refused():  # opens, or sets a damaged index aside
            return 0
        query = "SELECT count(*) FROM (SELECT 1 FROM Cache WHERE tag = ? LIMIT ?)"
        return int(connection(self.directory).execute(query, (tag, limit)).fetchone()[0])

    def summaries(self) -> list[tuple[Any, ...]] | None:
        """Return, per (function id, notebook), what ``info`` shows of its records, from the facts table.

        Each row: fid, notebook, results, code versions, bytes, compute seconds, newest creation time,
        and the index key of one result. None when the table does not hold one row per record (an
        index written by an older version, or damaged): the caller scans the records instead.
        """
        return self._facts_query(
            "SELECT fid, notebook, sum(marker = 0), count(DISTINCT CASE WHEN marker = 0 THEN code END), "
            "total(CASE WHEN marker = 0 THEN size END), total(CASE WHEN marker = 0 THEN duration END), "
            "max(created), max(CASE WHEN marker = 0 THEN key END) FROM NbmRecordFacts GROUP BY fid, notebook")

    def code_counts(self) -> list[tuple[Any, ...]] | None:
        """Return (fid, notebook, code, results) for each code version of each function, from the facts
        table; None when it does not hold one row per record (as ``summaries``)."""
        return self._facts_query("SELECT fid, notebook, code, count(*) FROM NbmRecordFacts WHERE marker = 0 "
                                "GROUP BY fid, notebook, code")

    @_settled
    def _facts_query(self, query: str) -> list[tuple[Any, ...]] | None:
        """Run ``query`` on the facts table if it holds exactly one row per record, in one read snapshot."""
        if not self._exists() or self._scan_refused():  # opens, or sets a damaged index aside
            return []
        con = connection(self.directory)
        try:
            con.execute("BEGIN")  # one snapshot for the counts and the query
            try:
                rows = con.execute("SELECT count(*) FROM Cache").fetchone()[0]
                for low, high in _NOT_RECORDS:
                    rows -= con.execute("SELECT count(*) FROM Cache WHERE key >= ? AND key < ?",
                                        (low, high)).fetchone()[0]
                if con.execute("SELECT count(*) FROM NbmRecordFacts").fetchone()[0] != rows:
                    return None
                return con.execute(query).fetchall()
            finally:
                con.execute("COMMIT")
        except sqlite3.Error:
            return None

    @_settled
    @_mending
    def record_at(self, row: str) -> StoredRecord | None:
        """Return the record in index row ``row`` as a scan lists it (``records``), or None."""
        if not self._exists() or self._scan_refused():
            return None
        found = connection(self.directory).execute(
            "SELECT key, filename, value FROM Cache WHERE key = ? AND raw = 1 AND mode = ?", (row, MODE_RECORD)
        ).fetchone()
        return None if found is None else listed_record(found[0], found[1], found[2], self.directory, self.signer())

    @_settled
    def rebuild_facts(self, facts: list[tuple[Any, ...]]) -> None:
        """Replace the facts table with ``facts`` (one per record, from a scan): later summaries need no scan.

        Records written while the scan ran may be missing; the next summary then finds the table
        short, and scans again.
        """
        if not self._exists() or self._scan_refused():
            return
        con = connection(self.directory)
        with contextlib.suppress(sqlite3.Error), _write_transaction(con):
            con.execute("DELETE FROM NbmRecordFacts")
            con.executemany("INSERT OR REPLACE INTO NbmRecordFacts SELECT rowid, ?, ?, ?, ?, ?, ?, ?, ? "
                            "FROM Cache WHERE key = ? AND raw = 1",  # none for a row gone since
                            [(*fact, fact[0]) for fact in facts])

    @_settled
    def get_many(self, keys: list[str], plain: bool = True) -> dict[str, StoredRecord | CorruptRecord | PlainRecord]:
        """Return the records of ``keys``, verified as ``get`` verifies one, read a few hundred per query.

        A key whose row is refused maps to the CorruptRecord (a ForeignRecord for a row notebook_memo
        did not write) that ``get`` would raise; a key without a live row is left out. The commonest
        record (unsigned, inline, one pickle, no TTL, no preconditions) comes as a PlainRecord tuple,
        verified in one pass without building its header (unless ``plain`` is False: a caller that judges
        records by their age needs the header); every other as a StoredRecord. Nothing is
        unpickled here; the caller loads only the records it returns. Access times older than
        TOUCH_RESOLUTION are renewed in the next batch of them.
        """
        signer = self.signer()
        keys = list(keys)  # read once: an iterator may be given
        rows = dict(zip(keys, keys)) if signer is None else {self.row_key(key, signer): key for key in keys}
        found: dict[str, StoredRecord | CorruptRecord | PlainRecord] = {}
        if not self._usable(signer):
            return found
        now = time.time()
        quick, wrote_at, recent = plain and signer is None, self._wrote_at, now - _TOUCH_RESOLUTION
        opened = None
        try:
            con = connection(self.directory)
            opened = _connection_file(self.directory, con)
            for part in slices(list(rows)):
                query = (f"SELECT key, mode, filename, value, access_time, rowid, tag FROM Cache WHERE key IN "
                         f"({marks(len(part))}) AND raw = 1 AND (expire_time IS NULL OR expire_time > ?)")
                # Fetched before any is decoded: stepping SQLite between decodes costs more than the rows take.
                for row, mode, filename, value, used, rowid, tag in con.execute(query, (*part, now)).fetchall():
                    tuple_ = (read_plain(value, row.encode()) if quick and mode == MODE_RECORD
                              and filename is None and type(value) is bytes else None)
                    if tuple_ is not None and _filed_as_written(tuple_[1], tag, lambda: {}):
                        found[rows[row]] = tuple_
                    else:
                        # Misfiled, the full path says so.
                        try:
                            found[rows[row]] = _verified_record(row, mode, filename, value, self.directory, signer,
                                                                tag)
                        except CorruptRecord as exc:
                            found[rows[row]] = exc
                    # _stale_use, its commonest answer (a float newer than both) without a call
                    if not (type(used) is float and used > wrote_at and used >= recent) and self._stale_use(used, now):
                        self._pending_touch[row] = rowid
        except sqlite3.DatabaseError as exc:
            if not _is_damaged_database(exc, self.directory):
                raise
            self._set_aside(exc, opened)
            return {}
        if found and self._flusher is None:
            self._start_flusher()
        missing = ([] if len(found) == len(rows) else
                   [row for row, key in rows.items() if key not in found and row not in self._tombstones])
        tier = second_tier() if missing else None
        if tier is not None:
            for row, fetched in tier.fetch_many(missing, signer).items():
                record = self._imported(rows[row], fetched, signer)
                if record is not None:
                    found[rows[row]] = record
        return found

    def delete_records(self, records: Iterable[StoredRecord], everywhere: bool = False) -> list[StoredRecord]:
        """Delete ``records`` where their rows still hold them, a few hundred per transaction; return those deleted.

        Each row is read again inside the transaction and deleted only if it holds the very header
        that was listed (and verified): an entry written since stays. A payload file goes after
        the commit, and only if no row names it any more. Damage met sets the index aside: the
        records not yet deleted went with it (none is served again), and count as deleted.
        """
        deleted: list[StoredRecord] = []
        if not self._exists() or self._scan_refused():
            return deleted
        if self._arriving:
            self.wait_arrivals()  # every copy being made is listed, or not, before anything is deleted
        self.settle()
        with gate:
            self.writer  # noqa: B018 (opens, or sets a damaged index aside)
            con = connection(self.directory)
        iterator = iter(records)
        while chunk := list(itertools.islice(iterator, _DELETE_CHUNK)):
            listed = {r.key: r for r in chunk}
            gone: list[StoredRecord] = []
            query = (f"SELECT rowid, key, mode, filename, value FROM Cache WHERE key IN ({marks(len(listed))}) "
                     "AND raw = 1")
            try:
                with gate, _waiting_briefly(con, self.directory), _write_transaction(con):
                    doomed = []
                    for rowid, key, mode, filename, value in con.execute(query, list(listed)).fetchall():
                        record = listed[key]
                        if mode == MODE_RECORD and filename == record.filename and \
                                _check_of(value) == record.header.check:
                            doomed.append(rowid)
                            gone.append(record)
                    for part in slices(doomed):
                        con.execute(f"DELETE FROM Cache WHERE rowid IN ({marks(len(part))})", part)
            except sqlite3.DatabaseError as exc:
                if not self._damage_met(exc):
                    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                        raise lock_held_error(True) from None  # past _SHORT_WAIT_MS: see _Transaction
                    raise
                # The rows not deleted yet went aside with the damaged index: none is served again.
                deleted.extend([*chunk, *iterator])
                break
            self._hot = {}
            with gate:
                for record in gone:
                    if record.filename:
                        self.writer.disk.remove(record.filename)
            deleted.extend(gone)
        if everywhere:
            self._forget_remotely([record.key for record in deleted])
        return deleted

    @_settled
    @_mending
    def volume(self) -> int:
        return int(self.reader.volume())

    @_settled
    def expire(self) -> int:
        """Reclaim expired records now; return how many."""
        self._hot = {}
        return int(self.writer.expire())

    @_settled
    @_mending
    def repair(self, started: float | None = None) -> list[str]:
        """Drop rows whose payload file is gone, and payload files no row names; return what was done.

        Only files with the store's name pattern, in its folders, are ever deleted, and none
        modified after ``started`` minus a grace period (a writer may be about to index it).
        """
        started = time.time() if started is None else started
        self._hot = {}
        writer = self.writer
        done: list[str] = []
        con = connection(self.directory)
        for key, filename in con.execute("SELECT key, filename FROM Cache WHERE filename IS NOT NULL").fetchall():
            full = store_file_path(self.directory, filename)
            if full is None or not os.path.lexists(full):
                with contextlib.suppress(Exception):
                    writer.delete(key)
                done.append(f"dropped the row of {str(key)[:16]}: its payload file is missing or not the store's")
        named = {f for (f,) in con.execute("SELECT filename FROM Cache WHERE filename IS NOT NULL").fetchall()}
        real = self._folder  # where this index's payload files are, whatever a link names now
        for first in _hex_dirs(real):
            for second in _hex_dirs(os.path.join(real, first)):
                folder = os.path.join(real, first, second)
                for name in os.listdir(folder):
                    relative = f"{first}/{second}/{name}"
                    full = store_file_path(self.directory, relative)
                    if full is None or relative in named:
                        continue
                    with contextlib.suppress(OSError):
                        st = os.lstat(full)
                        if stat.S_ISREG(st.st_mode) and st.st_mtime < started - _ORPHAN_GRACE:
                            writer.disk.remove(relative)
                            done.append(f"removed the unreferenced payload file {relative}")
        self._write_marker()
        return done

    def _write_marker(self) -> None:
        marker = os.path.join(self._folder, _MARKER)
        index = os.path.join(self._folder, _DB_NAME)
        indexed = os.path.lexists(index)  # first: the marker is always made before the index, so a kernel
        if os.path.lexists(marker):       # that saw an index here sees the marker now
            return
        if indexed and not _made_by_us(index):
            # Every index of ours was made beside the marker (a lost marker is made again): this one is
            # someone else's (diskcache's own file has the same name), in a folder given as the cache
            # directory. It is left as it is.
            raise ConfigurationError(
                f"the folder {self.directory} holds a {_DB_NAME} that notebook_memo did not make (there is no "
                f"{_MARKER} file beside it), so it is not used or changed. Give the cache a new or empty folder "
                "(configure(cache_dir=...) or NOTEBOOK_MEMO_DIR).")
        with contextlib.suppress(FileExistsError):  # another process wrote it first
            # Never through a link planted under the marker's name: O_EXCL creates the name itself.
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
            with os.fdopen(fd, "w") as f:
                f.write("notebook_memo cache directory: safe to delete as a whole.\n")

    # -- LRU access times, written in batches ------------------------------------------------
    def _touch_later(self, key: str) -> None:
        self._pending_touch.setdefault(key, 0)
        if self._flusher is None:
            self._start_flusher()

    def _start_flusher(self) -> None:
        with self._lock:
            if self._flusher is not None:
                return
            flusher = threading.Thread(target=_flush_loop, args=(weakref.ref(self),),
                                       name="notebook_memo-flush", daemon=True)
            flusher.start()  # before it is seen: another thread's close may join it at once
            self._flusher = flusher

    def count_hits(self, tag: str, n: int) -> None:
        """Count ``n`` hits of function ``tag`` at once (items of a batch); written like ``count_hit``'s."""
        if n:
            self._pending_hits[tag] = self._pending_hits.get(tag, 0) + n

    def count_hit(self, tag: str) -> None:
        """Count a hit of function ``tag``; written with the next batch of access times, which also says
        when it was last used (to the flush: within a few seconds, or at exit)."""
        self._pending_hits[tag] = self._pending_hits.get(tag, 0) + 1

    @_gated
    @_mending
    def hit_stats(self, tag: str) -> tuple[int, float]:
        """Return (hits, last hit time) of function ``tag`` across all processes."""
        if self._scan_refused():
            return 0, 0.0
        reader = self.reader
        hits, used = reader.get(f"stats:hits:{tag}", 0), reader.get(f"stats:used:{tag}", 0.0)
        return (hits if type(hits) is int else 0), (float(used) if type(used) in (int, float) else 0.0)

    @_gated
    def flush(self) -> None:
        """Commit queued quick results; write pending access times and hit counts; renew held leases."""
        if not self._exists():  # deleted by the user: never re-created to record these
            self._pending_touch, self._pending_hits = {}, {}
            with self._queue_lock:
                self._queued = {}
            return
        self.settle()
        if self._leases.held:
            self.renew_leases()
        if not self._pending_touch and not self._pending_hits:
            return
        touched, self._pending_touch = self._pending_touch, {}
        hits, self._pending_hits = self._pending_hits, {}
        # One statement per step, each committing alone (see renew_leases): this runs on a
        # background thread.
        if self._ident is None or self._index_ident() != self._ident:
            return  # never opened here, or deleted or replaced since: not ours to re-create
        with contextlib.suppress(OSError, sqlite3.Error):
            con = connection(self.directory)
            now = _renew_access_times(con, touched)
            for tag, count in list(hits.items()):  # read at once (see _renew_access_times)
                _upsert_number(con, f"stats:hits:{tag}", count, "value + excluded.value", now)
                _upsert_number(con, f"stats:used:{tag}", now, "excluded.value", now)

    @_gated  # no fork while the log is being copied (a child would inherit SQLite's locks held)
    def checkpoint(self, at_exit: bool = False) -> None:
        """Copy the write-ahead log into the index when this process wrote since the last time (the
        background thread): a write then never waits for a checkpoint, which syncs the disk.

        ``at_exit``: also empty the log when no other process is reading it (waiting a moment at
        most), so that a kernel that wrote leaves the whole index in its file, as closing the last
        connection would (our background thread's is never closed).
        """
        if self._wrote_at <= (0.0 if at_exit else self._checkpointed) or self._ident is None or \
                self._index_ident() != self._ident:
            return
        self._checkpointed = time.time()
        with contextlib.suppress(OSError, sqlite3.Error):
            con = connection(self.directory)
            if at_exit:
                con.execute("PRAGMA busy_timeout = 200")
            # Its row read to the end: a statement left on its row would hold the log open.
            con.execute(f"PRAGMA wal_checkpoint({'TRUNCATE' if at_exit else 'PASSIVE'})").fetchall()

    # -- leases: one process computes a key, others wait (see _leases) ----------------------
    def try_lease(self, key: str, watch: Watch | None = None) -> bool:
        """Take the lease on ``key`` for this process; False while someone else holds it.

        With ``watch``, a lease whose row has not changed for a whole lease time on this
        process's clock (or whose holder is a dead process of this host) is taken over.
        """
        return self.try_leases([key], [watch])[0]

    def try_leases(self, keys: list[str], watches: list[Watch | None]) -> list[bool]:
        """Take the leases on ``keys`` that are free or lapsed, in one transaction; say which were taken.

        A key leased here is leased in the remote tier too (outside the fork gate), as its row: kernels with
        another secret keep entries of their own there, so they never wait on each other. One another machine
        holds is given back here, and the caller waits and looks for the result as for a local holder."""
        try:
            tier = second_tier()
        except Exception:
            tier = None  # a remote that cannot be used: no coordination across machines, never a leaked lease
        signer = self.signer()
        rows = {key: self.row_key(key, signer) for key in keys}
        if tier is not None and all(tier.backing_off(rows[key]) for key in keys):
            # Another machine computes them and it is not yet time to look again: no local lease taken and
            # given back on every turn of the caller's wait.
            return [False] * len(keys)
        taken = self._take_here(keys, watches)
        if not any(taken) or tier is None:
            return taken
        ours_here = [key for key, ours in zip(keys, taken) if ours]
        try:
            elsewhere: list[str] = []
            for key, held in zip(ours_here, tier.try_leases([rows[key] for key in ours_here])):
                if held:
                    self._remote_leases[key] = (tier, rows[key])
                else:
                    elsewhere.append(key)
            if elsewhere:
                with gate, contextlib.suppress(OSError, sqlite3.Error):
                    self._leases.give_back(connection(self.directory), elsewhere)
                taken = [ours and key not in elsewhere for key, ours in zip(keys, taken)]
        except BaseException:
            # Interrupted (Ctrl-C) or failed before the caller learns it holds them: nothing would give them
            # back, and our own background threads would renew them for as long as this process lives. The
            # tier gives back those of ours it holds, noted here or not yet.
            for key in ours_here:
                self._remote_leases.pop(key, None)
            tier.release([rows[key] for key in ours_here])
            self._give_back_here(ours_here)
            raise
        return taken

    @_gated
    def _take_here(self, keys: list[str], watches: list[Watch | None]) -> list[bool]:
        self.writer  # noqa: B018 (opens the index, or reopens a deleted directory)
        con = connection(self.directory)
        with _waiting_briefly(con, self.directory):
            taken = self._leases.take(con, keys, watches)
        if any(taken) and self._flusher is None:
            try:
                self._start_flusher()
            except BaseException:  # as in try_leases: leases the caller never learns of go back now
                self._leases.give_back(con, [key for key, ours in zip(keys, taken) if ours])
                raise
        return taken

    def release_leases(self, keys: list[str]) -> list[str]:
        """Give these leases back in one transaction; return the keys whose lease had lapsed meanwhile.

        Each lease held in the remote tier goes back to the tier it was taken from."""
        remote: dict[int, tuple[SecondTier, list[str]]] = {}
        for key in keys:
            leased = self._remote_leases.pop(key, None)
            if leased is not None:
                remote.setdefault(id(leased[0]), (leased[0], []))[1].append(leased[1])
        for tier, held in remote.values():
            tier.release(held)
        return self._give_back_here(keys)

    @_gated
    def _give_back_here(self, keys: list[str]) -> list[str]:
        try:
            con = connection(self.directory)
        except (OSError, sqlite3.Error):
            return []  # the directory is gone (or its index cannot be opened), and our leases with it
        return self._leases.give_back(con, keys)

    @_gated
    def renew_leases(self) -> None:
        """Show that this process is still computing the keys it holds."""
        if self._leases.held:
            with contextlib.suppress(OSError, sqlite3.Error):
                self._leases.renew(connection(self.directory))

    def leased(self, key: str) -> bool:
        """Return whether a lease row for ``key`` exists (someone computes it, or did and died): one read,
        or none right after this thread's ``get(key, probe=True)``, which read it with the record."""
        probed = getattr(self._thread, "probed", None)
        if probed is not None:
            self._thread.probed = None
            if probed[0] == key:
                return probed[1]  # type: ignore[no-any-return]
        try:
            with gate:
                return self.writer._con.execute("SELECT 1 FROM Cache WHERE key = ? AND raw = 1",
                                                (LOCK_PREFIX + key,)).fetchone() is not None
        except Exception:
            return True  # cannot tell (no working storage): take the careful path

    # -- runs without a lease: a quick function's miss takes one only if it turns out slow -----------
    def run_started(self, key: str) -> None:
        """Note that ``key`` is being computed without a lease; it gets one if it runs past QUICK_BODY."""
        self._running[key] = [time.monotonic(), False]
        if self._flusher is None:
            self._start_flusher()
        elif self._dozing:
            self._dozing = False
            self._wake.set()

    def body_finished(self, key: str) -> None:
        """Note that the body of the run of ``key`` returned: its result is being stored, which needs no lease.

        No lock: ``lease_long_runs`` reads the start under the store's lock, and a look just before this
        write is one the lock would order before it as well."""
        entry = self._running.get(key)
        if entry is not None:
            entry[0] = math.inf

    def run_finished(self, key: str) -> bool:
        """Forget the run of ``key``; return True when a lease was taken for it meanwhile (the caller gives it back)."""
        with self._lock:
            entry = self._running.pop(key, None)
        self._ran = time.monotonic()
        return entry is not None and entry[1]

    def lease_long_runs(self, now: float) -> None:
        """Take the leases of the runs without one that have gone on past QUICK_BODY (on the background thread)."""
        with self._lock:
            # Read at once (list() of a dict is one step for the interpreter): a quick miss notes its run
            # without the lock, and a dict that changes while a loop walks it stops the loop with an error.
            due = [key for key, (started, leased) in list(self._running.items())
                   if not leased and now - started >= QUICK_BODY]
            if not due:
                return
            with contextlib.suppress(Exception):  # no lease: others may compute it too, which is only work
                for key, taken in zip(due, self.try_leases(due, [None] * len(due))):
                    self._running[key][1] = taken

    def holds_leases(self) -> bool:
        return bool(self._leases.held)

    @_settled
    def present(self, keys: list[str]) -> set[str]:
        """Return which of ``keys`` have a row in the index now (unverified: a quick look before a full read)."""
        signer = self.signer()
        rows = {self.row_key(k, signer): k for k in keys}
        found: set[str] = set()
        con = connection(self.directory)
        for part in slices(list(rows)):
            query = f"SELECT key FROM Cache WHERE key IN ({marks(len(part))})"
            found.update(rows[k] for (k,) in con.execute(query, part).fetchall())
        return found

    def after_fork_in_child(self) -> None:
        """Start over in a forked child: the parent's connections, threads, locks and leases are not ours."""
        _abandoned.append((self._reader, self._writer))  # closing them here could disturb the parent's
        self._reader = self._writer = None
        self._ident = None
        self._lock = threading.RLock()
        self._flusher = None
        self._stop = threading.Event()
        self._running, self._ran, self._wake, self._dozing = {}, 0.0, threading.Event(), False
        # The threads making local copies, and the leases, are not here.
        self._arriving, self._generations, self._remote_leases = {}, {}, {}
        self._leases = Leases(_schema_still_ours)
        self._pending_touch, self._pending_hits = {}, {}
        self._queued = {}  # the parent commits them
        self._queue_lock, self._settle_lock = threading.Lock(), threading.Lock()
        self._hot = {}
        self._checked = 0.0
        self._recheck = False

    def wait_briefly(self) -> None:
        """Let this thread's open connections to the index wait _SHORT_WAIT_MS for its write lock from now on."""
        held = _connections.__dict__.get("by_dir", {}).get(self.directory)
        cons = [held[2]] if held is not None and held[0] == os.getpid() else []
        for handle in (self._reader, self._writer):
            local = getattr(handle, "_local", None)
            con = getattr(local, "con", None)
            if con is not None and getattr(local, "pid", None) == os.getpid():
                cons.append(con)
        for con in cons:
            with contextlib.suppress(sqlite3.Error):
                con.execute(f"PRAGMA busy_timeout = {_SHORT_WAIT_MS}")

    def stop_background(self, wait: float = 1.0) -> None:
        """Stop the background thread, waiting for its current round (at most ``wait`` seconds)."""
        self._stop.set()
        self._wake.set()
        flusher = self._flusher
        if flusher is not None and flusher is not threading.current_thread():
            flusher.join(wait)

    def _work_left(self) -> bool:
        """Return whether the background thread still has work here: a lease to renew, a run that may need
        one, a result to commit, access times or hits to write, a local copy being made."""
        return bool(self._leases.held or self._running or self._queued or self._pending_touch or
                    self._pending_hits or self._arriving)

    def _let_go(self) -> bool:
        """On the background thread of a closed store: end it (True) when no work is left for it."""
        with self._lock:
            if self._work_left():
                return False
            self._flusher = None
        if self._work_left():  # work that came as we let go, its caller having seen a thread still here
            self._start_flusher()
        return True

    def close(self) -> None:
        """Commit what is queued and pending, let the background thread end and close the calling thread's
        connections to the index (other threads' close as those threads end).

        A body still running keeps the thread (its lease is renewed) until it ends. The store stays usable:
        used again, each thread reopens its connection and a thread starts when there is work for one; but
        ``closed`` tells its holders to ask ``get_store`` again."""
        with contextlib.suppress(Exception):
            self.flush()
        self.closed = True
        self._wake.set()
        flusher = self._flusher
        if flusher is not None and flusher is not threading.current_thread() and not self._work_left():
            flusher.join(1.0)
        with gate:
            self.close_thread_connections()
        self._hot, self._seen = {}, {}
        self._hot_version = _NO_VERSION


class _Token:
    """Names one connection of one thread, and holds its view of the wal-index header once looked for."""

    __slots__ = ("index", "looked", "view")

    def __init__(self, index: tuple[int, int] | None) -> None:
        self.index = index  # the index file (device, inode) the connection opened, where known
        self.view: HeaderView | None = None  # read only while the connection is open (see _walmark)
        self.looked = False


def _flush_loop(ref: weakref.ReferenceType[Store]) -> None:
    own_thread.ours = True  # what this thread opens is the store's, never a running body's input
    interval = min(TOUCH_FLUSH_INTERVAL, resolve_lease() / 3)
    flushed = checkpointed = 0.0
    while True:
        store = ref()
        if store is None:
            return
        if store._stop.is_set() or (store.closed and store._let_go()):
            with gate:
                store.close_thread_connections()
            return
        try:
            now = time.monotonic()
            if store._queued and (now - store._queue_touched >= _QUEUE_QUIET or
                                  now - store._queue_started >= _QUEUE_OLDEST):
                # While misses keep coming, the thread making them commits every _QUEUE_MOST: a commit
                # from here would make that thread read again the pages it had (another connection wrote).
                with contextlib.suppress(Exception):
                    store.settle()
            # Each step's trouble is its own: the thread goes on (it alone commits quick results while
            # the kernel is idle, checkpoints the log and leases the runs that turn out slow).
            if store._running:
                with contextlib.suppress(Exception):
                    store.lease_long_runs(now)
            if now - flushed >= interval:
                flushed = now
                with contextlib.suppress(Exception):
                    store.revalidate()  # first: a log replaced under the connections is not written through
                with contextlib.suppress(Exception):
                    store.flush()
            if now - checkpointed >= _CHECKPOINT_EVERY:
                # Often enough that a loop of misses leaves the log short: a commit past _WAL_BACKSTOP
                # pages would checkpoint on the writing thread.
                checkpointed = now
                with contextlib.suppress(Exception):
                    store.checkpoint()
            # While runs without a lease go on (and a while after), look at them often; else doze.
            watching = bool(store._running) or now - store._ran < 1.0
            wake = store._wake
            if not watching:
                store._dozing = True
        finally:
            del store
        if watching:
            time.sleep(_LATE_LEASE_POLL)
        else:
            wake.wait(interval)
            wake.clear()


_stores: dict[str, Store] = {}
# Every store alive, the closed ones still held included: each is flushed at exit and reset in a forked child.
_every_store: weakref.WeakSet[Store] = weakref.WeakSet()
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
    if store.closed:  # closed, yet still the directory's store: in service again
        store.closed = False
    if store.size_limit != size_limit:  # configure(size_limit=...) after the store was opened
        store.size_limit = size_limit
        if store._writer is not None:
            with gate:  # a statement, so inside the fork gate as every other
                store._writer.configure("size_limit", size_limit)
    return store


def open_stores() -> list[Store]:
    """Return the stores this process has opened."""
    return list(_stores.values())


def close_stores(directories: Iterable[str]) -> None:
    """Close and forget the stores of these directories (see ``Store.close``): a process that used many
    (a test suite, a long kernel) holds no file and no thread for them. A later get_store opens a fresh store."""
    for directory in directories:
        with _stores_lock:
            store = _stores.pop(directory, None)
        if store is not None:
            store.close()


_HEX2 = re.compile(r"[0-9a-f]{2}")


def _hex_dirs(folder: str) -> list[str]:
    """Return the store's two-hex-digit subfolders of ``folder`` (real folders, not links)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return [n for n in names if _HEX2.fullmatch(n) and not os.path.islink(os.path.join(folder, n))
            and os.path.isdir(os.path.join(folder, n))]


def is_cache_directory(directory: str) -> bool:
    """Return True when ``directory`` holds a notebook_memo cache."""
    return os.path.exists(os.path.join(directory, _MARKER))


_forked = False  # this process is a forked child (see _may_queue)
_main_process: list[bool | None] = [None]  # _may_queue's answer, once multiprocessing is loaded


def _after_fork_in_child() -> None:
    global _stores_lock, _forked, _opening
    _stores_lock = threading.Lock()
    _opening = threading.RLock()  # a thread of the parent may have held it; that thread is not here
    for fd in list(_locked_directories):  # copies of a parent thread's locked directory: closed, not unlocked
        with contextlib.suppress(OSError):
            os.close(fd)
    _locked_directories.clear()
    _forked = True
    inherited = _connections.__dict__.pop("by_dir", None)
    if inherited:
        _abandoned.append(inherited)
    for store in list(_every_store):
        store.after_fork_in_child()


at_fork_in_child(_after_fork_in_child)


def _settle_all() -> None:
    """Commit every store's queued results: a forked child reads them from the index (it drops its copy)."""
    for store in list(_every_store):
        with contextlib.suppress(Exception):
            store.settle()


if hasattr(os, "register_at_fork"):
    # Registered after the fork gate's own hook, so run before it (SQLite is not entered once a fork waits).
    os.register_at_fork(before=_settle_all)


@contextlib.contextmanager
def _waiting_briefly(con: sqlite3.Connection, directory: str) -> Iterator[None]:
    """Let statements on ``con`` wait _SHORT_WAIT_MS for the write lock (not at all while it was lately held that
    long, see _write_lock_held), then the connection's own time again; a wait given up notes the lock as held."""
    held = _lately_held(directory)
    ((before,),) = con.execute("PRAGMA busy_timeout").fetchall()
    con.execute(f"PRAGMA busy_timeout = {0 if held else _SHORT_WAIT_MS}")
    try:
        yield
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc):
            _note_lock(directory, held, free=False)
        raise
    else:
        _note_lock(directory, held, free=True)
    finally:
        con.execute(f"PRAGMA busy_timeout = {int(before)}")


@atexit.register
def _flush_all() -> None:
    for store in list(_every_store):
        if store._lost_logs is not None:
            with contextlib.suppress(Exception), gate:
                store.close_thread_connections()  # kept open, not closed (see _lose_logs)
            continue
        with contextlib.suppress(Exception):
            store.stop_background()  # its checkpoint would make ours at exit give up (SQLite does not wait)
        with contextlib.suppress(Exception):
            store.wait_briefly()  # a kernel ending (Jupyter kills one that takes seconds) waits for no one long
        with contextlib.suppress(Exception):
            store.flush()
        if not store.closed:  # a closed store's connections are closed: none is opened again only for this
            with contextlib.suppress(Exception):
                store.checkpoint(at_exit=True)
