"""Neighbouring values that must key apart (no false hit), and equal values that must key alike in
every process (no false miss): class annotations and fields, modules, code objects, array subclasses,
NaN signs, set subclasses, padding bytes."""

from __future__ import annotations

import dataclasses
import importlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from notebook_memo.hashing import content_hash
from tests.conftest import Shell

ROOT = Path(__file__).resolve().parent.parent


def digests_across_seeds(script: str) -> set[str]:
    """Run ``script`` (which prints digests) in fresh processes under three hash seeds; return their outputs."""
    outputs = set()
    for seed in ("0", "1", "4242"):
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                             env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
        outputs.add(out.stdout.strip())
    return outputs


# -- class annotations and field metadata -----------------------------------------------------


def test_a_dataclass_field_type_edit_is_a_miss() -> None:
    @dataclasses.dataclass
    class Row:
        price: int

    before = content_hash(Row)

    @dataclasses.dataclass  # type: ignore[no-redef]
    class Row:
        price: float

    assert content_hash(Row) != before


def test_a_dataclass_field_default_or_option_edit_is_a_miss() -> None:
    @dataclasses.dataclass
    class Row:
        price: int = 1

    first = content_hash(Row)

    @dataclasses.dataclass  # type: ignore[no-redef]
    class Row:
        price: int = 2

    second = content_hash(Row)

    @dataclasses.dataclass(frozen=True)  # type: ignore[no-redef]
    class Row:
        price: int = 2

    assert len({first, second, content_hash(Row)}) == 3


def test_a_plain_class_annotation_edit_is_a_miss() -> None:
    class Schema:
        price: int

    before = content_hash(Schema)

    class Schema:  # type: ignore[no-redef]
        price: float

    assert content_hash(Schema) != before


def test_a_pydantic_default_edit_is_a_miss() -> None:
    pydantic = importlib.import_module("pydantic")

    class Config(pydantic.BaseModel):
        lr: float = 0.1

    before = content_hash(Config)

    class Config(pydantic.BaseModel):  # type: ignore[no-redef]
        lr: float = 0.5

    assert content_hash(Config) != before


def test_a_pydantic_field_type_edit_is_a_miss() -> None:
    pydantic = importlib.import_module("pydantic")

    class Config(pydantic.BaseModel):
        lr: float = 0

    before = content_hash(Config)

    class Config(pydantic.BaseModel):  # type: ignore[no-redef]
        lr: int = 0

    assert content_hash(Config) != before


def test_a_function_value_annotation_edit_is_a_miss() -> None:
    def handler(x: int) -> Any:
        return x

    before = content_hash(handler)

    def handler(x: str) -> Any:  # type: ignore[no-redef]
        return x

    assert content_hash(handler) != before


_ANNOTATED_CLASSES = """
import dataclasses, typing
import pydantic
from notebook_memo.hashing import content_hash

class Marker:
    pass

@dataclasses.dataclass(frozen=True)
class Row:
    name: str
    tags: frozenset = frozenset({"red", "green", "blue", "cyan"})
    kind: typing.Literal["a", "b"] = "a"
    extra: typing.Annotated[float, Marker()] = 1.0
    items: list = dataclasses.field(default_factory=list, metadata={"unit": frozenset({"m", "km", "cm", "mm"})})
    maybe: int | None = None

class Config(pydantic.BaseModel):
    lr: float = pydantic.Field(0.1, gt=0)
    names: set[str] = {"x", "y", "z", "w"}
    more: set[str] = pydantic.Field(default={"p", "q", "r", "s"}, description="d")
    hook: typing.Callable[[int], str] | None = None

def typed(x: typing.Dict[str, Marker], y: "Row" = None) -> frozenset:
    return x

print(content_hash(Row).hex(), content_hash(Config).hex(), content_hash(typed).hex())
"""


def test_annotations_and_fields_key_alike_under_every_hash_seed() -> None:
    assert len(digests_across_seeds(_ANNOTATED_CLASSES)) == 1


# -- modules passed as values ------------------------------------------------------------------


