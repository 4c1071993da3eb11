"""Typed decoding of request bodies: the checks Go's JSON decoding makes on a typed object.

kube-apiserver decodes every body into a Go struct. That decode does three things a client
can observe, and this module reproduces each from the schema in schema.py:

- **Type errors** (a string where an int32 belongs, an object where a list belongs) fail the
  request in every fieldValidation mode, with encoding/json's message shape
  (`json: cannot unmarshal string into Go struct field ServicePort.spec.ports.port of type
  int32`), wrapped as `<Kind> in version "<v>" cannot be handled as a <Kind>: ...`.
- **Unknown fields** are silently dropped (they have nowhere to go in a struct). Under
  fieldValidation=Strict (kubectl's default) they fail the request with
  `strict decoding error: unknown field "spec.foo"`; under Warn they become warnings. The
  caller picks, so `decode` only reports them.
- **Duplicate keys** in one JSON object (or YAML mapping) are reported as strict errors too.
  They are invisible once a body is parsed into dicts, so `decode_body(strict=True)` marks
  the parsed objects that had them and `decode` reports them in document order.

`null` means "unset" for a field (Go leaves a pointer nil), so null fields are dropped.
"""

from __future__ import annotations

from typing import Any


from svcnet.api import errors, schema
from svcnet.api.bodies import (  # decode_body is re-exported: callers use decode.decode_body
    DuplicateField,
    YAMLStrictError,
    _DupDict,
    _YAMLDoc,
    decode_body,
)
from svcnet.api.errors import StatusError
from svcnet.api.goformats import (
    QUANTITY_FORMAT_ERROR,
    check_base64,
    check_quantity,
    check_time,
)
from svcnet.api.goformats import FormatError as _TypeError
from svcnet.api.kinds import Kind
from svcnet.api.schema import ListOf, MapOf, Prim, Struct, Type

# Integer fields that are int64 in Go (everything else integer is int32). The type name
# only shows in error messages and the OpenAPI `format`, but both should say what Go says.
INT64_FIELDS: frozenset[tuple[str, str]] = frozenset({
    ("V1ObjectMeta", "generation"), ("V1ObjectMeta", "deletionGracePeriodSeconds"),
    ("V1PodSpec", "terminationGracePeriodSeconds"), ("V1PodSpec", "activeDeadlineSeconds"),
    ("V1Probe", "terminationGracePeriodSeconds"), ("V1SleepAction", "seconds"),
    ("V1PodSecurityContext", "runAsUser"), ("V1PodSecurityContext", "runAsGroup"),
    ("V1PodSecurityContext", "fsGroup"), ("V1PodSecurityContext", "supplementalGroups"),
    ("V1SecurityContext", "runAsUser"), ("V1SecurityContext", "runAsGroup"),
    ("V1LinuxContainerUser", "uid"), ("V1LinuxContainerUser", "gid"),
    ("V1LinuxContainerUser", "supplementalGroups"), ("V1Toleration", "tolerationSeconds"),
    ("V1ServiceAccountTokenProjection", "expirationSeconds"),
    ("V1DeploymentStatus", "observedGeneration"), ("V1ReplicaSetStatus", "observedGeneration"),
    ("V1Condition", "observedGeneration"), ("V1DeleteOptions", "gracePeriodSeconds"),
})
# map[string][]byte fields: Go base64-decodes their values, so a non-base64 value is a
# decode error ("illegal base64 data at input byte N"). schema.json only says "string".
BYTES_MAP_FIELDS: frozenset[tuple[str, str]] = frozenset({
    ("V1Secret", "data"), ("V1ConfigMap", "binaryData"),
})

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


# --- strict-mode violations ----------------------------------------------------------------

def describe(violation: str) -> str:
    """The text of one strict violation as kube-apiserver words it (also fit for a Warn
    warning): `unknown field "p"`, `duplicate field "p"`, or the YAML decoder's message."""
    if isinstance(violation, YAMLStrictError):
        return str(violation)
    if isinstance(violation, DuplicateField):
        return f'duplicate field "{violation}"'
    return f'unknown field "{violation}"'


