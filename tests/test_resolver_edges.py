"""Keys of what a function reaches past its own globals: a name the notebook put in (or replaced in) builtins;
a library class the notebook patched with its own code; globals read through frames or a function's
``__globals__``; the virtual subclasses registered with a user ABC. Each must key apart where it changed
(no false hit), alike across restarts (no false miss), or be reported where it cannot be known."""

from __future__ import annotations

import builtins
import warnings
from pathlib import Path

import pytest

from tests.conftest import RUNS_SETUP, Shell, run_kernel

SETUP = RUNS_SETUP


# -- names in builtins ------------------------------------------------------------------------------------

@pytest.fixture
def own_builtins(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Put back builtins.round and take away the names a test adds to builtins."""
    monkeypatch.setattr(builtins, "round", builtins.round)
    for name in ("SCALE", "tidy"):
        monkeypatch.delattr(builtins, name, raising=False)
    return monkeypatch


ROUNDING = """
import builtins
import warnings
def myround(x):
    return int(x) + {offset}
builtins.round = myround
"""


def test_editing_a_builtin_the_notebook_replaced_is_a_miss(shell: Shell, own_builtins: pytest.MonkeyPatch) -> None:
    shell.run(SETUP)
    shell.run(ROUNDING.format(offset=100))
    shell.run("@memo\ndef f(x):\n    ran('f')\n    return round(x)")
    shell.run("first = f(2.4)\nagain = f(2.4)")
    shell.run(ROUNDING.format(offset=999))
    shell.run("edited = f(2.4)")
    assert (shell["first"], shell["again"], shell["edited"]) == (102, 102, 1001)
    assert shell["RUNS"]["f"] == 2


def test_replacing_a_builtin_after_the_first_call_and_putting_it_back_are_keyed(
        shell: Shell, own_builtins: pytest.MonkeyPatch) -> None:
    shell.run(SETUP)
    shell.run("import builtins\noriginal = builtins.round")
    shell.run("@memo\ndef f(x):\n    ran('f')\n    return round(x)")
    shell.run("plain = f(2.4)")
    shell.run(ROUNDING.format(offset=100))
    shell.run("patched = f(2.4)")
    shell.run("builtins.round = original")
    shell.run("undone = f(2.4)")
    assert (shell["plain"], shell["patched"], shell["undone"]) == (2, 102, 2)
    assert shell["RUNS"]["f"] == 2


def test_data_and_helpers_put_in_builtins_are_keyed(shell: Shell, own_builtins: pytest.MonkeyPatch) -> None:
    shell.run(SETUP)
    shell.run("import builtins\nbuiltins.SCALE = 2\ndef tidy(x):\n    return x * 10\nbuiltins.tidy = tidy\n"
              "del tidy")
    shell.run("@memo\ndef g(x):\n    ran('g')\n    return tidy(x) * SCALE")
    shell.run("first = g(1)\nagain = g(1)")
    shell.run("builtins.SCALE = 3")
    shell.run("scaled = g(1)")
    shell.run("def tidy(x):\n    return x * 100\nbuiltins.tidy = tidy\ndel tidy")
    shell.run("edited = g(1)")
    assert (shell["first"], shell["again"], shell["scaled"], shell["edited"]) == (20, 20, 30, 300)
    assert shell["RUNS"]["g"] == 3


BUILTIN_SCRIPT = """
import builtins
import warnings
OFFSET = {offset}
def myround(x, _o=OFFSET):
    return int(x) + _o
builtins.round = myround
builtins.SCALE = OFFSET
@memo
def f(x):
    ran('f')
    return round(x), SCALE
OUT['v'] = f(2.4)
OUT['runs'] = RUNS.get('f', 0)
"""


def test_a_builtin_replaced_by_the_notebook_is_keyed_alike_after_a_restart(cache_dir: Path) -> None:
    def kernel(offset: int, seed: int) -> dict[str, object]:
        return run_kernel([SETUP, BUILTIN_SCRIPT.format(offset=offset)], cache_dir, seed=seed)

    assert kernel(100, 1) == {"v": [102, 100], "runs": 1, "_warnings": []}
    edited = kernel(999, 2)
    assert (edited["v"], edited["runs"]) == ([1001, 999], 1)
    assert all(w.startswith("StaleEntriesWarning") for w in edited["_warnings"])
    assert kernel(100, 3)["runs"] == 0 and kernel(999, 4)["runs"] == 0


def test_what_ipython_puts_in_builtins_keys_without_warning_and_hits(shell: Shell) -> None:
    shell.run(SETUP)
    shell.run("@memo\ndef h(x):\n    ran('h')\n    display(x)\n    return __IPYTHON__, x")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        shell.run("first = h(1)\nagain = h(1)")
    assert shell["first"] == (True, 1) and shell["RUNS"]["h"] == 1


# -- a library class the notebook patched ---------------------------------------------------------------------

LIMIT = """
def limit(self, max_denominator=10):
    return fractions.Fraction(1, {denominator})
fractions.Fraction.limit_denominator = limit
"""


@pytest.fixture
def own_fraction(monkeypatch: pytest.MonkeyPatch) -> None:
    import fractions

    monkeypatch.setattr(fractions.Fraction, "limit_denominator", fractions.Fraction.limit_denominator)


def test_editing_a_patch_of_an_arguments_library_class_is_a_miss(shell: Shell, own_fraction: None) -> None:
    shell.run(SETUP)
    shell.run("import fractions")
    shell.run(LIMIT.format(denominator=100))
    shell.run("@memo\ndef approx(x):\n    ran('a')\n    return x.limit_denominator(10)")
    shell.run("first = approx(fractions.Fraction(1, 3))\nagain = approx(fractions.Fraction(1, 3))")
    shell.run(LIMIT.format(denominator=999))
    shell.run("edited = approx(fractions.Fraction(1, 3))")
    assert (str(shell["first"]), str(shell["again"]), str(shell["edited"])) == ("1/100", "1/100", "1/999")
    assert shell["RUNS"]["a"] == 2


def test_patching_a_library_class_after_the_first_call_and_undoing_it_are_keyed(
        shell: Shell, own_fraction: None) -> None:
    shell.run(SETUP)
    shell.run("import fractions\noriginal = fractions.Fraction.limit_denominator\nHALF = fractions.Fraction(1, 3)")
    shell.run("@memo\ndef approx(x):\n    ran('a')\n    return HALF.limit_denominator(x)")  # data of that class
    shell.run("plain = approx(10)")
    shell.run(LIMIT.format(denominator=100))
    shell.run("patched = approx(10)")
    shell.run("fractions.Fraction.limit_denominator = original")
    shell.run("undone = approx(10)")
    assert (str(shell["plain"]), str(shell["patched"]), str(shell["undone"])) == ("1/3", "1/100", "1/3")
    assert shell["RUNS"]["a"] == 2


MEAN = """
def mean(self):
    return {mean}
statistics.NormalDist.mean = property(mean)
"""


@pytest.mark.parametrize("named", ["statistics.NormalDist", "NormalDist", "Dist"])
def test_editing_a_patched_property_of_a_library_class_the_body_names_is_a_miss(
        shell: Shell, monkeypatch: pytest.MonkeyPatch, named: str) -> None:
    import statistics

    monkeypatch.setattr(statistics.NormalDist, "mean", vars(statistics.NormalDist)["mean"])
    shell.run(SETUP)
    shell.run("import statistics\nfrom statistics import NormalDist\nclass Dist(NormalDist):\n    pass")
    shell.run(MEAN.format(mean=100.0))
    shell.run(f"@memo\ndef centre(sigma):\n    ran('c')\n    return {named}(5.0, sigma).mean")
    shell.run("first = centre(1.0)\nagain = centre(1.0)")
    shell.run(MEAN.format(mean=999.0))
    shell.run("edited = centre(1.0)")
    assert (shell["first"], shell["again"], shell["edited"]) == (100.0, 100.0, 999.0)
    assert shell["RUNS"]["c"] == 2


FORWARD = """
def forward(self, x):
    return torch.nn.functional.linear(x, self.weight, self.bias) + {shift}
torch.nn.Linear.forward = forward
"""


def test_editing_a_patched_forward_of_a_library_model_class_is_a_miss(
        shell: Shell, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.nn.Linear, "forward", torch.nn.Linear.forward)
    shell.run(SETUP)
    shell.run("import torch\ntorch.manual_seed(0)\nmodel = torch.nn.Linear(2, 1)\nX = torch.ones(1, 2)")
    shell.run(FORWARD.format(shift=100))
    shell.run("@memo\ndef predict(m, x):\n    ran('p')\n    with torch.no_grad():\n        return float(m(x).sum())")
    shell.run("first = predict(model, X)\nagain = predict(model, X)")
    shell.run(FORWARD.format(shift=-100))
    shell.run("edited = predict(model, X)")
    assert shell["first"] == shell["again"] and shell["edited"] == pytest.approx(shell["first"] - 200)
    assert shell["RUNS"]["p"] == 2


PATCHED_SCRIPT = """
import fractions
def limit(self, max_denominator=10):
    return fractions.Fraction(1, {denominator})
fractions.Fraction.limit_denominator = limit
@memo
def approx(x):
    ran('a')
    return str(x.limit_denominator(10))
OUT['v'] = approx(fractions.Fraction(1, 3))
OUT['runs'] = RUNS.get('a', 0)
"""


def test_a_patched_library_class_is_keyed_alike_after_a_restart(cache_dir: Path) -> None:
    def kernel(denominator: int, seed: int) -> dict[str, object]:
        return run_kernel([SETUP, PATCHED_SCRIPT.format(denominator=denominator)], cache_dir, seed=seed)

    assert kernel(100, 1) == {"v": "1/100", "runs": 1, "_warnings": []}
    edited = kernel(999, 2)
    assert (edited["v"], edited["runs"]) == ("1/999", 1)
    assert kernel(100, 3)["runs"] == 0 and kernel(999, 4)["runs"] == 0


def test_data_a_library_class_gains_is_no_miss_of_what_names_it(shell: Shell, monkeypatch: pytest.MonkeyPatch) -> None:
    import fractions

    monkeypatch.delattr(fractions.Fraction, "_note", raising=False)
    monkeypatch.setattr(fractions.Fraction, "limit_denominator", fractions.Fraction.limit_denominator)
    shell.run(SETUP)
    shell.run("import fractions")
    shell.run(LIMIT.format(denominator=100))
    shell.run("@memo\ndef approx(x):\n    ran('a')\n    return fractions.Fraction(1, x).limit_denominator(10)")
    shell.run("first = approx(3)")
    shell.run("fractions.Fraction._note = 'not code'")  # the library's own bookkeeping, say
    shell.run("again = approx(3)")
    assert str(shell["again"]) == "1/100" and shell["RUNS"]["a"] == 1


# -- globals read through a frame or a function's __globals__ ------------------------------------------------

FRAME_HELPERS = """
import sys, inspect
from sys import _getframe
SCALE = 2
def helper():
    pass
def through_helper():
    return helper.__globals__["SCALE"]
"""


@pytest.mark.parametrize("read", [
    'sys._getframe().f_globals["SCALE"]',
    'helper.__globals__["SCALE"]',
    'inspect.currentframe().f_globals["SCALE"]',
    '_getframe(0).f_globals["SCALE"]',
    'through_helper()',
    '[sys._getframe().f_globals[k] for k in ["SCALE"]][0]',
], ids=["sys._getframe", "__globals__", "inspect.currentframe", "from-import", "in-a-helper", "in-a-comprehension"])
def test_globals_read_through_frames_are_reported(shell: Shell, read: str) -> None:
    shell.run(SETUP)
    shell.run(FRAME_HELPERS)
    shell.run(f"@memo\ndef a(x):\n    ran('a')\n    return {read} * x")
    with pytest.warns(UserWarning, match=r"through \.\w+ \(a frame's or a function's globals\).* which globals"):
        shell.run("first = a(10)")
    assert shell["first"] == 20


def test_a_frame_read_for_its_code_name_only_is_not_reported(shell: Shell) -> None:
    # f_code reads no globals: only a name that reaches the frame's namespace (f_globals, f_locals) is reported
    shell.run(SETUP)
    shell.run("import sys\n@memo\ndef a(x):\n    ran('a')\n    return sys._getframe().f_code.co_name, x")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert shell.run("a(1)") == ("a", 1)
        shell.run("a(1)")
    assert shell["RUNS"] == {"a": 1}


# -- virtual subclasses registered with a user ABC -----------------------------------------------------------

SHAPES = """
import abc
class Shape(abc.ABC):
    pass
class Blob:
    def __init__(self, r):
        self.r = r
class Dot:
    pass
@memo
def describe(x):
    ran('d')
    return "shape" if isinstance(x, Shape) else "other"
"""


def test_registering_a_virtual_subclass_of_a_user_abc_is_a_miss(shell: Shell) -> None:
    shell.run(SETUP)
    shell.run(SHAPES)
    shell.run("first = describe(Blob(1))\nagain = describe(Blob(1))")
    shell.run("Shape.register(Blob)")
    shell.run("registered = describe(Blob(1))")
    assert (shell["first"], shell["again"], shell["registered"]) == ("other", "other", "shape")
    assert shell["RUNS"]["d"] == 2


def test_registering_with_a_base_of_the_abc_the_body_names_is_a_miss(shell: Shell) -> None:
    shell.run(SETUP)
    shell.run(SHAPES)
    shell.run("class Round(Shape):\n    pass\n"
              "@memo\ndef round_(x):\n    ran('r')\n    return isinstance(x, Round), issubclass(Dot, Shape)")
    shell.run("first = round_(Blob(1))")
    shell.run("Shape.register(Dot)")
    shell.run("registered = round_(Blob(1))")
    assert (shell["first"], shell["registered"]) == ((False, False), (False, True))
    assert shell["RUNS"]["r"] == 2


def test_a_registration_elsewhere_is_no_miss(shell: Shell) -> None:
    shell.run(SETUP)
    shell.run(SHAPES)
    shell.run("class Other(abc.ABC):\n    pass")
    shell.run("first = describe(Blob(1))")
    shell.run("Other.register(Blob)")
    shell.run("again = describe(Blob(1))")
    assert shell["again"] == "other" and shell["RUNS"]["d"] == 1


def test_a_registered_virtual_subclass_is_keyed_alike_after_a_restart(cache_dir: Path) -> None:
    def kernel(register: bool, seed: int) -> dict[str, object]:
        cells = [SETUP, SHAPES, "Shape.register(Blob)" if register else "pass",
                 "OUT['v'] = describe(Blob(1))\nOUT['runs'] = RUNS.get('d', 0)"]
        return run_kernel(cells, cache_dir, seed=seed)

    assert kernel(True, 1) == {"v": "shape", "runs": 1, "_warnings": []}
    unregistered = kernel(False, 2)
    assert (unregistered["v"], unregistered["runs"]) == ("other", 1)
    assert kernel(True, 3)["runs"] == 0 and kernel(False, 4)["runs"] == 0


def test_registering_a_user_class_with_a_library_abc_the_body_names_is_a_miss(shell: Shell) -> None:
    shell.run(SETUP)
    shell.run("import numbers\nclass Amount:\n    pass\n"
              "@memo\ndef kind(x):\n    ran('k')\n    return isinstance(x, numbers.Number)")
    shell.run("first = kind(Amount())")
    shell.run("numbers.Number.register(Amount)")
    shell.run("registered = kind(Amount())")
    assert (shell["first"], shell["registered"]) == (False, True) and shell["RUNS"]["k"] == 2
