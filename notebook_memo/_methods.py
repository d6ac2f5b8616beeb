"""Per-object caches: ``memo.per_instance`` methods and ``memo.cached_property``.

Results live beside the object, in a side table that holds it weakly, so that ``vars(obj)`` shows the user's
attributes only; keyed by the arguments' content, they die with the object: no disk, no ids. Where a cached value
holds its object (a child with a back-reference, a bound method), or the object cannot be weakly referenced, they
move into its ``__dict__`` instead, a cycle the garbage collector frees with it. A copy or a pickle of the object
starts with empty caches.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import inspect
import itertools
import operator
import os
import pickle
import sys
import threading
import time
import types
import weakref
from collections.abc import Callable
from typing import Any

from ._conditions import assigned_held_value, closed_fill, held_value_read, in_a_run, pause, resume, stamp
from ._config import TTLLike, parse_ttl, warn_once
from ._errors import MemoWarning, RecursiveCall, changed_argument, drew_from_argument
from ._fills import FillListener, FillNotes, fill_digest, filled_names, same_but_filled
from ._serialize import dumps_for_a_worker, importable, in_a_stream_by_value
from .hashing import (
    BOOKKEEPING_PREFIX,
    IMMUTABLE_LEAVES,
    aliasing_parts,
    combine,
    content_hash,
    keyword_values,
    leaf_digests,
    register_hasher,
    things_met,
)
from .stores._leases import computing, is_computing

__all__ = ()

SLOT = BOOKKEEPING_PREFIX + "_instance__"  # hashing skips it: never part of the object's content
_MISSING = object()


# the arguments of a call a body may change in place, by name: those that are not plain values
Watched = list[tuple[str, Any]]


class Before:
    """The watched arguments of a call as it starts: the digest of each (None: it cannot be hashed), the
    functools.cached_property values each holds (by name, for those whose class has any), and the names of those
    holding a random generator."""

    __slots__ = ("digests", "filled", "generators")

    def __init__(self, digests: list[bytes | None], filled: dict[str, frozenset[str]], generators: set[str]) -> None:
        self.digests, self.filled, self.generators = digests, filled, generators


# value, expiry (0: none), stamp of its fill, and the digest of its object as the fill read it (None: not known;
# _ASSIGNED: no fill, the value was assigned)
Entry = tuple[Any, float, int, bytes | None]
_ASSIGNED = b"assigned"  # told by identity; no digest of an object, so a run served it notes it as held


class InstanceCaches:
    """The caches of one object: per cached method or property, argument digest -> (value, expiry, filled, digest).

    ``filled``: the stamp of the fill's start (see _conditions.stamp), to tell a run what was held before it;
    ``digest``: the object's content digest as a fill inside a run read it, to tell whether it still has it (None:
    not known; _ASSIGNED: the value was assigned, not filled)."""

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
    # Keyed by id, checked by identity: an object's own __eq__ and __hash__ do not matter, and a new object at a
    # dead one's address does not find its caches.
    entry = _side.get(id(obj))
    if entry is not None and entry[0]() is obj:
        return entry[1]
    namespace = getattr(obj, "__dict__", None)
    if isinstance(namespace, dict):
        caches = namespace.get(SLOT)
        if caches is not None and caches.belongs_to(obj):
            return caches  # type: ignore[no-any-return]
    if not create:
        return None
    return _new_caches(obj, namespace)


def _new_caches(obj: Any, namespace: Any) -> InstanceCaches:
    """Return empty caches for ``obj``, held in the side table, or in ``namespace`` (its ``__dict__``) where it
    cannot be weakly referenced."""
    if isinstance(namespace, dict):
        namespace.pop(SLOT, None)  # copied along with __dict__ from another object: not this one's
    key = id(obj)

    # The table is bound here: at exit, a callback may run after the module's globals are gone.
    def forget(ref: weakref.ReferenceType[Any], key: int = key, side: dict[int, Any] = _side) -> None:
        entry = side.get(key)
        if entry is not None and entry[0] is ref:
            side.pop(key, None)

    try:
        ref = weakref.ref(obj, forget)
    except TypeError:
        if isinstance(namespace, dict):
            fresh = InstanceCaches(obj)
            namespace[SLOT] = fresh
            return fresh
        raise TypeError(
            f"{type(obj).__qualname__} objects have neither __dict__ nor __weakref__, so a per-instance "
            "cache has nowhere to live: add '__weakref__' to its __slots__, or use @memo instead"
        ) from None
    with _side_lock:
        entry = _side.get(key)
        if entry is not None and entry[0]() is obj:
            return entry[1]  # another thread made them meanwhile
        caches = InstanceCaches(obj)
        _side[key] = (ref, caches)
    return caches


# Tracked objects a cached value refers to, at most, looked through for its own object: past it the walk cannot
# tell, and the caches stay in the side table (see _kept).
_LOOKED_THROUGH = 1_000_000
# Not looked into: a class or module is held by its module anyway, and a function's globals are a module's namespace
# (its closure, defaults and __dict__ are looked into instead); a frame's globals and builtins likewise.
_OPAQUE = (type, types.ModuleType, types.FunctionType, types.FrameType)


def _may_hold(value: Any, obj: Any) -> bool:
    """Return True when ``value`` refers to ``obj``, directly or through what it holds, as far as a walk of at
    most ``_LOOKED_THROUGH`` objects finds.

    Level by level, each over the whole frontier in a few C calls: untracked objects (numbers, strings, arrays,
    tuples and dicts of them) hold no tracked objects and are not looked into, so a list of a million numbers
    costs one pass over it."""
    if value is obj:
        return True
    if not gc.is_tracked(obj) or not gc.is_tracked(value):
        return False  # an untracked object is in no cycle the collector frees: the side table it is
    seen = {id(value)}
    frontier = [value]
    looked = 1
    while frontier:
        held = list(filter(gc.is_tracked, _referents(frontier)))
        if any(map(operator.is_, held, itertools.repeat(obj))):
            return True
        by_id = dict(zip(map(id, held), held))
        fresh = by_id.keys() - seen
        looked += len(fresh)
        if looked > _LOOKED_THROUGH:
            return False  # cannot tell: see _kept
        seen |= fresh
        frontier = list(map(by_id.__getitem__, fresh))
    return False


def _referents(frontier: list[Any]) -> list[Any] | tuple[Any, ...]:
    """Return what the objects of ``frontier`` refer to, leaving out what is held by a module anyway."""
    if len(frontier) == 1 and type(frontier[0]) in (list, tuple):
        return frontier[0]  # a list's referents are its items: not copied
    if not any(issubclass(kind, _OPAQUE) for kind in set(map(type, frontier))):
        return gc.get_referents(*frontier)
    plain: list[Any] = []
    extra: list[Any] = []
    for item in frontier:
        if isinstance(item, types.FunctionType):
            extra += (item.__closure__, item.__defaults__, item.__kwdefaults__, item.__dict__)
        elif isinstance(item, types.FrameType):
            extra += (item.f_locals, item.f_back)  # a generator's locals (self among them), not its globals
        elif not isinstance(item, (type, types.ModuleType)):
            plain.append(item)
    return [*gc.get_referents(*plain), *extra]


def _kept(obj: Any, caches: InstanceCaches, value: Any) -> None:
    """``value`` was cached on ``obj``: if it may hold ``obj``, move the caches from the side table into the
    object's ``__dict__``. From the side table, which the module holds, the value would keep the object alive for
    ever; from its ``__dict__`` they form a cycle the garbage collector frees.

    Where the walk cannot tell (a value holding more than ``_LOOKED_THROUGH`` objects), the caches stay in the side
    table: if that value does hold its object, the object then lives until its cache is cleared (``memo.reset``,
    ``obj.method.clear()``), a leak of one object, where moving them would change ``vars(obj)`` and with it the
    user's ``__eq__``, ``json.dumps(vars(obj))`` and frames built from it."""
    entry = _side.get(id(obj))
    if entry is None or entry[1] is not caches:
        return
    namespace = getattr(obj, "__dict__", None)
    if not isinstance(namespace, dict) or not _may_hold(value, obj):
        return  # no __dict__ (__slots__ with __weakref__): the side table is the only place
    with _side_lock:
        namespace[SLOT] = caches
        if _side.get(id(obj)) is entry:
            del _side[id(obj)]


