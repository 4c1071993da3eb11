"""Running a set of controllers over one client: the kube-controller-manager of svcnet.

Order matters and is fixed here: construct every controller (each registers its informer
handlers), start the shared informers, wait until all have listed (no controller acts on
partial state), then start the workers.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol, Sequence

from svcnet.client.api import ApiClient
from svcnet.controllers.base import Controller, SharedInformers

log = logging.getLogger("svcnet.controllers")


class ControllerClass(Protocol):
    name: str

    def __call__(self, client: ApiClient, informers: SharedInformers) -> Controller: ...


class ControllerManager:
    def __init__(self, client: ApiClient, classes: Sequence[ControllerClass],
                 workers: int = 2) -> None:
        self.client = client
        self.informers = SharedInformers(client)
        self.controllers = [cls(client, self.informers) for cls in classes]
        self.workers = workers
        self.started = asyncio.Event()

    async def run(self) -> None:
        """Run until cancelled."""
        self.informers.start()
        try:
            await self.informers.wait_synced()
            self.started.set()
            log.info("controllers started: %s", ", ".join(c.name for c in self.controllers))
            await asyncio.gather(*(c.run(self.workers) for c in self.controllers))
        finally:
            await self.informers.stop()


def default_controllers() -> list[ControllerClass]:
    """Every controller `svcnet server` runs, in start order."""
    from svcnet.controllers.deployment import DeploymentController
    from svcnet.controllers.endpoints import EndpointsController
    from svcnet.controllers.endpointslice import EndpointSliceController
    from svcnet.controllers.gc import GarbageCollector
    from svcnet.controllers.mirroring import EndpointSliceMirroringController
    from svcnet.controllers.replicaset import ReplicaSetController
    from svcnet.controllers.scheduler import Scheduler
    return [EndpointSliceController, EndpointsController, EndpointSliceMirroringController,
            ReplicaSetController, DeploymentController, Scheduler, GarbageCollector]
