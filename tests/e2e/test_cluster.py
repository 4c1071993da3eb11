"""A real `svcnet up --nodes 2` cluster driven by real kubectl (issue 5 acceptance).

Pods are processes in network namespaces; traffic goes only between namespaces this test's
cluster made (the cluster gets its own name and unused CIDRs, see clusterkit.py).
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from clusterkit import needs_root, running_cluster, svcnet
from conftest import wait_for

from svcnet.cluster.plan import ClusterPlan
from svcnet.cluster.supervisor import load_state

pytestmark = [pytest.mark.e2e, pytest.mark.dataplane, needs_root]


class Cluster:
    def __init__(self, plan: ClusterPlan, opts: list[str], cache: Path) -> None:
        self.plan, self.opts, self.cache = plan, opts, cache

    def k(self, *args: str, check: bool = True, input: str | None = None) -> str:
        res = subprocess.run(["kubectl", "--kubeconfig", str(self.plan.kubeconfig),
                              "--cache-dir", str(self.cache), *args], capture_output=True,
                             text=True, timeout=60, input=input)
        if check and res.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {res.stdout}{res.stderr}")
        return res.stdout + ("" if check else res.stderr)

    def pods(self, selector: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = json.loads(self.k("get", "pods", "-l", selector, "-o",
                                                        "json"))["items"]
        return items

    def pod(self, name: str) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.k("get", "pod", name, "-o", "json"))
        return out


def ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in pod.get("status", {}).get("conditions", []))


def routed_to_cluster(plan: ClusterPlan, ip: str) -> bool:
    """The host sends `ip` into our cluster's bridge (never out of the machine)."""
    out = subprocess.run(["ip", "route", "get", ip], capture_output=True, text=True).stdout
    return f"dev {plan.naming.bridge} " in out


def http_get(plan: ClusterPlan, ip: str, port: int, path: str = "/",
             netns: str | None = None) -> str:
    assert routed_to_cluster(plan, ip) or netns is not None, f"{ip} is not routed into the cluster"
    cmd = ["curl", "-sS", "--max-time", "3", f"http://{ip}:{port}{path}"]
    if netns:
        cmd = ["ip", "netns", "exec", netns] + cmd
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, f"{' '.join(cmd)}: {res.stderr.strip()}"
    return res.stdout


def answer(plan: ClusterPlan, ip: str, port: int, path: str = "/",
           netns: str | None = None, timeout: float = 10) -> str:
    """http_get, retried while the server inside is still starting (a Pod without a
    readiness probe is Ready as soon as its process starts, as in Kubernetes)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return http_get(plan, ip, port, path, netns)
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def pod_netns(pod: dict[str, Any]) -> str:
    return "svcnet-pod-" + pod["metadata"]["uid"][:12]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("cluster")
    with running_cluster(tmp) as (plan, opts):
        yield Cluster(plan, opts, tmp / "kube-cache")


DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: hostnames}
spec:
  replicas: 3
  selector: {matchLabels: {app: hostnames}}
  template:
    metadata: {labels: {app: hostnames}}
    spec:
      containers:
      - name: hostnames
        image: registry.k8s.io/serve_hostname
        ports: [{containerPort: 9376}]
"""


def test_pods_spread_get_node_ips_and_answer(cluster: Cluster) -> None:
    cluster.k("apply", "-f", "-", input=DEPLOY)
    pods = wait_for(lambda: (lambda ps: ps if len(ps) == 3 and all(map(ready, ps)) else None)(
        cluster.pods("app=hostnames")), what="3 ready pods")
    nodes = {n["metadata"]["name"]: n for n in json.loads(cluster.k("get", "nodes", "-o",
                                                                    "json"))["items"]}
    assert {p["spec"]["nodeName"] for p in pods} == set(nodes)  # spread over both nodes
    for p in pods:
        ip = p["status"]["podIP"]
        cidr = nodes[p["spec"]["nodeName"]]["spec"]["podCIDR"]
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(cidr)
        assert answer(cluster.plan, ip, 9376) == p["metadata"]["name"]
    # a Pod on one node reaches a Pod on the other
    a = next(p for p in pods if p["spec"]["nodeName"] == "node-1")
    b = next(p for p in pods if p["spec"]["nodeName"] != "node-1")
    assert answer(cluster.plan, b["status"]["podIP"], 9376, netns=pod_netns(a)) == \
        b["metadata"]["name"]
    resolv = subprocess.run(["ip", "netns", "exec", pod_netns(a), "cat", "/etc/resolv.conf"],
                            capture_output=True, text=True).stdout
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in resolv
    assert "options ndots:5" in resolv
    logs = cluster.k("logs", a["metadata"]["name"])
    assert "9376" in logs


