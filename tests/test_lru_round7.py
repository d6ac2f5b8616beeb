"""A ``functools.lru_cache`` loader handed to another lru_cache function as an argument, and a user module's loader.

``@lru_cache def raw(path): return open(path).read()`` and ``@lru_cache def parsed(loader, path): return
loader(path).upper()``, called as ``parsed(raw, 'd.txt')``: the code of ``parsed`` names no loader, yet what it
holds came from what ``raw`` read, even where ``raw`` answered it from its own cache and ``parsed``'s fill read
nothing. A memoized call that ``parsed`` serves must take ``raw``'s reads as its conditions (stored, a hit after a
restart, run again once the file changed), or be refused with the warning that says which cache to empty where
``raw`` was filled unseen; whether ``raw`` reaches ``parsed`` directly, through the memoized function's own
argument, as a bound method, a partial, a tuple of loaders or an object with an lru_cache method; in a notebook and
in a plain script. A user module's loader (``tablelib.load``, next to the notebook) filled at the top level is
watched as the notebook's own are, or refused where that was not seen.

The tests of the handed-down loader fail with a stale value served after the file changed (a false hit); the
others guard the common cases against false misses and the module loader against false hits.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, Shell, run_kernel

IMPORT = "from notebook_memo import memo"
LOADERS = textwrap.dedent("""
    import functools

    @functools.lru_cache
    def raw(path):
        with open(path) as f:
            return f.read()

    @functools.lru_cache
    def parsed(loader, path):
        return loader(path).upper()
""")
G = textwrap.dedent("""
    @memo
    def g():
        return parsed(raw, 'd.txt') + '!'

    OUT['value'] = g(); OUT['info'] = list(g.cache_info()[:2])
""")


def _changed_between_kernels(cells: list[str], cache_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run ``cells`` in a kernel with d.txt 'old', then in another with d.txt 'new'; return both OUTs."""
    data = cache_dir.parent / "d.txt"  # run_kernel runs in tmp_path
    data.write_text("old")
    first = run_kernel(cells, cache_dir, seed=1)
    data.write_text("new")
    return first, run_kernel(cells, cache_dir, seed=2)


def _lru_warnings(out: dict[str, Any]) -> list[str]:
    return [w for w in out["_warnings"] if "cache_clear()" in w]


# -- a loader handed down as an argument: no false hit after the file changed ----------------------------------------


@pytest.mark.parametrize("call", [
    "parsed(raw, 'd.txt')",  # the notebook's global, handed to parsed
    "parsed(P, 'd.txt')",  # a partial over raw
    "parsed(REPO.load, 'd.txt')",  # a bound method of an object whose class has an lru_cache method
    "parsed(REPO, 'd.txt')",  # the object itself: parsed calls its method
    "parsed((raw,), 'd.txt')",  # a tuple of loaders
    "parsed(APPLY, 'd.txt')",  # a partial handing raw on to a plain function
    "parsed(HOLDER, 'd.txt')",  # an object holding raw in its own attribute
], ids=["global", "partial", "bound-method", "object", "tuple", "partial-args", "held"])
def test_a_loader_handed_to_another_loader_filled_at_top_level_runs_again_after_the_file_changed(
        cache_dir: Path, call: str) -> None:
    # raw and parsed are filled at the top level, where raw's reads are seen (REPO.load's, a method's, are not:
    # those calls are refused); parsed's fill read nothing, raw served it: a memoized call that parsed serves holds
    # what raw read, and must not be served once the file changed.
    helpers = textwrap.dedent("""
        import functools

        @functools.lru_cache
        def raw(path):
            with open(path) as f:
                return f.read()

        class Repo:
            @functools.lru_cache
            def load(self, path):
                with open(path) as f:
                    return f.read()

            def __call__(self, path):
                return self.load(path)

        class Holder:
            def __init__(self, loader):
                self.loader = loader

            def __call__(self, path):
                return self.loader(path)

        def apply(loader, path):
            return loader(path)

        REPO = Repo()
        P = functools.partial(raw)
        APPLY = functools.partial(apply, raw)
        HOLDER = Holder(raw)

        @functools.lru_cache
        def parsed(loader, path):
            if isinstance(loader, tuple):
                loader = loader[0]
            return loader(path).upper()
    """)
    fill = f"raw('d.txt'); REPO.load('d.txt'); {call}"
    first, second = _changed_between_kernels([IMPORT, helpers, fill, G.replace("parsed(raw, 'd.txt')", call)],
                                             cache_dir)
    assert first["value"] == "OLD!", first
    assert second["value"] == "NEW!", second


