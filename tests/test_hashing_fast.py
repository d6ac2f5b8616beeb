"""Digests pinned: a faster walk must give every value the digest it had, or every cache on disk is lost.

The golden digests below were computed by the implementation before the fast paths existed.
"""

from __future__ import annotations

import collections
import enum
import http
import math
import random
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest

from notebook_memo import UnhashableArgument
from notebook_memo.hashing import Hasher, content_hash


def _cycles() -> list[tuple[str, Any]]:
    a: list[Any] = []
    a.append(a)
    d: dict[str, Any] = {"x": 1}
    d["self"] = d
    b: list[Any] = [1]
    c: list[Any] = [b, "c"]
    b.append(c)
    t: tuple[Any, ...] = ([],)
    t[0].append(t)
    deep: list[Any] = [0, [1, [2, [3]]]]
    deep[1][1][1].append(deep)
    in_set: list[Any] = ["s"]
    in_set.append([frozenset({1, 2}), {"k": in_set}])
    shared = [1, 2]
    holder = np.empty(3, dtype=object)
    holder[0], holder[1], holder[2] = holder, np.arange(3), [holder]
    with_arrays: list[Any] = [np.arange(3)]
    with_arrays += [with_arrays, np.arange(3.0), {"a": np.arange(3)}]
    return [("cycle object array", holder), ("cycle beside arrays", with_arrays), ("cycle list", a),
            ("cycle dict", d), ("cycle pair", b), ("cycle tuple", t), ("cycle deep", deep),
            ("cycle beside a set", in_set), ("shared not a cycle", [shared, shared, (shared,)])]


