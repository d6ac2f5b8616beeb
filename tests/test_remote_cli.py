"""The command line on the remote tier: ``info``, ``clear`` and ``prune`` with ``--remote``.

The remote is a shared directory, or moto's S3-protocol server on 127.0.0.1 standing in for S3.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from notebook_memo import _cli, configure, memo
from notebook_memo.stores import _remote_admin
from tests.test_remote import _objects, dir_remote, remote, s3_remote, s3_server  # noqa: F401 (fixtures)


def _fill(url: str) -> tuple[object, object]:
    configure(remote=url)

    @memo
    def features(n: int) -> np.ndarray:
        return np.arange(n, dtype=np.float64)

    @memo
    def label(n: int) -> str:
        return f"n={n}"

    for n in (20_000, 30_000):
        features(n)
        label(n)
    return features, label


def test_info_lists_the_remote_per_function(remote: str, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    _fill(remote)
    assert _cli.main(["info", "--remote", remote]) == 0
    out = capsys.readouterr().out
    assert "features" in out and "label" in out
    assert "4 entries" in out


def test_clear_one_function_keeps_the_others_and_drops_unused_blobs(
        remote: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    _fill(remote)
    assert len(_objects(remote, "b/")) == 2
    monkeypatch.setattr(_remote_admin, "BLOB_GRACE", 0.0)
    assert _cli.main(["clear", "--remote", remote, "--function", "features"]) == 0
    assert "removed 2 entries" in capsys.readouterr().out
    assert len(_objects(remote, "m/")) == 2
    assert _objects(remote, "b/") == []  # the arrays' blobs, named by no manifest now
    assert _cli.main(["clear", "--remote", remote]) == 0
    assert _objects(remote, "m/") == []


def test_clear_names_an_unknown_function(remote: str, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    _fill(remote)
    assert _cli.main(["clear", "--remote", remote, "--function", "nothing"]) == 1
    assert "no entries" in capsys.readouterr().err
    assert len(_objects(remote, "m/")) == 4


def test_prune_older_than_and_max_size(dir_remote: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    _fill(dir_remote)
    assert _cli.main(["prune", "--remote", dir_remote, "--older-than", "1h"]) == 0
    assert len(_objects(dir_remote, "m/")) == 4  # all young
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 7200)
    assert _cli.main(["prune", "--remote", dir_remote, "--older-than", "1h"]) == 0
    assert _objects(dir_remote, "m/") == []
    assert _objects(dir_remote, "b/") == []  # unnamed, and older than the grace period by the clock now


def test_prune_max_size_keeps_the_newest_within_the_size(dir_remote: str) -> None:  # noqa: F811
    _fill(dir_remote)
    assert _cli.main(["prune", "--remote", dir_remote, "--max-size", "250kB"]) == 0
    left = _objects(dir_remote, "m/")
    assert 0 < len(left) < 4


def test_prune_keep_latest_drops_old_code_versions(dir_remote: str, shell: object) -> None:  # noqa: F811
    configure(remote=dir_remote)
    run = shell.run  # type: ignore[attr-defined]
    run("from notebook_memo import memo\n@memo\ndef f(x):\n    return x + 1\nf(1); f(2)")
    run("@memo\ndef f(x):\n    return x + 2\nf(1)")
    assert len(_objects(dir_remote, "m/")) == 3
    assert _cli.main(["prune", "--remote", dir_remote, "--keep-latest"]) == 0
    assert len(_objects(dir_remote, "m/")) == 1


def test_a_read_only_remote_is_not_changed(dir_remote: str, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                                           capsys: pytest.CaptureFixture[str]) -> None:
    _fill(dir_remote)
    monkeypatch.setenv("NOTEBOOK_MEMO_REMOTE_READ_ONLY", "1")
    assert _cli.main(["clear", "--remote", dir_remote]) == 2
    assert "read-only" in capsys.readouterr().err
    assert len(_objects(dir_remote, "m/")) == 4


def test_remote_alone_takes_the_configured_url(dir_remote: str, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                                               capsys: pytest.CaptureFixture[str]) -> None:
    _fill(dir_remote)
    monkeypatch.setenv("NOTEBOOK_MEMO_REMOTE", dir_remote)
    assert _cli.main(["info", "--remote"]) == 0
    assert "4 entries" in capsys.readouterr().out
    monkeypatch.delenv("NOTEBOOK_MEMO_REMOTE")
    assert _cli.main(["info", "--remote"]) == 2
