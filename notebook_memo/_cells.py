"""Whole-cell caching: what a cell reads and writes, running it, capturing and replaying output."""

from __future__ import annotations

import ast
import asyncio
import builtins
import contextlib
import sys
import threading
import time
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import _config
from ._config import warn_once
from ._dependencies import Dependencies, global_references, resolve_values
from ._errors import MemoError, StorageWarning, UnhashableArgument
from ._hashing import combine, content_hash
from ._inventory import human_time
from ._memo import Call, function_id, save
from ._serialize import CorruptRecord, dumps
from ._store import Store, StoredRecord, get_store

__all__ = ()

_IPYTHON_NAMES = frozenset({"In", "Out", "_", "__", "___", "_i", "_ii", "_iii", "_oh", "_ih", "_dh",
                            "get_ipython", "exit", "quit", "__builtin__", "__builtins__", "__name__",
                            "__doc__", "__package__", "__loader__", "__spec__"})


def _is_shell_name(name: str) -> bool:
    return name in _IPYTHON_NAMES or (name.startswith("_i") and name[2:].isdigit()) \
        or (name.startswith("_") and name[1:].isdigit())


# -- static analysis ------------------------------------------------------------------------


class _Scope(ast.NodeVisitor):
    """Names a block reads before binding them (its free names), and the names it binds."""

    def __init__(self) -> None:
        self.bound: set[str] = set()
        self.reads: list[str] = []
        self.globals_declared: set[str] = set()

    def read(self, name: str) -> None:
        if name not in self.bound:
            self.reads.append(name)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.read(node.id)
        else:
            self.bound.add(node.id)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if isinstance(node.target, ast.Name):
            self.read(node.target.id)
        self.visit(node.value)
        self.visit(node.target)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)  # the right side runs first
        for target in node.targets:
            self.visit(target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
        self.visit(node.annotation)
        self.visit(node.target)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self.visit(node.target)

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name != "*":
                self.bound.add((alias.asname or alias.name).partition(".")[0])

    visit_ImportFrom = visit_Import

    def visit_Global(self, node: ast.Global) -> None:
        self.globals_declared.update(node.names)

    def _nested(self, node: ast.AST, params: list[str], body: Sequence[ast.AST] | ast.AST) -> None:
        inner = _Scope()
        inner.bound.update(params)
        for stmt in body if isinstance(body, Sequence) else [body]:
            inner.visit(stmt)
        for name in inner.reads:
            if name not in inner.bound or name in inner.globals_declared:
                self.read(name)
        self.globals_declared.update(inner.globals_declared)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        args = node.args
        for default in [*args.defaults, *[d for d in args.kw_defaults if d is not None]]:
            self.visit(default)
        if not isinstance(node, ast.Lambda):
            for decorator in node.decorator_list:
                self.visit(decorator)
        params = [a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]]
        params += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
        self._nested(node, params, node.body)
        if not isinstance(node, ast.Lambda):
            self.bound.add(node.name)

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_Lambda = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in [*node.bases, *[k.value for k in node.keywords], *node.decorator_list]:
            self.visit(expr)
        self._nested(node, [], node.body)
        self.bound.add(node.name)

    def _comprehension(self, node: ast.AST, elements: list[ast.AST]) -> None:
        generators: list[ast.comprehension] = node.generators  # type: ignore[attr-defined]
        self.visit(generators[0].iter)  # the first iterable is evaluated outside
        inner = _Scope()
        for i, gen in enumerate(generators):
            if i:
                inner.visit(gen.iter)
            inner.visit(gen.target)
            for cond in gen.ifs:
                inner.visit(cond)
        for element in elements:
            inner.visit(element)
        for name in inner.reads:
            if name not in inner.bound:
                self.read(name)

    def visit_ListComp(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp) -> None:
        self._comprehension(node, [node.elt])

    visit_SetComp = visit_ListComp
    visit_GeneratorExp = visit_ListComp

    def visit_DictComp(self, node: ast.DictComp) -> None:
        self._comprehension(node, [node.key, node.value])


@dataclass
class CellAnalysis:
    """What a cell reads from the namespace and what it binds at top level."""

    inputs: list[str]
    binds: list[str]
    globals_declared: list[str]


def analyse(tree: ast.Module) -> CellAnalysis:
    """Return the names a cell reads before binding them, and the names it binds."""
    scope = _Scope()
    for stmt in tree.body:
        scope.visit(stmt)
    inputs = list(dict.fromkeys(n for n in [*scope.reads, *scope.globals_declared]))
    return CellAnalysis(inputs, sorted(scope.bound), sorted(scope.globals_declared))


def normalised_source(tree: ast.Module) -> bytes:
    """Return the cell's code without comments, blank lines or formatting."""
    return ast.dump(tree, annotate_fields=True, include_attributes=False).encode()