def reset(obj: Any) -> None:
    """Drop every per-instance cache and cached property of ``obj``."""
    caches = caches_of(obj, create=False)
    if caches is not None:
        with caches.lock:
            if any(map(_holds_assigned, caches.tables.values())):
                assigned_held_value(lambda: f"the values of {type(obj).__qualname__} (memo.reset)")
            caches.tables.clear()


def _holds_assigned(table: dict[bytes, Entry]) -> bool:
    """Return True when ``table`` holds a live value that was assigned, not filled: dropping it changes what the
    object's property reads."""
    now = time.monotonic()
    return any(entry[3] is _ASSIGNED and (not entry[1] or entry[1] > now) for entry in table.values())


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


def _before(items: list[tuple[str, Any]], digests: list[bytes], generators: set[str]) -> tuple[Watched, Before] | None:
    """Return the arguments among ``items`` a body may change in place (those that are not plain values), and what
    they are as the call starts (``digests``: of each of ``items``, as keyed); None where there are none."""
    watched = [(name, value) for name, value in items if type(value) not in IMMUTABLE_LEAVES]
    if not watched:
        return None
    then: list[bytes | None] = [digest for (_, value), digest in zip(items, digests)
                                if type(value) not in IMMUTABLE_LEAVES]
    return watched, Before(then, filled_names(watched), generators)


