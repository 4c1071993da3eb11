"""`pods/{name}/exec`, `/attach` and `/portforward`: check, then proxy the WebSocket to the
agent of the Pod's node.

As kube-apiserver's `streamLocation`: the container must exist in the Pod's spec
(`container c is not valid for pod p`; with several containers and none named, `a
container name must be specified for pod p, choose one of: [a b]`), and the Pod must be
bound to a node (`pod p does not have a host assigned`). These answers are 400 Status
bodies, given to both the WebSocket request and the SPDY retry kubectl makes after a
refused upgrade, so kubectl prints `Error from server (BadRequest): ...`.

Then the API server dials the agent's WebSocket endpoint (the kubelet's paths
`/exec|attach/{ns}/{pod}/{container}`, `/portForward/{ns}/{pod}`) with the node's token,
offering the client's subprotocols, accepts the client with the protocol the agent chose,
and relays messages both ways until either side closes (then it closes the other), so a
closed kubectl ends the remote command and vice versa.

When the agent refuses an exec/attach (the container is not running: `container not
found ("c")`), the client's WebSocket is still accepted and the refusal is written as an
InternalError Status on the error channel (`Internal error occurred: unable to upgrade
connection: container not found ("c")`), which is what kube-apiserver 1.30+ does when it
translates a v5 WebSocket request to the kubelet. A refused port-forward answers the
upgrade itself with that Status (kubectl then prints `error upgrading connection: ...`).
SPDY itself is not served to clients: the SPDY retry gets the same validation answers and
otherwise a 400 saying that WebSocket is required.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import quote, urlencode

import aiohttp
from aiohttp import web

from svcnet.api import errors, remotecommand as rc
from svcnet.apiserver.nodeagent import AgentEndpoint, agent_endpoint
from svcnet.apiserver.paths import ResourcePath
from svcnet.apiserver.registry import Registry

log = logging.getLogger("svcnet.apiserver.streaming")

STREAM_SUBRESOURCES = ("exec", "attach", "portforward")
Obj = dict[str, Any]
_SESSIONS: set["asyncio.Task[web.StreamResponse]"] = set()


# --- pure checks -----------------------------------------------------------------------------

def container_names(pod: Mapping[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """(containers, init containers, ephemeral containers) of a Pod spec."""
    spec = pod.get("spec") or {}
    return tuple([c.get("name", "") for c in spec.get(k) or []]  # type: ignore[return-value]
                 for k in ("containers", "initContainers", "ephemeralContainers"))


def stream_container(pod: Mapping[str, Any], requested: str) -> str:
    """The container an exec/attach addresses, or a 400 with kube-apiserver's wording."""
    name = (pod.get("metadata") or {}).get("name", "")
    regular, init, ephemeral = container_names(pod)
    if not requested:
        if len(regular) == 1:
            return regular[0]
        if not regular:
            raise errors.bad_request(f"a container name must be specified for pod {name}")
        message = (f"a container name must be specified for pod {name}, choose one of: "
                   f"[{' '.join(regular)}]")
        if init:
            message += f" or one of the init containers: [{' '.join(init)}]"
        raise errors.bad_request(message)
    if requested not in regular + init + ephemeral:
        raise errors.bad_request(f"container {requested} is not valid for pod {name}")
    return requested


def require_host(pod: Mapping[str, Any]) -> str:
    """The node the Pod is bound to, or a 400 as kube-apiserver answers."""
    node = (pod.get("spec") or {}).get("nodeName")
    if not node:
        name = (pod.get("metadata") or {}).get("name", "")
        raise errors.bad_request(f"pod {name} does not have a host assigned")
    return str(node)


def agent_path(sub: str, namespace: str, pod: str, query: Mapping[str, Sequence[str]],
               ) -> tuple[str, list[tuple[str, str]]]:
    """The agent URL path and query for a checked request (flags as "1", as the kubelet
    expects them). Raises StatusError for a bad exec/attach request."""
    ns, name = quote(namespace, safe=""), quote(pod, safe="")
    if sub == "portforward":
        return f"/portForward/{ns}/{name}", [("ports", p) for p in query.get("ports") or []]
    opts = rc.parse_stream_options(query)
    if sub == "exec" and not opts.command:
        raise errors.bad_request("you must specify at least one command for the container")
    if not (opts.stdin or opts.stdout or opts.stderr):
        raise errors.bad_request("you must specify at least 1 of stdin, stdout, stderr")
    container = quote(opts.container, safe="")
    return f"/{sub}/{ns}/{name}/{container}", [(k, v) for k, v in opts.query()
                                                if k != "container"]


def is_websocket(request: web.BaseRequest) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def requested_protocols(request: web.BaseRequest) -> list[str]:
    raw = ",".join(request.headers.getall("Sec-WebSocket-Protocol", []))
    return [p.strip() for p in raw.split(",") if p.strip()]


# --- the edge --------------------------------------------------------------------------------

