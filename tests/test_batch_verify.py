"""A batch reads its commonest records through a one-pass check: it must refuse all the full check refuses.

The commonest record (unsigned, inline, one pickle, no payload file, no TTL, no preconditions) is
verified by ``read_plain`` without building its header; every other shape, and every record that
fails the one-pass check, goes the full way, which says what is wrong. These tests damage real
records written by real batch calls: every byte, every length, other keys, other shapes.
"""

from __future__ import annotations

import sqlite3
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from notebook_memo import StorageWarning, _serialize, configure, memo
from notebook_memo._serialize import _CHECKED_AT, _HEADER, read_plain
from notebook_memo.stores import local as _store
from tests.conftest import Seen, resealed, settled


def _records(cache_dir: Path, tag: str) -> list[tuple[str, bytes]]:
    settled()
    with sqlite3.connect(str(cache_dir / "cache.db")) as db:
        return db.execute("SELECT key, value FROM Cache WHERE mode = 16 AND tag = ? ORDER BY rowid", (tag,)).fetchall()


def _plain_record(cache_dir: Path) -> tuple[str, bytes, list[int]]:
    @memo.batch("xs", progress=False)
    def tripled(xs: list[int]) -> list[int]:
        return [x * 3 for x in xs]

    tripled([7])
    [(key, value)] = _records(cache_dir, tripled.function_id)
    return key, value, [21]


def test_every_changed_byte_of_a_plain_record_is_refused_unless_the_format_never_reads_it(cache_dir: Path) -> None:
    key, value, _ = _plain_record(cache_dir)
    good = read_plain(value, key.encode())
    assert good is not None and _serialize.loads(good[0]) == 21
    unread = set(range(_CHECKED_AT + 16, _HEADER.size))  # the unused half of ``check`` and the empty signature
    harmless = set()
    for position in range(len(value)):
        for bit in (0x01, 0x80):
            damaged = bytearray(value)
            damaged[position] ^= bit
            got = read_plain(bytes(damaged), key.encode())
            if got is not None:
                assert (bytes(got[0]), got[1], got[2]) == (bytes(good[0]), good[1], good[2]), position
                harmless.add(position)
    assert harmless == unread


def test_a_plain_record_cut_short_lengthened_or_under_another_key_is_refused(cache_dir: Path) -> None:
    key, value, _ = _plain_record(cache_dir)
    assert all(read_plain(value[:n], key.encode()) is None for n in range(len(value)))
    assert read_plain(value + b"\0", key.encode()) is None
    other = ("0" if key[0] != "0" else "1") + key[1:]
    assert read_plain(value, other.encode()) is None
    assert read_plain(value, key[:-1].encode()) is None


def _shapes(cache_dir: Path, tmp_path: Path) -> dict[str, bytes]:
    """One record of each shape the one-pass check leaves to the full path."""
    data = tmp_path / "offset.txt"
    data.write_text("5")

    @memo.batch("xs", progress=False, ttl=3600)
    def with_ttl(xs: list[int]) -> list[int]:
        return xs

    @memo.batch("xs", progress=False)
    def reads_a_file(xs: list[int]) -> list[int]:
        offset = int(data.read_text())
        return [x + offset for x in xs]

    @memo.batch("xs", progress=False)
    def arrays(xs: list[int]) -> list[np.ndarray]:
        return [np.full(100, x, dtype=np.float64) for x in xs]

    @memo.batch("xs", progress=False)
    def big(xs: list[int]) -> list[bytes]:
        return [bytes([x]) * 100_000 for x in xs]

    shapes = {}
    for fn in (with_ttl, reads_a_file, arrays, big):
        fn([1])
        [(_, value)] = _records(cache_dir, fn.function_id)
        shapes[fn.__name__] = value
    configure(secret="team secret")

    @memo.batch("xs", progress=False)
    def signed(xs: list[int]) -> list[int]:
        return xs

    signed([1])
    [(_, shapes["signed"])] = _records(cache_dir, signed.function_id)
    return shapes


def test_records_of_every_other_shape_go_the_full_way(cache_dir: Path, tmp_path: Path) -> None:
    shapes = _shapes(cache_dir, tmp_path)
    for name, value in shapes.items():
        header, _ = _serialize.decode_header(value)
        assert read_plain(value, header.key.encode()) is None, name
    header, _ = _serialize.decode_header(shapes["arrays"])
    assert header.buffer_lens and header.inline  # an inline record with buffers, not a pickle alone
    assert not _serialize.decode_header(shapes["big"])[0].inline


