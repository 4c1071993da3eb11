"""How many replicas each of a Deployment's ReplicaSets should have: the rollout arithmetic.

Pure functions after kube's deployment_util.go (ResolveFenceposts, NewRSNewReplicas,
FindActiveOrLatest, IsSaturated, GetReplicaSetProportion) and sync.go `scale`:

- maxSurge and maxUnavailable are ints or percentages of spec.replicas; surge rounds up,
  unavailable rounds down, and if both come out 0, maxUnavailable is 1 (otherwise a
  rollout of a small Deployment could never move);
- a rolling update grows the new ReplicaSet up to spec.replicas + maxSurge pods in total;
- a scaling event in the middle of a rollout (or while paused) spreads the change over
  the active ReplicaSets in proportion to their size, so it neither hastens nor reverts
  the rollout.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

from svcnet.controllers import deployment_revisions as rev

Obj = dict[str, Any]
MAX_INT32 = 2**31 - 1


def replicas(obj: Obj | None) -> int:
    """spec.replicas (default 1, as the API defaults it); 0 for no object."""
    if obj is None:
        return 0
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def status_count(obj: Obj | None, field: str) -> int:
    return int(((obj or {}).get("status") or {}).get(field) or 0)


def total(rss: Iterable[Obj | None]) -> int:
    """Sum of spec.replicas."""
    return sum(replicas(rs) for rs in rss if rs is not None)


def total_status(rss: Iterable[Obj | None], field: str) -> int:
    """Sum of a status count (replicas, readyReplicas, availableReplicas)."""
    return sum(status_count(rs, field) for rs in rss if rs is not None)


def active(rss: Iterable[Obj | None]) -> list[Obj]:
    """The ReplicaSets that want pods (controller.FilterActiveReplicaSets)."""
    return [rs for rs in rss if rs is not None and replicas(rs) > 0]


def int_or_percent(value: Any, whole: int, round_up: bool) -> int:
    """An IntOrString as a count of `whole`: "25%" of 3 is 1 rounded up, 0 rounded down."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise ValueError(f"invalid value for IntOrString: {value!r}")
    if isinstance(value, int):
        return value
    text = str(value)
    if not text.endswith("%"):
        return int(text)  # lenient: upstream rejects a non-percent string in validation
    pct = int(text[:-1])
    return -((-pct * whole) // 100) if round_up else (pct * whole) // 100


def is_rolling(deployment: Obj) -> bool:
    strategy = (deployment.get("spec") or {}).get("strategy") or {}
    return bool(strategy.get("type", "RollingUpdate") == "RollingUpdate")


def resolve_fenceposts(max_surge: Any, max_unavailable: Any, desired: int) -> tuple[int, int]:
    surge = int_or_percent(max_surge if max_surge is not None else 0, desired, True)
    unavailable = int_or_percent(max_unavailable if max_unavailable is not None else 0,
                                 desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def _fenceposts(deployment: Obj) -> tuple[int, int]:
    ru = ((deployment.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}
    return resolve_fenceposts(ru.get("maxSurge", "25%"), ru.get("maxUnavailable", "25%"),
                              replicas(deployment))


def max_surge(deployment: Obj) -> int:
    """Pods allowed above spec.replicas during a rolling update (0 for Recreate)."""
    return _fenceposts(deployment)[0] if is_rolling(deployment) else 0


def max_unavailable(deployment: Obj) -> int:
    """Pods allowed to be unavailable (0 for Recreate or 0 replicas; at most replicas)."""
    want = replicas(deployment)
    if not is_rolling(deployment) or want == 0:
        return 0
    return min(_fenceposts(deployment)[1], want)


def new_rs_new_replicas(deployment: Obj, all_rss: Sequence[Obj | None], new_rs: Obj) -> int:
    """The size the new ReplicaSet may grow to now. Recreate: the full count at once
    (old pods are gone by then). Rolling: up to spec.replicas + maxSurge pods in total,
    never beyond spec.replicas for the new one."""
    want = replicas(deployment)
    if not is_rolling(deployment):
        return want
    ceiling = want + max_surge(deployment)
    current = total(all_rss)
    if current >= ceiling:
        return replicas(new_rs)
    return replicas(new_rs) + min(ceiling - current, want - replicas(new_rs))


def find_active_or_latest(new_rs: Obj | None, old_rss: Sequence[Obj]) -> Obj | None:
    """The only active ReplicaSet, or the newest one if none is active; None when several
    are active (then a scaling event is shared out proportionally)."""
    if new_rs is None and not old_rss:
        return None
    newest_first = list(reversed(rev.by_creation(old_rss)))
    candidates = active(newest_first + [new_rs])
    if not candidates:
        return new_rs if new_rs is not None else newest_first[0]
    return candidates[0] if len(candidates) == 1 else None


def is_saturated(deployment: Obj, rs: Obj | None) -> bool:
    """The new ReplicaSet runs all desired replicas, knows it, and all are available."""
    if rs is None:
        return False
    try:
        desired = int(rev.annotations_of(rs).get(rev.DESIRED_REPLICAS, ""))
    except ValueError:
        return False
    want = replicas(deployment)
    return replicas(rs) == want and desired == want and \
        status_count(rs, "availableReplicas") == want


def _annotated_int(rs: Obj, key: str) -> int | None:
    try:
        return int(rev.annotations_of(rs).get(key, ""))
    except ValueError:
        return None


def _fraction(rs: Obj, deployment: Obj) -> int:
    """How many replicas `rs` gains (loses) when the Deployment resizes: its share of the
    new maximum, by its size against the max-replicas it was last given."""
    if replicas(deployment) == 0:
        return -replicas(rs)
    new_max = replicas(deployment) + max_surge(deployment)
    annotated = _annotated_int(rs, rev.MAX_REPLICAS)
    if annotated is None:
        annotated = status_count(deployment, "replicas")
    if annotated <= 0:
        return 0  # no basis for a proportion; the leftover goes to the largest instead
    exact = replicas(rs) * new_max / annotated
    rounded = math.floor(exact + 0.5)  # Go's math.Round: halves away from zero (>= 0 here)
    return int(rounded) - replicas(rs)


def _proportion(rs: Obj, deployment: Obj, to_add: int, added: int) -> int:
    if replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    share, allowed = _fraction(rs, deployment), to_add - added
    return min(share, allowed) if to_add > 0 else max(share, allowed)


def proportional_sizes(deployment: Obj, active_rss: Sequence[Obj]) -> list[tuple[Obj, int]]:
    """New sizes for the active ReplicaSets of a rolling Deployment after a scaling event.

    The total may reach spec.replicas + maxSurge (0 when scaling to 0). Growth goes to the
    largest (newest on ties) first, shrinking to the largest (oldest on ties) first; the
    rounding leftover goes to the first of that order. Returned in that order."""
    want = replicas(deployment)
    allowed = want + max_surge(deployment) if want > 0 else 0
    to_add = allowed - total(active_rss)
    ordered = list(active_rss)
    if to_add > 0:   # ReplicaSetsBySizeNewer: largest first, newer first on ties
        ordered.sort(key=lambda rs: (replicas(rs), rev.created_at(rs), rs["metadata"]["name"]),
                     reverse=True)
    elif to_add < 0:  # ReplicaSetsBySizeOlder: largest first, older first on ties
        ordered.sort(key=lambda rs: (-replicas(rs), rev.created_at(rs), rs["metadata"]["name"]))
    sizes: list[tuple[Obj, int]] = []
    added = 0
    for rs in ordered:
        part = _proportion(rs, deployment, to_add, added) if to_add else 0
        sizes.append((rs, replicas(rs) + part))
        added += part
    if to_add and sizes:
        first, size = sizes[0]
        sizes[0] = (first, max(0, size + to_add - added))
    return sizes
