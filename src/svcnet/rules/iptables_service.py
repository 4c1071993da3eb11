"""Rules for ONE Service port, in kube-proxy v1.31–v1.33's exact order and spelling.

Theory of operation (kube-proxy `syncProxyRules`, per service port):

1. Categorise endpoints (`svcnet.proxy.topology.categorize`) and derive the chains in use:
   internal (ClusterIP) traffic goes to KUBE-SVC, or KUBE-SVL when iTP=Local; external
   traffic (NodePort, LB VIPs, external IPs) always enters KUBE-EXT, which ends in KUBE-SVC
   or KUBE-SVL (eTP=Local); LB traffic goes through KUBE-FW first when source ranges are set.
2. "Dispatch" rules: nat KUBE-SERVICES (cluster IP, external IPs, LB IPs, in that order)
   and KUBE-NODEPORTS; filter rules that REJECT (no endpoints at all) or DROP (a Local
   policy with no local endpoint), the LB firewall DROP and the health-check ACCEPT. These
   live in shared chains, so they are written on every sync.
3. Per-service chains: masquerade rule of the internal chain, KUBE-EXT, KUBE-FW, KUBE-SVC,
   KUBE-SVL and one KUBE-SEP per reachable endpoint. A partial sync writes these only for
   Services that changed; that is why they are kept apart from (2).

Lines are the text kube-proxy hands to iptables-restore: comments with spaces are wrapped
in double quotes, bare Service-port names are not, matches appear in kube-proxy's order.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Sequence

from svcnet.proxy.endpoints import Endpoint
from svcnet.proxy.serviceport import ServicePortInfo, ServicePortName
from svcnet.proxy.topology import NodeInfo, categorize
from svcnet.rules import iptables_names as n
from svcnet.rules.iptables_config import EffectiveConfig


@dataclass(frozen=True, slots=True)
class ServicePortRules:
    """The compiled rules of one Service port, split by how a partial sync treats them.

    `filter_rules` and `nat_dispatch` go to shared chains and are always written.
    `nat_chains` (declared in that order) and `nat_rules` are the port's own chains;
    `nat_chains` is also the set of chains that must exist after a sync.
    """

    name: ServicePortName
    filter_rules: tuple[str, ...]
    nat_dispatch: tuple[str, ...]
    nat_chains: tuple[str, ...]
    nat_rules: tuple[str, ...]
    no_local_internal: bool = False
    no_local_external: bool = False


def _line(chain: str, *args: str) -> str:
    return " ".join(("-A", chain, *args))


def _comment(text: str) -> tuple[str, ...]:
    return ("-m", "comment", "--comment", text)


class _Writer:
    """Accumulates one port's lines; holds what every rule of the port shares."""

    def __init__(self, svc: ServicePortInfo, cfg: EffectiveConfig, large_cluster: bool) -> None:
        self.svc = svc
        self.cfg = cfg
        self.large = large_cluster
        self.spn = str(svc.name)
        self.proto = svc.protocol.lower()
        self.filter: list[str] = []
        self.dispatch: list[str] = []
        self.chains: list[str] = []
        self.rules: list[str] = []

    def proto_match(self) -> tuple[str, ...]:
        return ("-m", self.proto, "-p", self.proto)

    def service_comment(self, text: str) -> tuple[str, ...]:
        """Comments on SEP and SVC->SEP rules, dropped in large-cluster mode to save space."""
        return () if self.large else _comment(text)

    def sep(self, ep: Endpoint) -> str:
        return n.sep_chain(self.spn, self.proto, str(ep))


def _endpoint_dispatch(w: _Writer, chain: str, endpoints: Sequence[Endpoint]) -> None:
    """Affinity checks, then one statistic rule per endpoint (the last has no statistic)."""
    if w.svc.session_affinity:
        for ep in endpoints:
            w.rules.append(_line(chain, *w.service_comment(n.quoted(f"{w.spn} -> {ep}")),
                                 "-m", "recent", "--name", w.sep(ep), "--rcheck", "--seconds",
                                 str(w.svc.session_affinity_timeout), "--reap", "-j", w.sep(ep)))
    count = len(endpoints)
    for i, ep in enumerate(endpoints):
        stat: tuple[str, ...] = ()
        if i < count - 1:
            stat = ("-m", "statistic", "--mode", "random", "--probability",
                    n.probability(count - i))
        w.rules.append(_line(chain, *w.service_comment(n.quoted(f"{w.spn} -> {ep}")), *stat,
                             "-j", w.sep(ep)))


