"""Label and field selectors: parsing the query-string syntax and matching objects.

The `labelSelector` grammar is apimachinery's (`a=b`, `a==b`, `a!=b`, `a in (x,y)`,
`a notin (x)`, `a`, `!a`, joined by commas). A `LabelSelector` object (matchLabels +
matchExpressions, as in Deployments and NetworkPolicies) compiles to the same requirement
list, so one matcher serves lists, watches and controllers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping

from svcnet.api import errors

Op = Literal["=", "!=", "in", "notin", "exists", "!"]


@dataclass(frozen=True)
class Requirement:
    key: str
    op: Op
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.op == "=":
            return labels.get(self.key) == self.values[0]
        if self.op == "!=":
            return labels.get(self.key) != self.values[0]
        if self.op == "in":
            return self.key in labels and labels[self.key] in self.values
        if self.op == "notin":
            return self.key not in labels or labels[self.key] not in self.values
        if self.op == "exists":
            return self.key in labels
        return self.key not in labels


Selector = tuple[Requirement, ...]

_TOKEN = re.compile(r"\s*(!=|==|=|\(|\)|,|!|[^\s!=(),]+)")


def _tokens(text: str) -> list[str]:
    pos, out = 0, []
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise errors.bad_request(f"unable to parse requirement: {text!r}")
        out.append(m.group(1))
        pos = m.end()
    return out


def parse_label_selector(text: str) -> Selector:
    """Parse a `labelSelector` query value; bad syntax is a 400 with the offending text."""
    toks = _tokens(text)
    reqs: list[Requirement] = []
    i = 0

    def fail(why: str) -> errors.StatusError:
        return errors.bad_request(f"unable to parse requirement: {why} in selector {text!r}")

    while i < len(toks):
        if toks[i] == "!":
            if i + 1 >= len(toks):
                raise fail("missing key after '!'")
            reqs.append(Requirement(toks[i + 1], "!"))
            i += 2
        else:
            key = toks[i]
            i += 1
            if i >= len(toks) or toks[i] == ",":
                reqs.append(Requirement(key, "exists"))
            elif toks[i] in ("=", "==", "!="):
                eq_op: Op = "!=" if toks[i] == "!=" else "="
                i += 1
                value = ""
                if i < len(toks) and toks[i] not in (",", "(", ")"):
                    value = toks[i]
                    i += 1
                reqs.append(Requirement(key, eq_op, (value,)))
            elif toks[i] in ("in", "notin"):
                op = toks[i]
                if i + 1 >= len(toks) or toks[i + 1] != "(":
                    raise fail(f"expected '(' after '{op}'")
                i += 2
                values: list[str] = []
                while i < len(toks) and toks[i] != ")":
                    if toks[i] != ",":
                        values.append(toks[i])
                    i += 1
                if i >= len(toks):
                    raise fail("missing ')'")
                i += 1
                reqs.append(Requirement(key, "in" if op == "in" else "notin", tuple(values)))
            else:
                raise fail(f"unexpected {toks[i]!r} after {key!r}")
        if i < len(toks):
            if toks[i] != ",":
                raise fail(f"expected ',' but found {toks[i]!r}")
            i += 1
    return tuple(reqs)


def from_label_selector(sel: Mapping[str, Any] | None) -> Selector | None:
    """Compile a LabelSelector object. None (nil) selects nothing; {} selects everything."""
    if sel is None:
        return None
    reqs = [Requirement(k, "=", (v,)) for k, v in sorted((sel.get("matchLabels") or {}).items())]
    opmap: dict[str, Op] = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for e in sel.get("matchExpressions") or []:
        op = opmap.get(e.get("operator", ""))
        if op is None:
            raise errors.bad_request(f"{e.get('operator')!r} is not a valid label selector operator")
        reqs.append(Requirement(e.get("key", ""), op, tuple(e.get("values") or ())))
    return tuple(reqs)


def matches(selector: Selector | None, labels: Mapping[str, str] | None) -> bool:
    if selector is None:
        return False
    lab = labels or {}
    return all(r.matches(lab) for r in selector)


def format_selector(selector: Selector) -> str:
    """The query-string form (used in Scale.status.selector and printers)."""
    parts = []
    for r in selector:
        if r.op == "=":
            parts.append(f"{r.key}={r.values[0]}")
        elif r.op == "!=":
            parts.append(f"{r.key}!={r.values[0]}")
        elif r.op in ("in", "notin"):
            parts.append(f"{r.key} {r.op} ({','.join(sorted(r.values))})")
        elif r.op == "exists":
            parts.append(r.key)
        else:
            parts.append(f"!{r.key}")
    return ",".join(parts)


# --- field selectors ------------------------------------------------------------------------

FieldGetter = Callable[[dict[str, Any]], str]


def _path(*keys: str) -> FieldGetter:
    def get(obj: dict[str, Any]) -> str:
        cur: Any = obj
        for k in keys:
            cur = cur.get(k) if isinstance(cur, dict) else None
            if cur is None:
                return ""
        return str(cur) if not isinstance(cur, bool) else ("true" if cur else "false")
    return get


_COMMON: dict[str, FieldGetter] = {
    "metadata.name": _path("metadata", "name"),
    "metadata.namespace": _path("metadata", "namespace"),
}
# Per-kind selectable fields (kube-apiserver's SelectableFields / field label conversions).
FIELDS: dict[str, dict[str, FieldGetter]] = {
    "Service": {"spec.clusterIP": _path("spec", "clusterIP"), "spec.type": _path("spec", "type")},
    "Pod": {"spec.nodeName": _path("spec", "nodeName"),
            "spec.restartPolicy": _path("spec", "restartPolicy"),
            "spec.schedulerName": _path("spec", "schedulerName"),
            "spec.serviceAccountName": _path("spec", "serviceAccountName"),
            "spec.hostNetwork": _path("spec", "hostNetwork"),
            "status.phase": _path("status", "phase"), "status.podIP": _path("status", "podIP"),
            "status.nominatedNodeName": _path("status", "nominatedNodeName")},
    "Event": {f"involvedObject.{f}": _path("involvedObject", f) for f in (
        "kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")}
    | {"reason": _path("reason"), "reportingComponent": _path("reportingComponent"),
       "source": _path("source", "component"), "type": _path("type")},
    "Node": {"spec.unschedulable": _path("spec", "unschedulable")},
    "Namespace": {"status.phase": _path("status", "phase")},
    "Secret": {"type": _path("type")},
    "ReplicaSet": {"status.replicas": _path("status", "replicas")},
}


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    op: Literal["=", "!="]
    value: str
    get: FieldGetter

    def matches(self, obj: dict[str, Any]) -> bool:
        return (self.get(obj) == self.value) == (self.op == "=")


FieldSelector = tuple[FieldRequirement, ...]


def parse_field_selector(text: str, kind: str) -> FieldSelector:
    """Parse `fieldSelector`; unsupported fields are a 400 as kube-apiserver answers."""
    out: list[FieldRequirement] = []
    allowed = _COMMON | FIELDS.get(kind, {})
    for part in filter(None, (p.strip() for p in text.split(","))):
        m = re.fullmatch(r"([^!=]+?)\s*(==|!=|=)\s*(.*)", part)
        if not m:
            raise errors.bad_request(f"invalid field selector: {part!r}: expected 'field=value'")
        field, op, value = m.group(1), m.group(2), m.group(3)
        if field not in allowed:
            raise errors.bad_request(
                f'field label not supported: {field}')
        out.append(FieldRequirement(field, "!=" if op == "!=" else "=", value, allowed[field]))
    return tuple(out)


def field_matches(sel: FieldSelector, obj: dict[str, Any]) -> bool:
    return all(r.matches(obj) for r in sel)
