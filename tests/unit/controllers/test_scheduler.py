"""The pure scheduling decision: filters, preferences and kube-scheduler's failure text."""

from __future__ import annotations

from typing import Any

import pytest

from svcnet.controllers.scheduler import (Decision, milli, needs_scheduling, node_taints,
                                          pod_requests, schedule, tolerates)

Obj = dict[str, Any]
READY = [{"type": "Ready", "status": "True"}]


def node(name: str, *, labels: dict[str, str] | None = None, taints: list[Obj] | None = None,
         ready: str | None = "True", unschedulable: bool = False,
         allocatable: dict[str, str] | None = None) -> Obj:
    status: Obj = {"conditions": [{"type": "Ready", "status": ready}] if ready else []}
    if allocatable is not None:
        status["allocatable"] = allocatable
    spec: Obj = {"taints": taints or []}
    if unschedulable:
        spec["unschedulable"] = True
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                                   **(labels or {})}},
            "spec": spec, "status": status}


def pod(name: str = "web", *, owner: str | None = None, node_name: str = "",
        **spec: Any) -> Obj:
    meta: Obj = {"name": name, "namespace": "default", "uid": f"uid-{name}"}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                    "name": owner, "uid": f"uid-{owner}", "controller": True}]
    body: Obj = {"containers": [{"name": "c", "image": "i"}],
                 "schedulerName": "default-scheduler", **spec}
    if node_name:
        body["nodeName"] = node_name
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": body,
            "status": {"phase": "Pending"}}


CP_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


# --- taints and tolerations ----------------------------------------------------------------

@pytest.mark.parametrize("tol,taint,want", [
    ({"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"},
     {"key": "k", "value": "v", "effect": "NoSchedule"}, True),
    ({"key": "k", "value": "v"}, {"key": "k", "value": "v", "effect": "NoExecute"}, True),
    ({"key": "k", "value": "other"}, {"key": "k", "value": "v", "effect": "NoSchedule"}, False),
    ({"key": "k", "operator": "Exists"}, {"key": "k", "value": "v", "effect": "NoSchedule"}, True),
    ({"key": "k", "operator": "Exists", "effect": "NoExecute"},
     {"key": "k", "effect": "NoSchedule"}, False),
    ({"operator": "Exists"}, {"key": "anything", "value": "x", "effect": "NoExecute"}, True),
    ({"key": "other", "operator": "Exists"}, {"key": "k", "effect": "NoSchedule"}, False),
    ({"key": "k"}, {"key": "k", "effect": "NoSchedule"}, True),  # Equal, both values empty
])
def test_toleration_matching(tol: Obj, taint: Obj, want: bool) -> None:
    assert tolerates(tol, taint) is want


def test_untolerated_taint_is_named_in_the_reason() -> None:
    d = schedule(pod(), [node("cp", taints=[CP_TAINT])], {})
    assert d == Decision(None, "0/1 nodes are available: 1 node(s) had untolerated taint "
                               "{node-role.kubernetes.io/control-plane: }. preemption: 0/1 "
                               "nodes are available: 1 Preemption is not helpful for "
                               "scheduling.")
    valued = schedule(pod(), [node("a", taints=[{"key": "dedicated", "value": "gpu",
                                                  "effect": "NoExecute"}])], {})
    assert "untolerated taint {dedicated: gpu}" in valued.message


def test_toleration_lets_pod_onto_tainted_node() -> None:
    p = pod(tolerations=[{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists",
                          "effect": "NoSchedule"}])
    assert schedule(p, [node("cp", taints=[CP_TAINT])], {}).node == "cp"
    assert schedule(pod(tolerations=[{"operator": "Exists"}]),
                    [node("cp", taints=[CP_TAINT])], {}).node == "cp"


def test_prefer_no_schedule_is_a_preference_not_a_filter() -> None:
    soft = node("a-soft", taints=[{"key": "busy", "effect": "PreferNoSchedule"}])
    assert schedule(pod(), [soft, node("b")], {}).node == "b"
    assert schedule(pod(), [soft], {}).node == "a-soft"
    tolerant = pod(tolerations=[{"key": "busy", "operator": "Exists"}])
    assert schedule(tolerant, [soft, node("b")], {}).node == "a-soft"  # name breaks the tie


# --- node readiness and unschedulable ------------------------------------------------------