def strict_error(kind: Kind, unknown: list[str]) -> StatusError:
    """The 400 BadRequest for a Strict request whose body had unknown/duplicate fields.

    Message shape (upstream runtime.NewStrictDecodingError wrapped by the decoder):
    `Service in version "v1" cannot be handled as a Service: strict decoding error:
    unknown field "spec.foo", unknown field "spec.bar"`.
    """
    detail = "strict decoding error: " + ", ".join(describe(u) for u in unknown)
    return errors.bad_request(_wrap(kind, detail))


def _wrap(kind: Kind, detail: str) -> str:
    return f'{kind.kind} in version "{kind.version}" cannot be handled as a {kind.kind}: {detail}'


_DROP = object()   # edit marker: remove this key
_REPEAT = object()  # value stand-in for a repeated key in a _DupDict's key sequence


def _json_kind(v: Any, with_number: bool = False) -> str:
    """encoding/json's name for the JSON value `v` in UnmarshalTypeError (`Value`)."""
    if isinstance(v, str):
        return "string"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return f"number {_number_text(v)}" if with_number else "number"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


def _number_text(v: int | float) -> str:
    return repr(v) if isinstance(v, float) else str(v)


def _go_type(t: Type, owner: str, field: str) -> str:
    """The Go type name encoding/json prints for a field of schema type `t`."""
    if isinstance(t, Struct):
        return "v1." + t.go_name
    if isinstance(t, ListOf):
        return "[]" + _go_type(t.item, owner, field)
    if isinstance(t, MapOf):
        if isinstance(t.value, Prim) and t.value.name == "quantity":
            return "v1.ResourceList"
        if (owner, field) in BYTES_MAP_FIELDS:
            return "map[string][]uint8"
        return "map[string]" + _go_type(t.value, owner, field)
    return {
        "string": "string", "boolean": "bool", "number": "float64",
        "integer": "int64" if (owner, field) in INT64_FIELDS else "int32",
        "date-time": "v1.Time", "int-or-string": "intstr.IntOrString",
        "quantity": "resource.Quantity", "any": "interface {}",
    }[t.name]


