"""Process-wide settings a body changes and leaves so, which a hit would not change again: the run is not stored,
and one MemoWarning names the setting. Those a library changes as it is imported, and those a ``with`` block
puts back, are no change. Real shells and real kernels restarted with other hash seeds."""

from __future__ import annotations

import logging
import socket
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch

from notebook_memo import MemoWarning, StorageWarning
from tests.conftest import Counter, Shell, run_kernel


def _said(shell: Shell, source: str) -> list[str]:
    """Run a cell; return the warnings of ours it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shell.run(source)
    return [str(w.message) for w in caught if issubclass(w.category, (MemoWarning, StorageWarning))]

# numpy is loaded, its random module not yet (numpy 2 loads it on first use, as the first miss's reading of the
# random states does): our own loading of it is not an import by the body.
DECIMAL_KERNEL = """
    import decimal
    import numpy as np
    from notebook_memo import memo

    @memo
    def setup(p):
        decimal.getcontext().prec = p
        return p

    setup(6)
    setup(6)
    OUT["prec"] = decimal.getcontext().prec
    """


def test_a_setting_changed_in_a_kernel_s_first_miss_is_not_stored(cache_dir: Path) -> None:
    for seed in (1, 2):
        out = run_kernel([DECIMAL_KERNEL], cache_dir, seed=seed)
        assert out["prec"] == 6
        assert sum("prec=6" in w for w in out["_warnings"]) == 1, out["_warnings"]


DECIMAL_CELL_KERNEL = """
    %load_ext notebook_memo
    import decimal
    import numpy as np
    """


def test_a_cell_s_setting_changed_in_a_kernel_s_first_miss_is_not_stored(cache_dir: Path) -> None:
    cell = "%%memo\ndecimal.getcontext().prec = 7\nx = 1"
    for seed in (1, 2):
        out = run_kernel([DECIMAL_CELL_KERNEL, cell, cell, 'OUT["prec"] = decimal.getcontext().prec'], cache_dir,
                         seed=seed)
        assert out["prec"] == 7
        assert sum("prec=7" in w for w in out["_warnings"]) == 1, out["_warnings"]


# -- settings no key holds, which later code depends on -------------------------------------------------------

@pytest.fixture
def settings_restored() -> Iterator[None]:
    """The settings these tests change, as they were, after the test."""
    printing, errors = np.get_printoptions(), np.geterr()
    grad, threads = torch.is_grad_enabled(), torch.get_num_threads()
    torch_printing = {name: getattr(torch._tensor_str.PRINT_OPTS, name)
                      for name in ("precision", "threshold", "edgeitems", "linewidth", "sci_mode")}
    root = logging.getLogger()
    level, path, timeout = root.level, list(sys.path), socket.getdefaulttimeout()
    # rc_context puts rcParams back as matplotlib does, leaving the backend as it is (an update() from a copy sets it).
    with warnings.catch_warnings(), matplotlib.rc_context():
        yield
    np.set_printoptions(**printing)
    np.seterr(**errors)
    torch.set_grad_enabled(grad)
    torch.set_num_threads(threads)
    torch.set_printoptions(**torch_printing)
    torch.set_default_device(None)
    root.setLevel(level)
    sys.path[:] = path
    socket.setdefaulttimeout(timeout)


LEFT_BODIES = {
    "numpy_print_options": ("np.set_printoptions(precision=2)", "precision=2 with np.set_printoptions"),
    "numpy_error_handling": ('np.seterr(all="ignore")', "np.seterr"),
    "torch_grad_mode": ("torch.set_grad_enabled(False)", "torch.set_grad_enabled"),
    "torch_print_options": ("torch.set_printoptions(precision=2)", "torch.set_printoptions"),
    "torch_threads": ("torch.set_num_threads(THREADS)", "torch.set_num_threads"),
    "torch_default_device": ('torch.set_default_device("meta")', "device='meta'"),
    "matplotlib_rc": ('plt.rcParams["figure.dpi"] = 151', "figure.dpi=151"),
    "matplotlib_style": ('plt.style.use("ggplot")', "matplotlib.rcParams"),
    "warnings_filter": ('warnings.filterwarnings("ignore", message="nbm-probe")', "'nbm-probe'"),
    "root_logger_level": ("logging.getLogger().setLevel(7)", "level=7"),
    "import_path": ("sys.path.append(FOLDER)", "nbm-folder"),
    "socket_timeout": ("socket.setdefaulttimeout(7.5)", "timeout=7.5"),
}


@pytest.mark.parametrize("body, said", LEFT_BODIES.values(), ids=LEFT_BODIES.keys())
def test_a_body_that_leaves_a_setting_changed_is_not_cached(shell: Shell, counter: Counter, tmp_path: Path,
                                                            settings_restored: None, body: str, said: str) -> None:
    shell.ip.user_ns.update(counter=counter, THREADS=2 if torch.get_num_threads() != 2 else 1,
                            FOLDER=str(tmp_path / "nbm-folder"))
    shell.run("""
        import logging, socket, sys, warnings
        import matplotlib.pyplot as plt
        import numpy as np
        import torch
        import torch.utils._device  # loaded by torch.set_default_device on first use: a run that loads modules is
                                    # not stored, unsaid, since their code may have made its change
        from notebook_memo import memo
        """)
    shell.run(f"""
        @memo
        def setup():
            counter()
            {body}
            return 1
        """)
    warned = _said(shell, "setup()")
    assert len(warned) == 1 and said in warned[0] and "not cached" in warned[0], warned
    # Run again with the setting already as the first run left it: it changes nothing now, and is still not
    # stored (a restarted kernel would be served it, with the setting as it was).
    assert _said(shell, "setup()") == []
    assert counter.n == 2


RESTORED_BODIES = {
    "warnings_caught": 'with warnings.catch_warnings():\n    warnings.simplefilter("ignore")\n    warnings.warn("x")',
    "numpy_print_context": "with np.printoptions(precision=2):\n    str(np.arange(3.0))",
    "numpy_error_context": 'with np.errstate(all="ignore"):\n    np.float64(1) / 0',
    "matplotlib_rc_context": 'with plt.rc_context({"figure.dpi": 151}):\n    pass',
    "torch_no_grad": "with torch.no_grad():\n    torch.ones(2) * 2",
    "sys_path_put_back": "sys.path.append(FOLDER)\nsys.path.remove(FOLDER)",
}


@pytest.mark.parametrize("body", RESTORED_BODIES.values(), ids=RESTORED_BODIES.keys())
def test_a_body_that_puts_a_setting_back_is_cached(shell: Shell, counter: Counter, tmp_path: Path,
                                                  settings_restored: None, body: str) -> None:
    shell.ip.user_ns.update(counter=counter, FOLDER=str(tmp_path / "nbm-folder"))
    shell.run("""
        import sys, warnings
        import matplotlib.pyplot as plt
        import numpy as np
        import torch
        from notebook_memo import memo
        """)
    shell.run("@memo\ndef setup():\n    counter()\n" + textwrap.indent(body, "    ") + "\n    return 1")
    assert _said(shell, "setup(); setup()") == []
    assert counter.n == 1


def test_logging_through_a_root_logger_with_no_handler_is_no_change(shell: Shell, counter: Counter,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # logging.info() gives the root logger a handler where it has none (basicConfig): a library's use, not a setting
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    shell.ip.user_ns.update(counter=counter)
    shell.run("""
        import logging
        from notebook_memo import memo

        @memo
        def load():
            counter()
            logging.warning("loading")
            return 1
        """)
    assert _said(shell, "load(); load()") == []
    assert counter.n == 1


def test_a_filter_a_module_adds_as_the_body_imports_it_is_not_the_bodys(shell: Shell, counter: Counter,
                                                                       tmp_path: Path, settings_restored: None,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "nbm_adds_filter.py").write_text(
        'import warnings\nwarnings.filterwarnings("ignore", message="nbm-import")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "nbm_adds_filter", raising=False)
    shell.ip.user_ns.update(counter=counter)
    shell.run("""
        from notebook_memo import memo

        @memo
        def load():
            counter()
            import nbm_adds_filter
            return 1
        """)
    assert _said(shell, "load(); load(); load()") == []
    assert counter.n == 1  # its import statement loads the module as the key is made: the filter is set before the run
    assert shell.run("load.cache_info().hits") >= 1
    monkeypatch.delitem(sys.modules, "nbm_adds_filter", raising=False)


def test_a_filter_a_library_adds_as_it_loads_a_module_lazily_leaves_the_first_run_stored(
        shell: Shell, counter: Counter, tmp_path: Path, settings_restored: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # As matplotlib's inline backend sets rcParams when pyplot first loads it, inside the body's first figure: the
    # notebook's plotting cell was run again in every new kernel. A name made at run time, so no keying loads it first.
    (tmp_path / "nbm_lazy_filter.py").write_text(
        'import warnings\nwarnings.filterwarnings("ignore", message="nbm-lazy")\n')
    (tmp_path / "nbm_lazy_loader.py").write_text(
        'import importlib\n\ndef go():\n    return importlib.import_module("".join(["nbm_lazy", "_filter"]))\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("nbm_lazy_filter", "nbm_lazy_loader"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    shell.ip.user_ns.update(counter=counter)
    shell.run("""
        from notebook_memo import memo
        import nbm_lazy_loader

        @memo
        def load():
            counter()
            nbm_lazy_loader.go()
            return 1
        """)
    assert _said(shell, "load(); load()") == []
    assert counter.n == 1 and shell.run("load.cache_info().hits") == 1
    for name in ("nbm_lazy_filter", "nbm_lazy_loader"):
        monkeypatch.delitem(sys.modules, name, raising=False)


def test_a_cell_that_adds_a_warnings_filter_is_not_cached(shell: Shell, counter: Counter,
                                                          settings_restored: None) -> None:
    shell.ip.user_ns.update(counter=counter)
    shell.run("%load_ext notebook_memo")
    shell.run("import warnings")
    cell = '%%memo\ncounter()\nwarnings.filterwarnings("ignore", message="nbm-cell")\nx = 1'
    warned = _said(shell, cell)
    assert len(warned) == 1 and "'nbm-cell'" in warned[0], warned
    assert _said(shell, cell) == []
    assert counter.n == 2


PRINT_OPTIONS_KERNEL = """
    import numpy as np
    from notebook_memo import memo

    @memo
    def setup(p):
        np.set_printoptions(precision=p)
        return p

    setup(2)
    setup(2)
    OUT["precision"] = np.get_printoptions()["precision"]
    """


def test_after_a_restart_a_body_still_sets_numpy_s_print_options(cache_dir: Path) -> None:
    for seed in (1, 2):
        out = run_kernel([PRINT_OPTIONS_KERNEL], cache_dir, seed=seed)
        assert out["precision"] == 2
        assert sum("np.set_printoptions" in w for w in out["_warnings"]) == 1, out["_warnings"]


FIGURE_KERNEL = """
    import matplotlib.pyplot as plt
    from notebook_memo import memo

    @memo
    def size(n):
        fig = plt.figure()  # the first figure resolves matplotlib's backend (rcParams["backend"])
        plt.close(fig)
        return n

    size(1)
    size(1)
    OUT["hits"] = size.cache_info().hits
    """


def test_a_body_s_first_figure_is_no_setting_change(cache_dir: Path) -> None:
    # with no backend chosen (MPLBACKEND empty), as in a plain kernel
    out = run_kernel([FIGURE_KERNEL], cache_dir, seed=1, env={"MPLBACKEND": ""})
    assert out["hits"] == 1 and not any("rcParams" in w for w in out["_warnings"]), out
