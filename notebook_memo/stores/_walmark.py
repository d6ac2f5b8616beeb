"""Whether the index changed since a connection last answered ``data_version``, seen without SQL (Linux).

SQLite rewrites the wal-index header, the first 96 bytes of ``cache.db-shm`` (two copies of 48), at
every commit (its change counter, last frame, salts and checksum; sqlite.org/walformat.html), and a
connection's ``data_version`` moves only when it finds that header changed. So when the header reads as it did
just before the connection last answered ``data_version``, that answer still stands, and a hit of
a record kept in memory needs no read transaction (two ``fcntl`` calls and a statement: 3 us).

The header is read through a mapping of our own of SQLite's: ``mremap`` with an old size of 0 maps
the same shared pages again. No file of the index is opened or closed here; closing any descriptor
of a file drops every POSIX lock the process holds on it, SQLite's included (the cause of the bugs
of an earlier design that read the header with ``pread``). Our mapping is unmapped only when no
reader holds it (``__del__``), and never while the interpreter shuts down.

A view is made for one connection, right after that connection used the wal-index (so SQLite has
it mapped), and only when the connection opened the index file the directory's path names now, the
one the store opened, and the process maps exactly one wal-index of that directory, under its path,
naming the file the path names now. SQLite keeps one
wal-index per index file in a process, so that one is the connection's. The view is read only while
that connection is open: SQLite then holds its shared lock on the file, so no process rebuilds or
truncates it. Anything else (another platform, no ``/proc``, two mappings, a file replaced) makes
no view, and every check asks SQLite.
"""

from __future__ import annotations

import ctypes
import os
import sqlite3
import sys

__all__ = ()

COPY = 48  # one copy of the wal-index header; SQLite keeps two, and writes the second first
HEADER_SIZE = 2 * COPY
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_REGION = 32768  # SQLite maps the wal-index in regions of 32 KiB (more where pages are larger): never less
_MREMAP_MAYMOVE = 1
_PROT_READ = 1
_MAP_FAILED = ctypes.c_void_p(-1).value


def _load_libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mremap.restype = ctypes.c_void_p
        libc.mremap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int]
        libc.munmap.restype = ctypes.c_int
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        libc.mprotect.restype = ctypes.c_int
        libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    except (OSError, AttributeError):
        return None
    return libc


_libc = _load_libc()


class HeaderView:
    """A read-only mapping of our own of a wal-index's first page; ``read()`` returns the header's bytes."""

    __slots__ = ("_address", "_header")

    def __init__(self, address: int) -> None:
        self._address = address
        self._header = (ctypes.c_char * HEADER_SIZE).from_address(address)

    def read(self) -> bytes:
        """Return both copies of the header as they are now (96 bytes, no system call)."""
        return self._header.raw

    def __del__(self) -> None:
        # Unmapped only when nothing refers to the view: a reader holds it while it reads. Not while the
        # interpreter shuts down, when a thread still running may be reading it.
        if _libc is not None and not sys.is_finalizing():
            _libc.munmap(self._address, _PAGE)


_ZERO_COUNTER, _ZERO_SALTS = bytes(4), bytes(8)  # bytes 8-11 and 32-39 of a header


def settled(header: bytes) -> bool:
    """Whether ``header`` stands for one state of the index, never to read the same after it changes.

    - Its two copies agree: a commit whose writer died between them leaves them apart (SQLite's next reader
      rebuilds the header from the log, where the commit is).
    - It is not one SQLite rebuilt (recovery starts the change counter from 0, and from an empty log makes the
      same bytes whatever the index holds).
    - Its log's salts are not 0: after a rebuild from an empty log they are, and a writer that restarted a log
      before keeps them for the next (only one that never did draws new ones), so its commits make headers that
      depend on the bytes it writes, not on what the index holds.
    Otherwise every commit counts the counter up (to 0 again only after 2**32 commits), and every new log but
    that one gets a random salt: a header never comes back."""
    return header[:COPY] == header[COPY:] and header[8:12] != _ZERO_COUNTER and header[32:40] != _ZERO_SALTS


