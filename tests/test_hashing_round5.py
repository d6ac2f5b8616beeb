"""Content keys of values, fifth round: one mutable object held twice inside an argument (a tied weight, a
view over an array met before), sets keyed whatever order they list their items in, lazily filled state
(a masked array's fill value), arguments nested deeper than the interpreter's stack, and torch's weight-norm
modules."""

from __future__ import annotations

import random
import sys
import warnings
from typing import Any

import numpy as np
from conftest import Counter, run_kernel

from notebook_memo import memo
from notebook_memo.hashing import content_hash

# -- one mutable object twice inside one argument -------------------------------------------------


def _nudged_sums(params: Any) -> list[float]:
    """Change each array's first item in place, read every array's sum, restore it: what a finite-difference
    check does, whose answer shows whether two entries are one array (or views over one memory)."""
    sums = []
    for p in params:
        p.flat[0] += 1.0
        sums.append(sum(float(q.sum()) for q in params))
        p.flat[0] -= 1.0
    return sums


def test_one_array_twice_in_a_list_is_not_two_equal_arrays(counter: Counter) -> None:
    @memo
    def fd(params: list[Any]) -> list[float]:
        counter()
        return _nudged_sums(params)

    w = np.array([1.0, 2.0])
    assert fd([w, w.copy()]) == [7.0, 7.0]
    assert fd([w, w]) == [8.0, 8.0]
    assert counter.n == 2
    w2 = np.array([1.0, 2.0])
    assert fd([w2, w2]) == [8.0, 8.0]  # tied again, another array: a hit
    assert counter.n == 2


def test_a_view_beside_its_array_is_not_a_copy_beside_it(counter: Counter) -> None:
    @memo
    def fd(params: list[Any]) -> list[float]:
        counter()
        return _nudged_sums(params)

    v = np.array([1.0, 2.0, 3.0])
    assert fd([v, v[:1].copy()]) == [8.0, 8.0]
    assert fd([v, v[:1]]) == [9.0, 9.0]
    assert fd([v, v[1:2]]) == [9.0, 10.0]  # another place in the memory: another key
    assert counter.n == 3
    u = np.array([1.0, 2.0, 3.0])
    assert fd([u, u[1:2]]) == [9.0, 10.0]
    assert fd([u[1:2], u]) == [10.0, 9.0]  # the view met first
    assert counter.n == 4


def test_tied_weights_in_a_dict_and_a_list_held_twice(counter: Counter) -> None:
    @memo
    def fd(params: dict[str, Any]) -> list[float]:
        counter()
        return _nudged_sums(list(params.values()))

    e = np.array([3.0])
    assert fd({"embed": e, "unembed": e.copy()}) == [7.0, 7.0]
    assert fd({"embed": e, "unembed": e}) == [8.0, 8.0]
    assert counter.n == 2

    @memo
    def grow(pair: tuple[list[int], list[int]]) -> int:
        counter()
        pair[0].append(1)
        n = len(pair[1])
        pair[0].pop()
        return n

    a = [0]
    assert grow(([0], a)) == 1
    assert grow((a, a)) == 2
    assert counter.n == 4


class _Box:
    def __init__(self, value: list[int]) -> None:
        self.value = value


def test_an_object_of_the_users_held_twice_is_not_two_equal_objects(counter: Counter) -> None:
    @memo
    def bump(boxes: list[_Box]) -> int:
        counter()
        boxes[0].value = [*boxes[0].value, 1]
        n = len(boxes[1].value)
        boxes[0].value = boxes[0].value[:-1]
        return n

    b = _Box([0])
    assert bump([b, _Box([0])]) == 1
    assert bump([b, b]) == 2
    assert counter.n == 2


