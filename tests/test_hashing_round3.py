"""Keys of values the walk once read only in part: attributes a subclass of a library class holds that its
inherited reduction leaves out, subclasses of tuple and frozenset with attributes, a tz-aware column's zone,
a tensor's autograd graph, ``np.vectorize`` after its first call, mapping proxies and dict views, ``struct``
and ``re.Match`` objects, ``__slots__`` declared as a set, and one object held twice inside an argument."""

from __future__ import annotations

import collections
import datetime
import functools
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


def test_library_values_whose_caches_fill_on_use_keep_their_digests() -> None:
    import ipaddress
    import typing

    import pandas as pd

    network, period, literal = ipaddress.ip_network("10.0.0.0/8"), pd.Period("2020-01", "M"), typing.Literal["a"]
    before = [content_hash(value) for value in (network, period, literal)]
    network.netmask, period.freqstr, repr(literal)  # each fills a cache on its instance
    assert [content_hash(value) for value in (network, period, literal)] == before
    assert before[0].hex() == "83700f8265a01c8b49e20f1a900b305e"  # what it was before subclasses' attributes counted


class _Partial(functools.partial):  # type: ignore[type-arg]
    pass


def _scaled(v: float, k: float) -> float:
    return v * k


def test_hashing_an_object_does_not_change_its_digest() -> None:
    # A partial makes its __dict__ when first asked for it, which its reduction then holds.
    for made in (functools.partial, _Partial):
        value = made(_scaled, k=3)
        first = content_hash(value)
        assert content_hash(value) == first
        assert content_hash(_with(made(_scaled, k=3), unit="m")) != first


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


# -- a tz-aware column's zone ------------------------------------------------------------------


def test_tz_aware_columns_in_zones_that_print_alike_miss(shell: Shell) -> None:
    shell.run("""
        import datetime as dt
        import pandas as pd
        from notebook_memo import memo

        class Shift(dt.tzinfo):
            def __init__(self, hours): self.hours = hours
            def utcoffset(self, d): return dt.timedelta(hours=self.hours)
            def dst(self, d): return dt.timedelta(0)
            def tzname(self, d): return "site"
            def __repr__(self): return "SiteZone"

        @memo
        def hours(s):
            return s.dt.hour.tolist()

        @memo
        def index_hours(i):
            return list(i.hour)

        base = pd.Series(pd.to_datetime(["2021-01-01 12:00"]).tz_localize("UTC"))
        one, three = hours(base.dt.tz_convert(Shift(1))), hours(base.dt.tz_convert(Shift(3)))
        named = [hours(base.dt.tz_convert(dt.timezone(dt.timedelta(hours=h), "site"))) for h in (1, 3)]
        index = [index_hours(pd.DatetimeIndex(base).tz_convert(Shift(h))) for h in (1, 3)]
    """)
    assert (shell["one"], shell["three"]) == ([13], [15])
    assert shell["named"] == [[13], [15]]
    assert shell["index"] == [[13], [15]]


def test_a_tzlocal_column_misses_in_another_time_zone(cache_dir: Any) -> None:
    from tests.conftest import run_kernel

    cell = """
        import pandas as pd
        from dateutil.tz import tzlocal
        from notebook_memo import memo

        @memo
        def hours(s):
            return s.dt.hour.tolist()

        s = pd.Series(pd.to_datetime(["2021-01-01 12:00"]).tz_localize("UTC")).dt.tz_convert(tzlocal())
        OUT["hours"], OUT["plain"] = hours(s), s.dt.hour.tolist()
    """
    utc = run_kernel([cell], cache_dir, seed=1, env={"TZ": "UTC"})
    new_york = run_kernel([cell], cache_dir, seed=2, env={"TZ": "America/New_York"})
    assert utc["hours"] == utc["plain"] == [12]
    assert new_york["hours"] == new_york["plain"] == [7]


