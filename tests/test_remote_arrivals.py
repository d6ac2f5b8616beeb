"""A remote hit is served from memory while its local copy is made: what the user does meanwhile wins.

The copy of a large entry is made on a thread of its own; these tests hold that thread back (as a slow
disk or a 1 GB value would) and do what a user may do in the window: invalidate, clear, refresh,
recompute. The remote is a shared directory (see tests/test_remote.py for S3).
"""

from __future__ import annotations

import gc
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from notebook_memo import StorageWarning, _config, configure, memo
from notebook_memo.stores import local as _local
from notebook_memo.stores.local import get_store
from tests.conftest import Counter, worker_env, worker_script
from tests.test_remote import _machine, _rooms_made
from tests.test_remote_hostile import Outside, _drawing, _labelled, _tagged

_BIG = 1_000_000  # 8 MB of float64: copied locally on a thread of its own


def _hold_copies(monkeypatch: pytest.MonkeyPatch, wait: Callable[[], object]) -> None:
    """Call ``wait`` before each local copy of a remote entry is made, on the copying thread only (a slow disk)."""
    real = _local.Store._keep

    def held_back(self: Any, *args: Any, **kwargs: Any) -> Any:
        if threading.current_thread().name == "notebook_memo import":
            wait()
        return real(self, *args, **kwargs)

    monkeypatch.setattr(_local.Store, "_keep", held_back)


