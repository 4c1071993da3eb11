"""Fuzzing the DNS server over real UDP: 100,000 random and mutated packets (issue 7, 3).

A seeded generator (so a failure reproduces) mixes random bytes with mutations of valid
queries: bit flips, overwritten and inserted bytes, truncation, random section counts,
random flag/opcode bits, compression pointers to anywhere (including themselves),
splices of two queries. They are sent in batches to a DnsServer with 2,000 Services;
after each batch a valid query must be answered correctly within 2 s (no hang, and every
earlier packet has been handled: one socket, one loop, in order). At the end: no internal
error was counted, and every response the server sent parses as DNS.
"""

from __future__ import annotations

import asyncio
import random
import struct

import dns.exception
import dns.message
import dns.rcode

from svcnet.dns import ClusterDNS
from svcnet.dns.metrics import DnsMetrics
from svcnet.dns.server import DnsServer
from svcnet.dns.testing import populate, query
from svcnet.dns.upstream import Forwarder

INPUTS = 100_000
BATCH = 20  # well within a default socket receive buffer, so the kernel drops nothing
PROBE_ID = 0xBEEF


def corpus(names: list[str]) -> list[bytes]:
    out = []
    for i, name in enumerate(names[:40]):
        for qtype in ("A", "AAAA", "SRV", "PTR", "TXT", "ANY", "SOA", "NS", "CNAME"):
            out.append(query(name, qtype, ident=i, edns=1232 if i % 2 else None,
                             do=i % 3 == 0))
    out.append(query("1-2-3-4.default.pod.cluster.local.", "A"))
    out.append(query("4.3.2.1.in-addr.arpa.", "PTR"))
    out.append(query("www.example.org.", "A"))
    out.append(query("_http._tcp.svc0.ns0.svc.cluster.local.", "SRV"))
    return out


def mutate(rng: random.Random, seeds: list[bytes]) -> bytes:
    kind = rng.randrange(10)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 600))
    data = bytearray(rng.choice(seeds))
    if kind == 1:
        for _ in range(rng.randrange(1, 9)):
            pos = rng.randrange(len(data) * 8)
            data[pos // 8] ^= 1 << (pos % 8)
    elif kind == 2:
        for _ in range(rng.randrange(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == 3:
        data = data[:rng.randrange(len(data))]
    elif kind == 4:
        data += rng.randbytes(rng.randrange(1, 200))
    elif kind == 5:
        struct.pack_into("!HHHH", data, 4, *(rng.choice([0, 1, 2, 255, 65535])
                                             for _ in range(4)))
    elif kind == 6:
        data[2] = rng.randrange(256)
        data[3] = rng.randrange(256)
    elif kind == 7:  # a compression pointer in the question name, possibly to itself
        pos = rng.randrange(12, len(data))
        data[pos:pos + 2] = bytes([0xC0 | rng.randrange(4), rng.randrange(256)])
    elif kind == 8:
        other = rng.choice(seeds)
        cut = rng.randrange(len(data))
        data = data[:cut] + other[rng.randrange(len(other)):]
    else:
        pos = rng.randrange(len(data))
        data[pos:pos] = rng.randbytes(rng.randrange(1, 70))
    return bytes(data)


class Counting:
    """The core, counting what reaches it (proves every input was handled, none dropped
    by the kernel)."""

    def __init__(self, core: ClusterDNS) -> None:
        self.core = core
        self.handled = 0

    def handle(self, wire: bytes, *, tcp: bool) -> object:
        self.handled += 1
        return self.core.handle(wire, tcp=tcp)


class Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.responses = 0
        self.unparsable = 0
        self.probe: asyncio.Future[dns.message.Message] | None = None

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.responses += 1
        try:
            msg = dns.message.from_wire(data, ignore_trailing=True)
        except dns.exception.DNSException:
            self.unparsable += 1
            return
        if msg.id == PROBE_ID and self.probe is not None and not self.probe.done():
            self.probe.set_result(msg)


async def test_server_survives_100k_random_and_mutated_packets() -> None:
    core = ClusterDNS()
    names = populate(core, 2000, endpoints=2)
    metrics = DnsMetrics("dns://127.0.0.1:0")
    # outside names go to a closed loopback port: they fail fast, nothing leaves the host
    counting = Counting(core)
    server = DnsServer(counting, Forwarder([("127.0.0.1", 9)], timeout=0.2),  # type: ignore[arg-type]
                       metrics)
    host, port = await server.start("127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(Client, remote_addr=(host, port))
    rng = random.Random(20261121)
    seeds = corpus(names)
    probe = query(names[7], "A", ident=PROBE_ID)
    probes = empty = 0
    try:
        sent = 0
        while sent < INPUTS:
            for _ in range(min(BATCH, INPUTS - sent)):
                packet = mutate(rng, seeds)
                empty += not packet  # asyncio does not send empty datagrams; see the
                transport.sendto(packet)  # malformed-packet test for those
                sent += 1
            client.probe = loop.create_future()
            transport.sendto(probe)
            probes += 1
            answer = await asyncio.wait_for(client.probe, 2)
            assert answer.rcode() == dns.rcode.NOERROR and answer.answer, f"after {sent}"
        assert sent == INPUTS and counting.handled == INPUTS - empty + probes
        assert metrics.panics == 0 and core.cache_info().errors == 0, core.last_error
        assert client.unparsable == 0
        assert client.responses > INPUTS // 4  # most inputs got some answer
    finally:
        transport.close()
        await server.close()
