"""iptables proxy sync benchmark: full-sync wall time and partial-sync latency, in a netns.

Runs as root inside a throwaway network namespace (`svcnet-bench-<hex>`, deleted in
`finally`); nothing in the root namespace's tables is read or written. It synthesises
`--services` ClusterIP Services (one TCP port, clusterIP in 10.96.0.0/12) with
`--endpoints` ready endpoints each (EndpointSlices with the service-name label, 10.244.x.y
addresses spread over two nodes), as the raw API dicts the proxier's informers hold, and:

  1. full sync: what `IPTablesProxier.sync()` does on a full sync for the payload —
     `build_snapshot` + `compile_full` + `render_restore` + ONE `iptables-restore
     --noflush --counters` through the real `IPTables` edge — wall time, starting from
     empty tables. Each stage is timed separately too, so a reader sees where time goes.
     (Not included: the ~14 idempotent `ensure_chain`/`ensure_rule` jump calls and the
     `iptables-save -t nat` stale-chain read, fixed per-sync costs outside the payload;
     the latter is reported on its own as `read_existing_chains_s`.)
  2. anchor: bare `iptables-restore` (same binary, same argv and flags as the edge, same
     `ip netns exec` prefix) of the SAME payload text, from the same empty state. The two
     sides alternate run by run; tables are flushed (`-F`, `-X`) before every run, untimed.
     `ratio` = full sync / anchor: what svcnet adds on top of the kernel+tool floor.
  3. partial sync latency: with a full sync applied, replace the IP of one endpoint of one
     random Service (new SEP chain, stale one deleted) and time from that change to the
     rules being applied: `update_snapshot` (the previous snapshot with that Service's
     objects replaced, as the proxier does on a partial sync) +
     `compile_partial(changed={that Service})` + render + restore. Median and p99 over
     `--changes` changes. Anchor: bare restore of the same partial payload re-applied.

Timings are medians of `--runs` (after an untimed warm-up of the Python side). Prints one JSON
line. Targets (issue): ratio <= 1.2 at 5,000 x 10; partial median <= 100 ms.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from types import FrameType
from typing import Any, Callable

from svcnet.dataplane.iptables import WAIT_SECONDS, IPTables
from svcnet.proxy import SERVICE_NAME_LABEL, Snapshot, build_snapshot, update_snapshot
from svcnet.rules import IPTablesConfig, RuleSet, compile_full, compile_partial, \
    render_restore
from svcnet.rules.iptables_names import SERVICE_CHAIN_PREFIXES

NS = "bench"
NODE = "node-a"
NODES = ("node-a", "node-b")
CLUSTER_CIDR = "10.244.0.0/14"
_SVC_BASE = int(ipaddress.IPv4Address("10.96.0.1"))
_EP_BASE = int(ipaddress.IPv4Address("10.244.0.1"))
TARGETS = {"ratio": 1.2, "partial_sync_ms_median": 100}


# ---- synthetic cluster ------------------------------------------------------------------

def _ip(base: int, i: int) -> str:
    return str(ipaddress.IPv4Address(base + i))


def _service(i: int) -> dict[str, Any]:
    ip = _ip(_SVC_BASE, i)
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"svc-{i}", "namespace": NS},
            "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip],
                     "ipFamilies": ["IPv4"], "sessionAffinity": "None",
                     "internalTrafficPolicy": "Cluster",
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP",
                                "targetPort": 8080}]}}


def _endpoint(ip: str, node: str) -> dict[str, Any]:
    return {"addresses": [ip], "nodeName": node,
            "conditions": {"ready": True, "serving": True, "terminating": False}}


def _slice(i: int, eps: int) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"svc-{i}-x{i:05x}", "namespace": NS,
                         "labels": {SERVICE_NAME_LABEL: f"svc-{i}"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [_endpoint(_ip(_EP_BASE, i * eps + j), NODES[j % 2])
                          for j in range(eps)]}


def cluster(services: int, eps: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`services` Services and their EndpointSlices (one slice each, `eps` endpoints)."""
    return [_service(i) for i in range(services)], [_slice(i, eps) for i in range(services)]


# ---- the namespace ----------------------------------------------------------------------

