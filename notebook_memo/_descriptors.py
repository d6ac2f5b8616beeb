"""Which file an open file descriptor reads: a body may read a descriptor opened before it ran (``FD =
os.open("x.txt")`` in an earlier cell, then ``os.pread(FD, n, 0)``), and no audit event names the file then.

The operating system says where a descriptor leads (``/proc/self/fd`` on Linux, ``F_GETPATH`` on macOS); the name
is trusted only where it still names the descriptor's own file (a file removed or replaced since has no name).
"""

from __future__ import annotations

import os
import stat
import sys
import time

__all__ = ()

# What a descriptor leads to (see descriptor_file)
FILE = "file"  # a regular file, with the name that reaches it
NOT_DATA = "not data"  # a pipe, socket, terminal or device: what a read of it by name would not record either
TEMPORARY = "temporary"  # a regular file with no name, made after ``since`` (TemporaryFile, memfd_create)
UNNAMED = "unnamed"  # a regular file whose name cannot be found, or that has none and is older than ``since``


def descriptor_file(fd: int, since: int) -> tuple[str, str | None]:
    """Return what descriptor ``fd`` leads to (FILE, NOT_DATA, TEMPORARY or UNNAMED) and, for FILE, its path.

    ``since`` is a time in ns (from ``file_clock``): a file with no name whose inode changed at or after it (made,
    or removed) is the reader's own temporary; one older was made and left before, and no condition can describe
    it. Returns NOT_DATA for a descriptor that is not open (the read then fails itself)."""
    try:
        st = os.fstat(fd)
    except OSError:
        return NOT_DATA, None
    if not stat.S_ISREG(st.st_mode):
        return NOT_DATA, None
    path = _path_of_descriptor(fd)
    if path is not None:
        try:
            now = os.stat(path)
        except OSError:
            now = None
        if now is not None and (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino):
            return FILE, path
    if st.st_nlink == 0 and st.st_ctime_ns >= since:
        return TEMPORARY, None
    return UNNAMED, None


# Linux stamps files from its coarse clock, which lags the wall clock by up to a tick: a file made just after a
# time read from the wall clock may carry an earlier one. CLOCK_REALTIME_COARSE is 5 there (time has no name for it).
_FILE_CLOCK = 5 if sys.platform.startswith("linux") else None


def file_clock() -> int:
    """Return the time now in ns, as the file system stamps a file made now (never later than that stamp)."""
    if _FILE_CLOCK is not None:
        try:
            return time.clock_gettime_ns(_FILE_CLOCK)
        except OSError:
            pass
    return time.time_ns() - 20_000_000  # a tick's lag at most, where the coarse clock cannot be read


def _path_of_descriptor(fd: int) -> str | None:
    """Return the path the operating system gives for ``fd``, or None where it gives none."""
    if sys.platform.startswith("linux"):
        try:
            return os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return None
    if sys.platform == "darwin":
        import fcntl

        getpath = getattr(fcntl, "F_GETPATH", None)
        if getpath is None:
            return None
        try:
            raw = fcntl.fcntl(fd, getpath, bytes(1024))
        except OSError:
            return None
        return os.fsdecode(raw.split(b"\0", 1)[0]) or None
    return None
