"""A Deployment's ReplicaSets as revisions: naming, template identity, revision annotations.

What kubectl's `rollout history` and `rollout undo` read (reference/apiserver.md §3.4;
kube's pkg/controller/deployment/util/deployment_util.go):

- each template the Deployment ever had is one ReplicaSet `<deployment>-<hash>`, whose
  template is the Deployment's template verbatim plus the label `pod-template-hash=<hash>`
  (also added to its labels and selector, so sibling ReplicaSets never select each other's
  pods). The "new" ReplicaSet is the oldest one whose template equals the Deployment's
  ignoring that label; kubectl finds it the same way.
- `deployment.kubernetes.io/revision` numbers them; the new one gets max(old)+1, also when
  an old ReplicaSet becomes new again by a rollback (its former numbers go to
  `…/revision-history`).
- the Deployment's annotations, except a skip list, are copied onto the new ReplicaSet
  (so `kubernetes.io/change-cause` becomes that revision's CHANGE-CAUSE).

The hash is fnv-1a (32 bit) over canonical JSON of the template, plus the collision count
as upstream appends it, printed in decimal and mapped onto apimachinery's vowel-free
alphabet (rand.SafeEncodeString), so names look like upstream's (`web-7c5ddbdf54`).
Upstream hashes Go's spew dump instead of JSON, so the values differ; only stability
matters.
"""

from __future__ import annotations

import copy
import json
import struct
from datetime import datetime, timezone
from typing import Any, Iterable, Sequence

from svcnet.controllers import podstate

Obj = dict[str, Any]

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
ROLLBACK_TO = "deprecated.deployment.rollback.to"
# Never copied from the Deployment to its ReplicaSets (annotationsToSkip upstream); kubectl
# rollout undo keeps the Deployment's own values of exactly these.
SKIP_COPY = frozenset({LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS,
                       MAX_REPLICAS, ROLLBACK_TO})
MAX_REVISION_HISTORY_CHARS = 2000
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_ZERO_TIME = datetime.min.replace(tzinfo=timezone.utc)


def safe_encode(text: str) -> str:
    """Map each character onto the vowel-free alphabet (no accidental words in names)."""
    return "".join(SAFE_ALPHABET[ord(c) % len(SAFE_ALPHABET)] for c in text)


