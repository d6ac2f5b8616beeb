"""Process-wide state a body reads through the standard library or a value it is given, without naming a
variable: the hash seed (``hash()``), the decimal context reached through Decimal arguments and globals, the
environment variables that ``getpass``, ``tempfile``, ``shutil.which`` and ``os.get_exec_path`` read, NumPy's
floating-point error handling (``np.seterr``), and a torch generator seeded from the operating system's
entropy. Real shells, real processes restarted with other hash seeds, real environment variables."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_kernel

# -- the hash seed --------------------------------------------------------------------------------------------

HASHING_CELLS = ["""
import builtins
from notebook_memo import memo

def bucket(s):
    return hash(s) % 1000

@memo
def own(s):
    return hash(s) % 1000

@memo
def helper(s):
    return bucket(s)

@memo
def dunder(s):
    return s.__hash__() % 1000

@memo
def through_builtins(s):
    return builtins.hash(s) % 1000

@memo
def lookup(s):
    return {"abc": 1, "xyz": 2}[s]

fs = [own, helper, dunder, through_builtins]
OUT["got"] = [f("abc") for f in fs]
OUT["live"] = hash("abc") % 1000
OUT["lookup"] = lookup("abc")
OUT["hits"] = {f.__name__: f.cache_info().hits for f in [*fs, lookup]}
"""]


def test_hash_of_a_text_is_not_served_under_another_hash_seed(cache_dir: Path) -> None:
    first = run_kernel(HASHING_CELLS, cache_dir, seed=1)
    other = run_kernel(HASHING_CELLS, cache_dir, seed=2)
    assert first["live"] != other["live"]  # the two seeds do hash "abc" differently
    for out in (first, other):
        assert out["got"] == [out["live"]] * 4
    assert other["hits"] == {"own": 0, "helper": 0, "dunder": 0, "through_builtins": 0, "lookup": 1}
    # Under a fixed seed (PYTHONHASHSEED set), a restart hits.
    again = run_kernel(HASHING_CELLS, cache_dir, seed=2)
    assert again["got"] == other["got"]
    assert again["hits"] == {"own": 1, "helper": 1, "dunder": 1, "through_builtins": 1, "lookup": 1}
