"""Name grammar of the cluster zone and the label <-> address conventions."""

from __future__ import annotations

import pytest

from svcnet.dns import names


def parse(text: str) -> object:
    labels = tuple(label.encode() for label in text.split(".") if label)
    return names.classify(labels, (b"cluster", b"local"))


@pytest.mark.parametrize("text,expected", [
    ("cluster.local", names.Apex()),
    ("dns-version.cluster.local", names.Version()),
    ("ns.dns.cluster.local", names.DefaultNS()),
    ("svc.cluster.local", names.EmptyNonTerminal("svc")),
    ("pod.cluster.local", names.EmptyNonTerminal("pod")),
    ("default.svc.cluster.local", names.NamespaceName("svc", "default")),
    ("web.default.svc.cluster.local", names.ServiceName("default", "web")),
    ("web-0.nginx.default.svc.cluster.local",
     names.ServiceName("default", "nginx", endpoint="web-0")),
    ("_http._tcp.web.default.svc.cluster.local",
     names.ServiceName("default", "web", port="http", protocol="tcp")),
    ("http.tcp.web.default.svc.cluster.local",
     names.ServiceName("default", "web", port="http", protocol="tcp")),
    ("1-2-3-4.default.pod.cluster.local", names.PodName("default", "1-2-3-4")),
    ("a.1-2-3-4.default.pod.cluster.local", names.Invalid()),
    ("a.b.c.web.default.svc.cluster.local", names.Invalid()),
    ("web.default.xyz.cluster.local", names.Invalid()),
    ("foo.cluster.local", names.Invalid()),
    ("www.example.com", None),
    ("local", None),
    ("1.0.96.10.in-addr.arpa", names.ReverseName(bytes([10, 96, 0, 1]), False)),
    ("0.96.10.in-addr.arpa", names.ReverseName(None, False)),
    ("1.0.96.300.in-addr.arpa", names.ReverseName(None, False)),
])
def test_classify(text: str, expected: object) -> None:
    assert parse(text) == expected


def test_ip6_reverse_round_trip() -> None:
    packed = bytes.fromhex("20010db8000000000000000000000001")
    labels = names.reverse_name_labels(packed)
    assert b".".join(labels) == (b"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2."
                                 b"ip6.arpa")
    assert names.classify(labels, (b"cluster", b"local")) == names.ReverseName(packed, True)


@pytest.mark.parametrize("ip,label", [
    ("172.0.0.2", "172-0-0-2"),
    ("5678:abcd::1", "5678-abcd--1"),
    ("2001:db8:3333:4444:5555:6666::", "2001-db8-3333-4444-5555-6666--0"),
    ("::1", "--1"),
])
def test_dashed_endpoint_names(ip: str, label: str) -> None:
    assert names.dashed_ip(ip) == label


@pytest.mark.parametrize("label,ip", [
    ("10-244-1-5", "10.244.1.5"),
    ("fd00-10-244--5", "fd00:10:244::5"),
    ("2001-db8-0-0-0-0-0-1", "2001:db8::1"),
    ("1-2-3", None),
    ("1-2-3-4-5", None),
    ("256-0-0-1", None),
    ("01-2-3-4", None),
    ("fe80--1%eth0", None),
    ("blah", None),
])
def test_pod_labels(label: str, ip: str | None) -> None:
    parsed = names.pod_ip(label)
    assert (str(parsed) if parsed is not None else None) == ip
