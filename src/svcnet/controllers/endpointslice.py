"""The EndpointSlice controller: Services with selectors -> EndpointSlices.

`reconcile` (endpointslice_plan.py) is the pure part; `EndpointSliceController` is the
runner: it keys work by Service (`<ns>/<name>`), reads Services, Pods, Nodes and its own
slices from shared informer caches, applies the plan, and records Events: a Warning
naming the cause when a Service has no usable endpoints (service_diagnosis.py), and
FailedToUpdateEndpointSlices when a write fails.

What triggers a sync, as upstream plus what svcnet needs:
- any Service event;
- a Pod event that can change membership or an endpoint (labels, readiness, IPs,
  deletionTimestamp, phase, hostname/subdomain, node): the Services whose selector
  matches the old or the new labels;
- a Node appearing, disappearing or changing its zone label: the Services selecting Pods
  on it (upstream only refreshes topology hints; svcnet keeps `zone` current);
- an event on a slice this controller manages that is not the echo of its own write (a
  hand edit or deletion is repaired).

A cache that has not caught up with the controller's own writes (WriteTracker) makes the
sync wait and retry instead of acting, which is what prevents duplicate slices.
"""

from __future__ import annotations

import logging
import time
from typing import Iterator, Mapping

from svcnet.api import errors
from svcnet.api.kinds import kind_for
from svcnet.client.api import ApiClient
from svcnet.client.informer import Informer
from svcnet.controllers import podendpoints as pe
from svcnet.controllers.base import Controller, SharedInformers
from svcnet.controllers.endpointslice_plan import (CONTROLLER_NAME, MAX_ENDPOINTS_PER_SLICE,
                                                   reconcile)
from svcnet.controllers.events import EventRecorder
from svcnet.controllers.podendpoints import Obj
from svcnet.controllers.service_diagnosis import Diagnosis, diagnose
from svcnet.controllers.slices import SlicePlan
from svcnet.controllers.triggertime import TriggerTimeTracker
from svcnet.controllers.writetracker import WriteTracker, namespace_terminating

__all__ = ["EndpointSliceController", "SlicePlan", "reconcile", "CONTROLLER_NAME"]

log = logging.getLogger("svcnet.controllers.endpointslice")



SERVICES = kind_for("", "services")
PODS = kind_for("", "pods")
NODES = kind_for("", "nodes")
SLICES = kind_for("discovery.k8s.io", "endpointslices")


class NodeView(Mapping[str, Obj]):
    """The Node informer's cache as the `nodes` mapping reconcile reads (no copying)."""

    def __init__(self, informer: Informer) -> None:
        self._inf = informer

    def __getitem__(self, name: str) -> Obj:
        node = self._inf.get(None, name)
        if node is None:
            raise KeyError(name)
        return node

    def __iter__(self) -> Iterator[str]:
        return (n["metadata"]["name"] for n in self._inf.list())

    def __len__(self) -> int:
        return len(self._inf.list())


def pod_change_matters(old: Obj, new: Obj) -> bool:
    """Could this Pod update change any Service's endpoints (upstream podEndpointsChanged,
    plus phase and node, which svcnet's agents may set late)?"""
    if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
        return False
    o_spec, n_spec = old.get("spec") or {}, new.get("spec") or {}
    return ((old["metadata"].get("labels") or {}) != (new["metadata"].get("labels") or {})
            or pe.is_terminating(old) != pe.is_terminating(new)
            or pe.is_ready(old) != pe.is_ready(new)
            or pe.pod_ips(old) != pe.pod_ips(new)
            or pe.is_terminal(old) != pe.is_terminal(new)
            or any(o_spec.get(f) != n_spec.get(f) for f in ("hostname", "subdomain", "nodeName")))


SLICE_SERVICE_INDEX = "namespace-service-name"


def _slice_service(slice_: Obj) -> list[tuple[str, str]]:
    """Index a slice under (namespace, its kubernetes.io/service-name label)."""
    meta = slice_["metadata"]
    svc = (meta.get("labels") or {}).get(pe.LABEL_SERVICE_NAME)
    return [(meta.get("namespace") or "", svc)] if svc else []


def services_for_pods(services: Informer, namespace: str, *pods: Obj) -> set[str]:
    """Keys of the Services in `namespace` whose selector matches any of `pods` (candidates
    come from the SERVICE_SELECTOR_INDEX: Services sharing at least one label pair)."""
    candidates: dict[str, Obj] = {}
    for p in pods:
        for pair in pe.pod_label_pairs(p):
            for svc in services.by_index(pe.SERVICE_SELECTOR_INDEX, pair):
                candidates[svc["metadata"]["name"]] = svc
    return {f"{namespace}/{name}" for name, svc in candidates.items()
            if any(pe.selects(svc, p) for p in pods)}


