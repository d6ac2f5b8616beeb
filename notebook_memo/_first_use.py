"""Globals a user module's own code loads on first use (``global MODEL; if MODEL is None: MODEL = load()``).

A %%memo run that calls such a helper leaves its module changed: the model is loaded. A hit in a new kernel
leaves it unloaded, and the module's code loads it again when next used, so the change is the module's own
doing, not the cell's; @memo treats a global its code binds the same way. A change of any other kind (data
changed in place, a global a call sets without reading it) stays the cell's, which a hit could not do again.
"""

from __future__ import annotations

import contextlib
import dis
import functools
import sys
import types
from collections.abc import Iterator
from typing import Any

from ._bytecode import global_stores

__all__ = ()

_ABSENT: Any = object()  # a global the module did not have before the run
_LOADS = frozenset({"LOAD_GLOBAL", "LOAD_NAME"})


def home_module(value: Any) -> types.ModuleType | None:
    """Return the module a module, or a function or class imported from one, belongs to (None for another)."""
    if isinstance(value, types.ModuleType):
        return value
    if isinstance(value, (type, types.FunctionType)):
        return sys.modules.get(getattr(value, "__module__", None) or "")
    return None


def bindings(values: list[Any]) -> dict[int, dict[str, Any]]:
    """Return what the home module of each value binds now, by the module's id (a shallow copy: cheap)."""
    found: dict[int, dict[str, Any]] = {}
    for value in values:
        module = home_module(value)
        if module is not None and id(module) not in found and module.__name__ != "__main__":
            found[id(module)] = dict(vars(module))
    return found


def loaded_on_first_use(value: Any, before: dict[int, dict[str, Any]]) -> dict[str, Any] | None:
    """Return the globals of ``value``'s module that the run bound anew (name -> value before it), when each is
    one that was unset (absent or None) and that a function of the module both reads and binds (a load on
    first use); None when the module bound nothing anew, or anything else (a global deleted, or set by a
    function that never reads it: ``init()``, which the next use would not do again)."""
    module = home_module(value)
    old = before.get(id(module)) if module is not None else None
    if module is None or old is None:
        return None
    now = vars(module)
    changed = {name: old.get(name, _ABSENT) for name in {*old, *now}
               if old.get(name, _ABSENT) is not now.get(name, _ABSENT)}
    if not changed:
        return None
    loaders = _loaded_by_own_code(module)
    for name, was in changed.items():
        if name not in now or (was is not _ABSENT and was is not None) or name not in loaders:
            return None
    return changed


def _loaded_by_own_code(module: types.ModuleType) -> set[str]:
    """Return the globals that functions of ``module`` (or methods of its classes) bind, each only in code that
    reads it too: one that some function sets without reading it (``init()``) may be a setting the next use
    would not make again."""
    found: set[str] = set()
    set_blindly: set[str] = set()
    for value in list(vars(module).values()):
        members = list(vars(value).values()) if isinstance(value, type) and value.__module__ == module.__name__ \
            else [value]
        for member in members:
            fn = getattr(member, "__func__", member)  # classmethod, staticmethod
            if isinstance(fn, types.FunctionType) and fn.__globals__ is vars(module):
                read_and_bound, bound = _read_and_bound(fn.__code__)
                found |= read_and_bound
                set_blindly |= bound - read_and_bound
    return found - set_blindly


@functools.lru_cache(maxsize=4096)
def _read_and_bound(code: types.CodeType) -> tuple[frozenset[str], frozenset[str]]:
    """Return the globals ``code`` (or code nested in it) both binds and reads, and those it binds."""
    bound = global_stores(code)
    if not bound:
        return frozenset(), bound
    read: set[str] = set()
    codes = [code]
    for current in codes:
        codes.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
        read.update(i.argval for i in dis.get_instructions(current) if i.opname in _LOADS)
    return bound & frozenset(read), bound


@contextlib.contextmanager
def bound_as_before(value: Any, before: dict[str, Any]) -> Iterator[None]:
    """Bind the globals of ``value``'s module as they were before the run (``before``, from
    ``loaded_on_first_use``) for the duration: what the module is apart from them can then be hashed again."""
    module = home_module(value)
    assert module is not None
    namespace = vars(module)
    now = {name: namespace[name] for name in before}
    try:
        for name, was in before.items():
            if was is _ABSENT:
                del namespace[name]
            else:
                namespace[name] = was
        yield
    finally:
        namespace.update(now)
