"""The canonical walk: Python values to bytes, fed to xxh3-128, with dispatch by type.

A digest depends only on a value's type and content: never on ``id()``, a default
``repr``, ``hash()`` or set iteration order, so it is the same in every process and
under every ``PYTHONHASHSEED``. Large buffers (numpy arrays, pandas columns, torch
tensors) are fed to xxh3 in place, with no pickling and no copy.
"""

from __future__ import annotations

import array
import collections
import copyreg
import enum
import functools
import io
import os
import re
import socket
import struct
import sys
import threading
import types
import weakref
from collections.abc import Callable, Iterable, Mapping
from math import copysign as _copysign
from typing import Any

import xxhash
from xxhash import xxh3_128_digest as _digest

from .._errors import UnhashableArgument
from .._replaced import unseen_state_function

__all__ = ()

Digest = bytes
HashFn = Callable[["Hasher", Any], None]

_pack_q = struct.Struct("<q").pack
_pack_tag_d = struct.Struct("<cd").pack  # a one-byte tag and a float
_pack_tag_q = struct.Struct("<cq").pack  # a one-byte tag and a length
_BIG = 1 << 16  # buffers at least this large stream straight into xxh3
_STREAM = 1 << 11  # arrays at least this large too: copying many mid-sized ones into the buffer costs more
_TOO_DEEP = 64  # nesting at which running out of stack is the value's doing, not the caller's
_PLAIN_DEPTH = 32  # plain data nested deeper (or holding itself) takes the general walk, which tracks both
_RUN = 16  # a list or tuple at least this long is tried as one run of strings
_CHUNK = 1 << 13  # strings joined at a time: bounds the transient copies of a long run

_FORBIDDEN: tuple[type, ...] = (
    types.GeneratorType,
    types.CoroutineType,
    types.AsyncGeneratorType,
    types.FrameType,
    types.TracebackType,
    io.IOBase,
    socket.socket,
    type(threading.Lock()),
    type(threading.RLock()),
    threading.Condition,
    threading.Event,
    threading.Thread,
)


class _Unhashable(Exception):
    """Raised inside the walk; collects the path to the offending value on the way out."""

    def __init__(self, value: object, reason: str) -> None:
        super().__init__(reason)
        self.value = value
        self.reason = reason
        self.segments: list[str] = []


class Hasher:
    """Feeds a value's canonical byte form into one xxh3-128 state."""

    __slots__ = ("_active", "_buf", "_deferred", "_h", "caches", "deepest", "left_out", "memo", "memories", "shared",
                 "subs", "views")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._h = xxhash.xxh3_128()
        self._active: dict[int, int] = {}
        self._deferred: dict[Callable[[list[Any]], bytes], list[Any]] | None = None
        self.deepest = 0  # how deeply nested the walk was when the stack ran out
        self.memo: dict[int, bytes] = {}  # code digests met in this one walk (a class per instance)
        # Mutable objects met in this walk, keyed once, then by a reference back (a list, an array or a tensor
        # held twice is another value than two equal ones): id -> (index, the object, held so its id stays its own).
        self.shared: dict[int, tuple[int, Any]] = {}
        # Memory that arrays met in this walk read: id of its owner -> the arrays met over it and where each
        # lies (the owner held so its id stays its own). See the array family's handlers.
        self.memories: dict[int, MemoryViews] | None = None
        # The arrays and tensors met in this walk, each once, in the order met; None: none. With ``shared`` and
        # ``subs``, what tells which arguments of a call share objects or memory (see _aliasing).
        self.views: list[Any] | None = None
        # The walks of a set's members (each on its own, their order following the hash seed) that met a mutable
        # object or an array: (len(shared) as the member was walked, the member's digest, its walk).
        self.subs: list[tuple[int, Digest, Hasher]] | None = None
        # (object, attribute names): names of that one object's own state the walk leaves out (see content_hash)
        self.left_out: tuple[Any, frozenset[str]] | None = None
        # id of a pandas object -> the names of its ``_cache`` entries to key, those it held when a call was keyed
        # (see content_hash); None: every entry it holds
        self.caches: Mapping[int, frozenset[str]] | None = None

    # -- primitives -------------------------------------------------------------------
    def tag(self, data: bytes) -> None:
        """Append raw bytes (a type tag or a fixed-width field)."""
        self._buf += data

    def text(self, value: str) -> None:
        """Append a length-prefixed string."""
        data = value.encode("utf-8", "surrogatepass")
        self._buf += _pack_q(len(data))
        self._buf += data

    def number(self, value: int) -> None:
        """Append a length-prefixed integer of any size."""
        self._buf += _number_bytes(value)

    def buffer(self, data: Any) -> None:
        """Append a length-prefixed contiguous buffer; big ones stream without a copy."""
        view = memoryview(data)
        self._buf += _pack_q(view.nbytes)
        if view.nbytes >= _BIG:
            self._h.update(self._buf)
            self._buf.clear()
            self._h.update(view)
        else:
            self._buf += view.cast("B") if view.ndim != 1 or view.format != "B" else view

    def contiguous(self, data: Any, nbytes: int) -> None:
        """Append a length-prefixed C-contiguous array of any item format (datetimes too), read in place."""
        buf = self._buf
        buf += _pack_q(nbytes)
        if nbytes >= _STREAM:
            update = self._h.update
            update(buf)
            buf.clear()
            update(data)
        else:
            buf += data.tobytes()

    def defer(self, finish: Callable[[list[Any]], bytes], item: Any) -> None:
        """Stand ``item`` here by a marker; ``finish`` turns all such items, in order, into bytes fed last.

        For work best done once per value rather than once per part: tensors on a GPU are digested
        together, with one transfer to the host for all of them.
        """
        self._buf += b"&"
        if self._deferred is None:
            self._deferred = {}
        self._deferred.setdefault(finish, []).append(item)

    def digest(self) -> Digest:
        """Return the 16-byte digest of everything fed so far."""
        self._h.update(self._buf)
        self._buf.clear()
        if self._deferred:
            for finish, items in self._deferred.items():
                self._h.update(finish(items))
            self._deferred = None
        return self._h.digest()

    # -- values -----------------------------------------------------------------------
    def update(self, value: Any) -> None:
        """Feed ``value``'s canonical form."""
        cls = type(value)
        handler = _EXACT.get(cls)
        if handler is not None and cls not in _CONTAINERS:
            handler(self, value)
            return
        flat = _flat_dispatch.get(cls)
        if flat is not None and flat(self, value):
            return  # it holds no values, so it cannot close a cycle: no bookkeeping
        key = id(value)
        active = self._active
        if key in active:
            # A cycle: refer back to the enclosing container by its depth.
            self._buf += b"@"
            self._buf += _pack_q(active[key])
            return
        if cls in _MUTABLE_CONTAINERS:
            shared = self.shared  # seen_before, inline: this is the walk's busiest path
            entry = shared.get(key)
            if entry is not None:
                self._buf += b"^"
                self._buf += _pack_q(entry[0])
                return
            shared[key] = (len(shared), value)
        active[key] = len(active)
        try:
            (handler or _library_dispatch.get(cls) or _dispatch(cls))(self, value)
        except RecursionError:
            self.deepest = max(self.deepest, len(active))
            raise
        finally:
            del active[key]

    def child(self, value: Any, segment: str) -> None:
        """Feed a nested value, naming where it sits if it cannot be hashed."""
        try:
            self.update(value)
        except _Unhashable as exc:
            exc.segments.append(segment)
            raise

    def seen_before(self, value: Any) -> bool:
        """Feed a reference back and return True when ``value`` itself was met before in this walk; else
        remember it and return False (its handler then feeds its content)."""
        shared = self.shared
        entry = shared.get(id(value))
        if entry is not None:  # the object it holds is alive, so its id is still its own
            self._buf += b"^"
            self._buf += _pack_q(entry[0])
            return True
        shared[id(value)] = (len(shared), value)
        return False

    def part(self, value: Any) -> None:
        """Feed the digest of ``value`` alone; where it cannot be hashed (a lock, an open file), a mark and why,
        so the value around it is keyed without it, as a global that cannot be hashed is left out."""
        try:
            self.tag(self.sub_digest(value))
        except _Unhashable as exc:
            self.tag(b"?")
            self.text(exc.reason)

    def sub_digest(self, value: Any) -> Digest:
        """Return the digest of ``value`` alone (for order-free containers)."""
        sub = Hasher()
        sub._active = self._active
        sub.memo = self.memo
        sub.caches = self.caches
        try:
            sub.update(value)
        except RecursionError:
            self.deepest = max(self.deepest, sub.deepest)
            raise
        digest = sub.digest()
        if sub.shared or sub.subs:
            if self.subs is None:
                self.subs = []
            self.subs.append((len(self.shared), digest, sub))
        return digest

    def saw_view(self, value: Any) -> None:
        """Note an array or tensor met for the first time in this walk (see ``views``)."""
        if self.views is None:
            self.views = [value]
        else:
            self.views.append(value)


