"""What a function or cell reads besides its arguments, and whether that changed.

Dependencies are resolved on every call, because a helper or a constant may be edited
in another cell at any time: user functions and classes by their fingerprints (and their
own dependencies, transitively), data globals by content, installed packages by name and
version. Whatever cannot be hashed is left out and reported. A resolution records what it
read (a watch list of identities); while all of them are unchanged and nothing mutable was
read, the next call re-uses it. A function reached through a value (an argument, a container,
a partial) is hashed by the same resolution, so it is keyed like a helper the body calls.
"""

from __future__ import annotations

import abc
import builtins
import collections
import collections.abc
import contextlib
import copyreg
import functools
import gc
import importlib
import importlib.metadata  # up front: a key asked after a process gave up its rights must not import
import importlib.util
import io
import itertools
import os
import re
import sys
import threading
import time
import types
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import xxhash

from . import _config
from ._bytecode import (
    CALLED_WITH,
    CLOSED,
    CONTAINED,
    IMPORTED,
    LC_NUMERIC,
    LC_TIME,
    OWN_MODULE,
    SUBSCRIPT,
    TEXT_AFTER,
    TEXT_COMPUTED,
    TEXT_GLOBAL,
    TEXT_MADE,
    TEXT_PASSED,
    WHOLE,
    attribute_stores,
    called_before,
    class_route_receivers,
    computes_evaluated_text,
    evaluated_reads,
    forwarded_evaluation,
    global_loads,
    global_references,
    global_stores,
    imported_references,
    keyword_calls,
    locale_formatting,
    loose_attributes,
    name_arguments,
    passed_beside,
    passes_text_on,
    seeds_without_argument,
    spec_categories,
    text_pieces,
)
from ._errors import UnhashableArgument
from ._evaluated import (
    AT_NAMES,
    called_evaluates,
    evaluates_on,
    evaluates_text,
    held_along,
    held_attribute,
    is_frame,
    marked_names,
    names_read,
    namespace_reader,
    partial_evaluator,
    reads_every_name,
)
from ._fingerprint import (
    _DERIVED,
    _MISSING,
    _class_items,
    _holder,
    _holders,
    _immutable,
    _module_is_user_code,
    _same,
    _same_value,
    class_fingerprint,
    class_held_functions,
    is_user_code,
    own_fingerprint,
    superseded,
)
from ._handles import handle_files, handle_settings, is_connection
from ._links import originals as link_readers
from ._lru_helpers import is_helper, watch
from ._notebook import is_history, shell_namespace
from ._random_state import entropy_sources
from ._replaced import original_of, rebound_at_first_run, seeder_of, state_object_read, unseen_state_method
from ._rules import rules_digest
from ._settings_env import (
    SettingsReads,
    file_reads,
    init_keywords,
    is_settings_class,
    settings_reads,
    settings_text,
    settings_values,
)
from ._uses import CALLED, TESTED, global_uses
from .hashing import (
    BOOKKEEPING_PREFIX,
    CLOCK,
    STATE_FUNCTION,
    Hasher,
    carry_into_deep_walks,
    combine,
    content_hash,
    filled_cached_properties,
    hasher_registered,
    hashers_registered,
    install_code_handler,
    install_patch_reader,
    install_state_function_hook,
    install_version_reader,
    keyed_as_wrapped,
    library_version,
    note_state_function,
    note_state_use,
    qualified_name,
    things_met,
)

__all__ = ()

# Mutable data a body reads: (label, value, its digest then, the functools.cached_property values it held then).
# A run that changes it in place did what a hit cannot do again; one that only fills such a value did not.
DataRead = tuple[str, Any, bytes, frozenset[str]]


def package_version(module_name: str) -> str:
    """Return the installed version of the distribution providing ``module_name``."""
    top = module_name.partition(".")[0]
    return _top_version(top)


@functools.lru_cache(maxsize=1024)
def _top_version(top: str) -> str:
    module = sys.modules.get(top)
    version = getattr(module, "__version__", None)
    if isinstance(version, str):
        return version
    try:
        dists = importlib.metadata.packages_distributions().get(top, [])
        return importlib.metadata.version(dists[0]) if dists else ""
    except Exception:
        return ""


def _value_version(module_name: str) -> str | None:
    """Return the version keyed with a library's function, class or module met in a value (an argument, data a
    global holds), as a body naming it keys it: under the setting of the resolution running, else the one
    configured; None for the standard library and where versions are off."""
    stack = _resolvers()
    track = stack[-1].track_versions if stack else _config.settings.track_versions
    top = module_name.partition(".")[0]
    if not track or not top or top in sys.stdlib_module_names or top == "builtins":
        return None
    return package_version(top)


install_version_reader(_value_version)


def _imported_module(name: str) -> tuple[types.ModuleType | None, bool]:
    """Return ``(module, is_library)`` for a name a function body imports.

    A user module the body would import on its first run is imported now, so that the
    first call's key already covers its code (a key made without it would later be hit
    by a process whose module had changed).
    """
    module = sys.modules.get(name)
    if module is not None:
        return module, not is_user_code(module)
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None, False
    if spec is None:
        return None, False
    folders = list(spec.submodule_search_locations or [])
    location = spec.origin if spec.has_location else (os.path.join(folders[0], "") if folders else None)
    if not _module_is_user_code(name, location):
        return None, True
    try:
        return importlib.import_module(name), False
    except Exception:  # the body will meet the same error when it runs
        return None, False


# itertools.count among them: a counter of ids (next(Node._ids)) a hit would leave where it was.
_CONTAINERS = (list, dict, set, bytearray, collections.deque, itertools.count)


# The settings of a connection (handle_settings) that are sqlite3's converter and adapter tables, and the digest
# each had when last hashed whole: (its entries as _table_entries gives them, the hashers registered then, digest)
_TABLE_SETTINGS = frozenset({"converters", "adapters"})
_TABLE_DIGESTS: dict[str, tuple[tuple[Any, ...], int, bytes]] = {}
# Py_TPFLAGS_IMMUTABLETYPE: no attribute of the class can be set or replaced (int, ndarray...), so nothing can be
# patched into it
_IMMUTABLE_TYPE = 1 << 8


def _table_entries(table: Any) -> tuple[Any, ...] | None:
    """Return the entries of a copy of sqlite3's converters or adapters, each with the name its function is keyed by
    and whether attributes were set on that function, where every key is a name or a tuple of classes of ``type``
    and every value a plain function; None otherwise. Two such tuples are equal only where their classes and
    functions are the same objects (compared by identity) and their names the same texts."""
    if type(table) is not dict:
        return None
    entries: list[Any] = []
    for key, fn in table.items():
        if not (type(key) is str or (type(key) is tuple and all(type(cls) is type for cls in key))) or \
                type(fn) is not types.FunctionType:
            return None
        entries.extend((key, fn, fn.__module__, fn.__qualname__, bool(fn.__dict__)))
    return tuple(entries)


def _of_the_standard_library(table: dict[Any, Any]) -> bool:
    """Return True when sqlite3's converters or adapters (a copy, as _table_entries takes it) are all the standard
    library's own: names, or tuples of classes no code can change, mapped to its plain functions (none wrapped, none
    closing over a value, none with attributes set, none of ours), which content_hash keys by their names alone
    (no version for the standard library), under no hasher of the user's for what it walks. False otherwise (a
    function of the notebook's, whose digest follows the code and globals it reads)."""
    if hasher_registered((dict, tuple, str, type, types.FunctionType, object)):
        return False
    for key, fn in table.items():
        if type(key) is tuple and not all(_stdlib(cls.__module__) and
                                          all(base.__flags__ & _IMMUTABLE_TYPE for base in cls.__mro__)
                                          for cls in key):
            return False
        if fn.__closure__ is not None or fn.__dict__ or not _stdlib(fn.__globals__.get("__name__")) or \
                is_user_code(fn) or original_of(fn) is not fn:
            return False
    return True


def _stdlib(module: Any) -> bool:
    top = module.partition(".")[0] if isinstance(module, str) else ""
    return top in sys.stdlib_module_names and top != "__main__"


def _watched(value: Any) -> bool:
    """Return True for data whose change in place by a body is a change of state a hit could not make again:
    containers, arrays, frames, tensors and models. Other objects may change as they are read (a lazy cache,
    scipy's format flags), which would leave their readers uncached."""
    if isinstance(value, _CONTAINERS):
        return True
    modules = sys.modules
    np, pd, torch = modules.get("numpy"), modules.get("pandas"), modules.get("torch")
    return (np is not None and isinstance(value, np.ndarray)) or \
        (pd is not None and isinstance(value, (pd.DataFrame, pd.Series))) or \
        (torch is not None and isinstance(value, (torch.Tensor, torch.nn.Module)))


def _public_attributes(fn: Any) -> list[tuple[str, Any]]:
    """Return the state attached to a function (``f.threshold = 3``), in name order."""
    attrs = getattr(fn, "__dict__", None)
    if not attrs:
        return []
    return sorted((name, value) for name, value in attrs.items()
                  if not (name.startswith("__") and name.endswith("__")) and not name.startswith(BOOKKEEPING_PREFIX))


def _fn_watch(fn: types.FunctionType) -> tuple[Any, ...]:
    kwdefaults = fn.__kwdefaults__  # a dict: ``f.__kwdefaults__["k"] = 5`` changes it in place
    return ("fn", fn, fn.__code__, fn.__defaults__, kwdefaults, fn.__dict__, list(fn.__dict__.items()),
            None if kwdefaults is None else list(kwdefaults.items()))


# What a library's wrapper keeps between calls (a cache, a registry, a set of calls running): its content
# changes as the wrapper runs, so it is never a setting that keys it.
_WORKING_STATE: tuple[type, ...] = (*_CONTAINERS, collections.abc.MutableMapping, collections.abc.MutableSequence,
                                    collections.abc.MutableSet)


def _user_code(value: Any) -> bool:
    return isinstance(value, (types.FunctionType, type)) and is_user_code(value)


def _wrapper_cells(fn: types.FunctionType) -> list[tuple[int, str, Any]]:
    """Return ``(index, name, value)`` of the closure cells of a library's wrapper around the user's code: the
    decorator's arguments (``np.errstate(invalid="ignore")``, ``torch.autocast("cpu", dtype=...)``) and the user's
    code it holds. The function it wraps (``__wrapped__``) is followed apart; a library's own closures, which
    hold none of the user's code, give []."""
    closure = fn.__closure__
    if not closure:
        return []
    wrapped = fn.__dict__.get("__wrapped__")
    cells = []
    for index, (name, cell) in enumerate(zip(fn.__code__.co_freevars, closure)):
        try:
            value = cell.cell_contents
        except ValueError:  # not bound yet
            continue
        if value is not wrapped and value is not fn:
            cells.append((index, name, value))
    if wrapped is None and not any(_user_code(value) for _, _, value in cells):
        return []
    return cells


def _closed_readers(fn: types.FunctionType) -> dict[str, Any]:
    """Return the free variables of ``fn`` whose cells hold a module or a library's function (``import os`` or
    ``from os import getenv`` in the function that made it), and its parameters whose defaults do (``mod=os``), by
    name: what code reads through them is read as through a global (a caller that passes another value only adds
    to what is keyed). os.environ held there is data, keyed whole (``value``); the user's functions are followed as
    values."""
    code = fn.__code__
    held: list[tuple[str, Any]] = []
    for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
        try:
            held.append((name, cell.cell_contents))
        except ValueError:  # not bound yet
            continue
    defaults = fn.__defaults__ or ()
    if defaults:
        held.extend(zip(code.co_varnames[code.co_argcount - len(defaults):code.co_argcount], defaults))
    held.extend((fn.__kwdefaults__ or {}).items())
    return {name: value for name, value in held if isinstance(value, types.ModuleType) or (
        isinstance(value, (types.FunctionType, types.BuiltinFunctionType, functools.partial))
        and not _user_code(value))}


def _same_items(now: dict[str, Any], then: list[tuple[str, Any]]) -> bool:
    if len(now) != len(then):
        return False
    return not then or all(k == a and v is b for (k, v), (a, b) in zip(now.items(), then))


@dataclass
class Dependencies:
    """What a function's result depends on besides its arguments."""

    parts: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # label -> (kind, digest)
    skipped: dict[str, str] = field(default_factory=dict)  # label -> why it was left out
    clock: list[str] = field(default_factory=list)  # where the user's code reads the wall clock
    # label -> the files read through the open handle it holds (a file object, an SQLite connection): reads of
    # every run, checked on a hit; () where they cannot be told, so no result is stored (see _handles)
    handles: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # label -> the sqlite3 connection among those handles: what it is set to, and the code registered on it, are
    # looked at around a run (see Recorder.read_connection); never pickled (a worker gets no connection)
    connections: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "connections": {}}

    def digest(self) -> bytes:
        """Return one digest of every dependency, independent of discovery order."""
        items = sorted((label, kind, d) for label, (kind, d) in self.parts.items())
        return combine([f"{label}\0{kind}".encode() + d for label, kind, d in items])


_DYNAMIC_LOOKUPS = frozenset({"globals", "eval", "exec"})
_SUBCLASSES = "__subclasses__"
# What builtins held when the package was imported: a name the notebook puts there later, or replaces, is its own.
_BUILTINS_AT_IMPORT: dict[str, Any] = dict(vars(builtins))
# Names that reach a namespace through a frame or a function (sys._getframe().f_globals, helper.__globals__,
# get_ipython().user_ns, inspect.getargvalues(frame).locals), as the cells' _FRAME_READS: what is read there is not
# in the code. Getting a frame is not one: a helper that logs its caller's f_code or f_lineno reads no names.
_FRAME_NAMES = frozenset({"f_globals", "f_locals", "__globals__", "user_ns", "user_global_ns", "getargvalues"})


# Names IPython binds in a notebook's namespace and, for each cell, in builtins (init_user_ns, its BuiltinTrap): the
# shell itself (which holds its history database, and cannot be hashed), its exit helper, its display. They are the
# same in every kernel, so like the builtins the library found they are not keyed; the notebook's own function of
# one of these names is code, and keyed as code.
_IPYTHON_NAMES = frozenset({"get_ipython", "exit", "quit", "display"})


def _ipython_own(name: str, value: Any) -> bool:
    """Return True when ``value``, bound to ``name``, is what IPython binds there (not the notebook's own)."""
    if name not in _IPYTHON_NAMES:
        return False
    if isinstance(value, types.MethodType):
        value = value.__func__
    where = value if isinstance(value, types.FunctionType) else type(value)
    module = where.__module__
    return isinstance(module, str) and module.partition(".")[0] == "IPython"


def _frame_read(code: types.CodeType) -> str | None:
    """Return the first name by which ``code`` (or code nested in it) reaches a frame or a function's globals."""
    codes = [code]
    for current in codes:
        found = _FRAME_NAMES.intersection(current.co_names)
        if found:
            return min(found)
        codes.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
    return None


def _is_singledispatch(value: Any) -> bool:
    """Return True for a ``functools.singledispatch`` function (its registry is code too)."""
    return isinstance(value, types.FunctionType) and isinstance(getattr(value, "registry", None),
                                                                types.MappingProxyType) \
        and callable(getattr(value, "dispatch", None)) and hasattr(value, "__wrapped__")


def _implementations(fn: Any) -> list[tuple[str, type, Any]]:
    """Return a singledispatch function's implementations, with the type they serve and its name, by name."""
    return sorted(((qualified_name(kind), kind, impl) for kind, impl in fn.registry.items()), key=lambda item: item[0])


def _fixed(value: Any) -> bool:
    """Return True for a value whose content cannot change while it is the same object."""
    return _immutable(value) or isinstance(value, (types.FunctionType, type))


# The user's code patched into a library class, by label (``torch.nn.Linear.forward``).
_Patches = tuple[tuple[str, Any], ...]


@dataclass
class _LibraryBases:
    """The library classes of one class's MRO that code can be patched into, their namespaces as last
    scanned, and the user's code found in them. The class itself, which keys the cache weakly, is not among
    ``bases``, nor are its own descriptors kept: ``own`` says whether it is one of them, as the first."""

    order: int  # id of the MRO they were found in (held by the class, so not reused while it lives)
    own: bool
    bases: tuple[type, ...]  # the others
    namespaces: list[dict[str, Any]]  # the class's own without its __dict__ and slot descriptors (they name it)
    size: int  # how many names the class's own namespace had
    patches: _Patches


_library_bases: weakref.WeakKeyDictionary[type, _LibraryBases] = weakref.WeakKeyDictionary()


def _is_patch(attr: Any) -> bool:
    """Return True for the user's code as a class or module attribute: a function or class, or one inside a
    static or class method, a property or a cached property, or one a library's object there holds as an
    attribute of its own (``functools.partialmethod(mine)``, pandas' accessor of the user's class, a library
    decorator's wrapper around the user's function).

    By ``type()``, never ``isinstance``: that asks an object for its ``__class__``, which a library's deprecated
    alias answers with a warning (``torch.distributed.reduce_op``)."""
    kind = type(attr)
    if issubclass(kind, (staticmethod, classmethod)):
        attr = attr.__func__
        kind = type(attr)
    elif issubclass(kind, functools.cached_property):
        attr = attr.func
        kind = type(attr)
    elif issubclass(kind, property):
        return any(_own_code(fn) for fn in (attr.fget, attr.fset, attr.fdel))
    if kind is types.FunctionType and str(attr.__globals__.get("__name__", "")).startswith("namedtuple_"):
        return False  # the __new__ collections.namedtuple writes for a library's named tuple (urlsplit's)
    if _own_code(attr):
        return True
    if issubclass(kind, type):
        return False
    try:
        held = object.__getattribute__(attr, "__dict__")  # not through a __getattr__ of the library's
    except Exception:  # none: a C object's state is not code put there
        return False
    return type(held) is dict and any(_own_code(value) for value in list(held.values()))


def _own_code(value: Any) -> bool:
    """Return True for the user's function or class, telling it by ``type()`` alone (see _is_patch)."""
    kind = type(value)
    return (kind is types.FunctionType or issubclass(kind, type)) and is_user_code(value)


def _patchable(klass: type) -> bool:
    return not klass.__flags__ & _IMMUTABLE_TYPE and not is_user_code(klass)


def _library_scan(cls: type) -> _LibraryBases:
    """Return the library classes of ``cls``'s MRO and the user's code patched into them (``fractions.Fraction.
    limit_denominator = mine``), by label; the same ``patches`` tuple while they are the same.

    Scanned again only when one of their namespaces changed: while none did, one comparison of each, made
    in C (each value by identity first), and no scan."""
    held = _library_bases.get(cls)
    if held is not None and _unchanged(cls, held):
        return held
    mro = cls.__mro__
    own = _patchable(cls)
    bases = tuple(k for k in mro[1:] if _patchable(k))
    classes = (cls, *bases) if own else bases
    namespaces = [dict(vars(klass)) for klass in classes]
    found = tuple((f"{qualified_name(klass)}.{name}", attr) for klass, namespace in zip(classes, namespaces)
                  for name, attr in sorted(namespace.items()) if _is_patch(attr))
    if held is not None and _same_patches(held.patches, found):
        found = held.patches  # what changed is not the user's code: watched as it was
    size = len(vars(cls))
    if own:  # held weakly by the cache, so not by its own descriptors either (a class made at run time goes)
        namespaces[0] = {name: attr for name, attr in namespaces[0].items() if not isinstance(attr, _DERIVED)}
    state = _LibraryBases(id(mro), own, bases, namespaces, size, found)
    with contextlib.suppress(TypeError):
        _library_bases[cls] = state
    return state


def _unchanged(cls: type, scan: _LibraryBases) -> bool:
    """Return True when the library classes a scan of ``cls`` looked at hold what they held then."""
    if scan.order != id(cls.__mro__):
        return False
    namespaces = iter(scan.namespaces)
    try:
        if scan.own:
            own, namespace = vars(cls), next(namespaces)
            # Both made in C, each value by identity first; a subset where descriptors were left out
            if not (own == namespace if len(namespace) == scan.size else
                    len(own) == scan.size and namespace.items() <= own.items()):
                return False
        return all(vars(klass) == namespace for klass, namespace in zip(scan.bases, namespaces))
    except Exception:  # a value whose == raises (an array put there): changed
        return False


@dataclass
class _ModuleScan:
    """A library module's namespace as last scanned, and the user's code found in it, by label."""

    namespace: dict[str, Any]
    patches: _Patches


_module_scans: weakref.WeakKeyDictionary[types.ModuleType, _ModuleScan] = weakref.WeakKeyDictionary()


def _module_patches(module: types.ModuleType) -> _Patches:
    """Return the user's code the notebook put in a library module (``colorsys.rgb_to_hsv = mine``), by label;
    scanned again only when its namespace changed (one comparison, made in C, each value by identity first)."""
    namespace = vars(module)
    held = _module_scans.get(module)
    if held is not None:
        try:
            if namespace == held.namespace:
                return held.patches
        except Exception:  # a value whose == raises (an array put there): changed
            pass
    snapshot = dict(namespace)
    name = module.__name__
    found = tuple((f"{name}.{attr_name}", attr) for attr_name, attr in
                  sorted((item for item in snapshot.items() if type(item[0]) is str), key=lambda item: item[0])
                  if _is_patch(attr))
    if held is not None and _same_patches(held.patches, found):
        found = held.patches
    with contextlib.suppress(TypeError):
        _module_scans[module] = _ModuleScan(snapshot, found)
    return found


def _registered(cls: abc.ABCMeta, users_only: bool) -> list[str]:
    """Return the qualified names of the virtual subclasses registered with an ABC (``Shape.register(Blob)``),
    sorted: its answer to ``isinstance``, which its namespace does not show (only the user's classes, for a
    library ABC: which of its own the library registers depends on what is imported)."""
    dump = getattr(abc, "_get_dump", None)  # the C implementation's registry: weak references
    if dump is not None:
        refs = dump(cls)[0]
        registered = [klass for ref in refs if (klass := ref()) is not None]
    else:  # the pure-Python abc (_py_abc): a WeakSet on the class
        registered = list(getattr(cls, "_abc_registry", ()))
    return sorted(qualified_name(klass) for klass in registered
                  if isinstance(klass, type) and (not users_only or is_user_code(klass)))