def test_a_loader_handed_down_through_the_memoized_function_s_argument_runs_again_after_the_file_changed(
        cache_dir: Path) -> None:
    report = textwrap.dedent("""
        @memo
        def report(loader):
            return parsed(loader, 'd.txt') + '!'

        OUT['value'] = report(raw)
    """)
    first, second = _changed_between_kernels([IMPORT, LOADERS, "raw('d.txt'); parsed(raw, 'd.txt')", report],
                                             cache_dir)
    assert (first["value"], _lru_warnings(first)) == ("OLD!", []), first
    assert second["value"] == "NEW!", second


def test_a_user_module_s_loader_handed_to_a_notebook_loader_runs_again_after_the_file_changed(
        cache_dir: Path) -> None:
    (cache_dir.parent / "tablelib.py").write_text(LOADERS)
    cells = [IMPORT, "import tablelib\nfrom tablelib import parsed",
             "tablelib.raw('d.txt'); parsed(tablelib.raw, 'd.txt')", G.replace("(raw,", "(tablelib.raw,")]
    first, second = _changed_between_kernels(cells, cache_dir)
    assert (first["value"], _lru_warnings(first)) == ("OLD!", []), first
    assert second["value"] == "NEW!", second


@pytest.fixture
def notebook(shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shell]:
    """The shell in tmp_path, with notebook_memo loaded as a notebook's import loads it."""
    monkeypatch.chdir(tmp_path)
    shell.run("%load_ext notebook_memo")
    shell.run("OUT = {}\n" + IMPORT)
    yield shell
    shell.run("%unload_ext notebook_memo")


def test_a_loader_handed_down_whose_file_changed_is_refused_in_the_kernel(notebook: Shell, tmp_path: Path) -> None:
    # parsed still serves what raw read before the change: that is the user's own lru_cache, stale by its nature;
    # a memoized call it serves must not be stored under the new file, and the warning says which caches to empty.
    (tmp_path / "d.txt").write_text("old")
    notebook.run(LOADERS)
    notebook.run("raw('d.txt'); parsed(raw, 'd.txt')")
    (tmp_path / "d.txt").write_text("new, longer")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        notebook.run(G)
    found = [str(w.message) for w in caught if "cache_clear()" in str(w.message)]
    assert found and "d.txt" in found[0] and "raw.cache_clear()" in found[0], found
    assert notebook["OUT"]["info"] == [0, 1]
    notebook.run("raw.cache_clear(); parsed.cache_clear()\n" + G)
    notebook.run(G)
    assert notebook["OUT"] == {"value": "NEW, LONGER!", "info": [1, 0]}  # g made anew: a hit


def test_a_loader_handed_down_and_filled_before_the_import_is_refused(cache_dir: Path) -> None:
    # raw's fill was not seen; parsed, filled after the import from raw's cache, read nothing itself.
    first, second = _changed_between_kernels([LOADERS + "\nraw('d.txt')", IMPORT, "parsed(raw, 'd.txt')", G],
                                             cache_dir)
    warned = _lru_warnings(first)
    assert first["value"] == "OLD!" and warned and "raw.cache_clear()" in warned[0], first
    assert second["value"] == "NEW!", second


SCRIPT = """
import functools, json, sys, warnings
warnings.simplefilter("always")
from notebook_memo import memo

@functools.lru_cache
def raw(path):
    with open(path) as f:
        return f.read()

@functools.lru_cache
def parsed(loader, path):
    return loader(path).upper()

raw("d.txt")  # a look at the data: no memoized call has met raw yet, so what it read is not seen

@memo
def first():
    return parsed(raw, "d.txt") + "?"

@memo
def second(loader):
    return parsed(loader, "d.txt") + "!"

with warnings.catch_warnings(record=True) as caught:
    values = [first(), second(raw)]
print(json.dumps([values, [str(w.message) for w in caught if "cache_clear()" in str(w.message)]]))
"""


def test_a_plain_script_refuses_a_call_served_by_a_loader_handed_a_loader_filled_unseen(tmp_path: Path) -> None:
    # first's run fills parsed from raw's cache (raw unseen: refused); second is served by parsed alone, which
    # read nothing: it holds what raw read unseen, so second is refused too, and runs again once the file changed.
    (tmp_path / "script.py").write_text(SCRIPT)

    def run() -> list[Any]:
        proc = subprocess.run([sys.executable, "script.py"], capture_output=True, text=True, cwd=tmp_path,
                              timeout=120, env={"PYTHONPATH": str(ROOT), "NOTEBOOK_MEMO_DIR": str(tmp_path / "cache"),
                                                "PATH": "/usr/bin:/bin"})
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout.splitlines()[-1])  # type: ignore[no-any-return]

    (tmp_path / "d.txt").write_text("old")
    values, warned = run()
    assert values == ["OLD?", "OLD!"] and len(warned) == 2 and "raw.cache_clear()" in warned[1], warned
    (tmp_path / "d.txt").write_text("new")
    assert run()[0] == ["NEW?", "NEW!"]


