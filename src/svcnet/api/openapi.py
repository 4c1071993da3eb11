"""The OpenAPI v3 documents kubectl fetches: `/openapi/v3` and one document per group-version.

Who reads them (reference/apiserver.md §1.6):

- `kubectl apply/create/replace` with the default `--validate=strict` first asks whether the
  PATCH operation of the object's GVK takes a `fieldValidation` query parameter; without a
  document saying so they refuse to run.
- client-side `kubectl apply` computes its strategic merge patch from the component schema
  carrying the object's `x-kubernetes-group-version-kind`, reading the
  `x-kubernetes-patch-strategy` / `x-kubernetes-patch-merge-key` extensions on properties
  and following `allOf: [{$ref}]` to nested types. Wrong extensions mean wrong patches.
- `kubectl explain` finds the GVK on the GET operation of `/<prefix>/<resource>` and walks
  `properties` from the matching component schema.

Everything is generated from schema.py (the same structural schema that decodes and patches
objects), so the documents cannot disagree with the server. Descriptions are short generic
texts of our own. Documents are static: built once, cached, and must not be mutated.
"""

from __future__ import annotations

import hashlib
from functools import cache
from typing import Any

import orjson

from svcnet.api import schema
from svcnet.api.decode import BYTES_MAP_FIELDS, integer_format
from svcnet.api.kinds import KINDS, Kind, group_versions
from svcnet.api.schema import ListOf, MapOf, Prim, Struct, Type

Doc = dict[str, Any]
OPENAPI_VERSION = "3.0.0"
TITLE_VERSION = "v1.32.0"  # the Kubernetes release whose API we serve (info.version)
REF = "#/components/schemas/"

# --- definition names ---------------------------------------------------------------------
# Upstream names component schemas by Go package path + type name. schema.json only has
# client model names (V1ServicePort), so the package is looked up here; core/v1 is the
# default. Names matter to kubectl only in display (`<[]ServicePort>`: the last segment).
_META = "io.k8s.apimachinery.pkg.apis.meta.v1"
_PACKAGES: dict[str, str] = {
    **dict.fromkeys(("V1ObjectMeta", "V1LabelSelector", "V1LabelSelectorRequirement",
                     "V1ManagedFieldsEntry", "V1OwnerReference", "V1Condition",
                     "V1DeleteOptions", "V1Preconditions"), _META),
    **dict.fromkeys(("V1Deployment", "V1DeploymentSpec", "V1DeploymentStatus",
                     "V1DeploymentCondition", "V1DeploymentStrategy",
                     "V1RollingUpdateDeployment", "V1ReplicaSet", "V1ReplicaSetSpec",
                     "V1ReplicaSetStatus", "V1ReplicaSetCondition"), "io.k8s.api.apps.v1"),
    **dict.fromkeys(("V1EndpointSlice", "V1Endpoint", "V1EndpointConditions",
                     "V1EndpointHints", "V1ForZone", "V1ForNode", "DiscoveryV1EndpointPort"),
                    "io.k8s.api.discovery.v1"),
    **dict.fromkeys(("V1HTTPIngressPath", "V1HTTPIngressRuleValue", "V1IPBlock",
                     "V1ServiceBackendPort"), "io.k8s.api.networking.v1"),
    **dict.fromkeys(("V1Scale", "V1ScaleSpec", "V1ScaleStatus"), "io.k8s.api.autoscaling.v1"),
}
_CORE = "io.k8s.api.core.v1"
TIME = f"{_META}.Time"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
LIST_META = f"{_META}.ListMeta"
STATUS = f"{_META}.Status"
PATCH = f"{_META}.Patch"
WATCH_EVENT = f"{_META}.WatchEvent"
DELETE_OPTIONS = f"{_META}.DeleteOptions"
# Kinds whose DELETE answers with the object rather than a Status (mirrors the handlers).
_DELETE_RETURNS_OBJECT = {"Pod", "Service"}
SCALE_GVK = {"group": "autoscaling", "version": "v1", "kind": "Scale"}


