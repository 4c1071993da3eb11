"""The forwarding cache: upstream answers kept for a while, as CoreDNS's `cache 30` does.

Only answers from upstream resolvers are cached here. Cluster names are never cached
(kubeadm's Corefile disables success and denial caching for the cluster domain since
kubernetes#128359: a cached NXDOMAIN for a Service created a moment later is one of the
most reported DNS problems), and they do not need it: `ClusterDNS` builds their answers
when objects change.

Contract: `get(key, now)` returns a `Hit` (the stored response, the seconds it has aged,
and the TTL it was cached for), or None; `put(key, response, now)` stores it for min(its TTL, `max_ttl`) seconds (a negative
answer: min(SOA minimum, SOA TTL, `max_ttl`)), or not at all when that is 0 (an upstream
that says "do not cache" is obeyed) or the answer is SERVFAIL / truncated. Capacity is
bounded (least recently used evicted), as CoreDNS's 9,984-entry default. The clock is an
argument, so expiry is tested without waiting.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import NamedTuple

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

DEFAULT_MAX_TTL = 30
DEFAULT_CAPACITY = 9984


class CacheKey(NamedTuple):
    """What makes two questions the same answer: name (lower case), type, class, and
    whether DNSSEC records were asked for (they change the answer's content)."""

    qname: str
    qtype: int
    qclass: int
    do: bool


def key_of(query: dns.message.Message) -> CacheKey | None:
    """The cache key of a parsed query, or None if it has no single question."""
    if len(query.question) != 1:
        return None
    q = query.question[0]
    return CacheKey(q.name.to_text().lower(), int(q.rdtype), int(q.rdclass),
                    bool(query.ednsflags & dns.flags.DO))


def cache_ttl(response: dns.message.Message, max_ttl: int) -> int:
    """Seconds `response` may be served from cache (0: do not cache)."""
    rcode = response.rcode()
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN) or response.flags & dns.flags.TC:
        return 0
    if response.answer:
        return max(0, min([max_ttl] + [rrset.ttl for rrset in response.answer]))
    soa = [rrset for rrset in response.authority if rrset.rdtype == dns.rdatatype.SOA]
    if not soa:
        return 0  # a negative answer without SOA says nothing about how long it holds
    return max(0, min(max_ttl, soa[0].ttl, min(r.minimum for r in soa[0])))


def _kind(response: dns.message.Message) -> str:
    """CoreDNS's cache split: "success" (records) or "denial" (NXDOMAIN, NODATA)."""
    return "success" if response.rcode() == dns.rcode.NOERROR and response.answer \
        else "denial"


@dataclass(slots=True)
class _Entry:
    response: dns.message.Message
    stored: float
    expires: float
    ttl: int


class Hit(NamedTuple):
    response: dns.message.Message
    aged: int  # whole seconds since it was stored
    ttl: int   # what it was cached for: no record is served with a longer TTL


class ResponseCache:
    """An LRU of upstream answers with TTL expiry (see the module docstring)."""

    def __init__(self, *, max_ttl: int = DEFAULT_MAX_TTL, capacity: int = DEFAULT_CAPACITY
                 ) -> None:
        if capacity < 1:
            raise ValueError("cache capacity must be at least 1")
        self.max_ttl = max_ttl
        self.capacity = capacity
        self._entries: OrderedDict[CacheKey, _Entry] = OrderedDict()
        self.hits = {"success": 0, "denial": 0}
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CacheKey, now: float) -> Hit | None:
        """The entry while fresh; counts hits and misses."""
        entry = self._entries.get(key)
        if entry is None or entry.expires <= now:
            if entry is not None:
                del self._entries[key]
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits[_kind(entry.response)] += 1
        return Hit(entry.response, int(now - entry.stored), entry.ttl)

    def put(self, key: CacheKey, response: dns.message.Message, now: float) -> bool:
        """Store `response` if it may be cached; returns whether it was."""
        ttl = cache_ttl(response, self.max_ttl)
        if ttl <= 0:
            return False
        self._entries[key] = _Entry(response, now, now + ttl, ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        return True

    def entries(self) -> dict[str, int]:
        """Entries by kind, for the `coredns_cache_entries` gauge."""
        out = {"success": 0, "denial": 0}
        for e in self._entries.values():
            out[_kind(e.response)] += 1
        return out


def aged_reply(cached: dns.message.Message, aged: int, query: dns.message.Message,
               cap: int | None = None) -> dns.message.Message:
    """A reply to `query` from a cached response: the query's ID, question (its case) and
    RD bit; every TTL capped at `cap` (the TTL it was cached for, as CoreDNS's cache
    serves it) and lowered by the seconds the entry has aged, as a cache must."""
    reply = dns.message.make_response(query)
    reply.flags = (cached.flags & ~dns.flags.RD) | (query.flags & dns.flags.RD) | dns.flags.QR
    reply.set_rcode(cached.rcode())
    for section, source in ((reply.answer, cached.answer), (reply.authority, cached.authority),
                            (reply.additional, cached.additional)):
        for rrset in source:
            copy = rrset.copy()
            ttl = rrset.ttl if cap is None else min(rrset.ttl, cap)
            copy.ttl = max(0, ttl - aged)
            section.append(copy)
    return reply
