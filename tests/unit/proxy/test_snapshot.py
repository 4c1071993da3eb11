"""Snapshot building: Service ports from raw objects, endpoints from EndpointSlices."""

from __future__ import annotations

from typing import Any

import pytest

from svcnet.api.defaults import apply_defaults
from svcnet.proxy import (
    Endpoint,
    ServicePortName,
    build_snapshot,
    endpoints_by_service_port,
    service_ports,
    slices_from_endpoints,
)


def svc(name: str = "web", ns: str = "ns1", **spec: Any) -> dict[str, Any]:
    status = spec.pop("status", None)
    spec.setdefault("clusterIP", "172.30.0.41")
    spec.setdefault("ports", [{"name": "p80", "port": 80}])
    obj: dict[str, Any] = {"kind": "Service", "metadata": {"name": name, "namespace": ns},
                           "spec": spec}
    if status is not None:
        obj["status"] = status
    apply_defaults("Service", obj)
    return obj


def eps_slice(service: str, endpoints: list[dict[str, Any]], ports: list[dict[str, Any]] |
              None = None, ns: str = "ns1", name: str | None = None, **extra: Any
              ) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "kind": "EndpointSlice", "addressType": "IPv4",
        "metadata": {"name": name or f"{service}-abc", "namespace": ns,
                     "labels": {"kubernetes.io/service-name": service}},
        "endpoints": endpoints,
        "ports": ports if ports is not None else [{"name": "p80", "port": 80}], **extra}
    apply_defaults("EndpointSlice", obj)
    return obj


def test_service_port_name_string() -> None:
    assert str(ServicePortName("ns1", "svc1", "p80", "TCP")) == "ns1/svc1:p80"
    assert str(ServicePortName("ns1", "svc1", "", "UDP")) == "ns1/svc1"


def test_service_port_fields() -> None:
    obj = svc(type="LoadBalancer", externalTrafficPolicy="Local", healthCheckNodePort=30000,
              externalIPs=["192.168.99.11", "2001:db8::1", "junk"],
              loadBalancerSourceRanges=[" 203.0.113.5/25", "bad", "2001:db8::/64"],
              ports=[{"name": "p80", "port": 80, "nodePort": 3001, "targetPort": "http"}],
              status={"loadBalancer": {"ingress": [{"ip": "1.2.3.4"},
                                                   {"ip": "5.6.7.8", "ipMode": "Proxy"},
                                                   {"hostname": "lb.example"}]}})
    (port,) = service_ports(obj)
    assert port.name == ServicePortName("ns1", "web", "p80", "TCP")
    assert port.cluster_ip == "172.30.0.41" and port.port == 80 and port.node_port == 3001
    assert port.target_port == "http"
    assert port.external_ips == ("192.168.99.11",)           # IPv6 and junk dropped
    assert port.load_balancer_source_ranges == ("203.0.113.0/25",)  # trimmed, host bits off
    assert port.load_balancer_vips == ("1.2.3.4",)            # ipMode Proxy excluded
    assert port.external_policy_local and not port.internal_policy_local
    assert port.health_check_node_port == 30000
    assert port.externally_accessible and port.uses_local_endpoints


def test_health_check_port_only_for_local_load_balancers() -> None:
    (port,) = service_ports(svc(type="LoadBalancer", healthCheckNodePort=30000,
                                externalTrafficPolicy="Cluster"))
    assert port.health_check_node_port == 0
    (port,) = service_ports(svc(type="NodePort", healthCheckNodePort=30000,
                                externalTrafficPolicy="Local",
                                ports=[{"name": "p", "port": 80, "nodePort": 30001}]))
    assert port.health_check_node_port == 0 and port.external_policy_local


def test_session_affinity_timeout_defaults() -> None:
    (port,) = service_ports(svc(sessionAffinity="ClientIP"))
    assert port.session_affinity and port.session_affinity_timeout == 10800
    (port,) = service_ports(svc())
    assert not port.session_affinity


@pytest.mark.parametrize("spec", [
    {"clusterIP": "None"},
    {"clusterIP": ""},
    {"type": "ExternalName", "externalName": "db.example.com", "clusterIP": ""},
    {"clusterIP": "fd00::1", "clusterIPs": ["fd00::1"]},
])
def test_skipped_services(spec: dict[str, Any]) -> None:
    assert service_ports(svc(**spec)) == ()


def test_dual_stack_picks_ipv4_cluster_ip() -> None:
    (port,) = service_ports(svc(clusterIP="fd00::5", clusterIPs=["fd00::5", "172.30.0.9"]))
    assert port.cluster_ip == "172.30.0.9"


def test_endpoints_sorted_by_string_not_numerically() -> None:
    sl = eps_slice("web", [{"addresses": [ip]} for ip in
                           ("10.0.0.2", "10.0.0.10", "10.0.0.1")])
    got = endpoints_by_service_port([sl], node_name="n")
    spn = ServicePortName("ns1", "web", "p80", "TCP")
    # ":" sorts after "0", so "10.0.0.10:80" comes before "10.0.0.1:80" (kube's byEndpoint).
    assert [str(e) for e in got[spn]] == ["10.0.0.10:80", "10.0.0.1:80", "10.0.0.2:80"]


