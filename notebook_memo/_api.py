"""The ``memo`` decorator object: ``@memo``, ``@memo(...)`` and its helpers."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any, NoReturn, ParamSpec, Protocol, TypeVar, overload

from . import _memo, _methods
from ._conditions import depends_on
from ._config import TTLLike
from ._memo import CacheInfo, clear_stale_all, disabled, keep_alive, refreshing, wrap
from ._options import check_options, checked, keyword_names

__all__ = ()

P = ParamSpec("P")
R = TypeVar("R")
PathT = TypeVar("PathT", bound="str | os.PathLike[str]")


class Memoized(Protocol[P, R]):
    """What ``@memo`` returns: the function, same signature, plus cache controls."""

    __wrapped__: Callable[P, R]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R: ...
    def refresh(self, *args: P.args, **kwargs: P.kwargs) -> R: ...
    def uncached(self, *args: P.args, **kwargs: P.kwargs) -> R: ...
    def is_cached(self, *args: P.args, **kwargs: P.kwargs) -> bool: ...
    def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool: ...
    def explain(self, *args: P.args, **kwargs: P.kwargs) -> Any: ...
    def explain_last(self) -> Any: ...
    def clear(self) -> int: ...
    def cache_clear(self) -> int: ...
    def clear_stale(self) -> int: ...
    def cache_info(self) -> CacheInfo: ...


_IN_MEMORY = ("it keeps results in memory on each object, for as long as the object lives; "
              "@memo stores them on disk and takes the other options")


class _Memo:
    """Persist a function's results on disk, keyed by argument content and code.

    >>> from notebook_memo import memo
    >>> @memo
    ... def square(x: int) -> int:
    ...     return x * x
    >>> @memo(ttl="6h", ignore=["verbose"])
    ... def fetch(url: str, verbose: bool = False) -> str:
    ...     return url.upper()

    :param ttl: seconds, a ``timedelta`` or text such as ``"90s"``, ``"30 min"``, ``"6 hours"``, ``"1h30m"``;
        ``None`` (the default) keeps results until they are cleared or evicted.
    :param ignore: names of arguments left out of the key (verbosity, progress bars).
    :param version: any value mixed into the key; change it to drop old results by hand.
    :param cache_dir: where results live; else ``configure(cache_dir=...)``, else the
        ``NOTEBOOK_MEMO_DIR`` environment variable, else ``./.notebook_memo``.
    :param skip_if: ``skip_if(result)`` true means return the result but do not store it.
    :param mmap: return stored arrays as read-only memory maps, and tensors as copy-on-write ones (fast hits
        on huge arrays).
    :param track_versions: make installed packages' versions part of the key (default on).
    :param files: paths, folders or glob patterns (``"data/*.csv"``) the result depends on.
        Files the body opens through Python are found by themselves; declare those read by
        readers that bypass Python's ``open`` (pyarrow, h5py, C++ libraries).
    :param verbose: 1 prints a line per call (``computed in 3.2 s``, ``from cache, saved 3.2 s``),
        0 prints none; else ``configure(verbose=...)``, else ``NOTEBOOK_MEMO_VERBOSE``.
    :param remote: a shared second tier for this function (``"s3://bucket/prefix"``,
        ``"file:///mnt/team/cache"``), or ``False`` for none; else ``configure(remote=...)``, else
        ``NOTEBOOK_MEMO_REMOTE``.
    """

    @overload
    def __call__(self, fn: Callable[P, R], /) -> Memoized[P, R]: ...

    @overload
    def __call__(
        self, fn: None = None, /, *, ttl: TTLLike = None, ignore: Iterable[str] = (),
        version: Any = None, cache_dir: str | os.PathLike[str] | None = None,
        skip_if: Callable[[Any], bool] | None = None, mmap: bool = False,
        track_versions: bool | None = None,
        files: Iterable[str | os.PathLike[str]] | str | os.PathLike[str] = (),
        verbose: bool | int | None = None, remote: str | bool | None = None,
    ) -> Callable[[Callable[P, R]], Memoized[P, R]]: ...

    def __call__(self, fn: Any = None, /, **kwargs: Any) -> Any:
        check_options("memo()", kwargs, keyword_names(_memo.make_options))
        options = _memo.make_options(**kwargs)
        if fn is None:
            return lambda f: wrap(f, options)
        return wrap(fn, options)

    @staticmethod
    def disabled() -> AbstractContextManager[None]:
        """Inside the block, memoized functions run their body: no reads, no writes."""
        return disabled()

    @staticmethod
    def refreshing() -> AbstractContextManager[None]:
        """Inside the block, memoized calls recompute and overwrite their entries."""
        return refreshing()

    @staticmethod
    @checked("memo.per_instance()", _IN_MEMORY)
    def per_instance(fn: Callable[P, R] | None = None, /, *, ttl: TTLLike = None) -> Any:
        """Cache a method's results on each object, in memory; they die with the object.

        >>> class Report:
        ...     @memo.per_instance
        ...     def rows(self, year: int) -> list[int]:
        ...         return [year]
        """
        return _methods.per_instance(fn, ttl=ttl)

    @staticmethod
    @checked("memo.cached_property()", _IN_MEMORY)
    def cached_property(fn: Callable[..., R] | None = None, /, *, ttl: TTLLike = None) -> Any:
        """Like ``functools.cached_property``; ``async def`` properties are awaited once.

        ``del obj.name`` drops the value; ``memo.reset(obj)`` drops all of an object's caches.
        """
        return _methods.cached_property(fn, ttl=ttl)

    @overload
    @staticmethod
    def batch(argument: str, /, *, batch_size: int = 256, progress: bool = True, ttl: TTLLike = None,
              ignore: Iterable[str] = (), version: Any = None, cache_dir: str | os.PathLike[str] | None = None,
              mmap: bool = False, track_versions: bool | None = None,
              files: Iterable[str | os.PathLike[str]] | str | os.PathLike[str] = (),
              verbose: bool | int | None = None,
              ) -> Callable[[Callable[P, R]], Memoized[P, R]]: ...

    @overload
    @staticmethod
    def batch(argument: Callable[..., Any], /) -> NoReturn: ...  # @memo.batch without its argument: an error

    @staticmethod
    def batch(argument: Any = None, /, **options: Any) -> Any:
        """Cache a function over a sequence item by item: only new items are computed.

        >>> @memo.batch("texts", batch_size=256)
        ... def embed(texts: list[str], model: str = "small") -> list[int]:
        ...     return [len(t) for t in texts]        # one result per text, in order

        :param argument: the parameter holding the items (list, tuple, numpy array, pandas Series).
        :param batch_size: the most items passed to one call of the function.
        :param progress: show a tqdm progress bar when more than one chunk must be computed.

        The other options are those of ``@memo`` (``ttl``, ``ignore``, ``version``, ``cache_dir``, ...),
        except ``skip_if``: every item's result is stored.
        """
        from ._batch import batch

        return batch(argument, **options)

    @staticmethod
    def depends_on_file(path: PathT, /) -> PathT:
        """Declare, inside a memoized body or ``%%memo`` cell, that the result depends on ``path``.

        A file is checked by its content; a folder by every file under it and their names. Use
        it for readers that bypass Python's ``open``; returns ``path`` so it can wrap the argument.

        >>> import pyarrow.parquet as pq  # doctest: +SKIP
        >>> @memo
        ... def load(path):
        ...     return pq.read_table(memo.depends_on_file(path))
        """
        depends_on(path)
        return path

    @staticmethod
    def reset(obj: Any) -> None:
        """Drop every per-instance cache and cached property held by ``obj``."""
        _methods.reset(obj)

    @staticmethod
    def keep_alive() -> None:
        """Renew now the leases this process holds on keys it is computing.

        A background thread renews them every third of the lease time (``NOTEBOOK_MEMO_LEASE``,
        15 s by default). A body that holds the GIL longer than that (a long loop in an extension
        that never releases it) starves the thread; call this between its chunks so that other
        processes keep waiting instead of computing the same result.

        >>> memo.keep_alive()
        """
        keep_alive()

    @staticmethod
    def clear_stale() -> int:
        """Remove entries of older code for every memoized function in this process."""
        return clear_stale_all()


memo = _Memo()
