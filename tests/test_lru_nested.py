"""Nested ``functools.lru_cache`` loaders: one lru_cache function served from another's cache.

``@lru_cache def raw(): return open('d.txt').read()`` and ``@lru_cache def parsed(): return raw().upper()``: what
``parsed`` holds came from what ``raw`` read, even where ``raw`` answered ``parsed`` from its cache and nothing was
read in ``parsed``'s fill. A memoized call served by ``parsed`` must take ``raw``'s reads as its conditions (stored,
a hit after a restart, run again once the file changed), or be refused where ``raw``'s reads were not seen (filled
before the import, or in the cell that made it under another name), at any depth, and whether ``raw`` is reached by
a global, a module's attribute, a plain function or a method.

Each test fails with a stale value served after the file changed (a false hit) or a result left uncached.
"""

from __future__ import annotations

import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Shell, run_kernel

RAW = textwrap.dedent("""
    import functools

    @functools.lru_cache
    def raw():
        with open('d.txt') as f:
            return f.read()
""")
RAW_ALIAS = textwrap.dedent("""
    import functools

    def _read():
        with open('d.txt') as f:
            return f.read()

    raw = functools.lru_cache(_read)
    raw()
""")
PARSED = textwrap.dedent("""
    import functools

    @functools.lru_cache
    def parsed():
        return raw().upper()
""")
G = textwrap.dedent("""
    @memo
    def g():
        return parsed() + '!'

    OUT['value'] = g(); OUT['info'] = list(g.cache_info()[:2])
""")
IMPORT = "from notebook_memo import memo"


