"""The OpenAPI v3 documents kubectl relies on for apply (fieldValidation, patch metadata) and
explain."""

from __future__ import annotations

import hashlib
from typing import Any, Iterator

import orjson
import pytest

from svcnet.api import openapi
from svcnet.api.kinds import KINDS, Kind, group_versions

PATCH_TYPES = {"application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json", "application/apply-patch+yaml"}


def gv_path(kind: Kind) -> str:
    return f"apis/{kind.group}/{kind.version}" if kind.group else f"api/{kind.version}"


def url_prefix(kind: Kind) -> str:
    return "/" + gv_path(kind)


def doc_for(kind: Kind) -> dict[str, Any]:
    doc = openapi.group_version_document(gv_path(kind))
    assert doc is not None
    return doc


def schemas(kind: Kind) -> dict[str, Any]:
    return doc_for(kind)["components"]["schemas"]  # type: ignore[no-any-return]


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                yield v
            else:
                yield from refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from refs(v)


def param_names(op: dict[str, Any]) -> set[str]:
    return {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}


def test_root_document_lists_every_group_version_with_content_hash() -> None:
    root = openapi.root_document()
    expected = {f"apis/{g}/{v}" if g else f"api/{v}" for g, v in group_versions()}
    assert set(root["paths"]) == expected
    for path, entry in root["paths"].items():
        url = entry["serverRelativeURL"]
        assert url.startswith(f"/openapi/v3/{path}?hash=")
        digest = url.split("hash=")[1]
        doc = openapi.group_version_document(path)
        assert digest == hashlib.sha512(orjson.dumps(doc)).hexdigest().upper()
        assert openapi.document_hash(path) == digest


def test_documents_are_cached_and_unknown_group_versions_are_none() -> None:
    assert openapi.group_version_document("api/v1") is openapi.group_version_document("/api/v1")
    assert openapi.root_document() is openapi.root_document()
    assert openapi.group_version_document("apis/batch/v1") is None
    assert openapi.group_version_document("apis/autoscaling/v1") is None


@pytest.mark.parametrize("path", sorted(openapi.root_document()["paths"]))
def test_group_version_documents_look_like_openapi_3(path: str) -> None:
    doc = openapi.group_version_document(path)
    assert doc is not None
    assert doc["openapi"].startswith("3.0")
    assert doc["info"]["title"] and doc["info"]["version"]
    assert doc["paths"] and doc["components"]["schemas"]
    for item in doc["paths"].values():
        for method, op in item.items():
            if method == "parameters":
                continue
            assert method in {"get", "put", "post", "delete", "patch"}
            assert op["operationId"] and op["responses"]
            assert op["x-kubernetes-action"] in {"get", "list", "post", "put", "patch", "delete",
                                                 "deletecollection"}
            gvk = op["x-kubernetes-group-version-kind"]
            assert set(gvk) == {"group", "version", "kind"}
        for p in item.get("parameters", []):
            if p["in"] == "path":
                assert p["required"] is True