NETEXEC = """\
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  containers:
  - name: netexec
    image: registry.k8s.io/e2e-test-images/agnhost:2.43
    args: [netexec, --http-port=8080]
    {probe}:
      httpGet: {{path: /healthz, port: 8080}}
      periodSeconds: 1
      failureThreshold: 2
"""


def test_readiness_and_liveness_probes(cluster: Cluster) -> None:
    cluster.k("apply", "-f", "-", input=NETEXEC.format(name="rdy", probe="readinessProbe"))
    cluster.k("expose", "pod", "rdy", "--port", "80", "--target-port", "8080")
    pod = wait_for(lambda: (lambda p: p if ready(p) else None)(cluster.pod("rdy")),
                   what="rdy ready")
    ip = pod["status"]["podIP"]
    assert http_get(cluster.plan, ip, 8080, "/healthz/fail")
    t0 = time.monotonic()
    wait_for(lambda: not ready(cluster.pod("rdy")), timeout=10, what="rdy unready")
    assert time.monotonic() - t0 < 2 * 1 + 3  # failureThreshold x periodSeconds (+ slack)

    def slice_ready() -> Any:
        items = json.loads(cluster.k("get", "endpointslice", "-l",
                                     "kubernetes.io/service-name=rdy", "-o", "json"))["items"]
        return [e["conditions"].get("ready") for s in items for e in s.get("endpoints") or []]
    wait_for(lambda: slice_ready() == [False], what="slice endpoint not ready")
    http_get(cluster.plan, ip, 8080, "/healthz/ok")
    wait_for(lambda: ready(cluster.pod("rdy")), what="rdy ready again")

    cluster.k("apply", "-f", "-", input=NETEXEC.format(name="live", probe="livenessProbe"))
    pod = wait_for(lambda: (lambda p: p if ready(p) else None)(cluster.pod("live")),
                   what="live running")
    answer(cluster.plan, pod["status"]["podIP"], 8080, "/healthz/fail")
    wait_for(lambda: cluster.pod("live")["status"]["containerStatuses"][0]["restartCount"] >= 1,
             timeout=30, what="liveness restart")


SLEEPER = """\
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: {grace}
  containers:
  - name: main
    image: registry.k8s.io/e2e-test-images/agnhost:2.43
    args: [netexec, --http-port=8080]
"""


def _container_pids(netns: str) -> list[int]:
    out = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_killed_container_restarts_and_deleted_pod_stops_gracefully(cluster: Cluster) -> None:
    cluster.k("apply", "-f", "-", input=SLEEPER.format(name="victim", grace=10))
    pod = wait_for(lambda: (lambda p: p if ready(p) else None)(cluster.pod("victim")),
                   what="victim running")
    ns = pod_netns(pod)
    for pid in _container_pids(ns):
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: cluster.pod("victim")["status"]["containerStatuses"][0]["restartCount"] == 1
             and ready(cluster.pod("victim")), timeout=40, what="restarted after kill")
    pids = _container_pids(ns)
    assert pids
    t0 = time.monotonic()
    cluster.k("delete", "pod", "victim", "--wait=true", "--timeout=30s")
    assert time.monotonic() - t0 < 10  # netexec exits on SIGTERM, well within the grace
    assert not any(Path(f"/proc/{p}").exists() for p in pids)
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert ns not in listed  # the sandbox is gone


