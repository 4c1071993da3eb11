"""The iptables compiler, feature by feature (reference/kube-proxy.md §1).

Whole-payload golden vectors are in test_iptables_golden.py and partial syncs in
test_iptables_sync.py; packet-level behaviour is in tests/flow.
"""

from __future__ import annotations

import dataclasses

import pytest
from iptables_objects import FIXTURE, NODE, chain_rules, ep, eps, loaded, payload, snapshot, svc

from svcnet.rules import IPTablesConfig, MarkFormat, compile_full, jump_rules, needs_full_sync
from svcnet.rules.iptables_names import (
    ext_chain,
    fw_chain,
    masquerade_mark,
    port_proto_hash,
    probability,
    sep_chain,
    svc_chain,
    svl_chain,
)

SVC1 = "KUBE-SVC-XPGD46QRK7WJZT7O"   # ns1/svc1:p80 tcp


@pytest.mark.parametrize(("spn", "expected"), [
    ("ns1/svc1:p80", "XPGD46QRK7WJZT7O"),
    ("ns2/svc2:p80", "GNZBNJ2PO5MGZ6GT"),
    ("ns5/svc5:p80", "NUKIZ6OKUXPJNT4C"),
    ("ns2/svc2:p8080", "2VJB64SDSIJUP5T6"),
])
def test_service_chain_hashes(spn: str, expected: str) -> None:
    assert port_proto_hash(spn, "TCP") == expected
    assert {svc_chain(spn, "tcp"), svl_chain(spn, "tcp"), ext_chain(spn, "tcp"),
            fw_chain(spn, "tcp")} == {f"KUBE-{k}-{expected}" for k in ("SVC", "SVL", "EXT", "FW")}


@pytest.mark.parametrize(("spn", "endpoint", "expected"), [
    ("ns1/svc1:p80", "10.180.0.1:80", "KUBE-SEP-SXIVWICOYRO3J4NJ"),
    ("ns2/svc2:p8080", "10.0.2.1:8080", "KUBE-SEP-UHEGFW77JX3KXTOV"),
])
def test_endpoint_chain_hashes(spn: str, endpoint: str, expected: str) -> None:
    assert sep_chain(spn, "tcp", endpoint) == expected


def test_protocol_is_part_of_the_hash() -> None:
    assert svc_chain("ns1/svc1:p80", "udp") != svc_chain("ns1/svc1:p80", "tcp")
    assert all(len(c) <= 28 for c in (fw_chain("a/b:c", "sctp"), sep_chain("a/b", "tcp", "x")))


@pytest.mark.parametrize("n", [2, 3, 5, 10])
def test_statistic_probabilities(n: int) -> None:
    endpoints = [ep(f"10.180.0.{i}") for i in range(1, n + 1)]
    text = payload(svc("ns1", "svc1", "172.30.0.41"), eps("ns1", "svc1", *endpoints))
    rules = [r for r in chain_rules(text, SVC1) if "KUBE-SEP-" in r]
    written = [r.split("--probability ")[1].split()[0] if "--probability" in r else None
               for r in rules]
    assert written == [f"{1 / (n - i):.10f}" for i in range(n - 1)] + [None]


def test_three_endpoints_written_and_saved_probabilities() -> None:
    text = payload(svc("ns1", "svc1", "172.30.0.41"),
                   eps("ns1", "svc1", ep("10.180.0.1"), ep("10.180.0.2"), ep("10.180.0.3")))
    rules = chain_rules(text, SVC1)
    assert "--probability 0.3333333333 -j" in rules[1]
    assert "--probability 0.5000000000 -j" in rules[2]
    assert "statistic" not in rules[3]
    saved = [line for line in loaded(text).save().splitlines() if line.startswith(f"-A {SVC1}")]
    assert "--probability 0.33333333349 " in saved[1]
    assert "--probability 0.50000000000 " in saved[2]


@pytest.mark.parametrize(("n", "saved"), [(5, "0.20000000019"), (10, "0.10000000009"),
                                          (2, "0.50000000000")])
def test_kernel_rounding_of_probabilities(n: int, saved: str) -> None:
    endpoints = [ep(f"10.180.1.{i}") for i in range(n)]
    text = payload(svc("ns1", "svc1", "172.30.0.41"), eps("ns1", "svc1", *endpoints))
    first = next(line for line in loaded(text).save().splitlines()
                 if line.startswith(f"-A {SVC1}") and "statistic" in line)
    assert f"--probability {saved} " in first
    assert probability(n) == f"{1 / n:.10f}"


