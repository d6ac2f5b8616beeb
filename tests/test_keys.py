"""What a cache key keeps and what it must not invent: reductions, order, aliasing, no copies."""

from __future__ import annotations

import array
import collections
import datetime
import decimal
import enum
import fractions
import gc
import os
import pathlib
import pickle
import re
import subprocess
import sys
import tracemalloc
import uuid
import warnings
import weakref
import zoneinfo
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from notebook_memo import UnhashableArgument, memo
from notebook_memo.hashing import content_hash
from tests.conftest import Counter, Shell

ROOT = str(Path(__file__).resolve().parent.parent)


def h(value: object) -> bytes:
    return content_hash(value)


# -- reductions through copyreg and __reduce__ ---------------------------------------------------


class Colour(enum.Enum):
    RED = 1
    BLUE = 2


@pytest.mark.parametrize(
    "a, b",
    [
        (re.compile("a+"), re.compile("a*")),
        (re.compile("a+"), re.compile("a+", re.IGNORECASE)),
        (datetime.datetime(2020, 1, 1), datetime.datetime(2020, 1, 2)),
        (datetime.date(2020, 1, 1), datetime.date(2021, 1, 1)),
        (datetime.timedelta(1), datetime.timedelta(2)),
        (decimal.Decimal("1.5"), decimal.Decimal("1.50")),
        (fractions.Fraction(1, 3), fractions.Fraction(2, 3)),
        (uuid.UUID(int=5), uuid.UUID(int=6)),
        (pathlib.PurePosixPath("/a"), pathlib.PurePosixPath("/b")),
        (collections.deque([1, 2]), collections.deque([2, 1])),
        (array.array("i", [1, 2]), array.array("i", [1, 3])),
        (range(3), range(4)),
        (slice(1, 2), slice(1, 3)),
        (Colour.RED, Colour.BLUE),
        (zoneinfo.ZoneInfo("UTC"), zoneinfo.ZoneInfo("Europe/Paris")),
    ],
)
def test_standard_library_values_hash_by_their_reduction(a: object, b: object) -> None:
    assert h(a) != h(b)
    again = pickle.loads(pickle.dumps(a))
    assert h(again) == h(a)


_REGEX_SEED_SCRIPT = """
import sys, re, datetime, decimal, uuid, collections
sys.path.insert(0, sys.argv[1])
from notebook_memo.hashing import content_hash
print(content_hash([re.compile(r"\\d+", re.M), datetime.datetime(2020, 1, 1), decimal.Decimal("2.5"),
                    uuid.UUID(int=7), collections.deque("abc")]).hex())
"""


def test_reductions_are_stable_across_hash_seeds() -> None:
    digests = set()
    for seed in ("0", "1", "4242"):
        out = subprocess.run([sys.executable, "-c", _REGEX_SEED_SCRIPT, ROOT], capture_output=True, text=True,
                             env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"}, check=True)
        digests.add(out.stdout.strip())
    assert len(digests) == 1


def test_a_regex_argument_is_part_of_the_key(counter: Counter) -> None:
    @memo
    def matches(pattern: re.Pattern[str], text: str) -> bool:
        counter()
        return bool(pattern.search(text))

    assert matches(re.compile("a+"), "xaay")
    assert matches(re.compile("a+"), "xaay")
    assert counter.n == 1
    assert not matches(re.compile("b+"), "xaay")
    assert counter.n == 2


def test_a_regex_global_edited_in_another_cell_is_a_miss(shell: Shell, counter: Counter) -> None:
    shell.ip.user_ns["counter"] = counter
    shell.run("""
        import re
        from notebook_memo import memo
        PATTERN = re.compile("a+")
        @memo
        def count(text):
            counter()
            return len(PATTERN.findall(text))
    """)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert shell.run("count('aa b aaa')") == 2
    shell.run("PATTERN = re.compile('b+')")
    assert shell.run("count('aa b aaa')") == 1
    assert counter.n == 2


class _Odd:
    def __init__(self, result: Any) -> None:
        self.result = result

    def __reduce__(self) -> Any:
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


@pytest.mark.parametrize(
    "reduced",
    [(), (len,), (1, ()), (len, 5), (len, (), None, None, None, None, None), 42, None,
     (len, (), None, 7), (len, (), None, None, 7), ValueError("no"), TypeError("no")],
)
def test_odd_reductions_name_the_argument(reduced: Any) -> None:
    with pytest.raises(UnhashableArgument) as info:
        content_hash({"k": [_Odd(reduced)]}, "argument 'x'")
    assert "argument 'x'['k'][0]" in str(info.value)


# -- dict insertion order is observable ----------------------------------------------------------


@pytest.mark.parametrize(
    "a, b",
    [
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}),
        (collections.OrderedDict(a=1, b=2), collections.OrderedDict(b=2, a=1)),
        (collections.defaultdict(list, a=[1], b=[2]), collections.defaultdict(list, b=[2], a=[1])),
        (collections.defaultdict(list, a=[1]), collections.defaultdict(set, a=[1])),
        ([{"x": 0, "y": 1}], [{"y": 1, "x": 0}]),
    ],
)
def test_dict_insertion_order_is_part_of_the_digest(a: object, b: object) -> None:
    assert h(a) != h(b)


