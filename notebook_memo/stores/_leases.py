"""Leases and forks: which process computes a key, how long others wait, and safe ``os.fork()``.

A lease is an index row ``lock:<key>`` holding ``<pid>@<host>/<token>#<generation>``. It has
no expiry time: a wall-clock timestamp written by one machine means nothing to another whose
clock differs. The holder proves it is alive by bumping the generation every third of the lease
time; a waiter takes over when the value it sees has not changed for a whole lease time on the
waiter's own monotonic clock (or at once when the holder is a process of this host that is gone,
or has exited and waits to be reaped).
Whatever a row holds, planted or ours, blocks a waiter for at most one lease time.

Forks: SQLite and its connections must not cross ``fork()`` while another thread is inside them
(the child would wait forever on a mutex nobody will release). Every store operation passes a
gate; a fork waits until no thread is inside, and the child starts with fresh connections.
"""

from __future__ import annotations

import contextvars
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from diskcache.core import MODE_RAW

from .._config import resolve_lease

__all__ = ()

LOCK_PREFIX = "lock:"
# The name of the table of rows renew() writes: the one name besides ours a statement of ours selects from.
RENEWED = "new"
_HOST = socket.gethostname()


def new_lease() -> str:
    """Return the owner prefix of a lease this process is about to take."""
    return f"{os.getpid()}@{_HOST}/{uuid.uuid4().hex}#"


@dataclass
class Held:
    """A lease this process holds."""

    prefix: str
    generation: int = 0
    lapsed: bool = False  # another process took it over while we held it

    @property
    def value(self) -> str:
        """The row's value as this process last wrote it."""
        return f"{self.prefix}{self.generation}"

    @property
    def following(self) -> str:
        """The row's value after the next renewal."""
        return f"{self.prefix}{self.generation + 1}"


_PID_DIGITS = 10  # a pid fits in 32 bits: more digits than this name no process


def holder_is_gone(value: Any) -> bool:
    """Return True when ``value`` names a process of this host that no longer exists.

    A value whose pid is not as ``new_lease`` writes it (ASCII digits, a pid the system can have) names no
    process that can be known gone: like any other row, it blocks a waiter for one lease time at most.
    """
    if type(value) is not str:
        return False
    pid_text, at, rest = value.partition("@")
    host = rest.partition("/")[0]
    # str.isdigit alone would take '²' (which int() refuses) and other scripts' digits (which it reads).
    if not at or host != _HOST or not (pid_text.isascii() and pid_text.isdigit()) or len(pid_text) > _PID_DIGITS:
        return False
    pid = int(pid_text)
    if pid == os.getpid() or not 0 < pid < 2**31:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # alive, but not ours to signal
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """Return True when ``pid`` has exited but is not yet reaped (Linux's /proc says so; elsewhere, False).

    Such a process (a worker killed inside a body while its parent has not waited for it) still takes
    signals, but runs no more: it will never renew its lease. It is left for its parent to reap.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read()
    except OSError:  # no /proc here, or reaped meanwhile (its pid may be another's now): not known gone
        return False
    # The state follows the command name in parentheses, which may itself hold ') '.
    fields = text.rpartition(b")")[2].split()
    return bool(fields) and fields[0] in (b"Z", b"X")


class Watch:
    """What one waiter has seen of one lease row, timed on this process's monotonic clock."""

    def __init__(self, lease: float | None = None) -> None:
        self.lease = resolve_lease() if lease is None else lease
        self.seen: Any = None
        self.since = time.monotonic()
        self.started = False

    def lapsed(self, value: Any) -> bool:
        """Return True when the lease row holding ``value`` may be taken over now."""
        now = time.monotonic()
        seen = value if type(value) in (str, int, float) else type(value).__qualname__
        if not self.started or seen != self.seen:
            self.started, self.seen, self.since = True, seen, now
        return now - self.since >= self.lease or holder_is_gone(value)


# -- the lease rows -------------------------------------------------------------------------------
# Lease rows are plain diskcache raw-text rows, written with SQL of our own: a batch takes
# hundreds of them in one statement each way, where diskcache's get/set would take two
# statements per row. Compare-and-set on the exact value keeps every step ours only.

_T = TypeVar("_T")


def slices(items: list[_T], size: int = 500) -> Iterator[list[_T]]:
    """Yield ``items`` in runs short enough for one statement's parameters."""
    for i in range(0, len(items), size):
        yield items[i:i + size]


def marks(n: int) -> str:
    """Return ``n`` SQL parameter placeholders."""
    return ",".join("?" * n)


