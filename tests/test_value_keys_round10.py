"""Keys of values whose state a library family's handler reads only in part, or reads with what is not content:
slot values of the user's subclasses of a numpy array, a ``weakref.WeakSet``, a torch tensor or module (a subclass
whose only slots are ``()`` has no ``__dict__`` at all); attributes set on a pandas DataFrame, Series, Index or array
itself (``df.name = "train"``); the format flags a scipy sparse matrix fills on first use; the addresses a scipy k-d
tree's nodes hold; what a Delaunay triangulation works out on first use; and that such values still hit on equal
calls, here and after a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from notebook_memo.hashing import content_hash
from tests.conftest import RUNS_SETUP, Shell, run_kernel

# (imports, base class, how a value is made from ``tag``, the body's use of the value)
_SLOTTED = {
    "numpy array": ("import numpy as np", "np.ndarray", "np.arange(3.0).view(Tagged)", "float(x.sum()) * x.tag"),
    "weak set": ("import weakref", "weakref.WeakSet", "Tagged()", "len(x) + x.tag"),
    "torch tensor": ("import torch", "torch.Tensor", "torch.arange(3.0).as_subclass(Tagged)",
                     "float(x.sum()) * x.tag"),
    "torch module": ("import torch", "torch.nn.Module", "Tagged()", "x.tag"),
}


@pytest.mark.parametrize("case", sorted(_SLOTTED))
def test_a_slot_value_of_a_subclass_of_a_library_family_is_in_the_key(shell: Shell, case: str) -> None:
    imports, base, make, use = _SLOTTED[case]
    shell.run(RUNS_SETUP)
    shell.run(f"""
        import warnings
        {imports}
        from notebook_memo import memo

        class Tagged({base}):
            __slots__ = ("tag",)

        def make(tag):
            x = {make}
            x.tag = tag
            return x

        @memo
        def use(x):
            ran('use')
            return {use}

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            first, second, again = use(make(2)), use(make(100)), use(make(100))
        expected = (lambda x: {use})(make(100))
    """)
    assert shell["second"] == shell["expected"] != shell["first"]
    assert shell["again"] == shell["second"] and shell["RUNS"]["use"] == 2  # an equal call still hits


def test_an_array_of_a_subclass_without_a_dict_is_keyed_and_hits(shell: Shell) -> None:
    shell.run(RUNS_SETUP)
    shell.run("""
        import numpy as np
        from notebook_memo import memo

        class Plain(np.ndarray):
            __slots__ = ()

        @memo
        def total(x):
            ran('use')
            return float(x.sum())

        first = total(np.arange(3.0).view(Plain))
        again = total(np.arange(3.0).view(Plain))
        other = total(np.arange(4.0).view(Plain))
    """)
    assert (shell["first"], shell["again"], shell["other"], shell["RUNS"]["use"]) == (3.0, 3.0, 6.0, 2)


def test_slot_values_of_an_array_subclass_count_and_unset_ones_are_absent() -> None:
    import numpy as np

    class Tagged(np.ndarray):
        __slots__ = ("__dict__", "tag")

    def make(**attributes: object) -> Tagged:
        x = np.arange(3.0).view(Tagged)
        for name, value in attributes.items():
            setattr(x, name, value)
        return x

    assert content_hash(make(tag=1)) == content_hash(make(tag=1))
    assert content_hash(make(tag=1)) != content_hash(make(tag=2))
    assert content_hash(make(tag=1)) != content_hash(make())
    assert content_hash(make(tag=None)) != content_hash(make())
    assert content_hash(make(unit="m")) != content_hash(make(unit="s"))  # its dict, as before


def test_slotted_subclasses_of_library_families_hit_after_a_restart(cache_dir: Path) -> None:
    cells = [RUNS_SETUP, """
        import weakref
        import numpy as np
        import torch
        from notebook_memo import memo

        class Arr(np.ndarray):
            __slots__ = ("tag",)

        class Bare(np.ndarray):
            __slots__ = ()

        class Ten(torch.Tensor):
            __slots__ = ("tag",)

        class Mod(torch.nn.Module):
            __slots__ = ("tag",)

        class Weak(weakref.WeakSet):
            __slots__ = ("tag",)

        def tagged(x, tag):
            x.tag = tag
            return x

        @memo
        def use(x):
            ran('use')
            return repr(x.tag) if hasattr(x, "tag") else "bare"

        OUT["results"] = [use(tagged(np.arange(3.0).view(Arr), {"unit": "m"})), use(np.arange(3.0).view(Bare)),
                          use(tagged(torch.arange(3.0).as_subclass(Ten), (1, 2))), use(tagged(Mod(), "mod")),
                          use(tagged(Weak(), 7))]
        OUT["runs"] = RUNS.get("use", 0)
    """]
    first = run_kernel(cells, cache_dir, seed=1)
    second = run_kernel(cells, cache_dir, seed=2)
    assert first["results"] == second["results"] == ["{'unit': 'm'}", "bare", "(1, 2)", "'mod'", "7"]
    assert (first["runs"], second["runs"]) == (5, 0)


# -- attributes set on a pandas object itself ----------------------------------------------------------------

_PANDAS_VALUES = {
    "frame": "pd.DataFrame({'x': [1.0, 2.0]})",
    "series": "pd.Series([1.0, 2.0])",
    "index": "pd.Index([1.0, 2.0])",
    "multi index": "pd.MultiIndex.from_tuples([(1, 'a'), (2, 'b')])",
    "categorical": "pd.Categorical(['a', 'b'])",
    "masked array": "pd.array([1, None])",
}


@pytest.mark.parametrize("case", sorted(_PANDAS_VALUES))
def test_an_attribute_set_on_a_pandas_object_is_in_the_key(shell: Shell, case: str) -> None:
    shell.run(RUNS_SETUP)
    shell.run(f"""
        import warnings
        import pandas as pd
        from notebook_memo import memo

        def named(name):
            value = {_PANDAS_VALUES[case]}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pandas' warning that an attribute is not a column
                value.label = name
            return value

        @memo
        def describe(value):
            ran("describe")
            return f"{{value.label}}: {{len(value)}} rows"

        first, second, again = describe(named("train")), describe(named("test")), describe(named("test"))
    """)
    assert (shell["first"], shell["second"], shell["again"]) == ("train: 2 rows", "test: 2 rows", "test: 2 rows")
    assert shell["RUNS"]["describe"] == 2


def test_pandas_objects_without_attributes_of_their_own_keep_their_digests() -> None:
    import pandas as pd

    frame = pd.DataFrame({"x": [1.0, 2.0]})
    before = content_hash(frame)
    frame["x"].sum()  # fills what pandas caches under its own names
    frame.index.get_loc(0)
    frame.groupby("x").sum()
    assert content_hash(frame) == before
    labelled = pd.DataFrame({"x": [1.0, 2.0]})
    object.__setattr__(labelled, "label", "train")
    assert content_hash(labelled) != before
    twin = pd.DataFrame({"x": [1.0, 2.0]})
    object.__setattr__(twin, "label", "train")
    assert content_hash(twin) == content_hash(labelled)


class _CachingAccessor:
    """An accessor that caches itself on the object it is read from, as pandas' before version 3 do (``s.str``)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, obj: object, cls: type) -> object:
        if obj is None:
            return self
        made = ("accessor of", id(obj))
        object.__setattr__(obj, self.name, made)
        return made


