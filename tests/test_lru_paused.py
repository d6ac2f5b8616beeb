"""A ``functools.lru_cache`` loader filled by the user's code that our own work runs, where nothing is recorded.

Keying a call, preparing a ``%%memo`` cell, storing a result and reading one back run the user's code: an
argument's ``__memo_key__``, a reduction (``__getstate__``) hashed in its place, a registered hasher, a result's
pickling and unpickling. A loader they fill there opens the file then, and serves the body from its cache later:
what it read must be known as at the notebook's top level, so that the result is stored with the file as its
condition. Our own reads there (the store's index and files, opened from our code) are still no loader's.

Each test fails with the old result served after the file changed (the same number of rows, other values), or
with a loader's result refused.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_kernel

# A loader of rows, and a data set keyed cheaply by its path and its number of rows (what the loader read).
PRELUDE = """
    import functools, sys
    from notebook_memo import memo, register_hasher

    @functools.lru_cache
    def table(path):
        with open(path) as fh:
            return [int(x) for x in fh.read().split()]
"""

TOTAL = """
    @memo(cache_dir="cache")
    def total(ds):
        return sum(table(ds.path))
"""


def _runs(tmp_path: Path, parts: list[str], contents: list[str], argv: list[list[str]] | None = None) -> list[str]:
    """Run the script made of ``parts`` in a fresh process (another hash seed each time) once per item of
    ``contents``, written to data.txt before it (with the command-line arguments ``argv`` gives that run); return
    what each printed, with no warning about an lru_cache function."""
    path = tmp_path / "run.py"
    path.write_text("".join(textwrap.dedent(part) for part in [PRELUDE, *parts]))
    printed = []
    for seed, (content, args) in enumerate(zip(contents, argv or [[]] * len(contents), strict=True), 1):
        (tmp_path / "data.txt").write_text(content)
        environment = {**os.environ, "PYTHONHASHSEED": str(seed),
                       "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        proc = subprocess.run([sys.executable, "-W", "always", str(path), *args], capture_output=True, text=True,
                              env=environment, timeout=120, cwd=str(tmp_path))
        assert proc.returncode == 0 and "lru_cache" not in proc.stderr, proc.stderr
        printed.append(proc.stdout.strip())
    return printed


# -- keying a call ------------------------------------------------------------------------------------------------


def test_a_loader_filled_by_an_arguments_memo_key_is_the_bodys_read(tmp_path: Path) -> None:
    script = """
        class Dataset:
            def __init__(self, path):
                self.path = path
            def __memo_key__(self):  # cheap: the path and the number of rows
                return (self.path, len(table(self.path)))
    """
    use = "print(total(Dataset('data.txt')))\n"
    assert _runs(tmp_path, [script, TOTAL, use], ["1 2 3", "10 20 30"]) == ["6", "60"]


def test_a_loader_filled_by_a_memoized_call_in_a_memo_key_is_the_bodys_read(tmp_path: Path) -> None:
    # A memoized call made while keying records what it reads itself: the loader it fills knows it too.
    script = """
        @memo(cache_dir="cache")
        def rows(path):
            return len(table(path))

        class Dataset:
            def __init__(self, path):
                self.path = path
            def __memo_key__(self):
                return (self.path, rows(self.path))
    """
    use = "print(total(Dataset('data.txt')))\n"
    assert _runs(tmp_path, [script, TOTAL, use], ["1 2 3", "10 20 30"]) == ["6", "60"]


def test_a_loader_refilled_by_a_memo_key_after_its_cache_clear_is_the_bodys_read(tmp_path: Path) -> None:
    # In one process: the data changes, the loader is emptied as the warnings say, and keying the next call fills
    # it again before any body starts. The new read is what counts, not the one its emptied entry was made from.
    script = """
        class Dataset:
            def __init__(self, path):
                self.path = path
            def __memo_key__(self):
                return (self.path, len(table(self.path)))
    """
    use = """
        import warnings
        print(total(Dataset('data.txt')))
        with open('data.txt', 'w') as fh:
            fh.write('10 20 30')
        table.cache_clear()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            print(total(Dataset('data.txt')), total(Dataset('data.txt')), total.cache_info().hits)
        print([str(w.message) for w in caught])
    """
    assert _runs(tmp_path, [script, TOTAL, use], ["1 2 3"]) == ["6\n60 60 1\n[]"]


def test_a_loader_filled_before_the_first_call_and_emptied_as_the_warning_says_is_then_known(tmp_path: Path) -> None:
    # Filled at a script's top level before any memoized call met it, it is not trusted (the call is refused with a
    # warning); emptied as the warning says, the next call's keying fills it again before its body starts: that
    # fill was seen.
    script = """
        import warnings

        class Dataset:
            def __init__(self, path):
                self.path = path
            def __memo_key__(self):
                return (self.path, len(table(self.path)))
    """
    use = """
        print(len(table('data.txt')))
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            total(Dataset('data.txt'))
        table.cache_clear()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            print(total(Dataset('data.txt')), total(Dataset('data.txt')), total.cache_info().hits)
        print([str(w.message) for w in caught])
    """
    assert _runs(tmp_path, [script, TOTAL, use], ["1 2 3"]) == ["3\n6 6 1\n[]"]


# -- storing and reading back a result ----------------------------------------------------------------------------


def test_a_loader_filled_by_pickling_a_result_is_a_later_bodys_read(tmp_path: Path) -> None:
    script = """
        class Summary:
            def __init__(self, path):
                self.path = path
            def __getstate__(self):  # pickled as it is stored
                return {"path": self.path, "rows": len(table(self.path))}

        @memo(cache_dir="cache")
        def summary(path):
            return Summary(path)

        @memo(cache_dir="cache")
        def total(path):
            return sum(table(path))

        summary('data.txt')
        print(total('data.txt'))
    """
    assert _runs(tmp_path, [script], ["1 2 3", "10 20 30"]) == ["6", "60"]


def test_a_loader_filled_by_unpickling_a_result_is_a_later_bodys_read(tmp_path: Path) -> None:
    script = """
        class Summary:
            def __init__(self, path):
                self.path = path
            def __setstate__(self, state):  # unpickled as a hit is read back
                self.__dict__.update(state, rows=len(table(state["path"])))

        @memo(cache_dir="cache")
        def summary(path):
            return Summary(path)

        @memo(cache_dir="cache")
        def total(path):
            return sum(table(path))

        summary('data.txt')
        if sys.argv[1:] == ["total"]:
            print(total('data.txt'))
    """
    # The first run stores the summary; the second reads it back, filling the loader, then stores the total; the
    # third, after the change, must not be served that total.
    printed = _runs(tmp_path, [script], ["1 2 3", "1 2 3", "10 20 30"], argv=[[], ["total"], ["total"]])
    assert printed == ["", "6", "60"]


# -- a notebook ---------------------------------------------------------------------------------------------------

LOADER = """
import functools
from notebook_memo import register_hasher
@functools.lru_cache
def table(path):
    with open(path) as fh:
        return [int(x) for x in fh.read().split()]