def _zone(node: Obj | None) -> str:
    return str(((node or {}).get("metadata") or {}).get("labels", {}).get(
        "topology.kubernetes.io/zone", ""))


async def apply_slice_plan(client: ApiClient, tracker: WriteTracker, key: str,
                           plan: SlicePlan) -> None:
    """Write a plan: creates, updates, then deletes (so a Service never passes through
    having no slice mid-way), recording each write in `tracker` under `key`. Updates carry
    the resourceVersion they were computed from, so a concurrent change is a Conflict and
    a retry, never a lost write. Creates refused because the namespace is terminating are
    dropped, as upstream does."""
    if not plan.empty:
        log.debug("%s: create %d, update %d, delete %d EndpointSlices", key, len(plan.create),
                  len(plan.update), len(plan.delete))
    for obj in plan.create:
        try:
            created = await client.create(SLICES, obj["metadata"].get("namespace"), obj)
        except errors.StatusError as e:
            if namespace_terminating(e):
                return
            raise
        tracker.wrote(key, created)
    for obj in plan.update:
        tracker.wrote(key, await client.update(SLICES, obj["metadata"].get("namespace"), obj))
    for obj in plan.delete:
        meta = obj["metadata"]
        try:
            await client.delete(SLICES, meta.get("namespace"), meta["name"], uid=meta.get("uid"))
        except errors.StatusError as e:
            if e.code == 409:
                continue  # the name now belongs to a newer slice: not ours to delete
            if e.code != 404:
                raise
        tracker.deleted(key, obj)


class ServicePodsController(Controller):
    """Base of the controllers keyed by Service ("ns/name") that follow the Pods each
    Service selects: a Service event queues that Service; a Pod event that can change
    endpoints queues the Services selecting the Pod before or after the change."""

    def __init__(self, informers: SharedInformers) -> None:
        super().__init__()
        self.services = informers.get(SERVICES)
        self.pods = informers.get(PODS)
        self.pods.add_index(pe.POD_LABELS_INDEX, pe.pod_label_pairs)
        self.services.add_index(pe.SERVICE_SELECTOR_INDEX, pe.service_selector_pairs)
        self.services.add_handler(self._on_service)
        self.pods.add_handler(self._on_pod)

    def _on_service(self, ev_type: str, old: Obj | None, new: Obj | None) -> None:
        obj = new or old
        assert obj is not None
        self.queue.add(f"{obj['metadata'].get('namespace')}/{obj['metadata']['name']}")

    def _on_pod(self, ev_type: str, old: Obj | None, new: Obj | None) -> None:
        if old is not None and new is not None and not pod_change_matters(old, new):
            return
        pods = [p for p in (old, new) if p is not None]
        ns = pods[0]["metadata"].get("namespace") or ""
        self.enqueue_all(services_for_pods(self.services, ns, *pods))


