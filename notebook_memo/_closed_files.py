"""Closed file objects in a pickle: saved as what they still show (type, name, mode, encoding), rebuilt closed.

A cell's ``with open("cfg.json") as fh:`` leaves ``fh`` bound to a closed file, which cloudpickle refuses. A closed
file cannot be read or written, so a closed object of the same type with the same name and mode is the same value.
It is rebuilt over the null device, never over the path it names, and closed before anyone sees it.
"""

from __future__ import annotations

import io
import os
from typing import Any

__all__ = ()

# The built-in file layers by name: a pickle names only these, so loading one never builds anything else.
_LAYERS: dict[str, type] = {kind.__name__: kind for kind in (
    io.FileIO, io.BufferedReader, io.BufferedWriter, io.BufferedRandom, io.TextIOWrapper)}
# The modes a closed FileIO reports, as the null device can be opened in: exclusive creation ("xb") cannot.
_RAW_MODES = frozenset({"rb", "wb", "ab", "rb+", "ab+"})
# What a closed TextIOWrapper still shows, besides its mode and its buffer's.
_TEXT_FIELDS = ("encoding", "errors", "line_buffering", "write_through")


def reduce_closed_file(obj: Any) -> tuple[Any, tuple[Any, ...]] | None:
    """Return the reduction of a closed built-in file object (``open``'s kinds, as they are); None for another
    object, an open file, or one that could not be rebuilt alike (a file opened with mode "x", a custom raw)."""
    kind = type(obj)
    if _LAYERS.get(kind.__name__) is not kind or not obj.closed:
        return None
    try:
        text = None
        if kind is io.TextIOWrapper:
            text = {"mode": vars(obj).get("mode"), **{field: getattr(obj, field) for field in _TEXT_FIELDS}}
            buffered = obj.buffer
        else:
            buffered = obj
        raw = buffered if type(buffered) is io.FileIO else buffered.raw
        name, raw_mode = raw.name, raw.mode
    except (AttributeError, ValueError):
        return None
    chain = list(dict.fromkeys((obj, buffered, raw)))  # outermost first; an unbuffered file is its own raw
    if any(_LAYERS.get(type(layer).__name__) is not type(layer) for layer in chain) or type(raw) is not io.FileIO \
            or type(buffered) is io.TextIOWrapper:
        return None  # a text layer over a BytesIO, a buffer over a raw of the user's: not open()'s
    if raw_mode not in _RAW_MODES or not isinstance(name, (str, bytes, int)):
        return None
    layers = tuple(type(layer).__name__ for layer in chain)
    return closed_file, (layers, name, raw_mode, text)


def closed_file(layers: tuple[str, ...], name: str | bytes | int, raw_mode: str,
                text: dict[str, Any] | None) -> Any:
    """Return a closed file object of these layers (outermost first), showing this name and mode."""
    if not layers or layers[-1] != "FileIO" or raw_mode not in _RAW_MODES:
        raise ValueError(f"not a file object's description: {layers!r}, mode {raw_mode!r}")
    kinds = [_LAYERS[layer] for layer in layers]  # a KeyError for a name that is not a built-in layer
    obj: Any = io.FileIO(os.devnull, raw_mode)  # the null device: the named file is left as it is
    try:
        obj.name = name
        for kind in reversed(kinds[:-1]):
            if kind is io.TextIOWrapper:
                fields = dict(text or {})
                mode = fields.pop("mode", None)
                obj = io.TextIOWrapper(obj, **fields)
                if mode is not None:
                    obj.mode = mode  # as open() sets it
            else:
                obj = kind(obj)
    finally:
        obj.close()  # closes the layers below it too
    return obj