# -- exact builtin types ------------------------------------------------------------------
# The canonical bytes of a scalar, returned whole: containers append them without a Hasher call.


def _number_bytes(value: int) -> bytes:
    if 0 <= value < 256:
        return _SMALL_NUMBERS[value]
    data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return _pack_q(len(data)) + data


def _none_bytes(v: None) -> bytes:
    return b"N"


def _bool_bytes(v: bool) -> bytes:
    return b"T" if v else b"F"


def _int_bytes(v: int) -> bytes:
    if -128 <= v < 256:
        return _SMALL_INTS[v + 128]
    return _any_int_bytes(v)


def _any_int_bytes(v: int) -> bytes:
    data = v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True)
    return _pack_tag_q(b"i", len(data)) + data


def _float_bytes(v: float) -> bytes:
    if v == v:
        return _pack_tag_d(b"f", v)
    # Any NaN keys alike but for its sign, which code can see (math.copysign, np.signbit); a positive
    # one keeps the bytes it always had.
    return b"fNaN" if _copysign(1.0, v) < 0 else b"fnan"


def _complex_bytes(v: complex) -> bytes:
    return b"c" + _float_bytes(v.real) + _float_bytes(v.imag)


def _str_bytes(v: str) -> bytes:
    data = v.encode("utf-8", "surrogatepass")
    return _pack_tag_q(b"s", len(data)) + data


_SMALL_NUMBERS = [_any_int_bytes(n)[1:] for n in range(256)]
_SMALL_INTS = [_any_int_bytes(n) for n in range(-128, 256)]


# Exact types only: a subclass (an IntEnum, a str subclass) is hashed as the object it is.
_LEAF: dict[type, Callable[[Any], bytes]] = {
    str: _str_bytes,
    int: _int_bytes,
    float: _float_bytes,
    bool: _bool_bytes,
    type(None): _none_bytes,
    complex: _complex_bytes,
}


def _leaf_handler(encode: Callable[[Any], bytes]) -> HashFn:
    def handler(h: Hasher, v: Any) -> None:
        h._buf += encode(v)

    return handler


# Headers of short ASCII strings as text: a run of them is joined and encoded in one go.
_ASCII_HEADERS = ["s" + _pack_q(n).decode("ascii") for n in range(128)]


def _str_run(items: list[str] | tuple[str, ...], out: bytearray) -> bool:
    """Append the canonical bytes of the items built in bulk, if all are exact str; else append nothing."""
    if set(map(type, items)) != {str}:
        return False
    for start in range(0, len(items), _CHUNK):
        chunk = items[start : start + _CHUNK]
        lengths = list(map(len, chunk))
        if max(lengths) < 128:
            # Header characters are ASCII below 128, so the joined text is ASCII exactly when every string is.
            pieces: list[Any] = [None] * (2 * len(chunk))
            pieces[::2] = map(_ASCII_HEADERS.__getitem__, lengths)
            pieces[1::2] = chunk
            text = "".join(pieces)
            if text.isascii():
                out += text.encode("ascii")
                continue
        out += b"".join(map(_str_bytes, chunk))
    return True


def _h_bytes(h: Hasher, v: bytes) -> None:
    h.tag(b"b")
    h.buffer(v)


def _h_bytearray(h: Hasher, v: bytearray) -> None:
    if h.seen_before(v):
        return
    h.tag(b"y")
    h.buffer(v)


def _h_sequence(tag: bytes) -> HashFn:
    def handler(h: Hasher, v: Any) -> None:
        buf = h._buf
        buf += tag
        buf += _number_bytes(len(v))
        if len(v) >= _RUN and type(v[0]) is str and _str_run(v, buf):
            return
        leaf = _LEAF.get
        i = 0
        try:
            for i, item in enumerate(v):  # noqa: B007 (the except clause names item i)
                encode = leaf(type(item))
                if encode is not None:
                    buf += encode(item)
                else:
                    h.update(item)
        except _Unhashable as exc:
            exc.segments.append(f"[{i}]")  # named only on failure: formatting it per item is most of the cost
            raise

    return handler


def _h_dict(h: Hasher, v: dict[Any, Any]) -> None:
    # Insertion order is observable (list(d), DataFrame(d) column order), so it is content.
    buf = h._buf
    buf += b"d"
    buf += _number_bytes(len(v))
    leaf = _LEAF.get
    k: Any = None
    try:
        for k, item in v.items():
            encode = leaf(type(k))
            if encode is not None:
                buf += encode(k)
            else:
                h.update(k)
            encode = leaf(type(item))
            if encode is not None:
                buf += encode(item)
            else:
                h.update(item)
    except _Unhashable as exc:
        exc.segments.append(f"[{k!r}]" if type(k) in (str, int) else "[<key>]")
        raise


def _h_set(tag: bytes) -> HashFn:
    def handler(h: Hasher, v: Any) -> None:
        leaf = _LEAF.get
        digests = []
        for item in v:
            encode = leaf(type(item))
            digests.append(_digest(encode(item)) if encode is not None else h.sub_digest(item))
        digests.sort()
        h.tag(tag)
        h.number(len(digests))
        h.tag(b"".join(digests))

    return handler


_WEAK_SET_INTERNALS = frozenset(vars(weakref.WeakSet()))


def _h_set_like(h: Hasher, v: Any) -> None:
    """Hash a subclass of set or frozenset, or a WeakSet, like a set (order-free: pickle's reduction lists the
    items in an order that follows ``PYTHONHASHSEED``), with its class and its instance's state."""
    h.tag(b"Sx")
    h.child(type(v), "<class>")
    digests = sorted(h.sub_digest(item) for item in list(v))
    h.number(len(digests))
    h.tag(b"".join(digests))
    if isinstance(v, weakref.WeakSet):
        state: Any = {name: value for name, value in vars(v).items() if name not in _WEAK_SET_INTERNALS}
    else:
        reduced = _reduction(v)
        state = reduced[2] if not isinstance(reduced, str) and len(reduced) > 2 else None
        state = _slots_in_name_order(type(v), state)
    h.child(_without_bookkeeping(own_state(h, v, state)), "<state>")
    if isinstance(v, weakref.WeakSet):
        feed_slot_values(h, v, weakref.WeakSet)  # its state above is its dict


def _h_memoryview(h: Hasher, v: memoryview) -> None:
    try:
        layout = v.format
    except ValueError:
        raise _Unhashable(v, "it is a released memoryview (its buffer is gone)") from None
    h.tag(b"v")
    h.text(layout)
    h.tag(repr(v.shape).encode())
    h.buffer(v.tobytes() if not v.c_contiguous else v)


# The dunder names of a module that are its code (PEP 562): what ``mod.name`` gives for a name it does not
# hold, and what ``dir(mod)`` lists. Other dunders are set by the import system.
_MODULE_HOOKS = frozenset({"__getattr__", "__dir__"})


def _h_module(h: Hasher, v: types.ModuleType) -> None:
    judge = _MODULE_JUDGE.get("user")
    if judge is None or not judge(v):
        h.tag(b"M")  # a library's module: its name and version (its settings are keyed where code reads it)
        h.text(v.__name__)
        library_version(h, v.__name__)
        _feed_patches(h, v)  # and the user's code the notebook put in it (colorsys.rgb_to_hsv = mine)
        return
    # The user's module (or one made at run time as a namespace): its content, each name as a global read
    # by code is (functions by code and what they read, data by content). What cannot be hashed (a lock,
    # an open file) is keyed by its name and why, as a global that cannot be hashed is skipped.
    items = sorted((name, value) for name, value in vars(v).items()
                   if type(name) is str and (name in _MODULE_HOOKS
                                             or not (name.startswith("__") and name.endswith("__"))))
    h.tag(b"Mu")
    h.text(v.__name__)
    h.number(len(items))
    for name, value in items:
        h.text(name)
        h.part(value)


# Whether a module is the user's, so keyed by its content: told by the fingerprint layer, which knows.
_MODULE_JUDGE: dict[str, Callable[[types.ModuleType], bool]] = {}