def test_unready_nodes_count_as_tainted() -> None:
    nodes = [node("down", ready="False"), node("gone", ready="Unknown"), node("new", ready=None)]
    d = schedule(pod(), nodes, {})
    assert d.node is None
    assert d.message == ("0/3 nodes are available: 1 node(s) had untolerated taint "
                         "{node.kubernetes.io/not-ready: }, 2 node(s) had untolerated taint "
                         "{node.kubernetes.io/unreachable: }. preemption: 0/3 nodes are "
                         "available: 3 Preemption is not helpful for scheduling.")
    assert node_taints(node("down", ready="False")) == [
        {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]
    # a Pod tolerating not-ready (as DaemonSet Pods do) may still go there
    p = pod(tolerations=[{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}])
    assert schedule(p, [node("down", ready="False")], {}).node == "down"


def test_unschedulable_node() -> None:
    d = schedule(pod(), [node("cordoned", unschedulable=True), node("ok")], {})
    assert d.node == "ok"
    d = schedule(pod(), [node("cordoned", unschedulable=True)], {})
    assert d.message.startswith("0/1 nodes are available: 1 node(s) were unschedulable.")
    p = pod(tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
                          "effect": "NoSchedule"}])
    assert schedule(p, [node("cordoned", unschedulable=True)], {}).node == "cordoned"


def test_no_nodes() -> None:
    assert schedule(pod(), [], {}) == Decision(None, "no nodes available to schedule pods")


# --- nodeSelector and node affinity --------------------------------------------------------

def test_node_selector() -> None:
    nodes = [node("a", labels={"disk": "hdd"}), node("b", labels={"disk": "ssd"})]
    assert schedule(pod(nodeSelector={"disk": "ssd"}), nodes, {}).node == "b"
    d = schedule(pod(nodeSelector={"disk": "nvme"}), nodes, {})
    assert d.message == ("0/2 nodes are available: 2 node(s) didn't match Pod's node "
                         "affinity/selector. preemption: 0/2 nodes are available: 2 Preemption "
                         "is not helpful for scheduling.")


def _required(*exprs: Obj, fields: list[Obj] | None = None) -> Obj:
    term: Obj = {"matchExpressions": list(exprs)}
    if fields:
        term["matchFields"] = fields
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [term]}}}


@pytest.mark.parametrize("expr,want", [
    ({"key": "zone", "operator": "In", "values": ["z1", "z2"]}, ["a", "b"]),
    ({"key": "zone", "operator": "NotIn", "values": ["z1"]}, ["b", "c"]),  # c: label absent
    ({"key": "gpu", "operator": "Exists"}, ["c"]),
    ({"key": "gpu", "operator": "DoesNotExist"}, ["a", "b"]),
    ({"key": "cores", "operator": "Gt", "values": ["4"]}, ["b"]),
    ({"key": "cores", "operator": "Lt", "values": ["8"]}, ["a"]),
    ({"key": "cores", "operator": "Gt", "values": ["x"]}, []),  # not a number: no match
    ({"key": "zone", "operator": "Bogus", "values": ["z1"]}, []),
])
def test_node_affinity_operators(expr: Obj, want: list[str]) -> None:
    nodes = [node("a", labels={"zone": "z1", "cores": "4"}),
             node("b", labels={"zone": "z2", "cores": "16"}),
             node("c", labels={"gpu": "yes", "cores": "many"})]
    fits = [n["metadata"]["name"] for n in nodes
            if schedule(pod(affinity=_required(expr)), [n], {}).node]
    assert fits == want


def test_affinity_terms_are_ored_and_empty_terms_match_nothing() -> None:
    nodes = [node("a", labels={"zone": "z1"}), node("b", labels={"zone": "z2"})]
    aff = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In",
                                                     "values": ["z9"]}]},
                              {"matchFields": [{"key": "metadata.name", "operator": "In",
                                                "values": ["b"]}]}]}}}
    assert schedule(pod(affinity=aff), nodes, {}).node == "b"
    empty: Obj = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{}]}}}
    assert schedule(pod(affinity=empty), nodes, {}).node is None


def test_preferred_node_affinity_weights() -> None:
    nodes = [node("a", labels={"zone": "z1"}), node("b", labels={"zone": "z2", "ssd": "1"})]
    aff = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 10, "preference": {"matchExpressions": [
            {"key": "zone", "operator": "In", "values": ["z1"]}]}},
        {"weight": 50, "preference": {"matchExpressions": [
            {"key": "ssd", "operator": "Exists"}]}}]}}
    assert schedule(pod(affinity=aff), nodes, {}).node == "b"


