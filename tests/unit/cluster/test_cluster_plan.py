"""The local cluster's layout (pure): names, addresses, routes, processes, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from svcnet.cluster.plan import (
    ROUTE_PROTO,
    HostRoute,
    Naming,
    PlanError,
    Route,
    find_conflicts,
    forward_accept_needed,
    forward_rule_args,
    plan_cluster,
    plan_from_settings,
)

DIR = Path("/var/lib/svcnet/cluster")


def test_default_two_node_layout() -> None:
    p = plan_cluster(2, DIR)
    assert p.naming == Naming("svcnet0", "svcnet-", "svn-", "SVCNET-FWD")
    assert (p.host_ip, p.host_prefix, p.server_url) == (
        "172.30.0.1", "172.30.0.1/24", "https://172.30.0.1:6443")
    assert [(n.name, n.ip, n.pod_cidr, n.netns, n.veth_host, n.veth_node) for n in p.nodes] == [
        ("node-1", "172.30.0.11", "10.244.1.0/24", "svcnet-node-1", "svn-node-1", "eth0"),
        ("node-2", "172.30.0.12", "10.244.2.0/24", "svcnet-node-2", "svn-node-2", "eth0")]
    assert [n.pod_gateway for n in p.nodes] == ["10.244.1.1", "10.244.2.1"]
    assert p.lb_pool == ("172.30.0.200", "172.30.0.250")
    assert p.dns_ip == "10.96.0.10"
    assert (p.kubeconfig, p.state_file, p.log_dir, p.ca_file) == (
        DIR / "kubeconfig.yaml", DIR / "cluster.json", DIR / "logs", DIR / "pki" / "ca.crt")
    assert p.nodes[0].state_dir == DIR / "nodes" / "node-1"
    assert p.nodes[1].log_file == DIR / "logs" / "agent-node-2.log"
    assert p.owner_tag == f"svcnet:{DIR}"


def test_routes_of_the_host_and_of_each_node() -> None:
    p = plan_cluster(3, DIR)
    assert [str(r) for r in p.host_routes] == [
        "10.244.1.0/24 via 172.30.0.11 dev svcnet0",
        "10.244.2.0/24 via 172.30.0.12 dev svcnet0",
        "10.244.3.0/24 via 172.30.0.13 dev svcnet0",
        "10.96.0.0/12 via 172.30.0.11 dev svcnet0",
        "unreachable 10.244.0.0/16"]
    assert [str(r) for r in p.nodes[1].routes] == [
        "10.244.1.0/24 via 172.30.0.11 dev eth0",
        "10.244.3.0/24 via 172.30.0.13 dev eth0",
        "10.96.0.0/12 dev eth0 scope link"]
    # every route carries svcnet's protocol, so deleting one never hits a look-alike
    assert p.host_routes[0].args() == ["10.244.1.0/24", "via", "172.30.0.11", "dev", "svcnet0",
                                       "proto", str(ROUTE_PROTO)]
    assert p.host_routes[-1].args() == ["unreachable", "10.244.0.0/16", "proto",
                                        str(ROUTE_PROTO)]
    assert p.probe_addresses() == ["10.244.1.1", "10.244.2.1", "10.244.3.1", "10.96.0.1"]


def test_one_node_has_no_inter_node_routes() -> None:
    p = plan_cluster(1, DIR)
    assert [str(r) for r in p.nodes[0].routes] == ["10.96.0.0/12 dev eth0 scope link"]


def test_twenty_nodes_fit_names_and_addresses() -> None:
    p = plan_cluster(20, DIR)
    last = p.nodes[-1]
    assert (last.name, last.ip, last.pod_cidr, last.veth_host) == (
        "node-20", "172.30.0.30", "10.244.20.0/24", "svn-node-20")
    assert all(len(n.veth_host) <= 15 for n in p.nodes)
    assert len({n.ip for n in p.nodes}) == 20


def test_processes() -> None:
    p = plan_cluster(2, DIR, proxy_mode="none")
    srv = p.server_process("/usr/bin/python3")
    assert srv.argv == ("/usr/bin/python3", "-m", "svcnet.cli.main", "server", "--data-dir",
                        str(DIR), "--listen", "172.30.0.1:6443", "--advertise-address",
                        "172.30.0.1", "--service-cluster-ip-range", "10.96.0.0/12",
                        "--tls-san", "10.96.0.1", "--dns-listen", "172.30.0.1:53",
                        "--dns-metrics-listen", "172.30.0.1:9153")
    assert (srv.netns, srv.log_file) == ("", DIR / "logs" / "server.log")
    up = plan_cluster(2, DIR, dns_upstreams=["127.0.0.1:5300", "192.0.2.53"])
    assert up.server_process("py").argv[-4:] == ("--dns-upstream", "127.0.0.1:5300",
                                                 "--dns-upstream", "192.0.2.53")
    assert plan_from_settings(up.settings).dns_upstreams == ("127.0.0.1:5300", "192.0.2.53")
    with pytest.raises(PlanError, match="--dns-upstream: upstream 'dns.example'"):
        plan_cluster(2, DIR, dns_upstreams=["dns.example"])
    agent = p.agent_process(p.nodes[1], "/usr/bin/python3")
    assert agent.argv == (
        "ip", "netns", "exec", "svcnet-node-2", "/usr/bin/python3", "-m", "svcnet.cli.main",
        "agent", "--server", "https://172.30.0.1:6443", "--token-file",
        str(DIR / "nodes" / "node-2" / "token"), "--ca-file",
        str(DIR / "pki" / "ca.crt"), "--node-name", "node-2", "--node-ip", "172.30.0.12",
        "--pod-cidr", "10.244.2.0/24", "--state-dir", str(DIR / "nodes" / "node-2"),
        "--proxy-mode", "none", "--cluster-cidr", "10.244.0.0/16", "--cluster-dns", "10.96.0.10")
    assert (agent.name, agent.netns) == ("agent-node-2", "svcnet-node-2")
    assert p.token_argv(p.nodes[0], "py") == ("py", "-m", "svcnet.cli.main", "token", "create",
                                              "--node", "node-1", "--data-dir", str(DIR))


def test_custom_cidrs_and_cluster_name() -> None:
    p = plan_cluster(2, DIR, node_cidr="192.168.77.0/24", pod_cidr="10.50.0.0/20",
                     service_cidr="10.60.0.0/16", cluster_name="blue", api_port=7443)
    assert p.naming == Naming("blue0", "blue-", "blue-", "BLUE-FWD")
    assert [(n.ip, n.pod_cidr, n.netns, n.veth_host) for n in p.nodes] == [
        ("192.168.77.11", "10.50.1.0/24", "blue-node-1", "blue-node-1"),
        ("192.168.77.12", "10.50.2.0/24", "blue-node-2", "blue-node-2")]
    assert p.server_url == "https://192.168.77.1:7443"
    assert p.dns_ip == "10.60.0.10"
    assert "--tls-san" in p.server_process("py").argv and "10.60.0.1" in \
        p.server_process("py").argv
    assert p.lb_pool == ("192.168.77.200", "192.168.77.250")
    assert Naming.for_cluster("t7") == Naming("t70", "t7-", "t7-", "T7-FWD")


def test_settings_round_trip() -> None:
    p = plan_cluster(3, DIR, pod_cidr="10.50.0.0/16", proxy_mode="none", cluster_name="abc")
    assert plan_from_settings(p.settings) == p
    assert plan_from_settings(p.settings).settings == p.settings
    n = Naming("svt1234", "svcnet-t1234-", "vt1234-", "SVT1234-FWD")
    q = plan_cluster(2, DIR, naming=n)
    assert plan_from_settings(q.settings).naming == n


@pytest.mark.parametrize("kwargs, message", [
    ({"nodes": 0}, "--nodes 0: must be between 1 and 20"),
    ({"nodes": 21}, "--nodes 21: must be between 1 and 20"),
    ({"nodes": True}, "--nodes True: must be between 1 and 20"),
    ({"proxy_mode": "ebpf"}, "--proxy-mode ebpf: expected one of iptables, none"),
    ({"api_port": 0}, "--api-port 0: must be in 1-65535"),
    ({"data_dir": Path("rel/dir")}, "--data-dir rel/dir: must be an absolute path"),
    ({"pod_cidr": "10.244.0.1/16"}, "--pod-cidr 10.244.0.1/16: 10.244.0.1/16 has host bits set"),
    ({"pod_cidr": "10.244.0.0"}, "--pod-cidr 10.244.0.0: too small for 2 node(s)"),
    ({"service_cidr": "banana"}, "--service-cidr banana: "),
    ({"service_cidr": "fd00::/108"}, "--service-cidr fd00::/108: "),
    ({"node_cidr": "127.5.0.0/24"}, "--node-cidr 127.5.0.0/24: not usable for a cluster"),
    ({"node_cidr": "169.254.3.0/24"}, "--node-cidr 169.254.3.0/24: not usable"),
    ({"node_cidr": "172.30.0.0/25"}, "--node-cidr 172.30.0.0/25: needs at least a /24"),
    ({"pod_cidr": "10.244.0.0/23", "nodes": 2}, "--pod-cidr 10.244.0.0/23: too small for 2"),
    ({"service_cidr": "10.96.0.0/29"}, "--service-cidr 10.96.0.0/29: too small"),
    ({"pod_cidr": "10.96.0.0/16"}, "--pod-cidr 10.96.0.0/16 overlaps --service-cidr "
                                   "10.96.0.0/12"),
    ({"node_cidr": "10.244.7.0/24"}, "--node-cidr 10.244.7.0/24 overlaps --pod-cidr "
                                     "10.244.0.0/16"),
    ({"cluster_name": "Svc"}, "--cluster-name 'Svc': expected 1-7 characters"),
    ({"cluster_name": "toolongname"}, "--cluster-name 'toolongname'"),
])
def test_invalid_settings_are_one_line_errors(kwargs: dict[str, object], message: str) -> None:
    args = {"nodes": 2, "data_dir": DIR, **kwargs}
    with pytest.raises(PlanError) as e:
        plan_cluster(**args)  # type: ignore[arg-type]
    assert str(e.value).startswith(message)
    assert "\n" not in str(e.value)


def test_pod_cidr_just_big_enough() -> None:
    assert plan_cluster(1, DIR, pod_cidr="10.244.0.0/23").nodes[0].pod_cidr == "10.244.1.0/24"
    assert plan_cluster(3, DIR, pod_cidr="10.244.0.0/22").nodes[2].pod_cidr == "10.244.3.0/24"


def test_naming_limits() -> None:
    with pytest.raises(PlanError, match="veth name 'waytoolongpfx-node-2'"):
        plan_cluster(2, DIR, naming=Naming(veth_prefix="waytoolongpfx-"))
    with pytest.raises(PlanError, match="not 'svcnet-pod-'"):
        plan_cluster(2, DIR, naming=Naming(netns_prefix="svcnet-pod-x"))
    with pytest.raises(PlanError, match="bridge name"):
        plan_cluster(2, DIR, naming=Naming(bridge="bad name"))


def _routes(*specs: dict[str, str]) -> list[HostRoute]:
    return [HostRoute.from_ip_json(d) for d in specs]


def test_conflicts_with_routes_the_host_already_has() -> None:
    p = plan_cluster(2, DIR)
    host = _routes(
        {"dst": "default", "gateway": "192.0.2.1", "dev": "eth0"},  # ignored: default
        {"dst": "192.0.2.0/24", "dev": "eth0", "protocol": "kernel"},
        {"dst": "172.17.0.0/16", "dev": "docker0", "protocol": "kernel"},  # no overlap
        # this cluster's own routes, as after a first `up`: ignored
        {"dst": "172.30.0.0/24", "dev": "svcnet0", "protocol": "kernel"},
        {"type": "local", "dst": "172.30.0.1", "dev": "svcnet0", "table": "local"},
        {"dst": "10.244.1.0/24", "gateway": "172.30.0.11", "dev": "svcnet0", "protocol": "83"},
        {"type": "unreachable", "dst": "10.244.0.0/16", "protocol": "83"},
    )
    assert find_conflicts(p, host) == []
    clash = _routes(
        {"dst": "10.96.0.0/16", "dev": "wg0", "protocol": "static"},
        {"dst": "10.244.3.0/24", "dev": "cni0", "table": "200"},
        {"type": "unreachable", "dst": "10.244.0.0/16", "protocol": "static"},
        {"type": "local", "dst": "172.30.0.5", "dev": "lo", "table": "local"},
    )
    assert find_conflicts(p, host + clash) == [
        "node network 172.30.0.0/24 overlaps the host's route local 172.30.0.5 dev lo "
        "table local; pick another with --node-cidr",
        "pod CIDR 10.244.0.0/16 overlaps the host's route 10.244.3.0/24 dev cni0 table 200; "
        "pick another with --pod-cidr",
        "pod CIDR 10.244.0.0/16 overlaps the host's route unreachable 10.244.0.0/16; "
        "pick another with --pod-cidr",
        "service CIDR 10.96.0.0/12 overlaps the host's route 10.96.0.0/16 dev wg0; "
        "pick another with --service-cidr",
    ]
    # a route covering a whole claimed network (but not the default route) conflicts too
    assert find_conflicts(p, _routes({"dst": "10.0.0.0/8", "dev": "tun0"})) == [
        "pod CIDR 10.244.0.0/16 overlaps the host's route 10.0.0.0/8 dev tun0; pick another "
        "with --pod-cidr",
        "service CIDR 10.96.0.0/12 overlaps the host's route 10.0.0.0/8 dev tun0; pick "
        "another with --service-cidr"]


def test_routes_of_another_clusters_bridge_conflict() -> None:
    p = plan_cluster(2, DIR)
    other = _routes({"dst": "10.244.1.0/24", "gateway": "172.31.0.11", "dev": "blue0",
                     "protocol": "83"})
    assert find_conflicts(p, other) == [
        "pod CIDR 10.244.0.0/16 overlaps the host's route 10.244.1.0/24 dev blue0; pick "
        "another with --pod-cidr"]


@pytest.mark.parametrize("bridge_nf, rules, needed", [
    (False, ["-P FORWARD DROP"], False),  # no br_netfilter: bridged frames skip iptables
    (True, ["-P FORWARD ACCEPT"], False),
    (True, ["-P FORWARD DROP", "-A FORWARD -j DOCKER-USER"], True),
    (True, ["-P FORWARD ACCEPT", "-A FORWARD -j REJECT --reject-with icmp-host-prohibited"],
     True),
    (True, ["-P FORWARD ACCEPT", "-A FORWARD -o docker0 -j DOCKER"], False),
])
def test_forward_accept_needed(bridge_nf: bool, rules: list[str], needed: bool) -> None:
    assert forward_accept_needed(bridge_nf, rules) is needed


def test_forward_rule_is_scoped_to_the_bridge() -> None:
    p = plan_cluster(2, DIR)
    assert forward_rule_args(p) == [
        "-i", "svcnet0", "-o", "svcnet0", "-m", "comment", "--comment",
        "svcnet: frames bridged between nodes of svcnet0", "-j", "SVCNET-FWD"]


def test_route_rendering() -> None:
    assert str(Route("10.1.0.0/24", via="10.0.0.2", dev="eth0")) == \
        "10.1.0.0/24 via 10.0.0.2 dev eth0"
    assert str(Route("10.1.0.0/16", kind="unreachable")) == "unreachable 10.1.0.0/16"
