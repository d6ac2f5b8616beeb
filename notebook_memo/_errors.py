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
        return UnhashableArgument(new + self.path.removeprefix(old), None, self.reason, self.value_type,
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


class StaleEntriesWarning(MemoWarning):
    """Entries made by older versions of a function's code are still on disk."""
