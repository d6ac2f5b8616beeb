"""``memo.batch``: cache a function over a sequence item by item; compute only the new items."""

from __future__ import annotations

import asyncio
import dataclasses
import difflib
import importlib.util
import inspect
import pickle
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

from xxhash import xxh3_128_hexdigest

from . import _conditions, _config, _containers, _memo, _random_state
from ._config import LOCK_POLL_MAX
from ._containers import ResultType
from ._dependencies import subclasses_digest
from ._errors import (
    BatchError,
    ConfigurationError,
    MemoWarning,
    OptionError,
    RecursiveCall,
    StorageWarning,
    UnhashableArgument,
)
from ._explain import (
    FIRST_RUN,
    Explanation,
    before_compute,
    caching_off,
    clock_notes,
    explain_call,
    not_used,
    stored_as,
)
from ._fills import FillNotes
from ._memo import _MISS, Call, MemoizedFunction, Options, run_conditions, save, servable, storage_trouble
from ._options import check_options, keyword_names
from ._serialize import CorruptRecord, Payload, PlainRecord, copy_value, dumps
from .hashing import IMMUTABLE_LEAVES, SharingWith, combine, content_hash, framed, framed_head, things_met
from .stores import remote as _remote
from .stores._leases import Watch, computing, is_computing
from .stores.local import Store, StoredRecord

__all__ = ()

_READ_CHUNK = 1000  # items read per query
_TAILS_KEPT = 4096  # distinct result-type descriptions a call remembers


@dataclass
class _Run:
    """What one real call of a batch function did: for ``%memo explain`` and ``verbose``."""

    call: Call  # the key prefix: code and the other arguments
    items: list[bytes]  # the distinct items' digests, in order
    computed: list[bytes]  # those computed (the rest came from the cache)
    seconds: float  # spent computing them
    saved: float  # the compute time of the items served
    before: Explanation | None = None  # why the first computed item was not served though it had an entry
    error: str | None = None  # what the call raised
    given: int = 0  # the items given, duplicates included

    def counted(self) -> str:
        """Return how many items the call had: '3 items', or '2 distinct items (3 given)'."""
        total = len(self.items)
        return f"{total} items" if self.given in (0, total) else f"{total} distinct items ({self.given} given)"



