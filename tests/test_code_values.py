"""Code reached through data is code: functions passed as values key by what they read."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Shell, run_kernel

SETUP = """
import functools
from notebook_memo import memo
class _Runs(dict):
    def __memo_key__(self): return 'runs'
RUNS = _Runs()
SCALE = 10
def helper(v):
    return v + 1
"""

APPLY = """
@memo
def apply(fn, x):
    RUNS['n'] = RUNS.get('n', 0) + 1
    return fn(x)
"""


@pytest.fixture
def nb(shell: Shell) -> Shell:
    shell.run(SETUP)
    shell.run(APPLY)
    return shell


def runs(shell: Shell) -> int:
    return int(shell["RUNS"].get("n", 0))


def memo_use(nb: Shell, returns: str, params: str = "x") -> None:
    """Define a memoized ``use(params)`` that counts its runs in RUNS and returns ``returns``."""
    nb.run(f"@memo\ndef use({params}):\n    RUNS['n'] = RUNS.get('n', 0) + 1\n    return {returns}")


def call_twice_then_edit(nb: Shell, call: str, edit: str) -> None:
    """Call, call again (a hit), run the edit cell, call again: the last call must recompute."""
    nb.run(f"first = {call}")
    nb.run(f"again = {call}")
    assert runs(nb) == 1
    nb.run(edit)
    nb.run(f"edited = {call}")
    assert runs(nb) == 2, "an edit of what the function reads served the old answer"
    assert nb["edited"] != nb["first"]


# -- 1. functions and lambdas passed as arguments -----------------------------------------


def test_argument_function_global_edit_is_a_miss(nb: Shell) -> None:
    nb.run("def normalise(v):\n    return v / SCALE")
    call_twice_then_edit(nb, "apply(normalise, 5)", "SCALE = 20")


def test_argument_function_helper_edit_is_a_miss(nb: Shell) -> None:
    nb.run("def normalise(v):\n    return helper(v) * 2")
    call_twice_then_edit(nb, "apply(normalise, 5)", "def helper(v):\n    return v + 2")


def test_argument_lambda_global_edit_is_a_miss(nb: Shell) -> None:
    call_twice_then_edit(nb, "apply(lambda v: v / SCALE, 5)", "SCALE = 5")


def test_argument_function_unchanged_rerun_is_a_hit(nb: Shell) -> None:
    nb.run("def normalise(v):\n    return helper(v) / SCALE")
    nb.run("apply(normalise, 5)")
    nb.run("SCALE = 10")
    nb.run("def helper(v):\n    return v + 1")
    nb.run("def normalise(v):\n    return helper(v) / SCALE")
    nb.run("apply(normalise, 5)")
    nb.run("apply(lambda v: v / SCALE, 5)")
    nb.run("apply(lambda v: v / SCALE, 5)")
    assert runs(nb) == 2


def test_function_reaching_itself_through_a_container_is_hashed(nb: Shell) -> None:
    nb.run("def loop(v):\n    return v if v < 1 else OPS['loop'](v - 1)\nOPS = {'loop': loop}")
    nb.run("apply(loop, 3)")
    nb.run("apply(loop, 3)")
    assert runs(nb) == 1


def test_argument_function_key_is_stable_across_restarts(cache_dir: Path) -> None:
    record = "v = apply(normalise, 5)\nw = apply(lambda v: helper(v) / SCALE, 5)\nOUT['runs'] = runs()"
    cells = [SETUP + "def runs(): return RUNS.get('n', 0)", APPLY,
             "def normalise(v):\n    return helper(v) / SCALE", record]
    assert run_kernel(cells, cache_dir, seed=1)["runs"] == 2
    assert run_kernel(cells, cache_dir, seed=2)["runs"] == 0
    edited = [*cells[:2], "SCALE = 3", *cells[2:]]
    assert run_kernel(edited, cache_dir, seed=3)["runs"] == 2


def test_a_memoized_function_passed_as_an_argument_is_keyed_by_its_code(nb: Shell) -> None:
    nb.run("@memo\ndef normalise(v):\n    return helper(v) * 2")
    call_twice_then_edit(nb, "apply(normalise, 5)", "def helper(v):\n    return v + 2")
    nb.run("half = functools.partial(normalise)")
    nb.run("apply(half, 5)")  # inside a partial too: keyed, never unhashable


def test_a_function_default_of_an_argument_function_is_followed(nb: Shell) -> None:
    nb.run("def inner(v):\n    return v / SCALE\ndef outer(v, f=inner, t=(inner,)):\n    return f(v) + t[0](v)")
    call_twice_then_edit(nb, "apply(outer, 5)", "SCALE = 20")


def test_a_function_used_as_a_value_is_not_kept_alive_by_the_cache(nb: Shell) -> None:
    nb.run("import gc, weakref\ndef normalise(v):\n    return v / SCALE\napply(normalise, 5)\n"
           "gone = weakref.ref(normalise)\ndel normalise")
    nb.run("gc.collect()\nalive = gone() is not None")
    assert nb["alive"] is False


# -- 2. partials, bound methods, callables in containers ----------------------------------


def test_partial_argument_helper_edit_is_a_miss(nb: Shell) -> None:
    nb.run("def scaled(v, k):\n    return helper(v) * k")
    call_twice_then_edit(nb, "apply(functools.partial(scaled, k=3), 5)", "def helper(v):\n    return v - 1")


def test_partial_global_helper_edit_is_a_miss(nb: Shell) -> None:
    nb.run("def scaled(v, k):\n    return helper(v) * k\nTRIPLE = functools.partial(scaled, k=3)")
    memo_use(nb, "TRIPLE(x)")
    call_twice_then_edit(nb, "use(5)", "def helper(v):\n    return v - 1")


def test_bound_method_argument_edit_is_a_miss(nb: Shell) -> None:
    nb.run("class Model:\n    def __init__(self, w):\n        self.w = w\n"
           "    def predict(self, v):\n        return helper(v) * self.w\nmodel = Model(2)")
    call_twice_then_edit(nb, "apply(model.predict, 5)", "def helper(v):\n    return v * 10")
    nb.run("model.w = 3")
    nb.run("apply(model.predict, 5)")
    assert runs(nb) == 3


def test_global_container_of_functions_edit_is_a_miss(nb: Shell) -> None:
    nb.run("def scale_fn(v):\n    return v * SCALE\nOPS = {'scale': scale_fn}")
    memo_use(nb, "OPS[name](x)", "name, x")
    call_twice_then_edit(nb, "use('scale', 5)", "SCALE = 7")


def test_argument_container_of_functions_edit_is_a_miss(nb: Shell) -> None:
    nb.run("def scale_fn(v):\n    return helper(v) * 2")
    memo_use(nb, "ops['scale'](x)", "ops, x")
    call_twice_then_edit(nb, "use({'scale': scale_fn}, 5)", "def helper(v):\n    return v + 5")


# -- 3. helpers wrapped by decorators -------------------------------------------------------


def test_lru_cache_helper_body_edit_is_a_miss(nb: Shell) -> None:
    cached = "@functools.lru_cache(maxsize=None)\ndef lookup(v):\n    return v * {}"
    nb.run(cached.format(2))
    memo_use(nb, "lookup(x)")
    call_twice_then_edit(nb, "use(5)", cached.format(3))


def test_cache_wrapped_argument_edit_is_a_miss(nb: Shell) -> None:
    cached = "@functools.cache\ndef lookup(v):\n    return helper(v) * {}"
    nb.run(cached.format(2))
    call_twice_then_edit(nb, "apply(lookup, 5)", cached.format(3))


def test_wraps_decorator_from_a_library_is_followed(nb: Shell, tmp_path: Path) -> None:
    # A decorator defined outside the user's code: only __wrapped__ leads to the body.
    nb.run("import contextlib\n"
           "@contextlib.contextmanager\ndef ctx(v):\n    yield v * SCALE")
    nb.run("@memo\ndef use(x):\n    RUNS['n'] = RUNS.get('n', 0) + 1\n    with ctx(x) as y:\n        return y")
    call_twice_then_edit(nb, "use(5)", "SCALE = 4")


# -- 4. attributes set on functions ---------------------------------------------------------


def test_function_attribute_change_is_a_miss(nb: Shell) -> None:
    nb.run("def cut(v):\n    return v > cut.threshold\ncut.threshold = 3")
    memo_use(nb, "cut(x)")
    call_twice_then_edit(nb, "use(4)", "cut.threshold = 5")


def test_argument_function_attribute_change_is_a_miss(nb: Shell) -> None:
    nb.run("def cut(v):\n    return v > cut.threshold\ncut.threshold = 3")
    call_twice_then_edit(nb, "apply(cut, 4)", "cut.threshold = 5")


def test_decorator_config_attribute_change_is_a_miss(nb: Shell) -> None:
    nb.run("def tagged(fn):\n    @functools.wraps(fn)\n    def inner(v):\n        return fn(v) * inner.factor\n"
           "    inner.factor = 1\n    return inner\n@tagged\ndef base(v):\n    return v")
    memo_use(nb, "base(x)")
    call_twice_then_edit(nb, "use(4)", "base.factor = 2")


# -- 5. user modules imported inside the function body --------------------------------------


@pytest.fixture
def user_module(tmp_path: Path) -> Iterator[Path]:
    module = tmp_path / "inner_import_mod.py"
    module.write_text("def f(x):\n    return x * 2\n")
    sys.path.insert(0, str(tmp_path))
    yield module
    sys.path.remove(str(tmp_path))
    sys.modules.pop("inner_import_mod", None)


@pytest.mark.parametrize("body", [
    "    import inner_import_mod\n    return inner_import_mod.f(x)",
    "    from inner_import_mod import f\n    return f(x)",
    "    import inner_import_mod as m\n    return m.f(x)",
], ids=["import", "from-import", "import-as"])
def test_module_imported_in_the_body_edit_is_a_miss(nb: Shell, user_module: Path, body: str) -> None:
    nb.run(f"@memo\ndef use(x):\n    RUNS['n'] = RUNS.get('n', 0) + 1\n{body}")
    nb.run("use(5)")
    nb.run("use(5)")
    assert runs(nb) == 1
    user_module.write_text("def f(x):\n    return x * 3\n")
    nb.run("import importlib, inner_import_mod\nimportlib.reload(inner_import_mod)")
    nb.run("v = use(5)")
    assert runs(nb) == 2 and nb["v"] == 15


def test_module_imported_in_the_body_across_restarts(user_module: Path, cache_dir: Path) -> None:
    cells = [SETUP, "@memo\ndef use(x):\n    RUNS['n'] = RUNS.get('n', 0) + 1\n"
             "    from inner_import_mod import f\n    return f(x)",
             f"import sys\nsys.path.insert(0, {str(user_module.parent)!r})",
             "OUT['v'] = use(5)\nOUT['runs'] = RUNS.get('n', 0)"]
    assert run_kernel(cells, cache_dir, seed=1) == {"v": 10, "runs": 1, "_warnings": []}
    assert run_kernel(cells, cache_dir, seed=2)["runs"] == 0
    user_module.write_text("def f(x):\n    return x * 3\n")
    out = run_kernel(cells, cache_dir, seed=3)
    assert out["runs"] == 1 and out["v"] == 15


# -- 6. methods of objects reached through values --------------------------------------------
# An object's class is code: its methods are keyed like helpers, with what they read.

MODEL = """
class Model:
    def __init__(self, w):
        self.w = w
    def prep(self, v):
        return helper(v)
    def predict(self, v):
        return self.prep(v) * self.w
    def __call__(self, v):
        return v * SCALE