def _subclasses(cls: type) -> list[type]:
    """Return what ``cls.__subclasses__()`` lists, as ``type`` lists it (a metaclass's own is code, keyed apart)."""
    return type.__subclasses__(cls)


# A subclass listing that holds a class redefined by a cell run again (two subclasses of one name), as a full
# collection left it, by class: each subclass weakly, with the reference count of each older one of a name. While
# the listing and those counts stay the same, nothing released the older classes, and a collection would leave
# them again; one is run only when either changed.
_Lingering = tuple[tuple[weakref.ref[type], int], ...]
_lingering: weakref.WeakKeyDictionary[type, _Lingering] = weakref.WeakKeyDictionary()


def _older_of_a_name(names: list[str]) -> set[int]:
    """Return the positions in a subclass listing (in the order the classes were made) of each class whose name a
    later one has: a class redefined since, which something may still hold."""
    last = {name: index for index, name in enumerate(names)}
    return {index for index, name in enumerate(names) if last[name] != index}


def _lingering_of(found: list[type], names: list[str]) -> _Lingering:
    """Return a listing's subclasses, weakly, each with its reference count where a later subclass has its name
    (0 for the last of a name)."""
    older = _older_of_a_name(names)
    return tuple((weakref.ref(sub), sys.getrefcount(sub) if index in older else 0) for index, sub in enumerate(found))


# The older subclasses of a name in a kept code state's subclass listings (see _held): the watch item's index, the
# subclass's index in its listing, and the subclass's reference count.
_Held = tuple[tuple[int, int, int], ...]


def _held(watch: list[tuple[Any, ...]]) -> _Held:
    """Return the older subclasses of a name that the subclass listings of ``watch`` hold, with their reference
    counts: a kept code state holds such a class itself, so that only a change of its count (the instance that kept
    it released) shows that a collection would now leave it out."""
    lingering = []
    for position, item in enumerate(watch):
        if item[0] == "subclasses":
            older = _older_of_a_name([qualified_name(sub) for sub in item[2]])
            lingering += [(position, index, sys.getrefcount(item[2][index])) for index in sorted(older)]
    return tuple(lingering)


def _still_held(watch: list[tuple[Any, ...]], lingering: _Held) -> bool:
    """Return True when the older subclasses of a name in ``watch`` are as many times referenced as they were."""
    return all(sys.getrefcount(watch[position][2][index]) == count for position, index, count in lingering)


def _collected_in_vain(klass: type, found: list[type], names: list[str]) -> bool:
    """Return True when a collection already left ``klass``'s subclasses as ``found`` lists them, and nothing has
    released the older classes of a name since."""
    then = _lingering.get(klass)
    if then is None or len(then) != len(found):
        return False
    now = _lingering_of(found, names)
    return all(ref() is sub and count == held for (ref, count), (_, held), sub in zip(then, now, found))


def _same_patches(then: _Patches, now: _Patches) -> bool:
    return now is then or (len(now) == len(then) and all(a == b and x is y for (a, x), (b, y) in zip(now, then)))


