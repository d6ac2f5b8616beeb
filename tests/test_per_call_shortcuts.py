"""The shortcuts of a small call's miss and hit: facts taken once per code state or per miss rather than once per
use. Each test shows that what a shortcut could skip still refuses or recomputes as before: a helper's attribute
write and its exec() of a text made at run time (the helpers' code walked once per miss), a change of the
environment (compared without a copy), arguments the clock, ids or a skipped global meet (facts of the code state
kept beside it). Real shell."""

from __future__ import annotations

import warnings
from pathlib import Path

from notebook_memo import MemoWarning
from tests.conftest import Shell


def _warned(shell: Shell, source: str) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shell.run(source)
    return [str(w.message) for w in caught if issubclass(w.category, MemoWarning)]


def test_a_helper_that_sets_an_attribute_and_another_that_execs_a_made_text_are_both_still_seen(
        shell: Shell) -> None:
    # The helpers' code is listed once per miss for the globals they bind, the attributes they set and the texts
    # they run: each is still found, alone and together. (Runs are counted by misses: a list the body appended
    # to would be mutable data it reads, whose code state is made anew on each call.)
    shell.run("from notebook_memo import memo\nclass Config:\n    threshold = 0.5\n"
              "def tune():\n    Config.threshold = Config.threshold + 0.1\n"
              "def run_text(name):\n    exec(f'{name} = 1', {})\n"
              "N = 0\ndef bump():\n    global N\n    N += 1\n"
              "@memo\ndef binds(x):\n    bump()\n    return x\n"
              "@memo\ndef sets(x):\n    tune()\n    return x\n"
              "@memo\ndef execs(x):\n    run_text('y')\n    return x\n"
              "@memo\ndef both(x):\n    tune()\n    run_text('z')\n    return x\n")
    for name in ("sets", "execs", "binds", "both"):
        for _ in range(3):
            _warned(shell, f"{name}(1)")
        assert shell.run(f"{name}.cache_info().misses") == 3, name  # not stored: each call ran
    assert "Config.threshold" in str(shell.run("sets.explain_last()"))
    assert "exec()" in str(shell.run("execs.explain_last()"))
    assert "'N'" in str(shell.run("binds.explain_last()"))
    assert "exec()" in str(shell.run("both.explain_last()"))  # what cannot be known is said first, as before


def test_what_a_code_state_says_of_every_call_follows_the_state_when_a_helper_changes(shell: Shell) -> None:
    # Whether the code reads the clock (said on each call), and the key's framing, are kept with the code state: a
    # helper redefined to read the clock makes a new state, whose calls miss and say so.
    shell.run("from notebook_memo import memo\nimport time\ndef helper(x):\n    return x + 1\n"
              "@memo\ndef f(x):\n    return helper(x)\n")
    assert not _warned(shell, "f(1); f(1)")
    assert shell.run("f.cache_info().misses") == 1
    shell.run("def helper(x):\n    return x + int(time.time() > 0)\n")
    said = _warned(shell, "f(1); f(1)")
    assert shell.run("f.cache_info().misses") == 2  # the new state's call missed once, then hit
    assert any("reads the clock" in text for text in said), said
    shell.run("def helper(x):\n    return x + 1\n")
    assert not _warned(shell, "f(1)")
    assert shell.run("f.cache_info().misses") == 2  # the first state again: its entry, and no clock


def test_a_decimal_argument_keys_the_context_whether_or_not_the_code_keys_decimal_itself(shell: Shell) -> None:
    shell.run("from notebook_memo import memo\nimport decimal\nfrom decimal import Decimal\n"
              "@memo\ndef third(d):\n    return d / 3\n"
              "@memo\ndef third_here(d):\n    decimal.getcontext()\n    return d / 3\n")
    for name in ("third", "third_here"):
        shell.run("decimal.getcontext().prec = 28")
        long = shell.run(f"{name}(Decimal(1))")
        shell.run("decimal.getcontext().prec = 5")
        short = shell.run(f"{name}(Decimal(1))")
        assert str(short) == "0.33333" and len(str(long)) > 10, (name, long, short)
        shell.run("decimal.getcontext().prec = 28")
        assert shell.run(f"{name}(Decimal(1))") == long


