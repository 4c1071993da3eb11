"""Answers follow informer events: sync gating, adds, updates, deletes, configuration."""

from __future__ import annotations

import dns.rcode
import pytest

from dnsprobe import ZONE, ask, build, decode, records, soa_fields
from svcnet.dns import ClusterDNS
from svcnet.dns.testing import endpoint, endpoint_slice, namespace, pod, query, service

D = f"default.svc.{ZONE}."
WEB = f"web.{D}"


def addresses(cluster: ClusterDNS, name: str, qtype: str = "A") -> set[str]:
    msg = ask(cluster, name, qtype)
    return {rdata.to_text() for rrset in msg.answer for rdata in rrset
            if rrset.rdtype in (1, 28, 12)}


def rcode(cluster: ClusterDNS, name: str, qtype: str = "A") -> int:
    return ask(cluster, name, qtype).rcode()


# --- sync gating --------------------------------------------------------------------------


def test_servfail_for_every_zone_query_before_sync() -> None:
    cluster = ClusterDNS()
    cluster.apply("Service", None, service("web", cluster_ips=["10.96.0.20"]))
    for name, qtype in ((WEB, "A"), (f"nope.{D}", "A"), (f"{ZONE}.", "SOA"),
                        (f"dns-version.{ZONE}.", "TXT")):
        msg = ask(cluster, name, qtype)
        assert msg.rcode() == dns.rcode.SERVFAIL and msg.answer == []
        assert soa_fields(msg)[0] == f"{ZONE}."
    cluster.mark_synced()
    assert addresses(cluster, WEB) == {"10.96.0.20"}


def test_reverse_names_before_sync() -> None:
    cluster = ClusterDNS()
    cluster.apply("Service", None, service("web", cluster_ips=["10.96.0.20"]))
    known = cluster.handle(query("20.0.96.10.in-addr.arpa.", "PTR"), tcp=False)
    assert known.rcode == dns.rcode.SERVFAIL
    assert soa_fields(decode(known))[0] == "in-addr.arpa."
    unknown = cluster.handle(query("9.9.9.9.in-addr.arpa.", "PTR"), tcp=False)
    assert unknown.action == "forward"
    assert cluster.handle(query("example.com.", "A"), tcp=False).action == "forward"


def test_nothing_built_before_sync_is_served_after() -> None:
    cluster = ClusterDNS()
    assert rcode(cluster, WEB) == dns.rcode.SERVFAIL
    cluster.apply("Service", None, service("web", cluster_ips=["10.96.0.20"]))
    cluster.mark_synced()
    assert addresses(cluster, WEB) == {"10.96.0.20"}


# --- Services ---------------------------------------------------------------------------


def test_deleted_service_stops_resolving() -> None:
    cluster = build()
    obj = service("web", cluster_ips=["10.96.0.20"],
                  ports=[("http", 80, "TCP"), ("https", 443, "TCP")])
    assert addresses(cluster, WEB) == {"10.96.0.20"}  # now cached
    assert rcode(cluster, f"_http._tcp.{WEB}", "SRV") == dns.rcode.NOERROR
    cluster.apply("Service", obj, None)
    assert rcode(cluster, WEB) == dns.rcode.NXDOMAIN
    assert rcode(cluster, f"_http._tcp.{WEB}", "SRV") == dns.rcode.NXDOMAIN
    reply = cluster.handle(query("20.0.96.10.in-addr.arpa.", "PTR"), tcp=False)
    assert reply.action == "forward"


def test_created_service_replaces_a_cached_nxdomain() -> None:
    cluster = build()
    assert rcode(cluster, f"new.{D}") == dns.rcode.NXDOMAIN
    cluster.apply("Service", None, service("new", cluster_ips=["10.96.0.77"]))
    assert addresses(cluster, f"new.{D}") == {"10.96.0.77"}
    assert addresses(cluster, "77.0.96.10.in-addr.arpa.", "PTR") == {f"new.{D}"}


def test_cluster_ip_change_moves_a_and_ptr() -> None:
    cluster = build()
    old = service("web", cluster_ips=["10.96.0.20"])
    new = service("web", cluster_ips=["10.96.0.21"])
    addresses(cluster, "20.0.96.10.in-addr.arpa.", "PTR")
    cluster.apply("Service", old, new)
    assert addresses(cluster, WEB) == {"10.96.0.21"}
    assert cluster.handle(query("20.0.96.10.in-addr.arpa.", "PTR"), tcp=False).action == "forward"


