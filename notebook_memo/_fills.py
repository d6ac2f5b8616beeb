"""The ``functools.cached_property`` values a body fills as it runs, and what each held when it was filled.

A fill changes no meaning (the value derives from the rest of its object), so a run that only fills one is
stored; a run that fills one and then changes it (appends to the list it returned, writes into its array) changed
its object in place, which a hit could not do again. ``functools.cached_property.__get__`` is wrapped once, as
``os.urandom`` is, to tell the running bodies which value was filled; they note its digest then, and after the run
excuse a fill only while its value still has that digest. A ``memo.per_instance`` call, which runs no body of its own,
notes the fills into its arguments the same way through a ``FillListener``.
"""

from __future__ import annotations

import contextvars
import functools
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._replaced import install, replacing
from .hashing import cached_property_names, content_hash, filled_cached_properties

__all__ = ()

# (id of the object, attribute name) -> the digest of the value as it was filled; None: it could not be hashed
FillNotes = dict[tuple[int, str], bytes | None]

_ABSENT = object()
_watched: list[bool] = []
_told: list[Callable[[Any, str, Any], None]] = []  # told of every fill (the running bodies' note-taker)
_lock = threading.Lock()
_listening: contextvars.ContextVar[tuple[FillListener, ...]] = contextvars.ContextVar(
    "notebook_memo_fill_listeners", default=())


def watch_fills(on_fill: Callable[[Any, str, Any], None]) -> None:
    """Wrap ``functools.cached_property.__get__`` (once) to call ``on_fill(instance, name, value)`` after a read
    that filled the value into the instance's ``__dict__``; reads of a value already held call nothing."""
    if on_fill in _told:
        return
    with _lock:
        if on_fill not in _told:
            _told.append(on_fill)
    _wrap()


def _wrap() -> None:
    if _watched:
        return
    with _lock:
        if _watched:
            return
        install(functools.cached_property, "__get__", _filling(functools.cached_property.__get__))
        _watched.append(True)


class FillListener:
    """While entered, note in ``notes`` the digest of each functools.cached_property value filled into one of the
    objects whose ids are ``owners`` (``digest(value, name)``; None: it could not be hashed)."""

    __slots__ = ("digest", "notes", "owners", "token")

    def __init__(self, owners: set[int], digest: Callable[[Any, str], bytes | None]) -> None:
        self.owners, self.digest = owners, digest
        self.notes: FillNotes = {}

    def __enter__(self) -> FillNotes:
        _wrap()
        self.token = _listening.set((*_listening.get(), self))
        return self.notes

    def __exit__(self, *exc: object) -> None:
        _listening.reset(self.token)

    def filled(self, instance: Any, name: str, value: Any) -> None:
        if id(instance) in self.owners:
            self.notes[(id(instance), name)] = self.digest(value, name)  # a later fill (after a del) stands


def filled_names(values: Iterable[tuple[str, Any]]) -> dict[str, frozenset[str]]:
    """Return, by name, the functools.cached_property values each of ``values`` holds now, for those whose class
    has such properties: what a caller notes before a call to excuse the fills it makes after."""
    return {name: filled_cached_properties(value) for name, value in values if cached_property_names(type(value))}


def _filling(original: Callable[..., Any]) -> Any:
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
            for on_fill in _told:
                on_fill(instance, name, value)
            for listener in _listening.get():
                listener.filled(instance, name, value)
        return value

    return replacing(__get__, original)


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


def same_but_filled(value: Any, label: str, before: bytes, filled: frozenset[str], notes: FillNotes,
                    caches: Mapping[int, frozenset[str]] | None = None) -> bool:
    """Return True when ``value`` still has the digest ``before`` it had when it held the cached_property values
    ``filled``, leaving out those it filled since and still holds as filled (their digests then in ``notes``):
    they derive from the rest (computed on first read), so reading them changes no meaning. So are the entries
    pandas objects in it filled into their caches since they held ``caches`` (by id), as a GroupBy's first
    aggregation does. Any other change counts, even beside such a fill, and so does a filled value changed
    after (``m.history.append(x)`` on a property returning ``[]``) or one whose fill was not seen; unhashable
    now counts too."""
    try:
        if content_hash(value, label) == before:
            return True
        since = filled_cached_properties(value) - filled
        if not since and not caches:
            return False
        return (not since or unchanged_since_filled(value, since, notes)) and \
            content_hash(value, label, since, caches or None) == before
    except Exception:  # it hashed before the run
        return False
