"""Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`).

kubectl's typed clients (`create namespace|configmap|secret|deployment|service|ingress`, ...)
send their bodies as protobuf and do not retry as JSON when the server answers 415, so the
server must read them. We answer in JSON (the clients' Accept header allows it), so only
decoding is needed, and the result is the JSON-shaped dict a JSON body would have parsed to;
everything after `decode_body` (typed decoding, defaulting, validation) is shared.

The format: the 4 bytes `k8s\\x00`, then a `runtime.Unknown` message {1: typeMeta
{1: apiVersion, 2: kind}, 2: raw (the object's own encoding), 3: contentEncoding,
4: contentType}. The object uses the field numbers of k8s.io/api's generated.proto files;
`proto.json` (written by tools/gen_proto.py from the descriptors embedded in kubectl
v1.32.4) gives, per message and field number, the JSON name, the type, whether the field
repeats and whether the Go field is a pointer.

The wire decoder is hand-written (some 150 lines) rather than generated: it only reads
request bodies, the proto2 wire format is small (varint, 64-bit, length-delimited, 32-bit),
and generated bindings would need protoc, the .proto files (which we do not ship) and a
runtime dependency, all to produce objects we would then convert to dicts anyway.

From wire to JSON, following what Go's JSON encoding of the decoded Go struct would give:

- Scalars that are Go pointers (`*int32`, `*bool`) are emitted whenever present, zero
  included (`replicas: 0` means zero, not unset). Plain-value scalars are always on the
  wire, zero included, because Go's marshaler writes them unconditionally; Go's JSON omits
  them when zero (`omitempty`), and so do we, except for the fields in KEEP_ZERO, whose
  JSON tags have no omitempty and whose zero is a real value. Strings are always dropped
  when empty: an empty string and an absent one decode to the same Go value, so nothing
  downstream can tell them apart.
- Embedded messages are emitted when present (Go writes non-pointer structs always, and
  its JSON always prints them, as `{}` when empty); those whose JSON name is "" are Go's
  `json:",inline"` embeddings and their fields are merged into the parent.
- `bytes` (Go []byte: Secret data, ConfigMap binaryData) become base64 strings.
- metav1.Time / MicroTime become RFC 3339 strings (Time in whole seconds, as Go reads it;
  MicroTime with microseconds); the zero time (an empty message) is omitted, which is what
  JSON's `null` means to the typed decoder. IntOrString becomes an int or a string,
  Quantity its string, Duration Go's duration string, RawExtension and FieldsV1 the JSON
  they carry.
- Unknown field numbers are skipped (forward compatibility); malformed input (bad prefix,
  truncated data, a wire type that does not fit the field, an unknown kind) is a 400.
"""

from __future__ import annotations

import base64
import json
import struct
from datetime import datetime, timedelta, timezone
from functools import cache
from importlib import resources
from typing import Any, NoReturn

import orjson

from svcnet.api import errors

__all__ = ["MAGIC", "MEDIA_TYPE", "KEEP_ZERO", "ROOTS", "decode_k8s_protobuf", "root_message"]

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

_CORE, _APPS = "k8s.io.api.core.v1.", "k8s.io.api.apps.v1."
_NET, _META = "k8s.io.api.networking.v1.", "k8s.io.apimachinery.pkg.apis.meta.v1."

# (apiVersion, kind) of the envelope -> root message. DeleteOptions is accepted under any
# apiVersion (see root_message): clients send it in the group of the resource they delete.
ROOTS: dict[tuple[str, str], str] = {
    ("v1", "Namespace"): _CORE + "Namespace",
    ("v1", "Node"): _CORE + "Node",
    ("v1", "Pod"): _CORE + "Pod",
    ("v1", "Service"): _CORE + "Service",
    ("v1", "Endpoints"): _CORE + "Endpoints",
    ("v1", "ConfigMap"): _CORE + "ConfigMap",
    ("v1", "Secret"): _CORE + "Secret",
    ("v1", "Event"): _CORE + "Event",
    ("discovery.k8s.io/v1", "EndpointSlice"): "k8s.io.api.discovery.v1.EndpointSlice",
    ("apps/v1", "Deployment"): _APPS + "Deployment",
    ("apps/v1", "ReplicaSet"): _APPS + "ReplicaSet",
    ("networking.k8s.io/v1", "Ingress"): _NET + "Ingress",
    ("networking.k8s.io/v1", "IngressClass"): _NET + "IngressClass",
    ("networking.k8s.io/v1", "NetworkPolicy"): _NET + "NetworkPolicy",
    ("autoscaling/v1", "Scale"): "k8s.io.api.autoscaling.v1.Scale",
    ("meta.k8s.io/v1", "DeleteOptions"): _META + "DeleteOptions",
}

