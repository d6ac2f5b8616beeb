"""The notebook surfaces, round 10.

- A ``%%memo`` line whose ``--inputs`` or ``--outputs`` list is split by a space (``--inputs a, b``), or whose
  ``--ttl`` is (``--ttl 6 hours``), is refused with a clear message, rather than taking the word after it as the
  cell's name and keying the cell without that input, or keeping its results for 6 seconds.
- An entry stored under one ``--outputs`` list (or under detection) is not served to the same cell run with
  another, which would restore fewer names than its run binds.
- A cell that imports pandas first in a kernel hits on its next run (its options, as loaded, are keyed as before
  the import), while an option changed from its default is still a miss.
- A cell reading the notebook's names as a dict through its module (``__main__.__dict__['x']``) keys them as
  ``vars(__main__)`` does, rather than leaving them out.
- Lines a cell writes with ``sys.stdout.writelines`` are shown again on a hit.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from IPython.core.error import UsageError

from notebook_memo import _cells
from tests.conftest import RUNS_SETUP, Shell, run_kernel

RUNS = RUNS_SETUP  # ``ran(name)`` counts body runs in ``RUNS``


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


# -- an entry stored under other --outputs -----------------------------------------------------------


def test_a_longer_outputs_list_is_not_served_the_entry_of_a_shorter_one(ip: Shell) -> None:
    ip.run("a = 1")
    ip.run("%%memo --outputs y\nran('c')\ny = a + 1\nz = a + 2")
    ip.run("del y, z")
    ip.run("%%memo --outputs y,z\nran('c')\ny = a + 1\nz = a + 2")
    assert ip["RUNS"]["c"] == 2 and ip["y"] == 2 and ip["z"] == 3


def test_detection_is_not_served_the_entry_of_an_outputs_list(ip: Shell) -> None:
    ip.run("a = 1")
    ip.run("%%memo --outputs y\nran('c')\ny = a + 1\nz = a + 2")
    ip.run("del y, z")
    ip.run("%%memo\nran('c')\ny = a + 1\nz = a + 2")
    assert ip["RUNS"]["c"] == 2 and ip["z"] == 3
    assert "--outputs" in str(ip.run("%memo explain " + _only_label()))


def _only_label() -> str:
    [cell] = _cells.cells()
    return cell.label


def test_the_same_outputs_list_hits_and_a_shorter_one_is_served_the_longer_entry(ip: Shell) -> None:
    # Guard: a list the entry covers restores at least what it names, as before.
    ip.run("a = 1")
    ip.run("%%memo --outputs y,z\nran('c')\ny = a + 1\nz = a + 2")
    ip.run("del y, z")
    ip.run("%%memo --outputs y,z\nran('c')\ny = a + 1\nz = a + 2")
    assert ip["RUNS"]["c"] == 1 and ip["y"] == 2 and ip["z"] == 3
    ip.run("del y, z")
    ip.run("%%memo --outputs z,y\nran('c')\ny = a + 1\nz = a + 2")
    ip.run("%%memo --outputs y\nran('c')\ny = a + 1\nz = a + 2")
    assert ip["RUNS"]["c"] == 1 and ip["y"] == 2


def test_an_outputs_list_is_served_the_entry_detection_made_when_it_holds_the_names(ip: Shell) -> None:
    # Guard: detection stored y and z; a list of them both restores them, as a run of it would store them.
    ip.run("a = 1")
    ip.run("%%memo\nran('c')\ny = a + 1\nz = a + 2")
    ip.run("del y, z")
    ip.run("%%memo --outputs y,z\nran('c')\ny = a + 1\nz = a + 2")
    assert ip["RUNS"]["c"] == 1 and ip["y"] == 2 and ip["z"] == 3
    ip.run("%%memo\nran('c')\ny = a + 1\nz = a + 2")
    assert ip["RUNS"]["c"] == 1


# -- pandas' settings, first imported by the cell ----------------------------------------------------

PANDAS_CELL = "%%memo pd\nran('pd')\nimport pandas as pd\ndf = pd.DataFrame({'a': [1, 2]})"


def test_a_cell_importing_pandas_first_hits_on_its_next_run(cache_dir: Path) -> None:
    # A fresh kernel is the point: pandas is not loaded before the cell's first run. Before, that run keyed pandas'
    # settings as not loaded and the next as loaded: a miss, whose explain said the settings had changed. (NumPy's
    # random state is loaded first: a run that first loads it is served where it is not loaded yet, by design.)
    cells = ["%load_ext notebook_memo\nimport numpy.random\nimport sys\nOUT['loaded'] = 'pandas' in sys.modules",
             RUNS, PANDAS_CELL, PANDAS_CELL, "OUT['explain'] = str(get_ipython().run_line_magic('memo', 'explain pd'))",
             "pd.set_option('future.no_silent_downcasting', True)", PANDAS_CELL,
             "pd.reset_option('future.no_silent_downcasting')", PANDAS_CELL, "OUT['runs'] = dict(RUNS)"]
    out = run_kernel(cells, cache_dir)
    assert out["loaded"] is False and out["explain"].startswith("cell:pd: HIT"), out["explain"]
    assert out["runs"] == {"pd": 2}  # the changed option ran it; its default again is the first entry


def test_a_pandas_option_changed_from_its_default_is_a_miss_that_explain_names(ip: Shell) -> None:
    # Guard: keyed where it differs from its default, an option still makes its own entry.
    ip.run("import pandas as pd")
    ip.run(PANDAS_CELL)
    ip.run(PANDAS_CELL)
    assert ip["RUNS"]["pd"] == 1
    ip.run("pd.set_option('future.no_silent_downcasting', True)")
    try:
        ip.run(PANDAS_CELL)
        assert ip["RUNS"]["pd"] == 2
        assert "future.no_silent_downcasting=True" in str(ip.run("%memo explain pd"))
    finally:
        ip.run("pd.reset_option('future.no_silent_downcasting')")
    ip.run(PANDAS_CELL)
    assert ip["RUNS"]["pd"] == 2  # the first entry again


# -- the notebook's names read as a dict through its module ---------------------------------------------


@pytest.mark.parametrize("body", [
    "import __main__\ny = __main__.__dict__['x'] * 2",
    "y = int('{x}'.format_map(__import__('__main__').__dict__)) * 2",
    "import __main__ as nb\ny = nb.__dict__.get('x') * 2",
])
def test_a_cell_reading_the_notebook_s_module_dict_is_not_served_stale(ip: Shell, body: str) -> None:
    # Before, __main__.__dict__ was left out of the key (a warning said its content was not a value): a stale y.
    ip.run("x = 1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ip.run(f"%%memo\nran('c')\n{body}")
        ip.run("x = 5")
        ip.run(f"%%memo\nran('c')\n{body}")
    assert ip["y"] == 10 and ip["RUNS"]["c"] == 2
    assert not [w for w in caught if "left out" in str(w.message)]


def test_a_memo_function_reading_the_notebook_s_module_dict_is_not_served_stale(ip: Shell) -> None:
    # A neighbour that was right before: the same read in a function's body.
    ip.run("from notebook_memo import memo\nimport __main__\nx = 1\n"
           "@memo\ndef doubled():\n    ran('f')\n    return __main__.__dict__['x'] * 2\n")
    assert ip.run("doubled()") == 2
    ip.run("x = 5")
    assert ip.run("doubled()") == 10 and ip["RUNS"]["f"] == 2


def test_a_cell_reading_the_notebook_s_module_dict_hits_after_other_cells_ran(ip: Shell) -> None:
    # Guard: IPython's history (Out, _, _i...) grows with every cell and is no part of the key. (Every other name is,
    # as for vars(__main__): the second run, which finds the first run's y, may be a miss of its own.)
    ip.run("x = 1")
    cell = "%%memo\nran('c')\nimport __main__\ny = __main__.__dict__['x'] * 2"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ip.run(cell)
        ip.run(cell)
        ip.run("41")
        ip.run("print('unrelated')")
        runs = ip["RUNS"]["c"]
        ip.run(cell)
    assert ip["y"] == 2 and ip["RUNS"]["c"] == runs


# -- output written by writelines ---------------------------------------------------------------------


def test_lines_written_with_writelines_are_shown_again_on_a_hit(ip: Shell, capsys: pytest.CaptureFixture[str]) -> None:
    # Before, the streams' own writelines passed the lines on unrecorded: a hit showed print's line alone.
    cell = ("%%memo lines --quiet\nimport sys\nsys.stdout.writelines(['a\\n', 'b\\n'])\n"
            "sys.stderr.writelines(iter(['e\\n']))\nprint('c')\nx = 1")
    shown = []
    for _ in range(2):  # a run, then a hit
        capsys.readouterr()
        ip.run(cell)
        captured = capsys.readouterr()
        shown.append((captured.out, captured.err))
    assert shown[0] == shown[1] == ("a\nb\nc\n", "e\n")
    assert [c.hits for c in _cells.cells()] == [1]


# -- a --ttl split by a space -------------------------------------------------------------------------


@pytest.mark.parametrize("line", ["--ttl 6 hours", "--ttl 90 min --quiet", "--ttl=1h 30m", "--quiet --ttl 2 days"])
def test_a_ttl_split_by_a_space_is_a_usage_error_and_the_cell_does_not_run(ip: Shell, line: str) -> None:
    # Before, `--ttl 6 hours` kept results for 6 seconds, in a cell named 'hours'.
    result = ip.run_raw(f"%%memo {line}\nran('c')\ny = 1")
    assert isinstance(result.error_in_exec, UsageError), line
    assert "quote the time" in str(result.error_in_exec)
    assert "c" not in ip["RUNS"] and not _cells.cells()


@pytest.mark.parametrize("line, label, ttl", [
    ("--ttl '6 hours'", None, 21600.0), ("hours --ttl 6", "hours", 6.0), ("--ttl 6h named", "named", 21600.0),
    ("--ttl 90 --quiet", None, 90.0),
])
def test_a_ttl_in_one_word_or_quoted_reads_as_written(ip: Shell, line: str, label: str | None, ttl: float) -> None:
    # Guard: a name after a value that does not read as a time with it (or before the option) is the cell's name.
    ip.run(f"%%memo {line}\nran('c')\ny = 1")
    [cell] = _cells.cells()
    assert cell.ttl == ttl and (label is None or cell.label == label)
