"""Service ports as kube-proxy sees them: one `ServicePortInfo` per (Service, port).

kube-proxy never works on whole Services. Its change tracker explodes each Service into one
record per port, keyed by a `ServicePortName` (namespace, name, port name, protocol), and
every proxy mode compiles rules from those records (kubernetes `pkg/proxy/serviceport.go`,
`types.go`). This module is that explosion, as a pure function over the raw API object.

What we copy from kube-proxy on purpose, because it is visible in the rules it writes:

- Services without a cluster IP (headless, or not yet allocated) and ExternalName Services
  are skipped entirely; they have nothing to proxy.
- Only the IPv4 family is handled: the IPv4 cluster IP is picked from `clusterIPs`, and
  externalIPs, load-balancer ingress IPs and source ranges of the other family are dropped,
  as the single-stack IPv4 proxier does.
- Load-balancer ingress entries with `ipMode: Proxy` are not VIPs (the load balancer
  proxies, so nothing must capture the IP on the node).
- `loadBalancerSourceRanges` entries are trimmed and parsed as CIDRs; unparsable entries are
  ignored rather than failing the whole Service (upstream keeps this for compatibility).
- `healthCheckNodePort` only counts for LoadBalancer Services with
  `externalTrafficPolicy: Local` (`NeedsHealthCheck`); elsewhere the field is ignored.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Mapping

#: Service types whose ports can be reached from outside the cluster (`ExternallyAccessible`).
_EXTERNAL_TYPES = ("NodePort", "LoadBalancer")


@dataclass(frozen=True, slots=True)
class ServicePortName:
    """The identity of one Service port, kube-proxy's `proxy.ServicePortName`.

    `str()` is kube's `ns/name:port` (no `:` when the port is unnamed). The protocol is part
    of the identity but not of the string; chain-name hashes append it separately.
    """

    namespace: str
    name: str
    port: str = ""
    protocol: str = "TCP"

    def __str__(self) -> str:
        base = f"{self.namespace}/{self.name}"
        return f"{base}:{self.port}" if self.port else base

    @property
    def service(self) -> tuple[str, str]:
        """The (namespace, name) of the Service this port belongs to."""
        return (self.namespace, self.name)

    def sort_key(self) -> tuple[str, str, str]:
        """Order used for deterministic output.

        The first element is the `ns/name` string, because upstream's test normaliser sorts
        KUBE-SERVICES rules by the comment text up to the first space or colon; sorting the
        same way means our canonical output survives that normalisation unchanged.
        """
        return (f"{self.namespace}/{self.name}", self.port, self.protocol)


@dataclass(frozen=True, slots=True)
class ServicePortInfo:
    """Everything kube-proxy needs about one Service port (IPv4 family).

    `target_port` is informational (endpoints come from EndpointSlices, which already carry
    resolved port numbers). `session_affinity_timeout` is 0 unless sessionAffinity is ClientIP.
    `health_check_node_port` is 0 unless the Service needs one (LoadBalancer + eTP Local).
    """

    name: ServicePortName
    service_type: str
    cluster_ip: str
    cluster_ips: tuple[str, ...]
    port: int
    target_port: int | str
    node_port: int = 0
    external_ips: tuple[str, ...] = ()
    load_balancer_vips: tuple[str, ...] = ()
    load_balancer_source_ranges: tuple[str, ...] = ()
    external_policy_local: bool = False
    internal_policy_local: bool = False
    session_affinity_timeout: int = 0
    health_check_node_port: int = 0

    @property
    def protocol(self) -> str:
        return self.name.protocol

    @property
    def session_affinity(self) -> bool:
        """True when ClientIP session affinity is on."""
        return self.session_affinity_timeout > 0

    @property
    def externally_accessible(self) -> bool:
        """True if this port has any "external" destination: NodePort, LB VIP or external IP."""
        return bool(self.node_port or self.load_balancer_vips or self.external_ips)

    @property
    def uses_cluster_endpoints(self) -> bool:
        """True if any traffic to this port may use Cluster-policy endpoints.

        Even with eTP=Local, externally accessible ports need the Cluster endpoints to
        short-circuit pod and node traffic to external destinations.
        """
        return not self.internal_policy_local or self.externally_accessible

    @property
    def uses_local_endpoints(self) -> bool:
        """True if any traffic to this port is restricted to node-local endpoints."""
        return self.internal_policy_local or (
            self.external_policy_local and self.externally_accessible)


def _ipv4(text: Any) -> str | None:
    """The canonical text of an IPv4 address, or None for anything else."""
    try:
        ip = ipaddress.ip_address(str(text).strip())
    except ValueError:
        return None
    return str(ip) if ip.version == 4 else None


def _ipv4_cidr(text: Any) -> str | None:
    """A source range as Go's `net.ParseCIDR(...).String()` prints it (host bits cleared)."""
    try:
        net = ipaddress.ip_network(str(text).strip(), strict=False)
    except ValueError:
        return None
    return str(net) if net.version == 4 else None


