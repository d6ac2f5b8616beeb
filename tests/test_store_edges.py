"""Edges of the store and its upkeep: a ttl given later to memo.batch, declared folders holding pipes and
links, implausible rows in the index, unsigned records beside a secret, remote folders that are links or
hold huge planted files, and lease rows whose pid cannot be read."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from notebook_memo import memo
from tests.conftest import Seen


@pytest.fixture
def seen() -> Seen:
    return Seen()


def _later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Make every record's age, as the library judges it, ``seconds`` more than it is."""
    from notebook_memo import _serialize

    real = time.time
    monkeypatch.setattr(_serialize, "time", type("Later", (), {"time": staticmethod(lambda: real() + seconds)}))


def _doubles(seen: Seen) -> Any:
    def doubles(xs: list[int]) -> list[int]:
        seen.append(list(xs))
        return [x * 2 for x in xs]

    return doubles


# -- memo.batch and a ttl given later ---------------------------------------------------------


def test_batch_ttl_given_later_recomputes_items_stored_without_one(seen: Seen, monkeypatch: pytest.MonkeyPatch) -> None:
    body = _doubles(seen)
    assert memo.batch("xs", progress=False)(body)([1, 2, 3]) == [2, 4, 6]
    _later(monkeypatch, 3600)
    aged = memo.batch("xs", progress=False, ttl="10m")(body)
    assert not aged.is_cached([1, 2, 3])
    report = aged.explain([1, 2, 3])
    assert not report.hit and "ttl of 600 s" in " ".join(report.reasons)
    assert aged([1, 2, 3]) == [2, 4, 6]  # the items are an hour old
    assert seen == [[1, 2, 3], [1, 2, 3]]


def test_batch_ttl_shortened_later_recomputes_items_stored_with_a_longer_one(
        seen: Seen, monkeypatch: pytest.MonkeyPatch) -> None:
    body = _doubles(seen)
    assert memo.batch("xs", progress=False, ttl="1h")(body)([1, 2]) == [2, 4]
    _later(monkeypatch, 120)
    shorter = memo.batch("xs", progress=False, ttl="1m")(body)
    assert not shorter.is_cached([1, 2])
    assert shorter([1, 2]) == [2, 4]
    assert seen == [[1, 2], [1, 2]]


def test_batch_items_younger_than_a_ttl_given_later_are_served(seen: Seen, monkeypatch: pytest.MonkeyPatch) -> None:
    body = _doubles(seen)
    assert memo.batch("xs", progress=False)(body)([1, 2]) == [2, 4]
    _later(monkeypatch, 60)
    kept = memo.batch("xs", progress=False, ttl="10m")(body)
    assert kept.is_cached([1, 2])
    assert kept([1, 2]) == [2, 4]
    assert seen == [[1, 2]]


def test_explain_of_an_entry_older_than_a_ttl_given_later_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    def constant() -> int:
        return 1

    assert memo(constant)() == 1
    _later(monkeypatch, 3600)
    aged = memo(ttl="10m")(constant)
    report = aged.explain()
    assert not report.hit and not aged.is_cached()
    assert "ttl" in report.summary


def test_async_batch_ttl_given_later_recomputes(seen: Seen, monkeypatch: pytest.MonkeyPatch) -> None:
    async def doubles(xs: list[int]) -> list[int]:
        seen.append(list(xs))
        return [x * 2 for x in xs]

    assert asyncio.run(memo.batch("xs", progress=False)(doubles)([4])) == [8]
    _later(monkeypatch, 3600)
    assert asyncio.run(memo.batch("xs", progress=False, ttl="10m")(doubles)([4])) == [8]
    assert seen == [[4], [4]]
