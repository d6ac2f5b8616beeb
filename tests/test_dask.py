"""Memoized functions on a Dask cluster: a real ``LocalCluster`` with worker processes, driven from
notebooks that a real Jupyter kernel runs (nbclient), and the remote tier shared by the workers.

The remote here is a shared directory: processes on one machine stand in for a cluster's machines.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import nbformat

from notebook_memo._demo import run_notebook

_SETUP = """
import os
import notebook_memo
from notebook_memo import memo
from dask.distributed import Client, LocalCluster
import dask
notebook_memo.configure({configure})
LOG = {log!r}

def start_cluster():
    cluster = LocalCluster(n_workers=2, threads_per_worker=2, processes=True, dashboard_address=None)
    return cluster, Client(cluster)
"""

_FUNCTION = """
@memo
def featurize(i):
    with open(LOG, "a") as fh:
        fh.write(f"{i} {os.getpid()}\\n")
    return {"i": i, "square": i * i, "scaled": [i * SCALE] * 3}

SCALE = 0.5
"""

_MAP_TWICE = """
cluster, client = start_cluster()
first = client.gather(client.map(featurize, range(20)))
client.close(); cluster.close()
cluster, client = start_cluster()  # a restarted cluster: new worker processes
second = client.gather(client.map(featurize, range(20)))
client.close(); cluster.close()
assert first == second == [{"i": i, "square": i * i, "scaled": [i * SCALE] * 3} for i in range(20)]
print("ok", len(first))
"""


def _run(cells: list[str], folder: Path, cache: Path) -> Any:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(textwrap.dedent(c)) for c in cells])
    run = run_notebook(notebook, folder, cache, 300)
    for cell in run.notebook.cells:
        for output in cell.get("outputs", []):
            assert output.get("output_type") != "error", f"{output.get('ename')}: {output.get('evalue')}"
    return run.notebook


def _computed(log: Path) -> list[int]:
    return sorted(int(line.split()[0]) for line in log.read_text().splitlines()) if log.exists() else []


def test_a_cluster_map_run_twice_across_two_cluster_restarts_computes_each_item_once(tmp_path: Path) -> None:
    log = tmp_path / "log"
    cells = [_SETUP.format(configure="", log=str(log)), _FUNCTION, _MAP_TWICE]
    _run(cells, tmp_path, tmp_path / "cache")
    assert _computed(log) == list(range(20))  # the second map, on new workers, computed nothing
    workers = {line.split()[1] for line in log.read_text().splitlines()}
    assert len(workers) >= 2  # computed by the worker processes, not the kernel
    _run(cells, tmp_path, tmp_path / "cache")  # a new kernel, two more clusters
    assert _computed(log) == list(range(20))


def test_workers_share_results_through_the_remote_tier(tmp_path: Path) -> None:
    """A second notebook run on another 'machine' (a new local directory) computes nothing: the
    workers of the first published to the remote the notebook configured, which they were not told of
    otherwise (it travels with the pickled function)."""
    log = tmp_path / "log"
    remote = (tmp_path / "team").as_uri()
    cells = [_SETUP.format(configure=f"remote={remote!r}", log=str(log)), _FUNCTION, _MAP_TWICE]
    _run(cells, tmp_path, tmp_path / "laptop")
    assert _computed(log) == list(range(20))
    _run(cells, tmp_path, tmp_path / "other-machine")
    assert _computed(log) == list(range(20))
    assert sum(1 for _ in (tmp_path / "team" / "m").rglob("*") if _.is_file()) == 20


def test_an_edit_in_the_notebook_reaches_the_workers_keys(tmp_path: Path) -> None:
    log = tmp_path / "log"
    edited = _FUNCTION.replace("SCALE = 0.5", "SCALE = 2.0")
    cells = [_SETUP.format(configure="", log=str(log)), _FUNCTION, _MAP_TWICE]
    _run(cells, tmp_path, tmp_path / "cache")
    _run([cells[0], edited, _MAP_TWICE], tmp_path, tmp_path / "cache")
    assert _computed(log) == sorted(list(range(20)) * 2)  # a global the body reads changed: all again


def test_submit_delayed_and_one_key_asked_by_many_tasks_at_once(tmp_path: Path) -> None:
    log = tmp_path / "log"
    cells = [_SETUP.format(configure="", log=str(log)), """
    import time

    @memo
    def slow(i):
        with open(LOG, "a") as fh:
            fh.write(f"{i} {os.getpid()}\\n")
        time.sleep(1.0)
        return i + 100

    cluster, client = start_cluster()
    # Eight tasks for one key (pure=False: Dask runs each), on four worker threads in two processes.
    same = client.gather([client.submit(slow, 7, pure=False) for _ in range(8)])
    delayed_values = dask.compute(*[dask.delayed(slow)(i) for i in range(3)])
    client.close(); cluster.close()
    assert same == [107] * 8 and list(delayed_values) == [100, 101, 102]
    """]
    _run(cells, tmp_path, tmp_path / "cache")
    assert _computed(log) == [0, 1, 2, 7]


def test_a_frameworks_draws_on_another_thread_do_not_tie_an_entry_to_the_random_state(counter: Any) -> None:
    """Dask's sizeof samples each task's result from the global ``random`` on a worker's event loop while
    other tasks' bodies run: a body's entry must not depend on those draws (a miss on every other worker)."""
    import random
    import threading
    import time

    from dask.sizeof import sizeof

    from notebook_memo import memo

    stop = threading.Event()

    def event_loop() -> None:
        while not stop.is_set():
            sizeof(list(range(1000)))  # samples the list through random.sample
            time.sleep(0.001)

    @memo
    def body(x: int, counter: Any) -> int:
        counter()
        time.sleep(0.2)
        return x

    loop = threading.Thread(target=event_loop)
    loop.start()
    try:
        body(1, counter)
    finally:
        stop.set()
        loop.join()
    random.random()  # the user's own draw between the calls
    assert body(1, counter) == 1
    assert counter.n == 1