def test_agent_restart_keeps_pods_running(cluster: Cluster) -> None:
    cluster.k("apply", "-f", "-", input=SLEEPER.format(name="keeper", grace=5))
    pod = wait_for(lambda: (lambda p: p if ready(p) else None)(cluster.pod("keeper")),
                   what="keeper running")
    pids_before = _container_pids(pod_netns(pod))

    def our_pod_netns() -> set[str]:
        """This cluster's pod namespaces (other clusters may run on the machine)."""
        ours = {pod_netns(p) for p in json.loads(cluster.k("get", "pods", "-A", "-o",
                                                           "json"))["items"]}
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True,
                                text=True).stdout.split()
        return ours & set(listed)
    netns_before = our_pod_netns()
    agent = load_state(cluster.plan.data_dir).processes[f"agent-{pod['spec']['nodeName']}"]
    os.kill(agent.pid, signal.SIGTERM)  # type: ignore[union-attr]
    wait_for(lambda: not Path(f"/proc/{agent.pid}").exists(), what="agent stopped")  # type: ignore[union-attr]
    res = svcnet("up", "--nodes", "2", "--data-dir", str(cluster.plan.data_dir), *cluster.opts,
                 timeout=180)
    assert res.returncode == 0, res.stdout + res.stderr
    time.sleep(3)
    after = cluster.pod("keeper")
    assert after["metadata"]["uid"] == pod["metadata"]["uid"]
    assert after["status"]["containerStatuses"][0]["restartCount"] == 0
    assert after["status"]["podIP"] == pod["status"]["podIP"]
    assert _container_pids(pod_netns(pod)) == pids_before  # the same processes run on
    assert our_pod_netns() == netns_before  # no sandbox lost or made again


def test_bad_input_becomes_pod_status_and_event(cluster: Cluster) -> None:
    cluster.k("run", "mystery", "--image=example.com/mystery:1.0", "--restart=Never")

    def waiting_reason() -> Any:
        cs = cluster.pod("mystery").get("status", {}).get("containerStatuses") or []
        return cs and cs[0].get("state", {}).get("waiting", {}).get("reason")
    assert wait_for(waiting_reason, what="ErrImagePull") == "ErrImagePull"
    assert "ErrImagePull" in cluster.k("get", "pod", "mystery")
    wait_for(lambda: "mystery" in cluster.k("get", "events", "--field-selector",
                                            "involvedObject.name=mystery"), what="event")
    # hostNetwork: a port the node already uses (the agent's own 10250) fails clearly
    cluster.k("apply", "-f", "-", input="""\
apiVersion: v1
kind: Pod
metadata: {name: clash}
spec:
  hostNetwork: true
  nodeSelector: {kubernetes.io/hostname: node-1}
  containers:
  - name: web
    image: registry.k8s.io/e2e-test-images/agnhost:2.43
    args: [netexec, --http-port=10250, --udp-port=-1]
""")

    def clash_failed() -> Any:
        cs = cluster.pod("clash").get("status", {}).get("containerStatuses") or []
        if not cs:
            return None
        st = cs[0]
        return st.get("restartCount", 0) >= 1 or \
            st.get("state", {}).get("waiting", {}).get("reason") == "CrashLoopBackOff"
    wait_for(clash_failed, timeout=40, what="hostNetwork port clash")
    # the node keeps serving its other Pods
    assert all(ready(p) for p in cluster.pods("app=hostnames"))


# --- Services through the proxy (issue 6) -------------------------------------------------

def _svc_ip(cluster: Cluster, name: str) -> str:
    return str(json.loads(cluster.k("get", "svc", name, "-o", "json"))["spec"]["clusterIP"])


def _node_port(cluster: Cluster, name: str) -> int:
    return int(json.loads(cluster.k("get", "svc", name, "-o", "json"))["spec"]["ports"][0][
        "nodePort"])


def _hostnames_ready(cluster: Cluster) -> list[dict[str, Any]]:
    if not cluster.pods("app=hostnames"):
        cluster.k("apply", "-f", "-", input=DEPLOY)
    pods: list[dict[str, Any]] = wait_for(lambda: (lambda ps: ps if len(ps) == 3 and all(
        map(ready, ps)) else None)(cluster.pods("app=hostnames")), what="3 ready pods")
    return pods


