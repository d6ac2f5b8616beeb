"""The main job: a model-inference notebook run twice through real Jupyter kernels on one cache.

Between the runs one function's code is edited (the notebook's cell metadata says which text to
replace), so the second run shows both sides: everything unaffected restored from disk, the edited
function computed again, and its ``explain`` saying why. Each run is summarised per cell; the second
is saved with its outputs as ``.ipynb`` and ``.html``.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import itertools
import json
import os
import queue
import tempfile
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _config
from ._inventory import Inventory
from .stores.local import get_store

__all__ = ()

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_NOTEBOOK = ROOT / "notebooks" / "model_inference.ipynb"
DEFAULT_OUTPUT = ROOT / "demo_output"
TEMP_PREFIX = "notebook_memo_demo_"
RESTORED_NOTE = "[notebook_memo] restored"
IDLE_WAIT_S = 30  # how long the report waits for the kernel to say a request of its own is done
EDIT_KEY = "demo_edit"  # cell metadata: {"old": text, "new": text}, applied between the runs
EXPLAIN_TAG = "explain"  # the cell whose output is the edited function's explanation
LABEL_WIDTH = 44

# Evaluated silently in the kernel after each cell (a user expression: no history, no output): the
# hits and misses of every memoized function there, through memo_counters below (a kernel that has not
# imported notebook_memo has none).
_COUNTERS = ("__import__('notebook_memo._demo', fromlist=['_']).memo_counters(globals()) "
             "if 'notebook_memo' in __import__('sys').modules else '[]'")
# {serial of a memoized function object: (its name, hits, misses)}, as read after a cell.
Counters = dict[int, tuple[str, int, int]]
# In the kernel: a number per memoized function object, never reused, as an id() is once the object is gone
# (a cell that redefines one function and defines another could otherwise have the new one's counts read
# against the old one's).
_serials: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
_next_serial = itertools.count(1)


def memo_counters(namespace: dict[str, Any]) -> str:
    """Return, as JSON, ``[serial, name, hits, misses]`` for each memoized function object ``namespace`` holds,
    once each: its functions by name, and the memoized methods of its classes as ``Class.method``."""
    found: dict[int, list[Any]] = {}
    for name, value in list(namespace.items()):
        if isinstance(value, type):
            for attribute, member in list(vars(value).items()):
                # A staticmethod or classmethod holds the memoized function, which has no __func__ of its own.
                _note_counters(found, f"{value.__name__}.{attribute}", getattr(member, "__func__", member))
        else:
            _note_counters(found, name, value)
    return json.dumps(list(found.values()))


def _note_counters(found: dict[int, list[Any]], name: str, value: Any) -> None:
    try:
        if not (callable(getattr(value, "cache_info", None)) and callable(getattr(value, "explain", None))):
            return
        serial = _serials.get(value)
        if serial is None:
            serial = _serials.setdefault(value, next(_next_serial))
        if serial not in found:
            hits, misses = value.cache_info()[:2]
            found[serial] = [serial, name, hits, misses]
    except Exception:  # a user's object whose attributes raise, or that takes no weak reference: not ours
        return


def _read_counters(value: dict[str, Any]) -> Counters:
    """Return the counters in a kernel's reply to the ``_COUNTERS`` user expression ({} if it failed)."""
    if value.get("status") != "ok":
        return {}
    rows = json.loads(ast.literal_eval(value["data"]["text/plain"]))
    return {int(serial): (str(name), int(hits), int(misses)) for serial, name, hits, misses in rows}


@dataclass
class CellReport:
    """What one code cell did in one run."""

    index: int
    count: int | None
    label: str
    outcome: str  # "computed", "restored" or "ran" (no memoized work)
    seconds: float
    detail: str = ""
    stderr: str = ""


@dataclass
class Run:
    """One execution of a notebook: the executed notebook, its wall time and a report per code cell."""

    notebook: Any
    seconds: float
    cells: list[CellReport] = field(default_factory=list)

    @property
    def cell_seconds(self) -> float:
        return sum(c.seconds for c in self.cells)