# Plain-value (non-pointer) numeric and bool fields whose Go JSON tag has no omitempty, so
# that a zero is printed, and means something (port 0 is invalid rather than unset, a
# weight or exit code of 0 is a value). Found by matching the struct tags of k8s.io/api
# v1.32 against proto.json's non-pointer scalars; (message, JSON name).
KEEP_ZERO: frozenset[tuple[str, str]] = frozenset({
    (_CORE + "ContainerPort", "containerPort"),
    (_CORE + "ContainerStateTerminated", "exitCode"),
    (_CORE + "ContainerStatus", "ready"),
    (_CORE + "ContainerStatus", "restartCount"),
    (_CORE + "DaemonEndpoint", "Port"),
    (_CORE + "EndpointPort", "port"),
    (_CORE + "GRPCAction", "port"),
    (_CORE + "ISCSIVolumeSource", "lun"),
    (_CORE + "LinuxContainerUser", "uid"),
    (_CORE + "LinuxContainerUser", "gid"),
    (_CORE + "PortStatus", "port"),
    (_CORE + "PreferredSchedulingTerm", "weight"),
    (_CORE + "ServicePort", "port"),
    (_CORE + "SleepAction", "seconds"),
    (_CORE + "TopologySpreadConstraint", "maxSkew"),
    (_CORE + "WeightedPodAffinityTerm", "weight"),
    (_APPS + "ReplicaSetStatus", "replicas"),
    ("k8s.io.api.autoscaling.v1.ScaleStatus", "replicas"),
    (_NET + "IngressPortStatus", "port"),
})

# Wire types.
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_SCALAR_WIRE: dict[str, int] = {
    "int32": _VARINT, "int64": _VARINT, "uint32": _VARINT, "uint64": _VARINT,
    "sint32": _VARINT, "sint64": _VARINT, "bool": _VARINT,
    "fixed64": _I64, "sfixed64": _I64, "double": _I64,
    "fixed32": _I32, "sfixed32": _I32, "float": _I32,
    "string": _LEN, "bytes": _LEN,
}
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_GO_ZERO_TIME_UNIX = -62135596800  # time.Time{}.Unix(): 0001-01-01T00:00:00Z

FieldSpec = list[Any]  # [json name, type, repeated, pointer]
Table = dict[str, dict[int, FieldSpec]]


def _fail(message: str) -> NoReturn:
    raise errors.bad_request(message)


@cache
def _table() -> Table:
    """proto.json with field numbers as ints."""
    text = resources.files("svcnet.api").joinpath("proto.json").read_text()
    raw: dict[str, dict[str, FieldSpec]] = json.loads(text)
    return {msg: {int(n): spec for n, spec in fields.items()} for msg, fields in raw.items()}


# --- wire format ---------------------------------------------------------------------------

def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """An unsigned varint at `pos` -> (value, next position); at most 10 bytes, as Go."""
    result = shift = 0
    end = len(buf)
    while True:
        if pos >= end:
            _fail("proto: unexpected EOF")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result & 0xFFFFFFFFFFFFFFFF, pos
        shift += 7
        if shift >= 70:
            _fail("proto: integer overflow")


