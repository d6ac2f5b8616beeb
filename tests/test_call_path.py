"""The per-call path made lean (issue 15): what it skips must never change what it answers.

A miss of a function known to be quick runs without a lease but takes one if the run turns out
slow; a hit is one SELECT, or none for a row read before while the index's data_version says no
other connection committed since; the random-state check reads generator states in place. Each shortcut
is pinned here by the wrong answer (or the duplicate work) it would give if it were unsound.
"""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from notebook_memo import _random_state, memo
from tests.conftest import Counter, settled, worker_env, worker_script

# -- the statements a call issues ---------------------------------------------------------------------------


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every SQL statement run on connections opened from now on (a fresh cache directory's)."""
    seen: list[str] = []
    connect = sqlite3.connect

    def traced(*args: object, **kwargs: object) -> sqlite3.Connection:
        con = connect(*args, **kwargs)  # type: ignore[arg-type]
        con.set_trace_callback(seen.append)
        return con

    monkeypatch.setattr(sqlite3, "connect", traced)
    yield seen


def test_a_quick_miss_is_one_lookup_and_its_write_joins_the_next_commit(statements: list[str],
                                                                        counter: Counter) -> None:
    @memo
    def add(a: int, b: str = "x") -> int:
        counter()
        return a + len(b)

    add(0)
    add(1)  # the first runs take the lease: nothing is known yet of how long the body takes
    add._store().stop_background()  # its commits would come from another thread: here this one makes them
    statements.clear()
    assert add(2) == 3 and counter.n == 3
    # One SELECT for the row and someone else's lease on the key together (a row not read before needs
    # no look at whether the index changed since); the record waits for the next commit.
    assert len(statements) == 1, statements
    assert statements[0].startswith("SELECT") and "lock:" + add.make_call((2,), {}).key in statements[0]
    assert add(3) == 4 and counter.n == 4
    statements.clear()
    assert add(2) == 3 and counter.n == 4  # a read of a queued row commits the queue first, then reads it
    assert [s for s in statements if s.startswith(("BEGIN", "COMMIT"))] == ["BEGIN IMMEDIATE", "COMMIT"], statements
    upserts = {s for s in statements if s.startswith("INSERT INTO Cache")}
    assert len(upserts) == 1 and all(add.make_call((a,), {}).key in next(iter(upserts)) for a in (2, 3))  # one for both
    statements.clear()
    assert add(3) == 4 and counter.n == 4
    # A hit of a row not read since the last write: the row alone (with the lease row, unused: a quick
    # function's lookup cannot know it will hit).
    assert len(statements) == 1 and statements[0].startswith("SELECT"), statements
    statements.clear()
    assert add(2) == 3 and counter.n == 4
    # A row read before: is the index as it was when this connection last looked? Not here (the first runs'
    # leases were written on another connection since), so what was read is read again.
    assert len(statements) == 2 and statements[0] == "PRAGMA data_version", statements
    statements.clear()
    assert add(2) == 3 and counter.n == 4
    # Read after that look, and no commit since (the wal-index header reads as it did then): from memory, with
    # no statement at all.
    assert statements == [], statements


def test_a_slow_first_run_takes_the_lease(statements: list[str]) -> None:
    @memo
    def slow(a: int) -> int:
        time.sleep(0.05)
        return a

    slow(1)
    statements.clear()
    slow(2)  # the last run was slow: this one takes the lease before it starts
    assert any(s.startswith("INSERT") and "lock:" in s for s in statements), statements


# -- compute-once holds for a quick function's slow run ------------------------------------------------------

QUICK_THEN_SLOW = """
@memo
def work(x, out=log):
    out.write(f"start {x} {os.getpid()}\\n")
    if x:
        time.sleep(8)
    return x * 10

if sys.argv[1] == "first":
    work(0)  # quick: this process will run its next miss without a lease...
    print(json.dumps(work(1)))  # ...which goes on for 8 s: it must take the lease meanwhile
else:
    print(json.dumps(work(1)))
"""


def _lease_rows(cache_dir: Path) -> list[str]:
    try:
        with sqlite3.connect(str(cache_dir / "cache.db")) as db:
            return [key for (key,) in db.execute("SELECT key FROM Cache WHERE key LIKE 'lock:%'")]
    except sqlite3.Error:
        return []


def test_a_quick_function_s_slow_run_takes_the_lease_so_another_process_waits(tmp_path: Path,
                                                                               cache_dir: Path) -> None:
    script = worker_script(tmp_path / "work.py", QUICK_THEN_SLOW)
    log = tmp_path / "log.txt"
    env = worker_env(cache_dir)
    first = subprocess.Popen([sys.executable, str(script), "first", str(log)], env=env, stdout=subprocess.PIPE,
                             text=True)
    deadline = time.monotonic() + 60
    while not (log.exists() and "start 1" in log.read_text()):
        assert time.monotonic() < deadline and first.poll() is None, "the first process never started work(1)"
        time.sleep(0.01)
    # The lease is taken by the first process's background thread soon after the run began. Without it
    # the second process would compute work(1) too (give up waiting for it after 2 s).
    give_up = time.monotonic() + 2
    while not _lease_rows(cache_dir) and time.monotonic() < give_up:
        time.sleep(0.01)
    assert first.poll() is None  # still computing (8 s): the second process comes while it runs
    second = subprocess.run([sys.executable, str(script), "second", str(log)], env=env, capture_output=True,
                            text=True, timeout=120)
    out, _ = first.communicate(timeout=120)
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    assert out.strip() == second.stdout.strip() == "10"
    assert log.read_text().count("start 1") == 1, log.read_text()
    assert _lease_rows(cache_dir) == []  # given back once the result was written


# -- random states read in place ------------------------------------------------------------------------------


def test_python_random_read_in_place_is_getstate() -> None:
    random.seed(7)
    for _ in range(3):
        words = _random_state._random_words()
        assert words is not None, "the in-place read of random's state was refused on this CPython"
        assert words.state() == random.getstate()
        random.gauss(0, 1)  # also leaves a cached value in gauss_next on some versions
        random.random()


def test_the_states_read_in_place_follow_a_generator_object_that_replaced_the_global_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert _random_state._random_words() is not None and _random_state._numpy_words() is not None  # views made
    # random._inst names another generator: the module's functions (random.random, getstate) still use theirs.
    monkeypatch.setattr(random, "_inst", random.Random(11))
    random.random()
    assert _random_state._random_words().state() == random.getstate()  # type: ignore[union-attr]
    replacement = random.Random(12)  # ... until they are bound to another one
    for name in ("getstate", "random"):
        monkeypatch.setattr(random, name, getattr(replacement, name))
    for _ in range(2):
        words = _random_state._random_words()
        assert words is not None and words.state() == replacement.getstate()
        random.random()
    before = np.random.get_bit_generator()
    try:
        np.random.set_bit_generator(np.random.MT19937(5))
        for _ in range(2):
            key = np.random.get_state()[1]  # type: ignore[index]
            assert _random_state._numpy_words()[:2496] == key.astype("<u4").tobytes()  # type: ignore[index]
            np.random.rand(700)  # past the 624 words: all of them drawn again
    finally:
        np.random.set_bit_generator(before)
    key = np.random.get_state()[1]  # type: ignore[index]
    assert _random_state._numpy_words()[:2496] == key.astype("<u4").tobytes()  # type: ignore[index]


_ARRIVES_AS_ANOTHER_LEAVES = """
import random, sys, types
from notebook_memo import _random_state

_random_state.isolate_framework_draws()  # looked: nothing new since is looked at again
sys.modules["leaving"] = types.ModuleType("leaving")
_random_state.isolate_framework_draws()
del sys.modules["leaving"]  # as a harness restoring sys.modules would, while a framework is imported
framework = types.ModuleType("tornado.ioloop")
framework.random = random
sys.modules["tornado.ioloop"] = framework
_random_state.isolate_framework_draws()
print(framework.random is not random)
"""


def test_the_mark_of_the_loaded_modules_is_taken_again_when_another_thread_imports_meanwhile(
        monkeypatch: pytest.MonkeyPatch) -> None:
    class Importing(dict):  # type: ignore[type-arg]
        """sys.modules as another thread's import leaves it while this one walks it: the walk fails once."""

        failures = 1

        def __reversed__(self) -> Iterator[str]:
            if Importing.failures:
                Importing.failures -= 1
                return iter(_Changed())
            return super().__reversed__()

    modules = Importing(sys.modules)
    monkeypatch.setattr(sys, "modules", modules)
    try:
        mark = _random_state.modules_mark()
    finally:
        monkeypatch.undo()
    assert mark == (len(modules), list(modules)[-1]) and Importing.failures == 0


def test_the_mark_of_the_loaded_modules_lets_a_recursion_error_through(monkeypatch: pytest.MonkeyPatch) -> None:
    class AtTheLimit(dict):  # type: ignore[type-arg]
        """sys.modules read by a call at the recursion limit: the read itself overflows, once."""

        failures = 1

        def __reversed__(self) -> Iterator[str]:
            if AtTheLimit.failures:
                AtTheLimit.failures -= 1
                raise RecursionError("maximum recursion depth exceeded")
            return super().__reversed__()

    monkeypatch.setattr(sys, "modules", AtTheLimit(sys.modules))
    try:
        with pytest.raises(RecursionError):  # not taken for another thread's import and looked at again
            _random_state.modules_mark()
    finally:
        monkeypatch.undo()


class _Changed:
    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        raise RuntimeError("dictionary changed size during iteration")


def test_a_framework_that_draws_for_itself_loaded_as_another_module_leaves_gets_its_own_generator() -> None:
    out = subprocess.run([sys.executable, "-c", _ARRIVES_AS_ANOTHER_LEAVES], capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.strip() == "True", out.stderr  # the module count is the same: its last name is not


_FRAMEWORK_DRAWS_AS_THE_STATES_ARE_READ = """
import random, sys, tempfile, types
from notebook_memo import _conditions, configure, memo

configure(cache_dir=tempfile.mkdtemp(), verbose=False)
framework = types.ModuleType("tornado.ioloop")  # it draws from random for itself, on a thread of its own
framework.random = random
sys.modules["tornado.ioloop"] = framework

@memo
def f(x):
    return x  # draws nothing

read_states = _conditions.snapshot
def then_the_framework_draws(*args, **kwargs):
    states = read_states(*args, **kwargs)
    framework.random.random()  # its thread, switched to right after the first run read the states
    return states
_conditions.snapshot = then_the_framework_draws
random.seed(0)
f(1)
_conditions.snapshot = read_states
random.seed(0); plain = random.random()
random.seed(0); f(1); after_hit = random.random()
print(len(f.entries()), f.misses, after_hit == plain)
"""


def test_a_framework_drawing_just_after_the_first_run_read_the_states_is_not_the_body(tmp_path: Path) -> None:
    """The first memoized run after a framework that draws for itself was loaded gives it its own generator
    before reading the global states: a draw of the framework's thread right after that read is not taken
    for the body's (its entry would be tied to random's state, and a hit would set random to it)."""
    out = subprocess.run([sys.executable, "-c", _FRAMEWORK_DRAWS_AS_THE_STATES_ARE_READ], capture_output=True,
                         text=True, timeout=120, cwd=tmp_path)
    assert out.stdout.split() == ["1", "1", "True"], out.stdout + out.stderr


def test_a_body_drawing_from_random_s_functions_is_seen_after_random_inst_was_reassigned(
        monkeypatch: pytest.MonkeyPatch, counter: Counter) -> None:
    monkeypatch.setattr(random, "_inst", random.Random(123))  # the module's functions keep their own generator

    @memo
    def draw() -> float:
        counter()
        return random.random()

    random.seed(1)
    first = draw()
    random.seed(2)
    second = draw()
    random.seed(2)
    assert second == random.random() != first and counter.n == 2  # the state it drew from, not the first's


def test_a_body_that_only_takes_random_s_cached_gauss_is_seen_to_draw(counter: Counter) -> None:
    @memo
    def noise() -> float:
        counter()
        return random.gauss(0, 1)

    random.seed(3)
    random.gauss(0, 1)
    state = random.getstate()
    first = noise()
    after = random.getstate()
    assert after != state  # the body drew: the words or the cached Gaussian moved
    random.setstate(state)
    assert noise() == first and counter.n == 1  # the same state: a hit...
    assert random.getstate() == after  # ...that leaves the generator as the body did
    random.seed(4)
    noise()
    assert counter.n == 2  # another state: computed


def test_numpy_s_state_read_once_is_never_reused_after_set_state_adds_a_cached_gaussian(counter: Counter) -> None:
    @memo
    def normal() -> float:
        counter()
        return float(np.random.standard_normal())

    np.random.seed(11)
    plain = np.random.get_state()
    assert plain[3] == 0  # no cached Gaussian
    normal()  # reads np.random's state (and remembers it) before the run
    np.random.set_state(plain)
    with_gauss = (*plain[:3], 1, 0.123456789)
    np.random.set_state(with_gauss)  # the same words, and a cached Gaussian: another state
    assert normal() == 0.123456789 and counter.n == 2
    np.random.set_state(plain)
    assert normal() != 0.123456789  # the state without the cached value: never the entry above


# -- the key's bytes, built without a list of parts ----------------------------------------------------------


def _reference_key(fn: object, call: object) -> str:
    """The key as ``combine`` of its parts (the form every stored entry was keyed by)."""
    from notebook_memo.hashing import aliasing_parts, combine

    state = fn.code_state()  # type: ignore[attr-defined]
    bound = fn._binder.bind(*call[1:])  # type: ignore[attr-defined,index]
    parts = [b"nbm1", fn._fid.encode(), state.code, state.deps_digest, fn._version]  # type: ignore[attr-defined]
    parts += [name.encode() + b"\0" + digest for name, digest in call[0].arguments.items()]  # type: ignore[index]
    kw = fn._binder.var_keyword  # type: ignore[attr-defined]
    parts += aliasing_parts([tuple(v.values()) if n == kw and type(v) is dict else v for n, v in bound])
    return combine(parts).hex()


def test_the_key_is_the_digest_of_its_framed_parts() -> None:
    def work(a: object, b: str = "x", *args: object, c: int = 3, **kw: object) -> object:
        return a

    fn = memo(version="v2")(work)
    shared = [1]
    for args, kwargs in [((1,), {}), ((1, "abc"), {}), ((1, "b", 5, 6), {"c": 4, "z": [1, 2]}),
                         (([1, 2], {"k": 0.5}), {}), ((np.arange(5),), {}), ((shared, shared), {}),
                         ((shared, "b", shared), {"q": shared})]:
        call = fn.make_call(args, kwargs)
        assert call.key == _reference_key(fn, (call, args, kwargs))


def test_a_hit_after_a_pause_makes_no_system_call(monkeypatch: pytest.MonkeyPatch, counter: Counter) -> None:
    import os

    @memo
    def f(x: int) -> int:
        counter()
        return x

    f(1)
    f(1)  # a hit: the store's background thread runs from now on, and re-checks the directory itself
    time.sleep(0.5)  # longer than a read's own re-check window (REVALIDATE)
    calls: list[str] = []
    caller = threading.get_ident()  # the background thread's own periodic checks may fall in the window
    for name in ("stat", "lstat", "open"):
        real = getattr(os, name)
        monkeypatch.setattr(os, name, lambda *a, _real=real, _name=name, **k:
                            (threading.get_ident() == caller and calls.append(_name)) or _real(*a, **k))
    assert f(1) == 1 and counter.n == 1
    monkeypatch.undo()
    assert calls == []


# -- records recognised by their bytes ----------------------------------------------------------------------


@pytest.mark.parametrize("where", ["header", "payload", "another key's record"])
def test_a_record_verified_before_is_verified_again_once_its_bytes_change(cache_dir: Path, counter: Counter,
                                                                          where: str) -> None:
    import warnings

    @memo
    def f(x: int) -> int:
        counter()
        return x * 7

    f(1), f(2)
    assert f(1) == 7 and counter.n == 2  # read, decoded and verified: its bytes are remembered
    settled()
    with sqlite3.connect(str(cache_dir / "cache.db"), isolation_level=None) as db:
        rows = dict(db.execute("SELECT key, value FROM Cache WHERE key NOT LIKE 'lock:%' AND key NOT LIKE 'stats:%'"))
        key1 = f.make_call((1,), {}).key
        key2 = f.make_call((2,), {}).key
        value = bytearray(rows[key1])
        if where == "header":
            value[40] ^= 1
        elif where == "payload":
            value[-1] ^= 1
        else:
            value = bytearray(rows[key2])  # a valid record, of f(2), under f(1)'s key
        db.execute("UPDATE Cache SET value = ? WHERE key = ?", (bytes(value), key1))
    time.sleep(0.3)  # past the window in which a record just read is reused without a lookup
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert f(1) == 7
    assert counter.n == 3  # refused and recomputed, never 14 and never the damaged value


def test_a_row_another_thread_read_before_this_thread_rewrote_it_is_never_reused_after(counter: Counter) -> None:
    """Records read are reused while this connection's data_version stands, and our own writes do not move
    it: so a record another thread read just before our write must not be kept once the write is done."""

    @memo(ignore=["box"])
    def f(x: int, box: list[int]) -> int:
        counter()
        return box[0]

    assert f(1, [10]) == 10 and f(2, [0]) == 0 and counter.n == 2
    store = f._store()
    store.stop_background()  # every commit here is this test's own, on this thread's connection
    settled()
    time.sleep(0.3)  # past the window in which a record just read is reused without a lookup
    read, go = threading.Event(), threading.Event()
    got: list[int] = []
    other = threading.Thread(target=lambda: got.append(f(1, [99])))

    class Held(dict):  # type: ignore[type-arg]
        def get(self, *args: object) -> object:  # the other thread waits between its SELECT and keeping the record
            if threading.current_thread() is other and not go.is_set():
                read.set()
                assert go.wait(10)
            return super().get(*args)

    store._seen = Held(store._seen)
    other.start()
    assert read.wait(10)  # it has read f(1)'s row as it is now: 10
    assert f(2, [0]) == 0  # this thread reads too (a row read by it is reused while its data_version stands)
    assert f.invalidate(1, [0])
    assert f(1, [20]) == 20 and counter.n == 3  # computed again: a quick result, waiting for the next commit
    store.settle()  # committed on this thread's connection: its data_version does not move
    go.set()
    other.join(10)
    assert got == [10]  # it read before the write: the old value is its answer
    assert f(1, [0]) == 20 and counter.n == 3  # never the record it read before


# -- a record's metadata: its fixed part encoded once per code state ------------------------------------------


_SCALE = 3


def _scaled(v: float) -> float:
    return v * _SCALE


def test_a_record_s_metadata_text_is_what_encoding_all_of_it_gives_through_code_changes(cache_dir: Path) -> None:
    import json

    from notebook_memo._memo import _code_mark

    @memo(ttl="1h", version="2")
    def f(x: float, **options: object) -> float:
        return _scaled(x) + len(options)

    def record_of(*args: object, **kwargs: object) -> tuple[dict[str, object], bytes]:
        settled()
        found = f._store().get(f.make_call(args, kwargs).key)
        assert found is not None
        return found.header.meta(), bytes(found.header.meta_raw)

    global _SCALE
    calls: list[tuple[tuple[object, ...], dict[str, object]]] = [((1.5,), {}), ((2.0,), {'o"dd\\é': 1, "n": None})]
    fixed = set()
    for scale in (3, 4):  # a dependency's value changes: a new code state, a new fixed part
        _SCALE = scale
        for args, kwargs in calls:
            assert f(*args, **kwargs) == args[0] * scale + len(kwargs)  # type: ignore[operator]
            meta, raw = record_of(*args, **kwargs)
            assert raw == json.dumps(meta, separators=(",", ":")).encode()  # the very bytes, key order included
            assert meta["name"].endswith(".f") and meta["ttl"] == 3600 and meta["kind"] == "function"
            assert set(meta["args"]) == {"x", "options"} and meta["size"] > 0 and meta["duration"] >= 0
            assert "_SCALE" in json.dumps(meta["deps"]) and _code_mark(meta["code"]) in raw
            fixed.add(json.dumps(meta["deps"]))
    assert len(fixed) == 2  # the second state's records say what it depends on now


@pytest.mark.parametrize("created, duration, size", [(np.float64(1.5), 0.25, 3), (1.5, True, 3), (1.5, 0.25, True),
                                                     (float("nan"), 0.25, 3), (1.5, float("inf"), 3)])
def test_metadata_of_other_numbers_than_plain_ones_is_what_json_says(created: float, duration: float,
                                                                      size: int) -> None:
    import json

    from notebook_memo._serialize import _META_JSON, decode_header, dumps, encode_header, head_json, meta_after

    meta = meta_after(head_json({"kind": "function", "ttl": None}), {"x": "00ff"}, created, duration, size)
    record = encode_header("k", None, dumps(1), meta, 1.0, None, 0.5, True, None)
    raw = bytes(decode_header(record)[0].meta_raw)
    assert raw == _META_JSON.encode(dict(meta)).encode() and json.loads(raw) is not None


# -- the index's own bookkeeping ----------------------------------------------------------------------------

_DISKCACHE_SIZE_TRIGGERS = {  # as diskcache creates them: one UPDATE of Settings for every row, even of size 0
    "Settings_size_insert": "AFTER INSERT ON Cache FOR EACH ROW BEGIN UPDATE Settings SET value = value + NEW.size "
                            "WHERE key = \"size\"; END",
    "Settings_size_update": "AFTER UPDATE ON Cache FOR EACH ROW BEGIN UPDATE Settings SET value = value + NEW.size "
                            "- OLD.size WHERE key = \"size\"; END",
    "Settings_size_delete": "AFTER DELETE ON Cache FOR EACH ROW BEGIN UPDATE Settings SET value = value - OLD.size "
                            "WHERE key = \"size\"; END",
}


@pytest.mark.parametrize("index", ["made by this version", "made with diskcache's own size triggers"])
def test_the_size_and_count_diskcache_keeps_stay_exact_through_writes_refreshes_and_deletes(
        cache_dir: Path, index: str) -> None:
    from notebook_memo.stores.local import close_stores

    @memo(ignore=["box"])
    def value(x: int, box: list[int]) -> object:
        if x < 0 and box[0] == 2:  # refreshed: a payload file of another size, or a result in its row
            return np.full(80_000, 2.0) if x == -2 else 7
        return np.full(50_000, float(box[0])) if x < 0 else x * box[0]  # x < 0: a payload file

    value(0, [1])
    db = str(cache_dir / "cache.db")
    if index.startswith("made with"):
        close_stores([str(cache_dir)])
        with sqlite3.connect(db, isolation_level=None) as con:
            for name, body in _DISKCACHE_SIZE_TRIGGERS.items():
                con.execute(f"DROP TRIGGER {name}")
                con.execute(f"CREATE TRIGGER {name} {body}")
    for x in range(-3, 20):
        value(x, [1])  # quick results in rows of size 0, and payload files
    settled()
    value.refresh(-2, [2])  # a row's size changes
    value.refresh(-3, [2])  # ... to 0
    value.refresh(5, [2])
    value.invalidate(-1, [0])
    value.invalidate(7, [0])
    value._store().evict_to(0)  # everything this process may delete
    for x in range(-2, 3):
        value(x, [3])
    settled()
    with sqlite3.connect(db, isolation_level=None) as con:
        kept = dict(con.execute("SELECT key, value FROM Settings WHERE key IN ('size', 'count')").fetchall())
        size, count = con.execute("SELECT coalesce(sum(size), 0), count(*) FROM Cache").fetchone()
        triggers = dict(con.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").fetchall())
    assert kept == {"size": size, "count": count} and size > 0
    assert all(" WHEN " in triggers[name] for name in _DISKCACHE_SIZE_TRIGGERS)  # rows of size 0 skipped


def test_the_size_triggers_replaced_are_the_ones_diskcache_makes(tmp_path: Path) -> None:
    import diskcache

    from notebook_memo.stores.local import _SIZE_TRIGGERS

    plain = diskcache.Cache(str(tmp_path / "plain"))
    plain.close()
    with sqlite3.connect(str(tmp_path / "plain" / "cache.db")) as con:
        made = {name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' "
                                                "AND sql LIKE '%\"size\"%'")}
    # A diskcache that named them otherwise would leave its own beside ours: every size counted twice.
    assert made == {name for name, _ in _SIZE_TRIGGERS}


# -- access times: renewed when they are old, not on every hit ------------------------------------------------


def test_a_hit_renews_an_access_time_once_since_the_last_write_then_when_a_minute_old(cache_dir: Path) -> None:
    @memo
    def f(x: int) -> int:
        return x

    for x in range(20):
        f(x)
    store = f._store()
    store.stop_background()  # every write here is the test's own: none lands between its steps
    store.flush()  # the quick results' commit
    f(0)
    assert len(store._pending_touch) == 1  # used since this process last wrote: eviction must know
    store.flush()
    time.sleep(0.3)  # past the window in which a record just read is reused without a lookup
    for x in range(20):
        f(x)
    assert len(store._pending_touch) == 19  # the others, once each
    store.flush()
    time.sleep(0.3)
    for x in range(20):
        f(x)  # a cell run again: every access time is newer than the last write, and fresh
    assert not store._pending_touch
    key = f.make_call((3,), {}).key
    with sqlite3.connect(str(cache_dir / "cache.db"), isolation_level=None) as db:
        db.execute("UPDATE Cache SET access_time = access_time - 120 WHERE key = ?", (key,))
    time.sleep(0.3)
    f(3)
    assert set(store._pending_touch) == {key}


def test_access_times_renewed_together_reach_exactly_the_rows_read_by_either_path(cache_dir: Path) -> None:
    """Renewals are grouped by where the rows lie (their row ids, known from a batch's read or looked
    up for single hits); the rows renewed are still those read, and only those."""

    @memo.batch("xs", progress=False)
    def g(xs: list[int]) -> list[int]:
        return [x + 1 for x in xs]

    @memo
    def f(x: int) -> int:
        return x

    g(list(range(1500)))  # more rows than one statement renews
    for x in range(40):
        f(x)
    store = g._store()
    store.stop_background()
    store.flush()
    with sqlite3.connect(str(cache_dir / "cache.db"), isolation_level=None) as db:
        db.execute("UPDATE Cache SET access_time = access_time - 3600 WHERE raw = 1")
    time.sleep(0.3)
    read_items = list(range(0, 1500, 3))  # read in a scattered order, a third of the items
    random.Random(5).shuffle(read_items)
    before = time.time()
    assert g(read_items) == [x + 1 for x in read_items]
    for x in range(0, 40, 2):
        f(x)
    g.invalidate([read_items[0]])  # read, then gone before the renewal: nothing to renew
    store.flush()
    _, call, digests = g._split_call((list(range(1500)),), {})
    batch_keys = g._item_keys(call, digests)
    single_keys = [f.make_call((x,), {}).key for x in range(40)]
    with sqlite3.connect(str(cache_dir / "cache.db"), isolation_level=None) as db:
        times = dict(db.execute("SELECT key, access_time FROM Cache WHERE raw = 1").fetchall())
    expected = {batch_keys[x] for x in read_items[1:]} | {single_keys[x] for x in range(0, 40, 2)}
    renewed = {key for key in batch_keys + single_keys if key in times and times[key] >= before}
    assert batch_keys[read_items[0]] not in times
    assert renewed == expected


# -- clean-up removes payload files ----------------------------------------------------------------------------


def test_invalidating_a_call_that_drew_random_numbers_removes_its_entries_and_their_files(cache_dir: Path,
                                                                                         counter: Counter) -> None:
    @memo
    def draw(n: int) -> np.ndarray:
        counter()
        return np.random.random(n)  # 80 kB: a payload file of its own

    np.random.seed(1)
    draw(10_000)
    assert list(cache_dir.rglob("*.val"))
    np.random.seed(1)
    assert draw.invalidate(10_000)
    assert list(cache_dir.rglob("*.val")) == []
    np.random.seed(1)
    draw(10_000)
    assert counter.n == 2


def test_a_batch_frames_its_item_keys_once_and_gets_the_keys_of_one_item_at_a_time() -> None:
    from notebook_memo._batch import BatchFunction
    from notebook_memo._memo import Call
    from notebook_memo.hashing import combine, content_hash

    call = Call("0f" * 16, {}, b"", b"", None, None)  # type: ignore[arg-type]
    digests = [content_hash(item) for item in [0, 1, "a", b"", (1, 2), 10**30]]
    expected = [combine([bytes.fromhex(call.key), d]).hex() for d in digests]  # the keys items were stored under
    assert BatchFunction._item_keys(call, digests) == expected
    assert [BatchFunction._item_key(call, d) for d in digests] == expected


def test_a_write_never_checkpoints_the_log_and_the_background_thread_does(cache_dir: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from notebook_memo.stores import local as _store

    monkeypatch.setattr(_store.Store, "checkpoint", lambda self: None)  # the background thread's, held back

    @memo
    def pad(i: int) -> str:
        if i % 100 == 99:
            time.sleep(0.015)  # now and then a slow run: the next miss takes a lease, a commit of its own
        return "x" * 2000 + str(i)

    for i in range(3000):  # 2 KB each, many per commit: past SQLite's default checkpoint at 1,000 pages
        pad(i)
    settled()
    con = sqlite3.connect(str(cache_dir / "cache.db"))
    frames = con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
    assert frames > 1000, frames  # no commit of ours checkpointed (the log would have started over)
    con.close()
    monkeypatch.undo()
    store = pad._store()
    store.checkpoint()
    assert store._checkpointed >= store._wrote_at


@pytest.mark.parametrize("work", ["one miss", "misses and hits"])
def test_a_kernel_that_wrote_leaves_the_whole_index_in_its_file(cache_dir: Path, work: str) -> None:
    calls = "f(1)" if work == "one miss" else "[f(i) for i in range(50)]\n[f(i) for i in range(50)]"
    subprocess.run([sys.executable, "-c", f"from notebook_memo import memo\nf = memo(lambda x: x)\n{calls}"],
                   env=worker_env(cache_dir), check=True, timeout=60)
    log = cache_dir / "cache.db-wal"
    assert not log.exists() or log.stat().st_size == 0  # checkpointed at exit, though our background
    # thread's connection is never closed (closing the last connection is what would do it otherwise)