def test_dnat_rules_shape() -> None:
    text = payload(svc("ns1", "svc1", "172.30.0.41"), eps("ns1", "svc1", ep("10.180.0.1")))
    assert chain_rules(text, "KUBE-SEP-SXIVWICOYRO3J4NJ") == [
        "-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 "
        "-j KUBE-MARK-MASQ",
        "-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp "
        "-j DNAT --to-destination 10.180.0.1:80",
    ]


def test_udp_and_unnamed_ports() -> None:
    text = payload(svc("ns1", "dns", "172.30.0.10", port=53, port_name="", protocol="UDP"),
                   eps("ns1", "dns", ep("10.180.0.9"), port=5353, port_name="", protocol="UDP"))
    chain = svc_chain("ns1/dns", "udp")
    assert chain_rules(text, "KUBE-SERVICES")[0] == (
        '-A KUBE-SERVICES -m comment --comment "ns1/dns cluster IP" -m udp -p udp '
        f"-d 172.30.0.10 --dport 53 -j {chain}")
    sep = sep_chain("ns1/dns", "udp", "10.180.0.9:5353")
    assert chain_rules(text, sep)[1].endswith(
        "-m comment --comment ns1/dns -m udp -p udp -j DNAT --to-destination 10.180.0.9:5353")


@pytest.mark.parametrize(("bit", "fmt", "mark"), [
    (14, MarkFormat.GO, "0x00004000"), (14, MarkFormat.SHORT, "0x4000"),
    (0, MarkFormat.GO, "0x00000001"), (31, MarkFormat.GO, "0x80000000"),
])
def test_masquerade_mark_spelling(bit: int, fmt: MarkFormat, mark: str) -> None:
    assert masquerade_mark(bit, fmt) == mark
    config = IPTablesConfig(node_name=NODE, masquerade_bit=bit, mark_format=fmt)
    text = payload(config=config)
    assert f"-A KUBE-MARK-MASQ -j MARK --or-mark {mark}" in text
    assert f"-A KUBE-POSTROUTING -m mark ! --mark {mark}/{mark} -j RETURN" in text
    assert f"-m mark --mark {mark}/{mark} -j ACCEPT" in text
    value = 1 << bit
    assert f"-A KUBE-MARK-MASQ -j MARK --set-xmark {value:#x}/{value:#x}" in loaded(text).save()


def test_bad_masquerade_bit() -> None:
    with pytest.raises(ValueError):
        compile_full(snapshot(), IPTablesConfig(node_name=NODE, masquerade_bit=32))


def test_session_affinity_rules() -> None:
    text = payload(svc("ns5", "svc5", "172.30.0.45", sessionAffinity="ClientIP",
                       sessionAffinityConfig={"clientIP": {"timeoutSeconds": 300}}),
                   eps("ns5", "svc5", ep("10.180.0.3"), ep("10.180.0.4")))
    chain = svc_chain("ns5/svc5:p80", "tcp")
    seps = [sep_chain("ns5/svc5:p80", "tcp", f"10.180.0.{i}:80") for i in (3, 4)]
    rules = chain_rules(text, chain)
    assert rules[1:3] == [
        f'-A {chain} -m comment --comment "ns5/svc5:p80 -> 10.180.0.{i}:80" -m recent '
        f"--name {s} --rcheck --seconds 300 --reap -j {s}" for i, s in zip((3, 4), seps)]
    assert "--probability 0.5000000000" in rules[3] and rules[4].endswith(f"-j {seps[1]}")
    assert chain_rules(text, seps[0])[1] == (
        f"-A {seps[0]} -m comment --comment ns5/svc5:p80 -m recent --name {seps[0]} --set "
        "-m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80")


def lb_with_ranges(*ranges: str) -> str:
    return payload(svc("ns5", "svc5", "172.30.0.45", type="LoadBalancer", node_port=3002,
                       lb_ips=("5.6.7.8",), loadBalancerSourceRanges=list(ranges)),
                   eps("ns5", "svc5", ep("10.180.0.3")))


