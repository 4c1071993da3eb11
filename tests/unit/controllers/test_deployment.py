"""Deployment planning without a server: naming and hashing, rollout step sequences,
Recreate, rollback, history cleanup, pausing, scaling events and status conditions.

`Sim` plays the rest of the cluster: it applies each plan to in-memory ReplicaSets as the
API server would, and stands in for the ReplicaSet controller and kubelets in two steps:
`pods_created` (pods exist, new ones not ready) and `pods_ready`.
"""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from typing import Any

from svcnet.api.defaults import apply_defaults
from svcnet.controllers import deployment_revisions as rev
from svcnet.controllers.deployment import plan_deployment
from svcnet.controllers.deployment_plan import DeploymentPlan
from svcnet.controllers.deployment_scaling import int_or_percent, resolve_fenceposts

Obj = dict[str, Any]
NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


def ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def make_deployment(replicas: int = 3, image: str = "nginx:1.14", *,
                    strategy: Obj | None = None, **spec: Any) -> Obj:
    d: Obj = {"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "web", "namespace": "default", "uid": "uid-web",
                           "generation": 1, "resourceVersion": "1",
                           "annotations": {"kubernetes.io/change-cause": "v1",
                                           rev.LAST_APPLIED: "{}"}},
              "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                       "template": {"metadata": {"labels": {"app": "web"}},
                                    "spec": {"containers": [{"name": "web", "image": image}]}},
                       **spec}}
    if strategy is not None:
        d["spec"]["strategy"] = strategy
    apply_defaults("Deployment", d)
    return d


