"""Files and folders named on the command line of a process the body starts: a folder is taken as read with
everything below it (``grep -r ERROR logs``, ``tar czf x.tgz data``), a name that was missing when the process
started and exists after the run is the run's output (``cp in.txt out.txt``), and what such a process writes
into a folder the body declares with ``files=`` is its own doing, not a change by someone else.

Each test fails with a result served for files the body's processes never saw, a hit that leaves a file the run
wrote missing, or a result never stored.
"""
from __future__ import annotations

from pathlib import Path

from tests.conftest import RUNS_SETUP, run_kernel

# The children get an environment of their own: what they inherit is checked otherwise (and the kernels differ in
# PYTHONHASHSEED).
_FOLDER_READERS = [RUNS_SETUP, """
    import os, subprocess, sys
    ENV = {"PATH": os.environ["PATH"]}

    @memo
    def count_errors():
        ran("grep")
        return subprocess.run(["grep", "-r", "-c", "ERROR", "logs"], capture_output=True, text=True,
                              env=ENV).stdout

    @memo
    def script_on_folder():
        ran("script")
        return subprocess.run([sys.executable, "count.py", "logs/"], capture_output=True, text=True,
                              env=ENV).stdout

    OUT["values"] = [count_errors(), script_on_folder()]
    OUT["runs"] = RUNS
"""]


def test_a_folder_named_on_a_child_s_command_line_is_read_with_everything_below_it(cache_dir: Path) -> None:
    folder = cache_dir.parent  # where run_kernel's kernels run
    logs = folder / "logs"
    (logs / "old").mkdir(parents=True)
    (logs / "app.log").write_text("ok\nERROR a\n")
    (logs / "old" / "app.1.log").write_text("ERROR z\n")
    (folder / "count.py").write_text(
        "import os, sys\n"
        "print(sum(open(os.path.join(r, n)).read().count('ERROR') for r, _, ns in os.walk(sys.argv[1]) for n in ns))\n")
    first = run_kernel(_FOLDER_READERS, cache_dir, seed=1)
    assert first["values"][1] == "2\n"
    assert run_kernel(_FOLDER_READERS, cache_dir, seed=2)["runs"] == {}  # unchanged: hits
    # The same names, other content: a file rewritten in place, then one in a subfolder, then one added below.
    (logs / "app.log").write_text("ok\nERROR a\nERROR b\nERROR c\n")
    second = run_kernel(_FOLDER_READERS, cache_dir, seed=3)
    assert second["runs"] == {"grep": 1, "script": 1} and second["values"][1] == "4\n", second
    (logs / "old" / "app.1.log").write_text("ERROR z\nERROR y\n")
    third = run_kernel(_FOLDER_READERS, cache_dir, seed=4)
    assert third["runs"] == {"grep": 1, "script": 1} and third["values"][1] == "5\n", third
    (logs / "old" / "app.2.log").write_text("ERROR x\n")
    fourth = run_kernel(_FOLDER_READERS, cache_dir, seed=5)
    assert fourth["runs"] == {"grep": 1, "script": 1} and fourth["values"][1] == "6\n", fourth
    assert run_kernel(_FOLDER_READERS, cache_dir, seed=6)["runs"] == {}