@dataclass(frozen=True, slots=True)
class _Plan:
    """What one port needs, decided before any rule is written (step 1 of the docstring).

    `internal_chain` receives ClusterIP traffic and `external_policy_chain` ends KUBE-EXT;
    `has_internal`/`has_external` say whether those have endpoints. When they do not, the
    `*_target`/`*_comment` pair is the filter verdict: REJECT "has no endpoints" when the
    Service has none anywhere, DROP "has no local endpoints" for a Local policy.
    """

    cluster: tuple[Endpoint, ...]
    local: tuple[Endpoint, ...]
    reachable: tuple[Endpoint, ...]
    has_any: bool
    cluster_chain: str
    local_chain: str
    ext: str
    fw: str
    uses_cluster_chain: bool
    uses_local_chain: bool
    internal_chain: str
    has_internal: bool
    external_policy_chain: str
    has_external: bool
    uses_ext_chain: bool
    uses_fw: bool
    internal_target: str
    internal_comment: str
    external_target: str
    external_comment: str

    @property
    def lb_chain(self) -> str:
        """Where LB VIP traffic goes: the source-range filter if there is one."""
        return self.fw if self.uses_fw else self.ext


def _plan(svc: ServicePortInfo, endpoints: Sequence[Endpoint], node: NodeInfo) -> _Plan:
    spn, proto = str(svc.name), svc.protocol.lower()
    cluster, local, reachable, has_any = categorize(endpoints, svc, node)
    cluster_chain, local_chain = n.svc_chain(spn, proto), n.svl_chain(spn, proto)
    internal_chain, has_internal = cluster_chain, has_any
    if svc.internal_policy_local:
        internal_chain, has_internal = local_chain, has_any and bool(local)
    external_policy_chain, has_external = cluster_chain, has_any
    if svc.external_policy_local:
        external_policy_chain, has_external = local_chain, has_any and bool(local)
    internal = external = ("", "")
    if not has_any:
        internal = external = ("REJECT", n.quoted(f"{spn} has no endpoints"))
    else:
        no_local = ("DROP", n.quoted(f"{spn} has no local endpoints"))
        internal = internal if has_internal else no_local
        external = external if has_external else no_local
    return _Plan(
        cluster=cluster, local=local, reachable=reachable, has_any=has_any,
        cluster_chain=cluster_chain, local_chain=local_chain,
        ext=n.ext_chain(spn, proto), fw=n.fw_chain(spn, proto),
        uses_cluster_chain=bool(cluster) and svc.uses_cluster_endpoints,
        uses_local_chain=bool(local) and svc.uses_local_endpoints,
        internal_chain=internal_chain, has_internal=has_internal,
        external_policy_chain=external_policy_chain, has_external=has_external,
        # Based on has_any, not has_external: the EXT chain's short-circuit rules for pod
        # and node traffic are needed even when no endpoint can take outside traffic.
        uses_ext_chain=has_any and svc.externally_accessible,
        uses_fw=has_any and bool(svc.load_balancer_vips)
        and bool(svc.load_balancer_source_ranges),
        internal_target=internal[0], internal_comment=internal[1],
        external_target=external[0], external_comment=external[1])


def _cluster_ip_args(w: _Writer) -> tuple[str, ...]:
    return (*_comment(n.quoted(f"{w.spn} cluster IP")), *w.proto_match(),
            "-d", w.svc.cluster_ip, "--dport", str(w.svc.port))


