"""Preconditions at their edges: the environment held as data (a closure, a class attribute, ``self.env``,
``getattr(os, "environ")``), a file read under two names, an SQLite database reached through ``ATTACH``, a
body that peeks at a global generator's state, a listed entry that changes kind, seeded generators that must
not warn, and clock reads through numpy, pandas, uuid and ``time.clock_gettime``.

Each test asserts what a user should get: a failing test is a stale result served, a wrong warning or a
missing one.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from notebook_memo import MemoWarning, memo
from tests.conftest import Counter, Shell


def _runs_after_change(shell: Shell, monkeypatch: pytest.MonkeyPatch, setup: str, call: str,
                       name: str = "NBM_EDGE_SPLIT") -> tuple[object, object, list[str]]:
    """Run ``setup``, call ``call`` with the variable set to "train", then to "test"; return both answers and
    the warnings the calls gave."""
    monkeypatch.setenv(name, "train")
    shell.run("import os\nfrom notebook_memo import memo\n" + setup)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = shell.run(call)
        monkeypatch.setenv(name, "test")
        second = shell.run(call)
    return first, second, [str(w.message) for w in caught]


# -- the environment held as data --------------------------------------------------------------------------------

ENV_HOLDERS = {
    "closure": ("""
def make():
    env = os.environ
    def inner():
        return env["NBM_EDGE_SPLIT"]
    return inner
f = memo(make())
""", "f()"),
    "class_attribute_through_a_helper_object": ("""
class Cfg:
    env = os.environ
    def split(self):
        return self.env["NBM_EDGE_SPLIT"]
CFG = Cfg()

@memo
def f():
    return CFG.split()
""", "f()"),
    "class_attribute_through_self_in_a_method": ("""
class Job:
    env = os.environ
    @memo
    def run(self):
        return self.env.get("NBM_EDGE_SPLIT")
""", "Job().run()"),
    "getattr_of_the_module": ("""
@memo
def f():
    return getattr(os, "environ")["NBM_EDGE_SPLIT"]
""", "f()"),
    "the_module_dict": ("""
@memo
def f():
    return os.__dict__["environ"]["NBM_EDGE_SPLIT"]
""", "f()"),
    "getattr_after_a_local_import": ("""
@memo
def f():
    import os as system
    return getattr(system, "environ").get("NBM_EDGE_SPLIT")
