"""API objects and queries for tests and benchmarks of cluster DNS, without a server.

The builders return dicts shaped as the Kubernetes API serves them (Service v1,
discovery.k8s.io/v1 EndpointSlice, Pod v1, Namespace v1), with only the fields DNS
reads. `populate` fills a `ClusterDNS` with N Services quickly, for `bench/dns.py`:

    from svcnet.dns import ClusterDNS
    from svcnet.dns.testing import populate, query

    dns = ClusterDNS()
    names = populate(dns, 5000, endpoints=3)      # ClusterIP + headless, synced
    reply = dns.handle(query(names[0], "A"), tcp=False)
"""

from __future__ import annotations

import ipaddress
from typing import Any, Iterable

import dns.message
import dns.rdatatype

from svcnet.dns.cluster import ClusterDNS
from svcnet.dns.index import SERVICE_NAME_LABEL

Obj = dict[str, Any]
Port = tuple[str, int, str]  # (name, port, protocol)


def service(name: str, namespace: str = "default", *, cluster_ips: Iterable[str] = ("10.96.0.10",),
            ports: Iterable[Port] = (("http", 80, "TCP"),), headless: bool = False,
            external_name: str | None = None, publish_not_ready: bool = False) -> Obj:
    """A Service: ClusterIP by default, headless or ExternalName on request."""
    spec: Obj = {"ports": [{"name": n, "port": p, "protocol": proto} if n else
                           {"port": p, "protocol": proto} for n, p, proto in ports]}
    if external_name is not None:
        spec.update(type="ExternalName", externalName=external_name)
    elif headless:
        spec.update(type="ClusterIP", clusterIP="None", clusterIPs=["None"])
    else:
        ips = list(cluster_ips)
        spec.update(type="ClusterIP", clusterIP=ips[0] if ips else "", clusterIPs=ips)
    if publish_not_ready:
        spec["publishNotReadyAddresses"] = True
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def endpoint(ip: str | Iterable[str], *, hostname: str | None = None,
             ready: bool | None = True, pod: str | None = None) -> Obj:
    """One EndpointSlice endpoint; `ready=None` leaves the condition unset."""
    out: Obj = {"addresses": [ip] if isinstance(ip, str) else list(ip), "conditions": {}}
    if ready is not None:
        out["conditions"]["ready"] = ready
    if hostname is not None:
        out["hostname"] = hostname
    if pod is not None:
        out["targetRef"] = {"kind": "Pod", "name": pod}
    return out


def endpoint_slice(service_name: str, endpoints: Iterable[Obj], namespace: str = "default", *,
                   name: str | None = None, ports: Iterable[Port] | None = (("http", 80, "TCP"),),
                   address_type: str = "IPv4") -> Obj:
    """An EndpointSlice labelled for `service_name`; `ports=None` gives a port-less one."""
    obj: Obj = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": name or f"{service_name}-abcde", "namespace": namespace,
                             "labels": {SERVICE_NAME_LABEL: service_name}},
                "addressType": address_type, "endpoints": list(endpoints)}
    if ports is not None:
        obj["ports"] = [{"name": n, "port": p, "protocol": proto} if n else
                        {"port": p, "protocol": proto} for n, p, proto in ports]
    return obj


def pod(name: str, namespace: str = "default", ips: Iterable[str] = ("10.244.0.5",), *,
        host_network: bool = False) -> Obj:
    ip_list = list(ips)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
            "spec": {"hostNetwork": host_network},
            "status": {"podIP": ip_list[0] if ip_list else "",
                       "podIPs": [{"ip": ip} for ip in ip_list]}}


def namespace(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def query(name: str, qtype: str | int = "A", *, ident: int = 0x1234, rd: bool = True,
          edns: int | None = None, do: bool = False) -> bytes:
    """A query in wire form; `edns` is the advertised UDP payload size (None: no OPT)."""
    rdtype = (dns.rdatatype.from_text(qtype) if isinstance(qtype, str)
              else dns.rdatatype.RdataType.make(qtype))
    msg = dns.message.make_query(name, rdtype, use_edns=edns is not None,
                                 payload=edns or 1232, want_dnssec=do)
    msg.id = ident
    if not rd:
        msg.flags &= ~0x0100
    return msg.to_wire()


def populate(cluster: ClusterDNS, services: int, *, endpoints: int = 0,
             namespaces: int = 10, sync: bool = True) -> list[str]:
    """Add `services` Services spread over `namespaces` namespaces; return their names.

    Even-numbered Services are ClusterIP (10.96.0.0/12), odd ones headless; each gets one
    EndpointSlice with `endpoints` ready pods (10.244.0.0/16), hostnames on headless ones.
    """
    out = []
    service_net = int(ipaddress.ip_address("10.96.0.0"))
    pod_net = int(ipaddress.ip_address("10.244.0.0"))
    pod_no = 0
    for i in range(services):
        ns = f"ns{i % namespaces}"
        name = f"svc{i}"
        headless = i % 2 == 1
        ip = str(ipaddress.ip_address(service_net + 1 + i))
        cluster.apply("Service", None, service(name, ns, cluster_ips=[ip], headless=headless))
        eps = []
        for j in range(endpoints):
            pod_no += 1
            eps.append(endpoint(str(ipaddress.ip_address(pod_net + pod_no)),
                                hostname=f"{name}-{j}" if headless else None))
        if eps:
            cluster.apply("EndpointSlice", None, endpoint_slice(name, eps, ns))
        out.append(f"{name}.{ns}.svc.{cluster.domain}.")
    if sync:
        cluster.mark_synced()
    return out