def _load(path: Path, text: str) -> Any:
    import importlib.util

    path.write_text(text)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def test_a_user_module_argument_edited_and_reloaded_is_a_miss(tmp_path: Path) -> None:
    try:
        first = content_hash(_load(tmp_path / "nm_expcfg.py",
                                   "LR = 0.1\ndef schedule(step):\n    return LR / (1 + step)\n"))
        code_edit = content_hash(_load(tmp_path / "nm_expcfg.py",
                                       "LR = 0.1\ndef schedule(step):\n    return LR / (1 + step) ** 2\n"))
        data_edit = content_hash(_load(tmp_path / "nm_expcfg.py",
                                       "LR = 0.5\ndef schedule(step):\n    return LR / (1 + step) ** 2\n"))
    finally:
        sys.modules.pop("nm_expcfg", None)
    assert len({first, code_edit, data_edit}) == 3


def test_a_user_module_held_in_a_container_is_keyed_by_content(tmp_path: Path) -> None:
    try:
        module = _load(tmp_path / "nm_holder.py", "LR = 0.1\n")
        before = content_hash({"a": module})
        module.LR = 0.2
        assert content_hash({"a": module}) != before
    finally:
        sys.modules.pop("nm_holder", None)


def test_a_module_made_at_run_time_is_keyed_by_its_namespace() -> None:
    import types

    cfg = types.ModuleType("cfg")
    cfg.lr = 0.1  # type: ignore[attr-defined]
    before = content_hash(cfg)
    cfg.lr = 0.5  # type: ignore[attr-defined]
    assert content_hash(cfg) != before
    other = types.ModuleType("cfg")
    other.lr = 0.5  # type: ignore[attr-defined]
    assert content_hash(other) == content_hash(cfg)


def test_a_library_module_is_still_keyed_by_its_name() -> None:
    import json

    assert content_hash(json) == content_hash(json)
    assert content_hash([json]) != content_hash([dataclasses])


_MODULE_VALUE = """
import sys, types
from notebook_memo.hashing import content_hash
cfg = types.ModuleType("cfg")
cfg.names = {"red", "green", "blue", "cyan", "magenta"}
cfg.scale = lambda x: x * 2
print(content_hash(cfg).hex())
"""


def test_a_module_value_keys_alike_under_every_hash_seed() -> None:
    assert len(digests_across_seeds(_MODULE_VALUE)) == 1


def test_a_user_module_in_a_tuple_global_is_hashed_again_after_an_edit(tmp_path: Path) -> None:
    from notebook_memo import memo

    try:
        module = _load(tmp_path / "nm_tupled.py", "LR = 0.1\n")
        globals()["_MODULES"] = (module,)

        @memo(cache_dir=tmp_path / "cache")
        def rate() -> float:
            return float(_MODULES[0].LR)  # type: ignore[name-defined]  # noqa: F821

        assert rate() == 0.1
        module.LR = 0.2
        assert rate() == 0.2
    finally:
        sys.modules.pop("nm_tupled", None)
        globals().pop("_MODULES", None)


# -- code objects: what the running code does, all of it -----------------------------------------

_NESTED_TRY = """def parse(x):
    try:
        try: y = int(x); z = 10 // y
        except ValueError: return -1
    except Exception: return -2
    return z
"""
_SPLIT_TRY = """def parse(x):
    try:
        y = int(x)
        try: z = 10 // y
        except ValueError: return -1
    except Exception: return -2
    return z
"""
_EDITS = {
    "parameters swapped": ("def diff(a, b):\n    return a - b\n", "def diff(b, a):\n    return b - a\n", "diff"),
    "exception table": (_NESTED_TRY, _SPLIT_TRY, "parse"),
    "keyword-only": ("def f(a, b):\n    return a\n", "def f(a, *, b):\n    return a\n", "f"),
}


@pytest.mark.parametrize("edit", sorted(_EDITS))
def test_a_module_edited_on_disk_but_not_reloaded_keys_the_code_that_runs(tmp_path: Path, edit: str) -> None:
    import linecache

    from notebook_memo._fingerprint import own_fingerprint

    old, new, name = _EDITS[edit]
    try:
        running = getattr(_load(tmp_path / "nm_edited.py", old), name)
        (tmp_path / "nm_edited.py").write_text(new)  # edited on disk; the old code still runs
        linecache.clearcache()
        stale = own_fingerprint(running)[0]
        fresh = getattr(_load(tmp_path / "nm_edited.py", new), name)
        assert own_fingerprint(fresh)[0] != stale
    finally:
        sys.modules.pop("nm_edited", None)


