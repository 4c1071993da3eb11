"""The pod runtime: makes a `PodPlan` real as shim-supervised processes and reports status.

`PodRuntime` is what the agent loop talks to. It holds one `PodWorker` (podworker.py) per
pod and adds the node-wide parts: adoption of pods left running by a previous agent
(`start`), pod deletion (`kill`), `kubectl logs` (`logs`), and forgetting pods (`forget`).

Containers are never children that die with the agent: each runs under its own shim
(shim.py) in its own session, and all state is in `<state_dir>/containers` (containers.py).
So `close()` stops only the runtime's own tasks, and a new runtime's `start()` finds every
pod, container and attempt again, checks which processes are still alive (pid plus start
time), and carries on without starting anything twice.

Callbacks (both optional, both called on the event loop, both must not block):
`on_change(pod_uid)` when a pod's status changed outside a `sync` call (an exit, a restart,
a probe flipping readiness), so the agent can report it at once; `on_event(PodEvent)` for
what the kubelet would record as Events (Created, Started, Killing, BackOff, Unhealthy,
Failed).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Mapping

from svcnet.node import containers
from svcnet.node.containers import Shims
from svcnet.node.logs import LogsError, stream_log
from svcnet.node.podworker import PodEvent, PodWorker, SandboxManagerLike, Shared
from svcnet.node.probe_state import ContainerProbes
from svcnet.node.restart import DEFAULT_MAXIMUM, RestartBackoff
from svcnet.node.types import ContainerTarget, NodeConfig, PodPlan, Sandbox

__all__ = ["LogsError", "PodEvent", "PodRuntime", "SandboxManagerLike"]


class PodRuntime:
    """Runs pods' containers on this node (see the module docstring).

    `clock` returns wall-clock seconds (it is compared with the start and finish times
    shims record). `backoff_initial` / `backoff_max` are the crash back-off bounds (the
    kubelet's 10 s and 300 s by default; tests use about a second)."""

    def __init__(self, node: NodeConfig, sandboxes: SandboxManagerLike, *,
                 clock: Callable[[], float] = time.time, backoff_initial: float = 10.0,
                 backoff_max: float = DEFAULT_MAXIMUM,
                 on_change: Callable[[str], None] | None = None,
                 on_event: Callable[[PodEvent], None] | None = None) -> None:
        self.node = node
        self._shared = Shared(
            node=node, root=containers.pods_root(node.state_dir), shims=Shims(),
            sandboxes=sandboxes, clock=clock,
            backoff=RestartBackoff(backoff_initial, backoff_max),
            emit=on_event or (lambda _e: None), notify=on_change or (lambda _u: None))
        self._workers: dict[str, PodWorker] = {}
        self._started = False

    @property
    def root(self) -> Path:
        """Directory holding all container state (for diagnostics)."""
        return self._shared.root

    async def start(self) -> None:
        """Re-adopt the pods a previous runtime left: their running containers keep running
        and are watched again; their exits since then are noticed on the first step. State
        of pods that were killed is removed (nobody will ask for it again). Idempotent."""
        if self._started:
            return
        self._started = True
        root = self._shared.root
        root.mkdir(parents=True, exist_ok=True)
        for uid in containers.list_pod_uids(root):
            if uid in self._workers:
                continue
            worker = PodWorker(self._shared, uid)
            if worker.terminating:
                containers.remove_pod_state(root, uid)
                continue
            worker.adopt()
            self._workers[uid] = worker
            worker.ensure_running()

    async def sync(self, plan: PodPlan, sandbox: Sandbox, *,
                   probes: Mapping[str, ContainerProbes] | None = None,
                   api_status: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Make the pod's containers match `plan` and return its status (idempotent).

        Starts what should run and is not running (never a second copy of a running
        container), restarts exits per restartPolicy and back-off, and keeps probing in the
        background. `probes` (from `probe_state.probes_from_pod(pod)`; None keeps the
        previous ones) and `api_status` (the Pod's status in the API; seeds
        lastTransitionTimes and the readiness of adopted containers) are optional.
        A pod that was killed is not started again; its last status is returned.
        """
        await self.start()
        worker = self._workers.get(plan.uid)
        if worker is None:
            worker = PodWorker(self._shared, plan.uid)
            worker.adopt()  # a pod may have state from before, e.g. after a crash
            self._workers[plan.uid] = worker
        worker.update(plan, sandbox, probes, api_status)
        async with worker.lock:
            await worker.step(notify=False)
        worker.ensure_running()
        assert worker.status is not None
        return worker.status

    def status(self, pod_uid: str) -> dict[str, Any] | None:
        """The last status computed for a pod (None if unknown or never synced)."""
        worker = self._workers.get(pod_uid)
        return worker.status if worker else None

    async def kill(self, pod_uid: str, grace_seconds: float) -> None:
        """Stop the pod for good: SIGTERM to every container's process group (through its
        shim), SIGKILL to what is left after `grace_seconds`; returns when every process is
        gone. Logs stay readable until `forget`. Unknown pods are a no-op."""
        await self.start()
        worker = self._workers.get(pod_uid)
        if worker is None:
            return
        await worker.kill(max(float(grace_seconds), 0.0))

    def running_pods(self) -> set[str]:
        """Pods this runtime is responsible for: synced or adopted, and not killed (their
        containers may have completed). After a restart, these minus the pods the API
        still binds to the node are orphans to `kill`."""
        return {uid for uid, w in self._workers.items() if not w.terminating}

    async def forget(self, pod_uid: str) -> None:
        """Drop a pod entirely, logs included (after its deletion). Kills it first (grace 0)
        if it still runs, so nothing is ever left unsupervised."""
        worker = self._workers.get(pod_uid)
        if worker is not None:
            if not worker.terminating:
                await worker.kill(0.0)
            await worker.close()
            del self._workers[pod_uid]
        for c in (worker.containers if worker else {}):
            self._shared.backoff.forget(f"{pod_uid}/{c}")
        containers.remove_pod_state(self._shared.root, pod_uid)

    async def logs(self, pod_uid: str, container: str | None, *, follow: bool = False,
                   previous: bool = False, tail: int | None = None,
                   timestamps: bool = False) -> AsyncIterator[bytes]:
        """Lines of a container's log as `kubectl logs` prints them.

        `previous` reads the attempt before the latest one. `follow` streams until that
        attempt ends (or the consumer stops). Raises `LogsError` (a LookupError) with
        kubectl's wording when the pod, container or previous attempt does not exist."""
        root = self._shared.root
        worker = self._workers.get(pod_uid)
        meta = containers.read_pod_meta(root, pod_uid)
        plan = worker.plan if worker else None
        pod_name = plan.name if plan else str(meta.get("name") or pod_uid)
        names = [c.name for c in (*plan.init_containers, *plan.containers)] if plan \
            else containers.list_containers(root, pod_uid)
        if worker is None and not names:
            raise LogsError(f'pod "{pod_name}" not found')
        if container is None:
            if len(names) != 1:
                raise LogsError(f"a container name must be specified for pod {pod_name}, "
                                f"choose one of: [{' '.join(names)}]")
            container = names[0]
        if container not in names:
            raise LogsError(f"container {container} is not valid for pod {pod_name}")
        attempts = [n for n in containers.list_attempts(root, pod_uid, container)
                    if containers.read_attempt(containers.attempt_dir(root, pod_uid, container,
                                                                      n), n) is not None]
        if previous:
            if len(attempts) < 2:
                raise LogsError(f'previous terminated container "{container}" in pod '
                                f'"{pod_name}" not found')
            chosen = attempts[-2]
        elif not attempts:
            raise LogsError(f'container "{container}" in pod "{pod_name}" is waiting to '
                            "start: ContainerCreating")
        else:
            chosen = attempts[-1]
        path = containers.attempt_dir(root, pod_uid, container, chosen)
        shims, clock = self._shared.shims, self._shared.clock

        def finished() -> bool:
            record = containers.read_attempt(path, chosen)
            return record is None or not shims.refresh(record, clock()).running

        async for line in stream_log(path / "container.log", follow=follow, tail=tail,
                                     timestamps=timestamps, finished=finished):
            yield line

    def container_target(self, pod_uid: str, container: str) -> ContainerTarget | None:
        """The container as exec/attach reach it, or None unless it runs right now (what
        the kubelet answers with `container not found`)."""
        worker = self._workers.get(pod_uid)
        plan = worker.plan if worker else None
        record = worker.containers.get(container) if worker else None
        if worker is None or plan is None or record is None or record.current is None \
                or worker.terminating:
            return None
        current = self._shared.shims.refresh(record.current, self._shared.clock())
        if not current.running or not containers.container_alive(current):
            return None
        cp = next((c for c in (*plan.containers, *plan.init_containers)
                   if c.name == container), None)
        if cp is None:
            return None
        return ContainerTarget(pod_uid=pod_uid, pod_name=plan.name, container=container,
                               pid=current.pid, pid_start=current.pid_start, env=cp.env,
                               workdir=cp.workdir, image=cp.image, scratch_dir=cp.scratch_dir,
                               attempt_dir=current.path, hostname=plan.hostname,
                               stdin=cp.stdin, tty=cp.tty)

    async def settle(self, pod_uid: str, container: str, timeout: float = 3.0) -> None:
        """If the container's latest attempt has exited but its shim is still draining its
        output into the log, wait (at most `timeout`) until the shim is done, so whoever
        is told the container is gone (kubectl then shows its logs) reads a whole log."""
        worker = self._workers.get(pod_uid)
        record = worker.containers.get(container) if worker else None
        if record is not None and record.current is not None \
                and containers.shim_alive(record.current):
            await self._shared.shims.wait_exit(record.current, timeout)

    def sandbox(self, pod_uid: str) -> Sandbox | None:
        """The pod's sandbox as last synced (None: unknown or not set up yet)."""
        worker = self._workers.get(pod_uid)
        return worker.sandbox if worker is not None and not worker.terminating else None

    async def close(self) -> None:
        """Stop every background task; containers keep running for the next runtime."""
        for worker in list(self._workers.values()):
            await worker.close()
        self._workers.clear()
        self._started = False
