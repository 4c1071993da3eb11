"""Why a Service has no usable endpoints, in words a user can act on.

The most common Service problem is "everything is green but the Service routes to nothing"
(reference/user-needs.md, problem 1): a selector typo, Pods that never become ready, or a
named targetPort no container declares. Kubernetes reports none of these; svcnet's
EndpointSlice controller records a Warning event on the Service naming the cause, which
`kubectl describe svc` and `kubectl get events` show. This module is the pure part: it
looks at the Service and the namespace's Pods and returns at most one cause, the first of

1. NoMatchingPods      - the selector matches no Pod at all;
2. TargetPortNotFound  - a Service port's named targetPort is declared by none of the
                         selected Pods (checked even while they are unready, since
                         readiness alone would not fix it);
3. NoReadyEndpoints    - Pods match, but none would give a ready endpoint.

`Diagnosis.key` identifies the cause independently of counts that drift (how many Pods),
so the runner can record an event only when the cause changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from svcnet.controllers import podendpoints as pe
from svcnet.controllers.podendpoints import Obj


@dataclass(frozen=True)
class Diagnosis:
    reason: str
    message: str
    key: str


def _selector_text(selector: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


def _names(pods: list[Obj], limit: int = 3) -> str:
    names = [p["metadata"]["name"] for p in pods[:limit]]
    more = f" and {len(pods) - limit} more" if len(pods) > limit else ""
    return ", ".join(names) + more


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _port_label(port: Obj, index: int) -> str:
    name = port.get("name")
    what = f'"{name}"' if name else f"#{index}"
    return f"{what} ({port.get('port')}/{port.get('protocol') or 'TCP'})"


def diagnose(service: Obj, pods: Iterable[Obj]) -> Diagnosis | None:
    """The reason the Service has no usable endpoints, or None when it has some (or when
    it is not one whose endpoints are computed from a selector)."""
    if not pe.manages_endpoints(service):
        return None
    selector = pe.selector_of(service) or {}
    sel = _selector_text(selector)
    ns = service["metadata"].get("namespace") or "default"
    selected = pe.selected_pods(service, pods)
    if not selected:
        return Diagnosis(
            "NoMatchingPods",
            f"Selector {sel} matches no Pods in namespace {ns}, so the Service has no "
            f"endpoints. Compare the selector with the Pods' labels "
            f"(kubectl get pods -n {ns} --show-labels) and fix spec.selector or the Pod "
            f"template labels.",
            f"NoMatchingPods/{sel}")
    spec = service.get("spec") or {}
    for i, port in enumerate(spec.get("ports") or []):
        target = port.get("targetPort")
        if not isinstance(target, str) or target.isdigit():
            continue
        if all(pe.find_port(p, port) is None for p in selected):
            proto = port.get("protocol") or "TCP"
            return Diagnosis(
                "TargetPortNotFound",
                f"Service port {_port_label(port, i)} targets the port named \"{target}\", "
                f"but none of the {_plural(len(selected), 'Pod')} selected by {sel} declares "
                f"a {proto} container port named \"{target}\", so no endpoint serves this "
                f"port. Set spec.ports[{i}].targetPort to a port number or to a name listed "
                f"in the containers' ports.",
                f"TargetPortNotFound/{port.get('name') or i}/{target}")
    publish = bool(spec.get("publishNotReadyAddresses"))
    live = [p for p in selected if not pe.is_terminal(p)]
    usable = [p for p in live if pe.should_be_in_endpoints(p, True)
              and (publish or (pe.is_ready(p) and not pe.is_terminating(p)))]
    if usable:
        return None
    if not live:
        detail = (f"all {_plural(len(selected), 'Pod')} selected by {sel} have finished "
                  f"(phase Succeeded or Failed)")
    else:
        no_ip = [p for p in live if not pe.pod_ips(p)]
        terminating = [p for p in live if pe.is_terminating(p)]
        unready = [p for p in live if p not in no_ip and p not in terminating]
        parts = []
        if unready:
            parts.append(f"not ready: {_names(unready)}")
        if no_ip:
            parts.append(f"no IP yet: {_names(no_ip)}")
        if terminating:
            parts.append(f"terminating: {_names(terminating)}")
        detail = (f"none of the {_plural(len(live), 'Pod')} selected by {sel} is ready "
                  f"({'; '.join(parts)})")
    return Diagnosis(
        "NoReadyEndpoints",
        f"The Service has no ready endpoints: {detail}. Check the Pods' readiness probes "
        f"and events (kubectl describe pods -n {ns} -l {sel}).",
        f"NoReadyEndpoints/{sel}")
