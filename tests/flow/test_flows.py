"""Run the packet-flow table (cases.py) through every proxy mode's rules.

A runner turns the WORLD into its mode's dataplane model once, then traces each case and
reports a mode-independent `FlowResult`. Only the runner knows the mode: adding nftables
later means adding one runner class to RUNNERS, not touching the cases.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import cases
import pytest

from svcnet.api.defaults import apply_defaults
from svcnet.dataplane.trace import Packet, TraceNode, node_model, trace
from svcnet.proxy import build_snapshot
from svcnet.rules import IPTablesConfig, compile_full, render_restore
from svcnet.rules.iptables_names import sep_chain


@dataclass(frozen=True)
class FlowResult:
    """What happened, independent of the mode: verdicts with their probabilities, DNAT
    destinations with theirs, and whether accepted packets were masqueraded (None when
    the outcomes disagree)."""

    verdicts: dict[str, float]
    dests: dict[str, float]
    masq: bool | None
    explain: str


class FlowRunner(Protocol):
    mode: str

    def run(self, case: cases.FlowCase) -> FlowResult: ...


def _world() -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    services = [dict(s) for s in cases.SERVICES]
    slices = [dict(s) for s in cases.SLICES]
    for s in services:
        apply_defaults("Service", s)
    for s in slices:
        apply_defaults("EndpointSlice", s)
    return services, slices


class IPTablesRunner:
    """Compile the world with the iptables compiler, load it into FakeIPTables together
    with the built-in jump rules, and trace with the iptables tracer."""

    mode = "iptables"

    def __init__(self) -> None:
        services, slices = _world()
        snapshot = build_snapshot(services, slices, node_name=cases.NODE)
        config = IPTablesConfig(node_name=cases.NODE, node_ips=(cases.NODE_IP,),
                                cluster_cidr=cases.CLUSTER_CIDR)
        self.payload = render_restore(compile_full(snapshot, config))
        self.fake = node_model(self.payload)
        self.node = TraceNode(cases.NODE, (cases.NODE_IP,))

    def run(self, case: cases.FlowCase) -> FlowResult:
        recent: dict[str, dict[str, float]] = {}
        for spn, endpoint, age in case.affinity:
            recent.setdefault(sep_chain(spn, case.protocol, endpoint), {})[case.src] = age
        result = trace(self.fake, Packet(case.src, case.dst, case.port, case.protocol,
                                         from_node=case.from_node), self.node, recent=recent)
        accepted = {o.masqueraded for o in result.outcomes if o.verdict == "ACCEPT"}
        return FlowResult(result.verdicts, result.destinations,
                          accepted.pop() if len(accepted) == 1 else None, result.format())


RUNNERS: dict[str, type[IPTablesRunner]] = {"iptables": IPTablesRunner}


@pytest.fixture(scope="module", params=sorted(RUNNERS))
def runner(request: pytest.FixtureRequest) -> FlowRunner:
    return RUNNERS[request.param]()


@pytest.mark.parametrize("case", cases.CASES, ids=[c.name for c in cases.CASES])
def test_flow(runner: FlowRunner, case: cases.FlowCase) -> None:
    if case.modes is not None and runner.mode not in case.modes:
        pytest.skip(f"case applies to {sorted(case.modes)} only")
    got = runner.run(case)
    want = case.expect
    context = f"\n{got.explain}"
    assert set(got.verdicts) == {want.verdict}, f"verdicts {got.verdicts}{context}"
    if isinstance(want.dests, frozenset):
        assert set(got.dests) == want.dests, context
    else:
        assert set(got.dests) == set(want.dests), context
        for dest, p in want.dests.items():
            assert math.isclose(got.dests[dest], p, abs_tol=1e-6), f"{dest}: {got.dests}{context}"
    if want.masq is not None and want.verdict == "ACCEPT":
        assert got.masq is want.masq, f"masquerade{context}"


def test_probabilities_sum_to_one(runner: FlowRunner) -> None:
    """Every traced case accounts for all of the packet's possible fates."""
    for case in cases.CASES:
        if case.modes is None or runner.mode in case.modes:
            assert math.isclose(sum(runner.run(case).verdicts.values()), 1.0, abs_tol=1e-9)


def test_iptables_payload_is_what_the_fake_holds() -> None:
    """The traced model is exactly the rendered payload plus the jump rules."""
    r = IPTablesRunner()
    assert r.fake.restored == [r.payload]
    assert r.fake.rules("nat", "PREROUTING")[0].target is not None
