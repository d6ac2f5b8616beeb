"""scipy's compressed sparse matrices and arrays (CSR, CSC, BSR) hashed by their reduction, less the format flags
their first use fills in from their data, where those say what the data is."""

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


register_family("scipy", _scipy_path)
