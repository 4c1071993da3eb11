"""Protobuf request bodies: real kubectl captures, hand-encoded edge cases, bad input.

The fixtures under fixtures/kubectl_*.pb are request bodies kubectl v1.32.4 sent to a
throwaway logging server; next to each, the .json is what the same command printed with
`--dry-run=client -o json`. Decoding a body must give that JSON (less the
`creationTimestamp: null` Go prints for a zero time, which the typed decoder drops anyway).
`kubectl run` is not among them: it sends JSON, not protobuf.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from svcnet.api import decode, errors, kinds, protobuf
from svcnet.api.protobuf import KEEP_ZERO, ROOTS, decode_k8s_protobuf

FIXTURES = Path(__file__).parent / "fixtures"
PB = "application/vnd.kubernetes.protobuf"

# fixture name -> the kubectl command that produced it
CAPTURED: dict[str, str] = {
    "create_namespace": "kubectl create namespace foo",
    "create_configmap": "kubectl create configmap c --from-literal=a=b",
    "create_secret_generic": "kubectl create secret generic s --from-literal=p=q",
    "create_deployment": "kubectl create deployment web --image=nginx --replicas=3 --port=80",
    "create_service_nodeport":
        "kubectl create service nodeport ns1 --tcp=80:8080 --node-port=30080",
    "create_configmap_binary":
        "kubectl create configmap cb --from-file=blob=<\\x00\\x01\\xffbin> --from-literal=x=y",
    "create_secret_binary":
        "kubectl create secret generic sb --from-file=blob=<\\x00\\x01\\xffbin> --type=Opaque",
    "create_ingress": "kubectl create ingress ing --class=nginx "
                      "--rule=foo.com/bar*=svc1:8080,tls=my-cert --annotation=a=b",
    "create_service_headless": "kubectl create service clusterip hl --clusterip=None",
    "create_service_externalname":
        "kubectl create service externalname ext --external-name=example.com",
    "create_service_named_target": "kubectl create service clusterip c2 --tcp=5678:http",
    "create_deployment_zero_replicas":
        "kubectl create deployment zero --image=nginx --replicas=0",
}


def _drop_nulls(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _drop_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [_drop_nulls(x) for x in v]
    return v


# --- a tiny test-only encoder --------------------------------------------------------------

def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def vi(num: int, value: int) -> bytes:
    """A varint field (negative ints as 64-bit two's complement, like Go)."""
    return varint(num << 3) + varint(value)


def ld(num: int, *parts: bytes | str) -> bytes:
    """A length-delimited field holding the concatenation of `parts`."""
    data = b"".join(p.encode() if isinstance(p, str) else p for p in parts)
    return varint(num << 3 | 2) + varint(len(data)) + data


def entry(num: int, key: str, value: bytes | str) -> bytes:
    """One map<string, _> entry; `value` is the already-encoded value payload."""
    return ld(num, ld(1, key), ld(2, value))


def envelope(api_version: str, kind: str, body: bytes) -> bytes:
    return (b"k8s\x00" + ld(1, ld(1, api_version), ld(2, kind)) + ld(2, body)
            + ld(3, "") + ld(4, ""))


def meta(name: str, **extra: bytes) -> bytes:
    """ObjectMeta as Go writes it: every plain field, empty ones included."""
    return ld(1, ld(1, name), ld(2, ""), ld(3, ""), ld(4, ""), ld(5, ""), ld(6, ""),
              vi(7, 0), ld(8), *extra.values())


# --- real kubectl bodies -------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CAPTURED))
def test_kubectl_body_decodes_to_its_dry_run_json(name: str) -> None:
    raw = (FIXTURES / f"kubectl_{name}.pb").read_bytes()
    expected = json.loads((FIXTURES / f"kubectl_{name}.json").read_text())
    assert raw.startswith(b"k8s\x00")
    assert decode_k8s_protobuf(raw) == _drop_nulls(expected)


def test_captured_deployment_specifics() -> None:
    dep = decode_k8s_protobuf((FIXTURES / "kubectl_create_deployment.pb").read_bytes())
    assert dep["spec"]["replicas"] == 3
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"] == [{"containerPort": 80}]
    assert container["resources"] == {} and dep["spec"]["strategy"] == {}
    zero = decode_k8s_protobuf(
        (FIXTURES / "kubectl_create_deployment_zero_replicas.pb").read_bytes())
    assert zero["spec"]["replicas"] == 0  # *int32 set to 0 stays 0 (not defaulted to 1)


def test_captured_bytes_become_base64() -> None:
    cm = decode_k8s_protobuf((FIXTURES / "kubectl_create_configmap_binary.pb").read_bytes())
    assert cm["binaryData"] == {"blob": "AAH/Ymlu"} and cm["data"] == {"x": "y"}
    secret = decode_k8s_protobuf((FIXTURES / "kubectl_create_secret_binary.pb").read_bytes())
    assert secret["data"] == {"blob": "AAH/Ymlu"} and secret["type"] == "Opaque"


def test_decode_body_routes_protobuf_and_typed_decode_accepts_it() -> None:
    raw = (FIXTURES / "kubectl_create_service_nodeport.pb").read_bytes()
    body = decode.decode_body(raw, PB + "; charset=binary", strict=True)
    svc_kind = kinds.by_kind("v1", "Service")
    assert svc_kind is not None
    obj, unknown = decode.decode(svc_kind, body, strict=True)
    assert unknown == []
    assert obj["spec"]["ports"] == [{"name": "80-8080", "protocol": "TCP", "port": 80,
                                     "targetPort": 8080, "nodePort": 30080}]


# --- hand-encoded cases --------------------------------------------------------------------

def test_pod_inline_embeddings_pointers_and_special_types() -> None:
    probe = ld(10, ld(1, ld(2, ld(1, "/healthz"), ld(2, vi(1, 1), vi(2, 0), ld(3, "http")))),
               vi(2, 0), vi(4, 10))
    env = ld(7, ld(1, "FROM_CM"), ld(2, ""),
             ld(3, ld(3, ld(1, ld(1, "cm")), ld(2, "k"))))
    container = ld(2, ld(1, "app"), ld(2, "nginx"), env, probe,
                   ld(8, entry(1, "cpu", ld(1, "500m")), entry(2, "memory", ld(1, "1Gi"))),
                   ld(6, ld(1, ""), vi(3, 0), ld(5, "")))
    volume = ld(1, ld(1, "scratch"), ld(2, ld(2, ld(1, ""), ld(2, ld(1, "1Gi")))))
    spec = ld(2, volume, container, vi(4, 0), vi(21, 0), ld(8, ""), vi(25, -5),
              ld(14, ld(4, varint(1) + varint(2) + varint(2**63))))
    raw = envelope("v1", "Pod", meta("p") + spec)
    pod = decode_k8s_protobuf(raw)
    assert pod["apiVersion"] == "v1" and pod["kind"] == "Pod"
    assert pod["metadata"] == {"name": "p"}  # empty strings, 0 and the zero time dropped
    spec_out = pod["spec"]
    assert spec_out["volumes"] == [{"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}]
    c = spec_out["containers"][0]
    assert c["env"] == [{"name": "FROM_CM",
                         "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}]
    # ProbeHandler is inline; IntOrString of type 1 is its string; *int32 absent, int32 0 dropped
    assert c["livenessProbe"] == {"httpGet": {"path": "/healthz", "port": "http"},
                                  "periodSeconds": 10}
    assert c["resources"] == {"limits": {"cpu": "500m"}, "requests": {"memory": "1Gi"}}
    assert c["ports"] == [{"containerPort": 0}]  # KEEP_ZERO: not omitempty in Go
    # Pointers keep their zero: terminationGracePeriodSeconds 0, automount false
    assert spec_out["terminationGracePeriodSeconds"] == 0
    assert spec_out["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in spec_out
    assert spec_out["priority"] == -5  # negative int32 sent as a 10-byte varint
    # packed repeated int64, including a negative value
    assert spec_out["securityContext"] == {"supplementalGroups": [1, 2, -(2**63)]}


def test_unpacked_repeated_scalars_and_repeated_strings() -> None:
    sc = ld(14, vi(4, 7), vi(4, 8))
    raw = envelope("v1", "Pod", ld(2, sc))
    assert decode_k8s_protobuf(raw)["spec"]["securityContext"] == {"supplementalGroups": [7, 8]}
    opts = envelope("v1", "DeleteOptions", vi(1, 0) + ld(4, "Foreground") + ld(5, "All")
                    + ld(2, ld(1, "uid-1")))
    assert decode_k8s_protobuf(opts) == {
        "apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
        "propagationPolicy": "Foreground", "dryRun": ["All"],
        "preconditions": {"uid": "uid-1"}}


def test_event_times_microtime_and_fields_v1() -> None:
    t = vi(1, 1735689600) + vi(2, 123456789)  # 2025-01-01T00:00:00.123456789Z
    managed = ld(17, ld(1, "kubectl"), ld(2, "Update"), ld(3, "v1"), ld(4, t),
                 ld(6, "FieldsV1"), ld(7, ld(1, b'{"f:data":{}}')))
    body = (meta("e", managed=managed)
            + ld(2, ld(3, "web"))
            + ld(3, "Started") + ld(6, t) + vi(8, 0) + ld(9, "Normal")
            + ld(10, t)
            + ld(11, vi(1, 2), ld(2)))
    ev = decode_k8s_protobuf(envelope("v1", "Event", body))
    assert ev["firstTimestamp"] == "2025-01-01T00:00:00Z"  # Time: whole seconds
    assert ev["eventTime"] == "2025-01-01T00:00:00.123456Z"  # MicroTime: microseconds
    assert ev["series"] == {"count": 2}  # zero MicroTime omitted
    assert "count" not in ev  # plain int32 0 with omitempty
    assert ev["involvedObject"] == {"name": "web"}
    assert ev["metadata"]["managedFields"] == [{
        "manager": "kubectl", "operation": "Update", "apiVersion": "v1",
        "time": "2025-01-01T00:00:00Z", "fieldsType": "FieldsV1",
        "fieldsV1": {"f:data": {}}}]


def test_times_before_epoch_and_go_zero_time() -> None:
    early = ld(8, vi(1, -62135596800 + 86400))  # 0001-01-02, year zero-padded as Go does
    zero = ld(9, vi(1, -62135596800))
    ns = decode_k8s_protobuf(envelope("v1", "Namespace", ld(1, ld(1, "n"), early, zero)))
    assert ns["metadata"] == {"name": "n", "creationTimestamp": "0001-01-02T00:00:00Z"}
    before_epoch = ld(1, ld(8, vi(1, -86400)), ld(9, vi(1, 0)))
    ns = decode_k8s_protobuf(envelope("v1", "Namespace", before_epoch))
    assert ns["metadata"] == {"creationTimestamp": "1969-12-31T00:00:00Z",
                              "deletionTimestamp": "1970-01-01T00:00:00Z"}
    huge = ld(1, ld(8, vi(1, 2**62)))
    with pytest.raises(errors.StatusError, match="out of range"):
        decode_k8s_protobuf(envelope("v1", "Namespace", huge))


def test_keep_zero_and_plain_zero_fields() -> None:
    port = ld(1, ld(1, ""), ld(2, "TCP"), vi(3, 0), ld(4, vi(1, 0), vi(2, 0), ld(3, "")),
              vi(5, 0))
    svc = decode_k8s_protobuf(envelope("v1", "Service", ld(2, port)))
    # port is not omitempty; nodePort is; a zero IntOrString is printed by Go as 0
    assert svc["spec"]["ports"] == [{"protocol": "TCP", "port": 0, "targetPort": 0}]
    rs = decode_k8s_protobuf(envelope("apps/v1", "ReplicaSet", ld(3, vi(1, 0), vi(2, 0))))
    assert rs["status"] == {"replicas": 0}
    scale = decode_k8s_protobuf(envelope("autoscaling/v1", "Scale",
                                         ld(2, vi(1, 0)) + ld(3, vi(1, 0), ld(2, ""))))
    assert scale["spec"] == {} and scale["status"] == {"replicas": 0}


def test_repeated_message_field_merges_like_protobuf() -> None:
    body = ld(1, ld(1, "n"), entry(11, "a", "1")) + ld(1, entry(11, "b", "2"), ld(1, "m"))
    ns = decode_k8s_protobuf(envelope("v1", "Namespace", body))
    assert ns["metadata"] == {"name": "m", "labels": {"a": "1", "b": "2"}}


def test_unknown_fields_are_skipped() -> None:
    body = (ld(1, ld(1, "n"), vi(999, 5), ld(1000, "x"))
            + varint(77 << 3 | 1) + b"\x00" * 8 + varint(78 << 3 | 5) + b"\x00" * 4)
    assert decode_k8s_protobuf(envelope("v1", "Namespace", body)) == {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}


def test_every_root_kind_decodes_an_empty_object() -> None:
    for (api_version, kind) in ROOTS:
        assert decode_k8s_protobuf(envelope(api_version, kind, b"")) == {
            "apiVersion": api_version, "kind": kind}


def test_delete_options_in_any_group() -> None:
    out = decode_k8s_protobuf(envelope("apps/v1", "DeleteOptions", vi(3, 1)))
    assert out == {"apiVersion": "apps/v1", "kind": "DeleteOptions", "orphanDependents": True}


def test_go_duration_strings() -> None:
    d = protobuf._go_duration
    assert [d(0), d(1), d(1500), d(1_500_000), d(1_000_000_000), d(90 * 10**9),
            d(3_723_500_000_000), d(-2 * 10**9), d(3600 * 10**9)] == [
        "0s", "1ns", "1.5µs", "1.5ms", "1s", "1m30s", "1h2m3.5s", "-2s", "1h0m0s"]


def test_tables_are_consistent() -> None:
    table = protobuf._table()
    for message in ROOTS.values():
        assert message in table
    for message, name in KEEP_ZERO:
        specs = [s for s in table[message].values() if s[0] == name]
        assert len(specs) == 1, (message, name)
        _, ftype, repeated, pointer = specs[0]
        assert ftype in ("int32", "int64", "bool") and not repeated and not pointer


# --- bad input -----------------------------------------------------------------------------

def _bad(raw: bytes) -> str:
    with pytest.raises(errors.StatusError) as e:
        decode.decode_body(raw, PB)
    assert e.value.code == 400 and e.value.reason == "BadRequest"
    return e.value.message


def test_bad_magic() -> None:
    assert "expected prefix [107 56 115 0]" in _bad(b'{"kind": "Namespace"}')
    assert "expected prefix" in _bad(b"")


def test_truncated_input() -> None:
    good = envelope("v1", "Namespace", ld(1, ld(1, "foo")))
    for cut in (5, 10, len(good) - 1):
        assert "unexpected EOF" in _bad(good[:cut])
    assert "unexpected EOF" in _bad(b"k8s\x00" + b"\x0a\x80")  # varint cut mid-way
    assert "integer overflow" in _bad(b"k8s\x00" + b"\x08" + b"\xff" * 11)


def test_wrong_wire_types() -> None:
    assert "wrong wireType = 0" in _bad(envelope("v1", "Namespace", ld(1, vi(1, 3))))
    assert "wrong wireType = 2" in _bad(envelope("apps/v1", "Deployment",
                                                 ld(2, ld(1, "3"))))
    assert "wrong wireType = 0" in _bad(envelope("v1", "Namespace", vi(1, 1)))
    assert "wrong wireType = 0" in _bad(b"k8s\x00" + vi(1, 1))
    assert "illegal wireType 3" in _bad(envelope("v1", "Namespace", varint(1 << 3 | 3)))
    assert "illegal field number 0" in _bad(b"k8s\x00" + varint(0 << 3 | 0) + varint(0))


def test_unknown_or_missing_kind() -> None:
    assert 'no kind "Widget" is registered for version "v1"' in _bad(
        envelope("v1", "Widget", b""))
    assert 'no kind "PodSpec"' in _bad(envelope("v1", "PodSpec", b""))
    assert "Kind" in _bad(envelope("v1", "", b""))


def test_bad_embedded_json_and_encodings() -> None:
    managed = ld(17, ld(7, ld(1, b"{not json")))
    assert "does not hold JSON" in _bad(envelope("v1", "Namespace", ld(1, managed)))
    gz = b"k8s\x00" + ld(1, ld(1, "v1"), ld(2, "Namespace")) + ld(3, "gzip")
    assert "contentEncoding" in _bad(gz)
