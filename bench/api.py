"""API server benchmark: create, list and watch-fan-out figures over HTTPS.

Starts a real `svcnet server` (SQLite datastore) in a temporary data dir, then:
  1. creates `--creates` Services over HTTPS (concurrency 16) -> creates/s;
  2. fills up to `--services` Services, lists them all (median of 5) -> list seconds;
  3. opens `--watchers` concurrent watches, patches one Service `--changes` times, and
     measures from sending each patch to the moment the last watcher has the event
     -> median and p99 delivery ms.
Anchor, run in the same process and same HTTPS stack: a static aiohttp handler serving the
same list bytes (the floor any Python HTTPS server pays), so `list_ratio` says what the API
server adds. Prints one JSON line. Targets (issue 2): list of 10,000 < 0.5 s; median
delivery to 100 watchers < 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from harness import create_many, running_server
from aiohttp import web


def _svc(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "labels": {"app": name, "bench": "api"}},
            "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80,
                                                            "targetPort": 8080}]}}


async def _anchor(ctx: ssl.SSLContext, server_ctx: ssl.SSLContext, body: bytes) -> float:
    async def handler(_: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")
    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    times = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as s:
        for _ in range(5):
            t0 = time.perf_counter()
            async with s.get(f"https://127.0.0.1:{port}/") as r:
                json.loads(await r.read())
            times.append(time.perf_counter() - t0)
    await runner.cleanup()
    return statistics.median(times)


async def bench(args: argparse.Namespace, url: str, token: str, data_dir: Path) -> dict[str, Any]:
    ctx = ssl.create_default_context(cafile=str(data_dir / "pki" / "ca.crt"))
    headers = {"Authorization": f"Bearer {token}"}
    base = f"{url}/api/v1/namespaces/bench/services"
    conn = aiohttp.TCPConnector(ssl=ctx, limit=0)
    async with aiohttp.ClientSession(headers=headers, connector=conn) as s:
        async with s.post(f"{url}/api/v1/namespaces", json={"metadata": {"name": "bench"}}) as r:
            assert r.status == 201, await r.text()
        t_create = await create_many(s, base, [f"svc-{i}" for i in range(args.creates)], _svc)
        if args.services > args.creates:
            await create_many(s, base, [f"svc-{i}" for i in range(args.creates, args.services)],
                              _svc)
        list_times, body = [], b""
        for _ in range(5):
            t0 = time.perf_counter()
            async with s.get(base) as r:
                body = await r.read()
                n = len(json.loads(body)["items"])
            list_times.append(time.perf_counter() - t0)
        assert n == args.services, n
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(str(data_dir / "pki" / "server.crt"),
                                   str(data_dir / "pki" / "server.key"))
        anchor = await _anchor(ctx, server_ctx, body)

        # watch fan-out, from the current resourceVersion (no history replay)
        rv = json.loads(body)["metadata"]["resourceVersion"]
        arrivals: dict[str, list[float]] = {}
        ready = 0

        async def watcher() -> None:
            nonlocal ready
            async with s.get(f"{base}?watch=true&resourceVersion={rv}&timeoutSeconds=300",
                             timeout=aiohttp.ClientTimeout(total=None)) as r:
                ready += 1
                async for line in r.content:
                    ev = json.loads(line)
                    mark = ev["object"]["metadata"].get("labels", {}).get("mark")
                    if mark:
                        arrivals.setdefault(mark, []).append(time.perf_counter())
        tasks = [asyncio.create_task(watcher()) for _ in range(args.watchers)]
        while ready < args.watchers:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        delivery = []
        for i in range(args.changes):
            mark = f"m{i}"
            t0 = time.perf_counter()
            async with s.patch(f"{base}/svc-0", data=json.dumps(
                    {"metadata": {"labels": {"mark": mark}}}),
                    headers={"Content-Type": "application/merge-patch+json"}) as r:
                assert r.status == 200, await r.text()
            while len(arrivals.get(mark, [])) < args.watchers:
                await asyncio.sleep(0.001)
            delivery.append((max(arrivals[mark]) - t0) * 1000)
            await asyncio.sleep(0.05)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    delivery.sort()
    list_s = statistics.median(list_times)
    return {
        "bench": "api",
        "creates": args.creates, "creates_per_s": round(args.creates / t_create, 1),
        "services_listed": args.services, "list_s": round(list_s, 4),
        "anchor_static_list_s": round(anchor, 4), "list_ratio": round(list_s / anchor, 2),
        "watchers": args.watchers, "changes": args.changes,
        "delivery_ms_median": round(statistics.median(delivery), 2),
        "delivery_ms_p99": round(delivery[min(len(delivery) - 1,
                                               int(len(delivery) * 0.99))], 2),
        "targets": {"list_s": 0.5, "delivery_ms_median": 50},
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--creates", type=int, default=1000)
    p.add_argument("--services", type=int, default=10000)
    p.add_argument("--watchers", type=int, default=100)
    p.add_argument("--changes", type=int, default=30)
    args = p.parse_args()
    with running_server() as (url, token, data_dir):
        result = asyncio.run(bench(args, url, token, data_dir))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
