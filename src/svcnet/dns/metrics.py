"""CoreDNS's metrics, under CoreDNS's names, counted cheaply on the query path.

Dashboards and alerts written for CoreDNS (`coredns_dns_requests_total`,
`coredns_dns_responses_total{rcode}`, `coredns_dns_request_duration_seconds`,
`coredns_cache_hits_total`, `coredns_forward_requests_total`, ...) work unchanged against
svcnet's DNS on port 9153.

Why not prometheus-client's Counter/Histogram objects on the hot path: each `labels().inc()`
takes a lock and a label lookup (about a microsecond), and a query touches four series; at
tens of thousands of queries a second that is a measurable share of the server. Queries
are counted into plain dicts and lists on the event loop thread (one thread, so no lock);
prometheus-client renders them at scrape time through a custom collector.
"""

from __future__ import annotations

import bisect
from typing import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector, CollectorRegistry

from svcnet.dns.upstream import Forwarder

#: CoreDNS: prometheus.ExponentialBuckets(0.00025, 2, 16) for request durations.
DURATION_BUCKETS = tuple(0.00025 * 2 ** i for i in range(16))
#: Query types CoreDNS reports by name; everything else is "other".
KNOWN_TYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT",
               28: "AAAA", 33: "SRV", 35: "NAPTR", 13: "HINFO", 255: "ANY", 65: "HTTPS",
               64: "SVCB", 257: "CAA", 43: "DS", 48: "DNSKEY", 46: "RRSIG", 47: "NSEC",
               50: "NSEC3", 252: "AXFR", 251: "IXFR", 99: "SPF"}
RCODES = ("NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED")
ZONE = "."  # the one server block, as kubeadm's Corefile has


def type_label(qtype: int) -> str:
    return KNOWN_TYPES.get(qtype, "other")


class DnsMetrics:
    """Counters for one DNS server (`server` label: `dns://HOST:PORT`)."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.requests: dict[tuple[str, str, int], int] = {}  # (proto, family, qtype)
        self.responses: dict[tuple[int, str], int] = {}      # (rcode, plugin)
        self.durations: dict[int, list[float]] = {}          # qtype -> bucket counts + sum
        self.request_sizes: dict[str, int] = {}
        self.response_sizes: dict[str, int] = {}
        self.panics = 0
        self.forwarder: Forwarder | None = None

    def observe(self, proto: str, family: str, qtype: int, rcode: int, plugin: str,
                seconds: float, request_bytes: int, response_bytes: int) -> None:
        """Count one answered query (the hot path: dict and list updates only)."""
        key = (proto, family, qtype)
        self.requests[key] = self.requests.get(key, 0) + 1
        rkey = (rcode, plugin)
        self.responses[rkey] = self.responses.get(rkey, 0) + 1
        slots = self.durations.get(qtype)
        if slots is None:
            slots = self.durations[qtype] = [0.0] * (len(DURATION_BUCKETS) + 2)
        slots[bisect.bisect_left(DURATION_BUCKETS, seconds)] += 1
        slots[-1] += seconds
        self.request_sizes[proto] = self.request_sizes.get(proto, 0) + request_bytes
        self.response_sizes[proto] = self.response_sizes.get(proto, 0) + response_bytes

    def dropped(self, proto: str, family: str) -> None:
        """A request that got no response at all (unparseable)."""
        key = (proto, family, -1)
        self.requests[key] = self.requests.get(key, 0) + 1


class DnsCollector(Collector):
    """Renders `DnsMetrics` (and its forwarder and cache) as CoreDNS's metric families."""

    def __init__(self, metrics: DnsMetrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily |
                                  HistogramMetricFamily]:
        m = self.m
        labels = ["server", "zone", "view"]
        req = CounterMetricFamily("coredns_dns_requests", "Counter of DNS requests made per "
                                  "zone, protocol and family.",
                                  labels=labels + ["proto", "family", "type"])
        for (proto, family, qtype), n in sorted(m.requests.items()):
            req.add_metric([m.server, ZONE, "", proto, family,
                            "other" if qtype < 0 else type_label(qtype)], n)
        yield req
        resp = CounterMetricFamily("coredns_dns_responses", "Counter of response status "
                                   "codes.", labels=labels + ["rcode", "plugin"])
        for (rcode, plugin), n in sorted(m.responses.items()):
            name = RCODES[rcode] if rcode < len(RCODES) else str(rcode)
            resp.add_metric([m.server, ZONE, "", name, plugin], n)
        yield resp
        hist = HistogramMetricFamily("coredns_dns_request_duration_seconds", "Histogram of "
                                     "the time (in seconds) each request took per zone.",
                                     labels=labels + ["type"])
        for qtype, slots in sorted(m.durations.items()):
            acc, buckets = 0.0, []
            for bound, count in zip(DURATION_BUCKETS, slots):
                acc += count
                buckets.append((repr(bound), acc))
            acc += slots[len(DURATION_BUCKETS)]
            buckets.append(("+Inf", acc))
            hist.add_metric([m.server, ZONE, "", type_label(qtype)], buckets, slots[-1])
        yield hist
        for name, data, text in (
                ("coredns_dns_request_size_bytes", m.request_sizes, "request"),
                ("coredns_dns_response_size_bytes", m.response_sizes, "response")):
            c = CounterMetricFamily(name, f"Bytes of DNS {text}s per protocol.",
                                    labels=labels + ["proto"])
            for proto, n in sorted(data.items()):
                c.add_metric([m.server, ZONE, "", proto], n)
            yield c
        panics = CounterMetricFamily("coredns_panics", "A metrics that counts the number of "
                                     "panics.")
        panics.add_metric([], m.panics)
        yield panics
        info = GaugeMetricFamily("coredns_build_info", "A metric with a constant '1' value "
                                 "labeled by version, revision, and goversion.",
                                 labels=["version", "revision", "goversion"])
        info.add_metric(["svcnet", "", ""], 1)
        yield info
        yield from self._forward_and_cache()

    def _forward_and_cache(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        f = self.m.forwarder
        if f is None:
            return
        fr = CounterMetricFamily("coredns_forward_requests", "Counter of requests made per "
                                 "upstream.", labels=["to"])
        for to, n in sorted(f.requests.items()):
            fr.add_metric([to], n)
        yield fr
        fresp = CounterMetricFamily("coredns_forward_responses", "Counter of responses "
                                    "received per upstream.", labels=["to", "rcode"])
        for (to, rcode), n in sorted(f.responses.items()):
            fresp.add_metric([to, rcode], n)
        yield fresp
        hits = CounterMetricFamily("coredns_cache_hits", "The count of cache hits.",
                                   labels=["server", "type", "zones", "view"])
        for kind, n in sorted(f.cache.hits.items()):
            hits.add_metric([self.m.server, kind, ZONE, ""], n)
        yield hits
        misses = CounterMetricFamily("coredns_cache_misses", "The count of cache misses.",
                                     labels=["server", "zones", "view"])
        misses.add_metric([self.m.server, ZONE, ""], f.cache.misses)
        yield misses
        entries = GaugeMetricFamily("coredns_cache_entries", "The number of elements in the "
                                    "cache.", labels=["server", "type", "zones", "view"])
        for kind, n in sorted(f.cache.entries().items()):
            entries.add_metric([self.m.server, kind, ZONE, ""], n)
        yield entries


def registry_for(metrics: DnsMetrics) -> CollectorRegistry:
    """A registry holding only the DNS families (served on :9153 like CoreDNS's)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(DnsCollector(metrics))
    return reg
