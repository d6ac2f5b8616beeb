"""The notebook's ``functools.lru_cache`` functions, watched from the first time a memoized call is keyed with one.

A call served from such a function's cache opens no file, yet what it returns came from what the function read
when it filled that entry. Every one met while keying a call (a global the body reads, an argument, an item of a
container, a method of a class) is registered here; from then on the files its runs read are noted for it (by
``_conditions``' audit hook, in memoized runs or not), and a run it serves from its cache takes them as its own.
Under IPython the notebook's own are also watched before a memoized call meets them (``discover``), so that what
its top level fills them with (``df = load_table()``, a look at the data) is seen.
"""

from __future__ import annotations

import builtins
import contextlib
import dis
import functools
import gc
import inspect
import itertools
import operator
import sys
import threading
import types
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._fingerprint import is_user_code

__all__ = ()


class HelperReads:
    """What the runs of one watched lru_cache function read since it was first watched (or last emptied)."""

    __slots__ = ("filling", "known", "reads")

    def __init__(self, known: bool) -> None:
        self.known = known  # every run of it that filled its cache was seen
        # (listed, absolute path) -> (the path to store, its real path, stat at the read), as Recorder's
        self.reads: dict[tuple[bool, str], tuple[str, str, list[int] | None]] = {}
        # id() of the frame of the fill that last read as the only fill since the cache was emptied (see _anew)
        self.filling: int | None = None


helpers: weakref.WeakKeyDictionary[Any, HelperReads] = weakref.WeakKeyDictionary()
# The code of each watched function -> its wrappers: a factory's wrappers share one code, and a frame does not say
# which of them runs it, so a read there is noted for each (at worst a miss).
codes: dict[types.CodeType, weakref.WeakSet[Any]] = {}
_lock = threading.RLock()  # a namespace is judged inside the audit hook, which watching may set off
_ABSENT = object()
WRAPPER: Any = functools._lru_cache_wrapper  # type: ignore[attr-defined]
_on_first: list[Callable[[], None]] = []  # called once a function is watched (installs the audit hook)
# While IPython runs the notebook: which lru_cache functions are the notebook's own, found at their first read by the
# name their frame runs under (see discover); None otherwise (a script).
discovering: Callable[[Any], bool] | None = None
# The code running in any thread when discovering started: a run of it begun before may have read unseen.
_running_before: frozenset[types.CodeType] = frozenset()
# A namespace's __name__ -> [(a namespace of that name, whether a frame running there may be a watched or
# discoverable function's)]. Reading a frame's code (or calling id()) raises an audit event that our own hook
# answers, about half a microsecond, so the frames of library code (IPython's, threading's, a pool's), tens around
# each read, are passed over by their namespace. Emptied whenever what it depends on changes.
_namespaces: dict[object, list[tuple[dict[str, Any], bool]]] = {}
_SAME_NAME = 8  # namespaces kept under one name (IPython's and a script's "__main__"; exec's, made anew)
# The namespaces of the watched functions: their frames are looked into wherever they run.
_watched_namespaces: set[int] = set()
# This package's modules, by name: where the user's code we call while recording nothing begins (see
# states_in_users_code).
_PACKAGE = __name__.rpartition(".")[0]
_IN_PACKAGE = _PACKAGE + "."


def on_watch(callback: Callable[[], None]) -> None:
    """Call ``callback`` whenever a function starts being watched."""
    _on_first.append(callback)


def discover(judge: Callable[[Any], bool] | None) -> None:
    """Watch each lru_cache function that ``judge`` accepts from its first read on (None: stop).

    Its frame names it: the global of its code's name in its module is the wrapper around that code. Found there
    while empty, every entry it holds from then on was filled where its reads are seen, at the notebook's top level
    too (``@lru_cache def load(): ...; df = load()`` in one cell); found holding entries, it stays unknown.
    ``judge`` accepts no function of a library module's namespace (``is_user_code``): frames running there are
    passed over unread."""
    global discovering, _running_before
    if judge is not None:
        for callback in _on_first:
            callback()  # the reads are seen from here on
        if discovering is None:
            _running_before = frozenset(code for top in frames_of_threads().values() for code in _codes_of(top))
    discovering = judge
    with _lock:
        _forget_namespaces()


