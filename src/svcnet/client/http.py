"""ApiClient over HTTPS: talks to svcnet's or any Kubernetes API server.

Built from a kubeconfig (server URL, CA, bearer token) or explicit values. Non-2xx answers
become `StatusError`s rebuilt from the server's Status body, so callers handle errors the
same way as with LocalClient.
"""

from __future__ import annotations

import base64
import ssl
from pathlib import Path
from typing import Any, AsyncIterator
from urllib.parse import urlencode

import aiohttp
import orjson
import yaml

from svcnet.api import errors
from svcnet.api.kinds import Kind
from svcnet.client.api import PATCH_TYPES, Obj, WatchEvent


def _status_error(code: int, body: bytes) -> errors.StatusError:
    try:
        st = orjson.loads(body)
        if isinstance(st, dict) and st.get("kind") == "Status":
            return errors.StatusError(int(st.get("code") or code), st.get("reason", ""),
                                      st.get("message", ""), st.get("details"))
    except orjson.JSONDecodeError:
        pass
    return errors.StatusError(code, "", body.decode(errors="replace")[:500])


class HttpClient:
    def __init__(self, server: str, *, token: str = "", ca_pem: bytes | None = None,
                 insecure: bool = False) -> None:
        self.server = server.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        if insecure:
            self.ssl: ssl.SSLContext | bool = False
        else:
            ctx = ssl.create_default_context()
            if ca_pem:
                ctx.load_verify_locations(cadata=ca_pem.decode())
            self.ssl = ctx
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_kubeconfig(cls, path: str | Path, context: str | None = None) -> "HttpClient":
        """Server, CA and token of the kubeconfig's (current) context. Raises OSError if
        the file cannot be read and ValueError, naming what is missing, if it is not a
        kubeconfig this client can use (client certificates are not supported)."""
        try:
            cfg = yaml.safe_load(Path(path).read_text())
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            problem = getattr(e, "problem", None) or "parse error"
            raise ValueError(f"{path}: not valid YAML{where}: {problem}") from None

        def named(section: str, name: object) -> dict[str, Any]:
            for item in cfg.get(section) or []:
                if isinstance(item, dict) and item.get("name") == name:
                    body = item.get(section[:-1])
                    if isinstance(body, dict):
                        return body
            raise ValueError(f"{path}: no {section[:-1]} named {name!r}")
        if not isinstance(cfg, dict):
            raise ValueError(f"{path}: not a kubeconfig")
        ctx_name = context or cfg.get("current-context")
        if not ctx_name:
            raise ValueError(f"{path}: no current-context")
        ctx = named("contexts", ctx_name)
        cluster = named("clusters", ctx.get("cluster"))
        user = named("users", ctx.get("user"))
        if not cluster.get("server"):
            raise ValueError(f"{path}: cluster {ctx.get('cluster')!r} has no server")
        ca: bytes | None = None
        if cluster.get("certificate-authority-data"):
            try:
                ca = base64.b64decode(str(cluster["certificate-authority-data"]),
                                      validate=True)
            except ValueError:
                raise ValueError(f"{path}: certificate-authority-data is not base64") \
                    from None
        elif cluster.get("certificate-authority"):
            ca = Path(cluster["certificate-authority"]).read_bytes()
        return cls(str(cluster["server"]), token=str(user.get("token") or ""), ca_pem=ca,
                   insecure=bool(cluster.get("insecure-skip-tls-verify")))

    def _s(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self.headers, connector=aiohttp.TCPConnector(ssl=self.ssl, limit=64))
        return self._session

    @staticmethod
    def _path(kind: Kind, namespace: str | None, name: str = "", sub: str = "") -> str:
        path = kind.base_path(namespace)
        if name:
            path += f"/{name}"
        if sub:
            path += f"/{sub}"
        return path

    async def _request(self, method: str, path: str, *, body: Any = None,
                       content_type: str = "application/json",
                       query: dict[str, str] | None = None) -> Any:
        url = self.server + path + ("?" + urlencode(query) if query else "")
        data = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": content_type} if data is not None else {}
        async with self._s().request(method, url, data=data, headers=headers) as r:
            raw = await r.read()
            if r.status >= 300:
                raise _status_error(r.status, raw)
            return orjson.loads(raw) if raw else None

    async def get(self, kind: Kind, namespace: str | None, name: str) -> Obj:
        out: Obj = await self._request("GET", self._path(kind, namespace, name))
        return out

    async def list(self, kind: Kind, namespace: str | None = None, *,
                   label_selector: str = "", field_selector: str = "") -> tuple[list[Obj], str]:
        query = {k: v for k, v in (("labelSelector", label_selector),
                                   ("fieldSelector", field_selector)) if v}
        out = await self._request("GET", self._path(kind, namespace), query=query)
        return out["items"], out["metadata"].get("resourceVersion", "")

    async def watch(self, kind: Kind, namespace: str | None, resource_version: str, *,
                    label_selector: str = "", field_selector: str = "",
                    timeout_seconds: int | None = None) -> AsyncIterator[WatchEvent]:
        query = {"watch": "true", "allowWatchBookmarks": "true",
                 "resourceVersion": resource_version}
        if label_selector:
            query["labelSelector"] = label_selector
        if field_selector:
            query["fieldSelector"] = field_selector
        if timeout_seconds is not None:
            query["timeoutSeconds"] = str(timeout_seconds)
        url = self.server + self._path(kind, namespace) + "?" + urlencode(query)
        async with self._s().get(url, timeout=aiohttp.ClientTimeout(total=None,
                                                                    sock_read=None)) as r:
            if r.status >= 300:
                raise _status_error(r.status, await r.read())
            async for line in r.content:
                if not line.strip():
                    continue
                ev = orjson.loads(line)
                if ev["type"] == "ERROR":
                    st = ev["object"]
                    raise errors.StatusError(int(st.get("code", 500)), st.get("reason", ""),
                                             st.get("message", ""))
                yield WatchEvent(ev["type"], ev["object"])

    async def create(self, kind: Kind, namespace: str | None, obj: Obj, *,
                     subresource: str = "", name: str = "") -> Obj:
        path = self._path(kind, namespace, name, subresource) if subresource else \
            self._path(kind, namespace)
        out: Obj = await self._request("POST", path, body=obj)
        return out

    async def update(self, kind: Kind, namespace: str | None, obj: Obj, *,
                     subresource: str = "") -> Obj:
        out: Obj = await self._request(
            "PUT", self._path(kind, namespace, obj["metadata"]["name"], subresource), body=obj)
        return out

    async def patch(self, kind: Kind, namespace: str | None, name: str, patch: Any, *,
                    patch_type: str = "merge", subresource: str = "") -> Obj:
        out: Obj = await self._request("PATCH", self._path(kind, namespace, name, subresource),
                                       body=patch, content_type=PATCH_TYPES[patch_type])
        return out

    async def delete(self, kind: Kind, namespace: str | None, name: str, *,
                     grace_seconds: int | None = None, uid: str | None = None,
                     propagation_policy: str | None = None) -> None:
        opts: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_seconds is not None:
            opts["gracePeriodSeconds"] = grace_seconds
        if uid:
            opts["preconditions"] = {"uid": uid}
        if propagation_policy:
            opts["propagationPolicy"] = propagation_policy
        await self._request("DELETE", self._path(kind, namespace, name), body=opts)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