def test_a_run_that_sets_removes_or_restores_a_variable_is_judged_as_before(shell: Shell) -> None:
    # The environment after a run is compared with the copy taken before it in place (no second copy): a change
    # is still seen, whichever way, and one undone before the run ends is none.
    shell.run("import os\nfrom notebook_memo import memo\nclass Seen(list):\n    def __memo_key__(self):\n"
              "        return 'seen'\nRUNS = Seen()\nos.environ['NBM_SHORTCUT_GONE'] = '1'\n"
              "@memo\ndef sets(x):\n    RUNS.append('sets')\n    os.environ['NBM_SHORTCUT_SET'] = str(x)\n"
              "    return x\n"
              "@memo\ndef removes(x):\n    RUNS.append('removes')\n    os.environ.pop('NBM_SHORTCUT_GONE', None)\n"
              "    return x\n"
              "@memo\ndef restores(x):\n    RUNS.append('restores')\n    os.environ['NBM_SHORTCUT_TMP'] = '1'\n"
              "    del os.environ['NBM_SHORTCUT_TMP']\n    return x\n")
    try:
        said = _warned(shell, "sets(1); sets(1)")
        assert shell.run("RUNS.count('sets')") == 2 and any("NBM_SHORTCUT_SET" in text for text in said), said
        said = _warned(shell, "removes(1); os.environ['NBM_SHORTCUT_GONE'] = '1'; removes(1)")
        assert shell.run("RUNS.count('removes')") == 2 and any("removes the environment variable" in text
                                                                for text in said), said
        assert not _warned(shell, "restores(1); restores(1)")
        assert shell.run("RUNS.count('restores')") == 1
    finally:
        shell.run("for name in ('NBM_SHORTCUT_SET', 'NBM_SHORTCUT_GONE'):\n    os.environ.pop(name, None)")


def test_what_a_helper_binds_or_sets_is_known_anew_when_the_helper_is_redefined(shell: Shell) -> None:
    # Where the code binds globals and whether it sets attributes or runs texts is kept per code state: a helper
    # redefined to do one of these makes a new state, whose runs are refused; the first state's entry still serves.
    shell.run("from notebook_memo import memo\nN = 0\nclass Config:\n    threshold = 0.5\n"
              "def helper(x):\n    return x\n@memo\ndef f(x):\n    return helper(x)\n")
    assert not _warned(shell, "f(1); f(1); f(1)")
    assert shell.run("f.cache_info().misses") == 1
    redefinitions = {"'N'": "def helper(x):\n    global N\n    N += 1\n    return x\n",
                     "Config.threshold": "def helper(x):\n    Config.threshold = Config.threshold + 1\n    return x\n",
                     "exec()": "def helper(x):\n    exec(f'y = {x}', {})\n    return x\n"}
    for what, helper in redefinitions.items():
        shell.run(helper)
        misses = shell.run("f.cache_info().misses")
        _warned(shell, "f(1); f(1); f(1)")
        assert shell.run("f.cache_info().misses") == misses + 3, what  # refused: each call ran
        assert what in str(shell.run("f.explain_last()")), what
    shell.run("def helper(x):\n    return x\n")
    misses = shell.run("f.cache_info().misses")
    assert not _warned(shell, "f(1); f(2); f(2)")
    assert shell.run("f.cache_info().misses") == misses + 1  # the first state again: its entry serves f(1)


def test_a_relative_read_is_still_kept_per_folder_and_an_unknown_handle_still_refused(
        shell: Shell, tmp_path: Path) -> None:
    # A run without preconditions is told so at once; one that read a relative path still depends on its folder.
    # A function without handles is told so at once; one reading through a buffer still is refused.
    for name, text in (("a", "one"), ("b", "two")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "data.txt").write_text(text)
    shell.run(f"import os, io\nfrom notebook_memo import memo\nHOME = os.getcwd()\nos.chdir({str(tmp_path)!r})\n"
              "@memo\ndef read(x):\n    with open('data.txt') as f:\n        return f.read() * x\n"
              "BUFFER = io.StringIO('text')\n@memo\ndef buffered(x):\n    return BUFFER.getvalue() * x\n")
    try:
        results = []
        for name in ("a", "b", "a", "b"):
            shell.run(f"os.chdir({name!r})")
            results.append(shell.run("read(1)"))
            shell.run("os.chdir('..')")
        assert results == ["one", "two", "one", "two"]
        assert shell.run("read.cache_info().misses") == 2  # each folder's entry served on its second call
        said = _warned(shell, "buffered(1); buffered(1)")
        assert shell.run("buffered.cache_info().misses") == 2 and any("BUFFER" in text for text in said), said
    finally:
        shell.run("os.chdir(HOME)")
