"""The DNS server edge: UDP and TCP sockets in front of `ClusterDNS` and the `Forwarder`.

Per query, `ClusterDNS.handle` (pure, microseconds) says what to do: send its bytes
(cluster names, answered from prebuilt responses), forward the query upstream, chase an
ExternalName's target upstream, or drop the packet. Only the last three leave the
datagram callback: they become tasks, so a slow upstream never holds up cluster answers.

UDP: one datagram in, at most one out; a malformed datagram is dropped or answered
FORMERR by the core and never disturbs other queries (an exception in handling one
packet is counted as a panic, logged, and answered SERVFAIL). TCP (RFC 7766): two-byte
length-prefixed messages, several per connection, answered in order; idle connections
close after `TCP_IDLE_SECONDS`.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from typing import Callable, Coroutine, Protocol

import dns.exception
import dns.flags
import dns.message
import dns.rcode

from svcnet.dns.reply import Reply, append_chase
from svcnet.dns.metrics import DnsMetrics
from svcnet.dns.querylog import query_log_line
from svcnet.dns.upstream import Forwarder, servfail

log = logging.getLogger("svcnet.dns")

TCP_IDLE_SECONDS = 10.0
MAX_UDP_RESPONSE = 512  # without EDNS0 (RFC 1035)


class Core(Protocol):
    """What the server needs from `svcnet.dns.cluster.ClusterDNS`."""

    def handle(self, wire: bytes, *, tcp: bool) -> Reply: ...


def _udp_limit(query: dns.message.Message) -> int:
    return max(MAX_UDP_RESPONSE, query.payload) if query.edns >= 0 else MAX_UDP_RESPONSE


def _render(reply: dns.message.Message, query: dns.message.Message, tcp: bool) -> bytes:
    """Wire form of a reply built here (forwarded/chased), truncated (TC) if UDP needs it."""
    limit = 65535 if tcp else _udp_limit(query)
    try:
        return reply.to_wire(max_size=limit)
    except dns.exception.TooBig:
        short = dns.message.make_response(query)
        short.set_rcode(reply.rcode())
        short.flags |= dns.flags.TC
        return short.to_wire(max_size=limit)


class DnsServer:
    """Serves one core + forwarder on UDP and TCP sockets (see the module docstring)."""

    def __init__(self, core: Core, forwarder: Forwarder, metrics: DnsMetrics, *,
                 query_log: Callable[[str], None] | None = None) -> None:
        """`query_log`, when given, receives one CoreDNS-style line per query
        (`svcnet.dns.querylog`); off by default, as it parses every message."""
        self.core = core
        self.forwarder = forwarder
        self.metrics = metrics
        self.query_log = query_log
        metrics.forwarder = forwarder
        self._udp: list[asyncio.DatagramTransport] = []
        self._tcp: list[asyncio.base_events.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen on host:port (UDP and TCP; port 0 picks one, the same for both when it
        can). Returns the bound address."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self), local_addr=(host, port))
        bound = transport.get_extra_info("sockname")[:2]
        self._udp.append(transport)
        server = await asyncio.start_server(self._serve_tcp, host, bound[1], backlog=256)
        self._tcp.append(server)
        log.info("DNS serving on %s:%s (udp, tcp)", host, bound[1])
        return str(bound[0]), int(bound[1])

    async def close(self) -> None:
        for t in self._udp:
            t.close()
        for s in self._tcp:
            s.close()
            await s.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- one query --------------------------------------------------------------------------

    def answer_now(self, data: bytes, tcp: bool, family: str, start: float
                   ) -> tuple[bytes | None, Reply | None]:
        """The synchronous part: (bytes to send now, or None; the reply when more work is
        needed upstream, else None). Never raises. `start` is when the query arrived
        (perf_counter): the transport takes it once, for metrics and the query log."""
        proto = "tcp" if tcp else "udp"
        try:
            reply = self.core.handle(data, tcp=tcp)
        except Exception:  # a bug must not take the server down, nor go unnoticed
            self.metrics.panics += 1
            log.exception("DNS core failed on a %d-byte query", len(data))
            try:
                out = servfail(dns.message.from_wire(data)).to_wire()
            except Exception:
                out = None
            return out, None
        if reply.action == "answer" and reply.wire is not None:
            self.metrics.observe(proto, family, reply.qtype, reply.rcode, "kubernetes",
                                 time.perf_counter() - start, len(data), len(reply.wire))
            return reply.wire, None
        if reply.action == "drop":
            self.metrics.dropped(proto, family)
            return None, None
        if reply.action == "forward" and self.forwarder.is_probe(reply.qname):
            # Our own loop probe came back: answer it here, so the circle ends.
            try:
                query = dns.message.from_wire(data)
                return servfail(query).to_wire(), None
            except dns.exception.DNSException:
                return None, None
        return None, reply

    async def answer_later(self, data: bytes, reply: Reply, tcp: bool, family: str,
                           start: float) -> bytes | None:
        """Forward or chase upstream; the bytes to send (None: nothing)."""
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return None
        if reply.action == "chase" and reply.wire is not None and reply.target:
            # An ExternalName outside the cluster: the CNAME, plus the target's records
            # when upstream has them (the CNAME alone when it does not).
            target = dns.message.make_query(reply.target, query.question[0].rdtype)
            target.flags |= dns.flags.RD
            upstream = await self.forwarder.resolve(target)
            out = reply.wire
            if upstream.rcode() == dns.rcode.NOERROR and upstream.answer:
                out = append_chase(reply.wire, upstream.to_wire(), max_size=reply.max_size)
            rcode, plugin = reply.rcode, "kubernetes"
        else:
            answer = await self.forwarder.resolve(query)
            out = _render(answer, query, tcp)
            rcode, plugin = answer.rcode(), "forward"
        self.metrics.observe("tcp" if tcp else "udp", family, reply.qtype, rcode, plugin,
                             time.perf_counter() - start, len(data), len(out))
        return out

    def log_query(self, peer: tuple[str, int], proto: str, data: bytes, out: bytes | None,
                  start: float) -> None:
        if self.query_log is not None:
            host = f"[{peer[0]}]" if ":" in str(peer[0]) else str(peer[0])
            self.query_log(query_log_line(f"{host}:{peer[1]}", proto, data, out,
                                          time.perf_counter() - start))

    # ---- transports -------------------------------------------------------------------------

    async def _later_udp(self, transport: asyncio.DatagramTransport, data: bytes, reply: Reply,
                         addr: tuple[str, int], family: str, start: float) -> None:
        try:
            out = await self.answer_later(data, reply, False, family, start)
        except Exception:
            self.metrics.panics += 1
            log.exception("DNS forwarding failed")
            return
        if out is not None and not transport.is_closing():
            transport.sendto(out, addr)
        self.log_query(addr, "udp", data, out, start)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                         ) -> None:
        peer = writer.get_extra_info("peername") or ("", 0)
        family = "2" if ":" in str(peer[0]) else "1"
        try:
            while True:
                head = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_SECONDS)
                (size,) = struct.unpack("!H", head)
                data = await asyncio.wait_for(reader.readexactly(size), TCP_IDLE_SECONDS)
                start = time.perf_counter()
                out, reply = self.answer_now(data, True, family, start)
                if reply is not None:
                    out = await self.answer_later(data, reply, True, family, start)
                self.log_query(peer, "tcp", data, out, start)
                if out is None:
                    continue
                writer.write(struct.pack("!H", len(out)) + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
            pass
        except Exception:
            self.metrics.panics += 1
            log.exception("DNS TCP connection from %s failed", peer)
        finally:
            writer.close()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        family = "2" if ":" in addr[0] else "1"
        start = time.perf_counter()
        out, reply = self.server.answer_now(data, False, family, start)
        assert self.transport is not None
        if out is not None:
            self.transport.sendto(out, addr)
        elif reply is not None:
            self.server._spawn(self.server._later_udp(self.transport, data, reply, addr, family,
                                                      start))
            return
        self.server.log_query(addr, "udp", data, out, start)

    def error_received(self, exc: Exception) -> None:
        log.debug("DNS UDP socket error: %s", exc)