def test_cluster_ip_and_node_ports_balance_over_pods(cluster: Cluster) -> None:
    pods = _hostnames_ready(cluster)
    names = {p["metadata"]["name"] for p in pods}
    if "hostnames" not in cluster.k("get", "svc", check=False):
        cluster.k("expose", "deployment", "hostnames", "--port=80", "--target-port=9376",
                  "--type=NodePort")
    cip = _svc_ip(cluster, "hostnames")
    client = pod_netns(pods[0])
    answer(cluster.plan, cip, 80, netns=client)  # rules are programmed
    seen = [http_get(cluster.plan, cip, 80, netns=client) for _ in range(60)]
    assert set(seen) == names  # 60 requests reach all three Pods
    # NodePort from the host, on both nodes (SNAT when the endpoint is on the other node)
    np = _node_port(cluster, "hostnames")
    for node in cluster.plan.nodes:
        got = {answer(cluster.plan, node.ip, np) for _ in range(15)}
        assert got <= names and got
    # iptables-save in a node reads as the tutorials show
    save = subprocess.run(["ip", "netns", "exec", cluster.plan.nodes[0].netns, "iptables-save",
                           "-t", "nat"], capture_output=True, text=True).stdout
    rules = [line for line in save.splitlines() if line.startswith("-A KUBE-SVC-")
             and "default/hostnames -> " in line]
    assert len(rules) == 3
    assert "--probability 0.33333333349" in rules[0] and "--probability 0.50000000000" in rules[1]
    assert "-j DNAT --to-destination" in save and "--dst-type LOCAL -j KUBE-NODEPORTS" in save


def test_no_endpoints_rejects_at_once_and_hairpin_works(cluster: Cluster) -> None:
    pods = _hostnames_ready(cluster)
    cluster.k("create", "service", "clusterip", "nobody", "--tcp=80:8080")
    ip = _svc_ip(cluster, "nobody")
    client = pod_netns(pods[0])

    def refused() -> bool:
        t0 = time.monotonic()
        res = subprocess.run(["ip", "netns", "exec", client, "curl", "-sS", "--max-time", "3",
                              f"http://{ip}/"], capture_output=True, text=True)
        return res.returncode == 7 and time.monotonic() - t0 < 1  # REJECT, not a timeout
    wait_for(refused, what="connection refused at once")
    # a Pod reaches itself through its own Service (hairpin)
    me = pods[0]
    cluster.k("apply", "-f", "-", input="""\
apiVersion: v1
kind: Service
metadata: {name: only-me}
spec:
  selector: {app: hostnames}
  ports: [{port: 80, targetPort: 9376}]
  sessionAffinity: ClientIP
""")
    ip = _svc_ip(cluster, "only-me")
    got = [answer(cluster.plan, ip, 80, netns=pod_netns(me)) for _ in range(20)]
    assert len(set(got)) == 1  # ClientIP affinity: 20 requests, one backend
    cluster.k("label", "pod", me["metadata"]["name"], "solo=yes")
    cluster.k("patch", "svc", "only-me", "--type=merge", "-p",
              '{"spec":{"selector":{"app":"hostnames","solo":"yes"}}}')
    wait_for(lambda: http_get(cluster.plan, ip, 80, netns=pod_netns(me)) ==
             me["metadata"]["name"], what="hairpin to itself")


def test_service_without_selector_forwards_to_hand_made_endpoints(cluster: Cluster) -> None:
    pods = _hostnames_ready(cluster)
    target = pods[1]
    cluster.k("apply", "-f", "-", input=f"""\
apiVersion: v1
kind: Service
metadata: {{name: external-db}}
spec:
  ports: [{{port: 80, targetPort: 9376}}]
---
apiVersion: v1
kind: Endpoints
metadata: {{name: external-db}}
subsets:
- addresses: [{{ip: {target["status"]["podIP"]}}}]
  ports: [{{port: 9376}}]
""")
    ip = _svc_ip(cluster, "external-db")
    assert answer(cluster.plan, ip, 80, netns=pod_netns(pods[0]), timeout=15) == \
        target["metadata"]["name"]


