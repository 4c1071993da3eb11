"""Builders of raw Service/EndpointSlice objects for the iptables compiler tests.

The address plan is upstream kube-proxy's test plan (so hashes and vectors line up with
reference/kube-proxy.md): pods 10.0.0.0/8 (endpoints 10.180.0.0/16), ClusterIPs
172.30.0.0/16, node test-node 192.168.0.2, external IPs 192.168.99.0/24, LB IPs 1.2.3.4 and
5.6.7.8, outside clients 203.0.113.0/24, LB source range 203.0.113.0/25.
"""

from __future__ import annotations

import copy
from typing import Any

from svcnet.api.defaults import apply_defaults
from svcnet.dataplane.testing import FakeIPTables
from svcnet.proxy import Snapshot, build_snapshot
from svcnet.rules import IPTablesConfig, compile_full, render_restore

NODE = "test-node"
FIXTURE = IPTablesConfig.upstream_test_fixture()


def svc(ns: str, name: str, cluster_ip: str, *, port: int = 80, port_name: str = "p80",
        protocol: str = "TCP", node_port: int = 0, lb_ips: tuple[str, ...] = (),
        **spec: Any) -> dict[str, Any]:
    """A Service with one port (more via `ports=`), defaults applied."""
    ports = spec.pop("ports", None) or [{"name": port_name, "port": port, "protocol": protocol,
                                         **({"nodePort": node_port} if node_port else {})}]
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Service",
                           "metadata": {"namespace": ns, "name": name},
                           "spec": {"clusterIP": cluster_ip, "ports": ports, **spec}}
    if lb_ips:
        obj["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in lb_ips]}}
    apply_defaults("Service", obj)
    return obj


def ep(ip: str, *, local: bool = False, **conditions: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"addresses": [ip]}
    if local:
        out["nodeName"] = NODE
    if conditions:
        out["conditions"] = conditions
    return out


def eps(ns: str, name: str, *endpoints: dict[str, Any], port: int = 80, port_name: str = "p80",
        protocol: str = "TCP", slice_name: str | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
        "metadata": {"namespace": ns, "name": slice_name or f"{name}-1",
                     "labels": {"kubernetes.io/service-name": name}},
        "endpoints": list(endpoints),
        "ports": [{"name": port_name, "port": port, "protocol": protocol}]}
    apply_defaults("EndpointSlice", obj)
    return obj


def snapshot(*objects: dict[str, Any]) -> Snapshot:
    services = [copy.deepcopy(o) for o in objects if o["kind"] == "Service"]
    slices = [copy.deepcopy(o) for o in objects if o["kind"] == "EndpointSlice"]
    return build_snapshot(services, slices, node_name=NODE)


def payload(*objects: dict[str, Any], config: IPTablesConfig = FIXTURE) -> str:
    return render_restore(compile_full(snapshot(*objects), config))


def chain_rules(text: str, chain: str, table: str = "nat") -> list[str]:
    """The `-A chain` lines of one table of a restore payload, in order."""
    current = None
    out = []
    for line in text.splitlines():
        if line.startswith("*"):
            current = line[1:]
        elif current == table and line.startswith(f"-A {chain} "):
            out.append(line)
    return out


#: The counters upstream's fixture assumes exist (a real node creates them with nfacct).
COUNTERS = ("localhost_nps_accepted_pkts", "ct_state_invalid_dropped_pkts")


def loaded(text: str) -> FakeIPTables:
    fake = FakeIPTables(nfacct_counters=COUNTERS)
    fake.restore(text)
    return fake
