"""Typed decoding: unknown/duplicate fields, Go-style type errors, body parsing."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from svcnet.api import decode, errors, kinds
from svcnet.api.kinds import Kind

SERVICE = kinds.by_kind("v1", "Service")
DEPLOYMENT = kinds.by_kind("apps/v1", "Deployment")
POD = kinds.by_kind("v1", "Pod")
SECRET = kinds.by_kind("v1", "Secret")
NODE = kinds.by_kind("v1", "Node")
assert SERVICE and DEPLOYMENT and POD and SECRET and NODE


def svc(spec: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default", **meta},
            "spec": spec if spec is not None else {"ports": [{"port": 80}]}}


def type_error(kind: Kind, body: Any) -> str:
    with pytest.raises(errors.StatusError) as e:
        decode.decode(kind, body, strict=False)
    assert e.value.code == 400 and e.value.reason == "BadRequest"
    return e.value.message


# --- unknown fields ------------------------------------------------------------------------

def test_unknown_fields_at_every_depth_are_reported_in_document_order() -> None:
    body = {"apiVersion": "v1", "kind": "Service", "bogus": 1,
            "metadata": {"name": "web", "nickname": "w", "labels": {"any-key": "ok"}},
            "spec": {"foo": True, "selector": {"whatever": "ok"},
                     "ports": [{"port": 80}, {"port": 443, "bar": "x"}],
                     "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5, "baz": 1}}},
            "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4", "qux": 1}]}}}
    _, unknown = decode.decode(SERVICE, body, strict=True)
    assert unknown == ["bogus", "metadata.nickname", "spec.foo", "spec.ports[1].bar",
                       "spec.sessionAffinityConfig.clientIP.baz",
                       "status.loadBalancer.ingress[0].qux"]


def test_unknown_fields_inside_containers_of_a_pod_template() -> None:
    body = {"spec": {"selector": {"matchLabels": {"app": "a"}}, "template": {
        "metadata": {"labels": {"app": "a"}},
        "spec": {"containers": [
            {"name": "a", "image": "i"},
            {"name": "b", "image": "i", "imagePullPolcy": "Always",
             "ports": [{"containerPort": 80, "hostport": 1}],
             "resources": {"limits": {"cpu": "1"}, "limts": {}}}]}}}}
    _, unknown = decode.decode(DEPLOYMENT, body, strict=False)
    assert unknown == ["spec.template.spec.containers[1].imagePullPolcy",
                       "spec.template.spec.containers[1].ports[0].hostport",
                       "spec.template.spec.containers[1].resources.limts"]


def test_unknown_fields_are_dropped_without_touching_the_input() -> None:
    body = svc({"ports": [{"port": 80, "bar": 1}, {"port": 81}], "foo": 1, "type": "ClusterIP"})
    before = copy.deepcopy(body)
    out, unknown = decode.decode(SERVICE, body, strict=False)
    assert unknown == ["spec.ports[0].bar", "spec.foo"]
    assert out["spec"] == {"ports": [{"port": 80}, {"port": 81}], "type": "ClusterIP"}
    assert body == before
    # Unchanged subtrees are shared, not copied.
    assert out["metadata"] is body["metadata"] and out["spec"]["ports"][1] is body["spec"]["ports"][1]


def test_clean_object_is_returned_as_is() -> None:
    body = svc()
    out, unknown = decode.decode(SERVICE, body, strict=True)
    assert out is body and unknown == []


def test_maps_accept_any_key_and_any_fields_accept_anything() -> None:
    body = svc(labels={"a/b": "c", "x": ""}, annotations={"k": "v"},
               managedFields=[{"manager": "m", "operation": "Update", "fieldsType": "FieldsV1",
                               "fieldsV1": {"f:spec": {"f:ports": {".": {}}}, "anything": [1]},
                               "time": "2025-01-01T00:00:00Z"}])
    out, unknown = decode.decode(SERVICE, body, strict=True)
    assert unknown == [] and out is body


def test_strict_error_message() -> None:
    e = decode.strict_error(SERVICE, ["spec.foo", "spec.bar"])
    assert (e.code, e.reason) == (400, "BadRequest")
    assert e.message == ('Service in version "v1" cannot be handled as a Service: strict '
                         'decoding error: unknown field "spec.foo", unknown field "spec.bar"')
    e = decode.strict_error(DEPLOYMENT, ["spec.x"])
    assert e.message.startswith('Deployment in version "v1" cannot be handled as a Deployment: ')


# --- nulls ---------------------------------------------------------------------------------

def test_null_fields_are_unset() -> None:
    body = svc({"ports": [{"port": 80, "name": None}], "type": None, "selector": None},
               labels=None, deletionTimestamp=None)
    out, unknown = decode.decode(SERVICE, body, strict=True)
    assert unknown == []
    assert out["spec"] == {"ports": [{"port": 80}]}
    assert out["metadata"] == {"name": "web", "namespace": "default"}


def test_null_list_items_and_map_values_become_zero_values_as_in_go() -> None:
    body = svc({"ports": [None], "clusterIPs": [None]}, labels={"a": None})
    out, _ = decode.decode(SERVICE, body, strict=False)
    assert out["spec"] == {"ports": [{}], "clusterIPs": [""]}
    assert out["metadata"]["labels"] == {"a": ""}


# --- type errors ---------------------------------------------------------------------------

PREFIX = 'Service in version "v1" cannot be handled as a Service: '


@pytest.mark.parametrize("spec,message", [
    ({"ports": [{"port": "80"}]},
     "json: cannot unmarshal string into Go struct field ServicePort.spec.ports.port of type int32"),
    ({"ports": [{"port": 1.5}]},
     "json: cannot unmarshal number 1.5 into Go struct field ServicePort.spec.ports.port of type int32"),
    ({"ports": [{"port": 2**31}]},
     "json: cannot unmarshal number 2147483648 into Go struct field ServicePort.spec.ports.port of type int32"),
    ({"ports": [{"port": True}]},
     "json: cannot unmarshal bool into Go struct field ServicePort.spec.ports.port of type int32"),
    ({"ports": {"port": 80}},
     "json: cannot unmarshal object into Go struct field ServiceSpec.spec.ports of type []v1.ServicePort"),
    ({"ports": ["http"]},
     "json: cannot unmarshal string into Go struct field ServiceSpec.spec.ports of type v1.ServicePort"),
    ({"type": 5},
     "json: cannot unmarshal number into Go struct field ServiceSpec.spec.type of type string"),
    ({"type": ["a"]},
     "json: cannot unmarshal array into Go struct field ServiceSpec.spec.type of type string"),
    ({"clusterIPs": "10.0.0.1"},
     "json: cannot unmarshal string into Go struct field ServiceSpec.spec.clusterIPs of type []string"),
    ({"clusterIPs": [1]},
     "json: cannot unmarshal number into Go struct field ServiceSpec.spec.clusterIPs of type string"),
    ({"selector": ["a"]},
     "json: cannot unmarshal array into Go struct field ServiceSpec.spec.selector of type map[string]string"),
    ({"selector": {"a": 1}},
     "json: cannot unmarshal number into Go struct field ServiceSpec.spec.selector of type string"),
    ({"publishNotReadyAddresses": "true"},
     "json: cannot unmarshal string into Go struct field ServiceSpec.spec.publishNotReadyAddresses of type bool"),
    ({"ports": [{"port": 80, "targetPort": 1.5}]},
     "json: cannot unmarshal number 1.5 into Go struct field ServicePort.spec.ports.targetPort of type int32"),
    ({"ports": [{"port": 80, "targetPort": {"a": 1}}]},
     "json: cannot unmarshal object into Go struct field ServicePort.spec.ports.targetPort of type int32"),
    ({"sessionAffinityConfig": {"clientIP": {"timeoutSeconds": "10"}}},
     "json: cannot unmarshal string into Go struct field ClientIPConfig.spec.sessionAffinityConfig.clientIP.timeoutSeconds of type int32"),
])
def test_type_errors_use_go_messages(spec: dict[str, Any], message: str) -> None:
    assert type_error(SERVICE, svc(spec)) == PREFIX + message


def test_type_errors_at_root_and_in_metadata() -> None:
    assert type_error(SERVICE, {"spec": "x"}) == PREFIX + (
        "json: cannot unmarshal string into Go struct field Service.spec of type v1.ServiceSpec")
    assert type_error(SERVICE, svc(generation="1")) == PREFIX + (
        "json: cannot unmarshal string into Go struct field ObjectMeta.metadata.generation of type int64")
    assert type_error(SERVICE, svc(labels={"a": True})) == PREFIX + (
        "json: cannot unmarshal bool into Go struct field ObjectMeta.metadata.labels of type string")
    assert type_error(SERVICE, svc(creationTimestamp=5)) == PREFIX + (
        "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.creationTimestamp of type string")
    assert type_error(SERVICE, [1]) == PREFIX + (
        "json: cannot unmarshal array into Go value of type v1.Service")


def test_int64_fields_accept_large_values_and_int32_do_not() -> None:
    pod = {"spec": {"containers": [{"name": "a"}], "terminationGracePeriodSeconds": 2**40,
                    "activeDeadlineSeconds": 2**40}, "metadata": {"generation": 2**40}}
    decode.decode(POD, pod, strict=True)
    pod["spec"]["containers"][0]["ports"] = [{"containerPort": 2**40}]
    assert type_error(POD, pod).endswith(
        "json: cannot unmarshal number 1099511627776 into Go struct field "
        "ContainerPort.spec.containers.ports.containerPort of type int32")


def test_type_errors_are_errors_in_every_mode_and_win_over_unknown_fields() -> None:
    body = svc({"foo": 1, "ports": [{"port": "x"}]})
    for strict in (True, False):
        with pytest.raises(errors.StatusError):
            decode.decode(SERVICE, body, strict=strict)


def test_int_or_string() -> None:
    for target in (8080, "http", "8080", 0):
        decode.decode(SERVICE, svc({"ports": [{"port": 80, "targetPort": target}]}), strict=True)
    assert type_error(SERVICE, svc({"ports": [{"port": 80, "targetPort": 2**40}]})).endswith(
        "cannot unmarshal number 1099511627776 into Go struct field "
        "ServicePort.spec.ports.targetPort of type int32")


def test_date_time() -> None:
    for ts in ("2025-01-01T00:00:00Z", "2025-01-01T00:00:00.123456Z", "2025-02-28T23:59:59+02:00"):
        decode.decode(SERVICE, svc(creationTimestamp=ts), strict=True)
    assert type_error(SERVICE, svc(creationTimestamp="2025-01-01")) == PREFIX + (
        'parsing time "2025-01-01" as "2006-01-02T15:04:05Z07:00": cannot parse "" as "T"')
    assert type_error(SERVICE, svc(creationTimestamp="yesterday")) == PREFIX + (
        'parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": cannot parse "yesterday" as "2006"')
    assert type_error(SERVICE, svc(creationTimestamp="2025-13-01T00:00:00Z")) == PREFIX + (
        'parsing time "2025-13-01T00:00:00Z": month out of range')
    assert type_error(SERVICE, svc(creationTimestamp="2025-01-01T00:00:00Zjunk")) == PREFIX + (
        'parsing time "2025-01-01T00:00:00Zjunk": extra text: "junk"')


QUANTITY_ERROR = ("quantities must match the regular expression "
                  "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")


@pytest.mark.parametrize("value", ["1", "500m", "1.5Gi", "128Mi", "2e3", "1E-3", "+1k", 1, 0.5,
                                   "0", ".5", "1Ei"])
def test_quantity_accepts(value: Any) -> None:
    pod = {"spec": {"containers": [{"name": "a", "resources": {"limits": {"cpu": value}}}]}}
    decode.decode(POD, pod, strict=True)


@pytest.mark.parametrize("value,message", [
    ("lots", QUANTITY_ERROR), ("", QUANTITY_ERROR), (True, QUANTITY_ERROR), ([1], QUANTITY_ERROR),
    ("1Gb", QUANTITY_ERROR), ("..", QUANTITY_ERROR), ("1.2.3", QUANTITY_ERROR),
    ("Gi", QUANTITY_ERROR), ("1e", "unable to parse quantity's suffix"),
    ("1ki", "unable to parse quantity's suffix"), ("1Mm", "unable to parse quantity's suffix"),
])
def test_quantity_rejects(value: Any, message: str) -> None:
    pod = {"spec": {"containers": [{"name": "a", "resources": {"requests": {"memory": value}}}]}}
    assert type_error(POD, pod) == f'Pod in version "v1" cannot be handled as a Pod: {message}'


def test_secret_data_must_be_base64() -> None:
    decode.decode(SECRET, {"data": {"a": "aGVsbG8=", "b": ""}}, strict=True)
    assert type_error(SECRET, {"data": {"a": "hello!"}}) == (
        'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 5')
    decode.decode(SECRET, {"stringData": {"a": "hello!"}}, strict=True)


# --- body parsing --------------------------------------------------------------------------

def test_json_body() -> None:
    assert decode.decode_body(b'{"a": [1, 2.5, "x"]}', "application/json") == {"a": [1, 2.5, "x"]}
    assert decode.decode_body(b'[{"op": "add"}]', "application/json-patch+json; charset=utf-8") \
        == [{"op": "add"}]


@pytest.mark.parametrize("raw,ctype,message", [
    (b'{"a":', "application/json", "couldn't get version/kind; json parse error: "),
    (b"", "application/json", "couldn't get version/kind; json parse error: "),
    (b"{'a': 1}", "application/json", "couldn't get version/kind; json parse error: "),
    (b'{"a" 1}', "application/strategic-merge-patch+json", "error decoding patch: "),
    (b"a: [1\nb: 2", "application/yaml", "error converting YAML to JSON: yaml: line "),
    (b"a: b: c", "application/apply-patch+yaml", "error converting YAML to JSON: yaml: line 1: "),
])
def test_malformed_bodies_are_400(raw: bytes, ctype: str, message: str) -> None:
    with pytest.raises(errors.StatusError) as e:
        decode.decode_body(raw, ctype)
    assert e.value.code == 400 and e.value.message.startswith(message)


@pytest.mark.parametrize("ctype", ["application/cbor",
                                   "application/x-www-form-urlencoded"])
def test_other_media_types_are_415(ctype: str) -> None:
    with pytest.raises(errors.StatusError) as e:
        decode.decode_body(b"k8s\x00\n", ctype)
    assert (e.value.code, e.value.reason) == (415, "UnsupportedMediaType")
    assert "application/json" in e.value.message


def test_missing_content_type_is_read_as_json() -> None:
    assert decode.decode_body(b'{"a": 1}', "application/octet-stream") == {"a": 1}
    assert decode.decode_body(b'{"a": 1}', "") == {"a": 1}


def test_yaml_body_keeps_json_types() -> None:
    doc = decode.decode_body(b"a: 2025-01-01T00:00:00Z\nb: 2025-01-01\nc: 1\n80: x\nd: [yes]\n",
                             "application/yaml")
    assert doc == {"a": "2025-01-01T00:00:00Z", "b": "2025-01-01", "c": 1, "80": "x",
                   "d": [True]}
    # JSON sent as apply-patch+yaml (what kubectl does) parses as JSON.
    assert decode.decode_body(b' {"a": 1}', "application/apply-patch+yaml") == {"a": 1}
    assert decode.decode_body(b"{a: 1}", "application/apply-patch+yaml") == {"a": 1}


# --- duplicate keys ------------------------------------------------------------------------

CONFORMANCE_DEPLOYMENT = b"""{
  "apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {"name": "my-dep", "labels": {"app": "nginx"}},
  "spec": {
    "unknownField": "foo",
    "replicas": 2,
    "replicas": 3,
    "selector": {"matchLabels": {"app": "nginx"}},
    "template": {"metadata": {"labels": {"app": "nginx"}},
                 "spec": {"containers": [{"name": "nginx", "image": "nginx:latest"}]}}}}"""


def test_duplicate_json_keys_are_strict_errors_in_document_order() -> None:
    body = decode.decode_body(CONFORMANCE_DEPLOYMENT, "application/json", strict=True)
    out, violations = decode.decode(DEPLOYMENT, body, strict=True)
    assert out["spec"]["replicas"] == 3  # last one wins, as in Go
    msg = decode.strict_error(DEPLOYMENT, violations).message
    assert ('strict decoding error: unknown field "spec.unknownField", duplicate field '
            '"spec.replicas"') in msg
    assert [decode.describe(v) for v in violations] == [
        'unknown field "spec.unknownField"', 'duplicate field "spec.replicas"']


def test_duplicate_keys_in_nested_objects_maps_and_list_items() -> None:
    raw = (b'{"metadata": {"name": "a", "labels": {"x": "1", "x": "2"}}, "spec": {"ports": '
           b'[{"port": 80}, {"port": 81, "name": "a", "name": "b", "name": "c"}]}, "kind": "Service",'
           b' "kind": "Service"}')
    body = decode.decode_body(raw, "application/json", strict=True)
    out, violations = decode.decode(SERVICE, body, strict=True)
    assert [decode.describe(v) for v in violations] == [
        'duplicate field "metadata.labels.x"', 'duplicate field "spec.ports[1].name"',
        'duplicate field "kind"']
    assert out["metadata"]["labels"] == {"x": "2"} and out["spec"]["ports"][1]["name"] == "c"
    assert orjson.loads(orjson.dumps(out)) == out  # marked dicts still serialize as objects


def test_duplicates_are_not_looked_for_outside_strict_mode() -> None:
    body = decode.decode_body(CONFORMANCE_DEPLOYMENT, "application/json")
    _, violations = decode.decode(DEPLOYMENT, body, strict=False)
    assert violations == ["spec.unknownField"]


def test_duplicate_yaml_keys_are_reported_like_yaml_v2_before_unknown_fields() -> None:
    raw = b"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  foo: 1
  replicas: 2
  template:
    metadata:
      labels: {app: a, app: b}
"""
    body = decode.decode_body(raw, "application/yaml", strict=True)
    out, violations = decode.decode(DEPLOYMENT, body, strict=True)
    assert out["spec"]["replicas"] == 2
    assert decode.strict_error(DEPLOYMENT, violations).message.endswith(
        'strict decoding error: yaml: unmarshal errors:\n  line 8: key "replicas" already set '
        'in map\n  line 11: key "app" already set in map, unknown field "spec.foo"')


