"""One iptables rule as a model, printed back the way `iptables-save` does.

`iptables_parse.parse_rule` builds these from rule arguments; tracers read them; `save`
prints them. A `Match` keeps its options exactly as given (option -> value, negated), with
typed helpers for what tracers need, so no information is lost between parse and print.

Printing follows iptables-save (checked against iptables 1.8.9, legacy and nft): addresses
and protocol first (`! -s 10.0.0.0/8 -d 172.30.0.41/32 -p tcp`), then matches in the order
given with their options in each extension's own order, then the target. Values are what
the kernel stored: `--probability 0.3333333333` comes back as `0.33333333349` (a u32 out of
2^31), `--or-mark 0x00004000` as `--set-xmark 0x4000/0x4000`, and comments are quoted
unless they consist only of `[A-Za-z0-9_-]`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Callable

CT_STATES = ("INVALID", "NEW", "RELATED", "ESTABLISHED", "UNTRACKED", "SNAT", "DNAT")
ADDR_TYPES = ("UNSPEC", "UNICAST", "LOCAL", "BROADCAST", "ANYCAST", "MULTICAST", "BLACKHOLE",
              "UNREACHABLE", "PROHIBIT", "THROW", "NAT", "XRESOLVE")
_NO_QUOTE = set("_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
#: The kernel's statistic match compares (random & 0x7FFFFFFF) with p * 2^31.
STATISTIC_SCALE = 0x80000000


class RuleError(ValueError):
    """A rule the real iptables would refuse; the message mimics its complaint."""


def save_string(text: str) -> str:
    """Quote a value like iptables' `xtables_save_string`."""
    if text and all(c in _NO_QUOTE for c in text):
        return text
    escaped = "".join("\\" + c if c in "\"\\'" else c for c in text)
    return f'"{escaped}"'


@dataclass(frozen=True, slots=True)
class Address:
    """`[!] -s/-d ADDR[/MASK]`."""

    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    negated: bool = False

    def matches(self, ip: str) -> bool:
        return (ipaddress.ip_address(ip) in self.network) != self.negated


@dataclass(frozen=True, slots=True)
class Flag:
    """A negatable scalar selector such as `-p tcp` or `-i eth0`."""

    value: str
    negated: bool = False

    def matches(self, value: str | None) -> bool:
        return (value == self.value) != self.negated


@dataclass(frozen=True, slots=True)
class Match:
    """One `-m MODULE` with its options: `options` maps option -> (value, negated).

    Typed accessors below cover what tracers need; `save_args` prints the extension.
    """

    module: str
    options: tuple[tuple[str, str | None, bool], ...] = ()

    def get(self, option: str) -> tuple[str | None, bool] | None:
        for name, value, negated in self.options:
            if name == option:
                return value, negated
        return None

    def has(self, option: str) -> bool:
        return self.get(option) is not None

    def value(self, option: str, default: str | None = None) -> str | None:
        got = self.get(option)
        return default if got is None else got[0]

    def negated(self, option: str) -> bool:
        got = self.get(option)
        return bool(got and got[1])

    def save_args(self) -> list[str]:
        return _SAVERS[self.module](self)


@dataclass(frozen=True, slots=True)
class Target:
    """`-j NAME [options]` or `-g CHAIN`. `chain` is True for jumps to user chains."""

    name: str
    chain: bool = False
    goto: bool = False
    options: tuple[tuple[str, str | None], ...] = ()

    def value(self, option: str) -> str | None:
        return next((v for o, v in self.options if o == option), None)

    def has(self, option: str) -> bool:
        return any(o == option for o, _ in self.options)

    def xmark(self) -> tuple[int, int]:
        """MARK as (value, mask) with `--set-xmark` semantics: mark = (mark & ~mask) ^ value."""
        for opt, raw in self.options:
            v, _, m = (raw or "").partition("/")
            val = int(v, 0)
            mask = int(m, 0) if m else 0xFFFFFFFF
            if opt == "--set-xmark":
                return val, mask
            if opt == "--set-mark":
                return val, mask | val
            if opt == "--or-mark":
                return val, val
            if opt == "--xor-mark":
                return val, 0
            if opt == "--and-mark":
                return 0, ~val & 0xFFFFFFFF
        raise RuleError("MARK target needs one of --set-xmark/--set-mark/--and-mark/"
                        "--or-mark/--xor-mark")

    def save_args(self) -> list[str]:
        out = ["-g" if self.goto else "-j", self.name]
        if self.name == "MARK":
            val, mask = self.xmark()
            out += ["--set-xmark", f"0x{val:x}/0x{mask:x}"]
        elif self.name == "REJECT":
            out += ["--reject-with", self.value("--reject-with") or "icmp-port-unreachable"]
        else:
            for opt in ("--to-destination", "--to-source", "--to-ports"):
                if self.has(opt):
                    out += [opt, self.value(opt) or ""]
            out += [o for o in ("--random", "--random-fully", "--persistent") if self.has(o)]
        return out