model = Model(2)
"""


def test_callable_object_reading_a_changed_global_is_a_miss(nb: Shell) -> None:
    nb.run(MODEL)
    call_twice_then_edit(nb, "apply(model, 5)", "SCALE = 30")


def test_bound_method_reaching_a_helper_through_self_is_a_miss(nb: Shell) -> None:
    nb.run(MODEL)
    call_twice_then_edit(nb, "apply(model.predict, 5)", "def helper(v):\n    return v + 7")


def test_instance_argument_whose_method_reads_a_global_is_a_miss(nb: Shell) -> None:
    nb.run(MODEL)
    nb.run("@memo\ndef score(m, x):\n    RUNS['n'] = RUNS.get('n', 0) + 1\n    return m(x) + m.predict(x)")
    call_twice_then_edit(nb, "score(model, 5)", "SCALE = 40")
    nb.run("def helper(v):\n    return v - 100")
    nb.run("score(model, 5)")
    assert runs(nb) == 3


def test_global_instance_whose_method_reads_a_helper_is_a_miss(nb: Shell) -> None:
    nb.run(MODEL)
    memo_use(nb, "model.predict(x)")
    call_twice_then_edit(nb, "use(5)", "def helper(v):\n    return v * 9")


def test_inherited_method_reading_a_global_is_a_miss(nb: Shell) -> None:
    nb.run("class Base:\n    def __call__(self, v):\n        return v * SCALE\n"
           "class Child(Base):\n    def __init__(self):\n        self.k = 1\nchild = Child()")
    call_twice_then_edit(nb, "apply(child, 5)", "SCALE = 11")


def test_object_method_through_a_container_and_a_partial_is_a_miss(nb: Shell) -> None:
    nb.run(MODEL)
    memo_use(nb, "ops['m'](x)", "ops, x")
    call_twice_then_edit(nb, "use({'m': functools.partial(model.predict)}, 5)",
                         "def helper(v):\n    return v * 4")


def test_objects_with_unchanged_code_hit_across_redefinition(nb: Shell) -> None:
    nb.run(MODEL)
    nb.run("apply(model.predict, 5)\napply(model, 5)")
    nb.run(MODEL)  # the same class defined again, a new instance with equal state
    nb.run("apply(model.predict, 5)\napply(model, 5)")
    assert runs(nb) == 2


def test_object_keys_are_stable_across_restarts(cache_dir: Path) -> None:
    record = "a = apply(model.predict, 5)\nb = apply(model, 5)\nOUT['runs'] = RUNS.get('n', 0)"
    cells = [SETUP, APPLY, MODEL, record]
    assert run_kernel(cells, cache_dir, seed=1)["runs"] == 2
    assert run_kernel(cells, cache_dir, seed=2)["runs"] == 0
    edited = [SETUP, APPLY, MODEL, "def helper(v):\n    return v + 3", record]
    assert run_kernel(edited, cache_dir, seed=3)["runs"] == 2  # an object is keyed by its whole class


def test_a_class_used_as_a_value_is_not_kept_alive_by_the_cache(nb: Shell) -> None:
    nb.run("import gc, weakref\nclass Holder:\n    def get(self):\n        return Holder, SCALE\n"
           "    def up(self):\n        return super().__repr__()\n"
           "h = Holder()\napply(h.get, 5) if False else None\napply(h, 5) if False else None")
    nb.run("@memo\ndef peek(o):\n    return 1\npeek(h)\npeek(h.get)\ngone = weakref.ref(Holder)\ndel Holder, h")
    nb.run("gc.collect()\nalive = gone() is not None")
    assert nb["alive"] is False


# -- 7. functools.singledispatch --------------------------------------------------------------

DISPATCH = """
@functools.singledispatch
def fmt(v):
    return f"any {v}"
