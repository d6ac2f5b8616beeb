"""%%memo hits: an input the cell changed in place is restored into the object the notebook holds.

A run that changes an input in place (weights filled under ``no_grad``, ``v += 1`` on a view,
``items.append(2)``) changes it for every other reference too: an optimizer built on the model's
parameters, a view's base, a dict holding the list. A hit that bound the name to the restored copy
would leave those references on the old object, unchanged.

So a miss records which changed inputs a hit can restore *exactly* into the live object: a tensor or
numpy array (its data and flags), a torch module whose run kept every parameter, buffer, submodule
and other object in place and changed only tensor data and plain values such as ``training``, and a
list, dict or set of plain values. Only when every input the cell changed in place is of these, and
no name the cell binds anew shares an object with them, does a hit copy (after checking that each
still fits); otherwise names are bound to the restored copies, together, as before.

Names bound to restored copies leave behind every other name that holds part of their old objects: the
model a trainer holds, the list a record and an accumulator share, a second name for the same object.
``holders`` finds such names (one walk of the notebook's variables): after the run, a cell with one it
does not read is not stored; on a hit, one that appeared since makes the cell run.
"""

from __future__ import annotations

import collections
import enum
import functools
import sys
import types
import weakref
from typing import Any

from ._serialize import viewed
from .hashing import BOOKKEEPING_PREFIX, content_hash, is_plain_tensor

__all__ = ()

_REACH_LIMIT = 200_000  # objects walked to prove two outputs share nothing; beyond it, assume they do
_LINK_LIMIT = 10_000_000  # items walked to group a notebook's names by what they share; beyond it, unknown
_MODULE_PARTS = ("_parameters", "_buffers", "_modules")
_LEAVES = (str, bytes, int, float, complex, bool, type(None))
_LEAF_TYPES = frozenset(_LEAVES)


def skeleton(value: Any) -> Any:
    """Return what must be the same before and after a run for ``value`` to be restored in place
    (a module: the objects it is made of, and its attributes other than plain values), or None when
    its kind is not restored in place."""
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(value, torch.nn.Module):
        return ()
    parts = []
    try:
        for name, module in value.named_modules(remove_duplicate=False):
            tensors = [(part, key, id(t)) for part in ("_parameters", "_buffers")
                       for key, t in getattr(module, part).items()]
            others = {k: v for k, v in vars(module).items()
                      if k not in _MODULE_PARTS and not k.startswith(BOOKKEEPING_PREFIX) and not _plain(v)}
            parts.append((name, id(module), tuple(tensors), sorted(others), content_hash(others)))
    except Exception:
        return None
    return parts


def restorable(before: Any, value: Any) -> bool:
    """Return True when ``value``, an input the run changed in place (``before``: its skeleton before the
    run), can be restored into the live object exactly."""
    if before is None:
        return False
    np = sys.modules.get("numpy")
    if np is not None and type(value) is np.ndarray:
        return not value.dtype.hasobject
    torch = sys.modules.get("torch")
    if torch is not None:
        if isinstance(value, torch.Tensor):
            return is_plain_tensor(value) and value.is_leaf
        if isinstance(value, torch.nn.Module):
            return skeleton(value) == before
    if type(value) in (list, set, frozenset):
        return all(_plain(item) for item in value)
    if type(value) is dict:
        return all(_plain(k) and _plain(v) for k, v in value.items())
    return False


def restore_in_place(live: dict[str, Any], restored: dict[str, Any], others: dict[str, Any]) -> bool:
    """Copy each restored value into the live object of its name; True when done, False (nothing
    touched) when a value does not fit its live object or shares an object with ``others``, the outputs
    that will be bound anew. Never raises: a hit must not fail where the run would not."""
    if not restored:
        return True
    try:
        if any(name not in live or not _fits(live[name], value) for name, value in restored.items()):
            return False
        if shares(others, restored):
            return False
    except Exception:
        return False
    try:
        for name, value in restored.items():
            _copy_into(live[name], value)
    except Exception:  # not expected once every value fits: the names are then bound to the copies
        return False
    return True


