"""The digest of notebook_memo's own code, part of every key.

What a key holds and what an entry records (its conditions) is decided by this package's code: an
entry made under other rules may lack what these rules would check, so it must not be served. A
digest of the sources (not a version number someone must remember to bump) makes any upgrade,
downgrade or local edit of the library a miss, while an identical copy elsewhere still hits.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import xxhash

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = ()

_PACKAGE = os.path.dirname(os.path.abspath(__file__))
_digest: str | None = None
_lock = threading.Lock()


def rules_digest() -> str:
    """Return the hex digest of this package's ``.py`` sources, computed once per process."""
    digest = _digest
    if digest is None:
        digest = _compute_once()
    return digest


def _compute_once() -> str:
    global _digest
    with _lock:
        if _digest is None:
            _digest = _sources_digest(_package_files())
        return _digest


def _package_files() -> dict[str, Callable[[], bytes]]:
    """Return this package's ``.py`` files (else its compiled ``.pyc`` files), by path relative to it, each with
    a reader of its bytes: from its folder, or through ``importlib.resources`` where it was imported from a
    zip (zipimport, a zipapp), whose paths are no folder ``os.walk`` can list."""
    if os.path.isdir(_PACKAGE):
        found = _folder_files(_PACKAGE)
    else:
        import importlib.resources  # only here: most installs are folders, and its import is not free

        found = _resource_files(importlib.resources.files(__package__ or "notebook_memo"), "")
    sources = {relative: read for relative, read in found.items() if relative.endswith(".py")}
    return sources or found  # installed without sources: the compiled modules are the code


def _folder_files(root: str) -> dict[str, Callable[[], bytes]]:
    found: dict[str, Callable[[], bytes]] = {}
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [name for name in subfolders if name != "__pycache__"]
        for name in names:
            if name.endswith((".py", ".pyc")):
                path = os.path.join(folder, name)
                found[os.path.relpath(path, root).replace(os.sep, "/")] = functools.partial(_read, path)
    return found


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def _resource_files(folder: Traversable, prefix: str) -> dict[str, Callable[[], bytes]]:
    found: dict[str, Callable[[], bytes]] = {}
    try:
        entries = list(folder.iterdir())
    except OSError:  # nothing listed: counted below as code we cannot see
        return found
    for entry in entries:
        relative = prefix + entry.name
        if entry.is_dir():
            if entry.name != "__pycache__":
                found.update(_resource_files(entry, relative + "/"))
        elif entry.name.endswith((".py", ".pyc")):
            found[relative] = entry.read_bytes
    return found


def _sources_digest(files: dict[str, Callable[[], bytes]]) -> str:
    """Return the xxh3-128 of ``files``: relative paths and contents, in a sorted order, so neither where the
    package lives nor the files' times count. With no file found the code cannot be told apart from any other
    version's: a random value, so that this process serves no entry another process made (and hits its own)."""
    if not files:
        return os.urandom(16).hex()
    h = xxhash.xxh3_128()
    for relative in sorted(files):
        try:
            data = files[relative]()
        except OSError:  # unreadable: its name still counts, and a later copy that can read it differs
            data = b"<unreadable>"
        h.update(len(relative).to_bytes(8, "little") + relative.encode("utf-8", "surrogatepass"))
        h.update(len(data).to_bytes(8, "little") + data)
    return h.hexdigest()