def install_module_judge(judge: Callable[[types.ModuleType], bool]) -> None:
    """Let the fingerprint layer say which modules are the user's (keyed by content, not by name)."""
    _MODULE_JUDGE["user"] = judge


# The version of the package a library's code (a function, class or module met as a value) comes from, when
# versions are keyed: told by the dependency layer, which knows the setting in force; None for none.
_VERSION_READER: dict[str, Callable[[str], str | None]] = {}


def install_version_reader(reader: Callable[[str], str | None]) -> None:
    """Let the dependency layer say which version of a module's package keys the library code met in a value."""
    _VERSION_READER["reader"] = reader


def library_version(h: Hasher, module: object) -> None:
    """Feed the version of the package ``module`` (a name) belongs to, where versions are keyed: a library
    function passed as an argument is keyed as one a body calls by name, so an upgrade is a change."""
    reader = _VERSION_READER.get("reader")
    version = reader(module) if reader is not None and isinstance(module, str) else None
    if version is not None:
        h.tag(b"@")
        h.text(version)


# What keys the user's code patched into a library class or module (``pd.DataFrame.mine = f``,
# ``colorsys.rgb_to_hsv = mine``): told by the dependency layer, which finds it; until then, nothing.
_PATCH_READER: dict[str, HashFn] = {}


def install_patch_reader(reader: HashFn) -> None:
    """Let the dependency layer feed the user's code patched into a library class or module met by name."""
    _PATCH_READER["reader"] = reader


def _feed_patches(h: Hasher, owner: type | types.ModuleType) -> None:
    reader = _PATCH_READER.get("reader")
    if reader is not None:
        reader(h, owner)


def h_library_class(h: Hasher, cls: type) -> None:
    """Feed the library class of a value that a fast path hashes (a DataFrame, a tensor) by its name, and the
    user's code patched into it or its bases, which the value's methods run (nothing more where there is none,
    so such a value keys as it did before patches were looked for)."""
    h.text(qualified_name(cls))
    _feed_patches(h, cls)


_EXACT: dict[type, HashFn] = {
    **{cls: _leaf_handler(encode) for cls, encode in _LEAF.items()},
    bytes: _h_bytes,
    bytearray: _h_bytearray,
    tuple: _h_sequence(b"("),
    list: _h_sequence(b"["),
    dict: _h_dict,
    set: _h_set(b"S"),
    frozenset: _h_set(b"Z"),
    memoryview: _h_memoryview,
    type(Ellipsis): lambda h, v: h.tag(b"E"),
    type(NotImplemented): lambda h, v: h.tag(b"I"),
}

_CONTAINERS = frozenset({tuple, list, dict, set, frozenset})
# Containers the walk keys once, then by a reference back: ``f([w, w])`` can see that its two items are one
# object (changing one changes the other), ``f([w, w.copy()])`` cannot. Immutable ones (a tuple, a frozenset,
# a str) are their values: equal values, equal keys.
_MUTABLE_CONTAINERS = frozenset({list, dict, set})

# Types with a registered hasher (user types, and our own internal types).
_REGISTERED: dict[type, Callable[[Any], Any]] = {}
# Handlers for functions, classes and methods, installed by the fingerprint module.
_CODE_HANDLERS: dict[type, HashFn] = {}
# Weak: re-running a class cell must let the old class (and what it holds) be collected.
_dispatch_cache: weakref.WeakKeyDictionary[type, HashFn] = weakref.WeakKeyDictionary()
# Strong, for the array libraries' own classes (they live as long as the process): no weakref per lookup.
_library_dispatch: dict[type, HashFn] = {}
# Of those, classes whose instances are often flat (plain arrays): a handler that hashes one if it holds
# no Python values, and says whether it did (writing nothing if not).
_flat_dispatch: dict[type, Callable[[Hasher, Any], bool]] = {}
_dispatch_lock = threading.Lock()

# The array libraries' fast paths, by the top-level module of a class; each family (hashing/_numpy.py,
# _pandas.py, _torch.py) registers itself and imports its library only once a value of it is met.
_FAST_PATHS: dict[str, Callable[[type], HashFn | None]] = {}
# Of those, the ones asked about classes defined anywhere (subclasses of torch.Tensor or nn.Module).
_ANYWHERE_PATHS: list[Callable[[type], HashFn | None]] = []
# Handlers with a flat form (see _flat_dispatch).
_FLAT_FORMS: dict[HashFn, Callable[[Hasher, Any], bool]] = {}


def register_family(module: str, path: Callable[[type], HashFn | None], anywhere: bool = False,
                    flat: dict[HashFn, Callable[[Hasher, Any], bool]] | None = None) -> None:
    """Let ``path(cls)`` choose the handler for classes of the library ``module`` (for any class, with
    ``anywhere``); ``flat`` maps handlers to their flat forms."""
    _FAST_PATHS[module] = path
    if anywhere:
        _ANYWHERE_PATHS.append(path)
    _FLAT_FORMS.update(flat or {})
    _dispatch_cache.clear()
    _library_dispatch.clear()
    _flat_dispatch.clear()


def _new_dispatch_lock() -> None:
    global _dispatch_lock
    _dispatch_lock = threading.Lock()  # a forked child: the thread that held it is gone


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_dispatch_lock)


def register_hasher(cls: type, fn: Callable[[Any], Any]) -> None:
    """Hash instances of ``cls`` (and its subclasses) by the content of ``fn(obj)``.

    ``fn`` returns any value notebook_memo can hash: a tuple of the fields that identify
    the object, a bytes digest, a path and a version. Use it for types you do not own;
    for your own classes, define ``__memo_key__(self)`` instead.

    >>> import notebook_memo
    >>> class Model:
    ...     def __init__(self, path, version):
    ...         self.path, self.version, self.session = path, version, object()
    >>> notebook_memo.register_hasher(Model, lambda m: (m.path, m.version))
    """
    if not isinstance(cls, type):
        raise TypeError(f"register_hasher needs a class, not {cls!r}")
    if not callable(fn):
        raise TypeError(f"register_hasher needs a callable for {cls.__qualname__}, not {fn!r}")
    with _dispatch_lock:
        _REGISTERED[cls] = fn
        _dispatch_cache.clear()
        _library_dispatch.clear()
        _flat_dispatch.clear()


def hashers_registered() -> int:
    """Return how many classes have a hasher of the user's (``register_hasher``): a digest kept while it is unchanged
    was made under the same hashers, for values of classes that had none then."""
    return len(_REGISTERED)


def hasher_registered(classes: Iterable[type]) -> bool:
    """Return True when any of ``classes`` has a hasher of the user's (``register_hasher``)."""
    return any(cls in _REGISTERED for cls in classes)


def install_code_handler(cls: type, handler: HashFn) -> None:
    """Let the fingerprint layer hash functions, classes and methods by their code."""
    with _dispatch_lock:
        _CODE_HANDLERS[cls] = handler
        _dispatch_cache.clear()
        _library_dispatch.clear()
        _flat_dispatch.clear()


def qualified_name(obj: Any) -> str:
    """Return ``module.qualname`` of a class, function or builtin."""
    module = getattr(obj, "__module__", None) or type(obj).__module__
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or type(obj).__qualname__
    if module == "__mp_main__":  # a script's own code, as a spawned worker imports it: the same code
        module = "__main__"
    return f"{module}.{name}"


def _dispatch(cls: type) -> HashFn:
    handler = _library_dispatch.get(cls)
    if handler is not None:
        return handler
    handler = _dispatch_cache.get(cls)
    if handler is None:
        handler = _choose(cls)
        if cls.__module__.partition(".")[0] in _FAST_PATHS:
            _library_dispatch[cls] = handler
            flat = _FLAT_FORMS.get(handler)
            if flat is not None:
                _flat_dispatch[cls] = flat
        else:
            _dispatch_cache[cls] = handler
    return handler


