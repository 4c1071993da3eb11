"""Service validation with Kubernetes' field paths and messages (reference/apiserver.md §5.2).

Rules that need the allocators (`provided IP is already allocated`, node port ranges of
the running server) are checked by the allocators; everything decidable from the object
(and the old object, for updates) is here. Registered into api.validation on import.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from svcnet.api import names
from svcnet.api.errors import (FieldError, duplicate, forbidden, invalid, not_supported,
                               required)
from svcnet.api.validation import register

Obj = dict[str, Any]
TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
PROTOCOLS = ["SCTP", "TCP", "UDP"]
_IANA_SVC_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
_HAS_LETTER = re.compile(r"[a-z]")


def _port_name_errors(name: str) -> list[str]:
    """IANA_SVC_NAME rules used for named targetPorts (RFC 6335)."""
    errs = []
    if len(name) > 15:
        errs.append("must be no more than 15 characters")
    if not _IANA_SVC_NAME.fullmatch(name):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if "--" in name:
        errs.append("must not contain consecutive hyphens")
    if not _HAS_LETTER.search(name):
        errs.append("must contain at least one letter (a-z)")
    return errs


def _valid_port(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


def _ports(spec: Obj, stype: str) -> list[FieldError]:
    errs: list[FieldError] = []
    ports = spec.get("ports") or []
    headless = spec.get("clusterIP") == "None"
    if not ports and stype != "ExternalName" and not headless:
        errs.append(required("spec.ports"))
    names_seen: set[str] = set()
    port_proto: set[tuple[Any, Any]] = set()
    node_ports: set[tuple[Any, Any]] = set()
    for i, p in enumerate(ports):
        path = f"spec.ports[{i}]"
        name = p.get("name") or ""
        if len(ports) > 1 and not name:
            errs.append(required(f"{path}.name"))
        elif name:
            errs += [invalid(f"{path}.name", name, m) for m in names.dns1123_label(name)]
            if name in names_seen:
                errs.append(duplicate(f"{path}.name", name))
            names_seen.add(name)
        port = p.get("port")
        if not _valid_port(port):
            errs.append(invalid(f"{path}.port", port, "must be between 1 and 65535, inclusive"))
        proto = p.get("protocol")
        if not proto:
            errs.append(required(f"{path}.protocol"))
        elif proto not in PROTOCOLS:
            errs.append(not_supported(f"{path}.protocol", proto, PROTOCOLS))
        tp = p.get("targetPort")
        if isinstance(tp, str) and not tp.isdigit():
            errs += [invalid(f"{path}.targetPort", tp, m) for m in _port_name_errors(tp)]
        elif tp is not None:
            n = int(tp)
            if not 1 <= n <= 65535:
                errs.append(invalid(f"{path}.targetPort", n,
                                    "must be between 1 and 65535, inclusive"))
        np = p.get("nodePort") or 0
        if np:
            if stype == "ClusterIP":
                errs.append(forbidden(f"{path}.nodePort",
                                      "may not be used when `type` is 'ClusterIP'"))
            elif not _valid_port(np):
                errs.append(invalid(f"{path}.nodePort", np,
                                    "must be between 1 and 65535, inclusive"))
            elif (proto, np) in node_ports:
                errs.append(duplicate(f"{path}.nodePort", np))
            node_ports.add((proto, np))
        key = (port, proto)
        if key in port_proto:
            errs.append(FieldError("Duplicate", path, omit_value=True,
                                   detail=f"port {port}/{proto} is listed more than once"))
        port_proto.add(key)
        app = p.get("appProtocol")
        if app:
            errs += [invalid(f"{path}.appProtocol", app, m) for m in names.qualified_name(app)]
    return errs


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _cluster_ips(spec: Obj, stype: str) -> list[FieldError]:
    errs: list[FieldError] = []
    cip = spec.get("clusterIP") or ""
    cips = spec.get("clusterIPs") or []
    if stype == "ExternalName":
        if cip:
            errs.append(forbidden("spec.clusterIPs", "may not be set for ExternalName services"))
        for f in ("ipFamilies", "ipFamilyPolicy"):
            if spec.get(f):
                errs.append(forbidden(f"spec.{f}", "may not be set for ExternalName services"))
        return errs
    if cip and not cips:
        errs.append(required("spec.clusterIPs"))
    elif cip and cips and cips[0] != cip:
        errs.append(invalid("spec.clusterIPs", cips, "first value must match `clusterIP`"))
    elif not cip and cips:
        errs.append(invalid("spec.clusterIPs", cips, "must be empty when `clusterIP` is not "
                            "specified"))
    if len(cips) > 2:
        errs.append(invalid("spec.clusterIPs", cips, "may only hold up to 2 values"))
    for i, v in enumerate(cips):
        if v == "None":
            if i != 0 or len(cips) > 1:
                errs.append(invalid(f"spec.clusterIPs[{i}]", v,
                                    "must be the only value when set to 'None'"))
            elif stype in ("NodePort", "LoadBalancer"):
                errs.append(invalid("spec.clusterIPs[0]", v,
                                    f"may not be set to 'None' for {stype} services"))
        elif _ip(v) is None:
            errs.append(invalid(f"spec.clusterIPs[{i}]", v, "must be a valid IP address, "
                                "(e.g. 10.9.8.7 or 2001:db8::ffff)"))
    fams = spec.get("ipFamilies") or []
    for i, fam in enumerate(fams):
        if fam not in ("IPv4", "IPv6"):
            errs.append(not_supported(f"spec.ipFamilies[{i}]", fam, ["IPv4", "IPv6"]))
        elif fam in fams[:i]:
            errs.append(duplicate(f"spec.ipFamilies[{i}]", fam))
    policy = spec.get("ipFamilyPolicy")
    if policy and policy not in ("SingleStack", "PreferDualStack", "RequireDualStack"):
        errs.append(not_supported("spec.ipFamilyPolicy", policy,
                                  ["PreferDualStack", "RequireDualStack", "SingleStack"]))
    return errs


def _affinity(spec: Obj) -> list[FieldError]:
    errs: list[FieldError] = []
    aff = spec.get("sessionAffinity")
    cfg = spec.get("sessionAffinityConfig")
    if not aff:
        errs.append(required("spec.sessionAffinity"))
    elif aff not in ("ClientIP", "None"):
        errs.append(not_supported("spec.sessionAffinity", aff, ["ClientIP", "None"]))
    elif aff == "None" and cfg:
        errs.append(forbidden("spec.sessionAffinityConfig",
                              "must not be set when session affinity is None"))
    elif aff == "ClientIP":
        timeout = ((cfg or {}).get("clientIP") or {}).get("timeoutSeconds")
        if timeout is None:
            errs.append(required("spec.sessionAffinityConfig.clientIP.timeoutSeconds"))
        elif not isinstance(timeout, int) or not 0 < timeout <= 86400:
            errs.append(invalid("spec.sessionAffinityConfig.clientIP.timeoutSeconds", timeout,
                                "must be greater than 0 and less than 86400"))
    return errs


def _traffic(spec: Obj, stype: str) -> list[FieldError]:
    errs: list[FieldError] = []
    external = stype in ("NodePort", "LoadBalancer") or bool(spec.get("externalIPs"))
    etp = spec.get("externalTrafficPolicy")
    if etp and not external:
        errs.append(invalid("spec.externalTrafficPolicy", etp,
                            "may only be set for externally-accessible services"))
    elif external and not etp:
        errs.append(required("spec.externalTrafficPolicy"))
    elif etp and etp not in ("Cluster", "Local"):
        errs.append(not_supported("spec.externalTrafficPolicy", etp, ["Cluster", "Local"]))
    itp = spec.get("internalTrafficPolicy")
    if stype != "ExternalName":
        if not itp:
            errs.append(required("spec.internalTrafficPolicy"))
        elif itp not in ("Cluster", "Local"):
            errs.append(not_supported("spec.internalTrafficPolicy", itp, ["Cluster", "Local"]))
    hc = spec.get("healthCheckNodePort")
    if hc and not (stype == "LoadBalancer" and etp == "Local"):
        errs.append(invalid("spec.healthCheckNodePort", hc,
                            "may only be set when `type` is 'LoadBalancer' and "
                            "`externalTrafficPolicy` is 'Local'"))
    td = spec.get("trafficDistribution")
    if td and td != "PreferClose":
        errs.append(not_supported("spec.trafficDistribution", td, ["PreferClose"]))
    return errs


def _load_balancer(spec: Obj, stype: str) -> list[FieldError]:
    errs: list[FieldError] = []
    lb = stype == "LoadBalancer"
    ranges = spec.get("loadBalancerSourceRanges") or []
    if ranges and not lb:
        errs.append(forbidden("spec.loadBalancerSourceRanges",
                              "may only be used when `type` is 'LoadBalancer'"))
    for i, r in enumerate(ranges):
        try:
            ipaddress.ip_network(r.strip(), strict=False)
        except ValueError:
            errs.append(invalid(f"spec.loadBalancerSourceRanges[{i}]", r,
                                "must be a valid CIDR (e.g. 10.0.0.0/8)"))
    if "allocateLoadBalancerNodePorts" in spec and not lb:
        errs.append(forbidden("spec.allocateLoadBalancerNodePorts",
                              "may only be used when `type` is 'LoadBalancer'"))
    elif lb and spec.get("allocateLoadBalancerNodePorts") is None:
        errs.append(required("spec.allocateLoadBalancerNodePorts"))
    if spec.get("loadBalancerClass") and not lb:
        errs.append(forbidden("spec.loadBalancerClass",
                              "may only be used when `type` is 'LoadBalancer'"))
    return errs


def validate_service(obj: Obj, old: Obj | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errs: list[FieldError] = []
    stype = spec.get("type")
    if not stype:
        errs.append(required("spec.type"))
        return errs
    if stype not in TYPES:
        errs.append(not_supported("spec.type", stype, TYPES))
        return errs
    if stype == "ExternalName":
        ext = (spec.get("externalName") or "").removesuffix(".")
        if not ext:
            errs.append(required("spec.externalName"))
        else:
            errs += [invalid("spec.externalName", spec["externalName"], m)
                     for m in names.dns1123_subdomain(ext)]
    errs += _ports(spec, stype)
    errs += _cluster_ips(spec, stype)
    errs += _affinity(spec)
    errs += _traffic(spec, stype)
    errs += _load_balancer(spec, stype)
    for i, ip in enumerate(spec.get("externalIPs") or []):
        parsed = _ip(ip)
        if parsed is None:
            errs.append(invalid(f"spec.externalIPs[{i}]", ip, "must be a valid IP address, "
                                "(e.g. 10.9.8.7 or 2001:db8::ffff)"))
        elif parsed.is_unspecified or parsed.is_loopback or parsed.is_link_local or \
                parsed.is_multicast:
            errs.append(invalid(f"spec.externalIPs[{i}]", ip, "may not be in the loopback, "
                                "link-local, multicast or unspecified range"))
    errs += names.validate_labels(spec.get("selector") or {}, "spec.selector")
    if old is not None:
        errs += _update_rules(spec, old.get("spec") or {}, stype)
    return errs


def _update_rules(spec: Obj, ospec: Obj, stype: str) -> list[FieldError]:
    """clusterIP immutability, skipped across ExternalName as Kubernetes does."""
    if stype == "ExternalName" or ospec.get("type") == "ExternalName":
        return []
    old_ips, new_ips = ospec.get("clusterIPs") or [], spec.get("clusterIPs") or []
    if old_ips and not new_ips:
        return [invalid("spec.clusterIPs[0]", "", "primary clusterIP can not be unset")]
    if old_ips and new_ips and old_ips[0] != new_ips[0]:
        return [invalid("spec.clusterIPs[0]", new_ips, "may not change once set")]
    return []


register("Service", validate_service)
