"""The notebook surfaces, round 5: a %%memo hit restores, changes and deletes the notebook's own dunder-named
variables (``__version__``) as its run did; a cell that deletes a name it did not bind is keyed by whether that
name is defined, so a hit never stands in for the NameError its run raises; ``@staticmethod`` above
``@memo.per_instance`` is refused when the class is made; and explain's notes agree in number."""

from __future__ import annotations

from pathlib import Path

import pytest

from notebook_memo import StorageWarning
from tests.conftest import Shell, run_kernel

RUNS = """
class _Runs(dict):
    def __memo_key__(self): return 'runs'
RUNS = _Runs()
def ran(name):
    RUNS[name] = RUNS.get(name, 0) + 1
OUT['RUNS'] = RUNS
"""

# -- dunder-named notebook variables -------------------------------------------------------------------


def test_a_hit_binds_and_changes_in_place_the_dunder_names_the_run_did(cache_dir: Path) -> None:
    cells = ["%load_ext notebook_memo", RUNS, "__registry__ = {}",
             "%%memo\nran('a')\n__version__ = '2.0'\n__registry__['model'] = 'v2'\ny = 1",
             "OUT['version'] = globals().get('__version__', 'UNBOUND')\nOUT['registry'] = dict(__registry__)"]
    first, second = run_kernel(cells, cache_dir, seed=1), run_kernel(cells, cache_dir, seed=2)
    assert first["RUNS"] == {"a": 1} and second["RUNS"] == {}  # the restarted kernel's cell is a hit
    assert first["version"] == second["version"] == "2.0"
    assert first["registry"] == second["registry"] == {"model": "v2"}


