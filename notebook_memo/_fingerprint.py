"""Code fingerprints of functions and classes, and what counts as the user's code.

A function's own fingerprint comes from its source, normalised (no comments, blank
lines, formatting, docstrings or decorators; no line numbers), and is checked against
the code object actually running: when the two disagree (the file changed on disk after
import, or the source is missing) the code object itself is fingerprinted instead.
What a function reads besides its own code is the business of ``_dependencies``.
"""

from __future__ import annotations

import ast
import contextlib
import enum
import functools
import inspect
import io
import os
import re
import site
import sys
import sysconfig
import textwrap
import threading
import types
import typing
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ._replaced import original_of
from .hashing import (
    Hasher,
    combine,
    content_hash,
    enum_attributes,
    install_code_handler,
    install_module_judge,
    note_state_function,
    qualified_name,
)

__all__ = ()

_PY = f"py{sys.version_info[0]}.{sys.version_info[1]}".encode()
_MISSING = object()
_SKIP_CLASS_ATTRS = frozenset(
    {"__dict__", "__weakref__", "__doc__", "__module__", "__qualname__", "__annotations__",
     "__firstlineno__", "__static_attributes__", "__orig_bases__", "__parameters__",
     # what abc and typing keep on a class: caches and flags derived from its definition
     "_abc_impl", "_abc_registry", "_abc_cache", "_abc_negative_cache", "_abc_negative_cache_version",
     "_is_protocol", "_is_runtime_protocol"}
)


# -- what counts as user code ----------------------------------------------------------------


def _library_roots() -> tuple[str, ...]:
    paths: set[str] = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            paths.add(os.path.realpath(path))
    try:
        paths.update(os.path.realpath(p) for p in site.getsitepackages())
    except AttributeError:  # virtualenvs with an old site module
        pass
    user_site = site.getusersitepackages() if hasattr(site, "getusersitepackages") else None
    if user_site:
        paths.add(os.path.realpath(user_site))
    paths.add(os.path.realpath(os.path.dirname(__file__)))
    return tuple(sorted(p + os.sep for p in paths))


_ROOTS = _library_roots()


@functools.lru_cache(maxsize=4096)
def _module_is_user_code(module_name: str, module_file: str | None) -> bool:
    """Return True when the module (or code) named so, living in that file, is the user's.

    Where the file lies decides, not the name: a ``statistics.py`` in the notebook's folder
    is the user's although the standard library has one.
    """
    if module_name.partition(".")[0] == "notebook_memo":
        return False
    if module_name in ("__main__", "__mp_main__") or module_name.startswith("__ipython"):
        # A notebook's cells, a script, or their code sent by value to a worker (whose own
        # ``__main__`` may be a library's launcher): always the user's.
        return True
    if module_file is None:
        return False  # builtin or frozen
    if module_file.startswith("<"):
        return True  # code compiled from a string (exec, eval): nobody's package
    return not os.path.realpath(module_file).startswith(_ROOTS)


def module_attribute(module: types.ModuleType, name: str) -> Any:
    """Return what the import system set on ``module`` under ``name`` (``__file__``, ``__path__``, ``__spec__``), or
    None: read from its namespace, since ``getattr`` would run a PEP 562 ``__getattr__`` (the user's code, which may
    answer any name) for one it lacks. A module subclass's own attributes are still asked of it."""
    namespace = vars(module)
    if name in namespace or type(module) is types.ModuleType:
        return namespace.get(name)
    return getattr(module, name, None)


def _location(module: types.ModuleType) -> str | None:
    """Return a module's file, or for a namespace package (no ``__init__.py``) its first folder."""
    file = module_attribute(module, "__file__")
    if isinstance(file, str):
        return file
    path = module_attribute(module, "__path__")
    if isinstance(path, Iterable) and not isinstance(path, (str, bytes)):  # a list, or a namespace package's path
        for folder in path:
            return os.path.join(str(folder), "")
    return None


