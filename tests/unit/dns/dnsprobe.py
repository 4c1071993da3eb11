"""A small cluster for DNS tests, and helpers to ask it questions as a client would.

(A plain module rather than a conftest.py: other tiers import the root conftest by name.)

Address plan:
    Service ClusterIPs   10.96.0.0/16, fd00:10:96::/64   (kube-dns = 10.96.0.10)
    pod / endpoint IPs   10.244.0.0/16, fd00:10:244::/48
    outside addresses    192.0.2.0/24 (TEST-NET-1), www.example.com
Namespaces: default, kube-system, testns (inferred from their Services), emptyns (a
Namespace object only), podns (inferred from a Pod only).
"""

from __future__ import annotations

from typing import Any

import dns.flags
import dns.message
import dns.rdatatype
from svcnet.dns import ClusterDNS, Reply
from svcnet.dns.testing import endpoint, endpoint_slice, namespace, pod, query, service

ZONE = "cluster.local"


def standard_objects() -> list[tuple[str, dict[str, Any]]]:
    """(kind, object) pairs of the standard test cluster."""
    objs: list[tuple[str, dict[str, Any]]] = [
        ("Namespace", namespace("emptyns")),
        ("Pod", pod("lonely", "podns", ["10.244.9.9"])),
        ("Service", service("kube-dns", "kube-system", cluster_ips=["10.96.0.10"],
                            ports=[("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"),
                                   ("metrics", 9153, "TCP")])),
        ("Service", service("web", cluster_ips=["10.96.0.20"],
                            ports=[("http", 80, "TCP"), ("https", 443, "TCP")])),
        ("EndpointSlice", endpoint_slice("web", [endpoint("10.244.4.10"),
                                                 endpoint("10.244.4.11", ready=False)],
                                         ports=[("http", 8080, "TCP"), ("https", 8443, "TCP")])),
        ("Service", service("single", cluster_ips=["10.96.0.21"], ports=[("", 8080, "TCP")])),
        ("Service", service("dual", cluster_ips=["10.96.0.30", "fd00:10:96::30"])),
        ("Service", service("v6only", cluster_ips=["fd00:10:96::40"])),
        ("Service", service("nginx", headless=True, ports=[("web", 80, "TCP")])),
        ("EndpointSlice", endpoint_slice("nginx", [
            endpoint("10.244.1.10", hostname="web-0", pod="web-0"),
            endpoint("10.244.1.11", hostname="web-1", pod="web-1"),
            endpoint("10.244.1.12", hostname="web-2", pod="web-2", ready=False)],
            ports=[("web", 80, "TCP")])),
        ("Service", service("nohost", headless=True, ports=[("http", 8080, "TCP")])),
        ("EndpointSlice", endpoint_slice("nohost", [endpoint("10.244.2.10"),
                                                    endpoint("10.244.2.11", ready=None)],
                                         name="nohost-v4", ports=[("http", 8080, "TCP")])),
        ("EndpointSlice", endpoint_slice("nohost", [endpoint("fd00:10:244:2::10")],
                                         name="nohost-v6", ports=[("http", 8080, "TCP")],
                                         address_type="IPv6")),
        ("Service", service("empty-headless", headless=True)),
        ("Service", service("unready", headless=True)),
        ("EndpointSlice", endpoint_slice("unready", [endpoint("10.244.5.10", ready=False)])),
        ("Service", service("pnr", headless=True, publish_not_ready=True)),
        ("EndpointSlice", endpoint_slice("pnr", [endpoint("10.244.3.10", hostname="pnr-0",
                                                          ready=False)])),
        ("Service", service("multi", headless=True)),
        ("EndpointSlice", endpoint_slice("multi", [endpoint("10.244.6.10")], name="multi-a")),
        ("EndpointSlice", endpoint_slice("multi", [endpoint("10.244.6.11")], name="multi-b")),
        ("Service", service("noports", headless=True, ports=[])),
        ("EndpointSlice", endpoint_slice("noports", [endpoint("10.244.7.10")], ports=None)),
        ("Service", service("ext", external_name="www.example.com")),
        ("Service", service("alias", external_name="web.default.svc.cluster.local")),
        ("Service", service("alias2", external_name="ext.default.svc.cluster.local")),
        ("Service", service("extip", external_name="1.2.3.4")),
        ("Service", service("svc1", "testns", cluster_ips=["10.96.1.1"])),
    ]
    return objs


def build(**config: Any) -> ClusterDNS:
    cluster = ClusterDNS(**config)
    for kind, obj in standard_objects():
        cluster.apply(kind, None, obj)
    cluster.mark_synced()
    return cluster


def decode(reply: Reply) -> dns.message.Message:
    assert reply.wire is not None, reply
    return dns.message.from_wire(reply.wire)


def ask(cluster: ClusterDNS, name: str, qtype: str | int = "A", *, tcp: bool = False,
        **kw: Any) -> dns.message.Message:
    """Send one query, insist on an "answer" action, decode the reply."""
    reply = cluster.handle(query(name, qtype, **kw), tcp=tcp)
    assert reply.action == "answer", reply
    return decode(reply)


def records(section: list[Any]) -> set[str]:
    """A section as a set of presentation lines (order-insensitive, as CoreDNS tests do)."""
    return {line for rrset in section for line in rrset.to_text().splitlines()}


def soa_fields(msg: dns.message.Message) -> tuple[str, int, str, str, int, int, int, int]:
    """(owner, ttl, mname, rname, refresh, retry, expire, minimum) of the one SOA."""
    assert len(msg.authority) == 1
    rrset = msg.authority[0]
    assert rrset.rdtype == dns.rdatatype.SOA and len(rrset) == 1
    soa = rrset[0]
    return (rrset.name.to_text(), rrset.ttl, soa.mname.to_text(), soa.rname.to_text(),
            soa.refresh, soa.retry, soa.expire, soa.minimum)


def is_authoritative(msg: dns.message.Message) -> bool:
    return bool(msg.flags & dns.flags.AA)
