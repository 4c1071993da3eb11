"""What a Pod contributes to a Service's endpoints: membership, readiness, IPs, ports.

Shared by the Endpoints and EndpointSlice controllers (and the Service diagnosis), which
must agree on these facts exactly as kube-controller-manager's two controllers do
(k8s.io/endpointslice util: ShouldPodBeInEndpoints, IsPodReady, ShouldSetHostname,
FindPort). All functions are pure and read plain wire objects (dicts).
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from svcnet.api.selectors import from_label_selector, matches

if TYPE_CHECKING:
    from svcnet.client.informer import Informer

Obj = dict[str, Any]

LABEL_SERVICE_NAME = "kubernetes.io/service-name"
LABEL_MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
LABEL_HEADLESS = "service.kubernetes.io/headless"
LABEL_SKIP_MIRROR = "endpointslice.kubernetes.io/skip-mirror"
ANNOTATION_TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
ANNOTATION_OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"
ANNOTATION_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
ANNOTATION_LEADER = "control-plane.alpha.kubernetes.io/leader"


def _spec(obj: Obj | None) -> Obj:
    return (obj or {}).get("spec") or {}


def _status(obj: Obj | None) -> Obj:
    return (obj or {}).get("status") or {}


def selector_of(service: Obj) -> dict[str, str] | None:
    """The Service's selector, or None when it has none.

    An empty map counts as none: Kubernetes stores Services as protobuf, where an empty
    map and a nil map are the same bytes, so `selector: {}` reads back as nil and the
    controllers treat it as "endpoints are managed by hand".
    """
    sel = _spec(service).get("selector")
    return dict(sel) if sel else None


def manages_endpoints(service: Obj) -> bool:
    """True when the endpoint controllers compute this Service's endpoints: it has a
    selector and is not ExternalName (ExternalName gets no endpoints; issues.k8s.io/105986)."""
    return _spec(service).get("type") != "ExternalName" and selector_of(service) is not None


def selects(service: Obj, pod: Obj) -> bool:
    """Does the Service's selector match the Pod (same namespace, labels ⊇ selector)?"""
    sel = selector_of(service)
    if sel is None:
        return False
    if (pod.get("metadata") or {}).get("namespace") != service["metadata"].get("namespace"):
        return False
    return matches(from_label_selector({"matchLabels": sel}),
                   (pod.get("metadata") or {}).get("labels"))


def selected_pods(service: Obj, pods: Iterable[Obj]) -> list[Obj]:
    """The Pods the Service selects, sorted by name so every result is deterministic."""
    sel = selector_of(service)
    if sel is None:
        return []
    ns = service["metadata"].get("namespace")
    compiled = from_label_selector({"matchLabels": sel})  # once, not once per Pod
    return sorted((p for p in pods if (p.get("metadata") or {}).get("namespace") == ns
                   and matches(compiled, (p.get("metadata") or {}).get("labels"))),
                  key=lambda p: p["metadata"]["name"])


# Informer indices, so a Service finds its Pods (and a Pod its Services) without scanning
# the namespace: Pods by (namespace, label key, value); Services by their selector pairs.
POD_LABELS_INDEX = "namespace-label"
SERVICE_SELECTOR_INDEX = "namespace-selector"


def pod_label_pairs(pod: Obj) -> list[tuple[str, str, str]]:
    meta = pod.get("metadata") or {}
    ns = meta.get("namespace") or ""
    return [(ns, k, v) for k, v in (meta.get("labels") or {}).items()]


def service_selector_pairs(service: Obj) -> list[tuple[str, str, str]]:
    ns = service["metadata"].get("namespace") or ""
    return [(ns, k, v) for k, v in (selector_of(service) or {}).items()]


def candidate_pods(service: Obj, pods: "Informer") -> list[Obj]:
    """A superset of the Pods `service` selects: those carrying its rarest selector pair
    (the informer must have POD_LABELS_INDEX)."""
    pairs = service_selector_pairs(service)
    if not pairs:
        return []
    rarest = min(pairs, key=lambda pair: pods.index_size(POD_LABELS_INDEX, pair))
    return pods.by_index(POD_LABELS_INDEX, rarest)


def is_terminal(pod: Obj) -> bool:
    """Succeeded or Failed: the Pod will never run again (distinct from terminating)."""
    return _status(pod).get("phase") in ("Succeeded", "Failed")


