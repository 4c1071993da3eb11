"""The reply-template cache: two bounded LRUs and an index from dependencies to entries.

Keys are `(lower-cased qname wire bytes, qtype, EDNS variant)`. Positive and negative
templates live in separate LRUs so that the stream of search-path misses every pod
makes (`mysql.default.svc.cluster.local.svc.cluster.local`, ... five names per lookup
with ndots:5) can only evict other negative answers, never the hot positive ones. Both
are bounded: positive names are unbounded too (`pods insecure` answers any IP-shaped
name).

Invalidation is exact rather than global: each template records the dependency keys it
was built from (`index.DepKey`), and `invalidate` drops only the templates built from
the keys an event touched. A Service update therefore costs O(templates of that
Service), and the rest of the cache stays warm.

Not thread-safe: the server edge and the informer handlers share one event loop.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Iterable

from svcnet.dns.index import DepKey
from svcnet.dns.template import Template

CacheKey = tuple[bytes, int, int]


class TemplateCache:
    """LRU caches of positive and negative templates, invalidated by dependency key."""

    def __init__(self, *, positive_size: int, negative_size: int) -> None:
        self.positive_size = positive_size
        self.negative_size = negative_size
        self._positive: OrderedDict[CacheKey, Template] = OrderedDict()
        self._negative: OrderedDict[CacheKey, Template] = OrderedDict()
        self._by_dep: dict[DepKey, set[CacheKey]] = {}

    def __len__(self) -> int:
        return len(self._positive) + len(self._negative)

    def get(self, key: CacheKey) -> Template | None:
        """The cached template for `key`, marked as recently used; None on a miss."""
        template = self._positive.get(key)
        if template is not None:
            self._positive.move_to_end(key)
            return template
        template = self._negative.get(key)
        if template is not None:
            self._negative.move_to_end(key)
        return template

    def put(self, key: CacheKey, template: Template) -> None:
        """Cache `template`, evicting the least recently used one of its kind if full."""
        self._remove(key)
        lru, size = ((self._negative, self.negative_size) if template.negative
                     else (self._positive, self.positive_size))
        if size <= 0:
            return
        lru[key] = template
        for dep in template.deps:
            self._by_dep.setdefault(dep, set()).add(key)
        while len(lru) > size:
            self._remove(next(iter(lru)))

    def invalidate(self, deps: Iterable[DepKey]) -> int:
        """Drop every template built from any of `deps`; return how many."""
        dropped = 0
        for dep in deps:
            for key in self._by_dep.pop(dep, ()):
                dropped += self._remove(key)
        return dropped

    def clear(self) -> None:
        self._positive.clear()
        self._negative.clear()
        self._by_dep.clear()

    def sizes(self) -> tuple[int, int]:
        """(positive, negative) entry counts."""
        return len(self._positive), len(self._negative)

    def _remove(self, key: CacheKey) -> int:
        template = self._positive.pop(key, None) or self._negative.pop(key, None)
        if template is None:
            return 0
        for dep in template.deps:
            keys = self._by_dep.get(dep)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_dep[dep]
        return 1
