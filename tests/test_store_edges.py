"""Edges of the store and its upkeep: a ttl given later to memo.batch, declared folders holding pipes and
links, implausible rows in the index, unsigned records beside a secret, remote folders that are links or
hold huge planted files, and lease rows whose pid cannot be read."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest

from notebook_memo import memo
from tests.conftest import Seen, run_kernel


@pytest.fixture
def seen() -> Seen:
    return Seen()


def _later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Make every record's age, as the library judges it, ``seconds`` more than it is."""
    from notebook_memo import _serialize

    real = time.time
    monkeypatch.setattr(_serialize, "time", type("Later", (), {"time": staticmethod(lambda: real() + seconds)}))


def _doubles(seen: Seen) -> Any:
    def doubles(xs: list[int]) -> list[int]:
        seen.append(list(xs))
        return [x * 2 for x in xs]

    return doubles


# -- memo.batch and a ttl given later ---------------------------------------------------------


def test_batch_ttl_given_later_recomputes_items_stored_without_one(seen: Seen, monkeypatch: pytest.MonkeyPatch) -> None:
    body = _doubles(seen)
    assert memo.batch("xs", progress=False)(body)([1, 2, 3]) == [2, 4, 6]
    _later(monkeypatch, 3600)
    aged = memo.batch("xs", progress=False, ttl="10m")(body)
    assert not aged.is_cached([1, 2, 3])
    report = aged.explain([1, 2, 3])
    assert not report.hit and "ttl of 600 s" in " ".join(report.reasons)
    assert aged([1, 2, 3]) == [2, 4, 6]  # the items are an hour old
    assert seen == [[1, 2, 3], [1, 2, 3]]


def test_batch_ttl_shortened_later_recomputes_items_stored_with_a_longer_one(
        seen: Seen, monkeypatch: pytest.MonkeyPatch) -> None:
    body = _doubles(seen)
    assert memo.batch("xs", progress=False, ttl="1h")(body)([1, 2]) == [2, 4]
    _later(monkeypatch, 120)
    shorter = memo.batch("xs", progress=False, ttl="1m")(body)
    assert not shorter.is_cached([1, 2])
    assert shorter([1, 2]) == [2, 4]
    assert seen == [[1, 2], [1, 2]]


def test_batch_items_younger_than_a_ttl_given_later_are_served(seen: Seen, monkeypatch: pytest.MonkeyPatch) -> None:
    body = _doubles(seen)
    assert memo.batch("xs", progress=False)(body)([1, 2]) == [2, 4]
    _later(monkeypatch, 60)
    kept = memo.batch("xs", progress=False, ttl="10m")(body)
    assert kept.is_cached([1, 2])
    assert kept([1, 2]) == [2, 4]
    assert seen == [[1, 2]]


def test_explain_of_an_entry_older_than_a_ttl_given_later_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    def constant() -> int:
        return 1

    assert memo(constant)() == 1
    _later(monkeypatch, 3600)
    aged = memo(ttl="10m")(constant)
    report = aged.explain()
    assert not report.hit and not aged.is_cached()
    assert "ttl" in report.summary


def test_async_batch_ttl_given_later_recomputes(seen: Seen, monkeypatch: pytest.MonkeyPatch) -> None:
    async def doubles(xs: list[int]) -> list[int]:
        seen.append(list(xs))
        return [x * 2 for x in xs]

    assert asyncio.run(memo.batch("xs", progress=False)(doubles)([4])) == [8]
    _later(monkeypatch, 3600)
    assert asyncio.run(memo.batch("xs", progress=False, ttl="10m")(doubles)([4])) == [8]
    assert seen == [[4], [4]]


# -- declared folders holding what is not a regular file ---------------------------------------


