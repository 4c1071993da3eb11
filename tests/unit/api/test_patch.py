"""PATCH application: strategic merge, JSON merge, JSON patch, dispatch, server-side apply.

Expected results of the strategic-merge cases were cross-checked against apimachinery itself
(`kubectl patch --local --type strategic`, which runs the same merge code offline).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from svcnet.api import errors, schema
from svcnet.api.patch import (apply_patch, json_merge_patch, json_patch, server_side_apply,
                              strategic_merge)

SVC = schema.root("V1Service")
DEPLOY = schema.root("V1Deployment")
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def service(ports: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"},
                         "annotations": {LAST_APPLIED: "{}\n"}, "finalizers": ["a", "b"]},
            "spec": {"type": "NodePort", "clusterIP": "10.0.0.7", "selector": {"app": "web"},
                     "ports": ports, **spec}}


HTTP = {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080, "nodePort": 30080}
HTTPS = {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443, "nodePort": 30443}


def deployment(containers: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default",
                         "annotations": {"deployment.kubernetes.io/revision": "2"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "strategy": {"type": "RollingUpdate",
                                  "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": containers or [
                                      {"name": "nginx", "image": "nginx:1.25",
                                       "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}}}}


def names(items: list[dict[str, Any]], key: str = "name") -> list[Any]:
    return [i[key] for i in items]


# --- strategic merge: bodies kubectl 1.32 actually sends (reference/apiserver.md §3.1, §3.2) ---

def test_apply_adds_port_and_selector_key() -> None:
    live = service([HTTP])
    body = {"metadata": {"annotations": {LAST_APPLIED: '{"kind":"Service"}\n'}},
            "spec": {"$setElementOrder/ports": [{"port": 80}, {"port": 443}],
                     "ports": [{"name": "https", "port": 443, "targetPort": 8443}],
                     "selector": {"tier": "fe"}}}
    out = strategic_merge(live, body, SVC)
    assert out["spec"]["ports"] == [HTTP, {"name": "https", "port": 443, "targetPort": 8443}]
    assert out["spec"]["selector"] == {"app": "web", "tier": "fe"}
    assert out["metadata"]["annotations"] == {LAST_APPLIED: '{"kind":"Service"}\n'}
    assert out["spec"]["clusterIP"] == "10.0.0.7" and out["metadata"]["finalizers"] == ["a", "b"]


def test_apply_removes_port_80_and_changes_type() -> None:
    live = service([HTTP, HTTPS])
    body = {"metadata": {"annotations": {LAST_APPLIED: "x\n"}},
            "spec": {"$setElementOrder/ports": [{"port": 443}],
                     "ports": [{"name": "https", "port": 443, "targetPort": 8443},
                               {"$patch": "delete", "port": 80}],
                     "type": "ClusterIP"}}
    out = strategic_merge(live, body, SVC)
    # nodePort survives the merge; dropping it for ClusterIP is the update strategy's job (§5.5).
    assert out["spec"]["ports"] == [HTTPS]
    assert out["spec"]["type"] == "ClusterIP"


def test_applied_port_merges_into_live_one_keeping_node_port() -> None:
    body = {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}
    out = strategic_merge(service([HTTP]), body, SVC)
    assert out["spec"]["ports"] == [{**HTTP, "targetPort": 9090}]


def test_kubectl_set_image() -> None:
    live = deployment([{"name": "sidecar", "image": "busybox"},
                       {"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}])
    body = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "nginx"}],
        "containers": [{"image": "nginx:1.27", "name": "nginx"}]}}}}
    out = strategic_merge(live, body, DEPLOY)
    assert out["spec"]["template"]["spec"]["containers"] == [
        {"name": "sidecar", "image": "busybox"},
        {"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]


@pytest.mark.parametrize("body,labels,annotations", [
    # kubectl label web tier=fe / kubectl label web app-  / kubectl annotate web note=x
    ({"metadata": {"labels": {"tier": "fe"}}}, {"app": "web", "tier": "fe"}, None),
    ({"metadata": {"labels": {"app": None}}}, {}, None),
    ({"metadata": {"labels": {"app": None, "x": "1"}}}, {"x": "1"}, None),
    ({"metadata": {"annotations": {"note": "x"}}}, None, {LAST_APPLIED: "{}\n", "note": "x"}),
    ({"metadata": {"annotations": {LAST_APPLIED: None}}}, None, {}),
    ({"metadata": {"annotations": None}}, None, "absent"),
    ({"metadata": {"labels": {"missing": None}}}, {"app": "web"}, None),
])
def test_label_and_annotate_patches(body: dict[str, Any], labels: Any, annotations: Any) -> None:
    out = strategic_merge(service([HTTP]), body, SVC)["metadata"]
    if labels is not None:
        assert out["labels"] == labels
    if annotations == "absent":
        assert "annotations" not in out
    elif annotations is not None:
        assert out["annotations"] == annotations


@pytest.mark.parametrize("meta_patch,expected", [
    ({"finalizers": ["a"]}, ["a", "b"]),                 # already present: no duplicate
    ({"finalizers": ["b", "c", "a"]}, ["b", "c", "a"]),  # the patch's order wins for its items
    ({"finalizers": ["c"]}, ["c", "a", "b"]),            # apimachinery puts new items first
    ({"$setElementOrder/finalizers": ["a", "b", "c"], "finalizers": ["c"]}, ["a", "b", "c"]),
    ({"$setElementOrder/finalizers": ["b", "a"]}, ["b", "a"]),
    ({"$deleteFromPrimitiveList/finalizers": ["a"]}, ["b"]),
    ({"$deleteFromPrimitiveList/finalizers": ["a"], "finalizers": ["c"]}, ["c", "b"]),
    ({"finalizers": None}, None),
])
def test_finalizers_are_a_primitive_merge_list(meta_patch: dict[str, Any], expected: Any) -> None:
    out = strategic_merge(service([HTTP]), {"metadata": meta_patch}, SVC)["metadata"]
    assert out.get("finalizers") == expected


def test_delete_from_primitive_list_of_absent_list_is_noop() -> None:
    live = service([HTTP])
    del live["metadata"]["finalizers"]
    out = strategic_merge(live, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}, SVC)
    assert "finalizers" not in out["metadata"]


def test_retain_keys_on_deployment_strategy() -> None:
    out = strategic_merge(deployment(), {"spec": {"strategy": {"$retainKeys": ["type"],
                                                               "type": "Recreate"}}}, DEPLOY)
    assert out["spec"]["strategy"] == {"type": "Recreate"}
    out = strategic_merge(deployment(), {"spec": {"strategy": {
        "$retainKeys": ["type", "rollingUpdate"], "rollingUpdate": {"maxSurge": 1}}}}, DEPLOY)
    assert out["spec"]["strategy"] == {"type": "RollingUpdate",
                                       "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}}


def test_retain_keys_on_volume_items() -> None:
    live = deployment()
    live["spec"]["template"]["spec"]["volumes"] = [{"name": "v", "hostPath": {"path": "/x"}}]
    body = {"spec": {"template": {"spec": {"volumes": [
        {"name": "v", "emptyDir": {}, "$retainKeys": ["name", "emptyDir"]}]}}}}
    out = strategic_merge(live, body, DEPLOY)
    assert out["spec"]["template"]["spec"]["volumes"] == [{"name": "v", "emptyDir": {}}]


PORTS3 = [{"name": "a", "port": 1}, {"name": "b", "port": 2}, {"name": "c", "port": 3}]


@pytest.mark.parametrize("spec_patch,expected", [
    ({"$setElementOrder/ports": [{"port": 3}, {"port": 1}, {"port": 2}]}, [3, 1, 2]),
    ({"$setElementOrder/ports": [{"port": 3}, {"port": 9}, {"port": 1}],
      "ports": [{"port": 3, "name": "z"}, {"port": 9}]}, [2, 3, 9, 1]),  # 2 precedes 3 live
    ({"$setElementOrder/ports": [{"port": 2}, {"port": 9}], "ports": [{"port": 9}]}, [1, 2, 9, 3]),
    ({"ports": [{"port": 9}]}, [9, 1, 2, 3]),
    ({"ports": [{"port": 3, "name": "z"}, {"port": 9}, {"port": 1, "name": "y"}]}, [2, 3, 9, 1]),
    ({"ports": [{"port": 9}, {"port": 2, "$patch": "delete"}, {"port": 8}]}, [9, 8, 1, 3]),
    ({"ports": [{"$patch": "replace"}, {"port": 7}]}, [7]),
    ({"ports": [{"port": 1, "$patch": "replace"}]}, []),
    ({"$setElementOrder/ports": [{"port": 2}], "ports": [{"port": 1, "$patch": "delete"},
                                                         {"port": 3, "$patch": "delete"}]}, [2]),
])
def test_merge_list_order_follows_apimachinery(spec_patch: dict[str, Any],
                                               expected: list[int]) -> None:
    out = strategic_merge(service(copy.deepcopy(PORTS3)), {"spec": spec_patch}, SVC)
    assert names(out["spec"]["ports"], "port") == expected


def test_same_port_tcp_and_udp_collapse_under_smp() -> None:
    # Upstream bug users live with (kubernetes#39188): the merge key is `port` alone.
    body = {"spec": {"ports": [{"port": 53, "protocol": "UDP", "name": "u"},
                               {"port": 53, "protocol": "TCP", "name": "t"}]}}
    out = strategic_merge(service([HTTP]), body, SVC)
    assert out["spec"]["ports"] == [{"port": 53, "protocol": "TCP", "name": "t"}, HTTP]


@pytest.mark.parametrize("spec_patch,key,expected", [
    ({"selector": {"$patch": "replace", "x": "y"}}, "selector", {"x": "y"}),
    ({"selector": {"$patch": "delete"}}, "selector", {}),
    ({"sessionAffinityConfig": {"$patch": "delete"}}, "sessionAffinityConfig", "absent"),
    ({"sessionAffinityConfig": {"clientIP": {"timeoutSeconds": None}}}, "sessionAffinityConfig",
     {"clientIP": {}}),
    ({"ports": None}, "ports", "absent"),
    ({"ports": [{"port": 80, "name": None}]}, "ports",
     [{"port": 80, "protocol": "TCP", "targetPort": 8080, "nodePort": 30080}]),
    ({"ports": [{"port": 81, "name": None}]}, "ports", [{"port": 81}, HTTP]),
    ({"type": None}, "type", "absent"),
    ({"externalIPs": ["1.1.1.1"]}, "externalIPs", ["1.1.1.1"]),
])
def test_directives_and_nulls(spec_patch: dict[str, Any], key: str, expected: Any) -> None:
    out = strategic_merge(service([HTTP]), {"spec": spec_patch}, SVC)["spec"]
    if expected == "absent":
        assert key not in out
    else:
        assert out[key] == expected


def test_lists_without_strategy_are_replaced() -> None:
    live = service([HTTP], externalIPs=["1.1.1.1", "2.2.2.2"])
    out = strategic_merge(live, {"spec": {"externalIPs": ["3.3.3.3"]}}, SVC)
    assert out["spec"]["externalIPs"] == ["3.3.3.3"]
    eps = {"kind": "Endpoints", "subsets": [{"addresses": [{"ip": "10.1.0.1"}]}]}
    out = strategic_merge(eps, {"subsets": [{"addresses": [{"ip": "10.1.0.2"}]}]},
                          schema.root("V1Endpoints"))
    assert out["subsets"] == [{"addresses": [{"ip": "10.1.0.2"}]}]


def test_nested_merge_lists_env_and_container_ports() -> None:
    live = deployment([{"name": "nginx", "image": "i", "env": [{"name": "A", "value": "1"}],
                        "ports": [{"containerPort": 80, "protocol": "TCP"}]}])
    body = {"spec": {"template": {"spec": {"containers": [{
        "name": "nginx", "env": [{"name": "A", "value": "2"}, {"name": "B", "value": "3"}],
        "ports": [{"containerPort": 80, "name": "http"}]}]}}}}
    c = strategic_merge(live, body, DEPLOY)["spec"]["template"]["spec"]["containers"][0]
    assert c["env"] == [{"name": "A", "value": "2"}, {"name": "B", "value": "3"}]
    assert c["ports"] == [{"containerPort": 80, "protocol": "TCP", "name": "http"}]


def test_unknown_schema_falls_back_to_json_merge_and_directives_never_leak() -> None:
    live = {"kind": "Thing", "spec": {"x": {"a": [1, 2], "b": {"c": 1}}}}
    patch = {"spec": {"x": {"a": [3], "b": {"c": None, "d": 2}},
                      "new": {"$patch": "replace", "n": None, "m": [{"$patch": "delete", "k": 1}],
                              "$retainKeys": ["m"], "$setElementOrder/m": []}}}
    out = strategic_merge(live, patch, DEPLOY)
    assert out["spec"] == {"x": {"a": [3], "b": {"d": 2}}, "new": {"m": []}}
    assert "$" not in json.dumps(out)


def test_replace_directive_on_whole_object() -> None:
    body = {"$patch": "replace", "kind": "Service", "spec": {}}
    out = strategic_merge(service([HTTP]), body, SVC)
    assert out == {"kind": "Service", "spec": {}}


def test_inputs_are_not_mutated() -> None:
    live, body = service([HTTP]), {"spec": {"ports": [{"port": 80, "name": None},
                                                     {"port": 9, "$patch": "delete"}],
                                            "$setElementOrder/ports": [{"port": 80}]},
                                   "metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}
    live_copy, body_copy = copy.deepcopy(live), copy.deepcopy(body)
    out = strategic_merge(live, body, SVC)
    out["spec"]["ports"][0]["name"] = "changed"
    assert live == live_copy and body == body_copy


@pytest.mark.parametrize("patch,message", [
    ({"spec": {"ports": [{"name": "x"}]}}, 'spec.ports: map: {"name":"x"} does not contain '
                                           "declared merge key: port"),
    ({"spec": {"ports": [{"$patch": "delete", "name": "x"}]}},
     "does not contain declared merge key"),
    ({"spec": {"ports": [{"port": 80, "$patch": "bogus"}]}}, "unknown patch type: 'bogus'"),
    ({"spec": {"ports": [{"port": 80, "$patch": "merge"}]}},
     "merging lists cannot yet be specified"),
    ({"metadata": {"$patch": "bogus"}}, "metadata: unknown patch type: 'bogus'"),
    ({"spec": {"newThing": {"$patch": "bogus"}}}, "unknown patch type"),
    ({"spec": {"ports": ["x"]}}, "list element types are not identical"),
    ({"spec": {"ports": [[1]]}}, "lists of lists"),
    ({"spec": {"$retainKeys": "type"}}, "invalid patch format of retainKeys"),
    ({"spec": {"$retainKeys": ["type"], "clusterIP": "1.2.3.4"}},
     "spec: invalid patch format of retainKeys: 'clusterIP' is not in $retainKeys"),
    ({"spec": {"$setElementOrder": []}}, "invalid patch format of setElementOrder list"),
    ({"spec": {"$setElementOrder/ports": {"port": 80}}}, "must be a list"),
    ({"spec": {"$setElementOrder/ports": [{"port": 91}, {"port": 90}],
               "ports": [{"port": 90}, {"port": 91}]}},
     "doesn't match $setElementOrder/ports list"),
    ({"spec": {"$setElementOrder/ports": [{"port": 80}], "ports": [{"port": 91}]}},
     "doesn't match $setElementOrder/ports list"),
    ({"metadata": {"$deleteFromPrimitiveList": ["a"]}}, "invalid patch format of primitive list"),
    ({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}, "must be a list"),
    ({"spec": {"$deleteFromPrimitiveList/selector": ["a"]}}, "applies to lists"),
])
def test_malformed_strategic_patches_are_400(patch: dict[str, Any], message: str) -> None:
    with pytest.raises(errors.StatusError) as e:
        strategic_merge(service([HTTP]), patch, SVC)
    assert e.value.code == 400 and e.value.reason == "BadRequest"
    assert message in e.value.message


@pytest.mark.parametrize("patch", [[{"op": "add"}], "x", 1, None])
def test_non_object_strategic_patch_is_400(patch: Any) -> None:
    with pytest.raises(errors.StatusError) as e:
        strategic_merge(service([HTTP]), patch, SVC)
    assert e.value.code == 400 and "must be a JSON object" in e.value.message


label_maps = st.dictionaries(st.sampled_from(["a", "b", "c", "app"]),
                             st.sampled_from([None, "", "x", "web"]), max_size=4)


@given(label_maps, label_maps)
def test_smp_on_plain_maps_equals_merge_patch(labels: dict[str, Any],
                                              patch: dict[str, Any]) -> None:
    live = service([HTTP])
    live["metadata"]["labels"] = {k: v or "x" for k, v in labels.items()}
    body = {"metadata": {"labels": patch}}
    assert strategic_merge(live, body, SVC) == json_merge_patch(live, body)


# --- JSON merge patch (kubectl scale) ---

@pytest.mark.parametrize("patch,expected_spec", [
    ({"spec": {"replicas": 3}}, {"replicas": 3}),
    ({"spec": {"selector": None}}, {}),
    ({"spec": {"selector": {"matchLabels": {"tier": "fe"}}}},
     {"selector": {"matchLabels": {"app": "web", "tier": "fe"}}}),
    ({"spec": {"template": {"spec": {"containers": [{"name": "x"}]}}}},
     {"template": {"metadata": {"labels": {"app": "web"}},
                   "spec": {"containers": [{"name": "x"}]}}}),  # arrays replace, no merge by key
    ({"spec": {"new": {"a": None, "b": {"c": None, "d": 1}}}}, {"new": {"b": {"d": 1}}}),
])
def test_json_merge_patch(patch: dict[str, Any], expected_spec: dict[str, Any]) -> None:
    live = deployment()
    out = json_merge_patch(live, patch)
    for key, value in expected_spec.items():
        assert out["spec"].get(key) == value
    if patch == {"spec": {"selector": None}}:
        assert "selector" not in out["spec"]
    assert live == deployment()


def test_json_merge_patch_result_shares_nothing_with_original() -> None:
    live = deployment()
    out = json_merge_patch(live, {"spec": {"replicas": 3}})
    out["spec"]["template"]["metadata"]["labels"]["app"] = "changed"
    assert live == deployment()


@pytest.mark.parametrize("patch", [[{"spec": {}}], "x", 3])
def test_json_merge_patch_must_be_object(patch: Any) -> None:
    with pytest.raises(errors.StatusError) as e:
        json_merge_patch(deployment(), patch)
    assert e.value.code == 400 and "must be a JSON object" in e.value.message


# --- JSON patch (kubectl rollout undo, python client list bodies) ---

def test_rollout_undo_json_patch() -> None:
    live = deployment()
    template = {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.24"}]}}
    annotations = {"deployment.kubernetes.io/revision": "2", "kubernetes.io/change-cause": "v1"}
    ops = [{"op": "replace", "path": "/spec/template", "value": template},
           {"op": "replace", "path": "/metadata/annotations", "value": annotations}]
    out = json_patch(live, ops)
    assert out["spec"]["template"] == template and out["metadata"]["annotations"] == annotations
    assert live == deployment()


@pytest.mark.parametrize("ops,check", [
    ([{"op": "add", "path": "/metadata/labels", "value": {"a": "b"}}],
     lambda o: o["metadata"]["labels"] == {"a": "b"}),
    ([{"op": "remove", "path": "/spec/strategy/rollingUpdate"}],
     lambda o: o["spec"]["strategy"] == {"type": "RollingUpdate"}),
    ([{"op": "test", "path": "/spec/replicas", "value": 2},
      {"op": "replace", "path": "/spec/replicas", "value": 5}],
     lambda o: o["spec"]["replicas"] == 5),
    ([{"op": "add", "path": "/spec/template/spec/containers/-", "value": {"name": "b"}}],
     lambda o: names(o["spec"]["template"]["spec"]["containers"]) == ["nginx", "b"]),
    ([{"op": "copy", "from": "/spec/selector/matchLabels", "path": "/metadata/labels"}],
     lambda o: o["metadata"]["labels"] == {"app": "web"}),
    ([{"op": "move", "from": "/spec/replicas", "path": "/spec/r"}],
     lambda o: "replicas" not in o["spec"] and o["spec"]["r"] == 2),
    ([], lambda o: o == deployment()),
])
def test_json_patch_operations(ops: list[dict[str, Any]], check: Any) -> None:
    assert check(json_patch(deployment(), ops))


@pytest.mark.parametrize("ops,code,message", [
    ([{"op": "replace", "path": "/spec/nope", "value": 1}], 422,
     "JSON patch operation 0 (replace /spec/nope) does not apply"),
    ([{"op": "remove", "path": "/metadata/labels"}], 422,
     "(remove /metadata/labels) does not apply"),
    ([{"op": "add", "path": "/a/b/c", "value": 1}], 422, "does not apply"),
    ([{"op": "add", "path": "/spec/replicas/x", "value": 1}], 422, "does not apply"),
    ([{"op": "test", "path": "/spec/replicas", "value": 3}], 422,
     "JSON patch operation 0 (test /spec/replicas) failed: value 2 is not equal to 3"),
    ([{"op": "test", "path": "/spec/paused", "value": True}], 422, "does not apply"),
    ([{"op": "replace", "path": "/spec/replicas", "value": 1},
      {"op": "test", "path": "/spec/replicas", "value": True}], 422, "operation 1"),
    ([{"op": "replace", "path": "", "value": [1]}], 422, "not an object"),
    ([{"op": "bogus", "path": "/spec"}], 400, "invalid JSON patch operation 0 (bogus /spec)"),
    ([{"op": "add", "value": 1}], 400, "invalid JSON patch operation"),
    (["x"], 400, "operation 0 must be an object"),
    ({"op": "add"}, 400, "must be a JSON array"),
    ([{"op": "test", "path": "/spec/replicas", "value": 2}] * 10001, 413,
     "maximum operations in a JSON patch is 10000, got 10001"),
])
def test_json_patch_errors(ops: Any, code: int, message: str) -> None:
    live = deployment()
    with pytest.raises(errors.StatusError) as e:
        json_patch(live, ops)
    assert e.value.code == code and message in e.value.message
    assert "the server rejected our request" not in e.value.message
    assert live == deployment()


# --- dispatch by Content-Type ---

@pytest.mark.parametrize("content_type,body,replicas", [
    ("application/merge-patch+json", b'{"spec":{"replicas":3}}', 3),
    ("application/strategic-merge-patch+json", b'{"spec":{"replicas":4}}', 4),
    ("application/strategic-merge-patch+json; charset=utf-8", b'{"spec":{"replicas":5}}', 5),
    ("Application/JSON-Patch+JSON", b'[{"op":"replace","path":"/spec/replicas","value":6}]', 6),
])
def test_apply_patch_dispatches_by_media_type(content_type: str, body: bytes,
                                              replicas: int) -> None:
    assert apply_patch(deployment(), body, content_type, DEPLOY)["spec"]["replicas"] == replicas


def test_apply_patch_uses_strategy_only_for_smp() -> None:
    body = b'{"spec":{"template":{"spec":{"containers":[{"name":"b","image":"b"}]}}}}'
    smp = apply_patch(deployment(), body, "application/strategic-merge-patch+json", DEPLOY)
    merge = apply_patch(deployment(), body, "application/merge-patch+json", DEPLOY)
    assert names(smp["spec"]["template"]["spec"]["containers"]) == ["b", "nginx"]
    assert names(merge["spec"]["template"]["spec"]["containers"]) == ["b"]


@pytest.mark.parametrize("content_type", ["application/json", "application/apply-patch+yaml",
                                          "text/plain", ""])
def test_apply_patch_unknown_media_type_is_415(content_type: str) -> None:
    with pytest.raises(errors.StatusError) as e:
        apply_patch(deployment(), b"{}", content_type, DEPLOY)
    assert e.value.code == 415 and e.value.reason == "UnsupportedMediaType"


@pytest.mark.parametrize("body", [b"{", b"", b'{"spec":', b"\xff\xfe", b'{"spec":{"replicas":NaN}}',
                                  b"{'a': 1}"])
def test_apply_patch_malformed_body_is_400(body: bytes) -> None:
    with pytest.raises(errors.StatusError) as e:
        apply_patch(deployment(), body, "application/strategic-merge-patch+json", DEPLOY)
    assert e.value.code == 400 and "error decoding patch body as JSON" in e.value.message


@pytest.mark.parametrize("content_type,body", [
    ("application/strategic-merge-patch+json", b"[]"),
    ("application/merge-patch+json", b'"x"'),
    ("application/json-patch+json", b"{}"),
])
def test_apply_patch_wrong_json_shape_is_400(content_type: str, body: bytes) -> None:
    with pytest.raises(errors.StatusError) as e:
        apply_patch(deployment(), body, content_type, DEPLOY)
    assert e.value.code == 400


# --- server-side apply ---

def applied_service(ports: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"}, "spec": {"ports": ports, **spec}}


def test_ssa_creates_when_absent() -> None:
    applied = applied_service([{"port": 80, "name": None}], selector={"app": "web"})
    out = server_side_apply(None, applied, SVC)
    assert out["spec"] == {"ports": [{"port": 80}], "selector": {"app": "web"}}
    assert applied["spec"]["ports"][0] == {"port": 80, "name": None}


def test_ssa_tcp_and_udp_on_same_port_stay_two_entries() -> None:
    dns = [{"name": "dns", "port": 53, "protocol": "UDP"},
           {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]
    out = server_side_apply(service([HTTP]), applied_service(dns), SVC)
    assert out["spec"]["ports"] == [HTTP, *dns]
    udp = applied_service([{"port": 53, "protocol": "UDP", "targetPort": 5353}])
    again = server_side_apply(out, udp, SVC)
    assert again["spec"]["ports"] == [HTTP, {**dns[0], "targetPort": 5353}, dns[1]]


def test_ssa_merges_into_live_port_keeping_node_port() -> None:
    # `protocol` is omitted: SSA matches it with its default, TCP.
    applied = applied_service([{"port": 80, "targetPort": 9090}])
    out = server_side_apply(service([HTTP]), applied, SVC)
    assert out["spec"]["ports"] == [{**HTTP, "targetPort": 9090}]
    assert out["spec"]["clusterIP"] == "10.0.0.7" and out["spec"]["type"] == "NodePort"


def test_ssa_maps_sets_atomic_fields_and_nulls() -> None:
    applied = applied_service([], selector={"tier": "fe"}, type=None)
    applied["metadata"].update(labels={"tier": "fe"}, finalizers=["b", "c"])
    out = server_side_apply(service([HTTP]), applied, SVC)
    assert out["metadata"]["labels"] == {"app": "web", "tier": "fe"}   # granular map
    assert out["metadata"]["finalizers"] == ["a", "b", "c"]             # set
    assert out["spec"]["selector"] == {"tier": "fe"}                    # mapType=atomic
    assert "type" not in out["spec"]
    assert out["spec"]["ports"] == [HTTP]                               # empty applied list-map


def test_ssa_containers_by_name_and_container_ports_by_port_and_protocol() -> None:
    applied = {"spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web2"}},
                        "template": {"spec": {"containers": [
                            {"name": "nginx", "image": "nginx:1.27",
                             "ports": [{"containerPort": 80, "protocol": "UDP"}]},
                            {"name": "side", "image": "busybox"}]}}}}
    out = server_side_apply(deployment(), applied, DEPLOY)
    containers = out["spec"]["template"]["spec"]["containers"]
    assert names(containers) == ["nginx", "side"]
    assert containers[0]["image"] == "nginx:1.27"
    assert containers[0]["ports"] == [{"containerPort": 80, "protocol": "TCP"},
                                      {"containerPort": 80, "protocol": "UDP"}]
    assert out["spec"]["selector"] == {"matchLabels": {"app": "web2"}}  # LabelSelector is atomic
    assert out["spec"]["strategy"]["type"] == "RollingUpdate"           # not applied: kept


@pytest.mark.parametrize("ports,message", [
    ([{"port": 80}, {"port": 80, "protocol": "TCP"}], "duplicate entries for key"),
    ([{"name": "x"}], "missing key fields"),
])
def test_ssa_bad_list_map_entries_are_400(ports: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(errors.StatusError) as e:
        server_side_apply(service([HTTP]), applied_service(ports), SVC)
    assert e.value.code == 400 and message in e.value.message


def test_ssa_does_not_mutate_inputs() -> None:
    live, applied = service([HTTP]), applied_service([{"port": 80, "targetPort": 1}])
    live_copy, applied_copy = copy.deepcopy(live), copy.deepcopy(applied)
    server_side_apply(live, applied, SVC)
    assert live == live_copy and applied == applied_copy