def test_a_batch_of_plain_cached_items_builds_no_header(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    @memo.batch("xs", progress=False)
    def squared(xs: list[int]) -> list[int]:
        return [x * x for x in xs]

    items = list(range(300))
    squared(items)
    squared._store().forget()
    decoded: list[Any] = []
    real = _store.decode_header
    monkeypatch.setattr(_store, "decode_header", lambda data: decoded.append(1) or real(data))
    assert squared(items) == [x * x for x in items]
    assert decoded == []
    assert squared.cache_info().hits == 300


_DURATION_AT = struct.calcsize("<4sHHdd")  # where a record's compute time is


def _flip_payload(value: bytes) -> bytes:
    return value[:-2] + bytes([value[-2] ^ 0x04]) + value[-1:]


def _flip_duration(value: bytes) -> bytes:
    return value[:_DURATION_AT] + bytes([value[_DURATION_AT] ^ 0x01]) + value[_DURATION_AT + 1:]


def _mark_signed(value: bytes) -> bytes:
    flags_at = struct.calcsize("<4sH")
    return value[:flags_at] + struct.pack("<H", 3) + value[flags_at + 2:]


def _cut(value: bytes) -> bytes:
    return value[:-1]


@pytest.mark.parametrize("damage", [_flip_payload, _flip_duration, _mark_signed, _cut])
def test_a_batch_recomputes_each_damaged_item_among_many_and_says_so(cache_dir: Path, damage: Any) -> None:
    computed = Seen()

    @memo.batch("xs", progress=False)
    def halved(xs: list[int]) -> list[float]:
        computed.extend(xs)
        return [x / 2 for x in xs]

    items = list(range(2000))
    halved(items)
    rows = _records(cache_dir, halved.function_id)
    targets = [rows[7], rows[1500]]
    with sqlite3.connect(str(cache_dir / "cache.db"), isolation_level=None) as db:
        for key, value in targets:
            db.execute("UPDATE Cache SET value = ? WHERE key = ?", (damage(value), key))
    halved._store().forget()
    computed.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert halved(items) == [x / 2 for x in items]
    assert sorted(computed) == [7, 1500]
    assert len([w for w in caught if issubclass(w.category, StorageWarning)]) == 2
    computed.clear()
    assert halved(items) == [x / 2 for x in items] and computed == []


@pytest.mark.parametrize("secret", [None, "team secret"])
def test_each_record_is_given_to_its_own_key_however_the_keys_are_passed(secret: str | None) -> None:
    """get_many reads its keys once: a one-pass iterator must not pair one key with another's record."""
    import pickle

    if secret:
        configure(secret=secret)

    @memo.batch("xs")
    def tens(xs: list[int]) -> list[int]:
        return [10 * x for x in xs]

    assert tens([1, 2, 3, 4]) == [10, 20, 30, 40]
    settled()
    _, call, digests = tens._split_call(([1, 2, 3, 4],), {})
    keys = tens._item_keys(call, digests)
    store = tens._store()
    for given in (list(keys), tuple(keys), iter(keys), (k for k in keys)):
        found = store.get_many(given)  # type: ignore[arg-type]
        values = {k: pickle.loads(r[0]) if type(r) is tuple else r.load(False) for k, r in found.items()}
        assert values == dict(zip(keys, [10, 20, 30, 40]))


def test_metadata_that_is_not_text_is_recomputed_never_an_error(cache_dir: Path) -> None:
    """The result type is read from an item's metadata: metadata that is not UTF-8 (checks made valid
    again, as a writer of an unsigned directory can) is a miss, not an error out of the call."""
    calls = Seen()

    @memo.batch("xs", progress=False)
    def doubled(xs: list[int]) -> list[int]:
        calls.extend(xs)
        return [x * 2 for x in xs]

    assert doubled([1, 2]) == [2, 4]
    rows = _records(cache_dir, doubled.function_id)
    assert len(rows) == 2

    def spoil(data: bytearray) -> None:
        at = data.find(b'"name":"')
        assert at > 0
        data[at + 8] = 0xFF  # no longer UTF-8

    with sqlite3.connect(str(cache_dir / "cache.db"), isolation_level=None) as db:
        for key, value in rows:
            db.execute("UPDATE Cache SET value = ? WHERE key = ?", (resealed(value, spoil), key))
    doubled._store().forget()
    del calls[:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StorageWarning)
        assert doubled([1, 2]) == [2, 4]
    assert calls == [1, 2]  # recomputed, not served
