"""What a cache directory holds, per function or cell, and the clean-up operations on it."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ._notebook import owner_tag
from ._serialize import LATEST_TIME, LONGEST_RUN, is_marker
from .stores.local import Store, StoredRecord, facts_of

__all__ = ()


@dataclass
class FunctionSummary:
    """The entries of one memoized function or cell in one directory."""

    name: str
    fid: str
    kind: str
    entries: int
    versions: int
    bytes: int
    last_stored: float
    compute_seconds: float
    hits: int = 0
    last_used: float = 0.0
    notebook: str | None = None  # the notebook that defined it, when its front end said


Owner = tuple[str, "str | None"]


def owner(meta: dict) -> Owner:  # type: ignore[type-arg]
    """Return whose entry a record is: its function id and the notebook that defined the function."""
    return meta.get("fid", "?"), meta.get("notebook")


def delete_results(store: Store, records: Iterable[StoredRecord], everywhere: bool = False) -> int:
    """Delete records, a few hundred per transaction; return how many results went (a random-state marker is not
    one). Each goes only if its row still holds it when deleted; ``everywhere``: from the remote tier too."""
    return sum(1 for record in store.delete_records(records, everywhere) if not _marks(record))


def _marks(record: StoredRecord) -> bool:
    try:
        return is_marker(record.header.meta())
    except ValueError:
        return False


@dataclass
class _Tally:
    """What one owner's records add up to, counted as a scan passes them."""

    name: str = "?"
    kind: str = "function"
    entries: int = 0
    versions: set[str | None] = field(default_factory=set)
    bytes: int = 0
    last_stored: float = 0.0
    compute_seconds: float = 0.0


