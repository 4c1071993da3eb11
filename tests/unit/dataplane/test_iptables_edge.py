"""The real iptables/conntrack edges with a scripted subprocess runner (no root)."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from svcnet.dataplane.errors import ApplyError, DataplaneError
from svcnet.dataplane.iptables import Conntrack, IPTables, parse_restore_error

PAYLOAD = "*nat\n:KUBE-X - [0:0]\n-A KUBE-X -m foo -j ACCEPT\nCOMMIT\n"


class Script:
    def __init__(self, *results: tuple[int, str, str]) -> None:
        self.results = list(results)
        self.calls: list[tuple[list[str], str | None]] = []

    def __call__(self, argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append((argv, kw.get("input")))
        rc, out, err = self.results.pop(0) if self.results else (0, "", "")
        return subprocess.CompletedProcess(argv, rc, out, err)


def test_parse_nft_style_error() -> None:
    err = parse_restore_error(
        "iptables-restore v1.8.9 (nf_tables): Couldn't load match `foo':No such file or "
        "directory\n\nError occurred at line: 3\nTry `iptables-restore -h' or ...\n", PAYLOAD)
    assert (err.line, err.text) == (3, "-A KUBE-X -m foo -j ACCEPT")
    assert err.reason.startswith("Couldn't load match `foo'")
    assert err.is_not_found()


def test_parse_legacy_style_error() -> None:
    err = parse_restore_error("iptables-restore: line 2 failed\n", PAYLOAD)
    assert (err.line, err.text) == (2, ":KUBE-X - [0:0]")


def test_restore_is_one_noflush_call_and_raises_apply_error() -> None:
    run = Script((0, "", ""), (2, "", "iptables-restore: line 3 failed\n"))
    ipt = IPTables(run=run, netns="svcnet-tx")
    ipt.restore(PAYLOAD)
    argv, stdin = run.calls[0]
    assert argv[:4] == ["ip", "netns", "exec", "svcnet-tx"]
    assert argv[4] == "iptables-restore" and "--noflush" in argv and "--counters" in argv
    assert stdin == PAYLOAD
    with pytest.raises(ApplyError) as ei:
        ipt.restore(PAYLOAD)
    assert ei.value.line == 3 and "foo" in ei.value.text


def test_ensure_rule_checks_before_inserting() -> None:
    run = Script((0, "", ""))
    assert IPTables(run=run).ensure_rule("nat", "OUTPUT", ["-j", "KUBE-SERVICES"]) is True
    assert len(run.calls) == 1 and "-C" in run.calls[0][0]
    run = Script((1, "", "Bad rule"), (0, "", ""))
    assert IPTables(run=run).ensure_rule("nat", "OUTPUT", ["-j", "KUBE-SERVICES"]) is False
    assert "-I" in run.calls[1][0]


def test_existing_chains_from_save() -> None:
    save = "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SVC-AAA - [0:0]\n:KUBE-SERVICES - [0:0]\n" \
           "-A PREROUTING -j KUBE-SERVICES\nCOMMIT\n"
    run = Script((0, save, ""), (0, save, ""))
    ipt = IPTables(run=run)
    assert ipt.existing_chains("nat", ("KUBE-SVC-",)) == {"KUBE-SVC-AAA"}
    assert ipt.chain_exists("nat", "KUBE-SERVICES")


def test_conntrack_zero_entries_is_not_an_error() -> None:
    none = (1, "", "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n")
    run = Script(none, (0, "", "conntrack v1.4.7 (conntrack-tools): 2 flow entries have "
                               "been deleted.\n"), (1, "", "Operation failed: oops\n"))
    ct = Conntrack(run=run)
    assert ct.delete_udp_to_service("172.30.0.53", 53) == 0
    assert run.calls[0][0] == ["conntrack", "-D", "-p", "udp", "--orig-dst", "172.30.0.53",
                               "--dport", "53"]
    assert ct.delete_udp_to_endpoint("10.244.1.5", 5353) == 2
    assert run.calls[1][0][-4:] == ["--reply-src", "10.244.1.5", "--reply-port-src", "5353"]
    with pytest.raises(DataplaneError):
        ct.delete_udp_to_service(None, 30053)


def test_restore_timeout_grows_with_the_payload_and_is_a_typed_error() -> None:
    from svcnet.dataplane import iptables as edge
    from svcnet.dataplane.errors import ApplyError
    seen: list[float] = []

    def slow(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        seen.append(kw["timeout"])
        raise subprocess.TimeoutExpired(argv, kw["timeout"])
    ipt = edge.IPTables(run=slow, timeout=60.0)
    big = "\n".join(["-A KUBE-SERVICES -j ACCEPT"] * 200_000)
    try:
        ipt.restore(big)
        raise AssertionError("expected ApplyError")
    except ApplyError as e:
        assert "timed out" in str(e) and "200000 lines" in str(e)
    assert seen[0] == 60.0 + 200_000 * edge.RESTORE_SECONDS_PER_LINE  # not a fixed 60 s
