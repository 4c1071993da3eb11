"""Pod sandboxes in the real kernel (root): `svcnet.node.sandbox.SandboxManager`.

Each test makes its own "node" namespaces (`svcnet-t-<hex>-a`, ...) and runs the manager
INSIDE them in a child process, the way `svcnet up` runs agents: via `nsenter --net=`
(agent in the root mount namespace) or `ip netns exec` (agent in a private mount
namespace). Pod namespaces use the prefix `svcnet-t-<hex>-pod-` and pod ranges in
10.244.200.0/22 inside those namespaces only. Traffic goes only between namespaces the test
made. Everything is deleted in `finally`, and the tests assert nothing is left: no pod
namespace in `ip netns list`, no /etc/netns dir, no veth, and the root namespace's
forwarding switch untouched.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator

import pytest

from svcnet.node.images import ImageCatalog
from svcnet.node.plan import plan_pod
from svcnet.node.types import NodeConfig, PodPlan

pytestmark = [
    pytest.mark.dataplane,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, links)"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="needs the ip command (iproute2)"),
    pytest.mark.skipif(shutil.which("nsenter") is None, reason="needs nsenter (util-linux)"),
]

ROOT_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")

DRIVER = r"""
import asyncio, json, sys
from dataclasses import asdict
from pathlib import Path
from svcnet.node.sandbox import SandboxManager
from svcnet.node.types import NodeConfig, PodPlan, Sandbox

cfg = json.loads(sys.argv[1])
node = NodeConfig(**{**cfg["node"], "state_dir": Path(cfg["node"]["state_dir"])})

async def main():
    m = SandboxManager(node, **cfg.get("kw", {}))
    out = []
    for op in cfg["ops"]:
        try:
            if op[0] == "ensure":
                out.append(await m.ensure_node_network())
            elif op[0] == "create":
                out.append(asdict(await m.create(PodPlan(**op[1]), op[2])))
            elif op[0] == "remove":
                out.append(await m.remove(op[1]))
            elif op[0] == "list":
                out.append(sorted((asdict(s) for s in await m.list()), key=lambda s: s["netns"]))
            elif op[0] == "prefix":
                out.append(m.netns_exec_prefix(Sandbox(**op[1])))
        except Exception as e:
            out.append({"error": type(e).__name__, "message": str(e)})
    print(json.dumps(out))

asyncio.run(main())
"""

CLIENT = r"""
import socket, sys, time
deadline = time.monotonic() + 15
while True:
    try:
        c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.1)
c.sendall(("GET %s HTTP/1.0\r\nHost: x\r\n\r\n" % sys.argv[3]).encode())
data = b""
while chunk := c.recv(65536):
    data += chunk