def definition_name(client_name: str) -> str:
    """`V1ServicePort` -> `io.k8s.api.core.v1.ServicePort`; `V1ObjectMeta` -> the meta/v1 name."""
    if client_name.startswith(("V1Ingress", "V1NetworkPolicy")):
        package = "io.k8s.api.networking.v1"
    else:
        package = _PACKAGES.get(client_name, _CORE)
    return f"{package}.{schema._go_name(client_name)}"


def _ref(name: str) -> Doc:
    return {"$ref": REF + name}


def _gvk(kind: Kind) -> Doc:
    return {"group": kind.group, "version": kind.version, "kind": kind.kind}


# --- component schemas --------------------------------------------------------------------

_ROOT_FIELD_TEXT = {
    "apiVersion": 'API group and version of this object, for example "apps/v1".',
    "kind": 'Type name of this object, for example "Service".',
    "metadata": "Object metadata: name, namespace, labels, annotations and server-set fields.",
    "spec": "Desired state of the object, as set by its clients.",
    "status": "Most recently observed state of the object, written by the system.",
}


# (owner client type, field) -> SSA list-map keys where they differ from the SMP merge key.
_LIST_MAP_KEYS: dict[tuple[str, str], tuple[str, ...]] = {
    ("V1ServiceSpec", "ports"): ("port", "protocol"),
    ("V1Container", "ports"): ("containerPort", "protocol"),
    ("V1EphemeralContainer", "ports"): ("containerPort", "protocol"),
    ("V1PodSpec", "topologySpreadConstraints"): ("topologyKey", "whenUnsatisfiable"),
}