class immediate:  # lower case: used as a function, ``with immediate(con, check) as commit:``
    """Run statements on ``con`` in one write transaction, once ``check`` passed inside it; ``commit()`` may end
    it early.

    A class rather than a generator: an interrupt (Ctrl-C) that lands just after BEGIN returned is met in
    ``__enter__``, which rolls back, and once ``__enter__`` returned the ``with`` statement runs ``__exit__``
    whatever happens. A generator's ``__enter__`` can be interrupted after the generator yielded, leaving it
    suspended in the transaction: the index's write lock, held against every other kernel, until the process
    ends.
    """

    __slots__ = ("check", "con")

    def __init__(self, con: sqlite3.Connection, check: Callable[[sqlite3.Connection], None] = lambda con: None
                 ) -> None:
        self.con = con
        self.check = check

    def __enter__(self) -> Callable[[], None]:
        con = self.con
        ours = not con.in_transaction  # else BEGIN fails, and the transaction open is someone else's
        try:
            con.execute("BEGIN IMMEDIATE")
            self.check(con)
        except BaseException:
            if ours and con.in_transaction:
                con.execute("ROLLBACK")
            raise
        return self.commit

    def commit(self) -> None:
        if self.con.in_transaction:
            self.con.execute("COMMIT")

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        if kind is None:
            self.commit()
        elif self.con.in_transaction:  # not when committed early, or ended by SQLite on an error
            self.con.execute("ROLLBACK")


class Leases:
    """The leases one process holds in one cache directory, and the SQL that takes, renews and gives them back."""

    def __init__(self, check: Callable[[sqlite3.Connection], None] = lambda con: None) -> None:
        """``check``: run on the connection before each write (it raises when the index's schema is not ours)."""
        self._check = check
        self.held: dict[str, Held] = {}  # lease row key -> lease
        self._lock = threading.Lock()  # renewal (a background thread) against take and give back

    def take(self, con: sqlite3.Connection, keys: list[str], watches: list[Watch | None]) -> list[bool]:
        """Take the leases on ``keys`` that are free or lapsed, in one transaction; say which were taken."""
        rows = [LOCK_PREFIX + k for k in keys]
        now = time.time()
        taken: list[bool] = []
        with self._lock, immediate(con, self._check) as commit:
            current: dict[str, Any] = {}
            for part in slices(rows):
                query = f"SELECT key, raw, mode, value, expire_time FROM Cache WHERE key IN ({marks(len(part))})"
                for row, raw, mode, value, expire in con.execute(query, part).fetchall():
                    if expire is not None and expire <= now:
                        current[row] = None  # expired: free, as diskcache would say
                    else:
                        current[row] = value if raw == 1 and mode == MODE_RAW else ("?", value)
            fresh = []
            for row, watch in zip(rows, watches):
                value = current.get(row)
                if value is not None and (watch is None or not watch.lapsed(value)):
                    taken.append(False)
                    continue
                fresh.append((row, Held(new_lease()), row in current))
                taken.append(True)
            con.executemany("DELETE FROM Cache WHERE key = ?", [(row,) for row, _, existed in fresh if existed])
            con.executemany("INSERT INTO Cache (key, raw, store_time, expire_time, access_time, access_count, "
                            "tag, size, mode, filename, value) VALUES (?, 1, ?, NULL, ?, 0, NULL, 0, ?, NULL, ?)",
                            [(row, now, now, MODE_RAW, lease.value) for row, lease, _ in fresh])
            commit()
            self.held.update((row, lease) for row, lease, _ in fresh)  # only once they are written
        return taken

    def give_back(self, con: sqlite3.Connection, keys: list[str]) -> list[str]:
        """Delete our rows of these leases in one transaction; return the keys whose lease had lapsed."""
        lapsed: list[str] = []
        with self._lock:
            mine = [(key, lease) for key in keys if (lease := self.held.pop(LOCK_PREFIX + key, None)) is not None]
            if not mine:
                return lapsed
            try:
                with immediate(con, self._check):
                    for key, lease in mine:
                        gone = con.execute("DELETE FROM Cache WHERE key = ? AND value = ?",
                                           (LOCK_PREFIX + key, lease.value)).rowcount
                        if lease.lapsed or not gone:
                            lapsed.append(key)
            except sqlite3.Error:
                return []  # storage trouble is reported elsewhere
        return lapsed

    def forget(self) -> None:
        """Forget every lease held, without giving any back: they are in an index no longer used (the cache moved,
        or its folder was removed), where they lapse once not renewed; nothing is renewed or given back where
        they were never taken, and none is reported as taken over."""
        with self._lock:
            self.held.clear()

    def renew(self, con: sqlite3.Connection) -> None:
        """Write a new generation into each lease row that is still ours; mark the others lapsed.

        Each statement commits on its own: a background thread must never hold the write lock
        while it waits for the GIL, or a body that keeps the GIL would block every other process.
        """
        with self._lock:
            if self.held:
                self._check(con)  # just before: these statements commit on their own
            for part in slices(list(self.held.items()), 300):
                values = [x for row, lease in part for x in (row, lease.value, lease.following)]
                n = RENEWED  # the common table's name, which the index's authorizer allows to be selected from
                con.execute(f"WITH {n}(k, old, nv) AS (VALUES {','.join(['(?,?,?)'] * len(part))}) "
                            f"UPDATE Cache SET value = (SELECT nv FROM {n} WHERE {n}.k = Cache.key) "
                            f"WHERE rowid IN (SELECT Cache.rowid FROM Cache JOIN {n} "
                            f"ON Cache.key = {n}.k AND Cache.value = {n}.old)", values)
                now = dict(con.execute(f"SELECT key, value FROM Cache WHERE key IN ({marks(len(part))})",
                                       [row for row, _ in part]).fetchall())
                for row, lease in part:
                    # One that lapsed and was taken over belongs to its new holder.
                    if now.get(row) == lease.following:
                        lease.generation += 1
                    else:
                        lease.lapsed = True


