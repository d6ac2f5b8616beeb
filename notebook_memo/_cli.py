"""The command line: ``python -m notebook_memo`` or ``notebook-memo``.

Exit codes: 0 done, 1 the work failed, 2 bad usage or not a cache directory.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import stat
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

from . import _conditions, _config
from ._config import DURATION_TEXT, duration_text, parse_size
from ._errors import ConfigurationError, MemoWarning, StorageWarning
from ._inventory import Inventory, human_bytes, human_time, is_named, same_notebook
from ._notebook import short_name
from ._serialize import Signer, signer_for
from .stores import _remote_admin
from .stores.local import UntrustedFolder, get_store, is_cache_directory
from .stores.remote import RemoteTier

__all__ = ()

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """A problem the user can fix; printed without a traceback."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def _inventory(directory: str) -> Inventory:
    path = Path(directory)
    if not path.exists():
        if path.is_symlink():  # a link to nothing: the folder it named was moved or removed, or never made
            raise CliError(f"{path} is a link to {os.readlink(path)}, which does not exist: no cache directory "
                           "there; point the link at the cache, or pass --dir")
        raise CliError(f"no cache directory at {path}: run a memoized function first, or pass --dir")
    if not path.is_dir():
        raise CliError(f"{path} is {_what_is(path)}, not a cache directory")
    if not is_cache_directory(str(path)):
        raise CliError(f"{path} is not a notebook_memo cache directory (no {path / 'NOTEBOOK_MEMO_CACHE'} marker); "
                       "refusing to touch it")
    try:
        size_limit = _config.resolve_size_limit()
    except ValueError as exc:
        raise CliError(f"{_config.ENV_SIZE_LIMIT}: {exc}") from None
    store = get_store(str(path.resolve()), size_limit)
    refused = store.refusal()
    if isinstance(refused, UntrustedFolder):  # upkeep would warn and find nothing: the command is refused instead
        raise refused
    return Inventory(store)


def _what_is(path: Path) -> str:
    """Return what ``path``, found and not a folder, is in words: "a file", or the kind of special file (a named
    pipe, a socket, a device) it is."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return "something other than a folder"
    return "a file" if stat.S_ISREG(mode) else f"a {_conditions.file_kind(mode)}"


def shown(text: object) -> str:
    """Return ``text`` for the terminal: control and other unprintable characters escaped (``\\x1b``), so a
    name read from a cache (unverified, it may be planted) cannot move the cursor, retitle or clear the window."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(text))


def _named(meta: dict[str, object], function: str, notebook: str | None) -> bool:
    """Return whether an entry's metadata is of ``function`` (by the names the local clear takes), of ``notebook``
    if given."""
    if not is_named(meta, function):
        return False
    if notebook is None:
        return True
    # As the local clear picks them: a path names one notebook, even where another folder holds one of its name.
    return same_notebook(meta.get("notebook"), notebook)


def _age(text: str) -> float:
    """Return the seconds ``--older-than`` names; a CliError when it cannot be read."""
    seconds = duration_text(text)
    if seconds is None:
        raise CliError(f"--older-than: cannot read the age {text!r}: write seconds (3600) or {DURATION_TEXT}")
    if not seconds > 0:
        raise CliError(f"--older-than must be positive, got {text!r}")
    return seconds


def _size(text: str) -> int:
    """Return the bytes ``--max-size`` names; a CliError when it cannot be read."""
    try:
        return parse_size(text)
    except (TypeError, ValueError) as exc:
        raise CliError(f"--max-size: {exc}") from None


def _remote(args: argparse.Namespace, writes: bool) -> RemoteTier | None:
    """Return the remote tier ``--remote`` names (alone: the configured one), or None without ``--remote``."""
    if args.remote is None:
        return None
    url = args.remote or os.environ.get(_config.ENV_REMOTE)
    if not url:
        raise CliError(f"--remote needs a URL (s3://bucket/prefix, file:///mnt/team/cache) or {_config.ENV_REMOTE}")
    if writes and _config.env_flag(_config.ENV_REMOTE_READ_ONLY):
        raise CliError(f"{url} is configured read-only ({_config.ENV_REMOTE_READ_ONLY}): not changing it")
    # A tier of its own, not the one memoized functions share: upkeep creates no folder, and is told why it
    # cannot open one rather than given None with a warning.
    try:
        return RemoteTier(url, read_only=False, create=False)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    except Exception as exc:  # a client that cannot start with these settings: nothing was asked of a server yet
        raise CliError(f"cannot open the remote {url} ({_first_line(exc)}): check the URL and the settings "
                       "of its storage") from None