def _fields(buf: bytes) -> list[tuple[int, int, int | bytes]]:
    """Split one message into (field number, wire type, value): an int for varints, the raw
    bytes for the other wire types. Groups (wire types 3/4, unused by Kubernetes) fail."""
    out: list[tuple[int, int, int | bytes]] = []
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        if num <= 0 or num > 0x1FFFFFFF:
            _fail(f"proto: illegal field number {num}")
        value: int | bytes
        if wire == _VARINT:
            value, pos = _varint(buf, pos)
        elif wire in (_I64, _I32):
            size = 8 if wire == _I64 else 4
            if pos + size > end:
                _fail("proto: unexpected EOF")
            value, pos = buf[pos:pos + size], pos + size
        elif wire == _LEN:
            length, pos = _varint(buf, pos)
            if length > end - pos:
                _fail("proto: unexpected EOF")
            value, pos = buf[pos:pos + length], pos + length
        else:
            _fail(f"proto: illegal wireType {wire}")
        out.append((num, wire, value))
    return out


def _signed(v: int, bits: int) -> int:
    """Two's-complement reinterpretation of the low `bits` bits (Go's int32(x)/int64(x))."""
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def _scalar(ptype: str, wire: int, value: int | bytes, where: str) -> Any:
    """One scalar value of proto type `ptype`, as JSON represents the Go value."""
    if isinstance(value, int):
        if ptype == "bool":
            return value != 0
        if ptype in ("int32", "int64"):
            return _signed(value, 32 if ptype == "int32" else 64)
        if ptype in ("sint32", "sint64"):
            return (value >> 1) ^ -(value & 1)
        return value & (0xFFFFFFFF if ptype == "uint32" else 0xFFFFFFFFFFFFFFFF)
    if ptype == "string":
        return value.decode("utf-8", errors="replace")  # Go's JSON writes U+FFFD, too
    if ptype == "bytes":
        return base64.b64encode(value).decode("ascii")
    fmt = {"fixed32": "<I", "sfixed32": "<i", "float": "<f",
           "fixed64": "<Q", "sfixed64": "<q", "double": "<d"}.get(ptype)
    if fmt is None:
        _fail(f"proto: unsupported type {ptype} for field {where}")
    return struct.unpack(fmt, value)[0]


def _packed(ptype: str, raw: bytes) -> list[int | bytes]:
    """The elements of a packed repeated numeric field, as raw wire values."""
    wire = _SCALAR_WIRE[ptype]
    out: list[int | bytes] = []
    pos = 0
    while pos < len(raw):
        if wire == _VARINT:
            v, pos = _varint(raw, pos)
            out.append(v)
        else:
            size = 8 if wire == _I64 else 4
            if pos + size > len(raw):
                _fail("proto: unexpected EOF")
            out.append(raw[pos:pos + size])
            pos += size
    return out


# --- Kubernetes special types --------------------------------------------------------------

def _timestamp(raw: bytes) -> tuple[int, int]:
    seconds = nanos = 0
    for num, wire, value in _fields(raw):
        if num in (1, 2) and not isinstance(value, int):
            _fail(f"proto: wrong wireType = {wire} for field {'seconds' if num == 1 else 'nanos'}")
        if num == 1:
            seconds = _signed(value, 64)  # type: ignore[arg-type]
        elif num == 2:
            nanos = _signed(value, 32)  # type: ignore[arg-type]
    return seconds, nanos


def _time(raw: bytes, micro: bool) -> str | None:
    """metav1.Time (whole seconds: Go drops the nanos it reads) or MicroTime as RFC 3339;
    None for the zero time, which Go writes as an empty message."""
    if not raw:
        return None
    seconds, nanos = _timestamp(raw)
    if not micro:
        nanos = 0
    total_us = seconds * 1_000_000 + nanos // 1000  # floor: Go's Format truncates
    if total_us == _GO_ZERO_TIME_UNIX * 1_000_000 and not nanos % 1000:
        return None
    try:
        t = _EPOCH + timedelta(microseconds=total_us)
    except OverflowError:
        _fail(f"proto: timestamp out of range: {seconds}s")
    # Not strftime: glibc's %Y does not zero-pad years before 1000; Go's layout does.
    text = f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
    return text + (f".{t.microsecond:06d}Z" if micro else "Z")


