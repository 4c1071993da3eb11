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

import binascii
import json
import re
from base64 import b64decode
from typing import Any

import orjson
import yaml

from svcnet.api import errors, protobuf, schema
from svcnet.api.errors import StatusError
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

class DuplicateField(str):
    """A strict violation: the path of a key repeated within one JSON object."""


class YAMLStrictError(str):
    """A strict violation: yaml's own duplicate-key report (`yaml: unmarshal errors: ...`)."""


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


# --- parsing ------------------------------------------------------------------------------

class _DupDict(dict[str, Any]):
    """A parsed JSON object that repeated at least one key.

    `key_seq` is the raw key order including repeats; the dict itself holds the last value
    for each key (as Go's decoder, which overwrites). Only created by strict parsing, and
    only for objects that actually had duplicates, so ordinary objects stay plain dicts.
    """

    __slots__ = ("key_seq",)
    key_seq: list[str]


class _YAMLDoc(dict[str, Any]):
    """A parsed YAML root mapping that carries yaml-level strict errors (duplicate keys)."""

    __slots__ = ("yaml_errors",)
    yaml_errors: list[str]


def _pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) == len(pairs):
        return d
    out = _DupDict(d)
    out.key_seq = [k for k, _ in pairs]
    return out


def _is_yaml(media: str) -> bool:
    return media.endswith("yaml")


def _is_json(media: str) -> bool:
    # A missing Content-Type (aiohttp reports application/octet-stream) is read as JSON.
    return media.endswith("json") or media in ("", "application/octet-stream")


def decode_body(raw: bytes, content_type: str, *, strict: bool = False) -> Any:
    """Parse a request body as JSON, as YAML when the media type says yaml, or as
    Kubernetes protobuf (which kubectl's typed clients send for `kubectl create namespace|
    deployment|configmap|secret|service|ingress`).

    Bad input is a 400 BadRequest carrying the parser's reason; other media types
    (CBOR, forms) are a 415 UnsupportedMediaType. With `strict`, repeated keys
    are recorded on the parsed objects (see `decode`), which costs a second, stdlib parse of
    JSON bodies; the first, fast orjson parse is what rejects malformed input.
    YAML bodies that are plainly JSON (kubectl sends apply patches as JSON) take the JSON
    path: it is faster and reports duplicates with JSON paths, as upstream's JSON decoding
    of the converted body would.
    """
    media = content_type.split(";", 1)[0].strip().lower()
    if media == protobuf.MEDIA_TYPE:
        return protobuf.decode_k8s_protobuf(raw)
    if not (_is_json(media) or _is_yaml(media)):
        raise StatusError(415, "UnsupportedMediaType",
                          "the body of the request was in an unknown format - accepted media "
                          f'types include: application/json, application/yaml (got "{media}")')
    if _is_yaml(media):
        head = raw.lstrip()[:1]
        if head == b"{":
            try:
                return _decode_json(raw, strict)
            except ValueError:
                pass  # not JSON after all (flow-style YAML); let the YAML parser judge it
        return _decode_yaml(raw, strict)
    try:
        return _decode_json(raw, strict)
    except ValueError as e:
        if media.endswith("patch+json"):
            raise errors.bad_request(f"error decoding patch: {e}") from None
        raise errors.bad_request(f"couldn't get version/kind; json parse error: {e}") from None


def _decode_json(raw: bytes, strict: bool) -> Any:
    value = orjson.loads(raw)  # raises orjson.JSONDecodeError, a ValueError
    if strict and isinstance(value, (dict, list)):
        # orjson keeps the last of repeated keys without telling; the stdlib parser's hook
        # sees every pair. Its result replaces orjson's (same values, dups marked).
        value = json.loads(raw, object_pairs_hook=_pairs_hook)
    return value


def _yaml_key(key: Any) -> str:
    """YAML allows non-string keys; Go's YAML-to-JSON conversion stringifies them."""
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    return str(key)


_BaseLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):
    """SafeLoader with JSON-compatible results: timestamps stay strings (Go's YAML-to-JSON
    conversion keeps them as text; datetime objects would not even serialize), keys are
    strings, and, when `strict`, repeated keys are collected as yaml.v2 reports them."""

    strict = False

    def __init__(self, stream: bytes) -> None:
        super().__init__(stream)
        self.dup_errors: list[str] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if self.strict and isinstance(node, yaml.MappingNode):
            seen: set[tuple[str, str]] = set()
            for key_node, _ in node.value:
                if (not isinstance(key_node, yaml.ScalarNode)
                        or key_node.tag == "tag:yaml.org,2002:merge"):
                    continue  # merge keys (<<) legitimately repeat keys
                ident = (key_node.tag, key_node.value)
                if ident in seen:
                    self.dup_errors.append(f'line {key_node.start_mark.line + 1}: key '
                                           f'{json.dumps(key_node.value)} already set in map')
                seen.add(ident)
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        if any(not isinstance(k, str) for k in mapping):
            mapping = {_yaml_key(k): v for k, v in mapping.items()}
        return mapping


def _construct_scalar_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    return loader.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_scalar_text)
_Loader.add_constructor("tag:yaml.org,2002:binary", _construct_scalar_text)


