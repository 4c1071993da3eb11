"""Objects every cluster has from its first second, kept as Kubernetes keeps them.

The system namespaces, and the `kubernetes` Service in `default` (first address of the
service CIDR, port 443/TCP named https, no selector) with the Endpoints and EndpointSlice
that point at the API server's advertised address. kube-apiserver reconciles these on
every start; so do we, so a changed --advertise-address or port is picked up.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from svcnet.api import errors
from svcnet.api.kinds import kind_for
from svcnet.apiserver.registry import NAMESPACES, Registry

log = logging.getLogger("svcnet.bootstrap")

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
SERVICES = kind_for("", "services")
ENDPOINTS = kind_for("", "endpoints")
SLICES = kind_for("discovery.k8s.io", "endpointslices")
LABELS = {"component": "apiserver", "provider": "kubernetes"}


async def ensure_namespaces(registry: Registry) -> None:
    for name in SYSTEM_NAMESPACES:
        try:
            await registry.create(NAMESPACES, None, {"metadata": {"name": name}})
        except errors.StatusError as e:
            if e.reason != "AlreadyExists":
                raise


async def _upsert(registry: Registry, kind: Any, obj: dict[str, Any],
                  namespace: str = "default") -> None:
    """Create `obj`, or make the stored one carry obj's spec-like content."""
    name = obj["metadata"]["name"]
    try:
        await registry.create(kind, namespace, obj)
        return
    except errors.StatusError as e:
        if e.reason != "AlreadyExists":
            raise

    def merge(cur: dict[str, Any] | None) -> dict[str, Any]:
        assert cur is not None
        for k, v in obj.items():
            if k == "metadata":
                cur["metadata"].setdefault("labels", {}).update(v.get("labels") or {})
            elif k == "spec":
                cur["spec"].update(v)
            else:
                cur[k] = v
        return cur
    await registry.patch(kind, namespace, name, merge)


async def ensure_kubernetes_service(registry: Registry, service_cidr: str, address: str,
                                    port: int) -> None:
    """The `kubernetes` Service and its endpoints (address must be an IP)."""
    network = ipaddress.ip_network(service_cidr)
    cluster_ip = str(network.network_address + 1)
    svc = {"metadata": {"name": "kubernetes", "labels": dict(LABELS)},
           "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
                    "sessionAffinity": "None",
                    "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                               "targetPort": port}]}}
    try:
        await _upsert(registry, SERVICES, svc)
    except errors.StatusError as e:
        # e.g. the service CIDR changed under an existing cluster: say so, keep serving
        log.warning("cannot reconcile the kubernetes Service: %s", e.message)
    await _ensure_endpoints(registry, "default", "kubernetes", {}, address,
                            [{"name": "https", "port": port, "protocol": "TCP"}])


async def _ensure_endpoints(registry: Registry, namespace: str, name: str,
                            labels: dict[str, str], address: str,
                            ports: list[dict[str, Any]]) -> None:
    """Endpoints and EndpointSlice of a selectorless Service that point at one of the
    server's own addresses. The Endpoints skip mirroring: the slice is written here."""
    family = "IPv6" if ipaddress.ip_address(address).version == 6 else "IPv4"
    await _upsert(registry, ENDPOINTS, {
        "metadata": {"name": name, "labels": {
            **labels, "endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": address}], "ports": [dict(p) for p in ports]}]},
        namespace)
    await _upsert(registry, SLICES, {
        "metadata": {"name": name, "labels": {**labels, "kubernetes.io/service-name": name}},
        "addressType": family,
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        "ports": [dict(p) for p in ports]}, namespace)


DNS_LABELS = {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true",
              "kubernetes.io/name": "CoreDNS"}


async def ensure_dns_service(registry: Registry, service_cidr: str, address: str, port: int,
                             metrics_port: int | None) -> None:
    """The `kube-dns` Service in kube-system (tenth address of the service CIDR, as
    kubeadm's 10.96.0.10; ports dns/53 UDP, dns-tcp/53 TCP, metrics/9153 TCP), without a
    selector, and its Endpoints and EndpointSlice pointing at svcnet's own DNS server at
    address:port. Pods then reach DNS through the proxy like any other Service."""
    network = ipaddress.ip_network(service_cidr)
    if network.num_addresses < 12:
        log.warning("service CIDR %s has no tenth address: no kube-dns Service", network)
        return
    cluster_ip = str(network.network_address + 10)
    ports: list[dict[str, Any]] = [
        {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": port},
        {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": port}]
    ep_ports: list[dict[str, Any]] = [{"name": "dns", "port": port, "protocol": "UDP"},
                                      {"name": "dns-tcp", "port": port, "protocol": "TCP"}]
    if metrics_port:
        ports.append({"name": "metrics", "port": 9153, "protocol": "TCP",
                      "targetPort": metrics_port})
        ep_ports.append({"name": "metrics", "port": metrics_port, "protocol": "TCP"})
    try:
        await _upsert(registry, SERVICES, {
            "metadata": {"name": "kube-dns", "labels": dict(DNS_LABELS),
                         "annotations": {"prometheus.io/port": "9153",
                                         "prometheus.io/scrape": "true"}},
            "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
                     "sessionAffinity": "None", "ports": ports}}, "kube-system")
    except errors.StatusError as e:
        log.warning("cannot reconcile the kube-dns Service: %s", e.message)
        return
    await _ensure_endpoints(registry, "kube-system", "kube-dns", DNS_LABELS, address, ep_ports)