def test_load_balancer_source_ranges() -> None:
    text = lb_with_ranges("203.0.113.0/25", "198.51.100.0/24")
    fw, ext = fw_chain("ns5/svc5:p80", "tcp"), ext_chain("ns5/svc5:p80", "tcp")
    assert f'"ns5/svc5:p80 loadbalancer IP" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j {fw}' in text
    assert chain_rules(text, fw) == [
        f'-A {fw} -m comment --comment "ns5/svc5:p80 loadbalancer IP" -s 203.0.113.0/25 -j {ext}',
        f'-A {fw} -m comment --comment "ns5/svc5:p80 loadbalancer IP" -s 198.51.100.0/24 -j {ext}',
        f'-A {fw} -m comment --comment "other traffic to ns5/svc5:p80 will be dropped by '
        'KUBE-PROXY-FIREWALL"']
    assert chain_rules(text, "KUBE-PROXY-FIREWALL", "filter") == [
        f'-A KUBE-PROXY-FIREWALL -m comment --comment "ns5/svc5:p80 traffic not accepted by {fw}"'
        " -m tcp -p tcp -d 5.6.7.8 --dport 80 -j DROP"]
    # NodePorts are not subject to the ranges: they go straight to the EXT chain.
    assert chain_rules(text, "KUBE-NODEPORTS")[-1].endswith(f"--dport 3002 -j {ext}")


def test_source_range_containing_the_node_admits_the_lb_ip() -> None:
    fw, ext = fw_chain("ns5/svc5:p80", "tcp"), ext_chain("ns5/svc5:p80", "tcp")
    rules = chain_rules(lb_with_ranges("192.168.0.0/16"), fw)
    assert rules[1] == f'-A {fw} -m comment --comment "ns5/svc5:p80 loadbalancer IP" ' \
                       f"-s 5.6.7.8 -j {ext}"
    assert len(chain_rules(lb_with_ranges("203.0.113.0/25"), fw)) == 2


def test_no_fw_chain_without_ranges() -> None:
    text = lb_with_ranges()
    assert "KUBE-FW-" not in text and "KUBE-PROXY-FIREWALL -m" not in text


def test_external_ips() -> None:
    text = payload(svc("ns4", "svc4", "172.30.0.44", externalIPs=["192.168.99.33",
                                                                  "192.168.99.34"]),
                   eps("ns4", "svc4", ep("10.180.0.4")))
    ext = ext_chain("ns4/svc4:p80", "tcp")
    assert chain_rules(text, "KUBE-SERVICES")[1:3] == [
        f'-A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 external IP" -m tcp -p tcp '
        f"-d 192.168.99.{i} --dport 80 -j {ext}" for i in (33, 34)]
    assert chain_rules(text, ext) == [
        f'-A {ext} -m comment --comment "masquerade traffic for ns4/svc4:p80 external '
        'destinations" -j KUBE-MARK-MASQ', f"-A {ext} -j {svc_chain('ns4/svc4:p80', 'tcp')}"]


def test_no_endpoints_rejects_every_destination() -> None:
    text = payload(svc("ns1", "svc1", "172.30.0.41", type="LoadBalancer", node_port=3001,
                       externalIPs=["192.168.99.11"], lb_ips=("1.2.3.4",)))
    c = '"ns1/svc1:p80 has no endpoints"'
    assert chain_rules(text, "KUBE-SERVICES", "filter") == [
        f"-A KUBE-SERVICES -m comment --comment {c} -m tcp -p tcp -d 172.30.0.41 --dport 80 "
        "-j REJECT"]
    assert chain_rules(text, "KUBE-EXTERNAL-SERVICES", "filter") == [
        f"-A KUBE-EXTERNAL-SERVICES -m comment --comment {c} -m tcp -p tcp -d 192.168.99.11 "
        "--dport 80 -j REJECT",
        f"-A KUBE-EXTERNAL-SERVICES -m comment --comment {c} -m tcp -p tcp -d 1.2.3.4 "
        "--dport 80 -j REJECT",
        f"-A KUBE-EXTERNAL-SERVICES -m comment --comment {c} -m addrtype --dst-type LOCAL "
        "-m tcp -p tcp --dport 3001 -j REJECT"]
    assert "KUBE-SVC-" not in text and "KUBE-EXT-" not in text
    assert chain_rules(text, "KUBE-NODEPORTS") == []


