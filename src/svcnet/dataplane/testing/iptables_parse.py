"""Parse iptables rule arguments (and restore lines) into `iptables_rules.Rule`.

We parse the subset of iptables that Service proxies use, strictly: an unknown match
module, target or option is an error (as it is for the real tool: "Couldn't load match"),
never silently ignored, so a typo in a compiler shows up in unit tests instead of on a
node. Supported: `-s/-d` (with `!`), `-p`, `-i/-o`, matches `comment`, `tcp`/`udp`/`sctp`
(`--dport`/`--sport`), `addrtype`, `mark`, `statistic`, `recent`, `conntrack`, `nfacct`,
and targets ACCEPT, DROP, RETURN, REJECT, DNAT, SNAT, MASQUERADE, MARK and jumps/gotos.
Options are attached like iptables does: to the first loaded match that knows them, else
to the target, else to the match `-p tcp|udp|sctp` loads implicitly.
"""

from __future__ import annotations

import ipaddress
from typing import Callable, Iterator, Sequence

from svcnet.dataplane.testing.iptables_rules import (
    ADDR_TYPES,
    CT_STATES,
    Address,
    Flag,
    Match,
    Rule,
    RuleError,
    Target,
    parse_mark,
    probability_u32,
)

_PROTO_NUMBERS = {"1": "icmp", "6": "tcp", "17": "udp", "132": "sctp", "0": "all"}
_PROTOCOLS = {"tcp", "udp", "sctp", "icmp", "all"}


def quote_arg(token: str) -> str:
    """A token as it must appear in restore input (double-quoted if it has blanks)."""
    if token and not any(c.isspace() or c == '"' for c in token):
        return token
    return '"' + token.replace("\\", "\\\\").replace('"', '\\"') + '"'


def tokenize(line: str) -> list[str]:
    """Split a restore line like iptables-restore: blanks separate, double quotes group,
    and inside quotes a backslash escapes the next character."""
    tokens: list[str] = []
    cur: list[str] = []
    in_quote = have = False
    i = 0
    while i < len(line):
        c = line[i]
        if in_quote:
            if c == "\\" and i + 1 < len(line):
                cur.append(line[i + 1])
                i += 1
            elif c == '"':
                in_quote = False
            else:
                cur.append(c)
        elif c == '"':
            in_quote = have = True
        elif c.isspace():
            if have:
                tokens.append("".join(cur))
                cur, have = [], False
        else:
            cur.append(c)
            have = True
        i += 1
    if in_quote:
        raise RuleError("unterminated quoted string")
    if have:
        tokens.append("".join(cur))
    return tokens


# option -> (takes a value, may be negated); aliases map to the canonical option name.
_PORT_OPTS = {"--dport": (True, True), "--sport": (True, True)}
_MODULES: dict[str, dict[str, tuple[bool, bool]]] = {
    "comment": {"--comment": (True, False)},
    "tcp": _PORT_OPTS, "udp": _PORT_OPTS, "sctp": _PORT_OPTS,
    "addrtype": {"--src-type": (True, True), "--dst-type": (True, True),
                 "--limit-iface-in": (False, False), "--limit-iface-out": (False, False)},
    "mark": {"--mark": (True, True)},
    "statistic": {"--mode": (True, False), "--probability": (True, True),
                  "--every": (True, True), "--packet": (True, False)},
    "recent": {"--name": (True, False), "--set": (False, True), "--rcheck": (False, True),
               "--update": (False, True), "--remove": (False, True), "--seconds": (True, False),
               "--reap": (False, False), "--hitcount": (True, False), "--rttl": (False, False),
               "--rsource": (False, False), "--rdest": (False, False), "--mask": (True, False)},
    "conntrack": {"--ctstate": (True, True)},
    "nfacct": {"--nfacct-name": (True, False)},
}
_ALIASES = {"--destination-port": "--dport", "--source-port": "--sport"}
_TARGETS: dict[str, dict[str, bool]] = {  # option -> takes a value
    "ACCEPT": {}, "DROP": {}, "RETURN": {},
    "REJECT": {"--reject-with": True},
    "DNAT": {"--to-destination": True, "--random": False, "--persistent": False},
    "SNAT": {"--to-source": True, "--random": False, "--random-fully": False,
             "--persistent": False},
    "MASQUERADE": {"--to-ports": True, "--random": False, "--random-fully": False},
    "MARK": {"--set-xmark": True, "--set-mark": True, "--and-mark": True, "--or-mark": True,
             "--xor-mark": True},
}
BUILTIN_TARGETS = frozenset(_TARGETS)


def _check_match(m: Match, protocol: Flag | None) -> None:
    if m.module in ("tcp", "udp", "sctp") and (protocol is None or protocol.negated
                                                or protocol.value != m.module):
        raise RuleError(f"{m.module} match: needs -p {m.module}")
    if m.module == "statistic":
        mode = m.value("--mode")
        if mode == "random":
            if not m.has("--probability"):
                raise RuleError("statistic: --mode random needs --probability")
            probability_u32(m)
        elif mode != "nth" or not m.has("--every"):
            raise RuleError("statistic: --mode random needs --probability, nth needs --every")
    if m.module == "recent" and not any(m.has(c) for c in ("--set", "--rcheck", "--update",
                                                           "--remove")):
        raise RuleError("recent: you must specify one of `--set', `--rcheck' `--update' or "
                        "`--remove'")
    if m.module == "mark":
        parse_mark(m.value("--mark") or "")
    if m.module == "conntrack":
        bad = [s for s in (m.value("--ctstate") or "").split(",") if s not in CT_STATES]
        if bad:
            raise RuleError(f"Bad ctstate \"{','.join(bad)}\"")
    if m.module == "addrtype":
        for opt in ("--src-type", "--dst-type"):
            if m.has(opt) and any(t not in ADDR_TYPES for t in (m.value(opt) or "").split(",")):
                raise RuleError(f"addrtype: bad type \"{m.value(opt)}\"")


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise RuleError(f"host/network `{text}' not found") from None


