"""The API server's checks for exec/attach/portforward (kube-apiserver's wording), the agent
URL it builds, discovery of the stream subresources and the 403 message for them."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request

from svcnet.api import errors
from svcnet.apiserver import discovery
from svcnet.apiserver.nodeagent import agent_address
from svcnet.apiserver.streaming import (agent_path, is_websocket, require_host,
                                        requested_protocols, stream_container)


def pod(containers: list[str], init: list[str] = (), node: str = "n1",  # type: ignore[assignment]
        ephemeral: list[str] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    spec: dict[str, Any] = {"containers": [{"name": c} for c in containers]}
    if init:
        spec["initContainers"] = [{"name": c} for c in init]
    if ephemeral:
        spec["ephemeralContainers"] = [{"name": c} for c in ephemeral]
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": "p", "namespace": "default"}, "spec": spec}


def _bad(fn: Any, *args: Any) -> str:
    with pytest.raises(errors.StatusError) as e:
        fn(*args)
    assert e.value.code == 400 and e.value.reason == "BadRequest"
    return e.value.message


def test_container_is_defaulted_or_checked() -> None:
    assert stream_container(pod(["a"]), "") == "a"
    assert stream_container(pod(["a", "b"], ["i"]), "b") == "b"
    assert stream_container(pod(["a"], ["i"]), "i") == "i"
    assert stream_container(pod(["a"], ephemeral=["dbg"]), "dbg") == "dbg"
    assert _bad(stream_container, pod(["a"]), "x") == "container x is not valid for pod p"
    assert _bad(stream_container, pod(["a", "b"]), "") == \
        "a container name must be specified for pod p, choose one of: [a b]"
    assert _bad(stream_container, pod(["a", "b"], ["i", "j"]), "") == (
        "a container name must be specified for pod p, choose one of: [a b] or one of the "
        "init containers: [i j]")
    assert _bad(stream_container, pod([]), "") == "a container name must be specified for pod p"


def test_pod_must_have_a_host() -> None:
    assert require_host(pod(["a"])) == "n1"
    assert _bad(require_host, pod(["a"], node="")) == "pod p does not have a host assigned"


def test_agent_paths_use_the_kubelet_layout() -> None:
    q = {"command": ["sh", "-c", "echo hi"], "container": ["c"], "stdin": ["true"],
         "stdout": ["true"], "tty": ["false"]}
    assert agent_path("exec", "ns 1", "p", q) == (
        "/exec/ns%201/p/c", [("command", "sh"), ("command", "-c"), ("command", "echo hi"),
                             ("stdin", "1"), ("stdout", "1")])
    assert agent_path("attach", "default", "p", {"container": ["c"], "stdout": ["1"]}) == \
        ("/attach/default/p/c", [("stdout", "1")])
    assert agent_path("portforward", "default", "p", {"ports": ["80", "81"]}) == \
        ("/portForward/default/p", [("ports", "80"), ("ports", "81")])
    assert agent_path("portforward", "default", "p", {}) == ("/portForward/default/p", [])


def test_agent_path_refuses_what_the_kubelet_would() -> None:
    assert _bad(agent_path, "exec", "d", "p", {"container": ["c"], "stdout": ["1"]}) == \
        "you must specify at least one command for the container"
    assert _bad(agent_path, "attach", "d", "p", {"container": ["c"]}) == \
        "you must specify at least 1 of stdin, stdout, stderr"


def test_websocket_request_headers() -> None:
    req = make_mocked_request("GET", "/x", headers={
        "Upgrade": "websocket", "Sec-WebSocket-Protocol": "v5.channel.k8s.io, v4.channel.k8s.io"})
    assert is_websocket(req)
    assert requested_protocols(req) == ["v5.channel.k8s.io", "v4.channel.k8s.io"]
    spdy = make_mocked_request("POST", "/x", headers={"Upgrade": "SPDY/3.1"})
    assert not is_websocket(spdy) and requested_protocols(spdy) == []


def test_agent_address_of_a_node() -> None:
    node = {"status": {"addresses": [{"type": "Hostname", "address": "n1"},
                                     {"type": "InternalIP", "address": "172.30.0.11"}],
                       "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}}
    assert agent_address(node) == ("172.30.0.11", 10250)
    assert agent_address({}) == ("", None)
    assert agent_address({"status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": "x"}}}}) \
        == ("", None)


def test_discovery_lists_the_stream_subresources() -> None:
    doc = discovery.resource_list("", "v1")
    assert doc is not None
    res = {r["name"]: r for r in doc["resources"]}
    for sub, kind in (("exec", "PodExecOptions"), ("attach", "PodAttachOptions"),
                      ("portforward", "PodPortForwardOptions")):
        assert res[f"pods/{sub}"]["kind"] == kind
        assert res[f"pods/{sub}"]["verbs"] == ["create", "get"]
    pods = next(r for r in discovery.aggregated(True)["items"][0]["versions"][0]["resources"]
                if r["resource"] == "pods")
    assert {"exec", "attach", "portforward", "log"} <= \
        {s["subresource"] for s in pods["subresources"]}


def test_forbidden_message_names_the_subresource_as_kube_does() -> None:
    e = errors.forbidden_request("system:node:n1", "create", "pods", "", "default", "p", "exec")
    assert e.message == ('pods "p" is forbidden: User "system:node:n1" cannot create resource '
                         '"pods/exec" in API group "" in the namespace "default"')
    e = errors.forbidden_request("u", "get", "deployments", "apps", "ns", "d", "scale")
    assert e.message.startswith('deployments.apps "d" is forbidden: User "u" cannot get '
                                'resource "deployments/scale" in API group "apps"')