def _first_line(exc: BaseException) -> str:
    """Return an exception's kind and the first line of its message (a storage client's may run for dozens)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:300]}" if lines else type(exc).__name__


@contextlib.contextmanager
def _reaching(tier: RemoteTier) -> Iterator[None]:
    """Turn a remote that fails while upkeep lists, reads or deletes (a server that does not answer, a folder
    gone) into one line and exit 1, as a local cache that cannot be read; a CliError passes as it is."""
    try:
        yield
    except CliError:
        raise
    except Exception as exc:
        raise CliError(f"cannot use the remote {tier.url} ({_first_line(exc)}); check that it is reachable and "
                       "your credentials, then run this again", EXIT_FAILED) from None


def _signer() -> Signer | None:
    """Return the configured secret's signer, or None; a CliError for an empty secret."""
    try:
        secret = _config.resolve_secret()
    except ConfigurationError as exc:
        raise CliError(str(exc)) from None
    return signer_for(secret) if secret is not None else None


def _remote_info(tier: RemoteTier) -> int:
    rows = _remote_admin.summary(tier)
    if not rows:
        print(f"{tier.url}: empty")
        return EXIT_OK
    notebooks = any(row["notebook"] for row in rows)
    header = (f"{'function':<40} {'entries':>7} {'versions':>8} {'size':>10} {'newest':>16} {'compute':>9}"
              + ("  notebook" if notebooks else ""))
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{shown(row['name'])[-40:]:<40} {row['entries']:>7} {len(row['codes']):>8} "
              f"{human_bytes(row['bytes']):>10} {human_time(row['newest']):>16} {row['compute']:>8.1f}s"
              + (f"  {shown(short_name(row['notebook']))}" if notebooks else ""))
    print(f"\n{sum(r['entries'] for r in rows)} entries, {human_bytes(sum(r['bytes'] for r in rows))} in {tier.url}")
    return EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    tier = _remote(args, writes=False)
    if tier is not None:
        with _reaching(tier):
            return _remote_info(tier)
    inventory = _inventory(args.dir)
    rows = inventory.functions()
    if not rows:
        print(f"{args.dir}: empty")
        return EXIT_OK
    notebooks = any(row.notebook for row in rows)
    header = (f"{'function':<40} {'entries':>7} {'versions':>8} {'size':>10} {'hits':>6} "
              f"{'last used':>16} {'compute':>9}" + ("  notebook" if notebooks else ""))
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{shown(row.name)[-40:]:<40} {row.entries:>7} {row.versions:>8} {human_bytes(row.bytes):>10} "
              f"{row.hits:>6} {human_time(row.last_used):>16} {row.compute_seconds:>8.1f}s"
              + (f"  {shown(short_name(row.notebook))}" if notebooks else ""))
    total = sum(r.bytes for r in rows)
    print(f"\n{sum(r.entries for r in rows)} entries, {human_bytes(total)} in {args.dir} "
          f"({human_bytes(inventory.store.volume())} on disk with the index)")
    return EXIT_OK


def cmd_clear(args: argparse.Namespace) -> int:
    tier = _remote(args, writes=True)
    if tier is not None:
        if args.notebook and not args.function:
            raise CliError("--notebook narrows --function: name the function too")
        with _reaching(tier):
            items = _remote_admin.entries(tier)
            if args.function:
                items = [e for e in items if _named(e.meta, args.function, args.notebook)]
                if not items:
                    raise CliError(f"no entries for a function named {args.function!r} in {tier.url}", EXIT_FAILED)
            removed = _remote_admin.remove(tier, items)
        print(f"removed {removed} entries from {tier.url}")
        return EXIT_OK
    inventory = _inventory(args.dir)
    if args.function:
        removed = inventory.clear_function(args.function, args.notebook)
        if removed == 0:
            names = ", ".join(sorted({shown(r.name) for r in inventory.functions()})) or "none"
            where = f" of notebook {args.notebook}" if args.notebook else ""
            raise CliError(f"no entries for a function named {args.function!r}{where}; functions here: {names}",
                           EXIT_FAILED)
    elif args.notebook:
        raise CliError("--notebook narrows --function: name the function too")
    else:
        removed = inventory.clear_all()
    print(f"removed {removed} entries")
    return EXIT_OK


