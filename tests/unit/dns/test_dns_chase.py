"""ExternalName targets outside the zone: the "chase" verdict and `append_chase`."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

from dnsprobe import ZONE, build, decode, records
from svcnet.dns import append_chase
from svcnet.dns.testing import query

D = f"default.svc.{ZONE}."


def upstream_answer(name: str, qtype: str, *rdata: str, rcode: int = 0) -> bytes:
    request = dns.message.make_query(name, qtype)
    response = dns.message.make_response(request)
    response.set_rcode(dns.rcode.Rcode.make(rcode))
    if rdata:
        response.answer.append(dns.rrset.from_text(name, 300, "IN", qtype, *rdata))
    return response.to_wire()


def test_outside_target_is_chased_with_a_cname_only_reply() -> None:
    reply = build().handle(query(f"ext.{D}", "A", ident=77), tcp=False)
    assert (reply.action, reply.target, reply.rcode) == ("chase", "www.example.com.", 0)
    assert reply.qname == f"ext.{D}" and reply.qtype == dns.rdatatype.A
    msg = decode(reply)
    assert msg.id == 77 and msg.flags & dns.flags.AA
    assert records(msg.answer) == {f"ext.{D} 5 IN CNAME www.example.com."}
    assert msg.authority == []


def test_aaaa_is_chased_too_but_cname_is_answered() -> None:
    cluster = build()
    assert cluster.handle(query(f"ext.{D}", "AAAA"), tcp=False).action == "chase"
    assert cluster.handle(query(f"ext.{D}", "CNAME"), tcp=False).action == "answer"


def test_chase_through_an_in_zone_alias() -> None:
    reply = build().handle(query(f"alias2.{D}", "A"), tcp=False)
    assert (reply.action, reply.target) == ("chase", "www.example.com.")
    assert records(decode(reply).answer) == {f"alias2.{D} 5 IN CNAME ext.{D}",
                                             f"ext.{D} 5 IN CNAME www.example.com."}


def test_append_chase_adds_upstream_answers_and_keeps_the_client_view() -> None:
    name = f"ExT.dEfAuLt.svc.{ZONE}."
    reply = build().handle(query(name, "A", ident=9, edns=1232), tcp=False)
    assert reply.wire is not None and reply.target is not None
    final = dns.message.from_wire(append_chase(
        reply.wire, upstream_answer(reply.target, "A", "192.0.2.53"), max_size=reply.max_size))
    assert final.id == 9 and final.rcode() == 0 and final.edns == 0
    assert final.question[0].name.to_text() == name
    assert records(final.answer) == {f"{name} 5 IN CNAME www.example.com.",
                                     "www.example.com. 300 IN A 192.0.2.53"}


def test_append_chase_with_upstream_nxdomain_keeps_the_cname() -> None:
    reply = build().handle(query(f"ext.{D}", "A"), tcp=False)
    assert reply.wire is not None
    final = dns.message.from_wire(append_chase(
        reply.wire, upstream_answer("www.example.com.", "A", rcode=dns.rcode.NXDOMAIN)))
    assert final.rcode() == dns.rcode.NOERROR
    assert records(final.answer) == {f"ext.{D} 5 IN CNAME www.example.com."}


def test_append_chase_ignores_garbage_from_upstream() -> None:
    reply = build().handle(query(f"ext.{D}", "A"), tcp=False)
    assert reply.wire is not None
    for junk in (b"", b"\x00" * 5, b"\xff" * 40):
        assert append_chase(reply.wire, junk) == reply.wire


def test_append_chase_truncates_when_the_result_is_too_big() -> None:
    reply = build().handle(query(f"ext.{D}", "A"), tcp=False)
    assert reply.wire is not None
    many = [f"192.0.2.{i}" for i in range(1, 60)]
    final = dns.message.from_wire(append_chase(
        reply.wire, upstream_answer("www.example.com.", "A", *many), max_size=512))
    assert final.flags & dns.flags.TC and final.answer == []
    assert final.question[0].name.to_text() == f"ext.{D}"


def test_chase_replies_are_cached_like_answers() -> None:
    cluster = build()
    first = cluster.handle(query(f"ext.{D}", "A", ident=1), tcp=False)
    second = cluster.handle(query(f"ext.{D}", "A", ident=2), tcp=False)
    assert second.action == "chase" and second.target == first.target
    assert cluster.cache_info().hits == 1 and decode(second).id == 2
