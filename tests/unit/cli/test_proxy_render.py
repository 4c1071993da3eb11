"""`svcnet proxy render`: files in, the restore payload out, one-line errors for bad input."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path

import pytest
import yaml

from svcnet.cli import proxy
from svcnet.dataplane.testing import FakeIPTables
from svcnet.rules.iptables_names import svc_chain

SERVICE = textwrap.dedent("""\
    apiVersion: v1
    kind: Service
    metadata:
      name: web
    spec:
      type: NodePort
      clusterIP: 10.96.0.20
      selector:
        app: web
      ports:
      - name: http
        port: 80
        targetPort: 8080
        nodePort: 30080
    """)

SLICE = textwrap.dedent("""\
    apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata:
      name: web-abc12
      labels:
        kubernetes.io/service-name: web
    addressType: IPv4
    endpoints:
    - addresses: ["10.244.1.5"]
      nodeName: node-a
    - addresses: ["10.244.2.5"]
      nodeName: node-b
    - addresses: ["10.244.2.6"]
      conditions: {ready: false}
    - addresses: ["10.244.2.7"]
    ports:
    - name: http
      port: 8080
    """)

WEB_SVC = svc_chain("default/web:http", "tcp")
BASE = ["proxy", "render", "--node-name", "node-a", "--node-ip", "172.30.0.11",
        "--cluster-cidr", "10.244.0.0/16"]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = proxy.main([*BASE, *args])
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_renders_service_and_slice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "-f", write(tmp_path, "svc.yaml", SERVICE),
                         "-f", write(tmp_path, "eps.yaml", SLICE))
    assert code == 0 and err == ""
    assert out.startswith("*filter\n") and out.endswith("COMMIT\n")
    assert f":{WEB_SVC} - [0:0]" in out
    assert (f'-A KUBE-SERVICES -m comment --comment "default/web:http cluster IP" -m tcp -p tcp '
            f"-d 10.96.0.20 --dport 80 -j {WEB_SVC}") in out
    svc_rules = [line for line in out.splitlines() if line.startswith(f"-A {WEB_SVC} ")]
    # Three ready endpoints (the not-ready one is left out), string-sorted.
    assert "--probability 0.3333333333" in svc_rules[1]
    assert "--probability 0.5000000000" in svc_rules[2]
    assert "statistic" not in svc_rules[3] and len(svc_rules) == 4
    assert "-m mark --mark 0x00004000/0x00004000" in out and "--random-fully" in out
    assert "--dport 30080 -j KUBE-EXT-" in out
    FakeIPTables().restore(out)  # a valid payload


def test_multi_document_yaml_list_and_json(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    multi = write(tmp_path, "all.yaml", SERVICE + "---\n" + SLICE + "---\n")
    code, out_multi, _ = run(capsys, "-f", multi)
    as_list = {"apiVersion": "v1", "kind": "List",
               "items": [yaml.safe_load(SERVICE), yaml.safe_load(SLICE)]}
    code2, out_json, _ = run(capsys, "-f", write(tmp_path, "all.json", json.dumps(as_list)))
    svc_list = {"kind": "ServiceList", "items": [
        {k: v for k, v in yaml.safe_load(SERVICE).items() if k != "kind"}]}
    code3, out_typed, _ = run(capsys, "-f", write(tmp_path, "svcs.json", json.dumps(svc_list)),
                              "-f", write(tmp_path, "eps.yaml", SLICE))
    assert code == code2 == code3 == 0
    assert out_multi == out_json == out_typed


def test_hand_made_endpoints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    endpoints = textwrap.dedent("""\
        apiVersion: v1
        kind: Endpoints
        metadata:
          name: web
        subsets:
        - addresses:
          - ip: 192.0.2.42
          ports:
          - name: http
            port: 9376
        """)
    code, out, _ = run(capsys, "-f", write(tmp_path, "svc.yaml", SERVICE),
                       "-f", write(tmp_path, "ep.yaml", endpoints))
    assert code == 0 and "--to-destination 192.0.2.42:9376" in out
    # An EndpointSlice for the same Service wins over the Endpoints (no double mirroring).
    code, out, _ = run(capsys, "-f", write(tmp_path, "svc.yaml", SERVICE),
                       "-f", write(tmp_path, "ep.yaml", endpoints),
                       "-f", write(tmp_path, "eps.yaml", SLICE))
    assert code == 0 and "192.0.2.42" not in out and "10.244.1.5:8080" in out


def test_repeated_object_later_wins(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    moved = SERVICE.replace("10.96.0.20", "10.96.0.21")
    code, out, err = run(capsys, "-f", write(tmp_path, "a.yaml", SERVICE),
                         "-f", write(tmp_path, "b.yaml", moved))
    assert code == 0 and "-d 10.96.0.21" in out and "10.96.0.20" not in out
    assert "Service default/web given again; using this one" in err


def test_stdin(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(SERVICE + "---\n" + SLICE))
    code, out, _ = run(capsys, "-f", "-")
    assert code == 0 and WEB_SVC in out


def test_no_endpoints_and_missing_cluster_ip(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "-f", write(tmp_path, "svc.yaml", SERVICE))
    assert code == 0 and '"default/web:http has no endpoints"' in out and "-j REJECT" in out
    unallocated = SERVICE.replace("  clusterIP: 10.96.0.20\n", "")
    code, out, err = run(capsys, "-f", write(tmp_path, "new.yaml", unallocated))
    assert code == 0 and "default/web" not in out
    assert "Service default/web has no spec.clusterIP" in err and err.count("\n") == 1


@pytest.mark.parametrize(("content", "message"), [
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n",
     "not a Service, EndpointSlice or Endpoints (kind: Pod)"),
    ("metadata: {name: x}\n", "not a Service, EndpointSlice or Endpoints (no kind)"),
    ("kind: Service\nspec: {}\n", "Service without metadata.name"),
    ("kind: Service\nmetadata: {name: [unclosed\n", "invalid YAML"),
    ('{"kind": "Service",', "invalid JSON"),
    ("- just\n- a list\n", "expected an object, got list"),
])
def test_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str,
                   message: str) -> None:
    path = write(tmp_path, "bad.yaml", content)
    code, out, err = run(capsys, "-f", path)
    assert code == 1 and out == ""
    assert err.startswith(f"svcnet proxy render: {path}: {message}") and err.count("\n") == 1


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "nope.yaml")
    assert run(capsys, "-f", path) == (1, "", f"svcnet proxy render: {path}: no such file\n")


@pytest.mark.parametrize(("args", "message"), [
    (["--node-ip", "banana"], "--node-ip 'banana': not an IPv4 address"),
    (["--masquerade-bit", "40"], "--masquerade-bit 40: must be in 0..31"),
    (["--mode", "nftables"], "--mode nftables: not implemented yet (only iptables)"),
    (["--mode", "bogus"], "--mode 'bogus': expected one of"),
])
def test_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                       message: str) -> None:
    code, out, err = run(capsys, "-f", write(tmp_path, "svc.yaml", SERVICE), *args)
    assert code == 1 and out == "" and err.startswith(f"svcnet proxy render: {message}")


def test_bad_cluster_cidr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = proxy.main(["proxy", "render", "--node-name", "n", "--node-ip", "10.0.0.1",
                       "--cluster-cidr", "nope", "-f", write(tmp_path, "s.yaml", SERVICE)])
    assert code == 1 and "--cluster-cidr 'nope': not an IPv4 CIDR" in capsys.readouterr().err


def test_required_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        proxy.main(["proxy", "render", "-f", "x.yaml"])
    assert exit_.value.code == 2 and "--node-name" in capsys.readouterr().err


def test_options_reach_the_compiler(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = ["-f", write(tmp_path, "svc.yaml", SERVICE), "-f", write(tmp_path, "e.yaml", SLICE)]
    _, out, _ = run(capsys, *files, "--mark-format", "short", "--masquerade-bit", "13",
                    "--no-localhost-nodeports")
    assert "--or-mark 0x2000" in out and "! -d 127.0.0.0/8 -j KUBE-NODEPORTS" in out
    assert "KUBE-FIREWALL" not in out
    _, out, _ = run(capsys, *files, "--nodeport-addresses", "primary")
    assert "-d 172.30.0.11 -j KUBE-NODEPORTS" in out
