"""Deployment status and conditions, as `kubectl rollout status` and `describe` read them.

After kube's sync.go calculateStatus, progress.go syncRolloutStatus/requeueStuckDeployment
and deployment_util.go condition helpers. Counts come from the ReplicaSets' statuses (the
ReplicaSet controller counts pods). Conditions:

- Available: True/MinimumReplicasAvailable when available >= replicas - maxUnavailable,
  else False/MinimumReplicasUnavailable;
- Progressing (only with a progress deadline): True/NewReplicaSetCreated or
  FoundNewReplicaSet when the new ReplicaSet appears, True/ReplicaSetUpdated whenever the
  rollout makes progress (lastUpdateTime moves, lastTransitionTime stays),
  True/NewReplicaSetAvailable once complete, False/ProgressDeadlineExceeded when no
  progress was seen for progressDeadlineSeconds (kubectl rollout status then fails),
  Unknown/DeploymentPaused and Unknown/DeploymentResumed around a pause.

Setting a condition with the same status and reason changes nothing (not even the
message); a changed condition moves to the end of the list, as upstream.
"""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import Any, Sequence

from svcnet.controllers import podstate
from svcnet.controllers.deployment_scaling import (
    MAX_INT32, max_unavailable, replicas, status_count, total, total_status)

Obj = dict[str, Any]

AVAILABLE, PROGRESSING, REPLICA_FAILURE = "Available", "Progressing", "ReplicaFailure"
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
RS_CREATE_ERROR = "ReplicaSetCreateError"
PAUSED, RESUMED = "DeploymentPaused", "DeploymentResumed"
MIN_AVAILABLE, MIN_UNAVAILABLE = "MinimumReplicasAvailable", "MinimumReplicasUnavailable"


def new_condition(ctype: str, status: str, reason: str, message: str, now: datetime) -> Obj:
    ts = podstate.format_time(now)
    return {"type": ctype, "status": status, "lastUpdateTime": ts, "lastTransitionTime": ts,
            "reason": reason, "message": message}


def get_condition(status: Obj, ctype: str) -> Obj | None:
    for c in status.get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def remove_condition(status: Obj, ctype: str) -> None:
    kept = [c for c in status.get("conditions") or [] if c.get("type") != ctype]
    if kept:
        status["conditions"] = kept
    else:
        status.pop("conditions", None)


def set_condition(status: Obj, cond: Obj) -> None:
    """Put `cond` into `status` (in place) unless one of its type already has the same
    status and reason; keep lastTransitionTime when only the reason changes."""
    cur = get_condition(status, cond["type"])
    if cur is not None and cur.get("status") == cond["status"] \
            and cur.get("reason") == cond["reason"]:
        return
    cond = dict(cond)
    if cur is not None and cur.get("status") == cond["status"]:
        cond["lastTransitionTime"] = cur.get("lastTransitionTime")
    remove_condition(status, cond["type"])
    status["conditions"] = list(status.get("conditions") or []) + [cond]


def has_progress_deadline(deployment: Obj) -> bool:
    value = (deployment.get("spec") or {}).get("progressDeadlineSeconds")
    return value is not None and int(value) != MAX_INT32


def normal(status: Obj | None) -> Obj:
    """Status without zero/empty fields, for comparisons (absent == 0 on the wire).
    collisionCount is a pointer upstream: 0 is a value there, so it is kept."""
    return {k: v for k, v in (status or {}).items()
            if k == "collisionCount" or v not in (0, None, [], {})}


def calculate_status(all_rss: Sequence[Obj | None], new_rs: Obj | None, deployment: Obj,
                     now: datetime) -> Obj:
    """Counts from the ReplicaSets plus the Available condition; other conditions are
    carried over from the Deployment's current status."""
    old = deployment.get("status") or {}
    available = total_status(all_rss, "availableReplicas")
    unavailable = max(0, total(all_rss) - available)
    status: Obj = {}
    for name, value in (
            ("observedGeneration", int(deployment["metadata"].get("generation") or 0)),
            ("replicas", total_status(all_rss, "replicas")),
            ("updatedReplicas", status_count(new_rs, "replicas")),
            ("readyReplicas", total_status(all_rss, "readyReplicas")),
            ("availableReplicas", available), ("unavailableReplicas", unavailable)):
        if value:
            status[name] = value
    if old.get("conditions"):
        status["conditions"] = copy.deepcopy(old["conditions"])
    if "collisionCount" in old:
        status["collisionCount"] = old["collisionCount"]
    if available >= replicas(deployment) - max_unavailable(deployment):
        set_condition(status, new_condition(AVAILABLE, "True", MIN_AVAILABLE,
                                            "Deployment has minimum availability.", now))
    else:
        set_condition(status, new_condition(AVAILABLE, "False", MIN_UNAVAILABLE,
                                            "Deployment does not have minimum availability.",
                                            now))
    return status


def complete(deployment: Obj, status: Obj) -> bool:
    """All desired replicas updated and available, nothing old left, generation seen."""
    want = replicas(deployment)
    return (int(status.get("updatedReplicas") or 0) == want
            and int(status.get("replicas") or 0) == want
            and int(status.get("availableReplicas") or 0) == want
            and int(status.get("observedGeneration") or 0)
            >= int(deployment["metadata"].get("generation") or 0))


