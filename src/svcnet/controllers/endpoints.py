"""The Endpoints controller: Services with selectors -> core/v1 Endpoints.

`reconcile` (endpoints_plan.py) is pure; `EndpointsController` is the runner, keyed by
Service (`<ns>/<name>`, which is also the Endpoints' key). Like upstream's
pkg/controller/endpoint it:

- writes only when subsets, labels or the capacity annotation change;
- never touches the Endpoints of a Service without selector (those are the user's), nor of
  an ExternalName Service;
- deletes the Endpoints when the Service is deleted;
- at startup, looks at every existing Endpoints object and deletes those whose Service no
  longer exists (Services deleted while the controller was down), sparing leader-election
  records; later, it reacts only to deletions of Endpoints (recreating managed ones).

It does not set `endpointslice.kubernetes.io/skip-mirror`: upstream's Endpoints controller
never does; the mirroring controller skips these Endpoints because their Service has a
selector.
"""

from __future__ import annotations

import logging

from svcnet.api import errors
from svcnet.api.kinds import kind_for
from svcnet.client.api import ApiClient
from svcnet.controllers import podendpoints as pe
from svcnet.controllers.base import SharedInformers
from svcnet.controllers.endpoints_plan import MAX_CAPACITY, reconcile, repack, to_write
from svcnet.controllers.endpointslice import ServicePodsController
from svcnet.controllers.events import EventRecorder
from svcnet.controllers.podendpoints import Obj
from svcnet.controllers.triggertime import TriggerTimeTracker
from svcnet.controllers.writetracker import WriteTracker, namespace_terminating

__all__ = ["EndpointsController", "reconcile", "repack", "to_write", "MAX_CAPACITY"]

log = logging.getLogger("svcnet.controllers.endpoints")
ENDPOINTS = kind_for("", "endpoints")


class EndpointsController(ServicePodsController):
    name = "endpoint-controller"
    stale_retry_delay: float = 0.1

    def __init__(self, client: ApiClient, informers: SharedInformers) -> None:
        super().__init__(informers)
        self.client = client
        self.endpoints = informers.get(ENDPOINTS)
        self.recorder = EventRecorder(client, "endpoint-controller")
        self.tracker = WriteTracker()
        self.trigger_times = TriggerTimeTracker()
        self.endpoints.add_handler(self._on_endpoints)

    def _on_endpoints(self, ev_type: str, old: Obj | None, new: Obj | None) -> None:
        obj = new or old
        assert obj is not None
        foreign = self.tracker.is_foreign(ev_type, obj)
        key = f"{obj['metadata'].get('namespace')}/{obj['metadata']['name']}"
        if ev_type == "DELETED" and foreign:
            self.queue.add(key)  # recreate it if its Service still selects Pods
        elif ev_type == "ADDED" and not self.endpoints.synced.is_set():
            # the initial list: upstream's checkLeftoverEndpoints, which finds Endpoints
            # whose Service went away while the controller was not running
            if pe.ANNOTATION_LEADER not in (obj["metadata"].get("annotations") or {}):
                self.queue.add(key)

    async def sync(self, key: str) -> None:
        namespace, _, name = key.partition("/")
        service = self.services.get(namespace, name)
        current = self.endpoints.get(namespace, name)
        if self.tracker.stale(key, [current] if current is not None else []):
            self.queue.add_after(key, self.stale_retry_delay)
            return
        if service is None:
            self.trigger_times.forget(key)
            try:
                await self.client.delete(ENDPOINTS, namespace, name)
                if current is not None:
                    self.tracker.deleted(key, current)
            except errors.StatusError as e:
                if e.code != 404:
                    raise
            return
        if not pe.manages_endpoints(service):
            self.trigger_times.forget(key)
            return
        pods = pe.selected_pods(service, pe.candidate_pods(service, self.pods))
        trigger = self.trigger_times.compute(key, service, pods)
        desired = reconcile(service, pods, trigger_time=trigger)
        assert desired is not None
        obj = to_write(current, desired)
        if obj is None:
            return
        log.debug("%s: %s Endpoints", key, "create" if current is None else "update")
        try:
            if current is None:
                written = await self.client.create(ENDPOINTS, namespace, obj)
            else:
                written = await self.client.update(ENDPOINTS, namespace, obj)
        except errors.StatusError as e:
            if current is None and namespace_terminating(e):
                return
            if e.reason not in ("Conflict", "AlreadyExists"):
                if current is None:  # upstream's event texts
                    reason = "FailedToCreateEndpoint"
                    msg = f"Failed to create endpoint for service {namespace}/{name}: {e.message}"
                else:
                    reason = "FailedToUpdateEndpoint"
                    msg = f"Failed to update endpoint {namespace}/{name}: {e.message}"
                await self.recorder.record(obj, "Warning", reason, msg)
            raise
        self.tracker.wrote(key, written)
