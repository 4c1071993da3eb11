"""Update-time normalisation of Services (reference/apiserver.md §5.4; Kubernetes'
registry/core/service patchAllocatedValues, normalizeClusterIPs, dropTypeDependentFields).

Each test plays a client's PUT/apply the way the server handles it: the new manifest is
defaulted, normalised against the stored object, then validated as an update.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from svcnet.api.defaults import apply_defaults
from svcnet.api.kinds import by_kind
from svcnet.api.service_update import (drop_type_dependent_fields, normalize_cluster_ips,
                                       normalize_update, patch_allocated_values)
from svcnet.api.validation import validate

Obj = dict[str, Any]
SERVICE = by_kind("v1", "Service")
IP = "10.96.0.10"


def service(spec: Obj, status: Obj | None = None) -> Obj:
    obj: Obj = {"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": copy.deepcopy(spec)}
    if status is not None:
        obj["status"] = copy.deepcopy(status)
    apply_defaults("Service", obj)
    return obj


def stored(spec: Obj, status: Obj | None = None) -> Obj:
    """An object as the server stores it: defaulted, with the cluster IP allocated."""
    obj = service(spec, status)
    if obj["spec"]["type"] != "ExternalName" and "clusterIP" not in obj["spec"]:
        obj["spec"]["clusterIP"], obj["spec"]["clusterIPs"] = IP, [IP]
    return obj


def update(manifest: Obj, old: Obj, status: Obj | None = None) -> tuple[Obj, list[str]]:
    """Default `manifest`, normalise it against `old`, validate; (new object, errors)."""
    new = service(manifest)
    if "status" in old:  # the server keeps the stored status on a spec update
        new["status"] = copy.deepcopy(old["status"] if status is None else status)
    normalize_update(new, old)
    assert SERVICE is not None
    return new, [str(e) for e in validate(SERVICE, new, old)]


def two_ports(np1: int | None = None, np2: int | None = None) -> list[Obj]:
    http: Obj = {"name": "http", "port": 80}
    https: Obj = {"name": "https", "port": 443}
    if np1:
        http["nodePort"] = np1
    if np2:
        https["nodePort"] = np2
    return [http, https]


# --- patchAllocatedValues ----------------------------------------------------------------

def test_put_without_cluster_ip_keeps_it() -> None:
    old = stored({"selector": {"app": "web"}, "ports": [{"port": 80}]})
    new, errs = update({"selector": {"app": "web"}, "ports": [{"port": 8080}]}, old)
    assert errs == []
    assert (new["spec"]["clusterIP"], new["spec"]["clusterIPs"]) == (IP, [IP])


def test_put_with_empty_cluster_ip_keeps_it() -> None:
    old = stored({"ports": [{"port": 80}]})
    new, errs = update({"ports": [{"port": 80}], "clusterIP": ""}, old)
    assert errs == []
    assert (new["spec"]["clusterIP"], new["spec"]["clusterIPs"]) == (IP, [IP])


def test_put_without_cluster_ips_keeps_them() -> None:
    old = stored({"ports": [{"port": 80}]})
    new, errs = update({"ports": [{"port": 80}], "clusterIP": IP}, old)
    assert errs == [] and new["spec"]["clusterIPs"] == [IP]


def test_headless_put_keeps_none() -> None:
    old = stored({"clusterIP": "None", "ports": [{"port": 80}]})
    new, errs = update({"ports": [{"port": 80}]}, old)
    assert errs == []
    assert (new["spec"]["clusterIP"], new["spec"]["clusterIPs"]) == ("None", ["None"])


def test_apply_without_node_ports_keeps_them_by_port_name() -> None:
    old = stored({"type": "NodePort", "ports": two_ports(30080, 30443)})
    manifest = {"type": "NodePort", "ports": list(reversed(two_ports()))}
    new, errs = update(manifest, old)
    assert errs == []
    assert {p["name"]: p["nodePort"] for p in new["spec"]["ports"]} == \
        {"http": 30080, "https": 30443}


def test_renamed_port_gets_no_old_node_port() -> None:
    old = stored({"type": "NodePort", "ports": [{"name": "http", "port": 80, "nodePort": 30080}]})
    new, errs = update({"type": "NodePort", "ports": [{"name": "web", "port": 80}]}, old)
    assert errs == [] and "nodePort" not in new["spec"]["ports"][0]


def test_node_port_used_by_another_port_is_not_reused() -> None:
    old = stored({"type": "NodePort", "ports": two_ports(30080, 30443)})
    # the client moved https's node port onto http and left https's empty
    new, errs = update({"type": "NodePort", "ports": two_ports(np1=30443)}, old)
    assert errs == []
    assert new["spec"]["ports"][0]["nodePort"] == 30443
    assert "nodePort" not in new["spec"]["ports"][1]  # the allocator picks a fresh one


def test_user_chosen_node_port_is_not_overwritten() -> None:
    old = stored({"type": "NodePort", "ports": two_ports(30080, 30443)})
    new, errs = update({"type": "NodePort", "ports": two_ports(30081)}, old)
    assert errs == []
    assert [p.get("nodePort") for p in new["spec"]["ports"]] == [30081, 30443]


def test_lb_without_node_port_allocation_keeps_existing_node_ports() -> None:
    # allocateLoadBalancerNodePorts=false only stops automatic picks; ports a LoadBalancer
    # already holds are carried over like any other type's.
    spec = {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": False,
            "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}
    old = stored(spec)
    manifest = {**spec, "ports": [{"name": "http", "port": 80}]}
    new, errs = update(manifest, old)
    assert errs == [] and new["spec"]["ports"][0]["nodePort"] == 30080


def test_nodeport_to_loadbalancer_keeps_node_ports() -> None:
    old = stored({"type": "NodePort", "ports": two_ports(30080, 30443)})
    new, errs = update({"type": "LoadBalancer", "ports": two_ports()}, old)
    assert errs == []
    assert [p["nodePort"] for p in new["spec"]["ports"]] == [30080, 30443]


def test_lb_local_put_without_health_check_node_port_keeps_it() -> None:
    spec = {"type": "LoadBalancer", "externalTrafficPolicy": "Local",
            "ports": [{"port": 80, "nodePort": 30080}]}
    old = stored({**spec, "healthCheckNodePort": 30100})
    new, errs = update(spec, old)
    assert errs == [] and new["spec"]["healthCheckNodePort"] == 30100


def test_cluster_ip_not_carried_into_externalname() -> None:
    old = stored({"ports": [{"port": 80}]})
    new = service({"type": "ExternalName", "externalName": "db.example.com"})
    patch_allocated_values(new, old)
    assert "clusterIP" not in new["spec"] and "clusterIPs" not in new["spec"]


# --- normalizeClusterIPs -----------------------------------------------------------------

def test_cluster_ip_changed_alone_clusterips_follow() -> None:
    old = stored({"ports": [{"port": 80}]})
    manifest = {"ports": [{"port": 80}], "clusterIP": "10.96.0.20", "clusterIPs": [IP]}
    new, errs = update(manifest, old)
    assert new["spec"]["clusterIPs"] == ["10.96.0.20"]
    assert errs == ['spec.clusterIPs[0]: Invalid value: []string{"10.96.0.20"}: may not change '
                    "once set"]


def test_normalize_cluster_ips_alone() -> None:
    old = stored({"ports": [{"port": 80}]})
    new = copy.deepcopy(old)
    new["spec"]["clusterIP"] = "10.96.0.20"
    normalize_cluster_ips(new, old)
    assert new["spec"]["clusterIPs"] == ["10.96.0.20"]

    new = copy.deepcopy(old)
    new["spec"]["clusterIP"] = ""  # cleared while clusterIPs is unchanged: both go
    normalize_cluster_ips(new, old)
    assert "clusterIPs" not in new["spec"]


def test_both_cluster_ip_fields_changed_are_left_to_validation() -> None:
    old = stored({"ports": [{"port": 80}]})
    manifest = {"ports": [{"port": 80}], "clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.21"]}
    new, errs = update(manifest, old)
    assert new["spec"]["clusterIPs"] == ["10.96.0.21"]
    assert sorted(errs) == sorted([
        'spec.clusterIPs: Invalid value: []string{"10.96.0.21"}: first value must match '
        "`clusterIP`",
        'spec.clusterIPs[0]: Invalid value: []string{"10.96.0.21"}: may not change once set'])


# --- dropTypeDependentFields -------------------------------------------------------------

def test_clusterip_to_externalname_releases_cluster_ip_fields() -> None:
    old = stored({"selector": {"app": "db"}, "ports": [{"port": 5432}]})
    manifest = {**copy.deepcopy(old["spec"]), "type": "ExternalName",
                "externalName": "db.example.com"}
    new, errs = update(manifest, old)
    assert errs == []
    for field in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
        assert field not in new["spec"], field
    # Kubernetes hides internalTrafficPolicy on ExternalName Services (dropped on read)
    assert "internalTrafficPolicy" not in new["spec"]


def test_clusterip_to_externalname_without_cluster_ip_fields_in_manifest() -> None:
    old = stored({"ports": [{"port": 5432}]})
    new, errs = update({"type": "ExternalName", "externalName": "db.example.com"}, old)
    assert errs == [] and "clusterIP" not in new["spec"]


def test_clusterip_to_externalname_with_a_changed_cluster_ip_is_rejected() -> None:
    old = stored({"ports": [{"port": 5432}]})
    manifest = {**copy.deepcopy(old["spec"]), "type": "ExternalName",
                "externalName": "db.example.com", "clusterIP": "10.96.0.99"}
    new, errs = update(manifest, old)
    assert new["spec"]["clusterIP"] == "10.96.0.99"
    assert errs == ["spec.clusterIPs: Forbidden: may not be set for ExternalName services"]


def test_nodeport_to_clusterip_drops_node_ports_and_etp() -> None:
    old = stored({"type": "NodePort", "ports": two_ports(30080, 30443)})
    manifest = {**copy.deepcopy(old["spec"]), "type": "ClusterIP"}
    new, errs = update(manifest, old)
    assert errs == []
    assert all("nodePort" not in p for p in new["spec"]["ports"])
    assert "externalTrafficPolicy" not in new["spec"]


def test_nodeport_to_clusterip_with_a_new_node_port_keeps_them_all() -> None:
    old = stored({"type": "NodePort", "ports": two_ports(30080, 30443)})
    manifest = {**copy.deepcopy(old["spec"]), "type": "ClusterIP",
                "ports": two_ports(30080, 30999)}
    new, errs = update(manifest, old)
    assert [p.get("nodePort") for p in new["spec"]["ports"]] == [30080, 30999]
    assert errs == [
        "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
        "spec.ports[1].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]


def test_nodeport_to_clusterip_dropping_one_port_still_clears() -> None:
    old = stored({"type": "NodePort", "ports": two_ports(30080, 30443)})
    manifest = {**copy.deepcopy(old["spec"]), "type": "ClusterIP",
                "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}
    new, errs = update(manifest, old)
    assert errs == [] and "nodePort" not in new["spec"]["ports"][0]


def test_lb_without_node_port_allocation_to_clusterip_drops_node_ports() -> None:
    old = stored({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": False,
                  "ports": [{"port": 80, "nodePort": 30080}]})
    manifest = {**copy.deepcopy(old["spec"]), "type": "ClusterIP"}
    new, errs = update(manifest, old)
    assert errs == []
    assert "nodePort" not in new["spec"]["ports"][0]
    assert "allocateLoadBalancerNodePorts" not in new["spec"]


def test_lb_to_clusterip_clears_lb_fields_and_status() -> None:
    lb_status = {"loadBalancer": {"ingress": [{"ip": "203.0.113.7", "ipMode": "VIP"}]}}
    old = stored({"type": "LoadBalancer", "loadBalancerClass": "example.com/lb",
                  "ports": [{"port": 80, "nodePort": 30080}]}, status=lb_status)
    manifest = {**copy.deepcopy(old["spec"]), "type": "ClusterIP"}
    new, errs = update(manifest, old)
    assert errs == []
    for field in ("allocateLoadBalancerNodePorts", "loadBalancerClass",
                  "externalTrafficPolicy"):
        assert field not in new["spec"], field
    assert "nodePort" not in new["spec"]["ports"][0]
    assert new["status"]["loadBalancer"] == {}
    assert new["spec"]["clusterIP"] == IP  # the cluster IP is kept


def test_lb_to_clusterip_with_a_changed_lb_class_is_rejected() -> None:
    old = stored({"type": "LoadBalancer", "loadBalancerClass": "example.com/lb",
                  "ports": [{"port": 80, "nodePort": 30080}]})
    manifest = {**copy.deepcopy(old["spec"]), "type": "ClusterIP",
                "loadBalancerClass": "example.com/other"}
    new, errs = update(manifest, old)
    assert new["spec"]["loadBalancerClass"] == "example.com/other"
    assert errs == ["spec.loadBalancerClass: Forbidden: may only be used when `type` is "
                    "'LoadBalancer'"]


def test_lb_to_clusterip_with_a_changed_allocate_flag_is_rejected() -> None:
    old = stored({"type": "LoadBalancer", "ports": [{"port": 80, "nodePort": 30080}]})
    manifest = {**copy.deepcopy(old["spec"]), "type": "ClusterIP",
                "allocateLoadBalancerNodePorts": False}
    new, errs = update(manifest, old)
    assert errs == ["spec.allocateLoadBalancerNodePorts: Forbidden: may only be used when "
                    "`type` is 'LoadBalancer'"]


def test_leaving_external_clears_unchanged_etp() -> None:
    old = stored({"type": "NodePort", "externalTrafficPolicy": "Local",
                  "ports": [{"port": 80, "nodePort": 30080}]})
    manifest = {**copy.deepcopy(old["spec"]), "type": "ClusterIP"}
    new, errs = update(manifest, old)
    assert errs == [] and "externalTrafficPolicy" not in new["spec"]


def test_leaving_external_with_changed_etp_is_rejected() -> None:
    old = stored({"type": "NodePort", "externalTrafficPolicy": "Local",
                  "ports": [{"port": 80, "nodePort": 30080}]})
    manifest = {**copy.deepcopy(old["spec"]), "type": "ClusterIP",
                "externalTrafficPolicy": "Cluster"}
    new, errs = update(manifest, old)
    assert errs == ['spec.externalTrafficPolicy: Invalid value: "Cluster": may only be set for '
                    "externally-accessible services"]


def test_dropping_external_ips_clears_etp() -> None:
    old = stored({"externalIPs": ["203.0.113.10"], "ports": [{"port": 80}]})
    assert old["spec"]["externalTrafficPolicy"] == "Cluster"
    manifest = copy.deepcopy(old["spec"])
    del manifest["externalIPs"]
    new, errs = update(manifest, old)
    assert errs == [] and "externalTrafficPolicy" not in new["spec"]


def test_staying_external_keeps_etp() -> None:
    old = stored({"type": "NodePort", "externalTrafficPolicy": "Local",
                  "ports": [{"port": 80, "nodePort": 30080}]})
    manifest = {**copy.deepcopy(old["spec"]), "type": "LoadBalancer"}
    new, errs = update(manifest, old)
    assert errs == [] and new["spec"]["externalTrafficPolicy"] == "Local"


@pytest.mark.parametrize("change", [{"externalTrafficPolicy": "Cluster"},
                                    {"type": "NodePort"}],
                         ids=["etp-local-to-cluster", "lb-to-nodeport"])
def test_leaving_lb_local_clears_health_check_node_port(change: Obj) -> None:
    old = stored({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
                  "healthCheckNodePort": 30100, "ports": [{"port": 80, "nodePort": 30080}]})
    manifest = {**copy.deepcopy(old["spec"]), **change}
    new, errs = update(manifest, old)
    assert errs == [] and "healthCheckNodePort" not in new["spec"]


def test_leaving_lb_local_with_changed_health_check_node_port_is_rejected() -> None:
    old = stored({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
                  "healthCheckNodePort": 30100, "ports": [{"port": 80, "nodePort": 30080}]})
    manifest = {**copy.deepcopy(old["spec"]), "externalTrafficPolicy": "Cluster",
                "healthCheckNodePort": 30101}
    new, errs = update(manifest, old)
    assert errs == ["spec.healthCheckNodePort: Invalid value: 30101: may only be set when "
                    "`type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"]


def test_drop_type_dependent_fields_alone_leaves_same_type_alone() -> None:
    old = stored({"type": "NodePort", "ports": two_ports(30080, 30443)})
    new = copy.deepcopy(old)
    drop_type_dependent_fields(new, old)
    assert new == old


def test_externalname_to_clusterip_carries_nothing() -> None:
    old = service({"type": "ExternalName", "externalName": "db.example.com"})
    new, errs = update({"ports": [{"port": 80}]}, old)
    assert errs == [] and "clusterIP" not in new["spec"]  # the allocator picks one next
