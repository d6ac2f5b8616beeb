"""The command line's upkeep of a remote tier (``info``, ``clear``, ``prune`` with ``--remote``), in subprocesses.

It picks entries as the local commands do (a notebook by its real path, a cell by its name), counts
results and not the markers stored beside them, and answers a remote it cannot use (a file, a
misspelt folder, a server that does not answer) in one line, creating nothing.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from notebook_memo import _cli, _config
from notebook_memo.stores import _remote_admin
from notebook_memo.stores.remote import RemoteTier
from tests.conftest import ROOT, run_kernel


def cli(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run([sys.executable, "-m", "notebook_memo", *args], capture_output=True, text=True,
                          env=environment, timeout=120, cwd=cwd)


def one_line(out: subprocess.CompletedProcess[str], code: int) -> str:
    """Return the one line an error printed, after checking its exit code and that no traceback came."""
    assert out.returncode == code, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr and out.stdout == "", out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("notebook-memo: "), out.stderr
    return lines[0]


def manifests(remote: Path) -> list[Path]:
    return sorted(p for p in (remote / "m").rglob("*") if p.is_file()) if (remote / "m").exists() else []


def notebooks_left(remote: Path) -> list[str]:
    """Return the notebook each manifest left on the remote records, as a path relative to the remote's folder."""
    tier = RemoteTier(remote.as_uri(), read_only=True)
    return sorted(os.path.relpath(entry.meta["notebook"], remote.parent) for entry in _remote_admin.entries(tier))


def table(out: str) -> dict[tuple[str, str], tuple[str, str, str]]:
    """Return the rows of ``info``'s table: (function, notebook column) -> (entries, versions, compute)."""
    lines = out.splitlines()
    notebooks = lines[0].endswith("notebook")
    rows = {}
    for line in lines[2:]:
        if not line.strip():
            break
        words = line.split()
        notebook, compute = (words[-1], words[-2]) if notebooks else ("", words[-1])
        rows[(words[0], notebook)] = (words[1], words[2], compute)
    return rows


def run_notebook(cells: list[str], cache: Path, remote: str, notebook: Path | None = None) -> None:
    env = {_config.ENV_REMOTE: remote}
    if notebook is not None:
        notebook.parent.mkdir(parents=True, exist_ok=True)
        notebook.touch()
        env["JPY_SESSION_NAME"] = str(notebook)
    run_kernel(cells, cache, env=env)


F = "from notebook_memo import memo\n@memo\ndef f(x):\n    return x * 2\n"


@pytest.fixture
def two_analyses(tmp_path: Path, cache_dir: Path) -> Path:
    """alice/analysis.ipynb and bob/analysis.ipynb each stored one result of their own ``f`` on one remote."""
    remote = tmp_path / "team"
    for n, who in enumerate(("alice", "bob"), 1):
        run_notebook([F, f"f({n})"], cache_dir, remote.as_uri(), tmp_path / who / "analysis.ipynb")
    assert len(manifests(remote)) == 2
    return remote


def test_clear_by_a_notebook_s_path_keeps_a_notebook_of_the_same_name_in_another_folder(
        tmp_path: Path, cache_dir: Path, two_analyses: Path) -> None:
    alice = str(tmp_path / "alice" / "analysis.ipynb")
    local = cli("clear", "--dir", str(cache_dir), "--function", "f", "--notebook", alice)
    assert local.stdout.strip() == "removed 1 entries", local.stderr
    out = cli("clear", "--remote", two_analyses.as_uri(), "--function", "f", "--notebook", alice)
    assert out.returncode == 0 and "removed 1 entries" in out.stdout, out.stderr
    assert notebooks_left(two_analyses) == [os.path.join("bob", "analysis.ipynb")]


def test_clear_by_a_relative_path_or_a_bare_file_name_as_locally(tmp_path: Path, two_analyses: Path) -> None:
    url = two_analyses.as_uri()
    # A relative path is the working folder's: bob's notebook, not alice's of the same file name.
    out = cli("clear", "--remote", url, "--function", "f", "--notebook", "bob/analysis.ipynb", cwd=tmp_path)
    assert "removed 1 entries" in out.stdout, out.stderr
    assert notebooks_left(two_analyses) == [os.path.join("alice", "analysis.ipynb")]
    # A file name alone names every notebook of that name, as the local clear does (bob stores again, on a
    # machine of its own).
    run_notebook([F, "f(2)"], tmp_path / "elsewhere", url, tmp_path / "bob" / "analysis.ipynb")
    out = cli("clear", "--remote", url, "--function", "f", "--notebook", "analysis.ipynb")
    assert "removed 2 entries" in out.stdout, out.stderr
    assert manifests(two_analyses) == []


