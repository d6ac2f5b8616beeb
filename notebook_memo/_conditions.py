"""Preconditions: what a result depended on besides its key, recorded while the body ran.

Data files the body opened for reading, directories it listed, files it declared, and the
global random generators it drew from. They are stored with the entry (JSON in its verified
header) and checked on a hit: a changed file or listing is a miss, and a generator's state
before the run selects the entry (``variant_key``) while its state after is restored, so the
notebook goes on as if the body had run.

File reads are seen through Python's audit hooks (``open``, ``os.open``, ``os.listdir``,
``os.scandir``, ``sqlite3.connect``), so readers built on Python's open are covered without
patching them; readers that open files in C (a C++ file system layer) are not, and are
declared with ``files=`` or ``depends_on_file``.
"""

from __future__ import annotations

import collections.abc
import contextlib
import contextvars
import copy
import copyreg
import dis
import errno
import functools
import glob
import importlib
import importlib.machinery
import importlib.util
import inspect
import itertools
import linecache
import locale
import os
import pickle
import random
import secrets
import shlex
import shutil
import site
import stat
import sys
import sysconfig
import threading
import time
import tokenize
import types
import urllib.parse
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

import xxhash

from . import _lru_helpers
from ._config import FILE_DIGEST_LIMIT, RACY_SECONDS, own_thread
from ._databases import database_digest, database_state, expiry_window
from ._dependencies import _PACKAGE_STATE, _PANDAS_SECTIONS, SESSION_PREFIXES, SESSION_VARIABLES, STDIN_NAMES
from ._descriptors import FILE, UNNAMED, descriptor_file, file_clock
from ._fills import FillNotes, fill_digest, watch_fills
from ._fingerprint import is_user_code, module_attribute
from ._handles import LIKE, connection_settings, registered_code
from ._left_settings import left_change, left_probes, names_setter
from ._links import SAMEFILE, lead, watch_links
from ._memory_files import in_memory
from ._native_reads import watch_memory_files, watch_native_reads, watch_shared_memory
from ._notebook import notebook_paths
from ._random_state import (
    ENTROPY,
    NOT_LOADED,
    changed_since,
    describe_generators,
    encode,
    isolate_framework_draws,
    modules_mark,
    snapshot,
    state_digest,
    watch_entropy,
    watch_seeding,
)
from ._random_state import __file__ as _random_state_file
from ._replaced import install, replacing

__all__ = ()

# JSON-safe: "files", "dirs", "globs", "written", "links", "cwd", "home", "encoding", "environment", "states",
# "generators"
Conditions = dict[str, Any]

# The recorders of the memoized bodies running around this point; None while our own lookups run.
_active: contextvars.ContextVar[tuple[Recorder, ...] | None] = contextvars.ContextVar("notebook_memo_recorders",
                                                                                       default=())
# Every recorder running in the process. A read in another thread that runs no body of its own (a
# pool the body started) is the running bodies' read: attributed to all of them, which at worst
# costs a miss, never a stale hit. Not the main thread's (see _working_for).
_running: list[Recorder] = []
# Stamps ordering when runs began and when per-object cached values were filled (see held_value_read).
_stamps = itertools.count(1)
# glob.glob and glob.iglob: a pattern whose last parts are literal ("data/*/x.csv") is matched by
# listing "data" only and then testing each "data/<folder>/x.csv" without an event; so the pattern itself
# is kept (3.11 names the event with its root_dir "glob.glob/2", and raises the older one too).
_GLOB_EVENT = "glob.glob/2" if sys.version_info >= (3, 11) else "glob.glob"
_READ_EVENTS = frozenset({"open", "os.listdir", "os.scandir", "sqlite3.connect", _GLOB_EVENT})
_WRITE_EVENTS = frozenset({"os.remove", "os.unlink", "os.rename", "os.replace", "os.truncate", "os.rmdir",
                           "shutil.rmtree", "os.mkdir", "os.symlink", "os.link"})
# What makes a new name: the place of the path made in the event's arguments (a link's target is not written).
_MAKING = {"os.mkdir": 0, "os.symlink": 1, "os.link": 1}
_LINK = "symbolic link"  # the kind of a written condition that is a link the run made (with its target)
_CONNECTED = "sqlite3.connect/handle"  # a new SQLite connection: what it attaches opens files in C, with no event
# os.environ's writes: told apart by who makes them (a module's code run by an import is not the body's change)
_ENVIRONMENT_EVENTS = frozenset({"os.putenv", "os.unsetenv"})
# Another process started: it reads the environment and runs in the current folder (unless given others).
_SPAWN_EVENTS = frozenset({"subprocess.Popen", "os.system", "os.posix_spawn", "os.exec", "os.spawn", "os.fork",
                           "os.forkpty", "os.startfile"})
_READ_OR_CONNECTED = _READ_EVENTS | {_CONNECTED}
# A module not loaded yet begins to be imported (raised before its code runs; importlib.import_module raises none
# for the module it names, only for those its code imports)
_IMPORT_EVENT = "import"
_EVENTS = _READ_EVENTS | _WRITE_EVENTS | _ENVIRONMENT_EVENTS | _SPAWN_EVENTS | {_CONNECTED, _IMPORT_EVENT}
_PACKAGE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "")
# The standard library's readers of source lines (for tracebacks and inspect): their reads of Python source are
# code, not data; what they read of other files (linecache.getline on a text file) is data.
_SOURCE_READERS = frozenset({linecache.__file__, tokenize.__file__})
_SOURCE_SUFFIXES = (".py", ".pyw", ".pyi", ".ipy")
# importlib's own modules (importlib.metadata lists every folder on sys.path to find a package's
# metadata, on the first import of many packages): the import system, not data.
_IMPORTLIB_DIR = os.path.join(os.path.dirname(importlib.__file__), "")
# asyncio's own files (not imported here: its folder is importlib's sibling in the standard library)
_ASYNCIO_DIR = os.path.join(os.path.dirname(os.path.dirname(importlib.__file__)), "asyncio", "")
# The import system's file loader (frozen, or its source where Python is built without frozen modules): its
# get_data reads a module's code for an import, and a package's data file for pkgutil.get_data or the user.
_LOADER_FILES = frozenset({"<frozen importlib._bootstrap_external>",
                           os.path.join(_IMPORTLIB_DIR, "_bootstrap_external.py")})
_CODE_SUFFIXES = (*importlib.machinery.all_suffixes(), *_SOURCE_SUFFIXES)
_BYTECODE_FOLDER = f"{os.sep}__pycache__{os.sep}"
_SYSTEM = ("/proc/", "/sys/")
# Devices, terminals and pipes live here, but so do tmpfs folders kept for fast data (/dev/shm): a regular file
# or folder under it is data, as is one missing from a folder below it (a file the body may find made later).
_DEVICES = "/dev/"
_hook_installed = False
_GETLINES_CODE: types.CodeType | None = None  # the code of our wrapper of linecache.getlines, once it is in place
_hook_lock = threading.Lock()


# -- what is not data -----------------------------------------------------------------------------------------

def _library_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    found = {paths[name] for name in ("stdlib", "platstdlib", "purelib", "platlib") if name in paths}
    with contextlib.suppress(Exception):
        found.update(site.getsitepackages())
    with contextlib.suppress(Exception):
        found.add(site.getusersitepackages())
    # Zipped libraries on sys.path (the standard library's python311.zip, which the import system and
    # importlib.metadata look for whether or not it exists): the file itself and what it holds.
    zipped = {os.path.realpath(p) for p in sys.path if p.endswith(".zip")}
    return (*(os.path.join(os.path.realpath(p), "") for p in found if p), *zipped)


_LIBRARY_DIRS = _library_dirs()


def _is_data(real: str, stores: Iterable[str], notebooks: Iterable[str] = ()) -> bool:
    """Return True unless ``real`` is a library's or the system's, the running notebook, or a store's own file
    (only those in a cache folder: the folder may be the project's, data and all)."""
    if real.startswith(_SYSTEM) or real.startswith(_LIBRARY_DIRS) or real in notebooks:
        return False
    if real.startswith(_DEVICES) and not _plain_under_devices(real):
        return False
    return not any(real.startswith(os.path.join(d, "")) and _store_file(real[len(d) + 1:].split(os.sep), d)
                   for d in stores)


def _plain_under_devices(real: str) -> bool:
    """Return True when ``real``, under /dev, is a regular file or folder, or is missing from a folder below /dev
    (/dev/shm/x): not a device, a terminal or a pipe, which no condition can describe."""
    try:
        mode = os.stat(real).st_mode
    except OSError:
        parent = os.path.dirname(real)
        return parent != _DEVICES.rstrip("/") and os.path.isdir(parent)
    return stat.S_ISREG(mode) or stat.S_ISDIR(mode)


_HEX2 = frozenset(f"{i:02x}" for i in range(256))


def _store_file(parts: list[str], root: str) -> bool:
    """Return True when a path in the cache folder ``root`` (``parts``, below it) is the store's: its index (with
    the files SQLite keeps beside it, or one set aside as damaged), its marker, a payload file (``ab/cd/name``)
    or a folder holding only those. A folder of the user's with a name like ``01`` holds other names."""
    from ._serialize import FILE_NAME
    from .stores.local import _DB_NAME, _MARKER

    if len(parts) == 1 and (parts[0] == _MARKER or parts[0].startswith(_DB_NAME)):
        return True
    if len(parts) == 3:
        return FILE_NAME.fullmatch("/".join(parts)) is not None
    return 1 <= len(parts) <= 2 and all(p in _HEX2 for p in parts) and _fan_out(os.path.join(root, *parts))


def _fan_out(folder: str) -> bool:
    """Return True when ``folder`` (``ab`` or ``ab/cd`` in a cache folder) holds the store's payload folders or
    files and nothing else (an empty one may be the user's: a month's folder before its data)."""
    from ._serialize import PAYLOAD_NAME

    seen = False
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name in _HEX2 and entry.is_dir(follow_symlinks=False):
                    if not _fan_out(entry.path):
                        return False
                elif not PAYLOAD_NAME.fullmatch(entry.name):
                    return False
                seen = True
    except OSError:
        return False
    return seen


def _store_names(names: list[str], folder: str) -> list[str]:
    """Return a folder's names less the store's, where the folder holds a cache (its marker says so): the index
    files and payload folders come and go as results are stored, which is not the folder's content changing."""
    from .stores.local import _MARKER

    if _MARKER not in names:
        return names
    return [n for n in names if not _store_file([n], folder)]


# -- recording ------------------------------------------------------------------------------------------------

def _path_of(value: Any) -> str | None:
    if value is None:
        return "."  # os.listdir() and os.scandir() list the current folder
    if isinstance(value, int):
        return None
    try:
        path = os.fsdecode(value)
    except TypeError:
        return None
    return path or "."


def environment() -> dict[Any, Any]:
    """Return a copy of the process's environment: its raw bytes where it keeps them (nothing is decoded)."""
    return dict(_environment_now())


def _environment_now() -> Mapping[Any, Any]:
    """Return the process's environment as ``environment`` copies it, uncopied: to compare, never to keep."""
    data = getattr(os.environ, "_data", None)
    return data if isinstance(data, dict) else os.environ


_INT_DIGITS = "sys.set_int_max_str_digits"
_PANDAS_OTHER = "pandas.set_option"  # pandas' options that change no result (display.*): compared, never keyed


def _settings(libraries: Collection[str] | None = None) -> dict[str, Any]:
    """Return the process-wide settings of the libraries loaded now (torch's default dtype, decimal's context,
    pandas' options...: the table a key reads them from, and those no key reads: pandas' and numpy's display
    options, torch's grad mode, matplotlib's rcParams, see _left_settings), of those named only where
    ``libraries`` is given (named loggers where it holds "logging"), the process's own (warnings filters,
    sys.path...), and Python's limit on int-to-text digits. Not the recursion limit: every miss raises it for its
    own frames while it runs, in whichever thread, so another thread's body would see it move (Recorder compares it
    apart)."""
    global _chosen_readers
    mark = modules_mark()
    chosen = _chosen_readers
    if chosen[0] != mark or chosen[1] != libraries:
        _chosen_readers = chosen = (mark, libraries, _setting_readers(libraries))
    return {name: read() for name, read in chosen[2]}


def _setting_readers(libraries: Collection[str] | None) -> tuple[tuple[str, Callable[[], Any]], ...]:
    """Return the readers of what ``_settings(libraries)`` returns, by name, for the modules loaded now."""
    names = _PACKAGE_STATE if libraries is None else libraries
    readers: list[tuple[str, Callable[[], Any]]] = [(name, _PACKAGE_STATE[name]) for name in names
                                                     if name in sys.modules and name in _PACKAGE_STATE]
    if "pandas" in sys.modules and (libraries is None or "pandas" in libraries):
        readers.append((_PANDAS_OTHER, _pandas_other_options))
    readers += left_probes(libraries)
    limit = getattr(sys, "get_int_max_str_digits", None)
    if limit is not None:
        readers.append((_INT_DIGITS, lambda: str(limit())))
    return tuple(readers)


# What _settings reads are chosen by which modules are loaded: chosen again only when one was loaded or dropped since
# (its modules_mark), or for other libraries. The readers, the mark they were chosen at and the libraries asked.
_chosen_readers: tuple[Any, Collection[str] | None, tuple[tuple[str, Callable[[], Any]], ...]] = (None, None, ())


def _names_recursion_setter(names: frozenset[str]) -> bool:
    return "setrecursionlimit" in names


def _pandas_other_options() -> str:
    """Return pandas' options outside the sections a key reads (``display.max_rows=7``), as text."""
    config = sys.modules.get("pandas._config.config")
    table = getattr(config, "_global_config", None)
    if not isinstance(table, dict):
        return ""
    parts: list[str] = []
    groups = [(section, value) for section, value in table.items() if section not in _PANDAS_SECTIONS]
    while groups:
        name, value = groups.pop()
        if isinstance(value, dict):
            groups.extend((f"{name}.{key}", item) for key, item in value.items())
        else:
            parts.append(f"{name}={value!r}")
    return " ".join(sorted(parts))


def _setting_change(name: str, before: Any, after: Any) -> str:
    """Return a setting's change in words, naming its first part that differs (``prec=6``, ``torch.float64``)."""
    if isinstance(after, tuple):  # one of _left_settings'
        return left_change(before, after)
    if name == _INT_DIGITS:
        return f"sets Python's limit on the digits of an int turned into text ({_INT_DIGITS}) to {after}"
    part = next((b for a, b in itertools.zip_longest(before.split(), after.split(), fillvalue="")
                 if a != b), after)
    if name == _PANDAS_OTHER:
        return f"sets pandas' option {part or 'one unset'} (pd.set_option)"
    return f"changes {name}'s process-wide settings ({part or 'one unset'})"