class _Components:
    """Collects the component schemas reachable from a set of roots."""

    def __init__(self) -> None:
        self.schemas: dict[str, Doc] = {}

    def struct(self, s: Struct, gvk: list[Doc] | None = None) -> str:
        name = definition_name(s.name)
        if name in self.schemas:
            if gvk:
                self.schemas[name]["x-kubernetes-group-version-kind"] = gvk
            return name
        out: Doc = {"description": f"Fields of a {s.go_name}.",
                    "type": "object", "properties": {}}
        self.schemas[name] = out  # registered before recursing: types can be recursive
        props: Doc = {}
        for fname in sorted(s.fields):
            prop = self.property(s.fields[fname], s.name, fname)
            if gvk is not None and fname in _ROOT_FIELD_TEXT:
                prop = {**prop, "description": _ROOT_FIELD_TEXT[fname]}
            props[fname] = prop
        out["properties"] = props
        if gvk:
            out["description"] = f"{s.go_name} as served by this API server."
            out["x-kubernetes-group-version-kind"] = gvk
        return name

    def property(self, t: Type, owner: str, field: str) -> Doc:
        """The schema of field `field` (of client type `owner`) with patch extensions."""
        if isinstance(t, Prim):
            return self.prim(t, owner, field)
        if isinstance(t, Struct):
            out: Doc = {"allOf": [_ref(self.struct(t))], "default": {}}
            if t.retain_keys:
                out["x-kubernetes-patch-strategy"] = "retainKeys"
            return out
        if isinstance(t, MapOf):
            if (owner, field) in BYTES_MAP_FIELDS:
                value: Doc = {"type": "string", "format": "byte"}
            else:
                value = self.property(t.value, owner, field)
            return {"type": "object", "additionalProperties": value}
        return self.list(t, owner, field)

    def list(self, t: ListOf, owner: str, field: str) -> Doc:
        item = t.item
        out: Doc = {"type": "array", "items": self.property(item, owner, field)}
        retain = False
        if isinstance(item, Struct) and item.retain_keys:
            # retainKeys is announced on the list (below); the items are the plain struct.
            retain = True
            out["items"] = {"allOf": [_ref(definition_name(item.name))], "default": {}}
        if t.merge_key is not None:
            out["x-kubernetes-list-type"] = "map"
            out["x-kubernetes-list-map-keys"] = list(
                _LIST_MAP_KEYS.get((owner, field), (t.merge_key,)))
            out["x-kubernetes-patch-merge-key"] = t.merge_key
            out["x-kubernetes-patch-strategy"] = "merge,retainKeys" if retain else "merge"
        elif t.primitive_merge:
            out["x-kubernetes-list-type"] = "set"
            out["x-kubernetes-patch-strategy"] = "merge"
        else:
            out["x-kubernetes-list-type"] = "atomic"
            if retain:
                out["x-kubernetes-patch-strategy"] = "retainKeys"
        return out

    def prim(self, t: Prim, owner: str, field: str) -> Doc:
        name = t.name
        if name == "string":
            return {"type": "string"}
        if name == "integer":
            return {"type": "integer", "format": integer_format(owner, field)}
        if name == "boolean":
            return {"type": "boolean"}
        if name == "number":
            return {"type": "number", "format": "double"}
        if name == "date-time":
            self.schemas.setdefault(TIME, {
                "description": "An RFC 3339 timestamp, serialized in UTC to the second.",
                "type": "string", "format": "date-time"})
            return {"allOf": [_ref(TIME)]}
        if name == "int-or-string":
            self.schemas.setdefault(INT_OR_STRING, {
                "description": "Either an integer or a string (for example a port number "
                               "or a port name).",
                # No "type": it is not a string; explain then shows <IntOrString>.
                "format": "int-or-string", "x-kubernetes-int-or-string": True})
            return {"allOf": [_ref(INT_OR_STRING)]}
        if name == "quantity":
            self.schemas.setdefault(QUANTITY, {
                "description": 'A fixed-point amount with an optional unit suffix, for '
                               'example "500m", "2" or "1Gi". Numbers are accepted too.',
                "format": "quantity", "x-kubernetes-int-or-string": True})
            return {"allOf": [_ref(QUANTITY)]}
        return {"x-kubernetes-preserve-unknown-fields": True}  # "any": free-form JSON

    def meta_types(self) -> None:
        """The apimachinery types responses and request bodies refer to."""
        s = self.schemas
        s[LIST_META] = {"description": "Metadata of a list response.", "type": "object",
                        "properties": {
                            "continue": {"type": "string"},
                            "remainingItemCount": {"type": "integer", "format": "int64"},
                            "resourceVersion": {"type": "string"},
                            "selfLink": {"type": "string"}}}
        s[f"{_META}.StatusCause"] = {
            "description": "One cause of an error.", "type": "object",
            "properties": {"field": {"type": "string"}, "message": {"type": "string"},
                           "reason": {"type": "string"}}}
        s[f"{_META}.StatusDetails"] = {
            "description": "Details of an error.", "type": "object",
            "properties": {
                "causes": {"type": "array", "x-kubernetes-list-type": "atomic",
                           "items": {"allOf": [_ref(f"{_META}.StatusCause")], "default": {}}},
                "group": {"type": "string"}, "kind": {"type": "string"},
                "name": {"type": "string"},
                "retryAfterSeconds": {"type": "integer", "format": "int32"},
                "uid": {"type": "string"}}}
        s[STATUS] = {
            "description": "The result of an operation that does not return an object.",
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"},
                "code": {"type": "integer", "format": "int32"},
                "details": {"allOf": [_ref(f"{_META}.StatusDetails")]},
                "kind": {"type": "string"},
                "message": {"type": "string"},
                "metadata": {"allOf": [_ref(LIST_META)], "default": {}},
                "reason": {"type": "string"},
                "status": {"type": "string"}},
            "x-kubernetes-group-version-kind": [{"group": "", "kind": "Status",
                                                 "version": "v1"}]}
        s[PATCH] = {"description": "A patch document; its format is given by the content "
                                   "type.", "type": "object"}
        s[WATCH_EVENT] = {
            "description": "One event of a watch stream.", "type": "object",
            "required": ["type", "object"],
            "properties": {"object": {"type": "object",
                                      "x-kubernetes-preserve-unknown-fields": True},
                           "type": {"type": "string"}}}
        self.struct(schema.root("V1DeleteOptions"))

    def list_type(self, kind: Kind, item: str) -> str:
        name = item + "List"
        self.schemas[name] = {
            "description": f"A list of {kind.kind} objects.", "type": "object",
            "required": ["items"],
            "properties": {
                "apiVersion": {"type": "string", "description": _ROOT_FIELD_TEXT["apiVersion"]},
                "items": {"type": "array", "items": {"allOf": [_ref(item)], "default": {}}},
                "kind": {"type": "string", "description": _ROOT_FIELD_TEXT["kind"]},
                "metadata": {"allOf": [_ref(LIST_META)], "default": {}}},
            "x-kubernetes-group-version-kind": [{"group": kind.group,
                                                 "kind": kind.kind + "List",
                                                 "version": kind.version}]}
        return name


