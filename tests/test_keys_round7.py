"""Keys: numpy dtype metadata keyed by its content (not by repr, and never from a stale array-head cache), and
the process-global random generators (numpy's, the ``random`` module's) reached through values and bound
functions, keyed by their role rather than by their state."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from conftest import RUNS_SETUP, Counter, run_kernel

from notebook_memo import memo
from notebook_memo.hashing import content_hash


# -- dtype metadata -------------------------------------------------------------------------------------------
def test_dtype_metadata_arrays_that_repr_elides_give_two_keys(counter: Counter) -> None:
    @memo
    def calibrate(x: np.ndarray) -> float:
        counter()
        lut = x.dtype.metadata["lut"]
        return float(lut[x.astype(int)].sum())

    lut1 = np.arange(2000.0)
    lut2 = lut1.copy()
    lut2[1000] = -1e6
    assert repr(lut1) == repr(lut2)  # numpy elides the middle: the case repr cannot tell apart
    x1 = np.array([1000.0], dtype=np.dtype(float, metadata={"lut": lut1}))
    x2 = np.array([1000.0], dtype=np.dtype(float, metadata={"lut": lut2}))
    assert calibrate(x1) == 1000.0
    assert calibrate(x2) == -1e6
    assert counter.n == 2
    assert calibrate(np.array([1000.0], dtype=np.dtype(float, metadata={"lut": lut1.copy()}))) == 1000.0
    assert counter.n == 2  # equal content, another object: a hit


@dataclasses.dataclass(frozen=True)
class _Unit:
    name: str
    factor: float = dataclasses.field(repr=False)


def test_dtype_metadata_value_whose_repr_leaves_a_field_out() -> None:
    @memo
    def to_si(x: np.ndarray) -> float:
        return float(x[0] * x.dtype.metadata["unit"].factor)

    assert to_si(np.array([2.0], dtype=np.dtype(float, metadata={"unit": _Unit("km", 1000.0)}))) == 2000.0
    assert to_si(np.array([2.0], dtype=np.dtype(float, metadata={"unit": _Unit("km", 1.0)}))) == 2.0


def test_dtype_metadata_of_a_structured_dtype_s_field_a_scalar_and_a_dtype() -> None:
    lut1 = np.arange(2000.0)
    lut2 = lut1.copy()
    lut2[1000] = -1.0

    def field(lut: np.ndarray) -> np.dtype:
        return np.dtype([("a", np.dtype(float, metadata={"lut": lut})), ("b", "<i4")])

    assert content_hash(np.zeros(2, dtype=field(lut1))) != content_hash(np.zeros(2, dtype=field(lut2)))
    assert content_hash(np.zeros(2, dtype=field(lut1))) == content_hash(np.zeros(2, dtype=field(lut1.copy())))
    sub1 = np.dtype([("a", np.dtype(float, metadata={"lut": lut1}), (2,))])
    sub2 = np.dtype([("a", np.dtype(float, metadata={"lut": lut2}), (2,))])
    assert content_hash(sub1) != content_hash(sub2)
    meta1 = np.dtype(float, metadata={"unit": _Unit("km", 1000.0)})
    meta2 = np.dtype(float, metadata={"unit": _Unit("km", 1.0)})
    assert content_hash(meta1) != content_hash(meta2)
    item1, item2 = np.zeros(1, dtype=[("a", meta1)])[0], np.zeros(1, dtype=[("a", meta2)])[0]  # np.void scalars
    assert content_hash(item1) != content_hash(item2)
    # what numpy's own dtype text shows still counts, and no metadata keys as none
    assert content_hash(np.dtype(float, metadata={"u": 1})) != content_hash(np.dtype(np.float32, metadata={"u": 1}))
    assert content_hash(np.zeros(3, dtype=np.dtype(float, metadata={}))) == content_hash(np.zeros(3))


_SET_METADATA_CELLS = [RUNS_SETUP, """
import numpy as np

@memo
def weigh(x):
    ran("weigh")
    return sorted(x.dtype.metadata["tags"])