def _sh(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: {res.stderr.strip()}")
    return res


def _reset(ns: str) -> None:
    """Empty nat and filter in the namespace (flush every chain, delete user chains)."""
    for table in ("nat", "filter"):
        for op in ("-F", "-X"):
            _sh(["ip", "netns", "exec", ns, "iptables", "-w", WAIT_SECONDS, "-t", table, op])


def _count(ns: str, table: str, prefix: str) -> int:
    out = _sh(["ip", "netns", "exec", ns, "iptables-save", "-t", table]).stdout
    return sum(1 for line in out.splitlines() if line.startswith(prefix))


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(143)  # unwind through `finally` so the namespace is deleted


# ---- the measurements -------------------------------------------------------------------

@dataclass
class FullSync:
    """One full sync: stage times (s), the applied RuleSet and its payload."""

    snapshot_s: float
    compile_s: float
    render_s: float
    restore_s: float
    ruleset: RuleSet
    payload: str
    snapshot: Snapshot

    @property
    def total_s(self) -> float:
        return self.snapshot_s + self.compile_s + self.render_s + self.restore_s


def full_sync(ipt: IPTables, cfg: IPTablesConfig, services: list[dict[str, Any]],
              slices: list[dict[str, Any]]) -> FullSync:
    t0 = time.perf_counter()
    snap = build_snapshot(services, slices, node_name=NODE)
    t1 = time.perf_counter()
    ruleset = compile_full(snap, cfg, existing_chains=())
    t2 = time.perf_counter()
    payload = render_restore(ruleset)
    t3 = time.perf_counter()
    ipt.restore(payload)
    t4 = time.perf_counter()
    return FullSync(t1 - t0, t2 - t1, t3 - t2, t4 - t3, ruleset, payload, snap)


def bare_restore(ns: str, payload: str, timeout: float) -> float:
    """Wall time of the same `iptables-restore` invocation as `IPTables.restore`, bare."""
    argv = ["ip", "netns", "exec", ns, "iptables-restore", "-w", WAIT_SECONDS, "--noflush",
            "--counters"]
    t0 = time.perf_counter()
    res = subprocess.run(argv, input=payload, capture_output=True, text=True, check=False,
                         timeout=timeout)
    elapsed = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"anchor restore failed: {res.stderr.strip()}")
    return elapsed


def _median(xs: list[float]) -> float:
    return statistics.median(xs)


def _p99(xs: list[float]) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(len(s) * 0.99))]