def test_external_local_without_local_endpoints_drops_outside_traffic() -> None:
    text = payload(svc("ns2", "svc2", "172.30.0.42", type="NodePort", node_port=3001,
                       externalTrafficPolicy="Local"), eps("ns2", "svc2", ep("10.180.0.2")))
    ext, svc2 = ext_chain("ns2/svc2:p80", "tcp"), svc_chain("ns2/svc2:p80", "tcp")
    assert chain_rules(text, "KUBE-EXTERNAL-SERVICES", "filter") == [
        '-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" '
        "-m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3001 -j DROP"]
    assert chain_rules(text, ext) == [
        f'-A {ext} -m comment --comment "pod traffic for ns2/svc2:p80 external destinations" '
        f"-s 10.0.0.0/8 -j {svc2}",
        f'-A {ext} -m comment --comment "masquerade LOCAL traffic for ns2/svc2:p80 external '
        'destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ',
        f'-A {ext} -m comment --comment "route LOCAL traffic for ns2/svc2:p80 external '
        f'destinations" -m addrtype --src-type LOCAL -j {svc2}']
    assert "KUBE-SVL-" not in text


def test_external_local_with_local_endpoint_uses_svl() -> None:
    text = payload(svc("ns2", "svc2", "172.30.0.42", type="NodePort", node_port=3001,
                       externalTrafficPolicy="Local"),
                   eps("ns2", "svc2", ep("10.180.0.2"), ep("10.180.0.3", local=True)))
    ext, svl = ext_chain("ns2/svc2:p80", "tcp"), svl_chain("ns2/svc2:p80", "tcp")
    assert chain_rules(text, ext)[-1] == f"-A {ext} -j {svl}"
    assert chain_rules(text, svl) == [
        f'-A {svl} -m comment --comment "ns2/svc2:p80 -> 10.180.0.3:80" -j '
        f"{sep_chain('ns2/svc2:p80', 'tcp', '10.180.0.3:80')}"]
    assert "KUBE-EXTERNAL-SERVICES -m" not in text


def test_internal_local_policy() -> None:
    text = payload(svc("ns1", "svc1", "172.30.0.41", internalTrafficPolicy="Local"),
                   eps("ns1", "svc1", ep("10.180.0.1"), ep("10.180.0.2", local=True)))
    svl = svl_chain("ns1/svc1:p80", "tcp")
    assert chain_rules(text, "KUBE-SERVICES")[0].endswith(f"--dport 80 -j {svl}")
    rules = chain_rules(text, svl)
    assert rules[0].endswith("! -s 10.0.0.0/8 -j KUBE-MARK-MASQ") and len(rules) == 2
    assert SVC1 not in text and "10.180.0.1" not in text


def test_internal_local_without_local_endpoints_drops() -> None:
    text = payload(svc("ns1", "svc1", "172.30.0.41", internalTrafficPolicy="Local"),
                   eps("ns1", "svc1", ep("10.180.0.1")))
    assert chain_rules(text, "KUBE-SERVICES", "filter") == [
        '-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 has no local endpoints" '
        "-m tcp -p tcp -d 172.30.0.41 --dport 80 -j DROP"]
    assert compile_full(snapshot(svc("ns1", "svc1", "172.30.0.41", internalTrafficPolicy="Local"),
                                 eps("ns1", "svc1", ep("10.180.0.1"))),
                        FIXTURE).no_local_endpoints_internal == 1


def test_health_check_node_port() -> None:
    objects = [svc("ns2", "svc2", "172.30.0.42", type="LoadBalancer", node_port=3001,
                   externalTrafficPolicy="Local", healthCheckNodePort=30000, protocol="UDP"),
               eps("ns2", "svc2", ep("10.180.0.2", local=True), protocol="UDP")]
    assert chain_rules(payload(*objects), "KUBE-NODEPORTS", "filter") == [
        '-A KUBE-NODEPORTS -m comment --comment "ns2/svc2:p80 health check node port" '
        "-m tcp -p tcp --dport 30000 -j ACCEPT"]
    # Also without endpoints at all (the health check then reports 503 itself).
    assert chain_rules(payload(objects[0]), "KUBE-NODEPORTS", "filter") != []


