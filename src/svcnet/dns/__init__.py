"""Cluster DNS: the Kubernetes DNS-Based Service Discovery spec, as CoreDNS serves it.

The pure core (no sockets, no clocks unless injected): `ClusterDNS` keeps an index of
Services, EndpointSlices and Pods from informer events and answers DNS queries in wire
form with a `Reply` for the server edge to act on. Module map:

    wire       hand parsing of a query's header/question/OPT; record-less replies
    names      query name -> typed request (service, endpoint, port, pod, reverse, ...)
    index      slim API objects kept by events, and the reverse (IP) index
    lookup     which names exist and what addresses they hold (decides NXDOMAIN)
    answers    query type -> answer/authority/additional sections (dnspython rrsets)
    template   render an answer once, patch it per query (ID, RD/CD, name case)
    cache      positive/negative LRUs of templates with exact invalidation
    reply      Reply/Action (the edge's contract) and append_chase
    cluster    ClusterDNS, tying the above together
    testing    API-object builders, queries and `populate` for tests and benchmarks

and the edges around it:

    upstream       forwarding to upstream resolvers, loop detection (CoreDNS forward+loop)
    forward_cache  the cache of upstream answers (CoreDNS cache 30)
    metrics        CoreDNS's metric families, counted cheaply on the query path
    server         UDP/TCP sockets in front of ClusterDNS and the forwarder
    app            informers + server + metrics endpoint, run by `svcnet server`
    fake_upstream  a loopback authoritative server standing in for upstream in tests
"""

from __future__ import annotations

from svcnet.dns.cluster import CacheInfo, ClusterDNS
from svcnet.dns.lookup import PodMode
from svcnet.dns.reply import Action, Reply, append_chase

__all__ = ["Action", "CacheInfo", "ClusterDNS", "PodMode", "Reply", "append_chase"]
