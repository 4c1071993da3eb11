"""Pod status as the kubelet reports it, and the restart policy / back-off behind it.

Besides exact shapes, the tests read each status the way `kubectl get pods` does (READY,
STATUS, RESTARTS columns), because that is what users look at.
"""

from __future__ import annotations

import calendar
import time
from typing import Any

import pytest

from svcnet.node.restart import RestartBackoff, format_duration, should_restart
from svcnet.node.status import (
    ContainerView,
    Running,
    Terminated,
    Waiting,
    container_id,
    pod_phase,
    pod_status,
    rfc3339,
)
from svcnet.node.types import ContainerPlan, PodPlan

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
UID = "0f6c6f9e-uid"


def plan(*names: str, policy: str = "Always", init: tuple[str, ...] = ()) -> PodPlan:
    return PodPlan(uid=UID, namespace="default", name="web", hostname="web",
                   host_network=False, resolv_conf="", hosts="",
                   containers=tuple(ContainerPlan(name=n, argv=("sleep", "1"), env=(),
                                                  image="busybox") for n in names),
                   init_containers=tuple(ContainerPlan(name=n, argv=("true",), env=(),
                                                       image="busybox") for n in init),
                   restart_policy=policy)


def running(name: str = "app", *, ready: bool = True, restarts: int = 0,
            last: Terminated | None = None) -> ContainerView:
    return ContainerView(name=name, image="busybox", state=Running(T0 + 1), last_state=last,
                         restart_count=restarts, ready=ready, started=True,
                         container_id=container_id(UID, name, restarts))


def exited(code: int, *, at: float = T0 + 5, attempt: int = 0, name: str = "app",
           reason: str = "") -> Terminated:
    return Terminated(exit_code=code, started_at=T0 + 1, finished_at=at,
                      container_id=container_id(UID, name, attempt), reason=reason)


def terminated(name: str = "app", code: int = 0, *, restarts: int = 0) -> ContainerView:
    return ContainerView(name=name, image="busybox", state=exited(code, name=name,
                                                                 attempt=restarts),
                         restart_count=restarts, container_id=container_id(UID, name, restarts))


def crashloop(name: str = "app", *, restarts: int = 2,
              finished: float = T0 + 50) -> ContainerView:
    return ContainerView(
        name=name, image="busybox",
        state=Waiting("CrashLoopBackOff", f"back-off 20s restarting failed container={name} "
                                          f"pod=web_default({UID})"),
        last_state=exited(1, at=finished, attempt=restarts, name=name), restart_count=restarts,
        container_id=container_id(UID, name, restarts))


def waiting(name: str = "app", reason: str = "ContainerCreating",
            message: str = "") -> ContainerView:
    return ContainerView(name=name, image="busybox", state=Waiting(reason, message))


def status_of(p: PodPlan, views: list[ContainerView], *, init: list[ContainerView] | None = None,
              now: float = T0 + 60, previous: dict[str, Any] | None = None,
              ip: str = "10.244.1.7", sandbox: bool = True) -> dict[str, Any]:
    return pod_status(p, init or [], views, pod_ip=ip, host_ip="172.30.0.11", start_time=T0,
                      now=now, sandbox_ready=sandbox, previous=previous)


def conditions(st: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in st["conditions"]}


