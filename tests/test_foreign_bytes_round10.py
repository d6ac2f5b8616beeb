"""Foreign bytes in the cache folder never run code: attacks on what the store reads, with a secret set and without.

Each test plants hostile bytes in a real cache directory (a pickle whose loading creates a file, written
where the store reads) and checks that nothing ran and that the call computed its value, or, for the guard
tests, that the store's checks did not refuse what it wrote itself.
"""

from __future__ import annotations

import mmap
import pickle
import sqlite3
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from notebook_memo import configure, memo
from notebook_memo._serialize import CorruptRecord
from tests.conftest import RUNS_SETUP, settled


class _Trap:
    """Unpickling this creates a file: stands in for code planted in the cache."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def _payload_file(cache_dir: Path) -> Path:
    settled()
    with sqlite3.connect(str(cache_dir / "cache.db"), isolation_level=None) as db:
        [(filename,)] = db.execute("SELECT filename FROM Cache WHERE filename IS NOT NULL").fetchall()
    return cache_dir / filename


# -- mapped payloads ------------------------------------------------------------------------------


@pytest.mark.parametrize("secret", [None, "team secret"])
def test_a_pickle_rewritten_through_a_shared_map_is_never_loaded(tmp_path: Path, cache_dir: Path,
                                                                secret: str | None) -> None:
    if secret:
        configure(secret=secret)
    trap = tmp_path / "pwned"

    @memo(mmap=True)
    def f() -> np.ndarray:
        return np.arange(500_000, dtype=np.float64)

    f()
    path = _payload_file(cache_dir)
    with open(path, "r+b") as fh:
        shared = mmap.mmap(fh.fileno(), 0)
    try:
        shared[0] = shared[0]  # the first write to the page moves the file's times; later ones to it need not
        f._store().forget()
        assert f()[-1] == 499_999  # verified again, and remembered as verified with the times as they are now
        planted = pickle.dumps(_Trap(str(trap)), protocol=5)
        shared[:len(planted)] = planted
        f._store().forget()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = f()
    finally:
        shared.close()
    assert not trap.exists()
    assert value[-1] == 499_999
    assert any("could not be used" in str(w.message) for w in caught), [str(w.message) for w in caught]


def test_a_mapped_payload_with_a_large_pickle_is_still_verified_once(cache_dir: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from notebook_memo import _serialize

    checked: list[int] = []
    original = _serialize.verify_file

    def counting(*args: Any, **kwargs: Any) -> Any:
        checked.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(_serialize, "verify_file", counting)
    configure(secret="team secret")

    @memo(mmap=True)
    def f() -> tuple[np.ndarray, str]:
        return np.arange(500_000, dtype=np.float64), "label " * 40_000  # a pickle larger than kept in full

    f()
    for _ in range(4):
        f._store().forget()
        array, label = f()
        assert array[-1] == 499_999 and label.startswith("label ")
    assert len(checked) == 1


# -- records listed but not verified ---------------------------------------------------------------


def test_a_listed_record_this_process_could_not_verify_is_never_loaded(tmp_path: Path, cache_dir: Path) -> None:
    from notebook_memo._serialize import Payload, decode_header, encode_header

    trap = tmp_path / "pwned"

    @memo
    def f(x: int) -> int:
        return x + 1

    f(1)  # an unsigned record, which anyone who can write the folder can forge: with a secret it vouches for nothing
    settled()
    with sqlite3.connect(str(cache_dir / "cache.db"), isolation_level=None) as db:
        [(row, value)] = db.execute("SELECT key, value FROM Cache WHERE mode = 16").fetchall()
        header, _ = decode_header(value)
        forged = encode_header(header.key, None, Payload(pickle.dumps(_Trap(str(trap))), []), header.meta(),
                               header.created, None, header.duration, True, None)
        db.execute("UPDATE Cache SET value = ? WHERE key = ?", (forged, row))
    configure(secret="team secret")
    [listed] = f.entries()
    assert not listed.verified
    with pytest.raises(CorruptRecord):
        listed.load()
    assert not trap.exists()
    assert f(1) == 2 and not trap.exists()  # computed under the secret, the forged record left unread


def test_records_listed_under_the_secret_they_were_signed_with_still_load(cache_dir: Path) -> None:
    configure(secret="team secret")

    @memo
    def f(x: int) -> np.ndarray:
        return np.full(100_000 if x else 3, x)  # one payload in a file, one inline

    f(0), f(1)
    listed = f.entries()
    assert len(listed) == 2 and all(r.verified for r in listed)
    assert sorted(int(r.load()[0]) for r in listed) == [0, 1]


# -- %%memo records that do not hold a run -------------------------------------------------------------

_RUNS = RUNS_SETUP  # ``ran(name)`` counts body runs in ``RUNS``


def _only_record(cache_dir: Path) -> tuple[str, bytes]:
    settled()
    with sqlite3.connect(str(cache_dir / "cache.db"), isolation_level=None) as db:
        [(row, value)] = db.execute("SELECT key, value FROM Cache WHERE mode = 16").fetchall()
    return row, value


def _forge_record(cache_dir: Path, value: Any) -> None:
    """Put ``value`` in place of the one record's payload, its checks made valid, as a writer of an unsigned
    directory can."""
    from notebook_memo._serialize import Payload, decode_header, encode_header

    row, stored = _only_record(cache_dir)
    header, _ = decode_header(stored)
    forged = encode_header(header.key, None, Payload(pickle.dumps(value), []), header.meta(), header.created, None,
                           header.duration, True, None)
    with sqlite3.connect(str(cache_dir / "cache.db"), isolation_level=None) as db:
        db.execute("UPDATE Cache SET value = ? WHERE key = ?", (forged, row))


_NOT_A_RUN = {
    "a list": ["y", "from elsewhere"],
    "a dict without events": {"outputs": {"y": "planted"}, "deleted": [], "result": None},
    "outputs that are a list": {"outputs": ["y"], "deleted": [], "events": [], "result": None},
    "a printed text that is not text": {"outputs": {"y": "planted"}, "deleted": [], "result": None,
                                        "events": [("stdout", 42)]},
    "an empty event": {"outputs": {"y": "planted"}, "deleted": [], "result": None, "events": [()]},
    "a deleted name that is not a name": {"outputs": {"y": "planted"}, "deleted": [["y"]], "events": [],
                                          "result": None},
}


@pytest.mark.parametrize("planted", list(_NOT_A_RUN))
def test_a_cell_record_that_does_not_hold_a_run_is_dropped_and_the_cell_runs(shell: Any, cache_dir: Path,
                                                                             planted: str) -> None:
    from notebook_memo import StorageWarning

    shell.run("%load_ext notebook_memo\n" + _RUNS)
    cell = "%%memo\nran('b')\nprint('ran b')\ny = 'from b'"
    shell.run(cell)
    _forge_record(cache_dir, _NOT_A_RUN[planted])
    shell.run("y = None")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shell.run(cell)
    assert shell["y"] == "from b" and shell["RUNS"] == {"b": 2}
    assert any(issubclass(w.category, StorageWarning) and "does not hold a run" in str(w.message) for w in caught), \
        [str(w.message) for w in caught]
    shell.run("y = None")
    shell.run(cell)  # its run stored a record of its own, which is served
    assert shell["y"] == "from b" and shell["RUNS"] == {"b": 2}


def test_a_cell_whose_run_printed_displayed_annotated_and_deleted_is_still_restored(shell: Any) -> None:
    shell.run("%load_ext notebook_memo\n" + _RUNS + "from IPython.display import display, HTML\ntmp = 1")
    cell = ("%%memo\nran('c')\nprint('text')\ndisplay(HTML('<b>shown</b>'), display_id='d1')\n"
            "limit: int = 5\nimport xml.dom.minidom\ndel tmp\nz = [limit]")
    shell.run(cell)
    shell.run("del z, limit\ntmp = 1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        shell.run(cell)
    assert shell["RUNS"] == {"c": 1} and shell["z"] == [5] and "tmp" not in shell.ip.user_ns
    # As the run left it: the class itself, or its name where an earlier cell of this shell turned on
    # ``from __future__ import annotations`` (IPython keeps a future import for the cells after it).
    assert shell["__annotations__"].get("limit") in (int, "int")


# -- memo.batch items that do not go together ----------------------------------------------------------


def _forge_first_item(cache_dir: Path, value: Any) -> None:
    """Put ``value`` in place of one item's payload, its checks made valid, as a writer of an unsigned
    directory can."""
    from notebook_memo._serialize import Payload, decode_header, encode_header

    settled()
    with sqlite3.connect(str(cache_dir / "cache.db"), isolation_level=None) as db:
        row, stored = db.execute("SELECT key, value FROM Cache WHERE mode = 16 ORDER BY rowid").fetchone()
        header, _ = decode_header(stored)
        forged = encode_header(header.key, None, Payload(pickle.dumps(value), []), header.meta(), header.created,
                               None, header.duration, True, None)
        db.execute("UPDATE Cache SET value = ? WHERE key = ?", (forged, row))


@pytest.mark.parametrize(("kind", "planted"), [("ndarray", "text"), ("series", "text"), ("frame", "text"),
                                               ("ndarray", {"a": 1}), ("frame", None)])
def test_a_batch_item_that_does_not_fit_its_result_is_computed_again_never_an_error(cache_dir: Path, kind: str,
                                                                                   planted: Any) -> None:
    import pandas as pd

    from notebook_memo import StorageWarning
    from tests.conftest import Seen

    seen = Seen()

    @memo.batch("xs")
    def double(xs: list[int]) -> Any:
        seen.extend(xs)
        values = [x * 2.0 for x in xs]
        if kind == "series":
            return pd.Series(values)
        return pd.DataFrame({"v": values}) if kind == "frame" else np.asarray(values)

    double([1, 2, 3])
    _forge_first_item(cache_dir, planted)
    double._store().forget()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = double([1, 2, 3])
    assert list(np.asarray(value).ravel()) == [2.0, 4.0, 6.0] and len(value) == 3
    assert sorted(seen) == [1, 1, 2, 2, 3, 3]  # computed again, every item
    assert any(issubclass(w.category, StorageWarning) and "could not be put together" in str(w.message)
               for w in caught), [str(w.message) for w in caught]
    assert list(np.asarray(double([1, 2, 3])).ravel()) == [2.0, 4.0, 6.0] and len(seen) == 6  # overwritten: served


def test_batch_items_stored_with_other_dtypes_are_still_served_together(cache_dir: Path) -> None:
    import pandas as pd

    from tests.conftest import Seen

    seen = Seen()

    @memo.batch("xs")
    def double(xs: list[Any]) -> pd.Series:
        seen.extend(xs)
        return pd.Series([x * 2 for x in xs])

    double([1, 2])  # int64 items
    double([1.5])  # a float64 item
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = double([1, 2, 1.5])
    assert list(value) == [2, 4, 3.0] and seen == [1, 2, 1.5]


def test_an_async_batch_item_that_does_not_fit_its_result_is_computed_again(cache_dir: Path) -> None:
    import asyncio

    from tests.conftest import Seen

    seen = Seen()

    @memo.batch("xs")
    async def double(xs: list[int]) -> np.ndarray:
        seen.extend(xs)
        return np.asarray([x * 2.0 for x in xs])

    asyncio.run(double([1, 2]))
    _forge_first_item(cache_dir, "text")
    double._store().forget()
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        assert list(asyncio.run(double([1, 2]))) == [2.0, 4.0]
    assert sorted(seen) == [1, 1, 2, 2]


# -- explain with a secret: a record is the call's by the key it is stored under ------------------------


@pytest.mark.parametrize("secret", [None, "team secret"])
def test_explain_last_says_a_missed_call_s_result_is_stored_with_a_secret_too(secret: str | None) -> None:
    if secret:
        configure(secret=secret)

    @memo
    def f(x: int) -> int:
        return x + 1

    f(1)
    first = f.explain_last()
    assert "its first run" in first.summary and "its result is stored now" in first.summary, first
    f(2)
    second = f.explain_last()
    assert "computed now, and its result is stored." in second.summary, second
    assert second.reasons == ["argument 'x' differs"], second


@pytest.mark.parametrize("secret", [None, "team secret"])
def test_explain_last_of_a_batch_s_first_run_says_so_with_a_secret_too(secret: str | None) -> None:
    if secret:
        configure(secret=secret)

    @memo.batch("xs")
    def double(xs: list[int]) -> list[int]:
        return [x * 2 for x in xs]

    double([1, 2])
    report = double.explain_last()
    assert report is not None and any("its first run" in reason for reason in report.reasons), report
