"""Pure Endpoints reconcile: subsets, readiness, ports, capacity, write decisions."""

from __future__ import annotations

from typing import Any

from test_endpointslice import pod, svc

from svcnet.controllers.endpoints import reconcile, repack, to_write

Obj = dict[str, Any]


def addr(ip: str, name: str, node: str = "n1") -> Obj:
    return {"ip": ip, "nodeName": node,
            "targetRef": {"kind": "Pod", "namespace": "default", "name": name,
                          "uid": f"uid-{name}"}}


def test_ready_and_not_ready_addresses_in_one_subset() -> None:
    pods = [pod("b", "10.244.0.2"), pod("a", "10.244.0.10"), pod("c", "10.244.0.3", ready=False)]
    ep = reconcile(svc(), pods)
    assert ep is not None
    assert ep["metadata"] == {"name": "web", "namespace": "default", "labels": {"team": "a"}}
    assert ep["subsets"] == [{
        "addresses": [addr("10.244.0.10", "a"), addr("10.244.0.2", "b")],  # byte order, as Go
        "notReadyAddresses": [addr("10.244.0.3", "c")],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]


def test_terminating_and_terminal_pods() -> None:
    pods = [pod("a", "10.244.0.1", deletionTimestamp="2025-01-01T00:05:00Z"),
            pod("b", "10.244.0.2", phase="Failed"), pod("c", None)]
    ep = reconcile(svc(), pods)
    assert ep is not None and "subsets" not in ep
    published = reconcile(svc(publishNotReadyAddresses=True),
                          pods + [pod("d", "10.244.0.4", ready=False)])
    assert published is not None
    assert [a["ip"] for a in published["subsets"][0]["addresses"]] == ["10.244.0.1", "10.244.0.4"]


def test_pods_with_different_ports_get_different_subsets() -> None:
    service = svc(ports=[{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "web"},
                         {"name": "metrics", "port": 9100, "protocol": "TCP", "targetPort": 9100}])
    a = pod("a", "10.244.0.1", ports=[{"name": "web", "containerPort": 8080, "protocol": "TCP"}])
    b = pod("b", "10.244.0.2", ports=[{"name": "web", "containerPort": 9090, "protocol": "TCP"}])
    lacking = pod("c", "10.244.0.3")
    ep = reconcile(service, [a, b, lacking])
    assert ep is not None
    subsets = ep["subsets"]
    assert [[(p["name"], p["port"]) for p in ss["ports"]] for ss in subsets] == [
        [("http", 8080)], [("http", 9090)], [("metrics", 9100)]]
    assert [[x["ip"] for x in ss["addresses"]] for ss in subsets] == [
        ["10.244.0.1"], ["10.244.0.2"], ["10.244.0.1", "10.244.0.2", "10.244.0.3"]]


def test_ports_shared_by_the_same_addresses_are_one_subset() -> None:
    service = svc(ports=[{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443},
                         {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}])
    ep = reconcile(service, [pod("a", "10.244.0.1"), pod("b", "10.244.0.2")])
    assert ep is not None and len(ep["subsets"]) == 1
    assert [p["port"] for p in ep["subsets"][0]["ports"]] == [8080, 8443]


def test_hostname_and_headless_without_ports() -> None:
    service = svc(clusterIP="None", ports=[])
    p = pod("a", "10.244.0.1", spec={"hostname": "db-0", "subdomain": "web"})
    ep = reconcile(service, [p])
    assert ep is not None
    assert ep["metadata"]["labels"]["service.kubernetes.io/headless"] == ""
    assert ep["subsets"] == [{"addresses": [dict(addr("10.244.0.1", "a"), hostname="db-0")]}]
    # a headful Service without ports gets no addresses at all
    headful = reconcile(svc(ports=[]), [p])
    assert headful is not None and "subsets" not in headful


def test_over_capacity_truncates_to_1000_and_annotates() -> None:
    pods = [pod(f"p{i}", f"10.{i // 65536}.{i // 256 % 256}.{i % 256}") for i in range(1100)]
    pods += [pod(f"u{i}", f"10.9.0.{i}", ready=False) for i in range(1, 20)]
    ep = reconcile(svc(), pods)
    assert ep is not None
    total = sum(len(ss.get("addresses", [])) + len(ss.get("notReadyAddresses", []))
                for ss in ep["subsets"])
    assert total == 1000 and "notReadyAddresses" not in ep["subsets"][0]
    assert ep["metadata"]["annotations"]["endpoints.kubernetes.io/over-capacity"] == "truncated"
    ep2 = reconcile(svc(), pods[:990] + pods[1100:])  # 990 ready + 19 unready: cut unready
    assert ep2 is not None
    assert len(ep2["subsets"][0]["addresses"]) == 990
    assert len(ep2["subsets"][0]["notReadyAddresses"]) == 10


def test_no_selector_or_external_name_is_left_alone() -> None:
    assert reconcile(svc(selector={}), [pod("a", "10.244.0.1")]) is None
    assert reconcile(svc(type="ExternalName"), [pod("a", "10.244.0.1")]) is None


def test_write_only_when_something_changed() -> None:
    pods = [pod("a", "10.244.0.1")]
    desired = reconcile(svc(), pods, trigger_time="2025-01-01T00:00:00Z")
    assert desired is not None
    created = to_write(None, desired)
    assert created is not None and created["metadata"]["annotations"] == {
        "endpoints.kubernetes.io/last-change-trigger-time": "2025-01-01T00:00:00Z"}
    current = dict(created, metadata=dict(created["metadata"], resourceVersion="7",
                                          annotations={"keep": "me"}))
    # the same subsets: no write, even though the trigger time differs
    again = reconcile(svc(), pods, trigger_time="2025-01-01T00:09:00Z")
    assert again is not None and to_write(current, again) is None
    # a resourceVersion in a targetRef is not a change
    current["subsets"][0]["addresses"][0]["targetRef"]["resourceVersion"] = "42"
    assert to_write(current, again) is None
    changed = reconcile(svc(), [pod("a", "10.244.0.1", ready=False)])
    assert changed is not None
    out = to_write(current, changed)
    assert out is not None and out["metadata"]["resourceVersion"] == "7"
    assert out["metadata"]["annotations"] == {"keep": "me"}
    assert out["subsets"][0]["notReadyAddresses"][0]["ip"] == "10.244.0.1"
    # a label change on the Service is copied
    relabelled = svc()
    relabelled["metadata"]["labels"] = {"team": "b"}
    desired2 = reconcile(relabelled, pods)
    assert desired2 is not None
    out2 = to_write(current, desired2)
    assert out2 is not None and out2["metadata"]["labels"] == {"team": "b"}


def test_repack_merges_and_not_ready_wins() -> None:
    a, b = addr("10.0.0.1", "a"), addr("10.0.0.2", "b")
    http = {"name": "http", "port": 80, "protocol": "TCP"}
    dns = {"name": "dns", "port": 53, "protocol": "UDP"}
    out = repack([{"addresses": [a], "ports": [http]}, {"addresses": [b], "ports": [http]},
                  {"notReadyAddresses": [a], "ports": [http]},
                  {"addresses": [a, b], "ports": [dns]}])
    assert out == [{"addresses": [a, b], "ports": [dns]},
                   {"addresses": [b], "notReadyAddresses": [a], "ports": [http]}]
