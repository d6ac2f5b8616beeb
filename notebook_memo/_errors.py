"""Exception and warning classes: every error of ours derives from MemoError."""

from __future__ import annotations

__all__ = ()


class MemoError(Exception):
    """Base class of every error raised by notebook_memo."""


class UnhashableArgument(MemoError, TypeError):
    """A value cannot be hashed by content, so no sound cache key exists for it."""

    def __init__(self, path: str, value: object, reason: str, value_type: str | None = None,
                 leave_out: str = "ignore=[...]") -> None:
        self.path = path
        self.value = value  # what could not be hashed (an open file inside a global: see _handles)
        self.value_type = value_type or f"{type(value).__module__}.{type(value).__qualname__}"
        self.reason = reason
        self.leave_out = leave_out  # how to leave it out of the key where it is used: ignore=, --inputs
        super().__init__(
            f"cannot build a cache key from {path} (a {self.value_type}): {reason}. "
            f"Leave it out of the key with {leave_out}, give its class a "
            "__memo_key__(self) method returning what identifies it, or call "
            "notebook_memo.register_hasher(type, fn)."
        )

    def renamed(self, old: str, new: str) -> UnhashableArgument:
        """Return this error with the value its path starts from, ``old``, called ``new`` instead."""
        return UnhashableArgument(new + self.path.removeprefix(old), self.value, self.reason, self.value_type,
                                  self.leave_out)


class ConfigurationError(MemoError, ValueError):
    """A setting holds a value that cannot work (an empty secret, say); the message says how to fix it."""


class OptionError(ConfigurationError, TypeError):
    """A decorator was given an option it does not take, or used without the argument it needs.

    A TypeError too, as Python raises for an unexpected keyword argument.
    """


class BatchError(MemoError, ValueError):
    """A batch function returned a result that does not line up with its items."""


class RecursiveCall(MemoError, RuntimeError):
    """A memoized call needs its own result: it called itself with the same arguments while computing them."""


class MemoWarning(UserWarning):
    """Base class of the warnings notebook_memo emits."""


class StorageWarning(MemoWarning):
    """The cache could not be read or written; the result was computed instead."""


def changed_argument(function: str, argument: str) -> str:
    """Return the warning that ``function`` changed ``argument`` in place, so its result is not cached."""
    return (f"{function} changed its argument {argument!r} in place (it is not what it was before the call), which "
            "a hit could not do again: this result is not cached, so the function runs on every call that does so. "
            "Change a copy in the body, or return what it changes.")


def drew_from_argument(method: str, argument: str) -> str:
    """Return the warning that the per-instance method ``method`` drew from the random generator in ``argument``."""
    return (f"{method} drew from the random generator in its argument {argument!r}, which a per-instance hit could "
            "not advance as the call did: this result is not cached, so the method runs on every such call. Pass a "
            "seed and make the generator in the body, or use @memo, whose hits advance the generator.")


class StaleEntriesWarning(MemoWarning):
    """Entries made by older versions of a function's code are still on disk."""