def _ipv4_cluster_ip(spec: Mapping[str, Any]) -> str | None:
    """The IPv4 cluster IP (`GetClusterIPByFamily`), or None if the Service has none."""
    candidates = list(spec.get("clusterIPs") or [])
    if not candidates and spec.get("clusterIP"):
        candidates = [spec["clusterIP"]]
    for text in candidates:
        ip = _ipv4(text)
        if ip is not None:
            return ip
    return None


def should_skip_service(svc: Mapping[str, Any]) -> bool:
    """True for Services kube-proxy ignores: no cluster IP (headless/unset) or ExternalName."""
    spec = svc.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return True
    cluster_ip = spec.get("clusterIP")
    return cluster_ip in (None, "", "None")


def _externally_accessible_type(spec: Mapping[str, Any]) -> bool:
    """`service.ExternallyAccessible`: NodePort, LoadBalancer, or ClusterIP + externalIPs."""
    stype = spec.get("type") or "ClusterIP"
    return stype in _EXTERNAL_TYPES or (stype == "ClusterIP" and bool(spec.get("externalIPs")))


def _vips(svc: Mapping[str, Any]) -> tuple[str, ...]:
    """IPv4 load-balancer ingress IPs, excluding ipMode Proxy entries."""
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    vips: list[str] = []
    for ing in ingress:
        if not isinstance(ing, Mapping) or not ing.get("ip"):
            continue
        if ing.get("ipMode") == "Proxy":
            continue
        ip = _ipv4(ing["ip"])
        if ip is not None:
            vips.append(ip)
    return tuple(vips)


def service_ports(svc: Mapping[str, Any]) -> tuple[ServicePortInfo, ...]:
    """Explode one Service object into its IPv4 `ServicePortInfo`s.

    Expects defaults to have been applied (protocol, traffic policies, affinity timeout);
    missing fields fall back to Kubernetes' defaults anyway. Returns () for Services that
    kube-proxy skips (see `should_skip_service`) or that have no IPv4 cluster IP.
    """
    if should_skip_service(svc):
        return ()
    meta = svc.get("metadata") or {}
    spec = svc.get("spec") or {}
    cluster_ip = _ipv4_cluster_ip(spec)
    if cluster_ip is None:
        return ()
    stype = spec.get("type") or "ClusterIP"
    external_local = (_externally_accessible_type(spec)
                      and spec.get("externalTrafficPolicy") == "Local")
    internal_local = spec.get("internalTrafficPolicy") == "Local"
    timeout = 0
    if spec.get("sessionAffinity") == "ClientIP":
        cfg = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
        timeout = int(cfg.get("timeoutSeconds") or 10800)
    hcnp = 0
    if stype == "LoadBalancer" and external_local:
        hcnp = int(spec.get("healthCheckNodePort") or 0)
    external_ips = tuple(ip for ip in (_ipv4(t) for t in spec.get("externalIPs") or [])
                         if ip is not None)
    ranges = tuple(c for c in (_ipv4_cidr(t) for t in spec.get("loadBalancerSourceRanges") or [])
                   if c is not None)
    cluster_ips = tuple(ip for ip in (_ipv4(t) for t in spec.get("clusterIPs") or [cluster_ip])
                        if ip is not None)
    vips = _vips(svc)
    infos: list[ServicePortInfo] = []
    for port in spec.get("ports") or []:
        protocol = str(port.get("protocol") or "TCP").upper()
        target = port.get("targetPort")
        infos.append(ServicePortInfo(
            name=ServicePortName(str(meta.get("namespace") or "default"), str(meta.get("name")),
                                 str(port.get("name") or ""), protocol),
            service_type=stype,
            cluster_ip=cluster_ip,
            cluster_ips=cluster_ips,
            port=int(port.get("port") or 0),
            target_port=target if isinstance(target, (int, str)) and target != "" else
            int(port.get("port") or 0),
            node_port=int(port.get("nodePort") or 0),
            external_ips=external_ips,
            load_balancer_vips=vips,
            load_balancer_source_ranges=ranges,
            external_policy_local=external_local,
            internal_policy_local=internal_local,
            session_affinity_timeout=timeout,
            health_check_node_port=hcnp,
        ))
    return tuple(infos)
