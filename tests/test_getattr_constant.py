"""Names reached through a constant (``getattr``, ``attrgetter``, a namespace's key), and library ABCs as values.

``copy.deepcopy(getattr(np.random.mtrand, "_rand"))`` (with a default, nested, through
``operator.attrgetter("mtrand._rand")(np.random)`` or ``np.random.mtrand.__dict__["_rand"]``) reads NumPy's global
state as ``np.random.mtrand._rand`` does, so a kernel whose state differs computes its own number; a function of the
user's patched into a library module and reached so (``getattr(statistics, "fmean")``, ``vars(statistics)["fmean"]``,
or bound later where a default was taken), and a user submodule's data (``getattr(pkg, "sub").VALUE``), are keyed as
their dotted reads are; a ``%%memo`` cell keys every chain it reads of a name, not the first alone. A library ABC
passed as a value (``f(collections.abc.Sequence)``) counts the user classes registered with it. Guards: a restart
with the same state hits, and a name computed at run time still counts the whole user module.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RUNS_SETUP, Shell, run_kernel

_SETUP = """
import copy, operator
import numpy as np, torch
np.random.seed(%(seed)d); torch.manual_seed(%(seed)d)
"""

_STATE_READS = {
    "getattr": "return float(copy.deepcopy(getattr(np.random.mtrand, '_rand')).random_sample())",
    "getattr default": "return float(copy.deepcopy(getattr(np.random.mtrand, '_rand', None)).random_sample())",
    "getattr dotted default": ("return float(copy.deepcopy(getattr(np.random.mtrand, '_rand', np.random.mtrand))"
                               ".random_sample())"),
    "nested getattr": ("return float(copy.deepcopy(getattr(getattr(np.random, 'mtrand'), '_rand'))"
                       ".random_sample())"),
    "getattr then attribute": ("b = np.random.MT19937(); b.state = getattr(np.random.mtrand, '_rand')"
                               "._bit_generator.state; return float(np.random.Generator(b).random())"),
    "__dict__": "return float(copy.deepcopy(np.random.mtrand.__dict__['_rand']).random_sample())",
    "attrgetter": "return float(copy.deepcopy(operator.attrgetter('mtrand._rand')(np.random)).random_sample())",
    "torch getattr": "return float(torch.rand(1, generator=copy.deepcopy(getattr(torch, 'default_generator'))))",
}


def _kernel(seed: int) -> list[str]:
    """A kernel whose global states come from ``seed``, giving ``OUT[case] = [what the body computes there, what its
    memoized function returns]`` for each case, and the body runs in ``OUT['runs']``."""
    body = []
    for i, (case, code) in enumerate(_STATE_READS.items()):
        body.append(f"""
def plain_{i}():
    {code}
kept = np.random.get_state(), torch.get_rng_state()
truth = plain_{i}()
np.random.set_state(kept[0]); torch.set_rng_state(kept[1])
@memo
def memoized_{i}():
    ran({case!r})
    {code}
OUT[{case!r}] = [truth, memoized_{i}()]
""")
    return [_SETUP % {"seed": seed}, RUNS_SETUP, *body, "OUT['runs'] = dict(RUNS)"]


def _kernels(cache_dir: Path, seeds: tuple[int, int]) -> list[dict[str, Any]]:
    return [run_kernel(_kernel(seed), cache_dir, seed=hash_seed) for hash_seed, seed in zip((1, 2), seeds)]


def _served_wrong(runs: list[dict[str, Any]]) -> list[str]:
    return [case for case in _STATE_READS for run in runs if run[case][0] != run[case][1]]


def test_a_global_generator_reached_by_a_constant_getattr_keys_its_state(cache_dir: Path) -> None:
    runs = _kernels(cache_dir, seeds=(1, 2))
    assert _served_wrong(runs) == []
    assert [run["runs"] for run in runs] == [dict.fromkeys(_STATE_READS, 1)] * 2


def test_a_restart_with_the_same_state_still_hits(cache_dir: Path) -> None:
    runs = _kernels(cache_dir, seeds=(7, 7))
    assert _served_wrong(runs) == []
    assert [run["runs"] for run in runs] == [dict.fromkeys(_STATE_READS, 1), {}]


def _package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Write a user package, of a name no other test imported, with a submodule ``sub`` (``VALUE``, ``helper``) and
    data of its own (``THRESHOLD``, ``OTHER``); return its name."""
    name = f"gac_{tmp_path.name.replace('-', '_')}"
    folder = tmp_path / "mods" / name
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text("THRESHOLD = 1\nOTHER = 2\n")
    (folder / "sub.py").write_text("VALUE = 1\ndef helper():\n    return 10\n")
    monkeypatch.syspath_prepend(str(folder.parent))
    return name


