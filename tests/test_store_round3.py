"""The local store's third round of hostile and moved folders.

- A ``cache.db-wal`` (or ``-shm``) another user planted while the folder was shared is never replayed
  into the index: not after ``chmod go-w``, not by a kernel that ran while the folder was refused, and
  with a secret its frames fail verification.
- A TTL past any time stamp (``float('inf')``, ``1e12``) means no expiry, and remote upkeep keeps a
  manifest it verifies whatever its numbers: neither ``info`` calls it damaged nor ``prune`` deletes it.
- A ``cache_dir`` that is a link pointed elsewhere while the kernel runs (the cache moved to another
  disk): payload files are written, read and removed beside the index the store has open.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
import warnings
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from notebook_memo import _cli, _config, configure, memo
from notebook_memo._config import parse_ttl
from notebook_memo._serialize import Payload, encode_header
from notebook_memo.stores import _remote_admin
from notebook_memo.stores import remote as _remote
from tests.conftest import ROOT, Counter, run_kernel, settled
from tests.test_remote import _objects, dir_remote  # noqa: F401 (fixture)

_OTHER_UID = 1234
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user (chown) needs root; "
                                                             "this suite runs as root in CI")

_VICTIM = """
from notebook_memo import memo
@memo
def f(x):
    return x * 2
OUT['v'] = f(1)
"""

# Another user who could write the shared folder for a while: builds a log of frames over a copy of the
# index (readable, 0644) that puts a pickle running code under every record's row, and plants it beside
# the index. It ends with os._exit, so its own store neither checkpoints nor removes that log first.
_ATTACKER = """
import os, pickle, shutil, sqlite3, sys, time
folder, scratch, trap = sys.argv[1:4]
shutil.copyfile(os.path.join(folder, "cache.db"), os.path.join(scratch, "cache.db"))
with open(os.path.join(scratch, "NOTEBOOK_MEMO_CACHE"), "w") as fh:
    fh.write("x\\n")
with sqlite3.connect(os.path.join(scratch, "cache.db")) as db:
    rows = [row for (row,) in db.execute("SELECT key FROM Cache WHERE mode = 16")]
from notebook_memo.stores.local import get_store
from notebook_memo._serialize import Payload
from notebook_memo._config import INLINE_LIMIT


class Trap:
    def __reduce__(self):
        return (open, (trap, "w"))


store = get_store(scratch, 1 << 30)
for row in rows:  # under the row's own name, signed or not: the attacker has no secret
    store.put(row, Payload(pickle.dumps(Trap(), protocol=5), []), {"name": "f", "fid": "x"}, time.time(), None, 0.0,
              None, "x", INLINE_LIMIT, signer=None)
shutil.copyfile(os.path.join(scratch, "cache.db-wal"), os.path.join(folder, "cache.db-wal"))
os.chmod(os.path.join(folder, "cache.db-wal"), 0o666)
print(len(rows))
os._exit(0)
"""


def _plant_log(folder: Path, tmp_path: Path) -> Path:
    """Plant another user's ``cache.db-wal`` in ``folder``; return the file its pickle would create."""
    scratch, trap = tmp_path / "attacker", tmp_path / "pwned"
    scratch.mkdir(mode=0o700)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(_config.ENV_SECRET, None)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(_ATTACKER), str(folder), str(scratch), str(trap)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0 and int(proc.stdout.split()[-1]) >= 1, proc.stderr
    os.chown(folder / "cache.db-wal", _OTHER_UID, _OTHER_UID)
    return trap


def _value_and_warnings(folder: Path, secret: str | None = None) -> tuple[int, list[str]]:
    out = run_kernel([_VICTIM], folder, env={_config.ENV_SECRET: secret} if secret else None)
    return out["v"], out["_warnings"]