def test_service_turning_into_external_name() -> None:
    cluster = build()
    cluster.apply("Service", None, service("web", external_name="web.example.net"))
    reply = cluster.handle(query(WEB), tcp=False)
    assert (reply.action, reply.target) == ("chase", "web.example.net.")


def test_alias_follows_its_in_zone_target() -> None:
    cluster = build()
    assert addresses(cluster, f"alias.{D}") == {"10.96.0.20"}
    cluster.apply("Service", None, service("web", cluster_ips=["10.96.0.99"]))
    assert addresses(cluster, f"alias.{D}") == {"10.96.0.99"}


def test_a_change_leaves_other_cached_names_alone() -> None:
    cluster = build()
    ask(cluster, WEB)
    ask(cluster, f"nginx.{D}")
    misses = cluster.cache_info().misses
    cluster.apply("Service", None, service("web", cluster_ips=["10.96.0.99"]))
    ask(cluster, f"nginx.{D}")
    assert cluster.cache_info().misses == misses
    ask(cluster, WEB)
    assert cluster.cache_info().misses == misses + 1


# --- EndpointSlices --------------------------------------------------------------------------


def nginx_slice(*endpoints: dict[str, object]) -> dict[str, object]:
    return endpoint_slice("nginx", list(endpoints), ports=[("web", 80, "TCP")])


def test_slice_changes_are_reflected() -> None:
    cluster = build()
    first = nginx_slice(endpoint("10.244.1.10", hostname="web-0"),
                        endpoint("10.244.1.11", hostname="web-1"),
                        endpoint("10.244.1.12", hostname="web-2", ready=False))
    assert addresses(cluster, f"nginx.{D}") == {"10.244.1.10", "10.244.1.11"}
    second = nginx_slice(endpoint("10.244.1.10", hostname="web-0"),
                         endpoint("10.244.1.11", hostname="web-1", ready=False),
                         endpoint("10.244.1.12", hostname="web-2"))
    cluster.apply("EndpointSlice", first, second)
    assert addresses(cluster, f"nginx.{D}") == {"10.244.1.10", "10.244.1.12"}
    assert rcode(cluster, f"web-1.nginx.{D}") == dns.rcode.NXDOMAIN
    assert addresses(cluster, f"web-2.nginx.{D}") == {"10.244.1.12"}
    assert addresses(cluster, "12.1.244.10.in-addr.arpa.", "PTR") == {f"web-2.nginx.{D}"}
    msg = ask(cluster, f"_web._tcp.nginx.{D}", "SRV")
    assert {r.target.to_text() for r in msg.answer[0]} == {f"web-0.nginx.{D}",
                                                          f"web-2.nginx.{D}"}


def test_deleting_the_last_slice_makes_headless_nxdomain() -> None:
    cluster = build()
    sl = nginx_slice()
    assert rcode(cluster, f"nginx.{D}") == dns.rcode.NOERROR
    cluster.apply("EndpointSlice", sl, None)
    assert rcode(cluster, f"nginx.{D}") == dns.rcode.NXDOMAIN
    assert rcode(cluster, f"web-0.nginx.{D}") == dns.rcode.NXDOMAIN


def test_a_second_slice_adds_endpoints() -> None:
    cluster = build()
    assert addresses(cluster, f"nginx.{D}") == {"10.244.1.10", "10.244.1.11"}
    extra = endpoint_slice("nginx", [endpoint("10.244.1.20", hostname="web-3")],
                           name="nginx-second", ports=[("web", 80, "TCP")])
    cluster.apply("EndpointSlice", None, extra)
    assert addresses(cluster, f"nginx.{D}") == {"10.244.1.10", "10.244.1.11", "10.244.1.20"}
    assert addresses(cluster, f"web-3.nginx.{D}") == {"10.244.1.20"}


def test_slice_relabelled_to_another_service() -> None:
    cluster = build()
    assert addresses(cluster, f"multi.{D}") == {"10.244.6.10", "10.244.6.11"}
    moved = endpoint_slice("nohost", [endpoint("10.244.6.11")], name="multi-b")
    cluster.apply("EndpointSlice", None, moved)  # old version found by key
    assert addresses(cluster, f"multi.{D}") == {"10.244.6.10"}
    assert "10.244.6.11" in addresses(cluster, f"nohost.{D}")


