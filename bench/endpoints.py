"""EndpointSlice latency benchmark: from a Pod's Ready flip to the slice update at a watcher.

Starts a real `svcnet server` (controllers included), creates `--services` Services with
`--pods` Pods each (marked Running+Ready with IPs through the status subresource, as a
kubelet would), waits until every Service has its slice, then flips the Ready condition of
`--flips` random Pods one at a time and measures, at an EndpointSlice watcher, the time
from sending the status patch to receiving the slice whose endpoint shows the new state.
Anchor in the same run: the time for the Pod's own status change to reach a Pod watcher
(the floor the API itself imposes). Prints one JSON line. Target (issue 4): p99 < 200 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import ssl
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from harness import running_server

NS = "bench"


def _ip(i: int) -> str:
    return f"10.{244 + i // 65536}.{(i // 256) % 256}.{i % 256}"


async def _pool(n: int, fn: Any, concurrency: int = 16) -> None:
    it = iter(range(n))

    async def worker() -> None:
        for i in it:
            await fn(i)
    await asyncio.gather(*(worker() for _ in range(concurrency)))


def _status(i: int, ready: bool) -> dict[str, Any]:
    return {"status": {"phase": "Running", "podIP": _ip(i), "podIPs": [{"ip": _ip(i)}],
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


async def bench(args: argparse.Namespace, url: str, token: str, data_dir: Path) -> dict[str, Any]:
    ctx = ssl.create_default_context(cafile=str(data_dir / "pki" / "ca.crt"))
    api = f"{url}/api/v1/namespaces/{NS}"
    slices_url = f"{url}/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices"
    merge = {"Content-Type": "application/merge-patch+json"}
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"},
                                     connector=aiohttp.TCPConnector(ssl=ctx, limit=0)) as s:
        async def post(path: str, body: Any) -> None:
            async with s.post(path, json=body) as r:
                assert r.status == 201, await r.text()
        await post(f"{url}/api/v1/namespaces", {"metadata": {"name": NS}})
        # Nodes the Pods run on (Pods on unknown Nodes are left out of slices, as upstream)
        for n in range(args.nodes):
            await post(f"{url}/api/v1/nodes", {"metadata": {"name": f"node-{n}"}})
            async with s.patch(f"{url}/api/v1/nodes/node-{n}/status", data=json.dumps(
                    {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
                    headers=merge) as r:
                assert r.status == 200, await r.text()
        n_pods = args.services * args.pods
        t0 = time.perf_counter()
        await _pool(args.services, lambda i: post(f"{api}/services", {
            "metadata": {"name": f"svc-{i}"},
            "spec": {"selector": {"app": f"a{i}"}, "ports": [{"port": 80, "targetPort": 8080}]}}))

        async def make_pod(i: int) -> None:
            await post(f"{api}/pods", {"metadata": {"name": f"pod-{i}", "labels": {
                "app": f"a{i // args.pods}"}}, "spec": {
                    "nodeName": f"node-{i % args.nodes}",  # bound, as after scheduling
                    "containers": [{"name": "c", "image": "busybox"}]}})
            async with s.patch(f"{api}/pods/pod-{i}/status", data=json.dumps(_status(i, True)),
                               headers=merge) as r:
                assert r.status == 200, await r.text()
        await _pool(n_pods, make_pod)
        setup_s = time.perf_counter() - t0

        async def ready_endpoints() -> int:
            async with s.get(slices_url) as r:
                items = (await r.json())["items"]
            return sum(1 for sl in items for e in sl.get("endpoints") or []
                       if e.get("conditions", {}).get("ready"))
        t0 = time.perf_counter()
        while await ready_endpoints() < n_pods:
            if time.perf_counter() - t0 > 300:
                raise SystemExit("endpoint slices did not converge")
            await asyncio.sleep(0.5)
        converge_s = time.perf_counter() - t0

        async with s.get(slices_url) as r:
            rv = (await r.json())["metadata"]["resourceVersion"]
        seen_slice: dict[tuple[str, bool], float] = {}
        seen_pod: dict[tuple[str, bool], float] = {}

        async def watch(path: str, record: Any) -> None:
            async with s.get(f"{path}?watch=true&resourceVersion={rv}",
                             timeout=aiohttp.ClientTimeout(total=None)) as r:
                async for line in r.content:
                    record(json.loads(line)["object"], time.perf_counter())

        def on_slice(obj: dict[str, Any], t: float) -> None:
            for e in obj.get("endpoints") or []:
                key = (e["addresses"][0], bool(e.get("conditions", {}).get("ready")))
                seen_slice.setdefault(key, t)

        def on_pod(obj: dict[str, Any], t: float) -> None:
            st = obj.get("status", {})
            ready = any(c["type"] == "Ready" and c["status"] == "True"
                        for c in st.get("conditions", []))
            seen_pod.setdefault((st.get("podIP", ""), ready), t)
        tasks = [asyncio.create_task(watch(slices_url, on_slice)),
                 asyncio.create_task(watch(f"{api}/pods", on_pod))]
        await asyncio.sleep(0.5)
        seen_slice.clear()
        seen_pod.clear()
        lat, floor = [], []
        rng = random.Random(7)
        for i in rng.sample(range(n_pods), args.flips):
            key = (_ip(i), False)
            t_send = time.perf_counter()
            async with s.patch(f"{api}/pods/pod-{i}/status", data=json.dumps(_status(i, False)),
                               headers=merge) as r:
                assert r.status == 200
            while key not in seen_slice:
                if time.perf_counter() - t_send > 10:
                    raise SystemExit(f"no slice update for pod-{i}")
                await asyncio.sleep(0.0005)
            lat.append((seen_slice[key] - t_send) * 1000)
            floor.append((seen_pod[key] - t_send) * 1000)
            await asyncio.sleep(0.02)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    lat.sort()
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    return {"bench": "endpoints", "services": args.services, "pods_per_service": args.pods,
            "flips": args.flips, "setup_s": round(setup_s, 1), "converge_s": round(converge_s, 1),
            "ready_to_slice_ms_median": round(statistics.median(lat), 2),
            "ready_to_slice_ms_p99": round(p99, 2),
            "anchor_pod_watch_ms_median": round(statistics.median(floor), 2),
            "ratio_median": round(statistics.median(lat) / statistics.median(floor), 2),
            "targets": {"ready_to_slice_ms_p99": 200}}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--services", type=int, default=1000)
    p.add_argument("--pods", type=int, default=10)
    p.add_argument("--flips", type=int, default=200)
    p.add_argument("--nodes", type=int, default=2)
    args = p.parse_args()
    with running_server() as (url, token, data_dir):
        result = asyncio.run(bench(args, url, token, data_dir))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
