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

from .._serialize import CorruptRecord, Header, decode_header, plausible
from ._objects import Planted
from .remote import _MANIFEST_MOST, BLOB_NAME, RemoteTier, in_parallel

__all__ = ()

_MANIFEST = re.compile(r"m/[0-9a-f]{2}/[0-9a-f]{32}(~[0-9a-f]{16})?")
BLOB_GRACE = 3600.0  # an unnamed blob this young may be a publish under way


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


def entries(tier: RemoteTier) -> list[RemoteEntry]:
    """Return every manifest of the remote, each read once (in parallel).

    One larger than a manifest may be, or not a regular file, is listed as damaged, unread.
    """
    listed = [(name, size, modified) for name, size, modified in tier.objects.list("m/") if _MANIFEST.fullmatch(name)]

    def read(item: tuple[str, int, float]) -> RemoteEntry:
        name, size, modified = item
        try:
            data = tier.objects.get(name, _MANIFEST_MOST)
        except Planted:
            data = None  # no writer of ours made it: damaged, never read whole
        header = None
        if data is not None:
            try:
                header = decode_header(data)[0]
            except CorruptRecord:
                header = None
            if header is not None and not plausible(header):
                header = None  # numbers or metadata no writer of ours makes (planted): unreadable, as damage is
        return RemoteEntry(name, size, modified, header)

    return in_parallel(read, listed)


def blobs(tier: RemoteTier) -> dict[str, tuple[int, float]]:
    """Return the blobs of the remote: name -> (size, modified)."""
    return {name: (size, modified) for name, size, modified in tier.objects.list("b/") if BLOB_NAME.fullmatch(name)}


def blob_of(entry: RemoteEntry) -> str | None:
    header = entry.header
    return header.filename if header is not None and header.filename and BLOB_NAME.fullmatch(header.filename) else None


def remove(tier: RemoteTier, chosen: Iterable[RemoteEntry], grace: float | None = None) -> int:
    """Delete the manifests of ``chosen``, then the blobs no manifest names any more; return manifests deleted."""
    doomed = list(chosen)
    in_parallel(lambda entry: tier.objects.delete(entry.name), doomed)
    collect_blobs(tier, grace)
    return len(doomed)


def collect_blobs(tier: RemoteTier, grace: float | None = None) -> int:
    """Delete blobs that no manifest names and that are older than ``grace`` seconds; return how many."""
    grace = BLOB_GRACE if grace is None else grace
    named = {blob_of(entry) for entry in entries(tier)}
    now = time.time()
    unused = [name for name, (_, modified) in blobs(tier).items() if name not in named and now - modified > grace]
    in_parallel(tier.objects.delete, unused)
    return len(unused)


def summary(tier: RemoteTier) -> list[dict[str, Any]]:
    """Return per function: name, entries, code versions, bytes (manifests and the blobs they name), newest."""
    sizes = blobs(tier)
    rows: dict[str, dict[str, Any]] = {}
    for entry in entries(tier):
        meta = entry.meta
        name = str(meta.get("name", "(damaged)")) if entry.header is not None else "(damaged)"
        row = rows.setdefault(name, {"name": name, "entries": 0, "codes": set(), "bytes": 0, "newest": 0.0,
                                     "compute": 0.0})
        row["entries"] += 1
        row["codes"].add(meta.get("code"))
        blob = blob_of(entry)
        row["bytes"] += entry.size + (sizes.get(blob, (0, 0.0))[0] if blob else 0)
        row["newest"] = max(row["newest"], entry.header.created if entry.header else entry.modified)
        row["compute"] += float(meta.get("duration", 0.0) or 0.0)
    return sorted(rows.values(), key=lambda row: row["name"])


def prune(tier: RemoteTier, older_than: float | None, keep_latest: bool, max_size: int | None) -> int:
    """Delete expired and damaged manifests, and those the options name; then unused blobs. Return how many."""
    now = time.time()
    items = entries(tier)
    doomed = {e.name for e in items if e.header is None or e.header.expired(now)}
    if older_than is not None:
        doomed |= {e.name for e in items if e.header is not None and e.header.created < now - older_than}
    if keep_latest:
        newest: dict[Any, tuple[float, Any]] = {}
        for e in items:
            if e.header is not None:
                fid, created = e.meta.get("fid"), e.header.created
                if fid not in newest or created > newest[fid][0]:
                    newest[fid] = (created, e.meta.get("code"))
        doomed |= {e.name for e in items if e.header is not None and e.meta.get("code") != newest[e.meta.get("fid")][1]}
    if max_size is not None:
        sizes = blobs(tier)
        alive = sorted((e for e in items if e.name not in doomed), key=lambda e: e.modified, reverse=True)
        total = 0
        for e in alive:  # newest first: what does not fit goes
            blob = blob_of(e)
            total += e.size + (sizes.get(blob, (0, 0.0))[0] if blob else 0)
            if total > max_size:
                doomed.add(e.name)
    return remove(tier, [e for e in items if e.name in doomed])
