"""Global random state read past the watched readers: the C ``getstate``, aliases, and ``vars(random)``.

``super(random.Random, random._inst).getstate()``, ``type(random._inst).__mro__[1].getstate(random._inst)`` and the
C method held in a dict before anything was memoized read the global generator's state past ``random.Random.getstate``:
a body that copies the state so depends on it, and a kernel whose state differs computes its own number, never
another kernel's. Aliases of NumPy's legacy global generator and of torch's default generator bound at module level
(``import numpy.random.mtrand as M``, ``G = np.random.mtrand._rand``, ``TG = torch.default_generator``) key the state
they draw from or read, and so does the legacy global's bit generator held in a global (``BG.state``, a copy). So
does a body that finds ``random._inst`` in ``vars(random)`` or ``random.__dict__``, in a kernel's first memoized run
too, where the library's own wrappers going into that namespace were once taken for the body setting an attribute
anew (never cached, with a warning). Guards: a body that seeds before it reads through the C method or the held bit
generator, or that takes ``vars(random)`` whole and reads no state, still hits after a restart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import RUNS_SETUP, Shell, run_kernel

# The global states are set outside the memoized functions, from a seed each kernel is given; the names bound here
# are bound before anything is memoized, so each holds the library's own object.
_SETUP = """
import copy, random, _random
import numpy as np, torch
import numpy.random.mtrand as M
from numpy.random import mtrand
random.seed(%(seed)d); np.random.seed(%(seed)d); torch.manual_seed(%(seed)d)
INST, G, TG = random._inst, np.random.mtrand._rand, torch.default_generator
BG, BG2 = np.random.mtrand._rand._bit_generator, np.random.get_bit_generator()
HOLD = {"c": _random.Random.getstate}
def _states():
    return random.getstate(), np.random.get_state(), torch.get_rng_state()
def _put(states):
    random.setstate(states[0]); np.random.set_state(states[1]); torch.set_rng_state(states[2])
"""

_COPY = "r = random.Random(0); r.setstate((3, %s, None)); return r.random()"

# Read the global state through random's namespace taken whole, in a kernel's first memoized run: that run puts the
# library's wrappers into the namespace, which is not the body binding anything there.
_FIRST_RUN = {
    "vars(random) instance's getstate": "r = random.Random(0); r.setstate(vars(random)['_inst'].getstate()); "
                                        "return r.random()",
    "random.__dict__ instance copied": "return copy.copy(random.__dict__['_inst']).random()",
}

# Read the global state, so a kernel whose state differs must compute its own number.
_READS = {
    "super getstate": _COPY % "super(random.Random, random._inst).getstate()",
    "super getstate of a held instance": _COPY % "super(random.Random, INST).getstate()",
    "getstate found in the MRO": _COPY % "type(random._inst).__mro__[1].getstate(random._inst)",
    "C getstate held in a dict": _COPY % "HOLD['c'](random._inst)",
    "module alias draws": "return float(M._rand.random())",
    "global generator alias draws": "return float(G.random())",
    "mtrand imported by name draws": "return float(mtrand._rand.standard_normal())",
    "module alias get_state": ("r = np.random.RandomState(0); r.set_state(M._rand.get_state()); "
                               "return float(r.random_sample())"),
    "bit generator held, its state": ("b = np.random.MT19937(0); b.state = BG.state; "
                                      "return float(np.random.Generator(b).random())"),
    "bit generator held, copied": "return float(np.random.Generator(copy.deepcopy(BG2)).random())",
    "torch generator alias draws": "return float(torch.rand(1, generator=TG))",
    "torch generator alias get_state": ("g = torch.Generator(); g.set_state(TG.get_state()); "
                                        "return float(torch.rand(1, generator=g))"),
}

# Depend on no state the kernel found: each computes once, in the first kernel only.
_GUARDS = {
    "seeds then super getstate": "random.seed(5); " + _COPY % "super(random.Random, random._inst).getstate()",
    "seeds then getstate found in the MRO": "random.seed(5); " + _COPY % "random.Random.__mro__[1].getstate(INST)",
    "seeds then the held bit generator's state": ("np.random.seed(5); b = np.random.MT19937(0); b.state = BG.state; "
                                                  "return float(np.random.Generator(b).random())"),
    "takes vars(random) and reads no state": "return sorted(k for k in vars(random) if k.startswith('_inst'))",
}


def _cells(seed: int, cases: dict[str, str]) -> list[str]:
    """A kernel that sets the global states from ``seed``, then gives ``OUT[case] = [what the body computes there,
    its memoized function's first call, and a second call from the same state]`` for each case."""
    body = []
    for i, (case, code) in enumerate(cases.items()):
        body.append(f"""
def plain_{i}():
    {code}
kept = _states(); truth = plain_{i}(); _put(kept)
@memo
def memoized_{i}():
    ran({case!r})
    {code}
first = memoized_{i}(); _put(kept)
OUT[{case!r}] = [truth, first, memoized_{i}()]
""")
    return [_SETUP % {"seed": seed}, RUNS_SETUP, *body, "OUT['runs'] = dict(RUNS)"]


def _two_kernels(cache_dir: Path, cases: dict[str, str]) -> list[dict[str, Any]]:
    return [run_kernel(_cells(seed, cases), cache_dir, seed=seed) for seed in (1, 2)]


def _served_wrong(runs: list[dict[str, Any]], cases: dict[str, str]) -> list[str]:
    return [case for case in cases for run in runs if not run[case][0] == run[case][1] == run[case][2]]


def test_global_state_read_past_random_random_getstate_or_through_aliases_keys_the_state(cache_dir: Path) -> None:
    """Each kernel computes the number its own state gives, once (its second call, from the same state, hits);
    the bodies that seed first, or read no state, compute in the first kernel only. None is said to set an
    attribute anew."""
    cases = {**_FIRST_RUN, **_READS, **_GUARDS}
    runs = _two_kernels(cache_dir, cases)
    assert _served_wrong(runs, cases) == []
    assert [run["runs"] for run in runs] == [dict.fromkeys(cases, 1), dict.fromkeys({**_FIRST_RUN, **_READS}, 1)]
    assert [w for run in runs for w in run["_warnings"] if "anew" in w] == []


def test_a_super_getstate_after_the_state_moved_in_the_same_kernel_recomputes(shell: Shell) -> None:
    shell.run("""
import random
from notebook_memo import memo
@memo
def copied():
    r = random.Random(0)
    r.setstate((3, super(random.Random, random._inst).getstate(), None))
    return r.random()
random.seed(1)
first = copied()
random.random()
truth = random.random()
random.seed(1); random.random()
second = copied()
""")
    assert shell["second"] == shell["truth"] != shell["first"]
