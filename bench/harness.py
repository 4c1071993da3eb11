"""What every API benchmark needs: a real `svcnet server` in a throwaway data dir.

`running_server()` starts one on a free loopback port, waits for its ready line, and
yields (url, admin token, data dir); the server's output goes to a file, never to an
unread pipe (which would block it), and the server is stopped with SIGTERM afterwards.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
import asyncio
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import aiohttp
import yaml

from svcnet.ports import free_loopback_port


def free_port() -> int:
    return free_loopback_port()


@contextmanager
def running_server(*extra: str) -> Iterator[tuple[str, str, Path]]:
    with tempfile.TemporaryDirectory(prefix="svcnet-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        port = free_port()
        log_path = Path(tmp) / "server.log"
        with open(log_path, "w") as log:
            proc = subprocess.Popen([sys.executable, "-m", "svcnet.cli.main", "server",
                                     "--data-dir", str(data_dir), "--listen",
                                     f"127.0.0.1:{port}", *extra],
                                    stdout=log, stderr=subprocess.STDOUT, text=True,
                                    # not the caller's cwd: from inside bench/, `python -m`
                                    # would import bench/dns.py as dnspython's `dns`
                                    cwd=tmp)
        try:
            deadline = time.monotonic() + 20
            while "ready" not in log_path.read_text():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"server failed to start: {log_path.read_text()}")
                time.sleep(0.05)
            cfg = yaml.safe_load((data_dir / "kubeconfig.yaml").read_text())
            yield f"https://127.0.0.1:{port}", cfg["users"][0]["user"]["token"], data_dir
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)


async def create_many(session: aiohttp.ClientSession, base: str, names: list[str],
                      make: Callable[[str], dict[str, Any]], workers: int = 16) -> float:
    """POST `make(name)` to `base` for every name, `workers` at a time; seconds taken."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for n in names:
        queue.put_nowait(n)

    async def worker() -> None:
        while not queue.empty():
            name = queue.get_nowait()
            async with session.post(base, json=make(name)) as r:
                if r.status != 201:
                    raise RuntimeError(f"create {name}: {r.status} {await r.text()}")
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return time.perf_counter() - t0
