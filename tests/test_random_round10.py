"""Random state, round ten: NumPy's legacy global replaced or swapped, and generators a body reaches by other roads.

``np.random.mtrand._rand = RandomState(...)`` splits NumPy's legacy global in two: ``np.random.rand`` and
``np.random.get_state`` keep the generator they were bound to at import, while ``np.random.seed`` and
``set_bit_generator`` act on the new one. A body drawing from ``np.random`` is keyed by the state of the generator it
draws from, read in place or not, and ``np.random.seed`` counts as seeding only where it seeds that generator. A bit
generator swapped in by ``np.random.set_bit_generator`` is followed with no module loaded since.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import Shell, run_kernel


@pytest.fixture(autouse=True)
def _keep_global_generators() -> Iterator[None]:
    """Each test leaves np.random (its generator object and bit generator too) and random as it found them."""
    mtrand = np.random.mtrand
    legacy, bit_generator = mtrand._rand, np.random.get_bit_generator()
    np_state, py_state = np.random.get_state(), random.getstate()
    yield
    mtrand._rand = legacy
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        np.random.set_bit_generator(bit_generator)
    np.random.set_state(np_state)
    random.setstate(py_state)


_COUNTER = """
import numpy as np
import numpy.random.mtrand as M
from notebook_memo import memo

class Runs:
    n = 0
    def __call__(self): self.n += 1
    def __memo_key__(self): return "runs"

RUNS = Runs()
"""


# -- 1. np.random.mtrand._rand bound to another RandomState --------------------------------------------------------

def test_a_draw_after_mtrand_rand_is_rebound_to_an_equal_generator_is_keyed_by_the_state_drawn_from(
        shell: Shell) -> None:
    """The new RandomState holds the words np.random's own held: read in place, they never move as np.random draws
    (from the one it was bound to), and the draw was taken for none."""
    shell.run(_COUNTER + """
@memo
def draw(runs):
    runs()
    return float(np.random.rand())

M._rand = np.random.RandomState(5)
np.random.set_state(np.random.RandomState(5).get_state())
first = draw(RUNS)
np.random.set_state(np.random.RandomState(6).get_state())
second = draw(RUNS)
""")
    assert shell["second"] == float(np.random.RandomState(6).rand()), "served the draw of another state"
    assert shell["first"] == float(np.random.RandomState(5).rand())
    assert shell["RUNS"].n == 2


def test_np_random_seed_of_a_rebound_mtrand_rand_is_not_taken_for_seeding_what_np_random_draws_from(
        shell: Shell) -> None:
    """np.random.seed seeds the generator ``M._rand`` names now; np.random.rand draws from the one it was bound to."""
    shell.run(_COUNTER + """
@memo
def draw(runs):
    runs()
    np.random.seed(0)
    return float(np.random.rand())

M._rand = np.random.RandomState(1)
np.random.set_state(np.random.RandomState(5).get_state())
first = draw(RUNS)
np.random.set_state(np.random.RandomState(6).get_state())
second = draw(RUNS)
""")
    assert shell["first"] == float(np.random.RandomState(5).rand())
    assert shell["second"] == float(np.random.RandomState(6).rand()), "served the draw of another state"


def test_np_random_set_state_still_seeds_what_np_random_draws_from_after_mtrand_rand_is_rebound(
        shell: Shell) -> None:
    """Guard: np.random.set_state is bound to the generator np.random draws from, so a body that sets it first does
    not depend on the state it found, and hits wherever that state is."""
    shell.run(_COUNTER + """
SEEDED = np.random.RandomState(9).get_state()

@memo
def draw(runs):
    runs()
    np.random.set_state(SEEDED)
    return float(np.random.rand())

M._rand = np.random.RandomState(1)
np.random.set_state(np.random.RandomState(5).get_state())
first = draw(RUNS)
np.random.set_state(np.random.RandomState(6).get_state())
second = draw(RUNS)
""")
    assert shell["first"] == shell["second"] == float(np.random.RandomState(9).rand())
    assert shell["RUNS"].n == 1


def test_np_random_seed_still_counts_as_seeding_where_mtrand_rand_is_its_own(shell: Shell) -> None:
    """Guard: with ``M._rand`` the generator np.random is bound to, a body that seeds first hits from any state."""
    shell.run(_COUNTER + """
@memo
def draw(runs):
    runs()
    np.random.seed(0)
    return float(np.random.rand())