class _Resolver:
    def __init__(self, track_versions: bool, by_code: bool = False) -> None:
        self.deps = Dependencies()
        self.track_versions = track_versions
        self.by_code = by_code  # key functions by their code objects (values: alike in workers)
        self.seen: set[int] = set()
        # What the result was read from, with the identities seen: while all of them are
        # unchanged (and nothing mutable was read), the same resolution holds.
        self.watch: list[tuple[Any, ...]] = []
        self.volatile = False
        # Volatile because of what only a new resolution can follow (hard), or only because of
        # mutable data on a class, which can be hashed again where it lies (class_data).
        self.hard = False
        self.class_data: list[tuple[type, str, str]] = []
        # Content digests of the values met, by identity (each value held, so no id is reused):
        # a global frame that the function and its helpers all read is hashed once per call.
        self.hashed: dict[int, tuple[Any, bytes]] = {}
        # The mutable data read, with its digest: a body that changes it in place did what a hit cannot.
        self.mutable: list[DataRead] = []
        # Also take in the mutable data read by the code of values met (the module dict an input's method fills):
        # a cell's input, unlike an argument, is not compared by that data, which its entry does not hold.
        self.nested_mutable = False
        self.drawn: set[int] = set()  # ids of values holding random generators
        # The namespace and code of the function whose global chain (name, attributes) is being resolved: a global
        # generator object it reads after calling its seeder (called_before) does not read the state the call found
        self.calls_before: tuple[dict[str, Any], types.CodeType | None, tuple[str, tuple[str, ...]]] = ({}, None,
                                                                                                      ("", ()))
        self.scanned: set[int] = set()  # ids of classes whose library bases were looked at for patches
        # A class's __hash__ (whatever its code is named: a lambda, attrs' generated one) and the code reached from
        # it serve dict and set lookups, whose answers do not depend on the hash seed: the seed they read is not
        # keyed. Met there: how deep, the ids first resolved there, and whether any of them read the seed (keyed
        # when one of them is reached again from elsewhere, as a helper the body calls).
        self.in_hash = 0
        self.hash_only: set[int] = set()
        self.seed_in_hash = False
        # A class met as a value (an argument's): the hash seed, process ids, host and user its methods read are
        # keyed for a call only when the body names a member that reaches the read (member_states, told by
        # value_class); the member being resolved, where each code was first met (one met again from another member
        # that read it counts for that one too), and the names each member's code holds (``self._pid()``).
        self.member: str | None = None
        self.member_of: dict[int, str] = {}
        self.member_states: dict[str, set[str]] | None = None
        self.member_names: dict[str, set[str]] = {}
        # A function's resolution: what the members of a value's class read (a global instance's) is decided at its
        # end, by the names all the code it reached holds (pending_members); any other keys it when the value is met.
        self.defer_members = False
        self.pending_members: list[dict[str, frozenset[str]]] = []
        # A settings class met, and code met that passes BaseSettings() keywords changing where it reads
        # (_env_prefix=..., or **options that may hold them), with the env files named by constants: together, the
        # class's own reads are not the ones made, and the whole environment is keyed (and those files).
        self.settings_met = False
        self.settings_overridden = False
        self.settings_files: set[str] = set()
        self.settings_keyed: set[str] = set()
        # Code met that lists subclasses (``Plugin.__subclasses__()``, through ``cls`` or ``getattr``): which class's
        # is not known from the code, so once one is met, the subclasses of every user class resolved are keyed
        # (classes_met: those resolved before, with their labels).
        self.lists_subclasses = False
        self.classes_met: list[tuple[type, str]] = []
        # A method's warning that it evaluates a text its caller passes it (``def q(self, text): df.query(text)``)
        # is the caller's to give: one calling it through its class with a global instance first (``Box.q(BOX,
        # text)``) keys the text's names, or warns, itself. Such warnings, by label (forwarded: those of a
        # parameter only), and those left out for that caller, by the id of the class and of the method: given
        # back when either is reached again from elsewhere, by a route no caller follows (``Box(DF).q(make())``).
        self.forwarded: dict[str, bool] = {}
        self.quieted: dict[int, dict[str, str]] = {}

    def first_met(self, obj: Any) -> bool:
        """Return True, marking it seen, when ``obj`` (a function, class or module) is not resolved yet; keying the hash
        seed when it was resolved within a __hash__ that read it, and is reached again from elsewhere."""
        if id(obj) in self.seen:
            self.deps.skipped.update(self.quieted.pop(id(obj), {}))
            if not self.in_hash and id(obj) in self.hash_only and self.seed_in_hash:
                self.note_state(HASH_SEED, _hash_seed())
            first = self.member_of.get(id(obj))
            if self.member is not None and self.member_states is not None and first not in (None, self.member):
                for members in self.member_states.values():
                    if first in members:
                        members.add(self.member)
                self.member_names.setdefault(self.member, set()).update(self.member_names.get(first, ()))
            return False
        self.seen.add(id(obj))
        if self.in_hash:
            self.hash_only.add(id(obj))
        if self.member is not None:
            self.member_of[id(obj)] = self.member
        return True

    def note_state(self, label: str, text: str) -> None:
        """Key process state the code reads, as text; checked on every call, like an environment variable
        (os.chdir changes it between two calls)."""
        self.watch.append(("probe", label, text))
        self.deps.parts[label] = ("settings", text.encode())

    def function(self, fn: types.FunctionType, label: str) -> None:
        if not self.first_met(fn):
            return
        self.watch.append(_fn_watch(fn))
        if self.member is not None and self.member_states is not None:
            self.member_names.setdefault(self.member, set()).update(_names_and_texts(fn.__code__))
        digest, _ = own_fingerprint(fn, self.by_code)
        parts = [digest]
        self.defaults(fn, label, parts)
        self.deps.parts[label] = ("code", combine(parts))
        self.globals_of(fn, label)
        for index, (cell_name, cell) in enumerate(zip(fn.__code__.co_freevars, fn.__closure__ or ())):
            if cell_name == "__class__" and self.by_code:
                # A method's own class (for super()): resolved, but not watched through the
                # cell, which would keep the class alive in the cache of values.
                with contextlib.suppress(ValueError):
                    self.value(cell.cell_contents, f"{label}.<class>")
                continue
            self.closure(fn, index, f"{label}.<closure {cell_name}>")
        self.state_of(fn, label)

    def defaults(self, fn: types.FunctionType, label: str, parts: list[bytes]) -> None:
        defaults = (fn.__defaults__, fn.__kwdefaults__)
        if defaults == (None, None):
            return
        values = [*(fn.__defaults__ or ()), *(fn.__kwdefaults__ or {}).values()]
        if not all(_fixed(v) for v in values):
            self.volatile = self.hard = True  # a mutable default (the body may change it)
        try:
            parts.append(content_hash(defaults, f"the defaults of {label}"))
        except UnhashableArgument as exc:
            self.deps.skipped[f"{label} defaults"] = exc.reason

    def state_of(self, fn: Any, label: str) -> None:
        """Resolve what a function carries besides its code: ``__wrapped__`` and attributes."""
        wrapped = fn.__dict__.get("__wrapped__") if isinstance(getattr(fn, "__dict__", None), dict) else None
        if wrapped is not None:
            self.value(wrapped, f"{label}.__wrapped__")
        for name, attr in _public_attributes(fn):
            self.value(attr, f"{label}.{name}")

    def closure(self, fn: types.FunctionType, index: int, label: str) -> None:
        cell = (fn.__closure__ or ())[index]
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell: the variable is not bound yet
            self.watch.append(("cell", cell, _MISSING, fn, index))
            return
        self.watch.append(("cell", cell, value, fn, index))
        self.value(value, label)

    def globals_of(self, fn: types.FunctionType, owner: str) -> None:
        self.subclasses_listed(fn.__code__)
        namespace = fn.__globals__
        builtins_ns = namespace.get("__builtins__", {})
        builtins_dict = builtins_ns if isinstance(builtins_ns, dict) else vars(builtins_ns)
        references = global_references(fn.__code__)
        names = {name for name, _ in references}
        # A global the code binds without reading it (global COUNT; COUNT = a) is keyed as read: a run that bound it
        # to what it held already changed nothing, and its result, stored, would be served where it holds something
        # else, which a hit leaves as it is. Keyed by what it holds, such a run is served only where it holds that.
        bound_only = tuple((name, ()) for name in sorted(global_stores(fn.__code__) - names))
        outer = self.calls_before
        for name, chain in references + bound_only:
            self.calls_before = (namespace, fn.__code__, (name, chain))
            value = namespace.get(name, _MISSING)
            self.watch.append(("global", namespace, name, value))
            if value is _MISSING:
                self.builtin_name(builtins_dict, name, chain, owner)
                continue
            if _ipython_own(name, value):
                continue  # still watched: a notebook that binds its own get_ipython is resolved again
            self.evaluating_method(value, name, chain, owner)
            self.evaluator_by_other_name(value, name, chain, owner)
            if rebound_at_first_run(value) and _rebound_there(namespace):
                # random.getstate taken by name before anything was wrapped: the first run binds the wrapper there
                keyed_as_wrapped(self.reference, value, chain, global_label(namespace, name))
                continue
            quiet = self.class_route(fn.__code__, namespace, value, name, chain)
            before = set(self.deps.skipped) if quiet else set()
            self.reference(value, chain, global_label(namespace, name))
            if quiet:
                self.quiet_forwarded(value, chain[0], set(self.deps.skipped) - before)
        self.calls_before = outer
        read = _frame_read(fn.__code__)
        if read is not None:
            self.deps.skipped[f"{owner}: .{read}"] = (
                f"it reaches a namespace through .{read} (a frame's or a function's globals) at run time, so which "
                "globals it reads is not known; read them by name, or pass them as arguments")
        self.evaluated(fn, owner)
        self.imports_of(fn)
        self.environment_and_clock(fn, owner)
        self.settings_keywords(fn.__code__)

    def class_route(self, code: types.CodeType, namespace: dict[str, Any], value: Any, name: str,
                    chain: tuple[str, ...]) -> bool:
        """Return True where ``code`` (a function's, or a cell's) reads the user class ``value`` (its global ``name``)
        only to call ``name.method(INSTANCE, ...)``, a method passing its text on to a frame's query or eval, with
        a global instance of the class first: the code's own analysis keys that text's names, or warns."""
        if len(chain) != 1 or not isinstance(value, type) or not is_user_code(value):
            return False
        method = held_attribute(value, chain[0])
        if not isinstance(method, types.FunctionType) or forwarded_evaluation(method, value) is None:
            return False
        if any(read == name and read_chain != chain for read, read_chain in global_references(code)):
            return False
        receivers = class_route_receivers(code, name, chain[0])
        return bool(receivers) and all(receiver is not None and isinstance(namespace.get(receiver), value)
                                       for receiver in receivers)

    def quiet_forwarded(self, cls: type, attribute: str, added: set[str]) -> None:
        """Leave out the warnings ``added`` that the class's method ``attribute`` (resolved with ``cls``) gave for
        texts its caller passes it, only: the caller met it by ``class_route``, whose texts its own code shows."""
        method = held_attribute(cls, attribute)
        classes = {klass.__qualname__ for klass in cls.__mro__}  # as cls() labels their methods
        left: dict[str, str] = {}
        for label in added:
            owner, _, name = label.partition(":")[0].rpartition(".")
            if self.forwarded.get(label) and name == attribute and owner.partition("#")[0] in classes:
                left[label] = self.deps.skipped.pop(label)
        if left:
            self.quieted.setdefault(id(cls), {}).update(left)
            self.quieted.setdefault(id(method), {}).update(left)

    def evaluating_method(self, value: Any, name: str, chain: tuple[str, ...], owner: str) -> None:
        """Note a method of an object of the user's class that the code reaches by name (``OWN.q()``) and that
        evaluates a text it makes itself at run time: the method's own warning stays inside the digest of its class,
        which keys the object, and warns no one."""
        if not chain or isinstance(value, (type, types.ModuleType)) or not is_user_code(type(value)):
            return
        method = held_attribute(value, chain[0])
        if isinstance(method, types.FunctionType) and is_user_code(method) and computes_evaluated_text(method, value):
            self.deps.skipped[f"{owner}: {name}.{chain[0]}()"] = (
                f"it calls {name}.{chain[0]}(), which evaluates a text it makes at run time (df.query, df.eval, "
                "pd.eval), whose names it looks up among its globals, so which ones it reads is not known; write "
                "the text out in the method, or pass the values as arguments")

    def evaluator_by_other_name(self, value: Any, name: str, chain: tuple[str, ...], owner: str) -> None:
        """Note a global that is ``eval``, ``exec`` or ``globals`` under another name (``bi.eval``, ``ev = eval``),
        or ``pandas.eval``/``numexpr.evaluate`` under a name the text analysis does not know (``pds.eval``,
        ``peval``): which globals its text reads is not known, as for ``eval`` itself."""
        target = value
        for attr in chain:  # through modules only, in their own namespace: no module __getattr__ runs
            if not isinstance(target, types.ModuleType):
                return
            target = vars(target).get(attr, _MISSING)
        spelled = ".".join((name, *chain))
        reader = namespace_reader(target)
        if reader in _DYNAMIC_LOOKUPS and spelled != reader:
            self.deps.skipped[f"{owner}: {spelled}()"] = (
                f"it looks names up through {reader}() (as {spelled}) at run time, so which globals it reads is "
                "not known; read them by name, or pass them as arguments")
        elif reads_every_name(target) and not (len(chain) == 1 and evaluates_text(name, chain[0])):
            self.deps.skipped[f"{owner}: {spelled}()"] = (
                f"it evaluates a text with {spelled}(), which looks up every name of the text among its globals, "
                "so which ones it reads is not known; call it as pd.eval or numexpr.evaluate, whose text is read, "
                "or pass the values as arguments")

    def builtin_name(self, builtins_dict: dict[str, Any], name: str, chain: tuple[str, ...], owner: str) -> None:
        """Resolve a name the code reads that its globals lack: from builtins, where the notebook may have put
        its own function or data (``builtins.round = myround``), keyed like a global only when it did."""
        value = builtins_dict.get(name, _MISSING)
        # Watched like a global of builtins (one dict lookup on a hit): a builtin replaced, edited or put back.
        self.watch.append(("global", builtins_dict, name, value))
        if value is _MISSING:
            self.deps.parts[name] = ("missing", b"")
        elif _ipython_own(name, value):
            pass
        elif value is _BUILTINS_AT_IMPORT.get(name, _MISSING) and not _user_code(value):
            if name in _DYNAMIC_LOOKUPS:
                self.deps.skipped[f"{owner}: {name}()"] = (
                    f"it looks names up through {name}() at run time, so which globals it reads is "
                    "not known; read them by name, or pass them as arguments")
        elif isinstance(value, types.MethodType) and not _user_code(value.__func__):
            # A library's bound method put there by its host (IPython's get_ipython): which one, not its object.
            self.library(value.__func__.__module__ or "", qualified_name(value.__func__), f"builtins.{name}")
        else:
            self.reference(value, chain, f"builtins.{name}")

    def evaluated(self, fn: types.FunctionType, owner: str) -> None:
        """Resolve the globals read by texts the code evaluates in its scope (``df.query("x > @limit")``)."""
        reads = evaluated_reads(fn.__code__)
        if not reads:
            return
        namespace = fn.__globals__
        code = fn.__code__
        parameters = set(code.co_varnames[:code.co_argcount + code.co_kwonlyargcount])
        # Each name a text reads, with the globals it is looked up in: the code's own, or those of the method of
        # the user's it passes its text to (pandas looks up @names in the frame that calls query: that method's).
        names: dict[tuple[int, str], dict[str, Any]] = {}
        for kind, name, every, evaluator in reads:
            looked_up = namespace
            through_class: type | None = None  # Box.q(BOX, text): the class its method passing a text on is taken from
            if evaluator:
                # GLOBAL, GLOBAL.method, or STORE.box.method: what the attributes between hold is read as stored
                held_name, dot, rest = evaluator.partition(".")
                between, _, attribute = rest.rpartition(".")
                held = namespace.get(held_name, vars(builtins).get(held_name, _MISSING))
                if between:
                    held = held_along(held, tuple(between.split(".")), _MISSING)
                if dot and attribute not in AT_NAMES:
                    # MOD.QUERY(text), EV.ev(text): what the attribute holds is called; the code's analysis gave
                    # each text both ways (its @names, every name), and the way of what it holds is kept. So is
                    # that of a method of the user's passing its text on (BOX.q(text)), whose own code evaluates
                    # it: its warning stays inside the class's digest, which keys an instance, and warns no one.
                    found = held_attribute(held, attribute)
                    evaluates = called_evaluates(found)
                    if evaluates is None:
                        evaluates = forwarded_evaluation(found, held)
                        looked_up = getattr(getattr(found, "__func__", found), "__globals__", namespace)
                    if evaluates is not every:
                        continue
                    if isinstance(held, type) and isinstance(found, types.FunctionType):
                        through_class = held
                    dot = ""
                elif not dot and called_evaluates(held) is not False:
                    continue  # a global called by name that is no frame's query (QUERY = DF.query is)
                elif attribute == "eval" and every is not (isinstance(held, types.ModuleType)
                                                           and reads_every_name(vars(held).get("eval"))):
                    continue  # read both ways: pandas.eval reads every name (STORE.pd.eval), a frame's eval its @names
                if dot and held is not _MISSING and not (evaluates_on(held, attribute)
                                                         and passes_text_on(held, attribute)):
                    continue  # a method that evaluates no text (a KDTree's query): the global is keyed as read
            if kind == TEXT_AFTER:
                if is_frame(namespace.get(name)):
                    self.deps.skipped[f"{owner}: {name}, ..."] = (
                        f"it passes {name}, a data frame, to a query or eval taken from its class "
                        "(pd.DataFrame.query(df, text)), and the text after it is not written out, so which names "
                        f"it reads is not known; call {name}.query(...) with the text written out, or pass the "
                        "values as arguments")
                elif through_class is not None and isinstance(namespace.get(name), through_class):
                    self.deps.skipped[f"{owner}: {name}, ..."] = (
                        f"it passes {name} to {evaluator}(), taken from its class, which passes its text on to a "
                        f"frame's query or eval, and the text after {name} is not written out, so which names it "
                        f"reads is not known; call {evaluator}(...) with the text written out, or pass the values "
                        "as arguments")
            elif kind == TEXT_GLOBAL:
                text = namespace.get(name, _MISSING)  # watched, and keyed, as a global the code reads
                if not isinstance(text, str):
                    continue  # not a text: session.query(User)
                names.update({(id(looked_up), read): looked_up for read in names_read(text, every)})
            elif kind == TEXT_MADE and isinstance(namespace.get(name), str):
                # TEXT.strip(): its names
                names.update({(id(looked_up), read): looked_up for read in names_read(namespace[name], every)})
            elif kind == TEXT_MADE and not evaluator:
                continue  # tree.query(X[:5]) on a local: as where the global is passed whole, no text is presumed
            elif kind in (TEXT_COMPUTED, TEXT_MADE):
                label = f"{owner}: .query(...)"
                # a parameter passed on whole (a method's text, which its callers show) or anything else
                passed_on = kind == TEXT_COMPUTED and name in parameters
                self.forwarded[label] = passed_on and self.forwarded.get(label, True)
                self.deps.skipped[label] = (
                    "it evaluates a text computed at run time (df.query, df.eval, pd.eval), whose names it looks "
                    "up among its globals, so which ones it reads is not known; write the text out in the call, "
                    "or pass the values as arguments")
            elif kind == TEXT_PASSED:
                text = namespace.get(name, _MISSING)  # watched, and keyed, as a global the code reads
                if isinstance(text, str):
                    names.update({(id(namespace), read): namespace for read in marked_names(text)})
            else:
                names[(id(looked_up), name)] = looked_up
        for (_, name), where in names.items():
            value = where.get(name, _MISSING)
            self.watch.append(("global", where, name, value))
            module = where.get("__name__")
            label = name if module in (None, "__main__") else f"{module}.{name}"
            if value is _MISSING:
                self.deps.parts[name if where is namespace else label] = ("missing", b"")
            else:
                self.reference(value, (), label)

    def environment_and_clock(self, fn: types.FunctionType, owner: str) -> None:
        """Key the environment variables the code reads by their values; note where it reads the clock."""
        found = code_environment(fn.__code__, fn.__globals__, owner, _closed_readers(fn))
        for name, value in found.variables.items():
            self.watch.append(("env", name, value))
            self.deps.parts[f"env {name}"] = ("env", b"\0unset" if value is None else value.encode())
        if found.whole:  # any change of any variable (but the session's): resolved again
            self.watch.append(("probe", WHOLE_ENVIRONMENT, _environment_text()))
            self.deps.parts[WHOLE_ENVIRONMENT] = ("env", environment_digest())
        if self.in_hash and found.state.pop(HASH_SEED, None) is not None:
            self.seed_in_hash = True
        if self.member is not None and self.member_states is not None:
            for state in _MEMBER_STATES:
                if found.state.pop(state, None) is not None:
                    self.member_states.setdefault(state, set()).add(self.member)
        for label, text in found.state.items():
            self.note_state(label, text)
        self.deps.skipped.update(found.skipped)
        self.deps.clock.extend(found.clock)
        warn_entropy(found, owner)

    def settings_environment(self, cls: type) -> None:
        """Key the environment variables a pydantic-settings class reads when built (in the library's code, which
        the body's does not show), and whether its env files exist; the whole environment where that is not known."""
        self.settings_met = True
        found = settings_reads(cls)
        if found is None:
            self.whole_environment()
        else:
            for reads in found:
                self.settings_variables(reads)
        self.settings_overrides()

    def settings_variables(self, reads: SettingsReads) -> None:
        """Key what ``reads`` sees: its variables' values and whether its env files exist."""
        self.watch.append(("settings", reads, settings_text(reads)))
        for name, value in settings_values(reads).items():
            self.deps.parts[f"env {name}"] = ("env", value.encode())

    def whole_environment(self) -> None:
        """Key every environment variable (but the session's): any change of one resolves again."""
        self.watch.append(("probe", WHOLE_ENVIRONMENT, _environment_text()))
        self.deps.parts[WHOLE_ENVIRONMENT] = ("env", environment_digest())

    def settings_keywords(self, code: types.CodeType) -> None:
        """Note the BaseSettings() keywords ``code`` passes that change where settings read (``_env_prefix``,
        ``_env_file``; ``**options``, which may hold them), and the env files it names by constants."""
        calls = keyword_calls(code)
        if not (calls.unpacked or init_keywords(calls.names)):
            return
        self.settings_overridden = True
        for name, value in calls.constants:
            if name == "_env_file":
                listed = value if isinstance(value, tuple) else (value,)
                self.settings_files.update(os.fspath(f) for f in listed if isinstance(f, (str, os.PathLike)))
        self.settings_overrides()

    def settings_overrides(self) -> None:
        """Key the whole environment, and the env files named, once both a settings class and code passing keywords
        that change where it reads are met (in whichever order): which variables it reads is not known then."""
        if not (self.settings_met and self.settings_overridden):
            return
        if "" not in self.settings_keyed:
            self.settings_keyed.add("")
            self.whole_environment()
        files = sorted(self.settings_files - self.settings_keyed)
        if files:
            self.settings_keyed.update(files)
            self.settings_variables(file_reads(files))

    def imports_of(self, fn: types.FunctionType) -> None:
        """Resolve the modules imported inside the body like modules imported at top level."""
        module = fn.__globals__.get("__name__")
        package = fn.__globals__.get("__package__") or module or ""
        self.imports_in(fn.__code__, package, fn.__qualname__, module if isinstance(module, str) else "__main__")

    def imports_in(self, code: types.CodeType, package: str, owner: str, own: str = "__main__") -> None:
        """Resolve the modules ``code`` imports (``package``: where relative imports start; ``own``: the
        module the code belongs to, which ``sys.modules[__name__]`` takes)."""
        refs = imported_references(code)
        if not refs:
            return
        for module_name, level, chain in refs:
            if module_name == OWN_MODULE:
                module_name = own
            if not module_name:
                self.deps.skipped[f"{owner}: import_module(...)"] = (
                    "it imports a module by a name computed at run time, so that module's code is not "
                    "known; import it by a constant name, or at the top of the cell")
                continue
            try:
                name = importlib.util.resolve_name("." * level + module_name, package) if level else module_name
            except (ImportError, ValueError):
                continue
            module, library = _imported_module(name)
            self.watch.append(("module", name, module))
            if module is not None and not chain and is_user_code(module):
                continue  # the import itself: what the body reads from it has chains of its own
            if module is not None and not is_user_code(module):
                # Named by the import itself, which the code shows: only its package, and what was patched into
                # it. (Before its first import it is not loaded: keyed alike then and after.)
                self.package(name)
                self.patched(module, () if chain == (WHOLE,) else chain, name)
            elif module is not None:
                self.reference(module, () if chain == (WHOLE,) else chain, name)
            elif library:
                self.package(name)
            else:
                self.deps.parts[f"import {name}"] = ("missing", b"")

    def reference(self, value: Any, chain: tuple[str, ...], label: str) -> None:
        if _holds_environment(value):
            return  # a global name for os.environ: the code's reads by name are keyed (environment_and_clock)
        if isinstance(value, types.ModuleType):
            if is_user_code(value):
                # Follow attribute chains into the user's own modules (mymod.helper).
                for attr in chain:
                    if attr == "__dict__" and vars(value) is shell_namespace():
                        # The notebook's names as a dict (__main__.__dict__['x']): each keyed as vars(__main__)'s
                        # are, since the dict also holds the shell's tools and history, which are no values.
                        self.module_code(value, label)
                        return
                    nxt = getattr(value, attr, _MISSING)
                    self.watch.append(("attr", value, attr, nxt))
                    if nxt is _MISSING or _holds_environment(nxt):
                        return
                    value, label = nxt, f"{label}.{attr}"
                    if not isinstance(value, types.ModuleType):
                        self.value(value, label)
                        return
                if is_user_code(value):
                    self.module_code(value, label)  # the module itself is used (getattr(mod, name))
                else:
                    self.library(value.__name__, value.__name__, label)
                return
            self.library(value.__name__, value.__name__, label)
            self.patched(value, chain, label)
            return
        if chain:  # R = np.random.mtrand._rand bound outside: R.get_state(), R._bit_generator.state
            note_state_use(unseen_state_method(value, chain[0]) or self.object_read(value, chain[0]))
        else:  # copy.deepcopy(R): its whole state
            note_state_use(self.object_read(value, None))
        self.value(value, label)

    def object_read(self, value: Any, attr: str | None) -> tuple[str, str] | None:
        """Return ``(READS, generator)`` where ``value`` is a global generator object whose state the code reads
        past our wrappers by reaching it (state_object_read), unless the code seeded that generator first."""
        read = state_object_read(value, attr)
        if read is None:
            return None
        namespace, code, read_as = self.calls_before
        calls = dict(called_before(code)).get(read_as, ()) if code is not None else ()
        for root, chain in calls:  # torch.manual_seed(x) on the code's straight start, before it reads the object
            called = namespace.get(root, _MISSING)
            for step in chain:
                if isinstance(called, types.ModuleType):
                    called = vars(called).get(step, _MISSING)  # a module's own names: no lazy import runs here
                elif state_object_read(called, None) is not None:
                    called = getattr(called, step, _MISSING)  # torch.default_generator.manual_seed
                else:
                    called = _MISSING
            if called is not _MISSING and seeder_of(called) == read[1]:
                return None  # it read the state the seed set, whatever the state before
        return read

    def patched(self, module: types.ModuleType, chain: tuple[str, ...], label: str) -> None:
        """Follow an attribute chain into a library module (``statistics.fmean``), watching each attribute:
        one the notebook replaced with its own function or class (a monkeypatch) is resolved like a helper."""
        value: Any = module
        for index, attr in enumerate(chain):
            # Read from the module's own namespace: a module __getattr__ (a lazy import) does not run here.
            namespace = vars(value)
            nxt = namespace.get(attr, _MISSING)
            if nxt is _MISSING:
                # getattr(statistics, "extra", None) took its default: a function of the user's bound there later
                # is resolved then (a lazy attribute the module binds on first use resolves once, keyed alike)
                self.watch.append(("global", namespace, attr, nxt))
                return
            if getattr(value, attr, _MISSING) is not nxt:
                return
            # Watched like a global of that module (one dict lookup on a hit): a patch applied, edited or undone.
            self.watch.append(("global", namespace, attr, nxt))
            value, label = nxt, f"{label}.{attr}"
            if isinstance(value, types.ModuleType):
                if is_user_code(value):
                    self.reference(value, chain[index + 1:], label)
                    return
                continue
            if isinstance(value, (types.FunctionType, type)) and is_user_code(value):
                self.value(value, label)
            elif isinstance(value, type):
                if index + 1 < len(chain):  # _random.Random.getstate(random._inst): a C method no wrapper sees
                    note_state_use(unseen_state_method(value, chain[index + 1]))
                self.library_class(value)  # statistics.NormalDist(...): what the notebook patched into it
                self.registrations(value, label, users_only=True)
            elif index + 1 < len(chain):
                # random._inst.getstate(): the generator's own method, made anew on each lookup, never our wrapper;
                # np.random.mtrand._rand._bit_generator.state: its state read through a private part
                note_state_use(unseen_state_method(value, chain[index + 1])
                               or self.object_read(value, chain[index + 1]))
            else:
                note_state_use(self.object_read(value, None))  # copy.deepcopy(np.random.mtrand._rand): all of it
            return

    def library_class(self, cls: type) -> None:
        """Resolve the user's code patched into the library classes of ``cls``'s MRO like helpers, and watch
        what is patched there (``fractions.Fraction.limit_denominator = mine``, ``torch.nn.Linear.forward``)."""
        if id(cls) in self.scanned:
            return
        self.scanned.add(id(cls))
        self.reducer(cls, qualified_name(cls), users_only=True)  # copyreg.pickle(Fraction, mine): run by pickle
        scan = _library_scan(cls)
        if not (scan.own or scan.bases):
            return
        found = scan.patches
        self.watch.append(("patches", cls, found, scan))
        for label, attr in found:
            self.value(attr, label)

    def reducer(self, cls: type, label: str, users_only: bool = False) -> None:
        """Resolve the reducer registered for ``cls`` with ``copyreg.pickle`` (copy and pickle run it for its
        instances) like a method, and watch the registration (one dict lookup on a hit): registering another, or
        none, resolves again. ``users_only``: only the user's code (a library's class, whose own reducer is part of
        the library's version)."""
        reducer = copyreg.dispatch_table.get(cls, _MISSING)
        self.watch.append(("reducer", cls, reducer))
        if reducer is not _MISSING and (not users_only or _user_code(reducer)):
            self.value(reducer, f"{label}.<copyreg reducer>")

    def registrations(self, cls: type, label: str, users_only: bool) -> None:
        """Key the virtual subclasses registered with an ABC, watching registrations with any ABC (one
        counter, read on a hit)."""
        if not isinstance(cls, abc.ABCMeta):
            return
        self.watch.append(("abc", abc.get_cache_token()))
        registered = _registered(cls, users_only)
        if registered:  # none: keyed as before registrations were keyed
            self.deps.parts[f"{label}.<registered>"] = ("code", combine([name.encode() for name in registered]))

    def module_code(self, module: types.ModuleType, label: str) -> None:
        """Resolve a user module used as a whole (``getattr(mod, name)``): all it holds, each
        name like a global, whether defined there, imported into it or data."""
        if not self.first_met(module):
            return
        namespace = vars(module)
        self.watch.append(("dict", namespace, list(namespace.items()), module, "__dict__"))
        # The notebook's own (sys.modules[__name__] in a cell): IPython's history there changes with every cell
        # and holds every output, so it is no part of what the notebook defined.
        notebook = namespace is shell_namespace()
        for name, attr in sorted(namespace.items()):
            if name.startswith("__") and name.endswith("__"):
                continue
            if _ipython_own(name, attr) or (notebook and is_history(name)):
                continue  # IPython's tools (exit holds a handle), the same in every kernel, as for globals
            if isinstance(attr, types.ModuleType):
                if not is_user_code(attr):
                    self.library(attr.__name__, attr.__name__, f"{label}.{name}")
                continue  # a user submodule is followed where the body names it
            self.value(attr, f"{label}.{name}")

    def package(self, module_name: str) -> None:
        top = module_name.partition(".")[0]
        probe = _PACKAGE_STATE.get(top)
        if probe is not None and f"settings of {top}" not in self.deps.parts:  # once, however often it is used
            # Process-wide settings of the library that change what its calls return: keyed by value and
            # checked on every call, like an environment variable.
            value = probe()
            self.watch.append(("probe", top, value))
            self.deps.parts[f"settings of {top}"] = ("settings", value.encode())
        if not self.track_versions:
            return
        if top in sys.stdlib_module_names or top == "builtins":
            return
        self.deps.parts[f"package {top}"] = ("package", package_version(top).encode())

    def library(self, module_name: str, name: str, label: str) -> None:
        """Key which library object ``label`` holds, by its name (the same in every process), and its package:
        ``CAST = int`` and ``CAST = float`` are one package's, but not one key's."""
        self.package(module_name)
        self.deps.parts[label] = ("code", combine([b"library", name.encode("utf-8", "surrogatepass")]))

    def value(self, value: Any, label: str, on_class: tuple[type, str] | None = None) -> None:
        # os.environ held as data (a closure, a class attribute read through self) may be read by any name:
        # it falls through to the mutable data below and is keyed by all its variables, hashed on every call.
        if _is_singledispatch(value):
            self.dispatch(value, label)
            return
        if isinstance(value, types.FunctionType):
            original = original_of(value)
            if original is not value:  # our wrapper (random.seed once a call ran): keyed as what it replaced
                keyed_as_wrapped(self.value, original, label, on_class)
                return
            if is_user_code(value):
                self.function(value, label)
            else:
                note_state_function(value)  # torch.get_rng_state taken before it was wrapped: its calls unseen
                self.library(value.__module__ or "", qualified_name(value), label)
                self.watch.append(_fn_watch(value))
                self.wrapper(value, label)
                self.state_of(value, label)  # a library's decorator around the user's function
            return
        if isinstance(value, type):
            if is_user_code(value):
                self.cls(value, label)
            else:
                self.library(value.__module__, qualified_name(value), label)
                self.library_class(value)
                if is_settings_class(value):
                    self.settings_environment(value)
                self.registrations(value, label, users_only=True)  # numbers.Number.register(Blob)
            return
        if isinstance(value, types.ModuleType):
            if is_user_code(value):
                self.module_code(value, label)  # a module held as data (``conf = cfg``): used whole
            else:
                self.library(value.__name__, value.__name__, label)
            return
        if isinstance(value, types.BuiltinFunctionType) and _immutable(value):
            # A builtin function (len, math.sqrt, torch.tensor): which one, and its package's version and
            # settings. A method bound to data (TABLE.get) is keyed below, by that data.
            self.builtin(value, label)
            return
        if isinstance(value, (staticmethod, classmethod)):
            self.value(value.__func__, label)
            return
        if isinstance(value, functools.singledispatchmethod):
            self.dispatch(value.dispatcher, label)
            return
        if isinstance(value, functools.cached_property):
            self.value(value.func, label)
            return
        if isinstance(value, property):
            for accessor in ("fget", "fset", "fdel"):
                fn = getattr(value, accessor)
                if fn is not None:
                    self.value(fn, f"{label}.{accessor}")
            return
        wrapped = getattr(value, "__wrapped__", None) if getattr(type(value), "__memo__", False) else None
        if isinstance(wrapped, types.FunctionType):
            self.function(wrapped, label)  # a memoized helper: follow the function inside
            version = getattr(value, "_version", b"")
            if isinstance(version, bytes) and version:
                # Its version= salt stands for what its code cannot show: bumping it changes what it returns.
                self.deps.parts[f"{label}.<version>"] = ("code", version)
            return
        if isinstance(value, (functools.partial, functools.partialmethod)):
            self.partial(value, label)
            return
        if isinstance(value, functools._lru_cache_wrapper):  # type: ignore[attr-defined]
            _watch_helper(value)
            self.watch.append(("dict", value.__dict__, list(value.__dict__.items()), value, "__dict__"))
            self.state_of(value, label)  # the cached function's body, not the cache
            return
        mutable = not _immutable(value)
        if mutable:
            self.volatile = True  # mutable data: its content must be hashed on every call
            if on_class is None:
                self.hard = True
            else:
                self.class_data.append((*on_class, label))
        found = getattr(things_met, "found", None)
        met = len(found) if found is not None else 0
        try:
            self.deps.parts[label] = ("value", digest := self.content_digest(value, label))
        except UnhashableArgument as exc:
            if not self.handle(value, label, exc):
                self.deps.skipped[label] = exc.reason
            return
        if found is not None and len(found) != met and not all(_state_note(item) for item in found[met:]):
            self.drawn.add(id(value))  # a random generator in it: drawing from it changes it, as a hit does too
        if mutable and id(value) not in self.drawn and _watched(value):
            self.mutable.append((label, value, digest, filled_cached_properties(value)))

    def handle(self, value: Any, label: str, exc: UnhashableArgument) -> bool:
        """Key an unhashable ``value`` that is an open handle, or holds one (``exc`` names what could not be
        hashed), by the files read through it, noted for the run to check; return False when it holds none."""
        files = handle_files(value)
        if files is None:
            inner = exc.value
            if inner is value or handle_files(inner) is None:
                return False
            files = ()  # what else it holds is left out with the handle: not known
        self.deps.handles[label] = files
        if is_connection(value):
            self.deps.connections[label] = value
        self.deps.parts[label] = ("value", combine([b"open handle", qualified_name(type(value)).encode(),
                                                    *(path.encode("utf-8", "surrogateescape") for path in files)]))
        for name, setting in handle_settings(value):  # what shapes its rows (a connection's row_factory)
            self.setting(setting, f"{label}.{name}", name)
        self.volatile = self.hard = True  # resolved on every call: the handle may be rebound or reopened
        return True

    def setting(self, setting: Any, label: str, name: str) -> None:
        """Key a handle's setting as data (``value``); sqlite3's converter and adapter tables, read on every call,
        by the digest their entries had when last hashed, while they are the very same entries of the standard
        library's own code (see ``_of_the_standard_library``)."""
        entries = _table_entries(setting) if name in _TABLE_SETTINGS else None
        kept = _TABLE_DIGESTS.get(name)
        if entries is None or kept is None or kept[0] != entries or kept[1] != hashers_registered():
            self.value(setting, label)
            part = self.deps.parts.get(label)
            if entries is not None and part is not None and _of_the_standard_library(setting):
                _TABLE_DIGESTS[name] = (entries, hashers_registered(), part[1])
            return
        digest = kept[2]
        self.deps.parts[label] = ("value", digest)
        # As ``value`` leaves the copy: mutable data read, checked after a run (a copy no body can reach)
        self.volatile = self.hard = True
        self.mutable.append((label, setting, digest, frozenset()))

    def wrapper(self, fn: types.FunctionType, label: str) -> None:
        """Resolve what a library's wrapper around the user's code closes over: the user's code like a helper,
        the decorator's arguments by content (as code: they are fixed when it decorates)."""
        for index, name, value in _wrapper_cells(fn):
            where = f"{label}.<closure {name}>"
            self.watch.append(("cell", (fn.__closure__ or ())[index], value, fn, index))
            if _user_code(value) or getattr(type(value), "__memo__", False):
                self.value(value, where)
            elif isinstance(value, _WORKING_STATE):
                continue  # its working state (a cache, a registry, reprlib's guard of a dataclass's repr): no setting
            else:
                try:
                    self.deps.parts[where] = ("code", self.content_digest(value, where))
                except UnhashableArgument as exc:
                    self.deps.skipped[where] = exc.reason

    def builtin(self, value: types.BuiltinFunctionType, label: str) -> None:
        """Key a builtin function by its name, and the immutable value it is bound to (``"abc".upper``)."""
        module = getattr(value, "__module__", None)
        name = qualified_name(value)
        owner = value.__self__
        if owner is not None and not isinstance(owner, (types.ModuleType, type, io.IOBase)) and owner is not value:
            try:
                name += f" of {content_hash(owner, label).hex()}"
            except UnhashableArgument as exc:
                self.deps.skipped[label] = exc.reason
                return
        self.library(module if isinstance(module, str) and module != "builtins" else "builtins", name, label)

    def content_digest(self, value: Any, label: str) -> bytes:
        """Return ``content_hash(value)``, computed once per value in this resolution.

        Only within one resolver: what hashing a value adds to the resolution around it (the
        watch list of functions inside it) was added to this one the first time.
        """
        held = self.hashed.get(id(value))
        if held is None:
            outer = getattr(things_met, "torch", False)
            outer_decimal = getattr(things_met, "decimal", False)
            outer_classes = getattr(things_met, "classes", None)
            things_met.torch = things_met.decimal = False
            classes: list[type] = []
            things_met.classes = classes
            try:
                held = self.hashed[id(value)] = (value, content_hash(value, label))
            finally:
                met_torch, met_decimal = things_met.torch, things_met.decimal
                things_met.torch = outer or met_torch
                things_met.decimal = outer_decimal or met_decimal
                things_met.classes = outer_classes
            for klass in dict.fromkeys(classes):  # a global instance's class: `type(CONFIG).__subclasses__()`
                where = f"{label}.<class {qualified_name(klass)}>"
                self.classes_met.append((klass, where))
                if self.lists_subclasses:
                    self.subclasses(klass, where)
            if met_torch:
                self.package("torch")  # a tensor or model read as data: torch's settings count as for code using torch
            if met_decimal:
                self.package("decimal")  # ONE / THREE: the context divides them, though the code never names it
        return held[1]

    def dispatch(self, fn: Any, label: str) -> None:
        """Resolve a singledispatch function: every registered implementation is code it runs."""
        self.watch.append(_fn_watch(fn))
        self.watch.append(("dict", fn.registry, list(fn.registry.items()), fn, "registry"))
        kinds = []
        implementations = _implementations(fn)
        names = [name for name, _, _ in implementations]
        for index, (name, kind, impl) in enumerate(implementations):
            kinds.append(name)
            # Two types of one name (a class defined again, both registered): each keeps its own labels
            where = name if names.count(name) == 1 else f"{name}#{index}"
            self.value(impl, f"{label}[{where}]")
            self.dispatch_type(kind, f"{label}<{where}>")
        self.deps.parts[f"{label}.<registry>"] = ("code", combine([k.encode() for k in kinds]))
        for name, attr in _public_attributes(fn):
            if name not in ("registry", "dispatch", "register", "_clear_cache"):
                self.value(attr, f"{label}.{name}")

    def dispatch_type(self, kind: type, label: str) -> None:
        """Resolve a type a singledispatch function dispatches on: which calls reach its implementation depends on
        its code (a ``__subclasshook__``) and, for an ABC, on the classes registered with it, not on its name."""
        if is_user_code(kind):
            self.cls(kind, label)  # its code, and every class registered with it (Shape.register(int))
        else:
            self.registrations(kind, label, users_only=True)  # collections.abc.Sequence.register(Vec)

    def partial(self, value: Any, label: str) -> None:
        evaluator = partial_evaluator(value)
        if evaluator is not None:
            self.deps.skipped[label] = (
                f"it is a functools.partial of {evaluator}, whose text's names are read from the code calling it, "
                f"which is not followed; call {evaluator} itself with the text written out, or pass the values as "
                "arguments")
        if _is_environment(value.func):  # partial(os.getenv, "SPLIT"): the variable it reads
            name = value.args[0] if value.args else value.keywords.get("key")
            if isinstance(name, bytes):
                name = os.fsdecode(name)
            if isinstance(name, str):
                now = os.environ.get(name)
                self.watch.append(("env", name, now))
                self.deps.parts[f"env {name}"] = ("env", b"\0unset" if now is None else now.encode())
            else:
                self.deps.skipped[f"{label}: os.environ[...]"] = (
                    "it reads an environment variable whose name is not a constant text, so which one is not known")
        self.value(value.func, f"{label}.func")
        self.watch.append(("dict", value.keywords, list(value.keywords.items()), value, "keywords"))
        # Attributes set on a partial (step.label = "v2") are read as its data too; a partialmethod keeps
        # its func, args and keywords there, keyed above.
        attributes = {k: v for k, v in getattr(value, "__dict__", {}).items()
                      if not (isinstance(value, functools.partialmethod) and k in ("func", "args", "keywords"))}
        if isinstance(getattr(value, "__dict__", None), dict):  # one set later makes the resolution anew
            self.watch.append(("dict", value.__dict__, list(value.__dict__.items()), value, "__dict__"))
        bound: tuple[Any, ...] = (value.args, value.keywords)
        if attributes:  # only then: the key of a partial without any stays as it was
            bound += (attributes,)
        if not (_immutable(value.args) and all(_immutable(v) for v in (*value.keywords.values(),
                                                                       *attributes.values()))):
            self.volatile = self.hard = True
        try:
            self.deps.parts[f"{label}.<arguments>"] = ("value", content_hash(bound, f"the arguments of {label}"))
        except UnhashableArgument as exc:
            self.deps.skipped[f"{label}.<arguments>"] = exc.reason

    def cls(self, cls: type, label: str) -> None:
        """Resolve a user class: its definition, and for it and each user base, their data and
        the code of every method (with what that reads), as for helpers; a user metaclass too."""
        if not self.first_met(cls):
            return
        meta = type(cls)
        if meta is not type and is_user_code(meta):
            self.value(meta, f"{label}.<metaclass>")
        if is_settings_class(cls):
            self.settings_environment(cls)
        self.library_class(cls)  # its library bases, and what the notebook patched into them
        names = [klass.__qualname__ for klass in cls.__mro__]
        for index, klass in enumerate(cls.__mro__):
            if klass is object:
                continue
            if not is_user_code(klass):
                self.package(klass.__module__)
                continue
            own = klass is cls
            # `class Model(Model)`: two classes of one name in the line, each keeps its own labels
            qualname = klass.__qualname__ if names.count(klass.__qualname__) == 1 else f"{klass.__qualname__}#{index}"
            where = label if own else f"{label}.<base {qualname}>"
            if not own and not self.first_met(klass):
                continue
            self.watch.append(("class", klass, list(vars(klass).items())))
            self.deps.parts[where] = ("code", class_fingerprint(klass, self.by_code))
            self.registrations(klass, where, users_only=False)
            self.reducer(klass, where)
            self.classes_met.append((klass, where))
            for name, attr in _class_items(klass):
                # Code is resolved like a helper; data like a global (hashed, and re-hashed on
                # every call while it is mutable); a class held as data like a class.
                outer = self.member
                self.in_hash += name == "__hash__"
                if self.member_states is not None and outer is None:
                    self.member = name  # a member of the class met as a value, not of a class it reaches
                try:
                    self.value(attr, f"{qualname}.{name}", on_class=(klass, name))
                finally:
                    self.in_hash -= name == "__hash__"
                    self.member = outer
            # Functions its annotations and field tables hold (a validator, a default factory, an encoder in a
            # field's metadata) run when it is built or validated: resolved like its methods, with what they read.
            for where_held, fn in class_held_functions(klass):
                self.value(fn, f"{qualname}.{where_held}")
            if self.lists_subclasses:
                self.subclasses(klass, where)

    def subclasses_listed(self, code: types.CodeType) -> None:
        """Note code that lists a class's subclasses (its names or texts hold ``__subclasses__``): from then on the
        subclasses of each user class resolved, before or after, are keyed."""
        if self.lists_subclasses or _SUBCLASSES not in _names_and_texts(code):
            return
        self.lists_subclasses = True
        for klass, label in list(self.classes_met):
            self.subclasses(klass, label)

    def subclasses(self, klass: type, label: str) -> None:
        """Key the subclasses ``klass.__subclasses__()`` lists, in its order, each resolved as a class (so theirs
        too), and watch the list: a subclass defined later resolves again."""
        found = _subclasses(klass)
        names = [qualified_name(sub) for sub in found]
        if len(set(names)) < len(names) and not _collected_in_vain(klass, found, names):
            # A class redefined by a cell run again: the old one stays listed (weakly) until a collection finds it
            # unreferenced. Collected now (not held here meanwhile), so that neither the key nor the body, which
            # runs next, counts it; one still referenced (by an instance) stays, for both. Such a listing is
            # remembered, so that a call finding it again, with nothing released, does not collect again.
            found = []
            gc.collect()
            found = _subclasses(klass)
            names = [qualified_name(sub) for sub in found]
            if len(set(names)) < len(names):
                _lingering[klass] = _lingering_of(found, names)
        self.watch.append(("subclasses", klass, found))
        self.deps.parts[f"{label}.<subclasses>"] = ("code", combine([name.encode() for name in names]))
        for index, sub in enumerate(found):
            if is_user_code(sub):
                name = sub.__qualname__ if names.count(names[index]) == 1 else f"{sub.__qualname__}#{index}"
                self.value(sub, f"{label}.<subclass {name}>")

    def value_class(self, cls: type) -> None:
        """Resolve a user class met as a value (an argument's), noting which of its members read the hash seed,
        the process ids, the host or the user (_MEMBER_STATES) instead of keying them: a call keys one when its body
        names a member that reaches its read (members_named); a fork check the body never calls keys nothing."""
        self.member_states, self.member_names = {}, {}
        self.cls(cls, "<class>")
        if self.member_states:
            self.deps.parts[STATE_MEMBERS] = ("settings", _members_text(self.member_states, self.member_names))