def test_sets_stay_order_free_and_dicts_stay_equal_when_built_alike() -> None:
    assert h({"a": 1, "b": [2]}) == h({"a": 1, "b": [2]})
    assert h({"x", "y", 3.5}) == h({3.5, "y", "x"})
    assert h(frozenset({"a", "b"})) == h(frozenset({"b", "a"}))


def test_keyword_order_of_named_parameters_is_not_part_of_the_key(counter: Counter) -> None:
    @memo
    def area(width: int, height: int) -> int:
        counter()
        return width * height

    assert area(width=2, height=3) == area(height=3, width=2) == 6
    assert counter.n == 1


def test_a_dict_global_reordered_in_another_cell_is_a_miss(shell: Shell) -> None:
    shell.run("""
        from notebook_memo import memo
        COLUMNS = {"a": 1, "b": 2}
        @memo
        def header():
            return list(COLUMNS)
    """)
    assert shell.run("header()") == ["a", "b"]
    shell.run('COLUMNS = {"b": 2, "a": 1}')
    assert shell.run("header()") == ["b", "a"]


# -- aliasing among a call's arguments -----------------------------------------------------------


def test_the_same_list_passed_twice_is_not_two_equal_copies(counter: Counter) -> None:
    @memo
    def one_object(a: list[int], b: list[int]) -> bool:  # what appending to one would show in the other
        counter()
        return a is b

    y = [0]
    assert one_object(y, y) is True
    assert one_object([0], [0]) is False
    assert counter.n == 2
    z = [0]
    assert one_object(z, z) is True
    assert counter.n == 2


def test_aliasing_is_keyed_by_position_among_star_args(counter: Counter) -> None:
    @memo
    def same(*items: list[int]) -> bool:
        counter()
        return items[0] is items[1]

    y = [0]
    assert same(y, y) is True
    assert same([0], [0]) is False
    assert counter.n == 2


def test_immutable_arguments_passed_twice_share_the_key(counter: Counter) -> None:
    @memo
    def add(a: object, b: object) -> object:
        counter()
        return a

    s = "text" * 10
    add(s, s)
    add("text" * 10, "".join(["text"] * 10))
    add((1, "x"), (1, "x"))
    t = (1, "x")
    add(t, t)
    assert counter.n == 2


# -- no needless copies --------------------------------------------------------------------------


def test_a_memmap_is_hashed_in_place_like_the_array_it_holds(tmp_path: Path) -> None:
    data = np.arange(8_000_000, dtype=np.float64)  # 64 MB
    data.tofile(tmp_path / "a.bin")
    mapped = np.memmap(tmp_path / "a.bin", dtype=np.float64, mode="r", shape=data.shape)
    tracemalloc.start()
    try:
        digest = h(mapped)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8_000_000
    assert digest == h(data)
    changed = data.copy()
    changed[-1] = -1
    assert digest != h(changed)


