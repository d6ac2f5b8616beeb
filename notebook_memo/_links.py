"""Where symbolic links lead: the reads of a link a body's result may depend on.

No audit event covers ``os.readlink``, ``os.path.realpath`` (``Path.resolve``), ``os.path.samefile``,
``os.path.islink``, ``Path.samefile`` or ``Path.is_symlink``: they are wrapped once, as ``os.urandom`` is, to tell
the running bodies which path was resolved. An entry is then served only while each such path leads where it led
when the body ran (for samefile: names the file it named).
"""

from __future__ import annotations

import errno
import functools
import os
import pathlib
import threading
from collections.abc import Callable
from typing import Any

from ._replaced import install, replacing

__all__ = ()

READLINK = "readlink"  # what a link names, or that it is no link (os.readlink, os.path.islink, Path.readlink)
REALPATH = "realpath"  # the path with every link on the way followed (os.path.realpath, Path.resolve)
# Which file the path names, as device and inode (os.path.samefile, Path.samefile): what samefile compares. Two
# names of one file (a hard link) have different real paths, and a file replaced by a copy keeps its real path.
SAMEFILE = "samefile"


def _identity(path: Any) -> str:
    st = os.stat(path)
    return f"{st.st_dev}:{st.st_ino}"


_ORIGINALS: dict[str, Callable[..., Any]] = {READLINK: os.readlink, REALPATH: os.path.realpath, SAMEFILE: _identity}
_watched: list[bool] = []
_lock = threading.Lock()


def lead(kind: str, path: str) -> str:
    """Return where ``path`` leads now, as text: the link's target (``kind`` READLINK), the real path (REALPATH) or
    the file's ``device:inode`` (SAMEFILE), and for a path that cannot be read so, why (``! ENOENT``: missing;
    ``! EINVAL``: no link)."""
    try:
        found = _ORIGINALS[kind](path)
    except OSError as exc:
        return f"! {errno.errorcode.get(exc.errno or 0, str(exc.errno))}"
    return os.fsdecode(found)


def originals() -> frozenset[Any]:
    """Return the link readers as they were before they were wrapped (a name bound to one escapes the wrapper)."""
    return frozenset({_ORIGINALS[READLINK], _ORIGINALS[REALPATH], _SAMEFILE, _ISLINK})


_SAMEFILE = os.path.samefile
_ISLINK = os.path.islink


def watch_links(on_read: Callable[[str, Any], None]) -> None:
    """Wrap the link readers (once) to call ``on_read(kind, path)`` after each read of a path."""
    if _watched:
        return
    with _lock:
        if _watched:
            return
        install(os, "readlink", _reader(os.readlink, (READLINK,), on_read))
        install(os.path, "realpath", _reader(os.path.realpath, (REALPATH,), on_read))  # Path.resolve calls it
        install(os.path, "islink", _reader(os.path.islink, (READLINK,), on_read))
        install(os.path, "samefile", _reader(os.path.samefile, (SAMEFILE, SAMEFILE), on_read))
        # pathlib's own (3.10 to 3.13: Path.samefile stats both paths, Path.is_symlink calls lstat): a method is
        # looked up on the class at each call, so wrapping it there reaches every Path. Where a later pathlib goes
        # through os.path instead (Path.is_symlink calling os.path.islink), both record one (how, path): kept once.
        path = pathlib.Path
        install(path, "samefile", _reader(path.samefile, (SAMEFILE, SAMEFILE), on_read))
        install(path, "is_symlink", _reader(path.is_symlink, (READLINK,), on_read))
        _watched.append(True)


def _reader(original: Callable[..., Any], kinds: tuple[str, ...], on_read: Callable[[str, Any], None]) -> Any:
    """Return ``original`` calling ``on_read`` for each of its first ``len(kinds)`` path arguments once it ran
    (or raised)."""

    @functools.wraps(original)
    def read(*args: Any, **kwargs: Any) -> Any:
        try:
            return original(*args, **kwargs)
        finally:  # a link found missing is read too: the body may answer "none" until one appears
            if kwargs.get("dir_fd") is None:  # relative to a folder's descriptor: not a path of its own
                for kind, path in zip(kinds, (*args, *kwargs.values())):  # Path(a).samefile(other_path=b) too
                    on_read(kind, path)

    return replacing(read, original)