def _plain(value: Any) -> bool:
    if isinstance(value, _LEAVES):
        return True
    return type(value) is tuple and all(_plain(item) for item in value)


def _fits(current: Any, value: Any) -> bool:
    """Return True when ``value``'s state can be copied into ``current`` whole."""
    if type(current) is not type(value):
        return False
    if type(current) in (list, dict, set):
        return True
    np = sys.modules.get("numpy")
    if np is not None and type(current) is np.ndarray:
        return current.shape == value.shape and current.dtype == value.dtype and current.flags.writeable
    torch = sys.modules.get("torch")
    if torch is not None:
        if isinstance(current, torch.Tensor):
            return _same_tensor_kind(torch, current, value)
        if isinstance(current, torch.nn.Module):
            return _same_structure(torch, current, value)
    return False


def _same_tensor_kind(torch: Any, current: Any, value: Any) -> bool:
    return (is_plain_tensor(current) and is_plain_tensor(value) and current.is_leaf
            and current.shape == value.shape and current.dtype == value.dtype and current.device == value.device)


def _same_structure(torch: Any, current: Any, value: Any) -> bool:
    """Modules with the same submodules (names, classes), tensors (names, kinds) and attribute names."""
    mine = list(current.named_modules(remove_duplicate=False))
    theirs = list(value.named_modules(remove_duplicate=False))
    if [(n, type(m)) for n, m in mine] != [(n, type(m)) for n, m in theirs]:
        return False
    for (_, cm), (_, vm) in zip(mine, theirs):
        if sorted(vars(cm)) != sorted(vars(vm)):
            return False
        for part in ("_parameters", "_buffers"):
            a, b = getattr(cm, part), getattr(vm, part)
            if list(a) != list(b):
                return False
            for key in a:
                x, y = a[key], b[key]
                if (x is None) != (y is None) or (x is not None and not _same_tensor_kind(torch, x, y)):
                    return False
    return True


def _copy_into(current: Any, value: Any) -> None:
    if type(current) is list:
        current[:] = value
    elif type(current) in (dict, set):
        current.clear()
        current.update(value)
    elif (np := sys.modules.get("numpy")) is not None and type(current) is np.ndarray:
        current[...] = value
    else:
        torch = sys.modules["torch"]
        if isinstance(current, torch.Tensor):
            _copy_tensor(torch, current, value)
        else:
            mine = current.named_modules(remove_duplicate=False)
            for (_, cm), (_, vm) in zip(mine, value.named_modules(remove_duplicate=False)):
                _copy_module(torch, cm, vm)


def _copy_tensor(torch: Any, current: Any, value: Any) -> None:
    with torch.no_grad():
        current.copy_(value)
    current.requires_grad_(value.requires_grad)  # a leaf: _fits asked
    held = current.grad
    if held is not None and value.grad is not None and _same_tensor_kind(torch, held, value.grad):
        with torch.no_grad():
            held.copy_(value.grad)  # into the gradient others hold (g = t.grad), as the run changed it
    else:
        current.grad = value.grad


def _copy_module(torch: Any, current: Any, value: Any) -> None:
    """Copy one module's tensors' data into its own tensors and its plain attributes (``training``); its
    other attributes are the objects the run left in place (a miss recorded that)."""
    for part in ("_parameters", "_buffers"):
        mine, theirs = getattr(current, part), getattr(value, part)
        for key, tensor in theirs.items():
            if tensor is not None:
                _copy_tensor(torch, mine[key], tensor)
    state = vars(current)
    for key, item in vars(value).items():
        if _plain(item) and key not in _MODULE_PARTS and not key.startswith(BOOKKEEPING_PREFIX):
            state[key] = item


