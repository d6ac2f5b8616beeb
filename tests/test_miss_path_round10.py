"""The work of a small miss, done once where it can be, and what it must still see: the process-wide settings a miss
compares are chosen once per set of loaded modules and libraries used, so a library loaded (or a module dropped)
after a miss is met by the next one; and a run that changes no setting is still stored beside one that does."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from notebook_memo import MemoWarning
from tests.conftest import Shell, run_kernel

LOADED_SINCE_KERNEL = """
    import sys
    from notebook_memo import memo

    @memo
    def plain(n):
        return n

    plain(1)  # a miss before matplotlib is loaded: what it compares is chosen without it
    import matplotlib

    @memo
    def widen(n):
        matplotlib.rcParams["lines.linewidth"] = 7 + n
        return n

    widen(1)
    widen(1)
    OUT["widen_misses"] = widen.cache_info().misses

    import decimal  # a library whose settings only a body that uses it compares

    @memo
    def precise(n):
        decimal.getcontext().prec = 5 + n
        return n

    plain(2)
    precise(1)
    precise(1)
    OUT["precise_misses"] = precise.cache_info().misses

    plain(4)  # what it compares chosen again, with socket
    socket_module = sys.modules.pop("socket")  # a module dropped since the last miss is not read
    try:
        plain(3)
        plain(3)
        OUT["socket_loaded"] = "socket" in sys.modules
    finally:
        sys.modules["socket"] = socket_module
    OUT["plain"] = list(plain.cache_info())[:2]
    """


def test_a_library_loaded_or_dropped_after_a_miss_is_met_by_the_next(cache_dir: Path) -> None:
    out = run_kernel([LOADED_SINCE_KERNEL], cache_dir, seed=1, env={"MPLBACKEND": "agg"})
    assert out["widen_misses"] == 2, out  # rcParams, loaded after the first miss, are compared: not stored
    assert any("lines.linewidth" in w and "not cached" in w for w in out["_warnings"]), out["_warnings"]
    assert out["precise_misses"] == 2, out
    assert any("decimal" in w and "not cached" in w for w in out["_warnings"]), out["_warnings"]
    # Hits, misses: a function that changes nothing is still served, socket dropped or not.
    assert out["plain"] == [1, 4] and not out["socket_loaded"], out


def test_a_body_that_changes_no_setting_is_still_served_after_another_that_does(shell: Shell) -> None:
    # The guard for the settings read as a miss ends being compared as read: a run that changes none is stored.
    shell.run("""
        import warnings
        from notebook_memo import memo

        @memo
        def quiet(n):
            return n + 1

        @memo
        def filtering(n):
            warnings.filterwarnings("ignore", message="nbm-round10")
            return n
        """)
    filters = warnings.filters[:]
    try:
        with pytest.warns(MemoWarning, match="nbm-round10"):
            shell.run("quiet(1); filtering(1); quiet(1); filtering(1); quiet(2); quiet(2)")
    finally:
        warnings.filters[:] = filters
    assert list(shell["quiet"].cache_info())[:2] == [2, 2]  # hits, misses
    assert shell["filtering"].cache_info().misses == 2