class Inventory:
    """Reads record metadata (never payloads) to summarise and prune a store, one scan at a time."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def records(self) -> Iterator[tuple[StoredRecord, dict]]:  # type: ignore[type-arg]
        """Yield each record and its metadata as the scan reads them (one whose metadata is damaged is left out)."""
        for record in self.store.records():
            try:
                yield record, record.header.meta()
            except ValueError:
                continue

    def functions(self) -> list[FunctionSummary]:
        """Summarise each function's records: from the store's facts table when it holds every record (one
        grouped query, and one record read per function for its name), else by scanning every record."""
        summed = self.store.summaries()
        if summed is not None:
            found = self._from_facts(summed)
            if found is not None:
                return found
        return self._scanned()

    def _from_facts(self, summed: list[tuple[Any, ...]]) -> list[FunctionSummary] | None:
        rows = []
        self.store.flush()  # this process's pending hit counts
        for fid, notebook, entries, versions, size, compute, last_stored, sample in summed:
            if not entries:
                continue  # random-state markers alone
            if not _plausible_sums(size, compute, last_stored):
                return None  # a number planted or damaged in the table: the scan counts again, and rewrites it
            # The name comes from a record read and checked, as the scan would read it; never from the facts row.
            record = self.store.record_at(sample)
            try:
                meta = record.header.meta() if record is not None else None
            except ValueError:
                meta = None
            if meta is None or owner(meta) != (fid, notebook) or is_marker(meta):
                return None
            hits, last_hit = self.store.hit_stats(owner_tag(fid, notebook))
            rows.append(FunctionSummary(
                name=meta.get("name", "?"), fid=fid, kind=meta.get("kind", "function"), entries=entries,
                versions=versions, bytes=int(size), last_stored=last_stored, compute_seconds=compute, hits=hits,
                last_used=max(last_hit, last_stored), notebook=notebook,
            ))
        return sorted(rows, key=lambda r: (r.name, r.notebook or ""))

    def code_counts(self) -> dict[Owner, dict[str | None, int]]:
        """Return, for each function, how many results each version of its code has (markers left out)."""
        counted: dict[Owner, dict[str | None, int]] = {}
        rows = self.store.code_counts()
        if rows is not None:
            for fid, notebook, code, n in rows:
                counted.setdefault((fid, notebook), {})[code] = n
            return counted
        for _, meta in self.records():
            if not is_marker(meta):
                versions = counted.setdefault(owner(meta), {})
                versions[meta.get("code")] = versions.get(meta.get("code"), 0) + 1
        return counted

    def _scanned(self) -> list[FunctionSummary]:
        tallies: dict[Owner, _Tally] = {}
        facts = []
        for record, meta in self.records():
            facts.append(facts_of(record.key, meta, record.header.pickle_len + sum(record.header.buffer_lens),
                                  record.header.duration, record.header.created))
            who = owner(meta)
            tally = tallies.get(who)
            if tally is None:
                tally = tallies[who] = _Tally()
            tally.last_stored = max(tally.last_stored, record.header.created)
            if is_marker(meta):
                continue
            if not tally.entries:
                tally.name, tally.kind = meta.get("name", "?"), meta.get("kind", "function")
            tally.entries += 1
            tally.versions.add(meta.get("code"))
            tally.bytes += meta.get("size", 0)
            tally.compute_seconds += meta.get("duration", 0.0)
        rows = []
        self.store.flush()  # this process's pending hit counts
        for (fid, notebook), tally in tallies.items():
            if not tally.entries:
                continue
            hits, last_hit = self.store.hit_stats(owner_tag(fid, notebook))
            rows.append(FunctionSummary(
                name=tally.name, fid=fid, kind=tally.kind, entries=tally.entries, versions=len(tally.versions),
                bytes=tally.bytes, last_stored=tally.last_stored, compute_seconds=tally.compute_seconds,
                hits=hits, last_used=max(last_hit, tally.last_stored), notebook=notebook,
            ))
        self.store.rebuild_facts(facts)  # the next summary reads them
        return sorted(rows, key=lambda r: (r.name, r.notebook or ""))

    def clear_function(self, name: str, notebook: str | None = None) -> int:
        """Delete the entries of the functions or cells called ``name`` (of one notebook, if given)."""
        return delete_results(self.store, (r for r, m in self.records() if is_named(m, name) and (
            notebook is None or same_notebook(m.get("notebook"), notebook))))

    def clear_owned(self, name: str, notebook: str | None) -> int:
        """Delete the entries of the functions or cells called ``name`` that ``notebook`` stored (None: no notebook)."""
        return delete_results(self.store, (r for r, m in self.records()
                                           if is_named(m, name) and m.get("notebook") == notebook))

    def clear_all(self) -> int:
        return delete_results(self.store, (r for r, _ in self.records()))

    def clear_notebook(self, notebook: str | None) -> int:
        """Delete the entries recorded by one notebook's functions and cells (None: those with no notebook)."""
        return delete_results(self.store, (r for r, m in self.records() if m.get("notebook") == notebook))

    def prune_older_than(self, seconds: float) -> int:
        cutoff = time.time() - seconds
        return delete_results(self.store, (r for r, _ in self.records() if r.header.created < cutoff))

    def prune_keep_latest(self) -> int:
        """Keep, for each function, only the entries of its most recently stored code version.

        A function of the same name defined in two notebooks is two functions: each keeps its newest.
        Only records this process verified take part: another's (another secret's, or unsigned beside a
        secret) may claim any function, code and time, and are left as they are.
        """
        newest: dict[Owner, tuple[float, str]] = {}
        for record, meta in self.records():
            who, code = owner(meta), meta.get("code", "")
            if record.verified and (who not in newest or record.header.created > newest[who][0]):
                newest[who] = (record.header.created, code)
        # A second scan: what was stored since the first is newer than what it found, and stays.
        return delete_results(self.store, (r for r, m in self.records() for who in [owner(m)] if r.verified
                                           and who in newest and m.get("code") != newest[who][1]
                                           and r.header.created <= newest[who][0]))

    def prune_max_size(self, limit: int) -> int:
        """Evict least recently used entries until the records hold at most ``limit`` bytes."""
        self.store.flush()  # pending access times decide what is least recently used
        return self.store.evict_to(limit)


def is_named(meta: dict, name: str) -> bool:  # type: ignore[type-arg]
    """Return whether a record is of the function or cell ``name``: its qualified name, a dotted tail of it
    (``K.method``), or a cell's label. Metadata read from a cache may hold anything: a name that is not
    text matches nothing."""
    full, label = meta.get("name"), meta.get("label")
    return (isinstance(full, str) and (full == name or full.endswith("." + name))) or \
        (isinstance(label, str) and label == name)


def same_notebook(recorded: object, given: str) -> bool:
    """Return whether a notebook given on the command line is the one recorded: by its real path, or by file name
    when only a file name is given. ``recorded`` is read from a cache (a remote's is unverified): anything else
    than a path matches nothing."""
    if not recorded or not isinstance(recorded, str):
        return False
    return recorded == os.path.realpath(given) or os.path.basename(recorded) == given


def human_bytes(n: float) -> str:
    """Return a byte count for people: ``'1.5 MB'``."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def human_time(timestamp: float) -> str:
    """Return a local date and time to the minute ('?' for a time no clock shows)."""
    try:
        return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")
    except (OverflowError, OSError, ValueError, TypeError):
        return "?"


def _plausible_sums(size: Any, compute: Any, last_stored: Any) -> bool:
    """Return whether a function's sums from the facts table (unverified) could have been written by the store."""
    return (type(size) in (int, float) and 0 <= size <= 2**62 and type(compute) in (int, float)
            and 0 <= compute <= LONGEST_RUN * 2**32 and type(last_stored) in (int, float)
            and 0 <= last_stored <= LATEST_TIME)
