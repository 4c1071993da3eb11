"""Generic REST semantics over the Store: what create/get/list/update/patch/delete/watch mean.

Every kind goes through the same steps (decode -> defaults -> server-owned metadata ->
validation -> hooks -> store), so behaviour users rely on (409 on a stale resourceVersion,
404/409 messages, graceful deletion with finalizers, label/field selectors on lists and
watches) is written once. Kind-specific behaviour enters through `api.defaults`,
`api.validation` and `WriteHook`s (allocators of cluster IPs and node ports).

Stored values are JSON without metadata.resourceVersion: the resourceVersion of an object
is the store revision of its last write, set on the way out.
"""

from __future__ import annotations

import base64
import builtins
import copy
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, AsyncIterator, Callable, Protocol

import orjson

from svcnet.api import errors, patch as patching, schema
from svcnet.api.defaults import apply_defaults
from svcnet.api.kinds import Kind, kind_for
from svcnet.api.selectors import FieldSelector, Selector, field_matches, matches
from svcnet.api.validation import validate
from svcnet.apiserver import objectmeta
from svcnet.store.interface import (KV, Compacted, KeyExists, KeyNotFound, RevisionMismatch,
                                    Store)

Obj = dict[str, Any]
NAMESPACES = kind_for("", "namespaces")
_PATCH_RETRIES = 8


class WriteHook(Protocol):
    """Kind-specific side effects of writes (e.g. IP/port allocation).

    `before_create`/`before_update` run after validation, may change the object and may
    raise StatusError; they return an undo callable run if the write then fails (or is a
    dry run). `after_update` runs once an update is stored (e.g. to release what the old
    object held), `after_delete` once an object is gone from the store.
    """

    def before_create(self, kind: Kind, obj: Obj) -> Callable[[], None] | None: ...

    def before_update(self, kind: Kind, new: Obj, old: Obj) -> Callable[[], None] | None: ...

    def after_update(self, kind: Kind, new: Obj, old: Obj) -> None: ...

    def after_delete(self, kind: Kind, obj: Obj) -> None: ...


@dataclass(frozen=True)
class ListResult:
    items: list[Obj]
    resource_version: int
    continue_token: str
    remaining: int | None = None


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED | MODIFIED | DELETED
    obj: Obj
    revision: int


def decode_kv(kv: KV) -> Obj:
    obj: Obj = orjson.loads(kv.value)
    obj["metadata"]["resourceVersion"] = str(kv.mod_revision)
    return obj


def encode_for_store(obj: Obj) -> bytes:
    meta = obj.get("metadata") or {}
    rv = meta.pop("resourceVersion", None)
    try:
        return orjson.dumps(obj)
    finally:
        if rv is not None:
            meta["resourceVersion"] = rv


def _parse_rv(value: str | None, what: str = "resourceVersion") -> int:
    if value in (None, ""):
        return 0
    try:
        rv = int(value)
        if rv < 0:
            raise ValueError
        return rv
    except ValueError:
        raise errors.bad_request(f'invalid {what}: "{value}"') from None


# Finalizers through which the garbage collector carries out DeleteOptions.propagationPolicy.
ORPHAN_FINALIZER = "orphan"
FOREGROUND_FINALIZER = "foregroundDeletion"
PROPAGATION_FINALIZERS = {"Orphan": ORPHAN_FINALIZER, "Foreground": FOREGROUND_FINALIZER}


def gc_finalizers(finalizers: list[str], propagation: str | None) -> list[str]:
    """The finalizers an object gets when deleted with `propagation`, as kube-apiserver's
    deletionFinalizersForGarbageCollection decides: an explicit policy replaces whichever of
    `orphan`/`foregroundDeletion` the object had (Background removes both, so the object can
    go now and the GC deletes its dependents afterwards); no policy keeps the first of them
    the object already carries (an earlier Orphan/Foreground delete stays in force); the
    default for every kind served here is Background. Other finalizers are kept, in order.
    An unchanged set returns `finalizers` itself."""
    if propagation is None:
        first = next((f for f in finalizers if f in PROPAGATION_FINALIZERS.values()), None)
        propagation = {ORPHAN_FINALIZER: "Orphan", FOREGROUND_FINALIZER: "Foreground"}.get(
            first or "", "Background")
    out = [f for f in finalizers if f not in PROPAGATION_FINALIZERS.values()]
    if propagation in PROPAGATION_FINALIZERS:
        out.append(PROPAGATION_FINALIZERS[propagation])
    return finalizers if set(out) == set(finalizers) else out


def encode_continue(rv: int, last_key: str) -> str:
    raw = orjson.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": last_key})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = orjson.loads(raw)
        return int(data["rv"]), str(data["start"])
    except Exception:
        raise errors.bad_request("continue key is not valid: incorrect encoded start "
                                 "resourceVersion (version meta.k8s.io/v1)") from None


