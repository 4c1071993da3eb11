"""Validation of objects on create and update, with Kubernetes' field paths and messages.

`validate(kind, obj, old)` returns the list of field errors; an empty list means the object
may be stored. Metadata rules apply to every kind; kind rules live in VALIDATORS (Service
rules are in service_validation.py because they are many). Pure: no store, no clock.
"""

from __future__ import annotations

from typing import Any, Callable

from svcnet.api import names
from svcnet.api.errors import FieldError, forbidden, invalid, not_supported, required
from svcnet.api.kinds import Kind
from svcnet.api.selectors import from_label_selector, matches

Obj = dict[str, Any]
NameRule = Callable[[str], list[str]]

# How each kind's metadata.name is checked (kube's ValidateXName functions).
NAME_RULES: dict[str, NameRule] = {
    "Namespace": names.dns1123_label,
    "Service": names.dns1035_label,
}


def _path_segment(name: str) -> list[str]:
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


def validate_metadata(kind: Kind, obj: Obj, old: Obj | None) -> list[FieldError]:
    meta = obj.get("metadata") or {}
    errs: list[FieldError] = []
    name = meta.get("name") or ""
    rule = NAME_RULES.get(kind.kind, names.dns1123_subdomain)
    if kind.kind == "Event":
        rule = _path_segment
    if not name:
        errs.append(required("metadata.name", "name or generateName is required"))
    else:
        errs += [invalid("metadata.name", name, m) for m in rule(name)]
    if kind.namespaced and not meta.get("namespace"):
        errs.append(required("metadata.namespace"))
    if not kind.namespaced and meta.get("namespace"):
        errs.append(forbidden("metadata.namespace", "not allowed on this type"))
    errs += names.validate_labels(meta.get("labels") or {}, "metadata.labels")
    errs += names.validate_annotations(meta.get("annotations") or {}, "metadata.annotations")
    for i, f in enumerate(meta.get("finalizers") or []):
        errs += [invalid(f"metadata.finalizers[{i}]", f, m) for m in names.qualified_name(f)]
    if old is not None:
        om = old.get("metadata") or {}
        for field in ("name", "namespace", "uid", "creationTimestamp"):
            if meta.get(field) != om.get(field) and meta.get(field) is not None:
                errs.append(invalid(f"metadata.{field}", meta.get(field),
                                    "field is immutable"))
    return errs


def _containers(spec: Obj, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    containers = spec.get("containers") or []
    if not containers:
        errs.append(required(f"{path}.containers"))
    seen: set[str] = set()
    for i, c in enumerate(containers):
        cp = f"{path}.containers[{i}]"
        cname = c.get("name") or ""
        if not cname:
            errs.append(required(f"{cp}.name"))
        else:
            errs += [invalid(f"{cp}.name", cname, m) for m in names.dns1123_label(cname)]
            if cname in seen:
                errs.append(FieldError("Duplicate", f"{cp}.name", cname))
            seen.add(cname)
        if not c.get("image"):
            errs.append(required(f"{cp}.image"))
        for j, p in enumerate(c.get("ports") or []):
            port = p.get("containerPort")
            if not isinstance(port, int) or not 1 <= port <= 65535:
                errs.append(invalid(f"{cp}.ports[{j}].containerPort", port,
                                    "must be between 1 and 65535, inclusive"))
            proto = p.get("protocol", "TCP")
            if proto not in ("TCP", "UDP", "SCTP"):
                errs.append(not_supported(f"{cp}.ports[{j}].protocol", proto,
                                          ["SCTP", "TCP", "UDP"]))
    policy = spec.get("restartPolicy", "Always")
    if policy not in ("Always", "OnFailure", "Never"):
        errs.append(not_supported(f"{path}.restartPolicy", policy,
                                  ["Always", "OnFailure", "Never"]))
    dns = spec.get("dnsPolicy", "ClusterFirst")
    if dns not in ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"):
        errs.append(not_supported(f"{path}.dnsPolicy", dns,
                                  ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"]))
    return errs


def _pod(obj: Obj, old: Obj | None) -> list[FieldError]:
    return _containers(obj.get("spec") or {}, "spec")


def _template_owner(obj: Obj, old: Obj | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errs: list[FieldError] = []
    replicas = spec.get("replicas", 1)
    if isinstance(replicas, int) and replicas < 0:
        errs.append(invalid("spec.replicas", replicas,
                            "must be greater than or equal to 0"))
    selector = spec.get("selector")
    if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        errs.append(required("spec.selector"))
        if selector is not None:
            errs.append(invalid("spec.selector", selector,
                                "empty selector is invalid for deployment"))
    template = spec.get("template") or {}
    tlabels = (template.get("metadata") or {}).get("labels") or {}
    if selector and (selector.get("matchLabels") or selector.get("matchExpressions")):
        if not matches(from_label_selector(selector), tlabels):
            errs.append(invalid("spec.template.metadata.labels", tlabels,
                                "`selector` does not match template `labels`"))
    errs += _containers(template.get("spec") or {}, "spec.template.spec")
    if old is not None and old.get("spec", {}).get("selector") != selector:
        errs.append(invalid("spec.selector", selector, "field is immutable"))
    return errs


def _namespace(obj: Obj, old: Obj | None) -> list[FieldError]:
    return []


VALIDATORS: dict[str, Callable[[Obj, Obj | None], list[FieldError]]] = {
    "Pod": _pod,
    "Deployment": _template_owner,
    "ReplicaSet": _template_owner,
    "Namespace": _namespace,
}


def register(kind: str, fn: Callable[[Obj, Obj | None], list[FieldError]]) -> None:
    """Add a kind's validator (used by modules that own a kind's rules)."""
    VALIDATORS[kind] = fn


def validate(kind: Kind, obj: Obj, old: Obj | None = None) -> list[FieldError]:
    """All field errors of `obj` (an update when `old` is given)."""
    errs = validate_metadata(kind, obj, old)
    fn = VALIDATORS.get(kind.kind)
    if fn is not None:
        errs += fn(obj, old)
    return errs


# Kind rule modules register themselves; importing them here makes `validate` complete.
from svcnet.api import service_validation  # noqa: E402,F401
