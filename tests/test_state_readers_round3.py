"""What a body reads of the process and the machine without naming a file or a variable: where symbolic links
lead (os.readlink, os.path.realpath, Path.resolve, os.path.samefile, os.path.islink), the local time zone read as
attributes of ``time``, its standard input, the operating system's randomness by routes other than os.urandom, and
os.environ's methods reached through getattr. Real shells, real links retargeted, real processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import RUNS_SETUP, Shell, run_kernel

# -- where a link leads ---------------------------------------------------------------------------------------

LINK_READERS = {
    "readlink": "os.readlink(LINK)",
    "realpath": "os.path.realpath(LINK)",
    "resolve": "str(pathlib.Path(LINK).resolve())",
    "samefile": "os.path.samefile(LINK, V1)",
    "islink": "os.path.islink(LINK)",
    "path_readlink": "str(pathlib.Path(LINK).readlink())",
    "inside": "os.path.realpath(LINK + '/data.txt')",
}


@pytest.mark.parametrize("reader", sorted(LINK_READERS))
def test_a_retargeted_link_is_read_again(shell: Shell, tmp_path: Path, reader: str) -> None:
    for name in ("v1", "v2"):
        (tmp_path / name).mkdir()
    link = tmp_path / "current"
    link.symlink_to(tmp_path / "v1")
    shell.run(f"""
        import os, pathlib
        from notebook_memo import memo
        LINK, V1 = {str(link)!r}, {str(tmp_path / "v1")!r}

        @memo
        def where():
            return {LINK_READERS[reader]}

        first = where()
        again = where()
    """)
    assert shell["first"] == shell["again"]
    assert where_hits(shell) == 1
    link.unlink()
    if reader == "islink":
        (tmp_path / "current").mkdir()  # a link replaced by a folder of that name
    else:
        link.symlink_to(tmp_path / "v2")
    shell.run("after = where()")
    assert shell["after"] != shell["first"]


def where_hits(shell: Shell) -> int:
    return int(shell["where"].cache_info().hits)


def test_a_link_named_by_a_constant_is_read_again(shell: Shell, tmp_path: Path) -> None:
    for name in ("v1", "v2"):
        (tmp_path / name).mkdir()
    link = tmp_path / "current"
    link.symlink_to(tmp_path / "v1")
    shell.run(f"""
        import os
        from notebook_memo import memo

        @memo
        def where():
            return os.readlink({str(link)!r}), os.path.realpath({str(link)!r})

        first = where()
    """)
    link.unlink()
    link.symlink_to(tmp_path / "v2")
    shell.run("after = where()")
    assert shell["after"] == (str(tmp_path / "v2"), str(tmp_path / "v2"))


def test_a_cell_that_reads_a_link_runs_again_when_it_is_retargeted(shell: Shell, tmp_path: Path) -> None:
    for name in ("v1", "v2"):
        (tmp_path / name).mkdir()
    link = tmp_path / "current"
    link.symlink_to(tmp_path / "v1")
    shell.run("%load_ext notebook_memo")
    cell = f"%%memo\nimport os\ntarget = os.readlink({str(link)!r})\n"
    shell.run(cell)
    assert shell["target"] == str(tmp_path / "v1")
    link.unlink()
    link.symlink_to(tmp_path / "v2")
    shell.run(cell)
    assert shell["target"] == str(tmp_path / "v2")


def test_a_missing_link_that_appears_is_read_again(shell: Shell, tmp_path: Path) -> None:
    link = tmp_path / "current"
    shell.run(f"""
        import os
        from notebook_memo import memo

        @memo
        def pointed():
            return os.path.islink({str(link)!r})

        first = pointed()
    """)
    assert shell["first"] is False
    link.symlink_to(tmp_path)
    shell.run("after = pointed()")
    assert shell["after"] is True


def test_a_link_read_is_checked_after_a_restart(tmp_path: Path, cache_dir: Path) -> None:
    for name in ("v1", "v2"):
        (tmp_path / name).mkdir()
    link = tmp_path / "current"
    link.symlink_to(tmp_path / "v1")
    cells = [RUNS_SETUP, f"""
        import pathlib

        @memo
        def where():
            ran("where")
            return str(pathlib.Path({str(link)!r}).resolve())

        OUT["where"] = where()
        OUT["runs"] = RUNS.get("where", 0)
    """]
    first = run_kernel(cells, cache_dir, seed=1)
    again = run_kernel(cells, cache_dir, seed=2)
    assert (first["where"], first["runs"]) == (str(tmp_path / "v1"), 1)
    assert (again["where"], again["runs"]) == (str(tmp_path / "v1"), 0)  # unchanged: served after a restart
    link.unlink()
    link.symlink_to(tmp_path / "v2")
    after = run_kernel(cells, cache_dir, seed=3)
    assert (after["where"], after["runs"]) == (str(tmp_path / "v2"), 1)


def test_explain_says_which_links_a_hit_was_checked_against(shell: Shell, tmp_path: Path) -> None:
    link = tmp_path / "current"
    link.symlink_to(tmp_path)
    shell.run(f"""
        import os
        from notebook_memo import memo

        @memo
        def where():
            return os.readlink({str(link)!r})

        where()
        where()
        report = str(where.explain())
    """)
    assert f"checked: where {link} leads" in shell["report"]


# -- the local time zone read as attributes of time --------------------------------------------------------

ZONE_CELLS = [RUNS_SETUP, """
import time
import time as clock
from time import timezone

