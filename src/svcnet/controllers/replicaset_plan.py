"""The ReplicaSet controller's pure core: from a ReplicaSet and its namespace's pods to a plan.

Follows kube's pkg/controller/replicaset/replica_set.go (syncReplicaSet, manageReplicas,
calculateStatus): claim the active pods the selector picks (adopting orphans, releasing
pods that stopped matching), compare their number with spec.replicas, and plan creates
(from the template) or deletes (worst pods first, see podstate.deletion_order), at most
`BURST_REPLICAS` per sync. The status counts the claimed pods as they are now; creates and
deletes show up in a later status, once the informer reports them, exactly as upstream.

Nothing here does I/O or reads a clock: `now` is an argument (DESIGN.md §2).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence

from svcnet.api import errors
from svcnet.api.selectors import Selector, from_label_selector
from svcnet.controllers import podstate
from svcnet.controllers.ownerrefs import claim, owner_reference

Obj = dict[str, Any]

BURST_REPLICAS = 500          # upstream BurstReplicas: most creates/deletes in one sync
SLOW_START_INITIAL_BATCH = 1  # controller.SlowStartInitialBatchSize
REPLICA_FAILURE = "ReplicaFailure"


@dataclass(frozen=True)
class RSPlan:
    """What one sync of a ReplicaSet should do.

    `create`: new Pod objects (all alike; the API names them from generateName).
    `delete`: pods to delete, in the order chosen. `adopt` / `release`: pods whose
    ownerReferences must gain / lose this ReplicaSet. `active`: the claimed active pods the
    status counts. `status`: the status assuming the creates/deletes succeed (recompute
    with `calculate_status(..., manage_error=...)` if they fail).
    """

    create: list[Obj]
    delete: list[Obj]
    adopt: list[Obj]
    release: list[Obj]
    active: list[Obj]
    status: Obj

    @property
    def diff(self) -> int:
        """Pods to add (positive) or remove (negative) in this sync."""
        return len(self.create) - len(self.delete)


def desired_replicas(rs: Obj) -> int:
    replicas = (rs.get("spec") or {}).get("replicas")
    return 1 if replicas is None else int(replicas)


def selector_of(obj: Obj) -> Selector | None:
    """The compiled spec.selector; an unusable one selects nothing (upstream logs and
    skips the object rather than acting on a guess)."""
    try:
        return from_label_selector((obj.get("spec") or {}).get("selector"))
    except errors.StatusError:
        return None


def pod_from_template(rs: Obj) -> Obj:
    """A new Pod for `rs` (controller.GetPodFromTemplate): the template's labels,
    annotations, finalizers and spec; generateName `<rs>-`; controlled by the ReplicaSet."""
    template = (rs.get("spec") or {}).get("template") or {}
    tmeta = template.get("metadata") or {}
    meta: Obj = {"generateName": f"{rs['metadata']['name']}-",
                 "namespace": rs["metadata"].get("namespace"),
                 "labels": dict(tmeta.get("labels") or {})}
    if tmeta.get("annotations"):
        meta["annotations"] = dict(tmeta["annotations"])
    if tmeta.get("finalizers"):
        meta["finalizers"] = list(tmeta["finalizers"])
    meta["ownerReferences"] = [owner_reference(rs, kind="ReplicaSet")]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": copy.deepcopy(template.get("spec") or {})}


def slow_start_batches(count: int, initial: int = SLOW_START_INITIAL_BATCH) -> list[int]:
    """Batch sizes for `count` creates: 1, 2, 4, ... (the rest in the last batch).
    The runner stops at the first batch with a failure, so a quota error or an invalid
    template costs one failed request, not hundreds."""
    sizes: list[int] = []
    remaining, size = count, min(count, initial)
    while size > 0:
        sizes.append(size)
        remaining -= size
        size = min(2 * size, remaining)
    return sizes


def _template_labels_match(rs: Obj, pod: Obj) -> bool:
    tlabels = (((rs.get("spec") or {}).get("template") or {}).get("metadata") or {}).get(
        "labels") or {}
    plabels = pod["metadata"].get("labels") or {}
    return all(plabels.get(k) == v for k, v in tlabels.items())


def calculate_status(rs: Obj, active: Sequence[Obj], now: datetime,
                     manage_error: str | None = None) -> Obj:
    """The ReplicaSet status for these claimed active pods.

    A failed create/delete adds a `ReplicaFailure` condition (reason FailedCreate or
    FailedDelete, message = the error) if none is present; a clean sync removes it. Zero
    counts are left out, as the Go types' `omitempty` leaves them out (replicas stays)."""
    old = rs.get("status") or {}
    min_ready = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
    fully = sum(1 for p in active if _template_labels_match(rs, p))
    ready = sum(1 for p in active if podstate.is_ready(p))
    available = sum(1 for p in active if podstate.is_available(p, min_ready, now))
    conditions = [c for c in old.get("conditions") or []]
    failure = next((c for c in conditions if c.get("type") == REPLICA_FAILURE), None)
    if manage_error is not None and failure is None:
        diff = len(active) - desired_replicas(rs)
        reason = "FailedCreate" if diff < 0 else ("FailedDelete" if diff > 0 else "")
        conditions.append({"type": REPLICA_FAILURE, "status": "True",
                           "lastTransitionTime": podstate.format_time(now),
                           "reason": reason, "message": manage_error})
    elif manage_error is None and failure is not None:
        conditions = [c for c in conditions if c.get("type") != REPLICA_FAILURE]
    status: Obj = {"replicas": len(active)}
    for name, value in (("fullyLabeledReplicas", fully), ("readyReplicas", ready),
                        ("availableReplicas", available),
                        ("observedGeneration", int(rs["metadata"].get("generation") or 0))):
        if value:
            status[name] = value
    if conditions:
        status["conditions"] = conditions
    return status