def shares(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Return True when a mutable object is reachable from both (or a walk was too long to tell)."""
    mine, theirs = _reachable(a), _reachable(b)
    return mine is None or theirs is None or bool(mine & theirs)


def _reachable(values: dict[str, Any]) -> set[int] | None:
    """Return the ids of the mutable objects reachable from ``values``, through containers, attributes,
    bound methods, partials and closures, or None past the walk's limit. All of them are held by
    ``values``, so no id is reused while the caller compares."""
    seen: set[int] = set()
    stack = list(values.values())
    torch = sys.modules.get("torch")
    steps = 0
    while stack:
        obj = stack.pop()
        steps += 1
        if steps > 4 * _REACH_LIMIT:  # e.g. a list of millions of numbers: too long to walk on a hit
            return None
        key = id(obj)
        if key in seen or isinstance(obj, _LEAVES) or isinstance(obj, (type, types.ModuleType)):
            continue
        if len(seen) >= _REACH_LIMIT:
            return None
        seen.add(key)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif isinstance(obj, (types.MethodType, types.BuiltinMethodType, types.MethodWrapperType)):
            stack.append(obj.__self__)  # items.append holds items
        elif isinstance(obj, functools.partial):
            stack.extend((obj.func, *obj.args, *obj.keywords.values()))
        elif (target := viewed(obj)) is not None:  # d.keys(), memoryview(buf): they show d and buf live
            stack.append(target)
        elif isinstance(obj, types.FunctionType):
            stack.extend(cell.cell_contents for cell in obj.__closure__ or () if _filled(cell))
            stack.extend(obj.__defaults__ or ())
        else:
            attributes = getattr(obj, "__dict__", None)
            if isinstance(attributes, dict):
                stack.extend(attributes.values())
            if torch is not None and isinstance(obj, torch.Tensor) and obj.is_leaf and obj.grad is not None:
                stack.append(obj.grad)
    return seen


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018 (an empty cell raises)
    except ValueError:
        return False
    return True


def linked_groups(values: dict[str, Any], skip: Any = None, classes: tuple[type, ...] = ()) -> list[set[str]] | None:
    """Group the names of ``values`` by the mutable objects they share, transitively: two names for one
    list, an array and a view of it (or a tensor over its memory), a model and the optimizer built on its
    parameters, a trainer holding a model. Names that share nothing are left out; None when the values
    are too large to walk. ``skip``: an object never entered (the notebook's namespace itself).

    Shared objects that cannot change, or whose identity does not matter, link nothing: numbers and
    strings, tuples and functions (walked through, for what they hold), classes' and modules' own
    identity, enum members, and objects of the standard library (a logger, a lock, a compiled pattern).
    ``classes``: classes whose identity matters (a hit would replace them with copies): their instances and
    subclasses hold them. Never raises: an object that cannot be looked into is left out.
    """
    names = list(values)
    parent = list(range(len(names)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    np, torch = sys.modules.get("numpy"), sys.modules.get("torch")
    marked = {id(cls) for cls in classes}
    owner: dict[Any, int] = {}  # an object whose identity matters (by id, or its memory) -> the first name
    walked: set[int] = set()  # objects with such an identity, entered once whoever reached them
    steps = 0
    for index, name in enumerate(names):
        stack = [values[name]]
        passed: set[int] = set()  # tuples, functions...: entered again for each name, for what they hold
        while stack:
            obj = stack.pop()
            steps += 1
            if steps > _LINK_LIMIT:
                return None
            try:
                if obj is skip or type(obj) in _LEAF_TYPES or isinstance(obj, _LEAVES):
                    continue
                token, parts = _look_into(obj, np, torch)
                if marked:
                    kind = obj if isinstance(obj, type) else type(obj)
                    parts = [*parts, *(k for k in kind.__mro__ if id(k) in marked and k is not obj)]
                    if id(obj) in marked:
                        token = id(obj)
            except Exception:  # a strange object (a __class__ that raises): left out
                continue
            if token is None:
                if id(obj) not in passed:
                    passed.add(id(obj))
                    stack.extend(parts)
                continue
            first = owner.setdefault(token, index)
            if first != index:
                parent[find(first)] = find(index)
            if id(obj) not in walked:  # all held by ``values``: no id is reused during the walk
                walked.add(id(obj))
                if isinstance(obj, (dict, list, tuple, set, frozenset)):
                    steps += len(obj)  # counted whole, numbers and strings too
                stack.extend(parts)
    groups: dict[int, set[str]] = {}
    for index, name in enumerate(names):
        groups.setdefault(find(index), set()).add(name)
    return [group for group in groups.values() if len(group) > 1]


def holders(values: dict[str, Any], of: list[str], skip: Any = None) -> set[str] | None:
    """Return the names of ``values`` other than ``of`` that share a mutable object with one of ``of``
    (None when that cannot be told: too much to walk)."""
    classes = tuple(value for name in of if isinstance(value := values.get(name), type))
    groups = linked_groups(values, skip, classes)
    if groups is None:
        return None
    found: set[str] = set()
    for group in groups:
        if not group.isdisjoint(of):
            found |= group
    return found - set(of)


def held_part(outputs: dict[str, Any], inputs: dict[str, Any]) -> tuple[str, str] | None:
    """Return an output and an input it holds part of (an object inside it, a view of its memory), but not whole:
    a hit, which keeps whole inputs by name, would make that part a copy. ``("", "")`` when there is too much to
    walk to tell; None when no output does. A library's frame is looked at whole (``df.head()``, copied on write,
    holds none of it). Never raises."""
    np, torch = sys.modules.get("numpy"), sys.modules.get("torch")
    found: dict[Any, str] = {}  # the identity of each part of the inputs -> the input's name
    whole = {id(value) for value in inputs.values()}
    steps = 0
    for names, record in ((inputs, True), (outputs, False)):
        walked: set[int] = set()
        for name, value in names.items():
            stack = [value]
            while stack:
                obj = stack.pop()
                steps += 1
                if steps > _LINK_LIMIT:
                    return "", ""
                if type(obj) in _LEAF_TYPES or id(obj) in walked or (not record and id(obj) in whole):
                    continue  # an input held whole is kept by name
                walked.add(id(obj))
                try:
                    token, parts = _look_into(obj, np, torch)
                    if (type(obj).__module__ or "").startswith("pandas"):
                        token, parts = id(obj), []
                except Exception:  # a strange object (a __class__ that raises): left out
                    continue
                if token is not None:
                    if record:
                        found.setdefault(token, name)
                    elif token in found:
                        return name, found[token]
                stack.extend(parts)
    return None


def _look_into(obj: Any, np: Any, torch: Any) -> tuple[Any, list[Any]]:
    """Return what two names must both reach to share ``obj`` (None: nothing) and the objects it holds."""
    cls = type(obj)
    if isinstance(obj, (dict, list, set, bytearray, collections.deque)):
        items = [*obj.keys(), *obj.values()] if isinstance(obj, dict) else list(obj)
        return id(obj), [item for item in items if type(item) not in _LEAF_TYPES]  # long lists: no pops
    if isinstance(obj, (tuple, frozenset)):
        return None, [item for item in obj if type(item) not in _LEAF_TYPES]
    if isinstance(obj, (types.MethodType, types.BuiltinMethodType, types.MethodWrapperType)):
        return None, [obj.__self__]  # items.append holds items
    if isinstance(obj, functools.partial):
        return None, [obj.func, *obj.args, *obj.keywords.values()]
    if isinstance(obj, types.FunctionType):
        return None, [*(cell.cell_contents for cell in obj.__closure__ or () if _filled(cell)),
                      *(obj.__defaults__ or ()), *(obj.__kwdefaults__ or {}).values(), *vars(obj).values()]
    if isinstance(obj, type):  # a class of the user's: the data on it (a registry of instances)
        module = obj.__module__ or ""
        if _standard(module) or module.startswith(_NOT_DATA):
            return None, []
        return None, [v for v in vars(obj).values() if not isinstance(v, (types.FunctionType, type))]
    if isinstance(obj, types.ModuleType) or isinstance(obj, enum.Enum):
        return None, []
    if np is not None and isinstance(obj, np.ndarray):
        root = obj
        while isinstance(root.base, np.ndarray):
            root = root.base
        if not root.nbytes:
            return id(obj), []
        return ("memory", root.__array_interface__["data"][0]), []  # the objects of an object array: left out
    if torch is not None and isinstance(obj, torch.Tensor):
        held = list(object.__getattribute__(obj, "__dict__").values())
        if obj.is_leaf and obj.grad is not None:
            held.append(obj.grad)
        try:
            pointer = obj.untyped_storage().data_ptr()
        except Exception:  # sparse, quantized, meta: no one storage
            pointer = 0
        return (("memory", pointer) if pointer else id(obj)), held
    target = viewed(obj)
    if target is not None:  # a dict view, mapping proxy or memoryview holds what it shows live
        return None, [target]
    if isinstance(obj, weakref.ref):  # a live weak reference holds its referent, as far as names can tell
        target = obj()
        return None, ([] if target is None else [target])
    if isinstance(obj, (weakref.WeakValueDictionary, weakref.WeakKeyDictionary)):
        return id(obj), [*obj.keys(), *obj.values()]
    if isinstance(obj, weakref.WeakSet):
        return id(obj), list(obj)
    module = cls.__module__ or ""
    if module in ("builtins", "itertools") and hasattr(cls, "__next__"):
        return id(obj), []  # a list iterator, itertools.count: its position is its state, which names share
    if module.startswith(_NOT_DATA) or module.partition(".")[0] in _OPAQUE_STANDARD:
        return None, []  # the shell, which holds every name; a logger, a lock, a pattern, a stream
    standard = _standard(module)  # a SimpleNamespace, a UserList, a ChainMap: walked through, for what they hold
    parts: list[Any] = []
    try:
        attributes = object.__getattribute__(obj, "__dict__")
    except Exception:
        attributes = None
    if isinstance(attributes, dict):
        # An object of its own holds its attribute dict as a part (``vars(obj)`` binds it); a standard one is
        # walked through, for what it holds.
        parts.extend(attributes.values() if standard else [attributes])
    for slot in _slots(cls):
        try:
            parts.append(object.__getattribute__(obj, slot))
        except Exception:
            continue
    if attributes is None and not _slots(cls):
        return None, []  # a C object of a library (a dtype, a device): nothing of it can be shared
    return (None if standard else id(obj)), parts


_NOT_DATA = ("IPython", "ipykernel", "traitlets", "notebook_memo", "zmq", "tornado", "jupyter")
# Standard modules whose objects are services, not data: many names share them and no cell's result is in them.
_OPAQUE_STANDARD = frozenset({"logging", "threading", "re", "io", "_io", "socket", "ssl", "asyncio", "concurrent",
                              "multiprocessing", "subprocess", "selectors", "queue", "sqlite3", "weakref", "_thread",
                              "builtins", "types", "abc", "enum", "typing", "codecs", "warnings"})


@functools.lru_cache(maxsize=1024)
def _standard(module: str) -> bool:
    """Return True for a module of the standard library (``builtins`` included)."""
    top = module.partition(".")[0]
    return top in sys.stdlib_module_names or top in ("builtins", "__future__")


_slot_names: weakref.WeakKeyDictionary[type, tuple[str, ...]] = weakref.WeakKeyDictionary()


def _slots(cls: type) -> tuple[str, ...]:
    """Return the names of the slots of ``cls`` and its bases."""
    names = _slot_names.get(cls)
    if names is None:
        found: list[str] = []
        for klass in cls.__mro__:
            slots = vars(klass).get("__slots__", ())
            slots = [slots] if isinstance(slots, str) else slots
            found.extend(name for name in slots if name not in ("__dict__", "__weakref__"))
        names = _slot_names[cls] = tuple(found)
    return names
