"""Batch containers: take items out of an input, and put results back together with their exact type.

A batch result is split into one part per item, and each item's record carries a small JSON
description of the result's type (container, dtype with categories or time zone, name, columns and
their dtypes, numpy item shape). Results are rebuilt from those descriptions, so a call whose items
all come from the cache returns what the function would have returned, without calling it.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any

from ._config import TYPE_DESCRIPTION_LIMIT
from ._errors import BatchError
from .hashing import content_hash

__all__ = ()

KINDS = ("frame", "series", "ndarray", "tuple", "list")
TYPE_KEY = "result_type"
# Bump when descriptions change meaning: records with another format are recomputed, never misread.
TYPE_FORMAT = 1


# -- taking items out -------------------------------------------------------------------------
def kind(value: Any) -> str:
    """Return the container kind of a batch argument or result."""
    np = sys.modules.get("numpy")
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(value, pd.DataFrame):
        return "frame"
    if pd is not None and isinstance(value, pd.Series):
        return "series"
    if np is not None and isinstance(value, np.ndarray):
        return "ndarray"
    if isinstance(value, tuple):
        return "tuple"
    if isinstance(value, list):
        return "list"
    raise BatchError(f"a batch argument must be a list, tuple, numpy array or pandas Series, "
                     f"not {type(value).__qualname__}")


def items(value: Any, kind: str) -> list[Any]:
    """Return the items of a batch argument, in order."""
    if kind in ("series", "frame"):
        return [value.iloc[i] for i in range(len(value))]
    return list(value)


def container_digest(value: Any, kind: str) -> bytes:
    """Return the digest of what a batch argument gives the body besides its items' values: its container
    and dtypes. Items alone do not say it: a Series and an int64 array have equal items (numpy ints), yet
    the Series yields Python ints; categories and a frame's column dtypes are in no item."""
    if kind in ("series", "ndarray"):
        return content_hash((kind, value.dtype), "the batch argument's dtype")
    if kind == "frame":
        return content_hash((kind, list(value.dtypes)), "the batch argument's dtypes")
    return kind.encode()


def subset(value: Any, kind: str, positions: list[int]) -> Any:
    """Return the batch argument restricted to ``positions``, in the same container."""
    if kind in ("series", "frame"):
        return value.iloc[positions]
    if kind == "ndarray":
        return value[positions]
    picked = [value[i] for i in positions]
    return tuple(picked) if kind == "tuple" else picked


def split(result: Any, kind: str) -> list[Any]:
    """Return one part per item of a batch result: what each item's record stores."""
    if kind == "frame":
        return [result.iloc[[i]] for i in range(len(result))]
    if kind == "series":
        return [result.iloc[i] for i in range(len(result))]
    return list(result)


# -- describing types -------------------------------------------------------------------------
@dataclass(frozen=True)
class ResultType:
    """The type of a batch result less its length: enough to rebuild it around cached parts."""

    kind: str
    dtype: Any = None  # series, ndarray; None: inferred from the values
    name: Any = None  # series
    columns: tuple[Any, ...] | None = None  # frame
    dtypes: tuple[Any, ...] | None = None  # frame
    shape: tuple[int, ...] = ()  # ndarray: one item's shape
    live: bool = False  # from a result computed in this call, not read from a record
    key: str = ""  # equal keys: the same dtypes (series, ndarray) or columns and dtypes (frame)
    description: dict[str, Any] = field(default_factory=dict)


def describe(result: Any, kind: str) -> ResultType:
    """Return the type of a result the function just returned, with its JSON description."""
    if kind == "series":
        desc = {"dtype": _describe_dtype(result.dtype), "name": _encode_label(result.name)}
        rtype = ResultType(kind, dtype=result.dtype, name=result.name, live=True)
    elif kind == "frame":
        columns = [_encode_label(c) for c in result.columns]
        dtypes = [_describe_dtype(d) for d in result.dtypes]
        complete = None not in columns and None not in dtypes
        desc = {"columns": columns if complete else None, "dtypes": dtypes if complete else None}
        rtype = ResultType(kind, columns=tuple(result.columns), dtypes=tuple(result.dtypes), live=True)
    elif kind == "ndarray":
        desc = {"dtype": _describe_dtype(result.dtype), "shape": list(result.shape[1:])}
        rtype = ResultType(kind, dtype=result.dtype, shape=tuple(result.shape[1:]), live=True)
    else:
        desc = {}
    if len(_canonical(desc)) > TYPE_DESCRIPTION_LIMIT:
        # Thousands of categories or columns would be copied into every item's metadata: keep the
        # container, name and shape only, so a call served wholly from the cache infers dtypes from the values.
        desc = {k: (None if k in ("dtype", "columns", "dtypes") else v) for k, v in desc.items()}
    desc["format"] = TYPE_FORMAT
    if kind in ("list", "tuple"):
        return ResultType(kind, live=True, key="", description=desc)
    described = desc.get("dtype", 0) is not None and desc.get("dtypes", 0) is not None
    key = _part_key(kind, desc) if described else f"live:{uuid.uuid4().hex}"  # agrees with no other
    return ResultType(**{**vars(rtype), "key": key, "description": desc})


