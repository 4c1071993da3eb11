"""The Deployment controller: rolls Deployments out as ReplicaSets, one revision each.

`plan_deployment` (deployment_plan.py, re-exported) decides from the informer caches;
`DeploymentController.sync` applies the plan in order: ReplicaSet creates / PUTs /
deletes (each PUT guarded by the cached resourceVersion), the Events each write earned,
the status through /status (guarded likewise, so `observedGeneration` is only claimed
for a spec the controller really acted on), then the revision annotation by a merge
patch of the main resource. (Upstream writes that annotation together with the status:
kube's Deployment status strategy keeps metadata changes; this API server's /status
keeps only status, so it takes a second write.)

Work is triggered by the Deployment itself, by its ReplicaSets (through their controller
reference, or for orphans every Deployment whose selector matches), by pod changes of
Recreate Deployments (they wait for old pods to disappear), and by the planner's
progress-deadline requeue.

A create that finds its name taken is either our own ReplicaSet that the cache has not
shown yet (wait for its event) or a hash collision: then `status.collisionCount` goes up
and the next sync hashes the template to another name, as upstream.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, Callable

from svcnet.api import errors
from svcnet.api.kinds import kind_for
from svcnet.api.selectors import matches
from svcnet.client.api import ApiClient
from svcnet.client.informer import object_key
from svcnet.controllers import deployment_revisions as rev
from svcnet.controllers import deployment_status as dstatus
from svcnet.controllers.base import Controller, SharedInformers
from svcnet.controllers.deployment_plan import (
    DeploymentPlan, EventSpec, RSChange, plan_deployment)
from svcnet.controllers.events import EventRecorder
from svcnet.controllers.ownerrefs import controller_ref, is_controlled_by
from svcnet.controllers.replicaset_plan import selector_of

__all__ = ["DeploymentController", "DeploymentPlan", "EventSpec", "RSChange",
           "plan_deployment"]

log = logging.getLogger("svcnet.controllers.deployment")
Obj = dict[str, Any]



DEPLOYMENTS = kind_for("apps", "deployments")
REPLICASETS = kind_for("apps", "replicasets")
PODS = kind_for("", "pods")


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _recreate(d: Obj) -> bool:
    return ((d.get("spec") or {}).get("strategy") or {}).get("type") == "Recreate"


class DeploymentController(Controller):
    """Runs Deployments; `now` is injectable for tests."""

    name = "deployment-controller"

    def __init__(self, client: ApiClient, informers: SharedInformers, *,
                 now: Callable[[], datetime] = _utcnow) -> None:
        super().__init__()
        self.client = client
        self.now = now
        self.deployments = informers.get(DEPLOYMENTS)
        self.replicasets = informers.get(REPLICASETS)
        self.pods = informers.get(PODS)
        self.recorder = EventRecorder(client, self.name)
        self.deployments.add_handler(self._on_deployment)
        self.replicasets.add_handler(self._on_replicaset)
        self.pods.add_handler(self._on_pod)

    # --- informer handlers --------------------------------------------------------------

    def _on_deployment(self, ev_type: str, old: Obj | None, new: Obj | None) -> None:
        obj = new or old
        assert obj is not None
        self.queue.add(object_key(obj))

    def _owner_key(self, obj: Obj, ref: Obj | None) -> str | None:
        if ref is None or ref.get("kind") != "Deployment":
            return None
        return f"{obj['metadata'].get('namespace')}/{ref.get('name')}"

    def _matching(self, rs: Obj) -> list[str]:
        """Deployments whose selector picks this orphan ReplicaSet (may adopt it)."""
        labels = rs["metadata"].get("labels") or {}
        return [object_key(d) for d in self.deployments.list(rs["metadata"].get("namespace"))
                if matches(selector_of(d), labels)]

    def _on_replicaset(self, ev_type: str, old: Obj | None, new: Obj | None) -> None:
        obj = new or old
        assert obj is not None
        ref = controller_ref(obj)
        keys: set[str] = set()
        if ref is not None:
            key = self._owner_key(obj, ref)
            if key:
                keys.add(key)
        if ev_type == "MODIFIED" and old is not None:
            old_ref = controller_ref(old)
            if old_ref != ref and old_ref is not None:
                key = self._owner_key(old, old_ref)
                if key:
                    keys.add(key)
            if ref is None and (old_ref != ref or old["metadata"].get("labels")
                                != obj["metadata"].get("labels")):
                keys.update(self._matching(obj))
        elif ev_type == "ADDED" and ref is None:
            keys.update(self._matching(obj))
        self.enqueue_all(sorted(keys))

    def _on_pod(self, ev_type: str, old: Obj | None, new: Obj | None) -> None:
        """Only Recreate cares about pods: it waits for the old ones to be gone."""
        pod = new or old
        assert pod is not None
        if ev_type == "ADDED":
            return
        if ev_type == "MODIFIED" and old is not None and new is not None and \
                (old.get("status") or {}).get("phase") == (new.get("status") or {}).get("phase"):
            return
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        ns = pod["metadata"].get("namespace")
        rs = self.replicasets.get(ns, ref.get("name", ""))
        owner = controller_ref(rs) if rs is not None else None
        key = self._owner_key(rs, owner) if rs is not None else None
        if key is None:
            return
        d = self.deployments.get(ns, key.split("/", 1)[1])
        if d is not None and _recreate(d):
            self.queue.add(key)

    # --- sync ---------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        ns, name = key.split("/", 1)
        d = self.deployments.get(ns, name)
        if d is None:
            return
        pods = self.pods.list(ns) if _recreate(d) else []
        plan = plan_deployment(d, self.replicasets.list(ns), pods, self.now())
        if not await self._apply_changes(key, d, plan.changes):
            return
        if plan.status is not None:
            await self.client.update(DEPLOYMENTS, ns, dict(d, status=plan.status),
                                     subresource="status")
        if plan.annotations:
            await self.client.patch(DEPLOYMENTS, ns, name,
                                    {"metadata": {"annotations": plan.annotations}})
        if plan.requeue_after is not None:
            self.queue.add_after(key, plan.requeue_after)

    async def _apply_changes(self, key: str, d: Obj, changes: list[RSChange]) -> bool:
        """Write the ReplicaSet changes in order; False when the sync must stop here."""
        ns = d["metadata"].get("namespace")
        for change in changes:
            meta = change.obj["metadata"]
            if change.op == "create":
                try:
                    await self.client.create(REPLICASETS, ns, change.obj)
                except errors.StatusError as e:
                    await self._create_failed(key, d, change.obj, e)
                    return False
            elif change.op == "update":
                await self.client.update(REPLICASETS, ns, change.obj)
            else:
                try:
                    await self.client.delete(REPLICASETS, ns, meta["name"], uid=meta.get("uid"))
                except errors.StatusError as e:
                    if e.reason != "NotFound":
                        raise
            await self._record(d, change.events)
        return True

    async def _record(self, d: Obj, events: list[EventSpec]) -> None:
        for ev in events:
            await self.recorder.record(d, ev.type, ev.reason, ev.message)

    async def _create_failed(self, key: str, d: Obj, rs: Obj, e: errors.StatusError) -> None:
        ns, name = d["metadata"].get("namespace"), rs["metadata"]["name"]
        if e.reason == "AlreadyExists":
            existing = self.replicasets.get(ns, name)
            if existing is None:
                try:
                    existing = await self.client.get(REPLICASETS, ns, name)
                except errors.StatusError:
                    existing = None
            if existing is not None and is_controlled_by(existing, d) and \
                    rev.equal_ignore_hash(rev.template_of(existing), rev.template_of(d)):
                # Ours; the cache is behind. Its ADDED event will resync, but do not
                # depend on having missed nothing.
                self.queue.add_after(key, 0.5)
                return
            status = dict(d.get("status") or {})
            status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
            log.info("hash collision for %s: collisionCount %d", key, status["collisionCount"])
            await self.client.update(DEPLOYMENTS, ns, dict(d, status=status),
                                     subresource="status")
            return
        if any(c.get("reason") == "NamespaceTerminating"
               for c in (e.details or {}).get("causes") or []):
            return
        message = f'Failed to create new replica set "{name}": {e.message}'
        if dstatus.has_progress_deadline(d):
            status = dict(d.get("status") or {})
            dstatus.set_condition(status, dstatus.new_condition(
                dstatus.PROGRESSING, "False", dstatus.RS_CREATE_ERROR, message, self.now()))
            try:
                await self.client.update(DEPLOYMENTS, ns, dict(d, status=status),
                                         subresource="status")
            except errors.StatusError:
                pass  # the create error below is the one to report
        await self.recorder.record(d, "Warning", dstatus.RS_CREATE_ERROR, message)
        raise e
