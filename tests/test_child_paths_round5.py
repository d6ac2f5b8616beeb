"""Files and folders named on the command line of a process the body starts: a folder is taken as read with
everything below it (``grep -r ERROR logs``, ``tar czf x.tgz data``), a name that was missing when the process
started and exists after the run is the run's output (``cp in.txt out.txt``), and what such a process writes
into a folder the body declares with ``files=`` is its own doing, not a change by someone else.

Each test fails with a result served for files the body's processes never saw, a hit that leaves a file the run
wrote missing, or a result never stored.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import RUNS_SETUP, Shell, run_kernel

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


_MAKERS = [RUNS_SETUP, """
    import os, subprocess, sys
    ENV = {"PATH": os.environ["PATH"]}

    @memo
    def convert():
        ran("cp")
        return subprocess.run(["cp", "data/in.txt", "out.txt"], env=ENV).returncode

    @memo
    def train():
        ran("train")
        return subprocess.run([sys.executable, "train.py", "ckpt"], env=ENV).returncode

    OUT["values"] = [convert(), train()]
    OUT["runs"] = RUNS
"""]


def test_a_file_or_folder_a_child_makes_that_its_command_line_names_is_the_run_s_output(cache_dir: Path) -> None:
    folder = cache_dir.parent
    (folder / "data").mkdir()
    (folder / "data" / "in.txt").write_text("hello\n")
    (folder / "train.py").write_text(
        "import os, sys\n"
        "os.makedirs(sys.argv[1], exist_ok=True)\n"
        "open(os.path.join(sys.argv[1], 'model.bin'), 'w').write(open('data/in.txt').read())\n")
    assert run_kernel(_MAKERS, cache_dir, seed=1)["runs"] == {"cp": 1, "train": 1}
    assert run_kernel(_MAKERS, cache_dir, seed=2)["runs"] == {}  # left as the runs left them: hits
    (folder / "out.txt").unlink()
    (folder / "ckpt" / "model.bin").unlink()
    again = run_kernel(_MAKERS, cache_dir, seed=3)
    assert again["runs"] == {"cp": 1, "train": 1}, again  # a hit would not make them again
    assert (folder / "out.txt").read_text() == "hello\n" and (folder / "ckpt" / "model.bin").exists()
    (folder / "ckpt" / "model.bin").unlink()
    (folder / "ckpt").rmdir()
    assert run_kernel(_MAKERS, cache_dir, seed=4)["runs"] == {"train": 1}
    assert run_kernel(_MAKERS, cache_dir, seed=5)["runs"] == {}


def test_what_a_child_writes_into_a_declared_folder_is_no_change_by_someone_else(
        shell: Shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for folder in ("a", "b", "c"):  # one declared folder each: what one writes changes the others' folder
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "in.txt").write_text("b\na\n")
    (tmp_path / "summarize.py").write_text(
        "import os, sys\n"
        "open(os.path.join(sys.argv[1], 'summary.txt'), 'w').write(str(len(os.listdir(sys.argv[1]))))\n")
    shell.run("""
        import subprocess, sys, warnings
        from notebook_memo import memo

        class Runs(dict):
            def __memo_key__(self):
                return "runs"

        RUNS = Runs()

        @memo(files=["a/"])
        def sort_next_to_it():
            RUNS["sort"] = RUNS.get("sort", 0) + 1
            subprocess.run(["sort", "-o", "a/sorted.txt", "a/in.txt"], check=True)
            with open("a/sorted.txt") as made:
                return made.read()

        @memo(files=["b/"])
        def shell_line():
            RUNS["shell"] = RUNS.get("shell", 0) + 1
            subprocess.run("cat b/in.txt | wc -l > b/lines.txt", shell=True, check=True)
            return "done"

        @memo(files=["c"])
        def script_on_folder():
            RUNS["script"] = RUNS.get("script", 0) + 1
            subprocess.run([sys.executable, "summarize.py", "c"], check=True)
            return "done"

        def all_three():
            return [sort_next_to_it(), shell_line(), script_on_folder()]

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            first = all_three()
            second = all_three()
        found = [str(w.message) for w in caught]
    """)
    assert shell["RUNS"] == {"sort": 1, "shell": 1, "script": 1}, shell["found"]  # stored, then hits
    assert shell["found"] == [] and shell["second"] == shell["first"] == ["a\nb\n", "done", "done"]
    for folder in ("a", "b", "c"):
        (tmp_path / folder / "in.txt").write_text("c\nb\na\n")
    shell.run("third = all_three()")
    assert shell["third"][0] == "a\nb\nc\n" and shell["RUNS"] == {"sort": 2, "shell": 2, "script": 2}
    assert (tmp_path / "b" / "lines.txt").read_text().strip() == "3"
