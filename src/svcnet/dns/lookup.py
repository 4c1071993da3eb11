"""Which names exist and what they hold: a typed cluster name -> entries, or no such name.

This is the one place that decides NXDOMAIN. `Lookup.entries(name, deps)` returns None
when the name does not exist, else a list of `Entry` (possibly empty: the name exists
but owns no address, e.g. `<ns>.svc.<zone>` or a ClusterIP Service whose IP is not yet
allocated). Record rendering (`answers.py`) then only picks what the query type wants,
the way CoreDNS's `Services()` feeds its per-type `A`/`SRV`/... functions:

- ClusterIP Service: one entry per (matching port x ClusterIP); no endpoints needed
  (a ClusterIP Service with no endpoints still resolves, dns.md §2.1).
- Headless Service, and any `<endpoint>.<svc>` name: one entry per (published address x
  matching slice port); a slice without ports gives the sentinel port -1 (addresses but
  no SRV). No entries at all = NXDOMAIN (spec §2.4.1: headless with no ready endpoints).
- ExternalName: one CNAME entry; sub-names, and an externalName that is an IP, do not
  exist (dns.md §2.1).
- Pods (`pods insecure`): the address spelled by the label, when the namespace exists;
  `pods verified` also needs a pod there with that IP; `pods disabled`: nothing.

Every index key consulted is added to `deps`, including for a negative answer, so the
answer cache knows which events make it stale.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum

from svcnet.dns import names
from svcnet.dns.index import DepKey, DNSIndex, PortRecord, ServiceKind, ServiceRecord

_NO_PORT = PortRecord("", "", -1)


class PodMode(StrEnum):
    """CoreDNS `pods` option (README): how `<ip>.<ns>.pod.<zone>` is answered."""

    DISABLED = "disabled"
    INSECURE = "insecure"
    VERIFIED = "verified"


@dataclass(frozen=True, slots=True)
class Entry:
    """One address (or CNAME target) a name holds.

    `owner` is the name that address belongs to, as labels above the zone: the Service
    name for ClusterIPs, `<endpoint>.<svc>.<ns>.svc` for endpoints. It is the SRV target
    and the owner of the additional-section address records.
    """

    owner: tuple[str, ...]
    ip: str | None = None
    version: int = 0
    port: int = -1
    cname: str | None = None


def _version(ip: str) -> int:
    return 6 if ":" in ip else 4


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _port_matches(name: names.ServiceName, port: PortRecord) -> bool:
    # No port in the question matches every port; an empty label matches any (CoreDNS).
    if name.port is None:
        return True
    return ((not name.port or name.port == port.name.lower())
            and (not name.protocol or name.protocol == port.protocol.lower()))


class Lookup:
    """Name existence and entries over a `DNSIndex`."""

    def __init__(self, index: DNSIndex, *, pods: PodMode,
                 nameserver: tuple[str, str] | None) -> None:
        self.index = index
        self.pods = pods
        self.nameserver = nameserver

    def entries(self, name: names.ClusterName, deps: set[DepKey]) -> list[Entry] | None:
        """The entries of an existing name, or None for NXDOMAIN."""
        if isinstance(name, names.ServiceName):
            return self._service(name, deps)
        if isinstance(name, names.PodName):
            return self._pod(name, deps)
        if isinstance(name, (names.Apex, names.Version)):
            return []
        if isinstance(name, names.DefaultNS):
            service = self.nameserver_service(deps)
            if service is None:
                return []
            return [Entry(("ns", "dns"), ip, _version(ip)) for ip in service.cluster_ips]
        if isinstance(name, names.EmptyNonTerminal):
            return None if self._pods_off(name.space) else []
        if isinstance(name, names.NamespaceName):
            if self._pods_off(name.space):
                return None
            deps.add(("ns", name.namespace))
            return [] if self.index.namespace_exists(name.namespace) else None
        return None  # Invalid

    def nameserver_service(self, deps: set[DepKey]) -> ServiceRecord | None:
        """The Service clients reach this server by (kube-dns), if it has ClusterIPs."""
        if self.nameserver is None:
            return None
        deps.add(("svc", *self.nameserver))
        service = self.index.service(*self.nameserver)
        if service is None or not service.cluster_ips:
            return None
        return service

    def _pods_off(self, space: str) -> bool:
        return space == names.POD and self.pods is PodMode.DISABLED

    def _service(self, name: names.ServiceName, deps: set[DepKey]) -> list[Entry] | None:
        deps.add(("svc", name.namespace, name.service))
        service = self.index.service(name.namespace, name.service)
        if service is None:
            return None
        owner = (name.service, name.namespace, names.SVC)
        if service.kind is ServiceKind.EXTERNAL_NAME:
            if name.endpoint is not None or name.port is not None:
                return None
            target = service.external_name
            if not target or _is_ip(target):
                return None
            return [Entry(owner, cname=target)]
        if service.kind is ServiceKind.HEADLESS or name.endpoint is not None:
            out = []
            for ep in self.index.published(service):
                if name.endpoint is not None and ep.label != name.endpoint:
                    continue
                for port in ep.ports or (_NO_PORT,):
                    if _port_matches(name, port):
                        out.append(Entry((ep.label, *owner), ep.ip, ep.version, port.port))
            return out or None
        ports = [port for port in service.ports if _port_matches(name, port)]
        if not ports:
            if name.port is not None or service.ports:
                return None
            ports = [_NO_PORT]  # a port-less ClusterIP Service still has its address
        return [Entry(owner, ip, _version(ip), port.port)
                for port in ports for ip in service.cluster_ips]

    def _pod(self, name: names.PodName, deps: set[DepKey]) -> list[Entry] | None:
        if self.pods is PodMode.DISABLED:
            return None
        deps.add(("ns", name.namespace))
        if not self.index.namespace_exists(name.namespace):
            return None
        ip = names.pod_ip(name.label)
        if ip is None:
            return None
        if self.pods is PodMode.VERIFIED:
            deps.add(("podips", name.namespace))
            if not self.index.pod_has_ip(name.namespace, ip.packed):
                return None
        return [Entry((name.label, name.namespace, names.POD), str(ip), ip.version)]
