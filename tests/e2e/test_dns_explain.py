"""`svcnet dns explain` against a real `svcnet server` serving DNS on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ServerProcess, free_port, kubectl_for

pytestmark = pytest.mark.e2e



def explain(srv: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(srv.kubeconfig)}
    return subprocess.run([sys.executable, "-m", "svcnet.cli.main", "dns", "explain", *args],
                          capture_output=True, text=True, timeout=60, env=env)


def test_explain_walks_the_search_path_of_a_namespace(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "data", port=free_port())
    dns_port = free_port()
    srv.start("--datastore", "memory", "--dns-listen", f"127.0.0.1:{dns_port}",
              "--dns-upstream", "127.0.0.1:9", "--dns-metrics-listen", "none")
    try:
        k = kubectl_for(srv, tmp_path)
        k("create", "namespace", "demo")
        k("create", "service", "clusterip", "mysql", "-n", "demo", "--tcp", "3306:3306")
        ip = k("get", "svc", "mysql", "-n", "demo", "-o", "jsonpath={.spec.clusterIP}")
        res = explain(srv, "mysql", "-n", "demo")
        assert res.returncode == 0, res.stderr
        lines = res.stdout.splitlines()
        assert "search demo.svc.cluster.local svc.cluster.local cluster.local, ndots:5" \
            in lines[0] and f"asked at 127.0.0.1:{dns_port}" in lines[0]
        assert lines[2].startswith("-> 1. mysql.demo.svc.cluster.local.")
        assert f"A {ip}" in lines[2]
        other = explain(srv, "mysql.demo")  # from a Pod in `default`: second candidate
        assert "-> 2. mysql.demo.svc.cluster.local." in other.stdout
        assert "NXDOMAIN" in other.stdout.splitlines()[2]
        missing = explain(srv, "x", "--pod", "nope")
        assert missing.returncode == 1
        assert missing.stderr.strip() == 'svcnet dns explain: pods "nope" not found'
        bad = explain(srv, "x", "--type", "BOGUS")
        assert bad.returncode == 1 and "not a DNS record type" in bad.stderr
    finally:
        srv.stop()