def _codes_of(frame: types.FrameType | None) -> Iterable[types.CodeType]:
    while frame is not None:
        yield frame.f_code
        frame = frame.f_back


def is_helper(value: Any) -> bool:
    """Return True when ``value`` is a functools.lru_cache wrapper around a Python function."""
    return isinstance(value, functools._lru_cache_wrapper) \
        and isinstance(getattr(value, "__wrapped__", None), types.FunctionType)  # type: ignore[attr-defined]


def watch(wrapper: Any, known: bool = True) -> None:
    """Watch the user's lru_cache function ``wrapper`` (met while keying a call) from now on. What its cache holds
    already was filled where its reads were not seen: it stays unknown until emptied (see ``started``), as does one
    not ``known`` (a run of it may have read unseen)."""
    if wrapper in helpers:
        return
    with _lock:
        if wrapper in helpers:
            return
        for callback in _on_first:
            callback()  # before its runs can read: they are seen from here on
        helpers[wrapper] = HelperReads(known=known and wrapper.cache_info().currsize == 0)
        for gone in [code for code, wrappers in codes.items() if not wrappers]:
            del codes[gone]  # functions redefined since: their code need not be kept
        codes.setdefault(wrapper.__wrapped__.__code__, weakref.WeakSet()).add(wrapper)
        _watched_namespaces.add(id(wrapper.__wrapped__.__globals__))  # a library's too: looked into from now on
        _forget_namespaces()


def started() -> list[tuple[Any, int]]:
    """Return each watched function with its cache hits now, as a memoized run starts; one emptied since
    (``cache_clear()``) is known again, with nothing read."""
    found: list[Any] = []
    for wrapper, state in list(helpers.items()):
        info = wrapper.cache_info()
        # Emptied, and not filled since: a fill under way (the run starts inside it, a loader calling a memoized
        # function) has counted a miss, and what it read before the run is its own.
        if info.misses == 0 and (state.reads or not state.known):
            _hand_down(wrapper, state)
            helpers[wrapper] = HelperReads(known=True)
        found.append((wrapper, int(info.hits)))
    return found


def _hand_down(emptied: Any, state: HelperReads) -> None:
    """Give what ``emptied`` read (or that it was unknown) to the watched functions still holding entries that
    reach it: those entries may have been made from what it served, and outlive its ``cache_clear()``."""
    unknown = not state.known and may_read(emptied)
    for outer, outer_state in list(helpers.items()):
        if outer is emptied or not outer.cache_info().currsize \
                or not any(inner is emptied for inner in inner_helpers(outer)):
            continue
        outer_state.known = outer_state.known and not unknown
        for read, noted in state.reads.items():
            outer_state.reads.setdefault(read, noted)


def inner_helpers(wrapper: Any) -> list[Any]:
    """Return the lru_cache functions the code of ``wrapper`` may call, at any depth, ``wrapper`` left out.

    What one of them serves from its cache was read when it filled that entry, not in ``wrapper``'s own fill: found
    through globals, closures, attributes of modules, classes and objects (``mod.raw()``, ``REPO.load()``,
    ``self.load()`` in a method), the notebook's plain functions and other lru_cache functions they call, and the
    arguments its cache holds entries for (``parsed(raw, path)``: see ``_handed``)."""
    found: dict[int, Any] = {}
    _visit(wrapper, set(), found)
    found.pop(id(wrapper), None)
    return list(found.values())


def _reach(fn: types.FunctionType, seen: set[types.CodeType], found: dict[int, Any]) -> None:
    if fn.__code__ in seen:
        return
    seen.add(fn.__code__)
    free = _closure_values(fn)
    owner = _owner_class(fn)
    first = fn.__code__.co_varnames[0] if owner is not None and fn.__code__.co_argcount else None
    _reach_code(fn.__code__, fn.__globals__, free, (first, owner), seen, found)