@pytest.fixture
def slow_copies(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Hold each local copy of a remote entry back by 0.3 s."""
    _hold_copies(monkeypatch, lambda: time.sleep(0.3))
    yield


def _settle(tmp_path: Path, name: str) -> None:
    get_store(str(tmp_path / name), _config.resolve_size_limit()).wait_arrivals()


def _big_function() -> Any:
    @memo
    def big(n: int, counter: Counter) -> np.ndarray:
        counter()
        return np.full(n, float(counter.n))

    return big


@pytest.mark.parametrize("read_only", [False, True])
@pytest.mark.parametrize("how", ["invalidate", "clear"])
def test_deleting_right_after_a_remote_hit_is_not_undone_by_its_local_copy(
        tmp_path: Path, counter: Counter, slow_copies: None, how: str, read_only: bool) -> None:
    configure(remote=(tmp_path / "team").as_uri())
    big = _big_function()
    _machine(tmp_path, "alice")
    big(_BIG, counter)
    configure(remote_read_only=read_only)
    _machine(tmp_path, "bob")
    assert big(_BIG, counter)[0] == 1.0  # from the remote; its local copy is being made
    if how == "invalidate":
        assert big.invalidate(_BIG, counter)
    else:
        assert big.clear() == 1
    _settle(tmp_path, "bob")
    assert big(_BIG, counter)[0] == 2.0  # computed again
    assert counter.n == 2


def test_a_refresh_in_the_window_is_not_overwritten_by_the_older_copy(tmp_path: Path, counter: Counter,
                                                                      slow_copies: None) -> None:
    configure(remote=(tmp_path / "team").as_uri())
    big = _big_function()
    _machine(tmp_path, "alice")
    big(_BIG, counter)
    _machine(tmp_path, "bob")
    big(_BIG, counter)
    assert big.refresh(_BIG, counter)[0] == 2.0
    _settle(tmp_path, "bob")
    assert big(_BIG, counter)[0] == 2.0
    _machine(tmp_path, "carol")
    assert big(_BIG, counter)[0] == 2.0  # the refresh replaced the remote's copy too
    assert counter.n == 2


def test_a_copy_that_cannot_be_made_still_serves_the_verified_value(tmp_path: Path, counter: Counter,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    configure(remote=(tmp_path / "team").as_uri())

    @memo
    def values(n: int, counter: Counter) -> np.ndarray:
        counter()
        return np.arange(n)

    _machine(tmp_path, "alice")
    values(10, counter)  # a small entry
    values(_BIG, counter)  # a large one
    _machine(tmp_path, "bob")

    def full_disk(*_: Any, **__: Any) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_local.Store, "_put_here", full_disk)
    with pytest.warns(StorageWarning, match="could not be stored"):
        np.testing.assert_array_equal(values(10, counter), np.arange(10))
        np.testing.assert_array_equal(values(_BIG, counter), np.arange(_BIG))
        _settle(tmp_path, "bob")
    assert counter.n == 2  # served, though not kept


def test_a_copy_thread_that_cannot_start_leaves_nothing_behind(tmp_path: Path, counter: Counter,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    configure(remote=(tmp_path / "team").as_uri())
    big = _big_function()
    _machine(tmp_path, "alice")
    big(_BIG, counter)
    _machine(tmp_path, "bob")
    real_start = threading.Thread.start

    def refuse(self: threading.Thread) -> None:
        if self.name == "notebook_memo import":
            raise RuntimeError("can't start new thread")
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", refuse)
    assert big(_BIG, counter)[0] == 1.0  # served from the remote, not computed
    assert big.invalidate(_BIG, counter)
    assert big(_BIG, counter)[0] == 2.0
    assert counter.n == 2


def test_a_batch_does_not_bring_back_items_invalidated_on_a_read_only_remote(tmp_path: Path) -> None:
    configure(remote=(tmp_path / "team").as_uri())
    outside = Outside("old")
    tag = _tagged()
    _machine(tmp_path, "alice")
    tag([1, 2], outside)
    configure(remote_read_only=True)
    _machine(tmp_path, "bob")
    assert tag([1, 2], outside) == ["old-1", "old-2"]
    outside.value = "new"
    assert tag.invalidate([1, 2], outside)
    assert tag([1, 2], outside) == ["new-1", "new-2"]


def test_an_invalidated_entry_stays_forgotten_after_its_recomputed_copy_is_evicted(tmp_path: Path) -> None:
    configure(remote=(tmp_path / "team").as_uri())
    outside = Outside("old")
    f = _labelled()
    _machine(tmp_path, "alice")
    f(1, outside)
    configure(remote_read_only=True)
    _machine(tmp_path, "bob")
    assert f(1, outside) == "old-1"
    outside.value = "new"
    assert f.invalidate(1, outside)
    assert f(1, outside) == "new-1"
    get_store(str(tmp_path / "bob"), _config.resolve_size_limit()).evict_to(0)
    assert f(1, outside) == "new-1"  # computed again, not the remote's old copy


def test_a_random_state_entry_invalidated_elsewhere_is_replaced_on_the_remote(tmp_path: Path) -> None:
    """A machine that holds nothing of a drawing function locally invalidates it: the remote marker goes,
    and the state's new result replaces the old one there (it cannot know every state's entry)."""
    configure(remote=(tmp_path / "team").as_uri())
    outside = Outside("old")
    g = _drawing()
    _machine(tmp_path, "alice")
    np.random.seed(0)
    g(1, outside)
    outside.value = "new"
    _machine(tmp_path, "bob")
    g.invalidate(1, outside)
    np.random.seed(0)
    assert g(1, outside).startswith("new")
    _machine(tmp_path, "carol")
    np.random.seed(0)
    assert g(1, outside).startswith("new")


def test_a_nested_function_uses_its_own_remote_not_the_enclosing_ones(tmp_path: Path) -> None:
    """g, called inside f (which has a remote of its own), reads and publishes where g's calls do: its
    invalidate on one machine then holds on another."""
    configure(remote=(tmp_path / "team").as_uri())
    outside = Outside("old")
    g = _labelled()

    @memo(remote=(tmp_path / "own").as_uri())
    def f(y: int, outside: Outside) -> str:
        return g(1, outside) + f"/{y}"

    _machine(tmp_path, "alice")
    assert f(1, outside) == "old-1/1"
    outside.value = "new"
    assert g.invalidate(1, outside)
    _machine(tmp_path, "bob")
    assert f(2, outside) == "new-1/2"


def test_a_refresh_on_a_read_only_remote_stays_after_its_copy_is_evicted(tmp_path: Path) -> None:
    configure(remote=(tmp_path / "team").as_uri())
    outside = Outside("old")
    f = _labelled()
    _machine(tmp_path, "alice")
    f(1, outside)
    configure(remote_read_only=True)
    _machine(tmp_path, "bob")
    assert f(1, outside) == "old-1"
    outside.value = "new"
    assert f.refresh(1, outside) == "new-1"
    get_store(str(tmp_path / "bob"), _config.resolve_size_limit()).evict_to(0)
    assert f(1, outside) == "new-1"  # computed again, not the remote's pre-refresh value


def test_a_state_entry_invalidated_elsewhere_is_not_served_under_the_new_marker(tmp_path: Path) -> None:
    """Bob, holding nothing of g locally, invalidates it (the remote marker goes; alice's entry for her
    random state stays, unknown to him) and runs it under another state: alice's state must not be served
    its old entry through bob's new marker."""
    configure(remote=(tmp_path / "team").as_uri())
    outside = Outside("old")
    g = _drawing()
    _machine(tmp_path, "alice")
    np.random.seed(0)
    assert g(1, outside).startswith("old")
    outside.value = "new"
    _machine(tmp_path, "bob")
    assert g.invalidate(1, outside)
    np.random.seed(1)
    assert g(1, outside).startswith("new")
    _machine(tmp_path, "carol")
    np.random.seed(0)
    assert g(1, outside).startswith("new")


