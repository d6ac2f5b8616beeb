"""Two notebooks in one folder: neither one's clean-up deletes what the other stored.

Real kernels (nbclient) with the notebook's path given the way Jupyter gives it
(``JPY_SESSION_NAME``, which ipykernel turns into ``__session__``), a real shell, and the CLI
in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from notebook_memo import StaleEntriesWarning, _config
from notebook_memo._inventory import Inventory
from notebook_memo.stores.local import get_store
from tests.conftest import Shell

HEAD = "%load_ext notebook_memo\nfrom notebook_memo import memo"
DEFINE_A = "@memo\ndef load_data(n):\n    return ('a', n)"
DEFINE_B = "@memo\ndef load_data(n):\n    return ('b', n)"


def run_notebook(path: Path, cells: list[str], cache: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Write and execute a notebook in a fresh kernel that knows its path; return each cell's text."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbformat.write(notebook, str(path))
    monkeypatch.setenv("JPY_SESSION_NAME", str(path))  # what Jupyter's server gives the kernel it starts
    monkeypatch.setenv(_config.ENV_DIR, str(cache))
    client = NotebookClient(notebook, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    texts = []
    for cell in notebook.cells:
        parts = []
        for output in cell.outputs:
            if output.output_type == "stream":
                parts.append(output.text)
            elif output.output_type == "error":
                raise AssertionError(f"cell failed: {output.ename}: {output.evalue}\n{cell.source}")
            elif "data" in output:
                parts.append(output.data.get("text/plain", ""))
        texts.append("".join(parts))
    return texts


def stored(cache: Path) -> list[tuple[str, str]]:
    """Return (notebook file name, arguments) of every entry in the cache."""
    inventory = Inventory(get_store(str(cache), _config.resolve_size_limit()))
    return sorted((os.path.basename(meta.get("notebook") or ""), repr(meta.get("args")))
                  for _, meta in inventory.records())


def cli(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "notebook_memo", *args, "--dir", str(cache)],
                          capture_output=True, text=True, timeout=120)


def test_two_notebooks_in_one_folder_never_delete_each_others_results(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    cache = folder / ".notebook_memo"
    run_notebook(folder / "a.ipynb", [HEAD, DEFINE_A, "[load_data(i) for i in range(3)]"], cache, monkeypatch)
    assert [nb for nb, _ in stored(cache)] == ["a.ipynb"] * 3

    b = run_notebook(folder / "b.ipynb", [
        HEAD, DEFINE_B, "load_data(0)",
        "print('stale', load_data.clear_stale())",
        "%memo clear --stale",
        "print('cleared', load_data.clear())",
        "load_data(7)",
    ], cache, monkeypatch)
    assert "stale 0" in b[3]
    assert "removed 0" in b[4]
    assert "cleared 1" in b[5]  # its own entry, not a's three
    assert "StaleEntriesWarning" not in "".join(b) and "other version" not in "".join(b)
    assert [nb for nb, _ in stored(cache)] == ["a.ipynb"] * 3 + ["b.ipynb"]

    pruned = cli("prune", "--keep-latest", cache=cache)
    assert pruned.returncode == 0, pruned.stderr
    assert "removed 0 entries" in pruned.stdout
    assert [nb for nb, _ in stored(cache)] == ["a.ipynb"] * 3 + ["b.ipynb"]

    info = cli("info", cache=cache)
    assert info.returncode == 0, info.stderr
    rows = [line for line in info.stdout.splitlines() if "load_data" in line]
    assert len(rows) == 2 and any("a.ipynb" in r for r in rows) and any("b.ipynb" in r for r in rows)

    # A third notebook with a's code shares a's results; its clean-up deletes none of them.
    c = run_notebook(folder / "c.ipynb", [
        HEAD, DEFINE_A, "[load_data(i) for i in range(3)]",
        "info = load_data.cache_info(); print('hits', info.hits, 'misses', info.misses)",
        "print('cleared', load_data.clear(), 'stale', load_data.clear_stale())",
        "%memo clear",
    ], cache, monkeypatch)
    assert "hits 3 misses 0" in c[3]
    assert "cleared 0 stale 0" in c[4]
    assert "removed 0 entries" in c[5]
    assert [nb for nb, _ in stored(cache)] == ["a.ipynb"] * 3 + ["b.ipynb"]


@pytest.fixture
def ip(shell: Shell) -> Shell:
    shell.run("%load_ext notebook_memo\nfrom notebook_memo import memo")
    return shell


def test_two_lambdas_are_two_functions_not_two_versions_of_one(ip: Shell) -> None:
    ip.run("inc = memo(lambda x: x + 1)\ndouble = memo(lambda x: x * 2)\ninc(1), double(1), double(2)")
    assert ip.run("inc.clear_stale(), double.clear_stale()") == (0, 0)
    assert ip.run("inc.cache_info().entries, double.cache_info().entries") == (1, 2)
    assert ip.run("inc.clear()") == 1
    assert ip.run("double.cache_info().entries") == 2
    assert ip.run("double(2); double.cache_info().hits") == 1


def test_named_cells_of_two_notebooks_are_cleaned_apart(ip: Shell, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    ip.run(f"__session__ = {str(tmp_path / 'a.ipynb')!r}")
    ip.run("%%memo prep\nrows = [1, 2, 3]")
    ip.run(f"__session__ = {str(tmp_path / 'b.ipynb')!r}")
    ip.run("%%memo prep\nrows = [4, 5]")
    capsys.readouterr()
    ip.run("%memo clear --stale")
    assert "removed 0 stale entries" in capsys.readouterr().out
    ip.run("%memo clear prep")
    assert "removed 1 entries" in capsys.readouterr().out
    ip.run(f"__session__ = {str(tmp_path / 'a.ipynb')!r}")
    ip.run("del rows")
    ip.run("%%memo prep\nrows = [1, 2, 3]")
    assert "restored" in capsys.readouterr().out  # a's cell survived b's clean-up


def test_info_shows_the_notebook_of_each_function(ip: Shell, tmp_path: Path) -> None:
    ip.run(f"__session__ = {str(tmp_path / 'analysis.ipynb')!r}")
    ip.run("@memo\ndef score(x):\n    return x\nscore(1)")
    table = ip.run("%memo info")
    assert "analysis.ipynb" in repr(table) and "analysis.ipynb" in table._repr_html_()


def test_plain_session_cleans_only_entries_with_no_notebook(ip: Shell, tmp_path: Path) -> None:
    ip.run(f"__session__ = {str(tmp_path / 'a.ipynb')!r}")
    ip.run("@memo\ndef load(n):\n    return ('a', n)\nload(1)")
    ip.run("del __session__")
    ip.run("@memo\ndef load(n):\n    return ('plain', n)\nload(1)")
    assert ip.run("load.clear_stale()") == 0
    assert ip.run("load.clear()") == 1
    assert ip.run(f"__session__ = {str(tmp_path / 'a.ipynb')!r}\n@memo\ndef load(n):\n    return ('a', n)\n"
                  "load(1); load.cache_info().hits") == 1


def test_a_lambda_and_the_notebook_travel_to_workers(tmp_path: Path) -> None:
    """A worker has neither the lambda's source nor the notebook: both come with the pickled function."""
    from tests.conftest import run_kernel

    notebook = str(tmp_path / "fan_out.ipynb")
    out = run_kernel([
        """
        from notebook_memo import memo
        from joblib import Parallel, delayed
        cube = memo(lambda x: x ** 3)
        square = memo(lambda x: x ** 2)
        """,
        """
        OUT["parallel"] = Parallel(n_jobs=2, backend="loky")(delayed(cube)(x) for x in range(4))
        OUT["again"] = [cube(x) for x in range(4)]
        OUT["hits"] = cube.hits
        OUT["squares"] = [square(x) for x in range(2)]
        OUT["stale"] = cube.clear_stale() + square.clear_stale()
        OUT["entries"] = [cube.cache_info().entries, square.cache_info().entries]
        """,
    ], tmp_path / "cache", env={"JPY_SESSION_NAME": notebook})
    assert out["parallel"] == out["again"] == [0, 1, 8, 27]
    assert out["hits"] == 4  # the workers stored under the notebook's keys
    assert out["stale"] == 0 and out["entries"] == [4, 2]
    assert {nb for nb, _ in stored(tmp_path / "cache")} == {"fan_out.ipynb"}


