"""The stores against names, schema objects, metadata and objects planted by someone who can write the cache.

Each test plants real files or rows; one that could hang runs in a subprocess with a generous timeout
(faulthandler prints where it stuck) and asserts that it finished.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, Counter

HANG_AFTER_S = 60  # far beyond what the script needs: reaching it means it hung


def _run(script: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh interpreter (a new kernel) that prints every stack and exits if it hangs."""
    program = tmp_path / "kernel.py"
    program.write_text("import faulthandler, sys\n"
                       f"faulthandler.dump_traceback_later({HANG_AFTER_S - 10}, exit=True)\n"
                       f"sys.path.insert(0, {str(ROOT)!r})\n" + textwrap.dedent(script))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTEBOOK_MEMO_")}
    return subprocess.run([sys.executable, str(program), *args], capture_output=True, text=True,
                          timeout=HANG_AFTER_S, env={**env, "PYTHONPATH": str(ROOT)})


# -- names planted under the index's name, before any marker exists ---------------------------------------

INDEX_NAME_PLANTED = """
import os, warnings
from notebook_memo import configure, memo
cache, kind = sys.argv[1], sys.argv[2]
os.makedirs(cache, mode=0o700)
target = os.path.join(os.path.dirname(cache), "elsewhere")
if kind == "fifo":
    os.mkfifo(os.path.join(cache, "cache.db"))
else:
    os.mkfifo(target)
    os.symlink(target, os.path.join(cache, "cache.db"))
configure(cache_dir=cache, secret="team secret")

@memo
def f(n):
    return n * 2

from notebook_memo import ConfigurationError
try:
    f(1)
except ConfigurationError as exc:
    print("REFUSED", "link or not a plain file" in str(exc))
index = os.path.join(cache, "cache.db")
print("LEFT", os.path.islink(index) if kind != "fifo" else not os.path.isfile(index) and os.path.exists(index),
      os.listdir(cache))
"""


@pytest.mark.parametrize("kind", ["fifo", "link_to_fifo"])
def test_a_fifo_or_link_at_the_index_without_a_marker_is_left_alone_unopened(kind: str, tmp_path: Path) -> None:
    """No marker: the folder is not known to be a cache folder (a link there may be a project's database), so
    nothing in it is opened, moved or made, and the call says so (as for a plain cache.db of someone else's)."""
    out = _run(INDEX_NAME_PLANTED, tmp_path, str(tmp_path / "cache"), kind)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "REFUSED True" in out.stdout
    assert "LEFT True ['cache.db']" in out.stdout


# -- SQL objects planted in the index never run in our connections ----------------------------------------

SPIN = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"
PLANTS = {
    "trigger_on_insert": ["CREATE VIEW spin AS " + SPIN,
                          "CREATE TRIGGER spin_on_write AFTER INSERT ON Cache BEGIN SELECT * FROM spin; END"],
    "trigger_under_our_name": ["DROP TRIGGER Settings_count_insert",
                               "CREATE TRIGGER Settings_count_insert AFTER INSERT ON Cache BEGIN " + SPIN + "; END"],
    "view_alone": ["CREATE VIEW spin AS " + SPIN],
}

PLANTED_KERNEL = """
import os, sqlite3, warnings
from notebook_memo import configure, memo
from notebook_memo.stores.local import open_stores
cache, step = sys.argv[1], sys.argv[2]
configure(cache_dir=cache, secret="team secret")

@memo
def f(n):
    return n * 2

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    if step == "first":
        f(0)
        for store in open_stores():
            store.settle()
    else:
        print("RESULT", f(1), f(0), f(1), any("moved to" in str(w.message) for w in caught), flush=True)
"""


@pytest.mark.parametrize("plant", sorted(PLANTS))
def test_triggers_and_views_planted_in_the_index_set_it_aside_unrun(plant: str, tmp_path: Path) -> None:
    import sqlite3

    cache = tmp_path / "cache"
    assert _run(PLANTED_KERNEL, tmp_path, str(cache), "first").returncode == 0
    db = sqlite3.connect(str(cache / "cache.db"), isolation_level=None)
    for statement in PLANTS[plant]:
        db.execute(statement)
    db.close()
    out = _run(PLANTED_KERNEL, tmp_path, str(cache), "next")  # a new kernel opens the index
    assert out.returncode == 0, out.stderr[-3000:]
    assert "RESULT 2 0 2 True" in out.stdout
    assert any(p.name.startswith("cache.db.damaged-") for p in cache.iterdir())