def test_a_copy_verified_under_a_secret_is_not_kept_under_the_next_one(tmp_path: Path, counter: Counter,
                                                                       slow_copies: None) -> None:
    configure(remote=(tmp_path / "team").as_uri(), secret="old secret")
    big = _big_function()
    _machine(tmp_path, "alice")
    big(_BIG, counter)
    _machine(tmp_path, "bob")
    assert big(_BIG, counter)[0] == 1.0  # verified under the old secret; its copy is being made
    configure(secret="new secret")
    _settle(tmp_path, "bob")
    big(_BIG, counter)
    assert counter.n == 2  # nothing signed with the new secret stands for it: computed


def test_the_first_caller_gets_the_copy_made_as_the_entry_arrived_and_each_value_is_its_own(
        tmp_path: Path, counter: Counter, slow_copies: None, monkeypatch: pytest.MonkeyPatch) -> None:
    configure(remote=(tmp_path / "team").as_uri())
    big = _big_function()
    _machine(tmp_path, "alice")
    big(_BIG, counter)
    _machine(tmp_path, "bob")
    copies: list[int] = []
    real = _local.writable_copy
    monkeypatch.setattr(_local, "writable_copy", lambda buf: copies.append(buf.nbytes) or real(buf))
    first = big(_BIG, counter)  # from the remote: the copy of its buffer made while it was verified, no other
    assert copies == []
    second = big(_BIG, counter)  # its local copy is held back: served again from memory, copied for this caller
    assert copies == [_BIG * 8]
    first[:] = -1.0  # each caller's value is its own: neither the other's nor the local copy sees this
    assert second.flags.writeable and (second == 1.0).all()
    _settle(tmp_path, "bob")
    third = big(_BIG, counter)  # the local copy
    assert (third == 1.0).all() and counter.n == 1


def test_a_callers_copy_is_freed_when_it_drops_its_value_while_the_local_copy_is_made(
        tmp_path: Path, counter: Counter, monkeypatch: pytest.MonkeyPatch) -> None:
    configure(remote=(tmp_path / "team").as_uri())
    big = _big_function()
    _machine(tmp_path, "alice")
    big(_BIG, counter)
    _machine(tmp_path, "bob")
    release = threading.Event()
    _hold_copies(monkeypatch, lambda: release.wait(30))
    made = _rooms_made(monkeypatch)
    value = big(_BIG, counter)
    assert len(made) == 1 and made[0]() is not None
    del value
    gc.collect()
    freed = made[0]() is None  # the copying thread holds the verified bytes, not the caller's copy
    release.set()
    _settle(tmp_path, "bob")
    assert freed and counter.n == 1


_FITS_ONCE = """
import resource
import warnings

import numpy as np

from notebook_memo import configure, memo
from notebook_memo.stores import remote as _remote

configure(remote=sys.argv[3])
N = 25_000_000  # 200 MB of float64


@memo
def big(n):
    return np.ones(n)


@memo
def small(n):
    return n + 1


if sys.argv[4] == "store":
    big(N)
    small(1)
    sys.exit(0)
small(1)  # a remote hit: the tier opened, everything imported
size = int(next(line for line in open("/proc/self/status") if line.startswith("VmSize")).split()[1]) * 1024
limit = size + int(1.5 * N * 8) + (64 << 20)  # room for the value once, not twice
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    try:
        value = big(N)
        print("value", float(value[0]), len(value))
        del value
    except MemoryError:
        print("value did not fit")
print("remote usable", _remote.remote_tier(sys.argv[3], read_only=False).usable())
for w in caught:
    print("warning", str(w.message)[:200])
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_a_value_that_fits_in_memory_once_never_sets_the_remote_aside(tmp_path: Path) -> None:
    script = worker_script(tmp_path / "fits_once.py", _FITS_ONCE)
    team = (tmp_path / "team").as_uri()
    for name, step in (("alice", "store"), ("bob", "load")):
        done = subprocess.run([sys.executable, str(script), "x", str(tmp_path / "log"), team, step],
                              env=worker_env(tmp_path / name), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    assert "remote usable True" in done.stdout, done.stdout
    assert "value 1.0 25000000" in done.stdout or "value did not fit" in done.stdout, done.stdout