# --- paths --------------------------------------------------------------------------------

def _query(name: str, text: str, type_: str = "string") -> Doc:
    return {"name": name, "in": "query", "description": text, "schema": {"type": type_},
            "uniqueItems": True}


def _path_param(name: str, text: str) -> Doc:
    return {"name": name, "in": "path", "description": text, "required": True,
            "schema": {"type": "string"}, "uniqueItems": True}


_PRETTY = _query("pretty", "If true, the output is indented.")
_WRITE_PARAMS = [
    _query("dryRun", 'When "All", the request is processed but nothing is persisted.'),
    _query("fieldManager", "Name of the actor making the change (server-side field "
                           "ownership)."),
    _query("fieldValidation", 'How to treat unknown or duplicate fields in the body: '
                              '"Ignore", "Warn" or "Strict".'),
]
_LIST_PARAMS = [
    _query("allowWatchBookmarks", "Ask for BOOKMARK events in a watch.", "boolean"),
    _query("continue", "Token from a previous paged list response."),
    _query("fieldSelector", "Restrict the result by field values."),
    _query("labelSelector", "Restrict the result by labels."),
    _query("limit", "Maximum number of items to return.", "integer"),
    _query("resourceVersion", "Consistency of the result (see the Kubernetes API docs)."),
    _query("resourceVersionMatch", "How resourceVersion is applied."),
    _query("sendInitialEvents", "Start a watch with synthetic events for existing "
                                "objects.", "boolean"),
    _query("timeoutSeconds", "Timeout for the list or watch call.", "integer"),
    _query("watch", "Stream changes instead of listing.", "boolean"),
]
_DELETE_PARAMS = [
    _query("dryRun", 'When "All", the request is processed but nothing is persisted.'),
    _query("gracePeriodSeconds", "Seconds before the object is deleted.", "integer"),
    _query("propagationPolicy", 'Garbage collection of dependents: "Orphan", '
                                '"Background" or "Foreground".'),
]
_PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
                "application/strategic-merge-patch+json", "application/apply-patch+yaml")


def _content(name: str, watch: bool = False) -> Doc:
    body: Doc = {"application/json": {"schema": _ref(name)},
                 "application/yaml": {"schema": _ref(name)}}
    if watch:
        body["application/json;stream=watch"] = {"schema": _ref(WATCH_EVENT)}
    return body


def _responses(codes: dict[str, str], name: str, watch: bool = False) -> Doc:
    out: Doc = {code: {"description": text, "content": _content(name, watch)}
                for code, text in codes.items()}
    out["401"] = {"description": "Unauthorized"}
    return out


def _op(action: str, op_id: str, gvk: Doc, text: str, **extra: Any) -> Doc:
    out: Doc = {"tags": [gvk_tag(gvk)], "description": text, "operationId": op_id}
    out.update(extra)
    out["x-kubernetes-action"] = action
    out["x-kubernetes-group-version-kind"] = gvk
    return out


def gvk_tag(gvk: Doc) -> str:
    """Upstream-style tag: `core_v1`, `apps_v1`, `networking_v1`."""
    return f"{(gvk['group'] or 'core').split('.')[0]}_{gvk['version']}"


def _op_prefix(kind: Kind) -> str:
    """`CoreV1`, `AppsV1`, `NetworkingV1`: the group-version part of operation ids."""
    group = (kind.group or "core").split(".")[0]
    return group[:1].upper() + group[1:] + kind.version[:1].upper() + kind.version[1:]