def test_columns_in_zones_known_by_name_keep_their_digests() -> None:
    import pandas as pd

    utc = pd.Series(pd.date_range("2020", periods=3, tz="UTC"))
    paris = pd.date_range("2020", periods=3, tz="Europe/Paris")
    assert content_hash(utc).hex() == "b05cc6ca7a5e6e278fd93122cf5bc222"
    assert content_hash(paris).hex() == "b510167c416aa4cb5bbedf671614fdfb"


# -- a tensor's autograd graph ------------------------------------------------------------------


def test_a_tensor_with_an_autograd_graph_is_refused_as_an_argument(shell: Shell) -> None:
    shell.run("""
        import torch
        from notebook_memo import memo

        W = torch.tensor([1.0], requires_grad=True)

        @memo
        def sensitivity(y):
            (g,) = torch.autograd.grad(y.sum(), W)
            return g.tolist()

        @memo
        def total(y):
            return y.sum().item()

        detached = total((W * 2.0).detach()), total((W + 1.0).detach())
    """)
    assert shell["detached"] == (2.0, 2.0)
    result = shell.run_raw("sensitivity(W * 2.0)")
    assert type(result.error_in_exec).__name__ == "UnhashableArgument"
    message = str(result.error_in_exec)
    assert "argument 'y'" in message and "MulBackward0" in message and ".detach()" in message
    nested = shell.run_raw("total([W + 1.0])")
    assert type(nested.error_in_exec).__name__ == "UnhashableArgument" and "AddBackward0" in str(nested.error_in_exec)


def test_a_global_tensor_with_an_autograd_graph_is_left_out_with_a_warning(shell: Shell) -> None:
    import pytest

    shell.run("""
        import torch
        from notebook_memo import memo

        W = torch.tensor([1.0], requires_grad=True)
        Y = W * 2.0

        @memo
        def slope():
            return torch.autograd.grad(Y.sum(), W)[0].tolist()
    """)
    with pytest.warns(UserWarning, match=r"'Y' cannot be hashed .*detach"):
        assert shell.run("slope()") == [2.0]


def test_leaves_and_tensors_made_without_grad_keep_their_digests() -> None:
    import torch

    w = torch.ones(3, requires_grad=True)
    assert content_hash(w).hex() == "0d3b2df118123e3159797670308a5cdc"
    with torch.no_grad():
        assert content_hash(w * 2).hex() == "3a1a3de2ddea8dd5676219c73938f159"


# -- np.vectorize after its first call -----------------------------------------------------------


def _twice(x: float) -> float:
    return x * 2


def test_a_used_vectorize_keys_like_an_unused_one() -> None:
    for options in ({"otypes": [float]}, {"otypes": [float], "signature": "()->()"}, {}):
        fresh, used = np.vectorize(_twice, **options), np.vectorize(_twice, **options)
        used([1.0, 2.0])
        assert content_hash(used) == content_hash(fresh)
    assert content_hash(np.vectorize(_twice, otypes=[float])) != content_hash(np.vectorize(_twice, otypes=[int]))


def test_an_edited_vectorize_misses_after_its_first_call(shell: Shell) -> None:
    shell.run("""
        import numpy as np
        from notebook_memo import memo

        vf = np.vectorize(lambda x: x * 2, otypes=[float])
        vf([1, 2])

        @memo
        def apply(xs):
            return vf(xs).tolist()

        @memo
        def apply_arg(f, xs):
            return f(xs).tolist()

        first = apply([1, 2]), apply_arg(vf, [1, 2])
        vf = np.vectorize(lambda x: x * 3, otypes=[float])
        vf([1, 2])
        second = apply([1, 2]), apply_arg(vf, [1, 2])
    """)
    assert shell["first"] == ([2.0, 4.0], [2.0, 4.0])
    assert shell["second"] == ([3.0, 6.0], [3.0, 6.0])


# -- mapping proxies, dict views, struct.Struct, re.Match ------------------------------------------