_ENV_AND_CLOCK_ROOTS = frozenset({"environ", "getenv", "get", "now", "utcnow", "today", "time", "time_ns",
                                  "localtime", "gmtime", "ctime", "asctime", "strftime", "clock_gettime",
                                  "clock_gettime_ns", "uuid1", "datetime64", "Timestamp", "to_datetime"})
_TIMERS = ("time.time", "time.time_ns", "time.clock_gettime", "time.clock_gettime_ns")
_NOW_TEXTS = frozenset({"now", "today"})  # np.datetime64("now"), pd.Timestamp("today"), pd.to_datetime("now")
# What turns a text into a date in NumPy or pandas, named in code: without one, "now" is a label or a column's name.
_DATE_MAKERS = frozenset({"datetime64", "to_datetime", "date_range", "bdate_range", "period_range", "Timestamp",
                          "Period", "PeriodIndex", "DatetimeIndex", "DatetimeTZDtype", "DatetimeArray"})
# A datetime dtype given as text (astype("M8[s]"), dtype="datetime64[ns, UTC]"); "m8" is a duration.
_DATE_DTYPE = re.compile(r"[<>=|]?(?:M8?|datetime64)(?:\[[^\]]*\])?")
_VARIABLES_NAMED = re.compile(r"\$(\w+)|\$\{([^}]*)\}")  # as os.path.expandvars finds them
# SQLite's own clock, randomness and record of what its connection last did, called in a query's text (a constant
# of the code, perhaps a part of an f-string's): the query answers what they give now.
_SQL_TEXT = re.compile(r"\b(?:select|insert|update|delete|replace|values|with)\b", re.IGNORECASE)  # a verb of SQL
_SQL_CLOCK = re.compile(r"\bcurrent_(?:timestamp|date|time)\b"  # a date function with no time value reads 'now'
                        r"|\b(?:date|time|datetime|julianday|unixepoch)\s*\(\s*\)|\bstrftime\s*\(\s*'[^']*'\s*\)"
                        r"|\b(?:date|time|datetime|julianday|unixepoch|strftime|timediff)\s*\([^)]*'now'",
                        re.IGNORECASE)
_SQL_RANDOM = re.compile(r"\brandom(?:blob)?\s*\(", re.IGNORECASE)
_SQL_HISTORY = re.compile(r"\b(?:changes|total_changes|last_insert_rowid)\s*\(\s*\)", re.IGNORECASE)


@dataclass
class Environment:
    """What code reads from the process around it: environment variables and the clock."""

    variables: dict[str, str | None] = field(default_factory=dict)  # name -> value now (None: unset)
    state: dict[str, str] = field(default_factory=dict)  # process state it reads ("current folder") -> as text now
    skipped: dict[str, str] = field(default_factory=dict)
    clock: list[str] = field(default_factory=list)  # where it reads the clock, once per read
    # It seeds a torch generator from the operating system's entropy (g.seed()): its result is random
    entropy: bool = False
    # It reaches os.environ as an object (getattr(os, "environ"), vars(os)["environ"]): any variable may be read
    whole: bool = False
    # It takes the operating system's randomness through a name bound to the unwatched function (from os import
    # urandom, run before the function was wrapped): how, once each
    unwatched_entropy: list[str] = field(default_factory=list)
    # SQL in its texts asks SQLite for random values (random()), or for what a connection last did (changes()): the
    # first such call found of each, as written
    sql_random: str | None = None
    sql_history: str | None = None


def code_environment(code: types.CodeType, namespace: dict[str, Any], owner: str,
                     closure: dict[str, Any] | None = None) -> Environment:
    """Return the environment variables ``code`` reads by constant name, and where it reads the clock; ``closure``:
    the modules and library functions its free variables hold (``_closed_readers``), read as its globals are."""
    found = Environment()
    closed: frozenset[str] = frozenset()
    if closure:
        closed = frozenset(closure)
        namespace = {**namespace, **{CLOSED + name: value for name, value in closure.items()}}
    names: set[str] | None = None
    by_name = False
    uses_arrays = parsed = False  # it uses NumPy or pandas; it gives "now" to a parser known to read the clock
    dates = False  # a global it reads makes or is a datetime dtype (DAY = "datetime64[D]", np.datetime64)
    for name, chain, const in global_loads(code, closed):
        # Every name is followed: `env = os.environ`, `from os import getenv as ge` read it too.
        target, through_environ = _follow(namespace, name, chain)
        if const is not None and _is_environment(_member(target, const)):
            found.whole = True  # getattr(os, "environ"), os.__dict__["environ"]
            continue
        if target is os and not chain:
            if names is None:
                names = _constant_names(code)
            if names & _ENVIRONMENT_NAMES:  # vars(os)["environ"]: the name is further on than the next load
                found.whole = True
                continue
        if _is_environment(target) and const is not None:
            if not callable(target) and (name, chain, const) in passed_beside(code, closed):
                # dict(os.environ, EXTRA="1"): the mapping is passed whole, with "1" beside it; a reader passed with
                # the name beside it (partial(os.getenv, "X")) is given that name
                found.whole = True
            else:
                found.variables[const] = os.environ.get(const)
            continue
        if target is os.path.expandvars:  # "data_$SPLIT.csv": the variables named in it
            if const is not None:
                for variable in _VARIABLES_NAMED.findall(const):
                    name = variable[0] or variable[1]
                    found.variables[name] = os.environ.get(name)
            else:
                found.whole = True  # a text computed at run time may name any variable
            continue
        if _is_environment(target) or through_environ:
            by_name = True  # os.environ.copy(), os.environ.get(VAR), os.environ[name]: told apart below
            continue
        if not through_environ and _escapes_watch(namespace, name, chain, target, found, owner):
            continue
        how = _stdin_read(code, namespace, name, chain, target)
        if how is not None:
            found.skipped[f"{owner}: {how}"] = (
                "it reads the standard input (what is typed, or piped to the process), which no key can hold; pass "
                "what it reads as an argument, or call it with .uncached(...)")
            continue
        state = _state_read(target, chain, const)
        if state is None and chain and chain[-1] in _ZONE_ATTRIBUTES \
                and _follow(namespace, name, chain[:-1])[0] is time:
            state = LOCAL_TIME_ZONE  # time.timezone, time.tzname: set from the zone when time was loaded or tzset()
        if state is None and (target is sys.flags or (chain and _follow(namespace, name, chain[:-1])[0] is sys.flags)):
            state = PYTHON_FLAGS  # sys.flags.optimize, or flags.optimize after from sys import flags
        if state is None and chain and chain[-1] in _PLATFORM_ATTRIBUTES \
                and _follow(namespace, name, chain[:-1])[0] is _PLATFORM_ATTRIBUTES[chain[-1]]:
            state = PLATFORM  # sys.platform == "darwin": a module's attribute, not a global the key holds by value
        if state is not None:
            _note_state(found, state)
        if _of_calendar(target):  # calendar.day_name, TextCalendar: strftime's names of days and months
            found.state[LOCALE_TIME] = _locale_category(LC_TIME)
            if isinstance(target, type) and target.__name__.startswith("Locale"):
                _note_state(found, _DEFAULT_LOCALE)  # LocaleTextCalendar() takes its locale from LANG and the like
        if name in _ENV_AND_CLOCK_ROOTS or _ENV_AND_CLOCK_ROOTS.intersection(chain) \
                or getattr(target, "__name__", None) in _ENV_AND_CLOCK_ROOTS \
                or isinstance(target, functools.partial):  # `from time import time as now`; NOW = partial(...)
            reader = _clock_reader(target)
            if reader is None and const is not None and const.strip().lower() in _NOW_TEXTS:
                reader = _clock_parser(target, const)
                parsed = parsed or reader is not None
            if reader is not None:
                found.clock.append(f"{owner}: {reader}")
        uses_arrays = uses_arrays or _of_numpy_or_pandas(namespace, name, target)
        dates = dates or _is_date_dtype(target)
    clock, found.sql_random, found.sql_history = _sql_reads(code)
    if clock is not None:
        found.clock.append(f"{owner}: {clock!r} in SQL")
    if uses_arrays and not parsed:
        # NumPy and pandas read the clock for the text "now" or "today" wherever it becomes a date, which the
        # call does not show (pd.date_range(end="now"), np.array(["now"], dtype="datetime64[D]"), astype): a
        # constant of those in code that uses them and makes dates is taken as a clock read (a warning, never a
        # wrong answer); where nothing makes a date (df["status"] == "now", df["today"]) it is a label.
        text = _now_text(code)
        if text is not None and (dates or _makes_dates(code)):
            found.clock.append(f"{owner}: {text!r} given to NumPy or pandas")
    for attribute in loose_attributes(code) & _STATE_NAMES.keys():
        _note_state(found, _STATE_NAMES[attribute])  # Path(p).resolve(): a method of a value, known by its name
    for state in _proc_states(code):
        _note_state(found, state)
    if by_name:
        _environment_by_name(code, namespace, found, closed)
    # format(x, "n"), d.strftime(FMT): the locale, though the code never names it; only the category each reads,
    # since Python sets only LC_CTYPE at start-up, which two kernels under other LANGs differ in.
    for category in _formats_by_locale(code, namespace):
        found.state[_CATEGORY_STATES[category]] = _locale_category(category)
    seeds = seeds_without_argument(code)
    if seeds and _uses_torch(code, namespace):
        found.entropy = any(_seeds_a_value(namespace, receiver) for receiver in seeds)
    return found


def _proc_states(code: types.CodeType) -> set[str]:
    """Return the states that the /proc paths among ``code``'s constant texts (its nested code's too) tell
    (_PROC_PATHS)."""
    found: set[str] = set()
    for text in _names_and_texts(code):
        if text.startswith("/proc/"):
            for prefix, states in _PROC_PATHS:
                if text == prefix or text.startswith(prefix + "/"):
                    found.update(states)
    return found


def _formats_by_locale(code: types.CodeType, namespace: dict[str, Any]) -> frozenset[str]:
    """Return the locale categories ``code`` formats by: those its constant specs show, those of the global texts it
    formats with (``FMT = "{:n}"``; ``FMT.format(x)``), and either where no constant or global shows the spec."""
    categories, texts = locale_formatting(code)
    for name, how in texts:
        value = namespace.get(name, _MISSING)
        categories |= spec_categories(value if isinstance(value, str) else None, how)
    return categories


def _of_calendar(target: Any) -> bool:
    """Return True when ``target`` is one of calendar's names of days or months, or its classes and functions,
    which write them by strftime, so by the locale's time category."""
    if type(target).__module__ == "calendar":  # day_name, month_abbr: sequences that call strftime
        return True
    return isinstance(target, (type, types.FunctionType, types.MethodType)) and target.__module__ == "calendar"


def _environment_by_name(code: types.CodeType, namespace: dict[str, Any], found: Environment,
                         closed: frozenset[str] = frozenset()) -> None:
    """Key what ``code`` reads of the environment other than by a constant name: by a global that holds the name
    (``VAR = "API_URL"``; ``os.environ.get(VAR)``), that variable, the global being keyed as a read; else (the
    whole environment: ``os.environ.copy()``, ``dict(os.environ)``, ``.items()``; a name from an argument or
    computed) every variable, the session's own left out as for a process the body starts."""
    for name, chain, argument, how in name_arguments(code, closed):
        target, through_environ = _follow(namespace, name, chain)
        if not (_is_environment(target) or through_environ):
            continue
        variable = namespace.get(argument, _MISSING) if argument is not None else _MISSING
        # os.environ[VAR], VAR in os.environ, os.environ.get(VAR), os.getenv(VAR); not getattr(os.environ, HOW)
        if isinstance(variable, str) and (how == CALLED_WITH if callable(target) else how in (SUBSCRIPT, CONTAINED)) \
                and _is_environment(target):
            found.variables[variable] = os.environ.get(variable)
        else:
            found.whole = True
            return


def _escapes_watch(namespace: dict[str, Any], name: str, chain: tuple[str, ...], target: Any, found: Environment,
                   owner: str) -> bool:
    """Note a reader of randomness or of links that a global holds as it was before we wrapped it (``from os import
    urandom``, ``from os import readlink`` run earlier), or a partial holds (``functools.partial(urandom, 16)``):
    its calls are not seen while the body runs. Its module's attribute (``os.urandom``) is looked up at each call,
    and so reaches the wrapper: not noted."""
    while isinstance(target, functools.partial):  # a partial keeps the function it was given, never looked up again
        target = target.func
    if not callable(target) or isinstance(target, type):
        return False
    if chain:
        module = _follow(namespace, name, chain[:-1])[0]
        if isinstance(module, types.ModuleType) and module.__name__ in _WATCHED_OWNERS:
            return False
    try:
        entropy = entropy_sources().get(target)
        link = target in link_readers()
    except Exception:  # unhashable, or a hash of the user's that fails
        return False
    if entropy is not None:
        found.unwatched_entropy.append(entropy)
        return True
    if link:
        label = getattr(target, "__name__", "a link reader")
        found.skipped[f"{owner}: {label}(...)"] = (
            f"it reads where a link leads through {label}, bound by name before notebook_memo could watch it, so a "
            f"link retargeted since is not seen; call it through its module (os.{label} or os.path.{label}), or "
            "pass what it returns as an argument")
        return True
    return False