def _signature(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _signature_of(absolute: str, listing: bool) -> tuple[bool, list[int] | None]:
    """Return whether what ``absolute`` names is what a read of it takes (a folder listed, a plain file read; true
    when nothing is there), and its signature (None when nothing is there)."""
    try:
        st = os.stat(absolute)
    except OSError:
        return True, None
    if listing != stat.S_ISDIR(st.st_mode) or not (listing or stat.S_ISREG(st.st_mode)):
        return False, None
    return True, _signature(st)


class Recorder:
    """What one run of a body read: files, listed directories, declared paths, generator states."""

    # A recorder is made on every miss: slots set its some sixty attributes faster than an instance dict would.
    __slots__ = ("assigned", "at_import", "attached_unnamed", "began", "caller", "code", "companions", "connections",
                 "cwd", "databases", "declared", "declared_then", "drawn_meanwhile", "drew_first", "entropy", "environ",
                 "fill_owners", "fills", "global_connections", "handed", "held", "helpers", "imported", "in_memory",
                 "inherited", "kept", "libraries", "links", "listed", "listed_sizes", "made_links", "modules",
                 "outputs", "overlapped", "patterns", "read_real", "reads", "recursion_limit", "reseeded", "rewritten",
                 "seeded_names", "set_on_import", "settings", "sizes", "spawn_environment", "spawn_folder", "spawned",
                 "stale_lines", "started", "states_before", "stdin", "thread", "tied", "unlocatable", "unseen_seeders",
                 "variables_changed", "vouched", "written")

    def __init__(self, declared: Iterable[str] = (), sizes: bool = False,
                 libraries: Iterable[str] | None = None) -> None:
        # absolute path -> (the path to store, its real path, stat at the read or None if absent). One entry per
        # name the body used: a file read as a link and by its own name is checked under both, since either
        # name may come to mean another file.
        self.reads: dict[str, tuple[str, str, list[int] | None]] = {}
        self.listed: dict[str, tuple[str, str, list[int] | None]] = {}
        self.read_real: set[str] = set()  # the real paths of the files read
        self.written: set[str] = set()  # real paths the body wrote or removed
        # ... the absolute path and name (as for reads) of each it wrote other than by appending: what it made,
        # checked on a hit to be as the run left it, since a hit would not make it again
        self.outputs: dict[str, tuple[str, str]] = {}
        self.made_links: set[str] = set()  # ... those of them it made as symbolic links: a link, not what it names
        # real paths of files that may come and go by the body's own doing (an SQLite WAL file, which the body's
        # connection creates and removes): recorded as they are when the run ends
        self.companions: set[str] = set()
        # absolute paths of SQLite databases read through a handle opened before the run: compared by their rows
        # (_databases), since the handle's own opening and closing rewrite their bytes
        self.databases: set[str] = set()
        self.rewritten: set[str] = set()  # ... after reading them (or reading them after adding to them)
        self.unlocatable = ""  # the first read that names no path (through a folder's descriptor), if any
        self.in_memory = ""  # the first read of fsspec's in-memory file system (memory://...), if any
        self.started = file_clock()  # a file with no name made after this is the run's own (see descriptor_file)
        self.stdin = ""  # the first open of the standard input (its descriptor 0, /dev/stdin), if any
        self.stale_lines = ""  # the first file whose lines linecache served older than the file, if any
        # the user's functools.lru_cache functions met while keying calls, with their cache hits as the run starts:
        # those whose hits grow served it from their caches (see _lru_helpers)
        self.helpers = _lru_helpers.started() if _lru_helpers.helpers else []
        # SQLite connections the body opened, held open until the run ends, when the databases they attached are
        # listed; with each, what its authorizer saw (_Attaching)
        self.connections: list[tuple[Any, _Attaching]] = []
        self.attached_unnamed: list[_Attaching] = []  # ... connections that attached a database named at run time
        # (label, connection, settings): the sqlite3 connections global names held before the run, which the body
        # reads        # through, with their settings as it starts (see read_connection)
        self.global_connections: list[tuple[str, Any, tuple[tuple[str, Any], ...] | None]] = []
        self.kept: set[str] = set()  # ... first written without truncating them: their earlier content stays
        self.declared: list[str] = []
        # declared path -> what it covered when declared (see _declared_state), compared when the run ends: a
        # reader Python's open does not see may have read it before another process changed it
        self.declared_then: dict[str, dict[str, list[int] | None]] = {}
        for path in declared:
            self.declare(path)
        # The body's code reads files' sizes or times (os.stat, os.path.getsize, DirEntry.stat): a folder it lists
        # is recorded with each entry's size and modification time, not its names alone (see stats_files).
        self.sizes = sizes
        # glob patterns the body matched, in order, with the digest of their matches when first matched (None:
        # not a data folder's), compared when the run ends
        self.patterns: dict[str, str | None] = {}
        # folders listed while their files' sizes are recorded (``sizes``) -> the digest of the names, sizes and
        # times at the listing, compared when the run ends: a file grows without changing its folder's signature
        self.listed_sizes: dict[str, str] = {}
        # (how, path as given) -> where it led when first read: links read or followed (os.readlink, Path.resolve)
        self.links: dict[tuple[str, str], str] = {}
        self.inherited: list[Conditions] = []  # conditions of memoized entries served inside the run
        self.cwd = folder_now()  # a folder removed since does not stop the run
        self.environ = environment()  # to tell whether the run changed it, which a hit could not do again
        self.set_on_import: set[Any] = set()  # variables set by a module's code as it was imported
        # Set by process_change: the environment variables the run changed, where it changed nothing else
        self.variables_changed: tuple[str, ...] = ()
        # The first memo.cached_property value the run assigned, or dropped after it was assigned (named): state
        # kept beside its object, which no hashing of it sees, and which a hit would not set again
        self.assigned = ""
        # Libraries' process-wide settings, of those loaded now only: a library's first import sets its own.
        # ``libraries``: those the body's code uses (a setting is changed through its library's functions);
        # None, every one loaded (a cell's code is not resolved).
        self.libraries = None if libraries is None else tuple(libraries)
        self.settings = _settings(self.libraries)
        self.modules = len(sys.modules)  # as the settings were read: ours loaded since are read again (recording)
        # Read apart from them, once, before any miss of ours raises it for its frames (see process_change).
        self.recursion_limit = sys.getrecursionlimit()
        # Whether the body's run imported modules, whose code may set them: counted while it runs (recording), not
        # around our own work before and after it (reading the random states loads numpy's on first use)
        self.imported = False
        # The settings as the first import the run set off began (its audit event comes before the module's code
        # runs): what changed before that is the body's own change, not an import's. None: no import began yet.
        self.at_import: dict[str, Any] | None = None
        # Whether the body's code, or the user's code it reaches, holds names a test accepts (function_reaches,
        # code_reaches): a setting whose setter it names is its own change, made after an import or not. None:
        # not known (taken to name none).
        self.code: Callable[[Callable[[frozenset[str]], bool]], bool] | None = None
        self.spawned = ""  # the first program the run started, if any
        # files and folders named on the command lines of the processes it started (as for reads): what another
        # process reads is not seen, so what it is told to read is taken as read, unless the run changed it (then
        # the process wrote it: its output)
        self.handed: dict[str, tuple[str, str, list[int] | None, bool]] = {}
        self.spawn_environment = False  # ... and whether one of them read this process's environment
        self.spawn_folder = False  # ... or ran in its current folder
        self.thread = threading.get_ident()
        self.caller = 0  # id of the frame that runs the body (set while recording): what is below it is the run's
        isolate_framework_draws()  # before the states are read: a framework thread's draw is not the body's
        self.states_before = snapshot(lazy=True)
        self.reseeded: set[str] = set()  # generators seeded before any draw: their state before does not matter
        # ... seeded after drawing from them (or by another thread), or whose state the body read unseeded
        self.drew_first: set[str] = set()
        self.entropy: set[str] = set()  # ... seeded from the operating system's entropy
        self.seeded_names: set[str] = set()
        # generators the body may seed through a function whose calls no wrapper sees (see MemoizedFunction._recorder)
        self.unseen_seeders: set[str] = set()
        self.tied: set[str] = set()  # generators whose state before the run selects its entry (set by drawn)
        self.drawn_meanwhile: set[str] = set()  # generators another task moved while the body awaited (stepped)
        self.overlapped = False  # another thread's memoized run ran at some time during this one
        # ids of the objects (arguments, globals read) whose functools.cached_property fills are noted, and the
        # notes: a fill is excused after the run only while its value is as filled (see _fills)
        self.fill_owners: set[int] = set()
        self.fills: FillNotes = {}
        # memo.cached_property and memo.per_instance values the run was served that their objects held since before
        # it began (named, in order): no key holds them, so the object may have changed since they were filled
        self.began = stamp()
        self.held: dict[str, None] = {}
        # id of the digest such a value's fill read -> (that digest, whether its object still had it): asked once
        # per value and run, at its first read; a later read in the run gets what a fill then would have given
        self.vouched: dict[int, tuple[bytes | None, bool]] = {}

    def seeded(self, name: str, own: bool, from_entropy: bool) -> None:
        """A watched seeding function ran: by this body (``own``) or by another thread while it ran."""
        self.seeded_names.add(name)
        if from_entropy and own:
            self.entropy.add(name)
        if name in self.reseeded or name in self.drew_first:
            return
        before = self.states_before.get(name)
        if own and (before is None or not changed_since({name: before}, self.seeded_names - {name}, [name])):
            self.reseeded.add(name)
        else:
            self.drew_first.add(name)

    def read_state(self, name: str) -> None:
        """The body read a global generator's state (``random.getstate()``): unless it seeded it first, its
        result may depend on that state as a draw's does."""
        if name not in self.reseeded:
            self.drew_first.add(name)

    def read(self, path: str, listing: bool, companion: bool = False) -> None:
        absolute = os.path.abspath(path)
        real = os.path.realpath(absolute)
        table = self.listed if listing else self.reads
        if real in self.written:
            if real in self.kept and not listing:
                self.rewritten.add(real)  # reads back what earlier runs added to it (a counter, a log)
            return
        if absolute in table:
            if _lru_helpers.codes:
                _note_helper_read(self, listing, absolute, *table[absolute])
            return
        if companion:
            self.companions.add(real)
        # A relative path stays relative (to the folder the call ran in): it names the file in
        # whatever folder a later call runs in, as the body would read it there.
        name = path if os.path.isabs(path) else os.path.relpath(absolute, self.cwd)
        taken, sig = _signature_of(absolute, listing)
        if not taken:
            return
        table[absolute] = (name, real, sig)
        if not listing:
            self.read_real.add(real)
        elif self.sizes and sig is not None:
            with contextlib.suppress(OSError):  # gone meanwhile: the end of the run says so
                self.listed_sizes[absolute] = _listing(absolute, True)[1]
        if _lru_helpers.codes:
            _note_helper_read(self, listing, absolute, name, real, sig)

    def read_handle(self, path: str) -> None:
        """The run reads ``path`` through a handle opened before it ran (see _handles): from its start, with no
        event naming it. A ``-wal`` file is its database's write-ahead log: the database is compared by its rows."""
        wal = path.endswith("-wal")
        self.read(path, listing=False, companion=wal)
        if wal:
            self.databases.add(os.path.abspath(path[:-len("-wal")]))

    def read_connection(self, label: str, connection: Any) -> None:
        """The run reads through ``connection``, an ``sqlite3`` connection the global ``label`` held before it ran
        (its files are read_handle's)."""
        self.global_connections.append((label, connection, connection_settings(connection)))

    def code_in_connections(self) -> tuple[str, str] | None:
        """Return the label of a global connection the run read through that has code of the notebook's registered
        on it as the run ends (before it, or by the body), and what, in words; None when none has. Such code runs
        inside its queries, and no key holds what it computes (see _handles.registered_code)."""
        for label, connection, _ in self.global_connections:
            names = registered_code(connection)
            if names is None:
                return label, "whose functions and collations this SQLite cannot list (pragma_function_list)"
            if names == [LIKE]:
                return label, f"with {LIKE}"
            if names:
                shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
                return label, f"with Python code registered on it ({shown})"
        return None

    def declare(self, path: str) -> None:
        """The run depends on ``path`` (a file, a folder or a pattern) from now on."""
        self.declared.append(path)
        if path not in self.declared_then:
            token = pause()  # what taking its state lists is ours, not the body's
            try:
                self.declared_then[path] = _declared_state(path)
            finally:
                resume(token)

    def link(self, kind: str, path: str) -> None:
        """The body read where ``path`` leads (``kind``: its link's target, or its real path)."""
        if (kind, path) not in self.links:
            self.links[(kind, path)] = lead(kind, path)

    def process_change(self) -> str | None:
        """Return how the run changed the environment, the current folder, a library's process-wide settings or the
        recursion limit, or assigned a memo.cached_property value, which a hit would not do again, in words (``sets
        the environment variable 'MODE', ...``); None when it left them as it found them, "" when a setting changed
        in a run that also imported modules (whose code, run by the import, may have made the change: not the
        body's, so not said, but not stored either)."""
        if self.assigned:
            return f"assigned {self.assigned}, which a hit could not do again"
        # A variable a module set as the body imported it (scikit-learn's KMP_DUPLICATE_LIB_OK) is set again
        # wherever that module is imported: not the body's change. Compared whole first, in place: almost every
        # run leaves the environment as it was, and one comparison of two dicts is what each miss pays.
        now: Mapping[Any, Any] = _environment_now()
        if now == self.environ:
            changed = []
        else:
            now = dict(now)
            changed = [n for n in {*now, *self.environ}
                       if now.get(n) != self.environ.get(n) and n not in self.set_on_import]
        if changed:
            name = min(changed, key=str)
            text = os.fsdecode(name) if isinstance(name, bytes) else name
            if folder_now() == self.cwd and self._settings_now() == self.settings:
                self.variables_changed = tuple(os.fsdecode(n) if isinstance(n, bytes) else n for n in changed)
            verb = "removes" if name not in now else "sets"
            return (f"{verb} the environment variable {text!r}, which a hit could do again only by keeping its value "
                    "in the cache (a token, a password)")
        folder = folder_now()
        if folder != self.cwd:
            return f"changes the current folder (to {folder}), which a hit would not do"
        settings = self.settings
        now_settings = self._settings_now()
        if now_settings != settings:
            changed = [name for name, value in settings.items() if now_settings.get(name) != value]
            if self.imported:
                # A module the run imported may have made the change as it loaded: not the body's. But a setting
                # changed before the first import began, or one of those _left_settings compares whose setter the
                # body's code names (import colorsys, then np.set_printoptions), is the body's, and said.
                own = self._own_changes(changed)
                if own:
                    name = own[0]
                    return (f"{_setting_change(name, settings[name], now_settings.get(name, ''))}, which a hit "
                            "would not do")
                # The rest: a setting a key reads leaves the run unstored all the same, unsaid; one that only
                # _left_settings compares (rcParams, which matplotlib's inline backend sets as pyplot first loads
                # it, a warnings filter a library adds as it is imported) is taken for the import's, as a variable
                # set so is: the next import of that module in another kernel makes it again.
                if any(not isinstance(settings[name], tuple) for name in changed):
                    return ""
            elif changed:
                name = changed[0]
                return f"{_setting_change(name, settings[name], now_settings.get(name, ''))}, which a hit would not do"
        limit = sys.getrecursionlimit()
        # Each miss raises the limit for its own frames while it runs, and puts it back as it ends: a miss of
        # another thread may be between the two now, so the limit is compared only where none ran meanwhile.
        if limit != self.recursion_limit and not self.overlapped and (
                not self.imported or (self.code is not None and self.code(_names_recursion_setter))):
            return f"sets the recursion limit to {limit} (sys.setrecursionlimit), which a hit would not do"
        for label, connection, then in self.global_connections:
            change = _connection_change(label, then, connection_settings(connection))
            if change is not None:
                return f"{change}, which a hit would not do"
        return None

    def _settings_now(self) -> dict[str, Any]:
        """Return the settings compared, as they are now."""
        now, then = _settings(self.libraries), self.settings
        if now.keys() == then.keys():
            return now  # the common case: no library whose settings are read was loaded since
        return {name: value for name, value in now.items() if name in then}

    def _own_changes(self, changed: list[str]) -> list[str]:
        """Return the settings of ``changed`` (in a run that imported modules) that are the body's own change: those
        changed before its first import began, and those of _left_settings whose setter its code names."""
        at_import = self.at_import
        own = [name for name in changed if at_import is not None and at_import.get(name) != self.settings[name]]
        if own or self.code is None:
            return own
        return [name for name in changed if isinstance(self.settings[name], tuple)
                and self.code(functools.partial(names_setter, name))]

    def import_began(self) -> None:
        """A module's import that the run set off begins (before its code runs)."""
        if self.at_import is None:
            self.at_import = {}  # an import our reading sets off is not the first
            token = pause()  # what reading the settings does is ours, not the body's
            try:
                self.at_import = self._settings_now()
            finally:
                resume(token)

    def spawn(self, program: str, environment_given: bool, folder_given: bool, named: Iterable[str] = ()) -> None:
        """The run started another process, ``program``, given its own environment and absolute folder or not, and
        the files and folders its command line ``named`` (paths as the body gave them, or absolute)."""
        self.spawned = self.spawned or program
        for path in named:
            absolute = os.path.abspath(path)
            if absolute not in self.handed:
                taken, sig = _signature_of(absolute, os.path.isdir(absolute))
                if taken:  # missing (sig None) included: what it makes there is the run's output
                    name = path if os.path.isabs(path) else os.path.relpath(absolute, self.cwd)
                    self.handed[absolute] = (name, os.path.realpath(absolute), sig, os.path.isdir(absolute))
        self.spawn_environment = self.spawn_environment or not environment_given
        self.spawn_folder = self.spawn_folder or not folder_given

    def wrote(self, path: str, keeping: bool = False, appending: bool = False, link: bool = False) -> None:
        """The body writes ``path``; ``keeping``: it existed and is not truncated (appended to, written in place);
        ``appending``: opened to append (a log), which makes it no output of the run; ``link``: it makes a symbolic
        link there (whose real path is its own: the link does not exist yet)."""
        absolute = os.path.abspath(path)
        real = os.path.realpath(absolute)
        if link:
            self.made_links.add(real)
        if keeping and real not in self.written:
            self.kept.add(real)
        self.written.add(real)
        if not appending and real not in self.outputs:
            self.outputs[real] = (absolute, path if os.path.isabs(path) else os.path.relpath(absolute, self.cwd))
        if real in self.read_real:
            self.rewritten.add(real)  # a folder it listed and then wrote into: its signature says so


def _connection_change(label: str, then: tuple[tuple[str, Any], ...] | None,
                       now: tuple[tuple[str, Any], ...] | None) -> str | None:
    """Return what changed on the connection ``label`` holds between two of its connection_settings, in words; None
    when nothing did."""
    if then is None or then == now:
        return None  # another thread's, or closed before the run: nothing of it was read here
    how = "closes {}" if now is None else \
        next((how for (how, value), (_, later) in zip(then, now) if value != later), "changes the settings of {}")
    return how.format(f"the SQLite connection {label!r}")


def _note_helper_read(recorder: Recorder, listing: bool, absolute: str, name: str, real: str,
                      sig: list[int] | None) -> None:
    """A body's run read ``absolute``: note it for each watched lru_cache function running around the read, or in the
    body's thread where a thread of a pool it started read it."""
    for state in _lru_helpers.states_around(sys._getframe(2), (recorder.thread,)):
        state.reads.setdefault((listing, absolute), (name, real, sig))


def _note_helper_read_outside(event: str, args: tuple[Any, ...], frame: types.FrameType,
                              paused: bool = False) -> None:
    """No body runs around this read: note it for each watched lru_cache function running around it (in any thread,
    where a pool's thread reads), so that what it caches at the notebook's top level stays known. A read it makes
    that names no path (an SQLite database, a glob, a folder's descriptor) leaves it unknown. ``paused``: our own
    work runs here (see ``pause``), and only the functions the user's code it called runs are looked at."""
    if paused:
        states = _lru_helpers.states_in_users_code(frame)
    else:
        # A pool's thread reads for a function running in another thread: all of them are looked at, one reading.
        states = _lru_helpers.states_around(frame, every=threading.get_ident() != threading.main_thread().ident)
    if not states:
        return  # the common case: no watched function runs (a frame's code is read only when one does)
    caller = frame.f_code.co_filename
    if caller.startswith(("<frozen importlib", _PACKAGE_DIR, _IMPORTLIB_DIR)) and caller not in _LOADER_FILES:
        return  # the import system, or our own reads (the store's, on a hit)
    listing = event != "open"
    target = args[0] if args else "."
    if event == "open":
        flags = args[2] if isinstance(args[2], int) else 0
        if (flags & os.O_ACCMODE) == os.O_WRONLY or flags & os.O_TRUNC:
            return  # written, not read
    path = _path_of(target) if event in ("open", "os.listdir", "os.scandir") else None
    if path is None or _names_the_standard_input(target) or _relative_to_a_descriptor(frame, target):
        for state in states:
            state.known = False
        return
    if caller in _SOURCE_READERS and path.endswith(_SOURCE_SUFFIXES):
        return  # source lines for a traceback
    absolute = os.path.abspath(path)
    taken, sig = _signature_of(absolute, listing)
    if not taken:
        return
    name = path if os.path.isabs(path) else os.path.relpath(absolute, folder_now())
    for state in states:
        state.reads.setdefault((listing, absolute), (name, os.path.realpath(absolute), sig))


def _helpers_read(recorder: Recorder) -> None:
    """Add to ``recorder`` what the lru_cache functions that served it from their cache read when they filled it,
    with what the lru_cache functions they call read (``parsed()`` returning ``raw().upper()`` holds what ``raw``
    read, even where ``raw`` served it from its own cache); raise NotRecordable when that is not known, or a file
    they read has changed since (they serve the old)."""
    for helper, hits in recorder.helpers:
        info = helper.cache_info()
        state = _lru_helpers.helpers.get(helper)
        if state is None:
            continue
        if info.hits == hits:
            continue
        what = getattr(helper, "__qualname__", "a function")
        if not state.known and _lru_helpers.may_read(helper):
            raise NotRecordable(f"it calls {what}, {_unseen(what)}")
        _take_reads(recorder, state, what, what)
        for inner in _lru_helpers.inner_helpers(helper):
            if _lru_helpers.is_helper(inner) and inner not in _lru_helpers.helpers:
                _lru_helpers.watch(inner)  # known where empty: nothing it holds can have served the helper
            inner_state = _lru_helpers.helpers.get(inner)
            if inner_state is None:
                continue
            name = getattr(inner, "__qualname__", "a function")
            if not inner_state.known and _lru_helpers.may_read(inner):
                raise NotRecordable(f"it calls {what}, a functools.lru_cache function that calls {name}, "
                                    f"{_unseen(name, f' and {what}.cache_clear()')}")
            _take_reads(recorder, inner_state, name, what)


def _unseen(what: str, also: str = "") -> str:
    """Say that the lru_cache function ``what`` holds results filled where its reads were not seen, and what to do
    (``also``: the other cache to empty, one filled from it)."""
    if _lru_helpers.discovering is not None:  # IPython: the notebook's top level is watched from the import
        return (f"a functools.lru_cache function whose results were cached where what it read was not seen (before "
                f"notebook_memo was imported, or in the cell that made it, where no name said which function it is): "
                f"define it in a cell of its own after the import, or call {what}.cache_clear(){also} once")
    return (f"a functools.lru_cache function whose results were cached where what it read was not seen (before a "
            f"memoized call first used it): call {what}.cache_clear(){also} before the first memoized call that "
            f"uses it")


def _take_reads(recorder: Recorder, state: _lru_helpers.HelperReads, what: str, served: str) -> None:
    """Add the reads noted for the lru_cache function ``what`` to ``recorder``; raise NotRecordable where a file
    changed since (``served``: the function whose cached result came from them, which still holds it)."""
    by, clear = ("it", f"{what}.cache_clear()") if served == what else (
        served, f"{what}.cache_clear() and {served}.cache_clear()")
    for (listing, absolute), (name, real, sig) in state.reads.items():
        try:
            now = _signature(os.stat(absolute))
        except OSError:
            now = None
        if now != sig:
            raise NotRecordable(f"{name}, read by {what} when it cached a result {by} served, has changed "
                                f"since, so that result is not what the file holds now: call {clear}")
        table = recorder.listed if listing else recorder.reads
        table.setdefault(absolute, (name, real, sig))


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event not in _EVENTS:
        return
    active = _active.get()
    if not active:
        watching = _lru_helpers.codes or _lru_helpers.discovering is not None
        if active is None:
            # Our own work runs (keying, a lookup, a store): no body's read, but the user's code it calls (a
            # __memo_key__, a result's pickling) may fill a watched function, which later serves a body.
            if watching and event in _READ_OR_CONNECTED and not getattr(own_thread, "ours", False):
                _note_helper_read_outside(event, args, sys._getframe(1), paused=True)
            return
        if not (_running or watching) or getattr(own_thread, "ours", False):
            return  # no body runs, or this is a thread of ours (its connections and files are the store's)
        active = _working_for() if _running else ()
        if not active:
            if watching and event in _READ_OR_CONNECTED:
                _note_helper_read_outside(event, args, sys._getframe(1))
            return
    try:
        frame = sys._getframe(1)
        if event == _IMPORT_EVENT:
            for recorder in active:
                recorder.import_began()
            return
        if event in _ENVIRONMENT_EVENTS:
            if args:
                for recorder in _set_by_an_import(frame, active):
                    recorder.set_on_import.add(args[0])
            return
        if event in _SPAWN_EVENTS:
            # subprocess's own posix_spawn follows its event, which says what it was given
            if not (event.startswith("os.") and frame.f_code.co_filename == _module_file("subprocess")) \
                    and _started_by_the_user(frame):
                program, environment_given, folder_given = _started(event, args)
                named = _named_on_command_line(event, args)
                for recorder in active:
                    recorder.spawn(program, environment_given, folder_given, named)
            return
        code = frame.f_code
        caller = code.co_filename
        if caller.startswith(("<frozen importlib", _PACKAGE_DIR, _IMPORTLIB_DIR)) \
                and not (caller in _LOADER_FILES and _loads_data(event, code, args)):
            if caller in _LOADER_FILES and event == "open" and code.co_name == "get_data" \
                    and _loaded_by_location(frame):
                for recorder in active:  # a module loaded by its file's location: data, not code
                    recorder.read(_source_of(args[0]), listing=False)
            return  # the import system, or our own reads
        if caller == shutil.__file__ and (code.co_name == "rmtree" or code.co_name.startswith("_rmtree")):
            return  # inside a removal (the shutil.rmtree event names the whole tree)
        if args and isinstance(args[0], (str, bytes, os.PathLike)) and _relative_to_a_descriptor(frame, args[0]):
            # os.open(name, dir_fd=fd): the event does not say which folder; the path it gives is not the file.
            # Only a read matters: a write there marks nothing here as written.
            if event in _READ_EVENTS and not (event == "open" and _writes_only(args)):
                for recorder in active:
                    recorder.unlocatable = recorder.unlocatable or \
                        f"through a folder's descriptor ({event} of {os.fsdecode(args[0])})"
            return
        if event in ("os.listdir", "os.scandir") and args and isinstance(args[0], int):
            for recorder in active:
                recorder.unlocatable = recorder.unlocatable or f"through a folder's descriptor ({event} of one)"
            return
        if event == "open":
            if _names_the_standard_input(args[0]):
                for recorder in active:  # no key can hold what it reads: said after the run
                    recorder.stdin = recorder.stdin or f"open({args[0]!r})"
                return
            if isinstance(args[0], int):
                # open(fd) or os.fdopen(fd) of a descriptor perhaps opened before the run: no name is given
                if not (isinstance(args[2], int) and (args[2] & os.O_ACCMODE) == os.O_WRONLY):
                    _note_descriptor(args[0], active, f"open({args[0]})")
                return
            path = _path_of(args[0])
            if path is None or (caller in _SOURCE_READERS and path.endswith(_SOURCE_SUFFIXES)
                                and not _source_read_by_the_user(frame)):
                return  # source lines for a traceback are code, not data
            flags = args[2] if isinstance(args[2], int) else 0
            created = flags & os.O_CREAT and not os.path.exists(path)
            if (flags & os.O_ACCMODE) == os.O_WRONLY or flags & os.O_TRUNC or created:
                keeping = not (flags & os.O_TRUNC or created)
                appending = bool(flags & os.O_APPEND)
                for recorder in active:
                    recorder.wrote(path, keeping, appending)  # written or created: what it holds comes from the body
                return
            # Opened for reading (perhaps for writing too): an input. Should the body write
            # through it, the file's signature at the end of the run says so.
            for recorder in active:
                recorder.read(path, listing=False)
        elif event in ("os.listdir", "os.scandir"):
            path = _path_of(args[0]) if args else "."
            if path is not None:
                for recorder in active:
                    recorder.read(path, listing=True)
        elif event == _GLOB_EVENT:
            pattern = _path_of(args[0])
            root = _path_of(args[2]) if len(args) > 3 and args[2] is not None else None
            if pattern is not None and (len(args) < 4 or args[3] is None) and _literal_after_magic(pattern):
                # Only such a pattern ("data/*/x.csv") tests names without listing them: a pattern whose parts
                # after its first wildcard are all wildcards is covered by the listings it makes.
                key = os.path.join(glob.escape(root), pattern) if root else pattern
                if any(key not in recorder.patterns for recorder in active):
                    then = _matches_digest(key)
                    for recorder in active:
                        recorder.patterns.setdefault(key, then)
        elif event == "sqlite3.connect":
            path = _path_of(args[0])
            if path is not None:
                _read_database(path, active)
        elif event == _CONNECTED:
            cache = sys.modules.get("diskcache.core")
            if cache is None or caller != cache.__file__:  # diskcache's connections are a store's: never attach
                _watch_attaching(args[0], frame, active)
        elif event in _MAKING:
            at = _MAKING[event]
            path = _path_of(args[at]) if len(args) > at and isinstance(args[at], (str, bytes, os.PathLike)) else None
            # A name that is there already is not made: the call fails (makedirs(exist_ok=True) of a folder that
            # exists makes nothing, and what the body then lists there is its input).
            if path is not None and not os.path.lexists(path):
                for recorder in active:
                    recorder.wrote(path, link=event == "os.symlink")
        else:
            for value in args[:2]:
                path = _path_of(value) if isinstance(value, (str, bytes, os.PathLike)) else None
                if path is not None:
                    for recorder in active:
                        recorder.wrote(path)
    except Exception:  # an audit hook must never break the user's open()
        return


def _names_the_standard_input(value: Any) -> bool:
    """Return True when an opened ``value`` is the standard input: its descriptor 0 (``open(0)``,
    ``os.fdopen(0)``), or a name of it (``/dev/stdin``, ``/dev/fd/0``, ``/proc/self/fd/0``)."""
    if isinstance(value, int):
        return value == 0
    path = _path_of(value)
    return path is not None and os.path.abspath(path) in (*STDIN_NAMES, f"/proc/{os.getpid()}/fd/0")


def _loads_data(event: str, code: types.CodeType, args: tuple[Any, ...]) -> bool:
    """Return True when the import system's loader opens a file that is not code (a package's data file, read by
    ``pkgutil.get_data`` or ``loader.get_data``): a data read, unlike the module source and bytecode it reads."""
    if event != "open" or code.co_name != "get_data" or not args:
        return False
    path = _path_of(args[0])
    return path is not None and not path.endswith(_CODE_SUFFIXES) and _BYTECODE_FOLDER not in path


def _loaded_by_location(frame: types.FrameType) -> bool:
    """Return True when the import system's ``get_data`` (``frame``) reads a module's code for a load by file
    location (``spec_from_file_location`` and ``exec_module``, ``SourceFileLoader(...).load_module()``,
    ``runpy.run_module``), not for an import by name: no code fingerprint sees such a module, so its file is data."""
    caller: types.FrameType | None = frame.f_back
    if caller is None or caller.f_code.co_name != "get_code":
        return False  # get_source (linecache showing a traceback): code shown, not run
    while caller is not None and caller.f_code.co_filename.startswith(("<frozen importlib", _IMPORTLIB_DIR)):
        if caller.f_code.co_name == "_find_and_load":
            return False  # ``import name`` or import_module: the fingerprint follows the name
        caller = caller.f_back
    return caller is not None and not caller.f_code.co_filename.startswith(_PACKAGE_DIR)


def _source_of(path: Any) -> str:
    """Return the source file of a module's code file ``path``: its own name, or that of a ``__pycache__`` file
    (which the loader reads in place of an unchanged source)."""
    name = os.fsdecode(path)
    if _BYTECODE_FOLDER in name:
        with contextlib.suppress(ValueError, NotImplementedError):
            return importlib.util.source_from_cache(name)
    return name


def _read_database(path: str, recorders: Recorders) -> None:
    """An SQLite database file is opened (connected to, or attached): it is read, with its write-ahead log."""
    # The event does not say whether uri=True: a "file:" name is taken both ways where a file has it.
    for database in (path, _sqlite_uri_path(path)) if path not in ("", ":memory:") else ():
        if database is None or (database is path and path.startswith("file:") and not os.path.exists(path)):
            continue
        for recorder in recorders:
            recorder.read(database, listing=False)  # a write by the body then makes it unrecordable
            # In WAL mode committed rows sit in <database>-wal until a checkpoint, and no event says so.
            recorder.read(database + "-wal", listing=False, companion=True)


class _Attaching:
    """What an SQLite connection's authorizer saw: whether it is in place, and whether it met an ``ATTACH``
    whose file is named at run time (``ATTACH ? AS d``: the authorizer is asked before the name is bound)."""

    __slots__ = ("unnamed", "watched")

    def __init__(self) -> None:
        self.watched = False
        self.unnamed = False


_SQLITE_ATTACH = 24  # sqlite3.SQLITE_ATTACH
_SQLITE_OK = 0


def _attach_reporter(seen: _Attaching) -> Callable[..., int]:
    """Return an authorizer that allows everything and reports the databases attached while a body runs. It
    holds no reference to its connection, which would keep a connection the body let go open until a collection."""

    def authorize(action: int, name: str | None, *rest: Any) -> int:
        if action == _SQLITE_ATTACH:
            try:
                recorders = active()
                if recorders and name is None:
                    seen.unnamed = True
                    for recorder in recorders:
                        recorder.attached_unnamed.append(seen)
                elif recorders and name is not None:
                    _read_database(name, recorders)
            except Exception:  # an authorizer that raises denies the statement: the user's ATTACH must run
                pass
        return _SQLITE_OK

    return authorize


def _watch_attaching(connection: Any, caller: types.FrameType, recorders: Recorders) -> None:
    """A body opened an SQLite connection: have it report what it attaches, and hold it until the run ends.

    Its authorizer slot is free, since it is new; a user's own authorizer set later takes the slot, and then the
    connection, if still open when the run ends, says what it attached. The event comes from inside
    ``Connection.__init__``, before the authorizer can be set: it is set at the first event after, through a
    profile function of this thread that is removed at once."""
    seen = _Attaching()
    for recorder in recorders:
        recorder.connections.append((connection, seen))
    authorizer = _attach_reporter(seen)
    if _set_authorizer(connection, authorizer, seen) or sys.getprofile() is not None:
        return  # set (a Python whose event comes after __init__), or a profiler runs: listed at the end only

    def install(frame: types.FrameType, event: str, arg: Any) -> None:
        if _set_authorizer(connection, authorizer, seen) or frame is caller:
            sys.setprofile(None)  # set; or connect() is over in the caller and failed: nothing to watch

    sys.setprofile(install)


def _set_authorizer(connection: Any, authorizer: Callable[..., int], seen: _Attaching) -> bool:
    try:
        connection.set_authorizer(authorizer)
    except Exception:  # sqlite3.ProgrammingError: Connection.__init__ has not finished
        return False
    seen.watched = True
    return True


def _list_attached(recorder: Recorder) -> None:
    """Read what the body's SQLite connections attached, from those still open; let them go."""
    connections, recorder.connections = recorder.connections, []
    unsure = ""
    for connection, seen in connections:
        try:
            rows = connection.execute("PRAGMA database_list").fetchall()
        except Exception:  # closed, or a connection of another thread
            if not seen.watched or seen.unnamed:
                unsure = unsure or ("it attaches an SQLite database by a name given at run time (ATTACH ? AS d)"
                                    if seen.unnamed else "it opened an SQLite connection while a profiler ran, "
                                    "so what it attaches is not reported")
            continue
        for _, schema, path in rows:
            if schema not in ("main", "temp") and path:
                _read_database(path, (recorder,))
        if seen in recorder.attached_unnamed:
            recorder.attached_unnamed.remove(seen)
    if recorder.attached_unnamed and not unsure:
        unsure = "it attaches an SQLite database by a name given at run time (ATTACH ? AS d)"
    if unsure and not recorder.declared:
        raise NotRecordable(f"{unsure}, and the connection was closed or is another thread's when the run ended, "
                            "so which file it read cannot be named: attach a constant name, leave the connection "
                            "open, or declare the file with files= or memo.depends_on_file")


def _module_file(name: str) -> str | None:
    """Return a loaded module's file (None when it is not loaded): importing it here would cost every kernel."""
    return getattr(sys.modules.get(name), "__file__", None)


def _started(event: str, args: tuple[Any, ...]) -> tuple[str, bool, bool]:
    """Return the program a spawn event starts (its name only: a command line may hold a token), and whether it
    was given its own environment and an absolute folder to run in."""
    if event in ("os.fork", "os.forkpty"):
        return "a forked child", False, False
    if event == "subprocess.Popen":  # executable, args, cwd, env
        command, cwd, env = args[1] if args[1] is not None else args[0], args[2], args[3]
    elif event == "os.spawn":  # mode, path, args, env
        command, cwd, env = args[1], None, args[3]
    else:  # os.system(command), os.startfile(path, ...), os.posix_spawn and os.exec(path, args, env)
        command, cwd, env = args[0], None, args[2] if len(args) > 2 else None
    first = command[0] if isinstance(command, (list, tuple)) and command else command
    try:
        words = os.fsdecode(first).split()
    except TypeError:
        words = []
    program = os.path.basename(words[0]) if words else "a program"
    folder_given = cwd is not None and os.path.isabs(os.fsdecode(cwd))
    return program, env is not None and env is not os.environ, folder_given


# Where programs and their own files live: a command line naming one is not handing the process data.
_PROGRAM_DIRS = tuple(os.path.join(os.path.realpath(p), "") for p in
                      {"/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc", sys.prefix, sys.base_prefix, sys.exec_prefix})
_WORDS_LOOKED_AT = 256  # of one command line: a long one (a file list) past that is not looked into


def _named_on_command_line(event: str, args: tuple[Any, ...]) -> list[str]:
    """Return the files and folders a spawn event's command line names (existing, or missing as a word that is no
    option), less the system's and the libraries': its arguments (the words of a shell's command text), and the
    program itself where it is given as a path (``./tool.sh``), not a bare name found on PATH. Relative ones are as
    the process will find them (under its ``cwd=``)."""
    if event == "subprocess.Popen":  # executable, args, cwd, env
        executable, command, cwd = args[0], args[1], args[2]
    elif event in ("os.posix_spawn", "os.exec"):  # path, argv, env
        executable, command, cwd = args[0], args[1] if len(args) > 1 else None, None
    elif event == "os.spawn":  # mode, path, args, env
        executable, command, cwd = args[1], args[2], None
    elif event == "os.system":
        executable, command, cwd = None, args[0], None
    else:
        return []
    items = list(command) if isinstance(command, (list, tuple)) else [command] if command is not None else []
    texts = [os.fsdecode(item) for item in items if isinstance(item, (str, bytes, os.PathLike))]
    words: list[str] = []
    for k, text in enumerate(texts):
        if (k and any(c.isspace() or c in "<>|;&" for c in text)) or event == "os.system":
            try:  # a shell's command text (sh -c "wc -c < data.txt"): its words
                lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
                lexer.whitespace_split = True
                words.extend(lexer)
            except ValueError:  # unbalanced quotes: the shell refuses it too
                continue
        elif k or os.sep in text:  # the program only where given as a path
            words.append(text)
    if isinstance(executable, (str, bytes, os.PathLike)) and os.sep in os.fsdecode(executable):
        words.append(os.fsdecode(executable))
    folder = os.fsdecode(cwd) if isinstance(cwd, (str, bytes, os.PathLike)) else None
    named = []
    for word in dict.fromkeys(words[:_WORDS_LOOKED_AT]):
        path = os.path.join(folder, word) if folder and not os.path.isabs(word) else word
        try:
            st = os.stat(path)
        except FileNotFoundError:
            # Missing now, it may be what the process makes (cp a out.txt): kept, to be taken as the run's output
            # where it exists after the run. An option or a shell's operator is no such name.
            if word.startswith("-") or not word.strip("<>|;&()"):
                continue
            real = os.path.realpath(path)
            if not real.startswith(_PROGRAM_DIRS) and _is_data(real, ()):
                named.append(path)
            continue
        except (OSError, ValueError):
            continue
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            continue
        real = os.path.realpath(path)
        if os.path.isdir(real) and real in (os.path.realpath(os.sep), os.path.expanduser("~")):
            continue  # the root or the home folder: not a folder of data it is handed
        if not real.startswith(_PROGRAM_DIRS) and _is_data(real, ()):
            named.append(path)
    return named


# The environment last digested, with its digest: one tuple, so that a thread never reads one without the other.
_last_environment: list[tuple[dict[Any, Any], str]] = [({}, "")]


def environment_digest(environ: dict[Any, Any]) -> str:
    """Return a digest of an environment (as ``environment()`` copies it) less the session's own variables."""
    last, digest = _last_environment[0]
    if environ == last and digest:  # checked on every hit of a run that started a process: compared, not hashed
        return digest
    h = xxhash.xxh3_128()
    for name, value in sorted(environ.items()):
        text = os.fsdecode(name) if isinstance(name, bytes) else name
        if text in SESSION_VARIABLES or text.startswith(SESSION_PREFIXES):  # or every restart would miss
            continue
        for part in (name, value):
            h.update(part if isinstance(part, bytes) else part.encode("utf-8", "surrogatepass"))
            h.update(b"\0")
    digest = h.hexdigest()
    _last_environment[0] = (dict(environ), digest)
    return digest


def _set_by_an_import(frame: types.FrameType | None, active: Recorders) -> list[Recorder]:
    """Return the recorders of ``active`` for which the environment write at ``frame`` is made by an import their
    run set off: a module's code run by the import system, or a function it calls (torch._dynamo's top level calls
    cache_dir(), which sets TORCHINDUCTOR_CACHE_DIR), between the write and the frame that runs the body.

    An import above that frame (a module whose top level calls a memoized function) is not the body's doing: the
    body's own write stays its change. A recorder whose frame is not on the way (another thread's run) counts an
    import anywhere above the write."""
    callers = {recorder.caller: recorder for recorder in active}
    found: list[Recorder] = []
    importing = False
    while frame is not None:
        recorder = callers.pop(id(frame), None)
        if recorder is not None:
            if importing:
                found.append(recorder)
            if not callers:
                return found
        elif not importing and frame.f_code.co_name == "<module>":
            above = frame.f_back  # a notebook cell's code is "<module>" too, run by the shell, not by the import system
            importing = above is not None and above.f_code.co_filename.startswith("<frozen importlib")
        frame = frame.f_back
    return found + list(callers.values()) if importing else found


def _sqlite_uri_path(name: str) -> str | None:
    """Return the file an SQLite URI (``file:data.db?mode=ro``) names; None for an in-memory one or another
    name."""
    if not name.startswith("file:"):
        return None
    parts = urllib.parse.urlsplit(name)
    query = urllib.parse.parse_qs(parts.query)
    if query.get("mode") == ["memory"] or not parts.path or parts.path == ":memory:":
        return None
    return urllib.parse.unquote(parts.path)


def _writes_only(args: tuple[Any, ...]) -> bool:
    flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
    return bool((flags & os.O_ACCMODE) == os.O_WRONLY or flags & os.O_TRUNC)


def _relative_to_a_descriptor(frame: types.FrameType, path: str | bytes | os.PathLike[Any]) -> bool:
    """Return True when a relative ``path`` is opened by a call passing ``dir_fd=`` (the event does not carry
    it): the path may be relative to another folder than the current one."""
    if os.path.isabs(path):
        return False
    passes, given = _passes_dir_fd(frame.f_code, frame.f_lasti)
    return passes and (given is None or _loaded(given, frame) is not None)


@functools.lru_cache(maxsize=1024)
def _passes_dir_fd(code: types.CodeType, offset: int) -> tuple[bool, dis.Instruction | None]:
    """Return whether the call at ``offset`` in ``code`` names the keyword ``dir_fd`` (its names are a constant
    loaded just before the call: KW_NAMES on 3.11 and 3.12, LOAD_CONST before CALL_KW or CALL_FUNCTION_KW), and
    the instruction that loads its value when it can be read (``dir_fd=dir_fd`` passed on, perhaps None)."""
    if not _names_dir_fd(code):
        return False, None
    instructions = _instructions(code)
    at = next((i for i, instruction in enumerate(instructions) if instruction.offset == offset), None)
    if at is None:
        return True, None  # the call cannot be told apart from the others of code that passes dir_fd: it does
    for k in range(max(0, at - 3), at + 1):
        instruction = instructions[k]
        value = code.co_consts[instruction.arg or 0] if instruction.opname == "KW_NAMES" else instruction.argval
        if instruction.opname in ("KW_NAMES", "LOAD_CONST") and isinstance(value, tuple) and "dir_fd" in value:
            return True, (instructions[k - 1] if k and value[-1] == "dir_fd" else None)
    return False, None


_UNKNOWN = object()


def _loaded(instruction: dis.Instruction, frame: types.FrameType) -> Any:
    """Return the value a load instruction of ``frame``'s code gave (None passed as ``dir_fd``), or _UNKNOWN."""
    name = instruction.argval
    if instruction.opname == "LOAD_CONST":
        return name
    if instruction.opname in ("LOAD_FAST", "LOAD_DEREF", "LOAD_NAME"):
        return frame.f_locals.get(name, _UNKNOWN)
    if instruction.opname == "LOAD_GLOBAL":
        return frame.f_globals.get(name, _UNKNOWN)
    return _UNKNOWN


def _names_dir_fd(code: types.CodeType) -> bool:
    return any(isinstance(c, tuple) and "dir_fd" in c for c in code.co_consts)


@functools.lru_cache(maxsize=64)
def _instructions(code: types.CodeType) -> list[dis.Instruction]:
    return list(dis.get_instructions(code))


def _install_hook() -> None:
    global _hook_installed
    if _hook_installed:
        return  # every miss asks: no lock once it is in
    with _hook_lock:
        if not _hook_installed:
            sys.addaudithook(_audit)
            _hook_installed = True


_lru_helpers.on_watch(_install_hook)  # a watched function's runs are seen from then on, in a body or not


Recorders = tuple[Recorder, ...]


def active() -> Recorders:
    """Return the recorders of the memoized bodies running around this point (or anywhere, from a thread of theirs)."""
    found = _active.get()
    if found:
        return found
    if found is None or not _running:
        return ()
    return _working_for()


def _working_for() -> Recorders:
    """Return the running bodies a thread that runs none itself may be working for: those of the other threads.

    Which body a pool's thread works for cannot be told (a pool made before the body, or shared by two
    bodies, is handed their work alike), so it is all of them: at worst a miss. The main thread is the
    notebook's own, handed no body's work (a body runs there or it waits for one): its reads are its own.
    """
    me = threading.get_ident()
    if me == threading.main_thread().ident:
        return ()
    return _in_other_threads(me)


def _in_other_threads(me: int) -> Recorders:
    """Return the recorders of the bodies running in threads other than ``me``."""
    return tuple(recorder for recorder in _running if recorder.thread != me)


def _drawing_around() -> Recorders:
    """Return the running bodies a draw or seeding here may be mixed into: the main thread's included, as its
    draws cannot be told from a body's (see the README on random state)."""
    found = _active.get()
    if found:
        return found
    if found is None or not _running:
        return ()
    return _in_other_threads(threading.get_ident())


def stamp() -> int:
    """Return a number above every one returned before: when a run began, or a per-object value was filled."""
    return next(_stamps)


def held_value_read(filled: int, digest: bytes | None, obj: Any, describe: Callable[[], str],
                    digest_of: Callable[[Any], bytes | None]) -> None:
    """A per-object cache served a value of ``obj`` filled at stamp ``filled`` by a fill that read ``obj`` with
    ``digest`` (None: not known; ``describe()`` names the value). The running bodies that began after the fill note
    it, unless ``obj`` has that digest still (``digest_of(obj)``): the value is then what a fill now would give.
    Costs a list's truth test where no body runs."""
    if not _running:
        return
    same: bool | None = None
    for recorder in active():
        if filled >= recorder.began:
            continue
        seen = recorder.vouched.get(id(digest))
        if seen is None or seen[0] is not digest:
            if same is None:
                token = pause()  # hashing it is our own reading, not the body's
                try:
                    same = digest is not None and digest_of(obj) == digest
                finally:
                    resume(token)
            seen = recorder.vouched[id(digest)] = (digest, same)
        if not seen[1]:
            recorder.held.setdefault(describe(), None)


def assigned_held_value(describe: Callable[[], str]) -> None:
    """A memo.cached_property value was assigned, or an assigned one dropped (``describe()`` names it): the running
    bodies note it as a change of state a hit could not make again. Costs a list's truth test where no body runs."""
    if not _running:
        return
    for recorder in active():
        if not recorder.assigned:
            recorder.assigned = describe()


def in_a_run() -> bool:
    """Return True where a memoized body runs around this point."""
    return bool(_running) and bool(active())


def closed_fill(fill: Callable[[], Any]) -> tuple[Any, bool]:
    """Run a per-object cache's fill inside the running bodies, recording what it reads; return its value and
    whether it read nothing besides its object and code (no file, folder, entry with conditions, generator, held
    value, process or setting), so that its object's digest is all its value depends on."""
    recorder = Recorder()
    with recording(recorder, active()):
        value = fill()
    try:
        closed = not (recorder.written or recorder.spawned or recorder.stdin or recorder.seeded_names) and \
            not finish(recorder, ()) and drawn(recorder) == ({}, {}) and recorder.process_change() is None
    except Exception:  # NotRecordable, or what it read could not be examined: not known
        closed = False
    return value, closed


def pause() -> contextvars.Token[Recorders | None]:
    """Record nothing until ``resume``: our own lookups are not what a body reads."""
    return _active.set(None)


def resume(token: contextvars.Token[Recorders | None]) -> None:
    _active.reset(token)


@contextlib.contextmanager
def paused() -> collections.abc.Iterator[None]:
    """Record nothing in the block: our own work (a ``%memo`` command, the command line called in-process), done
    in a thread that runs no body, is not the reads of the bodies other threads run."""
    token = pause()
    try:
        yield
    finally:
        resume(token)


def watch_all() -> None:
    """Put our hooks and wrappers in place where they are not yet (once each; a library loaded since is looked at).

    Called by ``recording`` as a run starts, and before a body's run is timed, where the first run's installing
    (its wrappers put in place in the user's modules too) would count as the body's time and make a quick
    function look slow."""
    _install_hook()
    # After the states were read, which may have loaded a library's random module (numpy's loads on
    # first use): its seeding functions are watched from this run on.
    watch_seeding(_note_seeding, _note_state_read, is_user_code)
    watch_entropy(_note_entropy)
    watch_links(_note_link)
    watch_native_reads(_note_native_read)
    watch_memory_files(_note_memory_read)
    watch_shared_memory(_note_segment)
    watch_fills(_note_fill)
    _watch_linecache()
    _watch_descriptor_reads()


class recording:  # lower case: used as a function, ``with recording(recorder, outer):``
    """Record what the block reads into ``recorder`` and into the recorders around it.

    A class rather than a generator: it is entered on every miss, and costs a third as much."""

    __slots__ = ("modules", "outer", "recorder", "token", "watch")

    def __init__(self, recorder: Recorder, outer: Recorders, watch: bool = True) -> None:
        # ``watch``: put our hooks in place first; False where the caller just did (watch_all, before its timing)
        self.recorder, self.outer, self.watch = recorder, outer, watch

    def __enter__(self) -> Recorder:
        if self.watch:
            watch_all()
        self.token = _active.set((*self.outer, self.recorder))
        recorder = self.recorder
        self.modules = len(sys.modules)
        if not recorder.caller and self.modules != recorder.modules:
            # Before its first part runs, our own work loaded modules (numpy's random module, as the states were
            # read), whose code may have set what was read: the run starts from the settings as they are now.
            recorder.settings, recorder.modules = _settings(recorder.libraries), self.modules
        recorder.caller = id(sys._getframe(1))  # the body runs below this frame (see _set_by_an_import)
        for other in _running:
            if other.thread != recorder.thread:  # each may draw from a global generator while the other runs
                other.overlapped = recorder.overlapped = True
        _running.append(recorder)
        return recorder

    def __exit__(self, *exc: object) -> None:
        _active.reset(self.token)
        _running.remove(self.recorder)
        if len(sys.modules) != self.modules:
            self.recorder.imported = True


class stepped:  # lower case: used as a function, ``await stepped(body, recorder)``
    """Await a memoized coroutine's body, noting in ``recorder`` the global generators that moved while it was
    suspended: another task drew from them then, and the state the body ends in is not its own doing.

    Sends, throws and closes pass through unchanged (a task's cancellation reaches the body as it would)."""

    __slots__ = ("body", "recorder")

    def __init__(self, body: collections.abc.Awaitable[Any], recorder: Recorder) -> None:
        self.body, self.recorder = body, recorder

    def __await__(self) -> collections.abc.Generator[Any, Any, Any]:
        body, recorder = self.body, self.recorder
        if not isinstance(body, collections.abc.Coroutine):
            return (yield from body.__await__())
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            try:
                suspended = body.send(sent) if thrown is None else body.throw(thrown)
            except StopIteration as stop:
                return stop.value
            states = snapshot(lazy=True)
            try:
                sent, thrown = (yield suspended), None
            except GeneratorExit:
                body.close()
                raise
            except BaseException as exc:  # cancellation, or an exception a future was set to: the body's to see
                sent, thrown = None, exc
            moved = changed_since(states, recorder.seeded_names, list(states))
            if moved:
                recorder.drawn_meanwhile.update(moved)


# posixpath's realpath reads each link on the way with os.readlink: that read is the realpath's, recorded as one.
_LINK_MACHINERY = frozenset({os.path.__file__, os.path.realpath.__code__.co_filename})


def _note_link(kind: str, path: Any) -> None:
    """A link reader ran (os.readlink, os.path.realpath...): where ``path`` leads is the running bodies' input,
    unless it was read by us or by the import system."""
    recorders = active()
    if not recorders or not isinstance(path, (str, bytes, os.PathLike)):
        return
    try:
        caller = sys._getframe(2).f_code.co_filename  # the caller of the wrapped reader
        if caller.startswith(("<frozen importlib", _PACKAGE_DIR, _IMPORTLIB_DIR)) or caller in _LINK_MACHINERY:
            return
        name = _path_of(path)
        if name is not None:
            for recorder in recorders:
                recorder.link(kind, name)
    except Exception:  # never breaks the body's own call
        return


def _note_native_read(path: Any) -> None:
    """A library is about to read ``path`` in its own code (torch.from_file), which no audit event shows: an input
    of the running bodies, as a file opened through Python is."""
    recorders = active()
    if not recorders:
        return
    try:
        name = _path_of(path) if isinstance(path, (str, bytes, os.PathLike)) else None
        if name is not None:
            for recorder in recorders:
                recorder.read(name, listing=False)
    except Exception:  # never breaks the body's own call
        return


def _note_memory_read(path: Any) -> None:
    """The body read a file or listing of fsspec's in-memory file system: no condition can check it (and it is gone
    after a restart), so the run is not stored."""
    try:
        for recorder in active():
            if not recorder.in_memory:
                recorder.in_memory = f"memory://{str(path).removeprefix('memory://').lstrip('/')}"
    except Exception:  # never breaks the body's own call
        return


def _note_seeding(generator: str, from_entropy: bool) -> None:
    own = _active.get() or ()
    for recorder in _drawing_around():
        recorder.seeded(generator, recorder in own, from_entropy)


def _note_state_read(generator: str) -> None:
    """A global generator's state was read: by the body's own code, a read its result may depend on. A library
    reads it to put it back later (``torch.random.fork_rng``, checkpointing), which changes nothing."""
    recorders = _drawing_around()
    if not recorders:
        return
    caller: types.FrameType | None = sys._getframe(2)  # the caller of the wrapped reader
    while caller is not None and caller.f_code.co_filename in _STATE_PASSED_ON:
        caller = caller.f_back  # copy.copy(random._inst): who asked for the copy, not the library that made it
    if caller is not None and _users_own(caller):
        for recorder in recorders:
            recorder.read_state(generator)


# The standard library's modules that read a generator's state to copy or pickle it for their caller.
_STATE_PASSED_ON = frozenset({copy.__file__, copyreg.__file__, pickle.__file__, random.__file__})


# The standard library's paths from a caller to the operating system's randomness: a call through them is judged
# by who called them.
_ENTROPY_SEEDERS = os.path.abspath(_random_state_file)
_ENTROPY_PATHS = frozenset({random.__file__, secrets.__file__, uuid.__file__, _ENTROPY_SEEDERS})


def _note_fill(instance: Any, name: str, value: Any) -> None:
    """A functools.cached_property value was filled: the running bodies watching its object note its digest."""
    recorders = active()
    if not recorders:
        return
    watching = [recorder for recorder in recorders if id(instance) in recorder.fill_owners]
    if not watching:
        return
    token = pause()  # hashing it is our own reading, not the body's
    try:
        digest = fill_digest(value, name)
    finally:
        resume(token)
    for recorder in watching:
        recorder.fills[(id(instance), name)] = digest  # a later fill (after a del) is the one that stands


def _note_entropy() -> None:
    """Randomness was taken from the operating system: the body's own doing (its code, not a library's, called for
    it) makes its result random."""
    recorders = _active.get()
    if not recorders:
        return
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename in _ENTROPY_PATHS:
        if frame.f_code.co_name == "seed" and frame.f_code.co_filename == _ENTROPY_SEEDERS:
            return  # inside a watched seeding call (np.random.seed()): it names its generator itself
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return
    if not _users_own(frame):
        return  # a library's own use (tempfile's random names, a task's id, numpy seeding itself on import)
    if _builds_a_seeded_legacy_generator(frame) or _seeded_before_use(frame):
        return
    for recorder in recorders:
        recorder.entropy.add(ENTROPY)


def _started_by_the_user(frame: types.FrameType | None) -> bool:
    """Return True when the process starting at ``frame`` is started by the user's own code (through subprocess or
    os, whose own frames are passed over), not by a library probing the machine for itself (scikit-learn's loky
    counting cores with lscpu, platform.processor() running uname): what such a probe answers does not depend on
    the environment or folder it ran in, and counting it would make a whole estimator's fit miss in another."""
    machinery = (_module_file("subprocess"), os.__file__, "<frozen os>")  # os.popen: subprocess under os
    # asyncio.create_subprocess_exec and _shell: the event loop's transport starts it, from the awaiting coroutine
    while frame is not None and (frame.f_code.co_filename in machinery
                                 or frame.f_code.co_filename.startswith(_ASYNCIO_DIR)):
        frame = frame.f_back
    return frame is not None and _users_own(frame)


def _source_read_by_the_user(frame: types.FrameType | None) -> bool:
    """Return True when the source reader opening a Python file at ``frame`` (tokenize.open, linecache) was called
    by the user's code (``tokenize.open(path)`` to read a script as data), not by a traceback, inspect, warnings or
    a library showing code, whose reads are code, not data."""
    while frame is not None and (frame.f_code.co_filename in _SOURCE_READERS or frame.f_code is _GETLINES_CODE):
        frame = frame.f_back
    return frame is not None and _users_own(frame)


def _watch_linecache() -> None:
    """Wrap linecache.getlines (once; linecache.getline calls it): lines it serves from its memory open no file, so
    what the body read is noted here, as the open of a first read is by the audit hook."""
    global _GETLINES_CODE
    if _GETLINES_CODE is not None:
        return
    with _hook_lock:
        if _GETLINES_CODE is not None:
            return
        original = linecache.getlines

        def getlines(filename: str, module_globals: Any = None) -> list[str]:
            entry = linecache.cache.get(filename)
            lines = original(filename, module_globals)
            if entry is not None and len(entry) == 4 and entry[1] is not None:  # a file's, not a cell's or lazy
                recorders = active()
                if recorders:
                    _note_cached_lines(entry, recorders, sys._getframe(1))
            return lines

        _GETLINES_CODE = getlines.__code__
        install(linecache, "getlines", replacing(functools.wraps(original)(getlines), original))


_DESCRIPTOR_READERS = tuple(name for name in ("read", "readv", "pread", "preadv") if hasattr(os, name))
_descriptor_reads_watched: list[bool] = []


def _watch_descriptor_reads() -> None:
    """Wrap os.read, os.readv, os.pread and os.preadv (once): a read of a descriptor raises no audit event, and a
    descriptor a local holds (``fd = 0; os.read(fd, n)``) is no constant the code shows, so it is noted here as the
    body reads it, as an open of the standard input is by the audit hook (os.fdopen(0) opens it so); so is the
    file a descriptor opened before the run leads to (``FD = os.open(...)`` in an earlier cell)."""
    if _descriptor_reads_watched:
        return
    with _hook_lock:
        if _descriptor_reads_watched:
            return
        for name in _DESCRIPTOR_READERS:
            install(os, name, _reading_descriptors(getattr(os, name)))
        _descriptor_reads_watched.append(True)


def _reading_descriptors(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def read(fd: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(fd, int):
            recorders = active()  # cheap where no body runs: the store's own reads on a hit pay no more
            if recorders and fd == 0:
                for recorder in recorders:  # no key can hold what it reads: said after the run
                    recorder.stdin = recorder.stdin or f"os.{original.__name__}(0)"
            elif recorders and not sys._getframe(1).f_code.co_filename.startswith(_PACKAGE_DIR):
                # The bodies this thread runs only: a descriptor another thread reads (a worker's own files, in a
                # dask or pool thread beside the body) is not the body's read.
                own = _active.get()
                if own:
                    _note_descriptor(fd, own, f"os.{original.__name__}({fd})")
        return original(fd, *args, **kwargs)

    return replacing(read, original)


def _note_segment(fd: int, how: str) -> None:
    """A shared memory segment that was there is opened (``how``): the running bodies read the file it is."""
    recorders = active()
    if recorders:
        _note_descriptor(fd, recorders, how)


def _note_descriptor(fd: int, recorders: Recorders, how: str) -> None:
    """The running bodies read descriptor ``fd`` (``how``: the call), which may have been opened before they ran:
    the file it leads to is read, as if opened by name; one that has no name makes the run unrecordable."""
    try:
        for recorder in recorders:
            kind, path = descriptor_file(fd, recorder.started)
            if kind == FILE and path is not None:
                recorder.read(path, listing=False)
            elif kind == UNNAMED:
                recorder.unlocatable = recorder.unlocatable or \
                    f"through a descriptor whose file has no name now, or none that can be found ({how})"
    except Exception:  # never breaks the body's own read
        return


def _note_cached_lines(entry: tuple[Any, ...], recorders: Recorders, frame: types.FrameType) -> None:
    """linecache served a file's lines from its memory (``entry``: size, modification time, lines, path): a read of
    that file, unless it is Python source shown for a traceback; lines older than the file make the run's result
    unrecordable, since a restarted kernel would read the file as it is."""
    size, mtime, _, path = entry
    if not isinstance(path, str) or (path.endswith(_SOURCE_SUFFIXES) and not _source_read_by_the_user(frame)):
        return
    try:
        st = os.stat(path)
    except OSError:
        st = None
    for recorder in recorders:
        if st is not None and (st.st_size, st.st_mtime) == (size, mtime):
            recorder.read(path, listing=False)
        else:
            recorder.stale_lines = recorder.stale_lines or path


def _users_own(frame: types.FrameType) -> bool:
    """Return True when ``frame`` runs the user's code: not a library's, the standard library's or ours."""
    caller = frame.f_code.co_filename
    return not (caller.startswith("<frozen") or os.path.realpath(caller).startswith((*_LIBRARY_DIRS, _PACKAGE_DIR)))


_CALLS = frozenset({"CALL", "CALL_KW", "CALL_FUNCTION", "CALL_METHOD", "CALL_FUNCTION_KW"})
_BETWEEN = frozenset({"PRECALL", "KW_NAMES", "PUSH_NULL"})  # no value of the call's own: passed over
_ATTRIBUTES = frozenset({"LOAD_ATTR", "LOAD_METHOD"})


def _builds_a_seeded_legacy_generator(frame: types.FrameType) -> bool:
    """Return True when ``frame`` is calling ``np.random.RandomState(seed)`` with a seed that is not None: it
    builds its bit generator from the operating system's entropy and then seeds it, so its result is not random.

    The seed's instructions are found by walking back from the call by their stack effects, so any expression is
    told apart (``seed + fold``, ``cfg["seed"]``, ``int(seed)``). A name, attribute or item read where it lies
    counts by its value; an operation or builtin that cannot give None (``seed + fold``, ``int(seed)``) as seeded;
    anything else (a helper's result, ``getattr`` with a default, ``pop``), one that cannot be read, or an
    expression whose instructions branch, counts as unseeded: a warning at worst."""
    numpy = sys.modules.get("numpy")
    legacy = getattr(getattr(numpy, "random", None), "RandomState", None)
    if not isinstance(legacy, type):
        return False
    instructions = _instructions(frame.f_code)
    at = next((i for i, instruction in enumerate(instructions) if instruction.offset == frame.f_lasti), None)
    if at is None or instructions[at].opname not in _CALLS or instructions[at].arg != 1:
        return False  # RandomState() takes one argument, its seed: none given is a seed from entropy
    k = at - 1
    if instructions[at].opname in ("CALL_KW", "CALL_FUNCTION_KW"):
        k -= 1  # the constant tuple of keyword names
    k = _skip_between(instructions, k)
    start = _expression_start(instructions, k)
    if start is None:
        return False
    seed = _argument_value(instructions, start, k, frame)
    if seed is None or seed is _UNKNOWN:
        return False
    called, _ = _chain_value(instructions, _skip_between(instructions, start - 1), frame)
    return isinstance(called, type) and issubclass(called, legacy)


def _seeded_before_use(frame: types.FrameType) -> bool:
    """Return True when ``frame`` is building an ``np.random.RandomState`` or ``random.Random`` (seeded from the
    operating system's entropy) that its next statement seeds with a seed that is not None, before anything else uses
    it: ``rs = np.random.RandomState(); rs.seed(42)``, or sets its whole state: ``r = random.Random();
    r.setstate(random.getstate())``. Either call sets the whole state, so the entropy is never drawn from.

    The built generator must be stored in a name and the next instructions must load that name and call its
    ``seed`` with one argument, read as ``RandomState(seed)``'s is, or its ``setstate`` (``set_state``) with one
    argument that does not read that name; no exception handler may cover the two (one could draw from it unseeded).
    Anything else (a seed in a branch, after a draw, on another name) counts as unseeded."""
    instructions = _instructions(frame.f_code)
    at = next((i for i, instruction in enumerate(instructions) if instruction.offset == frame.f_lasti), None)
    if at is None or instructions[at].opname not in _CALLS or at + 2 >= len(instructions):
        return False
    built = _reseedable_class(instructions, at, frame)
    if built is None:
        return False
    base, cls = built
    stored = instructions[at + 1]
    if stored.opname == "STORE_FAST_LOAD_FAST":  # 3.13: ``rs = ...; rs.seed`` in one instruction
        if stored.argval != (stored.argval[0],) * 2:
            return False
        name, method = stored.argval[0], at + 2
    else:
        load = at + 2
        while load < len(instructions) and instructions[load].opname == "NOP":  # a line of its own: ``try:``
            load += 1
        if stored.opname not in _STORES or load == len(instructions) or instructions[load].opname not in _LOADS \
                or instructions[load].argval != stored.argval:
            return False
        name, method = stored.argval, load + 1
    if method >= len(instructions) or instructions[method].opname not in _ATTRIBUTES:
        return False
    attr, (setter, state_parameter) = instructions[method].argval, _STATE_SETTERS[base]
    if attr not in ("seed", setter) or not _keeps(cls, base, attr):
        return False
    if attr == "seed":
        seed = _seed_argument(instructions, method, frame, name, _SEED_PARAMETERS[base])
    else:  # any state it is given sets the whole state (or raises)
        seed = _seed_argument(instructions, method, frame, name, state_parameter, any_value=True)
    return seed is not None and seed is not _UNKNOWN and not _handled_between(
        frame.f_code, instructions[at].offset, instructions[method].offset)


# A class whose ``seed(x)`` sets its whole state, by the name of its parameter: built without a seed, it takes the
# operating system's entropy, which such a call, made before a draw, discards.
_SEED_PARAMETERS = {"numpy.random.mtrand.RandomState": "seed", "random.Random": "a"}
# ... and the method that sets its whole state from any state it is given, by the name of its parameter
_STATE_SETTERS = {"numpy.random.mtrand.RandomState": ("set_state", "state"), "random.Random": ("setstate", "state")}
_STORES = frozenset({"STORE_FAST", "STORE_NAME", "STORE_GLOBAL", "STORE_DEREF"})
_LOADS = frozenset({"LOAD_FAST", "LOAD_FAST_CHECK", "LOAD_FAST_BORROW", "LOAD_NAME", "LOAD_GLOBAL", "LOAD_DEREF"})


def _reseedable_class(instructions: list[dis.Instruction], at: int, frame: types.FrameType) -> tuple[str, type] | None:
    """Return which of ``_SEED_PARAMETERS`` the call at ``at`` builds (a subclass of), and the class built; or None."""
    call = instructions[at]
    k = _skip_between(instructions, at - 1 - (call.opname in ("CALL_KW", "CALL_FUNCTION_KW")))
    for _ in range(call.arg or 0):
        start = _expression_start(instructions, k)
        if start is None:
            return None
        k = _skip_between(instructions, start - 1)
    called, _ = _chain_value(instructions, k, frame)
    if not isinstance(called, type):
        return None
    for name in _SEED_PARAMETERS:
        module, _, qualname = name.rpartition(".")
        base = getattr(sys.modules.get(module), qualname, None)
        if isinstance(base, type) and issubclass(called, base):
            return name, called
    return None


def _keeps(cls: type, base: str, attr: str) -> bool:
    """Return whether ``cls`` has the method ``attr`` of the class named ``base`` (a subclass may replace it)."""
    module, _, qualname = base.rpartition(".")
    return inspect.getattr_static(cls, attr) is inspect.getattr_static(getattr(sys.modules[module], qualname), attr)


def _seed_argument(instructions: list[dis.Instruction], method: int, frame: types.FrameType, name: str,
                   parameter: str, any_value: bool = False) -> Any:
    """Return the one argument of the call of the method loaded at ``method`` (positional, or by ``parameter``'s
    name), read as a constructor's seed is (``any_value``: _COMPUTED, whatever it is); _UNKNOWN where the call is not
    found in straight-line code after it or passes anything else."""
    for at in range(method + 1, min(method + 64, len(instructions))):
        call = instructions[at]
        if call.opcode in _JUMPS:
            return _UNKNOWN
        if call.opname not in _CALLS or call.arg != 1:
            continue
        k = at - 1
        if call.opname in ("CALL_KW", "CALL_FUNCTION_KW"):
            names: Any = instructions[k].argval
            k -= 1
        else:
            keywords = next((i for i in instructions[_skip_between(instructions, k) + 1:at] if i.opname == "KW_NAMES"),
                            None)
            names = () if keywords is None else keywords.argval
            if keywords is not None and not isinstance(names, tuple):  # 3.11: its argument indexes the constants
                names = frame.f_code.co_consts[keywords.arg or 0]
        k = _skip_between(instructions, k)
        start = _expression_start(instructions, k)
        if start is None or _skip_between(instructions, start - 1) != method:
            continue  # a call inside the argument (``int(seed)``)
        if names not in ((), (parameter,)):
            return _UNKNOWN
        if any(i.opname in _LOADS and i.argval == name for i in instructions[start:k + 1]):
            return _UNKNOWN  # it reads the generator's name, not yet bound to it
        return _COMPUTED if any_value else _argument_value(instructions, start, k, frame)
    return _UNKNOWN


def _handled_between(code: types.CodeType, first: int, last: int) -> bool:
    """Return True when an exception handler may catch what is raised by an instruction from offset ``first`` to
    ``last`` of ``code`` (before 3.11, where handlers are set up by instructions: when ``code`` has any)."""
    entries = getattr(dis.Bytecode(code), "exception_entries", None)
    if entries is None:
        return any(i.opname.startswith("SETUP_") for i in _instructions(code))
    return any(entry.start <= last and first < entry.end for entry in entries)


# A computed value that cannot be None, though it cannot be read: an arithmetic operation's, a literal list's.
_COMPUTED = object()
_SUBSCRIPTS = frozenset({"BINARY_SUBSCR"})
# Operations whose result is never None (a numeric type's own dunders are trusted, as for ``+``).
_NEVER_NONE_OPS = frozenset({"UNARY_NEGATIVE", "UNARY_POSITIVE", "UNARY_INVERT", "BUILD_LIST", "BUILD_TUPLE"})
# Builtins that return a number (or raise) whatever their arguments: ``int(None)`` raises rather than gives None.
_NEVER_NONE_CALLS = (int, len, hash, abs, round, ord)


def _skip_between(instructions: list[dis.Instruction], k: int) -> int:
    while k >= 0 and instructions[k].opname in _BETWEEN:
        k -= 1
    return k


def _expression_start(instructions: list[dis.Instruction], end: int) -> int | None:
    """Return the index of the first instruction of the expression whose value the instruction at ``end`` leaves on
    the stack, found by stack effects; None where its instructions branch or their effects cannot be told."""
    need = 1
    for k in range(end, -1, -1):
        instruction = instructions[k]
        if instruction.opcode in _JUMPS:
            return None  # a conditional expression, `or`, a comprehension: not straight-line
        try:
            need -= dis.stack_effect(instruction.opcode,
                                     instruction.arg if instruction.opcode >= dis.HAVE_ARGUMENT else None, jump=False)
        except ValueError:
            return None
        if need <= 0:
            if need < 0 or any(instructions[j].is_jump_target for j in range(k + 1, end + 1)):
                return None
            return k
    return None


_JUMPS = frozenset(dis.hasjrel) | frozenset(dis.hasjabs)


def _read(instructions: list[dis.Instruction], start: int, end: int, frame: types.FrameType) -> Any:
    """Return the value of a name, constant or attribute chain spanning ``start``..``end``, or _UNKNOWN where it
    cannot be read or the span is not one (``get_cfg().seed``: what a call gave may be None)."""
    value, before = _chain_value(instructions, end, frame)
    return value if before == start - 1 else _UNKNOWN


def _argument_value(instructions: list[dis.Instruction], start: int, end: int, frame: types.FrameType) -> Any:
    """Return the value of the expression spanning ``start``..``end`` where it can be read without running code (a
    name, an attribute chain, an item of a dict, list, tuple or numeric array, ``getattr`` or ``d.get`` of a dict),
    _COMPUTED for a value that cannot be None (an arithmetic operation, a literal list, ``int(...)``), or _UNKNOWN:
    any other value (a helper's result, ``pop``, another mapping's ``get``) may be None."""
    last = instructions[end]
    if last.opname in _ATTRIBUTES or start == end:
        return _read(instructions, start, end, frame)
    if last.opname in _SUBSCRIPTS or (last.opname == "BINARY_OP" and last.argrepr == "[]"):
        key_start = _expression_start(instructions, end - 1)
        if key_start is None or key_start <= start:
            return _UNKNOWN
        key = _argument_value(instructions, key_start, end - 1, frame)
        return _item(_argument_value(instructions, start, key_start - 1, frame), (key,))
    if last.opname == "BINARY_OP" or last.opname in _NEVER_NONE_OPS or \
            (last.opname.startswith("BINARY_") and last.opname not in ("BINARY_SUBSCR", "BINARY_SLICE")):
        return _COMPUTED
    if last.opname in ("CALL", "CALL_FUNCTION", "CALL_METHOD") and last.arg in (0, 1, 2, 3):
        arguments: list[Any] = []
        k = _skip_between(instructions, end - 1)
        for _ in range(last.arg):
            begin = _expression_start(instructions, k)
            if begin is None or begin <= start:
                return _UNKNOWN
            arguments.insert(0, _argument_value(instructions, begin, k, frame))
            k = _skip_between(instructions, begin - 1)
        if k > start and instructions[k].opname in _ATTRIBUTES and instructions[k].argval == "get":
            return _item(_argument_value(instructions, start, k - 1, frame), tuple(arguments), by_get=True)
        first = start
        while first < k and instructions[first].opname in _BETWEEN:
            first += 1  # a cell's ``int(...)`` pushes a NULL before loading the name
        called = _read(instructions, first, k, frame)
        if called is getattr and len(arguments) in (2, 3):
            return _attribute(*arguments)
        if any(called is builtin for builtin in _NEVER_NONE_CALLS) or _numpy_number_type(called):
            return _COMPUTED
    return _UNKNOWN


def _numpy_number_type(called: Any) -> bool:
    """Return True for a numpy scalar number type (``np.int64``): calling it gives one of it."""
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(called, type) and issubclass(called, numpy.number)


def _item(container: Any, key: tuple[Any, ...], by_get: bool = False) -> Any:
    """Return ``container[key[0]]`` (or ``container.get(*key)``) for a dict, list or tuple, read without running
    code; _COMPUTED where any item of it, or of a numeric array, is sure not to be None; else _UNKNOWN."""
    if container is _COMPUTED or container is _UNKNOWN:
        return _UNKNOWN  # a container a call or an operation made: its items may be None
    numpy = sys.modules.get("numpy")
    if numpy is not None and type(container) is numpy.ndarray and container.dtype.kind in "biufc" and not by_get:
        return _COMPUTED  # an item or slice of numbers
    known = not any(part is _COMPUTED or part is _UNKNOWN for part in key)
    if isinstance(container, dict) and (type(container).get is dict.get if by_get else
                                        type(container).__getitem__ is dict.__getitem__):
        if not known:  # some key, or the default, is not known: whichever item it reads is one of these
            sure = not by_get and not _static(type(container), "__missing__")
            return _COMPUTED if sure and not any(item is None for item in container.values()) else _UNKNOWN
        try:
            # dict's own lookup runs no code; a missing key of a subscript raises, or runs __missing__
            return dict.get(container, *key) if by_get else dict.get(container, key[0], _UNKNOWN)
        except TypeError:  # an unhashable key: the call itself fails
            return _UNKNOWN
    if type(container) in (list, tuple) and not by_get:
        if not known:
            return _COMPUTED if container and not any(item is None for item in container) else _UNKNOWN
        if type(key[0]) is int:
            return container[key[0]] if -len(container) <= key[0] < len(container) else _UNKNOWN
    return _UNKNOWN


def _attribute(target: Any, name: Any, default: Any = _UNKNOWN) -> Any:
    """Return what ``getattr(target, name, default)`` gave, read without running code as an attribute chain is, or
    _UNKNOWN."""
    if target is _UNKNOWN or target is _COMPUTED or type(name) is not str:
        return _UNKNOWN
    if isinstance(target, (types.ModuleType, type)):
        return getattr(target, name, default)
    cls = type(target)
    if isinstance(inspect.getattr_static(cls, "__getattribute__"), types.FunctionType) or _static(cls, "__getattr__"):
        return _UNKNOWN  # its attributes are what its code says
    value = _instance_attribute(target, name)
    if value is not _ABSENT:
        return value
    # Neither the object nor its class has it: the default is what getattr gave. A class attribute that takes code
    # to read (a property) is unknown.
    return _UNKNOWN if _static(cls, name) else default


_ABSENT = object()
# Data descriptors of C that read a value the object holds and run no code: a slot (``__slots__``, a dataclass's
# slots=True) and a named tuple's field.
_TUPLE_FIELD = getattr(sys.modules.get("_collections"), "_tuplegetter", None)  # else a property: unknown
_HELD_DESCRIPTORS: tuple[type, ...] = (types.MemberDescriptorType, *([_TUPLE_FIELD] if isinstance(_TUPLE_FIELD, type)
                                                                    else []))
_MRO = type.__dict__["__mro__"].__get__  # a class's, never a metaclass's answer
_CLASS_DICT = type.__dict__["__dict__"].__get__


def _instance_attribute(target: Any, name: str) -> Any:
    """Return ``target.name`` as the attribute lookup finds it, read without running code: from the object's
    ``__dict__``, a slot or a named tuple's field, or a plain value its class holds (a class-level default);
    _ABSENT where neither has it, _UNKNOWN where reading it takes code (a property, another descriptor)."""
    cls = type(target)
    found: Any = _ABSENT
    own: Any = None
    try:
        for klass in _MRO(cls):
            namespace = _CLASS_DICT(klass)
            if found is _ABSENT and name in namespace:
                found = namespace[name]
            if own is None and "__dict__" in namespace:
                own = namespace["__dict__"]
    except Exception:  # a class whose bases misbehave
        return _UNKNOWN
    kind = type(found)
    if found is not _ABSENT and kind in _HELD_DESCRIPTORS:
        try:
            return found.__get__(target, cls)
        except AttributeError:  # a slot not set: the read raises
            return _UNKNOWN
    if found is not _ABSENT and (_static(kind, "__set__") or _static(kind, "__delete__")):
        return _UNKNOWN  # a property, or another data descriptor: it takes code, and comes before __dict__
    # The instance dict's own descriptor (a C type's may be a slot), never a property named __dict__
    held = own.__get__(target, cls) if type(own) in (types.GetSetDescriptorType, types.MemberDescriptorType) \
        else None
    if isinstance(held, dict) and name in held:
        return held[name]
    if found is _ABSENT:
        return _ABSENT
    return _UNKNOWN if _static(kind, "__get__") else found  # a method or descriptor takes code; a plain value not


def _static(cls: type, name: str) -> bool:
    """Return True when ``cls`` or a base defines ``name``, looked up without running code."""
    try:
        inspect.getattr_static(cls, name)
    except AttributeError:
        return False
    return True


def _chain_value(instructions: list[dis.Instruction], k: int, frame: types.FrameType) -> tuple[Any, int]:
    """Return the value of the name and attributes loaded by the instructions ending at ``k`` (``np.random``,
    ``self.seed``), read without running code (an object's attribute from its ``__dict__``), or _UNKNOWN; and
    the index of the instruction before them."""
    attributes: list[str] = []
    while k >= 0 and instructions[k].opname in _ATTRIBUTES:
        attributes.append(instructions[k].argval)
        k -= 1
    if k < 0:
        return _UNKNOWN, k
    value = _value_of(instructions[k], frame)
    for name in reversed(attributes):
        if value is _UNKNOWN:
            break
        if isinstance(value, (types.ModuleType, type)):
            value = getattr(value, name, _UNKNOWN)
        elif isinstance(inspect.getattr_static(type(value), "__getattribute__", None), types.FunctionType):
            value = _UNKNOWN  # its attributes are what its code says
        else:
            value = _instance_attribute(value, name)
            value = _UNKNOWN if value is _ABSENT else value  # __getattr__ would answer, or the read raises
    return value, k - 1


def _value_of(instruction: dis.Instruction, frame: types.FrameType) -> Any:
    """Return the value a load of one name or constant gives in ``frame``, or _UNKNOWN."""
    op = instruction.opname
    if op == "LOAD_SMALL_INT":
        return instruction.argval
    if op in ("LOAD_FAST_CHECK", "LOAD_FAST_BORROW"):
        op = "LOAD_FAST"
    if op == "LOAD_NAME":  # a cell's or module's code: its locals, then its globals and builtins
        value = frame.f_locals.get(instruction.argval, _UNKNOWN)
        if value is not _UNKNOWN:
            return value
        op = "LOAD_GLOBAL"
    if op == "LOAD_GLOBAL":
        value = frame.f_globals.get(instruction.argval, _UNKNOWN)
        if value is _UNKNOWN:
            builtins_ns = frame.f_builtins
            value = builtins_ns.get(instruction.argval, _UNKNOWN)
        return value
    return _loaded(instruction, frame)


def depends_on(path: str | os.PathLike[str]) -> None:
    """Declare, inside a running body, that its result depends on ``path`` (a file or a whole folder)."""
    for recorder in active():
        recorder.declare(os.fspath(path))


def inherit(conditions: Conditions, outer: Recorders) -> None:
    """A memoized entry served inside a running body: its files are the body's dependencies too."""
    for recorder in outer:
        recorder.inherited.append(conditions)


# -- identities -----------------------------------------------------------------------------------------------

# Opening a named pipe for reading waits for a writer, and a terminal may become the process's own: neither
# happens with these flags (both absent on Windows, where neither is a file that open() meets).
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
_KINDS = {stat.S_IFIFO: "named pipe", stat.S_IFSOCK: "socket", stat.S_IFCHR: "character device",
          stat.S_IFBLK: "block device", stat.S_IFDIR: "folder"}


def file_digest(path: str) -> str:
    """Return the xxh3-128 of a regular file's content, streamed; raise OSError for anything else.

    What is opened is checked, not what a stat found before: the path may have become a pipe or a
    device since (a device such as /dev/zero never ends). A link is followed: a user's data file may
    be one, and only a regular file's content is read.
    """
    fd = os.open(path, _OPEN_FLAGS)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, f"not a regular file but a {file_kind(mode)}", path)
        h = xxhash.xxh3_128()
        with open(fd, "rb", closefd=False) as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    finally:
        os.close(fd)
    return h.hexdigest()


def file_kind(mode: int) -> str:
    """Return what a file that is not a regular one is, in words."""
    return _KINDS.get(stat.S_IFMT(mode), "special file")


def _listing(path: str, sizes: bool = False) -> tuple[list[str], str]:
    """Return a folder's names (the cache's own left out), sorted, and the digest of them with each one's kind: a
    body that keeps the files (``e.is_file()``) gives another answer when an entry turns into a folder; with
    ``sizes``, each one's size and modification time too."""
    with os.scandir(path) as entries:
        kinds = {entry.name: _entry_kind(entry) + (_entry_size(entry) if sizes else "") for entry in entries}
    names = _store_names(sorted(kinds), path)
    return names, _names_digest([kinds[name] + name for name in names])


def _entry_kind(entry: os.DirEntry[str]) -> str:
    """Return an entry's kind as a body's ``is_dir()``/``is_file()`` see it: from the folder's own record of it,
    with no ``stat``, except for a link, whose target is what they see."""
    try:
        kind = "d" if entry.is_dir() else "f" if entry.is_file() else "o"
        return "l" + kind if entry.is_symlink() else kind
    except OSError:
        return "?"


def _entry_size(entry: os.DirEntry[str]) -> str:
    """Return an entry's size and modification time as ``os.stat`` gives them (a link's target's), as text."""
    try:
        st = entry.stat()
    except OSError:
        return ":?/"
    return f":{st.st_size}:{st.st_mtime_ns}/"


# What reads a file's size or times without opening it: os.stat and os.lstat, os.path.getsize and the like,
# DirEntry.stat and Path.stat (known by name: a method of a value the code made).
_SIZE_READERS = frozenset({"stat", "lstat", "getsize", "getmtime", "getctime", "getatime"})


@functools.lru_cache(maxsize=4096)
def _code_names(code: types.CodeType) -> frozenset[str]:
    """Return the global and attribute names ``code`` and the code nested in it use."""
    names: set[str] = set()
    codes = [code]
    for current in codes:
        codes.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
        names.update(current.co_names)
    return frozenset(names)


@functools.lru_cache(maxsize=1024)
def _library_code(filename: str) -> bool:
    try:
        return os.path.realpath(filename).startswith((*_LIBRARY_DIRS, _PACKAGE_DIR))
    except OSError:  # a relative name ("<ipython-input-...>") while the current folder is removed: not a library's
        return False


def stats_files(fn: Any) -> bool:
    """Return True when ``fn``'s code, or the code of the user's functions it reaches, reads a file's size or times
    (``os.path.getsize``, ``entry.stat()``). Reached: what its code names as a global or holds in a closure (a
    helper in another cell), the attributes it names of a user's module (``ckutils.latest``), and the methods of
    a user's class it names or of a user's object's class (``Runs(folder).latest()``, an inherited one too). A
    library's code is not looked into: what it reads of a folder it lists is seen as names only."""
    return _reaches([(fn, frozenset())], _reads_sizes)


def stats_code(code: types.CodeType, namespace: dict[str, Any]) -> bool:
    """Return True when a cell's compiled ``code``, or the user's code it reaches through what it names of the
    notebook's ``namespace`` (a helper, a class or an object defined in another cell), reads a file's size or times:
    as ``stats_files`` tells for a function."""
    return code_reaches(code, namespace, _reads_sizes)


def _reads_sizes(names: frozenset[str]) -> bool:
    return not names.isdisjoint(_SIZE_READERS)


def function_reaches(fn: Any, wanted: Callable[[frozenset[str]], bool]) -> bool:
    """Return True when the names of ``fn``'s code, or of the user's code it reaches (see ``stats_files``), are
    ``wanted``; True too where there is too much code to look through."""
    return _reaches([(fn, frozenset())], wanted)


def code_reaches(code: types.CodeType, namespace: dict[str, Any], wanted: Callable[[frozenset[str]], bool]) -> bool:
    """Return True when the names of a cell's compiled ``code``, or of the user's code it reaches through what it
    names of ``namespace``, are ``wanted`` (as ``function_reaches`` tells for a function)."""
    names = _code_names(code)
    if wanted(names):
        return True
    return _reaches([(found, names) for name in names
                     if name in namespace and (found := _followed(namespace[name])) is not None], wanted)


# The most values of a call's arguments looked at for user code (objects in a list, their attributes): past it, the
# code is taken to read sizes and times, which costs a listing per hit at most.
_ARGUMENT_VALUES = 10_000
_PLAIN = frozenset({str, bytes, int, float, complex, bool, type(None)})  # values that run no code of the user's


def stats_arguments(fn: Any, values: Iterable[Any]) -> bool:
    """Return True when code of the user's that a call's arguments bring reads a file's size or times: the methods
    of a user object's class (``runs.latest()``, the body naming no class), a function, bound method, partial or
    class passed, or those of what they hold in a list, tuple, set, dict or attribute. Told on a miss; each class
    once a call."""
    todo = [value for value in values if type(value) not in _PLAIN]
    if not todo:
        return False  # plain values only (most calls): no code of the user's to look into
    asked = _code_names(code) if isinstance(code := getattr(fn, "__code__", None), types.CodeType) else frozenset()
    met: set[int] = set()
    classes: dict[type, bool] = {}  # the classes met: whether each is the user's (and was looked into)
    while todo:
        value = todo.pop()
        if id(value) in met:
            continue
        if len(met) >= _ARGUMENT_VALUES:
            return True
        met.add(id(value))
        try:
            if isinstance(value, (type, types.ModuleType, types.FunctionType, types.MethodType, functools.partial)):
                if _reaches([(value, asked)], _reads_sizes):
                    return True
                # What a bound method or partial holds runs too: its object's other methods, its arguments' code
                todo.extend(item for item in (getattr(value, "__self__", None), *getattr(value, "args", ()),
                                              *getattr(value, "keywords", {}).values()) if type(item) not in _PLAIN)
                continue
            cls = type(value)
            user = classes.get(cls)
            if user is None:
                classes[cls] = user = _user_class(cls)
                if user and _reaches([(cls, asked)], _reads_sizes):
                    return True
            for held in ((value,) if isinstance(value, (list, tuple, set, frozenset))
                         else (value.keys(), value.values()) if isinstance(value, dict)
                         else (vars(value).values(),) if user and hasattr(value, "__dict__") else ()):
                # A long list of numbers or names is passed over at C speed: only what may run code is walked.
                if not set(map(type, held)) <= _PLAIN:
                    todo.extend(item for item in held if type(item) not in _PLAIN)
        except Exception:  # an object whose attributes raise
            continue
    return False


def _reaches(todo: list[tuple[Any, frozenset[str]]], wanted: Callable[[frozenset[str]], bool]) -> bool:
    """Return True when the names of the code of what ``todo`` holds (each with the names asked of it, for a
    module), or of the user's code it reaches, are ``wanted`` (see ``stats_files``)."""
    seen: set[types.CodeType] = set()
    looked: set[tuple[int, frozenset[str]]] = set()  # the modules and classes looked into, with the names asked
    met: set[int] = set()  # the objects without code of their own looked into (held alive by the caller meanwhile)
    while todo and len(seen) < 200 and len(met) < 10_000:
        item, asked = todo.pop()
        try:
            if isinstance(item, (types.ModuleType, type)):
                if (id(item), asked) not in looked:
                    looked.add((id(item), asked))
                    todo.extend((member, asked) for member in _members(item, asked))
                continue
            item = getattr(item, "__func__", item)  # a bound, static or class method: its function
            code = getattr(item, "__code__", None)
            if code is None:  # a wrapper (a memoized helper, functools.wraps, a partial), a property, an object
                if id(item) in met:
                    continue  # objects holding each other (a functor holding its owner)
                met.add(id(item))
                todo.extend((inner, asked) for inner in (getattr(item, attr, None) for attr in _WRAPPED)
                            if inner is not None)
                # A user's object (a functor, a torch module, plain settings) runs its class's methods when called
                # or named (``picker()``, ``model.predict()``), and the functions it holds that the code names.
                if _user_class(type(item)):
                    todo.append((type(item), asked))
                    held_by = getattr(item, "__dict__", None)
                    if isinstance(held_by, dict):
                        todo.extend((found, asked) for name, value in held_by.items()
                                    if name in asked and callable(value) and (found := _followed(value)) is not None)
                continue
            namespace = getattr(item, "__globals__", None)
            cells = getattr(item, "__closure__", None) or ()
        except Exception:  # an object whose attributes raise
            continue
        if not isinstance(code, types.CodeType) or code in seen or _library_code(code.co_filename):
            continue
        seen.add(code)
        names = _code_names(code)
        if wanted(names):
            return True
        held: list[Any] = []
        for cell in cells:
            with contextlib.suppress(ValueError):  # a cell not yet filled
                held.append(cell.cell_contents)
        if isinstance(namespace, dict):
            held.extend(namespace[name] for name in names if name in namespace)
        todo.extend((_followed(value), names) for value in held if _followed(value) is not None)
    return bool(todo)  # too much code to look through: taken to read them, which costs a listing per hit at most


# Where a callable without code of its own keeps the function it runs.
_WRAPPED = ("__wrapped__", "func", "fget", "fset")


def _followed(value: Any) -> Any:
    """Return what to look into of a value the code names: a function, module or class itself, a user's object
    (its class's methods are what ``model.predict()`` runs, and the functions it holds what ``cfg.reader(path)``
    runs), or None for the rest (data, a library's object). A callable object is returned itself: what it wraps is
    followed, and its class when it is the user's."""
    if callable(value) or isinstance(value, types.ModuleType):
        return value
    return value if _user_class(type(value)) else None


def _members(owner: types.ModuleType | type, asked: frozenset[str]) -> list[Any]:
    """Return what code that names ``asked`` may run of a user's module (the attributes it names) or class (every
    function of the user's classes in its MRO: ``__init__`` and the operators run without being named)."""
    if isinstance(owner, types.ModuleType):
        path = module_attribute(owner, "__path__")
        where = module_attribute(owner, "__file__") or (next(iter(path), None) if isinstance(path, Iterable) else None)
        if not isinstance(where, str) or _library_code(where):
            return []
        space = vars(owner)
        return [found for name in asked if name in space and (found := _followed(space[name])) is not None]
    return [value for klass in owner.__mro__ if _user_class(klass) for value in vars(klass).values()
            if isinstance(value, (types.FunctionType, staticmethod, classmethod, property))]


def _user_class(cls: type) -> bool:
    """Return True for a class defined by the user's code (a notebook's or a module's outside the libraries)."""
    module = sys.modules.get(getattr(cls, "__module__", None) or "")
    if module is None or module.__name__ == "builtins":
        return False
    where = module_attribute(module, "__file__")
    return not isinstance(where, str) or not _library_code(where)


def _names_digest(names: list[str]) -> str:
    return xxhash.xxh3_128_hexdigest("\0".join(names).encode())


def _expand(declared: str) -> tuple[list[str], list[str]]:
    """Return the files and directories a declaration covers: a file, a folder (recursively) or a pattern."""
    matches = sorted(glob.glob(declared, recursive=True)) if glob.has_magic(declared) else [declared]
    files: list[str] = []
    dirs: list[str] = []
    for match in matches:
        if os.path.isdir(match):
            dirs.append(match)
            for root, subdirs, names in os.walk(match):
                subdirs.sort()
                dirs.extend(os.path.join(root, d) for d in subdirs)
                files.extend(os.path.join(root, n) for n in sorted(names))
        else:
            files.append(match)
    return files, dirs


def _declared_state(declared: str) -> dict[str, list[int] | None]:
    """Return each file and folder a declaration covers now (see _expand) with its signature (None: missing)."""
    found_files, found_dirs = _expand(declared)
    state: dict[str, list[int] | None] = {}
    for path in (*found_files, *found_dirs):
        try:
            state[path] = _signature(os.stat(path))
        except OSError:
            state[path] = None
    return state


def _changed_meanwhile(then: dict[str, list[int] | None], recorder: Recorder, declared: str,
                       theirs: tuple[set[str], tuple[str, ...]] = (set(), ())) -> str | None:
    """Return a path a declaration covers that changed, came or went since it was declared, other than by the
    body's own writing (a file it wrote, a folder it wrote into) or its processes' (``theirs``: see
    _handed_changes); None when there is none."""
    now = _declared_state(declared)
    if now == then:
        return None
    made, folders = theirs
    owned = recorder.written | made  # what the body's own Python or its processes wrote
    for path in sorted(then.keys() | now.keys()):
        if path in then and path in now and then[path] == now[path]:
            continue
        real = os.path.realpath(path)
        if real in owned or any(os.path.dirname(w) == real for w in owned) or \
                os.path.join(real, "").startswith(folders):
            continue
        return path
    return None


def _handed_changes(recorder: Recorder) -> tuple[set[str], tuple[str, ...]]:
    """Return the real paths of the files the command lines of the run's processes named that the run changed or
    made (``sort -o data/sorted.txt``: their output), and those of the folders they named or made, ending in a
    separator: a process may have written anything below those."""
    made: set[str] = set()
    folders: list[str] = []
    for absolute, (_name, real, before, folder) in recorder.handed.items():
        if folder or (before is None and os.path.isdir(absolute)):
            folders.append(os.path.join(real, ""))
        elif before is None or _signature_of(absolute, False)[1] != before:
            made.add(real)
    return made, tuple(folders)


def _matches_digest(pattern: str) -> str | None:
    """Return the digest of what a pattern the body matches matches now; None for a pattern outside the data
    folders (a library's), which is not recorded."""
    if not _is_data(_real(_literal_part(pattern)), ()):
        return None
    token = pause()  # the matching is ours, not the body's
    try:
        return _names_digest(_matches(pattern))
    finally:
        resume(token)


class NotRecordable(Exception):
    """The run's dependencies cannot be recorded soundly: its result is not stored."""


def finish(recorder: Recorder, excluded: Iterable[str]) -> Conditions:
    """Return the conditions of a finished run; raise NotRecordable when they cannot be known."""
    if recorder.held:
        # Such a value is the object's answer before it changed, perhaps: stored under the key of the object as
        # it is, it would be served to a fresh object, which computes anew.
        raise NotRecordable(f"it read {next(iter(recorder.held))}, which its object held from before the run, "
                            "and an object's cached values are not part of its key: that value was filled outside "
                            "a memoized run, or by a fill that read more than its object (a file, a random draw), "
                            "or before the object changed. Drop it before the run (del obj.name, "
                            "obj.method.clear() or memo.reset(obj)) to have the result cached")
    if recorder.unlocatable and not recorder.declared:
        raise NotRecordable(f"it reads {recorder.unlocatable}, so which file it "
                            "read cannot be named: declare what it reads with files= or memo.depends_on_file")
    if recorder.in_memory:
        raise NotRecordable(f"it read {recorder.in_memory}, a file of fsspec's in-memory file system, which no "
                            "check can follow and which is not kept across restarts: pass its content as an "
                            "argument, or keep the file on disk")
    if recorder.helpers:
        _helpers_read(recorder)
    if recorder.stale_lines:
        raise NotRecordable(f"linecache served it lines of {recorder.stale_lines} older than the file, which a "
                            "restarted kernel would read as it is: call linecache.checkcache() before reading it")
    if recorder.connections or recorder.attached_unnamed:
        _list_attached(recorder)
    if not (recorder.reads or recorder.listed or recorder.declared or recorder.inherited or recorder.patterns
            or recorder.rewritten or recorder.spawned or recorder.outputs or recorder.links or recorder.handed):
        return {}  # the common run: it read no file and was served no entry with conditions
    try:
        return _finish(recorder, excluded)
    except OSError as exc:
        raise NotRecordable(f"what it read could not be examined ({exc})") from None


@functools.lru_cache(maxsize=64)
def _real(directory: str) -> str:
    return os.path.realpath(directory)


def _finish(recorder: Recorder, excluded: Iterable[str]) -> Conditions:
    stores, notebooks = [_real(d) for d in excluded], notebook_paths()

    def is_data(real: str) -> bool:
        return _is_data(real, stores, notebooks)

    now = time.time_ns()
    conditions: Conditions = {}
    files: dict[str, list[Any]] = {}
    dirs: dict[str, list[Any]] = {}
    problem = sorted(p for p in recorder.rewritten if is_data(p))
    if problem:
        raise NotRecordable(f"it changes {problem[0]}, which it also reads, so its result depends on its own "
                            "earlier runs")
    by_rows: set[str] = set()  # the databases compared by their rows: their -wal files are in their conditions
    for absolute in recorder.databases:
        read = recorder.reads.get(absolute)
        if read is not None and read[1] not in recorder.written and is_data(read[1]):
            entry = _database_condition(absolute, read[2], recorder.reads.get(absolute + "-wal"), now,
                                        recorder.started / 1e9)
            if entry is not None:
                files[read[0]] = [read[0], *entry[1:]]
                by_rows.update((absolute, absolute + "-wal"))
    for absolute, (name, real, before) in recorder.reads.items():
        if real in recorder.written or not is_data(real) or absolute in by_rows:
            continue
        companion = real in recorder.companions
        if companion and before is not None:
            before = _companion_before(absolute, before)
        files[name] = [name, *_file_condition(absolute, before, now, declared=companion and before is None)[1:]]
    for absolute, (name, real, before) in recorder.listed.items():
        if not is_data(real):
            continue
        entry = _dir_condition(absolute, before, now, sizes=recorder.sizes)
        then = recorder.listed_sizes.get(absolute)
        if then is not None and entry[5] != then:
            raise NotRecordable(f"a file in the folder {name}, whose files' sizes or times it read, changed while it "
                                "ran")
        dirs[name] = [name, *entry[1:]]
    globs = []
    theirs = _handed_changes(recorder) if recorder.handed and recorder.declared_then else (set(), ())
    for declared in recorder.declared:
        found_files, found_dirs = _expand(declared)
        for path in found_files:
            if path not in files:
                files[path] = _file_condition(path, None, now, declared=True)
        for path in found_dirs:
            if path not in dirs:
                dirs[path] = _dir_condition(path, None, now, declared=True)
        if glob.has_magic(declared):
            matches = _matches(declared)
            globs.append([declared, _names_digest(matches), matches[:_NAMES_KEPT]])
        # Taken after the conditions: unchanged since it was declared, it was unchanged when they were taken.
        changed = _changed_meanwhile(recorder.declared_then[declared], recorder, declared, theirs) \
            if declared in recorder.declared_then else None
        if changed is not None:
            where = "" if changed == declared else f" (under {declared}, which it declares)"
            raise NotRecordable(f"{changed}, which it depends on{where}, changed while it ran")
    for pattern in recorder.patterns:
        if not is_data(_real(_literal_part(pattern))):
            continue
        matches = _matches(pattern)
        mine = [m for m in matches if os.path.realpath(m) in recorder.written] if recorder.written else []
        if mine:
            raise NotRecordable(f"it writes {mine[0]}, which matches the pattern {pattern} it also reads, so its "
                                "result depends on its own earlier runs")
        entry = [pattern, _names_digest(matches), matches[:_NAMES_KEPT]]
        then = recorder.patterns[pattern]
        if then is not None and entry[1] != then:
            raise NotRecordable(f"the files matching {pattern}, a pattern it matched, changed while it ran")
        if entry not in globs:
            globs.append(entry)
    links = _link_conditions(recorder, is_data)
    # A path read as absolute may have been made from the current folder or "~" by a library (xarray, mailbox:
    # os.path.abspath(name); pandas: os.path.expanduser(name)), which the body's code does not show: served
    # while that folder is the same only.
    if _inside(recorder.cwd, recorder, files.values(), dirs.values()):
        conditions["cwd"] = recorder.cwd
    home = os.path.expanduser("~")
    if home != "~" and _inside(home, recorder, files.values(), dirs.values()):
        conditions["home"] = home
    if recorder.spawned:
        # What another process reads is not seen: it is served while what it inherited is the same (its text
        # output is decoded as the locale says).
        if recorder.spawn_environment:
            conditions["environment"] = [environment_digest(recorder.environ), recorder.spawned]
        if recorder.spawn_folder:
            conditions["cwd"] = recorder.cwd
        conditions["encoding"] = text_encoding()
    written = _outputs(recorder, is_data, now)
    _handed(recorder, is_data, now, files, dirs, written, stores)
    for inherited in recorder.inherited:
        for entry in inherited.get("written", []):
            written.setdefault(entry[0], entry)  # served inside the run: it did not write them, the entry's run did
        for place in ("cwd", "home", "encoding", "environment"):
            if place in inherited:
                conditions.setdefault(place, inherited[place])
        for entry in inherited.get("files", []):
            files.setdefault(entry[0], entry)
        for entry in inherited.get("dirs", []):
            dirs.setdefault(entry[0], entry)
        for entry in inherited.get("globs", []):
            if entry not in globs:
                globs.append(entry)
        for entry in inherited.get("links", []):
            if isinstance(entry, list) and len(entry) == 3 and all(isinstance(part, str) for part in entry):
                links.setdefault((str(entry[0]), str(entry[1])), entry)
    if files:
        conditions["files"] = sorted(files.values())
        # A file opened as text without encoding= is decoded as the locale says (the audit event does not say
        # which mode or encoding): served while it says the same.
        conditions.setdefault("encoding", text_encoding())
    if dirs:
        conditions["dirs"] = sorted(dirs.values())
    if globs:
        conditions["globs"] = globs
    if written:
        conditions["written"] = sorted(written.values())
    if links:
        conditions["links"] = sorted(links.values())
    return conditions


def _handed(recorder: Recorder, is_data: Callable[[str], bool], now: int, files: dict[str, list[Any]],
            dirs: dict[str, list[Any]], written: dict[str, list[Any]], stores: list[str]) -> None:
    """Add the conditions of the files and folders the command lines of the processes the run started named: as
    read where they are as they were then; a file changed since is what a process wrote (``cp a b``), the run's
    output, and anything removed is neither. A folder is taken with everything below it as the run left it (the
    process may read its files, ``grep -r x logs``, or write into it)."""
    for absolute, (name, real, before, folder) in recorder.handed.items():
        if real in recorder.written or not is_data(real) or name in files or name in dirs:
            continue
        if before is None:  # missing when the process started: what is there now, it made
            _made(recorder, is_data, now, absolute, name, files, dirs, written, stores)
            continue
        taken, sig = _signature_of(absolute, folder)
        if not taken or sig is None:
            continue  # removed or replaced by another kind (mv, rm): not an input, nor left by the run
        if folder:
            tree = _tree(absolute, is_data, stores)
            if tree is None:  # too much to check on every hit: its listing only, where the run left it alone
                if sig == before:
                    dirs[name] = [name, *_dir_condition(absolute, before, now, sizes=recorder.sizes)[1:]]
                continue
            _tree_conditions(recorder, tree, absolute, name, now, files, dirs, files)
        elif sig == before:
            files[name] = [name, *_file_condition(absolute, before, now)[1:]]
        else:
            entry = _file_condition(absolute, None, now, declared=True)
            written.setdefault(name, [name, *entry[1:]])


def _made(recorder: Recorder, is_data: Callable[[str], bool], now: int, absolute: str, name: str,
          files: dict[str, list[Any]], dirs: dict[str, list[Any]], written: dict[str, list[Any]],
          stores: list[str]) -> None:
    """Add the conditions of what a process left at a name its command line gave that was missing when it started
    (``cp a out.txt``, ``train.py ckpt``): the run's output, a file or a folder with everything below it, which a
    hit would not make again. Nothing there, or a name never made, costs nothing."""
    try:
        mode = os.stat(absolute).st_mode
    except OSError:
        return
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return
    written.setdefault(name, [name, *_file_condition(absolute, None, now, declared=True)[1:]])
    tree = _tree(absolute, is_data, stores) if stat.S_ISDIR(mode) else None
    if tree is None:
        return  # a file, or a folder too large to check on each hit: that it is there (a folder) only
    _tree_conditions(recorder, tree, absolute, name, now, files, dirs, written)


def _tree_conditions(recorder: Recorder, tree: tuple[list[str], list[str]], absolute: str, name: str, now: int,
                     files: dict[str, list[Any]], dirs: dict[str, list[Any]], into: dict[str, list[Any]]) -> None:
    """Add the conditions of a folder's tree (from ``_tree``) that a command line named ``name``: each folder's
    listing to ``dirs``, and each file that is no input already and that the body's own Python did not write to
    ``into`` (``files`` where the process read the folder, the run's outputs where it made it)."""
    for path in tree[0]:
        inner = os.path.normpath(os.path.join(name, os.path.relpath(path, absolute)))
        dirs.setdefault(inner, [inner, *_dir_condition(path, None, now, declared=True)[1:]])
    for path in tree[1]:
        inner = os.path.normpath(os.path.join(name, os.path.relpath(path, absolute)))
        if os.path.realpath(path) not in recorder.written and inner not in files:
            into.setdefault(inner, [inner, *_file_condition(path, None, now, declared=True)[1:]])


_TREE_ENTRIES = 5000  # files and folders below a folder a command line names that are checked on each hit


def _tree(folder: str, is_data: Callable[[str], bool], stores: list[str]) -> tuple[list[str], list[str]] | None:
    """Return the folders (``folder`` first) and files below ``folder``, less the store's, the libraries' and a cache
    folder's own, sorted; None when they pass _TREE_ENTRIES."""
    found_dirs: list[str] = []
    found_files: list[str] = []
    for root, subdirs, names in os.walk(folder):
        found_dirs.append(root)
        kept = []
        for sub in sorted(subdirs):
            real = os.path.realpath(os.path.join(root, sub))
            if real not in stores and is_data(real) and not real.startswith(_PROGRAM_DIRS):
                kept.append(sub)
        subdirs[:] = kept
        found_files.extend(path for path in (os.path.join(root, n) for n in sorted(names))
                           if is_data(os.path.realpath(path)))
        if len(found_dirs) + len(found_files) > _TREE_ENTRIES:
            return None
    return found_dirs, found_files


def _link_conditions(recorder: Recorder, is_data: Callable[[str], bool]) -> dict[tuple[str, str], list[Any]]:
    """Return the links a run read, each as [how, path, where it led], less the system's and libraries', and less
    those at a place the run itself made, wrote or removed: its own doing, which a hit checks as its output where it
    left one (a link it made: what it names), as a file it wrote before reading it is no input."""
    found: dict[tuple[str, str], list[Any]] = {}
    for (kind, name), then in recorder.links.items():
        absolute = os.path.join(recorder.cwd, name)
        # Where the link itself lies (not where it leads): /proc/self/exe is the system's wherever it points.
        place = os.path.join(_real(os.path.dirname(absolute)), os.path.basename(absolute))
        if not is_data(place):
            continue
        # "Point latest at the new checkpoint" (islink, unlink, symlink) and shutil.move across file systems
        # (islink of the source, copy, remove it) change what they read: not a change by someone else.
        if place in recorder.written:
            continue
        if lead(kind, name) != then:
            raise NotRecordable(f"{name}, a link it read, was changed while it ran")
        found[(kind, name)] = [kind, name, then]
    return found


def _check_link(entry: list[Any]) -> str | None:
    kind, name, then = (entry + [None] * 3)[:3]
    if not (isinstance(kind, str) and isinstance(name, str) and isinstance(then, str)):
        return "a link it read is recorded in a form this version does not know"
    try:
        now = lead(kind, name)
    except Exception:  # a kind this version does not know
        return "a link it read is recorded in a form this version does not know"
    if now == then:
        return None
    if kind == SAMEFILE:
        if now.startswith("!") or then.startswith("!"):
            return f"{name} names {_file(now)} now, {_file(then)} when it ran"
        return f"{name} names another file now (device:inode {now}, {then} when it ran)"
    return f"{name} leads to {_where(now)} now, to {_where(then)} when it ran"


def _file(lead_text: str) -> str:
    return "nothing (it is missing)" if lead_text == "! ENOENT" else \
        f"no file ({lead_text[2:]})" if lead_text.startswith("!") else f"the file {lead_text} (device:inode)"


def _where(lead_text: str) -> str:
    return {"! ENOENT": "nothing (it is missing)", "! EINVAL": "itself (it is no link)"}.get(lead_text, lead_text)


def _outputs(recorder: Recorder, is_data: Callable[[str], bool], now: int) -> dict[str, list[Any]]:
    """Return the conditions of the files, folders and links the run made or overwrote and left (one it removed,
    renamed away, or only appended to is none): a hit is served while each is as the run left it, since a hit
    would not make it again. A file's size, times and content digest, as for a file read; a folder's being one (what
    it holds is the run's output where the run wrote it); a link's target."""
    found: dict[str, list[Any]] = {}
    for real, (absolute, name) in recorder.outputs.items():
        if not is_data(real):
            continue
        try:
            if real in recorder.made_links and stat.S_ISLNK(os.lstat(absolute).st_mode):
                found[name] = [name, *_signature(os.lstat(absolute)), "", now, _LINK, os.readlink(absolute)]
                continue
            mode = os.stat(absolute).st_mode
        except OSError:
            continue  # removed or renamed away by the run
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            continue
        entry = _file_condition(absolute, None, now, declared=True)
        if entry[1] is not None:
            found[name] = [name, *entry[1:]]
    return found


def _inside(folder: str, recorder: Recorder, files: Iterable[list[Any]], dirs: Iterable[list[Any]]) -> bool:
    """Return True when a file, folder or pattern the run read (not one declared) was named by an absolute path
    inside ``folder``."""
    inside = os.path.join(folder, "")
    declared = set(recorder.declared)
    names = itertools.chain((entry[0] for entry in itertools.chain(files, dirs)), recorder.patterns)
    return any(os.path.isabs(name) and name.startswith(inside) and name not in declared for name in names)


def _companion_before(path: str, before: list[int]) -> list[int]:
    """Return a companion file's signature at the read with its change time now, when only that changed:
    SQLite sets the owner of its WAL file on every connection (as root), which changes nothing in it."""
    with contextlib.suppress(OSError):
        st = os.stat(path)
        if [st.st_size, st.st_mtime_ns, st.st_ino] == [before[0], before[1], before[3]]:
            return _signature(st)
    return before


_NAMES_KEPT = 1000  # names of a listing kept to say what appeared or vanished

_DATABASE = "SQLite database"  # the kind of a file condition compared by its rows (see _databases)


def _database_condition(path: str, before: list[int] | None, wal: tuple[str, str, list[int] | None] | None,
                        now: int, started: float) -> list[Any] | None:
    """Return the condition of an SQLite database read through a handle: its signature and its write-ahead log's,
    the digest of its rows, and the clock times between which none of its rows expires around ``started`` (the
    run's start, no later than any read of the body); None where its rows cannot be read (compared byte for byte,
    as any file)."""
    try:
        st = os.stat(path)
        if before is None or _signature(st) != before or not stat.S_ISREG(st.st_mode):
            return None  # changed while it ran: as any file, which says so
        wal_before = None if wal is None else wal[2]
        wal_now = _wal_signature(path)
        # Made by the handle's first query in the run (a connection makes it lazily), it held nothing before.
        if wal_before is not None and not _same_log(wal_now, wal_before):
            raise NotRecordable(f"{path}-wal, which it read, changed while it ran")
        token = pause()  # our own reading, not the body's (nor that of a body around it)
        try:
            # Too large to read again on a check, or its rows unreadable: its signatures alone vouch for it (digest
            # ""), as for any file; kept as a database only where a row expires, so that the clock still counts.
            try:
                digest, window = ("", expiry_window(path, started)) if st.st_size > FILE_DIGEST_LIMIT else \
                    database_state(path, started)
            except OSError:
                digest, window = "", expiry_window(path, started)
        finally:
            resume(token)
        if not digest and window == (None, None):
            return None
        wal_after = _wal_signature(path)
        if _signature(os.stat(path)) != before or not _same_log(wal_after, wal_now):
            raise NotRecordable(f"{path}, which it read, changed while it ran")
    except OSError:
        return None
    return [path, *before, digest, now, _DATABASE, wal_after, list(window)]


def _wal_signature(path: str) -> list[int] | None:
    try:
        return _signature(os.stat(path + "-wal"))
    except OSError:
        return None


def _same_log(now: list[int] | None, then: list[int] | None) -> bool:
    """Return True when a write-ahead log's signatures agree but for its change time: SQLite sets its owner on every
    connection (as root: ours, reading it, too), which changes nothing in it."""
    if now is None or then is None:
        return now is then
    return [now[0], now[1], now[3]] == [then[0], then[1], then[3]]


def _check_database(entry: list[Any]) -> str | None:
    """Return why an SQLite database read through a handle holds other rows now, or None: its files' signatures
    vouch for it while they hold, and its rows where they moved (a restart's opening and closing)."""
    path, size, mtime, ctime, ino, digest, recorded, _, wal = entry[:9]
    if wal is not None and not (isinstance(wal, list) and len(wal) == 4 and all(type(n) is int for n in wal)):
        return f"data file {path} changed (its log's recorded state cannot be read)"
    window = entry[9] if len(entry) > 9 else None
    if not (isinstance(window, list) and len(window) == 2 and
            all(end is None or type(end) in (int, float) for end in window)):
        return f"data file {path} changed (when its rows expire was not recorded, or cannot be read)"
    # Readers drop a row once the clock passes its expire_time (diskcache's get): the rows it read hold only while
    # the clock stays where none of them expires, signatures and digest alike unchanged as it passes
    now = time.time()
    if (window[0] is not None and now < window[0]) or (window[1] is not None and now >= window[1]):
        return (f"data file {path} changed (a row of it expired since the run, or the clock went back past one: "
                "its expire_time lies between then and now)")
    try:
        st = os.stat(path)
    except OSError:
        return f"data file {path} is gone"
    sig, wal_now, old = _signature(st), _wal_signature(path), [size, mtime, ctime, ino]
    if sig == old and _same_log(wal_now, wal) and _settled(old, recorded) and (wal is None or _settled(wal, recorded)):
        return None
    if not digest:  # too large, or its rows unreadable: trusted by its signatures, as a large file is
        same = sig == old and _same_log(wal_now, wal)
        return None if same else f"data file {path} changed (modified; too large, or its rows unreadable, to compare)"
    trusted = _trusted_databases.get(path)
    if trusted is not None and trusted[0][0] == sig and _same_log(wal_now, trusted[0][1]):
        now_digest = trusted[1]
    else:
        token = pause()  # our own reading, not that of a body running around this call
        try:
            now_digest = database_digest(path)
        except OSError:
            return f"data file {path} changed (its rows cannot be read now)"
        finally:
            resume(token)
        if _settled(sig, time.time_ns()) and (wal_now is None or _settled(wal_now, time.time_ns())) and \
                _same_log(_wal_signature(path), wal_now):
            _trusted_databases[path] = ((sig, wal_now), now_digest)
    return None if now_digest == digest else f"data file {path} changed (other rows)"


_trusted_databases: dict[str, tuple[tuple[list[int], list[int] | None], str]] = {}


def _file_condition(path: str, before: list[int] | None, now: int, declared: bool = False) -> list[Any]:
    try:
        st = os.stat(path)
    except OSError:
        if declared or before is None:
            return [path, None, 0, 0, 0, "", now]  # absent, as the body found it: it must stay absent
        raise NotRecordable(f"{path}, which it read, is gone since") from None
    sig = _signature(st)
    if before is None and not declared:
        raise NotRecordable(f"{path}, which it tried to read, appeared while it ran")
    if before is not None and sig != before:
        raise NotRecordable(f"{path}, which it read, changed while it ran")
    if not stat.S_ISREG(st.st_mode):
        # A pipe or device in a declared folder (a tool's control pipe): it holds no content to digest, and its
        # times change with every use, so what it is is recorded, and a hit checks that it still is.
        return [path, *sig, "", now, file_kind(st.st_mode)]
    try:
        digest = file_digest(path) if st.st_size <= FILE_DIGEST_LIMIT else ""
    except OSError as exc:
        raise NotRecordable(f"{path}, which it opened, cannot be read ({exc.strerror or exc})") from None
    if digest and os.stat(path).st_mtime_ns != st.st_mtime_ns:
        raise NotRecordable(f"{path}, which it read, changed while it ran")
    return [path, *sig, digest, now]


def _dir_condition(path: str, before: list[int] | None, now: int, declared: bool = False,
                   sizes: bool = False) -> list[Any]:
    """Return a folder's condition: its names (with each entry's size and modification time when ``sizes``), or
    its absence (a body that found it missing is served while it still is, and recomputed once it exists)."""
    try:
        st = os.stat(path)
        names, digest = _listing(path, sizes)
    except OSError:
        if declared or before is None:
            return [path, None, 0, 0, 0, "", now, []]
        raise NotRecordable(f"the folder {path}, which it listed, is gone since") from None
    if before is None and not declared:
        raise NotRecordable(f"the folder {path}, missing when it was listed, appeared while it ran")
    sig = _signature(st)
    if before is not None and sig != before:
        raise NotRecordable(f"the folder {path}, which it listed, changed while it ran")
    return [path, *sig, digest, now, names[:_NAMES_KEPT], *([True] if sizes else [])]


# -- checking -------------------------------------------------------------------------------------------------

# A file's signature once its content was found unchanged, long enough after its last write that
# a later write must change the signature: then the signature alone vouches for the content.
_trusted: dict[str, tuple[list[int], str]] = {}
_RACY_NS = int(RACY_SECONDS * 1e9)


def _settled(sig: list[int], checked_at: int) -> bool:
    return checked_at - max(sig[1], sig[2]) > _RACY_NS


def _check_file(entry: list[Any]) -> str | None:
    path, size, mtime, ctime, ino, digest, recorded = entry[:7]
    kind = entry[7] if len(entry) > 7 else None  # recorded as a pipe or device, not a regular file
    if kind == _DATABASE and len(entry) > 8 and size is not None:
        return _check_database(entry)
    try:
        st = os.stat(path)
    except OSError:
        return None if size is None else f"data file {path} is gone"
    if size is None:
        return f"data file {path} exists now"
    if kind is not None:
        now_kind = file_kind(st.st_mode) if not stat.S_ISREG(st.st_mode) else "regular file"
        return None if now_kind == kind else f"data file {path} was a {kind} and is a {now_kind} now"
    if not stat.S_ISREG(st.st_mode):
        return f"data file {path} is no longer a regular file"
    sig = _signature(st)
    old = [size, mtime, ctime, ino]
    # A file in memory (/dev/shm) written through a shared mapping keeps its stat: only its content tells.
    memory = in_memory(st)
    if sig == old and _settled(old, recorded) and not memory:
        return None
    if not digest:  # a large file, trusted by its signature
        return None if sig == old else _changed(path, old, sig, "")
    if sig[0] != size:
        return _changed(path, old, sig, "")
    trusted = None if memory else _trusted.get(path)
    if trusted is not None and trusted[0] == sig:
        now_digest = trusted[1]
    else:
        try:
            now_digest = file_digest(path)
        except OSError:
            return f"data file {path} cannot be read"
        if _settled(sig, time.time_ns()) and not memory:
            _trusted[path] = (sig, now_digest)
    return None if now_digest == digest else _changed(path, old, sig, "content")


def _changed(path: str, old: list[int], new: list[int], what: str) -> str:
    details = []
    if old[0] != new[0]:
        details.append(f"{old[0]} -> {new[0]} bytes")
    elif what:
        details.append("same size, other content")
    if old[3] != new[3]:
        details.append("replaced by another file")
    elif old[1] != new[1]:
        details.append("modified")
    return f"data file {path} changed ({', '.join(details) or 'modified'})"


def _check_dir(entry: list[Any]) -> str | None:
    path, size, mtime, ctime, ino, digest, recorded, kept = entry[:8]
    # Recorded with its entries' sizes and times, which change without changing the folder's own signature: the
    # folder is listed again on every check.
    sizes = len(entry) > 8 and entry[8] is True
    try:
        st = os.stat(path)
        if size is not None and not sizes and [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino] == \
                [size, mtime, ctime, ino] and _settled([size, mtime, ctime, ino], recorded):
            return None
        names, now_digest = _listing(path, sizes)
    except OSError:
        return None if size is None else f"folder {path} is gone"
    if size is None:
        return f"folder {path} exists now"
    if now_digest == digest:
        return None
    other = _OTHER_SIZE if sizes else _OTHER_KIND
    return f"folder {path} lists other files now{_difference(kept, names) or other}"


_OTHER_KIND = " (the same names, one of them of another kind now: a file, a folder or a link)"
_OTHER_SIZE = (" (the same names, one of them of another kind, size or modification time now: the run read their "
               "sizes or times)")


def _difference(old: list[str], new: list[str]) -> str:
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new)) if len(old) < _NAMES_KEPT else []
    parts = [f"new: {', '.join(added[:5])}"] if added else []
    if removed:
        parts.append(f"gone: {', '.join(removed[:5])}")
    return f" ({'; '.join(parts)})" if parts else ""


