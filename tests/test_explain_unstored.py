"""What ``explain_last`` and ``%memo explain`` say after a call of a memoized function whose result was computed
but not stored (it changed a global or an argument in place, bound a global anew, changed the process, or
returned what cannot be pickled), in a real shell: why it was not stored, never "nothing is cached"."""

from __future__ import annotations

import warnings

import pytest

from tests.conftest import Shell

# Bodies whose result is returned but not stored, and the words of why.
UNSTORED = {
    "appends": ("LOG.append(a)\n    return a", "changed the global 'LOG' in place"),
    "rebinds": ("global COUNT\n    COUNT = a\n    return a", "binds the global 'COUNT' anew"),
    "fills": ("arg.append(1)\n    return len(arg)", "changed its argument 'arg' in place"),
    "sets_env": ("os.environ['NBM_UNSTORED'] = str(a)\n    return a", "sets the environment variable"),
    "unpicklable": ("return threading.Lock()", "cannot be pickled"),
}


@pytest.mark.parametrize("name", sorted(UNSTORED))
def test_explain_after_an_unstored_run_says_why_it_was_not_stored(shell: Shell, name: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NBM_UNSTORED", raising=False)
    body, why = UNSTORED[name]
    shell.run("%load_ext notebook_memo\nfrom notebook_memo import memo\nimport os, threading\nLOG = []\nCOUNT = 0")
    shell.run(f"@memo\ndef {name}(a{', arg=None' if name == 'fills' else ''}):\n    {body}")
    call = f"{name}(1, arg=[])" if name == "fills" else f"{name}(1)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shell.run(call)
        for report in (str(shell.run(f"{name}.explain_last()")), str(shell.run(f"%memo explain {name}"))):
            assert "MISS" in report and why in report and "nothing is cached" not in report, report
        if name == "rebinds":
            return  # bound to what it holds now, a second run changes nothing: stored (see the test below)
        if name == "sets_env":
            # The variable is in its key: a second run finds it set as the first left it, changes nothing, and is
            # stored under that value (served only where it holds it; tests/test_keys_round5b.py).
            shell.run(call)
            assert shell.run(f"{name}.cache_info().entries") == 1
            return
        shell.run(call)  # again: still unstored, and said so
        again = str(shell.run(f"{name}.explain_last()"))
    assert why in again and "nothing is cached" not in again, again


def test_a_run_that_bound_a_global_to_what_it_held_is_not_served_where_it_holds_something_else(shell: Shell) -> None:
    # Before, the second run (COUNT already 1) was stored under a key without COUNT, and served after COUNT = 0:
    # the hit left COUNT at 0, where a run sets it to 1.
    shell.run("from notebook_memo import memo\nCOUNT = 0")
    shell.run("@memo\ndef rebinds(a):\n    global COUNT\n    COUNT = a\n    return a")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shell.run("rebinds(1); rebinds(1)")
        shell.run("COUNT = 0")
        assert shell.run("rebinds(1)") == 1
    assert shell["COUNT"] == 1
    shell.run("rebinds(1)")  # COUNT is 1: the entry stored when it was is served, and leaves it so
    assert shell["COUNT"] == 1 and shell.run("rebinds.cache_info().hits") == 1
