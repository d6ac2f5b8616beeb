"""What a cell reads before binding it, and what it binds: static analysis of its syntax tree."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ()


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
