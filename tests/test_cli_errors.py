"""The command line given bad values: one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from notebook_memo import memo
from tests.conftest import ROOT


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run([sys.executable, "-m", "notebook_memo", *args], capture_output=True, text=True,
                          env=environment, timeout=120)


@pytest.fixture
def cache(cache_dir: Path) -> Path:
    @memo
    def f(x: int) -> int:
        return x

    f(1)
    assert (cache_dir / "NOTEBOOK_MEMO_CACHE").exists()
    return cache_dir


def refused(out: subprocess.CompletedProcess[str]) -> str:
    """Return the one line a usage error printed, after checking how it was printed."""
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("notebook-memo: "), out.stderr
    return lines[0]


def test_unreadable_max_size_is_a_usage_error(cache: Path) -> None:
    line = refused(cli("prune", "--dir", str(cache), "--max-size", "lots"))
    assert "--max-size" in line and "cannot read the size 'lots'" in line and "'5GB'" in line


def test_unreadable_age_is_a_usage_error(cache: Path) -> None:
    line = refused(cli("prune", "--dir", str(cache), "--older-than", "soon"))
    assert "--older-than" in line and "'soon'" in line and "'6 hours'" in line


def test_zero_age_is_a_usage_error(cache: Path) -> None:
    line = refused(cli("prune", "--dir", str(cache), "--older-than", "0"))
    assert "--older-than" in line and "positive" in line


def test_a_bad_value_is_refused_before_the_directory_is_touched(tmp_path: Path) -> None:
    line = refused(cli("prune", "--dir", str(tmp_path / "nowhere"), "--max-size", "lots"))
    assert "--max-size" in line


@pytest.mark.parametrize("age", ["6hours", "6 hours", "1 day", "3600"])
def test_ages_in_words_are_read(cache: Path, age: str) -> None:
    out = cli("prune", "--dir", str(cache), "--older-than", age)
    assert out.returncode == 0 and "removed 0 entries" in out.stdout, out.stderr


def test_missing_directory(tmp_path: Path) -> None:
    assert "no cache directory" in refused(cli("info", "--dir", str(tmp_path / "no" / "such" / "dir")))


def test_a_file_given_as_the_directory(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a cache")
    assert "is a file, not a cache directory" in refused(cli("prune", "--dir", str(path), "--keep-latest"))


def test_a_directory_that_is_not_a_cache(tmp_path: Path) -> None:
    assert "not a notebook_memo cache directory" in refused(cli("info", "--dir", str(tmp_path)))


def test_an_unreadable_size_limit_in_the_environment(cache: Path) -> None:
    line = refused(cli("info", "--dir", str(cache), NOTEBOOK_MEMO_SIZE_LIMIT="lots"))
    assert "NOTEBOOK_MEMO_SIZE_LIMIT" in line and "'lots'" in line


@pytest.mark.parametrize("args, problem", [
    (("frobnicate",), "invalid choice: 'frobnicate'"),
    ((), "the following arguments are required"),
    (("info", "--bogus"), "unrecognized arguments: --bogus"),
])
def test_argparse_errors_print_usage_and_the_problem(args: tuple[str, ...], problem: str) -> None:
    out = cli(*args)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.startswith("usage: notebook-memo") and problem in out.stderr


@pytest.mark.parametrize("args", [("info",), ("prune", "--older-than", "1d"), ("clear",)])
def test_a_folder_others_can_write_is_refused_in_one_line_that_says_how_to_mend_it(
        cache: Path, args: tuple[str, ...]) -> None:
    """Without a secret the index of such a folder is not opened (SQLite would replay a log planted there):
    the command says so and how to mend it, and leaves the folder as it was."""
    before = sorted(p.name for p in cache.iterdir())
    cache.chmod(0o777)
    try:
        line = refused(cli(*args, "--dir", str(cache)))
    finally:
        cache.chmod(0o755)
    assert "can be written by group or others" in line and f"chmod go-w {cache}" in line
    assert sorted(p.name for p in cache.iterdir()) == before
    out = cli("info", "--dir", str(cache))  # mended: it lists again
    assert out.returncode == 0 and "1 entr" in out.stdout, (out.stdout, out.stderr)
