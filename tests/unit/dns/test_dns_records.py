"""Query -> answer table for the standard cluster (dnsprobe.py), from the Kubernetes DNS
spec and CoreDNS `kubernetes` plugin behaviour (reference/dns.md).

Each case is what a client sees: rcode, answer section and (for SRV/NS) additional
section, compared order-insensitively. Every negative answer must also be authoritative
and carry the zone SOA; `test_negative_answers_carry_the_zone_soa` checks that.
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.rcode
import pytest

from dnsprobe import ZONE, build, decode, is_authoritative, records, soa_fields
from svcnet.dns.testing import query

D = f"default.svc.{ZONE}."  # suffix of names in the default namespace
NOERROR, NXDOMAIN, REFUSED = dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.REFUSED


@dataclass(frozen=True)
class Expect:
    rcode: int = NOERROR
    answer: frozenset[str] = frozenset()
    additional: frozenset[str] | None = None  # None: not checked
    forward: bool = False


def ok(*answer: str, extra: tuple[str, ...] | None = None) -> Expect:
    return Expect(NOERROR, frozenset(answer), None if extra is None else frozenset(extra))


NODATA = Expect(NOERROR)
NX = Expect(NXDOMAIN)
FORWARD = Expect(forward=True)

CASES: list[tuple[str, str, Expect]] = [
    # --- ClusterIP Services (spec 2.3.1) ---------------------------------------------
    (f"web.{D}", "A", ok(f"web.{D} 5 IN A 10.96.0.20")),
    (f"web.{D}", "AAAA", NODATA),                      # v4-only Service: NODATA, not NX
    (f"web.{D}", "TXT", NODATA),
    (f"web.{D}", "MX", NODATA),
    (f"web.{D}", "ANY", NODATA),
    (f"web.{D}", "CNAME", NODATA),
    (f"web.{D}", "PTR", NODATA),
    (f"web.{D}", "SOA", NODATA),                       # SOA only at the apex
    (f"web.{D}", "NS", NODATA),
    (f"web.{D}", "HINFO", NODATA),
    (f"missing.{D}", "A", NX),
    (f"missing.{D}", "AAAA", NX),
    (f"missing.{D}", "SRV", NX),
    (f"missing.{D}", "TXT", NX),
    (f"dual.{D}", "A", ok(f"dual.{D} 5 IN A 10.96.0.30")),
    (f"dual.{D}", "AAAA", ok(f"dual.{D} 5 IN AAAA fd00:10:96::30")),
    (f"v6only.{D}", "AAAA", ok(f"v6only.{D} 5 IN AAAA fd00:10:96::40")),
    (f"v6only.{D}", "A", NODATA),
    (f"svc1.testns.svc.{ZONE}.", "A", ok(f"svc1.testns.svc.{ZONE}. 5 IN A 10.96.1.1")),
    (f"svc1.{D}", "A", NX),                            # right name, wrong namespace
    # --- ClusterIP SRV (spec 2.3.2; CoreDNS weight = 100 / entries) ----------------------
    (f"_http._tcp.web.{D}", "SRV", ok(f"_http._tcp.web.{D} 5 IN SRV 0 100 80 web.{D}",
                                      extra=(f"web.{D} 5 IN A 10.96.0.20",))),
    (f"_https._tcp.web.{D}", "SRV", ok(f"_https._tcp.web.{D} 5 IN SRV 0 100 443 web.{D}",
                                       extra=(f"web.{D} 5 IN A 10.96.0.20",))),
    (f"_HTTP._TCP.web.{D}", "SRV", ok(f"_HTTP._TCP.web.{D} 5 IN SRV 0 100 80 web.{D}")),
    (f"_http._udp.web.{D}", "SRV", NX),                # protocol must match
    (f"_nope._tcp.web.{D}", "SRV", NX),
    (f"_http._tcp.web.{D}", "A", ok(f"_http._tcp.web.{D} 5 IN A 10.96.0.20")),
    (f"web.{D}", "SRV", ok(f"web.{D} 5 IN SRV 0 50 80 web.{D}",
                           f"web.{D} 5 IN SRV 0 50 443 web.{D}",
                           extra=(f"web.{D} 5 IN A 10.96.0.20",))),
    (f"_http._tcp.dual.{D}", "SRV", ok(f"_http._tcp.dual.{D} 5 IN SRV 0 50 80 dual.{D}",
                                       extra=(f"dual.{D} 5 IN A 10.96.0.30",
                                              f"dual.{D} 5 IN AAAA fd00:10:96::30"))),
    (f"_dns._udp.kube-dns.kube-system.svc.{ZONE}.", "SRV",
     ok(f"_dns._udp.kube-dns.kube-system.svc.{ZONE}. 5 IN SRV 0 100 53 "
        f"kube-dns.kube-system.svc.{ZONE}.")),
    (f"_dns-tcp._tcp.kube-dns.kube-system.svc.{ZONE}.", "SRV",
     ok(f"_dns-tcp._tcp.kube-dns.kube-system.svc.{ZONE}. 5 IN SRV 0 100 53 "
        f"kube-dns.kube-system.svc.{ZONE}.")),
    (f"single.{D}", "SRV", ok(f"single.{D} 5 IN SRV 0 100 8080 single.{D}")),
    (f"_http._tcp.single.{D}", "SRV", NX),             # unnamed ports have no SRV name
    # --- endpoints of a ClusterIP Service (CoreDNS extension) ----------------------------
    (f"10-244-4-10.web.{D}", "A", ok(f"10-244-4-10.web.{D} 5 IN A 10.244.4.10")),
    (f"10-244-4-11.web.{D}", "A", NX),                 # not ready
    (f"10-244-4-99.web.{D}", "A", NX),
    # --- headless Services (spec 2.4.1) --------------------------------------------------
    (f"nginx.{D}", "A", ok(f"nginx.{D} 5 IN A 10.244.1.10", f"nginx.{D} 5 IN A 10.244.1.11")),
    (f"nginx.{D}", "AAAA", NODATA),
    (f"web-0.nginx.{D}", "A", ok(f"web-0.nginx.{D} 5 IN A 10.244.1.10")),  # StatefulSet pod
    (f"web-1.nginx.{D}", "A", ok(f"web-1.nginx.{D} 5 IN A 10.244.1.11")),
    (f"web-2.nginx.{D}", "A", NX),                     # not ready
    (f"web-9.nginx.{D}", "A", NX),
    (f"web-0.nginx.{D}", "AAAA", NODATA),
    (f"x.web-0.nginx.{D}", "A", NX),                   # 6 labels: neither endpoint nor SRV
    (f"a.b.c.web.{D}", "A", NX),                       # too long
    (f"nohost.{D}", "A", ok(f"nohost.{D} 5 IN A 10.244.2.10", f"nohost.{D} 5 IN A 10.244.2.11")),
    (f"nohost.{D}", "AAAA", ok(f"nohost.{D} 5 IN AAAA fd00:10:244:2::10")),
    (f"10-244-2-10.nohost.{D}", "A", ok(f"10-244-2-10.nohost.{D} 5 IN A 10.244.2.10")),
    (f"fd00-10-244-2--10.nohost.{D}", "AAAA",
     ok(f"fd00-10-244-2--10.nohost.{D} 5 IN AAAA fd00:10:244:2::10")),
    (f"empty-headless.{D}", "A", NX),                  # spec 2.4.1: no ready endpoints
    (f"empty-headless.{D}", "SRV", NX),
    (f"unready.{D}", "A", NX),
    (f"pnr.{D}", "A", ok(f"pnr.{D} 5 IN A 10.244.3.10")),  # publishNotReadyAddresses
    (f"pnr-0.pnr.{D}", "A", ok(f"pnr-0.pnr.{D} 5 IN A 10.244.3.10")),
    (f"multi.{D}", "A", ok(f"multi.{D} 5 IN A 10.244.6.10", f"multi.{D} 5 IN A 10.244.6.11")),
    (f"noports.{D}", "A", ok(f"noports.{D} 5 IN A 10.244.7.10")),
    (f"noports.{D}", "SRV", NODATA),                   # addresses, but no port to name
    # --- headless SRV (spec 2.4.2): endpoint x named port, slice port numbers ------------
    (f"_web._tcp.nginx.{D}", "SRV",
     ok(f"_web._tcp.nginx.{D} 5 IN SRV 0 50 80 web-0.nginx.{D}",
        f"_web._tcp.nginx.{D} 5 IN SRV 0 50 80 web-1.nginx.{D}",
        extra=(f"web-0.nginx.{D} 5 IN A 10.244.1.10", f"web-1.nginx.{D} 5 IN A 10.244.1.11"))),
    (f"nginx.{D}", "SRV", ok(f"nginx.{D} 5 IN SRV 0 50 80 web-0.nginx.{D}",
                             f"nginx.{D} 5 IN SRV 0 50 80 web-1.nginx.{D}")),
    (f"web-0.nginx.{D}", "SRV", ok(f"web-0.nginx.{D} 5 IN SRV 0 100 80 web-0.nginx.{D}")),
    (f"_http._tcp.nohost.{D}", "SRV",
     ok(f"_http._tcp.nohost.{D} 5 IN SRV 0 33 8080 10-244-2-10.nohost.{D}",
        f"_http._tcp.nohost.{D} 5 IN SRV 0 33 8080 10-244-2-11.nohost.{D}",
        f"_http._tcp.nohost.{D} 5 IN SRV 0 33 8080 fd00-10-244-2--10.nohost.{D}",
        extra=(f"10-244-2-10.nohost.{D} 5 IN A 10.244.2.10",
               f"10-244-2-11.nohost.{D} 5 IN A 10.244.2.11",
               f"fd00-10-244-2--10.nohost.{D} 5 IN AAAA fd00:10:244:2::10"))),
    (f"_http._tcp.web.{D}", "SRV", ok(f"_http._tcp.web.{D} 5 IN SRV 0 100 80 web.{D}")),
    # --- ExternalName (spec 2.5) ---------------------------------------------------------
    (f"ext.{D}", "CNAME", ok(f"ext.{D} 5 IN CNAME www.example.com.")),
    (f"ext.{D}", "SRV", NODATA),
    (f"ext.{D}", "TXT", NODATA),
    (f"alias.{D}", "A", ok(f"alias.{D} 5 IN CNAME web.{D}", f"web.{D} 5 IN A 10.96.0.20")),
    (f"alias.{D}", "CNAME", ok(f"alias.{D} 5 IN CNAME web.{D}")),
    (f"x.ext.{D}", "A", NX),                           # no names under an ExternalName
    (f"_http._tcp.ext.{D}", "SRV", NX),
    (f"extip.{D}", "A", NX),                           # an IP is no CNAME target
    # --- the zone's structure -----------------------------------------------------------
    (f"{ZONE}.", "A", NODATA),
    (f"{ZONE}.", "SRV", NODATA),
    (f"{ZONE}.", "SOA",
     ok(f"{ZONE}. 5 IN SOA ns.dns.{ZONE}. hostmaster.{ZONE}. 1 7200 1800 86400 5")),
    (f"{ZONE}.", "NS", ok(f"{ZONE}. 5 IN NS kube-dns.kube-system.svc.{ZONE}.",
                          extra=(f"kube-dns.kube-system.svc.{ZONE}. 5 IN A 10.96.0.10",))),
    (f"svc.{ZONE}.", "A", NODATA),
    (f"pod.{ZONE}.", "A", NODATA),
    (f"svc.{ZONE}.", "NS", NODATA),
    (f"default.svc.{ZONE}.", "A", NODATA),
    (f"testns.svc.{ZONE}.", "NS", NODATA),
    (f"emptyns.svc.{ZONE}.", "A", NODATA),             # a Namespace with nothing in it
    (f"nons.svc.{ZONE}.", "A", NX),
    (f"foo.svc.{ZONE}.", "NS", NX),
    (f"foo.{ZONE}.", "NS", NX),
    (f"example.org.{ZONE}.", "A", NX),                 # neither svc nor pod
    (f"web.default.foo.{ZONE}.", "A", NX),
    (f"mysql.{D}svc.{ZONE}.", "A", NX),                # a search-path expansion
    (f"dns-version.{ZONE}.", "TXT", ok(f'dns-version.{ZONE}. 28800 IN TXT "1.1.0"')),
    (f"dns-version.{ZONE}.", "A", NODATA),
    (f"ns.dns.{ZONE}.", "A", ok(f"ns.dns.{ZONE}. 5 IN A 10.96.0.10")),
    (f"{ZONE}.", "AXFR", Expect(REFUSED)),
    (f"{ZONE}.", "IXFR", Expect(REFUSED)),
    # --- pods insecure: a-b-c-d.<ns>.pod.<zone> ----------------------------------------
    (f"10-244-1-10.default.pod.{ZONE}.", "A",
     ok(f"10-244-1-10.default.pod.{ZONE}. 5 IN A 10.244.1.10")),
    (f"10-244-1-10.default.pod.{ZONE}.", "AAAA", NODATA),
    (f"1-2-3-4.podns.pod.{ZONE}.", "A", ok(f"1-2-3-4.podns.pod.{ZONE}. 5 IN A 1.2.3.4")),
    (f"fd00-10-244--5.default.pod.{ZONE}.", "AAAA",
     ok(f"fd00-10-244--5.default.pod.{ZONE}. 5 IN AAAA fd00:10:244::5")),
    (f"fd00-10-244--5.default.pod.{ZONE}.", "A", NODATA),
    (f"1-2-3.default.pod.{ZONE}.", "A", NX),
    (f"256-1-1-1.default.pod.{ZONE}.", "A", NX),
    (f"01-2-3-4.default.pod.{ZONE}.", "A", NX),
    (f"blah.default.pod.{ZONE}.", "A", NX),
    (f"blah.default.pod.{ZONE}.", "TXT", NX),
    (f"1-2-3-4.nons.pod.{ZONE}.", "A", NX),            # the namespace must exist
    (f"default.pod.{ZONE}.", "A", NODATA),
    # --- PTR (spec 2.3.3, 2.4.3) -------------------------------------------------------
    ("20.0.96.10.in-addr.arpa.", "PTR", ok(f"20.0.96.10.in-addr.arpa. 5 IN PTR web.{D}")),
    ("10.0.96.10.in-addr.arpa.", "PTR",
     ok(f"10.0.96.10.in-addr.arpa. 5 IN PTR kube-dns.kube-system.svc.{ZONE}.")),
    ("10.1.244.10.in-addr.arpa.", "PTR",
     ok(f"10.1.244.10.in-addr.arpa. 5 IN PTR web-0.nginx.{D}")),
    ("10.2.244.10.in-addr.arpa.", "PTR",
     ok(f"10.2.244.10.in-addr.arpa. 5 IN PTR 10-244-2-10.nohost.{D}")),
    ("10.4.244.10.in-addr.arpa.", "PTR",
     ok(f"10.4.244.10.in-addr.arpa. 5 IN PTR 10-244-4-10.web.{D}")),
    ("10.3.244.10.in-addr.arpa.", "PTR", ok(f"10.3.244.10.in-addr.arpa. 5 IN PTR pnr-0.pnr.{D}")),
    ("0.3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa.", "PTR",
     ok("0.3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa. 5 IN PTR "
        f"dual.{D}")),
    ("0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.4.4.2.0.0.1.0.0.0.0.d.f.ip6.arpa.", "PTR",
     ok("0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.4.4.2.0.0.1.0.0.0.0.d.f.ip6.arpa. 5 IN PTR "
        f"fd00-10-244-2--10.nohost.{D}")),
    ("12.1.244.10.in-addr.arpa.", "PTR", FORWARD),     # not ready: nobody publishes it
    ("4.3.2.1.in-addr.arpa.", "PTR", FORWARD),         # unknown: fallthrough upstream
    ("96.10.in-addr.arpa.", "PTR", FORWARD),           # partial name
    ("20.0.96.10.in-addr.arpa.", "A", FORWARD),
    ("020.0.96.10.in-addr.arpa.", "PTR", FORWARD),     # not a canonical address
    # --- not ours -------------------------------------------------------------------------
    ("www.example.com.", "A", FORWARD),
    ("cluster.local.example.com.", "A", FORWARD),
    ("local.", "SOA", FORWARD),
]


def test_the_table_is_large() -> None:
    assert len(CASES) > 60


@pytest.mark.parametrize("qname,qtype,expect", CASES, ids=[f"{n} {t}" for n, t, _ in CASES])
def test_query(qname: str, qtype: str, expect: Expect) -> None:
    cluster = build(clock=lambda: 1.0)  # SOA serial 1
    reply = cluster.handle(query(qname, qtype), tcp=False)
    if expect.forward:
        assert (reply.action, reply.wire) == ("forward", None)
        return
    assert reply.action == "answer"
    msg = decode(reply)
    assert msg.rcode() == expect.rcode
    assert reply.rcode == expect.rcode
    assert records(msg.answer) == set(expect.answer)
    if expect.additional is not None:
        assert records(msg.additional) == set(expect.additional)
    if expect.rcode != REFUSED:
        assert is_authoritative(msg)


NEGATIVE = [(n, t) for n, t, e in CASES
            if not e.forward and e.rcode in (NOERROR, NXDOMAIN) and not e.answer]


@pytest.mark.parametrize("qname,qtype", NEGATIVE)
def test_negative_answers_carry_the_zone_soa(qname: str, qtype: str) -> None:
    msg = decode(build().handle(query(qname, qtype), tcp=False))
    assert soa_fields(msg) == (f"{ZONE}.", 5, f"ns.dns.{ZONE}.", f"hostmaster.{ZONE}.",
                               7200, 1800, 86400, 5)


def test_positive_answers_have_no_authority_section() -> None:
    msg = decode(build().handle(query(f"web.{D}", "A"), tcp=False))
    assert msg.authority == []