def rolling(surge: Any, unavailable: Any) -> Obj:
    return {"type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}


class Sim:
    def __init__(self, d: Obj) -> None:
        self.d = d
        self.rss: dict[str, Obj] = {}
        self.pods: list[Obj] = []
        self.now = NOW
        self.events: list[str] = []
        self.seq = 0

    def sync(self) -> DeploymentPlan:
        plan = plan_deployment(self.d, list(self.rss.values()), self.pods, self.now)
        for ch in plan.changes:
            name = ch.obj["metadata"]["name"]
            if ch.op == "create":
                assert name not in self.rss
                self.seq += 1
                obj = copy.deepcopy(ch.obj)
                obj["metadata"].update(uid=f"uid-rs{self.seq}", generation=1,
                                       creationTimestamp=ts(self.now))
                obj["status"] = {"replicas": 0}
                self.rss[name] = obj
            elif ch.op == "update":
                old, new = self.rss[name], copy.deepcopy(ch.obj)
                if new["spec"] != old["spec"]:
                    new["metadata"]["generation"] = old["metadata"]["generation"] + 1
                new["status"] = old["status"]
                self.rss[name] = new
            else:
                del self.rss[name]
            self.events += [e.message for e in ch.events]
        if plan.status is not None:
            self.d["status"] = copy.deepcopy(plan.status)
        self.d["metadata"]["annotations"].update(plan.annotations)
        self.now += timedelta(seconds=1)
        return plan

    def pods_created(self) -> None:
        """The ReplicaSet controller caught up: pods exist, the new ones not yet ready."""
        for rs in self.rss.values():
            want, st = rs["spec"]["replicas"], rs["status"]
            avail = min(st.get("availableReplicas", 0), want)
            rs["status"] = {"replicas": want, "readyReplicas": avail, "availableReplicas": avail,
                            "observedGeneration": rs["metadata"]["generation"]}

    def pods_ready(self) -> None:
        for rs in self.rss.values():
            want = rs["spec"]["replicas"]
            rs["status"] = {"replicas": want, "readyReplicas": want, "availableReplicas": want,
                            "observedGeneration": rs["metadata"]["generation"]}

    def new_rs(self) -> Obj:
        found = rev.find_new(self.d, list(self.rss.values()))
        assert found is not None
        return found

    def sizes(self) -> tuple[int, int]:
        """(new ReplicaSet's replicas, sum of the old ones')."""
        new = rev.find_new(self.d, list(self.rss.values()))
        old = sum(rs["spec"]["replicas"] for rs in self.rss.values() if rs is not new)
        return (new["spec"]["replicas"] if new else 0), old

    def complete(self) -> bool:
        st, want = self.d.get("status") or {}, self.d["spec"]["replicas"]
        return (st.get("updatedReplicas", 0) == st.get("replicas", 0) == want
                and st.get("availableReplicas", 0) == want
                and st.get("observedGeneration", 0) >= self.d["metadata"]["generation"])

    def roll(self, max_rounds: int = 40) -> list[tuple[int, int]]:
        """Drive to completion; the (new, old) sizes after every change, checking the
        maxSurge/maxUnavailable bounds at every step."""
        seen: list[tuple[int, int]] = []
        want = self.d["spec"]["replicas"]
        ru = (self.d["spec"]["strategy"].get("rollingUpdate") or {})
        surge, unavailable = resolve_fenceposts(ru.get("maxSurge"), ru.get("maxUnavailable"),
                                                want)
        for _ in range(max_rounds):
            for settle in (self.pods_created, self.pods_ready):
                self.sync()
                if not seen or seen[-1] != self.sizes():
                    seen.append(self.sizes())
                if self.d["spec"]["strategy"]["type"] == "RollingUpdate":
                    assert sum(self.sizes()) <= want + surge, seen
                    available = sum(rs["status"].get("availableReplicas", 0)
                                    for rs in self.rss.values())
                    assert available >= want - unavailable or len(seen) == 1, seen
                settle()
            if self.complete():
                self.sync()  # the sync that sees completion (and cleans up history)
                return seen
        raise AssertionError(f"rollout did not complete: {seen}")

    def edit(self, image: str, cause: str | None = None) -> None:
        self.d["spec"]["template"]["spec"]["containers"][0]["image"] = image
        self.d["metadata"]["generation"] += 1
        if cause:
            self.d["metadata"]["annotations"]["kubernetes.io/change-cause"] = cause


# --- naming, hashing, the ReplicaSet shape ------------------------------------------------

def test_new_replicaset_shape_and_stable_hash() -> None:
    d = make_deployment()
    plan = plan_deployment(d, [], [], NOW)
    [rs] = plan.of("create")
    h = rev.template_hash(d["spec"]["template"])
    assert rs["metadata"]["name"] == f"web-{h}" and set(h) <= set(rev.SAFE_ALPHABET)
    assert h == rev.template_hash(copy.deepcopy(d["spec"]["template"]))  # stable
    assert rs["metadata"]["labels"] == {"app": "web", "pod-template-hash": h}
    assert rs["spec"]["selector"] == {"matchLabels": {"app": "web", "pod-template-hash": h}}
    expected_template = copy.deepcopy(d["spec"]["template"])
    expected_template["metadata"]["labels"]["pod-template-hash"] = h
    assert rs["spec"]["template"] == expected_template  # verbatim + the hash label
    assert rs["metadata"]["ownerReferences"] == [{
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "uid-web",
        "controller": True, "blockOwnerDeletion": True}]
    assert rs["spec"]["replicas"] == 3
    assert rs["metadata"]["annotations"] == {
        "kubernetes.io/change-cause": "v1", rev.REVISION: "1",
        rev.DESIRED_REPLICAS: "3", rev.MAX_REPLICAS: "4"}  # last-applied not copied
    assert plan.annotations == {rev.REVISION: "1"}
    assert [c.events[0].message for c in plan.changes] == [
        f"Scaled up replica set web-{h} from 0 to 3"]


def test_hash_changes_with_template_and_collision_count() -> None:
    t = make_deployment()["spec"]["template"]
    other = make_deployment(image="nginx:1.16")["spec"]["template"]
    assert rev.template_hash(t) != rev.template_hash(other)
    assert len({rev.template_hash(t), rev.template_hash(t, 0), rev.template_hash(t, 1)}) == 3
    assert rev.safe_encode("0123456789") == "456789bcdf"  # upstream's digit mapping


def test_name_collision_bumps_collision_count() -> None:
    d = make_deployment()
    squatter = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": f"web-{rev.template_hash(d['spec']['template'])}",
                             "namespace": "default", "uid": "uid-x", "labels": {"app": "other"}},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "other"}},
                         "template": {"metadata": {"labels": {"app": "other"}}, "spec": {}}}}
    plan = plan_deployment(d, [squatter], [], NOW)
    assert plan.changes == [] and plan.status is not None
    assert plan.status["collisionCount"] == 1
    d["status"] = plan.status
    [rs] = plan_deployment(d, [squatter], [], NOW).of("create")
    assert rs["metadata"]["name"] == f"web-{rev.template_hash(d['spec']['template'], 1)}"


