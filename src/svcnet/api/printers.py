"""Server-side Table printers: what `kubectl get` shows for each kind.

kubectl 1.32 asks for `application/json;as=Table;v=v1;g=meta.k8s.io` and prints the columns
and cells the server returns verbatim (upper-casing the names, hiding `priority != 0` columns
unless `-o wide`), so every column definition and cell here follows kube-apiserver 1.32
(kubernetes `pkg/printers/internalversion/printers.go`; reference/apiserver.md §2.2–§2.4).
Column descriptions are our own wording; kubectl never shows them.

As the real server does (`pkg/printers/storage`: `GenerateOptions{Wide: true}`), rows always
carry the wide cells, so a LoadBalancer's External-IP is never clipped to 16 characters here.
Cells are str, or int where upstream puts an integer into the cell (Deployment Up-to-date and
Available, ReplicaSet counts, ConfigMap/Secret Data, Event Count) — with upstream's column
`type`, which is "string" for several of those.

Kinds without a printer get apiserver's default table (`pkg/registry/rest/table.go`):
Name + Created At (`date`, RFC 3339 UTC).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from svcnet.api.duration import age, parse_time
from svcnet.api.kinds import Kind
from svcnet.api.printers_format import (format_label_selector, format_labels, join_host_port,
                                        label_selector_string, lb_ingress, list_with_more)
from svcnet.api.printers_pod import pod_cells, pod_row_conditions

__all__ = ["Column", "Printer", "PRINTERS", "table", "format_labels", "format_label_selector",
           "label_selector_string"]

Cell = str | int
Obj = dict[str, Any]
RowFn = Callable[[Obj, datetime], list[Cell]]

INCLUDE_OBJECT_VALUES = ("Metadata", "Object", "None")


@dataclass(frozen=True)
class Column:
    """A metav1.TableColumnDefinition; `priority` 1 marks a wide-only (`-o wide`) column."""

    name: str
    type: str
    description: str
    format: str = ""
    priority: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "format": self.format,
                "description": self.description, "priority": self.priority}


@dataclass(frozen=True)
class Printer:
    """Columns of a kind plus `row(obj, now)` giving one cell per column, in column order.

    `conditions(obj)` optionally returns metav1.TableRowConditions for the row (Pods only).
    """

    columns: tuple[Column, ...]
    row: RowFn
    conditions: Callable[[Obj], list[dict[str, Any]] | None] | None = None


# --- shared cells -------------------------------------------------------------------------------

def _name_col() -> Column:
    return Column("Name", "string", "Name of the object, unique within its namespace or cluster.",
                  format="name")


def _age_col() -> Column:
    return Column("Age", "string", "Time since the object was created.")


def _wide(name: str, description: str) -> Column:
    return Column(name, "string", description, priority=1)


def _meta(obj: Obj) -> dict[str, Any]:
    return obj.get("metadata") or {}


def _name(obj: Obj) -> str:
    return str(_meta(obj).get("name", ""))


def _age(obj: Obj, now: datetime) -> str:
    return age(_meta(obj).get("creationTimestamp"), now)


def _dig(obj: Mapping[str, Any], *path: str) -> Any:
    """obj[path[0]][path[1]]...; None where a level is missing or null."""
    cur: Any = obj
    for key in path:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(key)
    return cur


def _containers_cells(template_spec: Mapping[str, Any] | None) -> list[str]:
    """Containers and Images cells: names and images joined by ","."""
    containers = (template_spec or {}).get("containers") or []
    return [",".join(str(c.get("name", "")) for c in containers),
            ",".join(str(c.get("image", "")) for c in containers)]


# --- per-kind rows ------------------------------------------------------------------------------

def _service_external_ip(spec: Mapping[str, Any], status: Mapping[str, Any]) -> str:
    """External-IP: externalIPs for ClusterIP/NodePort (else `<none>`); for LoadBalancer the
    sorted LB ingress points followed by externalIPs, `<pending>` if neither; ExternalName
    prints its DNS name; an unset type prints `<unknown>`."""
    svc_type = spec.get("type")
    external = list(spec.get("externalIPs") or [])
    if svc_type in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if svc_type == "LoadBalancer":
        points = [p for p in lb_ingress(_dig(status, "loadBalancer", "ingress")).split(",") if p]
        return ",".join(points + external) or "<pending>"
    if svc_type == "ExternalName":
        return str(spec.get("externalName", ""))
    return "<unknown>"


def _service_row(obj: Obj, now: datetime) -> list[Cell]:
    """Cluster-IP is clusterIPs[0] (headless: `None`), falling back to clusterIP as the
    registry's read-time normalisation would; ports are `80/TCP` or `80:30647/TCP`."""
    spec = obj.get("spec") or {}
    cluster_ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    pieces = []
    for p in spec.get("ports") or []:
        node_port = int(p.get("nodePort") or 0)
        via = f":{node_port}" if node_port > 0 else ""
        pieces.append(f"{p.get('port', 0)}{via}/{p.get('protocol', '')}")
    ports = ",".join(pieces)
    return [_name(obj), spec.get("type") or "", cluster_ips[0] if cluster_ips else "<none>",
            _service_external_ip(spec, obj.get("status") or {}), ports or "<none>",
            _age(obj, now), format_labels(spec.get("selector"))]


