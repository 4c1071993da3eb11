"""One pod's worker: keeps its containers running per the plan and reports its status.

Theory of operation. A `PodWorker` owns every container of one pod. Its loop runs a
`step()` whenever something happens (a `sync` with a new plan, a shim exiting, a probe
result, a back-off expiring, or a 10 s resync as a safety net) and sleeps otherwise:

1. refresh: re-read each running attempt's state.json (containers.py), so exits that
   happened while nobody watched (agent restart) are seen;
2. reconcile (only with a plan, never once the pod was killed): run init containers one by
   one, then start regular containers; restart exited ones per restartPolicy through the
   kubelet's back-off (restart.py); retry creation errors with the same back-off; stop a
   container whose liveness/startup probe failed (it is then restarted like any exit);
3. start due probes (probe_state.py decides, probes.py runs them as tasks off the loop);
4. compute the status (status.py) and, if it changed, persist it (so lastTransitionTimes
   survive a restart) and tell the runtime's `on_change` callback.

All mutation happens on the event loop; `lock` serialises steps with `kill` so nothing is
started while a pod is being stopped.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

from svcnet.node import containers, probes, status
from svcnet.node.containers import Attempt, LaunchSpec, Shims
from svcnet.node.probe_state import NO_PROBES, ContainerProbes, ProbeKind, ProbeSpec, \
    ProbeTracker
from svcnet.node.podcontainer import ContainerRecord
from svcnet.node.restart import RestartBackoff, should_restart
from svcnet.node.types import ContainerPlan, NodeConfig, PodPlan, Sandbox

RESYNC_SECONDS = 10.0
ERROR_RETRY_SECONDS = 1.0
KILL_WAIT_SECONDS = 10.0  # after SIGKILL, how long to wait for the shim to record the exit

log = logging.getLogger(__name__)


class SandboxManagerLike(Protocol):
    """The part of the sandbox manager the runtime needs."""

    def netns_exec_prefix(self, sandbox: Sandbox) -> list[str]:
        """argv prefix that runs a command inside the sandbox (namespaces, /etc files)."""
        ...


@dataclass(frozen=True)
class PodEvent:
    """Something worth a Kubernetes Event, as the kubelet would record it. `container`
    names the container for the event's involvedObject.fieldPath
    (`spec.containers{<name>}`), empty for pod-level events."""

    pod_uid: str
    namespace: str
    name: str
    type: str  # Normal | Warning
    reason: str
    message: str
    container: str = ""


@dataclass
class Shared:
    """What all workers of a runtime share."""

    node: NodeConfig
    root: Path  # containers.pods_root(node.state_dir)
    shims: Shims
    sandboxes: SandboxManagerLike
    clock: Callable[[], float]
    backoff: RestartBackoff
    emit: Callable[[PodEvent], None]
    notify: Callable[[str], None]


class PodWorker:
    """The containers of one pod (see the module docstring)."""

    def __init__(self, shared: Shared, uid: str) -> None:
        self.s = shared
        self.uid = uid
        self.plan: PodPlan | None = None
        self.sandbox: Sandbox | None = None
        self.probes: Mapping[str, ContainerProbes] = {}
        self.api_status: Mapping[str, Any] = {}
        self.meta: dict[str, Any] = containers.read_pod_meta(shared.root, uid)
        self.containers: dict[str, ContainerRecord] = {}
        self.lock = asyncio.Lock()
        self.wake = asyncio.Event()
        self.terminating = bool(self.meta.get("killed"))
        self.status: dict[str, Any] | None = None
        self._notified: dict[str, Any] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.task: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def adopt(self) -> None:
        """Load every container's latest two attempts from disk (see
        `containers.latest_attempts`)."""
        for name in containers.list_containers(self.s.root, self.uid):
            current, previous = containers.latest_attempts(self.s.root, self.uid, name)
            if current is not None:
                c = self._container(name)
                c.current, c.previous = current, previous

    def update(self, plan: PodPlan, sandbox: Sandbox,
               pod_probes: Mapping[str, ContainerProbes] | None,
               api_status: Mapping[str, Any] | None) -> None:
        """Take the latest plan, sandbox, probes and API status (None: keep what we have).
        New probe specs restart probing from scratch for the running attempts."""
        self.plan, self.sandbox = plan, sandbox
        if api_status is not None:
            self.api_status = api_status
        if pod_probes is not None and dict(pod_probes) != dict(self.probes):
            self.probes = dict(pod_probes)
            for c in self.containers.values():
                c.tracker = None
        self.meta.setdefault("startTime", self.s.clock())

    def ensure_running(self) -> None:
        """Start the worker loop if it is not running."""
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._loop(), name=f"pod-{self.uid}")

    async def close(self) -> None:
        """Stop the loop and every background task of this pod (containers keep running).
        A step in progress is let finish first, so no launch is cut off halfway: its
        container is then recorded on disk for the next runtime to adopt."""
        async with self.lock:
            tasks = [t for t in [self.task, *self._tasks] if t is not None]
            for c in self.containers.values():
                tasks += [t for t in (c.watcher, c.stopping) if t is not None]
            for t in tasks:
                t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _container(self, name: str) -> ContainerRecord:
        if name not in self.containers:
            self.containers[name] = ContainerRecord(name)
        return self.containers[name]

    def _event(self, type_: str, reason: str, message: str, container: str = "") -> None:
        plan = self.plan
        self.s.emit(PodEvent(self.uid, plan.namespace if plan else self.meta.get("namespace", ""),
                             plan.name if plan else self.meta.get("name", ""),
                             type_, reason, message, container))

    # -- the loop ----------------------------------------------------------------------------
    async def _loop(self) -> None:
        while True:
            self.wake.clear()
            try:
                async with self.lock:
                    await self.step()
                delay = self._next_wakeup() - self.s.clock()
            except Exception:  # one bad step must not stop this pod's supervision
                log.exception("pod %s: sync step failed", self.uid)
                delay = ERROR_RETRY_SECONDS
            if delay > 0:
                try:
                    await asyncio.wait_for(self.wake.wait(), delay)
                except TimeoutError:
                    pass

    async def step(self, *, notify: bool = True) -> None:
        """One pass of refresh / reconcile / probes / status (call with `lock` held).
        `notify=False` when the caller hands the status over itself (sync)."""
        self._refresh(self.s.clock())
        if self.plan is not None and not self.terminating:
            await self._reconcile(self.s.clock())
        self._start_probes(self.s.clock())
        self._update_status(self.s.clock())
        if not notify:
            self._notified = self.status
        elif self.status is not None and self.status != self._notified:
            self._notified = self.status
            self.s.notify(self.uid)

    def _next_wakeup(self) -> float:
        now = self.s.clock()
        times = [now + RESYNC_SECONDS]
        for c in self.containers.values():
            if c.backoff_until is not None:
                times.append(c.backoff_until)
            if c.tracker is not None and c.current is not None and c.current.running:
                due = c.tracker.next_due()
                if due is not None:
                    times.append(due)
        return min(times)

    def _refresh(self, now: float) -> None:
        for c in self.containers.values():
            if c.current is None or not c.current.running:
                continue
            c.current = self.s.shims.refresh(c.current, now)
            if c.current.running and (c.watcher is None or c.watcher.done()):
                c.watcher = asyncio.create_task(self._watch(c.current))
            if not c.current.running:
                c.stopping = None

    async def _watch(self, attempt: Attempt) -> None:
        await self.s.shims.wait_exit(attempt)
        self.wake.set()

    # -- reconcile ---------------------------------------------------------------------------
    async def _reconcile(self, now: float) -> None:
        plan = self.plan
        assert plan is not None
        for ip in plan.init_containers:
            c = self._container(ip.name)
            cur = c.current
            if cur is not None and not cur.running and cur.exit_code == 0:
                continue  # done; never run again
            if ip.waiting_reason or (cur is not None and cur.running):
                self._report_waiting(c, ip)
                return
            if cur is None:
                await self._start(c, ip, now)
            elif should_restart(plan.restart_policy, cur.exit_code or 0, init=True):
                await self._restart(c, ip, now)
            return  # regular containers wait for every init container
        for cp in plan.containers:
            c = self._container(cp.name)
            cur = c.current
            if cur is not None and cur.running:
                self._check_liveness(c, plan)
            elif cp.waiting_reason:
                self._report_waiting(c, cp)
            elif cur is None:
                await self._start(c, cp, now)
            elif should_restart(plan.restart_policy, cur.exit_code or 0):
                await self._restart(c, cp, now)

    def _report_waiting(self, c: ContainerRecord, cp: ContainerPlan) -> None:
        if cp.waiting_reason and c.reported != cp.waiting_reason:
            c.reported = cp.waiting_reason
            self._event("Warning", "Failed", f"Error: {cp.waiting_reason}: {cp.waiting_message}"
                        if cp.waiting_message else f"Error: {cp.waiting_reason}", cp.name)

    def _key(self, c: ContainerRecord) -> str:
        return f"{self.uid}/{c.name}"

    async def _restart(self, c: ContainerRecord, cp: ContainerPlan, now: float) -> None:
        cur = c.current
        assert cur is not None and cur.finished_at is not None
        until = self.s.backoff.wait_until(self._key(c), cur.finished_at, now)
        if until is not None:
            if c.backoff_until != until:
                self._event("Warning", "BackOff",
                            f"Back-off restarting failed container {c.name} in pod "
                            f"{self._pod_ref()}", c.name)
            c.backoff_until = until
            return
        self.s.backoff.next(self._key(c), cur.finished_at)
        await self._start(c, cp, now)

    def _pod_ref(self) -> str:
        plan = self.plan
        return f"{plan.name}_{plan.namespace}({self.uid})" if plan else self.uid

    async def _start(self, c: ContainerRecord, cp: ContainerPlan, now: float) -> None:
        plan, sandbox = self.plan, self.sandbox
        assert plan is not None and sandbox is not None
        if c.create_error is not None:
            until = self.s.backoff.wait_until(self._key(c), c.create_error[2], now)
            if until is not None:
                c.backoff_until = until
                return
        c.backoff_until = None
        attempt = c.current.attempt + 1 if c.current else 0
        prefix = list(self.s.sandboxes.netns_exec_prefix(sandbox))
        spec = LaunchSpec(argv=(*prefix, *cp.argv), exec_index=len(prefix), env=cp.env,
                          workdir=cp.workdir, hostname=plan.hostname, stdin=cp.stdin,
                          stdin_once=cp.stdin_once, tty=cp.tty)
        path = containers.attempt_dir(self.s.root, self.uid, c.name, attempt)
        try:
            record = await self.s.shims.launch(path, attempt, spec)
        except OSError as exc:
            record = Attempt(path=path, attempt=attempt, error_reason="RunContainerError",
                             error=f"cannot start container shim: {exc}")
        if record.error:
            # No container was created: the attempt number (restartCount) is not used up.
            shutil.rmtree(path, ignore_errors=True)
            c.create_error = (record.error_reason or "CreateContainerError", record.error,
                              self.s.clock())
            self.s.backoff.next(self._key(c), c.create_error[2])
            c.backoff_until = self.s.backoff.wait_until(self._key(c), c.create_error[2],
                                                        self.s.clock())
            self._event("Warning", "Failed", f"Error: {record.error}", c.name)
            return
        c.create_error = None
        c.reported = ""
        c.previous, c.current, c.tracker = c.current, record, None
        c.watcher = asyncio.create_task(self._watch(record))
        self._event("Normal", "Created", f"Created container: {c.name}", c.name)
        self._event("Normal", "Started", f"Started container {c.name}", c.name)

    def _check_liveness(self, c: ContainerRecord, plan: PodPlan) -> None:
        tracker = c.tracker
        if tracker is None or tracker.restart_reason is None or c.stopping is not None:
            return
        assert c.current is not None
        kind = tracker.restart_reason
        spec = self._probes(c.name).get(kind)
        grace = spec.termination_grace if spec and spec.termination_grace is not None \
            else float(plan.termination_grace_seconds)
        self._event("Normal", "Killing", f"Container {c.name} failed {kind.lower()} probe, "
                    "will be restarted", c.name)
        c.stopping = self._spawn(self._stop(c.current, grace))

    async def _stop(self, attempt: Attempt, grace: float) -> None:
        """SIGTERM, wait up to `grace`, SIGKILL, wait for the exit to be recorded."""
        self.s.shims.terminate(attempt)
        if not await self.s.shims.wait_exit(attempt, grace):
            self.s.shims.kill(attempt)
            await self.s.shims.wait_exit(attempt, KILL_WAIT_SECONDS)
        self.wake.set()

    async def kill(self, grace: float) -> None:
        """Stop every container for good (pod deletion); returns when all are gone."""
        self.terminating = True
        for t in list(self._tasks):
            t.cancel()
        async with self.lock:  # lets a launch in progress finish: it is stopped below
            self._refresh(self.s.clock())
            running = [c.current for c in self.containers.values()
                       if c.current is not None and c.current.running]
        for a in running:
            self._event("Normal", "Killing", f"Stopping container {a.path.parent.name}",
                        a.path.parent.name)
        await asyncio.gather(*(self._stop(a, grace) for a in running))
        self.meta["killed"] = True
        containers.write_pod_meta(self.s.root, self.uid, self.meta)
        async with self.lock:
            await self.step()

    # -- probes ------------------------------------------------------------------------------
    def _probes(self, name: str) -> ContainerProbes:
        return self.probes.get(name, NO_PROBES)

    def _tracker(self, c: ContainerRecord) -> ProbeTracker | None:
        cur = c.current
        if cur is None or not cur.running or cur.started_at is None:
            return None
        if c.tracker is None:
            # Seed from the API's view of this very attempt, so an agent restart does not
            # flip a ready pod to NotReady while it probes again.
            seen = {}
            for st in self.api_status.get("containerStatuses") or []:
                if st.get("name") == c.name and st.get("containerID") == \
                        status.container_id(self.uid, c.name, cur.attempt):
                    seen = st
            c.tracker = ProbeTracker(self._probes(c.name), cur.started_at,
                                     initially_ready=bool(seen.get("ready")),
                                     initially_started=bool(seen.get("started")))
        return c.tracker

    def _start_probes(self, now: float) -> None:
        plan = self.plan
        if self.terminating or plan is None or self.sandbox is None:
            return
        for cp in plan.containers:
            c = self.containers.get(cp.name)
            tracker = self._tracker(c) if c is not None else None
            if c is None or tracker is None or c.stopping is not None:
                continue
            for kind in tracker.due(now):
                spec = tracker.begin(kind, now)
                self._spawn(self._probe(c, cp, tracker, kind, spec))

    async def _probe(self, c: ContainerRecord, cp: ContainerPlan, tracker: ProbeTracker,
                     kind: ProbeKind, spec: ProbeSpec) -> None:
        assert self.sandbox is not None and c.current is not None
        ctx = probes.ExecContext(pid=c.current.pid,
                                 prefix=tuple(self.s.sandboxes.netns_exec_prefix(self.sandbox)),
                                 env=cp.env, workdir=cp.workdir)
        outcome = await probes.run_probe(spec, pod_ip=self._pod_ip(), exec_ctx=ctx)
        if c.tracker is not tracker:
            return  # the attempt was replaced while the probe ran
        tracker.record(kind, outcome.success, self.s.clock(), outcome.message)
        if not outcome.success:
            self._event("Warning", "Unhealthy", f"{kind} probe failed: {outcome.message}", c.name)
        self.wake.set()

    # -- status ------------------------------------------------------------------------------
    def _pod_ip(self) -> str:
        if self.sandbox is not None and self.sandbox.ip:
            return self.sandbox.ip
        return self.s.node.node_ip if self.plan is not None and self.plan.host_network else ""

    def _update_status(self, now: float) -> None:
        plan = self.plan
        if plan is None:
            return

        def view(cp: ContainerPlan, init: bool, blocked: bool) -> status.ContainerView:
            c = self._container(cp.name)
            if not init:
                self._tracker(c)  # make sure a running container has its probe state
            return c.view(cp, pod_uid=self.uid, pod_ref=self._pod_ref(), init=init,
                          blocked=blocked, terminating=self.terminating, now=now,
                          backoff_delay=self.s.backoff.delay(self._key(c)))

        init_views = []
        blocked = False
        for ip in plan.init_containers:
            init_views.append(view(ip, True, blocked))
            state = init_views[-1].state
            if not (isinstance(state, status.Terminated) and state.exit_code == 0):
                blocked = True
        views = [view(cp, False, blocked) for cp in plan.containers]
        previous: dict[str, Any] = dict(self.api_status)
        mine = self.status or self.meta.get("status") or {}
        conds = {c["type"]: c for c in previous.get("conditions") or [] if "type" in c}
        conds.update({c["type"]: c for c in mine.get("conditions") or [] if "type" in c})
        previous["conditions"] = list(conds.values())
        if mine.get("phase"):
            previous["phase"] = mine["phase"]
        self.meta.setdefault("startTime", now)
        new = status.pod_status(plan, init_views, views, pod_ip=self._pod_ip(),
                                host_ip=self.s.node.node_ip, start_time=self.meta["startTime"],
                                now=now, sandbox_ready=self.sandbox is not None,
                                previous=previous, pod_terminal=self.terminating)
        self.status = new
        if new != self.meta.get("status"):
            self.meta.update(status=new, namespace=plan.namespace, name=plan.name)
            containers.write_pod_meta(self.s.root, self.uid, self.meta)
