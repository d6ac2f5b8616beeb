"""The IPython magics: ``%%memo`` caches a cell, ``%memo`` inspects and cleans (thin wrappers)."""

from __future__ import annotations

import ast
import contextlib
import html
import shlex
import warnings
from dataclasses import dataclass
from typing import Any

from IPython.core.displayhook import DisplayHook
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from . import _conditions, _config, _top_level
from ._cells import CellOptions, cells, leading_blank_lines, run_cell
from ._config import duration_text, parse_ttl
from ._inventory import FunctionSummary, Inventory, Owner, human_bytes, human_time
from ._memo import clear_stale_all, registered
from ._notebook import current_notebook, short_name
from .stores.local import get_store, unusable_message

__all__ = ()

# What each ``%memo`` subcommand accepts after its name: (most words, its usage).
_SUBCOMMANDS = {
    "info": (0, "info"),
    "clear": (1, "clear [NAME | --stale | --all]"),
    "off": (0, "off"),
    "on": (0, "on"),
    "dir": (1, "dir [PATH]"),
    "explain": (1, "explain NAME"),
}


def _split(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def _ttl(text: str | None) -> float | None:
    """Return ``--ttl`` in seconds; a bare number is seconds."""
    if text is None:
        return None
    try:
        return parse_ttl(text)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"%%memo --ttl {text}: {exc}") from None


def cell_options(args: Any) -> CellOptions:
    """Return the options of a ``%%memo`` line parsed by its magic_arguments."""
    return CellOptions(args.name, _ttl(args.ttl), args.refresh, _split(args.inputs), _split(args.outputs),
                       args.quiet)


def _cell_arguments(magic: Any, line: str) -> Any:
    """Parse a ``%%memo`` line; a mistake is a one-line UsageError that names the magic.

    The words are split as a shell splits them, so ``--ttl "6 hours"`` is one value without its
    quotes (IPython's own splitting keeps them).
    """
    try:
        words = shlex.split(line)
        split = _split_list(words) or _split_ttl(words)
        if split is not None:
            raise UsageError(split)
        return magic.parser.parse_args(words)
    except (UsageError, ValueError) as exc:
        raise UsageError(f"%%memo {line}: {exc}; see %%memo --help") from None


def _split_list(words: list[str]) -> str | None:
    """Say why the words hold a list of names split by a space (``--inputs a, b``), if they do.

    Such a list is two words: the one after the comma would be taken as the cell's name (or refused as an extra
    word), and the list would lack that name, so the cell would be keyed or restored without it.
    """
    for word in words:
        value = word.partition("=")[2] if word.startswith("--") and "=" in word else word
        if value.startswith(",") or value.endswith(","):
            return (f"{value!r} {'starts' if value.startswith(',') else 'ends'} with a comma: a list of names is one "
                    "word, written without spaces (--inputs a,b) or quoted (--inputs 'a, b')")
    return None


def _split_ttl(words: list[str]) -> str | None:
    """Say why the words hold a ``--ttl`` split by a space (``--ttl 6 hours``), if they do.

    The word after the value would be taken as the cell's name, and the entry would expire after 6 seconds.
    """
    for index, word in enumerate(words):
        if word == "--ttl" and index + 2 < len(words):
            value, after = words[index + 1], words[index + 2]
        elif word.startswith("--ttl=") and index + 1 < len(words):
            value, after = word[len("--ttl="):], words[index + 1]
        else:
            continue
        if not after.startswith("-") and duration_text(value) is not None \
                and duration_text(f"{value} {after}") is not None:
            return (f"--ttl {value} {after} is two words, so {after!r} would be taken as the cell's name; quote the "
                    f"time (--ttl '{value} {after}'), or give a cell that name first (%%memo {after} --ttl {value})")
    return None


def help_text() -> str:
    """The help of ``%memo`` and ``%%memo``: every option and subcommand."""
    return str(MemoMagics.memo.__doc__)


