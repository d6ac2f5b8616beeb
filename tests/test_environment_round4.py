"""What a body reads of its process that no argument or file names: the locale (locale's functions, ``format(x,
"n")``, ``strftime("%A")``), environment variables that standard-library functions read by their own names
(proxies, the terminal's size), the environment read as a whole (``os.environ.copy()``, ``dict(os.environ)``) or
by a name held in a global, and facts of the process (``sys.flags``, the CPUs it may use). Real shells, real
processes started with other hash seeds, environments and CPU sets."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, Shell


def _run(script: str, cwd: Path, cache_dir: Path, seed: int, *flags: str, prefix: tuple[str, ...] = (),
         **env: str) -> str:
    """Run ``script`` in a fresh process (a restarted kernel) in ``cwd``; return what it printed."""
    environment = {**os.environ, "PYTHONHASHSEED": str(seed), "NOTEBOOK_MEMO_DIR": str(cache_dir),
                   "PYTHONPATH": str(ROOT), **env}
    proc = subprocess.run([*prefix, sys.executable, *flags, "-W", "always", "-c", textwrap.dedent(script)],
                          capture_output=True, text=True, env=environment, cwd=str(cwd), timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


# -- the locale ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def german(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder holding the de_DE.UTF-8 locale, built from the system's sources (for LOCPATH)."""
    folder = tmp_path_factory.mktemp("locales")
    subprocess.run(["localedef", "-i", "de_DE", "-f", "UTF-8", str(folder / "de_DE.UTF-8")], check=True,
                   capture_output=True, timeout=120)
    yield folder


LOCALE_READERS = {
    "format_string": "locale.format_string('%.2f', x, grouping=True)",
    "format_n": "format(x, 'n')",
    "fstring_n": "f'{x:n}'",
    "str_format_n": "'{:>12n}'.format(x)",
    "atof": "locale.atof('1.234')",
    "strftime": "time.strftime('%A', (1970, 1, 1, 0, 0, 0, 3, 1, 0))",
    "datetime_strftime": "datetime.datetime(1970, 3, 1).strftime('%d %b')",
}


