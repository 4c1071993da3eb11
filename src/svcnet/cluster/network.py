"""The local cluster's network, made real with `ip` and `iptables` (the edge of `plan`).

`setup(plan)` creates the node bridge in the root namespace, one namespace per node joined
to it by a veth pair, the nodes' addresses and routes, forwarding *inside* each node
namespace, and the root namespace's routes into the cluster. `teardown(plan, pods)`
removes all of it, tolerating anything already gone. Both are idempotent: `setup` checks
what exists and reuses or repairs it, `teardown` can run any number of times.

What this module never does in the root namespace: change a sysctl, enable forwarding,
add NAT, or add a route that is not in the plan. Every route it adds carries protocol
`ROUTE_PROTO` and is deleted with that protocol, so a same-looking route someone else made
is never touched. The bridge's alias records which data dir owns it (`svcnet:<dir>`),
so a second `svcnet up` with another data dir refuses instead of sharing it.

br_netfilter: when `net.bridge.bridge-nf-call-iptables` is 1 (it is on this kind of host
whenever the module is loaded), frames bridged between node namespaces traverse the root
namespace's iptables FORWARD chain. If that chain would drop them (DROP policy, as Docker
sets, or a top-level DROP/REJECT rule), `setup` adds chain `naming.chain` holding one
ACCEPT and a FORWARD rule `-i <bridge> -o <bridge> -j <chain>` in front. That matches only
frames entering *and* leaving our bridge; it routes nothing (root forwarding stays off)
and NATs nothing. `teardown` removes both. Firewalls written natively in nftables are
not adjusted; if one drops bridged frames, node-to-node traffic fails and says so in the
`up` timeout message (agents cannot become Ready).

Errors: a failed command raises `CommandError` with the argv, exit status and stderr;
callers use its predicates (`is_not_found`, `is_exists`) and never parse messages.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Sequence

from svcnet.cluster.plan import (
    POD_NETNS_PREFIX,
    ROUTE_PROTO,
    ClusterPlan,
    HostRoute,
    NodePlan,
    find_conflicts,
    forward_accept_needed,
    forward_rule_args,
)

NETNS_DIR = Path("/run/netns")
ETC_NETNS_DIR = Path("/etc/netns")
BRIDGE_NF_SYSCTL = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
COMMAND_TIMEOUT = 30.0
STALE_AFTER = 30.0


class NetworkError(Exception):
    """Base of the errors of this module; the message is one line."""


class CommandError(NetworkError):
    """A command failed. Carries the argv, the exit status and stderr."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr.strip()
        super().__init__(f"`{' '.join(self.argv)}` failed ({returncode}): "
                         f"{self.stderr.splitlines()[-1] if self.stderr else 'no message'}")

    def is_not_found(self) -> bool:
        """The object the command acted on does not exist (route, link, rule, chain)."""
        s = self.stderr
        return any(m in s for m in ("No such process", "does not exist", "Cannot find device",
                                    "No such file or directory", "Bad rule",
                                    "No chain/target/match by that name"))

    def is_exists(self) -> bool:
        return "File exists" in self.stderr or "Chain already exists" in self.stderr


class ConflictError(NetworkError):
    """The host already uses something the plan needs (a route into one of the CIDRs, a
    bridge of the same name owned by someone else, policy routing that diverts ours)."""