def test_fenceposts_round_surge_up_and_unavailable_down() -> None:
    assert resolve_fenceposts("25%", "25%", 3) == (1, 0)
    assert resolve_fenceposts("25%", "25%", 10) == (3, 2)
    assert resolve_fenceposts(0, "10%", 3) == (0, 1)  # both zero: unavailable becomes 1
    assert resolve_fenceposts(2, 0, 5) == (2, 0)
    assert int_or_percent("50%", 3, True) == 2 and int_or_percent("50%", 3, False) == 1


# --- rolling update step sequences --------------------------------------------------------

def test_rolling_update_25_percent_steps() -> None:
    sim = Sim(make_deployment(3))
    assert sim.roll() == [(3, 0)]
    sim.edit("nginx:1.16")
    # surge 1, unavailable 0: one new pod, wait for it, drop one old pod, ...
    assert sim.roll() == [(1, 3), (1, 2), (2, 2), (2, 1), (3, 1), (3, 0)]
    new = sim.new_rs()["metadata"]["name"]
    old = next(name for name in sim.rss if name != new)
    assert sim.events[-6:] == [
        f"Scaled up replica set {new} from 0 to 1", f"Scaled down replica set {old} from 3 to 2",
        f"Scaled up replica set {new} from 1 to 2", f"Scaled down replica set {old} from 2 to 1",
        f"Scaled up replica set {new} from 2 to 3", f"Scaled down replica set {old} from 1 to 0"]


def test_rolling_update_max_surge_1_max_unavailable_0() -> None:
    sim = Sim(make_deployment(3, strategy=rolling(1, 0)))
    sim.roll()
    sim.edit("nginx:1.16")
    assert sim.roll() == [(1, 3), (1, 2), (2, 2), (2, 1), (3, 1), (3, 0)]


def test_rolling_update_max_surge_0_max_unavailable_1() -> None:
    sim = Sim(make_deployment(3, strategy=rolling(0, 1)))
    sim.roll()
    sim.edit("nginx:1.16")
    # old pod first, then its replacement
    assert sim.roll() == [(0, 2), (1, 2), (1, 1), (2, 1), (2, 0), (3, 0)]


def test_rolling_update_larger_deployment_stays_within_bounds() -> None:
    sim = Sim(make_deployment(10))  # surge 3, unavailable 2
    sim.roll()
    sim.edit("nginx:1.16")
    steps = sim.roll()
    # the new ReplicaSet starts at maxSurge and, in the same sync, the old one gives up
    # maxUnavailable pods (creating is not "scaling up", so the sync goes on)
    assert steps[0] == (3, 8) and steps[-1] == (10, 0)


def test_unhealthy_old_pods_are_removed_first() -> None:
    sim = Sim(make_deployment(3, strategy=rolling(1, 0)))
    sim.roll()
    sim.edit("nginx:1.16")
    sim.sync()                              # new RS at 1
    new_name = sim.new_rs()["metadata"]["name"]
    old_name = next(n for n in sim.rss if n != new_name)
    sim.rss[old_name]["status"]["availableReplicas"] = 1  # two old pods crashed
    sim.sync()
    # budget = 4 total - 3 minAvailable - 1 new unavailable = 0: nothing yet
    assert sim.sizes() == (1, 3)
    sim.rss[new_name]["status"].update(replicas=1, availableReplicas=1)
    sim.sync()
    # budget 1: only 2 pods are available (< minAvailable 3), so no available pod may go,
    # but an unavailable one can: it adds nothing to availability and blocks the rollout
    assert sim.sizes() == (1, 2)
    assert sim.events[-1] == f"Scaled down replica set {old_name} from 3 to 2"
    assert sim.rss[old_name]["status"]["availableReplicas"] == 1


