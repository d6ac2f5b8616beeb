"""Which of a call's arguments share objects or memory, wherever in them: a part of the call's key.

``f(y, y)`` can observe that its arguments are one object (appending to one grows the other), so it is not the
call ``f(y, y.copy())``; nor is ``f(a, [a])`` the call ``f(a, [a.copy()])``, nor ``f(arr, [arr[:2]])`` the call
with a copied slice. A value's own digest keys what it shares within itself (a reference back); this keys what
its parts share with other arguments'. It reads the walks that hashing the arguments made (``things_met.walks``):
no second walk, and nothing at all for plain values.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ._core import IMMUTABLE_LEAVES, Hasher, MemoryViews, _memory, _memory_family, _pack_q, _place

__all__ = ()

# What content_hash noted of one value's walk: the walk, or the ids of the lists and dicts of plain data.
Walk = Hasher | list[int]


def aliasing_parts(values: list[Any], walks: Mapping[int, tuple[Any, Walk]] | None = None) -> list[bytes]:
    """Return ``[]`` when no mutable object or memory is met in two places, else one part naming who shares what.

    ``walks``: what ``things_met.walks`` gathered while the values were hashed; a value not in it is looked at
    as itself (and a tuple's items, a model's parameters). Positions, never ids or addresses, go into the part:
    the argument, then the item of a tuple or, deeper, the object's number in its walk (mutable objects are
    numbered in the order the walk first meets them; in a set, by its member's digest), and for arrays or
    tensors over one memory, where each starts relative to the other and how each steps. Strings, numbers and
    tuples are their values: two equal ones are never told apart, one object or not (interning differs
    between processes).
    """
    records: list[tuple[int, Any, Any]] = []
    for index, value in enumerate(values):
        kind = type(value)
        if kind in IMMUTABLE_LEAVES:
            continue
        held = walks.get(id(value)) if walks else None
        walk = held[1] if held is not None and held[0] is value else None
        if walk is not None or (kind is not tuple and kind is not frozenset and kind is not _Keywords):
            records.append((index, value, walk))
        elif kind is not frozenset and walks is None:
            records.append((index, value, None))  # not hashed here: its items are looked at below
        # else a tuple or frozenset of plain values: hashing it met no list, dict or set (it would say so)
    if not records or (len(records) < 2 and type(records[0][1]) not in _LOOKED_INTO
                       and not (isinstance(records[0][2], Hasher) and records[0][2].subs)):
        return []  # one value alone: what it shares within itself is in its digest
    seen: set[int] = set()
    met = 0
    viewing = 0
    for _, value, walk in records:
        if type(value) in _LOOKED_INTO:
            break  # its items, each looked at as an argument (their walk numbers each object once: not the items)
        for ids in _id_groups(value, walk):
            seen.update(ids)
            met += len(ids)
        viewing += _walks_with_views(value, walk)
    else:
        if len(seen) == met and viewing < 2:
            return []  # no object twice, at most one value holding arrays: the common call, nothing more to do
    first: dict[int, bytes] = {}
    memories: dict[Any, MemoryViews] = {}
    shared = bytearray()
    tops = _top_level(values, first, memories, shared)
    _nested(records, tops, first, memories, shared)
    return [b"alias" + bytes(shared)] if shared else []


class _Keywords(tuple):  # type: ignore[type-arg]
    """The values of ``**kwargs``, looked into as a tuple's items are (a new object: its id is its own)."""

    __slots__ = ()


_LOOKED_INTO = frozenset({tuple, _Keywords})  # as before walks were looked into: keys of such sharing kept their bytes


def keyword_values(bound: list[tuple[str, Any]], keyword: str | None,
                   walks: dict[int, tuple[Any, Walk]]) -> list[Any]:
    """Return the bound values, ``**kwargs`` (named ``keyword``) as the tuple of its values, each then an argument
    of its own as a tuple's items are; that tuple's walk is the dict's (noted in ``walks``)."""
    values = []
    for name, value in bound:
        if name == keyword and type(value) is dict and value:
            items = _Keywords(value.values())
            held = walks.get(id(value))
            if held is not None and held[0] is value:
                walks[id(items)] = (items, held[1])
            value = items
        values.append(value)
    return values


