"""Cluster DNS as a running service: informers feed `ClusterDNS`; sockets serve it.

`ClusterDnsApp` is what `svcnet server` runs next to the API server (DESIGN.md: API
server, controllers and DNS in one process, as k3s does). It

1. opens the DNS sockets at once, so clients get SERVFAIL rather than "connection
   refused" while the caches fill (DESIGN.md: never answer from partial state);
2. runs informers for Services, EndpointSlices, Pods and Namespaces whose events go straight into
   `ClusterDNS.apply` (so a deleted Service stops resolving as soon as the watch event
   arrives, well within a second), and calls `mark_synced` once all of them have listed;
3. serves CoreDNS's metrics on `metrics_listen` (`/metrics`, port 9153 in a cluster) and
   `/health`, and sends the forwarding-loop probe upstream once.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from svcnet.api.kinds import kind_for
from svcnet.client.api import ApiClient, Obj
from svcnet.client.informer import Informer
from svcnet.dns.forward_cache import ResponseCache
from svcnet.dns.cluster import ClusterDNS
from svcnet.dns.metrics import DnsMetrics, registry_for
from svcnet.dns.server import DnsServer
from svcnet.dns.upstream import Forwarder, Upstream

log = logging.getLogger("svcnet.dns")

FEEDS = (("Service", kind_for("", "services")),
         ("EndpointSlice", kind_for("discovery.k8s.io", "endpointslices")),
         ("Pod", kind_for("", "pods")),
         ("Namespace", kind_for("", "namespaces")))


@dataclass
class DnsConfig:
    """Where to serve and what to answer. `upstreams` empty: outside names get SERVFAIL."""

    listen: list[tuple[str, int]]
    upstreams: list[Upstream]
    metrics_listen: tuple[str, int] | None = None
    domain: str = "cluster.local"
    ttl: int = 5
    cache_max_ttl: int = 30
    log_queries: bool = False
    pods: str = "insecure"  # CoreDNS `pods`: insecure (kubeadm's choice), verified, disabled
    bound: list[tuple[str, int]] = field(default_factory=list)


class ClusterDnsApp:
    """The running DNS service (see the module docstring)."""

    def __init__(self, client: ApiClient, config: DnsConfig) -> None:
        self.config = config
        self.core = ClusterDNS(domain=config.domain, ttl=config.ttl, pods=config.pods)
        self.forwarder = Forwarder(config.upstreams,
                                   cache=ResponseCache(max_ttl=config.cache_max_ttl))
        server_label = ",".join(f"dns://{h}:{p}" for h, p in config.listen) or "dns://:53"
        self.metrics = DnsMetrics(server_label)
        query_log = logging.getLogger("svcnet.dns.query").info if config.log_queries else None
        self.server = DnsServer(self.core, self.forwarder, self.metrics, query_log=query_log)
        self.informers: list[Informer] = []
        for kind_name, kind in FEEDS:
            inf = Informer(client, kind)
            inf.add_handler(self._feed(kind_name))
            self.informers.append(inf)
        self._tasks: list[asyncio.Task[None]] = []
        self._metrics_runner: web.AppRunner | None = None

    def _feed(self, kind_name: str) -> Callable[[str, Obj | None, Obj | None], None]:
        core = self.core

        def handler(ev_type: str, old: Obj | None, new: Obj | None) -> None:
            core.apply(kind_name, old, new)
        return handler

    async def start(self) -> list[tuple[str, int]]:
        """Open the sockets, start the informers and metrics; returns the bound addresses."""
        bound = [await self.server.start(host, port) for host, port in self.config.listen]
        self.config.bound = bound
        self._tasks = [asyncio.create_task(inf.run()) for inf in self.informers]
        self._tasks.append(asyncio.create_task(self._mark_synced()))
        self._tasks.append(asyncio.create_task(self.forwarder.probe()))
        if self.config.metrics_listen is not None:
            app = web.Application()
            app.router.add_get("/metrics", self._metrics)
            app.router.add_get("/health", self._health)
            self._metrics_runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await self._metrics_runner.setup()
            await web.TCPSite(self._metrics_runner, *self.config.metrics_listen).start()
        return bound

    async def _mark_synced(self) -> None:
        await asyncio.gather(*(inf.synced.wait() for inf in self.informers))
        self.core.mark_synced()
        log.info("cluster DNS synced: answering for %s", self.config.domain)

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(registry_for(self.metrics))
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="OK")

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.server.close()
        if self._metrics_runner is not None:
            await self._metrics_runner.cleanup()
