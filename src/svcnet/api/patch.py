"""Applying PATCH bodies: strategic merge, JSON merge (RFC 7386), JSON patch (RFC 6902), and a
minimal server-side apply.

kubectl and the Python client choose the patch type by Content-Type (reference/apiserver.md §3,
§8). Strategic merge follows apimachinery's `strategicpatch` semantics, including its ordering
rules and its known quirks (TCP and UDP on one Service port collapse, because the merge key is
`port` alone), because `kubectl apply` computes its patches expecting exactly that server.
Merge strategies come from the schema (`ListOf.merge_key`, `ListOf.primitive_merge`).

Every function here is pure: inputs are never mutated, a new object is returned.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Callable

import jsonpatch  # type: ignore[import-untyped]

from svcnet.api import errors
from svcnet.api.schema import ListOf, MapOf, Struct, Type

Obj = dict[str, Any]  # a decoded JSON object

STRATEGIC_MERGE = "application/strategic-merge-patch+json"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"

_PATCH = "$patch"
_RETAIN_KEYS = "$retainKeys"
_ORDER = "$setElementOrder"            # "$setElementOrder/<field>"
_DELETE_PRIMITIVE = "$deleteFromPrimitiveList"  # "$deleteFromPrimitiveList/<field>"
_MAX_JSON_PATCH_OPS = 10000            # kube-apiserver's limit (handlers/patch.go)

# Server-side apply identifies list-map items by `+listMapKey` tags, which differ from the SMP
# `patchMergeKey` for these lists; everything else uses the SMP merge key.
SSA_LIST_KEYS: dict[tuple[str, str], tuple[str, ...]] = {
    ("V1ServiceSpec", "ports"): ("port", "protocol"),
    ("V1Container", "ports"): ("containerPort", "protocol"),
    ("V1EphemeralContainer", "ports"): ("containerPort", "protocol"),
    ("V1PodSpec", "topologySpreadConstraints"): ("topologyKey", "whenUnsatisfiable"),
}
# Key fields with a schema default: SSA matches a missing `protocol` as "TCP".
_SSA_KEY_DEFAULTS: Obj = {"protocol": "TCP"}
# `+mapType=atomic` fields and `+structType=atomic` types: SSA replaces them wholesale.
_SSA_ATOMIC_FIELDS: set[tuple[str, str]] = {("V1ServiceSpec", "selector"),
                                            ("V1PodSpec", "nodeSelector")}
_SSA_ATOMIC_STRUCTS: set[str] = {"V1LabelSelector", "V1LocalObjectReference", "V1ObjectReference",
                                 "V1NodeSelector"}


def _kind(v: Any) -> str:
    """The JSON kind of a decoded value (bool first: it subclasses int)."""
    for types, name in ((bool, "boolean"), ((int, float), "number"), (str, "string"),
                        (list, "array"), (dict, "object")):
        if isinstance(v, types):
            return name
    return "null" if v is None else type(v).__name__


def _same(a: Any, b: Any) -> bool:
    """Deep equality as Go compares decoded JSON: `true` is not `1`, but `1` equals `1.0`."""
    if _kind(a) != _kind(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def _show(v: Any) -> str:
    return json.dumps(v, sort_keys=True, separators=(",", ":"), default=str)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _bad(path: str, msg: str) -> errors.StatusError:
    """400 naming the field, so a user can find the offending part of a large patch."""
    return errors.bad_request(f"{path}: {msg}" if path else msg)


def _field(t: Type | None, key: str) -> Type | None:
    """Schema of `key` inside `t`; None where the schema knows nothing (JSON-merge fallback)."""
    if isinstance(t, Struct):
        return t.fields.get(key)
    if isinstance(t, MapOf):
        return t.value
    return None


def _directive_field(key: str, prefix: str, path: str) -> str:
    """`$setElementOrder/ports` -> `ports`; anything else starting with the prefix is malformed."""
    head, sep, name = key.partition("/")
    if head != prefix or not sep or not name:
        what = "setElementOrder list" if prefix == _ORDER else "primitive list"
        raise _bad(path, f"invalid patch format of {what}: {key!r}")
    return name


def _unknown_directive(path: str, value: Any, where: Obj) -> errors.StatusError:
    return _bad(path, f"unknown patch type: {value!r} in map: {_show(where)}")


def strategic_merge(original: Obj, patch: Obj, schema: Struct) -> Obj:
    """Apply a strategic-merge patch (application/strategic-merge-patch+json) to `original`.

    Maps merge recursively and `null` deletes; lists merge by `ListOf.merge_key`, primitive-merge
    lists are unions, other lists are replaced. Directives: `$patch` (replace/delete, on maps and
    as list items), `$setElementOrder/<f>`, `$retainKeys`, `$deleteFromPrimitiveList/<f>`; none of
    them appears in the result. Where the schema knows nothing the same rules apply with every
    list replaced, i.e. JSON-merge semantics. Result order of merged lists follows apimachinery
    (patch items in patch order, interleaved with server-only items by their live positions; new
    items come first unless `$setElementOrder` places them). Malformed patches -> 400.
    """
    if not isinstance(patch, dict):
        raise errors.bad_request(
            f"a strategic merge patch must be a JSON object, got {_kind(patch)}")
    return _merge_map(copy.deepcopy(original), copy.deepcopy(patch), schema, "")


def _merge_map(orig: Obj, patch: Obj, t: Type | None, path: str) -> Obj:
    """Merge `patch` into `orig` in place (both are private deep copies) and return the result."""
    if _PATCH in patch:  # apimachinery: delete leaves an empty map, not a missing key
        return {} if patch[_PATCH] == "delete" else _clean_map(patch, path)
    _retain_keys(orig, patch, path)
    _set_element_orders(orig, patch, t, path)
    for key in [k for k in patch if k.startswith(_DELETE_PRIMITIVE)]:
        _delete_from_primitive_list(orig, key, patch.pop(key), path)
    for key, pv in patch.items():
        kp = _join(path, key)
        if pv is None:
            orig.pop(key, None)
        elif key not in orig or _kind(orig[key]) != _kind(pv):
            value, keep = _clean(pv, kp)  # nothing to merge into: take the patch value as is
            if keep:
                orig[key] = value
            else:
                orig.pop(key, None)
        elif isinstance(pv, dict):
            orig[key] = _merge_map(orig[key], pv, _field(t, key), kp)
        elif isinstance(pv, list):
            orig[key] = _merge_list_field(orig[key], pv, _field(t, key), kp)
        else:
            orig[key] = pv
    return orig


def _clean_map(value: Obj, path: str) -> Obj:
    """The map of a `$patch: replace` (or a plain map) minus nulls and directives."""
    if value.get(_PATCH, "replace") != "replace":
        raise _unknown_directive(path, value[_PATCH], value)
    out: Obj = {}
    for k, v in value.items():
        directive = k in (_PATCH, _RETAIN_KEYS) or k.startswith((_ORDER, _DELETE_PRIMITIVE))
        if v is not None and not directive:
            cv, keep = _clean(v, _join(path, k))
            if keep:
                out[k] = cv
    return out


def _clean(value: Any, path: str) -> tuple[Any, bool]:
    """A patch value with nothing to merge into, minus nulls and directives (what apimachinery's
    discardNullValuesFromPatch + removeDirectives do). `keep` is False for `{"$patch":"delete"}`."""
    if isinstance(value, dict):
        return (None, False) if value.get(_PATCH) == "delete" else (_clean_map(value, path), True)
    if isinstance(value, list):
        items = []
        for item in value:
            if isinstance(item, dict) and _PATCH in item:  # list directives are markers, not data
                if item[_PATCH] not in ("delete", "replace"):
                    raise _unknown_directive(path, item[_PATCH], item)
                continue
            items.append(_clean(item, path)[0])
        return items, True
    return value, True


def _retain_keys(orig: Obj, patch: Obj, path: str) -> None:
    """`$retainKeys`: drop every key of `orig` not listed (e.g. Deployment strategy.rollingUpdate
    when switching to Recreate). Every non-null key the patch sets must be listed."""
    if _RETAIN_KEYS not in patch:
        return
    keep = patch.pop(_RETAIN_KEYS)
    if not isinstance(keep, list):
        raise _bad(path, "invalid patch format of retainKeys: $retainKeys must be a list")
    for k, v in patch.items():
        if v is not None and not k.startswith((_ORDER, _DELETE_PRIMITIVE)) and k not in keep:
            raise _bad(path, f"invalid patch format of retainKeys: {k!r} is not in $retainKeys")
    for k in [k for k in orig if k not in keep]:
        del orig[k]


def _delete_from_primitive_list(orig: Obj, key: str, values: Any, path: str) -> None:
    """`$deleteFromPrimitiveList/<f>`: remove these scalars from list `f` (absent list: no-op)."""
    name = _directive_field(key, _DELETE_PRIMITIVE, path)
    if not isinstance(values, list):
        raise _bad(path, f"invalid patch format of primitive list: {key} must be a list")
    if name not in orig:
        return
    if not isinstance(orig[name], list):
        raise _bad(_join(path, name),
                   f"{_DELETE_PRIMITIVE} applies to lists, found {_kind(orig[name])}")
    orig[name] = [x for x in orig[name] if not any(_same(x, v) for v in values)]


def _set_element_orders(orig: Obj, patch: Obj, t: Type | None, path: str) -> None:
    """`$setElementOrder/<f>`: merge list `f` (if patched) and then order it by the directive."""
    for key in [k for k in patch if k.startswith(_ORDER)]:
        order = patch.pop(key)
        name = _directive_field(key, _ORDER, path)
        fp = _join(path, name)
        if not isinstance(order, list):
            raise _bad(path, f"invalid patch format of setElementOrder list: {key} must be a list")
        ov, pv = orig.get(name), patch.get(name)
        if not isinstance(ov, (list, type(None))) or not isinstance(pv, (list, type(None))):
            raise _bad(fp, f"{key} applies to lists only")
        lt = _field(t, name)
        mk = lt.merge_key if isinstance(lt, ListOf) else None
        # The patched items must appear in the directive's list, in the same relative order.
        data = [x for x in pv or [] if not (isinstance(x, dict) and _PATCH in x)]
        j = 0
        for entry in order:
            if j < len(data) and _same(_ident(data[j], mk), _ident(entry, mk)):
                j += 1
        if j < len(data):
            raise _bad(fp, f"the order in patch list {_show(pv)} doesn't match "
                           f"{key} list {_show(order)}")
        if ov is None and pv is None:
            continue
        server = list(ov or [])  # snapshot: merging appends to the live list
        if pv is None:
            merged = server
        elif ov is None:
            merged = _clean(pv, fp)[0]
        else:
            merged = _merge_list_field(ov, pv, lt, fp)
        orig[name] = _order(merged, order, server, mk)
        patch.pop(name, None)


def _ident(x: Any, mk: str | None) -> Any:
    """What identifies a list item: its merge-key value for objects, the value for scalars."""
    return x.get(mk) if mk is not None and isinstance(x, dict) else x


def _order(merged: list[Any], patch_order: list[Any], server_order: list[Any],
           mk: str | None) -> list[Any]:
    """apimachinery's normalizeElementOrder: items named by `patch_order` sorted by it, the rest
    sorted by `server_order`, then interleaved; a server-only item goes before a patch item only
    when both are in `server_order` and it comes first there (so brand-new items lead)."""
    def index(lst: list[Any], x: Any) -> int:
        return next((i for i, y in enumerate(lst) if _same(_ident(y, mk), _ident(x, mk))), -1)

    patched = [x for x in merged if index(patch_order, x) >= 0]
    patched.sort(key=lambda x: index(patch_order, x))
    server = [x for x in merged if index(patch_order, x) < 0]
    server.sort(key=lambda x: index(server_order, x))
    out: list[Any] = []
    i = j = 0
    while i < len(server) or j < len(patched):
        if j >= len(patched) or (i < len(server) and 0 <= index(server_order, server[i])
                                 < index(server_order, patched[j])):
            out.append(server[i])
            i += 1
        else:
            out.append(patched[j])
            j += 1
    return out


def _merge_list_field(ov: list[Any], pv: list[Any], lt: Type | None, path: str) -> list[Any]:
    """Lists with a merge strategy merge; every other list (or unknown field) is replaced."""
    if isinstance(lt, ListOf) and (lt.merge_key or lt.primitive_merge):
        return _merge_list(ov, pv, lt, path)
    return list(_clean(pv, path)[0])


def _merge_list(ov: list[Any], pv: list[Any], lt: ListOf, path: str) -> list[Any]:
    if not ov and not pv:
        return ov
    kinds = {_kind(x) for x in ov + pv}
    if "array" in kinds:
        raise _bad(path, "lists of lists are not supported")
    if len(kinds) > 1:
        raise _bad(path, f"list element types are not identical: {_show(ov)} {_show(pv)}")
    if kinds != {"object"}:  # primitive merge list: a set union
        merged: list[Any] = []
        for x in ov + pv:
            if not any(_same(x, y) for y in merged):
                merged.append(x)
        return _order(merged, pv, ov, None)
    mk = lt.merge_key
    if not mk:
        raise _bad(path, "cannot merge lists of objects without a merge key")
    live, items, replaced = _special_items(list(ov), pv, mk, path)
    if replaced:
        return [_clean(x, path)[0] for x in live]
    server = list(live)
    for item in items:
        idx = next((i for i, x in enumerate(live) if mk in x and _same(x[mk], item[mk])), None)
        if idx is None:
            live.append(_clean(item, path)[0])
        else:  # merge into the live item: this is what keeps an allocated nodePort
            live[idx] = _merge_map(live[idx], item, lt.item, f"{path}[{idx}]")
    return _order(live, items, server, mk)


def _special_items(live: list[Any], pv: list[Any], mk: str,
                   path: str) -> tuple[list[Any], list[Any], bool]:
    """Handle `$patch` list items: delete removes matching live items; replace makes the other
    patch items the whole list. Returns (live items, data items, replaced)."""
    data: list[Any] = []
    replace = False
    for item in pv:
        if _PATCH in item and item[_PATCH] == "replace":
            replace = True
            continue
        if mk not in item:
            raise _bad(path, f"map: {_show(item)} does not contain declared merge key: {mk}")
        if _PATCH not in item:
            data.append(item)
        elif item[_PATCH] == "delete":
            live = [x for x in live if not (mk in x and _same(x[mk], item[mk]))]
        elif item[_PATCH] == "merge":
            raise _bad(path, "merging lists cannot yet be specified in the patch")
        else:
            raise _unknown_directive(path, item[_PATCH], item)
    return (data, [], True) if replace else (live, data, False)


def json_merge_patch(original: Obj, patch: Any) -> Obj:
    """RFC 7386 (application/merge-patch+json): objects merge recursively, `null` deletes,
    everything else (arrays included) replaces. The patch must be an object, since a PATCH
    cannot replace an API object with a scalar or an array (400 otherwise)."""
    if not isinstance(patch, dict):
        raise errors.bad_request(f"a merge patch must be a JSON object, got {_kind(patch)}")
    return dict(_json_merge(copy.deepcopy(original), patch))  # copy: the result shares no subtree


def _json_merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _json_merge(out.get(k), v)
    return out


def json_patch(original: Obj, ops: Any) -> Obj:
    """RFC 6902 (application/json-patch+json), e.g. `kubectl rollout undo`'s replace ops.

    Malformed operations -> 400; an operation that cannot apply (missing path, failed `test`,
    result not an object) -> 422 Invalid naming the operation; more than 10000 ops -> 413.
    Operations apply one by one so the error can say which one failed; all-or-nothing because
    they apply to a private copy."""
    if not isinstance(ops, list):
        raise errors.bad_request(
            f"a JSON patch must be a JSON array of operations, got {_kind(ops)}")
    if len(ops) > _MAX_JSON_PATCH_OPS:
        raise errors.StatusError(413, "RequestEntityTooLarge",
                                 "The allowed maximum operations in a JSON patch is "
                                 f"{_MAX_JSON_PATCH_OPS}, got {len(ops)}")
    doc: Any = copy.deepcopy(original)
    for i, op in enumerate(ops):
        if not isinstance(op, dict):
            raise errors.bad_request(f"JSON patch operation {i} must be an object, got {_kind(op)}")
        what = f"JSON patch operation {i} ({op.get('op')} {op.get('path')})"
        try:
            step = jsonpatch.JsonPatch([op])  # validates the operation's shape
            if op.get("op") == "test":
                # Done here: the library compares with Python ==, which lets `true` match `1`.
                found = jsonpatch.JsonPointer(op["path"]).resolve(doc)
                if not _same(found, op.get("value")):
                    raise errors.StatusError(422, "Invalid", f"{what} failed: value {_show(found)} "
                                             f"is not equal to {_show(op.get('value'))}")
            else:
                doc = step.apply(doc, in_place=True)
        except jsonpatch.InvalidJsonPatch as e:
            raise errors.bad_request(f"invalid {what}: {e}") from e
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException,
                KeyError, IndexError, TypeError, ValueError) as e:
            raise errors.StatusError(422, "Invalid", f"{what} does not apply: {e}") from e
    if not isinstance(doc, dict):
        raise errors.StatusError(422, "Invalid",
                                 f"the JSON patch result is a {_kind(doc)}, not an object")
    return doc


def apply_patch(original: Obj, body: bytes, content_type: str, schema: Struct) -> Obj:
    """Decode `body` and apply it according to `content_type` (parameters such as
    `; charset=utf-8` are ignored). `application/apply-patch+yaml` is not handled here: the caller
    routes it to `server_side_apply`, so it lands in the unknown-type branch (415) like any other
    media type kube-apiserver does not accept for PATCH. Undecodable body -> 400."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in (STRATEGIC_MERGE, MERGE_PATCH, JSON_PATCH):
        raise errors.unsupported_media_type(content_type)
    try:
        doc = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as e:
        raise errors.bad_request(f"error decoding patch body as JSON: {e}") from e
    if media == JSON_PATCH:
        return json_patch(original, doc)
    if media == MERGE_PATCH:
        return json_merge_patch(original, doc)
    return strategic_merge(original, doc, schema)


