"""What a cell reads before binding it, and what it binds: static analysis of its syntax tree."""

from __future__ import annotations

import ast
import builtins
import inspect
import operator
import sys
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._bytecode import computes_evaluated_text, forwarded_evaluation, passes_text_on
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
    partial_evaluator,
    reads_every_name,
)
from ._fingerprint import is_user_code

__all__ = ()


_MISSING: Any = object()


class Resolver:
    """What a name or attribute chain of a cell refers to (``pds.eval`` is ``pandas.eval``): a name the cell
    imports, through its import; any other, through the notebook's namespace, then builtins. Attributes are
    followed on modules only, in their own namespace, so no user code (a property, a module ``__getattr__``) runs."""

    def __init__(self, tree: ast.Module, namespace: Mapping[str, Any]) -> None:
        self.namespace = namespace
        self.imports: dict[str, str] = {}  # a name the cell's imports bind -> the dotted path it refers to
        # Every other name the cell binds anywhere (assigned, a parameter, a loop's or handler's name): what the
        # notebook binds to it now may not be what the cell's code meets there.
        self.bound: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
                self.bound.add(node.id)
            elif isinstance(node, ast.arg):
                self.bound.add(node.arg)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.bound.add(node.name)
            elif isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and node.name:
                self.bound.add(node.name)
            elif isinstance(node, ast.MatchMapping) and node.rest:
                self.bound.add(node.rest)
            elif isinstance(node, (ast.Global, ast.Nonlocal)):
                self.bound.update(node.names)
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.imports[alias.asname] = alias.name
                    else:
                        top = alias.name.partition(".")[0]
                        self.imports[top] = top
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    if alias.name != "*":
                        self.imports[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    def held(self, node: ast.expr) -> Any:
        """Return the object a name or chain of names refers to where the cell does not bind its first name, as
        ``resolve`` does, and past modules, what an object or class stores under each attribute (``STORE.box``:
        no property or ``__getattr__`` runs); else _MISSING (not known before the cell runs)."""
        first = node
        while isinstance(first, ast.Attribute):
            first = first.value
        if not isinstance(first, ast.Name) or first.id in self.bound:
            return _MISSING
        value = self.resolve(node)[0]
        if value is _MISSING and isinstance(node, ast.Attribute):
            owner = self.held(node.value)
            if owner is not _MISSING and not isinstance(owner, types.ModuleType):
                value = held_along(owner, (node.attr,), _MISSING)
        return value

    def past_modules(self, node: ast.expr) -> bool:
        """Return True for an attribute chain ``held`` follows past objects other than modules (``STORE.box``)."""
        return isinstance(node, ast.Attribute) and self.resolve(node)[0] is _MISSING and self.held(node) is not _MISSING

    def resolve(self, node: ast.expr) -> tuple[Any, str | None]:
        """Return the object ``node`` refers to (_MISSING where not known) and, where the cell's own import
        names it, its dotted path (its module may not be loaded before the cell runs)."""
        if isinstance(node, ast.Name):
            path = self.imports.get(node.id)
            if path is not None:
                return _loaded(path), path
            value = self.namespace.get(node.id, _MISSING)
            return (vars(builtins).get(node.id, _MISSING) if value is _MISSING else value), None
        if isinstance(node, ast.Attribute):
            value, path = self.resolve(node.value)
            inner = vars(value).get(node.attr, _MISSING) if isinstance(value, types.ModuleType) else _MISSING
            return inner, (f"{path}.{node.attr}" if path is not None else None)
        return _MISSING, None


def _loaded(path: str) -> Any:
    """Return the object a dotted path names among the loaded modules, or _MISSING."""
    parts = path.split(".")
    value = sys.modules.get(parts[0], _MISSING)
    for index, part in enumerate(parts[1:], 2):
        if not isinstance(value, types.ModuleType):
            return _MISSING
        value = sys.modules.get(".".join(parts[:index]), vars(value).get(part, _MISSING))
    return value


_NOTHING = Resolver(ast.Module(body=[], type_ignores=[]), {})


class _Scope(ast.NodeVisitor):
    """Names a block reads before binding them (its free names), and the names it binds.

    ``bound`` holds the names bound on every path so far; a name bound only on some paths
    (one branch of an ``if`` or of ``x if c else y``, a loop body, a ``try`` or ``with`` body, a
    ``match`` case, the right of ``and``/``or``, a walrus inside a comprehension) is in ``maybe``,
    and a later read of it still reads the namespace.
    """

    def __init__(self, resolver: Resolver, is_class: bool = False) -> None:
        self.resolver = resolver
        self.is_class = is_class  # a class body: the scopes inside it do not see the names it binds
        self.through: list[str] = []  # what those scopes read: names of the scope around the class
        self.bound: set[str] = set()
        self.maybe: set[str] = set()
        self.reads: list[str] = []
        self.maybe_reads: list[str] = []
        self.loop_reads: list[str] = []
        self.loops: list[set[str]] = []  # per enclosing loop: the names it may bind
        self.globals_declared: set[str] = set()
        self.walrus: set[str] = set()
        self.annotated: set[str] = set()  # names annotated without a value
        self.deletes: list[str] = []  # names deleted where the block may not have bound them

    def binds(self) -> set[str]:
        """Every name the block may bind, on any path."""
        return self.bound | self.maybe

    def _branch(self, nodes: Sequence[ast.AST | None]) -> set[str]:
        """Visit code that may not run; return the names it binds, which stay only 'maybe' bound."""
        saved = self.bound
        self.bound = set(saved)
        for node in nodes:
            if node is not None:
                self.visit(node)
        new = self.bound - saved
        self.bound = saved
        self.maybe |= new
        for names in self.loops:
            names |= new
        return new

    def visit_If(self, node: ast.If) -> None:
        self.visit(node.test)
        both = self._branch(node.body) & self._branch(node.orelse)
        self.bound |= both  # bound whichever branch runs

    def visit_IfExp(self, node: ast.IfExp) -> None:
        self.visit(node.test)
        self.bound |= self._branch([node.body]) & self._branch([node.orelse])

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        self.visit(node.values[0])
        self._branch(node.values[1:])  # `flag and (n := 10)`: short-circuited, n stays unbound

    def visit_Compare(self, node: ast.Compare) -> None:
        self.visit(node.left)
        self.visit(node.comparators[0])
        self._branch(node.comparators[1:])  # `a < b < (c := f())`: a chain stops at its first False

    def visit_With(self, node: ast.With | ast.AsyncWith) -> None:
        # The first context manager may suppress what the later ones or the body raise (contextlib.suppress).
        self.visit(node.items[0])
        self._branch([*node.items[1:], *node.body])

    visit_AsyncWith = visit_With

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        self._loop([node.target, *node.body])  # an empty iterable binds nothing
        self._branch(node.orelse)

    def _loop(self, body: Sequence[ast.AST]) -> None:
        self.loops.append(set())
        try:
            self._branch(body)
        finally:
            self.loops.pop()

    visit_AsyncFor = visit_For

    def visit_While(self, node: ast.While) -> None:
        self.visit(node.test)
        self._loop(node.body)
        self._branch(node.orelse)

    def visit_Try(self, node: ast.Try) -> None:
        done = self._branch([*node.body, *node.orelse])
        for handler in node.handlers:
            done &= self._branch([handler])  # try: import x / except ImportError: x = None
        self.bound |= done
        for stmt in node.finalbody:
            self.visit(stmt)

    visit_TryStar = visit_Try

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self.bound.add(node.name)
        for stmt in node.body:
            self.visit(stmt)

    def visit_Match(self, node: ast.Match) -> None:
        self.visit(node.subject)
        for case in node.cases:
            self._branch([case.pattern, case.guard, *case.body])

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.pattern is not None:
            self.visit(node.pattern)
        if node.name:
            self.bound.add(node.name)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self.bound.add(node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        self.generic_visit(node)
        if node.rest:
            self.bound.add(node.rest)

    def read(self, name: str) -> None:
        if name in self.bound:
            return
        if name in self.maybe:
            # Bound first on some paths: told apart at run time. Inside a loop that may bind it,
            # an early pass may read the notebook's value although a later pass binds it.
            in_loop = any(name in names for names in self.loops)
            (self.loop_reads if in_loop else self.maybe_reads).append(name)
        else:
            self.reads.append(name)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.read(node.id)
            return
        if isinstance(node.ctx, ast.Del) and node.id not in self.bound:
            self.deletes.append(node.id)  # `del tmp` raises NameError where the namespace has no tmp
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
        if node.value is None and isinstance(node.target, ast.Name):
            self.annotated.add(node.target.id)  # `total: float` binds nothing (in a function: a local still unbound)
        else:
            self.visit(node.target)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self.visit(node.target)
        self.walrus.add(node.target.id)

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name != "*":
                self.bound.add((alias.asname or alias.name).partition(".")[0])

    visit_ImportFrom = visit_Import

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        found = evaluated_text(node, self.resolver)
        text = constant_text(*found) if found is not None else None
        if found is not None and text is not None:
            for name in names_read(text, found[1]):  # df.query("x > @limit") reads limit when it runs
                self.read(name)
        # A constant text's @names, whichever call it is passed to: a frame's query may be reached by a route the
        # call's spelling does not show (mod.QUERY(text), pd.DataFrame.query(df, text), partial(df.query, text)).
        # So are those of a text a notebook variable passed whole holds (BOX.q(TEXT), STORE.mod.QUERY(TEXT)).
        for arg in [*node.args, *(k.value for k in node.keywords)]:
            passed: Any = arg.value if isinstance(arg, ast.Constant) else \
                self.resolver.held(arg) if isinstance(arg, ast.Name) else None
            if isinstance(passed, str):
                for name in marked_names(passed):
                    self.read(name)

    def visit_Global(self, node: ast.Global) -> None:
        self.globals_declared.update(node.names)

    def _nested(self, node: ast.AST, params: list[str], body: Sequence[ast.AST] | ast.AST) -> None:
        inner = _Scope(self.resolver, is_class=isinstance(node, ast.ClassDef))
        inner.bound.update(params)
        for stmt in body if isinstance(body, Sequence) else [body]:
            inner.visit(stmt)
        # A name bound (or annotated) anywhere in a function is local to it. A class body is no such scope: a
        # name it reads before binding it (`factor = factor * 2`) is looked up outside, and was recorded then.
        local = set() if inner.is_class else inner.binds() | inner.annotated
        self._free([name for name in [*inner.reads, *inner.maybe_reads, *inner.loop_reads]
                    if name not in local or name in inner.globals_declared])
        for name in inner.through:
            self.read(name)
        self.globals_declared.update(inner.globals_declared)

    def _free(self, names: list[str]) -> None:
        """Take the names a scope inside this one reads from outside it."""
        if self.is_class:
            self.through.extend(names)  # `scale = 2` in a class body is not what its methods' `scale` reads
        else:
            for name in names:
                self.read(name)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        args = node.args
        for default in [*args.defaults, *[d for d in args.kw_defaults if d is not None]]:
            self.visit(default)
        if not isinstance(node, ast.Lambda):
            for decorator in node.decorator_list:
                self.visit(decorator)
            # Annotations are evaluated where the function is defined (typing.get_type_hints reads them
            # there even as strings, under `from __future__ import annotations`).
            for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
                if arg is not None and arg.annotation is not None:
                    self.visit(arg.annotation)
            if node.returns is not None:
                self.visit(node.returns)
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
        inner = _Scope(self.resolver)
        for i, gen in enumerate(generators):
            if i:
                inner.visit(gen.iter)
            inner.visit(gen.target)
            for cond in gen.ifs:
                inner.visit(cond)
        for element in elements:
            inner.visit(element)
        local = inner.binds()
        self._free([name for name in [*inner.reads, *inner.maybe_reads, *inner.loop_reads] if name not in local])
        for name in inner.through:
            self.read(name)
        # A walrus inside a comprehension binds in the enclosing scope, if the loop runs at all.
        self.maybe |= inner.walrus
        self.walrus |= inner.walrus

    def visit_ListComp(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp) -> None:
        self._comprehension(node, [node.elt])

    visit_SetComp = visit_ListComp
    visit_GeneratorExp = visit_ListComp

    def visit_DictComp(self, node: ast.DictComp) -> None:
        self._comprehension(node, [node.key, node.value])


def evaluated_text(node: ast.Call, resolver: Resolver = _NOTHING) -> tuple[ast.expr, bool] | None:
    """Return the text argument of a call that evaluates it in the caller's scope (``df.query(text)``,
    ``pd.eval(text)``, ``peval(text)`` for ``from pandas import eval as peval``, ``getattr(df, "query")(text)``,
    ``methodcaller("query", text)``, ``QUERY(text)`` for a notebook variable holding ``df.query``), with whether
    every name in it is read rather than its ``@names``; else None."""
    func = node.func
    every: bool | None = True
    args = node.args
    forwarded = False  # its parameter, whatever its name, is the text: BOX.q(text=...)
    if not reads_every_name(*resolver.resolve(func)):
        every = None
        if isinstance(func, ast.Attribute):
            every = evaluates_text(func.value.id if isinstance(func.value, ast.Name) else None, func.attr)
            if every is not None and not _may_evaluate_on(func.value, func.attr, resolver):
                return None
            if every is None:  # MOD.QUERY(text): what the attribute holds may be a frame's query, or pandas.eval
                owner = resolver.held(func.value)
                held = _MISSING if owner is _MISSING else held_attribute(owner, func.attr)
                every = None if owner is _MISSING else called_evaluates(held)
                if every is None and owner is not _MISSING:  # BOX.q(text): a method of the user's passing it on
                    every = forwarded_evaluation(held, owner)
                    forwarded = every is not None
                    if forwarded and isinstance(owner, type) and isinstance(held, types.FunctionType) and args:
                        args = args[1:]  # Box.q(BOX, text): the instance first, its text after it
        elif isinstance(func, ast.Name):
            every = called_evaluates(resolver.held(func))
        elif isinstance(func, ast.Call) and resolver.resolve(func.func)[0] is getattr and len(func.args) == 2:
            attribute = func.args[1]  # getattr(df, "query")(text)
            if isinstance(attribute, ast.Constant) and attribute.value in AT_NAMES and \
                    _may_evaluate_on(func.args[0], attribute.value, resolver):
                every = False
        if every is None and resolver.resolve(func)[0] is operator.methodcaller and args and \
                isinstance(args[0], ast.Constant) and args[0].value in AT_NAMES:
            every, args = False, args[1:]  # methodcaller("query", text): applied to what, not known
    if every is None:
        return None
    if args and is_frame(resolver.held(args[0])) and (len(args) > 1 or node.keywords):
        args = args[1:]  # pd.DataFrame.query(DF, text): the frame first, its text after it
    if args:
        return args[0], every
    named = [k.value for k in node.keywords if k.arg in ("expr", "ex") or (forwarded and k.arg is not None)]
    unpacked = [k.value for k in node.keywords if k.arg is None]  # df.query(**options) may hold it
    texts = named or unpacked
    return (texts[0], every) if texts else None  # model.eval(): no text at all


def computing_method(node: ast.AST, resolver: Resolver = _NOTHING) -> str | None:
    """Return how a call spells a method of an object of the user's class it calls (``OWN.q()``) that evaluates a
    text it makes itself at run time, whose names the cell's code does not show; else None."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return None
    owner = resolver.held(node.func.value)
    if owner is _MISSING or isinstance(owner, (type, types.ModuleType)) or not is_user_code(type(owner)):
        return None
    method = held_attribute(owner, node.func.attr)
    if isinstance(method, types.FunctionType) and is_user_code(method) and computes_evaluated_text(method, owner):
        return ast.unparse(node.func)
    return None


def elsewhere_evaluator(node: ast.AST, resolver: Resolver = _NOTHING) -> str | None:
    """Return the module of a method a call passes its text on to (``MBOX.q("a > @T")``) where that method's code runs
    in another namespace than the notebook's: pandas reads the text's names from there, which a cell does not key."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return None
    owner = resolver.held(node.func.value)
    if owner is _MISSING:
        return None
    method = held_attribute(owner, node.func.attr)
    function = getattr(method, "__func__", method)
    if not (isinstance(function, types.FunctionType) and is_user_code(function)):
        return None  # a library's own method (a frame's query itself): its texts are followed where it is called
    if called_evaluates(method) is not None or forwarded_evaluation(method, owner) is None:
        return None
    where = function.__globals__
    if not isinstance(where, dict) or where is resolver.namespace:
        return None
    return str(where.get("__name__"))


def bound_evaluator(node: ast.AST, resolver: Resolver = _NOTHING) -> str | None:
    """Return how a statement spells the ``query``/``eval`` method it binds to a name (``q = df.query``), whose
    calls' texts are not followed, where it may be a frame's; else None (a KDTree's, or no such binding)."""
    value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign, ast.NamedExpr)) else None
    if isinstance(value, ast.Attribute) and value.attr in AT_NAMES and \
            _may_evaluate_on(value.value, value.attr, resolver):
        return ast.unparse(value)
    return None


