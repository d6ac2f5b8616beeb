"""Small defects of recently merged changes: a query text computed by a method of a constant text
(``"a > @{}".format(NAME)``, ``" ".join([...])``) is not taken for that constant, in ``@memo`` functions and
``%%memo`` cells; nor is an environment variable's name computed the same way (``os.getenv("x".upper())``).
SQLite's clock and connection history words (``current_date``, ``changes()``) in a text that is no SQL (a frame's
column, a docstring) stay quiet, while SQL calling them, whole or built in parts, still warns. A body that seeds
NumPy's or torch's global generator before it hands on the generator object (``torch.manual_seed(x)``, then
``generator=torch.default_generator``) hits across kernels whose states differ; one that takes the object before
its seed, or seeds it on one branch only, is still keyed by the state it found.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

from notebook_memo import MemoWarning
from tests.conftest import RUNS_SETUP, Shell, run_kernel

FRAME = """
import os
import pandas as pd
from notebook_memo import memo
DF = pd.DataFrame({'a': range(10)})
T = 3
NAME = 'T'
"""

# Texts computed from a constant by its own method: what they read is not the constant's @names.
METHOD_TEXTS = {
    "format": 'DF.query("a > @{}".format(NAME))',
    "join": 'DF.query(" ".join(["a", ">", "@T"]))',
    "replace": 'DF.query("a > @U".replace("U", "T"))',
    "the class's query": 'pd.DataFrame.query(DF, "a > @{}".format(NAME))',
}


@pytest.mark.parametrize("how", sorted(METHOD_TEXTS))
def test_a_memo_function_querying_a_text_made_by_a_constants_method_warns(shell: Shell, how: str) -> None:
    shell.run(FRAME + f"\n@memo\ndef rows():\n    return len({METHOD_TEXTS[how]})")
    with pytest.warns(MemoWarning, match="cannot be hashed"):
        assert shell.run("rows()") == 6


@pytest.mark.parametrize("how", sorted(METHOD_TEXTS))
def test_a_cell_querying_a_text_made_by_a_constants_method_runs_each_time(shell: Shell, how: str) -> None:
    shell.run("%load_ext notebook_memo\n" + FRAME + RUNS_SETUP)
    cell = f"%%memo\nran('cell')\nn = len({METHOD_TEXTS[how]})"
    with pytest.warns(MemoWarning, match="text computed at run time"):
        shell.run(cell)
    shell.run("T = 7")
    shell.run(cell)
    assert (shell["n"], shell["RUNS"]) == (2, {"cell": 2})


def test_a_constant_text_with_a_method_of_its_own_result_still_keys_its_names(shell: Shell) -> None:
    """Guard: a constant text passed whole, whose query's result has methods called on it, is read as written."""
    shell.run(FRAME + '\n@memo\ndef rows():\n    return DF.query("a > @T").a.sum().item()')
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        assert shell.run("rows()") == 39
        shell.run("T = 7")
        assert shell.run("rows()") == 17


