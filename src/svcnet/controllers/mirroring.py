"""The EndpointSlice mirroring controller: hand-made Endpoints -> EndpointSlices.

A Service without a selector gets its endpoints from an Endpoints object its user writes
(an external database, a process outside the cluster). Consumers such as kube-proxy read
EndpointSlices only, so upstream's pkg/controller/endpointslicemirroring mirrors such
Endpoints into slices labelled `managed-by: endpointslicemirroring-controller.k8s.io`,
owned by the Endpoints object. Endpoints are mirrored when their Service exists and has no
selector, and they carry neither `endpointslice.kubernetes.io/skip-mirror: "true"` (the
`kubernetes` Service's Endpoints do) nor a leader-election annotation.

Mirroring is simpler than the EndpointSlice controller: each (address type, port set) of
the repacked subsets maps to exactly one slice holding at most `max_endpoints_per_subset`
(1000) addresses; extra slices are deleted; a slice is rewritten whole when anything in it,
or the Endpoints' labels/annotations it copies, changed. Invalid IPs and addresses over the
limit are skipped with Warning events on the Endpoints.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable

from svcnet.client.api import ApiClient
from svcnet.controllers import podendpoints as pe
from svcnet.controllers.base import Controller, SharedInformers
from svcnet.controllers.endpoints import ENDPOINTS
from svcnet.controllers.endpoints_plan import repack
from svcnet.controllers.endpointslice import SERVICES, SLICES, apply_slice_plan
from svcnet.controllers.events import EventRecorder
from svcnet.controllers.podendpoints import Obj
from svcnet.controllers.slices import (EndpointKey, PortKey, SlicePlan, endpoint_key,
                                       endpoints_equal_beyond_key, port_key, recycle,
                                       sorted_endpoints)
from svcnet.controllers.writetracker import WriteTracker

__all__ = ["EndpointSliceMirroringController", "reconcile", "should_mirror", "CONTROLLER_NAME"]

CONTROLLER_NAME = "endpointslicemirroring-controller.k8s.io"
MAX_ENDPOINTS_PER_SUBSET = 1000
_NOT_COPIED = (pe.ANNOTATION_TRIGGER_TIME, pe.ANNOTATION_LAST_APPLIED)


def should_mirror(endpoints: Obj | None) -> bool:
    """Not opted out by the skip-mirror label, not a leader-election record."""
    if endpoints is None:
        return False
    meta = endpoints["metadata"]
    return (meta.get("labels") or {}).get(pe.LABEL_SKIP_MIRROR) != "true" \
        and pe.ANNOTATION_LEADER not in (meta.get("annotations") or {})


def _copied_annotations(endpoints: Obj) -> dict[str, str]:
    return {k: v for k, v in (endpoints["metadata"].get("annotations") or {}).items()
            if k not in _NOT_COPIED}


def mirrored_slice(endpoints: Obj, ports: list[Obj], address_type: str,
                   endpoint_list: list[Obj], existing: Obj | None = None) -> Obj:
    """A slice mirroring part of `endpoints`: the Endpoints' labels (plus service-name and
    managed-by) and annotations (minus trigger time and last-applied), owned by the
    Endpoints. With `existing` it takes over that slice's name and resourceVersion."""
    meta = endpoints["metadata"]
    labels = dict(meta.get("labels") or {})
    labels[pe.LABEL_SERVICE_NAME] = meta["name"]
    labels[pe.LABEL_MANAGED_BY] = CONTROLLER_NAME
    out_meta: Obj = {"namespace": meta.get("namespace"), "labels": labels,
                     "ownerReferences": [pe.controller_ref(endpoints, "Endpoints")]}
    annotations = _copied_annotations(endpoints)
    if annotations:
        out_meta["annotations"] = annotations
    if existing is None:
        out_meta["generateName"] = f"{meta['name']}-"
    else:
        out_meta["name"] = existing["metadata"]["name"]
        if existing["metadata"].get("resourceVersion"):
            out_meta["resourceVersion"] = existing["metadata"]["resourceVersion"]
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": out_meta,
            "addressType": address_type, "endpoints": endpoint_list,
            "ports": [dict(p) for p in ports]}


