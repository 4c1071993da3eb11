"""Trace a packet through an iptables model (`FakeIPTables`), enumerating every outcome.

Theory of operation. A new connection's first packet crosses netfilter hooks in a fixed
order; for Service proxying the interesting tables are nat and filter:

    arriving from outside/pods: nat PREROUTING -> (routing) -> filter INPUT      (to this node)
                                                             -> filter FORWARD -> nat POSTROUTING
    generated on the node:      nat OUTPUT -> filter OUTPUT -> nat POSTROUTING [-> filter INPUT]

Rules are evaluated as the kernel does: jumps, gotos, RETURN, built-in policies, MARK,
DNAT ending the nat chain, MASQUERADE in POSTROUTING. Instead of rolling dice at
`-m statistic --probability p`, the tracer follows BOTH branches, weighting them with the
probability the kernel really uses (p rounded to a u32 out of 2^31), so a result lists every
possible destination with its exact probability. `-m recent --rcheck` consults an explicit
affinity state (list name -> {source IP: seconds since last seen}); `--set` is reported.
Conntrack state is NEW for the traced packet, plus DNAT once it has been DNATed.

Local addresses of the node (for `-m addrtype LOCAL` and for routing) are its IPs plus
127.0.0.0/8. A packet is "generated on the node" when `Packet.from_node` says so, or, if
that is None, when its source is a local address.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Mapping

from svcnet.dataplane.testing.fake_iptables import FakeIPTables
from svcnet.dataplane.testing.iptables_rules import STATISTIC_SCALE, Match, Rule, probability_u32
from svcnet.rules.iptables import jump_rules

def node_model(payload: str, nfacct_counters: tuple[str, ...] = ()) -> FakeIPTables:
    """A node's iptables as a proxy leaves them after a full sync: the restore `payload`
    plus kube-proxy's jumps from the built-in chains (which restore does not carry)."""
    model = FakeIPTables(nfacct_counters=nfacct_counters)
    model.restore(payload)
    for jump in jump_rules():
        model.ensure_chain(jump.table, jump.target)
        model.ensure_rule(jump.table, jump.chain, jump.args)
    return model


_MAX_DEPTH = 64
_VERDICTS = ("ACCEPT", "DROP", "REJECT")


class TraceError(RuntimeError):
    """The model cannot be traced (a chain loop, a jump to a chain that vanished)."""


@dataclass(frozen=True, slots=True)
class Packet:
    """The first packet of a connection. `protocol` is lower-case (tcp, udp, sctp)."""

    src: str
    dst: str
    dport: int
    protocol: str = "tcp"
    sport: int = 40000
    from_node: bool | None = None
    in_iface: str | None = None
    out_iface: str | None = None


@dataclass(frozen=True, slots=True)
class TraceNode:
    """The node the packet is traced on: its name and its own IP addresses."""

    name: str
    ips: tuple[str, ...] = ()

    def is_local(self, ip: str) -> bool:
        return ip in self.ips or ipaddress.ip_address(ip).is_loopback


@dataclass(frozen=True, slots=True)
class TraceStep:
    """A rule that matched: where it is and its text as written. `probability` is set when
    the step is one branch of a statistic match (the branch's share)."""

    table: str
    chain: str
    index: int
    rule: str
    probability: float | None = None

    def __str__(self) -> str:
        share = "" if self.probability is None else f"  [p={self.probability:.11f}]"
        return f"{self.table}/{self.chain} #{self.index}: -A {self.chain} {self.rule}{share}"


