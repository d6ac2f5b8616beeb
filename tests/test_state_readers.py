"""Process-wide state a body reads through the standard library or a value it is given, without naming a
variable: the hash seed (``hash()``), the decimal context reached through Decimal arguments and globals, the
environment variables that ``getpass``, ``tempfile``, ``shutil.which`` and ``os.get_exec_path`` read, NumPy's
floating-point error handling (``np.seterr``), and a torch generator seeded from the operating system's
entropy. Real shells, real processes restarted with other hash seeds, real environment variables."""

from __future__ import annotations

import decimal
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Shell, run_kernel

# -- the hash seed --------------------------------------------------------------------------------------------

HASHING_CELLS = ["""
import builtins, dataclasses
from notebook_memo import memo

@dataclasses.dataclass(frozen=True)
class Row:
    name: str

    def __hash__(self):
        return hash(self.name)

@dataclasses.dataclass(frozen=True)
class Plain:
    name: str

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

@memo
def rows(row, plain):
    return {row: 1, plain: 2}[row]

fs = [own, helper, dunder, through_builtins]
OUT["got"] = [f("abc") for f in fs]
OUT["live"] = hash("abc") % 1000
OUT["lookup"] = lookup("abc") + rows(Row("abc"), Plain("abc"))
OUT["hits"] = {f.__name__: f.cache_info().hits for f in [*fs, lookup, rows]}
"""]


def test_hash_of_a_text_is_not_served_under_another_hash_seed(cache_dir: Path) -> None:
    first = run_kernel(HASHING_CELLS, cache_dir, seed=1)
    other = run_kernel(HASHING_CELLS, cache_dir, seed=2)
    assert first["live"] != other["live"]  # the two seeds do hash "abc" differently
    for out in (first, other):
        assert out["got"] == [out["live"]] * 4
    # Code that only looks values up in dicts and sets, whose own __hash__ calls hash(), hits under any seed.
    assert other["hits"] == {"own": 0, "helper": 0, "dunder": 0, "through_builtins": 0, "lookup": 1, "rows": 1}
    # Under a fixed seed (PYTHONHASHSEED set), a restart hits.
    again = run_kernel(HASHING_CELLS, cache_dir, seed=2)
    assert again["got"] == other["got"]
    assert again["hits"] == {"own": 1, "helper": 1, "dunder": 1, "through_builtins": 1, "lookup": 1, "rows": 1}


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


# -- environment variables the standard library reads --------------------------------------------------------

LIBRARY_ENV_CELL = """
import getpass, os, shutil, tempfile
from notebook_memo import memo

@memo
def user():
    return getpass.getuser()

@memo
def which():
    return shutil.which("nbm-tool")

@memo
def exec_path():
    return os.get_exec_path()[0]

@memo
def temp_folder():
    return tempfile.gettempdir()

@memo
def made_folder():
    return os.path.dirname(tempfile.mkdtemp())

@memo
def named_file():
    with tempfile.NamedTemporaryFile() as f:
        return os.path.dirname(f.name)

def answers():
    return [f() for f in (user, which, exec_path, temp_folder, made_folder, named_file)]
"""


def _tool_folders(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "binA", tmp_path / "binB"
    for folder in (a, b):
        folder.mkdir()
        tool = folder / "nbm-tool"
        tool.write_text("#!/bin/sh\n")
        tool.chmod(0o755)
    return a, b


@pytest.fixture
def temp_folder_reset() -> Iterator[None]:
    saved = tempfile.tempdir
    tempfile.tempdir = None
    yield
    tempfile.tempdir = saved


def test_what_library_functions_read_from_the_environment_is_keyed(shell: Shell, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   temp_folder_reset: None) -> None:
    bin_a, bin_b = _tool_folders(tmp_path)
    temp_a, temp_b = tmp_path / "tempA", tmp_path / "tempB"
    temp_a.mkdir()
    temp_b.mkdir()
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)
    shell.run(LIBRARY_ENV_CELL)
    monkeypatch.setenv("LOGNAME", "alice")
    monkeypatch.setenv("PATH", f"{bin_a}{os.pathsep}/usr/bin{os.pathsep}/bin")
    monkeypatch.setenv("TMPDIR", str(temp_a))
    assert shell.run("answers()") == ["alice", str(bin_a / "nbm-tool"), str(bin_a), str(temp_a), str(temp_a),
                                      str(temp_a)]
    monkeypatch.setenv("LOGNAME", "bob")
    monkeypatch.setenv("PATH", f"{bin_b}{os.pathsep}/usr/bin{os.pathsep}/bin")
    tempfile.tempdir = str(temp_b)  # set in the notebook: what gettempdir() answers from now on
    assert shell.run("answers()") == ["bob", str(bin_b / "nbm-tool"), str(bin_b), str(temp_b), str(temp_b),
                                      str(temp_b)]
    monkeypatch.setenv("USER", "carol")  # read only while LOGNAME is unset
    monkeypatch.delenv("LOGNAME")
    assert shell.run("user()") == "carol"
    assert shell.run("[f.cache_info().hits for f in (user, which, exec_path, temp_folder)]") == [0, 0, 0, 0]