def address_to_endpoint(address: Obj, ready: bool) -> tuple[Obj, str] | None:
    """(endpoint, address type) for an EndpointAddress; None when its IP is invalid."""
    try:
        ip = ipaddress.ip_address(str(address.get("ip") or ""))
    except ValueError:
        return None
    ep: Obj = {"addresses": [str(ip)], "conditions": {"ready": ready}}
    if address.get("hostname"):
        ep["hostname"] = address["hostname"]
    if address.get("targetRef"):
        ep["targetRef"] = dict(address["targetRef"])
    if address.get("nodeName"):
        ep["nodeName"] = address["nodeName"]
    return ep, "IPv6" if ip.version == 6 else "IPv4"


def _unchanged(existing: Obj, desired: dict[EndpointKey, Obj], endpoints: Obj) -> bool:
    """Upstream's early return: same endpoints (beyond key too), same copied labels and
    annotations."""
    current = existing.get("endpoints") or []
    seen = 0
    for ep in current:
        want = desired.get(endpoint_key(ep))
        if want is None or not endpoints_equal_beyond_key(want, ep):
            return False
        seen += 1
    labels = {k: v for k, v in (existing["metadata"].get("labels") or {}).items()
              if k not in (pe.LABEL_SERVICE_NAME, pe.LABEL_MANAGED_BY)}
    return (seen == len(desired)
            and labels == (endpoints["metadata"].get("labels") or {})
            and (existing["metadata"].get("annotations") or {}) == _copied_annotations(endpoints))


def reconcile(endpoints: Obj | None, service: Obj | None, existing_slices: Iterable[Obj], *,
              max_endpoints_per_subset: int = MAX_ENDPOINTS_PER_SUBSET) -> SlicePlan:
    """The plan that makes the mirrored slices of one Endpoints object match it.

    Everything is deleted when the Endpoints or the Service is gone, the Service has a
    selector (its slices come from the EndpointSlice controller), or the Endpoints opt
    out (`should_mirror`).
    """
    existing = list(existing_slices)
    if endpoints is None or service is None or pe.selector_of(service) is not None \
            or not should_mirror(endpoints):
        return SlicePlan(delete=existing)
    plan = SlicePlan()
    desired: dict[tuple[str, PortKey], dict[EndpointKey, Obj]] = {}
    ports_of: dict[tuple[str, PortKey], list[Obj]] = {}
    invalid = skipped = 0
    for ss in repack(endpoints.get("subsets") or []):
        ports = [{"name": p.get("name") or "", "protocol": p.get("protocol") or "TCP",
                  "port": p.get("port"), **({"appProtocol": p["appProtocol"]}
                                            if p.get("appProtocol") else {})}
                 for p in ss.get("ports") or []]
        pk = port_key(ports)
        for family in ("IPv4", "IPv6"):
            desired.setdefault((family, pk), {})
            ports_of[(family, pk)] = ports
        addresses = [(a, True) for a in ss.get("addresses") or []] + \
            [(a, False) for a in ss.get("notReadyAddresses") or []]
        added = 0
        for address, ready in addresses:
            if added >= max_endpoints_per_subset:
                break
            converted = address_to_endpoint(address, ready)
            if converted is None:
                invalid += 1
                continue
            ep, family = converted
            desired[(family, pk)][endpoint_key(ep)] = ep
            added += 1
        skipped += len(addresses) - added
    if invalid:
        plan.warnings.append(("InvalidIPAddress", f"Skipped {invalid} invalid IP addresses "
                                                  f"when mirroring to EndpointSlices"))
    if skipped > invalid:
        plan.warnings.append((
            "TooManyAddressesToMirror",
            f"A max of {max_endpoints_per_subset} addresses can be mirrored to EndpointSlices "
            f"per Endpoints subset. {skipped} addresses were skipped"))

    by_key: dict[tuple[str, PortKey], list[Obj]] = {}
    for sl in sorted(existing, key=lambda s: s["metadata"]["name"]):
        by_key.setdefault((sl.get("addressType") or "", port_key(sl.get("ports"))), []).append(sl)
    for key in sorted(desired):
        want = desired[key]
        current = by_key.get(key, [])
        if not want:
            plan.delete += current
            continue
        first = current[0] if current else None
        plan.delete += current[1:]
        if first is not None and _unchanged(first, want, endpoints):
            continue
        eps = sorted_endpoints(want.values())[:max_endpoints_per_subset]
        new = mirrored_slice(endpoints, ports_of[key], key[0], eps, first)
        (plan.update if first is not None else plan.create).append(new)
    for key in sorted(by_key):
        if key not in desired:
            plan.delete += by_key[key]
    recycle(plan)
    if endpoints["metadata"].get("deletionTimestamp"):
        plan.create = []
    return plan