np.random.set_state(np.random.RandomState(5).get_state())
first = draw(RUNS)
np.random.set_state(np.random.RandomState(6).get_state())
second = draw(RUNS)
""")
    assert shell["first"] == shell["second"] == float(np.random.RandomState(0).rand())
    assert shell["RUNS"].n == 1


# -- 1. a bit generator swapped in, with no module loaded since ------------------------------------------------------

@pytest.mark.parametrize("body", ["np.random.mtrand._rand._bit_generator.state['state']['state']",
                                  "np.random.get_bit_generator().state['state']['state']",
                                  "np.random.randint(1 << 30)"])
def test_a_bit_generator_swapped_in_is_followed_as_its_state_changes(body: str, shell: Shell) -> None:
    shell.run(_COUNTER + f"""
import warnings
warnings.simplefilter("ignore", RuntimeWarning)

@memo
def peek(runs):
    runs()
    return int({body})

np.random.set_bit_generator(np.random.PCG64(0))
peek(RUNS)
np.random.set_bit_generator(np.random.PCG64(1))
first = peek(RUNS)
np.random.get_bit_generator().advance(3)
second = peek(RUNS)
np.random.set_bit_generator(np.random.PCG64(1))
again = peek(RUNS)
""")
    assert shell["first"] != shell["second"], "served the result of the state before the advance"
    assert shell["again"] == shell["first"]


_REBOUND_AT_FIRST_RUNS = [_COUNTER + """
import warnings
warnings.simplefilter("ignore", RuntimeWarning)
OWN = M._rand

@memo
def peek(runs, tag):
    runs()
    return int(M._rand._bit_generator.state["state"]["pos"])

@memo
def peek_swapped(runs, tag):
    runs()
    return str(np.random.mtrand._rand._bit_generator.state["state"])

# The kernel's first memoized runs meet mtrand._rand bound to another RandomState (everything they load is loaded
# by the last of them), then it is bound back.
M._rand = np.random.RandomState(1)
for tag in range(3):
    peek(RUNS, tag), peek_swapped(RUNS, tag)