def _kind_paths(kind: Kind, comp: _Components) -> dict[str, Doc]:
    """Collection, item, all-namespaces and subresource paths of one kind."""
    root = "/api/" + kind.version if not kind.group else f"/apis/{kind.group}/{kind.version}"
    ns = "/namespaces/{namespace}" if kind.namespaced else ""
    scope = "Namespaced" if kind.namespaced else ""
    gv = _op_prefix(kind)
    gvk = _gvk(kind)
    obj = comp.struct(schema.root(kind.client_type), [gvk])
    lst = comp.list_type(kind, obj)
    name_param = _path_param("name", f"name of the {kind.kind}")
    common = [name_param] if not kind.namespaced else [
        name_param, _path_param("namespace", "object name and auth scope, such as for teams "
                                             "and projects")]
    coll_common = [common[1]] if kind.namespaced else []
    verbs = set(kind.verbs)
    body = {"content": {"*/*": {"schema": _ref(obj)}}, "required": True}
    patch_body = {"content": {ct: {"schema": _ref(PATCH)} for ct in _PATCH_TYPES},
                  "required": True}
    paths: dict[str, Doc] = {}

    coll: Doc = {}
    if "list" in verbs:
        coll["get"] = _op("list", f"list{gv}{scope}{kind.kind}", gvk,
                          f"list or watch objects of kind {kind.kind}",
                          parameters=list(_LIST_PARAMS),
                          responses=_responses({"200": "OK"}, lst, watch=True))
    if "create" in verbs:
        coll["post"] = _op("post", f"create{gv}{scope}{kind.kind}", gvk,
                           f"create a {kind.kind}", parameters=list(_WRITE_PARAMS),
                           requestBody=body,
                           responses=_responses({"200": "OK", "201": "Created",
                                                 "202": "Accepted"}, obj))
    if "deletecollection" in verbs:
        coll["delete"] = _op("deletecollection", f"delete{gv}Collection{scope}{kind.kind}", gvk,
                             f"delete a collection of {kind.kind}",
                             parameters=_DELETE_PARAMS + _LIST_PARAMS,
                             requestBody={"content": {"*/*": {"schema": _ref(DELETE_OPTIONS)}}},
                             responses=_responses({"200": "OK"}, STATUS))
    coll["parameters"] = coll_common + [_PRETTY]
    paths[f"{root}{ns}/{kind.resource}"] = coll

    item: Doc = {}
    deleted = obj if kind.kind in _DELETE_RETURNS_OBJECT else STATUS
    if "get" in verbs:
        item["get"] = _op("get", f"read{gv}{scope}{kind.kind}", gvk,
                          f"read the specified {kind.kind}",
                          responses=_responses({"200": "OK"}, obj))
    if "update" in verbs:
        item["put"] = _op("put", f"replace{gv}{scope}{kind.kind}", gvk,
                          f"replace the specified {kind.kind}", parameters=list(_WRITE_PARAMS),
                          requestBody=body,
                          responses=_responses({"200": "OK", "201": "Created"}, obj))
    if "delete" in verbs:
        item["delete"] = _op("delete", f"delete{gv}{scope}{kind.kind}", gvk,
                             f"delete a {kind.kind}", parameters=list(_DELETE_PARAMS),
                             requestBody={"content": {"*/*": {"schema": _ref(DELETE_OPTIONS)}}},
                             responses=_responses({"200": "OK", "202": "Accepted"}, deleted))
    if "patch" in verbs:
        item["patch"] = _patch_op(f"patch{gv}{scope}{kind.kind}", gvk, kind.kind, obj,
                                  patch_body)
    item["parameters"] = common + [_PRETTY]
    paths[f"{root}{ns}/{kind.resource}/{{name}}"] = item

    if kind.namespaced and "list" in verbs:
        # `kubectl explain` finds the GVK on GET of exactly this (all-namespaces) path.
        paths[f"{root}/{kind.resource}"] = {
            "get": _op("list", f"list{gv}{kind.kind}ForAllNamespaces", gvk,
                       f"list or watch objects of kind {kind.kind} in all namespaces",
                       parameters=list(_LIST_PARAMS),
                       responses=_responses({"200": "OK"}, lst, watch=True)),
            "parameters": [_PRETTY]}

    for sub in kind.subresources:
        title = sub[:1].upper() + sub[1:]
        sub_gvk, sub_obj = gvk, obj
        if sub == "scale":
            sub_gvk = dict(SCALE_GVK)
            sub_obj = comp.struct(schema.root("V1Scale"), [dict(SCALE_GVK)])
        sub_body = {"content": {"*/*": {"schema": _ref(sub_obj)}}, "required": True}
        ops: Doc = {}
        op_base = f"{gv}{scope}{kind.kind}{title}"
        if sub != "finalize":
            ops["get"] = _op("get", f"read{op_base}", sub_gvk,
                             f"read {sub} of the specified {kind.kind}",
                             responses=_responses({"200": "OK"}, sub_obj))
        ops["put"] = _op("put", f"replace{op_base}", sub_gvk,
                         f"replace {sub} of the specified {kind.kind}",
                         parameters=list(_WRITE_PARAMS), requestBody=sub_body,
                         responses=_responses({"200": "OK", "201": "Created"}, sub_obj))
        if sub != "finalize":
            ops["patch"] = _patch_op(f"patch{op_base}", sub_gvk, f"{sub} of {kind.kind}",
                                     sub_obj, patch_body)
        ops["parameters"] = common + [_PRETTY]
        paths[f"{root}{ns}/{kind.resource}/{{name}}/{sub}"] = ops
    return paths


