"""The registry of kinds the API serves: names, scope, discovery facts and storage keys.

Everything that routes, discovers, stores or prints an object looks its kind up here, so a
kind is added in one place. Facts from reference/apiserver.md §1.5.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
SUB_VERBS = ("get", "patch", "update")


@dataclass(frozen=True)
class Kind:
    """One served resource type.

    `group` is "" for the core group. `client_type` names the schema root (schema.json).
    `subresources` lists what `/<resource>/<name>/<sub>` serves; "scale" answers
    autoscaling/v1 Scale objects. `create_subresources` are POST-only actions on an object
    (pods/binding), kept apart because they have no object to get, put or patch;
    `get_subresources` are streams (pods/log; pods/exec, attach, portforward, which take
    GET for a WebSocket and POST for SPDY).
    """

    group: str
    version: str
    kind: str
    resource: str
    singular: str
    namespaced: bool
    client_type: str
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    status_fields: tuple[str, ...] = field(default=("status",))
    create_subresources: tuple[str, ...] = ()
    get_subresources: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def qualified_resource(self) -> str:
        """`services` or `deployments.apps`: the name Kubernetes' error messages use."""
        return f"{self.resource}.{self.group}" if self.group else self.resource

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    def key_prefix(self, namespace: str | None) -> str:
        """Store key prefix of a collection; `namespace` None means all namespaces."""
        base = f"/registry/{self.qualified_resource}/"
        if self.namespaced and namespace:
            return f"{base}{namespace}/"
        return base

    def key(self, namespace: str | None, name: str) -> str:
        if self.namespaced:
            return f"/registry/{self.qualified_resource}/{namespace}/{name}"
        return f"/registry/{self.qualified_resource}/{name}"

    def base_path(self, namespace: str | None) -> str:
        """URL path of the collection (used for selfLink-like messages and clients)."""
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            return f"{root}/namespaces/{namespace}/{self.resource}"
        return f"{root}/{self.resource}"


KINDS: tuple[Kind, ...] = (
    Kind("", "v1", "Namespace", "namespaces", "namespace", False, "V1Namespace",
         ("ns",), (), ("status", "finalize"),
         verbs=("create", "delete", "get", "list", "patch", "update", "watch")),
    Kind("", "v1", "Node", "nodes", "node", False, "V1Node", ("no",), (), ("status",)),
    Kind("", "v1", "Pod", "pods", "pod", True, "V1Pod", ("po",), ("all",), ("status",),
         create_subresources=("binding",),
         get_subresources=("log", "exec", "attach", "portforward")),
    Kind("", "v1", "Service", "services", "service", True, "V1Service", ("svc",), ("all",),
         ("status",)),
    Kind("", "v1", "Endpoints", "endpoints", "endpoints", True, "V1Endpoints", ("ep",),
         status_fields=()),
    Kind("", "v1", "ConfigMap", "configmaps", "configmap", True, "V1ConfigMap", ("cm",),
         status_fields=()),
    Kind("", "v1", "Secret", "secrets", "secret", True, "V1Secret", status_fields=()),
    Kind("", "v1", "Event", "events", "event", True, "CoreV1Event", ("ev",), status_fields=()),
    Kind("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", True,
         "V1EndpointSlice", status_fields=()),
    Kind("apps", "v1", "Deployment", "deployments", "deployment", True, "V1Deployment",
         ("deploy",), ("all",), ("status", "scale")),
    Kind("apps", "v1", "ReplicaSet", "replicasets", "replicaset", True, "V1ReplicaSet",
         ("rs",), ("all",), ("status", "scale")),
    Kind("networking.k8s.io", "v1", "Ingress", "ingresses", "ingress", True, "V1Ingress",
         ("ing",), (), ("status",)),
    Kind("networking.k8s.io", "v1", "IngressClass", "ingressclasses", "ingressclass", False,
         "V1IngressClass", status_fields=()),
    Kind("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", "networkpolicy", True,
         "V1NetworkPolicy", ("netpol",), status_fields=()),
)

_BY_RESOURCE: dict[tuple[str, str, str], Kind] = {
    (k.group, k.version, k.resource): k for k in KINDS
}
_BY_KIND: dict[tuple[str, str], Kind] = {(k.api_version, k.kind): k for k in KINDS}


def by_resource(group: str, version: str, resource: str) -> Kind | None:
    return _BY_RESOURCE.get((group, version, resource))


def kind_for(group: str, resource: str, version: str = "v1") -> Kind:
    """The Kind of a resource the code names by constant (it is always registered);
    `by_resource` is for routing, where an unknown resource is a real answer."""
    kind = _BY_RESOURCE.get((group, version, resource))
    if kind is None:
        raise KeyError(f"no served resource {resource!r} in group {group!r} {version}")
    return kind


def by_kind(api_version: str, kind: str) -> Kind | None:
    return _BY_KIND.get((api_version, kind))


def group_versions() -> list[tuple[str, str]]:
    """(group, version) pairs in discovery order, core first."""
    seen: list[tuple[str, str]] = []
    for k in KINDS:
        if (k.group, k.version) not in seen:
            seen.append((k.group, k.version))
    return seen