def _write_dispatch(w: _Writer, p: _Plan) -> None:
    """Step 2: rules in the shared chains (nat KUBE-SERVICES/KUBE-NODEPORTS, filter)."""
    svc, spn, port = w.svc, w.spn, str(w.svc.port)
    if p.has_internal:
        w.dispatch.append(_line(n.KUBE_SERVICES, *_cluster_ip_args(w), "-j", p.internal_chain))
    else:
        w.filter.append(_line(n.KUBE_SERVICES, *_comment(p.internal_comment), *w.proto_match(),
                              "-d", svc.cluster_ip, "--dport", port, "-j", p.internal_target))
    for ip in svc.external_ips:
        if p.has_any:
            w.dispatch.append(_line(n.KUBE_SERVICES, *_comment(n.quoted(f"{spn} external IP")),
                                    *w.proto_match(), "-d", ip, "--dport", port, "-j", p.ext))
        if not p.has_external:
            w.filter.append(_line(n.KUBE_EXTERNAL_SERVICES, *_comment(p.external_comment),
                                  *w.proto_match(), "-d", ip, "--dport", port,
                                  "-j", p.external_target))
    for ip in svc.load_balancer_vips:
        if p.has_any:
            w.dispatch.append(_line(n.KUBE_SERVICES,
                                    *_comment(n.quoted(f"{spn} loadbalancer IP")),
                                    *w.proto_match(), "-d", ip, "--dport", port,
                                    "-j", p.lb_chain))
        if p.uses_fw:
            w.filter.append(_line(n.KUBE_PROXY_FIREWALL,
                                  *_comment(n.quoted(f"{spn} traffic not accepted by {p.fw}")),
                                  *w.proto_match(), "-d", ip, "--dport", port, "-j", "DROP"))
    if not p.has_external:
        for ip in svc.load_balancer_vips:
            w.filter.append(_line(n.KUBE_EXTERNAL_SERVICES, *_comment(p.external_comment),
                                  *w.proto_match(), "-d", ip, "--dport", port,
                                  "-j", p.external_target))
    # NodePort. (Not subject to loadBalancerSourceRanges; upstream cannot change that.)
    if svc.node_port:
        node_port = str(svc.node_port)
        if p.has_any:
            if w.cfg.localhost_nodeports and w.cfg.nfacct:
                w.dispatch.append(_line(n.KUBE_NODEPORTS, *_comment(spn), *w.proto_match(),
                                        "-d", "127.0.0.0/8", "--dport", node_port, "-m", "nfacct",
                                        "--nfacct-name", n.NFACCT_LOCALHOST_NODEPORTS,
                                        "-j", p.ext))
            w.dispatch.append(_line(n.KUBE_NODEPORTS, *_comment(spn), *w.proto_match(),
                                    "--dport", node_port, "-j", p.ext))
        if not p.has_external:
            w.filter.append(_line(n.KUBE_EXTERNAL_SERVICES, *_comment(p.external_comment),
                                  "-m", "addrtype", "--dst-type", "LOCAL", *w.proto_match(),
                                  "--dport", node_port, "-j", p.external_target))
    # Health-check node port: accepted whether or not this node has local endpoints.
    if svc.health_check_node_port:
        w.filter.append(_line(n.KUBE_NODEPORTS,
                              *_comment(n.quoted(f"{spn} health check node port")),
                              "-m", "tcp", "-p", "tcp", "--dport",
                              str(svc.health_check_node_port), "-j", "ACCEPT"))


