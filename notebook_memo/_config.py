"""Named defaults, environment variables and the process-wide settings object.

Precedence everywhere: an explicit argument, then a value given to ``configure()``,
then the environment variable, then the documented default below.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import warnings
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NamedTuple, Union

from ._errors import ConfigurationError, MemoWarning

__all__ = ()

ENV_DIR = "NOTEBOOK_MEMO_DIR"
ENV_DISABLE = "NOTEBOOK_MEMO_DISABLE"
ENV_SECRET = "NOTEBOOK_MEMO_SECRET"
ENV_SIZE_LIMIT = "NOTEBOOK_MEMO_SIZE_LIMIT"
ENV_LEASE = "NOTEBOOK_MEMO_LEASE"
ENV_VERBOSE = "NOTEBOOK_MEMO_VERBOSE"
ENV_REMOTE = "NOTEBOOK_MEMO_REMOTE"
ENV_REMOTE_READ_ONLY = "NOTEBOOK_MEMO_REMOTE_READ_ONLY"

DEFAULT_DIR_NAME = ".notebook_memo"
DEFAULT_SIZE_LIMIT = 20 * 2**30  # 20 GiB per cache directory
EXPIRY_GRACE = 3600.0  # expired entries stay visible to explain() this long
INLINE_LIMIT = 64 * 2**10  # payloads below this live inside the index database
LOCK_LEASE = 15.0  # seconds a computing process holds a key without renewing
CLOCK_SKEW = 2.0  # a TTL entry stored more than this far in our future came from a clock ahead of ours
LATEST_TIME = 2.0**33  # seconds since 1970 (the year 2242): a time stamp past it was planted; a TTL past it never ends
LOCK_POLL_MAX = 0.05  # longest sleep between checks while waiting for a key
QUICK_BODY = 0.01  # a function whose last run took less computes its next miss without taking the lease
TOUCH_FLUSH_INTERVAL = 2.0  # seconds between batched LRU access-time updates
# Data files up to this size are identified by their content digest; larger ones by size,
# modification and change times and inode (re-reading them on every check would cost too much).
FILE_DIGEST_LIMIT = 2**30
# A file written this recently when it was checked may change again within its clock tick without
# changing its times: until it is older, a hit re-reads its content instead of trusting its times.
RACY_SECONDS = 2.0
TYPE_DESCRIPTION_LIMIT = 4 * 2**10  # characters of a batch result's type kept in each item's metadata

TTLLike = Union[None, int, float, str, timedelta]  # noqa: UP007 (a runtime alias on 3.10)

_UNIT_SECONDS = {
    0.001: ("ms", "msec", "msecs", "millisecond", "milliseconds"),
    1: ("s", "sec", "secs", "second", "seconds"),
    60: ("m", "min", "mins", "minute", "minutes"),
    3600: ("h", "hr", "hrs", "hour", "hours"),
    86400: ("d", "day", "days"),
    604800: ("w", "wk", "wks", "week", "weeks"),
}
_UNITS = {name: float(seconds) for seconds, names in _UNIT_SECONDS.items() for name in names}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_SECONDS_TEXT = re.compile(rf"[+-]?{_NUMBER}")
_TTL_TEXT = re.compile(rf"(?:{_NUMBER}\s*[a-z]+\s*,?\s*)+")
_TTL_PART = re.compile(rf"({_NUMBER})\s*([a-z]+)")
DURATION_TEXT = "text such as '90s', '30 min', '6 hours', '1 day', '1h30m'"
_TTL_FORMS = f"write seconds (3600), a timedelta, or {DURATION_TEXT}"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_SIZE_FORMS = "write bytes (5000000000) or text such as '500MB', '5GB', '512MiB', '2 TiB'"


def parse_ttl(ttl: TTLLike) -> float | None:
    """Return a TTL in seconds: from seconds, a ``timedelta``, or text such as ``"6h"``, ``"2 days"``, ``"1h30m"``.

    None (no expiry) for one longer than LATEST_TIME (``float('inf')``, ``1e12``): no entry could outlive it,
    and an expiry time past any time stamp would read as planted to a reader that checks them."""
    if ttl is None:
        return None
    if isinstance(ttl, timedelta):
        seconds = ttl.total_seconds()
    elif isinstance(ttl, (int, float)) and not isinstance(ttl, bool):
        seconds = float(ttl)
    elif isinstance(ttl, str):
        read = duration_text(ttl)
        if read is None:
            raise ValueError(f"cannot read the TTL {ttl!r}: {_TTL_FORMS}")
        seconds = read
    else:
        raise TypeError(f"ttl must be seconds, a timedelta, text like '6h' or None, not {ttl!r}")
    if not seconds > 0:  # also NaN
        raise ValueError(f"ttl must be positive, got {ttl!r}; leave it out (None) to keep results until cleared")
    return None if seconds > LATEST_TIME else seconds


def duration_text(text: str) -> float | None:
    """Return the seconds in text such as ``"3600"``, ``"90 min"``, ``"1 hour 30 minutes"``; None if unreadable."""
    text = text.strip().lower()
    if _SECONDS_TEXT.fullmatch(text):
        return float(text)
    # A sign is read, so that "-1h" is refused as not positive rather than as unreadable.
    sign, text = (-1.0, text[1:].lstrip()) if text[:1] == "-" else (1.0, text)
    if _TTL_TEXT.fullmatch(text):
        parts = _TTL_PART.findall(text)
        if all(unit in _UNITS for _, unit in parts):
            return sign * sum(float(number) * _UNITS[unit] for number, unit in parts)
    return None


def parse_size(size: int | str) -> int:
    """Return a byte count from an int or text such as ``"5GB"`` or ``"512MiB"``."""
    if isinstance(size, int) and not isinstance(size, bool):
        if size < 0:
            raise ValueError(f"a size cannot be negative, got {size!r}: {_SIZE_FORMS}")
        return size
    match = _SIZE.match(str(size))
    if not match:
        raise ValueError(f"cannot read the size {size!r}: {_SIZE_FORMS}")
    number, unit = match.groups()
    unit = (unit or "").lower()
    base = 1024 if "i" in unit else 1000
    prefix = unit[:1] if unit[:1] in "kmgt" else ""
    power = "kmgt".index(prefix) + 1 if prefix else 0
    return int(float(number) * base**power)


UNSET: Any = object()  # an argument not given (configure's defaults)


@dataclass
class Settings:
    """Values given to ``configure()``; None means 'not set here'."""

    cache_dir: str | None = None
    secret: bytes | None = None
    size_limit: int | None = None
    track_versions: bool = True
    verbose: bool = True  # notices: stale entries, cells restored
    calls: int | None = None  # a line per call at >= 1 (joblib's verbose); None: NOTEBOOK_MEMO_VERBOSE, else 0
    disabled: bool = False  # %memo off
    remote: str | None = None  # the shared tier's URL; "" for none whatever the environment says
    remote_read_only: bool | None = None


settings = Settings()

# Set (``own_thread.ours = True``) by the threads of ours that never run user code (the store's background
# thread, the stale-entries scan): what they open is never a memoized body's input.
own_thread = threading.local()
_warned: set[str] = set()
_warned_lock = threading.Lock()


def _new_warned_lock() -> None:
    global _warned_lock
    _warned_lock = threading.Lock()  # a forked child: the thread that held it is gone


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_warned_lock)


def resolve_dir(cache_dir: str | os.PathLike[str] | None) -> str:
    """Return the absolute cache directory for an explicit argument or the defaults."""
    chosen = cache_dir or settings.cache_dir or os.environ.get(ENV_DIR) or DEFAULT_DIR_NAME
    return os.path.abspath(os.path.expanduser(os.fspath(chosen)))


# On POSIX, os.environ keeps its variables in ``_data`` as bytes; reading it directly spares each
# hit the encoding and, for an unset variable, the KeyError that ``os.environ.get`` goes through.
_ENVIRON = os.environ
_ENVIRON_DATA: dict[bytes, bytes] | None = getattr(os.environ, "_data", None) if os.name == "posix" else None
_ENCODED: dict[str, bytes] = {}


def environ(name: str) -> str | None:
    """Return an environment variable's value now, like ``os.environ.get(name)``."""
    data = _ENVIRON_DATA
    if data is None or os.environ is not _ENVIRON:  # not POSIX, or os.environ replaced (a test's patch)
        return os.environ.get(name)
    key = _ENCODED.get(name)
    if key is None:
        key = _ENCODED[name] = os.fsencode(name)
    raw = data.get(key)
    return None if raw is None else os.fsdecode(raw)