x = np.zeros(2, dtype=np.dtype(float, metadata={"tags": {"alpha", "beta", "gamma", "delta"}}))
OUT["value"] = weigh(x)
OUT["runs"] = RUNS.get("weigh", 0)
"""]


def test_dtype_metadata_holding_a_set_hits_after_a_restart(cache_dir: Path) -> None:
    first = run_kernel(_SET_METADATA_CELLS, cache_dir, seed=1)
    second = run_kernel(_SET_METADATA_CELLS, cache_dir, seed=2)
    assert first["runs"] == 1
    assert second["value"] == ["alpha", "beta", "delta", "gamma"]
    assert second["runs"] == 0, second["_warnings"]


def test_dtype_metadata_changed_in_place_is_seen_by_the_next_call(counter: Counter) -> None:
    params = {"scale": 1.0}
    dt = np.dtype(float, metadata={"params": params})  # numpy copies the dict, not the values in it
    x = np.array([2.0, 3.0], dtype=dt)

    @memo
    def scaled_sum(a: np.ndarray) -> float:
        counter()
        return float(a.sum() * a.dtype.metadata["params"]["scale"])

    @memo
    def scaled_sums(arrays: dict[str, np.ndarray]) -> float:  # many arrays of one layout: the flat path
        return sum(float(a.sum() * a.dtype.metadata["params"]["scale"]) for a in arrays.values())

    many = {str(i): np.array([2.0, 3.0], dtype=dt) for i in range(4)}
    assert scaled_sum(x) == 5.0
    assert scaled_sums(many) == 20.0
    before = content_hash(x)
    params["scale"] = 10.0
    assert content_hash(x) != before
    assert scaled_sum(x) == 50.0
    assert scaled_sums(many) == 200.0
    assert scaled_sum(x) == 50.0
    assert counter.n == 2


# -- process-global random generators reached through values ------------------------------------------------
_GLOBAL_HOLDERS_CELLS = [RUNS_SETUP, """
import numpy as np
import scipy.stats as st
from scipy.stats import multivariate_normal, norm

PRIOR = multivariate_normal(mean=[0, 0], cov=[[1, 0], [0, 1]])  # holds np.random's global RandomState

@memo
def z(q):
    ran("z")
    return float(norm.ppf(q))

@memo
def logpdf(x):
    ran("logpdf")
    return float(PRIOR.logpdf(x))

@memo
def quantile(dist, q):
    ran("quantile")
    return float(dist.ppf(q))

@memo
def seeded_draw(n):
    ran("seeded_draw")
    np.random.seed(0)
    return norm.rvs(size=n).tolist()

