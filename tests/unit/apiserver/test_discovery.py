"""Discovery documents carry what kubectl needs (reference/apiserver.md §1)."""

from svcnet.apiserver import discovery


def test_aggregated_core_has_services_with_short_names_and_status() -> None:
    doc = discovery.aggregated(True)
    assert doc["kind"] == "APIGroupDiscoveryList" and len(doc["items"]) == 1
    core = doc["items"][0]
    assert core["metadata"] == {}
    res = {r["resource"]: r for r in core["versions"][0]["resources"]}
    svc = res["services"]
    assert svc["shortNames"] == ["svc"] and svc["categories"] == ["all"]
    assert svc["responseKind"] == {"group": "", "version": "v1", "kind": "Service"}
    assert [s["subresource"] for s in svc["subresources"]] == ["status"]
    assert res["namespaces"]["scope"] == "Cluster"
    assert "deletecollection" not in res["namespaces"]["verbs"]


def test_aggregated_apps_scale_is_autoscaling() -> None:
    doc = discovery.aggregated(False)
    groups = {i["metadata"]["name"]: i for i in doc["items"]}
    assert set(groups) == {"discovery.k8s.io", "apps", "networking.k8s.io"}
    deploy = next(r for r in groups["apps"]["versions"][0]["resources"]
                  if r["resource"] == "deployments")
    scale = next(s for s in deploy["subresources"] if s["subresource"] == "scale")
    assert scale["responseKind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}


def test_legacy_resource_list_has_scale_entry() -> None:
    doc = discovery.resource_list("apps", "v1")
    assert doc is not None
    scale = next(r for r in doc["resources"] if r["name"] == "deployments/scale")
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")
    assert discovery.resource_list("apps", "v2") is None


def test_version_is_semver() -> None:
    import re
    v = discovery.version_info()["gitVersion"]
    assert re.fullmatch(r"v\d+\.\d+\.\d+(\+[0-9A-Za-z.-]+)?", v)


def test_pods_binding_is_create_only() -> None:
    doc = discovery.resource_list("", "v1")
    assert doc is not None
    binding = next(r for r in doc["resources"] if r["name"] == "pods/binding")
    assert binding["verbs"] == ["create"] and binding["kind"] == "Binding"
    pods = next(r for r in discovery.aggregated(True)["items"][0]["versions"][0]["resources"]
                if r["resource"] == "pods")
    assert {s["subresource"]: s["verbs"] for s in pods["subresources"]}["binding"] == ["create"]
