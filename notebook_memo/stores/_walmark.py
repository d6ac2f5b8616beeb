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
No lock is held here: a fork can never leave a child waiting on one.
"""

from __future__ import annotations

import os
import struct
import weakref
from typing import Any

__all__ = ()

_HEADER = 48  # one copy of the wal-index header
_VERSION = struct.pack("=I", 3007000)  # its iVersion, in the writer's (native) byte order
_INIT = 12  # offset of isInit: 1 once a connection has built the header


class WalMark:
    """Reads the wal-index header of one index file, as proof that nothing committed since it was last read."""

    def __init__(self, index_path: str) -> None:
        self._path = index_path + "-shm"
        # The file once open: (descriptor, (device, inode), the finalizer that closes it). Set and taken with
        # single dict operations (setdefault, pop), which threads cannot interleave.
        self._file: dict[str, tuple[int, tuple[int, int], Any]] = {}
        self._first: bytes | None = None
        self._proven = False  # the header changed since it was first read here: SQLite writes this file
        self._closed = not hasattr(os, "pread")

    def read(self) -> bytes | None:
        """Return the header as it is now, or None when it cannot be trusted (then ask SQLite)."""
        opened = self._file.get("file")
        if opened is None:
            opened = self._open()
            if opened is None:
                return None
        try:
            head = os.pread(opened[0], _HEADER, 0)
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

    def _open(self) -> tuple[int, tuple[int, int], Any] | None:
        if self._closed:
            return None
        try:
            fd = os.open(self._path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return None  # not there yet: SQLite makes it with the first connection in WAL mode
        st = os.fstat(fd)
        opened = (fd, (st.st_dev, st.st_ino), weakref.finalize(self, os.close, fd))
        kept = self._file.setdefault("file", opened)
        if kept is not opened:
            opened[2]()  # another thread opened it first: ours is closed
        elif self._closed:  # closed meanwhile: nothing may stay open
            self.close()
            return None
        return kept

    def current(self) -> WalMark:
        """Return this mark while its file is the one at the path (or none was opened), else a new mark."""
        opened = self._file.get("file")
        if opened is None:
            return self
        try:
            st = os.stat(self._path)
            same = (st.st_dev, st.st_ino) == opened[1]
        except OSError:
            same = False
        if same:
            return self
        self.close()
        return WalMark(self._path[:-len("-shm")])

    def close(self) -> None:
        """Close the file; the mark answers None from now on."""
        self._closed = True
        opened = self._file.pop("file", None)
        if opened is not None:
            opened[2]()
