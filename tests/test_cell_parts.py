"""%%memo cells that touch parts of what they read: a user module's helper that loads a model on first use
(a global its own code binds) is stored, the module restored as imported; and an output that is part of an
input the run left unchanged (``cfg = CONFIG['train']``, ``row = arr[0]``) is restored as that part of the
live input, where a constant path from the input reaches it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_kernel

HITS = "from notebook_memo import _cells\nOUT['hits'] = sum(c.hits for c in _cells._cells.values())"


def _not_stored(kernel: dict[str, Any], *words: str) -> bool:
    return any("not cached" in w and all(word in w for word in words) for w in kernel["_warnings"])


def _restarted(cells: list[str], cache_dir: Path, module: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the cells in a kernel, then in a restarted one, with the user module ``umod`` importable."""
    (cache_dir.parent / "umod.py").write_text(module)
    cells = ["%load_ext notebook_memo\nimport umod", *cells, HITS]
    return run_kernel(cells, cache_dir, seed=1), run_kernel(cells, cache_dir, seed=2)


# -- a user module that loads on first use -------------------------------------------------------------

LAZY = ("MODEL = None\n"
        "def get():\n    global MODEL\n    if MODEL is None:\n        MODEL = {'w': 5}\n    return MODEL\n"
        "REGISTRY = {}\n")
INIT = "def init():\n    global MODEL\n    MODEL = {'w': 7}\n"


@pytest.mark.parametrize("cells", [
    ["%%memo\nw = umod.get()['w'] * 2\n"],  # through the module
    ["from umod import get", "%%memo\nw = get()['w'] * 2\n"],  # through a function imported from it
    ["def helper():\n    return umod.get()['w']", "%%memo\nw = helper() * 2\n"],  # through a notebook function
])
def test_a_cell_whose_helper_loads_a_user_module_s_model_on_first_use_is_restored(cache_dir: Path,
                                                                                   cells: list[str]) -> None:
    first, second = _restarted([*cells, "OUT['w'] = w\nOUT['model'] = umod.get()"], cache_dir, LAZY)
    assert first["w"] == second["w"] == 10
    assert first["model"] == second["model"] == {"w": 5}
    assert not _not_stored(first)
    assert second["hits"] == 1


@pytest.mark.parametrize(("cell", "words"), [
    ("umod.REGISTRY['k'] = 1\nw = umod.get()['w']", ("umod", "in place")),  # a load, and a change of its data
    # a global that a call sets without reading it, which the next use would not set again
    ("umod.init()\nw = umod.MODEL['w']", ("umod", "in place")),
    ("model = umod.get()", ("'model'", "umod")),  # an output holding what was loaded: a hit would make a copy
])
def test_a_cell_that_changes_a_user_module_beyond_a_load_on_first_use_is_not_stored(cache_dir: Path, cell: str,
                                                                                    words: tuple[str, ...]) -> None:
    first, second = _restarted([f"%%memo\n{cell}\n", "OUT['state'] = [dict(umod.REGISTRY), umod.MODEL]"],
                               cache_dir, LAZY + INIT if "init" in cell else LAZY)
    assert first["state"] == second["state"]
    assert second["hits"] == 0
    assert _not_stored(first, *words)