def is_terminating(pod: Obj) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def is_ready(pod: Obj) -> bool:
    """The Pod's Ready condition is True (the kubelet's verdict, probes included)."""
    for cond in _status(pod).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def ready_transition_time(pod: Obj) -> str | None:
    """lastTransitionTime of the Ready condition: the Pod's endpoint "trigger time"."""
    for cond in _status(pod).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("lastTransitionTime") or None
    return None


def pod_ips(pod: Obj) -> list[str]:
    """status.podIPs in order, falling back to status.podIP (some agents set only that).
    Each is re-stringified in canonical form; unparsable strings are dropped."""
    status = _status(pod)
    raw = [str(p.get("ip") or "") for p in status.get("podIPs") or []]
    if not any(raw) and status.get("podIP"):
        raw = [str(status["podIP"])]
    out: list[str] = []
    for ip in raw:
        try:
            out.append(str(ipaddress.ip_address(ip)))
        except ValueError:
            continue
    return out


def should_be_in_endpoints(pod: Obj, include_terminating: bool) -> bool:
    """Upstream ShouldPodBeInEndpoints: not terminal, has an IP, and (unless
    `include_terminating`) not being deleted. EndpointSlices include terminating Pods (with
    conditions saying so); Endpoints include them only for publishNotReadyAddresses."""
    if is_terminal(pod):
        return False
    status = _status(pod)
    if not status.get("podIP") and not status.get("podIPs"):
        return False
    return include_terminating or not is_terminating(pod)


def should_set_hostname(pod: Obj, service: Obj) -> bool:
    """Hostname is published only when spec.subdomain names this Service (same namespace):
    that is what gives the Pod the DNS name <hostname>.<service>.<ns>.svc."""
    spec = _spec(pod)
    return bool(spec.get("hostname")) and spec.get("subdomain") == service["metadata"]["name"] \
        and (pod.get("metadata") or {}).get("namespace") == service["metadata"].get("namespace")


def ip_family(ip: str) -> str:
    return "IPv6" if ipaddress.ip_address(ip).version == 6 else "IPv4"


def find_port(pod: Obj, service_port: Mapping[str, Any]) -> int | None:
    """The Pod's port number for a Service port, or None when the Pod has no such port.

    A numeric targetPort is used as is. A named one is looked up among the ports of the
    Pod's containers (name AND protocol must match), then of its sidecars (init containers
    with restartPolicy Always), as upstream FindPort does.
    """
    target = service_port.get("targetPort")
    if target is None or target == "" or target == 0:
        target = service_port.get("port")
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    protocol = service_port.get("protocol") or "TCP"
    spec = _spec(pod)
    containers = list(spec.get("containers") or [])
    containers += [c for c in spec.get("initContainers") or []
                   if c.get("restartPolicy") == "Always"]
    for c in containers:
        for p in c.get("ports") or []:
            if p.get("name") == target and (p.get("protocol") or "TCP") == protocol:
                return int(p["containerPort"])
    return None


def is_headless(service: Obj) -> bool:
    """No cluster IP (None or unset): the Endpoints/EndpointSlices carry the headless label."""
    return _spec(service).get("clusterIP") in (None, "", "None")


def address_types(service: Obj) -> list[str]:
    """The EndpointSlice address types a Service wants, from spec.ipFamilies.

    Without ipFamilies (an object from an older server) a headful Service uses its
    cluster IP's family and a headless one gets both, as upstream getAddressTypesForService.
    """
    spec = _spec(service)
    fams = [f for f in ("IPv4", "IPv6") if f in (spec.get("ipFamilies") or [])]
    if fams:
        return fams
    cip = spec.get("clusterIP")
    if cip and cip != "None":
        try:
            return [ip_family(cip)]
        except ValueError:
            return ["IPv4"]
    return ["IPv4", "IPv6"]


def controller_ref(owner: Obj, kind: str) -> Obj:
    """metav1.NewControllerRef for a core/v1 owner."""
    meta = owner["metadata"]
    return {"apiVersion": "v1", "kind": kind, "name": meta["name"], "uid": meta.get("uid", ""),
            "controller": True, "blockOwnerDeletion": True}


def pod_ref(pod: Obj) -> Obj:
    """The targetRef an endpoint carries (no resourceVersion: it would churn on every Pod
    status write without changing anything a consumer needs)."""
    meta = pod["metadata"]
    ref = {"kind": "Pod", "namespace": meta.get("namespace", ""), "name": meta["name"],
           "uid": meta.get("uid", "")}
    return {k: v for k, v in ref.items() if v}