def test_functions_differing_only_in_their_exception_table_key_apart() -> None:
    from notebook_memo._fingerprint import own_fingerprint

    first: dict[str, Any] = {}
    second: dict[str, Any] = {}
    exec(compile(_NESTED_TRY, "<cell>", "exec"), first)
    exec(compile(_SPLIT_TRY, "<cell>", "exec"), second)
    assert first["parse"].__code__.co_code == second["parse"].__code__.co_code
    assert own_fingerprint(first["parse"], by_code=True)[0] != own_fingerprint(second["parse"], by_code=True)[0]
    assert content_hash(first["parse"]) != content_hash(second["parse"])


# -- array subclasses: their attributes are content ----------------------------------------------


def test_an_ndarray_subclass_attribute_is_part_of_the_key() -> None:
    np = importlib.import_module("numpy")

    class InfoArray(np.ndarray):  # numpy's documented pattern for arrays carrying metadata
        def __new__(cls, values: Any, unit: str | None = None) -> Any:
            obj = np.asarray(values).view(cls)
            obj.unit = unit
            return obj

        def __array_finalize__(self, obj: Any) -> None:
            if obj is not None:
                self.unit = getattr(obj, "unit", None)

    metres, kilometres = InfoArray([1.0, 2.0], unit="m"), InfoArray([1.0, 2.0], unit="km")
    assert content_hash(metres) != content_hash(kilometres)
    assert content_hash(metres) == content_hash(InfoArray([1.0, 2.0], unit="m"))
    assert content_hash(metres) != content_hash(InfoArray([1.0, 3.0], unit="m"))


def test_a_masked_array_hard_mask_is_part_of_the_key() -> None:
    np = importlib.import_module("numpy")
    soft = np.ma.array([1, 2, 3], mask=[0, 1, 0])
    hard = np.ma.array([1, 2, 3], mask=[0, 1, 0], hard_mask=True)
    assert content_hash(soft) != content_hash(hard)
    assert content_hash(soft) == content_hash(np.ma.array([1, 2, 3], mask=[0, 1, 0]))
    assert content_hash(soft) != content_hash(np.ma.array([1, 2, 3], mask=[0, 0, 1]))
    assert content_hash(soft) != content_hash(np.ma.array([1, 2, 3], mask=[0, 1, 0], fill_value=7))


# -- NaN signs -----------------------------------------------------------------------------------


def test_a_negative_nan_keys_apart_from_a_positive_one() -> None:
    import math

    positive, negative = float("nan"), math.copysign(float("nan"), -1.0)
    assert content_hash(positive) != content_hash(negative)
    assert content_hash([positive]) != content_hash([negative])
    assert content_hash(complex(0.0, positive)) != content_hash(complex(0.0, negative))
    assert content_hash(-positive) == content_hash(negative)


def test_a_positive_nan_keeps_its_key() -> None:
    import xxhash

    assert content_hash(float("nan")) == xxhash.xxh3_128_digest(b"fnan")


# -- set subclasses and weak sets: order-free ----------------------------------------------------

_SET_SUBCLASSES = """
import weakref
from notebook_memo.hashing import content_hash

class Tags(set):
    pass

class Frozen(frozenset):
    pass

class Item:
    def __init__(self, name):
        self.name = name

words = ["red", "green", "blue", "cyan", "magenta", "yellow", "black", "white"]
tags = Tags(words)
tags.note = "colours"
items = [Item(w) for w in words]
print(content_hash(tags).hex(), content_hash(Frozen(words)).hex(), content_hash(weakref.WeakSet(items)).hex())
"""


def test_set_subclasses_and_weak_sets_key_alike_under_every_hash_seed() -> None:
    assert len(digests_across_seeds(_SET_SUBCLASSES)) == 1


def test_a_set_subclass_keys_by_its_class_items_and_attributes() -> None:
    class Tags(set):  # type: ignore[type-arg]
        pass

    plain = Tags({"a", "b"})
    noted = Tags({"a", "b"})
    noted.note = "x"  # type: ignore[attr-defined]
    assert content_hash(plain) == content_hash(Tags({"b", "a"}))
    assert content_hash(plain) != content_hash({"a", "b"})
    assert content_hash(plain) != content_hash(noted)
    assert content_hash(plain) != content_hash(Tags({"a", "c"}))


# -- padding bytes are not content -----------------------------------------------------------------


def _with_padding_set(array: Any, padding: list[int]) -> Any:
    """Return an equal array whose padding bytes (these offsets within each item) hold 0xAB."""
    np = importlib.import_module("numpy")
    raw = np.frombuffer(array.tobytes(), dtype=np.uint8).reshape(array.size, array.dtype.itemsize).copy()
    raw[:, padding] = 0xAB
    return np.frombuffer(raw.tobytes(), dtype=array.dtype).reshape(array.shape)


