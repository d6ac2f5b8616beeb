"""Values to bytes and back: cloudpickle, out-of-band buffers, record headers, checksums, signatures.

A stored record is a header (kept in the index database) plus a payload: the pickle stream
followed by the out-of-band buffers of protocol 5, each aligned to 64 bytes, so a 2 GB array is
written straight from its memory and read straight into its final memory (or memory-mapped)
instead of passing through an in-band pickle.

Integrity: the header names the record's key and payload file, and carries the payload's
xxh3-128 and a check over everything in the header. With a secret, the check is a keyed BLAKE2b
of the header and a second one covers header and payload; the key is derived from the whole
secret. Nothing is unpickled before the header belongs to the key asked for and the payload
verifies; payload files are opened only if they are regular files of the store's own.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import gc
import hashlib
import hmac
import io
import json
import math
import mmap
import os
import pickle
import queue
import re
import stat
import struct
import sys
import threading
import time
import types
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import cloudpickle
import xxhash

from ._array_views import memory_owner, stand_ins, view_plan
from ._closed_files import reduce_closed_file
from ._config import CLOCK_SKEW, LATEST_TIME
from ._fingerprint import class_fingerprint
from .hashing import combine

__all__ = ()

MAGIC = b"NBM2"
FORMAT_VERSION = 2
# A record whose metadata holds preconditions (files, random states). Readers that predate them
# refuse it (an unknown format) rather than serve it without checking them.
CONDITIONED_VERSION = 3
ALIGN = 64
FLAG_INLINE = 1
FLAG_SIGNED = 2
# magic, version, flags, created, expires, duration, pickle length, buffers, meta length, key length,
# file name length, key id, payload checksum, header check, signature; then key, file name, buffer
# lengths, metadata and (inline records) the payload.
_HEADER = struct.Struct("<4sHHdddQIIIH8s16s32s32s")
_LEN = struct.Struct("<Q")
_ZERO32 = bytes(32)
_ZERO64 = bytes(64)
_CHECKED_AT = _HEADER.size - 64  # where ``check`` and ``signature`` begin
_NO_KEYID = bytes(8)


_PIPELINE_MIN = 16 << 20  # payloads this large are hashed on a second thread while they are written
# Reads: each chunk is checked right after it is read, while it is still in this core's cache (a
# chunk of 2 MiB or more is not, and hashing it costs twice as much); smaller chunks cost more calls
# (256 KiB chunks took 1 ms more CPU than 1 MiB ones per 256 MiB loaded, on a core with 2 MiB of L2).
_READ_CHUNK = 1 << 20
_WRITE_CHUNK = 32 << 20  # writes: fewer, larger writes keep up with np.save
_COPY_AHEAD_MIN = 4 << 20  # received payloads with this many bytes of buffers get their copies made ahead


class _Hasher:
    """xxh3-128 of chunks fed in order; large inputs are hashed on a thread while they are written."""

    def __init__(self, background: bool) -> None:
        self._h = xxhash.xxh3_128()
        self._queue: queue.SimpleQueue[Any] | None = None
        self._thread: threading.Thread | None = None
        if background:
            self._queue = queue.SimpleQueue()
            self._thread = threading.Thread(target=self._run, name="notebook_memo-hash", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        assert self._queue is not None
        while (item := self._queue.get()) is not None:
            self._h.update(item)

    def update(self, data: Any) -> None:
        if self._queue is None:
            self._h.update(data)
        else:
            self._queue.put(data)

    def digest(self) -> bytes:
        if self._queue is not None and self._thread is not None:
            self._queue.put(None)
            self._thread.join()
        return self._h.digest()


def _chunks(view: memoryview, size: int) -> Iterator[memoryview]:
    for start in range(0, view.nbytes, size):
        yield view[start:start + size]


class CorruptRecord(Exception):
    """A stored record failed its checksum, signature or format check."""


class NotRestorable(Exception):
    """A value whose pickle would come back as something else (an open file as a text snapshot)."""


class ClassChanged(Exception):
    """A stored value names a notebook class, and the class that name finds now is defined otherwise."""


def _unfaithful(obj: Any) -> str | None:
    """Return what ``obj`` is when a pickle of it would not restore it faithfully, else None."""
    if isinstance(obj, io.IOBase) and not isinstance(obj, (io.BytesIO, io.StringIO)):
        # A closed one reaches here only where it could not be rebuilt alike (opened with mode "x", or not by open).
        return f"{'a closed' if obj.closed else 'an open'} file ({type(obj).__qualname__})"
    socket = sys.modules.get("socket")
    if socket is not None and isinstance(obj, socket.socket):
        return "an open socket"
    if type(obj) in _PROXIES:  # it passes pickling on to its referent: a strong copy would come back
        return "a weak proxy (weakref.proxy)"
    return None


_PROXIES = frozenset({weakref.ProxyType, weakref.CallableProxyType})
# A dict view's type -> the method that makes one of a mapping (an OrderedDict's views are types of their own).
_DICT_VIEWS: dict[type, Callable[[Any], Any]] = {
    type(getattr(kind(), name)()): getattr(kind, name) for kind in (dict, OrderedDict)
    for name in ("keys", "values", "items")
}


def viewed(obj: Any) -> Any:
    """Return the object whose contents ``obj`` shows live: a dict view's or mapping proxy's mapping, a
    memoryview's exporter; None for any other object (or a released memoryview)."""
    kind = type(obj)
    if kind in _DICT_VIEWS:
        obj = obj.mapping  # a mapping proxy of the view's own dict
        kind = types.MappingProxyType
    if kind is types.MappingProxyType:
        # No attribute gives a proxy's mapping; its one referent is that mapping.
        referents = gc.get_referents(obj)
        return referents[0] if len(referents) == 1 else None
    if kind is memoryview:
        try:
            return obj.obj
        except ValueError:  # released
            return None
    return None


def _reduce_view(obj: Any) -> tuple[Any, tuple[Any, ...]]:
    """Reduce a dict view or mapping proxy to a view of its mapping itself (cloudpickle copies the mapping): a
    mapping that is a cell's input is then saved by name, and the loaded view looks at the notebook's object."""
    mapping = viewed(obj)
    if mapping is None:
        raise NotRestorable(f"the mapping a {type(obj).__name__} shows cannot be found: it cannot be stored as a view")
    if type(obj) is types.MappingProxyType:
        return types.MappingProxyType, (mapping,)
    return _DICT_VIEWS[type(obj)], (mapping,)


