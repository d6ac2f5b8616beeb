"""Canonical content hashing: a value's type and content to a 16-byte xxh3-128 digest, the same in every
process and under every ``PYTHONHASHSEED``.

``_core`` holds the walk and the builtin types; each library family has a module of its own (``_numpy``, ``_shared``,
``_pandas``, ``_torch``, ``_matplotlib``, ``_sklearn``, ``_scipy``) that registers itself here and imports its library
only once a value of it is met. This package is the layer below fingerprints, serialization and stores: the names
below are what the modules above use.
"""

from . import _matplotlib, _numpy, _pandas, _scipy, _shared, _sklearn, _torch  # noqa: F401 (each registers its family with the walk)
from ._aliasing import SharingWith, aliasing_parts, keyword_values
from ._core import (
    BOOKKEEPING_PREFIX,
    CLOCK,
    IMMUTABLE_LEAVES,
    STATE_FUNCTION,
    Hasher,
    cached_property_names,
    carry_into_deep_walks,
    combine,
    content_hash,
    enum_attributes,
    filled_cached_properties,
    framed,
    framed_head,
    hasher_registered,
    hashers_registered,
    install_code_handler,
    install_module_judge,
    install_patch_reader,
    install_state_function_hook,
    install_version_reader,
    keyed_as_wrapped,
    leaf_digests,
    library_version,
    note_state_function,
    note_state_use,
    qualified_name,
    register_hasher,
    things_met,
)
from ._torch import is_plain_tensor, numpy_bits, resolved

__all__ = [
    "BOOKKEEPING_PREFIX",
    "CLOCK",
    "IMMUTABLE_LEAVES",
    "STATE_FUNCTION",
    "Hasher",
    "SharingWith",
    "aliasing_parts",
    "cached_property_names",
    "carry_into_deep_walks",
    "combine",
    "content_hash",
    "enum_attributes",
    "filled_cached_properties",
    "framed",
    "framed_head",
    "hasher_registered",
    "hashers_registered",
    "install_code_handler",
    "install_module_judge",
    "install_patch_reader",
    "install_state_function_hook",
    "install_version_reader",
    "is_plain_tensor",
    "keyed_as_wrapped",
    "keyword_values",
    "leaf_digests",
    "library_version",
    "note_state_function",
    "note_state_use",
    "numpy_bits",
    "qualified_name",
    "register_hasher",
    "resolved",
    "things_met",
]