def type_meta(kind: str, description: dict[str, Any]) -> dict[str, Any]:
    """Return the metadata entries an item's record keeps about its result's type."""
    return {"container": kind, TYPE_KEY: {**description, "kind": kind}}


_MARKER = f'"{TYPE_KEY}":'.encode()
_DECODER = json.JSONDecoder()


def stored_type(meta_raw: bytes | memoryview, decoded: dict[str, ResultType]) -> ResultType | None:
    """Return the result type a record's metadata describes, or None when it has none this code can read.

    ``decoded`` remembers descriptions already decoded during one call: items share them.
    """
    raw = bytes(meta_raw)
    desc: Any = None
    with contextlib.suppress(ValueError):  # not UTF-8, or not JSON: no description this code can read
        if raw.count(_MARKER) == 1:
            # Decode only this entry, not the whole metadata (a third of the cost of a cached item). Other
            # entries hold no object under this name, and a wrong match would fail the checks below.
            text = raw.decode()
            desc = _DECODER.raw_decode(text, text.index(_MARKER.decode()) + len(_MARKER))[0]
        else:
            meta = json.loads(raw)
            desc = meta.get(TYPE_KEY) if isinstance(meta, dict) else None
    if not isinstance(desc, dict) or desc.get("format") != TYPE_FORMAT or desc.get("kind") not in KINDS:
        return None  # stored before types were described, or by another format: recompute
    cache_key = repr(desc)  # JSON values only, so repr is exact, and cheaper than encoding again
    known = decoded.get(cache_key)
    if known is None:
        try:
            known = decoded[cache_key] = _read_description(desc["kind"], desc)
        except Exception:
            return None
    return known


def _read_description(kind: str, desc: dict[str, Any]) -> ResultType:
    key = _part_key(kind, desc)
    if kind == "series":
        dtype = None if desc["dtype"] is None else _decode_dtype(desc["dtype"])
        name = None if desc["name"] is None else _decode_label(desc["name"])
        return ResultType(kind, dtype=dtype, name=name, key=key, description=desc)
    if kind == "frame":
        if desc["columns"] is None or desc["dtypes"] is None:
            return ResultType(kind, key=key, description=desc)
        return ResultType(kind, columns=tuple(_decode_label(c) for c in desc["columns"]),
                          dtypes=tuple(_decode_dtype(d) for d in desc["dtypes"]), key=key, description=desc)
    if kind == "ndarray":
        dtype = None if desc["dtype"] is None else _decode_dtype(desc["dtype"])
        return ResultType(kind, dtype=dtype, shape=tuple(int(n) for n in desc["shape"]), key=key,
                          description=desc)
    return ResultType(kind, description=desc)


def _part_key(kind: str, desc: dict[str, Any]) -> str:
    if kind == "frame":
        return _canonical([desc.get("columns"), desc.get("dtypes")])
    if desc.get("dtype") is None:
        return "values"
    return _canonical([desc.get("dtype"), desc.get("shape")])


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _plain(value: Any) -> bool:
    return value is None or type(value) in (str, int, bool) or (type(value) is float and math.isfinite(value))


def _encode_label(label: Any) -> Any:
    """Return a JSON form of a name or column label, or None when it has none that reads back exactly."""
    if _plain(label):
        return {"v": label}
    if type(label) is tuple:
        parts = [_encode_label(x) for x in label]
        return None if None in parts else {"t": parts}
    return None  # e.g. a Timestamp or numpy scalar: the name is left to the values on a full hit


def _decode_label(encoded: dict[str, Any]) -> Any:
    if "t" in encoded:
        return tuple(_decode_label(x) for x in encoded["t"])
    return encoded["v"]


def _describe_dtype(dtype: Any) -> dict[str, Any] | None:
    """Return a JSON description of a numpy or pandas dtype, or None when it does not read back equal."""
    np = sys.modules.get("numpy")
    pd = sys.modules.get("pandas")
    desc: dict[str, Any]
    if np is not None and isinstance(dtype, np.dtype):
        desc = {"numpy": dtype.str if dtype.fields is None and dtype.subdtype is None else dtype.descr}
    elif pd is not None and isinstance(dtype, pd.CategoricalDtype):
        values = dtype.categories.tolist()
        inner = _describe_dtype(dtype.categories.dtype)
        if inner is None or not all(_plain(v) and v is not None for v in values):
            return None  # e.g. Timestamp categories: not plain JSON
        desc = {"categories": values, "categories_dtype": inner, "ordered": bool(dtype.ordered)}
    elif pd is not None and isinstance(dtype, pd.api.extensions.ExtensionDtype):
        desc = {"pandas": str(dtype)}
    else:
        return None
    desc = json.loads(_canonical(desc))  # tuples in numpy field lists become lists, as in the record
    try:
        back = _decode_dtype(desc)
    except Exception:
        return None
    # A dateutil time zone or an unregistered extension dtype prints a name that does not parse back.
    return desc if same_dtype(back, dtype) else None