def _owner_class(fn: types.FunctionType) -> type | None:
    """Return the class a method ``fn`` was defined in, found by its qualified name in its module, if any."""
    parts = fn.__qualname__.split(".")
    if len(parts) < 2 or "<locals>" in parts:
        return None
    value: Any = fn.__globals__.get(parts[0])
    for part in parts[1:-1]:
        value = _static_attribute(value, part)
    return value if isinstance(value, type) else None


def _reach_code(code: types.CodeType, namespace: dict[str, Any], free: dict[str, Any],
                this: tuple[str | None, type | None], seen: set[types.CodeType], found: dict[int, Any]) -> None:
    held: Any = _ABSENT  # what the instruction before loaded: the owner of an attribute read next
    for ins in dis.get_instructions(code):
        value: Any = _ABSENT
        if ins.opname in _LOADS:
            value = namespace.get(ins.argval, _ABSENT)
        elif ins.opname in ("LOAD_DEREF", "LOAD_CLASSDEREF"):
            value = free.get(ins.argval, _ABSENT)
        elif ins.opname == "LOAD_FAST" and this[0] is not None and ins.argval == this[0]:
            value = this[1]  # self or cls in a method: its class's attributes
        elif ins.opname in _ATTRIBUTES and held is not _ABSENT:
            value = _static_attribute(held, ins.argval)
        elif ins.opname in ("PRECALL", "CACHE", "PUSH_NULL"):
            continue
        held = _visit(value, seen, found) if value is not _ABSENT else _ABSENT
    for const in code.co_consts:  # lambdas, comprehensions and functions defined inside it
        if isinstance(const, types.CodeType) and const not in seen:
            seen.add(const)
            _reach_code(const, namespace, free, this, seen, found)


def _visit(value: Any, seen: set[types.CodeType], found: dict[int, Any]) -> Any:
    """Note ``value`` when it is an lru_cache function and walk the code it runs; return what an attribute read
    next is read from (_ABSENT where nothing is)."""
    if isinstance(value, (staticmethod, classmethod, types.MethodType)):
        value = value.__func__
    elif isinstance(value, functools.partial):
        value = value.func
    if isinstance(value, functools._lru_cache_wrapper):  # type: ignore[attr-defined]
        if id(value) in found:
            return _ABSENT
        found[id(value)] = value
        wrapped = getattr(value, "__wrapped__", None)
        if isinstance(wrapped, types.FunctionType):
            _reach(wrapped, seen, found)  # a library's too: its own lru_cache functions may serve it
        for argument in _handed(value):
            _visit_argument(argument, seen, found)
        return _ABSENT
    if isinstance(value, types.FunctionType):
        if is_user_code(value):
            _reach(value, seen, found)
        return _ABSENT
    if isinstance(value, _PURE_DATA):
        return _ABSENT
    if type(value) in _CONTAINERS:  # LOADERS['raw']() or a list of loaders: what it holds may be called
        _visit_items(value, seen, found, 2)
        return _ABSENT
    return value  # a module, a class, an object: its attributes may be lru_cache functions


_CONTAINERS = frozenset({dict, list, tuple, set, frozenset})
_ITEMS = 1000  # of a container, looked at for functions: a table of data is not a registry of loaders


def _visit_items(container: Any, seen: set[types.CodeType], found: dict[int, Any], depth: int) -> None:
    """Visit the functions a global container holds (a registry of loaders), and those of the containers in it."""
    items = container.values() if type(container) is dict else container
    for item in itertools.islice(list(items), _ITEMS):
        if type(item) in _CONTAINERS:
            if depth > 1:
                _visit_items(item, seen, found, depth - 1)
        elif callable(item) and not isinstance(item, type):
            _visit(item, seen, found)


def _handed(wrapper: Any) -> list[Any]:
    """Return the arguments of the entries ``wrapper``'s cache holds that may be or hold code to call (a loader,
    a bound method, a partial, an object): ``parsed(raw, path)`` calls what it was handed, which its code does not
    name. lru_cache keeps no list of its keys but the collector's: its cache dict is its last referent that is a
    dict other than its ``__dict__`` (a bounded cache's keys and results come before it, and a result may be a
    dict). Asked after a miss only, and for each miss of a body it serves: see ``_new_keys`` for what is looked
    through again."""
    own = getattr(wrapper, "__dict__", None)
    cache = None
    for held in gc.get_referents(wrapper):
        if type(held) is dict and held is not own:
            cache = held
    if not cache:
        _walked.pop(wrapper, None)
        return []
    keys, found = _new_keys(wrapper, cache)
    _loaders_among(keys, found)
    return list(found.values())