def is_user_code(obj: Any) -> bool:
    """Return True when ``obj`` (a function, class or module) belongs to the user's code.

    A function is judged by the namespace its code runs in, never by ``__module__``, which
    ``functools.wraps`` copies from the function it wraps (perhaps a library's).
    """
    if isinstance(obj, types.ModuleType):
        location = _location(obj)
        if location is None and sys.modules.get(obj.__name__) is not obj:
            return True  # made at run time (types.ModuleType("cfg")): nobody's package
        return _module_is_user_code(obj.__name__, location)
    if isinstance(obj, types.FunctionType):
        namespace = obj.__globals__
        name = namespace.get("__name__")
        module = sys.modules.get(name) if isinstance(name, str) else None
        if module is not None and getattr(module, "__dict__", None) is namespace:
            return _module_is_user_code(module.__name__, _location(module))
        # Not a loaded module's namespace: a module loaded from a path, or code exec'd into a dict.
        file = namespace.get("__file__")
        return _module_is_user_code(name if isinstance(name, str) else "<exec>",
                                    file if isinstance(file, str) else obj.__code__.co_filename)
    name = getattr(obj, "__module__", None)
    if not isinstance(name, str):
        return False
    module = sys.modules.get(name)
    if module is None:
        # A class of a module that is not loaded by name (loaded from a path, or made by exec):
        # the user's when its methods' code is.
        return isinstance(obj, type) and any(
            isinstance(attr, types.FunctionType) and is_user_code(attr) for attr in vars(obj).values())
    return _module_is_user_code(name, _location(module))


def superseded(cls: type) -> bool:
    """Return True when ``cls``, or a user class it derives from, is no longer what its module binds at
    its qualified name: an object made before its class's cell (or module) ran again.

    Such an object's class has the same code as the one bound now, yet ``isinstance`` and the class's
    name in the code around it mean the new one. A name bound to nothing, or a class made in a function
    (``<locals>``), cannot be looked up: not superseded, so a class sent to a worker keys as at home.
    """
    if _rebound(cls):
        return True
    bases = _user_bases.get(cls)
    if bases is None:
        bases = tuple(weakref.ref(klass) for klass in cls.__mro__[1:] if klass is not object and is_user_code(klass))
        with contextlib.suppress(TypeError):  # a class that takes no weak reference: judged again next time
            _user_bases[cls] = bases
    for ref in bases:
        klass = ref()
        if klass is not None and _rebound(klass):
            return True
    return False


# The user classes each class derives from (found once: asking is_user_code of each on every call costs more
# than the rest of the check). Weakly: a base holding a registry of its subclasses must not keep them alive.
_user_bases: weakref.WeakKeyDictionary[type, tuple[weakref.ref[type], ...]] = weakref.WeakKeyDictionary()


def _rebound(cls: type) -> bool:
    """Return True when the namespace of ``cls``'s module binds another object at ``cls.__qualname__``."""
    name, qualname = cls.__module__, cls.__qualname__
    module = sys.modules.get(name) if type(name) is str else None
    if module is None or type(qualname) is not str or "<locals>" in qualname:
        return False
    namespace = getattr(module, "__dict__", None)
    bound: Any = _MISSING
    for part in qualname.split("."):
        # Plain dict reads, never getattr: a module's or metaclass's __getattr__ must not run here.
        if not isinstance(namespace, (dict, types.MappingProxyType)):
            return False
        bound = namespace.get(part, _MISSING)
        if bound is _MISSING:
            return False
        namespace = getattr(bound, "__dict__", None)
    return bound is not cls


# -- a function's own code -------------------------------------------------------------------