def _type_error(value: Any, go_type: str, owner: Struct | None, gopath: str,
                with_number: bool = False) -> _TypeError:
    what = _json_kind(value, with_number)
    if owner is None:
        return _TypeError(f"json: cannot unmarshal {what} into Go value of type {go_type}")
    return _TypeError(f"json: cannot unmarshal {what} into Go struct field "
                      f"{owner.go_name}.{gopath} of type {go_type}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class _Walker:
    """One decode pass: collects strict violations in document order."""

    __slots__ = ("violations", "strict")

    def __init__(self, strict: bool) -> None:
        self.violations: list[str] = []
        self.strict = strict

    def struct(self, s: Struct, obj: dict[str, Any], path: str, gopath: str) -> dict[str, Any]:
        """Check `obj` against `s`; return it, or a shallow copy with unknown/null keys
        dropped and changed children replaced (copies only along changed paths)."""
        fields = s.fields
        edits: list[tuple[str, Any]] | None = None
        items: Any = obj.items()
        if type(obj) is _DupDict and self.strict:
            items = self._dup_items(obj)
        for k, v in items:
            t = fields.get(k)
            if t is None:
                if v is not _REPEAT:
                    self.violations.append(_join(path, k))
                    if edits is None:
                        edits = []
                    edits.append((k, _DROP))
                continue
            if v is None:
                if edits is None:
                    edits = []
                edits.append((k, _DROP))
                continue
            if v is _REPEAT:
                self.violations.append(DuplicateField(_join(path, k)))
                continue
            nv = self.value(t, v, s, k, path, gopath)
            if nv is not v:
                if edits is None:
                    edits = []
                edits.append((k, nv))
        if edits is None:
            return obj
        out = dict(obj)
        for k, nv in edits:
            if nv is _DROP:
                out.pop(k, None)
            else:
                out[k] = nv
        return out

    @staticmethod
    def _dup_items(obj: _DupDict) -> list[tuple[str, Any]]:
        seen: set[str] = set()
        out: list[tuple[str, Any]] = []
        for k in obj.key_seq:
            if k in seen:
                out.append((k, _REPEAT))
            else:
                seen.add(k)
                out.append((k, obj[k]))
        return out

    def value(self, t: Type, v: Any, owner: Struct, field: str, path: str, gopath: str) -> Any:
        """Check the non-null value `v` of field `field` of `owner`; return it or a cleaned
        replacement."""
        if type(t) is Prim:
            self.prim(t.name, v, owner, field, _join(gopath, field))
            return v
        gp = _join(gopath, field)
        if type(t) is Struct:
            if isinstance(v, dict):
                return self.struct(t, v, _join(path, field), gp)
        elif type(t) is ListOf:
            if isinstance(v, list):
                return self.list(t, v, owner, field, _join(path, field), gp)
        elif type(t) is MapOf:
            if isinstance(v, dict):
                return self.map(t, v, owner, field, _join(path, field), gp)
        raise _type_error(v, _go_type(t, owner.name, field), owner, gp)

    def list(self, t: ListOf, v: list[Any], owner: Struct, field: str, path: str,
             gopath: str) -> list[Any]:
        item = t.item
        out: list[Any] | None = None
        if type(item) is Prim:
            name = item.name
            for i, x in enumerate(v):
                if x is None:
                    if out is None:
                        out = list(v)
                    out[i] = _zero(item)
                else:
                    self.prim(name, x, owner, field, gopath)
            return v if out is None else out
        for i, x in enumerate(v):
            if x is None:
                nx: Any = _zero(item)
            elif type(item) is Struct:
                if not isinstance(x, dict):
                    raise _type_error(x, _go_type(item, owner.name, field), owner, gopath)
                nx = self.struct(item, x, f"{path}[{i}]", gopath)
            else:  # lists of lists / maps do not occur in our kinds; check them generically
                nx = self.value(item, x, owner, field, f"{path}[{i}]", gopath)
            if nx is not x:
                if out is None:
                    out = list(v)
                out[i] = nx
        return v if out is None else out

    def map(self, t: MapOf, v: dict[str, Any], owner: Struct, field: str, path: str,
            gopath: str) -> dict[str, Any]:
        val = t.value
        edits: list[tuple[str, Any]] | None = None
        items: Any = v.items()
        if type(v) is _DupDict and self.strict:
            items = self._dup_items(v)
        bytes_map = (owner.name, field) in BYTES_MAP_FIELDS
        for k, x in items:
            if x is _REPEAT:
                self.violations.append(DuplicateField(_join(path, k)))
                continue
            if x is None:
                nx: Any = _zero(val)
            elif type(val) is Prim:
                self.prim(val.name, x, owner, field, gopath)
                if bytes_map:
                    check_base64(x)
                continue
            elif type(val) is Struct:
                if not isinstance(x, dict):
                    raise _type_error(x, _go_type(val, owner.name, field), owner, gopath)
                nx = self.struct(val, x, _join(path, k), gopath)
            else:
                nx = self.value(val, x, owner, field, _join(path, k), gopath)
            if nx is not x:
                if edits is None:
                    edits = []
                edits.append((k, nx))
        if edits is None and type(v) is dict:
            return v
        out = dict(v)
        for k, nx in edits or ():
            out[k] = nx
        return out

    @staticmethod
    def prim(name: str, v: Any, owner: Struct, field: str, gopath: str) -> None:
        """Raise the Go decoding error if scalar `v` does not fit primitive `name`."""
        tv = type(v)
        if name == "string":
            if tv is str:
                return
            raise _type_error(v, "string", owner, gopath)
        if name == "integer":
            go = "int64" if (owner.name, field) in INT64_FIELDS else "int32"
            if tv is int:
                lo, hi = _INT64 if go == "int64" else _INT32
                if lo <= v <= hi:
                    return
                raise _type_error(v, go, owner, gopath, with_number=True)
            raise _type_error(v, go, owner, gopath, with_number=tv is float)
        if name == "boolean":
            if tv is bool:
                return
            raise _type_error(v, "bool", owner, gopath)
        if name == "date-time":
            if tv is str:
                check_time(v)
                return
            # metav1.Time unmarshals a JSON string first; the inner error names `string`.
            raise _type_error(v, "string", owner, gopath)
        if name == "int-or-string":
            if tv is str:
                return
            if tv is int and _INT32[0] <= v <= _INT32[1]:
                return
            # IntOrString unmarshals non-strings into its int32.
            raise _type_error(v, "int32", owner, gopath, with_number=tv in (int, float))
        if name == "quantity":
            if tv is str:
                check_quantity(v)
            elif tv in (int, float):
                check_quantity(_number_text(v))
            else:
                # resource.Quantity parses the raw JSON text; `true`, `{...}` fail its syntax.
                raise _TypeError(QUANTITY_FORMAT_ERROR)
            return
        if name == "number":
            if tv in (int, float):
                return
            raise _type_error(v, "float64", owner, gopath)
        # "any": free-form (managedFields[].fieldsV1 and similar raw JSON)


def _zero(t: Type) -> Any:
    """Go's zero value for a null list item / map value (null leaves the element zeroed)."""
    if isinstance(t, Struct):
        return {}
    if isinstance(t, Prim):
        return {"string": "", "integer": 0, "boolean": False, "number": 0,
                "int-or-string": 0, "quantity": "0"}.get(t.name)
    return None


def decode(kind: Kind, obj: Any, *, strict: bool) -> tuple[dict[str, Any], list[str]]:
    """Check a parsed body against `kind`'s schema, as Go's typed decoding would.

    Returns `(object, violations)`: the object with unknown and null fields dropped (the
    input itself when nothing had to change — no copies are made then; otherwise only the
    changed containers are copied), and the strict violations in document order. A violation
    is the path of an unknown field (`spec.ports[0].foo`), or a `DuplicateField` /
    `YAMLStrictError` (only when the body was parsed by `decode_body(strict=True)`); format
    them with `describe`. The caller rejects them under fieldValidation=Strict (with
    `strict_error`), warns under Warn, ignores them under Ignore.

    Raises StatusError 400 for type errors, in every mode: Go cannot decode such a body at all.
    `strict` only enables duplicate-key reporting; unknown fields are always reported.
    """
    root = schema.root(kind.client_type)
    walker = _Walker(strict)
    if strict and type(obj) is _YAMLDoc:
        # yaml.v2 reports all repeated keys in one error, before the JSON decoder's errors.
        walker.violations.append(YAMLStrictError(
            "yaml: unmarshal errors:\n  " + "\n  ".join(obj.yaml_errors)))
    try:
        if not isinstance(obj, dict):
            raise _type_error(obj, "v1." + root.go_name, None, "")
        out = walker.struct(root, obj, "", "")
    except _TypeError as e:
        raise errors.bad_request(_wrap(kind, str(e))) from None
    violations = walker.violations
    if len(violations) > 1:
        # Go reports each distinct message once (and at most 100 of them).
        seen: set[tuple[type, str]] = set()
        unique: list[str] = []
        for v in violations:
            key = (type(v), str(v))
            if key not in seen:
                seen.add(key)
                unique.append(v)
        violations = unique[:100]
    return out, violations


# Exposed so openapi.py formats integers and byte maps the same way decoding treats them.
def integer_format(owner: str, field: str) -> str:
    """"int64" or "int32": the Go width of integer field `field` of client type `owner`."""
    return "int64" if (owner, field) in INT64_FIELDS else "int32"


__all__ = ["BYTES_MAP_FIELDS", "DuplicateField", "INT64_FIELDS", "YAMLStrictError", "decode",
           "decode_body", "describe", "integer_format", "strict_error"]
