"""The `endpoints.kubernetes.io/last-change-trigger-time` annotation, as upstream computes it.

kube-proxy and SLO tooling read this annotation on Endpoints and EndpointSlices to measure
"time from the change that caused this endpoint update to the update being programmed".
Upstream (k8s.io/endpointslice util TriggerTimeTracker) remembers, per Service, the
trigger times it saw at the previous sync: each selected Pod's Ready-condition
lastTransitionTime and the Service's creationTimestamp. A sync reports the earliest trigger
time that moved since then; the first sync of a Service (including the first after a
controller restart) reports the Service's creationTimestamp; no movement means no
annotation (the controllers then remove it from what they write).

The tracker is per controller, keyed by Service; callers must not call `compute` for the
same key concurrently (the work queue guarantees that).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterable

from svcnet.controllers.podendpoints import Obj, ready_transition_time


def parse_time(value: str | None) -> datetime | None:
    """An RFC 3339 timestamp as an aware datetime; None for missing or unparsable."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def format_rfc3339_nano(t: datetime) -> str:
    """Go's time.RFC3339Nano in UTC: fractional seconds only when non-zero, trailing zeros
    trimmed, `Z` for UTC."""
    t = t.astimezone(timezone.utc)
    base = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond:
        base += "." + f"{t.microsecond:06d}".rstrip("0")
    return base + "Z"


@dataclass
class _State:
    service_time: datetime | None = None
    pod_times: dict[str, datetime] = field(default_factory=dict)


class TriggerTimeTracker:
    """Per-Service memory of trigger times between syncs (see the module docstring)."""

    def __init__(self) -> None:
        self._states: dict[str, _State] = {}

    def compute(self, key: str, service: Obj, pods: Iterable[Obj]) -> str | None:
        """The annotation value for this sync of `key`, or None for "no annotation".

        Always updates the remembered state, so a sync that ends up writing nothing still
        consumes the changes it saw (as upstream does).
        """
        state = self._states.get(key)
        known = state is not None
        old = state or _State()
        changed: datetime | None = None
        pod_times: dict[str, datetime] = {}
        for pod in pods:
            t = parse_time(ready_transition_time(pod))
            if t is None:
                continue
            name = pod["metadata"]["name"]
            pod_times[name] = t
            prev = old.pod_times.get(name)
            if prev is None or t > prev:
                changed = t if changed is None or t < changed else changed
        svc_time = parse_time(service["metadata"].get("creationTimestamp"))
        if svc_time is not None and (old.service_time is None or svc_time > old.service_time):
            changed = svc_time if changed is None or svc_time < changed else changed
        self._states[key] = _State(svc_time, pod_times)
        if not known:
            return format_rfc3339_nano(svc_time) if svc_time is not None else None
        return format_rfc3339_nano(changed) if changed is not None else None

    def forget(self, key: str) -> None:
        self._states.pop(key, None)
