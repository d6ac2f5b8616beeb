"""Workers, round five: a notebook or script function run in a worker pool reads the globals the worker set
(``Pool(initializer=...)``), as the plain function does, and keys by them; a notebook object's memoized
method sent to a dask worker keys ``self`` as its sender does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, Shell, run_kernel

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


DASK_NOTEBOOK = [
    """
    from notebook_memo import memo
    LOG = {log!r}

    class Plain:
        def __init__(self, factor):
            self.factor = factor

        @memo
        def predict(self, x):
            with open(LOG, "a") as fh:
                fh.write(f"predict {{x}}\\n")
            return self.factor * x

    @memo
    def score(model, x):
        with open(LOG, "a") as fh:
            fh.write(f"score {{x}}\\n")
        return model.factor + x

    p = Plain(10)
    OUT["here"] = [p.predict(1), score(p, 1)]
    """,
    """
    from dask.distributed import Client, LocalCluster
    with LocalCluster(processes=True, host="127.0.0.1", n_workers=1, threads_per_worker=1,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        OUT["worker"] = [client.submit(p.predict, 1).result(), client.submit(p.predict, 2).result(),
                         client.submit(Plain.predict, p, 3).result(), client.submit(score, p, 1).result(),
                         client.submit(score, p, 2).result()]
    OUT["again"] = [p.predict(1), p.predict(2), p.predict(3), score(p, 1), score(p, 2)]
    OUT["hits"] = [Plain.predict.hits, score.hits]
    """,
]


def test_a_notebook_object_s_method_sent_to_dask_keys_self_as_the_notebook_does(tmp_path: Path,
                                                                                 cache_dir: Path) -> None:
    """Dask tokenizes what is submitted by pickling and loading it in the notebook, and cloudpickle, loading a
    notebook class in the process that defined it, sets the copies of its methods on the class itself: the
    notebook's keys of that class's code must not change, so the worker and the notebook hit each other's
    entries, each call computed once."""
    log = tmp_path / "body.log"
    out = run_kernel([cell.format(log=str(log)) for cell in DASK_NOTEBOOK], cache_dir)
    assert out["here"] == [10, 11]
    assert out["worker"] == [10, 20, 30, 11, 12]
    assert out["again"] == [10, 20, 30, 11, 12]
    assert sorted(log.read_text().splitlines()) == ["predict 1", "predict 2", "predict 3", "score 1", "score 2"]
    assert out["hits"] == [3, 2]  # the notebook's second calls, all served
    assert not [w for w in out["_warnings"] if "StaleEntriesWarning" in w]


def test_a_notebook_class_loaded_back_by_cloudpickle_keeps_its_keys(shell: Shell) -> None:
    """``cloudpickle.loads(cloudpickle.dumps(obj))`` in the notebook sets copies of the class's methods on the class
    (their code's file is then "<dynamic-code>", with no source): the same code, so the same keys."""
    shell.run("""
        import cloudpickle
        from notebook_memo import memo

        class Model:
            def __init__(self, w):
                self.w = w

            def scaled(self, x):
                return self.w * x

            @memo
            def predict(self, x):
                return self.scaled(x)

        @memo
        def total(model, xs):
            return sum(model.scaled(x) for x in xs)

        m = Model(3)
        first = [m.predict(1), total(m, [1, 2])]
        copied = cloudpickle.loads(cloudpickle.dumps(m))
    """)
    assert shell.run("Model.scaled.__code__.co_filename") == "<dynamic-code>"  # the class was changed in place
    assert shell.run("[m.predict(1), total(m, [1, 2]), Model.predict.hits, total.hits]") == [3, 9, 1, 1]
    assert shell.run("[copied.predict(1), Model.predict.hits]") == [3, 2]
