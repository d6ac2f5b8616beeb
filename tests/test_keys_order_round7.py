"""Keys that must not follow the order of events in a kernel: a library function notebook_memo wraps once a
memoized call first runs (``random.seed``, ``np.random.seed``, ``os.path.islink``...) is keyed as the function it
replaced, so a name bound before the wrap (``from random import seed``) and one bound after give one key, in code
and in values, across restarted kernels with other hash seeds; a different function still gives another key."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_kernel

# A memoized call that misses (its argument is new in each kernel), so that the library's functions are wrapped.
WRAP = """
import os, time, types
from notebook_memo import memo

@memo
def warm(token):
    return len(token)

warm(f"{os.getpid()}-{time.time_ns()}")
"""

DEAL = """
@memo
def deal(n):
    seed(0)
    xs = list(range(n))
    shuffle(xs)
    return xs

# random.seed is a bound method until it is wrapped (and a name bound to it before is rebound by the first miss)
OUT["seed_wrapped"] = isinstance(seed, types.FunctionType)
OUT["deal"] = deal(5)
OUT["hits"], OUT["misses"] = deal.cache_info().hits, deal.cache_info().misses
OUT["code"] = deal.current_code().hex()
"""

IMPORT = "from random import seed, shuffle"
PRELUDE = "import os, time, types\nfrom notebook_memo import memo"


def _kernel(cache: Path, seed: int, wrap_first: bool, body: str = DEAL, names: str = IMPORT,
            loaded: str = "") -> dict[str, object]:
    """Run a kernel that binds ``names`` after a memoized call ran (``wrap_first``) or before any; ``loaded``
    is imported first (a library's functions are wrapped only once it is loaded)."""
    cells = [loaded, WRAP, names, body] if wrap_first else [loaded, PRELUDE, names, body]
    return run_kernel(cells, cache, seed=seed)


@pytest.mark.parametrize("first_wraps", [True, False], ids=["wrapped-then-bare", "bare-then-wrapped"])
def test_a_seeding_function_bound_before_or_after_the_wrap_gives_one_code_key(tmp_path: Path,
                                                                              first_wraps: bool) -> None:
    cache = tmp_path / "cache"
    first = _kernel(cache, 1, wrap_first=first_wraps)
    assert first["seed_wrapped"] is first_wraps  # the two kernels did bind two different objects
    second = _kernel(cache, 2, wrap_first=not first_wraps)
    assert second["seed_wrapped"] is not first_wraps
    assert second["code"] == first["code"]
    assert not [w for w in second["_warnings"] if "other version of its code" in w], second["_warnings"]
    assert second["deal"] == first["deal"]


def test_a_run_that_saw_the_seeding_is_served_to_a_kernel_that_bound_seed_before_the_wrap(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    stored = _kernel(cache, 1, wrap_first=True)
    assert (stored["hits"], stored["misses"]) == (0, 1)
    for seed in (2, 3):  # restarted kernels whose first memoized call hits (so nothing is wrapped there)
        served = _kernel(cache, seed, wrap_first=False)
        assert (served["hits"], served["misses"], served["seed_wrapped"]) == (1, 0, False), served
        assert served["deal"] == stored["deal"]


def test_numpy_seed_bound_before_or_after_the_wrap_gives_one_key(tmp_path: Path) -> None:
    names = "from numpy.random import seed, permutation"
    body = """
@memo
def draw(n):
    seed(3)
    return permutation(n).tolist()

OUT["draw"] = draw(6)
OUT["hits"], OUT["misses"] = draw.cache_info().hits, draw.cache_info().misses
OUT["seed_wrapped"] = isinstance(seed, types.FunctionType)
"""
    cache = tmp_path / "cache"
    first = _kernel(cache, 1, wrap_first=True, body=body, names=names, loaded="import numpy")
    second = _kernel(cache, 2, wrap_first=False, body=body, names=names, loaded="import numpy")
    assert (first["seed_wrapped"], second["seed_wrapped"]) == (True, False)
    assert (second["hits"], second["misses"]) == (1, 0), second
    assert second["draw"] == first["draw"]


def test_a_link_reader_bound_before_or_after_the_wrap_gives_one_key_in_code_and_as_a_value(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("x")
    names = f"from os.path import islink\nPATH = {str(tmp_path / 'data.txt')!r}"
    body = """
@memo
def named(path):
    return islink(path)

@memo
def passed(test, path):
    return test(path)

OUT["r"] = [named(PATH), passed(islink, PATH)]
OUT["hits"] = named.cache_info().hits + passed.cache_info().hits
OUT["wrapped"] = hasattr(islink, "_notebook_memo_original")
"""
    cache = tmp_path / "cache"
    first = _kernel(cache, 1, wrap_first=True, body=body, names=names)
    second = _kernel(cache, 2, wrap_first=False, body=body, names=names)
    assert (first["wrapped"], second["wrapped"]) == (True, False)
    assert (first["hits"], second["hits"]) == (0, 2), second


def test_a_different_seeding_function_still_misses(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _kernel(cache, 1, wrap_first=True)
    # The same names, bound to the user's own functions: one carries the attribute our wrappers carry, which
    # must not make it stand for random.seed.
    names = """
import random
from random import shuffle

def seed(n):
    random.seed(n + 1)

seed._notebook_memo_original = random.seed
"""
    other = _kernel(cache, 2, wrap_first=True, names=names)
    assert (other["hits"], other["misses"]) == (0, 1), other
    assert other["deal"] != [2, 1, 0, 4, 3]


def test_a_class_that_holds_the_seeding_function_gives_one_key(tmp_path: Path) -> None:
    body = """
class Dealer:
    seeder = staticmethod(seed)
    mix = shuffle

    def deal(self, n):
        self.seeder(0)
        xs = list(range(n))
        self.mix(xs)
        return xs

@memo
def deal(n):
    return Dealer().deal(n)

OUT["deal"] = deal(5)
OUT["hits"], OUT["misses"] = deal.cache_info().hits, deal.cache_info().misses
OUT["seed_wrapped"] = isinstance(seed, types.FunctionType)
"""
    cache = tmp_path / "cache"
    first = _kernel(cache, 1, wrap_first=True, body=body)
    second = _kernel(cache, 2, wrap_first=False, body=body)
    assert (first["seed_wrapped"], second["seed_wrapped"]) == (True, False)
    assert (second["hits"], second["misses"]) == (1, 0), second
    assert second["deal"] == first["deal"]


# -- pandas Styler ---------------------------------------------------------------------------------------------
STYLED = """
import pandas as pd
from notebook_memo import memo

@memo
def report(styler):
    return styler.to_html()

df = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [3.0, 1.0, 2.0]})
styler = (df.style.set_uuid(UUID).format({"a": "{:.1f}", "b": lambda v: f"<{v}>"}).highlight_max()
          .set_table_styles([{"selector": "th", "props": [("color", "red")]}]).set_properties(color="blue"))
styler.to_html()  # rendered once before the call, as a notebook shows it
OUT["html"] = report(styler)
OUT["hits"] = report.cache_info().hits
"""


def test_a_styler_keys_alike_under_other_hash_seeds_and_by_its_uuid(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = run_kernel(['UUID = "report"', STYLED], cache, seed=1)
    again = run_kernel(['UUID = "report"', STYLED], cache, seed=2)
    assert (first["hits"], again["hits"]) == (0, 1), again
    # Its uuid names the ids of the HTML it renders, so a Styler with another one is another argument.
    other = run_kernel(['UUID = "other"', STYLED], cache, seed=3)
    assert other["hits"] == 0
    assert other["html"] != first["html"]