@fmt.register
def _(v: int):
    return v * SCALE
"""


def test_singledispatch_implementation_edit_is_a_miss(nb: Shell) -> None:
    nb.run(DISPATCH)
    memo_use(nb, "fmt(x)")
    call_twice_then_edit(nb, "use(5)", "@fmt.register\ndef _(v: int):\n    return v * SCALE + 1")
    nb.run("SCALE = 3")
    nb.run("use(5)")
    assert runs(nb) == 3


def test_singledispatch_new_registration_is_a_miss(nb: Shell) -> None:
    nb.run(DISPATCH)
    call_twice_then_edit(nb, "apply(fmt, 2.5)", "@fmt.register\ndef _(v: float):\n    return -v")


def test_singledispatch_repeated_call_is_a_hit(nb: Shell) -> None:
    nb.run(DISPATCH)
    memo_use(nb, "fmt(x)")
    nb.run("use(5)\nuse(5)\nuse('a')\nuse('a')\nuse(5)\napply(fmt, 5)\napply(fmt, 5)")
    assert runs(nb) == 3


# -- 8. modules imported by name at run time --------------------------------------------------


@pytest.mark.parametrize("body", [
    "    import importlib\n    return importlib.import_module('inner_import_mod').f(x)",
    "    from importlib import import_module\n    m = import_module('inner_import_mod')\n    return m.f(x)",
    "    return importlib.import_module('inner_import_mod').f(x)",
    "    return __import__('inner_import_mod').f(x)",
], ids=["importlib-in-body", "import_module", "importlib-global", "dunder-import"])
def test_module_imported_by_name_edit_is_a_miss(nb: Shell, user_module: Path, body: str) -> None:
    nb.run("import importlib")
    nb.run(f"@memo\ndef use(x):\n    RUNS['n'] = RUNS.get('n', 0) + 1\n{body}")
    nb.run("use(5)")
    nb.run("use(5)")
    assert runs(nb) == 1
    user_module.write_text("def f(x):\n    return x * 3\n")
    nb.run("import importlib, inner_import_mod\nimportlib.reload(inner_import_mod)")
    nb.run("v = use(5)")
    assert runs(nb) == 2 and nb["v"] == 15


# -- 9. neighbours: descriptors, class state, enums, dynamic module use ---------------------


@pytest.mark.parametrize("member", [
    "@property\n    def out(self):\n        return SCALE",
    "@functools.cached_property\n    def out(self):\n        return SCALE",
    "@staticmethod\n    def out():\n        return SCALE",
    "@classmethod\n    def out(cls):\n        return SCALE",
    "def _out(self, k):\n        return SCALE * k\n    out = functools.partialmethod(_out, 1)",
    "@functools.singledispatchmethod\n    def out(self, v):\n        return SCALE",
], ids=["property", "cached_property", "staticmethod", "classmethod", "partialmethod", "singledispatchmethod"])
def test_descriptor_of_an_argument_object_reading_a_global_is_a_miss(nb: Shell, member: str) -> None:
    nb.run(f"class Holder:\n    {member}\nh = Holder()")
    nb.run("@memo\ndef peek(o):\n    RUNS['n'] = RUNS.get('n', 0) + 1\n    return 1")
    call_twice_then_edit(nb, "peek(h) + SCALE", "SCALE = 12")


def test_partialmethod_arguments_are_in_the_key(nb: Shell) -> None:
    nb.run("class Holder:\n    def _out(self, k):\n        return k\n    out = functools.partialmethod(_out, 1)\n"
           "h = Holder()")
    memo_use(nb, "o.out()", "o")
    call_twice_then_edit(nb, "use(h)", "Holder.out = functools.partialmethod(Holder._out, 2)")


def test_singledispatchmethod_registration_is_a_miss(nb: Shell) -> None:
    nb.run("class Fmt:\n    @functools.singledispatchmethod\n    def show(self, v):\n        return 'any'\n"
           "    @show.register\n    def _(self, v: int):\n        return 'int'\nf = Fmt()")
    memo_use(nb, "o.show(v)", "o, v")
    call_twice_then_edit(nb, "use(f, 2.5)", "@Fmt.show.register\ndef _(self, v: float):\n    return 'float'")


def test_class_data_changes_are_misses(nb: Shell) -> None:
    nb.run("class Cfg:\n    opts = {'k': 1}\n    level = 1\n"
           "    def get(self):\n        return self.opts['k'] + self.level\nc = Cfg()")
    memo_use(nb, "o.get()", "o")
    call_twice_then_edit(nb, "use(c)", "Cfg.level = 5")
    nb.run("Cfg.opts['k'] = 7")
    nb.run("use(c)")
    assert runs(nb) == 3


def test_enum_arguments_hit_and_key_by_their_class(nb: Shell) -> None:
    nb.run("import enum\nclass Mode(enum.Enum):\n    FAST = 1\n    SLOW = 2\n    def factor(self):\n"
           "        return self.value * SCALE")
    nb.run("@memo\ndef use(m):\n    RUNS['n'] = RUNS.get('n', 0) + 1\n"
           "    return [v.factor() for v in (m if isinstance(m, list) else [m])]")
    call_twice_then_edit(nb, "use(Mode.SLOW)", "SCALE = 13")
    nb.run("use(Mode.SLOW)\nuse([Mode.SLOW, Mode.FAST] * 100)\nuse([Mode.SLOW, Mode.FAST] * 100)")
    assert runs(nb) == 3


def test_user_module_used_as_a_whole_is_followed(nb: Shell, user_module: Path) -> None:
    nb.run("import inner_import_mod")
    nb.run("@memo\ndef use(name, x):\n    RUNS['n'] = RUNS.get('n', 0) + 1\n"
           "    return getattr(inner_import_mod, name)(x)")
    nb.run("use('f', 5)")
    nb.run("use('f', 5)")
    assert runs(nb) == 1
    user_module.write_text("def f(x):\n    return x * 3\n")
    nb.run("import importlib\nimportlib.reload(inner_import_mod)")
    nb.run("v = use('f', 5)")
    assert runs(nb) == 2 and nb["v"] == 15


def test_module_imported_by_a_computed_name_is_reported(nb: Shell, user_module: Path) -> None:
    nb.run("import importlib\n@memo\ndef use(name, x):\n    return importlib.import_module(name).f(x)")
    with pytest.warns(UserWarning, match="computed at run time"):
        nb.run("use('inner_import_mod', 5)")


# -- 10. a class is its whole definition: bases, their data, nested classes, metaclass -------


def test_data_on_a_user_base_class_is_in_the_key(nb: Shell) -> None:
    nb.run("class Base:\n    level = 1\n    opts = {'k': 1}\n"
           "class Child(Base):\n    def get(self):\n        return self.level + self.opts['k']\nc = Child()")
    memo_use(nb, "o.get()", "o")
    call_twice_then_edit(nb, "use(c)", "Base.level = 5")
    nb.run("Base.opts['k'] = 4")
    nb.run("v = use(c)")
    assert runs(nb) == 3 and nb["v"] == 9


def test_a_base_method_monkeypatched_is_a_miss(nb: Shell) -> None:
    nb.run("class Base:\n    def get(self):\n        return 1\nclass Child(Base):\n    pass\nc = Child()")
    memo_use(nb, "o.get()", "o")
    call_twice_then_edit(nb, "use(c)", "_orig = Base.get\ndef patched(self):\n    return 100\nBase.get = patched")


@pytest.mark.parametrize("holder", [
    "class Cfg:\n    class Impl:\n        def run(self):\n            return SCALE\n"
    "    def get(self):\n        return self.Impl().run()",
    "class Other:\n    def run(self):\n        return SCALE\n"
    "class Cfg:\n    impl = Other\n    def get(self):\n        return self.impl().run()",
], ids=["nested-class", "class-attribute"])
def test_a_class_held_by_a_class_is_followed(nb: Shell, holder: str) -> None:
    nb.run(holder + "\nc = Cfg()")
    memo_use(nb, "o.get()", "o")
    call_twice_then_edit(nb, "use(c)", "SCALE = 3")


def test_mutable_class_data_beside_a_class_attribute_is_rehashed(nb: Shell) -> None:
    nb.run("class Cfg:\n    opts = {'k': 1}\n    z_error = ValueError\n    def get(self):\n"
           "        return self.opts['k']\nc = Cfg()")
    memo_use(nb, "o.get()", "o")
    call_twice_then_edit(nb, "use(c)", "Cfg.opts['k'] = 7")


def test_a_user_metaclass_is_code_of_its_classes(nb: Shell) -> None:
    nb.run("class Meta(type):\n    def scale(cls):\n        return SCALE\nclass Thing(metaclass=Meta):\n    pass")
    memo_use(nb, "k.scale()", "k")
    call_twice_then_edit(nb, "use(Thing)", "SCALE = 4")


def test_static_method_wrapping_a_partial_is_followed(nb: Shell) -> None:
    nb.run("def f(v, k):\n    return v * k * SCALE\nclass P:\n    t = staticmethod(functools.partial(f, k=2))\np = P()")
    memo_use(nb, "o.t(x)", "o, x")
    call_twice_then_edit(nb, "use(p, 1)", "SCALE = 2")
    nb.run("P.t = staticmethod(functools.partial(f, k=3))")
    nb.run("use(p, 1)")
    assert runs(nb) == 3


def test_flag_members_keep_their_key_as_flags_are_combined(nb: Shell) -> None:
    nb.run("import enum\nclass Perm(enum.Flag):\n    R = 4\n    W = 2\n    X = 1")
    memo_use(nb, "p.value", "p")
    nb.run("use(Perm.R)\nboth = Perm.R | Perm.W\nnot_x = ~Perm.X\nuse(Perm.R)\nuse(both)\nuse(Perm.R | Perm.W)")
    assert runs(nb) == 2


def test_an_object_with_a_memo_key_is_keyed_with_its_class_code(nb: Shell) -> None:
    nb.run("class Model:\n    def __init__(self):\n        self.path = 'w.bin'\n"
           "    def __memo_key__(self):\n        return self.path\n"
           "    def predict(self, v):\n        return v * SCALE\nm = Model()")
    memo_use(nb, "o.predict(x)", "o, x")
    call_twice_then_edit(nb, "use(m, 2)", "SCALE = 3")


@pytest.mark.parametrize("holder, use", [
    ("OPS = {'s': staticmethod(sf)}", "OPS['s'].__func__(x)"),
    ("OPS = {'p': property(lambda self: sf(1))}", "OPS['p'].fget(None) * x"),
    ("OPS = [classmethod(lambda cls, v: sf(v))]", "OPS[0].__func__(None, x)"),
], ids=["staticmethod", "property", "classmethod"])
def test_method_wrappers_held_as_data_key_by_their_functions(nb: Shell, holder: str, use: str) -> None:
    nb.run(f"def sf(v):\n    return v * SCALE\n{holder}")
    nb.run(f"@memo\ndef use(x):\n    RUNS['n'] = RUNS.get('n', 0) + 1\n    return {use}")
    call_twice_then_edit(nb, "use(5)", "SCALE = 3")


def test_globals_looked_up_at_run_time_are_reported(nb: Shell) -> None:
    nb.run("@memo\ndef pick(name):\n    return globals()[name]")
    with pytest.warns(UserWarning, match=r"globals\(\) at run time"):
        nb.run("pick('SCALE')")


def test_abstract_and_protocol_classes_are_keyed_without_warnings(nb: Shell) -> None:
    nb.run("import abc, typing, collections.abc, warnings\n"
           "class Base(abc.ABC):\n    @abc.abstractmethod\n    def run(self, v): ...\n"
           "@typing.runtime_checkable\nclass Proto(typing.Protocol):\n    def run(self, v): ...\n"
           "class Seq(collections.abc.Sequence):\n    def __getitem__(self, i): return i\n"
           "    def __len__(self): return 1\n"
           "class Impl(Base):\n    def run(self, v):\n        return v * SCALE\nimpl = Impl()")
    nb.run("@memo\ndef use(x):\n    RUNS['n'] = RUNS.get('n', 0) + 1\n    return impl.run(x) + len(Seq()) + "
           "isinstance(impl, Proto)")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        call_twice_then_edit(nb, "use(2)", "SCALE = 3")


def test_a_class_attribute_that_answers_every_name_is_data(nb: Shell) -> None:
    nb.run("class AnyDict(dict):\n    def __getattr__(self, item):\n        return self.__getitem__(item)\n"
           "    def __missing__(self, name):\n        value = self[name] = type(self)()\n        return value\n"
           "class Trainer:\n    cfg = AnyDict(lr=0.5)\n    def fit(self, x):\n        return x * self.cfg.lr\n"
           "trainer = Trainer()")
    nb.run("@memo\ndef train(t, x):\n    RUNS['n'] = RUNS.get('n', 0) + 1\n    return t.fit(x)")
    call_twice_then_edit(nb, "train(trainer, 2)", "Trainer.cfg['lr'] = 2")


def test_class_data_replaced_or_holding_its_class_is_hashed_again_on_each_call(nb: Shell) -> None:
    nb.run("class Plugin:\n    registry = {}\n    opts = {'k': 1}\n    def get(self):\n"
           "        return self.opts['k'] + len(self.registry)\nPlugin.registry['self'] = Plugin\np = Plugin()")
    memo_use(nb, "o.get()", "o")
    call_twice_then_edit(nb, "use(p)", "Plugin.opts = {'k': 9}")  # another dict in its place
    nb.run("use(p)\nPlugin.registry['other'] = int\nv = use(p)\nw = use(p)")
    assert runs(nb) == 3 and nb["v"] == nb["w"] == 11


@pytest.mark.parametrize("setup, edit", [
    ("class Base:\n    level = 1\nclass Child(Base):\n    level = 5\n    def get(self):\n        return self.level",
     "del Child.level\nChild.levl = 5"),
    ("class Child:\n    def get(self):\n        return 1\n    def other(self):\n        return 5",
     "Child.get, Child.other = Child.other, Child.get"),
    ("def f(self):\n    return 5\nclass Child:\n    p = property(f)\n"
     "    def get(self):\n        return getattr(self, 'p', 1)",
     "Child.p = property(None, f)"),
    ("def f(*args):\n    return len(args)\nclass Child:\n    s = staticmethod(f)\n"
     "    def get(self):\n        return self.s()",
     "Child.s = classmethod(f)"),
    ("class Model:\n    level = 1\nclass Model(Model):\n    level = 5\n    def get(self):\n        return self.level\n"
     "Child = Model", "Model.level = 7"),
    ("class Scaled:\n    @functools.lru_cache(maxsize=None)\n    def __call__(self, v=1):\n        return v * SCALE\n"
     "class Child:\n    def get(self):\n        return Scaled()()", "SCALE = 7"),
    ("import types\ncfg = types.ModuleType('cfgmod')\ncfg.X = 1\nclass Child:\n    conf = cfg\n"
     "    def get(self):\n        return self.conf.X", "cfg.X = 2"),
    ("class Child:\n    def get(self):\n        return getattr(Child.get, 'factor', 1)",
     "Child.get.__dict__ = {'factor': 2}"),
], ids=["renamed", "swapped-methods", "property-slot", "wrapper-kind", "same-qualname", "dunder-lru-cache",
        "module-attribute", "function-dict-replaced"])
def test_what_a_class_is_made_of_is_all_in_its_key(nb: Shell, setup: str, edit: str) -> None:
    nb.run(setup + "\nc = Child()")
    memo_use(nb, "o.get()", "o")
    call_twice_then_edit(nb, "use(c)", edit)


def test_a_default_function_reading_a_list_changed_in_place_is_a_miss(shell: Shell) -> None:
    # A function default is fixed, so only the default's own reads make the caller's resolution
    # volatile: they must reach it, or the first resolution is reused and the change is missed.
    shell.run("""
    from notebook_memo import memo
    DATA = [1]

    def helper():
        return sum(DATA)

    def apply(op=helper):
        return op()

    @memo
    def f():
        return apply()
    """)
    assert shell.run("f()") == 1
    shell.run("DATA.append(2)")
    assert shell.run("f()") == 3
    shell.run("DATA.append(4)")
    assert shell.run("f()") == 7


# -- methods of data held as code: a bound builtin method reads its object ------------------------------


@pytest.mark.parametrize("setup, call", [
    ("TABLE = {'a': 1}\nlookup = TABLE.get", "lookup('a')"),  # a global
    ("TABLE = {'a': 1}\ndef helper(k, _get=TABLE.get):\n    return _get(k)", "helper('a')"),  # a default
    ("TABLE = {'a': 1}\npart = functools.partial(lambda get, k: get(k), TABLE.get)", "part('a')"),  # a partial
    ("TABLE = {'a': 1}\ndef make():\n    get = TABLE.get\n    return lambda k: get(k)\nclosed = make()",
     "closed('a')"),  # a closure
    ("TABLE = {'a': 1}\nclass Lookup:\n    get = TABLE.get", "Lookup.get('a')"),  # a class attribute
])
def test_a_builtin_method_bound_to_data_keys_the_data(nb: Shell, setup: str, call: str) -> None:
    nb.run(setup)
    memo_use(nb, call, params="")
    call_twice_then_edit(nb, "use()", "TABLE['a'] = 2")
    # A body that reads no other mutable global (RUNS is one) is resolved once and then checked by
    # identity: the method's data must count as mutable.
    nb.run(f"@memo\ndef pure():\n    return {call}")
    nb.run("TABLE['a'] = 3\nthird = pure()\nTABLE['a'] = 4\nfourth = pure()")
    assert (nb["third"], nb["fourth"]) == (3, 4)


def test_a_builtin_method_bound_to_data_misses_after_a_restart_with_other_data(cache_dir: Path) -> None:
    def kernel(value: int) -> dict[str, object]:
        return run_kernel([SETUP + f"TABLE = {{'a': {value}}}\nlookup = TABLE.get", """