def held_partial_evaluator(node: ast.AST, resolver: Resolver = _NOTHING) -> str | None:
    """Return how to spell the evaluator a ``functools.partial`` the cell reads by a name or one attribute holds
    (``PQ = partial(DF.query, "a > @T")``, ``Ops.big``), whose text's names its caller's code does not show."""
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
        return partial_evaluator(resolver.held(node))
    if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
        owner = resolver.held(node.value)
        if owner is _MISSING:
            return None
        try:  # as stored: no property or __getattr__ of the notebook's runs
            return partial_evaluator(inspect.getattr_static(owner, node.attr))
        except AttributeError:
            return None
    return None


def _may_evaluate_on(receiver: ast.expr, attribute: str, resolver: Resolver) -> bool:
    """Return False where what ``receiver`` names is known before the cell runs and its ``attribute`` evaluates
    no text (a KDTree's query); True otherwise (a DataFrame's, or not known)."""
    held = resolver.held(receiver)
    return held is _MISSING or (evaluates_on(held, attribute) and passes_text_on(held, attribute))


def constant_text(node: ast.expr, every: bool) -> str | None:
    """Return the text an evaluated argument holds when the code shows it, else None (computed at run time).

    An f-string shows its names where ``{...}`` supplies neither a name (``@{v}``) nor, for ``pd.eval``,
    any part of the text read.
    """
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, str) else None
    if not isinstance(node, ast.JoinedStr):
        return None
    parts: list[str] = []
    for part in node.values:
        if isinstance(part, ast.Constant) and isinstance(part.value, str):
            parts.append(part.value)
        elif every or (parts and parts[-1].rstrip().endswith("@")):
            return None
        else:
            parts.append(" 0 ")  # a value in the text: its own names are read where the f-string is made
    return "".join(parts)


