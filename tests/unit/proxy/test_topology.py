"""Endpoint categorisation (kube-proxy's CategorizeEndpoints), reference §1.9."""

from __future__ import annotations

from typing import Any

from svcnet.proxy import Endpoint, NodeInfo, ServicePortInfo, ServicePortName, categorize

NODE = NodeInfo("node-a", {"topology.kubernetes.io/zone": "z1"})


def port(**kw: Any) -> ServicePortInfo:
    base: dict[str, Any] = dict(name=ServicePortName("ns", "svc", "p", "TCP"),
                                service_type="ClusterIP", cluster_ip="172.30.0.1",
                                cluster_ips=("172.30.0.1",), port=80, target_port=80)
    base.update(kw)
    return ServicePortInfo(**base)


def ep(ip: str, *, local: bool = False, ready: bool = True, serving: bool = True,
       terminating: bool = False, zones: tuple[str, ...] = ()) -> Endpoint:
    return Endpoint(ip, 80, ready=ready, serving=serving, terminating=terminating,
                    node_name="node-a" if local else "node-b", is_local=local,
                    zone_hints=frozenset(zones))


def ips(eps: tuple[Endpoint, ...]) -> list[str]:
    return [e.ip for e in eps]


def test_cluster_policy_uses_ready_endpoints() -> None:
    eps = [ep("10.0.0.1"), ep("10.0.0.2", ready=False), ep("10.0.0.3", local=True)]
    cluster, local, reachable, has_any = categorize(eps, port(), NODE)
    assert ips(cluster) == ["10.0.0.1", "10.0.0.3"]
    assert local == () and reachable == cluster and has_any


def test_terminating_fallback_when_nothing_is_ready() -> None:
    eps = [ep("10.0.0.1", ready=False, serving=True, terminating=True),
           ep("10.0.0.2", ready=False, serving=False, terminating=True),
           ep("10.0.0.3", ready=False, serving=True, terminating=False)]
    cluster, _, reachable, has_any = categorize(eps, port(), NODE)
    assert ips(cluster) == ["10.0.0.1"] and ips(reachable) == ["10.0.0.1"] and has_any


def test_no_fallback_while_something_is_ready() -> None:
    eps = [ep("10.0.0.1", ready=False, serving=True, terminating=True), ep("10.0.0.2")]
    cluster, _, _, _ = categorize(eps, port(), NODE)
    assert ips(cluster) == ["10.0.0.2"]


def test_no_usable_endpoints() -> None:
    eps = [ep("10.0.0.1", ready=False), ep("10.0.0.2", ready=False, serving=False,
                                            terminating=True)]
    assert categorize(eps, port(), NODE) == ((), (), (), False)


def test_internal_local_policy() -> None:
    eps = [ep("10.0.0.1"), ep("10.0.0.2", local=True)]
    cluster, local, reachable, has_any = categorize(eps, port(internal_policy_local=True), NODE)
    assert cluster == () and ips(local) == ["10.0.0.2"] and reachable == local and has_any


def test_internal_local_without_local_endpoints_still_has_any() -> None:
    cluster, local, reachable, has_any = categorize([ep("10.0.0.1")],
                                                    port(internal_policy_local=True), NODE)
    assert (cluster, local, reachable, has_any) == ((), (), (), True)


def test_external_local_keeps_cluster_set_for_short_circuit() -> None:
    svc = port(service_type="NodePort", node_port=30001, external_policy_local=True)
    eps = [ep("10.0.0.1"), ep("10.0.0.2", local=True)]
    cluster, local, reachable, has_any = categorize(eps, svc, NODE)
    assert ips(cluster) == ["10.0.0.1", "10.0.0.2"] and ips(local) == ["10.0.0.2"]
    assert reachable == cluster and has_any


def test_local_terminating_fallback_is_independent_of_cluster() -> None:
    # Remote endpoint ready, local one only serving+terminating: Cluster uses the ready
    # one, Local falls back to the terminating local one, and both need SEP chains.
    svc = port(service_type="NodePort", node_port=30001, external_policy_local=True)
    eps = [ep("10.0.0.1"), ep("10.0.0.2", local=True, ready=False, terminating=True)]
    cluster, local, reachable, has_any = categorize(eps, svc, NODE)
    assert ips(cluster) == ["10.0.0.1"] and ips(local) == ["10.0.0.2"]
    assert ips(reachable) == ["10.0.0.1", "10.0.0.2"] and has_any


def test_zone_hints_narrow_cluster_endpoints() -> None:
    eps = [ep("10.0.0.1", zones=("z1",)), ep("10.0.0.2", zones=("z2",)),
           ep("10.0.0.3", ready=False)]
    cluster, _, _, _ = categorize(eps, port(), NODE)
    assert ips(cluster) == ["10.0.0.1"]


def test_zone_hints_ignored_unless_complete_and_matching() -> None:
    partial = [ep("10.0.0.1", zones=("z1",)), ep("10.0.0.2")]
    assert ips(categorize(partial, port(), NODE).cluster) == ["10.0.0.1", "10.0.0.2"]
    elsewhere = [ep("10.0.0.1", zones=("z2",)), ep("10.0.0.2", zones=("z3",))]
    assert ips(categorize(elsewhere, port(), NODE).cluster) == ["10.0.0.1", "10.0.0.2"]
    no_zone = NodeInfo("node-a")
    hinted = [ep("10.0.0.1", zones=("z1",)), ep("10.0.0.2", zones=("z2",))]
    assert ips(categorize(hinted, port(), no_zone).cluster) == ["10.0.0.1", "10.0.0.2"]


def test_topology_with_local_policy_merges_reachable() -> None:
    svc = port(service_type="NodePort", node_port=30001, external_policy_local=True)
    eps = [ep("10.0.0.1", zones=("z1",)), ep("10.0.0.2", local=True, zones=("z2",))]
    cluster, local, reachable, _ = categorize(eps, svc, NODE)
    assert ips(cluster) == ["10.0.0.1"] and ips(local) == ["10.0.0.2"]
    assert ips(reachable) == ["10.0.0.1", "10.0.0.2"]
