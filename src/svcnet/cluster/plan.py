"""The layout of a local cluster, computed from a few settings (pure: no I/O).

`plan_cluster(nodes, data_dir, ...)` returns a `ClusterPlan`: node names, addresses, pod
CIDRs, namespace and link names, the routes of every namespace, and the command lines of
the server and of each agent. `network` and `supervisor` only carry the plan out, so the
whole shape of a cluster can be read, tested and printed without root.

Address plan (DESIGN.md §4), for the default settings and node i (1-based):

    node network  172.30.0.0/24 on bridge `svcnet0` in the root namespace
    host          172.30.0.1   (the API server listens here, port 6443)
    node i        172.30.0.(10+i) on `eth0` in netns `svcnet-node-i`; host side `svn-node-i`
    pods of i     10.244.i.0/24 (the agent's bridge `cbr0` holds 10.244.i.1)
    services      10.96.0.0/12 (kube-dns 10.96.0.10)
    LB pool       172.30.0.200 - 172.30.0.250

Routes. Inside node i: each other node's pod CIDR via that node's IP, and the service
CIDR on-link on `eth0`. The latter is not for pods (their packets are DNATed in
PREROUTING before routing) but for processes of the node itself: a locally generated
packet needs a route *before* the OUTPUT chain can DNAT it, and a node has no default
route. In the root namespace: each node's pod CIDR via that node, the service CIDR via
node 1 (whose kube-proxy DNATs it), and an `unreachable` route for the whole pod CIDR so
the unassigned rest of it never follows the default route off the machine. Every route
svcnet adds carries protocol `ROUTE_PROTO`, which is how `down` and the conflict check
recognise them. The root namespace never forwards: the host reaches the cluster the way
an outside client would, through a node.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from svcnet.dns.upstream import parse_upstream

DEFAULT_NODE_CIDR = "172.30.0.0/24"
DEFAULT_POD_CIDR = "10.244.0.0/16"
DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
DEFAULT_API_PORT = 6443
DEFAULT_CLUSTER_NAME = "svcnet"
MAX_NODES = 20
PROXY_MODES = ("iptables", "none")  # nftables, ipvs, userspace: not implemented yet
#: Route protocol number of every route svcnet adds (83 = ASCII 'S'; not assigned in
#: iproute2's rt_protos). `ip route del ... proto 83` deletes only our own routes.
ROUTE_PROTO = 83
#: Prefix of the pod namespaces the agents create (NodeConfig.netns_prefix).
POD_NETNS_PREFIX = "svcnet-pod-"
NODE_IFNAME = "eth0"
#: Offsets into the node network: host, first node (node i = NODE_OFFSET + i), LB pool.
HOST_OFFSET = 1
NODE_OFFSET = 10
LB_POOL_OFFSETS = (200, 250)
_IFNAME_MAX = 15
_CHAIN_MAX = 28
_CLUSTER_NAME_RE = re.compile(r"[a-z][a-z0-9]{0,6}")
_IFNAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,15}")


class PlanError(ValueError):
    """Settings that cannot make a cluster. The message is one line, says which option
    is wrong and why, and is printed as is by the CLI."""


@dataclass(frozen=True)
class Naming:
    """The names a cluster gives its shared host objects.

    The default cluster uses `svcnet0`, `svcnet-<node>` and `svn-<node>`. Tests (and
    anyone running two clusters side by side) pick another cluster name, so their objects
    never collide with a real `svcnet up`. `chain` is the iptables chain in the root
    namespace's filter table that holds the br_netfilter ACCEPT rule, when one is needed.
    """

    bridge: str = "svcnet0"
    netns_prefix: str = "svcnet-"
    veth_prefix: str = "svn-"
    chain: str = "SVCNET-FWD"

    @classmethod
    def for_cluster(cls, name: str) -> "Naming":
        """Names for cluster `name` ([a-z][a-z0-9]{0,6}, so `<name>-node-20` fits the
        15-character interface name limit). The default name keeps the short `svn-`
        veth prefix of the documented layout."""
        if not _CLUSTER_NAME_RE.fullmatch(name):
            raise PlanError(f"--cluster-name {name!r}: expected 1-7 characters, a lowercase "
                            "letter then lowercase letters or digits")
        if name == DEFAULT_CLUSTER_NAME:
            return cls()
        return cls(bridge=f"{name}0", netns_prefix=f"{name}-", veth_prefix=f"{name}-",
                   chain=f"{name.upper()}-FWD")

    def to_dict(self) -> dict[str, str]:
        return {"bridge": self.bridge, "netns_prefix": self.netns_prefix,
                "veth_prefix": self.veth_prefix, "chain": self.chain}


@dataclass(frozen=True)
class Route:
    """One IPv4 route. `kind` is "unicast" (with `via` and/or `dev`) or "unreachable".
    `args()` is what follows `ip route replace|del`, protocol included, so deleting a
    route can never remove one that svcnet did not add."""

    dst: str
    via: str = ""
    dev: str = ""
    kind: str = "unicast"
    scope: str = ""

    def args(self) -> list[str]:
        out = [self.dst] if self.kind == "unicast" else [self.kind, self.dst]
        if self.via:
            out += ["via", self.via]
        if self.dev:
            out += ["dev", self.dev]
        if self.scope:
            out += ["scope", self.scope]
        return out + ["proto", str(ROUTE_PROTO)]

    def __str__(self) -> str:
        return " ".join(self.args()[:-2])


@dataclass(frozen=True)
class NodePlan:
    """One node: its namespace, its link to the node network and its routes."""

    index: int
    name: str
    ip: str
    pod_cidr: str
    netns: str
    veth_host: str
    routes: tuple[Route, ...]
    state_dir: Path
    log_file: Path
    veth_node: str = NODE_IFNAME

    @property
    def token_file(self) -> Path:
        """Where `up` keeps the node's API token for its agent (mode 0600)."""
        return self.state_dir / "token"

    @property
    def pod_gateway(self) -> str:
        """The first address of the pod CIDR: the agent's `cbr0`, every pod's gateway."""
        return str(ipaddress.IPv4Network(self.pod_cidr)[1])


