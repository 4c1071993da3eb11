"""The busybox image's nslookup: busybox 1.28's walk and output, against a scripted server
(the command against a real server: tests/integration/test_nslookup_command.py)."""

from __future__ import annotations

import io

import pytest
from svcnet.dns.explain import ResolverConfig
from svcnet.images.nslookup import Answer, Query, lookup, render_host, reverse, run

POD_RESOLV = ("nameserver 10.96.0.10\n"
              "search default.svc.cluster.local svc.cluster.local cluster.local\n"
              "options ndots:5\n")
RECORDS = {("kubernetes.default.svc.cluster.local.", "A"): ["10.96.0.1"],
           ("1.0.96.10.in-addr.arpa.", "PTR"): ["kubernetes.default.svc.cluster.local."],
           ("web.example.", "A"): ["192.0.2.7"],
           ("web.example.", "AAAA"): ["2001:db8::7"]}


def scripted(asked: list[tuple[str, str]]) -> Query:
    def query(qname: str, qtype: str) -> list[str]:
        asked.append((qname, qtype))
        return RECORDS.get((qname, qtype), [])
    return query


def test_a_dotted_name_walks_the_search_path_like_the_c_library() -> None:
    asked: list[tuple[str, str]] = []
    config = ResolverConfig.from_text(POD_RESOLV)
    assert lookup("kubernetes.default", config, scripted(asked)) == ["10.96.0.1"]
    # busybox 1.29+ would ask only "kubernetes.default." and fail
    assert [q for q, t in asked if t == "A"] == ["kubernetes.default.default.svc.cluster.local.",
                                                 "kubernetes.default.svc.cluster.local."]


def test_absolute_names_addresses_and_both_families() -> None:
    asked: list[tuple[str, str]] = []
    config = ResolverConfig.from_text(POD_RESOLV)
    assert lookup("web.example.", config, scripted(asked)) == ["192.0.2.7", "2001:db8::7"]
    assert asked == [("web.example.", "A"), ("web.example.", "AAAA")]
    assert lookup("10.1.2.3", config, scripted(asked)) == ["10.1.2.3"]
    assert lookup("missing", config, scripted([])) == []
    assert reverse("10.96.0.1", scripted([])) == "kubernetes.default.svc.cluster.local"
    assert reverse("10.96.0.2", scripted([])) == ""


def test_output_is_busybox_1_28s() -> None:
    text = render_host("Server:", "10.96.0.10", [Answer("10.96.0.10", "kube-dns.kube-system"
                                                                      ".svc.cluster.local")])
    text += render_host("Name:", "kubernetes.default",
                        [Answer("10.96.0.1", "kubernetes.default.svc.cluster.local"),
                         Answer("10.96.0.9")])
    assert text == ("Server:    10.96.0.10\n"
                    "Address 1: 10.96.0.10 kube-dns.kube-system.svc.cluster.local\n\n"
                    "Name:      kubernetes.default\n"
                    "Address 1: 10.96.0.1 kubernetes.default.svc.cluster.local\n"
                    "Address 2: 10.96.0.9\n\n")


@pytest.mark.parametrize("argv, message", [
    ([], "usage: nslookup HOST [SERVER]"),
    (["a", "b", "c"], "usage: nslookup HOST [SERVER]"),
    (["web", "not-an-ip"], "nslookup: bad address 'not-an-ip'"),
])
def test_bad_arguments(argv: list[str], message: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert run(argv, POD_RESOLV, out, err) == 1
    assert err.getvalue().startswith(message) and out.getvalue() == ""


def test_no_answer_at_all_ends_the_walk_as_in_glibc() -> None:
    """A server that does not answer (timeout, refused) ends the lookup at once, instead of
    timing out again for every search domain."""
    asked: list[tuple[str, str]] = []

    def silent(qname: str, qtype: str) -> list[str] | None:
        asked.append((qname, qtype))
        return None
    assert lookup("kubernetes.default", ResolverConfig.from_text(POD_RESOLV), silent) == []
    assert asked == [("kubernetes.default.default.svc.cluster.local.", "A")]
    assert reverse("10.96.0.10", silent) == ""
