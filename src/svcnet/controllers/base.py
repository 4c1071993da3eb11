"""What every controller runner shares: informers per kind, a work queue, workers, retries.

A controller is a pure reconcile function (in its own module) plus a subclass of
`Controller` whose `sync(key)` reads the informer caches, calls the reconcile function
and applies the resulting plan through the ApiClient. `SharedInformers` gives every
controller the same cache of a kind, so the server watches each kind once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Iterable

from svcnet.api import errors
from svcnet.api.kinds import Kind
from svcnet.client.api import ApiClient
from svcnet.client.informer import Informer
from svcnet.client.workqueue import WorkQueue

log = logging.getLogger("svcnet.controllers")
MAX_RETRIES = 15


class SharedInformers:
    """One all-namespaces informer per kind, created on first request."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self._informers: dict[str, Informer] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def get(self, kind: Kind) -> Informer:
        key = kind.qualified_resource
        if key not in self._informers:
            self._informers[key] = Informer(self.client, kind)
        return self._informers[key]

    def start(self) -> None:
        for inf in self._informers.values():
            self._tasks.append(asyncio.create_task(inf.run(), name=f"informer-{inf.kind.kind}"))

    async def wait_synced(self) -> None:
        await asyncio.gather(*(inf.synced.wait() for inf in self._informers.values()))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()


class Controller:
    """Base runner: subclasses enqueue keys from informer handlers and implement sync()."""

    name = "controller"

    def __init__(self) -> None:
        self.queue = WorkQueue()

    async def sync(self, key: str) -> None:
        raise NotImplementedError

    def enqueue_all(self, keys: Iterable[str]) -> None:
        for k in keys:
            self.queue.add(k)

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                await self.sync(key)
                self.queue.forget(key)
            except asyncio.CancelledError:
                raise
            except errors.StatusError as e:
                # Conflicts are routine (a cache a little behind): retry soon, quietly.
                if e.reason != "Conflict":
                    log.warning("%s: sync %s failed: %s", self.name, key, e.message)
                self._retry(key)
            except Exception:
                log.exception("%s: sync %s failed", self.name, key)
                self._retry(key)
            finally:
                self.queue.done(key)

    def _retry(self, key: str) -> None:
        if self.queue.failures(key) < MAX_RETRIES:
            self.queue.add_rate_limited(key)
        else:
            log.error("%s: giving up on %s after %d retries", self.name, key, MAX_RETRIES)
            self.queue.forget(key)

    async def run(self, workers: int = 1) -> None:
        """Process the queue with `workers` concurrent workers until cancelled."""
        tasks = [asyncio.create_task(self._worker(), name=f"{self.name}-{i}")
                 for i in range(workers)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            self.queue.shutdown()