class BatchFunction(MemoizedFunction[Any]):
    """A function over a sequence whose results are cached per item.

    Calls look every item up, run the function only on the missing ones (deduplicated, in
    order, ``batch_size`` at a time), store each new item's result, and return all results
    aligned with the input, in the container the function returns.
    """

    def __init__(self, fn: Callable[..., Any], options: Options, argument: str, batch_size: int,
                 progress: bool) -> None:
        super().__init__(fn, options)
        if argument not in self._binder.names:
            near = difflib.get_close_matches(argument, self._binder.names, n=1)
            raise ConfigurationError(f"memo.batch({argument!r}): {fn.__qualname__} has no parameter named "
                                     f"{argument!r}; its parameters are {self._binder.names}"
                                     + (f"; did you mean {near[0]!r}?" if near else ""))
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigurationError(f"batch_size is how many items go to one call of {fn.__qualname__}: a whole "
                                     f"number, at least 1, not {batch_size!r}")
        self._argument = argument
        self._batch_size = batch_size
        self._progress = progress
        self._last_run: _Run | None = None

    def _travel_extra(self) -> dict[str, Any]:
        return {"argument": self._argument, "batch_size": self._batch_size, "progress": self._progress}

    def _restore_extra(self, extra: dict[str, Any]) -> None:
        self._argument = extra["argument"]
        self._batch_size = extra["batch_size"]
        self._progress = extra["progress"]

    # -- keys ---------------------------------------------------------------------------------
    def _split_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Call, list[bytes]]:
        """Return the batch argument, a Call for the other arguments, and each item's digest."""
        return self._split(args, kwargs)[:3]

    def _split(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Call, list[bytes], dict[int, bytes]]:
        """Return what ``_split_call`` does, and by position the content digest of each item whose digest also
        says what it shares with the other arguments.

        The key prefix has what @memo's key has beyond code and arguments (torch's modes and settings
        the call runs under), and the call warns as @memo's does (a global it cannot hash, the clock).
        """
        bound = self._binder.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        batch = bound.arguments[self._argument]
        kind = _containers.kind(batch)
        met = things_met
        outer_found, outer_torch = getattr(met, "found", None), getattr(met, "torch", False)
        outer_decimal = getattr(met, "decimal", False)
        # Clock reads in the code of an argument's or an item's class; random generators in the arguments and
        # the globals the code reads (a chunk that draws from one is not stored: a batch hit does not move
        # generators on as @memo's does).
        found: list[Any] = []
        caches: dict[int, frozenset[str]] = {}  # the pandas caches met, as in @memo's keys
        walks: dict[int, tuple[Any, Any]] = {}  # what hashing the other arguments met: which of them share objects
        outer_caches = getattr(met, "caches", None)
        met.found, met.torch, met.decimal, met.caches = found, False, False, caches
        # The user classes the other arguments hold, and each item, where the code lists subclasses (see @memo's)
        classes: list[type] = []
        outer_classes = getattr(met, "classes", None)
        try:
            state = self.code_state()
            outer_walks, met.walks = getattr(met, "walks", None), walks
            if state.lists_subclasses:
                met.classes = classes
            try:
                others = {n: content_hash(v, f"argument '{n}' of {self._name}")
                          for n, v in bound.arguments.items() if n != self._argument and n not in self._options.ignore}
            finally:
                met.walks, met.classes = outer_walks, outer_classes
            container = _containers.container_digest(batch, kind)
            digests: list[bytes] = []
            contents: dict[int, bytes] = {}
            # An item that is, or holds, an object of the other arguments (or reads their memory) is another item
            # than its copy: the body can tell. Only where they hold one is each item's walk looked at.
            sharing = SharingWith([bound.arguments[n] for n in others], walks)
            item_walks: dict[int, tuple[Any, Any]] | None = {} if sharing else None
            outer_walks, met.walks = getattr(met, "walks", None), item_walks
            try:
                item_classes: list[type] = []
                for item in _containers.items(batch, kind):
                    if state.lists_subclasses:
                        item_classes = []
                        met.classes = item_classes
                    content = digest = content_hash(item, "item")  # named only when one fails: none built per item
                    met.classes = outer_classes
                    if state.lists_subclasses and item_classes:
                        contents[len(digests)] = content
                        digest = combine([digest, subclasses_digest(item_classes)])
                    if item_walks is not None and type(item) not in IMMUTABLE_LEAVES:
                        held = item_walks.get(id(item))
                        part = sharing.part(item, held[1] if held is not None and held[0] is item else None)
                        item_walks.clear()
                        if part is not None:
                            contents[len(digests)] = content
                            digest = combine([digest, part])
                    digests.append(digest)
            except UnhashableArgument as exc:
                raise exc.renamed("item", f"item {len(digests)} of '{self._argument}'") from None
            finally:
                met.walks = outer_walks
        finally:
            met.found, met.caches, met.classes = outer_found, outer_caches, outer_classes
            met_torch, met_decimal = met.torch, met.decimal
            met.torch = outer_torch or met_torch
            met.decimal = outer_decimal or met_decimal
        parts = [n.encode() + b"\0" + d for n, d in others.items()] \
            + self._binder.shared([(n, bound.arguments[n]) for n in others], walks)
        if classes:
            parts.append(subclasses_digest(classes))
        extras: dict[str, str] = {}
        deps = state.deps
        if met_torch or "settings of torch" in deps.parts:
            self._torch_context(deps, parts, extras)
        if met_decimal and "settings of decimal" not in deps.parts:  # Decimal items: x / 3 uses the context
            self._decimal_context(parts, extras)
        unseen: frozenset[tuple[str, str]] = frozenset()
        if found:
            found = self._seed_met(state, found, parts, extras)
            unseen, found = _memo.unseen_state_functions(found)
        if found or deps.skipped or deps.clock:
            deps, found = self._left_out(deps, found)
        prefix = combine([b"nbmB", self._fid.encode(), state.code, state.deps_digest, self._version, container,
                          *parts])
        call = Call(prefix.hex(), others, state.code, state.own, deps, state.method,
                    _random_state.numbered(found) if found else {}, mutable=True, extras=extras,
                    changeable=state.mutable, deps_digest=state.deps_digest, caches=caches, unseen=unseen)
        return batch, call, digests, contents

    @staticmethod
    def _item_key(call: Call, digest: bytes) -> str:
        return BatchFunction._item_keys(call, [digest])[0]

    @staticmethod
    def _item_keys(call: Call, digests: Iterable[bytes]) -> list[str]:
        """Each item's key: ``combine`` of the call's key and the item's digest, the call's part framed once."""
        head = framed([bytes.fromhex(call.key)])
        return [xxh3_128_hexdigest(head + framed_head(len(digest)) + digest) for digest in digests]

    def _lookup(self, store: Store, key: str, decoded: dict[str, ResultType],
                outer: _conditions.Recorders = ()) -> tuple[Any, ResultType | None]:
        """Return an item's cached result and its result type, or (_MISS, None)."""
        try:
            record = store.get(key, serving=True)
        except Exception:
            self._read(store, key)  # reports the trouble (and drops a damaged record)
            return _MISS, None
        if record is None:
            return _MISS, None
        rtype = _containers.stored_type(record.header.meta_raw, decoded)
        if rtype is None:
            return _MISS, None  # stored before result types were described: recomputed, never mistyped
        value = self._read(store, key, None, outer)
        return (_MISS, None) if value is _MISS else (value, rtype)

    def _lookup_many(self, store: Store, keys: list[str], decoded: dict[str, ResultType],
                     outer: _conditions.Recorders = ()) -> tuple[list[Any], list[ResultType | None], int]:
        """Return each key's cached result (``_MISS`` where none is served) and its result type (None
        there), in order, and how many keys were not served.

        Rows are read with one query per chunk. Each record is verified against its own key before
        anything of it is used, and only the records returned are unpickled; a key whose row is
        refused (or a storage error) takes the one-key path, which reports it and drops a damaged
        record. Two lists, not one of pairs: a pair per item would be one more object for the
        garbage collector to walk, per item.
        """
        found: list[Any] = []
        found_types: list[ResultType | None] = []
        types = _Types(decoded)
        loaded, saved, missed = 0, 0.0, 0
        tail, known = types.last
        # A ttl the code gives now ages every entry, those stored without one too: the plain tuples carry
        # no creation time, so with a ttl every record comes with its header.
        ttl = self._options.ttl
        plain = ttl is None
        for start in range(0, len(keys), _READ_CHUNK):
            part = keys[start:start + _READ_CHUNK]
            records: Mapping[str, StoredRecord | CorruptRecord | PlainRecord | None]
            try:
                records = store.get_many(part, plain=plain)
            except Exception:
                records = dict.fromkeys(part)
            for key in part:
                record = records.get(key, _MISS)
                value: Any = _MISS
                rtype: ResultType | None = None
                if record is _MISS:
                    pass  # no live row
                elif type(record) is tuple:  # the commonest record, verified in one pass
                    payload, meta_raw, duration = record
                    if tail and meta_raw.endswith(tail):  # _Types.of's commonest answer, without a call
                        rtype = known
                    else:
                        rtype = types.of(meta_raw)
                        tail, known = types.last
                    if rtype is not None:  # else stored before result types were described: recomputed, never mistyped
                        try:
                            value = pickle.loads(payload)  # a pickle alone (no buffers), as ``loads`` would read it
                        except Exception:
                            value = self._read(store, key, None, outer)  # it says why, and drops what cannot load
                        else:
                            loaded += 1
                            saved += duration
                elif not isinstance(record, StoredRecord):
                    value, rtype = self._lookup(store, key, decoded, outer)
                elif (rtype := types.of(record.header.meta_raw)) is None:
                    pass  # stored before result types were described: recomputed, never mistyped
                elif record.header.conditioned:
                    value = self._read(store, key, None, outer)  # the one-key path checks its preconditions
                elif not record.header.expired() and (plain or not record.header.stale_for(ttl)):
                    try:
                        value = record.load(self._options.mmap)
                    except Exception:
                        value = self._read(store, key, None, outer)  # it tells evicted, damaged and unloadable apart
                    else:
                        loaded += 1
                        saved += record.header.duration
                if value is _MISS or rtype is None:
                    value, rtype = _MISS, None
                    missed += 1
                found.append(value)
                found_types.append(rtype)
        self.hits += loaded  # the one-key path counted its own
        self.saved_seconds += saved
        store.count_hits(self._tag, loaded)
        return found, found_types, missed

    # -- calling ------------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._is_async:
            return self._acall_mended(args, kwargs)
        try:
            return self._call_batch(args, kwargs)
        except _Unassembled as exc:
            self._recomputing(exc)
        token = _memo._refreshing.set(True)
        try:
            return self._call_batch(args, kwargs)
        finally:
            _memo._refreshing.reset(token)

    async def _acall_mended(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            return await self._acall_batch(args, kwargs)
        except _Unassembled as exc:
            self._recomputing(exc)
        token = _memo._refreshing.set(True)
        try:
            return await self._acall_batch(args, kwargs)
        finally:
            _memo._refreshing.reset(token)

    def _recomputing(self, exc: _Unassembled) -> None:
        """Say that the items read from the cache did not go together into a result, and that all are computed."""
        cause = exc.__cause__
        _config.warn_once(f"unassembled:{self._qualified}:{cause}",
                          f"{self._name}: the items read from the cache could not be put together into its result "
                          f"({type(cause).__name__}: {cause}): a record holds what this function's items are not "
                          "(damaged, or written by another hand). Every item of the call is computed again, and "
                          "its record overwritten", StorageWarning)

    def _call_batch(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if _config.disabled_by_env() or self._disabled_now():
            self._ran_off = True
            return self._fn(*args, **kwargs)
        outer = _conditions.active()
        token = _conditions.pause()  # our own lookups are not what a body reads (see MemoizedFunction._call)
        chosen_token = self._choose_remote()
        try:
            plan = self._plan(args, kwargs, outer)
            # The functools.cached_property values the chunks fill, noted across them: each is compared with the
            # arguments as the call started, so a value a chunk filled is excused in a later one while unchanged
            fills: FillNotes = {}
            try:
                for positions in plan.chunks():
                    if not positions:
                        time.sleep(plan.delay)  # the rest is being computed by other processes
                        continue
                    sub_args, sub_kwargs = plan.arguments(positions)
                    recorder = self._recorder(plan.call, sub_args, sub_kwargs)
                    _conditions.watch_all()  # our wrappers in place before what the body may bind is noted
                    bound = self._globals_bound(plan.call)
                    drawn = _random_state.object_states(plan.call.generators) if plan.call.generators else None
                    objects = self._read_objects(plan.call)
                    recorder.fills, recorder.fill_owners = fills, self._fill_owners(plan.call, sub_args, sub_kwargs)
                    start = time.perf_counter()
                    with plan.computing_items(positions), _conditions.recording(recorder, outer):
                        result = self._fn(*sub_args, **sub_kwargs)
                    duration = time.perf_counter() - start
                    changed = self._chunk_changed(plan, positions, sub_args, sub_kwargs, bound, recorder, drawn,
                                                  objects)
                    plan.absorb(positions, result, duration, recorder, store=not changed)
            except BaseException as exc:
                self._failed(plan, exc)
                raise
            finally:
                plan.release()
            return self._finished(plan)
        finally:
            if chosen_token is not None:
                _remote.chosen.reset(chosen_token)
            _conditions.resume(token)

    async def _acall_batch(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if _config.disabled_by_env() or self._disabled_now():
            self._ran_off = True
            return await self._fn(*args, **kwargs)
        outer = _conditions.active()
        token = _conditions.pause()  # our own lookups are not what a body reads (see MemoizedFunction._call)
        chosen_token = self._choose_remote()
        try:
            plan = self._plan(args, kwargs, outer)
            # The functools.cached_property values the chunks fill, noted across them: each is compared with the
            # arguments as the call started, so a value a chunk filled is excused in a later one while unchanged
            fills: FillNotes = {}
            try:
                for positions in plan.chunks():
                    if not positions:
                        await asyncio.sleep(plan.delay)
                        continue
                    sub_args, sub_kwargs = plan.arguments(positions)
                    recorder = self._recorder(plan.call, sub_args, sub_kwargs)
                    _conditions.watch_all()  # our wrappers in place before what the body may bind is noted
                    bound = self._globals_bound(plan.call)
                    drawn = _random_state.object_states(plan.call.generators) if plan.call.generators else None
                    objects = self._read_objects(plan.call)
                    recorder.fills, recorder.fill_owners = fills, self._fill_owners(plan.call, sub_args, sub_kwargs)
                    start = time.perf_counter()
                    with plan.computing_items(positions), _conditions.recording(recorder, outer):
                        result = await self._fn(*sub_args, **sub_kwargs)
                    duration = time.perf_counter() - start
                    changed = self._chunk_changed(plan, positions, sub_args, sub_kwargs, bound, recorder, drawn,
                                                  objects)
                    plan.absorb(positions, result, duration, recorder, store=not changed)
            except BaseException as exc:
                self._failed(plan, exc)
                raise
            finally:
                plan.release()
            return self._finished(plan)
        finally:
            if chosen_token is not None:
                _remote.chosen.reset(chosen_token)
            _conditions.resume(token)

    def _chunk_changed(self, plan: _Plan, positions: list[int], args: tuple[Any, ...], kwargs: dict[str, Any],
                       bound: _memo._Bound | None, recorder: _conditions.Recorder,
                       drawn: dict[str, Any] | None, objects: _memo._Reads | None) -> bool:
        """Return True (saying so once) when a chunk's body changed what a hit could not change again, as
        ``@memo`` does for a call: a random generator it reaches through its arguments or globals (``drawn``:
        their states before), an item or another argument in place, a global it reads in place, a global
        bound anew, the environment or the current folder; or when code or a value it reads was bound anew while
        it ran. Such a chunk's results are returned, not stored."""
        call = plan.call
        if drawn is not None and _random_state.object_states(call.generators) != drawn:
            names = self._generator_names(call.generators.values(), args, kwargs)
            _config.warn_once(f"chunk-drew:{self._qualified}",
                              f"{self._name}: the results of this chunk are not cached: it draws from {names}, "
                              "so an item's result depends on which items share its chunk, and a hit would leave "
                              "the generator where it was; pass a generator seeded per item instead.", MemoWarning)
            return True
        if call.generators:  # a generator argument drew nothing: its other arguments are still compared
            call = dataclasses.replace(call, generators={})
        return (self._changed_arguments(call, args, kwargs, recorder.fills)
                or self._changed_items(plan, positions, call)
                or (bool(call.changeable) and self._changed_globals(call.changeable, recorder.fills, call.caches))
                or self._rebound(bound)
                or self._changed_process(call, recorder) or self._rebound_meanwhile(call, objects)
                or self._unknown_handle(call, recorder))

    def _generator_names(self, generators: Iterable[Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        """Name the generators a chunk drew from, in words: the globals or arguments that hold them."""
        ids = {id(g) for g in generators}
        names = [repr(name) for name, value in getattr(self._fn, "__globals__", {}).items() if id(value) in ids]
        try:
            bound = self._binder.signature.bind(*args, **kwargs).arguments
        except TypeError:
            bound = {}
        names += [f"argument {name!r}" for name, value in bound.items() if id(value) in ids]
        return ", ".join(names) or "a random generator it reaches through its arguments or globals"

    def _changed_items(self, plan: _Plan, positions: list[int], call: Call) -> bool:
        """Return True, warning once, when the body changed one of these items in place (a document given a field)."""
        items = plan.items()
        for position in positions:
            item = items[position]
            if type(item) in IMMUTABLE_LEAVES:
                continue
            try:
                digest = plan.contents.get(position) or plan.digests[position]
                # A pandas object in it may hold cache entries the run filled: those alone are no change.
                same = content_hash(item, "item") == digest or (
                    bool(call.caches) and content_hash(item, "item", caches=call.caches) == digest)
            except Exception:  # it hashed before the call: unhashable now is a change too
                same = False
            if not same:
                _config.warn_once(f"changed-item:{self._qualified}",
                                  f"{self._name} changed item {position} of '{self._argument}' in place (it is not "
                                  "what it was before the call), which a hit could not do again: these results are "
                                  "not cached, so the items are computed on every call that does so. Change a copy "
                                  "in the body, or return what it changes.", MemoWarning)
                return True
        return False

    def _finished(self, plan: _Plan) -> Any:
        """Return the call's results; remember what it did, and say so at ``verbose=1``."""
        value = plan.finish()
        run = plan.report()
        self._last_run, self._ran_off = run, False
        if _config.call_verbosity(self._options.verbose):
            items, computed = run.items, run.computed
            served = len(items) - len(computed)
            given = "" if run.given == len(items) else f" distinct ({run.given} given)"
            text = f"{served} of {len(items)}{given} from cache"
            if computed:
                text += f", {len(computed)} computed in {_config.human_seconds(run.seconds)}"
            else:
                text += f", saved {_config.human_seconds(run.saved)}"
            _config.announce(f"{self._name}: {text}")
        return value

    def refresh(self, *args: Any, **kwargs: Any) -> Any:
        """Recompute these items, overwrite their stored results and return them all.

        Like a call inside ``memo.refreshing()``, except that ``explain_last`` still reports the last real call.
        """
        if self._is_async:
            return self._arefresh(args, kwargs)
        last = self._last_run, self._ran_off
        token = _memo._refreshing.set(True)
        try:
            return self(*args, **kwargs)
        finally:
            _memo._refreshing.reset(token)
            self._last_run, self._ran_off = last

    async def _arefresh(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        last = self._last_run, self._ran_off
        token = _memo._refreshing.set(True)
        try:
            return await self._acall_batch(args, kwargs)
        finally:
            _memo._refreshing.reset(token)
            self._last_run, self._ran_off = last

    def _failed(self, plan: _Plan, exc: BaseException) -> None:
        """Remember a call that raised: explain_last reports it, not the call before."""
        self._ran_off = False
        self._last_run = plan.report(_config.describe_error(exc))

    def _disabled_now(self) -> bool:
        from ._memo import _disabled

        return _disabled.get()

    def _plan(self, args: tuple[Any, ...], kwargs: dict[str, Any], outer: _conditions.Recorders = ()) -> _Plan:
        from ._memo import _refreshing

        batch, call, digests, contents = self._split(args, kwargs)
        plan = _Plan(self, self._store(), args, kwargs, batch, call, digests, _refreshing.get(), outer)
        plan.contents = contents
        return plan

    def _present(self, store: Store, key: str, decoded: dict[str, ResultType]) -> bool:
        """Return whether an item would be served, without loading it or counting a hit."""
        try:
            record = servable(store, key, self._options.ttl)
        except Exception:
            return False
        return record is not None and _containers.stored_type(record.header.meta_raw, decoded) is not None

    @_memo._own_work
    def explain(self, *args: Any, **kwargs: Any) -> Explanation:
        """Report how many items are cached, and why the first missing one is not."""
        _, call, digests = self._split_call(args, kwargs)
        store = self._store()
        decoded: dict[str, ResultType] = {}
        items = list(dict.fromkeys(digests))
        missing = [d for d in items if not self._present(store, self._item_key(call, d), decoded)]
        notes = clock_notes(call.deps)  # where the code reads the clock, as the warning says explain() lists
        if not missing:
            return Explanation(self.qualified_name, True, f"{len(items)} of {len(items)} items cached", notes,
                               sorted(call.deps.skipped))
        reasons, unkeyed = self._why_missing(call, missing[0], as_miss=False)
        return Explanation(self.qualified_name, False,
                           f"{len(missing)} of {len(items)} distinct items are not cached; the first:",
                           reasons + [note for note in notes if note not in reasons], unkeyed)

    def _item_call(self, call: Call, digest: bytes) -> Call:
        """Return one item's call: its key, and the batch argument's digest among the arguments."""
        return Call(self._item_key(call, digest), {**call.arguments, self._argument: digest},
                    call.code, call.own, call.deps, call.method, extras=call.extras)

    def _why_missing(self, call: Call, digest: bytes, as_miss: bool,
                     run: Iterable[bytes] = ()) -> tuple[list[str], list[str]]:
        """Say why an item is not (or was not) cached: new to this code and arguments, or what changed.

        ``run``: the items computed by the same call, whose entries did not exist before it.
        """
        unused = not_used(self._store())
        if unused is not None:
            return [unused], sorted(call.deps.skipped)
        item_call = self._item_call(call, digest)
        if not as_miss:
            before = before_compute(self, item_call)  # it has an entry: expired, or computed from other inputs
            if before is not None:
                return [_as_reason(before)], before.unkeyed
        exclude = frozenset(self._item_key(call, d) for d in run)
        store = self._store()
        rows = {stored_as(store, key) for key in (item_call.key, *exclude)}
        others = {name: digest.hex() for name, digest in call.arguments.items()}
        siblings = any(meta.get("code") == call.code.hex() and meta.get("version") == self._version.hex()
                       and {n: d for n, d in meta.get("args", {}).items() if n != self._argument} == others
                       and meta.get("extras", {}) == call.extras  # else what the call ran under changed
                       for record in self.entries() if record.key not in rows
                       for meta in [record.header.meta()])
        detail = explain_call(self, item_call, as_miss=as_miss, exclude=exclude)
        if siblings:
            return [f"this item of '{self._argument}' was never computed with this code and these other "
                    "arguments (other items were)"], detail.unkeyed
        if detail.summary.startswith(("nothing is cached", FIRST_RUN)):
            return ["nothing was cached for this function before: its first run"], detail.unkeyed
        reasons = [r for r in detail.reasons if f"'{self._argument}'" not in r] or [detail.summary]
        return reasons, detail.unkeyed

    @_memo._own_work
    def explain_last(self) -> Explanation | None:
        """Report on the last real call in this session: how many items came from the cache, and why not the rest."""
        if self._ran_off:
            return caching_off(self.qualified_name)
        run = self._last_run
        if run is None:
            return None
        total, computed = len(run.items), len(run.computed)
        if run.error is not None:
            return Explanation(self.qualified_name, False, f"the last call raised {run.error}; {computed} of its "
                               f"{run.counted()} were computed and stored before that")
        served = f"{total - computed} of {run.counted()} from the cache"
        if not computed:
            return Explanation(self.qualified_name, True, f"{total} of {run.counted()} cached (the last call; "
                               f"saved {_config.human_seconds(run.saved)})")
        if run.before is not None:
            reasons, unkeyed = [_as_reason(run.before)], run.before.unkeyed
        else:
            reasons, unkeyed = self._why_missing(run.call, run.computed[0], as_miss=True, run=run.computed)
        return Explanation(self.qualified_name, False, f"the last call: {served}, {computed} computed in "
                           f"{_config.human_seconds(run.seconds)}. Why the first was computed:", reasons, unkeyed)

    @_memo._own_work
    def is_cached(self, *args: Any, **kwargs: Any) -> bool:
        """Return True when every item of this call is cached."""
        return bool(self.explain(*args, **kwargs).hit)

    @_memo._own_work
    def invalidate(self, *args: Any, **kwargs: Any) -> bool:
        """Delete the cached results of these items (in the remote tier too); return True if any existed."""
        _, call, digests = self._split_call(args, kwargs)
        store = self._store()
        return any([store.delete(self._item_key(call, d), everywhere=True) for d in dict.fromkeys(digests)])


_TYPE_MARK = f'"{_containers.TYPE_KEY}":'.encode()


class _Types:
    """The result types of the records one call reads, each distinct description decoded once.

    Items of one call share their description: a record whose metadata names it once is known
    by the bytes from that name to the end (its *tail*), which hold the whole description. Another
    record that ends with the same tail has the same description, whatever it holds before: in
    JSON the brackets the tail closes put its name at the same depth (the top level, where
    ``json.dumps`` writes each name once), and no string can hold the name with its quotes.
    """

    def __init__(self, decoded: dict[str, ResultType]) -> None:
        self.decoded = decoded
        self.by_tail: dict[bytes, ResultType | None] = {}
        self.last: tuple[bytes, ResultType | None] = (b"", None)  # the tail last looked up, and its type

    def of(self, meta_raw: bytes | memoryview) -> ResultType | None:
        raw = bytes(meta_raw)
        tail, known = self.last
        if tail and raw.endswith(tail):  # the commonest case: the previous record's description again
            return known
        start = raw.find(_TYPE_MARK)
        if start < 0 or raw.find(_TYPE_MARK, start + 1) >= 0:
            return _containers.stored_type(raw, self.decoded)
        tail = raw[start:]
        if tail in self.by_tail:
            known = self.by_tail[tail]
        else:
            known = _containers.stored_type(raw, self.decoded)
            if len(self.by_tail) < _TAILS_KEPT:
                self.by_tail[tail] = known
        self.last = (tail, known)
        return known


def _as_reason(report: Explanation) -> str:
    """Return an item's report as one reason of the batch's: its summary and its own reasons on one line."""
    return report.summary.rstrip(":") + (": " + "; ".join(report.reasons) if report.reasons else "")


def _tqdm_class() -> Any:
    """tqdm's widget bar where ipywidgets is installed (in Jupyter), else its text bar.

    Without ipywidgets, tqdm.auto would warn "IProgress not found" and fall back to text anyway.
    """
    try:
        widgets = importlib.util.find_spec("ipywidgets") is not None
    except (ImportError, ValueError):
        widgets = False
    if widgets:
        from tqdm.auto import tqdm
    else:
        from tqdm.std import tqdm
    return tqdm


class _Unassembled(Exception):
    """A call's parts, some read from the cache, could not be put together into its result (the cause says why)."""


class _Plan:
    """One batch call: which items are cached, which to compute, and the results so far."""

    def __init__(self, fn: BatchFunction, store: Store, args: tuple[Any, ...], kwargs: dict[str, Any],
                 batch: Any, call: Call, digests: list[bytes], refresh: bool,
                 outer: _conditions.Recorders = ()) -> None:
        self.fn, self.store, self.call, self.digests = fn, store, call, digests
        # Position -> the item's content digest, where its digest also holds what it shares with other arguments.
        self.contents: dict[int, bytes] = {}
        self.outer = outer
        self.kind = _containers.kind(batch)
        self.batch = batch
        self._items: list[Any] | None = None
        self.bound = fn._binder.signature.bind(*args, **kwargs)
        self.saved_before = fn.saved_seconds  # what the items served by this call save is the difference
        self.results: dict[bytes, Any] = {}  # each distinct item's result so far
        self.types: dict[bytes, ResultType] = {}  # and its result type
        self.result_kind: str | None = None
        # Each distinct item's first position, in the order items first appear: without duplicates, the
        # common case, each item's only position.
        self.first_position = dict(zip(digests, range(len(digests))))
        if len(self.first_position) != len(digests):
            self.first_position = {}
            for position, digest in enumerate(digests):
                self.first_position.setdefault(digest, position)
        keys = fn._item_keys(call, self.first_position)
        self.keys = dict(zip(self.first_position.values(), keys))
        if not refresh:
            found, types, missed = fn._lookup_many(store, keys, {}, outer)
            if not missed:  # all served: a cell run again
                self.results = dict(zip(self.first_position, found))
                self.types = dict(zip(self.first_position, cast("list[ResultType]", types)))  # none is None
            else:
                for digest, value, rtype in zip(self.first_position, found, types):
                    if rtype is not None:
                        self.results[digest], self.types[digest] = value, rtype
        self.missing = ([] if len(self.results) == len(self.first_position) else
                        [p for d, p in self.first_position.items() if d not in self.results])
        self._refuse_recursion()
        fn.misses += len(self.missing)
        # Asked before the run overwrites it: the first missing item's entry, if it had one, and why not served.
        self.before = before_compute(fn, fn._item_call(call, digests[self.missing[0]]),
                                     "memo.refreshing()" if refresh else None) if self.missing else None
        self.computed: list[int] = []  # positions this call computed itself
        self.seconds = 0.0
        self.refresh = refresh
        self.delay = 0.001
        self.held: list[str] = []

    def _refuse_recursion(self) -> None:
        """Raise RecursiveCall when a missing item is being computed by this very call chain (a body that
        needs its own item): its lease is ours, renewed by our own thread, so waiting for it would never end."""
        for position in self.missing:
            if is_computing(self.keys[position]):
                name, argument = self.fn._name, self.fn._argument
                raise RecursiveCall(f"{name} needs item {position} of '{argument}' while computing that very "
                                    "item: its result would depend on itself, so it can never be computed. Leave "
                                    f"the item out of the inner call, or call {name}.uncached(...) there.")

    def computing_items(self, positions: list[int]) -> computing:
        """Return the context in which the body computes the items at ``positions``."""
        return computing(*[self.keys[p] for p in positions])

    def chunks(self) -> Iterator[list[int]]:
        """Yield the next items to compute, at most ``batch_size``, each under this process's lease.

        Items another process is computing are left for later: once ours are done, they are read
        when stored, or taken over when their lease lapses. An empty list means: wait ``delay``.
        """
        size = self.fn._batch_size
        pending = list(self.missing)
        watches: dict[int, Watch] = {}
        bar = self._progress_bar(len(pending)) if len(pending) > size else None
        try:
            while pending:
                claimed, pending = self._claim(pending, size, watches)
                if claimed:
                    self.delay = 0.001
                    yield claimed
                    self.release()
                    if bar is not None:
                        bar.update(len(claimed))
                    continue
                done = self._collect(pending)
                pending = [p for p in pending if p not in done]
                if bar is not None and done:
                    bar.update(len(done))
                if pending:
                    yield []
                    self.delay = min(self.delay * 2, LOCK_POLL_MAX)
        finally:
            if bar is not None:
                bar.close()

    def _claim(self, pending: list[int], size: int, watches: dict[int, Watch]) -> tuple[list[int], list[int]]:
        """Take leases on up to ``size`` pending items; return (claimed, still pending)."""
        claimed: list[int] = []
        rest: list[int] = []
        for i in range(0, len(pending), size):
            part = pending[i:i + size]
            if len(claimed) >= size:
                rest.extend(part)
                continue
            wanted = part[:size - len(claimed)]
            try:
                taken = self.store.try_leases([self.keys[p] for p in wanted],
                                              [watches.setdefault(p, Watch()) for p in wanted])
            except Exception:
                taken = [True] * len(wanted)  # no working storage: compute without coordination
            # Held at once, in one step: what the caller's ``finally`` gives back, however the call ends.
            self.held.extend([self.keys[p] for p, got in zip(wanted, taken) if got])
            for position, got in zip(wanted, taken):
                (claimed if got else rest).append(position)
            rest.extend(part[len(wanted):])
        if claimed and not self.refresh:
            # Another process may have stored some of them before we took their leases.
            done = self._collect(claimed)
            if done:
                stored = {self.keys[p] for p in done}
                self.store.release_leases(list(stored))
                self.held = [k for k in self.held if k not in stored]
                claimed = [p for p in claimed if p not in done]
        return claimed, rest

    def _collect(self, positions: list[int]) -> set[int]:
        """Read the items among ``positions`` that are stored now; return their positions."""
        found, types, _ = self.fn._lookup_many(self.store, [self.keys[p] for p in positions], {}, self.outer)
        done = set()
        for position, value, rtype in zip(positions, found, types):
            if rtype is not None:
                digest = self.digests[position]
                self.results[digest], self.types[digest] = value, rtype
                done.add(position)
                self.fn.misses -= 1
        return done

    def release(self) -> None:
        """Give back the leases of the items computed (or abandoned) so far."""
        if not self.held:
            return
        keys, self.held = self.held, []
        self.fn._release(self.store, keys)

    def _progress_bar(self, total: int) -> Any:
        if not self.fn._progress:
            return None
        try:
            tqdm = _tqdm_class()
        except ImportError:
            return None
        return tqdm(total=total, desc=f"{self.fn._name}: computing {total} new items", unit="item")

    def arguments(self, positions: list[int]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        arguments = dict(self.bound.arguments)
        arguments[self.fn._argument] = _containers.subset(self.batch, self.kind, positions)
        bound = inspect.BoundArguments(self.bound.signature, arguments)  # type: ignore[arg-type]
        return bound.args, bound.kwargs

    def items(self) -> list[Any]:
        """Return the batch's items, in order (listed once)."""
        if self._items is None:
            self._items = list(_containers.items(self.batch, self.kind))
        return self._items

    def absorb(self, positions: list[int], result: Any, duration: float,
               recorder: _conditions.Recorder | None = None, store: bool = True) -> None:
        kind = _result_kind(result)
        length = _length(result) if kind else None
        if kind is None or length != len(positions):
            raise BatchError(_misfit(self.fn._name, result, length, len(positions)))
        if self.result_kind is None:
            self.result_kind = kind
        self.computed.extend(positions)
        self.seconds += duration
        rtype = _containers.describe(result, kind)
        parts = _containers.split(result, kind)
        share = duration / max(len(parts), 1)
        records = []
        for position, part in zip(positions, parts):
            digest = self.digests[position]
            self.results[digest], self.types[digest] = part, rtype
            records.append((position, part))
        if store:
            self._store_many(records, rtype, share, recorder)

    def _item_conditions(self, recorder: _conditions.Recorder | None) -> dict[str, Any] | None:
        """Return what a chunk read, for each of its items; None when its items cannot be stored."""
        if recorder is None:
            return {}
        fn = self.fn
        try:
            found, _ = run_conditions(self.store, recorder)
            if "states" in found:
                raise _conditions.NotRecordable(
                    f"it draws from {_random_state.describe_generators(sorted(found['states']))}, so an item's result "
                    "depends on which items share its chunk; pass a generator seeded per item instead")
        except _conditions.NotRecordable as exc:
            _config.warn_once(f"unrecordable:{fn._qualified}:{exc}", f"{fn._name}: the results of this chunk are "
                              f"not cached: {exc}.", MemoWarning)
            return None
        _memo.warn_random_result(fn._name, fn._qualified, recorder)  # each item's result is random, as @memo's
        if found and self.outer:
            _conditions.inherit(found, self.outer)
        return found

    def _store_many(self, records: list[tuple[int, Any]], rtype: ResultType, duration: float,
                    recorder: _conditions.Recorder | None = None) -> None:
        """Store each computed item's result (``records``: its position and result) in one commit."""
        fn, call = self.fn, self.call
        created = time.time()
        conditions = self._item_conditions(recorder)
        if conditions is None:
            return
        # Pickled before the write lock is taken: other kernels wait on it only for the writes. An item whose
        # result does not pickle is left out alone: the others are stored, and the directory is not to blame.
        items = []
        for position, part in records:
            try:
                payload = dumps(part)
            except Exception as exc:
                _config.warn_once(f"pickle:{fn._qualified}", f"{fn._name}: the result of item {position} of "
                                  f"'{fn._argument}' cannot be pickled ({type(exc).__name__}: {exc}); it is returned "
                                  "but not cached, so such items are computed on every call (the others are "
                                  "stored). Return a picklable value for it.", StorageWarning)
                continue
            digest = self.digests[position]
            item_call = Call(fn._item_key(call, digest), {**call.arguments, fn._argument: digest},
                             call.code, call.own, call.deps, call.method, extras=call.extras)
            meta = fn._meta(item_call, duration, created, payload.nbytes)
            meta["kind"] = "batch"
            meta.update(_containers.type_meta(rtype.kind, rtype.description))
            if conditions:
                meta["pre"] = conditions
            items.append((item_call.key, payload, meta))
        if not items:
            return
        try:
            with _remote.replacing_if(self.refresh), self.store.transaction():  # one commit for the whole chunk
                for key, payload, meta in items:
                    if not save(self.store, key, payload, meta, fn._options.ttl, duration, fn._fid):
                        return
        except Exception as exc:
            storage_trouble(self.store, exc)

    def report(self, error: str | None = None) -> _Run:
        """Return what this call did so far, for ``explain_last`` and ``verbose``; ``error``: what it raised."""
        return _Run(self.call, list(self.first_position), [self.digests[p] for p in self.computed], self.seconds,
                    self.fn.saved_seconds - self.saved_before, self.before, error, len(self.digests))

    def finish(self) -> Any:
        parts = list(map(self.results.__getitem__, self.digests))
        if len(self.first_position) != len(self.digests):
            self._own_objects(parts)
        types = list(map(self.types.__getitem__, self.digests))
        if self.result_kind is not None:
            # The container this call's function returned wins over one stored by an earlier call.
            types = [t if t.kind == self.result_kind else ResultType(self.result_kind, key="values") for t in types]
        kind = types[0].kind if types else "list"
        index = self.batch.index if self.kind in ("series", "frame") and kind in ("series", "frame") else None
        try:
            value = _containers.assemble(parts, types, index)
            if len(value) != len(parts):  # a frame's part of no row or of several: concatenated, not refused
                raise ValueError(f"{len(parts)} items made a result of {len(value)}")
            return value
        except Exception as exc:
            if self.refresh or len(self.computed) == len(self.first_position):
                raise  # every part is this call's own: what the function returned does not go together
            raise _Unassembled from exc


    def _own_objects(self, parts: list[Any]) -> None:
        """Give each repeated item after its first position an object of its own, as the plain function's
        run over every position would: each distinct item was computed (or read) once, so they share one."""
        payloads: dict[bytes, Payload | None] = {}
        first = self.first_position
        for position, digest in enumerate(self.digests):
            if first[digest] == position or type(parts[position]) in IMMUTABLE_LEAVES:
                continue
            if digest not in payloads:
                try:
                    payloads[digest] = dumps(parts[position])
                except Exception:
                    payloads[digest] = None  # it cannot be pickled (so it was not stored): the one object there is
            payload = payloads[digest]
            if payload is not None:
                parts[position] = copy_value(payload)


def _result_kind(result: Any) -> str | None:
    """Return the container kind of a batch function's result, or None when it is no container we split."""
    try:
        return _containers.kind(result)
    except BatchError:
        return None


def _misfit(name: str, result: Any, length: int | None, count: int) -> str:
    """Return the message for a batch result that does not hold one result per item."""
    what = type(result).__qualname__
    what = f"{'an' if what[:1].lower() in 'aeiou' else 'a'} {what}"
    if length is not None:
        what += f" of {length} result{'' if length == 1 else 's'}"
    return (f"{name} returned {what} for {count} items: a batch function must return one result per item, in "
            "order, in a list, tuple, numpy array, pandas Series or DataFrame; nothing from this chunk was stored")


def _length(result: Any) -> int | None:
    try:
        return len(result)
    except TypeError:  # a 0-dimensional array
        return None


NOT_FOR_BATCH = frozenset({"skip_if"})  # options of @memo a batch function does not take: every item is stored


def batch(argument: Any = None, /, *, batch_size: int = 256, progress: bool = True, **options: Any) -> Any:
    """Decorator factory behind ``memo.batch``."""
    if callable(argument):
        raise OptionError(f"@memo.batch was used without the name of the parameter that holds the items: "
                          f"{_batch_usage(argument)}")
    accepted = [*keyword_names(batch), *(n for n in keyword_names(_memo.make_options) if n not in NOT_FOR_BATCH)]
    check_options("memo.batch()", options, accepted)
    if argument is not None and not isinstance(argument, str):
        raise OptionError(f"memo.batch() takes the name of the parameter that holds the items, not {argument!r}: "
                          'write @memo.batch("texts") for embed(texts, model)')
    resolved = _memo.make_options(**options)

    def decorate(fn: Callable[..., Any]) -> BatchFunction:
        if argument is None:
            raise OptionError(f"@memo.batch() needs the name of the parameter that holds the items: "
                              f"{_batch_usage(fn)}")
        return BatchFunction(fn, resolved, argument, batch_size, progress)

    return decorate


def _batch_usage(fn: Callable[..., Any]) -> str:
    """Return how to write ``@memo.batch`` for ``fn``, with its first parameter as the example."""
    try:
        names = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        names = []
    example = next((n for n in names if n not in ("self", "cls")), "texts")
    call = f"{getattr(fn, '__name__', 'embed')}({', '.join(names)})" if names else "embed(texts, model)"
    return f'use @memo.batch("<name of the list parameter>"), e.g. @memo.batch("{example}") for {call}'