def _kernel_config() -> Any:
    """Return kernel manager settings: CurveZMQ keys for kernels whose kernelspec supports them.

    Over plain TCP ipykernel warns, rightly, that anyone on the machine could read the traffic. Keys
    from the manager (jupyter_client 8.10's ``transport_encryption``) encrypt it and need no files; the
    IPC transport would put its sockets in the kernel's working directory.
    """
    from traitlets.config import Config

    config = Config()
    config.KernelManager.transport_encryption = "auto"
    return config


def _make_client(notebook: Any, directory: Path, timeout: int) -> Any:
    """Return an nbclient client that also reports, per code cell, its time and memoized calls."""
    from jupyter_core.utils import ensure_async
    from nbclient import NotebookClient

    class ReportingClient(NotebookClient):  # type: ignore[misc]
        reports: list[CellReport]
        counters: Counters  # after the last cell: nothing else runs in between

        async def async_execute_cell(self, cell: Any, cell_index: int, execution_count: int | None = None,
                                     store_history: bool = True) -> Any:
            start = time.perf_counter()
            result = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
            seconds = time.perf_counter() - start
            if cell.cell_type == "code":
                before, self.counters = self.counters, await self._counters()
                self.reports.append(_report(cell_index, result, seconds, before, self.counters))
            return result

        async def _counters(self) -> Counters:
            assert self.kc is not None
            msg_id = self.kc.execute("", silent=True, store_history=False, user_expressions={"memo": _COUNTERS})
            reply = await self.async_wait_for_reply(msg_id)
            await self._idle(msg_id)
            return _read_counters((reply or {}).get("content", {}).get("user_expressions", {}).get("memo", {}))

        async def _idle(self, msg_id: str) -> None:
            # Until the kernel says idle its handler may still be running, and the interrupt that
            # precedes a shutdown would land in it (ipykernel logs "KeyboardInterrupt caught").
            # Waited for a while only: a status read by another reader of the channel would otherwise be
            # waited for until the run's timeout, on every cell.
            assert self.kc is not None
            deadline = time.monotonic() + min(timeout, IDLE_WAIT_S)
            while (left := deadline - time.monotonic()) > 0:
                try:
                    msg = await ensure_async(self.kc.iopub_channel.get_msg(timeout=left))
                except queue.Empty:
                    return
                if (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status"
                        and msg["content"]["execution_state"] == "idle"):
                    return

    # A cell past its time is interrupted rather than abandoned: its error then shows where it was.
    client = ReportingClient(notebook, timeout=timeout, kernel_name="python3", config=_kernel_config(),
                             interrupt_on_timeout=True, resources={"metadata": {"path": str(directory)}})
    client.reports, client.counters = [], {}
    return client


def run_notebook(notebook: Any, directory: Path, cache_dir: Path, timeout: int = 600) -> Run:
    """Execute ``notebook`` in place on a fresh kernel started in ``directory``, caching into ``cache_dir``."""
    client = _make_client(notebook, directory, timeout)
    # A kernel that dies of a signal prints every thread's stack on its stderr.
    env = {**os.environ, _config.ENV_DIR: str(cache_dir), "PYTHONFAULTHANDLER": "1"}
    start = time.perf_counter()
    client.execute(env=env)
    return Run(notebook, time.perf_counter() - start, client.reports)


def execute_notebook(path: Path, cache_dir: Path, timeout: int = 600) -> tuple[Any, float]:
    """Run a notebook top to bottom on a fresh kernel; return the executed notebook and seconds."""
    import nbformat

    run = run_notebook(nbformat.read(str(path), as_version=4), path.parent, cache_dir, timeout)
    return run.notebook, run.seconds


def cache_summary(cache_dir: Path) -> tuple[int, float]:
    """Return (entries, seconds of computation they hold) in a cache directory."""
    rows = Inventory(get_store(str(cache_dir.resolve()), _config.resolve_size_limit())).functions()
    return sum(r.entries for r in rows), sum(r.compute_seconds for r in rows)