# --- Recreate -------------------------------------------------------------------------------

def test_recreate_scales_old_down_waits_for_pods_then_scales_new_up() -> None:
    sim = Sim(make_deployment(3, strategy={"type": "Recreate"}))
    sim.roll()
    old_name = sim.new_rs()["metadata"]["name"]
    sim.edit("nginx:1.16")
    plan = sim.sync()
    assert sim.sizes() == (0, 0) and plan.of("create") == []
    assert sim.events[-1] == f"Scaled down replica set {old_name} from 3 to 0"
    sim.sync()                                   # old RS still reports 3 pods
    assert sim.rss.keys() == {old_name}
    old = sim.rss[old_name]
    old["status"] = {"replicas": 0, "observedGeneration": 2}
    terminating = {"metadata": {"name": "p", "namespace": "default", "uid": "p",
                                "labels": {"app": "web"}, "deletionTimestamp": ts(NOW),
                                "ownerReferences": [{"kind": "ReplicaSet", "controller": True,
                                                     "uid": old["metadata"]["uid"],
                                                     "name": old["metadata"]["name"]}]},
                   "status": {"phase": "Running"}}
    sim.pods = [terminating]
    sim.sync()                                   # a pod of the old revision still runs
    assert len(sim.rss) == 1
    sim.pods = []
    sim.sync()
    assert sim.sizes() == (3, 0)
    assert sim.events[-1] == f"Scaled up replica set {sim.new_rs()['metadata']['name']} from 0 to 3"
    sim.pods_ready()
    sim.sync()
    assert sim.complete()


# --- revisions, rollback, history ---------------------------------------------------------

def test_revisions_and_rollback_reuse_old_replicaset() -> None:
    sim = Sim(make_deployment(3))
    sim.roll()
    rs1 = sim.new_rs()
    sim.edit("nginx:1.16", cause="kubectl set image")
    sim.roll()
    rs2 = sim.new_rs()
    assert rev.annotations_of(rs2)[rev.REVISION] == "2"
    assert rev.annotations_of(rs2)["kubernetes.io/change-cause"] == "kubectl set image"
    assert sim.d["metadata"]["annotations"][rev.REVISION] == "2"
    # kubectl rollout undo: template of revision 1 without the hash; its annotations
    template = copy.deepcopy(rs1["spec"]["template"])
    del template["metadata"]["labels"][rev.HASH_LABEL]
    sim.d["spec"]["template"] = template
    kept = {k: v for k, v in sim.d["metadata"]["annotations"].items() if k in rev.SKIP_COPY}
    sim.d["metadata"]["annotations"] = kept | {k: v for k, v in rev.annotations_of(rs1).items()
                                               if k not in rev.SKIP_COPY}
    sim.d["metadata"]["generation"] += 1
    plan = sim.sync()
    assert plan.of("create") == [] and plan.annotations == {rev.REVISION: "3"}
    reused = sim.rss[rs1["metadata"]["name"]]
    assert rev.annotations_of(reused)[rev.REVISION] == "3"
    assert rev.annotations_of(reused)[rev.REVISION_HISTORY] == "1"
    assert rev.annotations_of(reused)["kubernetes.io/change-cause"] == "v1"
    sim.roll()
    assert sim.sizes() == (3, 0) and len(sim.rss) == 2
    assert sim.new_rs()["metadata"]["name"] == rs1["metadata"]["name"]


def test_revision_history_keeps_appending() -> None:
    rs: Obj = {"metadata": {"name": "x", "annotations": {rev.REVISION: "3",
                                                         rev.REVISION_HISTORY: "1"}}}
    d = make_deployment()
    assert rev.set_new_rs_annotations(d, rs, 5, True, 3, 4)
    assert rs["metadata"]["annotations"][rev.REVISION_HISTORY] == "1,3"
    assert not rev.set_new_rs_annotations(d, rs, 5, True, 3, 4)  # already there