def _choose(cls: type) -> HashFn:
    for base in cls.__mro__:
        if base in _REGISTERED:
            return _registered_handler(_REGISTERED[base])
    if callable(getattr(cls, "__memo_key__", None)):
        return _h_memo_key
    for base in cls.__mro__:
        if base in _CODE_HANDLERS:
            return _CODE_HANDLERS[base]
        if f"{base.__module__}.{base.__qualname__}" in GENERATOR_CLASSES:
            if slots := _slots_left_out_of_reduction(cls):
                return _noting_generators(_h_reduce_keeping_slots(slots, _reduction_drops_attributes(cls)))
            return _h_generator_keeping_attributes if _reduction_drops_attributes(cls) else _h_generator
        if base.__module__ == "decimal" and base.__qualname__ == "Decimal":
            if slots := _slots_left_out_of_reduction(cls):
                return _noting_decimals(_h_reduce_keeping_slots(slots, _reduction_drops_attributes(cls)))
            return _h_decimal_keeping_attributes if _reduction_drops_attributes(cls) else _h_decimal
    module = cls.__module__.partition(".")[0]
    fast = _FAST_PATHS.get(module)
    if fast is not None:
        handler = fast(cls)
        if handler is not None:
            return handler
    for path in _ANYWHERE_PATHS:
        if path is not fast and (handler := path(cls)) is not None:
            return handler  # e.g. a tensor or module class of the user's
    if issubclass(cls, weakref.ref):
        return _h_weakref
    if cls is types.MappingProxyType:
        return _h_mapping_proxy
    if issubclass(cls, _DICT_VIEWS):
        return _h_dict_view
    if cls is struct.Struct:
        return _h_struct
    if cls is _MATCH:
        return _h_match
    if issubclass(cls, _FORBIDDEN):
        return _h_forbidden
    if any(base.__module__ == "ctypes" and base.__qualname__ == "CDLL" for base in cls.__mro__):
        return _h_shared_library
    if any(base.__module__ == "_ctypes" and base.__qualname__ == "CFuncPtr" for base in cls.__mro__):
        return _h_function_pointer
    if issubclass(cls, types.ModuleType):
        return _h_module
    if issubclass(cls, (types.BuiltinFunctionType, types.WrapperDescriptorType, types.MethodDescriptorType)):
        return _h_builtin
    if module == "numpy" and cls.__name__ == "ufunc":
        return _h_ufunc
    if issubclass(cls, enum.Enum):
        return _h_enum
    if issubclass(cls, (set, frozenset, weakref.WeakSet)):
        handler = _h_set_like
    elif slots := _slots_left_out_of_reduction(cls):
        handler = _h_reduce_keeping_slots(slots, _reduction_drops_attributes(cls))
    else:
        handler = _h_reduce_keeping_attributes if _reduction_drops_attributes(cls) else _h_reduce
    handler = _once_per_walk(handler) if _mutable(cls) else handler
    if cls.__name__ == "cython_function_or_method":  # np.random.seed, keyed by its reduction
        return _noting_state_function(handler)
    return handler


_MUTABLE_BASES: tuple[type, ...] = (list, dict, set, bytearray, collections.deque, array.array, weakref.WeakSet)


def _mutable(cls: type) -> bool:
    """Whether instances of ``cls`` (keyed by their reduction) can be changed in place: they hold an instance
    dict, or derive from a mutable builtin container."""
    return issubclass(cls, _MUTABLE_BASES) or (cls.__dictoffset__ != 0 and not issubclass(cls, (tuple, frozenset)))


def _once_per_walk(handler: HashFn) -> HashFn:
    """Return ``handler`` keying an object met again in the same walk by a reference back."""

    def keyed_once(h: Hasher, v: Any) -> None:
        if not h.seen_before(v):
            handler(h, v)

    return keyed_once


# Random generators: hashed by their state like any object, and noted while a call is keyed, so
# that a hit can leave each one advanced as the body would have left it.
GENERATOR_CLASSES = frozenset({"numpy.random._generator.Generator", "numpy.random.mtrand.RandomState",
                               "numpy.random.bit_generator.BitGenerator", "numpy.random.bit_generator.SeedSequence",
                               "random.Random", "torch._C.Generator", "torch.Generator"})
# While a call is keyed, ``things_met.found`` is a list of what keying it met that the call must know
# of: generator objects, and ``(CLOCK, where)`` for clock reads in the code of an argument's class.
# ``things_met.torch`` is set to True on hashing a tensor or module: torch's settings then count.
# ``things_met.decimal`` likewise on hashing a Decimal: what ``a / b`` makes of it depends on the decimal context.
# ``things_met.caches``, where a dict, gets the names of the ``_cache`` entries each pandas object met holds, by id:
# a run that fills more is checked against the digest of those alone (see content_hash).
# ``things_met.walks``, where a dict, gets by id each value content_hash walked: (the value, its walk, or the ids of
# the lists and dicts of plain data), so that which arguments share objects can be told without a second walk.
things_met = threading.local()
CLOCK = "clock"


def _noting_generators(reduce: HashFn) -> HashFn:
    def handler(h: Hasher, v: Any) -> None:
        role = _process_global_generator(v)
        if role is not None:
            # By its role, not its state: an object holding it (scipy's ``norm``, an estimator fitted with
            # random_state=None) or a function bound to it (``from random import shuffle``) would otherwise miss
            # after any unrelated draw and in every new kernel. A body that draws from it is tied to its state by
            # the run's own record of the global generators, which also leaves it advanced on a hit.
            h.tag(b"Gg")
            h.text(role)
            return
        found = getattr(things_met, "found", None)
        if found is not None:
            found.append(v)
        reduce(h, v)

    return handler


# ``(STATE_FUNCTION, READS or SEEDS, generator)`` in ``things_met.found``: keying met a function that reads or sets
# a global generator's state where no wrapper of ours sees its calls (_replaced.unseen_state_function).
STATE_FUNCTION = "state function"
_on_state_function: list[Callable[[], None]] = []  # told each time one is met (the dependency walk's)


def install_state_function_hook(hook: Callable[[], None]) -> None:
    """Let the dependency walk learn that what it is keying holds such a function (it then keys it anew per call)."""
    _on_state_function.append(hook)


def note_state_function(v: Any) -> None:
    """Note ``v`` for the call being keyed where it reads or sets a global generator's state unseen: held in a dict,
    a closure, a default, a partial... since before the function was wrapped, its calls are known from here only."""
    if not getattr(things_met, "wrapped", 0):
        note_state_use(unseen_state_function(v))


def note_state_use(use: tuple[str, str] | None) -> None:
    """Note ``(READS or SEEDS, generator)``, where given, as met by the call being keyed (see note_state_function)."""
    if use is None:
        return
    found = getattr(things_met, "found", None)
    if found is not None:
        found.append((STATE_FUNCTION, *use))
    for hook in _on_state_function:
        hook()


def keyed_as_wrapped(key: Callable[..., Any], *args: Any) -> Any:
    """Return ``key(*args)``, which keys a state function that our wrapper stands in front of (its calls are seen)
    as the function it replaced: noted as met unseen by no one."""
    depth = getattr(things_met, "wrapped", 0)
    things_met.wrapped = depth + 1
    try:
        return key(*args)
    finally:
        things_met.wrapped = depth


def _process_global_generator(v: Any) -> str | None:
    """Return which process-global generator ``v`` is (NumPy's legacy one or its bit generator, the one behind
    the ``random`` module's functions, torch's default one), or None; never imports a library."""
    modules = sys.modules
    mtrand = modules.get("numpy.random.mtrand")
    if mtrand is not None:
        legacy = getattr(mtrand, "_rand", None)
        if v is legacy:
            return "numpy.random"
        if v is getattr(legacy, "_bit_generator", None):
            return "numpy.random bit generator"
    if v is getattr(modules.get("random"), "_inst", None):
        return "random"
    torch = modules.get("torch")
    if torch is not None and v is getattr(torch, "default_generator", None):
        return "torch"
    return None


def _noting_decimals(reduce: HashFn) -> HashFn:
    def handler(h: Hasher, v: Any) -> None:
        things_met.decimal = True  # the caller keys the decimal context, as for code naming decimal
        reduce(h, v)

    return handler


def _registered_handler(fn: Callable[[Any], Any]) -> HashFn:
    def handler(h: Hasher, v: Any) -> None:
        h.tag(b"R")
        h.child(type(v), "<class>")  # the user's class: its code, as for any instance
        h.child(_asked(fn, v, "the function given to register_hasher", v), "<register_hasher>")

    return handler


def _h_memo_key(h: Hasher, v: Any) -> None:
    h.tag(b"K")
    h.child(type(v), "<class>")  # __memo_key__ names the state; the methods that use it are code
    h.child(_asked(v.__memo_key__, v, "its __memo_key__()"), ".__memo_key__()")


def _asked(fn: Callable[..., Any], v: Any, what: str, *args: Any) -> Any:
    """Return what the user's key function gives; its error makes ``v`` unhashable (a global is then left
    out with a warning, an argument refused) instead of escaping from a call of the memoized function."""
    try:
        return fn(*args)
    except (RecursionError, _Unhashable):
        raise
    except Exception as exc:
        raise _Unhashable(v, f"{what} raised {type(exc).__name__}: {exc}") from None


