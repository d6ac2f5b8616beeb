"""Process-wide state a result depends on besides its code, arguments and files: the current folder (absolute
paths made from it), the home folder, the local time zone, the locale's text encoding, the environment a
started process reads; and bodies that change the environment or the current folder, which a hit cannot do
again. Real shells, real files, real processes restarted with other hash seeds."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from notebook_memo import MemoWarning, StorageWarning
from tests.conftest import ROOT, Counter, Shell, run_kernel


def _folders(tmp_path: Path, name: str = "data.txt") -> tuple[Path, Path]:
    """Two folders, A and B, each with its own ``name``."""
    a, b = tmp_path / "A", tmp_path / "B"
    for folder in (a, b):
        folder.mkdir()
        (folder / name).write_text(f"from {folder.name}")
    return a, b


def _run(script: str, cwd: Path, cache_dir: Path, seed: int, **env: str) -> str:
    """Run ``script`` in a fresh process (a restarted kernel) in ``cwd``; return what it printed."""
    inherited = {k: v for k, v in os.environ.items() if k != "KMP_DUPLICATE_LIB_OK"}  # set by sklearn in this worker
    environment = {**inherited, "PYTHONHASHSEED": str(seed), "NOTEBOOK_MEMO_DIR": str(cache_dir),
                   "PYTHONPATH": str(ROOT), **env}
    proc = subprocess.run([sys.executable, "-W", "always", "-c", textwrap.dedent(script)], capture_output=True,
                          text=True, env=environment, cwd=str(cwd), timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


# -- the current folder ---------------------------------------------------------------------------------------

CWD_BODIES = {
    "abspath": 'open(os.path.abspath("data.txt")).read()',
    "join_getcwd": 'open(os.path.join(os.getcwd(), "data.txt")).read()',
    "path_cwd": '(Path.cwd() / "data.txt").read_text()',
    "resolve": 'Path("data.txt").resolve().read_text()',
    "absolute": 'Path("data.txt").absolute().read_text()',
    "aliased": 'open(ap("data.txt")).read()',
    "realpath_in_helper": "open(where()).read()",
}


@pytest.mark.parametrize("body", CWD_BODIES.values(), ids=CWD_BODIES.keys())
def test_an_absolute_path_made_from_the_current_folder_is_read_there(shell: Shell, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     body: str) -> None:
    a, b = _folders(tmp_path)
    shell.run(f"""
        import os
        from os.path import abspath as ap
        from pathlib import Path
        from notebook_memo import memo

        def where():
            return os.path.realpath("data.txt")

        @memo
        def load():
            return {body}
        """)
    monkeypatch.chdir(a)
    assert shell.run("load()") == "from A"
    monkeypatch.chdir(b)
    assert shell.run("load()") == "from B"
    monkeypatch.chdir(a)
    assert shell.run("load()") == "from A"
    assert shell.run("load.cache_info().misses") == 2  # A's entry is still A's: served again


def test_a_path_made_absolute_is_keyed_by_the_folder_even_unread(shell: Shell, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = _folders(tmp_path)
    shell.run("""
        import os
        from notebook_memo import memo

        @memo
        def output_path(name):
            return os.path.abspath(name)
        """)
    monkeypatch.chdir(a)
    assert shell.run("output_path('out.csv')") == str(a / "out.csv")
    monkeypatch.chdir(b)
    assert shell.run("output_path('out.csv')") == str(b / "out.csv")


def test_a_library_that_makes_a_relative_path_absolute_is_read_in_the_current_folder(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # mailbox.mbox opens os.path.abspath(path): the body's code shows no use of the current folder.
    a, b = tmp_path / "A", tmp_path / "B"
    for folder in (a, b):
        folder.mkdir()
        (folder / "inbox").write_text(f"From x@y Mon Jan  1 00:00:00 2024\nSubject: from {folder.name}\n\nhi\n")
    shell.run("""
        import mailbox
        from notebook_memo import memo

        @memo
        def subjects():
            box = mailbox.mbox("inbox", create=False)
            try:
                return [message["subject"] for message in box]
            finally:
                box.close()
        """)
    monkeypatch.chdir(a)
    assert shell.run("subjects()") == ["from A"]
    monkeypatch.chdir(b)
    assert shell.run("subjects()") == ["from B"]
    assert shell.run("subjects.cache_info().misses") == 2
    assert f"the current folder is {b}" in shell.run("str(subjects.explain())")  # served, having checked it
    monkeypatch.chdir(a)  # each folder keeps its own entry: A's is served, having checked the folder
    assert f"the current folder is {a}" in shell.run("str(subjects.explain())")
    assert shell.run("subjects(), subjects.last_hit") == (["from A"], True)
    monkeypatch.chdir(tmp_path)  # a folder with no run of its own: read there
    assert f"the current folder ({tmp_path})" in shell.run("str(subjects.explain())")


def test_code_that_does_not_use_the_current_folder_hits_from_another(shell: Shell, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = _folders(tmp_path)
    shared = tmp_path / "shared.txt"
    shared.write_text("shared")
    shell.run(f"""
        import os
        from notebook_memo import memo

        @memo
        def constant():
            return 42

        @memo
        def relative():
            return open("data.txt").read()

        @memo
        def fixed():
            return open(os.path.realpath({str(shared)!r})).read()
        """)
    for folder in (a, b):
        monkeypatch.chdir(folder)
        assert shell.run("constant(), fixed()") == (42, "shared")
        assert shell.run("relative()") == f"from {folder.name}"
    assert shell.run("constant.cache_info().misses, fixed.cache_info().misses") == (1, 1)


CWD_KERNEL = """
    import os
    from pathlib import Path
    from notebook_memo import memo

    @memo
    def load():
        return open(os.path.abspath("data.txt")).read() + " / " + Path("data.txt").resolve().parent.name

    print(load(), load.cache_info().misses)
    """


def test_kernels_in_two_folders_sharing_a_cache_read_their_own_folder(tmp_path: Path, cache_dir: Path) -> None:
    a, b = _folders(tmp_path)
    assert _run(CWD_KERNEL, a, cache_dir, seed=1) == "from A / A 1"
    assert _run(CWD_KERNEL, b, cache_dir, seed=2) == "from B / B 1"
    assert _run(CWD_KERNEL, a, cache_dir, seed=3) == "from A / A 0"  # restarted in A: A's entry
    assert _run(CWD_KERNEL, b, cache_dir, seed=4) == "from B / B 0"


# -- the home folder ------------------------------------------------------------------------------------------

def _homes(tmp_path: Path, name: str = "data.txt") -> tuple[Path, Path]:
    """Two home folders, u1 and u2, each with its own ``name``."""
    homes = tmp_path / "u1", tmp_path / "u2"
    for home in homes:
        home.mkdir()
        (home / name).write_text(f"{home.name}'s data")
    return homes


HOME_BODIES = {
    "expanduser": 'open(os.path.expanduser("~/data.txt")).read()',
    "path_home": '(Path.home() / "data.txt").read_text()',
    "path_expanduser": 'Path("~/data.txt").expanduser().read_text()',
    "pandas_expands_it": 'pd.read_csv("~/data.txt", header=None)[0][0]',
}


@pytest.mark.parametrize("body", HOME_BODIES.values(), ids=HOME_BODIES.keys())
def test_a_path_in_the_home_folder_is_read_in_the_home_of_the_call(shell: Shell, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   body: str) -> None:
    u1, u2 = _homes(tmp_path)
    shell.run(f"""
        import os
        from pathlib import Path
        import pandas as pd
        from notebook_memo import memo

        @memo
        def load():
            return {body}
        """)
    monkeypatch.setenv("HOME", str(u1))
    assert shell.run("load()") == "u1's data"
    monkeypatch.setenv("HOME", str(u2))
    assert shell.run("load()") == "u2's data"


HOME_KERNEL = """
    import os
    from pathlib import Path
    import pandas as pd
    from notebook_memo import memo

    @memo
    def load():
        return open(os.path.expanduser("~/data.txt")).read() + " / " + (Path.home() / "data.txt").read_text()

    @memo
    def table():  # pandas expands "~" itself
        return pd.read_csv("~/data.txt", header=None)[0][0]

    print(load(), "/", table(), load.cache_info().misses + table.cache_info().misses)
    """


def test_kernels_with_two_homes_sharing_a_cache_read_their_own(tmp_path: Path, cache_dir: Path) -> None:
    u1, u2 = _homes(tmp_path)
    assert _run(HOME_KERNEL, tmp_path, cache_dir, seed=1, HOME=str(u1)) == "u1's data / u1's data / u1's data 2"
    assert _run(HOME_KERNEL, tmp_path, cache_dir, seed=2, HOME=str(u2)) == "u2's data / u2's data / u2's data 2"
    # Restarted with u2's home again: served.
    assert _run(HOME_KERNEL, tmp_path, cache_dir, seed=3, HOME=str(u2)) == "u2's data / u2's data / u2's data 0"


def test_a_path_that_names_no_home_hits_in_any_home(shell: Shell, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    u1, u2 = _homes(tmp_path)
    (tmp_path / "shared.txt").write_text("shared")
    monkeypatch.chdir(tmp_path)
    shell.run("""
        import os
        from notebook_memo import memo

        @memo
        def load():
            return open(os.path.expanduser("shared.txt")).read()
        """)
    for home in (u1, u2):
        monkeypatch.setenv("HOME", str(home))
        assert shell.run("load()") == "shared"
    assert shell.run("load.cache_info().misses") == 1


# -- the local time zone --------------------------------------------------------------------------------------

@pytest.fixture
def zone() -> Iterator[Callable[[str], None]]:
    """Set the process's time zone (TZ and time.tzset()); the one before is put back after the test."""
    before = os.environ.get("TZ")

    def set_zone(name: str) -> None:
        os.environ["TZ"] = name
        time.tzset()

    yield set_zone
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


