"""The agent's kubelet endpoint for container logs, over real HTTP on loopback: the node
token, kubelet's errors, and a followed log that ends cleanly when the agent stops."""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator

import aiohttp
from aiohttp import web

from svcnet.node.kubelet_api import KubeletApi
from svcnet.node.logs import LogsError

TOKEN = "node-secret"


def logs(uid: str, container: str | None, *, follow: bool = False, **_: Any
         ) -> AsyncIterator[bytes]:
    async def gen() -> AsyncIterator[bytes]:
        if container != "app":
            raise LogsError(f'container {container} is not valid for pod "p"')
        yield b"line 1\n"
        yield b"line 2\n"
        while follow:  # a container that never writes again
            await asyncio.sleep(3600)
    return gen()


async def started(api: KubeletApi) -> tuple[web.AppRunner, str]:
    from conftest import free_port
    runner = web.AppRunner(api.app(), access_log=None, handle_signals=False,
                           shutdown_timeout=30)  # long: the clean end must not rely on it
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}/containerLogs/default/p"


async def test_logs_token_and_errors() -> None:
    api = KubeletApi(TOKEN, lambda ns, name: "uid-p" if name == "p" else None, logs)
    runner, base = await started(api)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{base}/app", headers=auth) as r:
                assert r.status == 200 and await r.text() == "line 1\nline 2\n"
            async with s.get(f"{base}/app", headers={"Authorization": "Bearer nope"}) as r:
                assert r.status == 401
            async with s.get(f"{base}/other", headers=auth) as r:
                assert r.status == 400 and "is not valid" in await r.text()
            async with s.get(f"{base}/app?tailLines=x", headers=auth) as r:
                assert r.status == 400 and await r.text() == "invalid tailLines: x"
            url = base.replace("/p", "/ghost")
            async with s.get(f"{url}/app", headers=auth) as r:
                assert r.status == 404
    finally:
        await runner.cleanup()


async def test_a_followed_log_ends_cleanly_when_the_agent_stops() -> None:
    api = KubeletApi(TOKEN, lambda ns, name: "uid-p", logs)
    runner, base = await started(api)
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{base}/app?follow=true",
                         headers={"Authorization": f"Bearer {TOKEN}"}) as r:
            assert await r.content.readline() == b"line 1\n"
            t0 = time.monotonic()
            cleanup = asyncio.create_task(runner.cleanup())
            # the rest arrives and the response ends properly (no broken chunking)
            assert await asyncio.wait_for(r.read(), 5) == b"line 2\n"
            await asyncio.wait_for(cleanup, 5)
            assert time.monotonic() - t0 < 3
