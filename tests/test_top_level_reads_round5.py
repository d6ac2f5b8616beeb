"""Files read at the notebook's top level, round five: what watching the notebook's ``functools.lru_cache``
functions costs a read that no memoized body makes, and what it must still see.

Under IPython every file read outside a body walks the reading thread's stack (and, from a pool's thread, the other
threads' stacks) for a loader filling its cache. Reading a frame's code raises an audit event that our own hook
answers, so the frames of library code (IPython's, ``threading``'s, a pool's), where no such loader of the notebook's
can run, are passed over by their namespace; a loader's reads are still seen in its own thread, in a pool it starts,
and for a library's lru_cache function that a memoized call watches (one given as an argument).

The first test fails with every library frame's code read at each read; the others with a stale result served.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from notebook_memo import _fingerprint
from tests.conftest import RUNS_SETUP, Shell


@pytest.fixture
def notebook(shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shell]:
    """The shell, in tmp_path, with notebook_memo loaded as a notebook's import loads it."""
    monkeypatch.chdir(tmp_path)
    shell.run("%load_ext notebook_memo")
    yield shell
    shell.run("%unload_ext notebook_memo")


_CODE_READS: list[int] = []  # [count] while a test counts, else empty


def _count_code_reads(event: str, args: tuple[object, ...]) -> None:
    if _CODE_READS and event == "object.__getattr__" and args[1:2] == ("f_code",):
        _CODE_READS[0] += 1


sys.addaudithook(_count_code_reads)  # hooks cannot be removed: it counts only while a test asks


def _lru_warnings(shell: Shell, source: str) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shell.run(source)
    return [str(w.message) for w in caught if "lru_cache" in str(w.message)]


@pytest.mark.parametrize("where", ["main", "pool"])
def test_a_top_level_read_does_not_read_the_code_of_library_frames(notebook: Shell, tmp_path: Path,
                                                                   where: str) -> None:
    for i in range(20):
        (tmp_path / f"f{i}.csv").write_text(f"a\n{i}\n")
    notebook.run("import concurrent.futures\ndef rd(i):\n    with open(f'f{i}.csv') as fh:\n        return fh.read()\n")
    reads = "[rd(i) for i in range(20)]" if where == "main" else \
        "list(concurrent.futures.ThreadPoolExecutor(4).map(rd, range(20)))"
    notebook.run("pool = concurrent.futures.ThreadPoolExecutor(4); list(pool.map(rd, range(4)));")  # threads started
    reads = reads.replace("concurrent.futures.ThreadPoolExecutor(4)", "pool")
    notebook.ip.user_ns["user_frames_here"] = _user_frames_here
    _CODE_READS[:] = [0]
    try:
        notebook.run(f"below = user_frames_here(); texts = {reads}")
    finally:
        counted = _CODE_READS.pop()
        notebook.run("pool.shutdown()")
    assert len(notebook["texts"]) == 20
    # Only the frames of user code are looked into at each read: the cell's and those below it (the test's own),
    # rd's and the list comprehension's, with one more for the caller's file, and from a pool's thread the rd
    # frames of the pool's other three; IPython's frames and the pool's (threading's, concurrent.futures'), which
    # number tens, are passed over.
    assert counted <= 20 * (notebook["below"] + 6), (counted, notebook["below"])


def _user_frames_here() -> int:
    """Return how many frames of user code run below the caller's, the caller's included."""
    frame, count = sys._getframe(1), 0
    while frame is not None:
        module = sys.modules.get(frame.f_globals.get("__name__", ""))
        count += module is None or _fingerprint.is_user_code(module)
        frame = frame.f_back
    return count


def test_a_loader_reading_in_its_own_thread_and_in_a_pool_it_starts_is_still_seen(notebook: Shell,
                                                                                  tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("A1")
    (tmp_path / "b.txt").write_text("B1")
    notebook.run(RUNS_SETUP)
    notebook.run("""
        import concurrent.futures
        import functools
        from notebook_memo import memo

        def read(name):
            with open(name) as f:
                return f.read()

        @functools.lru_cache
        def load(first, second):
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                other = pool.submit(read, second).result()
            return read(first) + other

        df = load('a.txt', 'b.txt')

        @memo
        def show(first, second):
            ran(first)
            return "<" + load(first, second) + ">"
    """)
    assert _lru_warnings(notebook, "first = show('a.txt', 'b.txt')") == []
    (tmp_path / "b.txt").write_text("B2, changed")  # read in the pool only
    notebook.run("load.cache_clear()")
    assert _lru_warnings(notebook, "second = show('a.txt', 'b.txt')") == []
    assert (notebook["first"], notebook["second"]) == ("<A1B1>", "<A1B2, changed>")


def test_a_watched_library_loader_filled_at_top_level_is_still_seen(notebook: Shell, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # A library's lru_cache function runs in a library's namespace, where frames are otherwise passed over: once a
    # memoized call has met it (as an argument), what its top-level fills read must still be seen.
    library = tmp_path / "site"
    library.mkdir()
    (library / "tablelib.py").write_text(
        "import functools\n\n@functools.lru_cache\ndef load(name):\n    with open(name) as f:\n"
        "        return f.read()\n")
    monkeypatch.setattr(_fingerprint, "_ROOTS", (*_fingerprint._ROOTS, str(library.resolve())))
    monkeypatch.syspath_prepend(str(library))
    (tmp_path / "p.txt").write_text("P")
    (tmp_path / "q.txt").write_text("Q1")
    notebook.run("""
        import tablelib
        from notebook_memo import memo

        @memo
        def show(loader, name):
            return "<" + loader(name) + ">"
    """)
    try:
        notebook.run("show(tablelib.load, 'p.txt')")  # keyed as an argument: watched from here on
        notebook.run("tablelib.load('q.txt')")  # filled at the top level
        assert _lru_warnings(notebook, "first = show(tablelib.load, 'q.txt')") == []
        (tmp_path / "q.txt").write_text("Q2, changed")
        notebook.run("tablelib.load.cache_clear()")
        notebook.run("second = show(tablelib.load, 'q.txt')")
        assert (notebook["first"], notebook["second"]) == ("<Q1>", "<Q2, changed>")
    finally:
        sys.modules.pop("tablelib", None)