def _stdin_read(code: types.CodeType, namespace: dict[str, Any], name: str, chain: tuple[str, ...],
                target: Any) -> str | None:
    """Return how ``code`` reads the standard input through a global (``input()``, ``sys.stdin.readline()``,
    ``getpass.getpass()``, ``fileinput.input()``), or None. Known by identity or by name: a Jupyter kernel puts its
    own functions in place of ``input`` and ``getpass.getpass`` while a cell runs. What only asks about the stream
    (``sys.stdin.isatty()``, ``sys.stdin is None``) and fileinput given files other than ``-`` read none of it."""
    if name == "input" and not chain and ("input" not in namespace or target is _BUILTINS_AT_IMPORT.get("input")):
        return "input()"
    root = _follow(namespace, name, ())[0]
    streams = tuple(s for s in (sys.stdin, sys.__stdin__) if s is not None)
    if root is sys and chain and chain[0] in ("stdin", "__stdin__"):
        return f"sys.{chain[0]}" if _reads_stream(code, name, chain, chain[1:]) else None
    if any(root is s for s in streams):
        return "sys.stdin" if _reads_stream(code, name, chain, chain) else None
    if callable(target) and any(target is f or getattr(target, "__wrapped__", None) is f for f in _RAW_READERS):
        return _raw_stdin_read(code, namespace, name, chain)
    module = getattr(_function(target), "__module__", None) if callable(target) else None
    if (isinstance(root, types.ModuleType) and root.__name__ == "getpass" and chain and chain[-1] == "getpass") \
            or (module == "getpass" and getattr(target, "__name__", "").endswith("getpass")):
        return "getpass.getpass()"
    if module == "fileinput" and getattr(target, "__name__", None) == "input":
        return "fileinput.input()" if _reads_stdin_files(code, name, chain) else None
    return None


# What opens or reads a file descriptor or a path (IPython's own open wraps the builtin), and the descriptor and
# the names that are the standard input.
_RAW_READERS = (io.open, os.read, os.readv, os.fdopen, os.open)
STDIN_NAMES = ("/dev/stdin", "/dev/fd/0", "/proc/self/fd/0")


def _raw_stdin_read(code: types.CodeType, namespace: dict[str, Any], name: str, chain: tuple[str, ...]) -> str | None:
    """Return how ``code``'s calls of a raw reader (``open``, ``os.read``, ``os.fdopen``) read the standard input:
    one given the constant 0 or a name of it (``open(0)``, ``open("/dev/stdin")``), a global or attribute holding
    one (``STDIN = 0``; ``os.read(STDIN, n)``, ``os.read(pty.STDIN_FILENO, n)``), or where the code also takes
    ``sys.stdin.fileno()`` (``os.read(sys.stdin.fileno(), n)``). None where it reads none that way; a descriptor
    held by a local is seen as the body reads it (``_conditions``)."""
    label = ".".join((name, *chain))
    uses = global_uses(code)
    for use in uses:
        if (use.root, use.chain) == (name, chain) and use.how == CALLED and (use.first or use.first_name):
            if use.first:
                first, shown = use.first[0], repr(use.first[0])
            else:
                first, shown = _follow(namespace, use.first_name[0], use.first_name[1:])[0], ".".join(use.first_name)
            if (type(first) is int and first == 0) or (isinstance(first, (str, bytes))
                                                       and os.fsdecode(first) in STDIN_NAMES):
                return f"{label}({shown})"
    for use in uses:
        if use.chain in (("stdin", "fileno"), ("__stdin__", "fileno")) \
                and _follow(namespace, use.root, ())[0] is sys:
            return f"{label}(sys.{use.chain[0]}.fileno())"
    return None


# What a text stream says of itself without reading from it.
_STREAM_FACTS = frozenset({"isatty", "fileno", "encoding", "errors", "name", "mode", "closed", "newlines",
                           "line_buffering", "write_through", "readable", "writable", "seekable"})


def _reads_stream(code: types.CodeType, name: str, chain: tuple[str, ...], rest: tuple[str, ...]) -> bool:
    """Return whether ``code``'s use of the standard input stream (``rest``: the attributes it takes of it) may read
    from it: not where it asks one of its facts (``sys.stdin.isatty()``) or only tests it (``sys.stdin is None``)."""
    if rest:
        return rest[0] not in _STREAM_FACTS
    uses = [use for use in global_uses(code) if (use.root, use.chain) == (name, chain)]
    return not uses or any(use.how != TESTED for use in uses)


def _reads_stdin_files(code: types.CodeType, name: str, chain: tuple[str, ...]) -> bool:
    """Return whether ``code``'s calls of ``fileinput.input`` may read the standard input: one given no files (it
    then reads the files in ``sys.argv[1:]``, the standard input where there are none), ``files=None``, ``-`` among
    them, or a use the instructions do not show (``f = fileinput.input``, ``fileinput.input(*names)``)."""
    uses = [use for use in global_uses(code) if (use.root, use.chain) == (name, chain)]
    for use in uses:
        if use.how != CALLED or use.arguments < 0:
            return True
        positional = use.arguments - len(use.keywords)
        if positional < 1 and "files" not in use.keywords:
            return True
        if (positional >= 1 or use.keywords[:1] == ("files",)) and use.first == (None,):
            return True
        if any((isinstance(c, str) and c == "-") or (isinstance(c, (tuple, frozenset)) and "-" in c)
               for c in use.constants):
            return True
    return not uses


# The modules whose functions are wrapped while bodies run (os.urandom, os.path.realpath, ssl.RAND_bytes).
_WATCHED_OWNERS = frozenset({"os", "posixpath", "ntpath", "ssl"})


def _seeds_a_value(namespace: dict[str, Any], receiver: tuple[str, tuple[str, ...]] | None) -> bool:
    """Return True when a ``.seed()`` call's receiver is not a module: a module's seed (torch.seed(),
    np.random.seed()) is watched while the body runs; a torch generator's is not (its class cannot be wrapped)."""
    if receiver is None:
        return True
    return not isinstance(_follow(namespace, *receiver)[0], types.ModuleType)


def _uses_torch(code: types.CodeType, namespace: dict[str, Any]) -> bool:
    """Return True when a global ``code`` reads is torch, or a module, class, function or object of it."""
    for name, _, _ in global_loads(code):
        value = _follow(namespace, name, ())[0]
        if isinstance(value, types.ModuleType):
            module: Any = value.__name__
        elif isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType)):
            module = getattr(value, "__module__", None)
        else:
            module = type(value).__module__
        if isinstance(module, str) and module.partition(".")[0] == "torch":
            return True
    return False


def warn_entropy(found: Environment, owner: str) -> None:
    """Warn once when ``owner`` seeds a torch generator from entropy, or takes randomness through a name that
    escapes the watch, in the words of a seed call's warning."""
    if found.unwatched_entropy:
        how = ", ".join(dict.fromkeys(found.unwatched_entropy))
        _config.warn_once(f"entropy:{owner}", f"{owner} takes randomness from the operating system ({how}, bound "
                          "by name before notebook_memo could watch it): its result is random, and the cache keeps "
                          "the first one. Pass a seed to a generator of your own, or call it with .uncached(...).")
    if found.sql_random is not None:
        _config.warn_once(f"sql-random:{owner}", f"{owner} asks SQLite for random values ({found.sql_random}...) in "
                          "a query: its result is random, and the cache keeps the first one. Pass the values as an "
                          "argument, or call it with .uncached(...).")
    if found.sql_history is not None:
        _config.warn_once(f"sql-history:{owner}", f"{owner} asks SQLite what a connection last did "
                          f"({found.sql_history}) in a query, which no key holds: the cache keeps the first answer. "
                          "Pass it as an argument, or call it with .uncached(...).")
    if found.entropy:
        _config.warn_once(f"entropy:{owner}", f"{owner} seeds a torch generator from the operating system's entropy "
                          "(.seed() without a seed): its result is random, and the cache keeps the first one. Pass "
                          "a seed (generator.manual_seed(...)), or call it with .uncached(...).")


def clock_reads(found: list[str]) -> list[str]:
    """Return where code reads the clock, once each; two or more ``time.time()`` reads time a run."""
    timers = sum(where.endswith(_TIMERS) for where in found)
    return list(dict.fromkeys(w for w in found if not (timers >= 2 and w.endswith(_TIMERS))))


def _follow(namespace: dict[str, Any], name: str, chain: tuple[str, ...]) -> tuple[Any, bool]:
    """Return what a name and attribute chain resolve to, and whether the way passed through os.environ."""
    if name.startswith(IMPORTED):
        value = sys.modules.get(name[len(IMPORTED):], _MISSING)
    else:
        value = namespace.get(name, _MISSING)
    if value is _MISSING:
        builtins_ns = namespace.get("__builtins__", {})
        value = (builtins_ns if isinstance(builtins_ns, dict) else vars(builtins_ns)).get(name, _MISSING)
    through = False
    for attr in chain:
        if value is _MISSING:
            break
        through = through or any(value is e for e in _ENVIRONS)
        try:
            value = _class_or_module_attr(value, attr)
        except Exception:
            return _MISSING, through
    return value, through


def _class_or_module_attr(value: Any, attr: str) -> Any:
    """``getattr`` that does not run properties of user objects (modules and classes only)."""
    if isinstance(value, (types.ModuleType, type)) or any(value is e for e in _ENVIRONS):
        return getattr(value, attr, _MISSING)
    return _MISSING


def _member(target: Any, name: str) -> Any:
    """Return what ``getattr(target, name)`` or ``target[name]`` gives for a module, a class or a dict (such as
    a module's ``__dict__``), without running user code; ``_MISSING`` for anything else."""
    if isinstance(target, dict):
        return target.get(name, _MISSING)
    if isinstance(target, (types.ModuleType, type)):
        return getattr(target, name, _MISSING)
    return _MISSING


def _constant_names(code: types.CodeType) -> set[str]:
    """Return the text constants of ``code`` and of the code nested in it."""
    found: set[str] = set()
    codes = [code]
    for current in codes:
        for const in current.co_consts:
            if isinstance(const, types.CodeType):
                codes.append(const)
            elif isinstance(const, str):
                found.add(const)
    return found


_ENVIRONMENT_NAMES = frozenset({"environ", "environb", "getenv", "getenvb"})
# The label under which the whole environment's content is keyed when code holds os.environ as an object.
WHOLE_ENVIRONMENT = "os.environ (all variables)"


def keys_variables(parts: dict[str, tuple[str, bytes]], names: tuple[str, ...]) -> bool:
    """Return True when ``names`` (environment variables) are given and a key of these ``parts`` holds each."""
    return bool(names) and (WHOLE_ENVIRONMENT in parts or all(f"env {name}" in parts for name in names))
_ENVIRONS = tuple(e for e in (os.environ, getattr(os, "environb", None)) if e is not None)
_GETENVS = tuple(g for g in (os.getenv, getattr(os, "getenvb", None)) if g is not None)


# Variables that name the session a kernel runs in (its terminal, its Jupyter server, its shell's depth, ids a
# prompt or history tool draws per shell), not what a result is computed from: a kernel started anew has others.
# Left out where the whole environment is keyed. Not COLUMNS, LINES, DISPLAY or XAUTHORITY: a program the body
# starts formats to the width or draws on the display they name, and a kernel keeps them across restarts.
SESSION_VARIABLES = frozenset({"_", "PWD", "OLDPWD", "SHLVL", "WINDOWID", "TERM_SESSION_ID", "XDG_SESSION_ID",
                               "INVOCATION_ID", "JOURNAL_STREAM", "MANAGERPID", "SYSTEMD_EXEC_PID",
                               "DBUS_SESSION_BUS_ADDRESS", "SESSION_MANAGER", "GPG_TTY", "TMUX", "TMUX_PANE", "STY",
                               "WINDOW", "SECURITYSESSIONID", "DESKTOP_STARTUP_ID", "XDG_ACTIVATION_TOKEN",
                               "WT_SESSION", "LaunchInstanceID", "STARSHIP_SESSION_KEY", "ATUIN_SESSION",
                               "ATUIN_HISTORY_ID", "_P9K_TTY", "P9K_TTY", "_P9K_SSH_TTY", "GIO_LAUNCHED_DESKTOP_FILE",
                               "GIO_LAUNCHED_DESKTOP_FILE_PID", "TILIX_ID", "MC_SID", "Apple_PubSub_Socket_Render",
                               "__CFBundleIdentifier", "GUAKE_TAB_UUID", "SHELL_SESSION_ID", "MCFLY_SESSION_ID",
                               "WSL_INTEROP", "XDG_VTNR", "SWAYSOCK", "HISTFILE", "__INTELLIJ_COMMAND_HISTFILE__",
                               "KRB5CCNAME",
                               # a batch scheduler's ids of the job (not its allocation: SLURM_CPUS_PER_TASK is keyed)
                               "SLURM_JOB_ID", "SLURM_JOBID", "SLURM_TASK_PID", "SLURM_STEP_ID", "SLURM_STEPID",
                               "PBS_JOBID", "LSB_JOBID"})
SESSION_PREFIXES = ("SSH_", "JPY_", "VSCODE_", "PYDEVD_", "ELECTRON_", "KITTY_", "WEZTERM_", "ITERM_",
                    "ALACRITTY_", "GNOME_TERMINAL_", "KONSOLE_", "TERM_PROGRAM", "XPC_", "NOTEBOOK_MEMO_",
                    "TERMINATOR_", "ZELLIJ", "LC_TERMINAL", "__MISE_",
                    "JUPYTERHUB_")  # JupyterHub's token and ids of the server a kernel runs under


def environment_digest() -> bytes:
    """Return the digest of every environment variable's name and value now, less the session's own."""
    return content_hash({name: value for name, value in os.environ.items()
                         if name not in SESSION_VARIABLES and not name.startswith(SESSION_PREFIXES)},
                        WHOLE_ENVIRONMENT)


_last_environment: list[tuple[dict[Any, Any], str]] = [({}, "")]  # the variables last digested, and their digest


def _environment_text() -> str:
    """Return environment_digest() as text; checked on every hit of code that reads the environment whole, so
    the variables are compared with those last digested (a few microseconds) and digested only when they differ."""
    data = getattr(os.environ, "_data", None)
    now = data if isinstance(data, dict) else dict(os.environ)
    last, text = _last_environment[0]
    if text and now == last:
        return text
    text = environment_digest().hex()
    _last_environment[0] = (dict(now), text)  # one tuple: a thread never reads one without the other
    return text


def _holds_environment(value: Any) -> bool:
    return any(value is e for e in _ENVIRONS)


# os.environ's methods that read one variable by its name (setdefault sets it only where it is unset, which the
# run's check of the environment sees): keyed by that variable, as os.environ.get is
_READS_ONE_VARIABLE = frozenset({"get", "setdefault", "__getitem__", "__contains__"})


def _is_environment(value: Any) -> bool:
    if any(value is e for e in _ENVIRONS) or any(value is g for g in _GETENVS):
        return True
    owner = getattr(value, "__self__", None)
    return any(owner is e for e in _ENVIRONS) and getattr(value, "__name__", "") in _READS_ONE_VARIABLE


def _clock_readers() -> list[tuple[Any, str]]:
    import datetime
    import time
    import uuid

    readers: list[tuple[Any, str]] = [
        (datetime.datetime.now, "datetime.now"), (datetime.datetime.utcnow, "datetime.utcnow"),
        (datetime.datetime.today, "datetime.today"), (datetime.date.today, "date.today"),
        (time.localtime, "time.localtime"), (time.gmtime, "time.gmtime"), (time.ctime, "time.ctime"),
        (time.asctime, "time.asctime"), (time.strftime, "time.strftime"), (time.time, "time.time"),
        (time.time_ns, "time.time_ns"), (uuid.uuid1, "uuid.uuid1"),
    ]
    # Not on every platform; a timer like time.time (two reads time a run)
    readers += [(getattr(time, name), f"time.{name}") for name in ("clock_gettime", "clock_gettime_ns")
                if hasattr(time, name)]
    pandas = sys.modules.get("pandas")
    if pandas is not None:
        stamp = pandas.Timestamp
        readers += [(stamp.now, "pd.Timestamp.now"), (stamp.today, "pd.Timestamp.today"),
                    (stamp.utcnow, "pd.Timestamp.utcnow"), (pandas.Period.now, "pd.Period.now")]
    return readers


def _of_numpy_or_pandas(namespace: dict[str, Any], name: str, target: Any) -> bool:
    """Return True when a global ``name`` (read as ``target``) is NumPy or pandas, or one of theirs."""
    root = namespace.get(name, _MISSING)
    try:
        module = root.__name__ if isinstance(root, types.ModuleType) else getattr(target, "__module__", None)
    except Exception:  # a user's object whose attributes fail
        return False
    return isinstance(module, str) and module.partition(".")[0] in ("numpy", "pandas")


@functools.lru_cache(maxsize=1024)
def _sql_reads(code: types.CodeType) -> tuple[str | None, str | None, str | None]:
    """Return where the SQL in the constant texts of ``code`` (or code nested in it) reads SQLite's clock, draws
    its random values, and reads what a connection last did (``changes()``): the first call of each, or None."""
    found: list[str | None] = [None, None, None]
    codes = [code]
    for current in codes:
        for const in current.co_consts:
            if isinstance(const, types.CodeType):
                codes.append(const)
            elif isinstance(const, str) and ("(" in const or "current_" in const.lower()):
                for index, pattern in enumerate((_SQL_CLOCK, _SQL_RANDOM, _SQL_HISTORY)):
                    match = pattern.search(const) if found[index] is None else None
                    # current_date, random(), changes() are common words of prose (a docstring) and names (a
                    # frame's column): taken for SQL only beside a verb of it, or in a part of a text the code
                    # builds (QUERY + "CURRENT_DATE", an f-string's), whose verb may be in another part
                    if match is not None and ((pattern is _SQL_RANDOM and "blob" in match.group().lower())
                                              or _SQL_TEXT.search(const) or const in text_pieces(current)):
                        found[index] = " ".join(match.group().split())
    return found[0], found[1], found[2]


def _now_text(code: types.CodeType) -> str | None:
    """Return a constant text "now" or "today" (any case) in ``code`` or the code nested in it, if any."""
    codes = [code]
    for current in codes:
        for const in current.co_consts:
            if isinstance(const, types.CodeType):
                codes.append(const)
            elif isinstance(const, str) and const.strip().lower() in _NOW_TEXTS:
                return const
    return None


def _makes_dates(code: types.CodeType) -> bool:
    """Return True when ``code`` or the code nested in it names what makes dates in NumPy or pandas, or holds a
    datetime dtype as text."""
    codes = [code]
    for current in codes:
        if not _DATE_MAKERS.isdisjoint(current.co_names):
            return True
        for const in current.co_consts:
            if isinstance(const, types.CodeType):
                codes.append(const)
            elif isinstance(const, str) and _DATE_DTYPE.fullmatch(const.strip()):
                return True
    return False


def _is_date_dtype(value: Any) -> bool:
    """Return True for a datetime dtype: as text (a global ``DAY = "M8[D]"``), a NumPy dtype, or the scalar type."""
    if isinstance(value, str):
        return _DATE_DTYPE.fullmatch(value.strip()) is not None
    numpy = sys.modules.get("numpy")
    if numpy is None:
        return False
    if value is numpy.datetime64:
        return True
    return isinstance(value, numpy.dtype) and value.kind == "M"


def _clock_parser(value: Any, text: str) -> str | None:
    """Return how ``value`` reads the clock when given the text "now" or "today" (``np.datetime64("now")``)."""
    parsers: list[tuple[Any, str]] = []
    numpy, pandas = sys.modules.get("numpy"), sys.modules.get("pandas")
    if numpy is not None:
        parsers.append((numpy.datetime64, "np.datetime64"))
    if pandas is not None:
        parsers += [(pandas.Timestamp, "pd.Timestamp"), (pandas.to_datetime, "pd.to_datetime")]
    for parser, label in parsers:
        if value is parser:
            return f"{label}({text!r})"
    return None


def _clock_reader(value: Any) -> str | None:
    """Return the name of the clock ``value`` reads, if it is one (``datetime.now``, ``time.time``...), also through
    a ``functools.partial`` of one (``partial(datetime.now, timezone.utc)``)."""
    if not callable(value):
        return None
    while isinstance(value, functools.partial):
        value = value.func
    for reader, label in _clock_readers():
        try:
            if value is reader or value == reader:
                return label
        except Exception:
            continue
    return None


# -- process state read by the standard library's functions ----------------------------------------------

CURRENT_FOLDER = "current folder"
LOCAL_TIME_ZONE = "local time zone"
HASH_SEED = "hash seed"
STATE_MEMBERS = "state read by members"  # of a class met as a value: which members read which state (value_class)
TEMPORARY_FOLDER = "temporary folder"
PYTHON_FLAGS = "Python's flags"  # sys.flags: -O, -B, -s, -X dev... as the interpreter was started
CPU_COUNT = "CPU count"  # how many the machine has (os.cpu_count; PYTHON_CPU_COUNT or -X cpu_count on 3.13)
PROCESSORS = "CPUs"  # which ones this process may run on (taskset, a container's)
LOCALE = "locale"  # also the locale module's name: its settings, as _PACKAGE_STATE keys them for code naming it
LOCALE_TIME = "locale's time category"  # strftime's names of days and months, calendar's
LOCALE_NUMBERS = "locale's number category"  # format(x, "n")
_CATEGORY_STATES = {LC_TIME: LOCALE_TIME, LC_NUMERIC: LOCALE_NUMBERS}
_HOME = "home"
_USER = "user name"
# Who and where the process is: a team's cache is shared between machines and users, and a kernel's process and
# thread ids are drawn anew at each start. Each is keyed by its value, read only for code that reaches its readers.
HOST_NAME = "host name"  # socket.gethostname, platform.node, socket.getfqdn, uuid.getnode
SYSTEM = "operating system"  # os.uname, platform.uname, platform.platform...: the kernel's release too
PLATFORM = "platform"  # sys.platform, sys.byteorder, os.name, platform.system, platform.machine
USER_ID = "user id"  # os.getuid, os.geteuid, os.getgroups...: which user the process runs as
USER_DATABASE = "user database"  # pwd, grp: the machine's users and groups, by the machine's name
PROCESS_ID = "process id"
# What a key holds for the process, parent process and thread ids code reads: that it reads them, not their values.
IDS_READ = "read, not keyed"
PARENT_PROCESS_ID = "parent process id"
THREAD_ID = "thread id"
# The states whose values are left out of the key (a warning says so).
ID_STATES = frozenset({PROCESS_ID, PARENT_PROCESS_ID, THREAD_ID})
# What a class met as a value reads in its members is keyed for a call only where the body names a member reaching the
# read: a kernel draws the seed and the ids anew at each start, and a class's unused fork check must not cost a miss.
_MEMBER_STATES = (HASH_SEED, PROCESS_ID, PARENT_PROCESS_ID, THREAD_ID, HOST_NAME, USER_ID, USER_DATABASE)
# The kernel's own files in /proc, named by constant paths (open("/proc/self/stat"), os.readlink("/proc/self"),
# Path("/proc/self").resolve()): what they tell is the process (or thread) reading them, or the machine's name. No
# condition can hold them (/proc is the system's, not data): keyed by what they name.
_PROC_PATHS = (("/proc/self", (PROCESS_ID,)), ("/proc/thread-self", (PROCESS_ID, THREAD_ID)),
               ("/proc/sys/kernel/hostname", (HOST_NAME,)))
