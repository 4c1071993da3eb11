"""What a DNS client notices at the message level: IDs, flags, case, EDNS, truncation,
and how malformed packets are treated (never an exception)."""

from __future__ import annotations

import struct

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
from hypothesis import given, settings
from hypothesis import strategies as st

from dnsprobe import ZONE, ask, build, decode, records, soa_fields
from svcnet.dns import ClusterDNS
from svcnet.dns.testing import endpoint, endpoint_slice, query, service

WEB = f"web.default.svc.{ZONE}."
CLUSTER = build()  # shared by the property tests (building per example is slower)


def header(ident: int = 0x4242, flags: int = 0x0100, qd: int = 1, an: int = 0, ns: int = 0,
           ar: int = 0) -> bytes:
    return struct.pack(">HHHHHH", ident, flags, qd, an, ns, ar)


def question(name: bytes = b"\x03web\x07default\x03svc\x07cluster\x05local\x00",
             qtype: int = 1, qclass: int = 1) -> bytes:
    return name + struct.pack(">HH", qtype, qclass)


def opt(payload: int = 1232, version: int = 0, do: bool = False) -> bytes:
    return b"\x00" + struct.pack(">HHBBHH", 41, payload, 0, version, 0x8000 if do else 0, 0)


def big_headless(n: int = 100, family: int = 4) -> ClusterDNS:
    cluster = build()
    cluster.apply("Service", None, service("big", headless=True))
    ips = [f"10.250.{i // 250}.{i % 250 + 1}" if family == 4 else f"fd00:250::{i + 1:x}"
           for i in range(n)]
    cluster.apply("EndpointSlice", None, endpoint_slice(
        "big", [endpoint(ip) for ip in ips], address_type="IPv4" if family == 4 else "IPv6"))
    return cluster


# --- header fields ---------------------------------------------------------------------


def test_id_is_copied() -> None:
    for ident in (0, 1, 0xBEEF, 0xFFFF):
        assert ask(build(), WEB, ident=ident).id == ident


def test_rd_is_copied_and_ra_is_not_claimed() -> None:
    cluster = build()
    with_rd = ask(cluster, WEB, rd=True)
    without_rd = ask(cluster, WEB, rd=False)  # same cached template, other query bits
    assert with_rd.flags & dns.flags.RD and not without_rd.flags & dns.flags.RD
    assert not with_rd.flags & dns.flags.RA


def test_cd_is_copied() -> None:
    wire = header(flags=0x0110) + question()
    msg = dns.message.from_wire(build().handle(wire, tcp=False).wire or b"")
    assert msg.flags & dns.flags.CD and msg.flags & dns.flags.QR


def test_answers_are_authoritative_replies() -> None:
    for name in (WEB, f"nope.default.svc.{ZONE}.", "20.0.96.10.in-addr.arpa."):
        msg = ask(build(), name, "PTR" if name.endswith("arpa.") else "A")
        assert msg.flags & dns.flags.QR and msg.flags & dns.flags.AA


# --- case -----------------------------------------------------------------------------


def test_answer_carries_the_question_case_exactly() -> None:
    name = f"WeB.DeFaUlT.sVc.ClUsTeR.LoCaL."
    msg = ask(build(), name)
    assert msg.question[0].name.to_text() == name
    assert [r.name.to_text() for r in msg.answer] == [name]
    assert records(msg.answer) == {f"{name} 5 IN A 10.96.0.20"}


def test_one_cached_reply_serves_every_spelling_in_its_own_case() -> None:
    cluster = build()
    for name in (WEB, WEB.upper(), "wEb.default.svc.cluster.LOCAL."):
        msg = ask(cluster, name)
        assert msg.answer[0].name.to_text() == name
    assert cluster.cache_info().hits == 2


def test_negative_soa_owner_keeps_the_query_case() -> None:
    msg = ask(build(), "nope.default.svc.ClUsTeR.lOcAl.")
    assert msg.rcode() == dns.rcode.NXDOMAIN
    assert soa_fields(msg)[0] == "ClUsTeR.lOcAl."


def test_headless_records_and_srv_are_case_insensitive() -> None:
    msg = ask(build(), f"_WEB._TCP.NGINX.DEFAULT.SVC.{ZONE.upper()}.", "SRV")
    assert len(msg.answer[0]) == 2


