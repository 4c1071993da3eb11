"""The `netexec` image: agnhost's netexec, the Kubernetes networking tests' Swiss knife.

HTTP on --http-port (8080):

    GET /                 "NOW: <time>"
    GET /hostname         the pod's hostname
    GET /clientip         the client's "ip:port" as this server sees it (source IP checks)
    GET /echo?msg=x       "x" (with &code=N: that HTTP status)
    GET /header?key=K     the request's header K
    GET /dial?request=hostname&protocol=http|udp&host=H&port=P&tries=N
                          ask H:P N times; {"responses": [...], "errors": [...]}
    GET /exit?code=N      exit the process with status N (restart tests)
    GET /healthz          200 "ok", or 500 while failing
    GET /healthz/fail     make /healthz fail from now on (liveness/readiness demos)
    GET /healthz/ok       make /healthz succeed again

UDP on --udp-port (8081), one reply per datagram, as agnhost (input is trimmed and
lower-cased): "hostname" -> the hostname, "echo X" -> "x", "clientip" -> the client's
"ip:port". The healthz toggle is svcnet's own (agnhost's netexec has none): it lets a
probe demo flip a pod unhealthy and back with one curl, no restart needed.

SIGTERM or SIGINT stops it gracefully, after --delay-shutdown seconds (default 0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from typing import Sequence

import aiohttp
from aiohttp import web

from svcnet.images.serving import (add_flag, bound_port, hostname, log, run,
                                   serve_until_signal)

DEFAULT_HTTP_PORT = 8080
DEFAULT_UDP_PORT = 8081
_DIAL_TIMEOUT = 5.0


def _join(host: str, port: int | str) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _UDPEcho(asyncio.DatagramProtocol):
    def __init__(self, name: str) -> None:
        self.name = name
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        text = data.decode("utf-8", "replace").strip().lower()
        if text == "hostname":
            reply = self.name
        elif text.startswith("echo "):
            reply = text.split(" ", 1)[1]
        elif text == "clientip":
            reply = _join(addr[0], addr[1])
        else:
            if text:
                log(f"netexec: unknown udp command {text!r}")
            return
        if self.transport is not None:
            self.transport.sendto(reply.encode(), addr)


class _UDPClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if not self.reply.done():
            self.reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc)


class NetExec:
    """The servers of one netexec process. Port 0 binds an ephemeral port (tests); the
    bound ports are then in `http_port`/`udp_port`. `exit` is called by /exit."""

    def __init__(self, *, host: str = "", http_port: int = DEFAULT_HTTP_PORT,
                 udp_port: int = DEFAULT_UDP_PORT, name: str | None = None) -> None:
        self.host = host or None
        self.http_port, self.udp_port = http_port, udp_port
        self.name = name if name is not None else hostname()
        self.healthy = True
        self.exit = os._exit
        self._runner: web.AppRunner | None = None
        self._udp: asyncio.DatagramTransport | None = None

    def app(self) -> web.Application:
        app = web.Application()
        r = app.router
        r.add_get("/", self._root)
        r.add_get("/hostname", self._hostname)
        r.add_get("/clientip", self._clientip)
        r.add_get("/echo", self._echo)
        r.add_get("/header", self._header)
        r.add_get("/dial", self._dial)
        r.add_get("/exit", self._exit)
        r.add_get("/healthz", self._healthz)
        r.add_get("/healthz/fail", self._healthz_set)
        r.add_get("/healthz/ok", self._healthz_set)
        return app

    async def _root(self, request: web.Request) -> web.Response:
        return web.Response(text=f"NOW: {time.strftime('%Y-%m-%d %H:%M:%S %z')}")

    async def _hostname(self, request: web.Request) -> web.Response:
        return web.Response(text=self.name)

    async def _clientip(self, request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        return web.Response(text=_join(peer[0], peer[1]) if peer else "")

    async def _echo(self, request: web.Request) -> web.Response:
        code = request.query.get("code", "")
        try:
            status = int(code) if code else 200
        except ValueError:
            return web.Response(status=400, text=f"invalid code {code!r}")
        return web.Response(status=status, text=request.query.get("msg", ""))

    async def _header(self, request: web.Request) -> web.Response:
        return web.Response(text=request.headers.get(request.query.get("key", ""), ""))

    async def _exit(self, request: web.Request) -> web.Response:
        code = request.query.get("code", "0")
        log(f"netexec: exiting with status {code} (GET /exit)")
        asyncio.get_running_loop().call_later(0.05, self.exit, int(code) if code.isdigit()
                                              else 0)
        return web.Response(text="")

    async def _healthz(self, request: web.Request) -> web.Response:
        if self.healthy:
            return web.Response(text="ok")
        return web.Response(status=500, text="healthz is failing (GET /healthz/ok restores)")

    async def _healthz_set(self, request: web.Request) -> web.Response:
        self.healthy = request.path.endswith("/ok")
        return web.Response(text=f"healthz will now {'succeed' if self.healthy else 'fail'}")

    async def _dial(self, request: web.Request) -> web.Response:
        q = request.query
        protocol, target = q.get("protocol", "http").lower(), q.get("request", "")
        host, port = q.get("host", ""), q.get("port", "")
        try:
            tries = int(q.get("tries", "1"))
        except ValueError:
            return web.Response(status=400, text="tries must be a number")
        if protocol not in ("", "http", "udp") or not host or not port:
            return web.Response(status=400, text="need host, port and protocol http or udp")
        responses: list[str] = []
        errors: list[str] = []
        for _ in range(max(tries, 1)):
            try:
                if protocol == "udp":
                    responses.append(await self._dial_udp(target, host, int(port)))
                else:
                    responses.append(await self._dial_http(target, _join(host, port)))
            except (OSError, asyncio.TimeoutError, aiohttp.ClientError, ValueError) as e:
                errors.append(f"error trying: {e or type(e).__name__}")
        out: dict[str, list[str]] = {}
        if responses:
            out["responses"] = responses
        if errors:
            out["errors"] = errors
        return web.Response(text=json.dumps(out), content_type="application/json")

    async def _dial_http(self, target: str, host_port: str) -> str:
        timeout = aiohttp.ClientTimeout(total=_DIAL_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(f"http://{host_port}/{target.lstrip('/')}") as resp:
                return await resp.text()

    async def _dial_udp(self, target: str, host: str, port: int) -> str:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_datagram_endpoint(
            _UDPClient, remote_addr=(host, port))
        try:
            transport.sendto(target.encode())
            return (await asyncio.wait_for(proto.reply, _DIAL_TIMEOUT)).decode()
        finally:
            transport.close()

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.http_port, reuse_address=True)
        await site.start()
        self.http_port = bound_port(self._runner.addresses, self.http_port)
        log(f"netexec: HTTP on port {self.http_port}")
        if self.udp_port >= 0:
            loop = asyncio.get_running_loop()
            self._udp, _ = await loop.create_datagram_endpoint(
                lambda: _UDPEcho(self.name), local_addr=(self.host or "0.0.0.0", self.udp_port))
            self.udp_port = self._udp.get_extra_info("sockname")[1]
            log(f"netexec: UDP on port {self.udp_port}")

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._runner is not None:
            await self._runner.cleanup()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="netexec", description="HTTP and UDP test server like agnhost netexec: "
        "/hostname, /clientip, /echo?msg=, /dial, /exit, /healthz (GET /healthz/fail and "
        "/healthz/ok flip it), UDP 'hostname' / 'echo X' / 'clientip'.")
    add_flag(p, "http-port", type=int, default=DEFAULT_HTTP_PORT,
             help="HTTP port (default 8080)")
    add_flag(p, "udp-port", type=int, default=DEFAULT_UDP_PORT,
             help="UDP port (default 8081; -1 disables UDP)")
    add_flag(p, "sctp-port", type=int, default=-1, help="accepted for agnhost compatibility; "
             "SCTP is not served")
    add_flag(p, "delay-shutdown", type=int, default=0,
             help="seconds to keep serving after SIGTERM (default 0)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.sctp_port != -1:
        log("netexec: --sctp-port is not supported by svcnet; serving HTTP and UDP only")
    server = NetExec(http_port=args.http_port, udp_port=args.udp_port)
    return run(lambda: serve_until_signal(server, delay_shutdown=args.delay_shutdown))


if __name__ == "__main__":
    raise SystemExit(main())
