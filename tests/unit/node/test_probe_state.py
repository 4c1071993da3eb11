"""The probe state machine and probe spec parsing, stepped with explicit times (no sleeping)."""

from __future__ import annotations

from typing import Callable

import pytest

from svcnet.node.probe_state import (
    ContainerProbes,
    ExecAction,
    HTTPGetAction,
    ProbeKind,
    ProbeSpec,
    ProbeTracker,
    TCPSocketAction,
    probes_from_pod,
)

Result = Callable[[ProbeKind, float], bool]


def spec(*, delay: float = 0, period: float = 10, success: int = 1, failure: int = 3,
         action: object = None) -> ProbeSpec:
    return ProbeSpec(action=action or TCPSocketAction(port=80),  # type: ignore[arg-type]
                     initial_delay=delay, period=period, success_threshold=success,
                     failure_threshold=failure)


def run(tracker: ProbeTracker, result: Result, until: float, step: float = 0.5,
        start: float = 0.0) -> list[tuple[float, bool, bool, ProbeKind | None]]:
    """Drive the tracker like the runtime does: every `step`, start what is due and (since
    probes here take no time) record its result at once. Returns (t, ready, started,
    restart) after each tick."""
    timeline = []
    t = start
    while t <= until:
        # A recorded result can make other probes due at once (startup success), and the
        # runtime then steps again immediately: so drain everything due at this time.
        while due := tracker.due(t):
            for kind in due:
                tracker.begin(kind, t)
                tracker.record(kind, result(kind, t), t)
        timeline.append((t, tracker.ready, tracker.started, tracker.restart_reason))
        t = round(t + step, 6)
    return timeline


def first_time(timeline: list[tuple[float, bool, bool, ProbeKind | None]],
               pred: Callable[[tuple[float, bool, bool, ProbeKind | None]], bool]) -> float:
    return next(row[0] for row in timeline if pred(row))


# -- parsing ------------------------------------------------------------------------------------

def test_parses_all_handlers_defaults_and_named_ports() -> None:
    pod = {"spec": {"containers": [{
        "name": "web",
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http",
                                       "httpHeaders": [{"name": "X-Probe", "value": "1"}]},
                           "periodSeconds": 2, "failureThreshold": 4},
        "livenessProbe": {"tcpSocket": {"port": 8080}, "initialDelaySeconds": 5,
                          "terminationGracePeriodSeconds": 3},
        "startupProbe": {"exec": {"command": ["cat", "/tmp/up"]}, "timeoutSeconds": 2},
    }, {"name": "plain"}]}}
    probes = probes_from_pod(pod)
    web = probes["web"]
    assert web.readiness == ProbeSpec(
        action=HTTPGetAction(port=8080, path="/ready", headers=(("X-Probe", "1"),)),
        period=2, failure_threshold=4)
    assert web.liveness == ProbeSpec(action=TCPSocketAction(port=8080), initial_delay=5,
                                     termination_grace=3)
    assert web.startup == ProbeSpec(action=ExecAction(command=("cat", "/tmp/up")), timeout=2)
    assert probes["plain"] == ContainerProbes()


def test_unknown_named_port_is_kept_so_the_probe_fails_with_its_name() -> None:
    probes = probes_from_pod({"spec": {"containers": [
        {"name": "c", "readinessProbe": {"tcpSocket": {"port": "nope"}}}]}})
    assert probes["c"].readiness is not None
    assert probes["c"].readiness.action == TCPSocketAction(port="nope")


def test_grpc_probes_are_ignored_and_numeric_string_ports_accepted() -> None:
    probes = probes_from_pod({"spec": {"containers": [
        {"name": "c", "livenessProbe": {"grpc": {"port": 9000}},
         "readinessProbe": {"httpGet": {"port": "8080", "scheme": "https"}}}]}})
    assert probes["c"].liveness is None
    assert probes["c"].readiness is not None
    assert probes["c"].readiness.action == HTTPGetAction(port=8080, scheme="HTTPS")


# -- without probes ------------------------------------------------------------------------------

def test_no_probes_means_started_and_ready_and_nothing_due() -> None:
    tracker = ProbeTracker(ContainerProbes(), started_at=100.0)
    assert tracker.started and tracker.ready
    assert tracker.due(1e9) == [] and tracker.next_due() is None


# -- readiness -----------------------------------------------------------------------------------

def test_readiness_starts_false_and_passes_at_initial_delay() -> None:
    tracker = ProbeTracker(ContainerProbes(readiness=spec(delay=5, period=10)), started_at=0.0)
    assert not tracker.ready
    assert tracker.due(4.9) == []
    assert tracker.next_due() == 5.0
    timeline = run(tracker, lambda k, t: True, until=20)
    assert first_time(timeline, lambda r: r[1]) == 5.0


@pytest.mark.parametrize("period,failure", [(1, 1), (1, 3), (2, 2), (10, 3), (3, 5)])
def test_readiness_drops_within_failure_threshold_times_period(period: float,
                                                               failure: int) -> None:
    # The acceptance rule: a probe that starts failing takes the pod out of Ready within
    # failureThreshold x periodSeconds (here the failure begins just after a passing run,
    # the worst case).
    tracker = ProbeTracker(ContainerProbes(readiness=spec(period=period, failure=failure)),
                           started_at=0.0)
    breaks_at = 50.0 + 0.1
    timeline = run(tracker, lambda k, t: t < breaks_at, until=200, step=0.05)
    assert tracker.ready is False
    dropped = first_time(timeline, lambda r: r[0] > breaks_at and not r[1])
    assert dropped - breaks_at <= failure * period + 1e-6
    # ... and not earlier than failureThreshold consecutive failures allow.
    assert dropped - breaks_at > (failure - 1) * period - 1e-6


