"""Code fingerprints of functions and classes, and the dependencies they read.

A function's own fingerprint comes from its source, normalised (no comments, blank
lines, formatting, docstrings or decorators; no line numbers), and is checked against
the code object actually running: when the two disagree (the file changed on disk after
import, or the source is missing) the code object itself is fingerprinted instead.

Dependencies are resolved on every call, because a helper or a constant may be edited
in another cell at any time: user functions and classes by their fingerprints (and their
own dependencies, transitively), data globals by content, installed packages by name and
version. Whatever cannot be hashed is left out and reported.
"""

from __future__ import annotations

import ast
import contextlib
import dis
import functools
import importlib.metadata
import inspect
import os
import site
import sys
import sysconfig
import textwrap
import threading
import types
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._errors import UnhashableArgument
from ._hashing import Hasher, combine, content_hash, install_code_handler, qualified_name

__all__ = ()

_PY = f"py{sys.version_info[0]}.{sys.version_info[1]}".encode()
_MISSING = object()
_SKIP_CLASS_ATTRS = frozenset(
    {"__dict__", "__weakref__", "__doc__", "__module__", "__qualname__", "__annotations__",
     "__firstlineno__", "__static_attributes__", "__orig_bases__", "__parameters__"}
)
_LOAD_GLOBAL_OPS = frozenset({"LOAD_GLOBAL", "LOAD_NAME"})
_ATTR_OPS = frozenset({"LOAD_ATTR", "LOAD_METHOD"})


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
    top = module_name.partition(".")[0]
    if top == "notebook_memo" or top in sys.stdlib_module_names or top == "builtins":
        return False
    if module_file is None:
        # Cells of a notebook (``__main__`` without a file) are user code; other
        # file-less modules are builtin, frozen or namespace packages.
        return module_name == "__main__" or module_name.startswith("__ipython")
    return not os.path.realpath(module_file).startswith(_ROOTS)


def is_user_code(obj: Any) -> bool:
    """Return True when ``obj`` (a function, class or module) belongs to the user's code."""
    name: str | None = obj.__name__ if isinstance(obj, types.ModuleType) else getattr(obj, "__module__", None)
    if name is None:
        return False
    module = sys.modules.get(name)
    module_file = getattr(module, "__file__", None) if module is not None else None
    return _module_is_user_code(name, module_file)


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
    """Return True when two code objects do the same thing (line numbers aside)."""
    if a.co_code != b.co_code or a.co_names != b.co_names or len(a.co_consts) != len(b.co_consts):
        return False
    for x, y in zip(a.co_consts, b.co_consts):
        if isinstance(x, types.CodeType):
            if not (isinstance(y, types.CodeType) and _same_code(x, y)):
                return False
        elif type(x) is not type(y) or x != y:
            if not (x != x and y != y):  # NaN constants
                return False
    return True


def _source_digest(fn: types.FunctionType) -> bytes | None:
    """Return the digest of ``fn``'s normalised source, if it matches the running code."""
    if fn.__name__ == "<lambda>":
        return None
    try:
        source = textwrap.dedent(inspect.getsource(fn))
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
        compiled = compile(ast.Module(body=[node], type_ignores=[]), "<notebook_memo>", "exec",
                           dont_inherit=True)
    except (SyntaxError, ValueError):
        return None
    candidate = _find_code(compiled, fn.__name__)
    if candidate is None or not _same_code(candidate, fn.__code__):
        return None  # the source on disk is not the code that runs
    _strip_docstrings(node)
    text = ast.dump(node, annotate_fields=True, include_attributes=False)
    return combine([b"src", text.encode()])


def _code_digest(code: types.CodeType, docstring: object = _MISSING) -> bytes:
    """Return the digest of a code object, nested code included, without line numbers."""
    parts = [_PY, code.co_code, repr(code.co_names).encode(), repr(code.co_varnames).encode(),
             repr(code.co_freevars).encode(), repr(code.co_cellvars).encode(),
             repr((code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount,
                   code.co_flags)).encode()]
    for index, const in enumerate(code.co_consts):
        if isinstance(const, types.CodeType):
            parts.append(_code_digest(const))
        elif index == 0 and docstring is not _MISSING and const == docstring:
            parts.append(b"<doc>")
        else:
            parts.append(content_hash(const))
    return combine(parts)


_own_cache: weakref.WeakKeyDictionary[Callable[..., Any], tuple[types.CodeType, bytes, str]] = \
    weakref.WeakKeyDictionary()
_own_lock = threading.Lock()


