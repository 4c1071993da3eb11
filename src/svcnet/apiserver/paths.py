"""Parsing Kubernetes REST paths into what they address.

`/api/v1/namespaces/default/services/web/status` ->
ResourcePath(kind=Service, namespace="default", name="web", subresource="status").
Pure, so the routing rules (including the namespace-as-object special case) are tested
without a server.
"""

from __future__ import annotations

from dataclasses import dataclass

from svcnet.api import errors
from svcnet.api.kinds import Kind, by_resource


@dataclass(frozen=True)
class ResourcePath:
    kind: Kind
    namespace: str | None  # None: cluster-scoped, or a list across all namespaces
    name: str | None
    subresource: str = ""


def parse_resource_path(path: str) -> ResourcePath | None:
    """Parse a resource path; None if `path` is not under /api/v1 or /apis/G/V (discovery and
    other endpoints are routed elsewhere). Unknown resources raise 404 NotFound."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if not rest:
        return None
    namespace: str | None = None
    # /namespaces/{ns}/{resource}/... addresses namespaced content; /namespaces and
    # /namespaces/{name}[/status|/finalize] address Namespace objects themselves.
    if rest[0] == "namespaces" and len(rest) >= 3 and not (
            len(rest) == 3 and rest[2] in ("status", "finalize")):
        namespace, rest = rest[1], rest[2:]
    resource = rest[0]
    kind = by_resource(group, version, resource)
    if kind is None:
        raise errors.StatusError(404, "NotFound", "the server could not find the requested "
                                 "resource", {})
    if namespace is not None and not kind.namespaced:
        raise errors.StatusError(404, "NotFound", "the server could not find the requested "
                                 "resource", {})
    name = rest[1] if len(rest) >= 2 else None
    sub = rest[2] if len(rest) >= 3 else ""
    if len(rest) > 3 or (sub and sub not in kind.subresources + kind.create_subresources
                                          + kind.get_subresources):
        raise errors.StatusError(404, "NotFound", "the server could not find the requested "
                                 "resource", {})
    return ResourcePath(kind, namespace, name, sub)
