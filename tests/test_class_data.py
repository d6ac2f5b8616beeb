"""What a class holds besides its methods' code, and which class an object is of, in its keys.

An instance of a class whose cell was run again after the instance was made; a helper edited
on disk only in its annotations; dunder data on a class (``__match_args__``, ``__hash__ = None``);
enum members with attributes of their own. Each is keyed so that no answer is served after it
changed, and each is keyed alike after a restart when nothing changed.
"""

from __future__ import annotations

import enum
from pathlib import Path

from notebook_memo import memo
from tests.conftest import Shell, run_kernel

SETUP = """
from notebook_memo import memo
class _Runs(dict):
    def __memo_key__(self): return 'runs'
RUNS = _Runs()
def runs(): return RUNS.get('n', 0)
"""

# -- 1. an instance of a superseded class ------------------------------------------------------

SHAPE = """
class Shape:
    def __init__(self, w): self.w = w
"""

AREA = """
@memo
def area(s):
    RUNS['n'] = RUNS.get('n', 0) + 1
    return s.w ** 2 if isinstance(s, Shape) else None
"""


def test_an_instance_of_a_class_whose_cell_ran_again_is_another_key(shell: Shell) -> None:
    shell.run(SETUP)
    shell.run(SHAPE)
    shell.run("old = Shape(3)")
    shell.run(SHAPE)  # the class cell run again: `old` is of the class it replaced
    shell.run(AREA)
    assert shell.run("area(old)") is None
    assert shell.run("area(Shape(3))") == 9
    assert shell.run("runs()") == 2


def test_an_instance_of_a_superseded_class_is_not_served_after_a_restart(cache_dir: Path) -> None:
    stale = [SETUP, SHAPE, "sq = Shape(3)", SHAPE, AREA, "OUT['v'] = area(sq)\nOUT['runs'] = runs()"]
    fresh = [SETUP, SHAPE, "sq = Shape(3)", AREA, "OUT['v'] = area(sq)\nOUT['runs'] = runs()"]
    assert run_kernel(stale, cache_dir, seed=1) == {"v": None, "runs": 1, "_warnings": []}
    assert run_kernel(fresh, cache_dir, seed=2) == {"v": 9, "runs": 1, "_warnings": []}
    assert run_kernel(fresh, cache_dir, seed=3) == {"v": 9, "runs": 0, "_warnings": []}  # no false miss


def test_an_instance_whose_base_class_was_superseded_is_another_key(shell: Shell) -> None:
    shell.run(SETUP)
    shell.run(SHAPE)
    shell.run("class Square(Shape):\n    pass")
    shell.run("old = Square(3)")
    shell.run(SHAPE)  # Square (not run again) still derives from the Shape it replaced
    shell.run("class Square(Shape):\n    pass")
    shell.run(AREA)
    assert shell.run("area(old)") is None
    assert shell.run("area(Square(3))") == 9
    assert shell.run("runs()") == 2


def test_a_nested_class_run_again_and_a_class_held_by_another_name(shell: Shell) -> None:
    shell.run(SETUP)
    shell.run("class Outer:\n    class Inner:\n        def __init__(self, w): self.w = w")
    shell.run("old = Outer.Inner(3)")
    shell.run("class Outer:\n    class Inner:\n        def __init__(self, w): self.w = w")
    shell.run("@memo\ndef check(s):\n    RUNS['n'] = RUNS.get('n', 0) + 1\n    return isinstance(s, Outer.Inner)")
    assert shell.run("check(old)") is False
    assert shell.run("check(Outer.Inner(3))") is True
    # A class made in a function is not looked up (its name is in no namespace): an unchanged key.
    shell.run("def make():\n    class Local:\n        pass\n    return Local\nL1, L2 = make(), make()")
    assert shell.run("check(L1())") is False
    assert shell.run("check(L2())") is False
    assert shell.run("runs()") == 3


# -- 2. a helper edited on disk in its annotations only, not reloaded ----------------------------
# The annotations live on the function, not its code: the file's source compiles to the running code
# though its annotations are not the running ones.

CONVERT = """
import typing
@memo
def convert(v):
    RUNS['n'] = RUNS.get('n', 0) + 1
    kind = typing.get_type_hints(umod.cast)[WHICH]  # the helper's declared type decides the conversion
    return kind(v)
"""