def own_fingerprint(fn: types.FunctionType) -> tuple[bytes, str]:
    """Return ``(digest, method)`` of ``fn``'s own code; method is 'source' or 'bytecode'."""
    code = fn.__code__
    cached = _own_cache.get(fn)
    if cached is not None and cached[0] is code:
        return cached[1], cached[2]
    digest = _source_digest(fn)
    method = "source"
    if digest is None:
        digest = _code_digest(code, fn.__doc__ if fn.__doc__ is not None else _MISSING)
        method = "bytecode"
    with _own_lock:
        _own_cache[fn] = (code, digest, method)
    return digest, method


@functools.lru_cache(maxsize=8192)
def global_references(code: types.CodeType) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Return the global names a code object reads, each with the attribute chain after it."""
    found: dict[tuple[str, tuple[str, ...]], None] = {}
    stack = [code]
    while stack:
        current = stack.pop()
        name: str | None = None
        chain: list[str] = []
        for ins in dis.get_instructions(current):
            if ins.opname in _LOAD_GLOBAL_OPS:
                if name is not None:
                    found[(name, tuple(chain))] = None
                name, chain = ins.argval, []
            elif name is not None and ins.opname in _ATTR_OPS:
                chain.append(ins.argval)
            elif ins.opname == "CACHE":
                continue
            else:
                if name is not None:
                    found[(name, tuple(chain))] = None
                name, chain = None, []
        if name is not None:
            found[(name, tuple(chain))] = None
        stack.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
    return tuple(found)


# -- dependencies ------------------------------------------------------------------------------


@dataclass
class Dependencies:
    """What a function's result depends on besides its arguments."""

    parts: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # label -> (kind, digest)
    skipped: dict[str, str] = field(default_factory=dict)  # label -> why it was left out

    def digest(self) -> bytes:
        """Return one digest of every dependency, independent of discovery order."""
        items = sorted((label, kind, d) for label, (kind, d) in self.parts.items())
        return combine([f"{label}\0{kind}".encode() + d for label, kind, d in items])


_IMMUTABLE = (int, float, complex, str, bytes, bool, type(None), range, types.ModuleType,
              types.BuiltinFunctionType)


def _immutable(value: Any) -> bool:
    if isinstance(value, tuple) or isinstance(value, frozenset):
        return all(_immutable(v) for v in value)
    return type(value) in _IMMUTABLE or (type(value).__module__ == "numpy" and not hasattr(value, "shape")) \
        or (isinstance(value, _IMMUTABLE) and type(value).__module__ == "builtins")