def _matches(pattern: str) -> list[str]:
    """Return what a recorded pattern matches, hidden names included (the body's include_hidden= is not in
    the audit event: matching more can only cost a miss)."""
    if sys.version_info >= (3, 11):
        return sorted(glob.glob(pattern, recursive=True, include_hidden=True))
    return sorted(glob.glob(pattern, recursive=True))


def _literal_after_magic(pattern: str) -> bool:
    """Return True when a part of ``pattern`` without wildcards follows one with them ("data/*/x.csv")."""
    seen = False
    for part in pattern.replace(os.sep, "/").split("/"):
        if glob.has_magic(part):
            seen = True
        elif seen and part:
            return True
    return False


def _check_glob(entry: list[Any]) -> str | None:
    pattern, digest, kept = entry
    matches = _matches(pattern)
    if _names_digest(matches) == digest:
        return None
    return f"the files matching {pattern} are others now{_difference(kept, matches)}"


def _literal_part(pattern: str) -> str:
    """Return the folder a glob pattern starts in: its parts before the first with a wildcard."""
    parts = pattern.split(os.sep)
    literal = list(itertools.takewhile(lambda part: not glob.has_magic(part), parts[:-1]))
    return os.sep.join(literal) or (os.sep if pattern.startswith(os.sep) else ".")


