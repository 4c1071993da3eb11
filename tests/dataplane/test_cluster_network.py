"""The local cluster's network in the real kernel (root): `svcnet.cluster.network`.

Every test uses its own names (bridge `svt<hex>`, namespaces `svcnet-t<hex>-node-i`, veths
`vt<hex>-node-i`) and CIDRs checked to be unused on this host (node network in
172.31.0.0/16, pod and service networks in 10.192.0.0/10), so they never collide with a
real `svcnet up` or with each other. Traffic only goes between namespaces the tests create
and the test bridge. Everything is removed in `finally`, and each test asserts that
nothing of it is left.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import pytest

from svcnet.cluster import network, processes
from svcnet.cluster.plan import (
    POD_NETNS_PREFIX,
    ClusterPlan,
    Naming,
    find_conflicts,
    forward_rule_args,
    plan_cluster,
)

pytestmark = [
    pytest.mark.dataplane,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, links)"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="needs the ip command (iproute2)"),
]

ROOT_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")

SERVER = """\
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(16)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(sys.argv[2].encode())
    c.close()
"""

CLIENT = """\
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
print(c.recv(100).decode())
"""


def unique_plan(tmp_path: Path, nodes: int = 2) -> ClusterPlan:
    """A plan with names and CIDRs of its own, checked against the host's routes."""
    tag = secrets.token_hex(2)
    naming = Naming(bridge=f"svt{tag}", netns_prefix=f"svcnet-t{tag}-",
                    veth_prefix=f"vt{tag}-", chain=f"SVT{tag.upper()}-FWD")
    routes = network.host_routes()
    rnd = random.Random()
    for _ in range(50):
        a, b, c = rnd.sample(range(192, 255), 3)
        plan = plan_cluster(nodes, tmp_path, node_cidr=f"172.31.{rnd.randrange(256)}.0/24",
                            pod_cidr=f"10.{a}.0.0/16", service_cidr=f"10.{b}.0.0/16",
                            naming=naming)
        if not find_conflicts(plan, routes):
            return plan
    pytest.skip("found no unused CIDRs on this host")


@contextmanager
def listener(netns: str, port: int, answer: str) -> Iterator[subprocess.Popen[str]]:
    """A TCP server inside `netns` on all its addresses that answers `answer`."""
    proc = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c", SERVER,
                             str(port), answer], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        proc.kill()
        proc.wait(5)


def connect_from(netns: str, ip: str, port: int) -> str:
    """What the server at ip:port answers to a client in `netns` ("" = root namespace)."""
    if not netns:
        with socket.create_connection((ip, port), timeout=3) as c:
            return c.recv(100).decode()
    res = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", CLIENT, ip,
                          str(port)], capture_output=True, text=True, timeout=10)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def ip_out(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True).stdout


def assert_nothing_left(plan: ClusterPlan, extra_netns: Sequence[str] = ()) -> None:
    assert network.leftovers(plan, extra_netns) == []
    netns = ip_out("netns", "list")
    links = ip_out("link")
    routes = ip_out("route", "show", "table", "all")
    for ns in [*plan.namespaces(), *extra_netns]:
        assert ns not in netns
        assert not Path("/etc/netns", ns).exists()
    for name in [plan.naming.bridge, *(n.veth_host for n in plan.nodes)]:
        assert f" {name}:" not in links and f" {name}@" not in links
    for r in plan.host_routes:
        assert r.dst not in routes
    assert plan.naming.bridge not in routes
    assert not network.chain_exists(plan.naming.chain)