# Per lru_cache function, what its keys held when last looked through: the newest key then (held: its identity
# marks where the walk stopped), how many keys there were, and the arguments found among them (by id).
_walked: weakref.WeakKeyDictionary[Any, tuple[Any, int, dict[int, Any]]] = weakref.WeakKeyDictionary()


def _new_keys(wrapper: Any, cache: dict[Any, Any]) -> tuple[list[Any], dict[int, Any]]:
    """Return the keys of ``cache`` not looked through yet, and where to add the arguments found among them (those
    found before included), noting the walk for the next time.

    lru_cache adds each entry at the end of its dict (a bounded one too: it drops the oldest key and adds the new
    one), so the keys after the newest one seen last time are the new ones, and where the count is then the old
    count plus theirs, none was dropped. Else (emptied by ``cache_clear()``, an entry evicted) all are looked through
    again, so that what was handed only to dropped entries is no longer found. The newest key must be a tuple, made
    anew for each entry: a lone int or str argument is its own key, and the same object could come back after a
    ``cache_clear()`` at the same count."""
    known = _walked.get(wrapper)
    keys: list[Any] | None = None
    if known is not None:
        newest, count, found = known
        # In one C call, with no Python code between: another thread cannot add a key meanwhile.
        fresh = list(itertools.takewhile(functools.partial(operator.is_not, newest), reversed(cache)))
        if len(fresh) < len(cache) and len(cache) == count + len(fresh):
            keys, found, total = fresh, dict(found), count + len(fresh)
            newest = fresh[0] if fresh else newest
    if keys is None:
        keys = list(cache)
        found, total = {}, len(keys)
        newest = keys[-1] if keys else None
    if type(newest) is tuple:
        _walked[wrapper] = (newest, total, found)
    else:
        _walked.pop(wrapper, None)
    return keys, found


def _loaders_among(keys: list[Any], found: dict[int, Any]) -> None:
    """Add to ``found`` the arguments held in ``keys`` (an lru_cache's) that are not plain numbers or text."""
    # Over the C iterators: a cache of half a million keys of numbers is looked through in milliseconds.
    tuples = itertools.compress(keys, map(operator.is_, map(type, keys), itertools.repeat(tuple)))
    items = list(itertools.chain.from_iterable(tuples))  # a lone str or int argument is its own key
    others = itertools.compress(items, map(operator.not_, map(isinstance, items, itertools.repeat(_PURE_DATA))))
    for item in others:
        if type(item) is not object:  # object: the keyword mark
            found.setdefault(id(item), item)


def _visit_argument(value: Any, seen: set[types.CodeType], found: dict[int, Any], depth: int = 2) -> None:
    """Visit what an lru_cache function was handed: a function, or an object (a class, a module) whose lru_cache
    functions and methods its code may call, the user's only (a library's object is data to it)."""
    if isinstance(value, _PURE_DATA) or (isinstance(value, type) and not is_user_code(value)):
        return
    if type(value) in _CONTAINERS:
        if depth > 1:
            for item in itertools.islice(list(value.values() if type(value) is dict else value), _ITEMS):
                _visit_argument(item, seen, found, depth - 1)
        return
    if isinstance(value, functools.partial) and depth > 1:  # partial(apply, raw): what it will hand on too
        for item in (*value.args, *value.keywords.values()):
            _visit_argument(item, seen, found, depth - 1)
    owner = _visit(value, seen, found)
    if owner is _ABSENT:
        return
    namespaces: list[Mapping[str, Any]] = []
    if isinstance(owner, types.ModuleType):
        if is_user_code(owner):
            namespaces.append(vars(owner))
    else:
        cls = owner if isinstance(owner, type) else type(owner)
        namespaces.extend(vars(klass) for klass in cls.__mro__ if klass is not object and is_user_code(klass))
        try:  # its own attributes, no __getattr__ of its class asked
            held = None if isinstance(owner, type) else object.__getattribute__(owner, "__dict__")
        except Exception:  # no __dict__ (slots), or one that misbehaves: its class's attributes only
            held = None
        if type(held) is dict:
            namespaces.append(held)  # REPO.loader = raw: an attribute it holds
    for namespace in namespaces:
        for attribute in itertools.islice(list(namespace.values()), _ITEMS):
            if callable(attribute) or isinstance(attribute, (staticmethod, classmethod)):
                if not isinstance(attribute, type):
                    _visit(attribute, seen, found)