@memo
def offset():
    ran("offset")
    return -time.timezone // 3600

@memo
def names():
    ran("names")
    return list(time.tzname)

@memo
def summer():
    ran("summer")
    return (clock.altzone, clock.daylight)

@memo
def imported():
    ran("imported")
    return timezone

@memo
def gmtoff():
    ran("gmtoff")
    return time.localtime(0).tm_gmtoff

OUT["answers"] = [offset(), names(), summer(), imported(), gmtoff()]
OUT["runs"] = dict(RUNS)
"""]


def test_the_time_zone_read_as_attributes_keys_the_result(cache_dir: Path) -> None:
    utc = run_kernel(ZONE_CELLS, cache_dir, seed=1, env={"TZ": "UTC0"})
    eastern = run_kernel(ZONE_CELLS, cache_dir, seed=2, env={"TZ": "EST5EDT"})
    utc_again = run_kernel(ZONE_CELLS, cache_dir, seed=3, env={"TZ": "UTC0"})
    assert utc["answers"] == [0, ["UTC", "UTC"], [0, 0], 0, 0]
    assert eastern["answers"] == [-5, ["EST", "EDT"], [4 * 3600, 1], 5 * 3600, -5 * 3600]
    assert len(eastern["runs"]) == 5
    assert utc_again["answers"] == utc["answers"] and utc_again["runs"] == {}  # each zone's entry is served


# -- randomness from the operating system by other routes --------------------------------------------------------

OTHER_ENTROPY = {
    "getrandom": "os.getrandom(8).hex()",
    "ssl": "ssl.RAND_bytes(8).hex()",
    "token_bytes": "secrets.token_bytes(8).hex()",
    "system_random": "SYSTEM.random()",
}


@pytest.mark.parametrize("source", sorted(OTHER_ENTROPY))
def test_other_roads_to_the_operating_systems_randomness_warn(shell: Shell, source: str) -> None:
    shell.run(f"""
        import os, secrets, ssl, random, warnings
        from notebook_memo import memo
        SYSTEM = random.SystemRandom()

        @memo
        def token():
            return {OTHER_ENTROPY[source]}

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            token()
        found = [str(w.message) for w in caught if "random" in str(w.message)]
    """)
    assert shell["found"], f"{OTHER_ENTROPY[source]} cached with no warning"


ALIAS_CELLS = ["""
import warnings
from os import urandom
from os import getrandom
from ssl import RAND_bytes
from os import readlink
warnings.simplefilter("always")
from notebook_memo import memo

@memo
def by_urandom():
    return urandom(8).hex()

@memo
def by_getrandom():
    return getrandom(8).hex()

@memo
def by_ssl():
    return RAND_bytes(8).hex()

@memo
def by_readlink():
    return readlink(LINK)
