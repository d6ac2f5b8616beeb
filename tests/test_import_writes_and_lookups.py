"""Environment variables set by a module's import that the body set off (a function the module's top level
calls, as torch's optimizers do when they first import torch._dynamo), which are no change of the body's; and
the store lookups a hit of an entry stored per working folder makes in steady state. Real shells, real
kernels restarted with other hash seeds, real stores."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import textwrap
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from notebook_memo import MemoWarning, memo
from notebook_memo.stores.local import Store
from tests.conftest import RUNS_SETUP, Counter, run_kernel, worker_env

# -- variables set by an import the body set off -----------------------------------------------------------

TORCH_SETUP = "import torch, torch.nn as nn\nfrom notebook_memo import memo\n%load_ext notebook_memo"

TORCH_TRAIN = '''
@memo
def train(epochs):
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)  # the first optimizer in a process imports torch._dynamo
    X, y = torch.randn(16, 3), torch.randn(16, 1)
    for _ in range(epochs):
        opt.zero_grad()
        ((model(X) - y) ** 2).mean().backward()
        opt.step()
    return model.state_dict()["weight"].tolist()
'''

TORCH_CELL = '''%%memo fit
torch.manual_seed(0)
net = nn.Linear(3, 1)
opt2 = torch.optim.Adam(net.parameters(), lr=0.1)
X2 = torch.randn(16, 3)
for _ in range(3):
    opt2.zero_grad(); net(X2).pow(2).mean().backward(); opt2.step()
w = net.weight.detach().tolist()
'''


def _not_cached(result: dict[str, object]) -> list[str]:
    return [str(w) for w in result["_warnings"] if "not cached" in str(w)]  # type: ignore[attr-defined]


def test_a_torch_training_loop_is_cached_though_its_optimizer_imports_a_module_that_sets_a_variable(
        cache_dir: Path) -> None:
    cells = [TORCH_SETUP, TORCH_TRAIN,
             "OUT['w'] = train(5); OUT['again'] = train(5) == OUT['w']; OUT['info'] = list(train.cache_info()[:2])"]
    first = run_kernel(cells, cache_dir, seed=1)
    assert _not_cached(first) == [] and first["info"] == [1, 1] and first["again"], first
    second = run_kernel(cells, cache_dir, seed=2)
    assert second["info"] == [2, 0] and second["w"] == first["w"], second


def test_a_torch_training_cell_is_cached_though_its_optimizer_imports_a_module_that_sets_a_variable(
        cache_dir: Path) -> None:
    cell = TORCH_CELL.replace("torch.manual_seed(0)", "ran('fit')\ntorch.manual_seed(0)")
    cells = [TORCH_SETUP, RUNS_SETUP, cell, cell, "OUT['w'] = w; OUT['ran'] = RUNS.get('fit', 0)"]
    first = run_kernel(cells, cache_dir, seed=1)
    assert _not_cached(first) == [] and first["ran"] == 1, first
    second = run_kernel(cells, cache_dir, seed=2)
    assert second["ran"] == 0 and second["w"] == first["w"], second


LIBRARY = {
    "__init__.py": """
def build():
    from nbmlib import _backend_a  # lazily, as torch's optimizers import torch._dynamo
    return _backend_a.CACHE

def build_other():
    from nbmlib import _backend_b
    return _backend_b.CACHE
""",
    # each backend's top level calls a function that sets a variable, as torch._dynamo's calls cache_dir()
    "_backend_a.py": "import os\ndef cache_dir():\n    os.environ['NBM_LIB_A'] = 'a'\n    return 'a'\n"
                     "CACHE = cache_dir()\n",
    "_backend_b.py": "import os\ndef cache_dir():\n    os.environ.setdefault('NBM_LIB_B', 'b')\n    return 'b'\n"
                     "CACHE = cache_dir()\n",
}


def _library(tmp_path: Path) -> dict[str, str]:
    """Install ``nbmlib`` in a user site folder of its own; return the environment of a kernel that imports it
    from there (a library's code, which a key does not follow)."""
    base = tmp_path / "userbase"
    site_folder = Path(sysconfig.get_path("purelib", f"{os.name}_user", vars={"userbase": str(base)}))
    (site_folder / "nbmlib").mkdir(parents=True)
    for name, text in LIBRARY.items():
        (site_folder / "nbmlib" / name).write_text(text)
    return {"PYTHONUSERBASE": str(base), "PYTHONPATH": str(site_folder)}


def test_a_library_import_the_body_sets_off_that_sets_a_variable_in_a_function_leaves_it_cached(
        tmp_path: Path, cache_dir: Path) -> None:
    cells = [RUNS_SETUP + "import nbmlib, os\n%load_ext notebook_memo",
             "@memo\ndef load(x):\n    ran('load')\n    return nbmlib.build() + str(x)\n",
             "OUT['load'] = [load(1), load(1)]",
             "%%memo\nran('cell')\nother = nbmlib.build_other()\n",
             "%%memo\nran('cell')\nother = nbmlib.build_other()\n",
             "OUT['runs'] = dict(RUNS); OUT['other'] = other"]
    env = _library(tmp_path)
    first = run_kernel(cells, cache_dir, seed=1, env=env)
    assert [w for w in first["_warnings"] if "Warning" in str(w)] == [], first  # type: ignore[attr-defined]
    assert first["runs"] == {"load": 1, "cell": 1} and first["load"] == ["a1", "a1"], first
    second = run_kernel(cells, cache_dir, seed=2, env=env)
    assert second["runs"] == {} and second["load"] == ["a1", "a1"] and second["other"] == "b", second


def _ours(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, MemoWarning)]


