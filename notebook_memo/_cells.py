"""Whole-cell caching: the key of a cell, storing what it made, restoring it on a hit."""

from __future__ import annotations

import ast
import builtins
import collections
import contextlib
import functools
import importlib
import io
import linecache
import sys
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import xxhash

from . import _conditions, _config
from ._cell_analysis import (
    CellAnalysis,
    Resolver,
    analyse,
    bound_evaluator,
    computing_method,
    constant_text,
    elsewhere_evaluator,
    evaluated_text,
    held_partial_evaluator,
    normalised_source,
)
from ._cell_exec import capture, compile_flags, execute, replay
from ._config import warn_once
from ._dependencies import (
    WHOLE_ENVIRONMENT,
    DataRead,
    Dependencies,
    clock_reads,
    code_environment,
    environment_digest,
    global_references,
    keys_variables,
    resolve_values,
    torch_modes,
    warn_entropy,
)
from ._errors import ConfigurationError, StorageWarning, UnhashableArgument
from ._evaluated import NAMESPACE_READERS, namespace_reader
from ._explain import SHARED_INPUTS, Explanation, after_compute, before_compute, caching_off, explain_call
from ._first_use import bindings, bound_as_before, home_module, loaded_on_first_use
from ._in_place import held_part, holders, restorable, restore_in_place, shares, skeleton
from ._inventory import delete_results, human_time, owner
from ._memo import (
    Call,
    MemoizedFunction,
    apply_unseen,
    changed_in_place,
    conditioned_entry,
    entry_conditions,
    function_id,
    save_entry,
    served,
    storage_unreadable,
    unseen_state_functions,
    warn_random_result,
)
from ._methods import _PerObjectCache
from ._notebook import current_notebook, is_history, owner_tag
from ._parts import NoPath, Step, constant_paths, follow, same_part
from ._rules import rules_digest
from ._serialize import (
    _LRU_WRAPPER,
    ClassChanged,
    CorruptRecord,
    NotRestorable,
    cached_property_of,
    dumps,
    lru_cache_of,
    referring_to,
)
from .hashing import IMMUTABLE_LEAVES, aliasing_parts, combine, content_hash, things_met
from .stores.local import Store, StoredRecord, get_store
from .stores.remote import replacing_if

__all__ = ()

_SHELL_TOOLS = frozenset({"get_ipython", "exit", "quit", "__builtin__", "__builtins__", "__name__",
                          "__doc__", "__package__", "__loader__", "__spec__"})
# Dunder names that Python or the notebook's front end set themselves: `warnings.warn` leaves
# __warningregistry__, `x: int = 1` fills __annotations__, Jupyter and VS Code set __session__,
# __vsc_ipynb_file__ and __file__. Any other dunder name (__version__, __registry__) is the user's.
_SHELL_DUNDERS = frozenset({"__warningregistry__", "__annotations__", "__session__", "__vsc_ipynb_file__",
                            "__file__", "__cached__"})
_SHELL_MODULES = frozenset({"__builtin__", "__builtins__"})


def _is_shell_name(name: str) -> bool:
    """Return True for names the shell owns: never stored or restored as the cell's outputs, unless the cell
    binds them itself (see _own_dunders)."""
    return name in _SHELL_TOOLS or name in _SHELL_DUNDERS or is_history(name)


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def _the_cells(name: str, own: frozenset[str]) -> bool:
    """Return True for a name that is the cell's to store and restore: the user's, or one of the shell's the cell
    binds itself (``own``, from _own_dunders)."""
    return not _is_shell_name(name) or name in own


def _own_dunders(analysis: CellAnalysis) -> frozenset[str]:
    """Return the shell's dunder names the cell binds itself (``__file__ = ...``, ``__doc__ = ...``): a run leaves
    them as it bound them, so they are the cell's outputs like any variable."""
    return frozenset(name for name in (*analysis.binds, *analysis.globals_declared)
                     if _is_dunder(name) and _is_shell_name(name))


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
    unknown: str | None = None  # why what the cell reads is not known (a magic, eval): it runs, unstored
    magics: list[tuple[str, str]] = field(default_factory=list)  # %load_ext, %config...: a hit runs them again
    # Data a module holds that the cell's code reads (label, value, digest): a hit could not change it again
    held_elsewhere: list[DataRead] = field(default_factory=list)
    code: types.CodeType | None = None  # the cell's code, compiled: what a run of it reads of the files it lists


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
    notebook: str | None = None  # the notebook it runs in: clean-up leaves other notebooks' cells alone
    miss_report: Explanation | None = None  # why its last run was not restored though it had an entry
    rebinds: frozenset[str] = frozenset()  # inputs a run of it changed that a hit binds to copies: see run_cell
    # How a run of it changed the process (a setting, a variable): no later run of it is stored in this process,
    # since one that sets what the first set finds nothing to change.
    changes_process: str | None = None
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

    def owns(self, meta: dict[str, Any]) -> bool:
        """Return whether a record's metadata belongs to this cell as run in this notebook."""
        return owner(meta) == (self.function_id, self.notebook)

    def entries(self) -> list[StoredRecord]:
        """Return this cell's records, read through the index's tag of its id (as a function's are)."""
        return [r for r in self._store().records(self.function_id) if self.owns(r.header.meta())]

    def explain_last(self) -> Any:
        """Return the report on this cell's last run; None before one."""
        call = self.last_call
        if call is None:
            return None
        if self.last_hit:
            return explain_call(self, call)  # type: ignore[arg-type]
        report = self.miss_report if self.miss_report is not None else \
            explain_call(self, call, as_miss=True)  # type: ignore[arg-type]
        return after_compute(self, call, report)  # type: ignore[arg-type]

    def clear(self) -> int:
        return delete_results(self._store(), self.entries(), everywhere=True)

    def clear_stale(self) -> int:
        if self.last_call is None:
            return 0
        current = self.last_call.code.hex()
        return delete_results(self._store(), (r for r in self.entries()
                                              if r.verified and r.header.meta().get("code") != current))


_cells: dict[str, CellMemo] = {}


def cells() -> list[CellMemo]:
    """Return the cached cells run in this process."""
    return list(_cells.values())


def _resolve_inputs(analysis: CellAnalysis, code_tree: ast.Module, code: types.CodeType, namespace: dict[str, Any],
                    only: list[str] | None) -> tuple[dict[str, Any], Dependencies, list[DataRead],
                                                     frozenset[tuple[str, str]]]:
    """Hash the cell's inputs by content, and the code of user functions it uses (``code``: the cell's, compiled).

    Also return the mutable data it reads that no input holds (a module's dict, read as ``umod.REGISTRY``),
    with its digest: a run that changes it did what a hit could not do again; and the state functions met that
    no wrapper sees (see Call.unseen)."""
    names = only if only is not None else analysis.inputs
    builtin_names = vars(builtins)
    inputs: dict[str, Any] = {}
    entries = _history_entries(code_tree)
    for name in names:
        if name in _SHELL_TOOLS and (not _is_dunder(name) or name in _SHELL_MODULES):
            # get_ipython, exit, builtins: the shell's tools. History variables (`_`, `Out[3]`) and the module's
            # own dunders (__doc__, __name__, which a cell may bind) are read by content like any input.
            continue
        history = namespace.get(name)
        if name in entries and isinstance(history, (dict, list)):
            # Out[3] (a dict), In[2] (a list): those entries, not the whole history, which grows with every cell
            there = history.keys() if isinstance(history, dict) else range(len(history))
            inputs[name] = {k: history[k] for k in sorted(entries[name]) if k in there}
        elif name in namespace:
            inputs[name] = namespace[name]
        elif only is not None:
            from IPython.core.error import UsageError  # shown as one line, the cell not run

            raise UsageError(f"%%memo --inputs names {name!r}, which is not defined in the notebook: define it "
                             "first, or correct the list")
        elif name not in builtin_names:
            inputs[name] = _UNDEFINED
    for name in analysis.deletes:
        # `del tmp` reads nothing of tmp's value, but raises where it is undefined (a builtin's name included):
        # keyed as an undefined name then, so a hit never stands in for that NameError.
        if name not in namespace and name not in inputs:
            inputs[name] = _UNDEFINED
    # Every chain a name is read with (cfg.A and cfg.B, np.pi and np.random.mtrand._rand), each keyed as it leads
    chains: dict[str, list[tuple[str, ...]]] = {}
    for name, chain in global_references(code):
        if name in inputs and chain:
            chains.setdefault(name, []).append(chain)
    present = {name: value for name, value in inputs.items() if value is not _UNDEFINED}
    missing = [name for name, value in inputs.items() if value is _UNDEFINED]
    read: list[DataRead] = []
    # What keying the inputs meets: a state reader or seeder held where no wrapper sees its calls (random.getstate
    # in a dict since before the first run) is told to the run's recorder; the rest is no concern of a cell's.
    found: list[Any] = []
    outer_found, things_met.found = getattr(things_met, "found", None), found
    try:
        deps = resolve_values(present, chains, missing, _config.settings.track_versions, read, code, namespace)
    finally:
        things_met.found = outer_found
    unseen, _ = unseen_state_functions(found)
    # Notebook data the cell's functions read (a list a helper appends to): its state is in the key, and a
    # run may change it in place, so it counts as an input the cell reads, restored with its outputs.
    bound = set(analysis.binds)  # those bound on some paths only included
    for label, value, *_ in read:
        if label not in inputs and label not in bound and namespace.get(label, _UNDEFINED) is value \
                and not _is_shell_name(label):
            inputs[label] = value
    # Part of an input (cfg.layers) changes with it, and is stored with it; a module is no such input.
    elsewhere = [data for data in read
                 if data[0] not in inputs and not _stored_with_input(inputs.get(_root(data[0]), _UNDEFINED))]
    return inputs, deps, elsewhere, unseen


