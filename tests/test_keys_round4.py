"""Keys and code fingerprints, fourth round: code that a class's field tables or annotations hold
(a dataclass field's metadata, an ``Annotated`` validator object) counts in the key with what it reads;
a user module's ``__getattr__`` and ``__dir__`` count in its key, and one answering every name does not
break the call; a class method looked up anew on each access is not taken for a rebinding."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

from tests.conftest import RUNS_SETUP, Shell, run_kernel
from tests.test_concurrent_runs import GATE

# -- code held by field tables and annotations -------------------------------------------------

_SCALE = """
import dataclasses
from typing import Annotated

@dataclasses.dataclass(frozen=True)
class Scale:
    '''An annotation object holding a function, as pydantic's AfterValidator does.'''
    func: object
"""


def test_an_edited_lambda_in_a_dataclass_field_metadata_is_a_miss(shell: Shell) -> None:
    shell.run(RUNS_SETUP)
    shell.run("""
        import dataclasses
        @dataclasses.dataclass
        class C:
            x: int = dataclasses.field(default=0, metadata={"enc": lambda v: v * 2})
        @memo
        def encode(x):
            ran("encode")
            return dataclasses.fields(C)[0].metadata["enc"](C(x).x)
    """)
    assert shell.run("encode(3)") == 6
    assert shell.run("encode(3)") == 6
    shell.run("""
        @dataclasses.dataclass
        class C:
            x: int = dataclasses.field(default=0, metadata={"enc": lambda v: v * 5})
    """)
    assert shell.run("encode(3)") == 15
    assert shell["RUNS"]["encode"] == 2


def test_a_global_read_by_a_dataclass_field_metadata_function_is_keyed(shell: Shell) -> None:
    shell.run(RUNS_SETUP)
    shell.run("""
        import dataclasses
        K = 2
        @dataclasses.dataclass
        class C:
            x: int = dataclasses.field(default=0, metadata={"enc": lambda v: v * K})
        @memo
        def encode(x):
            ran("encode")
            return dataclasses.fields(C)[0].metadata["enc"](C(x).x)
    """)
    assert shell.run("encode(3)") == 6
    assert shell.run("encode(3)") == 6
    shell.run("K = 5")
    assert shell.run("encode(3)") == 15
    assert shell["RUNS"]["encode"] == 2


def test_an_edited_lambda_in_an_annotated_validator_is_a_miss(shell: Shell) -> None:
    shell.run(RUNS_SETUP)
    shell.run(_SCALE)
    shell.run("""
        class Model:
            x: Annotated[int, Scale(lambda v: v * 2)]
        @memo
        def validate(x):
            ran("validate")
            return Model.__annotations__["x"].__metadata__[0].func(x)
    """)
    assert shell.run("validate(3)") == 6
    assert shell.run("validate(3)") == 6
    shell.run("""
        class Model:
            x: Annotated[int, Scale(lambda v: v * 5)]
    """)
    assert shell.run("validate(3)") == 15
    assert shell["RUNS"]["validate"] == 2


def test_an_edited_named_validator_and_its_global_are_keyed(shell: Shell) -> None:
    shell.run(RUNS_SETUP)
    shell.run(_SCALE)
    shell.run("""
        K = 1
        def scale(v): return v * 2 * K
        class Model:
            x: Annotated[int, Scale(scale)]
        @memo
        def validate(model, x):
            ran("validate")
            return model.__annotations__["x"].__metadata__[0].func(x)
    """)
    assert shell.run("validate(Model, 3)") == 6
    assert shell.run("validate(Model, 3)") == 6
    shell.run("""
        def scale(v): return v * 5 * K
        class Model:
            x: Annotated[int, Scale(scale)]
    """)
    assert shell.run("validate(Model, 3)") == 15
    shell.run("K = 2")
    assert shell.run("validate(Model, 3)") == 30
    assert shell["RUNS"]["validate"] == 3


def test_a_field_metadata_lambda_edit_is_a_miss_after_a_restart_and_the_same_code_hits(tmp_path: Path) -> None:
    cache = tmp_path / "cache"

    def kernel(factor: int, seed: int) -> dict[str, object]:
        return run_kernel([RUNS_SETUP, f"""
            import dataclasses
            @dataclasses.dataclass
            class C:
                x: int = dataclasses.field(default=0, metadata={{"enc": lambda v: v * {factor}}})
            @memo
            def encode(x):
                ran("encode")
                return dataclasses.fields(C)[0].metadata["enc"](C(x).x)
            OUT["value"] = encode(3)
            OUT["runs"] = RUNS.get("encode", 0)
        """], cache, seed=seed)

    assert kernel(2, seed=1) == {"value": 6, "runs": 1, "_warnings": []}
    assert kernel(2, seed=2)["runs"] == 0  # the same code in another process: a hit
    edited = kernel(5, seed=3)
    assert (edited["value"], edited["runs"]) == (15, 1)


# -- a module's __getattr__ ----------------------------------------------------------------------

_LAZY = """
def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    return lambda x: x * {factor}
"""


def test_an_edited_module_getattr_of_a_module_argument_is_a_miss(shell: Shell, tmp_path: Path) -> None:
    (tmp_path / "lazyops.py").write_text(_LAZY.format(factor=2))
    shell.run(RUNS_SETUP)
    shell.run(f"""
        import importlib, sys
        sys.path.insert(0, {str(tmp_path)!r})
        import lazyops
        @memo
        def use(mod, x):
            ran("use")
            return mod.double(x)
    """)
    try:
        assert shell.run("use(lazyops, 3)") == 6
        assert shell.run("use(lazyops, 3)") == 6
        (tmp_path / "lazyops.py").write_text(_LAZY.format(factor=5))
        shell.run("importlib.reload(lazyops)")
        assert shell.run("use(lazyops, 3)") == 15
        assert shell["RUNS"]["use"] == 2
    finally:
        shell.run(f"sys.path.remove({str(tmp_path)!r}); sys.modules.pop('lazyops', None)")


def test_a_run_time_module_with_a_new_getattr_is_a_miss(shell: Shell) -> None:
    shell.run(RUNS_SETUP)
    shell.run("""
        import types
        m = types.ModuleType("m")
        def ga(name):
            if name.startswith("__"):
                raise AttributeError(name)
            return lambda x: x * 2
        m.__getattr__ = ga
        @memo
        def use(mod, x):
            ran("use")
            return mod.double(x)
    """)
    assert shell.run("use(m, 3)") == 6
    assert shell.run("use(m, 3)") == 6
    shell.run("m.__dir__ = lambda: ['double']")  # a __dir__ set or changed: a change too
    assert shell.run("use(m, 3)") == 6
    shell.run("""
        def ga(name):
            if name.startswith("__"):
                raise AttributeError(name)
            return lambda x: x * 5
        m.__getattr__ = ga
    """)
    assert shell.run("use(m, 3)") == 15
    assert shell["RUNS"]["use"] == 3


def test_a_module_whose_getattr_answers_every_name_is_keyed_and_cached(shell: Shell) -> None:
    shell.run(RUNS_SETUP)
    shell.run("""
        import types
        m = types.ModuleType("anyname")
        m.__getattr__ = lambda name: (lambda x: x * 2)
        @memo
        def use(mod, x):
            ran("use")
            return mod.double(x)
    """)
    assert shell.run("use(m, 3)") == 6
    assert shell.run("use(m, 3)") == 6
    assert shell["RUNS"]["use"] == 1


def test_a_module_whose_getattr_answers_every_name_works_as_a_global_and_in_a_memo_cell(shell: Shell) -> None:
    shell.run("import notebook_memo; notebook_memo.load_ipython_extension(get_ipython())")
    shell.run(RUNS_SETUP)
    shell.run("""
        import types
        m = types.ModuleType("anyname")
        m.__getattr__ = lambda name: (lambda x: x * 2)
        MODS = {"m": m}
        @memo
        def use(x):
            ran("use")
            return MODS["m"].double(x)
    """)
    assert shell.run("use(3)") == 6
    assert shell.run("use(3)") == 6
    assert shell["RUNS"]["use"] == 1
    shell.run("%%memo\ny = m.double(4)\nran('cell')")
    shell.run("%%memo\ny = m.double(4)\nran('cell')")
    assert (shell["y"], shell["RUNS"]["cell"]) == (8, 1)


# -- a class method read by a body that also reads mutable data ---------------------------------


def unwarned(calls: Callable[[], list[object]]) -> list[object]:
    """Return what ``calls`` returns, failing if it warned anything."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = calls()
    assert [str(w.message) for w in caught] == []
    return results


