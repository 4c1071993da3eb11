"""The ReplicaSet controller: keeps `spec.replicas` pods of a ReplicaSet's template running.

`reconcile` (replicaset_plan.py, re-exported here) decides; `ReplicaSetController.sync`
reads the informer caches, asks it for a plan and applies it:

1. adopt / release pods with strategic-merge patches of ownerReferences keyed by uid, as
   upstream does (a patch, not a PUT, so it never conflicts with a kubelet's status write);
2. create pods in slow-start batches (1, 2, 4, ...), stopping at the first failing batch,
   or delete the chosen pods concurrently;
3. write the status through /status when it changed.

Expectations guard step 2: before creating N pods the controller expects N pod ADDED
events for this ReplicaSet (before deleting, the deletion of those pods), and plans no new
creates or deletes until the informer has shown them all, or five minutes passed. Without
this, a sync running before the cache caught up would create the same pods again.

Scaling through /scale needs nothing special: it changes spec.replicas, which arrives as a
ReplicaSet MODIFIED event like any other edit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

from svcnet.api import errors
from svcnet.api.kinds import kind_for
from svcnet.api.selectors import matches
from svcnet.client.api import ApiClient
from svcnet.client.informer import object_key
from svcnet.controllers import podstate
from svcnet.controllers.base import Controller, SharedInformers
from svcnet.controllers.events import EventRecorder
from svcnet.controllers.expectations import Expectations
from svcnet.controllers.ownerrefs import controller_ref, owner_reference
from svcnet.controllers.replicaset_plan import (
    RSPlan, calculate_status, reconcile, requeue_after, selector_of, slow_start_batches,
    status_changed)

__all__ = ["RSPlan", "ReplicaSetController", "calculate_status", "reconcile",
           "slow_start_batches"]

log = logging.getLogger("svcnet.controllers.replicaset")
Obj = dict[str, Any]



REPLICASETS = kind_for("apps", "replicasets")
PODS = kind_for("", "pods")


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _namespace_terminating(e: errors.StatusError) -> bool:
    """Creates in a namespace being deleted fail with this cause; upstream ignores them."""
    causes = (e.details or {}).get("causes") or []
    return any(c.get("reason") == "NamespaceTerminating" for c in causes) or \
        "because it is being terminated" in e.message


class ReplicaSetController(Controller):
    """Runs ReplicaSets. `now` (wall clock, for conditions and availability) and `clock`
    (monotonic, for expectation timeouts) are injectable for tests."""

    name = "replicaset-controller"

    def __init__(self, client: ApiClient, informers: SharedInformers, *,
                 now: Callable[[], datetime] = _utcnow,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.client = client
        self.now = now
        self.replicasets = informers.get(REPLICASETS)
        self.pods = informers.get(PODS)
        self.expectations = Expectations(clock)
        self.recorder = EventRecorder(client, self.name)
        self.replicasets.add_handler(self._on_replicaset)
        self.pods.add_handler(self._on_pod)

    # --- informer handlers: only enqueue keys and count observations ------------------------

    def _on_replicaset(self, ev_type: str, old: Obj | None, new: Obj | None) -> None:
        obj = new or old
        assert obj is not None
        key = object_key(obj)
        if ev_type == "DELETED":
            self.expectations.forget(key)
        self.queue.add(key)

    def _owner_key(self, pod: Obj) -> str | None:
        """Key of the ReplicaSet controlling `pod`, if it exists with the referenced uid."""
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return None
        ns = pod["metadata"].get("namespace")
        rs = self.replicasets.get(ns, ref.get("name", ""))
        if rs is None or rs["metadata"].get("uid") != ref.get("uid"):
            return None
        return f"{ns}/{ref['name']}"

    def _adopters(self, pod: Obj) -> list[str]:
        """Keys of the ReplicaSets whose selector picks this orphan pod."""
        ns = pod["metadata"].get("namespace")
        labels = pod["metadata"].get("labels") or {}
        return [object_key(rs) for rs in self.replicasets.list(ns)
                if matches(selector_of(rs), labels)]

    def _pod_gone(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.deletion_observed(key, pod["metadata"].get("uid", ""))
            self.queue.add(key)

    def _on_pod(self, ev_type: str, old: Obj | None, new: Obj | None) -> None:
        if ev_type == "DELETED":
            assert old is not None
            self._pod_gone(old)
            return
        assert new is not None
        if ev_type == "ADDED":
            if new["metadata"].get("deletionTimestamp"):
                # Seen for the first time already terminating (e.g. after a relist):
                # that is not the creation we may be waiting for.
                self._pod_gone(new)
                return
            key = self._owner_key(new)
            if key is not None:
                self.expectations.creation_observed(key)
                self.queue.add(key)
            elif controller_ref(new) is None:
                self.enqueue_all(self._adopters(new))
            return
        assert old is not None
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return
        labels_changed = old["metadata"].get("labels") != new["metadata"].get("labels")
        if new["metadata"].get("deletionTimestamp"):
            # Graceful deletion started: replace the pod now, not when the node is done.
            self._pod_gone(new)
            if labels_changed:
                self._pod_gone(old)
            return
        old_ref, new_ref = controller_ref(old), controller_ref(new)
        if old_ref != new_ref and old_ref is not None:
            old_key = self._owner_key(old)
            if old_key is not None:
                self.queue.add(old_key)
        if new_ref is not None:
            key = self._owner_key(new)
            if key is None:
                return
            self.queue.add(key)
            rs = self.replicasets.get(*key.split("/", 1))
            min_ready = int(((rs or {}).get("spec") or {}).get("minReadySeconds") or 0)
            if min_ready > 0 and not podstate.is_ready(old) and podstate.is_ready(new):
                # Becomes available only after minReadySeconds: look again then.
                self.queue.add_after(key, min_ready + 1.0)
            return
        if labels_changed or old_ref != new_ref:
            self.enqueue_all(self._adopters(new))

    # --- sync ---------------------------------------------------------------------------

    def _related_pods(self, rs: Obj, pods: Sequence[Obj]) -> list[Obj] | None:
        """Pods of every ReplicaSet sharing this one's controller (for deletion ranking)."""
        ref = controller_ref(rs)
        if ref is None:
            return None
        siblings = {r["metadata"].get("uid") for r in
                    self.replicasets.list(rs["metadata"].get("namespace"))
                    if (controller_ref(r) or {}).get("uid") == ref.get("uid")}
        return [p for p in pods if (controller_ref(p) or {}).get("uid") in siblings]

    async def sync(self, key: str) -> None:
        ns, name = key.split("/", 1)
        rs = self.replicasets.get(ns, name)
        if rs is None:
            self.expectations.forget(key)
            return
        now = self.now()
        pods = self.pods.list(ns)
        plan = reconcile(rs, pods, now, manage=self.expectations.satisfied(key),
                         related_pods=self._related_pods(rs, pods))
        await self._claim(rs, plan)
        failure: BaseException | None = None
        if plan.create:
            failure = await self._create(key, rs, plan.create)
        elif plan.delete:
            failure = await self._delete(key, rs, plan.delete)
        status = plan.status
        if failure is not None:
            message = failure.message if isinstance(failure, errors.StatusError) else str(failure)
            status = calculate_status(rs, plan.active, now, manage_error=message)
        if status_changed(rs, status):
            await self.client.update(REPLICASETS, ns, dict(rs, status=status),
                                     subresource="status")
        if failure is not None:
            raise failure  # retried with backoff, as upstream requeues on manageReplicas errors
        after = requeue_after(rs, status)
        if after is not None:
            self.queue.add_after(key, after + 1.0)  # +1s against clock skew, as upstream

    async def _claim(self, rs: Obj, plan: RSPlan) -> None:
        """Adopt and release with uid-keyed strategic-merge patches; the pod's own uid in
        the patch mirrors upstream's precondition against a same-named replacement."""
        ns = rs["metadata"].get("namespace")
        owner_uid = rs["metadata"].get("uid")
        for pod in plan.adopt:
            patch = {"metadata": {"ownerReferences": [owner_reference(rs, kind="ReplicaSet")],
                                  "uid": pod["metadata"].get("uid")}}
            await self.client.patch(PODS, ns, pod["metadata"]["name"], patch,
                                    patch_type="strategic")
        for pod in plan.release:
            patch = {"metadata": {"ownerReferences": [{"$patch": "delete", "uid": owner_uid}],
                                  "uid": pod["metadata"].get("uid")}}
            try:
                await self.client.patch(PODS, ns, pod["metadata"]["name"], patch,
                                        patch_type="strategic")
            except errors.StatusError as e:
                if e.reason not in ("NotFound", "Invalid"):  # gone: nothing to release
                    raise

    async def _create(self, key: str, rs: Obj, pods: list[Obj]) -> BaseException | None:
        """Create in slow-start batches; returns the first failure. Every create that is
        skipped or fails is marked observed, so expectations only wait for real pods."""
        self.expectations.expect_creations(key, len(pods))
        done = 0
        failure: BaseException | None = None
        for size in slow_start_batches(len(pods)):
            results = await asyncio.gather(*(self._create_one(key, rs, p)
                                             for p in pods[done:done + size]),
                                           return_exceptions=True)
            done += size
            failed = [r for r in results if isinstance(r, BaseException)]
            for r in failed:
                if isinstance(r, asyncio.CancelledError):
                    raise r
                self.expectations.creation_observed(key)
            if failed:
                failure = failed[0]
                break
        for _ in range(len(pods) - done):
            self.expectations.creation_observed(key)
        return failure

    async def _create_one(self, key: str, rs: Obj, pod: Obj) -> None:
        ns = rs["metadata"].get("namespace")
        try:
            created = await self.client.create(PODS, ns, pod)
        except errors.StatusError as e:
            if _namespace_terminating(e):
                self.expectations.creation_observed(key)  # will never appear; not an error
                return
            await self.recorder.record(rs, "Warning", "FailedCreate",
                                       f"Error creating: {e.message}")
            raise
        await self.recorder.record(rs, "Normal", "SuccessfulCreate",
                                   f"Created pod: {created['metadata']['name']}")

    async def _delete(self, key: str, rs: Obj, pods: list[Obj]) -> BaseException | None:
        self.expectations.expect_deletions(key, [p["metadata"].get("uid", "") for p in pods])
        results = await asyncio.gather(*(self._delete_one(key, rs, p) for p in pods),
                                       return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        for r in failed:
            if isinstance(r, asyncio.CancelledError):
                raise r
        return failed[0] if failed else None

    async def _delete_one(self, key: str, rs: Obj, pod: Obj) -> None:
        meta = pod["metadata"]
        try:
            await self.client.delete(PODS, meta.get("namespace"), meta["name"],
                                     uid=meta.get("uid"))
        except errors.StatusError as e:
            # The pod will never send the event we wait for: stop waiting for it.
            self.expectations.deletion_observed(key, meta.get("uid", ""))
            if e.reason == "NotFound":
                return
            await self.recorder.record(rs, "Warning", "FailedDelete",
                                       f"Error deleting: {e.message}")
            raise
        await self.recorder.record(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {meta['name']}")