def _annotation_edit_sessions(tmp_path: Path, cache_dir: Path, old: str, new: str, which: str) -> None:
    module = tmp_path / "src" / "umod.py"
    module.parent.mkdir()
    module.write_text(old)
    head = [SETUP, f"import sys\nsys.path.insert(0, {str(module.parent)!r})\nWHICH = {which!r}", "import umod"]
    record = "OUT['v'] = convert(2)\nOUT['runs'] = runs()"
    # Edited on disk after the import, not reloaded.
    edit = f"import pathlib\npathlib.Path({str(module)!r}).write_text({new!r})"
    assert run_kernel([*head, edit, CONVERT, record], cache_dir, seed=1) == {"v": "2", "runs": 1, "_warnings": []}
    # A restart imports the edited file: its answer, not the one the old annotation gave.
    restarted = run_kernel([*head, CONVERT, record], cache_dir, seed=2)
    assert (restarted["v"], restarted["runs"]) == (2.0, 1)
    assert all(w.startswith("StaleEntriesWarning") for w in restarted["_warnings"])  # the old entry is on disk
    assert run_kernel([*head, CONVERT, record], cache_dir, seed=3)["runs"] == 0


def test_a_parameter_annotation_edited_on_disk_is_not_keyed_by_the_new_file(tmp_path: Path, cache_dir: Path) -> None:
    _annotation_edit_sessions(tmp_path, cache_dir, "def cast(x: str):\n    return x\n",
                              "def cast(x: float):\n    return x\n", "x")


def test_a_return_annotation_edited_on_disk_is_not_keyed_by_the_new_file(tmp_path: Path, cache_dir: Path) -> None:
    _annotation_edit_sessions(tmp_path, cache_dir, "def cast(x) -> str:\n    return x\n",
                              "def cast(x) -> float:\n    return x\n", "return")


def test_a_method_annotation_edited_on_disk_is_not_keyed_by_the_new_file(tmp_path: Path, cache_dir: Path) -> None:
    old = "class Caster:\n    def cast(self, x: str):\n        return x\ncast = Caster.cast\n"
    _annotation_edit_sessions(tmp_path, cache_dir, old, old.replace("str", "float"), "x")


# -- 3. data a class holds under dunder names ------------------------------------------------

POINT = """
class P:
    __match_args__ = {}
    def __init__(self, x, y):
        self.x, self.y = x, y
"""

FIRST = """
@memo
def first(p):
    RUNS['n'] = RUNS.get('n', 0) + 1
    match p:
        case P(a, _):
            return a
"""


def test_match_args_edited_is_a_miss(shell: Shell) -> None:
    shell.run(SETUP)
    shell.run(POINT.format('("x", "y")'))
    shell.run(FIRST)
    assert shell.run("first(P(1, 2))") == 1
    assert shell.run("first(P(1, 2))") == 1
    shell.run(POINT.format('("y", "x")'))
    assert shell.run("first(P(1, 2))") == 2
    assert shell.run("runs()") == 2


def test_hash_none_and_array_priority_edited_are_misses(shell: Shell) -> None:
    shell.run(SETUP)
    shell.run("class K:\n    __array_priority__ = 1.0")
    shell.run("""
        @memo
        def probe(k):
            RUNS['n'] = RUNS.get('n', 0) + 1
            try:
                hash(k)
            except TypeError:
                return 'unhashable', type(k).__array_priority__
            return 'hashable', type(k).__array_priority__
    """)
    assert shell.run("probe(K())") == ("hashable", 1.0)
    shell.run("class K:\n    __array_priority__ = 1.0\n    __hash__ = None")
    assert shell.run("probe(K())") == ("unhashable", 1.0)
    shell.run("class K:\n    __array_priority__ = 15.0\n    __hash__ = None")
    assert shell.run("probe(K())") == ("unhashable", 15.0)
    assert shell.run("runs()") == 3


COMMON = """
import abc, dataclasses, enum, typing, collections
@dataclasses.dataclass
class D:
    x: int = 1
@dataclasses.dataclass(frozen=True, slots=True)
class DF:
    x: int = FIELD_DEFAULT
class NT(typing.NamedTuple):
    x: int
    y: int = 2
NT2 = collections.namedtuple("NT2", "a b")
class Colour(enum.Enum):
    RED = 1
class Perm(enum.IntFlag):
    R = 4
    W = 2
class Base(abc.ABC):
    @abc.abstractmethod
    def f(self): ...
class Impl(Base):
    def f(self): return 1
class TD(typing.TypedDict):
    a: int
"""

DESCRIBE = """
@memo
def describe(values):
    RUNS['n'] = RUNS.get('n', 0) + 1
    return [repr(v) for v in values]
"""

