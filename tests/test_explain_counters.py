"""`explain`, `info` and the counters tell what happened, in a real shell and through the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from notebook_memo import _config
from notebook_memo.stores.local import get_store
from tests.conftest import Shell


@pytest.fixture
def ip(shell: Shell) -> Shell:
    shell.run("%load_ext notebook_memo\nfrom notebook_memo import memo\nimport notebook_memo")
    shell.run("@memo\ndef score(x):\n    return x * 2")
    return shell


def cli_hits(cache: Path, name: str) -> int:
    out = subprocess.run([sys.executable, "-m", "notebook_memo", "info", "--dir", str(cache)],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    [row] = [line for line in out.splitlines() if name in line]
    return int(row.split()[5])  # function, entries, versions, size (two words), hits


def test_probes_never_replace_the_last_real_call(ip: Shell) -> None:
    ip.run("score(1)")
    ip.run("score(1)")  # the last real call: a hit
    ip.run("score.is_cached(5); score.explain(6); score.refresh(7)")
    report = str(ip.run("%memo explain score"))
    assert "HIT" in report and "MISS" not in report
    ip.run("score(2)")  # a real miss
    ip.run("score.is_cached(1); score.explain(1)")
    report = str(ip.run("%memo explain score"))
    assert "MISS" in report and "argument 'x' differs" in report


def test_explain_is_not_a_hit(ip: Shell, cache_dir: Path) -> None:
    ip.run("score(1); score(1)")
    ip.run("for _ in range(3):\n    score.explain(1)\n    score.is_cached(1)")
    ip.run("%memo explain score")
    assert ip.run("score.cache_info().hits") == 1
    table = ip.run("%memo info")
    row = repr(table).splitlines()[-1].split()
    assert row[0] == "__main__.score" and row[6] == "1"  # name, kind, entries, versions, size (two words), hits
    get_store(str(cache_dir), _config.resolve_size_limit()).flush()  # this process's hit counts, for the CLI
    assert cli_hits(cache_dir, "score") == 1


BATCH = """
@memo.batch("texts")
def embed(texts):
    RUNS.append(len(texts))
    return [len(t) for t in texts]
"""


@pytest.fixture
def bx(ip: Shell) -> Shell:
    ip.run("class _Runs(list):\n    def __memo_key__(self): return 'runs'\nRUNS = _Runs()")
    ip.run(BATCH)
    return ip


def test_batch_explain_after_a_first_run_shows_that_run(bx: Shell) -> None:
    bx.run("embed(['a', 'bb', 'ccc'])")
    report = str(bx.run("%memo explain embed"))
    assert "MISS" in report and "0 of 3 items from the cache, 3 computed" in report and "first run" in report
    assert "nothing is cached" not in report and "gone" not in report


def test_batch_explain_after_a_full_hit_says_hit(bx: Shell) -> None:
    bx.run("embed(['a', 'bb', 'ccc'])")
    bx.run("embed(['a', 'bb', 'ccc'])")
    report = str(bx.run("%memo explain embed"))
    assert "HIT" in report and "3 of 3 items cached" in report
    assert "gone" not in report


def test_batch_explain_after_a_partial_hit(bx: Shell) -> None:
    bx.run("embed(['a', 'bb'])")
    bx.run("embed(['a', 'bb', 'dddd'])")
    report = str(bx.run("%memo explain embed"))
    assert "MISS" in report and "2 of 3 items from the cache, 1 computed" in report
    assert "never computed with this code" in report and "gone" not in report


def test_batch_explain_and_is_cached_are_not_hits(bx: Shell) -> None:
    bx.run("embed(['a', 'bb'])")
    bx.run("embed.explain(['a', 'bb']); embed.is_cached(['a', 'bb']); embed.explain(['a', 'bb'])")
    assert bx.run("embed.cache_info().hits") == 0
    assert "HIT" in str(bx.run("embed.explain(['a', 'bb'])"))
    bx.run("embed(['a', 'bb'])")
    assert bx.run("embed.cache_info().hits") == 2


def test_verbose_prints_a_line_per_miss_and_hit(ip: Shell, capsys: pytest.CaptureFixture[str]) -> None:
    ip.run("notebook_memo.configure(verbose=1)")
    capsys.readouterr()
    ip.run("_ = score(3)")
    miss = capsys.readouterr().out
    assert "score" in miss and "computed in" in miss
    ip.run("_ = score(3)")
    hit = capsys.readouterr().out
    assert "score" in hit and "from cache" in hit and "saved" in hit
    ip.run("notebook_memo.configure(verbose=True)")  # notices on, no line per call
    ip.run("_ = score(3)")
    assert capsys.readouterr().out == ""


def test_verbose_per_function(ip: Shell, capsys: pytest.CaptureFixture[str]) -> None:
    ip.run("@memo(verbose=1)\ndef loud(x):\n    return x\n_ = loud(1), loud(1), score(9), score(9)")
    out = capsys.readouterr().out
    assert out.count("loud") == 2 and "score" not in out


def test_verbose_for_a_batch(bx: Shell, capsys: pytest.CaptureFixture[str]) -> None:
    bx.run("notebook_memo.configure(verbose=1)")
    capsys.readouterr()
    bx.run("_ = embed(['a', 'bb'])")
    bx.run("_ = embed(['a', 'bb', 'ccc'])")
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert "embed" in out[0] and "2 computed" in out[0]
    assert "2 of 3 from cache" in out[1] and "1 computed" in out[1]


def test_verbose_off_by_default(ip: Shell, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    ip.run("_ = score(11), score(11)")
    assert capsys.readouterr().out == ""


def test_batch_explain_after_an_edit_names_the_change(bx: Shell) -> None:
    bx.run("_ = embed(['a', 'bb'])")
    bx.run(BATCH.replace("len(t)", "len(t) + 1"))
    bx.run("_ = embed(['a', 'bb'])")
    report = str(bx.run("%memo explain embed"))
    assert "0 of 2 items from the cache, 2 computed" in report
    assert "the function's own code changed" in report and "gone" not in report
    assert "own code changed" in str(bx.run(BATCH.replace("len(t)", "len(t) * 2") + "\nembed.explain(['a'])"))


def test_async_probes_never_replace_the_last_real_call(ip: Shell) -> None:
    ip.run("@memo\nasync def fetch(x):\n    return x")
    ip.run("import asyncio\n_ = asyncio.run(fetch(1)), asyncio.run(fetch(1))")
    ip.run("_ = asyncio.run(fetch.refresh(2)), fetch.is_cached(3), fetch.explain(4)")
    assert "HIT" in str(ip.run("%memo explain fetch"))


def test_a_cell_explains_its_last_run(ip: Shell) -> None:
    ip.run("%%memo prep\nrows = [1, 2]")
    assert "MISS" in str(ip.run("%memo explain prep"))
    ip.run("%%memo prep\nrows = [1, 2]")
    assert "HIT" in str(ip.run("%memo explain prep"))


def test_verbose_says_when_a_cell_was_computed(ip: Shell, capsys: pytest.CaptureFixture[str]) -> None:
    ip.run("notebook_memo.configure(verbose=1)")
    capsys.readouterr()
    ip.run("%%memo prep\nrows = [1, 2]")
    assert "%%memo prep: computed in" in capsys.readouterr().out
    ip.run("%%memo prep\nrows = [1, 2]")
    assert "computed in" not in capsys.readouterr().out  # the restore note says what happened


def test_a_notebook_function_is_explained_by_its_own_name(ip: Shell) -> None:
    report = ip.run("score(1); score.explain(1)")
    assert str(report).startswith("score: HIT") and "__main__" not in report._repr_html_()