async def serve_stream(request: web.Request, registry: Registry,
                       node_token: Callable[[str], str | None],
                       rp: ResourcePath) -> web.StreamResponse:
    """Serve one exec/attach/portforward request (GET or POST)."""
    if request.method not in ("GET", "POST"):
        raise errors.method_not_allowed("the server does not allow this method on the "
                                        "requested resource")
    sub = rp.subresource
    pod = await registry.get(rp.kind, rp.namespace, rp.name or "")
    query = {k: request.query.getall(k) for k in set(request.query.keys())}
    if sub != "portforward":
        query["container"] = [stream_container(pod, (query.get("container") or [""])[-1])]
    node = require_host(pod)
    path, agent_query = agent_path(sub, rp.namespace or "", pod["metadata"]["name"], query)
    agent = await agent_endpoint(registry, node_token, node, sub)
    url = f"{agent.base_url}{path}" + (f"?{urlencode(agent_query)}" if agent_query else "")
    offered = requested_protocols(request)
    websocket = is_websocket(request)
    if not websocket and not request.headers.get("Upgrade"):
        raise errors.bad_request("Upgrade request required")
    if not websocket and sub != "portforward":
        raise _websocket_only(sub, request.headers["Upgrade"])
    # Detached from the handler: aiohttp cancels it when the client's connection closes,
    # and the clean-up (closing the agent's side, which ends the remote command) must run.
    task = asyncio.ensure_future(_proxy(request, sub, url, agent, offered, websocket))
    _SESSIONS.add(task)
    task.add_done_callback(_finished)
    return await asyncio.shield(task)


def _finished(task: "asyncio.Task[web.StreamResponse]") -> None:
    _SESSIONS.discard(task)
    if not task.cancelled() and task.exception() is not None:  # retrieved: no warning
        log.debug("stream session ended with %r", task.exception())


async def _proxy(request: web.Request, sub: str, url: str, agent: AgentEndpoint,
                 offered: list[str], websocket: bool) -> web.StreamResponse:
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=5))
    try:
        upstream = await _dial(session, url, agent, offered if websocket else
                               list(rc.PORTFORWARD_PROTOCOLS[:1]))
        if isinstance(upstream, str):
            return await _refused(request, sub, offered if websocket else [], upstream)
        async with upstream:
            if not websocket:  # a port-forward SPDY retry the agent would have accepted
                raise _websocket_only(sub, request.headers["Upgrade"])
            client = web.WebSocketResponse(
                protocols=[upstream.protocol] if upstream.protocol else [], autoping=True,
                max_msg_size=0)
            await client.prepare(request)
            await relay(client, upstream)
            return client
    finally:
        await session.close()


def _websocket_only(sub: str, asked: str) -> errors.StatusError:
    """A SPDY request that passed every check: svcnet does not serve SPDY to clients.
    (Not dialing the agent for exec: that would start the command.)"""
    return errors.bad_request(f"svcnet serves pods/{sub} over WebSocket only (kubectl 1.31 "
                              f"and later use it by default); this request asked for {asked}")


async def _dial(session: aiohttp.ClientSession, url: str, agent: AgentEndpoint,
                protocols: list[str]) -> aiohttp.ClientWebSocketResponse | str:
    """The agent's WebSocket, or why it could not be had (kube's wording)."""
    try:
        return await session.ws_connect(
            url, protocols=protocols, headers={"Authorization": f"Bearer {agent.token}"},
            autoping=True, max_msg_size=0, compress=0)
    except aiohttp.WSServerHandshakeError as e:
        return f"unable to upgrade connection: {await _refusal(session, url, agent, e)}"
    except (aiohttp.ClientError, OSError) as e:
        return f"error dialing backend: {e}"


async def _refusal(session: aiohttp.ClientSession, url: str, agent: AgentEndpoint,
                   e: aiohttp.WSServerHandshakeError) -> str:
    """The agent's reason for refusing an upgrade. A refused WebSocket handshake does not
    expose the body, so ask again without upgrading: the agent checks in the same order
    and answers the same error as text."""
    try:
        async with session.get(url, headers={"Authorization": f"Bearer {agent.token}"}) as r:
            text = (await r.text()).strip()
    except aiohttp.ClientError:
        text = ""
    return text or f"the agent answered {e.status}"


async def _refused(request: web.Request, sub: str, offered: list[str],
                   message: str) -> web.StreamResponse:
    """Report an agent-side refusal: exec/attach on the accepted WebSocket's error channel
    (kube-apiserver's translator does the same), port-forward (and any request that is
    not a WebSocket) as the upgrade's answer."""
    status = rc.internal_error_status(message)
    protocols = [p for p in rc.EXEC_PROTOCOLS if p in offered]
    if sub == "portforward" or not protocols:
        raise errors.StatusError(500, "InternalError", status["message"])
    client = web.WebSocketResponse(protocols=protocols[:1], autoping=True)
    await client.prepare(request)
    protocol = client.ws_protocol or rc.V1
    payload = rc.error_payload(protocol, status)
    try:
        if payload:
            await client.send_bytes(rc.frame(rc.ERROR, payload))
        if rc.parse_bool(request.query.get("tty")):
            # kubectl sends the terminal size right after connecting, from a goroutine of
            # its own; closing first makes it log "websocket: close sent". Let it arrive.
            try:
                await asyncio.wait_for(client.receive(), 0.25)
            except TimeoutError:
                pass
        await client.close()
    except (ConnectionError, RuntimeError):
        pass
    return client


async def relay(client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse,
                ) -> None:
    """Copy messages both ways until one side closes; then close the other."""
    async def pump(src: Any, dst: Any) -> None:
        async for msg in src:
            if msg.type == aiohttp.WSMsgType.BINARY:
                await dst.send_bytes(msg.data)
            elif msg.type == aiohttp.WSMsgType.TEXT:
                await dst.send_str(msg.data)
            else:
                break

    tasks = [asyncio.create_task(pump(client, upstream)),
             asyncio.create_task(pump(upstream, client))]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            if not t.cancelled() and t.exception() is not None:
                log.debug("stream relay ended: %s", t.exception())
    finally:
        # Stop the pump still reading before closing: a close racing a reader of the same
        # WebSocket waits for the reader instead of the peer.
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for ws in (upstream, client):
            try:
                await asyncio.wait_for(ws.close(), 5)
            except (ConnectionError, RuntimeError, TimeoutError):
                pass
