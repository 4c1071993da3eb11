"""`GET pods/{name}/log`: stream a container's log from the agent of the Pod's node.

As kube-apiserver does with kubelets: find the Pod's node and its agent endpoint
(InternalIP + status.daemonEndpoints.kubeletEndpoint.Port), check the container name and
state, then proxy the agent's `/containerLogs/...` stream to the client. Errors read as
kubectl users know them (`a container name must be specified for pod x, choose one of:
[a b]`, `container "c" in pod "p" is waiting to start: ContainerCreating`).
"""

from __future__ import annotations

from typing import Any, Callable

import aiohttp
from aiohttp import web

from svcnet.api import errors
from svcnet.apiserver.nodeagent import agent_endpoint
from svcnet.apiserver.paths import ResourcePath
from svcnet.apiserver.registry import Registry

_PASS = ("follow", "previous", "tailLines", "timestamps")


def pick_container(pod: dict[str, Any], requested: str) -> str:
    """The container to read, or a 400 naming the choices (kube's wording)."""
    name = pod["metadata"]["name"]
    names = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    inits = [c["name"] for c in (pod.get("spec") or {}).get("initContainers") or []]
    if not requested:
        if len(names) == 1:
            return names[0]
        raise errors.bad_request(f"a container name must be specified for pod {name}, choose "
                                 f"one of: [{' '.join(names)}]" +
                                 (f" or one of the init containers: [{' '.join(inits)}]"
                                  if inits else ""))
    if requested not in names + inits:
        raise errors.bad_request(f"container {requested} is not valid for pod {name}")
    return requested


def _waiting_reason(pod: dict[str, Any], container: str) -> str | None:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    for cs in statuses:
        if cs.get("name") == container:
            state = cs.get("state") or {}
            if "waiting" in state and not cs.get("lastState"):
                return str(state["waiting"].get("reason") or "Waiting")
            return None
    return "ContainerCreating"


async def serve_pod_log(request: web.Request, registry: Registry,
                        node_token: Callable[[str], str | None],
                        rp: ResourcePath) -> web.StreamResponse:
    pod = await registry.get(rp.kind, rp.namespace, rp.name or "")
    container = pick_container(pod, request.query.get("container", ""))
    name = pod["metadata"]["name"]
    node_name = (pod.get("spec") or {}).get("nodeName")
    reason = _waiting_reason(pod, container)
    if not node_name or (reason and request.query.get("previous") not in ("true", "1")):
        raise errors.bad_request(f'container "{container}" in pod "{name}" is waiting to '
                                 f"start: {reason or 'ContainerCreating'}")
    agent = await agent_endpoint(registry, node_token, node_name, "logs")
    token = agent.token
    query = {k: request.query[k] for k in _PASS if k in request.query}
    url = f"{agent.base_url}/containerLogs/{rp.namespace}/{name}/{container}"
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
    async with aiohttp.ClientSession(timeout=timeout) as s:
        try:
            upstream = await s.get(url, params=query,
                                   headers={"Authorization": f"Bearer {token}"})
        except aiohttp.ClientError as e:
            raise errors.StatusError(503, "ServiceUnavailable",
                                     f"the agent of node {node_name} cannot be reached: {e}") \
                from None
        async with upstream:
            if upstream.status != 200:
                text = (await upstream.text()).strip()
                raise errors.StatusError(400 if upstream.status < 500 else 502,
                                         "BadRequest" if upstream.status < 500 else "BadGateway",
                                         text or f"agent answered {upstream.status}")
            resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
            await resp.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await resp.write(chunk)
            except (ConnectionResetError, ConnectionError):
                pass
            return resp
