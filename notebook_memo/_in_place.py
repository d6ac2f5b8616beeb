"""%%memo hits: an input the cell changed in place is restored into the object the notebook holds.

A run that changes an input in place (``model.load_state_dict(...)``, ``v += 1``, training steps,
``items.append(...)``) changes it for every other reference too: an optimizer's parameters, a view's
base, a dict holding the list. A hit that bound the name to the restored copy would leave those
references on the old object, unchanged, and a later cell (``opt.step()``) would silently work on it.
So a hit copies the restored state into the live objects where their kind allows it (tensors, numpy
arrays, torch modules of the same structure, objects with ``load_state_dict`` such as optimizers,
lists, dicts and sets), checks each by content, and otherwise binds names to the copies as before.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from .hashing import BOOKKEEPING_PREFIX, content_hash

__all__ = ()

_REACH_LIMIT = 200_000  # objects walked to prove two outputs share nothing; beyond it, assume they do
_MODULE_PARTS = ("_parameters", "_buffers", "_modules")


def restore_in_place(live: dict[str, Any], restored: dict[str, Any], others: dict[str, Any]) -> bool:
    """Copy each restored value into the live object of its name; True when every one took.

    ``others`` are the outputs that will be bound anew. When one of them shares an object with a value
    restored in place (``head = model[1]`` beside a changed ``model``), copying would split what the run
    kept together, so nothing is copied. Nothing is copied either unless every value fits its live
    object; and a copy that does not come out equal by content returns False (the caller then binds).
    """
    if not restored:
        return True
    if any(name not in live or not _fits(live[name], value) for name, value in restored.items()):
        return False
    if _shares(others, restored):
        return False
    try:
        for name, value in restored.items():
            _copy_into(live[name], value)
        return all(content_hash(live[name]) == content_hash(value) for name, value in restored.items())
    except Exception:
        return False


def _torch() -> Any:
    return sys.modules.get("torch")


def _is_plain_tensor(torch: Any, t: Any) -> bool:
    return (isinstance(t, torch.Tensor) and type(t) in (torch.Tensor, torch.nn.Parameter)
            and t.layout is torch.strided and not t.is_quantized and not t.is_nested)


def _fits(current: Any, value: Any) -> bool:
    """Return True when ``value``'s state can be copied into ``current`` whole."""
    if type(current) is not type(value):
        return False
    if isinstance(current, (list, dict, set)):
        return True
    np = sys.modules.get("numpy")
    if np is not None and isinstance(current, np.ndarray):
        return (current.shape == value.shape and current.dtype == value.dtype and current.flags.writeable
                and not current.dtype.hasobject)
    torch = _torch()
    if torch is not None:
        if isinstance(current, torch.Tensor):
            return (_is_plain_tensor(torch, current) and _is_plain_tensor(torch, value) and current.is_leaf
                    and current.shape == value.shape and current.dtype == value.dtype
                    and current.device == value.device)
        if isinstance(current, torch.nn.Module):
            return _same_structure(torch, current, value)
    return callable(getattr(current, "load_state_dict", None)) and callable(getattr(value, "state_dict", None))


def _same_structure(torch: Any, current: Any, value: Any) -> bool:
    """Modules with the same submodules (names and classes) and the same parameters and buffers
    (names, shapes, dtypes, devices, or None alike)."""
    mine, theirs = list(current.named_modules()), list(value.named_modules())
    if [(n, type(m)) for n, m in mine] != [(n, type(m)) for n, m in theirs]:
        return False
    for (_, cm), (_, vm) in zip(mine, theirs):
        for part in ("_parameters", "_buffers"):
            a, b = getattr(cm, part), getattr(vm, part)
            if list(a) != list(b):
                return False
            for name in a:
                x, y = a[name], b[name]
                if (x is None) != (y is None):
                    return False
                if x is not None and not _fits(x, y):
                    return False
    return True


def _copy_into(current: Any, value: Any) -> None:
    if isinstance(current, list):
        current[:] = value
        return
    if isinstance(current, (dict, set)):
        current.clear()
        current.update(value)
        return
    np = sys.modules.get("numpy")
    if np is not None and isinstance(current, np.ndarray):
        current[...] = value
        return
    torch = _torch()
    if torch is not None and isinstance(current, torch.Tensor):
        _copy_tensor(torch, current, value)
        return
    if torch is not None and isinstance(current, torch.nn.Module):
        for cm, vm in zip(current.modules(), value.modules()):
            _copy_module(torch, cm, vm)
        return
    current.load_state_dict(value.state_dict())
    groups, restored_groups = getattr(current, "param_groups", None), getattr(value, "param_groups", None)
    if isinstance(groups, list) and isinstance(restored_groups, list):
        # An optimizer's load_state_dict moves each group's "params" to the end; the run left them first.
        for group, restored_group in zip(groups, restored_groups):
            if isinstance(group, dict) and isinstance(restored_group, dict) and group.keys() == restored_group.keys():
                ordered = {key: group[key] for key in restored_group}
                group.clear()
                group.update(ordered)


def _copy_tensor(torch: Any, current: Any, value: Any) -> None:
    with torch.no_grad():
        current.copy_(value)
    current.requires_grad_(value.requires_grad)  # a leaf: _fits asked
    current.grad = value.grad


def _copy_module(torch: Any, current: Any, value: Any) -> None:
    """Copy one module's own state (not its submodules'): tensors into its tensors, the rest by name."""
    for part in ("_parameters", "_buffers"):
        mine, theirs = getattr(current, part), getattr(value, part)
        for name, tensor in theirs.items():
            if tensor is not None:
                _copy_tensor(torch, mine[name], tensor)
    state = vars(current)
    for name in [n for n in state if n not in _MODULE_PARTS and not n.startswith(BOOKKEEPING_PREFIX)]:
        if name not in vars(value):
            del state[name]
    for name, item in vars(value).items():
        if name not in _MODULE_PARTS and not name.startswith(BOOKKEEPING_PREFIX):
            state[name] = item


def _shares(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Return True when a mutable object is reachable from both (or a walk was too long to tell)."""
    mine, theirs = _reachable(a), _reachable(b)
    return mine is None or theirs is None or bool(mine & theirs)


def _reachable(values: dict[str, Any]) -> set[int] | None:
    """Return the ids of the mutable objects reachable from ``values`` (containers, tensors, arrays,
    objects with attributes), or None past the walk's limit. All of them are held by ``values``, so no
    id is reused while the caller compares."""
    seen: set[int] = set()
    stack = list(values.values())
    torch = _torch()
    steps = 0
    while stack:
        obj = stack.pop()
        steps += 1
        if steps > 4 * _REACH_LIMIT:  # e.g. a list of millions of numbers: too long to walk on a hit
            return None
        key = id(obj)
        if key in seen or isinstance(obj, _NOT_SHARED):
            continue
        if len(seen) >= _REACH_LIMIT:
            return None
        seen.add(key)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        else:
            attributes = getattr(obj, "__dict__", None)
            if isinstance(attributes, dict):
                stack.extend(attributes.values())
            if torch is not None and isinstance(obj, torch.Tensor) and obj.is_leaf and obj.grad is not None:
                stack.append(obj.grad)
    return seen


# Immutable leaves, and code (shared by design, never copied into).
_NOT_SHARED = (str, bytes, int, float, complex, bool, type(None), type, types.FunctionType, types.ModuleType,
               types.BuiltinFunctionType, types.MethodType)