def _strip_docstrings(node: ast.AST) -> None:
    for child in ast.walk(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = child.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                child.body = body[1:] or [ast.Pass()]


def _find_code(code: types.CodeType, name: str) -> types.CodeType | None:
    for const in code.co_consts:
        if isinstance(const, types.CodeType) and const.co_name == name:
            return const
    return None


def _same_code(a: types.CodeType, b: types.CodeType) -> bool:
    """Return True when two code objects do the same thing (line numbers aside): the same instructions,
    names, constants, parameters (their names and kinds: ``f(a=1)`` binds by name), flags, closure
    variables and exception table (where a ``try`` starts and ends)."""
    if a.co_code != b.co_code or a.co_names != b.co_names or len(a.co_consts) != len(b.co_consts) \
            or _signature_of(a) != _signature_of(b):
        return False
    for x, y in zip(a.co_consts, b.co_consts):
        if isinstance(x, types.CodeType):
            if not (isinstance(y, types.CodeType) and _same_code(x, y)):
                return False
        elif not _same_constant(x, y):
            return False
    return True


def _same_constant(x: Any, y: Any) -> bool:
    """Return True when two constants are the same value exactly: ``==`` takes ``(1, 2)`` for ``(1.0, 2)``,
    ``(1, 0)`` for ``(True, False)`` and ``0.0`` for ``-0.0``, which the code returning them can tell apart.
    Their content digests do not: they key types and signs at every depth."""
    if x is y:
        return True
    if type(x) is not type(y):
        return False
    try:
        return content_hash(x) == content_hash(y)
    except Exception:  # not a value we can hash: not known to be the same
        return False


def _signature_of(code: types.CodeType) -> tuple[Any, ...]:
    """Return what a code object's instructions leave out: its variables, parameters, flags and exception table."""
    return (code.co_varnames, code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount,
            code.co_flags & _BEHAVIOUR_FLAGS, code.co_freevars, code.co_cellvars,
            getattr(code, "co_exceptiontable", b""))


# The flags that change what calling the code does; not those of where it was compiled (a __future__
# import of its module, nesting), which a function's source compiled alone cannot have.
_BEHAVIOUR_FLAGS = (inspect.CO_VARARGS | inspect.CO_VARKEYWORDS | inspect.CO_GENERATOR | inspect.CO_COROUTINE
                    | inspect.CO_ITERABLE_COROUTINE | inspect.CO_ASYNC_GENERATOR)


# CPython 3.11 counts the depth of its AST conversions per interpreter, not per thread: two threads parsing at
# once (functions first called from a thread pool) can fail with "AST constructor recursion depth mismatch".
_AST_LOCK = threading.Lock()


def _source_digest(fn: types.FunctionType) -> bytes | None:
    """Return the digest of ``fn``'s normalised source, if it matches the running code."""
    if fn.__name__ == "<lambda>":
        return None
    try:
        source = textwrap.dedent(inspect.getsource(fn))
        with _AST_LOCK:
            tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError, IndentationError):
        return None
    if not tree.body or not isinstance(tree.body[0], (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None
    node = tree.body[0]
    if node.name != fn.__name__:
        return None
    node.decorator_list = []
    try:
        with _AST_LOCK:
            compiled = compile(ast.Module(body=[node], type_ignores=[]), "<notebook_memo>", "exec",
                               dont_inherit=True)
    except (SyntaxError, ValueError):
        return None
    candidate = _find_code(compiled, fn.__name__)
    if candidate is None or not _same_code(candidate, fn.__code__):
        return None  # the source on disk is not the code that runs
    _strip_docstrings(node)
    text = ast.dump(node, annotate_fields=True, include_attributes=False)
    if _strips_under_optimize(node):  # python -O drops its asserts and makes __debug__ False: another program
        return combine([b"src", text.encode(), b"optimized" if sys.flags.optimize else b"debug"])
    return combine([b"src", text.encode()])


def _strips_under_optimize(node: ast.AST) -> bool:
    """Return True when ``node`` holds an ``assert`` or reads ``__debug__``, which ``python -O`` compiles away."""
    return any(isinstance(inner, ast.Assert) or (isinstance(inner, ast.Name) and inner.id == "__debug__")
               for inner in ast.walk(node))


def _code_digest(code: types.CodeType, docstring: object = _MISSING) -> bytes:
    """Return the digest of a code object, nested code included, without line numbers."""
    parts = [_PY, code.co_code, repr(code.co_names).encode(), repr(code.co_varnames).encode(),
             repr(code.co_freevars).encode(), repr(code.co_cellvars).encode(),
             repr((code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount,
                   code.co_flags)).encode()]
    exceptions = getattr(code, "co_exceptiontable", b"")  # which handler catches what (3.11+)
    if exceptions:  # none: the bytes of code without a try stay as they were
        parts.append(b"exceptions" + exceptions)
    # attrs' generated __hash__ holds hash() of a text made from the class's name: an int the hash seed changes.
    salted = code.co_name == "__hash__" and code.co_filename.startswith("<attrs generated")
    for index, const in enumerate(code.co_consts):
        if isinstance(const, types.CodeType):
            parts.append(_code_digest(const))
        elif index == 0 and docstring is not _MISSING and const == docstring:
            parts.append(b"<doc>")
        elif salted and type(const) is int:
            parts.append(b"<attrs salt>")
        else:
            parts.append(content_hash(const))
    return combine(parts)


_own_cache: weakref.WeakKeyDictionary[Callable[..., Any], tuple[types.CodeType, str, bytes, str]] = \
    weakref.WeakKeyDictionary()
_bytecode_cache: weakref.WeakKeyDictionary[Callable[..., Any], tuple[types.CodeType, str, bytes]] = \
    weakref.WeakKeyDictionary()
_own_lock = threading.Lock()
# The source digest of notebook code by its code's digest: cloudpickle, loading a notebook class in the process
# that defined it (dask tokenizes what is submitted so), sets copies of its methods on the class itself, whose
# code says "<dynamic-code>" for its file. Such a copy runs the same code, so it keeps the original's digest.
_source_by_code: dict[bytes, bytes] = {}
_COPIED_CODE = "<dynamic-code>"  # cloudpickle's file name for the code it rebuilds


def _new_own_lock() -> None:
    global _own_lock
    _own_lock = threading.Lock()  # a forked child: the thread that held it is gone


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_own_lock)


def own_fingerprint(fn: types.FunctionType, by_code: bool = False) -> tuple[bytes, str]:
    """Return ``(digest, method)`` of ``fn``'s own code; method is 'source' or 'bytecode'.

    ``by_code`` asks for the code object's digest even where the source is known: a function
    reached as a value is keyed alike in a notebook and in a worker it was sent to (which has
    its code but not its source).
    """
    code = fn.__code__
    # The annotations live on the function, not its code (typing.get_type_hints reads them): the running
    # ones are added to either digest where there are any.
    annotations = annotations_text(fn)
    if by_code:
        known = _bytecode_cache.get(fn)
        if known is not None and known[0] is code and known[1] == annotations:
            return known[2], "bytecode"
        by_object = _with_annotations(_code_digest(code, fn.__doc__ if fn.__doc__ is not None else _MISSING),
                                      annotations)
        with _own_lock:
            _bytecode_cache[fn] = (code, annotations, by_object)
        return by_object, "bytecode"
    cached = _own_cache.get(fn)
    if cached is not None and cached[0] is code and cached[1] == annotations:
        return cached[2], cached[3]
    digest = _source_digest(fn)
    method = "source"
    if digest is None:
        digest = _code_digest(code, fn.__doc__ if fn.__doc__ is not None else _MISSING)
        method = "bytecode"
        if code.co_filename == _COPIED_CODE and digest in _source_by_code:
            digest, method = _source_by_code[digest], "source"
    elif fn.__module__ == "__main__":
        _source_by_code[_code_digest(code, fn.__doc__ if fn.__doc__ is not None else _MISSING)] = digest
    # On the source path too: a file edited on disk and not reloaded still compiles to the running code when
    # only an annotation changed (the code does not hold them), so the file's annotations may not be the running ones.
    digest = _with_annotations(digest, annotations)
    with _own_lock:
        _own_cache[fn] = (code, annotations, digest, method)
    return digest, method


def _with_annotations(digest: bytes, annotations: str) -> bytes:
    return combine([digest, b"annotations", annotations.encode("utf-8", "surrogatepass")]) if annotations else digest


# -- annotations and field tables, rendered stably -------------------------------------------

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
# Where class-building libraries keep the fields they derive from a class's annotations and
# decorator arguments: dataclasses, pydantic and attrs.
_FIELD_TABLES = ("__dataclass_fields__", "__dataclass_params__", "__pydantic_fields__", "__attrs_attrs__")


def annotation_text(value: Any, depth: int = 0) -> str:
    """Return a text of an annotation that is the same in every process: classes by qualified name,
    generic forms by their parts, sets in sorted order, other objects by ``repr`` without addresses."""
    if depth > 16:
        return "..."
    origin = typing.get_origin(value)
    if origin is not None:
        args = ", ".join(annotation_text(arg, depth + 1) for arg in typing.get_args(value))
        return f"{annotation_text(origin, depth + 1)}[{args}]"
    if isinstance(value, type) and type(value) is not types.GenericAlias:
        return qualified_name(value)
    if type(value) in (list, tuple):
        return "(" + ", ".join(annotation_text(item, depth + 1) for item in value) + ")"
    if type(value) in (set, frozenset):
        return "{" + ", ".join(sorted(annotation_text(item, depth + 1) for item in value)) + "}"
    if type(value) in (dict, types.MappingProxyType):
        return "{" + ", ".join(f"{annotation_text(k, depth + 1)}: {annotation_text(v, depth + 1)}"
                               for k, v in value.items()) + "}"
    if isinstance(value, types.FunctionType) and is_user_code(value):
        # The user's function (a validator, an encoder in a field's metadata) runs when the class is used:
        # keyed by its code, not its name, which an edit keeps (``<lambda>``).
        return _code_text(value)
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType)):
        return qualified_name(value)
    try:
        text = repr(value)
    except Exception:  # a repr that fails: its class, at least
        return f"<{qualified_name(type(value))}>"
    if _ADDRESS.search(text) and any(True for _ in held_functions(value)):
        # A repr naming a function by address says nothing of its code (``AfterValidator(func=<function
        # <lambda> at 0x...>)``): such an object is described by its attributes instead.
        parts = [f"{name}={annotation_text(getattr(value, name), depth + 1)}"
                 for name in _attribute_names(value) if hasattr(value, name)]
        return f"{qualified_name(type(value))}({', '.join(parts)})"
    return _ADDRESS.sub("", text)


