"""What the built-in images share: Go-style flags, the hostname, and a run loop that
serves until SIGTERM/SIGINT and then shuts down gracefully.

The images stand in for Kubernetes test images written in Go, whose manifests pass flags
the Go way: `--port=9376`, `-port 9376`, `--udp` or `--udp=false`. `add_flag` accepts all
of these spellings with argparse, so manifests copied from the Kubernetes docs run as is.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import sys
from typing import Any, Callable, Coroutine, Protocol


def go_bool(text: str) -> bool:
    """Parse a Go flag boolean (`strconv.ParseBool`)."""
    value = text.strip().lower()
    if value in ("1", "t", "true"):
        return True
    if value in ("0", "f", "false"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {text!r}")


def add_flag(parser: argparse.ArgumentParser, name: str, *, boolean: bool = False,
             **kw: Any) -> None:
    """Register flag `name` as `--name` and `-name`; a boolean flag also works bare."""
    kw.setdefault("dest", name.replace("-", "_"))
    if boolean:
        kw.update(type=go_bool, nargs="?", const=True, metavar="BOOL")
    parser.add_argument(f"--{name}", f"-{name}", **kw)


def hostname() -> str:
    """The container's hostname: the runtime sets the UTS hostname to the pod's."""
    return socket.gethostname()


def log(message: str) -> None:
    """One line to stderr, which the runtime keeps as the container's log."""
    print(message, file=sys.stderr, flush=True)


class Server(Protocol):
    """A server the run loop drives."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def serve_until_signal(server: Server, *, delay_shutdown: float = 0.0,
                             stop_event: asyncio.Event | None = None) -> None:
    """Start `server`, wait for SIGTERM or SIGINT (or `stop_event`), keep serving for
    `delay_shutdown` seconds (as agnhost's --delay-shutdown, so a test can watch
    endpoints go away while the pod still answers), then stop it."""
    loop = asyncio.get_running_loop()
    stop = stop_event or asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    try:
        await stop.wait()
        log("received a stop signal, shutting down")
        if delay_shutdown > 0:
            await asyncio.sleep(delay_shutdown)
    finally:
        await server.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def bound_port(addresses: list[Any], default: int) -> int:
    """The port of an aiohttp runner's listening sockets, preferring an IPv4 one: with port
    0 (tests) the IPv4 and IPv6 sockets get different ephemeral ports."""
    for addr in addresses:
        if isinstance(addr, tuple) and len(addr) == 2:
            return int(addr[1])
    return int(addresses[0][1]) if addresses else default


def run(make: Callable[[], Coroutine[Any, Any, None]]) -> int:
    """Run the coroutine made by `make` to completion; exit status 0, or 1 when a port
    cannot be bound (the error is logged, not a traceback)."""
    try:
        asyncio.run(make())
    except OSError as e:
        log(f"error: {e}")
        return 1
    return 0
