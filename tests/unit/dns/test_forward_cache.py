"""The forwarding cache and upstream configuration (pure parts of the forward path)."""

from __future__ import annotations

from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

from svcnet.dns.forward_cache import ResponseCache, aged_reply, cache_ttl, key_of
from svcnet.dns.upstream import parse_upstream, upstreams_from_resolv_conf


def query(name: str = "www.example.org.", rdtype: str = "A") -> dns.message.Message:
    return dns.message.make_query(name, rdtype)


def answer(q: dns.message.Message, *records: str, rcode: int = dns.rcode.NOERROR,
           soa: str | None = None) -> dns.message.Message:
    r = dns.message.make_response(q)
    r.set_rcode(rcode)
    for rec in records:
        r.answer.append(dns.rrset.from_text(*rec.split(maxsplit=4)))
    if soa:
        ttl, rdata = soa.split(maxsplit=1)
        r.authority.append(dns.rrset.from_text("example.org.", ttl, "IN", "SOA", rdata))
    return r


def test_ttl_is_the_smallest_record_ttl_capped_at_max() -> None:
    q = query()
    assert cache_ttl(answer(q, "www.example.org. 300 IN A 192.0.2.1"), 30) == 30
    assert cache_ttl(answer(q, "www.example.org. 7 IN A 192.0.2.1"), 30) == 7


def test_negative_answers_use_the_soa_minimum() -> None:
    q = query()
    nx = answer(q, rcode=dns.rcode.NXDOMAIN, soa="60 ns. host. 1 2 3 4 12")
    assert cache_ttl(nx, 30) == 12
    assert cache_ttl(answer(q, rcode=dns.rcode.NXDOMAIN), 30) == 0  # no SOA: not cached


def test_servfail_and_truncated_answers_are_not_cached() -> None:
    q = query()
    assert cache_ttl(answer(q, rcode=dns.rcode.SERVFAIL), 30) == 0
    tc = answer(q, "www.example.org. 300 IN A 192.0.2.1")
    tc.flags |= dns.flags.TC
    assert cache_ttl(tc, 30) == 0


def test_cache_expires_and_counts_hits_and_misses() -> None:
    cache = ResponseCache(max_ttl=30)
    q = query()
    key = key_of(q)
    assert key is not None
    assert cache.get(key, 100.0) is None and cache.misses == 1
    assert cache.put(key, answer(q, "www.example.org. 10 IN A 192.0.2.1"), 100.0)
    hit = cache.get(key, 104.5)
    assert hit is not None and hit.aged == 4 and hit.ttl == 10 and cache.hits["success"] == 1
    assert cache.get(key, 110.0) is None and len(cache) == 0


def test_cache_key_ignores_case_and_separates_types() -> None:
    a, b = key_of(query("WWW.Example.ORG.")), key_of(query("www.example.org."))
    assert a == b
    assert key_of(query(rdtype="AAAA")) != b


def test_cache_evicts_least_recently_used() -> None:
    cache = ResponseCache(capacity=2)
    keys = []
    for i in range(3):
        q = query(f"h{i}.example.org.")
        k = key_of(q)
        assert k is not None
        keys.append(k)
        cache.put(k, answer(q, f"h{i}.example.org. 10 IN A 192.0.2.{i}"), 0.0)
        if i == 1:
            cache.get(keys[0], 1.0)  # touch h0: h1 is now the oldest
    assert cache.get(keys[1], 1.0) is None
    assert cache.get(keys[0], 1.0) is not None and cache.get(keys[2], 1.0) is not None
    with pytest.raises(ValueError):
        ResponseCache(capacity=0)


def test_aged_reply_lowers_ttls_and_takes_the_querys_id_and_case() -> None:
    first = query("www.example.org.")
    cached = answer(first, "www.example.org. 30 IN A 192.0.2.1")
    second = query("WWW.EXAMPLE.org.")
    reply = aged_reply(cached, 12, second)
    assert reply.id == second.id
    assert reply.question[0].name.to_text() == "WWW.EXAMPLE.org."
    assert reply.answer[0].ttl == 18
    assert aged_reply(cached, 99, second).answer[0].ttl == 0
    assert aged_reply(cached, 2, second, cap=10).answer[0].ttl == 8


@pytest.mark.parametrize("text,expected", [
    ("192.0.2.53", ("192.0.2.53", 53)),
    ("127.0.0.1:5353", ("127.0.0.1", 5353)),
    ("[::1]:5300", ("::1", 5300)),
    ("2001:db8::1", ("2001:db8::1", 53)),
])
def test_parse_upstream(text: str, expected: tuple[str, int]) -> None:
    assert parse_upstream(text) == expected


@pytest.mark.parametrize("text,reason", [
    ("dns.example", "not an IP address"), ("127.0.0.1:x", "port must be a number"),
    ("127.0.0.1:0", "1-65535"), ("[::1]5300", "expected [IPv6]:PORT"),
])
def test_parse_upstream_rejects_bad_input(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        parse_upstream(text)


def test_resolv_conf_nameservers_in_order(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# generated\nsearch example.org\nnameserver 192.0.2.1\n"
                    "nameserver fe80::1%eth0  # zone index dropped\nnameserver bogus\n"
                    "options ndots:2\nnameserver 192.0.2.2 ; trailing\n")
    assert upstreams_from_resolv_conf(conf) == [("192.0.2.1", 53), ("fe80::1", 53),
                                                ("192.0.2.2", 53)]
    assert upstreams_from_resolv_conf(tmp_path / "missing") == []