def _top_level(values: list[Any], first: dict[int, bytes], memories: dict[Any, MemoryViews],
               shared: bytearray) -> list[set[int]]:
    """Feed to ``shared`` which arguments, or items of tuple arguments, are one object or share memory (a model:
    its parameters and buffers); return, for each argument, the ids of the objects so looked at."""
    tops: list[set[int]] = [set() for _ in values]
    stack: list[tuple[int, bytes, Any]] = [(i, _pack_q(i), v) for i, v in reversed(list(enumerate(values)))]
    while stack:
        index, path, value = stack.pop()
        kind = type(value)
        if kind in IMMUTABLE_LEAVES:
            continue
        if kind in _LOOKED_INTO:
            stack.extend((index, path + _pack_q(i), item) for i, item in reversed(list(enumerate(value))))
            continue
        tops[index].add(id(value))
        family = _memory_family(kind)
        if family == "module":
            tensors = [*value.parameters(), *value.buffers()]
            stack.extend((index, path + b"m" + _pack_q(i), t) for i, t in reversed(list(enumerate(tensors))))
        earlier = first.setdefault(id(value), path)
        if earlier is not path:
            shared += _pack_q(len(path)) + path + _pack_q(len(earlier)) + earlier
            continue
        if family == "array" or family == "tensor":
            _meet(family, None, path, value, memories, shared)
    return tops


def _nested(records: list[tuple[int, Any, Any]], tops: list[set[int]], first: dict[int, bytes],
            memories: dict[Any, MemoryViews], shared: bytearray) -> None:
    """Feed to ``shared`` the objects and memory met inside the arguments' walks that are met elsewhere too."""
    for index, value, walk in records:
        if walk is None or first.get(id(value), _pack_q(index)) != _pack_q(index):
            continue  # not walked, or one object with an earlier argument: all it holds is that one's too
        here = _pack_q(index) + b"w"
        mine = tops[index]
        for position, key in _objects(walk):
            if key in mine:
                continue  # the argument itself, or an item of it as a tuple: looked at already
            where = here + position
            earlier = first.setdefault(key, where)
            if earlier is not where:
                shared += _pack_q(len(where)) + where + _pack_q(len(earlier)) + earlier
        for owner, position, view in _views(walk):
            if id(view) in mine:
                continue
            where = here + position
            if first.get(id(view)) != where:
                continue  # the same array or tensor met before: said above
            family = _memory_family(type(view))
            if family is not None:
                _meet(family, owner, where, view, memories, shared)


def _meet(family: str, owner: Hasher | None, where: bytes, view: Any, memories: dict[Any, MemoryViews],
          shared: bytearray) -> None:
    """Note an array or tensor met at ``where`` by the walk ``owner`` (None: a whole argument); feed where it
    lies relative to each one met before over the same memory, and how each steps."""
    token = _memory(family, view)
    if token is None:
        return
    group = memories.get(token)
    if group is None:
        group = memories[token] = MemoryViews(token)
    # Views over one memory that share no byte are two separate values (a hit gives copies); views one walk met
    # together are keyed in its digest.
    for (seen_owner, seen_where), seen in group.meet(family, (owner, where), view):
        if seen_owner is not None and seen_owner is owner:
            continue
        address, geometry = _place(family, view)
        seen_address, seen_geometry = _place(family, seen)
        shared += (_pack_q(len(where)) + where + _pack_q(len(seen_where)) + seen_where
                   + _pack_q(address - seen_address) + geometry + seen_geometry)


def _subs(walk: Hasher) -> list[tuple[int, bytes, Hasher]]:
    """Return a walk's set-member walks in an order the hash seed does not change (by place, then digest)."""
    return sorted(walk.subs or (), key=lambda sub: (sub[0], sub[1]))


def _id_groups(value: Any, walk: Any) -> Iterator[Any]:
    """Yield the collections of ids of the mutable objects met in a value (each walk's ids are distinct)."""
    if walk is None:
        yield (id(value),)
    elif type(walk) is list:
        yield walk
    else:
        yield walk.shared.keys()
        for _, _, sub in walk.subs or ():
            yield from _id_groups(value, sub)


def _walks_with_views(value: Any, walk: Any) -> int:
    """Return how many of a value's walks met an array or a tensor (a model holds its parameters)."""
    if walk is None:
        return _memory_family(type(value)) is not None
    if type(walk) is list:
        return 0
    return bool(walk.views) + sum(_walks_with_views(value, sub) for _, _, sub in walk.subs or ())