CALL_COMMON = ("OUT['v'] = describe([D(), DF(), NT(1), NT2(1, 2), Colour.RED, Perm.R | Perm.W, Impl(), D, DF, NT, NT2,"
               " Colour, Perm, Impl, TD])\nOUT['runs'] = runs()")


def test_common_classes_keep_their_keys_after_a_restart(cache_dir: Path) -> None:
    cells = [SETUP, "FIELD_DEFAULT = 1", COMMON, DESCRIBE, CALL_COMMON]
    assert run_kernel(cells, cache_dir, seed=1)["runs"] == 1
    assert run_kernel(cells, cache_dir, seed=2) == {**run_kernel(cells, cache_dir, seed=3), "runs": 0}
    edited = [SETUP, "FIELD_DEFAULT = 2", COMMON, DESCRIBE, CALL_COMMON]  # a dataclass field's default
    out = run_kernel(edited, cache_dir, seed=4)
    assert out["runs"] == 1 and "DF(x=2)" in out["v"]


# -- 4. enum members with attributes of their own ----------------------------------------------

UNIT = """
import enum
class Unit(enum.Enum):          # the enum HOWTO's pattern: __new__ sets _value_ and an attribute
    def __new__(cls, code, factor):
        member = object.__new__(cls)
        member._value_ = code
        member.factor = factor
        return member
    M = ("m", 1.0)
    KM = ("km", {})
"""


def test_an_enum_member_attribute_edited_is_a_miss(shell: Shell) -> None:
    shell.run(SETUP)
    shell.run(UNIT.format("1000.0"))
    shell.run("@memo\ndef to_metres(x, unit):\n    RUNS['n'] = RUNS.get('n', 0) + 1\n    return x * unit.factor")
    shell.run("@memo\ndef km(x):\n    RUNS['n'] = RUNS.get('n', 0) + 1\n    return x * Unit.KM.factor")
    assert shell.run("to_metres(2, Unit.KM), to_metres(2, Unit.KM), km(2), km(2)") == (2000.0, 2000.0, 2000.0, 2000.0)
    shell.run(UNIT.format("1609.0"))  # the class cell edited (a wrong factor fixed) and run again
    assert shell.run("to_metres(2, Unit.KM), km(2)") == (3218.0, 3218.0)
    assert shell.run("runs()") == 4


def test_a_global_enum_member_value_edited_is_a_miss(shell: Shell) -> None:
    # Members of a global_enum pickle by their name alone: their class and value must count all the same.
    shell.run(SETUP)
    mode = "import enum\n@enum.global_enum\nclass Mode(enum.IntFlag):\n    FAST = {}\n    SAFE = 8"
    shell.run(mode.format(1))
    shell.run("@memo\ndef level(m):\n    RUNS['n'] = RUNS.get('n', 0) + 1\n    return int(m)")
    assert shell.run("level(FAST), level(FAST)") == (1, 1)
    shell.run(mode.format(2))
    assert shell.run("level(FAST)") == 2
    assert shell.run("runs()") == 2


ENUMS = """
import enum, http, re
class Planet(enum.Enum):
    EARTH = (5.97e24, 6.37e6)
    MARS = (6.42e23, 3.39e6)
    def __init__(self, mass, radius):
        self.mass, self.radius = mass, radius
class Perm(enum.IntFlag):
    R = 4
    W = 2
"""


def test_enum_members_keep_their_keys_after_a_restart(cache_dir: Path) -> None:
    call = ("OUT['v'] = describe([Unit.KM, Planet.MARS, Perm.R | Perm.W, Perm.R, http.HTTPStatus.OK, re.I | re.M])"
            "\nOUT['runs'] = runs()")
    cells = [SETUP, UNIT.format("1000.0"), ENUMS, DESCRIBE, call]
    assert run_kernel(cells, cache_dir, seed=1)["runs"] == 1
    assert run_kernel(cells, cache_dir, seed=2)["runs"] == 0
    assert run_kernel([SETUP, UNIT.format("1609.0"), *cells[2:]], cache_dir, seed=3)["runs"] == 1


class _Lang(enum.Enum):
    EN = "en"

    def __init__(self, code: str) -> None:
        self.aliases = [code]


def test_a_list_held_by_an_enum_member_changed_in_place_is_a_miss() -> None:
    @memo
    def names() -> list[str]:
        return [alias for member in _Lang for alias in member.aliases]

    assert names() == names() == ["en"]
    _Lang.EN.aliases.append("english")
    try:
        assert names() == ["en", "english"]
        assert (names.cache_info().hits, names.cache_info().misses) == (1, 2)
    finally:
        _Lang.EN.aliases.remove("english")