"""

# How the data set is keyed: each runs the loader while the notebook's input (or the call's argument) is keyed.
KEYED = {
    "memo_key": """
class Dataset:
    def __init__(self, path):
        self.path = path
    def __memo_key__(self):
        return (self.path, len(table(self.path)))
""",
    "reduction": """
class Dataset:
    def __init__(self, path):
        self.path = path
    def __getstate__(self):  # what pickle saves, and what the data set is hashed by
        return {"path": self.path, "rows": len(table(self.path))}
""",
    "hasher": """
class Dataset:
    def __init__(self, path):
        self.path = path
register_hasher(Dataset, lambda ds: (ds.path, len(table(ds.path))))
""",
}

USES = {
    "cell": "%%memo\ncell_total = sum(table(ds.path))\nOUT['value'] = cell_total",
    "function": "@memo\ndef total(ds):\n    return sum(table(ds.path))\nOUT['value'] = total(ds)",
}


@pytest.mark.parametrize("keyed", list(KEYED))
@pytest.mark.parametrize("use", list(USES))
def test_a_loader_filled_while_a_notebooks_input_is_keyed_is_the_bodys_read(tmp_path: Path, keyed: str,
                                                                           use: str) -> None:
    cells = ["from notebook_memo import memo\n%load_ext notebook_memo", LOADER,
             KEYED[keyed] + "ds = Dataset('data.txt')", USES[use]]
    found = []
    for seed, content in enumerate(["1 2 3", "10 20 30"], 1):
        (tmp_path / "data.txt").write_text(content)
        out = run_kernel(cells, tmp_path / "cache", seed=seed)
        assert [w for w in out["_warnings"] if "lru_cache" in w] == []
        found.append(out["value"])
    assert found == [6, 60]


# -- our own reads ------------------------------------------------------------------------------------------------


PARSE = """
from notebook_memo import memo
%load_ext notebook_memo
@memo(cache_dir="parsed")
def parse(name):
    with open(name) as f:
        return f.read()
"""


def test_a_memoized_calls_store_opened_inside_a_top_level_loader_is_not_the_loaders_read(tmp_path: Path) -> None:
    """A notebook's loader fills at the top level through a memoized function served from its store, which the
    lookup opens there for the first time in the kernel: that store's database, opened by our code, is not what
    the loader read (which would leave the loader unknown, and the body it serves refused)."""
    (tmp_path / "d.txt").write_text("D1")
    run_kernel([PARSE, "OUT['value'] = parse('d.txt')"], tmp_path / "cache", seed=1)
    out = run_kernel([PARSE, """
import functools

@functools.lru_cache
def load(name):
    return parse(name)
""", """
df = load('d.txt')  # a look at the data, at the top level: parse is served from its store
""", """
@memo
def show(name):
    return "<" + load(name) + ">"

show('d.txt')
OUT['value'] = show('d.txt'), parse.cache_info().hits, show.cache_info().hits
"""], tmp_path / "cache", seed=2)
    assert [w for w in out["_warnings"] if "lru_cache" in w] == []
    assert out["value"] == ["<D1>", 1, 1]


def test_what_a_top_level_loader_read_before_a_memoized_call_it_makes_runs_is_kept(tmp_path: Path) -> None:
    """A loader reads a file, then calls a memoized function that runs: the run's start (which forgets what an
    emptied loader read) is not an emptying of the loader, still filling: the file it read first is still its."""
    (tmp_path / "d.txt").write_text("D")
    cells = [PARSE, """
import functools

@functools.lru_cache
def load(name):
    with open("meta.txt") as f:
        meta = f.read()
    return parse(name) + meta
""", "df = load('d.txt')", """
@memo
def show(name):
    return "<" + load(name) + ">"

OUT['value'] = show('d.txt')
"""]
    found = []
    for seed, meta in enumerate(["M1", "M2"], 1):
        (tmp_path / "meta.txt").write_text(meta)
        out = run_kernel(cells, tmp_path / "cache", seed=seed)
        assert [w for w in out["_warnings"] if "lru_cache" in w] == []
        found.append(out["value"])
    assert found == ["<DM1>", "<DM2>"]
