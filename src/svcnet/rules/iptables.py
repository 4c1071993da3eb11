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
- a PARTIAL sync (KEP-3453) still writes all top-level chains and the whole filter table,
  but the per-service chains only of Services that changed; unchanged Services keep their
  chains in the kernel, which the rewritten KUBE-SERVICES keeps jumping to;
- in both, per-service chains that exist but are no longer wanted ("stale") are declared
  (flushed) and then deleted with `-X`. Which chains exist is an input (`existing_chains`:
  from `iptables-save -t nat`, or the previous RuleSet), never looked up here.

The caller chooses full vs partial: full at start-up, after any failed restore (the change
trackers were already drained, so nothing smaller is known to be correct) and periodically
(`needs_full_sync`). Output order is deterministic: Service ports sorted by name, each
emitted in kube-proxy's own order, which equals upstream's test normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import AbstractSet, Callable, Iterable, NamedTuple

from svcnet.proxy.serviceport import ServicePortName
from svcnet.proxy.snapshot import Snapshot
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
class RuleSet:
    """One compiled sync: the restore payload's parts plus bookkeeping for the next sync.

    `*_chains` are the chains declared in the payload, in order (stale ones last in nat);
    `*_rules` the lines after them (including `-X` lines). `active_nat_chains` is every
    per-service chain that exists once this ruleset is applied, whether or not this payload
    rewrote it; a later partial sync uses it as the "existing" set. The counters feed the
    `sync_proxy_rules_*` metrics.
    """

    filter_chains: tuple[str, ...]
    filter_rules: tuple[str, ...]
    nat_chains: tuple[str, ...]
    nat_rules: tuple[str, ...]
    active_nat_chains: frozenset[str]
    deleted_chains: tuple[str, ...]
    full_sync: bool
    large_cluster: bool
    nat_rules_total: int = 0
    no_local_endpoints_internal: int = 0
    no_local_endpoints_external: int = 0


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


def _compile(snapshot: Snapshot, config: IPTablesConfig, *, full: bool,
             write: Callable[[ServicePortName], bool], existing: Iterable[str]) -> RuleSet:
    cfg = effective(config)
    large = snapshot.total_endpoints() > cfg.large_cluster_threshold
    filter_chains = [n.KUBE_SERVICES, n.KUBE_EXTERNAL_SERVICES, n.KUBE_FORWARD,
                     n.KUBE_NODEPORTS, n.KUBE_PROXY_FIREWALL]
    filter_rules: list[str] = []
    if cfg.localhost_nodeports:
        # route_localnet opens 127/8 to the outside (kubernetes#90259); this closes it.
        filter_chains.append(n.KUBE_FIREWALL)
        filter_rules.append(f'-A {n.KUBE_FIREWALL} -m comment --comment "block incoming '
                            f'localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack '
                            f"! --ctstate RELATED,ESTABLISHED,DNAT -j DROP")
    nat_chains = [n.KUBE_SERVICES, n.KUBE_NODEPORTS, n.KUBE_POSTROUTING, n.KUBE_MARK_MASQ]
    nat_rules = _fixed_nat_rules(cfg)
    active: set[str] = set()
    total = len(nat_rules)
    no_local_int = no_local_ext = 0
    for svc in snapshot.service_ports:
        compiled: ServicePortRules = compile_service_port(
            svc, snapshot.endpoints_for(svc.name), snapshot.node, cfg, large_cluster=large)
        filter_rules.extend(compiled.filter_rules)
        nat_rules.extend(compiled.nat_dispatch)
        active.update(compiled.nat_chains)
        total += len(compiled.nat_dispatch) + len(compiled.nat_rules)
        no_local_int += compiled.no_local_internal
        no_local_ext += compiled.no_local_external
        if full or write(svc.name):
            nat_chains.extend(compiled.nat_chains)
            nat_rules.extend(compiled.nat_rules)
    stale = tuple(sorted(c for c in set(existing) if n.is_service_chain(c) and c not in active))
    # Declaring a chain flushes it (dropping its jumps to other stale chains), then -X.
    nat_chains.extend(stale)
    nat_rules.extend(f"-X {c}" for c in stale)
    tail = _tail_rules(cfg)
    nat_rules.extend(tail)
    filter_rules.extend(_forward_rules(cfg))
    return RuleSet(
        filter_chains=tuple(filter_chains), filter_rules=tuple(filter_rules),
        nat_chains=tuple(nat_chains), nat_rules=tuple(nat_rules),
        active_nat_chains=frozenset(active), deleted_chains=stale, full_sync=full,
        large_cluster=large, nat_rules_total=total + len(tail),
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
    changed, including deleted ones) get their per-service chains rewritten; all shared
    chains are rewritten as always. Stale chains are computed against `existing_chains`,
    defaulting to `previous.active_nat_chains` (what the kernel holds after `previous`).
    """
    existing = previous.active_nat_chains if existing_chains is None else existing_chains
    return _compile(snapshot, config, full=False, write=lambda spn: spn.service in changed,
                    existing=existing)


def needs_full_sync(*, last_full_sync: float | None, now: float, last_sync_failed: bool,
                    period: float = FULL_SYNC_PERIOD_SECONDS) -> bool:
    """kube-proxy's choice: full at start-up (no full sync yet), after a failed restore,
    and once `period` seconds have passed since the last full sync."""
    return last_full_sync is None or last_sync_failed or now - last_full_sync > period


def render_restore(ruleset: RuleSet) -> str:
    """The exact `iptables-restore --noflush` input for `ruleset` (filter, then nat)."""
    lines = ["*filter"]
    lines.extend(f":{c} - [0:0]" for c in ruleset.filter_chains)
    lines.extend(ruleset.filter_rules)
    lines.append("COMMIT")
    lines.append("*nat")
    lines.extend(f":{c} - [0:0]" for c in ruleset.nat_chains)
    lines.extend(ruleset.nat_rules)
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"