def resolve_secret() -> bytes | None:
    """Return the signing secret, if one is configured; an empty one is an error."""
    if settings.secret is not None:
        return settings.secret
    env = environ(ENV_SECRET)
    if env is None:
        return None
    if not env:
        raise ConfigurationError(f"{ENV_SECRET} is set but empty: set it to a non-empty secret shared by everyone who "
                         "writes this cache, or unset it to store unsigned values")
    return env.encode()


def resolve_size_limit() -> int:
    """Return the size limit of a cache directory in bytes."""
    if settings.size_limit is not None:
        return settings.size_limit
    env = os.environ.get(ENV_SIZE_LIMIT)
    return parse_size(env) if env else DEFAULT_SIZE_LIMIT


def resolve_lease() -> float:
    """Return how long a computing process holds a key without renewing it (seconds)."""
    env = os.environ.get(ENV_LEASE)
    return float(env) if env else LOCK_LEASE


def env_flag(name: str) -> bool:
    """Return True when the environment variable ``name`` says yes (1, true, yes, on)."""
    value = environ(name)
    return value is not None and value.strip().lower() in {"1", "true", "yes", "on"}


def disabled_by_env() -> bool:
    """Return True when ``%memo off`` or ``NOTEBOOK_MEMO_DISABLE`` turns caching off."""
    return settings.disabled or env_flag(ENV_DISABLE)


