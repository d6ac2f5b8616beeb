"""``memo.batch``: cache a function over a sequence item by item; compute only the new items."""

from __future__ import annotations

import contextlib
import inspect
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from . import _config
from ._errors import BatchError
from ._explain import Explanation, explain_call
from ._hashing import combine, content_hash
from ._memo import _MISS, Call, MemoizedFunction, Options, save, storage_trouble
from ._serialize import dumps
from ._store import Store

__all__ = ()


class _Container:
    """How to take items out of an input and put results back together."""

    @staticmethod
    def kind(value: Any) -> str:
        np = sys.modules.get("numpy")
        pd = sys.modules.get("pandas")
        if pd is not None and isinstance(value, pd.DataFrame):
            return "frame"
        if pd is not None and isinstance(value, pd.Series):
            return "series"
        if np is not None and isinstance(value, np.ndarray):
            return "ndarray"
        if isinstance(value, tuple):
            return "tuple"
        if isinstance(value, list):
            return "list"
        raise BatchError(f"a batch argument must be a list, tuple, numpy array or pandas Series, "
                         f"not {type(value).__qualname__}")

    @staticmethod
    def items(value: Any, kind: str) -> list[Any]:
        if kind in ("series", "frame"):
            return [value.iloc[i] for i in range(len(value))]
        return list(value)

    @staticmethod
    def subset(value: Any, kind: str, positions: list[int]) -> Any:
        if kind in ("series", "frame"):
            return value.iloc[positions]
        if kind == "ndarray":
            return value[positions]
        picked = [value[i] for i in positions]
        return tuple(picked) if kind == "tuple" else picked

    @staticmethod
    def split(result: Any, kind: str) -> list[Any]:
        if kind == "frame":
            return [result.iloc[[i]] for i in range(len(result))]
        if kind == "series":
            return [result.iloc[i] for i in range(len(result))]
        return list(result)

    @staticmethod
    def assemble(parts: list[Any], kind: str, template: dict[str, Any], index: Any) -> Any:
        if kind == "list":
            return parts
        if kind == "tuple":
            return tuple(parts)
        if kind == "ndarray":
            np = sys.modules["numpy"]
            if not parts:
                return np.empty((0, *template.get("shape", ())), dtype=template.get("dtype"))
            return np.stack([np.asarray(p) for p in parts])
        pd = sys.modules["pandas"]
        if kind == "series":
            series = pd.Series(parts, name=template.get("name"), dtype=template.get("dtype"))
            if index is not None:
                series.index = index
            return series
        frame = pd.concat(parts) if parts else pd.DataFrame(columns=template.get("columns"))
        frame.index = index if index is not None else pd.RangeIndex(len(frame))
        return frame


