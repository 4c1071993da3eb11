"""Reading what an HTTP request asks for: body, query options, media types.

Small, pure-ish helpers shared by the resource and watch handlers, so query parsing and
its error messages exist once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import orjson
from aiohttp import web

from svcnet.api import errors
from svcnet.api.kinds import Kind
from svcnet.api.selectors import (FieldSelector, Selector, parse_field_selector,
                                  parse_label_selector)

MAX_BODY = 3 * 1024 * 1024  # kube-apiserver's default limit for JSON request bodies
JSON = "application/json"


async def read_body(request: web.Request) -> bytes:
    """The request body, refusing more than MAX_BODY with 413 before reading it all."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise errors.too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > MAX_BODY:
            raise errors.too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def media_type(content_type: str | None) -> str:
    return (content_type or JSON).split(";", 1)[0].strip().lower()


def wants_table(accept: str | None) -> bool:
    """True when the client asked for a meta.k8s.io Table (kubectl get)."""
    if not accept:
        return False
    for part in accept.split(","):
        params = {p.split("=", 1)[0].strip(): p.split("=", 1)[1].strip()
                  for p in part.split(";")[1:] if "=" in p}
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io":
            return True
    return False


def check_acceptable(accept: str | None) -> None:
    """406 when the client accepts nothing we can produce (we speak JSON only)."""
    if not accept:
        return
    for part in accept.split(","):
        mt = part.split(";", 1)[0].strip().lower()
        if mt in ("application/json", "*/*", "application/*", "application/yaml", ""):
            return
    raise errors.not_acceptable("only the following media types are accepted: application/json")


@dataclass(frozen=True)
class ListOptions:
    labels: Selector | None
    fields: FieldSelector
    limit: int
    continue_token: str
    resource_version: str
    watch: bool
    timeout_seconds: int | None
    bookmarks: bool
    include_object: str


def _int_param(q: Mapping[str, str], name: str) -> int | None:
    raw = q.get(name)
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except ValueError:
        raise errors.bad_request(f'invalid value for {name}: "{raw}": must be an integer') \
            from None
    if value < 0:
        raise errors.bad_request(f"{name} must not be negative")
    return value


def list_options(q: Mapping[str, str], kind: Kind) -> ListOptions:
    labels = parse_label_selector(q["labelSelector"]) if q.get("labelSelector") else None
    fields = parse_field_selector(q["fieldSelector"], kind.kind) if q.get("fieldSelector") else ()
    rvm = q.get("resourceVersionMatch", "")
    rv = q.get("resourceVersion", "")
    cont = q.get("continue", "")
    if rvm:
        if rvm not in ("NotOlderThan", "Exact"):
            raise errors.bad_request(f'resourceVersionMatch: Unsupported value: "{rvm}": '
                                     'supported values: "Exact", "NotOlderThan"')
        if not rv:
            raise errors.bad_request("resourceVersionMatch: Forbidden: resourceVersionMatch is "
                                     "forbidden unless resourceVersion is provided")
        if cont:
            raise errors.bad_request("resourceVersionMatch: Forbidden: resourceVersionMatch is "
                                     "forbidden when continue is provided")
    include = q.get("includeObject", "Metadata") or "Metadata"
    if include not in ("None", "Metadata", "Object"):
        raise errors.bad_request(f'includeObject: Unsupported value: "{include}"')
    return ListOptions(
        labels=labels, fields=fields, limit=_int_param(q, "limit") or 0,
        continue_token=cont, resource_version=rv,
        watch=q.get("watch", "") in ("true", "1", "True"),
        timeout_seconds=_int_param(q, "timeoutSeconds"),
        bookmarks=q.get("allowWatchBookmarks", "") in ("true", "1"),
        include_object=include)


def field_validation(q: Mapping[str, str]) -> str:
    """The fieldValidation mode; the server default is Warn, kubectl sends Strict."""
    mode = q.get("fieldValidation", "") or "Warn"
    if mode not in ("Ignore", "Warn", "Strict"):
        raise errors.bad_request(f"fieldValidation parameter unsupported: {mode}")
    return mode


def dry_run(q: Mapping[str, str]) -> bool:
    values = [v for k, v in q.items() if k == "dryRun"] if hasattr(q, "items") else []
    for v in values:
        if v != "All":
            raise errors.bad_request(f'dryRun: Unsupported value: "{v}": supported values: "All"')
    return bool(values)


def json_response(body: Any, status: int = 200, *, headers: Mapping[str, str] | None = None,
                  content_type: str = JSON) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type=content_type,
                        headers=headers)


def warning_headers(messages: list[str]) -> list[tuple[str, str]]:
    """`Warning: 299 - "..."` headers, as kube-apiserver sends and kubectl prints."""
    out = []
    for m in messages:
        esc = m.replace("\\", "\\\\").replace('"', '\\"')
        out.append(("Warning", f'299 - "{esc}"'))
    return out
