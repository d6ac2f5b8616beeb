"""What a body reads of its process where no constant shows it: the locale through a format spec that is no
literal (a global text, an argument) and through calendar's names of days and months, each keyed by the one
category it reads; the environment read whole, with the session's own variables left out but no variable a
program's output depends on; the CPUs counted; asserts that ``python -O`` strips; and the standard input read
through descriptor 0 by another name. Real shells, real processes started with other hash seeds, environments,
flags, CPU sets and input."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT, Shell
from tests.test_environment_round4 import _run, german

__all__ = ["german"]  # the fixture, used here by name


def _run_file(script: str, cwd: Path, cache_dir: Path, seed: int, *flags: str, stdin: str = "") -> str:
    """Run ``script`` from a file in ``cwd`` (code whose source can be read, as a notebook's), in a fresh process
    given ``stdin``; return what it printed."""
    path = cwd / "kernel.py"
    path.write_text(textwrap.dedent(script))
    environment = {**os.environ, "PYTHONHASHSEED": str(seed), "NOTEBOOK_MEMO_DIR": str(cache_dir),
                   "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, *flags, str(path)], input=stdin, capture_output=True, text=True,
                          env=environment, cwd=str(cwd), timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


# -- the locale, by a spec that is no literal --------------------------------------------------------------------

# Each body is ``def shown(x, n="n", t="%A")`` in a cell defining FMT = "{:n}", FMAP = "{v:n}", NSPEC = "n" and
# TFMT = "%A": the spec reaches the formatting as a global's text, an argument's or calendar's own.
SPEC_READERS = {
    "global_text_format": "FMT.format(x)",
    "global_text_format_map": "FMAP.format_map({'v': x})",
    "global_spec_of_format": "format(x, NSPEC)",
    "argument_spec_of_format": "format(x, n)",
    "argument_spec_of_fstring": "f'{x:{n}}'",
    "argument_spec_of_a_date": "format(datetime.date(1970, 1, 1), t)",
    "global_strftime": "time.strftime(TFMT, (1970, 1, 1, 0, 0, 0, 3, 1, 0))",
    "argument_strftime": "datetime.date(1970, 1, 1).strftime(t)",
    "calendar_day_name": "calendar.day_name[3]",
    "calendar_month_abbr_imported": "month_abbr[3]",
    "calendar_text_calendar": "calendar.TextCalendar().formatmonthname(1970, 3, 20)",
}


@pytest.mark.parametrize("reader", sorted(SPEC_READERS))
def test_a_body_formatting_by_a_spec_that_is_no_literal_runs_again_when_the_locale_changes(
        shell: Shell, german: Path, reader: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import locale

    monkeypatch.setenv("LOCPATH", str(german))
    saved = locale.setlocale(locale.LC_ALL)
    try:
        shell.run(f"""
            import calendar, datetime, locale, time
            from calendar import month_abbr
            from notebook_memo import memo
            FMT, FMAP, NSPEC, TFMT = "{{:n}}", "{{v:n}}", "n", "%A"

            @memo
            def shown(x, n="n", t="%A"):
                return {SPEC_READERS[reader]}

            locale.setlocale(locale.LC_ALL, "C.UTF-8")
            first = shown(1234.5)
            locale.setlocale(locale.LC_ALL, "de_DE.UTF-8")
            after = shown(1234.5)
            truth = shown.uncached(1234.5)
        """)
    finally:
        locale.setlocale(locale.LC_ALL, saved)
    assert shell["truth"] != shell["first"]
    assert shell["after"] == shell["truth"]


def test_a_global_text_that_formats_nothing_by_the_locale_keys_no_locale(shell: Shell) -> None:
    import locale

    saved = locale.setlocale(locale.LC_ALL)
    try:
        shell.run("""
            import locale
            from notebook_memo import memo
            PLAIN = "{:.2f}"

            @memo
            def shown(x):
                return PLAIN.format(x)

            locale.setlocale(locale.LC_ALL, "C.UTF-8")
            shown(1.5)
            locale.setlocale(locale.LC_ALL, "C")
            shown(1.5)
        """)
    finally:
        locale.setlocale(locale.LC_ALL, saved)
    assert shell.run("shown.cache_info().hits") == 1


# -- each construct keyed by the category it reads ---------------------------------------------------------------

CATEGORY_SCRIPT = """
    import datetime, locale
    from notebook_memo import memo

    @memo
    def total(x):
        print("ran total")
        return format(x, "n")

    @memo
    def month(d):
        print("ran month")
        return d.strftime("%d %b %Y")

    @memo
    def ordered(words):
        print("ran ordered")
        return sorted(words, key=locale.strxfrm)

    print(total(1234567), month(datetime.date(2024, 1, 5)), ordered(["b", "a"]))
"""


def test_formatting_by_the_locale_hits_in_a_kernel_whose_character_set_alone_differs(
        tmp_path: Path, cache_dir: Path, german: Path) -> None:
    # Python sets only LC_CTYPE from LANG at start-up: numbers and dates are formatted as in C in both kernels.
    unset = {name: "" for name in ("LC_ALL", "LC_CTYPE", "LC_NUMERIC", "LC_TIME", "LC_COLLATE")}
    first = _run(CATEGORY_SCRIPT, tmp_path, cache_dir, 1, LANG="C.UTF-8", LOCPATH=str(german), **unset)
    assert first == "ran total\nran month\nran ordered\n1234567 05 Jan 2024 ['a', 'b']"
    again = _run(CATEGORY_SCRIPT, tmp_path, cache_dir, 2, LANG="de_DE.UTF-8", LOCPATH=str(german), **unset)
    # The locale module used directly keys every category, the character set included.
    assert again == "ran ordered\n1234567 05 Jan 2024 ['a', 'b']"


def test_a_number_spec_is_keyed_by_the_number_category_and_a_date_by_the_time_category(
        shell: Shell, german: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import locale

    monkeypatch.setenv("LOCPATH", str(german))
    saved = locale.setlocale(locale.LC_ALL)
    try:
        shell.run("""
            import datetime, locale
            from notebook_memo import memo

            @memo
            def total(x):
                return format(x, "n")

            @memo
            def month(d):
                return d.strftime("%b")

            locale.setlocale(locale.LC_ALL, "C.UTF-8")
            first = total(1234.5), month(datetime.date(2024, 3, 1))
            locale.setlocale(locale.LC_TIME, "de_DE.UTF-8")
            times = total(1234.5), month(datetime.date(2024, 3, 1))
            locale.setlocale(locale.LC_NUMERIC, "de_DE.UTF-8")
            numbers = total(1234.5), month(datetime.date(2024, 3, 1))
        """)
    finally:
        locale.setlocale(locale.LC_ALL, saved)
    assert shell["first"] == ("1234.5", "Mar")
    assert shell["times"] == ("1234.5", "Mär")
    assert shell["numbers"] == ("1.234,5", "Mär")
    assert shell.run("total.cache_info().hits, month.cache_info().hits") == (1, 1)


# -- the environment read whole: what a program's output depends on is no session variable -------------------------

TERMINAL_SCRIPT = """
    import os, subprocess, sys
    from notebook_memo import memo

    @memo
    def shown():
        print("ran")
        env = dict(os.environ)
        return env.get("COLUMNS"), env.get("LINES"), env.get("DISPLAY"), env.get("XAUTHORITY")

    @memo
    def width():
        print("ran")
        return subprocess.run([sys.executable, "-c", "import shutil; print(shutil.get_terminal_size().columns)"],
                              capture_output=True, text=True).stdout.strip()

    print(shown(), width())
"""


@pytest.mark.parametrize("variable", ["COLUMNS", "LINES", "DISPLAY", "XAUTHORITY"])
def test_the_terminal_and_display_variables_are_keyed_where_the_environment_is_read_whole(
        tmp_path: Path, cache_dir: Path, variable: str) -> None:
    # One PYTHONHASHSEED: a kernel has none set (a process the body starts would inherit it).
    start = {"COLUMNS": "80", "LINES": "24", "DISPLAY": ":1", "XAUTHORITY": "/tmp/a"}
    first = _run(TERMINAL_SCRIPT, tmp_path, cache_dir, 1, **start)
    assert first.startswith("ran\nran\n") and first.endswith(" 80")
    assert _run(TERMINAL_SCRIPT, tmp_path, cache_dir, 1, **start) == first.removeprefix("ran\nran\n")
    changed = {**start, variable: {"COLUMNS": "160", "LINES": "50", "DISPLAY": ":2", "XAUTHORITY": "/tmp/b"}[variable]}
    after = _run(TERMINAL_SCRIPT, tmp_path, cache_dir, 1, **changed)
    assert after.startswith("ran\nran\n") and changed[variable] in after


# -- the environment read whole: per-shell ids are the session's ---------------------------------------------------

SESSION_SCRIPT = """
    import os, subprocess
    from notebook_memo import memo

    @memo
    def settings():
        print("ran")
        return {k: v for k, v in os.environ.items() if k.startswith("NBM_R5_")}

    def setting(name, default=""):
        return os.environ.get(name, default)

    @memo
    def url(path):
        print("ran")
        return setting("NBM_R5_URL", "http://localhost") + path

    print(settings(), url("/a"))
"""

SHELL_IDS = ("STARSHIP_SESSION_KEY", "ATUIN_SESSION", "_P9K_TTY", "P9K_TTY", "GIO_LAUNCHED_DESKTOP_FILE_PID",
             "TERMINATOR_UUID", "TILIX_ID", "ZELLIJ", "ZELLIJ_SESSION_NAME", "ZELLIJ_PANE_ID", "MC_SID",
             "__MISE_SESSION", "Apple_PubSub_Socket_Render", "__CFBundleIdentifier", "LC_TERMINAL",
             "LC_TERMINAL_VERSION", "SHELL_SESSION_ID", "MCFLY_SESSION_ID", "WSL_INTEROP", "XDG_VTNR", "SWAYSOCK",
             "HISTFILE", "__INTELLIJ_COMMAND_HISTFILE__", "KRB5CCNAME",
             # a batch scheduler's ids of the job a kernel runs in (its allocation, SLURM_CPUS_PER_TASK..., stays keyed)
             "SLURM_JOB_ID", "SLURM_JOBID", "SLURM_TASK_PID", "SLURM_STEP_ID", "SLURM_STEPID", "PBS_JOBID",
             "LSB_JOBID")


def test_the_environment_read_whole_hits_after_a_restart_from_another_shell(tmp_path: Path,
                                                                           cache_dir: Path) -> None:
    # One PYTHONHASHSEED: a kernel has none set (a process the body starts would inherit it).
    first = {name: f"{name.lower()}-1" for name in SHELL_IDS}
    second = {name: f"{name.lower()}-2" for name in SHELL_IDS}
    assert _run(SESSION_SCRIPT, tmp_path, cache_dir, 1, NBM_R5_URL="http://svc", **first) \
        == "ran\nran\n{'NBM_R5_URL': 'http://svc'} http://svc/a"
    assert _run(SESSION_SCRIPT, tmp_path, cache_dir, 1, NBM_R5_URL="http://svc", **second) \
        == "{'NBM_R5_URL': 'http://svc'} http://svc/a"
    assert _run(SESSION_SCRIPT, tmp_path, cache_dir, 1, NBM_R5_URL="http://other", **second) \
        == "ran\nran\n{'NBM_R5_URL': 'http://other'} http://other/a"


# -- the CPUs: a count keys the count, the affinity the CPUs ------------------------------------------------------

CPU_COUNTS = {"os": "os.cpu_count()", "multiprocessing": "multiprocessing.cpu_count()"}


@pytest.mark.parametrize("reader", sorted(CPU_COUNTS))
def test_a_body_counting_the_machine_s_cpus_hits_where_the_process_may_use_fewer(shell: Shell, reader: str) -> None:
    allowed = os.sched_getaffinity(0)
    try:
        shell.run(f"""
            import multiprocessing, os
            from notebook_memo import memo

            @memo
            def pool_size():
                return {CPU_COUNTS[reader]}

            first = pool_size()
            os.sched_setaffinity(0, {{min(os.sched_getaffinity(0))}})  # as taskset -c 0 would start it
            after = pool_size()
        """)
    finally:
        os.sched_setaffinity(0, allowed)
    assert shell["first"] == shell["after"] == os.cpu_count()
    assert shell.run("pool_size.cache_info().hits") == 1


def test_a_body_counting_the_machine_s_cpus_hits_after_a_restart_under_taskset(tmp_path: Path,
                                                                             cache_dir: Path) -> None:
    script = """
        import os
        from notebook_memo import memo

        @memo
        def pool_size():
            print("ran")
            return os.cpu_count()

        @memo
        def usable():
            print("ran")
            return len(os.sched_getaffinity(0))

        print(pool_size(), usable())
    """
    cpus = os.cpu_count()
    assert _run(script, tmp_path, cache_dir, 1) == f"ran\nran\n{cpus} {len(os.sched_getaffinity(0))}"
    one = sorted(os.sched_getaffinity(0))[0]
    assert _run(script, tmp_path, cache_dir, 2, prefix=("taskset", "-c", str(one))) == f"ran\n{cpus} 1"


# -- asserts that python -O strips -------------------------------------------------------------------------------

OPTIMIZE_SCRIPT = """
    import checks
    from notebook_memo import memo

    @memo
    def body_assert(x):
        print("ran")
        try:
            assert x > 0
            return "passed"
        except AssertionError:
            return "rejected"

    @memo
    def helper_assert(x):
        print("ran")
        try:
            return "passed %d" % checks.validate(x)
        except AssertionError:
            return "rejected"

    @memo
    def debugging(x):
        print("ran")
        return x if __debug__ else -x

    @memo
    def plain(x):
        print("ran")
        return x * 2

    print(body_assert(-1), helper_assert(-1), debugging(1), plain(1))
"""


def test_code_holding_an_assert_or_reading_debug_is_keyed_by_python_s_optimize_flag(tmp_path: Path,
                                                                                      cache_dir: Path) -> None:
    (tmp_path / "checks.py").write_text("def validate(x):\n    assert x > 0, 'negative'\n    return x\n")
    assert _run_file(OPTIMIZE_SCRIPT, tmp_path, cache_dir, 1) == "ran\nran\nran\nran\nrejected rejected 1 2"
    assert _run_file(OPTIMIZE_SCRIPT, tmp_path, cache_dir, 2) == "rejected rejected 1 2"
    # Under -O (-OO alike) the asserts are gone and __debug__ is False; the body without either still hits.
    assert _run_file(OPTIMIZE_SCRIPT, tmp_path, cache_dir, 3, "-O") == "ran\nran\nran\npassed passed -1 -1 2"
    assert _run_file(OPTIMIZE_SCRIPT, tmp_path, cache_dir, 4, "-OO") == "passed passed -1 -1 2"


# -- the standard input through descriptor 0 by another name -------------------------------------------------------

STDIN_NAMED = {
    "global_descriptor": "os.read(STDIN, 3).decode()",
    "module_constant": "os.read(pty.STDIN_FILENO, 3).decode()",
    "local_descriptor": "(fd := 0, os.read(fd, 3).decode())[1]",
    "local_descriptor_readv": "(fd := 0, buf := bytearray(3), os.readv(fd, [buf]), buf.decode())[3]",
    "local_descriptor_fdopen": "(fd := 0, os.fdopen(fd).read(3))[1]",
    "argument_descriptor": "os.read(n, 3).decode()",
}


@pytest.mark.parametrize("route", sorted(STDIN_NAMED))
def test_reading_descriptor_0_by_another_name_warns(tmp_path: Path, cache_dir: Path, route: str) -> None:
    script = f"""
        import os, pty, warnings
        from notebook_memo import memo
        STDIN = 0

        @memo
        def ask(n=0):
            return {STDIN_NAMED[route]}

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            answer = ask()
        print("ANSWER", answer, "|".join(str(w.message) for w in caught))
    """
    out = _run_file(script, tmp_path, cache_dir, 1, stdin="AAABBB")
    assert out.startswith("ANSWER AAA") and "standard input" in out, out


def test_reading_a_descriptor_other_than_0_does_not_warn(tmp_path: Path, cache_dir: Path) -> None:
    (tmp_path / "data.bin").write_bytes(b"xyz")
    script = """
        import os, warnings
        from notebook_memo import memo

        @memo
        def head(path):
            fd = os.open(path, os.O_RDONLY)
            try:
                return os.read(fd, 3).decode()
            finally:
                os.close(fd)

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            answer = head("data.bin")
        print("ANSWER", answer, "|".join(str(w.message) for w in caught))
    """
    assert _run_file(script, tmp_path, cache_dir, 1, stdin="AAA") == "ANSWER xyz"
