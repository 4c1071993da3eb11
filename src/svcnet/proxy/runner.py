"""A bounded-frequency runner: kube-proxy's `async.BoundedFrequencyRunner`, for asyncio.

kube-proxy never syncs per event. Handlers only `request()` a run; this runner decides
when the sync function actually runs, with these guarantees (newer upstream contract,
`NewBoundedFrequencyRunner(name, fn, minInterval, retryInterval, maxInterval)`):

- at least `min_interval` seconds between the END of one run and the START of the next,
  whatever asked for it (request, retry or the periodic timer): a burst of changes costs
  one sync, and a slow sync cannot be followed by another at once;
- requests coalesce: any number of `request()` calls while a run is pending or in progress
  lead to exactly one further run (a request during a run does lead to one, because the
  run may have read its inputs before the change arrived);
- a run at least every `max_interval` seconds (counted from the end of the last run, or
  from construction before the first run), even with no requests;
- after a failed run (fn raised, or returned False) another run within `retry_interval`
  (but never sooner than `min_interval`).

Time is injected (`clock` returns seconds, `sleep` awaits seconds) so the schedule is unit
tested with a fake clock. The decision is a pure function of the state (`next_run_at`);
`run_if_due` performs at most one run; `loop` is the long-running task that sleeps until
the next run is due or a request wakes it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Awaitable, Callable

log = logging.getLogger("svcnet.proxy.runner")

#: The function run: returns None/True on success, False on failure (or raises).
SyncFunc = Callable[[], "bool | None | Awaitable[bool | None]"]
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class BoundedFrequencyRunner:
    """Runs `fn` when requested, rate-limited and periodic (see the module docstring).

    Not thread-safe: `request()` is called from the event loop that runs `loop()`.
    """

    def __init__(self, name: str, fn: SyncFunc, *, min_interval: float, max_interval: float,
                 retry_interval: float, clock: Clock, sleep: Sleep = asyncio.sleep) -> None:
        if min_interval < 0 or retry_interval < 0:
            raise ValueError("intervals must not be negative")
        if max_interval < min_interval:
            # Same refusal as upstream (which panics): the periodic run could never happen.
            raise ValueError(f"{name}: max_interval ({max_interval}) must be >= "
                             f"min_interval ({min_interval})")
        self.name = name
        self.fn = fn
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.retry_interval = retry_interval
        self.clock = clock
        self.sleep = sleep
        self.pending = False
        self.running = False
        self.runs = 0
        self.failures = 0
        self.last_start: float | None = None
        self.last_end: float | None = None
        self.retry_at: float | None = None
        self._created = clock()
        self._wake = asyncio.Event()

    # ---- asking for runs -----------------------------------------------------------------

    def request(self) -> None:
        """Ask for a run as soon as `min_interval` allows (kube's `Run()`); coalesces."""
        self.pending = True
        self._wake.set()

    def retry_after(self, delay: float) -> None:
        """Ask for a run `delay` seconds from now (kube's `RetryAfter`); the earliest of
        several retry requests wins."""
        at = self.clock() + max(0.0, delay)
        self.retry_at = at if self.retry_at is None else min(self.retry_at, at)
        self._wake.set()

    # ---- the schedule (pure over the state) ----------------------------------------------

    def next_run_at(self) -> float:
        """The absolute time of the next run: the earliest of pending request, retry and
        periodic deadline, never before `last_end + min_interval`."""
        earliest = float("-inf") if self.last_end is None else self.last_end + self.min_interval
        periodic = (self._created if self.last_end is None else self.last_end) + self.max_interval
        candidates = [periodic]
        if self.pending:
            candidates.append(earliest)
        if self.retry_at is not None:
            candidates.append(self.retry_at)
        return max(earliest, min(candidates))

    def is_due(self) -> bool:
        return self.clock() >= self.next_run_at()

    # ---- running -------------------------------------------------------------------------

    async def run_if_due(self) -> bool:
        """Run `fn` once if the schedule says so; returns whether it ran."""
        if self.running or not self.is_due():
            return False
        await self._run()
        return True

    async def _run(self) -> None:
        # Clear the triggers first: a request arriving during the run must cause another.
        self.pending = False
        self.retry_at = None
        self.running = True
        self.last_start = self.clock()
        ok = False
        try:
            result = self.fn()
            if inspect.isawaitable(result):
                result = await result
            ok = result is not False
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: run failed", self.name)
        finally:
            self.running = False
            self.last_end = self.clock()
            self.runs += 1
        if not ok:
            self.failures += 1
            at = self.last_end + self.retry_interval
            self.retry_at = at if self.retry_at is None else min(self.retry_at, at)

    async def loop(self) -> None:
        """Run forever (cancel the task to stop): sleep until the next run is due or a
        request/retry changes the schedule, then run."""
        while True:
            delay = self.next_run_at() - self.clock()
            if delay <= 0:
                await self._run()
                continue
            self._wake.clear()
            waker = asyncio.ensure_future(self._wake.wait())
            sleeper = asyncio.ensure_future(self.sleep(delay))
            try:
                await asyncio.wait({waker, sleeper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (waker, sleeper):
                    if not task.done():
                        task.cancel()
