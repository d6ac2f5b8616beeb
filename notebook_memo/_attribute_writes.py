"""Attributes a memoized body sets on classes, modules and objects globals hold (``Config.threshold = 0.7``,
``settings.MODE = "fast"``, ``args.lr = 0.1`` on an ``argparse.Namespace``).

A hit in a restarted kernel leaves them as the class, module or object has them, so a run that leaves one bound to
another object, or removed, is a change a hit could not make, as a global bound anew is. Which ones are watched:
the attribute names the body's code, or code it reads by name, stores (``attribute_stores``), on the classes,
modules and instances that code names (an instance's class too: ``type(opts).verbose = True``), noted by identity
before a run (a miss: never on a hit). An argument is not among them: its key holds its attributes and its class's,
so changing one is changing the argument, which is said as such.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from ._bytecode import IMPORTED, attribute_loads, attribute_stores, global_loads, namespaces_taken
from ._dependencies import Dependencies, global_label, helpers_code

__all__ = ()

_ABSENT: Any = object()  # an attribute the class or module did not have before the run
# Read without running the owner's code: a metaclass or a module subclass may define __dict__ itself.
_CLASS_DICT = vars(type)["__dict__"]
_MODULE_DICT = vars(types.ModuleType)["__dict__"]
# Objects whose attributes are code, not data a body sets: functions and the like are left alone.
_NOT_INSTANCES = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType,
                  types.CodeType)
_SLOT_KINDS = (types.GetSetDescriptorType, types.MemberDescriptorType)  # how __dict__ and __slots__ are held


class HeldAttribute(NamedTuple):
    """An attribute of a class, module or instance as a run started; or, where ``name`` is None, its whole
    namespace (one the code takes whole: ``vars(C)[k] = v``), copied into ``value``."""

    namespace: Mapping[str, Any]  # the owner's own namespace (live: read again after the run)
    name: str | None
    value: Any  # _ABSENT when the owner did not have it
    read: frozenset[str] = frozenset()  # for a whole namespace: names the code reads (filled on first use if unset)


def run_writes(fn: types.FunctionType, deps: Dependencies,
               helpers: list[tuple[types.CodeType, dict[str, Any]]] | None = None) -> tuple[
                   dict[str, HeldAttribute], str | None]:
    """Return, by label (``Config.threshold``), the attributes of classes, modules and instances a run of ``fn`` may
    set: the names its code, or code it reads, stores, on the ones that code names (through attribute chains, the
    modules it imports itself and an instance's class), and the whole namespaces it takes (``C.__dict__``,
    ``vars(C)``, ``setattr(C, name, v)``); the code of a constant text it runs with exec() or eval() counts as its
    own. One found unset (absent or None) whose name the code also reads is left out: it is filled on first use
    (``if Model._instance is None: Model._instance = load()``) and is again when next used after a hit. With them,
    what it runs whose effects cannot be known (exec() of a text made at run time), None if nothing. ``helpers``:
    ``helpers_code(fn, deps)`` where the caller listed it already (each miss walks them once)."""
    codes, unknown = _codes_run(fn, deps, helpers)
    stored = frozenset().union(*(attribute_stores(code) for code, _ in codes))
    whole = [(code, namespace, taken) for code, namespace in codes for taken in namespaces_taken(code)]
    if not stored and not whole:
        return {}, unknown
    read = frozenset().union(*(attribute_loads(code) for code, _ in codes))
    held: dict[str, HeldAttribute] = {}
    for _, scope, (root, chain) in whole:
        label, value = _resolved(scope, root, chain)
        owned = _namespace(value)
        if owned is not None:
            held.setdefault(f"{label}.__dict__", HeldAttribute(owned, None, dict(owned), read))
    for label, namespace in _owners(codes) if stored else ():
        for name in stored:
            value = namespace.get(name, _ABSENT)
            if (value is _ABSENT or value is None) and name in read:
                continue
            held.setdefault(f"{label}.{name}", HeldAttribute(namespace, name, value))
    return held, unknown


def nothing_written(fn: types.FunctionType, helpers: list[tuple[types.CodeType, dict[str, Any]]]) -> bool:
    """Return True when ``run_writes(fn, deps, helpers)`` is ``({}, None)`` whatever the namespaces hold: neither
    ``fn``'s code nor its ``helpers``' (``helpers_code``) stores an attribute, takes a namespace whole, or names
    exec() or eval()."""
    for code, _ in [(fn.__code__, fn.__globals__), *helpers]:
        if attribute_stores(code) or namespaces_taken(code) or \
                any(not chain and root in _RUNNERS for root, chain, _ in global_loads(code)):
            return False
    return True


def attributes_changed(held: Mapping[str, HeldAttribute]) -> list[str]:
    """Return the labels of the attributes in ``held`` now bound to another object than before, or removed (in a
    namespace held whole, also added, unless filled where the code reads it and found it unset)."""
    changed: list[str] = []
    for label, (namespace, name, value, read) in held.items():
        if name is not None:
            if namespace.get(name, _ABSENT) is not value:
                changed.append(label)
            continue
        now = dict(namespace)
        owner = label.removesuffix(".__dict__")
        changed.extend(f"{owner}.{key}" for key in {*value, *now}
                       if now.get(key, _ABSENT) is not (old := value.get(key, _ABSENT))
                       and not ((old is _ABSENT or old is None) and key in read))
    return sorted(changed)


def _codes_run(fn: types.FunctionType, deps: Dependencies,
               helpers: list[tuple[types.CodeType, dict[str, Any]]] | None = None) -> tuple[
                   list[tuple[types.CodeType, dict[str, Any]]], str | None]:
    """Return the code a run of ``fn`` runs that is known before it runs, with the globals each runs in: its own,
    the code it reads by name (``helpers``, where listed already), and the constant texts they run with exec() or
    eval(), compiled; and what it runs that cannot be known (exec() of a text made at run time), None if nothing."""
    codes = [(fn.__code__, fn.__globals__), *(helpers_code(fn, deps) if helpers is None else helpers)]
    unknown: str | None = None
    for code, namespace in codes:  # grows as texts are compiled: a text may run exec() in turn
        for root, chain, text in global_loads(code):
            runner = _RUNNERS.get(root)
            if chain or runner is None or namespace.get(root, _ABSENT) is not _ABSENT:
                continue  # not the builtin: the notebook's own function of that name is code it reads
            if text is None:
                if root == "exec":  # eval() of a text made at run time is a read, which its key says it leaves out
                    unknown = "runs exec() on a text made at run time"
                continue
            try:
                codes.append((compile(text, f"<{root}>", runner), namespace))
            except (SyntaxError, ValueError):  # the run raises it
                continue
    return codes, unknown


_RUNNERS = {"exec": "exec", "eval": "eval"}  # builtins that run a text, with the mode it is compiled in


def _root(namespace: dict[str, Any], root: str) -> tuple[str, Any]:
    """Return the label and value of ``root``: a global of ``namespace``, or a module the code imports itself."""
    if root.startswith(IMPORTED):
        label = root[len(IMPORTED):]
        return label, sys.modules.get(label, _ABSENT)
    return global_label(namespace, root), namespace.get(root, _ABSENT)


def _resolved(namespace: dict[str, Any], root: str, chain: tuple[str, ...]) -> tuple[str, Any]:
    """Return the label and value of ``root`` (a global of ``namespace``, or an IMPORTED module) and ``chain``,
    read from namespaces alone; the value is _ABSENT where it is not so read."""
    label, value = _root(namespace, root)
    for attr in chain:
        owned = _namespace(value)
        value = _ABSENT if owned is None else _attribute(value, owned, attr)
        label = f"{label}.{attr}"
    return label, value


def _owners(codes: list[tuple[types.CodeType, dict[str, Any]]]) -> list[tuple[str, Mapping[str, Any]]]:
    """Return the classes, modules and instances ``codes`` name, each with every one along an attribute chain
    (``pkg.sub.Config``, ``model.cfg``) and an instance's class (``type(opts)``): by label, with their own
    namespaces; each once."""
    found: dict[int, tuple[str, Mapping[str, Any]]] = {}
    for code, namespace in codes:
        for root, chain, _ in global_loads(code):
            label, value = _root(namespace, root)
            for attr in (*chain, None):
                owned = _namespace(value)
                if owned is None:
                    break
                found.setdefault(id(value), (label, owned))
                if isinstance(owned, _Instance):
                    kind = type(value)
                    found.setdefault(id(kind), (f"type({label})", _CLASS_DICT.__get__(kind, type(kind))))
                if attr is None:
                    break
                value, label = _attribute(value, owned, attr), f"{label}.{attr}"
    return list(found.values())


def _attribute(value: Any, owned: Mapping[str, Any], attr: str) -> Any:
    """Return what ``value.attr`` holds, read from namespaces alone (no property or __getattr__ runs): an
    instance's own attribute, else a plain value its class holds; _ABSENT where it is not so read."""
    if not isinstance(owned, _Instance):
        return owned.get(attr, _ABSENT)
    if attr == "__class__":
        return type(value)
    found = owned.get(attr, _ABSENT)
    if found is _ABSENT:
        for klass in type(value).__mro__:
            found = _CLASS_DICT.__get__(klass, type(klass)).get(attr, _ABSENT)
            if found is not _ABSENT:
                break
        if hasattr(type(found), "__get__"):  # a method or property: what it gives is made as it is read
            return _ABSENT
    return found


