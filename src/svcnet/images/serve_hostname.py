"""The `serve-hostname` image: answers every request with the pod's hostname.

Like the Kubernetes test image (`registry.k8s.io/serve_hostname`, agnhost
`serve-hostname`): HTTP on port 9376 by default, answering any path and method with the
hostname (no trailing newline); optionally the same over TCP (write the hostname, close)
and UDP (answer each datagram with the hostname) on the same port number. It is how
tutorials show which backend a Service picked.

    python -m svcnet.images.serve_hostname [--port 9376] [--http=true] [--tcp] [--udp]
                                           [--close]
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Sequence

from aiohttp import web

from svcnet.images.serving import (add_flag, bound_port, hostname, log, run,
                                   serve_until_signal)

DEFAULT_PORT = 9376


class _UDPHostname(asyncio.DatagramProtocol):
    def __init__(self, name: str) -> None:
        self.name = name
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.transport is not None:
            self.transport.sendto(self.name.encode(), addr)


class ServeHostname:
    """The servers of one serve-hostname process. Port 0 binds an ephemeral port (tests);
    `ports` then holds the bound ones by protocol ("http", "tcp", "udp")."""

    def __init__(self, *, host: str = "", port: int = DEFAULT_PORT, http: bool = True,
                 tcp: bool = False, udp: bool = False, close: bool = False,
                 name: str | None = None) -> None:
        self.host, self.port = host or None, port
        self.http, self.tcp, self.udp, self.close = http, tcp, udp, close
        self.name = name if name is not None else hostname()
        self.ports: dict[str, int] = {}
        self._runner: web.AppRunner | None = None
        self._tcp: asyncio.AbstractServer | None = None
        self._udp: asyncio.DatagramTransport | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        headers = {"Connection": "close"} if self.close else None
        return web.Response(text=self.name, headers=headers)

    async def _tcp_client(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        writer.write(self.name.encode())
        try:
            await writer.drain()
        finally:
            writer.close()

    async def start(self) -> None:
        if self.http:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
            await site.start()
            self.ports["http"] = bound_port(self._runner.addresses, self.port)
            log(f"serve-hostname: HTTP on port {self.ports['http']}")
        if self.tcp:
            self._tcp = await asyncio.start_server(self._tcp_client, self.host, self.port)
            self.ports["tcp"] = self._tcp.sockets[0].getsockname()[1]
            log(f"serve-hostname: TCP on port {self.ports['tcp']}")
        if self.udp:
            loop = asyncio.get_running_loop()
            self._udp, _ = await loop.create_datagram_endpoint(
                lambda: _UDPHostname(self.name), local_addr=(self.host or "0.0.0.0", self.port))
            self.ports["udp"] = self._udp.get_extra_info("sockname")[1]
            log(f"serve-hostname: UDP on port {self.ports['udp']}")

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()
        if self._runner is not None:
            await self._runner.cleanup()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="serve-hostname", description="Answer HTTP (and optionally TCP/UDP) requests "
        "with this pod's hostname, like the Kubernetes serve_hostname test image.")
    add_flag(p, "port", type=int, default=DEFAULT_PORT, help="port number (default 9376)")
    add_flag(p, "http", boolean=True, default=True, help="serve HTTP (default true)")
    add_flag(p, "tcp", boolean=True, default=False, help="serve raw TCP (default false)")
    add_flag(p, "udp", boolean=True, default=False, help="serve UDP (default false)")
    add_flag(p, "close", boolean=True, default=False,
             help="close the HTTP connection after each response (default false)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    server = ServeHostname(port=args.port, http=args.http, tcp=args.tcp, udp=args.udp,
                           close=args.close)
    return run(lambda: serve_until_signal(server))


if __name__ == "__main__":
    raise SystemExit(main())
