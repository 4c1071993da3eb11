"""Pod status as the kubelet reports it (pure: every input, including "now", is passed in).

The runtime describes each container with a `ContainerView` (its current state, the state
of the previous attempt, restart count, readiness); `pod_status(...)` turns the views plus
the plan and the sandbox facts into the `status` object of a v1 Pod:

- `phase` with the kubelet's `getPhase` rules: any container still waiting for its first
  start → Pending; any running → Running; all stopped → Succeeded when every one exited 0,
  Failed under `restartPolicy: Never` (or a failed init container under Never), otherwise
  Running (they will be restarted: that is CrashLoopBackOff's phase). A terminal phase, once
  reported, stays.
- conditions in the kubelet's order: PodReadyToStartContainers, Initialized, Ready,
  ContainersReady, PodScheduled, with the kubelet's reasons and messages, `lastProbeTime:
  null`, and `lastTransitionTime` carried over from `previous` while the status is unchanged.
- podIP/podIPs, hostIP/hostIPs, startTime, containerStatuses sorted by name and
  initContainerStatuses in spec order, each with state/lastState shapes exactly as kubectl
  reads them (STATUS, READY n/m, RESTARTS "2 (10s ago)" from lastState.terminated.finishedAt).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from svcnet.node.types import PodPlan

PHASE_PENDING = "Pending"
PHASE_RUNNING = "Running"
PHASE_SUCCEEDED = "Succeeded"
PHASE_FAILED = "Failed"
TERMINAL_PHASES = (PHASE_SUCCEEDED, PHASE_FAILED)


def rfc3339(ts: float) -> str:
    """Seconds-precision UTC timestamp, the format of every time in Pod status."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def container_id(pod_uid: str, name: str, attempt: int) -> str:
    """The containerID svcnet reports for one attempt of a container."""
    return f"svcnet://{pod_uid}/{name}/{attempt}"


def image_id(image: str) -> str:
    """The imageID svcnet reports for an image it runs."""
    return f"svcnet://{image}"


@dataclass(frozen=True)
class Running:
    """The container's process is alive since `started_at`."""

    started_at: float


@dataclass(frozen=True)
class Terminated:
    """An attempt that ended. `reason` empty means the kubelet's default: Completed for
    exit 0, Error otherwise."""

    exit_code: int
    started_at: float
    finished_at: float
    container_id: str = ""
    reason: str = ""
    message: str = ""

    @property
    def effective_reason(self) -> str:
        """The reason as reported."""
        return self.reason or ("Completed" if self.exit_code == 0 else "Error")


@dataclass(frozen=True)
class Waiting:
    """Not running: ContainerCreating, PodInitializing, CrashLoopBackOff, ErrImagePull,
    CreateContainerError, RunContainerError..."""

    reason: str
    message: str = ""


ContainerState = Running | Terminated | Waiting


@dataclass(frozen=True)
class ContainerView:
    """What the runtime knows about one container, for the status.

    `container_id` is the ID of the current (or last) attempt, empty when no attempt was
    ever created (then the imageID is empty too: the image was never "pulled")."""

    name: str
    image: str
    state: ContainerState
    last_state: Terminated | None = None
    restart_count: int = 0
    ready: bool = False
    started: bool = False
    container_id: str = ""


def _terminated_dict(t: Terminated) -> dict[str, Any]:
    out: dict[str, Any] = {"exitCode": t.exit_code, "reason": t.effective_reason}
    if t.message:
        out["message"] = t.message
    out["startedAt"] = rfc3339(t.started_at)
    out["finishedAt"] = rfc3339(t.finished_at)
    if t.container_id:
        out["containerID"] = t.container_id
    return out


def _state_dict(state: ContainerState) -> dict[str, Any]:
    if isinstance(state, Running):
        return {"running": {"startedAt": rfc3339(state.started_at)}}
    if isinstance(state, Terminated):
        return {"terminated": _terminated_dict(state)}
    waiting: dict[str, Any] = {"reason": state.reason}
    if state.message:
        waiting["message"] = state.message
    return {"waiting": waiting}


def container_status(view: ContainerView) -> dict[str, Any]:
    """One entry of containerStatuses / initContainerStatuses."""
    out: dict[str, Any] = {
        "name": view.name,
        "state": _state_dict(view.state),
        "lastState": {"terminated": _terminated_dict(view.last_state)} if view.last_state
        else {},
        "ready": view.ready,
        "restartCount": view.restart_count,
        "image": view.image,
        "imageID": image_id(view.image) if view.container_id else "",
        "started": view.started,
    }
    if view.container_id:
        out["containerID"] = view.container_id
    return out


def _go_list(names: Sequence[str]) -> str:
    # The kubelet formats these lists with Go's %s on a []string: "[a b]".
    return "[" + " ".join(names) + "]"