def _h_weakref(h: Hasher, v: Any) -> None:
    h.tag(b"W")  # what it refers to, or None once that is gone
    h.child(v(), "()")


# Objects pickle refuses whose content is plain to read: hashed by what they show.
_DICT_VIEWS: tuple[type, ...] = (type({}.keys()), type({}.values()), type({}.items()))  # OrderedDict's are subclasses
_MATCH = type(re.match("", ""))


def _h_mapping_proxy(h: Hasher, v: Any) -> None:
    """A read-only view of a mapping: the mapping it shows, as its ``copy()`` gives it (a dict, an
    OrderedDict, a defaultdict with its factory). Live: a global one is hashed anew on every call."""
    h.tag(b"mp")
    try:
        mapping = v.copy()
    except Exception as exc:
        raise _Unhashable(v, f"the mapping it shows cannot be copied ({type(exc).__name__}: {exc})") from None
    h.child(mapping, "<mapping>")


def _h_dict_view(h: Hasher, v: Any) -> None:
    """``d.keys()``, ``d.values()``, ``d.items()``: which view, and what it lists, in order."""
    h.tag(b"dv")
    h.text(type(v).__name__)
    h.child(list(v), "<view>")


def _h_struct(h: Hasher, v: Any) -> None:
    """A compiled ``struct.Struct``: its format says all it does."""
    h.tag(b"st")
    h.child(v.format, ".format")


# The digest of the file each library loaded with ctypes came from, taken when it is first met, about when it was
# loaded: what the process runs is the code loaded then, even where the file is rebuilt since.
_LOADED_LIBRARIES: weakref.WeakKeyDictionary[Any, bytes] = weakref.WeakKeyDictionary()


def _h_shared_library(h: Hasher, v: Any) -> None:
    """A library loaded with ctypes (``CDLL``, ``PyDLL``): machine code no key can read, keyed by the content of
    the file it was loaded from; one found by a bare name on the system's search path (``libc.so.6``) by that
    name, as a library is by its version."""
    h.tag(b"dll")
    digest = _LOADED_LIBRARIES.get(v)
    if digest is None:
        digest = _library_digest(getattr(v, "_name", None))
        try:
            _LOADED_LIBRARIES[v] = digest
        except TypeError:  # a subclass with __slots__ and no weak references: digested at each call
            pass
    h.buffer(digest)


def _library_digest(name: Any) -> bytes:
    """Return what keys a library loaded from ``name``: its file's content where it names a file, else the name."""
    text = os.fsdecode(name) if isinstance(name, (str, bytes, os.PathLike)) else repr(name)
    if os.sep in text:
        try:
            stream = xxhash.xxh3_128()
            with open(text, "rb") as file:
                for chunk in iter(lambda: file.read(1 << 20), b""):
                    stream.update(chunk)
            return b"f" + stream.digest()
        except OSError:
            pass  # removed since it was loaded: its name
    return b"n" + text.encode("utf-8", "surrogateescape")


# The digest of each library file a function pointer's code lies in, where that is not the library it was taken
# from (a function a dependency defines): (file name, load address) -> digest, taken when first met.
_CODE_FILES: dict[tuple[bytes, int], bytes] = {}


def _h_function_pointer(h: Hasher, v: Any) -> None:
    """A ctypes function pointer taken from a library loaded with ctypes (``lib.scale``, ``PROTO(("scale", lib))``):
    keyed by the library file that holds its code (as the library itself is), where in that file the code lies,
    and how it is called (name, ``restype``, ``argtypes``, ``errcheck``, calling flags). A Python callback or a
    pointer made from a bare address has no such file: unhashable."""
    objects = getattr(v, "_objects", None)
    library = objects.get("0") if isinstance(objects, dict) else None
    if not any(base.__module__ == "ctypes" and base.__qualname__ == "CDLL" for base in type(library).__mro__):
        raise _Unhashable(v, "it is a ctypes function pointer not taken from a library loaded with ctypes (a "
                             "Python callback or a bare address), whose code no key can read")
    place = _code_place(v)
    if place is None:
        raise _Unhashable(v, "the library file holding the code of this ctypes function pointer cannot be found")
    file_name, base, offset = place
    h.tag(b"dfn")
    if os.fsencode(getattr(library, "_name", None) or b"") == file_name:
        h.child(library, "<library>")  # its own library's: the digest that library is keyed by
    else:
        digest = _CODE_FILES.get((file_name, base))
        if digest is None:
            digest = _CODE_FILES[(file_name, base)] = _library_digest(file_name)
        h.tag(b"dll")
        h.buffer(digest)
    h.tag(_pack_q(offset))
    h.text(str(getattr(v, "__name__", "")))
    h.text(repr(getattr(v, "_flags_", None)))
    h.child(getattr(v, "restype", None), ".restype")
    h.child(getattr(v, "argtypes", None), ".argtypes")
    h.child(getattr(v, "errcheck", None), ".errcheck")


@functools.cache
def _dladdr() -> Callable[[int], tuple[bytes, int] | None] | None:
    """Return a function giving the file and load address of the shared object holding an address (the C
    library's ``dladdr``), or None where there is none."""
    import ctypes

    class DlInfo(ctypes.Structure):
        _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                    ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]

    try:
        dladdr = ctypes.CDLL(None).dladdr
    except (AttributeError, OSError, TypeError):  # no dladdr (Windows)
        return None
    dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(DlInfo)]
    dladdr.restype = ctypes.c_int

    def find(address: int) -> tuple[bytes, int] | None:
        info = DlInfo()
        if not dladdr(address, ctypes.byref(info)) or not info.dli_fname:
            return None
        return info.dli_fname, info.dli_fbase or 0

    return find


def _code_place(v: Any) -> tuple[bytes, int, int] | None:
    """Return the file holding a function pointer's code, where it is loaded, and the code's offset from there."""
    import ctypes

    find = _dladdr()
    address = ctypes.cast(v, ctypes.c_void_p).value
    found = find(address) if find is not None and address else None
    if found is None:
        return None
    return found[0], found[1], address - found[1]  # type: ignore[operator]


def _h_match(h: Hasher, v: Any) -> None:
    """A ``re.Match``: the pattern and text it was made from, where the search ran, and what each group
    spans; every method and attribute of a match reads from these."""
    h.tag(b"rm")
    h.child(v.re, ".re")
    h.child(v.string, ".string")
    h.child((v.pos, v.endpos, v.regs, v.lastindex), "<spans>")


def _h_forbidden(h: Hasher, v: Any) -> None:
    raise _Unhashable(v, "its content is not a value (an open file, lock, generator, socket or thread)")


def _noting_state_function(reduce: HashFn) -> HashFn:
    def handler(h: Hasher, v: Any) -> None:
        note_state_function(v)
        reduce(h, v)

    return handler


def _h_builtin(h: Hasher, v: Any) -> None:
    owner = getattr(v, "__self__", None)
    note_state_function(v)  # one taken before it was wrapped
    h.tag(b"B")
    h.text(qualified_name(v))
    module = getattr(v, "__module__", None) or getattr(getattr(v, "__objclass__", None), "__module__", None)
    if not isinstance(module, str) and isinstance(owner, types.ModuleType):
        module = owner.__name__
    library_version(h, module)
    if owner is not None and not isinstance(owner, types.ModuleType):
        h.child(owner, ".__self__")


def _h_ufunc(h: Hasher, v: Any) -> None:
    if str(getattr(v, "__name__", "")).endswith(" (vectorized)"):
        raise _Unhashable(v, "np.frompyfunc hides the Python function it calls, so its code cannot be keyed; "
                          "use np.vectorize, or pass the function itself")
    _h_builtin(h, v)


def _h_reduce(h: Hasher, v: Any) -> None:
    """Hash an object by its type and the reduction pickle would save (``copyreg`` first)."""
    if type(v) in copyreg.dispatch_table and _users_class(type(v)):
        # A reducer registered for the user's class may leave out what its instances hold (``lambda p: (P, (2,))``),
        # which the code reads all the same: the attributes its state leaves out are keyed after it.
        _h_reduction_and_attributes(h, v, True)
        return
    h_reduced(h, v, _reduction(v))


def _users_class(cls: type) -> bool:
    judge = _MODULE_JUDGE.get("user")
    module = sys.modules.get(str(cls.__module__))
    return judge is not None and module is not None and judge(module)