_rendering = threading.local()  # the functions whose code text is being made (an annotation naming its own function)


def _code_text(fn: types.FunctionType) -> str:
    held = getattr(_rendering, "functions", None)
    if held is None:
        held = _rendering.functions = set()
    if fn in held:
        return f"{qualified_name(fn)} <itself>"
    held.add(fn)
    try:
        return f"code {own_fingerprint(fn, by_code=True)[0].hex()}"
    finally:
        held.discard(fn)


def _attribute_names(value: Any) -> list[str]:
    """Return the names of an object's attributes, its slots' and its ``__dict__``'s, in name order."""
    names: set[str] = set()
    for klass in type(value).__mro__:
        slots = vars(klass).get("__slots__", ())
        names.update((slots,) if isinstance(slots, str) else slots)
    instance_dict = getattr(value, "__dict__", None)
    if isinstance(instance_dict, dict):
        names.update(name for name in instance_dict if isinstance(name, str))
    names.discard("__weakref__")
    names.discard("__dict__")
    return sorted(names)


_HELD_CONTAINERS = (list, tuple, set, frozenset)


def held_functions(value: Any, path: str = "", depth: int = 0) -> Iterator[tuple[str, types.FunctionType]]:
    """Yield ``(path, function)`` for the user's functions an annotation or field object holds: in its items,
    a mapping's values, an ``Annotated`` form's parts, an object's attributes (a dataclass field's metadata, a
    pydantic ``FieldInfo``'s validators and default factory, an attrs converter); classes and modules are not
    looked into."""
    if depth > 6:
        return
    if isinstance(value, types.FunctionType):
        if is_user_code(value):
            yield path, value
        return
    if value is None or isinstance(value, (type, types.ModuleType, str, bytes, int, float, complex)):
        return
    if typing.get_origin(value) is not None:
        for index, arg in enumerate(typing.get_args(value)):
            yield from held_functions(arg, f"{path}[{index}]", depth + 1)
        for index, extra in enumerate(getattr(value, "__metadata__", ())):  # Annotated's extras
            yield from held_functions(extra, f"{path}.<extra {index}>", depth + 1)
        return
    if isinstance(value, _HELD_CONTAINERS):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        for index, item in enumerate(items):
            yield from held_functions(item, f"{path}[{index}]", depth + 1)
        return
    if isinstance(value, (dict, types.MappingProxyType)):
        for key, item in value.items():
            yield from held_functions(item, f"{path}[{key!r}]", depth + 1)
        return
    if type(value).__module__ == "builtins" or isinstance(value, (staticmethod, classmethod, property)):
        return
    for name in _attribute_names(value):
        attr = getattr(value, name, None)
        if attr is not value:
            yield from held_functions(attr, f"{path}.{name}", depth + 1)


