"""Per-object caches in class hierarchies: a subclass overriding a ``memo.cached_property`` or a
``memo.per_instance`` method and calling the parent's through ``super()`` (or the class) has a cache of its own."""

from __future__ import annotations

import asyncio
from typing import Any

from notebook_memo import memo


class Base:
    def __init__(self) -> None:
        self.calls: list[str] = []

    @memo.cached_property
    def summary(self) -> str:
        self.calls.append("Base.summary")
        return "base"

    @memo.per_instance
    def rows(self, y: int) -> str:
        self.calls.append(f"Base.rows({y})")
        return f"base{y}"


class Sub(Base):
    @memo.cached_property
    def summary(self) -> str:
        self.calls.append("Sub.summary")
        return super().summary + "+sub"

    @memo.per_instance
    def rows(self, y: int) -> str:
        self.calls.append(f"Sub.rows({y})")
        return super().rows(y) + "+sub"


def test_property_overridden_with_super_has_its_own_cache() -> None:
    s = Sub()
    assert s.summary == "base+sub"
    assert s.summary == "base+sub"
    assert s.calls == ["Sub.summary", "Base.summary"]
    assert Base.__dict__["summary"].__get__(s, Base) == "base"  # the parent's cached value, its own


def test_parent_property_read_first_does_not_answer_for_the_child() -> None:
    t = Sub()
    assert Base.__dict__["summary"].__get__(t, Base) == "base"
    assert t.summary == "base+sub"


def test_method_overridden_with_super_has_its_own_cache() -> None:
    s = Sub()
    assert s.rows(1) == "base1+sub"
    assert s.rows(1) == "base1+sub"
    assert s.calls == ["Sub.rows(1)", "Base.rows(1)"]


def test_method_called_through_the_class() -> None:
    s = Sub()
    assert Base.rows(s, 2) == "base2"  # as a plain method: the class attribute is callable with the object
    assert s.rows(2) == "base2+sub"
    assert Sub.rows(s, 2) == "base2+sub"
    assert s.calls == ["Base.rows(2)", "Sub.rows(2)"]


def test_deleting_the_child_property_recomputes_only_the_child() -> None:
    s = Sub()
    assert s.summary == "base+sub"
    del s.summary
    assert s.summary == "base+sub"
    assert s.calls == ["Sub.summary", "Base.summary", "Sub.summary"]
    memo.reset(s)
    assert s.summary == "base+sub"
    assert s.calls[-2:] == ["Sub.summary", "Base.summary"]


class AsyncBase:
    @memo.cached_property
    async def total(self) -> int:
        return 1


class AsyncSub(AsyncBase):
    @memo.cached_property
    async def total(self) -> int:
        return await super().total + 10


def test_async_property_overridden_with_super() -> None:
    a = AsyncSub()

    async def main() -> tuple[int, int]:
        return await a.total, await a.total

    assert asyncio.run(main()) == (11, 11)


class _DroppedByAnotherThread(dict):  # type: ignore[type-arg]
    """A cache table from which another thread drops an entry just after this one has read it."""

    def get(self, key: Any, default: Any = None) -> Any:
        entry = super().get(key, default)
        self.pop(key, None)
        return entry


def test_an_expired_entry_dropped_by_another_thread_meanwhile() -> None:
    desc = Base.__dict__["rows"]
    table = _DroppedByAnotherThread({b"k": ("old", 1.0, 0)})  # expired long ago
    assert desc._lookup(table, b"k") is None  # a miss, not a KeyError
    assert b"k" not in table
