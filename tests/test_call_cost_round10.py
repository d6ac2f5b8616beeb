"""What a call costs, and that the work saved stays sound: sqlite3's converter and adapter tables, keyed with every
global SQLite connection a body reads, are hashed whole only when their entries change.

A hit of such a function keys the tables on every call. While they hold only the standard library's own functions
and classes, their digest is kept from the last hashing as long as the entries are the very same objects; an entry
replaced (by another of the standard library's functions, or by the notebook's code), or an attribute set on one of
those functions, hashes them anew, and the next call computes anew as it did before.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from notebook_memo import _dependencies
from notebook_memo.hashing import content_hash
from tests.conftest import RUNS_SETUP, Shell

_READ = """
import datetime, sqlite3
C = sqlite3.connect("d.db")

@memo
def stamp(when):
    ran("stamp")
    return C.execute("select ?", (when,)).fetchone()[0]

WHEN = datetime.datetime(2024, 5, 6, 7, 8, 9)
"""


def _setup(shell: Shell, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``folder``/d.db and define ``stamp``, with sqlite3's tables holding the standard library's entries
    alone for the test (another test's converters, of a notebook's code, are put back after it)."""
    for table in (sqlite3.converters, sqlite3.adapters):
        for key, fn in list(table.items()):
            if getattr(fn, "__module__", None) != "sqlite3.dbapi2":
                monkeypatch.delitem(table, key)
    sqlite3.connect(folder / "d.db").close()
    shell.run(RUNS_SETUP)
    shell.run(_READ)


def _hashed_tables(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Return the list that the labels of the converter and adapter tables go to as they are hashed whole."""
    hashed: list[str] = []
    value = _dependencies._Resolver.value

    def counting(self: _dependencies._Resolver, setting: object, label: str, *rest: Any, **named: Any) -> None:
        if label.endswith((".converters", ".adapters")):
            hashed.append(label)
        value(self, setting, label, *rest, **named)

    monkeypatch.setattr(_dependencies._Resolver, "value", counting)
    return hashed


def test_the_standard_tables_are_hashed_once_across_hits_of_a_global_connection(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _setup(shell, tmp_path, monkeypatch)
    monkeypatch.setattr(_dependencies, "_TABLE_DIGESTS", {})
    hashed = _hashed_tables(monkeypatch)
    first = shell.run("stamp(WHEN)")
    for _ in range(3):
        assert shell.run("stamp(WHEN)") == first
    assert shell.run("RUNS['stamp']") == 1
    assert sorted(hashed) == ["C.adapters", "C.converters"]  # the first call's keying alone


def test_a_kept_table_digest_is_the_digest_of_the_table_as_it_is(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Guard: the key a hit makes from a kept digest is the key hashing the tables now would make."""
    monkeypatch.chdir(tmp_path)
    _setup(shell, tmp_path, monkeypatch)
    shell.run("stamp(WHEN)")
    shell.run("stamp(WHEN)")
    parts = shell.run("stamp.code_state().deps.parts")
    assert parts["C.converters"] == ("value", content_hash(dict(sqlite3.converters)))
    assert parts["C.adapters"] == ("value", content_hash(dict(sqlite3.adapters)))


def test_a_standard_adapter_registered_for_another_class_after_a_call_recomputes(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Guard (passes before and after): an entry replaced by another of the standard library's own functions (the
    date adapter for datetimes: its text is made otherwise) changes the tables' digest."""
    monkeypatch.chdir(tmp_path)
    _setup(shell, tmp_path, monkeypatch)
    key = (__import__("datetime").datetime, sqlite3.PrepareProtocol)
    monkeypatch.setitem(sqlite3.adapters, key, sqlite3.adapters[key])  # put back as it was after the test
    first = shell.run("stamp(WHEN)")
    assert shell.run("stamp(WHEN)") == first
    shell.run("sqlite3.register_adapter(datetime.datetime, sqlite3.adapters[(datetime.date, sqlite3.PrepareProtocol)])")
    second = shell.run("stamp(WHEN)")
    assert second == "2024-05-06T07:08:09" != first  # datetime.isoformat, as adapt_date makes it
    assert shell.run("RUNS['stamp']") == 2


def test_an_attribute_set_on_a_standard_adapter_after_a_call_recomputes(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Guard (passes before and after): a standard function that comes to wrap the notebook's code (its
    ``__wrapped__``) is keyed by that code too, so the tables hash anew."""
    monkeypatch.chdir(tmp_path)
    _setup(shell, tmp_path, monkeypatch)
    adapter = sqlite3.adapters[(__import__("datetime").datetime, sqlite3.PrepareProtocol)]
    shell.run("stamp(WHEN)")
    shell.run("stamp(WHEN)")
    shell.run("def shown(value):\n    return str(value)")
    monkeypatch.setattr(adapter, "__wrapped__", shell["shown"], raising=False)
    shell.run("stamp(WHEN)")
    assert shell.run("RUNS['stamp']") == 2
