"""The agent's own HTTP endpoint (kubelet's port 10250): container logs, exec, attach and
port-forward for the API server.

`kubectl logs` talks to the API server, which proxies `pods/log` here (as kube-apiserver
does to kubelets). The API server authenticates with the node's own token, which it knows
from its token table; the agent accepts only that token, so nothing else on the node
network can read pod logs. The path and query follow kubelet's
`/containerLogs/{namespace}/{pod}/{container}?follow=&previous=&tailLines=&timestamps=`;
the streaming endpoints are in stream_api.py.

When the agent stops, a followed log ends cleanly (the chunked response is finished), so
`kubectl logs -f` through the API server exits instead of holding the agent's shutdown
open until aiohttp gives up on the handler (two minutes by default).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import TYPE_CHECKING, AsyncIterator, Callable

from aiohttp import web

if TYPE_CHECKING:
    from svcnet.node.stream_api import StreamingApi

log = logging.getLogger("svcnet.agent.api")

LogSource = Callable[..., AsyncIterator[bytes]]
UidLookup = Callable[[str, str], str | None]


def _flag(q: "web.BaseRequest", name: str) -> bool:
    return q.query.get(name, "") in ("true", "1", "True")


class KubeletApi:
    def __init__(self, token: str, uid_of: UidLookup, logs: LogSource,
                 streams: "StreamingApi | None" = None) -> None:
        self.token = token
        self.uid_of = uid_of
        self.logs = logs
        self.streams = streams
        self.closing = asyncio.Event()  # set when the agent's HTTP server shuts down

    @web.middleware
    async def _auth(self, request: web.Request, handler: Callable[..., object]) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        given = auth[7:].strip() if auth.startswith("Bearer ") else ""
        if not given or not hmac.compare_digest(given.encode(), self.token.encode()):
            return web.Response(status=401, text="Unauthorized")
        result = await handler(request)  # type: ignore[misc]
        assert isinstance(result, web.StreamResponse)
        return result

    async def container_logs(self, request: web.Request) -> web.StreamResponse:
        ns, pod, container = (request.match_info[k] for k in ("ns", "pod", "container"))
        uid = self.uid_of(ns, pod)
        if uid is None:
            return web.Response(status=404, text=f'pod "{pod}" not found on this node')
        tail_raw = request.query.get("tailLines")
        try:
            tail = int(tail_raw) if tail_raw else None
        except ValueError:
            return web.Response(status=400, text=f"invalid tailLines: {tail_raw}")
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        stream = self.logs(uid, container, follow=_flag(request, "follow"),
                           previous=_flag(request, "previous"), tail=tail,
                           timestamps=_flag(request, "timestamps"))
        try:
            first = await stream.__anext__()
        except StopAsyncIteration:
            first = b""
        except LookupError as e:  # unknown container / no previous instance
            return web.Response(status=400, text=str(e))
        await resp.prepare(request)
        try:
            if first:
                await resp.write(first)
            async for chunk in self._until_closing(stream):
                await resp.write(chunk)
        except (ConnectionResetError, ConnectionError):
            pass
        return resp

    async def _until_closing(self, stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """The chunks of `stream` until it ends or the agent shuts down."""
        closing = asyncio.ensure_future(self.closing.wait())
        try:
            while True:
                chunk = asyncio.ensure_future(stream.__anext__())
                await asyncio.wait({chunk, closing}, return_when=asyncio.FIRST_COMPLETED)
                if not chunk.done():
                    chunk.cancel()
                    await asyncio.gather(chunk, return_exceptions=True)
                    return
                try:
                    yield chunk.result()
                except StopAsyncIteration:
                    return
        finally:
            closing.cancel()
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except (RuntimeError, StopAsyncIteration):
                    pass  # already running or finished: nothing to release

    async def _on_shutdown(self, app: web.Application) -> None:
        self.closing.set()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.on_shutdown.append(self._on_shutdown)
        app.router.add_get("/containerLogs/{ns}/{pod}/{container}", self.container_logs)
        if self.streams is not None:
            self.streams.add_routes(app)
        return app
