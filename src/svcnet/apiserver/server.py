"""The API server process: routing, authentication, error translation, bootstrap, lifecycle.

`ApiServer` wires the registry and handlers into an aiohttp application. Errors raised
anywhere below (StatusError) become metav1.Status responses here, and only here.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Sequence

from aiohttp import web

from svcnet.api import errors, openapi
from svcnet.apiserver import discovery
from svcnet.apiserver.auth import TokenFile, User
from svcnet.apiserver.handlers import ResourceHandlers
from svcnet.apiserver.namespaces import NamespaceLifecycle
from svcnet.apiserver.paths import parse_resource_path
from svcnet.apiserver.allocator import IPAllocator, PortAllocator, parse_port_range
from svcnet.apiserver.bootstrap import (
    SERVICES,
    ensure_dns_service,
    ensure_kubernetes_service,
    ensure_namespaces,
)
from svcnet.apiserver.registry import Registry
from svcnet.apiserver.service_alloc import ServiceAllocation
from svcnet.client.local import LocalClient
from svcnet.controllers.manager import ControllerClass, ControllerManager
from svcnet.dns.app import ClusterDnsApp, DnsConfig
from svcnet.apiserver.request import check_acceptable, json_response
from svcnet.store.interface import Store

log = logging.getLogger("svcnet.apiserver")

ANONYMOUS_PATHS = {"/version", "/healthz", "/livez", "/readyz"}
DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
DEFAULT_NODE_PORT_RANGE = "30000-32767"
COMPACT_INTERVAL = 60.0


@dataclass
class ServerConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 6443
    advertise_address: str = ""  # the address clients (and the kubernetes Service) use
    extra_sans: list[str] = field(default_factory=list)


class ApiServer:
    """HTTP front of the registry. Create with a Store and a TokenFile, then `app()`."""

    def __init__(self, store: Store, tokens: TokenFile, *, server_address: str,
                 service_cidr: str = DEFAULT_SERVICE_CIDR,
                 node_port_range: str = DEFAULT_NODE_PORT_RANGE,
                 advertise: tuple[str, int] | None = None,
                 controllers: Sequence[ControllerClass] = (),
                 dns: DnsConfig | None = None, dns_endpoint: str | None = None) -> None:
        """`server_address` is host:port as clients reach us; `advertise` (IP, port), when
        given, is what the `kubernetes` Service's endpoints point at. `controllers` run
        in-process over a LocalClient once the server has bootstrapped. `dns`, when given,
        is served in-process too; with `dns_endpoint` (an IP) the `kube-dns` Service's
        endpoints point at it (port: the first DNS listen port)."""
        self.store = store
        self.tokens = tokens
        self.registry = Registry(store)
        self.resources = ResourceHandlers(
            self.registry, node_token=lambda node: tokens.token_for(f"system:node:{node}"))
        self.server_address = server_address
        self.service_cidr = service_cidr
        self.advertise = advertise
        self.allocation = ServiceAllocation(IPAllocator(service_cidr),
                                            PortAllocator(*parse_port_range(node_port_range)))
        self.registry.hooks.append(self.allocation)
        self.namespaces = NamespaceLifecycle(self.registry)
        self.controllers = ControllerManager(LocalClient(self.registry), controllers) \
            if controllers else None
        self._tasks: list[asyncio.Task[None]] = []
        self.dns_config = dns
        self.dns_endpoint = dns_endpoint
        self.dns: ClusterDnsApp | None = None

    # --- middleware ----------------------------------------------------------------------

    @web.middleware
    async def _errors(self, request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                      ) -> web.StreamResponse:
        try:
            return await handler(request)
        except errors.StatusError as e:
            return json_response(e.status(), e.code)
        except web.HTTPException:
            raise
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as e:  # a bug must still answer with a Status, and be logged
            log.exception("internal error serving %s %s", request.method, request.path)
            err = errors.internal(str(e) or type(e).__name__)
            return json_response(err.status(), err.code)

    def _authenticate(self, request: web.Request) -> User:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            user = self.tokens.authenticate(auth[7:].strip())
            if user is not None:
                return user
        raise errors.unauthorized()

    # --- routes --------------------------------------------------------------------------

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok")
        if path == "/version":
            return json_response(discovery.version_info())
        user = self._authenticate(request)
        check_acceptable(request.headers.get("Accept"))
        if path == "/debug/allocators":
            if not user.is_admin:
                raise errors.StatusError(403, "Forbidden", f'User "{user.name}" cannot get '
                                         'path "/debug/allocators"', {})
            return json_response(self.allocation.state())
        rp = parse_resource_path(path)
        if rp is not None:
            return await self.resources.handle(request, rp, user)
        if request.method != "GET":
            raise errors.method_not_allowed("the server does not allow this method on the "
                                            "requested resource")
        return self._discovery(request, path)

    def _discovery(self, request: web.Request, path: str) -> web.Response:
        accept = request.headers.get("Accept", "")
        aggregated = "as=APIGroupDiscoveryList" in accept and "v=v2" in accept.replace(
            "v=v2beta1", "")
        if path == "/api":
            if aggregated:
                return json_response(discovery.aggregated(True),
                                     content_type=discovery.AGGREGATED_CT)
            return json_response(discovery.legacy_api(self.server_address))
        if path == "/apis":
            if aggregated:
                return json_response(discovery.aggregated(False),
                                     content_type=discovery.AGGREGATED_CT)
            return json_response(discovery.legacy_apis())
        parts = path.strip("/").split("/")
        doc: dict[str, Any] | None = None
        if parts[0] == "api" and len(parts) == 2:
            doc = discovery.resource_list("", parts[1])
        elif parts[0] == "apis" and len(parts) == 2:
            doc = discovery.legacy_group(parts[1])
        elif parts[0] == "apis" and len(parts) == 3:
            doc = discovery.resource_list(parts[1], parts[2])
        elif path == "/openapi/v3":
            doc = openapi.root_document()
        elif parts[0] == "openapi" and len(parts) > 2 and parts[1] == "v3":
            doc = openapi.group_version_document("/".join(parts[2:]))
        if doc is None:
            raise errors.StatusError(404, "NotFound",
                                     "the server could not find the requested resource", {})
        return json_response(doc)

    def app(self) -> web.Application:
        # client_max_size above our own limit: read_body() enforces MAX_BODY with a Status.
        app = web.Application(middlewares=[self._errors], client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        app.on_startup.append(self._on_startup)
        app.on_cleanup.append(self._on_cleanup)
        return app

    # --- lifecycle -----------------------------------------------------------------------

    async def bootstrap(self) -> None:
        """Rebuild allocator state from the stored Services (so it always matches them,
        whatever happened before a crash), then ensure the objects every cluster has."""
        services = await self.registry.list(SERVICES, None)
        self.allocation.rebuild(services.items)
        await ensure_namespaces(self.registry)
        if self.advertise is not None:
            await ensure_kubernetes_service(self.registry, self.service_cidr, *self.advertise)
        if self.dns_config is not None and self.dns_endpoint and self.dns_config.listen:
            metrics = self.dns_config.metrics_listen
            await ensure_dns_service(self.registry, self.service_cidr, self.dns_endpoint,
                                     self.dns_config.listen[0][1],
                                     metrics[1] if metrics else None)

    async def _compact_loop(self) -> None:
        compact = getattr(self.store, "compact_window", None)
        if compact is None:
            return
        while True:
            await asyncio.sleep(COMPACT_INTERVAL)
            try:
                await compact()
            except Exception:
                log.exception("compaction failed")

    async def _on_startup(self, app: web.Application) -> None:
        await self.bootstrap()
        self._tasks.append(asyncio.create_task(self._compact_loop()))
        self._tasks.append(asyncio.create_task(self.namespaces.run()))
        if self.controllers is not None:
            self._tasks.append(asyncio.create_task(self.controllers.run()))
        if self.dns_config is not None:
            self.dns = ClusterDnsApp(LocalClient(self.registry), self.dns_config)
            await self.dns.start()

    async def _on_cleanup(self, app: web.Application) -> None:
        if self.dns is not None:
            await self.dns.close()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        await self.store.close()

