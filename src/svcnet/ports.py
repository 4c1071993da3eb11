"""Picking a loopback port for a server to listen on (tests, benchmarks, local tools)."""

from __future__ import annotations

import random
import socket
from pathlib import Path


def free_loopback_port(host: str = "127.0.0.1") -> int:
    """A port on `host` free for both TCP and UDP, from below the kernel's ephemeral range.

    Not a port the kernel picks (bind to 0): those are ephemeral, and between this check
    and the server's bind any outgoing connection or UDP query on the machine may be given
    the same port. Ports below that range are never handed out that way. Raises
    RuntimeError when none is found.
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(10000, max(low, 10001))
        try:
            with socket.socket() as t, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                t.bind((host, port))
                u.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no free port on {host} below the ephemeral range")
