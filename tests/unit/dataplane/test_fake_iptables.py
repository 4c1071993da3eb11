"""FakeIPTables: restore semantics (--noflush), errors with line numbers, iptables-save text.

The expected save texts were checked against iptables 1.8.9 (legacy and nft backends) in a
throwaway network namespace: the fake prints them byte for byte.
"""

from __future__ import annotations

import textwrap

import pytest

from svcnet.dataplane.errors import ApplyError
from svcnet.dataplane.testing import FakeIPTables, RuleError, parse_rule, save_string, tokenize

PAYLOAD = textwrap.dedent("""\
    *filter
    :KUBE-SERVICES - [0:0]
    :KUBE-FORWARD - [0:0]
    -A KUBE-SERVICES -m comment --comment "ns6/svc6:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.46 --dport 80 -j REJECT
    -A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
    -A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x00004000/0x00004000 -j ACCEPT
    COMMIT
    *nat
    :KUBE-SERVICES - [0:0]
    :KUBE-POSTROUTING - [0:0]
    :KUBE-MARK-MASQ - [0:0]
    :KUBE-SVC-A - [0:0]
    :KUBE-SEP-A - [0:0]
    :KUBE-SEP-B - [0:0]
    -A KUBE-POSTROUTING -m mark ! --mark 0x00004000/0x00004000 -j RETURN
    -A KUBE-POSTROUTING -j MARK --xor-mark 0x00004000
    -A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
    -A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000
    -A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-A
    -A KUBE-SVC-A -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
    -A KUBE-SVC-A -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m recent --name KUBE-SEP-A --rcheck --seconds 10800 --reap -j KUBE-SEP-A
    -A KUBE-SVC-A -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-A
    -A KUBE-SVC-A -m comment --comment "ns1/svc1:p80 -> 10.180.0.2:80" -j KUBE-SEP-B
    -A KUBE-SEP-A -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
    -A KUBE-SEP-A -m comment --comment ns1/svc1:p80 -m recent --name KUBE-SEP-A --set -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
    -A KUBE-SEP-B -m comment --comment ns1/svc1:p80 -m udp -p udp -j DNAT --to-destination 10.180.0.2:80
    -A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS-X
    COMMIT
    """).replace("-j KUBE-NODEPORTS-X", "-j KUBE-SEP-B")

SAVED = textwrap.dedent("""\
    *filter
    :INPUT ACCEPT [0:0]
    :FORWARD ACCEPT [0:0]
    :OUTPUT ACCEPT [0:0]
    :KUBE-FORWARD - [0:0]
    :KUBE-SERVICES - [0:0]
    -A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
    -A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
    -A KUBE-SERVICES -d 172.30.0.46/32 -p tcp -m comment --comment "ns6/svc6:p80 has no endpoints" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable
    COMMIT
    *nat
    :PREROUTING ACCEPT [0:0]
    :INPUT ACCEPT [0:0]
    :OUTPUT ACCEPT [0:0]
    :POSTROUTING ACCEPT [0:0]
    :KUBE-MARK-MASQ - [0:0]
    :KUBE-POSTROUTING - [0:0]
    :KUBE-SEP-A - [0:0]
    :KUBE-SEP-B - [0:0]
    :KUBE-SERVICES - [0:0]
    :KUBE-SVC-A - [0:0]
    -A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
    -A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
    -A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0
    -A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
    -A KUBE-SEP-A -s 10.180.0.1/32 -m comment --comment "ns1/svc1:p80" -j KUBE-MARK-MASQ
    -A KUBE-SEP-A -p tcp -m comment --comment "ns1/svc1:p80" -m recent --set --name KUBE-SEP-A --mask 255.255.255.255 --rsource -m tcp -j DNAT --to-destination 10.180.0.1:80
    -A KUBE-SEP-B -p udp -m comment --comment "ns1/svc1:p80" -m udp -j DNAT --to-destination 10.180.0.2:80
    -A KUBE-SERVICES -d 172.30.0.41/32 -p tcp -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp --dport 80 -j KUBE-SVC-A
    -A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-SEP-B
    -A KUBE-SVC-A ! -s 10.0.0.0/8 -d 172.30.0.41/32 -p tcp -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ
    -A KUBE-SVC-A -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-A --mask 255.255.255.255 --rsource -j KUBE-SEP-A
    -A KUBE-SVC-A -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-A
    -A KUBE-SVC-A -m comment --comment "ns1/svc1:p80 -> 10.180.0.2:80" -j KUBE-SEP-B
    COMMIT
    """)


