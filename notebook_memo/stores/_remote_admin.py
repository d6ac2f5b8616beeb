"""Upkeep of a remote tier from the command line: what it holds, clearing and pruning it.

These list the whole remote (manifests, then blobs), which no call of a memoized function does.
Only objects named as this library names them are read or deleted; a blob is deleted once no
manifest names it and it is older than a grace period (a writer publishes its blob first).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .._config import resolve_lease, resolve_secret, warn_once
from .._errors import MemoWarning
from .._serialize import CorruptRecord, Header, Signer, decode_header, is_marker, plausible, signer_for
from ._objects import Incomplete, Planted, Refused, Unnamable
from .remote import _MANIFEST_MOST, BLOB_NAME, RemoteTier, in_parallel

__all__ = ()

_MANIFEST = re.compile(r"m/[0-9a-f]{2}/[0-9a-f]{32}(~[0-9a-f]{16})?")
_LEASE = re.compile(r"l/[0-9a-f]{32}(~[0-9a-f]{16})?")
# A file our writers stage beside an object (DirectoryObjects._staged, .replace): the object's name, a uuid4.
_STAGED = re.compile(rf"(?:{_MANIFEST.pattern}|{BLOB_NAME.pattern}|{_LEASE.pattern})\.[0-9a-f]{{32}}\.(?:tmp|old)")
BLOB_GRACE = 3600.0  # an unnamed blob this young may be a publish under way
LEASES_LAPSED = 10  # a lease object unchanged for this many lease times has no living holder (renewed every third)


@dataclass
class RemoteEntry:
    """One manifest as listed: its name, size and time, and its header when it parses (None: damaged)."""

    name: str
    size: int
    modified: float
    header: Header | None

    @property
    def meta(self) -> dict[str, Any]:
        if self.header is None:
            return {}
        try:
            return self.header.meta()
        except ValueError:
            return {}


def _left_out(tier: RemoteTier, refused: Iterable[Refused]) -> None:
    """Say once per cause what upkeep left alone: a folder that is a link, an object it may not open.

    Not storage trouble (the rest of the remote was handled): the command still succeeds."""
    for why in dict.fromkeys(str(exc) for exc in refused):
        warn_once(f"remote-refused:{tier.url}:{why}", f"{tier.url}: {why}; it is left as it is. Put a real folder "
                  "in place of a link there, or let this user read it, for upkeep to cover it", MemoWarning)


def _listed(tier: RemoteTier, prefix: str) -> tuple[list[tuple[str, int, float]], bool]:
    """Return the objects under ``prefix``, and whether that is all of them (a folder refused: a link, or
    unreadable, is said once and left out)."""
    found, whole, unnamable, refused = _listing(tier, prefix)
    if unnamable:
        # Never ours (no writer of ours makes such a name), never deleted: said once, and the listing is whole.
        names = list(dict.fromkeys(unnamable))
        shown = ", ".join(repr(name) for name in names[:5]) + (" ..." if len(names) > 5 else "")
        warn_once(f"remote-unnamable:{tier.url}:{prefix}", f"{tier.url}: skipped {len(names)} objects with names "
                  f"it cannot use: {shown}; they are left as they are", MemoWarning)
    _left_out(tier, refused)
    return found, whole


def _listing(tier: RemoteTier, prefix: str) -> tuple[list[tuple[str, int, float]], bool, list[str], list[Refused]]:
    """Return the objects under ``prefix``, whether that is all of them, the names skipped as unusable, and why
    any part was refused."""
    found: list[tuple[str, int, float]] = []
    try:
        for item in tier.objects.list(prefix):
            found.append(item)
    except Unnamable as exc:
        return found, True, exc.names, []
    except Incomplete as exc:
        if prefix != "m/":
            return found, False, [], [exc]
        # A manifest in the page beside such a name may be missing: each folder m/<xx>/ is listed alone, where such
        # a name misses nothing of ours unless it lies below a manifest's own name.
        parts = in_parallel(lambda folder: _listing(tier, folder), [f"m/{i:02x}/" for i in range(256)])
        return ([item for part in parts for item in part[0]], all(part[1] for part in parts),
                exc.names + [name for part in parts for name in part[2]], [why for part in parts for why in part[3]])
    except Refused as exc:
        return found, False, [], [exc]
    return found, True, [], []


def _manifests(tier: RemoteTier) -> tuple[list[RemoteEntry], bool]:
    """Return every manifest of the remote, each read once (in parallel), and whether none was left out.

    One larger than a manifest may be, or not a regular file, is listed as damaged, unread; one that
    cannot be reached (its folder became a link since the listing, or we may not open it) is left out,
    with a warning.
    """
    listed, whole = _listed(tier, "m/")
    listed = [(name, size, modified) for name, size, modified in listed if _MANIFEST.fullmatch(name)]
    secret = resolve_secret()
    signer = signer_for(secret) if secret is not None else None

    def read(item: tuple[str, int, float]) -> RemoteEntry | Refused:
        name, size, modified = item
        try:
            data = tier.objects.get(name, _MANIFEST_MOST)
        except Planted:
            data = None  # no writer of ours made it: damaged, never read whole
        except Refused as exc:
            return exc
        header = None
        if data is not None:
            try:
                header = decode_header(data)[0]
            except CorruptRecord:
                header = None
            # Only a manifest's own writer vouches for its numbers (as for a local record: ``listed_record``): one
            # this process cannot verify, with numbers or metadata no writer of ours makes, was planted and is
            # unreadable, as damage is. One that verifies is ours, whatever its TTL (an earlier version kept
            # ttl=1e12 as given).
            if header is not None and not _verifies(header, signer) and not plausible(header):
                header = None
        return RemoteEntry(name, size, modified, header)

    found = in_parallel(read, listed)
    refused = [item for item in found if isinstance(item, Refused)]
    _left_out(tier, refused)
    return [item for item in found if isinstance(item, RemoteEntry)], whole and not refused


def _verifies(header: Header, signer: Signer | None) -> bool:
    """Return whether ``header`` is one this process vouches for: signed with ``signer``, or unsigned without one."""
    return header.signed == (signer is not None) and header.intact(signer)


def entries(tier: RemoteTier) -> list[RemoteEntry]:
    """Return every manifest of the remote that could be read or is damaged (``_manifests``)."""
    return _manifests(tier)[0]


def blobs(tier: RemoteTier) -> dict[str, tuple[int, float]]:
    """Return the blobs of the remote: name -> (size, modified)."""
    return {name: (size, modified) for name, size, modified in _listed(tier, "b/")[0] if BLOB_NAME.fullmatch(name)}


def _delete_each(tier: RemoteTier, names: list[str]) -> list[str]:
    """Delete the objects ``names`` (in parallel); return those that went. One that cannot be reached is left."""

    def delete(name: str) -> Refused | str:
        try:
            tier.objects.delete(name)
        except Refused as exc:
            return exc
        return name

    done = in_parallel(delete, names)
    _left_out(tier, [exc for exc in done if isinstance(exc, Refused)])
    return [name for name in done if isinstance(name, str)]


def blob_of(entry: RemoteEntry) -> str | None:
    header = entry.header
    return header.filename if header is not None and header.filename and BLOB_NAME.fullmatch(header.filename) else None


def remove(tier: RemoteTier, chosen: Iterable[RemoteEntry], grace: float | None = None) -> int:
    """Delete the manifests of ``chosen``, then the blobs no manifest names any more, and what killed writers
    and dead lease holders left; return how many results went (a marker beside a result is not one, as locally)."""
    chosen = list(chosen)
    markers = {entry.name for entry in chosen if is_marker(entry.meta)}
    deleted = _delete_each(tier, [entry.name for entry in chosen])
    collect_blobs(tier, grace)
    collect_leftovers(tier, grace)
    return sum(1 for name in deleted if name not in markers)


def collect_leftovers(tier: RemoteTier, grace: float | None = None) -> int:
    """Delete staged files older than ``grace`` seconds and leases unchanged for ``LEASES_LAPSED`` lease
    times; return how many. Only names our writers make are deleted: anything else there is left alone."""
    grace = BLOB_GRACE if grace is None else grace
    now = time.time()
    doomed: list[str] = []
    for prefix in ("m/", "b/", "l/"):
        found: list[tuple[str, int, float]] = []
        try:
            for item in tier.objects.staged(prefix):
                found.append(item)
        except Refused as exc:
            _left_out(tier, [exc])  # what was found before goes; what could not be listed stays
        doomed += [name for name, _, modified in found if _STAGED.fullmatch(name) and now - modified > grace]
    lapsed = LEASES_LAPSED * resolve_lease()
    doomed += [name for name, _, modified in _listed(tier, "l/")[0]
               if _LEASE.fullmatch(name) and now - modified > lapsed]
    return len(_delete_each(tier, doomed))


def collect_blobs(tier: RemoteTier, grace: float | None = None) -> int:
    """Delete blobs that no manifest names and that are older than ``grace`` seconds; return how many."""
    grace = BLOB_GRACE if grace is None else grace
    found, whole = _manifests(tier)
    if not whole:
        # A manifest left out may name any blob: deleting what the rest do not name could take its payload.
        warn_once(f"remote-blobs-kept:{tier.url}", f"{tier.url}: unused blobs were not deleted, since not every "
                  "manifest could be read; run this again once they can", MemoWarning)
        return 0
    named = {blob_of(entry) for entry in found}
    now = time.time()
    unused = [name for name, (_, modified) in blobs(tier).items() if name not in named and now - modified > grace]
    return len(_delete_each(tier, unused))


def summary(tier: RemoteTier) -> list[dict[str, Any]]:
    """Return per function of one notebook: name, notebook, entries, code versions, bytes (manifests and the blobs
    they name), newest, compute seconds.

    Markers (``is_marker``) are not entries and add no compute time, as locally; their bytes are the function's.
    A blob that identical results share is stored once, so it is counted once: with the entry that stored it first.
    """
    sizes = blobs(tier)
    counted: set[str] = set()
    rows: dict[tuple[str, Any], dict[str, Any]] = {}
    for entry in sorted(entries(tier), key=lambda e: (e.header.created if e.header else e.modified, e.name)):
        meta = entry.meta
        name = str(meta.get("name", "(damaged)")) if entry.header is not None else "(damaged)"
        notebook = meta.get("notebook")
        notebook = notebook if isinstance(notebook, str) and notebook else None  # unverified: a path or nothing
        row = rows.setdefault((name, notebook), {"name": name, "notebook": notebook, "entries": 0, "codes": set(),
                                                 "bytes": 0, "newest": 0.0, "compute": 0.0})
        row["bytes"] += entry.size + _blob_size(blob_of(entry), sizes, counted)
        row["newest"] = max(row["newest"], entry.header.created if entry.header else entry.modified)
        if is_marker(meta):
            continue
        row["entries"] += 1
        row["codes"].add(meta.get("code"))
        row["compute"] += float(meta.get("duration", 0.0) or 0.0)
    # A function whose markers alone are left holds no result to list (as locally).
    return sorted((row for row in rows.values() if row["entries"]),
                  key=lambda row: (row["name"], row["notebook"] or ""))


def _blob_size(blob: str | None, sizes: dict[str, tuple[int, float]], counted: set[str]) -> int:
    """Return the size of ``blob`` the first time it is asked for (noted in ``counted``), 0 after or for none."""
    if blob is None or blob in counted:
        return 0
    counted.add(blob)
    return sizes.get(blob, (0, 0.0))[0]


def superseded(items: Iterable[RemoteEntry], signer: Signer | None) -> set[str]:
    """Return the manifests of each function's older code versions (a function of one notebook, as locally).

    Only manifests that verify with ``signer`` take part: another's (another secret's, or unsigned beside a
    secret) may claim any function, code and time, and is left as it is, as the local ``--keep-latest`` does.
    """
    ours: list[tuple[str, tuple[Any, Any], Any, float]] = []  # name, (fid, notebook), code, created
    for e in items:
        header = e.header
        if header is not None and _verifies(header, signer):
            meta = e.meta
            ours.append((e.name, (meta.get("fid"), meta.get("notebook")), meta.get("code"), header.created))
    newest: dict[tuple[Any, Any], tuple[float, Any]] = {}
    for _, who, code, created in ours:
        if who not in newest or created > newest[who][0]:
            newest[who] = (created, code)
    return {name for name, who, code, created in ours if code != newest[who][1] and created <= newest[who][0]}


def prune(tier: RemoteTier, older_than: float | None, keep_latest: bool, max_size: int | None,
          signer: Signer | None = None) -> int:
    """Delete expired and damaged manifests, and those the options name; then unused blobs. Return how many.

    ``signer``: the configured secret's, which ``keep_latest`` verifies manifests with."""
    now = time.time()
    items = entries(tier)
    doomed = {e.name for e in items if e.header is None or e.header.expired(now)}
    if older_than is not None:
        doomed |= {e.name for e in items if e.header is not None and e.header.created < now - older_than}
    if keep_latest:
        doomed |= superseded(items, signer)
    if max_size is not None:
        sizes = blobs(tier)
        alive = sorted((e for e in items if e.name not in doomed), key=lambda e: e.modified, reverse=True)
        total = 0
        counted: set[str] = set()
        for e in alive:  # newest first: what does not fit goes (a blob results share, once: it goes with its last)
            total += e.size + _blob_size(blob_of(e), sizes, counted)
            if total > max_size:
                doomed.add(e.name)
    return remove(tier, [e for e in items if e.name in doomed])
