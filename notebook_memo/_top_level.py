"""Under IPython, the notebook's ``functools.lru_cache`` functions are watched before its top level fills them.

The common notebook defines ``@lru_cache def load_table(): ...``, looks at the data (``df = load_table()``), then
calls memoized functions whose bodies use ``load_table()``. Met first by a memoized call, the loader would hold an
entry filled where its reads were not seen, and every call it serves would be refused in every kernel. So from the
import on, each cell starts by watching the notebook's lru_cache functions that are still empty (one defined in an
earlier cell, under any name, or a module of the user's), and one defined and filled in the same cell is found at
its first read by the name its frame runs under (``_lru_helpers.discover``). A plain script is left as it was.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from . import _lru_helpers
from ._fingerprint import is_user_code, module_attribute
from ._notebook import running_shell

__all__ = ()

_EVENT = "pre_run_cell"


def start(shell: Any = None) -> None:
    """Watch the notebook's lru_cache functions from now on, where IPython runs cells (``shell``, else the one
    running, if any)."""
    if shell is None:
        shell = running_shell()
        if shell is None:
            return
    events = getattr(shell, "events", None)
    if events is None:
        return
    if _before_cell not in events.callbacks.get(_EVENT, ()):  # %reload_ext runs the package's import again
        events.register(_EVENT, _before_cell)
    _lru_helpers.discover(notebook_own)


def stop(shell: Any) -> None:
    """Undo ``start`` (``%unload_ext notebook_memo``): what is watched already stays watched."""
    events = getattr(shell, "events", None)
    if events is not None and _before_cell in events.callbacks.get(_EVENT, ()):
        events.unregister(_EVENT, _before_cell)
    _lru_helpers.discover(None)


def notebook_own(wrapper: Any) -> bool:
    """Return whether the lru_cache function ``wrapper`` wraps the notebook's code (a cell's, or a user module's)."""
    return is_user_code(wrapper.__wrapped__)


def _before_cell(info: Any = None) -> None:
    """Watch each of the notebook's lru_cache functions that is still empty, before the cell can fill it: the
    cells' own, and those of the user's modules (``tablelib.load = lru_cache(_read)`` beside the notebook)."""
    from IPython import get_ipython  # running: this is its event

    shell = get_ipython()
    if shell is None:
        return
    helpers, wrapper = _lru_helpers.helpers, _lru_helpers.WRAPPER
    value: Any
    # One pass over each namespace's values with an exact type test (tens of microseconds for 1,000 names); a
    # subclass of lru_cache's wrapper is left to the keying of calls.
    for namespace in [shell.user_ns, *_user_namespaces()]:
        for value in [value for value in list(namespace.values()) if type(value) is wrapper]:
            if value not in helpers and _lru_helpers.is_helper(value) and value.cache_info().currsize == 0 \
                    and notebook_own(value):
                _lru_helpers.watch(value)


# How many modules were loaded when last counted, and the user's among them by name (with the module judged, and
# whether it is the user's): judged again only after an import, then only the modules new since, so a cell that
# imports nothing pays a length test. One missed (a module put in the place of another, the count unchanged) is
# not watched early, and what it fills at the top level is refused as before.
_count = -1
_judged: dict[str, tuple[types.ModuleType, bool]] = {}
_own: list[dict[str, Any]] = []


def _user_namespaces() -> list[dict[str, Any]]:
    """Return the namespaces of the user's loaded modules (files outside site-packages and the standard library)."""
    global _count, _judged, _own
    if _count != len(sys.modules):
        judged: dict[str, tuple[types.ModuleType, bool]] = {}
        for name, module in list(sys.modules.items()):
            if name == "__main__" or not isinstance(module, types.ModuleType):
                continue
            before = _judged.get(name)
            if before is not None and before[0] is module:
                judged[name] = before
                continue
            try:  # a file of its own: a builtin module under another's name (_io) is nobody's file
                judged[name] = (module, isinstance(module_attribute(module, "__file__"), str) and is_user_code(module))
            except Exception:  # a module whose attributes misbehave: not looked into
                judged[name] = (module, False)
        _count, _judged = len(sys.modules), judged
        _own = [vars(module) for module, own in judged.values() if own]
    return _own
