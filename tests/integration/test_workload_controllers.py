"""Deployment and ReplicaSet controllers through the API, server in-process.

There is no node agent here: the test plays the kubelet, patching pod status to Running +
Ready with a podIP through /status. User actions are sent as kubectl sends them: create,
a merge patch of /scale (kubectl scale), a strategic merge patch of the template (kubectl
set image), and the JSON patch of kubectl rollout undo (reference/apiserver.md §3.4).
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from typing import Any, Callable

from conftest import InProcess, RunningControllers, eventually

from svcnet.api.kinds import by_resource
from svcnet.controllers.deployment import DeploymentController
from svcnet.controllers.replicaset import ReplicaSetController

Obj = dict[str, Any]
NS = "/api/v1/namespaces/default"
APPS = "/apis/apps/v1/namespaces/default"
DEPLOY = f"{APPS}/deployments/web"
CONTROLLERS: list[object] = [ReplicaSetController, DeploymentController]
REVISION = "deployment.kubernetes.io/revision"
SKIP = {"kubectl.kubernetes.io/last-applied-configuration", REVISION,
        "deployment.kubernetes.io/revision-history", "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas", "deprecated.deployment.rollback.to"}


async def call(s: InProcess, method: str, path: str, body: Any = None,
               content_type: str = "application/json") -> tuple[int, Any]:
    h = dict(s.headers)
    data = json.dumps(body) if body is not None else None
    if data is not None:
        h["Content-Type"] = content_type
    resp = await s.client.request(method, path, data=data, headers=h)  # type: ignore[attr-defined]
    text = await resp.text()
    return resp.status, json.loads(text) if text else None


async def ok(s: InProcess, method: str, path: str, body: Any = None,
             content_type: str = "application/json") -> Any:
    code, out = await call(s, method, path, body, content_type)
    assert code < 300, (method, path, code, out)
    return out


def deployment_body(replicas: int = 3) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"},
                         "annotations": {"kubernetes.io/change-cause": "create nginx:1.14"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web",
                                                           "image": "nginx:1.14"}]}}}}


async def pods(s: InProcess) -> list[Obj]:
    items = (await ok(s, "GET", f"{NS}/pods?labelSelector=app%3Dweb"))["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


async def replicasets(s: InProcess) -> list[Obj]:
    return list((await ok(s, "GET", f"{APPS}/replicasets"))["items"])


def ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


async def mark_ready(s: InProcess) -> None:
    """Fake kubelet: every pod of app=web becomes Running and Ready with an IP."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for i, pod in enumerate(await pods(s)):
        if ready(pod):
            continue
        status = {"phase": "Running", "podIP": f"10.244.0.{10 + i}",
                  "podIPs": [{"ip": f"10.244.0.{10 + i}"}], "startTime": now,
                  "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now},
                                 {"type": "ContainersReady", "status": "True",
                                  "lastTransitionTime": now}]}
        await call(s, "PATCH", f"{NS}/pods/{pod['metadata']['name']}/status",
                   {"status": status}, "application/merge-patch+json")  # 404 if just deleted


def rollout_done(d: Obj) -> bool:
    """`kubectl rollout status`'s success test (polymorphichelpers/rollout_status.go)."""
    st, want = d.get("status") or {}, d["spec"]["replicas"]
    return (d["metadata"]["generation"] <= st.get("observedGeneration", 0)
            and st.get("updatedReplicas", 0) == want
            and st.get("replicas", 0) == st.get("updatedReplicas", 0)
            and st.get("availableReplicas", 0) == st.get("updatedReplicas", 0))


async def drive(s: InProcess, max_total: int, done: Callable[[Obj], bool] = rollout_done,
                timeout: float = 20.0) -> Obj:
    """Mark pods ready until `done(deployment)`, checking that the ReplicaSets never ask
    for more than `max_total` pods together (spec.replicas + maxSurge)."""
    deadline = time.monotonic() + timeout
    while True:
        await mark_ready(s)
        total = sum(rs["spec"]["replicas"] for rs in await replicasets(s))
        assert total <= max_total, total
        d = await ok(s, "GET", DEPLOY)
        if done(d):
            return d  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, json.dumps(d.get("status"), indent=1)
        await asyncio.sleep(0.05)


