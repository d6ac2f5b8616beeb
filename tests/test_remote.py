"""The shared remote tier: a team's results on object storage or a shared directory.

"S3" here is moto's threaded S3-protocol server on 127.0.0.1, started and stopped by these tests: it
stands in for AWS S3 (and MinIO, R2), including conditional writes. No test reaches a cloud.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import threading
import uuid
import warnings
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from notebook_memo import StorageWarning, _config, _serialize, configure, memo
from notebook_memo._serialize import Payload, decode_header, encode_header
from notebook_memo.stores import remote as _remote
from tests.conftest import Counter


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    """moto's S3-protocol server on 127.0.0.1 (a stand-in for S3); yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_remote(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new bucket on the stand-in server, with the standard AWS variables pointing at it; its URL."""
    import boto3

    for name, value in {"AWS_ENDPOINT_URL": s3_server, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    bucket = f"team-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/cache"


@pytest.fixture
def dir_remote(tmp_path: Path) -> str:
    return (tmp_path / "team").as_uri()


@pytest.fixture(params=["directory", "s3"])
def remote(request: pytest.FixtureRequest) -> str:
    """The same tests on a shared directory and on the S3 stand-in."""
    return str(request.getfixturevalue("dir_remote" if request.param == "directory" else "s3_remote"))


def _machine(tmp_path: Path, name: str) -> None:
    """Switch this process to another 'machine': a local cache directory of its own."""
    configure(cache_dir=str(tmp_path / name))


def _tier(url: str) -> _remote.RemoteTier:
    """The remote tier of ``url``, as this process uses it (it must open)."""
    tier = _remote.remote_tier(url, read_only=False)
    assert tier is not None
    return tier


def _objects(url: str, prefix: str = "") -> list[str]:
    """The names of the remote's objects under ``prefix``, sorted."""
    return sorted(name for name, _, _ in _tier(url).objects.list(prefix))


def test_a_result_computed_on_one_machine_is_a_hit_on_another(remote: str, tmp_path: Path, counter: Counter) -> None:
    configure(remote=remote)

    @memo
    def embed(n: int, counter: Counter) -> np.ndarray:
        counter()
        return np.arange(n, dtype=np.float64) * 2

    _machine(tmp_path, "alice")
    first = embed(100_000, counter)  # 800 kB: a blob and a manifest
    _machine(tmp_path, "bob")
    second = embed(100_000, counter)
    assert counter.n == 1
    np.testing.assert_array_equal(first, second)
    assert embed.cache_info().hits == 1


def test_a_remote_hit_is_copied_locally_and_the_next_hit_makes_no_remote_request(
        remote: str, tmp_path: Path, counter: Counter, monkeypatch: pytest.MonkeyPatch) -> None:
    configure(remote=remote)

    @memo
    def f(x: int, counter: Counter) -> dict[str, int]:
        counter()
        return {"x": x}

    _machine(tmp_path, "alice")
    f(1, counter)
    _machine(tmp_path, "bob")
    assert f(1, counter) == {"x": 1}
    tier = _tier(remote)

    def no_request(*_: Any, **__: Any) -> Any:
        raise AssertionError("a local hit asked the remote")

    for name in ("get", "get_tagged", "exists", "create", "put", "replace", "delete", "list"):
        monkeypatch.setattr(tier.objects, name, no_request)
    assert f(1, counter) == {"x": 1}
    assert counter.n == 1


def test_identical_results_are_stored_once(remote: str, tmp_path: Path) -> None:
    configure(remote=remote)

    @memo
    def big(seed: int) -> np.ndarray:
        return np.ones(50_000)  # the same value for every seed

    big(1)
    big(2)
    names = _objects(remote)
    assert len([n for n in names if n.startswith("m/")]) == 2
    assert len([n for n in names if n.startswith("b/")]) == 1


def test_read_only_consumes_but_never_writes(remote: str, tmp_path: Path, counter: Counter) -> None:
    @memo
    def f(x: int, counter: Counter) -> int:
        counter()
        return x + 1

    configure(remote=remote)
    _machine(tmp_path, "alice")
    f(1, counter)
    configure(remote_read_only=True)
    _machine(tmp_path, "bob")
    before = _objects(remote)
    assert f(1, counter) == 2  # read from the team cache
    assert f(2, counter) == 3  # computed here, not published
    assert counter.n == 2
    assert _objects(remote) == before


def test_a_function_can_choose_its_own_remote_or_none(dir_remote: str, tmp_path: Path, counter: Counter) -> None:
    @memo(remote=dir_remote)
    def shared(x: int, counter: Counter) -> int:
        counter()
        return x

    @memo(remote=False)
    def private(x: int, counter: Counter) -> int:
        counter()
        return -x

    os.environ[_config.ENV_REMOTE] = dir_remote  # the environment's remote, which private refuses
    try:
        _machine(tmp_path, "alice")
        shared(1, counter)
        private(1, counter)
        _machine(tmp_path, "bob")
        shared(1, counter)
        private(1, counter)
    finally:
        del os.environ[_config.ENV_REMOTE]
    assert counter.n == 3  # private ran on both machines
    assert len([n for n in _objects(dir_remote) if n.startswith("m/")]) == 1


def test_the_environment_variable_configures_the_remote(dir_remote: str, tmp_path: Path, counter: Counter,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_config.ENV_REMOTE, dir_remote)
    f = _counted(lambda x: x)
    _machine(tmp_path, "alice")
    f(5, counter)
    _machine(tmp_path, "bob")
    f(5, counter)
    assert counter.n == 1


def _counted(body: Callable[[int], Any]) -> Any:
    """A memoized ``body(x)`` that counts its runs (the counter is not part of the key)."""

    @memo
    def f(x: int, counter: Counter) -> Any:
        counter()
        return body(x)

    return f


def _counted_arange() -> Any:
    """A memoized ``np.arange(n)`` that counts its runs."""
    return _counted(np.arange)


def _only_manifest(tier: _remote.RemoteTier) -> str:
    """The name of the remote's one manifest."""
    (name,) = [n for n, _, _ in tier.objects.list("m/")]
    return str(name)


def _published_by_alice(remote: str, tmp_path: Path, counter: Counter) -> Any:
    """Return ``_counted_arange()`` after 'alice' computed and published its value for 1,000,000 (8 MB)."""
    configure(remote=remote)
    f = _counted_arange()
    _machine(tmp_path, "alice")
    f(1_000_000, counter)
    return f


def _flip_last_byte(remote: str, prefix: str) -> None:
    tier = _tier(remote)
    name = next(n for n, _, _ in tier.objects.list(prefix))
    data = bytearray(tier.objects.get(name) or b"")
    data[-1] ^= 1
    tier.objects.put(name, bytes(data))


# 20,000 int64: a blob verified as it is; 1,000,000 (8 MB): copied for the caller while it is verified.
@pytest.mark.parametrize(("n", "secret"), [(20_000, None), (1_000_000, None), (1_000_000, "the team's secret")])
@pytest.mark.parametrize("target", ["b/", "m/"])
def test_damaged_remote_bytes_are_never_unpickled(remote: str, tmp_path: Path, counter: Counter, target: str,
                                                 n: int, secret: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    configure(remote=remote, secret=secret)

    f = _counted_arange()

    _machine(tmp_path, "alice")
    f(n, counter)
    _flip_last_byte(remote, target)
    _machine(tmp_path, "bob")
    loaded: list[int] = []
    real = pickle.loads
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: loaded.append(1) or real(*a, **k))
    with pytest.warns(StorageWarning, match="refused"):
        value = f(n, counter)
    np.testing.assert_array_equal(value, np.arange(n))
    assert counter.n == 2
    assert loaded == [] or target == "m/"  # a flipped manifest may only touch metadata: refused before pickle


def test_a_manifest_claiming_more_than_its_blob_holds_is_refused_before_any_memory_is_made_for_it(
        remote: str, tmp_path: Path, counter: Counter, monkeypatch: pytest.MonkeyPatch) -> None:
    f = _published_by_alice(remote, tmp_path, counter)
    tier = _tier(remote)
    name = _only_manifest(tier)
    header, _ = decode_header(tier.objects.get(name) or b"")

    class Claimed:  # a buffer of 1 TiB, as a forged manifest (no secret is set) may say
        nbytes = 1 << 40

    forged = Payload(b"\0" * header.pickle_len, [Claimed()])  # type: ignore[list-item]
    tier.objects.put(name, encode_header(header.key, header.filename, forged, header.meta(), header.created, None,
                                         header.duration, False, None, header.checksum))
    made: list[Any] = []
    monkeypatch.setattr(_serialize, "_make_room", lambda lens, room: made.append(lens))
    _machine(tmp_path, "bob")
    with pytest.warns(StorageWarning, match="refused"):
        np.testing.assert_array_equal(f(1_000_000, counter), np.arange(1_000_000))
    assert counter.n == 2 and made == []


def _rooms_made(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record, weakly, every buffer made ahead for a caller's copy of a remote value."""
    made: list[Any] = []
    real = _serialize._make_room

    def spied(lens: Any, room: list[Any]) -> None:
        real(lens, room)
        made.extend(weakref.ref(buf) for buf in room)

    monkeypatch.setattr(_serialize, "_make_room", spied)
    return made


def test_lookups_that_load_nothing_make_no_copy_of_a_large_remote_value(
        remote: str, tmp_path: Path, counter: Counter, monkeypatch: pytest.MonkeyPatch) -> None:
    f = _published_by_alice(remote, tmp_path, counter)
    configure(size_limit="4MB")  # too large for bob's directory: every look reads the remote
    _machine(tmp_path, "bob")
    made = _rooms_made(monkeypatch)
    assert f.is_cached(1_000_000, counter) and f.is_cached(1_000_000, counter)
    assert f.explain(1_000_000, counter).hit
    assert made == []
    np.testing.assert_array_equal(f(1_000_000, counter), np.arange(1_000_000))  # served: its copy made ahead
    assert len(made) == 1 and counter.n == 1
    f.refresh(1_000_000, counter)  # looks at what it replaces, loads none of it
    assert len(made) == 1 and counter.n == 2


def test_a_blob_swapped_for_another_entrys_is_refused(remote: str, tmp_path: Path, counter: Counter) -> None:
    configure(remote=remote)

    @memo
    def f(n: int, counter: Counter) -> np.ndarray:
        counter()
        return np.full(n, n)

    _machine(tmp_path, "alice")
    f(20_000, counter)
    f(30_000, counter)
    tier = _tier(remote)
    blobs = [n for n, _, _ in tier.objects.list("b/")]
    assert len(blobs) == 2
    first, second = (tier.objects.get(n) for n in blobs)
    tier.objects.put(blobs[0], bytes(second or b""))  # a valid payload, under another's name
    tier.objects.put(blobs[1], bytes(first or b""))
    _machine(tmp_path, "bob")
    with pytest.warns(StorageWarning, match="refused"):
        np.testing.assert_array_equal(f(20_000, counter), np.full(20_000, 20_000))
    assert counter.n == 3


def test_a_manifest_signed_with_another_secret_is_never_unpickled(remote: str, tmp_path: Path, counter: Counter,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    configure(remote=remote, secret="alice's secret")
    f = _counted(lambda n: [n])
    _machine(tmp_path, "alice")
    f(1, counter)
    tier = _tier(remote)
    name = _only_manifest(tier)
    key, _, keyid = name.rsplit("/", 1)[-1].partition("~")
    configure(secret="mallory's secret")
    from notebook_memo.stores.local import Store

    ours = Store.row_key(key, Store.signer())
    assert ours != f"{key}~{keyid}"
    tier.objects.put(_remote.manifest_name(ours), bytes(tier.objects.get(name) or b""))  # planted under our row
    _machine(tmp_path, "bob")
    loaded: list[int] = []
    real = pickle.loads
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: loaded.append(1) or real(*a, **k))
    with pytest.warns(StorageWarning, match="refused"):
        assert f(1, counter) == [1]
    assert counter.n == 2
    assert loaded == []


def test_an_unsigned_manifest_is_refused_when_a_secret_is_set(remote: str, tmp_path: Path, counter: Counter) -> None:
    configure(remote=remote)
    f = _counted(lambda n: [n])
    _machine(tmp_path, "alice")
    f(1, counter)
    tier = _tier(remote)
    name = _only_manifest(tier)
    configure(secret="team secret")
    from notebook_memo.stores.local import Store

    key = name.rsplit("/", 1)[-1]
    tier.objects.put(_remote.manifest_name(Store.row_key(key, Store.signer())), bytes(tier.objects.get(name) or b""))
    _machine(tmp_path, "bob")
    with pytest.warns(StorageWarning, match="refused"):
        assert f(1, counter) == [1]
    assert counter.n == 2


def test_signed_entries_are_shared_by_everyone_with_the_secret(remote: str, tmp_path: Path, counter: Counter) -> None:
    configure(remote=remote, secret="team secret")

    f = _counted_arange()

    _machine(tmp_path, "alice")
    f(50_000, counter)
    _machine(tmp_path, "bob")
    np.testing.assert_array_equal(f(50_000, counter), np.arange(50_000))
    assert counter.n == 1


def test_an_unreachable_remote_warns_once_and_the_work_goes_on(tmp_path: Path, counter: Counter,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    for name, value in {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "x",
                        "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    configure(remote=f"s3://nowhere-{uuid.uuid4().hex[:8]}/cache")

    @memo
    def f(x: int, counter: Counter) -> int:
        counter()
        return x * 3

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert [f(i, counter) for i in range(5)] == [0, 3, 6, 9, 12]
        assert [f(i, counter) for i in range(5)] == [0, 3, 6, 9, 12]  # local hits
    assert counter.n == 5
    remote_warnings = [w for w in caught if "remote cache" in str(w.message)]
    assert len(remote_warnings) == 1
    assert issubclass(remote_warnings[0].category, StorageWarning)


def test_an_expired_remote_entry_is_recomputed_and_replaced(remote: str, tmp_path: Path, counter: Counter,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import time as real_time

    configure(remote=remote)

    @memo(ttl=60)
    def f(x: int, counter: Counter) -> int:
        counter()
        return counter.n

    _machine(tmp_path, "alice")
    assert f(1, counter) == 1
    later = real_time.time() + 3600
    monkeypatch.setattr(real_time, "time", lambda: later)
    _machine(tmp_path, "bob")
    assert f(1, counter) == 2  # the remote's copy is past its TTL
    _machine(tmp_path, "carol")
    assert f(1, counter) == 2  # the replacement was published
    assert counter.n == 2


def test_refresh_overwrites_the_remote_and_invalidate_removes_it(remote: str, tmp_path: Path,
                                                                 counter: Counter) -> None:
    configure(remote=remote)

    @memo
    def f(x: int, counter: Counter) -> int:
        counter()
        return counter.n

    _machine(tmp_path, "alice")
    assert f(1, counter) == 1
    assert f.refresh(1, counter) == 2
    _machine(tmp_path, "bob")
    assert f(1, counter) == 2
    assert f.invalidate(1, counter)
    _machine(tmp_path, "carol")
    assert f(1, counter) == 3
    assert counter.n == 3


def test_a_server_that_ignores_conditional_writes_is_named_once(dir_remote: str, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    tier = _tier(dir_remote)
    real_put = tier.objects.put

    def create_that_overwrites(name: str, data: Any) -> bool:
        real_put(name, data)
        return True

    monkeypatch.setattr(tier.objects, "create", create_that_overwrites)
    with pytest.warns(StorageWarning, match="does not honour conditional writes"):
        assert tier.try_lease("k" * 32)
    assert tier.try_lease("k" * 32)  # no coordination: it computes, and says so only once


def test_remote_option_values_are_checked() -> None:
    with pytest.raises(TypeError, match="remote="):
        memo(remote=True)(lambda x: x)  # type: ignore[call-overload]
    from notebook_memo import ConfigurationError

    with pytest.raises(ConfigurationError, match="configure"):
        configure(remote=3)  # type: ignore[arg-type]
    configure(remote="ftp://host/x")

    @memo
    def f(x: int) -> int:
        return x

    with pytest.raises(ConfigurationError, match="cannot use the remote"):
        f(1)


def test_a_batch_reads_items_other_machines_computed(remote: str, tmp_path: Path) -> None:
    configure(remote=remote)

    class Log:
        """Records the items computed; never part of a key."""

        def __init__(self) -> None:
            self.items: list[int] = []

        def __memo_key__(self) -> str:
            return "log"

    log = Log()
    computed = log.items

    @memo.batch("items", progress=False)
    def square(items: list[int], log: Log) -> list[int]:
        log.items.extend(items)
        return [i * i for i in items]

    _machine(tmp_path, "alice")
    assert square(list(range(10)), log) == [i * i for i in range(10)]
    _machine(tmp_path, "bob")
    assert square(list(range(15)), log) == [i * i for i in range(15)]
    assert sorted(computed) == list(range(15))  # bob computed only the five alice had not
    _machine(tmp_path, "carol")
    assert square(list(range(15)), log) == [i * i for i in range(15)]
    assert sorted(computed) == list(range(15))


def test_a_cached_cell_is_restored_from_the_remote_in_another_kernel(dir_remote: str, tmp_path: Path,
                                                                     shell: Any) -> None:
    configure(remote=dir_remote)
    _machine(tmp_path, "alice")
    shell.run("%load_ext notebook_memo")
    shell.run("from tests.conftest import Counter\nruns = Counter()")
    cell = "%%memo\nimport numpy as np\nruns()\ntable = np.arange(50_000) * 3\n"
    shell.run(cell)
    assert shell["runs"].n == 1
    shell.run("del table")
    _machine(tmp_path, "bob")
    shell.run(cell)
    assert shell["runs"].n == 1  # restored from the team's copy
    assert int(shell["table"][-1]) == 49_999 * 3


def test_a_shared_directory_others_can_write_needs_a_secret(tmp_path: Path, counter: Counter) -> None:
    team = tmp_path / "team"
    configure(remote=team.as_uri())
    f = _counted(lambda x: x)
    _machine(tmp_path, "alice")
    f(1, counter)
    for folder in (team, team / "m"):
        folder.chmod(0o777)
    _machine(tmp_path, "bob")
    with pytest.warns(StorageWarning, match="without a secret nothing others could have written is loaded"):
        assert f(1, counter) == 1
    assert counter.n == 2
    configure(secret="team secret")
    _machine(tmp_path, "carol")
    f(1, counter)  # signed now: published signed
    _machine(tmp_path, "dave")
    assert f(1, counter) == 1
    assert counter.n == 3


def _arrivals(tmp_path: Path, name: str) -> None:
    from notebook_memo.stores.local import get_store

    get_store(str(tmp_path / name), _config.resolve_size_limit()).wait_arrivals()


def test_a_large_remote_entry_is_served_from_memory_and_copied_locally(
        remote: str, tmp_path: Path, counter: Counter, monkeypatch: pytest.MonkeyPatch) -> None:
    configure(remote=remote)

    @memo
    def big(n: int, counter: Counter) -> dict[str, np.ndarray]:
        counter()
        return {"a": np.arange(n, dtype=np.float64), "b": np.ones(3)}

    _machine(tmp_path, "alice")
    big(1_000_000, counter)  # 8 MB
    _machine(tmp_path, "bob")
    value = big(1_000_000, counter)
    assert value["a"].flags.writeable  # memory of its own, as a local hit gives
    value["a"][:] = -1.0  # the caller's changes never reach the copy being stored
    _arrivals(tmp_path, "bob")
    tier = _tier(remote)

    def no_request(*_: Any, **__: Any) -> Any:
        raise AssertionError("a local hit asked the remote")

    for name in ("get", "get_tagged", "exists", "create", "put", "replace", "delete", "list"):
        monkeypatch.setattr(tier.objects, name, no_request)
    again = big(1_000_000, counter)
    np.testing.assert_array_equal(again["a"], np.arange(1_000_000, dtype=np.float64))
    assert counter.n == 1


def test_a_remote_entry_larger_than_the_local_size_limit_is_still_served(remote: str, tmp_path: Path,
                                                                         counter: Counter) -> None:
    configure(remote=remote)

    @memo
    def big(n: int, counter: Counter) -> np.ndarray:
        counter()
        return np.arange(n, dtype=np.float64)

    _machine(tmp_path, "alice")
    big(1_000_000, counter)
    configure(size_limit="4MB")  # bob's cache cannot hold it
    _machine(tmp_path, "bob")
    for _ in range(3):
        np.testing.assert_array_equal(big(1_000_000, counter), np.arange(1_000_000, dtype=np.float64))
    _arrivals(tmp_path, "bob")
    assert counter.n == 1
    assert big.cache_info().currsize == 0  # nothing stored locally


def test_a_large_remote_entry_of_a_memory_mapped_function_is_served(dir_remote: str, tmp_path: Path,
                                                                    counter: Counter) -> None:
    configure(remote=dir_remote)

    @memo(mmap=True)
    def big(n: int, counter: Counter) -> np.ndarray:
        counter()
        return np.arange(n, dtype=np.float64)

    _machine(tmp_path, "alice")
    big(1_000_000, counter)
    _machine(tmp_path, "bob")
    np.testing.assert_array_equal(big(1_000_000, counter), np.arange(1_000_000, dtype=np.float64))
    _arrivals(tmp_path, "bob")
    mapped = big(1_000_000, counter)
    assert not mapped.flags.writeable  # from the local copy now, mapped
    assert counter.n == 1


def test_a_waiter_takes_no_local_lease_while_it_backs_off(dir_remote: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Waiting for another machine, each turn of the wait used to take the local lease and give it back
    (two SQLite write transactions, about 40 a second); within the back-off it now takes none."""
    import time

    from notebook_memo.stores.local import get_store

    configure(remote=dir_remote)
    elsewhere = _remote.RemoteTier(dir_remote, read_only=False)  # another machine's view of the remote
    key = "a" * 32
    assert elsewhere.try_lease(key)
    store = get_store(str(tmp_path / "here"), _config.resolve_size_limit())
    assert store.try_leases([key], [None]) == [False]  # held elsewhere: given back here, and a back-off set
    tier = _tier(dir_remote)
    tier._next_look[key] = (time.monotonic() + 3600, 1.0)  # the back-off, made as long as the test

    def no_local_lease(*_: Any) -> Any:
        raise AssertionError("a local lease was taken while backing off")

    with monkeypatch.context() as patched:
        patched.setattr(type(store), "_take_here", no_local_lease)
        assert store.try_leases([key], [None]) == [False]
    elsewhere.release([key])
    tier.looked(key)
    assert store.try_leases([key], [None]) == [True]  # given back elsewhere: taken here and there
    store.release_leases([key])



class _Gate:
    """Events two threads meet at; keyed as a constant (it is not what a body computes from)."""

    def __init__(self) -> None:
        self.entered, self.go, self.neighbour_in = threading.Event(), threading.Event(), threading.Event()

    def __memo_key__(self) -> str:
        return "gate"


@pytest.mark.parametrize("order", ["neighbour first", "body first", "neighbour hits"])
def test_another_threads_lookup_and_lease_are_not_what_a_running_body_reads(
        remote: str, tmp_path: Path, counter: Counter, order: str) -> None:
    """A thread that runs no body of its own is taken to work for the bodies of the others (a pool they
    started), but a memoized call it makes is ours: the remote's lease it takes and gives back, the manifest it
    reads, are not the running body's reads. Where the neighbour's call began before the body (a dask worker's
    two threads), they were, and the body's result was not stored: the lease it 'read' was gone when it ended."""
    configure(remote=remote)
    _machine(tmp_path, "alice")
    gate = _Gate()

    @memo
    def slow(x: int, gate: _Gate, counter: Counter) -> int:
        counter()
        gate.entered.set()
        assert gate.go.wait(60)
        return x * 2

    @memo
    def quick(x: int, gate: _Gate) -> int:
        if order == "neighbour first":
            gate.neighbour_in.set()
            assert gate.entered.wait(60)  # the body runs now: this call's store and lease work comes after
        return x + 1

    if order == "neighbour hits":
        quick(1, gate)
    results: list[int] = []
    body = threading.Thread(target=lambda: results.append(slow(3, gate, counter)))
    neighbour = threading.Thread(target=quick, args=(1, gate))
    if order == "neighbour first":
        neighbour.start()
        assert gate.neighbour_in.wait(60)
        body.start()
    else:
        body.start()
        assert gate.entered.wait(60)
        neighbour.start()
    neighbour.join()
    gate.go.set()
    body.join()
    assert results == [6] and counter.n == 1
    again: list[int] = []
    thread = threading.Thread(target=lambda: again.append(slow(3, gate, counter)))
    thread.start()
    thread.join()
    assert again == [6] and counter.n == 1, slow.explain_last()


@pytest.mark.parametrize("kind", ["async", "batch", "async batch"])
def test_another_threads_async_and_batch_calls_are_not_what_a_running_body_reads(
        dir_remote: str, tmp_path: Path, counter: Counter, kind: str) -> None:
    """The same for a coroutine function's call and a batch's, begun in a thread of their own before the body."""
    configure(remote=dir_remote)
    _machine(tmp_path, "alice")
    gate = _Gate()

    @memo
    def slow(x: int, gate: _Gate, counter: Counter) -> int:
        counter()
        gate.entered.set()
        assert gate.go.wait(60)
        return x * 2

    def meet(gate: _Gate) -> None:
        gate.neighbour_in.set()
        assert gate.entered.wait(60)

    @memo
    async def quick_async(x: int, gate: _Gate) -> int:
        meet(gate)
        return x + 1

    @memo.batch("xs")
    def quick_batch(xs: list[int], gate: _Gate) -> list[int]:
        meet(gate)
        return [x + 1 for x in xs]

    @memo.batch("xs")
    async def quick_async_batch(xs: list[int], gate: _Gate) -> list[int]:
        meet(gate)
        return [x + 1 for x in xs]

    def neighbour_call() -> None:
        if kind == "async":
            asyncio.run(quick_async(1, gate))
        elif kind == "batch":
            quick_batch([1, 2], gate)
        else:
            asyncio.run(quick_async_batch([1, 2], gate))

    results: list[int] = []
    body = threading.Thread(target=lambda: results.append(slow(3, gate, counter)))
    neighbour = threading.Thread(target=neighbour_call)
    neighbour.start()
    assert gate.neighbour_in.wait(60)
    body.start()
    neighbour.join()
    gate.go.set()
    body.join()
    assert results == [6] and counter.n == 1
    again: list[int] = []
    thread = threading.Thread(target=lambda: again.append(slow(3, gate, counter)))
    thread.start()
    thread.join()
    assert again == [6] and counter.n == 1, slow.explain_last()