def _h_reduce_keeping_attributes(h: Hasher, v: Any) -> None:
    """Hash an object whose class inherits a reduction from another package's class (a subclass of
    ``random.Random``, ``np.random.RandomState``, ``datetime``, ``defaultdict``): that reduction was written
    for instances without attributes of their own, so ``self.scale`` set on one is keyed after it, where
    its state does not hold it."""
    _h_reduction_and_attributes(h, v, True)


def _h_reduction_and_attributes(h: Hasher, v: Any, keep_dict: bool) -> Any:
    """Hash an object by its reduction and, where ``keep_dict``, the attributes its state leaves out; return
    that state."""
    found = getattr(v, "__dict__", None) if keep_dict else None  # first: asking makes a partial's dict
    reduced = _reduction(v)
    h_reduced(h, v, reduced)
    state = reduced[2] if not isinstance(reduced, str) and len(reduced) > 2 else None
    attributes = _attributes_left_out(found, state) if keep_dict else None
    if attributes:
        h.tag(b"+")
        h.child(attributes, ".__dict__")
    return state


def _h_reduce_keeping_slots(slots: tuple[tuple[str, Any], ...], keep_dict: bool) -> HashFn:
    """Return a handler for a class whose inherited reduction (an exception's, an ``array.array``'s, a
    ``Fraction``'s) was written without the ``__slots__`` its subclasses declare: the slot values it set
    are keyed after that reduction, in name order (an unset one is absent), as its attributes are where
    ``keep_dict`` says the reduction leaves those out too."""

    def handler(h: Hasher, v: Any) -> None:
        state = _h_reduction_and_attributes(h, v, keep_dict)
        # A reduction that does save them (one built on object.__getstate__, as OrderedDict's) holds them already.
        held = state[1] if type(state) is tuple and len(state) == 2 and type(state[1]) is dict else ()
        values = {}
        for name, slot in slots:
            if name not in held:
                try:
                    values[name] = slot.__get__(v, type(v))  # the slot itself: no __getattr__ of the user's
                except AttributeError:
                    continue  # unset
        if values:
            h.tag(b"+s")
            h.child(values, "<slots>")

    return handler


def _slots_left_out_of_reduction(cls: type) -> tuple[tuple[str, Any], ...]:
    """Return ``(name, descriptor)`` of the ``__slots__`` declared below the class whose reduction ``cls``
    inherits, where that class is of another package or a builtin one (which saves only the instance
    dict): that reduction cannot know of them. Name order; empty for every other class."""
    owner = _reduction_owner(cls)
    if owner is None or owner is cls or (owner.__module__ != "builtins" and _package(owner) == _package(cls)):
        return ()
    return _declared_slots(cls, owner)


def _declared_slots(cls: type, below: type) -> tuple[tuple[str, Any], ...]:
    """Return ``(name, descriptor)`` of the ``__slots__`` that the classes of ``cls``'s MRO before ``below``
    declare, in name order."""
    found: dict[str, Any] = {}
    for base in cls.__mro__:
        if base is below:
            break
        declared = vars(base).get("__slots__", ())
        for name in ((declared,) if isinstance(declared, str) else declared):
            if not isinstance(name, str) or name in ("__dict__", "__weakref__"):
                continue
            if name.startswith("__") and not name.endswith("__"):
                name = f"_{base.__name__.lstrip('_')}{name}"  # mangled, as the class body stores it
            slot = vars(base).get(name)
            if isinstance(slot, types.MemberDescriptorType):
                found.setdefault(name, slot)
    return tuple(sorted(found.items()))


# class -> (the library class it derives from, the slots its own classes declare below that one)
_slots_below: weakref.WeakKeyDictionary[type, tuple[type, tuple[tuple[str, Any], ...]]] = weakref.WeakKeyDictionary()


def feed_slot_values(h: Hasher, v: Any, base: type) -> None:
    """Feed the values ``v`` holds in the ``__slots__`` its class declares below ``base``, a library's class whose
    handler keys an instance by its ``__dict__`` (an array's, a tensor's, a module's): slot values are not in it.
    In name order, an unset slot absent; nothing at all where none is set, so other instances keep their digest."""
    cls = type(v)
    if cls is base:
        return
    entry = _slots_below.get(cls)
    if entry is None or entry[0] is not base:
        entry = (base, _declared_slots(cls, base))
        _slots_below[cls] = entry
    values = {}
    for name, slot in entry[1]:
        try:
            values[name] = slot.__get__(v, cls)  # the slot itself: no __getattr__ of the user's
        except AttributeError:
            continue  # unset
    if values:
        h.tag(b"+s")
        h.child(values, "<slots>")


_h_generator = _noting_generators(_h_reduce)
_h_generator_keeping_attributes = _noting_generators(_h_reduce_keeping_attributes)
_h_decimal = _noting_decimals(_h_reduce)
_h_decimal_keeping_attributes = _noting_decimals(_h_reduce_keeping_attributes)


def h_reduced(h: Hasher, v: Any, reduced: Any) -> None:
    """Hash an object by its type and ``reduced``, its reduction as ``_reduction`` returns it."""
    if isinstance(reduced, str):  # a singleton known by name
        h.tag(b"G")
        h.text(f"{type(v).__module__}.{reduced}")
        return
    h.tag(b"O")
    h.text(qualified_name(type(v)))
    h.child(reduced[0], "<reduce>")
    h.child(reduced[1], "<args>")
    state = reduced[2] if len(reduced) > 2 else None
    if type(state) is dict and not state and isinstance(v, BaseException) and state is vars(v):
        # An exception's reduction holds its __dict__ from the first time anything reads that (which makes
        # it): (cls, args) before, (cls, args, {}) after, for the same exception.
        state = None
    h.child(_without_bookkeeping(own_state(h, v, _slots_in_name_order(type(v), state))), "<state>")
    for index, items in ((3, "<items>"), (4, "<dict items>")):
        if len(reduced) > index and reduced[index] is not None:
            try:
                listed = list(reduced[index])
            except Exception as exc:
                raise _Unhashable(v, f"its reduction's {items} cannot be listed ({exc})") from None
            h.child(listed, items)
    if len(reduced) > 5 and reduced[5] is not None:
        h.child(reduced[5], "<state setter>")


def _slots_in_name_order(cls: type, state: Any) -> Any:
    """Return a reduction's ``(dict, slots)`` state with the slots in name order where a class declares
    ``__slots__`` as a set: pickle lists them in the set's order, which follows ``PYTHONHASHSEED``."""
    if (type(state) is tuple and len(state) == 2 and type(state[1]) is dict and len(state[1]) > 1
            and (state[0] is None or type(state[0]) is dict)
            and any(isinstance(vars(base).get("__slots__"), (set, frozenset)) for base in cls.__mro__)):
        return state[0], dict(sorted(state[1].items(), key=lambda item: str(item[0])))
    return state


def _attributes_left_out(found: Any, state: Any) -> dict[str, Any] | None:
    """Return an instance's attributes ``found`` where its reduction's ``state`` does not hold them, else None:
    a state that is the dict or holds it (a partial's), or a dict naming some of its attributes, is the
    author's choice of what counts."""
    if not found or type(found) is not dict or state is found:
        return None
    if type(state) is tuple and any(item is found for item in state):
        return None
    named = state[0] if type(state) is tuple and len(state) == 2 else state
    if type(named) is dict and any(name in named for name in found):
        return None
    return _without_bookkeeping(dict(found))  # type: ignore[no-any-return]


def _reduction_drops_attributes(cls: type) -> bool:
    """Whether ``cls`` inherits its reduction from a class of another package, which cannot know of the
    attributes its instances hold. A reduction the class defines, or inherits within its own package, is its
    author's (typing's aliases and pandas' dtypes know what their caches hold); object's and the builtins'
    (an exception's, a bytearray's) save the dict."""
    owner = _reduction_owner(cls)
    return (owner is not None and owner is not cls and owner.__module__ != "builtins"
            and _package(owner) != _package(cls))


def _package(cls: type) -> str:
    return str(cls.__module__).partition(".")[0]


def _reduction_owner(cls: type) -> type | None:
    """Return the class whose method makes ``cls``'s reduction (None: object's default, which saves the
    instance dict)."""
    if cls in copyreg.dispatch_table:
        return cls
    for name in ("__reduce_ex__", "__reduce__", "__getstate__"):
        for base in cls.__mro__:
            if name in vars(base):
                if base is not object:
                    return base
                break
    return None


