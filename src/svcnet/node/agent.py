"""The node agent's control loop: a kubelet for process pods.

It registers its Node and keeps it Ready with heartbeats, watches the Pods bound to it,
and for each one makes the runtime match the Pod (sandbox, containers, probes), reporting
the status back through the API. A Pod marked for deletion is stopped gracefully, its
sandbox removed, and only then deleted for good (grace 0), which is how the API server
knows the node is done with it. Everything goes through the Kubernetes API; the runtime
pieces (plan, sandbox, runtime) are injected so this loop is testable with fakes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
from datetime import datetime, timezone
from typing import Any, Mapping, Protocol

from svcnet.api import errors
from svcnet.api.kinds import kind_for
from svcnet.client.api import ApiClient, Obj
from svcnet.client.informer import Informer
from svcnet.client.workqueue import WorkQueue
from svcnet.controllers.events import EventRecorder
from svcnet.node.probe_state import probes_from_pod
from svcnet.node.types import NodeConfig, PodPlan, Sandbox

log = logging.getLogger("svcnet.agent")

NODES = kind_for("", "nodes")
PODS = kind_for("", "pods")
SERVICES = kind_for("", "services")
CONFIGMAPS = kind_for("", "configmaps")
SECRETS = kind_for("", "secrets")
HEARTBEAT = 10.0
RESYNC = 1.0
AGENT_VERSION = "v1.32.0-svcnet"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Planner(Protocol):
    def __call__(self, pod: Obj, node: NodeConfig, *, services: list[Obj],
                 configmaps: dict[str, Obj], secrets: dict[str, Obj],
                 pod_ip: str) -> PodPlan: ...


class Sandboxes(Protocol):
    async def ensure_node_network(self) -> None: ...

    async def create(self, plan: PodPlan, ip: str) -> Sandbox: ...

    async def remove(self, pod_uid: str) -> None: ...

    async def list(self) -> list[Sandbox]: ...


class Addresses(Protocol):
    def allocate(self, uid: str, namespace: str, name: str) -> str: ...

    def release(self, uid: str) -> None: ...


class Runtime(Protocol):
    async def start(self) -> None: ...

    async def sync(self, plan: PodPlan, sandbox: Sandbox, *,
                   probes: Mapping[str, Any] | None = None,
                   api_status: Mapping[str, Any] | None = None) -> dict[str, Any]: ...

    async def kill(self, pod_uid: str, grace_seconds: int) -> None: ...

    def running_pods(self) -> set[str]: ...

    async def forget(self, pod_uid: str) -> None: ...

    async def close(self) -> None: ...


def node_object(node: NodeConfig, *, api_port: int) -> Obj:
    """The Node as this agent registers it (spec and status)."""
    cpus = os.cpu_count() or 1
    mem_kib = 0
    try:
        with open("/proc/meminfo") as f:
            mem_kib = int(f.readline().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    os_image = "Linux"
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    os_image = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    resources = {"cpu": str(cpus), "memory": f"{mem_kib}Ki", "pods": "110",
                 "ephemeral-storage": "10Gi"}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": node.name, "labels": {
            "kubernetes.io/hostname": node.name, "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": "amd64"}},
        "spec": {"podCIDR": node.pod_cidr, "podCIDRs": [node.pod_cidr]},
        "status": {
            "addresses": [{"type": "InternalIP", "address": node.node_ip},
                          {"type": "Hostname", "address": node.name}],
            "capacity": resources, "allocatable": resources,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": api_port}},
            "nodeInfo": {"kubeletVersion": AGENT_VERSION, "kubeProxyVersion": AGENT_VERSION,
                         "operatingSystem": "linux", "architecture": "amd64",
                         "osImage": os_image, "kernelVersion": platform.release(),
                         "containerRuntimeVersion": "svcnet://0.1.0", "machineID": "",
                         "systemUUID": "", "bootID": ""},
            "conditions": node_conditions(ready=True)}}


def node_conditions(*, ready: bool, since: str | None = None) -> list[Obj]:
    now = _now()
    out = []
    for ctype, reason, msg in (
            ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available")):
        out.append({"type": ctype, "status": "False", "reason": reason, "message": msg,
                    "lastHeartbeatTime": now, "lastTransitionTime": since or now})
    out.append({"type": "Ready", "status": "True" if ready else "False",
                "reason": "KubeletReady" if ready else "KubeletNotReady",
                "message": "kubelet is posting ready status" if ready else "agent starting",
                "lastHeartbeatTime": now, "lastTransitionTime": since or now})
    return out


class Agent:
    """One node's agent. `run()` until cancelled; `close()` leaves Pods running."""

    def __init__(self, client: ApiClient, node: NodeConfig, *, planner: Planner,
                 sandboxes: Sandboxes, addresses: Addresses, runtime: Runtime,
                 api_port: int = 10250) -> None:
        self.client = client
        self.node = node
        self.planner = planner
        self.sandboxes = sandboxes
        self.addresses = addresses
        self.runtime = runtime
        self.api_port = api_port
        self.pods = Informer(client, PODS, field_selector=f"spec.nodeName={node.name}")
        self.services = Informer(client, SERVICES)
        self.configmaps = Informer(client, CONFIGMAPS)
        self.secrets = Informer(client, SECRETS)
        self.queue = WorkQueue()
        self.recorder = EventRecorder(client, "kubelet", host=node.name)
        self._reported: dict[str, dict[str, Any]] = {}
        self._known: dict[str, str] = {}  # pod uid -> "ns/name"
        self._warned: dict[str, set[tuple[str, str]]] = {}
        self.pods.add_handler(self._on_pod)
        self._since = _now()

    # --- node -----------------------------------------------------------------------------

    async def register(self) -> None:
        obj = node_object(self.node, api_port=self.api_port)
        try:
            await self.client.create(NODES, None, obj)
        except errors.StatusError as e:
            if e.reason != "AlreadyExists":
                raise
            await self.client.patch(NODES, None, self.node.name,
                                    {"metadata": {"labels": obj["metadata"]["labels"]},
                                     "spec": obj["spec"]})
        await self.client.patch(NODES, None, self.node.name, {"status": obj["status"]},
                                subresource="status")

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT)
            try:
                await self.client.patch(NODES, None, self.node.name, {"status": {
                    "conditions": node_conditions(ready=True, since=self._since)}},
                    subresource="status")
            except Exception as e:  # the server may be restarting; keep trying
                log.warning("heartbeat failed: %s", e)

    # --- pods -----------------------------------------------------------------------------

    def _on_pod(self, ev_type: str, old: Obj | None, new: Obj | None) -> None:
        obj = new or old
        assert obj is not None
        self.queue.add(obj["metadata"]["uid"])
        self._known[obj["metadata"]["uid"]] = f"{obj['metadata']['namespace']}/" \
                                              f"{obj['metadata']['name']}"

    def _pod_by_uid(self, uid: str) -> Obj | None:
        ref = self._known.get(uid)
        if ref is None:
            return None
        ns, name = ref.split("/", 1)
        pod = self.pods.get(ns, name)
        if pod is not None and pod["metadata"].get("uid") == uid:
            return pod
        return None

    def _plan(self, pod: Obj, pod_ip: str) -> PodPlan:
        ns = pod["metadata"]["namespace"]
        return self.planner(
            pod, self.node,
            services=[s for s in self.services.list() if s["metadata"]["namespace"] in
                      (ns, "default")],
            configmaps={c["metadata"]["name"]: c for c in self.configmaps.list(ns)},
            secrets={s["metadata"]["name"]: s for s in self.secrets.list(ns)},
            pod_ip=pod_ip)

    async def _report(self, pod: Obj, status: dict[str, Any]) -> None:
        """Patch the Pod's status when it changed since the last report."""
        uid = pod["metadata"]["uid"]
        if self._reported.get(uid) == status:
            return
        await self.client.patch(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"],
                                {"status": status}, subresource="status")
        self._reported[uid] = status

    async def _warn(self, pod: Obj, reason: str, message: str) -> None:
        """A Warning Event, once per distinct (reason, message) for the Pod's life here."""
        seen = self._warned.setdefault(pod["metadata"]["uid"], set())
        if (reason, message) not in seen:
            seen.add((reason, message))
            await self.recorder.record(pod, "Warning", reason, message)

    async def _terminate(self, uid: str, grace: int, pod: Obj | None) -> None:
        """Stop containers gracefully, remove the sandbox, then confirm the deletion."""
        name = self._known.get(uid, uid)
        # a Pod's final DELETED event brings it here once more, with nothing left to stop
        say = log.info if pod is not None or uid in self.runtime.running_pods() else log.debug
        say("stopping pod %s (grace %ds)", name, grace)
        started = asyncio.get_running_loop().time()
        await self.runtime.kill(uid, grace)
        await self.sandboxes.remove(uid)
        self.addresses.release(uid)
        await self.runtime.forget(uid)  # drop the worker and its on-disk state
        self._reported.pop(uid, None)
        self._warned.pop(uid, None)
        if pod is not None:
            meta = pod["metadata"]
            try:
                await self.client.delete(PODS, meta["namespace"], meta["name"], grace_seconds=0,
                                         uid=uid)
            except errors.StatusError as e:
                if e.reason not in ("NotFound", "Conflict"):
                    raise
        self._known.pop(uid, None)
        say("pod %s stopped and removed in %.1fs", name,
            asyncio.get_running_loop().time() - started)

    async def sync(self, uid: str) -> None:
        pod = self._pod_by_uid(uid)
        if pod is None:  # gone from the API (force-deleted): stop whatever still runs
            await self._terminate(uid, 0, None)
            return
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            grace = int(meta.get("deletionGracePeriodSeconds") or 0)
            await self._terminate(uid, grace, pod)
            return
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed") and uid not in self.runtime.running_pods():
            return  # finished: nothing to run, status already final
        host_network = bool((pod.get("spec") or {}).get("hostNetwork"))
        try:
            # The IP comes first: the plan needs it for /etc/hosts and status.podIP.
            ip = self.node.node_ip if host_network else \
                self.addresses.allocate(uid, meta["namespace"], meta["name"])
        except Exception as e:  # exhausted pod range: say so on the Pod, keep serving others
            await self._warn(pod, "FailedCreatePodSandBox", str(e))
            await self._report(pod, {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "PodReadyToStartContainers", "status": "False",
                 "reason": "FailedCreatePodSandBox", "message": str(e)}]})
            return
        plan = self._plan(pod, ip)
        for reason, message in plan.warnings:
            await self._warn(pod, reason, message)
        try:
            sandbox = await self.sandboxes.create(plan, ip)
        except Exception as e:
            await self._warn(pod, "FailedCreatePodSandBox", f"failed to create sandbox: {e}")
            raise
        # The Pod's probes drive readiness and liveness; its current status seeds the
        # runtime (transition times, readiness of containers adopted after a restart).
        status = await self.runtime.sync(plan, sandbox, probes=probes_from_pod(pod),
                                         api_status=pod.get("status"))
        for c in status.get("containerStatuses") or []:
            waiting = (c.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in ("ErrImagePull", "CreateContainerError",
                                         "RunContainerError"):
                await self._warn(pod, "Failed", f"container {c['name']}: "
                                 f"{waiting.get('message') or waiting['reason']}")
        await self._report(pod, status)

    async def _worker(self) -> None:
        while True:
            uid = await self.queue.get()
            try:
                await self.sync(uid)
                self.queue.forget(uid)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("sync of pod %s failed: %s", self._known.get(uid, uid), e)
                self.queue.add_rate_limited(uid)
            finally:
                self.queue.done(uid)

    async def _resync(self) -> None:
        """Periodically revisit every local Pod (probes, restarts, exits change status)."""
        while True:
            await asyncio.sleep(RESYNC)
            for uid in list(self._known):
                self.queue.add(uid)

    async def _cleanup_orphans(self) -> None:
        """Sandboxes and processes of Pods the API no longer binds here (agent restart)."""
        live = {p["metadata"]["uid"] for p in self.pods.list()}
        leftovers = {s.pod_uid for s in await self.sandboxes.list()} | self.runtime.running_pods()
        for uid in leftovers - live:
            log.info("removing orphaned pod %s", uid)
            await self._terminate(uid, 0, None)

    async def run(self, workers: int = 4) -> None:
        await self.sandboxes.ensure_node_network()
        await self.runtime.start()
        await self.register()
        tasks = [asyncio.create_task(i.run()) for i in
                 (self.pods, self.services, self.configmaps, self.secrets)]
        try:
            await asyncio.gather(*(i.synced.wait() for i in
                                   (self.pods, self.services, self.configmaps, self.secrets)))
            await self._cleanup_orphans()
            tasks.append(asyncio.create_task(self._heartbeat()))
            tasks.append(asyncio.create_task(self._resync()))
            log.info("agent for node %s ready", self.node.name)
            await asyncio.gather(*(self._worker() for _ in range(workers)))
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.runtime.close()