_BROADCAST_SCRIPT = """
import resource, sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from notebook_memo.hashing import content_hash
size = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (size + (1 << 30), resource.RLIM_INFINITY))
row = np.arange(10_000, dtype=np.float64)
huge = np.broadcast_to(row, (10**6, 10**4))  # 80 GB if it were materialised
other = row.copy()
other[3] = -1
small = np.broadcast_to(row[:4], (3, 4))
print(content_hash(huge) == content_hash(np.broadcast_to(row.copy(), (10**6, 10**4))),
      content_hash(huge) != content_hash(np.broadcast_to(other, (10**6, 10**4))),
      content_hash(huge) != content_hash(np.broadcast_to(row, (10**6 - 1, 10**4))),
      content_hash(small) != content_hash(np.broadcast_to(row[:4], (2, 4))),
      content_hash(np.broadcast_to(np.float64(2.0), (10**5, 10**5))) != content_hash(np.ones((3, 3))))
"""


def test_a_stride_zero_view_is_hashed_without_materialising_it() -> None:
    out = subprocess.run([sys.executable, "-c", _BROADCAST_SCRIPT, ROOT], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.split() == ["True"] * 5, out.stderr[-2000:]


# -- strings with lone surrogates ----------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda s: s,
        lambda s: [s, {s: s}],
        lambda s: pd.Series([s, "plain"]),
        lambda s: pd.DataFrame({"name": [s, "plain"], "n": [1, 2]}),
        lambda s: pd.DataFrame({"n": [1, 2]}, index=pd.Index([s, "plain"])),
        lambda s: pd.DataFrame({s: [1, 2]}),
        lambda s: pd.Index([s, "plain"]),
        lambda s: np.array([s, "plain"], dtype=object),
    ],
)
def test_strings_with_lone_surrogates_hash(make: Any) -> None:
    odd = os.fsdecode(b"caf\xff.csv")  # what os.listdir returns for a non-UTF-8 file name
    assert h(make(odd)) == h(make(os.fsdecode(b"caf\xff.csv")))
    assert h(make(odd)) != h(make(os.fsdecode(b"caf\xfe.csv")))


# -- recursion -----------------------------------------------------------------------------------


def test_a_recursion_error_in_the_body_is_not_blamed_on_an_argument() -> None:
    @memo
    def runaway(n: int) -> int:
        return runaway(n + 1)

    def at_depth(extra: int) -> int:
        return at_depth(extra - 1) if extra else runaway(0)

    for extra in range(24):  # the stack runs out at every point of a call, hashing included
        with pytest.raises(RecursionError) as info:
            at_depth(extra)
        assert not isinstance(info.value, UnhashableArgument)
        assert "argument" not in str(info.value)


def test_a_memoized_recursion_goes_as_deep_as_its_stack_allows(counter: Counter) -> None:
    @memo
    def fib(n: int) -> int:
        counter()
        return n if n < 2 else fib(n - 1) + fib(n - 2)

    a, b = 0, 1
    for _ in range(150):
        a, b = b, a + b
    assert fib(150) == a
    assert counter.n == 151


def test_nested_data_hashes_at_modest_depth_and_names_the_argument_when_too_deep() -> None:
    modest: list[object] = []
    for _ in range(200):
        modest = [modest]
    assert h(modest) == h(modest)
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(UnhashableArgument) as info:
        content_hash(deep, "argument 'tree'")
    assert "argument 'tree'" in str(info.value) and "nested too deeply" in str(info.value)


# -- classes are not kept alive ------------------------------------------------------------------


_CELL = """
class Record:
    def __init__(self):
        self.payload = list(range(1000))
"""


def test_hashing_an_instance_does_not_keep_its_class_alive() -> None:
    namespace: dict[str, Any] = {}
    exec(_CELL, namespace)
    h(namespace["Record"]())
    old = weakref.ref(namespace["Record"])
    exec(_CELL, namespace)
    gc.collect()
    assert old() is None


