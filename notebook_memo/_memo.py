"""The ``@memo`` decorator and the memoized-function object (sync and async)."""

from __future__ import annotations

import contextlib
import contextvars
import copy
import dataclasses
import functools
import importlib
import inspect
import os
import pickle
import sqlite3
import sys
import threading
import time
import types
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

import cloudpickle
import xxhash

from . import _conditions, _config, _random_state
from ._attribute_writes import HeldAttribute, attributes_changed, nothing_written, run_writes
from ._bytecode import global_references, global_stores
from ._conditions import Conditions, NotRecordable, Recorder, Recorders
from ._config import EXPIRY_GRACE, INLINE_LIMIT, LOCK_POLL_MAX, QUICK_BODY, TTLLike, parse_ttl, resolve_lease, warn_once
from ._dependencies import (
    _PACKAGE_STATE,
    ID_STATES,
    STATE_MEMBERS,
    CodeState,
    CodeTracker,
    DataRead,
    Dependencies,
    clock_reads,
    decimal_settings,
    dependency_value,
    global_label,
    helpers_code,
    keys_variables,
    labels_bound_by_code,
    members_named,
    names_in_code,
    state_text,
    still_bound,
    subclasses_digest,
    torch_modes,
    torch_settings,
)
from ._errors import (
    ConfigurationError,
    MemoWarning,
    RecursiveCall,
    StaleEntriesWarning,
    StorageWarning,
    changed_argument,
)
from ._explain import (
    NOT_STORED,
    SHARED_ARGUMENTS,
    Explanation,
    after_compute,
    before_compute,
    caching_off,
    explain_call,
)
from ._fills import FillNotes, same_but_filled, unchanged_since_filled
from ._fingerprint import own_fingerprint
from ._inventory import delete_results, human_bytes, is_marker, owner
from ._left_settings import names_logger_setter
from ._notebook import current_notebook, owner_tag
from ._replaced import READS
from ._rules import rules_digest
from ._serialize import (
    ClassChanged,
    CorruptRecord,
    Payload,
    by_value,
    dumps,
    dumps_for_a_worker,
    head_json,
    importable,
    in_a_stream_by_value,
    meta_after,
    referring_to,
)
from .hashing import (
    CLOCK,
    IMMUTABLE_LEAVES,
    STATE_FUNCTION,
    aliasing_parts,
    cached_property_names,
    combine,
    content_hash,
    filled_cached_properties,
    framed,
    framed_head,
    keyword_values,
    leaf_digests,
    qualified_name,
    register_hasher,
    things_met,
)
from .stores import remote as _remote
from .stores._leases import Watch, computing, is_computing
from .stores.local import Store, StoredRecord, get_store, open_stores

if TYPE_CHECKING:
    import asyncio

__all__ = ()

R = TypeVar("R")
_disabled: contextvars.ContextVar[bool] = contextvars.ContextVar("notebook_memo_disabled", default=False)
_refreshing: contextvars.ContextVar[bool] = contextvars.ContextVar("notebook_memo_refreshing", default=False)
_MISS = object()
# The globals a body binds, itself or through its helpers: label -> (their namespace, name, value before the
# run, bound by the body's own code)
_Globals = dict[str, tuple[dict[str, Any], str, Any, bool]]


class _Bound(NamedTuple):
    """What a body may bind anew, as its run starts: globals, and attributes of classes and modules."""

    globals: _Globals
    attributes: dict[str, HeldAttribute]
    unknown: str | None = None  # what it does whose effects cannot be known (exec() of a text made at run time)


class _BindingFacts(NamedTuple):
    """What a body's code and its helpers' tell of what a run may bind or set, the same for each run of one code
    state: where they bind globals (namespace, name, label, and whether the code reads the name too), the helpers'
    code, and whether none of that code sets an attribute, takes a namespace whole or runs a text."""

    state: CodeState | None  # the state they were taken for; None: taken for one run
    own: tuple[tuple[dict[str, Any], str, str, bool], ...]
    helpers: tuple[tuple[dict[str, Any], str, str, bool], ...]
    helper_code: list[tuple[types.CodeType, dict[str, Any]]]
    nothing_written: bool


_NO_BINDINGS = _BindingFacts(None, (), (), [], False)


class _Prefix(NamedTuple):
    """What every call's key of one code state shares, made once per state: the framed bytes before the arguments,
    and what its dependencies say of every call alike."""

    state: CodeState | None  # the state it was made for; None: made for one call (a state that read mutable data)
    framing: bytes
    torch: bool  # its code uses torch: torch's modes and settings are keyed
    decimal: bool  # its code keys decimal's context itself
    left_out: bool  # it skipped a global, reads the clock or ids: said once (_left_out) on each call


_NO_PREFIX = _Prefix(None, b"", False, False, False)


class CacheInfo(NamedTuple):
    """Statistics of one memoized function, in the spirit of ``lru_cache.cache_info()``.

    ``currsize`` and ``maxsize`` read as in ``lru_cache``; they are properties, not fields, so the
    tuple keeps its five documented fields.
    """

    hits: int
    misses: int
    entries: int
    bytes: int
    saved_seconds: float

    @property
    def currsize(self) -> int:
        """The number of entries on disk, as ``lru_cache`` names it."""
        return self.entries

    @property
    def maxsize(self) -> None:
        """Always None: no function has a size of its own (``configure(size_limit=...)`` bounds a directory)."""
        return None


@dataclass(frozen=True)
class Options:
    """How one function is memoized."""

    ttl: float | None = None
    ignore: frozenset[str] = frozenset()
    version: Any = None
    cache_dir: str | None = None
    skip_if: Callable[[Any], bool] | None = None
    mmap: bool = False
    track_versions: bool | None = None
    files: tuple[str, ...] = ()
    verbose: int | None = None  # a line per call at >= 1; None: configure(verbose=...)
    remote: str | None = None  # a remote of its own; "" for none; None: configure(remote=...)
    remote_read_only: bool | None = None  # None: configure(remote_read_only=...); set when sent to a worker


@dataclass
class _Reads:
    """What a call's dependencies named as its body started (label -> object), and the function's code then."""

    objects: dict[str, Any]
    code: types.CodeType
    volatile: bool  # its code state read mutable data, and is made anew (hashing it again) on each look


@dataclass
class Call:
    """One call, reduced to what its key is made of."""

    key: str
    arguments: dict[str, bytes]
    code: bytes  # the function's own code and its dependencies' code
    own: bytes  # the function's own code alone
    deps: Dependencies
    method: str  # how the function's own code was fingerprinted: source or bytecode
    # random generators the key was made of (in arguments, globals, objects): "#0", "#1"... in the order met
    generators: dict[str, Any] = dataclasses.field(default_factory=dict)
    absent: bool = False  # the last look found no row under the key (so a miss needs no report of why)
    mutable: bool = False  # an argument is not a plain value (int, str...): the body may change it in place
    extras: dict[str, str] = dataclasses.field(default_factory=dict)  # other parts of the key, said in words
    # the mutable data the code read: checked after a miss, then let go
    changeable: tuple[DataRead, ...] = ()
    deps_digest: bytes = b""  # the digest of every dependency (code and values) the key was made of
    # the functools.cached_property values each argument held as the body started (noted after a miss only)
    filled: dict[str, frozenset[str]] = dataclasses.field(default_factory=dict)
    # The arguments by name, when one is not a plain value: a result holding one of them is stored referring to
    # it by name, and served holding the argument of the call that reads it. Let go after the call.
    bound: list[tuple[str, Any]] | None = None
    # the _cache entries each pandas object met in the arguments and globals held when keyed, by id (see hashing)
    caches: dict[int, frozenset[str]] = dataclasses.field(default_factory=dict)
    # (READS or SEEDS, generator) for the functions reading or setting a global generator's state that keying met
    # where no wrapper sees their calls (random.getstate in a dict since before the first run): see _recorder
    unseen: frozenset[tuple[str, str]] = frozenset()


def _notes(found: list[Any], tag: Any) -> tuple[list[tuple[Any, ...]], list[Any]]:
    """Split what keying met (``found``) into the notes tagged ``tag`` (``(tag, ...)`` tuples) and the rest."""
    tagged: list[tuple[Any, ...]] = []
    rest: list[Any] = []
    for item in found:
        (tagged if type(item) is tuple and item and item[0] is tag else rest).append(item)
    return tagged, rest


def unseen_state_functions(found: list[Any]) -> tuple[frozenset[tuple[str, str]], list[Any]]:
    """Split what keying met (``found``) into the state functions met whose calls no wrapper sees (see Call.unseen)
    and the rest."""
    notes, rest = _notes(found, STATE_FUNCTION)
    return frozenset(note[1:] for note in notes), rest


def apply_unseen(recorder: Recorder, unseen: frozenset[tuple[str, str]]) -> None:
    """Tell a run's ``recorder`` of the state functions its keying met unseen: a reader is taken as read as the run
    starts (a seed before it then does not undo that), a seeder is named if the run is tied to the state it found
    (warn_random_result)."""
    for what, generator in unseen:
        if what == READS:
            recorder.read_state(generator)
        else:
            recorder.unseen_seeders.add(generator)


def changed_in_place(read: Iterable[DataRead], notes: FillNotes,
                     caches: Mapping[int, frozenset[str]] | None = None) -> str | None:
    """Return the label of the first data among ``read`` that the run changed in place, if any; an object that
    hashes no more counts as changed, one that only filled a ``functools.cached_property`` (``notes``: the run's
    fills, see _fills) or a pandas cache (``caches``: the entries held when keyed) does not."""
    for label, value, before, filled in read:
        if not same_but_filled(value, label, before, filled, notes, caches):
            return label
    return None


# Objects a body's run starts from whose classes have functools.cached_property values, with those they hold
# then: the arguments (by name) and the globals read (by label).
_Fills = tuple[dict[str, tuple[Any, frozenset[str]]], dict[str, tuple[Any, frozenset[str]]]]


# -- the registry of memoized functions ---------------------------------------------------------

_registry: weakref.WeakValueDictionary[str, MemoizedFunction[Any]] = weakref.WeakValueDictionary()


def registered() -> list[MemoizedFunction[Any]]:
    """Return the memoized functions alive in this process, newest definition of each name."""
    return list(_registry.values())


def function_id(qualified: str) -> str:
    """Return the tag under which every entry of a function is stored."""
    return xxhash.xxh3_128_hexdigest(qualified.encode())


def _identity(fn: types.FunctionType, qualified: str) -> str:
    """Return a function's id: its qualified name; for a lambda, which has no name of its own, also its code.

    Two different lambdas are two functions, never two versions of one (whose clean-up would
    delete the other's results).
    """
    if fn.__name__ != "<lambda>":
        return function_id(qualified)
    return function_id(f"{qualified}\0{own_fingerprint(fn)[0].hex()}")


# -- argument binding ---------------------------------------------------------------------------


class _Binder:
    """Binds a call's arguments to the signature, defaults applied, in parameter order."""

    def __init__(self, fn: Callable[..., Any], ignore: frozenset[str], shown: str) -> None:
        self.signature = inspect.signature(fn)
        params = list(self.signature.parameters.values())
        names = [p.name for p in params]
        unknown = ignore - set(names)
        if unknown:
            raise ValueError(
                f"ignore={sorted(unknown)} names no parameter of {fn.__qualname__}; "
                f"its parameters are {names}"
            )
        self.ignore = ignore
        # The defaults as bound: one reassigned (or a keyword default changed in place) means a new binder.
        self.seen = (fn.__defaults__, fn.__kwdefaults__, list((fn.__kwdefaults__ or {}).items()))
        self.simple = all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params)
        self.positional = self.simple and not ignore
        self.names = names
        self.defaults = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
        self.var_keyword = next((p.name for p in params if p.kind is inspect.Parameter.VAR_KEYWORD), None)
        # What an unhashable argument is called in the error (made once, not on every call).
        self.labels = _Labels(shown)
        self.heads = _Heads()

    def shared(self, bound: list[tuple[str, Any]], walks: dict[int, tuple[Any, Any]]) -> list[bytes]:
        """Return the key part saying which arguments share a mutable object or memory, wherever in them
        (``walks``: what hashing them noted, see ``things_met.walks``)."""
        return aliasing_parts(keyword_values(bound, self.var_keyword, walks), walks)

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[tuple[str, Any]]:
        names = self.names
        if not kwargs and self.positional and len(args) == len(names):
            return list(zip(names, args))  # every parameter given by position: nothing to fill in or leave out
        if self.simple and len(args) <= len(names) and (not kwargs or kwargs.keys() <= set(names[len(args):])):
            values = dict(zip(names, args))
            values.update(kwargs)
            if len(values) < len(names):
                for name in names[len(values):] if not kwargs else names:
                    if name not in values:
                        if name not in self.defaults:
                            break
                        values[name] = self.defaults[name]
            if len(values) == len(names):
                return [(n, values[n]) for n in names if n not in self.ignore]
        bound = self.signature.bind(*args, **kwargs)  # raises the usual TypeError
        bound.apply_defaults()
        return [(n, v) for n, v in bound.arguments.items() if n not in self.ignore]


