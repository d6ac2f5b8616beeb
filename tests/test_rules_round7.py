"""The rules digest and what is made beside it: a pandas GroupBy whose filled cache is stale keyed by that cache,
the library digest of a copy imported from a zip, folders made under a world-writable sticky remote root, and
the stale notice naming entries another version of notebook_memo made."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, Shell, run_kernel
from tests.test_identity_round7 import _package_copy, _session
from tests.test_remote_round7 import ALICE, BOB, _kernel

# -- a pandas GroupBy whose cache, filled by a first aggregation, is stale -------------------------------------

_GROUPBY = """
import numpy as np, pandas as pd
from notebook_memo import memo
@memo
def totals(g):
    return g["v"].sum().to_dict()
"""
# The frame is made without a copy of the key column's array, a first aggregation fills the GroupBy's cache (the
# codes of 1 1 2 2), and the array is then changed in place: pandas serves the stale codes from that cache.
_STALE = """
keys = np.array([1, 1, 2, 2])
df = pd.DataFrame({"k": keys, "v": [1, 2, 3, 4]}, copy=False)
g = df.groupby("k")
g["v"].sum()
keys[:] = [1, 2, 2, 2]
"""


def test_a_groupby_with_a_stale_cache_does_not_serve_a_restarted_kernel_with_fresh_data(cache_dir: Path) -> None:
    first = run_kernel([_GROUPBY, _STALE, "OUT['got'] = totals(g); OUT['hit'] = totals.last_hit"], cache_dir, seed=1)
    assert (first["got"], first["hit"]) == ({"1": 3, "2": 7}, False), first  # what the body makes of it
    fresh = """
        df = pd.DataFrame({"k": np.array([1, 2, 2, 2]), "v": [1, 2, 3, 4]})
        g = df.groupby("k")
        OUT['got'] = totals(g); OUT['hit'] = totals.last_hit
    """
    second = run_kernel([_GROUPBY, fresh], cache_dir, seed=2)
    assert (second["got"], second["hit"]) == ({"1": 1, "2": 9}, False), second


@pytest.mark.parametrize("grouped", ['df.groupby("k")', 'df.groupby("k")["v"]', 'df["v"].groupby(df["k"])'])
def test_a_groupby_keyed_with_its_filled_cache_tells_stale_from_fresh(shell: Shell, grouped: str) -> None:
    shell.run(f"""
        import numpy as np, pandas as pd
        from notebook_memo import memo
        @memo
        def totals(g):
            return g.sum().to_dict()
        keys = np.array([1, 1, 2, 2])
        df = pd.DataFrame({{"k": keys, "v": [1, 2, 3, 4]}}, copy=False)
        g = {grouped}
        g.sum()
        keys[:] = [1, 2, 2, 2]
        stale = totals(g)
        again = totals(g)
        fresh = totals({grouped})
        expected = {grouped}.sum().to_dict()
        info = totals.cache_info()
    """)
    assert shell["stale"] == shell["again"] != shell["expected"]  # what the body makes of the stale cache; a hit
    assert shell["fresh"] == shell["expected"]
    assert (shell["info"].hits, shell["info"].misses) == (1, 2)



def test_a_global_groupby_with_a_stale_cache_is_keyed_by_it_and_one_the_body_fills_is_stored(shell: Shell) -> None:
    shell.run("""
        import warnings
        import numpy as np, pandas as pd
        from notebook_memo import memo
        keys = np.array([1, 1, 2, 2])
        df = pd.DataFrame({"k": keys, "v": [1, 2, 3, 4]}, copy=False)
        G = df.groupby("k")
        G["v"].sum()
        keys[:] = [1, 2, 2, 2]
        @memo
        def totals():
            return G["v"].sum().to_dict()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            stale = totals()
            G = pd.DataFrame({"k": np.array([1, 2, 2, 2]), "v": [1, 2, 3, 4]}).groupby("k")
            fresh = [totals(), totals(), totals()]
            hit = totals.last_hit
        said = [str(w.message) for w in caught]
    """)
    assert shell["stale"] == {1: 3, 2: 7}
    assert shell["fresh"] == [{1: 1, 2: 9}] * 3 and shell["hit"] is True
    assert not [w for w in shell["said"] if "in place" in w], shell["said"]  # filling G's cache is no change


def test_a_batch_item_groupby_with_a_stale_cache_is_keyed_by_it(shell: Shell) -> None:
    shell.run("""
        import warnings
        import numpy as np, pandas as pd
        from notebook_memo import memo
        keys = np.array([1, 1, 2, 2])
        df = pd.DataFrame({"k": keys, "v": [1, 2, 3, 4]}, copy=False)
        stale_g = df.groupby("k")
        stale_g["v"].sum()
        keys[:] = [1, 2, 2, 2]
        @memo.batch("gs")
        def totals(gs):
            return [g["v"].sum().to_dict() for g in gs]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            stale = totals([stale_g])
            fresh_g = pd.DataFrame({"k": np.array([1, 2, 2, 2]), "v": [1, 2, 3, 4]}).groupby("k")
            fresh = totals([fresh_g])
            again = totals([pd.DataFrame({"k": np.array([1, 2, 2, 2]), "v": [1, 2, 3, 4]}).groupby("k")])
        info = totals.cache_info()
        said = [str(w.message) for w in caught]
    """)
    assert shell["stale"] == [{1: 3, 2: 7}]
    assert shell["fresh"] == shell["again"] == [{1: 1, 2: 9}]
    assert shell["info"].hits == 1, shell["said"]  # the fresh item, its cache filled by its run, was stored
    assert not [w for w in shell["said"] if "in place" in w], shell["said"]



def test_a_memo_cell_on_a_groupby_is_keyed_by_its_cache_and_stored_after_filling_it(cache_dir: Path) -> None:
    stale = ["%load_ext notebook_memo", "import numpy as np, pandas as pd", _STALE]
    fresh = ["%load_ext notebook_memo", "import numpy as np, pandas as pd",
             "df = pd.DataFrame({'k': np.array([1, 2, 2, 2]), 'v': [1, 2, 3, 4]})\ng = df.groupby('k')"]
    cell = ["%%memo\ntotal = g['v'].sum().to_dict()",
            "import notebook_memo\nOUT['total'] = total\n"
            "OUT['hit'] = [*notebook_memo._cells._cells.values()][0].last_hit"]
    first = run_kernel(stale + cell, cache_dir, seed=1)
    second = run_kernel(fresh + cell, cache_dir, seed=2)
    third = run_kernel(fresh + cell, cache_dir, seed=3)
    assert first["total"] == {"1": 3, "2": 7}
    assert second["total"] == third["total"] == {"1": 1, "2": 9}
    assert not [w for w in second["_warnings"] if "not cached" in w], second["_warnings"]  # its cache filled: stored
    assert (first["hit"], second["hit"], third["hit"]) == (False, False, True)  # a restart with fresh data hits



def test_a_body_that_changes_a_cache_entry_its_groupby_held_changed_its_argument(shell: Shell) -> None:
    shell.run("""
        import warnings
        import pandas as pd
        from notebook_memo import memo
        g = pd.DataFrame({"k": [1, 1, 2], "v": [1, 2, 3]}).groupby("k")
        g["v"].sum()
        @memo
        def tamper(g):
            g._grouper._cache["ngroups"] = 99  # an entry held when the call was keyed: part of its key
            return 1
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            tamper(g)
        said = [str(w.message) for w in caught]
        entries = tamper.cache_info().entries
    """)
    assert [w for w in shell["said"] if "changed its argument 'g' in place" in w], shell["said"]
    assert shell["entries"] == 0


# -- a world-writable sticky remote root (chmod 1777, as /tmp or a scratch area) -------------------------------

@pytest.fixture
def open_share() -> Iterator[Path]:
    """A folder every local user may write, holding ``team``: the remote root, its mode set by the test."""
    top = Path(tempfile.mkdtemp(prefix="notebook_memo_open_"))
    try:
        top.chmod(0o755)
        (top / "team").mkdir()
        yield top
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _folder_modes(team: Path) -> dict[str, int]:
    return {str(path.relative_to(team)): stat.S_IMODE(path.lstat().st_mode) for path in team.rglob("*")
            if path.is_dir()}


@pytest.mark.parametrize("root_mode", [0o1777, 0o777])
def test_folders_made_under_a_world_writable_root_are_never_writable_by_others(
        open_share: Path, root_mode: int) -> None:
    team = open_share / "team"
    team.chmod(root_mode)
    _kernel(open_share / "alice", team, [200_000], umask=0o022)  # a blob, a manifest, a lease, the probe
    folders = _folder_modes(team)
    assert {"m", "b", "l", "p"} <= set(folders)
    assert not [path for path, mode in folders.items() if mode & 0o002], folders
    sticky = stat.S_ISVTX if root_mode & stat.S_ISVTX else 0
    assert folders == dict.fromkeys(folders, 0o775 | sticky)  # the root's group bits; other r-x; its sticky bit


def test_another_user_may_not_delete_a_manifest_published_under_a_sticky_root(open_share: Path) -> None:
    team = open_share / "team"
    team.chmod(0o1777)
    _kernel(open_share / "alice", team, [200_000], user=(ALICE, [ALICE]))
    manifests = [path for path in (team / "m").rglob("*~*") if path.is_file()]
    assert manifests
    removed = subprocess.run(
        ["setpriv", f"--reuid={BOB}", f"--regid={BOB}", f"--groups={BOB}", sys.executable, "-c",
         "import os, sys\nfor p in sys.argv[1:]:\n    try: os.unlink(p)\n    except OSError: pass",
         *map(str, manifests)], capture_output=True, text=True, timeout=60)
    assert removed.returncode == 0, removed.stderr
    assert all(path.exists() for path in manifests)  # bob, outside alice's group, could remove none


# -- the library digest of a copy imported from a zip (zipimport, a zipapp) ------------------------------------

def _zipped_copy(tmp_path: Path, name: str, edit: str | None = None, compiled: bool = False) -> Path:
    """Zip a copy of the package (``edit`` appended to one module; ``compiled``: its .pyc files alone)."""
    folder = tmp_path / name
    shutil.copytree(ROOT / "notebook_memo", folder / "notebook_memo",
                    ignore=shutil.ignore_patterns("__pycache__"))
    if edit is not None:
        with open(folder / "notebook_memo" / "_dependencies.py", "a") as fh:
            fh.write(edit)
    if compiled:
        subprocess.run([sys.executable, "-m", "compileall", "-q", "-b", str(folder)], check=True)
        for source in (folder / "notebook_memo").rglob("*.py"):
            source.unlink()
    archive = tmp_path / f"{name}.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted((folder / "notebook_memo").rglob("*")):
            zf.write(path, path.relative_to(folder).as_posix())
    shutil.rmtree(folder)
    return archive


def _digest_from(archive: Path, cwd: Path) -> str:
    """The rules digest a fresh process importing notebook_memo from ``archive`` computes."""
    code = ("import notebook_memo, notebook_memo._rules as r\n"
            "assert '.zip' in notebook_memo.__file__, notebook_memo.__file__\n"
            "print(r.rules_digest())")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=str(cwd),
                          env={**os.environ, "PYTHONPATH": str(archive), "PYTHONHASHSEED": "0"})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.mark.parametrize("compiled", [False, True])
def test_another_version_imported_from_a_zip_has_another_rules_digest(tmp_path: Path, compiled: bool) -> None:
    v1 = _zipped_copy(tmp_path, "v1", compiled=compiled)
    v2 = _zipped_copy(tmp_path, "v2", edit="\nLATER_RULES = 1\n", compiled=compiled)
    assert _digest_from(v1, tmp_path) != _digest_from(v2, tmp_path)
    if not compiled:  # a .pyc holds its source's time and path: only a copy of the sources is the same code
        same = _zipped_copy(tmp_path, "same")
        assert _digest_from(v1, tmp_path) == _digest_from(same, tmp_path)  # an identical copy elsewhere still hits


# -- the stale notice names entries another version of notebook_memo made -------------------------------------

_STALE_SESSION = """
import json, warnings
from notebook_memo import memo

