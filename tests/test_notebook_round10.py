"""The notebook surfaces, round 10: a ``%%memo`` line whose ``--inputs`` or ``--outputs`` list is split by a space
(``--inputs a, b``) is refused with a clear message, rather than taking the word after the comma as the cell's name
and keying the cell without it."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from notebook_memo import _cells
from tests.conftest import Shell

RUNS = """
class _Runs(dict):
    def __memo_key__(self): return 'runs'
RUNS = _Runs()
def ran(name):
    RUNS[name] = RUNS.get(name, 0) + 1
"""


@pytest.fixture
def ip(shell: Shell) -> Shell:
    shell.run("%load_ext notebook_memo\n" + RUNS)
    return shell


# -- a list of names split by a space ----------------------------------------------------------------


@pytest.mark.parametrize("line", ["--inputs a, b", "--outputs y, z", "--inputs a ,b", "named --inputs a, b",
                                  "--inputs a, b --quiet"])
def test_a_list_split_by_a_space_is_a_usage_error_and_the_cell_does_not_run(ip: Shell, line: str) -> None:
    ip.run("a = 1\nb = 2")
    result = ip.run_raw(f"%%memo {line}\nran('c')\ny = a + b\nz = 1")
    assert isinstance(result.error_in_exec, UsageError), line
    assert "without spaces" in str(result.error_in_exec) and "%%memo" in str(result.error_in_exec)
    assert "c" not in ip["RUNS"] and "y" not in ip.ip.user_ns


def test_an_input_after_a_comma_and_a_space_is_never_left_out_of_the_key(ip: Shell) -> None:
    # Before, `b` became the cell's name and the key held `a` only: a changed `b` was served the old `y`.
    ip.run("a = 1\nb = 2")
    cell = "%%memo --inputs a, b\nran('c')\ny = a + b"
    ip.run_raw(cell)
    ip.run("b = 10")
    ip.run_raw(cell)
    assert ip.ip.user_ns.get("y") in (None, 11) and not any(c.label == "b" for c in _cells.cells())


@pytest.mark.parametrize("line", ["--inputs 'a, b'", '--inputs "a, b"', "--inputs a,b", "named --inputs a,b --quiet",
                                  "--inputs=a,b"])
def test_a_list_without_spaces_or_quoted_keys_every_name_it_gives(ip: Shell, line: str) -> None:
    ip.run("a = 1\nb = 2")
    cell = f"%%memo {line}\nran('c')\ny = a + b"
    ip.run(cell)
    ip.run(cell)
    assert ip["RUNS"]["c"] == 1 and ip["y"] == 3  # a hit
    ip.run("b = 10")
    ip.run(cell)
    assert ip["RUNS"]["c"] == 2 and ip["y"] == 11
