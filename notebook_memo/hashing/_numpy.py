"""numpy arrays, scalars and dtypes hashed in place: flat arrays in one xxh3 update, strided ones
gathered chunk by chunk through a small reused buffer, never copied whole."""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterator
from typing import Any

from ._core import (
    _BIG,
    BOOKKEEPING_PREFIX,
    Hasher,
    HashFn,
    MemoryViews,
    _pack_q,
    _reduction,
    feed_slot_values,
    h_reduced,
    own_state,
    register_family,
)

__all__ = ()


def _numpy_path(cls: type) -> HashFn | None:
    np = sys.modules.get("numpy")
    if np is None:
        return None
    if cls is np.ndarray or issubclass(cls, np.memmap):
        return _h_ndarray_once  # a memmap is its values, read where they lie (a cached result loads as one)
    if issubclass(cls, np.ndarray):
        return _h_ndarray_subclass
    if issubclass(cls, np.generic):
        return _h_np_scalar
    if cls is np.dtype or issubclass(cls, np.dtype):
        return _h_np_dtype
    if issubclass(cls, np.vectorize):
        return _h_vectorize
    return None


def _h_vectorize(h: Hasher, v: Any) -> None:
    """Hash an ``np.vectorize`` by its state as made, without the ufunc its first call caches in ``_ufunc``.

    That ufunc, made by ``np.frompyfunc`` from ``pyfunc`` (which is keyed), hides the function it calls,
    so it cannot be keyed itself; left in, it made the object unhashable once used.
    """
    reduced = _reduction(v)
    state = reduced[2] if not isinstance(reduced, str) and len(reduced) > 2 else None
    if type(state) is dict and state.get("_ufunc"):
        made: dict[int, Any] | None = {} if isinstance(state["_ufunc"], dict) else None  # older numpy: None
        reduced = (*reduced[:2], {**state, "_ufunc": made}, *reduced[3:])
    h_reduced(h, v, reduced)


def _dtype_text(dtype: Any) -> str:
    """Return a numpy dtype's layout (fields, names, types, offsets, titles, sub-arrays, size) as text, with a
    mark wherever it, or a field's dtype, carries metadata: that metadata's content follows (``_feed_metadata``)."""
    text = _dtype_parts(dtype)
    return text + "#m" if dtype.metadata else text


def _feed_metadata(h: Hasher, dtype: Any) -> None:
    """Feed the content of the metadata of ``dtype`` and of its fields' dtypes, in the order ``_dtype_text``
    marks them.

    Code may read ``np.dtype(float, metadata={"unit": "m"})`` as part of the type. Keyed as a value, not by
    its repr: numpy elides a long array's repr, a dataclass may leave a field out of it, a set's order follows
    ``PYTHONHASHSEED``; and read afresh on each walk, since numpy copies the dict but not the values in it.
    """
    if dtype.fields is not None:
        for name in dtype.names:
            _feed_metadata(h, dtype.fields[name][0])
    elif dtype.subdtype is not None:
        _feed_metadata(h, dtype.subdtype[0])
    metadata = dtype.metadata
    if metadata:
        h.child(dict(metadata), "<dtype metadata>")


def _dtype_parts(dtype: Any) -> str:
    if dtype.fields is not None:
        fields = []
        for name in dtype.names:
            field = dtype.fields[name]
            title = f"|{field[2]!r}" if len(field) > 2 else ""
            fields.append(f"{name!r}{title}:{_dtype_text(field[0])}@{field[1]}")
        text = "{" + ",".join(fields) + f"}}/{dtype.itemsize}{'a' if dtype.isalignedstruct else ''}"
        item = dtype.type
        if item.__module__ != "numpy" or item.__name__ != "void":
            # np.record (a recarray's, kept by np.asarray) or a user's: numpy calls the dtype equal to the
            # plain one, but its items have attribute access the plain np.void items have not
            text += f"<{item.__module__}.{item.__qualname__}>"
        return text
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        return f"({_dtype_text(base)}){shape!r}"
    return str(dtype.str)


