"""`svcnet agent`: the node agent (kubelet for process pods), one per node.

Run inside the node's network namespace (as `svcnet up` does). It serves pod logs, exec,
attach and port-forward on `--node-ip:--api-port` for the API server, and leaves running
Pods alone when it stops, so a restarted agent re-adopts them.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import ipaddress
import logging
import signal
import socket
import sys
from pathlib import Path

from aiohttp import web

from svcnet.client.http import HttpClient
from svcnet.dataplane.iptables import Conntrack, IPTables
from svcnet.node.agent import Agent
from svcnet.node.images import ImageCatalog
from svcnet.node.ipam import PodIPAM
from svcnet.node.kubelet_api import KubeletApi
from svcnet.node.plan import plan_pod
from svcnet.node.runtime import PodRuntime
from svcnet.node.sandbox import SandboxManager
from svcnet.node.stream_api import StreamingApi, close_sessions
from svcnet.node.types import NodeConfig
from svcnet.proxy.metrics import healthz_app, metrics_app
from svcnet.proxy.proxier import IPTablesProxier

log = logging.getLogger("svcnet.agent")
PROXY_MODES = ("iptables", "none")
#: How long in-flight requests may run on after SIGTERM (aiohttp's default is a minute,
#: spent twice): a stopping agent must not wait on a client's long-lived stream.
SHUTDOWN_SECONDS = 1.0  # nftables, ipvs, userspace: not implemented yet


def add_subcommands(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("agent", help="run a node agent (pods as processes in netns)")
    p.add_argument("--server", required=True, help="API server URL (https://HOST:PORT)")
    p.add_argument("--token", default="", help="node token (see `svcnet token create`)")
    p.add_argument("--token-file", type=Path, help="read the node token from this file")
    p.add_argument("--ca-file", type=Path, help="CA certificate of the API server")
    p.add_argument("--node-name", required=True)
    p.add_argument("--node-ip", default="", help="this node's address (default: the first "
                   "non-loopback IPv4 address of this network namespace)")
    p.add_argument("--pod-cidr", required=True, help="this node's pod range, e.g. "
                   "10.244.1.0/24")
    p.add_argument("--state-dir", type=Path, required=True,
                   help="per-node state: IP allocations, container state and logs")
    p.add_argument("--api-port", type=int, default=10250,
                   help="port for pod logs, exec, attach and port-forward")
    p.add_argument("--cluster-dns", default="10.96.0.10")
    p.add_argument("--cluster-domain", default="cluster.local")
    p.add_argument("--proxy-mode", default="iptables", choices=PROXY_MODES,
                   help="how Services are programmed on this node (default %(default)s; "
                        "none: not at all)")
    p.add_argument("--cluster-cidr", default="",
                   help="the cluster's pod range (kube-proxy --cluster-cidr): traffic from "
                        "outside it to a cluster IP is masqueraded")
    p.add_argument("--metrics-port", type=int, default=10249)
    p.add_argument("--healthz-port", type=int, default=10256)
    p.add_argument("--iptables-min-sync-period", type=float, default=1.0)
    p.add_argument("--iptables-sync-period", type=float, default=30.0)
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=run)


def _first_ipv4() -> str:
    """The first global IPv4 address of this network namespace (the node's uplink)."""
    import subprocess
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"],
                         capture_output=True, text=True, check=False).stdout
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            return parts[parts.index("inet") + 1].split("/")[0]
    return socket.gethostbyname(socket.gethostname())


async def serve(args: argparse.Namespace, token: str) -> int:
    ca = args.ca_file.read_bytes() if args.ca_file else None
    client = HttpClient(args.server, token=token, ca_pem=ca)
    node = NodeConfig(name=args.node_name, node_ip=args.node_ip or _first_ipv4(),
                      pod_cidr=args.pod_cidr, state_dir=args.state_dir,
                      cluster_dns=args.cluster_dns, cluster_domain=args.cluster_domain)
    node.state_dir.mkdir(parents=True, exist_ok=True)
    sandboxes = SandboxManager(node)
    runtime = PodRuntime(node, sandboxes)
    host_resolv = Path("/etc/resolv.conf").read_text() if Path("/etc/resolv.conf").exists() \
        else ""
    host_hosts = Path("/etc/hosts").read_text() if Path("/etc/hosts").exists() else ""
    images = ImageCatalog(bin_dir=str(node.state_dir / "bin"))
    planner = functools.partial(plan_pod, images=images, host_resolv=host_resolv,
                                host_hosts=host_hosts)
    agent = Agent(client, node, planner=planner, sandboxes=sandboxes, addresses=PodIPAM(node),
                  runtime=runtime, api_port=args.api_port)
    proxy_task: asyncio.Task[None] | None = None
    http_runners: list[web.AppRunner] = []
    if args.proxy_mode == "iptables":
        proxier = IPTablesProxier(client, node.name, [node.node_ip], args.cluster_cidr or None,
                                  IPTables(), Conntrack(),
                                  min_sync_period=args.iptables_min_sync_period,
                                  sync_period=args.iptables_sync_period)
        for app, port in ((metrics_app(proxier.metrics), args.metrics_port),
                          (healthz_app(proxier.health, proxier.metrics), args.healthz_port)):
            r = web.AppRunner(app, access_log=None, handle_signals=False,
                              shutdown_timeout=SHUTDOWN_SECONDS)
            await r.setup()
            await web.TCPSite(r, node.node_ip, port).start()
            http_runners.append(r)
        proxy_task = asyncio.create_task(proxier.run())

    def uid_of(ns: str, name: str) -> str | None:
        pod = agent.pods.get(ns, name)
        return None if pod is None else str(pod["metadata"]["uid"])
    api = KubeletApi(token, uid_of, runtime.logs,
                     StreamingApi(uid_of, runtime, images, str(sandboxes.run_netns)))
    runner = web.AppRunner(api.app(), access_log=None, handle_signals=False,
                           shutdown_timeout=SHUTDOWN_SECONDS)
    await runner.setup()
    await web.TCPSite(runner, node.node_ip, args.api_port).start()
    task = asyncio.create_task(agent.run())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await asyncio.wait({task, asyncio.ensure_future(stop.wait())},
                       return_when=asyncio.FIRST_COMPLETED)
    log.info("agent stopping (pods keep running)")
    task.cancel()
    failed = False
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception as e:
        log.error("agent failed: %s", e)
        failed = True
    if proxy_task is not None:
        proxy_task.cancel()
        await asyncio.gather(proxy_task, return_exceptions=True)
    await close_sessions()
    for r in [runner, *http_runners]:
        await r.cleanup()
    await client.close()
    return 1 if failed else 0


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    token = args.token
    if args.token_file:
        try:
            token = args.token_file.read_text().strip()
        except OSError as e:
            print(f"svcnet agent: {args.token_file}: {e.strerror}", file=sys.stderr)
            return 2
    if not token:
        print("svcnet agent: a node token is required (--token or --token-file)",
              file=sys.stderr)
        return 2
    try:
        ipaddress.ip_network(args.pod_cidr, strict=True)
        if args.node_ip:
            ipaddress.ip_address(args.node_ip)
    except ValueError as e:
        print(f"svcnet agent: {e}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(serve(args, token))
    except OSError as e:
        print(f"svcnet agent: {e.strerror or e}", file=sys.stderr)
        return 1
