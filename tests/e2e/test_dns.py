"""Cluster DNS in a real `svcnet up --nodes 2` cluster (issue 7, acceptance 2).

Pods resolve through their own resolv.conf (nameserver = the kube-dns ClusterIP, reached
through the proxy like any Service) with busybox `nslookup` and `dig`, run inside the Pod's
network and mount namespaces. Outside names are forwarded to a DNS server this test runs on
loopback (never the machine's own resolver).
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any, Iterator

import pytest
from clusterkit import needs_root, running_cluster
from conftest import wait_for
from test_cluster import Cluster, pod_netns, ready

from svcnet.dns.fake_upstream import StaticUpstream

pytestmark = [pytest.mark.e2e, pytest.mark.dataplane, needs_root]

UPSTREAM_RECORDS = [("www.upstream.test.", "A", "192.0.2.80", 60),
                    ("db.upstream.test.", "A", "192.0.2.33", 60)]


@pytest.fixture(scope="module")
def upstream() -> Iterator[StaticUpstream]:
    with StaticUpstream(UPSTREAM_RECORDS) as server:
        yield server


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, upstream: StaticUpstream
            ) -> Iterator[Cluster]:
    for tool in ("dig", "busybox"):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            pytest.skip(f"{tool} is not installed (scripts/setup --test installs it)")
    tmp = tmp_path_factory.mktemp("dnscluster")
    with running_cluster(tmp, dns_upstream=upstream.spec) as (plan, opts):
        yield Cluster(plan, opts, tmp / "kube-cache")


OBJECTS = """\
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: v1
kind: Service
metadata: {name: mysql, namespace: demo}
spec:
  selector: {app: mysql}
  ports: [{name: mysql, port: 3306}]
---
apiVersion: v1
kind: Service
metadata: {name: nginx}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: web, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: ext}
spec:
  type: ExternalName
  externalName: db.upstream.test
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: demo}
spec:
  containers:
  - name: sh
    image: busybox
    command: [sh, -c, "sleep 3600"]
"""

WEB_POD = """\
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: web}}}}
spec:
  hostname: {name}
  subdomain: nginx
  containers:
  - name: web
    image: registry.k8s.io/e2e-test-images/agnhost:2.43
    args: [netexec, --http-port=8080]
