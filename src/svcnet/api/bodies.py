"""Request bodies as bytes -> Python values: JSON and YAML, with what strict decoding needs.

`decode_body(raw, content_type, strict=)` parses JSON (orjson; the stdlib parser with a
pairs hook only under strict, to see repeated keys), YAML (a SafeLoader that keeps
timestamps as strings and object keys as Go would print them), or Kubernetes protobuf.
Under strict parsing, an object that repeated a key comes back as a `_DupDict` carrying
its raw key order, and a YAML document with duplicate keys as a `_YAMLDoc` carrying
yaml's own message; `svcnet.api.decode` turns both into strict-decoding violations.
Parsing errors are 400 Status errors with the wording kube-apiserver uses.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import yaml

from svcnet.api import errors, protobuf
from svcnet.api.errors import StatusError


class DuplicateField(str):
    """A strict violation: the path of a key repeated within one JSON object."""


class YAMLStrictError(str):
    """A strict violation: yaml's own duplicate-key report (`yaml: unmarshal errors: ...`)."""


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