def _h_np_dtype(h: Hasher, v: Any) -> None:
    h.tag(b"nd")
    h.text(_dtype_text(v))
    _feed_metadata(h, v)


# numpy's own fixed-size kinds, whose arrays lend their memory as a buffer (not objects, not StringDType;
# a structured dtype, kind V, may still hold object fields: hasobject says).
_PLAIN_KINDS = frozenset("biufcmMSUV")
# (id of a dtype, shape) -> (that dtype, an array's head, whether its bytes are its content): a dict of
# many arrays of one dtype and shape formats them once. Only unstructured dtypes without metadata: a
# structured one's field names can be reassigned in place, and metadata is content read afresh each walk.
_layouts: dict[tuple[int, tuple[int, ...]], tuple[Any, bytes, bool]] = {}


def _array_head(v: Any) -> tuple[bytes, bool]:
    """Return an array's tag and layout (its dtype's whole text, its shape), and if its bytes are its content."""
    dtype, shape = v.dtype, v.shape
    key = (id(dtype), shape)
    entry = _layouts.get(key)
    if entry is not None and entry[0] is dtype:
        return entry[1], entry[2]
    text = _dtype_text(dtype).encode("utf-8", "surrogatepass")
    head = b"na" + _pack_q(len(text)) + text + repr(shape).encode()
    plain = dtype.kind in _PLAIN_KINDS and not dtype.hasobject and padding(dtype) is None
    if dtype.fields is None and not dtype.metadata:
        if len(_layouts) >= 1024:
            _layouts.clear()
        _layouts[key] = (dtype, head, plain)  # holding the dtype keeps its id from being reused
    return head, plain


def _h_flat_array(h: Hasher, v: Any) -> bool:
    """Hash a C-contiguous array of a plain dtype whose layout was met before, and say so; else write nothing."""
    dtype = v.dtype
    entry = _layouts.get((id(dtype), v.shape))
    if entry is None or entry[0] is not dtype or not entry[2] or not v.flags.c_contiguous:
        return False  # the first array of its layout, or one that is not flat: _h_ndarray, with bookkeeping
    if met_before(h, v):
        return True
    h._buf += entry[1]
    h.contiguous(v, v.nbytes)
    return True


def met_before(h: Hasher, v: Any) -> bool:
    """Feed a reference back and return True when the array ``v`` itself was met before in this walk. Else
    remember it, and for each array met before that reads a byte of the memory it reads (``[a, a[:1]]``),
    feed where ``v`` starts relative to that array and how both step; return False (its content follows).

    Writing through one such view changes what the other reads, which two separate arrays cannot show. Views
    of one memory that share no byte (``X[:5], X[5:]``) are keyed as two arrays: a hit hands back copies.
    """
    if h.seen_before(v):
        return True
    h.saw_view(v)
    memories = h.memories
    if v.base is None:  # it owns its memory: views of it met after it find it among the objects met
        group = memories.get(id(v)) if memories else None
        if group is not None and group.owner is v:
            _feed_places(h, v, group)
        return False
    owner = v.base  # what owns the memory: the array at the root of its bases, or the buffer under that
    ndarray = sys.modules["numpy"].ndarray
    while isinstance(owner, ndarray) and owner.base is not None:
        owner = owner.base
    if memories is None:
        memories = h.memories = {}
    group = memories.get(id(owner))
    if group is None or group.owner is not owner:
        group = memories[id(owner)] = MemoryViews(owner)
        met = h.shared.get(id(owner))
        if met is not None and met[1] is owner:  # the owning array itself, met before
            group.meet("array", met[0], owner)
    _feed_places(h, v, group)
    return False


def _feed_places(h: Hasher, v: Any, group: MemoryViews) -> None:
    """Note ``v`` among the arrays met over its memory; for each one met before that shares a byte with it,
    feed where ``v`` lies relative to that one and how each steps."""
    for index, seen in group.meet("array", len(h.shared) - 1, v):
        if id(seen) in h._active:
            continue  # a view the array being walked gives of itself (an object subarray's item): no one else's
        offset = v.__array_interface__["data"][0] - seen.__array_interface__["data"][0]
        h.tag(b"%" + _pack_q(index) + _pack_q(offset))
        h.text(repr((v.strides, v.dtype.str, seen.strides)))