def _stored_with_input(root: Any) -> bool:
    """Return True when data read under an input's name is stored with it: a change to it changes the input,
    which the cell's entry holds; a module's or function's data is not (``_UNDEFINED``: no input)."""
    return root is not _UNDEFINED and not isinstance(root, (types.ModuleType, types.FunctionType))


def _root(label: str) -> str:
    """Return the name a dependency's label starts with (``umod`` of ``umod.REGISTRY``, ``cfg`` of ``cfg[0]``)."""
    end = len(label)
    for mark in ".[":
        at = label.find(mark)
        if at >= 0:
            end = min(end, at)
    return label[:end]


def _left_out(label: str, inputs: dict[str, Any], deps: Dependencies) -> None:
    """Refuse a cell input that cannot be hashed; warn once of what else is left out of the key.

    Such an input is to the cell what an argument is to a function. What the code it calls reads
    (a helper's global lock or connection) is left out with a warning, as for a memoized function.
    """
    for what, reason in deps.skipped.items():
        if what in inputs:
            raise UnhashableArgument(f"the cell input '{what}'", inputs[what], reason,
                                     leave_out="%%memo --inputs a,b listing the inputs that matter")
    for what in deps.handles:
        if what in inputs:  # as before: the cell's own input, refused like one that cannot be hashed
            raise UnhashableArgument(f"the cell input '{what}'", inputs[what], "it is an open handle (a file, a "
                                     "connection), whose content is not a value; open it in the cell instead",
                                     leave_out="%%memo --inputs a,b listing the inputs that matter")
    for what, reason in deps.skipped.items():
        warn_once(f"skipped:cell:{label}:{what}", f"%%memo {label}: '{what}' is left out of the cache key ({reason}), "
                  "so changing it will not run the cell again")


_HISTORIES = frozenset({"Out", "_oh", "In", "_ih"})


def _history_entries(tree: ast.Module) -> dict[str, set[int]]:
    """Return, for each history dict the cell reads only by constant number (``Out[3]``), those numbers."""
    subscripted: dict[str, set[int]] = {}
    whole: set[str] = set()
    parents = {id(child): node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Name) and node.id in _HISTORIES):
            continue
        parent = parents.get(id(node))
        index = parent.slice if isinstance(parent, ast.Subscript) and parent.value is node else None
        if isinstance(index, ast.Constant) and type(index.value) is int:
            subscripted.setdefault(node.id, set()).add(index.value)
        else:
            whole.add(node.id)
    return {name: numbers for name, numbers in subscripted.items() if name not in whole}


class _Undefined:
    pass


_UNDEFINED = _Undefined()


def leading_blank_lines(text: str) -> int:
    """Return how many whitespace-only lines start ``text``: IPython drops them before compiling."""
    lines = text.splitlines(keepends=True)
    return next((i for i, line in enumerate(lines) if not line.isspace()), len(lines))


def _execution_count(shell: Any) -> int:
    """The number of the cell now running (IPython 9 counts the next one from its start)."""
    running = getattr(getattr(shell, "displayhook", None), "exec_result", None)
    count = getattr(running, "execution_count", None)
    return count if isinstance(count, int) else int(shell.execution_count)


def _parse(shell: Any, transformed: str, raw_cell: str, header: str) -> tuple[ast.Module, str]:
    """Parse a cell's code under the name IPython shows as ``Cell In[n]``, numbering its lines as the notebook does."""
    # The magic's own line is line 1, and IPython dropped the blank lines the cell started with.
    offset = "\n" * (1 + leading_blank_lines(raw_cell))
    filename = "<cell>"
    if hasattr(shell, "compile"):
        filename = shell.compile.cache(header + offset + transformed, _execution_count(shell),
                                       raw_code=header + "\n" + raw_cell)
    return ast.parse(offset + transformed, filename), filename


def prepare(shell: Any, raw_cell: str, options: CellOptions,
            header: str = "%%memo") -> tuple[CellCall, ast.Module, str]:
    """Analyse a cell and build its key."""
    __tracebackhide__ = True  # a refusal (an input that cannot be hashed) shows the cell's line first
    transformed = shell.transform_cell(raw_cell)
    tree, filename = _parse(shell, transformed, raw_cell, header)
    analysis = analyse(tree, shell.user_ns)
    digest = combine([b"cell", normalised_source(tree)])
    label = options.name or f"{digest.hex()[:12]}"
    cell = _cells.get(label)
    if cell is None or cell.source_digest != digest:
        cell = CellMemo(label, digest)
        _cells[label] = cell
    cell.ttl = options.ttl
    cell._options = options
    cell.notebook = current_notebook()
    code = compiled = compile(tree, "<cell>", "exec", flags=compile_flags(shell), dont_inherit=True)  # as it runs
    walks: dict[int, tuple[Any, Any]] = {}  # what hashing each input met: which of them share objects
    outer_walks, things_met.walks = getattr(things_met, "walks", None), walks
    try:
        inputs, deps, elsewhere, unseen = _resolve_inputs(analysis, tree, code, shell.user_ns, options.inputs)
    finally:
        things_met.walks = outer_walks
    unknown = None if options.inputs is not None else _unknown_reads(tree, shell.user_ns)
    if unknown is None:  # else it runs unstored, whatever its key
        _left_out(label, inputs, deps)
    _read_environment(code, shell.user_ns, label, deps, options)
    if "settings of torch" in deps.parts:  # what the cell's torch calls run under: grad mode, autocast...
        deps.parts["modes of torch"] = ("settings", torch_modes().encode())
    # The library's own rules too: an entry another version made may lack what these would record.
    code = combine([digest, rules_digest().encode()] + [
        f"{label}\0{kind}".encode() + d for label, (kind, d) in sorted(deps.parts.items())
        if kind in ("code", "package", "missing")])
    arguments = {label: d for label, (kind, d) in deps.parts.items() if kind == "value"}
    # Which inputs are one object or share memory (b = a, X_head = X_all[:2]): a cell that changes one in place
    # sees it in the other, so it is not the cell with copies of the same contents. In name order: not the order
    # the cell reads them. [] (the key as before) when none is shared.
    shared = aliasing_parts([value for name, value in sorted(inputs.items()) if value is not _UNDEFINED], walks)
    extras = {SHARED_INPUTS: xxhash.xxh3_64_hexdigest(shared[0])} if shared else {}
    key = combine([b"cell1", cell.function_id.encode(), code, deps.digest(), *shared]).hex()
    call = Call(key, arguments, code, digest, Dependencies(
        {k: v for k, v in deps.parts.items() if v[0] != "value"}, deps.skipped, deps.clock, deps.handles,
        deps.connections), "source",
        extras=extras, unseen=unseen)
    cell.last_call = call
    return CellCall(cell, call, inputs, analysis, unknown, _shell_magics(tree), elsewhere, compiled), tree, filename


_DYNAMIC = frozenset({"eval", "exec", "globals", "get_ipython"})  # names that read the notebook's namespace
# A frame got for its f_code or f_lineno reads no names: only what reaches its namespace counts.
_FRAME_READS = frozenset({"f_globals", "f_locals", "__globals__", "user_ns", "user_global_ns", "getargvalues",
                          "get_ipython"})
# Magics that read no notebook names but set the shell's state (its extensions, settings, plotting backend): a
# hit runs them again, as lines at the cell's top level with a constant text.
_QUIET_MAGICS = frozenset({"config", "matplotlib", "load_ext", "reload_ext", "autoreload", "aimport"})


def _quiet_magic(node: ast.AST) -> tuple[str, str] | None:
    """Return the name and line of ``get_ipython().run_line_magic(name, line)`` for a magic of _QUIET_MAGICS
    given a constant line that names no variable ({x}, $x); None for other code."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "run_line_magic" and isinstance(node.func.value, ast.Call)
            and isinstance(node.func.value.func, ast.Name) and node.func.value.func.id == "get_ipython"
            and len(node.args) == 2 and not node.keywords):
        return None
    name, line = (arg.value if isinstance(arg, ast.Constant) else None for arg in node.args)
    if name not in _QUIET_MAGICS or not isinstance(line, str) or "{" in line or "$" in line:
        return None
    return str(name), line


def _shell_magics(tree: ast.Module) -> list[tuple[str, str]]:
    """Return the shell-state magics on lines of the cell's own top level, in order (a hit runs them again)."""
    return [found for node in tree.body if isinstance(node, ast.Expr)
            and (found := _quiet_magic(node.value)) is not None]


