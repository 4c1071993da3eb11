"""Order-insensitive comparison of iptables-restore text, as upstream kube-proxy tests do.

kube-proxy iterates Services in Go map order, so its tests normalise the output before
comparing (`sortIPTablesRules` in pkg/proxy/iptables/proxier_test.go, described in
reference/kube-proxy.md §1.8): tables by name; chains KUBE-NODEPORTS first, KUBE-SERVICES
second, other KUBE-* chains alphabetically, non-KUBE chains last; rules grouped by chain
in that order, keeping their relative order, except that KUBE-NODEPORTS and KUBE-SERVICES
rules are stable-sorted by the Service name in their comment (text up to the first space
or colon) and nat KUBE-SERVICES keeps its "must be the last rule" rule last.
"""

from __future__ import annotations

import re
from functools import cmp_to_key
from typing import Any, Callable

_COMMENT = re.compile(r'--comment ("(?:[^"\\]|\\.)*"|\S+)')


def _comment(rule: str) -> str | None:
    m = _COMMENT.search(rule)
    return None if m is None else m.group(1).strip('"')


def _service_key(rule: str) -> str | None:
    comment = _comment(rule)
    if comment is None:
        return None
    return re.split(r"[ :]", comment, maxsplit=1)[0]


def _by_service(last_marker: bool) -> Callable[[str], Any]:
    """A sort key ordering rules by the Service name in their comment (stable for ties)."""
    def cmp(a: str, b: str) -> int:
        if last_marker:
            a_last = "must be the last rule" in (_comment(a) or "")
            b_last = "must be the last rule" in (_comment(b) or "")
            if a_last != b_last:
                return 1 if a_last else -1
        ka, kb = _service_key(a), _service_key(b)
        if ka is None or kb is None:
            return 0
        return (ka > kb) - (ka < kb)
    return cmp_to_key(cmp)


def _chain_order(name: str) -> tuple[int, str]:
    if name == "KUBE-NODEPORTS":
        return (0, "")
    if name == "KUBE-SERVICES":
        return (1, "")
    return (2 if name.startswith("KUBE-") else 3, name)


def normalize(payload: str) -> str:
    """The canonical form of an iptables-restore payload (see module docstring)."""
    tables: dict[str, tuple[list[str], dict[str, list[str]], list[str]]] = {}
    current: tuple[list[str], dict[str, list[str]], list[str]] | None = None
    for raw in payload.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            current = tables.setdefault(line[1:], ([], {}, []))
        elif line == "COMMIT":
            current = None
        elif current is None:
            raise ValueError(f"line outside a table: {line!r}")
        elif line.startswith(":"):
            current[0].append(line)
        elif line.startswith("-X "):
            current[2].append(line)
        elif line.startswith("-A "):
            chain = line.split()[1]
            current[1].setdefault(chain, []).append(line)
        else:
            raise ValueError(f"unexpected line: {line!r}")
    out: list[str] = []
    for name in sorted(tables):
        decls, rules, deletes = tables[name]
        out.append(f"*{name}")
        out.extend(sorted(decls, key=lambda d: _chain_order(d[1:].split()[0])))
        for chain in sorted(rules, key=_chain_order):
            chain_rules = rules[chain]
            if chain == "KUBE-NODEPORTS" or (chain == "KUBE-SERVICES" and name == "filter"):
                chain_rules = sorted(chain_rules, key=_by_service(False))
            elif chain == "KUBE-SERVICES":
                chain_rules = sorted(chain_rules, key=_by_service(True))
            out.extend(chain_rules)
        out.extend(sorted(deletes))
        out.append("COMMIT")
    return "\n".join(out) + "\n"
