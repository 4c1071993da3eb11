"""What a Service update keeps, carries over or clears before it is validated.

Kubernetes normalises Service updates so that clients which send back a partial spec (PUT
without clusterIP, `kubectl apply` of a manifest without nodePorts) keep their allocations,
and so that a type change drops what the new type may not have (reference/apiserver.md
§5.4): `patch_allocated_values`, `normalize_cluster_ips`, `drop_type_dependent_fields`.
Pure functions over (new, old) that change `new` in place.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]
EXTERNAL_TYPES = ("NodePort", "LoadBalancer")


def needs_cluster_ip(spec: Obj) -> bool:
    return spec.get("type", "ClusterIP") != "ExternalName"


def needs_node_ports(spec: Obj) -> bool:
    """NodePort Services, and LoadBalancers unless allocateLoadBalancerNodePorts is false."""
    stype = spec.get("type")
    if stype == "NodePort":
        return True
    return stype == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts", True) is not False


def needs_health_check_port(spec: Obj) -> bool:
    return spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


def _has_node_ports(spec: Obj) -> bool:
    """The strategy's needsNodePort: NodePort and LoadBalancer Services may hold node ports
    (even with allocateLoadBalancerNodePorts false, which only stops automatic picks)."""
    return spec.get("type") in EXTERNAL_TYPES


def _externally_accessible(spec: Obj) -> bool:
    """apiservice.ExternallyAccessible: NodePort, LoadBalancer, or ClusterIP with externalIPs."""
    return spec.get("type") in EXTERNAL_TYPES or (
        spec.get("type") == "ClusterIP" and bool(spec.get("externalIPs")))


def _node_ports(spec: Obj) -> set[int]:
    return {p["nodePort"] for p in spec.get("ports") or [] if p.get("nodePort")}


def patch_allocated_values(new: Obj, old: Obj) -> None:
    """Carry allocations the client left out over from `old`."""
    ns, os_ = new.setdefault("spec", {}), old.get("spec") or {}
    if needs_cluster_ip(os_) and needs_cluster_ip(ns):
        if not ns.get("clusterIP") and os_.get("clusterIP"):
            ns["clusterIP"] = os_["clusterIP"]
        if not ns.get("clusterIPs") and os_.get("clusterIPs"):
            ns["clusterIPs"] = list(os_["clusterIPs"])
    if _has_node_ports(os_) and _has_node_ports(ns):
        used = _node_ports(os_) & _node_ports(ns)
        by_name = {p.get("name", ""): p.get("nodePort", 0) for p in os_.get("ports") or []}
        for p in ns.get("ports") or []:
            if not p.get("nodePort"):
                old_port = by_name.get(p.get("name", ""), 0)
                if old_port and old_port not in used:
                    p["nodePort"] = old_port
    if needs_health_check_port(os_) and needs_health_check_port(ns):
        if not ns.get("healthCheckNodePort") and os_.get("healthCheckNodePort"):
            ns["healthCheckNodePort"] = os_["healthCheckNodePort"]


def normalize_cluster_ips(new: Obj, old: Obj) -> None:
    """Keep clusterIP and clusterIPs[0] in step when a client changed only one of them."""
    ns, os_ = new.setdefault("spec", {}), old.get("spec") or {}
    if ns.get("type") == "ExternalName":
        return
    ip_changed = ns.get("clusterIP", "") != os_.get("clusterIP", "")
    ips_changed = (ns.get("clusterIPs") or []) != (os_.get("clusterIPs") or [])
    if ip_changed and not ips_changed:
        if ns.get("clusterIP"):
            ns["clusterIPs"] = [ns["clusterIP"]]  # validation then says "may not change"
        else:
            ns.pop("clusterIPs", None)


def drop_type_dependent_fields(new: Obj, old: Obj) -> None:
    """Clear what the new type cannot have, where the client left the old value as it was."""
    ns, os_ = new.setdefault("spec", {}), old.get("spec") or {}
    ntype, otype = ns.get("type"), os_.get("type")
    if ntype == "ExternalName" and otype != "ExternalName":
        for f in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            if ns.get(f) == os_.get(f):
                ns.pop(f, None)
    if _has_node_ports(os_) and not _has_node_ports(ns):
        if _node_ports(ns) <= _node_ports(os_):  # the client added no new node port
            for p in ns.get("ports") or []:
                p.pop("nodePort", None)
    if needs_health_check_port(os_) and not needs_health_check_port(ns):
        if ns.get("healthCheckNodePort") == os_.get("healthCheckNodePort"):
            ns.pop("healthCheckNodePort", None)
    if otype == "LoadBalancer" and ntype != "LoadBalancer":
        if ns.get("allocateLoadBalancerNodePorts") == os_.get("allocateLoadBalancerNodePorts"):
            ns.pop("allocateLoadBalancerNodePorts", None)
        if ns.get("loadBalancerClass") == os_.get("loadBalancerClass"):
            ns.pop("loadBalancerClass", None)
        status = new.get("status")
        if isinstance(status, dict):
            status["loadBalancer"] = {}
    if _externally_accessible(os_) and not _externally_accessible(ns):
        if ns.get("externalTrafficPolicy") == os_.get("externalTrafficPolicy"):
            ns.pop("externalTrafficPolicy", None)
    if ntype == "ExternalName":
        ns.pop("internalTrafficPolicy", None) if ns.get("internalTrafficPolicy") == \
            os_.get("internalTrafficPolicy") else None


def normalize_update(new: Obj, old: Obj) -> None:
    """All update-time normalisation, in Kubernetes' order."""
    patch_allocated_values(new, old)
    normalize_cluster_ips(new, old)
    drop_type_dependent_fields(new, old)
