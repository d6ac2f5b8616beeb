"""What a hit of a %%memo cell or an @memo call leaves behind and shows: functions a library wrapped in a cell,
instances of notebook classes redefined since, logging handlers a cell made, display updates and cleared
output, and output shown once, as the run showed it."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from notebook_memo import _cells
from tests.conftest import CELL_TIMEOUT, Shell, run_kernel

HITS = """
from notebook_memo import _cells
OUT["cell hits"] = sum(c.hits for c in _cells._cells.values())
"""


# -- functions a library made in a cell --------------------------------------------------------


def test_a_contextmanager_the_cell_defines_works_after_a_hit(shell: Shell, cache_dir: Path) -> None:
    shell.run("%load_ext notebook_memo")
    cell = "%%memo\nimport contextlib\n@contextlib.contextmanager\ndef doubled(x):\n    yield x * 2\n"
    shell.run(cell)
    shell.run(cell)  # a hit
    shell.run("with doubled(5) as w:\n    pass")
    assert shell["w"] == 10


def test_a_functools_wraps_wrapper_the_cell_defines_keeps_its_library_s_globals(cache_dir: Path) -> None:
    cells = ["%load_ext notebook_memo", """%%memo
import contextlib, functools
@contextlib.contextmanager
def doubled(x):
    yield x * 2
@functools.lru_cache
def plus(x):
    return x + 1
wrapped = functools.wraps(plus)(functools.partial(plus, 1))
tools = {"doubled": doubled}
""", """
with tools["doubled"](5) as w:
    OUT["w"] = w
with doubled(2) as v:
    OUT["v"] = v
OUT["plus"] = plus(1)
""", HITS]
    first = run_kernel(cells, cache_dir, seed=1)
    second = run_kernel(cells, cache_dir, seed=2)
    assert (first["w"], first["v"], first["plus"]) == (10, 4, 2)
    assert (second["w"], second["v"], second["plus"], second["cell hits"]) == (10, 4, 2, 1)


def test_a_function_a_notebook_decorator_holds_reads_the_live_notebook_after_a_hit(shell: Shell,
                                                                                 cache_dir: Path) -> None:
    shell.run("%load_ext notebook_memo")
    cell = """%%memo
import functools
K = 1
def deco(f):
    @functools.wraps(f)
    def inner():
        return f()
    return inner
@deco
def g():
    return K
"""
    shell.run(cell)
    shell.run(cell)  # a hit
    shell.run("K = 2")
    assert (shell["g"](), shell["g"].__wrapped__()) == (2, 2)
    assert shell["g"].__wrapped__ is shell["g"].__closure__[0].cell_contents  # one function, wherever it is held


# -- logging handlers a cell made --------------------------------------------------------------


@pytest.fixture
def private_loggers() -> Iterator[None]:
    """Loggers are the process's: the handlers a test's cells add are removed after it."""
    yield
    for name in ("nbm_outputs",):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)


def test_a_logging_handler_a_cell_made_logs_into_later_cells_and_their_hits(
        shell: Shell, cache_dir: Path, capsys: pytest.CaptureFixture[str], private_loggers: None) -> None:
    shell.run("%load_ext notebook_memo")
    shell.run("""%%memo setup
import logging, sys
log = logging.getLogger("nbm_outputs")
log.propagate = False
log.setLevel(logging.INFO)
log.addHandler(logging.StreamHandler(sys.stdout))
log.handlers[-1].setFormatter(logging.Formatter("LOG %(message)s"))
""")
    assert logging.getLogger("nbm_outputs").handlers[-1].stream is sys.stdout  # not the cell's capture
    cell = "%%memo work\nlog.info('working hard')\nv = 1\n"
    for _ in range(2):  # a run, then a hit
        capsys.readouterr()
        shell.run(cell)
        assert capsys.readouterr().out.count("LOG working hard") == 1
    assert _cells._cells["work"].hits == 1


def test_a_handler_of_a_logger_no_manager_knows_logs_into_later_cells_and_their_hits(
        shell: Shell, cache_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shell.run("%load_ext notebook_memo")
    shell.run("""%%memo setup