def test_history_cleanup_deletes_oldest_empty_replicasets() -> None:
    sim = Sim(make_deployment(2, revisionHistoryLimit=1))
    for image in ("a:1", "a:2", "a:3"):
        if image != "a:1":
            sim.edit(image)
        else:
            sim.d["spec"]["template"]["spec"]["containers"][0]["image"] = image
        sim.roll()
    revisions = sorted(rev.annotations_of(rs)[rev.REVISION] for rs in sim.rss.values())
    assert revisions == ["2", "3"]  # revision 1 deleted, one old revision kept


# --- pausing, scaling events ----------------------------------------------------------------

def test_paused_deployment_does_not_roll_out_but_scales() -> None:
    sim = Sim(make_deployment(3))
    sim.roll()
    sim.d["spec"]["paused"] = True
    sim.d["metadata"]["generation"] += 1
    sim.sync()
    cond = [c for c in sim.d["status"]["conditions"] if c["type"] == "Progressing"][0]
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "Unknown", "DeploymentPaused", "Deployment is paused")
    sim.edit("nginx:1.16")
    sim.sync()
    assert len(sim.rss) == 1  # no new ReplicaSet while paused
    sim.d["spec"]["replicas"] = 5
    sim.sync()
    assert sim.sizes() == (0, 5)  # scaling still applies (to the old, only active one)
    sim.d["spec"]["paused"] = False
    sim.sync()
    cond = [c for c in sim.d["status"]["conditions"] if c["type"] == "Progressing"][0]
    assert cond["reason"] in ("DeploymentResumed", "NewReplicaSetCreated")
    assert len(sim.rss) == 2
    sim.roll()
    assert sim.sizes() == (5, 0)


def _scaling_case(old_replicas: int, new_replicas: int, new_size: int,
                  old_sizes: list[int]) -> list[int]:
    """Upstream sync_test TestScale shape: surge 0 / unavailable 0 (so 1), ReplicaSets
    annotated with the old size; returns [new, *old] sizes after the scaling sync."""
    d = make_deployment(new_replicas, strategy=rolling(0, 0))
    rss: list[Obj] = []
    templates = [copy.deepcopy(d["spec"]["template"]) for _ in old_sizes]
    for i, t in enumerate(templates):
        t["spec"]["containers"][0]["image"] = f"old:{i}"
    for i, (size, t) in enumerate([(new_size, d["spec"]["template"])]
                                  + list(zip(old_sizes, templates))):
        rss.append({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "metadata": {"name": f"web-v{len(old_sizes) + 1 - i}", "namespace": "default",
                                 "uid": f"u{i}", "creationTimestamp": ts(NOW - timedelta(hours=i)),
                                 "ownerReferences": [{"kind": "Deployment", "uid": "uid-web",
                                                      "controller": True, "name": "web"}],
                                 "labels": {"app": "web"},
                                 "annotations": {rev.DESIRED_REPLICAS: str(old_replicas),
                                                 rev.MAX_REPLICAS: str(old_replicas),
                                                 rev.REVISION: str(len(old_sizes) + 1 - i)}},
                    "spec": {"replicas": size, "selector": d["spec"]["selector"],
                             "template": copy.deepcopy(t)},
                    "status": {"replicas": size}})
    plan = plan_deployment(d, rss, [], NOW)
    written = {c.name: c.obj["spec"]["replicas"] for c in plan.changes}
    return [written.get(rs["metadata"]["name"], rs["spec"]["replicas"]) for rs in rss]


def test_proportional_scaling_matches_upstream_cases() -> None:
    assert _scaling_case(5, 10, 2, [3]) == [4, 6]
    assert _scaling_case(5, 3, 2, [3]) == [1, 2]
    assert _scaling_case(3, 4, 1, [1, 1]) == [2, 1, 1]      # leftover to the newest largest
    assert _scaling_case(4, 3, 2, [1, 1]) == [1, 1, 1]
    assert _scaling_case(5, 0, 2, [3]) == [0, 0]


