"""Neighbouring values that must key apart (no false hit), and equal values that must key alike in
every process (no false miss): class annotations and fields, modules, code objects, array subclasses,
NaN signs, set subclasses, padding bytes."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from notebook_memo.hashing import content_hash

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
    pydantic = pytest.importorskip("pydantic")

    class Config(pydantic.BaseModel):
        lr: float = 0.1

    before = content_hash(Config)

    class Config(pydantic.BaseModel):  # type: ignore[no-redef]
        lr: float = 0.5

    assert content_hash(Config) != before


def test_a_pydantic_field_type_edit_is_a_miss() -> None:
    pydantic = pytest.importorskip("pydantic")

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