def test_a_class_method_with_mutable_global_data_is_cached_without_a_warning(shell: Shell) -> None:
    shell.run(RUNS_SETUP)
    shell.run("""
        class P:
            def __init__(self, x):
                self.x = self.conv(x)
            @classmethod
            def conv(cls, v):
                return v * 2
        WEIGHTS = [1, 2, 3]
        @memo
        def use(x):
            ran("use")
            return P(x).x * WEIGHTS[0]
    """)
    assert unwarned(lambda: [shell.run("use(3)") for _ in range(3)]) == [6, 6, 6]
    assert shell["RUNS"]["use"] == 1
    shell.run("WEIGHTS[0] = 10")
    assert shell.run("use(3)") == 60


def test_an_enum_missing_class_method_with_a_mutable_global_is_cached(shell: Shell) -> None:
    shell.run(RUNS_SETUP)
    shell.run("""
        import enum
        SEEN = {}
        class Color(enum.Enum):
            RED = "red"
            BLUE = "blue"
            @classmethod
            def _missing_(cls, value):
                return cls.RED
        @memo
        def parse(text):
            ran("parse")
            return Color(text).value, SEEN.get(text)
    """)
    assert unwarned(lambda: [shell.run("parse('green')") for _ in range(3)]) == [("red", None)] * 3
    assert shell["RUNS"]["parse"] == 1