_BODIES = """
import statistics, operator, {pkg}, {pkg}.sub
from notebook_memo import memo
def mine(xs):
    return 1.0
statistics.fmean = mine
@memo
def patched():
    return getattr(statistics, "fmean")([1, 2])
@memo
def patched_vars():
    return vars(statistics)["fmean"]([1, 2])
@memo
def patched_dict():
    return statistics.__dict__["fmean"]([1, 2])
@memo
def patched_later():
    found = getattr(statistics, "gac_extra", None)
    return None if found is None else found()
@memo
def sub_value():
    return getattr({pkg}, "sub").VALUE + operator.attrgetter("sub.VALUE")({pkg}) * 100
@memo
def sub_helper():
    return getattr({pkg}, "sub").helper()
@memo
def threshold():
    return getattr({pkg}, "THRESHOLD")
first = [patched(), patched_vars(), patched_dict(), patched_later(), sub_value(), sub_helper(), threshold()]
"""

# One change at a time (a change of the package's own data changes every key that counts it whole), each followed by
# the call that reads what changed, and what it returns then.
_CHANGES = [
    ("def mine(xs):\n    return 2.0\nstatistics.fmean = mine", "patched(), patched_vars(), patched_dict()",
     (2.0, 2.0, 2.0)),
    ("def extra():\n    return 3\nstatistics.gac_extra = extra", "patched_later()", 3),
    ("{pkg}.sub.VALUE = 5", "sub_value()", 505),
    ("def helper():\n    return 20\n{pkg}.sub.helper = helper", "sub_helper()", 20),
    ("{pkg}.THRESHOLD = 7", "threshold()", 7),
]


