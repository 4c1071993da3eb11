"""Waiting on a file descriptor from the event loop: until it is readable (data, EOF, or
a pidfd's process exit) or writable, without a thread. Pipes, ptys and pidfds all go
through these, so a cancelled wait never leaves a thread blocked on the fd."""

from __future__ import annotations

import asyncio


def _wake(ready: "asyncio.Future[None]") -> None:
    if not ready.done():
        ready.set_result(None)


async def readable(fd: int, timeout: float | None = None) -> bool:
    """Wait until `fd` is readable; False if `timeout` seconds pass first."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    loop.add_reader(fd, _wake, ready)
    try:
        await asyncio.wait_for(ready, timeout)
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)
    return True


async def writable(fd: int) -> None:
    """Wait until `fd` is writable."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    loop.add_writer(fd, _wake, ready)
    try:
        await ready
    finally:
        loop.remove_writer(fd)
