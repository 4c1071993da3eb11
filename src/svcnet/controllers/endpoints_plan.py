"""Pure reconcile of a Service's legacy core/v1 Endpoints object (what upstream's
pkg/controller/endpoint computes), plus the subset canonicalisation it and the mirroring
controller share.

Endpoints group addresses into subsets: each subset is a set of addresses (ready ones in
`addresses`, others in `notReadyAddresses`) that all serve the same set of ports. The
canonical ("repacked") form has one subset per distinct address set, addresses sorted by
IP then Pod UID. Upstream orders ports and subsets by an md5 of Go's debug dump of the
values, which cannot be reproduced outside Go; svcnet orders them by (port, name,
protocol) and by their first address instead, which is just as deterministic.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Iterable

from svcnet.controllers import podendpoints as pe
from svcnet.controllers.podendpoints import Obj

MAX_CAPACITY = 1000
_PortKey = tuple[str, int, str, str]


def _pkey(port: Obj) -> _PortKey:
    return (str(port.get("name") or ""), int(port.get("port") or 0),
            str(port.get("protocol") or "TCP"), str(port.get("appProtocol") or ""))


def _addr_key(addr: Obj) -> tuple[str, str]:
    return (str(addr.get("ip") or ""), str((addr.get("targetRef") or {}).get("uid") or ""))


def _addr_sort(addr: Obj) -> tuple[bytes, int, str]:
    """Upstream LessEndpointAddress: IP bytes, then no-targetRef first, then UID."""
    ref = addr.get("targetRef")
    return (str(addr.get("ip") or "").encode(), 0 if ref is None else 1,
            str((ref or {}).get("uid") or ""))


def _port_sort(port: Obj) -> tuple[int, str, str, str]:
    name, num, proto, app = _pkey(port)
    return (num, name, proto, app)


def repack(subsets: Iterable[Obj]) -> list[Obj]:
    """Canonical form of `subsets` (upstream RepackSubsets): ports that share exactly the
    same addresses (with the same readiness) form one subset. An address listed as not
    ready for a port anywhere is not ready for that port. Port-less subsets (headless
    Services without ports) keep their addresses in a subset without ports."""
    first: dict[tuple[str, str], Obj] = {}
    by_port: dict[_PortKey | None, dict[tuple[str, str], bool]] = {}
    port_objs: dict[_PortKey, Obj] = {}
    for ss in subsets:
        ports: list[Obj | None] = [*(ss.get("ports") or [])] or [None]
        for port in ports:
            pk = _pkey(port) if port is not None else None
            if port is not None:
                port_objs.setdefault(pk, dict(port))  # type: ignore[arg-type]
            readiness = by_port.setdefault(pk, {})
            for field, ready in (("addresses", True), ("notReadyAddresses", False)):
                for addr in ss.get(field) or []:
                    ak = _addr_key(addr)
                    first.setdefault(ak, addr)
                    if readiness.get(ak, True):
                        readiness[ak] = ready
    groups: dict[frozenset[tuple[tuple[str, str], bool]], list[Obj]] = {}
    for pk, readiness in by_port.items():
        group = groups.setdefault(frozenset(readiness.items()), [])
        if pk is not None:
            group.append(port_objs[pk])
    out: list[Obj] = []
    for members, group_ports in groups.items():
        if not members:
            continue
        ready_addrs = sorted((copy.deepcopy(first[a]) for a, r in members if r), key=_addr_sort)
        unready = sorted((copy.deepcopy(first[a]) for a, r in members if not r), key=_addr_sort)
        subset: Obj = {}
        if ready_addrs:
            subset["addresses"] = ready_addrs
        if unready:
            subset["notReadyAddresses"] = unready
        if group_ports:
            subset["ports"] = sorted(group_ports, key=_port_sort)
        out.append(subset)
    return sorted(out, key=_subset_sort)


def _subset_sort(ss: Obj) -> tuple[Any, ...]:
    first = (ss.get("addresses") or ss.get("notReadyAddresses") or [{}])[0]
    return (tuple(_port_sort(p) for p in ss.get("ports") or []), _addr_sort(first))


def truncate(subsets: list[Obj], capacity: int = MAX_CAPACITY) -> bool:
    """Cut `subsets` (in place) to at most `capacity` addresses, as upstream
    truncateEndpoints: ready addresses are kept before not-ready ones, and what is kept is
    shared between subsets in proportion to their size (rounded up, so the last subset
    may get less). True when something was cut."""
    total_ready = sum(len(ss.get("addresses") or []) for ss in subsets)
    total_not = sum(len(ss.get("notReadyAddresses") or []) for ss in subsets)
    if total_ready + total_not <= capacity:
        return False
    cut_ready = total_ready > capacity
    limit = capacity if cut_ready else capacity - total_ready
    total = total_ready if cut_ready else total_not
    left = limit
    for ss in subsets:
        field = "addresses" if cut_ready else "notReadyAddresses"
        n = len(ss.get(field) or [])
        take = min(math.ceil(n / total * limit) if total else 0, left)
        if ss.get(field):
            ss[field] = ss[field][:take]
        if cut_ready:
            ss.pop("notReadyAddresses", None)
        left -= len(ss.get(field) or [])
        if not ss.get(field):
            ss.pop(field, None)
    # A subset left with no address at all would fail validation ("must specify addresses
    # or notReadyAddresses"); upstream keeps it and the write fails, svcnet drops it.
    subsets[:] = [ss for ss in subsets if ss.get("addresses") or ss.get("notReadyAddresses")]
    return True


def pod_address(service: Obj, pod: Obj) -> Obj | None:
    """The EndpointAddress for a Pod: its first IP of the Service's primary family
    (upstream podToEndpointAddressForService), None when it has none."""
    families = (service.get("spec") or {}).get("ipFamilies") or []
    ips = pe.pod_ips(pod)
    if families:
        family = families[0]
    elif not pe.is_headless(service):
        family = pe.ip_family(service["spec"]["clusterIP"])
    else:
        family = pe.ip_family(ips[0]) if ips else "IPv4"
    ip = next((i for i in ips if pe.ip_family(i) == family), None)
    if ip is None:
        return None
    addr: Obj = {"ip": ip}
    if pe.should_set_hostname(pod, service):
        addr["hostname"] = pod["spec"]["hostname"]
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        addr["nodeName"] = node
    addr["targetRef"] = pe.pod_ref(pod)
    return addr


def reconcile(service: Obj, pods: Iterable[Obj], *, trigger_time: str | None = None) -> Obj | None:
    """The Endpoints object the Service should have, or None when the controller must leave
    its Endpoints alone (no selector: they are managed by hand; ExternalName: none).

    `pods` may be all of the namespace's Pods; selection happens here. Ready Pods go to
    `addresses`, unready ones to `notReadyAddresses`; terminating Pods are left out unless
    publishNotReadyAddresses (which also makes every address ready). A Service port whose
    named targetPort a Pod does not declare gets no address for that Pod. Over
    MAX_CAPACITY addresses are truncated and annotated `over-capacity: truncated`.
    """
    if not pe.manages_endpoints(service):
        return None
    spec = service.get("spec") or {}
    publish = bool(spec.get("publishNotReadyAddresses"))
    raw: list[Obj] = []
    for pod in pe.selected_pods(service, pods):
        if not pe.should_be_in_endpoints(pod, publish):
            continue
        addr = pod_address(service, pod)
        if addr is None:
            continue
        field = "addresses" if publish or pe.is_ready(pod) else "notReadyAddresses"
        if not spec.get("ports"):
            if spec.get("clusterIP") == "None":
                raw.append({field: [addr]})
            continue
        for sp in spec["ports"]:
            num = pe.find_port(pod, sp)
            if num is None:
                continue
            port: Obj = {"name": sp.get("name") or "", "port": num,
                         "protocol": sp.get("protocol") or "TCP"}
            if sp.get("appProtocol"):
                port["appProtocol"] = sp["appProtocol"]
            raw.append({field: [addr], "ports": [port]})
    subsets = repack(raw)
    meta = service["metadata"]
    labels = dict(meta.get("labels") or {})
    if pe.is_headless(service):
        labels[pe.LABEL_HEADLESS] = ""
    annotations: dict[str, str] = {}
    if trigger_time:
        annotations[pe.ANNOTATION_TRIGGER_TIME] = trigger_time
    if truncate(subsets):
        annotations[pe.ANNOTATION_OVER_CAPACITY] = "truncated"
    out_meta: Obj = {"name": meta["name"], "namespace": meta.get("namespace")}
    if labels:
        out_meta["labels"] = labels
    if annotations:
        out_meta["annotations"] = annotations
    out: Obj = {"apiVersion": "v1", "kind": "Endpoints", "metadata": out_meta}
    if subsets:
        out["subsets"] = subsets
    return out


def _strip_ref_rv(subsets: list[Obj]) -> list[Obj]:
    out = copy.deepcopy(subsets)
    for ss in out:
        for field in ("addresses", "notReadyAddresses"):
            for addr in ss.get(field) or []:
                if isinstance(addr.get("targetRef"), dict):
                    addr["targetRef"].pop("resourceVersion", None)
    return out


def to_write(current: Obj | None, desired: Obj) -> Obj | None:
    """What to write so `current` becomes `desired`, or None when nothing would change
    (upstream skips the write when subsets, labels and the capacity annotation agree; the
    trigger-time annotation alone never causes a write).

    The result keeps everything else of `current` (other annotations, resourceVersion for
    optimistic concurrency); labels are replaced by the Service's, as upstream does.
    """
    want_ann = desired["metadata"].get("annotations") or {}
    if current is not None:
        cur_labels = {k: v for k, v in (current["metadata"].get("labels") or {}).items()
                      if k != pe.LABEL_HEADLESS}
        want_labels = {k: v for k, v in (desired["metadata"].get("labels") or {}).items()
                       if k != pe.LABEL_HEADLESS}
        cur_ann = current["metadata"].get("annotations") or {}
        if (_strip_ref_rv(current.get("subsets") or []) == desired.get("subsets", [])
                and cur_labels == want_labels
                and (pe.ANNOTATION_OVER_CAPACITY in cur_ann)
                == (pe.ANNOTATION_OVER_CAPACITY in want_ann)):
            return None
        out = copy.deepcopy(current)
    else:
        out = {"apiVersion": "v1", "kind": "Endpoints",
               "metadata": {"name": desired["metadata"]["name"],
                            "namespace": desired["metadata"].get("namespace")}}
    meta = out["metadata"]
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k not in (pe.ANNOTATION_TRIGGER_TIME, pe.ANNOTATION_OVER_CAPACITY)}
    annotations.update(want_ann)
    meta["annotations"] = annotations
    if not annotations:
        del meta["annotations"]
    meta["labels"] = dict(desired["metadata"].get("labels") or {})
    if not meta["labels"]:
        del meta["labels"]
    out.pop("subsets", None)
    if desired.get("subsets"):
        out["subsets"] = copy.deepcopy(desired["subsets"])
    return out