def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def template_hash(template: Obj, collision_count: int | None = None) -> str:
    """The pod-template-hash of a Deployment template. A collision count (bumped when the
    name is taken by a ReplicaSet with another template) is appended as 8 bytes holding a
    little-endian uint32, as upstream does, so count 0 already changes the hash."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count is not None:
        data += struct.pack("<I", collision_count & 0xFFFFFFFF) + b"\0" * 4
    return safe_encode(str(fnv32a(data)))


def _semantic(value: Any) -> Any:
    """Drop null/empty maps and lists: Go's semantic equality treats nil and empty alike."""
    if isinstance(value, dict):
        out = {k: _semantic(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not None and v != {} and v != []}
    if isinstance(value, list):
        return [_semantic(v) for v in value]
    return value


def equal_ignore_hash(t1: Obj | None, t2: Obj | None) -> bool:
    """Two pod templates are the same revision when equal apart from pod-template-hash."""
    a, b = copy.deepcopy(t1 or {}), copy.deepcopy(t2 or {})
    for t in (a, b):
        (t.get("metadata") or {}).get("labels", {}).pop(HASH_LABEL, None)
    return bool(_semantic(a) == _semantic(b))


def annotations_of(obj: Obj) -> dict[str, str]:
    return obj["metadata"].get("annotations") or {}


def revision(obj: Obj) -> int | None:
    """The revision annotation as an int: 0 when absent, None when unparsable."""
    raw = annotations_of(obj).get(REVISION)
    if raw is None:
        return 0
    try:
        return int(raw)
    except ValueError:
        return None


def max_revision(rss: Iterable[Obj]) -> int:
    return max([r for r in (revision(rs) for rs in rss) if r is not None], default=0)


def created_at(obj: Obj) -> datetime:
    return podstate.parse_time(obj["metadata"].get("creationTimestamp")) or _ZERO_TIME


def by_creation(rss: Iterable[Obj]) -> list[Obj]:
    """Oldest first, ties by name (controller.ReplicaSetsByCreationTimestamp)."""
    return sorted(rss, key=lambda rs: (created_at(rs), rs["metadata"]["name"]))


def by_revision(rss: Iterable[Obj]) -> list[Obj]:
    """Lowest revision first; equal or unparsable revisions by creation."""
    def key(rs: Obj) -> tuple[int, datetime, str]:
        return (revision(rs) or 0, created_at(rs), rs["metadata"]["name"])
    return sorted(rss, key=key)


def template_of(obj: Obj) -> Obj:
    return (obj.get("spec") or {}).get("template") or {}


def find_new(deployment: Obj, rss: Sequence[Obj]) -> Obj | None:
    """The oldest ReplicaSet whose template is the Deployment's (ignoring the hash)."""
    for rs in by_creation(rss):
        if equal_ignore_hash(template_of(rs), template_of(deployment)):
            return rs
    return None


def set_replicas_annotations(rs: Obj, desired: int, maximum: int) -> bool:
    """Record desired-replicas / max-replicas on `rs` (in place); True if changed."""
    ann = rs["metadata"].setdefault("annotations", {})
    changed = False
    for key, value in ((DESIRED_REPLICAS, str(desired)), (MAX_REPLICAS, str(maximum))):
        if ann.get(key) != value:
            ann[key] = value
            changed = True
    return changed


def _copy_deployment_annotations(deployment: Obj, rs: Obj) -> bool:
    """Add/overwrite (never remove) the Deployment's copyable annotations on `rs`."""
    ann = rs["metadata"].setdefault("annotations", {})
    changed = False
    for k, v in annotations_of(deployment).items():
        if k in SKIP_COPY or ann.get(k) == v:
            continue
        ann[k] = v
        changed = True
    return changed


def set_new_rs_annotations(deployment: Obj, rs: Obj, new_revision: int, exists: bool,
                           desired: int, maximum: int) -> bool:
    """Bring the new ReplicaSet's annotations up to date (in place); True if changed.

    The revision only ever grows: an existing ReplicaSet whose number is below
    `new_revision` (a rollback made it new again) moves up, and its former number is
    appended to revision-history (oldest dropped beyond 2000 characters). A ReplicaSet
    about to be created also gets desired/max replicas."""
    changed = _copy_deployment_annotations(deployment, rs)
    ann = rs["metadata"].setdefault("annotations", {})
    old_raw = ann.get(REVISION)
    if old_raw is None:
        old = 0
    else:
        try:
            old = int(old_raw)
        except ValueError:
            return False  # upstream gives up on a garbled revision rather than guess
    if old < new_revision:
        ann[REVISION] = str(new_revision)
        changed = True
        if old_raw is not None:
            history = ann.get(REVISION_HISTORY, "")
            entries = history.split(",") if history else []
            if not entries:
                ann[REVISION_HISTORY] = old_raw
            else:
                total = len(history) + len(old_raw) + 1
                start = 0
                while total > MAX_REVISION_HISTORY_CHARS and start < len(entries):
                    total -= len(entries[start]) + 1
                    start += 1
                if total <= MAX_REVISION_HISTORY_CHARS:
                    ann[REVISION_HISTORY] = ",".join(entries[start:] + [old_raw])
    if not exists and set_replicas_annotations(rs, desired, maximum):
        changed = True
    return changed


def new_replicaset(deployment: Obj, hash_value: str, owner_ref: Obj) -> Obj:
    """The ReplicaSet for the Deployment's current template, with 0 replicas: template =
    the Deployment's verbatim + hash label; labels = the template's labels; selector = the
    Deployment's + the hash label; owned (as controller) by the Deployment."""
    dmeta, dspec = deployment["metadata"], deployment.get("spec") or {}
    template = copy.deepcopy(template_of(deployment))
    tmeta = template.setdefault("metadata", {})
    tmeta["labels"] = dict(tmeta.get("labels") or {}, **{HASH_LABEL: hash_value})
    selector = copy.deepcopy(dspec.get("selector") or {})
    selector["matchLabels"] = dict(selector.get("matchLabels") or {},
                                   **{HASH_LABEL: hash_value})
    spec: Obj = {"replicas": 0, "selector": selector, "template": template}
    if dspec.get("minReadySeconds"):
        spec["minReadySeconds"] = dspec["minReadySeconds"]
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{dmeta['name']}-{hash_value}",
                         "namespace": dmeta.get("namespace"),
                         "labels": dict(tmeta["labels"]),
                         "ownerReferences": [owner_ref]},
            "spec": spec}