def folder_now() -> str:
    try:
        return os.getcwd()
    except OSError:
        return "(a folder removed since)"


def text_encoding() -> str:
    """Return the encoding ``open`` reads text with when given none (UTF-8 mode, else the locale's)."""
    return locale.getpreferredencoding(False)


def spawn_condition(value: Any) -> tuple[Any, str]:
    """Return the environment digest and program of an "environment" condition (a damaged one matches nothing)."""
    if isinstance(value, list) and len(value) == 2 and all(isinstance(part, str) for part in value):
        return value[0], value[1]
    return None, "a program"


def _check_written(entry: list[Any]) -> str | None:
    kind = entry[7] if len(entry) > 7 else None
    if kind in (_LINK, "folder"):
        return _check_made(entry[0], kind, entry[8] if kind == _LINK and len(entry) > 8 else None)
    why = _check_file(entry)
    if why is None:
        return None
    return f"{why.replace('data file ', 'file ', 1)}, which the run wrote: a hit would not write it again"


def _check_made(path: str, kind: str, target: str | None) -> str | None:
    """Return why a link or folder the run made is not as it left it (gone, of another kind, a link that names
    another target), or None: what is in a folder, or what a link names, is checked where the run wrote or read it."""
    try:
        mode = os.lstat(path).st_mode
        if kind == _LINK:
            if not stat.S_ISLNK(mode):
                return f"{path}, a link the run made, is no longer a link: a hit would not make it again"
            now = os.readlink(path)
            if now != target:
                return (f"link {path} names {now} now, {target} when the run made it: a hit would not make it "
                        "again")
            return None
        if not stat.S_ISDIR(os.stat(path).st_mode):
            return f"{path}, a folder the run made, is no longer a folder: a hit would not make it again"
    except OSError:
        what = "link" if kind == _LINK else "folder"
        return f"{what} {path} is gone, which the run made: a hit would not make it again"
    return None


