"""scikit-learn's neighbour trees (``KDTree``, ``BallTree``, and so every estimator fitted with one) hashed by
what defines them, without the query counters every query bumps."""

from __future__ import annotations

import re
from typing import Any

from ._core import Hasher, HashFn, _reduction, h_reduced, register_family

__all__ = ()

# The base of both trees: ``BinaryTree`` before scikit-learn 1.3, ``BinaryTree64``/``BinaryTree32`` since.
_BINARY_TREE = re.compile(r"BinaryTree(?:32|64)?")
# In its pickled state, ``(data, idx_array, node_data, node_bounds, leaf_size, n_levels, n_nodes, n_trims,
# n_leaves, n_splits, n_calls, dist_metric[, sample_weight])``, the positions of the four counters.
_COUNTERS = slice(7, 11)
_STATE_LENGTHS = frozenset({12, 13})


def _sklearn_path(cls: type) -> HashFn | None:
    if any(base.__module__.startswith("sklearn.neighbors.") and _BINARY_TREE.fullmatch(base.__qualname__)
           for base in cls.__mro__):
        return _h_binary_tree
    return None


def _h_binary_tree(h: Hasher, v: Any) -> None:
    """Hash a neighbour tree by its reduction, less its query counters (statistics, not content: a query
    answers the same whatever they hold), where the state is laid out as expected; else by all of it."""
    if h.seen_before(v):
        return  # one tree held twice (an estimator and its caller): keyed once, then by a reference back
    reduced = _reduction(v)
    if not isinstance(reduced, str) and len(reduced) > 2 and _counters_where_expected(v, reduced[2]):
        state = reduced[2]
        reduced = (*reduced[:2], (*state[:_COUNTERS.start], *state[_COUNTERS.stop:]), *reduced[3:])
    h_reduced(h, v, reduced)


def _counters_where_expected(tree: Any, state: Any) -> bool:
    """Whether ``state`` holds the tree's counters, read by name, at the positions this module drops: another
    layout (a scikit-learn to come) keeps them, a false miss at worst, never a false hit."""
    if type(state) is not tuple or len(state) not in _STATE_LENGTHS:
        return False
    try:
        counters = (*tree.get_tree_stats(), tree.get_n_calls())
    except Exception:
        return False
    return (all(type(item) is int for item in state[4:_COUNTERS.stop])
            and tuple(state[_COUNTERS]) == tuple(int(count) for count in counters))


register_family("sklearn", _sklearn_path)