def class_held_functions(cls: type) -> list[tuple[str, types.FunctionType]]:
    """Return the user's functions (once each, with where they sit) held by a class's own annotations and by
    the field tables class-building libraries left on it: code that validating or building it runs."""
    namespace = vars(cls)
    found: dict[types.FunctionType, str] = {}
    for name, annotation in _annotations_of(cls).items():
        for where, fn in held_functions(annotation, f"<annotation {name}>"):
            found.setdefault(fn, where)
    for table_name in _FIELD_TABLES:
        table = namespace.get(table_name, _MISSING)
        if table is not _MISSING:
            for where, fn in held_functions(table, f"<{table_name}>"):
                found.setdefault(fn, where)
    return [(where, fn) for fn, where in found.items()]


def _annotations_of(obj: Any) -> dict[str, Any]:
    """Return an object's own annotations, or {} where it has none (or they cannot be evaluated)."""
    try:
        found = inspect.get_annotations(obj)  # a class's own, never its bases'
    except Exception:  # a forward reference that does not resolve, an object that is not a class or function
        return {}
    return found if isinstance(found, dict) else {}


def annotations_text(obj: Any) -> str:
    """Return the stable text of a function's or class's own annotations ("" for none)."""
    found = _annotations_of(obj)
    if not found:
        return ""
    return "; ".join(f"{name}: {annotation_text(value)}" for name, value in found.items())


def _value_text(value: Any) -> str:
    """Return a field's default (or other value) as a stable text: by content where it can be hashed."""
    if isinstance(value, types.FunctionType):
        return f"code {own_fingerprint(value, by_code=True)[0].hex()}"
    if isinstance(value, type) or typing.get_origin(value) is not None:
        return annotation_text(value)
    try:
        return f"content {content_hash(value).hex()}"
    except RecursionError:
        return annotation_text(value)
    except Exception:  # unhashable, or a __memo_key__ or registered hasher that raised: its stable text
        return annotation_text(value)


_FIELD_VALUES = ("type", "annotation", "default", "default_factory", "factory", "converter", "validator")


