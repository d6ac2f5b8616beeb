"""Files that a library reads in its C++ code with no audit event: a body's result may depend on them.

``torch.from_file`` and ``torch.UntypedStorage.from_file`` (which the typed storages' ``from_file`` calls) map a
file without Python's ``open``, and ``torch.jit.load``, ``torch.export.load`` and ``torch.package.PackageImporter``
open their archive in C++ (``PyTorchFileReader``), so no audit event names it. They are wrapped once torch is
loaded, as the link readers are (``_links``), to tell the running bodies which file they read, before it is read.
A body that imports torch itself is watched from its next run on (the first finds them not wrapped yet).

A POSIX shared memory segment opened by name (``multiprocessing.shared_memory.SharedMemory(name=...)``) is opened
by ``_posixshmem.shm_open``, in C, with no audit event either. That function is wrapped at the first run, before
``multiprocessing.shared_memory`` is loaded or after: the module looks it up on each call, so a body that imports it
itself is watched too. A segment opened without ``O_CREAT`` is the body's input; one it makes is its own.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from ._replaced import install, replacing

try:  # imported with this module, not at a body's first run, where a module the run loads is taken for the body's
    import _posixshmem  # type: ignore[import-not-found]  # POSIX only; a small C module
except ImportError:
    _posixshmem = None

__all__ = ()

_watched: list[bool] = []
_shared_memory_watched: list[bool] = []
_lock = threading.Lock()


def watch_native_reads(on_read: Callable[[Any], None]) -> None:
    """Wrap torch's file mapping functions (once, when torch is loaded) to call ``on_read(path)`` before each."""
    if _watched:
        return
    torch: Any = sys.modules.get("torch")
    if torch is None or getattr(getattr(torch, "__spec__", None), "_initializing", False):
        return  # not loaded, or loading now: its import may still bind the names wrapped here
    storage = getattr(torch, "UntypedStorage", None)
    if storage is None or not callable(getattr(torch, "from_file", None)):
        return
    with _lock:
        if _watched:
            return
        install(torch, "from_file", _reader(torch.from_file, on_read))
        # A static method of torch's C++ base class: put on the Python class every storage's from_file reaches.
        install(storage, "from_file", staticmethod(_reader(storage.from_file, on_read)))
        _watch_archive_readers(on_read)
        _watched.append(True)


# Readers of a saved archive by path, each named by its module and attribute, with its file's keyword and place.
_ARCHIVE_READERS = (("torch.jit._serialization", "load", "f", 0), ("torch.jit", "load", "f", 0),
                    ("torch.export", "load", "f", 0), ("torch.export.pt2_archive._package", "load_pt2", "f", 0),
                    ("torch.jit.mobile", "_load_for_lite_interpreter", "f", 0))


def _watch_archive_readers(on_read: Callable[[Any], None]) -> None:
    """Wrap torch's readers of saved modules and programs that are loaded now (a name imported from them before
    keeps the original)."""
    modules = sys.modules
    for module_name, name, keyword, place in _ARCHIVE_READERS:
        module = modules.get(module_name)
        original = getattr(module, name, None)
        if callable(original) and not hasattr(original, "_notebook_memo_original"):
            install(module, name, _reader(original, on_read, keyword, place))
    package = modules.get("torch.package")
    importer: Any = getattr(package, "PackageImporter", None)
    init = vars(importer).get("__init__") if isinstance(importer, type) else None
    if callable(init) and not hasattr(init, "_notebook_memo_original"):
        install(importer, "__init__", _reader(init, on_read, "file_or_buffer", 1))


_memory_watched: list[bool] = []
# What MemoryFileSystem reads its store through: every open, cat, copy out, listing and lookup of fsspec's API.
_MEMORY_READERS = ("_open", "cat_file", "get_file", "ls", "info")


def watch_memory_files(on_read: Callable[[Any], None]) -> None:
    """Wrap the readers of fsspec's in-memory file system (once, when it is loaded) to call ``on_read(path)``
    before each: its files live in this process only, with no audit event and nothing on disk to check."""
    if _memory_watched:
        return
    memory: Any = sys.modules.get("fsspec.implementations.memory")
    filesystem = getattr(memory, "MemoryFileSystem", None)
    if not isinstance(filesystem, type):
        return
    with _lock:
        if _memory_watched:
            return
        for name in _MEMORY_READERS:
            original = vars(filesystem).get(name)
            if callable(original):
                install(filesystem, name, _reader(original, on_read, "path", 1))
        _memory_watched.append(True)


def _reader(original: Callable[..., Any], on_read: Callable[[Any], None], keyword: str = "filename",
            place: int = 0) -> Any:
    """Return ``original`` calling ``on_read`` with its file (the argument at ``place``, or ``keyword=``) first."""

    @functools.wraps(original)
    def read(*args: Any, **kwargs: Any) -> Any:
        on_read(args[place] if len(args) > place else kwargs.get(keyword))
        return original(*args, **kwargs)

    return replacing(read, original)


def watch_shared_memory(on_open: Callable[[int, str], None]) -> None:
    """Wrap ``_posixshmem.shm_open`` (once) to call ``on_open(fd, how)`` after it opens an existing segment."""
    if _shared_memory_watched:
        return
    if _posixshmem is None:
        _shared_memory_watched.append(False)
        return
    with _lock:
        if _shared_memory_watched:
            return
        install(_posixshmem, "shm_open", _segment_opener(_posixshmem.shm_open, on_open))
        _shared_memory_watched.append(True)


def _segment_opener(original: Callable[..., int], on_open: Callable[[int, str], None]) -> Callable[..., int]:
    """Return ``original`` (``shm_open(path, flags, mode=0o777)``) calling ``on_open`` with the descriptor it
    returns where it opened a segment that was there (no ``O_CREAT``)."""

    @functools.wraps(original)
    def shm_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        fd = original(path, flags, *args, **kwargs)
        if isinstance(flags, int) and not flags & os.O_CREAT:
            on_open(fd, f"SharedMemory(name={path!r})")
        return fd

    return replacing(shm_open, original)