def test_endpoint_conditions_and_locality() -> None:
    sl = eps_slice("web", [
        {"addresses": ["10.0.1.1"], "nodeName": "node-a"},
        {"addresses": ["10.0.1.2"], "nodeName": "node-b", "conditions": {"ready": False}},
        {"addresses": ["10.0.1.3"], "conditions": {"ready": False, "serving": True,
                                                   "terminating": True}},
        {"addresses": ["10.0.1.4", "10.0.1.40"], "zone": "z1",
         "hints": {"forZones": [{"name": "z1"}]}},
        {"addresses": []},
    ])
    eps = endpoints_by_service_port([sl], node_name="node-a")[
        ServicePortName("ns1", "web", "p80", "TCP")]
    by_ip = {e.ip: e for e in eps}
    assert set(by_ip) == {"10.0.1.1", "10.0.1.2", "10.0.1.3", "10.0.1.4"}  # addresses[0] only
    assert by_ip["10.0.1.1"] == Endpoint("10.0.1.1", 80, node_name="node-a", is_local=True)
    assert not by_ip["10.0.1.2"].ready and by_ip["10.0.1.2"].serving
    e3 = by_ip["10.0.1.3"]
    assert (e3.ready, e3.serving, e3.terminating, e3.is_local) == (False, True, True, False)
    assert by_ip["10.0.1.4"].zone_hints == frozenset({"z1"})


def test_duplicates_prefer_non_terminating() -> None:
    old = eps_slice("web", [{"addresses": ["10.0.1.1"], "conditions": {
        "ready": False, "serving": True, "terminating": True}}], name="web-old")
    new = eps_slice("web", [{"addresses": ["10.0.1.1"]}], name="web-new")
    for order in ([old, new], [new, old]):
        (ep,) = endpoints_by_service_port(order, node_name="n")[
            ServicePortName("ns1", "web", "p80", "TCP")]
        assert ep.ready and not ep.terminating


def test_slice_ports_resolve_by_name_and_protocol() -> None:
    sl = eps_slice("dns", [{"addresses": ["10.0.2.1"]}], ports=[
        {"name": "dns", "port": 5353, "protocol": "UDP"},
        {"name": "dns-tcp", "port": 5353, "protocol": "TCP"},
        {"port": 9},                                 # name "" after defaults
        {"name": "noport"},                          # ignored: no port number
    ])
    sl["ports"].append({"port": 10, "protocol": "TCP"})  # no name field at all: ignored
    got = endpoints_by_service_port([sl], node_name="n")
    assert set(got) == {ServicePortName("ns1", "dns", "dns", "UDP"),
                        ServicePortName("ns1", "dns", "dns-tcp", "TCP"),
                        ServicePortName("ns1", "dns", "", "TCP")}
    assert got[ServicePortName("ns1", "dns", "", "TCP")][0].port == 9


def test_slices_without_label_or_of_other_family_are_ignored() -> None:
    unlabeled = eps_slice("web", [{"addresses": ["10.0.0.1"]}])
    del unlabeled["metadata"]["labels"]
    v6 = eps_slice("web", [{"addresses": ["fd00::1"]}], addressType="IPv6")
    assert endpoints_by_service_port([unlabeled, v6], node_name="n") == {}


def test_build_snapshot_sorts_ports_and_keeps_endpoints() -> None:
    services = [svc("b", ns="ns2"), svc("a", ns="ns2"), svc("z", ns="ns1"),
                svc("a", ns="ns2", ports=[{"name": "x", "port": 1}, {"name": "a", "port": 2}])]
    services.pop(1)
    slices = [eps_slice("b", [{"addresses": ["10.0.0.1"]}], ns="ns2")]
    snap = build_snapshot(services, slices, node_name="node-a", node_labels={"k": "v"})
    assert [str(p.name) for p in snap.service_ports] == ["ns1/z:p80", "ns2/a:a", "ns2/a:x",
                                                         "ns2/b:p80"]
    assert snap.node.name == "node-a" and snap.node.labels == {"k": "v"}
    assert [str(e) for e in snap.endpoints_for(ServicePortName("ns2", "b", "p80", "TCP"))] == \
        ["10.0.0.1:80"]
    assert snap.endpoints_for(ServicePortName("ns1", "z", "p80", "TCP")) == ()
    assert snap.total_endpoints() == 1
    assert snap.services() == {("ns1", "z"), ("ns2", "a"), ("ns2", "b")}
    with pytest.raises(TypeError):
        snap.endpoints[ServicePortName("x", "y")] = ()  # type: ignore[index]


def test_slices_from_endpoints_mirrors_hand_made_endpoints() -> None:
    endpoints = {"kind": "Endpoints", "metadata": {"name": "db", "namespace": "ns1"},
                 "subsets": [{"addresses": [{"ip": "192.0.2.42", "nodeName": "n1"}],
                              "notReadyAddresses": [{"ip": "192.0.2.43"}, {"ip": "2001:db8::9"}],
                              "ports": [{"port": 9376}]}]}
    slices = slices_from_endpoints(endpoints)
    assert [s["addressType"] for s in slices] == ["IPv4", "IPv6"]
    v4 = slices[0]
    assert v4["metadata"]["labels"]["kubernetes.io/service-name"] == "db"
    assert v4["ports"] == [{"name": "", "port": 9376, "protocol": "TCP"}]
    got = endpoints_by_service_port(slices, node_name="n1")
    eps = got[ServicePortName("ns1", "db", "", "TCP")]
    assert [(e.ip, e.ready, e.is_local) for e in eps] == [("192.0.2.42", True, True),
                                                          ("192.0.2.43", False, False)]


def test_skip_mirror_label() -> None:
    endpoints = {"metadata": {"name": "db", "labels": {
        "endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": "192.0.2.42"}], "ports": [{"port": 1}]}]}
    assert slices_from_endpoints(endpoints) == []
