"""A setting a body changes itself in a run that also loads a module is the body's change, not the import's: the
run is not stored and one MemoWarning names the setting, whether the body sets it before or after its import, in
its own code or a helper's, in a function or a ``%%memo`` cell. A setting a module changes as it loads (a lazily
loaded filter, matplotlib's inline backend) is still taken for the import's (tests/test_settings_left.py). Real
shells, real modules written to disk, and real kernels restarted with other hash seeds."""

from __future__ import annotations

import decimal
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from notebook_memo import MemoWarning
from tests.conftest import Counter, Shell, run_kernel


@pytest.fixture
def fresh_module(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The name of a library module not loaded now, which sets nothing as it loads (a user's module would be
    loaded by the keying, before the run); settings put back after the test."""
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    printing, context, path = np.get_printoptions(), decimal.getcontext().copy(), list(sys.path)
    yield "colorsys"
    np.set_printoptions(**printing)
    decimal.setcontext(context)
    sys.path[:] = path


def _said(shell: Shell, source: str) -> list[str]:
    """Run a cell; return the MemoWarnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shell.run(source)
    return [str(w.message) for w in caught if issubclass(w.category, MemoWarning)]


# colorsys: a library module the kernel has not loaded (a user's module is loaded by the keying, before the run).
IMPORTING_KERNEL = """
    import numpy as np
    from notebook_memo import memo

    @memo
    def f(x):
        import colorsys
        np.set_printoptions(precision=2)
        return x / 3

    f(1)
    OUT["precision"] = np.get_printoptions()["precision"]
    OUT["hits"] = f.cache_info().hits
    """


def test_a_body_that_imports_and_then_sets_print_options_is_not_stored_across_a_restart(cache_dir: Path) -> None:
    for seed in (1, 2):
        out = run_kernel([IMPORTING_KERNEL], cache_dir, seed=seed)
        assert out["precision"] == 2 and out["hits"] == 0, out
        assert sum("precision=2 with np.set_printoptions" in w for w in out["_warnings"]) == 1, out["_warnings"]


def test_a_cell_that_imports_and_then_sets_print_options_is_not_cached(
        shell: Shell, counter: Counter, fresh_module: str) -> None:
    shell.ip.user_ns.update(counter=counter)
    shell.run("%load_ext notebook_memo\nimport numpy as np")
    cell = f"%%memo\ncounter()\nimport {fresh_module}\nnp.set_printoptions(precision=3)\nx = 1"
    warned = _said(shell, cell)
    assert len(warned) == 1 and "precision=3 with np.set_printoptions" in warned[0], warned
    np.set_printoptions(precision=8)
    del sys.modules[fresh_module]
    shell.run(cell)
    assert counter.n == 2 and np.get_printoptions()["precision"] == 3


def test_a_helper_that_sets_print_options_after_the_body_s_import_is_the_body_s_change(
        shell: Shell, counter: Counter, fresh_module: str) -> None:
    shell.ip.user_ns.update(counter=counter)
    shell.run(f"""
        import numpy as np
        from notebook_memo import memo

        def show_two():
            np.set_printoptions(precision=2)

        @memo
        def f(x):
            counter()
            import {fresh_module}
            show_two()
            return x
        """)
    warned = _said(shell, "f(1)")
    assert len(warned) == 1 and "precision=2 with np.set_printoptions" in warned[0], warned
    shell.run("f(1)")
    assert counter.n == 2


def test_a_setting_changed_before_the_body_s_first_import_is_the_body_s_change(
        shell: Shell, counter: Counter, fresh_module: str) -> None:
    # Set through a name its code does not hold: only when it was set tells it apart from the import's change.
    shell.ip.user_ns.update(counter=counter)
    shell.run(f"""
        import numpy as np
        from notebook_memo import memo

        @memo
        def f(x):
            counter()
            getattr(np, "set_" + "printoptions")(precision=2)
            import {fresh_module}
            return x
        """)
    warned = _said(shell, "f(1)")
    assert len(warned) == 1 and "precision=2 with np.set_printoptions" in warned[0], warned
    shell.run("f(1)")
    assert counter.n == 2


def test_a_keyed_setting_changed_before_the_body_s_first_import_is_said(
        shell: Shell, counter: Counter, fresh_module: str) -> None:
    shell.ip.user_ns.update(counter=counter)
    shell.run(f"""
        import decimal
        from notebook_memo import memo

        @memo
        def f(p):
            counter()
            decimal.getcontext().prec = p
            import {fresh_module}
            return p
        """)
    warned = _said(shell, "f(7)")
    assert len(warned) == 1 and "prec=7" in warned[0], warned
    shell.run("f(7)")
    assert counter.n == 2


@pytest.mark.parametrize(("setting", "said"), [
    ('warnings.filterwarnings("ignore", message="nbm-excuse")', "'nbm-excuse'"),
    ('sys.path.append("/nbm-excuse")', "adds '/nbm-excuse' to sys.path"),
])
def test_a_setting_any_library_may_change_set_by_the_body_after_its_import_is_said(
        shell: Shell, counter: Counter, fresh_module: str, setting: str, said: str) -> None:
    shell.ip.user_ns.update(counter=counter)
    shell.run(f"""
        import sys
        import warnings
        from notebook_memo import memo

        @memo
        def f(x):
            counter()
            import {fresh_module}
            {setting}
            return x
        """)
    warned = _said(shell, "f(1)")
    assert len(warned) == 1 and said in warned[0], warned
    shell.run("f(1)")
    assert counter.n == 2