def test_clear_finds_a_cell_and_a_method_by_the_names_local_clear_takes(tmp_path: Path, cache_dir: Path) -> None:
    remote = tmp_path / "team"
    run_notebook(["%load_ext notebook_memo", "%%memo mycell\nzz = 41 + 1\n",
                  "from notebook_memo import memo\nclass K:\n    @staticmethod\n    @memo\n"
                  "    def m(x):\n        return x\nK.m(1)"], cache_dir, remote.as_uri())
    assert len(manifests(remote)) == 2
    out = cli("clear", "--remote", remote.as_uri(), "--function", "mycell")
    assert out.returncode == 0 and "removed 1 entries" in out.stdout, out.stderr
    out = cli("clear", "--remote", remote.as_uri(), "--function", "K.m")
    assert out.returncode == 0 and "removed 1 entries" in out.stdout, out.stderr
    assert manifests(remote) == []


def test_info_lists_one_function_of_two_notebooks_in_two_rows(tmp_path: Path, two_analyses: Path) -> None:
    info = cli("info", "--remote", two_analyses.as_uri(), cwd=tmp_path)
    rows = table(info.stdout)
    assert sorted(rows) == [("__main__.f", os.path.join("alice", "analysis.ipynb")),
                            ("__main__.f", os.path.join("bob", "analysis.ipynb"))], info.stdout
    assert all(entries == "1" for entries, _, _ in rows.values())


MARKED = """
import os, time
import numpy as np
from notebook_memo import memo
os.chdir(FOLDER)
@memo
def draw(n):
    time.sleep(0.3)
    return float(np.random.rand()) * n
@memo
def rel(n):
    return open("data.txt").read() * n
np.random.seed(0)
draw(1)
rel(1)
"""


@pytest.fixture
def marked(tmp_path: Path, cache_dir: Path) -> Path:
    """A remote holding a result that drew random numbers and one that read a relative path, with their markers."""
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "data.txt").write_text("hi")
    remote = tmp_path / "team"
    run_notebook([f"FOLDER = {str(folder)!r}", MARKED], cache_dir, remote.as_uri())
    assert len(manifests(remote)) == 4  # two results, two markers
    return remote


def test_info_counts_results_and_their_compute_time_not_markers(cache_dir: Path, marked: Path) -> None:
    local = table(cli("info", "--dir", str(cache_dir)).stdout)
    info = cli("info", "--remote", marked.as_uri())
    remote = table(info.stdout)
    assert "2 entries" in info.stdout, info.stdout
    assert remote == local and len(remote) == 2, (info.stdout, local)


def test_clear_says_how_many_results_went(marked: Path) -> None:
    out = cli("clear", "--remote", marked.as_uri(), "--function", "draw")
    assert out.stdout.strip().startswith("removed 1 entries"), out.stdout
    out = cli("clear", "--remote", marked.as_uri())
    assert out.stdout.strip().startswith("removed 1 entries"), out.stdout
    assert manifests(marked) == []  # the markers went with their results


def test_prune_says_how_many_results_went(marked: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 2 * 86400)  # two days on: every entry is older than a day
    assert _cli.main(["prune", "--remote", marked.as_uri(), "--older-than", "1d"]) == 0
    assert capsys.readouterr().out.startswith("removed 2 entries")
    assert manifests(marked) == []


@pytest.mark.parametrize("command", [["info"], ["clear"], ["prune", "--older-than", "1d"]])
def test_a_file_as_the_remote_is_refused_in_one_line(tmp_path: Path, command: list[str]) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    for url in (afile.as_uri(), str(afile)):
        line = one_line(cli(command[0], "--remote", url, *command[1:]), 2)
        assert str(afile) in line and "not a folder" in line
    assert afile.read_text() == "x"


@pytest.mark.parametrize("command", [["info"], ["clear"], ["clear", "--function", "f"],
                                     ["prune", "--older-than", "1d"]])
def test_a_misspelt_remote_folder_is_refused_and_not_created(tmp_path: Path, command: list[str]) -> None:
    typo = tmp_path / "tema"
    for url in (typo.as_uri(), str(typo)):
        line = one_line(cli(command[0], "--remote", url, *command[1:]), 2)
        assert str(typo) in line
        assert not typo.exists()


def _closed_port() -> int:
    """Return a port of 127.0.0.1 on which nothing listens (the system's choice, let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("command", [["info"], ["clear"], ["clear", "--function", "f"],
                                     ["prune", "--older-than", "1d"]])
def test_a_server_that_does_not_answer_fails_in_one_line(command: list[str]) -> None:
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{_closed_port()}", "AWS_ACCESS_KEY_ID": "x",
           "AWS_SECRET_ACCESS_KEY": "y", "AWS_REGION": "us-east-1"}
    line = one_line(cli(command[0], "--remote", "s3://bucket/prefix", *command[1:], **env), 1)
    assert "s3://bucket/prefix" in line


def test_a_client_that_cannot_start_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("AZURE_")]:
        monkeypatch.delenv(name)
    line = one_line(cli("info", "--remote", "az://container/prefix"), 2)  # no storage account named anywhere
    assert "az://container/prefix" in line and "Account" in line
