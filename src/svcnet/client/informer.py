"""Informers: a local cache of one kind kept current by list + watch.

`run()` lists, replaces the cache (telling handlers what changed), marks itself synced,
then watches from the list's resourceVersion. A watch that ends is resumed from the last
seen resourceVersion; a 410 (history compacted) or any error leads to a fresh list, whose
differences against the cache are reported as ordinary events, so handlers never miss a
change and never see a duplicate object. Consumers must not act before `synced` is set
(DESIGN.md: never act on partial state).
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from typing import Callable, Hashable, Iterable

from svcnet.api import errors
from svcnet.api.kinds import Kind
from svcnet.client.api import ApiClient, Obj

log = logging.getLogger("svcnet.informer")

# (type, old, new): ADDED has old None, DELETED has new None.
Handler = Callable[[str, Obj | None, Obj | None], None]
# An index function maps an object to the index values it is found under.
IndexFunc = Callable[[Obj], Iterable[Hashable]]
RETRY_DELAY = 1.0


def object_key(obj: Obj) -> str:
    meta = obj["metadata"]
    ns = meta.get("namespace")
    return f"{ns}/{meta['name']}" if ns else str(meta["name"])


class Informer:
    def __init__(self, client: ApiClient, kind: Kind, namespace: str | None = None, *,
                 label_selector: str = "", field_selector: str = "") -> None:
        self.client = client
        self.kind = kind
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.synced = asyncio.Event()
        self._items: dict[str, Obj] = {}
        self._by_ns: dict[str, dict[str, Obj]] = {}
        self._handlers: list[Handler] = []
        self._index_fns: dict[str, IndexFunc] = {}
        # index name -> value -> object keys (client-go's Indexers, for O(matches) lookups)
        self._indices: dict[str, dict[Hashable, set[str]]] = {}
        self.resource_version = ""

    # --- reading the cache ---------------------------------------------------------------

    def get(self, namespace: str | None, name: str) -> Obj | None:
        return self._items.get(f"{namespace}/{name}" if namespace else name)

    def list(self, namespace: str | None = None) -> list[Obj]:
        if namespace is None:
            return list(self._items.values())
        return list(self._by_ns.get(namespace, {}).values())

    def add_handler(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def add_index(self, name: str, fn: IndexFunc) -> None:
        """Maintain index `name` (idempotent: shared informers get it from several
        controllers). Objects already cached are indexed at once."""
        if name in self._index_fns:
            return
        self._index_fns[name] = fn
        index: dict[Hashable, set[str]] = {}
        for key, obj in self._items.items():
            for value in fn(obj):
                index.setdefault(value, set()).add(key)
        self._indices[name] = index

    def by_index(self, name: str, value: Hashable) -> builtins.list[Obj]:
        """Cached objects that index `name` files under `value`."""
        keys = self._indices[name].get(value, ())
        return [self._items[k] for k in keys]

    def index_size(self, name: str, value: Hashable) -> int:
        return len(self._indices[name].get(value, ()))

    def _unindex(self, key: str, obj: Obj) -> None:
        for name, fn in self._index_fns.items():
            index = self._indices[name]
            for value in fn(obj):
                bucket = index.get(value)
                if bucket is not None:
                    bucket.discard(key)
                    if not bucket:
                        del index[value]

    def _reindex(self, key: str, obj: Obj) -> None:
        for name, fn in self._index_fns.items():
            index = self._indices[name]
            for value in fn(obj):
                index.setdefault(value, set()).add(key)

    # --- keeping it current --------------------------------------------------------------

    def _emit(self, ev_type: str, old: Obj | None, new: Obj | None) -> None:
        for h in self._handlers:
            try:
                h(ev_type, old, new)
            except Exception:
                log.exception("%s informer handler failed", self.kind.kind)

    def _put(self, obj: Obj) -> Obj | None:
        key = object_key(obj)
        old = self._items.get(key)
        if old is not None and self._index_fns:
            self._unindex(key, old)
        self._items[key] = obj
        ns = obj["metadata"].get("namespace") or ""
        self._by_ns.setdefault(ns, {})[obj["metadata"]["name"]] = obj
        if self._index_fns:
            self._reindex(key, obj)
        return old

    def _remove(self, obj: Obj) -> Obj | None:
        key = object_key(obj)
        old = self._items.pop(key, None)
        if old is not None and self._index_fns:
            self._unindex(key, old)
        ns = obj["metadata"].get("namespace") or ""
        self._by_ns.get(ns, {}).pop(obj["metadata"]["name"], None)
        return old

    def _replace(self, items: builtins.list[Obj]) -> None:
        fresh = {object_key(o): o for o in items}
        for key in [k for k in self._items if k not in fresh]:
            gone = self._items[key]
            self._remove(gone)
            self._emit("DELETED", gone, None)
        for obj in items:
            old = self._put(obj)
            if old is None:
                self._emit("ADDED", None, obj)
            elif old["metadata"].get("resourceVersion") != obj["metadata"].get("resourceVersion"):
                self._emit("MODIFIED", old, obj)

    async def _list(self) -> None:
        items, rv = await self.client.list(self.kind, self.namespace,
                                           label_selector=self.label_selector,
                                           field_selector=self.field_selector)
        self._replace(items)
        self.resource_version = rv
        self.synced.set()

    async def _watch(self) -> None:
        async for ev in self.client.watch(self.kind, self.namespace, self.resource_version,
                                          label_selector=self.label_selector,
                                          field_selector=self.field_selector,
                                          timeout_seconds=300):
            rv = ev.obj.get("metadata", {}).get("resourceVersion")
            if ev.type == "BOOKMARK":
                if rv:
                    self.resource_version = rv
                continue
            if ev.type == "DELETED":
                old = self._remove(ev.obj)
                self._emit("DELETED", old or ev.obj, None)
            else:
                old = self._put(ev.obj)
                self._emit("ADDED" if old is None else "MODIFIED", old, ev.obj)
            if rv:
                self.resource_version = rv

    async def run(self) -> None:
        """List then watch forever (cancel the task to stop). An informer given a
        resource_version before it runs resumes by watching from it (and lists on 410)."""
        need_list = not self.resource_version
        while True:
            try:
                if need_list:
                    await self._list()
                    need_list = False
                await self._watch()  # returns when the server ends the stream: resume
            except asyncio.CancelledError:
                raise
            except errors.StatusError as e:
                if e.code != 410:
                    log.warning("%s watch failed: %s", self.kind.kind, e.message)
                    await asyncio.sleep(RETRY_DELAY)
                need_list = True
            except Exception as e:  # connection loss, server restart
                log.warning("%s informer: %s; relisting", self.kind.kind, e)
                await asyncio.sleep(RETRY_DELAY)
                need_list = True