def test_rerunning_a_class_cell_lets_the_old_class_go(shell: Shell) -> None:
    shell.run("""
        import gc, weakref
        from notebook_memo import memo
        class Record:
            def __init__(self, n):
                self.payload = list(range(n))
        @memo
        def size(record):
            return len(record.payload)
        size(Record(10))
        old = weakref.ref(Record)
    """)
    shell.run("""
        class Record:
            def __init__(self, n):
                self.payload = list(range(n))
        size(Record(10))
    """)
    shell.run("gc.collect(); gone = old() is None")
    assert shell["gone"] is True


def test_batch_keys_see_aliasing_among_the_other_arguments(counter: Counter) -> None:
    @memo.batch("xs")
    def tag(xs: list[int], a: list[int], b: list[int]) -> list[int]:
        for _ in xs:
            counter()
        return [x + (a is b) for x in xs]

    y = [0]
    assert tag([1, 2], y, y) == [2, 3]
    assert tag([1, 2], [0], [0]) == [1, 2]
    assert counter.n == 4


def test_a_memoized_recursive_function_goes_as_deep_as_the_plain_one() -> None:
    @memo
    def fib(n: int) -> int:
        return n if n < 2 else fib(n - 1) + fib(n - 2)

    @memo
    def runaway(n: int) -> int:
        return runaway(n + 1)

    limit = sys.getrecursionlimit()
    assert fib(400) == 176023680645013966468226945392411250770384383304492191886725992896575345044216019675
    assert sys.getrecursionlimit() == limit
    with pytest.raises(RecursionError):
        runaway(0)  # still a RecursionError, never a crash
    assert sys.getrecursionlimit() == limit


# -- found by review: numpy layouts, pandas extras, **kwargs aliasing, released buffers ------


def test_structured_and_subarray_dtypes_key_by_their_whole_layout() -> None:
    a = np.array([(1, 2.0)], dtype=[("a", "<i8"), ("b", "<f8")])[0]
    b = np.frombuffer(a.tobytes(), dtype=[("x", "<f8"), ("y", "<i8")])[0]  # the same 16 bytes
    assert h(a) != h(b)
    assert h(np.dtype(("f8", (2, 3)))) != h(np.dtype(("i8", (6,))))
    assert h(np.zeros(2, ("f8", (2, 3)))) != h(np.zeros(2, ("f8", (3, 2))))
    titled = np.dtype({"names": ["a"], "formats": ["<i4"], "titles": ["A"]})
    assert h(np.zeros(1, titled)) != h(np.zeros(1, [("a", "<i4")]))
    assert h(np.zeros(1, np.dtype([("a", "u1"), ("b", "<i4")], align=True))) != \
        h(np.zeros(1, np.dtype([("a", "u1"), ("b", "<i4")])))


def test_out_of_order_and_overlapping_fields_hash() -> None:
    swapped = np.dtype({"names": ["a", "b"], "formats": ["<i4", "<i4"], "offsets": [4, 0]})
    overlap = np.dtype({"names": ["a", "b"], "formats": ["<i8", "<i4"], "offsets": [0, 0]})
    assert h(np.zeros(3, swapped)) != h(np.zeros(3, np.dtype([("a", "<i4"), ("b", "<i4")])))
    assert h(swapped) != h(overlap)
    assert h(np.zeros(2, overlap)[0]) == h(np.zeros(2, overlap)[1])


def test_series_attrs_index_frequency_and_flags_are_in_the_key() -> None:
    s = pd.Series([1.0, 2.0])
    t = s.copy()
    t.attrs["unit"] = "kg"
    assert h(s) != h(t)
    days = pd.date_range("2026-01-01", periods=3, freq="D")
    assert h(days) != h(pd.DatetimeIndex(list(days)))  # freq=None: shift() behaves differently
    strict = pd.DataFrame({"a": [1]}).set_flags(allows_duplicate_labels=False)
    assert h(strict) != h(pd.DataFrame({"a": [1]}))


def test_tz_aware_columns_hash_in_place_and_by_zone() -> None:
    stamps = pd.Series(pd.date_range("2026-01-01", periods=200_000, freq="s", tz="Europe/Berlin"))
    other_zone = stamps.dt.tz_convert("UTC")  # the same instants, another zone: another key
    assert h(stamps) != h(other_zone)
    assert h(stamps) == h(stamps.copy())
    later = stamps.copy()
    later.iloc[-1] += pd.Timedelta(1, "s")
    assert h(stamps) != h(later)
    with_nat = stamps.copy()
    with_nat.iloc[0] = pd.NaT
    assert h(with_nat) != h(stamps)


