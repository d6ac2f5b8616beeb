"""Upkeep meeting damage and other people's objects: the remote's ``prune``/``clear`` (whose entries they may
delete, what they leave when they cannot read everything, the leftovers of killed writers), one planted
object on the remote refused alone, and the local index's upkeep (``clear``, ``cache_info``, ``info``,
``prune``) setting a damaged index aside as a call does.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from notebook_memo import configure
from tests.conftest import Counter
from tests.test_remote import _counted, _machine
from tests.test_remote_hostile import _manifest, _team

SECRET = "team secret"


# -- one planted object on the remote is refused alone ------------------------------------------------------------

@pytest.mark.parametrize("planted", ["manifest", "lease", "blob"])
def test_a_folder_at_an_objects_name_is_refused_alone(tmp_path: Path, planted: str, counter: Counter,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    team, url = _team(tmp_path)
    monkeypatch.setenv("NOTEBOOK_MEMO_LEASE", "1")
    configure(remote=url, secret=SECRET)
    f = _counted(lambda x: time.sleep(0.02) or np.full(100_000, x))  # not quick: each miss takes a lease first
    _machine(tmp_path, "alice")
    f(1, counter)
    manifest = _manifest(team)
    if planted == "manifest":
        manifest.unlink()
        manifest.mkdir()
    elif planted == "lease":
        manifest.unlink()
        (team / "l" / manifest.name.partition("~")[0]).mkdir(parents=True)
    else:
        for blob in (team / "b").iterdir():
            blob.unlink()
            blob.mkdir()
    _machine(tmp_path, "bob")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert f(1, counter)[0] == 1
        assert f(2, counter)[0] == 2
    assert not [w for w in caught if "could not be used" in str(w.message)]
    assert counter.n == 3  # f(1) on each machine, f(2) once
    assert len([p for p in (team / "m").rglob("*") if p.is_file()]) == (1 if planted == "manifest" else 2)
