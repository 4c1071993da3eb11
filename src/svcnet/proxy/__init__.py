"""kube-proxy's pure core: Service ports, endpoints, endpoint choice and the Snapshot.

Data flows: raw Service / EndpointSlice objects -> `build_snapshot` -> `Snapshot` (frozen)
-> a rule compiler in `svcnet.rules`. Change trackers, the sync runner and health checks
will live here too; they only ever hand a Snapshot to the compilers.
"""

from __future__ import annotations

from svcnet.proxy.endpoints import (
    SERVICE_NAME_LABEL,
    Endpoint,
    endpoints_by_service_port,
    slices_from_endpoints,
)
from svcnet.proxy.serviceport import (
    ServicePortInfo,
    ServicePortName,
    service_ports,
    should_skip_service,
)
from svcnet.proxy.snapshot import Snapshot, build_snapshot, update_snapshot
from svcnet.proxy.topology import Categorized, NodeInfo, categorize

__all__ = [
    "SERVICE_NAME_LABEL",
    "Categorized",
    "Endpoint",
    "NodeInfo",
    "ServicePortInfo",
    "ServicePortName",
    "Snapshot",
    "build_snapshot",
    "update_snapshot",
    "categorize",
    "endpoints_by_service_port",
    "service_ports",
    "should_skip_service",
    "slices_from_endpoints",
]