def _static_attribute(owner: Any, name: str) -> Any:
    """Return ``owner``'s attribute ``name`` without running a property or ``__getattr__`` (_ABSENT if none)."""
    if owner is _ABSENT:
        return _ABSENT
    try:
        return inspect.getattr_static(owner, name, _ABSENT)
    except Exception:  # an object whose __dict__ or class misbehaves: nothing found there
        return _ABSENT


def states_around(frame: types.FrameType | None, threads: Iterable[int] = (), every: bool = False
                  ) -> list[HelperReads]:
    """Return the states of the watched functions running at ``frame`` (or below it), and in the ``threads`` named
    other than this one (``every``: in every other thread): a function that hands its reading to a pool waits for
    it there."""
    found = _states_below(frame)
    me = threading.get_ident()
    others = [] if every else [ident for ident in threads if ident != me]
    if every or others:
        frames = frames_of_threads()
        for ident in (frames if every else others):
            if ident != me:
                found.extend(_states_below(frames.get(ident)))
    return found


def frames_of_threads() -> dict[int, types.FrameType]:
    """Return each thread's current frame (``sys._current_frames()``), the garbage collector held off meanwhile.

    CPython 3.11 makes the frame objects it returns while it holds the lock on the list of threads: a collection
    that allocation sets off may free a ``threading.local``, whose clean-up takes that same lock, and the thread
    then waits on itself for ever (a pool's thread reading a file while a body ran hung this way in the suite)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return sys._current_frames()
    finally:
        if enabled:
            gc.enable()


def states_in_users_code(frame: types.FrameType | None) -> list[HelperReads]:
    """Return the states of the watched functions running at ``frame`` or below it, up to the first frame of this
    package. Where nothing is recorded (our keying, lookups and stores) a read is a watched function's only where
    the user's code we called runs it (a ``__memo_key__``, a reduction hashed, a result pickled): our own reads
    there (a store's) are no function's, even where one runs further out (a loader calling a memoized function)."""
    return _states_below(frame, until_ours=True)


def _states_below(frame: types.FrameType | None, until_ours: bool = False) -> list[HelperReads]:
    found: list[Any] = []
    judge = discovering
    namespaces = _namespaces
    while frame is not None:
        namespace = frame.f_globals
        name = namespace.get("__name__")
        if until_ours and type(name) is str and (name == _PACKAGE or name.startswith(_IN_PACKAGE)):
            break
        try:
            known = namespaces.get(name, ())
        except TypeError:  # a __name__ that cannot be hashed: judged at each frame
            known = ()
        looked: bool | None = None
        for judged, verdict in known:
            if judged is namespace:
                looked = verdict
                break
        if not (_judge_namespace(namespace) if looked is None else looked):
            frame = frame.f_back
            continue
        code = frame.f_code
        # A frame's own name first: a code object is hashed from its whole content at each lookup.
        if judge is not None and type(value := namespace.get(code.co_name)) is WRAPPER \
                and value not in helpers:
            _discover(value, code, judge)
            if (state := helpers.get(value)) is not None:
                state.filling = id(frame)  # watched from this fill on: what it says of the fill stands
        wrappers = codes.get(code) if codes else None
        if wrappers:
            running = list(wrappers)
            if len(running) == 1:
                state = helpers.get(running[0])
                if state is not None:
                    found.append(_anew(running[0], state, frame))
            else:  # a factory's: which of them this frame fills is not known
                found.extend(state for wrapper in running if (state := helpers.get(wrapper)) is not None)
        frame = frame.f_back
    return found


def _anew(wrapper: Any, state: HelperReads, frame: types.FrameType) -> HelperReads:
    """Return the state to note a read in ``wrapper``'s fill running in ``frame``: a new one at the first read of
    the only fill since its cache was emptied, whose old entries' reads and unseen fills are gone with them (a
    ``cache_clear()``, then a memoized call whose keying fills it again before any run starts); else ``state``."""
    if state.filling == id(frame):
        return state
    info = wrapper.cache_info()
    # Nothing held and one fill begun since the emptying: this one (a frame of the same code called otherwise, not
    # through the wrapper, would count no miss of its own).
    if info.currsize or info.misses != 1:
        return state
    if state.reads or not state.known:
        _hand_down(wrapper, state)
        state = helpers[wrapper] = HelperReads(known=True)
    state.filling = id(frame)
    return state


def _judge_namespace(namespace: dict[str, Any]) -> bool:
    """Return whether a frame running in ``namespace`` may be a watched or discoverable function's (kept)."""
    looked: bool
    with _lock:  # judged and kept with no function watched meanwhile
        if id(namespace) in _watched_namespaces:
            looked = True
        elif discovering is None:
            looked = False  # only watched functions are sought, and none runs here
        else:
            name = namespace.get("__name__")
            module = sys.modules.get(name) if isinstance(name, str) else None
            try:
                # discover's judge takes no function of a library module's namespace; any other (a notebook's,
                # exec's) may hold the notebook's loaders
                looked = module is None or getattr(module, "__dict__", None) is not namespace \
                    or is_user_code(module)
            except Exception:  # inside the audit hook: a module that misbehaves is looked into, not open()'s error
                looked = True
        with contextlib.suppress(TypeError):  # a name that cannot be hashed: judged at each frame
            same = _namespaces.setdefault(namespace.get("__name__"), [])
            if len(same) >= _SAME_NAME:
                del same[0]
            same.append((namespace, looked))
    return looked