class _Resolver:
    def __init__(self, track_versions: bool) -> None:
        self.deps = Dependencies()
        self.track_versions = track_versions
        self.seen: set[int] = set()
        # What the result was read from, with the identities seen: while all of them are
        # unchanged (and nothing mutable was read), the same resolution holds.
        self.watch: list[tuple[Any, ...]] = []
        self.volatile = False

    def function(self, fn: types.FunctionType, label: str) -> None:
        if id(fn) in self.seen:
            return
        self.seen.add(id(fn))
        self.watch.append(("fn", fn, fn.__code__, fn.__defaults__, fn.__kwdefaults__))
        digest, _ = own_fingerprint(fn)
        defaults = (fn.__defaults__, fn.__kwdefaults__)
        parts = [digest]
        if defaults != (None, None):
            try:
                parts.append(content_hash(defaults, f"the defaults of {label}"))
            except UnhashableArgument as exc:
                self.deps.skipped[f"{label} defaults"] = exc.reason
        self.deps.parts[label] = ("code", combine(parts))
        self.globals_of(fn, label)
        for cell_name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
            self.closure(cell, f"{label}.<closure {cell_name}>")

    def closure(self, cell: Any, label: str) -> None:
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell: the variable is not bound yet
            self.watch.append(("cell", cell, _MISSING))
            return
        self.watch.append(("cell", cell, value))
        self.value(value, label)

    def globals_of(self, fn: types.FunctionType, owner: str) -> None:
        namespace = fn.__globals__
        builtins_ns = namespace.get("__builtins__", {})
        root_module = namespace.get("__name__")
        for name, chain in global_references(fn.__code__):
            value = namespace.get(name, _MISSING)
            self.watch.append(("global", namespace, name, value))
            if value is _MISSING:
                if name in (builtins_ns if isinstance(builtins_ns, dict) else vars(builtins_ns)):
                    continue
                self.deps.parts[name] = ("missing", b"")
                continue
            label = name if root_module in (None, "__main__") else f"{root_module}.{name}"
            self.reference(value, chain, label)

    def reference(self, value: Any, chain: tuple[str, ...], label: str) -> None:
        if isinstance(value, types.ModuleType):
            if is_user_code(value):
                # Follow attribute chains into the user's own modules (mymod.helper).
                for attr in chain:
                    nxt = getattr(value, attr, _MISSING)
                    self.watch.append(("attr", value, attr, nxt))
                    if nxt is _MISSING:
                        break
                    value, label = nxt, f"{label}.{attr}"
                    if not isinstance(value, types.ModuleType):
                        self.value(value, label)
                        return
                return
            self.package(value.__name__)
            return
        self.value(value, label)

    def package(self, module_name: str) -> None:
        if not self.track_versions:
            return
        top = module_name.partition(".")[0]
        if top in sys.stdlib_module_names or top == "builtins":
            return
        self.deps.parts[f"package {top}"] = ("package", package_version(top).encode())

    def value(self, value: Any, label: str) -> None:
        if isinstance(value, types.FunctionType):
            if is_user_code(value):
                self.function(value, label)
            else:
                self.package(value.__module__ or "")
            return
        if isinstance(value, type):
            if is_user_code(value):
                self.cls(value, label)
            else:
                self.package(value.__module__)
            return
        if isinstance(value, (types.BuiltinFunctionType, types.ModuleType)):
            return
        if isinstance(value, (staticmethod, classmethod)):
            self.value(value.__func__, label)
            return
        if isinstance(value, property):
            for accessor in ("fget", "fset", "fdel"):
                fn = getattr(value, accessor)
                if fn is not None:
                    self.value(fn, f"{label}.{accessor}")
            return
        wrapped = getattr(value, "__wrapped__", None)
        if isinstance(wrapped, types.FunctionType) and hasattr(value, "__memo__"):
            self.function(wrapped, label)  # a memoized helper: follow the function inside
            return
        if not _immutable(value):
            self.volatile = True  # mutable data: its content must be hashed on every call
        try:
            self.deps.parts[label] = ("value", content_hash(value, label))
        except UnhashableArgument as exc:
            self.deps.skipped[label] = exc.reason

    def cls(self, cls: type, label: str) -> None:
        if id(cls) in self.seen:
            return
        self.seen.add(id(cls))
        self.watch.append(("class", cls, list(vars(cls).values())))
        if any(not _immutable(v) and not _is_code(v) and not isinstance(v, type) for _, v in _class_items(cls)):
            self.volatile = True  # mutable class data: re-hashed on every call
        self.deps.parts[label] = ("code", class_fingerprint(cls))
        for base in cls.__mro__[1:]:
            if base is not object and not is_user_code(base):
                self.package(base.__module__)
        for klass in cls.__mro__:
            if klass is object or not is_user_code(klass):
                continue
            for name, attr in _class_items(klass):
                if _is_code(attr):
                    self.value(attr, f"{klass.__qualname__}.{name}")


_class_cache: weakref.WeakKeyDictionary[type, tuple[list[Any], bytes]] = weakref.WeakKeyDictionary()
_in_progress = threading.local()


def _class_items(cls: type) -> list[tuple[str, Any]]:
    # Dunder data (dataclass fields, match args, slots) is derived from the code itself.
    return [(name, attr) for name, attr in sorted(vars(cls).items())
            if name not in _SKIP_CLASS_ATTRS
            and not (name.startswith("__") and name.endswith("__") and not _is_code(attr))]


def _is_code(attr: Any) -> bool:
    return isinstance(attr, (types.FunctionType, staticmethod, classmethod, property)) or hasattr(attr, "__memo__")


def class_fingerprint(cls: type) -> bytes:
    """Return a digest of a class: its name, bases, methods' code and data attributes."""
    values = list(vars(cls).values())
    cached = _class_cache.get(cls)
    if cached is not None and len(cached[0]) == len(values) and all(a is b for a, b in zip(cached[0], values)):
        return cached[1]
    active: set[int] = getattr(_in_progress, "classes", None) or set()
    _in_progress.classes = active
    if id(cls) in active:  # a class reachable from its own attributes: name it, do not recurse
        return combine([b"class-cycle", qualified_name(cls).encode()])
    active.add(id(cls))
    try:
        digest, stable = _class_digest(cls)
    finally:
        active.discard(id(cls))
    if stable:
        with contextlib.suppress(TypeError):
            _class_cache[cls] = (values, digest)
    return digest


