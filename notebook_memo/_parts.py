"""Outputs of a %%memo cell that are part of an input the run left unchanged, reached by a constant path.

``cfg = CONFIG["train"]``, ``first = arr[0]``, ``hist = model.history``: after the run the output *is* that
part of the notebook's input (a view shares its memory), and a copy restored on a hit would not be. When the
cell binds the output once, to such a path from the input (constant keys and indexes, basic slices, attribute
names, chained), the entry records the path instead of the value, and a hit follows it on the live input.
The path is only followed through dicts, lists, tuples, numpy arrays and instance attributes kept in
``__dict__``, none of which runs user code as it is read.
"""

from __future__ import annotations

import ast
import sys
from typing import Any

__all__ = ()

Step = tuple[str, Any]  # ("[]", key) or (".", attribute name)
Path = tuple[str, tuple[Step, ...]]  # the input's name, and the steps from it


class NoPath(LookupError):
    """A path does not lead anywhere in this object (a key gone, a kind of object not followed)."""


def constant_paths(tree: ast.Module) -> dict[str, Path]:
    """Return each name the cell binds exactly once, at top level, to a constant path from another name it never
    binds (``cfg = CONFIG["train"]``, ``a, b = X[:2], X[2:]``)."""
    stores: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            stores[node.id] = stores.get(node.id, 0) + 1
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            for name in node.names:
                stores[name] = stores.get(name, 0) + 2  # bound some other way: never a path
    found: dict[str, Path] = {}
    for statement in tree.body:
        if not isinstance(statement, ast.Assign) or len(statement.targets) != 1:
            continue
        target, value = statement.targets[0], statement.value
        pairs = ([(target, value)] if isinstance(target, ast.Name)
                 else list(zip(target.elts, value.elts)) if isinstance(target, ast.Tuple)
                 and isinstance(value, ast.Tuple) and len(target.elts) == len(value.elts) else [])
        for name_node, expr in pairs:
            path = _path(expr)
            if isinstance(name_node, ast.Name) and path is not None and path[1] \
                    and stores.get(name_node.id) == 1 and path[0] not in stores:
                found[name_node.id] = path
    return found


def _path(node: ast.expr) -> Path | None:
    steps: list[Step] = []
    while not isinstance(node, ast.Name):
        if isinstance(node, ast.Attribute):
            steps.append((".", node.attr))
            node = node.value
        elif isinstance(node, ast.Subscript):
            key = _constant_key(node.slice)
            if key is _NOT_CONSTANT:
                return None
            steps.append(("[]", key))
            node = node.value
        else:
            return None
    return node.id, tuple(reversed(steps))


_NOT_CONSTANT: Any = object()
_KEY_TYPES = (str, int, bytes, type(None))


def _constant_key(node: ast.expr) -> Any:
    """Return the value of a constant key, index or basic slice (``"a"``, ``-1``, ``2:5``, ``0, :``)."""
    if isinstance(node, ast.Constant) and type(node.value) in _KEY_TYPES and type(node.value) is not bool:
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant) \
            and type(node.operand.value) is int:
        return -node.operand.value
    if isinstance(node, ast.Slice):
        bounds = [None if part is None else _constant_key(part) for part in (node.lower, node.upper, node.step)]
        if any(bound is _NOT_CONSTANT or (bound is not None and type(bound) is not int) for bound in bounds):
            return _NOT_CONSTANT
        return slice(*bounds)
    if isinstance(node, ast.Tuple):
        parts = [_constant_key(part) for part in node.elts]
        if any(part is _NOT_CONSTANT or not isinstance(part, (int, slice)) for part in parts):
            return _NOT_CONSTANT  # a tuple of indexes and slices (``arr[0, 2:5]``): numpy's basic indexing
        return tuple(parts)
    return _NOT_CONSTANT


def follow(root: Any, steps: tuple[Step, ...]) -> Any:
    """Return what the path's steps reach from ``root``, reading no user code; raise NoPath where one cannot be
    followed so."""
    value = root
    for kind, key in steps:
        value = _attribute(value, key) if kind == "." else _item(value, key)
    return value


def _item(value: Any, key: Any) -> Any:
    np = sys.modules.get("numpy")
    if isinstance(value, dict) and isinstance(key, _KEY_TYPES):
        found = dict.get(value, key, _NOT_CONSTANT)  # dict.get: never a subclass's __missing__
        if found is _NOT_CONSTANT:
            raise NoPath(key)
        return found
    if isinstance(value, (list, tuple)) and type(key) is int:
        try:
            return list.__getitem__(value, key) if isinstance(value, list) else tuple.__getitem__(value, key)
        except IndexError:
            raise NoPath(key) from None
    if np is not None and type(value) is np.ndarray and isinstance(key, (int, slice, tuple)):
        try:
            return np.ndarray.__getitem__(value, key)  # basic indexing: a view, or a scalar
        except IndexError:
            raise NoPath(key) from None
    raise NoPath(key)


def _attribute(value: Any, name: str) -> Any:
    held = getattr(value, "__dict__", None)
    if type(held) is not dict or name not in held or any(name in vars(k) for k in type(value).__mro__):
        raise NoPath(name)  # a property, a slot or a computed attribute: reading it may run code
    return held[name]


def same_part(found: Any, output: Any) -> bool:
    """Return True when ``found`` (a path followed again) is the output: the object itself, or a numpy view of
    the same memory with the same layout (basic indexing makes a new view object each time)."""
    if found is output:
        return True
    np = sys.modules.get("numpy")
    if np is None or type(found) is not np.ndarray or type(output) is not np.ndarray:
        return False
    return bool(found.__array_interface__ == output.__array_interface__ and found.base is not None
                and output.base is not None and _owner(found) is _owner(output)
                and found.flags.writeable == output.flags.writeable)


def _owner(array: Any) -> Any:
    while getattr(array, "base", None) is not None:
        array = array.base
    return array