def test_two_nodes_reach_each_other_and_the_host_and_teardown_leaves_nothing(
        tmp_path: Path) -> None:
    plan = unique_plan(tmp_path)
    forward_before = ROOT_FORWARD.read_text()
    n1, n2 = plan.nodes
    try:
        network.setup(plan)
        network.setup(plan)  # twice: finds everything in place, changes nothing
        assert ROOT_FORWARD.read_text() == forward_before == "0\n"
        for n in plan.nodes:
            fwd = subprocess.run(["ip", "netns", "exec", n.netns, "cat", str(ROOT_FORWARD)],
                                 capture_output=True, text=True, check=True).stdout
            assert fwd == "1\n"
            assert f"inet {n.ip}/24" in ip_out("-n", n.netns, "addr", "show", "dev", "eth0")
        with listener(n2.netns, 7001, "node-2"), listener(n1.netns, 7001, "node-1"):
            assert connect_from(n1.netns, n2.ip, 7001) == "node-2"  # node -> node
            assert connect_from(n2.netns, n1.ip, 7001) == "node-1"
            assert connect_from("", n1.ip, 7001) == "node-1"  # host -> node
        # node -> host over the node network (the API server listens there)
        with socket.socket() as srv:
            srv.bind((plan.host_ip, 0))
            srv.listen(1)
            port = srv.getsockname()[1]
            proc = subprocess.Popen(["ip", "netns", "exec", n2.netns, sys.executable, "-c",
                                     "import socket,sys; socket.create_connection("
                                     "(sys.argv[1], int(sys.argv[2])), timeout=3)",
                                     plan.host_ip, str(port)])
            srv.settimeout(5)
            conn, (peer, _) = srv.accept()
            conn.close()
            assert peer == n2.ip
            assert proc.wait(10) == 0
        # the host's routes into the cluster go through the bridge; nothing goes out
        for r in plan.host_routes[:-1]:
            assert r.dst in ip_out("route", "show", "dev", plan.naming.bridge)
        got = ip_out("route", "get", n2.pod_gateway)
        assert f"via {n2.ip} dev {plan.naming.bridge}" in got
        spare = subprocess.run(["ip", "route", "get", plan.pod_cidr.split("/")[0][:-1] + "9"],
                               capture_output=True, text=True)
        assert spare.returncode != 0  # the unassigned rest of the pod CIDR is unreachable
        # inside a node: the other node's pods via that node; services on-link
        assert f"{n2.pod_cidr} via {n2.ip} dev eth0" in ip_out("-n", n1.netns, "route")
        assert "default" not in ip_out("-n", n1.netns, "route")
    finally:
        problems = network.teardown(plan)
    assert problems == []
    assert_nothing_left(plan)
    assert ROOT_FORWARD.read_text() == forward_before
    assert network.teardown(plan) == []  # teardown twice is fine


def test_pods_of_the_cluster_are_found_stopped_and_removed(tmp_path: Path) -> None:
    """A pod namespace wired like the agent does it (veth into the node namespace, an
    address from the node's pod CIDR, a process inside, an /etc/netns dir) is found,
    its process stopped and everything removed; a look-alike namespace that is not
    attached to the cluster is left alone."""
    plan = unique_plan(tmp_path)
    n1, n2 = plan.nodes
    tag = plan.naming.bridge[3:]
    pod_ns = f"{POD_NETNS_PREFIX}t{tag}pod1"
    decoy = f"{POD_NETNS_PREFIX}t{tag}decoy"
    pod_ip = str(n1.pod_gateway)[:-1] + "5"
    try:
        network.setup(plan)
        for cmd in (["netns", "add", pod_ns], ["netns", "add", decoy],
                    ["-n", n1.netns, "link", "add", "name", "p1", "type", "veth", "peer",
                     "name", "eth0", "netns", pod_ns],
                    ["-n", n1.netns, "addr", "add", f"{n1.pod_gateway}/24", "dev", "p1"],
                    ["-n", n1.netns, "link", "set", "p1", "up"],
                    ["-n", pod_ns, "addr", "add", f"{pod_ip}/24", "dev", "eth0"],
                    ["-n", pod_ns, "link", "set", "eth0", "up"],
                    ["-n", pod_ns, "link", "set", "lo", "up"],
                    ["-n", pod_ns, "route", "add", "default", "via", n1.pod_gateway]):
            ip_out(*cmd)
        Path("/etc/netns", pod_ns).mkdir(parents=True, exist_ok=True)
        Path("/etc/netns", pod_ns, "resolv.conf").write_text("nameserver 10.96.0.10\n")
        with listener(pod_ns, 8080, "pod") as pod_proc:
            # host -> pod through node-1; node-2 -> pod through the inter-node route
            assert connect_from("", pod_ip, 8080) == "pod"
            assert connect_from(n2.netns, pod_ip, 8080) == "pod"
            assert network.find_pod_namespaces(plan) == [pod_ns]
            assert pod_proc.pid in processes.processes_in([pod_ns])
            stopped = processes.stop_processes([], [pod_ns, *plan.namespaces()], tmp_path,
                                                grace=3)
            assert f"pid {pod_proc.pid}" in stopped
            assert pod_proc.wait(5) is not None
        assert network.teardown(plan, [pod_ns]) == []
        assert_nothing_left(plan, [pod_ns])
        assert network.netns_exists(decoy)
    finally:
        network.teardown(plan, [pod_ns])
        subprocess.run(["ip", "netns", "del", decoy], capture_output=True)
        shutil.rmtree(Path("/etc/netns", pod_ns), ignore_errors=True)
    assert not network.netns_exists(decoy)


