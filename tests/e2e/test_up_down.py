"""`svcnet up` / `svcnet down` as a user runs them: real processes, real kernel, real kubectl.

The cluster here runs without node agents (`--no-agents`: network, server and supervision
only) under a cluster name and CIDRs of its own, chosen to be unused on this host, so it
never collides with a real `svcnet up`. The full cluster with agents is tested elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from clusterkit import assert_nothing_left, kubectl, needs_root, svcnet, unique_cluster

from svcnet.cluster import network

from svcnet.cluster.processes import ProcRecord, processes_in, svcnet_processes_of

pytestmark = [pytest.mark.e2e, pytest.mark.dataplane]

@needs_root
def test_up_twice_kubectl_down_twice(tmp_path: Path) -> None:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    data_dir = tmp_path / "cluster"
    plan, opts = unique_cluster(data_dir)
    forward_before = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    server_pid = -1
    try:
        res = svcnet("up", "--nodes", "2", "--no-agents", "--data-dir", str(data_dir),
                     "--timeout", "60", *opts)
        assert res.returncode == 0, res.stdout + res.stderr
        assert f"export KUBECONFIG={data_dir}/kubeconfig.yaml" in res.stdout
        assert "kubectl get nodes" in res.stdout and "cluster is up" in res.stdout
        assert f"cluster DNS {plan.host_ip}:53 (kube-dns {plan.dns_ip})" in res.stdout
        state = json.loads(plan.state_file.read_text())
        assert state["phase"] == "up" and state["agents"] is False
        assert state["layout"] == plan.layout()
        server_pid = state["processes"]["server"]["pid"]
        assert ProcRecord.from_json(state["processes"]["server"]).alive()
        assert (data_dir / "logs" / "server.log").exists()
        for ns in plan.namespaces():
            assert network.netns_exists(ns)
        assert network.link_alias(plan.naming.bridge) == plan.owner_tag
        assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == forward_before

        # kubectl reaches the server on the host's bridge address, as a user would
        res = kubectl(plan, tmp_path / "kc", "get", "ns")
        assert res.returncode == 0, res.stderr
        assert "default" in res.stdout and "kube-system" in res.stdout
        assert plan.server_url in plan.kubeconfig.read_text()

        # up again: finds it up, keeps the server, changes nothing
        res = svcnet("up", "--nodes", "2", "--no-agents", "--data-dir", str(data_dir),
                     "--timeout", "60", *opts)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "was already up" in res.stdout
        again = json.loads(plan.state_file.read_text())
        assert again["processes"]["server"]["pid"] == server_pid

        # other settings for the same data dir are refused, in one line
        res = svcnet("up", "--nodes", "3", "--no-agents", "--data-dir", str(data_dir), *opts)
        assert res.returncode == 1
        assert res.stderr.startswith("svcnet up: a cluster with other settings is already up")
        assert len(res.stderr.splitlines()) == 1
        assert ProcRecord.from_json(again["processes"]["server"]).alive()

        res = svcnet("down", "--data-dir", str(data_dir))
        assert res.returncode == 0, res.stdout + res.stderr
        assert f"removed the cluster in {data_dir}" in res.stdout
        assert_nothing_left(plan, server_pid)
        assert (data_dir / "kubeconfig.yaml").exists()  # the data dir stays without --purge

        res = svcnet("down", "--data-dir", str(data_dir), "--purge")
        assert res.returncode == 0, res.stdout + res.stderr
        assert res.stdout.strip() == f"svcnet down: nothing is up in {data_dir}"
        assert not data_dir.exists()
    finally:
        if plan.state_file.exists():
            svcnet("down", "--data-dir", str(data_dir))
        network.teardown(plan)


@needs_root
def test_a_failed_up_removes_what_it_made(tmp_path: Path) -> None:
    """A server that cannot start (here: the data dir's tokens file is garbage) fails
    `up` with a line naming its log, and `up` removes the network it made."""
    data_dir = tmp_path / "cluster"
    plan, opts = unique_cluster(data_dir)
    data_dir.mkdir()
    (data_dir / "tokens.json").write_text("not json")
    try:
        res = svcnet("up", "--no-agents", "--data-dir", str(data_dir), "--timeout", "30", *opts)
        assert res.returncode == 1
        first = res.stderr.splitlines()[0]
        assert first.startswith("svcnet up: svcnet server exited"), res.stderr
        assert "server.log" in first
        assert network.leftovers(plan) == []
        assert not plan.state_file.exists()
        assert (data_dir / "logs" / "server.log").exists()
    finally:
        if plan.state_file.exists():
            svcnet("down", "--data-dir", str(data_dir))
        network.teardown(plan)


FAKE_AGENT = """\
import argparse, json, signal, ssl, subprocess, sys, time, urllib.error, urllib.request
p = argparse.ArgumentParser()
for opt in ("server", "token-file", "ca-file", "node-name", "node-ip", "pod-cidr", "state-dir",
            "proxy-mode", "cluster-cidr", "cluster-dns"):
    p.add_argument("--" + opt)
a = p.parse_args(sys.argv[4:])  # after: -m svcnet.cli.main agent
a.token = open(a.token_file).read().strip()
ctx = ssl.create_default_context(cafile=a.ca_file)
def call(method, path, body, ctype="application/json"):
    req = urllib.request.Request(a.server + path, data=json.dumps(body).encode(),
                                 method=method, headers={"Authorization": "Bearer " + a.token,
                                                         "Content-Type": ctype})
    try:
        urllib.request.urlopen(req, context=ctx, timeout=5).read()
    except urllib.error.HTTPError as e:
        if e.code != 409:
            raise
call("POST", "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node",
                               "metadata": {"name": a.node_name},
                               "spec": {"podCIDR": a.pod_cidr}})