# no seed: each kernel's global state comes from the operating system's entropy
OUT["values"] = [z(0.9), logpdf([0.5, 0.5]), quantile(st.norm(loc=1, scale=2), 0.95), seeded_draw(3)]
OUT["next"] = float(np.random.rand())  # after the seeded body: as a real run leaves the state
OUT["still"] = [z.is_cached(0.9), logpdf.is_cached([0.5, 0.5]), quantile.is_cached(st.norm(loc=1, scale=2), 0.95)]
OUT["runs"] = dict(RUNS)
"""]


def test_objects_holding_numpy_s_global_generator_hit_after_a_restart(cache_dir: Path) -> None:
    first = run_kernel(_GLOBAL_HOLDERS_CELLS, cache_dir, seed=1)
    second = run_kernel(_GLOBAL_HOLDERS_CELLS, cache_dir, seed=2)
    assert first["runs"] == {"z": 1, "logpdf": 1, "quantile": 1, "seeded_draw": 1}
    assert first["still"] == [True, True, True]  # an unrelated draw since does not change their keys
    assert second["runs"] == {}, second["_warnings"]
    assert second["values"] == first["values"]
    assert second["next"] == first["next"]


def test_a_fitted_estimator_left_with_numpy_s_global_generator_keeps_its_key(counter: Counter) -> None:
    import warnings

    from sklearn.neural_network import MLPRegressor

    X = np.linspace(0, 1, 20).reshape(-1, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it has not converged in so few iterations: no matter here
        model = MLPRegressor(hidden_layer_sizes=(3,), max_iter=5).fit(X, X.ravel() ** 2)
    assert model._random_state is np.random.mtrand._rand

    @memo
    def predict(m: MLPRegressor, x: np.ndarray) -> list[float]:
        counter()
        return [float(v) for v in m.predict(x)]

    key = content_hash(model)
    first = predict(model, X)
    np.random.rand()  # an unrelated draw
    assert content_hash(model) == key
    assert predict(model, X) == first
    assert counter.n == 1


def test_the_global_generators_held_by_a_value_are_keyed_by_their_role() -> None:
    import random
    import types

    import torch

    held = types.SimpleNamespace(np_legacy=np.random.mtrand._rand, bits=np.random.mtrand._rand._bit_generator,
                                 py=random._inst, torch=torch.default_generator)  # type: ignore[attr-defined]
    key = content_hash(held)
    np.random.rand()
    random.random()
    torch.rand(1)
    assert content_hash(held) == key
    # a generator of the value's own is still keyed by its state
    own = types.SimpleNamespace(rng=np.random.RandomState(0), py=random.Random(0))
    dist = st_norm_with_own_generator()
    before = content_hash(own), content_hash(dist)
    own.rng.rand()
    own.py.random()
    dist.rvs(size=2)
    assert content_hash(own) != before[0]
    assert content_hash(dist) != before[1]


def st_norm_with_own_generator() -> object:
    import scipy.stats as st

    dist = st.norm(loc=1, scale=2)
    dist.random_state = np.random.RandomState(3)
    return dist


_BOUND_CELLS = [RUNS_SETUP, """
import os
import numpy as np

@memo
def warm_up(n):  # a first memoized run: the seeding functions are watched from here on
    return n

warm_up(os.getpid())  # run, not served: a name bound before any run is not watched (the README's limit)
""", """
from random import seed, shuffle
from numpy.random import normal, seed as np_seed

@memo
def deal(n):
    ran("deal")
    seed(0)
    xs = list(range(n))
    shuffle(xs)
    return xs

@memo
def noise(n):
    ran("noise")
    np_seed(0)
    return normal(size=n).tolist()

OUT["values"] = [deal(5), deal(5), noise(2), noise(2)]
OUT["explain"] = [str(deal.explain_last()), str(noise.explain_last())]
OUT["runs"] = dict(RUNS)
"""]


def test_functions_imported_by_name_from_random_and_numpy_random_hit(cache_dir: Path) -> None:
    first = run_kernel(_BOUND_CELLS, cache_dir, seed=1)
    second = run_kernel(_BOUND_CELLS, cache_dir, seed=2)
    assert first["runs"] == {"deal": 1, "noise": 1}, first["explain"]
    assert second["runs"] == {}, second["explain"]
    assert second["values"] == first["values"]
    assert first["values"][0] == first["values"][1]


def test_an_unseeded_draw_through_a_held_global_generator_is_tied_to_its_state(counter: Counter) -> None:
    from random import shuffle

    from scipy.stats import norm

    @memo
    def draw(n: int) -> list[float]:
        counter()
        return [float(v) for v in norm.rvs(size=n)]

    @memo
    def deal(n: int) -> list[int]:
        counter()
        xs = list(range(n))
        shuffle(xs)
        return xs

    import random

    def session() -> tuple[list[float], list[float], list[int], list[int], float, float]:
        np.random.seed(7)
        random.seed(7)
        return draw(3), draw(3), deal(6), deal(6), float(np.random.rand()), random.random()

    first = session()
    assert first[0] != first[1]  # each call its own numbers, as without the cache
    assert counter.n == 4
    assert session() == first  # the same states: served, and each generator left as the body left it
    assert counter.n == 4
    np.random.seed(7)
    random.seed(7)
    assert draw.uncached(3) == first[0]