def test_an_accessor_that_caches_itself_on_a_pandas_object_leaves_its_key_alone(monkeypatch: pytest.MonkeyPatch,
                                                                                 shell: Shell) -> None:
    import pandas as pd

    for cls in (pd.DataFrame, pd.Series, pd.Index):
        monkeypatch.setattr(cls, "cached_accessor", _CachingAccessor("cached_accessor"), raising=False)
    shell.run(RUNS_SETUP)
    shell.run("""
        import pandas as pd
        from notebook_memo import memo

        @memo
        def use(frame):
            ran("use")
            frame.cached_accessor, frame["x"].cached_accessor, frame.index.cached_accessor
            return float(frame["x"].sum())

        frame = pd.DataFrame({"x": [1.0, 2.0]})
        first, again = use(frame), use(frame)
        fresh = use(pd.DataFrame({"x": [1.0, 2.0]}))
    """)
    assert "cached_accessor" in vars(shell["frame"])
    assert (shell["first"], shell["again"], shell["fresh"], shell["RUNS"]["use"]) == (3.0, 3.0, 3.0, 1)


# -- what a scipy sparse matrix fills in on first use ---------------------------------------------------------


@pytest.mark.parametrize("kind", ["csr_matrix", "csc_matrix", "csr_array"])
def test_a_fresh_sparse_matrix_hits_and_a_body_that_sums_it_is_stored(shell: Shell, kind: str) -> None:
    shell.run(RUNS_SETUP)
    shell.run(f"""
        import warnings
        import numpy as np
        import scipy.sparse as sp
        from notebook_memo import memo

        @memo
        def total(m):
            ran("total")
            return float(m.sum())

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            used = sp.{kind}(np.eye(3))
            used.has_canonical_format  # read before the call, as any earlier use reads it
            results = [total(sp.{kind}(np.eye(3))), total(sp.{kind}(np.eye(3))), total(used)]
        said = [str(w.message) for w in caught]
    """)
    assert shell["results"] == [3.0, 3.0, 3.0]
    assert shell["RUNS"]["total"] == 1, shell["said"]
    assert not [text for text in shell["said"] if "in place" in text]


