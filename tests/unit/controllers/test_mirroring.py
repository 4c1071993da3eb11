"""Pure mirroring reconcile: hand-made Endpoints -> EndpointSlices."""

from __future__ import annotations

from typing import Any

from test_endpointslice import store, svc

from svcnet.controllers.mirroring import CONTROLLER_NAME, reconcile, should_mirror

Obj = dict[str, Any]


def endpoints(subsets: list[Obj], labels: dict[str, str] | None = None,
              annotations: dict[str, str] | None = None) -> Obj:
    meta: Obj = {"name": "db", "namespace": "default", "uid": "uid-ep-db"}
    if labels is not None:
        meta["labels"] = labels
    if annotations is not None:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": meta, "subsets": subsets}


PORT = {"name": "pg", "port": 5432, "protocol": "TCP"}
SERVICE = svc("db", selector={})


def test_mirrors_ready_and_not_ready_addresses() -> None:
    ep = endpoints([{"addresses": [{"ip": "192.0.2.10", "nodeName": "n1"}],
                     "notReadyAddresses": [{"ip": "192.0.2.11", "hostname": "db-1"}],
                     "ports": [PORT]}],
                   labels={"env": "prod"},
                   annotations={"note": "x",
                                "endpoints.kubernetes.io/last-change-trigger-time": "t",
                                "kubectl.kubernetes.io/last-applied-configuration": "{}"})
    plan = reconcile(ep, SERVICE, [])
    assert len(plan.create) == 1 and not plan.update and not plan.delete
    sl = plan.create[0]
    assert sl["addressType"] == "IPv4" and sl["ports"] == [
        {"name": "pg", "protocol": "TCP", "port": 5432}]
    assert sl["endpoints"] == [
        {"addresses": ["192.0.2.10"], "conditions": {"ready": True}, "nodeName": "n1"},
        {"addresses": ["192.0.2.11"], "conditions": {"ready": False}, "hostname": "db-1"}]
    meta = sl["metadata"]
    assert meta["generateName"] == "db-"
    assert meta["labels"] == {"env": "prod", "kubernetes.io/service-name": "db",
                              "endpointslice.kubernetes.io/managed-by": CONTROLLER_NAME}
    assert meta["annotations"] == {"note": "x"}
    assert meta["ownerReferences"] == [{"apiVersion": "v1", "kind": "Endpoints", "name": "db",
                                        "uid": "uid-ep-db", "controller": True,
                                        "blockOwnerDeletion": True}]


def test_unchanged_endpoints_mean_no_writes_and_changes_update_in_place() -> None:
    ep = endpoints([{"addresses": [{"ip": "192.0.2.10"}], "ports": [PORT]}])
    slices = store(reconcile(ep, SERVICE, []), [])
    assert reconcile(ep, SERVICE, slices).empty
    ep["subsets"][0]["addresses"].append({"ip": "192.0.2.12"})
    plan = reconcile(ep, SERVICE, slices)
    assert not plan.create and not plan.delete and len(plan.update) == 1
    assert plan.update[0]["metadata"]["name"] == slices[0]["metadata"]["name"]
    assert len(plan.update[0]["endpoints"]) == 2
    # a label change on the Endpoints is copied too
    ep["metadata"]["labels"] = {"tier": "db"}
    slices = store(plan, slices)
    plan = reconcile(ep, SERVICE, slices)
    assert len(plan.update) == 1 and plan.update[0]["metadata"]["labels"]["tier"] == "db"


def test_port_change_recycles_the_slice() -> None:
    ep = endpoints([{"addresses": [{"ip": "192.0.2.10"}], "ports": [PORT]}])
    slices = store(reconcile(ep, SERVICE, []), [])
    ep["subsets"][0]["ports"] = [dict(PORT, port=6432)]
    plan = reconcile(ep, SERVICE, slices)
    assert not plan.create and not plan.delete
    assert plan.update[0]["metadata"]["name"] == slices[0]["metadata"]["name"]
    assert plan.update[0]["ports"][0]["port"] == 6432


def test_ipv6_and_invalid_addresses() -> None:
    ep = endpoints([{"addresses": [{"ip": "2001:db8::1"}, {"ip": "192.0.2.1"},
                                   {"ip": "not-an-ip"}], "ports": [PORT]}])
    plan = reconcile(ep, SERVICE, [])
    assert sorted(s["addressType"] for s in plan.create) == ["IPv4", "IPv6"]
    assert plan.warnings == [("InvalidIPAddress",
                              "Skipped 1 invalid IP addresses when mirroring to EndpointSlices")]


def test_too_many_addresses_are_capped_per_subset() -> None:
    ep = endpoints([{"addresses": [{"ip": f"10.1.{i // 256}.{i % 256}"} for i in range(12)],
                     "ports": [PORT]}])
    plan = reconcile(ep, SERVICE, [], max_endpoints_per_subset=10)
    assert len(plan.create[0]["endpoints"]) == 10
    assert plan.warnings[0][0] == "TooManyAddressesToMirror"
    assert "2 addresses were skipped" in plan.warnings[0][1]


def test_nothing_mirrored_and_everything_deleted_when_not_wanted() -> None:
    ep = endpoints([{"addresses": [{"ip": "192.0.2.10"}], "ports": [PORT]}])
    slices = store(reconcile(ep, SERVICE, []), [])
    assert reconcile(None, SERVICE, slices).delete == slices  # Endpoints deleted
    assert reconcile(ep, None, slices).delete == slices  # Service deleted
    assert reconcile(ep, svc("db"), slices).delete == slices  # Service got a selector
    skip = endpoints(ep["subsets"], labels={"endpointslice.kubernetes.io/skip-mirror": "true"})
    assert not should_mirror(skip) and reconcile(skip, SERVICE, slices).delete == slices
    leader = endpoints(ep["subsets"], annotations={
        "control-plane.alpha.kubernetes.io/leader": "{}"})
    assert not should_mirror(leader)
    assert reconcile(endpoints([]), SERVICE, slices).delete == slices  # no subsets: no slices
    assert reconcile(endpoints([]), SERVICE, []).empty


def test_duplicate_extra_slices_are_deleted() -> None:
    ep = endpoints([{"addresses": [{"ip": "192.0.2.10"}], "ports": [PORT]}])
    first = store(reconcile(ep, SERVICE, []), [])
    second = store(reconcile(ep, SERVICE, []), first)
    assert len(second) == 2
    plan = reconcile(ep, SERVICE, second)
    assert len(plan.delete) == 1 and not plan.create and not plan.update
