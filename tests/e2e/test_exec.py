"""kubectl exec, run -it / attach, cp and port-forward against a real `svcnet up --nodes 2`
cluster, with the real kubectl (its own unique names and CIDRs, see clusterkit.py).

What kubectl prints is asserted as it prints it, errors included, since users read those
lines. Everything a test creates is deleted even when it fails; the cluster itself is
removed (and checked to leave nothing behind) at the end of the module.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pexpect
import pytest
import yaml
from clusterkit import needs_root, running_cluster
from conftest import free_port, pids_mentioning, wait_for

from svcnet.cluster.plan import ClusterPlan
from svcnet.cluster.supervisor import load_state

pytestmark = [pytest.mark.e2e, pytest.mark.dataplane, needs_root]

PODS = """\
apiVersion: v1
kind: Pod
metadata: {name: bb}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - {name: bb, image: busybox, command: ["sh", "-c", "sleep 3600"]}
---
apiVersion: v1
kind: Pod
metadata: {name: nx}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: nx
    image: registry.k8s.io/e2e-test-images/agnhost:2.39
    args: ["netexec", "--http-port=8080"]
---
apiVersion: v1
kind: Pod
metadata: {name: noimage}
spec:
  containers: [{name: c, image: no-such-image-svcnet-test}]
---
apiVersion: v1
kind: Pod
metadata: {name: nohost}
spec:
  nodeSelector: {svcnet-test: no-such-node}
  containers: [{name: c, image: busybox, command: ["sleep", "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: failed}
spec:
  restartPolicy: Never
  containers: [{name: c, image: busybox, command: ["sh", "-c", "exit 1"]}]
"""


class Cluster:
    def __init__(self, plan: ClusterPlan, cache: Path, tmp: Path) -> None:
        self.plan, self.cache, self.tmp = plan, cache, tmp

    def argv(self, *args: str, kubeconfig: Path | None = None) -> list[str]:
        return ["kubectl", "--kubeconfig", str(kubeconfig or self.plan.kubeconfig),
                "--cache-dir", str(self.cache), *args]

    def run(self, *args: str, input: bytes | None = None, kubeconfig: Path | None = None,
            timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(self.argv(*args, kubeconfig=kubeconfig), input=input,
                              capture_output=True, timeout=timeout)

    def k(self, *args: str, input: str | None = None) -> str:
        res = self.run(*args, input=None if input is None else input.encode())
        assert res.returncode == 0, f"kubectl {' '.join(args)}: {res.stdout!r}{res.stderr!r}"
        return res.stdout.decode()

    def pod(self, name: str) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.k("get", "pod", name, "-o", "json"))
        return out

    def pod_names(self) -> set[str]:
        return set(self.k("get", "pods", "-o", "name").split())

    def agent_pid(self, node: str) -> int:
        state = load_state(self.plan.data_dir)
        assert state is not None
        return state.processes[f"agent-{node}"].pid


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("exec")
    with running_cluster(tmp) as (plan, _):
        c = Cluster(plan, tmp / "kube-cache", tmp)
        c.k("apply", "-f", "-", input=PODS)
        wait_for(lambda: all(_phase(c, p) == want for p, want in (
            ("bb", "Running"), ("nx", "Running"), ("failed", "Failed"))),
            what="bb and nx running, failed failed")
        wait_for(lambda: _waiting(c, "noimage") == "ErrImagePull", what="noimage waiting")
        yield c


def _phase(c: Cluster, name: str) -> str:
    return str(c.pod(name).get("status", {}).get("phase", ""))


def _waiting(c: Cluster, name: str) -> str:
    for cs in c.pod(name).get("status", {}).get("containerStatuses") or []:
        return str((cs.get("state") or {}).get("waiting", {}).get("reason", ""))
    return ""


def _ready(c: Cluster, name: str) -> bool:
    return any(x.get("type") == "Ready" and x.get("status") == "True"
               for x in c.pod(name).get("status", {}).get("conditions", []))


# --- exec ------------------------------------------------------------------------------------

def test_exec_sees_the_pods_hostname_and_resolv_conf(cluster: Cluster) -> None:
    assert cluster.k("exec", "bb", "--", "hostname").strip() == "bb"
    resolv = cluster.k("exec", "bb", "--", "cat", "/etc/resolv.conf")
    dns = ipaddress.ip_network(cluster.plan.service_cidr)[10]
    assert f"nameserver {dns}" in resolv.splitlines()
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in resolv
    assert "options ndots:5" in resolv
    uid = cluster.pod("bb")["metadata"]["uid"]
    assert resolv == Path(f"/etc/netns/svcnet-pod-{uid[:12]}/resolv.conf").read_text()
    # and the Pod's network: its own address on eth0
    ip = cluster.pod("bb")["status"]["podIP"]
    assert f"inet {ip}/" in cluster.k("exec", "bb", "--", "ip", "-4", "addr", "show", "eth0")
    # a non-busybox image runs node programs, in the same namespaces
    assert cluster.k("exec", "nx", "--", "hostname").strip() == "nx"


def test_busybox_shell_runs_busybox_applets(cluster: Cluster) -> None:
    """The tutorials' debugging flow: a shell in a busybox Pod, then its own tools (the
    node may not have `nc`, and its `wget` is GNU's)."""
    ip = cluster.pod("nx")["status"]["podIP"]
    out = cluster.k("exec", "bb", "--", "sh", "-c",
                    f"readlink $(command -v nc); wget -qO- http://{ip}:8080/hostname; echo; "
                    f"echo | nc -w 2 {ip} 8080 >/dev/null && echo nc-ok")
    lines = out.split()
    assert lines[0].endswith("busybox") and lines[1:] == ["nx", "nc-ok"], out


def test_exec_stdin_round_trips_a_mebibyte(cluster: Cluster) -> None:
    data = os.urandom(1 << 20)
    res = cluster.run("exec", "-i", "bb", "--", "sh", "-c", "cat", input=data)
    assert res.returncode == 0, res.stderr
    assert res.stdout == data


def test_exec_exit_code(cluster: Cluster) -> None:
    res = cluster.run("exec", "bb", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert res.returncode == 3
    assert res.stdout == b"out\n"
    assert res.stderr == b"err\ncommand terminated with exit code 3\n"
    res = cluster.run("exec", "bb", "--", "no-such-command")
    assert res.returncode == 126
    assert b'"no-such-command": executable file not found in $PATH' in res.stderr


def test_exec_with_a_terminal(cluster: Cluster) -> None:
    child = pexpect.spawn(cluster.argv("exec", "-it", "bb", "--", "sh")[0],
                          cluster.argv("exec", "-it", "bb", "--", "sh")[1:], timeout=15,
                          encoding="utf-8", dimensions=(33, 91))
    try:
        child.expect(r"[#$] ")
        child.sendline("stty size; echo hello-$((6*7))")
        child.expect("hello-42")
        assert "33 91" in child.before
        child.sendline("exit 4")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 4
        assert "command terminated with exit code 4" in child.before
    finally:
        child.close(force=True)


# --- run -it / attach ------------------------------------------------------------------------

def _run_it(cluster: Cluster, name: str, *command: str) -> pexpect.spawn:
    argv = cluster.argv("run", "-it", "--rm", name, "--image=busybox", "--restart=Never",
                        "--", *command)
    return pexpect.spawn(argv[0], argv[1:], timeout=30, encoding="utf-8")


def test_run_it_rm_with_an_interactive_shell(cluster: Cluster) -> None:
    name = f"t-{secrets.token_hex(3)}"
    child = _run_it(cluster, name, "sh")
    try:
        child.expect("try pressing enter")
        child.sendline("")
        child.expect(r"[#$] ")
        child.sendline("echo hello-$((6*7)); hostname")
        child.expect("hello-42")
        child.expect(name)
        child.sendline("exit")
        child.expect(f'pod "{name}" deleted')
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
        wait_for(lambda: f"pod/{name}" not in cluster.pod_names(), what="pod deleted")
    finally:
        child.close(force=True)
        cluster.run("delete", "pod", name, "--ignore-not-found", "--wait=false")


def test_run_it_rm_with_a_short_command(cluster: Cluster) -> None:
    # The command may finish before kubectl attaches; kubectl then shows its logs (as
    # with a kubelet). Either way the output appears and the Pod is removed.
    name = f"t-{secrets.token_hex(3)}"
    child = _run_it(cluster, name, "sh", "-c", "echo hello-from-run; hostname")
    try:
        child.expect("hello-from-run")
        child.expect(name)
        child.expect(f'pod "{name}" deleted')
        child.expect(pexpect.EOF)
        wait_for(lambda: f"pod/{name}" not in cluster.pod_names(), what="pod deleted")
    finally:
        child.close(force=True)
        cluster.run("delete", "pod", name, "--ignore-not-found", "--wait=false")


def test_run_it_rm_nslookup(cluster: Cluster) -> None:
    name = f"t-{secrets.token_hex(3)}"
    child = _run_it(cluster, name, "sh", "-c", "nslookup kubernetes.default")
    try:
        # the answer block, not just the address: "10.x.0.1" is also a prefix of the
        # Server line's "10.x.0.10"
        kubernetes_ip = ipaddress.ip_network(cluster.plan.service_cidr)[1]
        child.expect(r"Name:\s+kubernetes\.default\r?\nAddress 1: " +
                     re.escape(str(kubernetes_ip)) +
                     r" kubernetes\.default\.svc\.cluster\.local\r?\n")
        child.expect(f'pod "{name}" deleted')
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
    finally:
        child.close(force=True)
        cluster.run("delete", "pod", name, "--ignore-not-found", "--wait=false")


def test_run_i_rm_feeds_stdin_once(cluster: Cluster) -> None:
    name = f"t-{secrets.token_hex(3)}"
    try:
        res = cluster.run("run", "-i", "--rm", name, "--image=busybox", "--restart=Never",
                          "--", "sh", "-c", "cat; echo done-$((1+1))", input=b"piped-in\n",
                          timeout=60)
        out = res.stdout.decode()
        assert res.returncode == 0, res.stderr
        assert "piped-in\ndone-2\n" in out
        assert f'pod "{name}" deleted' in out
    finally:
        cluster.run("delete", "pod", name, "--ignore-not-found", "--wait=false")


# --- cp and port-forward ---------------------------------------------------------------------

def test_cp_both_ways(cluster: Cluster) -> None:
    # Pods see the node's file system (only /etc/resolv.conf and /etc/hosts are their
    # own), so the copy lands in this machine's /tmp: give it a unique name.
    remote = Path(f"/tmp/svcnet-cp-{secrets.token_hex(4)}")
    local = cluster.tmp / "to-pod.bin"
    back = cluster.tmp / "from-pod.bin"
    local.write_bytes(os.urandom(300_000) + b"\nend\n")
    try:
        cluster.k("cp", str(local), f"bb:{remote}")
        assert cluster.k("exec", "bb", "--", "tail", "-n", "1", str(remote)) == "end\n"
        cluster.k("cp", f"bb:{remote}", str(back))
        assert back.read_bytes() == local.read_bytes()
    finally:
        remote.unlink(missing_ok=True)


def test_port_forward(cluster: Cluster) -> None:
    wait_for(lambda: _ready(cluster, "nx"), what="nx ready")
    port = free_port()
    proc = subprocess.Popen(cluster.argv("port-forward", "pod/nx", f"{port}:8080"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        assert "Forwarding from 127.0.0.1" in proc.stdout.readline()
        for path, want in (("/hostname", "nx"), ("/echo?msg=through-the-tunnel",
                                                  "through-the-tunnel")):
            got = subprocess.run(["curl", "-sS", "--max-time", "5",
                                  f"http://127.0.0.1:{port}{path}"],
                                 capture_output=True, text=True)
            assert got.returncode == 0 and got.stdout == want, got.stderr
    finally:
        proc.terminate()
        proc.wait(10)


# --- the remote process ends with the client; nothing is left behind -------------------------



def test_closing_the_client_ends_the_remote_process(cluster: Cluster) -> None:
    marker = f"{secrets.randbelow(10**6) + 10**6}"
    proc = subprocess.Popen(cluster.argv("exec", "bb", "--", "sleep", marker),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: [p for p in pids_mentioning(f"sleep {marker}", live=False)
                          if p != proc.pid],
                 what="the remote sleep")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    wait_for(lambda: not [p for p in pids_mentioning(f"sleep {marker}", live=False)
                          if p != proc.pid],
             timeout=10, what="the remote sleep to end")


def _agent_footprint(pid: int) -> tuple[int, list[str]]:
    """(fewest fds seen over a few samples, the agent's long-lived children). The agent
    briefly runs `ip` and the like while syncing Pods; the minimum filters those out."""
    fds = []
    for _ in range(10):
        fds.append(len(os.listdir(f"/proc/{pid}/fd")))
        time.sleep(0.05)
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                cmd = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "svcnet.node.shim" in cmd or "nsenter" in cmd or "setsid" in cmd:
                children.append(cmd)
    return min(fds), sorted(children)


def test_a_hundred_execs_leave_no_process_or_fd_in_the_agent(cluster: Cluster) -> None:
    pid = cluster.agent_pid(cluster.pod("bb")["spec"]["nodeName"])
    cluster.k("exec", "bb", "--", "true")
    fds_before, children_before = _agent_footprint(pid)
    for i in range(100):
        res = cluster.run("exec", "-i", "bb", "--", "sh", "-c", f"cat; exit {i % 3}",
                          input=b"x")
        assert (res.returncode, res.stdout) == (i % 3, b"x"), res.stderr
    time.sleep(0.5)
    fds_after, children_after = _agent_footprint(pid)
    assert children_after == children_before  # the shims, and no exec left over
    assert fds_after <= fds_before


# --- errors as kubectl prints them -----------------------------------------------------------

def _stderr(cluster: Cluster, *args: str, kubeconfig: Path | None = None) -> str:
    res = cluster.run(*args, kubeconfig=kubeconfig)
    assert res.returncode != 0
    return res.stderr.decode()


def test_unknown_container(cluster: Cluster) -> None:
    assert _stderr(cluster, "exec", "bb", "-c", "nope", "--", "true") == \
        "Error from server (BadRequest): container nope is not valid for pod bb\n"


def test_pods_that_are_not_running(cluster: Cluster) -> None:
    assert _stderr(cluster, "exec", "noimage", "--", "true") == (
        'error: Internal error occurred: unable to upgrade connection: container not found '
        '("c")\n')
    assert _stderr(cluster, "exec", "nohost", "--", "true") == \
        "Error from server (BadRequest): pod nohost does not have a host assigned\n"
    assert _stderr(cluster, "exec", "failed", "--", "true") == \
        "error: cannot exec into a container in a completed pod; current phase is Failed\n"
    assert _stderr(cluster, "port-forward", "pod/nohost", f"{free_port()}:80") == \
        "error: unable to forward port because pod is not running. Current status=Pending\n"


def test_a_node_token_may_not_exec_attach_or_port_forward(cluster: Cluster) -> None:
    tokens = json.loads((cluster.plan.data_dir / "tokens.json").read_text())
    token = next(t for t, v in tokens.items() if v["user"] == "system:node:node-1")
    config = yaml.safe_load(cluster.plan.kubeconfig.read_text())
    config["users"][0]["user"] = {"token": token}
    kubeconfig = cluster.tmp / "node-1.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    denied = ('pods "bb" is forbidden: User "system:node:node-1" cannot create resource '
              '"pods/{}" in API group "" in the namespace "default"')
    assert _stderr(cluster, "exec", "bb", "--", "true", kubeconfig=kubeconfig) == \
        f"Error from server (Forbidden): {denied.format('exec')}\n"
    assert _stderr(cluster, "attach", "bb", kubeconfig=kubeconfig).endswith(
        f"Error from server (Forbidden): {denied.format('attach')}\n")
    assert _stderr(cluster, "port-forward", "pod/bb", f"{free_port()}:80",
                   kubeconfig=kubeconfig) == \
        f"error: error upgrading connection: {denied.format('portforward')}\n"
