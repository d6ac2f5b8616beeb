"""The ``functools.cached_property`` values a body fills as it runs, and what each held when it was filled.

A fill changes no meaning (the value derives from the rest of its object), so a run that only fills one is
stored; a run that fills one and then changes it (appends to the list it returned, writes into its array) changed
its object in place, which a hit could not do again. ``functools.cached_property.__get__`` is wrapped once, as
``os.urandom`` is, to tell the running bodies which value was filled; they note its digest then, and after the run
excuse a fill only while its value still has that digest.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .hashing import content_hash

__all__ = ()

# (id of the object, attribute name) -> the digest of the value as it was filled; None: it could not be hashed
FillNotes = dict[tuple[int, str], bytes | None]

_ABSENT = object()
_watched: list[bool] = []
_lock = threading.Lock()


def watch_fills(on_fill: Callable[[Any, str, Any], None]) -> None:
    """Wrap ``functools.cached_property.__get__`` (once) to call ``on_fill(instance, name, value)`` after a read
    that filled the value into the instance's ``__dict__``; reads of a value already held call nothing."""
    if _watched:
        return
    with _lock:
        if _watched:
            return
        functools.cached_property.__get__ = _filling(  # type: ignore[method-assign]
            functools.cached_property.__get__, on_fill)
        _watched.append(True)


def _filling(original: Callable[..., Any], on_fill: Callable[[Any, str, Any], None]) -> Any:
    @functools.wraps(original)
    def __get__(self: functools.cached_property[Any], instance: Any, owner: type | None = None) -> Any:
        name = self.attrname
        held = getattr(instance, "__dict__", None) if instance is not None else None
        # A held value is served from the instance's __dict__ before the descriptor is asked: this runs on a
        # fill, or where the instance has no __dict__ (the original raises its own error).
        if type(held) is not dict or name is None or name in held:
            return original(self, instance, owner)
        value = original(self, instance, owner)
        if held.get(name, _ABSENT) is value:
            on_fill(instance, name, value)
        return value

    __get__._notebook_memo_original = original  # type: ignore[attr-defined]
    return __get__


def fill_digest(value: Any, name: str) -> bytes | None:
    """Return the digest of a value as it is filled, or None when it cannot be hashed (such a fill is excused
    never: whether the run changed it after cannot be told)."""
    try:
        return content_hash(value, name)
    except Exception:
        return None


def unchanged_since_filled(value: Any, names: Iterable[str], notes: Mapping[tuple[int, str], bytes | None]) -> bool:
    """Return True when each of ``names``, filled into ``value`` during a run, still holds what it held when filled
    (its digest then in ``notes``); a fill that was not seen, or could not be hashed, counts as a change."""
    try:
        held = vars(value)
    except TypeError:
        return False
    for name in names:
        digest = notes.get((id(value), name))
        if digest is None or name not in held or fill_digest(held[name], name) != digest:
            return False
    return True