class EndpointSliceController(ServicePodsController):
    name = "endpointslice-controller"
    max_endpoints: int = MAX_ENDPOINTS_PER_SLICE
    # Upstream waits at least 1s after a slice event before resyncing, letting a burst of
    # slice changes settle in the cache.
    slice_event_delay: float = 1.0
    stale_retry_delay: float = 0.1
    missing_node_retry: float = 5.0
    # A diagnosis must persist this long before it becomes an event, so a Service applied
    # just before its Deployment, or Pods still starting, do not produce warnings.
    diagnosis_delay: float = 10.0

    def __init__(self, client: ApiClient, informers: SharedInformers) -> None:
        super().__init__(informers)
        self.client = client
        self.nodes = informers.get(NODES)
        self.slices = informers.get(SLICES)
        self.slices.add_index(SLICE_SERVICE_INDEX, _slice_service)
        # upstream's event source component (what `kubectl describe svc` shows under From)
        self.recorder = EventRecorder(client, "endpoint-slice-controller")
        self.tracker = WriteTracker()
        self.trigger_times = TriggerTimeTracker()
        # service key -> (cause key, first seen (monotonic), already reported)
        self._diagnoses: dict[str, tuple[str, float, bool]] = {}
        self._missing_node_retries: dict[str, int] = {}
        self.nodes.add_handler(self._on_node)
        self.slices.add_handler(self._on_slice)

    # --- event handlers: decide which Services to sync -------------------------------------

    def _on_node(self, ev_type: str, old: Obj | None, new: Obj | None) -> None:
        if ev_type == "MODIFIED" and _zone(old) == _zone(new):
            return
        node_name = (new or old or {})["metadata"]["name"]
        on_node = [p for p in self.pods.list()
                   if (p.get("spec") or {}).get("nodeName") == node_name]
        for ns in {p["metadata"].get("namespace") or "" for p in on_node}:
            self.enqueue_all(services_for_pods(
                self.services, ns, *[p for p in on_node if p["metadata"].get("namespace") == ns]))

    def _on_slice(self, ev_type: str, old: Obj | None, new: Obj | None) -> None:
        def ours(s: Obj | None) -> bool:
            labels = (s or {}).get("metadata", {}).get("labels") or {}
            return s is not None and labels.get(pe.LABEL_MANAGED_BY) == CONTROLLER_NAME
        obj = new or old
        assert obj is not None
        if not (ours(old) or ours(new)):
            return
        foreign = self.tracker.is_foreign(ev_type, obj)
        names = {((s or {}).get("metadata") or {}).get("labels", {}).get(pe.LABEL_SERVICE_NAME)
                 for s in (old, new) if s is not None}
        # a slice moved to another Service, or into/out of this controller's hands, concerns
        # both sides even when this controller made the change
        if not (foreign or len(names) > 1 or ours(old) != ours(new)):
            return
        for svc in names:
            if svc:
                self.queue.add_after(f"{obj['metadata'].get('namespace')}/{svc}",
                                     self.slice_event_delay)

    # --- sync ------------------------------------------------------------------------------

    def managed_slices(self, namespace: str, name: str) -> list[Obj]:
        """This controller's slices for the Service, minus those already being deleted."""
        want = {pe.LABEL_SERVICE_NAME: name, pe.LABEL_MANAGED_BY: CONTROLLER_NAME}
        found: list[Obj] = sorted(self.slices.by_index(SLICE_SERVICE_INDEX, (namespace, name)),
                       key=lambda s: s["metadata"]["name"])
        return [s for s in found
                if all((s["metadata"].get("labels") or {}).get(k) == v for k, v in want.items())
                and not s["metadata"].get("deletionTimestamp")]

    async def sync(self, key: str) -> None:
        namespace, _, name = key.partition("/")
        service = self.services.get(namespace, name)
        slices = self.managed_slices(namespace, name)
        if self.tracker.stale(key, slices):
            self.queue.add_after(key, self.stale_retry_delay)
            return
        if service is None:
            self.trigger_times.forget(key)
            self._diagnoses.pop(key, None)
            self._missing_node_retries.pop(key, None)
            await apply_slice_plan(self.client, self.tracker, key, SlicePlan(delete=slices))
            return
        pods = pe.selected_pods(service, pe.candidate_pods(service, self.pods))
        trigger = None
        if pe.manages_endpoints(service):
            trigger = self.trigger_times.compute(key, service, pods)
        else:
            self.trigger_times.forget(key)
        plan = reconcile(service, pods, NodeView(self.nodes), slices,
                         max_endpoints=self.max_endpoints, trigger_time=trigger)
        try:
            await apply_slice_plan(self.client, self.tracker, key, plan)
        except errors.StatusError as e:
            if e.reason != "Conflict":
                await self.recorder.record(
                    service, "Warning", "FailedToUpdateEndpointSlices",
                    f"Error updating Endpoint Slices for Service {namespace}/{name}: {e.message}")
            raise
        if plan.missing_nodes:
            # upstream reports these as a failed sync (event + retry with backoff)
            errs = [f"skipping Pod {pod} for Service {namespace}/{name}: Node {node} Not Found"
                    for pod, node in plan.missing_nodes]
            detail = errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]"
            await self.recorder.record(
                service, "Warning", "FailedToUpdateEndpointSlices",
                f"Error updating Endpoint Slices for Service {namespace}/{name}: {detail}")
            # Node events resync the Service too; this backed-off retry is the safety net
            n = self._missing_node_retries.get(key, 0)
            self._missing_node_retries[key] = n + 1
            self.queue.add_after(key, min(self.missing_node_retry * 2 ** n, 300.0))
        else:
            self._missing_node_retries.pop(key, None)
        await self._report(key, service, diagnose(service, pods))

    async def _report(self, key: str, service: Obj, diagnosis: Diagnosis | None) -> None:
        """Record a Warning for a diagnosis once it has persisted `diagnosis_delay` seconds,
        and again only when the cause changes."""
        if diagnosis is None:
            self._diagnoses.pop(key, None)
            return
        now = time.monotonic()
        cause, since, reported = self._diagnoses.get(key, ("", now, False))
        if cause != diagnosis.key:
            since, reported = now, False
        if not reported:
            waited = now - since
            if waited >= self.diagnosis_delay:
                await self.recorder.record(service, "Warning", diagnosis.reason, diagnosis.message)
                reported = True
            else:
                self.queue.add_after(key, self.diagnosis_delay - waited)
        self._diagnoses[key] = (diagnosis.key, since, reported)
