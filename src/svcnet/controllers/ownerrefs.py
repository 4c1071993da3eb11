"""Controller references: who controls an object, and claiming (adopt / release) by selector.

Kubernetes ties a Pod to its ReplicaSet and a ReplicaSet to its Deployment by an
ownerReference with `controller: true`, not by labels alone: labels pick candidates, the
reference decides ownership (pkg/controller/controller_ref_manager.go). `claim` restates
that manager's rules as a pure function so both workload controllers decide adoption and
release the same way:

- owned by someone else: never touched;
- owned by us and matching: ours; owned by us but no longer matching: released (unless we
  are being deleted, when nothing changes hands);
- orphan, matching, alive, same namespace, and we are not being deleted: adopted.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Iterable

from svcnet.api.selectors import Selector, matches

Obj = dict[str, Any]


def controller_ref(obj: Obj) -> Obj | None:
    """The ownerReference with `controller: true`, if any."""
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def is_controlled_by(obj: Obj, owner: Obj) -> bool:
    ref = controller_ref(obj)
    return ref is not None and ref.get("uid") == owner["metadata"].get("uid")


def owner_reference(owner: Obj, api_version: str = "apps/v1", kind: str = "") -> Obj:
    """The controller reference an owner puts on what it creates or adopts (the owner's
    own apiVersion/kind when it carries them, else the given ones).
    blockOwnerDeletion keeps foreground deletion of the owner waiting for its dependents."""
    return {"apiVersion": owner.get("apiVersion") or api_version,
            "kind": owner.get("kind") or kind,
            "name": owner["metadata"]["name"], "uid": owner["metadata"].get("uid", ""),
            "controller": True, "blockOwnerDeletion": True}


def with_owner(obj: Obj, owner: Obj, kind: str = "") -> Obj:
    """A copy of `obj` whose ownerReferences include `owner` as controller."""
    out = copy.deepcopy(obj)
    refs = [r for r in out["metadata"].get("ownerReferences") or []
            if r.get("uid") != owner["metadata"].get("uid")]
    out["metadata"]["ownerReferences"] = refs + [owner_reference(owner, kind=kind)]
    return out


def without_owner(obj: Obj, owner_uid: str) -> Obj:
    """A copy of `obj` with the reference to `owner_uid` removed."""
    out = copy.deepcopy(obj)
    refs = [r for r in out["metadata"].get("ownerReferences") or []
            if r.get("uid") != owner_uid]
    if refs:
        out["metadata"]["ownerReferences"] = refs
    else:
        out["metadata"].pop("ownerReferences", None)
    return out


@dataclass
class Claim:
    """The outcome of claiming candidates: `owned` includes the adopted ones."""

    owned: list[Obj] = field(default_factory=list)
    adopt: list[Obj] = field(default_factory=list)
    release: list[Obj] = field(default_factory=list)


def claim(owner: Obj, selector: Selector | None, candidates: Iterable[Obj]) -> Claim:
    """Sort `candidates` (objects of the owner's namespace) into owned/adopt/release."""
    meta = owner["metadata"]
    uid = meta.get("uid")
    deleting = bool(meta.get("deletionTimestamp"))
    out = Claim()
    for obj in candidates:
        om = obj["metadata"]
        labels = om.get("labels") or {}
        ref = controller_ref(obj)
        if ref is not None:
            if ref.get("uid") != uid:
                continue
            if matches(selector, labels):
                out.owned.append(obj)
            elif not deleting:
                out.release.append(obj)
            continue
        if deleting or not matches(selector, labels) or om.get("deletionTimestamp"):
            continue
        if meta.get("namespace") and om.get("namespace") != meta.get("namespace"):
            continue
        out.adopt.append(obj)
        out.owned.append(obj)
    return out
