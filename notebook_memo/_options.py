"""Option names: an unknown keyword given to a decorator is named, with the nearest valid one.

The valid names are read from the signature of the function that takes them, so an option added
there is accepted everywhere at once. Names that other caching libraries use (joblib, functools,
cachetools, diskcache) are pointed to ours, or answered with why there is none.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ParamSpec, TypeVar

from ._errors import OptionError

__all__ = ()

P = ParamSpec("P")
R = TypeVar("R")

# Other libraries' names for our options (joblib.Memory, diskcache's memoize, functools, cachetools).
ALIASES = {
    "location": "cache_dir", "directory": "cache_dir", "cachedir": "cache_dir", "cache_directory": "cache_dir",
    "dir": "cache_dir", "path": "cache_dir",
    "expire": "ttl", "expires": "ttl", "expiry": "ttl", "expire_after": "ttl", "timeout": "ttl", "max_age": "ttl",
    "ignore_args": "ignore", "exclude": "ignore", "ignored": "ignore",
    "mmap_mode": "mmap",
    "cache_validation_callback": "skip_if",
    "chunk_size": "batch_size", "chunksize": "batch_size",
    "show_progress": "progress", "progress_bar": "progress", "tqdm": "progress",
}
_SIZE_LIMIT = ("a cache has no size per function: each cache directory has one limit, past which the least "
               "recently used entries are evicted; set it with notebook_memo.configure(size_limit='5GB') or "
               "the NOTEBOOK_MEMO_SIZE_LIMIT environment variable")
# Names with no counterpart here, answered when the caller takes the option named first (a disk cache's).
EXPLAINED = {
    "maxsize": ("cache_dir", _SIZE_LIMIT),
    "max_size": ("cache_dir", _SIZE_LIMIT),
    "size_limit": ("cache_dir", _SIZE_LIMIT),
    "typed": ("cache_dir", "arguments are keyed by their type and content already: f(1) and f(1.0) are "
                           "different calls; leave it out"),
    "key": ("ignore", "the key is made of the arguments' content; leave arguments out of it with ignore=[...], "
                      "or give their class a __memo_key__(self) method"),
}


def keyword_names(fn: Callable[..., Any]) -> tuple[str, ...]:
    """Return the names ``fn`` takes as keywords, in signature order."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return tuple(p.name for p in inspect.signature(fn).parameters.values() if p.kind in kinds)


def check_options(caller: str, given: Iterable[str], accepted: Sequence[str], note: str = "") -> None:
    """Raise OptionError naming the first of ``given`` not in ``accepted``, and what to write instead.

    ``note`` is added when no accepted option comes near: it says what the caller is for.
    """
    for name in given:
        if name not in accepted:
            raise OptionError(f"{caller} got an unknown option {name!r}; {_advice(name, accepted, note)}")


def _advice(name: str, accepted: Sequence[str], note: str) -> str:
    target = ALIASES.get(name)
    if target in accepted:
        return f"use {target!r}, notebook_memo's name for it"
    needs, explanation = EXPLAINED.get(name, ("", ""))
    if needs in accepted:
        return explanation
    candidates = [*accepted, *(alias for alias, ours in ALIASES.items() if ours in accepted)]
    near = difflib.get_close_matches(name, candidates, n=1)
    if near:
        return f"did you mean {ALIASES.get(near[0], near[0])!r}?"
    listed = ", ".join(map(repr, accepted))
    options = f"its only option is {listed}" if len(accepted) == 1 else f"its options are {listed}"
    return f"{options}{': ' + note if note else ''}"


def checked(caller: str, note: str = "") -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a function so that an unknown keyword raises OptionError instead of Python's TypeError."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        accepted = keyword_names(fn)

        @functools.wraps(fn)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            check_options(caller, kwargs, accepted, note)
            return fn(*args, **kwargs)

        return call

    return decorate
