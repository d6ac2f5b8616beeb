"""Process-wide state a body reads through the standard library or a value it is given, without naming a
variable: the hash seed (``hash()``), the decimal context reached through Decimal arguments and globals, the
environment variables that ``getpass``, ``tempfile``, ``shutil.which`` and ``os.get_exec_path`` read, NumPy's
floating-point error handling (``np.seterr``), and a torch generator seeded from the operating system's
entropy. Real shells, real processes restarted with other hash seeds, real environment variables."""

from __future__ import annotations

import decimal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Shell, run_kernel

# -- the hash seed --------------------------------------------------------------------------------------------

HASHING_CELLS = ["""
import builtins
from notebook_memo import memo

def bucket(s):
    return hash(s) % 1000

@memo
def own(s):
    return hash(s) % 1000

@memo
def helper(s):
    return bucket(s)

@memo
def dunder(s):
    return s.__hash__() % 1000

@memo
def through_builtins(s):
    return builtins.hash(s) % 1000

@memo
def lookup(s):
    return {"abc": 1, "xyz": 2}[s]

fs = [own, helper, dunder, through_builtins]
OUT["got"] = [f("abc") for f in fs]
OUT["live"] = hash("abc") % 1000
OUT["lookup"] = lookup("abc")
OUT["hits"] = {f.__name__: f.cache_info().hits for f in [*fs, lookup]}
"""]


def test_hash_of_a_text_is_not_served_under_another_hash_seed(cache_dir: Path) -> None:
    first = run_kernel(HASHING_CELLS, cache_dir, seed=1)
    other = run_kernel(HASHING_CELLS, cache_dir, seed=2)
    assert first["live"] != other["live"]  # the two seeds do hash "abc" differently
    for out in (first, other):
        assert out["got"] == [out["live"]] * 4
    assert other["hits"] == {"own": 0, "helper": 0, "dunder": 0, "through_builtins": 0, "lookup": 1}
    # Under a fixed seed (PYTHONHASHSEED set), a restart hits.
    again = run_kernel(HASHING_CELLS, cache_dir, seed=2)
    assert again["got"] == other["got"]
    assert again["hits"] == {"own": 1, "helper": 1, "dunder": 1, "through_builtins": 1, "lookup": 1}


# -- the decimal context --------------------------------------------------------------------------------------

@pytest.fixture
def decimal_context() -> Iterator[None]:
    saved = decimal.getcontext().copy()
    yield
    decimal.setcontext(saved)


DECIMAL_CELL = """
import decimal, statistics
from decimal import Decimal
from notebook_memo import memo

ONE, THREE = Decimal(1), Decimal(3)

@memo
def div(a, b):
    return a / b

@memo
def div_globals():
    return ONE / THREE

@memo
def mean(xs):
    return statistics.mean(xs)

class Pair:
    def __init__(self, a, b):
        self.a, self.b = a, b

@memo
def ratio(pair):
    return pair.a / pair.b

def answers():
    return [str(div(ONE, THREE)), str(div_globals()), str(mean([ONE, THREE, THREE])), str(ratio(Pair(ONE, THREE)))]
"""


def test_decimal_arguments_and_globals_are_keyed_by_the_decimal_context(shell: Shell, decimal_context: None) -> None:
    shell.run(DECIMAL_CELL)
    assert shell.run("answers()")[0] == "0." + "3" * 28
    shell.run("decimal.getcontext().prec = 5")
    assert shell.run("answers()") == ["0.33333", "0.33333", "2.3333", "0.33333"]
    shell.run("decimal.getcontext().prec = 28")
    assert shell.run("answers()")[0] == "0." + "3" * 28
    assert shell.run("[f.cache_info().hits for f in (div, div_globals, mean, ratio)]") == [1, 1, 1, 1]


def test_code_without_decimals_does_not_key_the_decimal_context(shell: Shell, decimal_context: None) -> None:
    shell.run("""
        import decimal
        from fractions import Fraction
        from notebook_memo import memo

        @memo
        def half(a, b):
            return Fraction(a, b) / 2
        """)
    shell.run("half(1, 3)")
    shell.run("decimal.getcontext().prec = 5")
    assert shell.run("str(half(1, 3))") == "1/6"
    assert shell.run("half.cache_info().hits") == 1


def test_a_cell_dividing_decimal_globals_is_keyed_by_the_decimal_context(shell: Shell, decimal_context: None) -> None:
    shell.run("%load_ext notebook_memo")
    shell.run("from decimal import Decimal, getcontext\nONE, THREE = Decimal(1), Decimal(3)")
    cell = "%%memo third\nthird = str(ONE / THREE)"
    shell.run(cell)
    shell.run("getcontext().prec = 5")
    shell.run(cell)
    assert shell["third"] == "0.33333"