""", """
import os
LINK = OUT["link"] = os.path.join(os.getcwd(), "current")
os.symlink(os.getcwd(), LINK)
for fn in (by_urandom, by_getrandom, by_ssl, by_readlink):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    OUT[fn.__name__] = [str(w.message) for w in caught]
os.remove(LINK)
"""]


def test_readers_bound_by_name_before_the_library_was_imported_warn(cache_dir: Path) -> None:
    out = run_kernel(ALIAS_CELLS, cache_dir)
    for name in ("by_urandom", "by_getrandom", "by_ssl"):
        assert any("operating system" in w and "random" in w for w in out[name]), (name, out[name])
    assert any("readlink" in w and "link" in w for w in out["by_readlink"]), out["by_readlink"]


# -- os.environ's methods reached through getattr ---------------------------------------------------------------

ENVIRON_BY_GETATTR = {
    "method": 'getattr(os.environ, "get")("NBM_ROUND3_MODE")',
    "method_then_default": 'getattr(os.environ, "get")("NBM_ROUND3_MODE", "none")',
    "environ_then_method": 'getattr(os, "environ").get("NBM_ROUND3_MODE")',
    "getenv": 'getattr(os, "getenv")("NBM_ROUND3_MODE")',
}


@pytest.mark.parametrize("form", sorted(ENVIRON_BY_GETATTR))
def test_an_environment_variable_read_through_getattr_is_keyed(shell: Shell, form: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBM_ROUND3_MODE", "a")
    shell.run(f"""
        import os
        from notebook_memo import memo

        @memo
        def mode():
            return {ENVIRON_BY_GETATTR[form]}

        first = mode()
    """)
    monkeypatch.setenv("NBM_ROUND3_MODE", "b")
    shell.run("after = mode()")
    assert (shell["first"], shell["after"]) == ("a", "b")


def test_a_method_of_os_environ_named_at_run_time_keys_every_variable(shell: Shell,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBM_ROUND3_MODE", "a")
    shell.run("""
        import os
        from notebook_memo import memo
        HOW = "get"

        @memo
        def mode():
            return getattr(os.environ, HOW)("NBM_ROUND3_MODE")

        first = mode()
    """)
    monkeypatch.setenv("NBM_ROUND3_MODE", "b")  # HOW is no variable's name: not keyed as one
    assert (shell["first"], shell.run("mode()")) == ("a", "b")


# -- the standard input ---------------------------------------------------------------------------------------

STDIN_SCRIPT = """
import sys, warnings
warnings.simplefilter("always")
from notebook_memo import memo

@memo
def ask():
    return input()

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    answer = ask()
print("ANSWER", answer, "|".join(str(w.message) for w in caught))
"""


def test_a_body_reading_the_standard_input_warns_in_every_process(tmp_path: Path, cache_dir: Path) -> None:
    script = tmp_path / "ask.py"
    script.write_text(STDIN_SCRIPT)
    env = {**os.environ, "NOTEBOOK_MEMO_DIR": str(cache_dir), "PYTHONPATH": str(Path(__file__).parent.parent)}
    for typed in ("A\n", "B\n"):
        out = subprocess.run([sys.executable, str(script)], input=typed, capture_output=True, text=True, env=env,
                             timeout=120, check=True).stdout
        assert "standard input" in out, out


STDIN_READERS = {
    "readline": "sys.stdin.readline()",
    "read": "sys.stdin.read()",
    "stdin_by_name": "stdin.readline() if NEVER else 1",
    "dunder": "sys.__stdin__.readline() if NEVER else 1",
    "getpass": "getpass.getpass() if NEVER else 1",
    "fileinput": "list(fileinput.input()) if NEVER else 1",
}


@pytest.mark.parametrize("reader", sorted(STDIN_READERS))
def test_other_readers_of_the_standard_input_warn(shell: Shell, reader: str) -> None:
    shell.run(f"""
        import fileinput, getpass, io, sys, warnings
        saved, sys.stdin = sys.stdin, io.StringIO("typed\\n")
        from sys import stdin
        NEVER = False  # reads none: only what the code names is judged
        from notebook_memo import memo

        @memo
        def ask():
            return {STDIN_READERS[reader]}

        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                ask()
        finally:
            sys.stdin = saved
        found = [str(w.message) for w in caught if "standard input" in str(w.message)]
    """)
    assert shell["found"]


def test_a_link_read_by_an_entry_served_inside_another_body_is_that_bodys_too(shell: Shell, tmp_path: Path) -> None:
    for name in ("v1", "v2"):
        (tmp_path / name).mkdir()
    link = tmp_path / "current"
    link.symlink_to(tmp_path / "v1")
    shell.run(f"""
        import os
        from notebook_memo import memo

        @memo
        def inner():
            return os.readlink({str(link)!r})

        @memo
        def outer(n):
            return inner() + "/" + str(n)

        inner()
        first = outer(1)  # inner is served inside outer's run: its link becomes outer's condition
    """)
    link.unlink()
    link.symlink_to(tmp_path / "v2")
    shell.run("after = outer(1)")
    assert shell["first"] == f"{tmp_path / 'v1'}/1"
    assert shell["after"] == f"{tmp_path / 'v2'}/1"
