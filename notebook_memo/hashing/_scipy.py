"""scipy's compressed sparse matrices and arrays (CSR, CSC, BSR) hashed by their reduction, less the format flags
their first use fills in from their data, where those say what the data is; its k-d trees by their reduction with
the addresses their nodes hold made zero."""

from __future__ import annotations

import sys
from typing import Any

from ._core import Hasher, HashFn, _reduction, h_reduced, register_family

__all__ = ()

# Filled in by the first read of has_sorted_indices or has_canonical_format (m.sum(), m @ v, most operations); a
# flag that says what the data is tells nothing more, one that says otherwise (set by the user, or left stale by a
# write into m.indices) changes what scipy computes.
_FILLED_ON_FIRST_USE = ("_has_sorted_indices", "_has_canonical_format")


def _scipy_path(cls: type) -> HashFn | None:
    compressed = sys.modules.get("scipy.sparse._compressed")
    base = getattr(compressed, "_cs_matrix", None)
    if isinstance(base, type) and issubclass(cls, base):
        return _h_compressed
    tree = getattr(sys.modules.get("scipy.spatial._ckdtree"), "cKDTree", None)
    if isinstance(tree, type) and issubclass(cls, tree):
        return _h_kd_tree
    return None


def _h_compressed(h: Hasher, v: Any) -> None:
    """Hash a compressed sparse matrix by its reduction, without the format flags that agree with its data."""
    if h.seen_before(v):
        return  # one matrix held twice: a write through one shows in the other
    reduced = _reduction(v)
    state = reduced[2] if not isinstance(reduced, str) and len(reduced) > 2 else None
    if type(state) is dict and any(name in state for name in _FILLED_ON_FIRST_USE):
        truth = _flags_of_its_data(v)
        if truth is not None:
            state = {name: value for name, value in state.items()
                     if name not in truth or type(value) is not bool or value is not truth[name]}
            reduced = (*reduced[:2], state, *reduced[3:])
    h_reduced(h, v, reduced)


def _flags_of_its_data(v: Any) -> dict[str, bool] | None:
    """Return the format flags a matrix over the same arrays would find on first use; None where that cannot be
    told (all flags are then keyed as they are: a miss at worst)."""
    try:
        fresh = type(v)((v.data, v.indices, v.indptr), shape=v.shape, copy=False)
        sorted_indices = fresh.has_sorted_indices
        canonical = fresh.has_canonical_format
    except Exception:  # another layout than scipy's today
        return None
    if type(sorted_indices) is not bool or type(canonical) is not bool:
        return None
    return {"_has_sorted_indices": sorted_indices, "_has_canonical_format": canonical}


# A k-d tree's pickled state begins with its nodes' bytes, each node laid out as scipy's ckdtreenode: split_dim,
# children, split, start_idx, end_idx, then the addresses of its two children (where this tree's memory lay, another
# at each build and in each process) and their numbers among the nodes.
_NODE_FIELDS = [("split_dim", "<i8"), ("children", "<i8"), ("split", "<f8"), ("start_idx", "<i8"), ("end_idx", "<i8"),
                ("less", "<u8"), ("greater", "<u8"), ("_less", "<i8"), ("_greater", "<i8")]


def _h_kd_tree(h: Hasher, v: Any) -> None:
    """Hash a k-d tree by its reduction, with the child addresses in its nodes made zero where its nodes are laid out
    as expected (their numbers, kept, say the same); else by all of it, a miss at worst."""
    if h.seen_before(v):
        return
    reduced = _reduction(v)
    state = reduced[2] if not isinstance(reduced, str) and len(reduced) > 2 else None
    if type(state) is tuple and state:
        nodes = _nodes_without_addresses(state)
        if nodes is not None:
            reduced = (*reduced[:2], (nodes, *state[1:]), *reduced[3:])
    h_reduced(h, v, reduced)


def _nodes_without_addresses(state: tuple[Any, ...]) -> Any:
    """Return a copy of a k-d tree's node bytes with the child addresses zero, or None where they are not laid out as
    scipy's nodes are today (on a little-endian 64-bit machine): the root spans all points, and each inner node's
    children lie as far apart in memory as their numbers say."""
    np = sys.modules["numpy"]
    raw, n = state[0], state[2] if len(state) > 2 else None
    node = np.dtype(_NODE_FIELDS)
    if (not isinstance(raw, np.ndarray) or raw.dtype.itemsize != 1 or raw.ndim != 1 or not raw.flags.c_contiguous
            or type(n) is not int or sys.byteorder != "little" or not raw.nbytes or raw.nbytes % node.itemsize):
        return None
    nodes = raw.view(node).copy()
    inner = nodes["split_dim"] != -1
    if nodes["start_idx"][0] != 0 or nodes["end_idx"][0] != n:
        return None
    spread = nodes["greater"][inner].astype(np.int64) - nodes["less"][inner].astype(np.int64)
    if not np.array_equal(spread, (nodes["_greater"][inner] - nodes["_less"][inner]) * node.itemsize):
        return None
    nodes["less"] = 0
    nodes["greater"] = 0
    return nodes.view(raw.dtype)


register_family("scipy", _scipy_path)
