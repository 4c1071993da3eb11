"""The API server in-process (aiohttp test server, plain HTTP): protocol details."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from conftest import InProcess

SVCS = "/api/v1/namespaces/default/services"


def _svc(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "labels": labels or {"app": name}},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}}


async def _call(s: InProcess, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None) -> tuple[int, Any]:
    h = dict(s.headers)
    h.update(headers or {})
    data = json.dumps(body) if body is not None else None
    if data is not None:
        h.setdefault("Content-Type", "application/json")
    resp = await s.client.request(method, path, data=data, headers=h)  # type: ignore[attr-defined]
    text = await resp.text()
    return resp.status, json.loads(text) if text else None


async def _watch_lines(s: InProcess, query: str, n: int, timeout: float = 5) -> list[Any]:
    resp = await s.client.get(f"{SVCS}?watch=true&{query}",  # type: ignore[attr-defined]
                              headers=s.headers)
    out: list[Any] = []
    try:
        async with asyncio.timeout(timeout):
            while len(out) < n:
                line = await resp.content.readline()
                if not line:
                    break
                out.append(json.loads(line))
    finally:
        resp.close()
    return out


async def test_watch_from_compacted_revision_gets_410(inproc: InProcess) -> None:
    for i in range(5):
        assert (await _call(inproc, "POST", SVCS, _svc(f"w{i}")))[0] == 201
    store = inproc.api.store  # type: ignore[attr-defined]
    rev = await store.current_revision()
    await store.compact(rev)
    events = await _watch_lines(inproc, "resourceVersion=2", 1)
    assert events[0]["type"] == "ERROR"
    assert events[0]["object"]["code"] == 410 and events[0]["object"]["reason"] == "Expired"
    # relisting gives a resourceVersion a watch can resume from
    _, lst = await _call(inproc, "GET", SVCS)
    task = asyncio.create_task(_watch_lines(
        inproc, f"resourceVersion={lst['metadata']['resourceVersion']}", 1))
    await asyncio.sleep(0.2)
    await _call(inproc, "POST", SVCS, _svc("after"))
    events = await task
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "after")]


async def test_watch_with_selector_reports_leaving_and_entering(inproc: InProcess) -> None:
    await _call(inproc, "POST", SVCS, _svc("sel", tier="fe"))
    task = asyncio.create_task(_watch_lines(inproc, "labelSelector=tier%3Dfe", 3))
    await asyncio.sleep(0.2)
    merge = {"Content-Type": "application/merge-patch+json"}
    await _call(inproc, "PATCH", f"{SVCS}/sel", {"metadata": {"labels": {"tier": "be"}}}, merge)
    await _call(inproc, "PATCH", f"{SVCS}/sel", {"metadata": {"labels": {"tier": "fe"}}}, merge)
    events = await task
    assert [e["type"] for e in events] == ["ADDED", "DELETED", "ADDED"]


async def test_bookmarks_and_table_watch(inproc: InProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    from svcnet.apiserver import watchstream
    monkeypatch.setattr(watchstream, "BOOKMARK_INTERVAL", 0.2)
    monkeypatch.setattr(watchstream, "POLL", 0.1)
    await _call(inproc, "POST", SVCS, _svc("bm"))
    events = await _watch_lines(inproc, "allowWatchBookmarks=true", 2)
    assert events[0]["type"] == "ADDED" and events[1]["type"] == "BOOKMARK"
    assert int(events[1]["object"]["metadata"]["resourceVersion"]) > 0
    resp = await inproc.client.get(f"{SVCS}?watch=true&timeoutSeconds=1", headers=dict(  # type: ignore[attr-defined]
        inproc.headers, Accept="application/json;as=Table;v=v1;g=meta.k8s.io"))
    first = json.loads(await resp.content.readline())
    resp.close()
    assert first["object"]["kind"] == "Table"
    assert first["object"]["rows"][0]["cells"][0] == "bm"


async def test_list_paging_keeps_resource_version(inproc: InProcess) -> None:
    for i in range(7):
        await _call(inproc, "POST", SVCS, _svc(f"p{i}"))
    names, token, rvs = [], "", set()
    while True:
        q = f"?limit=3&continue={token}" if token else "?limit=3"
        _, page = await _call(inproc, "GET", SVCS + q)
        names += [i["metadata"]["name"] for i in page["items"]]
        rvs.add(page["metadata"]["resourceVersion"])
        token = page["metadata"].get("continue", "")
        if not token:
            break
    assert names == [f"p{i}" for i in range(7)] and len(rvs) == 1
    code, st = await _call(inproc, "GET", SVCS + "?limit=3&continue=garbage!")
    assert code == 400


async def test_node_token_is_limited(inproc: InProcess, tmp_path: Any) -> None:
    tokens = inproc.api.tokens  # type: ignore[attr-defined]
    node_token = tokens.add("system:node:n1", ("system:nodes", "system:authenticated"))
    node = {"Authorization": f"Bearer {node_token}"}
    assert (await _call(inproc, "GET", SVCS, headers=node))[0] == 200
    code, st = await _call(inproc, "POST", SVCS, _svc("nope"), headers=node)
    assert code == 403 and st["reason"] == "Forbidden"
    assert st["message"] == ('services is forbidden: User "system:node:n1" cannot create '
                             'resource "services" in API group "" in the namespace "default"')
    n1 = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}
    assert (await _call(inproc, "POST", "/api/v1/nodes", n1, headers=node))[0] == 201
    n2 = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n2"}}
    await _call(inproc, "POST", "/api/v1/nodes", n2)
    code, _ = await _call(inproc, "PATCH", "/api/v1/nodes/n2", {"metadata": {"labels": {"a": "b"}}},
                          headers=dict(node, **{"Content-Type": "application/merge-patch+json"}))
    assert code == 403
    assert (await _call(inproc, "DELETE", "/api/v1/namespaces/default", headers=node))[0] == 403
    code, st = await _call(inproc, "GET", SVCS, headers={"Authorization": "Bearer nope"})
    assert code == 401


async def test_namespace_rules(inproc: InProcess) -> None:
    code, st = await _call(inproc, "POST", "/api/v1/namespaces/missing/services", _svc("x"))
    assert code == 404 and st["message"] == 'namespaces "missing" not found'
    await _call(inproc, "POST", "/api/v1/namespaces",
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed",
                                                                     "finalizers": ["x.io/hold"]}})
    _, ns = await _call(inproc, "GET", "/api/v1/namespaces/doomed")
    assert ns["status"]["phase"] == "Active"
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "doomed"}
    await _call(inproc, "POST", "/api/v1/namespaces/doomed/configmaps",
                {"metadata": {"name": "c"}, "data": {"a": "b"}})
    code, ns = await _call(inproc, "DELETE", "/api/v1/namespaces/doomed")
    assert code == 200 and ns["status"]["phase"] == "Terminating"
    code, st = await _call(inproc, "POST", "/api/v1/namespaces/doomed/services", _svc("late"))
    assert code == 403 and "because it is being terminated" in st["message"]
    for _ in range(50):  # content goes; the metadata finalizer keeps the namespace
        _, cms = await _call(inproc, "GET", "/api/v1/namespaces/doomed/configmaps")
        _, ns = await _call(inproc, "GET", "/api/v1/namespaces/doomed")
        if not cms["items"] and not ns["spec"].get("finalizers"):
            break
        await asyncio.sleep(0.1)
    assert cms["items"] == [] and ns["metadata"]["finalizers"] == ["x.io/hold"]
    merge = {"Content-Type": "application/merge-patch+json"}
    await _call(inproc, "PATCH", "/api/v1/namespaces/doomed",
                {"metadata": {"finalizers": None}}, merge)
    code, _ = await _call(inproc, "GET", "/api/v1/namespaces/doomed")
    assert code == 404


async def test_scale_and_status_subresources(inproc: InProcess) -> None:
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
           "spec": {"selector": {"matchLabels": {"app": "d"}}, "template": {
               "metadata": {"labels": {"app": "d"}},
               "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}
    base = "/apis/apps/v1/namespaces/default/deployments"
    code, d = await _call(inproc, "POST", base, dep | {"status": {"replicas": 9}})
    assert code == 201 and d["status"] == {} and d["metadata"]["generation"] == 1
    code, scale = await _call(inproc, "GET", f"{base}/d/scale")
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 1
    assert scale["status"]["selector"] == "app=d"
    code, scale = await _call(inproc, "PATCH", f"{base}/d/scale", {"spec": {"replicas": 3}},
                              {"Content-Type": "application/merge-patch+json"})
    assert code == 200 and scale["spec"]["replicas"] == 3
    _, d = await _call(inproc, "GET", f"{base}/d")
    assert d["spec"]["replicas"] == 3 and d["metadata"]["generation"] == 2
    # /status changes only status; the main resource cannot change status
    d["status"] = {"replicas": 3, "readyReplicas": 2}
    d["spec"]["replicas"] = 7
    code, out = await _call(inproc, "PUT", f"{base}/d/status", d)
    assert out["status"]["readyReplicas"] == 2 and out["spec"]["replicas"] == 3
    out["status"] = {}
    code, out = await _call(inproc, "PUT", f"{base}/d", out)
    assert out["status"]["readyReplicas"] == 2
    code, st = await _call(inproc, "PATCH", f"{base}/d/scale", {"spec": {"replicas": -1}},
                           {"Content-Type": "application/merge-patch+json"})
    assert code == 422 and st["details"]["causes"][0]["field"] == "spec.replicas"


async def test_discovery_aggregated_and_legacy(inproc: InProcess) -> None:
    agg = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    resp = await inproc.client.get("/apis", headers=dict(inproc.headers, Accept=agg))  # type: ignore[attr-defined]
    assert "as=APIGroupDiscoveryList" in resp.headers["Content-Type"]
    resp = await inproc.client.get("/apis", headers=inproc.headers)  # type: ignore[attr-defined]
    assert (await resp.json())["kind"] == "APIGroupList"
    code, doc = await _call(inproc, "GET", "/openapi/v3")
    assert "api/v1" in doc["paths"]
    code, doc = await _call(inproc, "GET", doc["paths"]["apis/apps/v1"]["serverRelativeURL"])
    assert code == 200 and doc["openapi"].startswith("3.")
    resp = await inproc.client.get("/version")  # type: ignore[attr-defined]
    assert (await resp.json())["gitVersion"].startswith("v1.32.")


async def test_delete_collection_and_generate_name(inproc: InProcess) -> None:
    for i in range(3):
        await _call(inproc, "POST", SVCS, _svc(f"dc{i}", group="x"))
    await _call(inproc, "POST", SVCS, _svc("keep", group="y"))
    code, gen = await _call(inproc, "POST", SVCS, {"metadata": {"generateName": "gen-",
                                                                "labels": {"group": "y"}},
                                                   "spec": {"ports": [{"port": 1}]}})
    assert code == 201 and gen["metadata"]["name"].startswith("gen-")
    assert len(gen["metadata"]["name"]) == len("gen-") + 5
    code, out = await _call(inproc, "DELETE", f"{SVCS}?labelSelector=group%3Dx")
    assert code == 200 and len(out["items"]) == 3
    _, lst = await _call(inproc, "GET", SVCS)
    assert sorted(i["metadata"]["name"] for i in lst["items"]) == sorted(
        ["keep", gen["metadata"]["name"]])
