"""Change trackers: what changed since the last sync, and whether it is safe to sync at all.

kube-proxy's `ServiceChangeTracker` / `EndpointsChangeTracker` accumulate informer events
between syncs; a sync drains them. We keep the part the sync needs:

- the set of Services, as (namespace, name), whose Service object or EndpointSlices changed
  (including deletions), so a partial sync (KEP-3453) rewrites only their chains;
- for EndpointSlices, the `endpoints.kubernetes.io/last-change-trigger-time` annotations of
  the changed slices, which feed `network_programming_duration_seconds`;
- per kind, whether its informer has completed its initial list (`synced`): DESIGN.md says
  never act on partial state, so `ProxyChanges.ready` gates every sync. Programming rules
  from a half-listed cache would delete the chains of Services not yet seen.

The trackers do not hold objects: the sync reads the informers' caches for the current
state; only the *names* of what changed have to be remembered. A Service event that does
not change any proxied field (status, annotations, ...) is not recorded, as upstream only
records changes whose `ServicePortInfo`s differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

from svcnet.proxy.endpoints import SERVICE_NAME_LABEL
from svcnet.proxy.serviceport import service_ports

Obj = Mapping[str, Any]
ServiceKey = tuple[str, str]
TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"


@dataclass(frozen=True, slots=True)
class Changes:
    """What one tracker saw since the previous drain.

    `services`: changed (namespace, name) pairs; `events`: how many recorded changes were
    coalesced into them; `trigger_times`: epoch seconds of the trigger-time annotations.
    """

    services: frozenset[ServiceKey] = frozenset()
    events: int = 0
    trigger_times: tuple[float, ...] = ()


def parse_trigger_time(text: Any) -> float | None:
    """RFC 3339 (`2024-05-01T12:00:00Z`, fractional seconds allowed) -> epoch seconds,
    or None if absent or unparsable (the metric is then simply not observed)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class _Tracker:
    """Common part: changed-service set, event count, synced flag."""

    def __init__(self) -> None:
        self.synced = False
        self.total = 0
        self._services: set[ServiceKey] = set()
        self._events = 0

    def mark_synced(self) -> None:
        """The informer has listed everything once; from now on the cache is complete."""
        self.synced = True

    @property
    def pending(self) -> int:
        """Changed Services not yet drained (the `*_changes_pending` gauges)."""
        return len(self._services)

    def _record(self, keys: set[ServiceKey]) -> bool:
        if not keys:
            return False
        self._services |= keys
        self._events += 1
        self.total += 1
        return True


class ServiceChangeTracker(_Tracker):
    """Records Services whose proxied fields changed (`on_event` is an informer handler)."""

    def on_event(self, ev_type: str, old: Obj | None, new: Obj | None) -> bool:
        """Record one informer event; returns True if it was a change worth a sync."""
        obj = new if new is not None else old
        if obj is None:
            return False
        if old is not None and new is not None and service_ports(old) == service_ports(new):
            return False
        meta = obj.get("metadata") or {}
        return self._record({(str(meta.get("namespace") or "default"), str(meta["name"]))})

    def drain(self) -> Changes:
        out = Changes(frozenset(self._services), self._events)
        self._services = set()
        self._events = 0
        return out


class EndpointSliceChangeTracker(_Tracker):
    """Records the Services whose EndpointSlices changed, and their trigger times."""

    def __init__(self) -> None:
        super().__init__()
        self._triggers: list[float] = []

    @staticmethod
    def _service_of(obj: Obj | None) -> ServiceKey | None:
        if obj is None:
            return None
        meta = obj.get("metadata") or {}
        svc = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        return (str(meta.get("namespace") or "default"), str(svc)) if svc else None

    def on_event(self, ev_type: str, old: Obj | None, new: Obj | None) -> bool:
        """Record one informer event; returns True if it concerned a Service's endpoints.

        Both the old and new owning Service are recorded: a slice relabelled to another
        Service changes both. An event whose object did not change at all is ignored.
        """
        if old is not None and new is not None and old == new:
            return False
        keys = {k for k in (self._service_of(old), self._service_of(new)) if k is not None}
        if not self._record(keys):
            return False
        if new is not None:
            ann = (new.get("metadata") or {}).get("annotations") or {}
            when = parse_trigger_time(ann.get(TRIGGER_TIME_ANNOTATION))
            if when is not None:
                self._triggers.append(when)
        return True

    def drain(self) -> Changes:
        out = Changes(frozenset(self._services), self._events, tuple(self._triggers))
        self._services = set()
        self._events = 0
        self._triggers = []
        return out


class ProxyChanges:
    """Both trackers, plus the readiness gate the proxier checks before any sync."""

    def __init__(self) -> None:
        self.services = ServiceChangeTracker()
        self.endpoints = EndpointSliceChangeTracker()

    @property
    def ready(self) -> bool:
        """True once both Services and EndpointSlices have fully synced."""
        return self.services.synced and self.endpoints.synced

    def drain(self) -> tuple[Changes, Changes]:
        """(service changes, endpoint changes), leaving both trackers empty."""
        return self.services.drain(), self.endpoints.drain()
