"""EndpointSlice, Endpoints and mirroring controllers against the in-process API server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import InProcess, RunningControllers, eventually

from svcnet.api import errors
from svcnet.api.kinds import by_resource
from svcnet.client.informer import Informer
from svcnet.client.local import LocalClient
from svcnet.controllers.endpoints import EndpointsController
from svcnet.controllers.endpointslice import EndpointSliceController
from svcnet.controllers.mirroring import EndpointSliceMirroringController

Obj = dict[str, Any]
SERVICES = by_resource("", "v1", "services")
PODS = by_resource("", "v1", "pods")
NODES = by_resource("", "v1", "nodes")
ENDPOINTS = by_resource("", "v1", "endpoints")
SLICES = by_resource("discovery.k8s.io", "v1", "endpointslices")
EVENTS = by_resource("", "v1", "events")
NS = "default"


class QuickSlices(EndpointSliceController):
    """Diagnoses become events at once (the default waits 10 s for things to settle)."""

    diagnosis_delay = 0.0
    slice_event_delay = 0.1


CONTROLLERS: list[object] = [QuickSlices, EndpointsController, EndpointSliceMirroringController]


def _service(name: str, selector: dict[str, str] | None, **spec: Any) -> Obj:
    body: Obj = {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    if selector is not None:
        body["selector"] = selector
    body.update(spec)
    return {"metadata": {"name": name, "labels": {"team": "a"}}, "spec": body}


async def _node(client: LocalClient, name: str, zone: str) -> None:
    assert NODES
    await client.create(NODES, None, {"metadata": {"name": name, "labels": {
        "topology.kubernetes.io/zone": zone}}})


async def _pod(client: LocalClient, name: str, ip: str, app: str = "web",
               ready: bool = True) -> None:
    assert PODS
    await client.create(PODS, NS, {"metadata": {"name": name, "labels": {"app": app}},
                                   "spec": {"nodeName": "n1", "containers": [
                                       {"name": "c", "image": "busybox:1.36"}]}})
    await _set_ready(client, name, ready, ip)


async def _set_ready(client: LocalClient, name: str, ready: bool, ip: str | None = None) -> None:
    assert PODS
    status: Obj = {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True" if ready else "False"}]}
    if ip:
        status.update(podIP=ip, podIPs=[{"ip": ip}])
    await client.patch(PODS, NS, name, {"status": status}, subresource="status")


async def _slices(client: LocalClient, service: str, managed_by: str = "") -> list[Obj]:
    assert SLICES
    sel = f"kubernetes.io/service-name={service}"
    if managed_by:
        sel += f",endpointslice.kubernetes.io/managed-by={managed_by}"
    items, _ = await client.list(SLICES, NS, label_selector=sel)
    return items


def _ready_map(slices: list[Obj]) -> dict[str, bool]:
    return {e["targetRef"]["name"]: e["conditions"]["ready"]
            for s in slices for e in s.get("endpoints") or []}


async def _endpoints(client: LocalClient, name: str) -> Obj | None:
    assert ENDPOINTS
    try:
        return await client.get(ENDPOINTS, NS, name)
    except errors.StatusError as e:
        if e.code == 404:
            return None
        raise


def _ips(ep: Obj | None, field: str = "addresses") -> list[str]:
    return [a["ip"] for ss in (ep or {}).get("subsets") or [] for a in ss.get(field) or []]


async def test_service_lifecycle_follows_pods(inproc: InProcess) -> None:
    async with RunningControllers(inproc, CONTROLLERS) as rc:
        client = rc.client
        assert SERVICES and PODS
        await _node(client, "n1", "zone-a")
        await client.create(SERVICES, NS, _service("web", {"app": "web"}))
        await _pod(client, "a", "10.244.1.2")
        await _pod(client, "b", "10.244.1.3")

        async def both_ready() -> None:
            slices = await _slices(client, "web")
            assert len(slices) == 1 and _ready_map(slices) == {"a": True, "b": True}
            ep = await _endpoints(client, "web")
            assert sorted(_ips(ep)) == ["10.244.1.2", "10.244.1.3"]
        await eventually(both_ready)
        (sl,) = await _slices(client, "web")
        assert sl["metadata"]["labels"] == {
            "team": "a", "kubernetes.io/service-name": "web",
            "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}
        assert sl["metadata"]["ownerReferences"][0]["kind"] == "Service"
        assert sl["ports"] == [{"name": "http", "protocol": "TCP", "port": 8080}]
        assert {e["zone"] for e in sl["endpoints"]} == {"zone-a"}
        ep = await _endpoints(client, "web")
        assert ep is not None and ep["metadata"]["labels"] == {"team": "a"}

        await _set_ready(client, "b", False)

        async def b_unready() -> None:
            slices = await _slices(client, "web")
            assert _ready_map(slices) == {"a": True, "b": False}
            assert slices[0]["metadata"]["name"] == sl["metadata"]["name"]  # updated in place
            assert _ips(await _endpoints(client, "web"), "notReadyAddresses") == ["10.244.1.3"]
        await eventually(b_unready)

        await client.delete(PODS, NS, "a")  # graceful: a node owns it, so it is terminating

        async def a_terminating() -> None:
            (slice_,) = await _slices(client, "web")
            eps = {e["targetRef"]["name"]: e for e in slice_["endpoints"]}
            assert eps["a"]["conditions"] == {"ready": False, "serving": True, "terminating": True}
            assert _ips(await _endpoints(client, "web")) == []
        await eventually(a_terminating)

        await client.delete(PODS, NS, "a", grace_seconds=0)
        await eventually(lambda: _check_names(client, "web", {"b"}))

        await client.delete(SERVICES, NS, "web")

        async def all_gone() -> None:
            assert await _slices(client, "web") == []
            assert await _endpoints(client, "web") is None
        await eventually(all_gone)


async def _check_names(client: LocalClient, service: str, names: set[str]) -> None:
    assert set(_ready_map(await _slices(client, service))) == names


async def _events(client: LocalClient, name: str) -> list[Obj]:
    assert EVENTS
    items, _ = await client.list(EVENTS, NS, field_selector=f"involvedObject.name={name}")
    return items


async def test_selector_matching_nothing_gets_an_event_and_a_placeholder(inproc: InProcess) -> None:
    async with RunningControllers(inproc, CONTROLLERS) as rc:
        client = rc.client
        assert SERVICES
        await client.create(SERVICES, NS, _service("lonely", {"app": "nothing-has-this"}))

        async def warned() -> None:
            evs = [e for e in await _events(client, "lonely") if e["reason"] == "NoMatchingPods"]
            assert len(evs) == 1 and evs[0]["type"] == "Warning"
            assert "app=nothing-has-this" in evs[0]["message"]
            assert evs[0]["source"]["component"] == "endpoint-slice-controller"
            assert evs[0]["involvedObject"]["kind"] == "Service"  # kubectl describe filters on it
            slices = await _slices(client, "lonely")
            assert len(slices) == 1 and slices[0]["endpoints"] == [] and slices[0]["ports"] == []
            ep = await _endpoints(client, "lonely")
            assert ep is not None and "subsets" not in ep
        await eventually(warned)
        # an unrelated Service update does not repeat the warning (same cause)
        await client.patch(SERVICES, NS, "lonely", {"metadata": {"labels": {"x": "y"}}})
        await asyncio.sleep(0.3)
        evs = [e for e in await _events(client, "lonely") if e["reason"] == "NoMatchingPods"]
        assert len(evs) == 1 and int(evs[0].get("count") or 1) == 1


async def test_hand_made_endpoints_are_mirrored_and_left_alone(inproc: InProcess) -> None:
    async with RunningControllers(inproc, CONTROLLERS) as rc:
        client = rc.client
        assert SERVICES and ENDPOINTS
        await client.create(SERVICES, NS, _service("db", None))
        await client.create(ENDPOINTS, NS, {"metadata": {"name": "db"}, "subsets": [
            {"addresses": [{"ip": "192.0.2.10"}], "ports": [{"name": "http", "port": 5432}]}]})
        mirror = "endpointslicemirroring-controller.k8s.io"

        async def mirrored() -> None:
            slices = await _slices(client, "db")
            assert len(slices) == 1
            labels = slices[0]["metadata"]["labels"]
            assert labels["endpointslice.kubernetes.io/managed-by"] == mirror
            assert slices[0]["metadata"]["ownerReferences"][0]["kind"] == "Endpoints"
            assert slices[0]["endpoints"] == [{"addresses": ["192.0.2.10"],
                                               "conditions": {"ready": True}}]
        await eventually(mirrored)
        await client.patch(ENDPOINTS, NS, "db", {"subsets": [
            {"addresses": [{"ip": "192.0.2.10"}, {"ip": "192.0.2.11"}],
             "ports": [{"name": "http", "port": 5432}]}]})

        async def two() -> None:
            (s,) = await _slices(client, "db")
            assert [e["addresses"][0] for e in s["endpoints"]] == ["192.0.2.10", "192.0.2.11"]
        await eventually(two)
        ep = await _endpoints(client, "db")  # the Endpoints controller did not touch it
        assert ep is not None and _ips(ep) == ["192.0.2.10", "192.0.2.11"]
        assert "labels" not in ep["metadata"]
        # the kubernetes Service's Endpoints carry skip-mirror: nothing mirrored for them
        assert await _slices(client, "kubernetes", mirror) == []
        await client.delete(ENDPOINTS, NS, "db")
        await eventually(lambda: _expect_no_slices(client, "db"))


async def _expect_no_slices(client: LocalClient, service: str) -> None:
    assert await _slices(client, service) == []


async def test_converges_without_duplicates_after_compaction(
        inproc: InProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    store = inproc.api.store  # type: ignore[attr-defined]
    lists: list[str] = []
    real_list = Informer._list

    async def counting_list(self: Informer) -> None:
        lists.append(self.kind.kind)
        await real_list(self)
    monkeypatch.setattr(Informer, "_list", counting_list)
    async with RunningControllers(inproc, CONTROLLERS) as rc:
        client = rc.client
        assert SERVICES and PODS
        await _node(client, "n1", "zone-a")
        await client.create(SERVICES, NS, _service("web", {"app": "web"}))
        # a burst of changes while the controller writes: its cache trails its own writes
        for i in range(8):
            await _pod(client, f"p{i}", f"10.244.2.{i + 1}", ready=i % 2 == 0)
        for i in range(0, 8, 3):
            await _set_ready(client, f"p{i}", False)
        await eventually(lambda: _check_ready(client, {f"p{i}": i % 2 == 0 and i % 3 != 0
                                                       for i in range(8)}))

        await store.compact(await store.current_revision())
        await _pod(client, "late", "10.244.2.50")
        await eventually(lambda: _check_ready(client, {**{f"p{i}": i % 2 == 0 and i % 3 != 0
                                                          for i in range(8)}, "late": True}))

        # blind the informers, change things, compact, then let them resume: their watch
        # from the old revision gets 410 and they relist
        await rc.manager.informers.stop()
        await client.delete(PODS, NS, "late", grace_seconds=0)
        await _set_ready(client, "p1", True)
        await _pod(client, "new", "10.244.2.60")
        await store.compact(await store.current_revision())
        lists.clear()
        rc.manager.informers.start()
        await eventually(lambda: {"Pod", "EndpointSlice", "Endpoints", "Service"} <= set(lists))
        want = {**{f"p{i}": i % 2 == 0 and i % 3 != 0 for i in range(8)}, "p1": True, "new": True}
        await eventually(lambda: _check_ready(client, want), timeout=10)
        await asyncio.sleep(0.5)  # nothing further happens
        await _check_ready(client, want)
        ep = await _endpoints(client, "web")
        assert len(_ips(ep)) == sum(want.values())


async def _check_ready(client: LocalClient, want: dict[str, bool]) -> None:
    slices = await _slices(client, "web")
    assert len(slices) == 1, [s["metadata"]["name"] for s in slices]  # no duplicates
    eps = slices[0]["endpoints"]
    assert len(eps) == len({e["addresses"][0] for e in eps})
    assert _ready_map(slices) == want
    ep = await _endpoints(client, "web")
    assert sorted(_ips(ep) + _ips(ep, "notReadyAddresses")) == sorted(
        e["addresses"][0] for e in eps)


async def test_hand_edits_and_deletions_are_repaired(inproc: InProcess) -> None:
    async with RunningControllers(inproc, CONTROLLERS) as rc:
        client = rc.client
        assert SERVICES and SLICES and ENDPOINTS
        await _node(client, "n1", "zone-a")
        await client.create(SERVICES, NS, _service("web", {"app": "web"}))
        await _pod(client, "a", "10.244.3.2")
        await eventually(lambda: _check_ready(client, {"a": True}))
        (sl,) = await _slices(client, "web")
        edited = dict(sl, endpoints=[dict(sl["endpoints"][0], conditions={"ready": False})])
        await client.update(SLICES, NS, edited)
        await eventually(lambda: _check_ready(client, {"a": True}))
        await client.delete(SLICES, NS, sl["metadata"]["name"])
        await eventually(lambda: _check_ready(client, {"a": True}))
        await client.delete(ENDPOINTS, NS, "web")
        await eventually(lambda: _check_ready(client, {"a": True}))
        assert (await _endpoints(client, "web")) is not None


async def test_pod_on_unknown_node_joins_when_the_node_appears(inproc: InProcess) -> None:
    async with RunningControllers(inproc, CONTROLLERS) as rc:
        client = rc.client
        assert SERVICES and NODES
        await client.create(SERVICES, NS, _service("web", {"app": "web"}))
        await _pod(client, "a", "10.244.4.2")  # on n1, which does not exist yet

        async def skipped() -> None:
            assert _ready_map(await _slices(client, "web")) == {}
            evs = [e for e in await _events(client, "web")
                   if e["reason"] == "FailedToUpdateEndpointSlices"]
            assert evs and "Node n1 Not Found" in evs[0]["message"]
            assert _ips(await _endpoints(client, "web")) == ["10.244.4.2"]  # no Node needed
        await eventually(skipped)
        await _node(client, "n1", "zone-b")

        async def joined() -> None:
            (s,) = await _slices(client, "web")
            assert [(e["targetRef"]["name"], e.get("zone")) for e in s["endpoints"]] == [
                ("a", "zone-b")]
        await eventually(joined)
        await client.patch(NODES, None, "n1", {"metadata": {"labels": {
            "topology.kubernetes.io/zone": "zone-c"}}})

        async def rezoned() -> None:
            (s,) = await _slices(client, "web")
            assert s["endpoints"][0]["zone"] == "zone-c"
        await eventually(rezoned)
