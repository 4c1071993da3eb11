"""Configuration of the iptables compiler: kube-proxy's flags, as one frozen value.

`IPTablesConfig` is what a user or the agent sets. The compiler works on
`EffectiveConfig`, derived once per compile, which resolves the interplay that kube-proxy
resolves in `NewProxier`/`NewNodePortAddresses`:

- `localhost_nodeports` is forced off when `node_port_addresses` does not include an IPv4
  loopback address (NodePorts on 127.0.0.1 then cannot work, so no rule may promise them);
- `node_port_addresses` empty or containing `0.0.0.0/0` means "all local addresses": the
  KUBE-SERVICES tail rule uses `-m addrtype --dst-type LOCAL`; otherwise one tail rule per
  matching node address with `-d <ip>`;
- the local-traffic detector is CIDR based (`--cluster-cidr`): pod traffic is `-s <cidr>`,
  everything else `! -s <cidr>`. With no CIDR the detector is "not implemented" and the
  rules that need it are omitted, exactly as upstream.

Version-dependent details are toggles with kube-proxy's real defaults: `--random-fully` on
the MASQUERADE rule (every iptables >= 1.6.2 has it), nfacct counters (off: they need the
counters to exist in the kernel first), the INVALID drop rule (on unless the node sets
`nf_conntrack_tcp_be_liberal`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from svcnet.rules.iptables_names import MarkFormat, masquerade_mark

LARGE_CLUSTER_ENDPOINTS_THRESHOLD = 1000
_LOOPBACK_START = ipaddress.IPv4Address("127.0.0.0")


@dataclass(frozen=True, slots=True)
class IPTablesConfig:
    """kube-proxy iptables-mode settings (IPv4).

    `node_ips[0]` is the primary node IP (kube-proxy's `nodeIP`), used to decide whether a
    loadBalancerSourceRanges entry admits the node itself. All `node_ips` are the node's
    local addresses when selecting NodePort addresses. `node_port_addresses` takes CIDRs or
    the word `primary` (the primary node IP), like `--nodeport-addresses`.
    """

    node_name: str
    node_ips: tuple[str, ...] = ()
    cluster_cidr: str | None = None
    masquerade_bit: int = 14
    mark_format: MarkFormat = MarkFormat.GO
    masquerade_all: bool = False
    localhost_nodeports: bool = True
    node_port_addresses: tuple[str, ...] = ()
    random_fully: bool = True
    nfacct: bool = False
    conntrack_tcp_be_liberal: bool = False
    large_cluster_threshold: int = LARGE_CLUSTER_ENDPOINTS_THRESHOLD

    @classmethod
    def upstream_test_fixture(cls) -> IPTablesConfig:
        """The settings of upstream's `NewFakeProxier`, so its vectors can be reproduced:
        node test-node / 192.168.0.2, pod CIDR 10.0.0.0/8, mark `0x4000`, localhost
        NodePorts on, both nfacct counters present, no `--random-fully`."""
        return cls(node_name="test-node", node_ips=("192.168.0.2",), cluster_cidr="10.0.0.0/8",
                   mark_format=MarkFormat.SHORT, random_fully=False, nfacct=True)


@dataclass(frozen=True, slots=True)
class EffectiveConfig:
    """`IPTablesConfig` with every interplay resolved; see the module docstring."""

    node_ip: str | None
    mark: str
    masquerade_all: bool
    localhost_nodeports: bool
    nodeports_match_all: bool
    nodeport_ips: tuple[str, ...]
    if_local: tuple[str, ...] | None
    if_not_local: tuple[str, ...] | None
    random_fully: bool
    nfacct: bool
    drop_invalid: bool
    large_cluster_threshold: int


def _ipv4_net(text: str) -> ipaddress.IPv4Network | None:
    try:
        net = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None
    return net if isinstance(net, ipaddress.IPv4Network) else None


def effective(cfg: IPTablesConfig) -> EffectiveConfig:
    """Resolve `cfg` (raises ValueError for a bad mark bit or cluster CIDR)."""
    node_ip = cfg.node_ips[0] if cfg.node_ips else None
    cidrs: list[ipaddress.IPv4Network] = []
    for text in cfg.node_port_addresses:
        if text == "primary":
            if node_ip is not None:
                cidrs.append(ipaddress.IPv4Network(f"{node_ip}/32"))
            continue
        net = _ipv4_net(text)
        if net is not None:
            cidrs.append(net)
    match_all = not cidrs or any(n.prefixlen == 0 for n in cidrs)
    has_loopback = match_all or any(_LOOPBACK_START in n or n.network_address.is_loopback
                                    for n in cidrs)
    localhost = cfg.localhost_nodeports and has_loopback
    nodeport_ips: list[str] = []
    if not match_all:
        # The node's addresses, loopback first as on a real host (lo has ifindex 1).
        for ip in ("127.0.0.1", *cfg.node_ips):
            addr = ipaddress.ip_address(ip)
            if any(addr in n for n in cidrs) and ip not in nodeport_ips:
                if addr.is_loopback and not localhost:
                    continue  # upstream logs an error and skips it
                nodeport_ips.append(ip)
    if_local = if_not_local = None
    if cfg.cluster_cidr:
        net = _ipv4_net(cfg.cluster_cidr)
        if net is None:
            raise ValueError(f"cluster CIDR {cfg.cluster_cidr!r} is not an IPv4 CIDR")
        # kube-proxy writes the CIDR as it was configured, after checking that it parses.
        text = cfg.cluster_cidr.strip()
        if_local = ("-s", text)
        if_not_local = ("!", "-s", text)
    return EffectiveConfig(
        node_ip=node_ip,
        mark=masquerade_mark(cfg.masquerade_bit, cfg.mark_format),
        masquerade_all=cfg.masquerade_all,
        localhost_nodeports=localhost,
        nodeports_match_all=match_all,
        nodeport_ips=tuple(nodeport_ips),
        if_local=if_local,
        if_not_local=if_not_local,
        random_fully=cfg.random_fully,
        nfacct=cfg.nfacct,
        drop_invalid=not cfg.conntrack_tcp_be_liberal,
        large_cluster_threshold=cfg.large_cluster_threshold,
    )