def _endpoints_cell(subsets: list[dict[str, Any]] | None) -> str:
    """Up to 3 `ip:port` over subsets × ports × ready addresses (bare IPs without ports)."""
    if not subsets:
        return "<none>"
    shown: list[str] = []
    count = 0
    for ss in subsets:
        addresses = [str(a.get("ip", "")) for a in ss.get("addresses") or []]
        ports = ss.get("ports") or []
        if not ports:
            count += len(addresses)
            shown.extend(addresses[: max(0, 3 - len(shown))])
            continue
        for port in ports:
            count += len(addresses)
            for ip in addresses[: max(0, 3 - len(shown))]:
                shown.append(join_host_port(ip, int(port.get("port") or 0)))
    return list_with_more(shown, count, empty="")


def _endpoints_row(obj: Obj, now: datetime) -> list[Cell]:
    return [_name(obj), _endpoints_cell(obj.get("subsets")), _age(obj, now)]


def _endpointslice_row(obj: Obj, now: datetime) -> list[Cell]:
    """Ports: number, else name, else `*`; Endpoints: all addresses, ready or not; both up
    to 3 then ` + N more...`, `<unset>` when empty."""
    ports = []
    for p in obj.get("ports") or []:
        if p.get("port") is not None:
            ports.append(str(p["port"]))
        elif p.get("name") is not None:
            ports.append(str(p["name"]))
        else:
            ports.append("*")
    addresses = [str(a) for e in obj.get("endpoints") or [] for a in e.get("addresses") or []]
    return [_name(obj), obj.get("addressType") or "", list_with_more(ports, len(ports)),
            list_with_more(addresses, len(addresses)), _age(obj, now)]


def _deployment_row(obj: Obj, now: datetime) -> list[Cell]:
    """Ready is `ready/spec.replicas` (replicas defaults to 1); the Selector cell is the
    selector's String(), which upstream leaves "" (not `<none>`) when empty, `<invalid>` on
    an unusable selector."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    replicas = spec.get("replicas")
    desired = 1 if replicas is None else int(replicas)
    try:
        selector = label_selector_string(spec.get("selector"))
    except ValueError:
        selector = "<invalid>"
    return [_name(obj), f"{int(status.get('readyReplicas') or 0)}/{desired}",
            int(status.get("updatedReplicas") or 0), int(status.get("availableReplicas") or 0),
            _age(obj, now), *_containers_cells(_dig(spec, "template", "spec")), selector]


def _replicaset_row(obj: Obj, now: datetime) -> list[Cell]:
    """Desired/Current/Ready as ints; Selector via metav1.FormatLabelSelector."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    replicas = spec.get("replicas")
    return [_name(obj), 1 if replicas is None else int(replicas), int(status.get("replicas") or 0),
            int(status.get("readyReplicas") or 0), _age(obj, now),
            *_containers_cells(_dig(spec, "template", "spec")),
            format_label_selector(spec.get("selector"))]


def _namespace_row(obj: Obj, now: datetime) -> list[Cell]:
    return [_name(obj), _dig(obj, "status", "phase") or "", _age(obj, now)]


