"""What a body leaves behind besides its result, which a hit must not silently skip: libraries' process-wide
settings it changes (decimal's context, torch's default dtype, pandas' options, Python's int digit limit), files it
writes, and the sizes and times of files it looks at without opening them. Real shells, real files, real kernels
restarted with other hash seeds."""

from __future__ import annotations

import decimal
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
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


# -- process-wide settings ------------------------------------------------------------------------------------

@pytest.fixture
def settings_restored() -> Iterator[None]:
    """The settings these tests change, as they were, after the test."""
    context = decimal.getcontext().copy()
    dtype = torch.get_default_dtype()
    numexpr = pd.get_option("compute.use_numexpr")
    digits = sys.get_int_max_str_digits()
    yield
    decimal.setcontext(context)
    torch.set_default_dtype(dtype)
    pd.set_option("compute.use_numexpr", numexpr)
    sys.set_int_max_str_digits(digits)


SETTING_BODIES = {
    "decimal_precision": ("decimal.getcontext().prec = 6", "decimal", "prec=6"),
    "torch_default_dtype": ("torch.set_default_dtype(torch.float64)", "torch", "torch.float64"),
    "pandas_option": ('pd.set_option("compute.use_numexpr", OTHER_NUMEXPR)', "pandas", "compute.use_numexpr"),
    "int_digit_limit": ("sys.set_int_max_str_digits(6543)", "int", "6543"),
}


@pytest.mark.parametrize("body, library, said", SETTING_BODIES.values(), ids=SETTING_BODIES.keys())
def test_a_body_that_changes_a_library_setting_is_not_cached(shell: Shell, counter: Counter, settings_restored: None,
                                                            body: str, library: str, said: str) -> None:
    shell.ip.user_ns.update(counter=counter, OTHER_NUMEXPR=not pd.get_option("compute.use_numexpr"))
    shell.run(f"""
        import decimal, sys
        import pandas as pd
        import torch
        from notebook_memo import memo

        @memo
        def setup():
            counter()
            {body}
            return 1
        """)
    warned = _said(shell, "setup()")
    assert len(warned) == 1 and library in warned[0] and said in warned[0] and "not cached" in warned[0], warned
    # Run again with the setting already as the first run left it: it changes nothing now, and is still not
    # stored (a restarted kernel would be served it, with the setting unset).
    assert _said(shell, "setup()") == []
    assert counter.n == 2


def test_a_cell_that_changes_a_library_setting_is_not_cached(shell: Shell, counter: Counter,
                                                             settings_restored: None) -> None:
    shell.ip.user_ns.update(counter=counter)
    shell.run("%load_ext notebook_memo")
    cell = "%%memo\ncounter()\ndecimal.getcontext().prec = 7\nx = 1"
    shell.run("import decimal")
    warned = _said(shell, cell)
    assert len(warned) == 1 and "prec=7" in warned[0], warned
    assert _said(shell, cell) == []
    assert counter.n == 2


def test_a_body_that_puts_a_setting_back_is_cached(shell: Shell, counter: Counter, settings_restored: None) -> None:
    shell.ip.user_ns.update(counter=counter)
    shell.run("""
        import decimal
        import torch
        from notebook_memo import memo

        @memo
        def precise(x):
            counter()
            with decimal.localcontext() as context:
                context.prec = 50
                value = str(decimal.Decimal(x) / 7)
            dtype = torch.get_default_dtype()
            torch.set_default_dtype(torch.float64)
            torch.set_default_dtype(dtype)
            return value
        """)
    assert _said(shell, "precise(1); precise(1)") == []
    assert counter.n == 1