call("PATCH", "/api/v1/nodes/" + a.node_name + "/status",
     {"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Fake"}],
                 "addresses": [{"type": "InternalIP", "address": a.node_ip}]}},
     "application/merge-patch+json")
# a "pod" that leaves the agent's process group, as a pod process would
subprocess.Popen(["sleep", "600"], start_new_session=True)
print("fake agent", a.node_name, "ready", flush=True)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    time.sleep(1)
"""


@needs_root
def test_agents_run_in_their_node_namespaces_and_everything_is_stopped(
        tmp_path: Path) -> None:
    """The agent half of `up` with a stand-in agent (the real one is tested with the
    node agent): tokens, one agent per node namespace, waiting for Ready, restarting a
    dead agent on a second `up`, and `down` stopping agents and the processes they left
    in the namespaces."""
    from svcnet.cluster import supervisor
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    data_dir = tmp_path / "cluster"
    plan, _ = unique_cluster(data_dir)
    agent = tmp_path / "fake_agent.py"
    agent.write_text(FAKE_AGENT)
    python = tmp_path / "python"  # runs the stand-in for `-m svcnet.cli.main agent`
    python.write_text(f'#!/bin/sh\nif [ "$3" = agent ]; then exec {sys.executable} {agent} '
                      f'"$@"; fi\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    try:
        res = supervisor.up(plan, agents=True, timeout=60, python=str(python))
        assert res.created and res.started == ["server", "agent-node-1", "agent-node-2"]
        nodes = kubectl(plan, tmp_path / "kc", "get", "nodes").stdout
        assert [line.split()[:2] for line in nodes.splitlines()[1:]] == [
            ["node-1", "Ready"], ["node-2", "Ready"]]
        state = supervisor.load_state(data_dir)
        assert state is not None
        for node in plan.nodes:
            rec = state.processes[f"agent-{node.name}"]
            inside = processes_in([node.netns])
            assert rec.pid in inside and len(inside) == 2  # the agent and its "pod"
            # the token is in a file only its owner reads, never on the command line
            token = node.token_file.read_text().strip()
            assert token and node.token_file.stat().st_mode & 0o777 == 0o600
            cmdline = Path(f"/proc/{rec.pid}/cmdline").read_text()
            assert "--token-file" in cmdline and token not in cmdline
        dead = state.processes["agent-node-2"]
        os.kill(dead.pid, 9)
        res = supervisor.up(plan, agents=True, timeout=60, python=str(python))
        assert res.started == ["agent-node-2"] and res.kept == ["server", "agent-node-1"]
        down = supervisor.down(data_dir)
        assert down.problems == []
        for node in plan.nodes:
            assert not network.netns_exists(node.netns)
        assert network.leftovers(plan) == []
        assert svcnet_processes_of(data_dir) == []
        leaked = subprocess.run(["pgrep", "-f", "^sleep 600$"], capture_output=True,
                                text=True).stdout.split()
        state_pids = {r.pid for r in state.processes.values()}
        assert not state_pids & {int(p) for p in leaked}
    finally:
        if plan.state_file.exists():
            supervisor.down(data_dir)
        network.teardown(plan)


def test_without_root_up_says_so_in_one_line(tmp_path: Path) -> None:
    """As an unprivileged user (the interpreter drops root after its imports, since an
    unprivileged user may not be able to read this interpreter's install)."""
    script = textwrap.dedent("""\
        import os, sys
        import svcnet.cli.main as cli
        if os.geteuid() == 0:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
        sys.exit(cli.main(sys.argv[1:]))
    """)
    for cmd in (["up"], ["up", "--nodes", "3"], ["down"]):
        res = subprocess.run([sys.executable, "-c", script, *cmd], capture_output=True,
                             text=True, timeout=30, cwd=tmp_path)
        assert res.returncode == 1
        assert res.stdout == ""
        assert res.stderr == (f"svcnet {cmd[0]}: needs root (network namespaces, bridges and "
                              "routes): run it with sudo\n")
