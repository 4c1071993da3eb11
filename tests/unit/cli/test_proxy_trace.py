"""`svcnet proxy trace`: one packet through the rules a node would have, from manifests."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from svcnet.cli import proxy

EXAMPLE = str(Path(__file__).resolve().parents[3] / "examples" / "render" / "hostnames.yaml")
NODE = ["--node-name", "node-1", "--node-ip", "172.30.0.11", "--cluster-cidr", "10.244.0.0/16"]

LONELY = textwrap.dedent("""\
    apiVersion: v1
    kind: Service
    metadata: {name: lonely}
    spec:
      clusterIP: 10.96.0.99
      selector: {app: nothing}
      ports: [{port: 80}]
    """)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = proxy.main(["proxy", "trace", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cluster_ip_from_a_pod_reaches_each_endpoint_with_a_third(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "-f", EXAMPLE, *NODE, "--src", "10.244.1.9",
                       "--dst", "10.96.120.7", "--port", "80")
    assert code == 0
    assert "verdict: ACCEPT 100%" in out
    for ep in ("10.244.1.5:9376", "10.244.2.6:9376", "10.244.2.7:9376"):
        assert f"  -> {ep}  33.3%" in out
    assert "--probability 0.3333333333" in out and "(masqueraded)" not in out


def test_node_port_from_outside_is_masqueraded(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "-f", EXAMPLE, *NODE, "--src", "172.30.0.1",
                       "--dst", "172.30.0.11", "--port", "30080")
    assert code == 0
    assert "KUBE-NODEPORTS" in out and "(masqueraded)" in out


def test_service_without_endpoints_is_rejected(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    f = tmp_path / "lonely.yaml"
    f.write_text(LONELY)
    code, out, _ = run(capsys, "-f", str(f), *NODE, "--src", "10.244.1.9",
                       "--dst", "10.96.0.99", "--port", "80")
    assert code == 0
    assert "verdict: REJECT 100%" in out and "has no endpoints" in out


@pytest.mark.parametrize("extra,message", [
    (["--src", "pod-a", "--dst", "10.96.0.1", "--port", "80"],
     "svcnet proxy trace: --src 'pod-a': not an IPv4 address"),
    (["--src", "10.0.0.1", "--dst", "10.96.0.1", "--port", "0"],
     "svcnet proxy trace: --port 0: must be in 1-65535"),
])
def test_bad_packets_are_one_line_errors(capsys: pytest.CaptureFixture[str], extra: list[str],
                                         message: str) -> None:
    code, out, err = run(capsys, "-f", EXAMPLE, *NODE, *extra)
    assert code == 1 and out == "" and err.strip() == message