def corpus() -> list[tuple[str, Any]]:
    """Values whose digests are pinned; every one is built the same way in every process."""
    rng = np.random.default_rng(7)
    values: list[tuple[str, Any]] = [
        ("none", None), ("true", True), ("false", False), ("ellipsis", ...), ("notimplemented", NotImplemented),
        ("int 0", 0), ("int 1", 1), ("int -1", -1), ("int 127", 127), ("int 128", 128), ("int 255", 255),
        ("int 256", 256), ("int -128", -128), ("int -129", -129), ("int 2**63", 2**63),
        ("int -2**63-1", -(2**63) - 1),
        ("int 2**200", 2**200), ("int -2**200", -(2**200)), ("int 10**400", 10**400),
        ("float 0", 0.0), ("float -0", -0.0), ("float 0.1", 0.1), ("float nan", math.nan), ("float -nan", -math.nan),
        ("float inf", math.inf), ("float -inf", -math.inf), ("float subnormal", 5e-324),
        ("float max", 1.7976931348623157e308),
        ("complex", complex(1.5, -0.0)), ("complex nan", complex(math.nan, 2)), ("complex 0", 0j),
        ("str empty", ""), ("str run", "run"), ("str accents", "héllo wörld"), ("str emoji", "🙂x"),
        ("str surrogate", "a\udc80b"), ("str lone high", "\ud800"), ("str nul", "a\x00b"),
        ("str long", "xyz" * 30000),
        ("bytes empty", b""), ("bytes", b"abc\x00"), ("bytes big", bytes(range(256)) * 300),
        ("bytearray", bytearray(b"ab")), ("bytearray big", bytearray(70000)),
        ("memoryview", memoryview(b"abcd")), ("memoryview 2d", memoryview(bytes(range(12))).cast("B", (3, 4))),
        ("tuple empty", ()), ("list empty", []), ("dict empty", {}), ("set empty", set()),
        ("frozenset empty", frozenset()),
        ("tuple 1", (1,)), ("list nested", [1, [2, [3, [4.0, "five"]]], ()]), ("tuple mixed", (None, True, b"x", 2j)),
        ("dict small", {"lr": 0.1, "name": "run"}), ("call args", (1, {"lr": 0.1, "name": "run"})),
        ("dict non-str keys", {1: "a", 2.5: "b", None: 1, (1, 2): [3], b"k": True, frozenset({1}): 0, False: 2}),
        ("dict nested", {"a": {"b": {"c": [1, 2, {"d": (3, 4)}]}}, "e": []}),
        ("set mixed", {1, "a", 2.5, None, (1, 2), b"b", frozenset({3})}), ("frozenset", frozenset({"x", "y", "z"})),
        ("set of sets", frozenset({frozenset({1}), frozenset({1, 2}), frozenset()})),
        ("set equal members", set([1, 1.0, True])), ("list of sets", [{1, 2}, {"a"}, set()]),
        ("list 1000 str", [f"item-{i}" for i in range(1000)]), ("list 1000 ints", list(range(-500, 500))),
        ("tuple 40 non-ascii str", tuple(f"\u00e9t\u00e9-{i}" for i in range(40))),
        ("list str then surrogate", [*(f"k{i}" for i in range(30)), "bad\udc80"]),
        ("list str long and short", ["x" * 127, "y" * 128, *("z" * i for i in range(200))]),
        ("list str then other", [*(str(i) for i in range(20)), 5, None, ("t",)]),
        ("list str with a subclass", [*(str(i) for i in range(20)), np.str_("a b"), "c"]),
        ("list 300 floats", [i / 7 for i in range(300)]), ("dict 200", {f"k{i}": i * 1.5 for i in range(200)}),
        ("list of dicts", [{"id": i, "tags": ("a", "b"), "w": None} for i in range(50)]),
        ("big list of bytes", [bytes([i % 256]) * 40000 for i in range(4)]),
        ("list with ellipsis", [..., NotImplemented, memoryview(b"z")]),
        ("range", range(3, 10, 2)), ("slice", slice(1, None, 2)), ("type int", int), ("builtin len", len),
        ("module math", math),
        ("ordereddict", collections.OrderedDict([("b", 1), ("a", 2)])),
        ("defaultdict", collections.defaultdict(list, {"a": [1]})), ("counter", collections.Counter("abracadabra")),
        ("deque", collections.deque([1, 2, 3])), ("intenum", http.HTTPStatus.NOT_FOUND),
        ("namedtuple stdlib", urllib.parse.urlsplit("https://example.org/a?b=1#c")),
        ("list of subclasses", [collections.OrderedDict(a=1), http.HTTPStatus.OK, (1,)]),
        ("numpy float64", np.arange(12, dtype=np.float64)),
        ("numpy int32 2d", np.arange(12, dtype=np.int32).reshape(3, 4)),
        ("numpy bool", np.array([True, False, True])), ("numpy complex", np.array([1 + 2j, -0.0j])),
        ("numpy float16", np.linspace(0, 1, 7, dtype=np.float16)), ("numpy big-endian", np.arange(5, dtype=">i4")),
        ("numpy unicode", np.array(["a", "bcd", "\u00e9"])), ("numpy bytes", np.array([b"a", b"bc"])),
        ("numpy datetime", np.array(["2020-01-01", "2021-06-30"], dtype="datetime64[ns]")),
        ("numpy timedelta", np.array([1, 2], dtype="timedelta64[s]")),
        ("numpy structured", np.array([(1, 2.0), (3, 4.0)], dtype=[("a", "<i4"), ("b", "<f8")])),
        ("numpy aligned", np.zeros(2, dtype=np.dtype([("a", "i1"), ("b", "i4")], align=True))),
        ("numpy titled", np.zeros(2, dtype=np.dtype({"names": ["a"], "formats": ["<i2"], "titles": ["A"]}))),
        ("numpy subarray", np.zeros(2, dtype=np.dtype(("<f4", (2, 3))))),
        ("numpy object", np.array([1, "a", None, (2,)], dtype=object)),
        ("numpy structured object", np.array([(1, "a"), (2, None)], dtype=[("i", "<i8"), ("o", object)])),
        ("numpy subarray object", np.array([(["a", "b"],)], dtype=[("o", object, (2,))])),
        ("numpy 0-d", np.array(3.5)), ("numpy empty", np.zeros((0, 3))),
        ("numpy fortran", np.asfortranarray(np.ones((3, 4)))),
        ("numpy strided", np.arange(20.0)[::3]), ("numpy broadcast", np.broadcast_to(np.arange(3.0), (4, 3))),
        ("numpy big", rng.standard_normal(20000)), ("numpy 3d", rng.integers(0, 9, (2, 3, 4)).astype(np.uint8)),
        ("numpy scalar", np.float64(1.5)), ("numpy int scalar", np.int64(-3)), ("numpy dtype", np.dtype("<u2")),
        ("dict of arrays", {f"a{i}": rng.standard_normal(50) for i in range(20)}),
        ("list of arrays and plain", [np.arange(3), 1, "x", [np.zeros(2, dtype=np.int8), {"k": np.ones(1)}]]),
    ]
    return values + _cycles()


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


