"""The pods/binding subresource: how a scheduler assigns a Pod to a Node.

Kubernetes forbids changing `spec.nodeName` through an ordinary Pod update; the only way
to set it (once) is `POST /api/v1/namespaces/{ns}/pods/{name}/binding` with a Binding
`{metadata: {name, uid?}, target: {kind: Node, name}}`. The server then, in one write,
sets `spec.nodeName`, merges the Binding's annotations into the Pod's and sets the
PodScheduled condition to True. A Pod already assigned or being deleted cannot be bound
(409 Conflict), which is what makes two schedulers racing for one Pod safe.

`validate_binding` and `assign` are pure; `bind` is the read-modify-write against the
store. Like kube-apiserver's BindingREST it writes the stored Pod directly (no Pod
validation or admission runs: only nodeName, annotations and one condition change).
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from svcnet.api import errors
from svcnet.api.kinds import kind_for
from svcnet.apiserver.objectmeta import rfc3339
from svcnet.apiserver.registry import Registry, decode_kv, encode_for_store
from svcnet.store.interface import KeyNotFound, RevisionMismatch

Obj = dict[str, Any]
PODS = kind_for("", "pods")
_RETRIES = 8
# Errors about the binding itself name this resource, as kube's NewConflict does.
_RESOURCE = "pods/binding"


def validate_binding(name: str, binding: Obj) -> None:
    """Raise what kube-apiserver answers for a malformed Binding addressed to pod `name`:
    400 when the names differ, 422 for a target that is not a named Node."""
    meta = binding.get("metadata") or {}
    if meta.get("name") and meta["name"] != name:
        raise errors.bad_request("name in URL does not match name in Binding object")
    target = binding.get("target")
    target = target if isinstance(target, dict) else {}
    errs: list[errors.FieldError] = []
    if target.get("kind") not in (None, "", "Node"):
        errs.append(errors.not_supported("target.kind", target["kind"], ["Node", "<empty>"]))
    if not target.get("name"):
        errs.append(errors.required("target.name"))
    if errs:
        raise errors.invalid_object("Binding", "", name, errs)


def assign(pod: Obj, binding: Obj, now: datetime) -> Obj:
    """The Pod after applying `binding` (a new object; `pod` is left alone).

    Raises 409 Conflict when the Pod is being deleted, is already on a node, or when the
    Binding's metadata.uid (a precondition the scheduler sets) names another Pod."""
    out = copy.deepcopy(pod)
    meta = out["metadata"]
    name = meta["name"]
    want_uid = (binding.get("metadata") or {}).get("uid")
    if want_uid and want_uid != meta.get("uid"):
        raise errors.conflict(_RESOURCE, "", name, f"Precondition failed: UID in precondition: "
                              f"{want_uid}, UID in object meta: {meta.get('uid')}")
    if meta.get("deletionTimestamp"):
        raise errors.conflict(_RESOURCE, "", name,
                              f"pod {name} is being deleted, cannot be assigned to a host")
    spec = out.setdefault("spec", {})
    if spec.get("nodeName"):
        raise errors.conflict(_RESOURCE, "", name,
                              f'pod {name} is already assigned to node "{spec["nodeName"]}"')
    spec["nodeName"] = binding["target"]["name"]
    annotations = (binding.get("metadata") or {}).get("annotations") or {}
    if annotations:
        meta.setdefault("annotations", {}).update(annotations)
    status = out.setdefault("status", {})
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
    old = next((c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"),
               None)
    # The transition time moves only when the status really changes (UpdatePodCondition).
    since = old["lastTransitionTime"] if old and old.get("status") == "True" and \
        old.get("lastTransitionTime") else rfc3339(now)
    conditions.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                       "lastTransitionTime": since})
    status["conditions"] = conditions
    return out


async def bind(registry: Registry, namespace: str, name: str, binding: Obj, *,
               dry_run: bool = False) -> Obj:
    """Bind pod `namespace/name` as `binding` says; returns the updated Pod.

    Retries on write races (another writer changed the Pod between read and write) and
    re-checks the rules each time, so a concurrent binding makes this one fail with 409."""
    validate_binding(name, binding)
    key = PODS.key(namespace, name)
    for _ in range(_RETRIES):
        kv = await registry.store.get(key)
        if kv is None:
            raise errors.not_found("pods", "", name)
        new = assign(decode_kv(kv), binding, registry.now())
        if dry_run:
            return new
        try:
            new_kv = await registry.store.update(key, encode_for_store(new), kv.mod_revision)
        except RevisionMismatch:
            continue
        except KeyNotFound:
            raise errors.not_found("pods", "", name) from None
        new["metadata"]["resourceVersion"] = str(new_kv.mod_revision)
        return new
    raise errors.conflict("pods", "", name)