@dataclass(frozen=True)
class ProcessSpec:
    """A process `up` runs: its argv (already wrapped in `ip netns exec` for agents), its
    log file, and the namespace it runs in ("" = root)."""

    name: str
    argv: tuple[str, ...]
    log_file: Path
    netns: str = ""


@dataclass(frozen=True)
class HostRoute:
    """A route the host already has, as `ip -4 -j route show table all` reports it."""

    dst: str
    dev: str = ""
    type: str = "unicast"
    table: str = "main"
    protocol: str = ""

    @classmethod
    def from_ip_json(cls, d: dict[str, Any]) -> "HostRoute":
        dst = str(d.get("dst", ""))
        return cls(dst="0.0.0.0/0" if dst == "default" else dst, dev=str(d.get("dev", "")),
                   type=str(d.get("type", "unicast")), table=str(d.get("table", "main")),
                   protocol=str(d.get("protocol", "")))

    def network(self) -> ipaddress.IPv4Network | None:
        try:
            return ipaddress.IPv4Network(self.dst, strict=False)
        except ValueError:
            return None

    def __str__(self) -> str:
        parts = [self.dst] if self.type == "unicast" else [self.type, self.dst]
        if self.dev:
            parts += ["dev", self.dev]
        if self.table != "main":
            parts += ["table", self.table]
        return " ".join(parts)