LOCAL_TIME_BODIES = {
    "fromtimestamp": "datetime.fromtimestamp(ts).hour",
    "mktime": "int(time.mktime(time.gmtime(ts)))",
    "localtime": "time.localtime(ts).tm_hour",
    "ctime": "time.ctime(ts)",
    "strftime": 'time.strftime("%H %Z", time.gmtime(ts))',
    "astimezone": "datetime.fromtimestamp(ts, timezone.utc).astimezone().hour",
    "naive_timestamp": "int(datetime(2020, 1, 1).timestamp())",
    "pandas_now": "pd.Timestamp.now().hour * 0 + datetime.fromtimestamp(ts).hour",
    "aliased": "fts(ts).hour",
}


@pytest.mark.parametrize("body", LOCAL_TIME_BODIES.values(), ids=LOCAL_TIME_BODIES.keys())
def test_local_time_is_computed_in_the_zone_of_the_call(shell: Shell, zone: Callable[[str], None],
                                                        body: str) -> None:
    shell.run(f"""
        import time
        from datetime import datetime, timezone
        import pandas as pd
        from notebook_memo import memo
        fts = datetime.fromtimestamp

        @memo(ttl="1h")
        def local(ts):
            return {body}

        def truth(ts):
            return {body}
        """)
    zone("UTC")
    assert shell.run("local(0) == truth(0)")
    zone("Asia/Tokyo")
    assert shell.run("local(0) == truth(0)")
    zone("UTC")
    assert shell.run("local(0) == truth(0)")
    assert shell.run("local.cache_info().misses") == 2  # UTC's entry served again