def test_save_matches_iptables_save() -> None:
    fake = FakeIPTables()
    fake.restore(PAYLOAD)
    assert fake.save() == SAVED
    assert fake.restored == [PAYLOAD]


def test_save_restore_round_trip() -> None:
    fake = FakeIPTables()
    fake.restore(PAYLOAD)
    again = FakeIPTables()
    again.restore(fake.save(), noflush=False)
    assert again.save() == SAVED


def test_parsed_rule_model() -> None:
    fake = FakeIPTables()
    fake.restore(PAYLOAD)
    masq, rcheck, stat, last = fake.rules("nat", "KUBE-SVC-A")
    assert masq.source is not None and masq.source.negated
    assert str(masq.source.network) == "10.0.0.0/8"
    assert masq.destination is not None and masq.destination.matches("172.30.0.41")
    assert masq.protocol is not None and masq.protocol.value == "tcp"
    assert [m.module for m in masq.matches] == ["comment", "tcp"]
    assert masq.comment == "ns1/svc1:p80 cluster IP"
    assert masq.target is not None and masq.target.chain and masq.target.name == "KUBE-MARK-MASQ"
    recent = rcheck.match("recent")
    assert recent is not None and recent.has("--rcheck") and recent.value("--seconds") == "10800"
    statistic = stat.match("statistic")
    assert statistic is not None and statistic.value("--probability") == "0.3333333333"
    assert last.text == '-m comment --comment "ns1/svc1:p80 -> 10.180.0.2:80" -j KUBE-SEP-B'
    (dnat,) = fake.rules("nat", "KUBE-SEP-B")
    assert dnat.target is not None and dnat.target.value("--to-destination") == "10.180.0.2:80"
    (mark,) = fake.rules("nat", "KUBE-MARK-MASQ")
    assert mark.target is not None and mark.target.xmark() == (0x4000, 0x4000)


def test_noflush_semantics() -> None:
    fake = FakeIPTables()
    fake.restore(PAYLOAD)
    fake.ensure_rule("nat", "PREROUTING", ["-j", "KUBE-SERVICES"])
    # Declared user chains are flushed and refilled; undeclared ones keep their rules;
    # declared built-in chains only get their policy set.
    fake.restore("*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SVC-A - [0:0]\n"
                 "-A KUBE-SVC-A -j KUBE-SEP-B\nCOMMIT\n")
    assert [r.text for r in fake.rules("nat", "KUBE-SVC-A")] == ["-j KUBE-SEP-B"]
    assert len(fake.rules("nat", "KUBE-SEP-A")) == 2
    assert len(fake.rules("nat", "PREROUTING")) == 1
    assert len(fake.rules("filter", "KUBE-FORWARD")) == 2


def test_without_noflush_tables_in_the_payload_are_replaced() -> None:
    fake = FakeIPTables()
    fake.restore(PAYLOAD)
    fake.restore("*nat\n:KUBE-X - [0:0]\nCOMMIT\n", noflush=False)
    assert fake.chain_names("nat") == ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING", "KUBE-X"]
    assert fake.has_chain("filter", "KUBE-FORWARD")


def test_delete_chain() -> None:
    fake = FakeIPTables()
    fake.restore(PAYLOAD)
    fake.restore("*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-A - [0:0]\n:KUBE-SEP-A - [0:0]\n"
                 "-A KUBE-SERVICES -j KUBE-SEP-B\n-X KUBE-SVC-A\n-X KUBE-SEP-A\nCOMMIT\n")
    assert not fake.has_chain("nat", "KUBE-SVC-A") and not fake.has_chain("nat", "KUBE-SEP-A")