@dataclass(frozen=True)
class ClusterPlan:
    """Everything `up` makes and `down` removes, as values."""

    data_dir: Path
    naming: Naming
    node_cidr: str
    host_ip: str
    pod_cidr: str
    service_cidr: str
    proxy_mode: str
    api_port: int
    nodes: tuple[NodePlan, ...]
    host_routes: tuple[Route, ...]
    lb_pool: tuple[str, str]
    cluster_name: str = DEFAULT_CLUSTER_NAME
    dns_upstreams: tuple[str, ...] = ()
    dns_log: bool = False
    settings: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def host_prefix(self) -> str:
        """The host's address on the bridge, with the node network's prefix length."""
        return f"{self.host_ip}/{ipaddress.IPv4Network(self.node_cidr).prefixlen}"

    @property
    def server_url(self) -> str:
        return f"https://{self.host_ip}:{self.api_port}"

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig.yaml"

    @property
    def state_file(self) -> Path:
        return self.data_dir / "cluster.json"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def ca_file(self) -> Path:
        return self.data_dir / "pki" / "ca.crt"

    @property
    def owner_tag(self) -> str:
        """Written as the bridge's alias: which data dir's cluster owns the bridge."""
        return f"svcnet:{self.data_dir}"

    @property
    def dns_ip(self) -> str:
        return str(ipaddress.IPv4Network(self.service_cidr)[10])

    def node(self, name: str) -> NodePlan:
        return next(n for n in self.nodes if n.name == name)

    def namespaces(self) -> list[str]:
        return [n.netns for n in self.nodes]

    def server_process(self, python: str) -> ProcessSpec:
        """The API server in the root namespace, on the host's bridge address."""
        argv: tuple[str, ...] = (
                python, "-m", "svcnet.cli.main", "server", "--data-dir", str(self.data_dir),
                "--listen", f"{self.host_ip}:{self.api_port}",
                "--advertise-address", self.host_ip,
                "--service-cluster-ip-range", self.service_cidr,
                # pods reach the API as the `kubernetes` Service: its ClusterIP must be
                # in the serving certificate whatever the service CIDR
                "--tls-san", str(ipaddress.IPv4Network(self.service_cidr)[1]),
                # cluster DNS on the host's bridge address: kube-dns's endpoints point here
                "--dns-listen", f"{self.host_ip}:53",
                "--dns-metrics-listen", f"{self.host_ip}:9153")
        for upstream in self.dns_upstreams:
            argv += ("--dns-upstream", upstream)
        if self.dns_log:
            argv += ("--dns-log",)
        return ProcessSpec("server", argv, self.log_dir / "server.log")

    def token_argv(self, node: NodePlan, python: str) -> tuple[str, ...]:
        return (python, "-m", "svcnet.cli.main", "token", "create", "--node", node.name,
                "--data-dir", str(self.data_dir))

    def agent_process(self, node: NodePlan, python: str) -> ProcessSpec:
        """The agent of `node`, run inside the node's namespace by `ip netns exec` (which
        execs, so the recorded pid is the agent's own). Its token is read from
        `node.token_file` (mode 0600), never passed on the command line, where `ps` would
        show it to every user of the machine."""
        argv = ("ip", "netns", "exec", node.netns, python, "-m", "svcnet.cli.main", "agent",
                "--server", self.server_url, "--token-file", str(node.token_file),
                "--ca-file", str(self.ca_file),
                "--node-name", node.name, "--node-ip", node.ip, "--pod-cidr", node.pod_cidr,
                "--state-dir", str(node.state_dir), "--proxy-mode", self.proxy_mode,
                "--cluster-cidr", self.pod_cidr,
                "--cluster-dns", self.dns_ip)
        return ProcessSpec(f"agent-{node.name}", argv, node.log_file, node.netns)

    def claimed_cidrs(self) -> list[tuple[str, str, str]]:
        """(cidr, what, option) the host must not already route elsewhere."""
        return [(self.node_cidr, "node network", "--node-cidr"),
                (self.pod_cidr, "pod CIDR", "--pod-cidr"),
                (self.service_cidr, "service CIDR", "--service-cidr")]

    def probe_addresses(self) -> list[str]:
        """One address per root route, for `ip route get` after the routes are in:
        each must resolve to the bridge, or policy routing is diverting it."""
        return [str(ipaddress.IPv4Network(n.pod_cidr)[1]) for n in self.nodes] + \
            [str(ipaddress.IPv4Network(self.service_cidr)[1])]

    def layout(self) -> dict[str, Any]:
        """The plan as JSON-able data, for cluster.json and for humans."""
        return {
            "bridge": self.naming.bridge, "host": self.host_prefix, "server": self.server_url,
            "nodeCIDR": self.node_cidr, "podCIDR": self.pod_cidr,
            "serviceCIDR": self.service_cidr, "loadBalancerPool": list(self.lb_pool),
            "nodes": [{"name": n.name, "ip": n.ip, "podCIDR": n.pod_cidr, "netns": n.netns,
                       "vethHost": n.veth_host, "routes": [str(r) for r in n.routes]}
                      for n in self.nodes],
            "hostRoutes": [str(r) for r in self.host_routes],
        }