def _class_digest(cls: type) -> tuple[bytes, bool]:
    parts = [qualified_name(cls).encode(), repr([qualified_name(b) for b in cls.__mro__]).encode()]
    stable = True
    for name, attr in _class_items(cls):
        target = getattr(attr, "__func__", attr)
        if hasattr(target, "__memo__"):
            target = target.__wrapped__
        if isinstance(target, types.FunctionType):
            parts.append(name.encode() + own_fingerprint(target)[0])
        elif isinstance(target, property):
            for fn in (target.fget, target.fset, target.fdel):
                if isinstance(fn, types.FunctionType):
                    parts.append(name.encode() + own_fingerprint(fn)[0])
        else:
            stable = (stable and _immutable(attr)) or isinstance(attr, type)
            try:
                parts.append(name.encode() + content_hash(attr, f"{cls.__qualname__}.{name}"))
            except UnhashableArgument:
                parts.append(name.encode() + b"<unhashable>")
    return combine(parts), stable


def _still_valid(watch: list[tuple[Any, ...]]) -> bool:
    for item in watch:
        kind = item[0]
        if kind == "global":
            if item[1].get(item[2], _MISSING) is not item[3]:
                return False
        elif kind == "fn":
            fn = item[1]
            if fn.__code__ is not item[2] or fn.__defaults__ is not item[3] or fn.__kwdefaults__ is not item[4]:
                return False
        elif kind == "cell":
            try:
                if item[1].cell_contents is not item[2]:
                    return False
            except ValueError:
                if item[2] is not _MISSING:
                    return False
        elif kind == "attr":
            if getattr(item[1], item[2], _MISSING) is not item[3]:
                return False
        elif kind == "class":
            now = list(vars(item[1]).values())
            if len(now) != len(item[2]) or any(a is not b for a, b in zip(now, item[2])):
                return False
    return True


@dataclass
class CodeState:
    """A function's code as of one resolution: its digests and what they came from."""

    code: bytes  # own code plus the code (and package versions) of its dependencies
    own: bytes  # the function's own code alone
    deps: Dependencies
    deps_digest: bytes
    method: str


class CodeTracker:
    """Resolves a function's code and dependencies, re-using the last answer while valid."""

    def __init__(self, fn: types.FunctionType, owner_path: list[str] | None, track_versions: bool) -> None:
        self.fn = fn
        self.owner_path = owner_path
        self.track_versions = track_versions
        self._watch: list[tuple[Any, ...]] | None = None
        self._state: CodeState | None = None

    def current(self) -> CodeState:
        """Return the code state now: cheap identity checks when nothing changed."""
        watch = self._watch
        if watch is not None and self._state is not None and _still_valid(watch):
            return self._state
        resolver = _Resolver(self.track_versions)
        fn = self.fn
        resolver.seen.add(id(fn))
        resolver.watch.append(("fn", fn, fn.__code__, fn.__defaults__, fn.__kwdefaults__))
        own, method = own_fingerprint(fn)
        resolver.globals_of(fn, fn.__qualname__)
        for cell_name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
            if cell_name != "__class__":
                resolver.closure(cell, f"<closure {cell_name}>")
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
                resolver.value(owner, f"class {owner.__qualname__}")
        deps = resolver.deps
        code = combine([own] + [
            f"{label}\0{kind}".encode() + digest
            for label, (kind, digest) in sorted(deps.parts.items())
            if kind in ("code", "package", "missing")
        ])
        state = CodeState(code, own, deps, deps.digest(), method)
        self._state = state
        self._watch = None if resolver.volatile else resolver.watch
        return state


# -- hashing functions and classes passed as values ------------------------------------------


def _hash_function(h: Hasher, fn: types.FunctionType) -> None:
    if not is_user_code(fn):
        h.tag(b"Fq")
        h.text(qualified_name(fn))
        return
    digest, _ = own_fingerprint(fn)
    h.tag(b"Fu")
    h.text(fn.__qualname__)
    h.tag(digest)
    h.child((fn.__defaults__, fn.__kwdefaults__), "<defaults>")
    for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
        try:
            contents = cell.cell_contents
        except ValueError:
            contents = None
        h.child(contents, f"<closure {name}>")


def _hash_class(h: Hasher, cls: type) -> None:
    if is_user_code(cls):
        h.tag(b"Cu")
        h.tag(class_fingerprint(cls))
    else:
        h.tag(b"Cq")
        h.text(qualified_name(cls))


def _hash_method(h: Hasher, method: types.MethodType) -> None:
    h.tag(b"Mb")
    h.child(method.__func__, "<method>")
    h.child(method.__self__, ".__self__")


install_code_handler(types.FunctionType, _hash_function)
install_code_handler(type, _hash_class)
install_code_handler(types.MethodType, _hash_method)