class _StrictLoader(_Loader):
    strict = True


def _decode_yaml(raw: bytes, strict: bool) -> Any:
    loader = (_StrictLoader if strict else _Loader)(raw)
    try:
        value = loader.get_single_data()
    except yaml.MarkedYAMLError as e:
        line = f"line {e.problem_mark.line + 1}: " if e.problem_mark is not None else ""
        raise errors.bad_request(
            f"error converting YAML to JSON: yaml: {line}{e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise errors.bad_request(f"error converting YAML to JSON: yaml: {e}") from None
    finally:
        loader.dispose()
    if loader.dup_errors and isinstance(value, dict):
        doc = _YAMLDoc(value)
        doc.yaml_errors = loader.dup_errors
        return doc
    return value


# --- typed checking -----------------------------------------------------------------------

class _TypeError(Exception):
    """A Go-decoding error; `decode` wraps its text with the kind."""


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


# Quantity syntax (k8s.io/apimachinery resource.ParseQuantity): signed decimal number, then a
# binary-SI, decimal-SI or exponent suffix. The regex in the error text is upstream's wording.
_QUANTITY_FORMAT_ERROR = ("quantities must match the regular expression "
                          "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
_QUANTITY = re.compile(r"[+-]?([0-9]*)(?:\.([0-9]*))?([eEinumkKMGTP]*[+-]?[0-9]*)")
_QUANTITY_SUFFIX = re.compile(r"(?:|[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)")


def _check_quantity(text: str) -> None:
    """Raise resource.ParseQuantity's error for text that is not a quantity: the shape
    (number, then suffix letters, then an optional signed exponent) is a format error,
    a well-shaped but unknown suffix (`1ki`, `1Mm`) a suffix error."""
    m = _QUANTITY.fullmatch(text.strip())
    if m is None or not (m.group(1) or m.group(2)):
        raise _TypeError(_QUANTITY_FORMAT_ERROR)
    if not _QUANTITY_SUFFIX.fullmatch(m.group(3)):
        raise _TypeError("unable to parse quantity's suffix")


# RFC 3339 as Go's time.Parse(time.RFC3339, s) accepts it (fractional seconds optional).
_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:[.,]\d+)?"
                      r"(?:Z|[+-](\d{2}):(\d{2}))")
_LAYOUT = "2006-01-02T15:04:05Z07:00"
# (layout element, pattern matching it at the start of the remaining text)
_LAYOUT_STEPS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("2006", re.compile(r"\d{4}")), ("-", re.compile("-")), ("01", re.compile(r"\d{2}")),
    ("-", re.compile("-")), ("02", re.compile(r"\d{2}")), ("T", re.compile("T")),
    ("15", re.compile(r"\d{1,2}")), (":", re.compile(":")), ("04", re.compile(r"\d{2}")),
    (":", re.compile(":")), ("05", re.compile(r"\d{2}(?:[.,]\d+)?")),
    ("Z07:00", re.compile(r"Z|[+-]\d{2}:\d{2}")),
)
_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _check_time(text: str) -> None:
    """Raise Go's time.Parse error for a string that is not RFC 3339."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        pos = 0
        for elem, pat in _LAYOUT_STEPS:
            step = pat.match(text, pos)
            if step is None:
                raise _TypeError(f'parsing time {_go_quote(text)} as "{_LAYOUT}": cannot parse '
                                 f'{_go_quote(text[pos:])} as "{elem}"')
            pos = step.end()
        raise _TypeError(f'parsing time {_go_quote(text)}: extra text: {_go_quote(text[pos:])}')
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    problem = ""
    if not 1 <= month <= 12:
        problem = "month"
    elif hour > 23:
        problem = "hour"
    elif minute > 59:
        problem = "minute"
    elif second > 59:
        problem = "second"
    elif not 1 <= day <= _DAYS[month - 1] or (month == 2 and day == 29 and not _leap(year)):
        problem = "day"
    if problem:
        raise _TypeError(f"parsing time {_go_quote(text)}: {problem} out of range")


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _go_quote(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def _check_base64(text: str) -> None:
    """Go's base64.StdEncoding: padded standard alphabet; CR/LF ignored."""
    try:
        b64decode(text.replace("\r", "").replace("\n", ""), validate=True)
        return
    except (binascii.Error, ValueError):
        pass
    offset = len(text)
    for i, ch in enumerate(text):
        if not (ch.isascii() and (ch.isalnum() or ch in "+/=\r\n")):
            offset = i
            break
    else:
        stripped = [i for i, ch in enumerate(text) if ch not in "\r\n"]
        offset = stripped[len(stripped) - len(stripped) % 4] if len(stripped) % 4 else len(text)
    raise _TypeError(f"illegal base64 data at input byte {offset}")


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
                    _check_base64(x)
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
                _check_time(v)
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
                _check_quantity(v)
            elif tv in (int, float):
                _check_quantity(_number_text(v))
            else:
                # resource.Quantity parses the raw JSON text; `true`, `{...}` fail its syntax.
                raise _TypeError(_QUANTITY_FORMAT_ERROR)
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
