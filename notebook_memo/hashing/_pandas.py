"""pandas Series, DataFrames and indexes hashed by dtype and content: numpy-backed columns in place,
text columns piece by piece, categoricals by categories and codes; attrs, flags and attributes set on them too."""

from __future__ import annotations

import datetime
import itertools
import operator
import sys
from typing import Any

from ._core import (
    Hasher,
    HashFn,
    _mutable,
    _once_per_walk,
    _reduction,
    _Unhashable,
    h_library_class,
    h_reduced,
    own_state,
    register_family,
    things_met,
)
from ._numpy import _h_ndarray

__all__ = ()


def _pandas_path(cls: type) -> HashFn | None:
    pd = sys.modules.get("pandas")
    if pd is None:
        return None
    if issubclass(cls, pd.DataFrame):
        return _h_dataframe
    if issubclass(cls, pd.Series):
        return _h_series
    if issubclass(cls, pd.Index):
        return _h_index
    if issubclass(cls, pd.api.extensions.ExtensionArray):
        return _h_extension_array
    if any(type(attribute).__name__ == "CachedProperty" for base in cls.__mro__ for attribute in vars(base).values()):
        # A GroupBy, its grouper and groupings; keyed as any object is, and its cache by entry.
        return _once_per_walk(_h_with_cache) if _mutable(cls) else _h_with_cache
    return None


def _h_with_cache(h: Hasher, v: Any) -> None:
    """Hash a pandas object by its reduction less the ``_cache`` its ``cache_readonly`` properties fill on first
    read (a GroupBy's codes and groups, built by its first aggregation), then by that cache's entries, named.

    Filled, they are what pandas serves, not the data: a frame built on an array changed in place since keeps
    the old codes. Noted by name as the call is keyed (``things_met.caches``), so that the entries a run fills
    are left out of the check that it changed its arguments (``Hasher.caches``)."""
    reduced = _reduction(v)
    state = reduced[2] if not isinstance(reduced, str) and len(reduced) > 2 else None
    cache: Any = {}  # made on the first fill: none yet is an empty cache
    if type(state) is tuple and len(state) == 2 and type(state[0]) is dict and "_cache" in state[0]:
        cache = state[0]["_cache"]
        reduced = (*reduced[:2], (_without_cache(state[0]), state[1]), *reduced[3:])
    elif type(state) is dict and "_cache" in state:
        cache = state["_cache"]
        reduced = (*reduced[:2], _without_cache(state), *reduced[3:])
    h_reduced(h, v, reduced)
    if type(cache) is not dict:  # not pandas' own: keyed whole
        h.child(cache, "<cache>")
        return
    names = frozenset(cache)
    noting = getattr(things_met, "caches", None)
    if noting is not None and h.caches is None:
        noting[id(v)] = names
    if h.caches is not None:
        # An entry held when keyed and gone now is missing here, so the digest differs, as it should.
        names &= h.caches.get(id(v), frozenset())
    h.tag(b"pc")
    h.child([(name, cache[name]) for name in sorted(names, key=str)], "<cache>")


def _without_cache(state: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in state.items() if name != "_cache"}


def _h_extension_array(h: Hasher, v: Any) -> None:
    """Hash one of pandas' own extension arrays (``pd.array([1, None])``, a Categorical, an IntervalArray) by its
    class, dtype and values, as a Series holding it is: not by its reduction, whose state holds the ``_cache``
    its first use fills (``a + 1``, ``a.to_numpy()``), so a used array would key anew."""
    h.tag(b"pe")
    h_library_class(h, type(v))
    _h_pandas_values(h, sys.modules["pandas"].Series(v, copy=False))
    _h_own_attributes(h, v)