"""


def in_pod(pod: dict[str, Any], *cmd: str) -> subprocess.CompletedProcess[str]:
    """Run `cmd` in the Pod's network namespace, seeing the Pod's /etc/resolv.conf."""
    return subprocess.run(["ip", "netns", "exec", pod_netns(pod), *cmd], capture_output=True,
                          text=True, timeout=30)


def dig(pod: dict[str, Any], name: str, rdtype: str = "A", *extra: str) -> list[str]:
    res = in_pod(pod, "dig", "+short", "+time=2", "+tries=1", *extra, name, rdtype)
    assert res.returncode == 0, res.stdout + res.stderr
    return sorted(res.stdout.split())


@pytest.fixture(scope="module")
def world(cluster: Cluster) -> dict[str, Any]:
    cluster.k("apply", "-f", "-", input=OBJECTS)
    for name in ("web-0", "web-1"):
        cluster.k("apply", "-f", "-", input=WEB_POD.format(name=name))
    client = wait_for(lambda: (lambda p: p if ready(p) else None)(
        json.loads(cluster.k("get", "pod", "client", "-n", "demo", "-o", "json"))),
        what="client pod running")
    webs = wait_for(lambda: (lambda ps: ps if len(ps) == 2 and all(map(ready, ps)) else None)(
        cluster.pods("app=web")), what="2 ready web pods")
    mysql_ip = json.loads(cluster.k("get", "svc", "mysql", "-n", "demo", "-o", "json"))[
        "spec"]["clusterIP"]
    return {"client": client, "webs": webs, "mysql_ip": mysql_ip}


def test_service_names_resolve_through_the_search_path(cluster: Cluster,
                                                       world: dict[str, Any]) -> None:
    client = world["client"]
    resolv = in_pod(client, "cat", "/etc/resolv.conf").stdout
    assert f"nameserver {cluster.plan.dns_ip}" in resolv
    # kube-dns is a real Service whose endpoints are svcnet's DNS server
    svc = json.loads(cluster.k("get", "svc", "kube-dns", "-n", "kube-system", "-o", "json"))
    assert svc["spec"]["clusterIP"] == cluster.plan.dns_ip
    for name in ("mysql", "mysql.demo", "mysql.demo.svc.cluster.local"):
        wait_for(lambda: dig(client, name, "A", "+search") == [world["mysql_ip"]],
                 timeout=10, what=f"dig +search {name}")
        # glibc's resolver (what programs in the Pod use) walks the search path too
        out = in_pod(client, "getent", "hosts", name)
        assert out.stdout.split()[:1] == [world["mysql_ip"]], out.stdout + out.stderr
    # the busybox image's nslookup (busybox 1.28's, as the tutorials show it) walks the
    # search path for dotted names too; it names the address by its PTR record
    for name in ("mysql", "mysql.demo", "mysql.demo.svc.cluster.local"):
        out = cluster.k("exec", "client", "-n", "demo", "--", "nslookup", name)
        assert f"Name:      {name}\nAddress 1: {world['mysql_ip']} " \
            "mysql.demo.svc.cluster.local\n" in out, out


def test_headless_service_returns_every_ready_pod(cluster: Cluster,
                                                  world: dict[str, Any]) -> None:
    client = world["client"]
    ips = sorted(p["status"]["podIP"] for p in world["webs"])
    wait_for(lambda: dig(client, "nginx.default.svc.cluster.local") == ips, timeout=10,
             what="headless A records")
    web0 = next(p for p in world["webs"] if p["metadata"]["name"] == "web-0")
    assert dig(client, "web-0.nginx.default.svc.cluster.local") == [web0["status"]["podIP"]]
    # and with the busybox image's nslookup, from inside the Pod
    out = cluster.k("exec", "client", "-n", "demo", "--", "nslookup", "web-0.nginx.default")
    assert f"Address 1: {web0['status']['podIP']} web-0.nginx.default.svc.cluster.local" \
        in out, out
    srv = dig(client, "_web._tcp.nginx.default.svc.cluster.local", "SRV")
    assert "web-0.nginx.default.svc.cluster.local." in srv and "8080" in srv


def test_external_name_and_outside_names_are_forwarded(cluster: Cluster, world: dict[str, Any],
                                                       upstream: StaticUpstream) -> None:
    client = world["client"]
    ext = dig(client, "ext.default.svc.cluster.local")
    assert ext == sorted(["db.upstream.test.", "192.0.2.33"])
    before = upstream.queries[("www.upstream.test.", "A")]
    assert dig(client, "www.upstream.test.") == ["192.0.2.80"]
    assert upstream.queries[("www.upstream.test.", "A")] == before + 1
    # the second time it comes from svcnet's cache
    assert dig(client, "www.upstream.test.") == ["192.0.2.80"]
    assert upstream.queries[("www.upstream.test.", "A")] == before + 1
    res = in_pod(client, "dig", "+time=2", "+tries=1", "nowhere.upstream.test.")
    assert "status: NXDOMAIN" in res.stdout


def test_deleted_service_stops_resolving_within_a_second(cluster: Cluster,
                                                         world: dict[str, Any]) -> None:
    client = world["client"]
    cluster.k("create", "service", "clusterip", "shortlived", "--tcp", "80:80")
    name = "shortlived.default.svc.cluster.local"
    wait_for(lambda: len(dig(client, name)) == 1, timeout=10, what="shortlived resolves")
    cluster.k("delete", "service", "shortlived", "--wait=false")
    t0 = time.monotonic()
    while dig(client, name):
        assert time.monotonic() - t0 < 1.0, "deleted Service still resolves after 1 s"
        time.sleep(0.05)
    res = in_pod(client, "dig", "+time=2", "+tries=1", name)
    assert "status: NXDOMAIN" in res.stdout


def test_dns_metrics_use_coredns_names(cluster: Cluster, world: dict[str, Any]) -> None:
    res = subprocess.run(["curl", "-sS", "--max-time", "3",
                          f"http://{cluster.plan.host_ip}:9153/metrics"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert 'coredns_dns_requests_total{' in res.stdout
    assert 'rcode="NXDOMAIN"' in res.stdout
    assert "coredns_dns_request_duration_seconds_bucket" in res.stdout
    assert "coredns_forward_requests_total" in res.stdout
