"""matplotlib colormaps hashed by what defines them, without the lookup table their first call builds."""

from __future__ import annotations

import sys
from typing import Any

from ._core import Hasher, HashFn, _reduction, h_reduced, register_family

__all__ = ()

# Filled on a colormap's first call (``cmap(0.5)``) from the attributes it is made of: not content.
_BUILT_ON_FIRST_USE = frozenset({"_lut", "_isinit"})


def _matplotlib_path(cls: type) -> HashFn | None:
    colors = sys.modules.get("matplotlib.colors")
    if colors is not None and issubclass(cls, colors.Colormap):
        return _h_colormap
    return None


def _h_colormap(h: Hasher, v: Any) -> None:
    """Hash a colormap by its reduction, less the lookup table built from the rest on first use."""
    if h.seen_before(v):
        return  # one colormap held twice: set_bad on one shows in the other
    reduced = _reduction(v)
    state = reduced[2] if not isinstance(reduced, str) and len(reduced) > 2 else None
    if type(state) is dict and not _BUILT_ON_FIRST_USE.isdisjoint(state):
        reduced = (*reduced[:2], {name: value for name, value in state.items() if name not in _BUILT_ON_FIRST_USE},
                   *reduced[3:])
    h_reduced(h, v, reduced)


register_family("matplotlib", _matplotlib_path)
