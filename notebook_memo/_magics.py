"""The IPython magics: ``%%memo`` caches a cell, ``%memo`` inspects and cleans (thin wrappers)."""

from __future__ import annotations

import argparse
import html
import shlex
from dataclasses import dataclass
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

from . import _config
from ._cells import CellOptions, cells, run_cell
from ._config import parse_ttl
from ._inventory import FunctionSummary, Inventory, Owner, human_bytes, human_time, owner
from ._memo import clear_stale_all, registered
from ._notebook import current_notebook, short_name
from ._store import get_store

__all__ = ()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would exit the kernel
        raise UsageError(f"%memo: {message}\n\n{self.format_usage()}")


def _cell_parser() -> _Parser:
    parser = _Parser(prog="%%memo", add_help=False,
                     description="Cache a whole cell: its variables, printed and displayed output.")
    parser.add_argument("name", nargs="?", help="a stable name for %memo clear/explain")
    parser.add_argument("--ttl", help="expire after this long: 90s, 30m, 6h, 7d")
    parser.add_argument("--refresh", action="store_true", help="run the cell and overwrite the entry")
    parser.add_argument("--inputs", help="comma-separated names that make up the key (instead of detection)")
    parser.add_argument("--outputs", help="comma-separated names to store and restore (instead of detection)")
    parser.add_argument("--quiet", action="store_true", help="no note when the cell comes from the cache")
    return parser


