"""Files kept in memory (tmpfs, ramfs, hugetlbfs: /dev/shm and the like): a write through a shared mapping
(``multiprocessing.shared_memory``, ``mmap``) changes their content and leaves their size, times and inode as they
were, so no ``stat`` can tell that such a file is unchanged; its content is read again on every check (it is in
memory: cheap).
"""

from __future__ import annotations

import functools
import os

__all__ = ()

_MEMORY_TYPES = frozenset({"tmpfs", "ramfs", "hugetlbfs", "devtmpfs"})


def in_memory(st: os.stat_result) -> bool:
    """Return True when the file ``st`` describes lives on a memory file system."""
    return st.st_dev in _memory_devices()


@functools.cache
def _memory_devices() -> frozenset[int]:
    """Return the device numbers of the memory file systems mounted (read once per process; none where the system
    does not list its mounts in /proc/self/mountinfo)."""
    found = set()
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                # ID PARENT MAJOR:MINOR ROOT MOUNT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER_OPTIONS
                fields = line.split()
                if "-" not in fields:
                    continue
                kind = fields[fields.index("-") + 1] if fields.index("-") + 1 < len(fields) else ""
                if kind in _MEMORY_TYPES:
                    major, _, minor = fields[2].partition(":")
                    found.add(os.makedev(int(major), int(minor)))
    except (OSError, ValueError):
        pass
    return frozenset(found)
