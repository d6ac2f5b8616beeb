"""``import notebook_memo`` loads only what a memoized call needs; the rest waits for its first use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Loaded by the magics, the CLI, batches, progress bars, or only on rare paths: never by the import.
LAZY = (
    "IPython",
    "tqdm",
    "ipywidgets",
    "nbformat",
    "nbclient",
    "asyncio",
    "typing_extensions",
    "notebook_memo._magics",
    "notebook_memo._cells",
    "notebook_memo._cell_exec",
    "notebook_memo._widgets",
    "notebook_memo._batch",
    "notebook_memo._cli",
    "notebook_memo._demo",
)

IMPORT_ONLY = """
import json, sys
import numpy, pandas
before = set(sys.modules)
import notebook_memo
print(json.dumps(sorted(set(sys.modules) - before)))
"""

# A process that drops its rights after importing may be unable to import anything more (its
# interpreter's files unreadable): the call paths must then need nothing the import did not load.
NO_MORE_IMPORTS = """
import asyncio, json, sys
import numpy as np
from notebook_memo import memo

class NoImports:
    def find_spec(self, name, path=None, target=None):
        raise ImportError(f"imports are closed: {{name}}")

sys.meta_path.insert(0, NoImports())
before = set(sys.modules)

@memo
def triple(x):
    return x * 3

@memo(mmap=True)
def big(n):
    return np.arange(n, dtype=np.float64)

@memo
async def later(x):
    return x + 1

out = {{
    "values": [triple(2), triple(2), int(big(1 << 18).sum()), int(big(1 << 18).sum()),
               asyncio.run(later(1)), asyncio.run(later(1))],
    "explain": str(triple.explain(5)),
    "explain_last": str(triple.explain_last()),
    "new_modules": sorted(set(sys.modules) - before),
}}
print(json.dumps(out))
"""


def _run(code: str, cache_dir: Path) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT), NOTEBOOK_MEMO_DIR=str(cache_dir))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def test_import_loads_no_ipython_tqdm_or_other_module_a_call_does_not_need(cache_dir: Path) -> None:
    loaded = set(json.loads(_run(IMPORT_ONLY, cache_dir)))
    assert "notebook_memo._memo" in loaded  # the test sees the import
    assert sorted(name for name in LAZY if name in loaded) == []


def test_calls_hits_and_explanations_need_no_import_after_the_package_import(cache_dir: Path) -> None:
    out = json.loads(_run(NO_MORE_IMPORTS.format(), cache_dir))
    total = (1 << 18) * ((1 << 18) - 1) // 2
    assert out["values"] == [6, 6, total, total, 2, 2]
    assert "MISS" in out["explain"] and "HIT" in out["explain_last"]
    assert out["new_modules"] == []
