"""What a user class reaches at run time beyond its own code: the subclasses ``__subclasses__()`` lists (a plugin
registry found by subclassing), and the ``copyreg`` reducer registered for it, which ``copy`` and ``pickle`` run.
Each must key apart where it changed (no false hit: in the same session, after a restart, in a ``%%memo`` cell),
and alike where it did not (no false miss after a restart)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import RUNS_SETUP, Shell, run_kernel

SETUP = RUNS_SETUP


@pytest.fixture
def ip(shell: Shell) -> Shell:
    """A shell with ``%%memo`` loaded and the run counter ``RUNS``."""
    shell.run("%load_ext notebook_memo")
    shell.run(SETUP)
    return shell


# -- __subclasses__: a registry of plugins found by subclassing ---------------------------------------------

PLUGINS = """
class Plugin:
    @classmethod
    def found(cls):
        return cls.__subclasses__()
    def run(self):
        return 0
class Alpha(Plugin):
    def run(self):
        return 1
"""

BETA = "class Beta(Plugin):\n    def run(self):\n        return 10"


@pytest.mark.parametrize("listing", [
    "Plugin.__subclasses__()",
    "Plugin.found()",
    "type.__subclasses__(Plugin)",
    "getattr(Plugin, '__subclasses__')()",
], ids=["attribute", "classmethod", "type-method", "getattr"])
def test_a_subclass_defined_later_is_a_miss(ip: Shell, listing: str) -> None:
    ip.run(PLUGINS)
    ip.run(f"@memo\ndef total():\n    ran('t')\n    return sum(c().run() for c in {listing})")
    ip.run("first = total()\nagain = total()")
    assert (ip["first"], ip["again"], ip["RUNS"]["t"]) == (1, 1, 1)
    ip.run(BETA)
    ip.run("after = total()\nagain = total()")
    assert (ip["after"], ip["again"], ip["RUNS"]["t"]) == (11, 11, 2)


def test_a_subclass_of_a_subclass_and_its_code_are_in_the_key(ip: Shell) -> None:
    ip.run(PLUGINS + "\nSTEP = 100\n")
    ip.run("def everything(k):\n    return [k] + [d for c in k.__subclasses__() for d in everything(c)]\n"
           "@memo\ndef total():\n    ran('t')\n    return sum(c().run() for c in everything(Plugin))")
    ip.run("first = total()")
    ip.run("class Deep(Alpha):\n    def run(self):\n        return STEP")
    ip.run("deep = total()")
    ip.run("STEP = 1000")  # read by the code of a subclass the body reaches only through __subclasses__
    ip.run("stepped = total()\nagain = total()")
    assert (ip["first"], ip["deep"], ip["stepped"], ip["again"]) == (1, 101, 1001, 1001)
    assert ip["RUNS"]["t"] == 3


def test_a_redefined_subclass_is_keyed_as_the_body_sees_it(ip: Shell) -> None:
    """A notebook cell run again makes a new class; the old one, no longer named, is listed by __subclasses__
    until it is collected. It is collected before its subclasses are keyed, so the body sees the new one only."""
    ip.run(PLUGINS)
    ip.run(BETA)
    ip.run("@memo\ndef total():\n    ran('t')\n    return sum(c().run() for c in Plugin.__subclasses__())")
    ip.run("first = total()")
    ip.run(BETA.replace("10", "20"))
    ip.run("after = total()\nagain = total()")
    assert (ip["first"], ip["after"], ip["again"], ip["RUNS"]["t"]) == (11, 21, 21, 2)


@pytest.mark.parametrize("call", ["via(Registry())", "via_global()"], ids=["argument", "global-instance"])
def test_a_subclass_listed_by_a_method_of_a_value_s_class_is_a_miss(ip: Shell, call: str) -> None:
    ip.run(PLUGINS)
    ip.run("class Registry:\n    def total(self):\n        return sum(c().run() for c in Plugin.__subclasses__())\n"
           "REGISTRY = Registry()\n"
           "@memo\ndef via(reg):\n    ran('v')\n    return reg.total()\n"
           "@memo\ndef via_global():\n    ran('v')\n    return REGISTRY.total()")
    ip.run(f"first = {call}\nagain = {call}")
    assert (ip["first"], ip["again"], ip["RUNS"]["v"]) == (1, 1, 1)
    ip.run(BETA)
    ip.run(f"after = {call}\nagain = {call}")
    assert (ip["after"], ip["again"], ip["RUNS"]["v"]) == (11, 11, 2)


@pytest.mark.parametrize("call", ["count(Plugin)", "count_of(Plugin())", "count_global()"],
                         ids=["class-argument", "instance-argument", "global-instance"])
def test_a_subclass_of_a_class_a_value_holds_is_a_miss(ip: Shell, call: str) -> None:
    ip.run(PLUGINS)
    ip.run("PLUGIN = Plugin()\n"
           "@memo\ndef count(k):\n    ran('n')\n    return len(k.__subclasses__())\n"
           "@memo\ndef count_of(x):\n    ran('n')\n    return len(type(x).__subclasses__())\n"
           "@memo\ndef count_global():\n    ran('n')\n    return len(type(PLUGIN).__subclasses__())")
    ip.run(f"first = {call}\nagain = {call}")
    assert (ip["first"], ip["again"], ip["RUNS"]["n"]) == (1, 1, 1)
    ip.run(BETA)
    ip.run(f"after = {call}\nagain = {call}")
    assert (ip["after"], ip["again"], ip["RUNS"]["n"]) == (2, 2, 2)


@pytest.mark.parametrize(("call", "defined", "before", "after"), [
    ("counts([0, 1], Plugin)", BETA, [1, 2], [2, 3]),
    ("kinds([Plugin(), Alpha()])", "class Gamma(Alpha):\n    pass", [1, 0], [1, 1]),
], ids=["other-argument", "items"])
def test_a_subclass_of_a_class_a_batch_argument_holds_is_a_miss(ip: Shell, call: str, defined: str,
                                                                 before: list[int], after: list[int]) -> None:
    ip.run(PLUGINS)
    ip.run("@memo.batch('items', progress=False)\ndef counts(items, k):\n    ran('n')\n"
           "    return [len(k.__subclasses__()) + i for i in items]\n"
           "@memo.batch('items', progress=False)\ndef kinds(items):\n    ran('n')\n"
           "    return [len(type(x).__subclasses__()) for x in items]")
    ip.run(f"first = {call}\nagain = {call}")
    assert (ip["first"], ip["again"], ip["RUNS"]["n"]) == (before, before, 1)
    ip.run(defined)
    ip.run(f"changed = {call}\nagain = {call}")
    assert (ip["changed"], ip["again"], ip["RUNS"]["n"]) == (after, after, 2)


def test_an_argument_s_class_keys_its_calls_alike_from_the_first(ip: Shell) -> None:
    """What resolving the argument's class meets only when it resolves anew (a method's default naming another
    class) is not among the argument's classes: its second call keys as its first."""
    ip.run(PLUGINS)
    ip.run("class Unit:\n    pass\n"
           "class Holder(Plugin):\n    def run(self, kind=Unit):\n        return 5\n"
           "@memo\ndef count_of(x):\n    ran('n')\n    return len(type(x).__subclasses__())")
    ip.run("first = count_of(Holder())\nsecond = count_of(Holder())\nthird = count_of(Holder())")
    assert (ip["first"], ip["second"], ip["third"], ip["RUNS"]["n"]) == (0, 0, 0, 1)


