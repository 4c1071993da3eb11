"""The garbage collector: dependents follow their owners, as DeleteOptions.propagationPolicy says.

An object with metadata.ownerReferences is a dependent of each owner named there (by
kind, name and uid; a namespaced owner lives in the dependent's namespace). Kubernetes'
rules, which `plan` applies to a snapshot of every object:

- Background (default): the owner is deleted at once; a dependent whose owners are all
  gone ("dangling" references) is deleted. One with some owner left only loses the
  references to the missing owners.
- Foreground: the owner stays, with a deletionTimestamp and the `foregroundDeletion`
  finalizer, while its dependents are deleted (a dependent that has dependents of its own is
  deleted in the foreground too); the finalizer comes off, and the owner goes, once no
  dependent with `blockOwnerDeletion: true` is left.
- Orphan: the owner stays, with the `orphan` finalizer, until its dependents' references to
  it are removed; then the finalizer comes off. The dependents live on.

The API server sets those finalizers on DELETE (apiserver/registry.py `gc_finalizers`); the
removal of the last finalizer is what finally deletes an object.

Caches of different kinds are watched separately and may lag one another (a Pod can be seen
before the ReplicaSet that created it), so the runner confirms with a live GET that every
owner it believes gone really is, before deleting or un-owning anything, as the upstream GC
confirms absent owners against the API server.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Iterable, Union

from svcnet.api import errors
from svcnet.api.kinds import KINDS, Kind, by_kind
from svcnet.apiserver.registry import FOREGROUND_FINALIZER, ORPHAN_FINALIZER
from svcnet.client.api import ApiClient, Obj
from svcnet.controllers.base import Controller, SharedInformers

log = logging.getLogger("svcnet.gc")
SWEEP = "sweep"
SWEEP_INTERVAL = 0.5  # seconds; bounds the GC's CPU when many owned objects change


@dataclass(frozen=True)
class Ref:
    """One object, as addressed by the API (uid guards against a same-named successor)."""

    kind: Kind
    namespace: str | None
    name: str
    uid: str

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind.kind} {where}{self.name}"


@dataclass(frozen=True)
class Delete:
    """Delete `target` with `policy`; first confirm that the owners in `absent` are gone."""

    target: Ref
    policy: str  # Background | Foreground | Orphan
    absent: tuple[Ref, ...] = ()


@dataclass(frozen=True)
class RemoveOwnerRefs:
    """Drop the ownerReferences with `owner_uids` from `target` (owners in `absent` are
    confirmed gone first; the others are being deleted or orphan their dependents)."""

    target: Ref
    owner_uids: tuple[str, ...]
    absent: tuple[Ref, ...] = ()


@dataclass(frozen=True)
class RemoveFinalizer:
    """Take `finalizer` off `target`, after un-owning `orphan` (the orphan case), if any."""

    target: Ref
    finalizer: str
    orphan: tuple[Ref, ...] = ()


Action = Union[Delete, RemoveOwnerRefs, RemoveFinalizer]


def _kind_of(obj: Obj) -> Kind | None:
    return by_kind(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))


def _ref(kind: Kind, obj: Obj) -> Ref:
    meta = obj["metadata"]
    return Ref(kind, meta.get("namespace") or None, meta["name"], str(meta.get("uid", "")))


def _finalizers(obj: Obj) -> list[str]:
    return list(obj["metadata"].get("finalizers") or [])


def _deleting(obj: Obj) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


def plan(objects: Iterable[Obj]) -> list[Action]:
    """What the GC must do, given every object of the watched kinds (pure; deterministic).

    Objects must carry apiVersion and kind (as API reads and watches return them); those of
    kinds this server does not serve are ignored, and a reference to such a kind keeps its
    dependent alive (the owner cannot be looked up, so it is never presumed gone)."""
    typed: list[tuple[Kind, Obj]] = []
    for obj in objects:
        kind = _kind_of(obj)
        if kind is not None and obj.get("metadata", {}).get("uid"):
            typed.append((kind, obj))
    typed.sort(key=lambda ko: (ko[0].qualified_resource, ko[1]["metadata"].get("namespace", ""),
                               ko[1]["metadata"]["name"]))
    by_uid = {o["metadata"]["uid"]: (k, o) for k, o in typed}
    # owner uid -> [(dependent, its reference to that owner)]
    dependents: dict[str, list[tuple[Kind, Obj, dict[str, Any]]]] = {}
    for kind, obj in typed:
        for r in obj["metadata"].get("ownerReferences") or []:
            dependents.setdefault(str(r.get("uid")), []).append((kind, obj, r))

    actions: list[Action] = []
    for kind, obj in typed:
        uid = obj["metadata"]["uid"]
        fins = _finalizers(obj)
        if _deleting(obj) and ORPHAN_FINALIZER in fins:
            orphans = tuple(_ref(k, d) for k, d, _ in dependents.get(uid, []))
            actions.append(RemoveFinalizer(_ref(kind, obj), ORPHAN_FINALIZER, orphans))
        elif _deleting(obj) and FOREGROUND_FINALIZER in fins:
            if not any(r.get("blockOwnerDeletion") for _, _, r in dependents.get(uid, [])):
                actions.append(RemoveFinalizer(_ref(kind, obj), FOREGROUND_FINALIZER))
        elif not _deleting(obj) and obj["metadata"].get("ownerReferences"):
            # (an object being deleted is on a one-way trip: nothing more to decide)
            action = _dependent_action(kind, obj, by_uid, has_dependents=uid in dependents)
            if action is not None:
                actions.append(action)
    return actions


def _dependent_action(kind: Kind, obj: Obj, by_uid: dict[str, tuple[Kind, Obj]],
                      has_dependents: bool) -> Action | None:
    """attemptToDeleteItem's decision for one live dependent."""
    ns = obj["metadata"].get("namespace") or None
    solid, dangling, waiting = [], [], []
    for r in obj["metadata"].get("ownerReferences") or []:
        okind = by_kind(str(r.get("apiVersion", "")), str(r.get("kind", "")))
        if okind is None or (okind.namespaced and ns is None):
            # Unknown kind, or a cluster-scoped object naming a namespaced owner (invalid):
            # unresolvable, which never makes the dependent collectable.
            solid.append(r)
            continue
        want = Ref(okind, ns if okind.namespaced else None, str(r.get("name", "")),
                   str(r.get("uid", "")))
        found = by_uid.get(want.uid)
        if found is None or found[0] != okind or _ref(*found) != want:
            dangling.append(want)
        elif _deleting(found[1]) and FOREGROUND_FINALIZER in _finalizers(found[1]):
            waiting.append(want)
        else:
            solid.append(r)
    me = _ref(kind, obj)
    if solid:
        if not dangling and not waiting:
            return None
        return RemoveOwnerRefs(me, tuple(o.uid for o in dangling + waiting), tuple(dangling))
    if waiting and has_dependents:
        return Delete(me, "Foreground", tuple(dangling))
    fins = _finalizers(obj)
    policy = "Orphan" if ORPHAN_FINALIZER in fins else \
        "Foreground" if FOREGROUND_FINALIZER in fins else "Background"
    return Delete(me, policy, tuple(dangling))


