"""Pure reconcile of a Service's EndpointSlices (what kube-controller-manager's
EndpointSlice controller computes in k8s.io/endpointslice reconciler.go).

Desired state: one endpoint per selected Pod that has an IP and is not terminal
(terminating Pods included, with conditions saying so), grouped by the Pod's resolved
port set, per address type. Existing slices are changed as little as possible:

1. in every existing slice, endpoints no longer desired are dropped and changed ones are
   replaced in place; a slice left empty is deleted;
2. remaining new endpoints first fill the slices already being updated (fullest first);
3. what is left goes into the unchanged slice closest to full that can take all of it,
   else into new slices of at most `max_endpoints`;
4. a Service with no endpoints at all keeps exactly one empty "placeholder" slice
   (ports: []) per address type, so consumers can tell "no endpoints" from "not synced";
5. topology hints follow spec.trafficDistribution (PreferClose: each ready endpoint is
   hinted for its own zone; otherwise hints are removed);
6. creates are recycled into updates of slices about to be deleted.

Slices for other port sets or address types, or owned by an older Service of the same
name, are deleted. Unchanged slices are not touched, so a single Pod turning unready
rewrites exactly the slice that holds it.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from svcnet.controllers import podendpoints as pe
from svcnet.controllers.podendpoints import Obj
from svcnet.controllers.slices import (EndpointKey, PortKey, SlicePlan, clone, endpoint_key,
                                       endpoints_equal_beyond_key, port_key, recycle,
                                       sorted_endpoints)

CONTROLLER_NAME = "endpointslice-controller.k8s.io"
MAX_ENDPOINTS_PER_SLICE = 100
_RESERVED = (pe.LABEL_SERVICE_NAME, pe.LABEL_MANAGED_BY, pe.LABEL_HEADLESS)


def endpoint_ports(service: Obj, pod: Obj) -> list[Obj]:
    """The slice ports this Pod offers for the Service, in Service port order.

    A Service port whose named targetPort the Pod does not declare is left out of this
    Pod's port set (the Pod lands in a slice without that port), as upstream
    getEndpointPorts does. Names are always present ("" when unnamed) because kubectl
    describe dereferences them.
    """
    spec = service.get("spec") or {}
    out: list[Obj] = []
    for sp in spec.get("ports") or []:
        num = pe.find_port(pod, sp)
        if num is None:
            continue
        port: Obj = {"name": sp.get("name") or "", "protocol": sp.get("protocol") or "TCP",
                     "port": num}
        if sp.get("appProtocol"):
            port["appProtocol"] = sp["appProtocol"]
        out.append(port)
    return out


def pod_to_endpoint(pod: Obj, node: Obj | None, service: Obj, address_type: str) -> Obj:
    """One endpoint for a Pod (upstream podToEndpoint).

    serving = Pod Ready; terminating = deletionTimestamp set; ready = serving and not
    terminating, or always for publishNotReadyAddresses.
    """
    serving = pe.is_ready(pod)
    terminating = pe.is_terminating(pod)
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    ready = publish or (serving and not terminating)
    ep: Obj = {"addresses": [ip for ip in pe.pod_ips(pod) if pe.ip_family(ip) == address_type],
               "conditions": {"ready": ready, "serving": serving, "terminating": terminating}}
    if pe.should_set_hostname(pod, service):
        ep["hostname"] = pod["spec"]["hostname"]
    ep["targetRef"] = pe.pod_ref(pod)
    node_name = (pod.get("spec") or {}).get("nodeName")
    if node_name:
        ep["nodeName"] = node_name
    zone = ((node or {}).get("metadata") or {}).get("labels", {}).get(
        "topology.kubernetes.io/zone")
    if zone:
        ep["zone"] = zone
    return ep


def slice_labels(existing: Mapping[str, str] | None, service: Obj,
                 controller: str = CONTROLLER_NAME) -> tuple[dict[str, str], bool]:
    """(labels the slice should carry, whether its non-reserved labels differ).

    A slice copies the Service's labels except the reserved ones (service-name, managed-by,
    headless), which the controller sets itself; a change of only the headless label does
    not by itself cause a write (upstream setEndpointSliceLabels).
    """
    def plain(labels: Mapping[str, str] | None) -> dict[str, str]:
        return {k: v for k, v in (labels or {}).items() if k not in _RESERVED}
    svc_labels = plain(service["metadata"].get("labels"))
    changed = plain(existing) != svc_labels
    out = dict(svc_labels)
    if pe.is_headless(service):
        out[pe.LABEL_HEADLESS] = ""
    out[pe.LABEL_SERVICE_NAME] = service["metadata"]["name"]
    out[pe.LABEL_MANAGED_BY] = controller
    return out, changed


def new_slice(service: Obj, ports: list[Obj], address_type: str,
              controller: str = CONTROLLER_NAME) -> Obj:
    meta = service["metadata"]
    labels, _ = slice_labels(None, service, controller)
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"generateName": f"{meta['name']}-", "namespace": meta.get("namespace"),
                         "labels": labels,
                         "ownerReferences": [pe.controller_ref(service, "Service")]},
            "addressType": address_type, "endpoints": [], "ports": [dict(p) for p in ports]}


def owned_by(slice_obj: Obj, service: Obj) -> bool:
    uid = service["metadata"].get("uid")
    return any(o.get("uid") == uid and o.get("kind") == "Service" and o.get("apiVersion") == "v1"
               for o in slice_obj["metadata"].get("ownerReferences") or [])


def _is_placeholder(existing: Obj, placeholder: Obj) -> bool:
    """Upstream placeholderSliceCompare: namespace, labels, owner references, address type,
    ports and endpoints equal (annotations and other metadata ignored)."""
    em, pm = existing["metadata"], placeholder["metadata"]
    return (em.get("namespace") == pm.get("namespace")
            and (em.get("labels") or {}) == pm["labels"]
            and (em.get("ownerReferences") or []) == pm["ownerReferences"]
            and existing.get("addressType") == placeholder["addressType"]
            and not existing.get("ports") and not existing.get("endpoints"))


def _wants_close_hints(service: Obj) -> bool:
    """trafficDistribution PreferClose (the only value v1.32 accepts), unless the older
    topology-mode annotation is set, which takes precedence upstream."""
    ann = service["metadata"].get("annotations") or {}
    mode = ann.get("service.kubernetes.io/topology-aware-hints",
                   ann.get("service.kubernetes.io/topology-mode"))
    return (service.get("spec") or {}).get("trafficDistribution") == "PreferClose" \
        and mode not in ("Auto", "auto")


def _close_hints(ep: Obj) -> Obj | None:
    """The hints PreferClose wants on an endpoint: its own zone, for ready endpoints with a
    zone; None means "no hints". Unready endpoints are left as they are."""
    return {"forZones": [{"name": ep["zone"]}]} if ep.get("zone") else None


def _reconcile_hints(service: Obj, plan: SlicePlan, unchanged: list[Obj]) -> None:
    """Upstream's trafficdist.ReconcileHints / RemoveHintsFromSlices, in place: slices being
    written get the hints the Service asks for; unchanged slices whose hints are wrong are
    added to the updates. (The topology-mode "Auto" heuristic, which needs per-zone CPU
    capacity, is not implemented: such Services get no hints.)"""
    close = _wants_close_hints(service)

    def fix(sl: Obj) -> bool:
        changed = False
        for ep in sl.get("endpoints") or []:
            if close and not (ep.get("conditions") or {}).get("ready"):
                continue
            want = _close_hints(ep) if close else None
            if ep.get("hints") != want:
                changed = True
                if want is None:
                    ep.pop("hints", None)
                else:
                    ep["hints"] = want
        return changed

    for sl in plan.create + plan.update:
        fix(sl)
    for sl in unchanged:
        copy_ = clone(sl)
        if fix(copy_):
            plan.update.append(copy_)


def _by_port_mapping(service: Obj, existing: list[Obj], desired: dict[EndpointKey, Obj],
                     ports: list[Obj], address_type: str, max_endpoints: int,
                     controller: str) -> SlicePlan:
    """Steps 1-3 of the module docstring for one port set."""
    plan = SlicePlan()
    updated: dict[str, Obj] = {}
    unchanged: list[Obj] = []
    for sl in sorted(existing, key=lambda s: s["metadata"]["name"]):
        kept: list[Obj] = []
        changed = False
        for ep in sl.get("endpoints") or []:
            want = desired.pop(endpoint_key(ep), None)
            if want is None:
                continue
            kept.append(want)
            changed = changed or not endpoints_equal_beyond_key(want, ep)
        labels, labels_changed = slice_labels(sl["metadata"].get("labels"), service, controller)
        if changed or len(kept) != len(sl.get("endpoints") or []):
            if not kept:
                plan.delete.append(sl)
                continue
            new = clone(sl)
            new["endpoints"] = kept
            new["metadata"]["labels"] = labels
            updated[sl["metadata"]["name"]] = new
        elif labels_changed:
            new = clone(sl)
            new["metadata"]["labels"] = labels
            updated[sl["metadata"]["name"]] = new
        else:
            unchanged.append(sl)

    remaining = sorted_endpoints(desired.values())
    # 2. fill slices that are being written anyway, fullest first
    for sl in sorted(updated.values(), key=lambda s: (-len(s["endpoints"]), s["metadata"]["name"])):
        room = max_endpoints - len(sl["endpoints"])
        if room > 0 and remaining:
            sl["endpoints"].extend(remaining[:room])
            remaining = remaining[room:]
    # 3. one unchanged slice that can take everything left, else new slices
    while remaining:
        target: Obj | None = None
        if len(remaining) < max_endpoints and unchanged:
            best = max_endpoints
            for sl in unchanged:
                diff = max_endpoints - (len(remaining) + len(sl.get("endpoints") or []))
                if 0 <= diff < best:
                    best, target = diff, sl
        if target is None:
            fresh = new_slice(service, ports, address_type, controller)
            fresh["endpoints"] = remaining[:max_endpoints]
            remaining = remaining[max_endpoints:]
            plan.create.append(fresh)
            continue
        unchanged.remove(target)
        new = clone(target)
        new.setdefault("endpoints", [])
        room = max_endpoints - len(new["endpoints"])
        new["endpoints"].extend(remaining[:room])
        remaining = remaining[room:]
        updated[new["metadata"]["name"]] = new
    plan.update = [updated[n] for n in sorted(updated)]
    return plan


def reconcile(service: Obj | None, pods: Iterable[Obj], nodes: Mapping[str, Obj],
              existing_slices: Iterable[Obj], *, max_endpoints: int = MAX_ENDPOINTS_PER_SLICE,
              trigger_time: str | None = None, controller: str = CONTROLLER_NAME) -> SlicePlan:
    """The plan that makes `existing_slices` (the slices this controller manages for the
    Service) match `service` and `pods` (the namespace's Pods; selection happens here).

    `nodes` maps Node name to Node (zone labels). A Pod whose Node is unknown is left out
    (named in `missing_nodes`, so the caller retries) unless publishNotReadyAddresses asks
    for every address. `trigger_time` becomes the last-change-trigger-time annotation of
    every slice created or updated (None removes it).

    With no Service, no selector, or type ExternalName, every slice is deleted. (Upstream
    leaves the slices of a Service whose selector was removed in place, issues.k8s.io/118376,
    and relies on garbage collection for deleted Services; svcnet deletes them so traffic
    never goes to Pods the Service no longer selects.)
    """
    existing = list(existing_slices)
    if service is None or not pe.manages_endpoints(service):
        return SlicePlan(delete=existing)
    families = pe.address_types(service)
    plan = SlicePlan(delete=[s for s in existing if s.get("addressType") not in families])
    selected = [p for p in pe.selected_pods(service, pods) if pe.should_be_in_endpoints(p, True)]
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    for family in families:
        mine = [s for s in existing if s.get("addressType") == family]
        fam_plan = SlicePlan(delete=[s for s in mine if not owned_by(s, service)])
        by_ports: dict[PortKey, list[Obj]] = {}
        for sl in mine:
            if owned_by(sl, service):
                by_ports.setdefault(port_key(sl.get("ports")), []).append(sl)
        desired: dict[PortKey, dict[EndpointKey, Obj]] = {}
        desired_ports: dict[PortKey, list[Obj]] = {}
        for pod in selected:
            ports = endpoint_ports(service, pod)
            pk = port_key(ports)
            group = desired.setdefault(pk, {})
            desired_ports.setdefault(pk, ports)
            node_name = (pod.get("spec") or {}).get("nodeName") or ""
            node = nodes.get(node_name) if node_name else None
            if node is None and not publish:
                if (pod["metadata"]["name"], node_name) not in plan.missing_nodes:
                    plan.missing_nodes.append((pod["metadata"]["name"], node_name))
                continue
            ep = pod_to_endpoint(pod, node, service, family)
            if ep["addresses"]:
                group[endpoint_key(ep)] = ep
        for pk in sorted(desired):
            sub = _by_port_mapping(service, by_ports.get(pk, []), desired[pk], desired_ports[pk],
                                   family, max_endpoints, controller)
            fam_plan.create += sub.create
            fam_plan.update += sub.update
            fam_plan.delete += sub.delete
        for pk in sorted(by_ports):
            if pk not in desired:
                fam_plan.delete += by_ports[pk]
        if len(mine) == len(fam_plan.delete) and not fam_plan.create:
            placeholder = new_slice(service, [], family, controller)
            if len(fam_plan.delete) == 1 and _is_placeholder(fam_plan.delete[0], placeholder):
                fam_plan.delete = []
            else:
                fam_plan.create.append(placeholder)
        touched = {s["metadata"]["name"] for s in fam_plan.update + fam_plan.delete}
        _reconcile_hints(service, fam_plan,
                         [s for s in mine if s["metadata"]["name"] not in touched])
        plan.create += fam_plan.create
        plan.update += fam_plan.update
        plan.delete += fam_plan.delete
    recycle(plan, lambda old: owned_by(old, service))
    if (service.get("metadata") or {}).get("deletionTimestamp"):
        plan.create = []  # don't race the garbage collector of a Service being deleted
    for sl in plan.create + plan.update:
        annotations = sl["metadata"].setdefault("annotations", {})
        if trigger_time:
            annotations[pe.ANNOTATION_TRIGGER_TIME] = trigger_time
        else:
            annotations.pop(pe.ANNOTATION_TRIGGER_TIME, None)
        if not annotations:
            del sl["metadata"]["annotations"]
    return plan
