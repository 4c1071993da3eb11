"""Helpers for e2e tests that bring up real clusters: collision-free names and CIDRs,
svcnet/kubectl runners, and the check that `svcnet down` left nothing behind."""

from __future__ import annotations

import os
import random
import secrets
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from svcnet.cluster import network
from svcnet.cluster.plan import ClusterPlan, find_conflicts, plan_cluster
from svcnet.cluster.processes import ProcRecord, svcnet_processes_of
from svcnet.cluster.supervisor import load_state

needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                                reason="needs root and the ip command")


def svcnet(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "svcnet.cli.main", *args], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


#: Where test clusters forward outside names unless a test gives its own upstream: a closed
#: loopback port (the discard port), so nothing ever reaches the machine's own resolver.
NO_UPSTREAM = "127.0.0.1:9"


def unique_cluster(data_dir: Path, dns_upstream: str = NO_UPSTREAM
                   ) -> tuple[ClusterPlan, list[str]]:
    """A plan (as `up` will compute it) and the `up` options that produce it."""
    name = f"t{secrets.token_hex(2)}"
    routes = network.host_routes()
    rnd = random.Random()
    for _ in range(50):
        a, b = rnd.sample(range(192, 255), 2)
        opts = ["--cluster-name", name, "--node-cidr", f"172.31.{rnd.randrange(256)}.0/24",
                "--pod-cidr", f"10.{a}.0.0/16", "--service-cidr", f"10.{b}.0.0/16"]
        plan = plan_cluster(2, data_dir, cluster_name=name, node_cidr=opts[3],
                            pod_cidr=opts[5], service_cidr=opts[7],
                            dns_upstreams=[dns_upstream])
        if not find_conflicts(plan, routes):
            return plan, opts + ["--dns-upstream", dns_upstream]
    pytest.skip("found no unused CIDRs on this host")


def kubectl(plan: ClusterPlan, cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", "--kubeconfig", str(plan.kubeconfig), "--cache-dir",
                           str(cache), *args], capture_output=True, text=True, timeout=60)


def assert_nothing_left(plan: ClusterPlan, server_pid: int) -> None:
    assert network.leftovers(plan) == []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    routes = subprocess.run(["ip", "route", "show", "table", "all"], capture_output=True,
                            text=True).stdout
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout \
        if shutil.which("iptables-save") else ""
    assert plan.cluster_name not in netns
    assert f" {plan.naming.bridge}:" not in links
    assert not any(f" {n.veth_host}" in links for n in plan.nodes)
    assert plan.naming.bridge not in routes and plan.pod_cidr not in routes
    assert plan.naming.chain not in rules and plan.naming.bridge not in rules
    assert not Path(f"/proc/{server_pid}").exists() or \
        not ProcRecord("server", server_pid, 0, "").alive() or \
        str(plan.data_dir) not in Path(f"/proc/{server_pid}/cmdline").read_text()
    assert svcnet_processes_of(plan.data_dir) == []
    assert not plan.state_file.exists()


@contextmanager
def running_cluster(tmp: Path, dns_upstream: str = NO_UPSTREAM
                    ) -> Iterator[tuple[ClusterPlan, list[str]]]:
    """`svcnet up --nodes 2` with a unique name and CIDRs; on exit (even after a failure)
    `svcnet down --purge` and the check that nothing is left. Yields (plan, up options)."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    plan, opts = unique_cluster(tmp / "data", dns_upstream)
    res = svcnet("up", "--nodes", "2", "--data-dir", str(plan.data_dir), *opts, timeout=180)
    assert res.returncode == 0, res.stdout + res.stderr
    state = load_state(plan.data_dir)
    assert state is not None and state.processes["server"] is not None
    server_pid = state.processes["server"].pid
    try:
        yield plan, opts
    finally:
        # keep the logs (pytest keeps the last runs' tmp dirs): a failure here is
        # otherwise undiagnosable once `down --purge` removes the data dir
        if plan.log_dir.is_dir():
            shutil.copytree(plan.log_dir, tmp / "logs", dirs_exist_ok=True)
        res = svcnet("down", "--data-dir", str(plan.data_dir), "--purge", timeout=180)
        assert res.returncode == 0, res.stdout + res.stderr
        assert_nothing_left(plan, server_pid)