def deletable_kinds() -> list[Kind]:
    """Kinds the GC watches: all that can be listed, watched and deleted (as upstream)."""
    return [k for k in KINDS if {"list", "watch", "delete"} <= set(k.verbs)]


class GarbageCollector(Controller):
    """Runs `plan` over the informer caches on every relevant change (one coalescing key)."""

    name = "garbage-collector"

    def __init__(self, client: ApiClient, informers: SharedInformers) -> None:
        super().__init__()
        self.client = client
        self.informers = [informers.get(k) for k in deletable_kinds()]
        self._last_sweep = 0.0
        for inf in self.informers:
            inf.add_handler(self._on_change)

    def _on_change(self, ev_type: str, old: Obj | None, new: Obj | None) -> None:
        # Only changes that can matter: every deletion (the object may have been somebody's
        # owner), new objects with owners or GC finalizers, and updates that touch owner
        # references, finalizers or the deletion mark -- not the status churn of owned
        # objects, which would make every Pod update a sweep of the whole cluster.
        def gc_facts(o: Obj | None) -> tuple[Any, ...]:
            meta = (o or {}).get("metadata") or {}
            return (meta.get("ownerReferences"), meta.get("finalizers"),
                    meta.get("deletionTimestamp"))
        if ev_type == "DELETED":
            relevant = True
        elif ev_type == "ADDED":
            relevant = any(gc_facts(new)[:2])
        else:
            relevant = gc_facts(old) != gc_facts(new)
        if relevant:
            # A sweep reads every cache: run at most one per SWEEP_INTERVAL.
            wait = self._last_sweep + SWEEP_INTERVAL - time.monotonic()
            self.queue.add_after(SWEEP, wait) if wait > 0 else self.queue.add(SWEEP)

    async def sync(self, key: str) -> None:
        self._last_sweep = time.monotonic()
        actions = plan(o for inf in self.informers for o in inf.list())
        first_error: errors.StatusError | None = None
        for action in actions:
            try:
                await self._apply(action)
            except errors.StatusError as e:
                if e.code == 404:
                    continue  # already gone: the watch will bring the news
                if e.reason != "Conflict":
                    log.warning("garbage collector: %s: %s", action.target, e.message)
                first_error = first_error or e
        if first_error is not None:
            raise first_error  # retry the sweep with backoff

    async def _gone(self, owners: tuple[Ref, ...]) -> bool:
        """Whether every owner in `owners` is absent from the API (not found, or replaced by a
        same-named object with another uid)."""
        for o in owners:
            try:
                live = await self.client.get(o.kind, o.namespace, o.name)
            except errors.StatusError as e:
                if e.code == 404:
                    continue
                raise
            if live["metadata"].get("uid") == o.uid:
                return False  # our cache is behind; a later event brings it up to date
        return True

    async def _apply(self, action: Action) -> None:
        if isinstance(action, Delete):
            if await self._gone(action.absent):
                await self._delete(action.target, action.policy)
                log.info("deleted %s (propagation %s): no owner left", action.target,
                         action.policy)
        elif isinstance(action, RemoveOwnerRefs):
            if await self._gone(action.absent):
                await self._edit(action.target, owner_uids=set(action.owner_uids))
                log.info("removed references to deleted owners from %s", action.target)
        else:
            for dep in action.orphan:
                try:
                    await self._edit(dep, owner_uids={action.target.uid})
                except errors.StatusError as e:
                    if e.code != 404:
                        raise
            await self._edit(action.target, finalizer=action.finalizer)
            log.info("removed finalizer %s from %s (%d dependents orphaned)", action.finalizer,
                     action.target, len(action.orphan))

    async def _edit(self, target: Ref, *, owner_uids: set[str] | None = None,
                    finalizer: str | None = None, add: bool = False) -> None:
        """Read-modify-write of `target`'s ownerReferences or finalizers, guarded by the uid
        and resourceVersion just read (a concurrent change makes it a 409 and a retry)."""
        cur = await self.client.get(target.kind, target.namespace, target.name)
        meta = cur["metadata"]
        if meta.get("uid") != target.uid:
            return  # replaced by a same-named object: not ours to touch
        patch_meta: Obj = {"resourceVersion": meta.get("resourceVersion")}
        if owner_uids is not None:
            refs = meta.get("ownerReferences") or []
            kept = [r for r in refs if r.get("uid") not in owner_uids]
            if len(kept) == len(refs):
                return
            patch_meta["ownerReferences"] = kept or None
        if finalizer is not None:
            fins = list(meta.get("finalizers") or [])
            if (finalizer in fins) == add:
                return
            fins = fins + [finalizer] if add else [f for f in fins if f != finalizer]
            patch_meta["finalizers"] = fins or None
        await self.client.patch(target.kind, target.namespace, target.name,
                                {"metadata": patch_meta})

    async def _delete(self, target: Ref, policy: str) -> None:
        """Delete `target` with propagation `policy` (uid-guarded: never its successor)."""
        try:
            await self.client.delete(target.kind, target.namespace, target.name,
                                     uid=target.uid, propagation_policy=policy)
        except errors.StatusError as e:
            if e.reason != "Conflict":  # Conflict: the uid precondition; a successor lives
                raise