_DIGEST_SIZE = 16  # content_hash's digests


class _Heads(dict[str, bytes]):
    """For each parameter name, what comes before its digest in the key's bytes: its framed length and name."""

    def __missing__(self, name: str) -> bytes:
        raw = name.encode() + b"\0"
        head = self[name] = framed_head(len(raw) + _DIGEST_SIZE) + raw
        return head


class _Labels(dict[str, str]):
    """``argument 'x' of f`` for each parameter name, made on first use."""

    def __init__(self, shown: str) -> None:
        super().__init__()
        self.shown = shown

    def __missing__(self, name: str) -> str:
        label = self[name] = f"argument '{name}' of {self.shown}"
        return label


# -- the memoized function ----------------------------------------------------------------------


class _KeyLock:
    """One thread's turn at computing a key of a function in this process (``MemoizedFunction._key_lock``)."""

    __slots__ = ("_entry", "_fn", "_key")

    def __init__(self, fn: MemoizedFunction[Any], key: str) -> None:
        self._fn, self._key = fn, key

    def __enter__(self) -> bool:
        fn = self._fn
        with fn._key_locks_guard:
            entry = fn._key_locks.get(self._key)
            if entry is None:
                entry = fn._key_locks[self._key] = [threading.Lock(), 0]
            entry[1] += 1
            waited = entry[1] > 1
        self._entry = entry
        try:
            entry[0].acquire()
        except BaseException:
            self._leave()
            raise
        return waited

    def __exit__(self, *exc: object) -> None:
        self._entry[0].release()
        self._leave()

    def _leave(self) -> None:
        fn, entry = self._fn, self._entry
        with fn._key_locks_guard:
            entry[1] -= 1
            if entry[1] == 0:
                del fn._key_locks[self._key]


_M = TypeVar("_M", bound=Callable[..., Any])


def _own_work(method: _M) -> _M:
    """Run a method of a memoized function (``explain``, ``clear``...) as its calls run: under its own remote
    (``@memo(remote=...)``), recording nothing. Its lookups and deletes are ours, not a body's reads, whether a
    body runs around it or in another thread (this thread is then taken to work for that body)."""

    @functools.wraps(method)
    def run(self: MemoizedFunction[Any], *args: Any, **kwargs: Any) -> Any:
        paused = _conditions.pause()
        token = self._choose_remote()
        try:
            return method(self, *args, **kwargs)
        finally:
            if token is not None:
                _remote.chosen.reset(token)
            _conditions.resume(paused)

    return run  # type: ignore[return-value]