@pytest.mark.parametrize(("payload", "line", "text", "reason"), [
    ("*nat\n:KUBE-A - [0:0]\n-A KUBE-A -j KUBE-MISSING\nCOMMIT\n", 3,
     "-A KUBE-A -j KUBE-MISSING", "Couldn't load target `KUBE-MISSING'"),
    ("*nat\n:KUBE-A - [0:0]\n-A KUBE-B -j RETURN\nCOMMIT\n", 3, "-A KUBE-B -j RETURN",
     "chain 'KUBE-B' does not exist"),
    ("*filter\n:KUBE-A - [0:0]\n-A KUBE-A -m foo --bar -j ACCEPT\nCOMMIT\n", 3, None,
     "Couldn't load match `foo'"),
    ("*filter\n:KUBE-A - [0:0]\n-A KUBE-A -j ACCEPT\n", 4, "", "COMMIT expected"),
    ("*filter\n:KUBE-A - [0:0]\n-A KUBE-A -j DNAT --to-destination 1.2.3.4\nCOMMIT\n", 3, None,
     "DNAT target is not valid in the filter table"),
    ("*nat\n:KUBE-A - [0:0]\n-A KUBE-A -j DNAT --to-destination 1.2.3.4:80\nCOMMIT\n", 3, None,
     "Need TCP, UDP, SCTP or DCCP with port specification"),
    ("*nat\n:KUBE-A - [0:0]\n-A KUBE-A -m statistic --mode random -j RETURN\nCOMMIT\n", 3, None,
     "statistic"),
    ("*nat\n:KUBE-A - [0:0]\n-A KUBE-A -m tcp --dport 80 -j RETURN\nCOMMIT\n", 3, None,
     "needs -p tcp"),
    ("*nat\n:KUBE-A - [0:0]\n-A KUBE-A --bogus -j RETURN\nCOMMIT\n", 3, None,
     "unknown option"),
    ("*nat\n:KUBE-A - [0:0]\n-A KUBE-A -m comment --comment \"open -j RETURN\nCOMMIT\n", 3,
     None, "unterminated"),
    ("*mangle2\nCOMMIT\n", 1, "*mangle2", "table 'mangle2' does not exist"),
    ("*filter\n:KUBE-A - [0:0]\n-A KUBE-A -m nfacct --nfacct-name nope -j DROP\nCOMMIT\n", 3,
     None, "nfacct object 'nope' does not exist"),
    ("-A KUBE-A -j RETURN\n", 1, None, "no table"),
])
def test_failing_line_is_reported(payload: str, line: int, text: str | None,
                                  reason: str) -> None:
    fake = FakeIPTables()
    fake.restore(PAYLOAD)
    before = fake.save()
    with pytest.raises(ApplyError) as err:
        fake.restore(payload)
    assert err.value.line == line and err.value.backend == "iptables-restore"
    assert reason in err.value.reason
    if text is not None:
        assert err.value.text == text
    assert fake.save() == before  # nothing applied
    assert fake.restored == [PAYLOAD]


def test_delete_referenced_or_non_empty_chain_fails() -> None:
    fake = FakeIPTables()
    fake.restore(PAYLOAD)
    with pytest.raises(ApplyError) as err:
        fake.restore("*nat\n:KUBE-SEP-A - [0:0]\n-X KUBE-SEP-A\nCOMMIT\n")
    assert err.value.is_busy() and err.value.line == 3 and "referenced" in err.value.reason
    with pytest.raises(ApplyError) as err:
        fake.restore("*nat\n-X KUBE-SEP-B\nCOMMIT\n")
    assert err.value.is_busy()
    with pytest.raises(ApplyError) as err:
        fake.restore("*nat\n:KUBE-Z - [0:0]\n-A KUBE-Z -j RETURN\n-X KUBE-Z\nCOMMIT\n")
    assert "not empty" in err.value.reason


def test_error_context_for_logs() -> None:
    fake = FakeIPTables()
    payload = "*nat\n:KUBE-A - [0:0]\n-A KUBE-A -j NOPE\nCOMMIT\n"
    with pytest.raises(ApplyError) as err:
        fake.restore(payload)
    assert err.value.is_not_found()
    assert ">    3 -A KUBE-A -j NOPE" in err.value.context(payload)