import logging, sys
class Log:
    def __init__(self):
        self.logger = logging.Logger("private")  # made directly: not among logging's loggers
        self.logger.addHandler(logging.StreamHandler(sys.stdout))
    def __getstate__(self):
        return {}
    def __setstate__(self, state):
        self.__init__()
log = Log()
""")
    cell = "%%memo work\nlog.logger.warning('working hard')\nv = 1\n"
    for _ in range(2):  # a run, then a hit
        capsys.readouterr()
        shell.run(cell)
        assert capsys.readouterr().out.count("working hard") == 1


# -- displays ---------------------------------------------------------------------------------


def test_a_display_in_a_terminal_shell_is_shown_once_on_a_hit(shell: Shell, cache_dir: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    # A shell with no frontend prints a display's text/plain to stdout, which the cell's capture records too.
    shell.run("%load_ext notebook_memo")
    cell = "%%memo shown\nfrom IPython.display import display\nprint('before')\ndisplay({'a': 1})\nprint('after')\n"
    shown = []
    for _ in range(2):  # a run, then a hit
        capsys.readouterr()
        shell.run(cell)
        shown.append([line for line in capsys.readouterr().out.splitlines() if not line.startswith("[notebook_memo]")])
    assert shown[0] == shown[1] == ["before", "{'a': 1}", "after"]
    assert _cells._cells["shown"].hits == 1


DISPLAYS = [
    "%load_ext notebook_memo",
    """%%memo updating
from IPython.display import display
h = display("step 0", display_id=True)
for i in range(1, 4):
    h.update(f"step {i}")
x = 1""",
    """%%memo clearing
from IPython.display import clear_output
for i in range(3):
    clear_output(wait=True)
    print("frame", i)
y = 2""",
    """%%memo cleared
print("gone")
display("gone too")
clear_output()
print("kept")
z = 3""",
    """%%memo updating_another
h.update("updated by a cached cell")
print("updated")
w = 4""",
    """%%memo widget_clear
import ipywidgets
print("shown")
with ipywidgets.Output():
    clear_output()