def test_equal_immutable_values_twice_key_as_equal_values() -> None:
    s = "x" * 50
    t = (1, 2.5, "a")
    f = frozenset({1, 2})
    n = 10**30
    assert content_hash([s, s]) == content_hash([s, "x" * 50])
    assert content_hash([t, t]) == content_hash([t, (1, 2.5, "a")])
    assert content_hash({"a": f, "b": f}) == content_hash({"a": f, "b": frozenset({1, 2})})
    assert content_hash([n, n]) == content_hash([n, 10**30 + 0])
    # a tuple holding a list: the tuple is immutable, the list inside it is what repeats
    inner = [1]
    assert content_hash([(inner,), (inner,)]) != content_hash([(inner,), ([1],)])
    assert content_hash([(1, "a"), (1, "a")]) == content_hash([(1, "a"), tuple([1, "a"])])


# -- the iteration order of a set -------------------------------------------------------------------


def test_equal_sets_key_as_one_whatever_order_they_list_their_items_in(counter: Counter) -> None:
    """A set's iteration order is not content: it follows how the set was built, and for ints built from strings
    it follows PYTHONHASHSEED (see the restart test below). Keying it would make a restarted kernel miss."""
    @memo
    def feature_columns(ids: set[int]) -> list[str]:
        counter()
        return sorted(f"f{i}" for i in ids)

    a, b = {2, 10}, {10, 2}
    assert list(a) != list(b)
    assert feature_columns(a) == feature_columns(b) == ["f10", "f2"]
    assert counter.n == 1
    assert content_hash([{2.0, 10.0}]) == content_hash([{10.0, 2.0}])
    assert content_hash([frozenset({2, 10})]) == content_hash([frozenset({10, 2})])


def test_a_set_of_strings_keys_order_free(counter: Counter) -> None:
    words = {"alpha", "beta", "gamma", "delta"}
    assert content_hash(words) == content_hash(set(sorted(words, reverse=True)))
    assert content_hash({"a", 1}) == content_hash({1, "a"})  # one item whose order follows the seed


_SET_CELLS = [
    "from notebook_memo import memo",
    "@memo\ndef listed(s):\n    return [str(item) for item in s]",
    "OUT['ints'] = listed({2, 10, 7, 300})\nOUT['words'] = listed({'alpha', 'beta', 'gamma'})\n"
    "OUT['mixed'] = listed(frozenset({(1, 'a'), (2, 'b')}))\nOUT['runs'] = listed.cache_info().misses",
]


_LENGTH_CELLS = [
    "from notebook_memo import memo",
    "words = {'a', 'to', 'transform', 'x', 'be', 'embedding'}\n"
    "lengths = {len(w) for w in words}  # ints, in an order that follows the seed: 9 and 1 share a slot\n"
    "OUT['order'] = list(lengths)",
    "@memo\ndef histogram(lengths):\n    return sorted(lengths)\n"
    "OUT['h'] = histogram(lengths)\nOUT['runs'] = histogram.cache_info().misses",
]


def test_a_set_of_ints_built_from_strings_hits_after_a_restart_that_lists_it_in_another_order(
        cache_dir: Any) -> None:
    first = run_kernel(_LENGTH_CELLS, cache_dir, seed=1)
    second = run_kernel(_LENGTH_CELLS, cache_dir, seed=3)
    assert first["order"] != second["order"]  # the same set, listed in another order
    assert first["h"] == second["h"] == [1, 2, 9]
    assert (first["runs"], second["runs"]) == (1, 0)


def test_sets_still_hit_after_a_restart_under_another_hash_seed(cache_dir: Any) -> None:
    first = run_kernel(_SET_CELLS, cache_dir, seed=1)
    second = run_kernel(_SET_CELLS, cache_dir, seed=2)
    assert first["runs"] == 3
    assert second["runs"] == 0
    assert second["ints"] == first["ints"]
    assert sorted(second["words"]) == sorted(first["words"])


# -- a masked array's fill value, made on its first read ---------------------------------------------


