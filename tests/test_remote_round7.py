"""The remote tier shared by a team: folders and objects a colleague can use, damage that gets repaired,
leases apart per secret, and upkeep figures and foreign names.

A shared folder is played by several users where it matters: the suite runs as root (CI's container), and
``setpriv`` runs a kernel as another uid and group, as a colleague on the team's share would be.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from notebook_memo import StorageWarning, _cli, configure, memo
from notebook_memo._inventory import human_bytes
from notebook_memo.stores import _remote_admin
from notebook_memo.stores import remote as _remote
from tests.conftest import ROOT, Counter
from tests.test_remote import _counted, _machine, _objects, _tier, dir_remote, remote, s3_remote, s3_server  # noqa: F401 (fixtures)

ALICE, BOB, TEAM = 1000, 65534, 1000  # two colleagues' uids, and the group their share belongs to

_KERNEL = """
import json, os, sys, warnings
os.umask(int(sys.argv[1], 8))
import numpy as np
import notebook_memo
from notebook_memo import memo
notebook_memo.configure(secret=sys.argv[2] or None, remote=sys.argv[3])
warnings.simplefilter("always")

@memo
def emb(n):
    return np.arange(n, dtype=float)

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    hits = []
    for n in json.loads(sys.argv[4]):
        before = emb.cache_info().hits
        emb(n)
        hits.append(emb.cache_info().hits > before)
