"""Random-state readers and seeders held outside module globals.

``random.getstate``, ``np.random.get_state`` or ``random.seed`` bound before the first memoized call ran, and kept
where no rebinding reaches (a dict item, a class attribute, a ``functools.partial``, a closure cell, a default
argument, a bound method of the hidden ``random._inst``), are the library's own functions, whose calls no wrapper
sees. A body that copies the global state through such a reader depends on that state: a restarted kernel whose
state differs computes its own number, never another kernel's. A body that seeds through such a seeder cannot be
told from one that draws first: it recomputes in a new kernel, and says why. Guards: the same holders holding our
wrapper, and a reader taken by name, still hit where the body seeds first.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import RUNS_SETUP, run_kernel

# Bound before anything was memoized: each holder keeps the library's own function.
_HOLDERS = """
import functools, random
HOLD = {"f": random.%(name)s}
class Tools:
    f = staticmethod(random.%(name)s)
PART = functools.partial(random.%(name)s)
def _make():
    g = random.%(name)s
    def inner(*a):
        return g(*a)
    return inner
CLOSURE = _make()
"""

# holder -> (what the body calls it as, the parameter list giving it a default)
_CALLS = {
    "dict item": ('HOLD["f"]', ""),
    "class attribute": ("Tools.f", ""),
    "partial": ("PART", ""),
    "closure cell": ("CLOSURE", ""),
    "default argument": ("f", "f=random.%(name)s"),
    "bound method of random._inst": ("random._inst.%(name)s", ""),
}


def _reader_cells() -> list[str]:
    """A kernel copying the state through each holder in turn, every holder bound before the first memoized call:
    ``OUT[holder] = [the number the kernel's state gives, what the memoized function returns]``."""
    cells = [_HOLDERS % {"name": "getstate"}, RUNS_SETUP]
    for i, (holder, (call, params)) in enumerate(_CALLS.items()):
        cells.append(f"""
@memo
def copied_{i}({params % {"name": "getstate"}}):
    ran({holder!r})
    r = random.Random(0)
    r.setstate({call % {"name": "getstate"}}())
    return r.random()
own = random.Random(0)
own.setstate(random.getstate())
OUT[{holder!r}] = [own.random(), copied_{i}()]
""")
    return [*cells, "OUT['runs'] = dict(RUNS)"]


def test_a_state_reader_held_before_the_first_call_keys_the_state(cache_dir: Path) -> None:
    """Each kernel starts with its own random state: each computes the number that state gives, whichever holder
    keeps the reader (the holders share one pair of kernels)."""
    runs = [run_kernel(_reader_cells(), cache_dir, seed=s) for s in (1, 2)]
    for holder in _CALLS:
        assert [r[holder][1] for r in runs] == [r[holder][0] for r in runs], holder
        assert [r["runs"].get(holder) for r in runs] == [1, 1], holder
    assert set(runs[0]["runs"]) == set(runs[1]["runs"]) == set(_CALLS)


def test_numpy_state_reader_held_in_a_dict_keys_the_state(cache_dir: Path) -> None:
    cells = ["""
import numpy as np
HOLD = {"get": np.random.get_state}
""", RUNS_SETUP, """
@memo
def copied():
    ran('copied')
    r = np.random.RandomState(0)
    r.set_state(HOLD["get"]())
    return float(r.random_sample())
own = np.random.RandomState(0)
own.set_state(np.random.get_state())
OUT['truth'] = float(own.random_sample())
OUT['v'] = copied()
OUT['runs'] = dict(RUNS)
"""]
    runs = [run_kernel(cells, cache_dir, seed=s) for s in (1, 2)]
    assert [r["v"] for r in runs] == [r["truth"] for r in runs]
    assert [r["runs"] for r in runs] == [{"copied": 1}, {"copied": 1}]


def test_a_reader_held_in_a_dict_keys_the_state_on_later_calls_too(cache_dir: Path) -> None:
    """In one kernel: the state moves between calls (the kernel draws), so the second call is not the first's."""
    cells = [_HOLDERS % {"name": "getstate"}, RUNS_SETUP, """
@memo
def copied():
    ran('copied')
    r = random.Random(0)
    r.setstate(HOLD["f"]())
    return r.random()
first = copied()
random.random()
own = random.Random(0)
own.setstate(random.getstate())
OUT['truth'] = own.random()
OUT['v'] = copied()
OUT['same'] = copied()
OUT['runs'] = dict(RUNS)
"""]
    out = run_kernel(cells, cache_dir, seed=1)
    assert out["v"] == out["truth"] == out["same"]
    assert out["runs"] == {"copied": 2}


# -- guards: what the wrappers see is still known precisely ---------------------------------------------------

def test_a_reader_taken_by_name_after_seeding_still_hits_after_a_restart(cache_dir: Path) -> None:
    """``from random import getstate`` in the first cell (rebound to the wrapper as the first call runs): a body
    that seeds before it reads does not depend on the state it found."""
    cells = ["from random import getstate\nimport random", RUNS_SETUP, """
@memo
def copied():
    ran('copied')
    random.seed(3)
    r = random.Random(0)
    r.setstate(getstate())
    return r.random()
OUT['v'] = copied()
OUT['runs'] = dict(RUNS)
"""]
    first, second = (run_kernel(cells, cache_dir, seed=s) for s in (1, 2))
    assert first["runs"] == {"copied": 1} and second["runs"] == {}
    assert first["v"] == second["v"]


def test_our_wrapper_held_in_a_dict_after_seeding_still_hits_after_a_restart(cache_dir: Path) -> None:
    """A dict made after a memoized call ran holds the wrapper, whose calls are seen: seeded first, it hits."""
    cells = [RUNS_SETUP, """
import random
@memo
def warm():
    return 1
warm()
HOLD = {"f": random.getstate}

@memo
def copied():
    ran('copied')
    random.seed(3)
    r = random.Random(0)
    r.setstate(HOLD["f"]())
    return r.random()
OUT['v'] = copied()
OUT['runs'] = dict(RUNS)
"""]
    first, second = (run_kernel(cells, cache_dir, seed=s) for s in (1, 2))
    assert first["runs"] == {"copied": 1} and second["runs"] == {}
    assert first["v"] == second["v"]


# -- seeders held where no wrapper reaches -------------------------------------------------------------------------

SEEDER_HOLDERS = ("dict item", "closure cell", "bound method of random._inst")


def _seeder_cells() -> list[str]:
    """A kernel seeding through each of SEEDER_HOLDERS in turn, every holder bound before the first memoized call:
    ``OUT[holder]`` is what its memoized function returns, and ``OUT[holder + " warnings"]`` what it said."""
    # Each case meets the state the kernel started with (its own), not the one an earlier case seeded.
    cells = [_HOLDERS % {"name": "seed"}, RUNS_SETUP, "import warnings\nSTART = random.getstate()"]
    for i, holder in enumerate(SEEDER_HOLDERS):
        call, params = _CALLS[holder]
        cells.append(f"""
random.setstate(START)
@memo
def seeded_{i}({params % {"name": "seed"}}):
    ran({holder!r})
    {call % {"name": "seed"}}(5)
    return random.random()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    OUT[{holder!r}] = seeded_{i}()
OUT[{holder + " warnings"!r}] = [str(w.message) for w in caught]
""")
    return [*cells, "OUT['runs'] = dict(RUNS)"]


def test_a_seeder_held_before_the_first_call_recomputes_and_says_why(cache_dir: Path) -> None:
    """A seed through it cannot be told from a draw before it: the run is kept for the state it found, so a new
    kernel computes again (the same number), warned once with what to do (the holders share one pair of kernels)."""
    runs = [run_kernel(_seeder_cells(), cache_dir, seed=s) for s in (1, 2)]
    for holder in SEEDER_HOLDERS:
        assert runs[0][holder] == runs[1][holder], holder
        assert [r["runs"].get(holder) for r in runs] == [1, 1], holder
        for out in runs:
            said = out[holder + " warnings"]
            assert any("seeding function of Python's random module taken before" in w for w in said), (holder, said)
            assert any("random.seed(...)" in w for w in said), (holder, said)
    assert set(runs[0]["runs"]) == set(runs[1]["runs"]) == set(SEEDER_HOLDERS)


def test_our_seeder_wrapper_held_in_a_dict_still_hits_after_a_restart(cache_dir: Path) -> None:
    """Guard: a dict made after a memoized call ran holds the wrapper, whose seeding is seen: it hits, silently."""
    cells = [RUNS_SETUP, """
import random
@memo
def warm():
    return 1
warm()
HOLD = {"f": random.seed}

@memo
def seeded():
    ran('seeded')
    HOLD["f"](5)
    return random.random()
OUT['v'] = seeded()
OUT['runs'] = dict(RUNS)
"""]
    first, second = (run_kernel(cells, cache_dir, seed=s) for s in (1, 2))
    assert first["runs"] == {"seeded": 1} and second["runs"] == {}
    assert first["v"] == second["v"]
    assert not first["_warnings"] and not second["_warnings"]


def test_a_cell_copying_the_state_through_a_reader_held_in_a_dict_keys_the_state(cache_dir: Path) -> None:
    """The same in a ``%%memo`` cell: the dict made in the first cell, before anything was memoized."""
    cells = [_HOLDERS % {"name": "getstate"}, RUNS_SETUP, "%load_ext notebook_memo", """
own = random.Random(0)
own.setstate(random.getstate())
truth = own.random()
""", """
%%memo
ran('cell')
r = random.Random(0)
r.setstate(HOLD["f"]())
v = r.random()
""", "OUT['v'] = v; OUT['truth'] = truth; OUT['runs'] = dict(RUNS)"]
    runs = [run_kernel(cells, cache_dir, seed=s) for s in (1, 2)]
    assert [r["v"] for r in runs] == [r["truth"] for r in runs]
    assert [r["runs"] for r in runs] == [{"cell": 1}, {"cell": 1}]


def test_a_batch_copying_the_state_through_a_reader_held_in_a_dict_keys_the_state(cache_dir: Path) -> None:
    """memo.batch: the chunk depends on the state it found, so no kernel is served another kernel's numbers."""
    cells = [_HOLDERS % {"name": "getstate"}, RUNS_SETUP, """
own = random.Random(0)
own.setstate(random.getstate())
truth = own.random()

@memo.batch("xs", progress=False)
def shifted(xs):
    ran('shifted')
    r = random.Random(0)
    r.setstate(HOLD["f"]())
    first = r.random()
    return [first + x for x in xs]
OUT['v'] = shifted([0, 1])
OUT['truth'] = [truth, truth + 1]
OUT['runs'] = dict(RUNS)
"""]
    runs = [run_kernel(cells, cache_dir, seed=s) for s in (1, 2)]
    assert [r["v"] for r in runs] == [r["truth"] for r in runs]
    assert [r["runs"] for r in runs] == [{"shifted": 1}, {"shifted": 1}]


def test_numpy_seeder_held_in_a_dict_recomputes_and_says_why(cache_dir: Path) -> None:
    cells = ["""
import numpy as np
HOLD = {"seed": np.random.seed}
""", RUNS_SETUP, """
@memo
def seeded():
    ran('seeded')
    HOLD["seed"](5)
    return float(np.random.random())
OUT['v'] = seeded()
OUT['runs'] = dict(RUNS)
"""]
    runs = [run_kernel(cells, cache_dir, seed=s) for s in (1, 2)]
    assert runs[0]["v"] == runs[1]["v"]
    assert [r["runs"] for r in runs] == [{"seeded": 1}, {"seeded": 1}]
    for out in runs:
        assert any("seeding function of NumPy's global random state (np.random) taken before" in w
                   for w in out["_warnings"])


# case -> what the body calls to read torch's global state: a plain library function held in a dict is known by
# identity all the same; torch.default_generator.get_state(), named in the body or held in a dict, has no wrapper
# in front of it.
_TORCH_READERS = {
    "torch.get_rng_state held in a dict": 'HOLD["get_rng_state"]',
    "default generator's get_state named": "torch.default_generator.get_state",
    "default generator's get_state held in a dict": 'HOLD["get"]',
}


def test_torch_state_readers_held_or_named_key_the_state(cache_dir: Path) -> None:
    """Torch starts from one fixed seed: each kernel seeds its own. The readers are held before the first memoized
    call; the cases share one pair of kernels."""
    cells = ["""
import os, torch
torch.manual_seed(int(os.environ["KERNEL_SEED"]))
HOLD = {"get_rng_state": torch.get_rng_state, "get": torch.default_generator.get_state}
""", RUNS_SETUP]
    for i, (case, call) in enumerate(_TORCH_READERS.items()):
        cells.append(f"""
@memo
def copied_{i}():
    ran({case!r})
    g = torch.Generator()
    g.set_state({call}())
    return float(torch.rand(1, generator=g))
g = torch.Generator()
g.set_state(torch.get_rng_state())
OUT[{case!r}] = [float(torch.rand(1, generator=g)), copied_{i}()]
""")
    cells.append("OUT['runs'] = dict(RUNS)")
    runs = [run_kernel(cells, cache_dir, seed=s, env={"KERNEL_SEED": str(s)}) for s in (1, 2)]
    for case in _TORCH_READERS:
        assert [r[case][1] for r in runs] == [r[case][0] for r in runs], case
        assert [r["runs"].get(case) for r in runs] == [1, 1], case
    assert set(runs[0]["runs"]) == set(runs[1]["runs"]) == set(_TORCH_READERS)