def _network(value: str, option: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.IPv4Network(value, strict=True)
    except ValueError as e:
        raise PlanError(f"{option} {value}: {e}") from None
    if (net.is_loopback or net.is_link_local or net.is_multicast or net.is_unspecified
            or net.is_reserved or net.overlaps(ipaddress.IPv4Network("0.0.0.0/8"))):
        raise PlanError(f"{option} {value}: not usable for a cluster network "
                        "(loopback, link-local, multicast or reserved)")
    return net


def plan_cluster(nodes: int = 2, data_dir: Path | str = Path("/var/lib/svcnet/cluster"), *,
                 node_cidr: str = DEFAULT_NODE_CIDR, pod_cidr: str = DEFAULT_POD_CIDR,
                 service_cidr: str = DEFAULT_SERVICE_CIDR, proxy_mode: str = "iptables",
                 cluster_name: str = DEFAULT_CLUSTER_NAME, api_port: int = DEFAULT_API_PORT,
                 naming: Naming | None = None, dns_upstreams: Iterable[str] = (),
                 dns_log: bool = False) -> ClusterPlan:
    """The layout of an N-node cluster. Raises `PlanError` (one line) for settings that
    cannot work: N outside 1..20, malformed or unusable CIDRs, CIDRs that overlap each
    other or are too small, an unknown proxy mode. Conflicts with the host's existing
    routes need the host's state: see `find_conflicts`."""
    if isinstance(nodes, bool) or not isinstance(nodes, int) or not 1 <= nodes <= MAX_NODES:
        raise PlanError(f"--nodes {nodes}: must be between 1 and {MAX_NODES}")
    if proxy_mode not in PROXY_MODES:
        raise PlanError(f"--proxy-mode {proxy_mode}: expected one of {', '.join(PROXY_MODES)}")
    if not 0 < api_port < 65536:
        raise PlanError(f"--api-port {api_port}: must be in 1-65535")
    names = naming or Naming.for_cluster(cluster_name)
    data_dir = Path(data_dir)
    if not data_dir.is_absolute():
        raise PlanError(f"--data-dir {data_dir}: must be an absolute path")
    node_net = _network(node_cidr, "--node-cidr")
    pod_net = _network(pod_cidr, "--pod-cidr")
    svc_net = _network(service_cidr, "--service-cidr")
    if node_net.prefixlen > 24:
        raise PlanError(f"--node-cidr {node_cidr}: needs at least a /24 (host .1, nodes "
                        f".{NODE_OFFSET + 1}-.{NODE_OFFSET + MAX_NODES}, LoadBalancer pool "
                        f".{LB_POOL_OFFSETS[0]}-.{LB_POOL_OFFSETS[1]})")
    if pod_net.prefixlen > 24 or 2 ** (24 - pod_net.prefixlen) < nodes + 1:
        raise PlanError(f"--pod-cidr {pod_cidr}: too small for {nodes} node(s): node i gets "
                        f"the i-th /24, so it needs at least {nodes + 1} of them")
    if svc_net.prefixlen > 28:
        raise PlanError(f"--service-cidr {service_cidr}: too small (at least a /28: the "
                        "cluster DNS takes the 10th address)")
    named = [(node_net, "--node-cidr"), (pod_net, "--pod-cidr"), (svc_net, "--service-cidr")]
    for i, (a, an) in enumerate(named):
        for b, bn in named[i + 1:]:
            if a.overlaps(b):
                raise PlanError(f"{an} {a} overlaps {bn} {b}")
    _check_names(names, nodes)
    upstreams = tuple(dns_upstreams)
    for upstream in upstreams:
        try:
            parse_upstream(upstream)
        except ValueError as e:
            raise PlanError(f"--dns-upstream: {e}") from None

    host_ip = node_net[HOST_OFFSET]
    pod_subnets = list(_first_subnets(pod_net, nodes + 1))
    node_ips = {i: str(node_net[NODE_OFFSET + i]) for i in range(1, nodes + 1)}
    svc_route_on_link = Route(str(svc_net), dev=NODE_IFNAME, scope="link")
    plans: list[NodePlan] = []
    for i in range(1, nodes + 1):
        name = f"node-{i}"
        routes = tuple(Route(str(pod_subnets[j]), via=node_ips[j], dev=NODE_IFNAME)
                       for j in range(1, nodes + 1) if j != i) + (svc_route_on_link,)
        plans.append(NodePlan(
            index=i, name=name, ip=node_ips[i], pod_cidr=str(pod_subnets[i]),
            netns=f"{names.netns_prefix}{name}", veth_host=f"{names.veth_prefix}{name}",
            routes=routes, state_dir=data_dir / "nodes" / name,
            log_file=data_dir / "logs" / f"agent-{name}.log"))
    host_routes = tuple(Route(n.pod_cidr, via=n.ip, dev=names.bridge) for n in plans) + (
        Route(str(svc_net), via=plans[0].ip, dev=names.bridge),
        Route(str(pod_net), kind="unreachable"))
    settings: dict[str, Any] = {
        "nodes": nodes, "data_dir": str(data_dir), "node_cidr": str(node_net),
        "pod_cidr": str(pod_net), "service_cidr": str(svc_net), "proxy_mode": proxy_mode,
        "cluster_name": cluster_name, "api_port": api_port, "naming": names.to_dict(),
        "dns_upstreams": list(upstreams), "dns_log": dns_log}
    return ClusterPlan(
        data_dir=data_dir, naming=names, node_cidr=str(node_net), host_ip=str(host_ip),
        pod_cidr=str(pod_net), service_cidr=str(svc_net), proxy_mode=proxy_mode,
        api_port=api_port, nodes=tuple(plans), host_routes=host_routes,
        lb_pool=(str(node_net[LB_POOL_OFFSETS[0]]), str(node_net[LB_POOL_OFFSETS[1]])),
        cluster_name=cluster_name, dns_upstreams=upstreams, dns_log=dns_log,
        settings=settings)


def plan_from_settings(settings: dict[str, Any]) -> ClusterPlan:
    """Re-plan from `ClusterPlan.settings` (as stored in cluster.json)."""
    s = dict(settings)
    naming = Naming(**s.pop("naming")) if "naming" in s else None
    return plan_cluster(s.pop("nodes"), Path(s.pop("data_dir")), naming=naming, **s)


def _first_subnets(net: ipaddress.IPv4Network, count: int) -> Iterable[ipaddress.IPv4Network]:
    for i, sub in enumerate(net.subnets(new_prefix=24)):
        if i >= count:
            return
        yield sub


def _check_names(names: Naming, nodes: int) -> None:
    if not _IFNAME_RE.fullmatch(names.bridge):
        raise PlanError(f"bridge name {names.bridge!r}: must be 1-{_IFNAME_MAX} characters "
                        "[A-Za-z0-9_.-]")
    longest = f"{names.veth_prefix}node-{nodes}"
    if not _IFNAME_RE.fullmatch(longest):
        raise PlanError(f"veth name {longest!r}: must be 1-{_IFNAME_MAX} characters "
                        "[A-Za-z0-9_.-]")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", names.netns_prefix) or \
            names.netns_prefix.startswith(POD_NETNS_PREFIX):
        raise PlanError(f"namespace prefix {names.netns_prefix!r}: letters, digits, '_.-' "
                        f"only, and not {POD_NETNS_PREFIX!r} (that names pods)")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,%d}" % _CHAIN_MAX, names.chain):
        raise PlanError(f"chain name {names.chain!r}: must be 1-{_CHAIN_MAX} characters")