def _mappings(near: bytes) -> list[tuple[int, int, bytes, int, int, int, bytes]]:
    """Return this process's mappings at offset 0 of a file: (start, end, permissions, device major, minor,
    inode, name); only those whose line holds ``near`` (a cheap first filter) are parsed."""
    found = []
    with open("/proc/self/maps", "rb") as maps:
        for line in maps:
            if near not in line:
                continue
            fields = line.split(maxsplit=5)
            if len(fields) < 6 or int(fields[2], 16) != 0:
                continue
            start, end = (int(part, 16) for part in fields[0].split(b"-"))
            major, minor = (int(part, 16) for part in fields[3].split(b":"))
            found.append((start, end, fields[1], major, minor, int(fields[4]), fields[5].rstrip(b"\n")))
    return found


def _wal_index_mappings(directory: bytes) -> list[tuple[int, bytes, int, int, int]]:
    """Return SQLite's mappings of a wal-index in ``directory``: (start, name, device major, minor, inode).

    Every mapping at offset 0 of a ``-shm`` file of that directory, shared, writable and at least one SQLite
    region long, deleted ones included (their names end in `` (deleted)``): our own views (read-only, one page)
    are left out.
    """
    return [(start, name, major, minor, inode) for start, end, mode, major, minor, inode, name in _mappings(b"-shm")
            if mode == b"rw-s" and name.rsplit(b"/", 1)[0] == directory and end - start >= _REGION]


def header_view(con: sqlite3.Connection, path: str, index: tuple[int, int] | None) -> HeaderView | None:
    """Return a view of the wal-index header of ``con``'s index, or None where none can be made soundly.

    Call it right after ``con`` read (so SQLite has the wal-index mapped); ``index`` is the (device, inode)
    of the index file the store opened at ``path``. The view is the connection's while it is open.
    """
    if _libc is None or index is None:
        return None
    real = os.path.realpath(os.path.dirname(path))
    db = os.path.join(real, os.path.basename(path))
    shm = db + "-shm"
    try:
        # The file the connection opened, as SQLite named it then (links resolved): not the one the directory's
        # path leads to now, when a link was pointed elsewhere while the connection opened and back since.
        opened = [row[2] for row in con.execute("PRAGMA database_list").fetchall() if row[1] == "main"]
        if opened != [db]:
            return None
        before = (os.stat(db), os.stat(shm))
        if (before[0].st_dev, before[0].st_ino) != index:
            return None
        mappings = _wal_index_mappings(os.fsencode(real))
    except (OSError, ValueError, sqlite3.Error):
        return None
    if len(mappings) != 1:
        return None  # none, or more than one (a file set aside or replaced while a connection kept it)
    start, name, major, minor, inode = mappings[0]
    st = before[1]
    if name != os.fsencode(shm) or inode != st.st_ino or (major, minor) != (os.major(st.st_dev), os.minor(st.st_dev)):
        return None
    address = _libc.mremap(start, 0, _PAGE, _MREMAP_MAYMOVE)
    if address is None or address == _MAP_FAILED:
        return None
    view = HeaderView(address)  # from here on, unmapped when dropped
    if _libc.mprotect(address, _PAGE, _PROT_READ) != 0:
        return None
    try:
        after = (os.stat(db), os.stat(shm))
        ours = _mapping_at(address)
    except (OSError, ValueError):
        return None
    if any((a.st_dev, a.st_ino) != (b.st_dev, b.st_ino) for a, b in zip(before, after)) or \
            ours != (major, minor, inode):
        return None  # replaced meanwhile, or what was mapped there was not the file any more
    return view


def _mapping_at(address: int) -> tuple[int, int, int] | None:
    """Return (device major, minor, inode) of the file mapped at offset 0 from ``address``, or None."""
    found = [(major, minor, inode) for start, _, _, major, minor, inode, _ in _mappings(b"%x-" % address)
             if start == address]
    return found[0] if found else None
