"""What a singledispatch function dispatches on is in its key: the types it registered (their code, such as a
``__subclasshook__``, and the classes registered with them as ABCs), read by name, as a value, through a
``singledispatchmethod``, in a ``%%memo`` cell and after a restart. And the notebook's own module used as a
whole (``getattr(sys.modules[__name__], name)``) is keyed by what the notebook defined, not by IPython's history
and tools."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from notebook_memo import MemoWarning
from tests.conftest import Shell, run_kernel

SETUP = """
import abc, collections.abc, functools
from notebook_memo import memo
class _Runs(dict):
    def __memo_key__(self): return 'runs'
RUNS = _Runs()
"""

SHAPE = """
class Shape(abc.ABC):
    pass
@functools.singledispatch
def fmt(x):
    return 'obj'
@fmt.register(Shape)
def _(x):
    return 'shape'
"""

USE = "@memo\ndef use(x):\n    RUNS['n'] = RUNS.get('n', 0) + 1\n    return fmt(x)"
APPLY = "@memo\ndef apply(fn, x):\n    RUNS['n'] = RUNS.get('n', 0) + 1\n    return fn(x)"


@pytest.fixture
def nb(shell: Shell) -> Shell:
    shell.run(SETUP)
    return shell


def runs(shell: Shell) -> int:
    return int(shell["RUNS"].get("n", 0))


def hit_then_changed(nb: Shell, call: str, change: str, before: object, after: object) -> None:
    """Call twice (one run), make ``change``, call again: it must run again and answer ``after``."""
    nb.run(f"first = {call}\nagain = {call}")
    assert (nb["first"], runs(nb)) == (before, 1)
    nb.run(change)
    nb.run(f"changed = {call}")
    assert nb["changed"] == after, "the old answer was served after what fmt dispatches on changed"
    assert runs(nb) == 2


def test_a_user_abc_registration_is_a_miss(nb: Shell) -> None:
    nb.run(SHAPE)
    nb.run(USE)
    hit_then_changed(nb, "use(3)", "Shape.register(int)", "obj", "shape")


def test_a_library_abc_registration_is_a_miss(nb: Shell) -> None:
    nb.run("class Vec:\n    def __len__(self): return 2\n    def __getitem__(self, i): return i\n"
           "@functools.singledispatch\ndef fmt(x):\n    return 'obj'\n"
           "@fmt.register(collections.abc.Sequence)\ndef _(x):\n    return 'seq'\nv = Vec()")
    nb.run(USE)
    hit_then_changed(nb, "use(v)", "collections.abc.Sequence.register(Vec)", "obj", "seq")


def test_a_dispatch_type_s_subclasshook_edit_is_a_miss(nb: Shell) -> None:
    dispatch = ("class HasArea(abc.ABC):\n    @classmethod\n    def __subclasshook__(cls, C):\n        return {hook}\n"
                "@functools.singledispatch\ndef fmt(x):\n    return 'obj'\n"
                "@fmt.register(HasArea)\ndef _(x):\n    return 'area'")
    nb.run(dispatch.format(hook="NotImplemented"))
    nb.run("class Sq:\n    def area(self): return 4\nsq = Sq()")
    nb.run(USE)
    hit_then_changed(nb, "use(sq)", dispatch.format(hook="True if hasattr(C, 'area') else NotImplemented"),
                     "obj", "area")


def test_a_dispatch_type_registration_is_a_miss_for_a_function_passed_as_a_value(nb: Shell) -> None:
    nb.run(SHAPE)
    nb.run(APPLY)
    hit_then_changed(nb, "apply(fmt, 3)", "Shape.register(int)", "obj", "shape")


def test_a_library_abc_registration_is_a_miss_for_a_function_passed_as_a_value(nb: Shell) -> None:
    nb.run("class Vec:\n    def __len__(self): return 2\n    def __getitem__(self, i): return i\n"
           "@functools.singledispatch\ndef fmt(x):\n    return 'obj'\n"
           "@fmt.register(collections.abc.Sequence)\ndef _(x):\n    return 'seq'\nv = Vec()")
    nb.run(APPLY)
    hit_then_changed(nb, "apply(fmt, v)", "collections.abc.Sequence.register(Vec)", "obj", "seq")


def test_a_dispatch_type_registration_is_a_miss_through_a_singledispatchmethod(nb: Shell) -> None:
    nb.run("class Shape(abc.ABC):\n    pass\n"
           "class Fmt:\n    @functools.singledispatchmethod\n    def show(self, v):\n        return 'obj'\n"
           "    @show.register(Shape)\n    def _(self, v):\n        return 'shape'\nf = Fmt()")
    nb.run("@memo\ndef use(o, x):\n    RUNS['n'] = RUNS.get('n', 0) + 1\n    return o.show(x)")
    hit_then_changed(nb, "use(f, 3)", "Shape.register(int)", "obj", "shape")


def test_an_unchanged_dispatch_with_abc_types_still_hits(nb: Shell) -> None:
    nb.run(SHAPE)
    nb.run(USE)
    nb.run(APPLY)
    nb.run("use(3)\nuse(3)\napply(fmt, 3)\napply(fmt, 3)")
    nb.run("class Other(abc.ABC):\n    pass\nOther.register(float)")  # another ABC's registration
    nb.run("use(3)\napply(fmt, 3)")
    assert runs(nb) == 2


def test_a_dispatch_type_registration_is_a_miss_in_a_memo_cell(nb: Shell) -> None:
    nb.run("%load_ext notebook_memo")
    nb.run(SHAPE)
    cell = "%%memo\nRUNS['n'] = RUNS.get('n', 0) + 1\nr = fmt(3)"
    nb.run(cell)
    nb.run(cell)
    assert (nb["r"], runs(nb)) == ("obj", 1)
    nb.run("Shape.register(int)")
    nb.run(cell)
    assert nb["r"] == "shape", "the cell restored the old answer after fmt's dispatch type changed"


def test_a_dispatch_type_registration_is_a_miss_after_a_restart(cache_dir: Path) -> None:
    kernel = SETUP + SHAPE + "{register}\n" + USE + "\nOUT['r'] = use(3)\nOUT['runs'] = RUNS.get('n', 0)"
    assert run_kernel([kernel.format(register="")], cache_dir, seed=1)["r"] == "obj"
    out = run_kernel([kernel.format(register="Shape.register(int)")], cache_dir, seed=2)
    assert (out["r"], out["runs"]) == ("shape", 1)
    out = run_kernel([kernel.format(register="Shape.register(int)")], cache_dir, seed=3)
    assert (out["r"], out["runs"]) == ("shape", 0)  # and that answer is a hit after another restart


# -- the notebook's own module used as a whole ---------------------------------------------------------------

BY_NAME = """
import sys
def op_a(x):
    return x + 1