@dataclass(frozen=True, slots=True)
class TraceOutcome:
    """One way the packet can go, with the probability that it goes this way."""

    probability: float
    verdict: str
    destination: str | None
    masqueraded: bool
    steps: tuple[TraceStep, ...]
    recent_set: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TraceResult:
    """Every outcome of tracing one packet; probabilities sum to 1."""

    packet: Packet
    outcomes: tuple[TraceOutcome, ...]

    @property
    def destinations(self) -> dict[str, float]:
        """DNAT destinations (`ip:port`) of accepted outcomes, with their probabilities."""
        out: dict[str, float] = {}
        for o in self.outcomes:
            if o.verdict == "ACCEPT" and o.destination is not None:
                out[o.destination] = out.get(o.destination, 0.0) + o.probability
        return out

    @property
    def verdicts(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for o in self.outcomes:
            out[o.verdict] = out.get(o.verdict, 0.0) + o.probability
        return out

    @property
    def verdict(self) -> str:
        """The verdict, if every outcome has the same one (ValueError otherwise)."""
        kinds = {o.verdict for o in self.outcomes}
        if len(kinds) != 1:
            raise ValueError(f"outcomes differ in verdict: {sorted(kinds)}")
        return kinds.pop()

    @property
    def masqueraded(self) -> bool:
        """Whether the packet is masqueraded, if that is the same in every outcome."""
        kinds = {o.masqueraded for o in self.outcomes}
        if len(kinds) != 1:
            raise ValueError("some outcomes are masqueraded and some are not")
        return kinds.pop()

    def format(self) -> str:
        """A human-readable account: each outcome with its probability and matched rules."""
        p = self.packet
        lines = [f"{p.protocol} {p.src} -> {p.dst}:{p.dport}"]
        for o in sorted(self.outcomes, key=lambda o: (o.destination or "", o.verdict)):
            dest = f" to {o.destination}" if o.destination else ""
            masq = " (masqueraded)" if o.masqueraded else ""
            lines.append(f"  {o.verdict}{dest}{masq}  p={o.probability:.6f}")
            lines.extend(f"    {s}" for s in o.steps)
        return "\n".join(lines)


@dataclass
class _State:
    """One branch of the trace (mutable while walked, copied at every fork)."""

    probability: float
    dst: str
    dport: int
    mark: int = 0
    dnat: str | None = None
    masq: bool = False
    steps: list[TraceStep] = field(default_factory=list)
    recent_set: list[str] = field(default_factory=list)

    def fork(self, share: float) -> _State:
        return _State(self.probability * share, self.dst, self.dport, self.mark, self.dnat,
                      self.masq, list(self.steps), list(self.recent_set))


class _Tracer:
    def __init__(self, model: FakeIPTables, packet: Packet, node: TraceNode,
                 recent: Mapping[str, Mapping[str, float]]) -> None:
        self.model = model
        self.packet = packet
        self.node = node
        self.recent = recent

    # ---- matching ------------------------------------------------------------------------

    def _addrtype(self, types: str, ip: str) -> bool:
        local = self.node.is_local(ip)
        addr = ipaddress.ip_address(ip)
        kinds = {"LOCAL": local, "MULTICAST": addr.is_multicast,
                 "BROADCAST": ip == "255.255.255.255",
                 "UNICAST": not local and not addr.is_multicast and ip != "255.255.255.255"}
        return any(kinds.get(t, False) for t in types.split(","))

    def _module(self, m: Match, st: _State) -> float:
        pkt = self.packet
        if m.module in ("tcp", "udp", "sctp"):
            for opt, port in (("--dport", st.dport), ("--sport", pkt.sport)):
                if m.has(opt):
                    lo, _, hi = (m.value(opt) or "").partition(":")
                    inside = int(lo or 0) <= port <= int(hi or lo or 65535)
                    if inside == m.negated(opt):
                        return 0.0
            return 1.0
        if m.module == "addrtype":
            for opt, ip in (("--src-type", pkt.src), ("--dst-type", st.dst)):
                if m.has(opt) and self._addrtype(m.value(opt) or "", ip) == m.negated(opt):
                    return 0.0
            return 1.0
        if m.module == "mark":
            v, _, mk = (m.value("--mark") or "").partition("/")
            mask = int(mk, 0) if mk else 0xFFFFFFFF
            return float(((st.mark & mask) == int(v, 0)) != m.negated("--mark"))
        if m.module == "statistic":
            if m.value("--mode") == "nth":
                p = 1.0 / int(m.value("--every") or 1)
            else:
                p = probability_u32(m) / STATISTIC_SCALE
            return 1.0 - p if m.negated("--probability") or m.negated("--every") else p
        if m.module == "recent":
            return self._recent(m, st)
        if m.module == "conntrack":
            states = {"NEW"} | ({"DNAT"} if st.dnat else set())
            wanted = set((m.value("--ctstate") or "").split(","))
            return float(bool(states & wanted) != m.negated("--ctstate"))
        return 1.0  # comment, nfacct: always match

    def _recent(self, m: Match, st: _State) -> float:
        name = m.value("--name", "DEFAULT") or "DEFAULT"
        key = self.packet.src if not m.has("--rdest") else st.dst
        if m.has("--set"):
            st.recent_set.append(name)
            return float(not m.negated("--set"))
        cmd = next(c for c in ("--rcheck", "--update", "--remove") if m.has(c))
        age = self.recent.get(name, {}).get(key)
        seen = age is not None and (not m.has("--seconds") or age <= int(m.value("--seconds")
                                                                          or 0))
        return float(seen != m.negated(cmd))

    def _probability(self, rule: Rule, st: _State) -> float:
        pkt = self.packet
        if rule.source is not None and not rule.source.matches(pkt.src):
            return 0.0
        if rule.destination is not None and not rule.destination.matches(st.dst):
            return 0.0
        if rule.protocol is not None and not rule.protocol.matches(pkt.protocol):
            return 0.0
        if rule.in_iface is not None and not rule.in_iface.matches(pkt.in_iface):
            return 0.0
        if rule.out_iface is not None and not rule.out_iface.matches(pkt.out_iface):
            return 0.0
        p = 1.0
        for m in rule.matches:
            p *= self._module(m, st)
            if p == 0.0:
                return 0.0
        return p

    # ---- walking -------------------------------------------------------------------------

    def walk(self, table: str, chain: str, start: int, st: _State, depth: int,
             out: list[tuple[_State, str | None]]) -> None:
        """Run `st` through `chain` from rule `start`; append (state, verdict) per branch,
        verdict None meaning the chain returned (fell off its end, or RETURN)."""
        if depth > _MAX_DEPTH:
            raise TraceError(f"chain nesting deeper than {_MAX_DEPTH} at {table}/{chain}")
        t = self.model.tables.get(table)
        if t is None or chain not in t.chains:
            raise TraceError(f"chain {table}/{chain} does not exist")
        rules = t.chains[chain].rules
        for i in range(start, len(rules)):
            rule = rules[i]
            p = self._probability(rule, st.fork(1.0))
            if p == 0.0:
                continue
            if p < 1.0:
                self.walk(table, chain, i + 1, st.fork(1.0 - p), depth, out)
                st = st.fork(p)
            self._probability(rule, st)  # again on the kept branch, for recent --set
            st.steps.append(TraceStep(table, chain, i + 1, rule.text, p if p < 1.0 else None))
            tgt = rule.target
            if tgt is None:
                continue
            if tgt.chain:
                sub: list[tuple[_State, str | None]] = []
                self.walk(table, tgt.name, 0, st, depth + 1, sub)
                for s, verdict in sub:
                    if verdict is None and not tgt.goto:
                        self.walk(table, chain, i + 1, s, depth, out)
                    else:
                        out.append((s, verdict))
                return
            if tgt.name == "MARK":
                value, mask = tgt.xmark()
                st.mark = (st.mark & ~mask & 0xFFFFFFFF) ^ value
                continue
            if tgt.name == "RETURN":
                out.append((st, None))
            elif tgt.name in _VERDICTS:
                out.append((st, tgt.name))
            elif tgt.name == "DNAT":
                ip, _, port = (tgt.value("--to-destination") or "").partition(":")
                st.dst, st.dport = ip, int(port) if port else st.dport
                st.dnat = f"{st.dst}:{st.dport}"
                out.append((st, "ACCEPT"))
            elif tgt.name in ("MASQUERADE", "SNAT"):
                st.masq = True
                out.append((st, "ACCEPT"))
            return
        out.append((st, None))

    def hook(self, table: str, chain: str, st: _State) -> list[tuple[_State, str]]:
        """Run a built-in chain; falling off its end applies the chain's policy."""
        t = self.model.tables.get(table)
        if t is None or chain not in t.chains:
            return [(st, "ACCEPT")]
        results: list[tuple[_State, str | None]] = []
        self.walk(table, chain, 0, st, 0, results)
        policy = t.chains[chain].policy or "ACCEPT"
        return [(s, v if v is not None else policy) for s, v in results]


def trace(model: FakeIPTables, packet: Packet, node: TraceNode, *,
          recent: Mapping[str, Mapping[str, float]] | None = None) -> TraceResult:
    """Enumerate every outcome of `packet` on `node` through `model` (module docstring).

    `recent` is the `-m recent` state: list name -> {IP: seconds since it was last set}.
    """
    tracer = _Tracer(model, packet, node, recent or {})
    from_node = packet.from_node if packet.from_node is not None else node.is_local(packet.src)
    start = _State(1.0, packet.dst, packet.dport)
    final: list[TraceOutcome] = []

    def finish(st: _State, verdict: str) -> None:
        final.append(TraceOutcome(st.probability, verdict, st.dnat, st.masq and verdict ==
                                  "ACCEPT", tuple(st.steps), tuple(st.recent_set)))

    pending: list[tuple[_State, list[tuple[str, str]]]] = []
    for st, verdict in tracer.hook("nat", "OUTPUT" if from_node else "PREROUTING", start):
        if verdict != "ACCEPT":
            finish(st, verdict)
            continue
        to_node = node.is_local(st.dst)
        if from_node:
            hooks = [("filter", "OUTPUT"), ("nat", "POSTROUTING")]
            hooks += [("filter", "INPUT")] if to_node else []
        elif to_node:
            hooks = [("filter", "INPUT")]
        else:
            hooks = [("filter", "FORWARD"), ("nat", "POSTROUTING")]
        pending.append((st, hooks))
    while pending:
        st, hooks = pending.pop()
        if not hooks:
            finish(st, "ACCEPT")
            continue
        (table, chain), rest = hooks[0], hooks[1:]
        for s, verdict in tracer.hook(table, chain, st):
            if verdict == "ACCEPT":
                pending.append((s, rest))
            else:
                finish(s, verdict)
    return TraceResult(packet, tuple(final))