def run(argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one command without a shell; raise `CommandError` if it fails and `check`."""
    try:
        res = subprocess.run(list(argv), capture_output=True, text=True,
                             timeout=COMMAND_TIMEOUT, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise CommandError(argv, 127, f"{argv[0]}: command not found") from None
    except subprocess.TimeoutExpired:
        raise CommandError(argv, -1, f"timed out after {COMMAND_TIMEOUT:.0f}s") from None
    if check and res.returncode != 0:
        raise CommandError(argv, res.returncode, res.stderr)
    return res


def _ip_json(*args: str) -> Any:
    out = run(["ip", "-j", *args]).stdout.strip()
    return json.loads(out) if out else []


def _try(argv: Sequence[str]) -> bool:
    """Run a removal; True if it removed something, False if it was already gone."""
    try:
        run(argv)
        return True
    except CommandError as e:
        if e.is_not_found():
            return False
        raise


# --- facts about the host ----------------------------------------------------------------

def host_routes() -> list[HostRoute]:
    """Every IPv4 route of the root namespace, in every table."""
    return [HostRoute.from_ip_json(d) for d in _ip_json("-4", "route", "show", "table", "all")]


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def list_netns() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def link_exists(name: str, netns: str = "") -> bool:
    ns = ["-n", netns] if netns else []
    return run(["ip", *ns, "link", "show", "dev", name], check=False).returncode == 0


def link_alias(name: str) -> str | None:
    """The alias of link `name` in the root namespace ("" if none), None if no such link."""
    res = run(["ip", "-j", "link", "show", "dev", name], check=False)
    if res.returncode != 0:
        return None
    links = json.loads(res.stdout or "[]")
    return str(links[0].get("ifalias", "")) if links else None


def bridge_nf_call_iptables() -> bool:
    """Whether bridged frames in the root namespace go through iptables (br_netfilter)."""
    try:
        return BRIDGE_NF_SYSCTL.read_text().strip() == "1"
    except OSError:
        return False


def forward_rules() -> list[str]:
    """`iptables -S FORWARD` of the root namespace ([] without iptables)."""
    if shutil.which("iptables") is None:
        return []
    return run(["iptables", "-w", "-S", "FORWARD"]).stdout.splitlines()


def chain_exists(chain: str) -> bool:
    if shutil.which("iptables") is None:
        return False
    return run(["iptables", "-w", "-S", chain], check=False).returncode == 0


# --- setup -------------------------------------------------------------------------------

def check_host(plan: ClusterPlan, *, adopt_unowned: bool = False) -> None:
    """Refuse (ConflictError) if the bridge belongs to someone else or a host route
    already claims one of the plan's CIDRs. Routes of this cluster do not count, so this
    passes when the cluster is already up. `adopt_unowned` accepts a bridge without an
    alias (ours, if `up` stopped between creating it and naming it)."""
    alias = link_alias(plan.naming.bridge)
    if alias is not None and alias != plan.owner_tag and not (adopt_unowned and alias == ""):
        if alias.startswith("svcnet:"):
            raise ConflictError(f"bridge {plan.naming.bridge} belongs to the cluster in "
                                f"{alias[len('svcnet:'):]}: run `svcnet down --data-dir "
                                f"{alias[len('svcnet:'):]}` first, or use another "
                                "--cluster-name")
        raise ConflictError(f"a link named {plan.naming.bridge} already exists and was not "
                            "made by svcnet up; remove it or use another --cluster-name")
    conflicts = find_conflicts(plan, host_routes())
    if conflicts:
        raise ConflictError("; ".join(conflicts))


def setup(plan: ClusterPlan, *, adopt_unowned: bool = False) -> bool:
    """Make the plan's network real (creating or repairing). Returns whether the
    br_netfilter FORWARD rule is in place (so the caller can record it)."""
    check_host(plan, adopt_unowned=adopt_unowned)
    _ensure_bridge(plan)
    forward = _ensure_forward_rule(plan)
    for node in plan.nodes:
        _ensure_node(plan, node)
    for node in plan.nodes:
        for r in node.routes:
            run(["ip", "-n", node.netns, "route", "replace", *r.args()])
    for r in plan.host_routes:
        run(["ip", "route", "replace", *r.args()])
    verify_host_routes(plan)
    return forward


def _ensure_bridge(plan: ClusterPlan) -> None:
    b = plan.naming.bridge
    if link_alias(b) is None:
        run(["ip", "link", "add", "name", b, "type", "bridge"])
    # `ip link add ... alias` is ignored for bridges, so the alias is set on its own.
    run(["ip", "link", "set", "dev", b, "alias", plan.owner_tag])
    run(["ip", "addr", "replace", plan.host_prefix, "dev", b])
    run(["ip", "link", "set", "dev", b, "up"])


def _ensure_forward_rule(plan: ClusterPlan) -> bool:
    """Add the br_netfilter ACCEPT if the FORWARD chain would drop bridged frames; keep
    one added earlier. True if our rule is in place afterwards."""
    needed = forward_accept_needed(bridge_nf_call_iptables(), forward_rules())
    present = chain_exists(plan.naming.chain)
    if not needed and not present:
        return False
    ensure_forward_chain(plan)
    return True


def ensure_forward_chain(plan: ClusterPlan) -> None:
    """Create (idempotently) our chain with its ACCEPT and the FORWARD jump to it."""
    chain = plan.naming.chain
    if not chain_exists(chain):
        run(["iptables", "-w", "-N", chain])
    accept = [chain, "-m", "comment", "--comment", "svcnet: node network", "-j", "ACCEPT"]
    if run(["iptables", "-w", "-C", *accept], check=False).returncode != 0:
        run(["iptables", "-w", "-A", *accept])
    jump = forward_rule_args(plan)
    if run(["iptables", "-w", "-C", "FORWARD", *jump], check=False).returncode != 0:
        run(["iptables", "-w", "-I", "FORWARD", "1", *jump])


def _ensure_node(plan: ClusterPlan, node: NodePlan) -> None:
    ns = node.netns
    if not netns_exists(ns):
        run(["ip", "netns", "add", ns])
    run(["ip", "-n", ns, "link", "set", "dev", "lo", "up"])
    host_side, node_side = link_exists(node.veth_host), link_exists(node.veth_node, ns)
    if host_side != node_side:  # half a pair left over: start this link again
        if host_side:
            _try(["ip", "link", "del", "dev", node.veth_host])
        else:
            _try(["ip", "-n", ns, "link", "del", "dev", node.veth_node])
        host_side = False
    if not host_side:
        run(["ip", "link", "add", "name", node.veth_host, "type", "veth", "peer", "name",
             node.veth_node, "netns", ns])
    run(["ip", "link", "set", "dev", node.veth_host, "master", plan.naming.bridge, "up"])
    prefix = ipaddress.IPv4Network(plan.node_cidr).prefixlen
    run(["ip", "-n", ns, "addr", "replace", f"{node.ip}/{prefix}", "dev", node.veth_node])
    run(["ip", "-n", ns, "link", "set", "dev", node.veth_node, "up"])
    # Forwarding inside the node namespace only: the node routes for its pods. Written
    # through /proc (per network namespace) rather than sysctl(8), which minimal images
    # lack; `ip netns exec` puts the writer in the node's namespace.
    run(["ip", "netns", "exec", ns, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"])


def verify_host_routes(plan: ClusterPlan) -> None:
    """Ask the kernel (`ip route get`, which honours policy routing) where the host would
    send cluster addresses: each must leave through the bridge, and an unassigned pod
    address must be unreachable rather than follow the default route. ConflictError if
    not, naming the address and where it would go instead."""
    for addr in plan.probe_addresses():
        res = run(["ip", "-j", "route", "get", addr], check=False)
        got = json.loads(res.stdout or "[]") if res.returncode == 0 else []
        dev = str(got[0].get("dev", "")) if got else ""
        if dev != plan.naming.bridge:
            where = f"dev {dev}" if dev else (res.stderr.strip() or "nowhere")
            raise ConflictError(f"the host routes {addr} to {where}, not {plan.naming.bridge} "
                                "(policy routing rules?); refusing to run a cluster whose "
                                "traffic could leave the machine")
    spare = str(ipaddress.IPv4Network(plan.pod_cidr)[1])  # the never-assigned first /24
    res = run(["ip", "-j", "route", "get", spare], check=False)
    if res.returncode == 0:
        got = json.loads(res.stdout or "[]")
        dev = str(got[0].get("dev", "")) if got else "?"
        raise ConflictError(f"unassigned pod address {spare} would leave through dev {dev}; "
                            "expected it to be unreachable")


# --- teardown ----------------------------------------------------------------------------

def teardown(plan: ClusterPlan, pod_namespaces: Sequence[str] = ()) -> list[str]:
    """Remove everything `setup` made plus the given pod namespaces (and their
    /etc/netns directories). Anything already gone is skipped. Returns one line per
    object that could not be removed ([] = clean). Kill the processes inside the
    namespaces first: a namespace lives on, unnamed, while a process is in it."""
    problems: list[str] = []
    if foreign_owner(plan) is not None:
        # Our cluster is gone already and another (another data dir) uses the same
        # names now: none of what bears them is ours to remove.
        return problems

    def attempt(what: str, argv: Sequence[str]) -> None:
        try:
            _try(argv)
        except CommandError as e:
            problems.append(f"{what}: {e}")

    for r in plan.host_routes:
        attempt(f"route {r}", ["ip", "route", "del", *r.args()])
    if shutil.which("iptables") is not None:
        for _ in range(10):  # the rule may have been added more than once by hand
            if run(["iptables", "-w", "-C", "FORWARD", *forward_rule_args(plan)],
                   check=False).returncode != 0:
                break
            before = len(problems)
            attempt("FORWARD rule", ["iptables", "-w", "-D", "FORWARD",
                                     *forward_rule_args(plan)])
            if len(problems) > before:
                break
        if chain_exists(plan.naming.chain):
            attempt(f"chain {plan.naming.chain}", ["iptables", "-w", "-F", plan.naming.chain])
            attempt(f"chain {plan.naming.chain}", ["iptables", "-w", "-X", plan.naming.chain])
    for ns in [*pod_namespaces, *plan.namespaces()]:
        if netns_exists(ns):
            attempt(f"namespace {ns}", ["ip", "netns", "del", ns])
        _remove_etc_netns(ns, problems)
    for node in plan.nodes:
        if link_exists(node.veth_host):
            attempt(f"link {node.veth_host}", ["ip", "link", "del", "dev", node.veth_host])
    if link_alias(plan.naming.bridge) is not None:
        attempt(f"bridge {plan.naming.bridge}", ["ip", "link", "del", "dev",
                                                 plan.naming.bridge])
    return problems


def _remove_etc_netns(ns: str, problems: list[str]) -> None:
    d = ETC_NETNS_DIR / ns
    if d.is_dir():
        try:
            shutil.rmtree(d)
        except OSError as e:
            problems.append(f"{d}: {e.strerror}")


def find_pod_namespaces(plan: ClusterPlan) -> list[str]:
    """The pod namespaces (`svcnet-pod-*`) that belong to this cluster: those with an
    interface whose peer is in one of its node namespaces, or with an address in one
    of its nodes' pod CIDRs. Pod namespaces of other clusters, or of tests, are left
    alone. Call it before the node namespaces go: deleting a node namespace takes the
    pod veths, and with them this evidence, along."""
    ours = set(plan.namespaces())
    cidrs = [ipaddress.IPv4Network(n.pod_cidr) for n in plan.nodes]
    found: list[str] = []
    for ns in list_netns():
        if not ns.startswith(POD_NETNS_PREFIX):
            continue
        try:
            peers = {str(d.get("name", "")) for d in _ip_json("-n", ns, "netns", "list-id")}
            addrs = [a["local"] for link in _ip_json("-n", ns, "-4", "addr", "show")
                     for a in link.get("addr_info", []) if "local" in a]
        except (CommandError, ValueError, KeyError):
            continue
        if peers & ours or any(ipaddress.IPv4Address(a) in c for a in addrs for c in cidrs):
            found.append(ns)
    return found


def stale_etc_netns(min_age: float = STALE_AFTER) -> list[str]:
    """`/etc/netns/svcnet-pod-*` directories whose namespace no longer exists and that
    were last changed more than `min_age` seconds ago. A namespace's directory cannot be
    tied to a cluster once the namespace is gone, so age stands in: an agent (of any
    cluster, or a test) that is creating a pod right now may have made the directory a
    moment before the namespace."""
    try:
        names = os.listdir(ETC_NETNS_DIR)
    except FileNotFoundError:
        return []
    now = time.time()
    out: list[str] = []
    for n in sorted(names):
        if not n.startswith(POD_NETNS_PREFIX) or netns_exists(n):
            continue
        try:
            if now - (ETC_NETNS_DIR / n).stat().st_mtime >= min_age:
                out.append(n)
        except OSError:
            continue
    return out


def remove_stale_etc_netns(min_age: float = STALE_AFTER) -> list[str]:
    """Remove the directories `stale_etc_netns` lists; returns problems."""
    problems: list[str] = []
    for n in stale_etc_netns(min_age):
        _remove_etc_netns(n, problems)
    return problems


def foreign_owner(plan: ClusterPlan) -> str | None:
    """The alias of the plan's bridge if it exists and belongs to another data dir's
    cluster (or to something that is not svcnet), else None."""
    alias = link_alias(plan.naming.bridge)
    if alias is None or alias in (plan.owner_tag, ""):
        return None
    return alias


def leftovers(plan: ClusterPlan, pod_namespaces: Sequence[str] = ()) -> list[str]:
    """What of the plan (and the given pod namespaces) still exists, one line each.
    Nothing, if the names now belong to another cluster (see `foreign_owner`)."""
    out: list[str] = []
    if foreign_owner(plan) is not None:
        return out
    for ns in [*plan.namespaces(), *pod_namespaces]:
        if netns_exists(ns):
            out.append(f"namespace {ns}")
        if (ETC_NETNS_DIR / ns).exists():
            out.append(f"directory {ETC_NETNS_DIR / ns}")
    for name in [plan.naming.bridge, *(n.veth_host for n in plan.nodes)]:
        if link_alias(name) is not None:
            out.append(f"link {name}")
    dsts = {r.dst for r in plan.host_routes}
    for r in host_routes():
        if r.protocol == str(ROUTE_PROTO) and r.dst in dsts:
            out.append(f"route {r}")
    if chain_exists(plan.naming.chain):
        out.append(f"iptables chain {plan.naming.chain}")
    return out
