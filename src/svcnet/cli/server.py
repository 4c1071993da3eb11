"""`svcnet server`: run the API server (and, later, controllers and DNS) in one process."""

from __future__ import annotations

import argparse
import asyncio
import base64
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
from svcnet.store.factory import open_store

log = logging.getLogger("svcnet.server")


def default_data_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/svcnet")
    return Path.home() / ".local" / "share" / "svcnet"


def parse_listen(value: str) -> tuple[str, int]:
    """HOST:PORT (IPv6 as [::1]:6443) -> (host, port); raises ValueError with the reason."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--listen {value!r}: expected HOST:PORT with a port in 1-65535")
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
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    os.replace(tmp, path)


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
    api = ApiServer(store, tokens, server_address=f"{url_host}:{port}",
                    service_cidr=args.service_cluster_ip_range,
                    node_port_range=args.service_node_port_range, advertise=endpoint,
                    controllers=[] if args.disable_controllers else default_controllers())
    runner = web.AppRunner(api.app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=pki.server_context(), backlog=1024)
    await site.start()
    server_url = f"https://{url_host}:{port}"
    write_kubeconfig(data_dir / "kubeconfig.yaml", server_url, pki.ca_pem(), admin)
    print(f"svcnet server ready at {server_url} in {time.monotonic() - started:.2f}s; "
          f"kubeconfig: {data_dir / 'kubeconfig.yaml'}", flush=True)
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
