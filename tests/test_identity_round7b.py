"""The library's own wrappers and the identity of a process: the functions notebook_memo wraps once a memoized call
runs (``random.seed``, ``os.urandom``, ``os.readlink``...) still pickle by reference and reach a spawned worker as the
worker's own function; a class whose method mentions the process id still hits after a restart; process and thread
ids read by other routes are noted as read (keyed by that, not by their values, with a warning); a
``functools.partial`` of a seeding or entropy function bound before the wrap is handled as the function itself."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import ROOT, run_kernel

# A script that makes one memoized call (which wraps the library's functions), then checks that each wrapper
# pickles (protocol 5 and cloudpickle) back to itself, and that a spawned pool gets the worker's own functions.
_PICKLED_WRAPPERS = """
import concurrent.futures, functools, linecache, os, pathlib, pickle, random, ssl, sys
import multiprocessing as mp
import cloudpickle, numpy as np, torch
from notebook_memo import memo

PLACES = ["random.seed", "random.setstate", "random.getstate", "random._urandom", "random.Random.seed",
          "np.random.seed", "np.random.set_state", "np.random.get_state", "os.urandom", "os.getrandom",
          "ssl.RAND_bytes", "os.readlink", "os.path.realpath", "os.path.islink", "os.path.samefile",
          "pathlib.Path.samefile", "pathlib.Path.is_symlink", "functools.cached_property.__get__",
          "linecache.getlines", "os.read", "os.readv", "os.pread", "os.preadv", "torch.manual_seed",
          "torch.random.manual_seed", "torch.seed", "torch.set_rng_state", "torch.get_rng_state",
          "torch.from_file", "torch.UntypedStorage.from_file"]


def same_as_here(pairs):
    # In the worker, each function unpickled is the one at its place there (no memoized call ran in the worker).
    return [place for place, fn in pairs if fn != eval(place)]


@memo
def warm(token):
    return len(token)


if __name__ == "__main__":
    before = {place: eval(place) for place in PLACES}
    warm(f"{os.getpid()}")
    wrapped = [place for place in PLACES if eval(place) is not before[place]]
    assert len(wrapped) == len(PLACES), sorted(set(PLACES) - set(wrapped))
    for place in PLACES:
        fn = eval(place)
        for name, dumps, loads in (("pickle", lambda f: pickle.dumps(f, protocol=5), pickle.loads),
                                   ("cloudpickle", cloudpickle.dumps, cloudpickle.loads)):
            try:
                back = loads(dumps(fn))
            except Exception as exc:
                print("FAIL", name, place, type(exc).__name__, exc)
                continue
            if back is not fn:
                print("FAIL", name, place, "came back as", back)
    spawn = mp.get_context("spawn")
    with spawn.Pool(1, initializer=random.seed, initargs=(0,)) as pool:
        print("initializer", pool.apply(int, (7,)))
        print("elsewhere", pool.apply(same_as_here, ([(place, eval(place)) for place in PLACES],)))
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as executor:
        print("urandom", len(executor.submit(os.urandom, 4).result()))
"""


def test_the_wrapped_functions_pickle_and_reach_a_spawned_worker(tmp_path: Path) -> None:
    script = tmp_path / "pool.py"
    script.write_text(textwrap.dedent(_PICKLED_WRAPPERS))
    env = {**os.environ, "NOTEBOOK_MEMO_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300,
                          cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert [line for line in lines if line.startswith("FAIL")] == []
    assert "initializer 7" in lines
    assert "elsewhere []" in lines
    assert "urandom 4" in lines


# A notebook class with a fork check that reads the process id (as connection pools do), never called by the
# memoized code; ``tagged`` calls a member that calls another that reads the process id, through ``self``.
_FORK_CHECKED = """
import os
from notebook_memo import memo

class Store:
    def __init__(self):
        self._pid = None

    def _reconnect_if_forked(self):
        if self._pid != os.getpid():
            self._pid = os.getpid()

    def tag(self):
        return self._owner()

    def _owner(self):
        return os.getpid()

    def salted(self):
        return self._salt()

    def _salt(self):
        return hash("salt") % 1000003

    @memo
    def square(self, x):
        return x * x

    @memo
    def owner(self):
        return self.tag()

@memo
def size_of(store, n):
    return n * 2

@memo
def tagged(store):
    return store.tag()

@memo
def salted(store):
    return store.salted()

s = Store()
for name, call in (("square", lambda: s.square(3)), ("size_of", lambda: size_of(s, 4)),
                   ("tagged", lambda: tagged(s)), ("salted", lambda: salted(s)), ("owner", lambda: s.owner())):
    OUT[name] = call()
    OUT[name + " hit"] = (getattr(Store, name) if name in ("square", "owner") else globals()[name]).last_hit