def _declared_load(data: Path, how: str) -> str:
    """A cell defining ``load``, which reads data/a.csv and declares the folder ``data``, and calling it twice."""
    declared = f"@memo(files=[{str(data)!r}])" if how == "files=" else "@memo"
    inside = f"memo.depends_on_file({str(data)!r})" if how == "depends_on_file" else "pass"
    return f"""
from notebook_memo import memo
{declared}
def load():
    {inside}
    return open({str(data / "a.csv")!r}).read()
OUT["values"] = [load(), load()]
OUT["hits"], OUT["misses"] = load.cache_info()[:2]
"""


@pytest.mark.parametrize("how", ["files=", "depends_on_file"])
def test_a_declared_folder_holding_a_named_pipe_is_recorded_without_opening_it(cache_dir: Path, tmp_path: Path,
                                                                               how: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("1,2\n")
    os.mkfifo(data / "events.pipe")  # no writer: opening it for reading would wait for one
    out = run_kernel([_declared_load(data, how)], cache_dir)  # a hang ends in the kernel's timeout, failing
    assert out["values"] == ["1,2\n", "1,2\n"]
    assert (out["hits"], out["misses"]) == (1, 1)
    again = run_kernel([_declared_load(data, how)], cache_dir, seed=7)
    assert (again["hits"], again["misses"]) == (2, 0)


def test_a_pipe_replaced_by_a_regular_file_of_the_same_name_is_a_miss(cache_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("1,2\n")
    os.mkfifo(data / "events.pipe")
    assert run_kernel([_declared_load(data, "files=")], cache_dir)["misses"] == 1
    (data / "events.pipe").unlink()
    (data / "events.pipe").write_text("now data")  # same name: the folder's listing is unchanged
    again = run_kernel([_declared_load(data, "files=")], cache_dir, seed=7)
    assert (again["hits"], again["misses"]) == (1, 1)


def test_a_link_to_an_endless_device_in_a_declared_folder_is_not_read(cache_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("1,2\n")
    (data / "zeros").symlink_to("/dev/zero")  # reading it never ends
    out = run_kernel([_declared_load(data, "files=")], cache_dir)
    assert (out["hits"], out["misses"]) == (1, 1)


def test_a_declared_link_to_the_users_own_data_file_is_followed(cache_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "real.csv").write_text("1,2\n")
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").symlink_to(tmp_path / "real.csv")
    assert run_kernel([_declared_load(data, "files=")], cache_dir)["values"] == ["1,2\n", "1,2\n"]
    (tmp_path / "real.csv").write_text("3,4\n")  # through the link: the data changed
    again = run_kernel([_declared_load(data, "files=")], cache_dir, seed=7)
    assert again["values"] == ["3,4\n", "3,4\n"]
    assert (again["hits"], again["misses"]) == (1, 1)


def test_a_data_file_swapped_for_a_pipe_after_its_stat_is_not_opened_blocking(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import ROOT

    os.mkfifo(tmp_path / "pipe")
    # The digest of a path that turned into a pipe between its stat and its read (as a check on a hit may
    # find): refused at once, in a process of its own so that a wait fails the test rather than hanging it.
    code = ("import sys; from notebook_memo import _conditions\n"
            "try:\n    _conditions.file_digest(sys.argv[1])\nexcept OSError as exc:\n    print('refused', exc)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "pipe")], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.startswith("refused"), proc.stderr


# -- rows in the index whose size cannot be ours -----------------------------------------------

_PAYLOADS = """
import numpy as np
from notebook_memo import memo
@memo
def f(i):
    return np.full(20_000, i)  # 160 kB: a payload file of its own
for i in {items}:
    f(i)
OUT["hits"], OUT["misses"] = f.cache_info()[:2]
"""


def _plant_row(cache_dir: Path, size: int) -> None:
    """Insert a row that is no record of ours (a plain number, mode 1) with the given ``size`` column."""
    import sqlite3

    with sqlite3.connect(cache_dir / "cache.db") as db:
        db.execute("INSERT INTO Cache (key, raw, store_time, expire_time, access_time, access_count, tag, size, "
                   "mode, filename, value) VALUES ('planted', 1, 0, NULL, 0, 0, NULL, ?, 1, NULL, 0)", (size,))
    db.close()


@pytest.mark.parametrize("size", [2**50, 4_900_000], ids=["beyond the disk", "plausible"])
def test_a_planted_row_with_a_large_size_does_not_evict_every_entry(cache_dir: Path, size: int) -> None:
    limit = {"NOTEBOOK_MEMO_SIZE_LIMIT": "5MB"}
    assert run_kernel([_PAYLOADS.format(items=list(range(5)))], cache_dir, env=limit)["misses"] == 5
    _plant_row(cache_dir, size)
    # New results are written (each write may evict), then the first five are asked for again.
    out = run_kernel([_PAYLOADS.format(items=[10, 11, 0, 1, 2, 3, 4])], cache_dir, seed=5, env=limit)
    assert (out["hits"], out["misses"]) == (5, 2)


def test_a_planted_row_with_a_negative_size_does_not_turn_the_limit_off(cache_dir: Path) -> None:
    limit = {"NOTEBOOK_MEMO_SIZE_LIMIT": "2MB"}
    run_kernel([_PAYLOADS.format(items=[0])], cache_dir, env=limit)
    _plant_row(cache_dir, -10**12)
    run_kernel([_PAYLOADS.format(items=list(range(1, 41)))], cache_dir, seed=5, env=limit)  # 6.4 MB of results
    on_disk = sum(p.stat().st_size for p in cache_dir.rglob("*") if p.is_file())
    assert on_disk < 3_000_000


# -- unsigned records beside a secret -----------------------------------------------------------

_SECRET = {"NOTEBOOK_MEMO_SECRET": "team secret"}
_F = """
from notebook_memo import memo
@memo
def f(x):
    return x * 2
OUT["value"] = f(1)
OUT["info"] = list(f.cache_info()[:3])
"""


def _cli(*args: str, env: dict[str, str] | None = None) -> Any:
    import subprocess
    import sys

    from tests.conftest import ROOT

    return subprocess.run([sys.executable, "-m", "notebook_memo", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, timeout=120)


def _plant_unsigned(cache_dir: Path, row: str, **changes: Any) -> None:
    """Insert an unsigned record for the function the index holds, its metadata changed by ``changes``: anyone
    can make one (its check holds no secret)."""
    import sqlite3

    from notebook_memo import _serialize

    with sqlite3.connect(cache_dir / "cache.db") as db:
        tag, value = db.execute("SELECT tag, value FROM Cache WHERE mode = 16").fetchone()
        meta = {**_serialize.decode_header(value)[0].meta(), **changes}
        created = meta.get("created", time.time())
        raw = _serialize.encode_header(row, None, _serialize.dumps(0), meta, created, None, 0.1, True, None)
        db.execute("INSERT INTO Cache (key, raw, store_time, expire_time, access_time, access_count, tag, size, "
                   "mode, filename, value) VALUES (?, 1, 0, NULL, 0, 0, ?, 0, 16, NULL, ?)", (row, tag, raw))
    db.close()


def test_an_unsigned_record_with_wild_metadata_beside_a_secret_breaks_no_upkeep(cache_dir: Path) -> None:
    assert run_kernel([_F], cache_dir, env=_SECRET)["info"] == [0, 1, 1]
    _plant_unsigned(cache_dir, "ff" + "0" * 30, size="huge", name=["x"])
    assert run_kernel([_F], cache_dir, seed=5, env=_SECRET)["info"] == [1, 0, 1]  # the planted one is not f's
    info = _cli("info", "--dir", str(cache_dir), env=_SECRET)
    assert info.returncode == 0, info.stderr
    cleared = _cli("clear", "--function", "f", "--dir", str(cache_dir), env=_SECRET)
    assert cleared.returncode == 0 and "removed 1 entries" in cleared.stdout, cleared.stderr


def test_prune_keep_latest_keeps_the_newest_verified_version_whatever_an_unsigned_record_claims(
        cache_dir: Path) -> None:
    run_kernel([_F], cache_dir, env=_SECRET)
    # Claims to be f's newest code version, stored in an hour: keeping only "the latest" would delete f's entry.
    _plant_unsigned(cache_dir, "ee" + "0" * 30, code="ab" * 16, created=time.time() + 3600)
    pruned = _cli("prune", "--keep-latest", "--dir", str(cache_dir), env=_SECRET)
    assert pruned.returncode == 0 and "removed 0 entries" in pruned.stdout, pruned.stderr
    assert run_kernel([_F], cache_dir, seed=5, env=_SECRET)["info"][:2] == [1, 0]  # f's own entry is still there


_DRAW = """
import numpy as np
from notebook_memo import memo
@memo
def draw():
    return float(np.random.random())
np.random.seed(0)
OUT["value"] = draw()
OUT["info"] = list(draw.cache_info()[:2])
"""


def test_invalidate_leaves_another_secrets_random_state_entries_alone(cache_dir: Path) -> None:
    one, two = {"NOTEBOOK_MEMO_SECRET": "one"}, {"NOTEBOOK_MEMO_SECRET": "two"}
    assert run_kernel([_DRAW], cache_dir, env=one)["info"] == [0, 1]
    assert run_kernel([_DRAW, "OUT['gone'] = draw.invalidate()"], cache_dir, seed=5, env=two)["gone"]
    assert run_kernel([_DRAW], cache_dir, seed=6, env=one)["info"] == [1, 0]  # its entry for seed 0 is still there


# -- remote upkeep against planted files and links ------------------------------------------------


def _published(tmp_path: Path) -> tuple[Path, str]:
    """A shared-directory remote holding one published entry with a blob, and its URL."""
    import numpy as np

    from notebook_memo import configure

    remote = tmp_path / "team"
    configure(remote=remote.as_uri())

    @memo
    def ones(n: int) -> Any:
        return np.ones(n)

    ones(100_000)  # 800 kB: a blob and a manifest
    configure(remote=None)
    return remote, remote.as_uri()


def test_remote_upkeep_refuses_a_huge_file_planted_under_a_manifest_name(tmp_path: Path) -> None:
    import resource
    import subprocess
    import sys

    from tests.conftest import ROOT

    remote = tmp_path / "team"
    (remote / "m" / "ab").mkdir(parents=True)
    with open(remote / "m" / "ab" / ("ab" + "0" * 30), "wb") as planted:
        planted.truncate(3 << 30)  # 3 GiB, sparse: read whole, it would take that much memory

    def limited() -> None:  # a process that reads it whole fails, rather than taking 3 GiB of this machine's memory
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    def cli(*args: str) -> Any:
        return subprocess.run([sys.executable, "-m", "notebook_memo", *args, "--remote", remote.as_uri()],
                              capture_output=True, text=True, timeout=120, preexec_fn=limited,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})

    info = cli("info")
    assert info.returncode == 0 and "(damaged)" in info.stdout, info.stderr
    pruned = cli("prune", "--older-than", "1d")  # a damaged manifest goes, whatever its age
    assert pruned.returncode == 0 and "removed 1 entries" in pruned.stdout, pruned.stderr
    assert not (remote / "m" / "ab" / ("ab" + "0" * 30)).exists()


@pytest.mark.parametrize("folder", ["m", "b"])
def test_remote_upkeep_lists_nothing_through_a_linked_folder_and_deletes_nothing_there(
        tmp_path: Path, folder: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from notebook_memo import _cli
    from notebook_memo.stores import _remote_admin

    remote, url = _published(tmp_path)
    outside = tmp_path / "outside"
    (outside / "cd").mkdir(parents=True)
    precious = [outside / "cd" / ("cd" + "1" * 30), outside / ("e" * 32)]  # named as a manifest, as a blob
    for path in precious:
        path.write_bytes(b"precious")
        os.utime(path, (time.time() - 86400 * 30,) * 2)
    (remote / folder).rename(tmp_path / "aside")
    (remote / folder).symlink_to(outside)
    monkeypatch.setattr(_remote_admin, "BLOB_GRACE", 0.0)
    assert _cli.main(["info", "--remote", url]) == 0
    assert f"{remote / folder} is not a folder (a link?)" in capsys.readouterr().err  # said, not silent
    assert _cli.main(["prune", "--older-than", "1s", "--remote", url]) == 0
    assert _cli.main(["clear", "--remote", url]) == 0
    capsys.readouterr()
    assert all(path.read_bytes() == b"precious" for path in precious)


def test_remote_upkeep_skips_a_manifest_whose_folder_became_a_link_after_the_listing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from notebook_memo import _cli
    from notebook_memo.stores import _objects

    remote, url = _published(tmp_path)
    outside = tmp_path / "outside"
    listed = _objects.DirectoryObjects.list

    def then_linked(self: Any, prefix: str) -> Any:
        # The listing is read; then someone swaps each two-letter folder of m/ for a link, before any is read.
        names = list(listed(self, prefix))
        if prefix == "m/":
            for name, _, _ in names:
                folder = remote / os.path.dirname(name)
                if not folder.is_symlink():
                    folder.rename(outside)
                    folder.symlink_to(outside)
        return iter(names)

    monkeypatch.setattr(_objects.DirectoryObjects, "list", then_linked)
    assert _cli.main(["info", "--remote", url]) == 0
    assert _cli.main(["clear", "--remote", url]) == 0
    capsys.readouterr()
    assert len(list(outside.iterdir())) == 1  # the manifest, moved out with its folder, is still there


# -- lease rows whose pid cannot be read --------------------------------------------------------

_LEASED = """
import time
from notebook_memo import memo
@memo
def f(x):
    time.sleep(0.05)
    return x * 2
@memo.batch("xs", progress=False)
def g(xs):
    return [x * 3 for x in xs]
OUT["values"] = [f(21), g([7])]
"""


def _plant_leases(cache_dir: Path, pid: str) -> list[str]:
    """Replace each stored record by a lease row held by ``pid`` of this host; return the lease rows."""
    import socket
    import sqlite3

    with sqlite3.connect(cache_dir / "cache.db") as db:
        keys = [key for (key,) in db.execute("SELECT key FROM Cache WHERE mode = 16")]
        for key in keys:
            db.execute("DELETE FROM Cache WHERE key = ?", (key,))
            db.execute("INSERT INTO Cache (key, raw, store_time, expire_time, access_time, access_count, tag, size, "
                       "mode, filename, value) VALUES (?, 1, 0, NULL, 0, 0, NULL, 0, 1, NULL, ?)",
                       ("lock:" + key, f"{pid}@{socket.gethostname()}/0123#0"))
    db.close()
    return ["lock:" + key for key in keys]


@pytest.mark.parametrize("pid", ["\u00b2", "99999999999999999999", "\u0661\u0662"],
                         ids=["superscript", "huge", "arabic"])
def test_a_lease_whose_pid_cannot_be_read_is_waited_for_then_taken_over(cache_dir: Path, pid: str) -> None:
    import sqlite3

    lease = {"NOTEBOOK_MEMO_LEASE": "0.5"}
    assert run_kernel([_LEASED], cache_dir, env=lease)["values"] == [42, [21]]
    planted = _plant_leases(cache_dir, pid)
    assert len(planted) == 2  # f's key and g's item
    assert run_kernel([_LEASED], cache_dir, seed=5, env=lease)["values"] == [42, [21]]
    # Each call took the lease over (and gave it back once done), rather than computing beside a lease it
    # could not read, as if there were no other process.
    with sqlite3.connect(cache_dir / "cache.db") as db:
        left = [key for (key,) in db.execute("SELECT key FROM Cache WHERE key LIKE 'lock:%'")]
    db.close()
    assert left == []