def test_vs_code_gives_the_notebook_too(ip: Shell, tmp_path: Path) -> None:
    ip.run(f"__vsc_ipynb_file__ = {str(tmp_path / 'a.ipynb')!r}")
    ip.run("@memo\ndef load(n):\n    return ('a', n)\nload(1)")
    ip.run(f"__vsc_ipynb_file__ = {str(tmp_path / 'b.ipynb')!r}")
    ip.run("@memo\ndef load(n):\n    return ('b', n)\nload(1)")
    assert ip.run("load.clear_stale(), load.clear()") == (0, 1)
    assert [nb for nb, _ in stored(tmp_path / "cache")] == ["a.ipynb"]


def test_a_batch_function_of_another_notebook_keeps_its_items(ip: Shell, tmp_path: Path) -> None:
    ip.run(f"__session__ = {str(tmp_path / 'a.ipynb')!r}")
    ip.run("@memo.batch('xs')\ndef embed(xs):\n    return [x + 1 for x in xs]\n_ = embed([1, 2, 3])")
    ip.run(f"__session__ = {str(tmp_path / 'b.ipynb')!r}")
    ip.run("@memo.batch('xs')\ndef embed(xs):\n    return [x - 1 for x in xs]\n_ = embed([1])")
    assert ip.run("embed.clear_stale(), embed.clear()") == (0, 1)
    assert [nb for nb, _ in stored(tmp_path / "cache")] == ["a.ipynb"] * 3


def test_cli_clears_one_notebooks_function_when_asked(ip: Shell, tmp_path: Path) -> None:
    for name in ("a", "b"):
        ip.run(f"__session__ = {str(tmp_path / (name + '.ipynb'))!r}")
        ip.run(f"@memo\ndef load(n):\n    return ({name!r}, n)\nload(1)")
    cache = tmp_path / "cache"
    done = cli("clear", "--function", "load", "--notebook", "b.ipynb", cache=cache)
    assert done.returncode == 0 and "removed 1 entries" in done.stdout, done.stderr
    assert [nb for nb, _ in stored(cache)] == ["a.ipynb"]
    missing = cli("clear", "--function", "load", "--notebook", "b.ipynb", cache=cache)
    assert missing.returncode == 1 and "of notebook b.ipynb" in missing.stderr


def test_clean_up_counts_entries_not_the_markers_of_random_state_entries(ip: Shell) -> None:
    ip.run("import numpy as np\n@memo\ndef noisy(x):\n    return np.random.rand() + x\n_ = noisy(1)")
    assert ip.run("noisy.cache_info().entries") == 1
    with pytest.warns(StaleEntriesWarning, match="1 cached entry"):
        ip.run("@memo\ndef noisy(x):\n    return np.random.rand() + x + 1\n_ = noisy(1)")
    assert ip.run("noisy.clear_stale()") == 1  # as many as cache_info() and the stale notice count
    assert ip.run("noisy.clear()") == 1
    assert ip.run("noisy.cache_info().entries") == 0