PLANTED_WHILE_OPEN = """
import sqlite3, warnings
from notebook_memo import configure, memo
from notebook_memo.stores.local import open_stores
cache = sys.argv[1]
configure(cache_dir=cache, secret="team secret")

@memo
def f(n):
    return n * 2

f(0)
for store in open_stores():
    store.settle()
db = sqlite3.connect(cache + "/cache.db", isolation_level=None)
for statement in {plants!r}:
    db.execute(statement)
db.close()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    values = f(1), f(0), f(1)
    for store in open_stores():
        store.settle()
    print("RESULT", *values, any("moved to" in str(w.message) for w in caught), flush=True)
"""


def test_a_trigger_planted_while_the_kernel_has_the_index_open_is_not_run_by_its_writes(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    out = _run(PLANTED_WHILE_OPEN.format(plants=PLANTS["trigger_on_insert"]), tmp_path, str(cache))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "RESULT 2 0 2 True" in out.stdout


def test_a_delete_trigger_planted_while_the_kernel_has_the_index_open_is_not_run_by_invalidate(
        tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    script = PLANTED_WHILE_OPEN.format(plants=["CREATE TRIGGER spin_on_delete AFTER DELETE ON Cache BEGIN "
                                               + SPIN + "; END"])
    script = script.replace("values = f(1), f(0), f(1)", "f.invalidate(0); values = f(1), f(0), f(1)")
    out = _run(script, tmp_path, str(cache))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "RESULT 2 0 2 True" in out.stdout


# Planted after the kernel opened the index, where a hit or a background step (not a write transaction) runs
# them: the table every read uses replaced by a view, and a trigger on the access-time update a hit queues.
PLANTED_UNDER_READS = {
    "view_in_place_of_the_table": ["ALTER TABLE Cache RENAME TO Kept",
                                   f"CREATE VIEW Cache AS SELECT Kept.* FROM Kept, ({SPIN})"],
    "trigger_on_the_access_time": ["CREATE TRIGGER spin_on_touch AFTER UPDATE ON Cache BEGIN " + SPIN + "; END"],
    "view_under_our_trigger_name": ["ALTER TABLE Cache RENAME TO Kept",
                                    f"CREATE VIEW Settings_count_insert AS {SPIN}",
                                    "CREATE VIEW Cache AS SELECT Kept.* FROM Kept, Settings_count_insert"],
}


@pytest.mark.parametrize("plant", sorted(PLANTED_UNDER_READS))
def test_a_view_or_trigger_planted_while_the_kernel_has_the_index_open_is_not_run_by_its_reads(
        plant: str, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    out = _run(PLANTED_WHILE_OPEN.format(plants=PLANTED_UNDER_READS[plant]), tmp_path, str(cache))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "RESULT 2 0 2 True" in out.stdout, out.stdout + out.stderr[-3000:]


# -- payload files are written only into real folders inside the cache -------------------------------------


def test_payloads_are_never_written_through_a_fan_out_folder_planted_as_a_link(tmp_path: Path) -> None:
    import warnings

    from notebook_memo import StorageWarning, configure, memo
    from notebook_memo.stores.local import close_stores

    cache, outside = tmp_path / "cache", tmp_path / "outside"
    outside.mkdir()
    configure(cache_dir=str(cache), secret="team secret")

    @memo
    def big(n: int) -> bytes:
        return b"x" * 100_000 + bytes([n])

    big(0)
    close_stores([str(cache)])  # a new kernel
    for i in range(256):
        if not (cache / f"{i:02x}").exists():
            (cache / f"{i:02x}").symlink_to(outside)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert [big(n)[-1] for n in (1, 2, 3, 1, 2, 3)] == [1, 2, 3, 1, 2, 3]
    assert [p for p in outside.rglob("*") if p.is_file()] == []
    messages = [str(w.message) for w in caught if issubclass(w.category, StorageWarning)]
    assert any("is a link or not a folder" in m for m in messages), messages
    assert not any("never makes" in m for m in messages), messages


# -- metadata of records this process cannot verify is checked before management calls use it ---------------

def _plant_foreign_record(cache: Path, meta_change: dict[str, object], created: float | None = None) -> None:
    """Add a record signed with another secret (anyone can make one) under f's tag, with planted metadata."""
    import sqlite3
    import time

    from notebook_memo import _serialize
    from tests.conftest import settled

    settled()
    db = sqlite3.connect(str(cache / "cache.db"), isolation_level=None)
    value, tag = db.execute("SELECT value, tag FROM Cache WHERE mode = 16").fetchone()
    meta = {**_serialize.decode_header(value)[0].meta(), **meta_change}
    other = _serialize.signer_for(b"another secret")
    row = "f" * 32 + "~" + other.keyid.hex()
    raw = _serialize.encode_header(row, None, _serialize.dumps(123), meta, time.time() if created is None else created,
                                   None, 0.1, True, other)
    db.execute("INSERT INTO Cache (key, raw, store_time, expire_time, access_time, access_count, tag, size, mode, "
               "filename, value) VALUES (?, 1, 0, NULL, 0, 0, ?, 0, 16, NULL, ?)", (row, tag, raw))
    db.close()


@pytest.mark.parametrize("planted", ["size", "deps", "args", "created", "duration"])
def test_planted_metadata_of_an_unverified_record_breaks_no_management_call(planted: str, tmp_path: Path) -> None:
    import math

    from notebook_memo import configure, memo

    cache = tmp_path / "cache"
    configure(cache_dir=str(cache), secret="team secret")

    @memo
    def f(n: int) -> int:
        return n * 2

    f(1)
    change: dict[str, object] = {"size": "lots", "deps": ["x"], "args": {"n": 5}, "duration": math.inf,
                                 "created": 0}
    _plant_foreign_record(cache, {planted: change[planted]} if planted != "created" else {},
                          created=1e300 if planted == "created" else None)
    assert f.cache_info().entries == 1  # the planted record is not counted as f's
    assert f.explain(5).hit is False
    assert f(1) == 2
    out = _info(cache)
    assert out.returncode == 0, out.stderr[-2000:]


def _info(cache: Path, *more: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m notebook_memo info`` on ``cache`` with the team's secret."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTEBOOK_MEMO_")}
    return subprocess.run([sys.executable, "-m", "notebook_memo", "info", "--dir", str(cache), *more],
                          capture_output=True, text=True, timeout=120,
                          env={**env, "PYTHONPATH": str(ROOT), "NOTEBOOK_MEMO_SECRET": "team secret"})


def test_a_plausible_record_of_another_secret_is_still_counted(tmp_path: Path) -> None:
    from notebook_memo import configure, memo

    cache = tmp_path / "cache"
    configure(cache_dir=str(cache), secret="team secret")

    @memo
    def f(n: int) -> int:
        return n * 2

    f(1)
    _plant_foreign_record(cache, {"deps": {"helper": ["code", "ff" * 16], "numpy": ["package", b"2.1".hex()]}})
    assert f.cache_info().entries == 2
    assert f.explain(5).hit is False


# -- numbers in the facts table (kept unverified, for info) are checked before they are shown ---------------

@pytest.mark.parametrize("column, value", [("created", 1e300), ("size", math.inf), ("size", -1e300),
                                           ("duration", 1e300)])
def test_an_implausible_number_in_the_facts_table_does_not_break_info(column: str, value: float,
                                                                      tmp_path: Path) -> None:
    import sqlite3

    from notebook_memo import configure, memo
    from tests.conftest import settled

    cache = tmp_path / "cache"
    configure(cache_dir=str(cache), secret="team secret")

    @memo
    def f(n: int) -> int:
        return n * 2

    for n in range(3):
        f(n)
    settled()
    assert _info(cache).returncode == 0
    db = sqlite3.connect(str(cache / "cache.db"), isolation_level=None)
    db.execute(f"UPDATE NbmRecordFacts SET {column} = ? WHERE id = (SELECT min(id) FROM NbmRecordFacts)", (value,))
    db.close()
    out = _info(cache)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "3 entries, 15 B" in out.stdout, out.stdout  # counted again from the records: 5 B each
    (row,) = [line.split("<locals>.f", 1)[1] for line in out.stdout.splitlines() if "<locals>.f" in line]
    assert "inf" not in row and "-" not in row.split()[2], out.stdout  # the size column
    assert row.split()[-1] == "0.0s", out.stdout  # the compute seconds


# -- remote upkeep commands against planted manifests ------------------------------------------------------

PLANTED_META: dict[str, dict[str, object]] = {
    "created": {}, "duration": {"duration": "slow"}, "code": {"code": ["a"]}, "fid": {"fid": ["a"]},
    "name": {"name": "\x1b]0;owned\x07\x1b[2J\x1b[31mfake\u202e"},
}


def _remote_cli(remote: Path, *command: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTEBOOK_MEMO_")}
    return subprocess.run([sys.executable, "-m", "notebook_memo", *command, "--remote", remote.as_uri()],
                          capture_output=True, text=True, timeout=120,
                          env={**env, "PYTHONPATH": str(ROOT), "NOTEBOOK_MEMO_SECRET": "team secret"})


@pytest.mark.parametrize("planted", sorted(PLANTED_META))
@pytest.mark.parametrize("command", [["info"], ["prune", "--keep-latest"]])
def test_a_planted_manifest_breaks_no_remote_upkeep_command(planted: str, command: list[str],
                                                            tmp_path: Path) -> None:
    import time

    from notebook_memo import _serialize, configure, memo
    from notebook_memo.stores.local import open_stores

    remote = tmp_path / "remote"
    remote.mkdir(mode=0o700)
    configure(cache_dir=str(tmp_path / "cache"), remote=remote.as_uri(), secret="team secret")

    @memo
    def f(n: int) -> int:
        return n * 2

    f(1)
    for store in open_stores():
        store.settle()
        store.wait_arrivals()
    other = _serialize.signer_for(b"not the team secret")
    row = "ab" + "0" * 30 + "~" + other.keyid.hex()
    meta = {"fid": "x", "name": "planted", "code": "c", "size": 1, "duration": 0.1, **PLANTED_META[planted]}
    raw = _serialize.encode_header(row, None, _serialize.dumps(1), meta, 1e300 if planted == "created" else time.time(),
                                   None, 0.1, True, other)
    (remote / "m" / "ab").mkdir(parents=True, exist_ok=True)
    (remote / "m" / "ab" / row).write_bytes(raw)
    out = _remote_cli(remote, *command)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "\x1b" not in out.stdout and "\u202e" not in out.stdout


def test_a_planted_name_is_printed_by_info_with_its_control_characters_escaped(tmp_path: Path) -> None:
    from notebook_memo import configure, memo

    cache = tmp_path / "cache"
    configure(cache_dir=str(cache), secret="team secret")

    @memo
    def f(n: int) -> int:
        return n * 2

    f(1)
    _plant_foreign_record(cache, {"fid": "e" * 32, "name": "\x1b]0;owned\x07\x1b[2Jfake"})
    out = _info(cache)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "\x1b" not in out.stdout and "\\x1b[2Jfake" in out.stdout, out.stdout


# -- a remote lease object is read only up to a small size --------------------------------------------------

def test_a_lease_object_larger_than_any_lease_is_refused_unread(tmp_path: Path) -> None:
    import tracemalloc

    from notebook_memo import configure
    from notebook_memo.stores.remote import lease_name, remote_tier

    remote = tmp_path / "remote"
    remote.mkdir(mode=0o700)
    configure(cache_dir=str(tmp_path / "cache"), remote=remote.as_uri(), secret="team secret")
    tier = remote_tier()
    assert tier is not None and tier.conditional_writes()
    key = "a" * 32
    planted = remote / lease_name(key)
    planted.parent.mkdir(parents=True, exist_ok=True)
    with open(planted, "wb") as f:
        f.truncate(32 << 20)  # sparse: 32 MiB that a whole read would allocate
    tracemalloc.start()
    try:
        tier.try_lease(key)
        tier.try_lease(key)  # and again, once the refused object was dealt with
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"{peak} bytes allocated taking the lease"
    assert tier.usable()  # one refused object does not set the remote aside


def test_the_readme_says_rollback_is_not_covered() -> None:
    readme = (ROOT / "README.md").read_text()
    uncovered = readme.split("What this does not cover:", 1)[1].split("\n\n", 1)[0]
    assert "rollback" in uncovered and "served again" in uncovered


def test_an_index_with_the_size_trigger_an_earlier_version_wrote_is_kept(tmp_path: Path, counter: Counter) -> None:
    import sqlite3

    from notebook_memo import memo
    from notebook_memo.stores.local import close_stores

    cache = tmp_path / "cache"

    def make() -> Any:
        @memo(cache_dir=str(cache))
        def double(n: int) -> int:
            counter()
            return n * 2
        return double

    assert make()(1) == 2
    close_stores([str(cache)])
    con = sqlite3.connect(cache / "cache.db")
    con.execute("DROP TRIGGER Settings_size_update")  # as the version at 26e2cd1 left it
    con.execute("CREATE TRIGGER Settings_size_update AFTER UPDATE ON Cache FOR EACH ROW WHEN NEW.size IS NOT "
                "OLD.size BEGIN UPDATE Settings SET value = value + NEW.size - OLD.size WHERE key = 'size'; END")
    con.commit()
    con.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert make()(1) == 2
    assert counter.n == 1


def test_a_remote_lease_this_process_may_not_open_is_left_where_it_is(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from notebook_memo.stores.remote import RemoteTier, lease_name

    remote = tmp_path / "remote"
    key = "k" * 64
    RemoteTier("file://" + str(remote), read_only=False).try_lease(key)  # a colleague's lease
    path = os.path.join(remote, *lease_name(key).split("/"))
    real_open = os.open

    def as_another_user(name: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if os.fspath(name) == path and flags & os.O_ACCMODE == os.O_RDONLY:  # made 0600 by its owner
            raise PermissionError(13, "Permission denied", name)
        return real_open(name, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", as_another_user)
    RemoteTier("file://" + str(remote), read_only=False).try_lease(key)
    assert os.path.exists(path)


INTERRUPTED_IN_THE_AUTHORIZER = """
import os, sqlite3, warnings
from notebook_memo import configure, memo
from notebook_memo.stores import local
cache = sys.argv[1]
configure(cache_dir=cache)

class Seen(list):
    def __memo_key__(self):
        return "seen"

runs = Seen()

@memo
def f(n):
    runs.append(n)
    return n * 2

f(0), f(1)
for store in local.open_stores():
    store.settle()
db = sqlite3.connect(os.path.join(cache, "cache.db"), isolation_level=None)
db.execute("CREATE TABLE another (value)")  # a change of schema: every statement is prepared again
db.close()
armed = [True]

def interrupt(frame, event, arg):  # Ctrl-C handled as the authorizer is entered (where Python checks for it)
    if event == "call" and frame.f_code is local._only_our_statements.__code__ and armed:
        armed.clear()
        raise KeyboardInterrupt
    return None

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    sys.settrace(interrupt)
    try:
        f(0)  # a hit: its read is prepared again, and SQLite takes the interrupt for a refusal
    except KeyboardInterrupt:
        pass
    sys.settrace(None)
    print("ASKED", not armed, "MOVED", any("moved to" in str(w.message) for w in caught))
print("KEPT", f(1), runs.count(1), sorted(p for p in os.listdir(cache) if "damaged" in p))
"""


def test_an_interrupt_landing_in_the_authorizer_does_not_set_the_index_aside(
        tmp_path: Path) -> None:
    """SQLite takes any exception of an authorizer as a refusal: Ctrl-C landing inside ours read as a planted
    object, and the whole index was set aside, every entry lost."""
    out = _run(INTERRUPTED_IN_THE_AUTHORIZER, tmp_path, str(tmp_path / "cache"))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "ASKED True MOVED False" in out.stdout and "KEPT 2 1 []" in out.stdout, out.stdout + out.stderr[-2000:]
