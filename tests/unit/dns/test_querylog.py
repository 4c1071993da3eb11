"""CoreDNS-style query log lines."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import dns.rrset

from svcnet.dns.querylog import query_log_line


def test_answered_query_reads_like_coredns_log_plugin() -> None:
    q = dns.message.make_query("hostnames.default.svc.cluster.local.", "A")
    q.id = 52301
    r = dns.message.make_response(q)
    r.flags |= dns.flags.AA
    r.answer.append(dns.rrset.from_text(q.question[0].name, 5, "IN", "A", "10.96.3.4"))
    wire, out = q.to_wire(), r.to_wire()
    line = query_log_line("10.244.1.5:47915", "udp", wire, out, 0.000157)
    assert line == ('10.244.1.5:47915 - 52301 "A IN hostnames.default.svc.cluster.local. udp '
                    f'{len(wire)} false 512" NOERROR qr,aa,rd {len(out)} 0.000157s')


def test_edns_do_bit_nxdomain_and_drops() -> None:
    q = dns.message.make_query("nope.example.", "AAAA", want_dnssec=True, payload=1232)
    r = dns.message.make_response(q)
    r.set_rcode(dns.rcode.NXDOMAIN)
    line = query_log_line("[::1]:5", "tcp", q.to_wire(), r.to_wire(), 0.5)
    assert '"AAAA IN nope.example. tcp' in line and "true 1232\" NXDOMAIN" in line
    assert query_log_line("h:1", "udp", q.to_wire(), None, 0).endswith("DROPPED - - 0.000000s")
    assert query_log_line("h:1", "udp", b"\x01", b"", 0) == 'h:1 - ? "malformed udp 1" 0 0.000000s'
