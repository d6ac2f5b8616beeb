"""Memoized functions travel to worker processes: joblib, multiprocessing, concurrent.futures, copy."""

from __future__ import annotations

import concurrent.futures
import copy
import importlib
import multiprocessing
import os
import pickle
import sys
import textwrap
import warnings
from pathlib import Path
from types import ModuleType

import pytest

from notebook_memo import StaleEntriesWarning, memo
from tests.conftest import ROOT, Shell, run_kernel

MODULE = """
import os, time
from notebook_memo import memo

LOG = os.environ["WORKERS_LOG"]


def _log(text):
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, text.encode())
    os.close(fd)


@memo
def cube(x):
    _log(f"cube {x}\\n")
    return x ** 3


@memo(ignore=["seconds"])
def slow(x, seconds=0.0):
    _log(f"slow {x}\\n")
    time.sleep(seconds)
    return x + 1


class Model:
    def __init__(self, factor):
        self.factor = factor

    @memo
    def predict(self, x):
        _log(f"predict {x}\\n")
        return self.factor * x


class Scaler:
    def __init__(self, k):
        self.k = k

    @memo.per_instance
    def times(self, x):
        return self.k * x


@memo.batch("xs", batch_size=2)
def doubles(xs):
    _log("".join(f"doubles {x}\\n" for x in xs))
    return [2 * x for x in xs]
"""


def _runs(log: Path, kind: str) -> list[str]:
    if not log.exists():
        return []
    return [line for line in log.read_text().splitlines() if line.startswith(kind + " ")]


@pytest.fixture
def tasks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> ModuleType:
    """A module of memoized functions, importable here and in spawned workers."""
    name = f"workers_{request.node.name.replace('[', '_').replace(']', '_')}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.setenv("WORKERS_LOG", str(tmp_path / "log.txt"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.syspath_prepend(str(tmp_path))
    # An in-process IPython shell of an earlier test leaves a __main__ that spawn cannot describe.
    monkeypatch.setitem(sys.modules, "__main__", ModuleType("__main__"))
    module = importlib.import_module(name)
    module.LOG_PATH = tmp_path / "log.txt"  # type: ignore[attr-defined]
    return module


def test_joblib_workers_of_a_notebook_share_its_keys_and_directory(tmp_path: Path) -> None:
    configured = tmp_path / "configured"
    log = tmp_path / "body.log"
    out = run_kernel([
        f"""
        import notebook_memo
        from notebook_memo import memo
        from joblib import Parallel, delayed
        notebook_memo.configure(cache_dir={str(configured)!r})
        LOG = {str(log)!r}
        OFFSET = 10
        """,
        """
        def shift(x):
            return x + OFFSET

        @memo
        def square(x):
            with open(LOG, "a") as fh:
                fh.write(f"{x}\\n")
            return shift(x) ** 2
        """,
        """
        OUT["parallel"] = Parallel(n_jobs=2, backend="loky")(delayed(square)(x) for x in range(6))
        OUT["again"] = [square(x) for x in range(6)]
        OUT["hits"] = square.hits
        OUT["method"] = square.last_call.method
        """,
    ], tmp_path / "cache")
    expected = [(x + 10) ** 2 for x in range(6)]
    assert out["parallel"] == expected
    assert out["again"] == expected
    assert out["method"] == "source"  # the notebook keyed by source; the workers had none
    assert out["hits"] == 6
    assert sorted(log.read_text().split()) == [str(x) for x in range(6)]
    assert configured.is_dir()


def test_spawned_process_pool_runs_a_module_function_once_per_key(tasks: ModuleType) -> None:
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as pool:
        results = list(pool.map(tasks.cube, range(5)))
    assert results == [x ** 3 for x in range(5)]
    assert [tasks.cube(x) for x in range(5)] == results
    assert tasks.cube.hits == 5
    assert len(_runs(tasks.LOG_PATH, "cube")) == 5


def test_spawned_workers_calling_one_key_at_once_compute_it_once(tasks: ModuleType) -> None:
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(3, mp_context=context) as pool:
        futures = [pool.submit(tasks.slow, 7, seconds=1.0) for _ in range(3)]
        results = [f.result() for f in futures]
    assert results == [8, 8, 8]
    assert len(_runs(tasks.LOG_PATH, "slow")) == 1


def test_forked_pool_runs_a_module_function(tasks: ModuleType) -> None:
    with multiprocessing.get_context("fork").Pool(2) as pool:
        results = pool.map(tasks.cube, range(4))
    assert results == [x ** 3 for x in range(4)]
    assert [tasks.cube(x) for x in range(4)] == results
    assert tasks.cube.hits == 4


def test_memoized_method_runs_in_a_spawned_worker(tasks: ModuleType) -> None:
    model = tasks.Model(3)
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        assert pool.submit(model.predict, 5).result() == 15
    assert model.predict(5) == 15
    assert tasks.Model.predict.hits == 1
    assert len(_runs(tasks.LOG_PATH, "predict")) == 1