NETEXEC_ON = """\
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {app}}}}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {node}}}
  containers:
  - name: netexec
    image: registry.k8s.io/e2e-test-images/agnhost:2.43
    args: [netexec, --http-port=8080, --udp-port=8081]
    readinessProbe:
      httpGet: {{path: /healthz, port: 8080}}
      periodSeconds: 1
      failureThreshold: 1
"""


def test_external_traffic_policy_local_keeps_client_ip(cluster: Cluster) -> None:
    cluster.k("apply", "-f", "-", input=NETEXEC_ON.format(name="local-ep", app="etp",
                                                          node="node-1"))
    cluster.k("apply", "-f", "-", input="""\
apiVersion: v1
kind: Service
metadata: {name: etp}
spec:
  type: NodePort
  externalTrafficPolicy: Local
  selector: {app: etp}
  ports: [{port: 80, targetPort: 8080}]
""")
    wait_for(lambda: ready(cluster.pod("local-ep")), what="local-ep ready")
    np = _node_port(cluster, "etp")
    node1, node2 = cluster.plan.nodes[0], cluster.plan.nodes[1]
    client = answer(cluster.plan, node1.ip, np, "/clientip", timeout=15)
    assert client.rsplit(":", 1)[0] == cluster.plan.host_ip  # the source IP is kept
    # the node without a local endpoint drops external traffic (no answer, not a refusal):
    # once its own proxy has synced the Service (until then nothing listens: a refusal)
    def node2_answer() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["curl", "-sS", "--max-time", "2", f"http://{node2.ip}:{np}/"],
                              capture_output=True, text=True)
    res = wait_for(lambda: (lambda r: r if r.returncode != 7 else None)(node2_answer()),
                   timeout=15, what=f"node-2 programming NodePort {np}")
    assert res.returncode == 28, res  # timed out


def _rules_mention(netns: str, ip: str) -> bool:
    save = subprocess.run(["ip", "netns", "exec", netns, "iptables-save", "-t", "nat"],
                          capture_output=True, text=True).stdout
    return f"--to-destination {ip}:" in save


def test_unready_pod_leaves_rules_within_min_sync_period(cluster: Cluster) -> None:
    for name in ("rules-a", "rules-b"):
        cluster.k("apply", "-f", "-", input=NETEXEC_ON.format(name=name, app="rules",
                                                              node="node-1"))
    cluster.k("expose", "pod", "rules-a", "--name=rules", "--selector=app=rules",
              "--port=80", "--target-port=8080")
    a = wait_for(lambda: (lambda p: p if ready(p) else None)(cluster.pod("rules-a")),
                 what="rules-a ready")
    wait_for(lambda: ready(cluster.pod("rules-b")), what="rules-b ready")
    ip = a["status"]["podIP"]
    netns = cluster.plan.nodes[0].netns
    wait_for(lambda: _rules_mention(netns, ip), what="endpoint in the rules")

    def slice_says_unready() -> bool:
        items = json.loads(cluster.k("get", "endpointslice", "-l",
                                     "kubernetes.io/service-name=rules", "-o", "json"))["items"]
        return any(e["addresses"][0] == ip and not e["conditions"].get("ready")
                   for s in items for e in s.get("endpoints") or [])
    answer(cluster.plan, ip, 8080, "/healthz/fail")
    wait_for(slice_says_unready, timeout=15, interval=0.02, what="slice shows unready")
    t_slice = time.monotonic()
    wait_for(lambda: not _rules_mention(netns, ip), timeout=5, interval=0.01,
             what="rules updated")
    # minSyncPeriod (1 s) + 100 ms, plus what polling kubectl adds to the slice timestamp
    assert time.monotonic() - t_slice < 1.1 + 0.3


