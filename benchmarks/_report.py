"""What the benchmarks print and save: one table per case, and the closing summary against issue 15's goals."""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass
from typing import Any

RESULTS: dict[str, Any] = {}


@dataclass(frozen=True)
class Goal:
    """One row of the summary: what is measured, against which floor, and the ratio it should reach."""

    measure: str
    floor: str
    goal: str
    most: float  # the goal as a ratio to the floor
    most_vs_diskcache: float | None = None  # and to diskcache's memoize, where the goal says so


# Issue 15's table, in its order; the summary prints the rows measured in this run in this order.
GOALS: dict[str, Goal] = {
    "hit_other_key": Goal("small hit, a different key than the previous call", "pickle args + xxh3 + Cache.get "
                          "+ unpickle", "<= 2x floor, <= 0.6x diskcache memoize", 2.0, 0.6),
    "hit_same_key": Goal("small hit, the same key again (special case)", "same, same key", "<= 1.5x", 1.5),
    "miss": Goal("small miss, tiny body", "key + Cache.get + Cache.set", "<= 1.5x", 1.5),
    "hit_many": Goal("hit at {n} entries", "pickle args + xxh3 + Cache.get on the same cache.db + unpickle",
                     "<= 2x", 2.0),
    "batch_many": Goal("memo.batch per cached item, {n} items", "SELECT ... IN (...) + xxh3 + unpickle, same "
                       "cache.db", "<= 2x", 2.0),
    "hash_strs": Goal("hash a list of {n} short str", "lengths + utf-8 + one xxh3", "<= 3x", 3.0),
    "hash_arrays": Goal("hash a dict of {n} float64[1000] arrays", "xxh3 per key + buffer", "<= 2x", 2.0),
    "hash_strided": Goal("hash a strided view a[::2] of {n}", "chunked gather + xxh3", "<= 1.2x", 1.2),
    "hash_frame": Goal("hash a {n}-row frame, str + categorical columns", "xxh3 of numeric, codes, lengths, "
                       "utf-8", "<= 1.3x", 1.3),
    "load_wall": Goal("load a {n} array, busy machine: wall", "np.load", "<= 1.1x", 1.1),
    "load_cpu": Goal("load a {n} array, busy machine: CPU", "np.load", "<= 1.1x", 1.1),
    "first_miss": Goal("first miss in a fresh process, {n} entries", "the same at {m} entries", "<= 2x", 2.0),
    "global_frame_hit": Goal("hit of a function reading a global {n}-row frame with a str column",
                             "floor hash of that frame", "<= 1.2x", 1.2),
    "info": Goal("python -m notebook_memo info, {n} entries", "one full-scan SELECT + xxh3 per row (a process)",
                 "<= 2x", 2.0),
    "import": Goal("import notebook_memo, numpy and pandas imported", "import joblib", "<= 1x", 1.0),
}

SUMMARY: dict[str, dict[str, Any]] = {}


def quick_or_readme(doc: str | None) -> argparse.Namespace:
    """Parse a benchmark's ``--quick`` (small sizes, a smoke run) and ``--readme`` (rewrite its README table)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--readme", action="store_true", help="rewrite README.md's table from this run")
    args = parser.parse_args()
    if args.readme and args.quick:
        parser.error("--readme takes the full sizes: leave out --quick")
    return args


def human(seconds: float) -> str:
    """Return seconds in the unit that reads best: '15.2 us', '1.37 ms', '6.40 s'."""
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    if seconds >= 1e-6:
        return f"{seconds * 1e6:.1f} us"
    return f"{seconds * 1e9:.0f} ns"


def ratio_row(rows: list[tuple[str, str, float, float, str, bool]], measure: str, floor_label: str, floor: float,
              ours: float, goal: str, most: float) -> None:
    """Print one measure's ratio to its floor and add it to ``rows`` for a summary (``most``: the goal as a ratio)."""
    ratio = ours / floor
    met = ratio <= most
    rows.append((measure, floor_label, floor, ours, goal, met))
    print(f"  ratio: {measure}: {human(ours)} / {floor_label} {human(floor)} = {ratio:.2f}x "
          f"(goal {goal}: {'met' if met else 'not met'})")


def table(case: str, rows: list[tuple[str, float]], reference: str) -> None:
    """Print one case's contenders with their ratio to ``reference``, and keep the figures."""
    ref = dict(rows)[reference]
    print(f"\n{case}  (ratio = time / {reference})")
    for name, seconds in rows:
        print(f"  {name:<58} {human(seconds):>10}   {seconds / ref:>7.2f}x")
    RESULTS[case] = dict(rows)


def record(goal: str, floor: float, value: float, diskcache: float | None = None, note: str = "",
           **sizes: str) -> None:
    """Keep one summary row, print its ratio line, and note whether the goal is met."""
    spec = GOALS[goal]
    ratio = value / floor
    met = ratio <= spec.most
    if spec.most_vs_diskcache is not None and diskcache is not None:
        met = met and value / diskcache <= spec.most_vs_diskcache
    row = {"measure": spec.measure.format(**sizes), "floor_label": spec.floor.format(**sizes), "floor": floor,
           "notebook_memo": value, "ratio": ratio, "goal": spec.goal, "met": met, "diskcache": diskcache,
           "note": note, "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    SUMMARY[goal] = row
    against = f"; diskcache memoize {human(diskcache)} ({value / diskcache:.2f}x of it)" if diskcache else ""
    print(f"  ratio: {row['measure']}: {human(value)} / floor {human(floor)} = {ratio:.2f}x "
          f"(goal {spec.goal}: {'met' if met else 'not met'}){against}")
    if note:
        print(f"  {note}")


def print_summary() -> None:
    """Print the closing table: measure | floor | notebook_memo | ratio | goal | diskcache memoize."""
    rows = [(key, SUMMARY[key]) for key in GOALS if key in SUMMARY]
    if not rows:
        return
    width = max(len(row["measure"]) for _, row in rows)
    print("\nsummary (issue 15): ratio = notebook_memo / floor, both measured in this run")
    head = (f"  {'measure':<{width}} {'floor':>10} {'notebook_memo':>13} {'ratio':>7}  {'goal':<38} {'met':<3} "
            f"{'diskcache memoize':>17}")
    print(head)
    print("  " + "-" * (len(head) - 2))
    for _, row in rows:
        dc = human(row["diskcache"]) if row["diskcache"] else ""
        print(f"  {row['measure']:<{width}} {human(row['floor']):>10} {human(row['notebook_memo']):>13} "
              f"{row['ratio']:>6.2f}x  {row['goal']:<38} {'yes' if row['met'] else 'no':<3} {dc:>17}")
        if row["note"]:
            print(f"  {'':<4}{row['note']}")
    RESULTS["summary"] = {key: row for key, row in rows}


def goals() -> list[dict[str, Any]]:
    """Return the goals as plain data (for results.json)."""
    return [{"id": key, **asdict(goal)} for key, goal in GOALS.items()]


def merged(previous: dict[str, Any], quick: bool) -> dict[str, Any]:
    """Return this run's figures over ``previous`` (a results.json of the same sizes): a rerun of some
    cases replaces their rows and keeps the others, each row with its floor from its own run."""
    if previous.get("run", {}).get("quick") != quick:
        previous = {}
    out = {**previous, **{k: v for k, v in RESULTS.items() if k != "summary"}}
    summary = {**previous.get("summary", {}), **RESULTS.get("summary", {})}
    out["summary"] = {key: summary[key] for key in GOALS if key in summary}
    return out
