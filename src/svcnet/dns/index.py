"""The objects cluster DNS answers from, kept current by informer events.

`DNSIndex.apply(kind, old, new)` takes raw API dicts (Service v1, discovery.k8s.io/v1
EndpointSlice, Pod v1, and optionally Namespace v1) and keeps slim records of only what
DNS needs, as CoreDNS's `object` package does (memory at scale). Every apply costs
O(size of the changed object): the previous version is found by key in the index (so a
wrong or missing `old` is harmless), and merged views such as a Service's endpoints are
built only when an answer needs them.

`apply` returns the *dependency keys* whose cached answers may now be wrong; the answer
cache (`cache.py`) drops exactly the entries built from them:

    ("svc", ns, name)   anything at or under <name>.<ns>.svc.<zone>, including the
                        NXDOMAIN for a Service that does not exist (yet), and PTRs
                        that point at its endpoints or ClusterIPs
    ("ip", packed)      the PTR answer for one address
    ("ns", ns)          <ns>.svc / <ns>.pod and pod names: namespace existence changed
    ("podips", ns)      the set of pod IPs in a namespace changed (pods verified mode)

Endpoint rules (spec §2.1, reference/dns.md §2.1): a slice belongs to the Service named
by its `kubernetes.io/service-name` label; an endpoint is published when
`conditions.ready` is true or unset, or the Service has `publishNotReadyAddresses`.
Slices of addressType FQDN are ignored (they hold no addresses). A namespace exists when
a Namespace object for it was applied, or any Service or Pod lives in it (so it works
without a Namespace informer; wire one for exact NODATA on empty namespaces).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Iterable, Mapping

from svcnet.dns import names

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
# The endpoint name CoreDNS keeps from TargetRef only when it is a valid label.
_MAX_LABEL = 63

# See the module docstring; the last element of ("ip", packed) is bytes.
DepKey = tuple[str | bytes, ...]


class ServiceKind(StrEnum):
    """How a Service is named in DNS: by ClusterIP, by endpoints, or by CNAME."""

    CLUSTER_IP = "ClusterIP"
    HEADLESS = "Headless"
    EXTERNAL_NAME = "ExternalName"


@dataclass(frozen=True, slots=True)
class PortRecord:
    """A Service or EndpointSlice port; `name` is "" for an unnamed port."""

    name: str
    protocol: str
    port: int


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    """What DNS needs of a Service; `cluster_ips` canonical, empty unless ClusterIP kind;
    `external_name` lower-cased without a trailing dot."""

    namespace: str
    name: str
    kind: ServiceKind
    cluster_ips: tuple[str, ...]
    ports: tuple[PortRecord, ...]
    external_name: str
    publish_not_ready: bool


@dataclass(frozen=True, slots=True)
class EndpointRecord:
    """One slice endpoint: canonical addresses, hostname and pod name lower-cased, and
    readiness (an unset `conditions.ready` counts as ready)."""

    addresses: tuple[str, ...]
    hostname: str
    pod_name: str
    ready: bool


@dataclass(frozen=True, slots=True)
class SliceRecord:
    """What DNS needs of an EndpointSlice; `service` is "" without the label."""

    namespace: str
    name: str
    service: str
    endpoints: tuple[EndpointRecord, ...]
    ports: tuple[PortRecord, ...]

    def addresses(self) -> Iterable[str]:
        for endpoint in self.endpoints:
            yield from endpoint.addresses


@dataclass(frozen=True, slots=True)
class PublishedEndpoint:
    """One published address of a Service: its DNS label and the slice's ports."""

    ip: str
    version: int
    label: str
    ports: tuple[PortRecord, ...]


def _canonical(text: Any) -> tuple[str, bytes] | None:
    try:
        ip = ipaddress.ip_address(str(text))
    except ValueError:
        return None
    return str(ip), ip.packed


