"""What a second tier offers the local store: a handful of operations on verified records.

The memoized function talks to the local store only; on a miss there, the local store asks its
second tier (``remote.RemoteTier``, on object storage or a shared directory) through this
interface, and copies what it gets into its own directory. Rows are record keys as the local
index spells them (``key`` or ``key~keyid`` with a secret).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from .._serialize import Header, Payload, Signer

__all__ = ()


@dataclass
class Fetched:
    """A verified entry of a second tier: its header and payload, ready to be stored locally."""

    header: Header
    payload: Payload
    # Writable copies of the payload's buffers, made while it was verified, for the value's first use (or None).
    copies: list[Any] | None = None


class SecondTier(Protocol):
    """A shared store of immutable records with create-only commits and leases."""

    url: str
    read_only: bool

    def fetch(self, row: str, signer: Signer | None, serve: bool = False) -> Fetched | None:
        """Return the verified entry of ``row``, or None (absent, refused, or the tier failing); ``serve``:
        with ``copies`` of its buffers, its value being served from memory."""

    def fetch_many(self, rows: list[str], signer: Signer | None) -> dict[str, Fetched]:
        """Return the verified entries among ``rows``."""

    def publish(self, row: str, payload: Payload, meta: dict[str, Any], created: float, expires: float | None,
                duration: float, signer: Signer | None, replace: bool | None = None) -> bool:
        """Store an entry if absent (the first writer wins; ``replace``: a refresh); return whether one is there."""

    def publish_many(self, items: list[tuple[Any, ...]]) -> None:
        """Publish many entries, each given as the arguments of ``publish``."""

    def delete(self, row: str) -> bool:
        """Remove the entry of ``row``; return whether there was one."""

    def try_lease(self, row: str) -> bool:
        """Take the lease on ``row`` (a key under one secret) across machines; False while another holds it."""

    def try_leases(self, rows: list[str]) -> list[bool]:
        """``try_lease`` for each of ``rows``."""

    def backing_off(self, row: str) -> bool:
        """Return True while another machine holds the lease on ``row`` and it is not yet time to look again."""

    def looked(self, row: str) -> None:
        """Forget the wait on ``row`` (its result arrived)."""

    def release(self, rows: list[str]) -> None:
        """Give back the leases held on ``rows``."""

    def manifests(self) -> Iterator[tuple[str, int, float]]:
        """Yield (row, size, modified) of every entry: a full scan, for upkeep only."""
