"""The immutable input of every rule compiler: Service ports + endpoints + this node.

A `Snapshot` is what kube-proxy's `svcPortMap` and `endpointsMap` hold at the start of a
sync, frozen. Compilers (`svcnet.rules.*`) take a Snapshot and return values; they never
look at API objects, clocks or the kernel. That keeps one well-defined seam between "what
the cluster says" and "what the node should do", and lets every proxy mode, the packet
tracers and the golden tests share the same input.

`build_snapshot` builds one from raw API objects (dicts as the API serves them, defaults
applied). Services are exploded into ports (`serviceport.service_ports`) and endpoints come
from EndpointSlices only (`endpoints.endpoints_by_service_port`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Sequence

from svcnet.proxy.endpoints import Endpoint, endpoints_by_service_port
from svcnet.proxy.serviceport import ServicePortInfo, ServicePortName, service_ports
from svcnet.proxy.topology import NodeInfo


def _frozen_endpoints(
        data: Mapping[ServicePortName, tuple[Endpoint, ...]] | None,
) -> Mapping[ServicePortName, tuple[Endpoint, ...]]:
    return MappingProxyType(dict(data or {}))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Service ports (sorted by `ServicePortName.sort_key`), their endpoints, and the node.

    `endpoints` may hold entries for ports that no Service has (kube-proxy keeps those too,
    they are simply unused). Use `endpoints_for` rather than indexing.
    """

    node: NodeInfo
    service_ports: tuple[ServicePortInfo, ...] = ()
    endpoints: Mapping[ServicePortName, tuple[Endpoint, ...]] = field(
        default_factory=lambda: _frozen_endpoints(None))

    def __post_init__(self) -> None:
        # Freeze whatever mapping we were given, and enforce the canonical port order so
        # every compiler emits deterministic output without sorting again.
        object.__setattr__(self, "endpoints", _frozen_endpoints(self.endpoints))
        ordered = tuple(sorted(self.service_ports, key=lambda p: p.name.sort_key()))
        object.__setattr__(self, "service_ports", ordered)

    @property
    def node_name(self) -> str:
        return self.node.name

    def endpoints_for(self, name: ServicePortName) -> tuple[Endpoint, ...]:
        """The sorted endpoints of one Service port (empty if it has none)."""
        return self.endpoints.get(name, ())

    def services(self) -> frozenset[tuple[str, str]]:
        """(namespace, name) of every Service that has at least one port here."""
        return frozenset(p.name.service for p in self.service_ports)

    def total_endpoints(self) -> int:
        """Endpoints summed over all Service ports (kube-proxy's large-cluster measure)."""
        return sum(len(self.endpoints_for(p.name)) for p in self.service_ports)


def build_snapshot(services: Iterable[Mapping[str, Any]], slices: Iterable[Mapping[str, Any]],
                   *, node_name: str, node_labels: Mapping[str, str] | None = None,
                   ) -> Snapshot:
    """Build a Snapshot from raw Service and EndpointSlice objects.

    Headless and ExternalName Services, and Services without an IPv4 cluster IP, are
    skipped. Endpoints are merged and sorted as described in `svcnet.proxy.endpoints`;
    `is_local` is decided against `node_name`. Inputs are not modified.
    """
    ports: list[ServicePortInfo] = []
    for svc in services:
        ports.extend(service_ports(svc))
    eps = endpoints_by_service_port(slices, node_name=node_name)
    return Snapshot(node=NodeInfo(node_name, dict(node_labels or {})),
                    service_ports=tuple(ports), endpoints=eps)


ServiceKey = tuple[str, str]


def update_snapshot(previous: Snapshot, services: Mapping[ServiceKey, Mapping[str, Any] | None],
                    slices: Mapping[ServiceKey, Sequence[Mapping[str, Any]]]) -> Snapshot:
    """`previous` with the Services in `services` replaced: what `build_snapshot` would
    return for the same objects, built in time proportional to the change.

    `services` maps every changed (namespace, name) to its current object (None: deleted);
    `slices` maps the same keys to their current EndpointSlices (missing: none). Entries of
    unchanged Services are carried over as the very same objects, which is what lets a
    partial compile reuse their compiled rules by identity. The node is kept (a node change
    means a full rebuild).
    """
    changed = services.keys()
    ports = [p for p in previous.service_ports if p.name.service not in changed]
    for svc in services.values():
        if svc is not None:
            ports.extend(service_ports(svc))
    eps = {spn: e for spn, e in previous.endpoints.items() if spn.service not in changed}
    eps.update(endpoints_by_service_port(
        [sl for key in changed for sl in slices.get(key, ())], node_name=previous.node.name))
    return Snapshot(node=previous.node, service_ports=tuple(ports), endpoints=eps)
