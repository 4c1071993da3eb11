"""Restart policy and crash back-off (pure: time is always passed in).

Theory of operation, following the kubelet:

- `should_restart(policy, exit_code)` says whether an exited container is started again:
  `Always` restarts every exit, `OnFailure` only non-zero exits, `Never` nothing. Init
  containers use `OnFailure` semantics unless the pod says `Never` (a completed init
  container is never run again).
- `RestartBackoff` is the kubelet's per-container back-off. The FIRST exit of a container is
  restarted at once and arms an entry with the initial delay (10 s). Every later exit that
  comes within `2 × maximum` (10 minutes with the default 300 s cap) of the previous one
  must wait `delay` seconds counted from its finish time, and the restart after that wait
  doubles the delay up to `maximum`. A container that ran for longer than 10 minutes
  before exiting starts again from the initial delay. This is why `kubectl get pods` shows
  RESTARTS 1 almost at once and then CrashLoopBackOff with growing gaps.

The same back-off is used to retry container creation errors (CreateContainerError), with
the time of the failed attempt standing in for the finish time.
"""

from __future__ import annotations

from dataclasses import dataclass

POLICY_ALWAYS = "Always"
POLICY_ON_FAILURE = "OnFailure"
POLICY_NEVER = "Never"

DEFAULT_INITIAL = 10.0
DEFAULT_MAXIMUM = 300.0


def should_restart(policy: str, exit_code: int, *, init: bool = False) -> bool:
    """Whether a container that exited with `exit_code` is started again under the pod's
    `policy`. Unknown policies behave like `Always`, the API default."""
    if policy == POLICY_NEVER:
        return False
    if init or policy == POLICY_ON_FAILURE:
        return exit_code != 0
    return True


@dataclass
class _Entry:
    delay: float
    last_update: float


class RestartBackoff:
    """Per-key exponential back-off with the kubelet's expiry rule (see module docstring).

    Keys are opaque strings (the runtime uses `<pod uid>/<container>`). Nothing here reads a
    clock: callers pass the container's finish time and the current time, which lets the
    unit tests step through minutes of back-off without sleeping.
    """

    def __init__(self, initial: float = DEFAULT_INITIAL, maximum: float = DEFAULT_MAXIMUM) -> None:
        self.initial = initial
        self.maximum = max(maximum, initial)
        self._entries: dict[str, _Entry] = {}

    def _expired(self, entry: _Entry, event_time: float) -> bool:
        # An exit long after the previous one means the container ran fine for a while:
        # start counting from scratch.
        return event_time - entry.last_update > 2 * self.maximum

    def wait_until(self, key: str, finished_at: float, now: float) -> float | None:
        """If the container that finished at `finished_at` must still wait at `now`, the time
        at which it may start; else None (it may start now)."""
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, finished_at):
            return None
        deadline = finished_at + entry.delay
        return deadline if now < deadline else None

    def next(self, key: str, finished_at: float) -> None:
        """Record a restart of the container that finished at `finished_at`: arms the initial
        delay for a new or expired entry, doubles (up to the maximum) an existing one."""
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, finished_at):
            self._entries[key] = _Entry(self.initial, finished_at)
        else:
            entry.delay = min(entry.delay * 2, self.maximum)
            entry.last_update = finished_at

    def delay(self, key: str) -> float:
        """The current delay of `key` (the initial one if it has none yet), for messages."""
        entry = self._entries.get(key)
        return entry.delay if entry else self.initial

    def forget(self, key: str) -> None:
        """Drop `key` (its pod is gone)."""
        self._entries.pop(key, None)


def format_duration(seconds: float) -> str:
    """Go's `time.Duration.String()` for whole seconds, as the kubelet prints back-off
    delays in its CrashLoopBackOff message ("10s", "2m40s", "5m0s")."""
    total = int(round(seconds))
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m{secs}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes}m{secs}s"
