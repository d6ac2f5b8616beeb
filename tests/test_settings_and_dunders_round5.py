"""Settings classes built with init keywords or inside another's fields, and shell dunders a cell binds (round 5).

A pydantic-settings class built with keywords that change where it reads (``_env_prefix``, ``_env_file``, or
``**options`` that may hold them) is keyed by the whole environment and the env files named, since its own reads
are not the ones made; a settings class held in another's field is keyed by its own variables too. A ``%%memo``
cell that binds a name the shell also sets (``__file__``, ``__doc__``, annotations) gets it back on a hit.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import Shell, run_kernel


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.lower().startswith(("app_", "other_", "inner_", "out_")) or name == "SLURM_JOB_ID":
            monkeypatch.delenv(name)


SETTINGS = """
from typing import Optional
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from notebook_memo import memo
class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="APP_")
    alpha: float = 1.0
class Inner(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INNER_")
    beta: float = 1.0
"""


def _run(name: str) -> str:
    return f'OUT["r"] = {name}()\nOUT["info"] = list({name}.cache_info()[:2])\n'


@pytest.mark.usefixtures("clean_environment")
def test_settings_built_with_another_prefix_are_keyed_across_restarts(cache_dir: Path) -> None:
    cells = [SETTINGS, """
@memo
def run():
    return Settings(_env_prefix="OTHER_").alpha * 3
""", _run("run")]
    assert run_kernel(cells, cache_dir, seed=1)["info"] == [0, 1]
    changed = run_kernel(cells, cache_dir, seed=2, env={"OTHER_ALPHA": "2.0"})
    assert changed["r"] == 6.0 and changed["info"] == [0, 1]
    # The whole environment is keyed here, PYTHONHASHSEED with it (unset in a real kernel, so the same): the same
    # one again is served.
    again = run_kernel(cells, cache_dir, seed=2, env={"OTHER_ALPHA": "2.0"})
    assert again["r"] == 6.0 and again["info"] == [1, 0]


@pytest.mark.usefixtures("clean_environment")
def test_settings_built_from_an_options_mapping_are_keyed_by_the_environment(shell: Shell,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    shell.run(SETTINGS + """
OPTIONS = {"_env_prefix": "OTHER_"}
@memo
def run():
    return Settings(**OPTIONS).alpha
""")
    assert shell.run("run()") == 1.0
    monkeypatch.setenv("OTHER_ALPHA", "5.0")
    assert shell.run("run()") == 5.0
    assert shell.run("run.cache_info().hits") == 0


@pytest.mark.usefixtures("clean_environment")
def test_settings_built_by_a_helper_with_another_prefix_are_keyed(shell: Shell,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    shell.run(SETTINGS + """
def load():
    return Settings(_case_sensitive=True, _env_prefix="OTHER_")
@memo
def run():
    return load().alpha
""")
    assert shell.run("run()") == 1.0
    monkeypatch.setenv("OTHER_alpha", "4.0")
    assert shell.run("run()") == 4.0


@pytest.mark.usefixtures("clean_environment")
def test_settings_env_file_given_when_built_and_created_after_a_run_is_read(shell: Shell, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    shell.run(SETTINGS + """
@memo
def run():
    return Settings(_env_file="other.env").alpha
""")
    assert shell.run("run()") == 1.0
    (tmp_path / "other.env").write_text("APP_ALPHA=2.0\n")
    assert shell.run("run()") == 2.0
    (tmp_path / "other.env").write_text("APP_ALPHA=3.0\n")
    assert shell.run("run()") == 3.0


@pytest.mark.usefixtures("clean_environment")
def test_settings_env_file_given_when_built_is_keyed_across_restarts(cache_dir: Path) -> None:
    cells = [SETTINGS, """
@memo
def run():
    return Settings(_env_file="other.env").alpha
""", _run("run")]
    assert run_kernel(cells, cache_dir, seed=1)["info"] == [0, 1]
    (cache_dir.parent / "other.env").write_text("APP_ALPHA=2.0\n")
    changed = run_kernel(cells, cache_dir, seed=2)
    assert changed["r"] == 2.0 and changed["info"] == [0, 1]


@pytest.mark.usefixtures("clean_environment")
@pytest.mark.parametrize("field", ["inner: Inner = Field(default_factory=Inner)",
                                   "inner: Optional[Inner] = Field(default_factory=Inner)",
                                   "inner: list = Field(default_factory=lambda: [Inner()])"])
def test_settings_class_built_in_another_s_field_is_keyed_by_its_variables(field: str, cache_dir: Path) -> None:
    cells = [SETTINGS, f"""
class Outer(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OUT_")
    {field}
@memo
def run():
    inner = Outer().inner
    return (inner[0] if isinstance(inner, list) else inner).beta * 3
""", _run("run")]
    assert run_kernel(cells, cache_dir, seed=1)["info"] == [0, 1]
    changed = run_kernel(cells, cache_dir, seed=2, env={"INNER_BETA": "2.0"})
    assert changed["r"] == 6.0 and changed["info"] == [0, 1]
    # Its variables unchanged, an unrelated one set: served.
    again = run_kernel(cells, cache_dir, seed=3, env={"INNER_BETA": "2.0", "SLURM_JOB_ID": "4"})
    assert again["r"] == 6.0 and again["info"] == [1, 0]


@pytest.mark.usefixtures("clean_environment")
def test_cell_building_settings_with_another_prefix_is_keyed_by_the_environment(shell: Shell,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    shell.run("%load_ext notebook_memo")
    shell.run(SETTINGS)
    cell = '%%memo\nr = Settings(_env_prefix="OTHER_").alpha\n'
    shell.run(cell)
    assert shell["r"] == 1.0
    monkeypatch.setenv("OTHER_ALPHA", "5.0")
    shell.run(cell)
    assert shell["r"] == 5.0


# -- names the shell sets, bound by a %%memo cell ----------------------------------------------------------------

SHELL_DUNDER_CELL = """%%memo
__file__ = '/projects/churn/analysis.py'
__doc__ = 'Churn analysis'
limit: int = 5
total = 1
"""
HITS = "[c.hits for c in __import__('notebook_memo._cells', fromlist=['cells']).cells()]"
SHELL_DUNDERS_SEEN = ("OUT['file'] = globals().get('__file__', 'UNBOUND'); OUT['doc'] = __doc__; "
                      "OUT['ann'] = {k: v.__name__ for k, v in __annotations__.items()}; OUT['total'] = total")


def test_a_hit_binds_the_shell_s_dunder_names_the_cell_binds_after_a_restart(cache_dir: Path) -> None:
    cells = ["%load_ext notebook_memo", SHELL_DUNDER_CELL, SHELL_DUNDERS_SEEN]
    first = run_kernel(cells, cache_dir, seed=1)
    hit = run_kernel([*cells, f"OUT['hits'] = {HITS}"], cache_dir, seed=2)
    expected = {"file": "/projects/churn/analysis.py", "doc": "Churn analysis", "ann": {"limit": "int"}, "total": 1}
    assert {k: first[k] for k in expected} == expected
    assert {k: hit[k] for k in expected} == expected and hit["hits"] == [1]


def test_a_hit_adds_the_cell_s_annotations_to_those_the_notebook_has(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo")
    shell.run("width: float = 2.0")
    cell = "%%memo\nlimit: int = 5\nname: str\n"
    shell.run(cell)
    shell.run("__annotations__.clear(); __annotations__['width'] = float; del limit")
    shell.run(cell)
    assert shell.run("sorted(__annotations__)") == ["limit", "name", "width"]
    assert shell["__annotations__"]["limit"] is int and shell["limit"] == 5
    assert shell.run(HITS) == [1]


@pytest.mark.parametrize("binding", ["__name__ = 'churn'", "__package__ = 'churn'", "__all__ = ['total']"])
def test_a_hit_binds_a_module_dunder_the_cell_binds(binding: str, shell: Shell) -> None:
    name = binding.split(" ")[0]
    shell.run("%load_ext notebook_memo")
    before = shell.run(f"globals().get({name!r}, 'UNBOUND')")
    cell = f"%%memo\n{binding}\ntotal = 1\n"
    undo = f"{name} = {before!r}" if before != "UNBOUND" else f"del {name}"
    try:
        shell.run(cell)
        bound = shell[name]
        shell.run(undo)
        shell.run(cell)
        assert shell[name] == bound
        assert shell.run(HITS) == [1]
    finally:  # the shell's reset leaves __name__ as a cell bound it, for the tests after this one
        shell.run_raw(undo)


@pytest.mark.parametrize("name", ["__file__", "__doc__"])
def test_a_cell_reading_a_dunder_an_earlier_cell_bound_is_keyed_by_it(name: str, shell: Shell) -> None:
    shell.run("%load_ext notebook_memo")
    cell = f"%%memo\nlabel = {name}.upper()\n"
    shell.run(f"{name} = 'a.py'")
    shell.run(cell)
    assert shell["label"] == "A.PY"
    shell.run(f"{name} = 'b.py'")
    shell.run(cell)
    assert shell["label"] == "B.PY"


def test_a_hit_adds_an_annotation_the_cell_made_as_the_notebook_had_it(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo")
    shell.run("limit: int = 1")
    cell = "%%memo\nif True:\n    limit: int = 5\n"
    shell.run(cell)  # the same entry as before the run: still one the cell made
    shell.run("__annotations__.clear()")
    shell.run(cell)
    assert shell["__annotations__"] == {"limit": int} and shell.run(HITS) == [1]