def test_an_environment_variable_named_by_a_constants_method_is_read_by_its_computed_name(
        shell: Shell, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBM_FIXJ_MODE", "a")
    shell.run(FRAME + '\n@memo\ndef mode():\n    return os.getenv("nbm_fixj_mode".upper(), "none")')
    assert shell.run("mode()") == "a"
    monkeypatch.setenv("NBM_FIXJ_MODE", "b")
    assert shell.run("mode()") == "b"


SQL = """
import sqlite3
import pandas as pd
from notebook_memo import memo
HEAD = "SELECT 1 WHERE date('2000-01-01') < "
"""

# Bodies whose texts name SQLite's clock or history without being SQL: a column, a docstring.
NOT_SQL = {
    "a column named current_date":
        'df = pd.DataFrame({"current_date": [1, 2]})\n    return int(df["current_date"].sum())',
    "a column named changes()": 'df = pd.DataFrame({"changes()": [1, 2]})\n    return int(df["changes()"].sum())',
    "a docstring": '"""Sum the current_date column; see changes() for how."""\n    return 3',
}


@pytest.mark.parametrize("how", sorted(NOT_SQL))
def test_a_text_naming_sqlites_clock_that_is_no_sql_stays_quiet(shell: Shell, how: str) -> None:
    shell.run(SQL + f"\n@memo\ndef total():\n    {NOT_SQL[how]}")
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        assert shell.run("total()") == 3
        assert shell.run("total()") == 3


# SQL reading SQLite's clock: written out whole, or built in parts whose verb is elsewhere.
CLOCK_SQL = {
    "whole": '"SELECT CURRENT_DATE"',
    "after a global's text": 'HEAD + "CURRENT_DATE"',
    "an f-string's part": 'f"SELECT {1} WHERE date(\'2000-01-01\') < CURRENT_DATE"',
}


@pytest.mark.parametrize("how", sorted(CLOCK_SQL))
def test_sql_reading_sqlites_clock_still_warns(shell: Shell, how: str) -> None:
    shell.run(SQL + f"\n@memo\ndef day():\n    return sqlite3.connect(':memory:').execute({CLOCK_SQL[how]}).fetchall()")
    with pytest.warns(MemoWarning, match="reads the clock"):
        shell.run("day()")


# The kernel's global states, set from a seed each kernel is given, outside the memoized functions.
_STATES = """
import copy
import numpy as np, torch
np.random.seed(%(seed)d); torch.manual_seed(%(seed)d)
SEED_NOW = False
def _states():
    return np.random.get_state(), torch.get_rng_state()
def _put(states):
    np.random.set_state(states[0]); torch.set_rng_state(states[1])
START = _states()
"""

# Bodies that seed the global generator, then hand its object on: what they give does not depend on the state found.
SEEDED_FIRST = {
    "torch, handed to a draw": ("torch.manual_seed(5); "
                                "return torch.randperm(5, generator=torch.default_generator).tolist()"),
    "torch.random, handed to a draw": ("torch.random.manual_seed(5); "
                                       "return float(torch.rand(1, generator=torch.default_generator))"),
    "numpy, copied": "np.random.seed(5); return float(copy.deepcopy(np.random.mtrand._rand).random_sample())",
}
# Bodies whose result depends on the state found, though they seed: the object taken before the seed, or a seed on
# one branch only (not taken here).
NOT_SEEDED_FIRST = {
    "torch, copied before the seed": ("g = copy.deepcopy(torch.default_generator); torch.manual_seed(5); "
                                      "return float(torch.rand(1, generator=g))"),
    "numpy, copied before the seed": ("r = copy.deepcopy(np.random.mtrand._rand); np.random.seed(5); "
                                      "return float(r.random_sample())"),
    "torch, seeded on a branch": ("torch.manual_seed(5) if SEED_NOW else None; "
                                  "return torch.randperm(5, generator=torch.default_generator).tolist()"),
}


def _kernel(seed: int, cases: dict[str, str]) -> list[str]:
    """A kernel whose global states are set from ``seed``, giving ``OUT[case] = [what the body gives there, what its
    memoized function returns]``."""
    cells = [_STATES % {"seed": seed}, RUNS_SETUP]
    for i, (case, code) in enumerate(cases.items()):
        cells.append(f"""
def plain_{i}():
    {code}
_put(START); truth = plain_{i}(); _put(START)  # each case meets the kernel's own states
@memo
def memoized_{i}():
    ran({case!r})
    {code}
OUT[{case!r}] = [truth, memoized_{i}()]
""")
    return [*cells, "OUT['runs'] = dict(RUNS)"]


def _two_kernels(cache_dir: Path, cases: dict[str, str]) -> list[dict[str, Any]]:
    return [run_kernel(_kernel(seed, cases), cache_dir, seed=seed) for seed in (1, 2)]


def test_a_body_seeding_the_global_generator_before_handing_it_on_hits_after_a_restart_unless_it_took_it_first(
        cache_dir: Path) -> None:
    """A body seeding first hits in the second kernel; guard: the object taken before the seed, or a seed on a
    branch, leaves the result tied to the state found, so it runs again. Both kinds share one pair of kernels."""
    cases = {**SEEDED_FIRST, **NOT_SEEDED_FIRST}
    runs = _two_kernels(cache_dir, cases)
    for case in cases:
        assert [run[case][0] == run[case][1] for run in runs] == [True, True], f"{case}: served another state's value"
    for case in SEEDED_FIRST:
        assert [run["runs"].get(case) for run in runs] == [1, None], f"{case}: should run once, then hit"
    for case in NOT_SEEDED_FIRST:
        assert [run["runs"].get(case) for run in runs] == [1, 1], f"{case}: should run in each kernel"
    assert set(runs[0]["runs"]) | set(runs[1]["runs"]) == set(cases)


def test_a_body_seeding_torch_before_handing_on_its_generator_runs_once_while_the_notebook_draws(
        shell: Shell) -> None:
    shell.run(_STATES % {"seed": 1} + RUNS_SETUP + f"""
@memo
def perm():
    ran('perm')
    {SEEDED_FIRST["torch, handed to a draw"]}
first = perm(); torch.rand(1); second = perm(); torch.rand(1); third = perm()
""")
    assert shell["first"] == shell["second"] == shell["third"] and shell["RUNS"] == {"perm": 1}