def test_what_a_constant_getattr_reaches_is_keyed_in_the_same_kernel(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A library module's patched function, one bound later where a default was taken, a user submodule's data and
    function, and a user module's data, each changed between two calls: the second call computes anew."""
    pkg = _package(tmp_path, monkeypatch)
    monkeypatch.setattr(statistics, "fmean", statistics.fmean)  # put back after the test
    try:
        shell.run(_BODIES.format(pkg=pkg))
        assert shell["first"] == [1.0, 1.0, 1.0, None, 101, 10, 1]
        served = {}
        for change, call, _ in _CHANGES:
            shell.run(change.format(pkg=pkg))
            served[call] = shell.run(call)
        assert served == {call: value for _, call, value in _CHANGES}
    finally:
        vars(statistics).pop("gac_extra", None)


def test_a_computed_name_still_counts_the_whole_user_module(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = _package(tmp_path, monkeypatch)
    shell.run(RUNS_SETUP)
    shell.run(f"""
import {pkg}
@memo
def computed(name):
    ran("computed")
    return getattr({pkg}, name)
computed("THRESHOLD"); computed("THRESHOLD")
{pkg}.OTHER = 3
computed("THRESHOLD")
""")
    assert shell["RUNS"] == {"computed": 2}


def test_a_cell_keys_every_chain_it_reads_of_a_name(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cell reading two attributes of one user module, or two of a library module where the second holds the
    user's patch, or a chain after getattr with a constant: a change to the one read second is a miss."""
    pkg = _package(tmp_path, monkeypatch)
    monkeypatch.setattr(statistics, "fmean", statistics.fmean)  # put back after the test
    shell.run(f"%load_ext notebook_memo\nimport statistics, {pkg}, {pkg}.sub\n"
              "def mine(xs):\n    return 1.0\nstatistics.fmean = mine")
    cells = {
        "x": f"x = {pkg}.THRESHOLD + {pkg}.OTHER",
        "y": "y = statistics.median([1]) + statistics.fmean([1])",
        "z": f"z = {pkg}.THRESHOLD + getattr({pkg}, 'sub').VALUE",
    }
    for cell in cells.values():
        shell.run(f"%%memo\n{cell}\n")
    assert [shell[name] for name in cells] == [3, 2.0, 2]
    shell.run(f"{pkg}.OTHER = 5\ndef mine(xs):\n    return 4.0\nstatistics.fmean = mine\n{pkg}.sub.VALUE = 3")
    for cell in cells.values():
        shell.run(f"%%memo\n{cell}\n")
    assert [shell[name] for name in cells] == [6, 5.0, 4]


def test_a_cell_copying_the_global_generator_by_a_second_chain_keys_its_state(cache_dir: Path) -> None:
    def kernel(seed: int) -> list[str]:
        return [f"import copy\nimport numpy as np\n%load_ext notebook_memo\nnp.random.seed({seed})",
                "%%memo\nc = np.pi\nd = float(copy.deepcopy(getattr(np.random.mtrand, '_rand')).random_sample())\n",
                f"np.random.seed({seed})\nOUT['truth'] = float(np.random.random_sample())\nOUT['d'] = d"]
    runs = [run_kernel(kernel(seed), cache_dir, seed=seed) for seed in (1, 2, 1)]
    assert [run["d"] for run in runs] == [run["truth"] for run in runs]


_ABC_BODIES = """
import collections.abc, numbers
class MyVec:
    pass
class MyNum:
    pass
V = MyVec()
KINDS = (numbers.Number,)
@memo
def is_kind(kind):
    ran("is_kind")
    return isinstance(V, kind)
@memo
def is_sub(kind, cls):
    ran("is_sub")
    return issubclass(cls, kind)
@memo
def held():
    ran("held")
    return isinstance(MyNum(), KINDS[0])
def calls():
    return [is_kind(collections.abc.Sequence), is_sub(collections.abc.Mapping, MyVec), held()]
"""


def test_a_library_abc_passed_as_a_value_keys_the_user_classes_registered_with_it(shell: Shell) -> None:
    """``f(collections.abc.Sequence)`` whose body asks ``isinstance``, then ``Sequence.register(MyVec)``: the next call
    computes anew, as one whose body names the ABC does; so does a library ABC held in a global tuple."""
    shell.run(RUNS_SETUP)
    shell.run(_ABC_BODIES)
    assert shell.run("calls()") == [False, False, False]
    shell.run("collections.abc.Sequence.register(MyVec)\ncollections.abc.Mapping.register(MyVec)\n"
              "numbers.Number.register(MyNum)")
    assert shell.run("calls()") == [True, True, True]
    assert shell.run("calls()") == [True, True, True]
    assert shell["RUNS"] == {"is_kind": 2, "is_sub": 2, "held": 2}


def test_a_library_abc_value_with_registrations_hits_after_a_restart(cache_dir: Path) -> None:
    cells = [RUNS_SETUP, _ABC_BODIES, "collections.abc.Sequence.register(MyVec)\nnumbers.Number.register(MyNum)",
             "OUT['calls'] = calls()\nOUT['runs'] = dict(RUNS)"]
    runs = [run_kernel(cells, cache_dir, seed=seed) for seed in (1, 2)]
    assert [run["calls"] for run in runs] == [[True, False, True]] * 2
    assert [run["runs"] for run in runs] == [{"is_kind": 1, "is_sub": 1, "held": 1}, {}]