def test_a_sparse_matrix_s_format_flag_that_says_what_its_data_is_not_stays_in_the_key() -> None:
    import numpy as np
    import scipy.sparse as sp

    def unsorted() -> sp.csr_matrix:
        return sp.csr_matrix((np.array([1.0, 2.0]), np.array([1, 0]), np.array([0, 2])), shape=(1, 2))

    fresh, checked, lying = unsorted(), unsorted(), unsorted()
    assert checked.has_sorted_indices is False and checked.has_canonical_format is False
    lying.has_sorted_indices = True  # scipy then skips sorting where it needs sorted indices
    assert content_hash(checked) == content_hash(fresh)
    assert content_hash(lying) != content_hash(fresh)
    assert content_hash(sp.csr_matrix(np.eye(2))) != content_hash(sp.csr_matrix(np.eye(2) * 2))


# -- a scipy k-d tree, whose pickled nodes hold addresses ------------------------------------------------------


@pytest.mark.parametrize("kind", ["KDTree", "cKDTree"])
def test_equal_k_d_trees_built_apart_hit(shell: Shell, kind: str) -> None:
    shell.run(RUNS_SETUP)
    shell.run(f"""
        import numpy as np
        from scipy.spatial import {kind}
        from notebook_memo import memo

        points = np.random.default_rng(0).random((300, 2))

        @memo
        def nearest(tree, where):
            ran("nearest")
            return tree.query(where, k=3)[1].tolist()

        first = nearest({kind}(points), [0.5, 0.5])
        again = nearest({kind}(points.copy()), [0.5, 0.5])
    """)
    assert shell["first"] == shell["again"] and shell["RUNS"]["nearest"] == 1


def test_k_d_trees_over_other_points_or_leaves_have_other_keys() -> None:
    import numpy as np
    from scipy.spatial import cKDTree

    points = np.random.default_rng(0).random((300, 2))
    tree = cKDTree(points)
    assert content_hash(cKDTree(points)) == content_hash(tree)
    tree.query([0.5, 0.5])
    assert content_hash(cKDTree(points)) == content_hash(tree)  # a query leaves its key alone
    moved = points.copy()
    moved[7, 0] += 1e-9
    assert content_hash(cKDTree(moved)) != content_hash(tree)
    assert content_hash(cKDTree(points, leafsize=4)) != content_hash(tree)
    assert content_hash(cKDTree(points, balanced_tree=False)) != content_hash(tree)


# -- what a Delaunay triangulation works out on first use -----------------------------------------------------


def test_an_interpolator_over_a_triangulation_is_stored_after_a_call_and_hits(shell: Shell) -> None:
    shell.run(RUNS_SETUP)
    shell.run("""
        import warnings
        import numpy as np
        from scipy.interpolate import LinearNDInterpolator
        from scipy.spatial import Delaunay
        from notebook_memo import memo

        points = np.random.default_rng(0).random((40, 2))

        @memo
        def at_centre(f):
            ran("at_centre")
            return float(f(0.5, 0.5))

        @memo
        def neighbours(tri):
            ran("neighbours")
            return [int(tri.find_simplex([0.5, 0.5])), len(tri.vertex_neighbor_vertices[1])]

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            values = [at_centre(LinearNDInterpolator(points, points[:, 0])) for _ in range(2)]
            found = [neighbours(Delaunay(points)) for _ in range(2)]
        said = [str(w.message) for w in caught]
    """)
    assert shell["values"][0] == shell["values"][1] and shell["found"][0] == shell["found"][1]
    assert (shell["RUNS"]["at_centre"], shell["RUNS"]["neighbours"]) == (1, 1), shell["said"]


def test_a_triangulation_whose_worked_out_parts_are_not_its_own_keeps_them_in_the_key() -> None:
    import numpy as np
    from scipy.spatial import Delaunay

    points = np.random.default_rng(0).random((40, 2))
    fresh, used, stale, moved = (Delaunay(points.copy()) for _ in range(4))
    used.find_simplex([0.5, 0.5])
    assert used.vertex_to_simplex is not None
    assert content_hash(used) == content_hash(fresh)
    assert stale.transform is not None  # worked out, then the points under it moved: find_simplex answers from the old
    stale._points[0] += 0.25
    moved._points[0] += 0.25
    assert content_hash(stale) != content_hash(moved)
