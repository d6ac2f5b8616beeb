"""Values to bytes and back: cloudpickle, out-of-band buffers, checksums, signatures.

A stored record is a small header (kept in the index database) plus a payload: the
pickle stream followed by the out-of-band buffers of protocol 5, each aligned to 64
bytes, so a 2 GB array is written straight from its memory and read straight into
its final memory (or memory-mapped) instead of passing through an in-band pickle.

Integrity: an xxh3-128 checksum of the payload is verified before unpickling. With a
secret, a keyed BLAKE2b signature over header, metadata and payload is verified instead,
and a value whose signature fails is never unpickled.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import mmap
import os
import pickle
import queue
import struct
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import cloudpickle
import xxhash

__all__ = ()

MAGIC = b"NBM1"
FORMAT_VERSION = 1
ALIGN = 64
FLAG_INLINE = 1
FLAG_SIGNED = 2
# magic, version, flags, created, expires, duration, pickle length, buffers, meta length, checksum, signature
_HEADER = struct.Struct("<4sHHdddQII16s32s")
_LEN = struct.Struct("<Q")


_PIPELINE_MIN = 16 << 20  # payloads this large are hashed on a second thread during I/O
_CHUNK = 8 << 20  # reads: measured best for overlapping read and hash
_WRITE_CHUNK = 32 << 20  # writes: fewer, larger writes keep up with np.save


class _Hasher:
    """xxh3-128 of chunks fed in order; large inputs are hashed on a thread while I/O goes on."""

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


def _chunks(view: memoryview, size: int = _CHUNK) -> Iterator[memoryview]:
    for start in range(0, view.nbytes, size):
        yield view[start:start + size]


class CorruptRecord(Exception):
    """A stored record failed its checksum, signature or format check."""


class _Pickler(cloudpickle.Pickler):
    """cloudpickle, but classes that can be found by name are saved by reference.

    cloudpickle saves classes defined in ``__main__`` by value; after a kernel restart
    the loaded object would then be an instance of a dead copy of the class rather than
    of the class the notebook just defined again.
    """

    by_value: frozenset[int] = frozenset()

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, type) and id(obj) not in self.by_value and _findable(obj):
            return NotImplemented
        return super().reducer_override(obj)


def _findable(cls: type) -> bool:
    module = sys.modules.get(cls.__module__)
    if module is None or "<locals>" in cls.__qualname__:
        return False
    target: Any = module
    for part in cls.__qualname__.split("."):
        target = getattr(target, part, None)
        if target is None:
            return False
    return target is cls


@dataclass
class Payload:
    """A pickled value: the pickle stream and its out-of-band buffers."""

    pickle: bytes
    buffers: list[memoryview]

    @property
    def nbytes(self) -> int:
        return self.layout()[-1]

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
        h = xxhash.xxh3_128()
        h.update(self.pickle)
        for buf in self.buffers:
            h.update(buf)
        return h.digest()

    def to_bytes(self) -> bytes:
        return b"".join(self.pieces())


def _aligned(position: int) -> int:
    return (position + ALIGN - 1) // ALIGN * ALIGN


def dumps(value: Any, by_value: frozenset[int] = frozenset()) -> Payload:
    """Pickle ``value`` with protocol 5, keeping large buffers out of band.

    ``by_value`` holds ids of classes to copy into the pickle even though they can be
    found by name now (classes a cached cell defines: on restore they do not exist yet).
    """
    buffers: list[memoryview] = []
    stream = io.BytesIO()

    def keep(buf: pickle.PickleBuffer) -> bool:
        try:
            buffers.append(buf.raw())
        except BufferError:  # not contiguous: let pickle copy it in band
            return True
        return False

    pickler = _Pickler(stream, protocol=5, buffer_callback=keep)
    pickler.by_value = by_value
    pickler.dump(value)
    return Payload(stream.getvalue(), buffers)


def loads(data: bytes | memoryview, buffers: Sequence[Any] = ()) -> Any:
    """Unpickle a payload produced by :func:`dumps`."""
    return pickle.loads(data, buffers=buffers)


def copy_value(payload: Payload) -> Any:
    """Return a fresh object from a payload that is still in memory."""
    return loads(payload.pickle, [bytearray(b) for b in payload.buffers])


@dataclass
class Header:
    """The fixed part of a stored record."""

    flags: int
    created: float
    expires: float  # 0.0: never
    duration: float
    pickle_len: int
    buffer_lens: list[int]
    checksum: bytes
    signature: bytes
    meta_raw: bytes | memoryview

    @property
    def inline(self) -> bool:
        return bool(self.flags & FLAG_INLINE)

    def meta(self) -> dict[str, Any]:
        """Return the record's metadata (function, fingerprints, timings, sizes)."""
        result: dict[str, Any] = json.loads(bytes(self.meta_raw))
        return result

    def offsets(self) -> list[int]:
        offsets = []
        position = self.pickle_len
        for n in self.buffer_lens:
            position = _aligned(position)
            offsets.append(position)
            position += n
        offsets.append(position)
        return offsets


