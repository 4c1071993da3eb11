"""Services from the tutorials with real kubectl, and allocation under load and SIGKILL
(issue 3, acceptance 1, 2 and 5)."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from conftest import Kubectl, ServerProcess, kubectl_for

pytestmark = pytest.mark.e2e
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _rows(out: str) -> dict[str, list[str]]:
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    return {line.split()[0]: line.split() for line in lines[1:]}


def test_tutorial_services_print_like_kubernetes(server: ServerProcess, tmp_path: Path) -> None:
    k: Kubectl = kubectl_for(server, tmp_path)
    for f in ("redis-clusterip.yaml", "nodeport-fixed.yaml", "nodeport-auto.yaml",
              "no-selector.yaml", "externalname.yaml", "headless.yaml", "multi-port.yaml",
              "session-affinity.yaml", "loadbalancer.yaml"):
        k("apply", "-f", str(EXAMPLES / f))
    rows = _rows(k("get", "svc"))
    assert rows["kubernetes"][1:5] == ["ClusterIP", "10.96.0.1", "<none>", "443/TCP"]
    assert rows["redis"][1:5] == ["ClusterIP", "10.97.97.97", "<none>", "6379/TCP"]
    assert rows["my-nodeport"][1] == "NodePort" and rows["my-nodeport"][4] == "80:30080/TCP"
    auto = re.fullmatch(r"80:(\d+)/TCP", rows["my-auto-nodeport"][4])
    assert auto and 30000 <= int(auto.group(1)) <= 32767
    assert rows["my-external-db"][1] == "ClusterIP" and rows["my-external-db"][4] == "80/TCP"
    assert rows["nginx"][2] == "None"
    assert rows["my-multiport"][4] == "80/TCP,443/TCP"
    assert rows["my-lb"][1] == "LoadBalancer" and rows["my-lb"][3] == "<pending>"
    assert re.fullmatch(r"80:3\d{4}/TCP", rows["my-lb"][4])
    for name in ("my-nodeport", "my-auto-nodeport", "my-external-db", "my-multiport", "sticky"):
        assert re.fullmatch(r"10\.(9[6-9]|10[0-9]|11[01])\.\d+\.\d+", rows[name][2]), rows[name]
    prod = _rows(k("get", "svc", "-n", "prod"))
    assert prod["my-service"][1:5] == ["ExternalName", "<none>", "my.database.example.com",
                                       "<none>"]
    sticky = json.loads(k("get", "svc", "sticky", "-o", "json"))
    assert sticky["spec"]["sessionAffinity"] == "ClientIP"
    assert sticky["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    ep = k("get", "endpoints", "my-external-db").splitlines()[1].split()
    assert ep[1] == "192.0.2.42:9376"
    kube_ep = k("get", "endpoints", "kubernetes").splitlines()[1].split()
    assert kube_ep[1] == f"127.0.0.1:{server.port}"

    # a second Service asking for a taken nodePort / clusterIP is refused, until released
    second = (EXAMPLES / "nodeport-fixed.yaml").read_text().replace("my-nodeport", "second")
    res = k.run("apply", "-f", "-", input=second, check=False)
    assert res.returncode == 1
    assert res.stderr.strip() == ('The Service "second" is invalid: spec.ports[0].nodePort: '
                                  'Invalid value: 30080: provided port is already allocated')
    redis2 = (EXAMPLES / "redis-clusterip.yaml").read_text().replace("name: redis",
                                                                      "name: redis2")
    res = k.run("apply", "-f", "-", input=redis2, check=False)
    assert "provided IP is already allocated" in res.stderr
    k("delete", "svc", "my-nodeport", "redis")
    assert k("apply", "-f", "-", input=second).strip() == "service/second created"
    assert k("apply", "-f", "-", input=redis2).strip() == "service/redis2 created"


async def _create_many(srv: ServerProcess, prefix: str, n: int, clients: int,
                       acked: list[dict[str, Any]]) -> None:
    """Create n Services from `clients` concurrent HTTPS clients; even ones NodePort.
    Stops quietly when the server goes away (it may be killed mid-run)."""
    ctx = ssl.create_default_context(cafile=str(srv.data_dir / "pki" / "ca.crt"))
    base = f"{srv.url}/api/v1/namespaces/default/services"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {srv.token}"},
                                     connector=aiohttp.TCPConnector(ssl=ctx)) as s:
        async def client(k: int) -> None:
            for i in range(k, n, clients):
                body = {"metadata": {"name": f"{prefix}-{i}"}, "spec": {
                    "type": "NodePort" if i % 2 == 0 else "ClusterIP",
                    "selector": {"app": "x"}, "ports": [{"port": 80}]}}
                try:
                    async with s.post(base, json=body) as r:
                        assert r.status == 201, await r.text()
                        acked.append(await r.json())
                except (aiohttp.ClientError, ConnectionError):
                    return
        await asyncio.gather(*(client(k) for k in range(clients)))


def _allocator_state(srv: ServerProcess) -> Any:
    import urllib.request
    ctx = ssl.create_default_context(cafile=str(srv.data_dir / "pki" / "ca.crt"))
    req = urllib.request.Request(f"{srv.url}/debug/allocators",
                                 headers={"Authorization": f"Bearer {srv.token}"})
    with urllib.request.urlopen(req, context=ctx) as r:
        return json.loads(r.read())


def _list_services(srv: ServerProcess) -> list[dict[str, Any]]:
    import urllib.request
    ctx = ssl.create_default_context(cafile=str(srv.data_dir / "pki" / "ca.crt"))
    req = urllib.request.Request(f"{srv.url}/api/v1/services",
                                 headers={"Authorization": f"Bearer {srv.token}"})
    with urllib.request.urlopen(req, context=ctx) as r:
        items: list[dict[str, Any]] = json.loads(r.read())["items"]
        return items


def _check_state_matches(srv: ServerProcess) -> list[dict[str, Any]]:
    svcs = _list_services(srv)
    ips = sorted(s["spec"]["clusterIP"] for s in svcs)
    ports = sorted(p["nodePort"] for s in svcs for p in s["spec"]["ports"] if p.get("nodePort"))
    assert len(set(ips)) == len(ips) and len(set(ports)) == len(ports)
    state = _allocator_state(srv)
    assert sorted(state["clusterIPs"]["allocated"]) == ips
    assert sorted(state["nodePorts"]["allocated"]) == ports
    return svcs


def test_5000_concurrent_creates_then_sigkill(server: ServerProcess) -> None:
    acked: list[dict[str, Any]] = []
    asyncio.run(_create_many(server, "load", 5000, 8, acked))
    assert len(acked) == 5000
    svcs = _check_state_matches(server)
    assert len(svcs) == 5001  # plus the kubernetes Service

    # kill -9 in the middle of a second burst; after restart the state matches the store
    more: list[dict[str, Any]] = []

    async def burst_and_kill() -> None:
        task = asyncio.create_task(_create_many(server, "burst", 3000, 8, more))
        while len(more) < 300:
            await asyncio.sleep(0.01)
        server.stop(signal.SIGKILL)
        await task
    asyncio.run(burst_and_kill())
    server.start()
    svcs = _check_state_matches(server)
    names = {s["metadata"]["name"] for s in svcs}
    assert all(a["metadata"]["name"] in names for a in more) and len(more) >= 300