def _forget_namespaces() -> None:
    """Judge every namespace anew (a function was watched, discovering started or stopped); call with _lock held."""
    for same in _namespaces.values():
        same.clear()  # a walk under way holds its list: it judges anew too
    _namespaces.clear()


def _discover(wrapper: Any, code: types.CodeType, judge: Callable[[Any], bool]) -> None:
    """Watch ``wrapper``, the global named as the frame running ``code`` is, when it is the notebook's lru_cache
    function around that code. Called at a read, before it is noted: empty until now, it was seen whenever it read.

    Asked even where ``codes`` holds that code: code objects compare by content, and a cell run again (``def load``
    anew, in a kernel that names a cell's file by its text) makes an equal code for a new wrapper."""
    # Inside the audit hook: an error here would fail the user's open(), so a wrapper lacking __wrapped__ is skipped.
    if getattr(getattr(wrapper, "__wrapped__", None), "__code__", None) is code and judge(wrapper):
        watch(wrapper, known=code not in _running_before)


# What a pure function may call: builtins that neither read nor run code given as text, and standard modules of
# computation alone. Anything else (open, a library's loader, a method of an argument) may read a file.
_PURE_BUILTINS = frozenset({
    "abs", "all", "any", "ascii", "bin", "bool", "bytes", "callable", "chr", "complex", "dict", "divmod",
    "enumerate", "filter", "float", "format", "frozenset", "hash", "hex", "int", "isinstance", "issubclass", "iter",
    "len", "list", "map", "max", "min", "next", "oct", "ord", "pow", "range", "repr", "reversed", "round", "set",
    "slice", "sorted", "str", "sum", "tuple", "zip", "None", "True", "False", "NotImplemented", "Ellipsis",
})
_PURE_MODULES = frozenset({"math", "cmath", "operator", "itertools", "functools", "collections", "statistics",
                           "fractions", "decimal", "heapq", "bisect", "string", "numbers", "_operator",
                           "_functools", "_collections", "_heapq", "_bisect", "_statistics", "_decimal"})
