"""Content hashing: equal content, equal digest; anything that can change the answer, a new digest."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from notebook_memo import UnhashableArgument, register_hasher
from notebook_memo.hashing import content_hash


def h(value: object) -> bytes:
    return content_hash(value)


@pytest.mark.parametrize(
    "a, b",
    [
        (1, 1.0),
        (1, True),
        (0, False),
        ((1, 2), [1, 2]),
        ("1", 1),
        (b"a", "a"),
        (b"a", bytearray(b"a")),
        (None, 0),
        (0.0, -0.0),
        ({"a": 1}, {"a": 1.0}),
        ({1, 2}, frozenset({1, 2})),
        ([1, [2, 3]], [1, [2], 3]),
        (("ab", "c"), ("a", "bc")),
        (OrderedDict(a=1, b=2), OrderedDict(b=2, a=1)),
    ],
)
def test_distinct_values_have_distinct_digests(a: object, b: object) -> None:
    assert h(a) != h(b)


def test_dict_insertion_order_matters() -> None:
    assert h({"a": 1, "b": [2, 3]}) != h({"b": [2, 3], "a": 1})


def test_sets_hash_by_members_not_iteration_order() -> None:
    assert h({"x", "y", "z", 3.5}) == h({3.5, "z", "y", "x"})


def test_numpy_dtype_shape_and_content_are_part_of_the_digest() -> None:
    a = np.arange(12, dtype=np.int64)
    assert h(a) == h(np.arange(12, dtype=np.int64))
    assert h(a) != h(a.astype(np.int32))
    assert h(a) != h(a.reshape(3, 4))
    assert h(a) != h(a.astype(np.float64))
    b = a.copy()
    b[5] = -1
    assert h(a) != h(b)


def test_non_contiguous_array_hashes_like_its_contiguous_copy() -> None:
    a = np.arange(20, dtype=np.float64).reshape(4, 5)
    assert h(a[:, ::2]) == h(np.ascontiguousarray(a[:, ::2]))
    assert h(a.T) != h(a)


def test_object_arrays_hash_their_elements() -> None:
    a = np.array(["x", 1, None], dtype=object)
    assert h(a) == h(np.array(["x", 1, None], dtype=object))
    assert h(a) != h(np.array(["x", 2, None], dtype=object))


def test_pandas_columns_dtypes_and_index_are_part_of_the_digest() -> None:
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    assert h(df) == h(pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]}))
    assert h(df) != h(df.rename(columns={"a": "c"}))
    assert h(df) != h(df.astype({"a": "float64"}))
    assert h(df) != h(df.set_axis([10, 11, 12]))
    changed = df.copy()
    changed.loc[1, "b"] = "q"
    assert h(df) != h(changed)
    assert h(df["a"]) != h(df["a"].rename("z"))
    assert h(pd.Index([1, 2])) != h(pd.Index([1.0, 2.0]))


def test_pandas_categorical_and_nullable_columns() -> None:
    cat = pd.Series(["a", "b", "a"], dtype="category")
    assert h(cat) == h(pd.Series(["a", "b", "a"], dtype="category"))
    assert h(cat) != h(pd.Series(["a", "b", "b"], dtype="category"))
    nullable = pd.Series([1, None, 3], dtype="Int64")
    assert h(nullable) != h(pd.Series([1, 2, 3], dtype="Int64"))


@dataclasses.dataclass
class Point:
    x: float
    y: float


class Plain:
    def __init__(self, value: object) -> None:
        self.value = value


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self, a: int, b: int) -> None:
        self.a, self.b = a, b


def test_objects_hash_by_type_and_state() -> None:
    assert h(Point(1, 2)) == h(Point(1, 2))
    assert h(Point(1, 2)) != h(Point(2, 1))
    assert h(Plain(1)) == h(Plain(1))
    assert h(Plain(1)) != h(Plain(2))
    assert h(Slotted(1, 2)) == h(Slotted(1, 2))
    assert h(Slotted(1, 2)) != h(Slotted(1, 3))


def test_objects_of_different_classes_with_same_state_differ() -> None:
    class Other:
        def __init__(self, value: object) -> None:
            self.value = value

    assert h(Plain(1)) != h(Other(1))


def test_equal_objects_get_equal_digests_whatever_their_ids() -> None:
    digests = {h(Plain([i % 3])) for i in range(300)}
    assert len(digests) == 3


def test_self_referencing_structures_hash() -> None:
    a: list[object] = [1]
    a.append(a)
    b: list[object] = [1]
    b.append(b)
    assert h(a) == h(b)
    node = Plain(None)
    node.value = node
    assert isinstance(h(node), bytes)


def test_memo_key_replaces_the_state() -> None:
    class Model:
        def __init__(self, path: str, session: object) -> None:
            self.path, self.session = path, session

        def __memo_key__(self) -> object:
            return self.path

    assert h(Model("w.bin", threading.Lock())) == h(Model("w.bin", threading.Lock()))
    assert h(Model("w.bin", None)) != h(Model("v.bin", None))


def test_register_hasher_for_a_type_we_do_not_own() -> None:
    class Client:
        def __init__(self, url: str) -> None:
            self.url = url
            self.lock = threading.Lock()

    with pytest.raises(UnhashableArgument):
        h(Client("a"))
    register_hasher(Client, lambda c: c.url)
    assert h(Client("a")) == h(Client("a"))
    assert h(Client("a")) != h(Client("b"))


@pytest.mark.parametrize(
    "value, what",
    [
        (threading.Lock(), "lock"),
        ((x for x in range(3)), "generator"),
        (open(__file__), "file"),
    ],
)
def test_unhashable_values_raise_a_clear_error(value: object, what: str) -> None:
    with pytest.raises(UnhashableArgument) as info:
        content_hash({"inner": [1, value]}, "argument 'config'")
    message = str(info.value)
    assert "argument 'config'['inner'][1]" in message
    assert "ignore=" in message and "__memo_key__" in message and "register_hasher" in message
    if hasattr(value, "close"):
        value.close()


def test_functions_hash_by_code_not_identity() -> None:
    def make(k: int):  # type: ignore[no-untyped-def]
        return lambda x: x + k

    assert h(make(1)) == h(make(1))
    assert h(make(1)) != h(make(2))
    assert h(lambda x: x + 1) != h(lambda x: x + 2)
    assert h(np.mean) == h(np.mean)
    assert h(np.mean) != h(np.median)
    assert h(len) != h(abs)


def test_modules_hash_by_name() -> None:
    assert h(np) == h(sys.modules["numpy"])
    assert h(np) != h(pd)


_SEED_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from notebook_memo.hashing import content_hash
value = {"s": {"alpha", "beta", "gamma", 7, 2.5}, "d": {"k%d" % i: i for i in range(20)},
         "f": frozenset({("a", 1), ("b", 2)}), "arr": np.arange(10.0), "t": (None, True, b"x")}
print(content_hash(value).hex())
"""


def test_digest_is_stable_across_processes_and_hash_seeds() -> None:
    root = str(Path(__file__).resolve().parent.parent)
    digests = set()
    for seed in ("0", "1", "12345", "random"):
        out = subprocess.run([sys.executable, "-c", _SEED_SCRIPT, root], capture_output=True, text=True,
                             env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"}, check=True)
        digests.add(out.stdout.strip())
    assert len(digests) == 1
