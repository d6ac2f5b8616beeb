"""Neighbours of the notebook surfaces of issue 14: the cases next to the ones fixed, in a real shell."""

from __future__ import annotations

import pytest

from notebook_memo._cells import cells
from tests.conftest import Shell


@pytest.fixture
def ip(shell: Shell) -> Shell:
    shell.run("%load_ext notebook_memo\nfrom notebook_memo import memo\nimport notebook_memo")
    shell.run("class _Runs(list):\n    def __memo_key__(self): return 'runs'\nRUNS = _Runs()")
    return shell


# -- %%memo --ttl with the value quoted, as a shell would take it -----------------------------------

@pytest.mark.parametrize("ttl", ['"6 hours"', "'6 hours'"])
def test_a_quoted_ttl_is_read_without_its_quotes(ip: Shell, ttl: str) -> None:
    ip.run(f"%%memo quoted --ttl {ttl}\nRUNS.append(1)")
    [cell] = [c for c in cells() if c.label == "quoted"]
    assert cell.ttl == 6 * 3600 and len(ip["RUNS"]) == 1


def test_a_quoted_cell_name_is_the_name(ip: Shell) -> None:
    ip.run("%%memo 'my cell'\nRUNS.append(1)")
    assert "my cell" in [c.label for c in cells()]


def test_an_unclosed_quote_is_a_usage_error(ip: Shell) -> None:
    from IPython.core.error import UsageError

    result = ip.run_raw("%%memo --ttl \"6 hours\nRUNS.append(1)")
    assert isinstance(result.error_in_exec, UsageError) and "%%memo" in str(result.error_in_exec)
    assert ip["RUNS"] == []


# -- a batch function's refresh() recomputes items, like memo.refreshing() ----------------------------

BATCH = """
@memo.batch("texts")
def embed(texts):
    RUNS.append(list(texts))
    return [len(t) * STEP for t in texts]
"""


@pytest.fixture
def bx(ip: Shell) -> Shell:
    ip.run("STEP = 1")
    ip.run(BATCH)
    return ip


def test_batch_refresh_overwrites_the_items_it_is_given(bx: Shell) -> None:
    bx.run("embed(['a', 'bb', 'ccc'])")
    assert bx.run("embed.refresh(['a', 'bb'])") == [1, 2]
    assert bx["RUNS"][-1] == ["a", "bb"]
    info = bx.run("embed.cache_info()")
    assert info.currsize == 3  # the items, not one more entry for the whole list
    bx.run("embed(['a', 'bb', 'ccc'])")
    assert len(bx["RUNS"]) == 2  # served: the refreshed items were overwritten, not stored elsewhere


def test_batch_refresh_is_a_probe_for_explain_last(bx: Shell) -> None:
    bx.run("embed(['a', 'bb'])")
    bx.run("embed(['a', 'bb'])")
    bx.run("embed.refresh(['a'])")
    assert bx.run("embed.explain_last()").hit


def test_async_batch_refresh_recomputes(ip: Shell) -> None:
    ip.run('@memo.batch("texts")\nasync def aembed(texts):\n    RUNS.append(list(texts))\n'
           '    return [len(t) for t in texts]')
    ip.run("await aembed(['a', 'bb'])")
    assert ip.run("await aembed.refresh(['a'])") == [1]
    assert ip["RUNS"] == [["a", "bb"], ["a"]]
    assert ip.run("aembed.cache_info().currsize") == 2