def _h_pandas_values(h: Hasher, values: Any) -> None:
    """Hash the values of a Series or Index by dtype and content (numpy-backed: in place)."""
    np = sys.modules["numpy"]
    pd = sys.modules["pandas"]
    dtype = values.dtype
    h.text(str(dtype))
    if isinstance(dtype, np.dtype) and not dtype.hasobject:
        _h_ndarray(h, values.to_numpy(copy=False))
        return
    if isinstance(dtype, pd.DatetimeTZDtype):
        # The instants as UTC int64, in place, not per element; the zone by the dtype's name where that names
        # it, else by what it is: tzlocal() stands for the process's zone, a tzinfo of the user's prints as it likes.
        if not _known_by_name(dtype.tz):
            h.tag(b"tz")
            h.child(dtype.tz, "<time zone>")
        _h_ndarray(h, np.asarray(values.array.tz_convert(None)).view(np.int64))
        return
    if isinstance(dtype, pd.CategoricalDtype):
        cat = values.array
        if not isinstance(cat, pd.Categorical):
            cat = pd.Categorical(values)
        h.tag(b"cat")
        h.child(bool(dtype.ordered), "<ordered>")
        _h_pandas_values(h, pd.Index(cat.categories))
        _h_ndarray(h, np.asarray(cat.codes))
        return
    array = np.asarray(values, dtype=object)
    if array.ndim != 1 or not _h_text(h, array):
        _h_ndarray(h, array)


def _known_by_name(tz: Any) -> bool:
    """Whether a zone's printed name says which zone it is: a fixed offset named by its offset ("UTC",
    "UTC+01:00"), or a zone of the system's database by its key ("Europe/Paris")."""
    cls = type(tz)
    if cls is datetime.timezone:
        return tz.tzname(None) == datetime.timezone(tz.utcoffset(None)).tzname(None)  # type: ignore[no-any-return]
    if cls.__module__ == "zoneinfo" and cls.__qualname__ == "ZoneInfo" and isinstance(tz.key, str):
        try:
            return sys.modules["zoneinfo"].ZoneInfo(tz.key) is tz  # type: ignore[no-any-return]
        except Exception:  # a zone read from a file, under a key the database lacks
            return False
    return False


_TEXT_PIECE = 1 << 12  # items hashed at a time: bounded memory, and each piece hashed while in cache


def _h_text(h: Hasher, array: Any) -> bool:
    """Feed a 1-d object array holding ``str`` piece by piece; False (nothing fed) when it holds none.

    Exact and vectorised: a piece of plain strings is their utf-8 bytes joined by NUL; a piece
    with other items has missing values (None, float NaN) and floats by position and bits,
    anything else (a ``str`` subclass, an int) by position one by one, then its strings.
    """
    items = array.tolist()
    if not any(map(operator.is_, map(type, items), itertools.repeat(str))):
        return False
    h.tag(b"txt")
    h.number(len(items))
    for start in range(0, len(items), _TEXT_PIECE):
        piece = items[start:start + _TEXT_PIECE]
        if all(map(operator.is_, map(type, piece), itertools.repeat(str))):  # exact: no subclass passes
            _h_strings(h, piece)
        else:
            _h_mixed_piece(h, piece, start)
    return True


def _h_mixed_piece(h: Hasher, piece: list[Any], start: int) -> None:
    """Feed a piece of a text column that holds more than plain strings (``start``: where it begins)."""
    np = sys.modules["numpy"]
    is_str = np.frombuffer(bytes(map(operator.is_, map(type, piece), itertools.repeat(str))), dtype=np.bool_)
    rest = np.flatnonzero(~is_str).tolist()
    nones = [i for i in rest if piece[i] is None]
    floats = [i for i in rest if type(piece[i]) is float]
    others = [i for i in rest if piece[i] is not None and type(piece[i]) is not float]
    h.tag(b"m")
    h.buffer(np.array(nones, dtype="<i4"))
    h.buffer(np.array(floats, dtype="<i4"))
    h.buffer(np.array([piece[i] for i in floats], dtype="<f8"))
    h.buffer(np.array(others, dtype="<i4"))
    for i in others:
        h.child(piece[i], f"[{start + i}]")
    _h_strings(h, list(itertools.compress(piece, is_str.tolist())))


