"""`svcnet up` / `svcnet down`: a whole local cluster on one Linux machine.

- `plan` (pure): from the number of nodes, the data dir, the CIDRs and the proxy mode,
  the whole layout — names, addresses, routes, the processes to run — and the checks
  that need only values (CIDR overlaps, conflicts with routes the host already has).
- `network` (edge): makes the layout real with `ip` / `iptables` and takes it down again.
- `supervisor` (edge): runs the server and the agents, records them in
  `DIR/cluster.json`, waits until every Node is Ready, and stops everything on `down`.
"""

from svcnet.cluster.plan import (
    ClusterPlan,
    HostRoute,
    Naming,
    NodePlan,
    PlanError,
    ProcessSpec,
    Route,
    find_conflicts,
    forward_accept_needed,
    plan_cluster,
)

__all__ = [
    "ClusterPlan", "HostRoute", "Naming", "NodePlan", "PlanError", "ProcessSpec", "Route",
    "find_conflicts", "forward_accept_needed", "plan_cluster",
]