_PROGRAM_PATH = "program path"
# The environment variables read for each of these (keyed like variables the code reads by name): os.path.expanduser
# ("~") reads HOME, on Windows USERPROFILE, else HOMEDRIVE and HOMEPATH; getpass.getuser() the first set of LOGNAME,
# USER, LNAME and USERNAME; shutil.which and os.get_exec_path PATH (and on Windows PATHEXT).
_HOME_VARIABLES = ("USERPROFILE", "HOMEDRIVE", "HOMEPATH") if os.name == "nt" else ("HOME",)
_TERMINAL_SIZE = "terminal size"
_DEFAULT_LOCALE = "default locale"
_STATE_VARIABLES = {_HOME: _HOME_VARIABLES, _USER: ("LOGNAME", "USER", "LNAME", "USERNAME"),
                    _PROGRAM_PATH: ("PATH", "PATHEXT") if os.name == "nt" else ("PATH",),
                    _TERMINAL_SIZE: ("COLUMNS", "LINES"),  # shutil.get_terminal_size: these first, then the terminal
                    _DEFAULT_LOCALE: ("LC_ALL", "LC_CTYPE", "LANG", "LANGUAGE")}  # locale.getdefaultlocale
# urllib.request's proxy settings: every variable named *_proxy (any case; no_proxy for proxy_bypass), which no
# constant name lists, so they are read as one state; and REQUEST_METHOD, under which http_proxy is not used.
PROXY_VARIABLES = "proxy variables"
# Methods known by their name only, called on a value the code made (Path(p).resolve(), p.expanduser()): what they
# read is keyed whatever the value (another class's method of that name costs a miss after os.chdir, never a
# stale hit).
_STATE_NAMES = {"getcwd": CURRENT_FOLDER, "getcwdb": CURRENT_FOLDER, "abspath": CURRENT_FOLDER,
                "realpath": CURRENT_FOLDER, "relpath": CURRENT_FOLDER, "cwd": CURRENT_FOLDER,
                "resolve": CURRENT_FOLDER, "absolute": CURRENT_FOLDER, "expanduser": _HOME, "home": _HOME,
                "fromtimestamp": LOCAL_TIME_ZONE, "astimezone": LOCAL_TIME_ZONE, "timestamp": LOCAL_TIME_ZONE,
                "mktime": LOCAL_TIME_ZONE, "localtime": LOCAL_TIME_ZONE, "now": LOCAL_TIME_ZONE,
                "today": LOCAL_TIME_ZONE, "tzlocal": LOCAL_TIME_ZONE, "get_localzone": LOCAL_TIME_ZONE,
                "__hash__": HASH_SEED}
# The attributes of time that describe the local time zone, read without a call (a name bound to one of them,
# ``from time import timezone``, holds a number or names that are keyed as its value).
_ZONE_ATTRIBUTES = frozenset({"timezone", "altzone", "daylight", "tzname"})
# The attributes that tell the platform, by the module holding them (``from sys import platform`` binds a text,
# keyed as a global's value).
_PLATFORM_ATTRIBUTES = {"platform": sys, "byteorder": sys, "name": os}
# A library's function of one of these names computes local time (pd.Timestamp.now, arrow.now,
# dateutil.tz.tzlocal): the names of _STATE_NAMES that no other kind of library function is likely to have.
_LIBRARY_LOCAL_TIME = frozenset({"fromtimestamp", "astimezone", "mktime", "localtime", "now", "today", "tzlocal",
                                 "get_localzone"})


@functools.lru_cache(maxsize=1)
def _state_readers() -> tuple[dict[Any, str], frozenset[Any], frozenset[Any]]:
    """Return the functions that read process state (by their function, so that a subclass's classmethod is
    one too), those of them that read none for a constant absolute path, and those that read none for a
    constant path not starting with ``~``."""
    import datetime
    import pathlib

    path, moment, day = pathlib.Path, datetime.datetime, datetime.date
    readers = {os.getcwd: CURRENT_FOLDER, os.getcwdb: CURRENT_FOLDER, os.path.abspath: CURRENT_FOLDER,
               _function(os.path.realpath): CURRENT_FOLDER, os.path.relpath: CURRENT_FOLDER,
               _function(path.cwd): CURRENT_FOLDER, path.resolve: CURRENT_FOLDER, path.absolute: CURRENT_FOLDER,
               os.path.expanduser: _HOME, _function(path.home): _HOME, path.expanduser: _HOME}
    # What converts to or from local time: without a time tuple, time.strftime, ctime and asctime take localtime().
    for reader in (time.localtime, time.mktime, time.ctime, time.asctime, time.strftime, time.tzset,
                   moment.fromtimestamp, day.fromtimestamp, moment.now, moment.today, day.today, moment.astimezone,
                   moment.timestamp):
        readers[_function(reader)] = LOCAL_TIME_ZONE
    # hash() of a text or bytes changes with PYTHONHASHSEED, which a Jupyter kernel draws anew at each start. Not
    # inside a class's __hash__ (_Resolver.in_hash): there it serves dict and set lookups, whose answers do not
    # depend on the seed, and keying it would make every frozen dataclass miss after a restart.
    readers[hash] = HASH_SEED
    readers[os.get_exec_path] = _PROGRAM_PATH
    # A count of the machine's CPUs is the same under taskset or a container's CPU set: keyed by the count alone.
    readers[os.cpu_count] = CPU_COUNT
    for name, state in (("uname", SYSTEM), ("getuid", USER_ID), ("geteuid", USER_ID), ("getgid", USER_ID),
                        ("getegid", USER_ID), ("getgroups", USER_ID), ("getresuid", USER_ID), ("getresgid", USER_ID),
                        ("getlogin", USER_ID), ("getpid", PROCESS_ID), ("getppid", PARENT_PROCESS_ID),
                        # A process group or session is led by a process of this run (the kernel, its launcher).
                        ("getpgrp", PROCESS_ID), ("getpgid", PROCESS_ID), ("getsid", PROCESS_ID)):
        if hasattr(os, name):  # not all on Windows
            readers[getattr(os, name)] = state
    # The thread as an object (current_thread().ident, .native_id); the main thread's native id is the process id.
    readers[threading.get_ident] = readers[threading.get_native_id] = THREAD_ID
    readers[threading.current_thread] = THREAD_ID
    readers[threading.main_thread] = PROCESS_ID
    if hasattr(threading, "currentThread"):  # removed in a later Python
        readers[threading.currentThread] = THREAD_ID
    for name in ("process_cpu_count", "sched_getaffinity"):  # process_cpu_count: Python 3.13
        if hasattr(os, name):
            readers[getattr(os, name)] = PROCESSORS
    return readers, frozenset({os.path.abspath, _function(os.path.realpath)}), frozenset({os.path.expanduser})


# Readers in modules the package does not load (a call or a hit imports nothing), known by module and name. The
# temporary folder is keyed for what names a path in it (a result may hold that path); TemporaryFile and
# SpooledTemporaryFile give none, and a body that only writes and reads back a temporary file should not miss where
# the folder is another.
_READERS_BY_NAME = {("getpass", "getuser"): _USER, ("shutil", "which"): _PROGRAM_PATH,
                    ("_socket", "gethostname"): HOST_NAME, ("socket", "getfqdn"): HOST_NAME,
                    ("platform", "node"): HOST_NAME, ("uuid", "getnode"): HOST_NAME,
                    **{("platform", name): SYSTEM
                       for name in ("uname", "platform", "release", "version", "processor", "libc_ver",
                                    "freedesktop_os_release")},
                    **{("platform", name): PLATFORM for name in ("system", "machine", "architecture")},
                    **{(module, name): USER_DATABASE
                       for module, names in (("pwd", ("getpwuid", "getpwnam", "getpwall")),
                                             ("grp", ("getgrgid", "getgrnam", "getgrall")))
                       for name in names},
                    ("shutil", "get_terminal_size"): _TERMINAL_SIZE,
                    ("multiprocessing.context", "BaseContext.cpu_count"): CPU_COUNT,
                    # multiprocessing.current_process().pid, parent_process().pid
                    ("multiprocessing.process", "current_process"): PROCESS_ID,
                    ("multiprocessing.process", "parent_process"): PARENT_PROCESS_ID,
                    ("locale", "getdefaultlocale"): _DEFAULT_LOCALE,
                    **{("urllib.request", name): PROXY_VARIABLES
                       for name in ("getproxies", "getproxies_environment", "proxy_bypass",
                                    "proxy_bypass_environment")},
                    **{("tempfile", name): TEMPORARY_FOLDER
                       for name in ("gettempdir", "gettempdirb", "mkdtemp", "mkstemp", "mktemp", "NamedTemporaryFile",
                                    "TemporaryDirectory")}}


def _function(value: Any) -> Any:
    """Return the function of a method, or the function we wrapped to watch it (os.path.realpath, os.urandom)."""
    value = getattr(value, "__func__", value)
    return getattr(value, "_notebook_memo_original", value)


def _state_read(target: Any, chain: tuple[str, ...], const: str | None) -> str | None:
    """Return the process state a global (and attribute chain) reads when called, if any: ``"current folder"``
    for os.getcwd, os.path.abspath, Path.cwd..., ``"home"`` for os.path.expanduser and Path.home."""
    if target is _MISSING:
        # Not followed (an attribute of a global that is no module or class: DATA_DIR.resolve()): by its name.
        return _STATE_NAMES.get(chain[-1]) if chain else None
    if not callable(target):
        return None
    readers, absolute_ok, plain_ok = _state_readers()
    function = _function(target)
    try:
        state = readers.get(function)
    except TypeError:  # unhashable
        return None
    if state is None:
        module, name = getattr(function, "__module__", None), getattr(function, "__qualname__", None)
        state = _READERS_BY_NAME.get((module, name)) if isinstance(module, str) and isinstance(name, str) else None
    if state is None and getattr(target, "__name__", None) in _LIBRARY_LOCAL_TIME and not is_user_code(function):
        return LOCAL_TIME_ZONE
    if state is None or const is None:
        return state
    if (function in absolute_ok and os.path.isabs(const)) or (function in plain_ok and not const.startswith("~")):
        return None  # os.path.realpath("/data/x"), os.path.expanduser("data"): nothing read
    return state


def _note_state(found: Environment, state: str) -> None:
    variables = _STATE_VARIABLES.get(state)
    if variables is not None:
        for name in variables:
            found.variables[name] = os.environ.get(name)
        if state == _USER:  # getpass.getuser() with none of its variables set asks the user database by user id
            found.state[USER_ID] = _STATE_PROBES[USER_ID]()
    else:
        found.state[state] = _STATE_PROBES[state]()


def _host_name() -> str:
    """Return this machine's name, as socket.gethostname() and platform.node() give it."""
    if hasattr(os, "uname"):
        return os.uname().nodename  # what gethostname() asks, without importing socket for a key
    import socket

    return socket.gethostname()


def _system() -> str:
    """Return what os.uname() and platform.uname() tell (the host name, the kernel's name, release and build,
    the machine), and the C library's version, which platform.platform() names."""
    if not hasattr(os, "uname"):  # Windows: platform.uname() asks the registry; its version is keyed instead
        return f"{_host_name()} {sys.platform} {getattr(sys, 'getwindowsversion', tuple)()}"
    system = os.uname()
    libc = os.confstr("CS_GNU_LIBC_VERSION") if "CS_GNU_LIBC_VERSION" in getattr(os, "confstr_names", {}) else ""
    return f"{_host_name()} {system.sysname} {system.release} {system.version} {system.machine} {libc}"


def _platform() -> str:
    """Return the platform as code tells it apart: sys.platform, the byte order, os.name and the machine."""
    machine = os.uname().machine if hasattr(os, "uname") else os.environ.get("PROCESSOR_ARCHITECTURE", "")
    return f"{sys.platform} {sys.byteorder} {os.name} {machine}"


def _user_ids() -> str:
    """Return the user and groups the process runs as (real and effective)."""
    if not hasattr(os, "geteuid"):
        return ""  # Windows: the user name's variables are keyed instead
    return (f"uid {os.getuid()} euid {os.geteuid()} gid {os.getgid()} egid {os.getegid()} "
            f"groups {sorted(os.getgroups())}")


def _current_folder() -> str:
    """Return the current folder as text ("" when it was removed since the process entered it)."""
    try:
        folder = os.getcwd()
    except OSError:
        return ""
    return folder.encode("utf-8", "backslashreplace").decode()  # a name that is no UTF-8 still keys as text


def _hash_seed() -> str:
    """Return what the hash seed makes of one text: the same in every process with the same PYTHONHASHSEED."""
    return str(hash("notebook_memo"))


_FLAGS_TEXT = repr(tuple(sys.flags))  # fixed when the interpreter starts


def _processors() -> str:
    """Return the CPUs this process may run on (which os.sched_setaffinity changes), and how many it counts."""
    allowed = getattr(os, "sched_getaffinity", None)
    try:
        mine = sorted(allowed(0)) if allowed is not None else None
    except OSError:
        mine = None
    counted = getattr(os, "process_cpu_count", None)  # Python 3.13: PYTHON_CPU_COUNT or -X cpu_count overrides it
    return f"{mine} {counted() if counted is not None else ''}"


def _proxy_variables() -> str:
    """Return the variables urllib.request takes proxies from, as ``name=value`` lines in name order."""
    return "\n".join(f"{name}={value}" for name, value in sorted(os.environ.items())
                     if name.lower().endswith("_proxy") or name == "REQUEST_METHOD")


def _temporary_folder() -> str:
    """Return the folder tempfile makes its files in: TMPDIR, TEMP or TMP when first asked, or ``tempfile.tempdir``
    as the notebook set it ("" when there is none it can write to)."""
    tempfile = sys.modules.get("tempfile")  # loaded: the code reached one of its functions
    try:
        return str(tempfile.gettempdir()) if tempfile is not None else ""
    except OSError:
        return ""


def _time_zone() -> str:
    """Return what local time is computed with: TZ, the offsets and names time.tzset() found, and with TZ unset,
    the system's zone file (zones of the same names and offsets now differ in earlier years' rules)."""
    zone = os.environ.get("TZ")
    text = f"TZ={zone} offsets {time.timezone} {time.altzone} {time.daylight} names {'/'.join(time.tzname)}"
    return text if zone is not None else f"{text} file {_zone_file()}"


@functools.lru_cache(maxsize=1)
def _zone_file() -> str:
    """Return a digest of /etc/localtime, read once: the C library reads it once per process while TZ is unset."""
    try:
        with open("/etc/localtime", "rb") as f:
            return xxhash.xxh3_64_hexdigest(f.read())
    except OSError:
        return "-"


def torch_settings() -> str:
    """Return torch's process-wide settings that change what its calls make: the default dtype, the float32
    precisions of matmuls and convolutions (per backend, and the older global one), TF32 and reduced-precision
    flags, and what picks its kernels (cuDNN's flags, deterministic algorithms). What a call runs under (grad
    mode, autocast, a device context) is ``torch_modes``."""
    torch = sys.modules.get("torch")
    if torch is None:
        return ""
    c = torch._C
    parts = [str(torch.get_default_dtype())]
    precision = getattr(c, "_get_fp32_precision_getter", None)
    if precision is not None:
        chosen = [(f"{backend}.{op}", _setting(precision, backend, op)) for backend, op in _PRECISIONS]
        parts.append("fp32 " + (",".join(f"{name}={value}" for name, value in chosen if value != "none") or "none"))
    parts.append("flags " + ",".join(_setting(getattr(c, getter, None)) for getter in _PRECISION_FLAGS))
    parts.append(f"matmul {_setting(torch.get_float32_matmul_precision)}")  # raises once the per-backend API is used
    parts.append(_determinism(c))
    return " ".join(parts)


def torch_modes() -> str:
    """Return what a torch call runs under, which a notebook changes from call to call: the default device
    and the function modes entered (``with torch.device(...)``, a ``TorchFunctionMode``: its class and
    content), grad and inference mode, and autocast per device."""
    torch = sys.modules.get("torch")
    if torch is None:
        return ""
    parts = []
    context = getattr(torch._GLOBAL_DEVICE_CONTEXT, "device_context", None)
    if torch._C._len_torch_function_stack() or context is not None:
        parts.append(str(torch.get_default_device()))  # slow: only when a mode may set it
        for mode in torch.overrides._get_current_function_mode_stack():
            name = qualified_name(type(mode))
            if name != "torch.utils._device.DeviceContext":
                try:
                    parts.append(f"{name}:{content_hash(mode).hex()[:16]}")  # its code and state
                except Exception:
                    parts.append(f"{name}:?")
    else:
        parts.append("cpu")
    parts.append("grad" if torch.is_grad_enabled() else "no_grad")
    if torch.is_inference_mode_enabled():
        parts.append("inference_mode")
    for device in ("cpu", "cuda"):
        if torch.is_autocast_enabled(device):
            parts.append(f"autocast({device}, {torch.get_autocast_dtype(device)})")
    return " ".join(parts)


# torch's per-backend float32 precisions (torch.backends.<backend>[.<op>].fp32_precision; cudnn is "cuda").
_PRECISIONS = (("generic", "all"), ("cuda", "all"), ("cuda", "matmul"), ("cuda", "conv"), ("cuda", "rnn"),
               ("mkldnn", "all"), ("mkldnn", "matmul"), ("mkldnn", "conv"), ("mkldnn", "rnn"))
_PRECISION_FLAGS = ("_get_cudnn_allow_tf32", "_get_cublas_allow_tf32",
                    "_get_cublas_allow_fp16_reduced_precision_reduction",
                    "_get_cublas_allow_bf16_reduced_precision_reduction")


# What picks the kernels torch runs, by name as set (torch.backends.cudnn.benchmark = True), with its getter.
_DETERMINISM = (("cudnn.enabled", "_get_cudnn_enabled"), ("cudnn.benchmark", "_get_cudnn_benchmark"),
                ("cudnn.deterministic", "_get_cudnn_deterministic"),
                ("use_deterministic_algorithms", "_get_deterministic_algorithms"),
                ("use_deterministic_algorithms.warn_only", "_get_deterministic_algorithms_warn_only"))


_determinism_last: list[Any] = [None, ""]  # the values last read, and their text


def _determinism(c: Any) -> str:
    """Return what picks torch's kernels as text (``cudnn.benchmark=True ...``): read on every call of code
    using torch, so made anew only when the values change."""
    try:
        values = tuple(getattr(c, getter)() for _, getter in _DETERMINISM)
    except Exception:  # a torch without one of them
        return " ".join(f"{name}={_setting(getattr(c, getter, None))}" for name, getter in _DETERMINISM)
    if values != _determinism_last[0]:
        _determinism_last[:] = [values, " ".join(f"{name}={value}" for (name, _), value in zip(_DETERMINISM, values))]
    return str(_determinism_last[1])


def _setting(getter: Callable[..., Any] | None, *args: Any) -> str:
    """Return a setting as text; "-" where this torch lacks it, "?" where reading it raised."""
    if getter is None:
        return "-"
    try:
        return str(getter(*args))
    except Exception:
        return "?"


def decimal_settings() -> str:
    """Return the decimal context of this thread: precision, rounding, exponent range and traps."""
    decimal = sys.modules.get("decimal")
    if decimal is None:
        return ""
    c = decimal.getcontext()
    traps = ",".join(sorted(kind.__name__ for kind, on in c.traps.items() if on))
    return f"prec={c.prec} rounding={c.rounding} Emin={c.Emin} Emax={c.Emax} capitals={c.capitals} clamp={c.clamp} " \
           f"traps={traps}"


# What NumPy does on a floating-point error (np.seterr, np.errstate), as far as it changes a result: "raise"
# raises FloatingPointError, "call" calls the function set by np.seterrcall; "warn", "ignore", "print" and "log"
# return the same values, so switching between them is no miss.
_NUMPY_ERROR_MODES = {"raise": "raise", "call": "call"}
# The error state object last read and its text, as one pair: threads (and contexts) each have their own state.
_numpy_last: list[tuple[Any, str]] = [(None, "")]


def _numpy_settings() -> str:
    """Return NumPy's floating-point error handling: per kind of error, raise, call or other."""
    numpy = sys.modules.get("numpy")
    if numpy is None:
        return ""
    # Read on every call of code using numpy: np.geterr() builds a dict (about 2 us); NumPy 2 keeps the state in one
    # context variable whose object changes with every seterr or errstate, so its text is made only then.
    holder = getattr(sys.modules.get("numpy._core._ufunc_config"), "_extobj_contextvar", None)
    now = holder.get() if holder is not None else None
    last = _numpy_last[0]
    if now is not None and now is last[0]:
        return last[1]
    errors = numpy.geterr()
    text = "errors " + ",".join(f"{kind}={_NUMPY_ERROR_MODES.get(mode, 'other')}"
                                for kind, mode in sorted(errors.items()))
    if now is not None:
        _numpy_last[0] = (now, text)  # held, so no later state object can take its identity
    return text