def test_udp_flows_to_a_removed_endpoint_are_cleared(cluster: Cluster) -> None:
    pods = _hostnames_ready(cluster)
    cluster.k("apply", "-f", "-", input=NETEXEC_ON.format(name="udp-ep", app="udp",
                                                          node="node-1"))
    cluster.k("apply", "-f", "-", input="""\
apiVersion: v1
kind: Service
metadata: {name: udp}
spec:
  selector: {app: udp}
  ports: [{name: dns, port: 53, targetPort: 8081, protocol: UDP}]
""")
    ep = wait_for(lambda: (lambda p: p if ready(p) else None)(cluster.pod("udp-ep")),
                  what="udp-ep ready")
    ep_ip, vip = ep["status"]["podIP"], _svc_ip(cluster, "udp")
    client = next(p for p in pods if p["spec"]["nodeName"] == "node-1")
    node_ns = cluster.plan.nodes[0].netns

    def send() -> str:
        return subprocess.run(["ip", "netns", "exec", pod_netns(client), "python3", "-c",
                               "import socket; s=socket.socket(socket.AF_INET, "
                               "socket.SOCK_DGRAM); s.settimeout(1); "
                               f"s.sendto(b'hostname', ('{vip}', 53)); "
                               "print(s.recvfrom(100)[0].decode())"],
                              capture_output=True, text=True).stdout.strip()

    def flows() -> str:
        return subprocess.run(["ip", "netns", "exec", node_ns, "conntrack", "-L", "-p", "udp",
                               "--reply-src", ep_ip], capture_output=True, text=True).stdout
    assert wait_for(send, what="UDP answer through the Service") == "udp-ep"
    assert "dport=53" in flows()
    cluster.k("delete", "pod", "udp-ep", "--wait=true")
    wait_for(lambda: "dport=53" not in flows(), timeout=10, what="stale UDP flows cleared")


def test_established_tcp_survives_an_agent_restart(cluster: Cluster) -> None:
    pods = _hostnames_ready(cluster)
    if "hostnames" not in cluster.k("get", "svc", check=False):
        cluster.k("expose", "deployment", "hostnames", "--port=80", "--target-port=9376",
                  "--type=NodePort")
    cip = _svc_ip(cluster, "hostnames")
    client = next(p for p in pods if p["spec"]["nodeName"] == "node-1")
    answer(cluster.plan, cip, 80, netns=pod_netns(client))
    # one keep-alive connection: a request, then (after the restart) another on it
    script = ("import socket,sys\n"
              f"s=socket.create_connection(('{cip}',80),timeout=5)\n"
              "req=b'GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'\n"
              "def ask():\n"
              "    s.sendall(req); data=b''\n"
              "    while b'\\r\\n\\r\\n' not in data: data+=s.recv(4096)\n"
              "    head,body=data.split(b'\\r\\n\\r\\n',1)\n"
              "    n=int([l.split(b':')[1] for l in head.split(b'\\r\\n') "
              "if l.lower().startswith(b'content-length')][0])\n"
              "    while len(body)<n: body+=s.recv(4096)\n"
              "    return body.decode()\n"
              "print(ask(),flush=True); sys.stdin.readline(); print(ask(),flush=True)\n")
    proc = subprocess.Popen(["ip", "netns", "exec", pod_netns(client), "python3", "-c", script],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        first = proc.stdout.readline().strip()
        agent = load_state(cluster.plan.data_dir).processes["agent-node-1"]
        os.kill(agent.pid, signal.SIGTERM)  # type: ignore[union-attr]
        wait_for(lambda: not Path(f"/proc/{agent.pid}").exists(), what="agent stopped")  # type: ignore[union-attr]
        res = svcnet("up", "--nodes", "2", "--data-dir", str(cluster.plan.data_dir),
                     *cluster.opts, timeout=180)
        assert res.returncode == 0, res.stdout + res.stderr
        time.sleep(2)  # the restarted proxy has done its first (full) sync
        proc.stdin.write("\n")
        proc.stdin.flush()
        second = proc.stdout.readline().strip()
        assert first and second == first  # same connection, same backend, still working
    finally:
        proc.kill()
        proc.wait(5)
