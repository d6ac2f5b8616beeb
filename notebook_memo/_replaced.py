"""The library functions notebook_memo replaces with its own wrappers, and what each one replaced.

Seeding functions, os.urandom, the link readers and a few more are wrapped once, when a memoized call first runs,
so a name bound after that (``from random import seed``) holds our wrapper, and one bound before holds the
original (the seeding functions' are rebound in the user's modules: ``rebind_taken_earlier``). Code and values that
hold either must get one key, or a notebook misses where its cells ran in another order: the keying asks
``original_of`` first. Kept apart, with no imports of ours, so every layer can use it.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ()

F = TypeVar("F", bound=Callable[..., Any])

# Our wrapper -> the function it replaced. Registered by identity, never read from an attribute: a user's function
# that carries ``_notebook_memo_original`` is still keyed by its own code. Few and made once, so held for good.
_ORIGINALS: dict[types.FunctionType, Any] = {}
_REPLACED: set[int] = set()  # ids of the functions replaced (each held in _ORIGINALS, so the id stays theirs)


def replacing(wrapper: F, original: Any) -> F:
    """Register ``wrapper`` as ours, standing for ``original``, and return it."""
    wrapper._notebook_memo_original = original  # type: ignore[attr-defined]  # for calls that must bypass it
    _ORIGINALS[wrapper] = original  # type: ignore[index]
    _REPLACED.add(id(original))
    return wrapper


def install(owner: Any, name: str, wrapper: Any) -> None:
    """Put our ``wrapper`` (a function, or a staticmethod holding one) at ``owner.name``, named for that place.

    Pickle saves a function by reference, as ``module.qualname``, and refuses one that is not the object found
    there: a wrapper named as the function it wraps (``random.seed`` wraps the bound ``Random.seed``, ``os.urandom``
    wraps ``posix.urandom``) could no longer go to a process pool. Named for where it lives, it pickles, and a
    worker gets whatever that place holds there (the library's own function where nothing was wrapped).
    """
    fn = wrapper.__func__ if isinstance(wrapper, staticmethod) else wrapper
    if isinstance(owner, types.ModuleType):
        fn.__module__, fn.__qualname__ = owner.__name__, name
    else:
        fn.__module__, fn.__qualname__ = owner.__module__, f"{owner.__qualname__}.{name}"
    setattr(owner, name, wrapper)


def original_of(fn: types.FunctionType) -> Any:
    """Return the function ``fn`` replaced where it is one of our wrappers (followed to the first that is not:
    a wrapper may wrap ours), else ``fn``."""
    original = _ORIGINALS.get(fn, fn)
    while type(original) is types.FunctionType and original in _ORIGINALS:
        original = _ORIGINALS[original]
    return original


def rebind_taken_earlier(replaced: dict[int, tuple[Any, Any]], is_users: Callable[[types.ModuleType], bool]) -> None:
    """Bind our wrapper where a module of the user's code holds, under any name, the function it replaced.

    ``replaced`` maps ``id(original)`` to ``(original, wrapper)``. A name bound before the wrapper was installed
    (``from random import seed`` in a notebook's first cell) holds the original, and calls through it are not
    seen; the wrapper calls the same function, so rebinding it changes nothing the code can tell but that.
    Libraries' modules are left as they are: what they call is theirs.
    """
    for module in list(sys.modules.values()):
        namespace = getattr(module, "__dict__", None)
        if type(namespace) is not dict:
            continue
        try:
            if replaced.keys().isdisjoint(map(id, namespace.values())):  # most modules: looked at in C
                continue
            held = [(name, value) for name, value in namespace.items() if id(value) in replaced]
        except RuntimeError:  # another thread bound a name meanwhile: seen at the next install, or missed
            continue
        if not isinstance(module, types.ModuleType) or not is_users(module):
            continue
        for name, value in held:
            original, wrapper = replaced[id(value)]
            if value is original and namespace.get(name) is original:
                namespace[name] = wrapper


# -- the library's own functions that read or set a global generator's state ------------------------------------

READS, SEEDS = "reads", "seeds"
# (what it does, generator, module, attribute): told by _random_state, which wraps them; an attribute
# "object.method" names a method of a generator object the module holds (torch.default_generator.get_state).
_STATE_SPECS: list[tuple[str, str, str, str]] = []
# id(function as the library made it) -> (what it does, generator, the function); and for a method of a generator
# object (``random._inst.getstate``, made anew on each lookup): (id(that object), name) -> (..., the object).
_state_functions: dict[int, tuple[str, str, Any]] = {}
_state_methods: dict[tuple[int, str], tuple[str, str, Any]] = {}
_state_seen = [-1]  # len(sys.modules) at the last look for libraries loaded since
# (generator, module, attribute path, whether every attribute reads the state): global generator objects whose state
# can be read past every wrapper (a copy, a pickle, a private attribute: np.random.mtrand._rand,
# torch.default_generator; any attribute of the legacy global's bit generator: its .state);
# id(object) -> (generator, object, whether every attribute reads the state)
_OBJECT_SPECS: list[tuple[str, str, str, bool]] = []
_state_objects: dict[int, tuple[str, Any, bool]] = {}
# (module, attribute path) of the places among those where code binds another object at run time, with no module
# loaded (``np.random.mtrand._rand = RandomState()``, ``np.random.set_bit_generator``); the prefixes of the modules
# of those objects' classes; and the identities of what was there at the last look (see _state_object)
_REBOUND_SPECS: list[tuple[str, list[str]]] = []
_REBOUND_MODULES: list[tuple[str, ...]] = [()]
_rebound_seen: list[tuple[int, ...]] = [()]


def note_state_functions(specs: list[tuple[str, str, str, str]]) -> None:
    """Register the library functions that read (READS) or set (SEEDS) a global generator's state."""
    _STATE_SPECS.extend(specs)
    _state_seen[0] = -1


def note_state_objects(specs: list[tuple[str, str, str, bool]], rebound: tuple[str, list[str]] = ("", [])) -> None:
    """Register the global generator objects (``(generator, module, attribute path, every attribute)``) whose state
    code can read where no wrapper sees it: a body that reaches one and hands it on or reads its private parts (any
    attribute, where ``every attribute``) reads that state.

    ``rebound``: the prefix of the modules of the classes of the objects code may bind at some of those places at run
    time, and those places' paths (looked for again when a value of such a class is met unregistered)."""
    _OBJECT_SPECS.extend(specs)
    prefix, paths = rebound
    if paths:
        _REBOUND_MODULES[0] += (prefix,)
        _REBOUND_SPECS.extend((spec[1], spec[2].split(".")) for spec in specs if spec[2] in paths)
    _state_seen[0] = -1


def _look_for_state_functions() -> None:
    """Register the state functions of the libraries loaded since the last look, as the library made them."""
    modules = sys.modules
    _state_seen[0] = len(modules)
    _look_for_state_objects()
    for what, generator, module_name, attr in _STATE_SPECS:
        holder, _, method = attr.rpartition(".")
        if holder:
            owner = getattr(modules.get(module_name), holder, None)
            if owner is not None:
                _state_methods[(id(owner), method)] = (what, generator, owner)
                if isinstance(owner, type):  # _random.Random.getstate held as a value (a dict item), as made
                    _note_state_function(what, generator, vars(owner).get(method))
            continue
        _note_state_function(what, generator, getattr(modules.get(module_name), attr, None))


def _look_for_state_objects() -> None:
    """Register the global generator objects found now at their places (a step through one of our wrappers goes to
    the function it replaced: ``numpy.random.get_state.__self__``).

    Those registered before stay: code may bind another object there (``np.random.mtrand._rand = RandomState()``,
    ``np.random.set_bit_generator``) while the library's functions bound to the first still draw from it."""
    modules = sys.modules
    for generator, module_name, path, every in _OBJECT_SPECS:
        owner = modules.get(module_name)
        for attr in path.split("."):
            owner = getattr(owner, attr, None)
            if type(owner) is types.FunctionType:
                owner = original_of(owner)
        if owner is not None:
            _state_objects[id(owner)] = (generator, owner, every)


def _rebound_mark() -> tuple[int, ...]:
    """Return the identities of the objects now at the places code rebinds (``np.random.mtrand._rand``, its bit
    generator): each registered one is held, so an identity is never another object's."""
    modules = sys.modules
    mark = []
    for module_name, path in _REBOUND_SPECS:
        owner = modules.get(module_name)
        for attr in path:
            owner = getattr(owner, attr, None)
        mark.append(id(owner))
    return tuple(mark)


def _state_object(value: Any) -> tuple[str, Any, bool] | None:
    """Return the registration of ``value`` as a global generator object, looking at the places code rebinds again
    where it is of a class found there but not registered, and something else is there since the last look."""
    found = _state_objects.get(id(value))
    if found is not None and found[1] is value:
        return found
    module = getattr(type(value), "__module__", None)
    if type(module) is not str or not module.startswith(_REBOUND_MODULES[0]):
        return None
    mark = _rebound_mark()
    if mark == _rebound_seen[0]:
        return None
    _rebound_seen[0] = mark
    _look_for_state_objects()
    found = _state_objects.get(id(value))
    return found if found is not None and found[1] is value else None


def _note_state_function(what: str, generator: str, fn: Any) -> None:
    """Register ``fn`` (or the function it replaced, where it is our wrapper) as a state function, and the
    method of a generator object it is bound to."""
    if fn is None:
        return
    if type(fn) is types.FunctionType:
        fn = original_of(fn)
    if id(fn) in _state_functions:
        return
    _state_functions[id(fn)] = (what, generator, fn)
    owner = getattr(fn, "__self__", None)
    name = getattr(fn, "__name__", None)
    if owner is not None and not isinstance(owner, types.ModuleType) and isinstance(name, str):
        _state_methods[(id(owner), name)] = (what, generator, owner)


_BOUND = (types.MethodType, types.BuiltinMethodType)  # random._inst.getstate; torch.default_generator.get_state


def unseen_state_function(value: Any) -> tuple[str, str] | None:
    """Return ``(READS or SEEDS, generator)`` when ``value`` is a library function that reads or sets a global
    generator's state and that no wrapper of ours stands in front of: the function as the library made it
    (taken before it was wrapped), or a method of the generator made anew (``random._inst.getstate``). Its calls
    are not seen, so keying that meets it must assume them. Our wrapper (whose calls are seen) gives None."""
    if _state_seen[0] != len(sys.modules):
        _look_for_state_functions()
    found = _state_functions.get(id(value))
    if found is not None and found[2] is value:
        return found[0], found[1]
    owner = getattr(value, "__self__", None) if type(value) in _BOUND else None
    return None if owner is None else unseen_state_method(owner, getattr(value, "__name__", ""))


def unseen_state_method(owner: Any, name: str) -> tuple[str, str] | None:
    """Return ``(READS or SEEDS, generator)`` when ``owner.name`` is a method reading or setting a global
    generator's state (``random._inst.getstate``): made anew on each lookup, never through our wrapper."""
    if _state_seen[0] != len(sys.modules):
        _look_for_state_functions()
    found = _state_methods.get((id(owner), name))
    return (found[0], found[1]) if found is not None and found[2] is owner else None


def state_object_read(value: Any, attr: str | None) -> tuple[str, str] | None:
    """Return ``(READS, generator)`` when ``value`` is a global generator object whose state a body reads past our
    wrappers by reaching it: handed on as a whole (``attr`` None: ``copy.deepcopy(np.random.mtrand._rand)``) or
    through a private attribute (``_bit_generator``, ``__reduce__``). Its public methods draw or seed, which the run
    sees, or are state functions of their own (unseen_state_method); a bit generator's read it (``.state``)."""
    if _state_seen[0] != len(sys.modules):
        _look_for_state_functions()
    found = _state_object(value)
    if found is None or (attr is not None and not attr.startswith("_") and not found[2]):
        return None
    return READS, found[0]


def seeder_of(value: Any) -> str | None:
    """Return the generator whose whole state ``value`` sets (a seeding function, ours or as the library made it, or
    a generator object's own: ``torch.default_generator.manual_seed``), or None."""
    found = unseen_state_function(original_of(value) if type(value) is types.FunctionType else value)
    return found[1] if found is not None and found[0] == SEEDS else None


def rebound_at_first_run(value: Any) -> bool:
    """Return True when ``value`` is a state function as the library made it that is not wrapped yet: a global
    name of the user's holding it is bound to the wrapper as the first memoized run starts
    (``rebind_taken_earlier``), so its calls are seen."""
    if _state_seen[0] != len(sys.modules):
        _look_for_state_functions()
    return id(value) in _state_functions and _state_functions[id(value)][2] is value and id(value) not in _REPLACED
