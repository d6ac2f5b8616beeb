"""Globals a memoized body binds through the helpers it calls, in a real shell: a hit must leave them as a run
does, so a run that binds one anew is not stored; a helper filling a global on first use still is."""

from __future__ import annotations

import warnings

from notebook_memo import MemoWarning
from tests.conftest import Shell


def test_a_helper_that_increments_a_global_leaves_the_run_unstored(shell: Shell) -> None:
    # Before, the run was stored under the key of N = 0 (the helper reads N), and after N = 0 again it was served:
    # the hit left N at 0, where a run sets it to 1.
    shell.run("from notebook_memo import memo\nN = 0\ndef bump():\n    global N\n    N += 1\n"
              "@memo\ndef via_helper(a):\n    bump()\n    return a")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shell.run("via_helper(1)")
        shell.run("N = 0")
        shell.run("via_helper(1)")
    assert shell["N"] == 1 and shell.run("via_helper.cache_info().hits") == 0
    said = [str(w.message) for w in caught if issubclass(w.category, MemoWarning)]
    assert any("binds the global 'N' anew (through a helper it calls)" in text for text in said), said
    assert "binds the global 'N' anew" in str(shell.run("via_helper.explain_last()"))


def test_a_helper_that_records_a_global_it_never_reads_leaves_the_run_unstored(shell: Shell) -> None:
    shell.run("from notebook_memo import memo\ndef record(x):\n    global LAST\n    LAST = x\n"
              "@memo\ndef via_record(a):\n    record(a)\n    return a")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shell.run("via_record(1)")
        shell.run("del LAST")
        shell.run("via_record(1)")
    assert shell["LAST"] == 1 and shell.run("via_record.cache_info().hits") == 0


def test_a_helper_filling_a_global_on_first_use_is_still_cached_without_a_warning(shell: Shell) -> None:
    shell.run("from notebook_memo import memo\nMODEL = None\ndef get_model():\n    global MODEL\n"
              "    if MODEL is None:\n        MODEL = [10, 20]\n    return MODEL\n"
              "@memo\ndef use(a):\n    return get_model()[0] + a")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert [shell.run("use(1)") for _ in range(3)] == [11, 11, 11]
    assert [str(w.message) for w in caught if issubclass(w.category, MemoWarning)] == []
    assert shell.run("use.cache_info().hits") >= 1
