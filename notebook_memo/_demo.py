"""The main job: execute a notebook twice through a real Jupyter kernel on one cache."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from . import _config
from ._inventory import Inventory
from ._store import get_store

__all__ = ()

DEFAULT_NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "quickstart.ipynb"


def execute_notebook(path: Path, cache_dir: Path, timeout: int = 600) -> tuple[Any, float]:
    """Run a notebook top to bottom on a fresh kernel; return the executed notebook and seconds."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(str(path), as_version=4)
    previous = os.environ.get(_config.ENV_DIR)
    os.environ[_config.ENV_DIR] = str(cache_dir)  # the kernel inherits it
    try:
        client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}})
        start = time.perf_counter()
        client.execute()
        return notebook, time.perf_counter() - start
    finally:
        if previous is None:
            os.environ.pop(_config.ENV_DIR, None)
        else:
            os.environ[_config.ENV_DIR] = previous


def cache_summary(cache_dir: Path) -> tuple[int, float]:
    """Return (entries, seconds of computation they hold) in a cache directory."""
    rows = Inventory(get_store(str(cache_dir.resolve()), _config.resolve_size_limit())).functions()
    return sum(r.entries for r in rows), sum(r.compute_seconds for r in rows)


def run_demo(notebook: str | None, cache_dir: str | None) -> int:
    path = Path(notebook) if notebook else DEFAULT_NOTEBOOK
    if not path.exists():
        print(f"notebook-memo: no notebook at {path}")
        return 2
    directory = Path(cache_dir) if cache_dir else Path(tempfile.mkdtemp(prefix="notebook_memo_demo_"))
    print(f"notebook: {path}\ncache:    {directory}\n")
    _, first = execute_notebook(path, directory)
    entries, computed = cache_summary(directory)
    print(f"run 1 (fresh kernel, empty cache): {first:6.2f} s   -> {entries} cached results "
          f"worth {computed:.2f} s of computation")
    _, second = execute_notebook(path, directory)
    entries_after, _ = cache_summary(directory)
    print(f"run 2 (fresh kernel, same cache):  {second:6.2f} s   -> {entries_after - entries} new results")
    print(f"\nthe second run was {first / second:.1f}x faster: its expensive work came back from disk")
    return 0 if entries_after == entries else 1