def is_our_route(plan: ClusterPlan, route: HostRoute) -> bool:
    """A route of this cluster: on its bridge (including the kernel's connected and local
    routes for the bridge address) or its `unreachable` cover of the pod CIDR."""
    if route.dev == plan.naming.bridge:
        return True
    return (route.type == "unreachable" and route.dst == plan.pod_cidr
            and route.protocol == str(ROUTE_PROTO))


def find_conflicts(plan: ClusterPlan, routes: Iterable[HostRoute]) -> list[str]:
    """One line per existing host route (any table) that overlaps a CIDR the cluster
    claims, ignoring the default route and this cluster's own routes (so `up` twice is
    fine). An overlap means the host already uses those addresses for something else (a
    VPN, Docker, another cluster): routing them into svcnet would cut that off, so `up`
    refuses rather than guess."""
    out: list[str] = []
    for cidr, what, option in plan.claimed_cidrs():
        net = ipaddress.IPv4Network(cidr)
        for r in routes:
            rn = r.network()
            if rn is None or rn.prefixlen == 0 or is_our_route(plan, r):
                continue
            if rn.overlaps(net):
                out.append(f"{what} {cidr} overlaps the host's route {r}; pick another "
                           f"with {option}")
    return list(dict.fromkeys(out))


def forward_accept_needed(bridge_nf_call_iptables: bool, forward_rules: Iterable[str]) -> bool:
    """Whether frames bridged between node namespaces need an ACCEPT in the root
    namespace's FORWARD chain.

    With br_netfilter's `bridge-nf-call-iptables` = 1, frames crossing a bridge traverse
    the iptables FORWARD chain of the bridge's namespace even though nothing is routed.
    A DROP policy (Docker sets one) or a top-level DROP/REJECT rule would then silently cut
    node-to-node traffic. `forward_rules` are the lines of `iptables -S FORWARD`."""
    if not bridge_nf_call_iptables:
        return False
    for line in forward_rules:
        words = line.split()
        if words[:2] == ["-P", "FORWARD"] and words[2:3] != ["ACCEPT"]:
            return True
        if words[:1] == ["-A"] and ("-j DROP" in line or "-j REJECT" in line):
            return True
    return False


def forward_rule_args(plan: ClusterPlan) -> list[str]:
    """The FORWARD rule (after `-A`/`-D`/`-C FORWARD`) that sends bridged node-network
    frames to our chain. `-i/-o` name the bridge itself: that is how iptables sees frames
    br_netfilter hands it."""
    b = plan.naming.bridge
    return ["-i", b, "-o", b, "-m", "comment", "--comment",
            f"svcnet: frames bridged between nodes of {b}", "-j", plan.naming.chain]