def test_a_global_mapping_proxy_follows_its_dict(shell: Shell) -> None:
    import warnings

    shell.run("""
        import types
        from notebook_memo import memo

        _settings = {"scale": 2}
        SETTINGS = types.MappingProxyType(_settings)

        @memo
        def scaled(x):
            return x * SETTINGS["scale"]

        @memo
        def total(view):
            return sum(view.values())
    """)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert shell.run("scaled(10)") == 20
        shell.run("_settings['scale'] = 5")
        assert shell.run("scaled(10)") == 50
        assert shell.run("total(types.MappingProxyType({'a': 1})), total(types.MappingProxyType({'a': 2}))") == (1, 2)
    assert shell.run("scaled.hits, total.hits") == (0, 0)


def test_views_and_compiled_formats_are_keyed_by_what_they_show() -> None:
    import re
    import struct
    import types

    d = {"a": 1, "b": 2}
    digests = [content_hash(v) for v in (
        types.MappingProxyType(d), d, types.MappingProxyType({"a": 1}), d.keys(), d.values(), d.items(),
        {"b": 2, "a": 1}.keys(), types.MappingProxyType(collections.defaultdict(list, d)),
        collections.OrderedDict(d).keys(), struct.Struct("<i"), struct.Struct("<h"),
        re.match("a", "abc"), re.match("a", "abd"), re.search("b", "abc"), re.compile("b").search("abc", 0, 2),
        re.match("(a)|(b)", "b"), re.match("(a)|(b)", "a"),
    )]
    assert len(set(digests)) == len(digests)
    assert content_hash(d.items()) == content_hash({"a": 1, "b": 2}.items())
    assert content_hash(struct.Struct("<i")) == content_hash(struct.Struct("<i"))
    assert content_hash(re.match("(a)(b)?", "ac")) == content_hash(re.match("(a)(b)?", "ac"))
    ring: dict[str, Any] = {}
    ring["self"] = types.MappingProxyType(ring)
    assert content_hash(ring) == content_hash(ring)


# -- __slots__ declared as a set ----------------------------------------------------------------


def test_an_argument_with_set_slots_hits_after_a_restart(cache_dir: Any) -> None:
    from tests.conftest import run_kernel

    cell = """
        from notebook_memo import memo

        class Point:
            __slots__ = {"x", "y", "z", "w", "v"}
            def __init__(self, x, y, z, w, v):
                self.x, self.y, self.z, self.w, self.v = x, y, z, w, v

        @memo
        def norm(p):
            return (p.x ** 2 + p.y ** 2 + p.z ** 2 + p.w ** 2 + p.v ** 2) ** 0.5

        OUT["norm"], OUT["hits"] = norm(Point(1, 2, 3, 4, 5)), norm.hits
    """
    runs = [run_kernel([cell], cache_dir, seed=seed) for seed in (1, 2, 3, 4242)]
    assert [run["norm"] for run in runs] == [55 ** 0.5] * 4
    assert [run["hits"] for run in runs] == [0, 1, 1, 1]


_SET_SLOTS = """
import sys
sys.path.insert(0, {root!r})
from notebook_memo.hashing import content_hash

class WithDict:
    __slots__ = {{"alpha", "beta", "gamma", "delta", "__dict__"}}

class Members(set):
    __slots__ = frozenset({{"alpha", "beta", "gamma", "delta", "eps"}})

class Child(WithDict):
    __slots__ = ("eps",)

values = [WithDict(), Members({{1, 2}}), Child()]
for value in values:
    for i, name in enumerate(["alpha", "beta", "gamma", "delta"]):
        setattr(value, name, i)
values[0].extra = 1
print([content_hash(value).hex() for value in values])
"""


def test_digests_of_set_slotted_objects_do_not_follow_the_hash_seed() -> None:
    import subprocess
    import sys
    from pathlib import Path

    script = _SET_SLOTS.format(root=str(Path(__file__).resolve().parent.parent))
    outputs = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                              env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"}).stdout
               for seed in ("0", "1", "4242")}
    assert len(outputs) == 1, outputs
