"""Where a node's agent listens, and the token the API server presents to it.

As kube-apiserver does with kubelets: the address is the Node's InternalIP and the port its
`status.daemonEndpoints.kubeletEndpoint.Port`; the API server authenticates with the node's
own token (the agent accepts nothing else). Used by pods/log, exec, attach, portforward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from svcnet.api import errors
from svcnet.api.kinds import kind_for
from svcnet.apiserver.registry import Registry

NODES = kind_for("", "nodes")


@dataclass(frozen=True)
class AgentEndpoint:
    node: str
    base_url: str  # http://IP:PORT
    token: str


def agent_address(node: dict[str, Any]) -> tuple[str, int | None]:
    """(InternalIP, agent port) of a Node object; "" / None when not reported."""
    st = node.get("status") or {}
    ip = next((a.get("address", "") for a in st.get("addresses") or []
               if a.get("type") == "InternalIP"), "")
    port = ((st.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    return str(ip or ""), int(port) if isinstance(port, int) and port > 0 else None


async def agent_endpoint(registry: Registry, node_token: Callable[[str], str | None],
                         node_name: str, purpose: str) -> AgentEndpoint:
    """The agent of `node_name`, or a 503 saying why it cannot be reached for `purpose`."""
    node = await registry.get(NODES, None, node_name)
    ip, port = agent_address(node)
    token = node_token(node_name)
    if not ip or port is None or token is None:
        raise errors.StatusError(503, "ServiceUnavailable",
                                 f"the agent of node {node_name} cannot be reached for "
                                 f"{purpose}")
    host = f"[{ip}]" if ":" in ip else ip
    return AgentEndpoint(node_name, f"http://{host}:{port}", token)