def _field_text(field: Any) -> str:
    """Return the stable text of a field object (a dataclass Field, a pydantic FieldInfo, an attrs Attribute):
    each of its attributes, the type, default and factory by content or code, the others as annotations are."""
    names: set[str] = set()
    for klass in type(field).__mro__:
        slots = vars(klass).get("__slots__", ())
        names.update((slots,) if isinstance(slots, str) else slots)
    names.update(getattr(field, "__dict__", {}))
    names.discard("__weakref__")
    names.discard("__dict__")
    parts = [qualified_name(type(field))]
    for name in sorted(names):
        value = getattr(field, name, _MISSING)
        if value is _MISSING:
            continue
        if type(value) is type(field):  # pydantic keeps the FieldInfo as written beside the one it made
            text = _field_text(value) if value is not field else "<itself>"
        elif name in _FIELD_VALUES and value is not None:
            text = _value_text(value)
        else:
            text = annotation_text(value)
        parts.append(f"{name}={text}")
    if len(parts) == 1:  # a field object with no attributes to read: its repr, without addresses
        parts.append(annotation_text(field))
    return " ".join(parts)


def fields_text(cls: type) -> str:
    """Return the stable text of the field tables a class-building library left on ``cls`` ("" for none)."""
    namespace = vars(cls)
    parts = []
    for table_name in _FIELD_TABLES:
        table = namespace.get(table_name, _MISSING)
        if table is _MISSING:
            continue
        if isinstance(table, dict):
            entries = [f"{name!r}: {_field_text(field)}" for name, field in table.items()]
        elif isinstance(table, (list, tuple)):
            entries = [_field_text(field) for field in table]
        else:
            entries = [_field_text(table)]
        parts.append(f"{table_name}: " + "; ".join(entries))
    return "\n".join(parts)


_IMMUTABLE = (int, float, complex, str, bytes, bool, type(None), range, types.ModuleType)


def _immutable(value: Any) -> bool:
    """Return True for a value whose content cannot change while it is the same object.

    Walked with a stack of its own, not by recursion: a global or default nested thousands deep is
    judged here before anything can catch a RecursionError, so it must not raise one.
    """
    pending = [value]
    while pending:
        value = pending.pop()
        if isinstance(value, (tuple, frozenset)) and _holds_only_items(type(value)):
            pending.extend(value)
        elif isinstance(value, types.ModuleType):  # the user's module is keyed by content, which can change
            if _keyed_by_content(value):
                return False
        elif isinstance(value, enum.Enum):  # a member: fixed by its class's definition, and what it holds
            pending.append(value._value_)
            pending.extend(enum_attributes(value).values())  # Planet.mass; a list of aliases is not fixed
        elif isinstance(value, types.BuiltinFunctionType):  # len, math.sqrt; or a method bound to data (TABLE.get)
            owner = value.__self__
            if not (owner is None or isinstance(owner, (types.ModuleType, io.IOBase)) or owner is value
                    or (isinstance(owner, type) and owner.__module__ == "builtins")):  # a stream: no data
                pending.append(owner)
        elif not (type(value) in _IMMUTABLE or _numpy_constant(value)
                  or (isinstance(value, _IMMUTABLE) and type(value).__module__ == "builtins")):
            return False
    return True


def _holds_only_items(cls: type) -> bool:
    """Whether instances of a tuple or frozenset class hold nothing but their items: a subclass with an
    instance dict or slots (``LABELS.prefix = "y"``) changes while it is the same object; a namedtuple does not."""
    if cls is tuple or cls is frozenset:
        return True
    return all(not getattr(base, "__slots__", ()) and "__dict__" not in vars(base)
               for base in cls.__mro__ if base not in (tuple, frozenset, object))


def _numpy_constant(value: Any) -> bool:
    """A dtype, or one of numpy's own ufuncs (not one np.frompyfunc made of a Python function)."""
    cls = type(value)
    if cls.__module__ != "numpy":
        return False
    if cls.__name__ == "ufunc":
        return not str(getattr(value, "__name__", "")).endswith(" (vectorized)")
    np = sys.modules.get("numpy")
    return np is not None and isinstance(value, np.dtype)


_class_caches: dict[bool, weakref.WeakKeyDictionary[type, tuple[list[Any], bytes, tuple[int, ...]]]] = {
    False: weakref.WeakKeyDictionary(), True: weakref.WeakKeyDictionary()}


