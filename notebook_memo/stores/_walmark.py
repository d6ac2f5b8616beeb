"""Whether any connection committed to an index since a moment, told without a read transaction.

An index in WAL mode has a shared-memory file beside it (``cache.db-shm``), the wal-index. Its first
48 bytes are a header that SQLite rewrites at every commit: a commit counter, the log's last frame, its
salts and a checksum of them (https://www.sqlite.org/walformat.html documents this for the unix and
windows VFSes; processes running different SQLite versions share the file, so its layout is fixed).
While those bytes read the same, no connection has committed, and ``PRAGMA data_version`` would
answer as it did. Reading them is one ``pread``; the PRAGMA begins and ends a read transaction (two
lock calls on that same file, and a statement), which was a quarter of a small hit.

The file is read, never mapped: a map of a file another program cuts short is a SIGBUS. A file SQLite
does not use (a leftover, a build that keeps the wal-index elsewhere) never changes, so the header is
trusted only after this process has seen it change. The last connection to an index deletes the file
and the next one makes a new one: so a mark is only as good as its file, and ``current`` (asked
whenever a connection is new, and every few seconds) replaces it when the path names another file.

Closing a descriptor drops every POSIX lock the process holds on that file, SQLite's included: a
connection of ours would go on as if it held its locks while other processes no longer see them (one
closed at exit made the last commits of a kernel fail with "locking protocol"). So a descriptor is
closed only under an open-file-description lock on the byte SQLite keeps share-locked for as long as a
connection uses the file (its "DMS" byte): granted, no connection anywhere uses the file and none can
start meanwhile. Until then it waits (for the next close, garbage collection or check); a forked
child closes the copies it inherited at once (it holds no POSIX lock: fork does not pass them on).
Where such locks do not exist (not Linux), no mark is used and every check asks SQLite. No thread lock
is taken here: a fork can never leave a child waiting on one.
"""

from __future__ import annotations

import gc
import os
import struct
import sys
import threading
import time
import weakref
from typing import Any

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ()

_HEADER = 48  # one copy of the wal-index header
_VERSION = struct.pack("=I", 3007000)  # its iVersion, in the writer's (native) byte order
_INIT = 12  # offset of isInit: 1 once a connection has built the header
_DMS = 128  # the byte every connection using the file holds a shared lock on (unix VFS: 120 + 8 lock bytes)
_FLOCK = "=hhxxxxqqixxxx"  # struct flock on 64-bit Linux: type, whence, start, length, pid
USABLE = sys.platform == "linux" and fcntl is not None and hasattr(fcntl, "F_OFD_SETLK") and struct.calcsize("P") == 8


class _Shm:
    """One wal-index file open here: shared by every mark of it in this process, closed once unused."""

    __slots__ = ("fd", "ident", "users")

    def __init__(self, fd: int, ident: tuple[int, int]) -> None:
        self.fd, self.ident, self.users = fd, ident, 0


_files: dict[tuple[int, int], _Shm] = {}  # by (device, inode): one descriptor per file, whatever reopens it
_spare: list[int] = []  # descriptors of a file opened twice (its path replaced meanwhile), closed once unused
_lock = threading.Lock()  # held for dict and counter changes only (a forked child gets a new one)
_swept = [0.0]  # when the last sweep ran (garbage collections run often: a sweep at most every second)