def _unknown_reads(tree: ast.Module, namespace: dict[str, Any]) -> str | None:
    """Say how the cell reads names its code does not show (a magic or shell command, eval, globals(),
    a frame's globals, a query text computed at run time), if it does."""
    # A node comes before the nodes inside it: a call is seen before the names it is made of.
    allowed: set[int] = set()  # get_ipython() of the magics that read no names (%config, %matplotlib)
    explicit: set[int] = set()  # eval(text, {...}): it reads the namespaces it is given
    resolver = Resolver(tree, namespace)
    for node, top in _nodes(tree):
        shown = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                isinstance(node.func.value, ast.Call) and isinstance(node.func.value.func, ast.Name) and \
                node.func.value.func.id == "get_ipython":
            attr = node.func.attr
            first = node.args[0] if node.args else None
            name = first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else ""
            if attr == "run_line_magic" and name in _QUIET_MAGICS:
                if not any(node is line.value for line in tree.body if isinstance(line, ast.Expr)) \
                        or _quiet_magic(node) is None:
                    return (f"it runs the magic %{name} inside other code or on a line that names a variable, "
                            "which a hit could not run again. Put it on a line of its own with a constant text, "
                            "or in another cell")
                allowed.add(id(node.func.value.func))
                continue
            what = (f"the magic %{name}" if attr == "run_line_magic" and name else
                    f"the magic %%{name}" if attr == "run_cell_magic" and name else
                    "a shell command (!...)" if attr in ("system", "getoutput") else f"get_ipython().{attr}")
            return (f"it runs {what}, whose code reads names this cell's code does not show. Move it to another "
                    "cell, or list the cell's inputs with %%memo --inputs a,b")
        found = evaluated_text(node, resolver) if isinstance(node, ast.Call) else None
        if found is not None and constant_text(*found) is None and not _not_text(found[0], namespace) \
                and not _chained_text(node, found, resolver):
            assert isinstance(node, ast.Call)
            return (f"it passes {_spelling(node.func)}(...) a text computed at run time, whose names it reads from "
                    "the notebook. Write the text out in the call, or list the cell's inputs with %%memo --inputs a,b")
        elsewhere = elsewhere_evaluator(node, resolver)
        if elsewhere is not None:
            assert isinstance(node, ast.Call)
            return (f"it passes {_spelling(node.func)}(...) a text whose names are read from the globals of "
                    f"{elsewhere}, where that method is defined, which a cell does not key. Call the frame's query "
                    "with the text written out in the cell, or pass the values to the method as arguments")
        computing = computing_method(node, resolver)
        if computing is not None:
            return (f"it calls {computing}(), which evaluates a text it makes at run time, whose names it reads "
                    "from the notebook. Write the text out in the method, or list the cell's inputs with %%memo "
                    "--inputs a,b")
        bound = bound_evaluator(node, resolver)
        if bound is not None:
            return (f"it binds {bound} to a name, whose calls read the @names of their texts from the notebook, "
                    f"which is not followed. Call {bound}(...) with the text written out, or list the cell's inputs "
                    "with %%memo --inputs a,b")
        evaluator = held_partial_evaluator(node, resolver)
        if evaluator is not None:
            return (f"it reads {ast.unparse(node)}, a functools.partial of {evaluator}, whose text's names are read "
                    f"from the notebook, which is not followed. Call {evaluator} itself with the text written out, or "
                    "list the cell's inputs with %%memo --inputs a,b")
        called = _reader(node.func, resolver) if isinstance(node, ast.Call) else None
        if isinstance(node, ast.Call) and called in ("eval", "exec") and _namespace_given(node):
            explicit.add(id(node.func))
        elif isinstance(node, ast.Call) and called in ("vars", "dir") and not node.args and not node.keywords and top:
            shown = f"{_spelling(node.func)}()"  # at top level, the notebook's names
        elif isinstance(node, (ast.Name, ast.Attribute)) and isinstance(node.ctx, ast.Load) \
                and id(node) not in allowed | explicit:
            reader = _reader(node, resolver)
            if (isinstance(node, ast.Attribute) and node.attr in _FRAME_READS) or reader in _DYNAMIC \
                    or (reader == "locals" and top):
                shown = _spelling(node)
        elif isinstance(node, ast.Subscript) and _names_main(node.slice):
            shown = "sys.modules['__main__']"
        elif isinstance(node, (ast.Subscript, ast.Call)):
            key = _module_looked_up(node)
            if key is not None and (_names_main(key, own=True) or not isinstance(key, ast.Constant)):
                shown = f"sys.modules[{ast.unparse(key)}]"  # the notebook's module, or perhaps
        if shown:
            return (f"it reads the notebook through {shown}, so what it reads is not known. List its inputs with "
                    "%%memo --inputs a,b")
    return None


def _reader(node: ast.expr, resolver: Resolver) -> str | None:
    """Return which builtin that reads the notebook's namespace (``eval``, ``globals``, ``get_ipython``...) a name or
    attribute chain refers to, under any spelling: ``eval``, ``bi.eval``, ``__builtins__.eval``, ``ev`` bound to
    eval in an earlier cell; else None."""
    if isinstance(node, ast.Name) and (node.id in _DYNAMIC or node.id in NAMESPACE_READERS):
        return node.id  # by name, whatever the notebook binds to it: read where it holds the builtin
    if not isinstance(node, (ast.Name, ast.Attribute)):
        return None
    if isinstance(node, ast.Attribute) and node.attr in _DYNAMIC and \
            isinstance(node.value, ast.Name) and node.value.id == "builtins":
        return node.attr
    return namespace_reader(*resolver.resolve(node))


