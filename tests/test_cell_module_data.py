"""A %%memo cell that changes a module's data through an object's method (``adder.add('a')``, the class in a user
module or in the notebook, called directly, through a helper or a bound method) is not stored, or restores that
data with its outputs, so a hit leaves the data as a run does; a method that changes only its own object is still
stored and restored."""

from __future__ import annotations

from pathlib import Path

import pytest

from notebook_memo import StorageWarning, _cells
from tests.conftest import Shell, run_kernel

ADDER = ("REGISTRY = {}\n"
         "class Adder:\n"
         "    def add(self, name):\n"
         "        REGISTRY[name] = len(REGISTRY) + 1\n"
         "        return len(REGISTRY)\n")

MODEL = ("SCALE = {'k': 2}\n"
         "class Model:\n"
         "    def fit(self, xs):\n"
         "        self.coef = sum(xs) * SCALE['k']\n"
         "        return self\n")


def _module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> str:
    """Write a user module of a name no other test imported, importable from the notebook; return its name."""
    name = f"cmd_{tmp_path.name.replace('-', '_')}"
    folder = tmp_path / "mods"
    folder.mkdir()
    (folder / f"{name}.py").write_text(text)
    monkeypatch.syspath_prepend(str(folder))
    return name


def _hits() -> int:
    return sum(cell.hits for cell in _cells._cells.values())


@pytest.mark.parametrize("setup, cell", [
    ("adder = {mod}.Adder()", "x = adder.add('a')"),  # the method, called by the cell
    ("adder = {mod}.Adder()\ndef register(name):\n    return adder.add(name)", "x = register('a')"),  # by a helper
    ("adder = {mod}.Adder()\nadd = adder.add", "x = add('a')"),  # a bound method held before the cell
])
def test_a_cell_whose_method_call_changes_a_user_module_s_data_is_not_stored(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setup: str, cell: str) -> None:
    mod = _module(tmp_path, monkeypatch, ADDER)
    shell.run(f"%load_ext notebook_memo\nimport {mod}\n{setup.format(mod=mod)}")
    with pytest.warns(StorageWarning, match=rf"not cached.*'{mod}\.REGISTRY' in place.*cell of its own"):
        shell.run(f"%%memo\n{cell}\n")
    shell.run(f"{mod}.REGISTRY.clear()")
    shell.run(f"%%memo\n{cell}\n")
    assert shell.ip.user_ns[mod].REGISTRY == {"a": 1}
    assert shell["x"] == 1
    assert _hits() == 0


def test_a_cell_whose_method_changes_its_class_s_data_is_not_stored_once_the_class_was_resolved(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mod = _module(tmp_path, monkeypatch, "class Adder:\n    SEEN = {}\n    def add(self, name):\n"
                  "        Adder.SEEN[name] = len(Adder.SEEN) + 1\n        return len(Adder.SEEN)\n")
    shell.run(f"%load_ext notebook_memo\nimport {mod}\nadder = {mod}.Adder()")
    shell.run("%%memo\nknown = id(adder) > 0\n")  # its class's resolution is kept from here on
    cell = "%%memo\nx = adder.add('a')\n"
    with pytest.warns(StorageWarning, match=r"not cached.*'Adder\.SEEN' in place"):
        shell.run(cell)
    shell.run(f"{mod}.Adder.SEEN.clear()")
    shell.run(cell)
    assert shell.ip.user_ns[mod].Adder.SEEN == {"a": 1}


def test_a_cell_whose_notebook_class_changes_a_notebook_dict_restores_it(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo")
    shell.run("REGISTRY = {}\nclass Adder:\n    def add(self, name):\n        REGISTRY[name] = len(REGISTRY) + 1\n"
              "        return len(REGISTRY)\nadder = Adder()")
    cell = "%%memo\nx = adder.add('a')\n"
    shell.run(cell)
    shell.run("REGISTRY.clear()")
    shell.run(cell)  # its key holds REGISTRY as it was: {} again, so a hit must leave {'a': 1}
    assert shell["REGISTRY"] == {"a": 1}
    assert shell["x"] == 1


def test_a_cell_whose_method_changes_only_its_object_is_stored_and_restored(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mod = _module(tmp_path, monkeypatch, MODEL)
    shell.run(f"%load_ext notebook_memo\nimport {mod}\nX = [1, 2, 3]")
    cell = f"%%memo\nmodel = {mod}.Model()\nmodel.fit(X)\n"
    shell.run(cell)
    shell.run("del model")
    shell.run(cell)
    assert _hits() == 1
    assert shell["model"].coef == 12
    shell.run("existing = " + f"{mod}.Model()")
    in_place = "%%memo\nexisting.fit(X)\n"  # an input changed in place, its module's data only read
    shell.run(in_place)
    shell.run(f"existing = {mod}.Model()")
    shell.run(in_place)
    assert _hits() == 2
    assert shell["existing"].coef == 12


def test_a_method_call_that_changes_a_user_module_s_data_is_run_again_after_a_restart(cache_dir: Path) -> None:
    (cache_dir.parent / "cmd_restart.py").write_text(ADDER)
    cells = ["%load_ext notebook_memo\nimport cmd_restart\nadder = cmd_restart.Adder()",
             "%%memo\nx = adder.add('a')\n",
             "from notebook_memo import _cells\nOUT['hits'] = sum(c.hits for c in _cells._cells.values())\n"
             "OUT['registry'] = dict(cmd_restart.REGISTRY)"]
    first, second = run_kernel(cells, cache_dir, seed=1), run_kernel(cells, cache_dir, seed=2)
    assert first["registry"] == second["registry"] == {"a": 1}
    assert second["hits"] == 0


def test_a_cell_that_names_a_class_and_changes_its_data_is_not_stored(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The class is an input of the cell, but a class is kept by name, not by content: its data a run changed
    would not come back with a hit."""
    mod = _module(tmp_path, monkeypatch, "class Adder:\n    SEEN = {}\n    @classmethod\n    def add(cls, name):\n"
                  "        cls.SEEN[name] = len(cls.SEEN) + 1\n        return len(cls.SEEN)\n")
    shell.run(f"%load_ext notebook_memo\nfrom {mod} import Adder")
    cell = "%%memo\nx = Adder.add('a')\n"
    with pytest.warns(StorageWarning, match=r"not cached.*'Adder(\.SEEN)?' in place"):
        shell.run(cell)
    shell.run("Adder.SEEN.clear()")
    shell.run(cell)
    assert shell["Adder"].SEEN == {"a": 1} and shell["x"] == 1
    assert _hits() == 0


def test_a_cell_that_names_a_notebook_class_and_changes_its_data_leaves_it_as_a_run_does(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo")
    shell.run("class Adder:\n    SEEN = {}\n    @classmethod\n    def add(cls, name):\n"
              "        cls.SEEN[name] = len(cls.SEEN) + 1\n        return len(cls.SEEN)")
    cell = "%%memo\nx = Adder.add('a')\n"
    shell.run(cell)
    shell.run("Adder.SEEN.clear()")
    shell.run(cell)
    assert shell["Adder"].SEEN == {"a": 1} and shell["x"] == 1
