"""The Deployment controller's pure core: one sync of a Deployment as a plan of writes.

Input: the Deployment, the ReplicaSets of its namespace, the pods of its namespace (only
Recreate looks at them) and `now`. Output: a `DeploymentPlan` of ReplicaSet writes (each
a complete object to create, PUT or delete, with the Events it earns), the new Deployment
status, the Deployment annotations to patch and when to look again.

The sequence follows kube's deployment controller (sync.go, rolling.go, recreate.go):

1. claim ReplicaSets by selector (adopt orphans, release those no longer matching);
2. being deleted: status only. Mark pause/resume in the Progressing condition;
3. paused, or a scaling event (an active ReplicaSet's desired-replicas annotation differs
   from spec.replicas): scale proportionally, no rollout (paused: also clean up history);
4. otherwise roll out: find or create the new ReplicaSet and sync its revision, then
   RollingUpdate: grow the new ReplicaSet within maxSurge, else shrink old ones within
   maxUnavailable (unhealthy pods first), at most one of the two per sync, so every
   step waits for the ReplicaSet statuses the previous step changes; Recreate: scale all
   old ReplicaSets to 0, wait until their pods are gone, then scale the new one up;
5. when complete, delete old ReplicaSets beyond revisionHistoryLimit (only empty ones).

The planner works on private copies: several decisions about one ReplicaSet in a sync
merge into one write, guarded by the resourceVersion the cache had (a stale cache gives
a Conflict and a retry, never a decision on old numbers).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Sequence

from svcnet.api.selectors import matches
from svcnet.controllers import deployment_revisions as rev
from svcnet.controllers import deployment_status as dstatus
from svcnet.controllers import podstate
from svcnet.controllers.deployment_scaling import (
    MAX_INT32, active, find_active_or_latest, is_rolling, is_saturated, max_surge,
    max_unavailable, new_rs_new_replicas, proportional_sizes, replicas, status_count, total,
    total_status)
from svcnet.controllers.ownerrefs import (
    claim, controller_ref, owner_reference, with_owner, without_owner)
from svcnet.controllers.replicaset_plan import selector_of

Obj = dict[str, Any]


@dataclass(frozen=True)
class EventSpec:
    """An Event to record on the Deployment once the write it belongs to succeeded."""

    type: str
    reason: str
    message: str


@dataclass
class RSChange:
    """One ReplicaSet write. `op`: "create" (POST obj), "update" (PUT obj, guarded by its
    resourceVersion) or "delete" (DELETE with obj's uid as precondition)."""

    op: str
    obj: Obj
    events: list[EventSpec] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])


@dataclass
class DeploymentPlan:
    """Writes in order; `status` None = unchanged; `annotations`: Deployment annotations
    to set (the revision); `requeue_after`: seconds until a progress-deadline check."""

    changes: list[RSChange]
    status: Obj | None
    annotations: dict[str, str]
    requeue_after: float | None

    def of(self, op: str) -> list[Obj]:
        return [c.obj for c in self.changes if c.op == op]


