"""Keys of values whose inherited reduction leaves part of them out: slot values of a subclass of a
standard-library or builtin class (an exception, ``array.array``, ``functools.partial``, ``datetime.date``,
``Fraction``, ``Counter``, ``random.Random``...), record versus plain structured numpy dtypes, and an
exception passed as an argument, whose reduction grows a ``{}`` state once its ``__dict__`` is read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from notebook_memo.hashing import content_hash
from tests.conftest import Shell, run_kernel

# -- slot values a library class's reduction does not save -----------------------------------------

# (base class's import and name, its constructor's arguments, the body's use of the value)
_SLOTTED = {
    "fraction": ("from fractions import Fraction as Base", "(1, 2)", "f'{float(x)} {x.tag}'"),
    "date": ("from datetime import date as Base", "(2020, 1, 1)", "x.tag"),
    "exception": ("Base = ValueError", "('boom',)", "x.tag"),
    "array": ("from array import array as Base", "('d', [1.0, 2.0])", "sum(x) * x.tag"),
    "partial": ("from functools import partial as Base", "(max, 1)", "x(0) * x.tag"),
    "counter": ("from collections import Counter as Base", "({'a': 1},)", "x['a'] * x.tag"),
    "defaultdict": ("from collections import defaultdict as Base", "(int,)", "x.tag"),
    "namespace": ("from types import SimpleNamespace as Base", "()", "x.tag"),
    "random": ("from random import Random as Base", "(0,)", "x.tag"),
    "decimal": ("from decimal import Decimal as Base", "('1.5',)", "x.tag"),
}


@pytest.mark.parametrize("case", sorted(_SLOTTED))
def test_a_slot_value_of_a_library_class_s_subclass_is_in_the_key(shell: Shell, case: str) -> None:
    base, args, use = _SLOTTED[case]
    shell.run(f"""
        import warnings
        {base}
        from notebook_memo import memo

        class Tagged(Base):
            __slots__ = ("tag",)

        def make(tag):
            value = Tagged{args}
            value.tag = tag
            return value

        @memo
        def use(x):
            return {use}

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            first, second = use(make(2)), use(make(100))
        expected = (lambda x: {use})(make(100))
    """)
    assert shell["second"] == shell["expected"] != shell["first"]


def test_slot_values_of_a_library_subclass_differ_in_digest_and_unset_ones_are_absent() -> None:
    import fractions

    class Reading(fractions.Fraction):
        __slots__ = ("scale", "unit")

    def reading(**slots: Any) -> Reading:
        value = Reading(1, 2)
        for name, item in slots.items():
            setattr(value, name, item)
        return value

    digests = {content_hash(reading(**slots)) for slots in
               ({}, {"unit": "m"}, {"unit": "km"}, {"scale": "m"}, {"unit": "m", "scale": 2})}
    assert len(digests) == 5  # which slot holds a value counts, not only the values
    assert content_hash(reading(unit="m")) == content_hash(reading(unit="m"))


def test_a_slot_of_a_library_subclass_s_subclass_is_keyed_and_name_mangled_ones_too() -> None:
    import datetime

    class Day(datetime.date):
        __slots__ = ("calendar",)

    class Holiday(Day):
        __slots__ = ("__name",)

        def named(self, name: str) -> Holiday:
            self.__name = name
            return self

    assert content_hash(Holiday(2020, 1, 1).named("a")) != content_hash(Holiday(2020, 1, 1).named("b"))
    one, other = Holiday(2020, 1, 1), Holiday(2020, 1, 1)
    one.calendar, other.calendar = "gregorian", "julian"
    assert content_hash(one) != content_hash(other)


def test_set_slots_of_a_library_subclass_hit_after_a_restart(cache_dir: Path) -> None:
    cell = """
        import fractions
        from notebook_memo import memo

        class Reading(fractions.Fraction):
            __slots__ = {"unit", "scale", "source", "note", "when"}

        @memo
        def show(r):
            return f"{float(r)} {r.unit} {r.scale} {r.source} {r.note} {r.when}"

        r = Reading(1, 2)
        r.unit, r.scale, r.source, r.note, r.when = "m", 2, "probe", "x", 7
        OUT["shown"], OUT["hits"] = show(r), show.hits
    """
    runs = [run_kernel([cell], cache_dir, seed=seed) for seed in (1, 2, 4242)]
    assert [run["shown"] for run in runs] == ["0.5 m 2 probe x 7"] * 3
    assert [run["hits"] for run in runs] == [0, 1, 1]


# -- record versus plain structured dtypes -----------------------------------------------------------


def test_a_record_array_and_a_plain_structured_one_have_their_own_keys(shell: Shell) -> None:
    shell.run("""
        import numpy as np
        from notebook_memo import memo

        @memo
        def first(a):
            return a[0]

        fields = [("x", "i4"), ("y", "f8")]
        rec = np.asarray(np.rec.fromrecords([(1, 2.0)], dtype=fields))  # an ndarray of dtype (numpy.record, ...)
        plain = np.array([(1, 2.0)], dtype=fields)
        from_rec, from_plain = first(rec), first(plain)
    """)
    assert type(shell["from_rec"]).__name__ == "record"
    assert type(shell["from_plain"]).__name__ == "void"


def test_record_dtypes_scalars_and_nested_fields_differ_from_plain_ones() -> None:
    import numpy as np

    fields = [("x", "i4"), ("y", "f8")]
    record, plain = np.dtype((np.record, fields)), np.dtype(fields)
    assert record == plain  # numpy calls them equal, yet their items differ in type
    assert content_hash(record) != content_hash(plain)
    assert content_hash(np.zeros(2, dtype=record)) != content_hash(np.zeros(2, dtype=plain))
    assert content_hash(np.zeros(2, dtype=record)[0]) != content_hash(np.zeros(2, dtype=plain)[0])
    outer = [("inner", record), ("z", "i2")]
    assert content_hash(np.dtype(outer)) != content_hash(np.dtype([("inner", plain), ("z", "i2")]))


# -- an exception as an argument -----------------------------------------------------------------------


def test_an_exception_argument_hits_on_equal_calls(shell: Shell) -> None:
    shell.run("""
        import warnings
        from notebook_memo import memo

        class ParseError(ValueError):
            pass

        class Runs(list):
            def __memo_key__(self):
                return "runs"  # counts body runs outside every key

        runs = Runs()

        @memo
        def describe(err, more):
            runs.append(1)
            return f"{type(err).__name__}: {err} {len(more)}"

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            shown = [describe(ParseError("bad line 3"), [KeyError("k")]) for _ in range(3)]
        messages = [str(w.message) for w in caught]
    """)
    assert shell["shown"] == ["ParseError: bad line 3 1"] * 3
    assert len(shell["runs"]) == 1
    assert shell["messages"] == []


def test_an_exception_s_digest_does_not_change_when_its_dict_is_made_and_its_content_counts() -> None:
    error = ValueError("bad")
    before = content_hash(error)
    vars(error)  # makes its __dict__: its reduction then ends with {}
    assert content_hash(error) == before
    error.add_note("seen in line 3")
    noted = content_hash(error)
    assert noted != before
    error.code = 3
    assert content_hash(error) not in (before, noted)


def test_an_exception_argument_hits_after_a_restart(cache_dir: Path) -> None:
    cell = """
        from notebook_memo import memo

        class ParseError(ValueError):
            pass

        @memo
        def describe(err):
            return f"{type(err).__name__}: {err}"

        OUT["shown"] = describe(ParseError("bad line 3"))
        OUT["hits"] = describe.hits
    """
    runs = [run_kernel([cell], cache_dir, seed=seed) for seed in (1, 2)]
    assert [run["shown"] for run in runs] == ["ParseError: bad line 3"] * 2
    assert [run["hits"] for run in runs] == [0, 1]
    assert not any("describe" in text for run in runs for text in run["_warnings"])
