"""Keys of what a function reaches past its own globals: a name the notebook put in (or replaced in) builtins;
a library class the notebook patched with its own code; globals read through frames or a function's
``__globals__``; the virtual subclasses registered with a user ABC. Each must key apart where it changed
(no false hit), alike across restarts (no false miss), or be reported where it cannot be known."""

from __future__ import annotations

import builtins
import warnings
from pathlib import Path

import pytest

from tests.conftest import Shell, run_kernel

SETUP = """
from notebook_memo import memo
class _Runs(dict):
    def __memo_key__(self): return 'runs'
RUNS = _Runs()
def ran(name):
    RUNS[name] = RUNS.get(name, 0) + 1
"""


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