@memo
def f(k):
    return lookup(k)
OUT["f"] = f("a")
"""], cache_dir)

    assert [kernel(1)["f"], kernel(2)["f"]] == [1, 2]


def test_a_generator_s_bound_method_draws_anew_on_each_call(nb: Shell) -> None:
    nb.run("import random\nr = random.Random(0)\ndraw = r.random")
    memo_use(nb, "draw()", params="")
    nb.run("a = use()\nb = use()")
    assert nb["a"] != nb["b"] and runs(nb) == 2


def test_numpy_objects_that_can_change_are_keyed_by_their_content_on_each_call(nb: Shell) -> None:
    nb.run("import numpy as np\nP = np.poly1d([1, 2, 3])\nV = np.vectorize(helper)")
    nb.run("@memo\ndef use():\n    return P(1) + V(1)")  # no other mutable global (see above)
    nb.run("first = use()\nP[2] = 100\nedited = use()")
    assert (nb["first"], nb["edited"]) == (6 + 2, 105 + 2)
    nb.run("def triple(v):\n    return 3 * v")
    nb.run("V.pyfunc = triple\nthird = use()")
    assert nb["third"] == 105 + 3


def test_a_ufunc_made_by_frompyfunc_is_refused_not_keyed_by_its_name(nb: Shell) -> None:
    from notebook_memo import UnhashableArgument

    nb.run("import numpy as np\nuf = np.frompyfunc(lambda v: v * SCALE, 1, 1)")
    result = nb.run_raw("apply(uf, 2)")
    assert isinstance(result.error_in_exec, UnhashableArgument)
    assert "np.frompyfunc" in str(result.error_in_exec)
    memo_use(nb, "int(np.add(x, 1))")  # numpy's own ufuncs are keyed as before
    nb.run("use(1)\nuse(1)")
    assert runs(nb) == 1


def test_a_stream_s_method_held_as_a_global_is_code_not_data(nb: Shell) -> None:
    nb.run("import io\nstream = io.StringIO()\nwrite = stream.write")
    nb.run("@memo\ndef say(x):\n    write(str(x))\n    return x")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "cannot be hashed" for the stream
        nb.run("say(1)\nsay(1)")
