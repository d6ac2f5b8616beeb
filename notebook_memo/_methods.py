"""Per-object caches: ``memo.per_instance`` methods and ``memo.cached_property``.

Results live on the object itself (in its ``__dict__``, or in a weak side table for
objects without one), keyed by the arguments' content, and die with the object: no disk,
no ids. A copy or a pickle of the object starts with empty caches.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from ._conditions import closed_fill, held_value_read, in_a_run, pause, resume, stamp
from ._config import TTLLike, parse_ttl
from ._errors import RecursiveCall
from .hashing import BOOKKEEPING_PREFIX, content_hash, register_hasher
from .stores._leases import computing, is_computing

__all__ = ()

SLOT = BOOKKEEPING_PREFIX + "_instance__"  # hashing skips it: never part of the object's content
_MISSING = object()


# value, expiry (0: none), stamp of its fill, and the digest of its object as the fill read it (None: not known)
Entry = tuple[Any, float, int, bytes | None]


class InstanceCaches:
    """The caches of one object: per cached method or property, argument digest -> (value, expiry, filled, digest).

    ``filled``: the stamp of the fill's start (see _conditions.stamp), to tell a run what was held before it;
    ``digest``: the object's content digest as a fill inside a run read it, to tell whether it still has it."""

    __slots__ = ("__weakref__", "inflight", "lock", "owner", "pid", "tables")

    def __init__(self, owner: Any) -> None:
        try:
            self.owner: Callable[[], Any] = weakref.ref(owner)
        except TypeError:  # not weak-referenceable: remember the id while it lives
            ident = id(owner)
            self.owner = lambda: ident
        # Keyed by the descriptor, not its name: a subclass overriding a cached method and calling the parent's
        # through super() has a cache of its own.
        self.tables: dict[_PerObjectCache, dict[bytes, Entry]] = {}
        self.lock = threading.RLock()
        # (descriptor, key): the lock of a sync call in progress; (descriptor, key, id(loop)): an async call's future
        self.inflight: dict[tuple[Any, ...], Any] = {}
        self.pid = os.getpid()

    def after_fork(self) -> None:
        """In a forked child the parent's threads are gone: so are the locks and calls they held."""
        if self.pid != os.getpid():
            self.lock = threading.RLock()
            self.inflight = {}
            self.pid = os.getpid()

    def belongs_to(self, obj: Any) -> bool:
        owner = self.owner()
        return owner is obj or (isinstance(owner, int) and owner == id(obj))

    def __reduce__(self) -> tuple[Any, ...]:
        return (_orphan, ())  # a pickled object starts with empty caches

    def __copy__(self) -> InstanceCaches:
        return _orphan()

    def __deepcopy__(self, memo: dict[int, Any]) -> InstanceCaches:
        return _orphan()


def _orphan() -> InstanceCaches:
    caches = InstanceCaches.__new__(InstanceCaches)
    caches.owner = lambda: None
    caches.tables = {}
    caches.lock = threading.RLock()
    caches.inflight = {}
    caches.pid = os.getpid()
    return caches


register_hasher(InstanceCaches, lambda caches: None)

_side: dict[int, tuple[weakref.ReferenceType[Any], InstanceCaches]] = {}
_side_lock = threading.Lock()


def _new_side_lock() -> None:
    global _side_lock
    _side_lock = threading.Lock()  # a forked child: the thread that held it is gone


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_side_lock)


