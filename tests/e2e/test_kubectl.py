"""The real kubectl against a real `svcnet server` process (issue 2, acceptance 2)."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]

SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: {name}
  labels:
    app: {name}
spec:
  type: NodePort
  selector:
    app: {name}
  ports:
  - name: http
    port: 80
    targetPort: 9376
    nodePort: {node_port}
"""


def _no_warnings(res: subprocess.CompletedProcess[str]) -> None:
    # kubectl prints discovery/openapi problems as warnings or "couldn't get" lines on stderr.
    bad = [line for line in res.stderr.splitlines()
           if re.search(r"(?i)warning|couldn't get|unable to|failed to", line)]
    assert not bad, res.stderr


def test_apply_get_describe_delete(kubectl, tmp_path: Path) -> None:
    kubectl("create", "namespace", "e2e-apply")
    f = tmp_path / "svc.yaml"
    f.write_text(SERVICE.format(name="web", node_port=30647))
    res = kubectl.run("apply", "-n", "e2e-apply", "-f", str(f))
    _no_warnings(res)
    assert res.stdout.strip() == "service/web created"

    res = kubectl.run("get", "svc", "-n", "e2e-apply")
    _no_warnings(res)
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert lines[1].split()[:2] == ["web", "NodePort"]
    assert "80:30647/TCP" in lines[1]

    # apply a changed file: adds a port and a selector key -> strategic merge patch
    changed = SERVICE.format(name="web", node_port=30647) + \
        "  - name: https\n    port: 443\n    targetPort: 8443\n"
    changed = changed.replace("    app: web\n  ports", "    app: web\n    tier: fe\n  ports")
    f.write_text(changed)
    res = kubectl.run("apply", "-n", "e2e-apply", "-f", str(f))
    _no_warnings(res)
    assert res.stdout.strip() == "service/web configured"
    res = kubectl.run("apply", "-n", "e2e-apply", "-f", str(f))
    assert res.stdout.strip() == "service/web unchanged"
    svc = json.loads(kubectl("get", "svc", "web", "-n", "e2e-apply", "-o", "json"))
    assert [p["port"] for p in svc["spec"]["ports"]] == [80, 443]
    assert svc["spec"]["ports"][0]["nodePort"] == 30647
    assert svc["spec"]["selector"] == {"app": "web", "tier": "fe"}
    assert "kubectl.kubernetes.io/last-applied-configuration" in svc["metadata"]["annotations"]

    wide = kubectl("get", "svc", "-n", "e2e-apply", "-o", "wide").splitlines()
    assert wide[0].split()[-1] == "SELECTOR" and "app=web,tier=fe" in wide[1]
    doc = yaml.safe_load(kubectl("get", "svc", "web", "-n", "e2e-apply", "-o", "yaml"))
    assert doc["kind"] == "Service" and doc["metadata"]["uid"]
    assert re.fullmatch(r"\d+", doc["metadata"]["resourceVersion"])

    out = kubectl("get", "svc", "-A")
    assert out.splitlines()[0].split()[0] == "NAMESPACE"
    assert re.search(r"^e2e-apply\s+web\s+NodePort", out, re.M)
    out = kubectl("get", "svc", "-n", "e2e-apply", "--show-labels")
    assert out.splitlines()[0].split()[-1] == "LABELS" and "app=web" in out
    assert "web" in kubectl("get", "svc", "-n", "e2e-apply", "-l", "app=web")
    res = kubectl.run("get", "svc", "-n", "e2e-apply", "-l", "app=other")
    assert res.stdout == "" and "No resources found in e2e-apply namespace." in res.stderr

    desc = kubectl("describe", "svc", "web", "-n", "e2e-apply")
    assert re.search(r"^Name:\s+web$", desc, re.M)
    assert re.search(r"^Type:\s+NodePort$", desc, re.M)
    assert re.search(r"^NodePort:\s+http\s+30647/TCP$", desc, re.M)

    assert kubectl("delete", "svc", "web", "-n", "e2e-apply").strip() == 'service "web" deleted'
    res = kubectl.run("get", "svc", "web", "-n", "e2e-apply", check=False)
    assert res.returncode == 1
    assert res.stderr.strip() == 'Error from server (NotFound): services "web" not found'


