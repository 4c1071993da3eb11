"""The API client contract every component programs against.

Controllers, the proxy, DNS and node agents speak only the Kubernetes API (DESIGN.md §1).
`ApiClient` is that API as Python calls; two transports implement it: `HttpClient`
(http.py: HTTPS to any Kubernetes-compatible server, used by agents and tools) and
`LocalClient` (local.py: the same operations on the in-process registry, used by the
controllers inside `svcnet server`, which saves a loopback HTTPS hop per write but runs
the same defaulting, validation and admission). Errors are `api.errors.StatusError`
whichever transport raised them, so callers test `e.reason`/`e.code` the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, AsyncIterator, Protocol

from svcnet.api.kinds import Kind

Obj = dict[str, Any]


@dataclass(frozen=True)
class WatchEvent:
    """One watch event: type ADDED/MODIFIED/DELETED/BOOKMARK and the object."""

    type: str
    obj: Obj


class ApiClient(Protocol):
    async def get(self, kind: Kind, namespace: str | None, name: str) -> Obj: ...

    async def list(self, kind: Kind, namespace: str | None = None, *,
                   label_selector: str = "", field_selector: str = "") -> tuple[list[Obj], str]:
        """(items, list resourceVersion)."""
        ...

    def watch(self, kind: Kind, namespace: str | None, resource_version: str, *,
              label_selector: str = "", field_selector: str = "",
              timeout_seconds: int | None = None) -> AsyncIterator[WatchEvent]:
        """Changes after `resource_version`. A 410 (history compacted) is raised as a
        StatusError with code 410, whether it came as a status or as an ERROR event."""
        ...

    async def create(self, kind: Kind, namespace: str | None, obj: Obj, *,
                     subresource: str = "", name: str = "") -> Obj:
        """POST to the collection, or with `subresource` to `<name>/<subresource>`
        (e.g. pods/binding). The answer is whatever the server returns (a Status for
        binding)."""
        ...

    async def update(self, kind: Kind, namespace: str | None, obj: Obj, *,
                     subresource: str = "") -> Obj:
        """PUT; obj's metadata.resourceVersion (if set) guards it (409 Conflict)."""
        ...

    async def patch(self, kind: Kind, namespace: str | None, name: str, patch: Any, *,
                    patch_type: str = "merge", subresource: str = "") -> Obj:
        """patch_type: "merge", "strategic" or "json"."""
        ...

    async def delete(self, kind: Kind, namespace: str | None, name: str, *,
                     grace_seconds: int | None = None, uid: str | None = None,
                     propagation_policy: str | None = None) -> None:
        """Delete; `uid` makes it a precondition (409 if the object was replaced);
        `propagation_policy` is DeleteOptions.propagationPolicy (Orphan, Background,
        Foreground)."""
        ...

    async def close(self) -> None: ...


PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
}