def _split(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


@dataclass
class InfoTable:
    """``%memo info``: a table in Jupyter, text in a terminal."""

    directory: str
    rows: list[FunctionSummary]
    hits: dict[Owner, tuple[int, float]]
    stale: dict[Owner, int]

    def _cells(self, row: FunctionSummary) -> list[str]:
        who = (row.fid, row.notebook)
        hits, saved = self.hits.get(who, (0, 0.0))
        cells = [row.name, row.kind, str(row.entries), str(row.versions), human_bytes(row.bytes),
                 str(hits), f"{saved:.1f} s", str(self.stale.get(who, 0)), human_time(row.last_stored)]
        return [*cells, short_name(row.notebook)] if self._notebooks else cells

    @property
    def _notebooks(self) -> bool:
        return any(r.notebook for r in self.rows)

    @property
    def _head(self) -> list[str]:
        head = ["name", "kind", "entries", "versions", "size", "hits", "saved", "stale", "last stored"]
        return [*head, "notebook"] if self._notebooks else head

    def __repr__(self) -> str:
        if not self.rows:
            return f"notebook_memo: nothing cached in {self.directory}"
        head = self._head
        table = [head] + [self._cells(r) for r in self.rows]
        widths = [max(len(row[i]) for row in table) for i in range(len(head))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
        return f"notebook_memo cache: {self.directory}\n" + "\n".join(lines)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{h}</th>" for h in self._head)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in self._cells(r)) + "</tr>"
                       for r in self.rows)
        return (f"<p>notebook_memo cache: <code>{html.escape(self.directory)}</code></p>"
                f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def info() -> InfoTable:
    """Return the cache's contents with this session's hits and stale counts."""
    directory = _config.resolve_dir(None)
    inventory = Inventory(get_store(directory, _config.resolve_size_limit()))
    rows = inventory.functions()
    hits: dict[Owner, tuple[int, float]] = {}
    current: dict[Owner, str] = {}
    for fn in registered():
        hits[(fn.function_id, fn.notebook)] = (fn.hits, fn.saved_seconds)
        if fn.last_call is not None:
            current[(fn.function_id, fn.notebook)] = fn.last_call.code.hex()
    for cell in cells():
        hits[(cell.function_id, cell.notebook)] = (cell.hits, cell.saved_seconds)
        if cell.last_call is not None:
            current[(cell.function_id, cell.notebook)] = cell.last_call.code.hex()
    stale: dict[Owner, int] = {}
    for _, meta in inventory.records():
        who = owner(meta)
        if who in current and meta.get("code") != current[who] and "variants" not in meta:
            stale[who] = stale.get(who, 0) + 1
    return InfoTable(directory, rows, hits, stale)


def clear_directory(directory: str, everything: bool) -> str:
    """Delete this notebook's entries (or, ``everything``, all of the directory's); say what was done.

    The directory is shared by the notebooks of a folder: without ``everything`` the others keep
    their results. With no notebook known (plain IPython), the entries no notebook recorded go.
    """
    inventory = Inventory(get_store(directory, _config.resolve_size_limit()))
    if everything:
        return f"removed {inventory.clear_all()} entries from {directory}"
    notebook = current_notebook()
    removed = inventory.clear_notebook(notebook)
    whose = f"of {short_name(notebook)}" if notebook else "recorded outside any notebook"
    return (f"removed {removed} entries {whose} from {directory}; "
            "%memo clear --all removes every entry there, other notebooks' included")


def _find(name: str) -> Any:
    for fn in registered():
        if name in (fn.qualified_name, fn.qualified_name.rpartition(".")[2]):
            return fn
    for cell in cells():
        if name in (cell.label, cell.qualified_name):
            return cell
    raise UsageError(f"%memo: no memoized function or named cell called {name!r} in this session")


def line_command(line: str) -> Any:
    """Run ``%memo info | clear [NAME | --stale | --all] | off | on | dir [PATH] | explain NAME``."""
    words = shlex.split(line)
    command, rest = (words[0], words[1:]) if words else ("info", [])
    if command == "info":
        return info()
    if command == "clear":
        if rest == ["--stale"]:
            removed = clear_stale_all() + sum(cell.clear_stale() for cell in cells())
            print(f"removed {removed} stale entries")
        elif rest and rest != ["--all"]:
            print(f"removed {_find(rest[0]).clear()} entries of {rest[0]}")
        else:
            directory = _config.resolve_dir(None)
            print(clear_directory(directory, everything=rest == ["--all"]))
        return None
    if command in ("off", "on"):
        _config.settings.disabled = command == "off"
        print(f"notebook_memo caching is {'off: bodies and cells run' if command == 'off' else 'on'}")
        return None
    if command == "dir":
        if rest:
            _config.settings.cache_dir = rest[0]
        print(_config.resolve_dir(None))
        return None
    if command == "explain":
        if not rest:
            raise UsageError("%memo explain NAME: name a memoized function or a named cell")
        report = _find(rest[0]).explain_last()
        if report is None:
            raise UsageError(f"%memo: {rest[0]} has not run in this session yet")
        return report
    raise UsageError(f"%memo: unknown command {command!r}; use info, clear, off, on, dir or explain")


@magics_class
class MemoMagics(Magics):
    """``%%memo`` caches a cell; ``%memo`` manages the cache."""

    @line_cell_magic
    def memo(self, line: str, cell: str | None = None) -> Any:
        """Cache a whole cell, or inspect and clean the cache.

        Cell:  %%memo [NAME] [--ttl TTL] [--refresh] [--inputs a,b] [--outputs x,y] [--quiet]
            Re-running the cell with the same code and the same input values restores the
            variables it defined, shows its printed and displayed output again, and skips running it.

        Line:  %memo info | clear [NAME | --stale | --all] | off | on | dir [PATH] | explain NAME
        """
        if cell is None:
            return line_command(line)
        args = _cell_parser().parse_args(shlex.split(line))
        options = CellOptions(args.name, parse_ttl(args.ttl), args.refresh, _split(args.inputs),
                              _split(args.outputs), args.quiet)
        return run_cell(self.shell, cell, options)


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics (``%load_ext notebook_memo``)."""
    ipython.register_magics(MemoMagics)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the magics again."""
    manager = ipython.magics_manager
    for kind in ("line", "cell"):
        manager.magics[kind].pop("memo", None)