class EndpointSliceMirroringController(Controller):
    name = "endpointslicemirroring-controller"
    stale_retry_delay: float = 0.1

    def __init__(self, client: ApiClient, informers: SharedInformers) -> None:
        super().__init__()
        self.client = client
        self.services = informers.get(SERVICES)
        self.endpoints = informers.get(ENDPOINTS)
        self.slices = informers.get(SLICES)
        self.recorder = EventRecorder(client, "endpoint-slice-mirroring-controller")
        self.tracker = WriteTracker()
        self.services.add_handler(self._on_service)
        self.endpoints.add_handler(self._on_endpoints)
        self.slices.add_handler(self._on_slice)

    @staticmethod
    def _key(obj: Obj) -> str:
        return f"{obj['metadata'].get('namespace')}/{obj['metadata']['name']}"

    def _on_service(self, ev_type: str, old: Obj | None, new: Obj | None) -> None:
        """Only Services that are (or stop being) selector-less matter here."""
        if ev_type == "MODIFIED" and old is not None and new is not None:
            if (pe.selector_of(old) is None) != (pe.selector_of(new) is None):
                self.queue.add(self._key(new))
            return
        obj = new or old
        if obj is not None and pe.selector_of(obj) is None:
            self.queue.add(self._key(obj))

    def _on_endpoints(self, ev_type: str, old: Obj | None, new: Obj | None) -> None:
        if should_mirror(old) or should_mirror(new):
            obj = new or old
            assert obj is not None
            self.queue.add(self._key(obj))

    def _on_slice(self, ev_type: str, old: Obj | None, new: Obj | None) -> None:
        def ours(s: Obj | None) -> bool:
            return s is not None and \
                (s["metadata"].get("labels") or {}).get(pe.LABEL_MANAGED_BY) == CONTROLLER_NAME
        obj = new or old
        assert obj is not None
        if not (ours(old) or ours(new)):
            return
        foreign = self.tracker.is_foreign(ev_type, obj)
        moved = old is not None and new is not None and ours(old) != ours(new)
        names = {((s or {}).get("metadata") or {}).get("labels", {}).get(pe.LABEL_SERVICE_NAME)
                 for s in (old, new)}
        if old is not None and new is not None and len(names) > 1:
            moved = True
        if foreign or moved:
            for svc in names:
                if svc:
                    self.queue.add(f"{obj['metadata'].get('namespace')}/{svc}")

    def mirrored_slices(self, namespace: str, name: str) -> list[Obj]:
        """The slices this controller mirrored for `name`, minus those being deleted."""
        want = {pe.LABEL_SERVICE_NAME: name, pe.LABEL_MANAGED_BY: CONTROLLER_NAME}
        return [s for s in self.slices.list(namespace)
                if all((s["metadata"].get("labels") or {}).get(k) == v for k, v in want.items())
                and not s["metadata"].get("deletionTimestamp")]

    async def sync(self, key: str) -> None:
        namespace, _, name = key.partition("/")
        slices = self.mirrored_slices(namespace, name)
        if self.tracker.stale(key, slices):
            self.queue.add_after(key, self.stale_retry_delay)
            return
        endpoints = self.endpoints.get(namespace, name)
        plan = reconcile(endpoints, self.services.get(namespace, name), slices)
        await apply_slice_plan(self.client, self.tracker, key, plan)
        if endpoints is not None:
            for reason, message in plan.warnings:
                await self.recorder.record(endpoints, "Warning", reason, message)
        if endpoints is None and not slices:
            self.tracker.forget(key)