# -- recursion: a call that needs its own result ------------------------------------------------

_computing: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("notebook_memo_computing",
                                                                           default=frozenset())


def is_computing(key: str) -> bool:
    """Return True when this thread or task is inside the computation of ``key``."""
    return key in _computing.get()


class computing:  # lower case: used as a function, ``with computing(key):``
    """Mark ``keys`` (a call's, or the items of a batch's chunk) as being computed by this thread or task (and
    by tasks it starts), inside the block.

    A class rather than a generator: it is entered on every miss, and costs a third as much."""

    __slots__ = ("keys", "token")

    def __init__(self, *keys: str) -> None:
        self.keys = keys

    def __enter__(self) -> None:
        self.token = _computing.set(_computing.get().union(self.keys))

    def __exit__(self, *exc: object) -> None:
        _computing.reset(self.token)


# -- the fork gate ------------------------------------------------------------------------------


class ForkGate:
    """Store operations enter it (many at once); a fork waits until none is inside.

    Entering is on every hit, so it takes no lock: each thread counts its own depth in a list of
    its own, and checks for a fork only after counting itself in. A fork sets its flag first and
    then waits for every count to reach zero, so (under the GIL, which orders these steps) either
    the fork sees the thread inside, or the thread sees the fork and steps out to wait for it.
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._forking = False
        self._local = threading.local()
        self._depths: list[tuple[threading.Thread, list[int]]] = []

    def _depth(self) -> list[int]:
        """Return this thread's depth counter, registering it the first time."""
        depth = [0]
        with self._lock:
            self._depths = [entry for entry in self._depths if entry[0].is_alive()]
            self._depths.append((threading.current_thread(), depth))
        self._local.depth = depth
        return depth

    def __enter__(self) -> None:
        try:
            depth = self._local.depth
        except AttributeError:
            depth = self._depth()
        depth[0] += 1
        if self._forking and depth[0] == 1:
            with self._cond:  # a fork is waiting or under way: step out until it is done
                depth[0] -= 1
                self._cond.notify_all()
                while self._forking:
                    self._cond.wait()
                depth[0] += 1

    def __exit__(self, *exc: object) -> None:
        depth = self._local.depth
        depth[0] -= 1
        if self._forking and not depth[0]:
            with self._cond:
                self._cond.notify_all()

    def before_fork(self) -> None:
        depth = getattr(self._local, "depth", None)
        if depth is not None and depth[0]:
            return  # forking from inside a store operation: waiting would wait on ourselves
        with self._cond:
            self._forking = True
            while any(entry[1][0] for entry in self._depths):
                self._cond.wait(0.05)

    def after_fork_in_parent(self) -> None:
        with self._cond:
            self._forking = False
            self._cond.notify_all()

    def after_fork_in_child(self) -> None:
        self._reset()  # the other threads are gone; so are their places in the gate


gate = ForkGate()
_child_hooks: list[Callable[[], None]] = []


def at_fork_in_child(hook: Callable[[], None]) -> None:
    """Run ``hook`` in every child process, after the gate is reset."""
    _child_hooks.append(hook)


def _in_child() -> None:
    gate.after_fork_in_child()
    for hook in _child_hooks:
        hook()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=gate.before_fork, after_in_parent=gate.after_fork_in_parent,
                        after_in_child=_in_child)