OUT["pid"] = os.getpid()
OUT["salt"] = s._salt()
"""


def test_a_member_that_reads_the_process_id_is_keyed_only_where_the_code_reaches_it(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = run_kernel([_FORK_CHECKED], cache, seed=1)
    second = run_kernel([_FORK_CHECKED], cache, seed=2)
    assert not first["square hit"] and not first["size_of hit"]
    # The fork check is never called: a restarted kernel hits.
    assert second["square hit"], second
    assert second["size_of hit"], second
    # A member reached through another one the body calls (store.tag() calls self._owner()) is read: the hash seed
    # it reads is keyed by its value; the process id by being read (served, as the clock is), with a warning.
    assert second["salted"] == second["salt"]
    assert second["tagged"] == second["owner"] == first["pid"] != second["pid"]
    said = " ".join(second["_warnings"])
    assert "tagged reads its process id" in said and "owner reads its process id" in said, said


# Each body returns something that names its process or thread, read by a route other than os.getpid().
_IDS = """
import multiprocessing, os, pathlib, threading
from notebook_memo import memo

@memo
def thread_ident():
    return threading.current_thread().ident

@memo
def thread_native():
    return threading.current_thread().native_id

@memo
def main_native():
    return threading.main_thread().native_id

@memo
def process_pid():
    return multiprocessing.current_process().pid

@memo
def process_group():
    return os.getpgrp()

@memo
def proc_link():
    return os.readlink("/proc/self")

@memo
def proc_stat():
    with open("/proc/self/stat") as fh:
        return int(fh.read().split()[0])

@memo
def proc_resolved():
    return pathlib.Path("/proc/self").resolve().name

@memo
def proc_thread():
    return os.readlink("/proc/thread-self")

LIVE = {"thread_ident": threading.get_ident(), "thread_native": threading.get_native_id(),
        "main_native": os.getpid(), "process_pid": os.getpid(), "process_group": os.getpgrp(),
        "proc_link": str(os.getpid()), "proc_stat": os.getpid(), "proc_resolved": str(os.getpid()),
        "proc_thread": f"{os.getpid()}/task/{threading.get_native_id()}"}
OUT["served"] = {name: globals()[name]() for name in LIVE}
OUT["live"] = LIVE
"""

# The machine's name read from the file the kernel keeps it in; the second kernel plays another machine.
_HOST_FILE = """
from notebook_memo import memo, _dependencies

if ELSEWHERE:
    _dependencies._host_name = lambda: "another-machine"

@memo
def host():
    with open("/proc/sys/kernel/hostname") as fh:
        return fh.read().strip()

host()
OUT["hit"] = host.last_hit
"""


def test_process_and_thread_ids_read_by_other_routes_are_noted_as_read(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = run_kernel([_IDS], cache, seed=1)
    assert first["served"] == first["live"]
    said = " ".join(first["_warnings"])
    for name in first["live"]:  # each route is seen as reading an id: one warning per function
        assert f"{name} reads its " in said, (name, said)
    second = run_kernel([_IDS], cache, seed=2)
    assert second["served"] == first["live"]  # keyed by being read, not by the values: served


def test_the_host_name_read_from_proc_is_keyed(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert not run_kernel(["ELSEWHERE = False", _HOST_FILE], cache, seed=1)["hit"]
    assert run_kernel(["ELSEWHERE = False", _HOST_FILE], cache, seed=2)["hit"]  # the same machine: served
    assert not run_kernel(["ELSEWHERE = True", _HOST_FILE], cache, seed=3)["hit"]


# Partials of the operating system's randomness and of a link reader, bound before any memoized call ran (so they
# hold the functions as they were before notebook_memo wrapped them), and one partial of another.
_PARTIALS = """
import functools, os
from os import readlink, urandom
from notebook_memo import memo

token_bytes = functools.partial(urandom, 16)
short_token = functools.partial(functools.partial(urandom), 4)
where = functools.partial(readlink, "link")

@memo
def make_token():
    return token_bytes().hex()

@memo
def make_short():
    return short_token().hex()

@memo
def target():
    return where()

os.symlink("a", "link")
make_token(), make_short(), target()
"""


def test_a_partial_of_a_function_bound_before_the_wrap_is_noted_as_the_function(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    out = run_kernel([_PARTIALS], cache, seed=1)
    warned = "\n".join(out["_warnings"])
    for owner in ("make_token", "make_short"):
        assert f"{owner} takes randomness from the operating system (os.urandom, bound by name before" in warned, warned
    assert "it reads where a link leads through readlink, bound by name before" in warned, warned


# The same class held by a global the memoized code reads, rather than passed to it.
_GLOBAL_STORE = _FORK_CHECKED.split("    @memo\n    def square")[0] + """
store = Store()

@memo
def rows():
    return 3 * 2

@memo
def reads_rows():
    return store._pid, rows()

@memo
def owner_of_global():
    return store.tag()

for fn in (reads_rows, owner_of_global):
    OUT[fn.__name__] = fn()
    OUT[fn.__name__ + " hit"] = fn.last_hit
OUT["pid"] = os.getpid()
"""


def test_a_global_instance_whose_class_reads_the_process_id_is_keyed_only_where_the_code_reaches_it(
        tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = run_kernel([_GLOBAL_STORE], cache, seed=1)
    second = run_kernel([_GLOBAL_STORE], cache, seed=2)
    assert not first["reads_rows hit"]
    assert second["reads_rows hit"], second  # the fork check is never called
    assert second["owner_of_global hit"] and second["owner_of_global"] == first["pid"]  # the id: noted, not keyed