def _signature(secret: bytes, fixed: bytes, lens: bytes, meta: bytes | memoryview, pieces: Iterator[Any]) -> bytes:
    mac = hashlib.blake2b(key=secret[:64], digest_size=32, person=b"notebook_memo")
    for part in (fixed, lens, meta):
        mac.update(_LEN.pack(len(part)))
        mac.update(part)
    for piece in pieces:
        mac.update(piece)
    return mac.digest()


def encode_header(payload: Payload, meta: dict[str, Any], created: float, expires: float | None,
                  duration: float, inline: bool, secret: bytes | None, checksum: bytes | None = None) -> bytes:
    """Return the record bytes kept in the index: header, metadata, and an inline payload.

    ``checksum`` is the payload's xxh3-128 when the caller already computed it (while writing).
    """
    meta_raw = json.dumps(meta, separators=(",", ":"), sort_keys=True).encode()
    flags = (FLAG_INLINE if inline else 0) | (FLAG_SIGNED if secret else 0)
    lens = b"".join(_LEN.pack(b.nbytes) for b in payload.buffers)
    checksum = checksum or payload.checksum()
    fixed = _HEADER.pack(MAGIC, FORMAT_VERSION, flags, created, expires or 0.0, duration, len(payload.pickle),
                         len(payload.buffers), len(meta_raw), checksum, b"\0" * 32)
    signature = b"\0" * 32
    if secret:
        signature = _signature(secret, fixed, lens, meta_raw, payload.pieces())
    fixed = fixed[: -32] + signature
    body = [fixed, lens, meta_raw]
    if inline:
        body.append(payload.to_bytes())
    return b"".join(body)


def decode_header(data: bytes | memoryview) -> tuple[Header, memoryview]:
    """Parse record bytes; return the header and the inline payload (empty if in a file)."""
    view = memoryview(data)
    if len(view) < _HEADER.size:
        raise CorruptRecord("record shorter than its header")
    magic, version, flags, created, expires, duration, pickle_len, nbufs, meta_len, checksum, signature = \
        _HEADER.unpack_from(view)
    if magic != MAGIC or version != FORMAT_VERSION:
        raise CorruptRecord("not a notebook_memo record of a known format")
    position = _HEADER.size
    end_lens = position + nbufs * _LEN.size
    if end_lens + meta_len > len(view):
        raise CorruptRecord("record truncated")
    buffer_lens = [_LEN.unpack_from(view, position + i * _LEN.size)[0] for i in range(nbufs)] if nbufs else []
    meta_raw = view[end_lens:end_lens + meta_len]
    header = Header(flags, created, expires, duration, pickle_len, buffer_lens, checksum, signature, meta_raw)
    return header, view[end_lens + meta_len:]


def _fixed_for_signature(header: Header) -> tuple[bytes, bytes]:
    fixed = _HEADER.pack(MAGIC, FORMAT_VERSION, header.flags, header.created, header.expires,
                         header.duration, header.pickle_len, len(header.buffer_lens), len(header.meta_raw),
                         header.checksum, b"\0" * 32)
    lens = b"".join(_LEN.pack(n) for n in header.buffer_lens)
    return fixed, lens


