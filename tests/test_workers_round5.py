"""Workers, round five: a notebook or script function run in a worker pool reads the globals the worker set
(``Pool(initializer=...)``), as the plain function does, and keys by them; a notebook object's memoized
method sent to a dask worker keys ``self`` as its sender does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, Shell

INITIALIZED_SCRIPT = """
import multiprocessing, sys
from notebook_memo import memo

SCALE = 1

def init():
    global SCALE
    SCALE = 100

@memo
def f(x):
    return x * SCALE

if __name__ == "__main__":
    with multiprocessing.get_context(sys.argv[1]).Pool(1, initializer=init) as pool:
        print("worker", *pool.map(f, [2, 3]))
    print("here", f(2), f(3), f.last_hit)
"""


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_a_script_function_in_a_pool_reads_the_globals_its_initializer_set(tmp_path: Path, method: str) -> None:
    """The worker runs on its own globals, as the plain function would; the script, whose SCALE is still 1,
    is not served the worker's answers."""
    script = tmp_path / "script.py"
    script.write_text(INITIALIZED_SCRIPT)
    env = {**os.environ, "NOTEBOOK_MEMO_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(script), method], capture_output=True, text=True, env=env,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["worker 200 300", "here 2 3 False"]


def test_a_notebook_function_in_a_forked_pool_reads_the_model_its_initializer_loaded(shell: Shell) -> None:
    shell.run("""
        import multiprocessing
        from notebook_memo import memo
        MODEL = None
        def init():
            global MODEL
            MODEL = {"w": 7}
        @memo
        def predict(x):
            return MODEL["w"] * x
    """)
    shell.run("""
        with multiprocessing.get_context("fork").Pool(1, initializer=init) as pool:
            sent = pool.map(predict, [1, 2])
    """)
    assert shell["sent"] == [7, 14]
    # The worker's entries stand for MODEL = {"w": 7}: here, MODEL is None and the body raises again.
    failed = shell.run_raw("predict(1)")
    assert isinstance(failed.error_in_exec, TypeError)
    shell.run('MODEL = {"w": 7}')
    assert shell.run("predict(2), predict.last_hit") == (14, True)  # the same globals: the worker's entry


def test_a_notebook_batch_function_in_a_forked_executor_reads_what_its_initializer_set(shell: Shell) -> None:
    """The same through ``concurrent.futures`` and ``memo.batch``: the worker's OFFSET, never the notebook's."""
    shell.run("""
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from notebook_memo import memo
        OFFSET = 0
        def init():
            global OFFSET
            OFFSET = 1000
        @memo.batch("xs")
        def shifted(xs):
            return [x + OFFSET for x in xs]
    """)
    shell.run("""
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"), initializer=init) as pool:
            sent = pool.submit(shifted, [1, 2]).result()
    """)
    assert shell["sent"] == [1001, 1002]
    assert shell.run("shifted([1, 2])") == [1, 2]