def test_strict_duplicate_check_is_cheap() -> None:
    """The stdlib pass runs only in strict mode; it must stay in the tens of microseconds."""
    import time
    raw = orjson.dumps({"metadata": {"annotations": {f"k{i}": "v" * 40 for i in range(200)}}})
    assert len(raw) > 8000
    start = time.perf_counter()
    for _ in range(50):
        decode.decode_body(raw, "application/json", strict=True)
    assert (time.perf_counter() - start) / 50 < 0.005


# --- realistic manifests -------------------------------------------------------------------

DEPLOYMENT_YAML = b"""
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {app: web, tier: frontend}
  annotations:
    deployment.kubernetes.io/revision: "3"
spec:
  replicas: 3
  revisionHistoryLimit: 5
  progressDeadlineSeconds: 600
  minReadySeconds: 5
  selector:
    matchLabels: {app: web}
    matchExpressions:
    - {key: tier, operator: In, values: [frontend]}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 25%, maxUnavailable: 1}
  template:
    metadata:
      labels: {app: web, tier: frontend}
      annotations: {prometheus.io/scrape: "true"}
    spec:
      serviceAccountName: web
      terminationGracePeriodSeconds: 30
      securityContext: {runAsNonRoot: true, runAsUser: 1000, fsGroup: 2000,
                        seccompProfile: {type: RuntimeDefault}}
      nodeSelector: {kubernetes.io/os: linux}
      tolerations:
      - {key: dedicated, operator: Equal, value: web, effect: NoSchedule}
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 100
            podAffinityTerm:
              topologyKey: kubernetes.io/hostname
              labelSelector: {matchLabels: {app: web}}
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone,
         whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {app: web}}}
      initContainers:
      - name: migrate
        image: registry.example.com/web:1.4.2
        command: [/app/migrate, --up]
      containers:
      - name: web
        image: registry.example.com/web:1.4.2
        imagePullPolicy: IfNotPresent
        args: [--port=8080]
        ports:
        - {name: http, containerPort: 8080, protocol: TCP}
        env:
        - {name: MODE, value: production}
        - name: DB_PASSWORD
          valueFrom: {secretKeyRef: {name: db, key: password}}
        - name: POD_IP
          valueFrom: {fieldRef: {fieldPath: status.podIP}}
        - name: MEM_LIMIT
          valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}
        envFrom:
        - configMapRef: {name: web-config}
        resources:
          requests: {cpu: 250m, memory: 256Mi}
          limits: {cpu: 1, memory: 512Mi, ephemeral-storage: 1Gi}
        readinessProbe:
          httpGet: {path: /healthz, port: http, scheme: HTTP}
          periodSeconds: 5
          failureThreshold: 3
        livenessProbe:
          tcpSocket: {port: 8080}
          initialDelaySeconds: 10
        startupProbe:
          exec: {command: [cat, /tmp/ready]}
        lifecycle:
          preStop: {exec: {command: [sleep, "5"]}}
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL]}
        volumeMounts:
        - {name: config, mountPath: /etc/web, readOnly: true}
        - {name: cache, mountPath: /cache}
      volumes:
      - name: config
        configMap:
          name: web-config
          defaultMode: 420
          items: [{key: app.yaml, path: app.yaml}]
      - name: cache
        emptyDir: {medium: Memory, sizeLimit: 64Mi}
      - name: token
        projected:
          sources:
          - serviceAccountToken: {path: token, expirationSeconds: 3600}
status:
  observedGeneration: 7
  replicas: 3
  readyReplicas: 3
  conditions:
  - {type: Available, status: "True", reason: MinimumReplicasAvailable,
     lastUpdateTime: "2025-01-01T00:00:00Z", lastTransitionTime: "2025-01-01T00:00:00Z"}
"""