def _namespace(value: Any) -> Mapping[str, Any] | None:
    """Return a class's, module's or instance's own namespace (an instance's: its ``__dict__`` and slots), None for
    anything else (a function, or an object with neither)."""
    kind = type(value)
    try:
        if issubclass(kind, type):
            return _CLASS_DICT.__get__(value, kind)  # type: ignore[no-any-return]
        if issubclass(kind, types.ModuleType):
            return _MODULE_DICT.__get__(value, kind)  # type: ignore[no-any-return]
        if value is _ABSENT or issubclass(kind, _NOT_INSTANCES) or kind.__module__.startswith("notebook_memo"):
            return None
        if callable(getattr(kind, "__memo_key__", None)):
            return None  # its owner says what keys it: a bookkeeping object (a counter of runs), not watched
        return _Instance.of(value)
    except Exception:  # an odd namespace: not watched
        return None


class _Instance(Mapping[str, Any]):
    """An instance's own attributes, its ``__dict__`` and its slots, read through the descriptors that hold them
    (its class's ``__getattribute__`` and properties do not run)."""

    def __init__(self, value: Any, attributes: dict[str, Any] | None, slots: dict[str, Any]) -> None:
        self._value, self._attributes, self._slots = value, attributes, slots

    @classmethod
    def of(cls, value: Any) -> _Instance | None:
        """Return ``value``'s attributes, None if it has neither a ``__dict__`` nor slots."""
        attributes: dict[str, Any] | None = None
        slots: dict[str, Any] = {}
        for klass in type(value).__mro__:
            own = _CLASS_DICT.__get__(klass, type(klass))
            held = own.get("__dict__")
            if attributes is None and isinstance(held, _SLOT_KINDS):
                found = held.__get__(value, type(value))
                attributes = found if type(found) is dict else None
            if "__slots__" in own:
                for name, member in own.items():
                    if isinstance(member, types.MemberDescriptorType) and name != "__dict__":
                        slots.setdefault(name, member)
        return cls(value, attributes, slots) if attributes is not None or slots else None

    def __getitem__(self, name: str) -> Any:
        if self._attributes is not None and name in self._attributes:
            return self._attributes[name]
        member = self._slots.get(name)
        if member is None:
            raise KeyError(name)
        try:
            return member.__get__(self._value, type(self._value))
        except AttributeError:  # a slot not set
            raise KeyError(name) from None

    def __iter__(self) -> Iterator[str]:
        yield from self._attributes or ()
        yield from (name for name in self._slots if name in self)

    def __len__(self) -> int:
        return sum(1 for _ in self)