def test_terminating_endpoints_are_a_fallback() -> None:
    text = payload(svc("ns1", "svc1", "172.30.0.41"),
                   eps("ns1", "svc1", ep("10.180.0.1", ready=False, serving=True, terminating=True),
                       ep("10.180.0.2", ready=False, serving=False, terminating=True)))
    assert "10.180.0.1:80" in text and "10.180.0.2" not in text


def test_large_cluster_mode_drops_endpoint_comments() -> None:
    config = dataclasses.replace(FIXTURE, large_cluster_threshold=2)
    objects = [svc("ns1", "svc1", "172.30.0.41"),
               eps("ns1", "svc1", ep("10.180.0.1"), ep("10.180.0.2"), ep("10.180.0.3"))]
    text = payload(*objects, config=config)
    assert compile_full(snapshot(*objects), config).large_cluster
    sep = sep_chain("ns1/svc1:p80", "tcp", "10.180.0.1:80")
    assert chain_rules(text, sep) == [
        f"-A {sep} -s 10.180.0.1 -j KUBE-MARK-MASQ",
        f"-A {sep} -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80"]
    rules = chain_rules(text, SVC1)
    assert '"ns1/svc1:p80 cluster IP"' in rules[0]          # masquerade rule keeps it
    assert rules[1] == (f"-A {SVC1} -m statistic --mode random --probability 0.3333333333 "
                        f"-j {sep}")
    assert '"ns1/svc1:p80 cluster IP"' in chain_rules(text, "KUBE-SERVICES")[0]
    assert not compile_full(snapshot(*objects), FIXTURE).large_cluster


def test_headless_external_name_and_proxy_mode_lb_are_skipped() -> None:
    text = payload(svc("ns1", "headless", "None"),
                   svc("ns1", "extname", "", type="ExternalName", externalName="x.example"),
                   eps("ns1", "headless", ep("10.180.0.1")))
    assert "headless" not in text and "extname" not in text
    text = payload(svc("ns1", "svc1", "172.30.0.41", type="LoadBalancer", node_port=3001,
                       lb_ips=()) | {"status": {"loadBalancer": {"ingress": [
                           {"ip": "1.2.3.4", "ipMode": "Proxy"}]}}},
                   eps("ns1", "svc1", ep("10.180.0.1")))
    assert "1.2.3.4" not in text and "--dport 3001" in text


def test_node_port_addresses_and_localhost() -> None:
    def tail(config: IPTablesConfig) -> list[str]:
        return [r for r in chain_rules(payload(config=config), "KUBE-SERVICES")
                if "NOTE: this must be the last rule" in r]
    base = IPTablesConfig(node_name=NODE, node_ips=("192.168.0.2", "10.1.1.1"))
    note = '-m comment --comment "kubernetes service nodeports; NOTE: this must be the last ' \
           'rule in this chain"'
    assert tail(base) == [f"-A KUBE-SERVICES {note} -m addrtype --dst-type LOCAL "
                          "-j KUBE-NODEPORTS"]
    no_localhost = dataclasses.replace(base, localhost_nodeports=False)
    assert tail(no_localhost) == [f"-A KUBE-SERVICES {note} -m addrtype --dst-type LOCAL "
                                  "! -d 127.0.0.0/8 -j KUBE-NODEPORTS"]
    assert "KUBE-FIREWALL" not in payload(config=no_localhost)
    only_node = dataclasses.replace(base, node_port_addresses=("192.168.0.0/24",))
    assert tail(only_node) == [f"-A KUBE-SERVICES {note} -d 192.168.0.2 -j KUBE-NODEPORTS"]
    assert "KUBE-FIREWALL" not in payload(config=only_node)  # no loopback -> no localhost
    with_lo = dataclasses.replace(base, node_port_addresses=("127.0.0.0/8", "primary"))
    assert [r.split(" -d ")[1] for r in tail(with_lo)] == ["127.0.0.1 -j KUBE-NODEPORTS",
                                                            "192.168.0.2 -j KUBE-NODEPORTS"]