def _spelling(node: ast.expr) -> str:
    """Return how the code spells a called name, for a message: ``eval``, ``bi.eval``, ``STORE.box.q``, ``.query``
    (an attribute of anything but a chain of names)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = node.value
        while isinstance(base, ast.Attribute):
            base = base.value
        return ast.unparse(node) if isinstance(base, ast.Name) else f".{node.attr}"
    return "a call"


def _namespace_given(node: ast.Call) -> bool:
    """Return True when ``eval``/``exec`` is given the namespace it reads (``None`` means the notebook's)."""
    given = node.args[1] if len(node.args) >= 2 else next((k.value for k in node.keywords if k.arg == "globals"), None)
    return given is not None and not (isinstance(given, ast.Constant) and given.value is None)


def _names_main(node: ast.expr, own: bool = False) -> bool:
    """Return True for ``"__main__"`` (and, with ``own``, ``__name__``): the notebook's module."""
    return (isinstance(node, ast.Constant) and node.value == "__main__") or \
        (own and isinstance(node, ast.Name) and node.id == "__name__")


def _module_looked_up(node: ast.Subscript | ast.Call) -> ast.expr | None:
    """Return the key of ``sys.modules[key]`` or ``sys.modules.get(key)``; None for other code."""
    if isinstance(node, ast.Subscript):
        modules, key = node.value, node.slice
    elif isinstance(node.func, ast.Attribute) and node.func.attr == "get" and node.args:
        modules, key = node.func.value, node.args[0]
    else:
        return None
    return key if isinstance(modules, ast.Attribute) and modules.attr == "modules" else None


def _chained_text(node: ast.AST, found: tuple[ast.expr, bool], resolver: Resolver) -> bool:
    """Return True for a call through an attribute chain of objects other than modules (``STORE.box.q(TEXT)``)
    given a text a notebook variable holds, whose ``@names`` the cell's analysis keys as inputs wherever it is
    passed: such a call stays stored, as it was before those chains were followed."""
    text, every = found
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
        resolver.past_modules(node.func.value) and not every and isinstance(text, ast.Name) and \
        isinstance(resolver.held(text), str)


def _not_text(node: ast.expr, namespace: dict[str, Any]) -> bool:
    """Return True when an argument is a notebook variable holding no text (``session.query(User)``)."""
    return isinstance(node, ast.Name) and not isinstance(namespace.get(node.id, ""), str)


def _nodes(tree: ast.Module) -> Iterator[tuple[ast.AST, bool]]:
    """Yield every node of the cell, with whether it lies at the cell's top level (outside functions)."""
    stack: list[tuple[ast.AST, bool]] = [(tree, True)]
    while stack:
        node, top = stack.pop()
        yield node, top
        inner = top and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        stack.extend((child, inner) for child in ast.iter_child_nodes(node))


def _read_environment(code: types.CodeType, namespace: dict[str, Any], label: str, deps: Dependencies,
                      options: CellOptions) -> None:
    """Key the environment variables and process state (the current folder...) the cell's own code reads; warn
    once if it reads the clock."""
    found = code_environment(code, namespace, "the cell")
    for name, value in found.variables.items():
        deps.parts[f"env {name}"] = ("env", b"\0unset" if value is None else value.encode())
    if found.whole:
        deps.parts[WHOLE_ENVIRONMENT] = ("env", environment_digest())
    for what, text in found.state.items():
        deps.parts[what] = ("settings", text.encode())
    deps.skipped.update(found.skipped)
    for what, reason in found.skipped.items():
        warn_once(f"skipped:cell:{label}:{what}", f"%%memo {label}: '{what}' cannot be keyed ({reason}); it is left "
                  "out of the cache key, so changing it will not run the cell again")
    warn_entropy(found, f"%%memo {label}")
    deps.clock = clock_reads(deps.clock + found.clock)
    if deps.clock and options.ttl is None:
        warn_once(f"clock:cell:{label}", f"%%memo {label}: the cell reads the clock ({', '.join(deps.clock[:3])}): "
                  "its restored results will not change as time passes. Add --ttl (for example --ttl 6h) to run "
                  "it again after a while.")


def _namespace_snapshot(namespace: dict[str, Any], own: frozenset[str]) -> dict[str, int]:
    return {name: id(value) for name, value in namespace.items() if _the_cells(name, own)}


def run_cell(shell: Any, raw_cell: str, options: CellOptions, header: str = "%%memo") -> Any:
    """Run a ``%%memo`` cell: restore it from the cache, or run it and store what it made.

    ``header`` is the magic's line, shown above the cell's code in tracebacks.
    """
    __tracebackhide__ = True  # an error raised in the cell shows the cell's frames, not ours
    # Our lookups and writes are not what a body reads: one another thread runs, when this is not the main
    # thread (this one is then taken to work for it). The cell's own run is recorded for the cell alone.
    with _conditions.paused():
        cell_call, tree, filename = prepare(shell, raw_cell, options, header)
    off = _config.disabled_by_env()  # %memo off, or NOTEBOOK_MEMO_DISABLE
    if cell_call.unknown and not off:  # run as a plain cell is: what it reads is seen as a plain cell's
        result = execute(shell, tree, filename)
        cell_call.cell.misses += 1
        cell_call.cell.last_hit = False
        _not_stored(cell_call.cell, cell_call.unknown)
        return result
    with _conditions.paused():
        return _run_cell(shell, cell_call, tree, filename, options, off)


def _run_cell(shell: Any, cell_call: CellCall, tree: ast.Module, filename: str, options: CellOptions,
              off: bool) -> Any:
    """Restore the prepared cell from the cache, or run it and store what it made (``off``: run it only)."""
    __tracebackhide__ = True
    cell, call = cell_call.cell, cell_call.call
    store = cell._store()
    unusable = None  # why an entry found under the key could not be restored
    if not options.refresh and not off:
        restored = _try_restore(shell, store, cell, call.key, options, filename, cell_call.magics)
        if not isinstance(restored, _NotCached):
            return restored
        unusable = restored.reason
    # Asked before the run overwrites the entry, which explain_last could no longer see.
    cell.miss_report = (caching_off(cell.qualified_name) if off
                        else Explanation(cell.qualified_name, False, unusable) if unusable
                        else before_compute(cell, call, "%%memo --refresh" if options.refresh else None))  # type: ignore[arg-type]
    cell.last_hit = False
    namespace = shell.user_ns
    analysis = cell_call.analysis
    own = _own_dunders(analysis)
    before = _namespace_snapshot(namespace, own)
    # `limit: int = 5` adds to the namespace's __annotations__ (the shell's dict): the entries a run adds or
    # replaces are stored, and a hit adds them as the run did.
    annotations_before = _annotations(namespace)
    caches: dict[int, frozenset[str]] = {}  # the pandas caches the inputs hold: entries the run fills are no change
    outer_caches, things_met.caches = getattr(things_met, "caches", None), caches
    try:
        input_digests = {name: _digest_or_none(value) for name, value in cell_call.inputs.items()}
    finally:
        things_met.caches = outer_caches
    skeletons = {name: skeleton(value) for name, value in cell_call.inputs.items()}
    # What the user modules the cell reads bind now: a helper of theirs may load a model on first use.
    modules_before = bindings([value for value in cell_call.inputs.values() if _by_reference(value)])
    # For a cell known to change inputs that a hit binds to copies: the names holding part of its inputs now,
    # which a hit may leave holding those objects, as the run (which replaces them there) leaves them too.
    watched = sorted(cell.rebinds & cell_call.inputs.keys())
    held_before = holders(_user_names(namespace), watched, skip=namespace) if watched and not off else None
    maybe = {name: _digest_or_none(namespace[name])
             for name in {*analysis.maybe_binds, *analysis.maybe_inputs, *analysis.loop_inputs}
             if name in namespace and _the_cells(name, own)}
    recorder = _conditions.Recorder()
    apply_unseen(recorder, call.unseen)
    for files in call.deps.handles.values():  # read through a helper's global handle, opened before the run
        for path in files:
            recorder.read_handle(path)
    for label, connection in call.deps.connections.items():
        recorder.read_connection(label, connection)
    # Data held elsewhere is excused a functools.cached_property the run fills while the value stays as filled
    recorder.fill_owners.update(id(data[1]) for data in cell_call.held_elsewhere)
    start = time.perf_counter()
    try:
        with capture(shell) as events, _conditions.recording(recorder, ()):
            result = execute(shell, tree, filename)
    except BaseException as exc:
        cell.miss_report = _raised(cell, exc, cell.miss_report)
        raise
    duration = time.perf_counter() - start
    cell.misses += 1
    if off:
        return result
    # A folder the cell listed is stored with its entries' sizes and times when its code, or the notebook's code it
    # uses, reads them (picking the newest file): told after the run, when what it imported or defined is bound
    # too, and from what it read before it; on a miss, so a hit does no more work.
    recorder.sizes = cell_call.code is not None and (_conditions.stats_code(cell_call.code, namespace)
                                                     or _conditions.stats_code(cell_call.code, cell_call.inputs))
    if cell_call.code is not None:  # asked only where a setting changed in a run that imported modules
        recorder.code = functools.partial(_names_reached, cell_call.code, (namespace, cell_call.inputs))
    after = _namespace_snapshot(namespace, own)
    missing = [name for name in options.outputs or () if name not in namespace]
    if missing:  # the run stands; an entry without them would restore less than it made
        _not_stored(cell, f"--outputs names {', '.join(map(repr, missing))}, which the cell did not bind. "
                    "Correct the list")
        return result
    if options.outputs is not None:  # an input changed in place is an output, whatever the list says
        unlisted = sorted(name for name, digest in input_digests.items() if name not in options.outputs
                          and name in namespace and after.get(name) == before.get(name) and digest is not None
                          and not _same_state(namespace[name], digest, caches))
        if unlisted:
            _not_stored(cell, f"it changed {unlisted[0]!r} in place, which --outputs leaves out, so a hit would leave "
                        "it as it was. Add it to --outputs")
            return result
    elsewhere = changed_in_place(cell_call.held_elsewhere, recorder.fills)
    if elsewhere:
        _not_stored(cell, f"it changed {elsewhere!r} in place (it is not what it was before the run), which a hit "
                    "could not do again. Make that change in a cell of its own")
        return result
    # Names the cell binds on some paths only. One still the same object after the run may or
    # may not have been rebound, so the run may have read the notebook's value; one read inside a
    # loop that binds it may have been read on an early pass. Either way a restore requires its
    # value from before this run (else the cell runs). One rebound after the run and read after
    # that path, or absent before the run, needs nothing: a read before its binding would
    # have seen the value this run replaced, or failed. One read there and gone after the run may
    # have been read and deleted (`z = x; del x`) rather than rebound: it needs its value too.
    unchanged = {name: digest for name, digest in maybe.items()
                 if name in analysis.loop_inputs or after.get(name) == before.get(name)
                 or (name in analysis.maybe_inputs and name not in after)}
    unverifiable = sorted(name for name, digest in unchanged.items() if digest is None)
    left_alone = {name for name, digest in maybe.items() if after.get(name) == before.get(name)
                  and digest is not None and _same_state(namespace[name], digest, caches)}
    outputs = [name for name in _outputs(options, cell_call, before, after, input_digests, namespace, caches)
               if name not in left_alone]
    # Inputs changed in place, still the same objects: a hit restores them into the live objects when
    # every one of them can be restored exactly (else it binds them all, as the run left them together).
    in_place = [name for name in outputs if name in input_digests and after.get(name) == before.get(name)]
    loaded: dict[str, Any] = {}  # globals a user module's own code loaded on first use: label -> value
    for name in [name for name in in_place if _by_reference(namespace[name])]:
        first_use = _loaded_on_first_use_only(namespace[name], input_digests[name], modules_before)
        if first_use is None:
            _not_stored(cell, f"it changed {name!r} in place, and a hit would restore it as imported anew, without "
                        "the change. Make that change in a cell of its own")
            return result
        # Its module, imported anew, loads them again when next used: it is no output of the cell.
        loaded.update(first_use)
        in_place.remove(name)
        outputs.remove(name)
    holding = _holding_loaded(loaded, outputs, namespace)
    if holding:
        _not_stored(cell, holding)
        return result
    rebinds: list[str] = []  # inputs changed in place that a hit binds to their restored copies
    if in_place and not _restored_in_place(in_place, skeletons, outputs, namespace):
        # Bound to the restored copies, they must take along every other name holding part of them: one the
        # cell reads (its state before is in the key) is restored with them; one it does not read cannot be.
        linked = holders(_user_names(namespace), in_place, skip=namespace)
        reason = _unrestorable(linked, {*input_digests, *outputs}, in_place)
        if reason:
            _not_stored(cell, reason)
            return result
        outputs = sorted({*outputs, *(linked or ())})
        rebinds = sorted({*in_place, *(linked or ())})
        in_place = []
        if not set(rebinds) <= set(watched):
            held_before = None  # who held the others before this run is not known
        cell.rebinds = frozenset(rebinds)
    if not _detached_unheld(cell, cell_call.inputs, input_digests, namespace, before, after, caches):
        return result
    part, parts = _part_of_input(cell_call.inputs, outputs, namespace, tree)
    if part:
        _not_stored(cell, part)
        return result
    # Names the notebook had, or the cell bound, that the run left unbound (`tmp = ...; del tmp`, `except E as e`).
    deleted = sorted(name for name in {*before, *analysis.binds} if name not in after
                     and _the_cells(name, own))
    annotations_after = _annotations(namespace)
    payload_value = {
        "outputs": {name: namespace[name] for name in outputs if name in namespace and name not in parts},
        "parts": parts,
        "deleted": deleted,
        "events": events,
        "result": result,
        "unchanged": unchanged,
        "in_place": in_place,
        "rebinds": rebinds,
        "held_before": sorted(held_before) if held_before is not None else None,
        "own": sorted(own),
        "listed": sorted(options.outputs) if options.outputs is not None else None,  # see _other_outputs
        # Loaded by the run, they are imported again before a hit restores the names they hang from.
        "imports": [module for module in analysis.imports if module in sys.modules],
        "annotations": {name: value for name, value in annotations_after.items()
                        if annotations_before.get(name, _UNDEFINED) is not value or name in _annotated(tree)},
    }
    unknown_handle = next((label for label, files in call.deps.handles.items() if not files), None)
    if unknown_handle is not None:
        _not_stored(cell, f"the code it calls reads {unknown_handle!r}, which is or holds an open handle (a file, a "
                    "connection, a buffer) whose files cannot be told, or that may be written through, so what is "
                    "read through it is in no key. Pass the file's path instead, and open it where it is read")
        return result
    code_in = recorder.code_in_connections() if call.deps.connections else None
    if code_in is not None:
        _not_stored(cell, f"the code it calls reads {code_in[0]!r}, an SQLite connection {code_in[1]}, and what that "
                    "code computes inside its queries is in no key. Register it (or set the pragma) on a connection "
                    "opened where it is read, or compute it in Python from the rows")
        return result
    change = recorder.process_change()
    if change is None:
        change = cell.changes_process
    if change is not None:
        if change:  # "": a setting changed while modules were first imported, perhaps by them: unsaid
            if not keys_variables(call.deps.parts, recorder.variables_changed):  # else keyed: see _changed_process
                cell.changes_process = change
            _not_stored(cell, f"it {change}. Make that change in a cell of its own")
        return result
    if unverifiable:
        _not_stored(cell, f"it binds {unverifiable[0]!r} on some paths only, so whether a run uses or replaces "
                    "the notebook's value is checked by content, and that value cannot be hashed. Bind it on every "
                    "path, or give its class __memo_key__.",
                    once=f"unverifiable:{cell.qualified_name}:{unverifiable[0]}")
        return result
    try:
        where = entry_conditions(store, call.key, recorder)
    except _conditions.NotRecordable as exc:
        _not_stored(cell, f"{exc}.", once=f"unrecordable:{cell.qualified_name}:{exc}")
        return result
    warn_random_result(f"%%memo {cell.label}", cell.qualified_name, recorder, "run it without %%memo")
    # Inputs the run left as they were, which outputs may hold (`b = a`, `Pipeline([("clf", clf)])`): saved by
    # name, so that a hit makes the outputs hold the notebook's objects, as the run did, rather than copies.
    kept: dict[int, str] = {}
    shared: set[int] = set()  # held by two names (a = c): which one a hit should hold is not known
    for name, value in cell_call.inputs.items():
        if name not in payload_value["outputs"] and name in namespace and namespace[name] is value \
                and type(value) not in IMMUTABLE_LEAVES:
            if id(value) in kept:
                shared.add(id(value))
            kept[id(value)] = name
    kept = {ident: name for ident, name in kept.items() if ident not in shared}
    _store_cell(store, cell, call, payload_value, duration, options, where, kept)
    if _config.call_verbosity(None) and not options.quiet:
        _config.announce(f"%%memo {options.name or 'cell'}: computed in {_config.human_seconds(duration)}")
    return result


def _part_of_input(inputs: dict[str, Any], outputs: list[str], namespace: dict[str, Any], tree: ast.Module,
                   ) -> tuple[str | None, dict[str, tuple[str, tuple[Step, ...], bytes]]]:
    """Return the outputs the cell bound to part of an input it left unchanged by a constant path (``cfg =
    CONFIG["train"]``, ``first = arr[0]``): name -> (input, path, digest), which a hit follows on the live input.
    Also say why the cell cannot be stored when another output holds part of such an input (``X[::2][::-1]``,
    ``cfg.get("layers")``): a hit keeps whole inputs as the notebook's objects, but would make that part a copy."""
    kept = {name: value for name, value in inputs.items() if name not in outputs and namespace.get(name) is value
            and type(value) not in IMMUTABLE_LEAVES}
    fresh = {name: namespace[name] for name in outputs if name not in inputs and name in namespace}
    if not kept or not fresh:
        return None, {}
    parts: dict[str, tuple[str, tuple[Step, ...], bytes]] = {}
    for name, (root, steps) in constant_paths(tree).items():
        if name in fresh and root in kept:
            try:
                found = follow(kept[root], steps)
            except NoPath:
                continue
            digest = _digest_or_none(fresh[name])
            if digest is not None and same_part(found, fresh[name]):
                parts[name] = (root, steps, digest)
    rest = {name: value for name, value in fresh.items() if name not in parts}
    held = held_part(rest, kept) if rest else None
    if held is None:
        return None, parts
    if not held[0]:
        return "its outputs and inputs are too many objects to tell whether an output is part of an input", {}
    output, input_name = held
    return (f"{output!r} is part of {input_name!r} (an object inside it, or a view of its memory), reached by no "
            f"constant path from it, which a hit would restore as a copy. Bind {output!r} to {input_name!r} "
            f"indexed by constant keys (x = {input_name}['key'], x = {input_name}[0], x = {input_name}.attr), make "
            "it a copy in the cell (.copy(), list(...)), or bind it in another cell"), {}


def _live_parts(parts: Any, namespace: dict[str, Any]) -> dict[str, Any] | str:
    """Return the parts of the notebook's inputs that a stored run's outputs were (name -> the live object), by
    following each recorded path again; or say why one cannot be (the cell then runs)."""
    found: dict[str, Any] = {}
    for name, (root, steps, digest) in parts.items():
        where = root + "".join(f".{key}" if kind == "." else f"[{key!r}]" for kind, key in steps)
        try:
            value = follow(namespace[root], steps)
        except (KeyError, NoPath):
            return f"{where}, which {name!r} was, is not there: the cell runs"
        if _digest_or_none(value) != digest:
            return f"{where}, which {name!r} was, is not as it was: the cell runs"
        found[name] = value
    return found


def _loaded_on_first_use_only(value: Any, digest: bytes | None,
                              modules_before: dict[int, dict[str, Any]]) -> dict[str, Any] | None:
    """Return the globals (label -> value now) the run bound in the module of ``value`` (an input imported by
    reference whose digest changed), when the module's own code loaded them on first use and nothing else of
    the module changed; else None."""
    before = loaded_on_first_use(value, modules_before)
    if before is None or digest is None:
        return None
    with bound_as_before(value, before):  # the module as it was, but for what it loaded: as the key saw it
        same = _digest_or_none(value) == digest
    if not same:
        return None
    module = vars(home_module(value))  # type: ignore[arg-type]
    return {f"{module['__name__']}.{name}": module[name] for name in before}


def _holding_loaded(loaded: dict[str, Any], outputs: list[str], namespace: dict[str, Any]) -> str | None:
    """Say why an output holding part of what a module loaded on first use cannot be stored: a hit would make
    it a copy, while the module, imported anew, loads its own."""
    for name in outputs:
        if name in namespace and loaded and shares({name: namespace[name]}, loaded):
            label = min(loaded)
            return (f"{name!r} holds part of {label!r}, which the module's code loaded on first use: a hit would "
                    f"restore {name!r} as a copy, apart from what the module loads again. Call the helper that loads "
                    f"it in another cell, or make {name!r} a copy in the cell")
    return None


def _by_reference(value: Any) -> bool:
    """Return True for a module, or a class or function of one, which is stored by its name: a hit imports it."""
    if isinstance(value, types.ModuleType):
        return True
    return isinstance(value, (type, types.FunctionType)) and getattr(value, "__module__", "__main__") != "__main__"


def _names_reached(code: types.CodeType, namespaces: tuple[dict[str, Any], ...],
                   wanted: Callable[[frozenset[str]], bool]) -> bool:
    """Return True when the names of a cell's ``code``, or of the user's code it reaches through ``namespaces`` (the
    notebook's, then the cell's inputs), are ``wanted``."""
    return any(_conditions.code_reaches(code, namespace, wanted) for namespace in namespaces)


def _raised(cell: CellMemo, exc: BaseException, before: Explanation | None) -> Explanation:
    """Return the report on a run that raised: what it raised, and why it ran at all when known."""
    summary = f"it raised {_config.describe_error(exc)}, so nothing was stored"
    if before is None:
        return Explanation(cell.qualified_name, False, summary)
    return Explanation(cell.qualified_name, False, f"{summary}; {before.summary}", before.reasons, before.unkeyed)


def _digest_or_none(value: Any) -> bytes | None:
    try:
        return content_hash(value)
    except UnhashableArgument:
        return None


def _same_state(value: Any, digest: bytes | None, caches: dict[int, frozenset[str]]) -> bool:
    """Return True when ``value`` still has ``digest``, or differs from it only by entries pandas objects in it
    filled into their caches since (``caches``: the entries they held then, by id), as a GroupBy's first
    aggregation does: such an input is not changed in place."""
    if _digest_or_none(value) == digest:
        return True
    if not caches or digest is None:
        return False
    try:
        return content_hash(value, caches=caches) == digest
    except UnhashableArgument:
        return False


def _detached_unheld(cell: CellMemo, inputs: dict[str, Any], digests: dict[str, bytes | None],
                     namespace: dict[str, Any], before: dict[str, int], after: dict[str, int],
                     caches: dict[int, frozenset[str]]) -> bool:
    """Return False, warning once, when the cell changed an input in place and then rebound or deleted its name
    (``a.append(1); a = a + [2]``) while another name holds that object: a hit would leave it unchanged."""
    for name, value in inputs.items():
        if name not in digests or after.get(name) == before.get(name) or digests[name] is None:
            continue
        if sys.getrefcount(value) <= 3:  # held by the inputs, this loop and the call alone: by no other name
            continue
        if _same_state(value, digests[name], caches):
            continue  # rebound, its old object untouched
        others = {n: v for n, v in _user_names(namespace).items() if n != name}
        held = holders({**others, "\0old": value}, ["\0old"], skip=namespace)
        if held is None or held:
            who = f"{sorted(held)[0]!r} holds it" if held else "too many objects to tell who holds it"
            _not_stored(cell, f"it changes {name!r} in place and then binds the name anew, and {who}: a hit would "
                        "leave it unchanged")
            return False
    return True


def _not_stored(cell: CellMemo, reason: str, once: str | None = None) -> None:
    """Say once (per ``once``, else per reason), and in the cell's explanation, why its run was not stored
    (it runs each time)."""
    warn_once(once or f"not-stored:{cell.qualified_name}:{reason}", f"%%memo {cell.label}: not cached, so the cell "
              f"runs each time: {reason}", StorageWarning)
    cell.miss_report = Explanation(cell.qualified_name, False, f"it runs each time, unstored: {reason}")


def _annotations(namespace: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of the namespace's ``__annotations__`` (empty where it has none)."""
    found = namespace.get("__annotations__")
    return dict(found) if isinstance(found, dict) else {}


def _annotated(tree: ast.Module) -> set[str]:
    """Return the names the cell's own annotations name (``limit: int = 5``), in blocks at its top level too: an
    entry the run made the same as the notebook's was (``int`` again) is its still."""
    found: set[str] = set()
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.simple:
            found.add(node.target.id)
        elif not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.expr)):
            stack.extend(ast.iter_child_nodes(node))
    return found


