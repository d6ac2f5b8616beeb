"""Upkeep meeting damage and other people's objects: the remote's ``prune``/``clear`` (whose entries they may
delete, what they leave when they cannot read everything, the leftovers of killed writers), one planted
object on the remote refused alone, and the local index's upkeep (``clear``, ``cache_info``, ``info``,
``prune``) setting a damaged index aside as a call does.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from notebook_memo import _cli, configure
from notebook_memo._serialize import Payload, decode_header, encode_header, signer_for
from notebook_memo.stores._objects import DirectoryObjects
from tests.conftest import ROOT, Counter
from tests.test_remote import _counted, _machine, _objects, _tier
from tests.test_remote_hostile import _manifest, _team

SECRET = "team secret"


# -- prune --remote --keep-latest: whose entries it may delete ---------------------------------------------------

def _load_in(shell: Any, notebook: Path, factor: int) -> None:
    """Define ``load`` in ``notebook`` and store one result of it."""
    shell.run(f"__session__ = {str(notebook)!r}\nfrom notebook_memo import memo\n"
              f"@memo\ndef load(x):\n    return x * {factor}\nload(1)")


@pytest.mark.parametrize("secret", [None, SECRET])
def test_keep_latest_on_the_remote_keeps_each_notebooks_function(tmp_path: Path, shell: Any, secret: str | None,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _, url = _team(tmp_path)
    if secret:
        monkeypatch.setenv("NOTEBOOK_MEMO_SECRET", secret)
    configure(remote=url)
    _load_in(shell, tmp_path / "a.ipynb", 1)
    _load_in(shell, tmp_path / "b.ipynb", 2)  # stored later, with other code, by another notebook
    assert len(_objects(url, "m/")) == 2
    assert _cli.main(["prune", "--remote", url, "--keep-latest"]) == 0
    assert len(_objects(url, "m/")) == 2


def _plant_newer(team: Path, meta: dict[str, Any], signer: Any = None) -> Path:
    """Write a well-formed manifest claiming ``meta``'s function with other code, stored a minute later."""
    row = "ab" + "0" * 30 + "~" + "1" * 16
    later = time.time() + 60
    path = team / "m" / "ab" / row
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_header(row, None, Payload(pickle.dumps(0), []),
                                   {**meta, "code": "planted", "created": later}, later, None, 0.1, True, signer))
    return path