def test_masquerade_all_and_missing_cluster_cidr() -> None:
    objects = [svc("ns1", "svc1", "172.30.0.41", type="NodePort", node_port=3001,
                   externalTrafficPolicy="Local"), eps("ns1", "svc1", ep("10.180.0.1"))]
    masq_all = dataclasses.replace(FIXTURE, masquerade_all=True)
    assert chain_rules(payload(*objects, config=masq_all), SVC1)[0].endswith(
        "-d 172.30.0.41 --dport 80 -j KUBE-MARK-MASQ")
    no_cidr = dataclasses.replace(FIXTURE, cluster_cidr=None)
    text = payload(*objects, config=no_cidr)
    assert "KUBE-MARK-MASQ" not in "\n".join(chain_rules(text, SVC1))
    assert "pod traffic for" not in text and "masquerade LOCAL traffic" in text


def test_version_toggles() -> None:
    real = IPTablesConfig(node_name=NODE)
    text = payload(config=real)
    assert "-j MASQUERADE --random-fully" in text and "nfacct" not in text
    assert "--ctstate INVALID -j DROP" in text
    liberal = dataclasses.replace(real, random_fully=False, conntrack_tcp_be_liberal=True)
    text = payload(config=liberal)
    assert "--random-fully" not in text and "INVALID" not in text


def test_every_payload_loads_into_the_fake() -> None:
    """Consistency: every chain jumped to is declared, every declared chain is valid."""
    objects = [svc("ns1", "svc1", "172.30.0.41", type="LoadBalancer", node_port=3001,
                   lb_ips=("1.2.3.4",), loadBalancerSourceRanges=["203.0.113.0/25"],
                   externalIPs=["192.168.99.1"], externalTrafficPolicy="Local",
                   internalTrafficPolicy="Local", sessionAffinity="ClientIP"),
               eps("ns1", "svc1", ep("10.180.0.1"), ep("10.180.0.2", local=True))]
    fake = loaded(payload(*objects))
    assert fake.has_chain("nat", fw_chain("ns1/svc1:p80", "tcp"))


def test_jump_rules() -> None:
    jumps = jump_rules()
    table, chain, args = jumps[9]  # plain (table, chain, args) tuples
    assert (table, chain, args) == ("nat", "OUTPUT", (
        "-m", "comment", "--comment", "kubernetes service portals", "-j", "KUBE-SERVICES"))
    assert (jumps[0].table, jumps[0].chain, jumps[0].args) == (
        "filter", "INPUT", ("-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment",
                            "kubernetes externally-visible service portals", "-j",
                            "KUBE-EXTERNAL-SERVICES"))
    assert [(j.table, j.chain, j.target) for j in jumps[-5:]] == [
        ("nat", "OUTPUT", "KUBE-SERVICES"), ("nat", "PREROUTING", "KUBE-SERVICES"),
        ("nat", "POSTROUTING", "KUBE-POSTROUTING"), ("filter", "INPUT", "KUBE-FIREWALL"),
        ("filter", "OUTPUT", "KUBE-FIREWALL")]
    assert jumps[-1].args == ("-j", "KUBE-FIREWALL")
    fake = loaded(payload())
    for _ in range(2):  # ensuring twice changes nothing
        for j in jumps:
            fake.ensure_chain(j.table, j.target)
            fake.ensure_rule(j.table, j.chain, j.args)
    targets = {c: [r.target.name for r in fake.rules("filter", c) if r.target]
               for c in ("INPUT", "FORWARD", "OUTPUT")}
    # Each is prepended, so on a fresh node later entries sit above earlier ones.
    assert targets == {
        "INPUT": ["KUBE-FIREWALL", "KUBE-PROXY-FIREWALL", "KUBE-NODEPORTS",
                  "KUBE-EXTERNAL-SERVICES"],
        "FORWARD": ["KUBE-PROXY-FIREWALL", "KUBE-FORWARD", "KUBE-SERVICES",
                    "KUBE-EXTERNAL-SERVICES"],
        "OUTPUT": ["KUBE-FIREWALL", "KUBE-PROXY-FIREWALL", "KUBE-SERVICES"]}


def test_needs_full_sync() -> None:
    assert needs_full_sync(last_full_sync=None, now=10.0, last_sync_failed=False)
    assert needs_full_sync(last_full_sync=5.0, now=10.0, last_sync_failed=True)
    assert not needs_full_sync(last_full_sync=5.0, now=10.0, last_sync_failed=False)
    assert needs_full_sync(last_full_sync=5.0, now=3606.0, last_sync_failed=False)
