"""Packet tracers: walk a dataplane model (from `svcnet.dataplane.testing`) and report
every outcome of a packet — matched rules, DNAT destinations with their probabilities,
masquerading and the final verdict — without a kernel."""

from __future__ import annotations

from svcnet.dataplane.trace.iptables import (
    Packet,
    TraceError,
    TraceNode,
    TraceOutcome,
    TraceResult,
    TraceStep,
    node_model,
    trace,
)

__all__ = ["Packet", "TraceError", "TraceNode", "TraceOutcome", "TraceResult", "TraceStep",
           "node_model", "trace"]