def by_revision(rss: list[Obj]) -> dict[str, Obj]:
    return {rs["metadata"]["annotations"][REVISION]: rs for rs in rss}


async def events(s: InProcess, name: str, reason: str) -> list[str]:
    items = (await ok(s, "GET", f"{NS}/events"))["items"]
    return [e["message"] for e in items
            if e["involvedObject"]["name"] == name and e["reason"] == reason]


async def settled(s: InProcess, n_pods: int, n_rs: int) -> None:
    """Exactly `n_pods` pods and `n_rs` ReplicaSets, and it stays so (no duplicates later)."""
    async def check() -> None:
        assert len(await pods(s)) == n_pods
        assert len(await replicasets(s)) == n_rs
    await eventually(check, timeout=10)
    await asyncio.sleep(0.5)
    await check()


async def test_deployment_rollout_scale_and_undo(inproc: InProcess) -> None:
    async with RunningControllers(inproc, CONTROLLERS):
        created = await ok(inproc, "POST", f"{APPS}/deployments", deployment_body())

        # --- the first ReplicaSet and its pods ------------------------------------------
        async def first_rs() -> None:
            [rs] = await replicasets(inproc)
            assert len(await pods(inproc)) == 3
            assert rs["metadata"]["ownerReferences"] == [{
                "apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                "uid": created["metadata"]["uid"], "controller": True,
                "blockOwnerDeletion": True}]
        await eventually(first_rs, timeout=10)
        [rs1] = await replicasets(inproc)
        name1 = rs1["metadata"]["name"]
        hash1 = rs1["metadata"]["labels"]["pod-template-hash"]
        assert name1 == f"web-{hash1}"
        template = copy.deepcopy(rs1["spec"]["template"])
        del template["metadata"]["labels"]["pod-template-hash"]
        assert template == created["spec"]["template"]  # verbatim copy + the hash label
        for pod in await pods(inproc):
            assert pod["metadata"]["generateName"] == f"{name1}-"
            assert pod["metadata"]["ownerReferences"][0]["uid"] == rs1["metadata"]["uid"]
            assert pod["metadata"]["labels"] == {"app": "web", "pod-template-hash": hash1}

        d = await drive(inproc, 4)
        conds = {c["type"]: c for c in d["status"]["conditions"]}
        assert (conds["Available"]["status"], conds["Available"]["reason"]) == (
            "True", "MinimumReplicasAvailable")
        assert conds["Progressing"]["reason"] == "NewReplicaSetAvailable"
        assert d["metadata"]["annotations"][REVISION] == "1"
        await eventually(lambda: events(inproc, "web", "ScalingReplicaSet"))
        assert await events(inproc, "web", "ScalingReplicaSet") == [
            f"Scaled up replica set {name1} from 0 to 3"]
        assert len(await events(inproc, name1, "SuccessfulCreate")) == 3

        # --- kubectl scale: PATCH /scale with a merge patch ---------------------------------
        scale = await ok(inproc, "PATCH", f"{DEPLOY}/scale", {"spec": {"replicas": 6}},
                         "application/merge-patch+json")
        assert scale["spec"]["replicas"] == 6
        await drive(inproc, 8)
        await settled(inproc, 6, 1)
        rs1 = (await replicasets(inproc))[0]
        assert rs1["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "6"
        await ok(inproc, "PATCH", f"{DEPLOY}/scale", {"spec": {"replicas": 3}},
                 "application/merge-patch+json")
        await drive(inproc, 8)
        await settled(inproc, 3, 1)
        assert f"Scaled down replica set {name1} from 6 to 3" in \
            await events(inproc, "web", "ScalingReplicaSet")
        assert len(await events(inproc, name1, "SuccessfulDelete")) == 3

        # --- kubectl set image: strategic merge patch of the template -----------------------
        await ok(inproc, "PATCH", DEPLOY, {
            "metadata": {"annotations": {"kubernetes.io/change-cause": "set image 1.16"}},
            "spec": {"template": {"spec": {"containers": [{"name": "web",
                                                           "image": "nginx:1.16"}]}}}},
            "application/strategic-merge-patch+json")
        d = await drive(inproc, 4)  # 3 replicas + maxSurge 25% (1)
        await settled(inproc, 3, 2)
        revs = by_revision(await replicasets(inproc))
        assert set(revs) == {"1", "2"} and revs["1"]["metadata"]["name"] == name1
        assert revs["1"]["spec"]["replicas"] == 0 and revs["2"]["spec"]["replicas"] == 3
        ann2 = revs["2"]["metadata"]["annotations"]
        assert ann2["kubernetes.io/change-cause"] == "set image 1.16"
        assert ann2["deployment.kubernetes.io/desired-replicas"] == "3"
        assert ann2["deployment.kubernetes.io/max-replicas"] == "4"
        assert revs["2"]["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.16"
        assert d["metadata"]["annotations"][REVISION] == "2"
        name2 = revs["2"]["metadata"]["name"]
        assert {p["metadata"]["ownerReferences"][0]["name"] for p in await pods(inproc)} == {name2}

        # --- kubectl rollout undo: JSON patch of template and annotations -------------------
        d = await ok(inproc, "GET", DEPLOY)
        target = revs["1"]
        template = copy.deepcopy(target["spec"]["template"])
        del template["metadata"]["labels"]["pod-template-hash"]
        annotations = {k: v for k, v in d["metadata"]["annotations"].items() if k in SKIP}
        annotations.update({k: v for k, v in target["metadata"]["annotations"].items()
                            if k not in SKIP})
        await ok(inproc, "PATCH", DEPLOY, [
            {"op": "replace", "path": "/spec/template", "value": template},
            {"op": "replace", "path": "/metadata/annotations", "value": annotations}],
            "application/json-patch+json")
        d = await drive(inproc, 4)
        await settled(inproc, 3, 2)
        rss = await replicasets(inproc)
        revs = by_revision(rss)
        assert set(revs) == {"2", "3"}
        reused = revs["3"]
        assert reused["metadata"]["name"] == name1  # the old ReplicaSet, not a new one
        assert reused["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] \
            == "1"
        assert reused["metadata"]["annotations"]["kubernetes.io/change-cause"] == \
            "create nginx:1.14"
        assert reused["spec"]["replicas"] == 3 and revs["2"]["spec"]["replicas"] == 0
        assert d["metadata"]["annotations"][REVISION] == "3"
        assert rollout_done(d)
        st = d["status"]
        assert st["observedGeneration"] == d["metadata"]["generation"]
        assert (st["replicas"], st["updatedReplicas"], st["readyReplicas"],
                st["availableReplicas"]) == (3, 3, 3, 3)
        assert "unavailableReplicas" not in st
        assert [c["type"] for c in st["conditions"]] == ["Available", "Progressing"]
        assert {c["reason"] for c in st["conditions"]} == {"MinimumReplicasAvailable",
                                                            "NewReplicaSetAvailable"}
        for rs in rss:
            assert rs["status"]["observedGeneration"] == rs["metadata"]["generation"]


async def test_controllers_survive_compaction_and_410(inproc: InProcess) -> None:
    store = inproc.api.store  # type: ignore[attr-defined]
    async with RunningControllers(inproc, CONTROLLERS):
        await ok(inproc, "POST", f"{APPS}/deployments", deployment_body(2))
        await drive(inproc, 3)
        old_rv = str(await store.current_revision())
        # compaction under running watches: they go on; later watch restarts would 410
        await store.compact(await store.current_revision())
        await ok(inproc, "PATCH", f"{DEPLOY}/scale", {"spec": {"replicas": 4}},
                 "application/merge-patch+json")
        await drive(inproc, 5)
        await settled(inproc, 4, 1)

    # While no controller runs: scale up and lose a pod, then compact that history away.
    await ok(inproc, "PATCH", f"{DEPLOY}/scale", {"spec": {"replicas": 5}},
             "application/merge-patch+json")
    victim = (await pods(inproc))[0]["metadata"]["name"]
    await ok(inproc, "DELETE", f"{NS}/pods/{victim}")
    await store.compact(await store.current_revision())

    # Controllers resuming from a compacted resourceVersion: every watch gets 410 and the
    # informers relist; the result must converge without duplicate ReplicaSets or pods.
    rc = RunningControllers(inproc, CONTROLLERS)
    kinds = [by_resource("apps", "v1", "deployments"), by_resource("apps", "v1", "replicasets"),
             by_resource("", "v1", "pods")]
    for kind in kinds:
        assert kind is not None
        rc.manager.informers.get(kind).resource_version = old_rv
    async with rc:
        d = await drive(inproc, 6)
        assert d["spec"]["replicas"] == 5
        await settled(inproc, 5, 1)
        names = [p["metadata"]["name"] for p in await pods(inproc)]
        assert victim not in names and len(set(names)) == 5
        for kind in kinds:
            assert kind is not None
            assert int(rc.manager.informers.get(kind).resource_version) > int(old_rv)


async def test_recreate_replaces_all_pods_after_old_ones_are_gone(inproc: InProcess) -> None:
    body = deployment_body(2)
    body["spec"]["strategy"] = {"type": "Recreate"}
    async with RunningControllers(inproc, CONTROLLERS):
        await ok(inproc, "POST", f"{APPS}/deployments", body)
        await drive(inproc, 2)
        old_pods = {p["metadata"]["name"] for p in await pods(inproc)}
        await ok(inproc, "PATCH", DEPLOY, {"spec": {"template": {"spec": {"containers": [
            {"name": "web", "image": "nginx:1.16"}]}}}}, "application/strategic-merge-patch+json")
        d = await drive(inproc, 2)  # never more than 2 pods asked for: old go first
        await settled(inproc, 2, 2)
        assert not old_pods & {p["metadata"]["name"] for p in await pods(inproc)}
        assert d["metadata"]["annotations"][REVISION] == "2"
        msgs = await events(inproc, "web", "ScalingReplicaSet")
        revs = by_revision(await replicasets(inproc))
        assert msgs[-2:] == [
            f"Scaled down replica set {revs['1']['metadata']['name']} from 2 to 0",
            f"Scaled up replica set {revs['2']['metadata']['name']} from 0 to 2"]


async def test_replicaset_adopts_and_releases_pods(inproc: InProcess) -> None:
    """A bare ReplicaSet: adopts a matching orphan (keeping its other, non-controller
    owner), and releases a pod whose labels stop matching, replacing it."""
    other_owner = {"apiVersion": "v1", "kind": "ConfigMap", "name": "keep", "uid": "cm-uid"}
    await ok(inproc, "POST", f"{NS}/pods", {
        "metadata": {"name": "orphan", "labels": {"app": "web"},
                     "ownerReferences": [other_owner]},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.14"}]}})
    async with RunningControllers(inproc, CONTROLLERS):
        rs = await ok(inproc, "POST", f"{APPS}/replicasets", {
            "metadata": {"name": "bare"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web",
                                                           "image": "nginx:1.14"}]}}}})
        await settled(inproc, 2, 1)
        orphan = await ok(inproc, "GET", f"{NS}/pods/orphan")
        refs = {r["uid"]: r for r in orphan["metadata"]["ownerReferences"]}
        assert refs.keys() == {"cm-uid", rs["metadata"]["uid"]}
        assert refs[rs["metadata"]["uid"]]["controller"] is True
        await ok(inproc, "PATCH", f"{NS}/pods/orphan", {"metadata": {"labels": {"app": "debug"}}},
                 "application/merge-patch+json")
        await settled(inproc, 2, 1)  # a replacement for the released pod
        released = await ok(inproc, "GET", f"{NS}/pods/orphan")
        assert released["metadata"]["ownerReferences"] == [other_owner]
        bare = await ok(inproc, "GET", f"{APPS}/replicasets/bare")
        assert bare["status"]["replicas"] == 2 and bare["status"]["fullyLabeledReplicas"] == 2
