"""What the workload controllers read from a Pod: active, ready, available, deletion order.

These are kube's `podutil.IsPodReady/IsPodAvailable`, `controller.IsPodActive` and the
`ActivePodsWithRanks` ordering (pkg/controller/controller_utils.go) restated as pure
functions over decoded objects. The ReplicaSet controller uses them to count replicas and to
choose which pods to delete when scaling down; Deployment status is built from the counts
the ReplicaSet controller publishes, so both agree on what "ready" and "available" mean.
"""

from __future__ import annotations

import functools
import math
from datetime import datetime, timedelta, timezone
from typing import Any, Sequence

Obj = dict[str, Any]

DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
# Pending pods go first, then Unknown, then Running (controller_utils podPhaseToOrdinal);
# any other phase counts as Pending's 0, as a missing Go map key does.
_PHASE_ORDINAL = {"Pending": 0, "Unknown": 1, "Running": 2}


def parse_time(value: str | None) -> datetime | None:
    """An RFC 3339 timestamp as an aware datetime; None for missing or unparsable values
    (Go's zero time, which every comparison below treats specially)."""
    if not value:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def format_time(t: datetime) -> str:
    """metav1.Time's wire form: RFC 3339 in UTC with second precision."""
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_active(pod: Obj) -> bool:
    """Counts toward a ReplicaSet's replicas: not finished and not being deleted."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")


def ready_condition(pod: Obj) -> Obj | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c
    return None


def is_ready(pod: Obj) -> bool:
    c = ready_condition(pod)
    return c is not None and c.get("status") == "True"


def is_available(pod: Obj, min_ready_seconds: int, now: datetime) -> bool:
    """Ready, and (with minReadySeconds) ready for longer than that many seconds: the
    Ready condition's lastTransitionTime plus minReadySeconds is strictly before `now`."""
    if not is_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = parse_time((ready_condition(pod) or {}).get("lastTransitionTime"))
    return since is not None and since + timedelta(seconds=min_ready_seconds) < now


def _ready_time(pod: Obj) -> datetime | None:
    if not is_ready(pod):
        return None
    return parse_time((ready_condition(pod) or {}).get("lastTransitionTime"))


def _deletion_cost(pod: Obj) -> int:
    raw = (pod["metadata"].get("annotations") or {}).get(DELETION_COST_ANNOTATION)
    try:
        cost = int(str(raw))
    except (TypeError, ValueError):
        return 0
    return cost if -(2**31) <= cost < 2**31 else 0


def _max_restarts(pod: Obj) -> tuple[int, int]:
    """(max restarts of regular containers, max restarts of sidecar init containers)."""
    status = pod.get("status") or {}
    regular = max([int(c.get("restartCount") or 0)
                   for c in status.get("containerStatuses") or []], default=0)
    sidecars = {c.get("name") for c in (pod.get("spec") or {}).get("initContainers") or []
                if c.get("restartPolicy") == "Always"}
    sidecar = max([int(c.get("restartCount") or 0)
                   for c in status.get("initContainerStatuses") or []
                   if c.get("name") in sidecars], default=0)
    return regular, sidecar


def _log_rank(t: datetime, now: datetime) -> int:
    """floor(log2(age in ns)), -1 for no age: pods whose ages fall in the same power-of-two
    bucket are considered equally old (LogarithmicScaleDown, on by default since 1.22), so
    scale-down does not always pick the very newest pod."""
    age_ns = int((now - t).total_seconds() * 1e9)
    return int(math.log2(age_ns)) if age_ns > 0 else -1


def _by_age(a: Obj, b: Obj, ta: datetime | None, tb: datetime | None,
            now: datetime | None) -> int:
    """Zero time first, then newer before older (bucketed logarithmically, ties by uid)."""
    if ta is None or tb is None or now is None:
        if ta is None or tb is None:
            return -1 if ta is None else 1
        return -1 if ta > tb else 1
    diff = _log_rank(ta, now) - _log_rank(tb, now)
    if diff == 0:
        ua, ub = a["metadata"].get("uid", ""), b["metadata"].get("uid", "")
        return -1 if ua < ub else (1 if ua > ub else 0)
    return -1 if diff < 0 else 1


def _compare(a: Obj, b: Obj, rank_a: int, rank_b: int, now: datetime | None) -> int:
    """Negative when `a` should be deleted before `b` (ActivePodsWithRanks.Less)."""
    na = (a.get("spec") or {}).get("nodeName") or ""
    nb = (b.get("spec") or {}).get("nodeName") or ""
    if na != nb and (not na or not nb):          # 1. unscheduled before scheduled
        return -1 if not na else 1
    pa = _PHASE_ORDINAL.get((a.get("status") or {}).get("phase", ""), 0)
    pb = _PHASE_ORDINAL.get((b.get("status") or {}).get("phase", ""), 0)
    if pa != pb:                                  # 2. Pending < Unknown < Running
        return -1 if pa < pb else 1
    ra, rb = is_ready(a), is_ready(b)
    if ra != rb:                                  # 3. not ready before ready
        return -1 if not ra else 1
    ca, cb = _deletion_cost(a), _deletion_cost(b)
    if ca != cb:                                  # 4. lower pod-deletion-cost first
        return -1 if ca < cb else 1
    if rank_a != rank_b:                          # 5. more colocated siblings first
        return -1 if rank_a > rank_b else 1
    if ra and rb:                                 # 6. ready more recently first
        ta, tb = _ready_time(a), _ready_time(b)
        if ta != tb:
            res = _by_age(a, b, ta, tb, now)
            if res:
                return res
    xa, xb = _max_restarts(a), _max_restarts(b)
    if xa != xb:                                  # 7. more restarts first
        return -1 if xa > xb else 1
    ta = parse_time(a["metadata"].get("creationTimestamp"))
    tb = parse_time(b["metadata"].get("creationTimestamp"))
    if ta != tb:                                  # 8. newer first
        return _by_age(a, b, ta, tb, now)
    return 0


def deletion_order(pods: Sequence[Obj], related: Sequence[Obj],
                   now: datetime | None) -> list[Obj]:
    """`pods` sorted so that the ones to delete first come first.

    `related` are the active-or-not pods of every ReplicaSet with the same owner (a
    Deployment's old and new ReplicaSets): a pod sharing its node with more of them is
    deleted earlier, which spreads the survivors across nodes."""
    on_node: dict[str, int] = {}
    for p in related:
        if is_active(p):
            node = (p.get("spec") or {}).get("nodeName") or ""
            on_node[node] = on_node.get(node, 0) + 1
    ranked = [(p, on_node.get((p.get("spec") or {}).get("nodeName") or "", 0)) for p in pods]

    def cmp(x: tuple[Obj, int], y: tuple[Obj, int]) -> int:
        return _compare(x[0], y[0], x[1], y[1], now)
    ranked.sort(key=functools.cmp_to_key(cmp))
    return [p for p, _ in ranked]