POD_JSON = b"""{
  "apiVersion": "v1", "kind": "Pod",
  "metadata": {"name": "web-7d4b9c-abcde", "namespace": "shop", "uid": "1b2c", "resourceVersion": "42",
    "generateName": "web-7d4b9c-", "creationTimestamp": "2025-01-01T00:00:00Z",
    "labels": {"app": "web", "pod-template-hash": "7d4b9c"},
    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c",
      "uid": "9f9f", "controller": true, "blockOwnerDeletion": true}],
    "finalizers": ["example.com/cleanup"]},
  "spec": {"restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler",
    "nodeName": "node-1", "hostNetwork": false, "priority": 0, "enableServiceLinks": true,
    "containers": [{"name": "web", "image": "nginx:1.27", "terminationMessagePath": "/dev/termination-log",
      "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent",
      "ports": [{"containerPort": 80, "protocol": "TCP"}], "resources": {}}],
    "imagePullSecrets": [{"name": "regcred"}],
    "dnsConfig": {"nameservers": ["1.1.1.1"], "options": [{"name": "ndots", "value": "2"}]},
    "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["db.local"]}],
    "readinessGates": [{"conditionType": "example.com/ready"}]},
  "status": {"phase": "Running", "hostIP": "192.168.1.10", "podIP": "10.244.0.5",
    "podIPs": [{"ip": "10.244.0.5"}], "hostIPs": [{"ip": "192.168.1.10"}],
    "startTime": "2025-01-01T00:00:01Z", "qosClass": "BestEffort",
    "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": null,
                    "lastTransitionTime": "2025-01-01T00:00:05Z"}],
    "containerStatuses": [{"name": "web", "ready": true, "started": true, "restartCount": 0,
      "image": "nginx:1.27", "imageID": "docker.io/library/nginx@sha256:abc", "containerID": "containerd://1",
      "state": {"running": {"startedAt": "2025-01-01T00:00:03Z"}},
      "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled",
        "startedAt": "2024-12-31T00:00:00Z", "finishedAt": "2024-12-31T01:00:00Z"}}}]}}"""


def test_realistic_deployment_manifest_has_no_unknown_fields() -> None:
    body = decode.decode_body(DEPLOYMENT_YAML, "application/yaml", strict=True)
    out, violations = decode.decode(DEPLOYMENT, body, strict=True)
    assert violations == [] and out is body


def test_realistic_pod_has_no_unknown_fields() -> None:
    body = decode.decode_body(POD_JSON, "application/json", strict=True)
    out, violations = decode.decode(POD, body, strict=True)
    assert violations == []
    # The one null (lastProbeTime) is dropped.
    assert "lastProbeTime" not in out["status"]["conditions"][0]


def test_node_status_quantities() -> None:
    node = {"status": {"capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                       "allocatable": {"cpu": "3900m"}, "addresses": [
                           {"type": "InternalIP", "address": "10.0.0.1"}]}}
    assert decode.decode(NODE, node, strict=True)[1] == []