print("RESULT" + json.dumps({"hits": hits, "warnings": [str(w.message) for w in caught]}))
"""


def _kernel(cache: Path, team: Path, sizes: list[int], umask: int = 0o022, secret: str = "team",
            user: tuple[int, list[int]] | None = None) -> dict[str, Any]:
    """Run a fresh kernel computing ``emb`` of ``sizes`` on the shared folder ``team``; return whether each was a
    hit, and its warnings. ``user``: run it as (uid, groups), with ``setpriv``, its cache folder its own."""
    cache.mkdir(exist_ok=True)
    command = [sys.executable, "-c", _KERNEL, f"{umask:o}", secret, team.as_uri(), json.dumps(sizes)]
    if user is not None:
        uid, groups = user
        os.chown(cache, uid, groups[0])
        command = ["setpriv", f"--reuid={uid}", f"--regid={groups[0]}",
                   f"--groups={','.join(map(str, groups))}", *command]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "0", "HOME": str(cache),
           "NOTEBOOK_MEMO_DIR": str(cache)}
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, cwd=str(cache))
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[len("RESULT"):])  # type: ignore[no-any-return]
    raise AssertionError(f"the kernel failed:\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")


@pytest.fixture
def share() -> Iterator[Path]:
    """A folder other users can reach (pytest's own are private to root), holding the team's folder
    ``team``: group TEAM, mode 2775, as a team's share is set up."""
    top = Path(tempfile.mkdtemp(prefix="notebook_memo_share_"))
    try:
        top.chmod(0o755)
        team = top / "team"
        team.mkdir()
        os.chown(team, 0, TEAM)
        team.chmod(0o2775)
        yield top
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _modes(team: Path) -> dict[str, int]:
    """The permission bits of everything below ``team``, by path."""
    return {str(path.relative_to(team)): stat.S_IMODE(path.lstat().st_mode) for path in team.rglob("*")}


# -- 1. a shared folder: what we make there is shared as the folder is -----------------------------------------

@pytest.mark.parametrize("shared", [0o2775, 0o2770])
def test_folders_and_objects_made_under_a_private_umask_are_shared_as_the_remote_folder_is(
        share: Path, shared: int) -> None:
    team = share / "team"
    team.chmod(shared)
    _kernel(share / "alice", team, [200_000], umask=0o077)  # a blob, a manifest, a lease, the probe
    modes = _modes(team)
    folders = {path: mode for path, mode in modes.items() if (team / path).is_dir()}
    files = {path: mode for path, mode in modes.items() if not (team / path).is_dir()}
    assert {"m", "b", "l", "p"} <= set(folders)
    assert folders == dict.fromkeys(folders, shared)
    assert files and files == dict.fromkeys(files, 0o600 | (shared & 0o044))  # readable as shared, never writable


def test_a_colleague_in_the_group_hits_and_publishes_on_a_folder_another_made(share: Path) -> None:
    team = share / "team"
    alice = _kernel(share / "alice", team, [200_000], user=(ALICE, [TEAM]))
    assert alice["hits"] == [False]
    bob = _kernel(share / "bob", team, [200_000, 300_000], user=(BOB, [TEAM]))
    assert bob["hits"] == [True, False], bob["warnings"]
    assert not [w for w in bob["warnings"] if "could not be used" in w or "refused" in w]
    carol = _kernel(share / "carol", team, [300_000], user=(BOB, [TEAM]))  # bob's result reached the team
    assert carol["hits"] == [True], carol["warnings"]


def _manifests(team: Path) -> set[Path]:
    return {path for path in (team / "m").rglob("*~*") if path.is_file()}


def test_a_folder_a_colleague_may_not_enter_misses_its_entry_alone(share: Path) -> None:
    team = share / "team"
    _kernel(share / "alice", team, [200_000], user=(ALICE, [TEAM]))
    (first,) = _manifests(team)
    _kernel(share / "alice", team, [300_000], user=(ALICE, [TEAM]))
    (second,) = _manifests(team) - {first}
    assert first.parent != second.parent  # two folders m/<xx>: one is shut, the other stays open
    first.parent.chmod(0o700)  # as alice's umask 077 made it in an earlier version: no one else may enter it
    bob = _kernel(share / "bob", team, [200_000, 300_000], user=(BOB, [TEAM]))
    assert bob["hits"] == [False, True], bob["warnings"]
    assert not [w for w in bob["warnings"] if "could not be used" in w]
    assert len([w for w in bob["warnings"] if "refused and not loaded" in w]) == 1  # its result stays his too


def test_folders_a_colleague_may_not_write_keep_his_results_local_and_the_remote_in_use(share: Path) -> None:
    team = share / "team"
    _kernel(share / "alice", team, [200_000, 300_000], user=(ALICE, [TEAM]))
    for folder in [team / "m", team / "p", team / "l", *(team / "m").iterdir()]:
        folder.chmod(0o2755)  # as alice's umask 022 made them in an earlier version: bob may not write there
    bob = _kernel(share / "bob", team, [200_000, 400_000, 300_000], user=(BOB, [TEAM]))
    assert bob["hits"] == [True, False, True], bob["warnings"]
    assert not [w for w in bob["warnings"] if "could not be used" in w]
    assert [w for w in bob["warnings"] if "refused a write" in w]


# -- 2. a damaged entry is repaired by the next teammate who computes it -------------------------------------------

def _flip_last_byte(tier: _remote.RemoteTier, name: str) -> None:
    data = bytearray(tier.objects.get(name) or b"")
    data[-1] ^= 1
    tier.objects.put(name, bytes(data))


@pytest.mark.parametrize("where", ["blob", "inline"])
def test_a_damaged_entry_is_repaired_by_the_next_teammate_who_computes_it(
        remote: str, tmp_path: Path, counter: Counter, where: str) -> None:  # noqa: F811
    configure(remote=remote, secret="team secret")
    f = _counted(np.arange)
    _machine(tmp_path, "alice")
    f(100_000 if where == "blob" else 10, counter)  # 800 kB: a blob; 80 bytes: inline in its manifest
    tier = _tier(remote)
    (damaged,) = _objects(remote, "b/") if where == "blob" else _objects(remote, "m/")
    _flip_last_byte(tier, damaged)  # same length, other bytes: bit rot, or a hostile write
    for who in ("bob", "carol", "dave"):
        _machine(tmp_path, who)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", StorageWarning)  # bob's refusal: said once, as ever
            f(100_000 if where == "blob" else 10, counter)
    assert counter.n == 2  # alice, then bob, who repaired it: carol and dave hit


@pytest.mark.parametrize("planted", ["link", "pipe", "oversized"])
def test_what_is_planted_at_a_blobs_name_is_replaced_by_the_blob_and_never_followed(
        dir_remote: str, tmp_path: Path, counter: Counter, planted: str) -> None:  # noqa: F811
    configure(remote=dir_remote, secret="team secret")
    f = _counted(np.arange)
    _machine(tmp_path, "alice")
    f(100_000, counter)
    (name,) = _objects(dir_remote, "b/")
    blob = tmp_path / "team" / name
    real = blob.read_bytes()
    blob.unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"not the cache's")
    if planted == "link":
        blob.symlink_to(elsewhere)
    elif planted == "pipe":
        os.mkfifo(blob)
    else:
        blob.write_bytes(real + b"\0" * 4096)
    for who in ("bob", "carol"):
        _machine(tmp_path, who)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", StorageWarning)
            f(100_000, counter)
    assert counter.n == 2  # bob repaired it: carol hits
    assert stat.S_ISREG(blob.lstat().st_mode) and blob.read_bytes() == real
    assert elsewhere.read_bytes() == b"not the cache's"


# -- 3. kernels with different secrets never wait on each other's leases -------------------------------------------