def _reduce_memoryview(view: memoryview) -> tuple[Any, tuple[Any, ...]]:
    """Reduce a memoryview to one made anew over its exporter, saved as itself (cloudpickle saves its bytes, which
    come back as ``bytes``). Only a view of the whole of its exporter's memory can be made so; any other is refused."""
    base = viewed(view)
    if base is None:
        raise NotRestorable("a released memoryview, or one of memory no object owns, cannot be stored")
    try:
        whole = memoryview(base)
    except TypeError as exc:
        raise NotRestorable(f"the memoryview's exporter ({type(base).__qualname__}) gives no buffer again") from exc
    if not (view.c_contiguous and whole.c_contiguous and view.nbytes == whole.nbytes):
        raise NotRestorable("a memoryview of part of a buffer (a slice, a strided view) cannot be stored as a view of "
                            "it; store the buffer (or a copy, bytes(view)) instead")
    shape = view.shape or ()
    try:
        memoryview_of(base, view.format, shape, view.readonly)  # what loading does
    except (TypeError, ValueError) as exc:
        raise NotRestorable(f"a memoryview of format {view.format!r} and shape {shape} cannot be made again over "
                            "its buffer") from exc
    return memoryview_of, (base, view.format, shape, view.readonly)


def memoryview_of(base: Any, fmt: str, shape: tuple[int, ...], readonly: bool) -> memoryview:
    """Return a memoryview of the whole of ``base`` with this format and shape (read-only if asked)."""
    view = memoryview(base)
    if (view.format, view.shape) != (fmt, tuple(shape)):
        octets: Any = view.cast("B")  # typeshed knows only literal formats
        view = octets.cast(fmt, list(shape))
    return view.toreadonly() if readonly and not view.readonly else view


class _Pickler(cloudpickle.Pickler):
    """cloudpickle, but classes that can be found by name are saved by reference.

    cloudpickle saves classes defined in ``__main__`` by value; after a kernel restart
    the loaded object would then be an instance of a dead copy of the class rather than
    of the class the notebook just defined again.
    """

    by_value: frozenset[int] = frozenset()
    # The plain numpy arrays met, with the array owning the memory each reads (a first pass notes them), and how
    # to pickle those stored as views of that owner (a second pass, where some share memory: see _array_views).
    arrays: list[tuple[Any, Any]] | None = None
    tensors: list[tuple[Any, Any]] | None = None  # the same of CPU tensors, with what identifies their memory
    views: dict[int, tuple[Any, ...]] = {}

    def reducer_override(self, obj: Any) -> Any:
        np = sys.modules.get("numpy")
        if np is not None and type(obj) is np.ndarray:
            if self.views:
                return self.views.get(id(obj), NotImplemented)
            if self.arrays is not None:
                root = memory_owner(obj)
                if root is not None:
                    self.arrays.append((obj, root))
            return NotImplemented
        if isinstance(obj, type):
            if id(obj) not in self.by_value and findable(obj, obj.__module__, obj.__qualname__):
                if obj.__module__ == "__main__":  # saved by name with its definition, checked when loaded
                    return notebook_class, (obj.__qualname__, _definition(obj))
                return NotImplemented
        elif type(obj) is functools.cached_property:
            # On Python < 3.12 it holds a lock, which cannot be pickled: save what it is made of.
            return cached_property_of, (obj.func, obj.attrname, obj.__doc__)
        elif type(obj) in _DICT_VIEWS or type(obj) is types.MappingProxyType:
            return _reduce_view(obj)
        elif type(obj) is memoryview:
            return _reduce_memoryview(obj)
        elif type(obj) is _LRU_WRAPPER and getattr(obj.__wrapped__, "__module__", None) == "__main__":
            # A notebook's @lru_cache function: pickle would save its name, which finds whatever the notebook
            # binds to it when loaded (another definition, or nothing after a restart). Its code, and a new cache.
            return lru_cache_of, (obj.__wrapped__, obj.cache_parameters())
        else:
            torch = sys.modules.get("torch")
            if torch is not None and isinstance(obj, torch.Tensor):
                from ._torch_values import reduce_tensor, storage_of

                if self.views and id(obj) in self.views:
                    return self.views[id(obj)]
                if self.tensors is not None:
                    memory = storage_of(obj)
                    if memory is not None:
                        self.tensors.append((obj, memory))
                reduced = reduce_tensor(obj)
                if reduced is not None:
                    return reduced
            closed = reduce_closed_file(obj)
            if closed is not None:  # a `with open(...) as fh:` cell leaves one: cloudpickle refuses it
                return closed
            what = _unfaithful(obj)
            if what is not None:
                # cloudpickle would save an open text file as a StringIO of its contents.
                raise NotRestorable(f"{what} cannot be stored and restored as itself")
        return super().reducer_override(obj)


_LRU_WRAPPER = type(functools.lru_cache(lambda: None))


def _definition(cls: type) -> bytes:
    """Return a digest of a notebook class's definition: its own, its notebook bases' and metaclass's.

    Their code, annotations and fields, and the names of their data (not its content, which the
    class's own code may change at run time: an instance counter would never match again).
    """
    notebook = [c for c in (*cls.__mro__, type(cls)) if c.__module__ == "__main__"]
    try:
        return combine([class_fingerprint(c, by_code=True) for c in notebook])
    except Exception as exc:
        raise NotRestorable(f"the definition of the notebook class {cls.__qualname__} cannot be "
                            f"fingerprinted ({type(exc).__name__}: {exc}), so a changed one could not be told") from exc


def notebook_class(qualname: str, definition: bytes) -> type:
    """Return the notebook's class of this name; raise ClassChanged unless it is defined as it was stored.

    A class found by name is whatever the notebook binds now: after the class cell was edited
    and run again, a value made from the old class must not come back as an instance of the new.
    """
    target: Any = sys.modules.get("__main__")
    for part in qualname.split("."):
        target = getattr(target, part, None)
    if not isinstance(target, type):
        raise AttributeError(f"the notebook has no class {qualname!r} now")
    try:
        same = _definition(target) == definition
    except NotRestorable:
        same = False
    if not same:
        raise ClassChanged(f"the class {qualname} was defined again otherwise since the value was stored")
    return target


def lru_cache_of(func: Any, parameters: dict[str, Any]) -> Any:
    """Return ``func`` under a new ``functools.lru_cache`` of these parameters (``cache_parameters()``)."""
    return functools.lru_cache(maxsize=parameters.get("maxsize"), typed=bool(parameters.get("typed")))(func)


def cached_property_of(func: Any, name: str | None, doc: str | None) -> functools.cached_property[Any]:
    """Return a ``functools.cached_property`` of ``func`` as if defined under ``name``."""
    made: functools.cached_property[Any] = functools.cached_property(func)
    made.attrname = name
    made.__doc__ = doc
    return made


# ``active`` while a memoized function pickles itself by value in one cloudpickle stream: what it reaches is
# carried in that stream (objects it shares stay shared), so nothing it reaches starts a stream of its own.
by_value = threading.local()


def in_a_stream_by_value() -> bool:
    """Return True while a memoized function is being pickled by value (see ``by_value``)."""
    return getattr(by_value, "active", False)


def importable(obj: Any, module_name: str | None, qualname: str) -> bool:
    """Return True when ``module.qualname`` names ``obj`` itself, so a worker can import it (``__main__`` it cannot)."""
    return module_name not in (None, "__main__") and findable(obj, module_name, qualname)


