"""ClusterDNS: the pure core of cluster DNS, fed by informer events, asked per query.

    dns = ClusterDNS(domain="cluster.local", ttl=5)
    informer.add_handler(lambda kind_event, old, new: dns.apply("Service", old, new))
    ...                                    # same for EndpointSlice, Pod (and Namespace)
    dns.mark_synced()                      # after every informer's first list
    reply = dns.handle(datagram, tcp=False)

No sockets, no clock unless injected, no I/O: the edge (UDP/TCP server, forwarder)
does all of that with the `Reply` it gets (see `reply.py`).

Theory of operation. The hot path is `handle`: parse the header, question and OPT by
hand (`wire.parse_query`), look up a precompiled reply template under (lower-cased
qname bytes, qtype, EDNS variant), and patch in the query's ID, RD/CD bits and its
original-case name (`template.patch`): about 2 µs per cached name in all (CPython 3.11,
5,000 Services). Only a miss pays for classifying the name (`names`), deciding existence
(`lookup`), building records (`answers`) and rendering with dnspython
(`template.render`), about 100 µs, after which the template is cached; negative
templates (search-path misses) go to their own bounded LRU (`cache`). Names outside our
zones are classified on every query (~4 µs) and never cached: they go upstream anyway,
and caching them would let arbitrary outside names evict our own.

Consistency. `apply` updates the index (`index.DNSIndex`) and drops exactly the cached
templates built from what changed (`cache.TemplateCache.invalidate`), so a reply never
outlives the objects it was built from; there is no TTL-based staleness inside the
server. Before `mark_synced` every cluster-zone query gets SERVFAIL and nothing is
cached (DESIGN.md: never act on partial state); a reverse name the partial index knows
gets SERVFAIL too, an unknown one is forwarded (CoreDNS falls through before it checks
sync). Not thread-safe: call everything from the one event loop.

Benchmarks and tests build clusters with `svcnet.dns.testing.populate`.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple

import dns.name
import dns.rdataclass

from svcnet.dns import names
from svcnet.dns import wire as dnswire
from svcnet.dns.answers import Answer, Answerer
from svcnet.dns.cache import TemplateCache
from svcnet.dns.index import DNSIndex
from svcnet.dns.lookup import Lookup, PodMode
from svcnet.dns.reply import Action, Reply
from svcnet.dns.template import Template, patch, render

_IN_ADDR_ZONE = dns.name.from_text("in-addr.arpa.")
_IP6_ZONE = dns.name.from_text("ip6.arpa.")


class CacheInfo(NamedTuple):
    """Counters for metrics: queries served from a cached template (`hits`) and built
    (`misses`), templates held, and `errors`: queries answered SERVFAIL because building
    the answer raised (a bug; `ClusterDNS.last_error` holds the latest exception)."""

    hits: int
    misses: int
    positive: int
    negative: int
    errors: int


class ClusterDNS:
    """Answers cluster DNS queries from an index kept by `apply` (see module docstring).

    `domain`: the cluster zone; `ttl`: TTL of every record but the schema TXT, and the
    SOA minimum (0..3600, CoreDNS `ttl`); `pods`: "insecure" (answer `a-b-c-d.<ns>.pod`
    from the name), "verified" (only IPs of pods in that namespace) or "disabled";
    `endpoint_pod_names`: name endpoints without a hostname after their pod;
    `nameserver`: (namespace, name) of the Service that fronts this server, named by the
    apex NS record; `edns_udp_size`: the payload size our OPT records advertise;
    `clock`: seconds since the epoch, for the SOA serial (without one the serial counts
    changes); cache sizes bound the positive and negative reply LRUs.
    """

    def __init__(self, domain: str = "cluster.local", ttl: int = 5, *,
                 pods: str = "insecure", endpoint_pod_names: bool = False,
                 nameserver: tuple[str, str] | None = ("kube-system", "kube-dns"),
                 edns_udp_size: int = 1232, positive_cache_size: int = 50_000,
                 negative_cache_size: int = 10_000,
                 clock: Callable[[], float] | None = None) -> None:
        if not 0 <= ttl <= 3600:
            raise ValueError(f"ttl must be within 0..3600, not {ttl}")
        if not dnswire.MIN_UDP_PAYLOAD <= edns_udp_size <= dnswire.MAX_TCP_MESSAGE:
            raise ValueError(f"edns_udp_size must be within 512..65535, not {edns_udp_size}")
        zone = dns.name.from_text(domain.strip(".") + ".")
        self.domain = zone.to_text(omit_final_dot=True).lower()
        self.ttl = ttl
        self.edns_udp_size = edns_udp_size
        self.index = DNSIndex(endpoint_pod_names=endpoint_pod_names)
        self._answerer = Answerer(Lookup(self.index, pods=PodMode(pods), nameserver=nameserver),
                                  zone=self.domain + ".", ttl=ttl)
        self._zone_labels = self._answerer.zone_labels
        self._cache = TemplateCache(positive_size=positive_cache_size,
                                    negative_size=negative_cache_size)
        self._clock = clock
        self._changes = 0
        self._synced = False
        self._hits = 0
        self._misses = 0
        self._errors = 0
        self.last_error: Exception | None = None
        self._stamp_serial()

    # --- events --------------------------------------------------------------------------

    def apply(self, kind: str, old: Mapping[str, Any] | None,
              new: Mapping[str, Any] | None) -> None:
        """Apply one informer event: `kind` is "Service", "EndpointSlice", "Pod" or
        "Namespace"; ADDED has `old` None, DELETED has `new` None. O(size of the object).

        Raises ValueError for any other kind (a wiring mistake, not a data problem).
        """
        deps = self.index.apply(kind, old, new)
        if deps:
            self._changes += 1
            self._stamp_serial()
            self._cache.invalidate(deps)

    def mark_synced(self) -> None:
        """Every informer has delivered its first full list: start answering."""
        self._synced = True

    @property
    def synced(self) -> bool:
        return self._synced

    def cache_info(self) -> CacheInfo:
        positive, negative = self._cache.sizes()
        return CacheInfo(hits=self._hits, misses=self._misses, positive=positive,
                         negative=negative, errors=self._errors)

    def _stamp_serial(self) -> None:
        self._answerer.serial = (int(self._clock()) if self._clock is not None
                                 else self._changes + 1)

    # --- queries ---------------------------------------------------------------------------

    def handle(self, wire: bytes, *, tcp: bool) -> Reply:
        """Decide one query: `wire` is one DNS message (over TCP, without its two-byte
        length prefix); `tcp` lifts the UDP size limit. See `reply.Action` for what the
        edge does with the result. Never raises, whatever the bytes."""
        query = dnswire.parse_query(wire)
        if isinstance(query, int):
            return self._unparsed(wire, query)
        limit = dnswire.MAX_TCP_MESSAGE if tcp else query.udp_limit()
        if self._synced and query.qclass == dnswire.CLASS_IN and not query.edns_version:
            template = self._cache.get((query.qname.lower(), query.qtype, query.variant))
            if template is not None:
                self._hits += 1
                return Reply(template.action, patch(template, query, limit), template.qname,
                             query.qtype, template.rcode, template.target, limit)
        try:
            return self._miss(query, limit)
        except Exception as exc:  # noqa: BLE001 - the contract is "never raises"
            # A bug must cost one query a SERVFAIL, not the server its loop.
            self._errors += 1
            self.last_error = exc
            return Reply(Action.ANSWER, dnswire.simple_reply(query, dnswire.SERVFAIL,
                                                          edns_payload=self.edns_udp_size),
                         "", query.qtype, dnswire.SERVFAIL, None, limit)

    def _unparsed(self, wire: bytes, verdict: int) -> Reply:
        if verdict == dnswire.DROP:
            return Reply(Action.DROP, None, "", 0, 0)
        return Reply(Action.ANSWER, dnswire.header_reply(wire, verdict), "", 0, verdict)

    def _miss(self, query: dnswire.Query, limit: int) -> Reply:
        self._misses += 1
        key_name = query.qname.lower()
        labels = dnswire.split_labels(key_name)
        qname_text = dnswire.name_text(labels)
        parsed = names.classify(labels, self._zone_labels)
        if parsed is None or (isinstance(parsed, names.ReverseName)
                              and (parsed.ip is None or not self.index.knows_ip(parsed.ip))):
            return Reply(Action.FORWARD, None, qname_text, query.qtype, 0, None, limit)
        if query.edns_version:
            return self._simple(query, dnswire.BADVERS, qname_text, limit)
        if query.qclass != dnswire.CLASS_IN:
            if isinstance(parsed, names.ReverseName):
                return Reply(Action.FORWARD, None, qname_text, query.qtype, 0, None, limit)
            return self._simple(query, dnswire.REFUSED, qname_text, limit)
        qname = dns.name.Name(labels + (b"",))
        if not self._synced:
            answer = Answer(rcode=dnswire.SERVFAIL)
            zone = (self._answerer.zone if not isinstance(parsed, names.ReverseName)
                    else _IP6_ZONE if parsed.v6 else _IN_ADDR_ZONE)
            answer.authority.append(self._answerer.soa(zone))
        elif isinstance(parsed, names.ReverseName):
            answer = self._answerer.reverse(qname, parsed, query.qtype)
        else:
            answer = self._answerer.cluster(qname, parsed, query.qtype)
        if answer.forward:
            return Reply(Action.FORWARD, None, qname_text, query.qtype, 0, None, limit)
        action = Action.CHASE if answer.chase is not None else Action.ANSWER
        template = render(qname, query.qtype, dns.rdataclass.IN, answer,
                          variant=query.variant, edns_payload=self.edns_udp_size,
                          qname_text=qname_text, action=action)
        if self._synced:
            self._cache.put((key_name, query.qtype, query.variant), template)
        return self._reply(template, query, limit)

    def _reply(self, template: Template, query: dnswire.Query, limit: int) -> Reply:
        return Reply(template.action, patch(template, query, limit), template.qname,
                     query.qtype, template.rcode, template.target, limit)

    def _simple(self, query: dnswire.Query, rcode: int, qname_text: str, limit: int) -> Reply:
        return Reply(Action.ANSWER, dnswire.simple_reply(query, rcode,
                                                      edns_payload=self.edns_udp_size),
                     qname_text, query.qtype, rcode, None, limit)
