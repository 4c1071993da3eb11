"""ApiClient over the in-process registry (for controllers inside `svcnet server`).

Every call goes through the same registry steps an HTTP request does (defaults,
validation, allocation hooks, optimistic concurrency), so a controller behaves the same
against this transport and against HttpClient; only authorization is skipped, as for
kube-controller-manager's privileged identity.
"""

from __future__ import annotations

import copy
from typing import Any, AsyncIterator

import orjson

from svcnet.api import decode, errors
from svcnet.api.kinds import Kind
from svcnet.api.selectors import parse_field_selector, parse_label_selector
from svcnet.apiserver.binding import bind
from svcnet.apiserver.registry import Registry
from svcnet.client.api import PATCH_TYPES, Obj, WatchEvent


class LocalClient:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def get(self, kind: Kind, namespace: str | None, name: str) -> Obj:
        return await self.registry.get(kind, namespace, name)

    async def list(self, kind: Kind, namespace: str | None = None, *,
                   label_selector: str = "", field_selector: str = "") -> tuple[list[Obj], str]:
        res = await self.registry.list(
            kind, namespace,
            labels=parse_label_selector(label_selector) if label_selector else None,
            fields=parse_field_selector(field_selector, kind.kind) if field_selector else ())
        return res.items, str(res.resource_version)

    async def watch(self, kind: Kind, namespace: str | None, resource_version: str, *,
                    label_selector: str = "", field_selector: str = "",
                    timeout_seconds: int | None = None) -> AsyncIterator[WatchEvent]:
        labels = parse_label_selector(label_selector) if label_selector else None
        fields = parse_field_selector(field_selector, kind.kind) if field_selector else ()
        start = int(resource_version or 0)
        if not start:
            res = await self.registry.list(kind, namespace, labels=labels, fields=fields)
            for obj in res.items:
                yield WatchEvent("ADDED", obj)
            start = res.resource_version
        async for ev in self.registry.watch(kind, namespace, start, labels=labels,
                                            fields=fields):
            yield WatchEvent(ev.type, ev.obj)

    async def create(self, kind: Kind, namespace: str | None, obj: Obj, *,
                     subresource: str = "", name: str = "") -> Obj:
        if subresource == "binding" and kind.kind == "Pod" and namespace:
            await bind(self.registry, namespace, name, copy.deepcopy(obj))
            return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "code": 201}
        if subresource:
            raise errors.method_not_allowed(f"cannot create {kind.resource}/{subresource}")
        return await self.registry.create(kind, namespace, copy.deepcopy(obj))

    async def update(self, kind: Kind, namespace: str | None, obj: Obj, *,
                     subresource: str = "") -> Obj:
        name = obj["metadata"]["name"]
        return await self.registry.update(kind, namespace, name, copy.deepcopy(obj),
                                          subresource=subresource)

    async def patch(self, kind: Kind, namespace: str | None, name: str, patch: Any, *,
                    patch_type: str = "merge", subresource: str = "") -> Obj:
        base = self.registry.patch_mutator(kind, orjson.dumps(patch), PATCH_TYPES[patch_type])

        def mutate(cur: Obj | None) -> Obj:
            out, _ = decode.decode(kind, base(cur), strict=False)
            return out
        out, _ = await self.registry.patch(kind, namespace, name, mutate, subresource=subresource)
        return out

    async def delete(self, kind: Kind, namespace: str | None, name: str, *,
                     grace_seconds: int | None = None, uid: str | None = None,
                     propagation_policy: str | None = None) -> None:
        await self.registry.delete(kind, namespace, name, grace_seconds=grace_seconds,
                                   preconditions={"uid": uid} if uid else None,
                                   propagation=propagation_policy)

    async def close(self) -> None:
        return None
