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
trusted only after this process has seen it change, and never again once the file at the path is not
the one that was opened (someone replaced it under a live index).
"""

from __future__ import annotations

import os
import struct
import threading
import weakref

__all__ = ()

_HEADER = 48  # one copy of the wal-index header
_VERSION = struct.pack("=I", 3007000)  # its iVersion, in the writer's (native) byte order
_INIT = 12  # offset of isInit: 1 once a connection has built the header


class WalMark:
    """Reads the wal-index header of one index file, as proof that nothing committed since it was last read."""

    def __init__(self, index_path: str) -> None:
        self._path = index_path + "-shm"
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._closer: weakref.finalize[[int], WalMark] | None = None  # closes the file when the mark is collected
        self._ident: tuple[int, int] | None = None
        self._first: bytes | None = None
        self._proven = False  # the header changed since it was first read here: SQLite writes this file
        self._off = not hasattr(os, "pread")

    def read(self) -> bytes | None:
        """Return the header as it is now, or None when it cannot be trusted (then ask SQLite)."""
        fd = self._fd
        if fd is None:
            if self._off:
                return None
            fd = self._open()
            if fd is None:
                return None
        try:
            head = os.pread(fd, _HEADER, 0)
        except OSError:
            self._off = True
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

    def _open(self) -> int | None:
        with self._lock:
            if self._fd is None and not self._off:
                try:
                    fd = os.open(self._path, os.O_RDONLY)
                except OSError:
                    return None  # not there yet: SQLite makes it with the first connection in WAL mode
                st = os.fstat(fd)
                self._closer = weakref.finalize(self, os.close, fd)
                self._ident, self._fd = (st.st_dev, st.st_ino), fd
            return self._fd

    def check(self) -> None:
        """Stop trusting the header for good when the path no longer names the file opened (off the hit path)."""
        if self._fd is None or self._off:
            return
        try:
            st = os.stat(self._path)
            same = (st.st_dev, st.st_ino) == self._ident
        except OSError:
            same = False
        if not same:
            self.close()

    def close(self) -> None:
        """Close the file; the mark answers None from now on."""
        with self._lock:
            self._off = True
            self._fd = None
            if self._closer is not None:
                self._closer()