class _Planner:
    def __init__(self, deployment: Obj, replicasets: Sequence[Obj], pods: Sequence[Obj],
                 now: datetime) -> None:
        self.original = deployment
        self.d = copy.deepcopy(deployment)
        self.d.setdefault("status", {})
        self.namespace_rss = replicasets
        self.pods = pods
        self.now = now
        self.rs_list: list[Obj] = []
        self.changes: dict[str, RSChange] = {}
        self.annotations: dict[str, str] = {}
        self.final_status: Obj | None = None
        self.requeue: float | None = None

    # --- bookkeeping --------------------------------------------------------------------

    def touch(self, rs: Obj, *events: EventSpec) -> None:
        """Record that the working copy `rs` must be written (merged per ReplicaSet)."""
        name = rs["metadata"]["name"]
        change = self.changes.get(name)
        if change is None:
            change = self.changes[name] = RSChange("update", rs)
        change.events.extend(events)

    def set_revision(self, value: str) -> None:
        ann = self.d["metadata"].setdefault("annotations", {})
        if ann.get(rev.REVISION) != value:
            ann[rev.REVISION] = value
            self.annotations[rev.REVISION] = value

    def claim(self) -> None:
        uid = self.d["metadata"].get("uid", "")
        claimed = claim(self.d, selector_of(self.d), self.namespace_rss)
        adopted = {id(rs) for rs in claimed.adopt}
        for rs in claimed.owned:
            if id(rs) in adopted:
                working = with_owner(rs, self.d, kind="Deployment")
                self.touch(working)
            else:
                working = copy.deepcopy(rs)
            self.rs_list.append(working)
        for rs in claimed.release:
            self.touch(without_owner(rs, uid))

    # --- scaling one ReplicaSet ---------------------------------------------------------

    def scale(self, rs: Obj, size: int) -> bool:
        """Set size and desired/max annotations (scaleReplicaSet); True if size changed."""
        old = replicas(rs)
        want = replicas(self.d)
        annotated = rev.set_replicas_annotations(rs, want, want + max_surge(self.d))
        if old == size and not annotated:
            return False
        rs.setdefault("spec", {})["replicas"] = size
        if old == size:
            self.touch(rs)
            return False
        direction = "up" if old < size else "down"
        self.touch(rs, EventSpec("Normal", "ScalingReplicaSet",
                                 f"Scaled {direction} replica set {rs['metadata']['name']} "
                                 f"from {old} to {size}"))
        return True

    def scale_if_needed(self, rs: Obj, size: int) -> bool:
        """scaleReplicaSetAndRecordEvent: nothing at all when the size is already right."""
        return replicas(rs) != size and self.scale(rs, size)

    # --- the new ReplicaSet and revisions -----------------------------------------------

    def new_and_old(self, create: bool) -> tuple[Obj | None, list[Obj], bool]:
        """(new ReplicaSet or None, old ones, ok). `ok` is False when the new ReplicaSet's
        name is taken by another template: collisionCount is bumped for the next try."""
        d = self.d
        new = rev.find_new(d, self.rs_list)
        old = [rs for rs in self.rs_list if rs is not new]
        new_revision = rev.max_revision(old) + 1
        want = replicas(d)
        if new is not None:
            min_ready = int((d.get("spec") or {}).get("minReadySeconds") or 0)
            changed = rev.set_new_rs_annotations(d, new, new_revision, True,
                                                 want, want + max_surge(d))
            if changed or int(new["spec"].get("minReadySeconds") or 0) != min_ready:
                if min_ready:
                    new["spec"]["minReadySeconds"] = min_ready
                else:
                    new["spec"].pop("minReadySeconds", None)
                self.touch(new)
            self.set_revision(rev.annotations_of(new).get(rev.REVISION, ""))
            if dstatus.has_progress_deadline(d) and \
                    dstatus.get_condition(d["status"], dstatus.PROGRESSING) is None:
                dstatus.set_condition(d["status"], dstatus.new_condition(
                    dstatus.PROGRESSING, "True", dstatus.FOUND_NEW_RS,
                    f'Found new replica set "{new["metadata"]["name"]}"', self.now))
            return new, old, True
        if not create:
            return None, old, True
        collisions = d["status"].get("collisionCount")
        hash_value = rev.template_hash(rev.template_of(d), collisions)
        name = f"{d['metadata']['name']}-{hash_value}"
        if any(rs["metadata"]["name"] == name for rs in self.namespace_rss):
            # Same name, other template (ours would have been found above): rehash.
            d["status"]["collisionCount"] = int(collisions or 0) + 1
            self.final_status = d["status"]
            return None, old, False
        new = rev.new_replicaset(d, hash_value, owner_reference(d, kind="Deployment"))
        # Only for ordering within this sync; the API server sets the real timestamp.
        new["metadata"]["creationTimestamp"] = podstate.format_time(self.now)
        size = new_rs_new_replicas(d, old + [new], new)
        new["spec"]["replicas"] = size
        rev.set_new_rs_annotations(d, new, new_revision, False, want, want + max_surge(d))
        events = [EventSpec("Normal", "ScalingReplicaSet",
                            f"Scaled up replica set {name} from 0 to {size}")] if size else []
        self.changes[name] = RSChange("create", new, events)
        self.rs_list.append(new)
        self.set_revision(str(new_revision))
        if dstatus.has_progress_deadline(d):
            dstatus.set_condition(d["status"], dstatus.new_condition(
                dstatus.PROGRESSING, "True", dstatus.NEW_RS_CREATED,
                f'Created new replica set "{name}"', self.now))
        return new, old, True

    # --- the strategies -----------------------------------------------------------------

    def is_scaling_event(self) -> bool:
        new, old, _ = self.new_and_old(create=False)
        for rs in active(old + [new]):
            try:
                desired = int(rev.annotations_of(rs).get(rev.DESIRED_REPLICAS, ""))
            except ValueError:
                continue
            if desired != replicas(self.d):
                return True
        return False

    def sync_scale(self) -> None:
        """Scaling event or paused: resize proportionally, no rollout."""
        new, old, _ = self.new_and_old(create=False)
        found = find_active_or_latest(new, old)
        if found is not None:
            self.scale_if_needed(found, replicas(self.d))
        elif is_saturated(self.d, new):
            for rs in active(old):
                self.scale_if_needed(rs, 0)
        elif is_rolling(self.d):
            for rs, size in proportional_sizes(self.d, active(old + [new])):
                self.scale(rs, size)
        if (self.d.get("spec") or {}).get("paused"):
            self.cleanup(old)
        self.final_status = dstatus.calculate_status(old + [new], new, self.d, self.now)

    def rolling(self) -> None:
        new, old, ok = self.new_and_old(create=True)
        if not ok or new is None:
            return
        all_rss = old + [new]
        if self.reconcile_new(all_rss, new) or self.reconcile_old(all_rss, active(old), new):
            return self.rollout_status(all_rss, new)
        if dstatus.complete(self.d, self.d["status"]):
            self.cleanup(old)
        self.rollout_status(all_rss, new)

    def reconcile_new(self, all_rss: list[Obj], new: Obj) -> bool:
        want = replicas(self.d)
        if replicas(new) == want:
            return False
        if replicas(new) > want:
            return self.scale_if_needed(new, want)
        return self.scale_if_needed(new, new_rs_new_replicas(self.d, all_rss, new))

    def reconcile_old(self, all_rss: list[Obj], old: list[Obj], new: Obj) -> bool:
        """Shrink old ReplicaSets as far as availability allows: first their unavailable
        pods (they add nothing to availability), then available ones down to
        replicas - maxUnavailable available pods overall, oldest ReplicaSet first."""
        if total(old) == 0:
            return False
        min_available = replicas(self.d) - max_unavailable(self.d)
        new_unavailable = replicas(new) - status_count(new, "availableReplicas")
        budget = total(all_rss) - min_available - new_unavailable
        if budget <= 0:
            return False
        cleaned = 0
        for rs in rev.by_creation(old):
            if cleaned >= budget:
                break
            size, avail = replicas(rs), status_count(rs, "availableReplicas")
            if size == 0 or size == avail:
                continue
            if avail > size:
                return False  # status lags a scale-down; upstream gives up for this sync
            down = min(budget - cleaned, size - avail)
            self.scale_if_needed(rs, size - down)
            cleaned += down
        available = total_status(old + [new], "availableReplicas")
        removed = 0
        if available > min_available:
            for rs in rev.by_creation(old):
                if removed >= available - min_available:
                    break
                if replicas(rs) == 0:
                    continue
                down = min(replicas(rs), available - min_available - removed)
                self.scale_if_needed(rs, replicas(rs) - down)
                removed += down
        return cleaned + removed > 0

    def recreate(self) -> None:
        new, old, _ = self.new_and_old(create=False)
        scaled = [self.scale_if_needed(rs, 0) for rs in active(old)]
        if any(scaled) or self.old_pods_running(new, old):
            return self.rollout_status(old + [new], new)
        if new is None:
            new, old, ok = self.new_and_old(create=True)
            if not ok or new is None:
                return
        self.scale_if_needed(new, replicas(self.d))
        if dstatus.complete(self.d, self.d["status"]):
            self.cleanup(old)
        self.rollout_status(old + [new], new)

    def old_pods_running(self, new: Obj | None, old: Sequence[Obj]) -> bool:
        """Recreate waits until no pod of an old ReplicaSet could still be running."""
        if total_status(old, "replicas") > 0:
            return True
        old_uids = {rs["metadata"].get("uid") for rs in old if rs["metadata"].get("uid")}
        selector = selector_of(self.d)
        for pod in self.pods:
            ref = controller_ref(pod)
            if ref is None or ref.get("uid") not in old_uids:
                continue
            if not matches(selector, pod["metadata"].get("labels")):
                continue
            if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                return True
        return False

    def cleanup(self, old: list[Obj]) -> None:
        """Delete the oldest revisions beyond revisionHistoryLimit, but only ReplicaSets
        that are scaled to 0, have no pods and whose spec their controller has seen."""
        limit = (self.d.get("spec") or {}).get("revisionHistoryLimit")
        if limit is None or int(limit) == MAX_INT32:
            return
        alive = [rs for rs in old if not rs["metadata"].get("deletionTimestamp")]
        excess = len(alive) - int(limit)
        if excess <= 0:
            return
        for rs in rev.by_revision(alive)[:excess]:
            meta = rs["metadata"]
            seen = int(((rs.get("status") or {}).get("observedGeneration")) or 0)
            if status_count(rs, "replicas") or replicas(rs) or \
                    int(meta.get("generation") or 0) > seen or meta["name"] in self.changes:
                continue
            self.changes[meta["name"]] = RSChange("delete", rs)

    def rollout_status(self, all_rss: Sequence[Obj | None], new: Obj | None) -> None:
        self.final_status, self.requeue = dstatus.rollout_status(all_rss, new, self.d,
                                                                 self.now)

    def status_only(self) -> None:
        new, old, _ = self.new_and_old(create=False)
        self.final_status = dstatus.calculate_status(old + [new], new, self.d, self.now)

    def plan(self) -> DeploymentPlan:
        status = self.final_status if self.final_status is not None else self.d["status"]
        changed = dstatus.normal(status) != dstatus.normal(self.original.get("status"))
        return DeploymentPlan(changes=list(self.changes.values()),
                              status=status if changed else None,
                              annotations=self.annotations, requeue_after=self.requeue)


def plan_deployment(deployment: Obj, replicasets: Sequence[Obj], pods: Sequence[Obj],
                    now: datetime) -> DeploymentPlan:
    """Plan one sync of `deployment` (see the module docstring for the sequence).
    `replicasets` and `pods` are everything in its namespace; pods matter only for
    Recreate (pass [] otherwise)."""
    p = _Planner(deployment, replicasets, pods, now)
    p.claim()
    spec = p.d.get("spec") or {}
    if p.d["metadata"].get("deletionTimestamp"):
        p.status_only()
    else:
        dstatus.check_paused(p.d, now)
        if spec.get("paused") or p.is_scaling_event():
            p.sync_scale()
        elif not is_rolling(p.d):
            p.recreate()
        else:
            p.rolling()
    return p.plan()