""", "f()"),
}


@pytest.mark.parametrize("form", sorted(ENV_HOLDERS))
def test_the_environment_held_as_data_is_keyed_by_its_content(
        form: str, shell: Shell, monkeypatch: pytest.MonkeyPatch) -> None:
    setup, call = ENV_HOLDERS[form]
    first, second, _ = _runs_after_change(shell, monkeypatch, setup, call)
    assert (first, second) == ("train", "test"), "served the variable's value as it was"


def test_a_cell_using_a_class_that_holds_the_environment_runs_again_when_it_changes(
        shell: Shell, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBM_EDGE_SPLIT", "train")
    shell.run("%load_ext notebook_memo\nimport os\nclass Cfg:\n    env = os.environ\n"
              "    def split(self):\n        return self.env['NBM_EDGE_SPLIT']")
    cell = "%%memo split\nsplit = Cfg().split()"
    shell.run(cell)
    monkeypatch.setenv("NBM_EDGE_SPLIT", "test")
    shell.run(cell)
    assert shell["split"] == "test"


@pytest.mark.parametrize("reach", ['getattr(os, "environ")', 'vars(os)["environ"]'])
def test_a_cell_reaching_the_environment_as_an_object_runs_again_when_it_changes(
        reach: str, shell: Shell, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBM_EDGE_SPLIT", "train")
    shell.run("%load_ext notebook_memo\nimport os")
    cell = f"%%memo split\nsplit = {reach}['NBM_EDGE_SPLIT']"
    shell.run(cell)
    monkeypatch.setenv("NBM_EDGE_SPLIT", "test")
    shell.run(cell)
    assert shell["split"] == "test"


def test_a_variable_read_by_a_constant_name_still_hits_when_another_variable_changes(
        shell: Shell, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBM_EDGE_SPLIT", "train")
    monkeypatch.setenv("NBM_EDGE_OTHER", "a")
    shell.run("""
    import os
    from notebook_memo import MemoWarning, memo
    ENV = os.environ

    class _Runs(list):
        def __memo_key__(self): return "runs"

    RUNS = _Runs()

    @memo
    def f():
        RUNS.append(1)
        return ENV["NBM_EDGE_SPLIT"] + os.environ["NBM_EDGE_SPLIT"]
    """)
    shell.run("f()")
    monkeypatch.setenv("NBM_EDGE_OTHER", "b")
    shell.run("f()")
    assert len(shell["RUNS"]) == 1, "a variable the body does not read made it run again"


# -- one file or folder under two names ---------------------------------------------------------------------------

def test_a_file_read_as_a_link_and_by_its_own_name_is_checked_under_both(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counter: Counter) -> None:
    monkeypatch.chdir(tmp_path)
    Path("v1.csv").write_text("a,1\n")
    os.symlink("v1.csv", "latest.csv")

    @memo
    def compare() -> tuple[str, str]:
        counter()
        return Path("latest.csv").read_text(), Path("v1.csv").read_text()

    assert compare() == ("a,1\n", "a,1\n")
    shutil.copyfile("v1.csv", "v2.csv")  # latest now names a copy with the same bytes...
    os.remove("latest.csv")
    os.symlink("v2.csv", "latest.csv")
    Path("v1.csv").write_text("a,9\n")  # ... and v1 is edited
    assert compare() == ("a,1\n", "a,9\n") and counter.n == 2


def test_two_links_to_one_file_are_checked_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                counter: Counter) -> None:
    monkeypatch.chdir(tmp_path)
    Path("data.csv").write_text("one")
    Path("other.csv").write_text("two")
    os.symlink("data.csv", "a.csv")
    os.symlink("data.csv", "b.csv")

    @memo
    def both() -> str:
        counter()
        return Path("a.csv").read_text() + Path("b.csv").read_text()

    assert both() == "oneone"
    os.remove("b.csv")
    os.symlink("other.csv", "b.csv")
    assert both() == "onetwo" and counter.n == 2


def test_a_folder_listed_as_a_link_and_by_its_own_name_is_checked_under_both(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counter: Counter) -> None:
    monkeypatch.chdir(tmp_path)
    os.mkdir("v1")
    Path("v1/a").write_text("")
    os.symlink("v1", "current")

    @memo
    def names() -> tuple[list[str], list[str]]:
        counter()
        return sorted(os.listdir("current")), sorted(os.listdir("v1"))

    assert names() == (["a"], ["a"])
    shutil.copytree("v1", "v2")
    os.remove("current")
    os.symlink("v2", "current")
    Path("v1/b").write_text("")
    assert names() == (["a"], ["a", "b"]) and counter.n == 2


# -- SQLite databases reached through ATTACH ----------------------------------------------------------------------

def _table(path: str, value: int) -> None:
    """Make the database ``path`` hold one table t with one row, ``value``."""
    con = sqlite3.connect(path)
    con.execute("create table if not exists t(x)")
    con.execute("delete from t")
    con.execute("insert into t values (?)", (value,))
    con.commit()
    con.close()


def _attach_constant_kept(main: str) -> list[tuple[int]]:
    con = sqlite3.connect(main)
    con.execute("ATTACH DATABASE 'data.db' AS d")
    return con.execute("select x from d.t").fetchall()


def _attach_constant_closed(main: str) -> list[tuple[int]]:
    con = sqlite3.connect(main)
    try:
        con.execute("ATTACH DATABASE 'data.db' AS d")
        return con.execute("select x from d.t").fetchall()
    finally:
        con.close()


def _attach_parameter_kept(main: str) -> list[tuple[int]]:
    con = sqlite3.connect(main)
    con.execute("ATTACH DATABASE ? AS d", ("data.db",))
    return con.execute("select x from d.t").fetchall()


def _attach_after_a_user_authorizer(main: str) -> list[tuple[int]]:
    con = sqlite3.connect(main)
    con.set_authorizer(lambda *args: sqlite3.SQLITE_OK)  # the slot is the user's now
    con.execute("ATTACH DATABASE 'data.db' AS d")
    return con.execute("select x from d.t").fetchall()


ATTACHES = {"constant_name_connection_kept": _attach_constant_kept,
            "constant_name_connection_closed": _attach_constant_closed,
            "parameter_connection_kept": _attach_parameter_kept,
            "after_a_user_authorizer": _attach_after_a_user_authorizer}


@pytest.mark.parametrize("main", [":memory:", "main.db"])
@pytest.mark.parametrize("form", sorted(ATTACHES))
def test_a_database_attached_by_the_body_is_a_dependency(
        form: str, main: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counter: Counter) -> None:
    monkeypatch.chdir(tmp_path)
    read = ATTACHES[form]

    @memo
    def rows(database: str) -> list[tuple[int]]:
        counter()
        return read(database)

    _table("data.db", 1)
    _table("main.db", 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        assert rows(main) == [(1,)] and rows(main) == [(1,)] and counter.n == 1, "not cached, or cached twice"
    _table("data.db", 2)
    assert rows(main) == [(2,)], "served the attached database's old rows"


def test_a_database_attached_by_a_parameter_on_a_connection_closed_in_the_body_is_not_stored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counter: Counter) -> None:
    monkeypatch.chdir(tmp_path)

    @memo
    def rows() -> list[tuple[int]]:
        counter()
        con = sqlite3.connect(":memory:")
        try:
            con.execute("ATTACH DATABASE ? AS d", ("data.db",))
            return con.execute("select x from d.t").fetchall()
        finally:
            con.close()

    _table("data.db", 1)
    with pytest.warns(MemoWarning, match="ATTACH"):
        assert rows() == [(1,)]
    _table("data.db", 2)
    assert rows() == [(2,)] and counter.n == 2


def test_a_user_authorizer_set_in_the_body_keeps_its_meaning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _table("data.db", 1)

    @memo
    def denied() -> str:
        con = sqlite3.connect("data.db")
        con.set_authorizer(lambda action, *rest: sqlite3.SQLITE_DENY if action == sqlite3.SQLITE_READ
                           else sqlite3.SQLITE_OK)
        try:
            con.execute("select x from t")
        except sqlite3.DatabaseError as exc:
            return f"denied: {exc}"
        finally:
            con.close()
        return "allowed"

    assert denied().startswith("denied")


def test_a_database_attached_on_a_closed_connection_while_a_profiler_runs_is_not_stored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counter: Counter) -> None:
    monkeypatch.chdir(tmp_path)

    @memo
    def rows() -> list[tuple[int]]:
        counter()
        return _attach_constant_closed(":memory:")

    _table("data.db", 1)
    sys.setprofile(lambda frame, event, arg: None)  # a profiler holds the thread's profile slot
    try:
        with pytest.warns(MemoWarning, match="profiler"):
            assert rows() == [(1,)]
        _table("data.db", 2)
        assert rows() == [(2,)] and counter.n == 2
    finally:
        sys.setprofile(None)


# -- a body that reads a global generator's state without drawing from it ---------------------------------------

def _peek_random() -> float:
    r = random.Random(0)
    r.setstate(random.getstate())  # a private copy of the global stream
    return r.random()


def _peek_numpy() -> float:
    r = np.random.RandomState(0)
    r.set_state(np.random.get_state())
    return float(r.rand())


def _peek_torch() -> float:
    import torch

    g = torch.Generator()
    g.set_state(torch.get_rng_state())
    return float(torch.rand(1, generator=g))


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    import torch

    torch.manual_seed(seed)


@pytest.mark.parametrize("peek", [_peek_random, _peek_numpy, _peek_torch], ids=["random", "numpy", "torch"])
def test_a_body_reading_a_global_generators_state_is_keyed_by_it(peek: Any, counter: Counter) -> None:
    @memo
    def sample() -> float:
        counter()
        return peek()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MemoWarning)
        answers = {}
        for seed in (1, 2, 1):
            _seed_all(seed)
            answers[seed] = sample()
            _seed_all(seed)
            assert answers[seed] == peek(), f"after seed {seed}: a value drawn from another state"
    assert answers[1] != answers[2] and counter.n == 2, "the first state's entry was not served again"


def test_a_library_that_saves_and_puts_back_the_state_is_not_a_read(counter: Counter) -> None:
    import torch

    @memo
    def sample() -> float:
        counter()
        with torch.random.fork_rng():  # reads the state to put it back at the end
            torch.manual_seed(0)
            return float(torch.rand(1))

    torch.manual_seed(1)
    first = sample()
    torch.manual_seed(2)
    assert sample() == first and counter.n == 1, "a state the result does not depend on is in its key"


def test_a_body_that_seeds_before_reading_the_state_does_not_depend_on_it(counter: Counter) -> None:
    @memo
    def sample() -> float:
        counter()
        random.seed(7)
        return _peek_random()

    random.seed(1)
    first = sample()
    random.seed(2)
    assert sample() == first and counter.n == 1


# -- a listed entry that changes kind -----------------------------------------------------------------------------

def _make(path: str, kind: str) -> None:
    """Make ``path`` a file, a folder, a link to a file or a link to a folder."""
    if kind == "file":
        Path(path).write_text("")
    elif kind == "folder":
        os.mkdir(path)
    else:  # the target outside the listed folder, so that only the link's kind can change there
        kind = kind.removeprefix("link to ")
        target = os.path.abspath(f"{os.path.basename(path)}-{kind}")
        _make(target, kind)
        os.symlink(target, path)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        os.rmdir(path)
    else:
        os.remove(path)


@pytest.mark.parametrize("before, after", [("file", "folder"), ("folder", "file"),
                                           ("link to file", "link to folder")])
def test_a_listed_entry_that_changes_kind_is_a_miss(before: str, after: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch, counter: Counter) -> None:
    monkeypatch.chdir(tmp_path)
    os.mkdir("data")
    Path("data/a").write_text("")
    _make("data/b", before)

    @memo
    def files() -> list[str]:
        counter()
        return sorted(e.name for e in os.scandir("data") if e.is_file())

    first = files()
    _remove("data/b")
    _make("data/b", after)
    assert files() == sorted(e.name for e in os.scandir("data") if e.is_file()) != first and counter.n == 2


def test_a_listed_folder_whose_entries_keep_their_kinds_still_hits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    counter: Counter) -> None:
    monkeypatch.chdir(tmp_path)
    os.mkdir("data")
    Path("data/a").write_text("")
    os.mkdir("data/sub")

    @memo
    def names() -> list[str]:
        counter()
        return sorted(os.listdir("data"))

    names()
    Path("data/a").unlink()
    Path("data/a").write_text("other")  # the folder changed, its names and their kinds did not
    assert names() == ["a", "sub"] and counter.n == 1


def test_explain_says_a_listed_entry_changed_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    os.mkdir("data")
    Path("data/b").write_text("")

    @memo
    def files() -> list[str]:
        return sorted(e.name for e in os.scandir("data") if e.is_file())

    files()
    os.remove("data/b")
    os.mkdir("data/b")
    text = str(files.explain())
    assert "MISS" in text and "folder data" in text and "another kind" in text, text


# -- seeded generators that take entropy first, and unseeded ones -------------------------------------------------

SEEDED_LEGACY = {
    "constant": "float(np.random.RandomState(42).rand())",
    "keyword": "float(np.random.RandomState(seed=42).rand())",
    "argument": "float(np.random.RandomState(seed).rand())",
    "imported_name": "float(RandomState(seed).rand())",
    "attribute_of_an_object": "float(np.random.RandomState(CONFIG.seed).rand())",
}


@pytest.mark.parametrize("form", sorted(SEEDED_LEGACY))
def test_a_legacy_generator_built_with_a_seed_gives_no_random_result_warning(form: str, shell: Shell) -> None:
    shell.run(f"""
    import numpy as np
    from numpy.random import RandomState
    from notebook_memo import memo

    class Config:
        def __init__(self): self.seed = 42

    CONFIG = Config()

    @memo
    def sample(seed=42):
        return {SEEDED_LEGACY[form]}
    """)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert shell.run("sample()") == float(np.random.RandomState(42).rand())
    assert not [str(w.message) for w in caught if issubclass(w.category, MemoWarning)]


@pytest.mark.parametrize("call", ["np.random.RandomState()", "np.random.RandomState(None)",
                                  "np.random.RandomState(seed)", "np.random.RandomState(seed=seed)",
                                  "np.random.RandomState(CONFIG.seed)"])
def test_a_legacy_generator_built_without_a_seed_still_warns(call: str, shell: Shell) -> None:
    shell.run(f"""
    import numpy as np
    from notebook_memo import memo

    class Config:
        seed = None

    CONFIG = Config()

    @memo
    def sample(seed=None):
        return float({call}.rand())
    """)
    with pytest.warns(MemoWarning, match="entropy"):
        shell.run("sample()")


# -- clock reads through numpy, pandas, uuid and time.clock_gettime ----------------------------------------------

CLOCK_READS = {
    "np_datetime64_now": 'str(np.datetime64("now"))',
    "np_datetime64_today": "str(np.datetime64('today'))",
    "pd_timestamp_now": 'str(pd.Timestamp("now"))',
    "pd_timestamp_today_imported": 'str(Timestamp("today"))',
    "pd_to_datetime_today": 'str(pd.to_datetime("today"))',
    "uuid1": "str(uuid.uuid1())",
    "clock_gettime": "time.clock_gettime(time.CLOCK_REALTIME)",
    "clock_gettime_ns": "time.clock_gettime_ns(time.CLOCK_REALTIME)",
}


def _define(shell: Shell, body: str) -> None:
    shell.run(f"""
    import time, uuid
    import numpy as np
    import pandas as pd
    from pandas import Timestamp
    from notebook_memo import memo

    @memo
    def stamp():
        return {body}
    """)


@pytest.mark.parametrize("form", sorted(CLOCK_READS))
def test_a_clock_read_warns_and_is_explained(form: str, shell: Shell) -> None:
    _define(shell, CLOCK_READS[form])
    with pytest.warns(MemoWarning, match="reads the clock"):
        shell.run("stamp()")
    assert "clock" in str(shell.run("stamp.explain()"))


@pytest.mark.parametrize("body", ['str(np.datetime64("2020-01-01"))', 'str(pd.Timestamp("2020-01-01"))',
                                  'str(pd.to_datetime("2020-01-01"))',
                                  "-time.clock_gettime(time.CLOCK_MONOTONIC) + "
                                  "time.clock_gettime(time.CLOCK_MONOTONIC)"])
def test_a_fixed_date_or_a_timing_is_not_a_clock_read(body: str, shell: Shell) -> None:
    _define(shell, body)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemoWarning)
        shell.run("stamp()")