def _h_ndarray_once(h: Hasher, v: Any) -> None:
    """Hash an array met as a value: by a reference back where it was met before in this walk."""
    if not met_before(h, v):
        _h_ndarray(h, v)


def _h_ndarray(h: Hasher, v: Any) -> None:
    head, plain = _array_head(v)
    h._buf += head
    dtype = v.dtype
    if dtype.metadata is not None or dtype.fields is not None:  # else it has none to feed: the common case
        _feed_metadata(h, dtype)
    if plain and v.flags.c_contiguous:
        h.contiguous(v, v.nbytes)
        return
    np = sys.modules["numpy"]
    if v.size and not v.flags.c_contiguous and 0 in v.strides:
        # A stride-0 view (np.broadcast_to) is its one repeated slice and which axes repeat:
        # sound, never materialised, and a miss against an equal ordinary array.
        h.tag(b"b" + bytes(stride == 0 for stride in v.strides))
        v = v[tuple(slice(0, 1) if stride == 0 else slice(None) for stride in v.strides)]
    pad = None if v.dtype.hasobject else padding(v.dtype)
    if pad is not None:
        _h_padded(h, v, pad)
        return
    if v.dtype.hasobject:
        for i, item in enumerate(v.ravel(order="C").tolist()):
            h.child(item, f"[flat {i}]")
        return
    if v.flags.c_contiguous:
        h.buffer(v.reshape(-1).view(np.uint8))
    else:
        _h_strided(h, v)


def _h_ndarray_subclass(h: Hasher, v: Any) -> None:
    """Hash an array of a subclass (a masked array, a matrix, the user's array with a unit) by its class, its
    values and its attributes (a mask, a hard mask, a fill value, a unit), in its ``__dict__`` or its
    ``__slots__``: pickle's reduction leaves those of the user's subclasses out, and a masked array's hard mask."""
    np = sys.modules["numpy"]
    if h.seen_before(v):
        return
    h.tag(b"nS")
    h.child(type(v), "<class>")
    values = v.view(np.ndarray)
    met_before(h, values)  # new, so never met: noted for the arrays over its memory met after it
    _h_ndarray(h, values)
    found = getattr(v, "__dict__", None)  # none where the subclass declares __slots__ without "__dict__"
    state = own_state(h, v, found if type(found) is dict else {}) or {}
    if isinstance(v, np.ma.MaskedArray) and "_fill_value" in state and state["_fill_value"] is None:
        state = {**state, "_fill_value": _default_fill_value(v)}
    # Sorted by name: the order __new__ and __array_finalize__ happened to set them in is not content.
    h.child({name: state[name] for name in sorted(state) if not name.startswith(BOOKKEEPING_PREFIX)}
            if all(type(name) is str for name in state) else state, ".__dict__")
    feed_slot_values(h, v, np.ndarray)


def _default_fill_value(v: Any) -> Any:
    """Return what a masked array's fill value is made when first read (``m.filled()`` reads it): an unset one
    keys as that default, so reading it does not change the key (nor make a body look as if it changed
    its argument)."""
    try:
        return sys.modules["numpy"].ma.core._check_fill_value(None, v.dtype)
    except Exception:  # a numpy without it, or a dtype it has no default for: unset stays unset
        return None


@functools.lru_cache(maxsize=256)
def padding(dtype: Any) -> Any:
    """Return which bytes of an item of ``dtype`` are padding (a bool array), or None where all are content.

    Padding (between a structured dtype's fields, after an x87 long double's 10 bytes) is whatever the
    memory held: equal arrays differ there from process to process.
    """
    meaningful = _meaningful(dtype)
    return None if meaningful.all() else ~meaningful