@pytest.mark.parametrize("path", sorted(openapi.root_document()["paths"]))
def test_no_dangling_refs(path: str) -> None:
    doc = openapi.group_version_document(path)
    assert doc is not None
    names = doc["components"]["schemas"]
    for ref in refs(doc):
        assert ref.startswith("#/components/schemas/")
        assert ref.removeprefix("#/components/schemas/") in names, ref
    # and the document is plain JSON
    assert orjson.loads(orjson.dumps(doc)) == doc


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_every_kind_has_a_patch_operation_accepting_field_validation(kind: Kind) -> None:
    """What kubectl's --validate=strict checks before it will apply/create."""
    doc = doc_for(kind)
    ns = "/namespaces/{namespace}" if kind.namespaced else ""
    item = doc["paths"][f"{url_prefix(kind)}{ns}/{kind.resource}/{{name}}"]
    gvk = {"group": kind.group, "version": kind.version, "kind": kind.kind}
    patch = item["patch"]
    assert patch["x-kubernetes-group-version-kind"] == gvk
    assert patch["x-kubernetes-action"] == "patch"
    assert {"fieldValidation", "dryRun", "fieldManager", "force"} <= param_names(patch)
    assert set(patch["requestBody"]["content"]) == PATCH_TYPES
    assert {"fieldValidation", "dryRun", "fieldManager"} <= param_names(item["put"])
    assert {p["name"] for p in item["parameters"] if p["in"] == "path"} == (
        {"name", "namespace"} if kind.namespaced else {"name"})
    for method in ("get", "put", "delete"):
        assert item[method]["x-kubernetes-group-version-kind"] == gvk
    coll = doc["paths"][f"{url_prefix(kind)}{ns}/{kind.resource}"]
    assert {"fieldValidation", "dryRun", "fieldManager"} <= param_names(coll["post"])
    assert coll["get"]["x-kubernetes-action"] == "list"
    assert {"labelSelector", "fieldSelector", "watch", "limit"} <= param_names(coll["get"])
    assert ("delete" in coll) == ("deletecollection" in kind.verbs)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_explain_finds_the_kind_from_the_plain_list_path(kind: Kind) -> None:
    """kubectl explain reads the GVK of GET /<prefix>/<resource>, then the schema with it."""
    doc = doc_for(kind)
    gvk = {"group": kind.group, "version": kind.version, "kind": kind.kind}
    assert doc["paths"][f"{url_prefix(kind)}/{kind.resource}"]["get"][
        "x-kubernetes-group-version-kind"] == gvk
    matching = [name for name, s in doc["components"]["schemas"].items()
                if gvk in s.get("x-kubernetes-group-version-kind", [])]
    assert len(matching) == 1
    props = doc["components"]["schemas"][matching[0]]["properties"]
    assert {"apiVersion", "kind", "metadata"} <= set(props)


def test_definition_names_follow_upstream_packages() -> None:
    names = set(schemas(KINDS[0]))
    assert {"io.k8s.api.core.v1.Service", "io.k8s.api.core.v1.ServicePort",
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
            "io.k8s.apimachinery.pkg.apis.meta.v1.Time",
            "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
            "io.k8s.apimachinery.pkg.api.resource.Quantity",
            "io.k8s.api.core.v1.Event", "io.k8s.api.core.v1.EndpointPort",
            "io.k8s.api.core.v1.ServiceList", "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
            } <= names
    assert openapi.definition_name("V1Deployment") == "io.k8s.api.apps.v1.Deployment"
    assert openapi.definition_name("V1EndpointSlice") == "io.k8s.api.discovery.v1.EndpointSlice"
    assert openapi.definition_name("DiscoveryV1EndpointPort") == "io.k8s.api.discovery.v1.EndpointPort"
    assert openapi.definition_name("V1Ingress") == "io.k8s.api.networking.v1.Ingress"
    assert openapi.definition_name("V1IPBlock") == "io.k8s.api.networking.v1.IPBlock"
    assert openapi.definition_name("V1LabelSelector") == \
        "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"


