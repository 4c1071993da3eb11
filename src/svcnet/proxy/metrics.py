"""kube-proxy's metrics (subsystem `kubeproxy`) and the /metrics and /healthz handlers.

Names, types and buckets follow kube-proxy (`pkg/proxy/metrics`), so dashboards and alerts
written for kube-proxy work unchanged: e.g. `kubeproxy_sync_proxy_rules_duration_seconds`
(histogram, exponential buckets 1 ms .. ~16 s), `kubeproxy_network_programming_duration_seconds`
(0.25 s .. 300 s), `kubeproxy_sync_proxy_rules_iptables_total{table}`. Unlike upstream the
metrics live on a private `CollectorRegistry` per proxier: several agents (or tests) can
run in one process without colliding on the global registry.

/healthz follows kube-proxy's proxier health server: 200 while healthy, 503 when a change
has been queued for longer than the health timeout (2 x syncPeriod upstream) without a
successful sync since; the body is JSON with `lastUpdated` and `currentTime`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, \
    Histogram, generate_latest

SUBSYSTEM = "kubeproxy"
#: `ExponentialBuckets(0.001, 2, 15)`.
SYNC_BUCKETS = tuple(0.001 * 2 ** i for i in range(15))
#: 0.25, 0.5, 1..59 step 1, 60..115 step 5, 120..300 step 30 (upstream).
NETWORK_PROGRAMMING_BUCKETS = (0.25, 0.5, *map(float, range(1, 60)),
                               *map(float, range(60, 120, 5)), *map(float, range(120, 301, 30)))


class ProxyMetrics:
    """The kube-proxy metric family, on its own registry (`registry`)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r, s = self.registry, SUBSYSTEM

        def hist(name: str, doc: str, buckets: tuple[float, ...] = SYNC_BUCKETS) -> Histogram:
            return Histogram(name, doc, subsystem=s, registry=r, buckets=buckets)

        self.sync_duration = hist("sync_proxy_rules_duration_seconds",
                                  "SyncProxyRules latency in seconds")
        self.sync_full_duration = hist("sync_full_proxy_rules_duration_seconds",
                                       "SyncProxyRules latency in seconds for full resyncs")
        self.sync_partial_duration = hist("sync_partial_proxy_rules_duration_seconds",
                                          "SyncProxyRules latency in seconds for partial "
                                          "resyncs")
        self.network_programming = hist("network_programming_duration_seconds",
                                        "In Cluster Network Programming Latency in seconds",
                                        NETWORK_PROGRAMMING_BUCKETS)
        self.last_timestamp = Gauge("sync_proxy_rules_last_timestamp_seconds",
                                    "The last time proxy rules were successfully synced",
                                    subsystem=s, registry=r)
        self.last_queued_timestamp = Gauge(
            "sync_proxy_rules_last_queued_timestamp_seconds",
            "The last time a sync of proxy rules was queued", subsystem=s, registry=r)
        self.iptables_total = Gauge("sync_proxy_rules_iptables_total",
                                    "Total number of iptables rules owned by kube-proxy",
                                    ["table"], subsystem=s, registry=r)
        self.iptables_last = Gauge("sync_proxy_rules_iptables_last",
                                   "Number of iptables rules written by kube-proxy in last "
                                   "sync", ["table"], subsystem=s, registry=r)
        self.restore_failures = Counter("sync_proxy_rules_iptables_restore_failures",
                                        "Cumulative proxy iptables restore failures",
                                        subsystem=s, registry=r)
        self.partial_restore_failures = Counter(
            "sync_proxy_rules_iptables_partial_restore_failures",
            "Cumulative proxy iptables partial restore failures", subsystem=s, registry=r)
        self.endpoint_changes_total = Counter("sync_proxy_rules_endpoint_changes",
                                              "Cumulative proxy rules Endpoint changes",
                                              subsystem=s, registry=r)
        self.endpoint_changes_pending = Gauge("sync_proxy_rules_endpoint_changes_pending",
                                              "Pending proxy rules Endpoint changes",
                                              subsystem=s, registry=r)
        self.service_changes_total = Counter("sync_proxy_rules_service_changes",
                                             "Cumulative proxy rules Service changes",
                                             subsystem=s, registry=r)
        self.service_changes_pending = Gauge("sync_proxy_rules_service_changes_pending",
                                             "Pending proxy rules Service changes",
                                             subsystem=s, registry=r)
        self.no_local_endpoints = Gauge(
            "sync_proxy_rules_no_local_endpoints_total",
            "Number of services with a Local traffic policy and no endpoints",
            ["traffic_policy"], subsystem=s, registry=r)
        self.healthz_total = Counter("proxy_healthz", "Cumulative proxy healthz HTTP status",
                                     ["code"], subsystem=s, registry=r)

    def value(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """A sample's current value by its full exposition name (for tests and tools)."""
        return self.registry.get_sample_value(name, labels or {})

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


@dataclass(frozen=True, slots=True)
class Health:
    """One /healthz verdict: `last_updated`/`current_time` are epoch seconds
    (`last_updated` None before the first successful sync)."""

    healthy: bool
    last_updated: float | None
    current_time: float


def _rfc3339(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


def metrics_app(metrics: ProxyMetrics) -> web.Application:
    """GET /metrics (Prometheus text), as kube-proxy's metrics server on :10249."""

    async def handle(_: web.Request) -> web.Response:
        resp = web.Response(body=metrics.render())
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp

    app = web.Application()
    app.router.add_get("/metrics", handle)
    return app


def healthz_app(health: Callable[[], Health], metrics: ProxyMetrics | None = None
                ) -> web.Application:
    """GET /healthz and /livez: 200 or 503 with kube-proxy's JSON body (as on :10256)."""

    async def handle(_: web.Request) -> web.Response:
        h = health()
        code = 200 if h.healthy else 503
        if metrics is not None:
            metrics.healthz_total.labels(code=str(code)).inc()
        body = {"lastUpdated": _rfc3339(h.last_updated),
                "currentTime": _rfc3339(h.current_time)}
        return web.Response(status=code, text=json.dumps(body),
                            content_type="application/json")

    app = web.Application()
    app.router.add_get("/healthz", handle)
    app.router.add_get("/livez", handle)
    return app
