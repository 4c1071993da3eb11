"""HTTP handlers for resources: CRUD, subresources (status, scale, finalize), deletecollection.

Each handler turns a request into one registry call and its answer into the response
kubectl expects (a Table when asked for one, a Status on errors). Watches are served by
watchstream.py.
"""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from typing import Any, Callable

from aiohttp import web

from svcnet.api import decode, errors, patch as patching, printers, schema
from svcnet.api.kinds import Kind
from svcnet.api.selectors import format_selector, from_label_selector
from svcnet.apiserver import binding
from svcnet.apiserver.auth import User, authorize
from svcnet.apiserver.paths import ResourcePath
from svcnet.apiserver.registry import Registry
from svcnet.apiserver.request import (dry_run, field_validation, json_response, list_options,
                                      media_type, read_body, wants_table, warning_headers)
from svcnet.apiserver.podlog import serve_pod_log
from svcnet.apiserver.streaming import STREAM_SUBRESOURCES, serve_stream
from svcnet.apiserver.watchstream import serve_watch

Obj = dict[str, Any]
APPLY_PATCH = "application/apply-patch+yaml"
# Kinds whose DELETE answers with the deleted object rather than a Status (kube's
# ReturnDeletedObject), matching the python client's declared return types.
RETURNS_DELETED_OBJECT = {"Pod", "Service"}


def _verb(method: str, rp: ResourcePath, watch: bool) -> str:
    if method == "GET":
        if rp.name is None:
            return "watch" if watch else "list"
        return "get"
    return {"POST": "create", "PUT": "update", "PATCH": "patch",
            "DELETE": "delete" if rp.name is not None else "deletecollection"}.get(method, "")


def _decode_object(kind: Kind, raw: bytes, content_type: str, mode: str,
                   warnings: list[str]) -> Obj:
    """Parse and type-check a full object body against `kind` under fieldValidation `mode`."""
    body = decode.decode_body(raw, content_type, strict=mode == "Strict")
    if not isinstance(body, dict):
        raise errors.bad_request(f"{kind.kind} in version \"{kind.version}\" cannot be handled "
                                 f"as a {kind.kind}: the body must be a JSON object")
    api_version, body_kind = body.get("apiVersion"), body.get("kind")
    if api_version and api_version != kind.api_version:
        raise errors.bad_request(f"the API version in the data ({api_version}) does not match "
                                 f"the expected API version ({kind.api_version})")
    if body_kind and body_kind != kind.kind:
        raise errors.bad_request(f"the kind in the data ({body_kind}) does not match the "
                                 f"expected kind ({kind.kind})")
    obj, unknown = decode.decode(kind, body, strict=mode == "Strict")
    if unknown:
        if mode == "Strict":
            raise decode.strict_error(kind, unknown)
        if mode == "Warn":
            warnings += [f'unknown field "{u}"' for u in unknown]
    return obj


def _check_result(kind: Kind, obj: Obj, mode: str, warnings: list[str]) -> Obj:
    """Type-check a patched object the way a decoded body is checked."""
    out, unknown = decode.decode(kind, obj, strict=mode == "Strict")
    if unknown:
        if mode == "Strict":
            raise decode.strict_error(kind, unknown)
        if mode == "Warn":
            warnings += [f'unknown field "{u}"' for u in unknown]
    return out


