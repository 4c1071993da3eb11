"""The official Python `kubernetes` client against a real server (issue 2, acceptance 3)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client, config, watch  # noqa: E402


@pytest.fixture
def api(shared_server: Any) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(shared_server.kubeconfig))


def _ns(api: client.ApiClient, name: str) -> None:
    client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
        name=name)))


def test_services_crud_and_watch(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    _ns(api, "py-svc")
    events: list[tuple[str, str]] = []
    lst = core.list_namespaced_service("py-svc")
    assert lst.items == []
    w = watch.Watch()

    def run() -> None:
        for ev in w.stream(core.list_namespaced_service, "py-svc",
                           resource_version=lst.metadata.resource_version, timeout_seconds=20):
            events.append((ev["type"], ev["object"].metadata.name))
            if ev["type"] == "DELETED":
                w.stop()
    t = threading.Thread(target=run)
    t.start()
    svc = client.V1Service(metadata=client.V1ObjectMeta(name="py", labels={"a": "b"}),
                           spec=client.V1ServiceSpec(selector={"app": "py"}, ports=[
                               client.V1ServicePort(port=80, target_port=8080)]))
    created = core.create_namespaced_service("py-svc", svc)
    assert created.metadata.uid and created.spec.ports[0].protocol == "TCP"
    patched = core.patch_namespaced_service("py", "py-svc", {"metadata": {"labels": {"c": "d"}}})
    assert patched.metadata.labels == {"a": "b", "c": "d"}
    patched = core.patch_namespaced_service(
        "py", "py-svc", [{"op": "add", "path": "/metadata/labels/e", "value": "f"}])
    assert patched.metadata.labels["e"] == "f"
    assert [s.metadata.name for s in core.list_service_for_all_namespaces(
        label_selector="a=b").items] == ["py"]
    core.delete_namespaced_service("py", "py-svc")
    t.join(30)
    assert events == [("ADDED", "py"), ("MODIFIED", "py"), ("MODIFIED", "py"), ("DELETED", "py")]


def test_pods_endpointslices_deployments(api: client.ApiClient) -> None:
    core, disc, apps = client.CoreV1Api(api), client.DiscoveryV1Api(api), client.AppsV1Api(api)
    _ns(api, "py-all")
    pod = client.V1Pod(metadata=client.V1ObjectMeta(name="p1", labels={"app": "x"}),
                       spec=client.V1PodSpec(containers=[client.V1Container(
                           name="c", image="busybox", command=["sleep", "1000"])]))
    created = core.create_namespaced_pod("py-all", pod)
    assert created.status.phase == "Pending" and created.spec.restart_policy == "Always"
    core.patch_namespaced_pod_status("p1", "py-all", {"status": {"phase": "Running"}})
    assert core.read_namespaced_pod("p1", "py-all").status.phase == "Running"
    assert len(core.list_namespaced_pod("py-all", label_selector="app=x").items) == 1
    core.delete_namespaced_pod("p1", "py-all")

    es = client.V1EndpointSlice(
        metadata=client.V1ObjectMeta(name="s1", labels={"kubernetes.io/service-name": "x"}),
        address_type="IPv4", endpoints=[client.V1Endpoint(addresses=["10.244.1.5"])],
        ports=[client.DiscoveryV1EndpointPort(name="http", port=80, protocol="TCP")])
    disc.create_namespaced_endpoint_slice("py-all", es)
    got = disc.list_namespaced_endpoint_slice(
        "py-all", label_selector="kubernetes.io/service-name=x")
    assert got.items[0].endpoints[0].addresses == ["10.244.1.5"]
    disc.patch_namespaced_endpoint_slice("s1", "py-all", {"metadata": {"labels": {"z": "1"}}})
    disc.delete_namespaced_endpoint_slice("s1", "py-all")

    dep = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="d1"),
        spec=client.V1DeploymentSpec(
            selector=client.V1LabelSelector(match_labels={"app": "d1"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "d1"}),
                spec=client.V1PodSpec(containers=[client.V1Container(name="c",
                                                                     image="nginx:1.27")]))))
    d = apps.create_namespaced_deployment("py-all", dep)
    assert d.spec.replicas == 1 and d.spec.strategy.type == "RollingUpdate"
    assert d.metadata.generation == 1
    apps.patch_namespaced_deployment_scale("d1", "py-all", {"spec": {"replicas": 4}})
    d = apps.read_namespaced_deployment("d1", "py-all")
    assert d.spec.replicas == 4 and d.metadata.generation == 2
    w = watch.Watch()
    seen = [(ev["type"], ev["object"].metadata.name) for ev in w.stream(
        apps.list_namespaced_deployment, "py-all", timeout_seconds=1)]
    # the deployment controller's status writes may follow as MODIFIED events
    assert seen[0] == ("ADDED", "d1") and {t for t, _ in seen[1:]} <= {"MODIFIED"}
    apps.delete_namespaced_deployment("d1", "py-all")
    assert apps.list_namespaced_deployment("py-all").items == []


def test_watch_pods_and_endpointslices(api: client.ApiClient) -> None:
    core, disc = client.CoreV1Api(api), client.DiscoveryV1Api(api)
    _ns(api, "py-watch")
    pod = client.V1Pod(metadata=client.V1ObjectMeta(name="wp"), spec=client.V1PodSpec(
        containers=[client.V1Container(name="c", image="busybox")]))
    es = client.V1EndpointSlice(metadata=client.V1ObjectMeta(name="ws"), address_type="IPv4",
                                endpoints=[client.V1Endpoint(addresses=["10.244.0.9"])])
    rv_pods = core.list_namespaced_pod("py-watch").metadata.resource_version
    rv_es = disc.list_namespaced_endpoint_slice("py-watch").metadata.resource_version
    core.create_namespaced_pod("py-watch", pod)
    disc.create_namespaced_endpoint_slice("py-watch", es)
    core.delete_namespaced_pod("wp", "py-watch")
    disc.delete_namespaced_endpoint_slice("ws", "py-watch")
    for fn, rv, name in ((core.list_namespaced_pod, rv_pods, "wp"),
                         (disc.list_namespaced_endpoint_slice, rv_es, "ws")):
        seen = [(e["type"], e["object"].metadata.name) for e in watch.Watch().stream(
            fn, "py-watch", resource_version=rv, timeout_seconds=1)]
        # controllers (the scheduler marking a Pod unschedulable) may add MODIFIED events
        assert seen[0] == ("ADDED", name) and seen[-1] == ("DELETED", name)
        assert {t for t, _ in seen[1:-1]} <= {"MODIFIED"}