def class_code(attr: Any) -> tuple[list[types.FunctionType], Any] | None:
    """Return the functions a class attribute runs and the data bound to them; None for data.

    Methods, static and class methods, properties, ``functools.cached_property``,
    ``partialmethod`` (whose bound arguments are the data), ``singledispatchmethod`` (its
    default implementation; the others are looked up when resolving) and memoized methods.
    """
    if isinstance(attr, (staticmethod, classmethod)):
        inner = class_code(attr.__func__)
        return inner if inner is not None else ([], attr.__func__)  # e.g. staticmethod(partial(f))
    if isinstance(attr, types.FunctionType):
        original = original_of(attr)
        if original is not attr:  # our wrapper (random.seed once a call ran): as what it replaced
            return class_code(original)
        return [attr], None
    if isinstance(attr, property):
        return [fn for fn in (attr.fget, attr.fset, attr.fdel) if isinstance(fn, types.FunctionType)], None
    if isinstance(attr, functools.partialmethod):
        inner = class_code(attr.func)
        return (inner[0] if inner else []), (attr.args, attr.keywords, inner[1] if inner else attr.func)
    if isinstance(attr, (functools.cached_property, functools.singledispatchmethod)):
        return class_code(attr.func)
    if isinstance(attr, functools._lru_cache_wrapper):  # type: ignore[attr-defined]
        return class_code(attr.__wrapped__)
    if getattr(type(attr), "__memo__", False) and not isinstance(attr, type):
        # A memoized method. Asked of its type: an object that answers every attribute name
        # (an addict-style dict) is data, and its __wrapped__ would never end.
        wrapped = attr.__dict__.get("__wrapped__")
        return class_code(wrapped) if isinstance(wrapped, types.FunctionType) else None
    return None


def _class_items(cls: type) -> list[tuple[str, Any]]:
    """Return a class's own attributes that are its code or data, in name order.

    Dunder data counts when it cannot change (``__match_args__``, ``__hash__ = None``,
    ``__array_priority__``, ``__slots__``): it changes what the class does though no method shows it.
    Mutable or unhashable dunder data is what class-building libraries derive and fill as they go
    (pydantic's schema, validator and setattr handlers), and field tables count through ``fields_text``;
    both are left out, and so is an enum's ``_sunder_`` bookkeeping (which grows as flags are combined).
    """
    machinery = issubclass(cls, enum.Enum)
    return [(name, attr) for name, attr in sorted(vars(cls).items())
            if name not in _SKIP_CLASS_ATTRS
            and not (_is_dunder(name) and not _is_code(attr) and not _callable(attr)
                     and (name in _FIELD_TABLES or not _immutable(attr)))
            and not (machinery and _is_sunder(name) and not _is_code(attr))]


def _callable(attr: Any) -> bool:
    # A dunder held as a callable object (``__call__ = lru_cache(...)(f)``, ``__getitem__ = table``)
    # runs like a method.
    return callable(attr) and not isinstance(attr, type)


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name[:2] == name[-2:] == "__"


def _is_sunder(name: str) -> bool:
    return len(name) > 2 and name[0] == name[-1] == "_" and name[1] != "_" and name[-2] != "_"


def _is_code(attr: Any) -> bool:
    return class_code(attr) is not None


_DERIVED = (types.GetSetDescriptorType, types.MemberDescriptorType)


_MUTABLE_DATA = ("mutable data",)
_WRAPPERS = (staticmethod, classmethod, property)


def _wrapped_parts(value: Any) -> tuple[Any, ...]:
    if isinstance(value, property):
        return (value.fget, value.fset, value.fdel)  # the slot a function sits in counts
    return (value.__func__,)


# Tuples of functions held item by item down to this depth; deeper, by kind only, as mutable data is
# (a value holding them is judged mutable, so hashed again on every use, and never resolved once for good).
_HELD_DEPTH = 32


def _holder(value: Any, depth: int = 0) -> Any:
    if value is None or value is _MISSING:
        return (value,)
    try:
        return weakref.ref(value)
    except TypeError:
        pass
    if type(value) is tuple and not _immutable(value):  # defaults holding functions: each, weakly
        if depth >= _HELD_DEPTH:
            return _MUTABLE_DATA
        return ("tuple", tuple(_holder(item, depth + 1) for item in value))
    if _immutable(value):
        return (value,)  # an int, a str, a tuple of them: cannot name the class
    if isinstance(value, _WRAPPERS):  # not weakly referable itself: what it wraps, weakly
        return (type(value), tuple(_holder(part) for part in _wrapped_parts(value)))
    # A dict or list of the class's (a registry may hold the class itself). Held by kind only:
    # such data is hashed again on every call, so its identity is never what a check rests on.
    return _MUTABLE_DATA


