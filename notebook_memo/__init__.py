"""notebook_memo: run expensive notebook work once, get it back from disk in milliseconds.

>>> from notebook_memo import memo
>>> @memo
... def embed(texts: list[str], model: str = "small") -> list[int]:
...     return [len(t) for t in texts]

Results persist across kernel restarts under keys made of the arguments' content and
the code of the function and everything it depends on. See the README for the cell
magic (``%load_ext notebook_memo``), methods, batches and the command line.
"""

from __future__ import annotations

from typing import Any

from . import _config, _top_level
from ._api import Memoized, memo
from ._errors import (
    BatchError,
    ConfigurationError,
    MemoError,
    MemoWarning,
    OptionError,
    RecursiveCall,
    StaleEntriesWarning,
    StorageWarning,
    UnhashableArgument,
)
from ._memo import CacheInfo
from .hashing import register_hasher

__all__ = [
    "BatchError",
    "CacheInfo",
    "ConfigurationError",
    "MemoError",
    "MemoWarning",
    "Memoized",
    "OptionError",
    "RecursiveCall",
    "StaleEntriesWarning",
    "StorageWarning",
    "UnhashableArgument",
    "configure",
    "memo",
    "register_hasher",
]

__version__ = "0.1.0"

# configure()'s "not given". Kept in a submodule: %reload_ext notebook_memo runs this file again, and a
# configure imported before that must still recognise its own defaults.
_UNSET: Any = _config.UNSET


def configure(
    *,
    cache_dir: str | None = _UNSET,
    secret: str | bytes | None = _UNSET,
    size_limit: int | str | None = _UNSET,
    track_versions: bool = _UNSET,
    verbose: bool | int = _UNSET,
    remote: str | bool | None = _UNSET,
    remote_read_only: bool | None = _UNSET,
) -> None:
    """Set process-wide defaults; a decorator's own arguments still win.

    :param cache_dir: default cache directory (else ``NOTEBOOK_MEMO_DIR``, else
        ``./.notebook_memo``).
    :param secret: sign stored values and refuse to unpickle unsigned or forged ones
        (else ``NOTEBOOK_MEMO_SECRET``). Set one whenever others can write the directory.
    :param size_limit: bytes or text like ``"5GB"`` per cache directory; least recently
        used entries are evicted past it (else ``NOTEBOOK_MEMO_SIZE_LIMIT``, else 20 GiB).
    :param track_versions: include installed packages' versions in keys (default True).
    :param verbose: ``True`` (the default) prints notices (stale entries, restored cells);
        ``False`` or ``0`` silences them, and the lines per call too. An ``int`` of 1 or more also
        prints one line per call, like joblib's ``verbose``: ``computed in 3.2 s`` on a miss,
        ``from cache, saved 3.2 s`` on a hit (else ``NOTEBOOK_MEMO_VERBOSE``).
    :param remote: a shared second tier (else ``NOTEBOOK_MEMO_REMOTE``): ``"s3://bucket/prefix"``
        (also ``gs://``, ``az://``; credentials and endpoint from the client's usual variables, such as
        ``AWS_ENDPOINT_URL``) or a shared directory ``"file:///mnt/team/cache"``. A local miss looks
        there and copies what it finds into the local directory; a computed result is published there.
        ``False`` turns it off whatever the environment says.
    :param remote_read_only: consume a team cache without writing to it (else
        ``NOTEBOOK_MEMO_REMOTE_READ_ONLY``).

    >>> import notebook_memo
    >>> notebook_memo.configure(size_limit="5GB")
    """
    s = _config.settings
    if cache_dir is not _UNSET:
        s.cache_dir = None if cache_dir is None else str(cache_dir)
    if secret is not _UNSET:
        if secret is not None and not secret:
            raise ConfigurationError("configure(secret=...) was given an empty secret: pass a non-empty secret "
                                     "shared by "
                                     "everyone who writes this cache, or None to store unsigned values")
        s.secret = secret.encode() if isinstance(secret, str) else secret
    if size_limit is not _UNSET:
        s.size_limit = None if size_limit is None else _config.parse_size(size_limit)
    if track_versions is not _UNSET:
        s.track_versions = bool(track_versions)
    if remote is not _UNSET:
        if remote is True or not (remote is None or remote is False or isinstance(remote, str)):
            raise ConfigurationError(f"configure(remote=...) takes a URL such as 's3://bucket/prefix', False or "
                                     f"None, not {remote!r}")
        s.remote = "" if remote is False else remote
    if remote_read_only is not _UNSET:
        s.remote_read_only = None if remote_read_only is None else bool(remote_read_only)
    if verbose is not _UNSET:
        if isinstance(verbose, bool):
            # False silences everything, as 0 does, whatever NOTEBOOK_MEMO_VERBOSE says; True leaves the lines to it.
            s.verbose, s.calls = verbose, None if verbose else 0
        elif isinstance(verbose, int):
            s.verbose, s.calls = verbose > 0, verbose
        else:
            raise ConfigurationError(f"configure(verbose=...) takes True, False or a level such as 1, not {verbose!r}")


def load_ipython_extension(ipython: Any) -> None:
    """Register the ``%%memo`` and ``%memo`` magics (``%load_ext notebook_memo``)."""
    from ._magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove what ``load_ipython_extension`` registered."""
    from ._magics import unload_ipython_extension as unload

    unload(ipython)


# In a notebook, its lru_cache loaders are watched from the import on (see _top_level); a script is left as it is.
_top_level.start()