def pod_phase(plan: PodPlan, init_views: Sequence[ContainerView],
              views: Sequence[ContainerView], previous_phase: str = "", *,
              pod_terminal: bool = False) -> str:
    """The kubelet's phase rules (see the module docstring). `pod_terminal`: the pod was
    stopped for good (deleted); once nothing runs, its phase is then Succeeded if every
    container exited 0 and Failed otherwise, whatever the restart policy."""
    if previous_phase in TERMINAL_PHASES:
        return previous_phase
    pending_init = failed_init = 0
    for v in init_views:
        if isinstance(v.state, Running):
            pending_init += 1
        elif isinstance(v.state, Terminated):
            failed_init += v.state.exit_code != 0
        elif v.last_state is not None:
            failed_init += v.last_state.exit_code != 0
        else:
            pending_init += 1
    if failed_init and plan.restart_policy == "Never":
        return PHASE_FAILED
    running = waiting = stopped = succeeded = 0
    for v in views:
        if isinstance(v.state, Running):
            running += 1
        elif isinstance(v.state, Terminated):
            stopped += 1
            succeeded += v.state.exit_code == 0
        elif v.last_state is not None:
            stopped += 1  # CrashLoopBackOff: it did run
        else:
            waiting += 1
    if pod_terminal and not running and not any(isinstance(v.state, Running)
                                                for v in init_views):
        all_ok = stopped > 0 and stopped == succeeded \
            and not (failed_init or pending_init or waiting)
        return PHASE_SUCCEEDED if all_ok else PHASE_FAILED
    if pending_init or failed_init or waiting:
        return PHASE_PENDING
    if running:
        return PHASE_RUNNING
    if stopped:
        if plan.restart_policy == "Always":
            return PHASE_RUNNING
        if stopped == succeeded:
            return PHASE_SUCCEEDED
        if plan.restart_policy == "Never":
            return PHASE_FAILED
        return PHASE_RUNNING
    return PHASE_PENDING


def _initialized(init_views: Sequence[ContainerView], phase: str,
                 was_initialized: bool) -> tuple[bool, str, str]:
    if not init_views or was_initialized:
        return True, "", ""
    incomplete = [v.name for v in init_views
                  if not (isinstance(v.state, Terminated) and v.state.exit_code == 0)]
    if not incomplete:
        return True, "", ""
    if phase == PHASE_SUCCEEDED:
        return False, "PodCompleted", ""
    return False, "ContainersNotInitialized", \
        f"containers with incomplete status: {_go_list(incomplete)}"


def _containers_ready(views: Sequence[ContainerView], phase: str) -> tuple[bool, str, str]:
    if phase == PHASE_SUCCEEDED:
        return False, "PodCompleted", ""
    if phase == PHASE_FAILED:
        return False, "PodFailed", ""
    unready = [v.name for v in views if not v.ready]
    if unready:
        return False, "ContainersNotReady", \
            f"containers with unready status: {_go_list(unready)}"
    return True, "", ""


def _condition(ctype: str, ok: bool, reason: str, message: str, now: float,
               previous: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    status = "True" if ok else "False"
    prev = previous.get(ctype) or {}
    since = prev.get("lastTransitionTime") if prev.get("status") == status else None
    cond: dict[str, Any] = {"type": ctype, "status": status, "lastProbeTime": None,
                            "lastTransitionTime": since or rfc3339(now)}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def pod_status(plan: PodPlan, init_views: Sequence[ContainerView],
               views: Sequence[ContainerView], *, pod_ip: str, host_ip: str,
               start_time: float, now: float, sandbox_ready: bool,
               previous: Mapping[str, Any] | None = None,
               pod_terminal: bool = False) -> dict[str, Any]:
    """The Pod `status` object.

    `previous` is the last status reported (or the API's): its conditions lend their
    lastTransitionTime to unchanged conditions and its phase, if terminal, stays. `pod_ip`
    empty means no sandbox IP yet (podIP/podIPs are then omitted, as the kubelet does).
    `pod_terminal`: the pod was killed (see `pod_phase`).
    """
    prev = previous or {}
    prev_conds = {str(c.get("type")): c for c in prev.get("conditions") or []
                  if isinstance(c, Mapping)}
    phase = pod_phase(plan, init_views, views, str(prev.get("phase") or ""),
                      pod_terminal=pod_terminal)
    was_init = (prev_conds.get("Initialized") or {}).get("status") == "True"
    init_ok, init_reason, init_msg = _initialized(init_views, phase, was_init)
    # Ready needs no separate "initialized" check: before initialization no regular
    # container runs, so none is ready and the kubelet's ContainersNotReady message applies.
    ready_ok, ready_reason, ready_msg = _containers_ready(views, phase)
    conditions = [
        _condition("PodReadyToStartContainers", sandbox_ready, "", "", now, prev_conds),
        _condition("Initialized", init_ok, init_reason, init_msg, now, prev_conds),
        _condition("Ready", ready_ok, ready_reason, ready_msg, now, prev_conds),
        _condition("ContainersReady", ready_ok, ready_reason, ready_msg, now, prev_conds),
        _condition("PodScheduled", True, "", "", now, prev_conds),
    ]
    status: dict[str, Any] = {"phase": phase, "conditions": conditions,
                              "hostIP": host_ip, "hostIPs": [{"ip": host_ip}]}
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    status["startTime"] = rfc3339(start_time)
    if plan.init_containers:
        status["initContainerStatuses"] = [container_status(v) for v in init_views]
    status["containerStatuses"] = [container_status(v)
                                   for v in sorted(views, key=lambda v: v.name)]
    return status