def _objects(walk: Walk) -> Iterator[tuple[bytes, int]]:
    """Yield (position, id) of each mutable object a walk met, in an order the hash seed does not change."""
    if type(walk) is list:
        for number, key in enumerate(walk):
            yield _pack_q(number), key
        return
    assert isinstance(walk, Hasher)
    for key, (number, _) in walk.shared.items():  # numbered in the order met
        yield _pack_q(number), key
    for place, digest, sub in _subs(walk):
        for position, key in _objects(sub):
            yield b"s" + _pack_q(place) + digest + position, key


def _views(walk: Walk) -> Iterator[tuple[Hasher, bytes, Any]]:
    """Yield (the walk that met it, position, view) for each array or tensor a walk met."""
    if type(walk) is list:
        return
    assert isinstance(walk, Hasher)
    for view in walk.views or ():
        yield walk, _pack_q(walk.shared[id(view)][0]), view
    for place, digest, sub in _subs(walk):
        for owner, position, view in _views(sub):
            yield owner, b"s" + _pack_q(place) + digest + position, view


class SharingWith:
    """Tells the part of a value's key saying what it shares with some values hashed before it (a batch's item with
    the call's other arguments): ``f.batch([a], a)`` is not ``f.batch([a.copy()], a)``."""

    __slots__ = ("_base", "_ids", "_tokens", "_values", "_viewing", "_walks")

    def __init__(self, values: list[Any], walks: Mapping[int, tuple[Any, Walk]]) -> None:
        self._values = values
        self._walks = walks
        self._ids: set[int] = set()
        self._viewing = False
        for value in values:
            held = walks.get(id(value))
            walk = held[1] if held is not None and held[0] is value else None
            if walk is None and (type(value) in IMMUTABLE_LEAVES or type(value) is tuple or type(value) is frozenset):
                continue
            for ids in _id_groups(value, walk):
                self._ids.update(ids)
            self._viewing = self._viewing or bool(_walks_with_views(value, walk))
        self._tokens: set[Any] | None = None  # the memories their arrays and tensors read, once an item has one
        self._base: list[bytes] | None = None

    def __bool__(self) -> bool:
        """Whether the values hold any mutable object or memory another value could share."""
        return bool(self._ids) or self._viewing

    def part(self, value: Any, walk: Walk | None) -> bytes | None:
        """Return what ``value`` (its walk ``walk``: None where hashing it met no list, dict or object) shares
        with the values, as a part of its key; None where it shares nothing."""
        if walk is None:
            if type(value) in IMMUTABLE_LEAVES or id(value) not in self._ids:
                return None
        elif all(self._ids.isdisjoint(ids) for ids in _id_groups(value, walk)) and not self._reads_their_memory(walk):
            return None  # no object of theirs, no memory they read: the common item
        walks = dict(self._walks)
        if walk is not None:
            walks[id(value)] = (value, walk)
        if self._base is None:
            self._base = aliasing_parts(self._values, self._walks)
        parts = aliasing_parts([*self._values, value], walks)
        return parts[0] if parts and parts != self._base else None

    def _reads_their_memory(self, walk: Walk) -> bool:
        """Whether an array or tensor of ``walk`` reads memory one of theirs reads (a byte of it or not)."""
        if not self._viewing:
            return False
        tokens = self._tokens
        if tokens is None:
            tokens = self._tokens = set()
            for value in self._values:
                held = self._walks.get(id(value))
                views = _views(held[1]) if held is not None and held[0] is value else _alone_views(value)
                tokens.update(_memory_token(view) for _, _, view in views)
            tokens.discard(None)  # no one memory to compare
        return any(_memory_token(view) in tokens for _, _, view in _views(walk))


def _memory_token(view: Any) -> Any:
    family = _memory_family(type(view))
    return _memory(family, view) if family is not None else None


def _alone_views(value: Any) -> Iterator[tuple[Any, bytes, Any]]:
    """Yield the arrays or tensors of a value not walked here: itself, or a model's parameters and buffers."""
    family = _memory_family(type(value))
    if family == "module":
        for number, tensor in enumerate([*value.parameters(), *value.buffers()]):
            yield value, b"m" + _pack_q(number), tensor
    elif family is not None:
        yield value, b"", value