def _packed(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def _ports(raw: Any) -> tuple[PortRecord, ...]:
    out = []
    for port in raw or ():
        if isinstance(port, Mapping) and isinstance(port.get("port"), int):
            out.append(PortRecord(str(port.get("name") or ""),
                                  str(port.get("protocol") or "TCP"), port["port"]))
    return tuple(out)


def _meta(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def service_record(obj: Mapping[str, Any]) -> ServiceRecord:
    """The slim form of a Service object."""
    namespace, name = _meta(obj)
    spec = obj.get("spec") or {}
    ips = list(spec.get("clusterIPs") or ())
    if not ips and spec.get("clusterIP"):
        ips = [spec["clusterIP"]]
    if spec.get("type") == "ExternalName":
        kind = ServiceKind.EXTERNAL_NAME
    elif "None" in ips:
        kind = ServiceKind.HEADLESS
    else:
        kind = ServiceKind.CLUSTER_IP
    canonical = tuple(c[0] for c in map(_canonical, ips) if c is not None)
    external = str(spec.get("externalName") or "").rstrip(".").lower()
    return ServiceRecord(namespace, name, kind,
                         canonical if kind is ServiceKind.CLUSTER_IP else (),
                         _ports(spec.get("ports")), external,
                         bool(spec.get("publishNotReadyAddresses")))


def slice_record(obj: Mapping[str, Any]) -> SliceRecord:
    """The slim form of an EndpointSlice (no endpoints for addressType FQDN)."""
    namespace, name = _meta(obj)
    labels = (obj.get("metadata") or {}).get("labels") or {}
    endpoints = []
    if obj.get("addressType", "IPv4") in ("IPv4", "IPv6"):
        for raw in obj.get("endpoints") or ():
            if not isinstance(raw, Mapping):
                continue
            addresses = tuple(c[0] for c in map(_canonical, raw.get("addresses") or ())
                              if c is not None)
            if not addresses:
                continue
            ready = (raw.get("conditions") or {}).get("ready")
            ref = raw.get("targetRef") or {}
            pod_name = str(ref.get("name") or "") if ref.get("kind", "Pod") == "Pod" else ""
            endpoints.append(EndpointRecord(addresses, str(raw.get("hostname") or "").lower(),
                                            pod_name.lower(), ready is None or bool(ready)))
    return SliceRecord(namespace, name, str(labels.get(SERVICE_NAME_LABEL) or ""),
                       tuple(endpoints), _ports(obj.get("ports")))


def _pod_ips(obj: Mapping[str, Any]) -> frozenset[bytes]:
    if (obj.get("spec") or {}).get("hostNetwork"):
        return frozenset()  # the node's address, not the pod's own
    status = obj.get("status") or {}
    texts = [entry.get("ip") for entry in status.get("podIPs") or ()
             if isinstance(entry, Mapping)]
    if not texts and status.get("podIP"):
        texts = [status["podIP"]]
    return frozenset(c[1] for c in map(_canonical, texts) if c is not None)


class DNSIndex:
    """Slim Services, EndpointSlices and pod IPs, with the reverse (IP) index."""

    def __init__(self, *, endpoint_pod_names: bool = False) -> None:
        self.endpoint_pod_names = endpoint_pod_names
        self._services: dict[tuple[str, str], ServiceRecord] = {}
        self._slices: dict[tuple[str, str], SliceRecord] = {}
        self._slices_by_service: dict[tuple[str, str], dict[str, SliceRecord]] = {}
        # address -> owners: ("svc", ns, name) for ClusterIPs, ("slice", ns, name) else.
        self._ip_owners: dict[bytes, set[tuple[str, str, str]]] = {}
        self._pods: dict[tuple[str, str], frozenset[bytes]] = {}
        self._pod_ips: dict[str, dict[bytes, int]] = {}
        self._ns_objects: set[str] = set()
        self._ns_members: dict[str, int] = {}

    # --- events ------------------------------------------------------------------------

    def apply(self, kind: str, old: Mapping[str, Any] | None,
              new: Mapping[str, Any] | None) -> set[DepKey]:
        """Apply one informer event; return the dependency keys it may have changed."""
        obj = new if new is not None else old
        if obj is None:
            return set()
        key = _meta(obj)
        deps: set[DepKey] = set()
        if kind == "Service":
            self._apply_service(key, None if new is None else service_record(new), deps)
        elif kind == "EndpointSlice":
            self._apply_slice(key, None if new is None else slice_record(new), deps)
        elif kind == "Pod":
            self._apply_pod(key, None if new is None else _pod_ips(new), deps)
        elif kind == "Namespace":
            name = key[1]
            before = self.namespace_exists(name)
            if new is None:
                self._ns_objects.discard(name)
            else:
                self._ns_objects.add(name)
            if before != self.namespace_exists(name):
                deps.add(("ns", name))
        else:
            raise ValueError(f"cluster DNS does not index {kind!r} objects")
        return deps

    def _member(self, namespace: str, delta: int, deps: set[DepKey]) -> None:
        before = self.namespace_exists(namespace)
        count = self._ns_members.get(namespace, 0) + delta
        if count:
            self._ns_members[namespace] = count
        else:
            self._ns_members.pop(namespace, None)
        if before != self.namespace_exists(namespace):
            deps.add(("ns", namespace))

    def _apply_service(self, key: tuple[str, str], record: ServiceRecord | None,
                       deps: set[DepKey]) -> None:
        previous = self._services.get(key)
        if previous == record:
            return
        deps.add(("svc", *key))
        owner = ("svc", *key)
        if previous is not None:
            for ip in previous.cluster_ips:
                self._drop_owner(_packed(ip), owner, deps)
        if record is None:
            del self._services[key]
        else:
            self._services[key] = record
            for ip in record.cluster_ips:
                self._add_owner(_packed(ip), owner, deps)
        if (previous is None) != (record is None):
            self._member(key[0], 1 if previous is None else -1, deps)

    def _apply_slice(self, key: tuple[str, str], record: SliceRecord | None,
                     deps: set[DepKey]) -> None:
        previous = self._slices.get(key)
        if previous == record:
            return
        owner = ("slice", *key)
        if previous is not None:
            service_key = (key[0], previous.service)
            deps.add(("svc", *service_key))
            siblings = self._slices_by_service[service_key]
            del siblings[key[1]]
            if not siblings:
                del self._slices_by_service[service_key]
            for ip in set(previous.addresses()):
                self._drop_owner(_packed(ip), owner, deps)
        if record is None:
            del self._slices[key]
            return
        self._slices[key] = record
        deps.add(("svc", key[0], record.service))
        self._slices_by_service.setdefault((key[0], record.service), {})[key[1]] = record
        for ip in set(record.addresses()):
            self._add_owner(_packed(ip), owner, deps)

    def _apply_pod(self, key: tuple[str, str], ips: frozenset[bytes] | None,
                   deps: set[DepKey]) -> None:
        previous = self._pods.get(key)
        if previous == ips:
            return  # the common case: a status update that moved no address
        namespace = key[0]
        counts = self._pod_ips.setdefault(namespace, {})
        for ip in previous or ():
            left = counts[ip] - 1
            if left:
                counts[ip] = left
            else:
                del counts[ip]
        for ip in ips or ():
            counts[ip] = counts.get(ip, 0) + 1
        if not counts:
            del self._pod_ips[namespace]
        if (previous or frozenset()) != (ips or frozenset()):
            deps.add(("podips", namespace))
        if ips is None:
            del self._pods[key]
        else:
            self._pods[key] = ips
        if (previous is None) != (ips is None):
            self._member(namespace, 1 if previous is None else -1, deps)

    def _add_owner(self, ip: bytes, owner: tuple[str, str, str], deps: set[DepKey]) -> None:
        self._ip_owners.setdefault(ip, set()).add(owner)
        deps.add(("ip", ip))

    def _drop_owner(self, ip: bytes, owner: tuple[str, str, str], deps: set[DepKey]) -> None:
        owners = self._ip_owners.get(ip)
        if owners is not None:
            owners.discard(owner)
            if not owners:
                del self._ip_owners[ip]
        deps.add(("ip", ip))

    # --- reading -----------------------------------------------------------------------

    def service(self, namespace: str, name: str) -> ServiceRecord | None:
        return self._services.get((namespace, name))

    def namespace_exists(self, namespace: str) -> bool:
        return namespace in self._ns_objects or namespace in self._ns_members

    def pod_has_ip(self, namespace: str, packed: bytes) -> bool:
        return packed in self._pod_ips.get(namespace, ())

    def knows_ip(self, packed: bytes) -> bool:
        """Whether any Service or slice claims the address (published or not)."""
        return packed in self._ip_owners

    def endpoint_label(self, endpoint: EndpointRecord, ip: str) -> str:
        """The endpoint's DNS label: hostname, else (option) pod name, else dashed IP."""
        if endpoint.hostname:
            return endpoint.hostname
        if self.endpoint_pod_names and 0 < len(endpoint.pod_name) <= _MAX_LABEL:
            return endpoint.pod_name
        return names.dashed_ip(ip)

    def published(self, service: ServiceRecord) -> list[PublishedEndpoint]:
        """The Service's published addresses, slices in name order, slice order within."""
        slices = self._slices_by_service.get((service.namespace, service.name), {})
        out = []
        for slice_name in sorted(slices):
            sl = slices[slice_name]
            for endpoint in sl.endpoints:
                if not (endpoint.ready or service.publish_not_ready):
                    continue
                for ip in endpoint.addresses:
                    version = 6 if ":" in ip else 4
                    out.append(PublishedEndpoint(ip, version, self.endpoint_label(endpoint, ip),
                                                 sl.ports))
        return out

    def ptr_targets(self, packed: bytes, deps: set[DepKey]) -> list[tuple[str, ...]]:
        """Names (as label tuples above the zone) an address points back to.

        A ClusterIP maps to its Service alone (the first by key, should two claim it);
        otherwise every published endpoint with that address gives
        `<label>.<svc>.<ns>.svc` (CoreDNS: endpoints of any Service, one per Service).
        """
        deps.add(("ip", packed))
        owners = sorted(self._ip_owners.get(packed, ()))
        for kind, namespace, name in owners:
            if kind == "svc":
                deps.add(("svc", namespace, name))
                return [(name, namespace, names.SVC)]
        targets: list[tuple[str, ...]] = []
        for _, namespace, slice_name in owners:
            sl = self._slices[(namespace, slice_name)]
            deps.add(("svc", namespace, sl.service))
            service = self._services.get((namespace, sl.service))
            if service is None or service.kind is ServiceKind.EXTERNAL_NAME:
                continue
            for endpoint in sl.endpoints:
                if not (endpoint.ready or service.publish_not_ready):
                    continue
                for ip in endpoint.addresses:
                    if _packed(ip) == packed:
                        target = (self.endpoint_label(endpoint, ip), sl.service, namespace,
                                  names.SVC)
                        if target not in targets:
                            targets.append(target)
        return targets

    def stats(self) -> dict[str, int]:
        """Object counts, for metrics and debugging."""
        return {"services": len(self._services), "endpointslices": len(self._slices),
                "pods": len(self._pods), "addresses": len(self._ip_owners)}
