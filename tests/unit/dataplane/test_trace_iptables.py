"""The iptables packet tracer on small hand-written models: hooks, branching, state."""

from __future__ import annotations

import math

import pytest

from svcnet.dataplane.errors import ApplyError
from svcnet.dataplane.testing import FakeIPTables, parse_rule
from svcnet.dataplane.trace import Packet, TraceError, TraceNode, trace

NODE = TraceNode("n1", ("192.168.0.2",))

MODEL = """\
*filter
:KUBE-SERVICES - [0:0]
:KUBE-FORWARD - [0:0]
-A KUBE-SERVICES -m tcp -p tcp -d 172.30.0.9 --dport 80 -j REJECT
-A KUBE-FORWARD -m mark --mark 0x4000/0x4000 -j ACCEPT
-A FORWARD -j KUBE-FORWARD
-A FORWARD -m conntrack --ctstate NEW -j KUBE-SERVICES
-A OUTPUT -m conntrack --ctstate NEW -j KUBE-SERVICES
COMMIT
*nat
:KUBE-SERVICES - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-SVC - [0:0]
:KUBE-SEP-1 - [0:0]
:KUBE-SEP-2 - [0:0]
:KUBE-SEP-3 - [0:0]
:KUBE-GOTO - [0:0]
-A PREROUTING -j KUBE-SERVICES
-A OUTPUT -j KUBE-SERVICES
-A POSTROUTING -j KUBE-POSTROUTING
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -j MASQUERADE
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-SERVICES -m tcp -p tcp -d 172.30.0.1 --dport 80 -j KUBE-SVC
-A KUBE-SERVICES -m tcp -p tcp -d 172.30.0.2 --dport 80 -g KUBE-GOTO
-A KUBE-SERVICES -m tcp -p tcp -d 172.30.0.2 --dport 80 -j KUBE-SEP-3
-A KUBE-SERVICES -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30000 -j KUBE-SEP-3
-A KUBE-GOTO -j RETURN
-A KUBE-SVC ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC -m recent --name KUBE-SEP-2 --rcheck --seconds 60 --reap -j KUBE-SEP-2
-A KUBE-SVC -m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-1
-A KUBE-SVC -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-2
-A KUBE-SVC -j KUBE-SEP-3
-A KUBE-SEP-1 -s 10.0.0.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-1 -m tcp -p tcp -j DNAT --to-destination 10.0.0.1:8080
-A KUBE-SEP-2 -m recent --name KUBE-SEP-2 --set -m tcp -p tcp -j DNAT --to-destination 10.0.0.2:8080
-A KUBE-SEP-3 -m tcp -p tcp -j DNAT --to-destination 10.0.0.3:8080
COMMIT
"""


@pytest.fixture(scope="module")
def model() -> FakeIPTables:
    fake = FakeIPTables()
    fake.restore(MODEL)
    return fake


def test_enumerates_every_destination_with_kernel_probabilities(model: FakeIPTables) -> None:
    result = trace(model, Packet("10.0.0.9", "172.30.0.1", 80), NODE)
    dests = result.destinations
    assert set(dests) == {"10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"}
    first = round(0.3333333333 * 2**31) / 2**31            # what the kernel stores
    assert dests["10.0.0.1:8080"] == pytest.approx(first, abs=1e-15)
    assert dests["10.0.0.2:8080"] == pytest.approx((1 - first) * 0.5, abs=1e-15)
    assert math.isclose(sum(o.probability for o in result.outcomes), 1.0)
    assert result.verdict == "ACCEPT" and result.masqueraded is False
    (to_sep1,) = [o for o in result.outcomes if o.destination == "10.0.0.1:8080"]
    chains = [s.chain for s in to_sep1.steps]
    assert chains[:4] == ["PREROUTING", "KUBE-SERVICES", "KUBE-SVC", "KUBE-SEP-1"]
    assert to_sep1.steps[2].probability == pytest.approx(first)