def _reject_constant(name: str) -> Any:
    """Python's json accepts NaN/Infinity; JSON (and Go) do not."""
    raise ValueError(f"invalid JSON constant {name}")


def server_side_apply(live: Obj | None, applied: Obj, schema: Struct) -> Obj:
    """Minimal server-side apply (reference/apiserver.md §3.3): create-or-merge, no ownership.

    With no live object the result is `applied` without nulls. Otherwise applied fields overwrite
    live ones and fields absent from `applied` are kept (we track no managers, so never remove a
    field and never report a conflict). Maps and structs merge (except SSA-atomic ones); lists
    with a key are list-maps merged by SSA keys (`SSA_LIST_KEYS`, else the merge key), so TCP and
    UDP on one port stay two entries; primitive-merge lists are sets; other lists are replaced.
    Merged list order is live items first, then new applied items (structured-merge-diff's order).
    Duplicate keys in an applied list-map or set -> 400. `null` removes a field."""
    if not isinstance(applied, dict):
        raise errors.bad_request(
            f"an applied configuration must be a JSON object, got {_kind(applied)}")
    if live is None:
        return _clean_map(applied, "")
    return _ssa_map(copy.deepcopy(live), applied, schema, "")


def _ssa_map(live: Obj, applied: Obj, t: Type | None, path: str) -> Obj:
    for key, av in applied.items():
        ft, kp, lv = _field(t, key), _join(path, key), live.get(key)
        atomic = ((isinstance(t, Struct) and (t.name, key) in _SSA_ATOMIC_FIELDS)
                  or (isinstance(ft, Struct) and ft.name in _SSA_ATOMIC_STRUCTS))
        if av is None:
            live.pop(key, None)
        elif not atomic and isinstance(lv, dict) and isinstance(av, dict):
            live[key] = _ssa_map(lv, av, ft, kp)
        elif (not atomic and isinstance(ft, ListOf)
              and isinstance(lv, list) and isinstance(av, list)):
            keys = SSA_LIST_KEYS.get((t.name, key)) if isinstance(t, Struct) else None
            keys = keys or ((ft.merge_key,) if ft.merge_key else None)
            live[key] = _ssa_list(lv, av, ft, keys, kp)
        else:
            live[key] = _clean(av, kp)[0]
    return live


def _ssa_list(lv: list[Any], av: list[Any], lt: ListOf, keys: tuple[str, ...] | None,
              path: str) -> list[Any]:
    if lt.primitive_merge:  # listType=set
        ident: Callable[[Any], str | None] = _show
    elif keys and isinstance(lt.item, Struct):  # listType=map
        def ident(item: Any) -> str | None:
            if not isinstance(item, dict):
                return None
            values = [item.get(k, _SSA_KEY_DEFAULTS.get(k)) for k in keys]
            return None if any(v is None for v in values) else _show(values)
    else:  # atomic
        return list(_clean(av, path)[0])
    wanted: Obj = {}
    for item in av:
        k = ident(item)
        if k is None:
            raise _bad(path, f"element {_show(item)} is missing key fields {list(keys or ())}")
        if k in wanted:
            raise _bad(path, f"duplicate entries for key {k}")
        wanted[k] = item
    out: list[Any] = []
    for item in lv:
        k = ident(item)
        if k is not None and k in wanted:
            new = wanted.pop(k)
            out.append(_ssa_map(item, new, lt.item, path) if isinstance(new, dict) else new)
        else:
            out.append(item)
    out.extend(_clean(x, path)[0] for x in wanted.values())
    return out
