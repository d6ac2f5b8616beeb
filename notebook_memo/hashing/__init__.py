"""Canonical content hashing: a value's type and content to a 16-byte xxh3-128 digest, the same in every
process and under every ``PYTHONHASHSEED``.

``_core`` holds the walk and the builtin types; each library family has a module of its own (``_numpy``,
``_pandas``, ``_torch``, ``_matplotlib``) that registers itself here and imports its library only once a value of it is
met. This package is the layer below fingerprints, serialization and stores: the names below are
what the modules above use.
"""

from . import _matplotlib, _numpy, _pandas, _torch  # noqa: F401 (each registers its family with the walk)
from ._core import (
    BOOKKEEPING_PREFIX,
    CLOCK,
    IMMUTABLE_LEAVES,
    Hasher,
    aliasing_parts,
    cached_property_names,
    carry_into_deep_walks,
    combine,
    content_hash,
    enum_attributes,
    filled_cached_properties,
    framed,
    framed_head,
    install_code_handler,
    install_module_judge,
    install_version_reader,
    leaf_digests,
    library_version,
    qualified_name,
    register_hasher,
    things_met,
)
from ._torch import is_plain_tensor, numpy_bits, resolved

__all__ = [
    "BOOKKEEPING_PREFIX",
    "CLOCK",
    "IMMUTABLE_LEAVES",
    "Hasher",
    "aliasing_parts",
    "cached_property_names",
    "carry_into_deep_walks",
    "combine",
    "content_hash",
    "enum_attributes",
    "filled_cached_properties",
    "framed",
    "framed_head",
    "install_code_handler",
    "install_module_judge",
    "install_version_reader",
    "is_plain_tensor",
    "leaf_digests",
    "library_version",
    "numpy_bits",
    "qualified_name",
    "register_hasher",
    "resolved",
    "things_met",
]
