"""Server-side Table printers: columns and cells as kube-apiserver 1.32 returns them."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from svcnet.api import kinds
from svcnet.api.duration import age, human_duration, parse_time
from svcnet.api.kinds import Kind
from svcnet.api.printers import PRINTERS, format_label_selector, format_labels, table

NOW = datetime(2025, 1, 10, 12, 0, 0, tzinfo=timezone.utc)
CREATED = "2025-01-10T11:55:00Z"  # 5m before NOW


def kind(name: str) -> Kind:
    found = [k for k in kinds.KINDS if k.kind == name]
    assert found, name
    return found[0]


def meta(name: str = "x", **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": "default", "uid": "u-1", "resourceVersion": "7",
            "creationTimestamp": CREATED, **extra}


def cells(kind_name: str, obj: dict[str, Any]) -> list[Any]:
    t = table(kind(kind_name), [obj], NOW)
    assert len(t["rows"]) == 1
    row = t["rows"][0]["cells"]
    assert len(row) == len(t["columnDefinitions"])
    return row


def columns(kind_name: str) -> list[tuple[str, str, int]]:
    return [(c.name, c.type, c.priority) for c in PRINTERS[kind_name].columns]


# --- human_duration / age -----------------------------------------------------------------------

@pytest.mark.parametrize("seconds,expected", [
    (-5, "<invalid>"), (-2, "<invalid>"), (-1.5, "0s"), (-1, "0s"), (0, "0s"), (1, "1s"),
    (59, "59s"), (119, "119s"), (119.999, "119s"), (120, "2m"), (121, "2m1s"),
    (9 * 60 + 59, "9m59s"), (600, "10m"), (601, "10m"), (3 * 3600 - 1, "179m"),
    (3 * 3600, "3h"), (3 * 3600 + 60, "3h1m"), (7 * 3600 + 59 * 60, "7h59m"),
    (8 * 3600, "8h"), (47 * 3600, "47h"), (48 * 3600 - 1, "47h"), (48 * 3600, "2d"),
    (2 * 86400 + 3 * 3600, "2d3h"), (7 * 86400, "7d"), (7 * 86400 + 23 * 3600, "7d23h"),
    (8 * 86400, "8d"), (400 * 86400, "400d"), (729 * 86400, "729d"), (730 * 86400, "2y"),
    ((3 * 365 + 10) * 86400, "3y10d"), (8 * 365 * 86400 - 1, "7y364d"),
    (8 * 365 * 86400, "8y"), (20 * 365 * 86400 + 100 * 86400, "20y"),
])
def test_human_duration(seconds: float, expected: str) -> None:
    assert human_duration(seconds) == expected


def test_age_parses_rfc3339_and_handles_missing() -> None:
    assert age("2025-01-10T11:55:00Z", NOW) == "5m"
    assert age("2025-01-10T11:55:00.250Z", NOW) == "4m59s"
    assert age("2025-01-10T13:55:00+02:00", NOW) == "5m"
    assert age(None, NOW) == "<unknown>"
    assert age("", NOW) == "<unknown>"
    assert age("0001-01-01T00:00:00Z", NOW) == "<unknown>"
    assert age("not a time", NOW) == "<unknown>"
    assert age("2025-01-10T12:00:10Z", NOW) == "<invalid>"  # clock skew beyond 1s
    assert age("2025-01-10T11:55:00Z", NOW.replace(tzinfo=None)) == "5m"  # naive now is UTC
    assert parse_time("2025-01-01T00:00:00Z") == datetime(2025, 1, 1, tzinfo=timezone.utc)


# --- Table envelope -----------------------------------------------------------------------------

def test_table_envelope_with_partial_object_metadata() -> None:
    svc = {"metadata": meta("web", labels={"app": "web"}),
           "spec": {"type": "ClusterIP", "clusterIPs": ["10.43.0.10"],
                    "ports": [{"port": 80, "protocol": "TCP"}]}}
    t = table(kind("Service"), [svc], NOW, list_meta={"resourceVersion": "123", "continue": ""})
    assert t["kind"] == "Table" and t["apiVersion"] == "meta.k8s.io/v1"
    assert t["metadata"] == {"resourceVersion": "123", "continue": ""}
    assert t["columnDefinitions"][0] == {
        "name": "Name", "type": "string", "format": "name",
        "description": t["columnDefinitions"][0]["description"], "priority": 0}
    assert all(set(c) == {"name", "type", "format", "description", "priority"}
               for c in t["columnDefinitions"])
    assert t["rows"][0]["object"] == {"kind": "PartialObjectMetadata",
                                      "apiVersion": "meta.k8s.io/v1", "metadata": svc["metadata"]}
    assert "conditions" not in t["rows"][0]


def test_table_include_object_variants_and_no_headers() -> None:
    cm = {"metadata": meta("cfg"), "data": {"a": "1"}}
    full = table(kind("ConfigMap"), [cm], NOW, include_object="Object")
    assert full["rows"][0]["object"] == {"apiVersion": "v1", "kind": "ConfigMap", **cm}
    none = table(kind("ConfigMap"), [cm], NOW, include_object="None")
    assert none["rows"][0]["object"] is None
    assert table(kind("ConfigMap"), [cm], NOW, include_object="")["rows"][0]["object"][
        "kind"] == "PartialObjectMetadata"
    bare = table(kind("ConfigMap"), [cm], NOW, no_headers=True)
    assert bare["columnDefinitions"] == [] and bare["metadata"] == {}
    assert bare["rows"][0]["cells"] == ["cfg", 1, "5m"]
    with pytest.raises(ValueError):
        table(kind("ConfigMap"), [cm], NOW, include_object="Everything")


def test_empty_list_still_has_columns() -> None:
    t = table(kind("Pod"), [], NOW)
    assert t["rows"] == [] and len(t["columnDefinitions"]) == 9


def test_unknown_kind_gets_default_name_created_at_table() -> None:
    lease = Kind("coordination.k8s.io", "v1", "Lease", "leases", "lease", True, "V1Lease")
    t = table(lease, [{"metadata": meta("l1", creationTimestamp="2025-01-01T02:03:04.5+01:00")},
                      {"metadata": {"name": "l2"}}], NOW)
    assert [(c["name"], c["type"], c["format"]) for c in t["columnDefinitions"]] == [
        ("Name", "string", "name"), ("Created At", "date", "")]
    assert t["rows"][0]["cells"] == ["l1", "2025-01-01T01:03:04Z"]
    assert t["rows"][1]["cells"] == ["l2", "0001-01-01T00:00:00Z"]


def test_every_registered_kind_has_a_printer() -> None:
    assert {k.kind for k in kinds.KINDS} <= set(PRINTERS)


@pytest.mark.parametrize("kind_name", sorted(PRINTERS))
def test_minimal_object_prints_one_cell_per_column(kind_name: str) -> None:
    row = cells(kind_name, {"metadata": {"name": "m"}})
    assert all(isinstance(c, (str, int)) for c in row)


def test_column_catalogue() -> None:
    assert columns("Service") == [
        ("Name", "string", 0), ("Type", "string", 0), ("Cluster-IP", "string", 0),
        ("External-IP", "string", 0), ("Port(s)", "string", 0), ("Age", "string", 0),
        ("Selector", "string", 1)]
    assert columns("Pod") == [
        ("Name", "string", 0), ("Ready", "string", 0), ("Status", "string", 0),
        ("Restarts", "string", 0), ("Age", "string", 0), ("IP", "string", 1),
        ("Node", "string", 1), ("Nominated Node", "string", 1), ("Readiness Gates", "string", 1)]
    assert [c[0] for c in columns("Event")] == [
        "Last Seen", "Type", "Reason", "Object", "Subobject", "Source", "Message", "First Seen",
        "Count", "Name"]
    assert [c[0] for c in columns("Event") if c[2] == 0] == [
        "Last Seen", "Type", "Reason", "Object", "Message"]
    assert columns("Deployment") == [
        ("Name", "string", 0), ("Ready", "string", 0), ("Up-to-date", "string", 0),
        ("Available", "string", 0), ("Age", "string", 0), ("Containers", "string", 1),
        ("Images", "string", 1), ("Selector", "string", 1)]
    assert columns("ReplicaSet")[1:4] == [
        ("Desired", "integer", 0), ("Current", "integer", 0), ("Ready", "integer", 0)]
    assert [c[0] for c in columns("Node")] == [
        "Name", "Status", "Roles", "Age", "Version", "Internal-IP", "External-IP", "OS-Image",
        "Kernel-Version", "Container-Runtime"]
    assert [c[0] for c in columns("EndpointSlice")] == [
        "Name", "AddressType", "Ports", "Endpoints", "Age"]
    assert [c[0] for c in columns("Ingress")] == [
        "Name", "Class", "Hosts", "Address", "Ports", "Age"]
    assert [c[0] for c in columns("IngressClass")] == ["Name", "Controller", "Parameters", "Age"]
    assert [c[0] for c in columns("NetworkPolicy")] == ["Name", "Pod-Selector", "Age"]
    assert [c[0] for c in columns("Secret")] == ["Name", "Type", "Data", "Age"]
    assert [c[0] for c in columns("Namespace")] == ["Name", "Status", "Age"]
    assert [c[0] for c in columns("Endpoints")] == ["Name", "Endpoints", "Age"]
    for printer in PRINTERS.values():
        names = [c for c in printer.columns if c.format == "name"]
        assert len(names) == 1 and all(c.description for c in printer.columns)


# --- selectors ----------------------------------------------------------------------------------

def test_format_labels() -> None:
    assert format_labels({"tier": "fe", "app": "web"}) == "app=web,tier=fe"
    assert format_labels({}) == "<none>" and format_labels(None) == "<none>"


@pytest.mark.parametrize("selector,expected", [
    (None, "<none>"), ({}, "<none>"), ({"matchLabels": {}}, "<none>"),
    ({"matchLabels": {"b": "2", "a": "1"}}, "a=1,b=2"),
    ({"matchLabels": {"app": "web"},
      "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}]},
     "app=web,tier in (a,b)"),
    ({"matchLabels": {"z": "1"},
      "matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["x"]},
                           {"key": "m", "operator": "Exists"},
                           {"key": "c", "operator": "DoesNotExist"}]},
     "a notin (x),!c,m,z=1"),
    ({"matchExpressions": [{"key": "a", "operator": "Bogus", "values": ["x"]}]}, "<error>"),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}, "<error>"),
    ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}, "<error>"),
])
def test_format_label_selector(selector: dict[str, Any] | None, expected: str) -> None:
    assert format_label_selector(selector) == expected


# --- Service ------------------------------------------------------------------------------------

def service(spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": meta("web"), "spec": spec, "status": status or {}}


def test_service_nodeport_multi_port_with_selector() -> None:
    svc = service({"type": "NodePort", "clusterIP": "10.43.0.10", "clusterIPs": ["10.43.0.10"],
                   "ports": [{"port": 80, "nodePort": 30647, "protocol": "TCP"},
                             {"port": 53, "nodePort": 31000, "protocol": "UDP"}],
                   "selector": {"tier": "fe", "app": "web"}})
    assert cells("Service", svc) == ["web", "NodePort", "10.43.0.10", "<none>",
                                     "80:30647/TCP,53:31000/UDP", "5m", "app=web,tier=fe"]


def test_service_cluster_ip_ports_and_external_ips() -> None:
    svc = service({"type": "ClusterIP", "clusterIPs": ["10.43.0.20", "fd00::20"],
                   "externalIPs": ["1.2.3.4", "5.6.7.8"],
                   "ports": [{"port": 80, "protocol": "TCP"}, {"port": 443, "protocol": "TCP"}]})
    assert cells("Service", svc) == ["web", "ClusterIP", "10.43.0.20", "1.2.3.4,5.6.7.8",
                                     "80/TCP,443/TCP", "5m", "<none>"]


def test_service_headless_shows_none_and_no_ports() -> None:
    svc = service({"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"],
                   "selector": {"app": "db"}})
    assert cells("Service", svc) == ["web", "ClusterIP", "None", "<none>", "<none>", "5m",
                                     "app=db"]


def test_service_external_name() -> None:
    svc = service({"type": "ExternalName", "externalName": "db.example.com"})
    assert cells("Service", svc) == ["web", "ExternalName", "<none>", "db.example.com",
                                     "<none>", "5m", "<none>"]


def test_service_load_balancer_pending() -> None:
    svc = service({"type": "LoadBalancer", "clusterIPs": ["10.43.0.30"],
                   "ports": [{"port": 443, "nodePort": 32443, "protocol": "TCP"}]})
    assert cells("Service", svc)[3:5] == ["<pending>", "443:32443/TCP"]


def test_service_load_balancer_ingress_sorted_unique_not_clipped() -> None:
    svc = service({"type": "LoadBalancer", "clusterIPs": ["10.43.0.30"]},
                  {"loadBalancer": {"ingress": [
                      {"ip": "203.0.113.20"}, {"hostname": "lb.example.com"},
                      {"ip": "203.0.113.10", "hostname": "ignored"}, {"ip": "203.0.113.20"}]}})
    assert cells("Service", svc)[3] == "203.0.113.10,203.0.113.20,lb.example.com"


def test_service_load_balancer_ingress_plus_external_ips() -> None:
    svc = service({"type": "LoadBalancer", "externalIPs": ["198.51.100.1"]},
                  {"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}})
    assert cells("Service", svc)[3] == "203.0.113.10,198.51.100.1"
    no_lb = service({"type": "LoadBalancer", "externalIPs": ["198.51.100.1"]})
    assert cells("Service", no_lb)[3] == "198.51.100.1"


def test_service_without_type_is_unknown_external_ip() -> None:
    assert cells("Service", service({}))[1:4] == ["", "<none>", "<unknown>"]


# --- Endpoints / EndpointSlice ------------------------------------------------------------------

def endpoints(subsets: list[dict[str, Any]] | None) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": meta("web")}
    if subsets is not None:
        obj["subsets"] = subsets
    return obj


def test_endpoints_overflow_after_three() -> None:
    ips = [{"ip": f"10.0.0.{i}"} for i in range(1, 6)]
    ep = endpoints([{"addresses": ips, "ports": [{"port": 80, "protocol": "TCP"}]}])
    assert cells("Endpoints", ep) == [
        "web", "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 2 more...", "5m"]


def test_endpoints_ports_outer_addresses_inner_and_ipv6() -> None:
    ep = endpoints([{"addresses": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}],
                     "ports": [{"port": 80}, {"port": 443}]}])
    assert cells("Endpoints", ep)[1] == "10.0.0.1:80,[fd00::1]:80,10.0.0.1:443 + 1 more..."


def test_endpoints_small_headless_empty_and_not_ready() -> None:
    two = endpoints([{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
                      "ports": [{"port": 8080}]}])
    assert cells("Endpoints", two)[1] == "10.0.0.1:8080,10.0.0.2:8080"
    headless = endpoints([{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}]}])
    assert cells("Endpoints", headless)[1] == "10.0.0.1,10.0.0.2"
    assert cells("Endpoints", endpoints(None))[1] == "<none>"
    assert cells("Endpoints", endpoints([]))[1] == "<none>"
    not_ready = endpoints([{"notReadyAddresses": [{"ip": "10.0.0.9"}], "ports": [{"port": 80}]}])
    assert cells("Endpoints", not_ready)[1] == ""


def test_endpoints_overflow_across_subsets() -> None:
    ep = endpoints([{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
                     "ports": [{"port": 80}]},
                    {"addresses": [{"ip": "10.0.1.1"}, {"ip": "10.0.1.2"}],
                     "ports": [{"port": 81}]}])
    assert cells("Endpoints", ep)[1] == "10.0.0.1:80,10.0.0.2:80,10.0.1.1:81 + 1 more..."


def test_endpointslice_cells() -> None:
    es = {"metadata": meta("web-abc12"), "addressType": "IPv4",
          "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
          "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}]}
    assert cells("EndpointSlice", es) == ["web-abc12", "IPv4", "80", "10.0.0.1,10.0.0.2", "5m"]


def test_endpointslice_unset_wildcard_and_overflow() -> None:
    empty = {"metadata": meta("e"), "addressType": "IPv4", "endpoints": []}
    assert cells("EndpointSlice", empty)[2:4] == ["<unset>", "<unset>"]
    many = {"metadata": meta("m"), "addressType": "IPv6",
            "ports": [{"port": 1}, {"name": "dns"}, {}, {"port": 4}, {"port": 5}],
            "endpoints": [{"addresses": [f"fd00::{i}"]} for i in range(1, 5)]}
    assert cells("EndpointSlice", many)[1:4] == [
        "IPv6", "1,dns,* + 2 more...", "fd00::1,fd00::2,fd00::3 + 1 more..."]


# --- Pod ----------------------------------------------------------------------------------------

def cstatus(name: str = "app", *, ready: bool = False, restarts: int = 0,
            running: bool = False, waiting: str | None = None,
            terminated: dict[str, Any] | None = None, last_finished: str | None = None,
            started: bool | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {}
    if running:
        state["running"] = {"startedAt": "2025-01-10T11:56:00Z"}
    if waiting is not None:
        state["waiting"] = {"reason": waiting}
    if terminated is not None:
        state["terminated"] = terminated
    out: dict[str, Any] = {"name": name, "ready": ready, "restartCount": restarts,
                           "state": state, "image": "nginx"}
    if last_finished is not None:
        out["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error",
                                           "finishedAt": last_finished}}
    if started is not None:
        out["started"] = started
    return out


def pod(phase: str = "Running", statuses: list[dict[str, Any]] | None = None, *,
        containers: int = 1, init: list[dict[str, Any]] | None = None,
        init_statuses: list[dict[str, Any]] | None = None,
        conditions: list[dict[str, Any]] | None = None, **status: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": f"c{i}", "image": "nginx"}
                                           for i in range(containers)]}
    if init is not None:
        spec["initContainers"] = init
    st: dict[str, Any] = {"phase": phase, **status}
    if statuses is not None:
        st["containerStatuses"] = statuses
    if init_statuses is not None:
        st["initContainerStatuses"] = init_statuses
    if conditions is not None:
        st["conditions"] = conditions
    return {"metadata": meta("web-0"), "spec": spec, "status": st}


def cond(ctype: str, status: str = "True", reason: str = "") -> dict[str, Any]:
    return {"type": ctype, "status": status, "reason": reason}


def test_pod_running_ready_with_wide_cells() -> None:
    p = pod(statuses=[cstatus(ready=True, running=True)], podIP="10.42.0.5",
            podIPs=[{"ip": "10.42.0.5"}], conditions=[cond("Ready")])
    p["spec"]["nodeName"] = "node-1"
    assert cells("Pod", p) == ["web-0", "1/1", "Running", "0", "5m", "10.42.0.5", "node-1",
                               "<none>", "<none>"]


def test_pod_pending_unscheduled() -> None:
    assert cells("Pod", pod("Pending")) == ["web-0", "0/1", "Pending", "0", "5m", "<none>",
                                            "<none>", "<none>", "<none>"]


def test_pod_container_creating() -> None:
    p = pod("Pending", [cstatus(waiting="ContainerCreating")])
    assert cells("Pod", p)[1:4] == ["0/1", "ContainerCreating", "0"]


def test_pod_crash_loop_back_off_with_restart_age() -> None:
    p = pod(statuses=[cstatus(waiting="CrashLoopBackOff", restarts=3,
                              last_finished="2025-01-10T11:55:00Z")])
    assert cells("Pod", p)[1:4] == ["0/1", "CrashLoopBackOff", "3 (5m ago)"]


def test_pod_restarts_use_latest_finished_at_across_containers() -> None:
    p = pod(statuses=[cstatus("a", ready=True, running=True, restarts=1,
                              last_finished="2025-01-10T10:00:00Z"),
                      cstatus("b", ready=True, running=True, restarts=2,
                              last_finished="2025-01-10T11:58:30Z")],
            containers=2, conditions=[cond("Ready")])
    assert cells("Pod", p)[1:4] == ["2/2", "Running", "3 (90s ago)"]


def test_pod_restarts_without_last_state_is_plain_number() -> None:
    p = pod(statuses=[cstatus(ready=True, running=True, restarts=4)])
    assert cells("Pod", p)[3] == "4"


def test_pod_completed_and_row_condition() -> None:
    p = pod("Succeeded", [cstatus(terminated={"exitCode": 0, "reason": "Completed"})])
    t = table(kind("Pod"), [p], NOW)
    assert t["rows"][0]["cells"][1:3] == ["0/1", "Completed"]
    assert t["rows"][0]["conditions"] == [{"type": "Completed", "status": "True",
                                           "reason": "Succeeded",
                                           "message": "The pod has completed successfully."}]
    failed = pod("Failed", [cstatus(terminated={"exitCode": 1, "reason": "Error"})])
    row = table(kind("Pod"), [failed], NOW)["rows"][0]
    assert row["cells"][2] == "Error" and row["conditions"][0]["reason"] == "Failed"
    assert list(row) == ["cells", "conditions", "object"]


def test_pod_terminated_without_reason_prints_exit_code_or_signal() -> None:
    p = pod(statuses=[cstatus(terminated={"exitCode": 137})])
    assert cells("Pod", p)[2] == "ExitCode:137"
    p = pod(statuses=[cstatus(terminated={"exitCode": 0, "signal": 9})])
    assert cells("Pod", p)[2] == "Signal:9"


def test_pod_first_container_status_has_last_word() -> None:
    p = pod(statuses=[cstatus("a", waiting="ImagePullBackOff"),
                      cstatus("b", waiting="CrashLoopBackOff")], containers=2)
    assert cells("Pod", p)[2] == "ImagePullBackOff"


def test_pod_completed_with_running_container_is_running_or_not_ready() -> None:
    statuses = [cstatus("a", terminated={"exitCode": 0, "reason": "Completed"}),
                cstatus("b", ready=True, running=True)]
    ready = pod(statuses=statuses, containers=2, conditions=[cond("Ready")])
    assert cells("Pod", ready)[1:3] == ["1/2", "Running"]
    not_ready = pod(statuses=statuses, containers=2, conditions=[cond("Ready", "False")])
    assert cells("Pod", not_ready)[1:3] == ["1/2", "NotReady"]


def test_pod_running_but_not_ready_container() -> None:
    p = pod(statuses=[cstatus(ready=False, running=True)], conditions=[cond("Ready", "False")])
    assert cells("Pod", p)[1:3] == ["0/1", "Running"]


def test_pod_terminating() -> None:
    p = pod(statuses=[cstatus(ready=True, running=True)])
    p["metadata"]["deletionTimestamp"] = "2025-01-10T11:59:00Z"
    assert cells("Pod", p)[2] == "Terminating"
    done = pod("Succeeded", [cstatus(terminated={"exitCode": 0, "reason": "Completed"})])
    done["metadata"]["deletionTimestamp"] = "2025-01-10T11:59:00Z"
    assert cells("Pod", done)[2] == "Completed"
    lost = pod(reason="NodeLost")
    lost["metadata"]["deletionTimestamp"] = "2025-01-10T11:59:00Z"
    assert cells("Pod", lost)[2] == "Unknown"


def test_pod_status_reason_and_scheduling_gated() -> None:
    assert cells("Pod", pod("Failed", reason="Evicted"))[2] == "Evicted"
    gated = pod("Pending", conditions=[cond("PodScheduled", "False", "SchedulingGated")])
    assert cells("Pod", gated)[2] == "SchedulingGated"


INIT = [{"name": "init", "image": "busybox"}]


def test_pod_init_running_is_init_0_of_1() -> None:
    p = pod("Pending", [cstatus(waiting="PodInitializing")], init=INIT,
            init_statuses=[cstatus("init", running=True)])
    assert cells("Pod", p)[1:4] == ["0/1", "Init:0/1", "0"]


def test_pod_init_waiting_pod_initializing_is_counted_as_progress() -> None:
    init = INIT + [{"name": "init2", "image": "busybox"}]
    p = pod("Pending", init=init, init_statuses=[
        cstatus("init", terminated={"exitCode": 0, "reason": "Completed"}),
        cstatus("init2", waiting="PodInitializing")])
    assert cells("Pod", p)[2] == "Init:1/2"


def test_pod_init_error_and_crash_loop() -> None:
    err = pod("Pending", init=INIT, init_statuses=[
        cstatus("init", terminated={"exitCode": 1, "reason": "Error"})])
    assert cells("Pod", err)[2] == "Init:Error"
    crash = pod("Pending", [cstatus(waiting="PodInitializing")], init=INIT, init_statuses=[
        cstatus("init", waiting="CrashLoopBackOff", restarts=4,
                last_finished="2025-01-10T11:58:00Z")])
    assert cells("Pod", crash)[1:4] == ["0/1", "Init:CrashLoopBackOff", "4 (2m ago)"]
    code = pod("Pending", init=INIT, init_statuses=[cstatus("init", terminated={"exitCode": 2})])
    assert cells("Pod", code)[2] == "Init:ExitCode:2"
    sig = pod("Pending", init=INIT, init_statuses=[
        cstatus("init", terminated={"exitCode": 0, "signal": 15, "reason": ""})])
    assert cells("Pod", sig)[2] == "Pending"  # exit code 0 counts as finished, signal or not


def test_pod_init_done_then_app_containers_decide() -> None:
    p = pod(statuses=[cstatus(ready=True, running=True, restarts=1,
                              last_finished="2025-01-10T11:00:00Z")], init=INIT,
            init_statuses=[cstatus("init", restarts=2,
                                   terminated={"exitCode": 0, "reason": "Completed"})],
            conditions=[cond("Initialized"), cond("Ready")])
    # init container restarts only count while initializing
    assert cells("Pod", p)[1:4] == ["1/1", "Running", "1 (60m ago)"]


def test_pod_sidecar_counts_in_ready_and_restarts() -> None:
    init = [{"name": "proxy", "image": "envoy", "restartPolicy": "Always"}]
    p = pod(statuses=[cstatus(ready=True, running=True)], init=init,
            init_statuses=[cstatus("proxy", ready=True, running=True, started=True, restarts=1,
                                   last_finished="2025-01-10T11:57:00Z")],
            conditions=[cond("Initialized"), cond("Ready")])
    assert cells("Pod", p)[1:4] == ["2/2", "Running", "1 (3m ago)"]


def test_pod_readiness_gates_and_nominated_node_and_pod_ip_fallback() -> None:
    p = pod("Pending", podIPs=[{"ip": "10.42.0.9"}, {"ip": "fd00::9"}],
            nominatedNodeName="node-2",
            conditions=[cond("example.com/lb"), cond("example.com/dns", "False")])
    p["spec"]["readinessGates"] = [{"conditionType": "example.com/lb"},
                                   {"conditionType": "example.com/dns"},
                                   {"conditionType": "example.com/missing"}]
    assert cells("Pod", p)[5:] == ["10.42.0.9", "<none>", "node-2", "1/3"]


# --- workloads ----------------------------------------------------------------------------------

TEMPLATE = {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27"},
                                    {"name": "log", "image": "busybox"}]}}


def test_deployment_cells() -> None:
    d = {"metadata": meta("web"),
         "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                  "template": TEMPLATE},
         "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3,
                    "availableReplicas": 2}}
    assert cells("Deployment", d) == ["web", "2/3", 3, 2, "5m", "web,log", "nginx:1.27,busybox",
                                      "app=web"]


def test_deployment_fresh_and_expression_selector() -> None:
    d = {"metadata": meta("api"),
         "spec": {"selector": {"matchLabels": {"app": "api"}, "matchExpressions": [
             {"key": "track", "operator": "NotIn", "values": ["canary"]}]},
             "template": {"spec": {"containers": [{"name": "api", "image": "api:1"}]}}}}
    assert cells("Deployment", d) == ["api", "0/1", 0, 0, "5m", "api", "api:1",
                                      "app=api,track notin (canary)"]
    d["spec"]["replicas"] = 0
    assert cells("Deployment", d)[1] == "0/0"


def test_replicaset_cells() -> None:
    rs = {"metadata": meta("web-7d9f8"),
          "spec": {"replicas": 3, "selector": {"matchLabels": {
              "app": "web", "pod-template-hash": "7d9f8"}}, "template": TEMPLATE},
          "status": {"replicas": 3, "readyReplicas": 1}}
    assert cells("ReplicaSet", rs) == ["web-7d9f8", 3, 3, 1, "5m", "web,log",
                                       "nginx:1.27,busybox", "app=web,pod-template-hash=7d9f8"]
    rs["spec"].pop("selector")
    assert cells("ReplicaSet", rs)[-1] == "<none>"


# --- cluster objects ----------------------------------------------------------------------------

def node(conditions: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "node-1", "creationTimestamp": "2024-12-10T12:00:00Z",
                         "labels": {"node-role.kubernetes.io/control-plane": "",
                                    "node-role.kubernetes.io/master": "true",
                                    "kubernetes.io/hostname": "node-1"}},
            "spec": spec,
            "status": {"conditions": conditions,
                       "addresses": [{"type": "Hostname", "address": "node-1"},
                                     {"type": "InternalIP", "address": "192.168.1.10"},
                                     {"type": "InternalIP", "address": "fd00::10"}],
                       "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Debian 12",
                                    "kernelVersion": "6.1.0-18-amd64",
                                    "containerRuntimeVersion": "containerd://1.7.24"}}}


def test_node_ready_with_roles_and_wide() -> None:
    n = node([cond("MemoryPressure", "False"), cond("Ready")])
    assert cells("Node", n) == ["node-1", "Ready", "control-plane,master", "31d", "v1.32.0",
                                "192.168.1.10", "<none>", "Debian 12", "6.1.0-18-amd64",
                                "containerd://1.7.24"]


def test_node_status_variants() -> None:
    assert cells("Node", node([cond("Ready", "False")]))[1] == "NotReady"
    assert cells("Node", node([cond("Ready", "Unknown")]))[1] == "NotReady"
    assert cells("Node", node([]))[1] == "Unknown"
    assert cells("Node", node([cond("Ready")], unschedulable=True))[1] == (
        "Ready,SchedulingDisabled")
    assert cells("Node", node([], unschedulable=True))[1] == "Unknown,SchedulingDisabled"


def test_node_roles_from_legacy_label_and_missing_info() -> None:
    n = {"metadata": {"name": "w", "labels": {"kubernetes.io/role": "worker",
                                              "node-role.kubernetes.io/": ""}},
         "status": {"addresses": [{"type": "ExternalIP", "address": "203.0.113.5"}]}}
    assert cells("Node", n) == ["w", "Unknown", "worker", "<unknown>", "", "<none>",
                                "203.0.113.5", "<unknown>", "<unknown>", "<unknown>"]
    assert cells("Node", {"metadata": {"name": "bare"}})[2] == "<none>"


def test_namespace_cells() -> None:
    ns = {"metadata": {"name": "kube-system", "creationTimestamp": "2025-01-07T09:00:00Z"},
          "status": {"phase": "Active"}}
    assert cells("Namespace", ns) == ["kube-system", "Active", "3d3h"]


# --- Event --------------------------------------------------------------------------------------

def test_event_core_api_cells() -> None:
    ev = {"metadata": meta("web-0.17a"), "type": "Warning", "reason": "BackOff",
          "message": "Back-off restarting failed container\n",
          "involvedObject": {"kind": "Pod", "name": "web-0", "namespace": "default",
                             "fieldPath": "spec.containers{app}"},
          "source": {"component": "kubelet", "host": "node-1"},
          "firstTimestamp": "2025-01-10T11:00:00Z", "lastTimestamp": "2025-01-10T11:58:00Z",
          "count": 12}
    assert cells("Event", ev) == ["2m", "Warning", "BackOff", "pod/web-0",
                                  "spec.containers{app}", "kubelet, node-1",
                                  "Back-off restarting failed container", "60m", 12,
                                  "web-0.17a"]


def test_event_new_api_singleton_and_series() -> None:
    ev = {"metadata": meta("e1"), "type": "Normal", "reason": "Scheduled", "message": "ok",
          "involvedObject": {"kind": "Node"}, "eventTime": "2025-01-10T11:59:30.123456Z",
          "reportingController": "default-scheduler", "reportingInstance": "sched-1"}
    assert cells("Event", ev) == ["29s", "Normal", "Scheduled", "node", "",
                                  "default-scheduler, sched-1", "ok", "29s", 1, "e1"]
    ev["series"] = {"count": 5, "lastObservedTime": "2025-01-10T11:59:50.000000Z"}
    ev.pop("reportingInstance")
    row = cells("Event", ev)
    assert (row[0], row[5], row[7], row[8]) == ("10s", "default-scheduler", "29s", 5)


def test_event_without_times() -> None:
    ev = {"metadata": meta("e2"), "involvedObject": {"kind": "Service", "name": "web"}}
    row = cells("Event", ev)
    assert (row[0], row[3], row[7], row[8]) == ("<unknown>", "service/web", "<unknown>", 1)


# --- config -------------------------------------------------------------------------------------

def test_configmap_and_secret_counts() -> None:
    cm = {"metadata": meta("cfg"), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}
    assert cells("ConfigMap", cm) == ["cfg", 3, "5m"]
    assert cells("ConfigMap", {"metadata": meta("empty")}) == ["empty", 0, "5m"]
    sec = {"metadata": meta("tls"), "type": "kubernetes.io/tls",
           "data": {"tls.crt": "Zm9v", "tls.key": "YmFy"}}
    assert cells("Secret", sec) == ["tls", "kubernetes.io/tls", 2, "5m"]
    assert cells("Secret", {"metadata": meta("o"), "type": "Opaque"}) == ["o", "Opaque", 0, "5m"]


# --- networking ---------------------------------------------------------------------------------

def test_ingress_cells() -> None:
    ing = {"metadata": meta("web"),
           "spec": {"ingressClassName": "nginx",
                    "rules": [{"host": "a.example.com"}, {"host": "b.example.com"}],
                    "tls": [{"hosts": ["a.example.com"], "secretName": "tls"}]},
           "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"},
                                                   {"hostname": "lb.example.com"}]}}}
    assert cells("Ingress", ing) == ["web", "nginx", "a.example.com,b.example.com",
                                     "203.0.113.9,lb.example.com", "80, 443", "5m"]


def test_ingress_defaults_and_host_overflow() -> None:
    bare = {"metadata": meta("b"), "spec": {"defaultBackend": {"service": {"name": "web"}}}}
    assert cells("Ingress", bare) == ["b", "<none>", "*", "", "80", "5m"]
    rules = [{"host": f"h{i}.example.com"} for i in range(1, 6)]
    many = {"metadata": meta("m"), "spec": {"rules": [{"http": {}}] + rules}}
    assert cells("Ingress", many)[2] == (
        "h1.example.com,h2.example.com,h3.example.com + 3 more...")


def test_ingressclass_cells() -> None:
    ic = {"metadata": meta("nginx"), "spec": {
        "controller": "k8s.io/ingress-nginx",
        "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters",
                       "name": "external-lb"}}}
    assert cells("IngressClass", ic) == [
        "nginx", "k8s.io/ingress-nginx", "IngressParameters.k8s.example.com/external-lb", "5m"]
    ic["spec"]["parameters"] = {"kind": "ConfigMap", "name": "cfg"}
    assert cells("IngressClass", ic)[2] == "ConfigMap/cfg"
    ic["spec"].pop("parameters")
    assert cells("IngressClass", ic)[2] == "<none>"


def test_networkpolicy_cells() -> None:
    np = {"metadata": meta("deny"), "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
    assert cells("NetworkPolicy", np) == ["deny", "<none>", "5m"]
    np["spec"]["podSelector"] = {"matchLabels": {"role": "db"}, "matchExpressions": [
        {"key": "env", "operator": "In", "values": ["prod", "dev"]}]}
    assert cells("NetworkPolicy", np)[1] == "env in (dev,prod),role=db"