def _add_annotations(namespace: dict[str, Any], added: Any) -> None:
    """Add the annotations a run added (``limit: int = 5``) to the namespace's, made as Python makes it."""
    if not isinstance(added, dict) or not added:
        return
    found = namespace.get("__annotations__")
    if not isinstance(found, dict):
        found = namespace["__annotations__"] = {}
    found.update(added)


def _user_names(namespace: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in namespace.items() if not _is_shell_name(name)}


def _restored_in_place(in_place: list[str], skeletons: dict[str, Any], outputs: list[str],
                       namespace: dict[str, Any]) -> bool:
    """Return True when a hit can copy each input the run changed in place into the live object: each is of a
    kind restored exactly, and no output bound anew shares an object with them (it would be a copy)."""
    if not all(restorable(skeletons[name], namespace[name]) for name in in_place):
        return False
    fresh = {name: namespace[name] for name in outputs if name not in in_place and name in namespace}
    return not fresh or not shares(fresh, {name: namespace[name] for name in in_place})


def _unrestorable(linked: set[str] | None, restored: set[str], changed: list[str]) -> str | None:
    """Say why the changed inputs cannot be bound to restored copies with every name holding part of them
    (``restored``: the names a hit restores, the inputs the key holds the state of included)."""
    what = ", ".join(map(repr, changed))
    if linked is None:
        return (f"it changes {what} in place, and the notebook's variables are too many objects to tell which "
                "others hold part of them")
    unread = sorted(name for name in linked if name not in restored)
    if unread:
        return (f"it changes {what} in place, and {unread[0]!r}, which it does not read, holds part of it: a hit "
                f"could not restore them together. Read {unread[0]!r} in the cell (a line with just its name) "
                "so that both are restored")
    return None


