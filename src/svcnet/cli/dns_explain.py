"""`svcnet dns explain NAME`: replay a Pod's DNS lookup against the cluster DNS, step by step.

The resolver configuration is the one the agent writes for the Pod (`--pod`), or for any
ClusterFirst Pod of the namespace (`-n`, default `default`): the same `pod_dns` function
computes it. The server asked is the cluster DNS as the kube-dns Endpoints name it (what
the host can reach; Pods reach it through the kube-dns ClusterIP), or `--server`. Every
search-path candidate is asked, as glibc would, and `svcnet.dns.explain` renders the walk.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from svcnet.api import errors
from svcnet.api.kinds import kind_for
from svcnet.cli import dns_serve
from svcnet.cli.up import DEFAULT_KUBECONFIG, kubeconfig_path
from svcnet.client.http import HttpClient
from svcnet.dns.explain import ResolverConfig, Step, candidates, render
from svcnet.dns.upstream import parse_upstream
from svcnet.node.dnsconf import pod_dns

PODS = kind_for("", "pods")
SERVICES = kind_for("", "services")
ENDPOINTS = kind_for("", "endpoints")


def add_subcommands(subparsers: Any) -> None:
    dp = subparsers.add_parser("dns", help="cluster DNS tools")
    dsub = dp.add_subparsers(dest="dns_command", required=True)
    ex = dsub.add_parser("explain", help="show a Pod's lookup of NAME, search path and all")
    ex.add_argument("name", help="the name as a program in the Pod would look it up")
    ex.add_argument("--type", default="A", help="query type (default A)")
    ex.add_argument("-n", "--namespace", default="default",
                    help="the Pod's namespace (default %(default)s)")
    ex.add_argument("--pod", default="", help="use this Pod's own DNS settings")
    ex.add_argument("--kubeconfig", default="",
                    help=f"kubeconfig (default $KUBECONFIG, else {DEFAULT_KUBECONFIG})")
    ex.add_argument("--server", default="", metavar="IP[:PORT]",
                    help="DNS server to ask (default: the kube-dns endpoints)")
    ex.add_argument("--cluster-domain", default="cluster.local")
    ex.set_defaults(func=run_explain)
    dns_serve.add_parser(dsub)


def _err(message: str) -> int:
    print(f"svcnet dns explain: {message}", file=sys.stderr)
    return 1


async def _cluster_facts(args: argparse.Namespace) -> tuple[str, str, tuple[str, int] | None]:
    """(resolv.conf text for the Pod, kube-dns ClusterIP, kube-dns endpoint or None)."""
    path = kubeconfig_path(args.kubeconfig)
    client = HttpClient.from_kubeconfig(path)
    try:
        svc = await client.get(SERVICES, "kube-system", "kube-dns")
        cluster_ip = str(svc["spec"]["clusterIP"])
        endpoint: tuple[str, int] | None = None
        try:
            ep = await client.get(ENDPOINTS, "kube-system", "kube-dns")
            for subset in ep.get("subsets") or []:
                port = next((p["port"] for p in subset.get("ports") or []
                             if p.get("protocol") == "UDP"), None)
                if subset.get("addresses") and port:
                    endpoint = (str(subset["addresses"][0]["ip"]), int(port))
                    break
        except errors.StatusError:
            pass
        if args.pod:
            pod = await client.get(PODS, args.namespace, args.pod)
        else:
            pod = {"metadata": {"namespace": args.namespace, "name": "any"}, "spec": {}}
    finally:
        await client.close()
    host = Path("/etc/resolv.conf").read_text() if Path("/etc/resolv.conf").exists() else ""
    text, _ = pod_dns(pod, cluster_ip, args.cluster_domain, host)
    return text, cluster_ip, endpoint


def ask(server: tuple[str, int], name: str, qtype: str, timeout: float = 2.0) -> Step:
    """One query as a stub resolver sends it (RD set; TCP when the answer is truncated)."""
    query = dns.message.make_query(name, qtype)
    try:
        reply = dns.query.udp(query, server[0], timeout=timeout, port=server[1])
        if reply.flags & dns.flags.TC:
            reply = dns.query.tcp(query, server[0], timeout=timeout, port=server[1])
    except (dns.exception.Timeout, OSError):
        return Step(name, "TIMEOUT", ())
    except dns.exception.DNSException as e:
        return Step(name, f"ERROR ({e})", ())
    answers = tuple(f"{dns.rdatatype.to_text(rrset.rdtype)} {rr.to_text()}"
                    for rrset in reply.answer for rr in rrset)
    return Step(name, dns.rcode.to_text(reply.rcode()), answers)


def run_explain(args: argparse.Namespace) -> int:
    try:
        dns.rdatatype.from_text(args.type)
    except dns.rdatatype.UnknownRdatatype:
        return _err(f"--type {args.type!r}: not a DNS record type")
    try:
        text, cluster_ip, endpoint = asyncio.run(_cluster_facts(args))
    except errors.StatusError as e:
        return _err(e.message or f"the API server answered {e.code}")
    except (OSError, ValueError, KeyError) as e:
        return _err(f"cannot read the cluster's DNS settings: {e}")
    config = ResolverConfig.from_text(text)
    try:
        server = parse_upstream(args.server) if args.server else endpoint
    except ValueError as e:
        return _err(f"--server: {e}")
    if server is None:
        return _err("the kube-dns Service has no endpoints; give --server IP[:PORT]")
    try:
        names = candidates(args.name, config)
    except ValueError as e:
        return _err(str(e))
    steps = [ask(server, n, args.type) for n in names]
    label = f"{cluster_ip} (kube-dns), asked at {server[0]}:{server[1]}"
    print(render(args.name, args.type.upper(), config, label, steps))
    return 0