def test_a_setting_made_by_a_module_the_body_imports_first_is_not_the_bodys(shell: Shell, counter: Counter,
                                                                           tmp_path: Path, settings_restored: None,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "nbm_sets_precision.py").write_text("import decimal\ndecimal.getcontext().prec = 9\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "nbm_sets_precision", raising=False)
    shell.ip.user_ns.update(counter=counter)
    shell.run("""
        from notebook_memo import memo

        @memo
        def load():
            counter()
            import nbm_sets_precision
            return 1
        """)
    assert _said(shell, "load(); load(); load()") == []
    assert counter.n <= 2  # its first run is not stored (the change may be the body's), a later one is
    assert shell.run("load.cache_info().hits") >= 1
    monkeypatch.delitem(sys.modules, "nbm_sets_precision", raising=False)


SETTING_KERNEL = """
    import decimal
    from notebook_memo import memo

    @memo
    def setup(p):
        decimal.getcontext().prec = p
        return p

    setup(6)
    setup(6)
    OUT["prec"] = decimal.getcontext().prec
    """


def test_after_a_restart_the_body_still_changes_the_setting(cache_dir: Path) -> None:
    for seed in (1, 2):
        out = run_kernel([SETTING_KERNEL], cache_dir, seed=seed)
        assert out["prec"] == 6
        assert any("prec=6" in w for w in out["_warnings"]), out["_warnings"]


# -- files the body writes --------------------------------------------------------------------------------------

WRITER_KERNEL = """
    import os
    from notebook_memo import memo

    @memo
    def export(n, path):
        with open(path, "w") as f:
            f.write("row\\n" * n)
        return path

    OUT["path"] = export(3, "report.csv")
    OUT["hits"] = export.cache_info().hits
    OUT["content"] = open("report.csv").read()
    """


def test_after_a_restart_a_file_the_body_wrote_is_made_again_when_gone_or_changed(cache_dir: Path) -> None:
    report = cache_dir.parent / "report.csv"  # run_kernel runs in the cache folder's parent
    assert run_kernel([WRITER_KERNEL], cache_dir, seed=1)["hits"] == 0
    assert run_kernel([WRITER_KERNEL], cache_dir, seed=2)["hits"] == 1  # as the run left it: served
    report.unlink()
    out = run_kernel([WRITER_KERNEL], cache_dir, seed=3)
    assert out["hits"] == 0 and out["content"] == "row\n" * 3
    report.write_text("someone else's\n")
    out = run_kernel([WRITER_KERNEL], cache_dir, seed=4)
    assert out["hits"] == 0 and out["content"] == "row\n" * 3


WRITES = {
    "write_text": 'Path(path).write_text("x" * n)',
    "numpy_save": "np.save(path, np.arange(n))",
    "pandas_to_csv": "pd.DataFrame({'a': range(n)}).to_csv(path)",
    "replaced_into_place": 'Path(path + ".tmp").write_text("x" * n); os.replace(path + ".tmp", path)',
}


@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
def test_a_file_the_body_wrote_is_checked_on_a_hit(shell: Shell, counter: Counter, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch, write: str) -> None:
    monkeypatch.chdir(tmp_path)
    shell.ip.user_ns.update(counter=counter)
    shell.run(f"""
        import os
        from pathlib import Path
        import numpy as np
        import pandas as pd
        from notebook_memo import memo

        @memo
        def export(n, path):
            counter()
            {write}
            return path
        """)
    out = tmp_path / "out.npy"  # np.save adds .npy to a name without it
    shell.run(f"export(3, {str(out)!r}); export(3, {str(out)!r})")
    assert counter.n == 1
    made = out.read_bytes()
    out.write_bytes(made[:-1] + b"?")  # same size, other content
    shell.run(f"export(3, {str(out)!r})")
    assert counter.n == 2 and out.read_bytes() == made
    out.unlink()
    shell.run(f"export(3, {str(out)!r})")
    assert counter.n == 3 and out.read_bytes() == made
    assert not (tmp_path / "out.npy.tmp").exists()


def test_a_changed_output_is_named_in_the_explanation(tmp_path: Path, counter: Counter,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from notebook_memo import memo

    monkeypatch.chdir(tmp_path)

    @memo
    def export(n: int) -> str:
        counter()
        Path("report.csv").write_text("row\n" * n)
        return "report.csv"

    export(2)
    Path("report.csv").unlink()
    assert "file report.csv is gone, which the run wrote" in str(export.explain(2))


def test_a_log_the_body_appends_to_is_not_checked(tmp_path: Path, counter: Counter,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from notebook_memo import memo

    monkeypatch.chdir(tmp_path)

    @memo
    def step(n: int) -> int:
        counter()
        with open("run.log", "a") as log:  # every run of every key adds a line
            log.write(f"step {n}\n")
        return n * 2

    assert step(1) == 2 and step(2) == 4 and step(1) == 2
    assert counter.n == 2
    assert Path("run.log").read_text() == "step 1\nstep 2\n"


def test_a_file_the_body_wrote_and_removed_is_not_checked(tmp_path: Path, counter: Counter,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from notebook_memo import memo

    monkeypatch.chdir(tmp_path)

    @memo
    def scratch(n: int) -> int:
        counter()
        Path("scratch.txt").write_text(str(n))
        value = int(Path("scratch.txt").read_text())
        os.remove("scratch.txt")
        return value

    assert scratch(5) == 5 and scratch(5) == 5 and counter.n == 1


# -- sizes and times of listed files ----------------------------------------------------------------------------

STAT_BODIES = {
    "getsize_of_listdir": "sum(os.path.getsize(os.path.join(folder, n)) for n in sorted(os.listdir(folder)))",
    "newest_by_getmtime": 'os.path.basename(max(sorted(glob.glob(folder + "/*.csv")), key=os.path.getmtime))',
    "direntry_stat": "sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in os.scandir(folder))",
    "path_stat": "sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in Path(folder).iterdir())",
    "in_a_helper": "measure(folder)",
}


@pytest.mark.parametrize("body", STAT_BODIES.values(), ids=STAT_BODIES.keys())
def test_sizes_and_times_read_from_a_listed_folder_are_checked(shell: Shell, counter: Counter, tmp_path: Path,
                                                              body: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name in ("a.csv", "b.csv"):
        (data / name).write_text("1,2\n")
    os.utime(data / "a.csv", ns=(10**18, 10**18))
    os.utime(data / "b.csv", ns=(2 * 10**18, 2 * 10**18))  # b.csv is the newest
    shell.ip.user_ns.update(counter=counter, FOLDER=str(data))
    shell.run(f"""
        import glob, os
        from pathlib import Path
        from notebook_memo import memo

        def measure(folder):
            return {{e.name: os.stat(e.path).st_size for e in os.scandir(folder)}}

        @memo
        def summary(folder):
            counter()
            return {body}
        """)
    first = shell.run("summary(FOLDER); summary(FOLDER)")
    assert counter.n == 1
    with open(data / "a.csv", "a") as f:
        f.write("3,4\n5,6\n")
    os.utime(data / "a.csv", ns=(3 * 10**18, 3 * 10**18))  # a.csv grows and is the newest now
    assert shell.run("summary(FOLDER)") != first
    assert counter.n == 2


def test_a_body_that_lists_names_only_is_served_when_a_file_in_the_folder_grows(counter: Counter,
                                                                              tmp_path: Path) -> None:
    from notebook_memo import memo

    data = tmp_path / "data"  # tmp_path holds the cache folder too
    data.mkdir()
    (data / "a.csv").write_text("1\n")

    @memo
    def names(folder: str) -> list[str]:
        counter()
        return sorted(os.listdir(folder))

    assert names(str(data)) == ["a.csv"]
    (data / "a.csv").write_text("1\n2\n")
    assert names(str(data)) == ["a.csv"] and counter.n == 1


def test_a_grown_file_is_named_in_the_explanation(counter: Counter, tmp_path: Path) -> None:
    from notebook_memo import memo

    data = tmp_path / "data"  # tmp_path holds the cache folder too
    data.mkdir()
    (data / "a.csv").write_text("1\n")

    @memo
    def total(folder: str) -> int:
        counter()
        return sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder))

    assert total(str(data)) == 2
    (data / "a.csv").write_text("1\n2\n")
    assert "size or modification time" in str(total.explain(str(data)))