def _fill_digest(value: Any, name: str) -> bytes | None:
    """Return the digest of a functools.cached_property value as it is filled, unread by the running bodies."""
    token = pause()
    try:
        return fill_digest(value, name)
    finally:
        resume(token)


def _noting_fills(watched: Watched, before: Before | None) -> FillListener | contextlib.nullcontext[FillNotes]:
    """Return what notes the functools.cached_property values a call fills into its ``watched`` arguments."""
    if before is None or not before.filled:
        return contextlib.nullcontext({})
    return FillListener({id(value) for name, value in watched if name in before.filled}, _fill_digest)


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
        digest = entry[3]
        held_value_read(entry[2], None if digest is _ASSIGNED else digest, obj, self._described, _digest_of)
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

    def _changed_argument(self, watched: Watched, before: Before, notes: FillNotes) -> bool:
        """Return True, warning once, when the call changed one of the ``watched`` arguments in place (``before``:
        what they were): a hit on an equal argument would not change it, so the result is not stored. Filling a
        functools.cached_property of one (``notes``: the fills seen) is no change, as for @memo."""
        token = pause()
        try:
            for (name, value), then in zip(watched, before.digests):
                label = f"the argument {name!r} of {self.name}"
                if then is None or not same_but_filled(value, label, then, before.filled.get(name, frozenset()),
                                                       notes):
                    break
            else:
                return False
        finally:
            resume(token)
        qualname = self.__qualname__  # type: ignore[attr-defined]
        # A generator drawn from: a hit could not advance it as the call did, and a copy would not either.
        message = drew_from_argument if name in before.generators else changed_argument
        warn_once(f"changed-argument:{self.__module__}.{qualname}:{name}", message(qualname, name), MemoWarning)
        return True

    def get_or_compute(self, obj: Any, key: bytes, call: Callable[[], Any],
                       arguments: Callable[[], tuple[Watched, Before] | None] | None = None) -> Any:
        """Return the value cached under ``key`` on ``obj``, or ``call()``'s, stored unless the call changed one of
        the arguments ``arguments()`` names (asked on a miss only, with what they were) in place."""
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
        watched, before = (arguments() if arguments is not None else None) or ([], None)
        if self.is_async:
            return self._acompute(obj, caches, table, key, call, busy, watched, before)
        with caches.lock:
            slot = caches.inflight.setdefault((self, key), threading.Lock())
        with slot:  # one thread computes; the others wait, then read its result
            entry = self._lookup(table, key)
            if entry is not None:
                return self._served(obj, entry)  # another thread filled it meanwhile
            try:
                filled = stamp()  # as it starts: what it reads of the object is read from then on
                with computing(busy), _noting_fills(watched, before) as notes:
                    value, digest = self._fill(obj, call)
                if before is None or not self._changed_argument(watched, before, notes):
                    table[key] = (value, self._expiry(), filled, digest)
                    _kept(obj, caches, value)
            finally:
                with caches.lock:
                    caches.inflight.pop((self, key), None)
        return value

    async def _acompute(self, obj: Any, caches: InstanceCaches, table: dict[bytes, Entry], key: bytes,
                        call: Callable[[], Any], busy: str, watched: Watched, before: Before | None) -> Any:
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
            with computing(busy), _noting_fills(watched, before) as notes:
                value = await call()
            if before is not None and self._changed_argument(watched, before, notes):
                future.set_result(_MISSING)  # those waiting compute their own, changing their own argument
                return value
            # Not vouched for by a digest: an awaited fill's reads mix with those of the tasks it waits beside.
            entry = table[key] = (value, self._expiry(), filled, None)
            _kept(obj, caches, value)
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
            dropped = caches.tables.pop(self, None)
            if dropped and _holds_assigned(dropped):
                assigned_held_value(self._described)


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

    def _items(self, obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[tuple[str, Any]]:
        bound = self.signature.bind(obj, *args, **kwargs)
        bound.apply_defaults()
        return list(bound.arguments.items())[1:]  # not self: the cache lives on it

    def key(self, items: list[tuple[str, Any]]) -> tuple[bytes, list[bytes], set[str]]:
        """Return the key of a call with the arguments ``items``, the digest of each argument, and the names of
        those holding a random generator: each hashed once, its digest also what it was before the call."""
        leaves = leaf_digests(items)
        if leaves is not None:  # plain values only (the common call): no generator or shared object in them
            digests = list(leaves.values())
            return combine([*itertools.chain.from_iterable(zip(map(str.encode, leaves), digests))]), digests, set()
        met = things_met
        outer = getattr(met, "found", None)
        outer_walks = getattr(met, "walks", None)
        walks: dict[int, tuple[Any, Any]] = {}  # what hashing each argument met: which of them share objects
        met.walks = walks
        digests = []
        generators: set[str] = set()
        parts: list[bytes] = []
        try:
            for name, value in items:
                found: list[Any] = []  # the random generators hashing it meets
                met.found = found
                digest = content_hash(value, f"the argument {name!r} of {self.name}")
                if found:
                    generators.add(name)
                digests.append(digest)
                parts += (name.encode(), digest)
        finally:
            met.found = outer
            met.walks = outer_walks
        # f(a, [a]) is not f(a, [a.copy()]): the body can tell, and appending to one grows the other
        parts += aliasing_parts(keyword_values(items, self._keyword(), walks), walks)
        return combine(parts), digests, generators

    def _keyword(self) -> str | None:
        """Return the name of the method's ``**`` parameter, if it has one."""
        for parameter in self.signature.parameters.values():
            if parameter.kind is parameter.VAR_KEYWORD:
                return parameter.name
        return None


class BoundPerInstance:
    """``obj.method``: call it, or ``obj.method.clear()`` to drop its cached results."""

    __slots__ = ("_desc", "_obj")

    def __init__(self, desc: PerInstance, obj: Any) -> None:
        self._desc = desc
        self._obj = obj

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        desc, obj = self._desc, self._obj
        items = desc._items(obj, args, kwargs)
        key, digests, generators = desc.key(items)
        return desc.get_or_compute(obj, key, lambda: desc.fn(obj, *args, **kwargs),
                                   lambda: _before(items, digests, generators))

    def __reduce__(self) -> tuple[Any, ...]:
        # As ``obj.method`` is sent to a worker: the object, and the method looked up on it there (pickle would
        # look the function up by its name, and find this descriptor instead).
        obj, cls = self._obj, type(self._obj)
        if in_a_stream_by_value() or importable(cls, cls.__module__, cls.__qualname__):
            return getattr, (obj, self._desc.name)
        # An object of a notebook class: plain pickle (multiprocessing, spawn) would name the class, which a
        # spawned worker cannot find; it goes with its definition, as for a memoized method (dumps_for_a_worker).
        return _method_of_copy, (dumps_for_a_worker(obj), self._desc.name)

    def clear(self) -> None:
        """Drop this method's cached results on this object."""
        self._desc.clear_for(self._obj)

    def uncached(self, *args: Any, **kwargs: Any) -> Any:
        """Run the method without the cache."""
        return self._desc.fn(self._obj, *args, **kwargs)


def _method_of_copy(data: bytes, name: str) -> Any:
    """Return the method ``name`` of the object pickled in ``data`` (by ``dumps_for_a_worker``)."""
    return getattr(pickle.loads(data), name)


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
        caches.tables.setdefault(self, {})[_PROPERTY_KEY] = (value, self._expiry(), stamp(), _ASSIGNED)
        _kept(obj, caches, value)
        # Kept beside the object, where no key or comparison of it looks: a run that assigns it is not stored.
        assigned_held_value(self._described)

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
