"""Keys of values the walk once read only in part: attributes a subclass of a library class holds that its
inherited reduction leaves out, subclasses of tuple and frozenset with attributes, a tz-aware column's zone,
a tensor's autograd graph, ``np.vectorize`` after its first call, mapping proxies and dict views, ``struct``
and ``re.Match`` objects, ``__slots__`` declared as a set, and one object held twice inside an argument."""

from __future__ import annotations

import collections
import datetime
import random
from typing import Any

import numpy as np

from notebook_memo.hashing import content_hash
from tests.conftest import Shell

# -- attributes a subclass's inherited reduction leaves out ---------------------------------------


def test_an_attribute_of_a_random_subclass_is_in_the_key(shell: Shell) -> None:
    shell.run("""
        import random
        from notebook_memo import memo

        class Scaled(random.Random):
            def __init__(self, seed, scale):
                super().__init__(seed)
                self.scale = scale

        @memo
        def draw(r):
            return r.random() * r.scale

        small, big = draw(Scaled(0, 1)), draw(Scaled(0, 100))
        again = draw(Scaled(0, 100))
    """)
    assert shell["big"] == shell["small"] * 100
    assert shell["again"] == shell["big"]


class _State(np.random.RandomState):
    pass


class _Stamp(datetime.datetime):
    pass


class _Table(collections.defaultdict):  # type: ignore[type-arg]
    pass


def _with(value: Any, **attributes: Any) -> Any:
    for name, item in attributes.items():
        setattr(value, name, item)
    return value


def test_attributes_of_subclasses_whose_reduction_drops_them_are_keyed() -> None:
    assert content_hash(_with(_State(0), scale=1)) != content_hash(_with(_State(0), scale=100))
    assert content_hash(_with(_Stamp(2020, 1, 1), label="a")) != content_hash(_with(_Stamp(2020, 1, 1), label="b"))
    assert content_hash(_with(_Table(list), unit="m")) != content_hash(_with(_Table(list), unit="s"))
    assert content_hash(_with(_Stamp(2020, 1, 1), label="a")) == content_hash(_with(_Stamp(2020, 1, 1), label="a"))


class _Cached:
    """A class whose own ``__getstate__`` leaves its cache out: the author's choice stands."""

    def __init__(self, x: int) -> None:
        self.x, self.cache = x, {}

    def __getstate__(self) -> dict[str, Any]:
        return {"x": self.x}


class _CachedChild(_Cached):
    pass


def test_a_reduction_that_names_the_attributes_is_trusted() -> None:
    assert content_hash(_with(_Cached(1), cache={1: 2})) == content_hash(_Cached(1))
    assert content_hash(_with(_CachedChild(1), cache={1: 2})) == content_hash(_CachedChild(1))
    assert content_hash(random.Random(0)) == content_hash(random.Random(0))


# -- subclasses of tuple and frozenset with attributes, as globals -------------------------------


def test_a_global_frozenset_or_tuple_subclass_whose_attribute_changed_misses(shell: Shell) -> None:
    shell.run("""
        from notebook_memo import memo

        class Labels(frozenset):
            pass

        class Pair(tuple):
            pass

        class Slotted(frozenset):
            __slots__ = ("unit",)

        LABELS = Labels({"a", "b"})
        LABELS.prefix = "x"
        PAIR = Pair((1, 2))
        PAIR.scale = 1
        SLOTTED = Slotted({1})
        SLOTTED.unit = "m"

        @memo
        def names():
            return sorted(LABELS.prefix + s for s in LABELS)

        @memo
        def scaled():
            return [v * PAIR.scale for v in PAIR]

        @memo
        def units():
            return [f"{v}{SLOTTED.unit}" for v in SLOTTED]

        first = names(), scaled(), units()
        LABELS.prefix, PAIR.scale, SLOTTED.unit = "y", 10, "s"
        second = names(), scaled(), units()
    """)
    assert shell["first"] == (["xa", "xb"], [1, 2], ["1m"])
    assert shell["second"] == (["ya", "yb"], [10, 20], ["1s"])


def test_a_namedtuple_is_still_judged_immutable() -> None:
    from notebook_memo._fingerprint import _immutable

    point = collections.namedtuple("point", "x y")
    assert _immutable(point(1, (2, "a")))
    assert not _immutable(point(1, [2]))