GOLDEN: dict[str, str] = {
    'none': '626d368fe0e74b4f1a038927df1311d6',
    'true': '1d33c0bd3511c80d20948828081ddcb4',
    'false': 'ccebad3393972e4a79bf233aa9bae29f',
    'ellipsis': '97e7cfc7dc4fb5768107baec7f33bebf',
    'notimplemented': '1f830db20342715cc7e5bbf9e7175a57',
    'int 0': '8e7ba4744620b77b6c623212875f97ee',
    'int 1': '2dd69d280aaaa31a490dc2928633cd0e',
    'int -1': 'a1e91c5d6860d32b80e47451797bd70d',
    'int 127': '8f99ed287a5cd9ae9bc954c4613b1737',
    'int 128': '6c96715692af91103e0b9d2d79c4f8af',
    'int 255': 'f63a382acc05ef99fd1ec9f1a6fd40cc',
    'int 256': '53f97ce1b9fae111e8d9b956373b5200',
    'int -128': 'f851a7af6cc3585da17ef0c1dcb3c565',
    'int -129': 'fdf28bcb0e9f2af9d18b33e078585234',
    'int 2**63': '8d87b9028b14631e9810d6d1831990cc',
    'int -2**63-1': '76aef7de977b7b2e8c8c683eb5eeb349',
    'int 2**200': 'f42a1faffe50371263894a3ff7d26f08',
    'int -2**200': '5e1d88716b27446f57d8c5be5bd7e555',
    'int 10**400': 'ccc4feb2c898155f0df7c4a6e30513a1',
    'float 0': '116d0d22cc8173ec5f6531dcc0133311',
    'float -0': 'f6b43928ce5e5192820ab6b29963bd6b',
    'float 0.1': '67e16bb2a22b77a8bc8edae175803a79',
    'float nan': '3ae82a08ba2149526bdaa8092bd62f35',
    'float -nan': 'c8ff2d4b9d5c0f0b7b31922fe34b824c',
    'float inf': '7a8db524dbae2e094b793d59b1f88687',
    'float -inf': '0e68520cd115b3bf7c117c4c592ff7ab',
    'float subnormal': 'c738e4d6587f326aaddb02ef8b1da4a8',
    'float max': '52cfad70a8077950b10c21fe4fb7bf6a',
    'complex': '9291328abff20fb4e6bdfe3288dc0c97',
    'complex nan': 'bcee293a50c29e987f33c57e4e2b9375',
    'complex 0': '8514f9b9c41b883a297604f6af555876',
    'str empty': '85fefc6f12f345b396720846b631026c',
    'str run': '5f94f281edfbd49fe31cb6f814bd7dd5',
    'str accents': '4dfa3adbc3907100db15e94178485793',
    'str emoji': 'e8bb20fc3af2bc0a687125e097ac9e87',
    'str surrogate': 'b8b7a371b97cffbfc11847ffffe26175',
    'str lone high': '082a4161931eae64422fb55707d603eb',
    'str nul': '6c263a37d38a2196188f7067d9a1391d',
    'str long': '9d151fcd616f8a00a4748bb2bdc3f6dd',
    'bytes empty': '4fe339cfb66d6995b8acade7ca3c1e28',
    'bytes': 'c1312e33510b262c4d8f904fe76c5066',
    'bytes big': '531cbf40267df338b106e963217c05e5',
    'bytearray': 'dcc015e179f3571cb8a3d3aa3c186452',
    'bytearray big': '58a4fa58af881a018749e5ff40a6a2cf',
    'memoryview': 'b2201f87ec3d529ee5ece29face78837',
    'memoryview 2d': '335f05804f79445d328bc72655f99f58',
    'tuple empty': 'f67518458dc22c95a989996fb4f240bf',
    'list empty': '1d829393e4ec928620b6664c095def16',
    'dict empty': 'fc1c88d9beef7f21ec6aa40e58e5201c',
    'set empty': '492a7822b2dcdf9f2367bf53a2afd683',
    'frozenset empty': '79f670cb5c7ba813de50a8714fca5857',
    'tuple 1': '01209959fbe73ef5c572af6af929c5a9',
    'list nested': '67671b9e9f727e213e1dc3fcd354a1c3',
    'tuple mixed': 'e583594c54640afebee7c039428e0c10',
    'dict small': '91a0ec91703f9d8e0e4ffb6f4ad715a7',
    'call args': 'd2c077a5408d4d2de5c3ee0c0d3e332c',
    'dict non-str keys': '263124b603d7864ff2f4be1069745777',
    'dict nested': '437fcf7bd01440dd6faf7794c5c19ce3',
    'set mixed': 'e827e7a63d8a5b9f81d413c21ba6528b',
    'frozenset': '8cf93a9e7b1f3bc1d6ad3eb27478c8f6',
    'set of sets': '35c5f4a18be336bfd8a37f44f44389a6',
    'set equal members': 'a154663f2cedc7ce65e267d87c7290d8',
    'list of sets': '475ae24c4dc0ab5fdbf96b56538a7fd3',
    'list 1000 str': '27b305a9aa318082ed75ff617d7ded39',
    'list 1000 ints': '6d5ed611410da86f846595d050e63f3b',
    'tuple 40 non-ascii str': '85ead252367bf398111617ac02ef3153',
    'list str then surrogate': '867d828fda0d0e315cba570b495d219f',
    'list str long and short': '4d37bd3a1e0c5df8285587013a6a913f',
    'list str then other': 'f5035d94965f8df6359fb70b8f0f02d8',
    'list str with a subclass': 'e04910ee234e5b361886e65e4235f3a9',
    'list 300 floats': '3de6beb227b284ae0f02c21d18928476',
    'dict 200': '0d487eacd987589e6bb07edd0b259699',
    'list of dicts': '87b6acf9ac1bb16633dd5acf0e082dfe',
    'big list of bytes': 'e40b3ec125496a4d24e7c1a757ae4bc8',
    'list with ellipsis': '91283d62eebfe0b4d7e53cf2664b7b41',
    'range': '94d2843b78d041c24eaa28a71f462a6c',
    'slice': '48328587d55b832f4b2e8c8478a45ceb',
    'type int': 'a3d179a0c0bb96ced4bfa60510d8bed8',
    'builtin len': '7b173cd5b301319a282e90c82e5e53d7',
    'module math': 'e4fe6102f6793d7af0aac971553c1864',
    'ordereddict': '0172aa9847fea06ba2ed99d8099714cd',
    'defaultdict': '19533f09ae1c53e78817282a43827f08',
    'counter': '012450e580aafd6a6d3dea96983e3182',
    'deque': 'c6f58ed3f3eefbef1d9df341952792c6',
    'intenum': '27581d3b60143514740ab8739ac30697',
    'namedtuple stdlib': '9cdd35d138814516ed952312b42dc5f1',
    'list of subclasses': 'b295f9f60a0d91a7dcf706dd358f3a45',
    'numpy float64': '40521ed667ae542c715b9f3ba3f02d4d',
    'numpy int32 2d': '128c52c4fa023ecfae4512c375f12507',
    'numpy bool': '6e5d3fff64facacb9eff007cb0194a88',
    'numpy complex': 'c4475f351367fd471268d965e2c88687',
    'numpy float16': '9a6a91493ecb89266c2b750e86cde877',
    'numpy big-endian': '83132cfd7041b96764a2c404aac195f1',
    'numpy unicode': '40a7c3a8f755de27da3cbc4789c16ee2',
    'numpy bytes': 'f1f9fa23c795db17bd506ee006038b73',
    'numpy datetime': '689ef550d2eabb5ac661ae51aac56309',
    'numpy timedelta': 'ae95924330e08f1274fcbbf3fbdfdc78',
    'numpy structured': '5f90fcec7027f84e93a3acfe27eeebfe',
    'numpy aligned': '106270b370203b0316356f0f02decf51',
    'numpy titled': 'b251c11a9236b0b75255f2c07c92e722',
    'numpy subarray': 'd2b59b5e973f169d1080c88c033a32d0',
    'numpy object': '2d2617f6c60695aa6a742e1aff563dd7',
    'numpy structured object': '1773d0079fe814df157fa47988264fed',
    'numpy subarray object': 'dfea6ccfe9f5753227ae694bdcc9a1da',
    'numpy 0-d': 'b51a6d77b9a178bf6f84fcfd4db77bbe',
    'numpy empty': '2a6b4de0c3fb1cbad64c15f045ecd475',
    'numpy fortran': '3e7a676058d944b5474d41e035a6a07f',
    'numpy strided': '3de1d30b423dc72a2b9fb59dba413ca4',
    'numpy broadcast': '704df39745aa90fbf09395fa1a64fb29',
    'numpy big': '4f4895ce294d095ba084c64e2579e6c9',
    'numpy 3d': '85175ef01ebe72a8dc52824c99ca1e55',
    'numpy scalar': 'c9fc375c3b23b9fe052106ee8e062d08',
    'numpy int scalar': '6b411c84bdd51cd2588dbe58039c24f7',
    'numpy dtype': '7166c2d9c1619336a96fc9d2e2f9f4c2',
    'dict of arrays': '811089d22959c736ff09340d9101faec',
    'list of arrays and plain': '818cb9d924abf985a218cc34d0411e57',
    'cycle object array': '70cdfc6d8269549a8edfb62b3feb401f',
    'cycle beside arrays': 'ec77941e4334a19e68d0c0cac46fbe58',
    'cycle list': '7703753c458ede7dad87e77c4c3e046c',
    'cycle dict': '682985a4b44c211ae0d30acf1aebda6c',
    'cycle pair': 'fea956273c9eb76c73da824ad950e8a7',
    'cycle tuple': '18b24abb716f3f9fddeb079d87701c5d',
    'cycle deep': '604aa4e67d397d97b39bd71eb6018451',
    'cycle beside a set': 'f205d014b5333201be337b89153724e1',
    # One list three times: keyed once, then by references back (it was keyed like three equal lists).
    'shared not a cycle': '762f2c93c3b3e3d3afa4ee69ff1fb2bf',
}