def bench(args: argparse.Namespace, ns: str) -> dict[str, Any]:
    ipt = IPTables(netns=ns, timeout=args.restore_timeout)
    cfg = IPTablesConfig(node_name=NODE, node_ips=("192.168.0.2",), cluster_cidr=CLUSTER_CIDR)
    services, slices = cluster(args.services, args.endpoints)

    # Warm-up (untimed) of the Python side; it also yields the anchor's payload. The
    # restore is not warmed separately: at 5,000 x 10 one takes minutes (iptables 1.8.9
    # nft backend grows ~quadratically with the number of chains in one payload).
    warm_payload = render_restore(compile_full(build_snapshot(services, slices,
                                                              node_name=NODE), cfg))

    fulls: list[FullSync] = []
    anchors: list[float] = []
    read_existing: list[float] = []
    for r in range(args.runs):
        sides: list[Callable[[], None]] = [
            lambda: fulls.append(full_sync(ipt, cfg, services, slices)),
            lambda: anchors.append(bare_restore(ns, warm_payload, args.restore_timeout)),
        ]
        for side in (sides if r % 2 == 0 else sides[::-1]):
            _reset(ns)
            side()
        if r == 0:
            svc_chains = _count(ns, "nat", ":KUBE-SVC-")
            if svc_chains != args.services:
                raise SystemExit(f"expected {args.services} KUBE-SVC chains, found "
                                 f"{svc_chains}")
        # What a periodic full resync also pays: reading the populated nat table.
        t0 = time.perf_counter()
        ipt.existing_chains("nat", SERVICE_CHAIN_PREFIXES)
        read_existing.append(time.perf_counter() - t0)
    if any(f.payload != warm_payload for f in fulls):
        raise SystemExit("full-sync payload is not deterministic; the anchor would differ")

    # Partial syncs, from the state the loop left: the last side applied the full-sync
    # payload (either side; it is the same text), so `previous` describes the kernel.
    previous = fulls[-1].ruleset
    snap = fulls[-1].snapshot
    rng = random.Random(42)
    next_ip = args.services * args.endpoints
    lat: list[float] = []
    stages: dict[str, list[float]] = {"snapshot": [], "compile": [], "render": [],
                                      "restore": []}
    partial_anchor: list[float] = []
    partial_lines: list[int] = []
    for _ in range(args.changes):
        i = rng.randrange(args.services)
        eps = slices[i]["endpoints"]
        j = rng.randrange(len(eps))
        t0 = time.perf_counter()
        eps[j] = _endpoint(_ip(_EP_BASE, next_ip), eps[j]["nodeName"])
        next_ip += 1
        key = (NS, f"svc-{i}")
        snap = update_snapshot(snap, {key: services[i]}, {key: [slices[i]]})
        t1 = time.perf_counter()
        ruleset = compile_partial(snap, cfg, {key}, previous)
        t2 = time.perf_counter()
        payload = render_restore(ruleset)
        t3 = time.perf_counter()
        ipt.restore(payload)
        t4 = time.perf_counter()
        previous = ruleset
        lat.append((t4 - t0) * 1000)
        for key, dt in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            stages[key].append(dt * 1000)
        partial_lines.append(payload.count("\n"))
        # Anchor: the same payload again, bare (declaring the stale chain re-creates it,
        # so `-X` succeeds again; the resulting state is the same).
        partial_anchor.append(bare_restore(ns, payload, args.restore_timeout) * 1000)
    sep_chains = _count(ns, "nat", ":KUBE-SEP-")
    if sep_chains != args.services * args.endpoints:
        raise SystemExit(f"expected {args.services * args.endpoints} KUBE-SEP chains after "
                         f"the partial syncs, found {sep_chains}")

    full_s = _median([f.total_s for f in fulls])
    anchor_s = _median(anchors)
    partial_med = _median(lat)
    return {
        "bench": "proxy_sync",
        "services": args.services, "endpoints_per_service": args.endpoints,
        "runs": args.runs, "changes": args.changes,
        "payload_lines": warm_payload.count("\n"), "payload_bytes": len(warm_payload),
        "full_sync_s": round(full_s, 4), "anchor_restore_s": round(anchor_s, 4),
        "ratio": round(full_s / anchor_s, 3),
        "snapshot_s": round(_median([f.snapshot_s for f in fulls]), 4),
        "compile_s": round(_median([f.compile_s for f in fulls]), 4),
        "render_s": round(_median([f.render_s for f in fulls]), 4),
        "restore_s": round(_median([f.restore_s for f in fulls]), 4),
        "read_existing_chains_s": round(_median(read_existing), 4),
        "partial_sync_ms_median": round(partial_med, 2),
        "partial_sync_ms_p99": round(_p99(lat), 2),
        "partial_stages_ms_median": {k: round(_median(v), 2) for k, v in stages.items()},
        "partial_anchor_restore_ms_median": round(_median(partial_anchor), 2),
        "partial_ratio": round(partial_med / _median(partial_anchor), 3),
        "partial_payload_lines": int(_median([float(x) for x in partial_lines])),
        "targets": TARGETS,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--services", type=int, default=5000)
    p.add_argument("--endpoints", type=int, default=10)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--changes", type=int, default=30)
    p.add_argument("--restore-timeout", type=float, default=1800.0,
                   help="seconds one iptables-restore through the edge may take")
    args = p.parse_args()
    if args.services < 1 or args.endpoints < 1 or args.runs < 1 or args.changes < 1:
        p.error("--services, --endpoints, --runs and --changes must be >= 1")
    if args.services * args.endpoints + args.changes > 4 * 65536 - 2:
        p.error("too many endpoints for 10.244.0.0/14")
    if os.geteuid() != 0:
        raise SystemExit("proxy_sync needs root (network namespaces, iptables)")
    ns = f"svcnet-bench-{secrets.token_hex(4)}"
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    created = False
    try:
        _sh(["ip", "netns", "add", ns])
        created = True
        result = bench(args, ns)
    finally:
        if created:  # never delete a namespace this run did not create
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True, check=False)
        signal.signal(signal.SIGTERM, previous)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