def caches_of(obj: Any, create: bool = True) -> InstanceCaches | None:
    """Return the caches of ``obj``, making them on first use."""
    namespace = getattr(obj, "__dict__", None)
    if isinstance(namespace, dict):
        caches = namespace.get(SLOT)
        if caches is not None and caches.belongs_to(obj):
            return caches  # type: ignore[no-any-return]
        if not create:
            return None
        # Absent, or copied along with __dict__ from another object: start empty.
        fresh = InstanceCaches(obj)
        namespace[SLOT] = fresh
        return fresh
    key = id(obj)
    entry = _side.get(key)
    if entry is not None and entry[0]() is obj:
        return entry[1]
    if not create:
        return None
    def forget(_: object, key: int = key) -> None:
        _side.pop(key, None)

    try:
        ref = weakref.ref(obj, forget)
    except TypeError:
        raise TypeError(
            f"{type(obj).__qualname__} objects have neither __dict__ nor __weakref__, so a per-instance "
            "cache has nowhere to live: add '__weakref__' to its __slots__, or use @memo instead"
        ) from None
    with _side_lock:
        caches = InstanceCaches(obj)
        _side[key] = (ref, caches)
    return caches


def reset(obj: Any) -> None:
    """Drop every per-instance cache and cached property of ``obj``."""
    caches = caches_of(obj, create=False)
    if caches is not None:
        with caches.lock:
            caches.tables.clear()


def _digest_of(obj: Any) -> bytes | None:
    """Return the content digest a @memo call keys ``obj`` by (its caches left out), unread by the running bodies;
    None if it has none."""
    token = pause()
    try:
        return content_hash(obj, "the object")
    except Exception:
        return None
    finally:
        resume(token)


async def _ready(value: Any) -> Any:
    """Return ``value``: a cached async result, as the coroutine an async method's caller expects."""
    return value


class _PerObjectCache:
    """What per_instance methods and cached properties share: lookup, locking, TTL."""

    placed = False  # the default for one unpickled from an entry written before it was set in __init__

    def __init__(self, fn: Callable[..., Any], ttl: TTLLike) -> None:
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]
        self.fn = fn
        self.ttl = parse_ttl(ttl)
        self.name = fn.__name__
        self.is_async = inspect.iscoroutinefunction(fn)
        self.placed = False  # known to be a class's attribute itself, not wrapped by a staticmethod

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.placed = True

    def _adopt(self, fn: Callable[..., Any]) -> None:
        """Run ``fn`` from now on: the same code reading another namespace (a restored cell's)."""
        self.fn = self.__wrapped__ = fn

    def _lookup(self, table: dict[bytes, Entry], key: bytes) -> Entry | None:
        entry = table.get(key)
        if entry is None:
            return None
        expires = entry[1]
        if expires and expires <= time.monotonic():
            if table.get(key) is entry:  # another thread may have dropped it, or stored anew, meanwhile
                table.pop(key, None)
            return None
        return entry

    def _served(self, obj: Any, entry: Entry) -> Any:
        """Return the value of ``entry``, telling the memoized runs that began after it was filled."""
        held_value_read(entry[2], entry[3], obj, self._described, _digest_of)
        return entry[0]

    @staticmethod
    def _fill(obj: Any, call: Callable[[], Any]) -> tuple[Any, bytes | None]:
        """Return ``call()`` and, inside a memoized run, the digest of ``obj`` it read: None where no body runs
        (hashing the object could cost more than the fill, on every fill) or where the fill read more than its
        object and code (a file, a random draw: see closed_fill), which no digest of the object vouches for."""
        if not in_a_run():
            return call(), None
        digest = _digest_of(obj)
        if digest is None:
            return call(), None
        value, closed = closed_fill(call)
        return value, digest if closed else None

    def _described(self) -> str:
        return f"{self.__qualname__}, a memo.per_instance method's result"  # type: ignore[attr-defined]

    def _expiry(self) -> float:
        return time.monotonic() + self.ttl if self.ttl else 0.0

    def get_or_compute(self, obj: Any, key: bytes, call: Callable[[], Any]) -> Any:
        caches = caches_of(obj)
        assert caches is not None
        table = caches.tables.setdefault(self, {})
        entry = self._lookup(table, key)
        if entry is not None:
            value = self._served(obj, entry)
            return _ready(value) if self.is_async else value
        caches.after_fork()
        busy = f"instance:{id(caches)}:{id(self)}:{key.hex()}"
        if is_computing(busy):
            raise RecursiveCall(f"{self.name} called itself with the same arguments on the same object while "
                                "computing them: its result would depend on itself. Change the arguments of "
                                "the inner call.")
        if self.is_async:
            return self._acompute(obj, caches, table, key, call, busy)
        with caches.lock:
            slot = caches.inflight.setdefault((self, key), threading.Lock())
        with slot:  # one thread computes; the others wait, then read its result
            entry = self._lookup(table, key)
            if entry is not None:
                return self._served(obj, entry)  # another thread filled it meanwhile
            try:
                filled = stamp()  # as it starts: what it reads of the object is read from then on
                with computing(busy):
                    value, digest = self._fill(obj, call)
                table[key] = (value, self._expiry(), filled, digest)
            finally:
                with caches.lock:
                    caches.inflight.pop((self, key), None)
        return value

    async def _acompute(self, obj: Any, caches: InstanceCaches, table: dict[bytes, Entry], key: bytes,
                        call: Callable[[], Any], busy: str) -> Any:
        import asyncio  # loaded already: this runs on its event loop

        # Keyed by the loop too, as @memo's: a task cannot await another loop's future (asyncio.run in two
        # threads at once), so each loop computes once for its own tasks.
        slot = (self, key, id(asyncio.get_running_loop()))
        while True:
            running = caches.inflight.get(slot)
            if not isinstance(running, asyncio.Future):
                break
            done = await asyncio.shield(running)
            if done is not _MISSING:
                return self._served(obj, done)
            # The task computing it was cancelled: served if another loop stored it since, else taken over.
            entry = self._lookup(table, key)
            if entry is not None:
                return self._served(obj, entry)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()  # its entry, or _MISSING
        caches.inflight[slot] = future
        try:
            filled = stamp()
            with computing(busy):
                value = await call()
            # Not vouched for by a digest: an awaited fill's reads mix with those of the tasks it waits beside.
            entry = table[key] = (value, self._expiry(), filled, None)
            future.set_result(entry)
            return value
        except asyncio.CancelledError:
            # Only this caller was cancelled: those waiting on it go round again and one takes over.
            if not future.done():
                future.set_result(_MISSING)
            raise
        except BaseException as exc:
            if not future.done():
                future.set_exception(exc)
                future.exception()  # retrieved here; waiters re-raise it
            raise
        finally:
            with caches.lock:
                if caches.inflight.get(slot) is future:
                    del caches.inflight[slot]

    def clear_for(self, obj: Any) -> None:
        caches = caches_of(obj, create=False)
        if caches is not None:
            caches.tables.pop(self, None)


