"""How the API server sets and guards metadata and status on writes.

Kubernetes' registry strategies decide, per kind, what a create or an update may change:
uid/creationTimestamp/generation are the server's; a write to the main resource cannot
change status (when the kind has a status subresource) and a write to /status cannot
change anything else. These pure functions encode those rules so the registry stays a
thin sequence of steps.
"""

from __future__ import annotations

import copy
import random
import uuid
from datetime import datetime, timezone
from typing import Any

from svcnet.api.kinds import Kind
from svcnet.api.service_update import normalize_update as normalize_service_update

Obj = dict[str, Any]

# Kinds whose strategy maintains metadata.generation (bumped on spec changes).
GENERATION_KINDS = {"Deployment", "ReplicaSet", "Ingress", "IngressClass", "NetworkPolicy",
                    "EndpointSlice"}
# Kinds whose create wipes any status the client sent (the controller owns it).
RESET_STATUS_ON_CREATE = {"Service", "Deployment", "ReplicaSet", "Ingress"}

_SUFFIX_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery's vowel-free alphabet


def rfc3339(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def generate_name(prefix: str) -> str:
    """`generateName` + 5 random characters, as kube's names.SimpleNameGenerator does."""
    return prefix[:58] + "".join(random.choice(_SUFFIX_CHARS) for _ in range(5))


def _qos_class(spec: Obj) -> str:
    """Pod QoS class from container resources (BestEffort/Burstable/Guaranteed)."""
    containers = spec.get("containers") or []
    any_set = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if req or lim:
            any_set = True
        for r in ("cpu", "memory"):
            if r not in lim or str(req.get(r, lim[r])) != str(lim[r]):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed and containers else "Burstable"


def prepare_create(kind: Kind, obj: Obj, now: datetime) -> None:
    """Set server-owned metadata and initial status on a new object (in place)."""
    meta = obj.setdefault("metadata", {})
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = generate_name(meta["generateName"])
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = rfc3339(now)
    for f in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink",
              "managedFields"):
        meta.pop(f, None)
    if kind.kind in GENERATION_KINDS:
        meta["generation"] = 1
    else:
        meta.pop("generation", None)
    if kind.kind in RESET_STATUS_ON_CREATE:
        obj["status"] = {"loadBalancer": {}} if kind.kind == "Service" else {}
    elif kind.kind == "Pod":
        obj["status"] = {"phase": "Pending", "qosClass": _qos_class(obj.get("spec") or {})}
    elif kind.kind == "Namespace":
        obj["spec"] = {"finalizers": ["kubernetes"]}
        obj["status"] = {"phase": "Active"}


def prepare_update(kind: Kind, new: Obj, old: Obj, subresource: str) -> None:
    """Carry server-owned fields over from `old` and apply the subresource rules (in place).

    Main resource: status is kept from `old` for kinds with a status subresource.
    `status`: only status changes; everything else is `old`'s.
    """
    meta = new.setdefault("metadata", {})
    ometa = old.get("metadata") or {}
    for f in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
              "generation"):
        if f in ometa:
            meta[f] = ometa[f]
        else:
            meta.pop(f, None)
    meta.pop("selfLink", None)
    if subresource == "status":
        status = new.get("status")
        new.clear()
        new.update(copy.deepcopy(old))
        if status is not None:
            new["status"] = status
        else:
            new.pop("status", None)
        return
    if kind.has_status and "status" in kind.status_fields:
        if "status" in old:
            new["status"] = copy.deepcopy(old["status"])
        else:
            new.pop("status", None)
    if kind.kind == "Namespace" and subresource != "finalize":
        # spec.finalizers changes only through /finalize (the namespace controller's step)
        new["spec"] = copy.deepcopy(old.get("spec") or {})
    if kind.kind == "Service":
        normalize_service_update(new, old)
    if kind.kind in GENERATION_KINDS and _spec_of(kind, new) != _spec_of(kind, old):
        meta["generation"] = int(ometa.get("generation") or 0) + 1


def _spec_of(kind: Kind, obj: Obj) -> Any:
    """What counts as "the spec" for generation bumps (IngressClass/EndpointSlice have no
    `spec` field; their whole non-metadata content is the spec)."""
    if "spec" in obj or kind.kind not in ("EndpointSlice",):
        return obj.get("spec")
    return {k: v for k, v in obj.items() if k not in ("metadata", "kind", "apiVersion")}


def mark_deleting(obj: Obj, now: datetime, grace_seconds: int) -> None:
    """Start graceful deletion: the object stays, visible as Terminating, until finalizers
    are removed (or, for Pods, the node confirms)."""
    meta = obj["metadata"]
    if "deletionTimestamp" not in meta:
        meta["deletionTimestamp"] = rfc3339(now)
        meta["deletionGracePeriodSeconds"] = grace_seconds
    if obj.get("kind") == "Namespace":
        obj.setdefault("status", {})["phase"] = "Terminating"

