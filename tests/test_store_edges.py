"""Edges of the store and its upkeep: a ttl given later to memo.batch, declared folders holding pipes and
links, implausible rows in the index, unsigned records beside a secret, remote folders that are links or
hold huge planted files, and lease rows whose pid cannot be read."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest

from notebook_memo import memo
from tests.conftest import Seen, run_kernel


@pytest.fixture
def seen() -> Seen:
    return Seen()


def _later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Make every record's age, as the library judges it, ``seconds`` more than it is."""
    from notebook_memo import _serialize

    real = time.time
    monkeypatch.setattr(_serialize, "time", type("Later", (), {"time": staticmethod(lambda: real() + seconds)}))


def _doubles(seen: Seen) -> Any:
    def doubles(xs: list[int]) -> list[int]:
        seen.append(list(xs))
        return [x * 2 for x in xs]

    return doubles


# -- memo.batch and a ttl given later ---------------------------------------------------------


def test_batch_ttl_given_later_recomputes_items_stored_without_one(seen: Seen, monkeypatch: pytest.MonkeyPatch) -> None:
    body = _doubles(seen)
    assert memo.batch("xs", progress=False)(body)([1, 2, 3]) == [2, 4, 6]
    _later(monkeypatch, 3600)
    aged = memo.batch("xs", progress=False, ttl="10m")(body)
    assert not aged.is_cached([1, 2, 3])
    report = aged.explain([1, 2, 3])
    assert not report.hit and "ttl of 600 s" in " ".join(report.reasons)
    assert aged([1, 2, 3]) == [2, 4, 6]  # the items are an hour old
    assert seen == [[1, 2, 3], [1, 2, 3]]


def test_batch_ttl_shortened_later_recomputes_items_stored_with_a_longer_one(
        seen: Seen, monkeypatch: pytest.MonkeyPatch) -> None:
    body = _doubles(seen)
    assert memo.batch("xs", progress=False, ttl="1h")(body)([1, 2]) == [2, 4]
    _later(monkeypatch, 120)
    shorter = memo.batch("xs", progress=False, ttl="1m")(body)
    assert not shorter.is_cached([1, 2])
    assert shorter([1, 2]) == [2, 4]
    assert seen == [[1, 2], [1, 2]]


def test_batch_items_younger_than_a_ttl_given_later_are_served(seen: Seen, monkeypatch: pytest.MonkeyPatch) -> None:
    body = _doubles(seen)
    assert memo.batch("xs", progress=False)(body)([1, 2]) == [2, 4]
    _later(monkeypatch, 60)
    kept = memo.batch("xs", progress=False, ttl="10m")(body)
    assert kept.is_cached([1, 2])
    assert kept([1, 2]) == [2, 4]
    assert seen == [[1, 2]]


def test_explain_of_an_entry_older_than_a_ttl_given_later_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    def constant() -> int:
        return 1

    assert memo(constant)() == 1
    _later(monkeypatch, 3600)
    aged = memo(ttl="10m")(constant)
    report = aged.explain()
    assert not report.hit and not aged.is_cached()
    assert "ttl" in report.summary


def test_async_batch_ttl_given_later_recomputes(seen: Seen, monkeypatch: pytest.MonkeyPatch) -> None:
    async def doubles(xs: list[int]) -> list[int]:
        seen.append(list(xs))
        return [x * 2 for x in xs]

    assert asyncio.run(memo.batch("xs", progress=False)(doubles)([4])) == [8]
    _later(monkeypatch, 3600)
    assert asyncio.run(memo.batch("xs", progress=False, ttl="10m")(doubles)([4])) == [8]
    assert seen == [[4], [4]]


# -- declared folders holding what is not a regular file ---------------------------------------


def _declared_load(data: Path, how: str) -> str:
    """A cell defining ``load``, which reads data/a.csv and declares the folder ``data``, and calling it twice."""
    declared = f"@memo(files=[{str(data)!r}])" if how == "files=" else "@memo"
    inside = f"memo.depends_on_file({str(data)!r})" if how == "depends_on_file" else "pass"
    return f"""
from notebook_memo import memo
{declared}
def load():
    {inside}
    return open({str(data / "a.csv")!r}).read()
OUT["values"] = [load(), load()]
OUT["hits"], OUT["misses"] = load.cache_info()[:2]
"""


@pytest.mark.parametrize("how", ["files=", "depends_on_file"])
def test_a_declared_folder_holding_a_named_pipe_is_recorded_without_opening_it(cache_dir: Path, tmp_path: Path,
                                                                               how: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("1,2\n")
    os.mkfifo(data / "events.pipe")  # no writer: opening it for reading would wait for one
    out = run_kernel([_declared_load(data, how)], cache_dir)  # a hang ends in the kernel's timeout, failing
    assert out["values"] == ["1,2\n", "1,2\n"]
    assert (out["hits"], out["misses"]) == (1, 1)
    again = run_kernel([_declared_load(data, how)], cache_dir, seed=7)
    assert (again["hits"], again["misses"]) == (2, 0)


def test_a_pipe_replaced_by_a_regular_file_of_the_same_name_is_a_miss(cache_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("1,2\n")
    os.mkfifo(data / "events.pipe")
    assert run_kernel([_declared_load(data, "files=")], cache_dir)["misses"] == 1
    (data / "events.pipe").unlink()
    (data / "events.pipe").write_text("now data")  # same name: the folder's listing is unchanged
    again = run_kernel([_declared_load(data, "files=")], cache_dir, seed=7)
    assert (again["hits"], again["misses"]) == (1, 1)


def test_a_link_to_an_endless_device_in_a_declared_folder_is_not_read(cache_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("1,2\n")
    (data / "zeros").symlink_to("/dev/zero")  # reading it never ends
    out = run_kernel([_declared_load(data, "files=")], cache_dir)
    assert (out["hits"], out["misses"]) == (1, 1)


def test_a_declared_link_to_the_users_own_data_file_is_followed(cache_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "real.csv").write_text("1,2\n")
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").symlink_to(tmp_path / "real.csv")
    assert run_kernel([_declared_load(data, "files=")], cache_dir)["values"] == ["1,2\n", "1,2\n"]
    (tmp_path / "real.csv").write_text("3,4\n")  # through the link: the data changed
    again = run_kernel([_declared_load(data, "files=")], cache_dir, seed=7)
    assert again["values"] == ["3,4\n", "3,4\n"]
    assert (again["hits"], again["misses"]) == (1, 1)


def test_a_data_file_swapped_for_a_pipe_after_its_stat_is_not_opened_blocking(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import ROOT

    os.mkfifo(tmp_path / "pipe")
    # The digest of a path that turned into a pipe between its stat and its read (as a check on a hit may
    # find): refused at once, in a process of its own so that a wait fails the test rather than hanging it.
    code = ("import sys; from notebook_memo import _conditions\n"
            "try:\n    _conditions.file_digest(sys.argv[1])\nexcept OSError as exc:\n    print('refused', exc)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "pipe")], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.startswith("refused"), proc.stderr
