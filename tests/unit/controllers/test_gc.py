"""The garbage collector's pure plan, and the API server's propagation finalizers."""

from __future__ import annotations

from typing import Any

import pytest

from svcnet.api.kinds import by_resource
from svcnet.apiserver.registry import gc_finalizers
from svcnet.controllers.gc import (Delete, Ref, RemoveFinalizer, RemoveOwnerRefs,
                                   deletable_kinds, plan)

Obj = dict[str, Any]
RS = by_resource("apps", "v1", "replicasets")
DEPLOY = by_resource("apps", "v1", "deployments")
PODS = by_resource("", "v1", "pods")
NODES = by_resource("", "v1", "nodes")
CMS = by_resource("", "v1", "configmaps")


def obj(kind: str, name: str, *, api: str = "v1", ns: str | None = "default",
        owners: list[Obj] | None = None, finalizers: list[str] | None = None,
        deleting: bool = False, uid: str | None = None) -> Obj:
    meta: Obj = {"name": name, "uid": uid or f"uid-{name}"}
    if ns:
        meta["namespace"] = ns
    if owners:
        meta["ownerReferences"] = owners
    if finalizers:
        meta["finalizers"] = finalizers
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return {"apiVersion": api, "kind": kind, "metadata": meta}


def owner_ref(o: Obj, block: bool = False, **over: Any) -> Obj:
    ref = {"apiVersion": o["apiVersion"], "kind": o["kind"], "name": o["metadata"]["name"],
           "uid": o["metadata"]["uid"], "controller": True}
    if block:
        ref["blockOwnerDeletion"] = True
    return {**ref, **over}


def ref(o: Obj, kind: Any) -> Ref:
    return Ref(kind, o["metadata"].get("namespace"), o["metadata"]["name"], o["metadata"]["uid"])


rs = obj("ReplicaSet", "web-rs", api="apps/v1")


def test_live_owner_keeps_dependents() -> None:
    pod = obj("Pod", "web-1", owners=[owner_ref(rs)])
    assert plan([rs, pod]) == []


def test_dependent_of_deleted_owner_is_deleted_in_background() -> None:
    pod = obj("Pod", "web-1", owners=[owner_ref(rs)])
    assert plan([pod]) == [Delete(ref(pod, PODS), "Background", (ref(rs, RS),))]


def test_owner_identity_is_kind_namespace_name_and_uid() -> None:
    other_ns = obj("ReplicaSet", "web-rs", api="apps/v1", ns="prod")
    renamed = obj("ReplicaSet", "other", api="apps/v1", uid="uid-web-rs")
    successor = obj("ReplicaSet", "web-rs", api="apps/v1", uid="uid-new")
    pod = obj("Pod", "web-1", owners=[owner_ref(rs)])
    for world in ([other_ns], [renamed], [successor]):
        assert plan(world + [pod]) == [Delete(ref(pod, PODS), "Background", (ref(rs, RS),))]


def test_one_surviving_owner_keeps_the_dependent_but_drops_dangling_refs() -> None:
    cm_owner = obj("ConfigMap", "keeper")
    pod = obj("Pod", "web-1", owners=[owner_ref(rs), owner_ref(cm_owner, controller=False)])
    assert plan([cm_owner, pod]) == [
        RemoveOwnerRefs(ref(pod, PODS), ("uid-web-rs",), (ref(rs, RS),))]


def test_unresolvable_references_never_collect() -> None:
    unknown = obj("Pod", "a", owners=[{"apiVersion": "example.com/v1", "kind": "Widget",
                                       "name": "w", "uid": "uid-w"}])
    # a cluster-scoped object naming a namespaced owner is invalid, not dangling
    node = obj("Node", "n1", ns=None, owners=[owner_ref(rs)])
    assert plan([unknown, node]) == []


def test_cluster_scoped_owner_of_namespaced_dependent() -> None:
    node = obj("Node", "n1", ns=None)
    mirror = obj("Pod", "static", owners=[owner_ref(node, controller=True)])
    assert plan([node, mirror]) == []
    assert plan([mirror]) == [Delete(ref(mirror, PODS), "Background", (ref(node, NODES),))]


def test_orphan_finalizer_unowns_dependents_then_goes() -> None:
    owner = obj("ReplicaSet", "web-rs", api="apps/v1", finalizers=["orphan"], deleting=True)
    pods = [obj("Pod", f"web-{i}", owners=[owner_ref(owner)]) for i in range(2)]
    assert plan([owner, *pods]) == [RemoveFinalizer(ref(owner, RS), "orphan",
                                                    tuple(ref(p, PODS) for p in pods))]