def _verify(header: Header, pickle_part: Any, buffers: Sequence[Any], secret: bytes | None,
            check_buffers: bool = True) -> None:
    if secret is not None or header.flags & FLAG_SIGNED:
        if secret is None:
            raise CorruptRecord("the record is signed but no secret is configured")
        if not header.flags & FLAG_SIGNED:
            raise CorruptRecord("the record is not signed and a secret is configured")
        fixed, lens = _fixed_for_signature(header)
        pieces = Payload(bytes(pickle_part), [memoryview(b) for b in buffers]).pieces()
        expected = _signature(secret, fixed, lens, header.meta_raw, pieces)
        if not hmac.compare_digest(expected, header.signature):
            raise CorruptRecord("signature mismatch: the value was written without this "
                                "secret or has been modified")
        return
    h = xxhash.xxh3_128()
    h.update(pickle_part)
    if check_buffers:
        for buf in buffers:
            h.update(buf)
        if h.digest() != header.checksum:
            raise CorruptRecord("checksum mismatch: the stored bytes were damaged")


def load_inline(header: Header, payload: memoryview, secret: bytes | None) -> Any:
    """Verify and unpickle a payload kept inside the index record."""
    offsets = header.offsets()
    if len(payload) != offsets[-1]:
        raise CorruptRecord("inline payload has the wrong length")
    pickle_part = payload[: header.pickle_len]
    buffers = [bytearray(payload[o:o + n]) for o, n in zip(offsets, header.buffer_lens)]
    _verify(header, pickle_part, buffers, secret)
    return loads(pickle_part, buffers)


def load_file(header: Header, path: str, secret: bytes | None, use_mmap: bool = False) -> Any:
    """Verify and unpickle a payload kept in its own file, reading buffers in place."""
    offsets = header.offsets()
    with open(path, "rb") as f:
        size = _file_size(f)
        if size != offsets[-1]:
            raise CorruptRecord(f"payload file has {size} bytes, expected {offsets[-1]}")
        pickle_part = f.read(header.pickle_len)
        if use_mmap and header.buffer_lens:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            view = memoryview(mapped)
            buffers: list[Any] = [view[o:o + n] for o, n in zip(offsets, header.buffer_lens)]
            # Mapped buffers are verified only when signed: reading them all would undo the map.
            _verify(header, pickle_part, buffers, secret, check_buffers=False)
            return loads(pickle_part, buffers)
        buffers = []
        signed = secret is not None or bool(header.flags & FLAG_SIGNED)
        hasher = _Hasher(background=not signed and offsets[-1] >= _PIPELINE_MIN)
        hasher.update(pickle_part)
        for offset, n in zip(offsets, header.buffer_lens):
            buf = _empty_buffer(n)
            f.seek(offset)
            for chunk in _chunks(memoryview(buf).cast("B")):
                if f.readinto(chunk) != chunk.nbytes:
                    hasher.digest()
                    raise CorruptRecord("payload file truncated")
                hasher.update(chunk)  # verified while the bytes are fresh, on another thread
            buffers.append(buf)
    digest = hasher.digest()
    if signed:
        _verify(header, pickle_part, buffers, secret)
    elif digest != header.checksum:
        raise CorruptRecord("checksum mismatch: the stored bytes were damaged")
    return loads(pickle_part, buffers)


def _empty_buffer(n: int) -> Any:
    """Return writable memory for ``n`` bytes, not zero-filled when numpy can provide it."""
    np = sys.modules.get("numpy")
    if np is not None and n >= 1 << 20:
        return np.empty(n, dtype=np.uint8)  # the read fills it: no memset first
    return bytearray(n)


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
    for piece in payload.pieces():
        if piece is payload.pickle or isinstance(piece, bytes):
            f.write(piece)
            written += len(piece)
            continue
        for chunk in _chunks(piece.cast("B") if piece.format != "B" else piece, _WRITE_CHUNK):
            hasher.update(chunk)
            write(chunk)
            written += chunk.nbytes
    return written, hasher.digest()


def _file_size(f: BinaryIO) -> int:
    return os.fstat(f.fileno()).st_size