def _go_duration(ns: int) -> str:
    """time.Duration.String(): 1h2m3.5s, 1.5ms, 0s."""
    if ns == 0:
        return "0s"
    u = abs(ns)

    def frac(v: int, prec: int) -> str:
        whole, rest = divmod(v, 10**prec)
        return str(whole) + ("." + f"{rest:0{prec}d}".rstrip("0") if rest else "")

    if u < 1_000_000_000:
        prec, unit = (0, "ns") if u < 1000 else (3, "µs") if u < 1_000_000 else (6, "ms")
        text = frac(u, prec) + unit
    else:
        secs, rest = divmod(u, 1_000_000_000)
        text = str(secs % 60) + ("." + f"{rest:09d}".rstrip("0") if rest else "") + "s"
        minutes = secs // 60
        if minutes:
            text = f"{minutes % 60}m" + text
            if minutes // 60:
                text = f"{minutes // 60}h" + text
    return "-" + text if ns < 0 else text


def _one(raw: bytes, num: int, ptype: str, name: str) -> Any:
    """The last value of field `num` of scalar type `ptype` in `raw`, or None."""
    out = None
    for n, wire, value in _fields(raw):
        if n == num:
            if wire != _SCALAR_WIRE[ptype]:
                _fail(f"proto: wrong wireType = {wire} for field {name}")
            out = _scalar(ptype, wire, value, name)
    return out


def _json_bytes(raw: bytes, what: str) -> Any:
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        _fail(f"{what} does not hold JSON: {e}")


def _special(spec: str, raw: bytes) -> Any:
    """The JSON value of a message with a custom JSON form; None means "omit"."""
    if spec in ("@time", "@microtime"):
        return _time(raw, spec == "@microtime")
    if spec == "@intstr":
        kind = _one(raw, 1, "int64", "type") or 0
        if kind == 1:
            return _one(raw, 3, "string", "strVal") or ""
        return _one(raw, 2, "int32", "intVal") or 0
    if spec == "@quantity":
        return _one(raw, 1, "string", "string") or "0"
    if spec == "@duration":
        return _go_duration(_one(raw, 1, "int64", "duration") or 0)
    if spec == "@rawextension":
        return _json_bytes(_raw_field(raw), "RawExtension")
    if spec == "@fieldsv1":
        return _json_bytes(_raw_field(raw), "fieldsV1")
    _fail(f"proto: unknown special type {spec}")


def _raw_field(raw: bytes) -> bytes:
    """Field 1 of RawExtension / FieldsV1: the raw JSON bytes."""
    out = b""
    for num, wire, value in _fields(raw):
        if num == 1:
            if wire != _LEN or not isinstance(value, bytes):
                _fail(f"proto: wrong wireType = {wire} for field Raw")
            out = value
    return out


# --- messages ------------------------------------------------------------------------------

def _value(spec: str, wire: int, value: int | bytes, where: str) -> Any:
    """A single (non-repeated-element) value of type `spec`."""
    if spec in _SCALAR_WIRE:
        if wire != _SCALAR_WIRE[spec]:
            _fail(f"proto: wrong wireType = {wire} for field {where}")
        return _scalar(spec, wire, value, where)
    if wire != _LEN or not isinstance(value, bytes):
        _fail(f"proto: wrong wireType = {wire} for field {where}")
    if spec.startswith("@"):
        return _special(spec, value)
    out: dict[str, Any] = {}
    _decode_into(value, spec, out)
    return out


def _zero(spec: str) -> Any:
    """The JSON value of a map entry's missing value (Go leaves the zero value)."""
    if spec in ("string", "bytes"):
        return ""
    if spec == "bool":
        return False
    if spec in _SCALAR_WIRE:
        return 0
    return _value(spec, _LEN, b"", "value")


def _map_entry(spec: str, raw: bytes, where: str) -> tuple[str, Any]:
    """One map<K, V> entry message {1: key, 2: value}; spec is "map:K:V"."""
    _, key_type, value_spec = spec.split(":", 2)
    key: Any = _zero(key_type)
    value: Any = _zero(value_spec)
    for num, wire, v in _fields(raw):
        if num == 1:
            key = _value(key_type, wire, v, where + " key")
        elif num == 2:
            value = _value(value_spec, wire, v, where + " value")
    if isinstance(key, bool):
        key = "true" if key else "false"
    return str(key), value


def _is_zero(v: Any) -> bool:
    return v is False or v == 0 or v == ""


