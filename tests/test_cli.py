"""The command line against a real cache directory, as a separate process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from notebook_memo import _cli
from tests.conftest import ROOT, run_kernel

POPULATE = [
    "from notebook_memo import memo\n"
    "@memo\ndef embed(x):\n    return b'e' * 2000\n"
    "@memo\ndef score(x):\n    return x * 2\n",
    "for i in range(3):\n    embed(i)\nscore(1)",
]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "notebook_memo", *args], capture_output=True, text=True,
                          env=env, timeout=120)


@pytest.fixture
def populated(cache_dir: Path) -> Path:
    run_kernel(POPULATE, cache_dir)
    edited = ["from notebook_memo import memo\n@memo\ndef embed(x):\n    return b'E' * 2000\n", "embed(0)"]
    run_kernel(edited, cache_dir, seed=5)
    return cache_dir


def test_info_lists_functions_entries_versions_and_sizes(populated: Path) -> None:
    out = cli("info", "--dir", str(populated))
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line.split() for line in out.stdout.splitlines() if line.startswith("__main__")}
    assert lines["__main__.embed"][1:3] == ["4", "2"]  # 4 entries in 2 code versions
    assert lines["__main__.score"][1:3] == ["1", "1"]
    assert "5 entries" in out.stdout


def test_clear_one_function_then_all(populated: Path) -> None:
    out = cli("clear", "--dir", str(populated), "--function", "score")
    assert out.returncode == 0 and "removed 1 entries" in out.stdout
    assert "__main__.score" not in cli("info", "--dir", str(populated)).stdout
    out = cli("clear", "--dir", str(populated), "--function", "nope")
    assert out.returncode == 1 and "functions here: __main__.embed" in out.stderr
    assert "removed 4 entries" in cli("clear", "--dir", str(populated)).stdout
    assert "empty" in cli("info", "--dir", str(populated)).stdout


def test_prune_keep_latest_keeps_the_newest_code_version(populated: Path) -> None:
    out = cli("prune", "--dir", str(populated), "--keep-latest")
    assert out.returncode == 0 and "removed 3 entries" in out.stdout
    lines = [line.split() for line in cli("info", "--dir", str(populated)).stdout.splitlines()]
    embed = next(line for line in lines if line and line[0] == "__main__.embed")
    assert embed[1:3] == ["1", "1"]


def test_prune_older_than(populated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # The clock is moved, not waited for: a kernel starting on a busy machine may take longer than any margin.
    older = time.time()  # after every populated entry was stored, before the fresh one is
    run_kernel(["from notebook_memo import memo\n@memo\ndef fresh(x):\n    return x", "fresh(1)"], populated)
    assert _cli.main(["prune", "--dir", str(populated), "--older-than", "1h"]) == 0
    assert "removed 0 entries" in capsys.readouterr().out  # nothing an hour old
    monkeypatch.setattr(time, "time", lambda: older + 3600)  # an hour after: the cutoff falls between the two
    assert _cli.main(["prune", "--dir", str(populated), "--older-than", "1h"]) == 0
    assert "removed 5 entries" in capsys.readouterr().out
    monkeypatch.undo()
    assert "__main__.fresh" in cli("info", "--dir", str(populated)).stdout


def test_prune_max_size_evicts_least_recently_used(cache_dir: Path) -> None:
    run_kernel(["from notebook_memo import memo\n@memo\ndef blob(i):\n    return bytes(200_000)",
                "for i in range(10):\n    blob(i)"], cache_dir)
    out = cli("prune", "--dir", str(cache_dir), "--max-size", "1MB")
    assert out.returncode == 0, out.stderr
    removed = int(out.stdout.split()[1])
    assert 5 <= removed <= 10
    info = cli("info", "--dir", str(cache_dir)).stdout
    assert info.startswith("function") or "empty" in info


def test_missing_directory_is_a_usage_error(tmp_path: Path) -> None:
    out = cli("info", "--dir", str(tmp_path / "nowhere"))
    assert out.returncode == 2
    assert "no cache directory" in out.stderr and "Traceback" not in out.stderr


def test_foreign_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("not a cache")
    out = cli("clear", "--dir", str(tmp_path))
    assert out.returncode == 2 and "not a notebook_memo cache directory" in out.stderr
    assert (tmp_path / "precious.txt").exists()


def test_prune_without_a_criterion_is_a_usage_error(populated: Path) -> None:
    out = cli("prune", "--dir", str(populated))
    assert out.returncode == 2 and "--older-than" in out.stderr


def test_console_script_entry_point_is_declared() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert 'notebook-memo = "notebook_memo._cli:main"' in text


def test_info_counts_hits_from_every_process(cache_dir: Path) -> None:
    define = "from notebook_memo import memo\n@memo\ndef score(x):\n    return x * 2\n"
    run_kernel([define, "score(1)\nscore(1)"], cache_dir)
    run_kernel([define, "score(1)\nscore(2)"], cache_dir, seed=3)
    out = cli("info", "--dir", str(cache_dir))
    row = next(line.split() for line in out.stdout.splitlines() if line.startswith("__main__.score"))
    assert row[1] == "2"  # entries
    assert row[5] == "2"  # hits: one in each kernel
