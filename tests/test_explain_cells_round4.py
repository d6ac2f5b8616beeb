"""What ``explain_last`` and ``%memo explain`` say after a miss whose run was stored as a variant (per folder or
random state) or was not stored at all, in a real shell."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Shell

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
    assert "nothing is cached" in first, first
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
    assert "nothing is cached" in str(ip.run("%memo explain rel"))
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