def test_service_schema_has_patch_metadata_for_ports() -> None:
    s = schemas(KINDS[0])
    service = s["io.k8s.api.core.v1.Service"]
    assert service["x-kubernetes-group-version-kind"] == [
        {"group": "", "version": "v1", "kind": "Service"}]
    assert service["properties"]["spec"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.api.core.v1.ServiceSpec"}]
    ports = s["io.k8s.api.core.v1.ServiceSpec"]["properties"]["ports"]
    assert ports["type"] == "array"
    assert ports["x-kubernetes-patch-merge-key"] == "port"
    assert ports["x-kubernetes-patch-strategy"] == "merge"
    assert ports["x-kubernetes-list-type"] == "map"
    assert ports["x-kubernetes-list-map-keys"] == ["port", "protocol"]
    assert ports["items"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.api.core.v1.ServicePort"}]
    port = s["io.k8s.api.core.v1.ServicePort"]["properties"]
    assert port["port"] == {"type": "integer", "format": "int32"}
    assert port["targetPort"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.util.intstr.IntOrString"}]
    assert s["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["x-kubernetes-int-or-string"]
    spec = s["io.k8s.api.core.v1.ServiceSpec"]["properties"]
    assert spec["selector"] == {"type": "object", "additionalProperties": {"type": "string"}}
    assert spec["clusterIPs"]["x-kubernetes-list-type"] == "atomic"
    assert "x-kubernetes-patch-strategy" not in spec["clusterIPs"]


def test_meta_patch_metadata_and_types() -> None:
    meta = schemas(KINDS[0])["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]
    assert meta["finalizers"]["x-kubernetes-list-type"] == "set"
    assert meta["finalizers"]["x-kubernetes-patch-strategy"] == "merge"
    owners = meta["ownerReferences"]
    assert (owners["x-kubernetes-patch-merge-key"], owners["x-kubernetes-list-map-keys"]) == (
        "uid", ["uid"])
    assert meta["generation"] == {"type": "integer", "format": "int64"}
    assert meta["creationTimestamp"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Time"}]
    fields_v1 = schemas(KINDS[0])["io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry"][
        "properties"]["fieldsV1"]
    assert fields_v1 == {"x-kubernetes-preserve-unknown-fields": True}


def test_pod_and_deployment_patch_strategies() -> None:
    deployment = next(k for k in KINDS if k.kind == "Deployment")
    s = schemas(deployment)
    strategy = s["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"]
    assert strategy["x-kubernetes-patch-strategy"] == "retainKeys"
    pod_spec = s["io.k8s.api.core.v1.PodSpec"]["properties"]
    assert pod_spec["volumes"]["x-kubernetes-patch-strategy"] == "merge,retainKeys"
    assert pod_spec["volumes"]["x-kubernetes-patch-merge-key"] == "name"
    assert pod_spec["containers"]["x-kubernetes-patch-merge-key"] == "name"
    assert pod_spec["terminationGracePeriodSeconds"]["format"] == "int64"
    container = s["io.k8s.api.core.v1.Container"]["properties"]
    assert container["env"]["x-kubernetes-patch-merge-key"] == "name"
    assert container["ports"]["x-kubernetes-list-map-keys"] == ["containerPort", "protocol"]
    assert container["volumeMounts"]["x-kubernetes-patch-merge-key"] == "mountPath"
    assert container["command"]["x-kubernetes-list-type"] == "atomic"
    limits = s["io.k8s.api.core.v1.ResourceRequirements"]["properties"]["limits"]
    assert limits["additionalProperties"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.api.resource.Quantity"}]
    assert s["io.k8s.apimachinery.pkg.api.resource.Quantity"]["x-kubernetes-int-or-string"]


def test_scale_subresource_is_an_autoscaling_v1_scale() -> None:
    deployment = next(k for k in KINDS if k.kind == "Deployment")
    doc = doc_for(deployment)
    scale_path = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
    gvk = {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    assert scale_path["patch"]["x-kubernetes-group-version-kind"] == gvk
    assert "fieldValidation" in param_names(scale_path["patch"])
    assert doc["components"]["schemas"]["io.k8s.api.autoscaling.v1.Scale"][
        "x-kubernetes-group-version-kind"] == [gvk]
    status = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status"]
    assert status["patch"]["x-kubernetes-group-version-kind"]["kind"] == "Deployment"


def test_secret_data_is_bytes() -> None:
    data = schemas(KINDS[0])["io.k8s.api.core.v1.Secret"]["properties"]["data"]
    assert data == {"type": "object", "additionalProperties": {"type": "string", "format": "byte"}}