def test_br_netfilter_accept_rule_is_scoped_and_removed(tmp_path: Path) -> None:
    """The FORWARD rule for bridged node traffic (added by `setup` only when the host's
    FORWARD chain would drop it) matches only frames in and out of our bridge, and
    teardown removes it and its chain. Installed directly here: the host's FORWARD policy
    is not ours to change in a test."""
    if shutil.which("iptables") is None:
        pytest.skip("needs iptables")
    plan = unique_plan(tmp_path)
    try:
        network.setup(plan)
        network.ensure_forward_chain(plan)
        network.ensure_forward_chain(plan)  # idempotent: still one jump, one ACCEPT
        fwd = subprocess.run(["iptables", "-w", "-S", "FORWARD"], capture_output=True,
                             text=True, check=True).stdout
        assert fwd.count(f"-j {plan.naming.chain}") == 1
        assert f"-i {plan.naming.bridge} -o {plan.naming.bridge}" in fwd
        chain = subprocess.run(["iptables", "-w", "-S", plan.naming.chain],
                               capture_output=True, text=True, check=True).stdout
        assert chain.count("-j ACCEPT") == 1
        assert "nat" not in " ".join(forward_rule_args(plan))
    finally:
        problems = network.teardown(plan)
    assert problems == []
    assert_nothing_left(plan)


def test_a_route_already_claiming_a_cidr_is_refused(tmp_path: Path) -> None:
    plan = unique_plan(tmp_path)
    claim = plan.nodes[1].pod_cidr  # e.g. a VPN route into the pod network
    subprocess.run(["ip", "route", "add", "blackhole", claim, "proto", "84"], check=True)
    try:
        with pytest.raises(network.ConflictError) as e:
            network.setup(plan)
        assert f"pod CIDR {plan.pod_cidr} overlaps the host's route blackhole {claim}" \
            in str(e.value)
        assert "\n" not in str(e.value)
        assert not network.netns_exists(plan.nodes[0].netns)  # refused before making any
    finally:
        subprocess.run(["ip", "route", "del", "blackhole", claim, "proto", "84"], check=True)
        network.teardown(plan)
    assert_nothing_left(plan)


def test_a_bridge_owned_by_another_data_dir_is_refused(tmp_path: Path) -> None:
    plan = unique_plan(tmp_path / "a")
    other = plan_cluster(2, tmp_path / "b", node_cidr=plan.node_cidr, pod_cidr=plan.pod_cidr,
                         service_cidr=plan.service_cidr, naming=plan.naming)
    try:
        network.setup(plan)
        with pytest.raises(network.ConflictError, match="belongs to the cluster in"):
            network.setup(other)
        # the same names, but not its bridge: `other` touches nothing and sees nothing
        assert network.teardown(other) == []
        assert network.leftovers(other) == []
        assert network.link_alias(plan.naming.bridge) == plan.owner_tag
        assert all(network.netns_exists(ns) for ns in plan.namespaces())
        assert plan.nodes[0].pod_cidr in ip_out("route", "show", "dev", plan.naming.bridge)
    finally:
        network.teardown(plan)
    assert_nothing_left(plan)