def test_publish_not_ready_addresses_toggle() -> None:
    cluster = build()
    assert rcode(cluster, f"unready.{D}") == dns.rcode.NXDOMAIN
    cluster.apply("Service", None, service("unready", headless=True, publish_not_ready=True))
    assert addresses(cluster, f"unready.{D}") == {"10.244.5.10"}
    assert addresses(cluster, "10.5.244.10.in-addr.arpa.", "PTR") == {f"10-244-5-10.unready.{D}"}


def test_slice_before_its_service() -> None:
    cluster = build()
    cluster.apply("EndpointSlice", None, endpoint_slice("late", [endpoint("10.244.8.1")]))
    assert rcode(cluster, f"late.{D}") == dns.rcode.NXDOMAIN
    cluster.apply("Service", None, service("late", headless=True))
    assert addresses(cluster, f"late.{D}") == {"10.244.8.1"}


def test_rotation_spreads_first_address_over_endpoints() -> None:
    cluster = build()
    firsts = [decode(cluster.handle(query(f"nginx.{D}"), tcp=False)).answer[0][0].to_text()
              for _ in range(4)]
    assert set(firsts) == {"10.244.1.10", "10.244.1.11"}
    assert firsts[0] != firsts[1] and firsts[0] == firsts[2]


# --- pods and namespaces ----------------------------------------------------------------


def test_pods_disabled() -> None:
    cluster = build(pods="disabled")
    assert rcode(cluster, f"1-2-3-4.default.pod.{ZONE}.") == dns.rcode.NXDOMAIN
    assert rcode(cluster, f"default.pod.{ZONE}.") == dns.rcode.NXDOMAIN
    assert rcode(cluster, f"pod.{ZONE}.") == dns.rcode.NXDOMAIN


def test_pods_verified_answers_only_real_pod_ips() -> None:
    cluster = build(pods="verified")
    assert addresses(cluster, f"10-244-9-9.podns.pod.{ZONE}.") == {"10.244.9.9"}
    assert rcode(cluster, f"10-244-9-8.podns.pod.{ZONE}.") == dns.rcode.NXDOMAIN
    assert rcode(cluster, f"10-244-9-9.default.pod.{ZONE}.") == dns.rcode.NXDOMAIN
    moved = pod("lonely", "podns", ["10.244.9.8"])
    cluster.apply("Pod", pod("lonely", "podns", ["10.244.9.9"]), moved)
    assert rcode(cluster, f"10-244-9-9.podns.pod.{ZONE}.") == dns.rcode.NXDOMAIN
    assert addresses(cluster, f"10-244-9-8.podns.pod.{ZONE}.") == {"10.244.9.8"}


def test_pod_status_noise_does_not_invalidate() -> None:
    cluster = build()
    ask(cluster, f"1-2-3-4.podns.pod.{ZONE}.")
    misses = cluster.cache_info().misses
    busy = pod("lonely", "podns", ["10.244.9.9"])
    busy["status"]["phase"] = "Running"
    cluster.apply("Pod", None, busy)
    ask(cluster, f"1-2-3-4.podns.pod.{ZONE}.")
    assert cluster.cache_info().misses == misses


def test_namespace_existence_follows_objects() -> None:
    cluster = build()
    assert rcode(cluster, f"newns.svc.{ZONE}.") == dns.rcode.NXDOMAIN
    assert rcode(cluster, f"1-2-3-4.newns.pod.{ZONE}.") == dns.rcode.NXDOMAIN
    cluster.apply("Namespace", None, namespace("newns"))
    assert rcode(cluster, f"newns.svc.{ZONE}.") == dns.rcode.NOERROR
    assert addresses(cluster, f"1-2-3-4.newns.pod.{ZONE}.") == {"1.2.3.4"}
    cluster.apply("Namespace", namespace("newns"), None)
    assert rcode(cluster, f"newns.svc.{ZONE}.") == dns.rcode.NXDOMAIN
    cluster.apply("Pod", None, pod("p", "podonly", ["10.244.9.1"]))
    assert rcode(cluster, f"podonly.svc.{ZONE}.") == dns.rcode.NOERROR
    cluster.apply("Pod", pod("p", "podonly", ["10.244.9.1"]), None)
    assert rcode(cluster, f"podonly.svc.{ZONE}.") == dns.rcode.NXDOMAIN


