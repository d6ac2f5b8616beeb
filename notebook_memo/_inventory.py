"""What a cache directory holds, per function or cell, and the clean-up operations on it."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from ._notebook import owner_tag
from ._store import Store, StoredRecord

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


def is_marker(meta: dict) -> bool:  # type: ignore[type-arg]
    """Return whether a record is the marker of a body that drew from random generators, not a result.

    It points a lookup to the entry stored for the generators' states; it goes with that entry.
    """
    return "variants" in meta


def delete_results(store: Store, records: Iterable[StoredRecord]) -> int:
    """Delete records; return how many results went (a random-state marker is not one)."""
    removed = 0
    for record in records:
        try:
            counts = not is_marker(record.header.meta())
        except ValueError:
            counts = True
        if store.delete_record(record) and counts:
            removed += 1
    return removed


class Inventory:
    """Reads record metadata (never payloads) to summarise and prune a store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def records(self) -> list[tuple[StoredRecord, dict]]:  # type: ignore[type-arg]
        out = []
        for record in self.store.records():
            try:
                out.append((record, record.header.meta()))
            except ValueError:
                continue
        return out

    def functions(self) -> list[FunctionSummary]:
        groups: dict[Owner, list[tuple[StoredRecord, dict]]] = {}  # type: ignore[type-arg]
        for record, meta in self.records():
            groups.setdefault(owner(meta), []).append((record, meta))
        rows = []
        self.store.flush()  # this process's pending hit counts
        for (fid, notebook), items in groups.items():
            metas = [m for _, m in items if not is_marker(m)]
            if not metas:
                continue
            hits, last_hit = self.store.hit_stats(owner_tag(fid, notebook))
            last_stored = max(r.header.created for r, _ in items)
            rows.append(FunctionSummary(
                name=metas[0].get("name", "?"), fid=fid, kind=metas[0].get("kind", "function"),
                entries=len(metas), versions=len({m.get("code") for m in metas}),
                bytes=sum(m.get("size", 0) for m in metas),
                last_stored=last_stored,
                compute_seconds=sum(m.get("duration", 0.0) for m in metas),
                hits=hits, last_used=max(last_hit, last_stored), notebook=notebook,
            ))
        return sorted(rows, key=lambda r: (r.name, r.notebook or ""))

    def _matches(self, meta: dict, name: str) -> bool:  # type: ignore[type-arg]
        full = meta.get("name", "")
        return bool(full == name or full.endswith("." + name) or meta.get("label") == name)

    def clear_function(self, name: str, notebook: str | None = None) -> int:
        """Delete the entries of the functions or cells called ``name`` (of one notebook, if given)."""
        return delete_results(self.store, (r for r, m in self.records() if self._matches(m, name) and (
            notebook is None or _same_notebook(m.get("notebook"), notebook))))

    def clear_owned(self, name: str, notebook: str | None) -> int:
        """Delete the entries of the functions or cells called ``name`` that ``notebook`` stored (None: no notebook)."""
        return delete_results(self.store, (r for r, m in self.records()
                                           if self._matches(m, name) and m.get("notebook") == notebook))

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
        """
        newest: dict[Owner, tuple[float, str]] = {}
        records = self.records()
        for record, meta in records:
            who, code = owner(meta), meta.get("code", "")
            if who not in newest or record.header.created > newest[who][0]:
                newest[who] = (record.header.created, code)
        return delete_results(self.store, (r for r, m in records if m.get("code") != newest[owner(m)][1]))

    def prune_max_size(self, limit: int) -> int:
        """Evict least recently used entries until the records hold at most ``limit`` bytes."""
        self.store.flush()  # pending access times decide what is least recently used
        return self.store.evict_to(limit)


def _same_notebook(recorded: str | None, given: str) -> bool:
    """A notebook given on the command line matches by path, or by file name alone."""
    if not recorded:
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
    """Return a local date and time to the minute."""
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")
