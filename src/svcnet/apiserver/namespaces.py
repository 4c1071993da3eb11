"""Finishing namespace deletion: delete everything inside, then drop the finalizer.

`kubectl delete namespace x` marks the Namespace Terminating (its `kubernetes` spec
finalizer holds it); this loop then deletes every namespaced object in it, and once none
is left, clears spec.finalizers through /finalize, which removes the Namespace. Pods bound
to a Node that does not exist are force-deleted (as kube's pod garbage collector does), so
a namespace does not hang on Pods no node will ever stop.

It runs inside the server on the registry for now; it is a controller by nature and moves
to controllers/ with the others (issue 4).
"""

from __future__ import annotations

import asyncio
import logging

from svcnet.api import errors
from svcnet.api.kinds import KINDS, kind_for
from svcnet.apiserver.registry import NAMESPACES, Registry

log = logging.getLogger("svcnet.namespaces")
NODES = kind_for("", "nodes")
RETRY = 0.5


class NamespaceLifecycle:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._running: dict[str, asyncio.Task[None]] = {}

    async def run(self) -> None:
        """Watch Namespaces forever, finishing each one marked for deletion."""
        while True:
            try:
                res = await self.registry.list(NAMESPACES, None)
                for ns in res.items:
                    self._consider(ns)
                async for ev in self.registry.watch(NAMESPACES, None, res.resource_version):
                    if ev.type != "DELETED":
                        self._consider(ev.obj)
            except asyncio.CancelledError:
                for t in self._running.values():
                    t.cancel()
                raise
            except errors.StatusError as e:
                if e.code != 410:
                    log.exception("namespace watch failed")
                await asyncio.sleep(RETRY)

    def _consider(self, ns: dict) -> None:
        name = ns["metadata"]["name"]
        if ns["metadata"].get("deletionTimestamp") and name not in self._running:
            task = asyncio.create_task(self.finish(name))
            self._running[name] = task
            task.add_done_callback(lambda _t: self._running.pop(name, None))

    async def _node_exists(self, name: str) -> bool:
        try:
            await self.registry.get(NODES, None, name)
            return True
        except errors.StatusError:
            return False

    async def _delete_content(self, ns: str) -> int:
        """Issue deletes for everything in `ns`; returns how many objects remain."""
        remaining = 0
        for kind in KINDS:
            if not kind.namespaced:
                continue
            for obj in (await self.registry.list(kind, ns)).items:
                remaining += 1
                meta = obj["metadata"]
                grace = None
                node = (obj.get("spec") or {}).get("nodeName") if kind.kind == "Pod" else None
                if node and not await self._node_exists(node):
                    grace = 0
                if meta.get("deletionTimestamp") and grace is None:
                    continue
                try:
                    await self.registry.delete(kind, ns, meta["name"], grace_seconds=grace)
                except errors.StatusError as e:
                    if e.reason not in ("NotFound", "Conflict"):
                        raise
        return remaining

    async def finish(self, name: str) -> None:
        while True:
            try:
                if await self._delete_content(name) == 0:
                    def clear(cur: dict | None) -> dict:
                        assert cur is not None
                        cur["spec"] = {"finalizers": []}
                        return cur
                    await self.registry.patch(NAMESPACES, None, name, clear,
                                              subresource="finalize")
                    return
            except errors.StatusError as e:
                if e.reason == "NotFound":
                    return
                log.warning("finishing namespace %s: %s", name, e.message)
            await asyncio.sleep(RETRY)
