"""serve-hostname on loopback ephemeral ports: HTTP on any path, TCP and UDP modes, flags
in Go spellings, and the real process's graceful SIGTERM."""

from __future__ import annotations

import asyncio
import re
import signal
import sys

import aiohttp
import pytest

from svcnet.images.serve_hostname import ServeHostname, build_parser
from svcnet.images.serving import go_bool


async def test_http_answers_every_path_with_the_hostname() -> None:
    srv = ServeHostname(host="127.0.0.1", port=0, name="web-7d9f")
    await srv.start()
    try:
        async with aiohttp.ClientSession() as s:
            for path in ("/", "/anything/else?x=1"):
                async with s.get(f"http://127.0.0.1:{srv.ports['http']}{path}") as r:
                    assert (r.status, await r.text()) == (200, "web-7d9f")
            async with s.post(f"http://127.0.0.1:{srv.ports['http']}/") as r:
                assert await r.text() == "web-7d9f"
    finally:
        await srv.stop()


async def test_tcp_and_udp_modes() -> None:
    srv = ServeHostname(host="127.0.0.1", port=0, http=False, tcp=True, udp=True, name="pod-b")
    await srv.start()
    try:
        assert "http" not in srv.ports
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.ports["tcp"])
        assert await asyncio.wait_for(reader.read(), 3) == b"pod-b"
        writer.close()

        loop = asyncio.get_running_loop()
        got: asyncio.Future[bytes] = loop.create_future()

        class Client(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: object) -> None:
                got.set_result(data)

        transport, _ = await loop.create_datagram_endpoint(
            Client, remote_addr=("127.0.0.1", srv.ports["udp"]))
        transport.sendto(b"anything")
        assert await asyncio.wait_for(got, 3) == b"pod-b"
        transport.close()
    finally:
        await srv.stop()


async def test_close_flag_sets_connection_close() -> None:
    srv = ServeHostname(host="127.0.0.1", port=0, close=True, name="x")
    await srv.start()
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{srv.ports['http']}/") as r:
                assert r.headers.get("Connection", "").lower() == "close"
    finally:
        await srv.stop()


def test_flags() -> None:
    p = build_parser()
    a = p.parse_args([])
    assert (a.port, a.http, a.tcp, a.udp, a.close) == (9376, True, False, False, False)
    a = p.parse_args(["-port=9000", "--udp", "--http=false", "-tcp=true"])
    assert (a.port, a.http, a.tcp, a.udp) == (9000, False, True, True)
    with pytest.raises(Exception):
        go_bool("maybe")


async def test_process_serves_and_stops_gracefully_on_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "svcnet.images.serve_hostname", "--port", "0",
        stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stderr is not None
        line = (await asyncio.wait_for(proc.stderr.readline(), 20)).decode()
        port = int(re.search(r"HTTP on port (\d+)", line).group(1))  # type: ignore[union-attr]
        import socket
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{port}/") as r:
                assert await r.text() == socket.gethostname()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
