"""A global generator's state read past its watched readers, by reaching the generator object itself.

A body that copies ``random._inst`` (``copy.copy``, ``copy.deepcopy``, pickle, ``__reduce__``, the instance found by
``getattr`` or ``vars``) or reads it through ``random.Random.getstate`` (taken by name before the first memoized
call too) or the C method beneath it; that copies
NumPy's legacy global (``copy.deepcopy(np.random.mtrand._rand)``, its bit generator's ``state``,
``np.random.get_bit_generator``) or torch's default generator (``copy.deepcopy``, ``clone_state``,
``initial_seed``), reached by attribute or held in a global, depends on the global state as a draw from it does: a
kernel whose state differs computes its own number, never another kernel's. Guards: a body that draws, or seeds and
then copies, still hits after a restart.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RUNS_SETUP, Shell, run_kernel

# The global states are set outside the memoized functions, from a seed each kernel is given.
_SETUP = """
import copy, pickle, random, _random
import numpy as np, torch
%(reseed)s
R_NP, T_GEN, GETSTATE = np.random.mtrand._rand, torch.default_generator, random.Random.getstate
def _states():
    return random.getstate(), np.random.get_state(), torch.get_rng_state()
def _put(states):
    random.setstate(states[0]); np.random.set_state(states[1]); torch.set_rng_state(states[2])
"""

_PYTHON = {
    "copy": "r = copy.copy(random._inst); return r.random()",
    "deepcopy": "r = copy.deepcopy(random._inst); return r.random()",
    "pickle": "r = pickle.loads(pickle.dumps(random._inst)); return r.random()",
    "reduce": "cls, args, state = random._inst.__reduce__(); r = cls(*args); r.setstate(state); return r.random()",
    "getattr": "r = random.Random(0); r.setstate(getattr(random, '_inst').getstate()); return r.random()",
    "vars": "r = copy.copy(vars(random)['_inst']); return r.random()",
    "class getstate": "r = random.Random(0); r.setstate(random.Random.getstate(random._inst)); return r.random()",
    "class getstate taken earlier": "r = random.Random(0); r.setstate(GETSTATE(random._inst)); return r.random()",
    "C getstate": ("r = random.Random(0); r.setstate((3, _random.Random.getstate(random._inst), None)); "
                   "return r.random()"),
}

_NUMPY_TORCH = {
    "np deepcopy": "return float(copy.deepcopy(np.random.mtrand._rand).random_sample())",
    "np held deepcopy": "return float(copy.deepcopy(R_NP).random_sample())",
    "np bit generator": ("b = np.random.MT19937(); b.state = np.random.mtrand._rand._bit_generator.state; "
                         "return float(np.random.Generator(b).random())"),
    "np get_bit_generator": ("b = np.random.MT19937(); b.state = np.random.get_bit_generator().state; "
                             "return float(np.random.Generator(b).random())"),
    "torch deepcopy": "return float(torch.rand(1, generator=copy.deepcopy(torch.default_generator)))",
    "torch clone_state": "return float(torch.rand(1, generator=torch.random.default_generator.clone_state()))",
    "torch held clone_state": "return float(torch.rand(1, generator=T_GEN.clone_state()))",
    "torch initial_seed": "return torch.initial_seed()",
    "torch generator initial_seed": "return torch.default_generator.initial_seed()",
}


_RESEED = "random.seed(%(seed)d); np.random.seed(%(seed)d); torch.manual_seed(%(seed)d)"


def _cells(seed: int, cases: dict[str, str], same_state_cases: dict[str, str], same_seed: int) -> list[str]:
    """A kernel that sets the global states from ``seed``, then gives ``OUT[case] = [what the body computes there,
    what its memoized function returns]`` for each case; then sets them from ``same_seed``, which every kernel
    shares, and does the same for each of ``same_state_cases``."""
    body = []
    for i, (case, code) in enumerate({**cases, **same_state_cases}.items()):
        if i == len(cases):
            body.append(_RESEED % {"seed": same_seed})
        body.append(f"""