def _h_enum(h: Hasher, v: Any) -> None:
    """Hash an enum member by its class, name, value and the attributes it holds of its own.

    Not by its reduction, ``(cls, (value,))``: a member made by ``__new__`` or ``__init__`` with more
    than its value (the enum HOWTO's ``factor``, ``Planet.mass``) must count those too.
    """
    h.tag(b"E")
    h.child(type(v), "<class>")
    h.child(v._name_, "._name_")
    h.child(v._value_, "._value_")
    h.child(enum_attributes(v), "<attributes>")


def enum_attributes(member: Any) -> dict[str, Any]:
    """Return what an enum member holds besides enum's own bookkeeping (``_value_``, ``_name_``,
    ``_sort_order_``, ``__objclass__``, ``__init__``: sunder and dunder names), in name order."""
    found = getattr(member, "__dict__", None)
    if not found:
        return {}
    return {name: found[name] for name in sorted(found)
            if not (type(name) is str and len(name) > 2 and name[0] == name[-1] == "_")}


def _reduction(v: Any) -> Any:
    """Return what pickle would save for ``v``, checked the way pickle checks it."""
    reducer = copyreg.dispatch_table.get(type(v))
    try:
        reduced = reducer(v) if reducer is not None else v.__reduce_ex__(4)
    except RecursionError:
        raise
    except Exception as exc:  # the object refuses to expose its state
        raise _Unhashable(v, f"its state cannot be read ({type(exc).__name__}: {exc})") from None
    if isinstance(reduced, str):
        return reduced
    if type(reduced) is not tuple or not 2 <= len(reduced) <= 6:
        raise _Unhashable(v, f"its __reduce__ returned {_describe(reduced)}, not a tuple of 2 to 6 items")
    if not callable(reduced[0]):
        raise _Unhashable(v, f"its __reduce__ returned a constructor that is not callable ({_describe(reduced[0])})")
    if type(reduced[1]) is not tuple:
        raise _Unhashable(v, f"its __reduce__ returned arguments that are not a tuple ({_describe(reduced[1])})")
    return reduced


def _describe(value: Any) -> str:
    size = f" of length {len(value)}" if type(value) is tuple else ""
    return f"a {type(value).__qualname__}{size}"


BOOKKEEPING_PREFIX = "__notebook_memo"


def _without_bookkeeping(state: Any) -> Any:
    """Drop our own per-instance caches from an object's state."""
    if type(state) is dict and any(type(k) is str and k.startswith(BOOKKEEPING_PREFIX) for k in state):
        kept = {k: v for k, v in state.items() if not (type(k) is str and k.startswith(BOOKKEEPING_PREFIX))}
        return kept or None  # an object whose __dict__ is empty reduces to None: it is such an object without them
    if type(state) is tuple and len(state) == 2:
        return (_without_bookkeeping(state[0]), _without_bookkeeping(state[1]))
    return state


def own_state(h: Hasher, v: Any, state: Any) -> Any:
    """Return an object's state (a dict, or pickle's ``(dict, slots)`` pair) without the attributes the walk
    was asked to leave out of ``v`` itself; any other state as it is."""
    left_out = h.left_out
    if left_out is None or left_out[0] is not v:
        return state
    if type(state) is dict:
        return _kept(state, left_out[1])
    if type(state) is tuple and len(state) == 2 and type(state[0]) is dict:
        return (_kept(state[0], left_out[1]), state[1])
    return state


def _kept(attributes: dict[Any, Any], names: frozenset[str]) -> dict[Any, Any] | None:
    kept = {k: item for k, item in attributes.items() if k not in names}
    # An object whose __dict__ is empty reduces to None, not {}: left without them, it is such an object.
    return None if not kept and len(kept) != len(attributes) else kept


_cached_names: weakref.WeakKeyDictionary[type, frozenset[str]] = weakref.WeakKeyDictionary()
_NO_NAMES: frozenset[str] = frozenset()


def cached_property_names(cls: type) -> frozenset[str]:
    """Return the instance attributes the ``functools.cached_property`` descriptors of ``cls`` fill when read."""
    try:
        names = _cached_names.get(cls)
    except TypeError:
        return _NO_NAMES
    if names is None:
        names = frozenset(attr.attrname for klass in cls.__mro__[:-1] for attr in vars(klass).values()
                          if isinstance(attr, functools.cached_property) and type(attr.attrname) is str)
        _cached_names[cls] = names or _NO_NAMES
    return names


def filled_cached_properties(value: Any) -> frozenset[str]:
    """Return which of its class's ``functools.cached_property`` values ``value`` holds now (read at least once).

    Reading one stores it in the instance's ``__dict__``, which changes the object's digest though it derives
    from the rest: a caller that notes these before a run can leave the ones filled during it out after."""
    names = cached_property_names(type(value))
    if not names:
        return _NO_NAMES
    try:
        held = vars(value)
    except TypeError:
        return _NO_NAMES
    return frozenset(name for name in names if name in held)


# -- plain data in one pass ---------------------------------------------------------------


def _plain(v: Any, out: bytearray, depth: int, held: list[int]) -> bool:
    """Append the canonical bytes of plain data (builtin scalars and containers of them) to ``out``.

    Returns False, with ``out`` part written, on meeting anything else, or nesting deeper than
    ``_PLAIN_DEPTH`` (a cycle among them): the general walk then starts over. The bytes are the
    general walk's exactly, so a value's digest does not depend on which one hashed it. The ids of the
    mutable containers met go to ``held``: where one repeats, the caller takes the general walk, which
    keys it the second time by a reference back.
    """
    cls = type(v)
    leaf = _LEAF.get
    if depth > _PLAIN_DEPTH:
        return False
    if cls is list or cls is tuple:
        if cls is list:
            held.append(id(v))
        out += b"[" if cls is list else b"("
        out += _number_bytes(len(v))
        if len(v) >= _RUN and type(v[0]) is str and _str_run(v, out):
            return True
        for item in v:
            encode = leaf(type(item))
            if encode is not None:
                out += encode(item)
            elif not _plain(item, out, depth + 1, held):
                return False
        return True
    if cls is dict:
        held.append(id(v))
        out += b"d"
        out += _number_bytes(len(v))
        for k, item in v.items():
            encode = leaf(type(k))
            if encode is not None:
                out += encode(k)
            elif not _plain(k, out, depth + 1, held):
                return False
            encode = leaf(type(item))
            if encode is not None:
                out += encode(item)
            elif not _plain(item, out, depth + 1, held):
                return False
        return True
    if cls is set or cls is frozenset:
        if cls is set:
            held.append(id(v))
        digests = []
        for item in v:
            encode = leaf(type(item))
            if encode is not None:
                digests.append(_digest(encode(item)))
                continue
            member = bytearray()
            if not _plain(item, member, depth + 1, held):
                return False
            digests.append(_digest(member))
        digests.sort()
        out += b"S" if cls is set else b"Z"
        out += _number_bytes(len(digests))
        out += b"".join(digests)
        return True
    if (cls is bytes or cls is bytearray) and len(v) < _BIG:  # big ones stream, in the general walk
        if cls is bytearray:
            held.append(id(v))
        out += b"b" if cls is bytes else b"y"
        out += _pack_q(len(v))
        out += v
        return True
    encode = leaf(cls)
    if encode is not None:
        out += encode(v)
        return True
    return False


# -- public entry points ------------------------------------------------------------------


def content_hash(value: Any, name: str = "value", leave_out: frozenset[str] = _NO_NAMES,
                 caches: Mapping[int, frozenset[str]] | None = None) -> Digest:
    """Return the 16-byte content digest of ``value``.

    ``leave_out``: attributes of ``value`` itself (not of what it holds) to digest it without, as if it did
    not hold them. ``caches``: by id, the only ``_cache`` entries of the pandas objects in it to digest (those
    ``things_met.caches`` noted when a call was keyed), so that entries a run filled since are left out.
    Raises ``UnhashableArgument`` naming ``name`` (and where inside it) when part of the value has no
    readable content.
    """
    if not leave_out and caches is None:
        encode = _LEAF.get(type(value))
        if encode is not None:
            return _digest(encode(value))
        out = bytearray()
        held: list[int] = []
        if _plain(value, out, 0, held) and (len(held) < 2 or len(set(held)) == len(held)):
            if held:
                walks = getattr(things_met, "walks", None)
                if walks is not None:
                    walks[id(value)] = (value, held)
            return _digest(out)
    h = _walker(value, leave_out, caches)
    try:
        try:
            h.update(value)
        except RecursionError:
            if h.deepest < _TOO_DEEP:
                raise  # the caller's stack was already full (a deep recursion): not this value's fault
            h = _walked_with_a_deep_stack(value, leave_out, caches)
    except _Unhashable as exc:
        path = name + "".join(reversed(exc.segments))
        raise UnhashableArgument(path, exc.value, exc.reason) from None
    except _TooDeep:
        raise UnhashableArgument(name, value, f"it is nested too deeply to hash (more than about "
                                 f"{_DEEP_FRAMES // 5:,} levels); give its class a __memo_key__ that "
                                 "returns it flat") from None
    walks = getattr(things_met, "walks", None)
    if walks is not None:
        walks[id(value)] = (value, h)
    return h.digest()