def _x87() -> bool:
    np = importlib.import_module("numpy")
    return bool(np.finfo(np.longdouble).nmant == 63 and np.dtype(np.longdouble).itemsize > 10)


def test_longdouble_padding_bytes_are_not_part_of_the_key() -> None:
    np = importlib.import_module("numpy")
    if not _x87():
        pytest.skip("long double has no padding here")
    size = np.dtype(np.longdouble).itemsize
    x = np.array([1.0, 2.0, 3.0], dtype=np.longdouble)
    y = _with_padding_set(x, list(range(10, size)))
    assert (x == y).all() and x.tobytes() != y.tobytes()
    assert content_hash(x) == content_hash(y)
    assert content_hash(x[::2]) == content_hash(y[::2])
    assert content_hash(x[1]) == content_hash(y[1])
    assert content_hash(x) != content_hash(x * 2)
    z = np.array([1 + 2j], dtype=np.clongdouble)
    assert content_hash(z) == content_hash(_with_padding_set(z, [*range(10, size), *range(size + 10, 2 * size)]))


def test_structured_padding_bytes_are_not_part_of_the_key() -> None:
    np = importlib.import_module("numpy")
    aligned = np.dtype([("a", "u1"), ("b", "f8")], align=True)
    s = np.zeros(3, aligned)
    s["a"], s["b"] = 1, [2.0, 3.0, 4.0]
    t = _with_padding_set(s, list(range(1, 8)))
    assert s.tobytes() != t.tobytes()
    assert content_hash(s) == content_hash(t)
    assert content_hash(s[0]) == content_hash(t[0])
    assert content_hash(s) != content_hash(_with_padding_set(s, [8]))  # a byte of b is content
    nested = np.dtype([("x", "u1"), ("inner", aligned, (2,))], align=True)
    n = np.zeros(2, nested)
    assert content_hash(n) == content_hash(_with_padding_set(n, [1, 2, 3, 4, 5, 6, 7, 9, 10, 11]))


def test_zero_padding_keeps_the_key_it_had() -> None:
    np = importlib.import_module("numpy")
    import xxhash

    s = np.zeros(2, np.dtype([("a", "u1"), ("b", "f8")], align=True))
    from notebook_memo.hashing._numpy import _array_head

    head, _ = _array_head(s)
    expected = head + len(s.tobytes()).to_bytes(8, "little") + s.tobytes()
    assert content_hash(s) == xxhash.xxh3_128_digest(expected)


def test_a_field_default_that_refuses_to_be_hashed_still_keys_its_class() -> None:
    pydantic = importlib.import_module("pydantic")

    class Stubborn:
        def __memo_key__(self) -> Any:
            raise RuntimeError("no key today")

        def __repr__(self) -> str:
            return "Stubborn()"

    class Config(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)
        other: Stubborn = Stubborn()

    assert content_hash(Config) == content_hash(Config)


def test_dtype_metadata_is_part_of_the_key() -> None:
    import numpy as np

    from notebook_memo.hashing import content_hash

    metres = np.zeros(3, dtype=np.dtype(float, metadata={"unit": "m"}))
    kilometres = np.zeros(3, dtype=np.dtype(float, metadata={"unit": "km"}))
    plain = np.zeros(3)
    assert len({content_hash(metres), content_hash(kilometres), content_hash(plain)}) == 3
    assert content_hash(plain) == content_hash(np.zeros(3, dtype=np.dtype(float, metadata={})))


def test_a_memo_key_that_raises_leaves_a_global_out_and_refuses_an_argument(shell: Shell) -> None:
    from notebook_memo import MemoWarning, UnhashableArgument

    shell.run("""
        from notebook_memo import memo
        class Broken:
            def __memo_key__(self):
                raise RuntimeError("boom")
        HELD = Broken()
        @memo
        def reads_global(x):
            return (x, HELD is not None)
        @memo
        def takes_it(x, thing):
            return x
    """)
    with pytest.warns(MemoWarning, match=r"__memo_key__\(\) raised RuntimeError: boom"):
        assert shell.run("reads_global(1)") == (1, True)
    with pytest.raises(UnhashableArgument, match="raised RuntimeError: boom"):
        shell["takes_it"](1, shell["HELD"])
