"""`svcnet up` / `svcnet down`: a local multi-node cluster on this machine (like kind,
without Docker). The work is in `svcnet.cluster`; this module parses options, checks for
root, and turns results and errors into what a user reads."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from svcnet.cluster import network, supervisor
from svcnet.cluster.plan import (
    DEFAULT_API_PORT,
    DEFAULT_CLUSTER_NAME,
    DEFAULT_NODE_CIDR,
    DEFAULT_POD_CIDR,
    DEFAULT_SERVICE_CIDR,
    MAX_NODES,
    PROXY_MODES,
    PlanError,
    plan_cluster,
)

DEFAULT_DATA_DIR = Path("/var/lib/svcnet/cluster")
#: The kubeconfig `svcnet up` writes, which the tools use when not told otherwise.
DEFAULT_KUBECONFIG = DEFAULT_DATA_DIR / "kubeconfig.yaml"


def kubeconfig_path(given: str = "") -> str:
    """The kubeconfig a tool uses, as kubectl picks it: `--kubeconfig`, else $KUBECONFIG,
    else the local cluster's."""
    return given or os.environ.get("KUBECONFIG") or str(DEFAULT_KUBECONFIG)
NEEDS_ROOT = "needs root (network namespaces, bridges and routes): run it with sudo"


def add_subcommands(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add `up` and `down` to the `svcnet` command's sub-parsers."""
    up = sub.add_parser("up", help="start a local multi-node cluster (needs root)",
                        description="Create the node network and one network namespace per "
                        "node, start the API server and one agent per node, wait until "
                        "every Node is Ready and write DIR/kubeconfig.yaml. Running it "
                        "again checks and repairs the cluster.")
    up.add_argument("--nodes", type=int, default=2,
                    help=f"number of nodes, 1-{MAX_NODES} (default %(default)s)")
    up.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                    help="state, logs and kubeconfig (default %(default)s)")
    up.add_argument("--proxy-mode", default="iptables", choices=PROXY_MODES,
                    help="the agents' Service proxy mode (default %(default)s)")
    up.add_argument("--timeout", type=float, default=120.0,
                    help="seconds to wait for the server and the nodes (default %(default)s)")
    up.add_argument("--node-cidr", default=DEFAULT_NODE_CIDR,
                    help="node network on the host bridge (default %(default)s)")
    up.add_argument("--pod-cidr", default=DEFAULT_POD_CIDR,
                    help="pod network; node i gets its i-th /24 (default %(default)s)")
    up.add_argument("--service-cidr", default=DEFAULT_SERVICE_CIDR,
                    help="Service cluster IPs (default %(default)s)")
    up.add_argument("--cluster-name", default=DEFAULT_CLUSTER_NAME,
                    help="names the bridge (<name>0) and namespaces (<name>-node-i), so "
                         "clusters can coexist (default %(default)s)")
    up.add_argument("--api-port", type=int, default=DEFAULT_API_PORT,
                    help="API server port on the host's bridge address (default %(default)s)")
    up.add_argument("--dns-upstream", action="append", default=[], metavar="IP[:PORT]",
                    help="resolver the cluster DNS forwards outside names to (repeatable; "
                         "default: the host's /etc/resolv.conf nameservers)")
    up.add_argument("--dns-log", action="store_true",
                    help="log every cluster DNS query (CoreDNS log format) to the server log")
    up.add_argument("--retain", action="store_true",
                    help="keep a cluster that failed to come up, for debugging")
    # Network, server and supervision without node agents: for tests of `up` itself.
    up.add_argument("--no-agents", action="store_true", help=argparse.SUPPRESS)
    up.set_defaults(func=run_up)

    down = sub.add_parser("down", help="remove the local cluster (needs root)",
                          description="Stop every process and remove every namespace, link, "
                          "route and rule `svcnet up` made. Safe when nothing is up.")
    down.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                      help="the cluster's data dir (default %(default)s)")
    down.add_argument("--purge", action="store_true",
                      help="also delete the data dir (state, logs, certificates)")
    down.set_defaults(func=run_down)


def _err(cmd: str, message: str, details: str = "") -> None:
    print(f"svcnet {cmd}: {message}", file=sys.stderr)
    if details:
        print("\n".join("  " + line for line in details.splitlines()), file=sys.stderr)


def _preflight(cmd: str) -> bool:
    if os.geteuid() != 0:
        _err(cmd, NEEDS_ROOT)
        return False
    if shutil.which("ip") is None:
        _err(cmd, "needs the `ip` command (Debian package iproute2)")
        return False
    return True


def run_up(args: argparse.Namespace) -> int:
    if not _preflight("up"):
        return 1
    data_dir = Path(os.path.abspath(args.data_dir))
    try:
        plan = plan_cluster(args.nodes, data_dir, node_cidr=args.node_cidr,
                            pod_cidr=args.pod_cidr, service_cidr=args.service_cidr,
                            proxy_mode=args.proxy_mode, cluster_name=args.cluster_name,
                            api_port=args.api_port, dns_upstreams=args.dns_upstream,
                            dns_log=args.dns_log)
    except PlanError as e:
        _err("up", str(e))
        return 2
    print(f"svcnet up: data dir {data_dir}", flush=True)
    try:
        res = supervisor.up(plan, agents=not args.no_agents, timeout=args.timeout,
                            retain_on_failure=args.retain,
                            say=lambda s: print(f"svcnet up: {s}", flush=True))
    except supervisor.ClusterError as e:
        _err("up", str(e), e.details)
        return 1
    except network.NetworkError as e:
        _err("up", str(e))
        return 1
    except KeyboardInterrupt:
        _err("up", "interrupted")
        return 130
    nodes = ", ".join(f"{n.name} {n.ip}" for n in plan.nodes)
    if args.no_agents:
        state = f"network and server are up; no agents ({len(plan.nodes)} node namespaces: " \
                f"{nodes})"
    else:
        state = f"{len(plan.nodes)} node(s) Ready ({nodes})"
    verb = "is up" if res.created else "was already up" if not res.started else "repaired"
    print(f"svcnet up: cluster {verb}: {state}; API {plan.server_url}; cluster DNS "
          f"{plan.host_ip}:53 (kube-dns {plan.dns_ip})")
    dd = "" if data_dir == DEFAULT_DATA_DIR else f" --data-dir {data_dir}"
    print(f"Logs are in {plan.log_dir}. To use the cluster:\n"
          f"  export KUBECONFIG={plan.kubeconfig}\n"
          f"  kubectl get nodes\n"
          f"To remove it: svcnet down{dd}")
    return 0


def run_down(args: argparse.Namespace) -> int:
    if not _preflight("down"):
        return 1
    data_dir = Path(os.path.abspath(args.data_dir))
    try:
        res = supervisor.down(data_dir, purge=args.purge,
                              say=lambda s: print(f"svcnet down: {s}", flush=True))
    except (supervisor.ClusterError, network.NetworkError) as e:
        _err("down", str(e))
        return 1
    if res.problems:
        _err("down", "could not remove everything; run it again, or remove by hand:",
             "\n".join(res.problems))
        return 1
    if not res.was_up:
        print(f"svcnet down: nothing is up in {data_dir}")
    else:
        print(f"svcnet down: removed the cluster in {data_dir}"
              + (" and the data dir" if args.purge else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m svcnet.cli.up up|down ...`: the two commands on their own, the same as
    `svcnet up|down` (handy before they are wired into, or apart from, `svcnet`)."""
    p = argparse.ArgumentParser(prog="svcnet")
    add_subcommands(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