def _h_strings(h: Hasher, strings: list[str]) -> None:
    """Feed plain strings (how many is known from the form around them) as their utf-8 bytes."""
    np = sys.modules["numpy"]
    joined = "\0".join(strings).encode("utf-8", "surrogatepass")
    if np.count_nonzero(np.frombuffer(joined, dtype=np.uint8) == 0) == max(len(strings) - 1, 0):
        h.tag(b"\0")  # no string holds a NUL: the separators alone mark where each ends
        h.buffer(joined)
    else:
        h.tag(b"L")
        h.buffer(np.fromiter(map(len, strings), dtype="<i8", count=len(strings)))
        h.buffer("".join(strings).encode("utf-8", "surrogatepass"))


# The one name pandas keeps its own state under without an underscore (a MultiIndex's); all others it sets on its
# objects (their data, name, caches) start with one.
_PANDAS_PUBLIC = frozenset({"sortorder"})
# The names pandas' objects hold in their instance dicts, in the versions known: an object holding these alone has
# no attribute of the user's (one holding others is looked at name by name).
_PANDAS_OWN = _PANDAS_PUBLIC | {
    "_attrs", "_cache", "_cacher", "_codes", "_data", "_dtype", "_flags", "_freq", "_id", "_is_copy", "_item_cache",
    "_left", "_levels", "_mask", "_mgr", "_name", "_names", "_ndarray", "_range", "_references", "_right",
    "_sparse_index", "_sparse_values",
}


def _h_own_attributes(h: Hasher, v: Any) -> None:
    """Feed the attributes set on a DataFrame, Series, Index or extension array itself (``df.name = "train"``), in
    name order.

    pandas keeps its own state under underscored names, keyed by the handlers here through what they show (values,
    index, name, attrs), and an accessor caches itself under the name its class serves it by (``s.str`` before
    pandas 3): the other public names are the user's. None set: nothing fed, so the digest is what it was."""
    found = getattr(v, "__dict__", None)
    if not found:
        return
    if found.keys() <= _PANDAS_OWN:
        return  # pandas' own names alone: the common case, told without a loop
    cls = type(v)
    own = {name: value for name, value in found.items()
           if type(name) is str and not name.startswith("_") and name not in _PANDAS_PUBLIC
           and not hasattr(cls, name)}
    if own:
        own = own_state(h, v, own) or {}
    if own:
        h.tag(b"pa")
        h.child(dict(sorted(own.items())), "<attributes>")


def _h_index(h: Hasher, v: Any) -> None:
    pd = sys.modules["pandas"]
    h.tag(b"pi")
    h_library_class(h, type(v))
    h.child(list(v.names), "<index names>")
    freq = getattr(v, "freqstr", None)  # a DatetimeIndex's frequency changes what shift() does
    if freq is not None:
        h.text(str(freq))
    if isinstance(v, pd.RangeIndex):
        h.update((v.start, v.stop, v.step))
    elif isinstance(v, pd.MultiIndex):
        for level in v.levels:
            _h_pandas_values(h, level)
        for codes in v.codes:
            _h_ndarray(h, codes)
    else:
        _h_pandas_values(h, v)
    _h_own_attributes(h, v)


def _h_series(h: Hasher, v: Any) -> None:
    h.tag(b"ps")
    h_library_class(h, type(v))
    h.child(v.name, "<name>")
    _h_index(h, v.index)
    _h_pandas_values(h, v)
    _h_pandas_extras(h, v)


def _h_pandas_extras(h: Hasher, v: Any) -> None:
    """Hash what a Series or DataFrame carries besides its data: ``attrs`` and ``flags``."""
    h.child(dict(v.attrs), "<attrs>")
    h.child(bool(v.flags.allows_duplicate_labels), "<flags>")
    _h_own_attributes(h, v)


def _h_dataframe(h: Hasher, v: Any) -> None:
    h.tag(b"pf")
    h_library_class(h, type(v))
    _h_index(h, v.columns)
    _h_index(h, v.index)
    for i in range(v.shape[1]):
        try:
            _h_pandas_values(h, v.iloc[:, i])
        except _Unhashable as exc:
            exc.segments.append(f"[column {v.columns[i]!r}]")
            raise
    _h_pandas_extras(h, v)


register_family("pandas", _pandas_path)