def _changed_between_kernels(cells: list[str], cache_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run ``cells`` in a kernel with d.txt 'old', then in another with d.txt 'new'; return both OUTs."""
    data = cache_dir.parent / "d.txt"  # run_kernel runs in tmp_path
    data.write_text("old")
    first = run_kernel(cells, cache_dir, seed=1)
    data.write_text("new")
    return first, run_kernel(cells, cache_dir, seed=2)


def _lru_warnings(out: dict[str, Any]) -> list[str]:
    return [w for w in out["_warnings"] if "cache_clear()" in w]


# -- no false hit after the file changed ----------------------------------------------------------------------------


def test_an_inner_loader_filled_in_the_cell_that_made_it_refuses_the_outer(cache_dir: Path) -> None:
    # raw = lru_cache(_read) filled where nothing names it; parsed, filled at the top level, is served by raw's cache.
    first, second = _changed_between_kernels([IMPORT, RAW_ALIAS, PARSED, "parsed()", G], cache_dir)
    assert first["value"] == "OLD!" and _lru_warnings(first), first
    assert second["value"] == "NEW!", second


def test_an_inner_loader_filled_before_the_import_refuses_the_outer(cache_dir: Path) -> None:
    first, second = _changed_between_kernels([RAW + "\nraw()", IMPORT, PARSED, "parsed()", G], cache_dir)
    warned = _lru_warnings(first)
    assert first["value"] == "OLD!" and warned and "raw.cache_clear()" in warned[0], first
    assert second["value"] == "NEW!", second


def test_an_outer_loader_filled_in_a_refused_run_does_not_serve_a_later_one(cache_dir: Path) -> None:
    # g1's run fills parsed from raw's cache (filled before the import) and is refused; g2 is served by parsed only.
    cells = [RAW + "\nraw()", IMPORT, PARSED,
             "@memo\ndef g1():\n    return parsed() + '?'\nOUT['g1'] = g1()",
             "@memo\ndef g2():\n    return parsed() + '!'\nOUT['value'] = g2()"]
    first, second = _changed_between_kernels(cells, cache_dir)
    assert (first["g1"], first["value"]) == ("OLD?", "OLD!"), first
    assert (second["g1"], second["value"]) == ("NEW?", "NEW!"), second


def test_three_levels_through_a_module_attribute_and_a_function_refuse_where_the_innermost_was_unseen(
        cache_dir: Path) -> None:
    (cache_dir.parent / "loaders.py").write_text(textwrap.dedent(RAW))
    cells = ["import loaders as mod\nmod.raw()", IMPORT, """
        import functools

        def clean():
            return mod.raw().strip()

        @functools.lru_cache
        def mid():
            return clean().upper()

        @functools.lru_cache
        def parsed():
            return '[' + mid() + ']'
    """, "parsed()", G]
    first, second = _changed_between_kernels(cells, cache_dir)
    assert first["value"] == "[OLD]!" and _lru_warnings(first), first
    assert second["value"] == "[NEW]!", second


def test_an_inner_method_loader_filled_before_the_import_refuses_the_outer(cache_dir: Path) -> None:
    cells = ["""
        import functools

        class Repo:
            @functools.lru_cache
            def raw(self):
                with open('d.txt') as f:
                    return f.read()

            def parsed(self):
                return self.raw().upper()

        REPO = Repo()
        REPO.raw()
    """, IMPORT, """
        @functools.lru_cache
        def parsed():
            return REPO.parsed()
    """, "parsed()", G]
    first, second = _changed_between_kernels(cells, cache_dir)
    assert first["value"] == "OLD!", first
    assert second["value"] == "NEW!", second


def test_an_inner_loader_emptied_after_serving_the_outer_still_conditions_it(cache_dir: Path) -> None:
    # parsed holds what raw read; raw.cache_clear() after the file changed empties raw, not parsed.
    cells = [IMPORT, RAW, "raw()", PARSED, "parsed()",
             "import pathlib\npathlib.Path('d.txt').write_text('changed')\nraw.cache_clear()", G]
    data = cache_dir.parent / "d.txt"
    data.write_text("old")
    first = run_kernel(cells, cache_dir, seed=1)
    assert first["value"] == "OLD!" and _lru_warnings(first), first
    data.write_text("new")
    second = run_kernel(cells, cache_dir, seed=2)
    assert second["value"] == "NEW!" and _lru_warnings(second), second


# -- no false miss where every read was seen ------------------------------------------------------------------------


@pytest.mark.parametrize("fills", [["raw()", "parsed()"], ["", "parsed()"], ["", ""]],
                         ids=["inner-first", "outer-only", "in-the-run"])
def test_nested_loaders_whose_reads_were_seen_hit_after_a_restart(cache_dir: Path, fills: list[str]) -> None:
    cells = [IMPORT, RAW, fills[0], PARSED, fills[1], G]
    data = cache_dir.parent / "d.txt"
    data.write_text("old")
    assert [run_kernel(cells, cache_dir, seed=seed) for seed in (1, 2)] == [
        {"value": "OLD!", "info": [0, 1], "_warnings": []}, {"value": "OLD!", "info": [1, 0], "_warnings": []}]
    data.write_text("new")
    assert run_kernel(cells, cache_dir, seed=3) == {"value": "NEW!", "info": [0, 1], "_warnings": []}


def test_three_nested_loaders_filled_at_top_level_in_order_hit_after_a_restart(cache_dir: Path) -> None:
    (cache_dir.parent / "loaders.py").write_text(textwrap.dedent(RAW))
    cells = [IMPORT, "import loaders as mod", "mod.raw()", """
        import functools

        @functools.lru_cache
        def mid():
            return mod.raw().upper()
    """, "mid()", """
        @functools.lru_cache
        def parsed():
            return '[' + mid() + ']'
    """, "parsed()", G]
    data = cache_dir.parent / "d.txt"
    data.write_text("old")
    assert [run_kernel(cells, cache_dir, seed=seed)["info"] for seed in (1, 2)] == [[0, 1], [1, 0]]
    data.write_text("new")
    assert run_kernel(cells, cache_dir, seed=3) == {"value": "[NEW]!", "info": [0, 1], "_warnings": []}


# -- in one kernel --------------------------------------------------------------------------------------------------


@pytest.fixture
def notebook(shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shell]:
    """The shell in tmp_path, with notebook_memo loaded as a notebook's import loads it."""
    monkeypatch.chdir(tmp_path)
    shell.run("%load_ext notebook_memo")
    shell.run("OUT = {}\n" + IMPORT)
    yield shell
    shell.run("%unload_ext notebook_memo")


def test_an_outer_loader_served_by_a_changed_inner_one_is_refused_in_the_kernel(notebook: Shell,
                                                                               tmp_path: Path) -> None:
    (tmp_path / "d.txt").write_text("old")
    notebook.run(RAW)
    notebook.run("raw()")
    notebook.run(PARSED)
    notebook.run("parsed()")
    (tmp_path / "d.txt").write_text("new, longer")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        notebook.run(G)
    found = [str(w.message) for w in caught if "cache_clear()" in str(w.message)]
    assert found and "d.txt" in found[0] and "raw" in found[0], found
    assert notebook["OUT"]["info"] == [0, 1]


def test_a_memo_cell_served_by_nested_loaders_runs_again_after_the_file_changed(cache_dir: Path) -> None:
    cells = [IMPORT + "\n%load_ext notebook_memo", RAW, "raw()", PARSED, "parsed()",
             "%%memo\nvalue = parsed() + '!'", "OUT['value'] = value"]
    data = cache_dir.parent / "d.txt"
    data.write_text("old")
    assert [run_kernel(cells, cache_dir, seed=seed) for seed in (1, 2)] == [{"value": "OLD!", "_warnings": []}] * 2
    data.write_text("new")
    assert run_kernel(cells, cache_dir, seed=3) == {"value": "NEW!", "_warnings": []}


REGISTRY = textwrap.dedent("""
    LOADERS = {'text': [raw]}

    @functools.lru_cache
    def parsed():
        return LOADERS['text'][0]().upper()
""")


def test_an_inner_loader_in_a_registry_filled_before_the_import_refuses_the_outer(cache_dir: Path) -> None:
    first, second = _changed_between_kernels([RAW + "\nraw()", IMPORT, REGISTRY, "parsed()", G], cache_dir)
    assert first["value"] == "OLD!" and _lru_warnings(first), first
    assert second["value"] == "NEW!", second


def test_an_inner_loader_in_a_registry_whose_reads_were_seen_hits_after_a_restart(cache_dir: Path) -> None:
    cells = [IMPORT, RAW, "raw()", REGISTRY, "parsed()", G]
    data = cache_dir.parent / "d.txt"
    data.write_text("old")
    assert [run_kernel(cells, cache_dir, seed=seed)["info"] for seed in (1, 2)] == [[0, 1], [1, 0]]
    data.write_text("new")
    assert run_kernel(cells, cache_dir, seed=3) == {"value": "NEW!", "info": [0, 1], "_warnings": []}