def test_a_body_run_by_an_import_that_sets_a_variable_itself_is_not_cached(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The import is above the body, not inside it: the write is the body's own."""
    name = f"nbm_runs_{os.getpid()}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent('''
        import os
        from notebook_memo import memo

        @memo
        def setup():
            os.environ["NBM_IMPORT_DIR"] = "set by the body"
            return 1

        VALUE = setup()
        '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("NBM_IMPORT_DIR", "")
    monkeypatch.delenv("NBM_IMPORT_DIR")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            module = __import__(name)
        assert any("NBM_IMPORT_DIR" in text and "not cached" in text for text in _ours(caught)), _ours(caught)
        assert module.setup.cache_info().misses == 1
    finally:
        sys.modules.pop(name, None)


# -- lookups per hit of an entry stored per working folder ------------------------------------------------------


class _Lookups:
    """Counts the index lookups (``Store.get``) while installed; keeps the store they went to."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.n = 0
        self.store: Store | None = None
        original = Store.get

        def counted(store: Store, *args: Any, **kwargs: Any) -> Any:
            self.n += 1
            self.store = store
            return original(store, *args, **kwargs)

        monkeypatch.setattr(Store, "get", counted)

    def of(self, call: Callable[[], object]) -> int:
        """Return how many lookups ``call`` made."""
        before = self.n
        call()
        return self.n - before


def _reader(counter: Counter, slow: bool) -> Any:
    @memo
    def load(name: str) -> str:
        counter()
        if slow:  # a run past QUICK_BODY is committed at once, not left to the background thread
            time.sleep(0.02)
        with open(name, encoding="utf-8") as fh:  # a relative path: one entry per folder, behind a marker
            return fh.read()

    return load


def _flush_elsewhere(store: Store) -> None:
    """Write the access times the hits left due, from another thread (another connection), as the store's
    background thread does every few seconds."""
    flusher = threading.Thread(target=store.flush)
    flusher.start()
    flusher.join()


@pytest.mark.parametrize("slow", [False, True], ids=["quick", "slow"])
def test_every_hit_of_a_body_reading_a_relative_path_reads_the_index_once(
        tmp_path: Path, counter: Counter, monkeypatch: pytest.MonkeyPatch, slow: bool) -> None:
    (tmp_path / "data.txt").write_text("rows")
    monkeypatch.chdir(tmp_path)
    load = _reader(counter, slow)
    lookups = _Lookups(monkeypatch)
    assert load("data.txt") == "rows" and counter.n == 1  # the miss, which stores the entry and its marker
    per_hit = []
    for _ in range(4):
        per_hit.append(lookups.of(lambda: load("data.txt")))
        assert load.last_hit
        assert lookups.store is not None
        _flush_elsewhere(lookups.store)  # the first hits renew their rows' access times: a commit
    assert per_hit == [1, 1, 1, 1] and counter.n == 1


_OTHER_WRITER = """
from notebook_memo import memo

@memo
def other(x):
    return x + 1

other(1)
"""


def test_a_hit_reads_the_index_once_after_another_process_stored_something_else(
        tmp_path: Path, cache_dir: Path, counter: Counter, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "data.txt").write_text("rows")
    monkeypatch.chdir(tmp_path)
    load = _reader(counter, slow=False)
    lookups = _Lookups(monkeypatch)
    load("data.txt")
    assert lookups.of(lambda: load("data.txt")) == 1
    subprocess.run([sys.executable, "-c", _OTHER_WRITER], env=worker_env(cache_dir), check=True, timeout=120)
    assert lookups.of(lambda: load("data.txt")) == 1 and load.last_hit and counter.n == 1