def depends_on_folder(conditions: Conditions) -> bool:
    """Return True when a run's preconditions hold only in the folder it ran in: it read (or wrote) a path
    relative to it, or has the folder as a condition of its own (``"cwd"``)."""
    if not conditions:
        return False  # most runs: no precondition at all
    if "cwd" in conditions:
        return True
    return any(not os.path.isabs(entry[0]) for kind in ("files", "dirs", "globs", "written")
               for entry in conditions.get(kind, ()))


def failures(conditions: Conditions, first_only: bool = True) -> list[str]:
    """Return what no longer holds, in plain words (only the first unless ``first_only`` is False)."""
    found: list[str] = []
    encoding = conditions.get("encoding")
    if encoding is not None and text_encoding() != encoding:
        found.append(f"text without encoding= is read as {text_encoding()} now, as {encoding} when it ran (the "
                     "locale or Python's UTF-8 mode differs); pass encoding= to open() to read it the same everywhere")
        if first_only:
            return found
    folder = conditions.get("cwd")
    if folder is not None and folder_now() != folder:
        found.append(f"the current folder is {folder_now()} now, {folder} when it ran (it started a process "
                     "there, or read files by absolute paths inside it, which may have been made from it)")
        if first_only:
            return found
    started = conditions.get("environment")
    if started is not None and environment_digest(environment()) != spawn_condition(started)[0]:
        found.append(f"the environment differs from the run's: it started a process ({spawn_condition(started)[1]}), "
                     "which may read any variable; give it env= with the variables it needs to check only those")
        if first_only:
            return found
    home = conditions.get("home")
    if home is not None and os.path.expanduser("~") != home:
        found.append(f"the home folder (~) is {os.path.expanduser('~')} now; the run read files by absolute paths "
                     f"inside {home}, its home then, which may have been made from ~")
        if first_only:
            return found
    for kind, check in (("files", _check_file), ("dirs", _check_dir), ("globs", _check_glob),
                        ("written", _check_written), ("links", _check_link)):
        for entry in conditions.get(kind, ()):
            why = check(entry)
            if why:
                found.append(why)
                if first_only:
                    return found
    return found