def _outputs(options: CellOptions, cell_call: CellCall, before: dict[str, int], after: dict[str, int],
             input_digests: dict[str, bytes | None], namespace: dict[str, Any],
             caches: dict[int, frozenset[str]]) -> list[str]:
    if options.outputs is not None:
        return list(options.outputs)
    names = set(cell_call.analysis.binds) | set(cell_call.analysis.globals_declared)
    names |= {name for name, ident in after.items() if before.get(name) != ident}
    for name, digest in input_digests.items():
        # An input changed in place (x.append(...), df.loc[...] = ...): its new state is an output.
        if name in namespace and not _same_state(namespace[name], digest, caches):
            names.add(name)
    own = _own_dunders(cell_call.analysis)
    return sorted(n for n in names if n in namespace and _the_cells(n, own))


def _store_cell(store: Store, cell: CellMemo, call: Call, value: dict[str, Any], duration: float,
                options: CellOptions, where: tuple[str, dict[str, Any], list[str] | None],
                kept: dict[int, str] | None = None) -> None:
    defined = frozenset(id(v) for v in value["outputs"].values() if isinstance(v, type))
    try:
        payload = dumps(value, by_value=defined, external=kept)
    except Exception as exc:
        unstorable = _unstorable(value["outputs"], defined, exc)
        names = [name for name in unstorable if name]
        what = (f"variable {names[0]!r}" if len(names) == 1 else f"variables {', '.join(map(repr, names))}"
                if names else "its outputs")
        reasons = "; ".join(f"{name}: {reason}" if len(unstorable) > 1 else reason
                            for name, reason in unstorable.items())
        them = "it" if len(names) < 2 else "them"
        _not_stored(cell, f"{what} cannot be stored ({reasons}). Leave {them} out with --outputs, or create {them} "
                    "in another cell.", once=f"pickle:{cell.qualified_name}:{','.join(names)}")
        return
    meta = {
        "kind": "cell", "name": cell.qualified_name, "label": cell.label, "fid": cell.function_id,
        "code": call.code.hex(), "own": call.own.hex(), "method": "source", "library": rules_digest(),
        "deps": {label: [kind, d.hex()] for label, (kind, d) in call.deps.parts.items()},
        "skipped": [], "args": {name: d.hex() for name, d in call.arguments.items()},
        **({"extras": call.extras} if call.extras else {}),
        "version": "", "created": time.time(), "ttl": options.ttl, "duration": duration,
        "size": payload.nbytes, "outputs": sorted({*value["outputs"], *value.get("parts", ())}),
        **({"notebook": cell.notebook} if cell.notebook else {}),
    }
    with replacing_if(options.refresh):
        save_entry(store, call.key, where, payload, meta, options.ttl, duration, cell.function_id)


# Modules whose objects' attributes the rebinder walks: the notebook's own classes, and the standard containers that
# keep what they hold there (SimpleNamespace, ChainMap's maps, UserDict's and UserList's data).
_WALKED_MODULES = frozenset({"__main__", "types", "collections"})