def test_a_subclass_defined_later_is_no_change_where_no_code_lists_them(ip: Shell) -> None:
    ip.run(PLUGINS.replace("cls.__subclasses__()", "[]"))
    ip.run("@memo\ndef name(k, x):\n    ran('n')\n    return k.__name__ + type(x).__name__")
    ip.run("first = name(Plugin, Alpha())")
    ip.run(BETA)
    ip.run("after = name(Plugin, Alpha())")
    assert (ip["first"], ip["after"], ip["RUNS"]["n"]) == ("PluginAlpha", "PluginAlpha", 1)


def test_the_subclasses_of_an_argument_s_class_key_alike_after_a_restart(cache_dir: Path) -> None:
    def kernel(beta: bool, seed: int) -> dict[str, object]:
        cells = [SETUP, PLUGINS, BETA if beta else "pass",
                 "@memo\ndef count(k):\n    ran('n')\n    return sorted(c.__name__ for c in k.__subclasses__())",
                 "OUT['v'] = count(Plugin)\nOUT['runs'] = RUNS.get('n', 0)"]
        return run_kernel(cells, cache_dir, seed=seed)

    assert kernel(False, 1) == {"v": ["Alpha"], "runs": 1, "_warnings": []}
    assert kernel(True, 2) == {"v": ["Alpha", "Beta"], "runs": 1, "_warnings": []}
    assert kernel(False, 3)["runs"] == 0 and kernel(True, 4)["runs"] == 0


