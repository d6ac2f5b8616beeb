"""Upkeep and explain on a cache folder that cannot be used: one that holds our index and was then made writable by
group or others (no secret set), and a ``cache_dir`` that names a regular file. ``cache_info``, ``entries``,
``clear_stale``, ``clear``, ``explain`` and ``explain_last`` (of plain and batch functions) and the ``%memo``
magics warn or say why, and find nothing, as a call does: none raises into the notebook.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from notebook_memo import StorageWarning, configure, memo
from notebook_memo._explain import Explanation
from notebook_memo.stores.local import close_stores
from tests.conftest import Shell


def _storage_warnings(call: Callable[[], Any]) -> tuple[Any, list[str]]:
    """Return what ``call`` returns and the storage warnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = call()
    return value, [str(w.message) for w in caught if issubclass(w.category, StorageWarning)]


def _shared_with_others(folder: Path) -> None:
    """Make ``folder`` (holding our index) writable by everyone, and let the process see it as a restart would."""
    folder.chmod(0o777)
    close_stores([str(folder)])


@pytest.fixture
def functions(tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    """A function and a batch function with results stored in a folder that others may write since."""
    shared = tmp_path / "shared"
    configure(cache_dir=str(shared))

    @memo
    def f(x: int) -> int:
        return x + 1

    @memo.batch("xs")
    def g(xs: list[int]) -> list[int]:
        return [x * 2 for x in xs]

    assert f(1) == 2 and g([1, 2]) == [2, 4]
    _shared_with_others(shared)
    try:
        yield f, g
    finally:
        shared.chmod(0o755)


_FINDS_NOTHING: dict[str, tuple[Callable[[Any, Any], Any], Any]] = {
    "cache_info": (lambda f, g: f.cache_info().entries, 0),
    "entries": (lambda f, g: f.entries(), []),
    "clear_stale": (lambda f, g: f.clear_stale(), 0),
    "clear": (lambda f, g: f.clear(), 0),
    "batch cache_info": (lambda f, g: g.cache_info().entries, 0),
    "batch clear_stale": (lambda f, g: g.clear_stale(), 0),
    "batch clear": (lambda f, g: g.clear(), 0),
}


@pytest.mark.parametrize("upkeep", sorted(_FINDS_NOTHING))
def test_upkeep_in_a_folder_others_can_write_warns_once_and_finds_nothing(functions: tuple[Any, Any],
                                                                          upkeep: str) -> None:
    f, g = functions
    call, expected = _FINDS_NOTHING[upkeep]
    found, caught = _storage_warnings(lambda: call(f, g))
    assert found == expected
    assert len(caught) == 1 and "chmod go-w" in caught[0] and "secret" in caught[0], caught


def test_a_call_and_then_upkeep_in_a_folder_others_can_write_warn_only_once(functions: tuple[Any, Any]) -> None:
    f, _ = functions
    (value, info, stale), caught = _storage_warnings(lambda: (f(1), f.cache_info(), f.clear_stale()))
    assert value == 2 and info.entries == 0 and stale == 0
    assert len(caught) == 1 and "chmod go-w" in caught[0], caught


_EXPLAINED: dict[str, Callable[[Any, Any], Any]] = {
    "explain": lambda f, g: f.explain(1),
    "explain_last": lambda f, g: (f(1), f.explain_last())[1],
    "batch explain": lambda f, g: g.explain([1, 2]),
    "batch explain_last": lambda f, g: (g([1, 2]), g.explain_last())[1],
}


@pytest.mark.parametrize("asked", sorted(_EXPLAINED))
def test_explain_in_a_folder_others_can_write_says_the_cache_is_not_used_and_why(functions: tuple[Any, Any],
                                                                                asked: str) -> None:
    f, g = functions
    report, _ = _storage_warnings(lambda: _EXPLAINED[asked](f, g))
    assert isinstance(report, Explanation) and not report.hit
    text = str(report)
    assert "is not used" in text and "can be written by group or others" in text and "chmod go-w" in text, text


def test_explain_with_a_cache_dir_that_is_a_file_says_the_cache_is_not_used_and_why(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("the user's notes\n")
    configure(cache_dir=str(afile))

    @memo
    def f(x: int) -> int:
        return x + 1

    value, caught = _storage_warnings(lambda: f(1))
    assert value == 2 and caught  # computed, with the warning a call gives
    report = f.explain(1)
    assert not report.hit and "is not used" in str(report) and str(afile) in str(report), str(report)
    last = f.explain_last()
    assert not last.hit and "is not used" in str(last), str(last)
    assert f.cache_info().entries == 0 and f.clear_stale() == 0
    assert afile.read_text() == "the user's notes\n"


# -- the %memo magics --------------------------------------------------------------------------------------------

@pytest.fixture
def stored_in_shell(shell: Shell, cache_dir: Path) -> Iterator[Shell]:
    """A shell whose function and %%memo cell stored results in the cache folder, which others may write since."""
    shell.run("%load_ext notebook_memo")
    shell.run("from notebook_memo import memo\n@memo\ndef f(x):\n    return x + 1\nf(1)")
    shell.run("%%memo\ny = 41 + 1\n")
    _shared_with_others(cache_dir)
    try:
        yield shell
    finally:
        cache_dir.chmod(0o755)


@pytest.mark.parametrize("line", ["%memo info", "%memo", "%memo clear", "%memo clear --all"])
def test_memo_magics_in_a_folder_others_can_write_print_why_instead_of_a_traceback(
        stored_in_shell: Shell, cache_dir: Path, capsys: pytest.CaptureFixture[str], line: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shown = stored_in_shell.run(line)
    printed = capsys.readouterr().out + ("" if shown is None else repr(shown))
    assert "can be written by group or others" in printed and f"chmod go-w {cache_dir}" in printed, printed
    assert "removed" not in printed and "nothing cached" not in printed, printed


@pytest.mark.parametrize("line", ["%memo clear --stale", "%memo clear f"])
def test_memo_clear_of_functions_in_a_folder_others_can_write_warns_and_removes_nothing(
        stored_in_shell: Shell, capsys: pytest.CaptureFixture[str], line: str) -> None:
    _, caught = _storage_warnings(lambda: stored_in_shell.run(line))
    assert "removed 0" in capsys.readouterr().out
    assert len(caught) == 1 and "chmod go-w" in caught[0], caught


def test_memo_explain_in_a_folder_others_can_write_says_the_cache_is_not_used(stored_in_shell: Shell) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stored_in_shell.run("f(1)")
        report = stored_in_shell.run("%memo explain f")
    assert "is not used" in str(report) and "chmod go-w" in str(report), str(report)


def test_with_a_secret_upkeep_in_a_folder_others_can_write_lists_and_explains_as_before(tmp_path: Path) -> None:
    team = tmp_path / "team"
    configure(cache_dir=str(team), secret="team secret")

    @memo
    def f(x: int) -> int:
        return x + 1

    f(1)
    _shared_with_others(team)
    try:
        (info, report), caught = _storage_warnings(lambda: (f.cache_info(), f.explain(1)))
    finally:
        team.chmod(0o755)
    assert info.entries == 1 and report.hit and not caught, (info, str(report), caught)


def test_memo_info_with_a_cache_dir_that_is_a_file_prints_why(shell: Shell, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    afile = tmp_path / "afile"
    afile.write_text("the user's notes\n")
    shell.run("%load_ext notebook_memo")
    shell.run(f"%memo dir {afile}")
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shell.run("%memo info")
    printed = capsys.readouterr().out
    assert "cannot read the cache in" in printed and "FileExistsError" in printed, printed
    assert afile.read_text() == "the user's notes\n"