print(data.decode(errors="replace").split("\r\n\r\n", 1)[-1])
"""


def sh(*argv: str, check: bool = True, timeout: float = 30) -> str:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr}")
    return res.stdout


def netns_list() -> list[str]:
    return [line.split()[0] for line in sh("ip", "netns", "list").splitlines() if line.strip()]


class Cluster:
    """The test's names and node namespaces; `cleanup` removes all of it."""

    def __init__(self, tmp: Path) -> None:
        self.tag = f"svcnet-t-{secrets.token_hex(3)}"
        self.tmp = tmp
        self.nodes: list[str] = []
        self.procs: list[subprocess.Popen[str]] = []

    def node(self, suffix: str, cidr: str) -> NodeConfig:
        ns = f"{self.tag}-{suffix}"
        sh("ip", "netns", "add", ns)
        self.nodes.append(ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        return NodeConfig(name=ns, node_ip="", pod_cidr=cidr, state_dir=self.tmp / suffix,
                          netns_prefix=f"{self.tag}-pod-")

    def drive(self, node: NodeConfig, *ops: list[Any], launcher: str = "nsenter",
              **kw: Any) -> list[Any]:
        """Run `ops` on a SandboxManager inside `node`'s namespace, in a child process."""
        cfg = {"node": {**asdict(node), "state_dir": str(node.state_dir),
                        "host_resolv_conf": str(node.host_resolv_conf)},
               "ops": list(ops), "kw": kw}
        prefix = {"nsenter": ["nsenter", f"--net=/run/netns/{node.name}"],
                  "ip": ["ip", "netns", "exec", node.name], "root": []}[launcher]
        out = sh(*prefix, sys.executable, "-c", DRIVER, json.dumps(cfg), timeout=60)
        return list(json.loads(out))

    def spawn(self, netns: str, *argv: str) -> None:
        self.procs.append(subprocess.Popen(["ip", "netns", "exec", netns, *argv],
                                           stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL, text=True))

    def http_get(self, netns: str, ip: str, port: int, path: str = "/") -> str:
        return sh("ip", "netns", "exec", netns, sys.executable, "-c", CLIENT, ip, str(port),
                  path).strip()

    def leftovers(self) -> list[str]:
        found = [n for n in netns_list() if n.startswith(self.tag)]
        etc = Path("/etc/netns")
        if etc.is_dir():
            found += [str(etc / d) for d in os.listdir(etc) if d.startswith(self.tag)]
        return found

    def cleanup(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        for ns in netns_list():
            if ns.startswith(f"{self.tag}-pod-"):
                sh("ip", "netns", "delete", ns, check=False)
        for ns in self.nodes:
            sh("ip", "netns", "delete", ns, check=False)
        for d in Path("/etc/netns").glob(f"{self.tag}*") if Path("/etc/netns").is_dir() else []:
            shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    before = ROOT_FORWARD.read_text()
    etc_netns = Path("/etc/netns")
    had_etc_netns = etc_netns.exists()
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.cleanup()
        if not had_etc_netns and etc_netns.is_dir() and not any(etc_netns.iterdir()):
            etc_netns.rmdir()  # the test created it; leave the machine as it was
        assert c.leftovers() == []
        assert ROOT_FORWARD.read_text() == before, "root namespace forwarding was changed"


def pod_plan(node: NodeConfig, name: str, ip: str, **spec: Any) -> dict[str, Any]:
    """A real plan (plan_pod) for a pod `name`, as the JSON the driver takes."""
    pod = {"metadata": {"name": name, "namespace": "demo", "uid": f"{secrets.token_hex(6)}-{name}"},
           "spec": {"containers": [{"name": "c", "image": "netexec"}], **spec}}
    plan = plan_pod(pod, node, services=[], configmaps={}, secrets={}, images=ImageCatalog(),
                    host_resolv="nameserver 192.0.2.53\nsearch example.test\n", pod_ip=ip)
    return asdict(plan)


def link_json(netns: str, dev: str) -> dict[str, Any]:
    return json.loads(sh("ip", "-n", netns, "-j", "-d", "addr", "show", "dev", dev))[0]


def test_two_pods_on_one_node(cluster: Cluster) -> None:
    node = cluster.node("a", "10.244.201.0/24")
    p1 = pod_plan(node, "p1", "10.244.201.2")
    p2 = pod_plan(node, "p2", "10.244.201.3")
    hostnet = pod_plan(node, "hn", "", hostNetwork=True)
    out = cluster.drive(node, ["ensure"], ["create", p1, "10.244.201.2"],
                        ["create", p2, "10.244.201.3"], ["create", hostnet, ""],
                        ["prefix", {"pod_uid": "x", "netns": "", "ip": ""}],
                        ["create", pod_plan(node, "bad", ""), "10.9.9.9"])
    assert out[0] is None, out
    sb1, sb2, sbh = out[1], out[2], out[3]
    assert sb1["netns"] == f"{cluster.tag}-pod-{p1['uid'][:12]}" and sb1["ip"] == "10.244.201.2"
    assert sb1["host_veth"].startswith("veth") and len(sb1["host_veth"]) == 12
    assert (sbh["netns"], out[4]) == ("", [])
    assert out[5] == {"error": "SandboxError", "message": "pod demo/bad: IP '10.9.9.9' is not "
                      "in the node's pod range 10.244.201.0/24"}

    # node: bridge with the gateway address, forwarding on here only, hairpin on
    br = link_json(node.name, "cbr0")
    assert [(a["local"], a["prefixlen"]) for a in br["addr_info"] if a["family"] == "inet"] == [
        ("10.244.201.1", 24)]
    assert sh("ip", "netns", "exec", node.name, "cat", "/proc/sys/net/ipv4/ip_forward") == "1\n"
    slave = link_json(node.name, sb1["host_veth"])["linkinfo"]
    assert slave["info_slave_kind"] == "bridge" and slave["info_slave_data"]["hairpin"] is True

    # pods: visible to the host, their own resolv.conf and hosts, an address, a default route
    assert {sb1["netns"], sb2["netns"]} <= set(netns_list())
    for sb, plan in ((sb1, p1), (sb2, p2)):
        assert sh("ip", "netns", "exec", sb["netns"], "cat", "/etc/resolv.conf") == \
            plan["resolv_conf"]
        assert sh("ip", "netns", "exec", sb["netns"], "cat", "/etc/hosts") == plan["hosts"]
    assert p1["resolv_conf"] == ("search demo.svc.cluster.local svc.cluster.local "
                                 "cluster.local example.test\nnameserver 10.96.0.10\n"
                                 "options ndots:5\n")
    assert "default via 10.244.201.1 dev eth0" in sh("ip", "-n", sb1["netns"], "route")

    # pod -> pod TCP through the bridge, source IP preserved (netexec /clientip)
    cluster.spawn(sb2["netns"], sys.executable, "-m", "svcnet.images.netexec",
                  "--http-port=8080", "--udp-port=-1")
    assert cluster.http_get(sb1["netns"], "10.244.201.3", 8080, "/clientip").startswith(
        "10.244.201.2:")
    # pod -> itself by its own IP, and the node -> pod
    assert cluster.http_get(sb2["netns"], "10.244.201.3", 8080, "/echo?msg=self") == "self"
    assert cluster.http_get(node.name, "10.244.201.3", 8080, "/echo?msg=node") == "node"

    # idempotent create; list from state; an orphan (state lost) is still found
    again, listed = cluster.drive(node, ["create", p1, "10.244.201.2"], ["list"])
    assert again == sb1 and [s["netns"] for s in listed] == sorted([sb1["netns"], sb2["netns"]])
    (node.state_dir / "sandboxes" / f"{p2['uid']}.json").unlink()
    listed = cluster.drive(node, ["list"])[0]
    orphan = [s for s in listed if s["netns"] == sb2["netns"]][0]
    assert orphan["pod_uid"] == p2["uid"][:12] and orphan["ip"] == "10.244.201.3"

    # remove both (the orphan by its short uid), twice: nothing is left
    out = cluster.drive(node, ["remove", p1["uid"]], ["remove", orphan["pod_uid"]],
                        ["remove", p1["uid"]], ["list"])
    assert out == [None, None, None, []]
    assert cluster.leftovers() == [node.name]
    assert "veth" not in sh("ip", "-n", node.name, "-br", "link")
    assert list((node.state_dir / "sandboxes").iterdir()) == []


def test_agent_started_by_ip_netns_exec(cluster: Cluster) -> None:
    """`svcnet up` starts agents with `ip netns exec`, in a private mount namespace: pod
    namespaces must still be visible on the host and survive an agent restart."""
    node = cluster.node("b", "10.244.202.0/24")
    p1 = pod_plan(node, "p1", "10.244.202.2")
    out = cluster.drive(node, ["ensure"], ["create", p1, "10.244.202.2"], launcher="ip")
    sb = out[1]
    assert sb["netns"] in netns_list()
    assert sh("ip", "netns", "exec", sb["netns"], "cat", "/etc/resolv.conf") == p1["resolv_conf"]
    # a restarted agent (a new mount namespace) lists and removes it
    listed, removed = cluster.drive(node, ["list"], ["remove", p1["uid"]], launcher="ip")
    assert [s["netns"] for s in listed] == [sb["netns"]] and removed is None
    assert sb["netns"] not in netns_list()


def test_pods_on_two_nodes_reach_each_other(cluster: Cluster) -> None:
    a = cluster.node("a", "10.244.201.0/24")
    b = cluster.node("b", "10.244.202.0/24")
    # a point-to-point link between the two nodes, with a route to the other's pod range
    # (what `svcnet up` sets up between node namespaces)
    sh("ip", "link", "add", "tmpa", "netns", a.name, "type", "veth", "peer", "name", "tmpb",
       "netns", b.name)
    for node, dev, mine, peer, cidr in ((a, "tmpa", "172.31.254.1", "172.31.254.2", b.pod_cidr),
                                        (b, "tmpb", "172.31.254.2", "172.31.254.1", a.pod_cidr)):
        sh("ip", "-n", node.name, "addr", "add", f"{mine}/24", "dev", dev)
        sh("ip", "-n", node.name, "link", "set", dev, "up")
        sh("ip", "-n", node.name, "route", "add", cidr, "via", peer)
    pa = pod_plan(a, "pa", "10.244.201.2")
    pb = pod_plan(b, "pb", "10.244.202.2")
    sa = cluster.drive(a, ["ensure"], ["create", pa, "10.244.201.2"])[1]
    sb = cluster.drive(b, ["ensure"], ["create", pb, "10.244.202.2"])[1]
    cluster.spawn(sb["netns"], sys.executable, "-m", "svcnet.images.netexec",
                  "--http-port=8080", "--udp-port=-1")
    assert cluster.http_get(sa["netns"], "10.244.202.2", 8080, "/clientip").startswith(
        "10.244.201.2:")
    assert cluster.drive(a, ["remove", pa["uid"]]) == [None]
    assert cluster.drive(b, ["remove", pb["uid"]]) == [None]


def test_root_namespace_is_refused(cluster: Cluster) -> None:
    node = NodeConfig(name="root", node_ip="192.0.2.1", pod_cidr="10.244.203.0/24",
                      state_dir=cluster.tmp / "root", bridge=f"svt{secrets.token_hex(3)}",
                      netns_prefix=f"{cluster.tag}-pod-")
    p1 = pod_plan(node, "p1", "10.244.203.2")
    out = cluster.drive(node, ["ensure"], launcher="root")
    assert out[0]["error"] == "RootNamespaceError"
    out = cluster.drive(node, ["ensure"], ["create", p1, "10.244.203.2"], launcher="root",
                        allow_root_namespace=True)
    assert out[0] is None and out[1]["error"] == "RootNamespaceError"
    assert sh("ip", "link", "show", "dev", node.bridge, check=False) == ""


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_nginx_image_in_a_pod(cluster: Cluster) -> None:
    node = cluster.node("a", "10.244.201.0/24")
    pod = {"metadata": {"name": "web", "namespace": "demo", "uid": secrets.token_hex(8)},
           "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}}
    plan = plan_pod(pod, node, services=[], configmaps={}, secrets={}, images=ImageCatalog(),
                    pod_ip="10.244.201.2")
    client = pod_plan(node, "client", "10.244.201.3")
    out = cluster.drive(node, ["ensure"], ["create", asdict(plan), "10.244.201.2"],
                        ["create", client, "10.244.201.3"])
    web, cl = out[1]["netns"], out[2]["netns"]
    try:
        cluster.spawn(web, *plan.containers[0].argv)
        body = cluster.http_get(cl, "10.244.201.2", 80, "/")
        assert "Welcome to nginx!" in body
    finally:
        for p in cluster.procs:
            p.terminate()
        shutil.rmtree(plan.containers[0].scratch_dir, ignore_errors=True)
    assert isinstance(plan, PodPlan)