def _line_words(line: str) -> tuple[str, list[str]]:
    """Split a ``%memo`` line into its subcommand and the words after it, refusing what it does not take."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"%memo: cannot read {line!r} ({exc}); quote a path with spaces in it") from None
    command, rest = (words[0], words[1:]) if words else ("info", [])
    if command not in _SUBCOMMANDS:
        return command, rest
    most, usage = _SUBCOMMANDS[command]
    options = [w for w in rest if w.startswith("-") and not (command == "clear" and w in ("--stale", "--all"))]
    if options:
        raise UsageError(f"%memo {command}: unknown option {options[0]!r}; usage: %memo {usage}")
    if len(rest) > most:
        extra = " ".join(repr(w) for w in rest[most:])
        raise UsageError(f"%memo {command}: unexpected {extra}; usage: %memo {usage}")
    return command, rest


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
        # The code a call would be stored under now, as clear_stale() compares: a batch function has no
        # last_call, and a function defined again but not called yet has stale entries all the same.
        with contextlib.suppress(Exception):
            current[(fn.function_id, fn.notebook)] = fn.current_code().hex()
    for cell in cells():
        hits[(cell.function_id, cell.notebook)] = (cell.hits, cell.saved_seconds)
        if cell.last_call is not None:
            current[(cell.function_id, cell.notebook)] = cell.last_call.code.hex()
    stale: dict[Owner, int] = {}
    for who, versions in inventory.code_counts().items():
        if who in current:
            count = sum(n for code, n in versions.items() if code != current[who])
            if count:
                stale[who] = count
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


def refusal(directory: str) -> str | None:
    """Return why the cache folder ``directory`` is not used (others could write it, it cannot be opened), or None."""
    refused = get_store(directory, _config.resolve_size_limit()).refusal()
    return None if refused is None else unusable_message(directory, refused)


def _lookup(name: str) -> Any:
    """Return the function or named cell of this session called ``name``, or None.

    ``name`` is its qualified name or an end of it (``fit``, ``Model.fit``); one that names two is refused.
    """
    found: list[Any] = [fn for fn in registered() if _names(fn.qualified_name, name)]
    found += [cell for cell in cells() if name in (cell.label, cell.qualified_name)]
    exact = [f for f in found if f.qualified_name == name]
    if exact or len(found) == 1:
        return (exact or found)[0]
    if found:
        names = ", ".join(sorted(f.qualified_name for f in found))
        raise UsageError(f"%memo: {name!r} names {len(found)} memoized functions ({names}); "
                         "give the one you mean as Class.method or its qualified name")
    return None


def _find(name: str) -> Any:
    found = _lookup(name)
    if found is None:
        raise UsageError(f"%memo: no memoized function or named cell called {name!r} in this session")
    return found


def clear_named(name: str) -> str:
    """Delete the entries of one function or named cell of this notebook; say how many.

    One not defined in this session yet (a restarted kernel) is found by name among what this
    notebook stored; other notebooks' functions of the same name keep theirs.
    """
    found = _lookup(name)
    if found is not None:
        return f"removed {found.clear()} entries of {name}"
    inventory = Inventory(get_store(_config.resolve_dir(None), _config.resolve_size_limit()))
    removed = inventory.clear_owned(name, current_notebook())
    if not removed:
        raise UsageError(f"%memo: no memoized function or named cell called {name!r} in this session, "
                         "and none of this notebook's entries has that name")
    return f"removed {removed} entries of {name}"


def _names(qualified: str, name: str) -> bool:
    """Return whether ``name`` is ``qualified`` or a dotted ending of it."""
    return qualified == name or qualified.endswith("." + name)


def line_command(line: str) -> Any:
    """Run ``%memo info | clear [NAME | --stale | --all] | off | on | dir [PATH] | explain NAME``."""
    with _conditions.paused():  # the store's files it reads and deletes are not a running body's reads
        return _line_command(line)


def _line_command(line: str) -> Any:
    if any(word in ("-h", "--help") for word in line.split()):
        print(help_text())
        return None
    command, rest = _line_words(line)
    if command == "info" or (command == "clear" and rest in ([], ["--all"])):
        refused = refusal(_config.resolve_dir(None))
        if refused is not None:  # said as the command line says it, not as a traceback
            print(f"notebook_memo: {refused}")
            return None
    if command == "info":
        return info()
    if command == "clear":
        if rest == ["--stale"]:
            removed = clear_stale_all() + sum(cell.clear_stale() for cell in cells())
            print(f"removed {removed} stale entries")
        elif rest and rest != ["--all"]:
            print(clear_named(rest[0]))
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
            # The folder meant now: a relative path would name another one after a %cd.
            _config.settings.cache_dir = _config.resolve_dir(rest[0])
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


def _ends_quiet(cell: str) -> bool:
    """Return True when the cell's code ends with a semicolon, which silences its value in IPython."""
    try:
        return bool(DisplayHook.semicolon_at_end_of_expression(cell))
    except Exception:  # a cell IPython's tokenizer cannot read ran anyway: show its value
        return False


