"""The cost of keying code that lists a class's subclasses while a redefined subclass lingers: the old class, still
held by an instance, stays listed beside the new one of the same name. Such a listing is collected at most once
(while it stays the same), not on every call; both classes alive key apart from one alone, and a later change
(another definition, the old instance released) still changes the key."""

from __future__ import annotations

import gc
from collections.abc import Callable

import pytest

from tests.conftest import RUNS_SETUP, Shell

PLUGINS = """
class Plugin:
    def run(self):
        return 0
class Alpha(Plugin):
    def run(self):
        return 1
"""

BETA = "class Beta(Plugin):\n    def run(self):\n        return 10"


@pytest.fixture
def ip(shell: Shell) -> Shell:
    """A shell with ``%%memo`` loaded and the run counter ``RUNS``."""
    shell.run("%load_ext notebook_memo")
    shell.run(RUNS_SETUP)
    return shell


@pytest.fixture
def collections(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The full collections asked for by ``gc.collect`` from now on (one item each)."""
    asked: list[int] = []
    full: Callable[..., int] = gc.collect

    def collect(generation: int = 2) -> int:
        asked.append(generation)
        return full(generation)

    monkeypatch.setattr(gc, "collect", collect)
    return asked


CALLS = {
    # The body reads RUNS, a dict it changes: its code is resolved anew on every call.
    "named": "@memo\ndef f():\n    ran('n')\n    return sorted(c().run() for c in Plugin.__subclasses__())",
    "class-argument": "@memo\ndef f(k=Plugin):\n    ran('n')\n    return sorted(c().run() for c in k.__subclasses__())",
    "instance-argument": "@memo\ndef f(x=Plugin()):\n    ran('n')\n"
                         "    return sorted(c().run() for c in type(x).__subclasses__())",
    "batch": "@memo.batch('items', progress=False)\ndef counts(items, k):\n    ran('n')\n"
             "    return [sorted(c().run() for c in k.__subclasses__()) for i in items]\n"
             "def f():\n    return counts([0], Plugin)[0]",
    "cached-code": "@memo\ndef f():\n    return sorted(c().run() for c in Plugin.__subclasses__())",
}


@pytest.mark.parametrize("definition", list(CALLS.values()), ids=list(CALLS))
def test_a_lingering_redefined_subclass_is_collected_once_not_per_hit(ip: Shell, collections: list[int],
                                                                      definition: str) -> None:
    ip.run(PLUGINS + BETA + "\nold = Beta()")
    ip.run(definition)
    ip.run("first = f()")
    ip.run(BETA.replace("10", "20"))
    collections.clear()
    ip.run("after = f()\nhits = [f() for _ in range(5)]")
    assert (ip["first"], ip["after"], ip["hits"]) == ([1, 10], [1, 10, 20], [[1, 10, 20]] * 5)
    assert ip["RUNS"].get("n", 2) == 2  # the cached-code body calls no ran(), so that its code is kept
    assert len(collections) <= 1


@pytest.mark.parametrize("definition", list(CALLS.values()), ids=list(CALLS))
def test_the_old_instance_released_is_a_miss(ip: Shell, definition: str) -> None:
    """Both classes of a name alive key apart from the new one alone: once the instance holding the old one is
    released, the old class goes, and the next call keys (and runs) without it."""
    ip.run(PLUGINS + BETA + "\nold = Beta()")
    ip.run(definition)
    ip.run("first = f()")
    ip.run(BETA.replace("10", "20"))
    ip.run("both = f()\nagain = f()")
    ip.run("del old")
    ip.run("alone = f()\nagain_alone = f()")
    assert (ip["first"], ip["both"], ip["again"]) == ([1, 10], [1, 10, 20], [1, 10, 20])
    assert (ip["alone"], ip["again_alone"]) == ([1, 20], [1, 20])


@pytest.mark.parametrize("definition", list(CALLS.values()), ids=list(CALLS))
def test_a_third_definition_beside_a_lingering_one_is_a_miss(ip: Shell, collections: list[int],
                                                             definition: str) -> None:
    ip.run(PLUGINS + BETA + "\nold = Beta()")
    ip.run(definition)
    ip.run(BETA.replace("10", "20"))
    ip.run("second = f()\nagain = f()")
    collections.clear()
    ip.run(BETA.replace("10", "30"))
    ip.run("third = f()\nagain_third = f()\nagain_third = f()")
    assert (ip["second"], ip["again"]) == ([1, 10, 20], [1, 10, 20])
    assert (ip["third"], ip["again_third"]) == ([1, 10, 30], [1, 10, 30])
    assert len(collections) <= 1


def test_a_cell_listing_subclasses_beside_a_lingering_one_collects_once(ip: Shell, collections: list[int]) -> None:
    cell = "%%memo\nran('c')\nvalues = sorted(c().run() for c in Plugin.__subclasses__())"
    ip.run(PLUGINS + BETA + "\nold = Beta()")
    ip.run(BETA.replace("10", "20"))
    collections.clear()
    for _ in range(4):
        ip.run(cell)
    assert (ip["values"], ip["RUNS"]["c"]) == ([1, 10, 20], 1)
    assert len(collections) <= 1
    ip.run("del old")
    ip.run(cell)
    assert (ip["values"], ip["RUNS"]["c"]) == ([1, 20], 2)


def test_the_old_instance_released_is_a_miss_for_two_functions_whose_code_is_kept(ip: Shell) -> None:
    """Each function's kept code holds the old class it keyed: neither keeps it alive for the other once the
    instance is released."""
    ip.run(PLUGINS + BETA + "\nold = Beta()")
    ip.run("@memo\ndef f():\n    return sorted(c().run() for c in Plugin.__subclasses__())\n"
           "@memo\ndef g(x):\n    return sorted(c().run() for c in Plugin.__subclasses__()) + [x]")
    ip.run(BETA.replace("10", "20"))
    ip.run("both = (f(), g(1))\nagain = (f(), g(1))")
    ip.run("del old")
    ip.run("alone = (f(), g(1))\nagain_alone = (f(), g(1))")
    assert (ip["both"], ip["again"]) == (([1, 10, 20], [1, 10, 20, 1]),) * 2
    assert (ip["alone"], ip["again_alone"]) == (([1, 20], [1, 20, 1]),) * 2
