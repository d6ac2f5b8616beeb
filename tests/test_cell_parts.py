"""%%memo cells that touch parts of what they read: a user module's helper that loads a model on first use
(a global its own code binds) is stored, the module restored as imported; and an output that is part of an
input the run left unchanged (``cfg = CONFIG['train']``, ``row = arr[0]``) is restored as that part of the
live input, where a constant path from the input reaches it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from notebook_memo import _cells
from tests.conftest import Shell, run_kernel

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


# -- an output that is part of an input the run left unchanged -------------------------------------------

@pytest.mark.parametrize(("setup", "cell", "after"), [
    ("CONFIG = {'train': {'lr': 0.1}, 'cols': ['a', 'b']}", "cfg = CONFIG['train']\nlr = cfg['lr'] * 2",
     "CONFIG['train']['lr'] = 0.5\nOUT['state'] = [cfg, cfg is CONFIG['train'], lr]"),
    ("CONFIG = {'train': {'lr': 0.1}, 'cols': ['a', 'b']}", 'cols = CONFIG["cols"]\nn = len(cols)',
     "cols.append('c')\nOUT['state'] = [CONFIG['cols'], n]"),
    ("import numpy as np\narr = np.arange(100.0).reshape(10, 10)", "first = arr[0]\nlast = arr[-1, 2:5]",
     "arr *= 2\nOUT['state'] = [first.tolist(), last.tolist(), bool(np.shares_memory(first, arr))]"),
    ("import numpy as np\nX = np.arange(4.0)", "X_train, X_test = X[:2], X[2:]",
     "X /= 10\nOUT['state'] = [X_train.tolist(), X_test.tolist()]"),
    ("class Model:\n    def __init__(self): self.history = []\nmodel = Model()", "hist = model.history",
     "hist.append('epoch1')\nOUT['state'] = [model.history, hist is model.history]"),
    ("cfg = {'model': {'layers': [64, 32]}}", "layers = cfg['model']['layers']",
     "cfg['model']['layers'].append(16)\nOUT['state'] = [layers, layers is cfg['model']['layers']]"),
])
def test_an_output_that_is_a_constant_part_of_an_unchanged_input_is_restored_as_that_part(
        cache_dir: Path, setup: str, cell: str, after: str) -> None:
    cells = ["%load_ext notebook_memo", setup, f"%%memo\n{cell}\n", after, HITS]
    first, second = run_kernel(cells, cache_dir, seed=1), run_kernel(cells, cache_dir, seed=2)
    assert not _not_stored(first)
    assert second["hits"] == 1
    assert first["state"] == second["state"]


def test_a_part_of_an_input_is_bound_on_a_hit_to_the_live_input_s_object(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo\nimport numpy as np\nCONFIG = {'cols': ['a', 'b']}")
    shell.run("%%memo parts\ncols = CONFIG['cols']\nn = len(cols)\n")
    shell.run("CONFIG = {'cols': ['a', 'b']}\ndel cols")  # the same content, a new object
    shell.run("%%memo parts\ncols = CONFIG['cols']\nn = len(cols)\n")
    assert shell["cols"] is shell["CONFIG"]["cols"]
    assert _cells._cells["parts"].hits == 1


@pytest.mark.parametrize(("setup", "cell", "names"), [
    # bound through a call or a computed key: no constant path from the input reaches it
    ("cfg = {'layers': [64, 32]}", "layers = cfg.get('layers')", ("'layers'", "'cfg'")),
    ("cfg = {'layers': [64, 32]}\nkey = 'layers'", "layers = cfg[key]", ("'layers'", "'cfg'")),
    ("import numpy as np\nX = np.arange(6.0)", "evens = X[::2]\nback = evens[::-1]", ("'back'", "'X'")),
])
def test_an_output_that_is_part_of_an_input_by_no_constant_path_is_not_stored(
        cache_dir: Path, setup: str, cell: str, names: tuple[str, ...]) -> None:
    cells = ["%load_ext notebook_memo", setup, f"%%memo\n{cell}\n", HITS]
    first, second = run_kernel(cells, cache_dir, seed=1), run_kernel(cells, cache_dir, seed=2)
    assert _not_stored(first, *names)
    assert second["hits"] == 0


def test_a_part_whose_content_differs_under_an_input_keyed_the_same_runs_the_cell(shell: Shell) -> None:
    shell.run("%load_ext notebook_memo\n"
              "class Model:\n    def __init__(self): self.history = []\n"
              "    def __memo_key__(self): return 'v1'\n"  # keyed alike whatever its history holds
              "model = Model()")
    shell.run("%%memo parts\nhist = model.history\n")
    shell.run("model = Model()\nmodel.history.append('epoch1')")
    shell.run("%%memo parts\nhist = model.history\n")
    assert shell["hist"] is shell["model"].history
    assert _cells._cells["parts"].hits == 0
    assert "model.history" in _cells._cells["parts"].explain_last().summary