def test_label_annotate_patch(kubectl, tmp_path: Path) -> None:
    kubectl("create", "namespace", "e2e-patch")
    f = tmp_path / "svc.yaml"
    f.write_text(SERVICE.format(name="api", node_port=30648))
    kubectl("apply", "-n", "e2e-patch", "-f", str(f))
    assert kubectl("label", "svc", "api", "-n", "e2e-patch", "tier=backend").strip() == \
        "service/api labeled"
    assert kubectl("annotate", "svc", "api", "-n", "e2e-patch", "owner=team-a").strip() == \
        "service/api annotated"
    kubectl("label", "svc", "api", "-n", "e2e-patch", "app-")
    svc = json.loads(kubectl("get", "svc", "api", "-n", "e2e-patch", "-o", "json"))
    assert svc["metadata"]["labels"] == {"tier": "backend"}
    assert svc["metadata"]["annotations"]["owner"] == "team-a"

    kubectl("patch", "svc", "api", "-n", "e2e-patch", "-p",
            '{"spec":{"ports":[{"port":80,"name":"web"}]}}')  # strategic: merges by port
    kubectl("patch", "svc", "api", "-n", "e2e-patch", "--type=merge", "-p",
            '{"metadata":{"labels":{"x":"y"}}}')
    kubectl("patch", "svc", "api", "-n", "e2e-patch", "--type=json", "-p",
            '[{"op":"replace","path":"/spec/selector","value":{"app":"other"}}]')
    svc = json.loads(kubectl("get", "svc", "api", "-n", "e2e-patch", "-o", "json"))
    assert svc["spec"]["ports"][0]["name"] == "web"
    assert svc["spec"]["ports"][0]["nodePort"] == 30648
    assert svc["metadata"]["labels"] == {"tier": "backend", "x": "y"}
    assert svc["spec"]["selector"] == {"app": "other"}


def test_get_watch_sees_change(kubectl, shared_server, tmp_path: Path) -> None:
    kubectl("create", "namespace", "e2e-watch")
    cmd = ["kubectl", "--kubeconfig", str(shared_server.kubeconfig), "--cache-dir",
           str(tmp_path / "kube-cache"), "get", "svc", "-n", "e2e-watch", "-w"]
    watcher = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)
        f = tmp_path / "svc.yaml"
        f.write_text(SERVICE.format(name="watched", node_port=30649))
        kubectl("apply", "-n", "e2e-watch", "-f", str(f))
        kubectl("label", "svc", "watched", "-n", "e2e-watch", "seen=yes")
        time.sleep(1.5)
    finally:
        watcher.terminate()
        out, err = watcher.communicate(timeout=10)
    rows = [line for line in out.splitlines() if line.startswith("watched")]
    assert len(rows) >= 2, (out, err)
    assert "80:30649/TCP" in rows[0]


def test_api_resources_and_namespace_deletion(kubectl, tmp_path: Path) -> None:
    res = kubectl.run("api-resources")
    _no_warnings(res)
    rows = {line.split()[0]: line.split() for line in res.stdout.splitlines()[1:]}
    assert rows["services"][1] == "svc" and rows["services"][-1] == "Service"
    assert rows["deployments"][1:3] == ["deploy", "apps/v1"]
    assert rows["endpointslices"][1] == "discovery.k8s.io/v1"
    assert rows["namespaces"][1:4] == ["ns", "v1", "false"]

    assert kubectl("create", "namespace", "e2e-gone").strip() == "namespace/e2e-gone created"
    f = tmp_path / "svc.yaml"
    f.write_text(SERVICE.format(name="inside", node_port=30650))
    kubectl("apply", "-n", "e2e-gone", "-f", str(f))
    kubectl("create", "configmap", "cfg", "-n", "e2e-gone", "--from-literal=a=b")
    assert kubectl("delete", "namespace", "e2e-gone", timeout=60).strip() == \
        'namespace "e2e-gone" deleted'
    res = kubectl.run("get", "namespace", "e2e-gone", check=False)
    assert "NotFound" in res.stderr
    # recreated, it is empty: what it held went with it
    kubectl("create", "namespace", "e2e-gone")
    res = kubectl.run("get", "svc,cm", "-n", "e2e-gone", "-o", "name")
    assert res.stdout.strip() == ""


def test_errors_print_like_kubernetes(kubectl, tmp_path: Path) -> None:
    kubectl("create", "namespace", "e2e-err")
    f = tmp_path / "bad.yaml"
    f.write_text(SERVICE.format(name="bad", node_port=30651).replace("  type: NodePort",
                                                                     "  type: NodePort\n  bogus: 1"))
    res = kubectl.run("apply", "-n", "e2e-err", "-f", str(f), check=False)
    assert res.returncode == 1
    assert 'strict decoding error: unknown field "spec.bogus"' in res.stderr
    f.write_text(SERVICE.format(name="Bad_Name", node_port=30651))
    res = kubectl.run("apply", "-n", "e2e-err", "-f", str(f), check=False)
    assert res.returncode == 1
    assert 'The Service "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name"' \
        in res.stderr
    res = kubectl.run("create", "namespace", "e2e-err", check=False)
    assert res.stderr.strip() == \
        'Error from server (AlreadyExists): namespaces "e2e-err" already exists'