def _parse(ts: str) -> float:
    return float(calendar.timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ")))


def kubectl_columns(st: dict[str, Any], now: float) -> tuple[str, str, str]:
    """READY, STATUS and RESTARTS as kubectl v1.32 derives them (printPod, simplified to
    what the kubelet can report here: no deletion, no readiness gates)."""
    reason = st["phase"]
    statuses = st.get("containerStatuses") or []
    for i, c in enumerate(st.get("initContainerStatuses") or []):
        term = c["state"].get("terminated")
        if term and term["exitCode"] == 0:
            continue
        if term:
            reason = f"Init:{term['reason']}"
        elif c["state"].get("waiting", {}).get("reason") not in (None, "PodInitializing"):
            reason = f"Init:{c['state']['waiting']['reason']}"
        else:
            reason = f"Init:{i}/{len(st['initContainerStatuses'])}"
        break
    else:
        ready = 0
        has_running = False
        for c in reversed(statuses):
            state = c["state"]
            if state.get("waiting", {}).get("reason"):
                reason = state["waiting"]["reason"]
            elif state.get("terminated", {}).get("reason"):
                reason = state["terminated"]["reason"]
            elif c["ready"] and "running" in state:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running"
        restarts = sum(c["restartCount"] for c in statuses)
        last = max((_parse(c["lastState"]["terminated"]["finishedAt"]) for c in statuses
                    if c["lastState"].get("terminated")), default=None)
        restarts_col = str(restarts) if last is None or not restarts else \
            f"{restarts} ({int(now - last)}s ago)"
        return f"{ready}/{len(statuses)}", reason, restarts_col
    return f"0/{len(statuses)}", reason, "0"


# -- shapes ---------------------------------------------------------------------------------------

def test_running_ready_pod_exact_shape() -> None:
    st = status_of(plan("app"), [running()])
    t0, t60 = rfc3339(T0), rfc3339(T0 + 60)
    assert st == {
        "phase": "Running",
        "conditions": [
            {"type": "PodReadyToStartContainers", "status": "True", "lastProbeTime": None,
             "lastTransitionTime": t60},
            {"type": "Initialized", "status": "True", "lastProbeTime": None,
             "lastTransitionTime": t60},
            {"type": "Ready", "status": "True", "lastProbeTime": None,
             "lastTransitionTime": t60},
            {"type": "ContainersReady", "status": "True", "lastProbeTime": None,
             "lastTransitionTime": t60},
            {"type": "PodScheduled", "status": "True", "lastProbeTime": None,
             "lastTransitionTime": t60},
        ],
        "hostIP": "172.30.0.11", "hostIPs": [{"ip": "172.30.0.11"}],
        "podIP": "10.244.1.7", "podIPs": [{"ip": "10.244.1.7"}],
        "startTime": t0,
        "containerStatuses": [{
            "name": "app",
            "state": {"running": {"startedAt": rfc3339(T0 + 1)}},
            "lastState": {},
            "ready": True,
            "restartCount": 0,
            "image": "busybox",
            "imageID": "svcnet://busybox",
            "started": True,
            "containerID": f"svcnet://{UID}/app/0",
        }],
    }
    assert kubectl_columns(st, T0 + 60) == ("1/1", "Running", "0")


def test_timestamps_and_ids() -> None:
    assert rfc3339(T0) == "2027-01-15T08:00:00Z"
    assert container_id("u", "c", 3) == "svcnet://u/c/3"


def test_unready_container_makes_pod_not_ready_with_kubelet_message() -> None:
    st = status_of(plan("app", "side"), [running("app", ready=False), running("side")])
    ready = conditions(st)["Ready"]
    assert ready["status"] == "False"
    assert ready["reason"] == "ContainersNotReady"
    assert ready["message"] == "containers with unready status: [app]"
    assert conditions(st)["ContainersReady"]["message"] == ready["message"]
    assert st["phase"] == "Running"
    assert kubectl_columns(st, T0 + 60) == ("1/2", "Running", "0")


def test_container_statuses_are_sorted_by_name() -> None:
    st = status_of(plan("zeta", "alpha"), [running("zeta"), running("alpha")])
    assert [c["name"] for c in st["containerStatuses"]] == ["alpha", "zeta"]


# -- crash loops and restarts --------------------------------------------------------------------

def test_crashloopbackoff_is_running_phase_with_last_state_and_restarts() -> None:
    st = status_of(plan("app"), [crashloop(restarts=2, finished=T0 + 50)], now=T0 + 60)
    assert st["phase"] == "Running"
    c = st["containerStatuses"][0]
    assert c["state"] == {"waiting": {
        "reason": "CrashLoopBackOff",
        "message": f"back-off 20s restarting failed container=app pod=web_default({UID})"}}
    assert c["lastState"] == {"terminated": {
        "exitCode": 1, "reason": "Error", "startedAt": rfc3339(T0 + 1),
        "finishedAt": rfc3339(T0 + 50), "containerID": f"svcnet://{UID}/app/2"}}
    assert c["restartCount"] == 2 and c["ready"] is False and c["started"] is False
    assert kubectl_columns(st, T0 + 60) == ("0/1", "CrashLoopBackOff", "2 (10s ago)")


def test_restarted_container_running_again_shows_restarts_ago() -> None:
    view = running(restarts=1, last=exited(137, at=T0 + 30))
    st = status_of(plan("app"), [view], now=T0 + 40)
    assert st["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 137
    assert kubectl_columns(st, T0 + 40) == ("1/1", "Running", "1 (10s ago)")


def test_lost_container_reason_overrides_default() -> None:
    view = ContainerView(name="app", image="busybox",
                         state=exited(137, reason="ContainerStatusUnknown"), container_id="x")
    st = status_of(plan("app", policy="Never"), [view])
    assert st["containerStatuses"][0]["state"]["terminated"]["reason"] == "ContainerStatusUnknown"
    assert st["phase"] == "Failed"


# -- terminal phases -----------------------------------------------------------------------------

def test_completed_under_never_is_succeeded_and_ready_false_pod_completed() -> None:
    st = status_of(plan("app", policy="Never"), [terminated(code=0)])
    assert st["phase"] == "Succeeded"
    assert conditions(st)["Ready"] | {"lastTransitionTime": ""} == {
        "type": "Ready", "status": "False", "reason": "PodCompleted", "lastProbeTime": None,
        "lastTransitionTime": ""}
    assert st["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    assert kubectl_columns(st, T0 + 60) == ("0/1", "Completed", "0")


def test_error_under_never_is_failed() -> None:
    st = status_of(plan("app", policy="Never"), [terminated(code=2)])
    assert st["phase"] == "Failed"
    assert conditions(st)["Ready"]["reason"] == "PodFailed"
    assert kubectl_columns(st, T0 + 60) == ("0/1", "Error", "0")


@pytest.mark.parametrize("policy,codes,phase", [
    ("Always", [0], "Running"),        # will be restarted
    ("Always", [1], "Running"),
    ("OnFailure", [0], "Succeeded"),
    ("OnFailure", [0, 0], "Succeeded"),
    ("OnFailure", [1], "Running"),     # will be restarted
    ("Never", [0, 0], "Succeeded"),
    ("Never", [0, 1], "Failed"),
    ("Never", [137], "Failed"),
])
def test_phase_when_every_container_stopped(policy: str, codes: list[int], phase: str) -> None:
    names = [f"c{i}" for i in range(len(codes))]
    views = [terminated(n, code) for n, code in zip(names, codes)]
    assert pod_phase(plan(*names, policy=policy), [], views) == phase


def test_one_running_one_done_is_running() -> None:
    views = [running("a"), terminated("b", 1)]
    assert pod_phase(plan("a", "b", policy="Never"), [], views) == "Running"


def test_terminal_phase_is_sticky() -> None:
    p = plan("app", policy="OnFailure")
    assert pod_phase(p, [], [running()], previous_phase="Succeeded") == "Succeeded"
    st = status_of(p, [running()], previous={"phase": "Failed"})
    assert st["phase"] == "Failed"


# -- pending ---------------------------------------------------------------------------------

def test_err_image_pull_is_pending_without_image_or_container_id() -> None:
    msg = 'image "nosuch" is not a built-in image; set command'
    st = status_of(plan("app"), [waiting(reason="ErrImagePull", message=msg)])
    assert st["phase"] == "Pending"
    c = st["containerStatuses"][0]
    assert c["state"] == {"waiting": {"reason": "ErrImagePull", "message": msg}}
    assert c["imageID"] == "" and "containerID" not in c
    assert kubectl_columns(st, T0 + 60) == ("0/1", "ErrImagePull", "0")


def test_create_container_error_after_a_run_counts_as_stopped() -> None:
    view = ContainerView(name="app", image="busybox",
                         state=Waiting("CreateContainerError", 'exec: "nope": executable file '
                                                               "not found in $PATH"),
                         last_state=exited(1), restart_count=1, container_id="svcnet://x")
    st = status_of(plan("app"), [view])
    assert st["phase"] == "Running"
    assert kubectl_columns(st, T0 + 60)[1] == "CreateContainerError"


def test_container_creating_without_sandbox_has_no_pod_ip() -> None:
    st = status_of(plan("app"), [waiting()], ip="", sandbox=False)
    assert st["phase"] == "Pending"
    assert "podIP" not in st and "podIPs" not in st
    assert conditions(st)["PodReadyToStartContainers"]["status"] == "False"
    assert kubectl_columns(st, T0 + 60) == ("0/1", "ContainerCreating", "0")


# -- init containers -----------------------------------------------------------------------------

def test_init_container_running_keeps_pod_pending_and_not_initialized() -> None:
    p = plan("app", init=("setup", "migrate"))
    init = [ContainerView(name="setup", image="busybox", state=Running(T0), started=True,
                          container_id="svcnet://x"), waiting("migrate", "PodInitializing")]
    st = status_of(p, [waiting("app", "PodInitializing")], init=init)
    assert st["phase"] == "Pending"
    cond = conditions(st)["Initialized"]
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "False", "ContainersNotInitialized", "containers with incomplete status: [setup migrate]")
    assert [c["name"] for c in st["initContainerStatuses"]] == ["setup", "migrate"]
    assert kubectl_columns(st, T0 + 60)[1] == "Init:0/2"


def test_failed_init_container_under_never_fails_the_pod() -> None:
    p = plan("app", policy="Never", init=("setup",))
    st = status_of(p, [waiting("app", "PodInitializing")], init=[terminated("setup", 1)])
    assert st["phase"] == "Failed"
    assert kubectl_columns(st, T0 + 60)[1] == "Init:Error"


def test_failed_init_container_under_always_is_pending_crashloop() -> None:
    p = plan("app", init=("setup",))
    st = status_of(p, [waiting("app", "PodInitializing")], init=[crashloop("setup")])
    assert st["phase"] == "Pending"
    assert kubectl_columns(st, T0 + 60)[1] == "Init:CrashLoopBackOff"


def test_completed_init_containers_initialize_the_pod() -> None:
    p = plan("app", init=("setup",))
    st = status_of(p, [running()], init=[terminated("setup", 0)])
    assert conditions(st)["Initialized"]["status"] == "True"
    assert st["phase"] == "Running"
    assert kubectl_columns(st, T0 + 60) == ("1/1", "Running", "0")


# -- condition transitions -----------------------------------------------------------------------

def test_last_transition_time_kept_while_unchanged_and_moved_on_change() -> None:
    p = plan("app")
    first = status_of(p, [running(ready=False)], now=T0 + 10)
    same = status_of(p, [running(ready=False)], now=T0 + 20, previous=first)
    assert conditions(same)["Ready"]["lastTransitionTime"] == rfc3339(T0 + 10)
    flipped = status_of(p, [running(ready=True)], now=T0 + 30, previous=same)
    assert conditions(flipped)["Ready"]["lastTransitionTime"] == rfc3339(T0 + 30)
    assert conditions(flipped)["PodScheduled"]["lastTransitionTime"] == rfc3339(T0 + 10)
    back = status_of(p, [running(ready=False)], now=T0 + 40, previous=flipped)
    assert conditions(back)["Ready"]["status"] == "False"
    assert conditions(back)["Ready"]["lastTransitionTime"] == rfc3339(T0 + 40)


def test_previous_scheduler_condition_time_is_kept() -> None:
    api = {"conditions": [{"type": "PodScheduled", "status": "True",
                           "lastTransitionTime": "2027-01-15T07:59:59Z"}]}
    st = status_of(plan("app"), [running()], previous=api)
    assert conditions(st)["PodScheduled"]["lastTransitionTime"] == "2027-01-15T07:59:59Z"


# -- restart policy and back-off -----------------------------------------------------------------

@pytest.mark.parametrize("policy,code,init,expected", [
    ("Always", 0, False, True), ("Always", 1, False, True),
    ("OnFailure", 0, False, False), ("OnFailure", 1, False, True),
    ("Never", 0, False, False), ("Never", 1, False, False),
    ("Always", 0, True, False), ("Always", 1, True, True), ("Never", 1, True, False),
])
def test_should_restart(policy: str, code: int, init: bool, expected: bool) -> None:
    assert should_restart(policy, code, init=init) is expected


def test_backoff_first_restart_immediate_then_doubling_to_cap() -> None:
    b = RestartBackoff(initial=10, maximum=300)
    t = 0.0
    waits = []
    for _ in range(8):
        until = b.wait_until("k", t, t)
        waits.append(0.0 if until is None else until - t)
        b.next("k", t)
        t += 5 + (waits[-1] or 0)  # restarted after the wait, crashed 5 s later
    assert waits == [0, 10, 20, 40, 80, 160, 300, 300]


def test_backoff_is_over_once_the_delay_passed() -> None:
    b = RestartBackoff(initial=10, maximum=300)
    b.next("k", 100)
    assert b.wait_until("k", 105, 110) == 115
    assert b.wait_until("k", 105, 115) is None


def test_backoff_resets_after_ten_quiet_minutes() -> None:
    b = RestartBackoff(initial=10, maximum=300)
    for t in (0.0, 20.0, 60.0):
        b.next("k", t)
    assert b.delay("k") == 40
    assert b.wait_until("k", 60 + 601, 60 + 601) is None  # ran > 10 min: no wait
    b.next("k", 661)
    assert b.delay("k") == 10


def test_backoff_keys_are_independent_and_forgettable() -> None:
    b = RestartBackoff(initial=1, maximum=4)
    b.next("a", 0)
    assert b.wait_until("b", 0, 0) is None
    b.forget("a")
    assert b.wait_until("a", 0, 0) is None


@pytest.mark.parametrize("seconds,text", [(10, "10s"), (40, "40s"), (160, "2m40s"),
                                          (300, "5m0s"), (3700, "1h1m40s")])
def test_backoff_durations_print_like_go(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("views,phase", [
    ([terminated("app", 0)], "Succeeded"),
    ([terminated("app", 143)], "Failed"),
    ([crashloop("app")], "Failed"),
    ([waiting("app")], "Failed"),  # deleted before it ever ran
    ([running("app")], "Running"),  # still stopping
])
def test_killed_pod_reaches_a_terminal_phase_whatever_the_policy(
        views: list[ContainerView], phase: str) -> None:
    assert pod_phase(plan("app", policy="Always"), [], views, pod_terminal=True) == phase