def _node_row(obj: Obj, now: datetime) -> list[Cell]:
    """Status from the Ready condition only (False and Unknown both print `NotReady`; no
    condition prints `Unknown`), plus `SchedulingDisabled` when cordoned; Roles from
    `node-role.kubernetes.io/<role>` keys and `kubernetes.io/role` values, sorted."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    # Only the Ready condition counts (the last entry of that type wins, as in a Go map).
    ready = {c.get("type"): c for c in status.get("conditions") or []}.get("Ready")
    if ready is None:
        parts = ["Unknown"]
    else:
        parts = ["Ready" if ready.get("status") == "True" else "NotReady"]
    if spec.get("unschedulable"):
        parts.append("SchedulingDisabled")
    roles: set[str] = set()
    for key, value in (_meta(obj).get("labels") or {}).items():
        if key.startswith("node-role.kubernetes.io/"):
            if role := key[len("node-role.kubernetes.io/"):]:
                roles.add(role)
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    info = status.get("nodeInfo") or {}

    def address(kind: str) -> str:
        for a in status.get("addresses") or []:
            if a.get("type") == kind:
                return str(a.get("address", ""))
        return "<none>"

    return [_name(obj), ",".join(parts), ",".join(sorted(roles)) or "<none>", _age(obj, now),
            info.get("kubeletVersion") or "", address("InternalIP"), address("ExternalIP"),
            info.get("osImage") or "<unknown>", info.get("kernelVersion") or "<unknown>",
            info.get("containerRuntimeVersion") or "<unknown>"]


def _event_row(obj: Obj, now: datetime) -> list[Cell]:
    """Object is `<lowercased kind>/<name>`; Source is `component, host` with the
    reporting controller/instance as fallbacks; Count is an int (1 for singletons)."""
    # Old-API events carry first/lastTimestamp; events.k8s.io ones only eventTime (+series).
    first_ts = obj.get("firstTimestamp")
    first = age(first_ts if parse_time(first_ts) else obj.get("eventTime"), now)
    last_ts = obj.get("lastTimestamp")
    last = age(last_ts, now) if parse_time(last_ts) else first
    count = int(obj.get("count") or 0)
    series = obj.get("series")
    if series is not None:
        last = age(series.get("lastObservedTime"), now)
        count = int(series.get("count") or 0)
    elif count == 0:
        count = 1  # singleton events of the events.k8s.io API carry no count
    involved = obj.get("involvedObject") or {}
    kind = str(involved.get("kind", "")).lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    source = obj.get("source") or {}
    component = source.get("component") or obj.get("reportingController") or ""
    instance = source.get("host") or obj.get("reportingInstance") or ""
    return [last, obj.get("type") or "", obj.get("reason") or "", target,
            involved.get("fieldPath") or "", f"{component}, {instance}" if instance else component,
            str(obj.get("message") or "").strip(), first, count, _name(obj)]


def _configmap_row(obj: Obj, now: datetime) -> list[Cell]:
    return [_name(obj), len(obj.get("data") or {}) + len(obj.get("binaryData") or {}),
            _age(obj, now)]


def _secret_row(obj: Obj, now: datetime) -> list[Cell]:
    return [_name(obj), obj.get("type") or "", len(obj.get("data") or {}), _age(obj, now)]


def _ingress_hosts(rules: list[dict[str, Any]]) -> str:
    """Up to 3 rule hosts; `*` when none; the overflow counts all rules, as upstream does."""
    hosts: list[str] = []
    more = False
    for rule in rules:
        if len(hosts) == 3:
            more = True
        if not more and rule.get("host"):
            hosts.append(str(rule["host"]))
    if not hosts:
        return "*"
    return f"{','.join(hosts)} + {len(rules) - 3} more..." if more else ",".join(hosts)


def _ingress_row(obj: Obj, now: datetime) -> list[Cell]:
    spec = obj.get("spec") or {}
    class_name = spec.get("ingressClassName")
    return [_name(obj), "<none>" if class_name is None else str(class_name),
            _ingress_hosts(spec.get("rules") or []),
            lb_ingress(_dig(obj, "status", "loadBalancer", "ingress")),
            "80, 443" if spec.get("tls") else "80", _age(obj, now)]


def _ingressclass_row(obj: Obj, now: datetime) -> list[Cell]:
    spec = obj.get("spec") or {}
    params = spec.get("parameters")
    text = "<none>"
    if params is not None:
        text = str(params.get("kind", ""))
        if params.get("apiGroup") is not None:
            text += "." + str(params["apiGroup"])
        text += "/" + str(params.get("name", ""))
    return [_name(obj), spec.get("controller") or "", text, _age(obj, now)]


def _networkpolicy_row(obj: Obj, now: datetime) -> list[Cell]:
    return [_name(obj), format_label_selector(_dig(obj, "spec", "podSelector") or {}),
            _age(obj, now)]


# --- the registry -------------------------------------------------------------------------------

_CONTAINERS = _wide("Containers", "Names of the containers in the pod template.")
_IMAGES = _wide("Images", "Images of the containers in the pod template.")

PRINTERS: dict[str, Printer] = {
    "Pod": Printer((
        _name_col(),
        Column("Ready", "string", "Ready containers out of all containers of the pod."),
        Column("Status", "string", "Summary of the pod's phase and container states."),
        Column("Restarts", "string", "Container restarts, and how long ago the last one was."),
        _age_col(),
        _wide("IP", "The pod's primary IP address."),
        _wide("Node", "The node the pod is bound to."),
        _wide("Nominated Node", "The node preemption nominated for the pod."),
        _wide("Readiness Gates", "Readiness gates whose condition is True, out of all gates."),
    ), pod_cells, pod_row_conditions),
    "Service": Printer((
        _name_col(),
        Column("Type", "string", "How the service is exposed."),
        Column("Cluster-IP", "string", "The service's virtual IP inside the cluster."),
        Column("External-IP", "string", "Addresses the service is reachable on from outside."),
        Column("Port(s)", "string", "Service ports, with node ports, and protocols."),
        _age_col(),
        _wide("Selector", "Labels of the pods the service sends traffic to."),
    ), _service_row),
    "Endpoints": Printer((
        _name_col(),
        Column("Endpoints", "string", "Ready endpoint addresses and ports."),
        _age_col(),
    ), _endpoints_row),
    "EndpointSlice": Printer((
        _name_col(),
        Column("AddressType", "string", "Type of the addresses in this slice."),
        Column("Ports", "string", "Ports exposed by the endpoints of this slice."),
        Column("Endpoints", "string", "Addresses of the endpoints in this slice."),
        _age_col(),
    ), _endpointslice_row),
    "Deployment": Printer((
        _name_col(),
        Column("Ready", "string", "Ready pods out of desired pods."),
        Column("Up-to-date", "string", "Pods running the current pod template."),
        Column("Available", "string", "Pods available to serve for at least minReadySeconds."),
        _age_col(), _CONTAINERS, _IMAGES,
        _wide("Selector", "Label selector of the deployment's pods."),
    ), _deployment_row),
    "ReplicaSet": Printer((
        _name_col(),
        Column("Desired", "integer", "Number of pods wanted."),
        Column("Current", "integer", "Number of pods that exist."),
        Column("Ready", "integer", "Number of ready pods."),
        _age_col(), _CONTAINERS, _IMAGES,
        _wide("Selector", "Label selector of the replica set's pods."),
    ), _replicaset_row),
    "Namespace": Printer((
        _name_col(),
        Column("Status", "string", "Lifecycle phase of the namespace."),
        _age_col(),
    ), _namespace_row),
    "Node": Printer((
        _name_col(),
        Column("Status", "string", "Readiness of the node, and whether it is cordoned."),
        Column("Roles", "string", "Roles from the node's node-role labels."),
        _age_col(),
        Column("Version", "string", "Version of the node's kubelet."),
        _wide("Internal-IP", "The node's first internal address."),
        _wide("External-IP", "The node's first external address."),
        _wide("OS-Image", "Operating system image of the node."),
        _wide("Kernel-Version", "Kernel version of the node."),
        _wide("Container-Runtime", "Container runtime name and version of the node."),
    ), _node_row),
    "Event": Printer((
        Column("Last Seen", "string", "Time since the event last occurred."),
        Column("Type", "string", "Type of the event (Normal, Warning)."),
        Column("Reason", "string", "Short machine-readable reason for the event."),
        Column("Object", "string", "The object the event is about."),
        _wide("Subobject", "Part of the object the event is about."),
        _wide("Source", "Component (and host) that reported the event."),
        Column("Message", "string", "Human-readable description of the event."),
        _wide("First Seen", "Time since the event first occurred."),
        _wide("Count", "Number of times the event occurred."),
        Column("Name", "string", "Name of the event object.", format="name", priority=1),
    ), _event_row),
    "ConfigMap": Printer((
        _name_col(),
        Column("Data", "string", "Number of data and binaryData entries."),
        _age_col(),
    ), _configmap_row),
    "Secret": Printer((
        _name_col(),
        Column("Type", "string", "Type of the secret."),
        Column("Data", "string", "Number of data entries."),
        _age_col(),
    ), _secret_row),
    "Ingress": Printer((
        _name_col(),
        Column("Class", "string", "IngressClass that implements this ingress."),
        Column("Hosts", "string", "Hosts the ingress rules match."),
        Column("Address", "string", "Load-balancer addresses of the ingress."),
        Column("Ports", "string", "Ports the ingress serves on."),
        _age_col(),
    ), _ingress_row),
    "IngressClass": Printer((
        _name_col(),
        Column("Controller", "string", "Controller that implements this class."),
        Column("Parameters", "string", "Resource holding extra parameters for the class."),
        _age_col(),
    ), _ingressclass_row),
    "NetworkPolicy": Printer((
        _name_col(),
        Column("Pod-Selector", "string", "Pods the policy applies to."),
        _age_col(),
    ), _networkpolicy_row),
}

_DEFAULT_COLUMNS = (
    _name_col(),
    Column("Created At", "date", "Time the object was created (RFC 3339, UTC)."),
)


def _default_row(obj: Obj, now: datetime) -> list[Cell]:
    """apiserver's default row: name and creationTimestamp as RFC 3339 UTC (Go zero if unset)."""
    t = parse_time(_meta(obj).get("creationTimestamp"))
    created = "0001-01-01T00:00:00Z" if t is None else (
        t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return [_name(obj), created]


# --- the Table ----------------------------------------------------------------------------------

def _row_object(kind: Kind, obj: Obj, include_object: str) -> Any:
    if include_object == "None":
        return None
    if include_object == "Object":
        return {"apiVersion": kind.api_version, "kind": kind.kind, **obj}
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": _meta(obj)}


def table(kind: Kind, objects: list[dict[str, Any]], now: datetime, *,
          include_object: str = "Metadata", list_meta: dict[str, Any] | None = None,
          no_headers: bool = False) -> dict[str, Any]:
    """The meta.k8s.io/v1 Table for `objects` of `kind`, as kube-apiserver 1.32 returns it.

    `now` is the instant Age cells are computed against (the server computes them per
    response). `include_object` is the `includeObject` query parameter: "Metadata" (default,
    what kubectl sends; rows carry PartialObjectMetadata with the full ObjectMeta, which
    kubectl needs for -A, --show-labels and -L), "Object" (the full object, for --sort-by)
    or "None" (`"object": null`); "" means "Metadata". Other values raise ValueError — the
    caller answers 400. `list_meta` (resourceVersion/continue) becomes the Table's metadata.
    With `no_headers`, columnDefinitions is empty. Pod rows of finished pods carry
    `conditions` (Completed=True), as upstream's do.
    """
    include = include_object or "Metadata"
    if include not in INCLUDE_OBJECT_VALUES:
        raise ValueError(f"includeObject must be one of Object, Metadata, or None; "
                         f"got {include_object!r}")
    printer = PRINTERS.get(kind.kind)
    columns = printer.columns if printer else _DEFAULT_COLUMNS
    row_fn = printer.row if printer else _default_row
    rows: list[dict[str, Any]] = []
    for obj in objects:
        row: dict[str, Any] = {"cells": row_fn(obj, now)}
        conditions = printer.conditions(obj) if printer and printer.conditions else None
        if conditions:
            row["conditions"] = conditions
        row["object"] = _row_object(kind, obj, include)
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta or {},
        "columnDefinitions": [] if no_headers else [c.to_json() for c in columns],
        "rows": rows,
    }