@pytest.mark.parametrize("planted", ["unsigned", "another secret"])
def test_keep_latest_on_the_remote_ignores_manifests_it_cannot_verify(tmp_path: Path, planted: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    team, url = _team(tmp_path)
    monkeypatch.setenv("NOTEBOOK_MEMO_SECRET", SECRET)
    configure(remote=url)
    f = _counted(lambda x: x + 1)
    f(1, Counter())
    genuine = _manifest(team)
    meta = decode_header(genuine.read_bytes())[0].meta()
    _plant_newer(team, meta, None if planted == "unsigned" else signer_for(b"another secret"))
    assert _cli.main(["prune", "--remote", url, "--keep-latest"]) == 0
    assert genuine.exists()


def test_keep_latest_on_the_remote_still_drops_old_code_with_a_secret(tmp_path: Path, shell: Any,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    _, url = _team(tmp_path)
    monkeypatch.setenv("NOTEBOOK_MEMO_SECRET", SECRET)
    configure(remote=url)
    _load_in(shell, tmp_path / "a.ipynb", 1)
    (old,) = _objects(url, "m/")
    _load_in(shell, tmp_path / "a.ipynb", 3)  # a new version of the same notebook's function
    assert len(_objects(url, "m/")) == 2
    assert _cli.main(["prune", "--remote", url, "--keep-latest"]) == 0
    (left,) = _objects(url, "m/")
    assert left != old


# -- one planted object on the remote is refused alone ------------------------------------------------------------

@pytest.mark.parametrize("planted", ["manifest", "lease", "blob"])
def test_a_folder_at_an_objects_name_is_refused_alone(tmp_path: Path, planted: str, counter: Counter,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    team, url = _team(tmp_path)
    monkeypatch.setenv("NOTEBOOK_MEMO_LEASE", "1")
    configure(remote=url, secret=SECRET)
    f = _counted(lambda x: time.sleep(0.02) or np.full(100_000, x))  # not quick: each miss takes a lease first
    _machine(tmp_path, "alice")
    f(1, counter)
    manifest = _manifest(team)
    if planted == "manifest":
        manifest.unlink()
        manifest.mkdir()
    elif planted == "lease":
        manifest.unlink()
        (team / "l" / manifest.name.partition("~")[0]).mkdir(parents=True)
    else:
        for blob in (team / "b").iterdir():
            blob.unlink()
            blob.mkdir()
    _machine(tmp_path, "bob")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert f(1, counter)[0] == 1
        assert f(2, counter)[0] == 2
    assert not [w for w in caught if "could not be used" in str(w.message)]
    assert counter.n == 3  # f(1) on each machine, f(2) once
    assert len([p for p in (team / "m").rglob("*") if p.is_file()]) == (1 if planted == "manifest" else 2)


# -- remote prune and clear when part of m/ cannot be read ---------------------------------------------------------

def _cli_without_root_powers(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run the command line in a process that reads files as their modes say (root drops its override)."""
    command = [sys.executable, "-m", "notebook_memo", *args]
    if os.geteuid() == 0:
        command = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.parametrize("command", [["prune", "--older-than", "365d"], ["clear"]])
@pytest.mark.parametrize("hidden", ["manifest unreadable", "folder unreadable", "folder a link"])
def test_remote_upkeep_keeps_the_blob_of_a_manifest_it_could_not_read(tmp_path: Path, hidden: str,
                                                                      command: list[str]) -> None:
    team, url = _team(tmp_path)
    configure(remote=url)
    f = _counted(np.ones)
    f(200_000, Counter())
    manifest = _manifest(team)
    (blob,) = (team / "b").iterdir()
    old = time.time() - 7200
    os.utime(blob, (old, old))  # past the grace period: only a manifest naming it keeps it
    if hidden == "manifest unreadable":
        manifest.chmod(0)
    elif hidden == "folder unreadable":
        manifest.parent.chmod(0)
    else:
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        manifest.parent.rename(elsewhere / manifest.parent.name)
        manifest.parent.symlink_to(elsewhere / manifest.parent.name)
    try:
        out = _cli_without_root_powers([command[0], "--remote", url, *command[1:]])
    finally:
        manifest.parent.chmod(0o700)
        manifest.chmod(0o600)
    assert out.returncode == 0, out.stderr
    assert blob.exists(), out.stdout + out.stderr
    assert "left as it is" in out.stderr


# -- local upkeep on a damaged index ------------------------------------------------------------------------------

_KERNEL = """
import json, sys, warnings
from notebook_memo import configure, memo
configure(cache_dir=sys.argv[1])

@memo
def f(x):
    return "v" * 300 + str(x)

out = {}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for step in sys.argv[2:]:
        if step == "fill":
            for i in range(3000):
                f(i)
        elif step == "clear":
            f.clear()
        elif step == "cache_info":
            out["entries"] = f.cache_info().currsize
        elif step == "clear_stale":
            f.clear_stale()
        out[step] = "ok"
    out["call"] = f(1)[-1]
out["warnings"] = [str(w.message) for w in caught]
print("RESULT" + json.dumps(out))
"""


def _kernel(tmp_path: Path, cache: Path, *steps: str) -> dict[str, Any]:
    script = tmp_path / "kernel.py"
    script.write_text(_KERNEL)
    out = subprocess.run([sys.executable, str(script), str(cache), *steps], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": str(len(steps))})
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout.rpartition("RESULT")[2]))


def _damaged_index(tmp_path: Path) -> Path:
    """Return a cache folder of 3,000 entries whose index has bytes overwritten in each page of its middle third."""
    cache = tmp_path / "damaged"
    _kernel(tmp_path, cache, "fill")
    db = cache / "cache.db"
    size = db.stat().st_size
    with open(db, "r+b") as handle:
        for offset in range(size // 3, size * 2 // 3, 4096):
            handle.seek(offset + 2000)
            handle.write(b"\xa5" * 64)
    return cache


def _set_aside(cache: Path) -> list[str]:
    return [p.name for p in cache.iterdir() if p.name.startswith("cache.db.damaged-") and p.suffix not in (
        ".db-wal", ".db-shm") and not p.name.endswith(("-wal", "-shm"))]


@pytest.mark.parametrize("steps", [["clear"], ["cache_info", "clear"], ["clear_stale", "cache_info"]])
def test_upkeep_calls_set_a_damaged_index_aside(tmp_path: Path, steps: list[str]) -> None:
    cache = _damaged_index(tmp_path)
    out = _kernel(tmp_path, cache, *steps)
    assert all(out[step] == "ok" for step in steps)
    assert out["call"] == "1"
    assert len(_set_aside(cache)) == 1
    assert sum("moved to" in w for w in out["warnings"]) == 1, out["warnings"]


@pytest.mark.parametrize("command", [["clear"], ["clear", "--function", "f"]])
def test_the_command_line_sets_a_damaged_index_aside(tmp_path: Path, command: list[str]) -> None:
    cache = _damaged_index(tmp_path)
    out = subprocess.run([sys.executable, "-m", "notebook_memo", *command, "--dir", str(cache)], capture_output=True,
                         text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert "Traceback" not in out.stderr, out.stderr
    assert out.returncode in (0, 1), out.stderr  # 1: storage trouble was met (the one line says what)
    assert len(_set_aside(cache)) == 1
    assert "moved to" in out.stderr


# -- what killed writers and dead lease holders leave on the remote --------------------------------------------

@pytest.mark.parametrize("command", [["clear"], ["prune", "--older-than", "1d"]])
def test_remote_upkeep_reclaims_what_killed_writers_left(tmp_path: Path, command: list[str]) -> None:
    team, url = _team(tmp_path)
    configure(remote=url)
    f = _counted(np.ones)
    f(200_000, Counter())
    objects = _tier(url).objects
    assert isinstance(objects, DirectoryObjects)
    blob = next((team / "b").iterdir()).name
    row = _manifest(team).name
    key = row.partition("~")[0]
    # What a writer killed between staging and linking leaves (its own names), and a dead holder's lease.
    staged = [objects._staged(f"b/{blob}", b"x" * 1000), objects._staged(f"m/{row[:2]}/{row}", b"x")]
    aside = team / "m" / row[:2] / f"{row}.{uuid.uuid4().hex}.old"
    aside.write_bytes(b"x")
    lease = team / "l" / key
    lease.parent.mkdir(exist_ok=True)
    lease.write_bytes(b'{"owner": "gone", "renewed": 0}')
    theirs = [team / "b" / "notes.tmp", team / "b" / f"{blob}.tmp", team / "l" / "README", team / "m" / "x.old"]
    for path in theirs:
        path.write_bytes(b"not ours")
    old = time.time() - 86400
    for path in [*map(Path, staged), aside, lease, *theirs]:
        os.utime(path, (old, old))
    young = Path(objects._staged(f"b/{blob}", b"y"))  # a publish under way
    young_lease = team / "l" / ("0" * 32)
    young_lease.write_bytes(b"{}")
    assert _cli.main([command[0], "--remote", url, *command[1:]]) == 0
    assert [p for p in [*map(Path, staged), aside, lease] if p.exists()] == []
    assert all(p.exists() for p in [*theirs, young, young_lease])