def test_a_function_a_module_makes_anew_on_each_lookup_is_cached(shell: Shell, tmp_path: Path) -> None:
    (tmp_path / "lazyfresh.py").write_text(_LAZY.format(factor=2))
    shell.run(RUNS_SETUP)
    shell.run(f"""
        import importlib, sys
        sys.path.insert(0, {str(tmp_path)!r})
        import lazyfresh
        @memo
        def use(x):
            ran("use")
            return lazyfresh.double(x)
    """)
    try:
        assert unwarned(lambda: [shell.run("use(3)") for _ in range(3)]) == [6, 6, 6]
        assert shell["RUNS"]["use"] == 1
        (tmp_path / "lazyfresh.py").write_text(_LAZY.format(factor=5))
        shell.run("importlib.reload(lazyfresh)")
        assert shell.run("use(3)") == 15
    finally:
        shell.run(f"sys.path.remove({str(tmp_path)!r}); sys.modules.pop('lazyfresh', None)")


def test_a_class_method_rebound_by_another_thread_while_the_body_runs_is_still_not_stored(tmp_path: Path) -> None:
    define = GATE + """
WEIGHTS = [1]

class P:
    @classmethod
    def conv(cls, v):
        return v * 2

@memo
def f(x):
    GATE.entered.set()
    GATE.go.wait()
    return P.conv(x) * WEIGHTS[0]
"""
    race = """
found = []
t = threading.Thread(target=lambda: found.append(f(3)))
t.start()
GATE.entered.wait()
P.conv = classmethod(lambda cls, v: v * 100)
GATE.go.set()
t.join()
OUT["raced"] = found[0]
"""
    first = run_kernel([define, race], tmp_path / "cache", seed=1)
    assert first["raced"] == 300
    assert any("P.conv" in w and "bound anew" in w for w in first["_warnings"]), first["_warnings"]  # type: ignore[attr-defined]
    alone = run_kernel([define, "GATE.go.set()\nOUT['r'] = f(3)"], tmp_path / "cache", seed=2)
    assert alone["r"] == 6


# -- a copyreg reducer of the user's that leaves out what the instance holds ---------------------


def test_an_attribute_a_copyreg_reducer_leaves_out_is_keyed(shell: Shell) -> None:
    shell.run(RUNS_SETUP)
    shell.run("""
        import copyreg
        class P:
            def __init__(self, k):
                self.k = k
        copyreg.pickle(P, lambda p: (P, (2,)))
        p = P(2)
        @memo
        def use(p, x):
            ran("use")
            return p.k * x
    """)
    try:
        assert shell.run("use(p, 3)") == 6
        assert shell.run("use(P(2), 3)") == 6
        shell.run("p.k = 5")
        assert shell.run("use(p, 3)") == 15
        assert shell["RUNS"]["use"] == 2
    finally:
        shell.run("del copyreg.dispatch_table[P]")