def _general(value: Any) -> bytes:
    """The digest by the general walk, one handler call per value (what the fast paths must equal)."""
    h = Hasher()
    h.update(value)
    return h.digest()


def test_corpus_labels_are_unique() -> None:
    labels = [label for label, _ in corpus()]
    assert len(labels) == len(set(labels)) == len(GOLDEN)


@pytest.mark.parametrize("label, value", corpus(), ids=[label for label, _ in corpus()])
def test_digest_is_what_it_was(label: str, value: Any) -> None:
    assert content_hash(value).hex() == GOLDEN[label]
    assert _general(value).hex() == GOLDEN[label]


# -- an independent statement of the canonical bytes of plain values ----------------------------


def _q(n: int) -> bytes:
    return n.to_bytes(8, "little", signed=True)


def _number(n: int) -> bytes:
    data = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return _q(len(data)) + data


def _float(x: float) -> bytes:
    import struct

    if x != x:
        return b"fNaN" if math.copysign(1.0, x) < 0 else b"fnan"
    return b"f" + struct.pack("<d", x)


def _reference(v: Any) -> bytes:
    import xxhash

    kind = type(v)
    if v is None:
        return b"N"
    if kind is bool:
        return b"T" if v else b"F"
    if kind is int:
        return b"i" + _number(v)
    if kind is float:
        return _float(v)
    if kind is complex:
        return b"c" + _float(v.real) + _float(v.imag)
    if kind is str:
        data = v.encode("utf-8", "surrogatepass")
        return b"s" + _q(len(data)) + data
    if kind is bytes:
        return b"b" + _q(len(v)) + v
    if kind in (tuple, list):
        return (b"(" if kind is tuple else b"[") + _number(len(v)) + b"".join(_reference(i) for i in v)
    if kind is dict:
        return b"d" + _number(len(v)) + b"".join(_reference(k) + _reference(i) for k, i in v.items())
    if kind in (set, frozenset):
        digests = sorted(xxhash.xxh3_128_digest(_reference(i)) for i in v)
        return (b"S" if kind is set else b"Z") + _number(len(digests)) + b"".join(digests)
    raise AssertionError(f"not plain: {v!r}")