def plain_{i}():
    {code}
kept = _states(); truth = plain_{i}(); _put(kept)
@memo
def memoized_{i}():
    ran({case!r})
    {code}
OUT[{case!r}] = [truth, memoized_{i}()]
""")
    return [_SETUP % {"reseed": _RESEED % {"seed": seed}}, RUNS_SETUP, *body, "OUT['runs'] = dict(RUNS)"]


def _served_wrong(runs: list[dict[str, Any]], cases: dict[str, str]) -> list[str]:
    return [case for case in cases for run in runs if run[case][0] != run[case][1]]


_GUARDS = {
    "draws": "return random.random() + float(np.random.rand()) + float(torch.rand(1))",
    "seeds then copies": "random.seed(5); return copy.copy(random._inst).random()",
    "seeds then deep-copies": "random.seed(5); return copy.deepcopy(random._inst).random()",
    "np seeds then copies": "np.random.seed(5); return float(copy.deepcopy(np.random.mtrand._rand).random_sample())",
    "np seeds then its bit generator": ("np.random.seed(5); b = np.random.MT19937(); "
                                        "b.state = np.random.get_bit_generator().state; "
                                        "return float(np.random.Generator(b).random())"),
    "torch seeds then clones": "torch.manual_seed(5); return float(torch.rand(1, generator=T_GEN.clone_state()))",
}


def test_global_generators_copied_key_their_state_and_a_restart_with_the_same_state_still_hits(
        cache_dir: Path) -> None:
    """Python's, NumPy's and torch's generators copied, in two kernels whose states differ, then the guards, in the
    same kernels once both set the states from one seed: all share one pair of kernels."""
    runs = [run_kernel(_cells(seed, {**_PYTHON, **_NUMPY_TORCH}, _GUARDS, same_seed=7), cache_dir, seed=seed)
            for seed in (1, 2)]
    for cases in (_PYTHON, _NUMPY_TORCH, _GUARDS):
        assert _served_wrong(runs, cases) == []
    for case in (*_PYTHON, *_NUMPY_TORCH):
        assert [run["runs"].get(case) for run in runs] == [1, 1], f"{case}: should run in each kernel"
    for case in _GUARDS:
        assert [run["runs"].get(case) for run in runs] == [1, None], f"{case}: should run once, then hit"
    assert set(runs[0]["runs"]) | set(runs[1]["runs"]) == {*_PYTHON, *_NUMPY_TORCH, *_GUARDS}


def test_a_copy_after_the_state_moved_in_the_same_kernel_recomputes(shell: Shell) -> None:
    """In one kernel: the state moves between two calls (a draw outside), and each call copies the state it meets."""
    shell.run("""
import copy, random
import numpy as np
from notebook_memo import memo
@memo
def python_copy():
    return copy.copy(random._inst).random()
@memo
def numpy_copy():
    return float(copy.deepcopy(np.random.mtrand._rand).random_sample())
random.seed(1); np.random.seed(1)
first = python_copy(), numpy_copy()
random.random(); np.random.rand()
truth = copy.copy(random._inst).random(), float(copy.deepcopy(np.random.mtrand._rand).random_sample())
second = python_copy(), numpy_copy()
""")
    assert shell["second"] == shell["truth"] != shell["first"]


def test_a_global_generator_rebound_to_another_instance_keys_that_instance_s_state(
        shell: Shell, monkeypatch: pytest.MonkeyPatch) -> None:
    """``random``'s functions bound to another generator's methods once ours are in place (random.Random.getstate
    wrapped): a body drawing through them is keyed by that generator's state."""
    shell.run("""
from notebook_memo import memo
@memo
def warm():
    return 1
warm()
""")
    other = random.Random(3)
    for name in ("getstate", "setstate", "random"):
        monkeypatch.setattr(random, name, getattr(other, name))
    shell.run("""
import random
@memo
def draw():
    return random.random()
first = draw()
""")
    other.seed(4)
    truth = random.Random(4).random()
    shell.run("second = draw()")
    assert shell["second"] == truth != shell["first"]
