"""Regenerate README.md's performance table from benchmarks/results.json.

    .venv/bin/python benchmarks/run.py              # full sizes: writes benchmarks/results.json
    .venv/bin/python benchmarks/readme_table.py     # rewrites the table between the perf-table markers
    .venv/bin/python benchmarks/readme_table.py --print   # shows it instead

Only the lines between ``<!-- perf-table:start -->`` and ``<!-- perf-table:end -->`` change.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks._report import human  # noqa: E402 (after the path that finds it)

START, END = "<!-- perf-table:start -->", "<!-- perf-table:end -->"


def markdown(results: dict[str, Any]) -> str:
    """Return the summary of a results.json as a Markdown table, with the line saying where it was measured."""
    rows = results.get("summary") or {}
    if not rows:
        raise SystemExit("results.json has no summary rows: run benchmarks/run.py first")
    lines = ["| measure | floor | notebook_memo | x floor | goal | diskcache memoize |",
             "| --- | --- | --- | --- | --- | --- |"]
    for row in rows.values():
        goal = f"{row['goal']} ({'met' if row['met'] else 'not yet'})"
        dc = human(row["diskcache"]) if row.get("diskcache") else ""
        measure = row["measure"] + (f" ({row['note']})" if row.get("note") else "")
        lines.append(f"| {measure} | {row['floor_label']}: {human(row['floor'])} | {human(row['notebook_memo'])} "
                     f"| {row['ratio']:.2f}x | {goal} | {dc} |")
    run = results.get("run", {})
    dates = sorted({row.get("measured", "") for row in rows.values()} - {""})
    when = dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}" if dates else "an unrecorded date"
    lines += ["", f"Measured by `benchmarks/run.py` ({run.get('header', 'unknown machine')}), {when}; each floor "
              "in the same process as its row, the contenders taking turns."]
    return "\n".join(lines)


def replaced(readme: str, table: str, start: str = START, end: str = END) -> str:
    """Return ``readme`` with the text between the markers replaced by ``table``."""
    if readme.count(start) != 1 or readme.count(end) != 1 or readme.index(start) > readme.index(end):
        raise SystemExit(f"README.md needs exactly one {start} ... {end} pair around the table")
    before, rest = readme.split(start)
    _, after = rest.split(end)
    return f"{before}{start}\n{table}\n{end}{after}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default=str(HERE / "results.json"))
    parser.add_argument("--readme", default=str(HERE.parent / "README.md"))
    parser.add_argument("--print", action="store_true", help="print the table; change nothing")
    parser.add_argument("--allow-quick", action="store_true", help="accept figures of a --quick run")
    args = parser.parse_args(argv)
    results = json.loads(Path(args.results).read_text())
    if results.get("run", {}).get("quick") and not args.allow_quick:
        print(f"{args.results} holds --quick figures (small sizes): run benchmarks/run.py without --quick, "
              "or pass --allow-quick", file=sys.stderr)
        return 2
    table = markdown(results)
    if args.print:
        print(table)
        return 0
    readme = Path(args.readme)
    readme.write_text(replaced(readme.read_text(), table))
    print(f"rewrote the performance table in {readme} ({len(results['summary'])} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
