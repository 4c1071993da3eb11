"""EndpointSlice values shared by the EndpointSlice and mirroring controllers.

The plan type both reconcile functions return, and the identities upstream uses to compare
desired and existing slices: an endpoint is identified by its addresses, hostname and
target Pod (so a readiness or zone change is an in-place update, not a remove + add), a
slice's port set by its ports regardless of order.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Iterable

from svcnet.controllers.podendpoints import Obj

EndpointKey = tuple[tuple[str, ...], str, str, str]
PortKey = tuple[tuple[str, int, str, str], ...]


@dataclass
class SlicePlan:
    """The writes that bring a Service's (or Endpoints') slices to the desired state.

    `create` holds new slices (generateName set, no name); `update` holds full slice
    objects carrying the name and resourceVersion of the slice they replace; `delete`
    holds the existing slices to remove. `warnings` are (reason, message) pairs the runner
    records as Warning events; `missing_nodes` lists (Pod, Node) for selected Pods left out
    because their Node is not (yet) known (the runner reports them and retries later).
    """

    create: list[Obj] = field(default_factory=list)
    update: list[Obj] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    missing_nodes: list[tuple[str, str]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.create or self.update or self.delete)


def endpoint_key(ep: Obj) -> EndpointKey:
    """Upstream hashEndpoint: sorted addresses, hostname, targetRef namespace and name."""
    ref = ep.get("targetRef") or {}
    return (tuple(sorted(str(a) for a in ep.get("addresses") or [])), ep.get("hostname") or "",
            ref.get("namespace") or "", ref.get("name") or "")


def _ref_without_rv(ref: Any) -> Any:
    if not isinstance(ref, dict):
        return ref
    return {k: v for k, v in ref.items() if k != "resourceVersion" and v not in (None, "")}


def endpoints_equal_beyond_key(a: Obj, b: Obj) -> bool:
    """Upstream EndpointsEqualBeyondHash: nodeName, zone, the three conditions and the
    targetRef (ignoring its resourceVersion). Hints and other fields do not count."""
    if a.get("nodeName") != b.get("nodeName") or a.get("zone") != b.get("zone"):
        return False
    ca, cb = a.get("conditions") or {}, b.get("conditions") or {}
    for cond in ("ready", "serving", "terminating"):
        if ca.get(cond) != cb.get(cond):
            return False
    return bool(_ref_without_rv(a.get("targetRef")) == _ref_without_rv(b.get("targetRef")))


def port_key(ports: Iterable[Obj] | None) -> PortKey:
    """Order-insensitive identity of a slice's port set (name "" and TCP by default, as the
    API server defaults them)."""
    return tuple(sorted((str(p.get("name") or ""), int(p.get("port") or 0),
                         str(p.get("protocol") or "TCP"), str(p.get("appProtocol") or ""))
                        for p in ports or []))


def sorted_endpoints(eps: Iterable[Obj]) -> list[Obj]:
    """Deterministic order for endpoints being placed (upstream pops from a hash set)."""
    return sorted(eps, key=endpoint_key)


def clone(obj: Obj) -> Obj:
    return copy.deepcopy(obj)


def recycle(plan: SlicePlan, same_owner: Any = None) -> None:
    """Turn creates into updates of slices that would otherwise be deleted (same address
    type), in place: fewer API writes and fewer slice names for consumers to churn through.

    Creates are taken from the end, as upstream finalize does. `same_owner(slice)` may veto
    reusing a slice (the EndpointSlice controller refuses slices of an older Service with
    the same name, which garbage collection is about to remove).
    """
    i = 0
    while i < len(plan.delete) and plan.create:
        old = plan.delete[i]
        new = plan.create[-1]
        if old.get("addressType") == new.get("addressType") and (
                same_owner is None or same_owner(old)):
            plan.create.pop()
            meta = new["metadata"]
            meta.pop("generateName", None)
            meta["name"] = old["metadata"]["name"]
            if old["metadata"].get("resourceVersion"):
                meta["resourceVersion"] = old["metadata"]["resourceVersion"]
            plan.update.append(new)
            plan.delete.pop(i)
        else:
            i += 1