def _random_key(rng: random.Random, depth: int) -> Any:
    choice = rng.randrange(8 if depth < 3 else 6)
    if choice == 0:
        return rng.choice([None, True, False, ...][:3])
    if choice == 1:
        return rng.choice([0, 1, -1, 127, 128, 255, 256, -64, -65, -128, -129, 2**64, -(2**70),
                           rng.randrange(-10**6, 10**6)])
    if choice == 2:
        return rng.choice([0.0, -0.0, math.nan, math.inf, 1e-310, rng.uniform(-1e6, 1e6)])
    if choice == 3:
        return complex(rng.uniform(-5, 5), rng.choice([0.0, -0.0, 1.5]))
    if choice == 4:
        return "".join(rng.choice("ab\u00e9\U0001f642\udc80\x00 ") for _ in range(rng.randrange(6)))
    if choice == 5:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(5)))
    if choice == 6:
        return tuple(_random_key(rng, depth + 1) for _ in range(rng.randrange(4)))
    return frozenset(_random_key(rng, depth + 1) for _ in range(rng.randrange(4)))


def _random_plain(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(10 if depth < 5 else 6)
    if choice < 6:
        return _random_key(rng, depth)
    size = rng.choice([0, 1, 2, 3, 5, 40])
    if choice == 6:
        return [_random_plain(rng, depth + 1) for _ in range(size)]
    if choice == 7:
        return tuple(_random_plain(rng, depth + 1) for _ in range(size))
    if choice == 8:
        return {_random_key(rng, depth + 1): _random_plain(rng, depth + 1) for _ in range(size)}
    return rng.choice([set, frozenset])(_random_key(rng, depth + 1) for _ in range(size))


@pytest.mark.parametrize("seed", range(40))
def test_plain_values_hash_to_their_canonical_bytes(seed: int) -> None:
    import xxhash

    rng = random.Random(seed)
    for _ in range(25):
        value = _random_plain(rng)
        expected = xxhash.xxh3_128_digest(_reference(value))
        assert content_hash(value) == expected
        assert _general(value) == expected


def test_big_containers_hash_to_their_canonical_bytes() -> None:
    import xxhash

    for value in ([f"s{i}" for i in range(100_000)], {f"k{i}": i / 3 for i in range(10_000)},
                  [(i, str(i), None) for i in range(5000)], set(range(3000)), [b"x" * 70_000, "y" * 70_000],
                  [*(f"s{i}" for i in range(20_000)), "\u00e9", "z" * 200, "\udc80", *(f"t{i}" for i in range(20_000))],
                  tuple(["é" * (i % 300) for i in range(10_000)])):
        assert content_hash(value) == _general(value) == xxhash.xxh3_128_digest(_reference(value))


# -- subclasses of builtins keep their own (non-plain) digests ------------------------------------


class Text(str):
    pass


class Level(enum.IntEnum):
    LOW = 1


class Point(NamedTuple):
    x: int
    y: int


class Flag(int):
    pass


@pytest.mark.parametrize("value, plain", [
    (Text("run"), "run"), (Level.LOW, 1), (Point(1, 2), (1, 2)), (Flag(1), 1),
    (collections.OrderedDict(a=1), {"a": 1}), (collections.defaultdict(int, a=1), {"a": 1}),
    (collections.Counter(a=1), {"a": 1}),
])
def test_subclasses_of_builtins_are_not_taken_for_the_builtin(value: Any, plain: Any) -> None:
    assert content_hash(value) == _general(value)
    assert content_hash(value) != content_hash(plain)
    assert content_hash([value]) == _general([value]) != content_hash([plain])
    assert content_hash({"k": value}) == _general({"k": value})


# -- errors name where the value sits -------------------------------------------------------------


def _where(value: Any) -> str:
    with pytest.raises(UnhashableArgument) as info:
        content_hash(value, "argument 'x'")
    return info.value.path


def test_unhashable_inside_plain_containers_is_named_by_its_path() -> None:
    lock = threading.Lock()
    assert _where([1, 2, {"k": lock}]) == "argument 'x'[2]['k']"
    assert _where({"a": (1, [lock])}) == "argument 'x'['a'][1][0]"
    assert _where({(1, 2): [0, lock]}) == "argument 'x'[<key>][1]"
    assert _where({3: lock}) == "argument 'x'[3]"
    assert _where({lock: 1}) == "argument 'x'[<key>]"
    assert _where([0, {lock}]) == "argument 'x'[1]"
    assert _where(lock) == "argument 'x'"
    assert _where([f"s{i}" for i in range(100_000)] + [lock]) == "argument 'x'[100000]"
    assert _where({"k": np.array([1, lock], dtype=object)}) == "argument 'x'['k'][flat 1]"
    nested = [np.zeros(3), {"a": [collections.OrderedDict(b=lock)]}]
    assert _where(nested) == "argument 'x'[1]['a'][0]<dict items>[0][1]"
    with pytest.raises(UnhashableArgument, match="is not a value"):
        content_hash([lock])


def test_deep_nesting_raises_but_moderate_nesting_hashes() -> None:
    assert content_hash(_nested(40)) == _general(_nested(40))
    assert _where(_nested(100_000)) == "argument 'x'"
    assert _where({"k": [1, _nested(100_000)]}) == "argument 'x'"
    with pytest.raises(UnhashableArgument, match="nested too deeply"):
        content_hash((_nested(100_000),), "argument 'x'")


_SEED_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
from test_hashing_fast import corpus
from notebook_memo.hashing import content_hash
for label, value in corpus():
    print(label, content_hash(value).hex())
"""


def test_digests_are_the_same_under_another_hash_seed() -> None:
    root = Path(__file__).resolve().parent.parent
    expected = "".join(f"{label} {digest}\n" for label, digest in GOLDEN.items())
    for seed in ("1", "4242"):
        out = subprocess.run([sys.executable, "-c", _SEED_SCRIPT, str(root), str(root / "tests")],
                             capture_output=True, text=True, check=True,
                             env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"})
        assert out.stdout == expected


# -- what the array fast path remembers between calls ---------------------------------------------


def test_renaming_a_structured_dtypes_fields_changes_the_digest() -> None:
    a = np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8")])
    before = content_hash(a)
    a.dtype.names = ("x", "y")  # the same dtype object, changed in place
    assert content_hash(a) != before
    assert content_hash(a) == content_hash(np.zeros(2, dtype=[("x", "<i4"), ("y", "<f8")]))


def test_many_dtypes_and_shapes_keep_their_own_digests() -> None:
    first = [content_hash(np.array(["x"], dtype=f"<U{n}")) for n in range(1, 1500)]
    assert len(set(first)) == len(first)
    assert first == [content_hash(np.array(["x"], dtype=f"<U{n}")) for n in range(1, 1500)]
    shapes = [(6,), (1, 6), (6, 1), (2, 3), (3, 2), (1, 2, 3)]
    assert len({content_hash(np.zeros(shape)) for shape in shapes}) == len(shapes)


_REGISTER_AFTER_USE = """
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import notebook_memo
from notebook_memo.hashing import content_hash
assert content_hash(np.arange(3)) != content_hash(np.arange(4))
notebook_memo.register_hasher(np.ndarray, lambda a: len(a))
assert content_hash(np.arange(3)) == content_hash(np.ones(3)) != content_hash(np.arange(4))
print("ok")
"""


def test_a_hasher_registered_for_arrays_after_one_was_hashed_is_used() -> None:
    root = str(Path(__file__).resolve().parent.parent)
    out = subprocess.run([sys.executable, "-c", _REGISTER_AFTER_USE, root], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


def test_structured_arrays_with_object_fields_hash_their_objects_not_their_addresses() -> None:
    def build() -> np.ndarray:
        return np.array([("".join(["ab", "c"]), [1, 2])], dtype=[("s", object), ("l", object)])

    first, second = build(), build()
    assert first[0]["s"] is not second[0]["s"]
    assert content_hash(first) == content_hash(second)
    assert content_hash(first) != content_hash(np.array([("abd", [1, 2])], dtype=first.dtype))


def test_aliasing_parts_are_what_they_were() -> None:
    from notebook_memo.hashing import aliasing_parts

    def q(*numbers: int) -> bytes:
        return b"".join(n.to_bytes(8, "little") for n in numbers)

    y: list[int] = [0]
    d: dict[str, int] = {}
    assert aliasing_parts([y, y]) == [b"alias" + q(8, 1, 8, 0)]
    assert aliasing_parts([1, d, 2, d]) == [b"alias" + q(8, 3, 8, 1)]
    assert aliasing_parts([(1, y), y]) == [b"alias" + q(8, 1, 16, 0, 1)]
    assert aliasing_parts([y, [0]]) == aliasing_parts([1, "a", None]) == aliasing_parts([]) == []
    assert aliasing_parts([(y,), [0]]) == aliasing_parts([np.zeros(2), {"k": y}]) == []
