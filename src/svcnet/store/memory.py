"""MemoryStore: the Store protocol in process memory, for unit tests and `--datastore memory`.

It mirrors the SQLite backend's model so that both pass the same conformance suite: a
global revision counter, a history log of events (the equivalent of the append-only table)
and the live value per key. Nothing survives the process.

All methods complete without awaiting anything, so each call is atomic with respect to other
coroutines on the loop; that is what makes publish-after-write gap-free (see watch.py).
"""

from __future__ import annotations

import bisect
from typing import AsyncIterator

from svcnet.store.interface import KV, Event, KeyExists, KeyNotFound, RevisionMismatch
from svcnet.store.watch import DEFAULT_WATCH_BUFFER, Broadcaster, follow

# Inside the store classes `list` names the method, so history pages are annotated with this.
_Events = list[Event]

__all__ = ["MemoryStore"]


class MemoryStore:
    """In-memory Store. Construct directly: `MemoryStore(compact_window=..., watch_buffer=...)`.

    `compact_window` is how many revisions of history `compact_window()` keeps;
    `watch_buffer` bounds each watcher's backlog (see watch.WatchOverflow)."""

    def __init__(self, *, compact_window: int = 10_000,
                 watch_buffer: int = DEFAULT_WATCH_BUFFER) -> None:
        if compact_window < 0:
            raise ValueError("compact_window must be >= 0")
        self._window = compact_window
        self._rev = 0
        self._compacted = 0
        self._live: dict[str, KV] = {}
        self._keys: list[str] = []  # live keys, sorted, for prefix ranges and pagination
        # History in revision order; `_revs[i]` is `_events[i].kv.mod_revision`, kept
        # separately so replay can bisect to its starting point.
        self._events: list[Event] = []
        self._revs: list[int] = []
        self._closed = False
        self._broadcaster = Broadcaster(watch_buffer)

    # --- reads --------------------------------------------------------------------------

    async def get(self, key: str) -> KV | None:
        self._check_open()
        return self._live.get(key)

    async def list(self, prefix: str, *, start_after: str = "",
                   limit: int = 0) -> tuple[list[KV], int]:
        self._check_open()
        keys = self._keys
        i = bisect.bisect_left(keys, prefix)
        if start_after >= prefix:
            i = max(i, bisect.bisect_right(keys, start_after))
        out: list[KV] = []
        while i < len(keys) and keys[i].startswith(prefix):
            if limit and len(out) == limit:
                break
            out.append(self._live[keys[i]])
            i += 1
        return out, self._rev

    async def count(self, prefix: str) -> int:
        self._check_open()
        keys = self._keys
        i = j = bisect.bisect_left(keys, prefix)
        while j < len(keys) and keys[j].startswith(prefix):
            j += 1
        return j - i

    async def current_revision(self) -> int:
        return self._rev

    async def compacted_revision(self) -> int:
        return self._compacted

    # --- writes -------------------------------------------------------------------------

    async def create(self, key: str, value: bytes) -> KV:
        self._check_open()
        if key in self._live:
            raise KeyExists(key, f"{key}: already exists")
        rev = self._rev + 1
        kv = KV(key, bytes(value), rev, rev)
        bisect.insort(self._keys, key)
        self._commit(Event("ADDED", kv), kv)
        return kv

    async def update(self, key: str, value: bytes, expected_revision: int) -> KV:
        self._check_open()
        cur = self._guard(key, expected_revision)
        kv = KV(key, bytes(value), cur.create_revision, self._rev + 1)
        self._commit(Event("MODIFIED", kv, cur), kv)
        return kv

    async def delete(self, key: str, expected_revision: int = 0) -> KV:
        self._check_open()
        cur = self._guard(key, expected_revision)
        tomb = KV(key, cur.value, cur.create_revision, self._rev + 1)
        del self._keys[bisect.bisect_left(self._keys, key)]
        self._commit(Event("DELETED", tomb, cur), None)
        return tomb

    def _guard(self, key: str, expected_revision: int) -> KV:
        cur = self._live.get(key)
        if cur is None:
            raise KeyNotFound(key, f"{key}: not found")
        if expected_revision and cur.mod_revision != expected_revision:
            raise RevisionMismatch(key, cur)
        return cur

    def _commit(self, event: Event, live: KV | None) -> None:
        """Apply a validated write: bump the revision, log it, publish it."""
        self._rev = event.kv.mod_revision
        if live is None:
            del self._live[event.kv.key]
        else:
            self._live[event.kv.key] = live
        self._events.append(event)
        self._revs.append(self._rev)
        self._broadcaster.publish(event)

    # --- watch and compaction -------------------------------------------------------------

    def watch(self, prefix: str, from_revision: int) -> AsyncIterator[Event]:
        return follow(self._broadcaster, prefix, from_revision, self._history,
                      lambda: self._compacted)

    def _history(self, prefix: str, after: int, limit: int) -> _Events:
        out: list[Event] = []
        for i in range(bisect.bisect_right(self._revs, after), len(self._events)):
            ev = self._events[i]
            if ev.kv.key.startswith(prefix):
                out.append(ev)
                if len(out) == limit:
                    break
        return out

    async def compact(self, revision: int) -> None:
        """Forget events at or before `revision` except those that wrote a live value.
        Watches from an older revision then raise Compacted. A revision at or below the
        current compaction point is a no-op; one beyond the current revision is an error."""
        self._check_open()
        if revision > self._rev:
            raise ValueError(f"cannot compact revision {revision}: current is {self._rev}")
        if revision <= self._compacted:
            return
        # Publish the new compaction point first: a replay in progress checks it before its
        # next page and raises Compacted instead of silently skipping forgotten events.
        self._compacted = revision
        end = bisect.bisect_right(self._revs, revision)
        kept = [ev for ev in self._events[:end]
                if ev.type != "DELETED" and self._live.get(ev.kv.key) is ev.kv]
        self._events[:end] = kept
        self._revs[:end] = [ev.kv.mod_revision for ev in kept]

    async def compact_window(self) -> None:
        """Compact so that only the last `compact_window` revisions of history remain.
        The API server calls this periodically."""
        target = self._rev - self._window
        if target > self._compacted:
            await self.compact(target)

    async def close(self) -> None:
        """End all watches; later reads and writes raise RuntimeError. Idempotent."""
        self._closed = True
        self._broadcaster.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("store is closed")
