"""Models passed as arguments that an ordinary use must not re-key: scikit-learn's neighbour trees (the
query counters every query bumps) and the estimators built on them, and pandas GroupBy objects (the
caches their first aggregation fills)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest
from conftest import Shell, run_kernel
from sklearn import manifold, neighbors

from notebook_memo import MemoWarning, _demo, memo
from notebook_memo.hashing import content_hash

_FIT = """
import warnings
import numpy as np
from sklearn.datasets import load_iris
from sklearn.neighbors import BallTree, KDTree, KernelDensity, KNeighborsClassifier, NearestNeighbors
from notebook_memo import memo
X, y = load_iris(return_X_y=True)
"""


@pytest.mark.parametrize("model, use", [
    ("KNeighborsClassifier(3).fit(X, y)", "model.predict(X)"),
    ("KernelDensity(bandwidth=0.5).fit(X)", "model.score_samples(X)"),
    ("BallTree(X)", "model.kernel_density(X[:5], h=0.5)"),
    ("KDTree(X, leaf_size=10)", "model.query_radius(X[:5], r=0.5, count_only=True)"),
    ("KDTree(X)", "model.query(X[:5])[0]"),
    ("NearestNeighbors(n_neighbors=2).fit(X)", "model.kneighbors(X[:5])[1]"),
])
def test_a_neighbour_tree_model_argument_is_stored_and_hits(shell: Shell, model: str, use: str) -> None:
    shell.run(_FIT)
    shell.run(f"""
        model = {model}
        @memo
        def use(model, X):
            return {use}
        first = use(model, X)
        second = use(model, X)
        info = use.cache_info()
    """)
    assert (shell["info"].hits, shell["info"].misses, shell["info"].entries) == (1, 1, 1)
    assert (shell["first"] == shell["second"]).all()


def test_a_neighbour_tree_model_hits_after_a_restart(cache_dir: Path) -> None:
    cells = [_FIT, """
        knn = KNeighborsClassifier(3).fit(X, y)
        kde = KernelDensity(bandwidth=0.5).fit(X)
        @memo
        def predict(model, X):
            return model.predict(X).tolist()
        @memo
        def density(model, X):
            return model.score_samples(X).round(6).tolist()
        OUT["labels"] = predict(knn, X)
        OUT["density"] = density(kde, X)
        OUT["info"] = [tuple(predict.cache_info()), tuple(density.cache_info())]
    """]
    first = run_kernel(cells, cache_dir, seed=1)
    second = run_kernel(cells, cache_dir, seed=2)
    assert [info[:3] for info in first["info"]] == [[0, 1, 1], [0, 1, 1]]
    assert [info[:3] for info in second["info"]] == [[1, 0, 1], [1, 0, 1]]
    assert (second["labels"], second["density"]) == (first["labels"], first["density"])


def test_a_tree_of_other_data_or_leaf_size_is_keyed_apart() -> None:
    import numpy as np
    from sklearn.neighbors import BallTree, KDTree

    X = np.arange(60.0).reshape(20, 3)
    base = content_hash(BallTree(X, leaf_size=5), "t")
    used = BallTree(X, leaf_size=5)
    used.query(X[:4])
    assert content_hash(used, "t") == base  # its query counters are not content
    assert content_hash(BallTree(X, leaf_size=6), "t") != base
    assert content_hash(BallTree(X + 1, leaf_size=5), "t") != base
    assert content_hash(BallTree(X, leaf_size=5, metric="manhattan"), "t") != base
    assert content_hash(KDTree(X, leaf_size=5), "t") != base


def test_a_tree_state_of_another_layout_keeps_its_counters() -> None:
    import numpy as np
    from sklearn.neighbors import KDTree

    from notebook_memo.hashing._sklearn import _counters_where_expected

    tree = KDTree(np.arange(30.0).reshape(10, 3))
    tree.query(np.zeros((2, 3)))
    state = tree.__getstate__()
    assert _counters_where_expected(tree, state)
    assert not _counters_where_expected(tree, (*state, None))  # a field more: dropped by position, it could be content
    assert not _counters_where_expected(tree, (*state[:7], *state[8:11], state[7], *state[11:]))  # moved about
    assert not _counters_where_expected(tree, list(state))


@pytest.mark.parametrize("use", ['g["a"].sum()', "g.size()", "g.mean()", "g.ngroups"])
def test_a_groupby_argument_is_stored_and_hits_after_its_first_aggregation(shell: Shell, use: str) -> None:
    shell.run(f"""
        import pandas as pd
        from notebook_memo import memo
        df = pd.DataFrame({{"a": range(6), "b": [1.5] * 6, "k": list("xyzxyx")}})
        g = df.groupby("k")
        @memo
        def total(g):
            return {use}
        first = total(g)
        second = total(g)
        info = total.cache_info()
    """)
    # Stored under the key of g as given and of g as the run left it, its cache filled: the second call hits.
    assert (shell["info"].hits, shell["info"].misses, shell["info"].entries) == (1, 1, 2)


def test_a_groupby_of_other_data_keys_or_options_is_keyed_apart() -> None:
    df = pd.DataFrame({"a": range(6), "k": list("xyzxyx"), "j": list("xxyyzz")})
    used = df.groupby("k")
    used["a"].sum()
    base = content_hash(df.groupby("k"), "g")
    assert content_hash(used, "g") != base  # what its first aggregation cached is served, stale or not: keyed
    assert content_hash(df.groupby("j"), "g") != base
    assert content_hash(df.groupby("k", sort=False), "g") != base
    assert content_hash(df.groupby("k")["a"], "g") != base
    other = df.copy()
    other.loc[0, "k"] = "z"
    assert content_hash(other.groupby("k"), "g") != base
    changed = df.groupby("k")
    changed["a"].sum()
    df.loc[0, "a"] = 100  # the frame it groups changed in place: its key follows
    assert content_hash(changed, "g") != base


@pytest.mark.parametrize("make, use", [
    (lambda X, y: neighbors.RadiusNeighborsClassifier(2.0).fit(X, y), lambda m, X: m.predict(X)),
    (lambda X, y: neighbors.KNeighborsRegressor().fit(X, y), lambda m, X: m.predict(X)),
    (lambda X, y: neighbors.LocalOutlierFactor(novelty=True).fit(X), lambda m, X: m.predict(X)),
    (lambda X, y: manifold.Isomap(n_components=2).fit(X), lambda m, X: m.transform(X)),
], ids=["RadiusNeighborsClassifier", "KNeighborsRegressor", "LocalOutlierFactor", "Isomap"])
def test_an_estimator_built_on_a_tree_keys_the_same_after_use(make: Any, use: Any) -> None:
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    model = make(X, y)
    before = content_hash(model, "model")
    use(model, X)
    assert content_hash(model, "model") == before


@pytest.mark.parametrize("make", [lambda s: s.rolling(2), lambda s: s.expanding(), lambda s: s.resample("2D"),
                                  lambda s: s.ewm(span=2)], ids=["rolling", "expanding", "resample", "ewm"])
def test_a_window_or_resampler_argument_is_stored_and_hits_after_use(make: Any) -> None:
    series = pd.Series(range(8), index=pd.date_range("2024-01-01", periods=8, freq="D"))
    window = make(series)

    @memo
    def mean(w: Any) -> Any:
        return w.mean()

    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)  # filling its cache is no change of the argument
        first, second = mean(window), mean(window)
    assert first.equals(second)
    assert (mean.cache_info().hits, mean.cache_info().misses) == (1, 1)


class _Report:
    """The demo's per-cell report, driven in a real shell: each cell runs, then the demo's own expression is
    evaluated as the kernel evaluates it (a user expression), and the cell is classified from the counts."""

    def __init__(self, shell: Shell) -> None:
        self.shell, self.counters = shell, _demo._read_counters({"status": "ok", "data": {"text/plain": "'{}'"}})

    def cell(self, source: str) -> tuple[str, str]:
        self.shell.run(source)
        value = self.shell.ip.user_expressions({"memo": _demo._COUNTERS})["memo"]
        before, self.counters = self.counters, _demo._read_counters(value)
        report = _demo._report(0, nbformat.v4.new_code_cell(source), 0.0, before, self.counters)
        return report.outcome, report.detail


def test_the_demo_report_counts_a_redefined_function_by_its_own_counters(shell: Shell) -> None:
    report = _Report(shell)
    define = "from notebook_memo import memo\n@memo\ndef f(x):\n    return x + {}\nf(1)"
    assert report.cell(define.format(1)) == ("computed", "f: 1 computed")
    assert report.cell(define.format(1)) == ("restored", "f: 1 restored")
    # Redefined again and a hit: the new function's counters are the old one's, (1 hit, 0 misses).
    assert report.cell(define.format(1)) == ("restored", "f: 1 restored")
    assert report.cell(define.format(2)) == ("computed", "f: 1 computed")
    assert report.cell(define.format(3)) == ("computed", "f: 1 computed")  # (0, 1) after (0, 1)
    assert report.cell("g = f\nf(1)") == ("restored", "f: 1 restored")  # one function under two names: once
    assert report.cell("x = 1") == ("ran", "")


def test_the_demo_report_counts_a_memoized_method(shell: Shell) -> None:
    report = _Report(shell)
    report.cell("from notebook_memo import memo")
    cls = "class Retriever:\n    @memo\n    def search(self, q):\n        return q * 2\n"
    assert report.cell(cls + "r = Retriever()\nr.search(3)") == ("computed", "Retriever.search: 1 computed")
    assert report.cell("r.search(3), r.search(4)") == ("computed", "Retriever.search: 1 computed, 1 restored")
    assert report.cell(cls + "Retriever().search(4)") == ("restored", "Retriever.search: 1 restored")
    static = "class Tools:\n    @staticmethod\n    @memo\n    def twice(q):\n        return q * 2\nTools.twice(5)"
    assert report.cell(static) == ("computed", "Tools.twice: 1 computed")