class MemoizedFunction(Generic[R]):
    """A function whose results are kept on disk under content keys.

    Call it like the function it wraps. The extra methods take the same arguments:
    ``refresh`` recomputes and overwrites, ``uncached`` runs the body alone, ``is_cached``
    and ``invalidate`` look up and delete one entry, ``explain`` says why a call would hit
    or miss; ``clear`` deletes every entry and ``clear_stale`` those of older code.
    """

    __memo__ = True

    def __init__(self, fn: Callable[..., Any], options: Options) -> None:
        functools.update_wrapper(self, fn)
        self.__wrapped__ = fn
        self._fn = fn
        self._options = options
        self._binder = _Binder(fn, options.ignore, fn.__name__)
        self._name: str = fn.__name__
        self._qualified = qualified_name(fn)  # a script's __main__ is __mp_main__ in spawned workers: one name
        self._fid = _identity(fn, self._qualified)  # type: ignore[arg-type]
        # The notebook that defined it: clean-up deletes only entries this notebook's function stored.
        self._notebook = current_notebook() if fn.__module__ == "__main__" else None
        self._tag = owner_tag(self._fid, self._notebook)
        self._version = content_hash(options.version, "version") if options.version is not None else b""
        self._is_async = inspect.iscoroutinefunction(fn)
        self._is_method = "." in fn.__qualname__ and not fn.__qualname__.rpartition(".")[0].endswith("<locals>")
        self._pid = os.getpid()
        self._key_locks: dict[str, list[Any]] = {}
        self._key_locks_guard = threading.Lock()
        self._inflight: dict[tuple[int, str], asyncio.Future[Any]] = {}
        self._stale_checked = False
        self._changes_process: str | None = None  # how a run of it changed the process (see _changed_process)
        # For the code state last run (its dependencies): whether it reads files' sizes, the libraries it uses
        self._run_facts: tuple[Any, bool, tuple[str, ...]] = (None, False, ())
        self._names_known: tuple[Any, frozenset[str]] = (None, frozenset())  # names_in_code, by code state's deps
        # Its last run in this process ended within QUICK_BODY: the next miss skips the lease.
        self._quick = False
        self._tracker: CodeTracker | None = None
        self._tracker_by_code: CodeTracker | None = None  # for what travels to workers: see ``_reads_by_code``
        self._carried: list[CodeState | None] | None = None  # [the sender's state, ours when it arrived]
        self._sent_reads: dict[str, tuple[str, bytes]] = {}  # the sender's ``_reads_by_code``, with _carried
        self._prefix = _NO_PREFIX  # the key's framed parts before the arguments, and facts of its code state
        self._bindings = _NO_BINDINGS  # where its code binds and sets, for the code state kept in it
        # The metadata every record of one code state shares, and its JSON text: (deps, code, own, method, head).
        self._meta_head: tuple[Any, ...] = (None, b"", b"", "", ({}, "{"))
        self._last_store: tuple[_config.CallSettings, Store] | None = None
        # (key, folder) -> (its folder variant's key, the marker read that named it): see ``_folder_entry``
        self._folder_variants: dict[tuple[str, str], tuple[str, StoredRecord]] = {}
        self.last_call: Call | None = None
        self.last_hit = False
        # Why the latest computed call was not served though its key had an entry (expired, refreshed,
        # preconditions changed): asked before the run overwrote that entry; and that of the last real call.
        self._miss_report: Explanation | None = None
        self._last_report: Explanation | None = None
        self._last_error: str | None = None  # what the last real call raised
        self._ran_off = False  # the last real call ran with caching off
        self.hits = 0
        self.misses = 0
        self.saved_seconds = 0.0
        _registry[self._fid] = self
        if self._is_async:
            with contextlib.suppress(AttributeError):
                inspect.markcoroutinefunction(self)  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"<memoized {self._qualified}>"

    @property
    def qualified_name(self) -> str:
        return self._qualified

    @property
    def function_id(self) -> str:
        return self._fid

    @property
    def notebook(self) -> str | None:
        """The notebook that defined this function, when the front end says; None for module code."""
        return self._notebook

    def owns(self, meta: dict[str, Any]) -> bool:
        """Return whether a record's metadata belongs to this function as defined in this notebook."""
        return owner(meta) == (self._fid, self._notebook)

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return BoundMemoized(self, obj)

    # -- keys --------------------------------------------------------------------------------
    def _track_versions(self) -> bool:
        chosen = self._options.track_versions
        return _config.settings.track_versions if chosen is None else chosen

    def code_state(self) -> CodeState:
        """Return the function's code digest and dependencies as of now."""
        tracker = self._tracker
        if tracker is None or tracker.track_versions != self._track_versions():
            tracker = CodeTracker(self._fn, self._owner_path(), self._track_versions())  # type: ignore[arg-type]
            self._tracker = tracker
        state = tracker.current()
        carried = self._carried
        if carried is None:
            return state
        sent, arrived = carried
        assert sent is not None
        if arrived is None:
            sent_reads = self._sent_reads
            if any(sent_reads.get(label) != read for label, read in self._reads_by_code().items()):
                # Other code or values read here (a helper the sender replaced in a module the worker imported
                # afresh, an environment variable, a module's global, installed versions, settings): its own
                # keys, never the sender's, which stand for what the sender ran and read. What only the sender
                # reads (a method's class, which travels with the instance) is not read here.
                self._carried = None
                return state
            carried[1] = arrived = state
        if state is arrived or (state.code == arrived.code and state.deps_digest == arrived.deps_digest):
            return dataclasses.replace(sent, mutable=state.mutable) if state.mutable else sent
        return state  # changed here since it arrived: keyed by what it is now

    def _owner_path(self) -> list[str] | None:
        """Return the path of the class a method is defined in (its other methods are read through self)."""
        return self._fn.__qualname__.split(".")[:-1] if self._is_method else None

    def _reads_by_code(self) -> dict[str, tuple[str, bytes]]:
        """Return the function's own code and what it reads, every function and class keyed by its code objects.

        Its code state keys a notebook's code by source, which a worker it is sent to lacks: this is
        what both can compute alike, so a worker tells whether it runs and reads what its sender did.
        """
        tracker = self._tracker_by_code
        if tracker is None or tracker.track_versions != self._track_versions():
            tracker = CodeTracker(self._fn, self._owner_path(), self._track_versions(),  # type: ignore[arg-type]
                                  by_code=True)
            self._tracker_by_code = tracker
        state = tracker.current()
        # Its own code too: a module's function travels by reference, so a worker that imports the module
        # after its file was edited runs other code than its sender under the same name. The label is no name.
        return {**state.deps.parts, "<its own code>": ("code", state.own)}

    def _own_code(self) -> tuple[str, bytes]:
        """Return the digest of its own code as a worker computes it alike (see ``_reads_by_code``)."""
        return self._reads_by_code()["<its own code>"]

    def _definition(self) -> bytes | None:
        """Return the digest of all its definition but its code and globals; None when part of it has no content.

        Defaults, keyword defaults, closure contents, attributes set on the function, the options (all but
        where it stores, which a worker takes from its sender) and the version: a worker forked before the
        notebook redefined the function with other options or defaults holds one of the same code, and must
        not run it in place of the one it is sent.
        """
        fn = self._fn
        options = self._options
        placed = ("cache_dir", "remote", "remote_read_only", "version", "track_versions")
        settings = {field.name: getattr(options, field.name) for field in dataclasses.fields(options)
                    if field.name not in placed}
        closure = [cell.cell_contents for cell in fn.__closure__ or ()]
        try:
            return content_hash((fn.__defaults__, fn.__kwdefaults__, closure, dict(vars(fn)), settings,
                                 self._version, self._track_versions(), self._travel_extra()), "definition")
        except Exception:  # an empty cell or a value with no content: it cannot be told the same
            return None

    def make_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call:
        """Return the key and its ingredients for calling with these arguments."""
        binder = self._binder
        if kwargs or not binder.positional or len(args) != len(binder.names):
            # Defaults fill in what was not given: those bound must still be the function's.
            fn = self._fn
            kwdefaults = fn.__kwdefaults__
            if fn.__defaults__ is not binder.seen[0] or kwdefaults is not binder.seen[1] or \
                    (kwdefaults and list(kwdefaults.items()) != binder.seen[2]):
                self._binder = binder = _Binder(fn, self._options.ignore, self._name)
            bound = binder.bind(args, kwargs)
        else:
            bound = list(zip(binder.names, args))  # every parameter given by position: no default is read
        found: list[Any] = []
        caches: dict[int, frozenset[str]] = {}
        classes: list[type] = []  # the user classes the arguments hold (an argument that is one, an instance's)
        # Plain values only (the common call) need no walk: no code, generator, clock or shared object in them.
        leaves = leaf_digests(bound)
        tracker = self._tracker
        # Nothing of the code changed either: nothing is hashed, so nothing can be met.
        known = tracker.unchanged() if leaves is not None and tracker is not None and self._carried is None and \
            tracker.track_versions == self._track_versions() else None
        met_torch = met_decimal = False
        if known is not None and leaves is not None:
            arguments, state = leaves, known
        else:
            met = things_met
            outer_met = getattr(met, "found", None)
            met.found = found
            outer_torch = getattr(met, "torch", False)
            outer_decimal = getattr(met, "decimal", False)
            met.torch = met.decimal = False
            outer_caches = getattr(met, "caches", None)
            met.caches = caches
            try:
                if leaves is None:
                    labels = binder.labels
                    # What hashing each argument met: which of them share objects (plain values share none).
                    walks: dict[int, tuple[Any, Any]] = {}
                    outer_walks = getattr(met, "walks", None)
                    outer_classes = getattr(met, "classes", None)
                    met.walks, met.classes = walks, classes
                    try:
                        arguments = {name: content_hash(value, labels[name]) for name, value in bound}
                    finally:
                        met.walks, met.classes = outer_walks, outer_classes
                else:
                    arguments = leaves
                state = self.code_state()  # generators the function reads as globals are met here too
            finally:
                met.found = outer_met
                met.caches = outer_caches
                met_torch, met_decimal = met.torch, met.decimal
                met.torch = outer_torch or met_torch
                met.decimal = outer_decimal or met_decimal
        rest = binder.shared(bound, walks) if leaves is None else []
        deps = state.deps
        # The bytes ``combine`` digests (each part after its length), its fixed parts framed once per code state,
        # with what its dependencies say of every call alike (see _Prefix).
        prefix = self._prefix
        if prefix.state is not state:
            # A state that read mutable data is made anew each call, and keeps that data: never kept here.
            parts = deps.parts
            self._prefix = prefix = _Prefix(
                None if state.mutable else state,
                framed([b"nbm1", self._fid.encode(), state.code, state.deps_digest, self._version]),
                "settings of torch" in parts, "settings of decimal" in parts,
                bool(deps.skipped or deps.clock or any(label in parts for label in ID_STATES)))
        extras: dict[str, str] = {}
        if rest:
            extras[SHARED_ARGUMENTS] = xxhash.xxh3_64_hexdigest(rest[0])
        if classes and state.lists_subclasses:
            # Code listing subclasses (k.__subclasses__(), type(x).__subclasses__()) of a class an argument holds:
            # theirs count, as for a class the code names (hashed on each call, for such functions only).
            rest.append(subclasses_digest(classes))
        if met_torch or prefix.torch:
            self._torch_context(deps, rest, extras)
        if met_decimal and not prefix.decimal:  # Decimal arguments: a / b uses the context
            self._decimal_context(rest, extras)
        unseen: frozenset[tuple[str, str]] = frozenset()
        if found:
            found = self._seed_met(state, found, rest, extras)
            unseen, found = unseen_state_functions(found)
        if found or prefix.left_out:
            deps, found = self._left_out(deps, found)
        heads = binder.heads
        head = prefix.framing + b"".join([heads[name] + digest for name, digest in arguments.items()])
        if len(found) > 1:
            rest += _random_state.shared(found)
        key = xxhash.xxh3_128_hexdigest(head + framed(rest) if rest else head)
        return Call(key, arguments, state.code, state.own, deps, state.method,
                    _random_state.numbered(found) if found else {}, mutable=leaves is None, extras=extras,
                    changeable=state.mutable, deps_digest=state.deps_digest, bound=bound if leaves is None else None,
                    caches=caches, unseen=unseen)

    def _torch_context(self, deps: Dependencies, rest: list[bytes], extras: dict[str, str]) -> None:
        """Add what torch computes under to a key's parts (``rest``, and in words to ``extras``): for a call
        that hashed a tensor or module, or whose code uses torch (``deps``). Every kind of call keys it
        here (``make_call``, a batch's key prefix), so that none keys less."""
        # What torch makes of a tensor or model depends on what the call runs under (not watched with the
        # code: grad mode changes from call to call); code using torch keys its settings with the code.
        extras["torch's modes"] = modes = torch_modes()
        rest.append(b"torch modes " + modes.encode())
        if "settings of torch" not in deps.parts:
            extras["torch's settings"] = settings = torch_settings()
            rest.append(b"torch " + settings.encode())

    @staticmethod
    def _decimal_context(rest: list[bytes], extras: dict[str, str]) -> None:
        """Add the decimal context to a key's parts, for a call that hashed a Decimal (``a / b`` uses it)."""
        extras["decimal's settings"] = settings = decimal_settings()
        rest.append(b"decimal " + settings.encode())

    def _seed_met(self, state: CodeState, found: list[Any], rest: list[bytes], extras: dict[str, str]) -> list[Any]:
        """Add the hash seed, process ids, host or user to a key's parts (``rest``, and in words to ``extras``) where
        the body may call a member of an argument's class that reads it, as hashing the arguments told (``found``);
        return ``found`` without those notes. A member it never calls (a fork check reading os.getpid() where the
        body reads s.rows) keys nothing."""
        told, rest_found = _notes(found, STATE_MEMBERS)
        if not told:
            return found
        deps, names = state.deps, state.names
        known = self._names_known
        if known[0] is not deps:
            # A method names its class's members where its code does: the class is a dependency, not a name.
            known = (deps, names_in_code(self._fn, deps) if names is None else names)  # type: ignore[arg-type]
            self._names_known = known
        readers: dict[str, set[str]] = {}
        for item in told:
            for label, members in item[1].items():
                readers.setdefault(label, set()).update(members)
        for label in sorted(readers):
            if members_named(frozenset(readers[label]), known[1]):
                extras[label] = text = state_text(label)
                rest.append(label.encode() + b" " + text.encode())
                if label in ID_STATES:
                    self._warn_ids([label])
        return rest_found

    def _warn_ids(self, ids: list[str]) -> None:
        """Warn once that the body reads ids every process has its own of, which its key holds as read only."""
        warn_once(f"ids:{self._qualified}",
                  f"{self._name} reads its {' and '.join(ids)}, which every process has its own of: the key "
                  "leaves the value out (it would miss after every restart), so a cached result is served in "
                  "other processes too. If the result depends on it, pass it as an argument.")

    def _left_out(self, deps: Dependencies, found: list[Any]) -> tuple[Dependencies, list[Any]]:
        """Return a call's dependencies with the clock reads its keying met (``found``: in the code of an
        argument's class), and what else it met (random generators); warn once of what the key leaves out:
        a global it cannot hash, the clock read without ttl=. Every kind of call warns here alike."""
        reads, others = _notes(found, CLOCK)
        clock = [item[1] for item in reads]
        if clock:
            found = others
            deps = dataclasses.replace(deps, clock=clock_reads(deps.clock + clock))
        if deps.skipped:
            for label, reason in deps.skipped.items():
                warn_once(f"skipped:{self._qualified}:{label}",
                          f"{self._name}: '{label}' cannot be hashed ({reason}); it is left out of "
                          "the cache key, so changing it will not recompute cached results")
        ids = sorted(label for label in ID_STATES if label in deps.parts)
        if ids:
            self._warn_ids(ids)
        if deps.clock and self._options.ttl is None:
            warn_once(f"clock:{self._qualified}",
                      f"{self._name} reads the clock ({', '.join(deps.clock[:3])}): its cached result will not "
                      "change as time passes. Pass ttl= (for example @memo(ttl=\"1h\")) to recompute it after "
                      f"a while; {self._name}.explain() lists where it reads the clock.")
        return deps, found

    def _store(self, current: _config.CallSettings | None = None) -> Store:
        """Return the store of this function's directory (``current``: the call's settings, when read already)."""
        if current is None:
            current = _config.call_settings()
        cached = self._last_store
        if cached is not None and cached[0] is current and not cached[1].closed:
            return cached[1]
        store = get_store(_config.resolve_dir(self._options.cache_dir), _config.resolve_size_limit())
        chosen = self._options.cache_dir or _config.settings.cache_dir or current.env_dir
        # Kept only for an absolute directory: a relative one names another folder after os.chdir.
        self._last_store = (current, store) if chosen and os.path.isabs(chosen) else None
        return store

    # -- reading ---------------------------------------------------------------------------
    def _read(self, store: Store, key: str, call: Call | None = None, outer: Recorders = (),
              current: _config.CallSettings | None = None) -> Any:
        """Return the stored value for ``key``, or _MISS; never raises for storage trouble.

        An entry with preconditions is served only while they hold; serving it sets the
        random generators the body drew from to the states the body left them in.
        """
        conditions: Conditions | None = None
        try:
            record = self._folder_entry(store, key, current) if self._folder_variants else None
            if record is not None:
                if call is not None and key == call.key:
                    call.absent = False
                record, conditions, _ = conditioned_entry(store, key, record, serving=True)
            else:
                # A quick function's miss asks next whether someone computes the key: read with the record.
                record = store.get(key, current, probe=self._quick and call is not None and key == call.key,
                                   serving=True)
                if call is not None and key == call.key:
                    call.absent = record is None
                if record is None or (record.header.expires and record.header.expired()):
                    return _MISS
                if record.header.conditioned:
                    marker = record
                    record, conditions, _ = conditioned_entry(store, key, record, serving=True)
                    if record is not None and marker.header.meta().get("variants") == [FOLDER_VARIANT]:
                        self._remember_folder_entry(key, marker)
        except CorruptRecord as exc:
            self._drop_corrupt(store, key, str(exc))
            return _MISS
        except ConfigurationError:
            raise
        except Exception as exc:
            storage_unreadable(store, exc, "computing instead")
            return _MISS
        if record is None or (record.header.expires and record.header.expired()) \
                or (self._options.ttl is not None and record.header.stale_for(self._options.ttl)):
            return _MISS
        try:
            if call is not None and call.bound:
                # A result that was one of its arguments (np.asarray(A), A.to(dtype)) is this call's argument,
                # whose content the key holds: it comes back as the object, as a run gives it.
                with referring_to(dict(call.bound)):
                    value = record.load(self._options.mmap)
            else:
                value = record.load(self._options.mmap)
        except FileNotFoundError:
            return _MISS  # evicted between the lookup and the read
        except CorruptRecord as exc:
            self._drop_corrupt(store, key, str(exc))
            return _MISS
        except ClassChanged:
            # It holds an instance of a notebook class edited since: computed again, from the class it has.
            with contextlib.suppress(Exception):
                store.delete(key)
            return _MISS
        except (MemoryError, OSError) as exc:
            # Not damage: the entry stays for a later call that has the memory or file handles.
            warn_once(f"load:{store.directory}:{type(exc).__name__}", f"{self._name}: a cached entry could not "
                      f"be loaded ({type(exc).__name__}: {exc}); it is kept, and the result is computed instead",
                      StorageWarning)
            return _MISS
        except Exception as exc:
            # Most often a class that changed or vanished since the value was stored.
            self._drop_corrupt(store, key, f"the stored value no longer unpickles ({type(exc).__name__}: {exc})")
            return _MISS
        if conditions:
            served(conditions, call.generators if call is not None else {}, outer)
        self.hits += 1
        self.saved_seconds += record.header.duration
        store.count_hit(self._tag)
        verbose = self._options.verbose
        if call is not None and (verbose if verbose is not None else
                                 (current or _config.call_settings()).verbosity):
            _config.announce(f"{self._name}: from cache, saved {_config.human_seconds(record.header.duration)}")
        return value

    def _folder_entry(self, store: Store, key: str, current: _config.CallSettings | None) -> StoredRecord | None:
        """Return the entry of ``key`` stored for the current folder, in one lookup, when a marker this process
        read says the entries of ``key`` are folder variants and is still the one stored (known in that lookup);
        else None, and the marker is read again. Its preconditions are not checked here."""
        place = (key, _conditions.folder_now())
        known = self._folder_variants.get(place)
        if known is None:
            return None
        entry_key, marker = known
        found = None if marker.header.expires and marker.header.expired() else \
            store.get(entry_key, current, serving=True, beside=(key, marker))
        if found is not None and found.header.conditioned and not found.header.expired():
            meta = found.header.meta()
            # The marker's own entry for this folder: one stored before an invalidate belongs to another marker.
            if meta.get("variant_of") == key and meta.get("epoch") == marker.header.meta().get("epoch"):
                return found
        # Forgotten until a marker is read (or written) again: a cleared key's misses do not look here each time.
        self._folder_variants.pop(place, None)
        return None

    def _remember_folder_entry(self, key: str, marker: StoredRecord) -> None:
        """Keep where the current folder's entry of ``key`` is, as the folder-variant ``marker`` read says."""
        if len(self._folder_variants) >= _FOLDER_VARIANTS_KEPT:
            self._folder_variants.clear()
        folder = _conditions.folder_now()
        self._folder_variants[(key, folder)] = (variant_key(key, {FOLDER_VARIANT: folder}), marker)

    def _drop_corrupt(self, store: Store, key: str, why: str) -> None:
        warn_once(f"corrupt:{key}", f"{self._name}: a cached entry could not be used: {why}. "
                  "It is recomputed and overwritten.", StorageWarning)
        with contextlib.suppress(Exception):
            store.delete(key)

    # -- writing ---------------------------------------------------------------------------
    def _write(self, store: Store, call: Call, result: Any, duration: float,
               recorded: tuple[Recorder, dict[str, Any], Recorders] | None = None,
               later: bool = False) -> Payload | None:
        """Store a result; ``recorded`` is what its run read: (recorder, generator arguments' states before, outer).

        ``later``: it may be committed by the store's background thread (``Store.put``)."""
        where: tuple[str, Conditions | None, list[str] | None] = (call.key, None, None)
        if recorded is not None:
            try:
                where = entry_conditions(store, call.key, *recorded[:2], call.generators)
            except NotRecordable as exc:
                self._not_stored(f"unrecordable:{self._qualified}:{exc}",
                                 f"{self._name}: its result is not cached: {exc}. It runs on every call.", MemoWarning)
                return None
            except Exception as exc:  # whatever went wrong, the result the body computed is returned
                self._not_stored(f"unrecordable:{self._qualified}", f"{self._name}: its result is not cached: what it "
                          f"read could not be recorded ({type(exc).__name__}: {exc})", StorageWarning)
                return None
            if where[1] and recorded[2]:
                _conditions.inherit(where[1], recorded[2])
            if recorded[0].stdin and not any("standard input" in why for why in call.deps.skipped.values()):
                warn_once(f"stdin:{self._qualified}", f"{self._name} reads the standard input "
                          f"({recorded[0].stdin}: what is typed, or piped to the process), which no key can hold: "
                          "the cache keeps its first answer. Pass what it reads as an argument, or call it with "
                          ".uncached(...).", MemoWarning)
            warn_random_result(self._name, self._qualified, recorded[0])
        skip_if = self._options.skip_if
        if skip_if is not None and skip_if(result):
            return None
        try:
            # An argument the result holds as itself is stored by name (identity only: an equal copy is a copy),
            # taken now, while the objects are the call's, though a background thread may commit it later.
            payload = dumps(result, external={id(value): name for name, value in call.bound
                                              if type(value) not in IMMUTABLE_LEAVES} if call.bound else None,
                            named=[value for _, value in call.bound] if call.bound else ())
        except Exception as exc:
            self._not_stored(f"pickle:{self._qualified}", f"{self._name}: its result cannot be pickled "
                      f"({type(exc).__name__}: {exc}); results are returned but not cached", StorageWarning)
            return None
        meta = self._meta(call, duration, time.time(), payload.nbytes)
        if save_entry(store, call.key, where, payload, meta, self._options.ttl, duration, self._fid, later) \
                and where[2] == [FOLDER_VARIANT]:
            # The next hit here finds the folder's entry in one lookup (see _folder_entry), as after a read.
            with contextlib.suppress(Exception):
                marker = store.written(call.key)
                if marker is not None and marker.header.meta().get("variants") == [FOLDER_VARIANT]:
                    self._remember_folder_entry(call.key, marker)
        return payload

    def _meta(self, call: Call, duration: float, created: float, size: int) -> dict[str, Any]:
        head = self._meta_head
        if head[0] is not call.deps or head[1] != call.code or head[2] != call.own or head[3] != call.method:
            # What every record of this code state says alike: made, and encoded, once.
            fixed = {
                "kind": "function",
                "name": self._qualified,
                "fid": self._fid,
                "code": call.code.hex(),
                "own": call.own.hex(),
                "library": rules_digest(),
                "method": call.method,
                "deps": {label: [kind, digest.hex()] for label, (kind, digest) in call.deps.parts.items()},
                "skipped": sorted(call.deps.skipped),
                "version": self._version.hex(),
                "ttl": self._options.ttl,
                **({"notebook": self._notebook} if self._notebook else {}),
            }
            self._meta_head = head = (call.deps, call.code, call.own, call.method, head_json(fixed))
        return meta_after(head[4], {name: digest.hex() for name, digest in call.arguments.items()}, created,
                          duration, size, call.extras)

    # -- calling ---------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._is_async:
            return self._acall(args, kwargs, _refreshing.get())
        current = _config.call_settings()
        if current.disabled or _disabled.get():
            self._ran_off = True
            return self._fn(*args, **kwargs)
        return self._call(args, kwargs, _refreshing.get(), current=current)

    def _call(self, args: tuple[Any, ...], kwargs: dict[str, Any], refresh: bool, probe: bool = False,
              current: _config.CallSettings | None = None) -> Any:
        """Look the call up, or compute and store it; a ``probe`` (``refresh()``) is not what explain explains."""
        outer = _conditions.active()
        # Our own lookups, leases and writes are not what a body reads: the one around (``outer``), or one
        # another thread begins while this call runs (this thread is then taken to work for it).
        token = _conditions.pause()
        chosen_token = self._choose_remote()
        try:
            call = self.make_call(args, kwargs)
            self._refuse_recursion(call)
            store = self._store(current)
            misses = self.misses
            raised: BaseException | None = None
            try:
                if not refresh:
                    value = self._read(store, call.key, call, outer, current)
                    if value is not _MISS:
                        return value
                return self._lookup_or_compute(store, call, args, kwargs, refresh, outer)
            except BaseException as exc:
                raised = exc
                raise
            finally:
                if not probe:
                    self._remember(call, self.misses == misses, raised)
        finally:
            if chosen_token is not None:
                _remote.chosen.reset(chosen_token)
            _conditions.resume(token)

    def _lookup_or_compute(self, store: Store, call: Call, args: tuple[Any, ...], kwargs: dict[str, Any],
                           refresh: bool, outer: Recorders) -> Any:
        with self._key_lock(call.key) as waited:
            if waited and not refresh:
                # Another thread of ours computed this key while we waited for it.
                value = self._read(store, call.key, call, outer)
                if value is not _MISS:
                    return value
            if self._quick and not refresh and not store.leased(call.key):
                # Its last run here ended within QUICK_BODY and no one else is computing this key: it
                # runs without the lease's two commits, and takes the lease only if it goes on past
                # QUICK_BODY (a background thread does), so that others wait for a slow run.
                try:
                    # Noted inside: a run noted and never forgotten (Ctrl-C as it is noted) would be leased by
                    # the background thread and renewed for as long as this process lives.
                    store.run_started(call.key)
                    return self._compute(store, call, args, kwargs, outer, refresh, quick=True)
                finally:
                    if store.run_finished(call.key):
                        self._release(store, [call.key])
            leased = False
            try:
                watch = Watch()
                delay = 0.001
                while True:
                    try:
                        leased = store.try_lease(call.key, watch)
                    except Exception:
                        break  # no working storage: compute without coordination
                    if leased:
                        break
                    time.sleep(delay)
                    delay = min(delay * 2, LOCK_POLL_MAX)
                    if not refresh:
                        value = self._read(store, call.key, call, outer)
                        if value is not _MISS:
                            return value
                if leased and not refresh:
                    # The previous holder may have stored the result and released the lease
                    # between our last look and our taking it.
                    value = self._read(store, call.key, call, outer)
                    if value is not _MISS:
                        return value
                return self._compute(store, call, args, kwargs, outer, refresh)
            finally:
                if leased:
                    self._release(store, [call.key])

    def _choose_remote(self) -> contextvars.Token[tuple[str, bool | None] | None] | None:
        """Set this function's own remote for the call (reset the token after); None when nothing was set.

        A function without one clears an enclosing function's choice: its body's calls use their own."""
        options = self._options
        if options.remote is None:
            return None if _remote.chosen.get() is None else _remote.chosen.set(None)
        return _remote.chosen.set((options.remote, options.remote_read_only))

    def _refuse_recursion(self, call: Call) -> None:
        if is_computing(call.key):
            raise RecursiveCall(f"{self._name} called itself with the same arguments while computing them: "
                                "its result would depend on itself, so it can never be computed (plain "
                                "recursion would not end either). Change the arguments of the inner call, "
                                f"or call {self._name}.uncached(...) there.")

    def _release(self, store: Store, keys: list[str]) -> None:
        """Give back the leases on ``keys``; warn once if another process took some of them over."""
        lapsed = store.release_leases(keys)
        if lapsed:
            what = "this computation" if len(keys) == 1 else f"{len(lapsed)} of these {len(keys)} items"
            warn_once(f"lapsed:{self._qualified}", f"{self._name}: another process took over {what} because "
                      f"this one did not renew its lease for {resolve_lease():g} s (a body that holds the GIL, "
                      "a suspended process or a stalled disk), so it may have run twice. Call "
                      "memo.keep_alive() between chunks of long work that holds the GIL, or raise "
                      f"{_config.ENV_LEASE}.", StorageWarning)

    def _compute(self, store: Store, call: Call, args: tuple[Any, ...], kwargs: dict[str, Any],
                 outer: Recorders, refresh: bool = False, quick: bool = False) -> Any:
        """Run the body and store its result; ``quick``: it runs without a lease, and if it ends within
        QUICK_BODY its result is left to the store's background thread to commit (losing it costs little)."""
        self._note_miss(call, refresh)
        self.misses += 1
        self._check_stale(store, call)
        recorder = self._recorder(call, args, kwargs)
        before = _random_state.object_states(call.generators) if call.generators else {}
        # The first run's installing is not the body's time (see _quick), nor its doing: our wrappers are in place
        # before what the body may bind is noted (random.seed, in a namespace it takes whole: vars(random)).
        _conditions.watch_all()
        held = self._state_held(call)
        bound = self._globals_bound(call, held)
        objects = self._read_objects(call, held)
        fills = self._note_filled(call, args, kwargs, recorder)
        start = time.perf_counter()
        try:
            with computing(call.key), _room_for_our_frames(), _conditions.recording(recorder, outer, watch=False):
                result = self._fn(*args, **kwargs)
        except BaseException:
            self._quick = False
            raise
        duration = time.perf_counter() - start
        if quick:
            store.body_finished(call.key)
        self._quick = duration < QUICK_BODY
        if self._changed(call, args, kwargs, recorder.fills) or self._rebound(bound) or \
                self._changed_process(call, recorder) or self._rebound_meanwhile(call, objects) or \
                self._unknown_handle(call, recorder):
            self._announce_computed(duration, False)
            return result
        recorded = (recorder, before, outer)
        with _remote.replacing_if(refresh):
            stored = self._write(store, call, result, duration, recorded, not refresh and quick and self._quick)
            if stored is not None:
                self._write_as_now(store, call, fills, args, kwargs, result, duration, recorded)
        self._announce_computed(duration, stored is not None)
        return result

    def _note_filled(self, call: Call, args: tuple[Any, ...], kwargs: dict[str, Any], recorder: Recorder) -> _Fills:
        """Note in ``call.filled`` which functools.cached_property values the arguments hold as the body starts,
        and have ``recorder`` note what the run fills into them and into the globals read; return, by argument
        name and by global label, each object whose class has such properties, with them."""
        arguments: dict[str, tuple[Any, frozenset[str]]] = {}
        if call.mutable:
            try:
                bound = self._binder.bind(args, kwargs)
            except Exception:
                bound = []
            for name, value in bound:
                if cached_property_names(type(value)):
                    arguments[name] = (value, filled_cached_properties(value))
                    if arguments[name][1]:
                        call.filled[name] = arguments[name][1]
        globals_read = {label: (value, filled) for label, value, _, filled in call.changeable
                        if cached_property_names(type(value))}
        if arguments or globals_read:  # most calls: no object with such properties
            recorder.fill_owners.update(id(value) for value, _ in (*arguments.values(), *globals_read.values()))
        return arguments, globals_read

    def _fill_owners(self, call: Call, args: tuple[Any, ...], kwargs: dict[str, Any]) -> set[int]:
        """Return the ids of the arguments and globals read whose classes have functools.cached_property values:
        the objects whose fills a run notes (for memo.batch, whose chunks share one call and its notes)."""
        owners = {id(value) for _, value, _, _ in call.changeable if cached_property_names(type(value))}
        if call.mutable:
            try:
                bound = self._binder.bind(args, kwargs)
            except Exception:
                bound = []
            owners.update(id(value) for _, value in bound if cached_property_names(type(value)))
        return owners

    def _write_as_now(self, store: Store, call: Call, fills: _Fills, args: tuple[Any, ...], kwargs: dict[str, Any],
                      result: Any, duration: float, recorded: tuple[Recorder, dict[str, Any], Recorders]) -> None:
        """Store a result also under the key of its arguments and globals as the run left them, when all that
        changed in them is functools.cached_property values it filled: those derive from the rest, so a call on
        them as they are now (the next one here; one after a restart whose notebook read the property first)
        computes the same. Anything else that differs (an object not watched, changed as it was read) stores
        nothing more: the next call on it computes."""
        notes = recorded[0].fills
        grown: set[str] = set()
        grown_globals: set[str] = set()
        for names, objects in ((grown, fills[0]), (grown_globals, fills[1])):
            for name, (value, before) in objects.items():
                since = filled_cached_properties(value) - before
                if not since:
                    continue
                if not unchanged_since_filled(value, since, notes):
                    return  # changed after it was filled: no key of it as it is now holds this result
                names.add(name)
        if call.caches and call.mutable:
            # Pandas objects met in the arguments may hold more cache entries now, which the check of the run
            # excused (_changed): an argument whose digest differs now differs by those alone.
            grown.update(call.arguments)
        if not (grown or grown_globals) or call.generators:
            return  # a generator's state is in the key, and the run moved it on
        try:
            now = self.make_call(args, kwargs)
        except Exception:  # what hashed before the run may not now: the entry under the first key stands
            return
        before_parts, now_parts = call.deps.parts, now.deps.parts
        if now.key == call.key or now.code != call.code or now.extras != call.extras or now.generators or \
                now.arguments.keys() != call.arguments.keys() or \
                any(now.arguments[n] != d for n, d in call.arguments.items() if n not in grown) or \
                any(now_parts.get(label) != before_parts.get(label) for label in {*before_parts, *now_parts}
                    if label not in grown_globals):
            return
        self._write(store, now, result, duration, recorded)

    def _state_held(self, call: Call) -> CodeState | None:
        """Return the code state ``call`` was keyed with while it is still the function's own (identity checks
        alone, as ``code_state`` makes them), else None: what its code binds and sets is then known from it."""
        tracker = self._tracker
        if tracker is None or self._carried is not None or call.changeable or \
                tracker.track_versions != self._track_versions():
            return None
        state = tracker.unchanged()
        if state is None or state.mutable or state.deps is not call.deps or state.code != call.code \
                or state.deps_digest != call.deps_digest:
            return None
        return state

    def _binding_facts(self, call: Call, held: CodeState | None) -> _BindingFacts:
        """Return where the body and its helpers bind globals, and whether their code can set an attribute or run a
        text (see ``_BindingFacts``): once per code state while ``held`` (``_state_held``) says it is still the
        function's, else walked now."""
        known = self._bindings
        if held is not None and known.state is held:
            return known
        fn: types.FunctionType = self._fn  # type: ignore[assignment]
        namespace = fn.__globals__
        own = tuple((namespace, name, name, True) for name in global_stores(fn.__code__))
        helpers = list(helpers_code(fn, call.deps))
        theirs: list[tuple[dict[str, Any], str, str, bool]] = []
        for helper_code, helper_namespace in helpers:
            stores = global_stores(helper_code)
            read = {name for name, _ in global_references(helper_code)} if stores else set()
            theirs.extend((helper_namespace, name, global_label(helper_namespace, name), name in read)
                          for name in stores)
        facts = _BindingFacts(held, own, tuple(theirs), helpers, nothing_written(fn, helpers))
        if held is not None:
            self._bindings = facts
        return facts

    def _globals_bound(self, call: Call, held: CodeState | None = None) -> _Bound | None:
        """Return what the globals the body binds (``global n; n += 1``), itself or through the helpers it reads,
        hold now, by label, and the attributes of classes and modules it may set (``Config.threshold = 0.7``: see
        run_writes); None if it binds none. ``held``: the call's code state, still the function's
        (``_state_held``), whose facts are then kept."""
        fn = self._fn
        if getattr(fn, "__code__", None) is None:
            return None
        facts = self._binding_facts(call, held)
        found: _Globals = {}
        for namespace, name, _, _ in facts.own:
            found[name] = (namespace, name, namespace.get(name, _MISS), True)
        for namespace, name, label, read in facts.helpers:
            value = namespace.get(name, _MISS)
            if read and (value is _MISS or value is None):
                continue  # filled on first use (if MODEL is None: MODEL = load()): it is again when next used
            found.setdefault(label, (namespace, name, value, False))
        attributes: dict[str, HeldAttribute]
        if facts.nothing_written:
            attributes, unknown = {}, None  # what run_writes finds of code that sets no attribute and runs no text
        else:
            attributes, unknown = run_writes(fn, call.deps, facts.helper_code)  # type: ignore[arg-type]
        return _Bound(found, attributes, unknown) if found or attributes or unknown else None

    def _rebound(self, bound: _Bound | None) -> bool:
        """Return True, warning once, when the body bound a global, or an attribute of a class, module or object a
        global holds, anew, or ran what cannot be known (exec() of a text made at run time): a hit would leave it
        as it was.

        A global a helper reads and binds where it held nothing (None, or no value) is left out (``_globals_bound``):
        the helper fills it on first use (``global MODEL; if MODEL is None: MODEL = load()``), and does again when
        next used after a hit, as a module's own code does; so is an attribute filled so (``Model._instance``).
        Any other (``global N; N += 1``, ``LAST = x`` in a helper, ``Config.threshold = 0.7``) is a change a hit
        could not make. A later run that finds what an earlier one set changes nothing, and is stored: its key holds
        the value (code's dependencies include the globals and attributes it stores), so it is served only where
        the value is so."""
        if not bound:
            return False
        if bound.unknown:
            self._not_stored(f"unknown-effects:{self._qualified}",
                             f"{self._name} {bound.unknown}: its effects cannot be known, and a hit could not make "
                             "them again, so this result is not cached and the function runs on every call. Write "
                             "that code in the function (or a helper), or run the text outside it.", MemoWarning)
            return True
        globals_ = bound.globals
        changed = sorted(label for label, (namespace, name, value, _) in globals_.items()
                         if namespace.get(name, _MISS) is not value)
        if changed:
            self._not_stored(f"rebound-global:{self._qualified}:{changed[0]}",
                             f"{self._name} binds the global {changed[0]!r} anew"
                             f"{'' if globals_[changed[0]][3] else ' (through a helper it calls)'}, which a hit could "
                             "not do again: this result is not cached, so the function runs on every call that does "
                             "so. Return the value instead, and bind the global outside the function.", MemoWarning)
            return True
        attributes = attributes_changed(bound.attributes)
        if not attributes:
            return False
        label = attributes[0]
        self._not_stored(f"rebound-attribute:{self._qualified}:{label}",
                         f"{self._name} sets the attribute {label!r} anew (it leaves it bound to another object than "
                         "before the call, or removed), which a hit could not do again: this result is not cached, so "
                         "the function runs on every call that does so. Return the value instead, and set the "
                         "attribute outside the function.", MemoWarning)
        return True

    def _recorder(self, call: Call, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Recorder:
        """Return the recorder of a run of the body for ``call`` with ``args`` and ``kwargs``: what it reads of the
        files it lists (their names alone unless its code, or the code its arguments bring, reads sizes or times),
        and the settings of the libraries its code uses, to tell whether it changed one. What its own code does is
        read from the call's code state, once while it holds."""
        deps = call.deps
        known = self._run_facts
        if known[0] is not deps:
            libraries = tuple(name for name in _PACKAGE_STATE if f"settings of {name}" in deps.parts)
            if _conditions.function_reaches(self._fn, names_logger_setter):  # its loggers are read too
                libraries = (*libraries, "logging")
            self._run_facts = known = (deps, _conditions.stats_files(self._fn), libraries)
        libraries = known[2]
        if "torch's settings" in call.extras or "decimal's settings" in call.extras:  # a tensor or Decimal met
            libraries = (*libraries, *(name for name in ("torch", "decimal") if name not in libraries))
        # An argument's methods run without the body naming their class (runs.latest()): looked into on each miss.
        sizes = known[1] or _conditions.stats_arguments(self._fn, (*args, *kwargs.values()))
        recorder = Recorder(self._options.files, sizes, libraries)
        recorder.code = functools.partial(_conditions.function_reaches, self._fn)  # asked only after some misses
        apply_unseen(recorder, call.unseen)
        for files in deps.handles.values():
            # Read through a handle opened before the run (a global file, an SQLite connection): no event names
            # them, so they are the run's reads from its start; a WAL file as the run leaves it.
            for path in files:
                recorder.read_handle(path)
        for label, connection in deps.connections.items():
            recorder.read_connection(label, connection)
        return recorder

    def _unknown_handle(self, call: Call, recorder: Recorder) -> bool:
        """Return True, warning once, when the code reads through an open handle whose files cannot be told (a
        buffer in memory, a file open for writing too, a handle held inside another object), or an SQLite
        connection with the notebook's code registered on it: what it reads is in no key and no condition, so the
        result is not stored."""
        handles = call.deps.handles
        label = next((label for label, files in handles.items() if not files), None) if handles else None
        if label is None:
            found = recorder.code_in_connections() if call.deps.connections else None
            if found is None:
                return False
            label, what = found
            self._not_stored(f"connection-code:{self._qualified}:{label}",
                             f"{self._name} reads {label!r}, an SQLite connection {what}: what that code computes "
                             "inside its queries is not in the cache key, so this result is not cached, and the "
                             "function runs on every call. Register it (or set the pragma) on a connection the "
                             "function opens itself, or compute it in Python from the rows.", MemoWarning)
            return True
        self._not_stored(f"unknown-handle:{self._qualified}:{label}",
                         f"{self._name} reads {label!r}, which is or holds an open handle (a file, a connection, a "
                         "buffer) whose files cannot be told, or that may be written through: what is read through "
                         "it is not in the cache key, so this result is not cached, and the function runs on "
                         "every call. Pass the file's path instead, and open it inside the function.", MemoWarning)
        return True

    def _read_objects(self, call: Call, held: CodeState | None = None) -> _Reads | None:
        """Return what the call's dependencies name as its body starts, to tell after it which were bound anew;
        None when something was already bound anew since the key was made (not by the body, which has not run).
        ``held``: ``_state_held(call)`` just now, which found nothing bound anew (not asked again)."""
        volatile = bool(call.changeable)
        if not volatile and held is None and not self._same_state(call):
            return None
        fn: types.FunctionType = self._fn  # type: ignore[assignment]
        return _Reads({label: dependency_value(fn, label) for label in call.deps.parts}, fn.__code__, volatile)

    def _same_state(self, call: Call) -> bool:
        state = self.code_state()  # identity checks alone while nothing it came from changed
        return state.code == call.code and state.deps_digest == call.deps_digest

    def _rebound_meanwhile(self, call: Call, reads: _Reads | None) -> bool:
        """Return True, warning once, when code or a value the body reads was bound anew after its key was made
        (another thread or task rebound a global, redefined a helper, set a class attribute): the result may have
        been made with the new one, so it is not stored under the key made of the old. ``reads``: what
        ``_read_objects`` returned as the body started."""
        fn: types.FunctionType = self._fn  # type: ignore[assignment]
        if reads is not None and reads.volatile:
            # Its code state is made anew on each look, hashing the mutable data it reads once more (a large
            # array: as long as the key took): what its dependencies name is compared by identity (still_bound).
            changed = {label for label, obj in reads.objects.items() if not still_bound(fn, label, obj)}
            same_own = fn.__code__ is reads.code
        else:
            if self._same_state(call):
                return False
            state = self.code_state()
            before, now = call.deps.parts, state.deps.parts
            changed = {label for label in {*before, *now} if before.get(label) != now.get(label)}
            same_own = state.own == call.own
            if reads is not None:
                # An object changed in place (a lazy cache filled as it is read, a generator drawn from) is
                # _changed_globals' to judge, as before.
                changed = {label for label in changed
                           if not still_bound(fn, label, reads.objects.get(label, _MISS))}
        if reads is not None:
            if changed:
                # A global or class attribute its own code binds (a helper loading a model on first use) is the
                # body's doing, which a call in a new process does again from the same start.
                changed -= labels_bound_by_code(fn, call.deps, changed)
            if not changed and same_own:
                return False
        what = repr(min(changed)) if changed else "its code"
        self._not_stored(f"rebound-meanwhile:{self._qualified}:{what}",
                  f"{self._name}: {what}, which it reads, was bound anew while it ran (by another thread or task), "
                  "so its result may have been made with either value: it is not cached, and is computed again on "
                  "the next call. Make that change before the call starts, or pass the value as an argument.",
                  MemoWarning)
        return True

    def _changed_process(self, call: Call, recorder: Recorder) -> bool:
        """Return True, warning once, when the body changed the environment, the current folder or a library's
        settings and left them so: a hit would return the result without that change, which later code may rely
        on. Once it has, none of its runs in this process is stored: a run that sets what an earlier one set
        finds nothing to change, and its entry would be served after a restart, where nothing set it. Not where
        it changed only environment variables its key holds (os.environ.setdefault("OMP_NUM_THREADS", "4")): a
        later run that finds them set is keyed by their values, so its entry is never served where they are not."""
        change = recorder.process_change()
        if change is None:
            change = self._changes_process
            if change is None:
                return False
        if not change:
            return True  # a setting changed while modules were first imported: perhaps their doing, so unsaid
        if not keys_variables(call.deps.parts, recorder.variables_changed):
            self._changes_process = change
        self._not_stored(f"changed-process:{self._qualified}:{change}",
                  f"{self._name} {change}: this result is not cached, so the function runs on every call that does "
                  "so. Make that change outside the function (in a cell of its own), or undo it before it returns.",
                  MemoWarning)
        return True

    def _changed(self, call: Call, args: tuple[Any, ...], kwargs: dict[str, Any], notes: FillNotes) -> bool:
        """Return True when the body changed in place what a hit could not change again (saying so once);
        ``notes``: the functools.cached_property values its run filled (see _fills)."""
        changeable, call.changeable = call.changeable, ()
        if call.mutable and self._changed_arguments(call, args, kwargs, notes):
            return True
        return bool(changeable) and self._changed_globals(changeable, notes, call.caches)

    def _changed_globals(self, changeable: tuple[DataRead, ...], notes: FillNotes,
                         caches: Mapping[int, frozenset[str]] | None = None) -> bool:
        """Return True, warning once, when the body changed in place mutable data its code reads (``LOG.append``,
        a registry filled by a helper): a hit would leave it as it was, so the result is not stored."""
        label = changed_in_place(changeable, notes, caches)
        if label is not None:
            self._not_stored(f"changed-global:{self._qualified}:{label}",
                      f"{self._name} changed the global {label!r} in place (it is not what it was before the call), "
                      "which a hit could not do again: this result is not cached, so the function runs on every "
                      "call that does so. Return what the body adds instead, and change the global outside it.",
                      MemoWarning)
            return True
        return False

    def _changed_arguments(self, call: Call, args: tuple[Any, ...], kwargs: dict[str, Any], notes: FillNotes) -> bool:
        """Return True, warning once, when the body changed an argument in place (it hashes otherwise now): a hit
        would return the result without that change, which later code may rely on (a model trained by a step,
        a frame given a column), so the result is not stored."""
        if call.generators:
            return False  # drawing from a generator argument changes it: a hit advances it as the body did
        binder = self._binder
        try:
            bound = binder.bind(args, kwargs)
        except Exception:
            return False
        changed = []
        filled = call.filled
        for name, value in bound:
            before = call.arguments.get(name)
            if before is None or type(value) in IMMUTABLE_LEAVES:
                continue
            # A functools.cached_property the body read for the first time is no change; any other change is.
            if not same_but_filled(value, binder.labels[name], before, filled.get(name, frozenset()), notes,
                                   call.caches):
                changed.append(name)
        if not changed:
            return False
        self._not_stored(f"changed-argument:{self._qualified}:{changed[0]}", changed_argument(self._name, changed[0]),
                         MemoWarning)
        return True

    def _not_stored(self, once: str, message: str, category: type[Warning]) -> None:
        """Say once (``once``: the warning's key) why a result computed is not stored, and keep it as the miss's
        explanation: ``explain_last`` and ``%memo explain`` then say so, not that nothing is cached."""
        warn_once(once, message, category)
        why = message.removeprefix(f"{self._name}: ").removeprefix(f"{self._name} ")
        self._miss_report = Explanation(self._qualified, False, f"{NOT_STORED}: {why}")

    def _note_miss(self, call: Call, refresh: bool) -> None:
        self._miss_report = before_compute(self, call, "memo.refreshing()" if refresh else None)

    def _announce_computed(self, duration: float, stored: bool) -> None:
        if _config.call_verbosity(self._options.verbose):
            _config.announce(f"{self._name}: computed in {_config.human_seconds(duration)}"
                             + ("" if stored else " (not stored)"))

    def _reset_after_fork(self) -> None:
        """Locks and in-flight calls of the parent's threads and loops do not exist in a forked child."""
        self._pid = os.getpid()
        self._key_locks = {}
        self._key_locks_guard = threading.Lock()
        self._inflight = {}
        self._quick = False  # a forked child may be the worker the slow calls go to

    def _key_lock(self, key: str) -> _KeyLock:
        """Return this process's lock on ``key`` to hold; entering it says whether another thread held or wanted it."""
        if self._pid != os.getpid():
            self._reset_after_fork()
        return _KeyLock(self, key)

    async def _acall(self, args: tuple[Any, ...], kwargs: dict[str, Any], refresh: bool, probe: bool = False) -> Any:
        if _disabled.get() or _config.disabled_by_env():
            if not probe:
                self._ran_off = True
            return await self._fn(*args, **kwargs)
        outer = _conditions.active()
        token = _conditions.pause()  # our own lookups are not what a body reads (see _call)
        try:
            call = self.make_call(args, kwargs)
            misses = self.misses
            raised: BaseException | None = None
            chosen_token = self._choose_remote()
            try:
                return await self._aserve(call, args, kwargs, refresh, outer)
            except BaseException as exc:
                raised = exc
                raise
            finally:
                if chosen_token is not None:
                    _remote.chosen.reset(chosen_token)
                if not probe:
                    self._remember(call, self.misses == misses, raised)
        finally:
            _conditions.resume(token)

    def _remember(self, call: Call, hit: bool, raised: BaseException | None = None) -> None:
        """Keep a real call for ``explain_last``: probes (``refresh``, ``is_cached``, ``explain``) never come here."""
        call.changeable = ()  # the data it read is not kept alive by the last call
        call.bound = None  # nor its arguments
        self.last_call, self.last_hit = call, hit and raised is None
        self._ran_off = False
        self._last_report = None if self.last_hit else self._miss_report
        self._last_error = None if raised is None else _config.describe_error(raised)

    async def _aserve(self, call: Call, args: tuple[Any, ...], kwargs: dict[str, Any], refresh: bool,
                      outer: Recorders) -> Any:
        import asyncio  # loaded already: this runs on its event loop

        self._refuse_recursion(call)
        store = self._store()
        if self._pid != os.getpid():
            self._reset_after_fork()
        loop = asyncio.get_running_loop()
        slot = (id(loop), call.key)
        while True:
            if not refresh:
                value = self._read(store, call.key, call, outer)
                if value is not _MISS:
                    return value
            running = self._inflight.get(slot)
            if running is None:
                break
            # Another task of this loop computes the key: once it is done (stored, not stored, cancelled),
            # go round as a thread waiter does, so that what it stored is served with every check of a hit
            # (its own object, generators advanced, the random state it holds in) or the body runs for us.
            await asyncio.shield(running)
        return await self._acompute(store, call, slot, args, kwargs, refresh, outer)

    async def _acompute(self, store: Store, call: Call, slot: tuple[int, str], args: tuple[Any, ...],
                        kwargs: dict[str, Any], refresh: bool, outer: Recorders) -> Any:
        import asyncio  # loaded already: this runs on its event loop

        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[slot] = future
        leased = False
        try:
            watch = Watch()
            delay = 0.001
            while True:
                try:
                    leased = store.try_lease(call.key, watch)
                except Exception:
                    break
                if leased:
                    break
                await asyncio.sleep(delay)
                delay = min(delay * 2, LOCK_POLL_MAX)
                if not refresh:
                    value = self._read(store, call.key, call, outer)
                    if value is not _MISS:
                        future.set_result(None)  # waiters read their own copy
                        return value
            if leased and not refresh:
                value = self._read(store, call.key, call, outer)  # stored just before we took the lease?
                if value is not _MISS:
                    future.set_result(None)
                    return value
            self._note_miss(call, refresh)
            self.misses += 1
            self._check_stale(store, call)
            recorder = self._recorder(call, args, kwargs)
            before = _random_state.object_states(call.generators) if call.generators else {}
            _conditions.watch_all()  # not the body's time, nor its doing: in place before its bindings are noted
            held = self._state_held(call)
            bound = self._globals_bound(call, held)
            objects = self._read_objects(call, held)
            fills = self._note_filled(call, args, kwargs, recorder)
            start = time.perf_counter()
            with computing(call.key), _conditions.recording(recorder, outer, watch=False):
                result = await _conditions.stepped(self._fn(*args, **kwargs), recorder)
            duration = time.perf_counter() - start
            payload = None
            # What the checks read is not what a body reads: recording is paused here (see _acall).
            unchanged = not (self._changed(call, args, kwargs, recorder.fills) or self._rebound(bound)
                             or self._changed_process(call, recorder) or self._rebound_meanwhile(call, objects)
                             or self._unknown_handle(call, recorder))
            if unchanged:
                with _remote.replacing_if(refresh):
                    payload = self._write(store, call, result, duration, (recorder, before, outer))
                    if payload is not None:
                        self._write_as_now(store, call, fills, args, kwargs, result, duration,
                                           (recorder, before, outer))
            self._announce_computed(duration, payload is not None)
            future.set_result(None)  # written (or not): waiters go round and read it, or compute themselves
            return result
        except asyncio.CancelledError:
            # Only this caller was cancelled: the others waiting on the key take over.
            if not future.done():
                future.set_result(None)
            raise
        except BaseException as exc:
            if not future.done():
                future.set_exception(exc)
                future.exception()  # mark retrieved: waiters, if any, re-raise it
            raise
        finally:
            if self._inflight.get(slot) is future:
                del self._inflight[slot]
            if leased:
                self._release(store, [call.key])

    # -- control ---------------------------------------------------------------------------
    def refresh(self, *args: Any, **kwargs: Any) -> Any:
        """Recompute, overwrite the stored result and return it."""
        if self._is_async:
            return self._acall(args, kwargs, True, probe=True)
        return self._call(args, kwargs, True, probe=True)

    def uncached(self, *args: Any, **kwargs: Any) -> Any:
        """Run the function body without reading or writing the cache."""
        return self._fn(*args, **kwargs)

    @_own_work
    def is_cached(self, *args: Any, **kwargs: Any) -> bool:
        """Return True when a call with these arguments would be served from disk."""
        call = self.make_call(args, kwargs)
        try:
            return servable(self._store(), call.key, self._options.ttl) is not None
        except Exception:
            return False

    @_own_work
    def invalidate(self, *args: Any, **kwargs: Any) -> bool:
        """Delete the entry for these arguments; return True if there was one."""
        call = self.make_call(args, kwargs)
        store = self._store()
        with contextlib.suppress(Exception):
            record = store.get(call.key, second=False)  # what is here (the remote's copies go by row below)
            if record is not None and record.header.conditioned and "variants" in record.header.meta():
                # Each random state's entry: none may be served again once a marker is rewritten.
                # Only our own: another secret's variants of the same key claim it too, and are its to keep.
                variants = (entry for entry in store.records(tag=self._fid) if entry.verified
                            and entry.header.conditioned and entry.header.meta().get("variant_of") == call.key)
                store.delete_records(variants, everywhere=True)
        try:
            deleted = store.delete(call.key, everywhere=True)
        except (sqlite3.Error, OSError) as exc:  # the write lock held by another program, a read-only folder
            not_deleted(store, exc, "the entry")
            return False
        _config.forget_warning(f"not-deleted:{store.directory}")
        return deleted

    @_own_work
    def clear(self) -> int:
        """Delete every entry of this function, all code versions; return how many.

        A function defined in a notebook deletes only what it stored from that notebook: a
        function of the same name in another notebook of the folder keeps its results. Entries
        deleted here go from the remote tier too (where it is read-only, they are not brought back
        from it in this process). Where the index cannot be written (another program holds its write
        lock), it warns and returns 0.
        """
        store = self._store()
        try:
            deleted = delete_results(store, self.entries(), everywhere=True)
        except (sqlite3.Error, OSError) as exc:
            not_deleted(store, exc, f"{self._name}'s entries")
            return 0
        _config.forget_warning(f"not-deleted:{store.directory}")
        return deleted

    def cache_clear(self) -> int:
        """``clear()`` under ``lru_cache``'s name."""
        return self.clear()

    @_own_work
    def entries(self) -> list[StoredRecord]:
        """Return the stored records of this function (all code versions; of this notebook's function)."""
        return self._owned(self._store())

    def _owned(self, store: Store, lacking: bytes | None = None) -> list[StoredRecord]:
        """Return this function's records, read through the index's tag of its id (``lacking``: see ``records``)."""
        return [r for r in store.records(self._fid, lacking) if self.owns(r.header.meta())]

    @_own_work
    def cache_info(self) -> CacheInfo:
        """Return hits and misses in this process, and the entries and bytes on disk."""
        metas = [meta for r in self.entries() for meta in [r.header.meta()] if not is_marker(meta)]
        size = sum(meta.get("size", 0) for meta in metas)
        return CacheInfo(self.hits, self.misses, len(metas), size, self.saved_seconds)

    @_own_work
    def current_code(self) -> bytes:
        """Return the code digest the next call would be stored under."""
        return self.code_state().code

    @_own_work
    def clear_stale(self) -> int:
        """Delete the entries made under other versions of this function's code or of notebook_memo."""
        current = self.current_code().hex()
        store = self._store()
        return delete_results(store, (r for r in self._owned(store, _code_mark(current))
                                      if r.verified and r.header.meta().get("code") != current))

    def _check_stale(self, store: Store, call: Call) -> None:
        """Say once per process, on the first miss, that entries of other versions of the code are on disk.

        A function with few rows is looked at now; one with many is looked at on a thread, which
        gives the notice when it is done: the first miss costs the same in a cache of any size.
        """
        if self._stale_checked or not _config.settings.verbose:
            return
        self._stale_checked = True
        current = call.code.hex()
        try:
            few = store.tagged(self._fid, _STALE_NOW) < _STALE_NOW
        except Exception:
            return
        if few:
            self._stale_notice(store, current)
        else:
            threading.Thread(target=self._stale_notice, args=(store, current, True), name="notebook_memo-stale",
                             daemon=True).start()

    def _stale_notice(self, store: Store, current: str, background: bool = False) -> None:
        if background:
            _config.own_thread.ours = True  # this thread's reads are the store's, never a body's input
        count = size = library = 0
        versions = set()
        ours = rules_digest()
        with contextlib.suppress(Exception):
            for record in self._owned(store, _code_mark(current)):
                meta = record.header.meta()
                if record.verified and meta.get("code") != current and not is_marker(meta):
                    count += 1
                    size += meta.get("size", 0)
                    if meta.get("library") != ours:  # an upgrade, not an edit of the user's code: say so
                        library += 1
                    else:
                        versions.add(meta.get("code"))
        if count:
            # On a thread, a warnings filter set to "error" would end it with a traceback: the notice is dropped.
            with contextlib.suppress(Exception) if background else contextlib.nullcontext():
                warn_once(f"stale:{self._qualified}", _stale_words(self._name, count, size, len(versions), library),
                          StaleEntriesWarning)

    @_own_work
    def explain(self, *args: Any, **kwargs: Any) -> Any:
        """Return a report of whether this call would hit, and if not, what changed."""
        return explain_call(self, self.make_call(args, kwargs))

    @_own_work
    def explain_last(self) -> Any:
        """Return the report on the last real call in this session (``%memo explain NAME``); None before one."""
        if self._ran_off:
            return caching_off(self.qualified_name)
        call = self.last_call
        if call is None:
            return None
        if not self.last_hit and self._last_report is not None:
            report = self._last_report
        else:
            report = explain_call(self, call, as_miss=not self.last_hit)
        if self._last_error is None:
            return report if self.last_hit else after_compute(self, call, report)
        return Explanation(report.name, False, f"it raised {self._last_error}, so no result was stored; "
                           f"{report.summary}", report.reasons, report.unkeyed)

    # -- pickling: to workers and copies ------------------------------------------------------
    def __reduce__(self) -> tuple[Any, ...]:
        """Importable: by reference. Defined in a notebook: by value, with its code state and options.

        The by-value form is a cloudpickle stream inside a plain-pickle call, so ``pickle``
        (``multiprocessing``, ``concurrent.futures``) and cloudpickle (joblib's loky) both carry it.
        """
        directory = _config.resolve_dir(self._options.cache_dir)
        module, qualname = self._fn.__module__, self._fn.__qualname__
        if importable(self, module, qualname):
            return _by_reference, (module, qualname, directory, *self._remote_placement())
        if in_a_stream_by_value():
            # Inside the stream below: the object first, its state after, so cycles (a function
            # that calls itself through its global name) resolve to this one object.
            return _skeleton, (type(self),), self._travel_state(directory)
        by_value.active = True
        try:
            data = cloudpickle.dumps(self)
        finally:
            by_value.active = False
        # Where it is found too: a worker that defines it (a fork, a script's spawned worker) runs its own,
        # on the worker's globals, as a plain function would; the copy serves a worker that does not.
        return _live_or_copy, (type(self), module, qualname, self._own_code(), self._definition(), directory,
                               *self._remote_placement(), data)

    def _travel_state(self, directory: str) -> dict[str, Any]:
        skip_if = self._options.skip_if
        if skip_if is not None:
            try:
                cloudpickle.dumps(skip_if)
            except Exception:
                skip_if = None  # results a worker computes are then stored whatever they are
        remote, read_only = self._remote_placement()
        options = dataclasses.replace(self._options, cache_dir=directory, skip_if=skip_if, version=None,
                                      track_versions=self._track_versions(), remote=remote,
                                      remote_read_only=read_only)
        state = self.code_state()
        if state.mutable:
            state = dataclasses.replace(state, mutable=())  # the data read here stays here
        return {"fn": self._fn, "options": options, "version": self._version, "code": state,
                "reads": dict(self._reads_by_code()), "extra": self._travel_extra(), "fid": self._fid,
                "notebook": self._notebook}

    def _remote_placement(self) -> tuple[str, bool]:
        """Return the remote this function uses here ("" for none) and whether read-only: a worker uses the same."""
        token = self._choose_remote()
        try:
            url, read_only = _remote.configured_remote()
        finally:
            if token is not None:
                _remote.chosen.reset(token)
        return url or "", read_only

    def _travel_extra(self) -> dict[str, Any]:
        return {}

    def _restore_extra(self, extra: dict[str, Any]) -> None:
        pass

    def __setstate__(self, state: dict[str, Any]) -> None:
        MemoizedFunction.__init__(self, state["fn"], state["options"])
        self._version = state["version"]
        # Who it is comes with it: a worker can fingerprint neither a lambda's source nor the notebook.
        self._fid, self._notebook = state["fid"], state["notebook"]
        self._tag = owner_tag(self._fid, self._notebook)
        self._prefix = _NO_PREFIX
        # The sender's code state (a notebook keys by source, which a worker lacks) holds for as
        # long as this function's own resolution stays what it was on arrival.
        self._carried = [state["code"], None]
        self._sent_reads = state["reads"]
        self._restore_extra(state["extra"])

    def _placed(self, directory: str, remote: str, read_only: bool) -> MemoizedFunction[R]:
        """Return this function storing in ``directory`` and ``remote``: what its sender resolved."""
        twin = object.__new__(type(self))
        twin.__dict__.update(self.__dict__)
        twin._options = dataclasses.replace(self._options, cache_dir=directory, remote=remote,
                                            remote_read_only=read_only)
        twin._last_store = None
        twin._folder_variants = {}
        return twin

    def _adopt(self, fn: Callable[..., R]) -> None:
        """Run ``fn`` from now on: the same code reading another namespace (a restored cell's).

        Its code state is resolved again; a carried state (see ``__setstate__``) still holds
        while the resolution is what it was on arrival.
        """
        self._fn = self.__wrapped__ = fn
        self._tracker = self._tracker_by_code = None

    def __copy__(self) -> MemoizedFunction[R]:
        return self  # like a plain function: copies share it, its keys and its counters

    def __deepcopy__(self, memo: dict[int, Any]) -> MemoizedFunction[R]:
        return self


class BoundMemoized:
    """A memoized method bound to its instance: ``obj.method(...)``, ``obj.method.refresh(...)``."""

    __slots__ = ("_memo", "_obj")

    def __init__(self, memo: MemoizedFunction[Any], obj: Any) -> None:
        self._memo = memo
        self._obj = obj

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._memo(self._obj, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._memo, name)
        if name in _BOUND_METHODS:
            return functools.partial(attr, self._obj)
        return attr

    def __repr__(self) -> str:
        return f"<bound memoized {self._memo.qualified_name} of {type(self._obj).__qualname__}>"

    def __reduce__(self) -> tuple[Any, ...]:
        obj = self._obj
        # A classmethod is bound to the class itself, which plain pickle names as it names any class.
        cls = obj if isinstance(obj, type) else type(obj)
        if in_a_stream_by_value() or importable(cls, cls.__module__, cls.__qualname__):
            return BoundMemoized, (self._memo, obj)
        # An object of a notebook class, or the class: plain pickle (multiprocessing, spawn) would name
        # the class, which a spawned worker cannot find; the class goes with its definition, and a worker
        # that has it (a fork, whose pool's initializer may have set it up) uses its own.
        return _bound_to_copy, (self._memo, dumps_for_a_worker(obj))

    def __copy__(self) -> BoundMemoized:
        return BoundMemoized(self._memo, self._obj)

    def __deepcopy__(self, memo: dict[int, Any]) -> BoundMemoized:
        return BoundMemoized(self._memo, copy.deepcopy(self._obj, memo))


_BOUND_METHODS = frozenset({"refresh", "uncached", "is_cached", "invalidate", "explain"})

# A memoized function reached as a value (an argument, a partial, a container) is its code,
# transitively, and its version: never its locks, counters or pickled form.
register_hasher(MemoizedFunction, lambda fn: (fn.__wrapped__, fn._version))
register_hasher(BoundMemoized, lambda bound: (bound._memo, bound._obj))


# Recursion-limit units a memoized level adds beyond the body's own frame, as measured on
# CPython 3.11 (our three frames and the C calls between them, about five in all). It must stay
# below the true cost: then runaway recursion still ends in RecursionError, never a stack overflow.
_OUR_FRAMES = 4


class _room_for_our_frames:  # lower case: used as a function, ``with _room_for_our_frames():``
    """Let a recursive memoized function go as deep as the plain function would.

    Each nested miss raises the recursion limit by the frames our wrapper adds, and gives
    them back on the way out (unless someone else changed the limit meanwhile). A class rather
    than a generator: it is entered on every miss.
    """

    __slots__ = ("limit",)

    def __enter__(self) -> None:
        self.limit = limit = sys.getrecursionlimit()
        sys.setrecursionlimit(limit + _OUR_FRAMES)

    def __exit__(self, *exc: object) -> None:
        if sys.getrecursionlimit() == self.limit + _OUR_FRAMES:
            sys.setrecursionlimit(self.limit)



# -- pickling helpers ---------------------------------------------------------------------------

def _bound_to_copy(memo: MemoizedFunction[Any], data: bytes) -> BoundMemoized:
    return BoundMemoized(memo, pickle.loads(data))


def _by_reference(module: str, qualname: str, directory: str, remote: str | None = None,
                  read_only: bool = False) -> Any:
    """Return the memoized function ``module.qualname``, storing where its sender stored (directory and remote)."""
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    if isinstance(target, MemoizedFunction):
        return _placed_as_sent(target, directory, remote, read_only)
    return target


def _placed_as_sent(target: MemoizedFunction[Any], directory: str, remote: str | None,
                    read_only: bool) -> MemoizedFunction[Any]:
    """Return ``target`` storing in the sender's directory and remote (its own remote when the sender did not say)."""
    here = (_config.resolve_dir(target._options.cache_dir), *target._remote_placement())
    if remote is None:
        remote, read_only = here[1], here[2]
    return target if here == (directory, remote, read_only) else target._placed(directory, remote, read_only)


def _live_or_copy(cls: type[MemoizedFunction[Any]], module: str, qualname: str, own: tuple[str, bytes],
                  definition: bytes | None, directory: str, remote: str, read_only: bool, data: bytes) -> Any:
    """Return the memoized function this process's main module defines at ``qualname`` with the sent own code
    and the rest of its definition (``_definition``), storing where its sender stored; else the sent copy.

    The live one reads this process's globals (what a pool's initializer set) and keys by them, as the
    plain function would; the copy's are copies of the sender's. One of other options or defaults (a
    fork made before the notebook redefined it) would answer with what the sender no longer means.
    """
    if module in ("__main__", "__mp_main__"):
        for name in ("__main__", "__mp_main__"):
            target: Any = sys.modules.get(name)
            try:
                for part in qualname.split("."):
                    target = getattr(target, part, None)
                if type(target) is cls and definition is not None and target._own_code() == own and \
                        target._definition() == definition:
                    return _placed_as_sent(target, directory, remote, read_only)
            except Exception:  # whatever the worker's namespace holds there, the copy still serves
                continue
    return pickle.loads(data)


def _skeleton(cls: type[MemoizedFunction[Any]]) -> MemoizedFunction[Any]:
    return cls.__new__(cls)


# -- the decorator object -------------------------------------------------------------------



def make_options(ttl: TTLLike = None, ignore: Iterable[str] = (), version: Any = None,
                 cache_dir: Any = None, skip_if: Callable[[Any], bool] | None = None,
                 mmap: bool = False, track_versions: bool | None = None,
                 files: Iterable[str | os.PathLike[str]] | str | os.PathLike[str] = (),
                 verbose: bool | int | None = None, remote: str | bool | None = None) -> Options:
    """Validate decorator arguments into Options."""
    if isinstance(ignore, str):
        ignore = [ignore]
    if skip_if is not None and not callable(skip_if):
        raise TypeError(f"skip_if must be a callable taking the result, not {skip_if!r}")
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    declared = []
    for item in files:
        if not isinstance(item, (str, os.PathLike)):
            raise TypeError(f"files= takes paths or glob patterns such as 'data/*.csv', not {item!r}")
        declared.append(os.fspath(item))
    if verbose is not None and not isinstance(verbose, int):
        raise TypeError(f"verbose= takes a level such as 1 (a line per call), 0 or a bool, not {verbose!r}")
    if remote is True or not (remote is None or remote is False or isinstance(remote, str)):
        raise TypeError(f"remote= takes a URL such as 's3://bucket/prefix' or 'file:///mnt/team/cache', False "
                        f"for none, or None for the configured one, not {remote!r}")
    return Options(parse_ttl(ttl), frozenset(ignore), version,
                   None if cache_dir is None else str(cache_dir), skip_if, mmap, track_versions, tuple(declared),
                   None if verbose is None else int(verbose), "" if remote is False else remote)


def wrap(fn: Any, options: Options) -> Any:
    """Return the memoized form of a function, classmethod or staticmethod."""
    if isinstance(fn, (classmethod, staticmethod)):
        return type(fn)(wrap(fn.__func__, options))
    if isinstance(fn, MemoizedFunction):
        raise TypeError(f"{fn.qualified_name} is memoized already")
    if not isinstance(fn, types.FunctionType):
        raise TypeError(f"@memo decorates functions and methods, not {type(fn).__qualname__} objects")
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        raise TypeError(f"{fn.__qualname__} is a generator function: its result is consumed once and "
                        "cannot be cached; return a list instead")
    return MemoizedFunction(fn, options)


@contextlib.contextmanager
def _flag(var: contextvars.ContextVar[bool]) -> Iterator[None]:
    token = var.set(True)
    try:
        yield
    finally:
        var.reset(token)


def disabled() -> contextlib.AbstractContextManager[None]:
    """Run the body of every memoized function called inside the block (no reads, no writes)."""
    return _flag(_disabled)


def refreshing() -> contextlib.AbstractContextManager[None]:
    """Recompute and overwrite every memoized call made inside the block."""
    return _flag(_refreshing)


# Among a marker's variants, beside the global generators: the folder the run ran in, for a run whose files are
# named relative to it, so that each folder keeps its own entry (a kernel or worker alternating between folders).
FOLDER_VARIANT = "current folder"
# The most (key, folder) pairs a function keeps the folder-variant entry of, for its hits' one lookup.
_FOLDER_VARIANTS_KEPT = 1024


def variant_key(key: str, digests: dict[str, str]) -> str:
    """Return the key of the entry stored for ``key`` under these global generator states (by digest)."""
    return combine([b"variant", key.encode(), *(f"{name}\0{digests[name]}".encode() for name in sorted(digests))]).hex()


def conditioned_entry(store: Store, key: str, record: StoredRecord, first_only: bool = True,
                      serving: bool = False) -> tuple[StoredRecord | None, Conditions, list[str]]:
    """Return the entry to serve for a record with preconditions, its conditions, and why not.

    A marker record (the body drew from global random generators) points to the entry stored
    for the generators' live states; the entry is served only while its preconditions hold.
    ``serving``: its value is loaded next (as ``Store.get``'s). Raises CorruptRecord like ``Store.get``.
    """
    meta = record.header.meta()
    variants = meta.get("variants")
    if variants is not None:
        generators = [name for name in variants if name != FOLDER_VARIANT]
        live = _random_state.global_states(generators)
        if set(live) != set(generators):
            return None, {}, [f"{_random_state.describe_generators(generators)} is not loaded now"]
        digests = {name: digest for name, (digest, _) in live.items()}
        if len(generators) != len(variants):
            digests[FOLDER_VARIANT] = _conditions.folder_now()
        found = store.get(variant_key(key, digests), serving=serving)
        if found is None or found.header.expired() or not found.header.conditioned:
            subject, reason = _described_variants(generators, digests)
            return None, {}, [f"{subject} differs from every stored run's ({reason})"]
        if found.header.meta().get("epoch") != meta.get("epoch"):
            # Stored before the entries of this call were invalidated (perhaps on another machine, which
            # could not name every state's entry): not one of the runs the marker now stands for.
            subject = _described_variants(generators, digests)[0].replace("the ", "this ", 1)
            return None, {}, [f"the run stored for {subject} was invalidated since"]
        record, meta = found, found.header.meta()
    if not isinstance(meta.get("pre"), dict):
        # Its format says it has preconditions: without them readable, it is never served unchecked.
        raise CorruptRecord("the record has preconditions, and its metadata does not say which")
    conditions: Conditions = meta["pre"]
    why = _conditions.failures(conditions, first_only)
    return (None if why else record), conditions, why


def _described_variants(generators: list[str], digests: dict[str, str]) -> tuple[str, str]:
    """Name what selects a marker's entry (the state of the generators drawn from, the current folder, or
    both), and why it does."""
    subject, why = [], []
    if generators:
        subject.append(f"the state of {_random_state.describe_generators(generators)}")
        why.append("the body draws from it")
    if FOLDER_VARIANT in digests:
        subject.append(f"the current folder ({digests[FOLDER_VARIANT]})")
        why.append("reads paths relative to the folder" if generators else "the body reads paths relative to it")
    return " or ".join(subject), " and ".join(why)


def servable(store: Store, key: str, ttl: float | None = None) -> StoredRecord | None:
    """Return the record a lookup of ``key`` would serve, without loading it or counting a hit; None if none.

    ``ttl``: the one the code gives now, which also ages entries stored without it (or with a longer one).
    Raises CorruptRecord like ``Store.get``.
    """
    record = store.get(key)
    if record is not None and record.header.conditioned and not record.header.expired():
        record = conditioned_entry(store, key, record)[0]
    return None if record is None or record.header.expired() or record.header.stale_for(ttl) else record


def warn_random_result(name: str, qualified: str, recorder: Recorder,
                       remedy: str = "call it with .uncached(...)") -> None:
    """Warn once when the run ``recorder`` watched seeded a generator from the operating system's entropy: its
    result, stored, is random (the words of @memo, memo.batch and %%memo alike)."""
    tied = recorder.unseen_seeders & recorder.tied
    if tied:
        names = _random_state.describe_generators(sorted(tied))
        warn_once(f"unseen seeder:{qualified}", f"{name} reaches a seeding function of {names} taken before "
                  "notebook_memo could watch it (held in a dict, a class, a closure, a partial or a default since "
                  "before the first memoized call), so a seed through it cannot be told from a draw: its result is "
                  "kept for the state it found, and computed again in a new kernel. Call the seeding function by "
                  "its module's name in the body (random.seed(...), np.random.seed(...)), or take it after the "
                  "first memoized call.")
    if recorder.entropy:
        warn_once(f"entropy:{qualified}", f"{name} seeds {_random_state.describe_generators(sorted(recorder.entropy))} "
                  "from the operating system's entropy (a seed call without a seed): its result is random, and the "
                  f"cache keeps the first one. Pass a seed, or {remedy}.")


def run_conditions(store: Store, recorder: Recorder, arguments_before: dict[str, Any] | None = None,
                   generators: dict[str, Any] | None = None) -> tuple[Conditions, dict[str, str]]:
    """Return a finished run's preconditions, and the global generators whose state before it matters
    (by the digest of that state). Raises NotRecordable when what it read cannot be recorded soundly.
    """
    conditions = _conditions.finish(recorder, [store.directory])
    if generators:
        after = _random_state.object_states(generators)
        changed = {label: state for label, state in after.items() if (arguments_before or {}).get(label) != state}
        if changed:
            conditions["generators"] = changed
    states, keyed = _conditions.drawn(recorder)
    if states:
        conditions["states"] = states
    return conditions, keyed


def entry_conditions(store: Store, key: str, recorder: Recorder, arguments_before: dict[str, Any] | None = None,
                     generators: dict[str, Any] | None = None) -> tuple[str, Conditions, list[str] | None]:
    """Return where a finished run is stored, its preconditions, and the generators it drew from."""
    conditions, keyed = run_conditions(store, recorder, arguments_before, generators)
    if _conditions.depends_on_folder(conditions):
        keyed = {**keyed, FOLDER_VARIANT: recorder.cwd}
    if not keyed:
        return key, conditions, None
    return variant_key(key, keyed), conditions, sorted(keyed)


def save_entry(store: Store, key: str, where: tuple[str, Conditions | None, list[str] | None], payload: Payload,
               meta: dict[str, Any], ttl: float | None, duration: float, tag: str, later: bool = False) -> bool:
    """Save a run's result where ``entry_conditions`` said, with its preconditions; a run that drew from
    global generators also gets the marker at ``key`` naming them, which leads a hit to its state's entry."""
    entry_key, conditions, variants = where
    if conditions:
        meta["pre"] = conditions
    if variants:
        meta["variant_of"] = key
        meta["epoch"] = _marker_epoch(store, key)
    if variants:
        # A random state's entry replaces the remote's: after an invalidate elsewhere (which cannot know every
        # state's entry there) the state's old result must not stay beside the new marker.
        with _remote.replacing_if(True):
            saved = save(store, entry_key, payload, meta, ttl, duration, tag, later)
    else:
        saved = save(store, entry_key, payload, meta, ttl, duration, tag, later)
    if saved and variants:
        marker = {name: value for name, value in meta.items() if name not in ("pre", "variant_of")}
        save(store, key, dumps(None), {**marker, "size": 0, "variants": variants}, ttl, duration, tag, later)
    return saved


def _marker_epoch(store: Store, key: str) -> str:
    """Return the epoch of the random-state marker at ``key``: its own while one stands there, else a new one.

    A state's entry carries its marker's epoch: entries stored before an invalidate (which removes
    the marker) never serve the marker written after it."""
    with contextlib.suppress(Exception):
        record = store.get(key)
        if record is not None and not record.header.expired():
            epoch = record.header.meta().get("epoch")
            if isinstance(epoch, str) and "variants" in record.header.meta():
                return epoch
    return uuid.uuid4().hex


def served(conditions: Conditions, generators: dict[str, Any], outer: Recorders) -> None:
    """A conditioned entry is served: leave the generators as its run left them; tell enclosing bodies."""
    if "states" in conditions:
        _random_state.set_global_states(conditions["states"])
    if "generators" in conditions and generators:
        _random_state.set_object_states(generators, conditions["generators"])
    if outer:
        _conditions.inherit(conditions, outer)


def save(store: Store, key: str, payload: Payload, meta: dict[str, Any], ttl: float | None, duration: float,
         tag: str, later: bool = False) -> bool:
    """Write one record (its TTL from ``meta['created']``); on storage trouble warn once and return False.

    ``later``: the store may commit it from its background thread (``Store.put``)."""
    created = meta["created"]
    expires = created + ttl if ttl else None
    if payload.nbytes > store.size_limit:
        warn_once(f"too-large:{tag}", f"{meta.get('name', 'a result')}: a result of {human_bytes(payload.nbytes)} "
                  f"is larger than the cache's size limit ({human_bytes(store.size_limit)}); it is returned but "
                  "not stored. Raise the limit with configure(size_limit=...) or NOTEBOOK_MEMO_SIZE_LIMIT.",
                  StorageWarning)
        return False
    try:
        store.put(key, payload, meta, created, expires, duration, expires + EXPIRY_GRACE if expires else None,
                  tag, INLINE_LIMIT, later)
    except Exception as exc:
        storage_trouble(store, exc)
        return False
    _config.forget_warning(f"storage:{store.directory}")
    return True


def storage_unreadable(store: Store, exc: BaseException, then: str) -> None:
    """Warn, once per directory, that a lookup could not read the index (the entry may be fine: it stays)."""
    warn_once(f"storage:{store.directory}", f"cannot read the cache in {store.directory} "
              f"({type(exc).__name__}: {exc}); {then}", StorageWarning)


def storage_trouble(store: Store, exc: BaseException) -> None:
    """Warn, once per directory until it works again, that results are not being stored."""
    warn_once(f"storage:{store.directory}", f"results are not being stored in {store.directory} "
              f"({type(exc).__name__}: {exc}); they are computed and returned as usual, and caching "
              "resumes once the directory is writable again", StorageWarning)


def not_deleted(store: Store, exc: BaseException, what: str) -> None:
    """Warn, once per directory until a delete works again, that ``what`` could not be deleted."""
    warn_once(f"not-deleted:{store.directory}", f"{what} in {store.directory} could not be deleted "
              f"({type(exc).__name__}: {exc}); what was stored stays and may be served. Call it again once the "
              "cache can be written", StorageWarning)


def keep_alive() -> None:
    """Renew every lease this process holds."""
    for store in open_stores():
        if store.holds_leases():
            store.renew_leases()


def _stale_words(name: str, count: int, size: int, versions: int, library: int) -> str:
    """Return the stale notice of ``name``: ``count`` entries of ``size`` bytes on disk, ``library`` of them made by
    another version of notebook_memo, the others by ``versions`` other versions of its code."""
    entries = f"{count} cached entr{'y' if count == 1 else 'ies'} ({human_bytes(size)})"
    code = f"from {versions} other version{'' if versions == 1 else 's'} of its code"
    made = "made by another version of notebook_memo"
    verb = "is" if count == 1 else "are"
    if library and library < count:
        what = f"{entries} {verb} still on disk: {count - library} {code} and {library} {made}"
    else:
        what = f"{entries} {made if library else code} {verb} still on disk"
    return f"{name}: {what}; {name}.clear_stale() removes them"


def clear_stale_all() -> int:
    """Remove older-code entries of every memoized function defined in this process."""
    return sum(fn.clear_stale() for fn in registered())


# A function with fewer index rows than this is checked for stale entries on its first miss itself.
_STALE_NOW = 256


def _code_mark(code: str) -> bytes:
    """Return the bytes every record stored under code digest ``code`` holds in its metadata.

    A scan that skips the rows holding them skips no entry of another version, but for one whose
    argument named ``code`` has this very digest (JSON escapes the quotes of any string value): at
    worst such an entry is left out of a notice or a clean-up, never deleted by mistake.
    """
    return f'"code":"{code}"'.encode()