def _decode_into(raw: bytes, message: str, out: dict[str, Any]) -> None:
    """Decode `raw` as `message`, merging into `out` as protobuf merges repeated
    occurrences: scalars last-wins, lists append, maps and messages merge."""
    try:
        fields = _table()[message]
    except KeyError:
        _fail(f"proto: no field table for message {message}")
    for num, wire, value in _fields(raw):
        spec = fields.get(num)
        if spec is None:
            continue  # unknown field: a newer client; Go skips it too
        name, ftype, repeated, pointer = spec
        where = f"{message.rsplit('.', 1)[-1]}.{name or ftype.rsplit('.', 1)[-1]}"
        if ftype.startswith("map:"):
            if wire != _LEN or not isinstance(value, bytes):
                _fail(f"proto: wrong wireType = {wire} for field {where}")
            key, item = _map_entry(ftype, value, where)
            out.setdefault(name, {})[key] = item
        elif repeated:
            items = out.setdefault(name, [])
            if wire == _LEN and ftype in _SCALAR_WIRE and _SCALAR_WIRE[ftype] != _LEN:
                assert isinstance(value, bytes)
                items += [_scalar(ftype, _SCALAR_WIRE[ftype], v, where)
                          for v in _packed(ftype, value)]
            else:
                items.append(_value(ftype, wire, value, where))
        elif name == "":  # json:",inline" embedding
            if wire != _LEN or not isinstance(value, bytes):
                _fail(f"proto: wrong wireType = {wire} for field {where}")
            _decode_into(value, ftype, out)
        elif ftype in _SCALAR_WIRE or ftype.startswith("@"):
            v = _value(ftype, wire, value, where)
            drop = v is None or (ftype in _SCALAR_WIRE and not pointer and _is_zero(v)
                                 and (message, name) not in KEEP_ZERO)
            if drop:
                out.pop(name, None)
            else:
                out[name] = v
        else:
            if wire != _LEN or not isinstance(value, bytes):
                _fail(f"proto: wrong wireType = {wire} for field {where}")
            sub = out.get(name)
            if not isinstance(sub, dict):
                sub = out[name] = {}
            _decode_into(value, ftype, sub)


# --- envelope ------------------------------------------------------------------------------

def root_message(api_version: str, kind: str) -> str:
    """The root message for an envelope's typeMeta; a 400 for kinds we do not decode."""
    message = ROOTS.get((api_version, kind))
    if message is None and kind == "DeleteOptions":
        message = _META + "DeleteOptions"
    if message is None:
        _fail(f'no kind "{kind}" is registered for version "{api_version}"')
    return message


def decode_k8s_protobuf(raw: bytes) -> dict[str, Any]:
    """The JSON-shaped object of a Kubernetes protobuf body, with `apiVersion` and `kind`
    from the envelope's typeMeta. Raises a 400 StatusError on malformed input."""
    if not raw.startswith(MAGIC):
        _fail("provided data does not appear to be a protobuf message, expected prefix "
              "[107 56 115 0]")
    api_version = kind = content_encoding = content_type = ""
    body = b""
    for num, wire, value in _fields(raw[len(MAGIC):]):
        if num not in (1, 2, 3, 4):
            continue
        if wire != _LEN or not isinstance(value, bytes):
            _fail(f"proto: wrong wireType = {wire} for field Unknown.{num}")
        if num == 1:
            api_version = _one(value, 1, "string", "apiVersion") or ""
            kind = _one(value, 2, "string", "kind") or ""
        elif num == 2:
            body = value
        elif num == 3:
            content_encoding = _scalar("string", wire, value, "contentEncoding")
        elif num == 4:
            content_type = _scalar("string", wire, value, "contentType")
    if content_encoding:
        _fail(f"proto: unsupported contentEncoding {content_encoding!r}")
    if content_type and content_type != MEDIA_TYPE:
        _fail(f"proto: unsupported contentType {content_type!r}")
    if not kind:
        _fail("Object 'Kind' is missing in the protobuf envelope")
    obj: dict[str, Any] = {}
    if api_version:
        obj["apiVersion"] = api_version
    obj["kind"] = kind
    _decode_into(body, root_message(api_version, kind), obj)
    return obj