class _Rebinder:
    """Point functions and methods the cell defined at the live notebook namespace.

    Unpickled by value, they would read a private copy of the globals they used, frozen at
    the time the cell first ran. Functions inside lists, dicts (of any kind, and a defaultdict's
    default factory), deques, ChainMaps, sets, tuples, partials and bound methods are rebound too
    (also as dict keys and inside frozensets), and one function stays one object wherever the cell
    put it.
    """

    def __init__(self, namespace: dict[str, Any], filename: str | None = None) -> None:
        self.namespace = namespace
        self.filename = filename  # the cell's name in this kernel: where their code is (tracebacks, source)
        # The notebook's own objects (outputs may hold the inputs themselves): never looked into or changed.
        self.done: dict[int, Any] = {id(value): value for value in namespace.values()}

    def __call__(self, value: Any) -> Any:
        key = id(value)
        if key in self.done:
            return self.done[key]
        self.done[key] = value  # cycles end here
        result = self._rebind(value)
        self.done[key] = result
        return result

    def _rebind(self, value: Any) -> Any:
        if isinstance(value, types.FunctionType):
            if not _copied(value, self.namespace):
                return value  # a live function of a module, saved by reference
            placed = value
            # Only code compiled in the notebook reads its namespace: a library's wrapper copied by value
            # (contextmanager's helper, a functools.wraps wrapper) keeps its module's globals it carries.
            if value.__globals__.get("__name__") == "__main__":
                placed = _with_globals(value, self.namespace, self.filename)
                self.done[id(value)] = placed  # a default or closure naming the function itself
            self._rebind_inside(placed)
            return placed
        if isinstance(value, (MemoizedFunction, _PerObjectCache)):
            fn = value.__wrapped__
            if isinstance(fn, types.FunctionType):
                placed = self(fn)
                if placed is not fn:
                    value._adopt(placed)  # one object: its cache stays with it
            return value
        if type(value) is _LRU_WRAPPER:
            cached = value.__wrapped__
            rebound = self(cached)
            return value if rebound is cached else lru_cache_of(rebound, dict(value.cache_parameters()))
        if isinstance(value, type):
            if value.__module__ == "__main__":
                for name, attr in list(vars(value).items()):
                    member = self._member(attr)
                    if member is not attr:
                        setattr(value, name, member)
            return value
        if isinstance(value, types.MethodType):  # types.MethodType(fn, obj): its function, on the same object
            func, owner = self(value.__func__), self(value.__self__)
            return value if func is value.__func__ and owner is value.__self__ else types.MethodType(func, owner)
        if type(value).__module__ in _WALKED_MODULES and type(getattr(value, "__dict__", None)) is dict:
            # An object of the notebook's, a namespace or a ChainMap (its maps) holding a function: its attributes,
            # as for a dict.
            attributes = value.__dict__
            for name, attr in list(attributes.items()):
                new = self(attr)
                if new is not attr:
                    attributes[name] = new
        if isinstance(value, dict):  # an OrderedDict, a defaultdict, a dict subclass of the notebook's too
            items = [(self(k), self(v)) for k, v in list(value.items())]
            if any(new_k is not k for (new_k, _), k in zip(items, value)):
                value.clear()  # a key was rebound: rebuild, keeping the order
                value.update(items)
            else:
                for (key, new), old in zip(items, list(value.values())):
                    if new is not old:
                        value[key] = new
            if isinstance(value, collections.defaultdict) and value.default_factory is not None:
                value.default_factory = self(value.default_factory)
        elif isinstance(value, collections.deque):
            members = [self(v) for v in value]
            if any(a is not b for a, b in zip(members, value)):
                value.clear()
                value.extend(members)
        elif type(value) is list:
            value[:] = [self(v) for v in value]
        elif type(value) is set:
            members = [self(v) for v in value]
            value.clear()
            value.update(members)
        elif type(value) in (tuple, frozenset):
            items = [self(v) for v in value]
            if any(a is not b for a, b in zip(items, value)):
                return type(value)(items)
        elif type(value) is functools.partial:
            func = self(value.func)
            if func is not value.func:
                return functools.partial(func, *[self(a) for a in value.args],
                                         **{k: self(v) for k, v in value.keywords.items()})
        return value

    def _rebind_inside(self, fn: types.FunctionType) -> None:
        """Rebind the functions a copied function holds: defaults, closure and attributes (``__wrapped__``)."""
        if fn.__defaults__:  # def g(x, fn=f): the f the notebook has
            fn.__defaults__ = tuple(self(d) for d in fn.__defaults__)
        if fn.__kwdefaults__:
            fn.__kwdefaults__ = {k: self(v) for k, v in fn.__kwdefaults__.items()}
        for cell in fn.__closure__ or ():  # the copy's own cells: a decorated function, a wrapper's target
            try:
                inner = cell.cell_contents
            except ValueError:  # not yet bound
                continue
            new = self(inner)
            if new is not inner:
                cell.cell_contents = new
        attributes = fn.__dict__
        for name, attr in list(attributes.items()):
            new = self(attr)
            if new is not attr:
                attributes[name] = new

    def _member(self, attr: Any) -> Any:
        """Return a class attribute with the functions in it rebound (the same object if none were)."""
        if isinstance(attr, (staticmethod, classmethod)):
            inner = self(attr.__func__)
            return type(attr)(inner) if inner is not attr.__func__ else attr
        if isinstance(attr, property):
            accessors = [self(fn) if fn is not None else None for fn in (attr.fget, attr.fset, attr.fdel)]
            if all(a is b for a, b in zip(accessors, (attr.fget, attr.fset, attr.fdel))):
                return attr
            return property(accessors[0], accessors[1], accessors[2], attr.__doc__)
        if isinstance(attr, functools.cached_property):
            func = self(attr.func)
            return attr if func is attr.func else cached_property_of(func, attr.attrname, attr.__doc__)
        return self(attr)


def _copied(fn: types.FunctionType, namespace: dict[str, Any]) -> bool:
    """Return True for a function unpickled by value: a copy whose globals are its own, not a module's."""
    found = fn.__globals__
    if found is namespace:
        return False
    module = sys.modules.get(found.get("__name__") or "")
    return module is None or getattr(module, "__dict__", None) is not found


def _with_globals(fn: types.FunctionType, namespace: dict[str, Any], filename: str | None = None) -> types.FunctionType:
    code = fn.__code__
    if filename and code.co_filename == _UNPLACED and _defined_in(code, filename):
        code = _placed(code, filename)
    new = types.FunctionType(code, namespace, fn.__name__, fn.__defaults__, fn.__closure__)
    new.__kwdefaults__ = fn.__kwdefaults__
    new.__dict__.update(fn.__dict__)
    new.__qualname__ = fn.__qualname__
    new.__annotations__ = fn.__annotations__
    new.__module__ = fn.__module__
    new.__doc__ = fn.__doc__
    return new


def _unstorable(outputs: dict[str, Any], by_value: frozenset[int], error: Exception) -> dict[str, str]:
    """Return each output variable that cannot be pickled, and why (only called when one cannot).

    If each can be pickled alone, the error is the outputs' together, under the name "".
    """
    found: dict[str, str] = {}
    for name, value in outputs.items():
        try:
            dumps(value, by_value=by_value)
        except Exception as exc:
            found[name] = f"{type(exc).__name__}: {exc}" if not isinstance(exc, NotRestorable) else str(exc)
    return found or {"": f"{type(error).__name__}: {error}"}


@dataclass(frozen=True)
class _NotCached:
    """No cached run can be restored; ``reason`` says why when an entry was found but not usable."""

    reason: str | None = None


_NOT_CACHED = _NotCached()


def _drop_damaged(store: Store, cell: CellMemo, key: str, exc: Exception) -> Any:
    """Say why a cell's entry cannot be used, delete it (the run stores a new one), and run the cell."""
    warn_once(f"corrupt:{key}", f"%%memo {cell.label}: the cached run could not be used ({exc}); "
              "running the cell", StorageWarning)
    with contextlib.suppress(Exception):
        store.delete(key)
    return _NOT_CACHED


_UNPLACED = "<dynamic-code>"  # the file name cloudpickle gives the code it carries


def _defined_in(code: types.CodeType, filename: str) -> bool:
    """Return True when the cell ``filename`` names defines a function of this name (a function from
    another cell that an output holds stays unplaced: its source is not this cell's)."""
    text = "".join(linecache.getlines(filename))
    return ("lambda" in text) if code.co_name == "<lambda>" else f"def {code.co_name}" in text


