"""The remote tier against planted objects, deletions that must stick, and a remote that misbehaves.

The remote is a shared directory here (the file system shows each attack plainly); the S3 stand-in
shares the code paths above the object store (see tests/test_remote.py).
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from notebook_memo import MemoWarning, StorageWarning, configure, memo
from notebook_memo._serialize import Payload, encode_header
from tests.conftest import ROOT, Counter
from tests.test_remote import _counted, _machine, _objects, _tier, s3_remote, s3_server  # noqa: F401 (fixtures)


class Outside:
    """An input the key does not see (the reason one invalidates or refreshes at all)."""

    def __init__(self, value: str) -> None:
        self.value = value

    def __memo_key__(self) -> str:
        return "outside"


def _labelled() -> Any:
    """A memoized function of ``x`` whose result also shows what ``outside`` holds (an input the key does not see)."""

    @memo
    def f(x: int, outside: Outside) -> str:
        return f"{outside.value}-{x}"

    return f


def _drawing() -> Any:
    """Like ``_labelled``, and its result draws from numpy's global random state."""

    @memo
    def g(x: int, outside: Outside) -> str:
        return f"{outside.value}-{np.random.random():.6f}"

    return g


def _tagged() -> Any:
    """``_labelled`` as a batch over ``items``."""

    @memo.batch("items", progress=False)
    def tag(items: list[int], outside: Outside) -> list[str]:
        return [f"{outside.value}-{i}" for i in items]

    return tag


def _team(tmp_path: Path) -> tuple[Path, str]:
    team = tmp_path / "team"
    return team, team.as_uri()


def _manifest(team: Path) -> Path:
    (path,) = [p for p in (team / "m").rglob("*") if p.is_file()]
    return path


def _plant_code(path: Path, row: str, marker: Path) -> None:
    """Replace a manifest by a well-formed unsigned one whose pickle creates ``marker`` when loaded."""

    class Boom:
        def __reduce__(self) -> Any:
            return (os.mkdir, (str(marker),))

    evil = Payload(pickle.dumps(Boom(), protocol=5), [])
    path.unlink()
    path.write_bytes(encode_header(row, None, evil, {"kind": "function", "fid": "x", "size": 1, "created": 0},
                                   1.0, None, 0.1, True, None))


# m/<xx> made under a team umask (the top folders stay private), or the object itself made group-writable
@pytest.mark.parametrize("writable", ["subfolder", "object"])
def test_without_a_secret_an_object_others_could_write_is_never_loaded(tmp_path: Path, counter: Counter,
                                                                       writable: str) -> None:
    team, url = _team(tmp_path)
    configure(remote=url)

    @memo
    def f(x: int, counter: Counter) -> int:
        counter()
        return x + 1

    _machine(tmp_path, "alice")
    f(1, counter)
    manifest = _manifest(team)
    marker = tmp_path / "PLANTED_CODE_RAN"
    _plant_code(manifest, manifest.name, marker)
    if writable == "subfolder":
        manifest.parent.chmod(0o775)
    else:
        manifest.chmod(0o664)
    _machine(tmp_path, "bob")
    with pytest.warns(StorageWarning, match="can be written by group or others"):
        assert f(1, counter) == 2
    assert not marker.exists()
    assert counter.n == 2


@pytest.mark.parametrize("planted", ["manifest", "lease"])
def test_a_pipe_planted_at_an_objects_name_never_blocks_a_call(tmp_path: Path, planted: str) -> None:
    team, url = _team(tmp_path)
    script = tmp_path / "call.py"
    script.write_text(f"""
import sys, time
sys.path.insert(0, {str(ROOT)!r})
from notebook_memo import configure, memo
configure(remote={url!r}, secret="team secret", cache_dir=sys.argv[1])

@memo
def f(x):
    time.sleep(float(sys.argv[2]))
    return x + 1

print(f(1))
""")
    env = {**os.environ, "NOTEBOOK_MEMO_LEASE": "1"}
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "alice"), "0"], capture_output=True,
                         text=True, timeout=120, env=env)
    assert out.stdout.split() == ["2"], out.stderr
    manifest = _manifest(team)
    if planted == "manifest":
        fifo = manifest
        manifest.unlink()
    else:
        fifo = team / "l" / manifest.name.partition("~")[0]
        fifo.parent.mkdir(exist_ok=True)
        manifest.unlink()
    os.mkfifo(fifo)
    # A reader opening the pipe would wait forever for a writer: the call must go on (the timeout is a guard).
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "bob"), "0"], capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2"]