def test_a_masked_array_whose_fill_value_a_body_reads_is_cached(counter: Counter) -> None:
    @memo
    def dense_total(m: Any) -> float:
        counter()
        return float(m.filled().sum())

    m = np.ma.array([1.0, 2.0, 3.0], mask=[0, 1, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "changed its argument in place"
        for _ in range(3):
            assert dense_total(m) == 1e20 + 4.0
    assert counter.n == 1
    assert dense_total(np.ma.array([1.0, 2.0, 3.0], mask=[0, 1, 0])) == 1e20 + 4.0
    assert counter.n == 1
    m.fill_value = 0.0  # set: another key
    assert dense_total(m) == 4.0
    assert counter.n == 2


def test_reading_a_default_fill_value_leaves_the_key_as_it_was() -> None:
    def made() -> list[Any]:
        return [np.ma.array([1, 2], mask=[0, 1]),
                np.ma.array([(1, 2.0)], mask=[(0, 1)], dtype=[("a", "i4"), ("b", "f8")]),
                np.ma.array(["x", "y"], mask=[1, 0])]

    fresh, read = made(), made()
    for m in read:
        m.filled()
    assert [content_hash(m) for m in fresh] == [content_hash(m) for m in read]
    assert content_hash(fresh) == content_hash(read)


_MASKED_CELLS = [
    "import numpy as np\nfrom notebook_memo import memo",
    "@memo\ndef dense_total(m):\n    return float(m.filled().sum())",
    "OUT['total'] = dense_total(np.ma.array([1., 2., 3.], mask=[0, 1, 0]))\n"
    "OUT['misses'] = dense_total.cache_info().misses",
]


def test_a_masked_array_hits_after_a_restart(cache_dir: Any) -> None:
    first = run_kernel(_MASKED_CELLS, cache_dir, seed=1)
    second = run_kernel(_MASKED_CELLS, cache_dir, seed=2)
    assert (first["misses"], second["misses"]) == (1, 0)
    assert not [w for w in first["_warnings"] + second["_warnings"] if "in place" in w]


# -- arguments nested deeper than the interpreter's stack ---------------------------------------------


class _Node:
    def __init__(self, value: Any, next: _Node | None = None) -> None:
        self.value, self.next = value, next


def _chain(n: int, last: Any = 0) -> _Node:
    head = _Node(last)
    for i in range(n - 1):
        head = _Node(i, head)
    return head


def _nested_dict(n: int) -> dict[str, Any]:
    d: dict[str, Any] = {"leaf": 1}
    for _ in range(n):
        d = {"child": d}
    return d


def test_a_linked_list_of_hundreds_of_nodes_is_keyed(counter: Counter) -> None:
    @memo
    def length(node: _Node | None) -> int:
        counter()
        n = 0
        while node is not None:
            n, node = n + 1, node.next
        return n

    @memo
    def depth(d: dict[str, Any]) -> int:
        counter()
        n = 0
        while "child" in d:
            n, d = n + 1, d["child"]
        return n

    assert length(_chain(300)) == 300
    assert length(_chain(300)) == 300
    assert length(_chain(2000)) == 2000
    assert depth(_nested_dict(600)) == 600
    assert depth(_nested_dict(600)) == 600
    assert counter.n == 3
    deep = _chain(300)
    deep.next.next.value = "changed"  # type: ignore[union-attr]
    assert length(deep) == 300
    assert counter.n == 4


def test_a_deep_value_keys_as_it_would_with_stack_to_spare() -> None:
    values = [_chain(400), _nested_dict(700), [_chain(250), {"k": _chain(250)}]]
    digests = [content_hash(value) for value in values]
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20_000)
    try:
        roomy = [content_hash(value) for value in values]
    finally:
        sys.setrecursionlimit(limit)
    assert digests == roomy
    assert sys.getrecursionlimit() == limit
    cycle = _chain(400)
    cycle.next.next = cycle  # type: ignore[union-attr]
    assert content_hash(cycle) == content_hash(cycle)


def test_a_generator_deep_inside_an_argument_is_left_as_a_run_leaves_it(counter: Counter) -> None:
    @memo
    def draw(node: _Node) -> float:
        counter()
        while node.next is not None:
            node = node.next
        return float(node.value.random())

    first = random.Random(0)
    assert draw(_chain(300, first)) == random.Random(0).random()
    second = random.Random(0)
    assert draw(_chain(300, second)) == random.Random(0).random()
    assert counter.n == 1
    assert second.random() == first.random()  # the hit advanced it as the run did


# -- torch's weight norm and spectral norm (the hook-based API) -----------------------------------------


def test_a_weight_normed_model_is_keyed_by_what_its_hook_computes_from(counter: Counter) -> None:
    import torch

    @memo
    def predict(model: Any, x: Any) -> float:
        counter()
        with torch.no_grad():
            return float(model(x).sum())

    def made(norm: Any) -> Any:
        torch.manual_seed(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # the older API, still in many code bases
            return norm(torch.nn.Linear(2, 1))

    x = torch.ones(1, 2)
    net = made(torch.nn.utils.weight_norm)
    net(x).sum().backward()  # a forward with gradients: net.weight carries an autograd graph
    first = predict(net, x)
    assert predict(net, x) == first
    twin = made(torch.nn.utils.weight_norm)
    twin(x).sum().backward()
    assert predict(twin, x) == first
    assert counter.n == 1
    with torch.no_grad():
        net.weight_v.mul_(-1.0)  # a training step, in place
    flipped = predict(net, x)
    assert counter.n == 2
    with torch.no_grad():
        net.weight_g.mul_(2.0)
    doubled = predict(net, x)
    assert counter.n == 3
    assert doubled == predict.uncached(net, x)
    assert flipped != first

    spectral = made(torch.nn.utils.spectral_norm).eval()
    before = predict(spectral, x)
    assert predict(spectral, x) == before
    with torch.no_grad():
        spectral.weight_orig.add_(0.5)  # (a scale would not change W / sigma)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the forward refreshing `weight` is not a change of the argument
        after = predict(spectral, x)
        assert predict(spectral, x) == after
    assert counter.n == 6  # 3, the uncached run, and two misses
    assert after == predict.uncached(spectral, x) != before


# -- state a library fills on first use -------------------------------------------------------------------


def test_a_pandas_extension_array_keys_alike_after_use(counter: Counter) -> None:
    import pandas as pd

    @memo
    def total(a: Any) -> int:
        counter()
        return int((a + 1).sum())

    arrays = [pd.array([1, None, 3]), pd.array(["a", None]), pd.Categorical(["a", "b", "a"]),
              pd.arrays.IntervalArray.from_breaks([0, 1, 2]), pd.array([True, None, False])]
    before = [content_hash(a) for a in arrays]
    for a in arrays:
        a.isna(), a.to_numpy(), a.unique()
    arrays[0] + 1
    arrays[2].categories, arrays[2].value_counts()
    arrays[3].is_non_overlapping_monotonic, arrays[3].mid
    assert [content_hash(a) for a in arrays] == before
    assert content_hash(pd.array([1, None, 4])) != before[0]
    assert content_hash(pd.array([1, None, 3], dtype="Int32")) != before[0]
    assert content_hash(pd.Categorical(["a", "b", "a"], ordered=True)) != before[2]
    a = pd.array([1, None, 3])
    assert total(a) == 6
    assert total(a) == 6
    assert total(pd.array([1, None, 3])) == 6
    assert counter.n == 1


def test_a_colormap_keys_alike_after_its_first_call(counter: Counter) -> None:
    import matplotlib

    @memo
    def colour(cmap: Any, x: float) -> tuple[float, ...]:
        counter()
        return tuple(float(c) for c in cmap(x))

    fresh = matplotlib.colormaps["viridis"]
    before = content_hash(fresh)
    first = colour(fresh, 0.5)
    assert content_hash(fresh) == before
    assert colour(fresh, 0.5) == first
    assert colour(matplotlib.colormaps["viridis"], 0.5) == first
    assert counter.n == 1
    changed = matplotlib.colormaps["viridis"]
    changed = changed.with_extremes(bad="red")
    assert content_hash(changed) != before
    assert content_hash(matplotlib.colormaps["plasma"]) != before
