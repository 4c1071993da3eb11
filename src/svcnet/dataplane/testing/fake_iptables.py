"""A fake iptables that parses what it is given into a model of tables, chains and rules.

It implements the parts of `iptables-restore`, `iptables-save` and `iptables -C/-I/-N`
that kube-proxy uses, with the same semantics, so compilers can be tested end to end and
packets traced (`svcnet.dataplane.trace.iptables`) without root or a kernel:

- `restore(payload, noflush=True)`: `*table` ... `COMMIT` blocks. A `:CHAIN - [p:b]` line
  creates a user chain, or FLUSHES it if it exists; built-in chains are never flushed under
  --noflush (their line only sets the policy); chains the payload does not mention keep
  their rules. `-A/-I/-D/-N/-X/-F/-P` work as in iptables. Without noflush every table in
  the payload is emptied first.
- failures are those of the real tool: a rule for a chain that does not exist, a jump to a
  missing chain, an unknown match/target/option, `-X` of a chain that is still referenced
  or not empty, a target in the wrong table, a jump loop, an nfacct counter that does not
  exist (`nfacct_counters`), a missing COMMIT. They raise
  `ApplyError(backend="iptables-restore", line=N, text=..., reason=...)` and leave the model
  untouched (one transaction per payload).
- `save()`: the `iptables-save` text: built-in chains first with policies, user chains
  sorted, each rule in canonical form (`Rule.save`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

from svcnet.dataplane.errors import ApplyError
from svcnet.dataplane.testing.iptables_parse import parse_rule, quote_arg, tokenize
from svcnet.dataplane.testing.iptables_rules import Rule, RuleError

#: Built-in chains per table, in the order iptables-save prints them.
BUILTIN_CHAINS: dict[str, tuple[str, ...]] = {
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "raw": ("PREROUTING", "OUTPUT"),
    "security": ("INPUT", "FORWARD", "OUTPUT"),
}
_TABLE_ORDER = ("filter", "nat", "mangle", "raw", "security")
# Targets that the kernel only accepts in some tables.
_TARGET_TABLES = {"DNAT": {"nat"}, "SNAT": {"nat"}, "MASQUERADE": {"nat"},
                  "REJECT": {"filter", "mangle", "raw"}, "DROP": {"filter", "mangle", "raw",
                                                                  "security"}}
_BACKEND = "iptables-restore"


@dataclass
class Chain:
    """A chain: built-in ones have a policy, user chains have `policy` None."""

    name: str
    policy: str | None = None
    rules: list[Rule] = field(default_factory=list)

    @property
    def builtin(self) -> bool:
        return self.policy is not None


@dataclass
class Table:
    name: str
    chains: dict[str, Chain] = field(default_factory=dict)

    @classmethod
    def new(cls, name: str) -> Table:
        return cls(name, {c: Chain(c, "ACCEPT") for c in BUILTIN_CHAINS[name]})

    def references(self, chain: str) -> int:
        """How many rules jump or go to `chain`."""
        return sum(1 for c in self.chains.values() for r in c.rules
                   if r.target is not None and r.target.chain and r.target.name == chain)


class _LineError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FakeIPTables:
    """An in-memory iptables (one IP family). See the module docstring for semantics."""

    def __init__(self, *, nfacct_counters: Iterable[str] = ()) -> None:
        self.tables: dict[str, Table] = {}
        #: Every payload successfully restored, in order (tests assert on these).
        self.restored: list[str] = []
        #: nfacct objects that exist; `-m nfacct --nfacct-name X` fails for any other X,
        #: as the kernel refuses a rule naming a missing counter.
        self.nfacct_counters: set[str] = set(nfacct_counters)

    # ---- queries -------------------------------------------------------------------------

    def table(self, name: str) -> Table:
        """The table, created with its built-in chains on first use (like module loading)."""
        if name not in BUILTIN_CHAINS:
            raise KeyError(f"unknown table {name!r}")
        return self.tables.setdefault(name, Table.new(name))

    def chain_names(self, table: str) -> list[str]:
        return list(self.table(table).chains)

    def has_chain(self, table: str, chain: str) -> bool:
        return chain in self.table(table).chains

    def chain_exists(self, table: str, chain: str) -> bool:
        """Same as `has_chain`; the name the real edge (`dataplane.iptables.IPTables`) uses."""
        return self.has_chain(table, chain)

    def existing_chains(self, table: str, prefixes: Iterable[str] = ()) -> set[str]:
        """Chains of `table` starting with one of `prefixes` (all when empty), as
        `IPTables.existing_chains` reads them from iptables-save."""
        wanted = tuple(prefixes)
        return {c for c in self.table(table).chains if not wanted or c.startswith(wanted)}

    def rules(self, table: str, chain: str) -> tuple[Rule, ...]:
        """The rules of a chain (empty if it does not exist)."""
        found = self.table(table).chains.get(chain)
        return tuple(found.rules) if found else ()

    def policy(self, table: str, chain: str) -> str | None:
        found = self.table(table).chains.get(chain)
        return None if found is None else found.policy

    # ---- the iptables command (used for the jump rules) ----------------------------------

    def ensure_chain(self, table: str, chain: str) -> bool:
        """`iptables -N` unless it exists; returns True if it already existed."""
        chains = self.table(table).chains
        if chain in chains:
            return True
        chains[chain] = Chain(chain)
        return False

    def ensure_rule(self, table: str, chain: str, args: Sequence[str], *,
                    position: str = "prepend") -> bool:
        """`iptables -C`, then `-I` (prepend) or `-A` (append) if missing.

        Returns True if an identical rule already existed. Raises ApplyError (line 0) for a
        bad rule or a missing chain, as the iptables command would fail.
        """
        t = self.table(table)
        if chain not in t.chains:
            raise ApplyError("iptables", 0, " ".join(args), f"chain '{chain}' does not exist")
        try:
            rule = self._parse(t, list(args))
        except _LineError as e:
            raise ApplyError("iptables", 0, " ".join(quote_arg(a) for a in args),
                             e.reason) from None
        rules = t.chains[chain].rules
        if any(r.save(chain) == rule.save(chain) for r in rules):
            return True
        if position == "prepend":
            rules.insert(0, rule)
        else:
            rules.append(rule)
        return False

    # ---- iptables-restore ----------------------------------------------------------------

    def restore(self, payload: str, *, noflush: bool = True) -> None:
        """Apply an iptables-restore payload atomically (see the module docstring)."""
        # Rules are immutable, so copying tables and chain lists is a full snapshot.
        work = {name: Table(name, {c.name: Chain(c.name, c.policy, list(c.rules))
                                   for c in t.chains.values()})
                for name, t in self.tables.items()}
        current: Table | None = None
        line_no = 0
        text = ""
        try:
            for line_no, raw in enumerate(payload.splitlines(), start=1):
                text = raw.strip()
                if not text or text.startswith("#"):
                    continue
                if text.startswith("*"):
                    if current is not None:
                        raise _LineError("COMMIT expected before a new table")
                    name = text[1:]
                    if name not in BUILTIN_CHAINS:
                        raise _LineError(f"table '{name}' does not exist")
                    current = work.setdefault(name, Table.new(name))
                    if not noflush:
                        work[name] = current = Table.new(name)
                elif current is None:
                    raise _LineError("no table specified (missing *table line)")
                elif text == "COMMIT":
                    _check_loops(current)
                    current = None
                elif text.startswith(":"):
                    self._declare(current, text, noflush)
                else:
                    self._command(current, tokenize_line(text))
            if current is not None:
                line_no += 1
                text = ""
                raise _LineError(f"COMMIT expected at line {line_no}")
        except _LineError as e:
            raise ApplyError(_BACKEND, line_no, text, e.reason) from None
        self.tables = work
        self.restored.append(payload)

    def _declare(self, table: Table, text: str, noflush: bool) -> None:
        parts = text[1:].split()
        if not parts:
            raise _LineError("bad chain line")
        name, policy = parts[0], (parts[1] if len(parts) > 1 else "-")
        chain = table.chains.get(name)
        if name in BUILTIN_CHAINS[table.name]:
            if policy not in ("ACCEPT", "DROP"):
                raise _LineError(f"bad policy '{policy}' for built-in chain {name}")
            assert chain is not None
            chain.policy = policy
            if not noflush:
                chain.rules.clear()
            return
        if policy != "-":
            raise _LineError(f"user chain {name} cannot have a policy")
        if len(name) > 28 or name.startswith("-"):
            raise _LineError(f"invalid chain name `{name}'")
        if chain is None:
            table.chains[name] = Chain(name)
        else:
            chain.rules.clear()  # --noflush: declaring an existing chain flushes it

    def _parse(self, table: Table, args: list[str]) -> Rule:
        try:
            rule = parse_rule(args, is_chain=lambda c: c in table.chains
                              and not table.chains[c].builtin)
        except RuleError as e:
            raise _LineError(str(e)) from None
        for m in rule.matches:
            name = m.value("--nfacct-name") if m.module == "nfacct" else None
            if name is not None and name not in self.nfacct_counters:
                raise _LineError(f"nfacct object '{name}' does not exist")
        tgt = rule.target
        if tgt is not None and not tgt.chain:
            allowed = _TARGET_TABLES.get(tgt.name)
            if allowed is not None and table.name not in allowed:
                raise _LineError(f"{tgt.name} target is not valid in the {table.name} table")
        return rule

    def _command(self, table: Table, tokens: list[str]) -> None:
        op, rest = tokens[0], tokens[1:]
        if op in ("-A", "--append", "-I", "--insert", "-D", "--delete", "-R", "--replace"):
            if not rest:
                raise _LineError(f"{op} needs a chain")
            chain = table.chains.get(rest[0])
            if chain is None:
                raise _LineError(f"chain '{rest[0]}' does not exist")
            args = rest[1:]
            index: int | None = None
            if op in ("-I", "--insert", "-D", "--delete", "-R", "--replace") and args \
                    and args[0].isdigit():
                index, args = int(args[0]), args[1:]
            if op in ("-D", "--delete"):
                self._delete(chain, index, args, table)
                return
            rule = self._parse(table, args)
            if op in ("-A", "--append"):
                chain.rules.append(rule)
            elif op in ("-I", "--insert"):
                pos = (index or 1) - 1
                if pos > len(chain.rules):
                    raise _LineError("index of insertion too big")
                chain.rules.insert(pos, rule)
            else:
                if index is None or not 1 <= index <= len(chain.rules):
                    raise _LineError("index of replacement too big")
                chain.rules[index - 1] = rule
        elif op in ("-N", "--new-chain"):
            if not rest or rest[0] in table.chains:
                raise _LineError("chain already exists" if rest else "-N needs a chain")
            table.chains[rest[0]] = Chain(rest[0])
        elif op in ("-X", "--delete-chain"):
            self._delete_chain(table, rest)
        elif op in ("-F", "--flush"):
            targets = [table.chains.get(rest[0])] if rest else list(table.chains.values())
            if None in targets:
                raise _LineError(f"chain '{rest[0]}' does not exist")
            for c in targets:
                assert c is not None
                c.rules.clear()
        elif op in ("-P", "--policy"):
            if len(rest) != 2 or rest[0] not in BUILTIN_CHAINS[table.name] \
                    or rest[1] not in ("ACCEPT", "DROP"):
                raise _LineError("bad policy command")
            table.chains[rest[0]].policy = rest[1]
        else:
            raise _LineError(f"unknown command `{op}'")

    def _delete(self, chain: Chain, index: int | None, args: list[str], table: Table) -> None:
        if index is not None:
            if not 1 <= index <= len(chain.rules):
                raise _LineError("index of deletion too big")
            del chain.rules[index - 1]
            return
        wanted = self._parse(table, args).save(chain.name)
        for i, r in enumerate(chain.rules):
            if r.save(chain.name) == wanted:
                del chain.rules[i]
                return
        raise _LineError("Bad rule (does a matching rule exist in that chain?)")

    def _delete_chain(self, table: Table, names: list[str]) -> None:
        victims = names or [c.name for c in table.chains.values() if not c.builtin]
        for name in victims:
            chain = table.chains.get(name)
            if chain is None:
                raise _LineError(f"chain '{name}' does not exist")
            if chain.builtin:
                raise _LineError(f"cannot delete built-in chain {name}")
            if table.references(name):
                raise _LineError(f"chain {name} is still referenced")
            if chain.rules:
                raise _LineError(f"chain {name} is not empty")
            del table.chains[name]

    # ---- iptables-save -------------------------------------------------------------------

    def save(self, tables: Iterable[str] | None = None, *, counters: bool = True) -> str:
        """`iptables-save` output (without the timestamped `#` comment lines)."""
        names = [t for t in _TABLE_ORDER if t in self.tables and (tables is None or t in tables)]
        out: list[str] = []
        for name in names:
            table = self.tables[name]
            out.append(f"*{name}")
            builtin = [table.chains[c] for c in BUILTIN_CHAINS[name]]
            user = sorted((c for c in table.chains.values() if not c.builtin),
                          key=lambda c: c.name)
            for chain in builtin + user:
                count = " [0:0]" if counters else ""
                out.append(f":{chain.name} {chain.policy or '-'}{count}")
            for chain in builtin + user:
                out.extend(rule.save(chain.name) for rule in chain.rules)
            out.append("COMMIT")
        return "".join(line + "\n" for line in out)


def _check_loops(table: Table) -> None:
    """Refuse jump cycles, as the kernel does when the table is committed (ELOOP)."""
    edges = {name: [r.target.name for r in c.rules if r.target is not None and r.target.chain]
             for name, c in table.chains.items()}
    done: set[str] = set()
    for root in edges:
        stack: list[tuple[str, int]] = [(root, 0)]
        path = {root}
        while stack:
            node, i = stack[-1]
            if i == len(edges[node]) or node in done:
                stack.pop()
                path.discard(node)
                done.add(node)
                continue
            stack[-1] = (node, i + 1)
            nxt = edges[node][i]
            if nxt in path:
                raise _LineError(f"chain loop through {nxt} (Too many levels of links)")
            if nxt not in done:
                stack.append((nxt, 0))
                path.add(nxt)


def tokenize_line(text: str) -> list[str]:
    """Tokenize one restore command line, turning quoting errors into line errors."""
    try:
        return tokenize(text)
    except RuleError as e:
        raise _LineError(str(e)) from None
