"""`svcnet proxy render` as a user runs it, on the example in examples/render/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "render" / "hostnames.yaml"


def _render(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "svcnet.cli.main", "proxy", "render", *args],
                          capture_output=True, text=True, timeout=60)


def test_render_example_prints_kube_proxy_rules() -> None:
    res = _render("--mode", "iptables", "-f", str(EXAMPLE), "--node-name", "node-1",
                  "--node-ip", "172.30.0.11", "--cluster-cidr", "10.244.0.0/16")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert out.startswith("*filter\n") and out.rstrip().endswith("COMMIT")
    svc = [line for line in out.splitlines() if line.startswith("-A KUBE-SVC-")
           and "-j KUBE-SEP-" in line]
    assert len(svc) == 3
    assert "--probability 0.3333333333" in svc[0] and "--probability 0.5000000000" in svc[1]
    assert "--probability" not in svc[2]
    assert "-j DNAT --to-destination 10.244.1.5:9376" in out
    assert "--dport 30080 -j KUBE-EXT-" in out


def test_render_bad_input_is_one_line_and_nonzero(tmp_path: Path) -> None:
    bad = tmp_path / "pod.yaml"
    bad.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n")
    res = _render("-f", str(bad), "--node-name", "n", "--node-ip", "10.0.0.1",
                  "--cluster-cidr", "10.244.0.0/16")
    assert res.returncode != 0 and res.stdout == ""
    assert len(res.stderr.strip().splitlines()) == 1 and "kind: Pod" in res.stderr
    res = _render("-f", str(tmp_path / "missing.yaml"), "--node-name", "n", "--node-ip",
                  "10.0.0.1", "--cluster-cidr", "10.244.0.0/16")
    assert res.returncode != 0 and len(res.stderr.strip().splitlines()) == 1
