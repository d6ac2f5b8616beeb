"""Values whose pickle only names state kept elsewhere, hashed by that state: shared memory, a manager's proxies,
shared ctypes, an mmap; and diskcache's stores, which cannot be (their content is files).

Pickled, each is a reference (a segment's name, a manager's token, a folder), so keyed by its reduction a value
another process changed kept its key. None of these libraries is imported here: a class is judged only once a value
of it is met, so its module is loaded.
"""

from __future__ import annotations

import sys
from typing import Any

from ._core import Hasher, HashFn, _Unhashable, register_family

__all__ = ()

# A manager's proxies whose referent is a plain container or value: keyed by a copy of it (one round trip).
_COPIED_PROXIES = ("DictProxy", "BaseListProxy", "ValueProxy", "NamespaceProxy")
# diskcache's stores: what they hold lives in their folder's files, read as the body asks.
_DISKCACHE_STORES = ("Cache", "FanoutCache", "Index", "Deque")


def _multiprocessing_path(cls: type) -> HashFn | None:
    modules = sys.modules
    shm = modules.get("multiprocessing.shared_memory")
    if shm is not None:
        if issubclass(cls, shm.SharedMemory):
            return _h_shared_memory
        if issubclass(cls, shm.ShareableList):
            return _h_shareable_list
    managers = modules.get("multiprocessing.managers")
    if managers is not None and issubclass(cls, managers.BaseProxy):
        copied = tuple(getattr(managers, name) for name in _COPIED_PROXIES if hasattr(managers, name))
        return _h_copied_proxy if issubclass(cls, copied) else _h_other_proxy
    sharedctypes = modules.get("multiprocessing.sharedctypes")
    if sharedctypes is not None and issubclass(cls, sharedctypes.SynchronizedBase):
        return _h_synchronized
    heap = modules.get("multiprocessing.heap")
    if heap is not None and issubclass(cls, heap.BufferWrapper):
        return _h_heap_block
    return None


def _h_shared_memory(h: Hasher, v: Any) -> None:
    """A shared memory segment: its size and bytes (its name only says where they are)."""
    buf = v.buf
    if buf is None:
        raise _Unhashable(v, "it is a closed shared memory segment")
    h.tag(b"Sm")
    h.number(v.size)
    h.buffer(buf)


def _h_shareable_list(h: Hasher, v: Any) -> None:
    """A ShareableList: the format of its items and their values."""
    try:
        items = (v.format, list(v))
    except Exception as exc:  # its segment closed or gone
        raise _Unhashable(v, f"its items cannot be read ({type(exc).__name__}: {exc})") from None
    h.tag(b"Sl")
    h.child(items, "<items>")


def _h_copied_proxy(h: Hasher, v: Any) -> None:
    """A manager's proxy to a dict, list, value or namespace: a copy of what the manager holds now."""
    try:
        held = v._getvalue()
    except Exception as exc:  # the manager shut down, or its referent cannot be pickled
        raise _Unhashable(v, f"it is a proxy whose manager cannot send a copy of what it holds "
                             f"({type(exc).__name__}: {exc})") from None
    h.tag(b"Pm")
    h.text(type(v).__name__)
    h.child(held, "<held by its manager>")


def _h_other_proxy(h: Hasher, v: Any) -> None:
    raise _Unhashable(v, "it is a proxy to an object a multiprocessing manager holds in another process, whose "
                         "content cannot be read as a value")


def _h_synchronized(h: Hasher, v: Any) -> None:
    """multiprocessing.Value or Array: the shared ctypes object it guards (its lock is no content)."""
    h.tag(b"Sy")
    h.child(v.get_obj(), ".get_obj()")


def _h_heap_block(h: Hasher, v: Any) -> None:
    # Where a RawArray or RawValue lies in the shared heap: the ctypes object around it carries its bytes.
    h.tag(b"Hb")


def _mmap_path(cls: type) -> HashFn | None:
    module = sys.modules.get("mmap")
    return _h_mmap if module is not None and issubclass(cls, module.mmap) else None


def _h_mmap(h: Hasher, v: Any) -> None:
    """A memory map: the bytes it shows now (its file, or another process, may change them)."""
    if v.closed:
        raise _Unhashable(v, "it is a closed mmap")
    h.tag(b"Mm")
    h.buffer(v)


def _diskcache_path(cls: type) -> HashFn | None:
    module = sys.modules.get("diskcache")
    if module is None:
        return None
    stores = tuple(getattr(module, name) for name in _DISKCACHE_STORES if hasattr(module, name))
    return _h_diskcache if issubclass(cls, stores) else None


def _h_diskcache(h: Hasher, v: Any) -> None:
    raise _Unhashable(v, "it is an open diskcache store, whose content is in the files of its folder")


register_family("multiprocessing", _multiprocessing_path)
register_family("mmap", _mmap_path)
register_family("diskcache", _diskcache_path)
