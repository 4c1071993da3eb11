"""Pure EndpointSlice reconcile: packing, minimal churn, endpoint content, ports, labels,
placeholder, and the Service diagnosis."""

from __future__ import annotations

import copy
import itertools
from typing import Any

from svcnet.controllers.endpointslice import CONTROLLER_NAME, SlicePlan, reconcile
from svcnet.controllers.service_diagnosis import diagnose
from svcnet.controllers.triggertime import TriggerTimeTracker, format_rfc3339_nano, parse_time

Obj = dict[str, Any]
_rv = itertools.count(100)


def svc(name: str = "web", selector: dict[str, str] | None = None, ports: list[Obj] | None = None,
        **spec: Any) -> Obj:
    body: Obj = {"selector": {"app": name} if selector is None else selector,
                 "ports": ports if ports is not None else [
                     {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
                 "clusterIP": "10.96.0.50", "ipFamilies": ["IPv4"], "type": "ClusterIP"}
    body.update(spec)
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}",
                         "labels": {"team": "a"}, "creationTimestamp": "2025-01-01T00:00:00Z"},
            "spec": body}


def pod(name: str, ip: str | None, ready: bool = True, labels: dict[str, str] | None = None,
        node: str = "n1", ports: list[Obj] | None = None, **extra: Any) -> Obj:
    status: Obj = {"phase": extra.pop("phase", "Running"), "conditions": [
        {"type": "Ready", "status": "True" if ready else "False",
         "lastTransitionTime": "2025-01-01T00:01:00Z"}]}
    if ip:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
    spec: Obj = {"nodeName": node, "containers": [{"name": "c", "ports": ports or []}]}
    spec.update(extra.pop("spec", {}))
    meta: Obj = {"name": name, "namespace": "default", "uid": f"uid-{name}",
                 "labels": {"app": "web"} if labels is None else labels,
                 "resourceVersion": str(next(_rv))}
    meta.update(extra)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}


