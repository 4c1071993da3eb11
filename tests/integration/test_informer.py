"""Informers over both transports: list, watch, and relist after a 410."""

from __future__ import annotations

import asyncio
from typing import Any

from conftest import InProcess, eventually

from svcnet.api.kinds import by_resource
from svcnet.client.informer import Informer
from svcnet.client.local import LocalClient

SERVICES = by_resource("", "v1", "services")


def _svc(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"ports": [{"port": 80}]}}


async def test_informer_tracks_changes_and_relists_after_compaction(inproc: InProcess) -> None:
    assert SERVICES is not None
    client = LocalClient(inproc.api.registry)  # type: ignore[attr-defined]
    await client.create(SERVICES, "default", _svc("a"))
    inf = Informer(client, SERVICES, "default")
    events: list[tuple[str, str]] = []
    inf.add_handler(lambda t, old, new: events.append((t, (new or old or {})["metadata"]["name"])))
    task = asyncio.create_task(inf.run())
    try:
        await asyncio.wait_for(inf.synced.wait(), 5)
        assert [o["metadata"]["name"] for o in inf.list("default")] == ["a"]
        await client.create(SERVICES, "default", _svc("b"))
        await client.patch(SERVICES, "default", "a", {"metadata": {"labels": {"x": "y"}}})
        await client.delete(SERVICES, "default", "b")
        await eventually(lambda: events == [("ADDED", "a"), ("ADDED", "b"), ("MODIFIED", "a"),
                                            ("DELETED", "b")])
        assert inf.get("default", "a")["metadata"]["labels"] == {"x": "y"}  # type: ignore[index]
    finally:
        task.cancel()


async def test_informer_relists_on_410(inproc: InProcess) -> None:
    assert SERVICES is not None
    client = LocalClient(inproc.api.registry)  # type: ignore[attr-defined]
    inf = Informer(client, SERVICES, "default")
    inf.resource_version = "1"
    store = inproc.api.store  # type: ignore[attr-defined]
    await client.create(SERVICES, "default", _svc("old"))
    await client.create(SERVICES, "default", _svc("new"))
    await store.compact(await store.current_revision())
    # a watch from a compacted revision fails with 410; run() must recover by listing
    seen: list[str] = []
    inf.add_handler(lambda t, old, new: seen.append(t))
    task = asyncio.create_task(inf.run())
    try:
        await eventually(lambda: {o["metadata"]["name"] for o in inf.list()} >= {"old", "new"})
        assert inf.synced.is_set() and seen.count("ADDED") >= 2
    finally:
        task.cancel()


async def test_http_client_round_trip_and_errors(inproc: InProcess) -> None:
    from svcnet.api import errors
    from svcnet.client.http import HttpClient
    assert SERVICES is not None
    url = str(inproc.client.make_url(""))  # type: ignore[attr-defined]
    client = HttpClient(url, token=inproc.token)
    try:
        created = await client.create(SERVICES, "default", _svc("h"))
        assert created["spec"]["clusterIP"]
        items, rv = await client.list(SERVICES, "default", label_selector="")
        assert "h" in [i["metadata"]["name"] for i in items] and int(rv) > 0
        patched = await client.patch(SERVICES, "default", "h", {"metadata": {"labels": {"a": "b"}}})
        assert patched["metadata"]["labels"] == {"a": "b"}
        try:
            await client.get(SERVICES, "default", "missing")
            raise AssertionError("expected NotFound")
        except errors.StatusError as e:
            assert e.code == 404 and e.reason == "NotFound"
        inf = Informer(client, SERVICES, "default")
        task = asyncio.create_task(inf.run())
        await asyncio.wait_for(inf.synced.wait(), 5)
        await client.delete(SERVICES, "default", "h")
        await eventually(lambda: inf.get("default", "h") is None)
        task.cancel()
    finally:
        await client.close()


async def test_informer_indices_follow_changes(inproc: InProcess) -> None:
    assert SERVICES is not None
    client = LocalClient(inproc.api.registry)  # type: ignore[attr-defined]
    inf = Informer(client, SERVICES, "default")

    def by_app(o: dict[str, Any]) -> list[str]:
        return [v for k, v in (o["metadata"].get("labels") or {}).items() if k == "app"]
    await client.create(SERVICES, "default", dict(_svc("x"), metadata={
        "name": "x", "labels": {"app": "a"}}))
    task = asyncio.create_task(inf.run())
    try:
        await asyncio.wait_for(inf.synced.wait(), 5)
        inf.add_index("app", by_app)  # added after sync: existing objects are indexed
        assert [o["metadata"]["name"] for o in inf.by_index("app", "a")] == ["x"]
        await client.patch(SERVICES, "default", "x", {"metadata": {"labels": {"app": "b"}}})
        await eventually(lambda: inf.index_size("app", "a") == 0 and
                         [o["metadata"]["name"] for o in inf.by_index("app", "b")] == ["x"])
        await client.delete(SERVICES, "default", "x")
        await eventually(lambda: inf.index_size("app", "b") == 0)
    finally:
        task.cancel()
