"""Who holds an index's log and wal-index (``cache.db-wal``, ``cache.db-shm``), and whether they are still the files
their names lead to.

SQLite opens both by name once, when a connection first reads the index, and keeps them while it stays open; the
connections of one process to one index file share one wal-index, new ones included. So files moved aside or
removed while ``cache.db`` stays leave a running process alone with its old ones: it never sees another process's
commits, and a checkpoint of its old log would copy its old pages over theirs.

- ``in_use``: whether any process uses the wal-index now. Every process using it holds a read lock on its byte
  128 (SQLite's unix VFS: the eight lock bytes of the wal-index begin at 120, and the next one is its "DMS",
  held from when a process maps the wal-index until it lets it go; sqlite.org/walformat.html), which another
  process's ``F_GETLK`` sees; this process's own use shows in its mappings (Linux).
- ``replaced``: which of the files this process holds open are no longer the ones at their paths, from its
  open descriptors (``/proc/self/fd``, or ``/dev/fd``): where neither can be listed, nothing is noticed.
"""

from __future__ import annotations

import contextlib
import os
import struct
import sys

from . import _walmark

try:
    import fcntl
except ImportError:  # no POSIX locks: SQLite's are others there
    fcntl = None  # type: ignore[assignment]

__all__ = ()

LOGS = ("-wal", "-shm")
_DMS = 128  # the byte of the wal-index every process using it holds a read lock on (see the docstring)
_FLOCK = "=hhxxxxqqixxxx"  # struct flock on 64-bit Linux: type, whence, start, length, pid
_FD_LISTS = ("/proc/self/fd", "/dev/fd")


def _mapped_here(directory: str) -> bool | None:
    """Return whether this process maps a wal-index of ``directory`` (any name it has now), or None: unknown."""
    if not os.path.exists("/proc/self/maps"):
        return None
    with contextlib.suppress(OSError, ValueError):
        return bool(_walmark._wal_index_mappings(os.fsencode(os.path.realpath(directory))))
    return None


def _locked_by_others(fd: int) -> bool:
    """Return whether another process holds a lock on the wal-index byte every user of it holds (``fd``: the file)."""
    if sys.platform.startswith("linux") and struct.calcsize("P") == 8:
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, _DMS, 1, 0))
        return struct.unpack(_FLOCK, answer)[0] != fcntl.F_UNLCK
    try:  # elsewhere the lock is tried: only while no process of ours opens the index (the caller's folder lock)
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, _DMS)
    except OSError:
        return True
    fcntl.lockf(fd, fcntl.LOCK_UN, 1, _DMS)
    return False


def in_use(directory: str, db_name: str, opened_here: bool) -> bool:
    """Return whether a process (this one included) may be using the index's log and wal-index in ``directory``.

    ``opened_here``: this process opened the index before (where its mappings cannot be read, it counts as using
    them). Checked before this process's descriptor of the wal-index is opened: closing it would drop every lock
    SQLite holds on the file here. Unknown counts as in use.
    """
    here = _mapped_here(directory)
    if here or (here is None and opened_here):
        return True
    if fcntl is None:
        return False
    linux = sys.platform.startswith("linux")
    flags = (os.O_RDONLY if linux else os.O_RDWR) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(os.path.join(directory, db_name + "-shm"), flags | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return False  # no wal-index: no process reads the log
    except OSError:
        return True
    try:
        return _locked_by_others(fd)
    except OSError:
        return True
    finally:
        os.close(fd)


def _held_files() -> set[tuple[int, int]] | None:
    """Return the (device, inode) of every file this process has open, or None where they cannot be listed."""
    for listing in _FD_LISTS:
        try:
            numbers = os.listdir(listing)
        except OSError:
            continue
        held = set()
        for number in numbers:
            with contextlib.suppress(OSError, ValueError):
                st = os.fstat(int(number))  # one closed meanwhile is skipped; one reused counts its new file
                held.add((st.st_dev, st.st_ino))
        return held
    return None


def file_ident(path: str) -> tuple[int, int] | None:
    """Return the (device, inode) of the file ``path`` names now; None when nothing is there."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def named_now(directory: str, db_name: str) -> dict[str, tuple[int, int] | None]:
    """Return the (device, inode) of the files at the log's and wal-index's paths now (None: none there)."""
    return {suffix: file_ident(os.path.join(directory, db_name + suffix)) for suffix in LOGS}


def replaced(directory: str, db_name: str, opened: dict[str, tuple[int, int] | None]) -> list[str]:
    """Return the paths of the log and wal-index whose files this process holds open but whose names now lead
    elsewhere, or nowhere (moved aside, removed, or replaced); ``opened``: what ``named_now`` said once the index
    was opened, brought up to date here for a file no longer held (connections opened since hold the new ones).

    SQLite itself never removes or replaces them while a connection of ours is open (only the last connection to
    close does), so a file held and no longer named was changed by someone else.
    """
    held = _held_files()
    if held is None:
        return []
    gone = []
    for suffix, ident in list(opened.items()):
        path = os.path.join(directory, db_name + suffix)
        now = file_ident(path)
        if ident is not None and ident in held:
            if now != ident:
                gone.append(path)
        else:
            opened[suffix] = now if now in held else None
    return gone