def test_outputs_may_name_a_dunder_variable_and_a_hit_restores_it(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo\n" + RUNS.replace("OUT['RUNS'] = RUNS\n", ""))
    cell = "%%memo --outputs __version__,y\nran('a')\n__version__ = '2.0'\ny = 1"
    shell.run(cell)
    shell.run("del __version__, y")
    shell.run(cell)
    assert shell["RUNS"] == {"a": 1}
    assert shell["__version__"] == "2.0" and shell["y"] == 1


def test_a_dunder_name_a_cell_imports_is_restored_on_a_hit(shell: Shell, tmp_path: Path) -> None:
    (tmp_path / "mymod_r5.py").write_text("__version__ = '1.2'\n")
    shell.run(f"%load_ext notebook_memo\nimport sys\nsys.path.insert(0, {str(tmp_path)!r})\n"
              + RUNS.replace("OUT['RUNS'] = RUNS\n", ""))
    cell = "%%memo b\nran('b')\nfrom mymod_r5 import __version__\nz = 2"
    shell.run(cell)
    shell.run("del __version__, z")
    shell.run(cell)
    assert shell["RUNS"] == {"b": 1}
    assert shell["__version__"] == "1.2" and shell["z"] == 2


def test_a_hit_deletes_the_dunder_name_its_run_deleted(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo\n" + RUNS.replace("OUT['RUNS'] = RUNS\n", ""))
    cell = "%%memo\nran('c')\nnote = __note__ * 2\ndel __note__"
    shell.run("__note__ = 'ab'")
    shell.run(cell)
    shell.run("__note__ = 'ab'")
    shell.run(cell)
    assert shell["RUNS"] == {"c": 1} and shell["note"] == "abab"
    assert "__note__" not in shell.ip.user_ns


def test_a_dunder_name_holding_part_of_an_input_changed_in_place_is_seen(shell: Shell) -> None:
    shell.run("""
%load_ext notebook_memo
class Acc:
    def __init__(self, items):
        self.items = items
    def add(self, x):
        self.items.append(x)
acc = Acc([])
__box__ = [acc.items]
""")
    with pytest.warns(StorageWarning, match="'__box__', which it does not read, holds part of it"):
        shell.run("%%memo acc\nacc.add(5)")


def test_a_read_of_a_dunder_variable_is_part_of_the_key(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo\n" + RUNS.replace("OUT['RUNS'] = RUNS\n", ""))
    cell = "%%memo\nran('d')\nlabel = 'v' + __version__"
    shell.run("__version__ = '1'")
    shell.run(cell)
    shell.run("__version__ = '2'")
    shell.run(cell)
    assert shell["RUNS"] == {"d": 2} and shell["label"] == "v2"


def test_the_shell_s_own_dunder_names_are_still_not_outputs(shell: Shell, capsys: pytest.CaptureFixture[str]) -> None:
    shell.run("%load_ext notebook_memo")
    cell = "%%memo w\nimport warnings\nwarnings.warn('x')\nx: int = 1"
    with pytest.warns(UserWarning):
        shell.run(cell)
    shell.run("del x")
    capsys.readouterr()
    shell.run(cell)
    assert "restored warnings, x from the cache" in capsys.readouterr().out


# -- a cell that deletes a name it did not bind --------------------------------------------------------

SETUP = "%load_ext notebook_memo\n" + RUNS.replace("OUT['RUNS'] = RUNS\n", "")


@pytest.mark.parametrize("cell", [
    "del tmp\ny = 1",
    "if flag:\n    del tmp\ny = 1",  # deleted on one path only
    "global tmp\ndel tmp\ny = 1",
    "def drop():\n    global tmp\n    del tmp\ndrop()\ny = 1",  # a function of the cell deletes the global
    "del tmp[0]\ny = 1",  # a read of tmp, changed in place
    "for _ in range(1):\n    del tmp\ny = 1",
])
def test_a_hit_never_stands_in_for_the_name_error_of_deleting_an_undefined_name(shell: Shell, cell: str) -> None:
    shell.run(SETUP + "flag = True")
    shell.run("tmp = [1]")
    shell.run(f"%%memo d\nran('d')\n{cell}")
    shell.run("tmp = 1" if "[0]" not in cell else "tmp = 'gone'")
    shell.run("del tmp")  # the name is not defined now: the cell's run raises
    result = shell.run_raw(f"%%memo d\nran('d')\n{cell}")
    assert isinstance(result.error_in_exec, NameError), result.error_in_exec
    assert shell["RUNS"] == {"d": 2}


def test_a_restarted_kernel_without_the_deleted_name_raises_as_the_plain_cell_does(cache_dir: Path) -> None:
    def cells(before: str) -> list[str]:
        return ["%load_ext notebook_memo", RUNS, before, "%%memo d\nran('d')\ndel tmp\ny = 1",
                "OUT['tmp'] = globals().get('tmp', 'UNBOUND')"]

    first = run_kernel(cells("tmp = 1"), cache_dir, seed=1)
    assert first["RUNS"] == {"d": 1} and first["tmp"] == "UNBOUND"
    with pytest.raises(AssertionError, match="NameError"):
        run_kernel(cells("pass"), cache_dir, seed=2)


def test_a_deleted_name_is_keyed_by_whether_it_is_defined_not_by_its_value(shell: Shell) -> None:
    shell.run(SETUP + "import threading")
    cell = "%%memo d\nran('d')\ndel tmp\ny = 1"
    shell.run("tmp = threading.Lock()")  # a value that cannot be hashed: deleting it reads nothing of it
    shell.run(cell)
    shell.run("tmp = [5]")
    shell.run(cell)
    assert shell["RUNS"] == {"d": 1} and "tmp" not in shell.ip.user_ns and shell["y"] == 1


@pytest.mark.parametrize("after", ["x = 7", "pass"])
def test_a_name_read_on_some_paths_then_deleted_is_checked_on_a_hit(shell: Shell, after: str) -> None:
    shell.run(SETUP + "flag = False\nx = 5")
    cell = "%%memo d\nran('d')\nif flag:\n    x = 1\nz = x\ndel x"
    shell.run(cell)  # reads the notebook's x, then deletes it
    shell.run(after)  # x given another value, or left undefined
    result = shell.run_raw(cell)
    assert shell["RUNS"] == {"d": 2}
    if after == "pass":
        assert isinstance(result.error_in_exec, NameError), result.error_in_exec
    else:
        assert shell["z"] == 7


# -- @staticmethod with @memo.per_instance ---------------------------------------------------------------

STATIC_OUTSIDE = """
from notebook_memo import memo
class C:
    @staticmethod
    @memo.per_instance
    def triple(x):
        return x * 3
"""


@pytest.mark.parametrize("call", ["C.triple(2)", "C().triple(2)", "C.triple(C())"])
def test_a_staticmethod_above_per_instance_is_refused_with_what_to_write(shell: Shell, call: str) -> None:
    shell.run(STATIC_OUTSIDE)
    result = shell.run_raw(call)
    error = result.error_in_exec
    assert isinstance(error, TypeError), error
    assert "C.triple" in str(error) and "staticmethod" in str(error) and "@memo" in str(error), error


def test_a_staticmethod_above_per_instance_in_a_module_is_refused(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "statics_r5.py").write_text(STATIC_OUTSIDE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import statics_r5  # type: ignore[import-not-found]

    with pytest.raises(TypeError, match="staticmethod"):
        statics_r5.C.triple(2)


@pytest.mark.parametrize("decorator", ["per_instance", "cached_property"])
def test_a_staticmethod_below_a_per_object_cache_is_refused_when_decorated(decorator: str) -> None:
    from notebook_memo import memo

    with pytest.raises(TypeError, match=rf"@memo\.{decorator} .*staticmethod.*@memo"):
        getattr(memo, decorator)(staticmethod(lambda x: x))


def test_a_classmethod_below_per_instance_is_refused_saying_to_put_it_above() -> None:
    from notebook_memo import memo

    with pytest.raises(TypeError, match=r"@classmethod above @memo\.per_instance"):
        memo.per_instance(classmethod(lambda cls, x: x))


def test_per_instance_reached_other_ways_than_as_a_class_attribute_still_works(shell: Shell) -> None:
    shell.run("""
import functools
from notebook_memo import memo
calls = []
def logged(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)
    return wrapper
class C:
    base = 1
    @logged
    @memo.per_instance
    def add(self, x):
        calls.append(x)
        return x + 1
    @classmethod
    @memo.per_instance
    def plus(cls, x):
        return cls.base + x
def later(self, x):
    calls.append(-x)
    return x * 2
C.later = memo.per_instance(later)
c = C()
results = [c.add(1), c.add(1), C.plus(1), C.later(c, 3), c.later(3)]
""")
    assert shell["results"] == [2, 2, 2, 6, 6] and shell["calls"] == [1, -3]


# -- explain's notes on a hit ----------------------------------------------------------------------------


def _explained_hit(shell: Shell, cell: str) -> str:
    shell.run("%load_ext notebook_memo")
    shell.run(cell)
    shell.run(cell)
    report = str(shell.run("%memo explain ex"))
    assert "HIT" in report, report
    return report


def test_explain_of_a_hit_says_one_file_read_is_unchanged(shell: Shell, tmp_path: Path) -> None:
    (tmp_path / "d.txt").write_text("abc")
    report = _explained_hit(shell, f"%%memo ex\ntext = open({str(tmp_path / 'd.txt')!r}).read()")
    assert f"the data file it read ({tmp_path / 'd.txt'}) is unchanged" in report, report


def test_explain_of_a_hit_says_two_files_read_are_unchanged(shell: Shell, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "b.txt").write_text("b")
    paths = [str(tmp_path / "a.txt"), str(tmp_path / "b.txt")]
    report = _explained_hit(shell, f"%%memo ex\ntext = [open(p).read() for p in {paths!r}]")
    assert "the data files it read (" in report and ") are unchanged" in report, report


def test_explain_of_a_hit_says_one_file_written_is_as_it_left_it(shell: Shell, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    report = _explained_hit(shell, f"%%memo ex\nopen({str(out)!r}, 'w').write('x')\ndone = True")
    assert f"the file it wrote ({out}) is as it left it" in report, report