NODES = {"n1": {"metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "z1"}}},
         "n2": {"metadata": {"name": "n2", "labels": {}}}}


def store(plan: SlicePlan, existing: list[Obj]) -> list[Obj]:
    """Apply a plan the way the API server would (names for creates, rv bumps)."""
    by_name = {s["metadata"]["name"]: s for s in existing}
    for s in plan.delete:
        del by_name[s["metadata"]["name"]]
    for s in plan.update:
        s = copy.deepcopy(s)
        s["metadata"]["resourceVersion"] = str(next(_rv))
        by_name[s["metadata"]["name"]] = s
    for i, s in enumerate(plan.create):
        s = copy.deepcopy(s)
        s["metadata"]["name"] = s["metadata"].pop("generateName") + f"x{next(_rv)}"
        s["metadata"]["resourceVersion"] = str(next(_rv))
        s["metadata"]["uid"] = "slice-" + s["metadata"]["name"]
        by_name[s["metadata"]["name"]] = s
    return list(by_name.values())


def many_pods(n: int, start: int = 0) -> list[Obj]:
    return [pod(f"p{i}", f"10.244.{i // 250}.{i % 250 + 1}") for i in range(start, start + n)]


def ips(sl: Obj) -> set[str]:
    return {a for e in sl["endpoints"] for a in e["addresses"]}


def test_250_endpoints_pack_into_100_100_50() -> None:
    plan = reconcile(svc(), many_pods(250), NODES, [])
    assert sorted(len(s["endpoints"]) for s in plan.create) == [50, 100, 100]
    assert not plan.update and not plan.delete


def test_one_pod_turning_unready_updates_exactly_one_slice() -> None:
    pods = many_pods(250)
    slices = store(reconcile(svc(), pods, NODES, []), [])
    assert reconcile(svc(), pods, NODES, slices).empty  # steady state: no writes
    pods[137] = pod("p137", pods[137]["status"]["podIP"], ready=False)
    plan = reconcile(svc(), pods, NODES, slices)
    assert not plan.create and not plan.delete and len(plan.update) == 1
    holder = next(s for s in slices if pods[137]["status"]["podIP"] in ips(s))
    assert plan.update[0]["metadata"]["name"] == holder["metadata"]["name"]
    assert plan.update[0]["metadata"]["resourceVersion"] == holder["metadata"]["resourceVersion"]
    ep = next(e for e in plan.update[0]["endpoints"] if e["targetRef"]["name"] == "p137")
    assert ep["conditions"] == {"ready": False, "serving": False, "terminating": False}


def test_adding_a_pod_fills_an_existing_slice_with_room() -> None:
    pods = many_pods(250)
    slices = store(reconcile(svc(), pods, NODES, []), [])
    plan = reconcile(svc(), pods + many_pods(1, start=250), NODES, slices)
    assert not plan.create and not plan.delete and len(plan.update) == 1
    assert len(plan.update[0]["endpoints"]) == 51


def test_removed_pod_is_deleted_from_its_slice_and_empty_slices_go() -> None:
    pods = many_pods(3)
    slices = store(reconcile(svc(), pods, NODES, []), [])
    plan = reconcile(svc(), pods[:2], NODES, slices)
    assert len(plan.update) == 1 and len(plan.update[0]["endpoints"]) == 2
    # all pods gone: the slice is recycled into the placeholder (one update, no delete)
    plan = reconcile(svc(), [], NODES, slices)
    assert not plan.create and not plan.delete
    assert plan.update[0]["endpoints"] == [] and plan.update[0]["ports"] == []


def test_placeholder_for_service_without_endpoints_is_created_once() -> None:
    plan = reconcile(svc(), [], NODES, [])
    assert len(plan.create) == 1 and plan.create[0]["endpoints"] == []
    assert plan.create[0]["ports"] == []
    slices = store(plan, [])
    assert reconcile(svc(), [], NODES, slices).empty
    # the first endpoint replaces the placeholder in place (recycled, same name)
    plan = reconcile(svc(), many_pods(1), NODES, slices)
    assert not plan.create and not plan.delete
    assert plan.update[0]["metadata"]["name"] == slices[0]["metadata"]["name"]
    assert plan.update[0]["ports"] == [{"name": "http", "protocol": "TCP", "port": 8080}]


def test_terminating_endpoint_conditions() -> None:
    p = pod("t", "10.244.0.9", deletionTimestamp="2025-01-01T00:05:00Z")
    ep = reconcile(svc(), [p], NODES, []).create[0]["endpoints"][0]
    assert ep["conditions"] == {"ready": False, "serving": True, "terminating": True}
    unready_terminating = pod("u", "10.244.0.8", ready=False,
                              deletionTimestamp="2025-01-01T00:05:00Z")
    ep = reconcile(svc(), [unready_terminating], NODES, []).create[0]["endpoints"][0]
    assert ep["conditions"] == {"ready": False, "serving": False, "terminating": True}


def test_terminal_pods_and_pods_without_ip_are_left_out() -> None:
    pods = [pod("a", "10.244.0.1", phase="Succeeded"), pod("b", "10.244.0.2", phase="Failed"),
            pod("c", None), pod("d", "10.244.0.4", labels={"app": "other"})]
    plan = reconcile(svc(), pods, NODES, [])
    assert len(plan.create) == 1 and plan.create[0]["endpoints"] == []  # placeholder


def test_named_target_port_resolved_per_pod_gives_one_slice_per_port_set() -> None:
    service = svc(ports=[{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "web"}])
    a = pod("a", "10.244.0.1", ports=[{"name": "web", "containerPort": 8080, "protocol": "TCP"}])
    b = pod("b", "10.244.0.2", ports=[{"name": "web", "containerPort": 9090, "protocol": "TCP"}])
    plan = reconcile(service, [a, b], NODES, [])
    assert len(plan.create) == 2
    by_port = {s["ports"][0]["port"]: s for s in plan.create}
    assert set(by_port) == {8080, 9090}
    assert by_port[8080]["endpoints"][0]["targetRef"]["name"] == "a"
    assert by_port[9090]["endpoints"][0]["targetRef"]["name"] == "b"


def test_pod_lacking_the_named_port_gets_no_endpoint_for_that_port() -> None:
    """Upstream getEndpointPorts drops the port for that Pod: the Pod lands in a slice
    without it, so no consumer sends traffic for port "web" to it."""
    service = svc(ports=[{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "web"}])
    a = pod("a", "10.244.0.1", ports=[{"name": "web", "containerPort": 8080, "protocol": "TCP"}])
    lacking = pod("b", "10.244.0.2", ports=[{"name": "metrics", "containerPort": 9100}])
    udp_only = pod("c", "10.244.0.3", ports=[{"name": "web", "containerPort": 53,
                                              "protocol": "UDP"}])
    plan = reconcile(service, [a, lacking, udp_only], NODES, [])
    with_http = [s for s in plan.create if s["ports"]]
    assert len(with_http) == 1
    assert [e["targetRef"]["name"] for e in with_http[0]["endpoints"]] == ["a"]
    without = [s for s in plan.create if not s["ports"]]
    assert {e["targetRef"]["name"] for s in without for e in s["endpoints"]} == {"b", "c"}


def test_sidecar_init_container_ports_count() -> None:
    service = svc(ports=[{"name": "", "port": 80, "protocol": "TCP", "targetPort": "proxy"}])
    p = pod("a", "10.244.0.1", spec={"initContainers": [
        {"name": "side", "restartPolicy": "Always",
         "ports": [{"name": "proxy", "containerPort": 15001, "protocol": "TCP"}]}]})
    sl = reconcile(service, [p], NODES, []).create[0]
    assert sl["ports"] == [{"name": "", "protocol": "TCP", "port": 15001}]


def test_hostname_only_with_matching_subdomain() -> None:
    good = pod("a", "10.244.0.1", spec={"hostname": "db-0", "subdomain": "web"})
    other = pod("b", "10.244.0.2", spec={"hostname": "db-1", "subdomain": "elsewhere"})
    created = reconcile(svc(), [good, other], NODES, []).create[0]
    eps = {e["targetRef"]["name"]: e for e in created["endpoints"]}
    assert eps["a"]["hostname"] == "db-0" and "hostname" not in eps["b"]


def test_publish_not_ready_addresses_makes_every_endpoint_ready() -> None:
    service = svc(publishNotReadyAddresses=True)
    pods = [pod("a", "10.244.0.1", ready=False),
            pod("b", "10.244.0.2", deletionTimestamp="2025-01-01T00:05:00Z"),
            pod("c", "10.244.0.3", node="unknown-node")]  # published even without its Node
    eps = reconcile(service, pods, NODES, []).create[0]["endpoints"]
    assert [e["conditions"]["ready"] for e in eps] == [True, True, True]
    assert eps[0]["conditions"]["serving"] is False


def test_zone_and_node_name_from_node() -> None:
    eps = reconcile(svc(), [pod("a", "10.244.0.1"), pod("b", "10.244.0.2", node="n2")],
                    NODES, []).create[0]["endpoints"]
    assert eps[0]["nodeName"] == "n1" and eps[0]["zone"] == "z1"
    assert eps[1]["nodeName"] == "n2" and "zone" not in eps[1]


def test_pod_on_unknown_node_is_left_out_and_reported() -> None:
    plan = reconcile(svc(), [pod("a", "10.244.0.1", node="ghost")], NODES, [])
    assert plan.missing_nodes == [("a", "ghost")] and plan.create[0]["endpoints"] == []


def test_zone_change_is_an_in_place_update() -> None:
    slices = store(reconcile(svc(), [pod("a", "10.244.0.1")], NODES, []), [])
    nodes = {"n1": {"metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "z9"}}}}
    plan = reconcile(svc(), [pod("a", "10.244.0.1")], nodes, slices)
    assert len(plan.update) == 1 and plan.update[0]["endpoints"][0]["zone"] == "z9"


def test_slice_shape_labels_owner_and_annotation() -> None:
    service = svc()
    service["metadata"]["labels"] = {"team": "a", "kubernetes.io/service-name": "spoof",
                                     "endpointslice.kubernetes.io/managed-by": "me"}
    sl = reconcile(service, [pod("a", "10.244.0.1")], NODES, [],
                   trigger_time="2025-01-01T00:01:00Z").create[0]
    assert sl["apiVersion"] == "discovery.k8s.io/v1" and sl["kind"] == "EndpointSlice"
    assert sl["addressType"] == "IPv4"
    meta = sl["metadata"]
    assert meta["generateName"] == "web-" and meta["namespace"] == "default"
    assert meta["labels"] == {"team": "a", "kubernetes.io/service-name": "web",
                              "endpointslice.kubernetes.io/managed-by": CONTROLLER_NAME}
    assert meta["ownerReferences"] == [{"apiVersion": "v1", "kind": "Service", "name": "web",
                                        "uid": "uid-web", "controller": True,
                                        "blockOwnerDeletion": True}]
    assert meta["annotations"] == {
        "endpoints.kubernetes.io/last-change-trigger-time": "2025-01-01T00:01:00Z"}
    assert sl["endpoints"] == [{
        "addresses": ["10.244.0.1"],
        "conditions": {"ready": True, "serving": True, "terminating": False},
        "targetRef": {"kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"},
        "nodeName": "n1", "zone": "z1"}]
    assert sl["ports"] == [{"name": "http", "protocol": "TCP", "port": 8080}]


def test_unnamed_port_serialises_empty_name_and_app_protocol_is_kept() -> None:
    service = svc(ports=[{"port": 80, "protocol": "TCP", "targetPort": 80, "appProtocol": "http"}])
    sl = reconcile(service, [pod("a", "10.244.0.1")], NODES, []).create[0]
    assert sl["ports"] == [{"name": "", "protocol": "TCP", "port": 80, "appProtocol": "http"}]


def test_headless_label_and_service_label_changes() -> None:
    service = svc(clusterIP="None")
    slices = store(reconcile(service, [pod("a", "10.244.0.1")], NODES, []), [])
    assert slices[0]["metadata"]["labels"]["service.kubernetes.io/headless"] == ""
    service["metadata"]["labels"] = {"team": "b"}
    plan = reconcile(service, [pod("a", "10.244.0.1")], NODES, slices)
    assert len(plan.update) == 1 and plan.update[0]["metadata"]["labels"]["team"] == "b"


def test_service_gone_or_without_selector_or_external_name_deletes_slices() -> None:
    slices = store(reconcile(svc(), many_pods(2), NODES, []), [])
    assert reconcile(None, [], NODES, slices).delete == slices
    assert reconcile(svc(selector={}), many_pods(2), NODES, slices).delete == slices
    ext = svc(type="ExternalName", externalName="db.example.com")
    assert reconcile(ext, many_pods(2), NODES, slices).delete == slices
    assert reconcile(ext, many_pods(2), NODES, []).empty


def test_slices_of_an_older_service_with_the_same_name_are_replaced() -> None:
    old = store(reconcile(svc(), many_pods(2), NODES, []), [])
    new_svc = svc()
    new_svc["metadata"]["uid"] = "uid-web-2"
    plan = reconcile(new_svc, many_pods(2), NODES, old)
    assert plan.delete == old and len(plan.create) == 1
    assert plan.create[0]["metadata"]["ownerReferences"][0]["uid"] == "uid-web-2"


def test_hand_edited_slice_is_repaired() -> None:
    slices = store(reconcile(svc(), many_pods(2), NODES, []), [])
    slices[0]["endpoints"][0]["conditions"]["ready"] = False
    plan = reconcile(svc(), many_pods(2), NODES, slices)
    assert len(plan.update) == 1 and plan.update[0]["endpoints"][0]["conditions"]["ready"]


def test_trigger_time_removed_when_unchanged_and_no_creates_for_deleting_service() -> None:
    slices = store(reconcile(svc(), many_pods(1), NODES, [], trigger_time="2025-01-01T00:00:00Z"),
                   [])
    plan = reconcile(svc(), many_pods(2), NODES, slices)
    assert "annotations" not in plan.update[0]["metadata"]
    deleting = svc()
    deleting["metadata"]["deletionTimestamp"] = "2025-01-02T00:00:00Z"
    assert reconcile(deleting, many_pods(1), NODES, []).create == []


def test_trigger_time_tracker() -> None:
    tracker = TriggerTimeTracker()
    service = svc()
    pods = [pod("a", "10.244.0.1")]
    assert tracker.compute("default/web", service, pods) == "2025-01-01T00:00:00Z"
    assert tracker.compute("default/web", service, pods) is None
    flipped = pod("a", "10.244.0.1", ready=False)
    flipped["status"]["conditions"][0]["lastTransitionTime"] = "2025-01-01T00:09:00Z"
    assert tracker.compute("default/web", service, [flipped]) == "2025-01-01T00:09:00Z"
    t = parse_time("2025-01-01T00:00:00.250Z")
    assert t is not None and format_rfc3339_nano(t) == "2025-01-01T00:00:00.25Z"


# --- diagnosis ----------------------------------------------------------------------------

def test_diagnosis_no_matching_pods() -> None:
    d = diagnose(svc(selector={"app": "wbe"}), [pod("a", "10.244.0.1")])
    assert d is not None and d.reason == "NoMatchingPods"
    assert "app=wbe" in d.message and "namespace default" in d.message


def test_diagnosis_no_ready_endpoints_names_the_pods() -> None:
    pods = [pod("a", "10.244.0.1", ready=False), pod("b", None, ready=False)]
    d = diagnose(svc(), pods)
    assert d is not None and d.reason == "NoReadyEndpoints"
    assert "none of the 2 Pods" in d.message and "not ready: a" in d.message
    assert "no IP yet: b" in d.message
    # the identity ignores counts, so one more unready Pod is not a new cause
    d2 = diagnose(svc(), pods + [pod("c", "10.244.0.3", ready=False)])
    assert d2 is not None and d2.key == d.key
    assert diagnose(svc(), pods + [pod("c", "10.244.0.3")]) is None
    assert diagnose(svc(publishNotReadyAddresses=True), pods) is None


def test_diagnosis_target_port_not_found() -> None:
    service = svc(ports=[{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "web"}])
    pods = [pod("a", "10.244.0.1", ports=[{"name": "http", "containerPort": 8080,
                                           "protocol": "TCP"}])]
    d = diagnose(service, pods)
    assert d is not None and d.reason == "TargetPortNotFound"
    assert '"web"' in d.message and '"http" (80/TCP)' in d.message
    assert "spec.ports[0].targetPort" in d.message
    pods.append(pod("b", "10.244.0.2", ports=[{"name": "web", "containerPort": 80}]))
    assert diagnose(service, pods) is None


def test_no_diagnosis_for_services_without_selector() -> None:
    assert diagnose(svc(selector={}), []) is None
    assert diagnose(svc(type="ExternalName"), []) is None


# --- write tracking -----------------------------------------------------------------------

def test_write_tracker_tells_stale_caches_and_own_echoes_apart() -> None:
    from svcnet.controllers.writetracker import WriteTracker
    now = [0.0]
    t = WriteTracker(ttl=30, clock=lambda: now[0])
    created = {"metadata": {"namespace": "default", "name": "web-abc", "resourceVersion": "10"}}
    t.wrote("default/web", created)
    assert t.stale("default/web", [])  # the cache has not seen our create yet
    assert not t.is_foreign("ADDED", created)  # the echo of our own write
    assert not t.stale("default/web", [created])
    t.wrote("default/web", dict(created, metadata=dict(created["metadata"], resourceVersion="12")))
    assert t.stale("default/web", [created])  # cache still has rv 10
    edited = {"metadata": {"namespace": "default", "name": "web-abc", "resourceVersion": "13"}}
    assert t.is_foreign("MODIFIED", edited)  # someone wrote after us: resync
    assert not t.stale("default/web", [edited])
    t.deleted("default/web", edited)
    assert t.stale("default/web", [edited])
    assert not t.is_foreign("DELETED", edited)
    assert not t.stale("default/web", [])
    assert t.is_foreign("DELETED", edited)  # an unexpected deletion: resync
    t.wrote("default/web", created)
    now[0] = 31.0  # an echo that never comes does not block forever
    assert not t.stale("default/web", [])


def test_prefer_close_traffic_distribution_sets_zone_hints() -> None:
    service = svc(trafficDistribution="PreferClose")
    pods = [pod("a", "10.244.0.1"), pod("b", "10.244.0.2", node="n2"),
            pod("c", "10.244.0.3", ready=False)]
    eps = {e["targetRef"]["name"]: e
           for e in reconcile(service, pods, NODES, []).create[0]["endpoints"]}
    assert eps["a"]["hints"] == {"forZones": [{"name": "z1"}]}
    assert "hints" not in eps["b"] and "hints" not in eps["c"]  # no zone; not ready
    # dropping trafficDistribution removes the hints from an otherwise unchanged slice
    slices = store(reconcile(service, pods, NODES, []), [])
    assert reconcile(service, pods, NODES, slices).empty
    plan = reconcile(svc(), pods, NODES, slices)
    assert len(plan.update) == 1
    assert all("hints" not in e for e in plan.update[0]["endpoints"])
    # and adding it back puts them on again
    plain = store(plan, slices)
    plan = reconcile(service, pods, NODES, plain)
    assert len(plan.update) == 1
    # the topology-mode annotation takes precedence (its heuristic is not implemented)
    annotated = svc(trafficDistribution="PreferClose")
    annotated["metadata"]["annotations"] = {"service.kubernetes.io/topology-mode": "Auto"}
    created = reconcile(annotated, pods, NODES, []).create[0]
    assert all("hints" not in e for e in created["endpoints"])