def _holders(items: list[tuple[str, Any]]) -> list[Any]:
    """Hold a class's attributes (name and value) for an identity check without keeping it alive.

    Functions (whose ``__class__`` cell names the class) are held weakly, so are the functions
    inside static methods and properties; the ``__dict__`` and ``__weakref__`` descriptors,
    which name the class too, follow from its definition and are skipped.
    """
    return [(name, _holder(value)) for name, value in items if not isinstance(value, _DERIVED)]


def _same_value(held: Any, value: Any) -> bool:
    if isinstance(held, weakref.ref):
        return held() is value
    if held is _MUTABLE_DATA:
        return _holder(value) is _MUTABLE_DATA
    if len(held) == 1:
        return held[0] is value
    if held[0] == "tuple":
        return type(value) is tuple and len(value) == len(held[1]) \
            and all(_same_value(h, v) for h, v in zip(held[1], value))
    if type(value) is not held[0]:
        return False
    parts = _wrapped_parts(value)
    return len(parts) == len(held[1]) and all(_same_value(h, v) for h, v in zip(held[1], parts))


def _same(held: list[Any], items: list[tuple[str, Any]]) -> bool:
    current = [(name, value) for name, value in items if not isinstance(value, _DERIVED)]
    if len(held) != len(current):
        return False
    return all(h[0] == name and _same_value(h[1], value) for h, (name, value) in zip(held, current))


def class_fingerprint(cls: type, by_code: bool = False) -> bytes:
    """Return a digest of a class's definition: its name, bases, metaclass and methods' own code.

    Its data attributes count by name here; their content (and the code a method reads) is
    the business of ``_dependencies``. ``by_code`` keys methods by their code objects, as for
    functions reached as values.
    """
    values = list(vars(cls).items())
    cache = _class_caches[by_code]
    cached = cache.get(cls)
    tables = _tables_held(cls)
    if cached is not None and _same(cached[0], values) and cached[2] == tables:
        return cached[1]
    digest = _class_digest(cls, by_code)
    with contextlib.suppress(TypeError):
        cache[cls] = (_holders(values), digest, tables)
    return digest


def _tables_held(cls: type) -> tuple[int, ...]:
    """Which annotations and field tables a class holds now, and their sizes: one replaced or grown
    (``model_rebuild()``) is fingerprinted again; held by id, never by reference, so the class can go."""
    namespace = vars(cls)
    held = []
    for name in ("__annotations__", *_FIELD_TABLES):
        table = namespace.get(name)
        held += [id(table), len(table) if isinstance(table, (dict, list, tuple)) else -1]
    return tuple(held)


def _class_digest(cls: type, by_code: bool) -> bytes:
    parts = [qualified_name(cls).encode(), repr([qualified_name(b) for b in cls.__mro__]).encode(),
             qualified_name(type(cls)).encode()]
    for name, attr in _class_items(cls):
        code = class_code(attr)
        if code is None:
            parts.append(name.encode() + b"<data>")
            continue
        kind = f"{name}:{qualified_name(type(attr))}".encode()  # a staticmethod is not a classmethod
        if isinstance(attr, property):
            parts.extend(kind + slot.encode() + own_fingerprint(fn, by_code)[0]
                         for slot, fn in zip(("get", "set", "del"), _wrapped_parts(attr))
                         if isinstance(fn, types.FunctionType))
        else:
            parts.extend(kind + own_fingerprint(fn, by_code)[0] for fn in code[0])
    # The annotations and what libraries build from them (field types, defaults, factories) decide what
    # the class does (validation, casting, __init__), though no method's code shows them.
    annotations, fields = annotations_text(cls), fields_text(cls)
    if annotations or fields:
        parts += [b"annotations", annotations.encode("utf-8", "surrogatepass"), b"fields",
                  fields.encode("utf-8", "surrogatepass")]
    return combine(parts)


# -- hashing methods passed as values (functions and classes: _dependencies) -----------------


def _hash_method(h: Hasher, method: types.MethodType) -> None:
    note_state_function(method)  # random.getstate held in a dict, a partial, a default...
    h.tag(b"Mb")
    h.child(method.__func__, "<method>")
    h.child(method.__self__, ".__self__")


install_code_handler(types.MethodType, _hash_method)


def _keyed_by_content(module: types.ModuleType) -> bool:
    """A module passed or held as a value is keyed by its content when it is the user's, or a plain
    ``types.ModuleType`` made at run time (no file, no import spec), even one put in ``sys.modules``."""
    if type(module) is types.ModuleType and _location(module) is None and module_attribute(module, "__spec__") is None \
            and module.__name__ not in sys.builtin_module_names:
        return True
    return is_user_code(module)


install_module_judge(_keyed_by_content)