@memo
def go(kind, x):
    RUNS['n'] = RUNS.get('n', 0) + 1
    return getattr(sys.modules[__name__], 'op_' + kind)(x)
"""


def test_the_notebook_module_used_as_a_whole_hits_and_misses_on_an_edit(nb: Shell) -> None:
    # Results go into RUNS (keyed by its __memo_key__): a new global of the notebook is a change of what the
    # module holds, which getattr could read.
    nb.run(BY_NAME)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nb.run("RUNS['first'] = go('a', 1)")
        nb.run("'a cell with an output'")  # IPython's history (_, Out, _i3...) changes between the calls
        nb.run("RUNS['again'] = go('a', 1)")
    assert (nb["RUNS"]["first"], nb["RUNS"]["again"], runs(nb)) == (2, 2, 1), "the second call ran again"
    assert [str(w.message) for w in caught if issubclass(w.category, MemoWarning)] == []
    nb.run("def op_a(x):\n    return x + 10")
    nb.run("RUNS['edited'] = go('a', 1)")
    assert (nb["RUNS"]["edited"], runs(nb)) == (11, 2), "an edit of a function of the notebook served the old answer"
    nb.run("LIMIT = 3")  # a new global of the notebook: getattr could read it
    nb.run("RUNS['more'] = go('a', 1)")
    assert runs(nb) == 3


def test_the_notebook_module_used_as_a_whole_hits_after_a_restart_with_other_cells(cache_dir: Path) -> None:
    define = SETUP + BY_NAME.replace("getattr(sys.modules[__name__],", "getattr(__import__('__main__'),")
    call = "RUNS['r'] = go('a', 1)\nOUT['r'], OUT['runs'] = RUNS['r'], RUNS.get('n', 0)"
    assert run_kernel([define, call], cache_dir, seed=1) == {"r": 2, "runs": 1, "_warnings": []}
    # Another kernel, whose history differs (more cells, an output shown): the same definitions, so a hit
    out = run_kernel(["'a cell with an output'", define, "1 + 1", call], cache_dir, seed=2)
    assert out == {"r": 2, "runs": 0, "_warnings": []}
