"""Every byte of a payload file is verified before its value is returned, in every chunk it is read in.

Large payloads are read and checked chunk by chunk; these tests flip one byte at the edges of those
chunks (first, last, either side of a boundary, the pickle stream) in a value of two arrays, read
plainly or memory-mapped, signed or not, and check that the damage is refused and the value computed
again.
"""

from __future__ import annotations

import ctypes
import gc
import mmap
import os
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from notebook_memo import StorageWarning, configure, memo
from notebook_memo._serialize import _READ_CHUNK, dumps
from tests.conftest import Counter, fork_checking

REFUSED = ("checksum mismatch", "signature mismatch")


def _value() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    # The first buffer spans several read chunks and ends part-way into its last one; padding follows it.
    first = rng.integers(0, 256, size=2 * _READ_CHUNK + _READ_CHUNK // 2 + 3, dtype=np.uint8)
    return first, rng.random(_READ_CHUNK // 8 + 5)


def _positions() -> dict[str, int]:
    """File offsets to damage, named; the payload layout is the pickle, then each aligned buffer."""
    first_at, second_at, end = dumps(_value()).layout()
    return {
        "pickle stream": 10,
        "first byte of the first chunk": first_at,
        "last byte of the first chunk": first_at + _READ_CHUNK - 1,
        "first byte of the second chunk": first_at + _READ_CHUNK,
        "last byte of the first buffer": first_at + _value()[0].nbytes - 1,
        "first byte of the second buffer": second_at,
        "last byte of the last chunk": end - 1,
    }


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0x01]))