def call_verbosity(chosen: int | None = None) -> int:
    """Return how much to print per call: a function's ``verbose=``, else ``configure``, else the env, else 0."""
    if chosen is not None:
        return chosen
    if settings.calls is not None:
        return settings.calls
    value = environ(ENV_VERBOSE)
    if not value:
        return 0
    try:
        return int(value)
    except ValueError:
        return 1 if value.strip().lower() in {"true", "yes", "on"} else 0


class CallSettings(NamedTuple):
    """What a memoized call reads from ``configure()`` and the environment, resolved together."""

    disabled: bool  # %memo off or NOTEBOOK_MEMO_DISABLE
    verbosity: int  # call_verbosity() without a function's own choice
    secret: bytes | None
    env_dir: str | None  # NOTEBOOK_MEMO_DIR


_CALL_VARS = (ENV_DISABLE, ENV_VERBOSE, ENV_SECRET, ENV_DIR)
_CALL_KEYS = tuple(os.fsencode(name) for name in _CALL_VARS)
_call_view: tuple[tuple[Any, ...], CallSettings] | None = None


def call_settings() -> CallSettings:
    """Return the settings a call reads, resolved again only when one of them or their variables changed.

    A new object whenever anything it depends on changed (the size limit too): callers may keep
    what they derived from it (the store) while it is the same object.

    Each call compares the settings' fields and the variables' raw values with the last ones: a
    handful of reads, where resolving them would parse and check each value.
    """
    global _call_view
    ours = settings
    data = _ENVIRON_DATA
    if data is not None and os.environ is _ENVIRON:
        disable, verbose, secret, directory = _CALL_KEYS
        view: tuple[Any, ...] = (ours.disabled, ours.calls, ours.secret, ours.cache_dir, ours.size_limit,
                                 data.get(disable), data.get(verbose), data.get(secret), data.get(directory))
    else:
        view = (ours.disabled, ours.calls, ours.secret, ours.cache_dir, ours.size_limit,
                *map(os.environ.get, _CALL_VARS))
    last = _call_view
    if last is not None and last[0] == view:
        return last[1]
    resolved = CallSettings(disabled_by_env(), call_verbosity(), resolve_secret(), environ(ENV_DIR))
    _call_view = (view, resolved)
    return resolved


def human_seconds(seconds: float) -> str:
    """Return a duration for people: ``'0.4 ms'``, ``'12 ms'``, ``'3.2 s'``, ``'2 min 5 s'``, ``'1 h 20 min'``."""
    if seconds < 0.01:
        return f"{seconds * 1000:.2g} ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:.0f} s"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:.0f} min"


def describe_error(exc: BaseException) -> str:
    """Return an exception as one short line: its type and the first line of its message."""
    message = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__
    return text if len(text) <= 200 else text[:199] + "…"


def announce(text: str) -> None:
    """Print one line about what a call did (``verbose=1``), where the user looks: the cell's output."""
    print(f"[notebook_memo] {text}", flush=True)


def warn_once(cause: str, message: str, category: type[Warning] = MemoWarning) -> None:
    """Warn about ``cause`` once per process; later occurrences are silent."""
    with _warned_lock:
        if cause in _warned:
            return
        _warned.add(cause)
    warnings.warn(message, category, stacklevel=_user_stacklevel())


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _user_stacklevel() -> int:
    """Return the stacklevel of the first frame outside this package (the user's call)."""
    frame = sys._getframe(2)
    level = 2
    while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == _PACKAGE_DIR:
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level


def forget_warning(cause: str) -> None:
    """Allow the warning for ``cause`` again (the trouble was fixed, then came back)."""
    if cause not in _warned:
        return  # the common case (every write asks): no lock taken
    with _warned_lock:
        _warned.discard(cause)
