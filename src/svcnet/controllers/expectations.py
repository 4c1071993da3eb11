"""Expectations: how many creates and which deletes a controller is still waiting to see.

A controller acts on its informer cache, which lags behind its own writes. After creating
three pods, the next sync may still see the old pod count and create three more. Kube's
answer (pkg/controller/controller_utils.go ControllerExpectations and its UID-tracking
variant) is to remember, per controller key, the creates and deletes in flight, decrement
them as the informer reports the pods, and not manage replicas again until all have been
seen, or until a timeout passes (a watch event can be lost, e.g. across a relist that
coalesced an add and a delete; five minutes later the controller trusts its cache again).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

EXPECTATIONS_TIMEOUT = 300.0  # seconds, as upstream's ExpectationsTimeout


@dataclass
class _Record:
    adds: int
    deletes: set[str] = field(default_factory=set)
    stamp: float = 0.0


class Expectations:
    """Per-key pending creates (a count) and deletes (by pod uid). `clock` is monotonic
    seconds, injectable for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 timeout: float = EXPECTATIONS_TIMEOUT) -> None:
        self._clock = clock
        self._timeout = timeout
        self._records: dict[str, _Record] = {}

    def satisfied(self, key: str) -> bool:
        """True when the controller may act: nothing pending, no record, or expired."""
        rec = self._records.get(key)
        if rec is None:
            return True
        if rec.adds <= 0 and not rec.deletes:
            return True
        return self._clock() - rec.stamp > self._timeout

    def expect_creations(self, key: str, count: int) -> None:
        """Replace the key's expectations with `count` creates (set before creating)."""
        self._records[key] = _Record(count, set(), self._clock())

    def expect_deletions(self, key: str, uids: Iterable[str]) -> None:
        """Replace the key's expectations with deletes of exactly these pods."""
        self._records[key] = _Record(0, set(uids), self._clock())

    def creation_observed(self, key: str) -> None:
        """A pod created for `key` appeared (or a create was skipped or failed)."""
        rec = self._records.get(key)
        if rec is not None:
            rec.adds -= 1

    def deletion_observed(self, key: str, uid: str) -> None:
        """A pod of `key` disappeared or started terminating; only expected uids count."""
        rec = self._records.get(key)
        if rec is not None:
            rec.deletes.discard(uid)

    def pending(self, key: str) -> tuple[int, int]:
        """(creates, deletes) still expected (for tests and logs)."""
        rec = self._records.get(key)
        return (max(rec.adds, 0), len(rec.deletes)) if rec else (0, 0)

    def forget(self, key: str) -> None:
        """Drop the key's record (its ReplicaSet was deleted)."""
        self._records.pop(key, None)
