"""Scheduler, pods/binding and the garbage collector through the API, server in-process."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from typing import Any

import pytest
from conftest import InProcess, RunningControllers, eventually

from svcnet.api.kinds import by_resource
from svcnet.client.local import LocalClient
from svcnet.controllers.base import SharedInformers
from svcnet.controllers.gc import Delete, GarbageCollector, Ref
from svcnet.controllers.scheduler import Scheduler

Obj = dict[str, Any]
NS = "/api/v1/namespaces/default"
PODS, CMS, EVENTS = f"{NS}/pods", f"{NS}/configmaps", f"{NS}/events"
RSS = "/apis/apps/v1/namespaces/default/replicasets"
DEPLOYS = "/apis/apps/v1/namespaces/default/deployments"
CONTROLLERS = [Scheduler, GarbageCollector]


async def call(s: InProcess, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    h = dict(s.headers)
    data = json.dumps(body) if body is not None else None
    if data is not None:
        h["Content-Type"] = "application/json"
    resp = await s.client.request(method, path, data=data, headers=h)  # type: ignore[attr-defined]
    text = await resp.text()
    return resp.status, json.loads(text) if text else None


async def ok(s: InProcess, method: str, path: str, body: Any = None) -> Any:
    code, out = await call(s, method, path, body)
    assert code < 300, (method, path, code, out)
    return out


async def add_node(s: InProcess, name: str, labels: dict[str, str] | None = None,
                   ready: bool = True) -> None:
    """POST the Node, then PUT its status with a Ready condition (as an agent would)."""
    node = await ok(s, "POST", "/api/v1/nodes", {"metadata": {"name": name, "labels": {
        "kubernetes.io/hostname": name, **(labels or {})}}})
    if ready:
        await set_ready(s, node)


async def set_ready(s: InProcess, node: Obj) -> None:
    node["status"] = {"conditions": [{"type": "Ready", "status": "True",
                                      "reason": "KubeletReady"}]}
    await ok(s, "PUT", f"/api/v1/nodes/{node['metadata']['name']}/status", node)


def owner_ref(o: Obj, block: bool = True) -> Obj:
    return {"apiVersion": o["apiVersion"], "kind": o["kind"], "name": o["metadata"]["name"],
            "uid": o["metadata"]["uid"], "controller": True, "blockOwnerDeletion": block}


def pod_body(name: str, owner: Obj | None = None, **spec: Any) -> Obj:
    meta: Obj = {"name": name, "labels": {"app": "web"}}
    if owner is not None:
        meta["ownerReferences"] = [owner_ref(owner)]
    return {"metadata": meta, "spec": {"containers": [{"name": "c", "image": "busybox"}],
                                       **spec}}


def rs_body(name: str = "web-rs") -> Obj:
    return {"metadata": {"name": name}, "spec": {
        "replicas": 3, "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}


async def events_for(s: InProcess, name: str, reason: str) -> list[Obj]:
    items = (await ok(s, "GET", EVENTS))["items"]
    return [e for e in items if e["involvedObject"]["name"] == name and e["reason"] == reason]


async def exists(s: InProcess, path: str) -> bool:
    code, _ = await call(s, "GET", path)
    assert code in (200, 404)
    return code == 200


# --- scheduler -----------------------------------------------------------------------------

async def test_pods_are_bound_spread_and_reported(inproc: InProcess) -> None:
    await add_node(inproc, "node-1")
    await add_node(inproc, "node-2")
    rs = await ok(inproc, "POST", RSS, rs_body())
    async with RunningControllers(inproc, CONTROLLERS):
        for i in range(3):
            await ok(inproc, "POST", PODS, pod_body(f"web-{i}", rs))

        async def bound() -> Counter[str]:
            items = (await ok(inproc, "GET", PODS))["items"]
            nodes = Counter(p["spec"].get("nodeName") for p in items)
            assert None not in nodes, nodes
            return nodes
        await eventually(bound)
        assert sorted((await bound()).values()) == [1, 2]
        pod = await ok(inproc, "GET", f"{PODS}/web-0")
        cond = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
        assert cond["status"] == "True" and cond["lastTransitionTime"]

        async def scheduled_event() -> None:
            evs = await events_for(inproc, "web-0", "Scheduled")
            assert len(evs) == 1
            assert evs[0]["type"] == "Normal"
            assert evs[0]["message"] == \
                f"Successfully assigned default/web-0 to {pod['spec']['nodeName']}"
            assert evs[0]["source"] == {"component": "default-scheduler"}
        await eventually(scheduled_event)


async def test_unschedulable_pod_waits_for_a_matching_node(
        inproc: InProcess, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="svcnet.scheduler")
    await add_node(inproc, "node-1")
    await add_node(inproc, "node-2")
    async with RunningControllers(inproc, CONTROLLERS):
        await ok(inproc, "POST", PODS, pod_body("picky", nodeSelector={"disk": "ssd"}))
        want = ("0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector. "
                "preemption: 0/2 nodes are available: 2 Preemption is not helpful for "
                "scheduling.")

        async def failed() -> None:
            evs = await events_for(inproc, "picky", "FailedScheduling")
            assert [(e["type"], e["message"]) for e in evs] == [("Warning", want)]
            pod = await ok(inproc, "GET", f"{PODS}/picky")
            assert {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": want}.items() <= pod["status"]["conditions"][0].items()
        await eventually(failed)
        # retried on a Node change, failing the same way: no second log line
        node1 = await ok(inproc, "GET", "/api/v1/nodes/node-1")
        node1["metadata"]["labels"]["rack"] = "r1"
        await ok(inproc, "PUT", "/api/v1/nodes/node-1", node1)
        await asyncio.sleep(0.3)
        assert [r.getMessage() for r in caplog.records if "picky" in r.getMessage()] == \
            [f"default/picky: {want}"]
        # a matching Node that is not Ready yet does not take it...
        await add_node(inproc, "node-3", {"disk": "ssd"}, ready=False)

        async def unready() -> None:
            evs = await events_for(inproc, "picky", "FailedScheduling")
            assert any("1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }"
                       in e["message"] for e in evs)
        await eventually(unready)
        assert not (await ok(inproc, "GET", f"{PODS}/picky"))["spec"].get("nodeName")
        # ...until it reports Ready
        await set_ready(inproc, await ok(inproc, "GET", "/api/v1/nodes/node-3"))

        async def bound() -> None:
            pod = await ok(inproc, "GET", f"{PODS}/picky")
            assert pod["spec"].get("nodeName") == "node-3"
        await eventually(bound)


async def test_binding_subresource(inproc: InProcess) -> None:
    await ok(inproc, "POST", PODS, pod_body("manual", schedulerName="someone-else"))
    target = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "manual"},
              "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"}}
    code, st = await call(inproc, "POST", f"{PODS}/manual/binding", target)
    assert code == 201 and st["kind"] == "Status" and st["status"] == "Success"
    pod = await ok(inproc, "GET", f"{PODS}/manual")
    assert pod["spec"]["nodeName"] == "node-1"
    assert [c["type"] for c in pod["status"]["conditions"]] == ["PodScheduled"]
    code, st = await call(inproc, "POST", f"{PODS}/manual/binding",
                          dict(target, target={"kind": "Node", "name": "node-2"}))
    assert code == 409 and st["reason"] == "Conflict"
    assert st["message"] == ('Operation cannot be fulfilled on pods/binding "manual": pod '
                             'manual is already assigned to node "node-1"')
    await ok(inproc, "POST", PODS, pod_body("other", schedulerName="someone-else"))
    code, st = await call(inproc, "POST", f"{PODS}/other/binding", target)
    assert code == 400 and st["message"] == "name in URL does not match name in Binding object"
    code, st = await call(inproc, "POST", f"{PODS}/other/binding",
                          {"metadata": {"name": "other"}, "target": {"kind": "Pod"}})
    assert code == 422 and [c["field"] for c in st["details"]["causes"]] == [
        "target.kind", "target.name"]
    code, st = await call(inproc, "POST", f"{PODS}/other/binding",
                          {"metadata": {"name": "other", "uid": "not-its-uid"},
                           "target": {"name": "node-1"}})
    assert code == 409 and "Precondition failed: UID in precondition" in st["message"]
    code, _ = await call(inproc, "POST", f"{PODS}/missing/binding",
                         {"metadata": {"name": "missing"}, "target": {"name": "node-1"}})
    assert code == 404
    code, _ = await call(inproc, "GET", f"{PODS}/other/binding")
    assert code == 405
    code, _ = await call(inproc, "POST", f"{CMS}/x/binding", target)
    assert code == 404  # only Pods have it


# --- garbage collector ---------------------------------------------------------------------

async def owner_and_dependents(s: InProcess) -> tuple[Obj, list[str]]:
    owner = await ok(s, "POST", CMS, {"metadata": {"name": "owner"}})
    names = ["dep-1", "dep-2"]
    for n in names:
        await ok(s, "POST", CMS, {"metadata": {"name": n, "ownerReferences": [
            owner_ref(owner)]}, "data": {"k": "v"}})
    return owner, names


async def test_background_deletion_removes_dependents(inproc: InProcess) -> None:
    _, deps = await owner_and_dependents(inproc)
    async with RunningControllers(inproc, CONTROLLERS):
        code, st = await call(inproc, "DELETE", f"{CMS}/owner")
        assert code == 200 and st["status"] == "Success"  # gone at once

        async def collected() -> None:
            for n in deps:
                assert not await exists(inproc, f"{CMS}/{n}")
        await eventually(collected)


async def test_orphan_deletion_keeps_dependents_without_owner(inproc: InProcess) -> None:
    _, deps = await owner_and_dependents(inproc)
    code, out = await call(inproc, "DELETE", f"{CMS}/owner", {"propagationPolicy": "Orphan"})
    assert code == 200 and out["metadata"]["finalizers"] == ["orphan"]
    assert out["metadata"]["deletionTimestamp"]
    async with RunningControllers(inproc, CONTROLLERS):
        async def orphaned() -> None:
            assert not await exists(inproc, f"{CMS}/owner")
            for n in deps:
                dep = await ok(inproc, "GET", f"{CMS}/{n}")
                assert "ownerReferences" not in dep["metadata"]
        await eventually(orphaned)


async def test_foreground_deletion_removes_dependents_first(inproc: InProcess) -> None:
    rs = await ok(inproc, "POST", RSS, rs_body())
    # bound Pods stay Terminating until their node confirms, so the order is observable
    for i in range(2):
        await ok(inproc, "POST", PODS, pod_body(f"web-{i}", rs, nodeName="node-1"))
    async with RunningControllers(inproc, CONTROLLERS):
        code, out = await call(inproc, "DELETE", f"{RSS}/web-rs?propagationPolicy=Foreground")
        assert code == 200 and out["metadata"]["finalizers"] == ["foregroundDeletion"]

        async def terminating() -> None:
            for i in range(2):
                pod = await ok(inproc, "GET", f"{PODS}/web-{i}")
                assert pod["metadata"].get("deletionTimestamp")
        await eventually(terminating)
        assert await exists(inproc, f"{RSS}/web-rs")  # held by its blocking dependents
        await ok(inproc, "DELETE", f"{PODS}/web-0", {"gracePeriodSeconds": 0})
        assert await exists(inproc, f"{RSS}/web-rs")
        await ok(inproc, "DELETE", f"{PODS}/web-1", {"gracePeriodSeconds": 0})

        async def gone() -> None:
            assert not await exists(inproc, f"{RSS}/web-rs")
        await eventually(gone)


async def test_foreground_cascades_through_replicaset(inproc: InProcess) -> None:
    deploy = await ok(inproc, "POST", DEPLOYS, {"metadata": {"name": "web"},
                                                "spec": rs_body()["spec"]})
    rs_obj = rs_body()
    rs_obj["metadata"]["ownerReferences"] = [owner_ref(deploy)]
    rs = await ok(inproc, "POST", RSS, rs_obj)
    await ok(inproc, "POST", PODS, pod_body("web-0", rs, nodeName="node-1"))
    async with RunningControllers(inproc, CONTROLLERS):
        await ok(inproc, "DELETE", f"{DEPLOYS}/web", {"propagationPolicy": "Foreground"})

        async def rs_waits() -> None:
            mid = await ok(inproc, "GET", f"{RSS}/web-rs")
            assert mid["metadata"].get("deletionTimestamp")
            assert mid["metadata"]["finalizers"] == ["foregroundDeletion"]
            pod = await ok(inproc, "GET", f"{PODS}/web-0")
            assert pod["metadata"].get("deletionTimestamp")
        await eventually(rs_waits)
        assert await exists(inproc, f"{DEPLOYS}/web")
        await ok(inproc, "DELETE", f"{PODS}/web-0", {"gracePeriodSeconds": 0})

        async def all_gone() -> None:
            for path in (f"{DEPLOYS}/web", f"{RSS}/web-rs", f"{PODS}/web-0"):
                assert not await exists(inproc, path)
        await eventually(all_gone)


async def test_delete_policies_on_the_api(inproc: InProcess) -> None:
    """The API server side alone (no GC running): finalizers and when objects go."""
    await ok(inproc, "POST", CMS, {"metadata": {"name": "a"}})
    code, out = await call(inproc, "DELETE", f"{CMS}/a", {"orphanDependents": True})
    assert code == 200 and out["metadata"]["finalizers"] == ["orphan"]
    # deleting again with another policy swaps the finalizer...
    code, out = await call(inproc, "DELETE", f"{CMS}/a", {"propagationPolicy": "Foreground"})
    assert out["metadata"]["finalizers"] == ["foregroundDeletion"]
    # ...and Background removes it, so the object goes now
    code, out = await call(inproc, "DELETE", f"{CMS}/a", {"propagationPolicy": "Background"})
    assert code == 200 and out["status"] == "Success"
    assert not await exists(inproc, f"{CMS}/a")
    code, out = await call(inproc, "DELETE", f"{CMS}/nope", {"propagationPolicy": "Sideways"})
    assert code == 400


async def test_gc_confirms_owner_absence_before_deleting(inproc: InProcess) -> None:
    """An owner the caches have not seen yet is looked up live and spares its dependent."""
    owner = await ok(inproc, "POST", CMS, {"metadata": {"name": "owner"}})
    dep = await ok(inproc, "POST", CMS, {"metadata": {"name": "dep", "ownerReferences": [
        owner_ref(owner)]}})
    client = LocalClient(inproc.api.registry)  # type: ignore[attr-defined]
    gc = GarbageCollector(client, SharedInformers(client))
    cms = by_resource("", "v1", "configmaps")
    assert cms is not None
    owner_ref_ = Ref(cms, "default", "owner", owner["metadata"]["uid"])
    target = Ref(cms, "default", "dep", dep["metadata"]["uid"])
    await gc._apply(Delete(target, "Background", (owner_ref_,)))
    assert await exists(inproc, f"{CMS}/dep")
    await ok(inproc, "DELETE", f"{CMS}/owner")
    await gc._apply(Delete(target, "Background", (owner_ref_,)))
    assert not await exists(inproc, f"{CMS}/dep")