def _write_ext_and_fw(w: _Writer, p: _Plan) -> None:
    """Step 3, first part: the KUBE-EXT and KUBE-FW chains."""
    spn, cfg = w.spn, w.cfg
    if p.uses_ext_chain:
        w.chains.append(p.ext)
        if not w.svc.external_policy_local:
            # Endpoints may be on other nodes: masquerade so replies come back through us.
            w.rules.append(_line(p.ext, *_comment(n.quoted(
                f"masquerade traffic for {spn} external destinations")), "-j", n.KUBE_MARK_MASQ))
        else:
            if cfg.if_local is not None:
                # Pod -> external destination acts as if it went out to the LB and back in:
                # subject to neither traffic policy.
                w.rules.append(_line(p.ext, *_comment(n.quoted(
                    f"pod traffic for {spn} external destinations")), *cfg.if_local,
                    "-j", p.cluster_chain))
            # The node itself has the VIP/node IP as source address: it must be masqueraded
            # and may use any endpoint.
            w.rules.append(_line(p.ext, *_comment(n.quoted(
                f"masquerade LOCAL traffic for {spn} external destinations")),
                "-m", "addrtype", "--src-type", "LOCAL", "-j", n.KUBE_MARK_MASQ))
            w.rules.append(_line(p.ext, *_comment(n.quoted(
                f"route LOCAL traffic for {spn} external destinations")),
                "-m", "addrtype", "--src-type", "LOCAL", "-j", p.cluster_chain))
        if p.has_external:
            w.rules.append(_line(p.ext, "-j", p.external_policy_chain))
    if p.uses_fw:
        w.chains.append(p.fw)
        lb_comment = _comment(n.quoted(f"{spn} loadbalancer IP"))
        allow_from_node = False
        for cidr in w.svc.load_balancer_source_ranges:
            w.rules.append(_line(p.fw, *lb_comment, "-s", cidr, "-j", p.ext))
            allow_from_node = allow_from_node or _contains(cidr, cfg.node_ip)
        if allow_from_node:
            # A node reaching a VIP bound locally loops back with the VIP as source.
            for ip in w.svc.load_balancer_vips:
                w.rules.append(_line(p.fw, *lb_comment, "-s", ip, "-j", p.ext))
        # No target: un-DNATed traffic falls through and KUBE-PROXY-FIREWALL drops it.
        w.rules.append(_line(p.fw, *_comment(n.quoted(
            f"other traffic to {spn} will be dropped by KUBE-PROXY-FIREWALL"))))


def _write_service_chains(w: _Writer, p: _Plan) -> None:
    """Step 3: the port's own chains (skipped by partial syncs for unchanged Services)."""
    if p.has_internal:
        if w.cfg.masquerade_all:
            w.rules.append(_line(p.internal_chain, *_cluster_ip_args(w), "-j", n.KUBE_MARK_MASQ))
        elif w.cfg.if_not_local is not None:
            # Masquerade off-cluster traffic to the VIP: it may be bounced to another node.
            w.rules.append(_line(p.internal_chain, *_cluster_ip_args(w), *w.cfg.if_not_local,
                                 "-j", n.KUBE_MARK_MASQ))
    _write_ext_and_fw(w, p)
    if p.uses_cluster_chain:
        w.chains.append(p.cluster_chain)
        _endpoint_dispatch(w, p.cluster_chain, p.cluster)
    if p.uses_local_chain:
        w.chains.append(p.local_chain)
        _endpoint_dispatch(w, p.local_chain, p.local)
    for ep in p.reachable:
        sep = w.sep(ep)
        w.chains.append(sep)
        base = ("-A", sep, *w.service_comment(w.spn))
        # Hairpin: an endpoint reaching its own Service must be masqueraded.
        w.rules.append(" ".join((*base, "-s", ep.ip, "-j", n.KUBE_MARK_MASQ)))
        affinity = ("-m", "recent", "--name", sep, "--set") if w.svc.session_affinity else ()
        w.rules.append(" ".join((*base, *affinity, *w.proto_match(), "-j", "DNAT",
                                 "--to-destination", str(ep))))


def compile_service_port(svc: ServicePortInfo, endpoints: Sequence[Endpoint], node: NodeInfo,
                         cfg: EffectiveConfig, *, large_cluster: bool) -> ServicePortRules:
    """Compile one Service port (see the module docstring for the order of rules)."""
    w = _Writer(svc, cfg, large_cluster)
    plan = _plan(svc, endpoints, node)
    _write_dispatch(w, plan)
    _write_service_chains(w, plan)
    return ServicePortRules(
        name=svc.name, filter_rules=tuple(w.filter), nat_dispatch=tuple(w.dispatch),
        nat_chains=tuple(w.chains), nat_rules=tuple(w.rules),
        no_local_internal=plan.has_any and not plan.has_internal,
        no_local_external=plan.has_any and not plan.has_external)


def _contains(cidr: str, ip: str | None) -> bool:
    """True if the (primary) node IP lies in a source range."""
    if ip is None:
        return False
    return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr, strict=False)