def test_a_per_instance_method_goes_to_a_spawned_worker(tasks: ModuleType) -> None:
    scaler = tasks.Scaler(3)
    assert pickle.loads(pickle.dumps(scaler.times))(2) == 6
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        assert list(pool.map(scaler.times, [1, 2])) == [3, 6]


def test_batch_function_runs_in_a_spawned_worker(tasks: ModuleType) -> None:
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        assert pool.submit(tasks.doubles, [1, 2, 3]).result() == [2, 4, 6]
    assert tasks.doubles([1, 2, 3, 4]) == [2, 4, 6, 8]
    assert _runs(tasks.LOG_PATH, "doubles") == ["doubles 1", "doubles 2", "doubles 3", "doubles 4"]


def test_deepcopy_of_a_memoized_function_shares_its_keys() -> None:
    @memo
    def halve(x: int) -> float:
        return x / 2

    assert halve(8) == 4
    twin = copy.deepcopy(halve)
    shallow = copy.copy(halve)
    assert twin(8) == 4 and shallow(8) == 4
    assert twin.make_call((8,), {}).key == halve.make_call((8,), {}).key
    assert twin.is_cached(8)


def test_notebook_function_pickled_by_value_keeps_the_notebook_key(shell: Shell) -> None:
    shell.run("""
        from notebook_memo import memo
        K = 3

        @memo(ttl=60, version=2)
        def scale(x):
            return x * K
        """)
    original = shell["scale"]
    assert original(2) == 6
    assert pickle.loads(pickle.dumps(original)) is original  # defined here: the live one, as a plain function
    data = pickle.dumps(original)
    shell.run("del scale")  # as a worker that does not define it receives it: the copy
    clone = pickle.loads(data)
    assert clone is not original
    assert clone.make_call((2,), {}).key == original.make_call((2,), {}).key
    assert clone(2) == 6 and clone.hits == 1


def test_deepcopy_of_a_notebook_method_is_usable(shell: Shell) -> None:
    shell.run("""
        from notebook_memo import memo

        class Box:
            def __init__(self, n):
                self.n = n

            @memo
            def total(self, x):
                return self.n + x
        """)
    box = shell["Box"](1)
    assert copy.deepcopy(box.total)(2) == 3
    assert pickle.loads(pickle.dumps(box.total))(2) == 3


def test_a_global_changed_after_arrival_is_keyed_by_the_receiver(shell: Shell) -> None:
    shell.run("""
        from notebook_memo import memo
        K = 3

        @memo
        def scale(x):
            return x * K
        """)
    original = shell["scale"]
    data = pickle.dumps(original)
    shell.run("del scale")  # as a worker that does not define it receives it: the copy
    clone = pickle.loads(data)
    assert clone.make_call((2,), {}).key == original.make_call((2,), {}).key
    clone.__wrapped__.__globals__["K"] = 5
    assert clone.make_call((2,), {}).key != original.make_call((2,), {}).key
    assert original(2) == 6
    # The same code (its copy keeps the source's digest in this process): the entry of K = 3 is not stale.
    with warnings.catch_warnings():
        warnings.simplefilter("error", StaleEntriesWarning)
        assert clone(2) == 10
    assert original(2) == 6 and original.last_hit


def test_function_values_of_a_notebook_keep_their_keys_in_workers(tmp_path: Path) -> None:
    """A default, an argument and an instance that are notebook code key alike in workers."""
    log = tmp_path / "body.log"
    out = run_kernel([
        f"""
        from notebook_memo import memo
        from joblib import Parallel, delayed
        LOG = {str(log)!r}
        OFFSET = 10
        """,
        """
        def shift(x):
            return x + OFFSET

        class Scaler:
            def __init__(self, k):
                self.k = k
            def __call__(self, x):
                return shift(x) * self.k

        @memo
        def with_default(x, fn=shift):
            with open(LOG, "a") as fh:
                fh.write(f"default {x}\\n")
            return fn(x)

        @memo
        def apply(fn, x):
            with open(LOG, "a") as fh:
                fh.write(f"apply {x}\\n")
            return fn(x)
        """,
        """
        OUT["here"] = [with_default(1), apply(shift, 2), apply(Scaler(3), 3), apply(lambda v: v - OFFSET, 4)]
        OUT["there"] = Parallel(n_jobs=2, backend="loky")(
            [delayed(with_default)(1), delayed(apply)(shift, 2), delayed(apply)(Scaler(3), 3),
             delayed(apply)(lambda v: v - OFFSET, 4)])
        """,
    ], tmp_path / "cache")
    assert out["there"] == out["here"] == [11, 12, 39, -6]
    assert sorted(log.read_text().splitlines()) == ["apply 2", "apply 3", "apply 4", "default 1"]