def cmd_prune(args: argparse.Namespace) -> int:
    if not (args.older_than or args.keep_latest or args.max_size):
        raise CliError("prune needs --older-than, --keep-latest or --max-size")
    # Read every value before the directory is touched: a bad one must not leave half a prune behind.
    age = _age(args.older_than) if args.older_than else None
    size = _size(args.max_size) if args.max_size else None
    tier = _remote(args, writes=True)
    if tier is not None:
        signer = _signer() if args.keep_latest else None
        with _reaching(tier):
            removed = _remote_admin.prune(tier, age, args.keep_latest, size, signer)
        print(f"removed {removed} entries from {tier.url}")
        return EXIT_OK
    inventory = _inventory(args.dir)
    started = time.time()
    removed = 0
    if age is not None:
        removed += inventory.prune_older_than(age)
    if args.keep_latest:
        removed += inventory.prune_keep_latest()
    if size is not None:
        removed += inventory.prune_max_size(size)
    inventory.store.repair(started)
    print(f"removed {removed} entries; {human_bytes(inventory.store.stored_bytes())} stored, "
          f"{human_bytes(inventory.store.volume())} on disk with the index")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    return run_demo(args.notebook, args.cache_dir, args.output)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="notebook-memo", description="Inspect and clean notebook_memo caches.")
    default_dir = _config.resolve_dir(None)
    sub = parser.add_subparsers(dest="command", required=True)

    def with_dir(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--dir", default=default_dir, help=f"cache directory (default: {default_dir})")
        p.add_argument("--remote", nargs="?", const="", default=None, metavar="URL",
                       help=f"act on the remote tier instead: URL, or alone for {_config.ENV_REMOTE}")
        return p

    with_dir(sub.add_parser("info", help="per function: entries, code versions, size, hits, last used, "
                                         "compute time stored"))
    clear = with_dir(sub.add_parser("clear", help="delete entries (all, or one function's)"))
    clear.add_argument("--function", help="qualified or short name of the function or cell")
    clear.add_argument("--notebook", help="only that function of this notebook (path or file name); a function of "
                                          "the same name in another notebook keeps its entries")
    prune = with_dir(sub.add_parser("prune", help="delete old, stale or excess entries"))
    prune.add_argument("--older-than", metavar="AGE",
                       help="entries stored longer ago than AGE (e.g. 7d, '12 hours', 1h30m, 3600)")
    prune.add_argument("--keep-latest", action="store_true", help="keep only the newest code version of each function")
    prune.add_argument("--max-size", metavar="SIZE",
                       help="evict least recently used entries down to SIZE (e.g. 5GB, 512MiB)")
    demo = sub.add_parser("demo", help="run the model-inference notebook twice through real kernels, "
                                       "with an edit in between, and save the second run")
    demo.add_argument("--notebook", default=None, help="notebook to run (default: notebooks/model_inference.ipynb)")
    demo.add_argument("--cache-dir", default=None, help="cache directory (default: a temporary one, removed after)")
    demo.add_argument("--output", default=None, help="folder for the executed .ipynb and .html (default: demo_output/)")
    return parser


# Options whose value may start with '-' (a negative age or size, refused with a reason).
_VALUED = ("--max-size", "--older-than")


def _values_attached(argv: Sequence[str]) -> list[str]:
    """Return ``argv`` with a value that starts with '-' attached to its option (``--max-size=-5GB``).

    argparse takes ``-5GB`` for an option and answers with its usage; attached, the value is read
    and refused in one line that says why.
    """
    out: list[str] = []
    for word in argv:
        if out and out[-1] in _VALUED and word.startswith("-") and word[1:2].isdigit():
            out[-1] = f"{out[-1]}={word}"
        else:
            out.append(word)
    return out


def _untrusted_for_the_command_line(message: str) -> str:
    """Return the refusal of a folder others could write, told as a command that was not carried out."""
    return message.replace("nothing is loaded from or stored in this cache; results are computed instead",
                           "its index is not opened, not even to list it")


def main(argv: Sequence[str] | None = None) -> int:
    with _conditions.paused():  # called in-process: the store's files it reads are not a running body's reads
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(_values_attached(sys.argv[1:] if argv is None else argv))
    if args.command == "demo":
        return cmd_demo(args)  # a notebook run: its warnings show as they come
    handlers = {"info": cmd_info, "clear": cmd_clear, "prune": cmd_prune}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", MemoWarning)
            code = handlers[args.command](args)
    except CliError as exc:
        print(f"notebook-memo: {exc}", file=sys.stderr)
        return exc.code
    except UntrustedFolder as exc:  # its index is not opened: SQLite would replay a log others could have planted
        print(f"notebook-memo: {_untrusted_for_the_command_line(exc.strerror or str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    # Our warnings as one line each, without Python's file and line; storage trouble (a damaged
    # index set aside, an unreadable directory) means the answer is not what the directory held.
    trouble = False
    for warning in caught:
        if issubclass(warning.category, MemoWarning):
            print(f"notebook-memo: {warning.message}", file=sys.stderr)
            trouble = trouble or issubclass(warning.category, StorageWarning)
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    return EXIT_FAILED if trouble and code == EXIT_OK else code