def _placed(code: types.CodeType, filename: str) -> types.CodeType:
    """Return ``code`` (and the code nested in it) as from ``filename``: its source is found there again, so it
    is keyed by its source as in the kernel that ran the cell, and tracebacks show its lines."""
    consts = tuple(_placed(c, filename) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def _submodules_missing(modules: Any) -> str | None:
    """Import the submodules the stored run imported (``import xml.dom.minidom`` binds ``xml`` alone, which the entry
    restores by name); return why one cannot be, else None."""
    for module in modules if isinstance(modules, list) else ():
        if not isinstance(module, str) or not all(part.isidentifier() for part in module.split(".")):
            continue  # not what a run stores
        try:
            importlib.import_module(module)
        except Exception as exc:  # whatever its import raises: the run raises it where it should
            return f"it imports {module}, which cannot be imported now ({type(exc).__name__}: {exc}): the cell runs"
    return None


def _other_outputs(value: dict[str, Any], listed: list[str] | None) -> str | None:
    """Say why an entry stored under another ``--outputs`` list cannot stand for a run under ``listed``, if it cannot.

    ``--outputs`` is not in the key, since it does not change what the cell computes, only which names its entry
    keeps: an entry that keeps every name the run would store is served (one detection stored, or one of a longer
    list); one that lacks some would leave them unbound, or as an earlier cell left them.
    """
    stored = value.get("listed")
    if listed is None:
        if stored is None:
            return None
        return (f"it was stored under --outputs {','.join(stored)}, which keeps those names only, and this run "
                "stores every name the cell binds: the cell runs")
    kept = set(stored) if stored is not None else {*value["outputs"], *(value.get("parts") or ())}
    missing = sorted(set(listed) - kept)
    if not missing:
        return None
    return (f"it was stored without {', '.join(map(repr, missing))}, which --outputs names now: the cell "
            "runs")


# What every stored run holds; the other entries came later, and an entry written before them lacks them.
_RUN_ENTRIES = frozenset({"outputs", "deleted", "events", "result"})
# Entries that list names, and entries that map names to what the run recorded of them.
_NAME_LISTS = ("deleted", "own", "rebinds", "in_place", "held_before", "imports")
_NAME_MAPS = ("outputs", "unchanged", "parts")


def _names(names: Any) -> bool:
    return isinstance(names, (list, tuple, dict)) and all(type(name) is str for name in names)


def _replayable(event: Any) -> bool:
    """Return whether ``event`` is an output ``replay`` can show: a stream's text, or a display's bundle."""
    if not isinstance(event, (list, tuple)) or not event or type(event[0]) is not str:
        return False
    if event[0] in ("stdout", "stderr"):
        return len(event) > 1 and type(event[1]) is str
    if event[0] in ("display", "update"):
        return (len(event) > 2 and isinstance(event[1], dict) and (event[2] is None or isinstance(event[2], dict))
                and (len(event) < 4 or isinstance(event[3], dict)))
    return True  # of a kind replay passes over


def _like_a_run(value: Any) -> bool:
    """Return whether a cell's loaded record has the form a run stores, in every entry a hit reads.

    Its checks say who wrote it, not what it holds: without a secret, anyone who can write the folder can
    make them, and a hit must not fail half-way, with some names restored, on a record made another way.
    """
    return (type(value) is dict and _RUN_ENTRIES <= value.keys()
            and all(_names(value.get(entry) or ()) for entry in _NAME_LISTS)
            and all(isinstance(value.get(entry) or {}, dict) and _names(value.get(entry) or {}) for entry in _NAME_MAPS)
            and (value.get("annotations") is None or isinstance(value["annotations"], dict))
            and isinstance(value["events"], (list, tuple)) and all(map(_replayable, value["events"])))


def _try_restore(shell: Any, store: Store, cell: CellMemo, key: str, options: CellOptions,
                 filename: str | None = None, magics: list[tuple[str, str]] | None = None) -> Any:
    try:
        record = store.get(key, serving=True)
        conditions: dict[str, Any] = {}
        if record is not None and record.header.conditioned and not record.header.expired():
            record, conditions, _ = conditioned_entry(store, key, record, serving=True)
    except ConfigurationError:
        raise
    except CorruptRecord as exc:
        return _drop_damaged(store, cell, key, exc)
    except Exception as exc:  # the index could not be read (locked, gone): the entry may be fine, so it stays
        storage_unreadable(store, exc, "running the cell")
        return _NOT_CACHED
    if record is None or record.header.expired() or record.header.stale_for(options.ttl):
        return _NOT_CACHED
    try:
        with referring_to(shell.user_ns):  # the inputs its outputs hold, by name: the notebook's objects
            value = record.load()
    except FileNotFoundError:
        return _NOT_CACHED
    except (MemoryError, OSError) as exc:  # not damage: the entry is kept
        warn_once(f"load:{store.directory}:{type(exc).__name__}", f"%%memo {cell.label}: the cached run could "
                  f"not be loaded ({type(exc).__name__}: {exc}); it is kept, and the cell runs", StorageWarning)
        return _NOT_CACHED
    except ClassChanged as exc:  # its run stores what it makes from the class the notebook has now
        with contextlib.suppress(Exception):
            store.delete(key)
        return _NotCached(f"{exc}: the cell runs")
    except Exception as exc:  # damaged, or a stored class that changed or vanished since
        return _drop_damaged(store, cell, key, exc)
    if not _like_a_run(value):
        return _drop_damaged(store, cell, key, CorruptRecord("it does not hold a run of the cell"))
    other = _other_outputs(value, options.outputs)
    if other:
        return _NotCached(other)
    missing = _submodules_missing(value.get("imports") or ())
    if missing:
        return _NotCached(missing)
    namespace = shell.user_ns
    for name, digest in value.get("unchanged", {}).items():
        if digest is None or name not in namespace or _digest_or_none(namespace[name]) != digest:
            return _NotCached(f"{name!r}, a name the cell binds on some paths only, is not as it was when the "
                              "cached run started: the cell runs")
    # A name the shell sets is restored only where the cell bound it itself (entries written before a name counted
    # as the shell's may still hold one otherwise).
    own = frozenset(value.get("own") or ())
    outputs = {name: v for name, v in value["outputs"].items() if _the_cells(name, own)}
    rebinds = [name for name in value.get("rebinds", ()) if name in namespace]
    rebind = _Rebinder(namespace, filename)
    try:
        restored = {name: rebind(v) for name, v in outputs.items()}
    except RecursionError:
        return _NotCached("its outputs are nested too deeply to restore: the cell runs")
    try:
        parts = _live_parts(value.get("parts") or {}, namespace)  # before anything live is changed
    except (TypeError, ValueError) as exc:  # not (root, path, digest) triples: not what a run stores
        return _drop_damaged(store, cell, key, exc)
    if isinstance(parts, str):
        return _NotCached(parts)
    in_place = {name: restored[name] for name in value.get("in_place", ()) if name in restored}
    if in_place:
        if restore_in_place(namespace, in_place, {n: v for n, v in restored.items() if n not in in_place}):
            restored = {n: v for n, v in restored.items() if n not in in_place}
            # Where the result holds such a copy, it holds the live object its data went into, as after a run.
            rebind.done.update({id(copy): namespace[name] for name, copy in in_place.items()})
        else:
            rebinds = list(in_place)  # nothing was copied: they are bound to the restored copies
    if rebinds:
        # Names bound to restored copies leave behind whoever else holds their live objects now: if any
        # name not restored with them does, the cell runs (its run then says whether it can be stored).
        left = holders(_user_names(namespace), rebinds, skip=namespace)
        # Names that held part of them before the stored run too, which left them so.
        excused = set(restored) | set(parts) | set(value.get("held_before") or ())
        if left is None or left - excused:
            cell.rebinds = frozenset(rebinds)  # its run looks at who holds them first, so that its entry can say
            held = sorted((left or set()) - excused)
            return _NotCached(f"{held[0]!r} holds part of {', '.join(map(repr, rebinds))}, which a hit would "
                              "replace with restored copies: the cell runs" if held else
                              "the notebook's variables are too many objects to tell which hold part of what a "
                              "hit would replace: the cell runs")
    if not options.quiet and _config.settings.verbose and not isinstance(sys.stdout, io.StringIO):
        # Printed where the user looks, but never into output kept in memory (``%%capture``, redirect_stdout to a
        # StringIO): what is kept there is the cell's own output, which the replay below gives as the run printed it.
        names = ", ".join(sorted({*outputs, *parts})) or "no variables"
        print(f"[notebook_memo] restored {names} from the cache (computed {human_time(record.header.created)}, "
              f"took {record.header.duration:.2f} s)")
    for name, line in magics or ():  # what they set (an extension loaded, a setting) is the shell's, not a name's
        shell.run_line_magic(name, line)
    try:
        # `_` and Out[n] are the objects the restored names hold: the functions pointed at the notebook, the live
        # inputs restored in place (one walk of the result, as of the outputs; nothing where it is one of them).
        result = rebind(value["result"])
    except RecursionError:
        result = value["result"]  # live objects are already restored: the value as stored, rather than a run
    namespace.update(restored)
    namespace.update(parts)  # the live inputs' own objects, as the run left them bound
    for name in value["deleted"]:
        if _the_cells(name, own):
            namespace.pop(name, None)
    _add_annotations(namespace, value.get("annotations"))
    replay(shell, value["events"])
    if conditions:
        served(conditions, {}, ())
    cell.hits += 1
    cell.last_hit = True
    store.count_hit(owner_tag(cell.function_id, cell.notebook))
    cell.saved_seconds += record.header.duration
    return result

