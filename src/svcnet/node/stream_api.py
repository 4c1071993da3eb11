"""The agent's streaming endpoints (the kubelet's paths): `/exec/{ns}/{pod}/{container}`,
`/attach/{ns}/{pod}/{container}` and `/portForward/{ns}/{pod}`, all WebSocket.

Everything that can be refused is checked BEFORE the upgrade and refused with a plain-text
answer in the kubelet's words (`container not found ("c")`, `pod "p" not found on this
node`), because the API server turns that text into the Status kubectl prints; a request
without an upgrade gets the same checks and then `400 Upgrade request required`, which is
how the API server reads the reason for a refused handshake. Sessions themselves live in
exec.py, attach.py and portforward.py.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Protocol

from aiohttp import web

from svcnet.api import remotecommand as rc
from svcnet.node import attach, exec as execmod, portforward
from svcnet.node.images import ImageCatalog
from svcnet.node.types import ContainerTarget, Sandbox

log = logging.getLogger("svcnet.agent.streams")

UidLookup = Callable[[str, str], "str | None"]
_SESSIONS: set["asyncio.Task[Any]"] = set()


async def detached(session: Awaitable[None]) -> None:
    """Run a session to its end even if aiohttp cancels the handler (it does once the
    client's connection closes): the session's own clean-up (killing the command, closing
    its fds) must never be cut short. The session notices a vanished client by itself."""
    task = asyncio.ensure_future(session)
    _SESSIONS.add(task)
    task.add_done_callback(_finished)
    await asyncio.shield(task)


async def close_sessions() -> None:
    """End every streaming session (the agent is stopping): exec'd commands are killed,
    attach and port-forward connections closed; containers are left alone."""
    tasks = list(_SESSIONS)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _finished(task: "asyncio.Task[Any]") -> None:
    _SESSIONS.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.warning("streaming session failed: %r", task.exception())


class Runtime(Protocol):
    def container_target(self, pod_uid: str, container: str) -> ContainerTarget | None: ...

    async def settle(self, pod_uid: str, container: str) -> None: ...

    def sandbox(self, pod_uid: str) -> Sandbox | None: ...


@dataclass
class StreamingApi:
    """Routes for exec/attach/portforward. `uid_of(ns, name)` finds a Pod bound to this
    node; `run_dir` is where named network namespaces are mounted."""

    uid_of: UidLookup
    runtime: Runtime
    images: ImageCatalog
    run_dir: str = "/run/netns"

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/exec/{ns}/{pod}/{container}", self.exec)
        app.router.add_route("*", "/attach/{ns}/{pod}/{container}", self.attach)
        app.router.add_route("*", "/portForward/{ns}/{pod}", self.port_forward)

    def _uid(self, request: web.Request) -> str:
        ns, pod = request.match_info["ns"], request.match_info["pod"]
        uid = self.uid_of(ns, pod)
        if uid is None:
            raise web.HTTPNotFound(text=f'pod "{pod}" not found on this node')
        return uid

    async def _target(self, request: web.Request, uid: str) -> ContainerTarget:
        container = request.match_info["container"]
        target = self.runtime.container_target(uid, container)
        if target is None:
            await self.runtime.settle(uid, container)  # its log is whole when kubectl looks
            raise web.HTTPNotFound(text=f'container not found ("{container}")')
        return target

    @staticmethod
    def _options(request: web.Request, exec_: bool) -> rc.StreamOptions:
        query = {k: request.query.getall(k) for k in set(request.query.keys())}
        try:
            return rc.check_stream_options(rc.parse_stream_options(query), exec_=exec_)
        except ValueError as e:
            raise web.HTTPBadRequest(text=str(e)) from None

    @staticmethod
    async def _upgrade(request: web.Request, protocols: tuple[str, ...],
                       ) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=protocols, autoping=True, max_msg_size=0)
        if not ws.can_prepare(request).ok:
            raise web.HTTPBadRequest(text="Upgrade request required")
        await ws.prepare(request)
        return ws

    async def exec(self, request: web.Request) -> web.StreamResponse:
        uid = self._uid(request)
        opts = self._options(request, exec_=True)
        target = await self._target(request, uid)
        nsenter, setsid = execmod.tool_paths()
        spec = execmod.exec_spec(target, opts.command, opts.tty, self.images, nsenter=nsenter,
                                 setsid=setsid)
        ws = await self._upgrade(request, rc.EXEC_PROTOCOLS)
        await detached(execmod.ExecSession(ws, ws.ws_protocol or rc.V1, opts, spec).run())
        return ws

    async def attach(self, request: web.Request) -> web.StreamResponse:
        uid = self._uid(request)
        opts = self._options(request, exec_=False)
        target = await self._target(request, uid)
        if not web.WebSocketResponse(protocols=rc.EXEC_PROTOCOLS).can_prepare(request).ok:
            raise web.HTTPBadRequest(text="Upgrade request required")
        try:
            reader, writer, pending = await attach.open_shim(target.attempt_dir, opts.stdin)
        except OSError:  # the container has exited (or is exiting; or its shim predates attach)
            await self.runtime.settle(uid, target.container)
            raise web.HTTPNotFound(
                text=f'container not found ("{target.container}")') from None
        try:
            ws = await self._upgrade(request, rc.EXEC_PROTOCOLS)
        except BaseException:
            writer.close()
            raise
        await detached(attach.AttachSession(ws, ws.ws_protocol or rc.V1, opts, reader,
                                            writer, pending).run())
        return ws

    async def port_forward(self, request: web.Request) -> web.StreamResponse:
        uid = self._uid(request)
        sandbox = self.runtime.sandbox(uid)
        if sandbox is None:
            raise web.HTTPNotFound(text=f"pod sandbox of {request.match_info['pod']} is not "
                                        "ready")
        probe = web.WebSocketResponse(protocols=rc.PORTFORWARD_PROTOCOLS).can_prepare(request)
        spdy_session = probe.protocol == rc.SPDY_PORTFORWARD
        ports: tuple[int, ...] = ()
        if not spdy_session:
            try:
                ports = rc.parse_ports(request.query.getall("ports", []))
            except ValueError as e:
                raise web.HTTPBadRequest(text=str(e)) from None
        netns = f"{self.run_dir}/{sandbox.netns}" if sandbox.netns else None
        dial = portforward.netns_dialer(netns, f'"{netns or "host"}"')
        describe = f"pod {request.match_info['pod']}, uid {uid}"
        ws = await self._upgrade(request, rc.PORTFORWARD_PROTOCOLS)
        if spdy_session:
            await detached(portforward.serve_spdy(ws, dial, describe))
        else:
            await detached(portforward.serve_channels(ws, ports, dial, describe))
        return ws
