"""`svcnet dns serve`: cluster DNS as its own process, against any API server.

`svcnet server --dns-listen` runs cluster DNS inside the API server (DESIGN.md §1, as
k3s does). This command runs the same `ClusterDnsApp` on its own, fed over HTTPS by the
API server a kubeconfig names (svcnet's, or a Kubernetes one with token auth: it needs
to list and watch Services, EndpointSlices, Pods and Namespaces), the way CoreDNS runs
beside kube-apiserver. Its own process means API load never shares its event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Any

from svcnet.cli.server import add_dns_arguments, dns_settings
from svcnet.cli.up import DEFAULT_KUBECONFIG, kubeconfig_path
from svcnet.client.http import HttpClient
from svcnet.dns.app import ClusterDnsApp, DnsConfig



def add_parser(dsub: Any) -> None:
    sp = dsub.add_parser("serve", help="serve cluster DNS from an API server's objects")
    add_dns_arguments(sp, "--", "address to serve DNS on, UDP and TCP (repeatable; at "
                      "least one), e.g. 127.0.0.1:5353")
    sp.add_argument("--kubeconfig", default="",
                    help=f"the API server to follow (default $KUBECONFIG, else "
                         f"{DEFAULT_KUBECONFIG})")
    sp.add_argument("-v", "--verbose", action="store_true")
    sp.set_defaults(func=run)


async def serve(client: HttpClient, config: DnsConfig) -> int:
    app = ClusterDnsApp(client, config)
    try:
        bound = await app.start()
        where = ", ".join(f"{h}:{p}" for h, p in bound)
        print(f"svcnet dns serving {config.domain} on {where} (udp, tcp) for "
              f"{client.server}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await app.close()
        await client.close()
    return 0


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.dns_listen:
        print("svcnet dns serve: --listen HOST:PORT is required", file=sys.stderr)
        return 2
    try:
        config, _ = dns_settings(args, "127.0.0.1", prefix="--")
    except ValueError as e:
        print(f"svcnet dns serve: {e}", file=sys.stderr)
        return 2
    assert config is not None
    path = kubeconfig_path(args.kubeconfig)
    try:
        client = HttpClient.from_kubeconfig(path)
    except OSError as e:
        print(f"svcnet dns serve: {path}: {e.strerror or e}", file=sys.stderr)
        return 1
    except ValueError as e:
        print(f"svcnet dns serve: {e}", file=sys.stderr)
        return 1
    try:
        return asyncio.run(serve(client, config))
    except OSError as e:
        print(f"svcnet dns serve: {e.strerror or e}", file=sys.stderr)
        return 1