# --- EDNS0 and sizes ---------------------------------------------------------------------


def test_opt_is_echoed_only_when_the_query_had_one() -> None:
    cluster = build()
    plain = ask(cluster, WEB)
    assert plain.edns == -1
    edns = ask(cluster, WEB, edns=4096)
    assert edns.edns == 0 and edns.payload == 1232  # our own advertised size
    assert not edns.ednsflags & dns.flags.DO
    dnssec = ask(cluster, WEB, edns=4096, do=True)
    assert dnssec.ednsflags & dns.flags.DO


def test_negative_answers_echo_opt_too() -> None:
    msg = ask(build(), f"nope.default.svc.{ZONE}.", edns=1232)
    assert msg.edns == 0 and msg.rcode() == dns.rcode.NXDOMAIN


def test_large_udp_answer_without_edns_is_truncated() -> None:
    reply = big_headless().handle(query(f"big.default.svc.{ZONE}."), tcp=False)
    msg = decode(reply)
    assert len(reply.wire or b"") <= 512
    assert msg.flags & dns.flags.TC and msg.answer == [] and msg.rcode() == 0
    assert msg.question[0].name.to_text() == f"big.default.svc.{ZONE}."
    assert reply.max_size == 512


def test_edns_payload_is_honoured_for_udp() -> None:
    cluster = big_headless()
    reply = cluster.handle(query(f"big.default.svc.{ZONE}.", edns=4096), tcp=False)
    msg = decode(reply)
    assert not msg.flags & dns.flags.TC and len(msg.answer[0]) == 100
    assert 512 < len(reply.wire or b"") <= 4096 and reply.max_size == 4096
    small = decode(cluster.handle(query(f"big.default.svc.{ZONE}.", edns=1000), tcp=False))
    assert small.flags & dns.flags.TC and small.answer == [] and small.edns == 0


def test_edns_payload_below_512_counts_as_512() -> None:
    reply = build().handle(header(ar=1) + question() + opt(payload=100), tcp=False)
    msg = decode(reply)
    assert reply.max_size == 512 and msg.edns == 0
    assert not msg.flags & dns.flags.TC and len(msg.answer) == 1


def test_tcp_has_no_512_byte_limit() -> None:
    reply = big_headless().handle(query(f"big.default.svc.{ZONE}."), tcp=True)
    msg = decode(reply)
    assert not msg.flags & dns.flags.TC and len(msg.answer[0]) == 100
    assert reply.max_size == 65535


def test_answer_too_big_even_for_tcp_is_truncated_not_cut() -> None:
    cluster = big_headless(3000, family=6)  # 3000 AAAA records of 28 bytes > 65535
    reply = cluster.handle(query(f"big.default.svc.{ZONE}.", "AAAA"), tcp=True)
    msg = decode(reply)
    assert msg.flags & dns.flags.TC and msg.answer == []
    assert len(reply.wire or b"") < 100


# --- malformed input -----------------------------------------------------------------------


def test_short_packets_and_responses_are_dropped() -> None:
    cluster = build()
    for wire in (b"", b"\x00", header()[:11]):
        assert cluster.handle(wire, tcp=False).action == "drop"
    response = header(flags=0x8180) + question()
    reply = cluster.handle(response, tcp=False)
    assert (reply.action, reply.wire) == ("drop", None)


def test_other_opcodes_get_notimp() -> None:
    notify = header(flags=4 << 11) + question()
    reply = build().handle(notify, tcp=False)
    msg = dns.message.from_wire(reply.wire or b"")
    assert msg.rcode() == dns.rcode.NOTIMP and msg.id == 0x4242 and reply.rcode == 4
    assert msg.opcode() == 4


def test_bad_question_counts_and_names_get_formerr() -> None:
    cluster = build()
    bad = [
        header(qd=0),
        header(qd=2) + question() + question(),
        header() + b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01",      # 64-byte label
        header() + b"\xc0\x0c\x00\x01\x00\x01",                      # pointer in question
        header() + b"\x03web\x07defa",                               # runs off the end
        header() + question()[:-2],                                  # no class
        header() + (b"\x3f" + b"a" * 63) * 4 + b"\x00\x00\x01\x00\x01",  # name > 255
        header(ar=2) + question() + opt() + opt(),                   # two OPT records
        header(ar=1) + question() + b"\x00\x00\x29",                 # OPT cut short
    ]
    for wire in bad:
        reply = cluster.handle(wire, tcp=False)
        assert reply.action == "answer", wire
        msg = dns.message.from_wire(reply.wire or b"")
        assert msg.rcode() == dns.rcode.FORMERR and msg.id == 0x4242
        assert msg.flags & dns.flags.QR


