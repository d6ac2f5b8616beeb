"""Neighbours of the notebook surfaces of issue 14: the cases next to the ones fixed, in a real shell."""

from __future__ import annotations

from pathlib import Path

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