M._rand = OWN
""", """
RUNS.n = 0
np.random.seed(0)
OUT["peek"] = [peek(RUNS, "own")]
np.random.rand()
OUT["peek"].append(peek(RUNS, "own"))
np.random.set_bit_generator(np.random.PCG64(1))
OUT["swapped"] = [peek_swapped(RUNS, "own")]
np.random.get_bit_generator().advance(3)
OUT["swapped"].append(peek_swapped(RUNS, "own"))
OUT["runs"] = RUNS.n
"""]


def test_the_global_generator_bound_back_after_a_kernel_s_first_run_is_known_as_np_random_s(cache_dir: Path) -> None:
    """The kernel's first memoized run met mtrand._rand bound to another RandomState: once it is bound back, a body
    reading its own generator's state through a private part is keyed by that state (a draw between two calls
    recomputes), its bit generator swapped or not."""
    out = run_kernel(_REBOUND_AT_FIRST_RUNS, cache_dir)
    assert out["peek"] == [624, 2], "served the position read before the draw"
    assert out["swapped"][0] != out["swapped"][1], "served the state read before the advance"
    assert out["runs"] == 4


# -- 1. a body that swaps a bit generator into np.random ---------------------------------------------------------

def test_a_body_that_swaps_a_bit_generator_into_np_random_hits_and_leaves_it_as_the_body_did(shell: Shell) -> None:
    """np.random.set_bit_generator sets np.random's whole state, as np.random.seed does: the state found does not
    matter, and a hit swaps in a bit generator of the kind the body left, in the state it left it (a hit from the state
    the first call met once raised ValueError, setting a PCG64's state on the MT19937 np.random had)."""
    shell.run(_COUNTER + """
import warnings
warnings.simplefilter("ignore", RuntimeWarning)
OWN = np.random.get_bit_generator()

@memo
def swap(runs):
    runs()
    np.random.set_bit_generator(np.random.PCG64(0))
    return float(np.random.rand())

np.random.seed(1)
first = swap(RUNS)
next_first = float(np.random.rand())
np.random.set_bit_generator(OWN)
np.random.seed(2)
second = swap(RUNS)
kind = type(np.random.get_bit_generator()).__name__
next_second = float(np.random.rand())
np.random.set_bit_generator(OWN)
np.random.seed(1)  # the state the first call met
third = swap(RUNS)
""")
    assert shell["first"] == shell["second"] == shell["third"] and shell["RUNS"].n == 1
    assert shell["kind"] == "PCG64", "np.random not left with the bit generator the body swapped in"
    assert shell["next_second"] == shell["next_first"], "np.random not left as the body did"


# -- 3. generators reached by other roads: a draw advances them, and a rerun from the top hits ---------------------

# (the cell that makes the generator and the memoized function, the call's arguments, the next draw after it). The
# user's expectation: two calls in a row give two draws, as without the cache (the second is not served the first's
# answer); running the notebook again from the top makes the same generator anew and hits both, leaving the
# generator where the body left it.
_ROADS = {
    "bound method of a Random": ("R = random.Random(0); pick = R.random\ndef body(): return pick()", "R.random()"),
    "bound method of a Generator": ("G = np.random.default_rng(0); normal = G.normal\n"
                                    "def body(): return float(normal())", "float(G.normal())"),
    "partial of Generator.integers": ("P = functools.partial(np.random.default_rng(0).integers, 0, 10**9)\n"
                                      "def body(): return int(P())", "int(P())"),
    "generator as a default argument": ("D = random.Random(0)\ndef body(rng=D): return rng.random()", "D.random()"),
    "generator as a class attribute": ("class K:\n    rng = np.random.RandomState(0)\n"
                                       "def body(): return float(K.rng.rand())", "float(K.rng.rand())"),
    "torch generator in a dataclass": ("@dataclasses.dataclass\nclass Cfg:\n    gen: torch.Generator\n"
                                       "CFG = Cfg(torch.Generator().manual_seed(0))\n"
                                       "def body(): return float(torch.randn(1, generator=CFG.gen))",
                                       "float(torch.rand(1, generator=CFG.gen))"),
    "random.choice bound at import": ("random.seed(0)\ndef body(): return choice(range(10**6))", "random.random()"),
}


@pytest.mark.parametrize("road", sorted(_ROADS))
def test_a_generator_reached_by_another_road_is_advanced_by_each_call_and_a_rerun_hits(road: str,
                                                                                       shell: Shell) -> None:
    made, next_draw = _ROADS[road]
    shell.run(_COUNTER + "import dataclasses, functools, random, torch\nfrom random import choice\n")
    cell = f"""
{made}
@memo
def draw(runs):
    runs()
    return body()
OUT = [draw(RUNS), draw(RUNS), {next_draw}]
"""
    shell.run(cell)
    first = shell["OUT"]
    shell.run(cell)  # the notebook run again from the top
    assert first[0] != first[1], "the second call was served the first's draw"
    assert shell["OUT"] == first, "a rerun from the top did not give the same draws, or left the generator elsewhere"
    assert shell["RUNS"].n == 2


# -- 3. a generator built from entropy and given a whole state before its first draw -------------------------------

# A private copy of a stream: built without a seed, then given a whole state (setstate, set_state) by its next
# statement, it never draws from the entropy it was built with. The copy of the global state is keyed by that state.
STATE_GIVEN = {
    "random_copy_of_the_global": ("r = random.Random()\nr.setstate(random.getstate())", "r.random()"),
    "numpy_copy_of_the_global": ("rs = np.random.RandomState()\nrs.set_state(np.random.get_state())",
                                 "float(rs.rand())"),
    "numpy_by_keyword": ("rs = np.random.RandomState()\nrs.set_state(state=np.random.get_state())",
                         "float(rs.rand())"),
}


@pytest.mark.parametrize("form", sorted(STATE_GIVEN))
def test_a_generator_given_a_whole_state_right_after_it_is_built_is_keyed_by_it_without_a_warning(
        form: str, shell: Shell) -> None:
    build, draw = STATE_GIVEN[form]
    body = "\n".join("    " + line for line in f"{build}\nreturn {draw}".splitlines())
    shell.run(_COUNTER + f"""
import random

@memo
def copy_of_the_stream(runs):
    runs()
{body}

def seed_both(seed):
    random.seed(seed)
    np.random.seed(seed)
""")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shell.run("seed_both(1); first = copy_of_the_stream(RUNS)")
        shell.run("seed_both(2); second = copy_of_the_stream(RUNS)")
        shell.run("seed_both(1); again = copy_of_the_stream(RUNS)")
    assert not [str(w.message) for w in caught if "entropy" in str(w.message)]
    assert shell["first"] != shell["second"], "served the copy of another state"
    assert shell["again"] == shell["first"] and shell["RUNS"].n == 2


@pytest.mark.parametrize("build", ["r = random.Random()\nr.setstate(r.getstate())",
                                   "r = random.Random()\nr.setstate(state=r.getstate())",
                                   "class Mine(random.Random):\n    def setstate(self, state):\n        pass\n"
                                   "r = Mine()\nr.setstate(random.getstate())"])
def test_a_state_given_that_is_its_own_entropy_still_warns(build: str, shell: Shell) -> None:
    """Guard: a state read from the generator itself, or a setstate that sets nothing, leaves the entropy in use."""
    body = "\n".join("    " + line for line in f"{build}\nreturn r.random()".splitlines())
    shell.run(_COUNTER + f"""
import random

@memo
def draw():
{body}
""")
    with pytest.warns(UserWarning, match="entropy"):
        shell.run("draw()")