def test_a_subclass_defined_later_is_an_input_of_a_cell(ip: Shell) -> None:
    ip.run(PLUGINS)
    cell = "%%memo\nran('c')\nnames = sorted(c.__name__ for c in Plugin.__subclasses__())"
    ip.run(cell)
    ip.run(cell)
    assert (ip["names"], ip["RUNS"]["c"]) == (["Alpha"], 1)
    ip.run(BETA)
    ip.run(cell)
    assert (ip["names"], ip["RUNS"]["c"]) == (["Alpha", "Beta"], 2)


def test_the_subclasses_key_a_function_alike_after_a_restart(cache_dir: Path) -> None:
    def kernel(beta: bool, seed: int) -> dict[str, object]:
        cells = [SETUP, PLUGINS, BETA if beta else "pass",
                 "@memo\ndef total():\n    ran('t')\n    return sum(c().run() for c in Plugin.found())",
                 "OUT['v'] = total()\nOUT['runs'] = RUNS.get('t', 0)"]
        return run_kernel(cells, cache_dir, seed=seed)

    assert kernel(False, 1) == {"v": 1, "runs": 1, "_warnings": []}
    second = kernel(True, 2)  # warns that the other version's entry is on disk
    assert (second["v"], second["runs"]) == (11, 1)
    assert kernel(False, 3)["runs"] == 0 and kernel(True, 4)["runs"] == 0


# -- copyreg: the reducer copy and pickle run for a class ---------------------------------------------------

POINT = """
import copy, copyreg, pickle
INC = 1
class P:
    def __init__(self, v):
        self.v = v
def red(p):
    return (P, (p.v + INC,))
copyreg.pickle(P, red)
"""


@pytest.mark.parametrize("trip", ["copy.deepcopy(P(v)).v", "pickle.loads(pickle.dumps(P(v))).v",
                                  "copy.copy(P(v)).v"], ids=["deepcopy", "pickle", "copy"])
def test_a_reducer_registered_again_is_a_miss(ip: Shell, trip: str) -> None:
    ip.run(POINT)
    ip.run(f"@memo\ndef roundtrip(v):\n    ran('r')\n    return {trip}")
    ip.run("first = roundtrip(3)\nagain = roundtrip(3)")
    assert (ip["first"], ip["again"], ip["RUNS"]["r"]) == (4, 4, 1)
    ip.run("def red2(p):\n    return (P, (p.v + 100,))\ncopyreg.pickle(P, red2)")
    ip.run("after = roundtrip(3)\nagain = roundtrip(3)")
    assert (ip["after"], ip["again"], ip["RUNS"]["r"]) == (103, 103, 2)


def test_a_global_the_reducer_reads_is_in_the_key(ip: Shell) -> None:
    ip.run(POINT)
    ip.run("@memo\ndef roundtrip(v):\n    ran('r')\n    return pickle.loads(pickle.dumps(P(v))).v")
    ip.run("first = roundtrip(3)")
    ip.run("INC = 50")
    ip.run("after = roundtrip(3)")
    ip.run("copyreg.dispatch_table.pop(P)")  # registered no more: P pickles by its __dict__
    ip.run("plain = roundtrip(3)")
    assert (ip["first"], ip["after"], ip["plain"], ip["RUNS"]["r"]) == (4, 53, 3, 3)