def test_unknown_kinds_are_a_wiring_error() -> None:
    with pytest.raises(ValueError):
        ClusterDNS().apply("Node", None, {"metadata": {"name": "n1"}})


# --- configuration ------------------------------------------------------------------------


def test_ttl_is_configurable() -> None:
    cluster = build(ttl=30)
    assert ask(cluster, WEB).answer[0].ttl == 30
    assert ask(cluster, f"_http._tcp.{WEB}", "SRV").additional[0].ttl == 30
    negative = ask(cluster, f"nope.{D}")
    assert soa_fields(negative)[1] == 30 and soa_fields(negative)[-1] == 30
    assert ask(cluster, f"dns-version.{ZONE}.", "TXT").answer[0].ttl == 28800


def test_soa_ttl_is_capped_at_300_but_minimum_is_the_ttl() -> None:
    negative = ask(build(ttl=3600), f"nope.{D}")
    assert soa_fields(negative)[1] == 300 and soa_fields(negative)[-1] == 3600


def test_ttl_bounds() -> None:
    assert ask(build(ttl=0), WEB).answer[0].ttl == 0
    with pytest.raises(ValueError):
        ClusterDNS(ttl=3601)
    with pytest.raises(ValueError):
        ClusterDNS(pods="sometimes")


def test_custom_domain() -> None:
    cluster = build(domain="k8s.example.")
    assert records(ask(cluster, "web.default.svc.k8s.example.").answer) == {
        "web.default.svc.k8s.example. 5 IN A 10.96.0.20"}
    assert cluster.handle(query(WEB), tcp=False).action == "forward"
    assert addresses(cluster, "20.0.96.10.in-addr.arpa.", "PTR") == {"web.default.svc.k8s.example."}
    assert soa_fields(ask(cluster, "nope.default.svc.k8s.example."))[2] == "ns.dns.k8s.example."


def test_soa_serial_comes_from_the_injected_clock() -> None:
    now = [1_700_000_000.0]
    cluster = build(clock=lambda: now[0])
    assert ask(cluster, f"nope.{D}").authority[0][0].serial == 1_700_000_000
    now[0] += 60
    cluster.apply("Service", None, service("web", cluster_ips=["10.96.0.99"]))
    assert ask(cluster, f"{ZONE}.", "SOA").answer[0][0].serial == 1_700_000_060


def test_endpoint_pod_names_option() -> None:
    cluster = build(endpoint_pod_names=True)
    cluster.apply("EndpointSlice", None, endpoint_slice(
        "nohost", [endpoint("10.244.2.10", pod="db-7f9c"), endpoint("10.244.2.11", pod="x" * 64)],
        name="nohost-v4", ports=[("http", 8080, "TCP")]))
    assert addresses(cluster, f"db-7f9c.nohost.{D}") == {"10.244.2.10"}
    assert addresses(cluster, f"10-244-2-11.nohost.{D}") == {"10.244.2.11"}  # name too long
    assert addresses(cluster, "10.2.244.10.in-addr.arpa.", "PTR") == {f"db-7f9c.nohost.{D}"}


def test_apex_ns_without_a_kube_dns_service() -> None:
    cluster = build(nameserver=None)
    msg = ask(cluster, f"{ZONE}.", "NS")
    assert records(msg.answer) == {f"{ZONE}. 5 IN NS ns.dns.{ZONE}."}
    assert rcode(cluster, f"ns.dns.{ZONE}.") == dns.rcode.NOERROR


def test_negative_answers_are_bounded_and_never_evict_positive_ones() -> None:
    cluster = build(negative_cache_size=3, positive_cache_size=10)
    ask(cluster, WEB)
    for i in range(20):  # search-path misses
        assert rcode(cluster, f"db{i}.default.svc.{ZONE}.svc.{ZONE}.") == dns.rcode.NXDOMAIN
    info = cluster.cache_info()
    assert (info.positive, info.negative) == (1, 3)
    hits = info.hits
    ask(cluster, WEB)
    assert cluster.cache_info().hits == hits + 1
    assert rcode(cluster, f"db19.default.svc.{ZONE}.svc.{ZONE}.") == dns.rcode.NXDOMAIN
    assert cluster.cache_info().hits == hits + 2  # the most recent miss is still cached