class Registry:
    """REST operations for all kinds over one Store."""

    def __init__(self, store: Store, *, now: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self.now = now or (lambda: datetime.now(timezone.utc))
        self.hooks: list[WriteHook] = []

    # --- reads ---------------------------------------------------------------------------

    async def get(self, kind: Kind, namespace: str | None, name: str) -> Obj:
        kv = await self.store.get(kind.key(namespace, name))
        if kv is None:
            raise errors.not_found(kind.resource, kind.group, name)
        return decode_kv(kv)

    async def list(self, kind: Kind, namespace: str | None, *,
                   labels: Selector | None = None, fields: FieldSelector = (),
                   limit: int = 0, continue_token: str = "") -> ListResult:
        """Objects of `kind` (in `namespace`, or all), filtered, paged by key order."""
        prefix = kind.key_prefix(namespace)
        start, list_rv = "", 0
        if continue_token:
            list_rv, last = decode_continue(continue_token)
            if list_rv < await self.store.compacted_revision():
                raise errors.gone("The provided continue parameter is too old to display a "
                                  "consistent list result. You can start a new list without "
                                  "the continue parameter.")
            start = prefix + last
        items: list[Obj] = []
        last_key = ""
        more = False
        batch = max(limit, 500) if limit else 0
        while True:
            kvs, rev = await self.store.list(prefix, start_after=start, limit=batch)
            list_rv = list_rv or rev
            for i, kv in enumerate(kvs):
                obj = decode_kv(kv)
                if labels is not None and not matches(labels, obj["metadata"].get("labels")):
                    continue
                if fields and not field_matches(fields, obj):
                    continue
                if limit and len(items) == limit:
                    more = True
                    break
                items.append(obj)
                last_key = kv.key
            if more or not batch or len(kvs) < batch:
                break
            start = kvs[-1].key
        token = encode_continue(list_rv, last_key[len(prefix):]) if more else ""
        return ListResult(items, list_rv, token)

    # --- writes --------------------------------------------------------------------------

    async def _check_namespace(self, kind: Kind, namespace: str | None, name: str) -> None:
        if not kind.namespaced or namespace is None:
            return
        kv = await self.store.get(NAMESPACES.key(None, namespace))
        if kv is None:
            raise errors.not_found("namespaces", "", namespace)
        ns = orjson.loads(kv.value)
        if ns["metadata"].get("deletionTimestamp"):
            raise errors.StatusError(
                403, "Forbidden",
                f"{kind.resource} \"{name}\" is forbidden: unable to create new "
                f"content in namespace {namespace} because it is being terminated",
                {"name": name, "kind": kind.resource, "causes": [{
                    "reason": "NamespaceTerminating", "field": "metadata.namespace",
                    "message": f"namespace {namespace} is being terminated"}]})

    def _admit(self, kind: Kind, obj: Obj, old: Obj | None
               ) -> builtins.list[Callable[[], None]]:
        """Validate then run hooks; returns undo callables for a failed store write."""
        errs = validate(kind, obj, old)
        name = (obj.get("metadata") or {}).get("name", "")
        if errs:
            raise errors.invalid_object(kind.kind, kind.group, name, errs)
        undos: list[Callable[[], None]] = []
        try:
            for hook in self.hooks:
                undo = (hook.before_create(kind, obj) if old is None
                        else hook.before_update(kind, obj, old))
                if undo is not None:
                    undos.append(undo)
        except BaseException:
            for undo in reversed(undos):
                undo()
            raise
        return undos

    async def create(self, kind: Kind, namespace: str | None, obj: Obj, *,
                     dry_run: bool = False) -> Obj:
        """Create `obj` (already decoded); the namespace must exist and not be terminating."""
        meta = obj.setdefault("metadata", {})
        if kind.namespaced:
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise errors.bad_request("the namespace of the provided object does not match "
                                         "the namespace sent on the request")
            meta["namespace"] = namespace or meta.get("namespace")
        obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
        apply_defaults(kind.kind, obj)
        objectmeta.prepare_create(kind, obj, self.now())
        await self._check_namespace(kind, meta.get("namespace"), meta.get("name", ""))
        undos = self._admit(kind, obj, None)
        if dry_run:
            for undo in reversed(undos):
                undo()
            return obj
        try:
            kv = await self.store.create(kind.key(meta.get("namespace"), meta["name"]),
                                         encode_for_store(obj))
        except KeyExists:
            for undo in reversed(undos):
                undo()
            raise errors.already_exists(kind.resource, kind.group, meta["name"]) from None
        except BaseException:
            for undo in reversed(undos):
                undo()
            raise
        meta["resourceVersion"] = str(kv.mod_revision)
        return obj

    async def update(self, kind: Kind, namespace: str | None, name: str, obj: Obj, *,
                     subresource: str = "", dry_run: bool = False,
                     create_if_missing: bool = False) -> Obj:
        """PUT semantics: full replacement, guarded by metadata.resourceVersion if given."""
        meta = obj.setdefault("metadata", {})
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request("the name of the object "
                                     f"({meta['name']}) does not match the name on the URL "
                                     f"({name})")
        meta["name"] = name
        if kind.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise errors.bad_request("the namespace of the provided object does not match "
                                         "the namespace sent on the request")
            meta["namespace"] = namespace
        want_rv = _parse_rv(meta.get("resourceVersion"))
        key = kind.key(namespace, name)
        kv = await self.store.get(key)
        if kv is None:
            if create_if_missing and not subresource:
                return await self.create(kind, namespace, obj, dry_run=dry_run)
            raise errors.not_found(kind.resource, kind.group, name)
        if want_rv and want_rv != kv.mod_revision:
            raise errors.conflict(kind.resource, kind.group, name)
        return await self._write_update(kind, kv, obj, subresource, dry_run)

    async def _write_update(self, kind: Kind, kv: KV, obj: Obj, subresource: str,
                            dry_run: bool) -> Obj:
        old = decode_kv(kv)
        obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
        apply_defaults(kind.kind, obj)
        objectmeta.prepare_update(kind, obj, old, subresource)
        name = old["metadata"]["name"]
        undos = self._admit(kind, obj, old)
        if dry_run:
            for undo in reversed(undos):
                undo()
            return obj
        meta = obj["metadata"]
        try:
            if meta.get("deletionTimestamp") and not self._held(kind, obj):
                dead = await self.store.delete(kv.key, kv.mod_revision)
                for hook in self.hooks:
                    hook.after_update(kind, obj, old)
                self._after_delete(kind, obj)
                meta["resourceVersion"] = str(dead.mod_revision)
                return obj
            new_kv = await self.store.update(kv.key, encode_for_store(obj), kv.mod_revision)
        except RevisionMismatch:
            for undo in reversed(undos):
                undo()
            raise errors.conflict(kind.resource, kind.group, name) from None
        except KeyNotFound:
            for undo in reversed(undos):
                undo()
            raise errors.not_found(kind.resource, kind.group, name) from None
        except BaseException:
            for undo in reversed(undos):
                undo()
            raise
        for hook in self.hooks:
            hook.after_update(kind, obj, old)
        meta["resourceVersion"] = str(new_kv.mod_revision)
        return obj

    async def patch(self, kind: Kind, namespace: str | None, name: str,
                    mutate: Callable[[Obj | None], Obj], *, subresource: str = "",
                    dry_run: bool = False, create_if_missing: bool = False) -> tuple[Obj, bool]:
        """Read-modify-write with server-side retries on races (as kube-apiserver retries
        patches). `mutate(current)` returns the new object (current is None only when
        `create_if_missing`). Returns (object, created)."""
        key = kind.key(namespace, name)
        for _ in range(_PATCH_RETRIES):
            kv = await self.store.get(key)
            if kv is None:
                if not create_if_missing or subresource:
                    raise errors.not_found(kind.resource, kind.group, name)
                new = mutate(None)
                new.setdefault("metadata", {})["name"] = name
                try:
                    return await self.create(kind, namespace, new, dry_run=dry_run), True
                except errors.StatusError as e:
                    if e.reason == "AlreadyExists":
                        continue
                    raise
            current = decode_kv(kv)
            new = mutate(copy.deepcopy(current))
            want_rv = _parse_rv((new.get("metadata") or {}).get("resourceVersion"))
            if want_rv and want_rv != kv.mod_revision:
                raise errors.conflict(kind.resource, kind.group, name)
            new.setdefault("metadata", {})["name"] = name
            if kind.namespaced:
                new["metadata"]["namespace"] = namespace
            try:
                return await self._write_update(kind, kv, new, subresource, dry_run), False
            except errors.StatusError as e:
                if e.reason == "Conflict" and not want_rv:
                    continue
                raise
        raise errors.conflict(kind.resource, kind.group, name)

    def patch_mutator(self, kind: Kind, body: bytes, content_type: str) -> Callable[[Obj | None], Obj]:
        """A `mutate` function applying an HTTP PATCH body of `content_type`."""
        root = schema.root(kind.client_type)

        def mutate(current: Obj | None) -> Obj:
            return patching.apply_patch(current or {}, body, content_type, root)
        return mutate

    # --- delete --------------------------------------------------------------------------

    @staticmethod
    def _held(kind: Kind, obj: Obj) -> bool:
        """Whether an object marked for deletion must stay: it has finalizers, it is a
        Namespace whose content is not yet removed, or a bound Pod whose node has not yet
        stopped its containers."""
        if obj["metadata"].get("finalizers"):
            return True
        if kind.kind == "Namespace":
            return bool((obj.get("spec") or {}).get("finalizers"))
        return kind.kind == "Pod" and bool((obj.get("spec") or {}).get("nodeName")) and \
            (obj["metadata"].get("deletionGracePeriodSeconds") or 0) > 0

    def _after_delete(self, kind: Kind, obj: Obj) -> None:
        for hook in self.hooks:
            hook.after_delete(kind, obj)

    async def delete(self, kind: Kind, namespace: str | None, name: str, *,
                     grace_seconds: int | None = None, preconditions: Obj | None = None,
                     dry_run: bool = False, propagation: str | None = None) -> tuple[Obj, bool]:
        """Delete or start graceful deletion. Returns (object, gone_now).

        `propagation` is DeleteOptions.propagationPolicy: Orphan and Foreground give the
        object the `orphan`/`foregroundDeletion` finalizer, so it stays (with a
        deletionTimestamp) until the garbage collector has orphaned or deleted its
        dependents; Background (the default) deletes it now (see `gc_finalizers`)."""
        key = kind.key(namespace, name)
        for _ in range(_PATCH_RETRIES):
            kv = await self.store.get(key)
            if kv is None:
                raise errors.not_found(kind.resource, kind.group, name)
            obj = decode_kv(kv)
            meta = obj["metadata"]
            pre = preconditions or {}
            if pre.get("uid") and pre["uid"] != meta.get("uid"):
                raise errors.conflict(kind.resource, kind.group, name,
                                      f"Precondition failed: UID in precondition: {pre['uid']}, "
                                      f"UID in object meta: {meta.get('uid')}")
            if pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]:
                raise errors.conflict(kind.resource, kind.group, name,
                                      "Precondition failed: ResourceVersion in precondition: "
                                      f"{pre['resourceVersion']}, ResourceVersion in object "
                                      f"meta: {meta['resourceVersion']}")
            grace = grace_seconds
            if kind.kind == "Pod" and grace is None:
                grace = int((obj.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
            finalizers = list(meta.get("finalizers") or [])
            wanted = gc_finalizers(finalizers, propagation)
            if wanted is not finalizers:
                meta["finalizers"] = wanted
                if not wanted:
                    del meta["finalizers"]
            graceful = bool(wanted) or kind.kind == "Namespace" or (
                kind.kind == "Pod" and (obj.get("spec") or {}).get("nodeName") and (grace or 0) > 0)
            if dry_run:
                return obj, not graceful
            try:
                if graceful:
                    if meta.get("deletionTimestamp") and grace_seconds is None and \
                            wanted is finalizers:
                        return obj, False
                    objectmeta.mark_deleting(obj, self.now(), grace or 0)
                    new_kv = await self.store.update(key, encode_for_store(obj), kv.mod_revision)
                    meta["resourceVersion"] = str(new_kv.mod_revision)
                    return obj, False
                dead = await self.store.delete(key, kv.mod_revision)
            except (RevisionMismatch, KeyNotFound):
                continue
            self._after_delete(kind, obj)
            meta["resourceVersion"] = str(dead.mod_revision)
            return obj, True
        raise errors.conflict(kind.resource, kind.group, name)

    # --- watch ---------------------------------------------------------------------------

    async def watch(self, kind: Kind, namespace: str | None, from_revision: int, *,
                    labels: Selector | None = None,
                    fields: FieldSelector = ()) -> AsyncIterator[WatchEvent]:
        """Changes after `from_revision`. With selectors, an object leaving the selection is
        reported DELETED and one entering it ADDED, as the apiserver's watch cache does."""
        prefix = kind.key_prefix(namespace)
        filtered = labels is not None or bool(fields)

        def selected(obj: Obj | None) -> bool:
            if obj is None:
                return False
            if labels is not None and not matches(labels, obj["metadata"].get("labels")):
                return False
            return not fields or field_matches(fields, obj)

        stream = self.store.watch(prefix, from_revision)
        try:
            async for ev in stream:
                obj = decode_kv(ev.kv)
                if not filtered:
                    yield WatchEvent(ev.type, obj, ev.kv.mod_revision)
                    continue
                prev = decode_kv(ev.prev) if ev.prev is not None else None
                now_in, was_in = selected(obj), selected(prev)
                if ev.type == "DELETED":
                    if now_in:
                        yield WatchEvent("DELETED", obj, ev.kv.mod_revision)
                elif now_in and was_in:
                    yield WatchEvent("MODIFIED", obj, ev.kv.mod_revision)
                elif now_in:
                    yield WatchEvent("ADDED", obj, ev.kv.mod_revision)
                elif was_in:
                    yield WatchEvent("DELETED", obj, ev.kv.mod_revision)
        except Compacted as e:
            raise errors.gone(f"too old resource version: {from_revision} "
                              f"({e.compacted})") from None
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