def test_code_without_local_time_hits_in_any_zone(shell: Shell, zone: Callable[[str], None]) -> None:
    shell.run("""
        import time
        from notebook_memo import memo

        @memo(ttl="1h")
        def utc_hour(ts):
            return time.gmtime(ts).tm_hour
        """)
    for name in ("UTC", "Asia/Tokyo"):
        zone(name)
        assert shell.run("utc_hour(0)") == 0
    assert shell.run("utc_hour.cache_info().misses") == 1


TZ_KERNEL = """
    import time
    from datetime import datetime
    from notebook_memo import memo

    @memo
    def local(ts):
        return datetime.fromtimestamp(ts).hour, time.mktime((2020, 1, 1, 0, 0, 0, 0, 0, -1))

    print(local(0) == (datetime.fromtimestamp(0).hour, time.mktime((2020, 1, 1, 0, 0, 0, 0, 0, -1))),
          local.cache_info().misses)
    """


@pytest.mark.parametrize("zones", [("UTC", "Asia/Tokyo"), ("America/New_York", "America/Indiana/Indianapolis")])
def test_kernels_in_two_zones_sharing_a_cache_compute_their_own(tmp_path: Path, cache_dir: Path,
                                                                zones: tuple[str, str]) -> None:
    # New York and Indianapolis have the same names and offsets now, and other rules before 2006.
    first, second = zones
    assert _run(TZ_KERNEL.replace("(0)", "(1e9)"), tmp_path, cache_dir, seed=1, TZ=first) == "True 1"
    assert _run(TZ_KERNEL.replace("(0)", "(1e9)"), tmp_path, cache_dir, seed=2, TZ=second) == "True 1"
    assert _run(TZ_KERNEL.replace("(0)", "(1e9)"), tmp_path, cache_dir, seed=3, TZ=second) == "True 0"
    assert _run(TZ_KERNEL.replace("(0)", "(1e9)"), tmp_path, cache_dir, seed=4, TZ=first) == "True 0"


