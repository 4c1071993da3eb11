"""Generate src/svcnet/api/schema.json from the official Python client's model metadata.

The API server must accept exactly the fields Kubernetes v1.32 accepts, with their JSON
names and value types. The `kubernetes` Python client (32.x, which tracks v1.32) carries
those structural facts (`openapi_types` and `attribute_map` of every model class), so we
derive our schema from it instead of typing several hundred field lists by hand. Only
names and types are taken; no descriptions or code.

Run: python tools/gen_schema.py > src/svcnet/api/schema.json
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import kubernetes.client.models as models

# Root model classes of the kinds we serve (plus the kinds of a few subresources).
ROOTS = [
    "V1Namespace", "V1Node", "V1Pod", "V1Service", "V1Endpoints", "V1ConfigMap",
    "V1Secret", "CoreV1Event", "V1EndpointSlice", "V1Deployment", "V1ReplicaSet",
    "V1Ingress", "V1IngressClass", "V1NetworkPolicy", "V1Scale", "V1DeleteOptions",
]

# The client types these as `object`: Kubernetes' IntOrString.
INT_OR_STRING = {
    ("V1ServicePort", "target_port"), ("V1HTTPGetAction", "port"),
    ("V1TCPSocketAction", "port"), ("V1RollingUpdateDeployment", "max_surge"),
    ("V1RollingUpdateDeployment", "max_unavailable"), ("V1NetworkPolicyPort", "port"),
}
# The client types resource.Quantity maps as dict(str, str) but the server takes 1 or "1".
QUANTITY_MAPS = {
    ("V1ResourceRequirements", "limits"), ("V1ResourceRequirements", "requests"),
    ("V1NodeStatus", "capacity"), ("V1NodeStatus", "allocatable"),
    ("V1VolumeResourceRequirements", "limits"), ("V1VolumeResourceRequirements", "requests"),
    ("V1PodSpec", "overhead"), ("V1ContainerStatus", "allocated_resources"),
}
QUANTITY = {("V1EmptyDirVolumeSource", "size_limit")}

PRIMS = {"str": "string", "int": "integer", "bool": "boolean", "float": "number",
         "datetime": "date-time", "object": "any", "date": "date-time"}


def spec_of(t: str, todo: list[str]) -> str:
    """Translate a client type string into our compact type spec."""
    if t in PRIMS:
        return PRIMS[t]
    m = re.fullmatch(r"list\[(.+)\]", t)
    if m:
        return "list:" + spec_of(m.group(1), todo)
    m = re.fullmatch(r"dict\(str, (.+)\)", t)
    if m:
        return "map:" + spec_of(m.group(1), todo)
    if hasattr(models, t):
        todo.append(t)
        return "ref:" + t
    raise SystemExit(f"unknown client type {t!r}")


def main() -> None:
    types: dict[str, dict[str, str]] = {}
    todo = list(ROOTS)
    while todo:
        name = todo.pop()
        if name in types:
            continue
        cls: Any = getattr(models, name)
        fields: dict[str, str] = {}
        for attr, t in cls.openapi_types.items():
            if (name, attr) in INT_OR_STRING:
                spec = "int-or-string"
            elif (name, attr) in QUANTITY_MAPS:
                spec = "map:quantity"
            elif (name, attr) in QUANTITY:
                spec = "quantity"
            else:
                spec = spec_of(t, todo)
            fields[cls.attribute_map[attr]] = spec
        types[name] = fields
    json.dump({"types": dict(sorted(types.items()))}, sys.stdout, indent=0, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
