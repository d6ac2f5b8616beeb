"""Files that a library reads in its C++ code with no audit event: a body's result may depend on them.

``torch.from_file`` and ``torch.UntypedStorage.from_file`` (which the typed storages' ``from_file`` calls) map a
file without Python's ``open``, so no audit event names it. They are wrapped once torch is loaded, as the link
readers are (``_links``), to tell the running bodies which file they read, before it is read. A body that imports
torch itself is watched from its next run on (the first finds them not wrapped yet).
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ()

_watched: list[bool] = []
_lock = threading.Lock()


def watch_native_reads(on_read: Callable[[Any], None]) -> None:
    """Wrap torch's file mapping functions (once, when torch is loaded) to call ``on_read(path)`` before each."""
    if _watched:
        return
    torch: Any = sys.modules.get("torch")
    if torch is None or getattr(getattr(torch, "__spec__", None), "_initializing", False):
        return  # not loaded, or loading now: its import may still bind the names wrapped here
    storage = getattr(torch, "UntypedStorage", None)
    if storage is None or not callable(getattr(torch, "from_file", None)):
        return
    with _lock:
        if _watched:
            return
        torch.from_file = _reader(torch.from_file, on_read)
        # A static method of torch's C++ base class: put on the Python class every storage's from_file reaches.
        storage.from_file = staticmethod(_reader(storage.from_file, on_read))
        _watched.append(True)


def _reader(original: Callable[..., Any], on_read: Callable[[Any], None]) -> Any:
    """Return ``original`` calling ``on_read`` with its file (the first argument, or ``filename=``) first."""

    @functools.wraps(original)
    def read(*args: Any, **kwargs: Any) -> Any:
        on_read(args[0] if args else kwargs.get("filename"))
        return original(*args, **kwargs)

    read._notebook_memo_original = original  # type: ignore[attr-defined]
    return read
