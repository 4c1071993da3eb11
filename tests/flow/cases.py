"""ONE table of packet-flow cases, shared by every proxy mode.

Each case is a packet (source, protocol, destination, port) arriving at node `node-a`
(or generated on it) and a mode-independent expectation: the verdict, where it may be
DNATed (with probabilities when they matter) and whether it is masqueraded. Runners in
test_flows.py turn the WORLD into their mode's rules (iptables now; nftables, ipvs and
userspace later), trace the packet and compare. A case that only holds for some modes says
so in `modes` (e.g. NodePorts on 127.0.0.1 exist only in iptables mode).

Address plan (DESIGN.md §4):
    pods            10.244.0.0/16 (cluster CIDR); node-a's pods 10.244.1.0/24,
                    node-b's pods 10.244.2.0/24
    nodes           node-a 172.30.0.11 (this node), node-b 172.30.0.12
    service IPs     10.96.0.0/12
    LB IPs          172.30.0.200-250
    external IPs    198.51.100.0/24 (spec.externalIPs)
    outside         host 172.30.0.1, clients 203.0.113.0/24; LB source range 203.0.113.0/25
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

NODE = "node-a"
NODE_IP = "172.30.0.11"
CLUSTER_CIDR = "10.244.0.0/16"
POD_A = "10.244.1.99"        # a client pod on node-a
POD_B = "10.244.2.99"        # a client pod on node-b (arrives forwarded)
CLIENT = "203.0.113.2"       # outside, inside the LB source range
BLOCKED = "203.0.113.130"    # outside, outside the LB source range
HOST = "172.30.0.1"          # the machine running the cluster: outside too


def _svc(name: str, ip: str, *, ports: list[dict[str, Any]] | None = None, ns: str = "default",
         status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    spec = {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip],
            "ports": ports or [{"name": "http", "port": 80, "targetPort": 8080,
                                "protocol": "TCP"}], **spec}
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Service",
                           "metadata": {"namespace": ns, "name": name}, "spec": spec}
    if status:
        obj["status"] = status
    return obj


def _ep(ip: str, *, ready: bool = True, serving: bool | None = None,
        terminating: bool | None = None) -> dict[str, Any]:
    node = "node-a" if ip.startswith("10.244.1.") else "node-b"
    cond: dict[str, Any] = {"ready": ready}
    if serving is not None:
        cond["serving"] = serving
    if terminating is not None:
        cond["terminating"] = terminating
    return {"addresses": [ip], "conditions": cond, "nodeName": node}


def _slice(service: str, *eps: dict[str, Any], ns: str = "default",
           ports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"namespace": ns, "name": f"{service}-x1",
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "endpoints": list(eps),
            "ports": ports or [{"name": "http", "port": 8080, "protocol": "TCP"}]}


def _lb(ip: str) -> dict[str, Any]:
    return {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}}


def _np(port: int) -> list[dict[str, Any]]:
    return [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP", "nodePort": port}]


SERVICES: list[dict[str, Any]] = [
    _svc("web", "10.96.0.10"),
    _svc("solo", "10.96.0.11"),
    _svc("trio", "10.96.0.12"),
    _svc("np", "10.96.0.13", type="NodePort", ports=_np(30080),
         externalTrafficPolicy="Cluster"),
    _svc("np-local", "10.96.0.14", type="NodePort", ports=_np(30081),
         externalTrafficPolicy="Local"),
    _svc("np-local-none", "10.96.0.15", type="NodePort", ports=_np(30082),
         externalTrafficPolicy="Local"),
    _svc("lb", "10.96.0.16", type="LoadBalancer", ports=_np(30083),
         externalTrafficPolicy="Cluster", loadBalancerSourceRanges=["203.0.113.0/25"],
         status=_lb("172.30.0.200")),
    _svc("lb-local", "10.96.0.17", type="LoadBalancer", ports=_np(30084),
         externalTrafficPolicy="Local", healthCheckNodePort=32000,
         status=_lb("172.30.0.201")),
    _svc("ext", "10.96.0.18", externalIPs=["198.51.100.7"], externalTrafficPolicy="Cluster"),
    _svc("itp-local", "10.96.0.19", internalTrafficPolicy="Local"),
    _svc("itp-local-none", "10.96.0.20", internalTrafficPolicy="Local"),
    _svc("empty", "10.96.0.21"),
    _svc("sticky", "10.96.0.22", sessionAffinity="ClientIP",
         sessionAffinityConfig={"clientIP": {"timeoutSeconds": 10800}}),
    _svc("draining", "10.96.0.23"),
    _svc("term-local-ready", "10.96.0.24", type="LoadBalancer", ports=_np(30085),
         externalTrafficPolicy="Local", status=_lb("172.30.0.202")),
    _svc("term-local-only", "10.96.0.25", type="LoadBalancer", ports=_np(30086),
         externalTrafficPolicy="Local", status=_lb("172.30.0.203")),
    _svc("term-remote", "10.96.0.26", type="LoadBalancer", ports=_np(30087),
         externalTrafficPolicy="Local", status=_lb("172.30.0.204")),
    _svc("kube-dns", "10.96.0.53", ns="kube-system",
         ports=[{"name": "dns", "port": 53, "targetPort": 53, "protocol": "UDP"},
                {"name": "dns-tcp", "port": 53, "targetPort": 53, "protocol": "TCP"}]),
]

SLICES: list[dict[str, Any]] = [
    _slice("web", _ep("10.244.1.5"), _ep("10.244.2.5")),
    _slice("solo", _ep("10.244.1.6")),
    _slice("trio", _ep("10.244.1.7"), _ep("10.244.2.7"), _ep("10.244.2.8")),
    _slice("np", _ep("10.244.2.9")),
    _slice("np-local", _ep("10.244.1.10"), _ep("10.244.2.10")),
    _slice("np-local-none", _ep("10.244.2.11")),
    _slice("lb", _ep("10.244.2.12")),
    _slice("lb-local", _ep("10.244.1.13"), _ep("10.244.2.13")),
    _slice("ext", _ep("10.244.2.14")),
    _slice("itp-local", _ep("10.244.1.15"), _ep("10.244.2.15")),
    _slice("itp-local-none", _ep("10.244.2.16")),
    _slice("sticky", _ep("10.244.1.17"), _ep("10.244.2.17")),
    # A rolling update: no ready endpoint, one serving+terminating (used), one gone (not).
    _slice("draining", _ep("10.244.2.18", ready=False, serving=True, terminating=True),
           _ep("10.244.2.19", ready=False, serving=False, terminating=True)),
    # eTP Local with local ready endpoints: terminating ones are ignored everywhere.
    _slice("term-local-ready", _ep("10.244.1.20"), _ep("10.244.1.21"),
           _ep("10.244.1.22", ready=False, serving=True, terminating=True),
           _ep("10.244.1.23", ready=False, serving=False, terminating=True), _ep("10.244.2.24")),
    # Only serving+terminating endpoints locally: Local falls back to them, Cluster does not.
    _slice("term-local-only", _ep("10.244.1.25", ready=False, serving=True, terminating=True),
           _ep("10.244.1.26", ready=False, serving=True, terminating=True),
           _ep("10.244.1.27", ready=False, serving=False, terminating=True), _ep("10.244.2.28")),
    # A remote terminating endpoint: usable from inside, but nothing local for outsiders.
    _slice("term-remote", _ep("10.244.2.29", ready=False, serving=True, terminating=True)),
    _slice("kube-dns", _ep("10.244.2.53"), ns="kube-system",
           ports=[{"name": "dns", "port": 53, "protocol": "UDP"},
                  {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]),
]


@dataclass(frozen=True)
class Expect:
    """What must happen. `dests` is either a set of `ip:port` (any probabilities) or a
    mapping to probabilities (compared within 1e-6). `masq` None means "don't care"."""

    verdict: str = "ACCEPT"
    dests: frozenset[str] | Mapping[str, float] = frozenset()
    masq: bool | None = None


@dataclass(frozen=True)
class FlowCase:
    """A packet and its expectation. `affinity` is prior session-affinity state, as
    (service port `ns/name:port`, endpoint `ip:port`, seconds ago) seen for `src`."""

    name: str
    src: str
    dst: str
    port: int
    expect: Expect
    protocol: str = "tcp"
    from_node: bool | None = None
    affinity: tuple[tuple[str, str, float], ...] = ()
    modes: frozenset[str] | None = None
    note: str = field(default="", compare=False)


def _d(*dests: str) -> frozenset[str]:
    return frozenset(dests)


HALF = 0.5
CASES: list[FlowCase] = [
    # ClusterIP
    FlowCase("pod to ClusterIP is DNATed, not masqueraded", POD_A, "10.96.0.10", 80,
             Expect(dests={"10.244.1.5:8080": HALF, "10.244.2.5:8080": HALF}, masq=False)),
    FlowCase("pod on another node to ClusterIP, not masqueraded", POD_B, "10.96.0.10", 80,
             Expect(dests=_d("10.244.1.5:8080", "10.244.2.5:8080"), masq=False)),
    FlowCase("node to ClusterIP is masqueraded", NODE_IP, "10.96.0.10", 80,
             Expect(dests=_d("10.244.1.5:8080", "10.244.2.5:8080"), masq=True)),
    FlowCase("outside to ClusterIP (routed to the node) is masqueraded", HOST, "10.96.0.10", 80,
             Expect(dests=_d("10.244.1.5:8080", "10.244.2.5:8080"), masq=True)),
    FlowCase("wrong port of a ClusterIP is not touched", POD_A, "10.96.0.10", 81,
             Expect(dests=_d())),
    FlowCase("three endpoints are picked 1/3 each", POD_A, "10.96.0.12", 80,
             Expect(dests={"10.244.1.7:8080": 1 / 3, "10.244.2.7:8080": 1 / 3,
                           "10.244.2.8:8080": 1 / 3}, masq=False)),
    FlowCase("hairpin: pod reaching itself through its Service is masqueraded", "10.244.1.6",
             "10.96.0.11", 80, Expect(dests=_d("10.244.1.6:8080"), masq=True)),
    FlowCase("UDP port of a multi-protocol Service", POD_A, "10.96.0.53", 53,
             Expect(dests=_d("10.244.2.53:53"), masq=False), protocol="udp"),
    FlowCase("TCP port of a multi-protocol Service", POD_A, "10.96.0.53", 53,
             Expect(dests=_d("10.244.2.53:53"), masq=False)),
    FlowCase("no endpoints: pod is rejected", POD_A, "10.96.0.21", 80, Expect("REJECT")),
    FlowCase("no endpoints: node is rejected", NODE_IP, "10.96.0.21", 80, Expect("REJECT")),
    FlowCase("terminating but serving endpoint is used when none is ready", POD_A,
             "10.96.0.23", 80, Expect(dests=_d("10.244.2.18:8080"), masq=False)),
    # NodePort, externalTrafficPolicy
    FlowCase("outside to NodePort (eTP Cluster) is masqueraded", CLIENT, NODE_IP, 30080,
             Expect(dests=_d("10.244.2.9:8080"), masq=True)),
    FlowCase("pod to NodePort (eTP Cluster) is masqueraded", POD_A, NODE_IP, 30080,
             Expect(dests=_d("10.244.2.9:8080"), masq=True)),
    FlowCase("outside to NodePort (eTP Local) keeps its source, local endpoint only", CLIENT,
             NODE_IP, 30081, Expect(dests=_d("10.244.1.10:8080"), masq=False)),
    FlowCase("pod to NodePort (eTP Local) is short-circuited to all endpoints", POD_A, NODE_IP,
             30081, Expect(dests=_d("10.244.1.10:8080", "10.244.2.10:8080"), masq=False)),
    FlowCase("node to NodePort (eTP Local) reaches all endpoints, masqueraded", NODE_IP, NODE_IP,
             30081, Expect(dests=_d("10.244.1.10:8080", "10.244.2.10:8080"), masq=True)),
    FlowCase("outside to NodePort (eTP Local) without local endpoints is dropped", CLIENT,
             NODE_IP, 30082, Expect("DROP")),
    FlowCase("pod to NodePort (eTP Local) without local endpoints still works", POD_A, NODE_IP,
             30082, Expect(dests=_d("10.244.2.11:8080"), masq=False)),
    FlowCase("node to its NodePort on 127.0.0.1 (iptables localhost NodePorts)", NODE_IP,
             "127.0.0.1", 30080, Expect(dests=_d("10.244.2.9:8080"), masq=True),
             modes=frozenset({"iptables"})),
    FlowCase("health-check node port is accepted", CLIENT, NODE_IP, 32000, Expect()),
    # LoadBalancer
    FlowCase("outside in source range to LB IP is accepted", CLIENT, "172.30.0.200", 80,
             Expect(dests=_d("10.244.2.12:8080"), masq=True)),
    FlowCase("outside not in source range to LB IP is dropped", BLOCKED, "172.30.0.200", 80,
             Expect("DROP")),
    FlowCase("NodePort of a source-ranged LB ignores the ranges", BLOCKED, NODE_IP, 30083,
             Expect(dests=_d("10.244.2.12:8080"), masq=True)),
    FlowCase("outside to LB IP (eTP Local): local endpoint, source kept", CLIENT,
             "172.30.0.201", 80, Expect(dests=_d("10.244.1.13:8080"), masq=False)),
    FlowCase("pod to LB IP (eTP Local) is short-circuited to all endpoints", POD_A,
             "172.30.0.201", 80, Expect(dests=_d("10.244.1.13:8080", "10.244.2.13:8080"),
                                        masq=False)),
    # externalIPs
    FlowCase("outside to an external IP is DNATed and masqueraded", CLIENT, "198.51.100.7", 80,
             Expect(dests=_d("10.244.2.14:8080"), masq=True)),
    FlowCase("pod to an external IP (eTP Cluster) is masqueraded", POD_A, "198.51.100.7", 80,
             Expect(dests=_d("10.244.2.14:8080"), masq=True)),
    # internalTrafficPolicy
    FlowCase("iTP Local: pod reaches only the local endpoint", POD_A, "10.96.0.19", 80,
             Expect(dests=_d("10.244.1.15:8080"), masq=False)),
    FlowCase("iTP Local: node reaches only the local endpoint, masqueraded", NODE_IP,
             "10.96.0.19", 80, Expect(dests=_d("10.244.1.15:8080"), masq=True)),
    FlowCase("iTP Local without local endpoints is dropped", POD_A, "10.96.0.20", 80,
             Expect("DROP")),
    # Session affinity
    FlowCase("affinity: a new client is balanced", CLIENT, "10.96.0.22", 80,
             Expect(dests={"10.244.1.17:8080": HALF, "10.244.2.17:8080": HALF})),
    FlowCase("affinity: a known client sticks to its endpoint", POD_A, "10.96.0.22", 80,
             Expect(dests={"10.244.2.17:8080": 1.0}, masq=False),
             affinity=(("default/sticky:http", "10.244.2.17:8080", 60.0),)),
    FlowCase("affinity: an expired entry is ignored", POD_A, "10.96.0.22", 80,
             Expect(dests={"10.244.1.17:8080": HALF, "10.244.2.17:8080": HALF}),
             affinity=(("default/sticky:http", "10.244.2.17:8080", 20000.0),)),
    # Terminating endpoints with externalTrafficPolicy Local
    FlowCase("eTP Local, ready endpoints: pods use all ready ones", POD_A, "10.96.0.24", 80,
             Expect(dests=_d("10.244.1.20:8080", "10.244.1.21:8080", "10.244.2.24:8080"),
                    masq=False)),
    FlowCase("eTP Local, ready endpoints: outside uses local ready ones", CLIENT,
             "172.30.0.202", 80, Expect(dests=_d("10.244.1.20:8080", "10.244.1.21:8080"),
                                        masq=False)),
    FlowCase("eTP Local, only terminating locally: pods use the ready remote one", POD_A,
             "10.96.0.25", 80, Expect(dests=_d("10.244.2.28:8080"), masq=False)),
    FlowCase("eTP Local, only terminating locally: outside falls back to them", CLIENT,
             "172.30.0.203", 80, Expect(dests=_d("10.244.1.25:8080", "10.244.1.26:8080"),
                                        masq=False)),
    FlowCase("eTP Local, terminating remote endpoint: pods still reach it", POD_A, "10.96.0.26",
             80, Expect(dests=_d("10.244.2.29:8080"), masq=False)),
    FlowCase("eTP Local, terminating remote endpoint: outside is dropped", CLIENT,
             "172.30.0.204", 80, Expect("DROP")),
    # Not a Service at all
    FlowCase("traffic to a plain pod IP is left alone", POD_A, "10.244.2.5", 8080,
             Expect(dests=_d(), masq=False)),
]
