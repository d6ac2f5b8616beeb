"""scipy's compressed sparse matrices and arrays (CSR, CSC, BSR) hashed by their reduction, less the format flags
their first use fills in from their data, where those say what the data is; its k-d trees by their reduction with
the addresses their nodes hold made zero; a Delaunay triangulation without what it works out on first use from its
points and simplices, where that is what they give."""

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
    delaunay = getattr(sys.modules.get("scipy.spatial._qhull"), "Delaunay", None)
    if isinstance(delaunay, type) and issubclass(cls, delaunay):
        return _h_delaunay
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


# What a Delaunay triangulation works out from its points and simplices the first time it is asked (find_simplex,
# an interpolator's call), by the name it keeps it under and the property that fills it.
_WORKED_OUT = {"_transform": "transform", "_vertex_to_simplex": "vertex_to_simplex",
               "_vertex_neighbor_vertices": "vertex_neighbor_vertices"}


def _h_delaunay(h: Hasher, v: Any) -> None:
    """Hash a Delaunay triangulation by its reduction, each part it worked out on first use left as not yet worked
    out where a copy working it out anew gets the same (not so once its points were moved after)."""
    if h.seen_before(v):
        return
    reduced = _reduction(v)
    state = reduced[2] if not isinstance(reduced, str) and len(reduced) > 2 else None
    if type(state) is dict and any(state.get(name) is not None for name in _WORKED_OUT):
        anew = _worked_out_anew(v, [name for name in _WORKED_OUT if state.get(name) is not None])
        state = {name: None if name in anew and _same(value, anew[name]) else value for name, value in state.items()}
        reduced = (*reduced[:2], state, *reduced[3:])
    h_reduced(h, v, reduced)


def _worked_out_anew(v: Any, names: list[str]) -> dict[str, Any]:
    """Return by name what a copy of ``v`` without them works out anew; empty where that cannot be done."""
    copy = object.__new__(type(v))
    try:
        vars(copy).update(vars(v))
        vars(copy)["_qhull"] = None  # an incremental one's live qhull stays the original's to close
        for name in _WORKED_OUT:
            vars(copy)[name] = None
        return {name: getattr(copy, _WORKED_OUT[name]) for name in names}
    except Exception:  # another layout than scipy's today: all is keyed as it is
        return {}
    finally:
        vars(copy)["_qhull"] = None


def _same(value: Any, other: Any) -> bool:
    np = sys.modules["numpy"]
    if type(value) is tuple and type(other) is tuple:
        return len(value) == len(other) and all(map(_same, value, other))
    if not isinstance(value, np.ndarray) or not isinstance(other, np.ndarray):
        return False
    return value.dtype == other.dtype and bool(np.array_equal(value, other, equal_nan=value.dtype.kind in "fc"))


register_family("scipy", _scipy_path)