def test_unknown_edns_version_gets_badvers() -> None:
    wire = header(ar=1) + question() + opt(version=1)
    msg = dns.message.from_wire(build().handle(wire, tcp=False).wire or b"")
    assert msg.rcode() == dns.rcode.BADVERS and msg.answer == []


def test_other_classes_in_the_zone_are_refused() -> None:
    wire = header() + question(qclass=3)  # CHAOS
    reply = build().handle(wire, tcp=False)
    assert reply.rcode == dns.rcode.REFUSED


def test_outside_names_are_forwarded_whatever_the_class_or_version() -> None:
    cluster = build()
    name = b"\x07example\x03com\x00"
    for wire in (header() + question(name, qclass=3),
                 header(ar=1) + question(name) + opt(version=1)):
        assert cluster.handle(wire, tcp=False).action == "forward"


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_never_raise(wire: bytes) -> None:
    reply = CLUSTER.handle(wire, tcp=False)
    assert reply.action in ("answer", "forward", "chase", "drop")
    assert reply.rcode != dns.rcode.SERVFAIL
    if reply.wire is not None:
        dns.message.from_wire(reply.wire)  # and what we send back parses


WORDS = [b"svc", b"pod", b"default", b"kube-system", b"web", b"nginx", b"nohost", b"ext",
         b"alias", b"alias2", b"_http", b"_tcp", b"_web", b"10-244-1-10", b"web-0",
         b"fd00-10-244--5", b"dns-version", b"ns", b"dns", b"20", b"0", b"96", b"10"]


@settings(max_examples=1500, deadline=None)
@given(flags=st.one_of(st.integers(0, 0x07FF), st.integers(0, 0xFFFF)),
       counts=st.one_of(st.just((0, 0, 0)),
                        st.tuples(st.integers(0, 1), st.integers(0, 1), st.integers(0, 2))),
       labels=st.lists(st.one_of(st.sampled_from(WORDS), st.binary(min_size=1, max_size=12)),
                       max_size=6),
       suffix=st.sampled_from([b"\x07cluster\x05local\x00", b"\x07in-addr\x04arpa\x00",
                               b"\x00"]),
       qtype=st.one_of(st.sampled_from([1, 2, 5, 6, 12, 15, 16, 28, 33, 251, 252, 255]),
                       st.integers(0, 0xFFFF)),
       qclass=st.sampled_from([1, 1, 3, 255]),
       tail=st.one_of(st.just(b""), st.binary(max_size=40)), tcp=st.booleans())
def test_near_valid_queries_never_raise(flags: int, counts: tuple[int, int, int],
                                        labels: list[bytes], suffix: bytes, qtype: int,
                                        qclass: int, tail: bytes, tcp: bool) -> None:
    name = b"".join(bytes([len(label)]) + label for label in labels) + suffix
    wire = header(flags=flags, an=counts[0], ns=counts[1], ar=counts[2])
    wire += name + struct.pack(">HH", qtype, qclass) + tail
    reply = CLUSTER.handle(wire, tcp=tcp)
    assert reply.action in ("answer", "forward", "chase", "drop")
    assert reply.rcode != dns.rcode.SERVFAIL  # synced: SERVFAIL would mean an internal error
    if reply.wire is not None:
        msg = dns.message.from_wire(reply.wire)
        assert msg.id == 0x4242





def test_an_internal_error_costs_one_servfail_not_an_exception() -> None:
    cluster = build()

    def broken(*args: object) -> None:
        raise RuntimeError("bug")

    cluster._answerer.cluster = broken  # type: ignore[method-assign]
    reply = cluster.handle(query(WEB, ident=5), tcp=False)
    msg = decode(reply)
    assert msg.rcode() == dns.rcode.SERVFAIL and msg.id == 5
    assert cluster.cache_info().errors == 1 and isinstance(cluster.last_error, RuntimeError)