# -- random generators drawn from ---------------------------------------------------------------------------

def drawn(recorder: Recorder) -> tuple[dict[str, Any], dict[str, str]]:
    """Return the generators a run left in another state, and those whose state before it matters.

    The first maps each generator to its (encoded) state after the run, to set on a hit; the second
    to the digest of its state before the run, which selects the entry. A generator the body seeded
    before drawing from it leaves its earlier state out of it; one the body first loaded is keyed as not
    loaded (a kernel that has it loaded, perhaps seeded, misses).
    """
    before = recorder.states_before
    after = changed_since(before, recorder.seeded_names)
    if not after and not recorder.drew_first:
        return {}, {}  # the common run: it drew from no global generator
    used = sorted({*after, *recorder.drew_first})
    if recorder.drawn_meanwhile:
        raise NotRecordable(
            f"another task drew from {describe_generators(used)} while this call awaited (a task it started, or any "
            "other), so which draws were this call's cannot be told; pass the body a generator seeded per call "
            "instead (random.Random(seed), np.random.default_rng(seed))")
    if recorder.overlapped:
        raise NotRecordable(
            f"it uses {describe_generators(used)} while a memoized call ran in another thread, which may have drawn "
            "from it too, so which draws were this call's cannot be told; pass the body a generator seeded per call "
            "instead (random.Random(seed), np.random.default_rng(seed))")
    # Drawn from, then put back (set_state, or seeded back to where it was): still read.
    after.update(snapshot(recorder.drew_first - after.keys()))
    states = {name: encode(state) for name, state in after.items()}
    keyed = {name: state_digest(name, before[name]) if name in before else NOT_LOADED for name in after
             if name not in recorder.reseeded}
    recorder.tied = set(keyed)
    return states, keyed