def progressing(deployment: Obj, new: Obj) -> bool:
    """More updated/ready/available pods, or fewer old ones, than the current status."""
    old = deployment.get("status") or {}

    def n(s: Obj, k: str) -> int:
        return int(s.get(k) or 0)
    return (n(new, "updatedReplicas") > n(old, "updatedReplicas")
            or n(new, "replicas") - n(new, "updatedReplicas")
            < n(old, "replicas") - n(old, "updatedReplicas")
            or n(new, "readyReplicas") > n(old, "readyReplicas")
            or n(new, "availableReplicas") > n(old, "availableReplicas"))


def _deadline(deployment: Obj) -> timedelta:
    return timedelta(seconds=int((deployment.get("spec") or {}).get("progressDeadlineSeconds")
                                 or 0))


def timed_out(deployment: Obj, new: Obj, now: datetime) -> bool:
    """No progress recorded for progressDeadlineSeconds since the Progressing condition's
    lastUpdateTime (a completed rollout never times out)."""
    if not has_progress_deadline(deployment):
        return False
    cond = get_condition(new, PROGRESSING)
    if cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    since = podstate.parse_time(cond.get("lastUpdateTime"))
    return since is not None and since + _deadline(deployment) < now


def _replica_failure(all_rss: Sequence[Obj | None], new_rs: Obj | None) -> Obj | None:
    """A ReplicaFailure condition of the new ReplicaSet (preferred) or of any other."""
    for rs in [new_rs] + list(all_rss):
        for c in ((rs or {}).get("status") or {}).get("conditions") or []:
            if c.get("type") == REPLICA_FAILURE:
                return {"type": REPLICA_FAILURE, "status": c.get("status"),
                        "lastUpdateTime": c.get("lastTransitionTime"),
                        "lastTransitionTime": c.get("lastTransitionTime"),
                        "reason": c.get("reason"), "message": c.get("message")}
    return None


def rollout_status(all_rss: Sequence[Obj | None], new_rs: Obj | None, deployment: Obj,
                   now: datetime) -> tuple[Obj, float | None]:
    """The status during a rollout (syncRolloutStatus) and, when it equals the current one,
    when to look again for a progress-deadline check (seconds; None: not needed)."""
    new = calculate_status(all_rss, new_rs, deployment, now)
    name = (new_rs or deployment)["metadata"]["name"]
    what = "ReplicaSet" if new_rs is not None else "Deployment"
    if not has_progress_deadline(deployment):
        remove_condition(new, PROGRESSING)
    current = get_condition(deployment.get("status") or {}, PROGRESSING)
    finished = (int(new.get("replicas") or 0) == int(new.get("updatedReplicas") or 0)
                and current is not None and current.get("reason") == NEW_RS_AVAILABLE)
    if has_progress_deadline(deployment) and not finished:
        if complete(deployment, new):
            set_condition(new, new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE,
                                             f'{what} "{name}" has successfully progressed.',
                                             now))
        elif progressing(deployment, new):
            cond = new_condition(PROGRESSING, "True", RS_UPDATED,
                                 f'{what} "{name}" is progressing.', now)
            if current is not None:
                # Same reason again must still move lastUpdateTime: replace, not set.
                if current.get("status") == "True":
                    cond["lastTransitionTime"] = current.get("lastTransitionTime")
                remove_condition(new, PROGRESSING)
            set_condition(new, cond)
        elif timed_out(deployment, new, now):
            set_condition(new, new_condition(PROGRESSING, "False", TIMED_OUT,
                                             f'{what} "{name}" has timed out progressing.',
                                             now))
    failure = _replica_failure(all_rss, new_rs)
    if failure is not None:
        set_condition(new, failure)
    else:
        remove_condition(new, REPLICA_FAILURE)
    if normal(new) != normal(deployment.get("status")):
        return new, None
    return new, stuck_requeue(deployment, new, now)


def stuck_requeue(deployment: Obj, new: Obj, now: datetime) -> float | None:
    """Seconds until one second after the progress deadline of an unfinished rollout, so
    the timeout is noticed without any other event. (Upstream requeues at once,
    rate-limited, when less than a second is left; a fixed second after the deadline
    gives the same result without spinning until it passes.)"""
    cur = get_condition(deployment.get("status") or {}, PROGRESSING)
    if not has_progress_deadline(deployment) or cur is None:
        return None
    if complete(deployment, new) or cur.get("reason") == TIMED_OUT:
        return None
    since = podstate.parse_time(cur.get("lastUpdateTime"))
    if since is None:
        return None
    return max((since + _deadline(deployment) - now).total_seconds(), 0.0) + 1.0


def check_paused(deployment: Obj, now: datetime) -> bool:
    """Mark pausing/resuming with an Unknown Progressing condition (in place), so time
    spent paused never counts against the progress deadline. True if changed."""
    if not has_progress_deadline(deployment):
        return False
    status = deployment.setdefault("status", {})
    cond = get_condition(status, PROGRESSING)
    if cond is not None and cond.get("reason") == TIMED_OUT:
        return False
    paused = bool((deployment.get("spec") or {}).get("paused"))
    marked = cond is not None and cond.get("reason") == PAUSED
    if paused and not marked:
        set_condition(status, new_condition(PROGRESSING, "Unknown", PAUSED,
                                            "Deployment is paused", now))
        return True
    if not paused and marked:
        set_condition(status, new_condition(PROGRESSING, "Unknown", RESUMED,
                                            "Deployment is resumed", now))
        return True
    return False