def _call_noting_warnings(fn: Callable[[], object]) -> tuple[object, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = fn()
    return value, [str(w.message) for w in caught if issubclass(w.category, StorageWarning)]


def _same(value: object) -> bool:
    expected = _value()
    return isinstance(value, tuple) and all(np.array_equal(v, e) for v, e in zip(value, expected))


@pytest.mark.parametrize("where", list(_positions()))
@pytest.mark.parametrize("mapped", [False, True], ids=["read", "mmap"])
@pytest.mark.parametrize("secret", [None, "team secret"], ids=["unsigned", "signed"])
def test_a_flipped_byte_anywhere_in_a_multi_chunk_payload_is_refused(counter: Counter, where: str, mapped: bool,
                                                                    secret: str | None) -> None:
    if secret:
        configure(secret=secret)

    @memo(mmap=mapped)
    def pair() -> tuple[np.ndarray, np.ndarray]:
        counter()
        return _value()

    pair()
    pair._store().forget()
    assert _same(pair()) and counter.n == 1  # read back from its file, and verified
    [record] = pair.entries()
    assert record.path is not None and os.path.getsize(record.path) == dumps(_value()).nbytes
    _flip(Path(record.path), _positions()[where])
    pair._store().forget()
    value, caught = _call_noting_warnings(pair)
    assert counter.n == 2 and _same(value)
    assert any(reason in message for message in caught for reason in REFUSED), caught


def test_a_mapped_payload_damaged_after_its_check_is_refused_though_its_mtime_is_put_back(counter: Counter) -> None:
    # A mapped payload is verified once per file identity; putting the modification time back must
    # not make a changed file look like the one verified.
    @memo(mmap=True)
    def pair() -> tuple[np.ndarray, np.ndarray]:
        counter()
        return _value()

    pair()
    pair._store().forget()
    assert _same(pair())  # mapped and verified
    [record] = pair.entries()
    assert record.path is not None
    before = os.stat(record.path)
    _flip(Path(record.path), _positions()["last byte of the last chunk"])
    os.utime(record.path, ns=(before.st_atime_ns, before.st_mtime_ns))
    pair._store().forget()
    value, caught = _call_noting_warnings(pair)
    assert counter.n == 2 and _same(value)
    assert any(reason in message for message in caught for reason in REFUSED), caught


_HUGE_PAGE = 2 << 20


def _thp_mode() -> str | None:
    try:
        modes = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return None
    return modes[modes.index("[") + 1:modes.index("]")]


def _huge_page_eligible(address: int) -> bool:
    """Whether the kernel may back the mapping holding ``address`` with huge pages (smaps' THPeligible)."""
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split(maxsplit=1)[0]
        if "-" in head and not head.endswith(":"):
            start, end = (int(part, 16) for part in head.split("-"))
            inside = start <= address < end
        elif inside and head == "THPeligible:":
            return line.split()[1] == "1"
    return False


def _stored(counter: Counter, value: Any) -> Callable[[], Any]:
    """Return a memoized function of ``value``, called once and then forgotten: its next call reads the file."""
    @memo
    def stored() -> Any:
        counter()
        return value

    stored()
    stored._store().forget()
    return stored


@pytest.mark.skipif(_thp_mode() is None, reason="no transparent huge pages on this system")
def test_a_large_payload_is_read_into_memory_that_starts_on_a_huge_page(counter: Counter) -> None:
    # The read fills fresh memory: on a 2 MiB boundary, and marked for huge pages where the kernel
    # takes the hint, every page of it is faulted in 2 MiB at a time (malloc's memory starts 16 bytes
    # past a page, so its parts before the first and after the last 2 MiB boundary, 2 MiB together, come
    # in 4 KiB faults, about a millisecond more per load).
    rng = np.random.default_rng(3)
    # Both larger than malloc's largest heap allocation (32 MiB), which come from fresh memory either way.
    value = [rng.random((33 << 20) // 8 + 7), np.arange(36 << 20, dtype=np.uint8)]
    loaded = _stored(counter, value)()
    assert counter.n == 1 and all(np.array_equal(got, want) for got, want in zip(loaded, value))
    for got in loaded:
        assert got.ctypes.data % _HUGE_PAGE == 0
        if _thp_mode() in ("always", "madvise"):
            assert _huge_page_eligible(got.ctypes.data)
    # The user's arrays: writable, and their memory theirs for as long as they hold them.
    first = loaded[0]
    del loaded
    gc.collect()
    first[:] = 1.5
    assert float(first.sum()) == 1.5 * first.size
    pid = fork_checking(lambda: bool(np.all(first == 1.5)))
    assert os.waitpid(pid, 0)[1] == 0


def _memory_of(array: np.ndarray) -> tuple[int, int]:
    """Return the address range of the ``mmap`` an array's memory lies in (following its bases), or its own."""
    held: object = array
    while not isinstance(held, mmap.mmap):
        held = held.obj if isinstance(held, memoryview) else getattr(held, "base", None)
        if held is None:  # malloc's memory
            return array.ctypes.data, array.ctypes.data + array.nbytes
    start = np.frombuffer(held, dtype=np.uint8, count=1).ctypes.data
    return start, start + len(held)


def _resident(start: int, end: int) -> int:
    """Return how many bytes of [start, end) are in memory (mincore: any mappings, merged or split)."""
    page = mmap.PAGESIZE
    low, high = start - start % page, -(-end // page) * page
    pages = (high - low) // page
    vector = (ctypes.c_ubyte * pages)()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    assert libc.mincore(low, high - low, vector) == 0, os.strerror(ctypes.get_errno())
    return sum(byte & 1 for byte in vector) * page


@pytest.mark.skipif(_thp_mode() is None, reason="no transparent huge pages on this system")
def test_a_large_payload_takes_no_more_memory_than_its_bytes(counter: Counter) -> None:
    # A huge page over the buffer's last bytes would take up to 2 MiB that no byte of it uses: the tail
    # that does not fill one is left to small pages, as malloc's memory would have it. (Where the kernel
    # grants no huge page, each 4 KiB page is faulted alone and this holds either way.)
    value = np.random.default_rng(4).random((33 << 20) // 8 + 7)  # 33 MiB and 56 bytes
    loaded = _stored(counter, value)()
    assert counter.n == 1 and np.array_equal(loaded, value)
    start, end = _memory_of(loaded)
    resident = _resident(start, end)
    assert value.nbytes <= resident <= value.nbytes + 2 * mmap.PAGESIZE, (resident, value.nbytes)


def test_tracemalloc_counts_the_memory_of_large_loaded_values(counter: Counter) -> None:
    # numpy tells tracemalloc of its allocations; a mapping of our own would be memory it never sees.
    value = np.random.default_rng(5).random((33 << 20) // 8 + 7)
    array = _stored(counter, value)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        loaded = array()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert counter.n == 1 and np.array_equal(loaded, value)
    assert grown >= value.nbytes, grown
