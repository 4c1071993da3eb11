"""Endpoints as kube-proxy sees them: EndpointSlices merged per Service port.

EndpointSlices are the only endpoint source (as in kube-proxy since v1.22); hand-made
Endpoints objects are first turned into EndpointSlice-shaped dicts by
`slices_from_endpoints`, the way the EndpointSlice mirroring controller would.

Merging follows kubernetes `pkg/proxy/endpointslicecache.go`:

- a slice belongs to the Service named by its `kubernetes.io/service-name` label; slices
  without it are ignored, and only `addressType: IPv4` slices feed the IPv4 proxier;
- a slice port is matched to a Service port by NAME and protocol (the ServicePortName);
  ports with no name field or no port number are ignored;
- only `addresses[0]` of an endpoint is used;
- conditions: ready = `ready` unset or true; serving = `serving` unset or true;
  terminating = `terminating` set and true; local = `nodeName` equals this node;
- one endpoint per `ip:port`; when the same one appears twice (a pod moving between
  slices, or an IP reused while the old pod terminates) the non-terminating copy wins;
- each list is sorted by the `ip:port` STRING (`byEndpoint`), so `10.0.0.10:80` sorts
  before `10.0.0.2:80`. Rule order, and so the statistic probabilities, depend on it.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from svcnet.proxy.serviceport import ServicePortName

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MIRRORING_CONTROLLER = "endpointslicemirroring-controller.k8s.io"
ZONE_LABEL = "topology.kubernetes.io/zone"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One backend of one Service port on one IP.

    `str()` is kube-proxy's `Endpoint.String()`: `ip:port`, IPv6 bracketed. It feeds chain
    hashes (KUBE-SEP-...) and rule comments, so its exact text matters.
    """

    ip: str
    port: int
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    node_name: str | None = None
    zone: str | None = None
    is_local: bool = False
    zone_hints: frozenset[str] = field(default_factory=frozenset)

    def __str__(self) -> str:
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{host}:{self.port}"


def _canonical_ip(text: Any) -> tuple[str, int] | None:
    """(canonical text, IP version) of an address, or None when it does not parse."""
    return _canonical_ip_text(str(text))


@functools.lru_cache(maxsize=1 << 17)
def _canonical_ip_text(text: str) -> tuple[str, int] | None:
    # Every sync rebuilds the snapshot from all slices, and parsing 50,000 addresses with
    # ipaddress was half of a partial sync's time at 5,000 Services (bench/proxy_sync.py);
    # endpoint addresses rarely change, so the parse is cached.
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    return str(ip), ip.version


def _endpoint_from(raw: Mapping[str, Any], port: int, node_name: str) -> Endpoint | None:
    addresses = raw.get("addresses") or []
    if not addresses:
        return None
    parsed = _canonical_ip(addresses[0])
    if parsed is None:
        return None
    cond = raw.get("conditions") or {}
    ready = cond.get("ready") is None or bool(cond.get("ready"))
    serving = cond.get("serving") is None or bool(cond.get("serving"))
    terminating = bool(cond.get("terminating"))
    ep_node = raw.get("nodeName")
    hints = raw.get("hints") or {}
    zones = frozenset(str(z.get("name")) for z in hints.get("forZones") or []
                      if isinstance(z, Mapping) and z.get("name"))
    return Endpoint(
        ip=parsed[0], port=port, ready=ready, serving=serving, terminating=terminating,
        node_name=ep_node, zone=raw.get("zone"),
        is_local=bool(node_name) and ep_node == node_name,
        zone_hints=zones,
    )


def endpoints_by_service_port(slices: Iterable[Mapping[str, Any]], *, node_name: str,
                              address_type: str = "IPv4",
                              ) -> dict[ServicePortName, tuple[Endpoint, ...]]:
    """Merge EndpointSlices into sorted endpoint lists per ServicePortName.

    Slices of another address type, or without the service-name label, are ignored (see the
    module docstring for the rest of the contract). The result only has non-empty lists.
    """
    merged: dict[ServicePortName, dict[str, Endpoint]] = {}
    for sl in slices:
        meta = sl.get("metadata") or {}
        service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if not service or sl.get("addressType", "IPv4") != address_type:
            continue
        namespace = str(meta.get("namespace") or "default")
        for port in sl.get("ports") or []:
            if not isinstance(port, Mapping) or port.get("name") is None:
                continue
            number = port.get("port")
            if not number:
                continue
            spn = ServicePortName(namespace, str(service), str(port["name"]),
                                  str(port.get("protocol") or "TCP").upper())
            bucket = merged.setdefault(spn, {})
            for raw in sl.get("endpoints") or []:
                ep = _endpoint_from(raw, int(number), node_name)
                if ep is None:
                    continue
                key = str(ep)
                # Prefer the non-terminating copy of a duplicate (see module docstring).
                if key not in bucket or not ep.terminating:
                    bucket[key] = ep
    return {spn: tuple(sorted(bucket.values(), key=str))
            for spn, bucket in merged.items() if bucket}


def slices_from_endpoints(endpoints: Mapping[str, Any]) -> list[dict[str, Any]]:
    """EndpointSlice-shaped dicts for one hand-made Endpoints object.

    Mirrors what the EndpointSlice mirroring controller produces closely enough for
    kube-proxy: one slice per subset and address family, the service-name label, `addresses`
    as ready endpoints and `notReadyAddresses` as not-ready ones, `nodeName` and
    `targetRef` carried over. Endpoints labelled `endpointslice.kubernetes.io/skip-mirror:
    "true"` produce no slices, as with the real controller.
    """
    meta = endpoints.get("metadata") or {}
    labels = meta.get("labels") or {}
    if str(labels.get("endpointslice.kubernetes.io/skip-mirror", "")).lower() == "true":
        return []
    name = str(meta.get("name") or "")
    namespace = str(meta.get("namespace") or "default")
    out: list[dict[str, Any]] = []
    for index, subset in enumerate(endpoints.get("subsets") or []):
        ports = [{"name": str(p.get("name") or ""), "port": p.get("port"),
                  "protocol": str(p.get("protocol") or "TCP")}
                 for p in subset.get("ports") or [] if isinstance(p, Mapping)]
        by_family: dict[str, list[dict[str, Any]]] = {}
        for ready, key in ((True, "addresses"), (False, "notReadyAddresses")):
            for addr in subset.get(key) or []:
                parsed = _canonical_ip(addr.get("ip"))
                if parsed is None:
                    continue
                ep: dict[str, Any] = {"addresses": [parsed[0]], "conditions": {"ready": ready}}
                for field_name in ("nodeName", "targetRef", "hostname"):
                    if addr.get(field_name):
                        ep[field_name] = addr[field_name]
                by_family.setdefault(f"IPv{parsed[1]}", []).append(ep)
        for family, eps in sorted(by_family.items()):
            suffix = "" if family == "IPv4" else "-ipv6"
            out.append({
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{name}-{index}{suffix}",
                    "namespace": namespace,
                    "labels": {SERVICE_NAME_LABEL: name, MANAGED_BY_LABEL: MIRRORING_CONTROLLER},
                },
                "addressType": family,
                "endpoints": eps,
                "ports": ports,
            })
    return out
