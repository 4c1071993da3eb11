"""ReplicaSet controller: the pure plan (counts, deletion order, claiming, status) and the
runner's slow-start creates and expectations, without a server."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from svcnet.api import errors
from svcnet.api.defaults import apply_defaults
from svcnet.client.api import WatchEvent
from svcnet.controllers.base import SharedInformers
from svcnet.controllers.expectations import Expectations
from svcnet.controllers.podstate import deletion_order, is_available
from svcnet.controllers.replicaset import ReplicaSetController
from svcnet.controllers.replicaset_plan import (
    calculate_status, reconcile, requeue_after, slow_start_batches, status_changed)

Obj = dict[str, Any]
NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


def ts(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_rs(replicas: int = 3, *, name: str = "web-5d4f8", min_ready: int = 0,
            generation: int = 1) -> Obj:
    rs: Obj = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
               "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}",
                            "generation": generation, "resourceVersion": "10"},
               "spec": {"replicas": replicas,
                        "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d4f8"}},
                        "template": {"metadata": {"labels": {"app": "web",
                                                             "pod-template-hash": "5d4f8",
                                                             "tier": "front"}},
                                     "spec": {"containers": [{"name": "web",
                                                              "image": "nginx:1.14"}]}}}}
    if min_ready:
        rs["spec"]["minReadySeconds"] = min_ready
    apply_defaults("ReplicaSet", rs)
    return rs


def make_pod(name: str, *, owner: Obj | None = None, age: float = 100, phase: str = "Running",
             ready_for: float | None = 50, node: str = "node-1",
             labels: dict[str, str] | None = None, restarts: int = 0,
             deleting: bool = False, cost: int | None = None) -> Obj:
    meta: Obj = {"name": name, "namespace": "default", "uid": f"uid-{name}",
                 "creationTimestamp": ts(age), "resourceVersion": "5",
                 "labels": labels if labels is not None else
                 {"app": "web", "pod-template-hash": "5d4f8", "tier": "front"}}
    if owner is not None:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                    "name": owner["metadata"]["name"],
                                    "uid": owner["metadata"]["uid"], "controller": True}]
    if deleting:
        meta["deletionTimestamp"] = ts(1)
    if cost is not None:
        meta["annotations"] = {"controller.kubernetes.io/pod-deletion-cost": str(cost)}
    status: Obj = {"phase": phase, "containerStatuses": [{"name": "web",
                                                          "restartCount": restarts}]}
    if ready_for is not None:
        status["conditions"] = [{"type": "Ready", "status": "True",
                                 "lastTransitionTime": ts(ready_for)}]
    spec: Obj = {"containers": [{"name": "web", "image": "nginx:1.14"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}


# --- creating ----------------------------------------------------------------------------

def test_creates_missing_pods_from_template() -> None:
    rs = make_rs(3)
    plan = reconcile(rs, [make_pod("a", owner=rs)], NOW)
    assert len(plan.create) == 2 and plan.delete == [] and plan.diff == 2
    pod = plan.create[0]
    assert pod["metadata"]["generateName"] == "web-5d4f8-"
    assert "name" not in pod["metadata"]
    assert pod["metadata"]["labels"] == rs["spec"]["template"]["metadata"]["labels"]
    assert pod["metadata"]["ownerReferences"] == [{
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d4f8",
        "uid": "uid-web-5d4f8", "controller": True, "blockOwnerDeletion": True}]
    assert pod["spec"] == rs["spec"]["template"]["spec"]
    assert pod["spec"] is not rs["spec"]["template"]["spec"]  # a copy, never shared


def test_burst_limits_one_sync_and_manage_false_plans_nothing() -> None:
    rs = make_rs(600)
    assert len(reconcile(rs, [], NOW).create) == 500
    plan = reconcile(rs, [], NOW, manage=False)
    assert plan.create == [] and plan.status["replicas"] == 0


def test_inactive_pods_do_not_count() -> None:
    rs = make_rs(2)
    pods = [make_pod("ok", owner=rs), make_pod("done", owner=rs, phase="Succeeded"),
            make_pod("failed", owner=rs, phase="Failed"), make_pod("bye", owner=rs, deleting=True)]
    plan = reconcile(rs, pods, NOW)
    assert len(plan.create) == 1 and [p["metadata"]["name"] for p in plan.active] == ["ok"]


def test_deleting_replicaset_neither_creates_nor_adopts() -> None:
    rs = make_rs(3)
    rs["metadata"]["deletionTimestamp"] = ts(1)
    plan = reconcile(rs, [make_pod("orphan")], NOW)
    assert plan.create == [] and plan.adopt == []


# --- deleting ----------------------------------------------------------------------------

def test_deletes_extra_pods_worst_first() -> None:
    rs = make_rs(1)
    pods = [
        make_pod("old-ready", owner=rs, age=4000, ready_for=3000),
        make_pod("unscheduled", owner=rs, node="", phase="Pending", ready_for=None),
        make_pod("pending", owner=rs, phase="Pending", ready_for=None),
        make_pod("running-not-ready", owner=rs, ready_for=None),
        make_pod("restarting", owner=rs, age=4000, ready_for=3000, restarts=5),
    ]
    plan = reconcile(rs, pods, NOW)
    assert [p["metadata"]["name"] for p in plan.delete] == [
        "unscheduled", "pending", "running-not-ready", "restarting"]
    assert plan.create == []


def test_deletion_order_cost_colocation_ready_time_and_age() -> None:
    rs = make_rs(0)
    cheap = make_pod("cheap", owner=rs, cost=-10)
    crowded = make_pod("crowded", owner=rs, node="busy")
    sibling = make_pod("sibling", owner=rs, node="busy")
    alone = make_pod("alone", owner=rs, node="quiet")
    assert deletion_order([alone, crowded, cheap], [alone, crowded, sibling, cheap],
                          NOW)[:2] == [cheap, crowded]
    # ready recently (bucket of 2^k ns) before ready long ago; then newer before older
    fresh = make_pod("fresh", owner=rs, ready_for=10, age=4000)
    seasoned = make_pod("seasoned", owner=rs, ready_for=5000, age=6000)
    assert deletion_order([seasoned, fresh], [], NOW) == [fresh, seasoned]
    young = make_pod("young", owner=rs, ready_for=None, age=5)
    aged = make_pod("aged", owner=rs, ready_for=None, age=50000)
    assert deletion_order([aged, young], [], NOW) == [young, aged]


def test_deleting_all_skips_ranking() -> None:
    rs = make_rs(0)
    pods = [make_pod(n, owner=rs) for n in "abc"]
    assert reconcile(rs, pods, NOW).delete == pods


# --- claiming ----------------------------------------------------------------------------

def test_adopts_matching_orphans_and_ignores_others() -> None:
    rs = make_rs(3)
    other = make_rs(1, name="other")
    orphan = make_pod("orphan")
    foreign = make_pod("foreign", owner=other)
    unrelated = make_pod("unrelated", labels={"app": "db"})
    dying_orphan = make_pod("dying", deleting=True)
    plan = reconcile(rs, [orphan, foreign, unrelated, dying_orphan], NOW)
    assert plan.adopt == [orphan]
    assert plan.active == [orphan] and len(plan.create) == 2


def test_releases_owned_pods_that_stopped_matching() -> None:
    rs = make_rs(1)
    relabeled = make_pod("relabeled", owner=rs, labels={"app": "debug"})
    kept = make_pod("kept", owner=rs)
    plan = reconcile(rs, [relabeled, kept], NOW)
    assert plan.release == [relabeled] and plan.active == [kept] and plan.create == []


# --- status ------------------------------------------------------------------------------

def test_status_counts() -> None:
    rs = make_rs(4, min_ready=30, generation=3)
    pods = [
        make_pod("available", owner=rs, ready_for=60),
        make_pod("ready-too-briefly", owner=rs, ready_for=10),
        make_pod("not-ready", owner=rs, ready_for=None),
        # selected (app + hash) but missing the template's tier label: not fully labeled
        make_pod("partial", owner=rs, labels={"app": "web", "pod-template-hash": "5d4f8"},
                 ready_for=None),
    ]
    status = reconcile(rs, pods, NOW).status
    assert status == {"replicas": 4, "fullyLabeledReplicas": 3, "readyReplicas": 2,
                      "availableReplicas": 1, "observedGeneration": 3}
    assert is_available(pods[0], 30, NOW) and not is_available(pods[1], 30, NOW)
    assert reconcile(make_rs(0), [], NOW).status == {"replicas": 0, "observedGeneration": 1}


def test_replica_failure_condition_added_and_cleared() -> None:
    rs = make_rs(3)
    failed = calculate_status(rs, [], NOW, manage_error='pods "x" is forbidden: quota')
    cond = failed["conditions"][0]
    assert cond == {"type": "ReplicaFailure", "status": "True",
                    "lastTransitionTime": "2024-05-01T12:00:00Z", "reason": "FailedCreate",
                    "message": 'pods "x" is forbidden: quota'}
    rs["status"] = failed
    # a second failure keeps the first condition (and its time) untouched
    later = calculate_status(rs, [], NOW + timedelta(minutes=1), manage_error="again")
    assert later["conditions"] == [cond]
    assert "conditions" not in calculate_status(rs, [], NOW)
    too_many = make_rs(0)
    assert calculate_status(too_many, [make_pod("a", owner=too_many)], NOW,
                            manage_error="boom")["conditions"][0]["reason"] == "FailedDelete"


def test_status_changed_ignores_zero_vs_absent_and_requeue_for_min_ready() -> None:
    rs = make_rs(2, min_ready=30)
    rs["status"] = {"replicas": 2, "readyReplicas": 0, "observedGeneration": 1}
    assert not status_changed(rs, {"replicas": 2, "observedGeneration": 1})
    assert status_changed(rs, {"replicas": 2, "readyReplicas": 1, "observedGeneration": 1})
    pods = [make_pod("a", owner=rs, ready_for=5), make_pod("b", owner=rs, ready_for=5)]
    plan = reconcile(rs, pods, NOW)
    assert requeue_after(rs, plan.status) == 30.0
    pods = [make_pod("a", owner=rs, ready_for=500), make_pod("b", owner=rs, ready_for=500)]
    assert requeue_after(rs, reconcile(rs, pods, NOW).status) is None


# --- slow start and expectations ---------------------------------------------------------

def test_slow_start_batches() -> None:
    assert slow_start_batches(0) == []
    assert slow_start_batches(1) == [1]
    assert slow_start_batches(7) == [1, 2, 4]
    assert slow_start_batches(10) == [1, 2, 4, 3]
    assert sum(slow_start_batches(500)) == 500


def test_expectations_wait_for_observations_or_timeout() -> None:
    now = [0.0]
    exp = Expectations(clock=lambda: now[0], timeout=300)
    assert exp.satisfied("default/web")
    exp.expect_creations("default/web", 2)
    assert not exp.satisfied("default/web")
    exp.creation_observed("default/web")
    assert exp.pending("default/web") == (1, 0) and not exp.satisfied("default/web")
    exp.creation_observed("default/web")
    assert exp.satisfied("default/web")
    exp.expect_deletions("default/web", ["u1", "u2"])
    exp.deletion_observed("default/web", "someone-else")
    exp.deletion_observed("default/web", "u1")
    assert exp.pending("default/web") == (0, 1) and not exp.satisfied("default/web")
    now[0] = 301.0
    assert exp.satisfied("default/web")  # a lost event must not wedge the controller
    exp.forget("default/web")
    assert exp.pending("default/web") == (0, 0)


class FakeClient:
    """Records writes; pod creates fail from the `fail_from`-th one on."""

    def __init__(self, fail_from: int = 10**9) -> None:
        self.fail_from = fail_from
        self.pod_creates = 0
        self.events: list[str] = []
        self._stored: dict[str, Obj] = {}

    async def create(self, kind: Any, namespace: str | None, obj: Obj) -> Obj:
        if kind.kind == "Event":
            self.events.append(f"{obj['reason']}: {obj['message']}")
            self._stored[obj["metadata"]["name"]] = obj
            return obj
        self.pod_creates += 1
        if self.pod_creates >= self.fail_from:
            raise errors.StatusError(403, "Forbidden", 'pods "web" is forbidden: exceeded quota')
        out = copy.deepcopy(obj)
        out["metadata"]["name"] = f"web-5d4f8-{self.pod_creates:05d}"
        return out

    async def get(self, kind: Any, namespace: str | None, name: str) -> Obj:
        return self._stored[name]

    async def patch(self, kind: Any, namespace: str | None, name: str, patch: Obj,
                    **kw: Any) -> Obj:
        ev = self._stored[name]  # the recorder aggregating a repeated Event
        ev.update(patch)
        self.events.append(f"{ev['reason']}: {ev['message']}")
        return ev

    async def list(self, *a: Any, **kw: Any) -> tuple[list[Obj], str]:
        return [], "1"

    def watch(self, *a: Any, **kw: Any) -> Any:
        async def empty() -> Any:
            if False:
                yield WatchEvent("ADDED", {})
        return empty()


async def test_runner_creates_in_slow_start_batches_and_stops_on_failure() -> None:
    client = FakeClient(fail_from=4)  # creates 1..3 succeed (batches 1 and 2), 4.. fail
    ctl = ReplicaSetController(client, SharedInformers(client))  # type: ignore[arg-type]
    rs = make_rs(10)
    pods = reconcile(rs, [], NOW).create
    failure = await ctl._create("default/web-5d4f8", rs, pods)
    assert isinstance(failure, errors.StatusError) and failure.reason == "Forbidden"
    assert client.pod_creates == 7  # batches 1 + 2 + 4; the last batch of 3 never sent
    # 3 created pods are still awaited from the informer; failed and skipped ones are not
    assert ctl.expectations.pending("default/web-5d4f8") == (3, 0)
    # one Event, its count raised for the repeats
    assert client.events.count("FailedCreate: Error creating: "
                               'pods "web" is forbidden: exceeded quota') == 4
    assert sum(1 for e in client._stored.values() if e["reason"] == "FailedCreate") == 1
    assert [e for e in client.events if e.startswith("SuccessfulCreate")] == [
        "SuccessfulCreate: Created pod: web-5d4f8-00001",
        "SuccessfulCreate: Created pod: web-5d4f8-00002",
        "SuccessfulCreate: Created pod: web-5d4f8-00003"]


@pytest.mark.parametrize("ev", ["ADDED", "DELETED"])
def test_runner_counts_pod_events_against_expectations(ev: str) -> None:
    client = FakeClient()
    ctl = ReplicaSetController(client, SharedInformers(client))  # type: ignore[arg-type]
    rs = make_rs(1)
    ctl.replicasets._put(rs)
    pod = make_pod("p1", owner=rs)
    key = "default/web-5d4f8"
    if ev == "ADDED":
        ctl.expectations.expect_creations(key, 1)
        ctl._on_pod("ADDED", None, pod)
    else:
        ctl.expectations.expect_deletions(key, ["uid-p1"])
        ctl._on_pod("DELETED", pod, None)
    assert ctl.expectations.satisfied(key) and len(ctl.queue) == 1
