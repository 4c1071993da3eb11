"""Recording core/v1 Events, aggregated the way Kubernetes' event recorder does.

Users debug Services and Deployments through `kubectl describe` and `kubectl get events`,
which show Events whose involvedObject is the object. Repeats of the same (object, type,
reason, message) update one Event's count and lastTimestamp instead of piling up.
`event_for` is pure; `EventRecorder` does the writes and never fails its caller (an Event
that cannot be written must not break reconciliation).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Any

from svcnet.api import errors
from svcnet.api.kinds import kind_for
from svcnet.client.api import ApiClient, Obj

log = logging.getLogger("svcnet.events")
EVENTS = kind_for("", "events")


def _rfc3339(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def involved_object(obj: Obj) -> dict[str, Any]:
    meta = obj["metadata"]
    ref = {"kind": obj.get("kind", ""), "namespace": meta.get("namespace", ""),
           "name": meta["name"], "uid": meta.get("uid", ""),
           "apiVersion": obj.get("apiVersion", ""),
           "resourceVersion": meta.get("resourceVersion", "")}
    return {k: v for k, v in ref.items() if v}


def event_for(obj: Obj, ev_type: str, reason: str, message: str, component: str,
              now: datetime, host: str = "") -> Obj:
    """A new Event about `obj` (namespace: the object's, or default for cluster objects)."""
    meta = obj["metadata"]
    ts = _rfc3339(now)
    source: dict[str, str] = {"component": component}
    if host:
        source["host"] = host
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{meta['name']}.{time.time_ns():x}",
                     "namespace": meta.get("namespace") or "default"},
        "involvedObject": involved_object(obj), "reason": reason, "message": message,
        "type": ev_type, "source": source, "count": 1, "firstTimestamp": ts,
        "lastTimestamp": ts, "reportingComponent": component,
    }


class EventRecorder:
    """Writes Events for one component, aggregating repeats."""

    def __init__(self, client: ApiClient, component: str, host: str = "") -> None:
        self.client = client
        self.component = component
        self.host = host
        # (object uid, type, reason, message) -> (event namespace, name)
        self._seen: dict[tuple[str, str, str, str], tuple[str, str]] = {}

    async def record(self, obj: Obj, ev_type: str, reason: str, message: str) -> None:
        now = datetime.now(timezone.utc)
        key = (obj["metadata"].get("uid", obj["metadata"]["name"]), ev_type, reason, message)
        try:
            seen = self._seen.get(key)
            if seen is not None:
                ns, name = seen
                try:
                    cur = await self.client.get(EVENTS, ns, name)
                    await self.client.patch(EVENTS, ns, name, {
                        "count": int(cur.get("count") or 1) + 1,
                        "lastTimestamp": _rfc3339(now)})
                    return
                except errors.StatusError as e:
                    if e.reason != "NotFound":
                        raise
            ev = event_for(obj, ev_type, reason, message, self.component, now, self.host)
            await self.client.create(EVENTS, ev["metadata"]["namespace"], ev)
            self._seen[key] = (ev["metadata"]["namespace"], ev["metadata"]["name"])
            if len(self._seen) > 4096:
                self._seen.pop(next(iter(self._seen)))
        except Exception as e:
            log.warning("could not record event %s/%s: %s", reason, message, e)
