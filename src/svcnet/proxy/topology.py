"""Endpoint choice per traffic policy: kube-proxy's `CategorizeEndpoints`, as a pure function.

Theory of operation. A Service port can send traffic to two endpoint sets:

- the *cluster* set, used by `Cluster` traffic policies: ready endpoints anywhere, narrowed
  to this node's zone when topology hints apply; if there are no ready endpoints at all,
  kube-proxy falls back to endpoints that are serving *and* terminating, so a rolling update
  whose new pods are not ready yet keeps serving from the old ones instead of failing;
- the *local* set, used by `Local` policies: ready endpoints on this node, else serving and
  terminating ones on this node (the same fallback, decided independently).

`all_reachable` is every endpoint this node may DNAT to (one KUBE-SEP chain each), and
`has_any` says whether the Service has a usable endpoint *anywhere* — it decides between
"no endpoints" (REJECT) and "no local endpoints" (DROP) in the iptables filter rules.

Topology: PreferSameZone applies when every ready endpoint carries zone hints and at least
one is hinted for the node's `topology.kubernetes.io/zone`; otherwise hints are ignored.
(Upstream v1.33 also has PreferSameNode behind a feature gate; svcnet does not implement it.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, NamedTuple, Sequence

from svcnet.proxy.endpoints import ZONE_LABEL, Endpoint
from svcnet.proxy.serviceport import ServicePortInfo


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """The node a proxy runs on: its name (for `is_local`) and labels (for its zone)."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def zone(self) -> str:
        return self.labels.get(ZONE_LABEL, "")


class Categorized(NamedTuple):
    """The result of `categorize`; unpacks as (cluster, local, all_reachable, has_any).

    `cluster` is empty when the port never uses Cluster policy, `local` when it never uses
    Local policy. Every list keeps the input order (sorted by `ip:port` string).
    """

    cluster: tuple[Endpoint, ...]
    local: tuple[Endpoint, ...]
    all_reachable: tuple[Endpoint, ...]
    has_any: bool


def _zone_topology_applies(endpoints: Sequence[Endpoint], zone: str) -> bool:
    """True if PreferSameZone filtering is in effect for these endpoints on this node."""
    all_hinted = True
    for_zone = False
    for ep in endpoints:
        if not ep.ready:
            continue
        if not ep.zone_hints:
            all_hinted = False
        elif zone in ep.zone_hints:
            for_zone = True
    return all_hinted and for_zone and zone != ""


def _serving_terminating(ep: Endpoint) -> bool:
    return ep.serving and ep.terminating


def categorize(endpoints: Sequence[Endpoint], svc: ServicePortInfo,
               node: NodeInfo) -> Categorized:
    """Split a port's endpoints into the Cluster and Local sets (module docstring)."""
    cluster: tuple[Endpoint, ...] = ()
    local: tuple[Endpoint, ...] = ()
    has_any = False
    use_topology = False
    if svc.uses_cluster_endpoints:
        use_topology = _zone_topology_applies(endpoints, node.zone)
        cluster = tuple(ep for ep in endpoints
                        if ep.ready and (not use_topology or node.zone in ep.zone_hints))
        if not cluster:
            # No ready endpoint anywhere (topology would have been dropped otherwise):
            # fall back to serving-and-terminating endpoints, ignoring topology.
            cluster = tuple(ep for ep in endpoints if _serving_terminating(ep))
        has_any = bool(cluster)

    if not svc.uses_local_endpoints:
        return Categorized(cluster, (), cluster, has_any)

    local_ready = False
    local_terminating = False
    for ep in endpoints:
        if ep.ready:
            has_any = True
            local_ready = local_ready or ep.is_local
        elif _serving_terminating(ep):
            has_any = True
            local_terminating = local_terminating or ep.is_local
    used_fallback = False
    if local_ready:
        local = tuple(ep for ep in endpoints if ep.is_local and ep.ready)
    elif local_terminating:
        used_fallback = True
        local = tuple(ep for ep in endpoints if ep.is_local and _serving_terminating(ep))

    if not svc.uses_cluster_endpoints:
        return Categorized((), local, local, has_any)
    if not use_topology and not used_fallback:
        # Cluster holds every ready endpoint and local only ready local ones: a superset.
        return Categorized(cluster, local, cluster, has_any)
    # Otherwise local may hold endpoints cluster lacks (terminating, or out of zone): merge.
    # Upstream merges through a Go map (random order); sort by ip:port for determinism.
    union = {str(ep): ep for ep in cluster}
    union.update((str(ep), ep) for ep in local)
    return Categorized(cluster, local, tuple(sorted(union.values(), key=str)), has_any)
