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
_IANA_SVC_CHARSET = re.compile(r"[-a-z0-9]+")
_HAS_LETTER = re.compile(r"[a-z]")
_IP_HINT = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"


class _GoLiteral:
    """A bad value Kubernetes prints with Go's %#v (a struct, a nil slice): shown verbatim."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _GoLiteral) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


def _go_strings(value: Any) -> Any:
    """A []string bad value: a nil slice prints as `[]string(nil)`."""
    return _GoLiteral("[]string(nil)") if value is None else list(value)


def _go_ptr(value: Any) -> Any:
    """A *string/*int bad value: nil prints as "null" (quoted, as apimachinery does)."""
    return "null" if value is None else value


def externally_accessible(spec: Obj) -> bool:
    """apiservice.ExternallyAccessible: NodePort, LoadBalancer, or ClusterIP with externalIPs."""
    stype = spec.get("type")
    return stype in ("NodePort", "LoadBalancer") or (
        stype == "ClusterIP" and bool(spec.get("externalIPs")))


def _port_name_errors(name: str) -> list[str]:
    """IsValidPortName: IANA_SVC_NAME rules used for named targetPorts (RFC 6335)."""
    errs = []
    if len(name) > 15:
        errs.append("must be no more than 15 characters")
    if not _IANA_SVC_CHARSET.fullmatch(name):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _HAS_LETTER.search(name):
        errs.append("must contain at least one letter (a-z)")
    if "--" in name:
        errs.append("must not contain consecutive hyphens")
    if name.startswith("-") or name.endswith("-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def _valid_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _valid_port(value: Any) -> bool:
    return _valid_int(value) and 1 <= value <= 65535


def _is_headless(spec: Obj) -> bool:
    """isHeadlessService: clusterIPs is exactly ["None"]."""
    return (spec.get("clusterIPs") or []) == ["None"]


def _ports(spec: Obj, stype: str) -> list[FieldError]:
    errs: list[FieldError] = []
    ports = spec.get("ports") or []
    if not ports and stype != "ExternalName" and not _is_headless(spec):
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
        # A JSON string is an IntOrString of type String (even "8080"): an IANA port name.
        if isinstance(tp, str):
            errs += [invalid(f"{path}.targetPort", tp, m) for m in _port_name_errors(tp)]
        elif tp is not None:
            n = int(tp)
            if not 1 <= n <= 65535:
                errs.append(invalid(f"{path}.targetPort", n,
                                    "must be between 1 and 65535, inclusive"))
        # The node port's range is the allocator's to check ("provided port is not in the
        # valid range..."); ValidateService only forbids it for ClusterIP and dedups it.
        np = p.get("nodePort") or 0
        if np:
            if stype == "ClusterIP":
                errs.append(forbidden(f"{path}.nodePort",
                                      "may not be used when `type` is 'ClusterIP'"))
            if (proto, np) in node_ports:
                errs.append(duplicate(f"{path}.nodePort", np))
            node_ports.add((proto, np))
        key = (port, proto)
        if key in port_proto:
            # Kubernetes prints the (Protocol, Port) key as a Go %#v core.ServicePort.
            shown_port = port if _valid_int(port) else 0
            errs.append(duplicate(path, _GoLiteral(
                f'core.ServicePort{{Name:"", Protocol:"{proto or ""}", '
                f'AppProtocol:(*string)(nil), Port:{shown_port}, '
                f'TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:""}}, NodePort:0}}')))
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
        # Create-time normalisation copies clusterIP into clusterIPs, so either one counts.
        if cip or cips:
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
    if _is_headless(spec) and stype in ("NodePort", "LoadBalancer"):
        errs.append(invalid("spec.clusterIPs[0]", "None",
                            f"may not be set to 'None' for {stype} services"))
    invalid_ips = False
    for i, v in enumerate(cips):
        if i == 0 and v == "None":
            if len(cips) > 1:
                invalid_ips = True
                errs.append(invalid("spec.clusterIPs", cips,
                                    "'None' must be the first and only value"))
        elif _ip(v) is None:
            invalid_ips = True
            errs.append(invalid(f"spec.clusterIPs[{i}]", v, _IP_HINT))
    if len(cips) > 2:
        errs.append(invalid("spec.clusterIPs", cips, "may only hold up to 2 values"))
    if not invalid_ips and len(cips) > 1 and \
            len({_ip(v).version for v in cips}) < 2:  # type: ignore[union-attr]
        errs.append(invalid("spec.clusterIPs", cips,
                            "may specify no more than one IP for each IP family"))
    fams = spec.get("ipFamilies") or []
    for i, fam in enumerate(fams):
        if fam not in ("IPv4", "IPv6"):
            errs.append(not_supported(f"spec.ipFamilies[{i}]", fam, ["IPv4", "IPv6"]))
        if fam in fams[:i]:
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
    elif aff == "None" and cfg is not None:
        errs.append(forbidden("spec.sessionAffinityConfig",
                              "must not be set when session affinity is None"))
    elif aff == "ClientIP":
        why = "when session affinity type is ClientIP"
        client_ip = (cfg or {}).get("clientIP")
        timeout = (client_ip or {}).get("timeoutSeconds")
        if cfg is None:
            errs.append(required("spec.sessionAffinityConfig", why))
        elif client_ip is None:
            errs.append(required("spec.sessionAffinityConfig.clientIP", why))
        elif timeout is None:
            errs.append(required("spec.sessionAffinityConfig.clientIP.timeoutSeconds", why))
        elif not isinstance(timeout, int) or not 0 < timeout <= 86400:
            errs.append(invalid("spec.sessionAffinityConfig.clientIP.timeoutSeconds", timeout,
                                "must be greater than 0 and less than 86400"))
    return errs


def _traffic(spec: Obj, stype: str) -> list[FieldError]:
    errs: list[FieldError] = []
    external = externally_accessible(spec)
    etp = spec.get("externalTrafficPolicy")
    if etp and not external:
        errs.append(invalid("spec.externalTrafficPolicy", etp,
                            "may only be set for externally-accessible services"))
    elif external and not etp:
        errs.append(required("spec.externalTrafficPolicy"))
    elif etp and etp not in ("Cluster", "Local"):
        errs.append(not_supported("spec.externalTrafficPolicy", etp, ["Cluster", "Local"]))
    itp = spec.get("internalTrafficPolicy")
    if itp is None and stype in ("ClusterIP", "NodePort", "LoadBalancer"):
        errs.append(required("spec.internalTrafficPolicy"))
    elif itp is not None and itp not in ("Cluster", "Local"):
        errs.append(not_supported("spec.internalTrafficPolicy", itp, ["Cluster", "Local"]))
    # A missing healthCheckNodePort (LoadBalancer + Local) is allocated after validation.
    hc = spec.get("healthCheckNodePort")
    if hc and not (stype == "LoadBalancer" and etp == "Local"):
        errs.append(invalid("spec.healthCheckNodePort", hc,
                            "may only be set when `type` is 'LoadBalancer' and "
                            "`externalTrafficPolicy` is 'Local'"))
    elif hc and not _valid_port(hc):
        errs.append(invalid("spec.healthCheckNodePort", hc,
                            "must be between 1 and 65535, inclusive"))
    td = spec.get("trafficDistribution")
    if td and td != "PreferClose":
        errs.append(not_supported("spec.trafficDistribution", td, ["PreferClose"]))
    return errs


def _load_balancer(spec: Obj, stype: str) -> list[FieldError]:
    errs: list[FieldError] = []
    lb = stype == "LoadBalancer"
    ranges = spec.get("loadBalancerSourceRanges") or []
    # Kubernetes really spells this path with a capital L (a historical accident).
    if ranges and not lb:
        errs.append(forbidden("spec.LoadBalancerSourceRanges",
                              "may only be used when `type` is 'LoadBalancer'"))
    for i, r in enumerate(ranges):
        r = r.strip()  # values may be space-padded
        if not _valid_cidr(r):
            errs.append(invalid(f"spec.LoadBalancerSourceRanges[{i}]", r,
                                "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"))
    if spec.get("allocateLoadBalancerNodePorts") is not None and not lb:
        errs.append(forbidden("spec.allocateLoadBalancerNodePorts",
                              "may only be used when `type` is 'LoadBalancer'"))
    elif lb and spec.get("allocateLoadBalancerNodePorts") is None:
        # Kubernetes reports this one without the `spec.` prefix.
        errs.append(required("allocateLoadBalancerNodePorts"))
    lb_class = spec.get("loadBalancerClass")
    if lb_class is not None and not lb:
        errs.append(forbidden("spec.loadBalancerClass",
                              "may only be used when `type` is 'LoadBalancer'"))
    elif lb_class is not None:
        errs += [invalid("spec.loadBalancerClass", lb_class, m)
                 for m in names.qualified_name(lb_class)]
    return errs


def _valid_cidr(value: str) -> bool:
    """netutils.ParseCIDRSloppy: `IP/prefix-length` (no bare IPs, no netmasks)."""
    ip, sep, bits = value.partition("/")
    if not sep or not bits.isdigit() or _ip(ip) is None:
        return False
    return int(bits) <= _ip(ip).max_prefixlen  # type: ignore[union-attr]


def _special_ip_errors(value: str) -> list[str]:
    """ValidateNonSpecialIP (externalIPs): unspecified, loopback and link-local addresses."""
    parsed = _ip(value)
    if parsed is None:
        return ["must be a valid IP address"]
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    errs = []
    if parsed.is_unspecified:
        errs.append(f"may not be unspecified ({value})")
    if parsed.is_loopback:
        errs.append("may not be in the loopback range (127.0.0.0/8, ::1/128)")
    if parsed.is_link_local:
        errs.append("may not be in the link-local range (169.254.0.0/16, fe80::/10)")
    packed = parsed.packed
    if (parsed.version == 4 and packed[:3] == bytes([224, 0, 0])) or \
            (parsed.version == 6 and packed[0] == 0xFF and packed[1] & 0x0F == 0x02):
        errs.append("may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)")
    return errs


def validate_service(obj: Obj, old: Obj | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errs: list[FieldError] = []
    stype = spec.get("type") or ""
    if not stype:
        errs.append(required("spec.type"))
    elif stype not in TYPES:
        errs.append(not_supported("spec.type", stype, TYPES))
    if stype == "ExternalName":
        ext = (spec.get("externalName") or "").removesuffix(".")
        if not ext:
            errs.append(required("spec.externalName"))
        else:
            errs += [invalid("spec.externalName", ext, m) for m in names.dns1123_subdomain(ext)]
    errs += _ports(spec, stype)
    errs += _cluster_ips(spec, stype)
    errs += _affinity(spec)
    errs += _traffic(spec, stype)
    errs += _load_balancer(spec, stype)
    for i, ip in enumerate(spec.get("externalIPs") or []):
        if _ip(ip) is None:
            errs.append(invalid(f"spec.externalIPs[{i}]", ip, _IP_HINT))
        else:
            errs += [invalid(f"spec.externalIPs[{i}]", ip, m) for m in _special_ip_errors(ip)]
    errs += names.validate_labels(spec.get("selector") or {}, "spec.selector")
    if old is not None:
        errs += _update_rules(spec, old.get("spec") or {}, stype)
    return errs


def _update_rules(spec: Obj, ospec: Obj, stype: str) -> list[FieldError]:
    """ValidateServiceUpdate's own rules (validateUpgradeDowngradeClusterIPs and
    ...IPFamilies, loadBalancerClass and healthCheckNodePort immutability). The cluster IP
    rules are skipped when either side is ExternalName, as Kubernetes does."""
    errs: list[FieldError] = []
    if stype != "ExternalName" and ospec.get("type") != "ExternalName":
        errs += _cluster_ips_update(spec, ospec)
        errs += _ip_families_update(spec, ospec)
    if stype == "LoadBalancer" and ospec.get("type") == "LoadBalancer" and \
            spec.get("loadBalancerClass") != ospec.get("loadBalancerClass"):
        errs.append(invalid("spec.loadBalancerClass", _go_ptr(spec.get("loadBalancerClass")),
                            "may not change once set"))
    needs_hc = stype == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"
    old_needs_hc = ospec.get("type") == "LoadBalancer" and \
        ospec.get("externalTrafficPolicy") == "Local"
    if needs_hc and old_needs_hc and \
            (spec.get("healthCheckNodePort") or 0) != (ospec.get("healthCheckNodePort") or 0):
        errs.append(forbidden("spec.healthCheckNodePort", "field is immutable"))
    return errs


def _cluster_ips_update(spec: Obj, ospec: Obj) -> list[FieldError]:
    if _is_headless(spec) and _is_headless(ospec):
        return []
    errs: list[FieldError] = []
    old_ips, new_ips = ospec.get("clusterIPs") or [], spec.get("clusterIPs") or []
    shown = _go_strings(spec.get("clusterIPs"))
    if len(old_ips) == len(new_ips):
        for i, ip in enumerate(old_ips):
            if ip != new_ips[i]:
                errs.append(invalid(f"spec.clusterIPs[{i}]", shown, "may not change once set"))
    elif len(old_ips) > len(new_ips):
        if not new_ips:
            errs.append(invalid("spec.clusterIPs[0]", shown, "primary clusterIP can not be unset"))
        elif new_ips[0] != old_ips[0]:
            errs.append(invalid("spec.clusterIPs[0]", shown, "may not change once set"))
        if len(new_ips) == 1 and spec.get("ipFamilyPolicy") != "SingleStack":
            errs.append(invalid("spec.ipFamilyPolicy", _go_ptr(spec.get("ipFamilyPolicy")),
                                "must be set to 'SingleStack' when releasing the secondary "
                                "clusterIP"))
    elif old_ips and new_ips[0] != old_ips[0]:
        errs.append(invalid("spec.clusterIPs[0]", shown, "may not change once set"))
    return errs


def _ip_families_update(spec: Obj, ospec: Obj) -> list[FieldError]:
    if _is_headless(spec) or _is_headless(ospec):
        return []
    errs: list[FieldError] = []
    old_f, new_f = ospec.get("ipFamilies") or [], spec.get("ipFamilies") or []
    if len(old_f) == len(new_f):
        for i, fam in enumerate(old_f):
            if fam != new_f[i]:
                errs.append(invalid("spec.ipFamilies[0]", _go_strings(spec.get("ipFamilies")),
                                    "may not change once set"))
    elif len(old_f) > len(new_f):
        if not spec.get("clusterIPs"):  # sic: Kubernetes tests clusterIPs here
            errs.append(invalid("spec.ipFamilies[0]", _go_strings(spec.get("ipFamilies")),
                                "primary ipFamily can not be unset"))
        if new_f and new_f[0] != old_f[0]:
            errs.append(invalid("spec.ipFamilies[0]", _go_strings(spec.get("clusterIPs")),
                                "may not change once set"))
        if len(new_f) == 1 and spec.get("ipFamilyPolicy") != "SingleStack":
            errs.append(invalid("spec.ipFamilyPolicy", _go_ptr(spec.get("ipFamilyPolicy")),
                                "must be set to 'SingleStack' when releasing the secondary "
                                "ipFamily"))
    elif old_f and new_f[0] != old_f[0]:
        errs.append(invalid("spec.ipFamilies[0]", _go_strings(spec.get("clusterIPs")),
                            "may not change once set"))
    return errs


register("Service", validate_service)