def test_foreground_owner_waits_for_blocking_dependents() -> None:
    owner = obj("ReplicaSet", "web-rs", api="apps/v1", finalizers=["foregroundDeletion"],
                deleting=True)
    blocking = obj("Pod", "web-1", owners=[owner_ref(owner, block=True)])
    loose = obj("Pod", "web-2", owners=[owner_ref(owner)])
    # dependents of a foreground-deleting owner are deleted (no waiting on the owner)
    assert plan([owner, blocking, loose]) == [
        Delete(ref(blocking, PODS), "Background"), Delete(ref(loose, PODS), "Background")]
    # a blocking dependent already terminating still holds the owner
    terminating = obj("Pod", "web-1", owners=[owner_ref(owner, block=True)], deleting=True)
    assert plan([owner, terminating]) == []
    # non-blocking dependents don't hold it (they are deleted all the same)
    assert plan([owner, loose]) == [Delete(ref(loose, PODS), "Background"),
                                    RemoveFinalizer(ref(owner, RS), "foregroundDeletion")]
    assert plan([owner]) == [RemoveFinalizer(ref(owner, RS), "foregroundDeletion")]


def test_foreground_cascades_through_a_middle_owner() -> None:
    deploy = obj("Deployment", "web", api="apps/v1", finalizers=["foregroundDeletion"],
                 deleting=True)
    mid = obj("ReplicaSet", "web-rs", api="apps/v1", owners=[owner_ref(deploy, block=True)])
    pod = obj("Pod", "web-1", owners=[owner_ref(mid, block=True)])
    assert plan([deploy, mid, pod]) == [Delete(ref(mid, RS), "Foreground")]
    # a middle owner without dependents is deleted by its own finalizers' policy
    assert plan([deploy, mid]) == [Delete(ref(mid, RS), "Background")]


def test_waiting_owner_reference_dropped_when_another_owner_lives() -> None:
    going = obj("ConfigMap", "going", finalizers=["foregroundDeletion"], deleting=True)
    staying = obj("ConfigMap", "staying")
    dep = obj("ConfigMap", "dep", owners=[owner_ref(going, block=True),
                                          owner_ref(staying, controller=False)])
    assert plan([going, staying, dep]) == [RemoveOwnerRefs(ref(dep, CMS), ("uid-going",), ())]


def test_dependent_with_own_gc_finalizer_keeps_its_policy() -> None:
    dep = obj("ReplicaSet", "web-rs", api="apps/v1", finalizers=["orphan"],
              owners=[{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                       "uid": "uid-web"}])
    assert DEPLOY is not None
    gone = Ref(DEPLOY, "default", "web", "uid-web")
    assert plan([dep]) == [Delete(ref(dep, RS), "Orphan", (gone,))]


def test_objects_being_deleted_are_left_alone() -> None:
    pod = obj("Pod", "web-1", owners=[owner_ref(rs)], deleting=True)
    other = obj("ConfigMap", "x", finalizers=["example.com/keep"], deleting=True)
    assert plan([pod, other]) == []


def test_plan_order_is_deterministic() -> None:
    pods = [obj("Pod", n, owners=[owner_ref(rs)]) for n in ("b", "a", "c")]
    assert [a.target.name for a in plan(pods)] == ["a", "b", "c"]


def test_deletable_kinds_cover_what_can_own_or_be_owned() -> None:
    names = {k.kind for k in deletable_kinds()}
    assert {"Pod", "ReplicaSet", "Deployment", "EndpointSlice", "Endpoints", "ConfigMap",
            "Event", "Node", "Namespace"} <= names


# --- the API server side: which finalizers a DELETE leaves --------------------------------

@pytest.mark.parametrize("have,policy,want", [
    ([], None, []),
    ([], "Background", []),
    ([], "Orphan", ["orphan"]),
    ([], "Foreground", ["foregroundDeletion"]),
    (["example.com/x"], "Orphan", ["example.com/x", "orphan"]),
    (["orphan"], None, ["orphan"]),  # an earlier Orphan delete stays in force
    (["foregroundDeletion"], None, ["foregroundDeletion"]),
    (["orphan"], "Foreground", ["foregroundDeletion"]),
    (["foregroundDeletion", "example.com/x"], "Background", ["example.com/x"]),
    (["orphan", "foregroundDeletion"], None, ["orphan"]),  # the first one decides
])
def test_gc_finalizers(have: list[str], policy: str | None, want: list[str]) -> None:
    assert gc_finalizers(have, policy) == want


def test_gc_finalizers_unchanged_returns_same_list() -> None:
    have = ["example.com/x", "orphan"]
    assert gc_finalizers(have, "Orphan") is have
