"""Controllers seen through real kubectl (issue 4, acceptance 1 and 2).

There is no node agent here: a small fake kubelet marks Pods Running and Ready (with a
pod IP) through the status subresource, exactly as the agent will.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import Kubectl, wait_for

pytestmark = pytest.mark.e2e
_ips = itertools.count(10)


NODES = ("node-1", "node-2")


@pytest.fixture(scope="module", autouse=True)
def ready_nodes(shared_server: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Two Ready Nodes, registered as a node agent would, so Pods get scheduled."""
    from conftest import kubectl_for
    k = kubectl_for(shared_server, tmp_path_factory.mktemp("nodes"))
    for i, name in enumerate(NODES):
        k("apply", "-f", "-", input=f"""\
apiVersion: v1
kind: Node
metadata: {{name: {name}, labels: {{kubernetes.io/hostname: {name}}}}}
spec: {{podCIDR: 10.244.{i + 1}.0/24}}
""")
        status = {"status": {"conditions": [{"type": "Ready", "status": "True",
                                             "reason": "KubeletReady"}],
                             "addresses": [{"type": "InternalIP", "address": f"172.30.0.{11 + i}"},
                                           {"type": "Hostname", "address": name}],
                             "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                             "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}
        k("patch", "node", name, "--subresource=status", "--type=merge", "-p",
          json.dumps(status))


def pods(k: Kubectl, ns: str, selector: str) -> list[dict[str, Any]]:
    out = json.loads(k("get", "pods", "-n", ns, "-l", selector, "-o", "json"))
    items: list[dict[str, Any]] = out["items"]
    return items


def set_ready(k: Kubectl, ns: str, pod: dict[str, Any], ready: bool = True) -> None:
    """What a kubelet reports: Running, an IP, and the Ready condition."""
    ip = pod.get("status", {}).get("podIP")
    if not ip:
        n = next(_ips)
        ip = f"10.244.{n // 250}.{n % 250 + 2}"
    status = {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
              "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
              "containerStatuses": [{"name": c["name"], "ready": ready, "restartCount": 0,
                                     "image": c["image"], "imageID": "", "started": True,
                                     "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}
                                    for c in pod["spec"]["containers"]]}
    k("patch", "pod", pod["metadata"]["name"], "-n", ns, "--subresource=status",
      "--type=merge", "-p", json.dumps({"status": status}))


def mark_all_ready(k: Kubectl, ns: str, selector: str) -> list[dict[str, Any]]:
    """Report every scheduled Pod of `selector` Running and Ready (the fake kubelet)."""
    ps = wait_for(lambda: (lambda got: got if all(p["spec"].get("nodeName") for p in got)
                           else None)(pods(k, ns, selector)), what="pods scheduled")
    for p in ps:
        if not any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in p.get("status", {}).get("conditions", [])):
            set_ready(k, ns, p)
    return pods(k, ns, selector)


DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: {name}
        image: {image}
        ports: [{{containerPort: 9376, name: http}}]
"""


def test_deployment_behind_service(kubectl: Kubectl) -> None:
    k, ns = kubectl, "ctl-basic"
    k("create", "namespace", ns)
    k("apply", "-n", ns, "-f", "-", input=DEPLOY.format(name="web", replicas=3,
                                                          image="registry.k8s.io/serve_hostname"))
    k("expose", "deployment", "web", "-n", ns, "--port", "80", "--target-port", "9376")
    wait_for(lambda: len(pods(k, ns, "app=web")) == 3, what="3 pods")
    rs = k("get", "rs", "-n", ns).splitlines()
    assert rs[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert re.match(r"web-[a-z0-9]+\s+3\s+3\s+0\s", rs[1])
    ready = mark_all_ready(k, ns, "app=web")
    ips = sorted(p["status"]["podIP"] for p in ready)

    def endpoints() -> list[str]:
        """Ready ip:port pairs (kubectl's table abbreviates past three)."""
        ep = json.loads(k("get", "endpoints", "web", "-n", ns, "-o", "json"))
        return sorted(f"{a['ip']}:{p['port']}" for s in ep.get("subsets") or []
                      for a in s.get("addresses") or [] for p in s["ports"])
    wait_for(lambda: endpoints() == sorted(f"{ip}:9376" for ip in ips), what="endpoints")
    slices = k("get", "endpointslice", "-n", ns, "-l", "kubernetes.io/service-name=web")
    row = slices.splitlines()[1].split()
    assert row[0].startswith("web-") and row[1] == "IPv4" and row[2] == "9376"
    assert sorted(row[3].split(",")) == ips
    desc = k("describe", "svc", "web", "-n", ns)
    m = re.search(r"^Endpoints:\s+(\S+)", desc, re.M)
    assert m and sorted(m.group(1).split(",")) == sorted(f"{ip}:9376" for ip in ips)
    wait_for(lambda: "3/3" in k("get", "deploy", "web", "-n", ns), what="deploy 3/3")

    # one Pod turning unready leaves the ready list and comes back
    victim = ready[0]
    set_ready(k, ns, victim, ready=False)
    wait_for(lambda: f"{victim['status']['podIP']}:9376" not in endpoints(), what="unready")
    es = json.loads(k("get", "endpointslice", "-n", ns, "-l",
                      "kubernetes.io/service-name=web", "-o", "json"))["items"][0]
    conds = {e["addresses"][0]: e["conditions"] for e in es["endpoints"]}
    assert conds[victim["status"]["podIP"]]["ready"] is False
    set_ready(k, ns, victim, ready=True)
    wait_for(lambda: f"{victim['status']['podIP']}:9376" in endpoints(), what="ready again")

    # scale
    assert k("scale", "deployment", "web", "-n", ns, "--replicas=6").strip() == \
        "deployment.apps/web scaled"
    wait_for(lambda: len(pods(k, ns, "app=web")) == 6, what="6 pods")
    mark_all_ready(k, ns, "app=web")
    wait_for(lambda: len(endpoints()) == 6, what="6 endpoints")


def test_rollout_set_image_history_undo_status(kubectl: Kubectl) -> None:
    k, ns = kubectl, "ctl-rollout"
    k("create", "namespace", ns)
    k("apply", "-n", ns, "-f", "-", input=DEPLOY.format(name="web", replicas=3,
                                                          image="nginx:1.14.2"))
    wait_for(lambda: len(pods(k, ns, "app=web")) == 3, what="3 pods")
    mark_all_ready(k, ns, "app=web")
    res = k.run("rollout", "status", "deployment/web", "-n", ns, "--timeout=30s")
    assert 'deployment "web" successfully rolled out' in res.stdout

    k("set", "image", "deployment/web", "web=nginx:1.16", "-n", ns)
    k("annotate", "deployment/web", "-n", ns, "kubernetes.io/change-cause=image 1.16")

    def rolled() -> bool:
        mark_all_ready(k, ns, "app=web")
        d = json.loads(k("get", "deploy", "web", "-n", ns, "-o", "json"))
        st = d["status"]
        return st.get("updatedReplicas") == 3 and st.get("replicas") == 3 and \
            st.get("availableReplicas") == 3 and \
            d["metadata"]["generation"] <= st.get("observedGeneration", 0)
    wait_for(rolled, timeout=40, what="rollout to 1.16")
    res = k.run("rollout", "status", "deployment/web", "-n", ns, "--timeout=30s")
    assert 'successfully rolled out' in res.stdout
    images = {p["spec"]["containers"][0]["image"] for p in pods(k, ns, "app=web")
              if not p["metadata"].get("deletionTimestamp")}
    assert images == {"nginx:1.16"}
    hist = k("rollout", "history", "deployment/web", "-n", ns)
    rows = [line.split(None, 1) for line in hist.splitlines()[2:] if line.strip()]
    assert [r[0] for r in rows] == ["1", "2"]
    assert rows[1][1].strip() == "image 1.16"

    assert k("rollout", "undo", "deployment/web", "-n", ns).strip() == \
        "deployment.apps/web rolled back"
    wait_for(rolled, timeout=40, what="rollback")
    d = json.loads(k("get", "deploy", "web", "-n", ns, "-o", "json"))
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.14.2"
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    hist = k("rollout", "history", "deployment/web", "-n", ns)
    assert [line.split()[0] for line in hist.splitlines()[2:] if line.strip()] == ["2", "3"]
    rs = json.loads(k("get", "rs", "-n", ns, "-o", "json"))["items"]
    assert len(rs) == 2  # the rollback re-used the first ReplicaSet
    events = k("get", "events", "-n", ns)
    assert "ScalingReplicaSet" in events and "SuccessfulCreate" in events


NAMED_PORT_PODS = """\
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: named}}}}
spec:
  containers:
  - name: c
    image: busybox
    ports: [{{name: web, containerPort: {port}}}]
"""


def test_named_target_port_and_headless_and_publish_not_ready(kubectl: Kubectl) -> None:
    k, ns = kubectl, "ctl-named"
    k("create", "namespace", ns)
    for name, port in (("a", 8080), ("b", 9090)):
        k("apply", "-n", ns, "-f", "-", input=NAMED_PORT_PODS.format(name=name, port=port))
    k("apply", "-n", ns, "-f", "-", input="""\
apiVersion: v1
kind: Service
metadata: {name: named}
spec:
  selector: {app: named}
  ports: [{name: http, port: 80, targetPort: web}]
""")
    ps = mark_all_ready(k, ns, "app=named")
    ip = {p["metadata"]["name"]: p["status"]["podIP"] for p in ps}

    def eps() -> list[str]:
        return sorted(k("get", "endpoints", "named", "-n", ns).splitlines()[1].split()[1]
                      .split(","))
    wait_for(lambda: eps() == sorted([f"{ip['a']}:8080", f"{ip['b']}:9090"]), what="named")
    slices = json.loads(k("get", "endpointslice", "-n", ns, "-o", "json"))["items"]
    assert sorted(s["ports"][0]["port"] for s in slices) == [8080, 9090]

    # headless Service over Pods with hostname + subdomain
    k("apply", "-n", ns, "-f", "-", input="""\
apiVersion: v1
kind: Service
metadata: {name: nginx}
spec:
  clusterIP: None
  selector: {app: hl}
  ports: [{name: web, port: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-0, labels: {app: hl}}
spec:
  hostname: web-0
  subdomain: nginx
  containers: [{name: c, image: nginx}]
""")
    hl = mark_all_ready(k, ns, "app=hl")

    def hostnames() -> list[Any]:
        items = json.loads(k("get", "endpointslice", "-n", ns, "-l",
                             "kubernetes.io/service-name=nginx", "-o", "json"))["items"]
        return [e.get("hostname") for s in items for e in s.get("endpoints") or []]
    wait_for(lambda: hostnames() == ["web-0"], what="hostname")
    assert k("get", "svc", "nginx", "-n", ns).splitlines()[1].split()[2] == "None"

    # publishNotReadyAddresses: an unready Pod is still listed as ready
    k("apply", "-n", ns, "-f", "-", input="""\
apiVersion: v1
kind: Service
metadata: {name: pnr}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector: {app: hl}
  ports: [{name: web, port: 80}]
""")
    set_ready(k, ns, hl[0], ready=False)
    wait_for(lambda: hl[0]["status"]["podIP"] in
             k("get", "endpoints", "pnr", "-n", ns).splitlines()[1], what="pnr endpoints")


def test_service_without_selector_is_mirrored(kubectl: Kubectl) -> None:
    k, ns = kubectl, "ctl-mirror"
    k("create", "namespace", ns)
    k("apply", "-n", ns, "-f", str(Path(__file__).resolve().parents[2] / "examples" /
                                   "no-selector.yaml"))

    def mirrored() -> Any:
        items = json.loads(k("get", "endpointslice", "-n", ns, "-l",
                             "kubernetes.io/service-name=my-external-db", "-o", "json"))["items"]
        return items and items[0]["endpoints"][0]["addresses"] == ["192.0.2.42"] and items
    items = wait_for(mirrored, what="mirrored slice")
    assert items[0]["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == \
        "endpointslicemirroring-controller.k8s.io"
    desc = k("describe", "svc", "my-external-db", "-n", ns)
    assert re.search(r"^Endpoints:\s+192\.0\.2\.42:9376$", desc, re.M)


def test_service_matching_no_pods_says_so(kubectl: Kubectl) -> None:
    k, ns = kubectl, "ctl-diag"
    k("create", "namespace", ns)
    k("create", "service", "clusterip", "lonely", "-n", ns, "--tcp=80:8080")
    wait_for(lambda: "NoMatchingPods" in k("describe", "svc", "lonely", "-n", ns),
             what="diagnostic event")


def test_controllers_converge_after_server_restart(server: Any, tmp_path: Path) -> None:
    """Restart the server under a running Deployment: no duplicate ReplicaSets, Pods or
    slices, and changes made after the restart are acted on."""
    from conftest import kubectl_for
    k = kubectl_for(server, tmp_path)
    for i, name in enumerate(NODES):
        k("apply", "-f", "-", input=f"apiVersion: v1\nkind: Node\nmetadata: {{name: {name}}}\n")
        k("patch", "node", name, "--subresource=status", "--type=merge", "-p", json.dumps(
            {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}))
    ns = "ctl-restart"
    k("create", "namespace", ns)
    k("apply", "-n", ns, "-f", "-", input=DEPLOY.format(name="web", replicas=3, image="nginx"))
    k("expose", "deployment", "web", "-n", ns, "--port", "80", "--target-port", "9376")
    wait_for(lambda: len(pods(k, ns, "app=web")) == 3, what="3 pods")
    mark_all_ready(k, ns, "app=web")

    def counts() -> tuple[int, int, int]:
        rs = json.loads(k("get", "rs", "-n", ns, "-o", "json"))["items"]
        es = json.loads(k("get", "endpointslice", "-n", ns, "-o", "json"))["items"]
        return len(rs), len(pods(k, ns, "app=web")), len(es)
    wait_for(lambda: counts() == (1, 3, 1), what="steady state")
    server.stop()
    server.start()
    time.sleep(3)  # give the restarted controllers time to (wrongly) act
    assert counts() == (1, 3, 1)
    k("scale", "deployment", "web", "-n", ns, "--replicas=4")
    wait_for(lambda: counts() == (1, 4, 1), what="scaled after restart")