def test_folders_that_are_links_are_never_written_through_or_deleted_in(tmp_path: Path) -> None:
    team, url = _team(tmp_path)
    configure(remote=url, secret="team secret")

    @memo
    def f(n: int) -> np.ndarray:
        return np.ones(n)

    _machine(tmp_path, "alice")
    f(100_000)
    manifest = _manifest(team)
    outside = tmp_path / "someone_elses_folder"
    outside.mkdir()
    (outside / "precious.txt").write_text("x")
    shutil.rmtree(team / "m")
    (team / "m").mkdir()
    (team / "m" / manifest.name[:2]).symlink_to(outside)
    shutil.rmtree(team / "b")
    (team / "b").symlink_to(outside)
    _machine(tmp_path, "bob")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StorageWarning)
        np.testing.assert_array_equal(f(100_000), np.ones(100_000))
        f.invalidate(100_000)
    assert sorted(p.name for p in outside.iterdir()) == ["precious.txt"]


def test_an_object_larger_than_its_manifest_says_is_refused_unread(tmp_path: Path, counter: Counter,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    team, url = _team(tmp_path)
    configure(remote=url)

    @memo
    def f(n: int, counter: Counter) -> np.ndarray:
        counter()
        return np.zeros(n)

    _machine(tmp_path, "alice")
    f(100_000, counter)
    (blob,) = list((team / "b").iterdir())
    with open(blob, "r+b") as fh:
        fh.truncate(8 << 30)  # 8 GiB, sparse: reading it whole would exhaust memory
    _machine(tmp_path, "bob")
    with pytest.warns(StorageWarning, match="more than the"):
        np.testing.assert_array_equal(f(100_000, counter), np.zeros(100_000))
    assert counter.n == 2


def test_one_unreadable_object_does_not_set_the_remote_aside(tmp_path: Path, counter: Counter) -> None:
    team, url = _team(tmp_path)
    configure(remote=url)
    f = _counted(lambda x: x)
    _machine(tmp_path, "alice")
    f(1, counter)
    f(2, counter)
    manifests = sorted(p for p in (team / "m").rglob("*") if p.is_file())
    manifests[0].unlink()
    os.mkfifo(manifests[0])  # one key's object can no longer be read
    _machine(tmp_path, "bob")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StorageWarning)
        f(1, counter)
        f(2, counter)
    assert counter.n == 3  # one recomputed, the other served from the remote


def test_invalidate_of_a_function_drawing_random_numbers_removes_every_state_entry(tmp_path: Path) -> None:
    _, url = _team(tmp_path)
    configure(remote=url)
    outside = Outside("old")
    g = _drawing()
    _machine(tmp_path, "dave")
    np.random.seed(0)
    assert g(1, outside).startswith("old")
    outside.value = "new"
    assert g.invalidate(1, outside)
    np.random.seed(0)
    assert g(1, outside).startswith("new")
    _machine(tmp_path, "erin")
    np.random.seed(0)
    assert g(1, outside).startswith("new")


def test_clear_removes_the_functions_entries_from_the_remote(tmp_path: Path) -> None:
    _, url = _team(tmp_path)
    configure(remote=url)
    outside = Outside("old")
    f = _labelled()
    _machine(tmp_path, "alice")
    f(1, outside)
    f(2, outside)
    outside.value = "new"
    _machine(tmp_path, "carol")
    assert f(2, outside) == "old-2"
    assert f.clear() == 1
    assert f(2, outside) == "new-2"
    _machine(tmp_path, "dave")
    assert f(2, outside) == "new-2"
    assert f(1, outside) == "old-1"  # never on carol's machine: clear() removes what it found here


def test_invalidate_on_a_read_only_remote_is_not_undone_by_the_next_call(tmp_path: Path) -> None:
    _, url = _team(tmp_path)
    configure(remote=url)
    outside = Outside("old")
    f = _labelled()
    _machine(tmp_path, "alice")
    f(1, outside)
    outside.value = "new"
    configure(remote_read_only=True)
    _machine(tmp_path, "bob")
    assert f(1, outside) == "old-1"
    assert f.invalidate(1, outside)
    assert f(1, outside) == "new-1"
    assert f(1, outside) == "new-1"  # and kept locally
    assert len([n for n in _objects(url) if n.startswith("m/")]) == 1  # the team's copy is untouched


def test_a_batch_refresh_replaces_the_remote_copy(tmp_path: Path) -> None:
    _, url = _team(tmp_path)
    configure(remote=url)
    outside = Outside("old")
    tag = _tagged()
    _machine(tmp_path, "alice")
    tag([1, 2], outside)
    outside.value = "new"
    assert tag.refresh([1, 2], outside) == ["new-1", "new-2"]
    _machine(tmp_path, "bob")
    assert tag([1, 2], outside) == ["new-1", "new-2"]


def test_a_cell_refresh_replaces_the_remote_copy(tmp_path: Path, shell: Any) -> None:
    _, url = _team(tmp_path)
    configure(remote=url)
    _machine(tmp_path, "alice")
    shell.run("%load_ext notebook_memo")
    shell.run("from tests.test_remote_hostile import Outside\noutside = Outside('old')")
    shell.run("%%memo\nlabel = outside.value + '-1'")
    shell.run("outside.value = 'new'")
    shell.run("%%memo --refresh\nlabel = outside.value + '-1'")
    assert shell["label"] == "new-1"
    _machine(tmp_path, "bob")
    shell.run("del label")
    shell.run("%%memo\nlabel = outside.value + '-1'")
    assert shell["label"] == "new-1"


