"""`svcnet server`: the API server, the controllers and cluster DNS in one process."""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import ipaddress
import logging
import os
import signal
import sys
import time
from pathlib import Path

import yaml
from aiohttp import web

from svcnet.apiserver.auth import TokenFile
from svcnet.apiserver.allocator import parse_port_range
from svcnet.apiserver.server import DEFAULT_NODE_PORT_RANGE, DEFAULT_SERVICE_CIDR, ApiServer
from svcnet.apiserver.tls import ensure_pki
from svcnet.controllers.manager import default_controllers
from svcnet.dns.app import DnsConfig
from svcnet.dns.upstream import parse_upstream, upstreams_from_resolv_conf
from svcnet.store.factory import open_store
from svcnet.privatefile import write_private

log = logging.getLogger("svcnet.server")


def default_data_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/svcnet")
    return Path.home() / ".local" / "share" / "svcnet"


def parse_listen(value: str, flag: str = "--listen") -> tuple[str, int]:
    """HOST:PORT (IPv6 as [::1]:6443) -> (host, port); raises ValueError with the reason."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{flag} {value!r}: expected HOST:PORT with a port in 1-65535")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def write_kubeconfig(path: Path, server_url: str, ca_pem: bytes, token: str) -> None:
    cfg = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "svcnet", "cluster": {
            "server": server_url,
            "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
        "users": [{"name": "svcnet-admin", "user": {"token": token}}],
        "contexts": [{"name": "svcnet", "context": {"cluster": "svcnet", "user": "svcnet-admin",
                                                    "namespace": "default"}}],
        "current-context": "svcnet",
    }
    write_private(path, yaml.safe_dump(cfg, sort_keys=False))


def dns_settings(args: argparse.Namespace, advertise: str, prefix: str = "--dns-"
                 ) -> tuple[DnsConfig | None, str | None]:
    """(DNS config, IP the kube-dns endpoints use) from the flags of `add_dns_arguments`
    (spelled with `prefix` in messages); (None, None) without a listen address. Raises
    ValueError on a bad flag (checked before starting)."""
    if not args.dns_listen:
        return None, None
    listen = [parse_listen(v, f"{prefix}listen") for v in args.dns_listen]
    try:
        upstreams = ([parse_upstream(u) for u in args.dns_upstream] if args.dns_upstream
                     else upstreams_from_resolv_conf())
    except ValueError as e:
        raise ValueError(f"{prefix}upstream: {e}") from None
    metrics: tuple[str, int] | None
    if args.dns_metrics_listen == "none":
        metrics = None
    elif args.dns_metrics_listen:
        metrics = parse_listen(args.dns_metrics_listen, f"{prefix}metrics-listen")
    else:
        metrics = (listen[0][0], 9153)
    if not 0 <= args.dns_ttl <= 3600:
        raise ValueError(f"{prefix}ttl {args.dns_ttl}: must be between 0 and 3600")
    domain = args.cluster_domain.strip(".").lower()
    if not domain or any(not label or len(label) > 63 for label in domain.split(".")):
        raise ValueError(f"--cluster-domain {args.cluster_domain!r}: not a valid DNS domain")
    host = listen[0][0]
    endpoint = host if host not in ("0.0.0.0", "::") else advertise
    try:
        ipaddress.ip_address(endpoint)
    except ValueError:
        endpoint = ""
    return DnsConfig(listen=listen, upstreams=upstreams, metrics_listen=metrics,
                     domain=domain, ttl=args.dns_ttl, log_queries=args.dns_log,
                     pods=args.dns_pods), \
        endpoint or None


def add_dns_arguments(p: argparse.ArgumentParser, prefix: str, listen_help: str) -> None:
    """The cluster DNS flags, spelled PREFIX+name (`--dns-listen` on `svcnet server`,
    `--listen` on `svcnet dns serve`); `dns_settings` reads them."""
    p.add_argument(f"{prefix}listen", dest="dns_listen", action="append", default=[],
                   metavar="HOST:PORT", help=listen_help)
    p.add_argument(f"{prefix}upstream", dest="dns_upstream", action="append", default=[],
                   metavar="IP[:PORT]",
                   help="resolver for names outside the cluster domain (repeatable; "
                        "default: the nameservers of /etc/resolv.conf)")
    p.add_argument(f"{prefix}metrics-listen", dest="dns_metrics_listen", default="",
                   metavar="HOST:PORT",
                   help=f"CoreDNS-style /metrics for DNS (default: first {prefix}listen host, "
                        "port 9153; 'none' to disable)")
    p.add_argument("--cluster-domain", default="cluster.local", metavar="DOMAIN",
                   help="the cluster's DNS domain (default %(default)s)")
    p.add_argument(f"{prefix}ttl", dest="dns_ttl", type=int, default=5, metavar="SECONDS",
                   help="TTL of cluster DNS answers in seconds (default %(default)s)")
    p.add_argument(f"{prefix}pods", dest="dns_pods",
                   choices=("insecure", "verified", "disabled"), default="insecure",
                   help="answers for a-b-c-d.NS.pod.DOMAIN names, as CoreDNS's `pods` option: "
                        "insecure (any IP, kubeadm's default), verified (only IPs of Pods "
                        "in that namespace), disabled")
    p.add_argument(f"{prefix}log", dest="dns_log", action="store_true",
                   help="log every DNS query and its answer, as CoreDNS's log plugin does")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=None,
                   help="state directory (default /var/lib/svcnet as root, "
                        "~/.local/share/svcnet otherwise)")
    p.add_argument("--listen", default="127.0.0.1:6443", help="HOST:PORT to serve HTTPS on")
    p.add_argument("--advertise-address", default="",
                   help="address clients use to reach the server (default: the listen host)")
    p.add_argument("--datastore", default="sqlite", help="sqlite (default) or memory")
    p.add_argument("--tls-san", action="append", default=[],
                   help="extra DNS name or IP for the serving certificate (repeatable)")
    p.add_argument("--service-cluster-ip-range", default=DEFAULT_SERVICE_CIDR,
                   help="CIDR Service cluster IPs are allocated from (default %(default)s)")
    p.add_argument("--service-node-port-range", default=DEFAULT_NODE_PORT_RANGE,
                   help="port range for NodePort Services (default %(default)s)")
    p.add_argument("--disable-controllers", action="store_true",
                   help="serve the API only (no endpoint, workload, scheduling or GC control)")
    add_dns_arguments(p, "--dns-", "serve cluster DNS here (UDP and TCP; repeatable). The "
                      "kube-dns Service in kube-system then points at the first address")
    p.add_argument("-v", "--verbose", action="store_true")


async def serve(args: argparse.Namespace) -> int:
    started = time.monotonic()
    data_dir: Path = args.data_dir or default_data_dir()
    data_dir.mkdir(parents=True, exist_ok=True)
    host, port = parse_listen(args.listen)
    advertise = args.advertise_address or ("127.0.0.1" if host in ("0.0.0.0", "::") else host)
    pki = ensure_pki(data_dir, [host, advertise] + list(args.tls_san))
    tokens = TokenFile(data_dir / "tokens.json")
    admin = tokens.admin_token()
    store = await open_store(args.datastore, str(data_dir))
    url_host = f"[{advertise}]" if ":" in advertise else advertise
    try:
        ipaddress.ip_address(advertise)
        endpoint: tuple[str, int] | None = (advertise, port)
    except ValueError:
        endpoint = None  # a DNS name: the kubernetes Service's endpoints need an IP
    dns, dns_endpoint = dns_settings(args, advertise)
    api = ApiServer(store, tokens, server_address=f"{url_host}:{port}",
                    service_cidr=args.service_cluster_ip_range,
                    node_port_range=args.service_node_port_range, advertise=endpoint,
                    controllers=[] if args.disable_controllers else default_controllers(),
                    dns=dns, dns_endpoint=dns_endpoint)
    # Watches and proxied log streams never finish by themselves: give in-flight requests
    # a second after SIGTERM, not aiohttp's default minute (spent twice).
    runner = web.AppRunner(api.app(), access_log=None, handle_signals=False,
                           shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=pki.server_context(), backlog=1024)
    await site.start()
    server_url = f"https://{url_host}:{port}"
    write_kubeconfig(data_dir / "kubeconfig.yaml", server_url, pki.ca_pem(), admin)
    print(f"svcnet server ready at {server_url} in {time.monotonic() - started:.2f}s; "
          f"kubeconfig: {data_dir / 'kubeconfig.yaml'}", flush=True)
    # Start-up objects (schemas, OpenAPI documents) live for the whole process: move them
    # out of the collector's reach, and collect young objects less often (every query
    # allocates a few short-lived tuples). Both cut the pauses that made the DNS's p99
    # latency at 30,000 queries/s 2.3 ms; with them it is about 1.4 ms (bench/dns.py).
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await runner.cleanup()
    return 0


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        parse_listen(args.listen)
        dns_settings(args, "127.0.0.1")
    except ValueError as e:
        print(f"svcnet server: {e}", file=sys.stderr)
        return 2
    try:
        net = ipaddress.ip_network(args.service_cluster_ip_range, strict=True)
        if net.num_addresses < 8:
            raise ValueError(f"{net} is too small")
        parse_port_range(args.service_node_port_range)
    except ValueError as e:
        print(f"svcnet server: {e}", file=sys.stderr)
        return 2
    if args.datastore not in ("sqlite", "memory"):
        print(f'svcnet server: unknown datastore "{args.datastore}": supported: sqlite, memory',
              file=sys.stderr)
        return 2
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    try:
        return asyncio.run(serve(args))
    except OSError as e:
        print(f"svcnet server: {e.strerror or e}", file=sys.stderr)
        return 1