v = 5""",
]


def _shown(cell: Any) -> list[str]:
    """What a cell of an executed notebook shows, without our notes."""
    shown = []
    for output in cell.outputs:
        text = output.text if output.output_type == "stream" else output.get("data", {}).get("text/plain", "")
        shown += [line for line in text.splitlines() if line and not line.startswith("[notebook_memo]")]
    return shown


@pytest.fixture(scope="module")
def displays_run_and_hit(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[list[str]], list[list[str]]]:
    """A notebook of display updates and clears, run by a real Jupyter kernel, then by another on its cache."""
    import nbformat

    from notebook_memo._demo import execute_notebook

    folder = tmp_path_factory.mktemp("displays")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in DISPLAYS]
    path = folder / "displays.ipynb"
    nbformat.write(notebook, str(path))
    run, hit = (execute_notebook(path, folder / "cache", timeout=CELL_TIMEOUT)[0] for _ in range(2))
    assert all("restored" in "".join(o.get("text", "") for o in c.outputs) for c in hit.cells[1:])  # all hits
    return [_shown(c) for c in run.cells], [_shown(c) for c in hit.cells]


def test_a_display_updated_in_place_shows_its_last_data_on_a_hit(
        displays_run_and_hit: tuple[list[list[str]], list[list[str]]]) -> None:
    run, hit = displays_run_and_hit
    assert run[1] == hit[1] == ["'updated by a cached cell'"]  # updated in place, by cell 4 too


def test_a_clear_output_loop_shows_its_last_frame_on_a_hit(
        displays_run_and_hit: tuple[list[list[str]], list[list[str]]]) -> None:
    run, hit = displays_run_and_hit
    assert run[2] == hit[2] == ["frame 2"]


def test_what_clear_output_cleared_is_not_shown_on_a_hit(
        displays_run_and_hit: tuple[list[list[str]], list[list[str]]]) -> None:
    run, hit = displays_run_and_hit
    assert run[3] == hit[3] == ["kept"]


def test_a_cached_cell_updating_another_cell_s_display_shows_as_it_ran(
        displays_run_and_hit: tuple[list[list[str]], list[list[str]]]) -> None:
    run, hit = displays_run_and_hit
    assert run[4] == hit[4] == ["updated"]


def test_a_clear_output_inside_an_output_widget_leaves_the_cell_s_output(
        displays_run_and_hit: tuple[list[list[str]], list[list[str]]]) -> None:
    run, hit = displays_run_and_hit
    assert run[5] == hit[5] == ["shown"]


# -- instances of notebook classes redefined since --------------------------------------------

CLONE = "from notebook_memo import memo\nimport copy\n@memo\ndef clone(o):\n    return copy.copy(o)\n"
OLD_P = "class P:\n    def val(self):\n        return 1\np = P()\n"
NEW_P = "class P:\n    def val(self):\n        return 2\n"


def test_a_result_holding_an_instance_of_a_class_redefined_since_is_recomputed(shell: Shell, cache_dir: Path) -> None:
    shell.run(CLONE)
    shell.run(OLD_P)
    shell.run("r = clone(p)")
    shell.run(NEW_P)  # p is still an instance of the class it was made from
    shell.run("r = clone(p)")
    assert shell["r"].val() == 1
    assert not shell["clone"].explain_last().hit


def test_a_result_holding_an_instance_of_a_redefined_class_is_recomputed_after_a_restart(cache_dir: Path) -> None:
    run_kernel([CLONE, OLD_P, "r = clone(p)"], cache_dir, seed=1)
    edited = run_kernel([CLONE, OLD_P, NEW_P, "r = clone(p)\nOUT['val'] = r.val()"], cache_dir, seed=2)
    assert edited["val"] == 1


def test_a_result_holding_an_instance_of_an_unchanged_notebook_class_hits_after_a_restart(cache_dir: Path) -> None:
    check = "r = clone(p)\nOUT['hit'] = clone.explain_last().hit\nOUT['current class'] = type(r) is P"
    run_kernel([CLONE, OLD_P, "r = clone(p)"], cache_dir, seed=1)
    again = run_kernel([CLONE, OLD_P, check], cache_dir, seed=2)
    assert (again["hit"], again["current class"]) == (True, True)


def test_a_result_whose_class_s_notebook_base_was_redefined_is_recomputed(shell: Shell, cache_dir: Path) -> None:
    base = "class B:\n    def val(self):\n        return {}\nclass P(B):\n    pass\n"
    shell.run(CLONE)
    shell.run(base.format(1) + "p = P()")
    shell.run("r = clone(p)")
    shell.run(base.format(2))  # P is defined again, unchanged, on the new B
    shell.run("r = clone(p)")
    assert shell["r"].val() == 1


def test_a_cell_output_holding_an_instance_of_a_class_redefined_since_is_not_restored(shell: Shell,
                                                                                      cache_dir: Path) -> None:
    shell.run("%load_ext notebook_memo")
    shell.run(OLD_P)
    cell = "%%memo\nimport copy\nr = copy.copy(p)\n"
    shell.run(cell)
    shell.run(NEW_P)
    shell.run(cell)
    assert shell["r"].val() == 1


def test_a_result_holding_an_instance_of_a_class_a_restored_cell_defined_hits_after_a_restart(
        cache_dir: Path) -> None:
    cells = ["%load_ext notebook_memo", CLONE, "%%memo\nclass P:\n    def val(self):\n        return 1\n", "p = P()",
             "r = clone(p)\nOUT['hit'] = clone.explain_last().hit\nOUT['current class'] = type(r) is P"]
    first = run_kernel(cells, cache_dir, seed=1)
    second = run_kernel(cells, cache_dir, seed=2)  # the class cell is restored, by value, then the call
    assert (first["hit"], second["hit"], second["current class"]) == (False, True, True)