_LEASING = """
import os, sys, time
from pathlib import Path
from notebook_memo import configure, memo
configure(secret=sys.argv[2] or None)
here = Path(sys.argv[1])

@memo
def work(x):
    if sys.argv[3] == "first":
        (here / "first-started").touch()
        for _ in range(600):  # the second kernel, if it does not wait on this one, runs its body meanwhile
            if (here / "second-ran").exists():
                return "second ran meanwhile"
            time.sleep(0.05)
        return "second waited"
    (here / "second-ran").touch()
    return "second"

print(work(1))
"""


@pytest.mark.parametrize("secrets", [("old secret", "new secret"), ("", "new secret")])
def test_kernels_with_different_secrets_compute_at_once_without_waiting_on_each_others_lease(
        s3_remote: str, tmp_path: Path, secrets: tuple[str, str]) -> None:  # noqa: F811
    script = tmp_path / "leasing.py"
    script.write_text(_LEASING)

    def start(which: str, secret: str) -> subprocess.Popen[str]:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "0", "NOTEBOOK_MEMO_REMOTE": s3_remote,
               "NOTEBOOK_MEMO_DIR": str(tmp_path / which)}
        return subprocess.Popen([sys.executable, str(script), str(tmp_path), secret, which], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    first = start("first", secrets[0])
    while not (tmp_path / "first-started").exists():  # it holds its lease on the remote now
        assert first.poll() is None, first.communicate()
        time.sleep(0.01)
    second = start("second", secrets[1])
    out_second, err_second = second.communicate(timeout=120)
    out_first, err_first = first.communicate(timeout=120)
    assert out_second.split() == ["second"], err_second
    assert out_first.split() == ["second", "ran", "meanwhile"], err_first


# -- 4. upkeep passes over objects whose names the client cannot use -----------------------------------------------

_UNNAMABLE = ["m/../escape", "m/~/../after-the-manifests", "m/00//twice", "b/./dot", "l/../lock"]


@pytest.mark.parametrize("command", [["info"], ["prune", "--older-than", "1000d"], ["clear"]])
def test_upkeep_skips_and_names_objects_whose_names_it_cannot_use_and_deletes_none(
        s3_remote: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],  # noqa: F811
        monkeypatch: pytest.MonkeyPatch, command: list[str]) -> None:
    import boto3

    monkeypatch.setattr(_remote_admin, "BLOB_GRACE", 0.0)
    configure(remote=s3_remote, secret="team secret")
    f = _counted(np.arange)
    _machine(tmp_path, "alice")
    for n in (10, 20, 30, 100_000):
        f(n, Counter())
    bucket, _, prefix = s3_remote.removeprefix("s3://").partition("/")
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    for name in _UNNAMABLE:
        s3.put_object(Bucket=bucket, Key=f"{prefix}/{name}", Body=b"someone else's")
    assert _cli.main([*command, "--remote", s3_remote]) == 0
    out, err = capsys.readouterr()
    left = {item["Key"] for item in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert {f"{prefix}/{name}" for name in _UNNAMABLE} <= left
    if command == ["clear"]:
        assert "removed 4 entries" in out
        assert left == {f"{prefix}/{name}" for name in _UNNAMABLE}  # the listing was whole: the blob went too
    else:
        assert "4 entries" in out or "removed 0 entries" in out
    assert "skipped 3 objects with names it cannot use" in err and "'m/../escape'" in err  # under m/


# -- 5. a blob identical results share is counted once ------------------------------------------------------------

def test_a_blob_identical_results_share_is_counted_once_by_info_and_prune(
        remote: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    configure(remote=remote, secret="team secret")

    @memo
    def zeros_a(n: int) -> np.ndarray:
        return np.zeros(n)

    @memo
    def zeros_b(n: int, shift: int = 0) -> np.ndarray:
        return np.zeros(n)

    _machine(tmp_path, "alice")
    zeros_a(100_000)
    zeros_b(100_000)
    zeros_b(100_000, shift=1)  # three results, one blob of 800 kB
    tier = _tier(remote)
    (blob,) = [size for _, size, _ in tier.objects.list("b/")]
    manifests = sum(size for _, size, _ in tier.objects.list("m/"))
    assert sum(row["bytes"] for row in _remote_admin.summary(tier)) == blob + manifests
    assert _cli.main(["info", "--remote", remote]) == 0
    assert f"3 entries, {human_bytes(blob + manifests)}" in capsys.readouterr().out
    assert _cli.main(["prune", "--remote", remote, "--max-size", str(blob + manifests + 1000)]) == 0
    assert "removed 0 entries" in capsys.readouterr().out
    assert len(_objects(remote, "m/")) == 3
