"""The notebook's ``functools.lru_cache`` functions, watched from the first time a memoized call is keyed with one.

A call served from such a function's cache opens no file, yet what it returns came from what the function read
when it filled that entry. Every one met while keying a call (a global the body reads, an argument, an item of a
container, a method of a class) is registered here; from then on the files its runs read are noted for it (by
``_conditions``' audit hook, in memoized runs or not), and a run it serves from its cache takes them as its own.
"""

from __future__ import annotations

import functools
import sys
import threading
import types
import weakref
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ()


class HelperReads:
    """What the runs of one watched lru_cache function read since it was first watched (or last emptied)."""

    __slots__ = ("known", "reads")

    def __init__(self, known: bool) -> None:
        self.known = known  # every run of it that filled its cache was seen
        # (listed, absolute path) -> (the path to store, its real path, stat at the read), as Recorder's
        self.reads: dict[tuple[bool, str], tuple[str, str, list[int] | None]] = {}


helpers: weakref.WeakKeyDictionary[Any, HelperReads] = weakref.WeakKeyDictionary()
# The code of each watched function -> its wrappers: a factory's wrappers share one code, and a frame does not say
# which of them runs it, so a read there is noted for each (at worst a miss).
codes: dict[types.CodeType, weakref.WeakSet[Any]] = {}
_lock = threading.Lock()
_on_first: list[Callable[[], None]] = []  # called once a function is watched (installs the audit hook)


def on_watch(callback: Callable[[], None]) -> None:
    """Call ``callback`` whenever a function starts being watched."""
    _on_first.append(callback)


def is_helper(value: Any) -> bool:
    """Return True when ``value`` is a functools.lru_cache wrapper around a Python function."""
    return isinstance(value, functools._lru_cache_wrapper) \
        and isinstance(getattr(value, "__wrapped__", None), types.FunctionType)  # type: ignore[attr-defined]


def watch(wrapper: Any) -> None:
    """Watch the user's lru_cache function ``wrapper`` (met while keying a call) from now on. What its cache holds
    already was filled where its reads were not seen: it stays unknown until emptied (see ``started``)."""
    if wrapper in helpers:
        return
    with _lock:
        if wrapper in helpers:
            return
        for callback in _on_first:
            callback()  # before its runs can read: they are seen from here on
        helpers[wrapper] = HelperReads(known=wrapper.cache_info().currsize == 0)
        for gone in [code for code, wrappers in codes.items() if not wrappers]:
            del codes[gone]  # functions redefined since: their code need not be kept
        codes.setdefault(wrapper.__wrapped__.__code__, weakref.WeakSet()).add(wrapper)


def started() -> list[tuple[Any, int]]:
    """Return each watched function with its cache hits now, as a memoized run starts; one emptied since
    (``cache_clear()``) is known again, with nothing read."""
    found: list[Any] = []
    for wrapper, state in list(helpers.items()):
        info = wrapper.cache_info()
        if info.currsize == 0 and (state.reads or not state.known):
            helpers[wrapper] = HelperReads(known=True)
        found.append((wrapper, int(info.hits)))
    return found


def states_around(frame: types.FrameType | None, threads: Iterable[int] = ()) -> list[HelperReads]:
    """Return the states of the watched functions running at ``frame`` (or below it), and in the ``threads`` named
    other than this one: a function that hands its reading to a pool waits for it there."""
    found = _states_below(frame)
    me = threading.get_ident()
    others = [ident for ident in threads if ident != me]
    if others:
        frames = sys._current_frames()
        for ident in others:
            found.extend(_states_below(frames.get(ident)))
    return found


def _states_below(frame: types.FrameType | None) -> list[HelperReads]:
    found: list[Any] = []
    while frame is not None:
        wrappers = codes.get(frame.f_code)
        if wrappers:
            found.extend(state for wrapper in list(wrappers) if (state := helpers.get(wrapper)) is not None)
        frame = frame.f_back
    return found