@memo
def f(x):
    return x * {factor}

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    f(21)
print("RESULT" + json.dumps({{"hit": f.last_hit, "notices": [str(w.message) for w in caught
                                                             if "still on disk" in str(w.message)]}}))
"""


def test_the_stale_notice_after_a_library_upgrade_names_the_library(tmp_path: Path, cache_dir: Path) -> None:
    old = _package_copy(tmp_path / "old")
    new = _package_copy(tmp_path / "new", "\n# a later version of the rules\n")
    made = _session(_STALE_SESSION.format(factor=2), old, cache_dir, seed=1)
    assert (made["hit"], made["notices"]) == (False, [])
    upgraded = _session(_STALE_SESSION.format(factor=2), new, cache_dir, seed=2)
    assert upgraded["hit"] is False
    assert upgraded["notices"] == [
        "f: 1 cached entry (5 B) made by another version of notebook_memo is still on disk; "
        "f.clear_stale() removes them"], upgraded["notices"]


def test_the_stale_notice_tells_entries_of_other_code_from_those_of_another_library(
        tmp_path: Path, cache_dir: Path) -> None:
    old = _package_copy(tmp_path / "old")
    new = _package_copy(tmp_path / "new", "\n# a later version of the rules\n")
    _session(_STALE_SESSION.format(factor=2), old, cache_dir, seed=1)  # the old library's entry
    _session(_STALE_SESSION.format(factor=3), new, cache_dir, seed=2)  # other code, this library
    back = _session(_STALE_SESSION.format(factor=2), new, cache_dir, seed=3)
    assert back["hit"] is False
    assert back["notices"] == [
        "f: 2 cached entries (10 B) are still on disk: 1 from 1 other version of its code and 1 made by another "
        "version of notebook_memo; f.clear_stale() removes them"], back["notices"]