@pytest.mark.parametrize("reader", sorted(LOCALE_READERS))
def test_a_body_reading_the_locale_runs_again_when_it_changes(shell: Shell, german: Path, reader: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import locale

    monkeypatch.setenv("LOCPATH", str(german))
    saved = locale.setlocale(locale.LC_ALL)
    try:
        shell.run(f"""
            import datetime, locale, time
            from notebook_memo import memo

            @memo
            def shown(x):
                return {LOCALE_READERS[reader]}

            locale.setlocale(locale.LC_ALL, "C.UTF-8")
            first = shown(1234.5)
            again = shown(1234.5)
            locale.setlocale(locale.LC_ALL, "de_DE.UTF-8")
            after = shown(1234.5)
            truth = shown.uncached(1234.5)
            locale.setlocale(locale.LC_ALL, "C.UTF-8")
            back = shown(1234.5)
        """)
    finally:
        locale.setlocale(locale.LC_ALL, saved)
    assert shell["first"] == shell["again"] == shell["back"]
    assert shell["truth"] != shell["first"]
    assert shell["after"] == shell["truth"]
    assert shell.run("shown.cache_info().misses") == 2


def test_the_locale_a_kernel_starts_with_is_keyed_and_the_same_one_hits_after_a_restart(
        tmp_path: Path, cache_dir: Path, german: Path) -> None:
    script = """
        import locale
        locale.setlocale(locale.LC_ALL, "")  # the user's locale, from LC_ALL
        from notebook_memo import memo

        @memo
        def report(total):
            print("ran")
            return format(total, "n") + " " + locale.format_string("%.2f", total, grouping=True)

        print(report(1234.5))
    """
    first = _run(script, tmp_path, cache_dir, 1, LC_ALL="C.UTF-8", LOCPATH=str(german))
    assert first == "ran\n1234.5 1234.50"
    assert _run(script, tmp_path, cache_dir, 2, LC_ALL="C.UTF-8", LOCPATH=str(german)) == "1234.5 1234.50"
    assert _run(script, tmp_path, cache_dir, 3, LC_ALL="de_DE.UTF-8", LOCPATH=str(german)) \
        == "ran\n1.234,5 1.234,50"


def test_the_character_set_of_the_locale_is_keyed(shell: Shell) -> None:
    import locale

    saved = locale.setlocale(locale.LC_CTYPE)
    try:
        shell.run("""
            import locale
            from notebook_memo import memo

            @memo
            def codeset():
                return locale.nl_langinfo(locale.CODESET)

            locale.setlocale(locale.LC_CTYPE, "C")
            first = codeset()
            locale.setlocale(locale.LC_CTYPE, "C.UTF-8")
            after = codeset()
        """)
    finally:
        locale.setlocale(locale.LC_CTYPE, saved)
    assert shell["first"] != shell["after"] == "UTF-8"


def test_a_body_that_sets_the_locale_is_not_served_from_the_cache(shell: Shell) -> None:
    import locale

    saved = locale.setlocale(locale.LC_ALL)
    try:
        shell.run("""
            import locale
            from notebook_memo import memo

            @memo
            def use_c():
                locale.setlocale(locale.LC_NUMERIC, "C")
                return locale.localeconv()["decimal_point"]

            locale.setlocale(locale.LC_NUMERIC, "C.UTF-8")
            use_c()
            locale.setlocale(locale.LC_NUMERIC, "C.UTF-8")
            use_c()
            after = locale.setlocale(locale.LC_NUMERIC)
        """)
    finally:
        locale.setlocale(locale.LC_ALL, saved)
    assert shell["after"] == "C"  # what the body does, done again
    assert shell.run("use_c.cache_info().hits") == 0


# -- variables read by the standard library's functions -----------------------------------------------------------

ENVIRONMENT_READERS = {
    "getproxies": ("urllib.request.getproxies().get('http')", "http_proxy", "http://one", "http://two"),
    "getproxies_new": ("urllib.request.getproxies().get('https')", "HTTPS_PROXY", None, "http://two"),
    "no_proxy": ("urllib.request.proxy_bypass_environment('example.com')", "no_proxy", "other.org",
                 "example.com"),
    "columns": ("shutil.get_terminal_size().columns", "COLUMNS", "80", "120"),
    "lines": ("shutil.get_terminal_size().lines", "LINES", "24", "50"),
}


@pytest.mark.parametrize("reader", sorted(ENVIRONMENT_READERS))
def test_a_variable_a_library_function_reads_is_keyed(shell: Shell, monkeypatch: pytest.MonkeyPatch,
                                                      reader: str) -> None:
    expression, variable, before, after = ENVIRONMENT_READERS[reader]
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    if before is not None:
        monkeypatch.setenv(variable, before)
    shell.run(f"""
        import shutil, urllib.request
        from notebook_memo import memo

        @memo
        def read():
            return {expression}

        first = read()
        again = read()
    """)
    monkeypatch.setenv(variable, after)
    shell.run("after = read(); truth = read.uncached()")
    assert shell["first"] == shell["again"] != shell["truth"]
    assert shell["after"] == shell["truth"]


# -- the environment read whole, or by a name the code holds --------------------------------------------------

WHOLE_READS = {
    "copy": "os.environ.copy().get('NBM_R4_X')",
    "dict": "dict(os.environ).get('NBM_R4_X')",
    "items": "[v for k, v in os.environ.items() if k == 'NBM_R4_X']",
    "spread": "{**os.environ}.get('NBM_R4_X')",
    "iteration": "[k for k in os.environ if k.startswith('NBM_R4_X')]",
    "by_argument": "os.environ.get(name)",
    "by_computed_name": "os.getenv('NBM_R4_' + name[-1])",
}


@pytest.mark.parametrize("form", sorted(WHOLE_READS))
def test_the_environment_read_whole_or_by_a_name_computed_at_run_time_is_keyed(
        shell: Shell, monkeypatch: pytest.MonkeyPatch, form: str) -> None:
    monkeypatch.setenv("NBM_R4_X", "one")
    monkeypatch.delenv("NBM_R4_Y", raising=False)
    monkeypatch.delenv("NBM_R4_XX", raising=False)
    shell.run(f"""
        import os, warnings
        from notebook_memo import memo

        @memo
        def read(name):
            return {WHOLE_READS[form]}

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            first = read("NBM_R4_X")
        warned = [str(w.message) for w in caught]
        again = read("NBM_R4_X")
    """)
    assert shell["warned"] == []  # keyed: nothing left out to warn of
    assert shell.run("read.cache_info().hits") == 1
    monkeypatch.setenv("NBM_R4_X", "two")
    monkeypatch.setenv("NBM_R4_XX", "two")  # one more of the names it lists
    shell.run("after = read('NBM_R4_X'); truth = read.uncached('NBM_R4_X')")
    assert shell["after"] == shell["truth"] != shell["first"]
    if form in ("by_argument", "dict"):
        monkeypatch.setenv("NBM_R4_Y", "new")  # a variable set since: any one may be read
        assert shell.run("read('NBM_R4_X'), read.cache_info().misses")[1] == 3


GLOBAL_NAMES = {
    "get": "os.environ.get(VAR)",
    "get_default": "os.environ.get(VAR, 'none')",
    "getenv": "os.getenv(VAR)",
    "subscript": "os.environ[VAR] if VAR in os.environ else None",
}


@pytest.mark.parametrize("form", sorted(GLOBAL_NAMES))
def test_a_variable_named_by_a_global_text_is_keyed_by_its_value(shell: Shell, monkeypatch: pytest.MonkeyPatch,
                                                                 form: str) -> None:
    monkeypatch.setenv("NBM_R4_URL", "http://one")
    monkeypatch.setenv("NBM_R4_OTHER", "a")
    monkeypatch.setenv("NBM_R4_UNRELATED", "a")
    shell.run(f"""
        import os, warnings
        from notebook_memo import memo
        VAR = "NBM_R4_URL"

        @memo
        def url():
            return {GLOBAL_NAMES[form]}

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            first = url()
        warned = [str(w.message) for w in caught]
    """)
    assert shell["warned"] == [] and shell["first"] == "http://one"
    monkeypatch.setenv("NBM_R4_UNRELATED", "b")  # not the one it reads: still served
    assert shell.run("url(), url.cache_info().hits") == ("http://one", 1)
    monkeypatch.setenv("NBM_R4_URL", "http://two")
    assert shell.run("url()") == "http://two"
    shell.run('VAR = "NBM_R4_OTHER"')  # the global names another variable now
    assert shell.run("url()") == "a"


def test_a_cell_reading_the_environment_whole_runs_again_when_a_variable_changes(
        shell: Shell, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBM_R4_X", "one")
    shell.run("%load_ext notebook_memo")
    shell.run("import os")
    cell = "%%memo environ\nseen = {k: v for k, v in os.environ.items() if k == 'NBM_R4_X'}\n"
    shell.run(cell)
    shell.run(cell)
    monkeypatch.setenv("NBM_R4_X", "two")
    shell.run(cell)
    assert shell["seen"] == {"NBM_R4_X": "two"}


def test_the_environment_read_whole_hits_after_a_restart_whose_session_variables_differ(
        tmp_path: Path, cache_dir: Path) -> None:
    script = """
        import os
        from notebook_memo import memo

        @memo
        def settings():
            print("ran")
            return sorted(k for k in os.environ.copy() if k.startswith("NBM_R4"))

        print(settings())
    """
    # One PYTHONHASHSEED: a variable like any other here (a process the body starts would inherit it).
    assert _run(script, tmp_path, cache_dir, 1, NBM_R4_A="1", JPY_PARENT_PID="100", SHLVL="1") \
        == "ran\n['NBM_R4_A']"
    assert _run(script, tmp_path, cache_dir, 1, NBM_R4_A="1", JPY_PARENT_PID="200", SHLVL="2") == "['NBM_R4_A']"
    assert _run(script, tmp_path, cache_dir, 1, NBM_R4_A="1", NBM_R4_B="2", JPY_PARENT_PID="200", SHLVL="2") \
        == "ran\n['NBM_R4_A', 'NBM_R4_B']"


def test_a_text_computed_for_expandvars_keys_the_whole_environment(shell: Shell,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBM_R4_ROOT", "/one")
    shell.run("""
        import os
        from notebook_memo import memo
        NAME = "data.csv"

        @memo
        def where():
            return os.path.expandvars("$NBM_R4_ROOT/" + NAME)

        first = where()
    """)
    monkeypatch.setenv("NBM_R4_ROOT", "/two")
    assert shell["first"] == "/one/data.csv"
    assert shell.run("where()") == "/two/data.csv"


def test_a_global_text_passed_with_the_environment_to_another_function_is_no_variable_s_name(
        shell: Shell, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBM_R4_MODE", "a")
    shell.run("""
        import os
        from notebook_memo import memo
        HOW, KEY = "get", "NBM_R4_MODE"

        def lookup(env, key):
            return env[key]

        @memo
        def mode():
            return getattr(os.environ, HOW)("NBM_R4_MODE"), lookup(os.environ, KEY)

        first = mode()
    """)
    monkeypatch.setenv("NBM_R4_MODE", "b")
    assert (shell["first"], shell.run("mode()")) == (("a", "a"), ("b", "b"))


# -- facts of the process ---------------------------------------------------------------------------------------

FLAGS_SCRIPT = """
    import os, sys
    from sys import flags
    from notebook_memo import memo

    @memo
    def settings():
        print("ran")
        return sys.flags.optimize

    @memo
    def workers():
        print("ran")
        return os.cpu_count(), flags.no_user_site

    print(settings(), workers()[1])
"""


def test_python_s_flags_and_cpus_are_keyed_and_the_same_ones_hit_after_a_restart(tmp_path: Path,
                                                                                 cache_dir: Path) -> None:
    assert _run(FLAGS_SCRIPT, tmp_path, cache_dir, 1) == "ran\nran\n0 0"
    assert _run(FLAGS_SCRIPT, tmp_path, cache_dir, 2) == "0 0"  # the same process facts: served
    assert _run(FLAGS_SCRIPT, tmp_path, cache_dir, 3, "-O") == "ran\nran\n1 0"
    assert _run(FLAGS_SCRIPT, tmp_path, cache_dir, 4, "-s") == "ran\nran\n0 1"


CPU_READERS = {
    "affinity": "len(os.sched_getaffinity(0))",
    "multiprocessing": "multiprocessing.cpu_count() and len(os.sched_getaffinity(0))",
}


@pytest.mark.parametrize("reader", sorted(CPU_READERS))
def test_the_cpus_the_process_may_use_are_keyed(shell: Shell, reader: str) -> None:
    allowed = os.sched_getaffinity(0)
    try:
        shell.run(f"""
            import multiprocessing, os
            from notebook_memo import memo

            @memo
            def cpus():
                return {CPU_READERS[reader]}

            first = cpus()
            os.sched_setaffinity(0, {{min(os.sched_getaffinity(0))}})  # as taskset -c 0 would start it
            after = cpus()
            truth = cpus.uncached()
        """)
    finally:
        os.sched_setaffinity(0, allowed)
    assert shell["after"] == shell["truth"] == 1
    assert shell["first"] == len(allowed)


def test_the_variables_getdefaultlocale_reads_are_keyed(shell: Shell, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LC_ALL", "de_DE.UTF-8")
    shell.run("""
        import locale, warnings
        from notebook_memo import memo

        @memo
        def default():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # slated for removal in Python 3.15
                return locale.getdefaultlocale()

        first = default()
    """)
    monkeypatch.setenv("LC_ALL", "fr_FR.UTF-8")
    assert shell["first"] == ("de_DE", "UTF-8")
    assert shell.run("default()") == ("fr_FR", "UTF-8")