class ResourceHandlers:
    """Serves /api/v1/... and /apis/G/V/... for every kind in the registry."""

    def __init__(self, registry: Registry,
                 node_token: Callable[[str], str | None] = lambda _node: None) -> None:
        """`node_token(node)` gives the token the API server presents to a node's agent
        (pods/log, exec, attach and portforward are proxied there)."""
        self.registry = registry
        self.node_token = node_token

    def _respond(self, request: web.Request, kind: Kind, obj: Obj, status: int = 200,
                 warnings: list[str] | None = None) -> web.Response:
        headers = warning_headers(warnings or [])
        if wants_table(request.headers.get("Accept")) and obj.get("kind") == kind.kind:
            include = request.query.get("includeObject", "Metadata") or "Metadata"
            body = printers.table(kind, [obj], datetime.now(timezone.utc),
                                  include_object=include,
                                  list_meta={"resourceVersion": obj["metadata"].get(
                                      "resourceVersion", "")})
            resp = json_response(body, status, content_type="application/json")
        else:
            resp = json_response(obj, status)
        for k, v in headers:
            resp.headers.add(k, v)
        return resp

    async def handle(self, request: web.Request, rp: ResourcePath, user: User) -> web.StreamResponse:
        opts = list_options(request.query, rp.kind) if request.method == "GET" and \
            rp.name is None else None
        verb = _verb(request.method, rp, bool(opts and opts.watch))
        if rp.subresource in STREAM_SUBRESOURCES:
            # Like kube (AuthorizePodWebsocketUpgradeCreatePermission, on since 1.31): the
            # WebSocket GET needs `create` as the SPDY POST does.
            verb = "create"
        if not verb:
            raise errors.method_not_allowed("the server does not allow this method on the "
                                            "requested resource")
        if verb not in rp.kind.verbs and not rp.subresource:
            raise errors.method_not_allowed("the server does not allow this method on the "
                                            "requested resource")
        if not authorize(user, verb, rp.kind.resource, rp.subresource, rp.name):
            raise errors.forbidden_request(user.name, verb, rp.kind.resource, rp.kind.group,
                                           rp.namespace, rp.name, rp.subresource)
        if opts is not None:
            if opts.watch:
                return await serve_watch(request, self.registry, rp, opts)
            return await self.list(request, rp, opts)
        if rp.subresource == "scale":
            return await self.scale(request, rp)
        if rp.subresource == "binding":
            return await self.bind(request, rp)
        if rp.subresource == "log":
            if request.method != "GET":
                raise errors.method_not_allowed("the server does not allow this method on "
                                                "the requested resource")
            return await serve_pod_log(request, self.registry, self.node_token, rp)
        if rp.subresource in STREAM_SUBRESOURCES:
            return await serve_stream(request, self.registry, self.node_token, rp)
        method = request.method
        if method == "GET":
            return self._respond(request, rp.kind, await self.registry.get(
                rp.kind, rp.namespace, rp.name or ""))
        if method == "POST":
            return await self.create(request, rp)
        if method == "PUT":
            return await self.update(request, rp)
        if method == "PATCH":
            return await self.patch(request, rp)
        if method == "DELETE":
            if rp.name is None:
                return await self.delete_collection(request, rp)
            return await self.delete(request, rp)
        raise errors.method_not_allowed("the server does not allow this method on the "
                                        "requested resource")

    async def list(self, request: web.Request, rp: ResourcePath, opts: Any) -> web.Response:
        kind = rp.kind
        res = await self.registry.list(kind, rp.namespace, labels=opts.labels,
                                       fields=opts.fields, limit=opts.limit,
                                       continue_token=opts.continue_token)
        meta: Obj = {"resourceVersion": str(res.resource_version)}
        if res.continue_token:
            meta["continue"] = res.continue_token
        if wants_table(request.headers.get("Accept")):
            body = printers.table(kind, res.items, datetime.now(timezone.utc),
                                  include_object=opts.include_object, list_meta=meta)
            return json_response(body)
        return json_response({"kind": f"{kind.kind}List", "apiVersion": kind.api_version,
                              "metadata": meta, "items": res.items})

    async def create(self, request: web.Request, rp: ResourcePath) -> web.Response:
        if rp.name is not None:
            raise errors.method_not_allowed("the server does not allow this method on the "
                                            "requested resource")
        mode = field_validation(request.query)
        warnings: list[str] = []
        raw = await read_body(request)
        obj = _decode_object(rp.kind, raw, request.content_type, mode, warnings)
        out = await self.registry.create(rp.kind, rp.namespace, obj,
                                         dry_run=dry_run(request.query))
        return self._respond(request, rp.kind, out, 201, warnings)

    async def update(self, request: web.Request, rp: ResourcePath) -> web.Response:
        mode = field_validation(request.query)
        warnings: list[str] = []
        obj = _decode_object(rp.kind, await read_body(request), request.content_type, mode,
                             warnings)
        sub = rp.subresource
        if sub == "finalize":
            def finalize(cur: Obj | None) -> Obj:
                assert cur is not None
                cur["spec"] = {"finalizers": list((obj.get("spec") or {}).get("finalizers")
                                                  or [])}
                return cur
            out, _ = await self.registry.patch(rp.kind, rp.namespace, rp.name or "", finalize,
                                               subresource="finalize")
            return self._respond(request, rp.kind, out, 200, warnings)
        out = await self.registry.update(rp.kind, rp.namespace, rp.name or "", obj,
                                         subresource=sub, dry_run=dry_run(request.query))
        return self._respond(request, rp.kind, out, 200, warnings)

    async def patch(self, request: web.Request, rp: ResourcePath) -> web.Response:
        kind = rp.kind
        ct = media_type(request.content_type)
        raw = await read_body(request)
        mode = field_validation(request.query)
        warnings: list[str] = []
        root = schema.root(kind.client_type)
        if ct == APPLY_PATCH:
            if not request.query.get("fieldManager"):
                raise errors.bad_request("PATCH request with apply-patch+yaml requires "
                                         "fieldManager")
            applied = _decode_object(kind, raw, "application/yaml", mode, warnings)

            def mutate(cur: Obj | None) -> Obj:
                return patching.server_side_apply(cur, copy.deepcopy(applied), root)
            create = not rp.subresource
        else:
            base = self.registry.patch_mutator(kind, raw, ct)

            def mutate(cur: Obj | None) -> Obj:
                return _check_result(kind, base(cur), mode, warnings)
            create = False
        out, created = await self.registry.patch(
            kind, rp.namespace, rp.name or "", mutate, subresource=rp.subresource,
            dry_run=dry_run(request.query), create_if_missing=create)
        return self._respond(request, kind, out, 201 if created else 200, warnings)

    async def _delete_options(self, request: web.Request) -> Obj:
        raw = await read_body(request)
        opts: Obj = {}
        if raw.strip():
            body = decode.decode_body(raw, request.content_type or "application/json")
            if not isinstance(body, dict):
                raise errors.bad_request("DeleteOptions must be a JSON object")
            opts = body
        q = request.query
        if q.get("gracePeriodSeconds"):
            try:
                opts["gracePeriodSeconds"] = int(q["gracePeriodSeconds"])
            except ValueError:
                raise errors.bad_request("invalid gracePeriodSeconds") from None
        if q.get("propagationPolicy"):
            opts["propagationPolicy"] = q["propagationPolicy"]
        if opts.get("propagationPolicy") is None and opts.get("orphanDependents") is not None:
            # the deprecated boolean means what the policies Orphan/Background mean
            opts["propagationPolicy"] = "Orphan" if opts["orphanDependents"] else "Background"
        policy = opts.get("propagationPolicy")
        if policy not in (None, "Orphan", "Background", "Foreground"):
            raise errors.bad_request(f'propagationPolicy: Unsupported value: "{policy}": '
                                     'supported values: "Foreground", "Background", "Orphan"')
        return opts

    async def delete(self, request: web.Request, rp: ResourcePath) -> web.Response:
        kind = rp.kind
        opts = await self._delete_options(request)
        obj, gone = await self.registry.delete(
            kind, rp.namespace, rp.name or "", grace_seconds=opts.get("gracePeriodSeconds"),
            preconditions=opts.get("preconditions"),
            dry_run=dry_run(request.query) or bool(opts.get("dryRun")),
            propagation=opts.get("propagationPolicy"))
        if gone and kind.kind not in RETURNS_DELETED_OBJECT:
            details: Obj = {"name": rp.name, "kind": kind.resource,
                            "uid": obj["metadata"].get("uid")}
            if kind.group:
                details["group"] = kind.group
            return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {},
                                  "status": "Success", "details": details})
        return self._respond(request, kind, obj, 200)

    async def delete_collection(self, request: web.Request, rp: ResourcePath) -> web.Response:
        kind = rp.kind
        opts = await self._delete_options(request)
        lopts = list_options(request.query, kind)
        res = await self.registry.list(kind, rp.namespace, labels=lopts.labels,
                                       fields=lopts.fields)
        deleted = []
        for obj in res.items:
            meta = obj["metadata"]
            try:
                out, _ = await self.registry.delete(
                    kind, meta.get("namespace"), meta["name"],
                    grace_seconds=opts.get("gracePeriodSeconds"),
                    propagation=opts.get("propagationPolicy"))
                deleted.append(out)
            except errors.StatusError as e:
                if e.reason != "NotFound":
                    raise
        return json_response({"kind": f"{kind.kind}List", "apiVersion": kind.api_version,
                              "metadata": {"resourceVersion": str(res.resource_version)},
                              "items": deleted})

    # --- binding -------------------------------------------------------------------------

    async def bind(self, request: web.Request, rp: ResourcePath) -> web.Response:
        """POST pods/{name}/binding (see apiserver/binding.py); answers 201 with a Status."""
        if request.method != "POST":
            raise errors.method_not_allowed("the server does not allow this method on the "
                                            "requested resource")
        body = decode.decode_body(await read_body(request), request.content_type)
        if not isinstance(body, dict):
            raise errors.bad_request("Binding must be a JSON object")
        await binding.bind(self.registry, rp.namespace or "", rp.name or "", body,
                           dry_run=dry_run(request.query))
        return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {},
                              "status": "Success", "code": 201}, 201)

    # --- scale ---------------------------------------------------------------------------

    @staticmethod
    def _scale_of(obj: Obj) -> Obj:
        meta = obj["metadata"]
        sel = from_label_selector((obj.get("spec") or {}).get("selector") or {}) or ()
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                                  "creationTimestamp") if k in meta},
                "spec": {"replicas": int((obj.get("spec") or {}).get("replicas", 0))},
                "status": {"replicas": int((obj.get("status") or {}).get("replicas", 0)),
                           "selector": format_selector(sel)}}

    async def scale(self, request: web.Request, rp: ResourcePath) -> web.Response:
        kind, name = rp.kind, rp.name or ""
        if request.method == "GET":
            obj = await self.registry.get(kind, rp.namespace, name)
            return json_response(self._scale_of(obj))
        raw = await read_body(request)
        ct = media_type(request.content_type)
        if request.method == "PUT":
            body = decode.decode_body(raw, ct)
            if not isinstance(body, dict):
                raise errors.bad_request("Scale must be a JSON object")

            def new_scale(cur_scale: Obj) -> Obj:
                return body
        elif request.method == "PATCH":
            scale_root = schema.root("V1Scale")

            def new_scale(cur_scale: Obj) -> Obj:
                return patching.apply_patch(cur_scale, raw, ct, scale_root)
        else:
            raise errors.method_not_allowed("the server does not allow this method on the "
                                            "requested resource")

        def mutate(cur: Obj | None) -> Obj:
            assert cur is not None
            scale = new_scale(self._scale_of(cur))
            replicas = (scale.get("spec") or {}).get("replicas", 0)
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                raise errors.invalid_object("Scale", "autoscaling", name, [errors.invalid(
                    "spec.replicas", replicas, "must be greater than or equal to 0")])
            want_rv = (scale.get("metadata") or {}).get("resourceVersion")
            if want_rv and want_rv != cur["metadata"]["resourceVersion"]:
                raise errors.conflict(kind.resource, kind.group, name)
            cur.setdefault("spec", {})["replicas"] = replicas
            return cur
        out, _ = await self.registry.patch(kind, rp.namespace, name, mutate)
        return json_response(self._scale_of(out))