# --- status and conditions ---------------------------------------------------------------

def test_complete_rollout_conditions_as_rollout_status_reads_them() -> None:
    sim = Sim(make_deployment(3))
    sim.roll()
    st = sim.d["status"]
    assert {k: st[k] for k in ("observedGeneration", "replicas", "updatedReplicas",
                               "readyReplicas", "availableReplicas")} == {
        "observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3,
        "availableReplicas": 3}
    assert "unavailableReplicas" not in st
    conds = {c["type"]: c for c in st["conditions"]}
    assert [c["type"] for c in st["conditions"]] == ["Available", "Progressing"]
    assert (conds["Available"]["status"], conds["Available"]["reason"]) == (
        "True", "MinimumReplicasAvailable")
    assert conds["Progressing"]["reason"] == "NewReplicaSetAvailable"
    assert conds["Progressing"]["message"] == (
        f'ReplicaSet "{sim.new_rs()["metadata"]["name"]}" has successfully progressed.')
    plan = sim.sync()
    assert plan.changes == [] and plan.status is None and plan.annotations == {}


def test_progress_deadline_exceeded_and_requeue() -> None:
    sim = Sim(make_deployment(3, progressDeadlineSeconds=60))
    sim.roll()
    sim.edit("broken:1")
    sim.sync()
    sim.pods_created()                     # new pod never becomes ready
    plan = sim.sync()
    cond = [c for c in sim.d["status"]["conditions"] if c["type"] == "Progressing"][0]
    assert cond["reason"] == "ReplicaSetUpdated"
    plan = sim.sync()                      # no progress: ask to look again at the deadline
    assert plan.status is None and plan.requeue_after is not None
    assert 55 <= plan.requeue_after <= 61
    sim.now += timedelta(seconds=61)
    plan = sim.sync()
    cond = [c for c in sim.d["status"]["conditions"] if c["type"] == "Progressing"][0]
    assert (cond["status"], cond["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert cond["message"] == (f'ReplicaSet "{sim.new_rs()["metadata"]["name"]}" '
                               "has timed out progressing.")
    assert sim.sync().requeue_after is None


def test_available_condition_tracks_min_availability() -> None:
    sim = Sim(make_deployment(4))   # maxUnavailable 1: 3 available is enough
    sim.roll()
    rs = sim.new_rs()
    rs["status"]["availableReplicas"] = 3
    sim.sync()
    assert sim.d["status"]["unavailableReplicas"] == 1
    avail = [c for c in sim.d["status"]["conditions"] if c["type"] == "Available"][0]
    assert avail["status"] == "True"
    rs["status"]["availableReplicas"] = 2
    sim.sync()
    avail = [c for c in sim.d["status"]["conditions"] if c["type"] == "Available"][0]
    assert (avail["status"], avail["reason"]) == ("False", "MinimumReplicasUnavailable")


def test_adopts_orphan_replicaset_and_releases_mismatched() -> None:
    d = make_deployment(3)
    h = rev.template_hash(d["spec"]["template"])
    orphan = rev.new_replicaset(d, h, {})
    orphan["metadata"].update(uid="uid-orphan", ownerReferences=[], resourceVersion="7",
                              creationTimestamp=ts(NOW))
    orphan["spec"]["replicas"] = 3
    mine_but_relabeled = copy.deepcopy(orphan)
    mine_but_relabeled["metadata"].update(
        name="web-old", uid="uid-old", labels={"app": "legacy"},
        ownerReferences=[{"kind": "Deployment", "uid": "uid-web", "controller": True,
                          "name": "web"}])
    plan = plan_deployment(d, [orphan, mine_but_relabeled], [], NOW)
    by_name = {c.name: c for c in plan.changes}
    assert plan.of("create") == []  # the adopted orphan is the new ReplicaSet
    assert by_name[orphan["metadata"]["name"]].obj["metadata"]["ownerReferences"][0]["uid"] \
        == "uid-web"
    assert "ownerReferences" not in by_name["web-old"].obj["metadata"]