_PURE_DATA = (int, float, complex, str, bytes, bool, type(None))
_LOADS = frozenset({"LOAD_GLOBAL", "LOAD_NAME"})
_ATTRIBUTES = frozenset({"LOAD_ATTR", "LOAD_METHOD"})
_OTHER_CODE = frozenset({"IMPORT_NAME", "IMPORT_FROM", "IMPORT_STAR", "STORE_GLOBAL", "DELETE_GLOBAL",
                         "LOAD_SUPER_ATTR", "STORE_ATTR", "DELETE_ATTR"})


def may_read(wrapper: Any) -> bool:
    """Return whether the lru_cache function ``wrapper`` may read files: unless its code, and that of the functions
    it reaches, calls only the builtins, standard modules and notebook functions that cannot (``fib``)."""
    return not _pure(wrapper.__wrapped__, set())


def _pure(fn: types.FunctionType, seen: set[types.CodeType]) -> bool:
    if fn.__code__ in seen:
        return True  # recursion: judged by the rest of its code
    seen.add(fn.__code__)
    return _pure_code(fn.__code__, fn.__globals__, _closure_values(fn), seen)


def _closure_values(fn: types.FunctionType) -> dict[str, Any]:
    """Return what each filled cell of ``fn``'s closure holds, by its name."""
    free: dict[str, Any] = {}
    for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or (), strict=False):
        with contextlib.suppress(ValueError):  # a cell not yet filled
            free[name] = cell.cell_contents
    return free


def _pure_code(code: types.CodeType, namespace: dict[str, Any], free: dict[str, Any],
               seen: set[types.CodeType]) -> bool:
    held: Any = None  # the pure module the instruction before loaded, if any: its attributes may be read
    for ins in dis.get_instructions(code):
        value, name = _ABSENT, ins.argval
        if ins.opname in _LOADS:
            value = namespace.get(name, _ABSENT)
            if value is _ABSENT:
                if name not in _PURE_BUILTINS and not _builtin_exception(name):
                    return False
                held = None
                continue
        elif ins.opname in ("LOAD_DEREF", "LOAD_CLASSDEREF") and name in free:
            value = free[name]
        elif ins.opname in _ATTRIBUTES:
            if held is None:
                return False  # a method of a value: whatever its class does
            value = getattr(held, name, _ABSENT)
        elif ins.opname in _OTHER_CODE:
            return False
        if value is not _ABSENT:
            if not _pure_value(value, seen):
                return False
            held = value if isinstance(value, types.ModuleType) else None
        elif ins.opname not in ("PRECALL", "CACHE", "PUSH_NULL"):
            held = None
    for const in code.co_consts:  # lambdas, comprehensions and functions defined inside it
        if isinstance(const, types.CodeType) and const not in seen:
            seen.add(const)
            if not _pure_code(const, namespace, free, seen):
                return False
    return True


def _builtin_exception(name: str) -> bool:
    value = getattr(builtins, name, None)
    return isinstance(value, type) and issubclass(value, BaseException)


def _pure_value(value: Any, seen: set[types.CodeType]) -> bool:
    """Whether calling or reading ``value`` (a global, a closure's cell, a pure module's attribute) reads no file."""
    if isinstance(value, _PURE_DATA) or (isinstance(value, (tuple, frozenset))
                                         and all(isinstance(item, _PURE_DATA) for item in value)):
        return True
    if isinstance(value, types.ModuleType):
        return value.__name__ in _PURE_MODULES
    if isinstance(value, functools._lru_cache_wrapper):  # type: ignore[attr-defined]
        value = getattr(value, "__wrapped__", None)
    if isinstance(value, types.FunctionType):
        if value.__module__ in _PURE_MODULES and value.__globals__.get("__name__") in _PURE_MODULES:
            return True
        return _pure(value, seen)
    if isinstance(value, (types.BuiltinFunctionType, type)):
        return getattr(value, "__module__", None) in _PURE_MODULES or (
            getattr(value, "__module__", None) == "builtins" and value.__name__ in _PURE_BUILTINS)
    return False
