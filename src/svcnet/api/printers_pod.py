"""The Pod row of `kubectl get pods`: Ready, Status, Restarts and the wide columns.

The Status cell is the most intricate cell Kubernetes prints and users read it more than any
other, so this module reproduces kube-apiserver 1.32's rules (kubernetes
`pkg/printers/internalversion/printers.go printPod`) step by step:

1. start from `status.phase`, overridden by `status.reason` (e.g. `Evicted`), and by
   `SchedulingGated` when the PodScheduled condition says so;
2. walk init container statuses in order: finished (exit 0) ones and started sidecars
   (`restartPolicy: Always`) are skipped; the first other one decides `Init:<reason>`,
   `Init:ExitCode:N`, `Init:Signal:N` or `Init:i/n`, and marks the pod as initializing;
3. unless initializing (and not already `Initialized=True`), walk the app container statuses
   from last to first: a waiting reason (`ContainerCreating`, `CrashLoopBackOff`), else a
   terminated reason (`Completed`, `Error`, `OOMKilled`) or `ExitCode:N`/`Signal:N` wins; the
   first container in spec order therefore has the last word; `Completed` with some container
   still running and ready turns into `Running` (Ready condition true) or `NotReady`;
4. a deletion timestamp makes a non-terminal pod `Terminating` (`Unknown` if the node was lost).

Restarts counts init container restarts while initializing, else sidecar plus app container
restarts, and appends ` (<age> ago)` of the latest `lastState.terminated.finishedAt`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from svcnet.api.duration import age, parse_time, since

__all__ = ["pod_cells", "pod_row_conditions"]

# metav1.TableRowCondition values the server attaches to rows of finished pods.
_POD_SUCCEEDED_CONDITIONS = [{"type": "Completed", "status": "True", "reason": "Succeeded",
                              "message": "The pod has completed successfully."}]
_POD_FAILED_CONDITIONS = [{"type": "Completed", "status": "True", "reason": "Failed",
                           "message": "The pod failed."}]


def _restartable(container: dict[str, Any] | None) -> bool:
    """A sidecar: an init container with `restartPolicy: Always` (runs alongside the app)."""
    return container is not None and container.get("restartPolicy") == "Always"


def _condition_true(conditions: list[dict[str, Any]], ctype: str, first_only: bool) -> bool:
    """Whether condition `ctype` is True; with `first_only`, only its first entry counts."""
    for c in conditions:
        if c.get("type") == ctype:
            if c.get("status") == "True":
                return True
            if first_only:
                return False
    return False


def _finished_at(status: dict[str, Any]) -> datetime | None:
    """`lastState.terminated.finishedAt` of a container status (None when unset)."""
    last = (status.get("lastState") or {}).get("terminated")
    return parse_time(last.get("finishedAt")) if last is not None else None


def _later(current: datetime | None, candidate: datetime | None) -> datetime | None:
    if candidate is None:
        return current
    return candidate if current is None or current < candidate else current


def _exit_reason(prefix: str, terminated: dict[str, Any]) -> str:
    """`Signal:N` when killed by a signal, else `ExitCode:N` (for terminations without reason)."""
    signal = int(terminated.get("signal") or 0)
    if signal != 0:
        return f"{prefix}Signal:{signal}"
    return f"{prefix}ExitCode:{int(terminated.get('exitCode') or 0)}"


def pod_cells(pod: dict[str, Any], now: datetime) -> list[str | int]:
    """Cells: Name, Ready, Status, Restarts, Age, IP, Node, Nominated Node, Readiness Gates."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    conditions: list[dict[str, Any]] = status.get("conditions") or []
    init_specs: list[dict[str, Any]] = spec.get("initContainers") or []

    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for c in conditions:
        if c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    init_by_name = {c.get("name"): c for c in init_specs}
    total = len(spec.get("containers") or []) + sum(1 for c in init_specs if _restartable(c))
    ready = 0
    restarts = sidecar_restarts = 0
    last_restart: datetime | None = None
    last_sidecar_restart: datetime | None = None

    initializing = False
    for i, cs in enumerate(status.get("initContainerStatuses") or []):
        count = int(cs.get("restartCount") or 0)
        restarts += count
        last_restart = _later(last_restart, _finished_at(cs))
        sidecar = _restartable(init_by_name.get(cs.get("name")))
        if sidecar:
            sidecar_restarts += count
            last_sidecar_restart = _later(last_sidecar_restart, _finished_at(cs))
        state = cs.get("state") or {}
        terminated = state.get("terminated")
        waiting = state.get("waiting")
        if terminated is not None and int(terminated.get("exitCode") or 0) == 0:
            continue
        if sidecar and cs.get("started") is True:
            if cs.get("ready"):
                ready += 1
            continue
        if terminated is not None:
            reason = (f"Init:{terminated['reason']}" if terminated.get("reason")
                      else _exit_reason("Init:", terminated))
        elif waiting is not None and waiting.get("reason") not in (None, "", "PodInitializing"):
            reason = f"Init:{waiting['reason']}"
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _condition_true(conditions, "Initialized", first_only=True):
        restarts = sidecar_restarts
        last_restart = last_sidecar_restart
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += int(cs.get("restartCount") or 0)
            last_restart = _later(last_restart, _finished_at(cs))
            state = cs.get("state") or {}
            terminated = state.get("terminated")
            waiting = state.get("waiting")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated is not None and terminated.get("reason"):
                reason = terminated["reason"]
            elif terminated is not None:
                reason = _exit_reason("", terminated)
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            ready_cond = _condition_true(conditions, "Ready", first_only=False)
            reason = "Running" if ready_cond else "NotReady"

    if meta.get("deletionTimestamp") and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif meta.get("deletionTimestamp") and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"

    restarts_cell = str(restarts)
    if restarts != 0 and last_restart is not None:
        restarts_cell = f"{restarts} ({since(last_restart, now)} ago)"

    # v1→internal conversion makes status.podIP authoritative over podIPs[0].
    pod_ips = status.get("podIPs") or []
    ip = status.get("podIP") or (pod_ips[0].get("ip", "") if pod_ips else "")
    gates = spec.get("readinessGates") or []
    gates_cell = "<none>"
    if gates:
        true_count = 0
        for gate in gates:
            for c in conditions:
                if c.get("type") == gate.get("conditionType"):
                    if c.get("status") == "True":
                        true_count += 1
                    break
        gates_cell = f"{true_count}/{len(gates)}"

    return [
        meta.get("name", ""),
        f"{ready}/{total}",
        reason,
        restarts_cell,
        age(meta.get("creationTimestamp"), now),
        ip or "<none>",
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        gates_cell,
    ]


def pod_row_conditions(pod: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Row conditions: `Completed=True` for Succeeded/Failed pods, else None (omitted)."""
    phase = (pod.get("status") or {}).get("phase")
    if phase == "Succeeded":
        return [dict(c) for c in _POD_SUCCEEDED_CONDITIONS]
    if phase == "Failed":
        return [dict(c) for c in _POD_FAILED_CONDITIONS]
    return None