def test_a_reducer_registered_again_is_an_input_of_a_cell(ip: Shell) -> None:
    ip.run(POINT)
    cell = "%%memo\nran('c')\nr = copy.deepcopy(P(3)).v"
    ip.run(cell)
    ip.run(cell)
    assert (ip["r"], ip["RUNS"]["c"]) == (4, 1)
    ip.run("copyreg.pickle(P, lambda p: (P, (p.v + 100,)))")
    ip.run(cell)
    assert (ip["r"], ip["RUNS"]["c"]) == (103, 2)


def test_the_reducer_keys_a_function_alike_after_a_restart(cache_dir: Path) -> None:
    def kernel(inc: int, seed: int) -> dict[str, object]:
        cells = [SETUP, POINT.replace("INC = 1", f"INC = {inc}"),
                 "@memo\ndef roundtrip(v):\n    ran('r')\n    return copy.deepcopy(P(v)).v",
                 "OUT['v'] = roundtrip(3)\nOUT['runs'] = RUNS.get('r', 0)"]
        return run_kernel(cells, cache_dir, seed=seed)

    assert kernel(1, 1) == {"v": 4, "runs": 1, "_warnings": []}
    second = kernel(100, 2)  # warns that the other version's entry is on disk
    assert (second["v"], second["runs"]) == (103, 1)
    assert kernel(1, 3)["runs"] == 0 and kernel(100, 4)["runs"] == 0


@pytest.mark.parametrize("method", [
    "def __reduce__(self):\n        return (P, (self.v + {inc},))",
    "def __reduce_ex__(self, protocol):\n        return (P, (self.v + {inc},))",
    "def __deepcopy__(self, memo):\n        return P(self.v + {inc})",
    "def __getstate__(self):\n        return {{'v': self.v + {inc}}}",
], ids=["reduce", "reduce_ex", "deepcopy", "getstate"])
def test_a_copy_method_of_the_class_is_its_code(ip: Shell, method: str) -> None:
    """Guard: what the class defines itself is keyed as its code already."""
    point = "import copy\nclass P:\n    def __init__(self, v):\n        self.v = v\n    " + method
    ip.run(point.format(inc=1))
    ip.run("@memo\ndef roundtrip(v):\n    ran('r')\n    return copy.deepcopy(P(v)).v")
    ip.run("first = roundtrip(3)")
    ip.run(point.format(inc=100))
    ip.run("after = roundtrip(3)")
    assert (ip["first"], ip["after"], ip["RUNS"]["r"]) == (4, 103, 2)


def test_a_reducer_of_the_notebook_for_a_library_class_is_its_code(ip: Shell) -> None:
    ip.run("import copyreg, fractions, pickle\nBUMP = 1\n"
           "def red(f):\n    return (fractions.Fraction, (f.numerator + BUMP, f.denominator))\n"
           "copyreg.pickle(fractions.Fraction, red)")
    ip.run("@memo\ndef bumped(n):\n    ran('b')\n    return str(pickle.loads(pickle.dumps(fractions.Fraction(n, 7))))")
    try:
        ip.run("first = bumped(1)\nagain = bumped(1)")
        ip.run("BUMP = 2")
        ip.run("after = bumped(1)")
        ip.run("copyreg.dispatch_table.pop(fractions.Fraction)")
        ip.run("plain = bumped(1)")
    finally:
        ip.run("copyreg.dispatch_table.pop(fractions.Fraction, None)")
    assert (ip["first"], ip["again"], ip["after"], ip["plain"]) == ("2/7", "2/7", "3/7", "1/7")
    assert ip["RUNS"]["b"] == 3


def test_a_reducer_registered_again_is_a_miss_for_an_instance_argument(ip: Shell) -> None:
    ip.run(POINT)
    ip.run("class Box:\n    def __init__(self, v):\n        self.v = v\n    def copied(self):\n"
           "        return copy.deepcopy(P(self.v)).v\n"
           "@memo\ndef through(box):\n    ran('t')\n    return box.copied()")
    ip.run("first = through(Box(3))\nagain = through(Box(3))")
    ip.run("copyreg.pickle(P, lambda p: (P, (p.v + 100,)))")
    ip.run("after = through(Box(3))\nagain_after = through(Box(3))")
    assert (ip["first"], ip["again"], ip["after"], ip["again_after"], ip["RUNS"]["t"]) == (4, 4, 103, 103, 2)