@magics_class
class MemoMagics(Magics):
    """``%%memo`` caches a cell; ``%memo`` manages the cache."""

    @line_cell_magic
    @magic_arguments()
    @argument("name", nargs="?", help="a stable name for the cell, for %%memo clear NAME and %%memo explain NAME")
    @argument("--ttl", help="expire after this long: seconds (3600) or text such as 90s, 30m, 6h, 7d")
    @argument("--refresh", action="store_true", help="run the cell and overwrite the entry")
    @argument("--inputs", metavar="A,B", help="comma-separated names that make up the key (instead of detection)")
    @argument("--outputs", metavar="X,Y", help="comma-separated names to store and restore (instead of detection); "
              "an input the cell changes in place must be among them, or the cell is not stored")
    @argument("--quiet", action="store_true", help="no note when the cell comes from the cache")
    @argument("-h", "--help", action="store_true", help="show this help; the cell does not run")
    def memo(self, line: str, cell: str | None = None) -> Any:
        """
        Cache a whole cell (%%memo), or inspect and clean the cache (%memo).

        %%memo [NAME] [options]
            Re-running the cell with the same code and the same input values restores the
            variables it defined, shows its printed and displayed output again, and skips running it.

        %memo SUBCOMMAND
            info            what is cached: entries, size, hits and time saved per function and cell
            clear [NAME]    remove this notebook's entries, or those of one memoized function or named cell
            clear --stale   remove the entries made by older versions of the code run in this session
            clear --all     remove every entry in the cache directory, other notebooks' included
            off | on        turn caching off (functions and cells run) or back on
            dir [PATH]      show the cache directory, or use PATH from now on
            explain NAME    why the last call of a function or named cell hit or missed
        """
        __tracebackhide__ = True  # an error raised in the cell shows the cell's frames, not ours
        if cell is None:
            return line_command(line)
        args = _cell_arguments(self.memo, line)
        if args.help:
            print(help_text())
            return None
        result = run_cell(self.shell, cell, cell_options(args), header=f"%%memo {line}".rstrip())
        return None if _ends_quiet(cell) else result  # `plt.plot(...);` shows nothing, as in a plain cell


_MAGIC_CALL = "get_ipython().run_cell_magic('memo',"


class _SyntaxErrorsAsInAnyCell:
    """An input transformer: a ``%%memo`` cell whose code does not compile becomes that code.

    IPython then reports the syntax error itself, as in any cell (``Cell In[n], line k`` and a
    caret, no frames): one that does not parse fails before the cell runs; one that parses but
    does not compile (``return`` outside a function) fails at that statement, as in any cell.
    Nothing is cached. Raised from inside the magic, the error would come with the magic's frames
    and the line numbers of the body instead.
    """

    def __init__(self, shell: Any) -> None:
        self.shell = shell

    def __call__(self, lines: list[str]) -> list[str]:
        if not lines or not lines[0].startswith(_MAGIC_CALL):
            return lines
        body = _magic_body("".join(lines))
        if body is None:
            return lines
        try:
            code = self.shell.transform_cell(body)
            # Compiled, not only parsed: 'return' or 'break' outside their place parse, then fail to compile.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the run compiles it again and warns then
                compile(code, "<%%memo cell>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
        except SyntaxError:
            # The magic's line stays as a comment so that the lines are numbered as the user sees them.
            return ["# %%memo\n", *["\n"] * leading_blank_lines(body), *code.splitlines(keepends=True)]
        except Exception:
            return lines  # whatever else went wrong is the magic's to report
        return lines


def _magic_body(source: str) -> str | None:
    """Return the cell text of a transformed ``%%memo`` cell, or None if it is not one."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Expr) or not isinstance(tree.body[0].value, ast.Call):
        return None
    args = tree.body[0].value.args
    if len(args) != 3 or not all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in args):
        return None
    body = args[2]
    assert isinstance(body, ast.Constant)
    return str(body.value)


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics (``%load_ext notebook_memo``)."""
    ipython.register_magics(MemoMagics)
    _top_level.start(ipython)
    transformers = ipython.input_transformers_post
    if not any(isinstance(t, _SyntaxErrorsAsInAnyCell) for t in transformers):
        transformers.append(_SyntaxErrorsAsInAnyCell(ipython))


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the magics again."""
    _top_level.stop(ipython)
    manager = ipython.magics_manager
    for kind in ("line", "cell"):
        manager.magics[kind].pop("memo", None)
    ipython.input_transformers_post[:] = [t for t in ipython.input_transformers_post
                                          if not isinstance(t, _SyntaxErrorsAsInAnyCell)]
