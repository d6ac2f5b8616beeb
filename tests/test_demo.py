"""The main job, ``python -m notebook_memo demo``, run as a real process: what it prints and what it leaves."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from notebook_memo._demo import TEMP_PREFIX, _cache_directory, apply_edits
from tests.conftest import ROOT

ROW = re.compile(r"^\s+\[(\d+)\]\s+(.+?)\s+(computed|restored|ran)\s+([\d.]+)s(?:\s+(.*))?$")
ALARMS = ("warning", "traceback", "error", "keyboardinterrupt", "stderr:")  # matched in lower case


@dataclass
class Demo:
    stdout: str
    stderr: str
    returncode: int
    output: Path
    temp: Path
    temp_left: list[str]
    notebooks_before: list[str]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    base = tmp_path_factory.mktemp("demo")
    temp, output = base / "tmp", base / "out"
    temp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTEBOOK_MEMO_")}
    env.update(PYTHONPATH=str(ROOT), TMPDIR=str(temp))  # the demo's temporary folders land in our own
    before = sorted(os.listdir(ROOT / "notebooks"))
    done = subprocess.run([sys.executable, "-m", "notebook_memo", "demo", "--output", str(output)],
                          capture_output=True, text=True, env=env, timeout=240, cwd=base)
    return Demo(done.stdout, done.stderr, done.returncode, output, temp, sorted(os.listdir(temp)), before)


def _rows(stdout: str, title: str) -> dict[str, tuple[str, str]]:
    """Return {cell label: (result, memoized calls)} for the table under the line starting with ``title``."""
    section = stdout.split("\n" + title, 1)[1].split("\n\n", 1)[0]
    return {m[2]: (m[3], m[5] or "") for line in section.splitlines() if (m := ROW.match(line))}


def test_demo_succeeds_without_warnings_or_tracebacks(demo: Demo) -> None:
    assert demo.returncode == 0, demo.stdout + demo.stderr
    printed = demo.stdout + demo.stderr  # the kernels' own stderr included: it is inherited
    assert not [alarm for alarm in ALARMS if alarm in printed.lower()], printed


def test_first_run_computes_every_memoized_step(demo: Demo) -> None:
    rows = _rows(demo.stdout, "run 1")
    assert rows["%%memo training"][0] == "computed"
    computed = [label for label, (result, _) in rows.items() if result == "computed"]
    assert len(computed) == 4, rows
    assert any("classify: 540 computed, 400 restored" in calls for _, calls in rows.values()), rows


def test_second_run_restores_every_unaffected_cell_and_recomputes_the_edited_function(demo: Demo) -> None:
    first, second = _rows(demo.stdout, "run 1"), _rows(demo.stdout, "run 2")
    assert list(first) == list(second)
    for label, (result, calls) in second.items():
        if label == "coords = embed_2d(proba)":
            assert (result, calls) == ("computed", "embed_2d: 1 computed")
        elif first[label][0] != "ran":
            assert result == "restored" and "computed" not in calls, (label, result, calls)
    [edited] = [calls for calls in (c for _, c in second.values()) if calls.startswith("edited")]
    assert edited == "edited: n_neighbors=10 -> n_neighbors=20"
    assert "run 2 restored 3 cells from the cache and computed 1 again: coords = embed_2d(proba)" in demo.stdout


def test_summary_has_the_explain_line_of_the_edited_function(demo: Demo) -> None:
    explained = demo.stdout.split("explain, before the edited function ran again:\n", 1)[1]
    assert re.match(r"\s+embed_2d: MISS: ", explained)
    assert "the function's own code changed" in explained.split("\n\n", 1)[0]


def test_second_run_is_saved_as_notebook_and_html_with_the_plots(demo: Demo) -> None:
    notebook = nbformat.read(str(demo.output / "model_inference.ipynb"), as_version=4)
    sources = [c.source for c in notebook.cells if c.cell_type == "code"]
    assert any("n_neighbors=20" in s for s in sources)  # the edited run
    texts = ["".join(o.get("text", "") for o in c.outputs) for c in notebook.cells if c.cell_type == "code"]
    assert any("[notebook_memo] restored" in t for t in texts)
    stderr = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.get("name") == "stderr"]
    assert not stderr
    page = (demo.output / "model_inference.html").read_text(encoding="utf-8")
    assert page.count("data:image/png") >= 2  # the %%memo cell's replayed figure and the map
    assert "<img" in page and "[notebook_memo] restored" in page


def test_demo_leaves_no_temporary_folders_or_stray_files(demo: Demo) -> None:
    assert demo.temp_left == [], demo.temp_left
    assert sorted(os.listdir(ROOT / "notebooks")) == demo.notebooks_before


def test_a_given_cache_directory_is_kept_and_a_temporary_one_removed(tmp_path: Path) -> None:
    given = tmp_path / "mine"
    with _cache_directory(str(given)) as directory:
        assert directory == given
        directory.mkdir()
    assert given.is_dir()
    with _cache_directory(None) as directory:
        assert directory.name.startswith(TEMP_PREFIX) and directory.is_dir()
    assert not directory.exists()


def test_an_edit_must_match_exactly_once() -> None:
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 1\n", metadata={"demo_edit": {"old": "x = 1", "new": "x = 2"}}),
        nbformat.v4.new_code_cell("y = 1\n")])
    assert apply_edits(notebook) == {0: "x = 1 -> x = 2"}
    assert notebook.cells[0].source == "x = 2\n"
    with pytest.raises(ValueError, match="exactly once"):
        apply_edits(notebook)  # the text to replace is gone now
