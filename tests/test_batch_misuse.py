"""memo.batch used the wrong way: without its argument, on a missing parameter, returning the wrong results."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from notebook_memo import BatchError, ConfigurationError, OptionError, memo

# -- at decoration time -----------------------------------------------------------------------


def embed(texts: list[str], model: str = "small") -> list[int]:
    return [len(t) for t in texts]


def test_batch_without_its_argument_shows_the_right_form() -> None:
    with pytest.raises(TypeError) as caught:
        memo.batch(embed)  # what @memo.batch directly on a def does
    assert isinstance(caught.value, OptionError)
    message = str(caught.value)
    assert 'use @memo.batch("<name of the list parameter>")' in message
    assert '@memo.batch("texts") for embed(texts, model)' in message


def test_batch_with_empty_parentheses_shows_the_right_form() -> None:
    with pytest.raises(OptionError, match=r'@memo.batch\("texts"\) for embed\(texts, model\)'):
        memo.batch()(embed)  # type: ignore[call-overload]


def test_batch_on_a_method_names_the_first_parameter_after_self() -> None:
    class Model:
        def encode(self, sentences: list[str]) -> list[int]:
            return [len(s) for s in sentences]

    with pytest.raises(OptionError, match=r'@memo.batch\("sentences"\) for encode\(self, sentences\)'):
        memo.batch(Model.encode)


def test_batch_argument_that_is_not_text_is_refused() -> None:
    with pytest.raises(OptionError, match="name of the parameter that holds the items, not 0"):
        memo.batch(0)  # type: ignore[call-overload]


def test_batch_argument_not_a_parameter_names_the_parameters_and_the_nearest() -> None:
    with pytest.raises(ValueError) as caught:
        memo.batch("text")(embed)
    assert isinstance(caught.value, ConfigurationError)
    message = str(caught.value)
    assert "embed has no parameter named 'text'" in message
    assert "['texts', 'model']" in message and "did you mean 'texts'?" in message


# -- results that do not line up with the items -------------------------------------------------


def _returning(result: Any) -> Any:
    @memo.batch("texts")
    def embed(texts: list[str]) -> Any:
        return result() if callable(result) else result

    return embed


def _generator() -> Iterator[int]:
    yield from (1, 2)


@pytest.mark.parametrize("result, described", [
    (42, "an int"), ({"a": 1, "b": 2}, "a dict"), (_generator, "a generator"), ("ab", "a str"),
    (np.float64(1.5), "a float64"), ([1], "a list of 1 result"), ((1, 2, 3), "a tuple of 3 results"),
    (np.zeros(3), "a ndarray of 3 results"),
])
def test_a_result_of_the_wrong_kind_or_length_is_a_bad_result(result: Any, described: str) -> None:
    f = _returning(result)
    with pytest.raises(BatchError) as caught:
        f(["a", "b"])
    message = str(caught.value)
    assert f"embed returned {described} for 2 items" in message
    assert "must return one result per item, in order" in message
    assert "argument" not in message
    assert not f.is_cached(["a"])  # nothing stored


def test_an_async_batch_result_of_the_wrong_kind_is_a_bad_result() -> None:
    @memo.batch("texts")
    async def embed(texts: list[str]) -> Any:
        return {t: len(t) for t in texts}

    with pytest.raises(BatchError, match="embed returned a dict for 2 items"):
        asyncio.run(embed(["a", "b"]))


class _ReadableTheSecondTime:
    """An object whose state cannot be read the first time it is asked for (a lazy load that failed once)."""

    def __init__(self) -> None:
        self.reads = 0

    def __reduce__(self) -> Any:
        self.reads += 1
        if self.reads == 1:
            raise OSError("not loaded yet")
        return (_ReadableTheSecondTime, ())


@pytest.mark.parametrize(("items", "message"), [
    (lambda: ["a", "b", (x for x in "c"), "d"], r"item 2 of 'texts'"),
    (lambda: ["a", _ReadableTheSecondTime(), "b"], r"item 1 of 'texts'.*not loaded yet"),
], ids=["a generator", "state unreadable the first time only"])
def test_an_item_that_cannot_be_hashed_fails_the_call_named_by_its_position(items: Callable[[], list[Any]],
                                                                            message: str) -> None:
    from notebook_memo import UnhashableArgument

    calls: list[int] = []

    @memo.batch("texts")
    def lengths(texts: list[Any]) -> list[int]:
        calls.append(len(texts))
        return [1 for _ in texts]

    given = items()
    with pytest.raises(UnhashableArgument, match=message):
        lengths(given)
    assert calls == []  # nothing computed for the items that could be hashed
    assert all(item.reads == 1 for item in given if isinstance(item, _ReadableTheSecondTime))  # read once