class _WorkerPickler(cloudpickle.Pickler):
    """cloudpickle, but a class the main module defines goes with its name and definition too (see ``main_class``)."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, type) and obj.__module__ == "__main__" and findable(obj, "__main__", obj.__qualname__):
            try:
                definition = class_fingerprint(obj, by_code=True)
            except Exception:
                return super().reducer_override(obj)  # whatever stops the comparison, the copy still serves
            return main_class, (obj.__qualname__, definition, cloudpickle.dumps(obj))
        return super().reducer_override(obj)


def dumps_for_a_worker(obj: Any) -> bytes:
    """Return ``obj`` pickled for another process, which may or may not define the main module's classes it uses.

    Plain pickle names such a class, which a spawned worker of a notebook cannot find; cloudpickle carries a copy,
    which in a forked worker (or a script's spawned one) would not be the class its pool's initializer set up.
    """
    out = io.BytesIO()
    _WorkerPickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return out.getvalue()


def main_class(qualname: str, definition: bytes, data: bytes) -> type:
    """Return the class ``qualname`` of this process's main module when it has the sent ``definition``; else the
    sent copy (a worker that lacks it, or one forked before the notebook defined it again)."""
    for name in ("__main__", "__mp_main__"):
        target: Any = sys.modules.get(name)
        for part in qualname.split("."):
            target = getattr(target, part, None)
        try:
            if isinstance(target, type) and class_fingerprint(target, by_code=True) == definition:
                return target
        except Exception:  # whatever the worker's namespace holds there, the copy still serves
            continue
    copy: type = pickle.loads(data)
    return copy


def findable(obj: Any, module_name: str | None, qualname: str) -> bool:
    """Return True when ``module_name.qualname`` names ``obj`` itself in this process."""
    module = sys.modules.get(module_name or "")
    if module is None or "<locals>" in qualname:
        return False
    target: Any = module
    for part in qualname.split("."):
        target = getattr(target, part, None)
        if target is None:
            return False
    return target is obj


@dataclass
class Payload:
    """A pickled value: the pickle stream and its out-of-band buffers."""

    pickle: bytes
    buffers: list[memoryview]

    @property
    def nbytes(self) -> int:
        return self.layout()[-1] if self.buffers else len(self.pickle)

    def layout(self) -> list[int]:
        """Return the start offset of each buffer, then the total payload length."""
        offsets = []
        position = len(self.pickle)
        for buf in self.buffers:
            position = _aligned(position)
            offsets.append(position)
            position += buf.nbytes
        offsets.append(position)
        return offsets

    def pieces(self) -> Iterator[memoryview | bytes]:
        """Yield the payload's bytes in order, padding included, without copying buffers."""
        yield self.pickle
        position = len(self.pickle)
        for buf in self.buffers:
            pad = _aligned(position) - position
            if pad:
                yield b"\0" * pad
            yield buf
            position += pad + buf.nbytes

    def checksum(self) -> bytes:
        if not self.buffers:
            return xxhash.xxh3_128_digest(self.pickle)
        h = xxhash.xxh3_128()
        h.update(self.pickle)
        for buf in self.buffers:
            h.update(buf)
        return h.digest()

    def to_bytes(self) -> bytes:
        return b"".join(self.pieces()) if self.buffers else self.pickle


def _aligned(position: int) -> int:
    return (position + ALIGN - 1) // ALIGN * ALIGN


_PLAIN = frozenset({int, float, str, bytes, bool, type(None), complex})


class _ReferringPickler(_Pickler):
    """Saves the objects named in ``external`` (by id) as their names: loaded, they are the live objects."""

    external: dict[int, str] = {}

    def persistent_id(self, obj: Any) -> str | None:
        return self.external.get(id(obj))


_external = threading.local()  # .objects: the live objects a payload being loaded refers to by name


@contextlib.contextmanager
def referring_to(objects: dict[str, Any]) -> Iterator[None]:
    """Load payloads within this block with their references to ``objects`` (see ``dumps``) resolved."""
    outer = getattr(_external, "objects", None)
    _external.objects = objects
    try:
        yield
    finally:
        _external.objects = outer


def dumps(value: Any, by_value: frozenset[int] = frozenset(), external: dict[int, str] | None = None,
          named: Sequence[Any] = ()) -> Payload:
    """Pickle ``value`` with protocol 5, keeping large buffers out of band.

    ``by_value`` holds ids of classes to copy into the pickle even though they can be
    found by name now (classes a cached cell defines: on restore they do not exist yet).
    ``external`` names objects saved by name only (a cell's inputs that its outputs hold): loading
    requires ``referring_to`` those names. ``named``: those objects, where known; a view of an array among them
    is stored as a view of it.
    """
    if type(value) in _PLAIN and not by_value:
        return Payload(pickle.dumps(value, protocol=5), [])  # no buffers, no code: the same bytes
    buffers: list[memoryview] = []

    def keep(buf: pickle.PickleBuffer) -> bool:
        try:
            buffers.append(buf.raw())
        except BufferError:  # not contiguous: let pickle copy it in band
            return True
        return False

    def pickled(arrays: list[tuple[Any, Any]] | None, tensors: list[tuple[Any, Any]] | None,
                views: dict[int, tuple[Any, ...]]) -> bytes:
        buffers.clear()
        stream = io.BytesIO()
        pickler = (_ReferringPickler if external else _Pickler)(stream, protocol=5, buffer_callback=keep)
        pickler.by_value = by_value
        pickler.arrays, pickler.tensors, pickler.views = arrays, tensors, views
        if external:
            pickler.external = external  # type: ignore[attr-defined]
        pickler.dump(value)
        return stream.getvalue()

    arrays: list[tuple[Any, Any]] = []
    tensors: list[tuple[Any, Any]] = []
    data = pickled(arrays, tensors, {})
    views: dict[int, tuple[Any, ...]] = {}
    held = stand_ins(external, named) if arrays else {}
    if len({id(root) for _, root in arrays}) < len(arrays) or any(id(root) in held for _, root in arrays):
        # Arrays over one memory (X and X[:5], X[:12] and X[8:]), or a view of an argument held by name: pickled
        # again, each view as its place in the memory stored once, so a load gives views of one memory again.
        views = view_plan(arrays, held)
    if len({memory[0] for _, memory in tensors}) < len(tensors):  # tensors over one memory: the same
        from ._torch_values import tensor_plan

        views.update(tensor_plan(tensors))
    if views:
        data = pickled(None, None, views)
    return Payload(data, buffers)


def loads(data: bytes | memoryview, buffers: Sequence[Any] = ()) -> Any:
    """Unpickle a payload produced by :func:`dumps`."""
    objects = getattr(_external, "objects", None)
    if objects is None:
        return pickle.loads(data, buffers=buffers)
    unpickler = pickle.Unpickler(io.BytesIO(data), buffers=buffers)

    def live(name: Any) -> Any:
        if type(name) is not str or name not in objects:
            raise pickle.UnpicklingError(f"the payload refers to {name!r}, which is not among the live objects")
        return objects[name]

    unpickler.persistent_load = live  # type: ignore[assignment]
    return unpickler.load()


def copy_value(payload: Payload) -> Any:
    """Return a fresh object from a payload that is still in memory."""
    return loads(payload.pickle, [bytearray(b) for b in payload.buffers])


@dataclass(frozen=True)
class Signer:
    """A signing key derived from the whole secret, and its public identifier."""

    key: bytes
    keyid: bytes


_signers: dict[bytes, Signer] = {}


def signer_for(secret: bytes) -> Signer:
    """Return the signer of ``secret``: a 64-byte key derived from all of it (BLAKE2b), and an 8-byte id."""
    signer = _signers.get(secret)
    if signer is None:
        if not secret:
            raise ValueError("the signing secret is empty: set a non-empty secret, or none to store unsigned values")
        key = hashlib.blake2b(secret, digest_size=64, person=b"nbm-signing-key").digest()
        keyid = hashlib.blake2b(key, digest_size=8, person=b"nbm-key-id").digest()
        signer = _signers[secret] = Signer(key, keyid)
    return signer


def _mac(signer: Signer, person: bytes, parts: Iterator[Any] | Sequence[Any]) -> bytes:
    mac = hashlib.blake2b(key=signer.key, digest_size=32, person=person)
    for part in parts:
        mac.update(part)
    return mac.digest()


class ForeignRecord(CorruptRecord):
    """A well-formed record this process cannot verify: signed with another secret, or not as configured."""


@dataclass(slots=True)
class Header:
    """The fixed part of a stored record, with the key and payload file it names."""

    flags: int
    created: float
    expires: float  # 0.0: never
    duration: float
    pickle_len: int
    buffer_lens: list[int]
    checksum: bytes  # xxh3-128 of the payload
    check: bytes  # xxh3-128 (unsigned) or keyed BLAKE2b (signed) of everything in the header
    signature: bytes  # signed records: keyed BLAKE2b of the header and the payload
    keyid: bytes
    key: str
    filename: str  # the payload file relative to the cache directory; "" when inline
    meta_raw: bytes | memoryview
    raw: memoryview  # the header as stored: ``check`` and ``signature`` in place
    conditioned: bool = False  # the metadata holds preconditions to check before serving it
    parsed: dict[str, Any] | None = field(default=None, repr=False, compare=False)  # meta(), once parsed

    @property
    def inline(self) -> bool:
        return bool(self.flags & FLAG_INLINE)

    @property
    def signed_part(self) -> bytes:
        """The header as ``check`` and ``signature`` cover it: with both zeroed."""
        raw = self.raw
        return bytes(raw[:_CHECKED_AT]) + _ZERO64 + bytes(raw[_HEADER.size:])

    @property
    def signed(self) -> bool:
        return bool(self.flags & FLAG_SIGNED)

    def stale_for(self, ttl: float | None) -> bool:
        """Return True when the entry is older than ``ttl`` seconds (one the code asks for now: an entry
        stored before ``ttl=`` was given has no expiry of its own)."""
        if ttl is None:
            return False
        now = time.time()
        return now - self.created > ttl or self.created > now + CLOCK_SKEW

    def expired(self, now: float | None = None) -> bool:
        """Return True when a TTL entry is past its expiry, or was stored by a clock ahead of ours.

        A creation time in our future means the writer's clock (or ours) is off; the entry's
        age cannot be told, so it is not served.
        """
        if not self.expires:
            return False
        now = time.time() if now is None else now
        return self.expires <= now or self.created > now + CLOCK_SKEW

    def meta(self) -> dict[str, Any]:
        """Return the record's metadata (function, fingerprints, timings, sizes); do not change it.

        Empty for metadata that is not a JSON object: only a writer without the secret can make such
        a record pass its checks, and what reads it then finds nothing it knows.
        """
        if self.parsed is None:
            try:
                parsed = json.loads(bytes(self.meta_raw))
            except ValueError:  # not UTF-8, or not JSON
                parsed = None
            self.parsed = parsed if isinstance(parsed, dict) else {}
        return self.parsed

    def offsets(self) -> list[int]:
        offsets = []
        position = self.pickle_len
        for n in self.buffer_lens:
            position = _aligned(position)
            offsets.append(position)
            position += n
        offsets.append(position)
        return offsets

    def intact(self, signer: Signer | None) -> bool:
        """Return True when the header verifies: its checksum, or its signature when ``signer`` made it."""
        if self.signed:
            if signer is None or signer.keyid != self.keyid:
                return False
            return hmac.compare_digest(_mac(signer, b"nbm-header", [self.signed_part]), self.check)
        raw = self.raw
        state = xxhash.xxh3_128(raw[:_CHECKED_AT])  # the signed part, fed in pieces rather than copied
        state.update(_ZERO64)
        state.update(raw[_HEADER.size:])
        return state.digest() == self.check[:16]

    def verify(self, key: str, filename: str | None, signer: Signer | None) -> None:
        """Check that this header is intact and belongs to ``key`` and its row's file; raise CorruptRecord."""
        if self.signed and (signer is None or signer.keyid != self.keyid):
            raise ForeignRecord("the record is signed with a secret this process does not have")
        if not self.signed and signer is not None:
            raise ForeignRecord("the record is not signed and a secret is configured")
        if not self.intact(signer):
            raise CorruptRecord("signature mismatch: the record was written without this secret or has been modified"
                                if self.signed else "header checksum mismatch: the stored bytes were damaged")
        if self.key != key:
            raise CorruptRecord(f"the index points this key at the record of another key ({self.key[:16]}): "
                                "the index is damaged")
        if self.filename != (filename or ""):
            raise CorruptRecord("the index points this record at another payload file: the index is damaged")


_META_JSON = json.JSONEncoder(separators=(",", ":"))  # in the order the metadata was built: one encoder, made once
_json_str = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]  # what that encoder writes a str as


