"""numpy arrays of one stored value over one memory: the memory stored once, each array as its place in it.

Pickled alone, ``X`` and ``X[:5]`` come back as two arrays, so a write through one no longer shows in the other
(and a call keyed by their sharing misses). Here the array that owns their memory is stored as itself, and each
view as (that array, byte offset, shape, strides, dtype): loaded, they are views of one restored memory again.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ()


def memory_owner(array: Any) -> Any | None:
    """Return the plain array that owns the memory ``array`` (a plain ndarray) reads, ``array`` itself if it owns
    it; None where the owner cannot be stored whole as an array (a buffer of another kind, a subclass such as a
    memmap, objects, a layout other than C's)."""
    np = sys.modules["numpy"]
    root = array
    while isinstance(root.base, np.ndarray):
        root = root.base
    if root.base is not None or type(root) is not np.ndarray or not root.flags.c_contiguous \
            or root.dtype.hasobject or not root.nbytes:
        return None
    return root


def _place(array: Any, root: Any) -> tuple[int, int, int]:
    """Return where ``array`` starts in ``root``'s memory (its offset, in bytes) and the bytes it spans."""
    offset = array.__array_interface__["data"][0] - root.__array_interface__["data"][0]
    low = high = offset
    for size, stride in zip(array.shape, array.strides):
        reach = (size - 1) * stride
        low, high = (low + reach, high) if reach < 0 else (low, high + reach)
    return offset, low, high + array.itemsize


def stand_ins(named: dict[int, str] | None, objects: Any) -> dict[int, Any]:
    """Return, by the id of the array owning its memory, each plain array of ``objects`` that the payload refers to
    by name (``named``: a call's arguments) and that spans all of that memory, in C's layout: a view of that
    memory is stored as a view of it."""
    np = sys.modules.get("numpy")
    found: dict[int, Any] = {}
    if np is None or not named:
        return found
    for obj in objects:
        if type(obj) is np.ndarray and id(obj) in named and obj.flags.c_contiguous:
            root = memory_owner(obj)
            if root is not None and obj.nbytes == root.nbytes and \
                    obj.__array_interface__["data"][0] == root.__array_interface__["data"][0]:
                found[id(root)] = obj
    return found


def view_plan(arrays: list[tuple[Any, Any]], named: dict[int, Any]) -> dict[int, tuple[Any, ...]]:
    """Return, by id, how to pickle each array of ``arrays`` (array, owner of its memory: as ``memory_owner``)
    that is stored as a view: ``(array_view, args)``.

    Arrays over one memory become views of its owner where the owner is in the value, or of the object the payload
    refers to by name that spans it (``named``, from ``stand_ins``), or where the views span at least half of it;
    a small view of a large memory is stored alone, as a copy, rather than the whole memory with it.
    """
    groups: dict[int, list[tuple[Any, Any]]] = {}
    for array, root in arrays:
        groups.setdefault(id(root), []).append((array, root))
    plan: dict[int, tuple[Any, ...]] = {}
    for members in groups.values():
        root = members[0][1]
        held = named.get(id(root))
        if len(members) < 2 and held is None:
            continue
        views = [(array, _place(array, root)) for array, _ in members if array is not root and array.size]
        if len(views) == len(members) and held is None:
            spans = sorted((low, high) for _, (_, low, high) in views)
            covered, end = 0, 0
            for low, high in spans:  # the union of the views' extents
                if high > end:
                    covered += high - max(low, end)
                    end = high
            if 2 * covered < root.nbytes:
                continue
        for array, (offset, _, _) in views:
            plan[id(array)] = (array_view, (root if held is None else held, offset, array.shape, array.strides,
                                            array.dtype, bool(array.flags.writeable)))
    return plan


def array_view(root: Any, offset: int, shape: tuple[int, ...], strides: tuple[int, ...], dtype: Any,
               writeable: bool) -> Any:
    """Return the view of ``root``'s memory a stored array was (numpy checks that it lies within it)."""
    import numpy as np

    if not (type(root) is np.ndarray and root.flags.c_contiguous):
        # An argument the value referred to by name, equal to the one it was stored with but laid out otherwise
        # (its layout is not in the key): the same values, over a copy of it.
        root = np.ascontiguousarray(root)
    view = np.ndarray(shape, dtype, buffer=root, offset=offset, strides=strides)
    if not writeable and view.flags.writeable:
        view.flags.writeable = False
    return view