def test_masquerade_for_off_cluster_and_hairpin(model: FakeIPTables) -> None:
    outside = trace(model, Packet("203.0.113.2", "172.30.0.1", 80), NODE)
    assert outside.masqueraded is True
    hairpin = trace(model, Packet("10.0.0.1", "172.30.0.1", 80), NODE)
    by_dest = {o.destination: o.masqueraded for o in hairpin.outcomes}
    assert by_dest == {"10.0.0.1:8080": True, "10.0.0.2:8080": False, "10.0.0.3:8080": False}
    with pytest.raises(ValueError):
        _ = hairpin.masqueraded


def test_locally_generated_packets_use_output(model: FakeIPTables) -> None:
    result = trace(model, Packet("192.168.0.2", "172.30.0.1", 80), NODE)
    assert all(o.steps[0].chain == "OUTPUT" for o in result.outcomes)
    assert result.masqueraded is True
    forced = trace(model, Packet("10.0.0.9", "172.30.0.1", 80, from_node=True), NODE)
    assert forced.outcomes[0].steps[0].chain == "OUTPUT"


def test_affinity_state(model: FakeIPTables) -> None:
    fresh = {"KUBE-SEP-2": {"10.0.0.9": 30.0}}
    result = trace(model, Packet("10.0.0.9", "172.30.0.1", 80), NODE, recent=fresh)
    assert result.destinations == {"10.0.0.2:8080": 1.0}
    assert result.outcomes[0].recent_set == ("KUBE-SEP-2",)
    stale = {"KUBE-SEP-2": {"10.0.0.9": 61.0}}
    assert len(trace(model, Packet("10.0.0.9", "172.30.0.1", 80), NODE,
                     recent=stale).destinations) == 3
    other_client = trace(model, Packet("10.0.0.8", "172.30.0.1", 80), NODE, recent=fresh)
    assert len(other_client.destinations) == 3


def test_goto_returns_to_the_caller_of_the_chain(model: FakeIPTables) -> None:
    # KUBE-GOTO returns; since it was reached by -g, KUBE-SERVICES itself returns and the
    # next KUBE-SERVICES rule (to KUBE-SEP-3) is never evaluated.
    result = trace(model, Packet("10.0.0.9", "172.30.0.2", 80), NODE)
    assert result.destinations == {} and result.verdict == "ACCEPT"


def test_reject_and_local_destination(model: FakeIPTables) -> None:
    assert trace(model, Packet("10.0.0.9", "172.30.0.9", 80), NODE).verdict == "REJECT"
    local = trace(model, Packet("203.0.113.2", "192.168.0.2", 30000), NODE)
    assert local.destinations == {"10.0.0.3:8080": 1.0}
    no_match = trace(model, Packet("203.0.113.2", "192.168.0.3", 30000), NODE)
    assert no_match.destinations == {} and no_match.verdict == "ACCEPT"
    assert "ACCEPT" in no_match.format()


def test_udp_does_not_match_tcp_rules(model: FakeIPTables) -> None:
    assert trace(model, Packet("10.0.0.9", "172.30.0.1", 80, "udp"), NODE).destinations == {}


def test_policy_drop_and_loops() -> None:
    fake = FakeIPTables()
    fake.restore("*filter\n:FORWARD DROP [0:0]\nCOMMIT\n")
    assert trace(fake, Packet("10.0.0.1", "10.0.0.2", 80), NODE).verdict == "DROP"
    loop = FakeIPTables()
    payload = ("*nat\n:KUBE-A - [0:0]\n:KUBE-B - [0:0]\n-A KUBE-A -j KUBE-B\n"
               "-A KUBE-B -j KUBE-A\n-A PREROUTING -j KUBE-A\nCOMMIT\n")
    with pytest.raises(ApplyError) as err:  # the kernel refuses loops at commit...
        loop.restore(payload)
    assert err.value.line == 7 and "loop" in err.value.reason
    loop.restore(payload.replace("-A KUBE-B -j KUBE-A\n", ""))
    # ...so build one behind its back to check the tracer's own guard.
    back = parse_rule(["-j", "KUBE-A"], is_chain=lambda name: True)
    loop.tables["nat"].chains["KUBE-B"].rules.append(back)
    with pytest.raises(TraceError):
        trace(loop, Packet("10.0.0.1", "10.0.0.2", 80), NODE)