@needs_root
def test_a_log_planted_while_the_folder_was_shared_is_not_replayed_after_chmod(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    assert _value_and_warnings(folder) == (2, [])
    folder.chmod(0o777)
    trap = _plant_log(folder, tmp_path)
    folder.chmod(0o755)  # what the warning says to do
    value, caught = _value_and_warnings(folder)
    assert value == 2 and not trap.exists()
    assert any("cache.db-wal" in w and "owned by user 1234" in w for w in caught), caught
    # Set aside, not replayed: the user's own entry still hits, quietly, in the next kernel.
    assert not (folder / "cache.db-wal").exists() or (folder / "cache.db-wal").stat().st_uid == os.geteuid()
    assert _value_and_warnings(folder) == (2, []) and not trap.exists()


@needs_root
def test_a_kernel_in_a_refused_folder_opens_nothing_so_a_planted_log_is_never_checkpointed(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    assert _value_and_warnings(folder) == (2, [])
    folder.chmod(0o777)
    trap = _plant_log(folder, tmp_path)
    index = (folder / "cache.db").read_bytes()
    value, caught = _value_and_warnings(folder)  # refused, as documented: computes
    assert value == 2 and not trap.exists() and any("chmod go-w" in w for w in caught), caught
    assert (folder / "cache.db").read_bytes() == index  # no recovery, no checkpoint into the user's index
    assert (folder / "cache.db-wal").stat().st_uid == _OTHER_UID
    folder.chmod(0o755)
    value, _ = _value_and_warnings(folder)
    assert value == 2 and not trap.exists()


@needs_root
def test_a_planted_log_in_a_team_folder_with_a_secret_fails_verification(tmp_path: Path) -> None:
    folder = tmp_path / "team"
    assert _value_and_warnings(folder, "team secret") == (2, [])
    folder.chmod(0o777)  # a team folder: a secret makes it usable, as the README says
    assert _value_and_warnings(folder, "team secret") == (2, [])
    trap = _plant_log(folder, tmp_path)
    # The log is another member's in a team folder: replayed, and the forged record fails verification.
    value, _ = _value_and_warnings(folder, "team secret")
    assert value == 2 and not trap.exists()
    assert _value_and_warnings(folder, "team secret") == (2, []) and not trap.exists()  # stored again, and hit
    folder.chmod(0o755)
    assert _value_and_warnings(folder)[0] == 2 and not trap.exists()


@needs_root
@pytest.mark.parametrize("suffix", ["-wal", "-shm"])
def test_an_index_file_of_another_user_in_a_private_folder_is_set_aside_unread(tmp_path: Path,
                                                                                 suffix: str) -> None:
    folder = tmp_path / "private"
    assert _value_and_warnings(folder) == (2, [])
    planted = folder / f"cache.db{suffix}"
    planted.write_bytes(b"\0" * 32768)
    os.chown(planted, _OTHER_UID, _OTHER_UID)
    value, caught = _value_and_warnings(folder)
    assert value == 2 and any(f"cache.db{suffix}" in w for w in caught), caught
    assert not planted.exists() or planted.stat().st_uid == os.geteuid()
    assert list(folder.glob(f"cache.db.untrusted-*{suffix}"))  # moved aside, not deleted: it may be evidence
    assert _value_and_warnings(folder) == (2, [])


# A hot rollback journal: SQLite rolls it back into the index before it looks at the WAL, so its pages (the
# attacker's copy of the index, with a pickle running code under every row) would become the index's.
_HOT_JOURNAL = """
import os, sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
db.execute("PRAGMA journal_mode=DELETE")
db.execute("PRAGMA cache_size=1")
db.execute("BEGIN IMMEDIATE")
for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
    try:
        db.execute(f"DELETE FROM {table}")
    except sqlite3.Error:
        pass
db.execute("CREATE TABLE pad(x)")
for _ in range(200):
    db.execute("INSERT INTO pad VALUES (randomblob(4000))")
os._exit(0)  # the transaction spilled to the file and was never ended: its journal is hot
"""


@needs_root
def test_a_rollback_journal_planted_while_the_folder_was_shared_is_not_rolled_back_into_the_index(
        tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    assert _value_and_warnings(folder) == (2, [])
    folder.chmod(0o777)
    trap = _plant_log(folder, tmp_path)  # the attacker's index, in the scratch folder, holds the pickle
    (folder / "cache.db-wal").unlink()
    work = tmp_path / "attacker" / "cache.db"
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(_HOT_JOURNAL), str(work)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    journal = folder / "cache.db-journal"
    journal.write_bytes((tmp_path / "attacker" / "cache.db-journal").read_bytes())
    os.chown(journal, _OTHER_UID, _OTHER_UID)
    folder.chmod(0o755)  # mended, as the warning says
    value, caught = _value_and_warnings(folder)
    assert value == 2 and not trap.exists()
    assert any("cache.db-journal" in w for w in caught), caught
    assert list(folder.glob("cache.db.untrusted-*-journal"))  # moved aside, unread
    assert _value_and_warnings(folder) == (2, []) and not trap.exists()


def test_a_log_others_can_write_is_set_aside(tmp_path: Path) -> None:
    folder = tmp_path / "private"
    assert _value_and_warnings(folder) == (2, [])
    log = folder / "cache.db-wal"
    log.write_bytes(b"")
    log.chmod(0o666)
    value, caught = _value_and_warnings(folder)
    assert value == 2 and any("cache.db-wal" in w for w in caught), caught
    assert not log.exists() or not log.stat().st_mode & 0o022


# -- a TTL past any time stamp: never expires, and upkeep keeps it -----------------------------------


@pytest.mark.parametrize("ttl", [float("inf"), 1e12, timedelta(days=200_000), "1000000 days"])
def test_a_ttl_past_any_time_stamp_means_no_expiry(ttl: object) -> None:
    assert parse_ttl(ttl) is None  # type: ignore[arg-type]


def test_a_ttl_within_the_time_stamps_is_kept() -> None:
    assert parse_ttl(2.0**33) == 2.0**33 and parse_ttl(timedelta(days=365)) == 365 * 86400.0


@pytest.mark.parametrize("ttl", [float("inf"), 1e12, timedelta(days=200_000)])
def test_remote_upkeep_keeps_an_entry_whose_ttl_never_ends(dir_remote: str, counter: Counter, ttl: object,  # noqa: F811
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    configure(remote=dir_remote)

    @memo(ttl=ttl)  # type: ignore[call-overload]
    def big(n: int, counter: Counter) -> np.ndarray:
        counter()
        return np.arange(n)

    big(300_000, counter)
    settled()
    before = _objects(dir_remote)
    assert _cli.main(["info", "--remote", dir_remote]) == 0
    assert "damaged" not in capsys.readouterr().out
    assert _cli.main(["prune", "--remote", dir_remote, "--max-size", "1TB"]) == 0
    assert _objects(dir_remote) == before
    assert big(300_000, counter)[-1] == 299_999 and counter.n == 1


def test_remote_upkeep_keeps_a_verified_manifest_whose_expiry_is_far_away(dir_remote: str) -> None:  # noqa: F811
    """Written by an earlier version, which kept ttl=1e12 as it was: our own, verified, never judged planted."""
    configure(remote=dir_remote)

    @memo
    def f(x: int) -> int:
        return x * 2

    f(1)
    settled()
    tier = _remote.remote_tier(dir_remote, read_only=False)
    assert tier is not None
    [entry] = _remote_admin.entries(tier)
    assert entry.header is not None
    meta = {**entry.header.meta(), "ttl": 1e12}
    [name] = _objects(dir_remote, "m/")
    row = entry.header.key
    tier.objects.put(name, encode_header(row, None, Payload(pickle.dumps(2, protocol=5), []), meta,
                                         entry.header.created, entry.header.created + 1e12, 0.0, True, None))
    assert [e.header is not None for e in _remote_admin.entries(tier)] == [True]
    assert _cli.main(["prune", "--remote", dir_remote, "--max-size", "1TB"]) == 0
    assert _objects(dir_remote, "m/") == [name]


@pytest.mark.parametrize("ttl", [float("inf"), 1e12])
def test_a_local_entry_whose_ttl_never_ends_is_listed_and_kept(ttl: float, counter: Counter,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    @memo(ttl=ttl)
    def f(x: int, counter: Counter) -> int:
        counter()
        return x * 2

    f(1, counter)
    settled()
    assert _cli.main(["prune", "--max-size", "1TB"]) == 0
    assert _cli.main(["info"]) == 0
    assert "1 entries" in capsys.readouterr().out
    assert f(1, counter) == 2 and counter.n == 1


def test_a_batch_whose_ttl_never_ends_is_stored_and_hit(counter: Counter) -> None:
    @memo.batch("xs", ttl=float("inf"))
    def double(xs: list[int], counter: Counter) -> list[int]:
        counter()
        return [x * 2 for x in xs]

    assert double([1, 2], counter) == [2, 4]
    assert double([1, 2, 3], counter) == [2, 4, 6]
    assert counter.n == 2  # the second call computed only the item it had not seen


# -- a cache_dir that is a link, pointed elsewhere while the kernel runs ------------------------------


def _payloads(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.val"))


def _relink(link: Path, target: Path, store: object) -> None:
    """``ln -sfn target link``, then the store's background check (it notices the index changed)."""
    link.unlink()
    link.symlink_to(target)
    store.revalidate()  # type: ignore[attr-defined]


def test_a_cache_link_pointed_elsewhere_reads_and_writes_payloads_beside_its_index(tmp_path: Path,
                                                                                   counter: Counter) -> None:
    a, b, link = tmp_path / "A", tmp_path / "B", tmp_path / "cache"
    a.mkdir()
    b.mkdir()
    link.symlink_to(a)
    configure(cache_dir=str(link))

    @memo
    def big(n: int, counter: Counter) -> np.ndarray:
        counter()
        return np.arange(n)

    big(100_000, counter)
    big(100_000, counter)  # a hit: its payload file read in A
    _relink(link, b, big._store())  # type: ignore[attr-defined]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(4):
            assert big(200_000, counter)[-1] == 199_999
    assert counter.n == 2 and [str(w.message) for w in caught] == []
    assert len(_payloads(a)) == 1 and len(_payloads(b)) == 1
    _relink(link, a, big._store())  # type: ignore[attr-defined]  # and back: A's entry is there, A's file read
    assert big(100_000, counter)[-1] == 99_999 and counter.n == 2


def test_clearing_through_a_relinked_cache_dir_removes_the_files_of_the_index_it_uses(tmp_path: Path,
                                                                                      counter: Counter) -> None:
    a, b, link = tmp_path / "A", tmp_path / "B", tmp_path / "cache"
    a.mkdir()
    b.mkdir()
    link.symlink_to(a)
    configure(cache_dir=str(link))

    @memo
    def big(n: int, counter: Counter) -> np.ndarray:
        counter()
        return np.arange(n)

    big(100_000, counter)
    big(100_000, counter)
    _relink(link, b, big._store())  # type: ignore[attr-defined]
    big(200_000, counter)
    big.cache_clear()  # type: ignore[attr-defined]
    assert _payloads(b) == [] and len(_payloads(a)) == 1  # A's entry is A's index's: not this one's to delete


def test_a_thread_first_connecting_after_the_cache_link_moved_creates_no_index_in_the_new_folder(
        tmp_path: Path, counter: Counter) -> None:
    # A thread whose first use of the index comes after the link was pointed elsewhere, before the store has
    # noticed: its connection must not create an empty cache.db there (SQLite creates a missing file), which would
    # make the folder look like someone else's database once the store opens it.
    import threading

    a, b, link = tmp_path / "A", tmp_path / "B", tmp_path / "cache"
    a.mkdir()
    b.mkdir()
    link.symlink_to(a)
    configure(cache_dir=str(link))

    @memo
    def big(n: int, counter: Counter) -> np.ndarray:
        counter()
        return np.arange(n)

    big(100_000, counter)
    got: list[object] = []

    def worker() -> None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got.append(big(300_000, counter)[-1])
        got.append([str(w.message) for w in caught])

    from notebook_memo.stores import local

    big._store().stop_background(wait=60)  # type: ignore[attr-defined]  # no check of its under way
    with pytest.MonkeyPatch.context() as unnoticed:  # the store's checks held off: it has not seen the move yet
        unnoticed.setattr(local.Store, "revalidate", lambda self: None)  # the background thread's
        unnoticed.setattr(local, "_REVALIDATE", float("inf"))
        unnoticed.setattr(local, "_BACKGROUND_CHECK", float("inf"))
        link.unlink()
        link.symlink_to(b)
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        # Computed, and stored beside the index the store opened (A's) until its check sees the link moved.
        assert got == [299_999, []] and not (b / "cache.db").exists()
        assert big(300_000, counter)[-1] == 299_999 and counter.n == 2  # a hit, from A
        assert _payloads(b) == [] and len(_payloads(a)) == 2
    big._store().revalidate()  # type: ignore[attr-defined]
    assert big(300_000, counter)[-1] == 299_999 and counter.n == 3  # B's first entry
    assert (b / "NOTEBOOK_MEMO_CACHE").exists() and len(_payloads(b)) == 1


def test_a_scan_connection_opened_as_the_cache_link_moves_creates_no_index_in_the_new_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The connection for scans and the background thread's writes looks at the index's file, then connects: the
    # link pointed elsewhere in between must not leave an empty cache.db (no marker) in the folder it names now.
    # It opens the index in the folder the store opened, which the link named then.
    import threading

    from notebook_memo.stores import local

    a, b, link = tmp_path / "A", tmp_path / "B", tmp_path / "cache"
    a.mkdir()
    b.mkdir()
    link.symlink_to(a)
    configure(cache_dir=str(link))

    @memo
    def one(x: int) -> int:
        return x

    assert one(1) == 1
    looked = local._refuse_opening  # runs between the look at the file and the connection

    def moved_meanwhile(directory: str) -> None:
        looked(directory)
        link.unlink()
        link.symlink_to(b)

    monkeypatch.setattr(local, "_refuse_opening", moved_meanwhile)
    failed: list[BaseException] = []

    def scan() -> None:
        try:
            local.connection(str(link))
        except (OSError, local.sqlite3.Error) as exc:
            failed.append(exc)

    thread = threading.Thread(target=scan)  # a thread with no connection of its own yet
    thread.start()
    thread.join()
    assert not (b / "cache.db").exists() and failed == []


def _super_journal(names: Path) -> bytes:
    """A rollback journal of a few bytes whose trailer names ``names`` as its super-journal: SQLite, finding it hot,
    deletes that file once it has rolled the journal back, if no child journal points back at it."""
    name = str(names).encode()
    return (b"\x01" + (0x40000000 // 4096 + 1).to_bytes(4, "big") + name + len(name).to_bytes(4, "big")
            + sum(name).to_bytes(4, "big") + bytes.fromhex("d9d505f920a163d7"))


@needs_root
@pytest.mark.parametrize("how", ["a call", "the command line's info"])
def test_a_journal_planted_in_a_team_folder_never_makes_sqlite_delete_a_file(tmp_path: Path, how: str) -> None:
    folder, thesis = tmp_path / "team", tmp_path / "thesis.tex"
    thesis.write_text("my thesis\n")
    assert _value_and_warnings(folder, "team secret") == (2, [])
    folder.chmod(0o777)  # a team folder: a secret makes it usable
    journal = folder / "cache.db-journal"
    journal.write_bytes(_super_journal(thesis))
    os.chown(journal, _OTHER_UID, _OTHER_UID)
    journal.chmod(0o666)
    if how == "a call":
        value, caught = _value_and_warnings(folder, "team secret")
        assert value == 2 and any("cache.db-journal" in w for w in caught), caught
    else:
        env = {**os.environ, "PYTHONPATH": str(ROOT), _config.ENV_SECRET: "team secret"}
        subprocess.run([sys.executable, "-m", "notebook_memo", "info", "--dir", str(folder)], env=env,
                       capture_output=True, text=True, timeout=120)
    assert thesis.read_text() == "my thesis\n"
    assert list(folder.glob("cache.db.untrusted-*-journal"))  # moved aside, unread
    assert _value_and_warnings(folder, "team secret")[0] == 2 and thesis.exists()


def test_a_journal_of_ours_that_names_a_super_journal_is_set_aside_too(tmp_path: Path) -> None:
    """Our index is in WAL mode and runs no transaction over several databases: a journal naming a
    super-journal is never one of ours, whoever owns it."""
    folder, notes = tmp_path / "private", tmp_path / "notes.txt"
    notes.write_text("notes\n")
    assert _value_and_warnings(folder) == (2, [])
    (folder / "cache.db-journal").write_bytes(_super_journal(notes))
    value, caught = _value_and_warnings(folder)
    assert value == 2 and notes.exists() and any("cache.db-journal" in w for w in caught), caught


_HOLD_DIRECTORY_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
fcntl.flock(fd, fcntl.LOCK_EX)  # anyone who can read the folder can lock it
print("held", flush=True)
time.sleep(600)
"""


def test_a_lock_held_on_the_cache_folder_by_another_process_does_not_hang_a_kernel(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    assert _value_and_warnings(folder) == (2, [])
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_DIRECTORY_LOCK, str(folder)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        # The kernel waits for the lock a while (as for another kernel moving a damaged index's files), then
        # opens the index anyway; the wait is shortened here, and run_kernel's own bound (120 s) fails a hang.
        out = run_kernel(["import notebook_memo.stores.local as local; local._OPEN_WAIT = 1.0", _VICTIM], folder)
        assert out["v"] == 2
        assert any("held by another process for 1 s" in w for w in out["_warnings"]), out["_warnings"]
    finally:
        holder.kill()
        holder.wait()