def test_a_memoized_method_of_a_notebook_object_goes_to_spawned_workers(tmp_path: Path) -> None:
    """Plain pickle (spawn) cannot name a notebook class: the object travels by value."""
    log = tmp_path / "body.log"
    out = run_kernel([
        f"""
        import concurrent.futures, multiprocessing
        from notebook_memo import memo
        LOG = {str(log)!r}
        """,
        """
        class Model:
            def __init__(self, w):
                self.w = w

            @memo
            def predict(self, x):
                with open(LOG, "a") as fh:
                    fh.write(f"predict {x}\\n")
                return self.w * x
        m = Model(4)
        """,
        """
        OUT["here"] = m.predict(3)
        with concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
            OUT["there"] = [pool.submit(m.predict, 3).result(), pool.submit(m.predict, 5).result()]
        OUT["again"] = m.predict(5)
        OUT["hits"] = Model.predict.hits
        """,
    ], tmp_path / "cache")
    assert (out["here"], out["there"], out["again"], out["hits"]) == (12, [12, 20], 20, 1)
    assert sorted(log.read_text().splitlines()) == ["predict 3", "predict 5"]


def test_workers_publish_to_the_remote_their_sender_configured(tasks: ModuleType, tmp_path: Path) -> None:
    """The remote set by configure() in the parent is not in the workers' environment: it travels with
    the function (by reference for a module's function), and so does the batch function's."""
    from notebook_memo import configure

    team = tmp_path / "team"
    configure(remote=team.as_uri())
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as pool:
        assert list(pool.map(tasks.cube, range(4))) == [x ** 3 for x in range(4)]
        assert pool.submit(tasks.doubles, [1, 2, 3]).result() == [2, 4, 6]
    configure(cache_dir=str(tmp_path / "another-machine"))
    assert [tasks.cube(x) for x in range(4)] == [x ** 3 for x in range(4)]
    assert tasks.doubles([1, 2, 3]) == [2, 4, 6]
    assert len(_runs(tasks.LOG_PATH, "cube")) == 4  # the new machine computed nothing
    assert len(_runs(tasks.LOG_PATH, "doubles")) == 3
    assert len(list((team / "m").rglob("*"))) > 4


def test_a_function_sent_without_a_remote_ignores_the_workers_environment(tasks: ModuleType, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The notebook decides: its function stores where it stores, whatever a worker's variables say."""
    from notebook_memo import configure

    configure(remote=False)
    monkeypatch.setenv("NOTEBOOK_MEMO_REMOTE", (tmp_path / "elsewhere").as_uri())  # the workers inherit it
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as pool:
        assert list(pool.map(tasks.cube, range(3))) == [0, 1, 8]
    assert not (tmp_path / "elsewhere" / "m").exists()


WORKER_READS_OTHER_VALUES = """
import multiprocessing, os, sys
from concurrent.futures import ProcessPoolExecutor
sys.path.insert(0, {folder!r})
from notebook_memo import memo
import settings_module

@memo(cache_dir={cache!r})
def scaled(x):
    return (x * settings_module.FACTOR, os.environ.get("NBM_MODE"))

def as_worker():
    os.environ["NBM_MODE"] = "worker"

if __name__ == "__main__":
    settings_module.FACTOR = 100  # a worker imports the module afresh: it reads 1
    os.environ["NBM_MODE"] = "parent"
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context, initializer=as_worker) as pool:
        print("worker", pool.submit(scaled, 1).result())
    print("parent", scaled(1), scaled.uncached(1))
"""


def test_a_worker_that_reads_other_values_than_its_sender_keys_by_its_own(tmp_path: Path) -> None:
    """A function sent by value keys by its sender's code state only while the worker reads what the sender
    read: an environment variable or a user module's global that differs there makes its own key."""
    import subprocess

    (tmp_path / "settings_module.py").write_text("FACTOR = 1\n")
    script = tmp_path / "notebook.py"
    script.write_text(WORKER_READS_OTHER_VALUES.format(folder=str(tmp_path), cache=str(tmp_path / "cache")))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "worker (1, 'worker')"
    assert lines[1] == "parent (100, 'parent') (100, 'parent')"


SCRIPT_CALLED_IN_WORKERS = """
import multiprocessing, os, sys
from notebook_memo import memo

class Settings:
    def __init__(self, factor):
        self.factor = factor

@memo(cache_dir={cache!r})
def scaled(settings, x):
    return (settings.factor * x, os.getpid())

def work(x):
    return scaled(Settings(3), x), scaled.last_hit

if __name__ == "__main__":
    first = scaled(Settings(3), 1)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        (value, hit), = pool.map(work, [1])
        (fresh, _), = pool.map(work, [2])
    print(value == first, hit, scaled(Settings(3), 2) == fresh, scaled.last_hit)
"""


def test_a_script_s_function_and_classes_key_alike_in_its_spawned_workers(tmp_path: Path) -> None:
    """Spawned workers import a script's __main__ as __mp_main__: the same code, the same keys."""
    import subprocess

    script = tmp_path / "script.py"
    script.write_text(SCRIPT_CALLED_IN_WORKERS.format(cache=str(tmp_path / "cache")))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True", "True", "True"]
