"""BoundedFrequencyRunner schedule, with a fake clock (no real waiting)."""

from __future__ import annotations

import asyncio

import pytest

from svcnet.proxy.runner import BoundedFrequencyRunner


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make(clock: FakeClock, results: list[bool | None] | None = None, *, duration: float = 0.0,
         min_interval: float = 1.0, max_interval: float = 30.0, retry_interval: float = 5.0
         ) -> tuple[BoundedFrequencyRunner, list[float]]:
    starts: list[float] = []
    queue = list(results or [])

    def fn() -> bool | None:
        starts.append(clock.now)
        clock.now += duration
        return queue.pop(0) if queue else None
    r = BoundedFrequencyRunner("t", fn, min_interval=min_interval, max_interval=max_interval,
                               retry_interval=retry_interval, clock=clock)
    return r, starts


async def test_first_request_runs_immediately() -> None:
    clock = FakeClock()
    r, starts = make(clock)
    assert not await r.run_if_due()
    r.request()
    assert await r.run_if_due()
    assert starts == [1000.0]


async def test_min_interval_from_end_of_run_and_coalescing() -> None:
    clock = FakeClock()
    r, starts = make(clock, duration=0.5)
    r.request()
    await r.run_if_due()               # runs 1000.0 .. 1000.5
    for _ in range(5):
        r.request()                    # a burst coalesces
    assert r.next_run_at() == 1001.5   # end (1000.5) + min_interval
    clock.now = 1001.4
    assert not await r.run_if_due()
    clock.now = 1001.5
    assert await r.run_if_due()
    assert not await r.run_if_due()    # burst cost one run
    assert starts == [1000.0, 1001.5]


async def test_request_during_run_causes_another_run() -> None:
    clock = FakeClock()
    holder: list[BoundedFrequencyRunner] = []

    def fn() -> None:
        if len(calls) == 0:
            holder[0].request()       # a change arrives while syncing
        calls.append(clock.now)
    calls: list[float] = []
    r = BoundedFrequencyRunner("t", fn, min_interval=1.0, max_interval=30.0,
                               retry_interval=5.0, clock=clock)
    holder.append(r)
    r.request()
    await r.run_if_due()
    assert r.pending and r.next_run_at() == 1001.0
    clock.now = 1001.0
    assert await r.run_if_due()
    assert calls == [1000.0, 1001.0]


async def test_runs_at_least_every_max_interval() -> None:
    clock = FakeClock()
    r, starts = make(clock)
    assert r.next_run_at() == 1030.0   # from construction before any run
    clock.now = 1030.0
    assert await r.run_if_due()
    assert r.next_run_at() == 1060.0
    clock.now = 1059.9
    assert not await r.run_if_due()


async def test_failure_retries_within_retry_interval() -> None:
    clock = FakeClock()
    r, starts = make(clock, [False, True])
    r.request()
    await r.run_if_due()
    assert r.failures == 1 and r.next_run_at() == 1005.0
    clock.now = 1005.0
    assert await r.run_if_due()
    assert r.retry_at is None and r.next_run_at() == 1035.0


async def test_exception_counts_as_failure() -> None:
    clock = FakeClock()

    def boom() -> None:
        raise RuntimeError("x")
    r = BoundedFrequencyRunner("t", boom, min_interval=1, max_interval=30, retry_interval=2,
                               clock=clock)
    r.request()
    await r.run_if_due()
    assert r.failures == 1 and r.next_run_at() == 1002.0


async def test_retry_never_sooner_than_min_interval() -> None:
    clock = FakeClock()
    r, _ = make(clock, [False], min_interval=10.0, max_interval=60.0, retry_interval=1.0)
    r.request()
    await r.run_if_due()
    assert r.next_run_at() == 1010.0
    r.retry_after(0)
    assert r.next_run_at() == 1010.0


async def test_async_fn_is_awaited() -> None:
    clock = FakeClock()
    seen: list[int] = []

    async def fn() -> bool:
        seen.append(1)
        return True
    r = BoundedFrequencyRunner("t", fn, min_interval=1, max_interval=30, retry_interval=2,
                               clock=clock)
    r.request()
    assert await r.run_if_due() and seen == [1]


def test_max_below_min_is_refused() -> None:
    with pytest.raises(ValueError):
        BoundedFrequencyRunner("t", lambda: None, min_interval=5, max_interval=1,
                               retry_interval=1, clock=FakeClock())


async def test_loop_sleeps_then_wakes_on_request() -> None:
    clock = FakeClock()
    sleeps: list[float] = []
    gate = asyncio.Event()

    async def sleep(d: float) -> None:
        sleeps.append(d)
        await gate.wait()              # never ends unless the test says so
    starts: list[float] = []
    r = BoundedFrequencyRunner("t", lambda: starts.append(clock.now), min_interval=1,
                               max_interval=30, retry_interval=2, clock=clock, sleep=sleep)
    task = asyncio.create_task(r.loop())
    for _ in range(5):
        await asyncio.sleep(0)
    assert sleeps == [30.0] and starts == []
    r.request()                        # wakes the loop: runs at once
    for _ in range(5):
        await asyncio.sleep(0)
    assert starts == [1000.0]
    assert sleeps[-1] == 30.0          # then sleeps until the periodic run
    clock.now = 1030.0
    gate.set()                         # the periodic sleep "ends"
    for _ in range(5):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert starts[:2] == [1000.0, 1030.0]