@dataclass
class CellAnalysis:
    """What a cell reads from the namespace and what it binds at top level."""

    inputs: list[str]
    binds: list[str]
    globals_declared: list[str]
    maybe_binds: list[str]  # bound on some paths only: whether the run bound them is seen at run time
    maybe_inputs: list[str]  # read after such a binding: an input only where the run did not bind it
    loop_inputs: list[str]  # read inside a loop that may bind them: the notebook's value may be read
    deletes: list[str]  # deleted before the cell binds them, read nowhere: whether they are defined matters
    # `import a.b.c` outside functions: it binds `a` alone, which a hit restores by name, without a.b.c loaded
    imports: list[str] = field(default_factory=list)


def analyse(tree: ast.Module, namespace: Mapping[str, Any] | None = None) -> CellAnalysis:
    """Return the names a cell reads before binding them, and the names it binds; ``namespace`` (the notebook's)
    tells what the names it calls refer to (``peval`` may be ``pandas.eval``, whose text reads names)."""
    scope = _Scope(Resolver(tree, namespace or {}))
    for stmt in tree.body:
        scope.visit(stmt)
    inputs = list(dict.fromkeys(n for n in [*scope.reads, *scope.globals_declared]))
    loop_inputs = sorted(set(scope.loop_reads) - set(inputs))
    maybe_inputs = sorted(set(scope.maybe_reads) - set(inputs) - set(loop_inputs))
    reads = {*inputs, *maybe_inputs, *loop_inputs}
    return CellAnalysis(inputs, sorted(scope.binds()), sorted(scope.globals_declared),
                        sorted(scope.maybe - scope.bound), maybe_inputs, loop_inputs,
                        sorted(set(scope.deletes) - reads), _submodule_imports(tree))


def _submodule_imports(tree: ast.Module) -> list[str]:
    """Return the dotted modules the cell's ``import a.b.c`` statements (no ``as``) load, outside functions."""
    found: dict[str, None] = {}
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue  # its imports run when it is called, after a hit as after a run
        if isinstance(node, ast.Import):
            found.update((alias.name, None) for alias in node.names if "." in alias.name and not alias.asname)
        stack.extend(ast.iter_child_nodes(node))
    return sorted(found)


def normalised_source(tree: ast.Module) -> bytes:
    """Return the cell's code without comments, blank lines or formatting."""
    return ast.dump(tree, annotate_fields=True, include_attributes=False).encode()