def _template(result: Any, kind: str) -> dict[str, Any]:
    if kind == "ndarray":
        return {"dtype": result.dtype, "shape": result.shape[1:]}
    if kind == "series":
        return {"name": result.name, "dtype": result.dtype}
    if kind == "frame":
        return {"columns": list(result.columns)}
    return {}


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
            raise ValueError(f"memo.batch({argument!r}): {fn.__qualname__} has no parameter named {argument!r}; "
                             f"its parameters are {self._binder.names}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        self._argument = argument
        self._batch_size = batch_size
        self._progress = progress

    # -- keys ---------------------------------------------------------------------------------
    def _split_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Call, list[bytes]]:
        """Return the batch argument, a Call for the other arguments, and each item's digest."""
        bound = self._binder.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        batch = bound.arguments[self._argument]
        others = {n: content_hash(v, f"argument '{n}' of {self._name}")
                  for n, v in bound.arguments.items() if n != self._argument and n not in self._options.ignore}
        state = self.code_state()
        prefix = combine([b"nbmB", self._fid.encode(), state.code, state.deps_digest, self._version]
                         + [n.encode() + b"\0" + d for n, d in others.items()])
        call = Call(prefix.hex(), others, state.code, state.own, state.deps, state.method)
        self.last_call = call
        kind = _Container.kind(batch)
        digests = [content_hash(item, f"item {i} of '{self._argument}'")
                   for i, item in enumerate(_Container.items(batch, kind))]
        return batch, call, digests

    @staticmethod
    def _item_key(call: Call, digest: bytes) -> str:
        return combine([bytes.fromhex(call.key), digest]).hex()

    # -- calling ------------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._is_async:
            return self._acall_batch(args, kwargs)
        if _config.disabled_by_env() or self._disabled_now():
            return self._fn(*args, **kwargs)
        plan = self._plan(args, kwargs)
        for positions in plan.chunks():
            sub_args, sub_kwargs = plan.arguments(positions)
            start = time.perf_counter()
            result = self._fn(*sub_args, **sub_kwargs)
            plan.absorb(positions, result, time.perf_counter() - start)
        return plan.finish()

    async def _acall_batch(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if _config.disabled_by_env() or self._disabled_now():
            return await self._fn(*args, **kwargs)
        plan = self._plan(args, kwargs)
        for positions in plan.chunks():
            sub_args, sub_kwargs = plan.arguments(positions)
            start = time.perf_counter()
            result = await self._fn(*sub_args, **sub_kwargs)
            plan.absorb(positions, result, time.perf_counter() - start)
        return plan.finish()

    def _disabled_now(self) -> bool:
        from ._memo import _disabled

        return _disabled.get()

    def _plan(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Plan:
        from ._memo import _refreshing

        batch, call, digests = self._split_call(args, kwargs)
        return _Plan(self, self._store(), args, kwargs, batch, call, digests, _refreshing.get())

    def explain(self, *args: Any, **kwargs: Any) -> Explanation:
        """Report how many items are cached, and why the first missing one is not."""
        _, call, digests = self._split_call(args, kwargs)
        store = self._store()
        missing = [d for d in dict.fromkeys(digests) if self._read(store, self._item_key(call, d)) is _MISS]
        total = len(set(digests))
        if not missing:
            return Explanation(self.qualified_name, True, f"all {total} distinct items are cached")
        item_call = Call(self._item_key(call, missing[0]), {**call.arguments, self._argument: missing[0]},
                         call.code, call.own, call.deps, call.method)
        detail = explain_call(self, item_call)
        return Explanation(self.qualified_name, False,
                           f"{len(missing)} of {total} distinct items are not cached; the first: {detail.summary}",
                           detail.reasons, detail.unkeyed)

    def is_cached(self, *args: Any, **kwargs: Any) -> bool:
        """Return True when every item of this call is cached."""
        return bool(self.explain(*args, **kwargs).hit)

    def invalidate(self, *args: Any, **kwargs: Any) -> bool:
        """Delete the cached results of these items; return True if any existed."""
        _, call, digests = self._split_call(args, kwargs)
        store = self._store()
        return any([store.delete(self._item_key(call, d)) for d in dict.fromkeys(digests)])


class _Plan:
    """One batch call: which items are cached, which to compute, and the results so far."""

    def __init__(self, fn: BatchFunction, store: Store, args: tuple[Any, ...], kwargs: dict[str, Any],
                 batch: Any, call: Call, digests: list[bytes], refresh: bool) -> None:
        self.fn, self.store, self.call, self.digests = fn, store, call, digests
        self.kind = _Container.kind(batch)
        self.batch = batch
        self.bound = fn._binder.signature.bind(*args, **kwargs)
        self.results: dict[bytes, Any] = {}
        self.template: dict[str, Any] | None = None
        self.result_kind: str | None = None
        self.first_position: dict[bytes, int] = {}
        for position, digest in enumerate(digests):
            self.first_position.setdefault(digest, position)
        if not refresh:
            for digest in self.first_position:
                value = fn._read(store, fn._item_key(call, digest))
                if value is not _MISS:
                    self.results[digest] = value
        self.missing = [p for d, p in self.first_position.items() if d not in self.results]
        fn.misses += len(self.missing)

    def chunks(self) -> Iterator[list[int]]:
        size = self.fn._batch_size
        positions = self.missing
        groups = [positions[i:i + size] for i in range(0, len(positions), size)]
        bar = self._progress_bar(len(positions)) if len(groups) > 1 else None
        try:
            for group in groups:
                yield group
                if bar is not None:
                    bar.update(len(group))
        finally:
            if bar is not None:
                bar.close()

    def _progress_bar(self, total: int) -> Any:
        if not self.fn._progress:
            return None
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return None
        return tqdm(total=total, desc=f"{self.fn._name}: computing {total} new items", unit="item")

    def arguments(self, positions: list[int]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        arguments = dict(self.bound.arguments)
        arguments[self.fn._argument] = _Container.subset(self.batch, self.kind, positions)
        bound = inspect.BoundArguments(self.bound.signature, arguments)  # type: ignore[arg-type]
        return bound.args, bound.kwargs

    def absorb(self, positions: list[int], result: Any, duration: float) -> None:
        kind = _Container.kind(result)
        try:
            length = len(result)
        except TypeError:
            length = -1
        if length != len(positions):
            raise BatchError(f"{self.fn._name} returned {length} results for {len(positions)} items: a batch "
                             "function must return one result per item, in order; nothing from this chunk "
                             "was stored")
        if self.result_kind is None:
            self.result_kind, self.template = kind, _template(result, kind)
        parts = _Container.split(result, kind)
        share = duration / max(len(parts), 1)
        records = []
        for position, part in zip(positions, parts):
            digest = self.digests[position]
            self.results[digest] = part
            records.append((digest, part))
        self._store_many(records, share)

    def _store_many(self, records: list[tuple[bytes, Any]], duration: float) -> None:
        fn, call = self.fn, self.call
        created = time.time()
        try:
            with self.store.writer.transact():  # one commit for the whole chunk
                for digest, part in records:
                    payload = dumps(part)
                    item_call = Call(fn._item_key(call, digest), {**call.arguments, fn._argument: digest},
                                     call.code, call.own, call.deps, call.method)
                    meta = fn._meta(item_call, duration, created, payload.nbytes)
                    meta["kind"] = "batch"
                    meta["container"] = self.result_kind
                    if not save(self.store, item_call.key, payload, meta, fn._options.ttl, duration, fn._fid):
                        return
        except Exception as exc:
            storage_trouble(self.store, exc)

    def finish(self) -> Any:
        parts = [self.results[d] for d in self.digests]
        kind = self.result_kind or self._cached_kind(parts)
        index = self.batch.index if self.kind in ("series", "frame") and kind in ("series", "frame") else None
        return _Container.assemble(parts, kind, self.template or self._cached_template(parts, kind), index)

    def _cached_kind(self, parts: list[Any]) -> str:
        """Every item came from the cache: recover the container from what was stored."""
        np = sys.modules.get("numpy")
        pd = sys.modules.get("pandas")
        with contextlib.suppress(Exception):
            record = self.store.get(self.fn._item_key(self.call, self.digests[0])) if self.digests else None
            if record is not None:
                return str(record.header.meta().get("container", "list"))
        if pd is not None and parts and isinstance(parts[0], pd.DataFrame):
            return "frame"
        if np is not None and parts and isinstance(parts[0], (np.ndarray, np.generic)):
            return "ndarray"
        return "list"

    @staticmethod
    def _cached_template(parts: list[Any], kind: str) -> dict[str, Any]:
        if kind == "ndarray" and parts:
            first = sys.modules["numpy"].asarray(parts[0])
            return {"dtype": first.dtype, "shape": first.shape}
        if kind == "series" and parts:
            return {"dtype": None, "name": None}
        return {}


def batch(argument: str, *, batch_size: int = 256, progress: bool = True, **options: Any) -> Any:
    """Decorator factory behind ``memo.batch``."""
    from ._memo import make_options

    resolved = make_options(**options)

    def decorate(fn: Callable[..., Any]) -> BatchFunction:
        return BatchFunction(fn, resolved, argument, batch_size, progress)

    return decorate