def cell_text(cell: Any) -> str:
    """Return what a code cell printed to stdout and the plain-text form of what it displayed."""
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream" and output.get("name") == "stdout":
            parts.append(output["text"])
        elif "data" in output:
            parts.append(output["data"].get("text/plain", ""))
    return "".join(parts)


def cell_stderr(cell: Any) -> str:
    """Return what a code cell printed to stderr."""
    return "".join(o["text"] for o in cell.get("outputs", []) if o.get("name") == "stderr")


def _label(source: str) -> str:
    lines = [line.strip() for line in source.splitlines() if line.strip()] or [""]
    # A decorator or a comment says less about a cell than the line after it; a cell magic says most.
    label = lines[0] if lines[0].startswith("%%") else next(
        (line for line in lines if not line.startswith(("@", "#"))), lines[0])
    return label if len(label) <= LABEL_WIDTH else label[:LABEL_WIDTH - 3] + "..."


def _report(index: int, cell: Any, seconds: float, before: Counters, after: Counters) -> CellReport:
    """Classify one executed code cell: computed, restored, or plain code."""
    # Per function object: a function the cell defined (or redefined) counts from zero.
    new: dict[str, list[int]] = {}
    for serial, (name, hits, misses) in after.items():
        _, hits_before, misses_before = before.get(serial, (name, 0, 0))
        counted = new.setdefault(name, [0, 0])
        counted[0] += hits - hits_before
        counted[1] += misses - misses_before
    calls, computed = [], False
    for name, (new_hits, new_misses) in new.items():
        computed = computed or new_misses > 0
        counts = [f"{new_misses} computed"] * (new_misses > 0) + [f"{new_hits} restored"] * (new_hits > 0)
        if counts:
            calls.append(f"{name}: {', '.join(counts)}")
    if cell.source.lstrip().startswith("%%memo"):
        outcome = "restored" if RESTORED_NOTE in cell_text(cell) else "computed"
    else:
        outcome = ("computed" if computed else "restored") if calls else "ran"
    return CellReport(index, cell.get("execution_count"), _label(cell.source), outcome, seconds,
                      "; ".join(calls), cell_stderr(cell))


def apply_edits(notebook: Any) -> dict[int, str]:
    """Apply the edits the cells' metadata describe, in place; return {cell index: what changed}."""
    done = {}
    for index, cell in enumerate(notebook.cells):
        edit = cell.get("metadata", {}).get(EDIT_KEY)
        if not edit:
            continue
        old, new = edit["old"], edit["new"]
        if cell.source.count(old) != 1:
            raise ValueError(f"cell {index}: the edit expects {old!r} exactly once in the cell's source")
        cell.source = cell.source.replace(old, new)
        done[index] = f"{old} -> {new}"
    return done


def explanations(notebook: Any) -> list[str]:
    """Return the text output of the cells tagged as explanations."""
    return [cell_text(c).rstrip() for c in notebook.cells
            if c.cell_type == "code" and EXPLAIN_TAG in c.get("metadata", {}).get("tags", [])]


def format_run(title: str, run: Run) -> str:
    """Return a run's summary: one row per code cell, then the time spent outside cells."""
    rows = [title, f"  {'cell':<{LABEL_WIDTH + 6}} {'result':<9} {'time':>7}   memoized calls"]
    for c in run.cells:
        count = f"[{c.count}]" if c.count is not None else "[ ]"
        rows.append(f"  {count:<5} {c.label:<{LABEL_WIDTH}} {c.outcome:<9} {c.seconds:6.2f}s   {c.detail}".rstrip())
        if c.stderr.strip():
            rows.append("        stderr: " + c.stderr.strip().replace("\n", "\n                "))
    rows.append(f"  {'outside the cells: kernel start-up, shutdown':<{LABEL_WIDTH + 6}} {'':<9} "
                f"{run.seconds - run.cell_seconds:6.2f}s")
    rows.append(f"  {'total':<{LABEL_WIDTH + 6}} {'':<9} {run.seconds:6.2f}s")
    return "\n".join(rows)


