"""Probe specs and the per-container probe state machine (pure: time is passed in).

`probes_from_pod(pod)` turns the `livenessProbe` / `readinessProbe` / `startupProbe` of a
Pod's containers into `ContainerProbes` values (named ports resolved against the container's
`ports`). `ProbeTracker` is the kubelet's probe worker logic for ONE attempt of one
container; the runtime asks it which probes are due, runs them (probes.py), and feeds the
results back. A new attempt (restart) gets a new tracker, as the kubelet starts new workers.

Theory of operation (kubelet `prober/worker.go` semantics):

- Every probe first runs `initialDelaySeconds` after the container started, then once per
  `periodSeconds` (counted from the start of the previous run; a probe still running is
  never started twice).
- Results pass a hysteresis: the effective result only flips to failure after
  `failureThreshold` consecutive failures and to success after `successThreshold`
  consecutive successes. Initial effective results: readiness = failure (not ready until
  proven), liveness = success, startup = unknown (not started).
- While a startup probe exists and has not succeeded, liveness and readiness do not run and
  the container is not `started` (nor ready). When it succeeds it stops for good, and
  liveness/readiness run at once if their initial delay has passed.
- Liveness or startup reaching the failure threshold asks for a restart; the tracker then
  holds (runs nothing more), like the kubelet's worker "on hold" until the container is
  replaced.
- No readiness probe: ready = started. No startup probe: started from the beginning.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Mapping


class ProbeKind(enum.StrEnum):
    """The three probe kinds; the values are the words kubelet events use."""

    STARTUP = "Startup"
    LIVENESS = "Liveness"
    READINESS = "Readiness"


@dataclass(frozen=True)
class HTTPGetAction:
    """`httpGet`: GET `path` on `host` (default: the pod IP) and `port`; 200–399 passes.
    `port` stays a string when a named port could not be resolved, so the probe fails
    with a message that names it instead of the pod being rejected."""

    port: int | str
    path: str = "/"
    host: str = ""
    scheme: str = "HTTP"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class TCPSocketAction:
    """`tcpSocket`: a TCP connect to `host` (default: the pod IP) and `port` passes."""

    port: int | str
    host: str = ""


@dataclass(frozen=True)
class ExecAction:
    """`exec`: run `command` inside the container; exit status 0 passes."""

    command: tuple[str, ...]


ProbeAction = HTTPGetAction | TCPSocketAction | ExecAction


@dataclass(frozen=True)
class ProbeSpec:
    """One probe with its timing (seconds; floats allowed so tests can run fast)."""

    action: ProbeAction
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3
    termination_grace: float | None = None  # probe-level terminationGracePeriodSeconds


@dataclass(frozen=True)
class ContainerProbes:
    """The probes of one container (any may be absent)."""

    liveness: ProbeSpec | None = None
    readiness: ProbeSpec | None = None
    startup: ProbeSpec | None = None

    def get(self, kind: ProbeKind) -> ProbeSpec | None:
        """The spec of `kind`, if configured."""
        return {ProbeKind.LIVENESS: self.liveness, ProbeKind.READINESS: self.readiness,
                ProbeKind.STARTUP: self.startup}[kind]


NO_PROBES = ContainerProbes()


def _port(value: Any, named: Mapping[str, int]) -> int | str:
    if isinstance(value, int):
        return value
    text = str(value)
    if text.isdigit():
        return int(text)
    return named.get(text, text)


def _num(probe: Mapping[str, Any], key: str, default: float) -> float:
    value = probe.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else default


def probe_from_dict(probe: Mapping[str, Any] | None,
                    named_ports: Mapping[str, int] | None = None) -> ProbeSpec | None:
    """A `ProbeSpec` from an API probe object, or None when it has no handler svcnet runs
    (gRPC probes are not supported and are treated as absent rather than always failing)."""
    if not isinstance(probe, Mapping):
        return None
    ports = named_ports or {}
    action: ProbeAction
    if isinstance(probe.get("httpGet"), Mapping):
        h = probe["httpGet"]
        headers = tuple((str(x.get("name", "")), str(x.get("value", "")))
                        for x in h.get("httpHeaders") or [] if isinstance(x, Mapping))
        action = HTTPGetAction(port=_port(h.get("port"), ports), path=str(h.get("path") or "/"),
                               host=str(h.get("host") or ""),
                               scheme=str(h.get("scheme") or "HTTP").upper(), headers=headers)
    elif isinstance(probe.get("tcpSocket"), Mapping):
        t = probe["tcpSocket"]
        action = TCPSocketAction(port=_port(t.get("port"), ports), host=str(t.get("host") or ""))
    elif isinstance(probe.get("exec"), Mapping):
        action = ExecAction(command=tuple(str(a) for a in probe["exec"].get("command") or []))
    else:
        return None
    grace = probe.get("terminationGracePeriodSeconds")
    return ProbeSpec(
        action=action,
        initial_delay=_num(probe, "initialDelaySeconds", 0.0),
        period=max(_num(probe, "periodSeconds", 10.0), 0.05),
        timeout=max(_num(probe, "timeoutSeconds", 1.0), 0.05),
        success_threshold=max(int(_num(probe, "successThreshold", 1)), 1),
        failure_threshold=max(int(_num(probe, "failureThreshold", 3)), 1),
        termination_grace=float(grace) if isinstance(grace, (int, float)) else None,
    )


def probes_from_container(container: Mapping[str, Any]) -> ContainerProbes:
    """The probes of one API container object."""
    named = {str(p["name"]): int(p["containerPort"]) for p in container.get("ports") or []
             if isinstance(p, Mapping) and p.get("name") and p.get("containerPort")}
    return ContainerProbes(
        liveness=probe_from_dict(container.get("livenessProbe"), named),
        readiness=probe_from_dict(container.get("readinessProbe"), named),
        startup=probe_from_dict(container.get("startupProbe"), named),
    )


def probes_from_pod(pod: Mapping[str, Any]) -> dict[str, ContainerProbes]:
    """Probes of every regular container of an API Pod, by container name (init containers
    are not probed, as in Kubernetes)."""
    spec = pod.get("spec") or {}
    return {str(c.get("name")): probes_from_container(c)
            for c in spec.get("containers") or [] if isinstance(c, Mapping)}


@dataclass
class _Slot:
    """Worker state of one probe kind."""

    spec: ProbeSpec
    next_due: float
    result: bool | None  # effective result after thresholds; None = unknown (startup)
    in_flight: bool = False
    last_raw: bool | None = None
    run: int = 0


@dataclass(frozen=True)
class ProbeChange:
    """What one recorded result changed (all False/None: nothing visible changed)."""

    ready_changed: bool = False
    started_changed: bool = False
    restart: ProbeKind | None = None


class ProbeTracker:
    """Probe state of one container attempt. See the module docstring for the rules.

    `initially_ready` / `initially_started` seed the state from the Pod status the API
    already holds, so an agent that restarts does not flip its running pods to NotReady
    while it re-probes them (the kubelet does the same).
    """

    def __init__(self, probes: ContainerProbes, started_at: float, *,
                 initially_ready: bool = False, initially_started: bool = False) -> None:
        self.probes = probes
        self._slots: dict[ProbeKind, _Slot] = {}
        self._started = probes.startup is None or initially_started
        self.restart_reason: ProbeKind | None = None
        self.restart_message = ""
        for kind in ProbeKind:
            spec = probes.get(kind)
            if spec is None or (kind is ProbeKind.STARTUP and self._started):
                continue
            initial = {ProbeKind.LIVENESS: True, ProbeKind.READINESS: initially_ready,
                       ProbeKind.STARTUP: None}[kind]
            self._slots[kind] = _Slot(spec, started_at + spec.initial_delay, initial)

    @property
    def started(self) -> bool:
        """The startup probe succeeded (or there is none)."""
        return self._started

    @property
    def ready(self) -> bool:
        """Readiness verdict: started and (no readiness probe or it passes) and not being
        restarted by a failed liveness probe."""
        if not self._started or self.restart_reason is not None:
            return False
        slot = self._slots.get(ProbeKind.READINESS)
        return True if slot is None else bool(slot.result)

    def _eligible(self, kind: ProbeKind) -> bool:
        if self.restart_reason is not None:
            return False  # on hold until the container is replaced
        if kind is ProbeKind.STARTUP:
            return not self._started
        return self._started

    def due(self, now: float) -> list[ProbeKind]:
        """Probe kinds that should start running at `now` (startup first)."""
        return [kind for kind, slot in self._slots.items()
                if self._eligible(kind) and not slot.in_flight and slot.next_due <= now]

    def begin(self, kind: ProbeKind, now: float) -> ProbeSpec:
        """Mark `kind` as running from `now`; returns its spec. The next run is due one
        period after this one started."""
        slot = self._slots[kind]
        slot.in_flight = True
        slot.next_due = now + slot.spec.period
        return slot.spec

    def record(self, kind: ProbeKind, success: bool, now: float,
               message: str = "") -> ProbeChange:
        """Feed the raw result of a run of `kind` that finished at `now`."""
        slot = self._slots.get(kind)
        if slot is None:
            return ProbeChange()
        slot.in_flight = False
        if not self._eligible(kind):
            return ProbeChange()  # result of a run that no longer matters
        if success == slot.last_raw:
            slot.run += 1
        else:
            slot.last_raw, slot.run = success, 1
        threshold = slot.spec.success_threshold if success else slot.spec.failure_threshold
        if slot.run < threshold or slot.result == success:
            return ProbeChange()
        before_ready = self.ready
        slot.result = success
        if kind is ProbeKind.STARTUP:
            if not success:
                return self._ask_restart(kind, message, before_ready)
            self._started = True
            for other in (ProbeKind.LIVENESS, ProbeKind.READINESS):
                if other in self._slots:
                    self._slots[other].next_due = max(self._slots[other].next_due, now)
            return ProbeChange(ready_changed=self.ready != before_ready, started_changed=True)
        if kind is ProbeKind.LIVENESS:
            return self._ask_restart(kind, message, before_ready) if not success else ProbeChange()
        return ProbeChange(ready_changed=self.ready != before_ready)

    def _ask_restart(self, kind: ProbeKind, message: str, before_ready: bool) -> ProbeChange:
        self.restart_reason = kind
        self.restart_message = message
        return ProbeChange(ready_changed=self.ready != before_ready, restart=kind)

    def next_due(self) -> float | None:
        """The earliest time a probe becomes due, or None when none will (all absent, all
        in flight, or on hold)."""
        times = [slot.next_due for kind, slot in self._slots.items()
                 if self._eligible(kind) and not slot.in_flight]
        return min(times) if times else None
