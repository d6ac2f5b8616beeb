"""Files and the environment, tenth round: what a body reads through routes not covered before.

A module the body imports itself (``import os as o`` inside it) and uses in a function, lambda, comprehension or
class nested in it (the name reaches the nested code through a closure), a thread's target among them; a dotted
module imported with a name of its own (``import os.path as op``); a module or library function a helper's closure
holds (``import os`` or ``from os import getenv`` in the function that made the helper) or a parameter's default
holds (``def reader(mod=os)``); ``os.environ`` passed whole beside a constant (``dict(os.environ, EXTRA="1")``,
``os.environ | {"EXTRA": "1"}``, a process's ``env=``); a process started through asyncio
(``create_subprocess_exec``, ``create_subprocess_shell``), the environment it inherits and the files its command
line names. The clock read in such nested code is reported as the body's own read is; the thread-count variables
NumPy reads change no answer and stay out of the key.

Each test fails with a stale result served after the variable or file changed, a clock read that is not reported,
or a hit lost where nothing the body reads changed.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from tests.conftest import Shell

# -- environment variables read through a module imported inside the body --------------------------------------

_CLOSURE_READS = {
    "lambda": "import os as o\n    return (lambda: o.environ.get('NBM_R10_X'))()",
    "nested function": "import os as o\n    def level():\n        return o.getenv('NBM_R10_X')\n    return level()",
    "from import": "from os import environ as e\n    def level():\n        return e['NBM_R10_X']\n    return level()",
    "thread": "import os, threading\n    out = []\n"
              "    t = threading.Thread(target=lambda: out.append(os.environ.get('NBM_R10_X')))\n"
              "    t.start(); t.join()\n    return out[0]",
    "comprehension": "import os as o\n    return [o.environ.get(k) for k in ['NBM_R10_X']][0]",
    "whole environment": "import os as o\n    return (lambda: dict(o.environ).get('NBM_R10_X'))()",
    "method of a class": "import os as o\n    class Level:\n        def value(self):\n"
                         "            return o.getenv('NBM_R10_X')\n    return Level().value()",
}


@pytest.mark.parametrize("route", list(_CLOSURE_READS))
def test_a_variable_read_in_nested_code_through_a_module_the_body_imports_is_keyed(
        shell: Shell, monkeypatch: pytest.MonkeyPatch, route: str) -> None:
    monkeypatch.setenv("NBM_R10_X", "1")
    shell.run("from notebook_memo import memo\n\n@memo\ndef level():\n"
              f"    {_CLOSURE_READS[route]}\n\nfirst = level(), level()\n")
    monkeypatch.setenv("NBM_R10_X", "2")
    shell.run("second = level(); info = level.cache_info()")
    assert shell["first"] == ("1", "1")
    assert shell["second"] == "2"
    assert shell["info"].hits == 1


def test_a_variable_read_in_nested_code_stays_a_hit_when_another_variable_changes(
        shell: Shell, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBM_R10_X", "1")
    monkeypatch.setenv("NBM_R10_OTHER", "a")
    shell.run("""
        from notebook_memo import memo

        @memo
        def level():
            import os
            return (lambda: (os.environ.get("NBM_R10_X"), os.path.join("a", "b")))()

        first = level()
    """)
    monkeypatch.setenv("NBM_R10_OTHER", "b")
    shell.run("second = level(); info = level.cache_info()")
    assert shell["second"] == shell["first"] == ("1", "a/b")
    assert shell["info"].hits == 1


@pytest.mark.parametrize("nested", [False, True])
def test_a_variable_named_in_a_text_expanded_through_a_dotted_import_with_a_name_is_keyed(
        shell: Shell, monkeypatch: pytest.MonkeyPatch, nested: bool) -> None:
    monkeypatch.setenv("NBM_R10_X", "1")
    call = "(lambda: op.expandvars('$NBM_R10_X/data'))()" if nested else "op.expandvars('$NBM_R10_X/data')"
    shell.run(f"from notebook_memo import memo\n\n@memo\ndef folder():\n    import os.path as op\n    return {call}\n\n"
              "first = folder(), folder()\n")
    monkeypatch.setenv("NBM_R10_X", "2")
    shell.run("second = folder(); info = folder.cache_info()")
    assert shell["first"] == ("1/data", "1/data")
    assert shell["second"] == "2/data"
    assert shell["info"].hits == 1


@pytest.mark.parametrize("body", [
    "import time as t\n    return (lambda: int(t.time()) > 0)()",
    "import datetime as dt\n    return [dt.datetime.now().year > 0 for _ in range(1)][0]",
])
def test_a_clock_read_in_nested_code_through_a_module_the_body_imports_is_reported(shell: Shell, body: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shell.run(f"from notebook_memo import memo\n\n@memo\ndef recent():\n    {body}\n\nrecent()\n")
    assert any("reads the clock" in str(w.message) for w in caught), [str(w.message) for w in caught]


def test_a_body_using_numpy_stays_a_hit_when_the_thread_count_variables_change(
        shell: Shell, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    shell.run("""
        import numpy as np
        from notebook_memo import memo

        @memo
        def total():
            import numpy
            return float(np.arange(10.0).sum() + (lambda: numpy.ones(3).sum())())

        first = total()
    """)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MKL_NUM_THREADS", "1")
    shell.run("second = total(); info = total.cache_info()")
    assert shell["second"] == shell["first"] == 48.0
    assert shell["info"].hits == 1


# -- environment variables read through a module or reader a helper's closure holds -----------------------------

_CLOSED_READERS = {
    "module": "def make():\n    import os as o\n    return lambda: o.getenv('NBM_R10_X')",
    "function": "def make():\n    from os import getenv\n    def read():\n        return getenv('NBM_R10_X')\n"
                "    return read",
    "module in nested code": "import os\ndef make(mod=os):\n    def read():\n"
                             "        return (lambda: mod.environ['NBM_R10_X'])()\n    return read",
    "text expanded": "def make():\n    from os.path import expandvars\n"
                     "    return lambda: expandvars('$NBM_R10_X/data')",
}


@pytest.mark.parametrize("route", list(_CLOSED_READERS))
def test_a_variable_read_through_a_reader_a_helper_s_closure_holds_is_keyed(
        shell: Shell, monkeypatch: pytest.MonkeyPatch, route: str) -> None:
    monkeypatch.setenv("NBM_R10_X", "1")
    shell.run(f"{_CLOSED_READERS[route]}\n\nreader = make()\n")
    shell.run("""
        from notebook_memo import memo

        @memo
        def level():
            return reader()

        first = level(), level()
    """)
    monkeypatch.setenv("NBM_R10_X", "2")
    shell.run("second = level(); info = level.cache_info()")
    assert shell["first"][0] == shell["first"][1] != shell["second"]
    assert shell["second"] in ("2", "2/data")
    assert shell["info"].hits == 1


def test_a_reader_a_helper_s_closure_holds_stays_a_hit_when_another_variable_changes(
        shell: Shell, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBM_R10_X", "1")
    monkeypatch.setenv("NBM_R10_OTHER", "a")
    shell.run("""
        from notebook_memo import memo

        def make():
            import os as o
            return lambda: o.getenv("NBM_R10_X")

        reader = make()

        @memo
        def level():
            return reader()

        first = level()
    """)
    monkeypatch.setenv("NBM_R10_OTHER", "b")
    shell.run("second = level(); info = level.cache_info()")
    assert shell["second"] == shell["first"] == "1"
    assert shell["info"].hits == 1


@pytest.mark.parametrize("helper", [
    "import os\ndef reader(mod=os):\n    return mod.getenv('NBM_R10_X')",
    "import os\ndef reader(*, get=os.getenv):\n    return (lambda: get('NBM_R10_X'))()",
], ids=["module", "reader in a lambda"])
def test_a_variable_read_through_a_module_or_reader_a_helper_s_default_holds_is_keyed(
        shell: Shell, monkeypatch: pytest.MonkeyPatch, helper: str) -> None:
    monkeypatch.setenv("NBM_R10_X", "1")
    shell.run(helper)
    shell.run("""
        from notebook_memo import memo

        @memo
        def level():
            return reader()

        first = level(), level()
    """)
    monkeypatch.setenv("NBM_R10_X", "2")
    shell.run("second = level(); info = level.cache_info()")
    assert shell["first"] == ("1", "1")
    assert shell["second"] == "2"
    assert shell["info"].hits == 1


# -- the environment passed whole beside a constant ------------------------------------------------------------

_PASSED_WHOLE = {
    "dict with a keyword": "return dict(os.environ, EXTRA='1').get('NBM_R10_X')",
    "a process's environment": "return subprocess.run(['printenv', 'NBM_R10_X'], capture_output=True, text=True,\n"
                               "                          env=dict(os.environ, EXTRA='1')).stdout.strip()",
    "a helper given the mapping": "return pick(os.environ, 'EXTRA')",
    "a union": "return (os.environ | {'EXTRA': '1'}).get('NBM_R10_X')",
    "a process's environment made by a union": "return subprocess.run(['printenv', 'NBM_R10_X'], capture_output=True,\n"
                                               "                          text=True, env=os.environ | {'EXTRA': '1'}"
                                               ").stdout.strip()",
}


@pytest.mark.parametrize("route", list(_PASSED_WHOLE))
def test_the_environment_passed_whole_beside_a_constant_is_keyed_whole(
        shell: Shell, monkeypatch: pytest.MonkeyPatch, route: str) -> None:
    monkeypatch.setenv("NBM_R10_X", "1")
    shell.run("import os, subprocess\nfrom notebook_memo import memo\n\n"
              "def pick(env, skip):\n    return env.get('NBM_R10_X')\n\n"
              f"@memo\ndef level():\n    {_PASSED_WHOLE[route]}\n\nfirst = level(), level()\n")
    monkeypatch.setenv("NBM_R10_X", "2")
    shell.run("second = level(); info = level.cache_info()")
    assert shell["first"] == ("1", "1")
    assert shell["second"] == "2"
    assert shell["info"].hits == 1


def test_a_variable_read_with_a_default_by_keyword_stays_a_hit_when_another_variable_changes(
        shell: Shell, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBM_R10_X", "1")
    monkeypatch.setenv("NBM_R10_OTHER", "a")
    shell.run("""
        import os
        from notebook_memo import memo

        @memo
        def level():
            return os.getenv("NBM_R10_X", default="d"), os.environ.get("NBM_R10_Y", "e")

        first = level()
    """)
    monkeypatch.setenv("NBM_R10_OTHER", "b")
    shell.run("second = level(); info = level.cache_info()")
    assert shell["second"] == shell["first"] == ("1", "e")
    assert shell["info"].hits == 1


# -- a process started through asyncio -------------------------------------------------------------------------


def test_a_process_started_through_asyncio_is_served_only_while_the_environment_it_inherits_is_the_same(
        shell: Shell, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBM_R10_X", "1")
    shell.run("""
        import asyncio
        from notebook_memo import memo

        async def printed(*command):
            process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
            out, _ = await process.communicate()
            return out.decode().strip()

        @memo
        def level():
            return asyncio.run(printed("printenv", "NBM_R10_X"))

        first = level(), level()
    """)
    monkeypatch.setenv("NBM_R10_X", "2")
    shell.run("second = level(); info = level.cache_info()")
    assert shell["first"] == ("1", "1")
    assert shell["second"] == "2"
    assert shell["info"].hits == 1


@pytest.mark.parametrize("start", ["exec", "shell"])
def test_a_file_named_on_the_command_line_of_a_process_started_through_asyncio_is_read_again_once_changed(
        shell: Shell, tmp_path: Path, start: str) -> None:
    data = tmp_path / "data.txt"
    data.write_text("one")
    command = f"create_subprocess_exec('cat', {str(data)!r}" if start == "exec" else \
        f"create_subprocess_shell('cat ' + {str(data)!r}"
    shell.run(f"""
        import asyncio
        from notebook_memo import memo

        async def printed():
            process = await asyncio.{command}, stdout=asyncio.subprocess.PIPE)
            out, _ = await process.communicate()
            return out.decode()

        @memo
        def content():
            return asyncio.run(printed())

        first = content(), content()
    """)
    data.write_text("two")
    shell.run("second = content(); info = content.cache_info()")
    assert shell["first"] == ("one", "one")
    assert shell["second"] == "two"
    assert shell["info"].hits == 1


def test_a_reader_passed_with_the_variable_s_name_beside_it_stays_a_hit_when_another_variable_changes(
        shell: Shell, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBM_R10_X", "1")
    monkeypatch.setenv("NBM_R10_OTHER", "a")
    shell.run("""
        import os
        from notebook_memo import memo

        def through(read, name):
            return read(name)

        @memo
        def level():
            return through(os.getenv, "NBM_R10_X")

        first = level()
    """)
    monkeypatch.setenv("NBM_R10_OTHER", "b")
    shell.run("second = level(); info = level.cache_info()")
    assert shell["second"] == shell["first"] == "1"
    assert shell["info"].hits == 1
