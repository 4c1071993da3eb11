"""A small authoritative DNS server on loopback, standing in for the upstream resolver.

Tests of forwarding must never query the machine's own resolver (DESIGN.md §4), so they
start one of these on 127.0.0.1 and point `--dns-upstream` at it. It answers from a fixed
table of records over UDP and TCP (threads, so synchronous e2e tests can use it as well
as asyncio ones), answers NXDOMAIN with an SOA for names it does not know, and counts
the queries it saw, so a test can tell a cached answer from a forwarded one.
"""

from __future__ import annotations

import socketserver
import struct
import threading
from collections import Counter
from typing import Any, Iterable

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


class StaticUpstream:
    """`records`: ("name.", "TYPE", "rdata text", ttl) tuples. Use as a context manager."""

    def __init__(self, records: Iterable[tuple[str, str, str, int]], host: str = "127.0.0.1"
                 ) -> None:
        self.records: dict[tuple[str, int], list[tuple[str, int]]] = {}
        for name, rdtype, text, ttl in records:
            key = (name.lower(), dns.rdatatype.from_text(rdtype))
            self.records.setdefault(key, []).append((text, ttl))
        self.queries: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        upstream = self

        class Udp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                out = upstream.answer(data)
                if out is not None:
                    sock.sendto(out, self.client_address)

        class Tcp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                head = self.request.recv(2)
                if len(head) < 2:
                    return
                (size,) = struct.unpack("!H", head)
                data = b""
                while len(data) < size:
                    chunk = self.request.recv(size - len(data))
                    if not chunk:
                        return
                    data += chunk
                out = upstream.answer(data, tcp=True)
                if out is not None:
                    self.request.sendall(struct.pack("!H", len(out)) + out)

        # UDP and TCP on one port: the kernel picks a free UDP port, whose TCP twin may be
        # taken by someone else; then try another (a few tries always suffice).
        for attempt in range(20):
            self.udp = socketserver.ThreadingUDPServer((host, 0), Udp)
            self.address: tuple[str, int] = self.udp.server_address[:2]  # type: ignore[assignment]
            self.tcp = socketserver.ThreadingTCPServer((host, self.address[1]), Tcp,
                                                       bind_and_activate=False)
            self.tcp.allow_reuse_address = True
            try:
                self.tcp.server_bind()
                break
            except OSError:
                self.tcp.server_close()
                self.udp.server_close()
                if attempt == 19:
                    raise
        self.tcp.server_activate()
        self._threads = [threading.Thread(target=s.serve_forever, daemon=True)
                         for s in (self.udp, self.tcp)]

    @property
    def spec(self) -> str:
        """IP:PORT, as `--dns-upstream` takes it."""
        return f"{self.address[0]}:{self.address[1]}"

    def answer(self, data: bytes, tcp: bool = False) -> bytes | None:
        try:
            query = dns.message.from_wire(data)
        except Exception:
            return None
        reply = dns.message.make_response(query)
        q = query.question[0]
        name = q.name.to_text().lower()
        with self._lock:
            self.queries[(name, dns.rdatatype.to_text(q.rdtype))] += 1
        found = self.records.get((name, int(q.rdtype)))
        if found:
            for text, ttl in found:
                reply.answer.append(dns.rrset.from_text(q.name, ttl, "IN", q.rdtype, text))
        else:
            if not any(k[0] == name for k in self.records):
                reply.set_rcode(dns.rcode.NXDOMAIN)
            zone = ".".join(name.split(".")[-3:]) or "."
            reply.authority.append(dns.rrset.from_text(
                zone, 60, "IN", "SOA", "ns.upstream. admin.upstream. 1 3600 600 86400 30"))
        return reply.to_wire(max_size=65535 if tcp else 512)

    def __enter__(self) -> "StaticUpstream":
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        for s in (self.udp, self.tcp):
            s.shutdown()
            s.server_close()
