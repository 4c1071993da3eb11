"""Expectations of a controller's own writes, to tell a stale cache from a changed world.

A controller reads from informer caches that trail its own writes. Right after it creates
an EndpointSlice, a second sync of the same Service (triggered by the next Pod event) may
still see a cache without that slice and would create a duplicate. Upstream guards against
this with EndpointSliceTracker (and the Endpoints controller's stale tracker); this is the
same idea for any object kind:

- after each create/update the controller calls `wrote(owner, obj)`, after each delete
  `deleted(owner, obj)`;
- before acting on a cache, `stale(owner, cached)` says whether the cache has caught up
  with those writes (if not, the sync is retried shortly instead of acting);
- informer events go through `is_foreign(type, obj)`, which is False for the echo of the
  controller's own writes (no resync needed) and True for changes someone else made
  (a hand edit or deletion the controller must repair).

resourceVersions are compared as integers when both parse (true of etcd and of svcnet's
stores). Expectations expire after `ttl` seconds, so an event that never
arrives (e.g. an object created and deleted by others between two relists) cannot block a
controller forever.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable

from svcnet.api import errors
from svcnet.controllers.podendpoints import Obj

Key = tuple[str, str]  # (namespace, name)


def _key(obj: Obj) -> Key:
    meta = obj["metadata"]
    return (meta.get("namespace") or "", meta["name"])


def rv_at_least(rv: str, want: str) -> bool:
    """Is resourceVersion `rv` the same as or newer than `want`?

    Opaque (non-numeric) versions cannot be ordered; any version is then taken as "caught
    up". A wrong guess costs at most a Conflict and a retry (writes carry the version they
    were computed from), never a lost change."""
    if rv.isdigit() and want.isdigit():
        return int(rv) >= int(want)
    return True


class WriteTracker:
    def __init__(self, ttl: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._written: dict[Key, tuple[str, float]] = {}  # object -> (rv written, when)
        self._deleted: dict[Key, float] = {}  # object -> when deleted
        self._owners: dict[str, set[Key]] = {}
        self._owner_of: dict[Key, str] = {}

    def _own(self, owner: str, key: Key) -> None:
        self._owners.setdefault(owner, set()).add(key)
        self._owner_of[key] = owner

    def _settled(self, key: Key) -> None:
        """No expectation is left for `key`: drop it from its owner's set."""
        owner = self._owner_of.pop(key, None)
        if owner is not None:
            keys = self._owners.get(owner)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._owners[owner]

    def wrote(self, owner: str, obj: Obj) -> None:
        key = _key(obj)
        self._written[key] = (str(obj["metadata"].get("resourceVersion") or ""), self.clock())
        self._deleted.pop(key, None)
        self._own(owner, key)

    def deleted(self, owner: str, obj: Obj) -> None:
        key = _key(obj)
        self._written.pop(key, None)
        self._deleted[key] = self.clock()
        self._own(owner, key)

    def is_foreign(self, ev_type: str, obj: Obj) -> bool:
        """Should this informer event trigger a sync (it is not just our own write)?"""
        key = _key(obj)
        rv = str(obj["metadata"].get("resourceVersion") or "")
        if ev_type == "DELETED":
            self._written.pop(key, None)
            expected_deletion = self._deleted.pop(key, None) is not None
            self._settled(key)
            return not expected_deletion
        expected = self._written.get(key)
        if expected is None:
            return True
        want = expected[0]
        if not rv_at_least(rv, want):
            return False  # an older event still in flight; our write's echo follows
        del self._written[key]
        self._settled(key)
        return rv != want  # newer than our write: someone else changed it

    def stale(self, owner: str, cached: Iterable[Obj]) -> bool:
        """True while the cache does not yet reflect every write made for `owner`."""
        keys = self._owners.get(owner)
        if not keys:
            return False
        now = self.clock()
        by_key = {_key(o): o for o in cached}
        stale = False
        for key in list(keys):
            if key in self._written:
                want, at = self._written[key]
                obj = by_key.get(key)
                if obj is not None and rv_at_least(
                        str(obj["metadata"].get("resourceVersion") or ""), want):
                    del self._written[key]
                elif now - at > self.ttl:
                    del self._written[key]
                else:
                    stale = True
                    continue
            elif key in self._deleted:
                if key in by_key and now - self._deleted[key] <= self.ttl:
                    stale = True
                    continue
                del self._deleted[key]
            self._settled(key)
        return stale

    def forget(self, owner: str) -> None:
        for key in self._owners.pop(owner, set()):
            self._written.pop(key, None)
            self._deleted.pop(key, None)
            self._owner_of.pop(key, None)


def namespace_terminating(e: errors.StatusError) -> bool:
    """Was a create refused because the namespace is being deleted? Such creates keep
    failing, so controllers drop the work instead of retrying (upstream checks the
    NamespaceTerminating status cause the same way)."""
    causes = (e.details or {}).get("causes") or []
    return e.code == 403 and any(c.get("reason") == "NamespaceTerminating" for c in causes)