# --- spreading -----------------------------------------------------------------------------

def test_three_replicas_spread_over_two_nodes() -> None:
    nodes = [node("node-2"), node("node-1")]
    placed: dict[str, list[Obj]] = {}
    for i in range(3):
        p = pod(f"web-{i}", owner="web-rs")
        d = schedule(p, nodes, placed)
        assert d.node is not None
        placed.setdefault(d.node, []).append(dict(p, spec={**p["spec"], "nodeName": d.node}))
    assert {n: [p["metadata"]["name"] for p in ps] for n, ps in placed.items()} == {
        "node-1": ["web-0", "web-2"], "node-2": ["web-1"]}


def test_same_owner_outweighs_total_pod_count() -> None:
    nodes = [node("a"), node("b")]
    busy = {"a": [pod(f"other-{i}", node_name="a") for i in range(3)],
            "b": [pod("web-0", owner="rs", node_name="b")]}
    assert schedule(pod("web-1", owner="rs"), nodes, busy).node == "a"
    assert schedule(pod("lonely"), nodes, busy).node == "b"  # no owner: fewest pods


# --- resources and ports -------------------------------------------------------------------

def test_quantities() -> None:
    assert milli("100m") == 100 and milli("2") == 2000 and milli("1.5") == 1500
    assert milli("1Ki") == 1024000 and milli("1M") == 10**9 and milli("1e3") == 10**6
    assert pod_requests(pod(containers=[
        {"name": "a", "image": "i", "resources": {"requests": {"cpu": "100m"},
                                                  "limits": {"memory": "64Mi"}}},
        {"name": "b", "image": "i", "resources": {"requests": {"cpu": "250m"}}}],
        initContainers=[{"name": "init", "image": "i",
                         "resources": {"requests": {"cpu": "1"}}}])) == {
        "cpu": 1000, "memory": 64 * 2**20 * 1000}


def _hungry(name: str, cpu: str) -> Obj:
    return pod(name, containers=[{"name": "c", "image": "i",
                                  "resources": {"requests": {"cpu": cpu}}}])


def test_insufficient_resources_and_pod_count() -> None:
    small = node("small", allocatable={"cpu": "1", "memory": "1Gi", "pods": "2"})
    full = node("full", allocatable={"cpu": "4", "memory": "1Gi", "pods": "1"})
    on_full = {"full": [pod("x", node_name="full")]}
    d = schedule(_hungry("big", "2"), [small, full, node("cp", taints=[CP_TAINT])], on_full)
    assert d.message == (
        "0/3 nodes are available: 1 Insufficient cpu, 1 Too many pods, 1 node(s) had "
        "untolerated taint {node-role.kubernetes.io/control-plane: }. preemption: 0/3 nodes "
        "are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims "
        "found for incoming pod.")
    assert schedule(_hungry("ok", "500m"), [small], {"small": [_hungry("y", "500m")]}).node \
        == "small"
    assert schedule(_hungry("no", "600m"), [small], {"small": [_hungry("y", "500m")]}).node \
        is None
    # a Node that reports no allocatable is not resource-checked
    assert schedule(_hungry("any", "64"), [node("plain")], {}).node == "plain"


def test_host_port_conflicts() -> None:
    hp = [{"name": "c", "image": "i", "ports": [{"containerPort": 80, "hostPort": 8080,
                                                  "protocol": "TCP"}]}]
    taken = {"a": [pod("x", node_name="a", containers=hp)]}
    assert schedule(pod("y", containers=hp), [node("a"), node("b")], taken).node == "b"
    d = schedule(pod("y", containers=hp), [node("a")], taken)
    assert d.message.startswith("0/1 nodes are available: 1 node(s) didn't have free ports "
                                "for the requested pod ports.")


def test_preemption_policy_never() -> None:
    d = schedule(pod(nodeSelector={"x": "y"}, preemptionPolicy="Never"), [node("a")], {})
    assert d.message.endswith("preemption: not eligible due to preemptionPolicy=Never.")


def test_needs_scheduling() -> None:
    assert needs_scheduling(pod())
    assert needs_scheduling(dict(pod(), spec={"containers": []}))  # empty schedulerName
    assert not needs_scheduling(pod(node_name="a"))
    assert not needs_scheduling(pod(schedulerName="my-scheduler"))
    deleting = pod()
    deleting["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    assert not needs_scheduling(deleting)