@dataclass(frozen=True, slots=True)
class Rule:
    """A parsed rule: selectors, matches in order, optional target, and its written text."""

    source: Address | None = None
    destination: Address | None = None
    in_iface: Flag | None = None
    out_iface: Flag | None = None
    protocol: Flag | None = None
    matches: tuple[Match, ...] = ()
    target: Target | None = None
    text: str = field(default="", compare=False)

    def match(self, module: str) -> Match | None:
        """The first match of `module`, if any."""
        return next((m for m in self.matches if m.module == module), None)

    @property
    def comment(self) -> str | None:
        m = self.match("comment")
        return None if m is None else m.value("--comment")

    def save(self, chain: str) -> str:
        """The rule as `iptables-save` prints it."""
        out = ["-A", chain]
        for flag, addr in (("-s", self.source), ("-d", self.destination)):
            if addr is not None:
                out += (["!"] if addr.negated else []) + [flag, str(addr.network)]
        for flag, sel in (("-i", self.in_iface), ("-o", self.out_iface), ("-p", self.protocol)):
            if sel is not None:
                out += (["!"] if sel.negated else []) + [flag, sel.value]
        for m in self.matches:
            out += ["-m", m.module, *m.save_args()]
        if self.target is not None:
            out += self.target.save_args()
        return " ".join(out)


def _neg(m: Match, opt: str) -> list[str]:
    return ["!"] if m.negated(opt) else []


def _save_comment(m: Match) -> list[str]:
    return ["--comment", save_string(m.value("--comment") or "")]


def _save_ports(m: Match) -> list[str]:
    out: list[str] = []
    for opt in ("--sport", "--dport"):
        if m.has(opt):
            out += _neg(m, opt) + [opt, m.value(opt) or ""]
    return out


def _save_addrtype(m: Match) -> list[str]:
    out: list[str] = []
    for opt in ("--src-type", "--dst-type"):
        if m.has(opt):
            out += _neg(m, opt) + [opt, m.value(opt) or ""]
    return out + [o for o in ("--limit-iface-in", "--limit-iface-out") if m.has(o)]


def _save_mark(m: Match) -> list[str]:
    val, mask = parse_mark(m.value("--mark") or "")
    text = f"0x{val:x}" if mask == 0xFFFFFFFF else f"0x{val:x}/0x{mask:x}"
    return _neg(m, "--mark") + ["--mark", text]


def _save_statistic(m: Match) -> list[str]:
    if m.value("--mode") == "nth":
        return ["--mode", "nth", *_neg(m, "--every"), "--every", m.value("--every") or "",
                "--packet", m.value("--packet", "0") or "0"]
    return ["--mode", "random", *_neg(m, "--probability"), "--probability",
            f"{probability_u32(m) / STATISTIC_SCALE:.11f}"]


def _save_recent(m: Match) -> list[str]:
    out: list[str] = []
    for cmd in ("--set", "--rcheck", "--update", "--remove"):
        if m.has(cmd):
            out += _neg(m, cmd) + [cmd]
    for opt in ("--seconds", "--hitcount"):
        if m.has(opt):
            out += [opt, m.value(opt) or ""]
        if opt == "--seconds" and m.has("--reap"):
            out.append("--reap")
    if m.has("--rttl"):
        out.append("--rttl")
    out += ["--name", m.value("--name", "DEFAULT") or "DEFAULT",
            "--mask", m.value("--mask", "255.255.255.255") or "255.255.255.255"]
    return out + ["--rdest" if m.has("--rdest") else "--rsource"]


def _save_conntrack(m: Match) -> list[str]:
    states = (m.value("--ctstate") or "").split(",")
    ordered = ",".join(s for s in CT_STATES if s in states)
    return _neg(m, "--ctstate") + ["--ctstate", ordered]


def _save_nfacct(m: Match) -> list[str]:
    return ["--nfacct-name", m.value("--nfacct-name") or ""]


_SAVERS: dict[str, Callable[[Match], list[str]]] = {
    "comment": _save_comment, "tcp": _save_ports, "udp": _save_ports, "sctp": _save_ports,
    "addrtype": _save_addrtype, "mark": _save_mark, "statistic": _save_statistic,
    "recent": _save_recent, "conntrack": _save_conntrack, "nfacct": _save_nfacct,
}

def parse_mark(text: str) -> tuple[int, int]:
    """`VALUE[/MASK]` -> (value, mask); the mask defaults to all ones."""
    try:
        v, _, m = text.partition("/")
        return int(v, 0), (int(m, 0) if m else 0xFFFFFFFF)
    except ValueError:
        raise RuleError(f"Bad MARK value \"{text}\"") from None


def probability_u32(m: Match) -> int:
    """The kernel's stored probability: lround(p * 2^31)."""
    try:
        p = float(m.value("--probability") or "")
    except ValueError:
        raise RuleError(f"Bad probability \"{m.value('--probability')}\"") from None
    if not 0.0 <= p <= 1.0:
        raise RuleError("--probability must be between 0 and 1")
    return int(p * STATISTIC_SCALE + 0.5)