class WalMark:
    """Reads the wal-index header of one index file, as proof that nothing committed since it was last read."""

    def __init__(self, index_path: str) -> None:
        self._path = index_path + "-shm"
        self._shm: _Shm | None = None
        self._first: bytes | None = None
        self._proven = False  # the header changed since it was first read here: SQLite writes this file
        self._closed = not USABLE
        _marks.add(self)

    def read(self) -> bytes | None:
        """Return the header as it is now, or None when it cannot be trusted (then ask SQLite)."""
        shm = self._shm
        if shm is None:
            shm = self._open()
            if shm is None:
                return None
        try:
            head = os.pread(shm.fd, _HEADER, 0)
        except OSError:
            return None
        if len(head) != _HEADER or head[_INIT] != 1 or head[:4] != _VERSION:
            return None  # not built yet, or not a header this code knows
        if self._proven:
            return head
        if self._first is None:
            self._first = head
        elif head != self._first:
            self._proven = True
            return head
        return None

    def _open(self) -> _Shm | None:
        with _lock:
            if self._closed or self._shm is not None:
                return self._shm
            shm = _acquire(self._path)
            if shm is None:
                return None
            shm.users += 1
            self._shm = shm
            if self._closed:  # closed meanwhile, before it saw this file: given back here
                self._shm = None
                shm.users -= 1
                return None
        weakref.finalize(self, _release, shm).atexit = False  # at exit the system closes it, after SQLite
        return shm

    def current(self) -> WalMark:
        """Return this mark while its file is the one at the path (or none was opened), else a new mark."""
        shm = self._shm
        if shm is None:
            return self
        try:
            st = os.stat(self._path)
            same = (st.st_dev, st.st_ino) == shm.ident
        except OSError:
            same = False
        if same:
            return self
        self.close()
        return WalMark(self._path[:-len("-shm")])

    def close(self) -> None:
        """Let the file go (closed once no mark and no connection uses it); the mark answers None from now on."""
        self._closed = True
        shm, self._shm = self._shm, None
        if shm is not None:
            _release(shm)


_marks: weakref.WeakSet[WalMark] = weakref.WeakSet()


def _acquire(path: str) -> _Shm | None:
    """Return the open file at ``path`` (opening it once per file); None if it cannot be opened. Under _lock."""
    try:
        st = os.stat(path)
        known = _files.get((st.st_dev, st.st_ino))
        if known is not None:
            return known
        # Read and write: the lock that makes closing it safe needs a descriptor open for writing (it is
        # never written). Another user's file, or none yet (SQLite makes it): no mark.
        fd = os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    st = os.fstat(fd)
    ident = (st.st_dev, st.st_ino)
    known = _files.get(ident)
    if known is not None:  # the path named another file a moment ago: this one is open already
        _spare.append(fd)  # never closed at once (closing it would drop SQLite's locks on the file)
        return known
    shm = _files[ident] = _Shm(fd, ident)
    return shm


def _release(shm: _Shm) -> None:
    # No lock taken here: this also runs as a mark is collected, which may be while this thread holds it.
    _released.append(shm)
    sweep()


_released: list[_Shm] = []  # files a mark gave back, counted at the next sweep


def sweep() -> None:
    """Close the files no mark reads and no connection (of any process) uses any more."""
    if not _lock.acquire(blocking=False):
        return  # being changed or swept by another thread (or this one): the next sweep closes what is due
    try:
        _swept[0] = time.monotonic()
        while _released:
            _released.pop().users -= 1
        for ident, shm in list(_files.items()):
            if shm.users <= 0 and _close_if_unused(shm.fd):
                del _files[ident]
        _spare[:] = [fd for fd in _spare if not _close_if_unused(fd)]
    finally:
        _lock.release()


def _close_if_unused(fd: int) -> bool:
    """Close ``fd`` when no connection (of any process) uses its file; say whether it was closed."""
    assert fcntl is not None
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, _DMS, 1, 0))
    except OSError:
        return False  # a connection holds the file (ours or another process's): not now
    os.close(fd)  # no connection uses the file, and none can begin to until this lock goes, with the descriptor
    return True


def _after_collection(phase: str, info: dict[str, Any]) -> None:
    # A collection may have closed the last connection of a thread that ended: a full one (gc.collect())
    # sweeps at once, the frequent young ones at most every second.
    due = info.get("generation") == 2 or time.monotonic() - _swept[0] >= 1.0
    if phase == "stop" and (_files or _spare) and due:
        try:
            sweep()
        except Exception:
            pass


def _after_fork_in_child() -> None:
    # The child holds no POSIX lock (fork passes none on): closing its copies drops nothing of anyone's,
    # and leaves no open-file-description lock of the parent's held by a copy the child would keep.
    global _lock
    _lock = threading.Lock()
    for mark in list(_marks):
        mark._closed, mark._shm = True, None
    for fd in [shm.fd for shm in _files.values()] + _spare:
        try:
            os.close(fd)
        except OSError:
            pass
    _files.clear()
    _spare.clear()
    _released.clear()


if USABLE:
    gc.callbacks.append(_after_collection)
    os.register_at_fork(after_in_child=_after_fork_in_child)
