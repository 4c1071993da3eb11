"""Snapshot -> kube-proxy v1.31–v1.33 iptables ruleset -> `iptables-restore --noflush` text.

Pure: no I/O, no clock, no subprocess. The edge (later) applies `render_restore(...)` with
one `iptables-restore --noflush --counters` call and ensures `jump_rules()` with `iptables`.

Theory of operation. kube-proxy owns a fixed set of top-level chains (nat KUBE-SERVICES,
KUBE-NODEPORTS, KUBE-POSTROUTING, KUBE-MARK-MASQ; filter KUBE-SERVICES,
KUBE-EXTERNAL-SERVICES, KUBE-FORWARD, KUBE-NODEPORTS, KUBE-PROXY-FIREWALL and its
KUBE-FIREWALL copy) plus per-service nat chains (KUBE-SVC/SVL/EXT/FW/SEP). A restore
payload declares (`:CHAIN - [0:0]`, which with --noflush flushes it) and refills every
chain it mentions; chains it does not mention are left as they are. So:

- a FULL sync declares every chain and writes every rule;
- a PARTIAL sync (KEP-3453) writes the per-service chains only of Services that changed;
  unchanged Services keep their chains in the kernel. kube-proxy also rewrites every
  shared chain (KUBE-SERVICES, the filter table, ...) on every partial sync; we write a
  shared chain only when its content differs from what the previous sync left, which
  gives the same kernel state for a payload of a few dozen lines instead of one line per
  Service (iptables-restore's cost grows with the lines it is given);
- in both, per-service chains that exist but are no longer wanted ("stale") are declared
  (flushed) and then deleted with `-X`. Which chains exist is an input (`existing_chains`:
  from `iptables-save -t nat`, or the previous RuleSet), never looked up here.

The caller chooses full vs partial: full at start-up, after any failed restore (the change
trackers were already drained, so nothing smaller is known to be correct) and periodically
(`needs_full_sync`). Output order is deterministic: Service ports sorted by name, each
emitted in kube-proxy's own order, which equals upstream's test normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import AbstractSet, Callable, Iterable, Mapping, NamedTuple

from svcnet.proxy.endpoints import Endpoint
from svcnet.proxy.serviceport import ServicePortInfo, ServicePortName
from svcnet.proxy.snapshot import Snapshot
from svcnet.proxy.topology import NodeInfo
from svcnet.rules import iptables_names as n
from svcnet.rules.iptables_config import EffectiveConfig, IPTablesConfig, effective
from svcnet.rules.iptables_service import ServicePortRules, compile_service_port

#: Periodic full resync (upstream `proxyutil.FullSyncPeriod`, one hour).
FULL_SYNC_PERIOD_SECONDS = 3600.0


class JumpRule(NamedTuple):
    """A rule from a built-in chain into one of ours, ensured outside iptables-restore
    (restore would have to own the whole built-in chain otherwise).

    A plain (table, chain, args) tuple; `args` is an argv (no shell or restore quoting)
    ending in `-j TARGET`. The edge first ensures chain `target` exists in `table`, then
    prepends `args` to `chain` unless an identical rule is already there.
    """

    table: str
    chain: str
    args: tuple[str, ...]

    @property
    def target(self) -> str:
        """The kube-proxy chain jumped to (the argument after `-j`)."""
        return self.args[-1]


_CT_NEW = ("-m", "conntrack", "--ctstate", "NEW")
# (table, from, to, comment, extra args) in kube-proxy's order; then kubelet's duplicates.
_JUMPS: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    ("filter", "INPUT", n.KUBE_EXTERNAL_SERVICES,
     "kubernetes externally-visible service portals", _CT_NEW),
    ("filter", "FORWARD", n.KUBE_EXTERNAL_SERVICES,
     "kubernetes externally-visible service portals", _CT_NEW),
    ("filter", "INPUT", n.KUBE_NODEPORTS, "kubernetes health check service ports", ()),
    ("filter", "FORWARD", n.KUBE_SERVICES, "kubernetes service portals", _CT_NEW),
    ("filter", "OUTPUT", n.KUBE_SERVICES, "kubernetes service portals", _CT_NEW),
    ("filter", "FORWARD", n.KUBE_FORWARD, "kubernetes forwarding rules", ()),
    ("filter", "INPUT", n.KUBE_PROXY_FIREWALL, "kubernetes load balancer firewall", _CT_NEW),
    ("filter", "OUTPUT", n.KUBE_PROXY_FIREWALL, "kubernetes load balancer firewall", _CT_NEW),
    ("filter", "FORWARD", n.KUBE_PROXY_FIREWALL, "kubernetes load balancer firewall", _CT_NEW),
    ("nat", "OUTPUT", n.KUBE_SERVICES, "kubernetes service portals", ()),
    ("nat", "PREROUTING", n.KUBE_SERVICES, "kubernetes service portals", ()),
    ("nat", "POSTROUTING", n.KUBE_POSTROUTING, "kubernetes postrouting rules", ()),
    ("filter", "INPUT", n.KUBE_FIREWALL, "", ()),
    ("filter", "OUTPUT", n.KUBE_FIREWALL, "", ()),
)


def jump_rules() -> tuple[JumpRule, ...]:
    """The built-in-chain jumps, in the order kube-proxy ensures them (each prepended, so on
    a fresh node later entries end up above earlier ones). Ensured on full syncs only."""
    out = []
    for table, chain, target, comment, extra in _JUMPS:
        args = extra + (("-m", "comment", "--comment", comment) if comment else ())
        out.append(JumpRule(table, chain, args + ("-j", target)))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class CompiledPort:
    """One Service port's compiled rules plus the inputs they were compiled from.

    A later partial sync reuses the entry when it gets the very same input objects (the
    incremental snapshot keeps unchanged Services' `ServicePortInfo` and endpoint tuples),
    so an unchanged Service costs an identity check instead of a recompile. `chains` are
    the port's own nat chains (unique to it: their names hash its port name).
    """

    svc: ServicePortInfo
    endpoints: tuple[Endpoint, ...]
    node: NodeInfo
    large: bool
    rules: ServicePortRules

    def reusable_for(self, svc: ServicePortInfo, endpoints: tuple[Endpoint, ...],
                     node: NodeInfo, large: bool) -> bool:
        return (self.svc is svc and self.endpoints is endpoints and self.node is node
                and self.large == large)

    @property
    def chains(self) -> tuple[str, ...]:
        return self.rules.nat_chains


@dataclass(frozen=True, slots=True)
class RuleSet:
    """One compiled sync: the restore payload's parts plus bookkeeping for the next sync.

    `*_chains` are the chains declared in the payload, in order (stale ones last in nat);
    `*_rules` the lines after them (including `-X` lines). `shared` is the full content of
    every shared chain after this sync, written or not, and `ports` every Service port's
    compiled rules: a later partial sync compares against the one and reuses the other.
    The counters feed the `sync_proxy_rules_*` metrics.
    """

    filter_chains: tuple[str, ...]
    filter_rules: tuple[str, ...]
    nat_chains: tuple[str, ...]
    nat_rules: tuple[str, ...]
    deleted_chains: tuple[str, ...]
    full_sync: bool
    large_cluster: bool
    shared: Mapping[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    ports: Mapping[ServicePortName, CompiledPort] = field(default_factory=dict)
    nat_rules_total: int = 0
    filter_rules_total: int = 0
    no_local_endpoints_internal: int = 0
    no_local_endpoints_external: int = 0

    @property
    def active_nat_chains(self) -> frozenset[str]:
        """Every per-service nat chain that exists once this ruleset is applied, whether
        or not this payload rewrote it (computed on demand: it is large)."""
        return frozenset(c for port in self.ports.values() for c in port.chains)


def _fixed_nat_rules(cfg: EffectiveConfig) -> list[str]:
    m = cfg.mark
    masq = f'-A {n.KUBE_POSTROUTING} -m comment --comment ' \
           f'"kubernetes service traffic requiring SNAT" -j MASQUERADE'
    return [
        f"-A {n.KUBE_POSTROUTING} -m mark ! --mark {m}/{m} -j RETURN",
        # Clear the mark so a packet re-traversing the stack is not masqueraded twice.
        f"-A {n.KUBE_POSTROUTING} -j MARK --xor-mark {m}",
        masq + (" --random-fully" if cfg.random_fully else ""),
        f"-A {n.KUBE_MARK_MASQ} -j MARK --or-mark {m}",
    ]


def _tail_rules(cfg: EffectiveConfig) -> list[str]:
    """The last KUBE-SERVICES rule(s): local destinations go on to KUBE-NODEPORTS."""
    comment = f'-m comment --comment "{n.NODEPORTS_TAIL_COMMENT}"'
    if cfg.nodeports_match_all:
        dest = "-m addrtype --dst-type LOCAL"
        if not cfg.localhost_nodeports:
            dest += " ! -d 127.0.0.0/8"
        return [f"-A {n.KUBE_SERVICES} {comment} {dest} -j {n.KUBE_NODEPORTS}"]
    return [f"-A {n.KUBE_SERVICES} {comment} -d {ip} -j {n.KUBE_NODEPORTS}"
            for ip in cfg.nodeport_ips]


def _forward_rules(cfg: EffectiveConfig) -> list[str]:
    out = []
    if cfg.drop_invalid:
        # Unless conntrack is liberal, out-of-window packets are INVALID and would reset
        # connections if forwarded un-NATed (kubernetes#74839).
        acct = f" -m nfacct --nfacct-name {n.NFACCT_INVALID_DROPPED}" if cfg.nfacct else ""
        out.append(f"-A {n.KUBE_FORWARD} -m conntrack --ctstate INVALID{acct} -j DROP")
    out.append(f'-A {n.KUBE_FORWARD} -m comment --comment "kubernetes forwarding rules" '
               f"-m mark --mark {cfg.mark}/{cfg.mark} -j ACCEPT")
    out.append(f'-A {n.KUBE_FORWARD} -m comment --comment "kubernetes forwarding conntrack '
               f'rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT')
    return out


def _chain_of(line: str) -> str:
    """The chain of an `-A CHAIN ...` line."""
    return line[3:line.index(" ", 3)]


def _compile(snapshot: Snapshot, config: IPTablesConfig, *, full: bool,
             write: Callable[[ServicePortName], bool], existing: Iterable[str] | None,
             previous: RuleSet | None = None) -> RuleSet:
    """The one compiler behind `compile_full` and `compile_partial`.

    Full: every chain declared and written, lines in kube-proxy's interleaved order.
    Partial: Service ports whose inputs are the identical objects `previous` compiled are
    reused; only ports for which `write` holds get their own chains written; and a shared
    chain is written only when its content differs from what `previous` left in the
    kernel. (kube-proxy rewrites every shared chain on every sync; the resulting kernel
    state is the same, but iptables-restore on the nft backend pays for every line, and
    KUBE-SERVICES alone has a line per Service.) Stale chains come from `existing` when
    given, else from the per-port chains `previous` had and this sync no longer has.
    """
    cfg = effective(config)
    node = snapshot.node
    large = snapshot.total_endpoints() > cfg.large_cluster_threshold
    filter_order = [n.KUBE_SERVICES, n.KUBE_EXTERNAL_SERVICES, n.KUBE_FORWARD,
                    n.KUBE_NODEPORTS, n.KUBE_PROXY_FIREWALL]
    flat_filter: list[str] = []
    if cfg.localhost_nodeports:
        # route_localnet opens 127/8 to the outside (kubernetes#90259); this closes it.
        filter_order.append(n.KUBE_FIREWALL)
        flat_filter.append(f'-A {n.KUBE_FIREWALL} -m comment --comment "block incoming '
                           f'localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack '
                           f"! --ctstate RELATED,ESTABLISHED,DNAT -j DROP")
    nat_order = [n.KUBE_SERVICES, n.KUBE_NODEPORTS, n.KUBE_POSTROUTING, n.KUBE_MARK_MASQ]
    flat_nat = _fixed_nat_rules(cfg)
    own_chains: list[str] = []
    own_rules: list[str] = []
    reuse = previous.ports if previous is not None else {}
    ports: dict[ServicePortName, CompiledPort] = {}
    dropped: list[CompiledPort] = []  # previous entries not carried over
    total = len(flat_nat)
    no_local_int = no_local_ext = 0
    for svc in snapshot.service_ports:
        eps = snapshot.endpoints_for(svc.name)
        entry = reuse.get(svc.name)
        if entry is None or not entry.reusable_for(svc, eps, node, large):
            if entry is not None:
                dropped.append(entry)
            entry = CompiledPort(svc, eps, node, large, compile_service_port(
                svc, eps, node, cfg, large_cluster=large))
        ports[svc.name] = entry
        compiled = entry.rules
        flat_filter.extend(compiled.filter_rules)
        flat_nat.extend(compiled.nat_dispatch)
        total += len(compiled.nat_dispatch) + len(compiled.nat_rules)
        no_local_int += compiled.no_local_internal
        no_local_ext += compiled.no_local_external
        if full or write(svc.name):
            if full:
                flat_nat.extend(compiled.nat_rules)
            else:
                own_rules.extend(compiled.nat_rules)
            own_chains.extend(compiled.nat_chains)
    if existing is not None:
        existing = set(existing)
        active = {c for port in ports.values() for c in port.chains} if existing else set()
        candidates: Iterable[str] = (c for c in existing if n.is_service_chain(c))
    else:
        dropped.extend(p for name, p in reuse.items() if name not in ports)
        active = {c for p in dropped if p.svc.name in ports for c in ports[p.svc.name].chains}
        candidates = (c for p in dropped for c in p.chains)
    stale = tuple(sorted({c for c in candidates if c not in active}))
    tail = _tail_rules(cfg)
    flat_filter.extend(_forward_rules(cfg))

    shared: dict[tuple[str, str], list[str]] = {("filter", c): [] for c in filter_order}
    shared.update({("nat", c): [] for c in nat_order})
    for table, lines in (("filter", flat_filter), ("nat", flat_nat + tail)):
        for line in lines:
            bucket = shared.get((table, _chain_of(line)))
            if bucket is not None:
                bucket.append(line)
    frozen = {key: tuple(lines) for key, lines in shared.items()}
    if full:
        filter_chains, filter_rules = tuple(filter_order), tuple(flat_filter)
        nat_chains, nat_rules = [*nat_order, *own_chains], flat_nat
        stale_at = len(nat_rules)  # kube-proxy's order: -X lines, then the tail rule
        nat_rules.extend(tail)
    else:
        before = previous.shared if previous is not None else {}

        def changed(key: tuple[str, str]) -> bool:
            return before.get(key) != frozen[key]
        f_changed = [c for c in filter_order if changed(("filter", c))]
        filter_chains = tuple(f_changed)
        filter_rules = tuple(line for c in f_changed for line in frozen[("filter", c)])
        n_changed = [c for c in nat_order if changed(("nat", c))]
        nat_chains = [*n_changed, *own_chains]
        nat_rules = [line for c in n_changed for line in frozen[("nat", c)]] + own_rules
        stale_at = len(nat_rules)
    # Declaring a chain flushes it (dropping its jumps to other stale chains), then -X.
    nat_chains.extend(stale)
    nat_rules[stale_at:stale_at] = [f"-X {c}" for c in stale]
    return RuleSet(
        filter_chains=filter_chains, filter_rules=filter_rules,
        nat_chains=tuple(nat_chains), nat_rules=tuple(nat_rules),
        deleted_chains=stale, full_sync=full, large_cluster=large, shared=frozen,
        ports=ports, nat_rules_total=total + len(tail), filter_rules_total=len(flat_filter),
        no_local_endpoints_internal=no_local_int, no_local_endpoints_external=no_local_ext)


def compile_full(snapshot: Snapshot, config: IPTablesConfig, *,
                 existing_chains: Iterable[str] = ()) -> RuleSet:
    """Every chain and rule for `snapshot`.

    `existing_chains` are the nat chains present now (e.g. from `iptables-save -t nat`);
    those with kube-proxy's per-service prefixes that are not wanted any more are deleted.
    Pass () to skip stale-chain deletion (kube-proxy does it at most once per sync period
    in large clusters, because reading the existing chains is slow there).
    """
    return _compile(snapshot, config, full=True, write=lambda _: True,
                    existing=existing_chains)


def compile_partial(snapshot: Snapshot, config: IPTablesConfig,
                    changed: AbstractSet[tuple[str, str]], previous: RuleSet, *,
                    existing_chains: Iterable[str] | None = None) -> RuleSet:
    """A partial sync after `previous` was applied successfully.

    Only Services in `changed` ((namespace, name) pairs whose Service or EndpointSlices
    changed, including deleted ones) get their per-service chains rewritten, and only the
    shared chains whose content changed are rewritten (see `_compile`). Stale chains are
    computed against `existing_chains` when given; by default they are the chains of
    `previous` ports that are gone or now compile to other chains (what the kernel holds
    after `previous`, without listing it).
    """
    return _compile(snapshot, config, full=False, write=lambda spn: spn.service in changed,
                    existing=existing_chains, previous=previous)


def needs_full_sync(*, last_full_sync: float | None, now: float, last_sync_failed: bool,
                    period: float = FULL_SYNC_PERIOD_SECONDS) -> bool:
    """kube-proxy's choice: full at start-up (no full sync yet), after a failed restore,
    and once `period` seconds have passed since the last full sync."""
    return last_full_sync is None or last_sync_failed or now - last_full_sync > period


def render_restore(ruleset: RuleSet) -> str:
    """The exact `iptables-restore --noflush` input for `ruleset` (filter, then nat)."""
    lines: list[str] = []
    for table, chains, rules in (("filter", ruleset.filter_chains, ruleset.filter_rules),
                                 ("nat", ruleset.nat_chains, ruleset.nat_rules)):
        if not chains and not rules and not ruleset.full_sync:
            continue  # a partial sync that leaves this table alone skips it entirely
        lines.append(f"*{table}")
        lines.extend(f":{c} - [0:0]" for c in chains)
        lines.extend(rules)
        lines.append("COMMIT")
    return "\n".join(lines) + "\n" if lines else ""