def save(notebook: Any, output: Path, stem: str) -> tuple[Path, Path]:
    """Write the executed notebook and its HTML export into ``output``; return both paths."""
    import nbformat
    from nbconvert import HTMLExporter

    output.mkdir(parents=True, exist_ok=True)
    ipynb, page = output / f"{stem}.ipynb", output / f"{stem}.html"
    nbformat.write(notebook, str(ipynb))
    body, _ = HTMLExporter().from_notebook_node(notebook)
    page.write_text(body, encoding="utf-8")
    return ipynb, page


@contextlib.contextmanager
def _cache_directory(given: str | None) -> Iterator[Path]:
    """Yield the given cache directory, or a temporary one that is removed afterwards."""
    if given:
        yield Path(given)
        return
    with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX, ignore_cleanup_errors=True) as directory:
        yield Path(directory)


def _run_twice(path: Path, source: Any, cache_dir: str | None) -> tuple[Run, Run]:
    """Run the notebook, apply its edits, run it again on the same cache; print each run's summary."""
    with _cache_directory(cache_dir) as directory:
        print(f"notebook: {path}\ncache:    {directory}{'' if cache_dir else ' (temporary)'}\n")
        first = run_notebook(copy.deepcopy(source), path.parent, directory)
        print(format_run("run 1: fresh kernel, empty cache", first))
        edited = copy.deepcopy(source)
        edits = apply_edits(edited)
        for index, change in edits.items():
            print(f"\nedit before run 2: {change}, in the cell of `{_label(edited.cells[index].source)}`")
        second = run_notebook(edited, path.parent, directory)
    for report in second.cells:
        if report.index in edits:
            report.detail = f"edited: {edits[report.index]}"
    print("\n" + format_run("run 2: fresh kernel, same cache" + (", after the edit" if edits else ""), second))
    return first, second


def run_demo(notebook: str | None, cache_dir: str | None, output: str | None = None) -> int:
    """Run the demo and print its summary; return 0, or 1 when a cell failed."""
    import nbformat
    from nbclient.exceptions import CellExecutionError

    path = Path(notebook) if notebook else DEFAULT_NOTEBOOK
    if not path.exists():
        print(f"notebook-memo: no notebook at {path}")
        return 2
    source = nbformat.read(str(path), as_version=4)
    try:
        first, second = _run_twice(path, source, cache_dir)
    except CellExecutionError as exc:
        print(f"notebook-memo: a cell of {path} failed:\n{exc}")
        return 1
    for text in explanations(second.notebook):
        print("\nexplain, before the edited function ran again:\n  " + text.replace("\n", "\n  "))
    restored = sum(c.outcome == "restored" for c in second.cells)
    computed = [c.label for c in second.cells if c.outcome == "computed"]
    cached = [(a.seconds, b.seconds) for a, b in zip(first.cells, second.cells) if a.outcome != "ran"]
    before, after = sum(a for a, _ in cached), sum(b for _, b in cached)
    print(f"\nrun 1 {first.seconds:.2f} s, run 2 {second.seconds:.2f} s: {first.seconds / second.seconds:.1f}x faster, "
          f"kernel start-up and imports included")
    print(f"the {len(cached)} cells with memoized work: {before:.2f} s -> {after:.2f} s, "
          f"{before / max(after, 1e-3):.1f}x faster")
    print(f"run 2 restored {restored} cells from the cache and computed {len(computed)} again"
          + (f": {', '.join(computed)}" if computed else ""))
    ipynb, page = save(second.notebook, Path(output) if output else DEFAULT_OUTPUT, path.stem)
    print(f"\nthe second run, with its outputs: {ipynb}\n                                  {page}")
    return 0
