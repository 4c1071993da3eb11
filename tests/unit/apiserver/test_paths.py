"""Routing of REST paths to kinds, namespaces, names and subresources."""

import pytest

from svcnet.api import errors
from svcnet.apiserver.paths import parse_resource_path


@pytest.mark.parametrize("path,kind,ns,name,sub", [
    ("/api/v1/services", "Service", None, None, ""),
    ("/api/v1/namespaces/default/services", "Service", "default", None, ""),
    ("/api/v1/namespaces/default/services/web", "Service", "default", "web", ""),
    ("/api/v1/namespaces/default/services/web/status", "Service", "default", "web", "status"),
    ("/api/v1/namespaces", "Namespace", None, None, ""),
    ("/api/v1/namespaces/demo", "Namespace", None, "demo", ""),
    ("/api/v1/namespaces/demo/finalize", "Namespace", None, "demo", "finalize"),
    ("/api/v1/nodes/n1/status", "Node", None, "n1", "status"),
    ("/apis/apps/v1/namespaces/x/deployments/web/scale", "Deployment", "x", "web", "scale"),
    ("/apis/discovery.k8s.io/v1/endpointslices", "EndpointSlice", None, None, ""),
])
def test_parse(path: str, kind: str, ns: str | None, name: str | None, sub: str) -> None:
    rp = parse_resource_path(path)
    assert rp is not None
    assert (rp.kind.kind, rp.namespace, rp.name, rp.subresource) == (kind, ns, name, sub)


@pytest.mark.parametrize("path", ["/api", "/apis", "/api/v1", "/apis/apps/v1", "/version"])
def test_not_resource_paths(path: str) -> None:
    assert parse_resource_path(path) is None


@pytest.mark.parametrize("path", ["/api/v1/widgets", "/api/v1/namespaces/x/nodes",
                                  "/api/v1/namespaces/x/services/web/scale",
                                  "/apis/apps/v2/deployments", "/api/v1/services/a/b/c"])
def test_unknown_is_404(path: str) -> None:
    with pytest.raises(errors.StatusError) as e:
        parse_resource_path(path)
    assert e.value.code == 404


def test_kind_for_names_registered_kinds_and_refuses_others() -> None:
    from svcnet.api.kinds import by_resource, kind_for
    assert kind_for("apps", "deployments") is by_resource("apps", "v1", "deployments")
    with pytest.raises(KeyError):
        kind_for("", "widgets")