def test_the_same_list_passed_under_two_keyword_names_is_not_two_copies(counter: Counter) -> None:
    @memo
    def one_object(**kw: list[int]) -> bool:
        counter()
        return kw["a"] is kw["b"]

    y: list[int] = []
    assert one_object(a=y, b=y) is True
    assert one_object(a=[], b=[]) is False
    assert counter.n == 2


def test_a_released_memoryview_names_the_argument() -> None:
    view = memoryview(b"abc")
    view.release()
    with pytest.raises(UnhashableArgument, match="released memoryview"):
        content_hash(view, "m")


def test_a_class_holding_itself_in_its_data_or_through_super_is_not_kept_alive(shell: Shell) -> None:
    shell.run("""
        import gc, weakref
        from notebook_memo import memo

        class Base:
            @property
            def size(self):
                return 1

        class Plugin(Base):
            registry = {}
            @property
            def size(self):
                return super().size + 1
            @staticmethod
            def make():
                return Plugin()
        Plugin.registry["self"] = Plugin

        @memo
        def use(p):
            return p.size

        @memo
        def by_name(x):
            return Plugin.make().size + x

        use(Plugin())
        by_name(1)
        gone = weakref.ref(Plugin)
        del Plugin, use, by_name
        """)
    shell.run("gc.collect()\nalive = gone() is not None")
    assert shell["alive"] is False


@pytest.mark.parametrize("setup, names", [
    ("def deco(fn):\n    @functools.wraps(fn)\n    def inner(self):\n        return fn(self)\n    return inner\n"
     "class Base:\n    def get(self):\n        return 1\n"
     "class Plugin(Base):\n    @deco\n    def get(self):\n        return super().get() + 1", "Plugin"),
    ("class Base:\n    def get(self):\n        return 1\n"
     "class Plugin(Base):\n    @functools.lru_cache\n    def get(self):\n        return super().get() + 1", "Plugin"),
    ("@functools.singledispatch\ndef show(x):\n    return 0\n"
     "class Plugin:\n    def get(self):\n        return show(self)\n@show.register\ndef _(x: Plugin):\n    return 1",
     "Plugin, show, _"),
    ("class Plugin:\n    def get(self):\n        return 1\nPlugin.get.owner = Plugin", "Plugin"),
    ("def make():\n    class Plugin:\n        def get(self):\n            return Plugin\n    return Plugin\n"
     "Plugin = make()", "Plugin"),
    ("def f(reg, k):\n    return len(reg)\nclass Plugin:\n    registry = {}\n"
     "    look = staticmethod(functools.partial(f, registry))\nPlugin.registry['me'] = Plugin", "Plugin"),
], ids=["wraps-super", "lru-cache-super", "singledispatch", "method-attribute", "factory-closure",
        "static-partial-registry"])
def test_a_class_reached_through_its_methods_state_is_not_kept_alive(shell: Shell, setup: str, names: str) -> None:
    shell.run("import functools, gc, weakref\nfrom notebook_memo import memo\n@memo\ndef peek(o):\n    return 1")
    shell.run(setup)
    shell.run(f"p = Plugin()\npeek(p)\ngone = weakref.ref(Plugin)\ndel p, {names}")
    shell.run("gc.collect()\nalive = gone() is not None")
    assert shell["alive"] is False


def test_a_weak_reference_is_keyed_by_what_it_refers_to() -> None:
    class Box:
        def __init__(self, n: int) -> None:
            self.n = n

    a, b, c = Box(1), Box(1), Box(2)
    assert h(weakref.ref(a)) == h(weakref.ref(b)) != h(weakref.ref(c))
    gone = weakref.ref(Box(3))
    gc.collect()
    assert gone() is None
    assert h({"ref": gone}) != h({"ref": weakref.ref(a)})