def test_a_functions_own_remote_serves_its_invalidate_and_is_cached(tmp_path: Path) -> None:
    _, own_url = _team(tmp_path)
    configure(remote=(tmp_path / "process-wide").as_uri())
    outside = Outside("old")

    @memo(remote=own_url)
    def f(x: int, outside: Outside) -> str:
        return f"{outside.value}-{x}"

    _machine(tmp_path, "alice")
    f(1, outside)
    _machine(tmp_path, "bob")
    assert f.is_cached(1, outside)  # found in its own remote
    assert f.invalidate(1, outside)
    assert [n for n in _objects(own_url) if n.startswith("m/")] == []
    outside.value = "new"
    _machine(tmp_path, "carol")
    assert f(1, outside) == "new-1"


def test_a_remote_that_cannot_be_opened_warns_and_leaks_no_lease(tmp_path: Path, counter: Counter) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    configure(remote=(blocker / "cache").as_uri())  # a folder cannot be made under a file

    @memo
    def f(x: int, counter: Counter) -> int:
        counter()
        raise ValueError("the body fails")

    with pytest.warns(StorageWarning, match="cannot be opened"), pytest.raises(ValueError):
        f(1, counter)
    store = f._store()
    assert not store.leased(f.make_call((1, counter), {}).key)
    assert not store.holds_leases()


def test_a_manifest_whose_payload_was_pruned_is_republished(tmp_path: Path, counter: Counter) -> None:
    team, url = _team(tmp_path)
    configure(remote=url)

    @memo
    def f(n: int, counter: Counter) -> np.ndarray:
        counter()
        return np.arange(n) + counter.n  # another result on each run: another payload name

    _machine(tmp_path, "alice")
    f(100_000, counter)
    (blob,) = list((team / "b").iterdir())
    blob.unlink()
    _machine(tmp_path, "bob")
    f(100_000, counter)  # the manifest's payload is gone: computed, and the entry published again
    _machine(tmp_path, "carol")
    np.testing.assert_array_equal(f(100_000, counter), np.arange(100_000) + 2)
    assert counter.n == 2


def test_unsigned_entries_from_object_storage_are_named_once(s3_remote: str, tmp_path: Path,  # noqa: F811
                                                             counter: Counter) -> None:
    configure(remote=s3_remote)
    f = _counted(lambda x: x)
    _machine(tmp_path, "alice")
    f(1, counter)
    f(2, counter)
    _machine(tmp_path, "bob")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        f(1, counter)
        f(2, counter)
    unsigned = [w for w in caught if "not signed" in str(w.message)]
    assert len(unsigned) == 1 and issubclass(unsigned[0].category, MemoWarning)
    assert counter.n == 2


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX only")
def test_a_forked_child_holds_none_of_its_parents_remote_leases(tmp_path: Path) -> None:
    _, url = _team(tmp_path)
    tier = _tier(url)
    assert tier.try_lease("a" * 32)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, and leave without running the parent's exit handlers
        os.write(write, b"1" if not tier._held and tier._renewer is None else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    tier.release(["a" * 32])


@pytest.mark.parametrize("endpoint", ["http://[::1", "", "ht!tp://bad host"])
def test_an_endpoint_obstore_cannot_parse_never_breaks_the_call(tmp_path: Path, endpoint: str) -> None:
    """A malformed AWS_ENDPOINT_URL makes obstore's Rust code panic on its first request, raising a
    BaseException that no `except Exception` stops: the call must still be computed and returned, with a
    warning, and the command line must say what is wrong without a traceback."""
    script = tmp_path / "call.py"
    script.write_text(f"""
import sys, warnings
sys.path.insert(0, {str(ROOT)!r})
warnings.simplefilter("always")
from notebook_memo import configure, memo
configure(remote="s3://bucket/cache", cache_dir=sys.argv[1])

@memo
def f(x):
    return x + 1

print(f(1), f(2), f(1))
""")
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "AWS_ENDPOINT_URL_S3": endpoint, "AWS_ACCESS_KEY_ID": "a",
           "AWS_SECRET_ACCESS_KEY": "b", "AWS_REGION": "us-east-1", "RUST_BACKTRACE": "0"}
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "cache")], capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 0 and out.stdout.split() == ["2", "3", "2"], out.stderr
    # An endpoint that does not parse is refused before any request; an empty one reaches obstore and panics.
    assert "StorageWarning: the remote cache s3://bucket/cache" in out.stderr and "kept locally" in out.stderr
    assert "PanicException" not in out.stderr
    cli = subprocess.run([sys.executable, "-m", "notebook_memo", "info", "--remote", "s3://bucket/cache"],
                         capture_output=True, text=True, timeout=120, env={**env, "PYTHONPATH": str(ROOT)})
    assert cli.returncode != 0 and "Traceback" not in cli.stderr, cli.stderr