# -- no false miss where every read was seen ------------------------------------------------------------------------


@pytest.mark.parametrize("fill", ["", "raw('d.txt'); parsed(raw, 'd.txt')"], ids=["in-the-run", "own-cell"])
def test_a_loader_handed_down_whose_reads_were_seen_hits_after_a_restart(cache_dir: Path, fill: str) -> None:
    cells = [IMPORT, LOADERS, fill, G]
    data = cache_dir.parent / "d.txt"
    data.write_text("old")
    assert [run_kernel(cells, cache_dir, seed=seed) for seed in (1, 2)] == [
        {"value": "OLD!", "info": [0, 1], "_warnings": []}, {"value": "OLD!", "info": [1, 0], "_warnings": []}]
    data.write_text("new")
    assert run_kernel(cells, cache_dir, seed=3) == {"value": "NEW!", "info": [0, 1], "_warnings": []}


# -- a user module's loader -----------------------------------------------------------------------------------------

TABLELIB = textwrap.dedent("""
    import functools

    @functools.lru_cache
    def load(name):
        with open(name) as f:
            return f.read()
""")
F = textwrap.dedent("""
    @memo
    def f{n}():
        return tablelib.load('d.txt') + '{n}'

    OUT['f{n}'] = [f{n}(), list(f{n}.cache_info()[:2])]
""")


def test_a_user_module_s_loader_filled_at_top_level_is_seen_and_its_change_refuses_a_later_call(
        cache_dir: Path) -> None:
    # tablelib.load, filled at the top level before any memoized call, is the notebook's own (its file lies beside
    # the notebook): its reads are seen, so f1 is stored. The file then changes in the kernel: the loader still
    # serves the old text (the user's lru_cache, stale by its nature); f2, which it serves, must not be stored as
    # if it read nothing (a later kernel would be served the old text): it is refused, with the warning to call
    # load.cache_clear(). In the next kernel both run again on the new text, are stored, and then hit.
    (cache_dir.parent / "tablelib.py").write_text(TABLELIB)
    data = cache_dir.parent / "d.txt"
    data.write_text("old")
    cells = [IMPORT, "import tablelib", "tablelib.load('d.txt')", F.format(n=1), F.format(n=2)]
    first = run_kernel([*cells[:4], "import pathlib\npathlib.Path('d.txt').write_text('new')", cells[4]],
                       cache_dir, seed=1)
    warned = _lru_warnings(first)
    assert (first["f1"], first["f2"]) == (["old1", [0, 1]], ["old2", [0, 1]]), first
    assert len(warned) == 1 and "f2" in warned[0] and "has changed since" in warned[0], warned
    assert run_kernel(cells, cache_dir, seed=2) == {"f1": ["new1", [0, 1]], "f2": ["new2", [0, 1]], "_warnings": []}
    assert run_kernel(cells, cache_dir, seed=3) == {"f1": ["new1", [1, 0]], "f2": ["new2", [1, 0]], "_warnings": []}


ALIASED = textwrap.dedent("""
    import functools

    def _read(name):
        with open(name) as f:
            return f.read()

    load = functools.lru_cache(_read)
""")


def test_a_user_module_s_aliased_loader_filled_in_a_later_cell_hits_after_a_restart(cache_dir: Path) -> None:
    # load = lru_cache(_read) in tablelib: its frames run under _read, so no name finds it at its first read; the
    # cell after the import finds it empty among the user's modules and watches it, as a notebook's own.
    (cache_dir.parent / "tablelib.py").write_text(ALIASED)
    cells = [IMPORT, "import tablelib", "tablelib.load('d.txt')", F.format(n=1)]
    data = cache_dir.parent / "d.txt"
    data.write_text("old")
    assert run_kernel(cells, cache_dir, seed=1) == {"f1": ["old1", [0, 1]], "_warnings": []}
    assert run_kernel(cells, cache_dir, seed=2) == {"f1": ["old1", [1, 0]], "_warnings": []}
    data.write_text("new")
    assert run_kernel(cells, cache_dir, seed=3) == {"f1": ["new1", [0, 1]], "_warnings": []}


def test_a_user_module_s_aliased_loader_filled_as_it_is_imported_is_refused(cache_dir: Path) -> None:
    # Imported and filled in one cell: nothing watched it yet, so what it read was not seen.
    (cache_dir.parent / "tablelib.py").write_text(ALIASED)
    first, second = _changed_between_kernels([IMPORT, "import tablelib\ntablelib.load('d.txt')", F.format(n=1)],
                                             cache_dir)
    warned = _lru_warnings(first)
    assert first["f1"] == ["old1", [0, 1]] and warned and "cache_clear()" in warned[0], first
    assert second["f1"][0] == "new1", second
