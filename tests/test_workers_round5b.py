"""Workers, round five (b): a worker that defines a function of the same name and code as the one it is sent
runs its own only when the rest of the definition is the sender's too (defaults, keyword defaults, the
decorator's options and version); a worker forked before the notebook redefined the function otherwise runs
the copy it was sent, so it never answers with the old definition's entries."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, Shell


def test_a_forked_worker_does_not_run_its_older_function_whose_ignore_differs(shell: Shell) -> None:
    """``scale`` was ignored when the pool was forked; the notebook's ``f`` keys it now, and so must the worker."""
    shell.run("""
        import multiprocessing
        from notebook_memo import memo
        @memo(ignore=["scale"])
        def f(x, scale):
            return x * scale
        first = f(1, 2)
        pool = multiprocessing.get_context("fork").Pool(1)
    """)
    shell.run("""
        @memo
        def f(x, scale):
            return x * scale
        try:
            sent = pool.apply(f, (1, 3))
        finally:
            pool.close()
            pool.join()
    """)
    assert shell["first"] == 2
    assert shell["sent"] == 3
    assert shell.run("f(1, 3), f.last_hit") == (3, True)  # the worker stored under the notebook's key


@pytest.mark.parametrize(("before", "after"), [("x, k=2", "x, k=3"), ("x, *, k=2", "x, *, k=3")])
def test_a_forked_worker_does_not_run_its_older_function_whose_default_differs(shell: Shell, before: str,
                                                                             after: str) -> None:
    shell.run(f"""
        import multiprocessing
        from notebook_memo import memo
        @memo(version=1)
        def f({before}):
            return x * k
        first = f(1)
        pool = multiprocessing.get_context("fork").Pool(1)
    """)
    shell.run(f"""
        @memo(version=1)
        def f({after}):
            return x * k
        try:
            sent = pool.apply(f, (1,))
        finally:
            pool.close()
            pool.join()
    """)
    assert shell["first"] == 2
    assert shell["sent"] == 3


def test_a_forked_worker_does_not_run_its_older_function_of_another_version(shell: Shell, tmp_path: Path) -> None:
    """The version was bumped because something the body reads untracked changed: the worker must not serve the
    entry of version 1 (its body runs), and it stores where the notebook's version 2 finds it."""
    log = tmp_path / "body.log"
    shell.run(f"""
        import multiprocessing
        from notebook_memo import memo
        @memo(version=1)
        def f(x):
            with open({str(log)!r}, "a") as fh:
                fh.write(f"{{x}}\\n")
            return x
        f(1)
        pool = multiprocessing.get_context("fork").Pool(1)
    """)
    shell.run(f"""
        @memo(version=2)
        def f(x):
            with open({str(log)!r}, "a") as fh:
                fh.write(f"{{x}}\\n")
            return x
        try:
            sent = pool.apply(f, (1,))
        finally:
            pool.close()
            pool.join()
    """)
    assert log.read_text().splitlines() == ["1", "1"]
    assert shell.run("f(1), f.last_hit") == (1, True)


def test_a_forked_worker_still_runs_its_own_function_with_the_same_options_on_its_globals(shell: Shell) -> None:
    """The same definition (options, defaults, a ``skip_if``) sent again: the worker's own function runs, reading
    the SCALE its initializer set, as the plain function would."""
    shell.run("""
        import multiprocessing
        from notebook_memo import memo
        SCALE = 1
        def init():
            global SCALE
            SCALE = 100
        @memo(ignore=["note"], version="v3", ttl=3600, skip_if=lambda result: result < 0)
        def f(x, k=2, *, note="n", extra=(1, 2)):
            return x * k * SCALE
        with multiprocessing.get_context("fork").Pool(1, initializer=init) as pool:
            sent = pool.map(f, [1, 2])
    """)
    assert shell["sent"] == [200, 400]
    assert shell.run("f(1)") == 2


SPAWNED_SCRIPT = """
import multiprocessing, sys
from notebook_memo import memo

SCALE = 1

def init():
    global SCALE
    SCALE = 100

def negative(result):
    return result < 0

@memo(ignore=["note"], version="v3", skip_if=negative)
def f(x, k=2, *, note="n"):
    return x * k * SCALE

if __name__ == "__main__":
    with multiprocessing.get_context(sys.argv[1]).Pool(1, initializer=init) as pool:
        print("worker", *pool.map(f, [1, 2]))
    print("here", f(1), f(2))
"""


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_script_function_with_options_still_runs_live_in_its_workers(tmp_path: Path, method: str) -> None:
    """A spawned worker imports the script as ``__mp_main__``: its function's options and defaults are the
    sender's, so it runs its own, on the globals the initializer set."""
    script = tmp_path / "script.py"
    script.write_text(SPAWNED_SCRIPT)
    env = {**os.environ, "NOTEBOOK_MEMO_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(script), method], capture_output=True, text=True, env=env,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["worker 200 400", "here 2 4"]