class PerInstance(_PerObjectCache):
    """A method whose results are cached on each object, keyed by its arguments' content."""

    def __init__(self, fn: Callable[..., Any], ttl: TTLLike = None) -> None:
        super().__init__(fn, ttl)
        self.signature = inspect.signature(fn)

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return BoundPerInstance(self, obj)

    def __call__(self, obj: Any, *args: Any, **kwargs: Any) -> Any:
        """``Class.method(obj, ...)``, as with a plain method: the call through ``obj``'s cache."""
        if not self.placed:
            # A staticmethod wrapping it hides it from __set_name__ and hands it whatever comes first.
            if _held_as_staticmethod(self):
                raise _no_staticmethod("per_instance", self.__qualname__)  # type: ignore[attr-defined]
            self.placed = True  # set on the class later, or wrapped by another decorator: a method all the same
        return BoundPerInstance(self, obj)(*args, **kwargs)

    def key(self, obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
        bound = self.signature.bind(obj, *args, **kwargs)
        bound.apply_defaults()
        items = list(bound.arguments.items())[1:]  # not self: the cache lives on it
        return content_hash(items, f"the arguments of {self.name}")


class BoundPerInstance:
    """``obj.method``: call it, or ``obj.method.clear()`` to drop its cached results."""

    __slots__ = ("_desc", "_obj")

    def __init__(self, desc: PerInstance, obj: Any) -> None:
        self._desc = desc
        self._obj = obj

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        desc, obj = self._desc, self._obj
        key = desc.key(obj, args, kwargs)
        return desc.get_or_compute(obj, key, lambda: desc.fn(obj, *args, **kwargs))

    def __reduce__(self) -> tuple[Any, ...]:
        # As ``obj.method`` is sent to a worker: the object, and the method looked up on it there (pickle would
        # look the function up by its name, and find this descriptor instead).
        return getattr, (self._obj, self._desc.name)

    def clear(self) -> None:
        """Drop this method's cached results on this object."""
        self._desc.clear_for(self._obj)

    def uncached(self, *args: Any, **kwargs: Any) -> Any:
        """Run the method without the cache."""
        return self._desc.fn(self._obj, *args, **kwargs)


_PROPERTY_KEY = b"property"


class CachedProperty(_PerObjectCache):
    """Like ``functools.cached_property``, also for ``async def`` (``await obj.prop``), with a TTL."""

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return self.get_or_compute(obj, _PROPERTY_KEY, lambda: self.fn(obj))

    def __set__(self, obj: Any, value: Any) -> None:
        caches = caches_of(obj)
        assert caches is not None
        caches.tables.setdefault(self, {})[_PROPERTY_KEY] = (value, self._expiry(), stamp(), None)

    def __delete__(self, obj: Any) -> None:
        self.clear_for(obj)

    def _described(self) -> str:
        return f"{self.__qualname__}, a memo.cached_property"  # type: ignore[attr-defined]


def per_instance(fn: Callable[..., Any] | None = None, *, ttl: TTLLike = None) -> Any:
    """Cache a method's results on each object (memory only), keyed by argument content."""
    if fn is None:
        parse_ttl(ttl)  # a bad TTL is named at the decorator's parentheses
        return lambda f: PerInstance(_method(f, "per_instance"), ttl)
    return PerInstance(_method(fn, "per_instance"), ttl)


def cached_property(fn: Callable[..., Any] | None = None, *, ttl: TTLLike = None) -> Any:
    """A per-object cached property; ``async def`` properties are awaited: ``await obj.prop``."""
    if fn is None:
        parse_ttl(ttl)
        return lambda f: CachedProperty(_method(f, "cached_property"), ttl)
    return CachedProperty(_method(fn, "cached_property"), ttl)


def _held_as_staticmethod(method: PerInstance) -> bool:
    """Return True when the class ``method`` was defined in holds it inside a staticmethod, found by its module
    and qualified name (a class defined inside a function is not found)."""
    *path, name = method.__qualname__.split(".")  # type: ignore[attr-defined]
    if not path or "<locals>" in path:
        return False
    holder: Any = sys.modules.get(method.__module__)
    for part in path:
        holder = vars(holder).get(part) if hasattr(holder, "__dict__") else None
    found = vars(holder).get(name) if isinstance(holder, type) else None
    return isinstance(found, staticmethod) and found.__func__ is method


def _no_staticmethod(decorator: str, qualname: str) -> TypeError:
    return TypeError(f"@memo.{decorator} caches on the object a method is called on, and the staticmethod "
                     f"{qualname} has none: use @memo for it (@staticmethod above @memo)")


def _method(fn: Any, decorator: str) -> Callable[..., Any]:
    """Return ``fn`` if it is a function; else a TypeError that says how the decorator is written."""
    if isinstance(fn, staticmethod):
        raise _no_staticmethod(decorator, getattr(fn, "__qualname__", repr(fn)))
    if isinstance(fn, classmethod):
        raise TypeError(f"@memo.{decorator} caches on each object, so it goes below @classmethod: write "
                        f"@classmethod above @memo.{decorator}" if decorator == "per_instance" else
                        f"@memo.{decorator} caches on each object, not on a class: use @memo.per_instance "
                        "under @classmethod for a value cached per class")
    if not callable(fn):
        raise TypeError(f"@memo.{decorator} decorates methods, not {type(fn).__name__} objects; a TTL is given "
                        f"by name: @memo.{decorator}(ttl=3600)")
    return fn