def _dropping_text(name: str) -> Any:
    """Return dict's method ``name`` for EncodedMeta: it drops the text, no longer what the dict holds."""
    method = getattr(dict, name)

    def changed(self: EncodedMeta, *args: Any, **kwargs: Any) -> Any:
        self.raw = None
        return method(self, *args, **kwargs)

    changed.__name__ = name
    return changed


class EncodedMeta(dict):  # type: ignore[type-arg]
    """Record metadata that carries its JSON text, made as it was built; any change drops the text."""

    __slots__ = ("raw",)

    def __init__(self, items: dict[str, Any], raw: bytes | None) -> None:
        super().__init__(items)
        self.raw = raw

    __setitem__ = _dropping_text("__setitem__")
    __delitem__ = _dropping_text("__delitem__")
    __ior__ = _dropping_text("__ior__")
    update = _dropping_text("update")
    pop = _dropping_text("pop")
    popitem = _dropping_text("popitem")
    setdefault = _dropping_text("setdefault")
    clear = _dropping_text("clear")


def meta_after(head: tuple[dict[str, Any], str], args: dict[str, str], created: float, duration: float,
               size: int, extras: dict[str, str] | None = None) -> EncodedMeta:
    """Return a call's metadata: ``head`` (a dict and its text from ``head_json``), then its arguments' digests
    (by name), when it was made, how long it ran and its size.

    The head's text is made once (per function and code state), the rest's on each call: the same JSON
    as encoding the whole dict would give, in a fraction of the time."""
    fixed, text = head
    if extras:  # torch's modes, arguments sharing memory: the slower, general encoding
        return EncodedMeta({**fixed, "args": args, "extras": extras, "created": created, "duration": duration,
                            "size": size}, None)
    if "args" in fixed or type(created) is not float or type(duration) is not float or type(size) is not int \
            or not (math.isfinite(created) and math.isfinite(duration)):
        return EncodedMeta({**fixed, "args": args, "created": created, "duration": duration, "size": size}, None)
    names = ",".join([f'{_json_str(name)}:{_json_str(digest)}' for name, digest in args.items()])
    raw = f'{text}{"," if len(fixed) else ""}"args":{{{names}}},"created":{created!r},"duration":{duration!r},' \
          f'"size":{size}}}'
    meta = EncodedMeta(fixed, raw.encode())
    dict.update(meta, args=args, created=created, duration=duration, size=size)
    return meta