def _normal(status: Obj) -> Obj:
    return {k: v for k, v in status.items() if v not in (0, None, [], {})}


def status_changed(rs: Obj, status: Obj) -> bool:
    """Whether `status` differs from what `rs` carries (zero and absent are the same)."""
    return _normal(rs.get("status") or {}) != _normal(status)


def requeue_after(rs: Obj, status: Obj) -> float | None:
    """When all pods are ready but not yet available (minReadySeconds), nothing else will
    trigger the sync that counts them available: ask to be resynced after that time."""
    min_ready = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
    want = desired_replicas(rs)
    if min_ready > 0 and status.get("readyReplicas", 0) == want \
            and status.get("availableReplicas", 0) != want:
        return float(min_ready)
    return None


def reconcile(rs: Obj, pods: Sequence[Obj], now: datetime, *, manage: bool = True,
              related_pods: Sequence[Obj] | None = None,
              burst: int = BURST_REPLICAS) -> RSPlan:
    """Plan one sync of `rs` given all pods of its namespace.

    `manage=False` (expectations not yet met) plans no creates or deletes but still
    claims and counts. A ReplicaSet being deleted never creates, deletes or adopts.
    `related_pods` are the pods of all ReplicaSets with the same controller (for the
    deletion ranking); by default this ReplicaSet's own pods."""
    selector = selector_of(rs)
    active = [p for p in pods if podstate.is_active(p)]
    claimed = claim(rs, selector, active)
    owned = claimed.owned
    create: list[Obj] = []
    delete: list[Obj] = []
    if manage and not rs["metadata"].get("deletionTimestamp"):
        diff = len(owned) - desired_replicas(rs)
        if diff < 0:
            create = [pod_from_template(rs) for _ in range(min(-diff, burst))]
        elif diff > 0:
            count = min(diff, burst)
            if count < len(owned):
                related = related_pods if related_pods is not None else owned
                delete = podstate.deletion_order(owned, related, now)[:count]
            else:
                delete = list(owned)
    return RSPlan(create=create, delete=delete, adopt=claimed.adopt, release=claimed.release,
                  active=owned, status=calculate_status(rs, owned, now))
