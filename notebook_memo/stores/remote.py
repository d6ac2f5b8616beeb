"""The shared second tier: entries on object storage or a shared directory, for a team or a cluster.

Layout under the remote's URL, every object written whole and never changed once committed:

- ``b/<xxh3-128 of the payload>``: a payload too large to sit in its manifest. Named by its
  content, so identical results are stored once.
- ``m/<2 hex>/<row>``: one manifest per key, the commit point: the record's header exactly as the
  local index keeps it (key, payload checksum, metadata; with a secret, signatures over header and
  payload), with a small payload inline. Written create-only (``If-None-Match: *`` on S3, a hard
  link on a file system), after its blob: a reader never sees half an entry, and the first writer wins.
- ``l/<row>``: a lease, while one process computes the row (a key under one secret, as its manifest:
  kernels with other secrets never wait on it). Created create-only and renewed by a conditional
  overwrite; a lease whose tag a waiter has seen unchanged for the lease time is taken over.
  Correctness never depends on it: entries are content-keyed and published create-only.

Nothing read here is unpickled before its manifest verifies against the key asked for (checksum, or
signature with a secret) and its payload against the manifest. A remote that fails (unreachable,
refusing, slow) is set aside for a while with one warning: the local tier goes on alone.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from .._config import (
    ENV_REMOTE,
    ENV_REMOTE_READ_ONLY,
    INLINE_LIMIT,
    env_flag,
    environ,
    own_thread,
    resolve_lease,
    settings,
    warn_once,
)
from .._errors import ConfigurationError, MemoWarning, StorageWarning
from .._serialize import CorruptRecord, Payload, Signer, decode_header, encode_header, received_payload
from ._base import Fetched, SecondTier
from ._objects import DirectoryObjects, ObjectStore, Planted, Refused, open_objects

__all__ = ()

BLOB_NAME = re.compile(r"b/[0-9a-f]{32}")
_SET_ASIDE = 30.0  # seconds a failing remote is left alone before it is tried again
_POLL_FIRST, _POLL_MOST = 0.05, 1.0  # waiting for another machine's result: capped back-off between looks
_PROBE = "p/conditional-writes"
_PARALLEL = 32  # requests in flight for a batch's lookups
_MANIFEST_MOST = 64 << 20  # a manifest larger than this is refused unread (small payloads and metadata)
_LEASE_MOST = 64 << 10  # a lease object larger than this is refused unread (ours are a line of JSON)

# A function's own choice (@memo(remote=...), or its sender's when it came to a worker), for the call running
# in this context: (a URL or "" for none, read-only or None for the configured answer).
chosen: contextvars.ContextVar[tuple[str, bool | None] | None] = contextvars.ContextVar("notebook_memo_remote",
                                                                                        default=None)
replacing: contextvars.ContextVar[bool] = contextvars.ContextVar("notebook_memo_remote_replace", default=False)


def replacing_if(refresh: bool) -> contextlib.AbstractContextManager[None]:
    """Inside the block, a publish overwrites the remote's manifest (a refresh); else the first writer's stays."""
    return _replacing() if refresh else _AS_IS


@contextlib.contextmanager
def _replacing() -> Iterator[None]:
    token = replacing.set(True)
    try:
        yield
    finally:
        replacing.reset(token)


_AS_IS = contextlib.nullcontext()  # reusable: nothing to enter (every miss that is no refresh)


def manifest_name(row: str) -> str:
    return f"m/{row[:2]}/{row}"


def lease_name(row: str) -> str:
    return f"l/{row}"


class RemoteTier:
    """One remote (a bucket prefix or a shared directory) as this process uses it."""

    def __init__(self, url: str, read_only: bool, create: bool = True) -> None:
        """``create``: make a shared folder that is missing (see ``open_objects``); a ValueError for one unusable."""
        self.url = url
        self.read_only = read_only
        self.objects: ObjectStore = open_objects(url, create)
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._conditional: bool | None = None  # does the server honour create-only writes? (checked once)
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._held: dict[str, str] = {}  # key -> the tag of our lease object
        self._seen: dict[str, tuple[str, float]] = {}  # key -> (another's lease tag, when we first saw it)
        self._next_look: dict[str, tuple[float, float]] = {}  # key -> (when to look again, back-off)
        self._renewer: threading.Thread | None = None
        # Rows whose manifest verified but whose payload was refused (damaged, or planted at its blob's name):
        # the next publish of one repairs it, else every teammate would recompute it for good.
        self._damaged: set[str] = set()

    # -- health --------------------------------------------------------------------------------
    def usable(self) -> bool:
        return time.monotonic() >= self._down_until

    def _not_written(self, exc: Refused) -> None:
        """Say once that an object could not be written here (a folder this user may not write): the remote
        stays in use for everything else."""
        warn_once(f"remote-unwritable:{self.url}", f"the remote cache {self.url} refused a write ({exc}); that "
                  "result is kept locally, and the remote stays in use for the rest", StorageWarning)

    def _trouble(self, exc: BaseException, doing: str) -> None:
        self._down_until = time.monotonic() + _SET_ASIDE
        warn_once(f"remote:{self.url}", f"the remote cache {self.url} could not be used ({doing}: "
                  f"{type(exc).__name__}: {str(exc)[:300]}); results are computed and kept locally, and the "
                  f"remote is tried again in {_SET_ASIDE:g} s", StorageWarning)

    # -- entries -------------------------------------------------------------------------------
    def fetch(self, row: str, signer: Signer | None, serve: bool = False) -> Fetched | None:
        """Return the verified entry stored for ``row``, or None (none, damaged, or the remote failing).

        ``serve``: its value is served from memory (copies of a large payload's buffers are made meanwhile)."""
        if not self.usable():
            return None
        waiting = self._next_look.get(row)
        if waiting is not None and time.monotonic() < waiting[0]:
            return None  # another machine computes it: look again after the back-off
        # Without a secret, a shared folder's objects are read only if no one else could have written them.
        private = signer is None
        verified = False
        try:
            data = self.objects.get(manifest_name(row), _MANIFEST_MOST, private)
            if data is None:
                return None
            header, inline = decode_header(data)
            header.verify(row, header.filename or None, signer)
            verified = True
            if header.inline:
                received = received_payload(header, lambda sized: inline, signer, False)
            else:
                if len(inline):
                    raise CorruptRecord("the manifest has bytes after its header")
                name = header.filename
                if not BLOB_NAME.fullmatch(name) or name != f"b/{header.checksum.hex()}":
                    raise CorruptRecord("the manifest names a payload that is not its own")
                received = received_payload(
                    header, lambda sized: self.objects.get(name, header.offsets()[-1], private, sized), signer, serve)
            if received is None:
                return None  # its blob was pruned since: a miss
            fetched = Fetched(header, *received)
        except (CorruptRecord, Refused) as exc:
            if verified:
                self._damaged.add(row)
            warn_once(f"remote-refused:{self.url}", f"an entry in the remote cache {self.url} was refused and not "
                      f"loaded ({exc}); it is computed here instead", StorageWarning)
            return None
        except MemoryError:  # this entry's size, not the remote's health: the remote stays in use
            warn_once(f"remote-memory:{self.url}", f"an entry in the remote cache {self.url} could not be loaded "
                      "(not enough memory); it is computed here instead", StorageWarning)
            return None
        except Exception as exc:
            self._trouble(exc, "reading")
            return None
        if private and not isinstance(self.objects, DirectoryObjects):
            warn_once(f"remote-unsigned:{self.url}", f"entries of the remote cache {self.url} are not signed: anyone "
                      "who can write there can make this kernel run code when it loads them. Set a secret shared "
                      "by the team (NOTEBOOK_MEMO_SECRET or configure(secret=...)).", MemoWarning)
        return fetched

    def fetch_many(self, rows: list[str], signer: Signer | None) -> dict[str, Fetched]:
        """Return the verified entries among ``rows``: one request per row, a few dozen at a time."""
        if not rows or not self.usable():
            return {}
        answers = in_parallel(lambda row: self.fetch(row, signer), rows)
        return {row: answer for row, answer in zip(rows, answers) if answer is not None}

    def publish_many(self, items: list[tuple[Any, ...]]) -> None:
        """Publish many entries (each the arguments of ``publish``), a few dozen requests at a time."""
        in_parallel(lambda item: self.publish(*item), items)

    def publish(self, row: str, payload: Payload, meta: dict[str, Any], created: float, expires: float | None,
                duration: float, signer: Signer | None, replace: bool | None = None) -> bool:
        """Store an entry (blob first, then its manifest, create-only); return whether the remote has one now.

        ``replace`` (default: inside ``replacing_if(True)``): overwrite a manifest already there (a refresh)."""
        if self.read_only or not self.usable():
            return False
        try:
            inline = payload.nbytes < INLINE_LIMIT
            checksum = payload.checksum()
            repair = row in self._damaged
            name = None
            if not inline:
                name = f"b/{checksum.hex()}"
                if repair:
                    # Whatever is at its name (damaged bytes, a link or a pipe someone put there) is replaced
                    # whole by the bytes it is named for: the name is their digest, so no entry can lose by it.
                    self.objects.put(name, payload.to_bytes())
                elif not self.objects.exists(name):
                    self.objects.create(name, payload.to_bytes())
            header = encode_header(row, name, payload, meta, created, expires, duration, inline, signer, checksum)
            where = manifest_name(row)
            if self.objects.create(where, header) is None:
                if not (repair or (replacing.get() if replace is None else replace)
                        or self._replaceable(row, where, signer)):
                    return True  # the first writer's entry stays
                self.objects.put(where, header)
            self._damaged.discard(row)
            return True
        except Refused as exc:
            self._not_written(exc)
            return False
        except Exception as exc:
            self._trouble(exc, "publishing")
            return False

    def _replaceable(self, row: str, where: str, signer: Signer | None) -> bool:
        """Return whether the manifest already at ``where`` may be overwritten: expired, or not a valid one."""
        try:
            data = self.objects.get(where, _MANIFEST_MOST)
        except Refused:
            return False  # not a file of ours: left alone
        if data is None:
            return True
        try:
            header, _ = decode_header(data)
            header.verify(row, header.filename or None, signer)
        except CorruptRecord:
            return True
        # Expired, or its payload gone (a prune): the entry can no longer be served.
        return header.expired() or (bool(header.filename) and not self.objects.exists(header.filename))

    def delete(self, row: str) -> bool:
        """Remove the manifest of ``row`` (its blob may serve other entries: ``prune`` removes unused ones)."""
        if self.read_only or not self.usable():
            return False
        try:
            where = manifest_name(row)
            existed = self.objects.exists(where)
            self.objects.delete(where)
            return existed
        except Refused as exc:
            self._not_written(exc)
            return False
        except Exception as exc:
            self._trouble(exc, "deleting")
            return False

    # -- leases: compute-once across machines ---------------------------------------------------
    def conditional_writes(self) -> bool:
        """Return whether the server refuses a create-only write over an existing object (checked once)."""
        if self._conditional is None:
            name = f"{_PROBE}-{uuid.uuid4().hex}"
            try:
                self.objects.create(name, b"1")
                honoured = self.objects.create(name, b"2") is None
                with contextlib.suppress(Exception):
                    self.objects.delete(name)
            except Refused as exc:
                # A folder this user may not write: computed here without coordination across machines.
                self._not_written(exc)
                self._conditional = False
                return False
            except Exception as exc:
                self._trouble(exc, "checking conditional writes")
                return False
            if not honoured:
                warn_once(f"remote-unconditional:{self.url}", f"the remote cache {self.url} does not honour "
                          "conditional writes (If-None-Match): results are still shared, but two machines may "
                          "compute the same key at the same time", StorageWarning)
            self._conditional = honoured
        return self._conditional

    def _lease_body(self) -> bytes:
        return json.dumps({"owner": self._owner, "renewed": time.time()}).encode()

    def try_lease(self, key: str) -> bool:
        """Take the lease on ``key`` if free, or lapsed by this process's clock; False when another holds it."""
        if self.read_only or not self.usable() or not self.conditional_writes():
            return True  # nothing to coordinate with: compute
        waiting = self._next_look.get(key)
        now = time.monotonic()
        if waiting is not None and now < waiting[0]:
            return False
        name = lease_name(key)
        try:
            created = self.objects.create(name, self._lease_body())
            if created is not None:
                if not created:  # a store that gave no tag: read it
                    found = self.objects.get_tagged(name, _LEASE_MOST)
                    if found is None:
                        return False
                    created = found[1]
                self._hold(key, created)
                return True
            try:
                found = self.objects.get_tagged(name, _LEASE_MOST)
            except Planted:
                # No lease of ours is that large, or a link or pipe: planted. It goes, unread; the caller looks
                # for the result, then tries again.
                try:
                    self.objects.delete(name)
                except OSError:
                    return True  # it stays (a folder): computed here without coordination, as with one below
                return False
            except Refused:
                # One we may not open (a colleague's umask): it stays. Computed here without coordination across
                # machines (as with a remote that cannot be used); not held, so never deleted by our release.
                return True
            if found is None:
                return False  # given back just now: the caller looks for the result, then tries again
            tag = found[1]
            seen = self._seen.get(key)
            if seen is None or seen[0] != tag:
                self._seen[key] = (tag, now)
            elif now - seen[1] >= resolve_lease():
                new_tag = self.objects.replace(name, self._lease_body(), tag)  # one waiter wins the take-over
                if new_tag:
                    self._hold(key, new_tag)
                    return True
            back_off = min((waiting[1] if waiting else _POLL_FIRST / 2) * 2, _POLL_MOST)
            self._next_look[key] = (now + back_off, back_off)
            return False
        except Refused as exc:
            self._not_written(exc)  # computed here without coordination, as above
            return True
        except Exception as exc:
            self._trouble(exc, "taking a lease")
            return True

    def _hold(self, key: str, tag: str) -> None:
        with self._lock:
            self._held[key] = tag
            self._seen.pop(key, None)
            self._next_look.pop(key, None)
            if self._renewer is None or not self._renewer.is_alive():
                self._renewer = threading.Thread(target=_renew_loop, args=(self,), daemon=True,
                                                 name="notebook_memo remote leases")
                self._renewer.start()

    def backing_off(self, key: str) -> bool:
        """Return True while another machine holds the lease on ``key`` and it is not yet time to look again."""
        waiting = self._next_look.get(key)
        return waiting is not None and time.monotonic() < waiting[0]

    def looked(self, key: str) -> None:
        """Forget the back-off of ``key`` (its result arrived, or it was computed here)."""
        self._next_look.pop(key, None)
        self._seen.pop(key, None)

    def renew(self) -> None:
        """Overwrite our lease objects, each only if still ours (a conditional write)."""
        with self._lock:
            held = list(self._held.items())
        for key, tag in held:
            try:
                new_tag = self.objects.replace(lease_name(key), self._lease_body(), tag)
            except Exception:
                continue  # the next round tries again; a lapse costs only duplicate work
            with self._lock:
                if key in self._held:
                    if new_tag:
                        self._held[key] = new_tag
                    else:
                        del self._held[key]  # taken over by another: no longer ours to renew or delete

    def release(self, keys: list[str]) -> None:
        """Remove our leases on ``keys`` (only those still ours), a few dozen requests at a time."""
        mine: list[tuple[str, str]] = []
        for key in keys:
            with self._lock:
                tag = self._held.pop(key, None)
            self.looked(key)
            if tag is not None:
                mine.append((key, tag))

        def give_back(item: tuple[str, str]) -> None:
            name = lease_name(item[0])
            with contextlib.suppress(Exception):
                found = self.objects.get_tagged(name, _LEASE_MOST)
                if found is not None and found[1] == item[1]:
                    self.objects.delete(name)

        in_parallel(give_back, mine)

    def try_leases(self, keys: list[str]) -> list[bool]:
        """``try_lease`` for each of ``keys``, a few dozen requests at a time."""
        return in_parallel(self.try_lease, keys)

    def holds(self) -> bool:
        return bool(self._held)

    # -- listing (the command line) -------------------------------------------------------------
    def manifests(self) -> Iterator[tuple[str, int, float]]:
        """Yield (row, size, modified) of every manifest: a full listing, never on a call's path."""
        for name, size, modified in self.objects.list("m/"):
            yield name.rsplit("/", 1)[-1], size, modified


def in_parallel(work: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    """Return ``work`` of each item, on a few dozen threads of ours when there are several."""
    if len(items) <= 1:
        return [work(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(_PARALLEL, len(items)), thread_name_prefix="notebook_memo remote",
                            initializer=_ours) as pool:
        return list(pool.map(work, items))


def _ours() -> None:
    own_thread.ours = True  # what this thread reads is the remote's, never a running body's input


def _renew_loop(tier: RemoteTier) -> None:
    _ours()
    while tier.holds():
        time.sleep(max(resolve_lease() / 3, 0.05))
        tier.renew()


_tiers: dict[tuple[str, bool], RemoteTier] = {}
_tiers_lock = threading.Lock()


def configured_remote() -> tuple[str | None, bool]:
    """Return the remote URL of this call (a function's choice, ``configure``, the environment) and read-only.

    Every local miss and write asks: without a remote, it reads one variable (no KeyError raised)."""
    own = chosen.get()
    if own is not None:
        url, read_only = own[0] or None, own[1]
    else:
        url = settings.remote if settings.remote is not None else environ(ENV_REMOTE)
        url, read_only = url or None, None
    if url is None:
        return None, False
    if read_only is None:
        read_only = settings.remote_read_only
        if read_only is None:
            read_only = env_flag(ENV_REMOTE_READ_ONLY)
    return url, read_only


def second_tier() -> SecondTier | None:
    """Return the second tier of this call (see ``configured_remote``), or None."""
    url, read_only = configured_remote()  # asked on every miss and write: most often no remote at all
    return None if url is None else remote_tier(url, read_only)


def remote_tier(url: str | None = None, read_only: bool | None = None) -> RemoteTier | None:
    """Return this process's tier for ``url`` (default: the configured remote), or None when there is none."""
    if url is None:
        url, configured_read_only = configured_remote()
        read_only = configured_read_only if read_only is None else read_only
        if url is None:
            return None
    read_only = bool(read_only)
    tier = _tiers.get((url, read_only))
    if tier is None:
        with _tiers_lock:
            tier = _tiers.get((url, read_only))
            if tier is None:
                try:
                    tier = RemoteTier(url, read_only)
                except ValueError as exc:
                    raise ConfigurationError(str(exc)) from None
                except Exception as exc:  # a folder that cannot be made, a client that cannot start
                    warn_once(f"remote:{url}", f"the remote cache {url} cannot be opened ({type(exc).__name__}: "
                              f"{exc}); results are computed and kept locally", StorageWarning)
                    return None
                _tiers[(url, read_only)] = tier
    return tier


def open_tiers() -> list[RemoteTier]:
    return list(_tiers.values())


def _after_fork_in_child() -> None:
    """A forked child holds none of its parent's leases, and no renewing thread runs in it."""
    global _tiers_lock
    _tiers_lock = threading.Lock()
    for tier in _tiers.values():
        tier._lock = threading.Lock()
        tier._held.clear()
        tier._seen.clear()
        tier._next_look.clear()
        tier._renewer = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