def _walker(value: Any, leave_out: frozenset[str], caches: Mapping[int, frozenset[str]] | None) -> Hasher:
    h = Hasher()
    if leave_out:
        h.left_out = (value, leave_out)
    h.caches = caches
    return h


class _TooDeep(Exception):
    """A value too deeply nested even for the walk on a deep stack."""


_DEEP_STACK = 512 << 20  # bytes of stack for a walk retried on its own thread (reserved, touched only as used)
_DEEP_FRAMES = 100_000  # the recursion limit meanwhile: about 20,000 levels of objects (5 frames each)
_deep_lock = threading.Lock()
# Thread-local state a walk reads and writes (what keying met; the resolution running, from the layers above):
# a walk retried on another thread starts with the caller's and hands it back.
_CARRIED: list[threading.local] = [things_met]


def carry_into_deep_walks(state: threading.local) -> None:
    """Let a walk retried on a thread of its own see (and update) the caller's ``state``."""
    _CARRIED.append(state)


def _walked_with_a_deep_stack(value: Any, leave_out: frozenset[str],
                              caches: Mapping[int, frozenset[str]] | None) -> Hasher:
    """Return a Hasher that has walked ``value`` on a thread with a large stack and a raised recursion limit.

    A value nested a few hundred levels (a linked list of the user's objects, a deep dict) runs out of the
    interpreter's default limit of 1,000 frames; the walk is the same function, so the digest is the one a
    roomier stack would give. Raises ``_TooDeep`` where even this is not enough.
    """
    h = _walker(value, leave_out, caches)
    states = [dict(vars(local)) for local in _CARRIED]
    failure: list[BaseException] = []

    def walk() -> None:
        for local, state in zip(_CARRIED, states, strict=True):
            vars(local).update(state)
        try:
            h.update(value)
        except BaseException as exc:  # handed to the caller's thread, which raises it
            failure.append(exc)
        finally:
            states[:] = [dict(vars(local)) for local in _CARRIED]

    with _deep_lock:  # one at a time: the recursion limit is the whole interpreter's
        limit = sys.getrecursionlimit()
        size = threading.stack_size()
        sys.setrecursionlimit(max(limit, _DEEP_FRAMES))
        try:
            threading.stack_size(_DEEP_STACK)
            try:
                worker = threading.Thread(target=walk, name="notebook_memo deep key", daemon=True)
                worker.start()
            finally:
                threading.stack_size(size)
            worker.join()
        finally:
            sys.setrecursionlimit(limit)
    for local, state in zip(_CARRIED, states, strict=True):
        vars(local).update(state)
    if failure:
        if isinstance(failure[0], RecursionError):
            raise _TooDeep from None
        raise failure[0]
    return h


def leaf_digests(bound: list[tuple[str, Any]]) -> dict[str, Digest] | None:
    """Return each named value's ``content_hash`` when all are plain leaves (str, int, float, bool, None,
    complex), else None: such values hold no code, generator or shared object the caller must know of."""
    leaf = _LEAF.get
    digests = {}
    for name, value in bound:
        encode = leaf(type(value))
        if encode is None:
            return None
        digests[name] = _digest(encode(value))
    return digests


IMMUTABLE_LEAVES = frozenset({type(None), bool, int, float, complex, str, bytes, range, type(Ellipsis)})


# Candidate pairs of arrays whose byte ranges meet are checked element by element up to this much work;
# past it they count as overlapping (a miss at worst).
_OVERLAP_WORK = 10_000


class MemoryViews:
    """The arrays or tensors met over one memory in a walk, each with what refers to it and the bytes it spans."""

    __slots__ = ("first", "high", "low", "owner", "views")

    def __init__(self, owner: Any) -> None:
        self.owner = owner  # held so that its id stays its own
        self.first: tuple[Any, Any] | None = None  # the one view met so far, its bytes not yet asked (most walks)
        self.low = self.high = 0  # the bytes all views span: a new view past them overlaps none (the usual case)
        self.views: list[tuple[Any, Any, int, int]] = []

    def meet(self, family: str, ref: Any, value: Any) -> list[tuple[Any, Any]]:
        """Note ``value`` (referred to by ``ref``) as met over this memory; return (reference, view) of each view
        met before it that shares a byte with it."""
        if self.first is None and not self.views:
            self.first = (ref, value)
            return []
        if self.first is not None:
            self._note(family, *self.first)
            self.first = None
        views = self.views
        low, high = _extent(family, value)
        met = [] if low >= high or low >= self.high or high <= self.low else [
            (seen_ref, view) for seen_ref, view, start, end in views
            if low < end and start < high and _shares(family, value, view)]
        self._note(family, ref, value, (low, high))
        return met

    def _note(self, family: str, ref: Any, value: Any, extent: tuple[int, int] | None = None) -> None:
        low, high = extent or _extent(family, value)
        if low >= high:
            return  # empty: no byte to share
        if self.views:
            self.low, self.high = min(self.low, low), max(self.high, high)
        else:
            self.low, self.high = low, high
        self.views.append((ref, value, low, high))


def _extent(family: str, value: Any) -> tuple[int, int]:
    """Return the first byte a view reads and one past its last (equal when it reads none)."""
    if family == "array":
        start: int = value.__array_interface__["data"][0]
        shape, strides, itemsize = value.shape, value.strides, value.itemsize
    else:
        start, shape, strides, itemsize = value.data_ptr(), value.shape, value.stride(), value.element_size()
        strides = [stride * itemsize for stride in strides]
    if any(n == 0 for n in shape):
        return start, start
    low = start + sum((n - 1) * stride for n, stride in zip(shape, strides) if stride < 0)
    high = start + sum((n - 1) * stride for n, stride in zip(shape, strides) if stride > 0) + itemsize
    return low, high


def _shares(family: str, value: Any, other: Any) -> bool:
    """Whether two views whose byte ranges meet share a byte (interleaved ones do not); when that is too
    long to tell, True."""
    if family != "array":
        return True
    try:
        return bool(sys.modules["numpy"].shares_memory(value, other, max_work=_OVERLAP_WORK))
    except Exception:  # numpy's TooHardError
        return True


def _memory_family(cls: type) -> str | None:
    """Return "array", "tensor" or "module" for the classes whose objects may share memory."""
    np = sys.modules.get("numpy")
    if np is not None and issubclass(cls, np.ndarray):
        return "array"
    torch = sys.modules.get("torch")
    if torch is not None:
        if issubclass(cls, torch.Tensor):
            return "tensor"
        if issubclass(cls, torch.nn.Module):
            return "module"
    return None


def _memory(family: str, value: Any) -> Any:
    """Return what identifies the memory an array or tensor reads (None: no one memory to compare)."""
    try:
        if family == "array":
            root = value
            while isinstance(root.base, sys.modules["numpy"].ndarray):
                root = root.base
            return "array", id(root.base if root.base is not None else root)  # the array that owns it, or its buffer
        pointer = value.untyped_storage().data_ptr()
        return ("tensor", str(value.device), pointer) if pointer else None
    except Exception:  # sparse, quantized, meta, a strange base
        return None


def _place(family: str, value: Any) -> tuple[int, bytes]:
    """Return where a view's first byte lies and how it steps (asked only of views over one memory)."""
    if family == "array":
        return value.__array_interface__["data"][0], repr((value.strides, value.dtype.str)).encode()
    return value.data_ptr(), repr((value.stride(), str(value.dtype))).encode()


def framed(parts: list[bytes]) -> bytes:
    """Return the bytes ``combine`` digests: each part after its length."""
    return b"".join([_pack_q(len(part)) + part for part in parts])


def framed_head(part_length: int) -> bytes:
    """Return what ``framed`` writes before a part of ``part_length`` bytes."""
    return _pack_q(part_length)


def combine(parts: list[bytes]) -> Digest:
    """Return one digest of a sequence of byte strings, each length-prefixed."""
    return xxhash.xxh3_128_digest(framed(parts))