def _patch_op(op_id: str, gvk: Doc, what: str, obj: str, body: Doc) -> Doc:
    # `fieldValidation` here is what kubectl's --validate=strict looks for before applying.
    params = list(_WRITE_PARAMS) + [
        _query("force", "Take ownership of conflicting fields (apply patches only).",
               "boolean")]
    return _op("patch", op_id, gvk, f"partially update the specified {what}",
               parameters=params, requestBody=body,
               responses=_responses({"200": "OK", "201": "Created"}, obj))


# --- documents ----------------------------------------------------------------------------

def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


@cache
def _documents() -> dict[str, tuple[Doc, str]]:
    """gv path -> (document, hash of its serialized bytes); built once."""
    out: dict[str, tuple[Doc, str]] = {}
    for group, version in group_versions():
        comp = _Components()
        comp.meta_types()
        paths: dict[str, Doc] = {}
        for kind in KINDS:
            if (kind.group, kind.version) == (group, version):
                paths.update(_kind_paths(kind, comp))
        doc: Doc = {
            "openapi": OPENAPI_VERSION,
            "info": {"title": "Kubernetes", "version": TITLE_VERSION},
            "paths": paths,
            "components": {"schemas": dict(sorted(comp.schemas.items()))},
        }
        digest = hashlib.sha512(orjson.dumps(doc)).hexdigest().upper()
        out[_gv_path(group, version)] = (doc, digest)
    return out


@cache
def root_document() -> Doc:
    """`GET /openapi/v3`: every group-version document with a content-hash URL.

    The hash (upper-case hex SHA-512 of the document's bytes, as upstream) lets clients
    cache each document until it changes. There is no `apis/autoscaling/v1` entry: the only
    Scale endpoints are the deployments/replicasets `scale` subresources, which live (with
    the Scale schema) in the apps/v1 document, as upstream.
    """
    return {"paths": {path: {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
                      for path, (_, digest) in _documents().items()}}


def group_version_document(gv_path: str) -> Doc | None:
    """`GET /openapi/v3/<gv_path>` (e.g. "api/v1", "apis/apps/v1"); None if not served."""
    entry = _documents().get(gv_path.strip("/"))
    return entry[0] if entry else None


def document_hash(gv_path: str) -> str | None:
    """The hash in the root document's URL for `gv_path` (for ETag / cache headers)."""
    entry = _documents().get(gv_path.strip("/"))
    return entry[1] if entry else None