def head_json(head: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Return ``head`` and its JSON text without the closing brace, for ``meta_after``."""
    return head, _META_JSON.encode(head)[:-1]


def encode_header(key: str, filename: str | None, payload: Payload, meta: dict[str, Any], created: float,
                  expires: float | None, duration: float, inline: bool, signer: Signer | None,
                  checksum: bytes | None = None) -> bytes:
    """Return the record bytes kept in the index: header, key, file name, metadata, and an inline payload.

    ``checksum`` is the payload's xxh3-128 when the caller already computed it (while writing).
    """
    meta_raw = meta.raw if type(meta) is EncodedMeta and meta.raw is not None else _META_JSON.encode(meta).encode()
    key_raw, file_raw = key.encode(), (filename or "").encode()
    flags = (FLAG_INLINE if inline else 0) | (FLAG_SIGNED if signer else 0)
    buffers = payload.buffers
    lens = b"".join([_LEN.pack(b.nbytes) for b in buffers]) if buffers else b""
    checksum = checksum or (payload.checksum() if buffers else xxhash.xxh3_128_digest(payload.pickle))
    keyid = signer.keyid if signer else _NO_KEYID
    version = CONDITIONED_VERSION if "pre" in meta or "variants" in meta else FORMAT_VERSION
    fields = (MAGIC, version, flags, created, expires or 0.0, duration, len(payload.pickle),
              len(buffers), len(meta_raw), len(key_raw), len(file_raw), keyid, checksum)
    signed_part = _HEADER.pack(*fields, _ZERO32, _ZERO32) + key_raw + file_raw + lens + meta_raw
    if signer:
        check = _mac(signer, b"nbm-header", [signed_part])
        signature = _mac(signer, b"nbm-record", [signed_part, *payload.pieces()])
    else:
        check, signature = xxhash.xxh3_128_digest(signed_part) + bytes(16), _ZERO32
    body = [_HEADER.pack(*fields, check, signature), signed_part[_HEADER.size:]]
    if inline:
        body.append(payload.to_bytes() if buffers else payload.pickle)
    return b"".join(body)


def decode_header(data: bytes | memoryview) -> tuple[Header, memoryview]:
    """Parse record bytes; return the header and the inline payload (empty if in a file)."""
    view = memoryview(data)
    if len(view) < _HEADER.size:
        raise CorruptRecord("record shorter than its header")
    (magic, version, flags, created, expires, duration, pickle_len, nbufs, meta_len, key_len, file_len, keyid,
     checksum, check, signature) = _HEADER.unpack_from(view)
    if magic != MAGIC or version not in (FORMAT_VERSION, CONDITIONED_VERSION):
        raise CorruptRecord("not a notebook_memo record of a known format")
    position = _HEADER.size
    end_names = position + key_len + file_len
    end_lens = end_names + nbufs * _LEN.size
    end = end_lens + meta_len
    if end > len(view):
        raise CorruptRecord("record truncated")
    try:
        key = str(view[position:position + key_len], "utf-8")
        filename = str(view[position + key_len:end_names], "utf-8") if file_len else ""
    except UnicodeDecodeError:
        raise CorruptRecord("the record's key is damaged") from None
    buffer_lens = [_LEN.unpack_from(view, end_names + i * _LEN.size)[0] for i in range(nbufs)] if nbufs else []
    header = Header(flags, created, expires, duration, pickle_len, buffer_lens, checksum, check, signature, keyid,
                    key, filename, view[end_lens:end], view[:end], version == CONDITIONED_VERSION)
    return header, view[end:]


# The commonest record's magic, format and flags (inline, unsigned), and the fields read_plain checks
# after them: expires, duration, pickle length, buffers, meta length, key length, file name length,
# the payload checksum and the header check's first half (the other half is zero).
_PLAIN_PREFIX = struct.pack("<4sHH", MAGIC, FORMAT_VERSION, FLAG_INLINE)
_plain_fields = struct.Struct("<8x8xddQIIIH8x16s16s").unpack_from
_HEADER_SIZE = _HEADER.size
_xxh3_128 = xxhash.xxh3_128_digest
PlainRecord = tuple[bytes, bytes, float]  # (the verified pickle, the metadata JSON, the compute time)


def read_plain(data: bytes, key: bytes) -> PlainRecord | None:
    """Verify the commonest record in one pass: unsigned, inline, one pickle, no file, no TTL, no preconditions.

    Checks everything :func:`decode_header`, ``Header.verify`` and :func:`load_inline` check for
    such a record (format, flags, lengths, its own key, the header's checksum and the payload's),
    without building a Header. Returns None for a record of any other shape or one that does not
    verify: the full path then reads it and says what is wrong.
    """
    if len(data) < _HEADER_SIZE or not data.startswith(_PLAIN_PREFIX):
        return None
    expires, duration, pickle_len, nbufs, meta_len, key_len, file_len, checksum, check = _plain_fields(data)
    meta_at = _HEADER_SIZE + key_len
    end = meta_at + meta_len
    if (nbufs or file_len or expires or key_len != len(key) or len(data) != end + pickle_len
            or not data.startswith(key, _HEADER_SIZE)
            or _xxh3_128(b"".join((data[:_CHECKED_AT], _ZERO64, data[_HEADER_SIZE:end]))) != check):
        return None
    payload = data[end:]  # a copy of a few kB at most (larger payloads have files): cheaper than a view
    if _xxh3_128(payload) != checksum:
        return None
    return payload, data[meta_at:end], duration


class _PayloadCheck:
    """The check of a payload fed in order: its signature when the header is signed, else its checksum."""

    def __init__(self, header: Header, signer: Signer | None) -> None:
        self._header = header
        self._state: Any
        if header.signed:
            if signer is None:
                raise ForeignRecord("the record is signed with a secret this process does not have")
            self._state = hashlib.blake2b(key=signer.key, digest_size=32, person=b"nbm-record")
            self._state.update(header.signed_part)
        else:
            self._state = xxhash.xxh3_128()
        self.update = self._state.update

    def pad(self, n: int) -> None:
        """Feed the ``n`` zero bytes that align the next buffer: the signature covers them, the checksum not."""
        if n and self._header.signed:
            self.update(bytes(n))

    def verify(self) -> None:
        """Raise CorruptRecord unless everything fed matches the header."""
        if self._header.signed:
            if not hmac.compare_digest(self._state.digest(), self._header.signature):
                raise CorruptRecord("signature mismatch: the value was written without this secret or has been "
                                    "modified")
        elif self._state.digest() != self._header.checksum:
            raise CorruptRecord("checksum mismatch: the stored bytes were damaged")


def _verify_payload(header: Header, pickle_part: Any, buffers: Sequence[Any], signer: Signer | None) -> None:
    """Check a payload in memory against a verified header: its signature when signed, else its checksum."""
    check = _PayloadCheck(header, signer)
    check.update(pickle_part)
    position = header.pickle_len
    for offset, n, buf in zip(header.offsets(), header.buffer_lens, buffers):
        check.pad(offset - position)
        check.update(buf)
        position = offset + n
    check.verify()


def received_payload(header: Header, receive: Callable[[Callable[[int], None]], memoryview | None],
                     signer: Signer | None, serve: bool) -> tuple[Payload, list[Any] | None] | None:
    """Return the payload ``receive(sized)`` brings (None if it brings none) once it verifies against a
    verified header, with writable copies of its buffers for its first use when ``serve``; raise CorruptRecord.

    ``receive`` calls ``sized`` with the payload's length, when it knows it, before reading its bytes. For a
    large payload of the length the header says, room for the copies is then made (its pages touched)
    while the bytes are on their way, and once here they are copied on this thread while a second one
    verifies them: the copy costs about what the check does instead of adding page faults and a pass over
    memory to it. No copy is handed out, or unpickled, before the check passes."""
    offsets = header.offsets()
    total, lens = offsets[-1], header.buffer_lens
    room: list[Any] = []
    making: list[threading.Thread] = []
    ahead = serve and sum(lens) >= _COPY_AHEAD_MIN

    def sized(n: int) -> None:
        if n != total:  # before anything is read or allocated on the word of the header
            raise CorruptRecord(f"the payload holds {n} bytes, not the {total} its header says")
        if ahead:
            thread = threading.Thread(target=_make_room, args=(lens, room), name="notebook_memo-room", daemon=True)
            with contextlib.suppress(RuntimeError):  # no thread can start (the interpreter is ending): no copies
                thread.start()
                making.append(thread)

    try:
        try:
            data = receive(sized)
        finally:
            for thread in making:
                thread.join()
    except MemoryError:
        if not making:
            raise
        # The copies took the memory the bytes needed: received again without them (copied when loaded).
        room.clear()
        making.clear()
        ahead = False
        data = receive(sized)
    if data is None:
        return None
    view = memoryview(data)
    if len(view) != total:
        raise CorruptRecord("the payload has the wrong length")
    pickle_part = view[:header.pickle_len]
    buffers = [view[o:o + n] for o, n in zip(offsets, lens)]
    if len(room) != len(buffers) or not buffers:
        _verify_payload(header, pickle_part, buffers, signer)
        return Payload(bytes(pickle_part), buffers), None
    failed: list[BaseException] = []

    def verify() -> None:
        try:
            _verify_payload(header, pickle_part, buffers, signer)
        except BaseException as exc:  # handed to the receiving thread, which raises it
            failed.append(exc)

    checking = threading.Thread(target=verify, name="notebook_memo-hash", daemon=True)
    try:
        checking.start()
    except RuntimeError:  # no thread can start: verified here, and copied when loaded
        _verify_payload(header, pickle_part, buffers, signer)
        return Payload(bytes(pickle_part), buffers), None
    try:
        for out, buf in zip(room, buffers):
            _copy_into(out, buf)
    finally:
        checking.join()
    if failed:
        raise failed[0]
    return Payload(bytes(pickle_part), buffers), room


def _make_room(lens: Sequence[int], room: list[Any]) -> None:
    """Append memory for each of ``lens`` bytes to ``room``, every page of it already touched; leave it
    empty when there is not enough memory (the buffers are then copied when the value is loaded)."""
    try:
        for n in lens:
            out = _empty_buffer(n)
            if type(out) is not bytearray:  # bytearray's memory is zero-filled, hence touched, already
                out[::mmap.PAGESIZE] = 0
            room.append(out)
    except MemoryError:
        room.clear()


def _copy_into(out: Any, buf: memoryview) -> None:
    if type(out) is bytearray:
        out[:] = buf
    else:
        out[:] = sys.modules["numpy"].frombuffer(buf, dtype=sys.modules["numpy"].uint8)


def load_inline(header: Header, payload: memoryview, signer: Signer | None) -> Any:
    """Verify and unpickle a payload kept inside the index record."""
    if not header.buffer_lens and not header.signed:  # the common small value: one checksum, one unpickle
        if len(payload) != header.pickle_len:
            raise CorruptRecord("inline payload has the wrong length")
        if xxhash.xxh3_128_digest(payload) != header.checksum:
            raise CorruptRecord("checksum mismatch: the stored bytes were damaged")
        return loads(payload)
    offsets = header.offsets()
    if len(payload) != offsets[-1]:
        raise CorruptRecord("inline payload has the wrong length")
    pickle_part = payload[: header.pickle_len]
    buffers = [bytearray(payload[o:o + n]) for o, n in zip(offsets, header.buffer_lens)]
    _verify_payload(header, pickle_part, buffers, signer)
    return loads(pickle_part, buffers)


_PAYLOAD_PART = r"[0-9a-f]{28}\.val"
PAYLOAD_NAME = re.compile(_PAYLOAD_PART)  # a payload file's own name, in its folder ``ab/cd``
FILE_NAME = re.compile(r"[0-9a-f]{2}/[0-9a-f]{2}/" + _PAYLOAD_PART)


_real_dirs: dict[str, str] = {}  # a cache directory -> its real folder, as its store last opened its index


def real_directory(directory: str, again: bool = False) -> str:
    """Return the real folder of a cache directory: where its payload files are written, read and removed.

    Links are resolved once, not per file; ``again``: resolve them anew (the store opens its index again,
    maybe through a link pointed elsewhere since, and its payload files are the ones beside that index)."""
    real = None if again else _real_dirs.get(directory)
    if real is None:
        real = _real_dirs[directory] = os.path.realpath(directory)
    return real


def store_file_path(directory: str, filename: str) -> str | None:
    """Return the full path of a payload file the store could have made, or None for any other name.

    The name must have the store's pattern, and the two folders above it must be real folders
    (not symlinks) inside ``directory``'s real folder (``real_directory``).
    """
    if not FILE_NAME.fullmatch(filename):
        return None
    real = real_directory(directory)
    first = os.path.join(real, filename[:2])
    second = os.path.join(first, filename[3:5])
    try:
        if not (stat.S_ISDIR(os.lstat(first).st_mode) and stat.S_ISDIR(os.lstat(second).st_mode)):
            return None
    except OSError:
        return None
    return os.path.join(real, filename)


def _planted_folder(directory: str, filename: str) -> OSError:
    return OSError(errno.ELOOP, f"the payload folder {filename[:5]!r} of the cache directory {directory} (or the "
                   "one above it) is a link or not a folder, planted there by someone: nothing is read or written "
                   "through it. Delete it (or the whole cache directory) to cache those results again")


def create_payload_file(directory: str, filename: str) -> io.BufferedWriter:
    """Create the new payload file ``filename`` (the store's name pattern), making its two folders as needed.

    Each folder is opened without following a link and the file is created inside the folder so opened: a
    folder planted as a link (to somewhere outside the cache) is refused with an OSError, never written through.
    """
    if not FILE_NAME.fullmatch(filename):
        raise ValueError(f"not a payload file name of the store: {filename!r}")
    directory = real_directory(directory)  # where reads and removals look, not where a link points now
    nofollow, folder = getattr(os, "O_NOFOLLOW", 0), getattr(os, "O_DIRECTORY", 0)
    create = os.O_WRONLY | os.O_CREAT | os.O_EXCL | nofollow | getattr(os, "O_CLOEXEC", 0)
    if not (folder and nofollow and {os.open, os.mkdir} <= os.supports_dir_fd):  # Windows: checked by name
        os.makedirs(os.path.join(directory, filename[:5]), mode=0o700, exist_ok=True)
        if store_file_path(directory, filename) is None:
            raise _planted_folder(directory, filename)
        return io.open(os.open(os.path.join(directory, filename), create, 0o600), "wb")  # noqa: UP020
    fd = os.open(directory, os.O_RDONLY | folder)
    try:
        for part in (filename[:2], filename[3:5]):
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o700, dir_fd=fd)
            try:
                inner = os.open(part, os.O_RDONLY | folder | nofollow, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise _planted_folder(directory, filename) from None
                raise
            os.close(fd)
            fd = inner
        return io.open(os.open(filename[6:], create, 0o600, dir_fd=fd), "wb")  # noqa: UP020
    finally:
        os.close(fd)


LONGEST_RUN = 1e9  # seconds: a duration past it was planted
_TEXT_FIELDS = ("kind", "name", "fid", "code", "own", "method", "version", "notebook", "label", "epoch", "variant_of")


def _time(value: Any, latest: float = LATEST_TIME) -> bool:
    return type(value) in (int, float) and 0 <= value <= latest


def _texts(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _dependency(value: Any) -> bool:
    """A dependency's [kind, digest in hex]; a package's or setting's "digest" is its text, which explain decodes."""
    if not (_texts(value) and len(value) >= 2):
        return False
    try:
        digest = bytes.fromhex(value[1])
        if value[0] in ("package", "settings"):
            digest.decode()
    except (ValueError, UnicodeDecodeError):
        return False
    return True


def is_marker(meta: dict[str, Any]) -> bool:
    """Return whether a record is the marker of a body that drew from random generators or read a relative path,
    not a result.

    It points a lookup to the entry stored for the generators' states (or the folder); it goes with that entry,
    and is counted by no inventory, local or remote.
    """
    return "variants" in meta


def plausible(header: Header) -> bool:
    """Return whether a record's numbers and metadata have the types and ranges the store writes.

    Only a record's own writer vouches for them: one this process cannot verify (another secret's) is
    listed only when they are plausible, so that counting, explaining or printing it cannot fail."""
    if not (_time(header.created) and _time(header.duration, LONGEST_RUN) and _time(header.expires, 2 * LATEST_TIME)):
        return False
    meta = header.meta()
    if any(meta.get(name) is not None and not isinstance(meta[name], str) for name in _TEXT_FIELDS):
        return False
    size, deps = meta.get("size", 0), meta.get("deps", {})
    if type(size) is not int or not 0 <= size <= 2**62:
        return False
    if not (_time(meta.get("duration", 0.0), LONGEST_RUN) and _time(meta.get("created", 0.0))
            and (meta.get("ttl") is None or _time(meta["ttl"], 2 * LATEST_TIME))):
        return False
    if not (isinstance(deps, dict) and all(map(_dependency, deps.values()))):
        return False
    return all(isinstance(meta.get(name, {}), dict) and all(isinstance(v, str) for v in meta.get(name, {}).values())
               for name in ("args", "extras")) and _texts(meta.get("skipped", []))


def open_payload(directory: str, filename: str) -> io.BufferedReader:
    """Open a payload file for reading, refusing anything but a regular file of the store's own.

    A symlink, FIFO, socket or device is refused without being opened; the open itself uses
    ``O_NOFOLLOW | O_NONBLOCK`` so that a file swapped in between cannot block or redirect it.
    """
    full = store_file_path(directory, filename)
    if full is None:
        if FILE_NAME.fullmatch(filename):
            raise CorruptRecord(str(_planted_folder(directory, filename)))
        raise CorruptRecord(f"the index names a payload file the store never makes ({filename[:80]!r})")
    if not stat.S_ISREG(os.lstat(full).st_mode):
        raise CorruptRecord("the payload file is not a regular file")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(full, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise CorruptRecord("the payload file is a symlink") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise CorruptRecord("the payload file is not a regular file")
    return io.open(fd, "rb")  # noqa: UP020 (typed as a BufferedReader, unlike os.fdopen)


# File identity -> the header check it verified, and the seal of the pickle it read then.
_verified_maps: dict[tuple[int, ...], tuple[bytes, bytes]] = {}
_SEALED_IN_FULL = 64 << 10  # pickles up to this size are remembered as they are; larger ones by a digest


def _seal(pickle_part: bytes) -> bytes:
    """Return what a verified pickle is remembered by: itself when small, else a collision-resistant digest.

    A file's times are no proof that its bytes are those verified: a write through a shared mapping
    of a page already written through it moves neither time, so the pickle read on each hit is
    compared with the one verified before it is loaded."""
    if len(pickle_part) <= _SEALED_IN_FULL:
        return pickle_part
    return hashlib.blake2b(pickle_part, digest_size=32, person=b"nbm-mapped-pkl").digest()


def verify_file(f: Any, header: Header, pickle_part: bytes, signer: Signer | None) -> None:
    """Verify a payload file in full (checksum or signature) with read calls, never through a map: a file
    another process cuts short while it is read gives a short read, where a map's page would be a SIGBUS."""
    offsets = header.offsets()
    check = _PayloadCheck(header, signer)
    check.update(pickle_part)
    chunk = memoryview(bytearray(min(_READ_CHUNK, max(header.buffer_lens, default=0)) or 1))
    position = header.pickle_len
    for offset, n in zip(offsets, header.buffer_lens):
        check.pad(offset - position)
        f.seek(offset)
        left = n
        while left:
            part = chunk[:min(left, chunk.nbytes)]
            if f.readinto(part) != part.nbytes:
                raise CorruptRecord("payload file truncated")
            check.update(part)
            left -= part.nbytes
        position = offset + n
    check.verify()


def load_file(header: Header, directory: str, signer: Signer | None, use_mmap: bool = False) -> Any:
    """Verify and unpickle a payload kept in its own file, reading buffers in place."""
    offsets = header.offsets()
    with open_payload(directory, header.filename) as f:
        st = os.fstat(f.fileno())
        if st.st_size != offsets[-1]:
            raise CorruptRecord(f"payload file has {st.st_size} bytes, expected {offsets[-1]}")
        pickle_part = f.read(header.pickle_len)
        if use_mmap and header.buffer_lens:
            # Verified once per file identity: reading every byte on each hit would undo the map. The
            # change time is in it: a write puts the modification time forward, and putting that back
            # moves the change time on. Yet a write through a shared mapping may move neither, so the pickle,
            # which is what runs code, must also be the very bytes verified (see _seal).
            identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            seal = _seal(pickle_part)
            if _verified_maps.get(identity) != (header.check, seal):
                verify_file(f, header, pickle_part, signer)
                if len(_verified_maps) >= 4096:
                    _verified_maps.clear()
                _verified_maps[identity] = (header.check, seal)
            # Private pages: arrays get read-only views of them, and tensors (which cannot be read-only)
            # writable ones whose writes stay in this process and never reach the file.
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
            if len(mapped) != offsets[-1] or os.fstat(f.fileno()).st_size != offsets[-1]:
                mapped.close()
                raise CorruptRecord("payload file changed size while it was read")
            view = memoryview(mapped).toreadonly()
            buffers: list[Any] = [view[o:o + n] for o, n in zip(offsets, header.buffer_lens)]
            return loads(pickle_part, buffers)
        # One pass on this thread: each chunk is read straight into the value's memory and checked
        # at once, while it is still in cache; nothing is unpickled before the whole payload is.
        check = _PayloadCheck(header, signer)
        check.update(pickle_part)
        buffers = []
        position = header.pickle_len
        for offset, n in zip(offsets, header.buffer_lens):
            check.pad(offset - position)
            buf = _empty_buffer(n)
            f.seek(offset)
            for chunk in _chunks(memoryview(buf).cast("B"), _READ_CHUNK):
                if f.readinto(chunk) != chunk.nbytes:
                    raise CorruptRecord("payload file truncated")
                check.update(chunk)
            buffers.append(buf)
            position = offset + n
    check.verify()
    return loads(pickle_part, buffers)


_HUGE_PAGE = 2 << 20
# Buffers larger than this get memory of their own, starting on a huge page. Up to it, malloc takes
# memory from its heap once a buffer as large was freed: already faulted in, which a fresh mapping
# never is (loading an 8 MiB array again and again took 1.4x-1.8x as long in fresh mappings); above
# it, malloc maps fresh memory for each buffer too (glibc's largest mmap threshold on 64 bits).
_HUGE_MIN = 32 << 20
_HUGE_ADVICE: int | None = getattr(mmap, "MADV_HUGEPAGE", None) if sys.platform == "linux" else None
try:
    from _tracemalloc import is_tracing as _tracing  # what tracemalloc.is_tracing calls, without its imports
except ImportError:  # pragma: no cover (an interpreter without it)
    def _tracing() -> bool:
        return False


def _empty_buffer(n: int) -> Any:
    """Return writable memory for ``n`` bytes, not zero-filled when numpy can provide it.

    Large buffers start on a 2 MiB boundary, in a private mapping marked for huge pages over the 2 MiB
    pages they fill, which are then faulted in 2 MiB at a time. (malloc's memory starts just past a
    4 KiB page, so the parts of it before its first and after its last 2 MiB boundary, 2 MiB together,
    come in 4 KiB faults: about 1.5 ms of a 256 MiB load's 40 here.)
    """
    np = sys.modules.get("numpy")
    if np is None or n < 1 << 20:
        return bytearray(n)
    # While tracemalloc traces, numpy's memory (which numpy reports to it) rather than a mapping it never sees.
    if n > _HUGE_MIN and _HUGE_ADVICE is not None and not _tracing():
        try:
            # Private and anonymous: memory like malloc's (copied on fork), unmapped when the last array
            # made over it goes.
            mapped = mmap.mmap(-1, n + _HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        except OSError:
            return np.empty(n, dtype=np.uint8)
        start = -np.frombuffer(mapped, dtype=np.uint8, count=1).ctypes.data % _HUGE_PAGE
        # The huge pages the buffer fills; a tail that fills none is left to small pages, as in malloc's
        # memory (a huge page there would take up to 2 MiB that no byte uses).
        with contextlib.suppress(OSError):  # a kernel without huge pages refuses the hint: the memory is fine
            mapped.madvise(_HUGE_ADVICE, start, n - n % _HUGE_PAGE)
        # Over a memoryview, not a slice of another array: arrays made over this one then hold it (numpy
        # would pass a slice by, to the array it was cut from).
        return np.frombuffer(memoryview(mapped)[start:start + n], dtype=np.uint8)
    return np.empty(n, dtype=np.uint8)  # the read fills it: no memset first


def writable_copy(buf: memoryview) -> Any:
    """Return a copy of ``buf`` in memory of its own (for large buffers, numpy's: fewer page faults)."""
    out = _empty_buffer(buf.nbytes)
    _copy_into(out, buf)
    return out


def write_payload(f: BinaryIO, payload: Payload) -> tuple[int, bytes]:
    """Write a payload's pieces to an open file without copying its buffers.

    Returns the bytes written and the payload's checksum, computed on a second thread while
    the data is written when the payload is large.
    """
    large = payload.nbytes >= _PIPELINE_MIN
    hasher = _Hasher(background=large)
    hasher.update(payload.pickle)
    np = sys.modules.get("numpy")
    # numpy's tofile (C stdio) writes big blocks about 1.4x faster than FileIO.write here.
    write = (lambda chunk: np.frombuffer(chunk, dtype=np.uint8).tofile(f)) if large and np else f.write
    written = 0
    try:
        for piece in payload.pieces():
            if piece is payload.pickle or isinstance(piece, bytes):
                f.write(piece)
                written += len(piece)
                continue
            for chunk in _chunks(piece.cast("B") if piece.format != "B" else piece, _WRITE_CHUNK):
                hasher.update(chunk)
                write(chunk)
                written += chunk.nbytes
    finally:
        digest = hasher.digest()  # also ends the hashing thread when a write fails (a full disk)
    return written, digest
