"""Cluster IP and node port allocation through the API (issue 3), server in-process."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from typing import Any

from conftest import InProcess

SVCS = "/api/v1/namespaces/default/services"
MERGE = {"Content-Type": "application/merge-patch+json"}


async def _call(s: InProcess, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None) -> tuple[int, Any]:
    h = dict(s.headers, **(headers or {}))
    data = json.dumps(body) if body is not None else None
    if data is not None:
        h.setdefault("Content-Type", "application/json")
    resp = await s.client.request(method, path, data=data, headers=h)  # type: ignore[attr-defined]
    text = await resp.text()
    return resp.status, json.loads(text) if text else None


def _svc(name: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"selector": {"app": name}, "ports": [{"name": "http", "port": 80}]}
    body.update(spec)
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": body}


def _state(s: InProcess) -> tuple[list[str], list[int]]:
    st = s.api.allocation.state()  # type: ignore[attr-defined]
    return st["clusterIPs"]["allocated"], st["nodePorts"]["allocated"]


async def test_taken_ip_and_port_rejected_until_released(inproc: InProcess) -> None:
    code, a = await _call(inproc, "POST", SVCS, _svc("a", type="NodePort", clusterIP="10.97.97.97",
                                                     ports=[{"port": 80, "nodePort": 30080}]))
    assert code == 201 and a["spec"]["clusterIPs"] == ["10.97.97.97"]
    code, st = await _call(inproc, "POST", SVCS, _svc("b", type="NodePort",
                                                      ports=[{"port": 80, "nodePort": 30080}]))
    assert code == 422
    assert st["message"] == ('Service "b" is invalid: spec.ports[0].nodePort: Invalid value: '
                             '30080: provided port is already allocated')
    assert st["details"]["causes"] == [{"reason": "FieldValueInvalid", "field":
                                        "spec.ports[0].nodePort", "message":
                                        "Invalid value: 30080: provided port is already allocated"}]
    code, st = await _call(inproc, "POST", SVCS, _svc("c", clusterIP="10.97.97.97"))
    assert code == 422 and st["details"]["causes"][0]["message"] == (
        'Invalid value: []string{"10.97.97.97"}: failed to allocate IP 10.97.97.97: provided IP '
        'is already allocated')
    code, st = await _call(inproc, "POST", SVCS, _svc("d", clusterIP="192.168.1.1"))
    assert code == 422 and "is not in the valid range. The range of valid IPs is 10.96.0.0/12" \
        in st["message"]
    code, st = await _call(inproc, "POST", SVCS, _svc("e", type="NodePort",
                                                      ports=[{"port": 80, "nodePort": 8080}]))
    assert code == 422 and st["message"].endswith(
        "8080: provided port is not in the valid range. The range of valid ports is 30000-32767")
    ips, ports = _state(inproc)
    assert "10.97.97.97" in ips and ports == [30080]  # failed creates reserved nothing
    assert (await _call(inproc, "DELETE", f"{SVCS}/a"))[0] == 200
    assert _state(inproc) == ([], [])
    assert (await _call(inproc, "POST", SVCS, _svc("b", type="NodePort", ports=[
        {"port": 80, "nodePort": 30080}])))[0] == 201
    assert (await _call(inproc, "POST", SVCS, _svc("c", clusterIP="10.97.97.97")))[0] == 201


async def test_automatic_picks_use_upper_bands(inproc: InProcess) -> None:
    code, svc = await _call(inproc, "POST", SVCS, _svc("auto", type="NodePort", ports=[
        {"name": "a", "port": 80}, {"name": "b", "port": 443}]))
    assert code == 201
    ip = ipaddress.ip_address(svc["spec"]["clusterIP"])
    assert ip in ipaddress.ip_network("10.96.0.0/12")
    assert int(ip) - int(ipaddress.ip_address("10.96.0.0")) > 256  # above the static band
    nps = [p["nodePort"] for p in svc["spec"]["ports"]]
    assert len(set(nps)) == 2 and all(30086 <= n <= 32767 for n in nps)
    assert svc["spec"]["ipFamilies"] == ["IPv4"] and svc["spec"]["ipFamilyPolicy"] == "SingleStack"
    code, lb = await _call(inproc, "POST", SVCS, _svc("lb", type="LoadBalancer",
                                                      externalTrafficPolicy="Local"))
    assert code == 201 and lb["spec"]["healthCheckNodePort"] >= 30000
    assert lb["spec"]["allocateLoadBalancerNodePorts"] is True
    assert lb["status"] == {"loadBalancer": {}}
    # TCP and UDP on the same port may share one node port within one Service
    code, dns = await _call(inproc, "POST", SVCS, _svc("dns", type="NodePort", ports=[
        {"name": "udp", "port": 53, "protocol": "UDP", "nodePort": 30053},
        {"name": "tcp", "port": 53, "protocol": "TCP", "nodePort": 30053}]))
    assert code == 201
    await _call(inproc, "DELETE", f"{SVCS}/dns")
    assert 30053 not in _state(inproc)[1]


async def test_type_changes_allocate_and_release(inproc: InProcess) -> None:
    """ClusterIP -> ExternalName -> ClusterIP -> NodePort -> ExternalName (conformance)."""
    code, svc = await _call(inproc, "POST", SVCS, _svc("t"))
    ip1 = svc["spec"]["clusterIP"]
    assert _state(inproc) == ([ip1], [])

    code, svc = await _call(inproc, "PATCH", f"{SVCS}/t", {"spec": {
        "type": "ExternalName", "externalName": "db.example.com"}}, MERGE)
    assert code == 200, svc
    assert "clusterIP" not in svc["spec"] and "clusterIPs" not in svc["spec"]
    assert "ipFamilies" not in svc["spec"]
    assert _state(inproc) == ([], [])

    code, svc = await _call(inproc, "PATCH", f"{SVCS}/t", {"spec": {
        "type": "ClusterIP", "externalName": None}}, MERGE)
    assert code == 200, svc
    ip2 = svc["spec"]["clusterIP"]
    assert ip2 and _state(inproc) == ([ip2], [])

    code, svc = await _call(inproc, "PATCH", f"{SVCS}/t", {"spec": {"type": "NodePort"}}, MERGE)
    assert code == 200, svc
    np = svc["spec"]["ports"][0]["nodePort"]
    assert svc["spec"]["clusterIP"] == ip2 and svc["spec"]["externalTrafficPolicy"] == "Cluster"
    assert _state(inproc) == ([ip2], [np])

    code, svc = await _call(inproc, "PATCH", f"{SVCS}/t", {"spec": {
        "type": "ExternalName", "externalName": "db.example.com"}}, MERGE)
    assert code == 200, svc
    assert "nodePort" not in svc["spec"]["ports"][0] and "clusterIP" not in svc["spec"]
    assert "externalTrafficPolicy" not in svc["spec"]
    assert _state(inproc) == ([], [])


async def test_update_keeps_allocations_and_rejects_ip_change(inproc: InProcess) -> None:
    code, svc = await _call(inproc, "POST", SVCS, _svc("k", type="NodePort"))
    ip, np = svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["nodePort"]
    put = _svc("k", type="NodePort")  # a PUT without the allocated values keeps them
    put["metadata"]["resourceVersion"] = svc["metadata"]["resourceVersion"]
    code, svc = await _call(inproc, "PUT", f"{SVCS}/k", put)
    assert code == 200 and svc["spec"]["clusterIP"] == ip
    assert svc["spec"]["ports"][0]["nodePort"] == np
    code, st = await _call(inproc, "PATCH", f"{SVCS}/k", {"spec": {"clusterIP": "10.96.5.5"}},
                           MERGE)
    assert code == 422 and "may not change once set" in st["message"]
    # switching the node port releases the old one once stored
    code, svc = await _call(inproc, "PATCH", f"{SVCS}/k", {"spec": {"ports": [
        {"name": "http", "port": 80, "nodePort": 30111}]}}, MERGE)
    assert code == 200 and _state(inproc) == ([ip], [30111])
    # NodePort -> ClusterIP drops the node port
    code, svc = await _call(inproc, "PATCH", f"{SVCS}/k", {"spec": {"type": "ClusterIP"}}, MERGE)
    assert code == 200 and "nodePort" not in svc["spec"]["ports"][0]
    assert _state(inproc) == ([ip], [])


async def test_dry_run_reserves_nothing(inproc: InProcess) -> None:
    code, svc = await _call(inproc, "POST", SVCS + "?dryRun=All",
                            _svc("dry", type="NodePort", clusterIP="10.96.9.9"))
    assert code == 201 and svc["spec"]["ports"][0]["nodePort"]
    assert _state(inproc) == ([], [])
    assert (await _call(inproc, "GET", f"{SVCS}/dry"))[0] == 404


async def test_concurrent_creates_get_distinct_allocations(inproc: InProcess) -> None:
    n, clients = 600, 6

    async def client(k: int) -> None:
        for i in range(k, n, clients):
            code, body = await _call(inproc, "POST", SVCS, _svc(f"c{i}", type="NodePort"))
            assert code == 201, body

    await asyncio.gather(*(client(k) for k in range(clients)))
    _, lst = await _call(inproc, "GET", SVCS)
    ips = [s["spec"]["clusterIP"] for s in lst["items"]]
    ports = [p["nodePort"] for s in lst["items"] for p in s["spec"]["ports"]]
    assert len(ips) == n and len(set(ips)) == n
    assert len(ports) == n and len(set(ports)) == n
    state_ips, state_ports = _state(inproc)
    assert sorted(state_ips) == sorted(ips) and sorted(state_ports) == sorted(ports)
