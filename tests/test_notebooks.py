"""The example notebooks, executed top to bottom by a real Jupyter kernel, twice on one cache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from notebook_memo._demo import cache_summary, execute_notebook
from tests.conftest import CELL_TIMEOUT, ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
WIDGET = "application/vnd.jupyter.widget-view+json"


def _text(cell: Any) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output["text"])
        elif "data" in output:
            data = output["data"]
            if WIDGET in data:
                continue  # a progress bar: shows work being done, not a result
            parts.append(data.get("text/plain", "") + ("<image>" if "image/png" in data else ""))
        elif output.get("output_type") == "error":
            parts.append(f"ERROR {output['ename']}: {output['evalue']}")
    return "".join(parts)


def _comparable(cell: Any) -> str:
    lines = _text(cell).splitlines()
    return "\n".join(line for line in lines if not line.startswith("[notebook_memo]"))


def _tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_twice_and_the_second_run_is_served_from_the_cache(path: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first, _ = execute_notebook(path, cache, timeout=CELL_TIMEOUT)
    entries, _ = cache_summary(cache)
    second, _ = execute_notebook(path, cache, timeout=CELL_TIMEOUT)
    entries_after, _ = cache_summary(cache)
    assert entries > 0
    assert entries_after == entries  # nothing new had to be stored

    code_cells = [(a, b) for a, b in zip(first.cells, second.cells) if a.cell_type == "code"]
    for a, b in code_cells:
        assert "ERROR" not in _text(a) and "ERROR" not in _text(b)
        if "varies" not in _tags(a):
            assert _comparable(a) == _comparable(b), a.source

    for a, b in code_cells:
        if a.source.startswith("%%memo"):
            assert "[notebook_memo] restored" not in _text(a)
            assert "[notebook_memo] restored" in _text(b)  # served from the cache, not re-run

    [stats_first] = [json.loads(_text(a)) for a, _ in code_cells if "stats" in _tags(a)]
    [stats_second] = [json.loads(_text(b)) for _, b in code_cells if "stats" in _tags(b)]
    assert all(misses > 0 for _, misses in stats_first.values())
    assert all(misses == 0 for _, misses in stats_second.values()), stats_second


def test_both_example_notebooks_exist() -> None:
    assert {p.name for p in NOTEBOOKS} >= {"quickstart.ipynb", "model_inference.ipynb"}
