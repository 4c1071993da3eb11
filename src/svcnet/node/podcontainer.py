"""The runtime's bookkeeping for one container, and how it reads as a container status.

`ContainerRecord` holds what the pod worker tracks per container: the current and previous
attempts (snapshots of the shim's state files), a pending creation error, the back-off
deadline, the probe tracker of the current attempt and the worker's tasks for it.
`ContainerRecord.view(...)` turns that into the `status.ContainerView` the status module
renders. The view is pure (no I/O, "now" passed in), so the choice between Running,
CrashLoopBackOff, CreateContainerError, ContainerCreating, PodInitializing and Terminated
lives in one small function instead of being spread over the reconcile loop.
"""

from __future__ import annotations

import asyncio

from svcnet.node import status
from svcnet.node.containers import Attempt
from svcnet.node.probe_state import ProbeTracker
from svcnet.node.restart import format_duration
from svcnet.node.types import ContainerPlan

# The kubelet's words for a container whose exit status nobody could observe.
LOST_REASON = "ContainerStatusUnknown"
LOST_MESSAGE = "The container could not be located when the pod was terminated"
LOST_EXIT_CODE = 137


def terminated(pod_uid: str, a: Attempt | None) -> status.Terminated | None:
    """The terminated state of a finished attempt (None if it is not finished)."""
    if a is None or a.finished_at is None or a.started_at is None:
        return None
    return status.Terminated(
        exit_code=a.exit_code if a.exit_code is not None else LOST_EXIT_CODE,
        started_at=a.started_at, finished_at=a.finished_at,
        container_id=status.container_id(pod_uid, a.path.parent.name, a.attempt),
        reason=LOST_REASON if a.lost else "", message=LOST_MESSAGE if a.lost else "")


class ContainerRecord:
    """Bookkeeping for one container of a pod (mutated only by its pod worker)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.current: Attempt | None = None
        self.previous: Attempt | None = None
        self.create_error: tuple[str, str, float] | None = None  # reason, message, when
        self.backoff_until: float | None = None
        self.tracker: ProbeTracker | None = None  # probes of `current`
        self.watcher: asyncio.Task[None] | None = None  # waits for `current` to exit
        self.stopping: asyncio.Task[None] | None = None  # liveness-triggered stop
        self.reported: str = ""  # last waiting reason an event was emitted for

    @property
    def running(self) -> bool:
        """The current attempt runs."""
        return self.current is not None and self.current.running

    def view(self, cp: ContainerPlan, *, pod_uid: str, pod_ref: str, init: bool,
             blocked: bool, terminating: bool, now: float,
             backoff_delay: float) -> status.ContainerView:
        """This container as the status reports it.

        `blocked`: an earlier init container has not completed (PodInitializing).
        `terminating`: the pod was killed, so nothing restarts and nothing is ready.
        `backoff_delay`: the current crash back-off, for the CrashLoopBackOff message.
        """
        cur = self.current
        restart_count = cur.attempt if cur else 0
        cid = status.container_id(pod_uid, cp.name, cur.attempt) if cur else ""
        previous = terminated(pod_uid, self.previous)
        if cur is not None and cur.running and cur.started_at is not None:
            tracker = None if init else self.tracker
            return status.ContainerView(
                name=cp.name, image=cp.image, state=status.Running(cur.started_at),
                last_state=previous, restart_count=restart_count, container_id=cid,
                # Running init containers are never "ready"; regular ones follow readiness.
                ready=not terminating and (tracker.ready if tracker else not init),
                started=tracker.started if tracker else True)
        term = terminated(pod_uid, cur)
        waiting: status.Waiting | None = None
        if self.create_error is not None:
            waiting = status.Waiting(self.create_error[0], self.create_error[1])
        elif cur is None and cp.waiting_reason:
            waiting = status.Waiting(cp.waiting_reason, cp.waiting_message)
        elif cur is None:
            waiting = status.Waiting("PodInitializing" if blocked else "ContainerCreating")
        elif term is not None and not terminating and self.backoff_until is not None \
                and self.backoff_until > now:
            waiting = status.Waiting(
                "CrashLoopBackOff", f"back-off {format_duration(backoff_delay)} restarting "
                f"failed container={cp.name} pod={pod_ref}")
        if waiting is not None:
            return status.ContainerView(name=cp.name, image=cp.image, state=waiting,
                                        last_state=term or previous,
                                        restart_count=restart_count, container_id=cid)
        assert term is not None
        return status.ContainerView(name=cp.name, image=cp.image, state=term,
                                    last_state=previous, restart_count=restart_count,
                                    container_id=cid)
