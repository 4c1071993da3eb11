"""Work queue guarantees: coalescing, no concurrent processing of a key, retries."""

import asyncio

from svcnet.client.workqueue import WorkQueue


async def test_adds_coalesce_and_keep_order() -> None:
    q = WorkQueue()
    for k in ["a", "b", "a", "c", "b"]:
        q.add(k)
    assert len(q) == 3
    assert [await q.get() for _ in range(3)] == ["a", "b", "c"]


async def test_key_added_while_processing_is_requeued_after_done() -> None:
    q = WorkQueue()
    q.add("a")
    key = await q.get()
    q.add("a")
    assert len(q) == 0  # not handed to a second worker while in progress
    q.done(key)
    assert await asyncio.wait_for(q.get(), 1) == "a"


async def test_rate_limited_retry_backs_off_and_forget_resets() -> None:
    q = WorkQueue(base_delay=0.01)
    q.add_rate_limited("x")
    q.add_rate_limited("x")
    assert q.failures("x") == 2
    assert await asyncio.wait_for(q.get(), 1) == "x"
    q.done("x")
    q.forget("x")
    assert q.failures("x") == 0


async def test_get_waits_for_work() -> None:
    q = WorkQueue()
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0.01)
    assert not getter.done()
    q.add("late")
    assert await asyncio.wait_for(getter, 1) == "late"