# pandas' options that change what its calls compute (display options do not): these sections whole, less
# the entries that only warn or size thread pools.
_PANDAS_SECTIONS = ("compute", "future", "mode")
_PANDAS_SKIPPED = frozenset({"sim_interactive", "chained_assignment", "performance_warnings", "max_threads"})
# Options whose default pandas reads from an environment variable at import, by that variable: where it is set, the
# option is keyed by value even at its default, which is then not the same in every process.
_PANDAS_FROM_ENVIRONMENT = {"mode.copy_on_write": "PANDAS_COPY_ON_WRITE"}
_NO_DEFAULT = object()  # an option pandas registered no default for: keyed by value


_pandas_last: list[Any] = [None, ""]  # the option values last read, and their text


def _pandas_default(option: str, value: Any, registered: dict[str, Any]) -> bool:
    """Return True for a pandas option at the default it has in every process, as loaded.

    Code that imports pandas keys its settings before the first import (not loaded: "") and after it: an option
    keyed only where it differs from its default keys the two alike, so that a cell's first run (``import pandas as
    pd``) and the run after it share one entry. An option whose default pandas read from an environment variable
    that is set is keyed by its value, as one that has no registered default or cannot be compared.
    """
    variable = _PANDAS_FROM_ENVIRONMENT.get(option)
    if variable is not None and variable in os.environ:
        return False
    default = getattr(registered.get(option), "defval", _NO_DEFAULT)
    try:
        return bool(value == default) and type(value) is type(default)
    except Exception:
        return False


def _pandas_settings() -> str:
    """Return pandas' options that change results (``future.infer_string``, ``mode.copy_on_write``...), those that
    differ from their defaults; "" where none does, as before pandas is imported (see _pandas_default)."""
    config = sys.modules.get("pandas._config.config")
    table = getattr(config, "_global_config", None)
    if not isinstance(table, dict):
        return ""
    registered = getattr(config, "_registered_options", None)
    defaults = registered if isinstance(registered, dict) else {}
    groups = [table.get(section) for section in _PANDAS_SECTIONS]
    now = tuple(tuple(group.values()) if isinstance(group, dict) else () for group in groups)
    if now == _pandas_last[0]:  # read on every call of code using pandas: the text only when they changed
        return str(_pandas_last[1])
    parts = []
    for section in _PANDAS_SECTIONS:
        group = table.get(section)
        if isinstance(group, dict):
            parts += [f"{section}.{name}={value!r}" for name, value in sorted(group.items())
                      if name not in _PANDAS_SKIPPED and not isinstance(value, dict)
                      and not _pandas_default(f"{section}.{name}", value, defaults)]
    _pandas_last[:] = [now, " ".join(parts)]
    return str(_pandas_last[1])


# The locale's categories that change what a body computes: character classes and encoding, the order of texts
# (strxfrm, strcoll), the names of days and months (strftime), money and number layouts (format(x, "n"), atof).
_LOCALE_CATEGORIES = ("LC_CTYPE", "LC_COLLATE", "LC_TIME", "LC_MONETARY", "LC_NUMERIC")


def _locale_category(category: str) -> str:
    """Return one category of the process's locale (``LC_TIME=de_DE.UTF-8``), as _locale_settings() names it."""
    import _locale

    try:
        return f"{category}={_locale.setlocale(getattr(_locale, category), None)}"
    except Exception:  # _locale.Error: not queryable here
        return f"{category}=?"


def _locale_settings() -> str:
    """Return the process's locale, by category (``LC_NUMERIC=de_DE.UTF-8 ...``): as locale.setlocale set it, or
    as a kernel started under LC_ALL or LANG took it. The same names in two kernels of the same environment."""
    import _locale  # built in: what locale.setlocale calls, without loading locale's own module for a key

    parts = []
    for category in _LOCALE_CATEGORIES:
        number = getattr(_locale, category, None)
        if number is None:
            continue
        try:
            parts.append(f"{category}={_locale.setlocale(number, None)}")
        except Exception:  # _locale.Error: not queryable here
            parts.append(f"{category}=?")
    return " ".join(parts)


# Per library (by top-level module): its settings that a body using it depends on, read as text.
_PACKAGE_STATE: dict[str, Callable[[], str]] = {"torch": torch_settings, "decimal": decimal_settings,
                                               "pandas": _pandas_settings, "numpy": _numpy_settings,
                                               LOCALE: _locale_settings}
# Every watched state by its label: the libraries' settings, and process state code reads (code_environment).
_STATE_PROBES: dict[str, Callable[[], str]] = {**_PACKAGE_STATE, CURRENT_FOLDER: _current_folder,
                                               LOCAL_TIME_ZONE: _time_zone, HASH_SEED: _hash_seed,
                                               TEMPORARY_FOLDER: _temporary_folder,
                                               PROXY_VARIABLES: _proxy_variables,
                                               WHOLE_ENVIRONMENT: _environment_text,
                                               PYTHON_FLAGS: lambda: _FLAGS_TEXT, PROCESSORS: _processors,
                                               CPU_COUNT: lambda: str(os.cpu_count()),
                                               # Through the module's names at each call (tests replace one).
                                               HOST_NAME: lambda: _host_name(), SYSTEM: lambda: _system(),
                                               PLATFORM: lambda: _platform(), USER_ID: lambda: _user_ids(),
                                               USER_DATABASE: lambda: _host_name(),
                                               # Noted, not keyed by value: each process has its own, and a
                                               # body that logs or names a temporary with it would miss after
                                               # every restart (the clock's rule: one warning, see IDS_READ).
                                               PROCESS_ID: lambda: IDS_READ, PARENT_PROCESS_ID: lambda: IDS_READ,
                                               THREAD_ID: lambda: IDS_READ,
                                               LOCALE_TIME: lambda: _locale_category(LC_TIME),
                                               LOCALE_NUMBERS: lambda: _locale_category(LC_NUMERIC)}


def _still_valid(watch: list[tuple[Any, ...]]) -> bool:
    for item in watch:
        kind = item[0]
        # The commonest kinds first (a global the code reads, the function itself, a helper): every call walks this.
        if kind == "global":
            if item[1].get(item[2], _MISSING) is not item[3]:
                return False
        elif kind == "top":
            fn = item[1]
            if fn.__code__ is not item[2] or fn.__dict__ is not item[3]:
                return False
            if item[4] and not _same_items(item[3], item[4]):
                return False
        elif kind == "fn":
            fn = item[1]
            if fn.__code__ is not item[2] or fn.__defaults__ is not item[3] or fn.__kwdefaults__ is not item[4] \
                    or fn.__dict__ is not item[5]:
                return False
            if (item[6] or item[5]) and not _same_items(item[5], item[6]):
                return False
            if item[4] is not None and not _same_items(item[4], item[7]):
                return False
        elif kind == "module":
            if sys.modules.get(item[1]) is not item[2]:
                return False
        elif kind == "attr":
            if getattr(item[1], item[2], _MISSING) is not item[3]:
                return False
        elif kind == "dict":
            if not _same_items(item[1], item[2]):
                return False
        elif kind == "cell":
            try:
                if item[1].cell_contents is not item[2]:
                    return False
            except ValueError:
                if item[2] is not _MISSING:
                    return False
        elif kind == "env":
            if os.environ.get(item[1]) != item[2]:
                return False
        elif kind == "probe":
            if _STATE_PROBES[item[1]]() != item[2]:
                return False
        elif kind == "settings":
            if settings_text(item[1]) != item[2]:
                return False
        elif kind == "class":
            now = list(vars(item[1]).items())
            if len(now) != len(item[2]) or any(a[0] != b[0] or a[1] is not b[1] for a, b in zip(now, item[2])):
                return False
        elif kind == "abc":
            if abc.get_cache_token() != item[1]:
                return False
        elif kind == "reducer":
            if copyreg.dispatch_table.get(item[1], _MISSING) is not item[2]:
                return False
        elif kind == "subclasses":
            now = _subclasses(item[1])
            if len(now) != len(item[2]) or any(a is not b for a, b in zip(now, item[2])):
                return False
        elif kind == "patches":
            if not _unchanged(item[1], item[3]) and not _same_patches(item[2], _library_scan(item[1]).patches):
                return False
    return True


def dependency_value(fn: types.FunctionType, label: str) -> Any:
    """Return what a dependency's label names as seen from ``fn`` now (``helper``, ``Config.scale``,
    ``mymodule.helper``), or _MISSING when it names nothing."""
    parts = label.split(".")
    value, rest = fn.__globals__.get(parts[0], _MISSING), parts[1:]
    if value is _MISSING:  # another module's global: the longest module name the label starts with
        for cut in range(len(parts) - 1, 0, -1):
            module = sys.modules.get(".".join(parts[:cut]))
            if module is not None:
                value, rest = module, parts[cut:]
                break
    try:  # an attribute may be computed as it is read: what fails to be read is not there for us
        for attr in rest:
            value = getattr(value, attr, _MISSING)
    except Exception:
        return _MISSING
    return value


def still_bound(fn: types.FunctionType, label: str, before: Any) -> bool:
    """Return True when what ``label`` names from ``fn`` now is what it named as ``before``, by identity: a class
    method read through its class (``P.conv``, an enum's ``_missing_``) is a new bound method on each lookup, the
    same while its function and class are; and what a lookup makes anew each time (a module ``__getattr__``
    returning a new function) is the same while it keys alike. Asked after a run, never on a hit."""
    now = dependency_value(fn, label)
    if now is before:
        return True
    if type(now) is types.FunctionType and original_of(now) is before:
        return True  # our wrapper, put where a seeding function taken by name was (_replaced.rebind_taken_earlier)
    if isinstance(now, types.MethodType) and isinstance(before, types.MethodType):
        return now.__func__ is before.__func__ and now.__self__ is before.__self__
    if now is _MISSING or before is _MISSING or dependency_value(fn, label) is now:
        return False  # bound to another object, which stays: bound anew
    try:
        return content_hash(now, label) == content_hash(before, label)
    except Exception:  # an object that cannot be keyed: taken as bound anew, as before
        return False


def _reached_code(fn: types.FunctionType, deps: Dependencies) -> Iterator[tuple[types.CodeType, dict[str, Any]]]:
    """Yield the code, with its globals, of ``fn`` and of the functions and classes' methods it reads by name."""
    owners: list[Any] = [fn]
    for label, (kind, _) in deps.parts.items():
        if kind == "code":
            value = dependency_value(fn, label)
            owners.extend(vars(value).values() if isinstance(value, type) else [value])
    for owner in owners:
        owner = getattr(owner, "__func__", owner)
        code = getattr(owner, "__code__", None)
        namespace = getattr(owner, "__globals__", None)
        if isinstance(code, types.CodeType) and isinstance(namespace, dict):
            yield code, namespace


def global_label(namespace: dict[str, Any], name: str) -> str:
    """Return how a dependency on the global ``name`` of ``namespace`` is labelled: by its name alone in the
    notebook's or a script's globals (its spawned workers run it as __mp_main__: the same labels, the same keys),
    after its module's name elsewhere."""
    module = namespace.get("__name__")
    return name if module in (None, "__main__", "__mp_main__") else f"{module}.{name}"


def helpers_code(fn: types.FunctionType, deps: Dependencies) -> Iterator[tuple[types.CodeType, dict[str, Any]]]:
    """Yield the code, with its globals, of the functions and classes' methods ``fn`` reads by name (not its own)."""
    own = getattr(fn, "__code__", None)
    return ((code, namespace) for code, namespace in _reached_code(fn, deps) if code is not own)


def labels_bound_by_code(fn: types.FunctionType, deps: Dependencies, labels: set[str]) -> set[str]:
    """Return those of ``labels`` (labelled as dependencies are) that ``fn`` or the functions and classes it
    reads bind themselves: a global (``global _model`` in a helper that loads it on first use), or an
    attribute their code sets on some object (``Model._instance = load()``, ``cls._inst = ...`` in a
    classmethod, ``setattr(Loader, "cached", ...)``), matched by the attribute's name: which object it is
    set on is not told by the code (``cls``), and a name the code never sets is not matched."""
    found: set[str] = set()
    attributes: set[str] = set()
    for code, namespace in _reached_code(fn, deps):
        found.update(global_label(namespace, name) for name in global_stores(code))
        attributes.update(attribute_stores(code))
    return {label for label in labels
            if label in found or ("." in label and label.rpartition(".")[2] in attributes)}


@dataclass
class CodeState:
    """A function's code as of one resolution: its digests and what they came from."""

    code: bytes  # own code plus the code (and package versions) of its dependencies
    own: bytes  # the function's own code alone
    deps: Dependencies
    deps_digest: bytes
    method: str
    # The mutable data read (see DataRead): held for one call only, never kept
    mutable: tuple[DataRead, ...] = ()
    # A method's: the names its code and its helpers' hold, its class apart (whose members it names only so)
    names: frozenset[str] | None = None
    # Whether the code reached lists subclasses: then those of the user classes its arguments hold count too
    lists_subclasses: bool = False


class CodeTracker:
    """Resolves a function's code and dependencies, re-using the last answer while valid."""

    def __init__(self, fn: types.FunctionType, owner_path: list[str] | None, track_versions: bool,
                 by_code: bool = False) -> None:
        self.fn = fn
        self.owner_path = owner_path
        self.track_versions = track_versions
        self.by_code = by_code  # every function by its code object: alike in a worker, which has no source
        self._watch: list[tuple[Any, ...]] | None = None
        self._state: CodeState | None = None
        self._older: _Held = ()

    def unchanged(self) -> CodeState | None:
        """Return the last code state when nothing it came from changed (identity checks only, nothing
        hashed, so nothing met), else None."""
        watch = self._watch
        if watch is None or self._state is None or not _still_valid(watch):
            return None
        older = self._older
        if older and not _still_held(watch, older):  # most states hold no older class of a name: nothing to count
            # An older class of a name released: each kept state holding one lets go of it, so that the collection
            # before the next is keyed can find it unreferenced (two states would otherwise keep it for each other).
            for tracker in list(_holding):
                tracker._watch = tracker._state = None
                tracker._older = ()
            _holding.clear()
            return None
        return self._state

    def current(self) -> CodeState:
        """Return the code state now: cheap identity checks when nothing changed."""
        state = self.unchanged()
        if state is not None:
            return state
        # What the last resolution held (a class redefined since) must not outlive it while this one runs: a
        # subclass listed by __subclasses__ is gone only once nothing holds it.
        self._watch = self._state = None
        resolver = _Resolver(self.track_versions, self.by_code)
        resolver.defer_members = True
        with _running(resolver):
            state = self._resolve(resolver)
        del resolver  # what it met is counted below as this state holds it, without the resolver's own lists
        self._older = () if self._watch is None else _held(self._watch)
        if self._older:
            _holding.add(self)
        return state

    def _owner_class(self, resolver: _Resolver, owner: type) -> frozenset[str]:
        """Resolve a method's class, keying the hash seed, process ids, host and user its members read only where
        the method's code (or a helper's) names a member reaching the read: a fork check it never calls keys none.
        Return those names."""
        named = names_in_code(self.fn, resolver.deps)  # before the class is a dependency: its members are not named
        resolver.member_states, resolver.member_names = {}, {}
        try:
            resolver.value(owner, f"class {owner.__qualname__}")
            states, names = resolver.member_states, resolver.member_names
        finally:
            resolver.member_states, resolver.member_names = None, {}
        for state, members in sorted(_reaching(states, names).items()):
            if members_named(members, named):
                resolver.note_state(state, _STATE_PROBES[state]())
        return named

    def _resolve(self, resolver: _Resolver) -> CodeState:
        fn = self.fn
        resolver.seen.add(id(fn))
        # The function itself: its defaults were bound with the arguments; its code and attributes
        # are watched (each read of __code__ is an audited event, so only that one).
        resolver.watch.append(("top", fn, fn.__code__, fn.__dict__, list(fn.__dict__.items())))
        own, method = own_fingerprint(fn, self.by_code)
        resolver.globals_of(fn, fn.__qualname__)
        for index, cell_name in enumerate(fn.__code__.co_freevars[:len(fn.__closure__ or ())]):
            if cell_name != "__class__":
                resolver.closure(fn, index, f"<closure {cell_name}>")
        resolver.state_of(fn, fn.__qualname__)
        names = None
        if self.owner_path:
            # A method reads its class's other methods through self: the class is a dependency.
            namespace = fn.__globals__
            owner: Any = namespace.get(self.owner_path[0], _MISSING)
            resolver.watch.append(("global", namespace, self.owner_path[0], owner))
            for part in self.owner_path[1:]:
                nxt = getattr(owner, part, _MISSING)
                resolver.watch.append(("attr", owner, part, nxt))
                owner = nxt
            if isinstance(owner, type):
                names = self._owner_class(resolver, owner)
        if resolver.pending_members:
            # A value's members (a global instance's fork check) count where the code reached names them.
            reached = names_in_code(fn, resolver.deps)
            for told in resolver.pending_members:
                for label, members in sorted(told.items()):
                    if members_named(members, reached):
                        resolver.note_state(label, _STATE_PROBES[label]())
        deps = resolver.deps
        # The library's own rules too: an entry another version made may lack what these would record.
        code = combine([own, rules_digest().encode()] + [
            f"{label}\0{kind}".encode() + digest
            for label, (kind, digest) in sorted(deps.parts.items())
            if kind in ("code", "package", "missing")
        ])
        deps.clock = clock_reads(deps.clock)
        state = CodeState(code, own, deps, deps.digest(), method, tuple(resolver.mutable), names,
                          resolver.lists_subclasses)
        # A resolution that read mutable data is made anew on each call: it is not kept, nor the data it holds.
        self._state = None if resolver.volatile else state
        self._watch = None if resolver.volatile else resolver.watch
        return state



# The trackers whose kept code state holds an older subclass of a name (see _held).
_holding: weakref.WeakSet[CodeTracker] = weakref.WeakSet()


def resolve_values(values: dict[str, Any], chains: dict[str, list[tuple[str, ...]]], missing: list[str],
                   track_versions: bool = True, mutable: list[DataRead] | None = None,
                   code: types.CodeType | None = None, namespace: dict[str, Any] | None = None) -> Dependencies:
    """Return the dependencies made of named values (a cell's inputs), each like a global, and of the
    modules ``code`` (the cell's) imports; ``mutable`` receives the mutable data read (see DataRead).
    ``namespace``: where the values are bound (the notebook's), as for a function's globals; ``chains``: the
    attribute chains each is read with, none for a value read whole."""
    resolver = _Resolver(track_versions)
    if mutable is not None:
        resolver.mutable = mutable
        resolver.nested_mutable = True
    for name in missing:
        resolver.deps.parts[name] = ("missing", b"")
    with _running(resolver):
        rebound = namespace is not None and _rebound_there(namespace)
        if code is not None:
            resolver.subclasses_listed(code)
        for name, value in values.items():
            for chain in chains.get(name) or [()]:
                if rebound and rebound_at_first_run(value):
                    keyed_as_wrapped(resolver.reference, value, chain, name)  # as in globals_of
                    continue
                # Box.q(BOX, text): the cell's analysis keys the text's names, or runs it each time (as in globals_of)
                quiet = code is not None and namespace is not None and \
                    resolver.class_route(code, namespace, value, name, chain)
                before = set(resolver.deps.skipped) if quiet else set()
                resolver.reference(value, chain, name)
                if quiet:
                    resolver.quiet_forwarded(value, chain[0], set(resolver.deps.skipped) - before)
        if code is not None:
            resolver.imports_in(code, "", "the cell")
            resolver.settings_keywords(code)
    resolver.deps.clock = clock_reads(resolver.deps.clock)
    return resolver.deps


# -- functions reached through values (arguments, containers, partials) ---------------------

# Per function or class: the digest of its code and everything it reads, with the watch list
# that says it still holds. Weak keys, and the watch list is stored with weak references where
# it can be (_stored): an entry that held its own key (a method's class, a global naming the
# function) would keep every redefined function and class of a notebook alive.
# (stored watch list, digest, track_versions, mutable class data to hash again on each use:
# (the class, weakly; the attribute; its label), the dependency parts and skipped labels)
_Entry = tuple[list[tuple[Any, ...]], bytes, bool, list[tuple[Any, str, str]],
               dict[str, tuple[str, bytes]], dict[str, str], list[str]]
_function_values: weakref.WeakKeyDictionary[types.FunctionType, _Entry] = weakref.WeakKeyDictionary()
_class_values: weakref.WeakKeyDictionary[type, _Entry] = weakref.WeakKeyDictionary()
_dispatch_values: weakref.WeakKeyDictionary[types.FunctionType, _Entry] = weakref.WeakKeyDictionary()
_value_lock = threading.Lock()
_in_progress = threading.local()
carry_into_deep_walks(_in_progress)  # a deep value's walk, retried on a thread of its own, is still within them


_GONE = object()


def _stored(item: tuple[Any, ...]) -> tuple[Any, ...]:
    """Return a watch item for the cache of values, holding nothing that could keep a class alive.

    What was read is held weakly, or by a holder (``_fingerprint._holder``) that compares it
    without owning it; a cell, a function's attributes and a watched dict are reached again
    through their owner, held weakly, rather than held themselves.
    """
    kind = item[0]
    if kind in ("env", "probe", "abc", "settings"):
        return item
    if kind == "class":
        return ("class", weakref.ref(item[1]), _holders(item[2]))
    if kind == "patches":
        return ("patches", weakref.ref(item[1]), [(label, _holder(attr)) for label, attr in item[2]])
    if kind == "subclasses":
        return ("subclasses", weakref.ref(item[1]), [weakref.ref(sub) for sub in item[2]])
    if kind == "reducer":
        return ("reducer", weakref.ref(item[1]), _holder(item[2]))
    if kind == "global":
        return ("global", item[1], item[2], _holder(item[3]))
    if kind == "fn":
        kwdefaults = None if item[4] is None else [(name, _holder(value)) for name, value in item[7]]
        return ("fn", _holder(item[1]), _holder(item[2]), _holder(item[3]), kwdefaults, id(item[5]),
                [(name, _holder(value)) for name, value in item[6]])
    if kind == "cell":
        return ("cell", _holder(item[3]), item[4], _holder(item[2]))
    if kind == "dict":
        return ("dict", _holder(item[3]), item[4], [(_holder(k), _holder(v)) for k, v in item[2]])
    if kind == "attr":
        return ("attr", _holder(item[1]), item[2], _holder(item[3]))
    return ("module", item[1], _holder(item[2]))


