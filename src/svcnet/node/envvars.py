"""Container environment pieces (PURE): `$(VAR)` expansion, Service link variables and
resourceFieldRef values, each exactly as kubelet computes them.

Kept apart from plan.py because each is a self-contained rule set with its own tests:
the expansion grammar (`$$` escapes, unknown or unterminated references stay literal),
the Docker-link variable family kubelet derives from every visible Service, and the
Kubernetes quantity arithmetic behind resourceFieldRef.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any, Callable, Mapping, Sequence


class EnvError(Exception):
    """A container's environment cannot be built (missing ConfigMap/Secret/key, bad
    fieldPath). The message is kubelet's; the container waits with
    CreateContainerConfigError and this message."""


def expand(text: str, lookup: Callable[[str], str | None]) -> str:
    """Expand `$(NAME)` references like kubelet: `$$` is a literal `$`; a reference
    whose name `lookup` does not know, an unterminated `$(`, and `$` before any other
    character are kept as written."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "$" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            close = text.find(")", i + 2)
            if close < 0:
                out.append("$(")
                i += 2
                continue
            name = text[i + 2:close]
            value = lookup(name)
            out.append(f"$({name})" if value is None else value)
            i = close + 1
        else:
            out.append("$" + nxt)
            i += 2
    return "".join(out)


def _env_name(name: str) -> str:
    return name.replace("-", "_").upper()


def _cluster_ip_set(svc: Mapping[str, Any]) -> bool:
    ip = (svc.get("spec") or {}).get("clusterIP") or ""
    return ip not in ("", "None")


def service_link_vars(svc: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The variables kubelet derives from one Service with a cluster IP, in kubelet's
    order: `<N>_SERVICE_HOST`, `<N>_SERVICE_PORT` (first port), `<N>_SERVICE_PORT_<PORT
    NAME>` per named port, then the Docker-link family `<N>_PORT` (first port) and per
    port `<N>_PORT_<port>_<PROTO>`, `..._PROTO`, `..._PORT`, `..._ADDR`."""
    spec = svc.get("spec") or {}
    ports = spec.get("ports") or []
    if not _cluster_ip_set(svc) or not ports:
        return []
    ip = str(spec["clusterIP"])
    prefix = _env_name(str((svc.get("metadata") or {}).get("name", "")))
    out = [(f"{prefix}_SERVICE_HOST", ip), (f"{prefix}_SERVICE_PORT", str(ports[0]["port"]))]
    for p in ports:
        if p.get("name"):
            out.append((f"{prefix}_SERVICE_PORT_{_env_name(str(p['name']))}", str(p["port"])))
    host = f"[{ip}]" if ":" in ip else ip
    for i, p in enumerate(ports):
        proto = str(p.get("protocol") or "TCP")
        url = f"{proto.lower()}://{host}:{p['port']}"
        if i == 0:
            out.append((f"{prefix}_PORT", url))
        pp = f"{prefix}_PORT_{p['port']}_{proto.upper()}"
        out += [(pp, url), (f"{pp}_PROTO", proto.lower()), (f"{pp}_PORT", str(p["port"])),
                (f"{pp}_ADDR", ip)]
    return out


def service_env(services: Sequence[Mapping[str, Any]], namespace: str,
                enable_service_links: bool) -> dict[str, str]:
    """Service variables for a pod in `namespace`: every Service of that namespace with
    a cluster IP when service links are enabled, and always the `kubernetes` Service of
    `default` (a same-named Service of the pod's own namespace takes precedence)."""
    chosen: dict[str, Mapping[str, Any]] = {}
    for svc in services:
        if not _cluster_ip_set(svc):
            continue
        meta = svc.get("metadata") or {}
        name, ns = str(meta.get("name", "")), str(meta.get("namespace") or "default")
        if ns == "default" and name == "kubernetes":
            chosen.setdefault(name, svc)
        elif ns == namespace and enable_service_links:
            chosen[name] = svc
    env: dict[str, str] = {}
    for name in sorted(chosen):
        env.update(service_link_vars(chosen[name]))
    return env


# --- resourceFieldRef --------------------------------------------------------------------

_SUFFIX: dict[str, Fraction] = {
    "Ki": Fraction(2**10), "Mi": Fraction(2**20), "Gi": Fraction(2**30), "Ti": Fraction(2**40),
    "Pi": Fraction(2**50), "Ei": Fraction(2**60), "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6), "m": Fraction(1, 1000), "": Fraction(1), "k": Fraction(10**3),
    "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12), "P": Fraction(10**15),
    "E": Fraction(10**18)}
_QUANTITY = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)")


def parse_quantity(text: str) -> Fraction:
    """A Kubernetes resource quantity ("250m", "1.5Gi", "1e3") as an exact number."""
    m = _QUANTITY.fullmatch(str(text).strip())
    if not m:
        raise EnvError(f"invalid quantity: {text!r}")
    number = Fraction(m.group(1))
    if m.group(2):
        return number * Fraction(10) ** int(m.group(2)[1:])
    return number * _SUFFIX[m.group(3) or ""]


def resource_field_value(ref: Mapping[str, Any], pod: Mapping[str, Any],
                         container: Mapping[str, Any],
                         allocatable: Mapping[str, str] | None = None) -> str:
    """A resourceFieldRef's value: the container's request or limit divided by
    `divisor` and rounded up (cpu in millicores first, as kubelet). A missing limit
    means the node's allocatable amount (`allocatable`, e.g. {"cpu": "2"}), else the
    request; a missing request means 0."""
    name = ref.get("containerName")
    if name:
        spec = pod.get("spec") or {}
        found = [c for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])
                 if c.get("name") == name]
        if not found:
            raise EnvError(f"container {name} not found")
        container = found[0]
    resource = str(ref.get("resource", ""))
    kind, _, res = resource.partition(".")
    if kind not in ("limits", "requests") or not res:
        raise EnvError(f"unsupported container resource: {resource}")
    resources = container.get("resources") or {}
    value = (resources.get(kind) or {}).get(res)
    if value is None and kind == "limits":
        value = (allocatable or {}).get(res) or (resources.get("requests") or {}).get(res)
    if value is None and kind == "requests":
        value = (resources.get("limits") or {}).get(res)
    quantity = parse_quantity(str(value)) if value is not None else Fraction(0)
    divisor = parse_quantity(str(ref.get("divisor") or "1"))
    if divisor == 0:
        divisor = Fraction(1)
    if res == "cpu":
        return str(math.ceil(math.ceil(quantity * 1000) / math.ceil(divisor * 1000)))
    return str(math.ceil(math.ceil(quantity) / math.ceil(divisor)))