def parse_rule(args: Sequence[str], *, is_chain: Callable[[str], bool]) -> Rule:
    """Parse the arguments after `-A CHAIN` (already tokenized).

    `is_chain(name)` says whether a user chain exists in the rule's table; jumps to
    anything else that is not a built-in target fail like iptables' "Couldn't load target".
    """
    toks: Iterator[str] = iter(args)
    fields: dict[str, Flag | Address] = {}
    matches: list[tuple[str, list[tuple[str, str | None, bool]]]] = []
    target: tuple[str, bool, bool] | None = None
    target_opts: list[tuple[str, str | None]] = []
    negate = False

    def need(opt: str) -> str:
        value = next(toks, None)
        if value is None:
            raise RuleError(f"option \"{opt}\" requires an argument")
        return value

    for tok in toks:
        if tok == "!":
            if negate:
                raise RuleError("multiple `!' flags not allowed")
            negate = True
            continue
        key = {"-s": "s", "--source": "s", "--src": "s", "-d": "d", "--destination": "d",
               "--dst": "d", "-p": "p", "--protocol": "p", "-i": "i", "--in-interface": "i",
               "-o": "o", "--out-interface": "o"}.get(tok)
        if key is not None:
            value = need(tok)
            if key in fields:
                raise RuleError(f"multiple {tok} flags not allowed")
            if key in "sd":
                fields[key] = Address(_network(value), negate)
            elif key == "p":
                proto = _PROTO_NUMBERS.get(value, value.lower())
                if proto not in _PROTOCOLS:
                    raise RuleError(f"unknown protocol \"{value}\" specified")
                fields[key] = Flag(proto, negate)
            else:
                fields[key] = Flag(value, negate)
        elif tok in ("-m", "--match"):
            module = need(tok)
            if module not in _MODULES:
                raise RuleError(f"Couldn't load match `{module}':No such file or directory")
            if negate:
                raise RuleError("unexpected ! flag before --match")
            matches.append((module, []))
        elif tok in ("-j", "--jump", "-g", "--goto"):
            name = need(tok)
            goto = tok in ("-g", "--goto")
            if target is not None:
                raise RuleError("multiple -j flags not allowed")
            if is_chain(name):
                target = (name, True, goto)
            elif name in _TARGETS and not goto:
                target = (name, False, False)
            else:
                raise RuleError(f"Couldn't load target `{name}':No such file or directory")
        elif tok.startswith("--"):
            opt = _ALIASES.get(tok, tok)
            owner = next((mo for mo in matches if opt in _MODULES[mo[0]]), None)
            if owner is None and target is not None and opt in _TARGETS.get(target[0], {}):
                if negate:
                    raise RuleError(f"unexpected ! flag before {opt}")
                target_opts.append((opt, need(opt) if _TARGETS[target[0]][opt] else None))
                continue
            given = fields.get("p")
            if owner is None and isinstance(given, Flag) and given.value in ("tcp", "udp", "sctp") \
                    and opt in _PORT_OPTS:
                owner = (given.value, [])  # implicit match loaded by -p
                matches.append(owner)
            if owner is None:
                raise RuleError(f"unknown option \"{tok}\"")
            takes_value, negatable = _MODULES[owner[0]][opt]
            if negate and not negatable:
                raise RuleError(f"unexpected ! flag before {opt}")
            owner[1].append((opt, need(opt) if takes_value else None, negate))
        else:
            raise RuleError(f"Bad argument `{tok}'")
        negate = False
    if negate:
        raise RuleError("trailing ! flag")
    protocol = fields.get("p")
    assert protocol is None or isinstance(protocol, Flag)
    built = tuple(Match(module, tuple(opts)) for module, opts in matches)
    for m in built:
        _check_match(m, protocol)
    tgt = None
    if target is not None:
        tgt = Target(target[0], chain=target[1], goto=target[2], options=tuple(target_opts))
        to = tgt.value("--to-destination") or tgt.value("--to-source") or ""
        if (":" in to or tgt.has("--to-ports")) and (
                protocol is None or protocol.value not in ("tcp", "udp", "sctp")):
            raise RuleError("Need TCP, UDP, SCTP or DCCP with port specification")
        if tgt.name == "MARK":
            tgt.xmark()
    src, dst = fields.get("s"), fields.get("d")
    in_iface, out_iface = fields.get("i"), fields.get("o")
    assert src is None or isinstance(src, Address)
    assert dst is None or isinstance(dst, Address)
    assert in_iface is None or isinstance(in_iface, Flag)
    assert out_iface is None or isinstance(out_iface, Flag)
    return Rule(source=src, destination=dst, in_iface=in_iface, out_iface=out_iface,
                protocol=protocol, matches=built, target=tgt,
                text=" ".join(quote_arg(a) for a in args))