def _decode_dtype(desc: dict[str, Any]) -> Any:
    if "numpy" in desc:
        import numpy as np

        return np.dtype(_numpy_fields(desc["numpy"]))
    import pandas as pd

    if "categories" in desc:
        categories = pd.Index(desc["categories"], dtype=_decode_dtype(desc["categories_dtype"]))
        return pd.CategoricalDtype(categories, ordered=bool(desc["ordered"]))
    return pd.api.types.pandas_dtype(str(desc["pandas"]))


def _numpy_fields(descr: Any) -> Any:
    """Return numpy's ``dtype.descr`` from its JSON form: fields are tuples again."""
    if isinstance(descr, str):
        return descr
    fields = []
    for entry in descr:
        name = tuple(entry[0]) if isinstance(entry[0], list) else entry[0]
        rest = [_numpy_fields(entry[1])] + ([tuple(entry[2])] if len(entry) > 2 else [])
        fields.append((name, *rest))
    return fields


def same_dtype(a: Any, b: Any) -> bool:
    """Return True when two dtypes are the same, categories and their order included."""
    if type(a) is not type(b) or str(a) != str(b) or not bool(a == b):
        return False
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(a, pd.CategoricalDtype):
        return (a.ordered == b.ordered and list(a.categories) == list(b.categories)
                and same_dtype(a.categories.dtype, b.categories.dtype))
    return True


# -- putting results back together ------------------------------------------------------------
def assemble(parts: list[Any], types: list[ResultType], index: Any) -> Any:
    """Return the parts as one result of the first type's container; ``index`` labels Series and frames."""
    kind = types[0].kind if types else "list"
    if kind == "list":
        return parts
    if kind == "tuple":
        return tuple(parts)
    if kind == "ndarray":
        return _array(parts, types)
    import pandas as pd

    if kind == "series":
        result = _series(parts, types)
    else:
        result = _frame(parts, types)
    result.index = index if index is not None else pd.RangeIndex(len(result))
    return result


def _runs(types: list[ResultType]) -> list[tuple[int, int]]:
    """Return the (start, stop) stretches of consecutive parts whose types agree."""
    bounds, start = [], 0
    for i in range(1, len(types) + 1):
        if i == len(types) or types[i].key != types[start].key:
            bounds.append((start, i))
            start = i
    return bounds


def _series(parts: list[Any], types: list[ResultType]) -> Any:
    import pandas as pd

    runs = _runs(types)
    if len(runs) == 1:
        series = pd.Series(parts, dtype=types[0].dtype)
    else:
        # Items stored with different dtypes (the function's dtype depends on its input): combine
        # them as pandas combines the chunks, so no value is cast into a dtype that cannot hold it.
        series = pd.concat([pd.Series(parts[a:b], dtype=types[a].dtype) for a, b in runs], ignore_index=True)
    live = [t for t in types if t.live]
    if live:
        series.name = live[0].name
    elif all(t.description.get("name") == types[0].description.get("name") for t in types):
        series.name = types[0].name
    return series


def _frame(parts: list[Any], types: list[ResultType]) -> Any:
    import pandas as pd

    frame = pd.concat(parts)
    first = types[0]
    if len(_runs(types)) == 1 and first.dtypes is not None and list(frame.columns) == list(first.columns or ()):
        for i, dtype in enumerate(first.dtypes):
            if not same_dtype(frame.dtypes.iloc[i], dtype):
                frame.isetitem(i, frame.iloc[:, i].astype(dtype))
    return frame


def _array(parts: list[Any], types: list[ResultType]) -> Any:
    import numpy as np

    dtype = None
    if len({t.shape for t in types}) == 1 and all(t.dtype is not None for t in types):
        distinct = list({t.key: t.dtype for t in types}.values())
        try:
            dtype = distinct[0] if len(distinct) == 1 else np.result_type(*distinct)
        except TypeError:
            dtype = None  # e.g. structured dtypes with different fields
    if dtype is None:
        return np.stack([np.asarray(p) for p in parts])
    out = np.empty((len(parts), *types[0].shape), dtype=dtype)
    for i, part in enumerate(parts):
        out[i] = part  # an object array keeps each item as it was, a list included
    return out
