"""benchmarks/run.py runs (two cheap cases at --quick sizes) and prints each measure beside its floor.

No figure is checked: timings belong to the benchmark's output, never to a test's verdict.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=120, cwd=ROOT)


def test_quick_run_prints_ratio_lines_and_summary_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    done = run(str(BENCH / "run.py"), "--quick", "--only", "hashing", "global", "--json", str(out))
    assert done.returncode == 0, done.stderr
    ratio_lines = [line for line in done.stdout.splitlines() if line.strip().startswith("ratio:")]
    assert len(ratio_lines) == 5, done.stdout  # four hashing measures and the global-frame hit
    assert all("/ floor" in line and "x (goal" in line for line in ratio_lines), ratio_lines
    assert "summary (issue 15)" in done.stdout
    results = json.loads(out.read_text())
    assert list(results["summary"]) == ["hash_strs", "hash_arrays", "hash_strided", "hash_frame",
                                        "global_frame_hit"]
    assert all(row["floor"] > 0 and row["notebook_memo"] > 0 for row in results["summary"].values())
    assert results["run"]["quick"] is True


def test_readme_table_rewrites_only_between_the_markers(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    row = {"measure": "small miss, tiny body", "floor_label": "key + Cache.get + Cache.set", "floor": 2e-4,
           "notebook_memo": 3e-4, "ratio": 1.5, "goal": "<= 1.5x", "met": True, "diskcache": 4e-4, "note": "",
           "measured": "2026-01-01 00:00 UTC"}
    results.write_text(json.dumps({"run": {"quick": False, "header": "a machine"}, "summary": {"miss": row}}))
    readme = tmp_path / "README.md"
    readme.write_text("# title\n\nbefore\n<!-- perf-table:start -->\nold table\n<!-- perf-table:end -->\nafter\n")
    done = run(str(BENCH / "readme_table.py"), "--results", str(results), "--readme", str(readme))
    assert done.returncode == 0, done.stderr
    text = readme.read_text()
    assert text.startswith("# title\n\nbefore\n<!-- perf-table:start -->\n| measure | floor |")
    assert text.endswith("<!-- perf-table:end -->\nafter\n")
    assert "old table" not in text
    assert "| small miss, tiny body | key + Cache.get + Cache.set: 200.0 us | 300.0 us | 1.50x |" in text


def test_readme_table_refuses_quick_figures(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"run": {"quick": True}, "summary": {}}))
    done = run(str(BENCH / "readme_table.py"), "--results", str(results), "--readme", str(tmp_path / "README.md"))
    assert done.returncode == 2
    assert "--quick" in done.stderr


def test_gpu_benchmark_quick_run_prints_each_cpu_measure_beside_its_floor() -> None:
    done = run(str(BENCH / "gpu.py"), "--quick")
    assert done.returncode == 0, done.stderr
    ratio_lines = [line for line in done.stdout.splitlines() if line.strip().startswith("ratio:")]
    measures = ["hash a 64 MiB CPU tensor", "hit of infer(model, batch)", "store a 32 MiB cpu tensor",
                "load a 32 MiB cpu tensor", "hit with mmap=True", "hit of a dict"]
    cuda_rows = 0 if "no CUDA device" in done.stdout else 4  # hash, model hit, store, load on the device
    assert len(ratio_lines) == len(measures) + cuda_rows, done.stdout
    for measure in measures:
        assert any(measure in line and "x (goal" in line for line in ratio_lines), (measure, ratio_lines)
    assert "summary (issue 16)" in done.stdout


def test_remote_benchmark_quick_run_prints_each_measure_beside_its_floor() -> None:
    for module in ("moto", "boto3", "obstore"):
        importlib.import_module(module)
    done = run(str(BENCH / "remote.py"), "--quick")
    assert done.returncode == 0, done.stderr
    assert "stand-in for S3" in done.stdout
    ratio_lines = [line for line in done.stdout.splitlines() if line.strip().startswith("ratio:")]
    measures = ["remote hit, small value", "local hit, small value, remote configured",
                "remote store, 8 MiB float64 array", "remote load, 8 MiB float64 array"]
    assert len(ratio_lines) == len(measures), done.stdout
    for measure in measures:
        assert any(measure in line and "x (goal" in line for line in ratio_lines), (measure, ratio_lines)
    request_lines = [line for line in done.stdout.splitlines() if line.strip().startswith("requests:")]
    assert len(request_lines) == 2 * len(measures), done.stdout  # each printed, then again in the summary
    assert "summary (remote tier)" in done.stdout