def _object(held: Any) -> Any:
    """Return the object a holder stands for (_GONE when it is gone or is held by kind only)."""
    if isinstance(held, weakref.ref):
        value = held()
        return _GONE if value is None else value
    if type(held) is tuple and len(held) == 1:
        return held[0]
    return _GONE


def _same_pairs(held: list[tuple[Any, Any]], pairs: list[tuple[Any, Any]], by_key: bool) -> bool:
    if len(held) != len(pairs):
        return False
    for (hk, hv), (k, v) in zip(held, pairs):
        if not ((hk == k) if not by_key else _same_value(hk, k)) or not _same_value(hv, v):
            return False
    return True


def _revive_item(item: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """Return the live watch item of a stored one when what it watched is unchanged, else None."""
    kind = item[0]
    if kind == "env":
        return item if os.environ.get(item[1]) == item[2] else None
    if kind == "probe":
        return item if _STATE_PROBES[item[1]]() == item[2] else None
    if kind == "settings":
        return item if settings_text(item[1]) == item[2] else None
    if kind == "class":
        cls = item[1]()
        if cls is None:
            return None
        items = list(vars(cls).items())
        return ("class", cls, items) if _same(item[2], items) else None
    if kind == "abc":
        return item if abc.get_cache_token() == item[1] else None
    if kind == "reducer":
        klass = item[1]()
        if klass is None:
            return None
        reducer = copyreg.dispatch_table.get(klass, _MISSING)
        return ("reducer", klass, reducer) if _same_value(item[2], reducer) else None
    if kind == "subclasses":
        klass = item[1]()
        if klass is None:
            return None
        found = _subclasses(klass)
        same = len(found) == len(item[2]) and all(ref() is sub for ref, sub in zip(item[2], found))
        return ("subclasses", klass, found) if same else None
    if kind == "patches":
        klass = item[1]()
        if klass is None:
            return None
        scan = _library_scan(klass)
        return ("patches", klass, scan.patches, scan) if _same_pairs(item[2], list(scan.patches), by_key=False) \
            else None
    if kind == "global":
        value = item[1].get(item[2], _MISSING)
        return ("global", item[1], item[2], value) if _same_value(item[3], value) else None
    if kind == "fn":
        fn = _object(item[1])
        if fn is _GONE or not _same_value(item[2], fn.__code__) or not _same_value(item[3], fn.__defaults__) \
                or id(fn.__dict__) != item[5]:
            return None
        kwdefaults = fn.__kwdefaults__
        if (kwdefaults is None) != (item[4] is None) or \
                (kwdefaults is not None and not _same_pairs(item[4], list(kwdefaults.items()), by_key=False)):
            return None
        attrs = list(fn.__dict__.items())
        if not _same_pairs(item[6], attrs, by_key=False):
            return None
        return ("fn", fn, fn.__code__, fn.__defaults__, kwdefaults, fn.__dict__, attrs,
                None if kwdefaults is None else list(kwdefaults.items()))
    if kind == "cell":
        fn = _object(item[1])
        if fn is _GONE:
            return None
        cell = (fn.__closure__ or ())[item[2]]
        try:
            value = cell.cell_contents
        except ValueError:
            value = _MISSING
        return ("cell", cell, value, fn, item[2]) if _same_value(item[3], value) else None
    if kind == "dict":
        owner = _object(item[1])
        if owner is _GONE:
            return None
        watched = getattr(owner, item[2], None)
        if watched is None:
            return None
        pairs = list(watched.items())
        if not _same_pairs(item[3], pairs, by_key=True):
            return None
        return ("dict", watched, pairs, owner, item[2])
    if kind == "attr":
        owner = _object(item[1])
        if owner is _GONE:
            return None
        value = getattr(owner, item[2], _MISSING)
        return ("attr", owner, item[2], value) if _same_value(item[3], value) else None
    module = sys.modules.get(item[1])
    return ("module", item[1], module) if _same_value(item[2], module) else None


def _revived(stored: list[tuple[Any, ...]]) -> list[tuple[Any, ...]] | None:
    """Return the live watch list of a stored one, or None when it no longer holds."""
    live = []
    for item in stored:
        revived = _revive_item(item)
        if revived is None:
            return None
        live.append(revived)
    return live


def _state_note(item: Any) -> bool:
    return type(item) is tuple and bool(item) and item[0] is STATE_FUNCTION


def _rebound_there(namespace: dict[str, Any]) -> bool:
    """Return True when ``namespace`` is the dict of a module of the user's in ``sys.modules``: where
    _replaced.rebind_taken_earlier binds our wrapper in place of a state function taken before it was wrapped."""
    module = sys.modules.get(namespace.get("__name__"))  # type: ignore[arg-type]
    return module is not None and getattr(module, "__dict__", None) is namespace and is_user_code(module)


def _state_function_met() -> None:
    """What the resolutions running in this thread key holds a state function whose calls no wrapper sees: each
    is made anew on every call, so that the call's keying meets (and notes) it again."""
    for resolver in _resolvers():
        resolver.volatile = resolver.hard = True


install_state_function_hook(_state_function_met)


def _resolvers() -> list[_Resolver]:
    """The resolutions running in this thread, innermost last."""
    stack: list[_Resolver] | None = getattr(_in_progress, "resolvers", None)
    if stack is None:
        stack = _in_progress.resolvers = []
    return stack


@contextlib.contextmanager
def _running(resolver: _Resolver) -> Iterator[None]:
    # A function value met while resolving (a default, a tuple of functions) is hashed by
    # function_value_digest: what it read must also be watched by the resolution around it.
    stack = _resolvers()
    stack.append(resolver)
    try:
        yield
    finally:
        stack.pop()


def _new_value_lock() -> None:
    global _value_lock
    _value_lock = threading.Lock()  # a forked child: the thread that held it is gone


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_value_lock)


def _watched_by_enclosing(items: list[tuple[Any, ...]]) -> None:
    stack = _resolvers()
    if stack:
        stack[-1].watch.extend(items)


def _value_digest(obj: Any, cache: weakref.WeakKeyDictionary[Any, _Entry], name: str,
                  resolve: Callable[[_Resolver], None]) -> bytes:
    """Return the digest of code used as a value: what ``resolve`` finds, cached while it holds.

    Keyed by code objects, never by source, so a notebook and the worker it sends the value
    to (which has no source) agree.
    """
    # The classes met inside are not those of the walk around (things_met.classes): found only when it resolves
    # anew, they would key its first call apart from the next.
    outer_classes, things_met.classes = getattr(things_met, "classes", None), None
    try:
        return _value_digest_of(obj, cache, name, resolve)
    finally:
        things_met.classes = outer_classes


def _value_digest_of(obj: Any, cache: weakref.WeakKeyDictionary[Any, _Entry], name: str,
                     resolve: Callable[[_Resolver], None]) -> bytes:
    track = _config.settings.track_versions
    stack = _resolvers()
    enclosing = stack[-1] if stack else None
    cached = cache.get(obj)
    active: dict[int, list[bool]] = getattr(_in_progress, "values", None) or {}
    _in_progress.values = active
    if cached is not None and cached[2] == track and id(obj) not in active:
        live = _revived(cached[0])
        digest: bytes | None = cached[1]
        if live is not None and cached[3]:
            active[id(obj)] = [False]  # its data may hold it again (a registry of the class)
            try:
                digest = _rehashed(cached, enclosing.mutable if enclosing is not None and enclosing.nested_mutable
                                   else None)
            finally:
                del active[id(obj)]
            if enclosing is not None:
                enclosing.volatile = enclosing.hard = True
        if live is not None and digest is not None:
            if enclosing is not None:
                enclosing.watch.extend(live)
                enclosing.deps.clock.extend(cached[6])
            elif cached[6]:
                _clock_outside(cached[6])
            return _states_told(digest, cached[4], enclosing)
    if id(obj) in active:
        # Code reaching itself (through a container, a partial, an instance of its class): name
        # it. What was computed since it began stands on this unfinished digest: none of that is
        # cached. The digest of the code itself, once finished, covers the whole cycle.
        inside = False
        for key, frame in active.items():
            frame[0] |= inside
            inside = inside or key == id(obj)
        return combine([b"cycle", name.encode()])
    frame = [False]
    active[id(obj)] = frame
    resolver = _Resolver(track, by_code=True)
    resolver.nested_mutable = enclosing is not None and enclosing.nested_mutable
    try:
        with _running(resolver):
            resolve(resolver)
    finally:
        del active[id(obj)]
    if enclosing is not None:
        if enclosing.nested_mutable:
            enclosing.mutable.extend(resolver.mutable)
        enclosing.watch.extend(resolver.watch)
        enclosing.deps.clock.extend(resolver.deps.clock)
        enclosing.deps.handles.update(resolver.deps.handles)
        enclosing.deps.connections.update(resolver.deps.connections)
        if resolver.volatile or frame[0]:
            enclosing.volatile = enclosing.hard = True
    elif resolver.deps.clock:
        _clock_outside(resolver.deps.clock)
    deps = resolver.deps
    digest = _deps_digest(deps)
    if not (resolver.hard or frame[0]):
        data = [(weakref.ref(klass), name, label) for klass, name, label in resolver.class_data]
        with _value_lock, contextlib.suppress(TypeError):
            cache[obj] = ([_stored(item) for item in resolver.watch], digest, track, data,
                          dict(deps.parts), dict(deps.skipped), list(deps.clock))
    return _states_told(digest, deps.parts, enclosing)


def _reaching(states: dict[str, set[str]], names: dict[str, set[str]]) -> dict[str, frozenset[str]]:
    """Return, for each state, the members of a class that read it (``states``) or whose code names one that does
    (``tag`` calling ``self._owner()``), given the names each member's code holds."""
    found = {}
    for state, readers in states.items():
        members = set(readers)
        grown = True
        while grown:
            reaching = {member for member, held in names.items()
                        if member not in members and not held.isdisjoint(members)}
            members |= reaching
            grown = bool(reaching)
        found[state] = frozenset(members)
    return found


def _members_text(states: dict[str, set[str]], names: dict[str, set[str]]) -> bytes:
    """Return which members of a class read which state, as a key part (_reaching)."""
    reaching = _reaching(states, names)
    return "\n".join(state + "\t" + "\0".join(sorted(reaching[state])) for state in sorted(reaching)).encode()


def _members_of(text: bytes) -> dict[str, frozenset[str]]:
    """Return the state -> members mapping a STATE_MEMBERS part holds (_members_text)."""
    found = {}
    for line in text.decode().split("\n"):
        state, _, members = line.partition("\t")
        found[state] = frozenset(members.split("\0"))
    return found


def _states_told(digest: bytes, parts: dict[str, tuple[str, bytes]], enclosing: _Resolver | None) -> bytes:
    """Return a value's code digest once the state its class's members read (STATE_MEMBERS) is told: to the call
    keying it (things_met), which keys a state when its body names a member reading it, or keyed by the resolution
    reading it as data, whichever member is called. The digest is the same either way: a value hashed again
    after the body ran (was it changed in place?) compares with it."""
    named = parts.get(STATE_MEMBERS)
    if named is None:
        return digest
    states = _members_of(named[1])
    if enclosing is not None and enclosing.defer_members:
        enclosing.pending_members.append(states)
        return digest
    if enclosing is not None:
        for state in states:
            enclosing.note_state(state, _STATE_PROBES[state]())
        return digest
    sink = getattr(things_met, "found", None)
    if sink is not None:
        sink.append((STATE_MEMBERS, states))
    return digest


def members_named(members: frozenset[str], names: frozenset[str]) -> bool:
    """Return True when code whose ``names`` (names_in_code) are given may call one of ``members`` (members of an
    argument's class that read some state): it names it (``u.shard()``, ``getattr(u, "shard")``), or it is a
    special method, which Python calls without its name (``str(u)``)."""
    return any(name.startswith("__") and name.endswith("__") for name in members) or not members.isdisjoint(names)


def state_text(state: str) -> str:
    """Return the process state labelled ``state`` (a _MEMBER_STATES one) as keyed: the hash seed as what it makes
    of one text, the process id..."""
    return _STATE_PROBES[state]()


def names_in_code(fn: types.FunctionType, deps: Dependencies) -> frozenset[str]:
    """Return every name and constant text in the code of ``fn`` and of the functions and classes it reads."""
    found: set[str] = set()
    for code, _ in _reached_code(fn, deps):
        found |= _names_and_texts(code)
    return frozenset(found)


@functools.lru_cache(maxsize=4096)
def _names_and_texts(code: types.CodeType) -> frozenset[str]:
    found: set[str] = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found |= _names_and_texts(const)
        elif isinstance(const, str):
            found.add(const)
    return frozenset(found)


def _clock_outside(found: list[str]) -> None:
    """Clock reads met while a call's arguments are hashed (no resolution runs around them)."""
    sink = getattr(things_met, "found", None)
    if sink is not None:
        sink.extend((CLOCK, where) for where in found)


def _deps_digest(deps: Dependencies) -> bytes:
    return combine([deps.digest(), *(f"{label}\0skipped".encode() for label in sorted(deps.skipped))])


def _rehashed(entry: _Entry, read: list[DataRead] | None = None) -> bytes | None:
    """Return a cached resolution's digest with its mutable class data hashed again as it is now; ``read``, if
    given, receives that data as it would from a new resolution."""
    deps = Dependencies(dict(entry[4]), dict(entry[5]))
    for ref, name, label in entry[3]:
        klass = ref()
        value = vars(klass).get(name, _MISSING) if klass is not None else _MISSING
        if value is _MISSING:
            return None
        deps.parts.pop(label, None)
        deps.skipped.pop(label, None)
        try:
            deps.parts[label] = ("value", digest := content_hash(value, label))
        except UnhashableArgument as exc:
            deps.skipped[label] = exc.reason
            continue
        if read is not None and _watched(value):
            read.append((label, value, digest, filled_cached_properties(value)))
    return _deps_digest(deps)


def function_value_digest(fn: types.FunctionType) -> bytes:
    """Return the digest of a user function used as a value: its code and, transitively, what it reads."""
    return _value_digest(fn, _function_values, fn.__qualname__, lambda r: r.function(fn, "<value>"))


def dispatch_value_digest(fn: types.FunctionType) -> bytes:
    """Return the digest of a singledispatch function used as a value: its implementations, with what they read,
    and the types they serve, as where a body names it."""
    return _value_digest(fn, _dispatch_values, fn.__qualname__, lambda r: r.dispatch(fn, "<value>"))


def subclasses_digest(classes: list[type]) -> bytes:
    """Return the digest of the subclasses of user classes held by a call's arguments, for code that lists subclasses
    (``count(Plugin)`` doing ``k.__subclasses__()``): each resolved as a class, with its own subclasses."""
    resolver = _Resolver(_config.settings.track_versions)
    resolver.lists_subclasses = True
    met = list(dict.fromkeys(classes))
    resolver.seen.update(id(cls) for cls in met)  # keyed by the arguments already, not again as a subclass's base
    outer_classes, things_met.classes = getattr(things_met, "classes", None), None
    try:
        with _running(resolver):
            for cls in met:
                resolver.subclasses(cls, qualified_name(cls))
    finally:
        things_met.classes = outer_classes
    return _deps_digest(resolver.deps)


def class_value_digest(cls: type) -> bytes:
    """Return the digest of a user class (of an argument, a global object, a bound method):
    its definition and, like a function's helpers, what each of its methods reads."""
    return _value_digest(cls, _class_values, cls.__qualname__, lambda r: r.value_class(cls))


def _hash_class(h: Hasher, cls: type) -> None:
    if is_user_code(cls):
        met = getattr(things_met, "classes", None)
        if met is not None:  # for code that lists subclasses: those of the classes a value holds (subclasses_digest)
            met.append(cls)
        h.tag(b"Cu")
        digest = h.memo.get(id(cls))  # a list of instances: their class once per walk
        if digest is None:
            digest = class_value_digest(cls)
            if superseded(cls):
                # Made before its class's cell ran again: same code, but isinstance and the class's name in
                # the code around it mean the new class, so it is not the object a fresh run would make.
                digest = combine([digest, b"superseded"])
            h.memo[id(cls)] = digest
        h.tag(digest)
    else:
        h.tag(b"Cq")
        h.text(qualified_name(cls))
        library_version(h, cls.__module__)
        if isinstance(cls, abc.ABCMeta):
            # Its answer to isinstance, as where a body names it (numbers.Number.register(Blob) after the call);
            # once per walk (a list of Fractions), under the negated id: the class's own digest has its id
            registered = h.memo.get(-id(cls))
            if registered is None:
                _watched_by_enclosing([("abc", abc.get_cache_token())])
                names = _registered(cls, users_only=True)
                registered = h.memo[-id(cls)] = combine([name.encode() for name in names]) if names else b""
            if registered:  # none: keyed as before registrations were keyed
                h.tag(b"Cr")
                h.tag(registered)
        _hash_patches(h, cls)


def _hash_patches(h: Hasher, cls: type) -> None:
    """Feed the user's code patched into the library classes of ``cls``'s MRO (``fractions.Fraction.mine = f``,
    ``pd.DataFrame.mine = f``): what its instances' methods run. Nothing where there is none.

    Once per walk (a list of tensors: their class once), in a slot of the walk's memo of its own (``id(cls)``
    holds a user class's digest, ``-id(cls)`` a library ABC's registrations)."""
    slot = ~id(cls)
    patched = h.memo.get(slot)
    if patched is None:
        scan = _library_scan(cls)
        patched = b""
        if scan.own or scan.bases:
            _watched_by_enclosing([("patches", cls, scan.patches, scan)])  # as where a body names the class
            if scan.patches:
                patched = h.sub_digest(list(scan.patches))
        h.memo[slot] = patched
    if patched:  # only where the notebook patched it: keys of unpatched classes stay as they were
        h.tag(b"Cp")
        h.tag(patched)


def _hash_patches_of(h: Hasher, owner: Any) -> None:
    """Feed the user's code patched into a library class (see _hash_patches) or module, which a value of the
    class, or the module passed as a value, reaches by attribute: once per walk, nothing where there is none."""
    if not isinstance(owner, types.ModuleType):
        _hash_patches(h, owner)
        return
    slot = ~id(owner)
    patched = h.memo.get(slot)
    if patched is None:
        found = _module_patches(owner)
        patched = h.memo[slot] = h.sub_digest(list(found)) if found else b""
    if patched:
        h.tag(b"Mp")
        h.tag(patched)


def _hash_function(h: Hasher, fn: types.FunctionType) -> None:
    if _is_singledispatch(fn):
        h.tag(b"Fd")
        h.text(qualified_name(fn))
        h.tag(dispatch_value_digest(fn))
        return
    original = original_of(fn)
    if original is not fn:  # our wrapper (random.seed once a call ran): keyed as what it replaced
        keyed_as_wrapped(h.update, original)
        return
    if not is_user_code(fn):
        note_state_function(fn)  # torch.get_rng_state held as data
        h.tag(b"Fq")
        h.text(qualified_name(fn))
        library_version(h, fn.__globals__.get("__name__"))  # where its code lives: wraps() copies __module__
        wrapped = fn.__dict__.get("__wrapped__")
        if wrapped is not None:  # a library's decorator around the user's function
            h.child(wrapped, ".__wrapped__")
        for _, name, value in _wrapper_cells(fn):  # and the decorator's arguments
            h.text(name)
            if isinstance(value, _WORKING_STATE):
                h.tag(b"?")  # its working state (a cache): left out, as where the function is read by name
            else:
                h.part(value)
        attached = fn.__dict__
        if len(attached) > (wrapped is not None):  # attributes besides __wrapped__: those that are the user's code
            held = [(name, value) for name, value in sorted(attached.items())
                    if name != "__wrapped__" and type(name) is str and _own_code(value)]
            if held:  # colorsys.hls_to_rgb.helper = mine, read through the function: none, keyed as before
                h.tag(b"Fa")
                h.child(held, "<attributes>")
        return
    h.tag(b"Fv")
    h.text(fn.__qualname__)
    h.tag(function_value_digest(fn))


def _hash_descriptor(h: Hasher, value: Any) -> None:
    """Hash a method wrapper held as data (``{"s": staticmethod(f)}``) by the functions in it."""
    h.tag(b"Dw")
    h.text(qualified_name(type(value)))
    if isinstance(value, property):
        h.child([value.fget, value.fset, value.fdel, value.__doc__], "<accessors>")
    elif isinstance(value, functools.cached_property):
        h.child([value.func, value.attrname], ".func")
    else:
        h.child(value.__func__, ".__func__")


def _hash_generator_context(h: Hasher, manager: Any) -> None:
    """Hash a ``contextlib.contextmanager`` object (a decorator's argument: ``@section("load")``) by the generator
    function and the arguments it was made from; the generator it made is recreated on each use."""
    h.tag(b"Cm")
    h.child(type(manager), "<class>")
    h.child([manager.func, manager.args, manager.kwds], "<made from>")


def _watch_helper(wrapper: Any) -> None:
    """Watch an lru_cache function met while keying a call (a library's the body names too): it may serve the call
    from its cache."""
    if is_helper(wrapper):
        watch(wrapper)


def _hash_lru_wrapper(h: Hasher, wrapper: Any) -> None:
    _watch_helper(wrapper)  # an argument, an item of a container, a class's attribute
    h.tag(b"Fc")
    h.child(wrapper.__wrapped__, ".__wrapped__")
    h.child(_public_attributes(wrapper), "<attributes>")


install_code_handler(type, _hash_class)
install_patch_reader(_hash_patches_of)
for _wrapper in (staticmethod, classmethod, property, functools.cached_property):
    install_code_handler(_wrapper, _hash_descriptor)
install_code_handler(types.FunctionType, _hash_function)
install_code_handler(functools._lru_cache_wrapper, _hash_lru_wrapper)  # type: ignore[attr-defined]
install_code_handler(contextlib._GeneratorContextManagerBase, _hash_generator_context)  # type: ignore[attr-defined]
