"""Widgets in cached cells and batch progress: through a real Jupyter kernel (nbclient)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest

from notebook_memo._demo import execute_notebook
from tests.conftest import CELL_TIMEOUT, Shell

pytest.importorskip("ipywidgets")

WIDGET = "application/vnd.jupyter.widget-view+json"

# tqdm is imported before the cached cell: the first import of a package lists sys.path (importlib.metadata),
# missing folders included, which is a precondition of its own.
_IMPORT_CELL = "%load_ext notebook_memo\nfrom tqdm.auto import tqdm"
_TQDM_CELL = """%%memo progress
total = 0
for i in tqdm(range(10), desc="squares"):
    total += i * i
print("total", total)
"""


def _notebook(path: Path, cells: list[str]) -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nbformat.write(notebook, str(path))
    return path


def _outputs(cell: Any) -> list[dict[str, Any]]:
    return [dict(output) for output in cell.get("outputs", [])]


def _text(outputs: list[dict[str, Any]]) -> str:
    parts = []
    for output in outputs:
        if output.get("output_type") == "stream":
            parts.append(output["text"])
        for mime, value in output.get("data", {}).items():
            if mime.startswith("text/"):
                parts.append(value if isinstance(value, str) else "".join(value))
        if output.get("output_type") == "error":
            parts.append(f"ERROR {output['ename']}: {output['evalue']}")
    return "\n".join(parts)


def test_a_restored_cell_shows_its_progress_bar_final_state_not_a_missing_widget(tmp_path: Path) -> None:
    path = _notebook(tmp_path / "bar.ipynb", [_IMPORT_CELL, _TQDM_CELL])
    cache = tmp_path / "cache"
    first, _ = execute_notebook(path, cache, timeout=CELL_TIMEOUT)
    second, _ = execute_notebook(path, cache, timeout=CELL_TIMEOUT)
    live, restored = _outputs(first.cells[1]), _outputs(second.cells[1])
    assert any(WIDGET in o.get("data", {}) for o in live), live  # the first run showed a real widget
    assert "[notebook_memo] restored" in _text(restored), restored
    assert not any(WIDGET in o.get("data", {}) for o in restored), restored
    text = _text(restored)
    assert "squares" in text and "100%" in text and "10/10" in text and "total 285" in text, text
    assert "ERROR" not in text


def test_a_replayed_widget_shows_its_state_at_the_end_of_the_cell_and_a_closed_one_nothing(shell: Shell) -> None:
    published: list[dict[str, Any]] = []
    original = shell.ip.display_pub.publish

    def spy(data: Any, metadata: Any = None, *args: Any, **kwargs: Any) -> Any:
        published.append(data)
        return original(data, metadata, *args, **kwargs)

    shell.run("%load_ext notebook_memo")
    cell = ("%%memo widgets\nimport ipywidgets\nbar = ipywidgets.IntProgress(value=0, max=10, description='load')\n"
            "scratch = ipywidgets.Label('temporary')\ndisplay(bar)\ndisplay(scratch)\nbar.value = 7\n"
            "scratch.close()\ndel bar, scratch")
    shell.ip.display_pub.publish = spy
    try:
        shell.run(cell)
        live = list(published)
        published.clear()
        shell.run(cell)
    finally:
        shell.ip.display_pub.publish = original
    assert [WIDGET in d for d in live] == [True, True]
    [restored] = published
    assert restored == {"text/plain": "load |███████   |",
                        "text/html": 'load <progress value="7.0" max="10.0"></progress>'}


def test_batch_progress_is_plain_text_without_ipywidgets(tmp_path: Path) -> None:
    cells = [
        "import sys\nsys.modules['ipywidgets'] = None  # as if ipywidgets were not installed",
        "import json, warnings\nwarnings.simplefilter('always')\nfrom notebook_memo import memo\n"
        "@memo.batch('xs', batch_size=2)\ndef double(xs):\n    return [x * 2 for x in xs]\n"
        "result = double(list(range(6)))\nprint(json.dumps(result))",
    ]
    path = _notebook(tmp_path / "batch.ipynb", cells)
    executed, _ = execute_notebook(path, tmp_path / "cache", timeout=CELL_TIMEOUT)
    outputs = _outputs(executed.cells[1])
    text = _text(outputs)
    assert json.dumps([0, 2, 4, 6, 8, 10]) in text, text
    assert not any(WIDGET in o.get("data", {}) for o in outputs), outputs
    assert "TqdmWarning" not in text and "IProgress not found" not in text, text
    assert "computing 6 new items" in text and "6/6" in text, text
