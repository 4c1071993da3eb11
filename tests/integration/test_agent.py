"""The agent's control loop against the in-process API server, with a fake sandbox and
runtime (the real ones are exercised in tests/e2e/test_cluster.py): registration, status
reporting, an exhausted pod range, and graceful deletion."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Mapping

from conftest import InProcess, eventually

from svcnet.api.errors import StatusError
from svcnet.api.kinds import by_resource
from svcnet.client.local import LocalClient
from svcnet.node.agent import Agent
from svcnet.node.ipam import PodIPAM
from svcnet.node.plan import plan_pod
from svcnet.node.images import ImageCatalog
from svcnet.node.types import NodeConfig, PodPlan, Sandbox

PODS = by_resource("", "v1", "pods")
NODES = by_resource("", "v1", "nodes")
EVENTS = by_resource("", "v1", "events")


class FakeSandboxes:
    def __init__(self) -> None:
        self.live: dict[str, Sandbox] = {}

    async def ensure_node_network(self) -> None:
        return None

    async def create(self, plan: PodPlan, ip: str) -> Sandbox:
        return self.live.setdefault(plan.uid, Sandbox(plan.uid, f"ns-{plan.uid[:8]}", ip))

    async def remove(self, pod_uid: str) -> None:
        self.live.pop(pod_uid, None)

    async def list(self) -> list[Sandbox]:
        return list(self.live.values())


class FakeRuntime:
    """Reports every synced pod Running and Ready; records kills."""

    def __init__(self) -> None:
        self.running: set[str] = set()
        self.killed: list[tuple[str, int]] = []

    async def start(self) -> None:
        return None

    async def sync(self, plan: PodPlan, sandbox: Sandbox, *,
                   probes: Mapping[str, Any] | None = None,
                   api_status: Mapping[str, Any] | None = None) -> dict[str, Any]:
        self.running.add(plan.uid)
        return {"phase": "Running", "podIP": sandbox.ip, "podIPs": [{"ip": sandbox.ip}],
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": c.name, "ready": True, "restartCount": 0,
                                       "image": c.image, "imageID": "",
                                       "state": {"running": {}}} for c in plan.containers]}

    async def kill(self, pod_uid: str, grace_seconds: int) -> None:
        self.killed.append((pod_uid, grace_seconds))
        self.running.discard(pod_uid)

    def running_pods(self) -> set[str]:
        return set(self.running)

    async def forget(self, pod_uid: str) -> None:
        self.running.discard(pod_uid)

    async def close(self) -> None:
        return None


def _pod(name: str, node: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {
        "nodeName": node, "terminationGracePeriodSeconds": 7,
        "containers": [{"name": "c", "image": "registry.k8s.io/serve_hostname"}]}}


async def test_agent_registers_runs_pods_and_reports_exhausted_range(
        inproc: InProcess, tmp_path: Path) -> None:
    assert PODS and NODES and EVENTS
    client = LocalClient(inproc.api.registry)  # type: ignore[attr-defined]
    # a /30 leaves one pod address (the first is the bridge's)
    node = NodeConfig(name="n1", node_ip="172.30.0.11", pod_cidr="10.244.9.0/30",
                      state_dir=tmp_path / "n1")
    runtime = FakeRuntime()
    agent = Agent(client, node, planner=lambda pod, n, **kw: plan_pod(
        pod, n, images=ImageCatalog(), **kw), sandboxes=FakeSandboxes(),
        addresses=PodIPAM(node), runtime=runtime)
    task = asyncio.create_task(agent.run())
    try:
        async def node_ready() -> bool:
            try:
                n = await client.get(NODES, None, "n1")
            except StatusError:
                return False
            conds = {c["type"]: c["status"] for c in n["status"]["conditions"]}
            return conds.get("Ready") == "True" and n["spec"]["podCIDR"] == "10.244.9.0/30"
        await eventually(node_ready)
        await client.create(PODS, "default", _pod("first", "n1"))

        async def running(name: str) -> bool:
            p = await client.get(PODS, "default", name)
            return (p.get("status") or {}).get("phase") == "Running"
        await eventually(lambda: running("first"))
        first = await client.get(PODS, "default", "first")
        assert first["status"]["podIP"] == "10.244.9.2"

        await client.create(PODS, "default", _pod("second", "n1"))

        async def exhausted() -> bool:
            p = await client.get(PODS, "default", "second")
            conds = (p.get("status") or {}).get("conditions") or []
            msg = " ".join(c.get("message", "") for c in conds)
            evs, _ = await client.list(EVENTS, "default",
                                       field_selector="involvedObject.name=second")
            return "exhausted" in msg and any(e["reason"] == "FailedCreatePodSandBox" and
                                              "exhausted" in e["message"] for e in evs)
        await eventually(exhausted)
        assert await running("first")  # the other Pod keeps running

        # graceful deletion: the agent stops the containers with the Pod's grace period,
        # then deletes the Pod for good, freeing its address for the waiting Pod
        await client.delete(PODS, "default", "first")

        async def gone() -> bool:
            try:
                await client.get(PODS, "default", "first")
                return False
            except StatusError as e:
                return e.reason == "NotFound"
        await eventually(gone)
        assert (first["metadata"]["uid"], 7) in runtime.killed
        await eventually(lambda: running("second"), timeout=10)
    finally:
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass
