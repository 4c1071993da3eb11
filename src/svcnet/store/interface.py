"""The Store protocol: keys to revisioned values, with watch.

Modelled on the subset of etcd v3 that an API server needs (as kine does): one global,
monotonically increasing revision; every write gets the next revision; create-if-absent,
compare-revision update and delete; range reads by key prefix at the current revision;
watch of a prefix from a revision, answered with `Compacted` once that revision is older
than the kept window. Values are opaque bytes (the API server stores JSON without
metadata.resourceVersion, which it derives from `mod_revision` on the way out).

Backends: memory.py (tests), sqlite.py (default, durable). Both must pass
tests/conformance/test_store.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import AsyncIterator, Literal, Protocol

EventType = Literal["ADDED", "MODIFIED", "DELETED"]


@dataclass(frozen=True, slots=True)
class KV:
    """A stored value. `mod_revision` is the revision of the write that produced it;
    `create_revision` the revision that created the key (kept across updates)."""

    key: str
    value: bytes
    create_revision: int
    mod_revision: int


@dataclass(frozen=True, slots=True)
class Event:
    """A change. For DELETED, `kv.value` is the last value and `kv.mod_revision` the
    revision of the delete itself. `prev` is the value before the change (None for ADDED)."""

    type: EventType
    kv: KV
    prev: KV | None = None


class StoreError(Exception):
    """Base of store errors; each carries the key it concerns."""

    def __init__(self, key: str, message: str = "") -> None:
        super().__init__(message or key)
        self.key = key


class KeyExists(StoreError):
    """create() of a key that has a live value."""


class KeyNotFound(StoreError):
    """update()/delete() of a key with no live value."""


class RevisionMismatch(StoreError):
    """update()/delete() with an expected revision that is not the key's current one."""

    def __init__(self, key: str, current: KV) -> None:
        super().__init__(key, f"{key}: revision mismatch (current {current.mod_revision})")
        self.current = current


class Compacted(Exception):
    """A watch or read asked for a revision older than the kept window."""

    def __init__(self, requested: int, compacted: int) -> None:
        super().__init__(f"revision {requested} is compacted (oldest kept: {compacted})")
        self.requested = requested
        self.compacted = compacted


class Store(Protocol):
    """See module docstring. All methods are coroutines; implementations are safe to call
    concurrently from one event loop."""

    async def get(self, key: str) -> KV | None:
        """The live value of `key`, or None."""
        ...

    async def list(self, prefix: str, *, start_after: str = "",
                   limit: int = 0) -> tuple[list[KV], int]:
        """Live values whose key starts with `prefix`, sorted by key, only keys > start_after,
        at most `limit` (0 = all). Returns (items, current revision of the store)."""
        ...

    async def count(self, prefix: str) -> int:
        """Number of live keys under `prefix`."""
        ...

    async def create(self, key: str, value: bytes) -> KV:
        """Write `value` at a key that has no live value; raises KeyExists."""
        ...

    async def update(self, key: str, value: bytes, expected_revision: int) -> KV:
        """Replace the value if its mod_revision equals `expected_revision` (0 = any);
        raises KeyNotFound or RevisionMismatch."""
        ...

    async def delete(self, key: str, expected_revision: int = 0) -> KV:
        """Delete the live value (guarded like update). Returns the tombstone KV: the last
        value with mod_revision = the delete's revision."""
        ...

    def watch(self, prefix: str, from_revision: int) -> AsyncIterator[Event]:
        """Events under `prefix` with revision > from_revision, in revision order, then live
        ones as they happen, until the iterator is closed (aclose) or the store is closed.
        Raises Compacted (on first iteration) when from_revision < the compacted revision."""
        ...

    async def current_revision(self) -> int:
        ...

    async def compacted_revision(self) -> int:
        """The oldest revision a watch may start from (history before it is gone)."""
        ...

    async def compact(self, revision: int) -> None:
        """Forget history at and before `revision` (live values are kept)."""
        ...

    async def close(self) -> None:
        ...