def _meaningful(dtype: Any) -> Any:
    np = sys.modules["numpy"]
    size = dtype.itemsize
    if dtype.fields is not None:
        mask = np.zeros(size, dtype=bool)
        for name in dtype.names:
            field, offset = dtype.fields[name][:2]
            mask[offset:offset + field.itemsize] |= _meaningful(field)
        return mask
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        return np.tile(_meaningful(base), int(np.prod(shape)))
    if dtype.type in (np.longdouble, np.clongdouble) and _x87_extended(np):
        mask = np.zeros(size, dtype=bool)
        part = size // 2 if dtype.kind == "c" else size
        for start in range(0, size, part):  # each part's 10 bytes lie at its low end, or its high end if swapped
            low = dtype.byteorder != ">" and not (dtype.byteorder == "=" and sys.byteorder == "big")
            if low:
                mask[start:start + 10] = True
            else:
                mask[start + part - 10:start + part] = True
        return mask
    return np.ones(size, dtype=bool)


def _x87_extended(np: Any) -> bool:
    """Whether long double is the x87 80-bit format, kept in 12 or 16 bytes."""
    return bool(np.finfo(np.longdouble).nmant == 63 and np.dtype(np.longdouble).itemsize > 10)


def _h_padded(h: Hasher, v: Any, pad: Any) -> None:
    """Feed an array's C-order bytes with its padding bytes zeroed: an array made zeroed keeps its key."""
    np = sys.modules["numpy"]
    data = np.array(v, order="C", copy=True)
    if data.size:
        data.reshape(-1).view(np.uint8).reshape(data.size, data.dtype.itemsize)[:, pad] = 0
    h.buffer(data.reshape(-1).view(np.uint8))


_GATHER = 1 << 20  # bytes gathered at a time from a strided array: stays in cache for xxh3


def _h_strided(h: Hasher, v: Any) -> None:
    """Feed a non-contiguous array's C-order bytes, as ``h.buffer`` would a contiguous copy.

    Blocks of rows are gathered into one small reused buffer and streamed into xxh3 in
    turn, so a strided view of a big array is never copied whole.
    """
    np = sys.modules["numpy"]
    if v.nbytes < _BIG:
        h.buffer(np.ascontiguousarray(v).reshape(-1).view(np.uint8))
        return
    h.tag(_pack_q(v.nbytes))
    h._h.update(h._buf)  # the length prefix, then the bytes straight into the state
    h._buf.clear()
    scratch = np.empty(max(_GATHER, v.itemsize), dtype=np.uint8)
    for block in _c_order_blocks(v, scratch):
        h._h.update(block)


def _c_order_blocks(v: Any, scratch: Any) -> Iterator[Any]:
    """Yield byte arrays that are, in turn, ``v``'s C-order bytes (gathered into ``scratch``)."""
    np = sys.modules["numpy"]
    row = v.nbytes // v.shape[0]
    if row > scratch.nbytes:  # one row is bigger than the buffer: gather it row by row within
        for i in range(v.shape[0]):
            yield from _c_order_blocks(v[i], scratch)
        return
    step = scratch.nbytes // row
    for start in range(0, v.shape[0], step):
        part = v[start:start + step]
        if not part.flags.c_contiguous:
            out = scratch[:part.nbytes].view(v.dtype).reshape(part.shape)
            np.copyto(out, part, casting="no")
            part = out
        yield part.reshape(-1).view(np.uint8)


def _h_np_scalar(h: Hasher, v: Any) -> None:
    h.tag(b"ns")
    h.text(_dtype_text(v.dtype))
    _feed_metadata(h, v.dtype)
    if v.dtype.hasobject:
        h.child(v.item(), "<item>")
    else:
        pad = padding(v.dtype)
        if pad is None:
            h.buffer(v.tobytes())
        else:
            data = sys.modules["numpy"].frombuffer(v.tobytes(), dtype="u1").copy()
            data[pad] = 0
            h.buffer(data)


def feed_array_bytes(h: Hasher, v: Any) -> None:
    """Feed a numpy array's C-order bytes, length first, without copying it whole."""
    if v.flags.c_contiguous:
        h.buffer(v.reshape(-1).view(sys.modules["numpy"].uint8))
    else:
        _h_strided(h, v)


# Asked of classes defined anywhere too: the user's subclasses of ndarray are arrays.
register_family("numpy", _numpy_path, anywhere=True, flat={_h_ndarray_once: _h_flat_array})
