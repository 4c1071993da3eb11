"""Forwarding names outside the cluster to upstream resolvers (CoreDNS `forward` + `loop`).

`upstreams_from_resolv_conf` reads the host's nameservers, as `forward . /etc/resolv.conf`
does. `Forwarder.resolve(query)` answers a parsed query: from the `ResponseCache` when it
can, else by asking the upstreams in order (UDP, 2 s each; a truncated UDP answer is asked
again over TCP, since the client may not retry the whole path), caching what comes back.
Every failure (all upstreams silent or refusing) is SERVFAIL, never an exception.

Loop detection (CoreDNS `loop`): a resolver whose upstream is itself (resolv.conf pointing
at 127.0.0.53 of a stub that forwards back to us, or a test pointing at our own port)
would forward every outside query round in circles. At start `probe()` sends a query for a
random name `<n>.<n>.` of type HINFO upstream; if that name comes back to this server
(`is_probe`), the server answers it itself (so the circle ends) and `looped` is set, after
which outside names get SERVFAIL and an error is logged, rather than CoreDNS's exit (we
share the API server's process). An answer to the probe from upstream means no loop.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import struct
import time
from pathlib import Path
from typing import Callable

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

from svcnet.dns.forward_cache import ResponseCache, aged_reply, cache_ttl, key_of

log = logging.getLogger("svcnet.dns.forward")

Upstream = tuple[str, int]
UPSTREAM_TIMEOUT = 2.0
MAX_CONCURRENT = 1000  # CoreDNS forward's max_concurrent in kubeadm's Corefile


def parse_upstream(text: str) -> Upstream:
    """`IP`, `IP:PORT` or `[IPv6]:PORT` -> (ip, port); ValueError with the reason."""
    value = text.strip()
    port = 53
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                raise ValueError(f"upstream {text!r}: expected [IPv6]:PORT")
            port = int(rest[1:])
    elif value.count(":") == 1:
        host, _, p = value.partition(":")
        if not p.isdigit():
            raise ValueError(f"upstream {text!r}: port must be a number")
        port = int(p)
    else:
        host = value
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"upstream {text!r}: not an IP address") from None
    if not 0 < port < 65536:
        raise ValueError(f"upstream {text!r}: port must be in 1-65535")
    return str(ip), port


def upstreams_from_resolv_conf(path: Path = Path("/etc/resolv.conf")) -> list[Upstream]:
    """The `nameserver` entries of a resolv.conf, in order (unreadable file: none)."""
    try:
        text = path.read_text()
    except OSError:
        return []
    out: list[Upstream] = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                out.append(parse_upstream(fields[1].split("%", 1)[0]))
            except ValueError:
                continue
    return out


def servfail(query: dns.message.Message) -> dns.message.Message:
    reply = dns.message.make_response(query)
    reply.set_rcode(dns.rcode.SERVFAIL)
    return reply


class _Datagram(asyncio.DatagramProtocol):
    def __init__(self, qid: int) -> None:
        self.qid = qid
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: object) -> None:
        # Only a datagram carrying our ID answers us (the rest is stray or spoofed).
        if len(data) >= 2 and struct.unpack_from("!H", data)[0] == self.qid \
                and not self.answer.done():
            self.answer.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


async def _ask_udp(wire: bytes, qid: int, upstream: Upstream, timeout: float) -> bytes:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        lambda: _Datagram(qid), remote_addr=upstream)
    try:
        transport.sendto(wire)
        return await asyncio.wait_for(proto.answer, timeout)
    finally:
        transport.close()


async def _ask_tcp(wire: bytes, upstream: Upstream, timeout: float) -> bytes:
    async def exchange() -> bytes:
        reader, writer = await asyncio.open_connection(*upstream)
        try:
            writer.write(struct.pack("!H", len(wire)) + wire)
            await writer.drain()
            (size,) = struct.unpack("!H", await reader.readexactly(2))
            return await reader.readexactly(size)
        finally:
            writer.close()
    return await asyncio.wait_for(exchange(), timeout)


class Forwarder:
    """Answers outside names through the upstreams, with a cache (module docstring)."""

    def __init__(self, upstreams: list[Upstream], *, cache: ResponseCache | None = None,
                 timeout: float = UPSTREAM_TIMEOUT, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.upstreams = list(upstreams)
        self.cache = cache if cache is not None else ResponseCache()
        self.timeout = timeout
        self.clock = clock
        self.looped = False
        self.probe_name = f"{random.getrandbits(63)}.{random.getrandbits(63)}."
        self.probes_seen = 0
        self.in_flight = 0
        self.requests: dict[str, int] = {}
        self.responses: dict[tuple[str, str], int] = {}

    def is_probe(self, qname: str) -> bool:
        """True for our own loop probe coming back to us (which marks a loop)."""
        if qname.rstrip(".") != self.probe_name.rstrip("."):
            return False
        self.probes_seen += 1
        if not self.looped:
            self.looped = True
            log.error("forwarding loop detected: the probe %s HINFO sent to the upstreams %s "
                      "came back to this server; outside names now get SERVFAIL. Point "
                      "--dns-upstream at a resolver that does not forward to svcnet.",
                      self.probe_name, ", ".join(f"{h}:{p}" for h, p in self.upstreams))
        return True

    async def probe(self) -> None:
        """Send the loop probe upstream a few times (stops at the first upstream answer)."""
        query = dns.message.make_query(self.probe_name, dns.rdatatype.HINFO)
        for _ in range(3):
            if self.looped or not self.upstreams:
                return
            answer = await self.exchange(query)
            if answer is not None and not self.looped:
                return  # upstream answered it itself: no loop
            await asyncio.sleep(0.5)

    async def exchange(self, query: dns.message.Message) -> dns.message.Message | None:
        """Ask the upstreams in order; the first parsable answer, or None."""
        wire = query.to_wire()
        for upstream in self.upstreams:
            to = f"{upstream[0]}:{upstream[1]}"
            self.requests[to] = self.requests.get(to, 0) + 1
            try:
                data = await _ask_udp(wire, query.id, upstream, self.timeout)
                answer = dns.message.from_wire(data, ignore_trailing=True)
                if answer.flags & dns.flags.TC:
                    answer = dns.message.from_wire(await _ask_tcp(wire, upstream, self.timeout))
            except (OSError, asyncio.TimeoutError, dns.exception.DNSException, EOFError,
                    asyncio.IncompleteReadError) as e:
                log.debug("upstream %s failed: %s", to, e)
                continue
            if answer.id != query.id:
                continue
            rc = dns.rcode.to_text(answer.rcode())
            self.responses[(to, rc)] = self.responses.get((to, rc), 0) + 1
            if answer.rcode() in (dns.rcode.SERVFAIL, dns.rcode.REFUSED):
                continue  # try the next upstream, as a stub resolver would
            return answer
        return None

    async def resolve(self, query: dns.message.Message) -> dns.message.Message:
        """The reply to `query` (cache, then upstreams; SERVFAIL when neither answers)."""
        if (self.looped or not self.upstreams or self.in_flight >= MAX_CONCURRENT
                or len(query.question) != 1):
            return servfail(query)
        key = key_of(query)
        now = self.clock()
        if key is not None:
            hit = self.cache.get(key, now)
            if hit is not None:
                return aged_reply(hit.response, hit.aged, query, hit.ttl)
        self.in_flight += 1
        try:
            upstream_query = dns.message.make_query(
                query.question[0].name, query.question[0].rdtype, query.question[0].rdclass,
                use_edns=0, want_dnssec=bool(query.ednsflags & dns.flags.DO),
                payload=1232)
            upstream_query.flags = (upstream_query.flags & ~dns.flags.RD) | \
                (query.flags & dns.flags.RD) | (query.flags & dns.flags.CD)
            answer = await self.exchange(upstream_query)
        finally:
            self.in_flight -= 1
        if answer is None:
            return servfail(query)
        ttl = cache_ttl(answer, self.cache.max_ttl)
        if key is not None:
            self.cache.put(key, answer, self.clock())
        return aged_reply(answer, 0, query, ttl or None)
