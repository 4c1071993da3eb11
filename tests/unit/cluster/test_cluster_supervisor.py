"""Pure parts of the cluster supervisor: the state file, process identity, readiness,
and the `up`/`down` command line (no root needed)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from svcnet.cli import up as up_cli
from svcnet.cluster.plan import plan_cluster
from svcnet.cluster.processes import ProcRecord
from svcnet.cluster.supervisor import ClusterState, load_state, node_readiness


def test_state_file_round_trip_is_atomic_and_private(tmp_path: Path) -> None:
    plan = plan_cluster(2, tmp_path, proxy_mode="none")
    state = ClusterState(plan, phase="up", agents=False, forward_rule=True,
                         processes={"server": ProcRecord("server", 123, 456, "/x.log")},
                         pod_namespaces=["svcnet-pod-abc"])
    state.save()
    assert oct(plan.state_file.stat().st_mode & 0o777) == "0o600"
    assert not list(tmp_path.glob("*.tmp"))
    back = load_state(tmp_path)
    assert back is not None
    assert back.plan == plan and back.to_json() == state.to_json()
    assert back.to_json()["layout"]["nodes"][1]["netns"] == "svcnet-node-2"
    assert load_state(tmp_path / "nothing") is None


def test_process_identity_includes_start_time() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with open(f"/proc/{proc.pid}/stat") as f:
            start = int(f.read().rsplit(")", 1)[1].split()[19])
        assert ProcRecord("x", proc.pid, start, "").alive()
        assert not ProcRecord("x", proc.pid, start + 1, "").alive()  # a reused pid
    finally:
        proc.kill()
        proc.wait()
    assert not ProcRecord("x", proc.pid, start, "").alive()


def test_node_readiness() -> None:
    nodes: list[dict[str, Any]] = [
        {"metadata": {"name": "node-1"},
         "status": {"conditions": [{"type": "Ready", "status": "True"}]}},
        {"metadata": {"name": "node-2"},
         "status": {"conditions": [{"type": "Ready", "status": "False",
                                    "reason": "KubeletNotReady"}]}},
        {"metadata": {"name": "node-3"}, "status": {}},
    ]
    assert node_readiness(nodes, ["node-1", "node-2", "node-3", "node-4"]) == {
        "node-1": "", "node-2": "Ready=False (KubeletNotReady)",
        "node-3": "no Ready condition", "node-4": "not registered"}


def _parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="svcnet")
    up_cli.add_subcommands(p.add_subparsers(dest="command", required=True))
    return p.parse_args(list(argv))


def test_up_and_down_options() -> None:
    a = _parse("up")
    assert (a.nodes, a.data_dir, a.proxy_mode, a.timeout, a.no_agents) == (
        2, Path("/var/lib/svcnet/cluster"), "iptables", 120.0, False)
    a = _parse("up", "--nodes", "3", "--data-dir", "/tmp/c", "--proxy-mode", "none",
               "--no-agents")
    assert (a.nodes, a.data_dir, a.proxy_mode, a.no_agents) == (3, Path("/tmp/c"),
                                                                "none", True)
    d = _parse("down", "--purge")
    assert (d.data_dir, d.purge) == (Path("/var/lib/svcnet/cluster"), True)
    assert a.func is up_cli.run_up and d.func is up_cli.run_down


def test_plan_errors_are_usage_errors(capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr("svcnet.cli.up.shutil.which", lambda cmd: f"/usr/sbin/{cmd}")
    rc = up_cli.main(["up", "--nodes", "0", "--data-dir", "/tmp/never-made"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err == "svcnet up: --nodes 0: must be between 1 and 20\n"
    assert not Path("/tmp/never-made").exists()
