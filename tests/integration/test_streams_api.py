"""pods/exec, attach and portforward through the in-process API server: the checks and their
wording, authorization, and the WebSocket proxy to a stand-in agent (relay both ways,
refusals turned into what kubectl prints, a closed client closing the agent side)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from conftest import InProcess

from svcnet.api import remotecommand as rc

PODS = "/api/v1/namespaces/default/pods"
V5 = rc.V5


@dataclass
class FakeAgent:
    """Stands in for a node agent: exec echoes stdin upper-cased on stdout and reports
    Success when stdin is closed; container "gone" is refused as the kubelet does;
    port-forward echoes raw bytes; pod "refuse" cannot be port-forwarded."""

    token: str = ""
    seen: list[tuple[str, str, dict[str, list[str]], str]] = field(default_factory=list)
    client_closed: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/exec/{ns}/{pod}/{container}", self.exec)
        app.router.add_route("*", "/attach/{ns}/{pod}/{container}", self.exec)
        app.router.add_route("*", "/portForward/{ns}/{pod}", self.portforward)
        return app

    def _record(self, request: web.Request) -> None:
        query = {k: request.query.getall(k) for k in set(request.query.keys())}
        self.seen.append((request.path, request.headers.get("Authorization", ""), query,
                          request.headers.get("Upgrade", "")))

    async def exec(self, request: web.Request) -> web.StreamResponse:
        self._record(request)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.Response(status=401, text="Unauthorized")
        container = request.match_info["container"]
        if container == "gone":
            return web.Response(status=404, text=f'container not found ("{container}")')
        ws = web.WebSocketResponse(protocols=rc.EXEC_PROTOCOLS)
        if not ws.can_prepare(request).ok:
            return web.Response(status=400, text="Upgrade request required")
        await ws.prepare(request)
        async for msg in ws:
            channel, payload = rc.parse_frame(msg.data)
            if channel == rc.STDIN:
                await ws.send_bytes(rc.frame(rc.STDOUT, payload.upper()))
            elif channel == rc.CLOSE:
                await ws.send_bytes(rc.frame(rc.ERROR, rc.error_payload(
                    ws.ws_protocol or "", rc.exit_status(3, ["x"]))))
                await ws.close()
        self.client_closed.set()
        return ws

    async def portforward(self, request: web.Request) -> web.StreamResponse:
        self._record(request)
        if request.match_info["pod"] == "refuse":
            return web.Response(status=404, text="pod sandbox of refuse is not ready")
        ws = web.WebSocketResponse(protocols=rc.PORTFORWARD_PROTOCOLS)
        if not ws.can_prepare(request).ok:
            return web.Response(status=400, text="Upgrade request required")
        await ws.prepare(request)
        async for msg in ws:
            await ws.send_bytes(msg.data)
        return ws


@dataclass
class Cluster:
    inproc: InProcess
    agent: FakeAgent
    node_token: str

    @property
    def admin(self) -> dict[str, str]:
        return self.inproc.headers

    @property
    def node(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.node_token}"}


async def _call(c: Cluster, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None) -> tuple[int, Any]:
    client: Any = c.inproc.client
    resp = await client.request(method, path, json=body, headers=headers or c.admin)
    text = await resp.text()
    return resp.status, (json.loads(text) if text.startswith("{") else text)


def _pod(name: str, node: str | None = "n1", containers: tuple[str, ...] = ("c", "gone"),
         ) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": n, "image": "busybox"} for n in containers]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


@pytest.fixture
async def cluster(inproc: InProcess) -> AsyncIterator[Cluster]:
    tokens = inproc.api.tokens  # type: ignore[attr-defined]
    node_token = tokens.add("system:node:n1", ("system:nodes", "system:authenticated"))
    agent = FakeAgent(token=node_token)
    server = TestServer(agent.app())
    await server.start_server()
    c = Cluster(inproc, agent, node_token)
    try:
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}
        assert (await _call(c, "POST", "/api/v1/nodes", node))[0] == 201
        status = {"status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                             "daemonEndpoints": {"kubeletEndpoint": {"Port": server.port}}}}
        code, _ = await _call(c, "PATCH", "/api/v1/nodes/n1/status", status, headers=dict(
            c.admin, **{"Content-Type": "application/merge-patch+json"}))
        assert code == 200
        for pod in (_pod("p"), _pod("pending", node=None), _pod("refuse"),
                    _pod("solo", containers=("only",))):
            assert (await _call(c, "POST", PODS, pod))[0] == 201
        yield c
    finally:
        await server.close()


EXEC = PODS + "/p/exec?command=cat&container=c&stdin=true&stdout=true&stderr=true"


async def _ws(c: Cluster, path: str, protocols: tuple[str, ...] = (V5,),
              headers: dict[str, str] | None = None) -> aiohttp.ClientWebSocketResponse:
    client: Any = c.inproc.client
    ws: aiohttp.ClientWebSocketResponse = await client.ws_connect(
        path, protocols=protocols, headers=headers or c.admin)
    return ws


async def _frames(ws: aiohttp.ClientWebSocketResponse) -> list[tuple[int, bytes]]:
    out = []
    async for msg in ws:
        out.append(rc.parse_frame(msg.data))
    return out


async def test_exec_is_relayed_both_ways_to_the_agent(cluster: Cluster) -> None:
    ws = await _ws(cluster, EXEC)
    assert ws.protocol == V5
    await ws.send_bytes(rc.frame(rc.STDIN, b"hello"))
    await ws.send_bytes(rc.frame(rc.CLOSE, bytes([rc.STDIN])))
    frames = await _frames(ws)
    assert frames[0] == (rc.STDOUT, b"HELLO")
    status = json.loads(frames[1][1])
    assert frames[1][0] == rc.ERROR and rc.exit_code_of(status) == 3
    assert ws.close_code == 1000
    path, auth, query, upgrade = cluster.agent.seen[-1]
    assert path == "/exec/default/p/c" and auth == f"Bearer {cluster.node_token}"
    assert upgrade.lower() == "websocket"
    assert query == {"command": ["cat"], "stdin": ["1"], "stdout": ["1"], "stderr": ["1"]}


async def test_the_agent_chooses_the_protocol(cluster: Cluster) -> None:
    ws = await _ws(cluster, EXEC, protocols=(rc.V4, rc.V3))
    assert ws.protocol == rc.V4
    await ws.close()


async def test_closing_the_client_closes_the_agent_side(cluster: Cluster) -> None:
    ws = await _ws(cluster, EXEC)
    await ws.send_bytes(rc.frame(rc.STDIN, b"x"))
    assert (await ws.receive()).data == rc.frame(rc.STDOUT, b"X")
    await ws.close()
    await asyncio.wait_for(cluster.agent.client_closed.wait(), 5)


async def test_attach_is_relayed_with_the_container_defaulted(cluster: Cluster) -> None:
    ws = await _ws(cluster, PODS + "/solo/attach?stdin=true&stdout=true")
    await ws.send_bytes(rc.frame(rc.STDIN, b"hi"))
    assert (await ws.receive()).data == rc.frame(rc.STDOUT, b"HI")
    await ws.close()
    assert cluster.agent.seen[-1][0] == "/attach/default/solo/only"


async def test_a_container_that_is_not_running_is_reported_on_the_error_channel(
        cluster: Cluster) -> None:
    ws = await _ws(cluster, EXEC.replace("container=c", "container=gone"))
    assert ws.protocol == V5  # accepted, as kube-apiserver's WebSocket translator does
    frames = await _frames(ws)
    assert len(frames) == 1 and frames[0][0] == rc.ERROR
    status = json.loads(frames[0][1])
    assert status["reason"] == "InternalError"
    assert status["message"] == ('Internal error occurred: unable to upgrade connection: '
                                 'container not found ("gone")')


@pytest.mark.parametrize("path, message", [
    (EXEC.replace("container=c", "container=nope"), "container nope is not valid for pod p"),
    (PODS + "/pending/exec?command=ls&container=c&stdout=true",
     "pod pending does not have a host assigned"),
    (PODS + "/p/exec?command=ls&stdout=true",
     "a container name must be specified for pod p, choose one of: [c gone]"),
    (PODS + "/p/exec?container=c&stdout=true",
     "you must specify at least one command for the container"),
    (PODS + "/p/attach?container=c", "you must specify at least 1 of stdin, stdout, stderr"),
    (PODS + "/pending/portforward", "pod pending does not have a host assigned"),
])
async def test_bad_requests_get_kube_wording_over_websocket_and_spdy(
        cluster: Cluster, path: str, message: str) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as e:
        await _ws(cluster, path)
    assert e.value.status == 400
    # kubectl then retries with SPDY and prints that answer: it must say the same
    code, st = await _call(cluster, "POST", path, headers=dict(
        cluster.admin, Connection="Upgrade", Upgrade="SPDY/3.1"))
    assert code == 400 and st["reason"] == "BadRequest" and st["message"] == message


async def test_unknown_pod_is_not_found(cluster: Cluster) -> None:
    code, st = await _call(cluster, "POST", PODS + "/nope/exec?command=ls&stdout=true",
                           headers=dict(cluster.admin, Connection="Upgrade",
                                        Upgrade="SPDY/3.1"))
    assert code == 404 and st["message"] == 'pods "nope" not found'


@pytest.mark.parametrize("sub", ["exec", "attach", "portforward"])
async def test_a_node_may_not_exec_attach_or_portforward(cluster: Cluster, sub: str) -> None:
    path = f"{PODS}/p/{sub}?command=ls&container=c&stdout=true"
    with pytest.raises(aiohttp.WSServerHandshakeError) as e:
        await _ws(cluster, path, headers=cluster.node)
    assert e.value.status == 403
    code, st = await _call(cluster, "POST", path, headers=dict(
        cluster.node, Connection="Upgrade", Upgrade="SPDY/3.1"))
    assert code == 403 and st["reason"] == "Forbidden"
    assert st["message"] == (f'pods "p" is forbidden: User "system:node:n1" cannot create '
                             f'resource "pods/{sub}" in API group "" in the namespace "default"')
    assert cluster.agent.seen == []  # never reached the agent


async def test_requests_without_websocket(cluster: Cluster) -> None:
    code, st = await _call(cluster, "GET", EXEC)
    assert code == 400 and st["message"] == "Upgrade request required"
    code, st = await _call(cluster, "POST", EXEC, headers=dict(
        cluster.admin, Connection="Upgrade", Upgrade="SPDY/3.1"))
    assert code == 400 and "WebSocket only" in st["message"]
    assert cluster.agent.seen == []  # an exec is never started just to be refused
    code, _ = await _call(cluster, "PUT", EXEC, {})
    assert code == 405


async def test_portforward_tunnel_is_relayed(cluster: Cluster) -> None:
    ws = await _ws(cluster, PODS + "/p/portforward", protocols=(rc.SPDY_PORTFORWARD,))
    assert ws.protocol == rc.SPDY_PORTFORWARD
    await ws.send_bytes(b"\x80\x03\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01")  # a SPDY PING
    assert (await ws.receive()).data == b"\x80\x03\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01"
    await ws.close()
    assert cluster.agent.seen[-1][0] == "/portForward/default/p"


async def test_a_refused_portforward_is_refused_with_the_agents_reason(
        cluster: Cluster) -> None:
    path = PODS + "/refuse/portforward"
    with pytest.raises(aiohttp.WSServerHandshakeError) as e:
        await _ws(cluster, path, protocols=(rc.SPDY_PORTFORWARD,))
    assert e.value.status == 500
    code, st = await _call(cluster, "POST", path, headers=dict(
        cluster.admin, Connection="Upgrade", Upgrade="SPDY/3.1"))
    assert code == 500
    assert st["message"] == ("Internal error occurred: unable to upgrade connection: pod "
                             "sandbox of refuse is not ready")


async def test_an_unreachable_agent(cluster: Cluster) -> None:
    code, _ = await _call(cluster, "PATCH", "/api/v1/nodes/n1/status", {"status": {
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 1}}}}, headers=dict(
            cluster.admin, **{"Content-Type": "application/merge-patch+json"}))
    assert code == 200
    ws = await _ws(cluster, EXEC)
    frames = await _frames(ws)
    status = json.loads(frames[0][1])
    assert status["message"].startswith("Internal error occurred: error dialing backend:")
