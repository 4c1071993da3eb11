"""Pod IP allocation: usable range, round-robin, idempotency, exhaustion, persistence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from svcnet.node import ipam
from svcnet.node.ipam import (Allocations, IPAMStateError, PodCIDRExhausted, PodIPAM,
                              allocate, release, reserve, retain, usable_range)
from svcnet.node.types import NodeConfig


def node(tmp: Path, cidr: str = "10.244.1.0/24") -> NodeConfig:
    return NodeConfig(name="n1", node_ip="172.30.0.11", pod_cidr=cidr, state_dir=tmp)


@pytest.mark.parametrize("cidr,bounds", [
    ("10.244.1.0/24", ("10.244.1.2", "10.244.1.254")),
    ("10.244.0.0/16", ("10.244.0.2", "10.244.255.254")),
    ("10.0.0.0/30", ("10.0.0.2", "10.0.0.2")),
    ("10.0.0.0/31", None),
    ("10.0.0.1/32", None),
    ("fd00:10::/120", ("fd00:10::2", "fd00:10::ff")),
])
def test_usable_range(cidr: str, bounds: tuple[str, str] | None) -> None:
    got = usable_range(cidr)
    assert (tuple(map(str, got)) if got else None) == bounds


def test_gateway() -> None:
    assert ipam.gateway("10.244.3.0/24") == "10.244.3.1"


def test_allocate_is_sequential_idempotent_and_round_robin() -> None:
    s = Allocations(cidr="10.244.1.0/24")
    s, a = allocate(s, "uid-a", "default/a")
    s, b = allocate(s, "uid-b", "default/b")
    assert (a, b) == ("10.244.1.2", "10.244.1.3")
    assert allocate(s, "uid-a", "default/a") == (s, a)
    s = release(s, "uid-a")
    s, c = allocate(s, "uid-c", "default/c")
    assert c == "10.244.1.4"  # a freed IP is not reused at once


def test_wraps_around_to_the_lowest_free_address() -> None:
    s = Allocations(cidr="10.244.1.0/29", last="10.244.1.6")  # usable .2-.6
    s, a = allocate(s, "a", "ns/a")
    assert a == "10.244.1.2"
    s = reserve(s, "x", "10.244.1.3", "ns/x")
    s, b = allocate(s, "b", "ns/b")
    assert b == "10.244.1.4"


def test_exhausted_range_raises_a_clear_error() -> None:
    s = Allocations(cidr="10.244.1.0/30")
    s, _ = allocate(s, "a", "default/a")
    with pytest.raises(PodCIDRExhausted) as e:
        allocate(s, "b", "default/x")
    assert str(e.value) == ("failed to allocate an IP for pod default/x: the node's pod range "
                            "10.244.1.0/30 is exhausted")
    assert e.value.reason == "FailedCreatePodSandBox" and e.value.cidr == "10.244.1.0/30"
    with pytest.raises(PodCIDRExhausted):
        allocate(Allocations(cidr="10.0.0.0/31"), "a", "ns/a")


def test_full_24_allocates_253_pods() -> None:
    s = Allocations(cidr="10.244.1.0/24")
    ips = set()
    for i in range(253):
        s, ip = allocate(s, f"u{i}", f"ns/p{i}")
        ips.add(ip)
    assert len(ips) == 253 and "10.244.1.1" not in ips and "10.244.1.255" not in ips
    with pytest.raises(PodCIDRExhausted):
        allocate(s, "one-more", "ns/p")


def test_reserve_and_retain() -> None:
    s = reserve(Allocations(cidr="10.244.1.0/24"), "a", "10.244.1.9", "ns/a")
    with pytest.raises(ValueError, match="already allocated"):
        reserve(s, "b", "10.244.1.9", "ns/b")
    with pytest.raises(ValueError, match="not an assignable"):
        reserve(s, "b", "10.244.1.1", "ns/b")
    s = reserve(s, "b", "10.244.1.10", "ns/b")
    assert set(retain(s, ["b", "zzz"]).pods) == {"b"}


def test_persistence_survives_a_restart(tmp_path: Path) -> None:
    first = PodIPAM(node(tmp_path))
    a = first.allocate("uid-a", "default", "a")
    b = first.allocate("uid-b", "shop", "b")
    first.release("uid-a")
    again = PodIPAM(node(tmp_path))
    assert again.ip_of("uid-b") == b and again.ip_of("uid-a") is None
    assert again.allocate("uid-c", "default", "c") == "10.244.1.4"
    saved = json.loads((tmp_path / "ipam.json").read_text())
    assert saved["pods"]["uid-b"] == {"ip": b, "pod": "shop/b"} and a == "10.244.1.2"
    assert [p.name for p in tmp_path.iterdir()] == ["ipam.json"]  # no temp file left


def test_changed_cidr_drops_foreign_allocations(tmp_path: Path) -> None:
    PodIPAM(node(tmp_path)).allocate("uid-a", "default", "a")
    moved = PodIPAM(node(tmp_path, "10.244.7.0/24"))
    assert moved.ip_of("uid-a") is None
    assert moved.allocate("uid-a", "default", "a") == "10.244.7.2"


def test_corrupt_state_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "ipam.json").write_text("{not json")
    with pytest.raises(IPAMStateError, match="ipam.json"):
        PodIPAM(node(tmp_path))