def test_a_cell_is_keyed_by_the_zone_and_folder_its_code_reads(shell: Shell, zone: Callable[[str], None],
                                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = _folders(tmp_path)
    shell.run("%load_ext notebook_memo")
    cell = """
        %%memo --ttl 1h
        from datetime import datetime
        import os
        hour = datetime.fromtimestamp(0).hour
        text = open(os.path.abspath("data.txt")).read()
        """
    monkeypatch.chdir(a)
    zone("UTC")
    shell.run(cell)
    assert (shell["hour"], shell["text"]) == (0, "from A")
    zone("Asia/Tokyo")
    shell.run(cell)
    assert (shell["hour"], shell["text"]) == (9, "from A")
    monkeypatch.chdir(b)
    shell.run(cell)
    assert (shell["hour"], shell["text"]) == (9, "from B")


# -- the locale's text encoding -------------------------------------------------------------------------------

ENCODING_KERNEL = """
    from pathlib import Path
    from notebook_memo import memo

    @memo
    def read():
        return open("data.txt", errors="replace").read() + " " + Path("data.txt").read_text(errors="replace")

    print(ascii(read()), read.cache_info().misses)
    """
UTF8 = {"PYTHONUTF8": "1"}
ASCII = {"PYTHONUTF8": "0", "LC_ALL": "C"}


def test_a_text_read_without_an_encoding_is_decoded_as_the_kernel_would(tmp_path: Path, cache_dir: Path) -> None:
    (tmp_path / "data.txt").write_bytes("café".encode())
    assert _run(ENCODING_KERNEL, tmp_path, cache_dir, seed=1, **UTF8) == "'caf\\xe9 caf\\xe9' 1"
    assert _run(ENCODING_KERNEL, tmp_path, cache_dir, seed=2, **ASCII) == "'caf\\ufffd\\ufffd caf\\ufffd\\ufffd' 1"
    assert _run(ENCODING_KERNEL, tmp_path, cache_dir, seed=3, **UTF8) == "'caf\\xe9 caf\\xe9' 1"
    assert _run(ENCODING_KERNEL, tmp_path, cache_dir, seed=4, **UTF8) == "'caf\\xe9 caf\\xe9' 0"  # same encoding


def test_a_cell_reading_text_is_decoded_as_the_kernel_would(tmp_path: Path, cache_dir: Path) -> None:
    (tmp_path / "data.txt").write_bytes("café".encode())
    cells = ["%load_ext notebook_memo", '%%memo\ntext = open("data.txt", errors="replace").read()',
             'OUT["text"] = text']
    assert run_kernel(cells, cache_dir, seed=1, env=UTF8)["text"] == "café"
    assert run_kernel(cells, cache_dir, seed=2, env=ASCII)["text"] == "caf\ufffd\ufffd"


# -- a body that changes the environment or the current folder ------------------------------------------------

def _said(shell: Shell, source: str) -> list[str]:
    """Run a cell; return the warnings of ours it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shell.run(source)
    return [str(w.message) for w in caught
            if issubclass(w.category, (MemoWarning, StorageWarning)) and "not cached" in str(w.message)]


@pytest.fixture
def restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment and current folder as they were, after the test (whatever its bodies set)."""
    monkeypatch.chdir(os.getcwd())
    monkeypatch.setenv("NBM_MODE", "before")
    monkeypatch.delenv("NBM_MODE")


WRITER_BODIES = {
    "sets_a_variable": ('os.environ["NBM_MODE"] = "fast"', "environment variable 'NBM_MODE'"),
    "removes_a_variable": ('del os.environ["NBM_MODE"]', "environment variable 'NBM_MODE'"),
    "changes_folder": ("os.chdir(FOLDER)", "current folder"),
    "in_a_helper": ("enter()", "current folder"),
}


@pytest.mark.parametrize("body, said", WRITER_BODIES.values(), ids=WRITER_BODIES.keys())
def test_a_body_that_changes_the_environment_or_folder_is_not_cached(shell: Shell, tmp_path: Path, counter: Counter,
                                                                    restored: None, body: str, said: str) -> None:
    shell.ip.user_ns.update(counter=counter, FOLDER=str(tmp_path))
    shell.run(f"""
        import os
        from notebook_memo import memo

        def enter():
            os.chdir(FOLDER)

        @memo
        def setup():
            counter()
            {body}
            return 1
        """)
    os.environ["NBM_MODE"] = "before"
    warned = _said(shell, "setup()")
    assert len(warned) == 1 and said in warned[0] and "not cached" in warned[0], warned
    os.environ["NBM_MODE"] = "before"
    assert _said(shell, "setup()") == []  # once
    assert counter.n == 2  # it ran again, and did its change again


def test_a_body_that_puts_the_environment_and_folder_back_is_cached(shell: Shell, tmp_path: Path, counter: Counter,
                                                                   restored: None) -> None:
    shell.ip.user_ns.update(counter=counter, FOLDER=str(tmp_path))
    shell.run("""
        import contextlib, os
        from notebook_memo import memo

        @memo
        def visit():
            counter()
            os.environ["NBM_MODE"] = "inside"
            del os.environ["NBM_MODE"]
            with contextlib.chdir(FOLDER):
                return len(os.listdir())
        """)
    assert _said(shell, "visit(); visit()") == []
    assert counter.n == 1


WRITER_KERNEL = """
    import os
    from notebook_memo import memo

    @memo
    def setup():
        os.environ["NBM_MODE"] = "fast"
        return 1

    @memo
    def enter():
        os.chdir("..")
        return 2

    start = os.getcwd()
    setup(); enter()
    print(os.environ.get("NBM_MODE"), os.getcwd() == os.path.dirname(start))
    """


def test_after_a_restart_the_body_still_sets_the_environment_and_folder(tmp_path: Path, cache_dir: Path) -> None:
    assert _run(WRITER_KERNEL, tmp_path, cache_dir, seed=1) == "fast True"
    assert _run(WRITER_KERNEL, tmp_path, cache_dir, seed=2) == "fast True"


def test_an_async_body_that_changes_the_folder_is_not_cached(shell: Shell, tmp_path: Path, counter: Counter,
                                                            restored: None) -> None:
    shell.ip.user_ns.update(counter=counter, FOLDER=str(tmp_path))
    shell.run("""
        import os
        from notebook_memo import memo

        @memo
        async def enter():
            counter()
            os.chdir(FOLDER)
            return 1
        """)
    warned = _said(shell, "await enter()")
    assert len(warned) == 1 and "current folder" in warned[0], warned
    shell.run("await enter()")
    assert counter.n == 2


def test_a_batch_chunk_that_sets_the_environment_is_not_cached(shell: Shell, counter: Counter,
                                                              restored: None) -> None:
    shell.ip.user_ns["counter"] = counter
    shell.run("""
        import os
        from notebook_memo import memo

        @memo.batch("xs", progress=False)
        def scaled(xs):
            counter()
            os.environ["NBM_MODE"] = "fast"
            return [x * 2 for x in xs]
        """)
    warned = _said(shell, "first = scaled([1, 2])")
    assert len(warned) == 1 and "NBM_MODE" in warned[0], warned
    del os.environ["NBM_MODE"]
    shell.run("second = scaled([1, 2])")
    assert (shell["first"], shell["second"], counter.n, os.environ.get("NBM_MODE")) == ([2, 4], [2, 4], 2, "fast")


def test_a_cell_that_changes_the_folder_is_not_cached(shell: Shell, tmp_path: Path, restored: None) -> None:
    start = os.getcwd()
    shell.ip.user_ns["FOLDER"] = str(tmp_path)
    shell.run("%load_ext notebook_memo")
    cell = """
        %%memo
        import os
        os.chdir(FOLDER)
        x = 1
        """
    warned = _said(shell, cell)
    assert len(warned) == 1 and "current folder" in warned[0], warned
    os.chdir(start)
    shell.run(cell)
    assert os.getcwd() == str(tmp_path)  # it ran again


IMPORTING_KERNEL = """
    import os, warnings
    from notebook_memo import memo

    @memo
    def fit():
        import sklearn  # its import sets KMP_DUPLICATE_LIB_OK, as it will wherever it is imported
        return "fitted"

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit()
    print(fit.cache_info().misses, [str(w.message)[:80] for w in caught], "KMP_DUPLICATE_LIB_OK" in os.environ)
    """


def test_a_library_that_sets_the_environment_as_it_is_imported_leaves_the_body_cached(tmp_path: Path,
                                                                                     cache_dir: Path) -> None:
    assert _run(IMPORTING_KERNEL, tmp_path, cache_dir, seed=1) == "1 [] True"
    assert _run(IMPORTING_KERNEL, tmp_path, cache_dir, seed=2) == "0 [] False"


# -- processes the body starts --------------------------------------------------------------------------------

SPAWNING_BODIES = {
    "subprocess_run": 'subprocess.run(["sh", "-c", "echo $NBM_SPLIT"], capture_output=True, text=True).stdout',
    "check_output_shell": 'subprocess.check_output("echo $NBM_SPLIT", shell=True, text=True)',
    "os_popen": 'os.popen("echo $NBM_SPLIT").read()',
    "os_system": 'os.system("echo $NBM_SPLIT > " + OUT) or open(OUT).read()',
    "posix_spawn": 'wait(os.posix_spawn("/bin/sh", ["sh", "-c", "echo $NBM_SPLIT > " + OUT], os.environ)) '
                   "or open(OUT).read()",
    "fork": "forked()",
}


@pytest.mark.parametrize("body", SPAWNING_BODIES.values(), ids=SPAWNING_BODIES.keys())
def test_a_process_the_body_starts_reads_the_environment_of_the_call(shell: Shell, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     body: str) -> None:
    shell.ip.user_ns["OUT"] = str(tmp_path / "out.txt")
    shell.run(f"""
        import os, subprocess
        from notebook_memo import memo

        def wait(pid):
            os.waitpid(pid, 0)

        def forked():
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child runs a program, which reads the environment it inherited
                os.dup2(write, 1)
                os.execv("/bin/sh", ["sh", "-c", "echo $NBM_SPLIT"])
            os.close(write)
            wait(pid)
            with os.fdopen(read) as f:
                return f.read()

        @memo
        def split():
            return {body}.strip()
        """)
    monkeypatch.setenv("NBM_SPLIT", "train")
    assert shell.run("split()") == "train"
    monkeypatch.setenv("NBM_SPLIT", "test")
    # os.environ passed whole (posix_spawn's env) is keyed too: the key says so first
    said = shell.run("str(split.explain())")
    assert "the environment differs" in said or "os.environ (all variables) changed" in said
    assert shell.run("split()") == "test"
    assert shell.run("split(), split.cache_info().misses") == ("test", 2)  # unchanged since: served


def test_a_process_started_in_the_current_folder_runs_in_the_folder_of_the_call(shell: Shell, tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = _folders(tmp_path)
    shell.run("""
        import subprocess
        from notebook_memo import memo

        @memo
        def listed():
            return subprocess.run(["cat", "data.txt"], capture_output=True, text=True).stdout
        """)
    monkeypatch.chdir(a)
    assert shell.run("listed()") == "from A"
    monkeypatch.chdir(b)
    assert shell.run("listed()") == "from B"
    assert f"the current folder is {b}" in shell.run("str(listed.explain())")


def test_a_process_given_its_environment_and_folder_hits_whatever_the_kernel_s(shell: Shell, tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = _folders(tmp_path)
    shell.ip.user_ns["FOLDER"] = str(a)
    shell.run("""
        import subprocess
        from notebook_memo import memo

        @memo
        def split(name):
            return subprocess.run(["sh", "-c", "cat data.txt; echo $NBM_SPLIT"], env={"NBM_SPLIT": name}, cwd=FOLDER,
                                  capture_output=True, text=True).stdout
        """)
    for folder, value in ((a, "train"), (b, "test")):
        monkeypatch.chdir(folder)
        monkeypatch.setenv("NBM_SPLIT", value)
        assert shell.run("split('x')") == "from Ax\n"
    assert shell.run("split.cache_info().misses") == 1


SPAWNING_KERNEL = """
    import os, subprocess
    os.environ.pop("PYTHONHASHSEED")  # as in a notebook's kernel: this test's restarts set it, Jupyter does not
    os.environ["SHLVL"] = str(os.getpid())  # the session's own variables differ from kernel to kernel
    from notebook_memo import memo

    @memo
    def split():
        return subprocess.run(["sh", "-c", "echo $NBM_SPLIT"], capture_output=True, text=True).stdout.strip()

    print(split(), split.cache_info().misses)
    """


def test_a_process_the_body_starts_hits_after_a_restart_in_the_same_environment(tmp_path: Path,
                                                                               cache_dir: Path) -> None:
    assert _run(SPAWNING_KERNEL, tmp_path, cache_dir, seed=1, NBM_SPLIT="train") == "train 1"
    assert _run(SPAWNING_KERNEL, tmp_path, cache_dir, seed=2, NBM_SPLIT="train") == "train 0"
    assert _run(SPAWNING_KERNEL, tmp_path, cache_dir, seed=3, NBM_SPLIT="test") == "test 1"


def test_a_cell_that_starts_a_process_runs_again_when_the_environment_changed(shell: Shell,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    shell.run("%load_ext notebook_memo")
    cell = """
        %%memo
        import subprocess
        split = subprocess.run(["sh", "-c", "echo $NBM_SPLIT"], capture_output=True, text=True).stdout.strip()
        """
    for value in ("train", "test"):
        monkeypatch.setenv("NBM_SPLIT", value)
        shell.run(cell)
        assert shell["split"] == value


@pytest.mark.parametrize("damaged", [{"environment": 5}, {"environment": ["x"]}, {"cwd": 7, "home": [1]},
                                     {"encoding": {"a": 1}}])
def test_a_damaged_process_condition_is_a_miss_not_an_error(shell: Shell, damaged: dict[str, object]) -> None:
    from notebook_memo._memo import save
    from notebook_memo._serialize import dumps

    shell.run("""
        import subprocess
        from notebook_memo import memo

        @memo
        def echo():
            return subprocess.run(["echo", "hi"], capture_output=True, text=True).stdout
        """)
    assert shell.run("echo()") == "hi\n"
    fn = shell["echo"]
    # The process started in the current folder: the entry is that folder's, beside the marker that leads to it.
    (record,) = [entry for entry in fn.entries() if "pre" in entry.header.meta()]
    meta = record.header.meta()
    meta["pre"].update(damaged)  # as a writer of another version, or a hostile one holding the secret, left it
    assert save(fn._store(), record.key, dumps("planted"), meta, None, 0.1, fn._fid)
    assert "MISS" in shell.run("str(echo.explain())")
    assert shell.run("echo(), echo.cache_info().misses") == ("hi\n", 2)


# -- what the import system reads is no data, wherever Python lies ------------------------------------------

LOOKS_UP_ENTRY_POINTS = """
import importlib.metadata
from notebook_memo import memo

@memo
def plugins():
    print("RAN")
    return len(importlib.metadata.entry_points(group="nbm-none"))  # looks for every sys.path entry, zips too

plugins()
print(plugins.explain_last() or "")
"""


def test_a_body_whose_library_looks_up_installed_packages_hits_under_another_home(tmp_path: Path) -> None:
    """importlib.metadata opens python3X.zip of sys.path (which need not exist): with Python installed in the
    home folder (pyenv, conda, uv), that read made the entry depend on the home folder, a miss for a teammate."""
    cache, home = tmp_path / "cache", tmp_path / "home"
    home.mkdir()
    assert "RAN" in _run(LOOKS_UP_ENTRY_POINTS, tmp_path, cache, 1)
    again = _run(LOOKS_UP_ENTRY_POINTS, tmp_path, cache, 2, HOME=str(home))
    assert "RAN" not in again, again


PROBES_THE_MACHINE = """
import platform
from notebook_memo import memo

@memo
def machine():
    print("RAN")
    return platform.processor()  # runs uname -p: a library's own probe, not a program of the user's

machine()
"""


def test_a_process_a_library_starts_to_probe_the_machine_does_not_tie_the_entry_to_folder_or_environment(
        tmp_path: Path) -> None:
    """A library's own probe (platform running uname, loky running lscpu for every scikit-learn fit) made the
    entry depend on the whole environment and the folder: a miss in a kernel started elsewhere."""
    a, b = _folders(tmp_path)
    cache = tmp_path / "cache"
    assert "RAN" in _run(PROBES_THE_MACHINE, a, cache, 1)
    again = _run(PROBES_THE_MACHINE, b, cache, 2, EDITOR="vim", JUPYTERHUB_API_TOKEN="t2")
    assert "RAN" not in again, again