# -- capturing and replaying output ---------------------------------------------------------


class _Tee:
    """A text stream that records what is written and passes it on."""

    def __init__(self, stream: Any, name: str, events: list[tuple[Any, ...]]) -> None:
        self._stream = stream
        self._name = name
        self._events = events

    def write(self, text: str) -> int:
        if text:
            if self._events and self._events[-1][0] == self._name:
                self._events[-1] = (self._name, self._events[-1][1] + text)
            else:
                self._events.append((self._name, text))
        return int(self._stream.write(text) or len(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def capture(shell: Any) -> Iterator[list[tuple[Any, ...]]]:
    """Record stdout, stderr and display outputs, in order, while still showing them."""
    events: list[tuple[Any, ...]] = []
    out, err = sys.stdout, sys.stderr
    publisher = shell.display_pub
    original = publisher.publish

    def publish(data: Any, metadata: Any = None, *args: Any, **kwargs: Any) -> Any:
        events.append(("display", data, metadata or {}))
        return original(data, metadata, *args, **kwargs)

    sys.stdout, sys.stderr = _Tee(out, "stdout", events), _Tee(err, "stderr", events)
    publisher.publish = publish
    try:
        yield events
        _flush_inline_figures()
    finally:
        sys.stdout, sys.stderr = out, err
        publisher.publish = original


def _flush_inline_figures() -> None:
    """Show figures the inline backend would show after the cell, inside the capture."""
    module = sys.modules.get("matplotlib_inline.backend_inline")
    pyplot = sys.modules.get("matplotlib.pyplot")
    if module is None or pyplot is None:
        return
    if "inline" in str(pyplot.get_backend()).lower():
        module.flush_figures()


def replay(shell: Any, events: list[tuple[Any, ...]]) -> None:
    """Show recorded outputs again, in their order."""
    for event in events:
        if event[0] == "stdout":
            sys.stdout.write(event[1])
        elif event[0] == "stderr":
            sys.stderr.write(event[1])
        elif event[0] == "display":
            shell.display_pub.publish(data=event[1], metadata=event[2])
    sys.stdout.flush()


# -- running a cell ---------------------------------------------------------------------------


def _run_coroutine(coro: Any) -> Any:
    """Run a coroutine to completion from synchronous code, even inside a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        from IPython.core.async_helpers import get_asyncio_loop

        return get_asyncio_loop().run_until_complete(coro)
    box: dict[str, Any] = {}

    def target() -> None:  # the kernel's own loop is busy running this cell
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="notebook_memo-await")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def execute(shell: Any, tree: ast.Module, filename: str) -> Any:
    """Run a parsed cell in the shell's namespace; return the last expression's value or None."""
    body = list(tree.body)
    last = body.pop() if body and isinstance(body[-1], ast.Expr) else None
    assert last is None or isinstance(last, ast.Expr)
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    namespace = shell.user_ns
    if body:
        code = compile(ast.Module(body=body, type_ignores=[]), filename, "exec", flags=flags)
        result = eval(code, shell.user_global_ns, namespace)
        if asyncio.iscoroutine(result):
            _run_coroutine(result)
    if last is None:
        return None
    code = compile(ast.Expression(body=last.value), filename, "eval", flags=flags)
    value = eval(code, shell.user_global_ns, namespace)
    return _run_coroutine(value) if asyncio.iscoroutine(value) else value


# -- the cell cache ---------------------------------------------------------------------------


@dataclass
class CellOptions:
    name: str | None = None
    ttl: float | None = None
    refresh: bool = False
    inputs: list[str] | None = None
    outputs: list[str] | None = None
    quiet: bool = False


@dataclass
class CellCall:
    """A cell about to run: its key, and what the key was made of."""

    cell: CellMemo
    call: Call
    inputs: dict[str, Any]
    analysis: CellAnalysis


@dataclass
class CellMemo:
    """One cached cell (named, or named by its code): quacks like a memoized function for explain."""

    label: str
    source_digest: bytes
    ttl: float | None = None
    last_call: Call | None = None
    last_hit: bool = False
    hits: int = 0
    misses: int = 0
    saved_seconds: float = 0.0
    _version: bytes = b""
    _options: Any = field(default=None)

    @property
    def qualified_name(self) -> str:
        return f"cell:{self.label}"

    @property
    def function_id(self) -> str:
        return function_id(self.qualified_name)

    def _store(self) -> Store:
        return get_store(_config.resolve_dir(None), _config.resolve_size_limit())

    def entries(self) -> list[StoredRecord]:
        fid = self.function_id
        return [r for r in self._store().records() if r.header.meta().get("fid") == fid]

    def clear(self) -> int:
        return self._store().evict(self.function_id)

    def clear_stale(self) -> int:
        if self.last_call is None:
            return 0
        current = self.last_call.code.hex()
        store = self._store()
        return sum(store.delete(r.key) for r in self.entries() if r.header.meta().get("code") != current)


_cells: dict[str, CellMemo] = {}


def cells() -> list[CellMemo]:
    """Return the cached cells run in this process."""
    return list(_cells.values())


def _resolve_inputs(analysis: CellAnalysis, code_tree: ast.Module, namespace: dict[str, Any],
                    only: list[str] | None) -> tuple[dict[str, Any], Dependencies]:
    """Hash the cell's inputs by content, and the code of user functions it uses."""
    names = only if only is not None else analysis.inputs
    builtin_names = vars(builtins)
    inputs: dict[str, Any] = {}
    for name in names:
        if _is_shell_name(name):
            continue
        if name in namespace:
            inputs[name] = namespace[name]
        elif only is not None:
            raise MemoError(f"--inputs names {name!r}, which is not defined in the notebook")
        elif name not in builtin_names:
            inputs[name] = _UNDEFINED
    chains: dict[str, tuple[str, ...]] = {}
    code = compile(code_tree, "<cell>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    for name, chain in global_references(code):
        if name in inputs and chain:
            chains.setdefault(name, chain)
    present = {name: value for name, value in inputs.items() if value is not _UNDEFINED}
    missing = [name for name, value in inputs.items() if value is _UNDEFINED]
    deps = resolve_values(present, chains, missing, _config.settings.track_versions)
    if deps.skipped:
        label, reason = next(iter(deps.skipped.items()))
        raise UnhashableArgument(
            f"the cell input '{label}'", inputs.get(label.partition(".")[0]), reason +
            "; list the inputs that matter with %%memo --inputs a,b (or give its class __memo_key__)")
    return inputs, deps


class _Undefined:
    pass


_UNDEFINED = _Undefined()


def prepare(shell: Any, raw_cell: str, options: CellOptions) -> tuple[CellCall, ast.Module, str]:
    """Analyse a cell and build its key."""
    transformed = shell.transform_cell(raw_cell)
    tree = ast.parse(transformed)
    analysis = analyse(tree)
    digest = combine([b"cell", normalised_source(tree)])
    label = options.name or f"{digest.hex()[:12]}"
    cell = _cells.get(label)
    if cell is None or cell.source_digest != digest:
        cell = CellMemo(label, digest)
        _cells[label] = cell
    cell.ttl = options.ttl
    cell._options = options
    inputs, deps = _resolve_inputs(analysis, tree, shell.user_ns, options.inputs)
    code = combine([digest] + [f"{label}\0{kind}".encode() + d for label, (kind, d) in sorted(deps.parts.items())
                               if kind in ("code", "package", "missing")])
    arguments = {label: d for label, (kind, d) in deps.parts.items() if kind == "value"}
    key = combine([b"cell1", cell.function_id.encode(), code, deps.digest()]).hex()
    call = Call(key, arguments, code, digest, Dependencies(
        {k: v for k, v in deps.parts.items() if v[0] != "value"}, deps.skipped), "source")
    cell.last_call = call
    filename = shell.compile.cache(transformed, shell.execution_count, raw_code=raw_cell) \
        if hasattr(shell, "compile") else "<cell>"
    return CellCall(cell, call, inputs, analysis), tree, filename


def _namespace_snapshot(namespace: dict[str, Any]) -> dict[str, int]:
    return {name: id(value) for name, value in namespace.items() if not _is_shell_name(name)}


def run_cell(shell: Any, raw_cell: str, options: CellOptions) -> Any:
    """Run a ``%%memo`` cell: restore it from the cache, or run it and store what it made."""
    cell_call, tree, filename = prepare(shell, raw_cell, options)
    cell, call = cell_call.cell, cell_call.call
    store = cell._store()
    if not options.refresh and not _config.settings.disabled:
        restored = _try_restore(shell, store, cell, call.key, options)
        if restored is not _NOT_CACHED:
            return restored
    namespace = shell.user_ns
    before = _namespace_snapshot(namespace)
    input_digests = {name: _digest_or_none(value) for name, value in cell_call.inputs.items()}
    start = time.perf_counter()
    with capture(shell) as events:
        result = execute(shell, tree, filename)
    duration = time.perf_counter() - start
    cell.misses += 1
    cell.last_hit = False
    if _config.settings.disabled:
        return result
    after = _namespace_snapshot(namespace)
    outputs = _outputs(options, cell_call, before, after, input_digests, namespace)
    deleted = sorted(name for name in before if name not in after)
    payload_value = {
        "outputs": {name: namespace[name] for name in outputs if name in namespace},
        "deleted": deleted,
        "events": events,
        "result": result,
    }
    _store_cell(store, cell, call, payload_value, duration, options)
    return result


def _digest_or_none(value: Any) -> bytes | None:
    try:
        return content_hash(value)
    except UnhashableArgument:
        return None


def _outputs(options: CellOptions, cell_call: CellCall, before: dict[str, int], after: dict[str, int],
             input_digests: dict[str, bytes | None], namespace: dict[str, Any]) -> list[str]:
    if options.outputs is not None:
        missing = [n for n in options.outputs if n not in namespace]
        if missing:
            raise MemoError(f"--outputs names {missing}, which the cell did not define")
        return list(options.outputs)
    names = set(cell_call.analysis.binds) | set(cell_call.analysis.globals_declared)
    names |= {name for name, ident in after.items() if before.get(name) != ident}
    for name, digest in input_digests.items():
        # An input changed in place (x.append(...), df.loc[...] = ...): its new state is an output.
        if name in namespace and _digest_or_none(namespace[name]) != digest:
            names.add(name)
    return sorted(n for n in names if n in namespace and not _is_shell_name(n))


def _store_cell(store: Store, cell: CellMemo, call: Call, value: dict[str, Any], duration: float,
                options: CellOptions) -> None:
    defined = frozenset(id(v) for v in value["outputs"].values() if isinstance(v, type))
    try:
        payload = dumps(value, by_value=defined)
    except Exception as exc:
        warn_once(f"pickle:{cell.qualified_name}", f"%%memo {cell.label}: the cell's outputs cannot be pickled "
                  f"({type(exc).__name__}: {exc}); the cell ran but was not cached. Use --outputs to "
                  "choose the variables worth keeping.", StorageWarning)
        return
    meta = {
        "kind": "cell", "name": cell.qualified_name, "label": cell.label, "fid": cell.function_id,
        "code": call.code.hex(), "own": call.own.hex(), "method": "source",
        "deps": {label: [kind, d.hex()] for label, (kind, d) in call.deps.parts.items()},
        "skipped": [], "args": {name: d.hex() for name, d in call.arguments.items()},
        "version": "", "created": time.time(), "ttl": options.ttl, "duration": duration,
        "size": payload.nbytes, "outputs": sorted(value["outputs"]),
    }
    save(store, call.key, payload, meta, options.ttl, duration, cell.function_id)


def _rebind(value: Any, namespace: dict[str, Any]) -> Any:
    """Point functions and methods the cell defined at the live notebook namespace.

    Unpickled by value, they would read a private copy of the globals they used, frozen
    at the time the cell first ran.
    """
    if isinstance(value, types.FunctionType) and value.__module__ == "__main__":
        return _with_globals(value, namespace)
    if isinstance(value, type) and value.__module__ == "__main__":
        for name, attr in list(vars(value).items()):
            inner = getattr(attr, "__func__", attr)
            if isinstance(inner, types.FunctionType) and inner.__module__ == "__main__":
                rebound = _with_globals(inner, namespace)
                setattr(value, name, type(attr)(rebound) if inner is not attr else rebound)
    return value


def _with_globals(fn: types.FunctionType, namespace: dict[str, Any]) -> types.FunctionType:
    new = types.FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__, fn.__closure__)
    new.__kwdefaults__ = fn.__kwdefaults__
    new.__dict__.update(fn.__dict__)
    new.__qualname__ = fn.__qualname__
    new.__annotations__ = fn.__annotations__
    new.__module__ = fn.__module__
    new.__doc__ = fn.__doc__
    return new


class _NotCached:
    pass


_NOT_CACHED = _NotCached()


def _try_restore(shell: Any, store: Store, cell: CellMemo, key: str, options: CellOptions) -> Any:
    try:
        record = store.get(key)
        if record is None or (record.header.expires and record.header.expires <= time.time()):
            return _NOT_CACHED
        value = record.load(_config.resolve_secret())
    except FileNotFoundError:
        return _NOT_CACHED
    except (CorruptRecord, Exception) as exc:
        warn_once(f"corrupt:{key}", f"%%memo {cell.label}: the cached run could not be used ({exc}); "
                  "running the cell", StorageWarning)
        with contextlib.suppress(Exception):
            store.delete(key)
        return _NOT_CACHED
    if not options.quiet and _config.settings.verbose:
        names = ", ".join(sorted(value["outputs"])) or "no variables"
        print(f"[notebook_memo] restored {names} from the cache (computed {human_time(record.header.created)}, "
              f"took {record.header.duration:.2f} s)")
    namespace = shell.user_ns
    namespace.update({name: _rebind(v, namespace) for name, v in value["outputs"].items()})
    for name in value["deleted"]:
        namespace.pop(name, None)
    replay(shell, value["events"])
    cell.hits += 1
    cell.last_hit = True
    store.count_hit(cell.function_id)
    cell.saved_seconds += record.header.duration
    return value["result"]

