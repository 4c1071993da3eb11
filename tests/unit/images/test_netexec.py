"""netexec on loopback ephemeral ports: HTTP endpoints, the healthz toggle, /dial, UDP
commands, and the real process's flags and graceful SIGTERM."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
from typing import AsyncIterator

import aiohttp
import pytest

from svcnet.images.netexec import NetExec, build_parser


@pytest.fixture
async def server() -> AsyncIterator[NetExec]:
    srv = NetExec(host="127.0.0.1", http_port=0, udp_port=0, name="pod-a")
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


async def get(srv: NetExec, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{srv.http_port}{path}") as r:
            return r.status, await r.text()


class _Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.replies.put_nowait(data)


async def udp(port: int, *messages: str) -> list[str]:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        _Client, remote_addr=("127.0.0.1", port))
    try:
        out = []
        for m in messages:
            transport.sendto(m.encode())
            out.append((await asyncio.wait_for(proto.replies.get(), 3)).decode())
        return out
    finally:
        transport.close()


async def test_http_endpoints(server: NetExec) -> None:
    assert await get(server, "/hostname") == (200, "pod-a")
    assert await get(server, "/echo?msg=hello%20there") == (200, "hello there")
    assert await get(server, "/echo?msg=teapot&code=418") == (418, "teapot")
    status, body = await get(server, "/clientip")
    assert status == 200 and re.fullmatch(r"127\.0\.0\.1:\d+", body)
    assert (await get(server, "/"))[1].startswith("NOW: ")


async def test_healthz_toggle(server: NetExec) -> None:
    assert await get(server, "/healthz") == (200, "ok")
    assert await get(server, "/healthz/fail") == (200, "healthz will now fail")
    status, body = await get(server, "/healthz")
    assert status == 500 and "/healthz/ok" in body
    assert await get(server, "/healthz/ok") == (200, "healthz will now succeed")
    assert await get(server, "/healthz") == (200, "ok")


async def test_dial_http_and_udp(server: NetExec) -> None:
    _, body = await get(server, f"/dial?request=hostname&protocol=http&host=127.0.0.1"
                                f"&port={server.http_port}&tries=2")
    assert json.loads(body) == {"responses": ["pod-a", "pod-a"]}
    _, body = await get(server, f"/dial?request=hostname&protocol=udp&host=127.0.0.1"
                                f"&port={server.udp_port}&tries=1")
    assert json.loads(body) == {"responses": ["pod-a"]}
    _, body = await get(server, "/dial?request=hostname&protocol=http&host=127.0.0.1&port=1")
    assert list(json.loads(body)) == ["errors"]


async def test_udp_commands(server: NetExec) -> None:
    replies = await udp(server.udp_port, "hostname", "echo Hello World\n", "clientip")
    assert replies[:2] == ["pod-a", "hello world"]  # agnhost lower-cases the input
    assert re.fullmatch(r"127\.0\.0\.1:\d+", replies[2])


async def test_exit_endpoint(server: NetExec) -> None:
    codes: list[int] = []
    server.exit = codes.append  # type: ignore[assignment]
    assert (await get(server, "/exit?code=3"))[0] == 200
    await asyncio.sleep(0.2)
    assert codes == [3]


def test_flags_accept_go_spellings() -> None:
    p = build_parser()
    assert p.parse_args([]).http_port == 8080 and p.parse_args([]).udp_port == 8081
    a = p.parse_args(["--http-port=9090", "-udp-port", "-1", "--delay-shutdown", "2"])
    assert (a.http_port, a.udp_port, a.delay_shutdown) == (9090, -1, 2)


def test_help() -> None:
    out = subprocess.run([sys.executable, "-m", "svcnet.images.netexec", "--help"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "--http-port" in out.stdout and "/healthz/fail" in out.stdout


async def test_process_serves_and_stops_gracefully_on_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "svcnet.images.netexec", "--http-port=0", "--udp-port=0",
        stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stderr is not None
        line = (await asyncio.wait_for(proc.stderr.readline(), 20)).decode()
        port = int(re.search(r"HTTP on port (\d+)", line).group(1))  # type: ignore[union-attr]
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{port}/healthz") as r:
                assert r.status == 200
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