def test_nfacct_counters_must_exist() -> None:
    rule = "*filter\n:KUBE-A - [0:0]\n-A KUBE-A -m nfacct --nfacct-name pkts -j DROP\nCOMMIT\n"
    fake = FakeIPTables(nfacct_counters=["pkts"])
    fake.restore(rule)
    assert fake.rules("filter", "KUBE-A")[0].save("KUBE-A") == \
        "-A KUBE-A -m nfacct --nfacct-name pkts -j DROP"


def test_insert_delete_flush_policy_commands() -> None:
    fake = FakeIPTables()
    fake.restore("*filter\n:KUBE-A - [0:0]\n-A KUBE-A -j ACCEPT\n-I KUBE-A 1 -j DROP\n"
                 "-A KUBE-A -j RETURN\n-D KUBE-A -j ACCEPT\n-D KUBE-A 2\n-P FORWARD DROP\n"
                 "-N KUBE-B\nCOMMIT\n")
    assert [r.text for r in fake.rules("filter", "KUBE-A")] == ["-j DROP"]
    assert fake.policy("filter", "FORWARD") == "DROP" and fake.has_chain("filter", "KUBE-B")
    fake.restore("*filter\n-F KUBE-A\nCOMMIT\n")
    assert fake.rules("filter", "KUBE-A") == ()


def test_ensure_rule_and_chain() -> None:
    fake = FakeIPTables()
    assert fake.ensure_chain("nat", "KUBE-SERVICES") is False
    assert fake.ensure_chain("nat", "KUBE-SERVICES") is True
    args = ["-m", "comment", "--comment", "kubernetes service portals", "-j", "KUBE-SERVICES"]
    assert fake.ensure_rule("nat", "PREROUTING", args) is False
    assert fake.ensure_rule("nat", "PREROUTING", args) is True
    fake.ensure_rule("nat", "PREROUTING", ["-j", "RETURN"])
    assert [r.text for r in fake.rules("nat", "PREROUTING")] == [
        "-j RETURN", '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES']
    fake.ensure_rule("nat", "PREROUTING", ["-j", "ACCEPT"], position="append")
    assert fake.rules("nat", "PREROUTING")[-1].text == "-j ACCEPT"
    with pytest.raises(ApplyError):
        fake.ensure_rule("nat", "NOPE", ["-j", "RETURN"])
    with pytest.raises(ApplyError):
        fake.ensure_rule("nat", "OUTPUT", ["-j", "KUBE-MISSING"])


def test_tokenize_and_quote() -> None:
    assert tokenize('-m comment --comment "a \\"b\\" c" -j X') == [
        "-m", "comment", "--comment", 'a "b" c', "-j", "X"]
    assert tokenize('--comment ""') == ["--comment", ""]
    assert save_string("ns1/svc1:p80") == '"ns1/svc1:p80"'
    assert save_string("plain-name_1") == "plain-name_1"
    assert save_string('say "hi"') == '"say \\"hi\\""'


def test_parse_rule_options() -> None:
    rule = parse_rule(["!", "-s", "10.0.0.0/8", "-p", "6", "--dport", "80:90", "-m", "addrtype",
                       "!", "--dst-type", "LOCAL", "-m", "conntrack", "--ctstate",
                       "ESTABLISHED,NEW", "-j", "SNAT", "--to-source", "1.2.3.4",
                       "--random-fully"], is_chain=lambda c: False)
    assert rule.save("X") == ("-A X ! -s 10.0.0.0/8 -p tcp -m tcp --dport 80:90 -m addrtype "
                              "! --dst-type LOCAL -m conntrack --ctstate NEW,ESTABLISHED "
                              "-j SNAT --to-source 1.2.3.4 --random-fully")
    with pytest.raises(RuleError):
        parse_rule(["!", "!", "-s", "1.2.3.4"], is_chain=lambda c: False)
    with pytest.raises(RuleError):
        parse_rule(["-s", "not-an-ip"], is_chain=lambda c: False)
    with pytest.raises(RuleError):
        parse_rule(["-m", "statistic", "--mode", "random", "--probability", "1.5"],
                   is_chain=lambda c: False)
