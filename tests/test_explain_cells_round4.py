"""What ``explain_last`` and ``%memo explain`` say after a miss whose run was stored as a variant (per folder or
random state) or was not stored at all, in a real shell; and %%memo cells that leave a closed file object
(``with open(...) as fh``), stored and restored closed, in the shell and after a restart."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from notebook_memo._serialize import dumps, loads
from tests.conftest import RUNS_SETUP, Shell, run_kernel

# Bodies whose run is stored as a variant of its key: a file named relative to the current folder, a draw from
# the global random generator, a file written there, a process started.
VARIANT_BODIES = {
    "reads": "return a + len(pathlib.Path('data.txt').read_text())",
    "draws": "return a + random.random()",
    "writes": "pathlib.Path(f'out{a}.txt').write_text('x')\n    return a",
    "spawns": "return a + len(subprocess.run(['true'], capture_output=True).stdout)",
}


@pytest.fixture
def ip(shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Shell:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.txt").write_text("abc")
    shell.run("%load_ext notebook_memo\nfrom notebook_memo import memo\nimport pathlib, random, subprocess")
    return shell


@pytest.mark.parametrize("name", sorted(VARIANT_BODIES))
def test_explain_after_a_miss_stored_as_a_variant_names_the_real_reason(ip: Shell, name: str) -> None:
    ip.run(f"@memo\ndef {name}(a):\n    {VARIANT_BODIES[name]}")
    ip.run(f"{name}(1)")
    first = str(ip.run(f"{name}.explain_last()"))
    assert "first run" in first and "stored now" in first, first
    ip.run(f"{name}(2)")
    second = str(ip.run(f"%memo explain {name}"))
    assert "argument 'a' differs" in second and "key format" not in second, second
    ip.run(f"{name}(3)")  # two variants stored beside the run's own: the closest still differs in 'a'
    third = str(ip.run(f"{name}.explain_last()"))
    assert "closest of 2 stored entries" in third and "argument 'a' differs" in third, third


def test_a_cell_stored_per_folder_is_explained_by_its_input(ip: Shell) -> None:
    cell = "%%memo rel\nt = pathlib.Path('data.txt').read_text() * A"
    ip.run("A = 1")
    ip.run(cell)
    assert "first run" in str(ip.run("%memo explain rel"))
    ip.run("A = 2")
    ip.run(cell)
    report = str(ip.run("%memo explain rel"))
    assert "input 'A' differs" in report and "key format" not in report, report


@pytest.mark.parametrize(("source", "why"), [
    ("fh = open('data.txt')\nfirst = fh.readline()", "cannot be stored"),
    ("import threading\nguard = threading.Lock()", "cannot be stored"),
    # Its neighbours, refused after the run too: a name bound on some paths only over an unhashable value, and a
    # file the cell reads and rewrites.
    ("if flag:\n    lock = None\ny = 1", "on some paths only"),
    ("p = pathlib.Path('data.txt')\np.write_text(p.read_text() + 'x')", "which it also reads"),
])
def test_a_cell_its_run_could_not_store_is_explained_as_unstored(ip: Shell, source: str, why: str) -> None:
    ip.run("import threading\nflag = False\nlock = threading.Lock()")
    with pytest.warns(Warning, match=why):
        ip.run(f"%%memo unpicklable\n{source}")
    for _ in range(2):  # the first run, then the next (warned once), explained alike
        report = str(ip.run("%memo explain unpicklable"))
        assert "runs each time, unstored" in report and why in report, report
        ip.run(f"%%memo unpicklable\n{source}")


# -- a file object the cell closed is an output like any other -------------------------------------------------

CLOSED_FILE_CELLS = {
    "with_text": "with open('cfg.json') as fh:\n    cfg = json.load(fh)",
    "plain_close": "fh = open('cfg.json')\ncfg = json.loads(fh.read())\nfh.close()",
    "binary": "with open('cfg.json', 'rb') as fh:\n    cfg = json.loads(fh.read())",
    "unbuffered": "with open('cfg.json', 'rb', buffering=0) as fh:\n    cfg = json.loads(fh.read())",
    "writes": "with open('cfg.json') as src, open('copy.json', 'w', encoding='latin-1') as fh:\n"
              "    cfg = json.load(src)\n    fh.write('{}')",
}


@pytest.mark.parametrize("name", sorted(CLOSED_FILE_CELLS))
def test_a_cell_leaving_a_closed_file_is_restored_with_it_closed(ip: Shell, name: str) -> None:
    Path("cfg.json").write_text('{"k": 3}')
    ip.run("import json\n" + RUNS_SETUP)
    cell = f"%%memo {name}\nran('cell')\n{CLOSED_FILE_CELLS[name]}"
    ip.run(cell)
    kind, mode, encoding = type(ip["fh"]), ip["fh"].mode, getattr(ip["fh"], "encoding", None)
    ip.run("del fh, cfg")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ip.run(cell)
    assert ip["RUNS"] == {"cell": 1} and ip["cfg"] == {"k": 3}
    fh = ip["fh"]
    assert type(fh) is kind and fh.closed and fh.mode == mode and getattr(fh, "encoding", None) == encoding
    assert fh.name == ("copy.json" if name == "writes" else "cfg.json")
    with pytest.raises(ValueError, match="closed file"):
        fh.read()


def test_an_open_file_is_still_not_stored(ip: Shell) -> None:
    Path("cfg.json").write_text('{"k": 3}')
    with pytest.warns(Warning, match="an open file"):
        ip.run("%%memo still_open\nfh = open('cfg.json')\nhead = fh.read(1)")
    ip.run("fh.close()")


def test_a_closed_file_is_rebuilt_without_opening_its_path(tmp_path: Path) -> None:
    path = tmp_path / "written.txt"
    with open(path, "w") as fh:
        fh.write("x")
    path.unlink()
    back = loads(dumps(fh).pickle)
    assert not path.exists() and back.closed and back.name == str(path) and back.mode == "w"


def test_a_closed_file_is_restored_after_a_restart(tmp_path: Path, cache_dir: Path) -> None:
    (tmp_path / "cfg.json").write_text('{"k": 3}')
    cells = ["%load_ext notebook_memo\nimport json\n" + RUNS_SETUP,
             "%%memo cfg\nran('cell')\nwith open('cfg.json') as fh:\n    cfg = json.load(fh)",
             "OUT.update(runs=RUNS.get('cell', 0), cfg=cfg, closed=fh.closed, name=fh.name, kind=type(fh).__name__)"]
    first = run_kernel(cells, cache_dir, seed=1)
    second = run_kernel(cells, cache_dir, seed=2)
    assert first["runs"] == 1 and second["runs"] == 0, second
    assert second["cfg"] == {"k": 3} and second["closed"] and second["name"] == "cfg.json"
    assert second["kind"] == "TextIOWrapper" and not [w for w in second["_warnings"] if "memo" in w.lower()], second