def test_single_failure_between_successes_does_not_unready() -> None:
    tracker = ProbeTracker(ContainerProbes(readiness=spec(period=1, failure=2)), started_at=0)
    timeline = run(tracker, lambda k, t: t not in (5.0, 7.0), until=10, step=1)
    assert all(ready for t, ready, _, _ in timeline)


def test_success_threshold_needs_consecutive_successes() -> None:
    tracker = ProbeTracker(ContainerProbes(readiness=spec(period=1, success=3, failure=1)),
                           started_at=0)
    timeline = run(tracker, lambda k, t: t != 1.0, until=10, step=1)
    # 0 ok, 1 fail (resets the run), 2, 3, 4 ok -> ready from t=4.
    assert first_time(timeline, lambda r: r[1]) == 4.0


def test_ready_again_after_recovery() -> None:
    tracker = ProbeTracker(ContainerProbes(readiness=spec(period=1, failure=2)), started_at=0)
    timeline = run(tracker, lambda k, t: not 3 <= t < 6, until=10, step=1)
    states = [(t, ready) for t, ready, _, _ in timeline]
    assert states[:5] == [(0, True), (1, True), (2, True), (3, True), (4, False)]
    assert (6, True) in states and tracker.ready


def test_initially_ready_seed_keeps_ready_until_threshold() -> None:
    tracker = ProbeTracker(ContainerProbes(readiness=spec(period=1, failure=2)), started_at=0,
                           initially_ready=True)
    assert tracker.ready
    tracker.begin(ProbeKind.READINESS, 0)
    tracker.record(ProbeKind.READINESS, False, 0)
    assert tracker.ready


# -- scheduling ----------------------------------------------------------------------------------

def test_in_flight_probe_is_not_started_twice_and_period_counts_from_start() -> None:
    tracker = ProbeTracker(ContainerProbes(liveness=spec(period=2)), started_at=0)
    assert tracker.due(0) == [ProbeKind.LIVENESS]
    tracker.begin(ProbeKind.LIVENESS, 0)
    assert tracker.due(5) == [] and tracker.next_due() is None  # still running
    tracker.record(ProbeKind.LIVENESS, True, 1.5)
    assert tracker.next_due() == 2.0


# -- liveness ------------------------------------------------------------------------------------

def test_liveness_failure_threshold_asks_restart_then_holds() -> None:
    tracker = ProbeTracker(ContainerProbes(liveness=spec(period=1, failure=3)), started_at=0)
    timeline = run(tracker, lambda k, t: t < 4, until=20, step=1)
    assert first_time(timeline, lambda r: r[3] is ProbeKind.LIVENESS) == 6.0
    assert tracker.due(100) == [] and tracker.next_due() is None
    assert not tracker.ready  # a container being restarted serves nothing


def test_liveness_alone_keeps_container_ready() -> None:
    tracker = ProbeTracker(ContainerProbes(liveness=spec(period=1, failure=1)), started_at=0)
    assert tracker.ready
    tracker.begin(ProbeKind.LIVENESS, 0)
    change = tracker.record(ProbeKind.LIVENESS, True, 0)
    assert change.restart is None and tracker.ready


def test_failure_message_is_kept_for_the_restart() -> None:
    tracker = ProbeTracker(ContainerProbes(liveness=spec(period=1, failure=1)), started_at=0)
    tracker.begin(ProbeKind.LIVENESS, 0)
    change = tracker.record(ProbeKind.LIVENESS, False, 0, "HTTP probe failed with statuscode: 500")
    assert change.restart is ProbeKind.LIVENESS and change.ready_changed
    assert tracker.restart_message == "HTTP probe failed with statuscode: 500"
    # results of runs that were in flight when the restart was decided change nothing
    assert tracker.record(ProbeKind.LIVENESS, True, 1).restart is None
    assert tracker.restart_reason is ProbeKind.LIVENESS


# -- startup -------------------------------------------------------------------------------------

def test_startup_gates_liveness_and_readiness() -> None:
    probes = ContainerProbes(startup=spec(period=1, failure=30),
                             liveness=spec(period=5, failure=1),
                             readiness=spec(period=5, delay=2))
    tracker = ProbeTracker(probes, started_at=0)
    seen: list[tuple[ProbeKind, float]] = []

    def result(kind: ProbeKind, t: float) -> bool:
        seen.append((kind, t))
        return kind is not ProbeKind.STARTUP or t >= 4  # startup passes at t=4
    timeline = run(tracker, result, until=12, step=1)
    assert [k for k, t in seen if t < 4] == [ProbeKind.STARTUP] * 4
    assert not any(started for t, _, started, _ in timeline if t < 4)
    # right after startup succeeds, liveness and readiness run at once (delays passed)
    assert (ProbeKind.LIVENESS, 4) in seen and (ProbeKind.READINESS, 4) in seen
    assert first_time(timeline, lambda r: r[1]) == 4
    assert ProbeKind.STARTUP not in [k for k, t in seen if t > 4]


def test_startup_failure_asks_restart() -> None:
    tracker = ProbeTracker(ContainerProbes(startup=spec(period=1, failure=3),
                                           readiness=spec(period=1)), started_at=0)
    timeline = run(tracker, lambda k, t: False, until=10, step=1)
    assert first_time(timeline, lambda r: r[3] is ProbeKind.STARTUP) == 2
    assert not tracker.started and not tracker.ready


def test_initially_started_seed_skips_startup_probe() -> None:
    tracker = ProbeTracker(ContainerProbes(startup=spec(period=1), readiness=spec(period=1)),
                           started_at=0, initially_started=True)
    assert tracker.started
    assert tracker.due(0) == [ProbeKind.READINESS]