def test_the_temporary_folder_is_keyed_across_restarts(cache_dir: Path, tmp_path: Path) -> None:
    temp_a, temp_b = tmp_path / "tempA", tmp_path / "tempB"
    temp_a.mkdir()
    temp_b.mkdir()
    cells = ["""
        import tempfile
        from notebook_memo import memo

        @memo
        def temp_folder():
            return tempfile.gettempdir()

        OUT["got"] = temp_folder()
        OUT["hits"] = temp_folder.cache_info().hits
        """]
    assert run_kernel(cells, cache_dir, seed=1, env={"TMPDIR": str(temp_a)}) == {"got": str(temp_a), "hits": 0,
                                                                                   "_warnings": []}
    assert run_kernel(cells, cache_dir, seed=2, env={"TMPDIR": str(temp_b)})["got"] == str(temp_b)
    assert run_kernel(cells, cache_dir, seed=3, env={"TMPDIR": str(temp_b)})["hits"] == 1


def test_a_temporary_file_without_a_name_in_the_result_does_not_key_the_temporary_folder(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, temp_folder_reset: None) -> None:
    shell.run("""
        import tempfile
        from notebook_memo import memo

        @memo
        def round_trip(data):
            with tempfile.TemporaryFile() as f:
                f.write(data)
                f.seek(0)
                return f.read()
        """)
    tempfile.tempdir = str(tmp_path)
    assert shell.run("round_trip(b'x')") == b"x"
    tempfile.tempdir = None
    monkeypatch.setenv("PATH", "/bin")
    assert shell.run("round_trip(b'x')") == b"x"
    assert shell.run("round_trip.cache_info().hits") == 1


# -- NumPy's floating-point error handling --------------------------------------------------------------------

@pytest.fixture
def numpy_errors() -> Iterator[None]:
    import numpy as np

    saved = np.geterr()
    yield
    np.seterr(**saved)


RATIO_CELL = """
import numpy as np
from notebook_memo import memo

@memo
def ratio(a, b):
    try:
        return float(np.float64(a) / np.float64(b))
    except FloatingPointError:
        return "guarded"
"""


def test_numpy_error_handling_is_keyed_for_code_using_numpy(shell: Shell, numpy_errors: None) -> None:
    shell.run(RATIO_CELL)
    shell.run("np.seterr(all='ignore')")
    assert shell.run("ratio(1, 0)") == float("inf")
    shell.run("np.seterr(all='raise')")
    assert shell.run("ratio(1, 0)") == "guarded"
    shell.run("np.seterr(all='ignore')")
    with shell.ip.builtin_trap:
        assert shell.run("""
            with np.errstate(divide="raise"):
                inside = ratio(1, 0)
            inside
            """) == "guarded"
    assert shell.run("ratio.cache_info().hits") == 0


def test_numpy_warn_and_ignore_share_one_key(shell: Shell, numpy_errors: None) -> None:
    shell.run(RATIO_CELL)
    shell.run("np.seterr(all='ignore')")
    shell.run("ratio(1, 0)")
    shell.run("np.seterr(all='warn')")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert shell.run("ratio(1, 0)") == float("inf")
    assert shell.run("ratio.cache_info().hits") == 1


# -- a torch generator seeded from entropy --------------------------------------------------------------------

def _entropy_warnings(shell: Shell, call: str) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shell.run(call)
    return [str(w.message) for w in caught if "entropy" in str(w.message)]


def test_a_torch_generator_seeded_from_entropy_warns(shell: Shell) -> None:
    shell.run("""
        import torch
        from notebook_memo import memo

        @memo
        def generator_seed():
            g = torch.Generator()
            g.seed()
            return float(torch.rand(1, generator=g))

        @memo
        def new_generator_seed():
            return torch.Generator().seed() % 1000
        """)
    for name in ("generator_seed", "new_generator_seed"):
        found = _entropy_warnings(shell, f"{name}()")
        assert len(found) == 1 and found[0].startswith(f"{name} seeds a torch generator"), found
        assert "Pass a seed" in found[0]


def test_a_torch_generator_seeded_with_a_seed_does_not_warn(shell: Shell) -> None:
    shell.run("""
        import random, torch
        from notebook_memo import memo

        @memo
        def seeded():
            g = torch.Generator()
            g.manual_seed(42)
            r = random.Random(0)
            r.seed(7)
            return float(torch.rand(1, generator=g)) + r.random()
        """)
    assert _entropy_warnings(shell, "seeded()") == []


def test_a_global_torch_generator_seeded_from_entropy_warns_in_a_function_and_a_cell(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo")
    shell.run("""
        import torch
        from notebook_memo import memo

        GEN = torch.Generator()

        @memo
        def reseeded():
            GEN.seed()
            return float(torch.rand(1, generator=GEN))
        """)
    found = _entropy_warnings(shell, "reseeded()")
    assert len(found) == 1 and found[0].startswith("reseeded seeds a torch generator"), found
    cell = "%%memo drawn\ng = torch.Generator()\ng.seed()\ndrawn = float(torch.rand(1, generator=g))"
    found = _entropy_warnings(shell, cell)
    assert len(found) == 1 and found[0].startswith("%%memo drawn seeds a torch generator"), found
